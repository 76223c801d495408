//! The lab holder: `nslab __holder <lab> <netns dir>`. It makes a user namespace that
//! maps the caller's uid and gid to 0, then mount, network and pid namespaces owned by
//! it, and forks PID 1 of that pid namespace, which stays and reaps. Its own network
//! namespace is what lets the engine add named namespaces at all: in a user namespace
//! without one, `ip netns add` fails switching back to the host's (which the user does
//! not own). Its pid is kept in `<run dir>/<lab>.holder`, locked while read or written.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

use super::RootlessError;
use crate::state::HostContext;

/// A running holder, pinned by its pidfd (a pid alone could be reused).
#[derive(Debug)]
pub struct Holder {
    pub lab: String,
    pub pid: i32,
    pidfd: OwnedFd,
}

impl Holder {
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Kills the holder and with it everything of the lab still running, waits until it
    /// is gone, and forgets its pid. After an orderly `down` nothing is left to kill but
    /// the holder itself.
    pub fn stop(self, host: &HostContext) -> Result<(), RootlessError> {
        let file = HolderFile::lock(host, &self.lab)?;
        crate::sys::pidfd::signal(self.pidfd(), libc::SIGKILL);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        crate::sys::pidfd::wait_exit(vec![self.pidfd()], deadline, |fd| *fd);
        file.remove()
    }
}

/// The running holder of `lab`, or a new one when `may_start`. A recorded holder that is
/// gone took the lab's kernel objects with it, so what is left of the lab's state (its
/// journal and files) is stale and removed first.
pub fn open(
    host: &HostContext,
    lab: &str,
    may_start: bool,
) -> Result<Option<Holder>, RootlessError> {
    crate::state::files::ensure_root(&host.run_dir)?;
    let mut file = HolderFile::lock(host, lab)?;
    if let Some(holder) = file.pid().and_then(|pid| alive(lab, pid)) {
        return Ok(Some(holder));
    }
    if host.lab_dir(lab).exists() {
        crate::apply::forget(host, lab).map_err(|e| RootlessError::Start {
            lab: lab.to_string(),
            why: format!("removing the state its last holder left: {e}"),
            hint: String::new(),
        })?;
    }
    if !may_start {
        file.remove()?;
        return Ok(None);
    }
    let holder = start(host, lab)?;
    file.record(holder.pid)?;
    Ok(Some(holder))
}

/// The holder file, flocked for as long as this value lives.
struct HolderFile {
    file: File,
    path: PathBuf,
}

impl HolderFile {
    fn lock(host: &HostContext, lab: &str) -> Result<HolderFile, RootlessError> {
        crate::model::names::check_lab_name(lab).map_err(crate::state::StateError::BadLabName)?;
        let path = host.run_dir.join(format!("{lab}.holder"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| RootlessError::io(&path, e))?;
        // SAFETY: flock on a descriptor we own; blocks while another command holds it.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(RootlessError::io(&path, std::io::Error::last_os_error()));
        }
        Ok(HolderFile { file, path })
    }

    fn pid(&mut self) -> Option<i32> {
        let mut text = String::new();
        self.file.read_to_string(&mut text).ok()?;
        text.trim().parse().ok()
    }

    fn record(&mut self, pid: i32) -> Result<(), RootlessError> {
        let io = |e| RootlessError::io(&self.path, e);
        self.file.set_len(0).map_err(io)?;
        self.file.rewind().map_err(io)?;
        writeln!(self.file, "{pid}").map_err(io)
    }

    fn remove(self) -> Result<(), RootlessError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RootlessError::io(&self.path, e)),
        }
    }
}

/// The process `pid` if it is still the holder of `lab`: alive, and running `__holder
/// <lab>` (checked after its pidfd is open, so the pid cannot be reused in between).
fn alive(lab: &str, pid: i32) -> Option<Holder> {
    let pidfd = pidfd_open(pid).ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let mut args = cmdline.split(|b| *b == 0).skip(1);
    if args.next()? != b"__holder" || args.next()? != lab.as_bytes() {
        return None;
    }
    // SAFETY: pidfd_send_signal with signal 0 only checks that the process lives.
    let live = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    } == 0;
    live.then(|| Holder {
        lab: lab.to_string(),
        pid,
        pidfd,
    })
}

fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open returns a new descriptor we own, or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Runs `nslab __holder` and waits until its PID 1 says the namespaces are ready.
fn start(host: &HostContext, lab: &str) -> Result<Holder, RootlessError> {
    let fail = |why: String, hint: String| RootlessError::Start {
        lab: lab.to_string(),
        why,
        hint,
    };
    crate::state::files::ensure_dir(&host.netns_dir)?;
    let exe = crate::apply::nodes::nslab_binary().map_err(|e| fail(e.to_string(), "".into()))?;
    let mut child = Command::new(exe)
        .arg("__holder")
        .arg(lab)
        .arg(&host.netns_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| fail(format!("cannot run nslab: {e}"), String::new()))?;
    let mut said = String::new();
    let read = child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut said);
    let _ = child.wait();
    read.map_err(|e| fail(e.to_string(), String::new()))?;
    let pid = said
        .lines()
        .find_map(|l| l.strip_prefix("pid ")?.parse::<i32>().ok());
    if let Some(e) = said.lines().find_map(|l| l.strip_prefix("error: ")) {
        return Err(fail(e.to_string(), userns_hint(&read_sysctls())));
    }
    match pid {
        Some(pid) if said.lines().any(|l| l == "ready") => {
            alive(lab, pid).ok_or_else(|| fail("it exited at once".into(), String::new()))
        }
        _ => Err(fail(
            "it ended without saying it was ready".into(),
            String::new(),
        )),
    }
}

/// The sysctls that decide whether an unprivileged user namespace may be made.
fn read_sysctls() -> [Option<String>; 3] {
    [
        "/proc/sys/user/max_user_namespaces",
        "/proc/sys/kernel/unprivileged_userns_clone",
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
    ]
    .map(|p| {
        std::fs::read_to_string(p)
            .ok()
            .map(|v| v.trim().to_string())
    })
}

/// What to change when a user namespace cannot be made, from the values of
/// [`read_sysctls`] (a missing file is a kernel without that knob).
fn userns_hint(values: &[Option<String>; 3]) -> String {
    let is = |i: usize, v: &str| values[i].as_deref() == Some(v);
    if is(0, "0") {
        "\n  hint: user namespaces are disabled: `sysctl -w user.max_user_namespaces=15000`".into()
    } else if is(1, "0") {
        "\n  hint: unprivileged user namespaces are disabled: `sysctl -w kernel.unprivileged_userns_clone=1`".into()
    } else if is(2, "1") {
        "\n  hint: AppArmor restricts unprivileged user namespaces: give nslab a profile with `userns,` or `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`".into()
    } else {
        String::new()
    }
}

/// The holder's entry point; returns the exit code of the first process (PID 1 never
/// returns).
pub fn main(netns_dir: &Path) -> i32 {
    match unshare_all() {
        Ok(()) => {}
        Err(e) => {
            println!("error: {e}");
            return 1;
        }
    }
    // SAFETY: this process is single-threaded (a fresh exec of nslab).
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => {
            println!("pid {child}");
            0
        }
        Ok(ForkResult::Child) => pid1(netns_dir),
        Err(e) => {
            println!("error: fork: {e}");
            1
        }
    }
}

/// A new session (no terminal's signals reach the lab), then the namespaces.
fn unshare_all() -> Result<(), String> {
    let _ = nix::unistd::setsid();
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| format!("cannot make a user namespace: {e}"))?;
    // Without a subordinate range only the caller's own ids can be mapped, and an
    // unprivileged process may write a gid map only once setgroups is denied.
    let write =
        |path: &str, text: String| std::fs::write(path, text).map_err(|e| format!("{path}: {e}"));
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("0 {uid} 1\n"))?;
    write("/proc/self/gid_map", format!("0 {gid} 1\n"))?;
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWPID)
        .map_err(|e| format!("cannot make the lab's namespaces: {e}"))
}

/// PID 1 of the lab: private mounts, a /proc of the lab's pid namespace (the engine reads
/// its processes there by the pids it forked), a tmpfs as the netns directory; then it
/// reaps every orphan until it is killed.
fn pid1(netns_dir: &Path) -> ! {
    let none: Option<&str> = None;
    let made = (|| -> nix::Result<()> {
        mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)?;
        let quiet = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(Some("proc"), "/proc", Some("proc"), quiet, none)?;
        mount(
            Some("tmpfs"),
            netns_dir,
            Some("tmpfs"),
            quiet,
            Some("mode=755"),
        )?;
        Ok(())
    })();
    if let Err(e) = made {
        println!("error: preparing the lab's mounts: {e}");
        std::process::exit(1);
    }
    println!("ready");
    let _ = std::io::stdout().flush();
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors of this process.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    let _ = std::env::set_current_dir("/");
    reap()
}

/// Waits for SIGCHLD (blocked, so PID 1 gets it without a handler) and reaps.
fn reap() -> ! {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    let _ = set.thread_block();
    loop {
        let _ = set.wait();
        while let Ok(s) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            if s == nix::sys::wait::WaitStatus::StillAlive {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::userns_hint;

    #[test]
    fn the_hint_names_the_knob_that_forbids_user_namespaces() {
        let v =
            |a: &str, b: &str, c: &str| [a, b, c].map(|s| (!s.is_empty()).then(|| s.to_string()));
        assert!(userns_hint(&v("0", "", "")).contains("user.max_user_namespaces"));
        assert!(userns_hint(&v("100", "0", "")).contains("unprivileged_userns_clone"));
        assert!(userns_hint(&v("100", "1", "1")).contains("apparmor"));
        assert_eq!(userns_hint(&v("100", "", "0")), "");
    }
}
