//! The plan: a DAG of typed steps that brings a topology up, in a deterministic order
//! (step ids ascend in a valid topological order). Apply executes it; teardown is derived
//! from it by inverting each step, dropping what deleting a namespace removes anyway.

mod build;
pub mod diff;
mod hostnet;
pub mod keys;
pub mod links;
pub mod node;
mod read;
mod render;
pub mod share;
mod teardown;

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

pub use build::{plan, plan_share};
pub use render::{render_text, route_text, teardown_text, write_text};
pub use teardown::Teardown;

use crate::model::Impair;
use crate::model::{Limits, Route, de_mac, ser_mac};
pub use links::{Link, LinkSpec};
use node::{NodeStart, ProcessSpec};

pub type StepId = usize;

/// Namespace and interface names are shared by many steps; one allocation each.
pub type Name = Arc<str>;

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Plan {
    pub lab: String,
    pub steps: Vec<Step>,
}

/// Written with its op's fields beside `id` and `deps`; read in one pass (`read.rs`).
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub id: StepId,
    #[serde(flatten)]
    pub op: Op,
    /// Steps that must finish first.
    pub deps: Vec<StepId>,
}

/// What waits behind a barrier.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Gate {
    /// The bridges: every port, address and route is in place before they come up.
    Bridges,
    /// The nodes' inits and processes: the whole wiring is in place, bridges included.
    Nodes,
}

/// One kernel operation. Namespaces are named; interfaces carry the ifindex the plan
/// assigned them, so apply never has to look one up. A step reads its op in `read.rs`,
/// which a new variant needs an arm in.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    CreateNetns {
        netns: Name,
    },
    SetSysctl {
        netns: Name,
        key: String,
        value: String,
    },
    /// Created down, without multicast snooping; both come on once the rest of the wiring
    /// is in place (see `Gate::Bridges`).
    CreateBridge {
        netns: Name,
        name: Name,
        ifindex: u32,
        #[serde(serialize_with = "ser_mac", deserialize_with = "de_mac")]
        mac: [u8; 6],
        #[serde(skip_serializing_if = "Option::is_none")]
        mtu: Option<u32>,
        /// The kernel's spanning tree, with the shortest forward delay it allows.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        stp: bool,
    },
    SetLinkUp {
        netns: Name,
        name: Name,
        ifindex: u32,
    },
    /// Multicast snooping on a bridge, turned on once the bridge is up with all its ports.
    /// The bridge is created down and without it: on a running bridge with snooping, every
    /// port coming up re-enables multicast on every port (the kernel's port state selection
    /// walks them all), O(N^2) timer work, and a running bridge without snooping floods
    /// each new host's MLD reports to every port; together they were a fifth of bringing a
    /// 1,000-host star up. Turned on afterwards, it ends in the default state of a Linux
    /// bridge.
    SetMulticastSnooping {
        netns: Name,
        name: Name,
        ifindex: u32,
        on: bool,
    },
    /// Only at run time (`nslab link down`): never part of a lab's plan.
    SetLinkDown {
        netns: Name,
        name: Name,
        ifindex: u32,
    },
    /// Only in an `apply`: a link kept across the change gets its new MTU in place.
    SetMtu {
        netns: Name,
        name: Name,
        ifindex: u32,
        mtu: u32,
    },
    AddAddress {
        netns: Name,
        name: Name,
        ifindex: u32,
        address: IpNet,
    },
    AddRoute {
        netns: Name,
        route: Box<Route>,
    },
    SetImpair {
        netns: Name,
        name: Name,
        ifindex: u32,
        impair: Box<Impair>,
    },
    /// Every step before it is done: bridges come up after the rest of the wiring, nodes
    /// start after all of it.
    Barrier {
        before: Gate,
    },
    /// A tmpfs on the lab's node directories (see `node::rundirs`).
    MountRunDirs {
        lab: String,
    },
    /// The lab's mount template, which nodes with their own mount namespace copy from
    /// (see `node::template`).
    CreateMountTemplate {
        lab: String,
    },
    /// The lab's `/etc/hosts`, which each node extends with its own addresses.
    WriteHosts {
        lab: String,
        content: String,
    },
    /// The node's cgroup with its limits; `outside` also puts it in every hierarchy
    /// without a limit, so the init leaves all of the caller's cgroups.
    CreateCgroup {
        netns: Name,
        node: String,
        limits: Limits,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        outside: bool,
    },
    /// The node's init: its namespaces, mounts and hostname, ready to run processes.
    StartNode {
        netns: Name,
        start: Box<NodeStart>,
    },
    /// One of the node's processes; done once it is ready.
    StartProcess {
        netns: Name,
        node: String,
        process: String,
    },
    /// Only in an `apply`: a process new to a node that keeps running is made known to its
    /// init (a `start-process` step then starts it).
    AddProcess {
        netns: Name,
        node: String,
        spec: Box<ProcessSpec>,
    },
    /// A one-shot `exec:` command inside the node.
    RunExec {
        netns: Name,
        node: String,
        argv: Vec<String>,
        ignore_errors: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Joins the host's management network `network`, shared by every lab naming it: the
    /// first member makes its bridge (tagged as the network's, not a lab's, with the
    /// host's addresses, up); later ones find it. Membership and addresses are in the
    /// network's registry (`state::mgmtnet`), taken at `up` before any step runs.
    JoinMgmt {
        netns: Name,
        network: String,
        bridge: Name,
        ifindex: u32,
        #[serde(serialize_with = "ser_mac", deserialize_with = "de_mac")]
        mac: [u8; 6],
        addresses: Vec<IpNet>,
    },
    /// A link of any kind (`links.rs`), written as `create-<kind>`: serde's tag for it
    /// comes from the kind, which is why this variant is untagged (and last).
    #[serde(untagged)]
    CreateLink(Link),
}

