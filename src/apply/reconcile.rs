//! `apply`: makes a running lab what a new plan says, changing only what differs (see
//! `plan::diff`). It is journaled like `up`: an `apply` record, a `retire` record before
//! each removal, an `object` record before each creation, and `applied` at the end. The
//! plan it heads for is stored first, so after a `kill -9` the next `apply` (or `down`)
//! knows what may have changed: whatever the unfinished change touched is removed, and the
//! lab then converges from what is left. A failure rolls back this change the same way,
//! toward the plan the lab had, and the lab keeps running.

use std::time::{Duration, Instant};

use super::error::{self, ApplyError, KernelError};
use super::executor::{self, Cancel, ExecError};
use super::kernel::Kernel;
use super::netlink::NetlinkKernel;
use super::teardown::{remove_rest, undo_later, undo_netlink};
use super::{UpOptions, UpReport, nodes, now, progress};
use crate::model::Topology;
use crate::plan::diff::{self, Diff};
use crate::plan::{Name, Op, Plan, Teardown, Undo};
use crate::state::{HostContext, Journal, LabDir, LabLock, LabSummary, Record, files};

/// What an `apply` did.
#[derive(Debug)]
pub enum Applied {
    /// The lab was not up: it was brought up.
    Up(UpReport),
    /// The lab was changed (or, with an empty diff, found as the file says).
    Changed {
        diff: Box<Diff>,
        /// A `kill -9` of an earlier `apply` was recovered from first.
        recovered: bool,
        elapsed: Duration,
    },
}

/// The change plan `apply` would carry out, touching nothing; `None` when the lab is
/// not up (`apply` would bring it up).
pub fn dry_run(host: &HostContext, new: &Plan) -> Result<Option<Diff>, ApplyError> {
    let dir = host.lab_dir(&new.lab);
    if !dir.exists() {
        return Ok(None);
    }
    let from = stored(&dir)?.parse(&dir)?;
    Ok(Some(diff::diff(
        from.plan(),
        &super::sources::fingerprint(new),
    )))
}

/// What the lab's files say it is, each read once: what an unfinished `apply` touched, if
/// one was cut short, and the stored plan's text.
struct Stored {
    touched: Option<Vec<Undo>>,
    /// Records of that `apply` refused as not the lab's.
    refused: Vec<String>,
    text: String,
}

fn stored(dir: &LabDir) -> Result<Stored, ApplyError> {
    let (up, touched) = crate::state::apply_state(&dir.journal_path())?;
    if !up {
        return Err(ApplyError::Leftovers {
            lab: dir.lab.clone(),
        });
    }
    let (touched, refused) = screened(&dir.lab, touched);
    let text = files::read(&dir.plan_path()).map_err(|_| ApplyError::NoPlan {
        lab: dir.lab.clone(),
    })?;
    Ok(Stored {
        touched,
        refused,
        text,
    })
}

/// What an unfinished `apply` touched, screened as `down` screens a journal (see
/// `state::owned::screen`): the journal is a file that `apply` obeys as root, so records
/// naming something not the lab's are never acted on, and they are reported as `down`
/// reports them.
fn screened(lab: &str, touched: Option<Vec<Undo>>) -> (Option<Vec<Undo>>, Vec<String>) {
    match touched {
        Some(t) => {
            let s = crate::state::owned::screen(lab, t);
            (Some(s.kept), super::teardown::refusals(s.refused))
        }
        None => (None, Vec::new()),
    }
}

impl Stored {
    /// Whether the lab is exactly `plan` already: no change was cut short and the stored
    /// plan is the new plan byte for byte (both are written by `serde_json::to_vec`).
    /// Serialising and comparing costs a fraction of parsing the stored plan and diffing
    /// it, which is most of a no-op `apply` of a large lab.
    fn unchanged(&self, plan: &Plan) -> bool {
        self.touched.is_none()
            && serde_json::to_vec(plan).is_ok_and(|new| new == self.text.as_bytes())
    }

