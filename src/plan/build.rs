//! Turning a topology into steps. Steps are emitted phase by phase (namespaces, sysctls,
//! bridges created down, veths, links up, addresses, routes, impairments, a barrier, the
//! bridges up, then the nodes' runtimes), so ascending ids are a valid order; the
//! dependencies let apply run independent steps concurrently.

use std::collections::HashMap;

use crate::model::{self, End, LinkKind, Topology};
use crate::plan::links::{Join, Link, LinkSpec, Peer, Vxlan};
use crate::plan::share::Share;
use crate::plan::{Gate, Name, Op, Plan, Step, StepId};

mod devices;
mod nodes;

pub(super) struct Builder {
    steps: Vec<Step>,
}

impl Builder {
    pub(super) fn push(&mut self, op: Op, mut deps: Vec<StepId>) -> StepId {
        deps.sort_unstable();
        deps.dedup();
        let id = self.steps.len() + 1;
        self.steps.push(Step { id, op, deps });
        id
    }
}

/// Per node and interface: a value for each interface of each node.
type PerIface<T> = Vec<Vec<T>>;

/// Names and step ids the phases share: what each later step waits for.
struct Wiring {
    fabric: Option<Name>,
    fabric_step: Option<StepId>,
    lo: Name,
    netns: Vec<Name>,
    ifname: PerIface<Name>,
    ns_step: Vec<StepId>,
    /// Per node: its namespace and namespace-wide sysctls.
    ready: Vec<Vec<StepId>>,
    lo_up: Vec<StepId>,
    bridge_step: Vec<StepId>,
    /// The step that made each interface.
    created: PerIface<StepId>,
    /// The step after which each interface is up.
    up: PerIface<StepId>,
    addr_steps: PerIface<Vec<StepId>>,
    /// Per node: whether it runs on this host (all of them without a share).
    local: Vec<bool>,
    /// Per bridge: whether it has a replica on this host.
    bridge_local: Vec<bool>,
    /// Per link joining two bridges (by link index): the step that made it.
    joins: HashMap<usize, StepId>,
    share: Option<Share>,
}

impl Wiring {
    /// A link whose own end is node `node`'s interface `iface`: every kind made in a node
    /// (a veth to another node, a VXLAN to another host) fills that end the same way, from
    /// the interface's name, ifindex, MAC and MTU in the model.
    fn node_end(&self, t: &Topology, node: usize, iface: usize, kind: LinkSpec) -> Link {
        let e = &t.nodes[node].interfaces[iface];
        Link {
            netns: self.netns[node].clone(),
            name: self.ifname[node][iface].clone(),
            ifindex: e.ifindex,
            mac: e.mac,
            mtu: e.mtu,
            master: None,
            kind,
        }
    }

    fn new(t: &Topology, share: Option<&Share>) -> Wiring {
        let local: Vec<bool> = (0..t.nodes.len())
            .map(|i| share.is_none_or(|s| s.is_local(t, i)))
            .collect();
        // A bridge is made where its members are (the model keeps them on one host).
        let bridge_local: Vec<bool> = t
            .bridges
            .iter()
            .map(|b| b.ports.is_empty() || b.ports.iter().any(|p| local[p.node]))
            .collect();
        let fabric = bridge_local
            .iter()
            .any(|l| *l)
            .then(|| t.fabric_netns().map(Name::from))
            .flatten();
        let per_iface = |v: StepId| -> PerIface<StepId> {
            t.nodes
                .iter()
                .map(|n| vec![v; n.interfaces.len()])
                .collect()
        };
        Wiring {
            fabric,
            fabric_step: None,
            lo: Name::from("lo"),
            netns: t
                .nodes
                .iter()
                .map(|n| Name::from(n.netns.as_str()))
                .collect(),
            ifname: t
                .nodes
                .iter()
                .map(|n| {
                    n.interfaces
                        .iter()
                        .map(|i| Name::from(i.name.as_str()))
                        .collect()
                })
                .collect(),
            ns_step: Vec::new(),
            ready: Vec::new(),
            lo_up: Vec::new(),
            bridge_step: Vec::new(),
            created: per_iface(0),
            up: per_iface(0),
            addr_steps: t
                .nodes
                .iter()
                .map(|n| vec![Vec::new(); n.interfaces.len()])
                .collect(),
            local,
            bridge_local,
            joins: HashMap::new(),
            share: share.cloned(),
        }
    }
}