/// The undo kinds whose object lives inside a namespace and goes when it is deleted.
pub const DIES_WITH_NETNS: [&str; 4] = [
    "delete-link",
    "delete-address",
    "delete-route",
    "clear-impair",
];

/// The inverse of a step, for rollback and `down`. Journaled before its step runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Undo {
    DeleteNetns {
        netns: Name,
    },
    DeleteLink {
        netns: Name,
        name: Name,
        ifindex: u32,
    },
    /// A link whose kernel state reaches outside its namespace (a VXLAN's UDP socket and
    /// VNI in the host's): deleted itself, before its namespace, because the kernel frees a
    /// deleted namespace's devices later, in a worker, and until then the VNI stays taken
    /// (a `down` and `up` right after would collide with it).
    DeleteTunnel {
        netns: Name,
        name: Name,
        ifindex: u32,
    },
    DeleteAddress {
        netns: Name,
        ifindex: u32,
        address: IpNet,
        /// The link's name, in the host's namespace only: there an address is deleted
        /// only while the interface at `ifindex` still has the name the lab gave it (a
        /// number alone could be any host interface's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        link: Option<Name>,
    },
    DeleteRoute {
        netns: Name,
        dst: IpNet,
        gateways: Vec<IpAddr>,
    },
    ClearImpair {
        netns: Name,
        ifindex: u32,
    },
    /// Stop the node's init and with it every process of the node.
    StopNode {
        netns: Name,
        node: String,
    },
    RemoveCgroup {
        netns: Name,
        node: String,
    },
    RemoveMountTemplate {
        lab: String,
    },
    UnmountRunDirs {
        lab: String,
    },
    /// Leave a shared management network: the lab's membership goes from its registry,
    /// and the last member out deletes the bridge (only while it carries the network's
    /// tag). The lab's own ports on it are its own `delete-link`s.
    LeaveMgmt {
        netns: Name,
        network: String,
        bridge: Name,
        ifindex: u32,
    },
    /// Stop one process of a node that keeps running (an `apply`'s change); at `down` the
    /// whole node stops instead.
    RetireProcess {
        netns: Name,
        node: String,
        process: String,
    },
}