    /// The stored plan parsed, and what of it can be relied on.
    fn parse(self, dir: &LabDir) -> Result<Current, ApplyError> {
        let stored: Plan = serde_json::from_str(&self.text).map_err(|_| ApplyError::NoPlan {
            lab: dir.lab.clone(),
        })?;
        // What the stored plan has and the new one has not is removed: only the lab's.
        let foreign = |path: std::path::PathBuf| {
            let lab = dir.lab.clone();
            move |what| ApplyError::ForeignPlan { lab, path, what }
        };
        crate::state::owned::plan(&dir.lab, &stored).map_err(foreign(dir.plan_path()))?;
        let realized = match &self.touched {
            Some(t) => {
                // Its in-place changes stand in for the stored plan's steps.
                let next = LabDir::read_plan(&dir.next_plan_path()).ok();
                if let Some(next) = &next {
                    crate::state::owned::plan(&dir.lab, next)
                        .map_err(foreign(dir.next_plan_path()))?;
                }
                Some(diff::realized(&stored, next.as_ref(), t))
            }
            None => None,
        };
        Ok(Current {
            stored,
            touched: self.touched,
            refused: self.refused,
            realized,
        })
    }
}

/// What the lab is now, as far as its files say.
struct Current {
    /// The plan the lab was last brought to.
    stored: Plan,
    /// What an unfinished `apply` touched, if one was cut short.
    touched: Option<Vec<Undo>>,
    /// Records of that `apply` refused as not the lab's, never acted on.
    refused: Vec<String>,
    /// `stored` without what that `apply` touched, when one was cut short.
    realized: Option<Plan>,
}

impl Current {
    /// The lab as it can be relied on.
    fn plan(&self) -> &Plan {
        self.realized.as_ref().unwrap_or(&self.stored)
    }
}

/// Writes where the lab is heading, before anything changes (see
/// `plan::diff::realized`), and opens the journal with the change's record.
fn begin(dir: &LabDir, plan: &Plan, opts: &UpOptions) -> Result<Journal, ApplyError> {
    files::replace(
        &dir.next_plan_path(),
        &serde_json::to_vec(plan).expect("a plan serializes"),
    )?;
    let mut journal = Journal::open(&dir.journal_path())?;
    journal.append(&Record::Apply {
        pid: std::process::id(),
        started: now(),
        file: opts.file.clone(),
    })?;
    Ok(journal)
}

/// Makes a running lab what `plan` says, changing what differs; the caller holds the
/// lab's lock (`lock`, taken before it decided the lab is up) and gives the kernel the
/// change goes through, opened only once something is to change (a no-op needs none).
/// A failure or `cancel` rolls back this change only. The entry that brings a lab up
/// when it is not is `runtime::apply`, which opens the lab's session for this.
pub async fn change_locked<'k>(
    t: &Topology,
    plan: &Plan,
    opts: &UpOptions,
    cancel: Cancel,
    kernel: impl FnOnce() -> Result<&'k NetlinkKernel, ApplyError>,
    _lock: &LabLock,
) -> Result<Applied, ApplyError> {
    let start = Instant::now();
    let opts = &opts.with_test_faults();
    let lab = t.lab.clone();
    let dir = opts.host.lab_dir(&lab);
    // On a shared management network (the one the file names, or one the lab is on) the
    // lab's addresses come from the network's registry: held under the host lock from
    // reading it until the change's reservation is written (see `mgmtnet::begin_apply`).
    let shared = shared_lock(&opts.host, t, &lab)?;
    let placed = match &shared {
        Some(_) => super::mgmtnet::place(&opts.host, t, plan, &opts.file, true)?,
        None => None,
    };
    let plan = placed.as_ref().map_or(plan, |p| &p.plan);
    let on_file = stored(&dir)?;
    if on_file.unchanged(plan) {
        keep_source(&dir, opts)?;
        return Ok(Applied::Changed {
            diff: Box::new(Diff::none(&lab)),
            recovered: false,
            elapsed: start.elapsed(),
        });
    }
    let now_is = on_file.parse(&dir)?;
    let d = diff::diff(now_is.plan(), plan);
    let recovered = now_is.touched.is_some();
    if d.is_empty() && !recovered {
        keep_source(&dir, opts)?;
        return Ok(Applied::Changed {
            diff: Box::new(d),
            recovered,
            elapsed: start.elapsed(),
        });
    }
    let touched = now_is.touched.clone().unwrap_or_default();
    // Refused before anything changes (its files included): the lab stays as it ran.
    super::mgmtnet::refuse_reshape(&d, &opts.file).map_err(|why| ApplyError::MgmtApply {
        lab: lab.clone(),
        why,
    })?;
    host_free(&d, &touched).await?;
    let kernel = kernel()?;
    let mut journal = begin(&dir, plan, opts)?;
    // The lab's memberships as they were, and its reservation for the change.
    let mut before = Vec::new();
    let mut result = match &shared {
        Some(_) => reserve(&opts.host, &mut journal, &d, placed.as_ref()).map(|b| before = b),
        None => Ok(()),
    };
    drop(shared);
    // Host interfaces the kernel does not say are the lab's: left, reported after the change.
    let mut left = Vec::new();
    if result.is_ok() {
        result = change(kernel, &mut journal, &touched, &d, opts, cancel, &mut left).await;
    }
    if result.is_ok()
        && let Some(p) = &placed
    {
        result = super::mgmtnet::finish_apply(&opts.host, &lab, p).map_err(ApplyError::from);
    }
    if result.is_ok() {
        result = commit(t, &dir, &mut journal, opts);
    }
    progress::finish(opts.progress.as_ref());
    if let Err(first) = result {
        for r in &now_is.refused {
            crate::errln!("nslab: lab `{lab}`: refused journal record {r}");
        }
        say_left(&lab, &left);
        kernel.close_all();
        // Under the host lock: the lab's memberships taken back, each refused if another
        // lab took one of its addresses while the change ran. Then the rollback would
        // give the lab's nodes those addresses again: it does not run.
        let why = super::mgmtnet::restore(&opts.host, &lab, &before);
        if !why.is_empty() {
            return Err(ApplyError::NotRolledBack {
                lab,
                why,
                source: Box::new(first),
            });
        }
        if let Err(rb) = roll_back(kernel, &mut journal, &dir, &now_is.stored, plan, opts).await {
            crate::errln!(
                "nslab: the rollback of lab `{lab}`'s apply was incomplete ({rb}); run `nslab apply` again, or `nslab down {lab}`"
            );
        }
        return Err(ApplyError::RolledBack {
            lab,
            source: Box::new(first),
        });
    }
    if !now_is.refused.is_empty() {
        say_left(&lab, &left);
        return Err(ApplyError::RefusedRecords {
            lab,
            records: now_is.refused,
        });
    }
    if !left.is_empty() {
        return Err(ApplyError::LeftOnHost { lab, records: left });
    }
    Ok(Applied::Changed {
        diff: Box::new(d),
        recovered,
        elapsed: start.elapsed(),
    })
}

