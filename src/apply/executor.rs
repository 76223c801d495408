//! Runs a plan's step DAG: each step starts once its dependencies are done, up to `jobs`
//! at a time, lowest step id first (so phases stay mostly in order, which the kernel's
//! RTNL lock rewards). Every step that creates an object is journaled before it runs.
//!
//! One exception to lowest id first, the node lane: up to two of the ready steps that
//! start nodes' inits (and the run directories, hosts file, mount template and cgroups
//! those wait for) start ahead of lower ids, always leaving the rest at least one slot.
//! The plan lets a node's init start once its own network namespace exists, but its
//! step id comes after all of the wiring's, so lowest id first alone started inits only
//! once the wiring had run out of ready steps. An init's start is mostly work in other
//! processes (the fork server, the init's mounts), the wiring is netlink work in
//! nslab's threads: side by side they keep both CPUs busier. Two, because more slowed
//! the wiring more than it gained (1, 2, 4 and 7 measured at 1,000 nodes; see
//! docs/performance.md, "Node starts beside the wiring"). Past those two, node-lane
//! steps take free slots by id like the rest.
//! The order stays deterministic: the same plan and the same completion order start
//! the same steps.
//!
//! A started process's readiness wait ([`Kernel::ready`]) holds no job slot: only the
//! steps that depend on that process wait for it, so a lab of slow daemons starts them
//! all at once instead of `jobs` at a time.
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
use super::kernel::{Begun, Kernel};
use crate::plan::{Op, Plan, Step, StepId, Undo};
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

/// Which part of a step a running future is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    /// [`Kernel::start`]: holds a job slot.
    Start,
    /// [`Kernel::ready`]: waits without one.
    Ready,
}

type Outcome = (usize, Part, Result<Begun, KernelError>);
type Running<'a> = FuturesUnordered<Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>>;

/// The slot-holding part of step `i`, with the test-only delay and fault injection.
async fn apply_step<K: Kernel>(
    i: usize,
    step: &Step,
    kernel: &K,
    opts: &Options,
    abort: watch::Receiver<bool>,
) -> Outcome {
    let work = async {
        if let Some(d) = opts.step_delay {
            tokio::time::sleep(d).await;
        }
        if opts.fail_at == Some(step.id) {
            return Err(KernelError::Injected);
        }
        kernel.start(&step.op).await
    };
    unless_aborted(i, Part::Start, step.op.interruptible(), abort, work).await
}

/// `work`, given up with an error once `abort` fires when the step may wait on something
/// outside nslab (dropping it kills what it started).
async fn unless_aborted(
    i: usize,
    part: Part,
    interruptible: bool,
    mut abort: watch::Receiver<bool>,
    work: impl Future<Output = Result<Begun, KernelError>>,
) -> Outcome {
    if !interruptible {
        return (i, part, work.await);
    }
    tokio::select! {
        r = work => (i, part, r),
        _ = abort.wait_for(|a| *a) => (i, part, Err(KernelError::Other("stopped for the rollback".into()))),
    }
}

/// Whether a step belongs to the node lane: starting nodes' inits, and the few steps
/// those starts wait for besides their network namespace.
fn node_lane(op: &Op) -> bool {
    matches!(
        op,
        Op::StartNode { .. }
            | Op::MountRunDirs { .. }
            | Op::WriteHosts { .. }
            | Op::CreateMountTemplate { .. }
            | Op::CreateCgroup { .. }
    )
}

/// Node-lane steps that may start ahead of lower ids at once (see the module's comment).
const NODE_SLOTS: usize = 2;

/// How many job slots the node lane may claim ahead of lower step ids; at least one is
/// always left to the rest.
fn node_slots(jobs: usize) -> usize {
    NODE_SLOTS.min(jobs - 1)
}

/// The steps ready to start, in two lanes, each lowest step id first. Up to `reserved`
/// node-lane steps start ahead of everything else; past that, both lanes share the
/// free slots lowest id first, as one queue would. A step joins a lane once every step
/// it depends on is done.
struct Ready<'p> {
    plan: &'p Plan,
    /// Per step, how many of its dependencies are not done yet.
    waiting: Vec<usize>,
    /// Per step, the steps that depend on it.
    dependents: Vec<Vec<usize>>,
    nodes: BinaryHeap<Reverse<usize>>,
    rest: BinaryHeap<Reverse<usize>>,
    /// Node-lane steps holding a job slot.
    nodes_busy: usize,
    reserved: usize,
}

