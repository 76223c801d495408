//! Runs a plan's step DAG: each step starts once its dependencies are done, up to `jobs`
//! at a time, lowest step id first (so phases stay mostly in order, which the kernel's
//! RTNL lock rewards). Every step that creates an object is journaled before it runs.
//! After the first failure or a cancellation nothing new starts; steps already running
//! finish, so the journal and the kernel agree when rollback begins.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::watch;

use super::error::KernelError;
use super::kernel::Kernel;
use crate::plan::{Plan, Step, StepId, Undo};
use crate::state::StateError;

#[derive(Debug, Clone)]
pub struct Options {
    /// Steps in flight at once (at least 1).
    pub jobs: usize,
    /// Test-only fault injection: this step fails instead of running.
    pub fail_at: Option<StepId>,
    /// Test-only: each step waits this long first, so tests can interrupt a run midway.
    pub step_delay: Option<std::time::Duration>,
    /// Told about every step done.
    pub progress: Option<super::progress::Reporter>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("step {} failed: {error}", .step.id)]
    Step { step: Box<Step>, error: KernelError },
    #[error("interrupted by {0}")]
    Cancelled(String),
    #[error(transparent)]
    Journal(#[from] StateError),
}

/// A cancellation signal: the sender sets a reason (`SIGINT`, ...) and running plans stop.
pub type Cancel = watch::Receiver<Option<String>>;

type Running<'a> =
    FuturesUnordered<Pin<Box<dyn Future<Output = (usize, Result<(), KernelError>)> + Send + 'a>>>;