/// Builds the plan for a topology. Pure: the same topology always gives the same plan.
/// Every node is local, and a link between hosts is a veth.
pub fn plan(t: &Topology) -> Plan {
    build(t, None)
}

/// The plan of one host's share of a multi-host lab: its nodes, links between them as
/// veths, links to other hosts as VXLANs, and the bridges its nodes are on.
pub fn plan_share(t: &Topology, share: &Share) -> Plan {
    build(t, Some(share))
}

fn build(t: &Topology, share: Option<&Share>) -> Plan {
    let mut b = Builder {
        steps: Vec::with_capacity(estimate(t)),
    };
    let mut w = Wiring::new(t, share);
    namespaces(t, &mut b, &mut w);
    fabric(t, &mut b, &mut w);
    links(t, &mut b, &mut w);
    devices::devices(t, &mut b, &w);
    iface_sysctls(t, &mut b, &w);
    addresses(t, &mut b, &mut w);
    routes(t, &mut b, &w);
    impairments(t, &mut b, &w);
    super::hostnet::steps(t, &mut b, &w.ready, &w.local);
    bridges_up(t, &mut b, &w);
    nodes::nodes(t, &mut b, &w.netns, &w.ns_step, &w.local);
    Plan {
        lab: t.lab.clone(),
        steps: b.steps,
    }
}

/// Namespaces (the fabric first, then nodes in declaration order), their namespace-wide
/// sysctls before any interface exists (so `conf.default.*` applies to the interfaces
/// made next), and `lo` up.
fn namespaces(t: &Topology, b: &mut Builder, w: &mut Wiring) {
    w.fabric_step = w
        .fabric
        .as_ref()
        .map(|f| b.push(Op::CreateNetns { netns: f.clone() }, vec![]));
    w.ns_step = w
        .netns
        .iter()
        .zip(&w.local)
        .map(|(n, local)| match local {
            true => b.push(Op::CreateNetns { netns: n.clone() }, vec![]),
            false => 0,
        })
        .collect();

    w.ready = w.ns_step.iter().map(|s| vec![*s]).collect();
    for (i, n) in t.nodes.iter().enumerate() {
        if !w.local[i] {
            continue;
        }
        for s in n.sysctls.iter().filter(|s| s.iface.is_none()) {
            let id = b.push(
                Op::SetSysctl {
                    netns: w.netns[i].clone(),
                    key: s.key.clone(),
                    value: s.value.clone(),
                },
                vec![w.ns_step[i]],
            );
            w.ready[i].push(id);
        }
    }
    w.lo_up = (0..t.nodes.len())
        .map(|i| {
            if !w.local[i] {
                return 0;
            }
            b.push(
                Op::SetLinkUp {
                    netns: w.netns[i].clone(),
                    name: w.lo.clone(),
                    ifindex: 1,
                },
                vec![w.ns_step[i]],
            )
        })
        .collect();
}

