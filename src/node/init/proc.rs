//! A process of the init's table: its spec, its state, and the readiness bookkeeping
//! the loop reads (when its probe counts, when it ends, when it has settled).

use std::time::{Duration, Instant};

use super::super::config::ProcessSpec;
use super::super::fresh::Wanted;
use super::super::logsink::LogSink;
use super::super::ready;
use super::super::tree;
use super::super::users::{self, Ids};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Readiness {
    /// No probe: ready once running.
    NoProbe,
    Pending,
    Ready,
    TimedOut,
}

pub(super) struct Proc {
    pub(super) spec: ProcessSpec,
    /// Its stdout and stderr, from the first start on.
    pub(super) log: Option<LogSink>,
    pub(super) requested: bool,
    pub(super) pid: Option<i32>,
    pub(super) state: &'static str,
    pub(super) restarts: u32,
    pub(super) exit: Option<i32>,
    pub(super) error: Option<String>,
    pub(super) started: Option<Instant>,
    pub(super) next_start: Option<Instant>,
    pub(super) backoff: Duration,
    pub(super) ready: Readiness,
    pub(super) probe_pid: Option<i32>,
    pub(super) next_probe: Option<Instant>,
    /// Polls of the probe since the last start, for [`ready::delay`].
    pub(super) polls: u32,
    pub(super) ready_deadline: Option<Instant>,
    pub(super) was_ready: bool,
    /// When the readiness period began, failed probes since that count toward
    /// `attempts`, and whether the running `cmd` probe counts (see [`Proc::counts`]).
    pub(super) ready_since: Option<Instant>,
    pub(super) failures: u32,
    pub(super) probe_counts: bool,
    /// When the running `cmd` probe started, while `probe_timeout` may still end it.
    pub(super) probe_started: Option<Instant>,
    /// The process group of its last start (its first pid, with that process's start
    /// time, which tells a reused number apart): what it left behind is found by it
    /// after the process itself is gone.
    pub(super) group: Option<tree::Group>,
    /// Being retired (see [`Init::retire`]).
    pub(super) retire: Option<Retire>,
    /// Who it and its `cmd` probe run as, looked up at its last start.
    pub(super) ids: Option<Ids>,
}

/// A process on its way out of the table.
pub(super) struct Retire {
    /// When what is left gets SIGKILL (its grace's end, then every 100 ms).
    pub(super) kill_at: Instant,
    /// Its family when the retire began, by identity: daemons that left its group are
    /// reparented to the init once it dies, and only this still ties them to it.
    pub(super) known: Vec<tree::Entry>,
}

impl Proc {
    /// A process of the table, not started: `start NAME` starts it.
    pub(super) fn new(spec: ProcessSpec) -> Proc {
        Proc {
            spec,
            log: None,
            requested: false,
            pid: None,
            state: "waiting",
            restarts: 0,
            exit: None,
            error: None,
            started: None,
            next_start: None,
            backoff: Duration::ZERO,
            ready: Readiness::NoProbe,
            probe_pid: None,
            next_probe: None,
            polls: 0,
            ready_deadline: None,
            was_ready: false,
            ready_since: None,
            failures: 0,
            probe_counts: false,
            probe_started: None,
            group: None,
            retire: None,
            ids: None,
        }
    }

    /// A launcher that did its job: it exited 0 and will not be started again (the
    /// daemons it started live on, like `frrinit.sh start`).
    pub(super) fn completed(&self) -> bool {
        self.pid.is_none()
            && self.exit == Some(0)
            && self.next_start.is_none()
            && self.state == "exited"
    }

    /// Whether readiness probes run now: while the process runs, or after it completed.
    pub(super) fn probing(&self) -> bool {
        self.ready == Readiness::Pending && (self.pid.is_some() || self.completed())
    }

    /// What `ps` and `up` see as ready.
    pub(super) fn is_ready(&self) -> bool {
        matches!(self.ready, Readiness::NoProbe | Readiness::Ready)
            && (self.pid.is_some() || self.completed())
    }

    /// Whether a probe made now counts toward `attempts`: once polls come at the
    /// `interval` (the quick first ones are free) and after `start_period`.
    pub(super) fn counts(&self, interval: Duration, now: Instant) -> bool {
        let start = Duration::from_millis(self.spec.ready_limits.start_period_ms);
        self.polls > 0
            && ready::delay(interval, self.polls - 1) >= interval
            && self.ready_since.is_none_or(|s| now >= s + start)
    }

    /// When `probe_timeout` ends the running `cmd` probe, if it does.
    pub(super) fn probe_end(&self) -> Option<Instant> {
        let limit = self.spec.ready_limits.probe_timeout_ms?;
        Some(self.probe_started? + Duration::from_millis(limit))
    }

    /// A failed probe that counts: the last of `attempts` ends the wait.
    pub(super) fn failed_probe(&mut self) {
        self.failures = self.failures.saturating_add(1);
        let limit = self.spec.ready_limits.attempts;
        if self.ready == Readiness::Pending && limit.is_some_and(|a| self.failures >= a) {
            self.ready = Readiness::TimedOut;
        }
    }

    /// Looks its `user:` up in the node's own /etc (the init is in the node's mount
    /// namespace, with the node's binds in place), at every start: a restart sees an
    /// edited file. The error names the lab, the node and the process.
    pub(super) fn lookup_user(
        &mut self,
        node: &super::super::config::NodeStart,
    ) -> Result<(), String> {
        let Some(user) = &self.spec.user else {
            self.ids = None;
            return Ok(());
        };
        let found = users::resolve_in(
            user,
            std::path::Path::new("/etc/passwd"),
            std::path::Path::new("/etc/group"),
        );
        self.ids = Some(found.map_err(|e| {
            format!(
                "lab `{}`, node `{}`: process `{}` cannot run as `{user}`: {e} (looked up in the node's /etc/passwd and /etc/group)",
                node.lab, node.node, self.spec.name
            )
        })?);
        Ok(())
    }

    /// Its `rlimits`, `nice`, `oom_score_adj`, `cpus` and `ionice`, checked at every
    /// start against what the init may give (`None` when it asks for none). The error
    /// names the attribute; nslab's report of the start names the lab, node and process.
    pub(super) fn wanted(&self) -> Result<Option<Wanted>, String> {
        if self.spec.attrs.is_empty() {
            return Ok(None);
        }
        Wanted::new(&self.spec.attrs).map(Some)
    }

    /// Whether a `wait` for it is answered now: ready, failed to start, ended before it
    /// was ready (a launcher's exit 0 is not an end: its daemons are still probed), out
    /// of readiness time, or not asked to start (never, or a halt undid it).
    pub(super) fn settled(&self) -> bool {
        self.is_ready()
            || self.error.is_some()
            || self.ready == Readiness::TimedOut
            || (self.state == "exited" && self.pid.is_none() && self.exit != Some(0))
            || !self.requested
    }
}
