//! `nslab agent FILE`: keeps this machine's share of a lab what FILE says, for as long
//! as it runs, as the container of `nslab k8s`'s DaemonSet. It brings the lab up, or
//! adopts the one a killed agent left (the same journal: `apply` of an unchanged file
//! changes nothing, and the nodes' processes keep running); applies the file again each
//! time it changes (a ConfigMap update); and on SIGTERM or SIGINT (a deleted Pod) takes
//! the lab down and exits 0. When the lab cannot come up it says so in one line and
//! exits non-zero, so the kubelet restarts it and `kubectl logs` shows why.

pub mod parts;
mod retry;
mod watch;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use retry::Retry;

pub use watch::{Seen, Watch};

use crate::apply::executor::Cancel;
use crate::apply::reconcile::Applied;
use crate::apply::{self, ApplyError, UpOptions};
use crate::compile::CompileError;
use crate::state::HostContext;

/// How often the file is looked at.
const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot start the agent's runtime: {0}")]
    Runtime(std::io::Error),
    #[error(
        "cannot join the machine's cgroup namespace (that of pid 1, /proc/1/ns/cgroup), which the nodes' cgroups outside the agent's container need: {0}"
    )]
    CgroupNamespace(String),
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// `--host` names no host of the lab, or the lab has none.
    #[error(transparent)]
    Share(crate::state::StateError),
    #[error("lab `{lab}` could not come up: {source}")]
    Up {
        lab: String,
        #[source]
        source: ApplyError,
    },
    #[error("lab `{lab}` did not go down cleanly: {source}")]
    Down {
        lab: String,
        #[source]
        source: ApplyError,
    },
}

/// How the agent ended, when it ended well.
#[derive(Debug, PartialEq, Eq)]
pub struct Stopped {
    pub lab: String,
    /// The signal that stopped it.
    pub signal: String,
}

/// Runs the agent until a signal; see the module's documentation.
pub fn run(host: &HostContext, file: &Path) -> Result<Stopped, AgentError> {
    host_cgroup_namespace().map_err(AgentError::CgroupNamespace)?;
    let rt = apply::tokio_runtime().map_err(AgentError::Runtime)?;
    // The handlers live on the runtime for the rest of the process; later signals are
    // absorbed so a rollback or the final `down` can finish.
    let (cancel, _signals) = {
        let _in = rt.enter();
        apply::signals()
    };
    if let Some(signal) = rt.block_on(parts_agree(file, cancel.clone())) {
        return Ok(Stopped {
            lab: compile(file)?.topology.lab,
            signal,
        });
    }
    let mut watch = Watch::new(file);
    let c = compile(file)?;
    let lab = c.topology.lab.clone();
    let owned = for_lab(host, &c.topology);
    let host = &owned;
    let came_up = bring_up(&rt, host, file, &c, &cancel);
    if let Some(signal) = signalled(&cancel) {
        return stop(host, &lab, signal);
    }
    came_up?;
    let mut retry: Option<Retry> = None;
    loop {
        if let Some(signal) = rt.block_on(wait(cancel.clone())) {
            return stop(host, &lab, signal);
        }
        let again = |before: Option<Retry>| {
            let failed = change(&rt, host, file, &lab, &cancel).err();
            settle(host, &lab, before, failed)
        };
        match watch.look() {
            Seen::Same => match retry.take() {
                // Never a volume caught halfway through an update.
                Some(r) if r.is_due(Instant::now()) && parts::agree(&dir_of(file)).is_ok() => {
                    retry = again(Some(r))
                }
                other => retry = other,
            },
            Seen::Unreadable(why) => log(format_args!("cannot read {}: {why}", file.display())),
            Seen::Changed if let Err(why) = parts::agree(&dir_of(file)) => {
                log(format_args!("the changed file is not applied yet: {why}"));
            }
            Seen::Changed => {
                if let Some(r) = retry.take() {
                    let why = format!("the file changed; its last attempt failed: {}", r.error);
                    event(host, &lab, "agent-retry-dropped", &why);
                    log(format_args!(
                        "stopped retrying after {}: {why}",
                        crate::words::count(r.attempts as usize, "attempt")
                    ));
                }
                retry = again(None);
            }
        }
    }
}

/// What an attempt leaves: a retry when it `failed` (logged, and recorded in the lab's
/// `nslab events` with the error and when the next attempt is), none when it worked.
fn settle(
    host: &HostContext,
    lab: &str,
    before: Option<Retry>,
    failed: Option<String>,
) -> Option<Retry> {
    let Some(error) = failed else {
        if let Some(r) = before {
            let what = format!("applied at attempt {}, after: {}", r.attempts + 1, r.error);
            event(host, lab, "agent-apply-retried", &what);
            log(format_args!("lab `{lab}`: {what}"));
        }
        return None;
    };
    let r = Retry::after(before.as_ref(), error, Instant::now());
    let what = format!(
        "attempt {} failed, retrying in {} s: {}",
        r.attempts,
        retry::delay(r.attempts).as_secs(),
        r.error
    );
    event(host, lab, "agent-apply-failed", &what);
    log(format_args!("lab `{lab}`: {what}"));
    Some(r)
}

