//! Apply: the engine that changes the kernel for a lab. `up` runs a plan through the executor,
//! journaling every object before creating it; any failure or signal rolls back what the
//! journal names. `down` works from the journal alone, so it needs no topology file and
//! survives a `kill -9` of `up`. Teardown is best effort and reports every error.

mod admit;
pub mod devices;
pub mod error;
pub mod executor;
mod hostends;
mod hostnet;
pub mod inspect;
pub mod kernel;
pub mod links;
mod logtail;
pub mod mgmtnet;
mod neighlimit;
mod neighroom;
pub mod netlink;
pub mod netns;
pub mod nodes;
pub mod process;
pub mod progress;
pub mod reconcile;
pub mod sources;
mod spawner;
mod strays;
pub mod tc;
mod teardown;
pub mod underlay;

use teardown::{finish, remove_rest, undo_later, undo_netlink};

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

pub use error::{ApplyError, KernelError};
use executor::Cancel;
use netlink::NetlinkKernel;

use crate::model::Topology;
use crate::plan::{Op, Plan, StepId};
use crate::state::{HostContext, Journal, LabDir, LabLock, LabSummary, Record};

/// Namespace threads: two measured best for creating namespaces on this class of host.
pub const NS_THREADS: usize = 2;

#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The host the lab lives on: its run and netns directories.
    pub host: HostContext,
    /// Steps in flight at once.
    pub jobs: usize,
    /// The topology file, recorded for `status`.
    pub file: String,
    /// Roll back on SIGINT and SIGTERM (the CLI); a library caller keeps its own handlers.
    pub handle_signals: bool,
    /// Test-only: make this step fail (also read from `NSLAB_TEST_FAIL_AT_STEP`).
    pub fail_at: Option<StepId>,
    /// Test-only: delay every step (also read from `NSLAB_TEST_STEP_DELAY_MS`).
    pub step_delay: Option<Duration>,
    /// The topology text, kept with the lab so `nslab test --lab` can run its checks.
    pub source: Option<String>,
    /// Told about every step, and about the rollback's phases.
    pub progress: Option<progress::Reporter>,
    /// Raise the host's neighbour limits the lab's estimate passes, for the lab's
    /// lifetime (`up --raise-neigh-limit`, see `state::sysctls`).
    pub raise_neigh_limit: bool,
    /// The command that keeps the lab only while it runs (`nslab test`, a Rust test),
    /// recorded with the lab so that another `up` of it is told the lab is in use, or,
    /// once that process is gone without its teardown (`kill -9`), that it was left.
    pub held_by: Option<String>,
}

impl UpOptions {
    /// The defaults, on `host`.
    pub fn new(host: HostContext) -> Self {
        UpOptions {
            host,
            jobs: 8,
            file: String::new(),
            handle_signals: false,
            fail_at: None,
            step_delay: None,
            source: None,
            progress: None,
            raise_neigh_limit: false,
            held_by: None,
        }
    }