/// The fabric's sysctls and its bridges, created down.
fn fabric(t: &Topology, b: &mut Builder, w: &mut Wiring) {
    if let (Some(f), Some(fs)) = (&w.fabric, w.fabric_step) {
        let mut deps = vec![fs];
        for (key, value) in crate::model::FABRIC_SYSCTLS {
            deps.push(b.push(
                Op::SetSysctl {
                    netns: f.clone(),
                    key: key.to_string(),
                    value: value.to_string(),
                },
                vec![fs],
            ));
        }
        for (bi, br) in t.bridges.iter().enumerate() {
            if !w.bridge_local[bi] {
                w.bridge_step.push(0);
                continue;
            }
            let made = b.push(
                Op::CreateBridge {
                    netns: f.clone(),
                    name: Name::from(br.name.as_str()),
                    ifindex: br.ifindex,
                    mac: br.mac,
                    mtu: br.mtu,
                    stp: br.stp,
                },
                deps.clone(),
            );
            w.bridge_step.push(made);
            if let Some(share) = &w.share
                && let Some(vni) = share.bridge_vnis[bi]
            {
                b.push(replica_tunnel(t, share, f, bi, vni), vec![made]);
            }
        }
    }
}

/// Links in link order, each by its kind's function; then each veth peer brought up in a
/// step of its own.
fn links(t: &Topology, b: &mut Builder, w: &mut Wiring) {
    // (node, interface, its veth's step)
    let mut peers: Vec<(usize, usize, StepId)> = Vec::new();
    for (li, l) in t.links.iter().enumerate() {
        // A bridge end is wherever its node end is (a replica is on every member's host).
        let ends = [l.a, l.b].map(|e| match e {
            End::Node { node, .. } => Some(w.local[node]),
            End::Bridge { .. } | End::Uplink { .. } => None,
        });
        let local = |i: usize| ends[i].unwrap_or(true);
        match (l.kind, w.share.clone()) {
            _ if !local(0) && !local(1) => {}
            (LinkKind::Veth, _) if !local(0) || !local(1) => {}
            (LinkKind::Vxlan, Some(share)) => {
                let vni = share.vnis[li].expect("a vxlan link has a VNI");
                let (own, far) = if local(0) { (l.a, l.b) } else { (l.b, l.a) };
                vxlan(t, b, w, &share, [own, far], vni);
            }
            _ if matches!(l.a, End::Uplink { .. }) => join(t, b, w, li, l),
            (LinkKind::Veth | LinkKind::Vxlan, _) => veth(t, b, w, l, &mut peers),
        }
    }
    // A peer cannot be created up (the kernel answers ENOTCONN), so it gets its own step.
    for (node, iface, veth) in peers {
        w.up[node][iface] = b.push(
            Op::SetLinkUp {
                netns: w.netns[node].clone(),
                name: w.ifname[node][iface].clone(),
                ifindex: t.nodes[node].interfaces[iface].ifindex,
            },
            vec![veth],
        );
    }
}

/// A veth: node to node, or a bridge's end made in the fabric as its port. The peer
/// (the second node's end, or the node's end of a port) goes into `peers`.
fn veth(
    t: &Topology,
    b: &mut Builder,
    w: &mut Wiring,
    l: &model::Link,
    peers: &mut Vec<(usize, usize, StepId)>,
) {
    match (l.a, l.b) {
        (
            End::Node {
                node: na,
                iface: ia,
            },
            End::Node {
                node: nb,
                iface: ib,
            },
        ) => {
            let eb = &t.nodes[nb].interfaces[ib];
            let mut deps = w.ready[na].clone();
            deps.extend(&w.ready[nb]);
            let id = b.push(
                Op::CreateLink(w.node_end(
                    t,
                    na,
                    ia,
                    LinkSpec::Veth(Peer {
                        peer_netns: w.netns[nb].clone(),
                        peer_name: w.ifname[nb][ib].clone(),
                        peer_ifindex: eb.ifindex,
                        peer_mac: eb.mac,
                    }),
                )),
                deps,
            );
            w.created[na][ia] = id;
            w.created[nb][ib] = id;
            w.up[na][ia] = id;
            peers.push((nb, ib, id));
        }
        (End::Bridge { bridge, port }, End::Node { node, iface })
        | (End::Node { node, iface }, End::Bridge { bridge, port }) => {
            let br = &t.bridges[bridge];
            let p = &br.ports[port];
            let e = &t.nodes[node].interfaces[iface];
            let mut deps = w.ready[node].clone();
            deps.push(w.bridge_step[bridge]);
            let id = b.push(
                Op::CreateLink(Link {
                    netns: w.fabric.clone().expect("a lab with bridges has a w.fabric"),
                    name: Name::from(p.name.as_str()),
                    ifindex: p.ifindex,
                    mac: p.mac,
                    mtu: e.mtu,
                    master: Some(br.ifindex),
                    kind: LinkSpec::Veth(Peer {
                        peer_netns: w.netns[node].clone(),
                        peer_name: w.ifname[node][iface].clone(),
                        peer_ifindex: e.ifindex,
                        peer_mac: e.mac,
                    }),
                }),
                deps,
            );
            w.created[node][iface] = id;
            peers.push((node, iface, id));
        }
        _ => unreachable!("a bridge's end joins a node; `join` makes the rest"),
    }
}