/// What the executor tells the journal.
pub enum Entry<'a> {
    /// This object is about to be created.
    Creating(&'a Undo),
    /// Its step failed because the object already existed: it is not ours to remove.
    Existed(&'a Undo),
}

/// Executes `plan` on `kernel`. `journal` is called with each step's undo before the step
/// starts; if it fails, the step does not start.
pub async fn execute<K: Kernel>(
    plan: &Plan,
    kernel: &K,
    journal: &mut dyn FnMut(Entry) -> Result<(), StateError>,
    opts: &Options,
    mut cancel: Cancel,
) -> Result<(), ExecError> {
    let n = plan.steps.len();
    let mut waiting: Vec<usize> = plan.steps.iter().map(|s| s.deps.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, s) in plan.steps.iter().enumerate() {
        for d in &s.deps {
            dependents[d - 1].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|i| waiting[*i] == 0).map(Reverse).collect();
    let mut running: Running = FuturesUnordered::new();
    let mut failure: Option<ExecError> = None;
    let mut cancelled: Option<String> = cancel.borrow().clone();
    // Fires on the first failure or on cancellation: steps that wait on processes or
    // user commands stop waiting (dropping them kills what they started); the rest are
    // short kernel requests and finish, so the journal and the kernel agree.
    let (abort_tx, abort_rx) = watch::channel(false);
    let jobs = opts.jobs.max(1);
    let mut done = 0usize;
    super::progress::phase(opts.progress.as_ref(), "up", n as u64);

    loop {
        while failure.is_none() && cancelled.is_none() && running.len() < jobs {
            let Some(Reverse(i)) = ready.pop() else { break };
            let step = &plan.steps[i];
            if let Some(u) = step.op.undo()
                && let Err(e) = journal(Entry::Creating(&u))
            {
                failure = Some(e.into());
                break;
            }
            let inject = opts.fail_at == Some(step.id);
            let delay = opts.step_delay;
            let mut abort = abort_rx.clone();
            running.push(Box::pin(async move {
                if let Some(d) = delay {
                    tokio::time::sleep(d).await;
                }
                if inject {
                    return (i, Err(KernelError::Injected));
                }
                if !step.op.interruptible() {
                    return (i, kernel.apply(&step.op).await);
                }
                tokio::select! {
                    r = kernel.apply(&step.op) => (i, r),
                    _ = abort.wait_for(|a| *a) => (i, Err(KernelError::Other("stopped for the rollback".into()))),
                }
            }));
        }
        // Any failure (a step's, or the journal's) stops the waiting steps.
        if failure.is_some() && !*abort_rx.borrow() {
            let _ = abort_tx.send(true);
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            Some((i, result)) = running.next() => match result {
                Ok(()) => {
                    done += 1;
                    super::progress::advance(opts.progress.as_ref(), plan.steps[i].op.name());
                    for &d in &dependents[i] {
                        waiting[d] -= 1;
                        if waiting[d] == 0 {
                            ready.push(Reverse(d));
                        }
                    }
                }
                Err(_) if *abort_rx.borrow() && plan.steps[i].op.interruptible() => {
                    // Stopped because of the first failure or a signal: not a failure itself.
                }
                Err(error) => {
                    if let (KernelError::NetnsExists(_), Some(u)) = (&error, plan.steps[i].op.undo())
                        && let Err(e) = journal(Entry::Existed(&u))
                        && failure.is_none()
                    {
                        failure = Some(e.into());
                    }
                    if failure.is_none() {
                        failure = Some(ExecError::Step { step: Box::new(plan.steps[i].clone()), error });
                        let _ = abort_tx.send(true);
                    }
                }
            },
            Ok(()) = cancel.changed(), if cancelled.is_none() => {
                cancelled = cancel.borrow().clone();
                if cancelled.is_some() {
                    let _ = abort_tx.send(true);
                }
            }
        }
    }
    if let Some(f) = failure {
        return Err(f);
    }
    if let Some(reason) = cancelled {
        return Err(ExecError::Cancelled(reason));
    }
    debug_assert_eq!(done, n, "every step ran");
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::{HashMap, HashSet};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::plan::Op;

    /// A kernel in memory: namespaces and the links in them, with a veth's two ends
    /// dying together as in Linux. Steps take a pseudo-random few hundred microseconds.
    #[derive(Default)]
    pub struct FakeKernel {
        pub state: Mutex<FakeState>,
        in_flight: AtomicUsize,
        pub max_in_flight: AtomicUsize,
    }

    #[derive(Default, Debug)]
    pub struct FakeState {
        pub netns: HashSet<String>,
        /// (netns, ifindex) -> the other end, if a veth.
        pub links: HashMap<(String, u32), Option<(String, u32)>>,
        pub log: Vec<String>,
    }

    impl FakeKernel {
        fn delay(op: &Op) -> Duration {
            let h = crate::model::names::fnv1a(&[&format!("{op:?}")]);
            Duration::from_micros(50 + h % 400)
        }
    }

    impl Kernel for FakeKernel {
        async fn apply(&self, op: &Op) -> Result<(), KernelError> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Self::delay(op)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            let mut s = self.state.lock().unwrap();
            s.log.push(op.name().to_string());
            let need = |s: &FakeState, ns: &str| {
                if s.netns.contains(ns) {
                    Ok(())
                } else {
                    Err(KernelError::Other(format!("no namespace {ns}")))
                }
            };
            match op {
                Op::CreateNetns { netns } => {
                    if !s.netns.insert(netns.to_string()) {
                        return Err(KernelError::NetnsExists(netns.to_string()));
                    }
                }
                Op::CreateBridge { netns, ifindex, .. } => {
                    need(&s, netns)?;
                    s.links.insert((netns.to_string(), *ifindex), None);
                }
                Op::CreateLink(l) => {
                    for n in l.namespaces() {
                        need(&s, n)?;
                    }
                    let ends: Vec<(String, u32)> = l
                        .ends()
                        .into_iter()
                        .map(|e| (e.netns.to_string(), e.ifindex))
                        .collect();
                    // A pair's ends know each other: deleting one deletes both.
                    for (i, e) in ends.iter().enumerate() {
                        let other = (ends.len() == 2).then(|| ends[1 - i].clone());
                        s.links.insert(e.clone(), other);
                    }
                }
                Op::SetLinkUp { netns, ifindex, .. }
                | Op::SetLinkDown { netns, ifindex, .. }
                | Op::SetMtu { netns, ifindex, .. }
                | Op::SetMulticastSnooping { netns, ifindex, .. }
                | Op::AddAddress { netns, ifindex, .. }
                | Op::SetImpair { netns, ifindex, .. } => {
                    need(&s, netns)?;
                    if *ifindex != 1 && !s.links.contains_key(&(netns.to_string(), *ifindex)) {
                        return Err(KernelError::Other(format!("no link #{ifindex} in {netns}")));
                    }
                }
                Op::SetSysctl { netns, .. } | Op::AddRoute { netns, .. } => need(&s, netns)?,
                Op::Barrier { .. }
                | Op::WriteHosts { .. }
                | Op::CreateMountTemplate { .. }
                | Op::MountRunDirs { .. }
                | Op::CreateCgroup { .. }
                | Op::StartNode { .. }
                | Op::StartProcess { .. }
                | Op::AddProcess { .. }
                | Op::RunExec { .. } => {}
            }
            Ok(())
        }

        async fn undo(&self, undo: &Undo) -> Result<(), KernelError> {
            let mut s = self.state.lock().unwrap();
            if let Undo::DeleteNetns { netns } = undo {
                s.netns.remove(&**netns);
                let dead: Vec<(String, u32)> = s
                    .links
                    .keys()
                    .filter(|(ns, _)| **ns == **netns)
                    .cloned()
                    .collect();
                for k in dead {
                    if let Some(Some(peer)) = s.links.remove(&k) {
                        s.links.remove(&peer);
                    }
                }
            }
            Ok(())
        }
    }

    pub fn no_cancel() -> Cancel {
        let (tx, rx) = watch::channel(None);
        std::mem::forget(tx);
        rx
    }

    fn plan_of(yaml: &str) -> Plan {
        let c = crate::compile_str(yaml, "t.yaml", std::path::Path::new("/")).unwrap();
        crate::plan::plan(&c.topology)
    }

    const LAB: &str = "
name: exec
bridges: { sw: {} }
nodes: { a: { loopback: auto, sysctls: { net.ipv4.ip_forward: 1 } }, b: {}, c: {}, d: {} }
links: [[a:eth0, b:eth0], [b:eth1, c:eth0], [c:eth1, sw], [d:eth0, sw], [a:eth1, sw]]
routing: static
";

    fn run(
        plan: &Plan,
        jobs: usize,
        fail_at: Option<StepId>,
    ) -> (FakeKernel, Vec<Undo>, Result<(), ExecError>) {
        let kernel = FakeKernel::default();
        let mut journal = Vec::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let opts = Options {
            jobs,
            fail_at,
            step_delay: None,
            progress: None,
        };
        let r = rt.block_on(execute(
            plan,
            &kernel,
            &mut |e| {
                if let Entry::Creating(u) = e {
                    journal.push(u.clone());
                }
                Ok(())
            },
            &opts,
            no_cancel(),
        ));
        (kernel, journal, r)
    }

    #[test]
    fn dependencies_hold_and_jobs_bound_concurrency() {
        let plan = plan_of(LAB);
        for jobs in [1, 3, 16] {
            let (k, journal, r) = run(&plan, jobs, None);
            r.unwrap();
            assert!(k.max_in_flight.load(Ordering::SeqCst) <= jobs);
            let s = k.state.lock().unwrap();
            assert_eq!(s.log.len(), plan.steps.len());
            assert_eq!(s.netns.len(), 5);
            assert_eq!(
                journal.len(),
                plan.steps.iter().filter(|s| s.op.undo().is_some()).count()
            );
        }
        let (k, _, _) = run(&plan, 16, None);
        assert!(
            k.max_in_flight.load(Ordering::SeqCst) > 1,
            "independent steps run concurrently"
        );
    }

    #[test]
    fn every_failure_point_rolls_back_to_nothing() {
        let plan = plan_of(LAB);
        for k in 1..=plan.steps.len() {
            let (kernel, journal, r) = run(&plan, 4, Some(k));
            match r {
                Err(ExecError::Step {
                    step,
                    error: KernelError::Injected,
                }) => assert_eq!(step.id, k),
                other => panic!("step {k}: {other:?}"),
            }
            // Rollback from the journal alone leaves nothing behind.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            // The teardown `down` runs, phase by phase, as `plan --teardown` prints it.
            for u in crate::plan::Teardown::of(journal).in_order() {
                rt.block_on(kernel.undo(u)).unwrap();
            }
            let s = kernel.state.lock().unwrap();
            assert!(s.netns.is_empty() && s.links.is_empty(), "step {k}: {s:?}");
        }
    }

    /// The fake kernel, except that user commands never finish.
    struct HangingExec(FakeKernel);

    impl Kernel for HangingExec {
        async fn apply(&self, op: &Op) -> Result<(), KernelError> {
            if let Op::RunExec { .. } = op {
                std::future::pending::<()>().await;
            }
            self.0.apply(op).await
        }

        async fn undo(&self, undo: &Undo) -> Result<(), KernelError> {
            self.0.undo(undo).await
        }
    }

    #[test]
    fn a_journal_failure_stops_waiting_commands() {
        // A command that runs forever, and beside it a step whose journal entry cannot
        // be written: the run must end (and roll back), not wait for the command.
        let plan = Plan {
            lab: "exec".into(),
            steps: vec![
                Step {
                    id: 1,
                    op: Op::RunExec {
                        netns: "nslab.exec.a".into(),
                        node: "a".into(),
                        argv: vec!["sleep".into(), "inf".into()],
                        ignore_errors: false,
                        timeout_ms: None,
                    },
                    deps: vec![],
                },
                Step {
                    id: 2,
                    op: Op::CreateNetns {
                        netns: "nslab.exec.b".into(),
                    },
                    deps: vec![],
                },
            ],
        };
        let kernel = HangingExec(FakeKernel::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let opts = Options {
            jobs: 2,
            fail_at: None,
            step_delay: None,
            progress: None,
        };
        let mut journal = |_: Entry| {
            Err(StateError::Io {
                path: "/run/nslab/exec.journal".into(),
                source: std::io::Error::other("disk full"),
            })
        };
        let r = rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(10),
                execute(&plan, &kernel, &mut journal, &opts, no_cancel()),
            )
            .await
        });
        let r = r.expect("the run ended instead of waiting for the command");
        assert!(matches!(r, Err(ExecError::Journal(_))), "{r:?}");
    }

    #[test]
    fn cancellation_stops_new_steps() {
        let plan = plan_of(LAB);
        let kernel = FakeKernel::default();
        let (tx, rx) = watch::channel(None);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let r = rt.block_on(async {
            let stop = async {
                tokio::time::sleep(Duration::from_micros(700)).await;
                tx.send(Some("SIGINT".into())).unwrap();
            };
            let opts = Options {
                jobs: 2,
                fail_at: None,
                step_delay: None,
                progress: None,
            };
            let mut journal = |_: Entry| Ok(());
            let (r, ()) = tokio::join!(execute(&plan, &kernel, &mut journal, &opts, rx), stop);
            r
        });
        assert!(
            matches!(r, Err(ExecError::Cancelled(ref s)) if s == "SIGINT"),
            "{r:?}"
        );
        assert!(kernel.state.lock().unwrap().log.len() < plan.steps.len());
    }
}