    /// These options with the test-only faults also read from the environment
    /// (`NSLAB_TEST_FAIL_AT_STEP`, `NSLAB_TEST_STEP_DELAY_MS`): once, where `up` and
    /// `apply` start, so a rollback (which clears them) never meets the injected fault.
    fn with_test_faults(&self) -> UpOptions {
        let fail_at = self.fail_at.or_else(|| {
            std::env::var("NSLAB_TEST_FAIL_AT_STEP")
                .ok()
                .and_then(|v| v.parse().ok())
        });
        let step_delay = self.step_delay.or_else(|| {
            std::env::var("NSLAB_TEST_STEP_DELAY_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis)
        });
        UpOptions {
            fail_at,
            step_delay,
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone)]
pub struct UpReport {
    pub steps: usize,
    pub elapsed: Duration,
    /// The host sysctls raised for the lab, put back at its `down`.
    pub raised: Vec<crate::state::sysctls::Raised>,
}

#[derive(Debug, Clone)]
pub struct DownReport {
    pub objects: usize,
    pub elapsed: Duration,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The runtime apply runs on: two workers, like the host's cores.
pub fn tokio_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("nslab-rt")
        .enable_all()
        .build()
}

/// Waits for the lab's lock, saying so when another command holds it.
pub fn lock(host: &HostContext, lab: &str) -> Result<LabLock, ApplyError> {
    Ok(LabLock::acquire(host, lab, |pid| {
        let who = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
        crate::errln!("nslab: lab `{lab}` is busy with another command{who}; waiting for it");
    })?)
}

/// [`lock`], given up when `cancel` fires while it waits: a signal stops an `up` or an
/// `apply` that waits for another command at once, before it has done anything (the
/// signals are handled, so they no longer end the process).
pub fn lock_or_cancel(
    host: &HostContext,
    lab: &str,
    cancel: &Cancel,
) -> Result<LabLock, ApplyError> {
    let waiting = |pid: Option<u32>| {
        let who = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
        crate::errln!("nslab: lab `{lab}` is busy with another command{who}; waiting for it");
    };
    match LabLock::acquire_unless(host, lab, waiting, || cancel.borrow().clone())? {
        Ok(lock) => Ok(lock),
        Err(signal) => Err(ApplyError::Interrupted {
            lab: lab.to_string(),
            signal,
        }),
    }
}

/// Why `up` refuses a lab that is up: a lab held by a running `nslab test` (or Rust
/// test) is in use, and its own run takes it down, so the advice to take it down would
/// break that run; one whose holder is gone was left by a killed run, for `down`.
fn already_up(lab: String, summary: Option<LabSummary>) -> ApplyError {
    let pid = summary.as_ref().map_or(0, |s| s.pid);
    let Some(by) = summary.and_then(|s| s.held_by) else {
        return ApplyError::AlreadyUp { lab, pid };
    };
    // Signal 0 checks the pid exists (EPERM: it does, as another user's).
    let alive = pid != 0
        && !matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None),
            Err(nix::errno::Errno::ESRCH)
        );
    match alive {
        true => ApplyError::InUse { lab, pid, by },
        false => ApplyError::LeftBehind { lab, pid, by },
    }
}

/// A cancel signal that never fires.
pub fn never() -> Cancel {
    let (tx, rx) = watch::channel(None);
    std::mem::forget(tx);
    rx
}

/// Fires a cancel channel from outside the signal handlers (a closed stdout, say).
pub type Trigger = std::sync::Arc<watch::Sender<Option<String>>>;

/// A cancel channel fed by SIGINT, SIGTERM and SIGHUP (a closed terminal, a dropped ssh
/// session). After the first signal, later ones are absorbed so rollback and teardown
/// can finish; the handlers stay for the rest of the process. Must be called inside a
/// runtime.
pub fn signals() -> (Cancel, tokio::task::JoinHandle<()>) {
    let (rx, _, task) = signals_with_trigger();
    (rx, task)
}

/// [`signals`], with a trigger that cancels the same way (the first reason sticks).
pub fn signals_with_trigger() -> (Cancel, Trigger, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(None);
    let tx = std::sync::Arc::new(tx);
    let trigger = tx.clone();
    let task = tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        let name = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
            _ = hup.recv() => "SIGHUP",
        };
        cancel_with(&tx, name);
        // Further signals are absorbed: rollback must finish.
        loop {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
                _ = hup.recv() => {},
            }
        }
    });
    (rx, trigger, task)
}

/// The cancel reason of a closed stdout (`nslab test lab.yaml | head -1`), told apart from
/// the signals' names.
pub const CLOSED_STDOUT: &str = "a closed stdout (EPIPE)";

/// Cancels with `reason` unless something cancelled already.
pub fn cancel_with(trigger: &watch::Sender<Option<String>>, reason: &str) {
    trigger.send_if_modified(|r| {
        let first = r.is_none();
        if first {
            *r = Some(reason.to_string());
        }
        first
    });
}