/// A link joining two bridges: a veth in the fabric, each end a port of its bridge.
fn join(t: &Topology, b: &mut Builder, w: &mut Wiring, li: usize, l: &model::Link) {
    let (
        End::Uplink {
            bridge: ba,
            uplink: ua,
        },
        End::Uplink {
            bridge: bb,
            uplink: ub,
        },
    ) = (l.a, l.b)
    else {
        unreachable!("a join has two bridge ends")
    };
    let (pa, pb) = (&t.bridges[ba].uplinks[ua], &t.bridges[bb].uplinks[ub]);
    let id = b.push(
        Op::CreateLink(Link {
            netns: w.fabric.clone().expect("a lab with bridges has a w.fabric"),
            name: Name::from(pa.name.as_str()),
            ifindex: pa.ifindex,
            mac: pa.mac,
            mtu: pa.mtu,
            master: Some(t.bridges[ba].ifindex),
            kind: LinkSpec::Join(Join {
                peer_name: Name::from(pb.name.as_str()),
                peer_ifindex: pb.ifindex,
                peer_mac: pb.mac,
                peer_master: t.bridges[bb].ifindex,
            }),
        }),
        vec![w.bridge_step[ba], w.bridge_step[bb]],
    );
    w.joins.insert(li, id);
}

/// The port that joins a bridge's replica here to its replicas on other hosts: a VXLAN
/// in the fabric, with one all-zeros FDB entry per other host (head-end replication).
/// Its name, `vx-` and the bridge's, and an ifindex and MAC are derived so that they
/// clash with nothing else in the fabric.
fn replica_tunnel(t: &Topology, share: &Share, fabric: &Name, bi: usize, vni: u32) -> Op {
    let br = &t.bridges[bi];
    let taken: std::collections::HashSet<u32> = t
        .bridges
        .iter()
        .flat_map(|b| std::iter::once(b.ifindex).chain(b.ports.iter().map(|p| p.ifindex)))
        .collect();
    let mut ifindex = 0x00f0_0000 | (vni & 0xfffff);
    while taken.contains(&ifindex) || ifindex < 256 {
        ifindex = ifindex.wrapping_add(1) & 0x00ff_ffff;
    }
    let names: std::collections::HashSet<&str> = t
        .bridges
        .iter()
        .flat_map(|b| {
            std::iter::once(b.name.as_str()).chain(b.ports.iter().map(|p| p.name.as_str()))
        })
        .collect();
    let mut name = format!("vx-{}", br.name.chars().take(12).collect::<String>());
    if names.contains(name.as_str()) {
        name = format!("vx-{vni:x}");
    }
    let here = &t.hosts[share.host];
    let v = vni.to_be_bytes();
    Op::CreateLink(Link {
        netns: fabric.clone(),
        name: Name::from(name.as_str()),
        ifindex,
        mac: [0x06, 0x76, 0x78, v[1], v[2], v[3]],
        mtu: br
            .ports
            .iter()
            .filter_map(|p| t.nodes[p.node].interfaces[p.iface].mtu)
            .min(),
        master: Some(br.ifindex),
        kind: LinkSpec::Vxlan(Vxlan {
            vni,
            port: t.vxlan_port,
            local: here.address,
            remote: None,
            flood: t
                .hosts
                .iter()
                .filter(|h| h.name != here.name && br.hosts.contains(&h.name))
                .map(|h| h.address)
                .collect(),
        }),
    })
}

