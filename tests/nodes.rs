//! Nodes as namespaced process sets, as root: isolation between nodes and from the host,
//! the init, processes (restarts, readiness, ordering), daemonsets, limits, and nothing
//! left behind. Each test uses its own lab name.

mod support;

use std::time::{Duration, Instant};

use support::*;

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The network namespaces of a running lab, as the inode links /proc shows.
fn netns_links(lab: &str) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let prefix = format!("nslab.{lab}");
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .filter_map(|e| e.metadata().ok())
                .map(|m| format!("net:[{}]", m.ino()))
                .collect()
        })
        .unwrap_or_default()
}

/// Live processes of the lab: its inits (by their command line) and anything inside the
/// given namespaces (taken while the lab was up).
fn lab_processes(lab: &str, namespaces: &[String]) -> Vec<String> {
    let marker = format!("__init - {lab}/");
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        if stat
            .rfind(')')
            .is_some_and(|i| stat[i + 2..].starts_with('Z'))
        {
            continue;
        }
        let cmd = std::fs::read_to_string(e.path().join("cmdline"))
            .unwrap_or_default()
            .replace('\0', " ");
        let ns = std::fs::read_link(e.path().join("ns/net"))
            .map(|l| l.to_string_lossy().to_string())
            .unwrap_or_default();
        if cmd.contains(&marker) || namespaces.contains(&ns) {
            found.push(format!("{name} {cmd}"));
        }
    }
    found
}

fn ps_json(lab: &Lab) -> serde_json::Value {
    let o = nslab()
        .args(["ps", "--lab", &lab.name, "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The last line a process logged, once it logged anything.
fn last_log_line(lab: &str, node: &str, process: &str) -> Option<String> {
    let logs = nslab()
        .args(["logs", "--lab", lab, node, process])
        .output()
        .unwrap();
    out(&logs).lines().last().map(str::to_owned)
}

const ISOLATION: &str = r#"
nodes:
  r1:
    mounts:
      - { source: "cfg/{node}.conf", target: /etc/nslab-test.conf, readonly: true }
      - "cfg/rw:/tmp/rw"
    private: [/var/lib/nslab-test-private]
  r2: {}
links:
  - [r1:eth0, r2:eth0]
"#;

#[test]
fn nodes_are_isolated_from_each_other_and_the_host() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new("it-iso", ISOLATION);
    let cfg = lab.file.parent().unwrap().join("cfg");
    std::fs::create_dir_all(cfg.join("rw")).unwrap();
    std::fs::write(cfg.join("r1.conf"), "from the host\n").unwrap();
    lab.up();

    // uts: the hostname is the node's name.
    assert_eq!(out(&lab.exec("r1", &["hostname"])), "r1");
    assert_eq!(out(&lab.exec("r2", &["hostname"])), "r2");
    // /etc/hosts: names resolve inside the lab.
    assert!(
        lab.exec("r2", &["ping", "-c1", "-W2", "r1"])
            .status
            .success(),
        "ping r1 by name"
    );
    // pid: only the node's own processes, the init as PID 1.
    let ps = out(&lab.exec("r1", &["ps", "-eo", "pid,comm"]));
    let rows: Vec<&str> = ps.lines().skip(1).collect();
    assert!(rows[0].trim().starts_with("1 nslab"), "{ps}");
    assert!(rows.len() <= 3, "init, ps and nothing else: {ps}");
    // mnt: the node's mounts are a copy of the lab's template, without the host's
    // namespace mounts (one per node of every lab), and the template goes with the lab.
    let mounts = out(&lab.exec("r1", &["cat", "/proc/self/mountinfo"]));
    assert!(!mounts.contains("/run/netns/"), "{mounts}");
    assert!(std::path::Path::new("/run/nslab/it-iso.nodes/template.mnt").exists());
    // Pid files, sockets and logs live on the lab's own tmpfs mounts.
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for dir in ["/run/nslab/it-iso.nodes ", "/run/nslab/it-iso.logs "] {
        assert!(
            host.lines()
                .any(|l| l.contains(dir) && l.contains(" - tmpfs ")),
            "{dir}is not a tmpfs"
        );
    }
    // mnt: a file in r1's /run is invisible on r2 and on the host.
    assert!(
        lab.exec("r1", &["sh", "-c", "echo secret > /run/it-iso-marker"])
            .status
            .success()
    );
    assert_eq!(
        out(&lab.exec("r1", &["cat", "/run/it-iso-marker"])),
        "secret"
    );
    assert!(
        !lab.exec("r2", &["cat", "/run/it-iso-marker"])
            .status
            .success()
    );
    assert!(!std::path::Path::new("/run/it-iso-marker").exists());
    // A bind-mounted config file is visible, and read-only as asked.
    assert_eq!(
        out(&lab.exec("r1", &["cat", "/etc/nslab-test.conf"])),
        "from the host"
    );
    let w = lab.exec("r1", &["sh", "-c", "echo x > /etc/nslab-test.conf"]);
    assert!(
        !w.status.success() && text(&w).contains("Read-only"),
        "{}",
        text(&w)
    );
    assert!(
        !std::path::Path::new("/etc/nslab-test.conf").exists(),
        "nothing created on the host"
    );
    // A writable mount writes through to the host directory.
    assert!(
        lab.exec("r1", &["sh", "-c", "echo y > /tmp/rw/file"])
            .status
            .success()
    );
    assert_eq!(std::fs::read_to_string(cfg.join("rw/file")).unwrap(), "y\n");
    // A private directory is an empty tmpfs of the node only.
    let df = out(&lab.exec(
        "r1",
        &[
            "sh",
            "-c",
            "stat -f -c %T /var/lib/nslab-test-private 2>/dev/null || echo none",
        ],
    ));
    assert_eq!(df, "tmpfs");
    // /sys shows the node's interfaces.
    assert_eq!(
        out(&lab.exec("r1", &["ls", "/sys/class/net"]))
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["eth0", "lo"]
    );
    // A terminal passes through exec.
    let tty = std::process::Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{} exec --lab it-iso r1 -- tty",
            env!("CARGO_BIN_EXE_nslab")
        ))
        .arg("/dev/null")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&tty.stdout).contains("/dev/pts/"),
        "{}",
        text(&tty)
    );
    lab.down();
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !host.contains("it-iso.nodes"),
        "the template is still mounted"
    );
    let _ = std::fs::remove_dir_all(cfg);
}

