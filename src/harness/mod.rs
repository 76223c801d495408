//! The `tests:` section at run time: each check is polled until it holds or its timeout
//! passes (networks need time to converge), and the last attempt's findings become the
//! failure reason: what was expected and what was seen.

mod actions;
mod checks;
pub(crate) mod cmd;
pub mod jsonmatch;
pub mod local;
pub mod report;
mod route;
pub mod select;
mod session;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde::Serialize;

use crate::apply::executor::Cancel;
use crate::apply::netlink::NetlinkKernel;
use crate::model::{Check, CheckBody, Topology};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Not run: the run was interrupted first, a step before it failed, it was not
    /// selected, or it starts on another host.
    Skipped,
    /// Running when a signal stopped the run: neither passed nor failed, and not
    /// "not run" either (a cancelled CI job shows the check it was waiting on).
    Interrupted,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub kind: &'static str,
    pub status: Status,
    #[serde(rename = "duration_s", serialize_with = "secs")]
    pub duration: Duration,
    /// Why it failed: what was expected and what was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Polls made before it held or timed out.
    pub attempts: u32,
    /// The node, for one node's result of a many-node check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// What it printed, the end of it (see `report::output_tail`): a `cmd` check's
    /// stdout on its last attempt, the end of a failed process's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    /// A `cmd` check's stderr on its last attempt, the end of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

impl CheckResult {
    pub fn passed(&self) -> bool {
        self.status == Status::Pass
    }
}

pub fn kind_of(c: &Check) -> &'static str {
    match c.body {
        CheckBody::Reach { .. } => "reach",
        CheckBody::Tcp { .. } => "tcp",
        CheckBody::Route { .. } => "route",
        CheckBody::Path { .. } => "path",
        CheckBody::Cmd { .. } => "cmd",
        CheckBody::Action(_) => "step",
    }
}

/// What checks need while they run: the lab and a way into its namespaces.
pub struct Context<'a> {
    pub topology: &'a Topology,
    pub kernel: &'a NetlinkKernel,
    /// Which node owns each address, to name the hops of a path.
    pub owners: HashMap<IpAddr, usize>,
}

impl<'a> Context<'a> {
    pub fn new(topology: &'a Topology, kernel: &'a NetlinkKernel) -> Self {
        let mut owners = HashMap::new();
        for (i, n) in topology.nodes.iter().enumerate() {
            for a in n
                .loopback
                .iter()
                .chain(n.interfaces.iter().flat_map(|x| x.addresses.iter()))
            {
                owners.entry(a.addr()).or_insert(i);
            }
        }
        Context {
            topology,
            kernel,
            owners,
        }
    }
}

/// One poll's verdict.
pub struct Attempt {
    pub holds: bool,
    pub seen: String,
}

/// What a `cmd` check's command printed on one attempt, the end of each stream (see
/// `report::output_tail`), for the reports.
pub struct Captured {
    pub stdout: String,
    pub stderr: String,
}