impl Op {
    /// The namespace the step acts in.
    pub fn netns(&self) -> &str {
        match self {
            Op::CreateLink(l) => &l.netns,
            Op::CreateNetns { netns }
            | Op::SetSysctl { netns, .. }
            | Op::CreateBridge { netns, .. }
            | Op::SetLinkUp { netns, .. }
            | Op::SetLinkDown { netns, .. }
            | Op::SetMtu { netns, .. }
            | Op::AddProcess { netns, .. }
            | Op::SetMulticastSnooping { netns, .. }
            | Op::AddAddress { netns, .. }
            | Op::AddRoute { netns, .. }
            | Op::SetImpair { netns, .. }
            | Op::CreateCgroup { netns, .. }
            | Op::StartNode { netns, .. }
            | Op::StartProcess { netns, .. }
            | Op::RunExec { netns, .. }
            | Op::JoinMgmt { netns, .. } => netns,
            Op::Barrier { .. }
            | Op::WriteHosts { .. }
            | Op::CreateMountTemplate { .. }
            | Op::MountRunDirs { .. } => "",
        }
    }

    /// What undoes this step, if anything must (a sysctl dies with its namespace and
    /// bringing a link up needs no undo).
    pub fn undo(&self) -> Option<Undo> {
        match self {
            Op::CreateNetns { netns } => Some(Undo::DeleteNetns {
                netns: netns.clone(),
            }),
            Op::CreateBridge {
                netns,
                name,
                ifindex,
                ..
            } => Some(Undo::DeleteLink {
                netns: netns.clone(),
                name: name.clone(),
                ifindex: *ifindex,
            }),
            // Whatever the kind, deleting the link's own end removes all it made; a link
            // made from the host's namespace is deleted before its own namespace goes.
            Op::CreateLink(l) if l.kind.from_home() => Some(Undo::DeleteTunnel {
                netns: l.netns.clone(),
                name: l.name.clone(),
                ifindex: l.ifindex,
            }),
            Op::CreateLink(l) => Some(Undo::DeleteLink {
                netns: l.netns.clone(),
                name: l.name.clone(),
                ifindex: l.ifindex,
            }),
            Op::AddAddress {
                netns,
                name,
                ifindex,
                address,
            } => Some(Undo::DeleteAddress {
                netns: netns.clone(),
                ifindex: *ifindex,
                address: *address,
                link: (**netns == *crate::model::hostnet::HOST_NETNS).then(|| name.clone()),
            }),
            Op::AddRoute { netns, route } => Some(Undo::DeleteRoute {
                netns: netns.clone(),
                dst: route.dst,
                gateways: route.nexthops.iter().map(|h| h.gateway).collect(),
            }),
            Op::SetImpair { netns, ifindex, .. } => Some(Undo::ClearImpair {
                netns: netns.clone(),
                ifindex: *ifindex,
            }),
            Op::CreateCgroup { netns, node, .. } => Some(Undo::RemoveCgroup {
                netns: netns.clone(),
                node: node.clone(),
            }),
            Op::JoinMgmt {
                netns,
                network,
                bridge,
                ifindex,
                ..
            } => Some(Undo::LeaveMgmt {
                netns: netns.clone(),
                network: network.clone(),
                bridge: bridge.clone(),
                ifindex: *ifindex,
            }),
            Op::CreateMountTemplate { lab } => Some(Undo::RemoveMountTemplate { lab: lab.clone() }),
            Op::MountRunDirs { lab } => Some(Undo::UnmountRunDirs { lab: lab.clone() }),
            Op::StartNode { netns, start } => Some(Undo::StopNode {
                netns: netns.clone(),
                node: start.node.clone(),
            }),
            Op::AddProcess { netns, node, spec } => Some(Undo::RetireProcess {
                netns: netns.clone(),
                node: node.clone(),
                process: spec.name.clone(),
            }),
            Op::SetSysctl { .. }
            | Op::SetLinkUp { .. }
            | Op::SetLinkDown { .. }
            | Op::SetMtu { .. }
            | Op::SetMulticastSnooping { .. }
            | Op::Barrier { .. }
            | Op::WriteHosts { .. }
            | Op::StartProcess { .. }
            | Op::RunExec { .. } => None,
        }
    }

