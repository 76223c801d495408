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
use std::os::fd::RawFd;

use super::config::NodeConfig;
use super::enter::PidRecord;
use super::sys::err;
use crate::sys::child::SingleThreaded;

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
    use nix::sched::{CloneFlags, setns};
    if let Some(mnt) = &template {
        setns(mnt, CloneFlags::CLONE_NEWNS).map_err(|e| {
            err(
                "setns into the lab's mount template",
                std::io::Error::from(e),
            )
        })?;
    }
    setns(&netns, CloneFlags::CLONE_NEWNET).map_err(|e| err("setns", std::io::Error::from(e)))?;
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

/// Makes the init in its new namespaces ([`SingleThreaded::clone_into`]), puts it in its cgroups and
/// records its pid and start time, and only then lets it go on as `child`. The init
/// waits: its mounts (a tmpfs on /run, a new /proc) would hide the pid file, and `down`
/// must find every init that ever ran. Errors and the init's pid go to `out`, before the
/// init is let go; why a waiting init gives up goes to `report` (its stderr to be).
/// Returns the init's pid once it was let go.
pub fn launch(
    one: &SingleThreaded,
    cfg: NodeConfig,
    out: &mut dyn Write,
    report: RawFd,
    child: impl FnOnce(NodeConfig),
) -> Option<libc::pid_t> {
    let (handover, go) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(ends) => ends,
        Err(e) => {
            let _ = writeln!(out, "error: pipe: {}", std::io::Error::from(e));
            return None;
        }
    };
    match one.clone_into(new_namespaces(&cfg)) {
        Err(e) => {
            let e = std::io::Error::from(e);
            let _ = writeln!(out, "error: clone into the node's new namespaces: {e}");
            None
        }
        Ok(None) => {
            drop(go);
            let mut b = [0u8; 1];
            let got = nix::unistd::read(&handover, &mut b);
            drop(handover);
            if got != Ok(1) || b[0] != b'g' {
                // The init could not be recorded: do nothing at all.
                let got = got.map_err(std::io::Error::from);
                say(
                    report,
                    &format!("init: handover read returned {got:?}, byte {}", b[0]),
                );
                std::process::exit(3);
            }
            child(cfg);
            // `child` does not return (the init's loop ends in exit).
            say(report, "init: the init's loop returned");
            std::process::exit(4)
        }
        Ok(Some(pid)) => {
            let pid = pid.as_raw();
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
            drop(handover);
            let byte: &[u8] = if recorded.is_ok() { b"g" } else { b"x" };
            let _ = nix::unistd::write(&go, byte);
            drop(go);
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
    crate::sys::fd::write_raw(fd, line.as_bytes());
}

/// `nslab __init CONFIG`. Started by nslab (a shim, the way before the fork server):
/// joins the node's namespaces and makes the init in its new ones, PID 1 of its own pid
/// namespace, prints the init's pid, and leaves the init running on its own.
pub fn shim(config: &str) -> i32 {
    // Whatever the caller left open (a shell's `9>file`, a pipe) must not reach the node:
    // nothing of ours is open yet, and 0-2 are the pipes to nslab.
    crate::sys::fd::close_from(3, false);
    let cfg = match read_config(config).and_then(|cfg| join(&cfg).map(|()| cfg)) {
        Ok(c) => c,
        Err(e) => {
            crate::outln!("error: {e}");
            return 1;
        }
    };
    // A fresh exec with no thread started.
    let Some(one) = crate::sys::child::SingleThreaded::check() else {
        crate::outln!("error: the init's shim has more than one thread");
        return 1;
    };
    match launch(&one, cfg, &mut std::io::stdout(), 2, |cfg| {
        super::init::run(cfg)
    }) {
        Some(_) => 0,
        None => 1,
    }
}