/// The executor's options for `up` and `apply`.
fn exec_options(opts: &UpOptions) -> executor::Options {
    executor::Options {
        jobs: opts.jobs,
        fail_at: opts.fail_at,
        step_delay: opts.step_delay,
        progress: opts.progress.clone(),
    }
}

/// Brings a lab up. On any failure everything created so far is removed again, and the
/// first error is returned, naming the lab, node, object and operation.
pub fn up(t: &Topology, plan: &Plan, opts: &UpOptions) -> Result<UpReport, ApplyError> {
    let rt = tokio_runtime().map_err(|e| ApplyError::Host {
        lab: t.lab.clone(),
        source: e,
    })?;
    rt.block_on(async {
        let cancel = if opts.handle_signals {
            signals().0
        } else {
            never()
        };
        up_with(t, plan, opts, cancel).await
    })
}

/// [`up`] inside a caller's runtime, stopping (and rolling back) when `cancel` fires.
pub async fn up_with(
    t: &Topology,
    plan: &Plan,
    opts: &UpOptions,
    cancel: Cancel,
) -> Result<UpReport, ApplyError> {
    let start = Instant::now();
    let opts = &opts.with_test_faults();
    // What the mount sources hold goes on record with the plan, for `apply` to compare.
    let fingerprinted = sources::fingerprint(plan);
    let plan: &Plan = &fingerprinted;
    let lab = t.lab.clone();
    let host = &opts.host;
    // The machine, read only, before the lab's lock file or anything else exists.
    if let Some(name) = &host.host {
        underlay::check(t, name).await?;
    }
    progress::trace("lock");
    let lock = tokio::task::block_in_place(|| lock_or_cancel(host, &lab, &cancel))?;
    let dir = host.lab_dir(&lab);
    admit::not_there_yet(&lab, &dir)?;
    admit::devices_known(&lab, plan)?;
    // The lab's VNIs, checked again under the host's VNI lock, which is held until they
    // are claimed on file below: a lab racing this one for a VNI then sees them taken, and
    // says so, instead of failing on the kernel's EEXIST.
    let vnis = tokio::task::block_in_place(|| crate::state::vnis::lock_free(host, t))?;
    // Until the journal exists, no other lab's `down` may release /run/netns.
    let host_lock = tokio::task::block_in_place(|| crate::state::HostLock::acquire(host))?;
    let admitted = admit::admit(
        t,
        plan,
        opts,
        admit::Held {
            host_lock,
            vnis,
            lock,
        },
    )
    .await?;
    let plan = admitted.patched.as_ref().unwrap_or(plan);
    progress::trace("journal");
    let (mut journal, started) = begin_journal(&lab, &dir, opts)?;
    let registered = register(host, plan, &admitted.joined, &mut journal)?;
    drop(admitted.held.host_lock);
    // Claimed once the journal lists the lab, which is how other labs find the claim; the
    // VNI lock goes with it, so the lab's steps run beside other labs' `up`s.
    if let Some(vnis) = admitted.held.vnis {
        vnis.claim(&dir)?;
    }
    let kernel = &admitted.kernel;
    // Room in the host's neighbour table, which the last lab's entries may still fill
    // (see `neighroom`); under the lab's lock only, so other labs' `up`s go on meanwhile.
    for w in tokio::task::block_in_place(|| neighroom::make_room(t)) {
        crate::errln!("nslab: lab `{lab}`: {w}");
    }
    // Only now, under the lab's lock and with its journal begun: a refused `up` never
    // touches the host's settings, and a failed one puts them back with its rollback.
    let (raised, result) = match registered.and_then(|()| neighlimit::raise(t, opts)) {
        Ok(raised) => (
            raised,
            run_steps(&lab, plan, kernel, opts, &mut journal, cancel).await,
        ),
        Err(e) => (Vec::new(), Err(e)),
    };
    progress::finish(opts.progress.as_ref());
    let outcome = result.and_then(|()| record_up(t, plan, opts, &dir, &mut journal, started));
    if let Err(first) = outcome {
        // Roll back from the journal, the same path `down` takes.
        drop(journal);
        roll_back_up(&lab, &dir, kernel, opts, admitted.held.lock).await;
        return Err(first);
    }
    progress::trace("up returns");
    Ok(UpReport {
        steps: plan.steps.len(),
        elapsed: start.elapsed(),
        raised,
    })
}

