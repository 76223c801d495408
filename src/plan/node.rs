//! What the plan says about a node that runs more than a network namespace: pure data,
//! derived from the topology alone, that `start-node` steps carry and the node's init
//! reads (through `node::config`). It lives in the plan so the plan needs nothing of the
//! machinery that starts nodes.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::kinds::{NsKind, ProbeLimits, RestartPolicy};
use crate::model::{Node, Ready, Topology};

/// A node as the plan describes it: pure data, derived from the topology alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStart {
    pub lab: String,
    pub node: String,
    pub netns: String,
    pub uts: bool,
    pub mnt: bool,
    pub pid: bool,
    pub ipc: bool,
    /// The `/etc/hosts` lines for the node's own addresses; the lab-wide list comes from
    /// one file shared by every node (a copy per node would make the plan O(N²)).
    pub own_hosts: String,
    pub mounts: Vec<MountSpec>,
    /// Private directories, with owners as written (`frr`, `frr:frr`, `100:101`).
    pub private: Vec<PrivateSpec>,
    pub processes: Vec<ProcessSpec>,
    /// Whether the node has its own cgroup (`limits:`, or an agent's lab).
    pub cgroup: bool,
    /// The lab's cap on each process's log (left out of the plan when it is the default).
    #[serde(default, skip_serializing_if = "crate::model::LogPolicy::is_default")]
    pub logs: crate::model::LogPolicy,
}