/// The host lock, for an `apply` of a lab that is on a shared management network or
/// joins one (`None` otherwise: most labs never take it).
fn shared_lock(
    host: &HostContext,
    t: &Topology,
    lab: &str,
) -> Result<Option<crate::state::HostLock>, ApplyError> {
    let names = t.mgmt.as_ref().is_some_and(|m| m.network.is_some());
    if !names && crate::state::mgmtnet::memberships(host, lab).is_empty() {
        return Ok(None);
    }
    Ok(Some(tokio::task::block_in_place(|| {
        crate::state::HostLock::acquire(host)
    })?))
}

/// Under the host lock, once the journal has the `apply` record: a network the change
/// joins is journaled as left first (as at `up`: a `kill -9` after the registry has the
/// lab still leaves it), then the lab's reservation is written. Returns what the lab
/// held before, for a rollback.
fn reserve(
    host: &HostContext,
    journal: &mut Journal,
    d: &Diff,
    placed: Option<&super::mgmtnet::Placed>,
) -> Result<Vec<super::mgmtnet::Before>, ApplyError> {
    for s in &d.add.steps {
        if let Op::JoinMgmt { .. } = &s.op
            && let Some(undo) = s.op.undo()
        {
            journal.append(&Record::Object { undo })?;
        }
    }
    Ok(super::mgmtnet::begin_apply(host, &d.lab, placed)?)
}

/// Reports the host interfaces a change left in place, the kernel not tagging them as
/// the lab's, where no error carries them.
fn say_left(lab: &str, left: &[String]) {
    for r in left {
        crate::errln!("nslab: lab `{lab}`: refused {r}");
    }
}