#[test]
fn mounts_never_hide_each_other_or_touch_the_host() {
    if !privileged() {
        return;
    }
    let _h = shared();
    // The README's FRR pattern: a config file bound inside a private directory, plus a
    // file whose directory is missing on the host (an overlay on /etc), which must not
    // hide the node's own /etc/hosts and resolv.conf.
    let lab = Lab::new(
        "it-mnt",
        r#"
nodes:
  a:
    mounts:
      - "mnt/frr.conf:/etc/nslab-it-frr/frr.conf"
      - "mnt/other.conf:/etc/nslab-it-new/deep/other.conf"
    private: [/etc/nslab-it-frr]
  b: {}
links:
  - [a:eth0, b:eth0]
"#,
    );
    let dir = lab.file.parent().unwrap().join("mnt");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("frr.conf"), "hostname a\n").unwrap();
    std::fs::write(dir.join("other.conf"), "other\n").unwrap();
    let hosts_before = std::fs::read_to_string("/etc/hosts").unwrap();
    lab.up();
    let cat = |path: &str| out(&lab.exec("a", &["cat", path]));
    assert_eq!(cat("/etc/nslab-it-frr/frr.conf"), "hostname a");
    assert_eq!(cat("/etc/nslab-it-new/deep/other.conf"), "other");
    let hosts = cat("/etc/hosts");
    assert!(
        hosts.contains("written by nslab for lab `it-mnt`") && hosts.contains("\tb"),
        "{hosts}"
    );
    assert!(cat("/etc/resolv.conf").contains("written by nslab"));
    let o = lab.exec("a", &["ping", "-c1", "-W2", "b"]);
    assert!(o.status.success(), "{}", text(&o));
    // The private directory is the node's own, writable tmpfs.
    let o = lab.exec(
        "a",
        &[
            "sh",
            "-c",
            "echo x > /etc/nslab-it-frr/state && stat -f -c %T /etc/nslab-it-frr",
        ],
    );
    assert_eq!(out(&o), "tmpfs", "{}", text(&o));
    lab.down();
    for p in ["/etc/nslab-it-frr", "/etc/nslab-it-new"] {
        assert!(!std::path::Path::new(p).exists(), "{p} created on the host");
    }
    assert_eq!(std::fs::read_to_string("/etc/hosts").unwrap(), hosts_before);
    let _ = std::fs::remove_dir_all(dir);
}

/// A bind onto a path the host lacks directly under `/` (containerlab's `/01-test.txt`):
/// that node gets a new root, an overlay of the host's `/` with every mount below it
/// bound again, so it still sees its own /proc, /etc/hosts and /tmp and the host's
/// programs, while the host's `/` never gets the new entries, during or after.
#[test]
fn binds_onto_paths_missing_directly_under_root_stay_in_the_node() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "it-newroot",
        r#"
nodes:
  a:
    mounts:
      - "newroot/01-test.txt:/nslab-it-01-test.txt"
      - "newroot/data:/nslab-it-data/x"
    private: [/nslab-it-private]
  b:
    mounts:
      - "newroot/01-test.txt:/etc/nslab-it-plain.txt"
links:
  - [a:eth0, b:eth0]
