//! The live state of a running lab as the picture needs it: per node, its interfaces
//! (up, carrier, addresses, impairment), routes and processes. `nslab graph --lab` reads it
//! from the kernel and the nodes' inits (`cli/graph/live.rs`); drawing only reads this, so
//! the drawing stays pure and testable without root.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Live {
    /// By node name.
    pub nodes: BTreeMap<String, NodeLive>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeLive {
    /// `up`, `degraded` or `missing`, as `nslab status` says.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub interfaces: Vec<IfaceLive>,
    pub routes: Vec<String>,
    pub processes: Vec<ProcLive>,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct IfaceLive {
    pub name: String,
    /// Administratively up.
    pub up: bool,
    /// Carrier present: the far end is up too.
    pub carrier: bool,
    pub mtu: u32,
    pub addresses: Vec<String>,
    /// The root qdisc when it is an impairment (`netem ...`, `tbf rate ...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impairment: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcLive {
    pub name: String,
    /// The init's word: `waiting`, `running`, `stopped`, `failed`, `backoff`, `exited`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    pub restarts: u32,
    pub ready: bool,
}

/// What a link looks like from its node ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Up,
    /// Up at both ends but without carrier at one (the far end was set down alone).
    NoCarrier,
    Down,
    /// A node end is not in the live state (its namespace is gone).
    Unknown,
}

impl LinkState {
    pub fn class(self) -> &'static str {
        match self {
            LinkState::Up => "up",
            LinkState::NoCarrier => "no-carrier",
            LinkState::Down => "down",
            LinkState::Unknown => "unknown",
        }
    }
}

impl Live {
    pub fn iface(&self, node: &str, iface: &str) -> Option<&IfaceLive> {
        self.nodes
            .get(node)?
            .interfaces
            .iter()
            .find(|i| i.name == iface)
    }

    /// The state of a link from its node ends (`(node, iface)` pairs; a bridge end has
    /// none): down if either is down, no carrier if either lacks it.
    pub fn link_state(&self, ends: &[(&str, &str)]) -> LinkState {
        let mut state = LinkState::Up;
        for (n, i) in ends {
            match self.iface(n, i) {
                None => return LinkState::Unknown,
                Some(l) if !l.up => return LinkState::Down,
                Some(l) if !l.carrier => state = LinkState::NoCarrier,
                Some(_) => {}
            }
        }
        state
    }
}

/// Processes summed up for a node's box: `2 running`, `1 failed, 1 stopped`, ...
pub fn process_summary(procs: &[ProcLive]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for p in procs {
        *counts.entry(process_class(p)).or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The states the picture tells apart: a launcher that exited 0 is `done`, a process
/// stopped by `nslab node stop` (or still waiting for its dependencies, or being retired
/// from a running node) is `stopped`, a crash loop, a failed start or a non-zero exit
/// is `failed`.
pub fn process_class(p: &ProcLive) -> &'static str {
    match p.state.as_str() {
        "running" => "running",
        "exited" if p.exit == Some(0) => "done",
        "stopped" | "waiting" | "retiring" => "stopped",
        _ => "failed",
    }
}
