//! Rootless labs, run by an unprivileged user: the built binary under `setpriv
//! --reuid=65534`, with `XDG_RUNTIME_DIR` a directory the test makes for that user. The
//! lab's processes are found from the holder's pid (the tree below it), never by name.
//! The test itself needs root to become that user and to compare the host.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{text, wait_for};

const NOBODY: u32 = 65534;

/// A chain r1 - r2 - r3 with static routes, and a process on r3 that stays.
const CHAIN: &str = "routing: static
nodes:
  r1: { loopback: auto }
  r2: { loopback: auto }
  r3:
    loopback: auto
    processes: [{ name: idle, cmd: \"sleep 100000\" }]
links:
  - [r1:eth1, r2:eth1]
  - [r2:eth2, r3:eth1]
tests:
  - reach: { from: r1, to: r3 }
  - path: { from: r1, to: r3, hops: [r2, r3] }
";

/// The unprivileged user's side: its runtime directory and its topology files. Dropped,
/// it kills what is left of its labs (by the holders' pids) and removes both.
struct User {
    dir: PathBuf,
    bin: PathBuf,
}

impl User {
    fn new(tag: &str) -> User {
        let dir = std::env::temp_dir().join(format!("nslab-rl-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("run")).unwrap();
        std::fs::create_dir_all(dir.join("files")).unwrap();
        for (d, mode) in [("", 0o755), ("files", 0o755), ("run", 0o700)] {
            let p = dir.join(d);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            std::os::unix::fs::chown(&p, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        User {
            bin: binary_for_nobody(&dir),
            dir,
        }
    }

    fn file(&self, lab: &str, yaml: &str) -> PathBuf {
        let f = self.dir.join("files").join(format!("{lab}.yaml"));
        std::fs::write(&f, format!("name: {lab}\n{yaml}")).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        f
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.join("run/nslab")
    }

    fn nslab(&self, args: &[&str]) -> Output {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&self.bin)
            .args(args)
            .env("XDG_RUNTIME_DIR", self.dir.join("run"))
            .env_remove("NSLAB_RUN_DIR")
            .current_dir(self.dir.join("files"))
            .output()
            .unwrap()
    }

    /// `nslab ARGS` as the user, started in the cgroups of `deleg` (as a shell in a
    /// delegated systemd scope would be).
    fn nslab_in(&self, deleg: &Delegated, args: &[&str]) -> Output {
        let dirs: Vec<String> = deleg
            .dirs
            .iter()
            .map(|(_, d)| d.display().to_string())
            .collect();
        Command::new("sh")
            .args([
                "-c",
                "for d in $DELEGATED; do echo $$ > \"$d/cgroup.procs\" || exit 99; done; exec \"$@\"",
                "sh",
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
            ])
            .arg(&self.bin)
            .args(args)
            .env("DELEGATED", dirs.join(" "))
            .env("XDG_RUNTIME_DIR", self.dir.join("run"))
            .env_remove("NSLAB_RUN_DIR")
            .current_dir(self.dir.join("files"))
            .output()
            .unwrap()
    }

    /// `nslab ARGS` as the user, with `input` on its stdin.
    fn nslab_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&self.bin)
            .args(args)
            .env("XDG_RUNTIME_DIR", self.dir.join("run"))
            .env_remove("NSLAB_RUN_DIR")
            .current_dir(self.dir.join("files"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.nslab(args);
        assert!(o.status.success(), "nslab {args:?}: {}", text(&o));
        text(&o)
    }

    fn holder(&self, lab: &str) -> Option<i32> {
        let text = std::fs::read_to_string(self.run_dir().join(format!("{lab}.holder"))).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Whether anything of `lab` is on record in the user's state directory.
    fn has_state(&self, lab: &str) -> bool {
        std::fs::read_dir(self.run_dir())
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{lab}."))
            })
    }
}

impl Drop for User {
    fn drop(&mut self) {
        for e in std::fs::read_dir(self.run_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(lab) = name.strip_suffix(".holder")
                && let Some(pid) = self.holder(lab)
            {
                // SAFETY: kill on a pid we recorded; the holder's death ends the lab.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                wait_for("the holder to go", || gone(pid));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A cgroup of the user's own in each v1 hierarchy `limits:` use (memory, cpu, pids), as
/// systemd's `Delegate=yes` gives one: a child of this test's cgroup there, chowned to the
/// user. Dropped, it is removed (the processes moved into it are gone by then).
struct Delegated {
    dirs: Vec<(&'static str, PathBuf)>,
}

impl Delegated {
    /// `None` (a skip; a failure under CI) on a host where a controller is not v1.
    fn make(tag: &str) -> Option<Delegated> {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let mut made = Delegated { dirs: Vec::new() };
        for ctrl in ["memory", "cpu", "pids"] {
            let mount = mounts.lines().find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() > 3 && f[2] == "cgroup" && f[3].split(',').any(|o| o == ctrl))
                    .then(|| (f[1].to_string(), f[3].to_string()))
            });
            let Some((mount, opts)) = mount else {
                assert_ne!(
                    std::env::var("CI").as_deref(),
                    Ok("true"),
                    "the delegation test needs `{ctrl}` as a cgroup v1 controller"
                );
                eprintln!("skipping: `{ctrl}` is not a cgroup v1 controller here");
                return None;
            };
            let path = own
                .lines()
                .find_map(|l| {
                    let mut f = l.splitn(3, ':');
                    let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
                    (!ctrls.is_empty() && ctrls.split(',').all(|c| opts.split(',').any(|o| o == c)))
                        .then(|| path.trim_start_matches('/').to_string())
                })
                .expect("this process is in a group of every hierarchy");
            let dir = Path::new(&mount)
                .join(path)
                .join(format!("nslab-deleg-{tag}-{}", std::process::id()));
            std::fs::create_dir(&dir).unwrap();
            made.dirs.push((ctrl, dir.clone()));
            // The group and its control files, as systemd chowns a delegated one.
            std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
            for f in std::fs::read_dir(&dir).unwrap().flatten() {
                std::os::unix::fs::chown(f.path(), Some(NOBODY), Some(NOBODY)).unwrap();
            }
        }
        Some(made)
    }

    fn dir(&self, ctrl: &str) -> &Path {
        &self.dirs.iter().find(|(c, _)| *c == ctrl).unwrap().1
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        for (_, dir) in &self.dirs {
            // The shells moved in exit right away; wait for the kernel to see it.
            wait_for("the delegated cgroup to empty", || {
                std::fs::remove_dir(dir).is_ok() || !dir.exists()
            });
        }
    }
}

/// The built binary, or a copy the unprivileged user can run when the build directory is
/// closed to it.
fn binary_for_nobody(dir: &Path) -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_nslab"));
    let can = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "test",
            "-x",
        ])
        .arg(&bin)
        .status()
        .unwrap()
        .success();
    if can {
        return bin;
    }
    let copy = dir.join("nslab");
    std::fs::copy(&bin, &copy).unwrap();
    copy
}

/// Whether a process has exited (a zombie waiting for the host's init counts as gone).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// `pid` and every process below it.
fn tree(pid: i32) -> Vec<i32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        for task in std::fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            out.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<i32>().ok()),
            );
        }
        i += 1;
    }
    out
}