"#,
    );
    let dir = lab.file.parent().unwrap().join("newroot");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("01-test.txt"), "Hello, containerlab\n").unwrap();
    std::fs::write(dir.join("data/inner"), "inner\n").unwrap();
    let new = [
        "/nslab-it-01-test.txt",
        "/nslab-it-data",
        "/nslab-it-private",
    ];
    let host_mounts = |info: &str| -> Vec<String> {
        let mut m: Vec<String> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| !m.starts_with("/run/netns") && !m.starts_with("/run/nslab"))
            .map(str::to_string)
            .collect();
        m.sort();
        m
    };
    let before = host_mounts(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
    lab.up();
    let run = |argv: &[&str]| {
        let o = lab.exec("a", argv);
        assert!(o.status.success(), "{argv:?}: {}", text(&o));
        out(&o)
    };
    assert_eq!(
        run(&["cat", "/nslab-it-01-test.txt"]),
        "Hello, containerlab"
    );
    assert_eq!(run(&["cat", "/nslab-it-data/x/inner"]), "inner");
    // Its own pid namespace's /proc: the init is pid 1.
    let init = run(&["cat", "/proc/1/cmdline"]).replace('\0', " ");
    assert!(init.contains("__init - it-newroot/a"), "{init}");
    assert!(run(&["cat", "/etc/hosts"]).contains("written by nslab for lab `it-newroot`"));
    assert_eq!(run(&["stat", "-f", "-c", "%T", "/tmp"]), "tmpfs");
    assert_eq!(
        run(&["stat", "-f", "-c", "%T", "/nslab-it-private"]),
        "tmpfs"
    );
    assert_eq!(run(&["stat", "-f", "-c", "%T", "/"]), "overlayfs");
    // The host's programs run, and the node's network is its own.
    assert_eq!(run(&["/usr/bin/env", "echo", "ran"]), "ran");
    let o = lab.exec("a", &["ping", "-c1", "-W2", "b"]);
    assert!(o.status.success(), "{}", text(&o));
    // Writes to the new entries stay in the node.
    run(&[
        "sh",
        "-c",
        "echo node > /nslab-it-private/f && touch /nslab-it-new-file",
    ]);
    // A node that needs no new root keeps the host's root filesystem.
    let o = lab.exec("b", &["cat", "/etc/nslab-it-plain.txt"]);
    assert_eq!(out(&o), "Hello, containerlab", "{}", text(&o));
    let host_root = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root_fs = |info: &str| {
        info.lines()
            .find(|l| l.split(' ').nth(4) == Some("/"))
            .map(|l| l.split(' ').nth(2).unwrap_or_default().to_string())
    };
    let b_root = out(&lab.exec("b", &["cat", "/proc/self/mountinfo"]));
    assert_eq!(root_fs(&b_root), root_fs(&host_root), "b's root changed");
    for p in new.iter().chain(&["/nslab-it-new-file"]) {
        assert!(
            !std::path::Path::new(p).exists(),
            "{p} on the host while up"
        );
    }
    lab.down();
    for p in new.iter().chain(&["/nslab-it-new-file"]) {
        assert!(
            !std::path::Path::new(p).exists(),
            "{p} on the host after down"
        );
    }
    let after = host_mounts(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
    assert_eq!(before, after, "mounts left on the host");
    let left = |d: &str| {
        std::fs::read_dir(d)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains("it-newroot"))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    assert!(left("/run/nslab").is_empty(), "{:?}", left("/run/nslab"));
    assert!(left("/run/netns").is_empty(), "{:?}", left("/run/netns"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_init_reaps_zombies_and_restarts_daemons() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "it-init",
        r#"
nodes:
  r1:
    processes:
      - { name: daemon, cmd: "sleep 1000", restart: always }
      - { name: orphaner, cmd: "sh -c 'sh -c \"sleep 0.2 & exit 0\"; exec sleep 1000'" }
      - { name: once, cmd: "sh -c 'echo ran; exit 3'", restart: never }
"#,
    );
    lab.up();
    // The orphaned `sleep 0.2` is reparented to the init, which must reap it: it ends
    // up gone, not a zombie (two sleeps are left, the daemon's and the orphaner's).
    wait_for("the orphaned sleep to end and be reaped", || {
        let stats = out(&lab.exec("r1", &["ps", "-eo", "stat,comm"]));
        let zombie = stats.lines().any(|l| l.trim_start().starts_with('Z'));
        let sleeps = stats.lines().filter(|l| l.ends_with(" sleep")).count();
        !zombie && sleeps == 2
    });
    // Killed by hand, the daemon comes back.
    let v = ps_json(&lab);
    let daemon = &v[0]["processes"][0];
    let pid = daemon["pid"].as_i64().unwrap();
    assert!(
        lab.exec("r1", &["kill", "-9", &pid.to_string()])
            .status
            .success()
    );
    wait_for("the restart", || {
        let d = &ps_json(&lab)[0]["processes"][0];
        d["restarts"].as_u64() == Some(1)
            && d["pid"].as_i64().is_some_and(|p| p != pid)
            && d["state"] == "running"
    });
    // A one-shot that exits stays exited, with its status and its output in the log.
    wait_for("the one-shot to exit", || {
        ps_json(&lab)[0]["processes"][2]["exit"] == 3
    });
    let logs = nslab()
        .args(["logs", "--lab", "it-init", "r1", "once"])
        .output()
        .unwrap();
    assert!(out(&logs).contains("ran"), "{}", text(&logs));
    let table = nslab().args(["ps", "--lab", "it-init"]).output().unwrap();
    assert!(out(&table).contains("exit 3"), "{}", text(&table));
    let ns = netns_links("it-init");
    lab.down();
    assert!(
        lab_processes("it-init", &ns).is_empty(),
        "{:?}",
        lab_processes("it-init", &ns)
    );
}

#[test]
fn launchers_that_exit_leave_daemons_that_get_their_grace() {
    if !privileged() {
        return;
    }
    let _h = shared();
    // `frrinit.sh start` style: the launcher starts a daemon and exits 0 at once; the
    // daemon gets ready later. On `down` the daemon gets SIGTERM and its grace period
    // (it finishes its TERM handler), not a SIGKILL right behind.
    let lab = Lab::new(
        "it-launch",
        r#"
nodes:
  a:
    mounts: ["launch:/mnt/out"]
    processes:
      - { name: launcher, cmd: "sh -c 'setsid sh /mnt/out/daemon.sh >/dev/null 2>&1 &'", ready: "test -e /run/daemon-up" }
      - { name: oneshot, cmd: "true" }
      - { name: after, cmd: "sleep 1000", depends_on: [launcher, oneshot] }
"#,
    );
    let dir = lab.file.parent().unwrap().join("launch");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("daemon.sh"),
        "trap 'sleep 0.3; echo clean > /mnt/out/term; exit 0' TERM\nsleep 0.3\ntouch /run/daemon-up\nwhile :; do sleep 0.05; done\n",
    )
    .unwrap();
    lab.up();
    let ps = ps_json(&lab);
    let procs = ps[0]["processes"].as_array().unwrap();
    let by = |n: &str| procs.iter().find(|p| p["name"] == n).unwrap().clone();
    assert_eq!(by("launcher")["state"], "exited", "{ps}");
    assert_eq!(by("launcher")["ready"], true, "{ps}");
    assert_eq!(by("oneshot")["ready"], true, "{ps}");
    assert_eq!(by("after")["state"], "running", "{ps}");
    let o = lab.exec("a", &["test", "-e", "/run/daemon-up"]);
    assert!(o.status.success(), "the daemon runs on");
    let start = Instant::now();
    lab.down();
    assert_eq!(
        std::fs::read_to_string(dir.join("term")).unwrap_or_default(),
        "clean\n",
        "the daemon finished its TERM handler"
    );
    // ... and `down` did not wait for the whole default grace (5 s) once it was gone.
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn depends_on_waits_for_readiness() {
    if !privileged() {
        return;
    }
    let _h = shared();
    // `slow` becomes ready only after half a second; `after` on another node depends on
    // it and must start later. Both log a timestamp in nanoseconds.
    let lab = Lab::new(
        "it-deps",
        r#"
nodes:
  a:
    processes:
      - name: slow
        cmd: "sh -c 'sleep 0.5; date +%s%N; touch /run/slow-ready; exec sleep 1000'"
        ready: { cmd: "test -f /run/slow-ready", interval: 50ms }
  b:
    depends_on: [a]
    processes:
      # Ready once its timestamp is written: a process without a probe is ready when
      # spawned, before its shell has run `date`, so `exec` could otherwise win the race.
      - name: after
        cmd: "sh -c 'date +%s%N; touch /run/after-ready; exec sleep 1000'"
        ready: { cmd: "test -f /run/after-ready", interval: 20ms }
    exec: ["sh -c 'date +%s%N > /run/exec-ts'"]
"#,
    );
    lab.up();
    let read = |node: &str, p: &str| -> u128 {
        let o = nslab()
            .args(["logs", "--lab", "it-deps", node, p])
            .output()
            .unwrap();
        out(&o).lines().last().unwrap().trim().parse().unwrap()
    };
    let (slow, after) = (read("a", "slow"), read("b", "after"));
    assert!(
        after > slow,
        "b:after started at {after}, before a:slow was ready at {slow}"
    );
    let exec_ts: u128 = out(&lab.exec("b", &["cat", "/run/exec-ts"]))
        .parse()
        .unwrap();
    assert!(exec_ts > after, "exec runs after the node's processes");
    lab.down();
}

#[test]
fn an_init_killed_before_it_is_ready_is_reported_for_its_node() {
    if !privileged() {
        return;
    }
    let _h = shared();
    // 16 KiB cannot hold the pages the init copies as it starts: the kernel kills it in
    // its cgroup before it can say `ready`. nslab must say so for this node, at once
    // (not after its 30 s wait), and roll the lab back. (A release build's init fits in
    // 64 KiB, which this test used before.)
    let lab = Lab::new(
        "it-initdie",
        r#"
nodes:
  a: {}
  b:
    limits: { memory: 16K }
"#,
    );
    // Made by the fork server, the init's end is told with its signal ("the node's init
    // (pid N) was killed by SIGKILL before it was ready"); by an exec'd shim, as an end
    // of file ("... ended without saying it was ready").
    let o = lab.up_fails(&["node `b`", "it was ready"]);
    assert!(text(&o).contains("it-initdie"), "{}", text(&o));
    // Node `a` has no limit: its init must not be the one that failed.
    assert!(!text(&o).contains("node `a`"), "{}", text(&o));
    assert!(
        !std::path::Path::new("/run/nslab/it-initdie.nodes").exists(),
        "the rollback left the lab's nodes"
    );
}

#[test]
fn a_process_over_its_memory_limit_is_killed_and_the_cgroup_goes() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "it-oom",
        r#"
nodes:
  hog:
    limits: { memory: 48M, pids: 64, cpu: 0.5 }
    processes:
      - { name: eat, cmd: "python3 -c 'import time; x = bytearray(256 << 20); time.sleep(30)'" }
"#,
    );
    lab.up();
    let groups: Vec<_> = ["memory", "pids", "cpu"]
        .iter()
        .map(|c| {
            std::path::Path::new("/sys/fs/cgroup")
                .join(c)
                .join("nslab/lab-it-oom/node-hog")
        })
        .filter(|p| p.exists())
        .collect();
    let v2 = std::path::Path::new("/sys/fs/cgroup/nslab/lab-it-oom/node-hog");
    assert!(
        !groups.is_empty() || v2.exists(),
        "the node has its own cgroup"
    );
    wait_for("the OOM kill", || {
        ps_json(&lab)[0]["processes"][0]["exit"] == 137
    });
    // The pids limit holds for commands run in the node too.
    let fork = lab.exec(
        "hog",
        &["sh", "-c", "for i in $(seq 100); do sleep 5 & done; wait"],
    );
    assert!(
        text(&fork).contains("fork") || text(&fork).contains("Resource temporarily unavailable"),
        "{}",
        text(&fork)
    );
    lab.down();
    for g in groups {
        assert!(!g.exists(), "{} is left", g.display());
    }
    assert!(!v2.exists());
}

