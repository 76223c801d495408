//! Readiness probes, run from the loop at their (growing) intervals: `tcp`, `unix` and
//! `file` inline, `cmd` as a child reaped like any other.

use std::time::Instant;

use super::Init;
use super::process::Readiness;
use super::spawn::spawn;
use crate::node::config::ReadySpec;
use crate::node::ready;

impl Init {
    pub(super) fn probe(&mut self, now: Instant) {
        for p in &mut self.procs {
            if p.ready == Readiness::Pending && p.ready_deadline.is_some_and(|d| now > d) {
                p.ready = Readiness::TimedOut;
                if let Some(pid) = p.probe_pid.take() {
                    // SAFETY: a probe we started.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                continue;
            }
            if let (Some(pid), Some(end)) = (p.probe_pid, p.probe_end()) {
                // Killed once; its exit (reaped as 137) is a failed probe.
                if now >= end {
                    // SAFETY: a probe we started and have not reaped.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    p.probe_started = None;
                }
            }
            if !p.probing() {
                continue;
            }
            let (Some(spec), Some(when)) = (&p.spec.ready, p.next_probe) else {
                continue;
            };
            if now < when || p.probe_pid.is_some() {
                continue;
            }
            let counts = p.counts(spec.interval(), now);
            p.next_probe = Some(now + ready::delay(spec.interval(), p.polls));
            p.polls = p.polls.saturating_add(1);
            let ok = match spec {
                ReadySpec::Cmd { argv, .. } => {
                    let (env, cwd) = (&p.spec.env, p.spec.cwd.as_deref());
                    p.probe_pid = spawn(argv, env, cwd, None, p.ids.as_ref(), None).ok();
                    p.probe_started = Some(now);
                    p.probe_counts = counts;
                    continue;
                }
                ReadySpec::Tcp { port, .. } => ready::tcp(*port),
                ReadySpec::Unix { path, .. } => ready::unix(path),
                ReadySpec::File { path, .. } => ready::file(path),
            };
            if ok {
                p.ready = Readiness::Ready;
                p.was_ready = true;
            } else if counts {
                p.failed_probe();
            }
        }
    }
}