fn uid_of(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Nothing named after `lab` in /run/nslab or /run/netns.
fn nothing_in_run(lab: &str) {
    for dir in ["/run/nslab", "/run/netns"] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                !name.starts_with(&format!("{lab}."))
                    && !name.starts_with(&format!("nslab.{lab}.")),
                "{dir}/{name} belongs to the rootless lab `{lab}`"
            );
        }
    }
}

#[test]
fn a_user_brings_a_chain_up_execs_checks_applies_and_takes_it_down() {
    if !support::privileged() {
        return;
    }
    let _host = support::exclusive();
    let before = support::host_snapshot();
    let user = User::new("chain");
    let lab = "rl-chain";
    let file = user.file(lab, CHAIN);
    user.ok(&["up", &file.display().to_string()]);
    let holder = user.holder(lab).expect("the holder is recorded");
    assert_eq!(uid_of(holder), Some(NOBODY), "the holder runs as the user");
    let procs = tree(holder);
    assert!(
        procs.len() >= 3,
        "the node inits and r3's process run below the holder: {procs:?}"
    );
    assert!(procs.iter().all(|p| uid_of(*p).is_none_or(|u| u == NOBODY)));
    // `up` waited for its fork servers: none was handed to the holder's PID 1 to end
    // later (the cause of a flaky failure below, when one ended during `apply`).
    let servers: Vec<&i32> = procs
        .iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).nth(1) == Some(b"__zygote"))
        })
        .collect();
    assert!(servers.is_empty(), "fork servers outlived up: {servers:?}");
    nothing_in_run(lab);

    let ping = user.nslab(&["exec", "r1", "--", "ping", "-c1", "-W2", "r3"]);
    assert!(ping.status.success(), "{}", text(&ping));
    let status = user.ok(&["status", lab]);
    assert!(status.contains("r3") && status.contains("eth2"), "{status}");
    let checks = user.ok(&["test", "--lab", lab]);
    assert!(checks.contains("2 passed, 0 failed"), "{checks}");

    // A fourth node behind r3: only it and its link are added, r3's process stays.
    let bigger = CHAIN
        .replace("nodes:\n", "nodes:\n  r4: { loopback: auto }\n")
        .replace(
            "  - [r2:eth2, r3:eth1]\n",
            "  - [r2:eth2, r3:eth1]\n  - [r3:eth2, r4:eth1]\n",
        );
    let file = user.file(lab, &bigger);
    user.ok(&["apply", &file.display().to_string()]);
    let ping = user.nslab(&["exec", "r1", "--", "ping", "-c1", "-W2", "r4"]);
    assert!(ping.status.success(), "{}", text(&ping));
    assert!(
        procs.iter().all(|p| !gone(*p)),
        "apply left the running processes alone"
    );

    user.ok(&["down", lab]);
    wait_for("the holder and the lab's processes to go", || {
        procs.iter().all(|p| gone(*p))
    });
    assert!(!user.has_state(lab), "down leaves no state of the lab");
    nothing_in_run(lab);
    drop(user);
    support::assert_same_host(&before, &support::host_snapshot(), "a rootless lab");
}

#[test]
fn kill_9_of_the_holder_or_of_every_lab_process_takes_the_lab_and_up_works_again() {
    if !support::privileged() {
        return;
    }
    let _host = support::exclusive();
    let before = support::host_snapshot();
    let user = User::new("kill");
    let lab = "rl-kill";
    let file = user.file(lab, CHAIN).display().to_string();
    for round in ["the holder", "every process of the lab"] {
        user.ok(&["up", &file]);
        let holder = user.holder(lab).expect("the holder is recorded");
        let procs = tree(holder);
        assert!(procs.len() >= 3, "{procs:?}");
        let victims = if round == "the holder" {
            vec![holder]
        } else {
            procs.clone()
        };
        for p in victims {
            // SAFETY: kill on pids of this lab, found from its holder.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        wait_for("every process of the lab to go", || {
            procs.iter().all(|p| gone(*p))
        });
        let status = user.nslab(&["status", lab]);
        assert!(
            !status.status.success(),
            "{round}: a lab without holder is not up"
        );
        assert!(
            !user.has_state(lab),
            "{round}: the stale files went with the next command"
        );
        nothing_in_run(lab);
        support::assert_same_host(&before, &support::host_snapshot(), round);
    }
    user.ok(&["up", &file]);
    let checks = user.ok(&["test", "--lab", lab]);
    assert!(checks.contains("0 failed"), "{checks}");
    user.ok(&["down", lab]);
    assert!(!user.has_state(lab));
    drop(user);
    support::assert_same_host(&before, &support::host_snapshot(), "up again and down");
}

#[test]
fn two_rootless_labs_and_a_root_lab_of_the_same_name_run_side_by_side() {
    if !support::privileged() {
        return;
    }
    let _host = support::shared();
    let user = User::new("side");
    let (a, b) = ("rl-side-a", "rl-side-b");
    let fa = user.file(a, CHAIN).display().to_string();
    let fb = user.file(b, CHAIN).display().to_string();
    // Root's lab has a cgroup, where a rootless lab of this user (whose own cgroup is a
    // hierarchy's root here) must never look.
    let limited = CHAIN.replace(
        "r1: { loopback: auto }",
        "r1: { loopback: auto, limits: { pids: 64 } }",
    );
    let root = support::Lab::new(a, &limited);
    root.up();
    let root_group = Path::new("/sys/fs/cgroup/pids/nslab")
        .join(format!("lab-{a}"))
        .join("node-r1");
    let has_group = root_group.exists();
    assert!(
        has_group || !Path::new("/sys/fs/cgroup/pids/cgroup.procs").exists(),
        "root's lab has its group at {}",
        root_group.display()
    );
    user.ok(&["up", &fa]);
    user.ok(&["up", &fb]);
    assert_ne!(user.holder(a), user.holder(b), "one holder per lab");
    for lab in [a, b] {
        let ping = user.nslab(&["exec", "--lab", lab, "r1", "--", "ping", "-c1", "-W2", "r3"]);
        assert!(ping.status.success(), "{lab}: {}", text(&ping));
    }
    assert!(
        root.ping("r1", "r3"),
        "the root lab of the same name works too"
    );
    let listed = user.ok(&["ls"]);
    assert!(listed.contains(a) && listed.contains(b), "{listed}");
    user.ok(&["down", a]);
    assert!(root.is_up(), "the user's down leaves root's lab alone");
    assert_eq!(root_group.exists(), has_group, "{}", root_group.display());
    assert!(root.ping("r1", "r3"));
    user.ok(&["down", b]);
    root.down();
}