#[test]
fn daemonsets_run_on_exactly_the_matching_nodes() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "it-ds",
        r#"
nodes:
  c1: { labels: { role: core } }
  c2: { labels: { role: core } }
  e1: { labels: { role: edge } }
daemonsets:
  - { name: probe, selector: { role: core }, cmd: "sleep 1000" }
"#,
    );
    lab.up();
    let v = ps_json(&lab);
    let with: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| {
            n["processes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "probe" && p["state"] == "running")
        })
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(with, ["c1", "c2"]);
    lab.down();
}

#[test]
fn a_real_service_is_reached_by_hostname() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "it-socat",
        r#"
nodes:
  server:
    processes:
      - name: socat
        cmd: [socat, "TCP-LISTEN:7000,reuseaddr,fork", "SYSTEM:echo hello-from-server"]
        ready: { tcp: 7000 }
  client: {}
links:
  - [server:eth0, client:eth0]
tests:
  - tcp: { from: client, to: "server:7000" }
"#,
    );
    lab.up();
    let o = lab.exec("client", &["socat", "-T2", "-", "TCP:server:7000"]);
    assert_eq!(out(&o), "hello-from-server", "{}", text(&o));
    lab.down();
}

#[test]
fn exec_commands_fail_up_with_their_stderr_unless_ignored() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let before = host_snapshot();
    let lab = Lab::new(
        "it-exec",
        "nodes:\n  a:\n    processes: [{ name: p, cmd: 'sleep 1000' }]\n    exec: [\"sh -c 'echo boom >&2; yes x | head -c 3000000 >&2; exit 3'\"]\n",
    );
    // 3 MB of stderr after the first line: the error shows the first 64 KiB, and nslab
    // never held the rest.
    let o = lab.up_fails(&["exited with status 3", "boom"]);
    assert!(
        o.stderr.len() < 100_000,
        "{} bytes of error",
        o.stderr.len()
    );
    assert!(o.stderr.len() > 60_000, "{} bytes of error", o.stderr.len());
    assert!(lab_processes("it-exec", &[]).is_empty());
    assert_same_host(&before, &host_snapshot(), "after a failed exec");
    let ok = Lab::new(
        "it-exec2",
        "nodes:\n  a:\n    exec: [{ cmd: 'false', ignore_errors: true }, 'true']\n",
    );
    ok.up();
    ok.down();
}

