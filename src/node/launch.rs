//! Starting a node's init: reading its configuration, entering the node's namespaces,
//! and the fork that makes the init, recorded in its pid file before it may do anything.
//!
//! Two ways share this: an exec'd `nslab __init -` (a shim) and the fork server, which
//! joins each node's namespaces itself and makes the init with no shim in between (see
//! `zygote`). Either way the init is made by one clone into its new namespaces: an
//! unshare, then a fork, needs a second fork for the pid namespace (the unshare applies
//! to children only), and would leave the fork server in the node's namespaces.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};

use super::config::NodeConfig;
use super::enter::PidRecord;
use super::sys::{err, last};

/// Reads the node's configuration: `-` is stdin, anything else a file.
pub fn read_config(config: &str) -> Result<NodeConfig, String> {
    if config == "-" {
        return config_from(std::io::stdin());
    }
    parse(std::fs::read(config))
}

/// Reads the node's configuration from `r` to its end.
pub fn config_from(mut r: impl Read) -> Result<NodeConfig, String> {
    let mut buf = Vec::new();
    parse(r.read_to_end(&mut buf).map(|_| buf))
}

fn parse(read: std::io::Result<Vec<u8>>) -> Result<NodeConfig, String> {
    read.map_err(|e| e.to_string())
        .and_then(|d| serde_json::from_slice(&d).map_err(|e| e.to_string()))
        .map_err(|e| format!("reading the node's configuration: {e}"))
}

/// The namespaces the init gets of its own, as clone flags.
fn new_namespaces(cfg: &NodeConfig) -> libc::c_int {
    [
        (cfg.start.uts, libc::CLONE_NEWUTS),
        (cfg.start.mnt, libc::CLONE_NEWNS),
        (cfg.start.ipc, libc::CLONE_NEWIPC),
        (cfg.start.pid, libc::CLONE_NEWPID),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .fold(0, |flags, (_, f)| flags | f)
}

/// Joins the node's network namespace and the mount namespace the node's is copied from:
/// the lab's template, which is the host's without the netns directory (see
/// `node::template`), or without one the caller's own.
pub fn join(cfg: &NodeConfig) -> Result<(), String> {
    let netns = File::open(&cfg.netns).map_err(|e| err(&cfg.start.netns, e))?;
    let template = match (&cfg.mount_template, cfg.start.mnt) {
        (Some(at), true) => Some(File::open(at).map_err(|e| err(&at.display().to_string(), e))?),
        _ => None,
    };
    // SAFETY: plain syscalls on descriptors we own, while single-threaded.
    unsafe {
        if let Some(mnt) = &template
            && libc::setns(mnt.as_raw_fd(), libc::CLONE_NEWNS) != 0
        {
            return Err(last("setns into the lab's mount template"));
        }
        if libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
            return Err(last("setns"));
        }
    }
    Ok(())
}

/// Puts process `pid` (the init, still waiting) into the node's cgroups.
fn join_cgroups(cfg: &NodeConfig, pid: i32) -> Result<(), String> {
    let pid = pid.to_string();
    for procs in &cfg.cgroups {
        std::fs::write(procs, &pid).map_err(|e| err(&procs.display().to_string(), e))?;
    }
    Ok(())
}

/// Makes the init in its new namespaces ([`fork_into`]), puts it in its cgroups and
/// records its pid and start time, and only then lets it go on as `child`. The init
/// waits: its mounts (a tmpfs on /run, a new /proc) would hide the pid file, and `down`
/// must find every init that ever ran. Errors and the init's pid go to `out`, before the
/// init is let go; why a waiting init gives up goes to `report` (its stderr to be).
/// Returns the init's pid once it was let go.
pub fn launch(
    cfg: NodeConfig,
    out: &mut dyn Write,
    report: RawFd,
    child: impl FnOnce(NodeConfig),
) -> Option<libc::pid_t> {
    let mut pipe = [0; 2];
    // SAFETY: pipe2 fills two fds we own from here on.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        let _ = writeln!(out, "error: pipe: {}", std::io::Error::last_os_error());
        return None;
    }
    match fork_into(new_namespaces(&cfg)) {
        -1 => {
            let e = std::io::Error::last_os_error();
            let _ = writeln!(out, "error: clone into the node's new namespaces: {e}");
            // SAFETY: our own pipe ends.
            unsafe {
                libc::close(pipe[0]);
                libc::close(pipe[1]);
            }
            None
        }
        0 => {
            let mut b = [0u8; 1];
            // SAFETY: our own pipe ends.
            let (n, errno) = unsafe {
                libc::close(pipe[1]);
                let n = libc::read(pipe[0], b.as_mut_ptr() as *mut libc::c_void, 1);
                let errno = std::io::Error::last_os_error();
                libc::close(pipe[0]);
                (n, errno)
            };
            if n != 1 || b[0] != b'g' {
                // The init could not be recorded: do nothing at all.
                say(
                    report,
                    &format!("init: handover read returned {n} ({errno}), byte {}", b[0]),
                );
                std::process::exit(3);
            }
            child(cfg);
            // `child` does not return (the init's loop ends in exit).
            say(report, "init: the init's loop returned");
            std::process::exit(4)
        }
        pid => {
            // Recorded before anything else can go wrong, so `down` finds the init.
            let recorded = join_cgroups(&cfg, pid).and_then(|()| {
                let start = super::enter::start_time(pid).unwrap_or(0);
                let own = new_namespaces(&cfg) | libc::CLONE_NEWNET;
                let line = PidRecord::line(pid, start, cfg.start.grace_ms(), own);
                write_pid_file(&cfg.pid_file, &line)
                    .map_err(|e| err(&cfg.pid_file.display().to_string(), e))
            });
            // Our line goes out whole and before the init may write its own: the init
            // shares the pipe, and a `ready` written between the pieces of a `pid N`
            // (a formatted write is several write(2)s) reached nslab as `pid ready`,
            // `N`, and the node never got ready.
            let line = match &recorded {
                Ok(()) => format!("pid {pid}\n"),
                Err(e) => format!("error: {e}\n"),
            };
            let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
            let go: &[u8] = if recorded.is_ok() { b"g" } else { b"x" };
            // SAFETY: our own pipe ends.
            unsafe {
                libc::close(pipe[0]);
                libc::write(pipe[1], go.as_ptr() as *const libc::c_void, 1);
                libc::close(pipe[1]);
            }
            recorded.ok().map(|()| pid)
        }
    }
}

/// Writes the init's pid file: its owner's alone (0600), as the lab's other files, and
/// never through a link at its name.
fn write_pid_file(path: &std::path::Path, line: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?
        .write_all(line.as_bytes())
}

/// Writes `line` to `fd` (a starting init's stderr, read by nslab on a failure).
pub fn say(fd: RawFd, line: &str) {
    let line = format!("{line}\n");
    // SAFETY: a write from our own buffer.
    unsafe { libc::write(fd, line.as_ptr() as *const libc::c_void, line.len()) };
}

/// fork(2) into new namespaces (`flags`, CLONE_NEW*): a clone without a stack, which
/// copies the address space as fork does. Only for a single-threaded caller: no lock can
/// be held then, and the C library's fork handlers (nslab registers none) are not needed.
/// The C library's record of the thread's id stays the parent's; glibc 2.34 and later
/// signal and identify the calling thread by asking the kernel.
fn fork_into(flags: libc::c_int) -> libc::pid_t {
    // SAFETY: see above; the raw clone returns 0 in the child and its pid in the parent.
    unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        ) as libc::pid_t
    }
}