/// Runs every check and scenario step in order. `report` sees each result as soon as it
/// is known. On cancellation, the check in progress is reported as interrupted (with how
/// long it ran) and the rest as skipped; after a step that failed, so is the rest (it would
/// not replay the scenario).
pub async fn run(
    ctx: &Context<'_>,
    mut cancel: Cancel,
    report: &mut dyn FnMut(&CheckResult),
) -> Vec<CheckResult> {
    let mut results = Vec::new();
    let mut failed_step: Option<String> = None;
    let checks = &ctx.topology.checks;
    let mut i = 0;
    while i < checks.len() {
        // A many-node check's per-node checks run together; each reports on its own.
        let entry = |c: &Check| c.group.as_ref().map(|g| g.entry);
        let n = match entry(&checks[i]) {
            Some(e) => checks[i..]
                .iter()
                .take_while(|c| entry(c) == Some(e))
                .count(),
            None => 1,
        };
        let batch = &checks[i..i + n];
        i += n;
        let interrupted = cancel.borrow().clone();
        let batch_results: Vec<CheckResult> = match (interrupted, &failed_step) {
            (Some(sig), _) => skip_all(batch, &format!("interrupted by {sig}")),
            (None, Some(step)) => skip_all(batch, &format!("the step `{step}` failed")),
            (None, None) => {
                let start = Instant::now();
                tokio::select! {
                    r = join_all(batch.iter().map(|c| run_one(ctx, c))) => r,
                    Ok(()) = cancel.changed() => {
                        // Said apart from the checks never started: a CI job cancelled
                        // at its time limit shows which check it was waiting on.
                        let sig = cancel.borrow().clone().unwrap_or_else(|| "a signal".into());
                        let ran = start.elapsed();
                        let why = format!(
                            "interrupted by {sig} while running, after {:.1}s",
                            ran.as_secs_f64()
                        );
                        batch
                            .iter()
                            .map(|c| CheckResult {
                                status: Status::Interrupted,
                                duration: ran,
                                reason: Some(why.clone()),
                                ..skipped(c, "")
                            })
                            .collect()
                    }
                }
            }
        };
        for (check, result) in batch.iter().zip(batch_results) {
            if matches!(check.body, CheckBody::Action(_)) && result.status == Status::Fail {
                failed_step = Some(check.name.clone());
            }
            report(&result);
            results.push(result);
        }
    }
    results
}

fn skip_all(batch: &[Check], why: &str) -> Vec<CheckResult> {
    batch.iter().map(|c| skipped(c, why)).collect()
}

fn node_of(check: &Check) -> Option<String> {
    check.group.as_ref().map(|g| g.node.clone())
}

/// A check that was not run, and why (the lab could not be reached, say).
pub fn not_run(check: &Check, why: &str) -> CheckResult {
    skipped(check, why)
}

fn skipped(check: &Check, why: &str) -> CheckResult {
    CheckResult {
        name: check.name.clone(),
        kind: kind_of(check),
        status: Status::Skipped,
        duration: Duration::ZERO,
        reason: Some(format!("not run: {why}")),
        attempts: 0,
        node: node_of(check),
        stdout: None,
        stderr: None,
    }
}

/// Polls one check until it holds or times out (a scenario step is done once).
pub async fn run_one(ctx: &Context<'_>, check: &Check) -> CheckResult {
    let start = Instant::now();
    if let CheckBody::Action(action) = &check.body {
        let outcome = actions::perform(ctx, action).await;
        return CheckResult {
            name: check.name.clone(),
            kind: kind_of(check),
            status: if outcome.is_ok() {
                Status::Pass
            } else {
                Status::Fail
            },
            duration: start.elapsed(),
            reason: outcome.err(),
            attempts: 1,
            node: None,
            stdout: None,
            stderr: None,
        };
    }
    let deadline = start + check.timeout;
    let mut state = checks::State::new(ctx, check);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        // Each attempt gets a bounded budget so slow probes still poll several times.
        let budget = (check.interval * 2)
            .clamp(Duration::from_millis(500), Duration::from_secs(2))
            .min(left.max(Duration::from_millis(100)));
        let (a, printed) = state.attempt(ctx, budget).await;
        let done = a.holds || Instant::now() >= deadline;
        if done {
            return CheckResult {
                name: check.name.clone(),
                kind: kind_of(check),
                status: if a.holds { Status::Pass } else { Status::Fail },
                duration: start.elapsed(),
                reason: (!a.holds).then(|| {
                    format!(
                        "{} (after {attempts} attempts in {:.1}s)",
                        a.seen,
                        start.elapsed().as_secs_f64()
                    )
                }),
                attempts,
                node: node_of(check),
                stdout: printed.as_ref().map(|p| p.stdout.clone()),
                stderr: printed.map(|p| p.stderr),
            };
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(check.interval.min(left)).await;
    }
}
