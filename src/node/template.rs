//! The lab's mount template: a mount namespace made once per lab, a copy of the host's
//! without `/run/netns`, that every node's own mount namespace is then copied from.
//! Copying a mount namespace is O(mounts in it), and the host holds one nsfs mount per
//! node namespace: without the template, N nodes copy N mounts each (O(N²); at 1,000
//! nodes that was a tenth of all CPU time in `up`). The template is held by a bind mount
//! of its nsfs file under the lab's run directory, and goes at `down`.
//!
//! The kernel binds a mount namespace's file only when that namespace's id is above the
//! caller's (`mnt_ns_loop`, against reference loops). Since 6.18 the ids come from
//! per-CPU batches, so a namespace made later on another CPU can have a lower id than the
//! caller's: the bind then fails with EINVAL (in a simulated host, or rootless in the
//! holder's namespace, about one time in two on two CPUs). So the template is made on
//! the first CPU whose id is above the caller's (see [`newer_than`]).

use std::ffi::CString;
use std::os::fd::AsFd;
use std::path::Path;

use super::sys::{cpath as cstr, err};

/// Makes the template and binds it at `at`. Runs on a thread of its own, which unshares
/// its mount namespace (only that thread's view changes) and ends afterwards.
/// `netns_dir` is where named namespaces are mounted, left out of the template.
pub fn create(at: &Path, netns_dir: &Path) -> Result<(), String> {
    if let Some(dir) = at.parent() {
        crate::state::files::ensure_dir(dir).map_err(|e| e.to_string())?;
    }
    crate::state::files::replace(at, b"").map_err(|e| e.to_string())?;
    let (tx, rx) = std::sync::mpsc::channel::<Result<i32, String>>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let netns_dir = netns_dir.to_path_buf();
    let worker = std::thread::Builder::new()
        .name("nslab-mnt".into())
        .spawn(move || {
            let _ = tx.send(prepare(&netns_dir));
            // Stay until the host side has bound the namespace.
            let _ = done_rx.recv();
        })
        .map_err(|e| format!("a thread for the mount template: {e}"))?;
    let bound = match rx.recv() {
        Ok(Ok(tid)) => bind(tid, at),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("the mount template thread ended early".into()),
    };
    let _ = done_tx.send(());
    let _ = worker.join();
    if bound.is_err() {
        let _ = std::fs::remove_file(at);
    }
    bound
}

/// On the template's thread: a private copy of the host's mounts without the netns
/// directory's.
fn prepare(netns_dir: &Path) -> Result<i32, String> {
    newer_than(ns_id("/proc/thread-self/ns/mnt"))?;
    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    // Nothing done here may propagate back to the host (this thread's namespace is its
    // own now).
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| {
        err(
            "make the template's mounts private",
            std::io::Error::from(e),
        )
    })?;
    let info = std::fs::read_to_string("/proc/thread-self/mountinfo")
        .map_err(|e| format!("/proc/thread-self/mountinfo: {e}"))?;
    // Deepest first, so children go before their parents.
    let mut netns: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(netns_dir))
        .collect();
    netns.sort_by_key(|m| std::cmp::Reverse(m.len()));
    netns.dedup();
    for m in netns {
        let _ = umount2(m, MntFlags::MNT_DETACH);
    }
    Ok(nix::unistd::gettid().as_raw())
}

/// The id of the mount namespace `path` names; `None` where the kernel has no such ioctl
/// (before 6.8, whose ids come from one counter and only grow).
fn ns_id(path: &str) -> Option<u64> {
    let file = std::fs::File::open(path).ok()?;
    crate::sys::mount::mntns_id(file.as_fd())
}

/// Moves this thread into a new mount namespace whose id is above `caller`'s, so that
/// the caller may bind it. The current CPU first; if its batch of ids is behind, each
/// CPU of the machine in turn, whatever the process's affinity (`taskset`), as the CPU
/// that made the caller's namespace always gives a higher id: a later one of its batch,
/// or a later batch. A CPU outside the process's cpuset is refused and skipped.
fn newer_than(caller: Option<u64>) -> Result<(), String> {
    use nix::sched::{CpuSet, sched_setaffinity};
    use nix::unistd::Pid;
    let unshare = || -> Result<bool, String> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
            .map_err(|e| format!("unshare a mount namespace: {e}"))?;
        Ok(match (caller, ns_id("/proc/thread-self/ns/mnt")) {
            (Some(c), Some(t)) => t > c,
            _ => true,
        })
    };
    if unshare()? {
        return Ok(());
    }
    let cpus = nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_CONF)
        .ok()
        .flatten()
        .unwrap_or(1)
        .max(1) as usize;
    for cpu in 0..cpus.min(CpuSet::count()) {
        let mut one = CpuSet::new();
        // Pid 0: this thread only; it ends once the template is bound.
        if one.set(cpu).is_err() || sched_setaffinity(Pid::from_raw(0), &one).is_err() {
            continue;
        }
        if unshare()? {
            return Ok(());
        }
    }
    Err(format!(
        "no CPU this process may use makes a mount namespace newer than its own (id {}), which the kernel requires to bind it",
        caller.unwrap_or_default()
    ))
}

/// On the host: binds the thread's mount namespace file at `at`.
fn bind(tid: i32, at: &Path) -> Result<(), String> {
    let src = CString::new(format!("/proc/self/task/{tid}/ns/mnt")).map_err(|e| e.to_string())?;
    let dst = cstr(at)?;
    nix::mount::mount(
        Some(src.as_c_str()),
        dst.as_c_str(),
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| err("bind the mount template", std::io::Error::from(e)))?;
    Ok(())
}

/// Unbinds and removes the template (nothing to do when it is not there).
pub fn remove(at: &Path) -> Result<(), String> {
    super::detach(at).map_err(|e| format!("unbind {}: {e}", at.display()))?;
    match std::fs::remove_file(at) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("remove {}: {e}", at.display()))
        }
        _ => Ok(()),
    }
}
