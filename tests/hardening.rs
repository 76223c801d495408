//! What another local user can do to nslab's locks, files and nodes: nothing. Each test
//! drops to uid 65534 in a forked child (no helper program needed, so it runs wherever
//! the suite runs as root) and failed on the code before its fix.

mod support;

use std::ffi::CString;
use std::path::Path;

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Uid, fork, setgid, setgroups, setuid};
use support::*;

/// The unprivileged user the children become.
const NOBODY: u32 = 65534;

/// Runs `f` in a forked child that has become uid and gid 65534 with no groups, and
/// returns its exit code; 100 if it could not drop to that user.
fn as_nobody(f: impl FnOnce() -> i32, keep_caps: bool) -> i32 {
    // SAFETY: the child only changes its ids, runs `f` (open/connect/read system calls)
    // and leaves with `_exit`, never returning into the test harness.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            // SAFETY: a plain prctl on this process.
            let kept = !keep_caps || unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } == 0;
            let dropped = kept
                && setgroups(&[]).is_ok()
                && setgid(Gid::from_raw(NOBODY)).is_ok()
                && setuid(Uid::from_raw(NOBODY)).is_ok();
            let code = if dropped { f() } else { 100 };
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
            WaitStatus::Exited(_, code) => code,
            other => panic!("the child as uid {NOBODY}: {other:?}"),
        },
    }
}

/// [`as_nobody`], keeping the capabilities over the change of user (`PR_SET_KEEPCAPS`)
/// for `f` to choose from.
fn as_nobody_keeping(f: impl FnOnce() -> i32) -> i32 {
    as_nobody(f, true)
}

/// Whether uid 65534 gets a read-only descriptor of `path` (all that `flock` needs).
fn nobody_can_open(path: &Path) -> bool {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let code = as_nobody(
        || {
            // SAFETY: a NUL-terminated path; the descriptor dies with the child.
            let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            i32::from(fd >= 0)
        },
        false,
    );
    assert_ne!(code, 100, "could not become uid {NOBODY}");
    code == 1
}

#[test]
fn no_other_user_can_open_the_host_lock_and_up_and_down_still_work() {
    if !privileged() {
        return;
    }
    let _host = shared();
    let host = nslab::state::HostContext::from_env();
    let lock = nslab::state::host_lock_path(&host);
    assert_ne!(lock.parent(), Some(host.run_dir.as_path()));
    let lab = Lab::new(
        "hd-hostlock",
        "nodes:\n  a:\n    processes: [{ name: s, cmd: \"sleep 1000\" }]\n",
    );
    lab.up();
    let mode = std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(&lock).unwrap());
    assert_eq!(mode & 0o7777, 0o600, "{}", lock.display());
    assert!(
        !nobody_can_open(&lock),
        "uid {NOBODY} opened {}",
        lock.display()
    );
    // The control: the same child does open a file anyone may read.
    assert!(nobody_can_open(Path::new("/etc/hostname")));
    lab.down();
    assert!(!lab.is_up());
}

#[test]
fn no_other_user_can_open_the_vni_lock() {
    if !privileged() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("nslab-hd-vni-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let run = dir.join("run");
    let host = nslab::state::HostContext {
        run_dir: run.clone(),
        netns_dir: dir.join("netns"),
        privileged: true,
        host: Some("ha".into()),
    };
    let t = ok("name: hd-vni
hosts:
  ha: { address: 192.0.2.11 }
  hb: { address: 192.0.2.12 }
nodes: { a: { host: ha }, b: { host: hb } }
links:
  - [a:eth1, b:eth1]
");
    let held = nslab::state::vnis::lock_free(&host, &t).expect("the VNIs are free");
    assert!(
        held.is_some(),
        "a lab with a tunnel here takes the VNI lock"
    );
    let lock = run.join(nslab::state::vnis::VNI_LOCK);
    let mode = std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(&lock).unwrap());
    assert_eq!(mode & 0o7777, 0o600, "{}", lock.display());
    // The run directory itself must not be what is locked: anyone may open it.
    assert!(
        nobody_can_open(&dir),
        "the control: uid {NOBODY} opens a 0755 directory"
    );
    assert!(
        !nobody_can_open(&lock),
        "uid {NOBODY} opened {}",
        lock.display()
    );
    drop(held);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lab_files_are_roots_alone_but_a_nodes_hosts_file_is_readable() {
    if !privileged() {
        return;
    }
    let _host = shared();
    let lab = Lab::new(
        "hd-modes",
        "nodes:\n  a:\n    env: { TOKEN: s3cret }\n    processes: [{ name: s, cmd: \"sleep 1000\" }]\n",
    );
    lab.up();
    let run = nslab::state::HostContext::from_env().run_dir;
    for file in [
        "hd-modes.yaml",
        "hd-modes.plan.json",
        "hd-modes.json",
        "hd-modes.nodes/a.pid",
    ] {
        let path = run.join(file);
        let mode = std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(&path).unwrap());
        assert_eq!(mode & 0o7777, 0o600, "{}", path.display());
        assert!(
            !nobody_can_open(&path),
            "uid {NOBODY} read {}",
            path.display()
        );
    }
    // A node's processes may run as any user, and all read its /etc/hosts.
    let o = lab.exec("a", &["stat", "-c", "%a", "/etc/hosts"]);
    assert_eq!(text(&o).trim(), "644", "{}", text(&o));
    lab.down();
}

/// This process's open-file limit (nix's `resource` feature is not enabled).
fn nofile() -> libc::rlimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills a local struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim
}