#[test]
fn what_needs_root_is_a_located_error_before_anything_starts() {
    if !support::privileged() {
        return;
    }
    // Shared: the subordinate range test gives the user a range for a while.
    let _host = support::shared();
    let user = User::new("refuse");
    let lab = "rl-refuse";
    let file = user.file(
        lab,
        "nodes:\n  a:\n    limits: { pids: 64 }\n  b:\n    private: [{ path: /var/x, owner: daemon }]\n",
    );
    let o = user.nslab(&["up", &file.display().to_string()]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains(&format!("{lab}.yaml:4:")), "{out}");
    assert!(out.contains(&format!("{lab}.yaml:6:")), "{out}");
    assert!(
        out.contains("`limits:`") && out.contains("owned by `daemon`"),
        "{out}"
    );
    // Why only the user's own uid is mapped: no subordinate range (this host has none
    // for it), named with the files.
    assert!(
        out.contains("/etc/subuid has no range for `nobody` (uid 65534)"),
        "{out}"
    );
    assert!(user.holder(lab).is_none(), "no holder was started");
    assert!(!user.has_state(lab));
    // The limits' error names the cgroup that is not delegated, and how to get one.
    // (The user's cgroup is this test's: the hierarchy's root, or one owned by root.)
    assert!(
        out.contains("/sys/fs/cgroup/pids")
            && (out.contains("not writable by you") || out.contains("the root cgroup")),
        "{out}"
    );
    assert!(out.contains("chown -R USER"), "{out}");

    // This machine's share of a lab spread over hosts needs the host's own network.
    let spread = user.file(
        "rl-spread",
        "hosts:\n  ha: { address: 192.0.2.11 }\n  hb: { address: 192.0.2.12 }\nnodes:\n  a: { host: ha }\n  b: { host: hb }\nlinks: [[a:eth1, b:eth1]]\n",
    );
    let spread = spread.display().to_string();
    let o = user.nslab(&["--host", "ha", "up", &spread]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("rl-spread.yaml:2:1"),
        "located at `hosts:`: {out}"
    );
    assert!(
        out.contains("`--host ha`") && out.contains("as root"),
        "{out}"
    );
    assert!(user.holder("rl-spread").is_none(), "no holder was started");
    // Without --host the whole lab runs here.
    user.ok(&["up", &spread]);
    user.ok(&["exec", "a", "--", "true"]);
    user.ok(&["down", "rl-spread"]);
    assert!(!user.has_state("rl-spread"));
}

