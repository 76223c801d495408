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
    if let Some(r) = r {
        r.0.finish();
    }
}