/// One line in the lab's event log; a log line instead when it cannot be written.
fn event(host: &HostContext, lab: &str, action: &str, detail: &str) {
    if let Err(e) = crate::runtime::events::record(&host.lab_dir(lab), action, lab, detail) {
        log(format_args!(
            "cannot record `{action}` in the lab's events: {e}"
        ));
    }
}

/// The DaemonSet passes every agent `--host` with its Kubernetes node's name: a lab with
/// `hosts:` takes that host's share, a lab without runs whole on each node, as `up`
/// without `--host` does (its state then names no host).
fn for_lab(host: &HostContext, t: &crate::model::Topology) -> HostContext {
    let mut h = host.clone();
    if t.hosts.is_empty() {
        h.host = None;
    }
    h
}

/// `apply`: up when the lab is not up, else adopted and made what the file says. A lab
/// left incomplete by an agent killed during `up` is removed and brought up again.
fn bring_up(
    rt: &tokio::runtime::Runtime,
    host: &HostContext,
    file: &Path,
    c: &crate::Compiled,
    cancel: &Cancel,
) -> Result<(), AgentError> {
    let lab = c.topology.lab.clone();
    let up_error = |source| AgentError::Up {
        lab: lab.clone(),
        source,
    };
    let plan = share(host, c).map_err(AgentError::Share)?;
    let applied = match rt.block_on(apply_file(host, file, c, &plan, cancel.clone())) {
        Err(ApplyError::Leftovers { .. }) => {
            log(format_args!(
                "lab `{lab}` was left incomplete by an interrupted up; removing it first"
            ));
            // Outside the runtime: `down` runs one of its own.
            apply::down(host, &lab).map_err(up_error)?;
            rt.block_on(apply_file(host, file, c, &plan, cancel.clone()))
        }
        other => other,
    };
    match applied.map_err(up_error)? {
        Applied::Up(r) => log(format_args!(
            "lab `{lab}` is up: {} in {:.2} s",
            crate::words::count(r.steps, "step"),
            r.elapsed.as_secs_f64()
        )),
        Applied::Changed { diff, .. } if diff.groups.is_empty() => log(format_args!(
            "lab `{lab}` was up and is what the file says: adopted, nothing changed"
        )),
        Applied::Changed { diff, .. } => log(format_args!(
            "lab `{lab}` was up: adopted, {} made what the file says",
            crate::words::count(diff.groups.len(), "node")
        )),
    }
    Ok(())
}

/// Applies a changed file; a file that does not compile, names another lab, or fails
/// to apply leaves the lab as it was (said in the log), and the agent goes on. The
/// error of a failure that applying again may get past (the share's check, the apply
/// itself, both about the machine), for a retry; the file's own faults wait for a new
/// file.
fn change(
    rt: &tokio::runtime::Runtime,
    host: &HostContext,
    file: &Path,
    lab: &str,
    cancel: &Cancel,
) -> Result<(), String> {
    let c = match compile(file) {
        Ok(c) => c,
        Err(e) => {
            log(format_args!("the changed file is not applied: {e}"));
            return Ok(());
        }
    };
    if c.topology.lab != lab {
        log(format_args!(
            "the changed file names lab `{}`, not `{lab}`; not applied (a new lab needs a new agent)",
            c.topology.lab
        ));
        return Ok(());
    }
    let plan = match share(host, &c) {
        Ok(p) => p,
        Err(why) => {
            log(format_args!("the changed file is not applied: {why}"));
            return Err(why.to_string());
        }
    };
    match rt.block_on(apply_file(host, file, &c, &plan, cancel.clone())) {
        Ok(Applied::Changed { diff, elapsed, .. }) if !diff.groups.is_empty() => log(format_args!(
            "lab `{lab}` changed ({}) in {:.3} s",
            crate::words::count(diff.groups.len(), "node"),
            elapsed.as_secs_f64()
        )),
        Ok(Applied::Up(r)) => log(format_args!(
            "lab `{lab}` was not up; it is now: {}",
            crate::words::count(r.steps, "step")
        )),
        Ok(_) => log(format_args!(
            "the file changed, lab `{lab}` already is what it says"
        )),
        Err(e) => {
            log(format_args!(
                "the changed file is not applied, lab `{lab}` stays as it was: {e}"
            ));
            return Err(e.to_string());
        }
    }
    Ok(())
}