#[test]
fn limits_work_in_a_delegated_cgroup_and_their_groups_go_with_down_or_the_holder() {
    if !support::privileged() {
        return;
    }
    let _host = support::shared();
    let Some(deleg) = Delegated::make("limits") else {
        return;
    };
    let user = User::new("cg");
    let lab = "rl-cg";
    let file = user.file(
        lab,
        "nodes:\n  a:\n    limits: { memory: 64M, pids: 32, cpu: 0.5 }\n    processes: [{ name: idle, cmd: \"sleep 100000\" }]\n  b: {}\nlinks: [[a:eth1, b:eth1]]\n",
    )
    .display()
    .to_string();
    let group = |ctrl: &str| deleg.dir(ctrl).join(format!("nslab/lab-{lab}/node-a"));
    let read = |ctrl: &str, f: &str| {
        std::fs::read_to_string(group(ctrl).join(f))
            .unwrap_or_else(|e| panic!("{ctrl}/{f}: {e}"))
            .trim()
            .to_string()
    };
    let o = user.nslab_in(&deleg, &["up", &file]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(read("memory", "memory.limit_in_bytes"), "67108864");
    assert_eq!(read("pids", "pids.max"), "32");
    assert_eq!(read("cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
    // The node's process is in its groups, and so is what `exec` runs there.
    let holder = user.holder(lab).expect("the holder is recorded");
    let idle = tree(holder)
        .into_iter()
        .find(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.starts_with(b"sleep\x00100000"))
        })
        .expect("the node's process runs below the holder");
    let membership = std::fs::read_to_string(format!("/proc/{idle}/cgroup")).unwrap();
    // Inside, the node's cgroup namespace (made in the user namespace) roots each at `/`.
    let inside = |args: &[&str]| user.ok(&[&["exec", "a", "--"], args].concat());
    let exec = inside(&["cat", "/proc/self/cgroup", "/proc/1/cgroup"]);
    for ctrl in ["memory", "cpu", "pids"] {
        assert!(
            read(ctrl, "cgroup.procs").contains(&idle.to_string()),
            "{ctrl}: {}",
            read(ctrl, "cgroup.procs")
        );
        let line = format!(":{ctrl}:/");
        let l = membership
            .lines()
            .find(|l| l.contains(&line))
            .unwrap_or_else(|| panic!("{membership}"));
        assert!(l.ends_with(&format!("/nslab/lab-{lab}/node-a")), "{l}");
        let seen: Vec<&str> = exec.lines().filter(|l| l.contains(&line)).collect();
        assert_eq!(seen.len(), 2, "exec and the init: {exec}");
        assert!(seen.iter().all(|l| l.ends_with(&line)), "{exec}");
    }
    // Its own limits under /sys/fs/cgroup, read-only; the user's delegated groups and
    // the host's tree above them are not there.
    let view = inside(&[
        "sh",
        "-c",
        "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes; \
         echo 99 > /sys/fs/cgroup/pids/pids.max || echo refused; ls /sys/fs/cgroup/pids",
    ]);
    assert!(view.starts_with("32\n67108864\nrefused\n"), "{view}");
    assert!(!view.contains("nslab"), "{view}");
    assert_eq!(read("pids", "pids.max"), "32");
    // Down from outside the delegated cgroups: the groups are the holder's to find.
    user.ok(&["down", lab]);
    for (ctrl, dir) in &deleg.dirs {
        assert!(!dir.join("nslab").exists(), "{ctrl}: down left the groups");
    }

    // Killed, the holder leaves its (empty) groups; the next command on the lab removes them.
    let o = user.nslab_in(&deleg, &["up", &file]);
    assert!(o.status.success(), "{}", text(&o));
    let holder = user.holder(lab).expect("the holder is recorded");
    let procs = tree(holder);
    // SAFETY: kill on the holder's pid, recorded by the lab.
    unsafe { libc::kill(holder, libc::SIGKILL) };
    wait_for("the lab's processes to go", || {
        procs.iter().all(|p| gone(*p))
    });
    assert!(
        group("pids").exists(),
        "the kernel keeps a group its tasks left"
    );
    let o = user.nslab(&["down", lab]);
    assert!(!o.status.success(), "the lab is not up: {}", text(&o));
    for (ctrl, dir) in &deleg.dirs {
        assert!(
            !dir.join("nslab").exists(),
            "{ctrl}: the stale groups are left"
        );
    }
    assert!(!user.has_state(lab));
}

/// The Rust API without root, as a crate's `cargo test` run by an ordinary user uses it:
/// this test runs itself again as uid 65534 (the same test binary, this test only), and
/// that run brings a lab up through `nslab::Lab`.
#[test]
fn the_rust_api_works_without_root() {
    if std::env::var_os("NSLAB_TEST_AS_USER").is_some() {
        return api_as_the_user();
    }
    if !support::privileged() {
        return;
    }
    let _host = support::shared();
    let user = User::new("api");
    let me = std::env::current_exe().unwrap();
    let test_bin = {
        let copy = user.dir.join("files/rootless-test");
        std::fs::copy(&me, &copy).unwrap();
        copy
    };
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&test_bin)
        .args(["--exact", "the_rust_api_works_without_root", "--nocapture"])
        .env("NSLAB_TEST_AS_USER", "1")
        .env("NSLAB_BIN", &user.bin)
        .env("XDG_RUNTIME_DIR", user.dir.join("run"))
        .env_remove("NSLAB_RUN_DIR")
        .current_dir(user.dir.join("files"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the run as the user failed: {}",
        text(&o)
    );
    assert!(text(&o).contains("1 passed"), "{}", text(&o));
    assert!(!user.has_state("rl-api"), "the dropped lab left state");
    assert!(user.holder("rl-api").is_none());
    assert!(
        guards_of("rl-api").is_empty(),
        "the dropped lab's guard is left"
    );
}

/// What a crate's test does, unprivileged: up, exec, reach, checks, a link down and up
/// again, an impairment set, refused and cleared, and down when the value is dropped.
fn api_as_the_user() {
    // SAFETY: geteuid has no preconditions.
    assert_ne!(unsafe { libc::geteuid() }, 0, "this part runs as the user");
    let lab = nslab::Lab::from_yaml_str(&format!("name: rl-api\n{CHAIN}"))
        .unwrap()
        .up()
        .unwrap();
    assert!(lab.reach("r1", "r3").unwrap());
    let out = lab.exec("r3", &["cat", "/proc/self/uid_map"]).unwrap();
    assert!(out.status.success());
    let map = String::from_utf8_lossy(&out.stdout);
    assert!(
        map.split_whitespace().eq(["0", "65534", "1"]),
        "the node runs in the lab's user namespace: {map}"
    );
    assert!(
        lab.checks().iter().all(|c| c.passed()),
        "{:?}",
        lab.checks()
    );
    let first = lab.topology().checks[0].name.clone();
    assert!(
        lab.check(&first).unwrap().passed(),
        "check `{first}` by name"
    );
    lab.set_link("r2:eth2", false, false).unwrap();
    assert!(
        !lab.reach("r1", "r3").unwrap(),
        "a link down cuts the chain"
    );
    lab.set_link("r2:eth2", true, false).unwrap();
    wait_for("r3 to answer again", || lab.reach("r1", "r3").unwrap());

    // impair: a rate is a tbf qdisc; netem (absent from some kernels) is named when
    // missing, and the rate stays; clearing removes it.
    let qdisc = || {
        let o = lab
            .exec("r1", &["tc", "qdisc", "show", "dev", "eth1"])
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let rate = nslab::model::Impair {
        rate: Some(8_000_000),
        ..Default::default()
    };
    lab.impair("r1:eth1", Some(rate), false).unwrap();
    let q = qdisc();
    assert!(q.contains("tbf") && q.contains("rate 8Mbit"), "{q}");
    let delay = nslab::model::Impair {
        delay: Some(std::time::Duration::from_millis(20)),
        ..Default::default()
    };
    let netem = Path::new("/sys/module/sch_netem").exists();
    match lab.impair("r1:eth1", Some(delay), false) {
        Ok(()) => assert!(netem && qdisc().contains("netem"), "{}", qdisc()),
        Err(e) => {
            assert!(!netem, "netem is there, yet: {e}");
            let e = e.to_string();
            assert!(
                e.contains("no `netem` qdisc") && e.contains("sch_netem"),
                "{e}"
            );
            assert!(
                qdisc().contains("tbf"),
                "the refused impairment kept the rate"
            );
        }
    }
    lab.impair("r1:eth1", None, false).unwrap();
    let q = qdisc();
    assert!(!q.contains("tbf") && !q.contains("netem"), "{q}");
    drop(lab);
}

/// Ctrl-C of a crate's `cargo test` sends SIGINT to every process of the terminal's
/// foreground group, the test binary among them, which dies without running Drop: the
/// lab's guard (a process in a session of its own) takes the lab down instead. The test
/// binary runs again as uid 65534 in a process group of its own, brings a lab up through
/// `nslab::Lab`, says so and waits; the group gets SIGINT as a terminal sends it.
#[test]
fn ctrl_c_of_a_users_cargo_test_takes_its_lab_down() {
    if std::env::var_os("NSLAB_TEST_AS_USER").is_some_and(|v| v == "ctrl-c") {
        let _lab = nslab::Lab::from_yaml_str(&format!("name: rl-ctrlc\n{CHAIN}"))
            .unwrap()
            .up()
            .unwrap();
        println!("lab is up");
        std::thread::sleep(std::time::Duration::from_secs(600));
        return;
    }
    if !support::privileged() {
        return;
    }
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let _host = support::shared();
    let user = User::new("ctrlc");
    let test_bin = user.dir.join("files/rootless-test");
    std::fs::copy(std::env::current_exe().unwrap(), &test_bin).unwrap();
    let mut run = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&test_bin)
        .args(["--exact", "ctrl_c_of_a_users_cargo_test_takes_its_lab_down"])
        .args(["--nocapture"])
        .env("NSLAB_TEST_AS_USER", "ctrl-c")
        .env("NSLAB_BIN", &user.bin)
        .env("XDG_RUNTIME_DIR", user.dir.join("run"))
        .env_remove("NSLAB_RUN_DIR")
        .current_dir(user.dir.join("files"))
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let group = run.id() as i32;
    let mut said = String::new();
    let mut out = std::io::BufReader::new(run.stdout.take().unwrap());
    while !said.contains("lab is up") {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        said.push_str(&line);
    }
    let holder = user.holder("rl-ctrlc");
    let lab_pids = holder.map(tree).unwrap_or_default();
    // SAFETY: kill on the process group this test made.
    unsafe { libc::kill(-group, libc::SIGINT) };
    let status = run.wait().unwrap();
    assert!(said.contains("lab is up"), "the run as the user: {said}");
    let holder = holder.expect("the lab has a holder");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
    wait_for("the guard to take the lab down", || {
        gone(holder) && !user.has_state("rl-ctrlc")
    });
    assert!(lab_pids.len() > 3, "the lab's processes: {lab_pids:?}");
    assert!(lab_pids.iter().all(|p| gone(*p)), "{lab_pids:?}");
    let guards = guards_of("rl-ctrlc");
    assert!(guards.is_empty(), "guards left: {guards:?}");
}

/// Processes running `nslab __guard LAB`.
fn guards_of(lab: &str) -> Vec<i32> {
    let want = format!("__guard\0{lab}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&want) && !gone(*p))
        })
        .collect()
}