/// `up` of `lab` as a caller whose soft open-file limit is 4000 (neither the usual
/// shell's 1024 nor nslab's raised one), with `extra` in its environment.
fn up_at_4000(lab: &Lab, extra: &[(&str, &str)]) {
    use std::os::unix::process::CommandExt;
    let mut cmd = nslab();
    cmd.arg("up").arg(&lab.file).envs(extra.iter().copied());
    let lim = libc::rlimit {
        rlim_cur: 4000,
        rlim_max: nofile().rlim_max,
    };
    // SAFETY: only setrlimit, on a copied struct, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_nodes_processes_get_their_own_open_file_limit_not_the_callers_nor_nslabs() {
    if !privileged() {
        return;
    }
    let _host = shared();
    let hard = nofile().rlim_max;
    // Otherwise nslab raises nothing and the test could not fail.
    assert!(hard > 4000, "the hard open-file limit is {hard}");
    let yaml = "nodes:\n  a:\n    processes: [{ name: s, cmd: \"sh -c 'ulimit -Sn; exec sleep 1000'\" }]\n";
    // Through the fork server (the default), and through an exec'd init.
    for (name, extra) in [
        ("hd-nofile", vec![]),
        ("hd-nofx", vec![("NSLAB_INIT_EXEC", "1")]),
    ] {
        let lab = Lab::new(name, yaml);
        up_at_4000(&lab, &extra);
        let mut seen = String::new();
        wait_for("the process's limit in its log", || {
            let o = nslab()
                .args(["logs", "--lab", name, "a", "s"])
                .output()
                .unwrap();
            // The log's last line, after the init's "starting" line.
            let out = String::from_utf8_lossy(&o.stdout).into_owned();
            seen = out.lines().last().unwrap_or_default().to_string();
            seen.parse::<u64>().is_ok()
        });
        // The node's own default (as a systemd service's), whatever the caller had.
        assert_eq!(seen, "1024", "{name}");
        lab.down();
    }
}

/// The capabilities `CAP_DAC_OVERRIDE` and `CAP_DAC_READ_SEARCH` in the effective and
/// permitted sets (and nothing else): what a child that became another user keeps, with
/// `PR_SET_KEEPCAPS`, to reach a file its mode would refuse. nix has no capset.
fn keep_only_dac_override() -> bool {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    // CAP_DAC_OVERRIDE (1) and CAP_DAC_READ_SEARCH (2), from linux/capability.h.
    let dac: u32 = (1 << 1) | (1 << 2);
    let mut hdr = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [
        Data {
            effective: dac,
            permitted: dac,
            inheritable: 0,
        },
        Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        },
    ];
    // SAFETY: the header and two data structs the version-3 capset reads.
    unsafe { libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) == 0 }
}

#[test]
fn a_nodes_init_answers_no_other_user_even_one_past_the_sockets_mode() {
    if !privileged() {
        return;
    }
    let _host = shared();
    let lab = Lab::new(
        "hd-peer",
        "nodes:\n  a:\n    processes: [{ name: s, cmd: \"sleep 1000\" }]\n",
    );
    lab.up();
    let host = nslab::state::HostContext::from_env();
    let sock = nslab::node::NodePaths::of_lab(&host, "hd-peer").control("a");
    // 0: connected and closed unanswered; 1: answered; 2: could not connect.
    let ask = |keep_root: bool| {
        let sock = sock.clone();
        let ask = move || {
            use std::io::{Read, Write};
            let Ok(mut s) = std::os::unix::net::UnixStream::connect(&sock) else {
                return 2;
            };
            let _ = s.write_all(b"status\n");
            let mut reply = Vec::new();
            let _ = s.read_to_end(&mut reply);
            i32::from(!reply.is_empty())
        };
        if keep_root {
            // The control: root (the init's own user) in the same kind of child.
            // SAFETY: the child connects, reads and `_exit`s.
            match unsafe { fork() }.unwrap() {
                ForkResult::Child => unsafe { libc::_exit(ask()) },
                ForkResult::Parent { child } => match waitpid(child, None).unwrap() {
                    WaitStatus::Exited(_, code) => code,
                    other => panic!("{other:?}"),
                },
            }
        } else {
            // SAFETY: keeping capabilities over setuid, in the child only.
            as_nobody_keeping(|| if keep_only_dac_override() { ask() } else { 101 })
        }
    };
    assert_eq!(ask(true), 1, "root is answered");
    assert_eq!(
        ask(false),
        0,
        "uid {NOBODY} past the socket's mode is not answered"
    );
    // And nslab itself still is.
    let o = lab.exec("a", &["true"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = nslab().args(["ps", "--lab", "hd-peer"]).output().unwrap();
    assert!(
        o.status.success() && text(&o).contains("running"),
        "{}",
        text(&o)
    );
    lab.down();
}