/// A link to another host: a VXLAN made from this host's namespace (where its UDP socket
/// stays) straight into the node's, under the interface's name, up.
fn vxlan(t: &Topology, b: &mut Builder, w: &mut Wiring, share: &Share, ends: [End; 2], vni: u32) {
    let [End::Node { node, iface }, End::Node { node: far, .. }] = ends else {
        unreachable!("a vxlan joins two nodes")
    };
    let remote = t.host_of(far).expect("a placed node");
    let id = b.push(
        Op::CreateLink(w.node_end(
            t,
            node,
            iface,
            LinkSpec::Vxlan(Vxlan {
                vni,
                port: t.vxlan_port,
                local: t.hosts[share.host].address,
                remote: Some(t.hosts[remote].address),
                flood: Vec::new(),
            }),
        )),
        w.ready[node].clone(),
    );
    w.created[node][iface] = id;
    w.up[node][iface] = id;
}

/// Per-interface sysctls, once the interface exists.
fn iface_sysctls(t: &Topology, b: &mut Builder, w: &Wiring) {
    for (i, n) in t.nodes.iter().enumerate() {
        if !w.local[i] {
            continue;
        }
        for s in &n.sysctls {
            let Some(name) = &s.iface else { continue };
            let k = n
                .interfaces
                .iter()
                .position(|x| &x.name == name)
                .expect("validated");
            b.push(
                Op::SetSysctl {
                    netns: w.netns[i].clone(),
                    key: s.key.clone(),
                    value: s.value.clone(),
                },
                vec![w.created[i][k]],
            );
        }
    }
}

/// Addresses: loopbacks, then interfaces.
fn addresses(t: &Topology, b: &mut Builder, w: &mut Wiring) {
    for (i, n) in t.nodes.iter().enumerate() {
        if !w.local[i] {
            continue;
        }
        for a in &n.loopback {
            b.push(
                Op::AddAddress {
                    netns: w.netns[i].clone(),
                    name: w.lo.clone(),
                    ifindex: 1,
                    address: *a,
                },
                vec![w.lo_up[i]],
            );
        }
        for (k, e) in n.interfaces.iter().enumerate() {
            for a in &e.addresses {
                let id = b.push(
                    Op::AddAddress {
                        netns: w.netns[i].clone(),
                        name: w.ifname[i][k].clone(),
                        ifindex: e.ifindex,
                        address: *a,
                    },
                    vec![w.created[i][k]],
                );
                w.addr_steps[i][k].push(id);
            }
        }
    }
}

/// Routes need their egress interfaces up and addressed (the connected route).
fn routes(t: &Topology, b: &mut Builder, w: &Wiring) {
    for (i, n) in t.nodes.iter().enumerate() {
        if !w.local[i] {
            continue;
        }
        // Ifindexes are hashed (see model::build::layout), so find each one's interface.
        let by_ifindex: HashMap<u32, usize> = n
            .interfaces
            .iter()
            .enumerate()
            .map(|(k, e)| (e.ifindex, k))
            .collect();
        for r in &n.routes {
            let mut deps = vec![w.ns_step[i]];
            let ifindexes = r.nexthops.iter().map(|h| h.ifindex).chain(r.dev_ifindex);
            for ifx in ifindexes {
                match by_ifindex.get(&ifx) {
                    Some(&k) => {
                        deps.push(w.up[i][k]);
                        deps.extend(&w.addr_steps[i][k]);
                    }
                    // One of the node's own interfaces (a dummy, vlan or macvlan).
                    None => deps.extend(devices::made(b, &w.netns[i], ifx)),
                }
            }
            b.push(
                Op::AddRoute {
                    netns: w.netns[i].clone(),
                    route: Box::new(r.clone()),
                },
                deps,
            );
        }
    }
}

