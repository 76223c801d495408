//! Stopping the node's processes: a halt (the node stays, its processes go), and the
//! stop (SIGTERM, the grace, SIGKILL, then the init's own exit), with the signalling
//! of everything the node started.

use std::time::{Duration, Instant};

use super::Init;
use super::memory::fault_around;
use super::process::Readiness;
use super::reap::has_children;
use crate::node::tree;

impl Init {
    /// The longest stop timeout of the node's processes: how long TERM is given.
    pub(super) fn grace(&self) -> Duration {
        let ms = self
            .procs
            .iter()
            .map(|p| p.spec.stop_timeout_ms)
            .max()
            .unwrap_or(0);
        Duration::from_millis(ms)
    }

    pub(super) fn begin_stop(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some(Instant::now() + self.grace());
        fault_around();
        for p in &mut self.procs {
            p.next_start = None;
            if let Some(pid) = p.pid {
                // SAFETY: signalling a process group we created.
                unsafe { libc::kill(-pid, libc::SIGTERM) };
            }
            if let Some(pid) = p.probe_pid {
                // SAFETY: as above, a probe we started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        if self.pid1 {
            // Everything else in the node's pid namespace gets the same warning.
            signal_namespace(nix::sys::signal::Signal::SIGTERM);
        } else {
            // Without a pid namespace, daemons that left their process group (setsid, a
            // double fork) are still the init's descendants: it is their subreaper.
            signal_descendants(libc::SIGTERM, None);
        }
    }

    /// Stops every process the init started (and what they started) but keeps the node:
    /// its namespaces and links stay, as when a router's daemons crash. Commands entered
    /// with `nslab exec` are not the node's processes and stay. `start` brings processes
    /// back; readiness starts over.
    pub(super) fn halt(&mut self) {
        if self.stopping.is_some() || self.halting.is_some() {
            return;
        }
        self.halting = Some(Instant::now() + self.grace());
        for p in &mut self.procs {
            p.requested = false;
            p.next_start = None;
            if let Some(pid) = p.probe_pid {
                // SAFETY: a probe we started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            if let Some(pid) = p.pid {
                // SAFETY: signalling a process group we created.
                unsafe { libc::kill(-pid, libc::SIGTERM) };
            }
        }
        signal_descendants(libc::SIGTERM, None);
    }

    pub(super) fn continue_halt(&mut self, now: Instant) {
        let Some(deadline) = self.halting else {
            return;
        };
        if self.all_stopped() {
            self.halting = None;
            for p in self.procs.iter_mut().filter(|p| p.retire.is_none()) {
                p.state = "stopped";
                p.ready = Readiness::NoProbe;
                p.ready_deadline = None;
                p.was_ready = false;
                p.next_probe = None;
            }
        } else if now >= deadline {
            // Again every 100 ms: a child forked between the /proc scan and the kill
            // escapes one pass, but not the next.
            signal_descendants(libc::SIGKILL, None);
            self.halting = Some(now + Duration::from_millis(100));
        }
    }

    /// Every process gone, including daemons that left their launcher: the init reaps
    /// the whole node (PID 1, or a subreaper), so they are its children.
    pub(super) fn all_stopped(&self) -> bool {
        self.procs.iter().all(|p| p.pid.is_none()) && !has_children()
    }

    pub(super) fn finish(&mut self) -> ! {
        for p in &self.procs {
            if let Some(pid) = p.pid {
                // SAFETY: killing our own process groups.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
        }
        // As PID 1, nothing more to do: when it exits, the kernel SIGKILLs every other
        // process of its pid namespace (daemons that left their group, `nslab exec`
        // commands) and waits for them before the init's own exit is complete, so
        // `down`, which waits for that exit, still finds the node empty. Listing the
        // node's /proc again for a SIGKILL round only faulted that code back in.
        if !self.pid1 {
            // Nothing dies with this init: what it started goes now, not to the host.
            signal_descendants(libc::SIGKILL, None);
        }
        // The last words of the processes (what their TERM handlers printed).
        self.drain_logs(0..self.procs.len(), true);
        // Nothing is buffered (logs are written straight to their files, and stdout was
        // flushed line by line): the exit handlers would only fault their code back in.
        // SAFETY: ends this process.
        unsafe { libc::_exit(0) }
    }
}

/// Signals every other process of the node's pid namespace, from its PID 1. `kill(-1)`
/// does that too, but the kernel finds them by walking every process on the host under
/// its task-list lock: when a `down` stops 1,000 nodes at once, that walk was a quarter
/// of the inits' CPU time, and it holds back every exit meanwhile.
/// The node's own /proc lists only its processes; without one, `kill(-1)` it is.
pub(super) fn signal_namespace(sig: nix::sys::signal::Signal) {
    use nix::{sys::signal::kill, unistd::Pid};
    let Some(pids) = namespace_pids() else {
        // From PID 1 of a namespace, -1 reaches only that namespace.
        let _ = kill(Pid::from_raw(-1), sig);
        return;
    };
    for pid in pids.into_iter().filter(|&p| p != 1) {
        // A process of this node's pid namespace (this init is its PID 1).
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

/// The processes of this pid namespace, from its own /proc, or `None` when /proc is
/// not its own (it shows this process as 1 only if it is).
pub(super) fn namespace_pids() -> Option<Vec<i32>> {
    use nix::fcntl::{OFlag, open};
    use nix::unistd::{Whence, lseek};
    if !std::fs::read_link("/proc/self").is_ok_and(|p| p.as_os_str() == "1") {
        return None;
    }
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let fd = open("/proc", flags, nix::sys::stat::Mode::empty()).ok()?;
    // The processes start at this offset (FIRST_PROCESS_ENTRY in the kernel's
    // fs/proc/base.c); listing /proc's fixed files before them costs more than the
    // node's few processes. Should that ever change, this process (1) is missing and
    // the whole directory is read instead.
    let skip = lseek(&fd, 256, Whence::SeekSet).is_ok();
    let pids: Vec<i32> = nix::dir::Dir::from_fd(fd)
        .ok()?
        .iter()
        .flatten()
        .filter_map(|e| e.file_name().to_str().ok()?.parse().ok())
        .collect();
    match pids.contains(&1) {
        true => Some(pids),
        false if skip => std::fs::read_dir("/proc").ok().map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        }),
        false => None,
    }
}

/// Signals every process descending from the init (its children and theirs; a daemon
/// whose parent died was reparented to the init, so it is found too), but not commands
/// entered from outside with `nslab exec`, whose parent is not the init. With `group`,
/// only those in that process group.
pub(super) fn signal_descendants(sig: libc::c_int, group: Option<i32>) {
    let me = std::process::id() as i32;
    let found: Vec<tree::Entry> = tree::descendants(&tree::scan(), me)
        .into_iter()
        .filter(|e| group.is_none_or(|want| e.pgrp == want))
        .collect();
    tree::signal(&found, sig);
}

#[cfg(test)]
mod tests {
    use super::namespace_pids;

    #[test]
    fn the_hosts_proc_is_not_a_nodes_own() {
        // This process is not 1 in the /proc it sees, so stopping a node from here would
        // fall back to kill(-1), which in the host's pid namespace is never sent.
        if std::process::id() != 1 {
            assert_eq!(namespace_pids(), None);
        }
    }
}