/// A signal to a user's `nslab test FILE` while its checks run: the lab is torn down and
/// the command exits 128 + N, as as root. SIGTERM and SIGHUP sent to the process, SIGINT
/// sent to it alone (`kill -INT PID`, a supervisor's stop) or to its process group (as
/// Ctrl-C reaches it and the command it runs inside the lab).
#[test]
fn signals_to_a_users_nslab_test_tear_the_lab_down_and_exit_128_plus_n() {
    if !support::privileged() {
        return;
    }
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let _host = support::shared();
    let user = User::new("sig");
    let file = user.file(
        "rl-sig",
        "nodes: { a: {}, b: {} }\nlinks: [[a, b]]\ntests:\n  - reach: { from: a, to: b }\n  - cmd: { node: a, run: \"sleep 60\", timeout: 90s }\n",
    );
    for (sig, group) in [
        (libc::SIGTERM, false),
        (libc::SIGHUP, false),
        (libc::SIGINT, false),
        (libc::SIGINT, true),
    ] {
        let mut run = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&user.bin)
            .arg("test")
            .arg(&file)
            .env("XDG_RUNTIME_DIR", user.dir.join("run"))
            .env_remove("NSLAB_RUN_DIR")
            .current_dir(user.dir.join("files"))
            .process_group(0)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(run.stdout.take().unwrap());
        let mut said = String::new();
        while !said.contains("PASS  1") && out.read_line(&mut said).unwrap() > 0 {}
        let holder = user.holder("rl-sig");
        // The second check runs (below the command, which joined the lab): the signal
        // interrupts it, not the gap before it.
        {
            let sleeping = || {
                tree(run.id() as i32).iter().any(|p| {
                    std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c == "sleep\n")
                })
            };
            wait_for("the check's sleep", sleeping);
        }
        let target = if group {
            -(run.id() as i32)
        } else {
            run.id() as i32
        };
        // SAFETY: kill on the process (group) this test started.
        unsafe { libc::kill(target, sig) };
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut rest);
        let status = run.wait().unwrap();
        let what = format!("signal {sig} (group: {group}): {said}{rest}");
        assert!(said.contains("PASS  1"), "{what}");
        assert_eq!(status.code(), Some(128 + sig), "{what}");
        assert!(rest.contains("INTR"), "{what}");
        let holder = holder.expect("the lab had a holder");
        wait_for("the lab to go", || {
            gone(holder) && !user.has_state("rl-sig")
        });
    }
}