impl NodeStart {
    /// The longest stop grace period of the node's processes.
    pub fn grace_ms(&self) -> u64 {
        self.processes
            .iter()
            .map(|p| p.stop_timeout_ms)
            .max()
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountSpec {
    pub source: PathBuf,
    pub target: String,
    pub readonly: bool,
    /// A fingerprint of what the source held when the lab was brought to this plan, so
    /// `apply` sees an edited config file (the plan's own text would not change). Filled
    /// by the engine at `up` and `apply` (`apply::sources`), never by the compiler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrivateSpec {
    pub path: String,
    pub owner: Option<String>,
    pub mode: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessSpec {
    pub name: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    pub restart: RestartPolicy,
    pub ready: Option<ReadySpec>,
    /// Bounds on single probes of `ready` (none by default).
    #[serde(default, skip_serializing_if = "ProbeLimits::is_none")]
    pub ready_limits: ProbeLimits,
    pub stop_timeout_ms: u64,
    /// Who it runs as, as written: the init resolves it in the node's own /etc.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Limits, nice, `oom_score_adj`, affinity and I/O priority it starts with (its
    /// node's and its own), on top of the defaults every process gets.
    #[serde(default, skip_serializing_if = "crate::attrs::ProcAttrs::is_empty")]
    pub attrs: crate::attrs::ProcAttrs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadySpec {
    Cmd {
        argv: Vec<String>,
        timeout_ms: u64,
        interval_ms: u64,
    },
    Tcp {
        port: u16,
        timeout_ms: u64,
        interval_ms: u64,
    },
    Unix {
        path: String,
        timeout_ms: u64,
        interval_ms: u64,
    },
    File {
        path: String,
        timeout_ms: u64,
        interval_ms: u64,
    },
}

impl ReadySpec {
    /// Time between two polls of the probe.
    pub fn interval(&self) -> Duration {
        match self {
            ReadySpec::Cmd { interval_ms, .. }
            | ReadySpec::Tcp { interval_ms, .. }
            | ReadySpec::Unix { interval_ms, .. }
            | ReadySpec::File { interval_ms, .. } => Duration::from_millis(*interval_ms),
        }
    }

    pub fn timeout(&self) -> Duration {
        match self {
            ReadySpec::Cmd { timeout_ms, .. }
            | ReadySpec::Tcp { timeout_ms, .. }
            | ReadySpec::Unix { timeout_ms, .. }
            | ReadySpec::File { timeout_ms, .. } => Duration::from_millis(*timeout_ms),
        }
    }
}

/// Whether a node needs an init at all: a net-only node without processes, commands,
/// mounts or limits is just its network namespace.
pub fn needs_init(n: &Node) -> bool {
    n.isolation.iter().any(|k| *k != NsKind::Net)
        || !n.processes.is_empty()
        || !n.exec.is_empty()
        || !n.mounts.is_empty()
        || !n.private.is_empty()
        || !n.limits.is_empty()
}

/// The lab's `/etc/hosts`: localhost, and every node by its loopback or first address
/// (both families). Each node adds its own addresses ([`own_hosts`]).
pub fn lab_hosts(t: &Topology) -> String {
    let mut out = String::with_capacity(64 + t.nodes.len() * 32);
    out.push_str("# written by nslab for lab `");
    out.push_str(&t.lab);
    out.push_str("`\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (i, n) in t.nodes.iter().enumerate() {
        for v6 in [false, true] {
            if let Some(a) = t.primary_address(i, v6) {
                out.push_str(&format!("{a}\t{}\n", n.name));
            }
        }
    }
    out
}

/// Every address of one node under its own name.
pub fn own_hosts(t: &Topology, node: usize) -> String {
    let me = &t.nodes[node];
    let mut out = format!("# this node, {}\n", me.name);
    for a in me
        .loopback
        .iter()
        .chain(me.interfaces.iter().flat_map(|i| i.addresses.iter()))
    {
        out.push_str(&format!("{}\t{}\n", a.addr(), me.name));
    }
    out
}

/// The plan's description of one node.
pub fn node_start(t: &Topology, node: usize) -> NodeStart {
    let n = &t.nodes[node];
    let has = |k: NsKind| n.isolation.contains(&k);
    let processes = n
        .processes
        .iter()
        .map(|p| {
            let mut env = n.env.clone();
            env.extend(p.env.iter().cloned());
            ProcessSpec {
                name: p.name.clone(),
                argv: p.cmd.direct_argv(),
                env,
                cwd: p.cwd.clone(),
                restart: p.restart,
                ready: p.ready.as_ref().map(|r| match &r.probe {
                    Ready::Cmd(c) => ReadySpec::Cmd {
                        argv: c.direct_argv(),
                        timeout_ms: r.timeout.as_millis() as u64,
                        interval_ms: r.interval.as_millis() as u64,
                    },
                    Ready::Tcp(port) => ReadySpec::Tcp {
                        port: *port,
                        timeout_ms: r.timeout.as_millis() as u64,
                        interval_ms: r.interval.as_millis() as u64,
                    },
                    Ready::Unix(path) => ReadySpec::Unix {
                        path: path.clone(),
                        timeout_ms: r.timeout.as_millis() as u64,
                        interval_ms: r.interval.as_millis() as u64,
                    },
                    Ready::File(path) => ReadySpec::File {
                        path: path.clone(),
                        timeout_ms: r.timeout.as_millis() as u64,
                        interval_ms: r.interval.as_millis() as u64,
                    },
                }),
                ready_limits: p.ready.as_ref().map(|r| r.limits).unwrap_or_default(),
                stop_timeout_ms: p.stop_timeout.as_millis() as u64,
                user: p.user.clone(),
                attrs: p.attrs.clone(),
            }
        })
        .collect();
    NodeStart {
        lab: t.lab.clone(),
        node: n.name.clone(),
        netns: n.netns.clone(),
        uts: has(NsKind::Uts),
        mnt: has(NsKind::Mnt),
        pid: has(NsKind::Pid),
        ipc: has(NsKind::Ipc),
        own_hosts: own_hosts(t, node),
        mounts: n
            .mounts
            .iter()
            .map(|m| MountSpec {
                source: m.source.clone(),
                target: m.target.clone(),
                readonly: m.readonly,
                digest: None,
            })
            .collect(),
        private: n
            .private
            .iter()
            .map(|p| PrivateSpec {
                path: p.path.clone(),
                owner: p.owner.clone(),
                mode: p.mode,
            })
            .collect(),
        processes,
        cgroup: !n.limits.is_empty() || t.own_cgroups,
        logs: t.logs,
    }
}