/// Puts the lab on a shared management network's registry. Its membership is journaled
/// before the registry has it: a `down` after a kill here still leaves the network. A
/// registry that cannot be written fails the `up` with its rollback, as a failed step
/// does (the outer error is the journal's, which stops `up` at once).
fn register(
    host: &HostContext,
    plan: &Plan,
    joined: &admit::Joined,
    journal: &mut Journal,
) -> Result<Result<(), ApplyError>, ApplyError> {
    let Some((reg, _)) = joined else {
        return Ok(Ok(()));
    };
    let leave = plan.steps.iter().find_map(|s| match &s.op {
        Op::JoinMgmt { .. } => s.op.undo(),
        _ => None,
    });
    if let Some(undo) = leave {
        journal.append(&Record::Object { undo })?;
    }
    Ok(crate::state::mgmtnet::write(host, reg).map_err(ApplyError::from))
}

/// Runs the plan's steps, journaling each object before it is made. A signal that came
/// with the last step still fails it (and so rolls back): an interrupted `up` never
/// leaves a lab up.
async fn run_steps(
    lab: &str,
    plan: &Plan,
    kernel: &NetlinkKernel,
    opts: &UpOptions,
    journal: &mut Journal,
    cancel: Cancel,
) -> Result<(), ApplyError> {
    let exec_opts = exec_options(opts);
    let mut record = |e: executor::Entry| match e {
        executor::Entry::Creating(u) => journal.append(&Record::Object { undo: u.clone() }),
        executor::Entry::Existed(u) => journal.append(&Record::Disown { undo: u.clone() }),
    };
    let late = cancel.clone();
    let made = executor::execute(plan, kernel, &mut record, &exec_opts, cancel).await;
    let made = made.and_then(|()| match late.borrow().clone() {
        Some(signal) => Err(executor::ExecError::Cancelled(signal)),
        None => Ok(()),
    });
    made.map_err(|e| reconcile::exec_error(lab, e))
}

/// Makes the lab's directory and its journal, which begins with who is bringing it up.
fn begin_journal(lab: &str, dir: &LabDir, opts: &UpOptions) -> Result<(Journal, u64), ApplyError> {
    dir.create()?;
    // A capture that outlived the lab's last `down` may have left its event behind.
    let _ = std::fs::remove_file(dir.events_path());
    let mut journal = Journal::create(&dir.journal_path())?;
    let started = now();
    journal.append(&Record::Begin {
        lab: lab.to_string(),
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started,
        file: opts.file.clone(),
    })?;
    Ok((journal, started))
}

/// Puts a lab on record as up once every step is done: its summary, source and plan,
/// then the journal's `up`. Only then, so a full disk here rolls back like any failed
/// step.
fn record_up(
    t: &Topology,
    plan: &Plan,
    opts: &UpOptions,
    dir: &LabDir,
    journal: &mut Journal,
    started: u64,
) -> Result<(), ApplyError> {
    let host = opts.host.host.as_deref();
    let mut summary = LabSummary::of(t, host, &opts.file, started, now());
    summary.held_by = opts.held_by.clone();
    summary
        .write(&dir.summary_path())
        .and_then(|()| match &opts.source {
            Some(src) => crate::state::files::replace(&dir.source_path(), src.as_bytes()),
            None => Ok(()),
        })
        .and_then(|()| {
            let json = serde_json::to_vec(plan).expect("a plan serializes");
            crate::state::files::replace(&dir.plan_path(), &json)
        })
        .and_then(|()| journal.append(&Record::Up { finished: now() }))
        .map(|()| crate::state::vnis::release(dir))
        .map_err(ApplyError::from)
}