async fn apply_file(
    host: &HostContext,
    file: &Path,
    c: &crate::Compiled,
    plan: &crate::plan::Plan,
    cancel: Cancel,
) -> Result<Applied, ApplyError> {
    let opts = UpOptions {
        file: absolute(file).display().to_string(),
        source: Some(c.warnings.source.clone()),
        ..UpOptions::new(host.clone())
    };
    crate::runtime::apply_with(&c.topology, plan, &opts, cancel).await
}

/// This machine's share of the lab (all of it without --host). VNIs probe past those
/// of the other labs on this host, so the plan is made just before it is applied.
fn share(
    host: &HostContext,
    c: &crate::Compiled,
) -> Result<crate::plan::Plan, crate::state::StateError> {
    crate::state::vnis::host_plan(host, &c.topology)
}

/// Joins the cgroup namespace of the machine's pid 1 (the DaemonSet's `hostPID` shows
/// it) when the agent's differs: a container's own cgroup namespace is rooted at its
/// cgroup, and cgroup v2 refuses to move a process to a group outside the mover's
/// namespace, which is where the nodes' groups are (see [`compile`]).
fn host_cgroup_namespace() -> Result<(), String> {
    let ino = |p: &str| std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    match (ino("/proc/self/ns/cgroup"), ino("/proc/1/ns/cgroup")) {
        (Ok(a), Ok(b)) if a != b => {}
        // The same, or no cgroup namespaces here, or pid 1 hidden: nothing to join.
        _ => return Ok(()),
    }
    let fd = std::fs::File::open("/proc/1/ns/cgroup").map_err(|e| e.to_string())?;
    nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWCGROUP).map_err(|e| e.desc().into())
}

/// The file compiled with the host's checks, as `up` does; warnings go to the log. Each
/// node gets cgroups of its own outside the agent's: the kubelet kills the agent
/// container's whole cgroup when it restarts it, and the lab must outlive that for the
/// next agent to adopt.
fn compile(file: &Path) -> Result<crate::Compiled, CompileError> {
    let mut c = crate::preflight(crate::compile_file(file)?)?;
    c.topology.own_cgroups = true;
    let warnings = c.warnings.render(crate::Severity::Warning);
    if !warnings.is_empty() {
        crate::err!("{warnings}");
    }
    Ok(c)
}

/// Waits until the parts of a split lab's volume are of one generation (said once in
/// the log while they are not), or returns the signal that came first.
async fn parts_agree(file: &Path, cancel: Cancel) -> Option<String> {
    let mut said = None;
    loop {
        match parts::agree(&dir_of(file)) {
            Ok(()) => return None,
            Err(why) if said.as_ref() != Some(&why) => {
                log(format_args!("not starting yet: {why}"));
                said = Some(why);
            }
            Err(_) => {}
        }
        if let Some(signal) = wait(cancel.clone()).await {
            return Some(signal);
        }
    }
}

fn dir_of(file: &Path) -> PathBuf {
    file.parent().unwrap_or(Path::new(".")).to_path_buf()
}

/// Sleeps one poll, or returns the signal that arrived meanwhile.
async fn wait(mut cancel: Cancel) -> Option<String> {
    if let Some(s) = signalled(&cancel) {
        return Some(s);
    }
    tokio::select! {
        _ = cancel.changed() => signalled(&cancel),
        _ = tokio::time::sleep(POLL) => None,
    }
}

fn signalled(cancel: &Cancel) -> Option<String> {
    cancel.borrow().clone()
}

/// Takes the lab down (outside the runtime: `down` runs one of its own).
fn stop(host: &HostContext, lab: &str, signal: String) -> Result<Stopped, AgentError> {
    let stopped = Stopped {
        lab: lab.to_string(),
        signal,
    };
    if !host.lab_dir(lab).exists() {
        // A signal during the first `up` rolled it back already.
        log(format_args!("{}: lab `{lab}` is not up", stopped.signal));
        return Ok(stopped);
    }
    log(format_args!("{}: taking lab `{lab}` down", stopped.signal));
    let r = apply::down(host, lab).map_err(|source| AgentError::Down {
        lab: lab.to_string(),
        source,
    })?;
    log(format_args!(
        "lab `{lab}` is down: {} removed in {:.2} s",
        crate::words::count(r.objects, "object"),
        r.elapsed.as_secs_f64()
    ));
    Ok(stopped)
}

fn absolute(file: &Path) -> PathBuf {
    std::path::absolute(file).unwrap_or(file.to_path_buf())
}

/// One line of the agent's log (the container's stderr, read by `kubectl logs`).
pub fn log(line: std::fmt::Arguments) {
    crate::errln!("nslab agent: {line}");
}