#[test]
fn exec_timeouts_fire_and_large_output_does_not_block() {
    if !privileged() {
        return;
    }
    let _h = shared();
    // A command in a node's pid namespace must not hold `up` until it ends: the timeout
    // stops it (and what it started), and `up` rolls back well before the 30 s sleep.
    let lab = Lab::new(
        "it-exto",
        "nodes:\n  a:\n    exec: [{ cmd: 'sleep 30', timeout: 500ms }]\n",
    );
    let start = Instant::now();
    lab.up_fails(&["did not finish within 0.5 s"]);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert!(lab_processes("it-exto", &[]).is_empty());
    // Far more output than a pipe holds, from `nslab exec` and a `cmd` check.
    let big = Lab::new(
        "it-exbig",
        "nodes:\n  a:\n    processes: [{ name: p, cmd: 'sleep 1000' }]\ntests:\n  - cmd: { node: a, run: 'seq 1 200000', stdout: '^200000$' }\n",
    );
    big.up();
    let o = big.exec("a", &["seq", "1", "200000"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(o.stdout.len(), 1_288_895);
    let t = nslab()
        .args(["test", "--lab", "it-exbig"])
        .output()
        .unwrap();
    assert!(t.status.success(), "{}", text(&t));
    big.down();
}

#[test]
fn commands_never_fall_back_to_the_host_when_a_node_init_died() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "it-dead",
        "nodes:\n  a: { processes: [{ name: p, cmd: 'sleep 1000' }] }\n  b: { isolation: [net] }\n",
    );
    lab.up();
    let record = std::fs::read_to_string("/run/nslab/it-dead.nodes/a.pid").unwrap();
    let pid: i32 = record.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: the init nslab started for this test's node, by pid.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_for("the init to die", || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z"))
    });
    let o = lab.exec("a", &["hostname"]);
    assert!(!o.status.success(), "ran on the host: {}", text(&o));
    assert!(
        text(&o).contains("the init of node `a` is not running"),
        "{}",
        text(&o)
    );
    // A node that never had an init still takes commands in its network namespace.
    let o = lab.exec("b", &["ip", "-o", "link", "show", "lo"]);
    assert!(o.status.success(), "{}", text(&o));
    lab.down();
}