/// A failed `up`'s rollback from its journal, the path `down` takes. The lab's lock is
/// let go only when the rollback removed everything; an incomplete one leaves the lab
/// (and the host settings on record) for the `down` that finishes it.
async fn roll_back_up(
    lab: &str,
    dir: &LabDir,
    kernel: &NetlinkKernel,
    opts: &UpOptions,
    lock: LabLock,
) {
    kernel.close_all();
    match rollback(lab, dir, kernel, opts.progress.as_ref()).await {
        Ok(_) => {
            if opts.raise_neigh_limit {
                for e in tokio::task::block_in_place(|| neighlimit::restore(&opts.host, lab)) {
                    crate::errln!("nslab: lab `{lab}`: {e}");
                }
            }
            drop(lock)
        }
        Err(rb) => crate::errln!("nslab: rollback of lab `{lab}` was incomplete: {rb}"),
    }
}

/// Tears a lab down from its journal alone. Every object is attempted; all failures are
/// reported together and the journal is kept until a run removes everything.
pub fn down(host: &HostContext, lab: &str) -> Result<DownReport, ApplyError> {
    down_with(host, lab, None)
}

/// [`down`], telling `progress` about its phases.
pub fn down_with(
    host: &HostContext,
    lab: &str,
    progress: Option<&progress::Reporter>,
) -> Result<DownReport, ApplyError> {
    let lock = lock(host, lab)?;
    down_locked(host, lab, lock, progress)
}

/// [`down_with`] under the lab's `lock`, taken by the caller: `nslab down` holds its
/// signals only from then on (see `sys::held`), so one that waits can still be stopped.
pub fn down_locked(
    host: &HostContext,
    lab: &str,
    lock: LabLock,
    progress: Option<&progress::Reporter>,
) -> Result<DownReport, ApplyError> {
    let start = Instant::now();
    progress::trace("read journal");
    let dir = host.lab_dir(lab);
    let JournalRead {
        mut teardown,
        mut refused,
        lost,
    } = read_journal(&dir)?;
    // Whatever of the lab the journal does not name (cut short, emptied, deleted) is
    // found by its names.
    match (teardown::sweep_by_name(host, lab, &mut teardown), lost) {
        (None, Some(_)) if !dir.any_file() => {
            drop(lock);
            return Err(ApplyError::NotUp(lab.to_string()));
        }
        (None, Some(why)) if !dir.exists() => {
            eprintln!("nslab: lab `{lab}`: {why}; removing the files it left");
        }
        (Some(found), why) => eprintln!(
            "nslab: lab `{lab}`: {}; swept by name: {found}",
            why.unwrap_or_else(|| "its journal misses objects".into())
        ),
        _ => {}
    }
    progress::phase(progress, "stop processes", teardown.nodes.len() as u64);
    let mut errors = nodes::stop_nodes(host, lab, &teardown.node_names());
    // Objects that outlive their namespace's deletion need netlink; most labs have none,
    // and then no runtime or netlink socket is started at all.
    let mut later = teardown::Later::default();
    let netlink = if teardown.netlink.is_empty() {
        None
    } else {
        let rt = tokio_runtime().map_err(|e| ApplyError::Host {
            lab: lab.to_string(),
            source: e,
        })?;
        let kernel = rt.block_on(async {
            NetlinkKernel::new(host, tokio::runtime::Handle::current(), 1).map(|k| k.for_lab(lab))
        });
        match kernel {
            Ok(kernel) => {
                let (e, l) = rt.block_on(undo_netlink(&kernel, lab, &teardown, &mut refused));
                errors.extend(e);
                later = l;
                Some((rt, kernel))
            }
            Err(e) => {
                errors.push(format!("cannot open netlink: {e}"));
                None
            }
        }
    };
    let (rest, held) = remove_rest(host, lab, &teardown, progress);
    errors.extend(rest);
    // Host ends left to the namespaces' deletion: the namespaces go now, and `down`
    // returns only once the host ends have gone with them (the next `up` reuses names).
    let held = match netlink {
        Some((rt, kernel)) => {
            let (e, held) = rt.block_on(undo_later(&kernel, lab, later, held, &mut refused));
            errors.extend(e);
            held
        }
        None => Some(held),
    };
    // Host sysctls raised for the lab on request go back once the lab is gone, with its
    // neighbour entries: those leave as the kernel frees the namespaces, so a lab with
    // such a record lets go of them here rather than last (see `neighlimit`).
    let held = if errors.is_empty() && neighlimit::recorded(host, lab) {
        drop(held);
        errors.extend(neighlimit::restore(host, lab));
        None
    } else {
        held
    };
    progress::finish(progress);
    finish(host, lab, &dir, errors, refused)?;
    drop(lock);
    progress::trace("let go of the namespaces");
    // Only now may the kernel start freeing the namespaces (see `netns::Held`).
    drop(held);
    progress::trace("down returns");
    Ok(DownReport {
        objects: teardown.len(),
        elapsed: start.elapsed(),
    })
}

