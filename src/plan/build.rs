//! Turning a topology into steps. Steps are emitted phase by phase (namespaces, sysctls,
//! bridges, veths, links up, addresses, routes, impairments), so ascending ids are a valid
//! order; the dependencies let apply run independent steps concurrently.

use crate::model::{End, Topology};
use crate::plan::{Name, Op, Plan, Step, StepId};

struct Builder {
    steps: Vec<Step>,
}

impl Builder {
    fn push(&mut self, op: Op, mut deps: Vec<StepId>) -> StepId {
        deps.sort_unstable();
        deps.dedup();
        let id = self.steps.len() + 1;
        self.steps.push(Step { id, op, deps });
        id
    }
}

/// Per node and interface: a value for each interface of each node.
type PerIface<T> = Vec<Vec<T>>;

/// Builds the plan for a topology. Pure: the same topology always gives the same plan.
pub fn plan(t: &Topology) -> Plan {
    let mut b = Builder {
        steps: Vec::with_capacity(estimate(t)),
    };
    let fabric: Option<Name> = t.fabric_netns().map(Name::from);
    let lo: Name = Name::from("lo");
    let netns: Vec<Name> = t
        .nodes
        .iter()
        .map(|n| Name::from(n.netns.as_str()))
        .collect();
    let ifname: PerIface<Name> = t
        .nodes
        .iter()
        .map(|n| {
            n.interfaces
                .iter()
                .map(|i| Name::from(i.name.as_str()))
                .collect()
        })
        .collect();
    let per_iface = |v: StepId| -> PerIface<StepId> {
        t.nodes
            .iter()
            .map(|n| vec![v; n.interfaces.len()])
            .collect()
    };

    // Namespaces: the fabric first, then nodes in declaration order.
    let fabric_step = fabric
        .as_ref()
        .map(|f| b.push(Op::CreateNetns { netns: f.clone() }, vec![]));
    let ns_step: Vec<StepId> = netns
        .iter()
        .map(|n| b.push(Op::CreateNetns { netns: n.clone() }, vec![]))
        .collect();

    // Namespace-wide sysctls before any interface exists, so `conf.default.*` applies to
    // the interfaces created next.
    let mut ready: Vec<Vec<StepId>> = ns_step.iter().map(|s| vec![*s]).collect();
    for (i, n) in t.nodes.iter().enumerate() {
        for s in n.sysctls.iter().filter(|s| s.iface.is_none()) {
            let id = b.push(
                Op::SetSysctl {
                    netns: netns[i].clone(),
                    key: s.key.clone(),
                    value: s.value.clone(),
                },
                vec![ns_step[i]],
            );
            ready[i].push(id);
        }
    }
    let lo_up: Vec<StepId> = (0..t.nodes.len())
        .map(|i| {
            b.push(
                Op::SetLinkUp {
                    netns: netns[i].clone(),
                    name: lo.clone(),
                    ifindex: 1,
                },
                vec![ns_step[i]],
            )
        })
        .collect();

    let mut bridge_step: Vec<StepId> = Vec::new();
    if let (Some(f), Some(fs)) = (&fabric, fabric_step) {
        for br in &t.bridges {
            bridge_step.push(b.push(
                Op::CreateBridge {
                    netns: f.clone(),
                    name: Name::from(br.name.as_str()),
                    ifindex: br.ifindex,
                    mac: br.mac,
                    mtu: br.mtu,
                },
                vec![fs],
            ));
        }
    }

    // Veths, in link order. `created` is the step that made each interface, `up` the step
    // after which it is up.
    let mut created = per_iface(0);
    let mut up = per_iface(0);
    let mut peers: Vec<(usize, usize, StepId)> = Vec::new();
    for l in &t.links {
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
                let (ea, eb) = (&t.nodes[na].interfaces[ia], &t.nodes[nb].interfaces[ib]);
                let mut deps = ready[na].clone();
                deps.extend(&ready[nb]);
                let id = b.push(
                    Op::CreateVeth {
                        netns: netns[na].clone(),
                        name: ifname[na][ia].clone(),
                        ifindex: ea.ifindex,
                        mac: ea.mac,
                        mtu: ea.mtu,
                        master: None,
                        peer_netns: netns[nb].clone(),
                        peer_name: ifname[nb][ib].clone(),
                        peer_ifindex: eb.ifindex,
                        peer_mac: eb.mac,
                    },
                    deps,
                );
                created[na][ia] = id;
                created[nb][ib] = id;
                up[na][ia] = id;
                peers.push((nb, ib, id));
            }
            (End::Bridge { bridge, port }, End::Node { node, iface })
            | (End::Node { node, iface }, End::Bridge { bridge, port }) => {
                let br = &t.bridges[bridge];
                let p = &br.ports[port];
                let e = &t.nodes[node].interfaces[iface];
                let mut deps = ready[node].clone();
                deps.push(bridge_step[bridge]);
                let id = b.push(
                    Op::CreateVeth {
                        netns: fabric.clone().expect("a lab with bridges has a fabric"),
                        name: Name::from(p.name.as_str()),
                        ifindex: p.ifindex,
                        mac: p.mac,
                        mtu: e.mtu,
                        master: Some(br.ifindex),
                        peer_netns: netns[node].clone(),
                        peer_name: ifname[node][iface].clone(),
                        peer_ifindex: e.ifindex,
                        peer_mac: e.mac,
                    },
                    deps,
                );
                created[node][iface] = id;
                peers.push((node, iface, id));
            }
            (End::Bridge { .. }, End::Bridge { .. }) => unreachable!("rejected by the model"),
        }
    }
    // A peer cannot be created up (the kernel answers ENOTCONN), so it gets its own step.
    for (node, iface, veth) in peers {
        up[node][iface] = b.push(
            Op::SetLinkUp {
                netns: netns[node].clone(),
                name: ifname[node][iface].clone(),
                ifindex: t.nodes[node].interfaces[iface].ifindex,
            },
            vec![veth],
        );
    }

    // Per-interface sysctls, once the interface exists.
    for (i, n) in t.nodes.iter().enumerate() {
        for s in &n.sysctls {
            let Some(name) = &s.iface else { continue };
            let k = n
                .interfaces
                .iter()
                .position(|x| &x.name == name)
                .expect("validated");
            b.push(
                Op::SetSysctl {
                    netns: netns[i].clone(),
                    key: s.key.clone(),
                    value: s.value.clone(),
                },
                vec![created[i][k]],
            );
        }
    }

    // Addresses: loopbacks, then interfaces.
    let mut addr_steps: PerIface<Vec<StepId>> = t
        .nodes
        .iter()
        .map(|n| vec![Vec::new(); n.interfaces.len()])
        .collect();
    for (i, n) in t.nodes.iter().enumerate() {
        for a in &n.loopback {
            b.push(
                Op::AddAddress {
                    netns: netns[i].clone(),
                    name: lo.clone(),
                    ifindex: 1,
                    address: *a,
                },
                vec![lo_up[i]],
            );
        }
        for (k, e) in n.interfaces.iter().enumerate() {
            for a in &e.addresses {
                let id = b.push(
                    Op::AddAddress {
                        netns: netns[i].clone(),
                        name: ifname[i][k].clone(),
                        ifindex: e.ifindex,
                        address: *a,
                    },
                    vec![created[i][k]],
                );
                addr_steps[i][k].push(id);
            }
        }
    }

    // Routes need their egress interfaces up and addressed (the connected route).
    for (i, n) in t.nodes.iter().enumerate() {
        for r in &n.routes {
            let mut deps = vec![ns_step[i]];
            let ifindexes = r.nexthops.iter().map(|h| h.ifindex).chain(r.dev_ifindex);
            for ifx in ifindexes {
                // Interface k has ifindex k + 2 (1 is lo).
                let k = (ifx - 2) as usize;
                deps.push(up[i][k]);
                deps.extend(&addr_steps[i][k]);
            }
            b.push(
                Op::AddRoute {
                    netns: netns[i].clone(),
                    route: Box::new(r.clone()),
                },
                deps,
            );
        }
    }

    for (i, n) in t.nodes.iter().enumerate() {
        for (k, e) in n.interfaces.iter().enumerate() {
            if let Some(imp) = &e.impair {
                b.push(
                    Op::SetImpair {
                        netns: netns[i].clone(),
                        name: ifname[i][k].clone(),
                        ifindex: e.ifindex,
                        impair: imp.clone(),
                    },
                    vec![created[i][k]],
                );
            }
        }
    }

    Plan {
        lab: t.lab.clone(),
        steps: b.steps,
    }
}

/// An upper-bound guess of the step count, so the step vector allocates once.
fn estimate(t: &Topology) -> usize {
    let per_node: usize = t
        .nodes
        .iter()
        .map(|n| {
            2 + n.sysctls.len()
                + n.loopback.len()
                + n.routes.len()
                + n.interfaces
                    .iter()
                    .map(|i| 2 + i.addresses.len())
                    .sum::<usize>()
        })
        .sum();
    per_node + t.links.len() + t.bridges.len() + 1
}