/// Lines added to /etc/subuid and /etc/subgid for the user while the value lives; the
/// files are put back byte for byte on drop.
struct SubIds {
    saved: Vec<(&'static str, Vec<u8>)>,
}

impl SubIds {
    fn grant() -> SubIds {
        let mut saved = Vec::new();
        for path in ["/etc/subuid", "/etc/subgid"] {
            let before = std::fs::read(path).unwrap_or_default();
            let mut after = before.clone();
            if !after.is_empty() && !after.ends_with(b"\n") {
                after.push(b'\n');
            }
            after.extend_from_slice(b"nobody:300000:65536\n");
            std::fs::write(path, after).unwrap();
            saved.push((path, before));
        }
        SubIds { saved }
    }
}

impl Drop for SubIds {
    fn drop(&mut self) {
        for (path, before) in &self.saved {
            std::fs::write(path, before).unwrap();
        }
    }
}

#[test]
fn with_a_subordinate_range_other_users_exist_in_the_lab_and_frr_runs() {
    if !support::privileged() {
        return;
    }
    let helpers = ["/usr/bin/newuidmap", "/usr/bin/newgidmap"];
    if !support::installed(&helpers, "newuidmap/newgidmap (package uidmap)") {
        return;
    }
    // Exclusive: while the range exists, the user's other tests would see it.
    let _host = support::exclusive();
    let _range = SubIds::grant();
    let user = User::new("subid");
    let lab = "rl-subid";
    let file = user.file(
        lab,
        "nodes:\n  a:\n    private: [{ path: /var/x, owner: daemon }]\n",
    );
    user.ok(&["up", &file.display().to_string()]);
    let o = user.nslab(&["exec", "a", "--", "stat", "-c", "%U", "/var/x"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "daemon",
        "{}",
        text(&o)
    );
    let o = user.nslab(&[
        "exec",
        "a",
        "--",
        "setpriv",
        "--reuid=1",
        "--regid=1",
        "--clear-groups",
        "id",
        "-u",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "1",
        "{}",
        text(&o)
    );
    user.ok(&["down", lab]);

    if !support::installed(&["/usr/lib/frr/zebra"], "FRR, for the test's FRR part,") {
        return;
    }
    // FRR's daemons drop to the `frr` user (`-u frr`): OSPF converges, reroutes and
    // comes back, as the example's checks say.
    let ring = support::Lab::from_example("rl-ospf", "ospf-ring.yaml");
    let o = user.nslab(&["test", &ring.file.display().to_string()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains(" 0 failed"), "{}", text(&o));
    assert!(!user.has_state("rl-ospf"));
}

/// Every command on a running lab, run by the user: shell (a script on stdin), ps, logs,
/// link down and up, node stop and start, capture and events, each with its effect.
#[test]
fn every_command_on_a_running_lab_works_without_root() {
    if !support::privileged() {
        return;
    }
    let _host = support::shared();
    let user = User::new("cmds");
    let lab = "rl-cmds";
    let chatty = CHAIN.replace(
        "processes: [{ name: idle, cmd: \"sleep 100000\" }]",
        "processes: [{ name: idle, cmd: \"sh -c 'echo said-by-idle; exec sleep 100000'\" }]",
    );
    let file = user.file(lab, &chatty);
    user.ok(&["up", &file.display().to_string()]);
    let reach = || {
        user.nslab(&["exec", "r1", "--", "ping", "-c1", "-W1", "r3"])
            .status
            .success()
    };
    assert!(reach());

    // shell: a script on stdin runs in the node.
    let o = user.nslab_stdin(&["shell", "--lab", lab, "r3"], "hostname\necho shell-ran\n");
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("r3") && out.contains("shell-ran"),
        "{}",
        text(&o)
    );

    // ps and logs.
    let ps = user.ok(&["ps", "--lab", lab]);
    assert!(ps.contains("idle") && ps.contains("r3"), "{ps}");
    wait_for("the process's output in its log", || {
        user.ok(&["logs", "--lab", lab, "r3", "idle"])
            .contains("said-by-idle")
    });

    // link down cuts the chain, up mends it.
    user.ok(&["link", "down", "--lab", lab, "r2:eth2"]);
    assert!(!reach(), "a link down cuts r1 from r3");
    user.ok(&["link", "up", "--lab", lab, "r2:eth2"]);
    wait_for("r3 to answer again", reach);

    // node stop and start: the process goes and comes back.
    let running = |ps: &str| {
        ps.lines()
            .any(|l| l.contains("idle") && l.contains("running"))
    };
    assert!(running(&ps), "{ps}");
    user.ok(&["node", "stop", "--lab", lab, "r3"]);
    let ps = user.ok(&["ps", "--lab", lab, "r3"]);
    assert!(!running(&ps), "stopped: {ps}");
    user.ok(&["node", "start", "--lab", lab, "r3"]);
    let ps = user.ok(&["ps", "--lab", lab, "r3"]);
    assert!(running(&ps), "started again: {ps}");

    // capture: a pcap with the pings it saw, written by the user.
    let pcap = user.dir.join("files/r1.pcap");
    let mut capture = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&user.bin)
        .args(["capture", "--lab", lab, "r1:eth1", "-c", "2", "-w"])
        .arg(&pcap)
        .env("XDG_RUNTIME_DIR", user.dir.join("run"))
        .env_remove("NSLAB_RUN_DIR")
        .current_dir(user.dir.join("files"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the capture to see two packets", || {
        let _ = reach();
        capture.try_wait().unwrap().is_some()
    });
    assert!(capture.wait().unwrap().success());
    let bytes = std::fs::read(&pcap).unwrap();
    assert!(bytes.len() > 24 + 2 * 16, "{} bytes", bytes.len());
    let magic = u32::from_le_bytes(bytes[..4].try_into().unwrap());
    assert!(
        [0xa1b2c3d4, 0xa1b23c4d].contains(&magic),
        "a pcap's magic number: {magic:x}"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&pcap).unwrap().uid(), NOBODY);

    // events: what the commands above did.
    let events = user.ok(&["events", "--lab", lab]);
    for what in ["r2:eth2", "r3", "r1:eth1"] {
        assert!(events.contains(what), "{what}: {events}");
    }
    user.ok(&["down", lab]);
    assert!(!user.has_state(lab));
}

/// `--host` with a file of a lab on one machine: refused as it is without `--rootless`
/// (the file declares no `hosts:`, so there is no share to pick), not with the refusal of
/// a multi-host share, and before any holder or state exists. No root needed.
#[test]
fn host_with_a_single_host_file_is_refused_as_without_rootless() {
    let dir = std::env::temp_dir().join(format!("nslab-rl-onehost-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("run")).unwrap();
    std::fs::set_permissions(dir.join("run"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let file = dir.join("rl-onehost.yaml");
    std::fs::write(&file, "name: rl-onehost\nnodes: { a: {} }\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_nslab"))
        .args(["--rootless", "--host", "ha", "up"])
        .arg(&file)
        .env("XDG_RUNTIME_DIR", dir.join("run"))
        .output()
        .unwrap();
    let out = text(&o);
    let left: Vec<_> = std::fs::read_dir(dir.join("run"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(
        out.contains(
            "--host ha: lab `rl-onehost` declares no `hosts:`; drop --host to run it all here"
        ),
        "{out}"
    );
    assert!(!out.contains("VXLAN"), "{out}");
    assert!(left.is_empty(), "left in the run directory: {left:?}");
}

/// Root running `--rootless` obeys the holder file in the state directory (it joins the
/// namespaces of the pid named there): a directory another user can write, such as that
/// user's `XDG_RUNTIME_DIR` passed on by `sudo -E`, is refused before anything is read.
#[test]
fn root_never_runs_rootless_from_a_state_directory_another_user_owns() {
    if !support::privileged() {
        return;
    }
    let user = User::new("trust");
    let root_own = std::env::temp_dir().join(format!("nslab-rl-rootown-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root_own);
    std::fs::create_dir_all(&root_own).unwrap();
    std::fs::set_permissions(&root_own, std::fs::Permissions::from_mode(0o700)).unwrap();
    let as_root = |xdg: &Path| {
        Command::new(env!("CARGO_BIN_EXE_nslab"))
            .args(["--rootless", "ls"])
            .env("XDG_RUNTIME_DIR", xdg)
            .env_remove("NSLAB_RUN_DIR")
            .output()
            .unwrap()
    };
    let theirs = as_root(&user.dir.join("run"));
    let made_there = user.run_dir().exists();
    let own = as_root(&root_own);
    std::fs::remove_dir_all(&root_own).unwrap();
    let out = text(&theirs);
    assert_eq!(theirs.status.code(), Some(1), "{out}");
    assert!(
        out.contains("as root, the rootless state directory")
            && out.contains(&format!("is owned by uid {NOBODY}")),
        "{out}"
    );
    assert!(!made_there, "nothing is made in the other user's directory");
    assert!(own.status.success(), "{}", text(&own));
}

/// The process attributes a rootless lab may give (a higher nice value and
/// `oom_score_adj`, lower limits, a CPU, the idle I/O class) are set, read from the host's
/// /proc; one only root may give (a negative nice value) is a located error before
/// anything starts.
#[test]
fn a_rootless_lab_sets_the_attributes_a_user_may_and_refuses_the_others() {
    if !support::privileged() {
        return;
    }
    let _host = support::shared();
    let user = User::new("attrs");
    let lab = "rl-attrs";
    let file = user.file(
        lab,
        "nodes:\n  a:\n    nice: 4\n    oom_score_adj: 250\n    cpus: 0\n    processes:\n      - { name: p, cmd: sleep 1011, ionice: idle, rlimits: { nofile: { soft: 512, hard: 1024 } } }\n",
    );
    user.ok(&["up", &file.display().to_string()]);
    let holder = user.holder(lab).expect("the holder is recorded");
    let mut pid = None;
    wait_for("sleep 1011 to run below the holder", || {
        pid = tree(holder).into_iter().find(|p| {
            std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == b"sleep\x001011\x00")
        });
        pid.is_some()
    });
    let pid = pid.unwrap();
    let read = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap();
    let limits = read("limits");
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        nofile.split_whitespace().collect::<Vec<_>>()[3..5],
        ["512", "1024"],
        "{nofile}"
    );
    let stat = read("stat");
    let nice = stat.rsplit_once(") ").unwrap().1.split_whitespace().nth(16);
    assert_eq!(nice, Some("4"));
    assert_eq!(read("oom_score_adj").trim(), "250");
    assert!(
        read("status").contains("Cpus_allowed_list:\t0\n"),
        "{}",
        read("status")
    );
    // SAFETY: ioprio_get(IOPRIO_WHO_PROCESS, pid) reads another process's priority.
    let io = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, pid) };
    assert_eq!(io, 3 << 13, "the idle class");
    user.ok(&["down", lab]);
    nothing_in_run(lab);

    let refused = user.file(
        "rl-attrs2",
        "nodes:\n  a:\n    processes:\n      - { name: p, cmd: sleep 1, nice: -1 }\n",
    );
    let o = user.nslab(&["up", &refused.display().to_string()]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("rl-attrs2.yaml:5:40"), "{out}");
    assert!(
        out.contains(
            "process `p` asks for `nice: -1` (CAP_SYS_NICE), which a rootless lab cannot give"
        ),
        "{out}"
    );
    assert!(user.holder("rl-attrs2").is_none(), "no holder was started");
}

/// `nslab up` as the user, with every step slowed so that it can be killed halfway, in a
/// process group of its own.
fn slow_up(user: &User, file: &str) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&user.bin)
        .args(["up", file])
        .env("XDG_RUNTIME_DIR", user.dir.join("run"))
        .env("NSLAB_TEST_STEP_DELAY_MS", "150")
        .env_remove("NSLAB_RUN_DIR")
        .current_dir(user.dir.join("files"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap()
}

/// The `nslab up` processes in the pid namespace of the lab whose PID 1 is `holder`.
fn ups_in_lab(holder: i32) -> Vec<i32> {
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    let lab = ns(&holder.to_string());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| lab.is_some() && ns(&p.to_string()) == lab)
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).nth(1) == Some(b"up"))
        })
        .collect()
}