/// What `down` reads from a journal: its objects, the records refused as not the lab's
/// (see `state::owned`), and why there is nothing to read, if so.
struct JournalRead {
    teardown: crate::plan::Teardown,
    refused: Vec<String>,
    lost: Option<String>,
}

/// A missing, empty or corrupt journal leaves `down` to find the lab by name; a link
/// planted as the journal is refused outright.
fn read_journal(dir: &LabDir) -> Result<JournalRead, ApplyError> {
    let lost = |why: String| JournalRead {
        teardown: crate::plan::Teardown::default(),
        refused: Vec::new(),
        lost: Some(why),
    };
    if !dir.exists() {
        return Ok(lost("it has no journal".into()));
    }
    match teardown::from_journal(dir) {
        Ok((teardown, refused)) => Ok(JournalRead {
            lost: teardown
                .is_empty()
                .then(|| "its journal names no object".into()),
            teardown,
            refused,
        }),
        Err(ApplyError::State(e @ crate::state::StateError::Link(_))) => Err(e.into()),
        Err(e) => Ok(lost(format!("its journal cannot be read ({e})"))),
    }
}

/// Rollback inside `up`: the same teardown as `down`, from the same journal.
async fn rollback(
    lab: &str,
    dir: &LabDir,
    kernel: &NetlinkKernel,
    progress: Option<&progress::Reporter>,
) -> Result<usize, ApplyError> {
    let host = kernel.host();
    let (teardown, mut refused) = teardown::from_journal(dir)?;
    let node_names = teardown.node_names();
    let mut errors = tokio::task::block_in_place(|| nodes::stop_nodes(host, lab, &node_names));
    let (e, later) = undo_netlink(kernel, lab, &teardown, &mut refused).await;
    errors.extend(e);
    kernel.close_all();
    let (rest, held) = tokio::task::block_in_place(|| remove_rest(host, lab, &teardown, progress));
    errors.extend(rest);
    let (e, held) = undo_later(kernel, lab, later, held, &mut refused).await;
    errors.extend(e);
    kernel.close_all();
    progress::finish(progress);
    finish(host, lab, dir, errors, refused)?;
    drop(held);
    Ok(teardown.len())
}

/// Removes the files of a lab whose kernel objects are known to be gone: a rootless lab
/// whose holder died took its namespaces and processes with it (see `crate::rootless`).
pub fn forget(host: &HostContext, lab: &str) -> Result<(), ApplyError> {
    let _lock = lock(host, lab)?;
    teardown::release(host, lab, &host.lab_dir(lab))
}

/// Which lab a command on a running lab means: the one named, or the only one up.
pub fn resolve_lab(host: &HostContext, name: Option<&str>) -> Result<String, ApplyError> {
    if let Some(n) = name {
        crate::model::names::check_lab_name(n)
            .map_err(|e| ApplyError::State(crate::state::StateError::BadLabName(e)))?;
        return Ok(n.to_string());
    }
    let labs = host.labs();
    match labs.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(ApplyError::NoLab),
        many => Err(ApplyError::Ambiguous(many.to_vec())),
    }
}