fn host(lab: &str, e: impl std::fmt::Display) -> ApplyError {
    ApplyError::Host {
        lab: lab.to_string(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// A file edited without changing the lab (a comment) is still the lab's file now.
fn keep_source(dir: &LabDir, opts: &UpOptions) -> Result<(), ApplyError> {
    if let Some(src) = &opts.source
        && files::read(&dir.source_path()).ok().as_deref() != Some(src.as_str())
    {
        files::replace(&dir.source_path(), src.as_bytes())?;
    }
    Ok(())
}

/// The lab is now what `plan` says: its files say so, then the journal.
fn commit(
    t: &Topology,
    dir: &LabDir,
    journal: &mut Journal,
    opts: &UpOptions,
) -> Result<(), ApplyError> {
    // The lab keeps its start time, and its holder: a change does not stop the
    // `nslab test` that brought it up from taking it down.
    let before = LabSummary::read(&dir.summary_path()).ok();
    let started = before.as_ref().map_or_else(now, |s| s.started);
    let mut summary = LabSummary::of(t, opts.host.host.as_deref(), &opts.file, started, now());
    summary.held_by = before.and_then(|s| s.held_by);
    summary.write(&dir.summary_path())?;
    keep_source(dir, opts)?;
    std::fs::rename(dir.next_plan_path(), dir.plan_path())
        .map_err(|e| crate::state::StateError::io(&dir.plan_path(), e))?;
    journal.append(&Record::Applied { finished: now() })?;
    Ok(())
}

/// Takes a failed change back: whatever it touched goes, and the lab converges to
/// `stored` again from what is left.
async fn roll_back(
    kernel: &NetlinkKernel,
    journal: &mut Journal,
    dir: &LabDir,
    stored: &Plan,
    failed: &Plan,
    opts: &UpOptions,
) -> Result<(), ApplyError> {
    let touched = crate::state::apply_state(&dir.journal_path())?.1;
    let touched = screened(&dir.lab, touched).0.unwrap_or_default();
    let back = diff::diff(&diff::realized(stored, Some(failed), &touched), stored);
    host_free(&back, &touched).await?;
    let opts = UpOptions {
        fail_at: None,
        step_delay: None,
        ..opts.clone()
    };
    let mut refused = Vec::new();
    let changed = change(
        kernel,
        journal,
        &touched,
        &back,
        &opts,
        super::never(),
        &mut refused,
    );
    changed.await?;
    say_left(&dir.lab, &refused);
    let _ = std::fs::remove_file(dir.next_plan_path());
    journal.append(&Record::Applied { finished: now() })?;
    Ok(())
}

/// Carries out one change: what `touched` names and what `d` removes goes (each retired
/// in the journal first), then what `d` adds is made through the executor.
async fn change(
    kernel: &NetlinkKernel,
    journal: &mut Journal,
    touched: &[Undo],
    d: &Diff,
    opts: &UpOptions,
    cancel: Cancel,
    refused: &mut Vec<String>,
) -> Result<(), ApplyError> {
    let lab = d.lab.clone();
    retire_processes(kernel.host(), journal, touched, d).await?;
    let undos = going(touched, d);
    for u in &undos {
        journal.append(&Record::Retire { undo: u.clone() })?;
    }
    remove(kernel, &lab, undos, opts.progress.as_ref(), refused).await?;
    restore_sysctls(kernel, &lab, &d.restore).await?;
    let exec_opts = super::exec_options(opts);
    let mut record = |e: executor::Entry| match e {
        executor::Entry::Creating(u) => journal.append(&Record::Object { undo: u.clone() }),
        executor::Entry::Existed(u) => journal.append(&Record::Disown { undo: u.clone() }),
    };
    let made = executor::execute(&d.add, kernel, &mut record, &exec_opts, cancel).await;
    made.map_err(|e| exec_error(&lab, e))?;
    for start in &d.hosts {
        nodes::refresh_hosts(kernel.host(), start)
            .await
            .map_err(|e| {
                ApplyError::Step(Box::new(error::StepError {
                    lab: lab.clone(),
                    node: start.node.clone(),
                    object: "/etc/hosts".into(),
                    operation: "rewrite".into(),
                    source: e,
                }))
            })?;
    }
    Ok(())
}

/// What a change removes before it adds: what `touched` names and what `d` removes.
fn going(touched: &[Undo], d: &Diff) -> Vec<Undo> {
    // A shared network the change joins (again) is not left for what an earlier change
    // touched: the lab's membership there is the one this change holds.
    let joins = |n: &str| {
        d.add
            .steps
            .iter()
            .any(|s| matches!(&s.op, Op::JoinMgmt { network, .. } if network == n))
    };
    let mut undos: Vec<Undo> = touched
        .iter()
        .filter(|u| !matches!(u, Undo::RetireProcess { .. }))
        .filter(|u| !matches!(u, Undo::LeaveMgmt { network, .. } if joins(network)))
        .cloned()
        .collect();
    undos.extend(d.remove.iter().filter(|u| !touched.contains(u)).cloned());
    undos
}

/// What the change adds on the host must be free there, as at `up`, once what it
/// removes is gone (a link made anew does not clash with itself).
async fn host_free(d: &Diff, touched: &[Undo]) -> Result<(), ApplyError> {
    let clashes = super::hostnet::clashes_after(&d.add, &going(touched, d))
        .await
        .map_err(|e| host(&d.lab, e))?;
    if clashes.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::HostClash {
            lab: d.lab.clone(),
            clashes,
        })
    }
}

pub(super) fn exec_error(lab: &str, e: ExecError) -> ApplyError {
    match e {
        ExecError::Step { step, error } => ApplyError::Step(Box::new(error::StepError {
            lab: lab.to_string(),
            node: error::node_of(lab, step.op.netns()),
            object: error::object_of(&step.op),
            operation: step.op.name().replace('-', " "),
            source: error,
        })),
        ExecError::Cancelled(signal) => ApplyError::Interrupted {
            lab: lab.to_string(),
            signal,
        },
        ExecError::Journal(e) => e.into(),
    }
}

/// Stops the processes that go from nodes that stay: those the change retires, and those
/// an unfinished change may have started. One already gone is no error.
async fn retire_processes(
    host: &HostContext,
    journal: &mut Journal,
    touched: &[Undo],
    d: &Diff,
) -> Result<(), ApplyError> {
    let mut list: Vec<Undo> = touched
        .iter()
        .filter(|u| matches!(u, Undo::RetireProcess { .. }))
        .cloned()
        .collect();
    for r in &d.retire {
        let u = Undo::RetireProcess {
            netns: r.netns.clone(),
            node: r.node.clone(),
            process: r.process.clone(),
        };
        if !touched.contains(&u) {
            list.push(u);
        }
    }
    for u in list {
        journal.append(&Record::Retire { undo: u.clone() })?;
        if let Undo::RetireProcess { node, process, .. } = &u {
            super::process::retire_if_present(host, &d.lab, node, process)
                .await
                .map_err(KernelError::Other)
                .map_err(|e| {
                    ApplyError::Step(Box::new(error::StepError {
                        lab: d.lab.clone(),
                        node: node.clone(),
                        object: format!("`{process}`"),
                        operation: "retire process".into(),
                        source: e,
                    }))
                })?;
        }
    }
    Ok(())
}

/// The one teardown, on part of a lab: nodes stop, netlink objects go, namespaces are
/// deleted and swept, cgroups removed. Every failure is reported.
async fn remove(
    kernel: &NetlinkKernel,
    lab: &str,
    undos: Vec<Undo>,
    progress: Option<&progress::Reporter>,
    refused: &mut Vec<String>,
) -> Result<(), ApplyError> {
    if undos.is_empty() {
        return Ok(());
    }
    let t = Teardown::of(undos);
    let names = t.node_names();
    let host = kernel.host();
    let mut errors = tokio::task::block_in_place(|| nodes::stop_nodes(host, lab, &names));
    // The lab lives on: its node directory must not keep a stopped node's pid file and
    // socket (a later `down` would count them as leftovers). Kept if any init resisted,
    // so that `down` can still find it.
    if errors.is_empty() {
        errors.extend(nodes::forget_stopped(host, lab, &names));
    }
    let (e, later) = undo_netlink(kernel, lab, &t, refused).await;
    errors.extend(e);
    // Namespaces may be made again under the same names: no handle to an old one stays.
    kernel.close_all();
    let (rest, held) = tokio::task::block_in_place(|| remove_rest(host, lab, &t, progress));
    errors.extend(rest);
    // The removed nodes' host ends go with their namespaces; waited for, so an `apply`
    // that makes them again finds their names free.
    let (e, held) = undo_later(kernel, lab, later, held, refused).await;
    errors.extend(e);
    kernel.close_all();
    drop(held);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::Teardown {
            lab: lab.to_string(),
            errors,
        })
    }
}

/// Sets sysctls the new file no longer names back to what a fresh namespace has.
async fn restore_sysctls(
    kernel: &NetlinkKernel,
    lab: &str,
    keys: &[(Name, String)],
) -> Result<(), ApplyError> {
    if keys.is_empty() {
        return Ok(());
    }
    let wanted: Vec<String> = keys.iter().map(|(_, k)| k.clone()).collect();
    let defaults = tokio::task::spawn_blocking(move || super::netns::fresh_sysctls(&wanted))
        .await
        .map_err(|e| host(lab, e))?
        .map_err(|e| host(lab, e))?;
    for ((netns, key), value) in keys.iter().zip(defaults) {
        let op = Op::SetSysctl {
            netns: netns.clone(),
            key: key.clone(),
            value,
        };
        kernel.apply(&op).await.map_err(|e| {
            ApplyError::Step(Box::new(error::StepError {
                lab: lab.to_string(),
                node: error::node_of(lab, netns),
                object: format!("sysctl {key}"),
                operation: "restore the default of".into(),
                source: e,
            }))
        })?;
    }
    Ok(())
}
