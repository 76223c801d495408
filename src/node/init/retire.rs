//! Retiring one process (`nslab apply` took it out of the topology): it and what it
//! started are stopped, the rest of the node untouched, and it leaves the table once
//! nothing of it is left.

use std::time::{Duration, Instant};

use super::Init;
use super::process::{Readiness, Retire};
use crate::node::tree;

impl Init {
    /// Stops one process and what it started (SIGTERM now, SIGKILL after its own
    /// `stop_timeout`), without touching the others; [`Init::continue_retire`] drops it
    /// from the table once all of it is gone.
    pub(super) fn retire(&mut self, name: &str) -> Result<(), String> {
        let Some(i) = self.procs.iter().position(|p| p.spec.name == name) else {
            return Err(format!("no process `{name}`"));
        };
        if self.procs[i].retire.is_some() {
            return Ok(());
        }
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        let p = &mut self.procs[i];
        p.requested = false;
        p.next_start = None;
        p.ready = Readiness::NoProbe;
        p.ready_deadline = None;
        p.next_probe = None;
        p.state = "retiring";
        if let Some(pid) = p.probe_pid {
            // SAFETY: a probe we started (reaped only by this init, so still ours).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let known = p
            .group
            .map(|g| tree::family(&tree::scan(), me, g))
            .unwrap_or_default();
        // The group at once while its leader holds its number; the rest of its family
        // (the whole of it, once the leader is gone) one by one.
        let rest: Vec<tree::Entry> = match p.pid {
            Some(pid) => {
                // SAFETY: a process group we created, whose leader is not reaped yet.
                unsafe { libc::kill(-pid, libc::SIGTERM) };
                known.iter().filter(|e| e.pgrp != pid).copied().collect()
            }
            None => known.clone(),
        };
        tree::signal(&rest, libc::SIGTERM);
        p.retire = Some(Retire {
            kill_at: Instant::now() + Duration::from_millis(p.spec.stop_timeout_ms),
            known,
        });
        Ok(())
    }

    /// Drops retired processes that are gone, with their log; past a process's grace,
    /// SIGKILLs what is left of it.
    pub(super) fn continue_retire(&mut self, now: Instant) {
        if self.procs.iter().all(|p| p.retire.is_none()) {
            return;
        }
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        let table = tree::scan();
        let mut i = 0;
        while i < self.procs.len() {
            let p = &mut self.procs[i];
            let Some(r) = p.retire.as_mut() else {
                i += 1;
                continue;
            };
            let mut left = tree::alive(&table, &r.known);
            if let Some(g) = p.group {
                for e in tree::family(&table, me, g)
                    .into_iter()
                    .filter(|e| !e.zombie)
                {
                    if !left.iter().any(|l| l.pid == e.pid) {
                        left.push(e);
                    }
                }
            }
            if p.pid.is_none() && p.probe_pid.is_none() && left.is_empty() {
                let mut gone = self.procs.remove(i);
                if let Some(log) = gone.log.as_mut() {
                    // Its last words (bounded all the same), then the pipe and the file
                    // close with it.
                    for _ in 0..64 {
                        if !log.drain(16) {
                            break;
                        }
                    }
                    let footer = format!("--- nslab: retired {} ---\n", gone.spec.name);
                    let _ = log.write(footer.as_bytes());
                }
                continue;
            }
            if now >= r.kill_at {
                if let Some(pid) = p.pid {
                    // SAFETY: our own process group, its leader not reaped yet.
                    unsafe { libc::kill(-pid, libc::SIGKILL) };
                }
                tree::signal(&left, libc::SIGKILL);
                // Again every 100 ms: a child forked between the scan and the kill
                // escapes one pass, but not the next.
                r.kill_at = now + Duration::from_millis(100);
            }
            i += 1;
        }
    }
}
