//! The validated topology: a petgraph graph of nodes and bridges joined by links, with every
//! name, interface index, MAC, address and route resolved. Everything downstream (plan,
//! apply, probes) reads this and never the YAML.

mod build;
mod checks;
mod deps;
pub mod hostnet;
pub mod impair;
mod ipam;
/// The small values every layer below the parser uses (see `crate::kinds`).
pub use crate::kinds;
mod merge;
pub mod names;
mod placeholders;
pub mod placement;
mod resolve;
mod routes;
pub mod sysctl;

pub use impair::{Impair, Problem as ImpairProblem};
pub use resolve::FABRIC_SYSCTLS;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use petgraph::graph::{NodeIndex, UnGraph};
use serde::Serialize;

pub use build::build;

use crate::spec::raw::RawCommand;
use kinds::{Family, NsKind, RestartPolicy, RouteKind};

/// A vertex of the topology graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Vertex {
    Node(usize),
    Bridge(usize),
}

#[derive(Debug, Clone)]
pub struct Topology {
    pub lab: String,
    /// Directory the topology file lives in; mount sources resolve against it.
    pub base_dir: PathBuf,
    pub nodes: Vec<Node>,
    pub bridges: Vec<Bridge>,
    pub links: Vec<Link>,
    /// Vertices are nodes and bridges; each edge carries its index into `links`.
    pub graph: UnGraph<Vertex, usize>,
    pub node_vertex: Vec<NodeIndex>,
    pub bridge_vertex: Vec<NodeIndex>,
    pub daemonsets: Vec<DaemonSet>,
    pub checks: Vec<Check>,
    pub logs: LogPolicy,
    /// `hosts:`, in written order; empty for a lab on one machine.
    pub hosts: Vec<Host>,
    /// The UDP port of cross-host links (`vxlan.port`).
    pub vxlan_port: u16,
    /// `vxlan.vni`: the lab's first VNI when the file pins it (see `plan::share`).
    pub vxlan_vni: Option<u32>,
    /// Links with one end in the host's namespace, management links included.
    pub host_links: Vec<hostnet::HostLink>,
    /// The management network's bridge on the host, when `mgmt:` asks for one.
    pub mgmt: Option<hostnet::Mgmt>,
    /// Whether every node's init gets a cgroup of its own in every hierarchy, outside
    /// the caller's: set by `nslab agent`, never by the file, so a restarted agent's
    /// container (whose whole cgroup the kubelet kills) takes none of the nodes with it.
    pub own_cgroups: bool,
}

/// The default UDP port of cross-host links: away from IANA's 4789, which underlays often
/// filter or use themselves (containerlab and clabernetes chose the same).
pub const DEFAULT_VXLAN_PORT: u16 = 14789;

/// One machine of a multi-host lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    pub name: String,
    /// Its underlay address: the local end of its VXLANs, the remote end of its peers'.
    pub address: IpAddr,
    /// Its underlay's MTU (1500 unless written).
    pub mtu: u32,
}

impl Host {
    /// The VXLAN overhead on this underlay: outer IP, UDP, VXLAN and inner Ethernet
    /// headers (20 + 8 + 8 + 14, or 40 + 8 + 8 + 14 over IPv6).
    pub fn vxlan_overhead(&self) -> u32 {
        if self.address.is_ipv6() { 70 } else { 50 }
    }
}

impl Topology {
    /// The namespace holding the lab's bridges, if the lab has any.
    pub fn fabric_netns(&self) -> Option<String> {
        (!self.bridges.is_empty()).then(|| names::fabric_netns(&self.lab))
    }