/// The names of the files in the user's state directory.
fn state_files(user: &User) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(user.run_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// `up` killed with SIGKILL halfway, either with the command it runs inside the lab (a
/// terminal's process group, a CI job's timeout) or alone (`kill -9 PID` of the `nslab
/// up` the user started): the inside one dies with it, the holder keeps what was made,
/// and `down` by the same user removes it all, the holder too, leaving nothing in the
/// user's state directory and the host as it was.
#[test]
fn an_up_killed_halfway_is_taken_down_by_the_same_user_and_leaves_nothing() {
    if !support::privileged() {
        return;
    }
    let _host = support::exclusive();
    let before = support::host_snapshot();
    let user = User::new("upkill");
    let lab = "rl-upkill";
    let file = user.file(lab, CHAIN).display().to_string();
    let journal = user.run_dir().join(format!("{lab}.journal"));
    for round in ["the process group", "the up process alone"] {
        let mut up = slow_up(&user, &file);
        // Halfway: namespaces on record, the wiring not done (133 steps of 150 ms).
        wait_for("up to have made part of the lab", || {
            std::fs::read_to_string(&journal).is_ok_and(|j| j.lines().count() >= 8)
        });
        let pid = up.id() as i32;
        // SAFETY: kill on the process group (or the process) this test started.
        unsafe {
            libc::kill(
                if round == "the process group" {
                    -pid
                } else {
                    pid
                },
                libc::SIGKILL,
            )
        };
        up.wait().unwrap();
        let holder = user.holder(lab).expect("the holder outlives the up");
        assert!(!gone(holder), "{round}: the holder keeps the half-made lab");
        // The up inside the lab (in its pid namespace, a child of the killed one's)
        // dies with it: nothing finishes the lab unseen.
        wait_for("the up inside the lab to die with the one outside", || {
            ups_in_lab(holder).is_empty()
        });
        // Cut short, not finished unseen.
        let o = user.nslab(&["status", lab]);
        assert!(
            !o.status.success(),
            "{round}: the lab looks whole: {}",
            text(&o)
        );
        let procs = tree(holder);
        let o = user.nslab(&["down", lab]);
        assert!(o.status.success(), "{round}: {}", text(&o));
        wait_for("the holder and the lab's processes to go", || {
            procs.iter().all(|p| gone(*p))
        });
        assert_eq!(
            state_files(&user),
            Vec::<String>::new(),
            "{round}: left in the user's state directory"
        );
        nothing_in_run(lab);
        support::assert_same_host(&before, &support::host_snapshot(), round);
    }
    // The next up is an up on a fresh machine.
    user.ok(&["up", &file]);
    user.ok(&["down", lab]);
    assert_eq!(state_files(&user), Vec::<String>::new());
    drop(user);
    support::assert_same_host(&before, &support::host_snapshot(), "up again and down");
}

/// `nslab test FILE --junit --json` run by the user, on a lab with a bridge: the lab comes
/// up in its holder, the checks run (pings across the bridge among them), the reports are
/// the user's files, and the lab, its holder and its state
/// are gone afterwards; a failing check fails the run and is a `<failure>` in the report.
#[test]
fn a_user_runs_the_files_checks_with_junit_and_json_reports() {
    if !support::privileged() {
        return;
    }
    let _host = support::shared();
    let user = User::new("junit");
    let lab = "rl-junit";
    // The chain, and a LAN behind r3: a bridge (in the lab's fabric namespace, inside
    // the user namespace) that r3, h1 and h2 share.
    let lan = CHAIN
        .replace(
            "nodes:\n",
            "bridges: { lan: {} }\nnodes:\n  h1: {}\n  h2: {}\n",
        )
        .replace(
            "  - [r2:eth2, r3:eth1]\n",
            "  - [r2:eth2, r3:eth1]\n  - [r3:eth2, lan]\n  - [h1:eth0, lan]\n  - [h2:eth0, lan]\n",
        )
        .replace(
            "tests:\n",
            "tests:\n  - reach: { from: h1, to: [h2, r3] }\n",
        );
    let file = user.file(lab, &lan).display().to_string();
    let junit = user.dir.join("files/report.xml");
    let junit_arg = junit.display().to_string();
    let o = user.nslab(&["test", &file, "--json", "--junit", &junit_arg]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&o)));
    assert_eq!((&v["passed"], &v["failed"]), (&3.into(), &0.into()), "{v}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"tests="3" failures="0" errors="0""#),
        "{xml}"
    );
    assert_eq!(xml.matches("<testcase ").count(), 3, "{xml}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&junit).unwrap().uid(), NOBODY);
    assert!(user.holder(lab).is_none(), "the holder went with the lab");
    assert_eq!(state_files(&user), Vec::<String>::new());
    nothing_in_run(lab);

    // A check that cannot pass: r1 never reaches an address no node has.
    let failing = lan.replace(
        "tests:\n",
        "tests:\n  - reach: { from: r1, to: 10.254.254.254, name: nowhere, timeout: 1s }\n",
    );
    let file = user.file(lab, &failing).display().to_string();
    let o = user.nslab(&["test", &file, "--junit", &junit_arg]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"tests="4" failures="1" errors="0""#),
        "{xml}"
    );
    let case = xml
        .split("<testcase ")
        .find(|c| c.starts_with("name=\"nowhere\""))
        .unwrap_or_else(|| panic!("{xml}"));
    assert!(case.contains("<failure"), "{case}");
    assert!(user.holder(lab).is_none());
    assert_eq!(state_files(&user), Vec::<String>::new());
}

