//! The topology as written: typed, located, but not yet cross-checked. Names are not yet
//! resolved and defaults are not yet merged; the model layer does that.

use std::time::Duration;

use ipnet::IpNet;

use crate::diag::Span;
use crate::kinds::{
    Echo, Exit, Family, NodeAction, NsKind, ProbeLimits, RestartPolicy, RouteKind, RouteTable,
};

/// A value with the position it was written at.
#[derive(Debug, Clone, PartialEq)]
pub struct Sp<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Sp<T> {
    pub fn new(value: T, span: Span) -> Self {
        Sp { value, span }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RawTopology {
    pub name: Option<Sp<String>>,
    pub addressing: RawAddressing,
    pub routing: Option<Sp<RoutingMode>>,
    pub defaults: RawNodeSpec,
    pub kinds: Vec<(Sp<String>, RawNodeSpec)>,
    pub nodes: Vec<(Sp<String>, RawNodeSpec)>,
    pub bridges: Vec<(Sp<String>, RawBridge)>,
    pub links: Vec<RawLink>,
    pub daemonsets: Vec<RawDaemonSet>,
    pub tests: Vec<RawCheck>,
    pub logs: RawLogs,
    /// `hosts:`: the machines a lab spreads over; empty for a one-machine lab.
    pub hosts: Vec<(Sp<String>, RawHost)>,
    /// `placement: auto`.
    pub placement: Option<Sp<()>>,
    pub vxlan: RawVxlan,
    /// Links with one end in the host (`host:` endpoints), in written order.
    pub host_links: Vec<super::hostnet::RawHostLink>,
    /// `mgmt:`: the management network on the host.
    pub mgmt: Option<super::hostnet::RawMgmt>,
    /// Each node's own `mgmt:`, by node name.
    pub node_mgmt: Vec<(Sp<String>, super::hostnet::RawNodeMgmt)>,
}

/// One machine of a multi-host lab: its underlay address, and the MTU of its underlay.
#[derive(Debug, Clone, Default)]
pub struct RawHost {
    pub span: Span,
    pub address: Option<Sp<std::net::IpAddr>>,
    pub mtu: Option<Sp<u32>>,
}

/// `vxlan:`: how cross-host links are made.
#[derive(Debug, Clone, Default)]
pub struct RawVxlan {
    pub port: Option<Sp<u16>>,
    /// The lab's first VNI, pinning its block (`plan::share`).
    pub vni: Option<Sp<u32>>,
}

/// `logs:`: how large a process's log grows before it is rotated, and how many rotated
/// parts are kept.
#[derive(Debug, Clone, Default)]
pub struct RawLogs {
    pub max_size: Option<Sp<u64>>,
    pub keep: Option<Sp<u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingMode {
    /// Only the routes written in the file.
    None,
    /// nslab computes shortest-path static routes to every subnet and loopback.
    Static,
}

#[derive(Debug, Clone, Default)]
pub struct RawAddressing {
    pub p2p: Option<Sp<IpNet>>,
    pub lan: Option<Sp<IpNet>>,
    pub loopback: Option<Sp<IpNet>>,
    pub ipv6: Option<Sp<IpNet>>,
}

/// The keys a node, a kind and `defaults` share. Every field is optional so the three
/// levels can be merged field by field.
#[derive(Debug, Clone, Default)]
pub struct RawNodeSpec {
    pub span: Span,
    pub kind: Option<Sp<String>>,
    pub labels: Vec<(Sp<String>, Sp<String>)>,
    pub loopback: Option<Sp<RawLoopback>>,
    pub sysctls: Vec<(Sp<String>, Sp<String>)>,
    pub routes: Vec<RawRoute>,
    pub exec: Vec<RawExec>,
    pub processes: Vec<RawProcess>,
    pub mounts: Vec<RawMount>,
    pub private: Vec<RawPrivate>,
    pub limits: RawLimits,
    /// `rlimits`, `nice`, `oom_score_adj`, `cpus`, `ionice`: defaults for its processes.
    pub attrs: super::attrs::RawAttrs,
    pub isolation: Option<Sp<Vec<Sp<NsKind>>>>,
    pub depends_on: Vec<Sp<String>>,
    pub stop_timeout: Option<Sp<Duration>>,
    pub env: Vec<(Sp<String>, Sp<String>)>,
    /// `host:`: the machine the node runs on in a multi-host lab.
    pub host: Option<Sp<String>>,
    /// `interfaces:`: dummy and vlan interfaces of the node (see `spec::device`).
    pub interfaces: Vec<crate::spec::device::RawDevice>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RawLoopback {
    Auto,
    Addrs(Vec<Sp<IpNet>>),
}

#[derive(Debug, Clone)]
pub struct RawRoute {
    pub span: Span,
    pub to: Sp<RouteDest>,
    pub via: Vec<RawVia>,
    pub dev: Option<Sp<String>>,
    pub metric: Option<Sp<u32>>,
    pub kind: Sp<RouteKind>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RouteDest {
    /// `default`: every address family the next hops resolve in.
    Default,
    Default4,
    Default6,
    Prefix(IpNet),
}

/// A next hop as written: an address, a neighbour node, or `node:iface`.
#[derive(Debug, Clone)]
pub struct RawVia {
    pub target: Sp<String>,
    pub weight: Option<Sp<u8>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RawCommand {
    /// Run through `/bin/sh -c`.
    Shell(String),
    Argv(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct RawExec {
    pub span: Span,
    pub cmd: Sp<RawCommand>,
    pub ignore_errors: bool,
    pub timeout: Option<Sp<Duration>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReadyProbe {
    Cmd(RawCommand),
    Tcp(u16),
    /// A unix socket inside the node that accepts connections.
    Unix(Sp<String>),
    /// A path inside the node that exists.
    File(Sp<String>),
}

#[derive(Debug, Clone)]
pub struct RawReady {
    pub span: Span,
    pub probe: ReadyProbe,
    pub timeout: Option<Duration>,
    pub interval: Option<Duration>,
    pub limits: ProbeLimits,
}

#[derive(Debug, Clone)]
pub struct RawProcess {
    pub span: Span,
    pub name: Sp<String>,
    pub cmd: Sp<RawCommand>,
    pub env: Vec<(Sp<String>, Sp<String>)>,
    pub cwd: Option<Sp<String>>,
    pub restart: Option<Sp<RestartPolicy>>,
    pub ready: Option<RawReady>,
    pub depends_on: Vec<Sp<String>>,
    pub stop_timeout: Option<Sp<Duration>>,
    /// Who it runs as (`frr`, `100:101`, `frr:frrvty`); root when absent.
    pub user: Option<Sp<String>>,
    /// Its own attributes, over its node's.
    pub attrs: super::attrs::RawAttrs,
}

#[derive(Debug, Clone)]
pub struct RawMount {
    pub span: Span,
    pub source: Sp<String>,
    pub target: Sp<String>,
    pub readonly: bool,
}

#[derive(Debug, Clone)]
pub struct RawPrivate {
    pub span: Span,
    pub path: Sp<String>,
    pub owner: Option<Sp<String>>,
    pub mode: Option<Sp<u32>>,
}

#[derive(Debug, Clone, Default)]
pub struct RawLimits {
    pub memory: Option<Sp<u64>>,
    pub cpu: Option<Sp<f64>>,
    pub pids: Option<Sp<u64>>,
}

#[derive(Debug, Clone, Default)]
pub struct RawBridge {
    pub span: Span,
    pub mtu: Option<Sp<u32>>,
    pub subnet: Option<Sp<IpNet>>,
    pub subnet6: Option<Sp<IpNet>>,
    /// `stp: true`: the kernel's spanning tree on this bridge.
    pub stp: Option<Sp<bool>>,
}

/// One end of a link as written: `node:iface`, `node` (interface named for you) or `bridge`.
#[derive(Debug, Clone)]
pub struct RawEndpoint {
    pub span: Span,
    pub name: Sp<String>,
    pub iface: Option<Sp<String>>,
    /// `None`: from the pool; `Some(empty)`: no addresses.
    pub addresses: Option<Vec<Sp<IpNet>>>,
    pub mac: Option<Sp<[u8; 6]>>,
    pub impair: Option<Box<RawImpair>>,
    /// Set on a `{ macvlan: IF, mode: M }` end: `name` is then the host's interface.
    pub macvlan: Option<Sp<crate::kinds::MacvlanMode>>,
}

#[derive(Debug, Clone)]
pub struct RawLink {
    pub span: Span,
    pub endpoints: Vec<RawEndpoint>,
    pub mtu: Option<Sp<u32>>,
    /// No addresses from the pools on this link.
    pub unnumbered: bool,
    /// Applied to the egress of both ends unless an endpoint sets its own.
    pub impair: Option<Box<RawImpair>>,
}

/// An impairment as written, with where; the model checks it (`model::impair`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawImpair {
    pub span: Span,
    pub delay: Option<Duration>,
    pub jitter: Option<Duration>,
    /// Fractions of 1.
    pub loss: Option<f64>,
    pub duplicate: Option<f64>,
    pub corrupt: Option<f64>,
    pub reorder: Option<f64>,
    /// Bits per second.
    pub rate: Option<u64>,
}

/// Renders a duration the way a user writes one (`10ms`, `1.5s`).
pub fn format_duration(d: Duration) -> String {
    let us = d.as_micros();
    if us.is_multiple_of(1_000_000) {
        format!("{}s", us / 1_000_000)
    } else if us.is_multiple_of(1000) {
        format!("{}ms", us / 1000)
    } else {
        format!("{us}us")
    }
}

#[derive(Debug, Clone)]
pub struct RawDaemonSet {
    pub span: Span,
    pub selector: Vec<(Sp<String>, Sp<String>)>,
    pub process: RawProcess,
}

/// Which nodes a check covers: `all`, names, or labels.
#[derive(Debug, Clone, PartialEq)]
pub enum RawSelector {
    All,
    /// A single name written as a scalar: the check keeps its plain name.
    One(Sp<String>),
    Names(Vec<Sp<String>>),
    Labels(Vec<(Sp<String>, Sp<String>)>),
}

#[derive(Debug, Clone)]
pub struct RawCheck {
    pub span: Span,
    pub name: Option<Sp<String>>,
    pub timeout: Option<Sp<Duration>>,
    pub interval: Option<Sp<Duration>>,
    pub body: RawCheckBody,
}

#[derive(Debug, Clone)]
pub enum RawCheckBody {
    Reach {
        from: Sp<RawSelector>,
        to: Sp<RawSelector>,
        family: Family,
        expect_ok: bool,
        /// `size`, `df`, `ttl`: how the echo requests are built.
        echo: Echo,
    },
    Tcp {
        from: Sp<String>,
        host: Sp<String>,
        port: u16,
        expect_ok: bool,
    },
    Route {
        node: Sp<RawSelector>,
        to: Sp<RouteDest>,
        via: Vec<Sp<String>>,
        dev: Option<Sp<String>>,
        table: Option<Sp<RouteTable>>,
        /// `vrf: NAME`: the table of the node's VRF device NAME, found when the check runs.
        vrf: Option<Sp<String>>,
        /// `expect: absent`: the route must not exist (a withdrawn prefix).
        absent: bool,
    },
    Path {
        from: Sp<String>,
        to: Sp<String>,
        hops: Vec<Sp<String>>,
        family: Family,
    },
    Cmd {
        node: Sp<RawSelector>,
        run: Sp<RawCommand>,
        exit: Exit,
        stdout: Option<Sp<String>>,
        stderr: Option<Sp<String>>,
        json: Option<RawJsonExpect>,
    },
    /// A scenario step: something done to the running lab, between checks.
    Action(RawAction),
}

/// The JSON a `cmd` check's stdout must contain: written inline or in a file beside the
/// topology (read when the check runs).
#[derive(Debug, Clone)]
pub struct RawJsonExpect {
    pub source: JsonSource,
    /// `json_exact: true`: lists match by length and order.
    pub exact: bool,
}

#[derive(Debug, Clone)]
pub enum JsonSource {
    Inline(serde_json::Value),
    File(Sp<String>),
}

#[derive(Debug, Clone)]
pub enum RawAction {
    /// `link_down` / `link_up`: `node:iface`.
    Link {
        link: Sp<String>,
        up: bool,
        one_side: bool,
    },
    /// `impair`; `None` clears it.
    Impair {
        link: Sp<String>,
        impair: Option<Box<RawImpair>>,
        one_side: bool,
    },
    Node {
        node: Sp<String>,
        action: NodeAction,
    },
    Sleep(Duration),
}