    /// The host a node is placed on, by index into `hosts`; `None` in a one-machine lab.
    pub fn host_of(&self, node: usize) -> Option<usize> {
        let h = self.nodes[node].host.as_deref()?;
        self.hosts.iter().position(|x| x.name == h)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The address other nodes use to reach `node`: its loopback if it has one, else the
    /// first interface address, in the given family.
    pub fn primary_address(&self, node: usize, v6: bool) -> Option<IpAddr> {
        let n = &self.nodes[node];
        n.loopback
            .iter()
            .chain(n.interfaces.iter().flat_map(|i| i.addresses.iter()))
            .map(IpNet::addr)
            .find(|a| a.is_ipv6() == v6)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub name: String,
    pub netns: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub loopback: Vec<IpNet>,
    pub interfaces: Vec<Interface>,
    /// Interfaces that are no link's end: dummies, vlans and macvlans (see [`Device`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// In the order they are applied; later keys override earlier ones already.
    pub sysctls: Vec<Sysctl>,
    pub routes: Vec<Route>,
    pub exec: Vec<Exec>,
    pub processes: Vec<Process>,
    pub mounts: Vec<Mount>,
    pub private: Vec<PrivateDir>,
    pub limits: Limits,
    /// Where the limits were written, for the checks that refuse them (a rootless lab's).
    #[serde(skip)]
    pub limits_span: Option<crate::diag::Span>,
    /// What the node's processes start with unless their own say otherwise.
    #[serde(skip_serializing_if = "crate::attrs::ProcAttrs::is_empty")]
    pub attrs: crate::attrs::ProcAttrs,
    #[serde(skip)]
    pub attr_spans: crate::spec::attrs::AttrSpans,
    pub isolation: Vec<NsKind>,
    pub depends_on: Vec<Dep>,
    #[serde(serialize_with = "ser_duration")]
    pub stop_timeout: Duration,
    pub env: Vec<(String, String)>,
    /// The host the node runs on in a multi-host lab (by hand or by placement).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Placed by its own (or `defaults:`') `host:` rather than by `placement: auto`: what
    /// `nslab plan` gives as the reason a node lands where it does.
    #[serde(skip)]
    pub host_by_hand: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sysctl {
    pub key: String,
    pub value: String,
    /// The interface a per-interface key (`net.ipv4.conf.eth1.rp_filter`) needs first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Interface {
    pub name: String,
    pub ifindex: u32,
    #[serde(serialize_with = "ser_mac")]
    pub mac: [u8; 6],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    pub addresses: Vec<IpNet>,
    pub link: usize,
    pub peer: End,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impair: Option<Box<Impair>>,
}

/// An interface of one node that is not an end of a link between nodes and bridges: a
/// dummy, a vlan on another interface of the node, or a macvlan on a host interface.
/// Node-local: its addresses are written, never from a pool, and `routing: static`
/// routes to them as to a loopback. Parents come before their vlans.
#[derive(Debug, Clone, Serialize)]
pub struct Device {
    pub name: String,
    pub ifindex: u32,
    #[serde(serialize_with = "ser_mac")]
    pub mac: [u8; 6],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    pub addresses: Vec<IpNet>,
    pub kind: DeviceKind,
    /// Where it is written, for the errors about a kernel or host without it.
    #[serde(skip)]
    pub span: crate::diag::Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Dummy,
    /// On `parent`, an interface (or device) of the same node.
    Vlan {
        parent: String,
        id: u16,
    },
    /// On `parent`, an interface of the host the node is on; nslab never changes it.
    Macvlan {
        parent: String,
        mode: kinds::MacvlanMode,
    },
}

/// One end of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    Node {
        node: usize,
        iface: usize,
    },
    Bridge {
        bridge: usize,
        port: usize,
    },
    /// A bridge's end of a link joining two bridges: its index into `Bridge::uplinks`.
    Uplink {
        bridge: usize,
        uplink: usize,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Bridge {
    pub name: String,
    pub ifindex: u32,
    #[serde(serialize_with = "ser_mac")]
    pub mac: [u8; 6],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    pub subnets: Vec<IpNet>,
    pub ports: Vec<BridgePort>,
    /// In a multi-host lab, the hosts its members are on when more than one: each holds a
    /// replica, joined to the others by a VXLAN with head-end replication.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Its ports to other bridges (links joining two bridges), in link order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uplinks: Vec<Uplink>,
    /// The kernel's spanning tree (`stp: true`): what lets joined bridges form a ring.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stp: bool,
}

/// A bridge's port to another bridge: one end of a veth pair whose both ends are in the
/// fabric, each enslaved to its own bridge.
#[derive(Debug, Clone, Serialize)]
pub struct Uplink {
    pub name: String,
    pub ifindex: u32,
    #[serde(serialize_with = "ser_mac")]
    pub mac: [u8; 6],
    /// The bridge at the other end.
    pub peer: usize,
    pub link: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impair: Option<Box<Impair>>,
}

/// The bridges joined to `bridge` by bridge-to-bridge links, itself included, in index
/// order: one L2 segment, which shares one subnet and one broadcast domain.
pub fn segment(bridges: &[Bridge], bridge: usize) -> Vec<usize> {
    let mut seen = vec![false; bridges.len()];
    let mut todo = vec![bridge];
    seen[bridge] = true;
    while let Some(b) = todo.pop() {
        for u in &bridges[b].uplinks {
            if !std::mem::replace(&mut seen[u.peer], true) {
                todo.push(u.peer);
            }
        }
    }
    (0..bridges.len()).filter(|&b| seen[b]).collect()
}

/// The fabric-side end of a node's link to a bridge.
#[derive(Debug, Clone, Serialize)]
pub struct BridgePort {
    pub name: String,
    pub ifindex: u32,
    #[serde(serialize_with = "ser_mac")]
    pub mac: [u8; 6],
    pub node: usize,
    pub iface: usize,
    pub link: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub a: End,
    pub b: End,
    /// How the kernel makes it. A veth, which the model's JSON leaves unsaid, or a link
    /// across hosts.
    #[serde(skip_serializing_if = "LinkKind::is_veth")]
    pub kind: LinkKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    pub subnets: Vec<IpNet>,
}

/// The kernel object a link is. Each kind is made by one function in `plan/links.rs` and
/// one in `apply/links.rs`; a kind whose far end is not an interface nslab creates (a
/// macvlan on a bridge, a vxlan to another host) brings its own fields here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// A veth pair: node to node, or a node to a bridge through a port in the fabric.
    Veth,
    /// Two nodes placed on different hosts: on each host, a VXLAN device to the other
    /// host's underlay address. Run on one machine (no `--host`), it is a veth.
    Vxlan,
}

impl LinkKind {
    fn is_veth(&self) -> bool {
        matches!(self, LinkKind::Veth)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Route {
    pub dst: IpNet,
    pub kind: RouteKind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nexthops: Vec<NextHop>,
    /// Output interface of a device route (no gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_ifindex: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NextHop {
    pub gateway: IpAddr,
    pub dev: String,
    pub ifindex: u32,
    /// The kernel's `rtnh_hops`: weight minus one.
    pub weight: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Shell(String),
    Argv(Vec<String>),
}

impl From<RawCommand> for Command {
    fn from(c: RawCommand) -> Self {
        match c {
            RawCommand::Shell(s) => Command::Shell(s),
            RawCommand::Argv(v) => Command::Argv(v),
        }
    }
}

impl Command {
    /// The argv to execute: a shell string runs under `/bin/sh -c`.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
            Command::Argv(v) => v.clone(),
        }
    }

    /// The same, without the shell when the string is plain words (`sleep 1000`,
    /// `/usr/sbin/bird -f -c /etc/bird.conf`) that the shell would only split: a node's
    /// processes and probes then skip one exec each, and `ps` shows the program itself.
    pub fn direct_argv(&self) -> Vec<String> {
        match self {
            Command::Shell(s) if plain_words(s) => s.split_whitespace().map(String::from).collect(),
            _ => self.argv(),
        }
    }

    /// The command as one line for people, every hidden character of the file's written
    /// out (`\u{1b}`), so printing it moves no cursor and forges no line.
    pub fn display(&self) -> String {
        let text = match self {
            Command::Shell(s) => s.clone(),
            Command::Argv(v) => v.join(" "),
        };
        names::shown(&text, false)
    }
}

/// Words the shell would pass through untouched: no quotes, variables, globs, redirects,
/// separators or escapes, no `VAR=value` prefix, and a first word that is a program, not
/// a shell builtin.
fn plain_words(s: &str) -> bool {
    const BUILTINS: &[&str] = &[
        ".", ":", "alias", "bg", "break", "cd", "command", "continue", "eval", "exec", "exit",
        "export", "fg", "getopts", "hash", "jobs", "local", "read", "readonly", "return", "set",
        "shift", "source", "times", "trap", "type", "ulimit", "umask", "unalias", "unset", "wait",
    ];
    let safe = |c: char| c.is_ascii_alphanumeric() || " -_./=:,+@%".contains(c);
    let Some(first) = s.split_whitespace().next() else {
        return false;
    };
    s.chars().all(safe) && !first.contains('=') && !BUILTINS.contains(&first)
}

#[derive(Debug, Clone, Serialize)]
pub struct Exec {
    pub cmd: Command,
    pub ignore_errors: bool,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_duration"
    )]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ready {
    Cmd(Command),
    Tcp(u16),
    /// A unix socket path inside the node: ready once a connect succeeds.
    Unix(String),
    /// A path inside the node: ready once it exists.
    File(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub probe: Ready,
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    #[serde(skip_serializing_if = "kinds::ProbeLimits::is_none")]
    pub limits: kinds::ProbeLimits,
}

#[derive(Debug, Clone, Serialize)]
pub struct Process {
    /// Where its `cmd` was written, for preflight errors.
    #[serde(skip)]
    pub span: crate::diag::Span,
    pub name: String,
    pub cmd: Command,
    pub env: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    pub restart: RestartPolicy,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<Readiness>,
    /// Who it runs as (`frr`, `100:101`, `frr:frrvty`), resolved in the node at start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Where `user` is written (the process when it is not), for `validate`'s lookup.
    #[serde(skip)]
    pub user_span: crate::diag::Span,
    /// Its node's attributes with its own on top: what it starts with.
    #[serde(skip_serializing_if = "crate::attrs::ProcAttrs::is_empty")]
    pub attrs: crate::attrs::ProcAttrs,
    /// Where they were written (its own, else its node's), for the host's checks.
    #[serde(skip)]
    pub attr_spans: crate::spec::attrs::AttrSpans,
    pub depends_on: Vec<Dep>,
    #[serde(serialize_with = "ser_duration")]
    pub stop_timeout: Duration,
    /// The daemonset this process came from, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemonset: Option<String>,
}

/// Something to wait for: a whole node (all its processes ready) or one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Dep {
    pub node: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Mount {
    #[serde(skip)]
    pub span: crate::diag::Span,
    /// Where the target is written: errors about the node-side path point there.
    #[serde(skip)]
    pub target_span: crate::diag::Span,
    /// Absolute, with `{node}` and `{lab}` filled in.
    pub source: PathBuf,
    pub target: String,
    pub readonly: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrivateDir {
    #[serde(skip)]
    pub span: crate::diag::Span,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// How each process's log is capped (`logs:`): past `max_bytes` the init renames it to
/// `name.log.1` (and older parts one further) and starts a new one; parts past `keep` are
/// deleted. So a process never holds more than `(keep + 1) * max_bytes` of the logs tmpfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LogPolicy {
    pub max_bytes: u64,
    pub keep: u32,
}

impl LogPolicy {
    pub fn is_default(&self) -> bool {
        *self == LogPolicy::default()
    }
}

impl Default for LogPolicy {
    /// 1 MiB and two old parts: at most 3 MiB a process, which a 1,000-process lab keeps
    /// to 3 GiB in the worst case and a typical one to a few MiB.
    fn default() -> Self {
        LogPolicy {
            max_bytes: 1 << 20,
            keep: 2,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Limits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DaemonSet {
    pub name: String,
    pub selector: BTreeMap<String, String>,
    pub nodes: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    /// Set on each per-node check of a many-node `cmd` or `route`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<Group>,
    pub body: CheckBody,
}

/// One node's share of a many-node check: the checks of one `tests:` entry run together
/// and report one result each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    /// The entry's index in `tests:`.
    pub entry: usize,
    pub node: String,
}

/// What a `reach` check probes: a node's primary address, or an address as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Node(usize),
    Addr(IpAddr),
}

/// The JSON a `cmd` check's stdout must contain.
#[derive(Debug, Clone, Serialize)]
pub struct JsonExpect {
    pub source: JsonSource,
    /// Lists match by length and order, not as an unordered subset.
    pub exact: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonSource {
    Inline(serde_json::Value),
    /// Resolved against the topology file's directory; read when the check runs.
    File {
        path: std::path::PathBuf,
        #[serde(skip)]
        span: crate::diag::Span,
    },
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckBody {
    Reach {
        from: Vec<usize>,
        to: Vec<Target>,
        family: Family,
        expect_ok: bool,
        #[serde(skip_serializing_if = "kinds::Echo::is_default")]
        echo: kinds::Echo,
    },
    Tcp {
        from: usize,
        host: String,
        port: u16,
        expect_ok: bool,
    },
    Route {
        node: usize,
        dst: Vec<IpNet>,
        /// Exact next-hop set expected (ECMP included); empty means any.
        via: Vec<IpAddr>,
        #[serde(skip_serializing_if = "Option::is_none")]
        dev: Option<String>,
        /// The routing table's id (254 is `main`).
        table: u32,
        /// A VRF device whose table is read instead of `table` (looked up at run time).
        #[serde(skip_serializing_if = "Option::is_none")]
        vrf: Option<String>,
        /// The route must not exist.
        absent: bool,
    },
    Path {
        from: usize,
        to: usize,
        hops: Vec<usize>,
        family: Family,
    },
    Cmd {
        node: usize,
        run: Command,
        exit: kinds::Exit,
        #[serde(skip_serializing_if = "Option::is_none")]
        stdout: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        stderr: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        json: Option<JsonExpect>,
    },
    /// A scenario step, done once when the run reaches it.
    Action(Action),
}

/// Something a scenario does to the running lab, with its names resolved.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Link {
        node: usize,
        iface: String,
        /// Set when the step names the bridge's port to the node (`BRIDGE:NODE`): only
        /// that port changes, as a switch port going down.
        #[serde(skip_serializing_if = "Option::is_none")]
        bridge: Option<String>,
        up: bool,
        one_side: bool,
    },
    Impair {
        node: usize,
        iface: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        bridge: Option<String>,
        /// `None` clears the impairment.
        impair: Option<Box<Impair>>,
        one_side: bool,
    },
    Node {
        node: usize,
        action: kinds::NodeAction,
    },
    Sleep {
        #[serde(serialize_with = "ser_duration")]
        duration: Duration,
    },
}

pub fn ser_mac<S: serde::Serializer>(mac: &[u8; 6], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::spec::values::format_mac(mac))
}

/// A MAC as [`ser_mac`] writes it, for plans read back from a lab's state.
pub fn de_mac<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 6], D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    crate::spec::values::parse_mac(&text).map_err(serde::de::Error::custom)
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::spec::raw::format_duration(*d))
}

fn ser_opt_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod command_tests {
    use super::Command;

    #[test]
    fn plain_strings_skip_the_shell_and_everything_else_keeps_it() {
        let direct = |s: &str| Command::Shell(s.into()).direct_argv();
        assert_eq!(direct("sleep 1000"), ["sleep", "1000"]);
        assert_eq!(
            direct("/usr/sbin/bird -f -c /etc/bird/bird.conf"),
            ["/usr/sbin/bird", "-f", "-c", "/etc/bird/bird.conf"]
        );
        for shell in [
            "echo $SITE",
            "sleep 1 && true",
            "a | b",
            "echo 'x y'",
            "ls *.conf",
            "FOO=1 env",
            "exit 3",
            "cd /tmp",
            "cat < f",
            "sleep 1; sleep 2",
            "echo ~",
            "",
        ] {
            assert_eq!(direct(shell)[0], "/bin/sh", "{shell}");
        }
        let argv = Command::Argv(vec!["a b".into()]);
        assert_eq!(argv.direct_argv(), ["a b"]);
    }
}