#[test]
fn down_and_kill_9_leave_no_process_mount_or_cgroup() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let before = host_snapshot();
    let yaml = r#"
nodes:
  a:
    limits: { pids: 100 }
    processes:
      - { name: p1, cmd: "sleep 1000" }
      - { name: stubborn, cmd: "sh -c 'trap \"\" TERM; while :; do sleep 1; done'", stop_timeout: 300ms }
  b:
    isolation: [net]
    processes: [{ name: light, cmd: "sleep 1000" }]
  c: {}
links:
  - [a:eth0, b:eth0]
  - [b:eth1, c:eth0]
"#;
    let lab = Lab::new("it-gone", yaml);
    lab.up();
    let ns = netns_links("it-gone");
    assert_eq!(ns.len(), 3);
    assert!(
        lab_processes("it-gone", &ns).len() >= 4,
        "{:?}",
        lab_processes("it-gone", &ns)
    );
    lab.down();
    assert!(
        lab_processes("it-gone", &ns).is_empty(),
        "{:?}",
        lab_processes("it-gone", &ns)
    );
    assert_same_host(&before, &host_snapshot(), "after down");

    // kill -9 of `up` in the middle of starting nodes, then down.
    let mut child = nslab()
        .arg("up")
        .arg(&lab.file)
        .env("NSLAB_TEST_STEP_DELAY_MS", "40")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("a node to start", || {
        !lab_processes("it-gone", &[]).is_empty()
    });
    let ns = netns_links("it-gone");
    // SAFETY: killing the child we spawned, by pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    lab.down();
    assert!(
        lab_processes("it-gone", &ns).is_empty(),
        "{:?}",
        lab_processes("it-gone", &ns)
    );
    assert_same_host(&before, &host_snapshot(), "after kill -9 and down");
}

#[test]
fn shell_shows_the_node_in_its_prompt() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new("it-shell", "nodes: { r7: {} }\n");
    lab.up();
    let mut child = nslab()
        .args(["shell", "--lab", "it-shell", "r7"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hostname\necho \"$PS1\"\nexit 0\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let all = text(&o);
    assert!(all.contains("r7"), "{all}");
    assert!(all.contains("[it-shell/r7]"), "{all}");
    lab.down();
}

#[test]
fn crash_loops_time_out_and_processes_start_in_root() {
    if !privileged() {
        return;
    }
    let _h = shared();
    // A daemon that dies at once under `restart: always` never gets ready: `up` must give
    // up at its readiness timeout and roll back, not wait forever.
    let bad = Lab::new(
        "it-loop",
        "nodes:\n  a:\n    processes:\n      - { name: bad, cmd: \"sh -c 'echo dying; exit 1'\", restart: always, ready: { tcp: 9, timeout: 1s } }\n",
    );
    let start = Instant::now();
    bad.up_fails(&["not ready after", "dying"]);
    assert!(start.elapsed() < Duration::from_secs(10));
    // One that ends under `restart: never` before its probe passes fails `up` as soon as
    // it ends, with its exit status and log, not at its readiness timeout.
    let early = Lab::new(
        "it-early",
        "nodes:\n  a:\n    processes:\n      - { name: early, cmd: \"sh -c 'echo leaving; exit 3'\", restart: never, ready: { tcp: 9, timeout: 300s } }\n",
    );
    early.up_fails(&["exited with status 3 before it was ready", "leaving"]);
    // Run from a directory that does not exist inside the node: processes start in `/`.
    let lab = Lab::new(
        "it-cwd",
        "nodes:\n  a:\n    processes: [{ name: p, cmd: \"sh -c 'pwd; exec sleep 1000'\" }]\n",
    );
    let cwd = std::env::temp_dir().join("nslab-tests/cwd-only-on-host");
    let _cwd_scratch = Scratch(cwd.clone());
    std::fs::create_dir_all(&cwd).unwrap();
    let o = nslab()
        .current_dir(&cwd)
        .arg("up")
        .arg(&lab.file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // No readiness probe: `up` returns once the process started, so wait for its output.
    wait_for("the process to print its directory", || {
        last_log_line("it-cwd", "a", "p").as_deref() == Some("/")
    });
    lab.down();
}

#[test]
fn env_cwd_and_on_failure_restarts() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "it-env",
        r#"
nodes:
  a:
    env: { SITE: lab }
    processes:
      - { name: show, cmd: "sh -c 'echo $SITE $ROLE $(pwd); exec sleep 1000'", env: { ROLE: web }, cwd: /etc }
      - { name: flaky, cmd: "sh -c 'test -f /run/ok || { touch /run/ok; exit 1; }; exec sleep 1000'", restart: on-failure }
      - { name: clean, cmd: "true", restart: on-failure }
"#,
    );
    lab.up();
    wait_for("`show` to print its environment", || {
        last_log_line("it-env", "a", "show").as_deref() == Some("lab web /etc")
    });
    // on-failure: restarted after exit 1, not after exit 0.
    wait_for("flaky to come back", || {
        let p = &ps_json(&lab)[0]["processes"];
        p[1]["restarts"] == 1
            && p[1]["state"] == "running"
            && p[2]["state"] == "exited"
            && p[2]["restarts"] == 0
    });
    lab.down();
}