    /// Whether the step may wait on something outside nslab's control (a process getting
    /// ready, a user's command), so a rollback may stop waiting for it.
    pub fn interruptible(&self) -> bool {
        matches!(self, Op::StartProcess { .. } | Op::RunExec { .. })
    }

    /// Short kebab-case name, as in the JSON `op` field.
    pub fn name(&self) -> &'static str {
        match self {
            Op::CreateNetns { .. } => "create-netns",
            Op::SetSysctl { .. } => "set-sysctl",
            Op::CreateBridge { .. } => "create-bridge",
            Op::CreateLink(l) => l.kind.op_name(),
            Op::SetLinkUp { .. } => "set-link-up",
            Op::SetLinkDown { .. } => "set-link-down",
            Op::SetMtu { .. } => "set-mtu",
            Op::AddProcess { .. } => "add-process",
            Op::SetMulticastSnooping { .. } => "set-multicast-snooping",
            Op::AddAddress { .. } => "add-address",
            Op::AddRoute { .. } => "add-route",
            Op::SetImpair { .. } => "set-impair",
            Op::Barrier { .. } => "barrier",
            Op::WriteHosts { .. } => "write-hosts",
            Op::CreateMountTemplate { .. } => "create-mount-template",
            Op::MountRunDirs { .. } => "mount-run-dirs",
            Op::CreateCgroup { .. } => "create-cgroup",
            Op::StartNode { .. } => "start-node",
            Op::StartProcess { .. } => "start-process",
            Op::RunExec { .. } => "run-exec",
            Op::JoinMgmt { .. } => "join-mgmt",
        }
    }
}

impl Op {
    /// What removes this step's object: its undo, and for a process started with its node
    /// (which `down` never stops on its own) retiring it.
    pub fn identity(&self) -> Option<Undo> {
        match self {
            Op::StartProcess {
                netns,
                node,
                process,
            } => Some(Undo::RetireProcess {
                netns: netns.clone(),
                node: node.clone(),
                process: process.clone(),
            }),
            _ => self.undo(),
        }
    }
}

impl Undo {
    /// Short kebab-case name, as in the JSON `op` field.
    pub fn name(&self) -> &'static str {
        match self {
            Undo::DeleteNetns { .. } => "delete-netns",
            Undo::DeleteLink { .. } => "delete-link",
            Undo::DeleteTunnel { .. } => "delete-tunnel",
            Undo::DeleteAddress { .. } => "delete-address",
            Undo::DeleteRoute { .. } => "delete-route",
            Undo::ClearImpair { .. } => "clear-impair",
            Undo::StopNode { .. } => "stop-node",
            Undo::RemoveCgroup { .. } => "remove-cgroup",
            Undo::RemoveMountTemplate { .. } => "remove-mount-template",
            Undo::UnmountRunDirs { .. } => "unmount-run-dirs",
            Undo::RetireProcess { .. } => "retire-process",
            Undo::LeaveMgmt { .. } => "leave-mgmt",
        }
    }

    pub fn netns(&self) -> &str {
        match self {
            Undo::DeleteNetns { netns }
            | Undo::DeleteLink { netns, .. }
            | Undo::DeleteTunnel { netns, .. }
            | Undo::DeleteAddress { netns, .. }
            | Undo::DeleteRoute { netns, .. }
            | Undo::ClearImpair { netns, .. }
            | Undo::StopNode { netns, .. }
            | Undo::RetireProcess { netns, .. }
            | Undo::LeaveMgmt { netns, .. }
            | Undo::RemoveCgroup { netns, .. } => netns,
            Undo::RemoveMountTemplate { .. } | Undo::UnmountRunDirs { .. } => "",
        }
    }

    /// The namespace whose deletion takes this object with it, if any. Processes and
    /// cgroups outlive a namespace's mount point, so they are always undone themselves.
    /// The one rule: the kinds in [`DIES_WITH_NETNS`], which the journal reader also
    /// uses to skip their records unparsed.
    pub fn dies_with(&self) -> Option<&str> {
        DIES_WITH_NETNS.contains(&self.name()).then(|| self.netns())
    }
}

