//! Reaping: every zombie of the node is the init's (PID 1, or a subreaper); an exit
//! ends a probe or a process, which may be restarted with a backoff.

use std::time::{Duration, Instant};

use super::Init;
use super::process::Readiness;
use super::stop::signal_descendants;
use crate::model::kinds::RestartPolicy;

impl Init {
    pub(super) fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid on any child, non-blocking.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
            for p in &mut self.procs {
                if p.probe_pid == Some(pid) {
                    p.probe_pid = None;
                    p.probe_started = None;
                    if code == 0 && p.ready == Readiness::Pending {
                        p.ready = Readiness::Ready;
                        p.was_ready = true;
                    } else if p.probe_counts {
                        p.failed_probe();
                    }
                }
                if p.pid == Some(pid) {
                    p.pid = None;
                    p.exit = Some(code);
                    if p.retire.is_some() {
                        continue;
                    }
                    p.state = "exited";
                    let again = self.stopping.is_none()
                        && self.halting.is_none()
                        && match p.spec.restart {
                            RestartPolicy::Always => true,
                            RestartPolicy::OnFailure => code != 0,
                            RestartPolicy::Never => false,
                        };
                    if again {
                        // What the old instance left in its group (a daemon under a
                        // `sh -c`, a worker) would hold the new one's pid file and
                        // ports: it goes first, as systemd does before a restart.
                        signal_descendants(libc::SIGKILL, Some(pid));
                        // Back off exponentially; a process that ran 10 s starts over.
                        let ran = p.started.map(|s| s.elapsed()).unwrap_or_default();
                        p.backoff = if ran > Duration::from_secs(10) {
                            Duration::from_millis(100)
                        } else {
                            (p.backoff * 2)
                                .clamp(Duration::from_millis(100), Duration::from_secs(10))
                        };
                        p.state = "backoff";
                        p.restarts += 1;
                        p.next_start = Some(Instant::now() + p.backoff);
                    }
                }
            }
        }
    }
}

/// Whether any child is left, without reaping it (that is [`Init::reap`]'s job).
pub(super) fn has_children() -> bool {
    // SAFETY: waitid with WNOWAIT only inspects; the siginfo is ours.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        !(r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD))
    }
}