/// A kernel that refuses the user a user namespace: `up` says which setting to change,
/// before anything of the lab exists. Made real without touching the host: in a user
/// namespace of the test's own (root in it, as `--rootless` runs), whose
/// `user.max_user_namespaces` is 0, so its own holder cannot make one.
#[test]
fn without_user_namespaces_up_names_the_setting_and_leaves_nothing() {
    if !support::privileged() {
        return;
    }
    let _host = support::shared();
    let dir = std::env::temp_dir().join(format!("nslab-rl-nouserns-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("run")).unwrap();
    std::fs::set_permissions(dir.join("run"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let file = dir.join("rl-nouserns.yaml");
    std::fs::write(&file, "name: rl-nouserns\nnodes: { a: {} }\n").unwrap();
    let o = Command::new("unshare")
        .args(["--user", "--map-root-user", "--", "sh", "-c"])
        .arg("echo 0 > /proc/sys/user/max_user_namespaces && exec \"$@\"")
        .args(["sh", env!("CARGO_BIN_EXE_nslab"), "--rootless", "up"])
        .arg(&file)
        .env("XDG_RUNTIME_DIR", dir.join("run"))
        .env_remove("NSLAB_RUN_DIR")
        .output()
        .unwrap();
    let left: Vec<String> = std::fs::read_dir(dir.join("run/nslab"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("rl-nouserns"), "names the lab: {out}");
    assert!(
        out.contains("cannot make a user namespace"),
        "says what failed: {out}"
    );
    assert!(
        out.contains("sysctl -w user.max_user_namespaces="),
        "names the setting: {out}"
    );
    assert_eq!(left, Vec::<String>::new(), "left in the state directory");
}

/// A user with a subordinate range but no `newuidmap` (package uidmap not installed):
/// a lab that needs other users is refused before anything starts, naming the missing
/// helper and the package. The helper is hidden in a mount namespace of the test's own
/// (a bind mount of /dev/null over it), so the host keeps its copy.
#[test]
fn a_range_without_newuidmap_is_refused_naming_the_missing_helper() {
    if !support::privileged() {
        return;
    }
    if !support::installed(&["/usr/bin/newuidmap"], "newuidmap (package uidmap)") {
        return;
    }
    // Exclusive: while the range exists, the user's other tests would see it.
    let _host = support::exclusive();
    let _range = SubIds::grant();
    let user = User::new("nomap");
    let lab = "rl-nomap";
    let file = user.file(
        lab,
        "nodes:\n  a:\n    private: [{ path: /var/x, owner: daemon }]\n",
    );
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg("mount --bind /dev/null /usr/bin/newuidmap && exec \"$@\"")
        .args([
            "sh",
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ])
        .arg(&user.bin)
        .arg("up")
        .arg(&file)
        .env("XDG_RUNTIME_DIR", user.dir.join("run"))
        .env_remove("NSLAB_RUN_DIR")
        .current_dir(user.dir.join("files"))
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(out.contains(&format!("{lab}.yaml:4:")), "{out}");
    assert!(
        out.contains("you have a range in /etc/subuid and /etc/subgid, but newuidmap is not installed (Debian package uidmap"),
        "{out}"
    );
    assert!(user.holder(lab).is_none(), "no holder was started");
    assert_eq!(state_files(&user), Vec::<String>::new());
    // With the helper there, the same user and file come up: the range is mapped.
    let o = user.nslab(&["up", &file.display().to_string()]);
    assert!(o.status.success(), "{}", text(&o));
    user.ok(&["down", lab]);
    assert_eq!(state_files(&user), Vec::<String>::new());
}

/// The pid of the process below `holder` whose command line is `cmdline` (NUL-separated).
fn pid_of(holder: i32, cmdline: &[u8]) -> Option<i32> {
    tree(holder)
        .into_iter()
        .find(|p| std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == cmdline))
}

/// `apply` of edits to a running rootless lab beyond an addition: a node and its link
/// removed and a process changed (retired and started again, the other processes and
/// inits kept), then a change that fails halfway rolled back, leaving the lab as it was.
#[test]
fn a_users_apply_removes_a_node_changes_a_process_and_rolls_back_a_failed_change() {
    if !support::privileged() {
        return;
    }
    let _host = support::shared();
    let user = User::new("apply");
    let lab = "rl-apply";
    let four = CHAIN
        .replace("nodes:\n", "nodes:\n  r4: { loopback: auto }\n")
        .replace(
            "  - [r2:eth2, r3:eth1]\n",
            "  - [r2:eth2, r3:eth1]\n  - [r3:eth2, r4:eth1]\n",
        );
    let file = user.file(lab, &four).display().to_string();
    user.ok(&["up", &file]);
    let holder = user.holder(lab).expect("the holder is recorded");
    let inits = |h: i32| -> Vec<(String, i32)> {
        let mut v: Vec<(String, i32)> = tree(h)
            .into_iter()
            .filter_map(|p| {
                let c = std::fs::read(format!("/proc/{p}/cmdline")).ok()?;
                let args: Vec<String> = c
                    .split(|b| *b == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                if args.get(1).map(String::as_str) != Some("__init") {
                    return None;
                }
                Some((args.iter().rev().find(|a| !a.is_empty())?.clone(), p))
            })
            .collect();
        v.sort();
        v
    };
    let before = inits(holder);
    assert_eq!(before.len(), 4, "one init per node: {before:?}");
    let idle = pid_of(holder, b"sleep\x00100000\x00").expect("r3's process runs");

    // r4 and its link go; r3's process changes.
    let edited = CHAIN.replace("sleep 100000", "sleep 100001");
    let file = user.file(lab, &edited).display().to_string();
    user.ok(&["apply", &file]);
    let after = inits(holder);
    let kept: Vec<_> = before
        .iter()
        .filter(|(n, _)| !n.ends_with("/r4"))
        .cloned()
        .collect();
    assert_eq!(after, kept, "r4's init went, the others stayed");
    assert!(gone(idle), "the changed process was retired");
    let new_idle = pid_of(holder, b"sleep\x00100001\x00").expect("the changed process runs");
    let o = user.nslab(&["exec", "r4", "--", "true"]);
    assert!(!o.status.success(), "r4 is gone: {}", text(&o));
    let status = user.ok(&["status", lab]);
    assert!(!status.contains("r4"), "{status}");
    let o = user.nslab(&["exec", "r3", "--", "ip", "link", "show", "eth2"]);
    assert!(!o.status.success(), "r3's link to r4 is gone: {}", text(&o));
    let ping = user.nslab(&["exec", "r1", "--", "ping", "-c1", "-W2", "r3"]);
    assert!(ping.status.success(), "{}", text(&ping));

    // A change that fails at its second step is rolled back: r4 does not come, and the
    // lab runs on as it was.
    let file = user
        .file(lab, &four.replace("sleep 100000", "sleep 100001"))
        .display()
        .to_string();
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&user.bin)
        .args(["apply", &file])
        .env("XDG_RUNTIME_DIR", user.dir.join("run"))
        .env("NSLAB_TEST_FAIL_AT_STEP", "2")
        .env_remove("NSLAB_RUN_DIR")
        .current_dir(user.dir.join("files"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("rolled back"), "{}", text(&o));
    assert_eq!(
        inits(holder),
        after,
        "the failed change left the inits as they were"
    );
    assert!(!gone(new_idle), "the failed change left r3's process alone");
    assert_eq!(user.ok(&["status", lab]), status);
    let events = user.ok(&["events", "--lab", lab]);
    assert!(events.contains("apply-failed"), "{events}");
    user.ok(&["down", lab]);
    assert_eq!(state_files(&user), Vec::<String>::new());
}
