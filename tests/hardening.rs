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
fn as_nobody(f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only changes its ids, runs `f` (open/connect/read system calls)
    // and leaves with `_exit`, never returning into the test harness.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let dropped = setgroups(&[]).is_ok()
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

/// Whether uid 65534 gets a read-only descriptor of `path` (all that `flock` needs).
fn nobody_can_open(path: &Path) -> bool {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let code = as_nobody(|| {
        // SAFETY: a NUL-terminated path; the descriptor dies with the child.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        i32::from(fd >= 0)
    });
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
    for file in ["hd-modes.yaml", "hd-modes.plan.json", "hd-modes.json"] {
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