#[test]
fn a_restart_first_removes_what_the_old_instance_left_in_its_group() {
    if !privileged() {
        return;
    }
    let _h = shared();
    // A daemon under a shell that stays its parent (what a string `cmd` may give): the pid
    // `nslab ps` shows is the shell's. Killing it must not leave the old daemon behind
    // holding its port or pid file while a second one starts.
    let lab = Lab::new(
        "it-group",
        "nodes:\n  a:\n    processes:\n      - { name: d, cmd: \"sleep 1000 & echo $! > /run/child.pid; wait\", restart: always }\n",
    );
    lab.up();
    let shell = ps_json(&lab)[0]["processes"][0]["pid"].as_i64().unwrap();
    wait_for("the child's pid file", || {
        lab.exec("a", &["test", "-s", "/run/child.pid"])
            .status
            .success()
    });
    let child = out(&lab.exec("a", &["cat", "/run/child.pid"]));
    assert_ne!(child, shell.to_string(), "the shown pid is the shell's");
    assert!(lab.exec("a", &["kill", "-0", &child]).status.success());
    assert!(
        lab.exec("a", &["kill", "-9", &shell.to_string()])
            .status
            .success()
    );
    wait_for("the restart", || {
        let p = &ps_json(&lab)[0]["processes"][0];
        p["restarts"] == 1 && p["state"] == "running"
    });
    // The old child is gone: not running and not a zombie (the init reaped it).
    wait_for("the old child to go", || {
        !lab.exec("a", &["kill", "-0", &child]).status.success()
    });
    lab.down();
}

/// `{node}` and `{lab}` reach what runs: a kind's exec, process argv, env, cwd, ready
/// probe and private directory each get the node's own name.
#[test]
fn placeholders_reach_the_commands_that_run_in_each_node() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "bg-ph",
        r#"kinds:
  k:
    isolation: [net, mnt, pid]
    private: ["/var/lib/bg-{node}"]
    exec: ["sh -c 'echo {node}@{lab} > /run/who'"]
    processes:
      - name: d
        cmd: [sh, -c, 'echo "$WHO $(pwd)" > /run/env-{node}; exec sleep 1000']
        env: { WHO: "{lab}.{node}" }
        cwd: "/var/lib/bg-{node}"
        ready: "test -e /run/env-{node}"
nodes:
  a: { kind: k }
  b: { kind: k }
"#,
    );
    lab.up();
    for n in ["a", "b"] {
        let who = lab.exec(n, &["cat", "/run/who"]);
        assert_eq!(out(&who), format!("{n}@bg-ph"), "{}", text(&who));
        let env = lab.exec(n, &["cat", &format!("/run/env-{n}")]);
        assert_eq!(
            out(&env),
            format!("bg-ph.{n} /var/lib/bg-{n}"),
            "{}",
            text(&env)
        );
    }
    lab.down();
}

/// A file bound straight under `/` works when the host has that path (nslab binds onto
/// it and changes nothing of it), and when the host does not (the node gets a new root,
/// whose upper layer gets the file, never the host's `/`).
#[test]
fn a_file_bound_directly_under_root() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let host_file = std::path::Path::new("/bg-root-file.txt");
    let missing = "/bg-root-missing.txt";
    let _ = std::fs::remove_file(missing);
    std::fs::write(host_file, "").unwrap();
    let src = std::env::temp_dir().join("nslab-tests/bg-root-src.txt");
    let _src_scratch = Scratch(src.clone());
    std::fs::create_dir_all(src.parent().unwrap()).unwrap();
    std::fs::write(&src, "from the lab\n").unwrap();
    let yaml = format!(
        "nodes:\n  a:\n    mounts: [\"{}:{}:ro\"]\n",
        src.display(),
        host_file.display()
    );
    let lab = Lab::new("bg-rootfile", &yaml);
    lab.up();
    let o = lab.exec("a", &["cat", "/bg-root-file.txt"]);
    assert_eq!(out(&o), "from the lab", "{}", text(&o));
    lab.down();
    assert_eq!(std::fs::read_to_string(host_file).unwrap(), "");
    std::fs::remove_file(host_file).unwrap();

    let yaml = format!(
        "nodes:\n  a:\n    mounts: [\"{}:{missing}:ro\"]\n",
        src.display()
    );
    let lab = Lab::new("bg-rootfile", &yaml);
    lab.up();
    let o = lab.exec("a", &["cat", missing]);
    assert_eq!(out(&o), "from the lab", "{}", text(&o));
    assert!(
        !std::path::Path::new(missing).exists(),
        "on the host while up"
    );
    lab.down();
    assert!(
        !std::path::Path::new(missing).exists(),
        "on the host after down"
    );
}