impl<'p> Ready<'p> {
    /// The plan's steps without dependencies ready, the rest waiting for theirs.
    fn new(plan: &'p Plan, jobs: usize) -> Self {
        let n = plan.steps.len();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, s) in plan.steps.iter().enumerate() {
            for d in &s.deps {
                dependents[d - 1].push(i);
            }
        }
        let mut ready = Ready {
            plan,
            waiting: plan.steps.iter().map(|s| s.deps.len()).collect(),
            dependents,
            nodes: BinaryHeap::new(),
            rest: BinaryHeap::new(),
            nodes_busy: 0,
            reserved: node_slots(jobs),
        };
        for i in 0..n {
            if ready.waiting[i] == 0 {
                ready.push(i);
            }
        }
        ready
    }

    /// Step `i` is done: the steps waiting only for it become ready.
    fn done(&mut self, i: usize) {
        for k in 0..self.dependents[i].len() {
            let d = self.dependents[i][k];
            self.waiting[d] -= 1;
            if self.waiting[d] == 0 {
                self.push(d);
            }
        }
    }

    fn push(&mut self, i: usize) {
        if node_lane(&self.plan.steps[i].op) {
            self.nodes.push(Reverse(i));
        } else {
            self.rest.push(Reverse(i));
        }
    }

    /// The next step to start, counted as holding a slot until [`Ready::finished`].
    fn pop(&mut self) -> Option<usize> {
        let node_first = match (self.nodes.peek(), self.rest.peek()) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(a), Some(b)) => self.nodes_busy < self.reserved || a > b,
        };
        if node_first {
            self.nodes_busy += 1;
            self.nodes.pop().map(|Reverse(i)| i)
        } else {
            self.rest.pop().map(|Reverse(i)| i)
        }
    }

    /// Step `i`'s slot-holding part ended.
    fn finished(&mut self, i: usize) {
        if node_lane(&self.plan.steps[i].op) {
            self.nodes_busy -= 1;
        }
    }
}

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
    // Node inits are started from the spawner's threads; they and their fork servers end
    // when the last plan running in this process is done.
    let _spawner = super::spawner::session();
    let n = plan.steps.len();
    let jobs = opts.jobs.max(1);
    let mut ready = Ready::new(plan, jobs);
    let mut running: Running = FuturesUnordered::new();
    let mut failure: Option<ExecError> = None;
    let mut cancelled: Option<String> = cancel.borrow().clone();
    // Fires on the first failure or on cancellation: steps that wait on processes or
    // user commands stop waiting (dropping them kills what they started); the rest are
    // short kernel requests and finish, so the journal and the kernel agree.
    let (abort_tx, abort_rx) = watch::channel(false);
    // Futures in `running` that hold a job slot (the others wait for readiness).
    let mut busy = 0usize;
    let mut done = 0usize;
    super::progress::phase(opts.progress.as_ref(), "up", n as u64);
    let mut kinds = super::progress::KindTrace::new(plan);

    loop {
        while failure.is_none() && cancelled.is_none() && busy < jobs {
            let Some(i) = ready.pop() else { break };
            let step = &plan.steps[i];
            if let Some(u) = step.op.undo()
                && let Err(e) = journal(Entry::Creating(&u))
            {
                failure = Some(e.into());
                break;
            }
            kinds.start(step.op.name());
            running.push(Box::pin(apply_step(
                i,
                step,
                kernel,
                opts,
                abort_rx.clone(),
            )));
            busy += 1;
        }
        // Any failure (a step's, or the journal's) stops the waiting steps.
        if failure.is_some() && !*abort_rx.borrow() {
            let _ = abort_tx.send(true);
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            Some((i, part, result)) = running.next() => {
                if part == Part::Start {
                    busy -= 1;
                    ready.finished(i);
                }
                let op = &plan.steps[i].op;
                match result {
                    // Started: its readiness is awaited without the slot.
                    Ok(Begun::Pending) => {
                        let abort = abort_rx.clone();
                        let wait = async { kernel.ready(op).await.map(|()| Begun::Done) };
                        running.push(Box::pin(unless_aborted(i, Part::Ready, op.interruptible(), abort, wait)));
                    }
                    Ok(Begun::Done) => {
                        done += 1;
                        kinds.done(op.name());
                        super::progress::advance(opts.progress.as_ref(), op.name());
                        ready.done(i);
                    }
                    Err(_) if *abort_rx.borrow() && op.interruptible() => {
                        // Stopped because of the first failure or a signal: not a failure itself.
                    }
                    Err(error) => {
                        if let (KernelError::NetnsExists(_), Some(u)) = (&error, op.undo())
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
                }
            }
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
                Op::CreateBridge { netns, ifindex, .. } | Op::JoinMgmt { netns, ifindex, .. } => {
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

    /// The fake kernel, where a started process gets ready only once all `n` of them
    /// have been started, or never (`n` = 0).
    struct ReadyTogether {
        inner: FakeKernel,
        barrier: Option<tokio::sync::Barrier>,
    }

    impl ReadyTogether {
        fn new(n: usize) -> ReadyTogether {
            ReadyTogether {
                inner: FakeKernel::default(),
                barrier: (n > 0).then(|| tokio::sync::Barrier::new(n)),
            }
        }
    }

    impl Kernel for ReadyTogether {
        async fn apply(&self, op: &Op) -> Result<(), KernelError> {
            self.inner.apply(op).await
        }

        async fn start(&self, op: &Op) -> Result<Begun, KernelError> {
            self.inner.apply(op).await?;
            Ok(match op {
                Op::StartProcess { .. } => Begun::Pending,
                _ => Begun::Done,
            })
        }

        async fn ready(&self, op: &Op) -> Result<(), KernelError> {
            let Op::StartProcess { process, .. } = op else {
                return Ok(());
            };
            match &self.barrier {
                Some(b) => b.wait().await,
                None => std::future::pending().await,
            };
            let line = format!("ready {process}");
            self.inner.state.lock().unwrap().log.push(line);
            Ok(())
        }

        async fn undo(&self, undo: &Undo) -> Result<(), KernelError> {
            self.inner.undo(undo).await
        }
    }

    /// Processes p1..=pn on nodes of their own, then a command on p1's node after it.
    fn processes_then_exec(n: usize) -> Plan {
        let mut steps: Vec<Step> = (1..=n)
            .map(|k| Step {
                id: k,
                op: Op::StartProcess {
                    netns: format!("nslab.exec.n{k}").as_str().into(),
                    node: format!("n{k}"),
                    process: format!("p{k}"),
                },
                deps: vec![],
            })
            .collect();
        steps.push(Step {
            id: n + 1,
            op: Op::RunExec {
                netns: "nslab.exec.n1".into(),
                node: "n1".into(),
                argv: vec!["true".into()],
                ignore_errors: false,
                timeout_ms: None,
            },
            deps: vec![1],
        });
        Plan {
            lab: "exec".into(),
            steps,
        }
    }

    fn run_on<K: Kernel>(plan: &Plan, kernel: &K, opts: &Options) -> Option<Result<(), ExecError>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let mut journal = |_: Entry| Ok(());
        // Only a guard: a readiness wait holding a slot would never finish.
        let run = execute(plan, kernel, &mut journal, opts, no_cancel());
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), run).await })
            .ok()
    }

    #[test]
    fn readiness_waits_hold_no_job_slot_and_hold_back_only_their_dependents() {
        // One job slot, four processes that get ready only together: they can only if
        // each one's wait lets the next one start.
        let plan = processes_then_exec(4);
        let kernel = ReadyTogether::new(4);
        let opts = Options {
            jobs: 1,
            fail_at: None,
            step_delay: None,
            progress: None,
        };
        let r = run_on(&plan, &kernel, &opts).expect("every process got ready");
        r.unwrap();
        assert_eq!(kernel.inner.max_in_flight.load(Ordering::SeqCst), 1);
        let log = kernel.inner.state.lock().unwrap().log.clone();
        let at = |what: &str| log.iter().position(|l| l == what).unwrap();
        assert_eq!(log.iter().filter(|l| *l == "start-process").count(), 4);
        // Every process was started before any was ready, and the command waited for p1.
        let last_start = log.iter().rposition(|l| l == "start-process").unwrap();
        assert!(last_start < at("ready p1"), "{log:?}");
        assert!(at("ready p1") < at("run-exec"), "{log:?}");
    }

    #[test]
    fn a_failure_stops_readiness_waits() {
        // p1 never gets ready; step 2's failure must end the run, not wait for p1.
        let plan = processes_then_exec(2);
        let kernel = ReadyTogether::new(0);
        let opts = Options {
            jobs: 1,
            fail_at: Some(2),
            step_delay: None,
            progress: None,
        };
        let r = run_on(&plan, &kernel, &opts).expect("the run ended instead of waiting");
        assert!(
            matches!(&r, Err(ExecError::Step { step, error: KernelError::Injected }) if step.id == 2),
            "{r:?}"
        );
        assert!(
            !kernel
                .inner
                .state
                .lock()
                .unwrap()
                .log
                .contains(&"run-exec".to_string())
        );
    }

    /// The fake kernel, logging the id of every step it starts (the test's steps have
    /// distinct ops).
    struct Starts {
        inner: FakeKernel,
        ids: Vec<(Op, StepId)>,
        started: Mutex<Vec<StepId>>,
    }

    impl Starts {
        fn new(plan: &Plan) -> Starts {
            Starts {
                inner: FakeKernel::default(),
                ids: plan.steps.iter().map(|s| (s.op.clone(), s.id)).collect(),
                started: Mutex::new(Vec::new()),
            }
        }
    }

    impl Kernel for Starts {
        async fn apply(&self, op: &Op) -> Result<(), KernelError> {
            self.inner.apply(op).await
        }

        async fn start(&self, op: &Op) -> Result<Begun, KernelError> {
            let id = self.ids.iter().find(|(o, _)| o == op).unwrap().1;
            self.started.lock().unwrap().push(id);
            self.inner.apply(op).await.map(|()| Begun::Done)
        }

        async fn undo(&self, undo: &Undo) -> Result<(), KernelError> {
            self.inner.undo(undo).await
        }
    }

    /// A node's netns (1), twenty other namespaces (2..=21), all ready at once, then the
    /// node's run directories, hosts file, mount template and init (22..=25).
    fn node_first_plan() -> Plan {
        let node = plan_of(
            "
name: exec
nodes: { a: { processes: [{ name: main, cmd: 'sleep 1' }] } }
",
        );
        let op = |name: &str| {
            node.steps
                .iter()
                .find(|s| s.op.name() == name)
                .unwrap()
                .op
                .clone()
        };
        let start = op("start-node");
        let Op::StartNode { netns, .. } = &start else {
            unreachable!()
        };
        let mut steps = vec![Step {
            id: 1,
            op: Op::CreateNetns {
                netns: netns.clone(),
            },
            deps: vec![],
        }];
        for k in 2..=21 {
            steps.push(Step {
                id: k,
                op: Op::CreateNetns {
                    netns: format!("nslab.exec.x{k}").as_str().into(),
                },
                deps: vec![],
            });
        }
        for (id, name, deps) in [
            (22, "mount-run-dirs", vec![]),
            (23, "write-hosts", vec![22]),
            (24, "create-mount-template", vec![22]),
            (25, "start-node", vec![1, 23, 24]),
        ] {
            steps.push(Step {
                id,
                op: op(name),
                deps,
            });
        }
        Plan {
            lab: "exec".into(),
            steps,
        }
    }

    #[test]
    fn a_ready_node_start_does_not_wait_behind_lower_ids() {
        let plan = node_first_plan();
        for jobs in [2, 3, 8] {
            let kernel = Starts::new(&plan);
            let opts = Options {
                jobs,
                fail_at: None,
                step_delay: None,
                progress: None,
            };
            run_on(&plan, &kernel, &opts).unwrap().unwrap();
            let started = kernel.started.lock().unwrap().clone();
            assert_eq!(started.len(), plan.steps.len(), "{started:?}");
            assert!(kernel.inner.max_in_flight.load(Ordering::SeqCst) <= jobs);
            let at = |id: StepId| started.iter().position(|&s| s == id).unwrap();
            // Lowest id first alone would start every namespace (1..=21, all ready at
            // the start) before the node's steps; the node lane starts its init as soon
            // as the node's own namespace and files are there.
            assert!(at(22) < at(21), "jobs {jobs}: {started:?}");
            assert!(at(25) < at(21), "jobs {jobs}: {started:?}");
            // The wiring kept a slot: it went on while the node's steps ran.
            assert!(at(2) < at(25), "jobs {jobs}: {started:?}");
        }
        // With one slot there is nothing to share: lowest id first.
        let kernel = Starts::new(&plan);
        let opts = Options {
            jobs: 1,
            fail_at: None,
            step_delay: None,
            progress: None,
        };
        run_on(&plan, &kernel, &opts).unwrap().unwrap();
        let started = kernel.started.lock().unwrap().clone();
        assert_eq!(started, (1..=25).collect::<Vec<_>>());
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
