//! Progress of `up` and `down`, reported to whoever shows it: the CLI draws a bar when
//! stderr is a terminal; the library and CI show nothing. Reporting costs one virtual
//! call per step, so a 1,000-node lab pays microseconds for it.

use std::fmt;

pub trait Progress: Send + Sync {
    /// A new phase (`up`, `stop processes`, `delete namespaces`) of `total` units.
    fn phase(&self, name: &str, total: u64);
    /// One more unit done; `what` is the kind of work it was (`create-veth`, ...).
    fn advance(&self, what: &str);
    /// The work is over (done, failed or interrupted): take the display away.
    fn finish(&self);
}

/// A shared handle to a [`Progress`], so options that carry one stay `Clone + Debug`.
#[derive(Clone)]
pub struct Reporter(pub std::sync::Arc<dyn Progress>);

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reporter")
    }
}

/// Reports to `r` when there is one.
pub fn phase(r: Option<&Reporter>, name: &str, total: u64) {
    trace(name);
    if let Some(r) = r {
        r.0.phase(name, total);
    }
}

pub fn advance(r: Option<&Reporter>, what: &str) {
    if let Some(r) = r {
        r.0.advance(what);
    }
}

pub fn finish(r: Option<&Reporter>) {
    trace("finish");
    if let Some(r) = r {
        r.0.finish();
    }
}

/// With `NSLAB_TRACE_PHASES` set (to anything), says on stderr when each phase of `up`
/// and `down` begins, in milliseconds since the first: where a slow teardown spends its
/// time, without a profiler. Unset, it costs one cached lookup per phase.
pub fn trace(what: &str) {
    if let Some(t) = trace_start() {
        eprintln!(
            "nslab: phase {what}: {:.1} ms",
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
}

/// When the trace began (its first line), if `NSLAB_TRACE_PHASES` is set.
fn trace_start() -> Option<std::time::Instant> {
    use std::sync::OnceLock;
    static START: OnceLock<Option<std::time::Instant>> = OnceLock::new();
    *START.get_or_init(|| std::env::var_os("NSLAB_TRACE_PHASES").map(|_| std::time::Instant::now()))
}

/// The trace's view of a plan's steps by kind: when the first of a kind starts and the
/// last of it ends, so the trace shows how the kinds overlap without a line per step.
/// Off (and empty) unless `NSLAB_TRACE_PHASES` is set.
pub struct KindTrace {
    left: std::collections::HashMap<&'static str, usize>,
    started: std::collections::HashSet<&'static str>,
}

impl KindTrace {
    pub fn new(plan: &crate::plan::Plan) -> KindTrace {
        let mut left = std::collections::HashMap::new();
        if trace_start().is_some() {
            for s in &plan.steps {
                *left.entry(s.op.name()).or_insert(0) += 1;
            }
        }
        KindTrace {
            left,
            started: Default::default(),
        }
    }

    /// A step of this kind starts.
    pub fn start(&mut self, kind: &'static str) {
        if !self.left.is_empty() && self.started.insert(kind) {
            trace(&format!("first {kind} starts"));
        }
    }

    /// A step of this kind is done.
    pub fn done(&mut self, kind: &'static str) {
        if let Some(n) = self.left.get_mut(kind) {
            *n -= 1;
            if *n == 0 {
                trace(&format!("last {kind} done"));
            }
        }
    }
}