fn impairments(t: &Topology, b: &mut Builder, w: &Wiring) {
    for (i, n) in t.nodes.iter().enumerate() {
        if !w.local[i] {
            continue;
        }
        for (k, e) in n.interfaces.iter().enumerate() {
            if let Some(imp) = &e.impair {
                b.push(
                    Op::SetImpair {
                        netns: w.netns[i].clone(),
                        name: w.ifname[i][k].clone(),
                        ifindex: e.ifindex,
                        impair: imp.clone(),
                    },
                    vec![w.created[i][k]],
                );
            }
        }
    }
    let Some(f) = &w.fabric else { return };
    for br in &t.bridges {
        for u in &br.uplinks {
            if let (Some(imp), Some(&made)) = (&u.impair, w.joins.get(&u.link)) {
                b.push(
                    Op::SetImpair {
                        netns: f.clone(),
                        name: Name::from(u.name.as_str()),
                        ifindex: u.ifindex,
                        impair: imp.clone(),
                    },
                    vec![made],
                );
            }
        }
    }
}

/// Bridges come up last, behind a barrier on the rest of the wiring, then get multicast
/// snooping. The first frame a bridge forwards finds every host addressed and routed,
/// and the IPv6 start-up chatter of its hosts (MLD reports and router solicitations,
/// flooded to every port: O(ports^2) frames) does not compete with the rest of `up`.
fn bridges_up(t: &Topology, b: &mut Builder, w: &Wiring) {
    if let Some(f) = &w.fabric {
        let wired = b.push(
            Op::Barrier {
                before: Gate::Bridges,
            },
            leaves(b),
        );
        for (bi, br) in t.bridges.iter().enumerate() {
            if !w.bridge_local[bi] {
                continue;
            }
            let name = Name::from(br.name.as_str());
            let bridge_up = b.push(
                Op::SetLinkUp {
                    netns: f.clone(),
                    name: name.clone(),
                    ifindex: br.ifindex,
                },
                vec![wired],
            );
            b.push(
                Op::SetMulticastSnooping {
                    netns: f.clone(),
                    name,
                    ifindex: br.ifindex,
                    on: true,
                },
                vec![bridge_up],
            );
        }
    }
}

/// The steps nothing else waits for: a barrier on them waits, transitively, for all.
pub(super) fn leaves(b: &Builder) -> Vec<StepId> {
    let mut depended = vec![false; b.steps.len() + 1];
    for s in &b.steps {
        for d in &s.deps {
            depended[*d] = true;
        }
    }
    b.steps
        .iter()
        .map(|s| s.id)
        .filter(|id| !depended[*id])
        .collect()
}

/// An upper bound on the step count, counted the way the builder emits steps, so the step
/// vector allocates once (a 10,000-node leaf-spine has 660,000 steps); at most a barrier
/// and a mount template over.
fn estimate(t: &Topology) -> usize {
    let per_node: usize = t
        .nodes
        .iter()
        .map(|n| {
            // namespace, lo up, sysctls, loopbacks, routes, node runtime
            2 + n.sysctls.len()
                + n.loopback.len()
                + n.routes.len()
                + 2
                + n.processes.len()
                + n.exec.len()
                + n.interfaces
                    .iter()
                    .map(|i| i.addresses.len() + usize::from(i.impair.is_some()))
                    .sum::<usize>()
        })
        .sum();
    // the fabric and its sysctls, bridges (created, up, snooping) behind their barrier
    let fabric = if t.bridges.is_empty() {
        0
    } else {
        1 + crate::model::FABRIC_SYSCTLS.len() + 3 * t.bridges.len() + 1
    };
    // barrier, run directories, hosts file, mount template
    let runtime = 4;
    // a veth and a peer-up per link
    per_node + fabric + 2 * t.links.len() + runtime + super::hostnet::estimate(t)
}