const CGROUP_NS: &str = r#"
nodes:
  lim:
    limits: { memory: 48M, pids: 20, cpu: 0.5 }
    processes: [{ name: idle, cmd: "sleep 100000" }]
  free:
    processes: [{ name: idle, cmd: "sleep 100000" }]
  light:
    isolation: [net]
    processes: [{ name: idle, cmd: "sleep 100000" }]
"#;

/// What the node `lim` of [`CGROUP_NS`] sees of its pids hierarchy, as root: the limit
/// under /sys/fs/cgroup, how many groups are below it there, whether it may write the
/// limit or make a group, and the same for a cgroup filesystem it mounts itself.
const PIDS_VIEW: &str = "P=/sys/fs/cgroup/pids; [ -d $P ] || P=/sys/fs/cgroup
cat $P/pids.max; find $P -mindepth 1 -type d | wc -l
echo 1 > $P/pids.max 2>/dev/null && echo wrote || echo refused
mkdir $P/x 2>/dev/null && echo made || echo refused
mkdir -p /tmp/m
if [ $P = /sys/fs/cgroup ]; then mount -t cgroup2 none /tmp/m; else mount -t cgroup -o pids none /tmp/m; fi
cat /tmp/m/pids.max; find /tmp/m -mindepth 1 -type d | wc -l; umount /tmp/m";

/// The init's pid of a node, from the lab's pid file.
fn init_of(lab: &str, node: &str) -> i32 {
    let record = std::fs::read_to_string(format!("/run/nslab/{lab}.nodes/{node}.pid")).unwrap();
    record.split_whitespace().next().unwrap().parse().unwrap()
}

fn cgroup_ns(pid: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/cgroup"))
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn a_node_sees_its_own_cgroups_as_the_root_and_nothing_of_the_hosts() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let before = host_snapshot();
    // Through the fork server (the default), and through exec'd inits.
    for (name, exec_inits) in [("it-cgns", false), ("it-cgnsx", true)] {
        let lab = Lab::new(name, CGROUP_NS);
        let mut up = nslab();
        up.arg("up").arg(&lab.file);
        if exec_inits {
            up.env("NSLAB_INIT_EXEC", "1");
        }
        let o = up.output().unwrap();
        assert!(o.status.success(), "{name}: {}", text(&o));
        let group = format!("/nslab/lab-{name}/node-lim");
        let (lim, free) = (init_of(name, "lim"), init_of(name, "free"));
        // From the host, the init is in the node's groups...
        let host_view = std::fs::read_to_string(format!("/proc/{lim}/cgroup")).unwrap();
        let ids: Vec<&str> = host_view
            .lines()
            .filter(|l| l.ends_with(&group))
            .map(|l| l.split(':').next().unwrap())
            .collect();
        assert!(!ids.is_empty(), "{name}: {host_view}");
        // ...which inside are its root, for the init and for what `exec` runs there.
        for node in ["lim", "free"] {
            let seen = out(&lab.exec(node, &["cat", "/proc/self/cgroup", "/proc/1/cgroup"]));
            assert!(seen.lines().count() >= 2, "{name}/{node}: {seen}");
            assert!(
                seen.lines().all(|l| l.ends_with(":/")),
                "{name}/{node}: {seen}"
            );
            for id in &ids {
                assert!(seen.contains(&format!("{id}:")), "{name}/{node}: {seen}");
            }
        }
        // Its limits, read-only; no group below its own; nor through a mount of its own.
        let view = out(&lab.exec("lim", &["sh", "-c", PIDS_VIEW]));
        assert_eq!(view, "20\n0\nrefused\nrefused\n20\n0", "{name}");
        let mem = out(&lab.exec("lim", &["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null"]));
        assert_eq!(mem, "50331648", "{name}");
        // Still enforced, for commands run in the node too.
        let fork = lab.exec(
            "lim",
            &["sh", "-c", "for i in $(seq 40); do sleep 1 & done; wait"],
        );
        assert!(
            text(&fork).contains("fork")
                || text(&fork).contains("Resource temporarily unavailable"),
            "{name}: {}",
            text(&fork)
        );
        // Without a group of its own, nothing under /sys/fs/cgroup.
        assert_eq!(
            out(&lab.exec("free", &["ls", "-A", "/sys/fs/cgroup"])),
            "",
            "{name}"
        );
        // A namespace per node; a node with only a network namespace keeps the host's.
        let light = init_of(name, "light");
        let ours = cgroup_ns("self");
        let [l, f, n] = [lim, free, light].map(|p| cgroup_ns(&p.to_string()));
        assert!(l != ours && f != ours && l != f, "{name}: {l} {f} {ours}");
        assert_eq!(n, ours, "{name}: the net-only node");
        lab.down();
        for dir in ["memory", "pids", "cpu", "unified", ""] {
            let g = std::path::Path::new("/sys/fs/cgroup")
                .join(dir)
                .join(&group[1..]);
            assert!(!g.exists(), "{} is left", g.display());
        }
    }
    assert_same_host(&before, &host_snapshot(), "after down");
}