impl Plan {
    /// What `down` runs once every step is done (see [`Teardown`]).
    pub fn teardown(&self) -> Teardown {
        Teardown::of(self.steps.iter().filter_map(|s| s.op.undo()).collect())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plan serializes")
    }

    /// Streams the plan as pretty JSON, the same bytes as [`Plan::to_json`].
    pub fn write_json(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, self).map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An agent's lab: every node with an init gets a cgroup step in every hierarchy,
    /// before its init, whose start joins it; limits are kept. A lab brought up by hand
    /// keeps its plan as before.
    #[test]
    fn an_agents_nodes_each_get_a_cgroup_outside_the_callers() {
        let yaml = "name: own\nnodes:\n  a: { limits: { memory: 64M } }\n  b: {}\nlinks:\n  - [a:eth0, b:eth0]\n";
        let mut t = crate::compile::compile_str(yaml, "own.yaml", std::path::Path::new("."))
            .unwrap()
            .topology;
        let cgroups = |p: &Plan| -> Vec<(String, bool, bool)> {
            p.steps
                .iter()
                .filter_map(|s| match &s.op {
                    Op::CreateCgroup {
                        node,
                        limits,
                        outside,
                        ..
                    } => Some((node.clone(), limits.memory.is_some(), *outside)),
                    _ => None,
                })
                .collect()
        };
        let by_hand = plan(&t);
        assert_eq!(cgroups(&by_hand), [("a".to_string(), true, false)]);
        t.own_cgroups = true;
        let agent = plan(&t);
        assert_eq!(
            cgroups(&agent),
            [
                ("a".to_string(), true, true),
                ("b".to_string(), false, true)
            ]
        );
        for s in &agent.steps {
            if let Op::StartNode { start, .. } = &s.op {
                assert!(start.cgroup, "{} joins no cgroup", start.node);
                let made = agent.steps.iter().find(
                    |c| matches!(&c.op, Op::CreateCgroup { node, .. } if *node == start.node),
                );
                assert!(
                    made.is_some_and(|c| s.deps.contains(&c.id)),
                    "{}",
                    start.node
                );
            }
        }
    }

    #[test]
    fn exactly_the_objects_inside_a_namespace_die_with_it() {
        let ns: Name = "nslab.t.a".into();
        let inside = [
            Undo::DeleteLink {
                netns: ns.clone(),
                name: "eth0".into(),
                ifindex: 2,
            },
            Undo::DeleteAddress {
                netns: ns.clone(),
                ifindex: 2,
                address: "10.0.0.1/31".parse().unwrap(),
                link: None,
            },
            Undo::DeleteRoute {
                netns: ns.clone(),
                dst: "0.0.0.0/0".parse().unwrap(),
                gateways: vec![],
            },
            Undo::ClearImpair {
                netns: ns.clone(),
                ifindex: 2,
            },
        ];
        let outside = [
            Undo::DeleteNetns { netns: ns.clone() },
            Undo::StopNode {
                netns: ns.clone(),
                node: "a".into(),
            },
            Undo::RetireProcess {
                netns: ns.clone(),
                node: "a".into(),
                process: "p".into(),
            },
            Undo::RemoveCgroup {
                netns: ns.clone(),
                node: "a".into(),
            },
            Undo::RemoveMountTemplate { lab: "t".into() },
            Undo::UnmountRunDirs { lab: "t".into() },
        ];
        for u in &inside {
            assert_eq!(u.dies_with(), Some("nslab.t.a"), "{u:?}");
        }
        for u in &outside {
            assert_eq!(u.dies_with(), None, "{u:?}");
        }
        // Every name in the rule is a real kind, so the journal's text test matches.
        let names: Vec<&str> = inside.iter().map(Undo::name).collect();
        assert_eq!(names, DIES_WITH_NETNS);
    }
}
