//! Faults at the node, process and cgroup level, as root: processes that try to outlive
//! their node, node names that look like cgroup files, memory cgroups freed at `down`,
//! commands that follow a lab ending with it, and logs that cannot fill the tmpfs. Every
//! test compares a host snapshot before and after.

mod support;

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;

use support::*;

/// A pidfd for `pid`, so a reused pid is never mistaken for the process.
fn pidfd(pid: i32) -> OwnedFd {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(
        fd >= 0,
        "pidfd_open {pid}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a fresh descriptor, owned from here on.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Whether the process behind a pidfd has exited (its pidfd polls readable).
fn exited(fd: &OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one descriptor we own, without waiting.
    unsafe { libc::poll(&mut p, 1, 0) == 1 }
}

/// A fresh directory beside the lab files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("nslab-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A daemon that records its pid in `$2/$1.pid` and, on SIGTERM, writes `$2/$1.term`.
const DAEMON: &str = "trap \"echo term > $2/$1.term; exit 0\" TERM\n\
                      echo $$ > $2/$1.tmp && mv $2/$1.tmp $2/$1.pid\n\
                      while :; do sleep 0.1; done\n";

#[test]
fn daemons_that_escape_a_node_without_a_pid_namespace_get_sigterm_at_down() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let before = host_snapshot();
    let dir = scratch("qx-esc-out");
    std::fs::write(dir.join("daemon.sh"), DAEMON).unwrap();
    let d = dir.display();
    // a: mount, uts and ipc namespaces but no pid namespace. Its daemons leave their
    // launcher's process group (setsid), its process tree (a double fork) and its network
    // namespace (unshare -n). b: only a network namespace, and a daemon that leaves it.
    // c: only a network namespace and a cgroup.
    let lab = Lab::new(
        "qx-esc",
        &format!(
            r#"
nodes:
  a:
    isolation: [net, uts, mnt, ipc]
    mounts: ["qx-esc-out:/mnt/out"]
    processes:
      - {{ name: setsid, cmd: "sh -c 'setsid sh /mnt/out/daemon.sh setsid /mnt/out >/dev/null 2>&1 &'" }}
      - {{ name: dfork, cmd: "sh -c '(sh /mnt/out/daemon.sh dfork /mnt/out >/dev/null 2>&1 &); exit 0'" }}
      - {{ name: unshare, cmd: "sh -c 'setsid unshare -n sh /mnt/out/daemon.sh unshare /mnt/out >/dev/null 2>&1 &'" }}
  b:
    isolation: [net]
    processes:
      - {{ name: unshare, cmd: "sh -c 'setsid unshare -n sh {d}/daemon.sh b-unshare {d} >/dev/null 2>&1 &'" }}
  c:
    isolation: [net]
    limits: {{ pids: 64 }}
    processes: [{{ name: p, cmd: "sleep 1000" }}]
"#
        ),
    );
    lab.up();
    // Started from outside, so not the init's descendants: only the namespaces they keep
    // (a) or the cgroup they joined (c) mark them as the node's.
    for (node, name, out) in [
        ("a", "exec-unshare", "/mnt/out".to_string()),
        ("c", "c-exec-unshare", d.to_string()),
    ] {
        let script = format!("setsid unshare -n sh {out}/daemon.sh {name} {out} >/dev/null 2>&1 &");
        let o = lab.exec(node, &["sh", "-c", &script]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let names = [
        "setsid",
        "dfork",
        "unshare",
        "b-unshare",
        "exec-unshare",
        "c-exec-unshare",
    ];
    wait_for("every daemon's pid file", || {
        names.iter().all(|n| dir.join(format!("{n}.pid")).exists())
    });
    let fds: Vec<(&str, OwnedFd)> = names
        .iter()
        .map(|n| {
            let pid: i32 = std::fs::read_to_string(dir.join(format!("{n}.pid")))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            (*n, pidfd(pid))
        })
        .collect();
    assert!(fds.iter().all(|(_, fd)| !exited(fd)), "all daemons run");
    lab.down();
    for (name, fd) in &fds {
        assert!(exited(fd), "daemon `{name}` outlived `down`");
        assert_eq!(
            std::fs::read_to_string(dir.join(format!("{name}.term"))).unwrap_or_default(),
            "term\n",
            "daemon `{name}` got SIGTERM and ran its handler"
        );
    }
    assert_same_host(&before, &host_snapshot(), "after down");
    let _ = std::fs::remove_dir_all(&dir);
}

/// How much of a file is in the page cache: (resident pages, pages).
fn cached_pages(path: &std::path::Path) -> (usize, usize) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    let page = 4096;
    let pages = len.div_ceil(page);
    // SAFETY: a read-only shared mapping of a file we opened, of its length.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(map, libc::MAP_FAILED, "mmap {}", path.display());
    let mut vec = vec![0u8; pages];
    // SAFETY: mincore over the mapping just made, one byte per page in `vec`; the
    // mapping is never read, so no page is faulted in.
    let r = unsafe { libc::mincore(map, len, vec.as_mut_ptr()) };
    // SAFETY: unmapping what we mapped.
    unsafe { libc::munmap(map, len) };
    assert_eq!(r, 0, "mincore {}", path.display());
    (vec.iter().filter(|b| *b & 1 == 1).count(), pages)
}

/// Every directory of the node's group, in whichever hierarchies hold it.
fn node_groups(lab: &str, node: &str) -> Vec<PathBuf> {
    let rel = format!("nslab/lab-{lab}/node-{node}");
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    roots.extend(
        std::fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .flatten()
            .map(|e| e.path()),
    );
    roots
        .into_iter()
        .map(|r| r.join(&rel))
        .filter(|p| p.is_dir())
        .collect()
}

#[test]
fn nodes_named_like_cgroup_files_get_their_own_groups_which_down_empties_and_frees() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let before = host_snapshot();
    let dir = scratch("qx-cg-out");
    // Each node writes 8 MiB to a file on the host's disk: page cache charged to its
    // memory cgroup, which outlives the node's processes and, left there, keeps the
    // removed group alive in the kernel as a dying cgroup.
    let lab = Lab::new(
        "qx-cg",
        r#"
defaults:
  limits: { memory: 64M, pids: 32, cpu: 0.5 }
  mounts: ["qx-cg-out:/mnt/out"]
  processes:
    - { name: p, cmd: "sh -c 'dd if=/dev/zero of=/mnt/out/$(hostname) bs=1M count=8 2>/dev/null; exec sleep 1000'" }
nodes:
  tasks: {}
  cgroup.procs: {}
  memory.max: {}
"#,
    );
    lab.up();
    for node in ["tasks", "cgroup.procs", "memory.max"] {
        let groups = node_groups("qx-cg", node);
        assert!(!groups.is_empty(), "node {node} has no group of its own");
        // The node's commands run in its own group, not in a control file's parent: the
        // node's cgroup namespace is rooted there, so a parent would read `/..`.
        let o = lab.exec(node, &["cat", "/proc/self/cgroup"]);
        assert!(o.status.success(), "{node}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .all(|l| l.ends_with(":/")),
            "{node}: {}",
            text(&o)
        );
        for g in &groups {
            let procs = std::fs::read_to_string(g.join("cgroup.procs")).unwrap();
            assert!(!procs.trim().is_empty(), "{} is empty", g.display());
        }
    }
    wait_for("the page cache to be written", || {
        ["tasks", "cgroup.procs", "memory.max"]
            .iter()
            .all(|n| std::fs::metadata(dir.join(n)).is_ok_and(|m| m.len() == 8 << 20))
    });
    for node in ["tasks", "cgroup.procs", "memory.max"] {
        let (cached, pages) = cached_pages(&dir.join(node));
        assert!(
            cached * 2 > pages,
            "{node}: only {cached} of {pages} pages cached"
        );
    }
    lab.down();
    for node in ["tasks", "cgroup.procs", "memory.max"] {
        assert!(
            node_groups("qx-cg", node).is_empty(),
            "{node}'s group is left"
        );
    }
    // Emptied before removal: the page cache charged to the groups was reclaimed, so
    // nothing keeps them alive. (Not the kernel's count of memory cgroups: other
    // processes on the host create and remove their own meanwhile.)
    for node in ["tasks", "cgroup.procs", "memory.max"] {
        let (cached, pages) = cached_pages(&dir.join(node));
        assert!(
            cached * 10 < pages,
            "{node}: {cached} of {pages} pages still cached: the group was not emptied"
        );
    }
    assert_same_host(&before, &host_snapshot(), "after down");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits up to 10 s for a child to exit; kills it (by pid) and fails if it does not.
fn exits_soon(what: &str, mut child: std::process::Child) -> std::process::Output {
    for _ in 0..100 {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let o = child.wait_with_output().unwrap();
    panic!("{what} still ran 10 s after down: {}", text(&o));
}

#[test]
fn logs_follow_and_captures_without_a_count_end_when_their_lab_goes_down() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let before = host_snapshot();
    let dir = scratch("qx-follow-out");
    let lab = Lab::new(
        "qx-follow",
        r#"
nodes:
  a:
    processes:
      - { name: tick, cmd: "sh -c 'while :; do echo tick; ping -c1 -W1 10.255.0.1 >/dev/null; ping -c1 -W1 127.0.0.1 >/dev/null; sleep 0.2; done'" }
  b: {}
links:
  - [a:eth0, b:eth0]
"#,
    );
    lab.up();
    let spawn = |args: &[&str]| {
        nslab()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let follow = spawn(&["logs", "--lab", "qx-follow", "a", "tick", "-f"]);
    let eth = dir.join("eth0.pcap");
    let lo = dir.join("lo.pcap");
    // On eth0 the interface goes with the lab; `lo` lives as long as the capture's socket
    // holds the namespace, so only noticing the lab's end stops that one.
    let cap_eth = spawn(&[
        "capture",
        "--lab",
        "qx-follow",
        "a:eth0",
        "-w",
        eth.to_str().unwrap(),
    ]);
    let cap_lo = spawn(&[
        "capture",
        "--lab",
        "qx-follow",
        "a:lo",
        "-w",
        lo.to_str().unwrap(),
    ]);
    wait_for("both captures to write packets", || {
        [&eth, &lo]
            .iter()
            .all(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 24))
    });
    lab.down();
    let o = exits_soon("logs -f", follow);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("tick\n"),
        "{}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("lab `qx-follow` went down"),
        "{}",
        text(&o)
    );
    for (what, child) in [("capture on eth0", cap_eth), ("capture on lo", cap_lo)] {
        let o = exits_soon(what, child);
        assert!(o.status.success(), "{what}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("(lab `qx-follow` is down)"),
            "{what}: {}",
            text(&o)
        );
    }
    assert!(!lab.is_up());
    assert_same_host(&before, &host_snapshot(), "after down");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The sizes of a process's log parts on disk, `name.log` first.
fn log_parts(lab: &str, node: &str, process: &str) -> Vec<u64> {
    let dir = PathBuf::from(format!("/run/nslab/{lab}.logs/{node}"));
    let mut sizes = vec![];
    let base = format!("{process}.log");
    for i in 0.. {
        let name = if i == 0 {
            base.clone()
        } else {
            format!("{base}.{i}")
        };
        match std::fs::metadata(dir.join(name)) {
            Ok(m) => sizes.push(m.len()),
            Err(_) if i == 0 => continue,
            Err(_) => break,
        }
    }
    sizes
}

#[test]
fn a_chatty_process_cannot_fill_the_logs_tmpfs() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let before = host_snapshot();
    // `yes` writes as fast as it is read, for as long as the lab runs; `count` writes
    // 1,000,000 numbered lines (6.9 MB) and exits.
    let lab = Lab::new(
        "qx-logs",
        r#"
logs: { max_size: 64K, keep: 2 }
nodes:
  a:
    processes:
      - { name: yes, cmd: "yes nslab-log-line" }
      - { name: count, cmd: "seq 1 1000000" }
"#,
    );
    lab.up();
    let cap = 3 * 64 * 1024;
    wait_for("count to finish", || {
        let o = nslab()
            .args(["ps", "--lab", "qx-logs", "a", "--json"])
            .output()
            .unwrap();
        let ps: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        ps[0]["processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "count" && p["exit"] == 0)
    });
    // `yes` goes on writing for as long as the lab runs: its log stays within the cap.
    for _ in 0..10 {
        let yes: u64 = log_parts("qx-logs", "a", "yes").iter().sum();
        assert!(yes <= cap, "yes holds {yes} bytes of log, over {cap}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // `yes` is still writing, so it has rotated or soon will (under load it may be slow
    // to get its first 64K, or be between two parts): every part stays within the cap.
    wait_for("yes to rotate its log", || {
        let yes = log_parts("qx-logs", "a", "yes");
        assert!(yes.iter().all(|s| *s <= 64 * 1024), "{yes:?}");
        yes.len() >= 2
    });
    let count = log_parts("qx-logs", "a", "count");
    assert_eq!(
        count.len(),
        3,
        "the current log and two old parts: {count:?}"
    );
    assert!(count.iter().all(|s| *s <= 64 * 1024), "{count:?}");
    // The parts read oldest first: the last numbers, consecutive, up to the end.
    let o = nslab()
        .args(["logs", "--lab", "qx-logs", "a", "count"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let numbers: Vec<u64> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.parse().unwrap_or_else(|_| panic!("not a number: {l}")))
        .collect();
    assert_eq!(numbers.last(), Some(&1_000_000));
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "the parts are out of order or lose lines"
    );
    // Everything kept is shown: the two old parts and the current one, whole.
    let kept: u64 = log_parts("qx-logs", "a", "count").iter().sum();
    assert_eq!(o.stdout.len() as u64, kept);
    lab.down();
    assert_same_host(&before, &host_snapshot(), "after down");
}
