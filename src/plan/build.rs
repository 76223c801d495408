//! Turning a topology into steps. Steps are emitted phase by phase (namespaces, sysctls,
//! bridges, veths, links up, addresses, routes, impairments), so ascending ids are a valid
//! order; the dependencies let apply run independent steps concurrently.

use std::collections::HashMap;

use crate::model::{End, Topology};
use crate::plan::{Op, Plan, Step, StepId};

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

/// Builds the plan for a topology. Pure: the same topology always gives the same plan.
pub fn plan(t: &Topology) -> Plan {
    let mut b = Builder { steps: Vec::new() };
    let fabric = t.fabric_netns();

    // Namespaces: the fabric first, then nodes in declaration order.
    let fabric_step = fabric
        .as_ref()
        .map(|f| b.push(Op::CreateNetns { netns: f.clone() }, vec![]));
    let ns_step: Vec<StepId> = t
        .nodes
        .iter()
        .map(|n| {
            b.push(
                Op::CreateNetns {
                    netns: n.netns.clone(),
                },
                vec![],
            )
        })
        .collect();

    // Namespace-wide sysctls before any interface exists, so `conf.default.*` applies to
    // the interfaces created next.
    let mut ready: Vec<Vec<StepId>> = ns_step.iter().map(|s| vec![*s]).collect();
    for (i, n) in t.nodes.iter().enumerate() {
        for s in n.sysctls.iter().filter(|s| s.iface.is_none()) {
            let id = b.push(
                Op::SetSysctl {
                    netns: n.netns.clone(),
                    key: s.key.clone(),
                    value: s.value.clone(),
                },
                vec![ns_step[i]],
            );
            ready[i].push(id);
        }
    }
    let mut lo_up: Vec<StepId> = Vec::new();
    for (i, n) in t.nodes.iter().enumerate() {
        lo_up.push(b.push(
            Op::SetLinkUp {
                netns: n.netns.clone(),
                name: "lo".into(),
                ifindex: 1,
            },
            vec![ns_step[i]],
        ));
    }

    let mut bridge_step: Vec<StepId> = Vec::new();
    if let (Some(f), Some(fs)) = (&fabric, fabric_step) {
        for br in &t.bridges {
            bridge_step.push(b.push(
                Op::CreateBridge {
                    netns: f.clone(),
                    name: br.name.clone(),
                    ifindex: br.ifindex,
                    mac: br.mac,
                    mtu: br.mtu,
                },
                vec![fs],
            ));
        }
    }

    // Veths, in link order. `created[(node, iface)]` is the step that made the interface;
    // `up[(node, iface)]` the step after which it is up.
    let mut created: HashMap<(usize, usize), StepId> = HashMap::new();
    let mut up: HashMap<(usize, usize), StepId> = HashMap::new();
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
                let (a, bi) = (&t.nodes[na], &t.nodes[nb]);
                let (ea, eb) = (&a.interfaces[ia], &bi.interfaces[ib]);
                let mut deps = ready[na].clone();
                deps.extend(&ready[nb]);
                let id = b.push(
                    Op::CreateVeth {
                        netns: a.netns.clone(),
                        name: ea.name.clone(),
                        ifindex: ea.ifindex,
                        mac: ea.mac,
                        mtu: ea.mtu,
                        master: None,
                        peer_netns: bi.netns.clone(),
                        peer_name: eb.name.clone(),
                        peer_ifindex: eb.ifindex,
                        peer_mac: eb.mac,
                    },
                    deps,
                );
                created.insert((na, ia), id);
                created.insert((nb, ib), id);
                up.insert((na, ia), id);
                peers.push((nb, ib, id));
            }
            (End::Bridge { bridge, port }, End::Node { node, iface })
            | (End::Node { node, iface }, End::Bridge { bridge, port }) => {
                let br = &t.bridges[bridge];
                let p = &br.ports[port];
                let n = &t.nodes[node];
                let e = &n.interfaces[iface];
                let mut deps = ready[node].clone();
                deps.push(bridge_step[bridge]);
                let id = b.push(
                    Op::CreateVeth {
                        netns: fabric.clone().expect("a lab with bridges has a fabric"),
                        name: p.name.clone(),
                        ifindex: p.ifindex,
                        mac: p.mac,
                        mtu: e.mtu,
                        master: Some(br.ifindex),
                        peer_netns: n.netns.clone(),
                        peer_name: e.name.clone(),
                        peer_ifindex: e.ifindex,
                        peer_mac: e.mac,
                    },
                    deps,
                );
                created.insert((node, iface), id);
                peers.push((node, iface, id));
            }
            (End::Bridge { .. }, End::Bridge { .. }) => unreachable!("rejected by the model"),
        }
    }
    // A peer cannot be created up (the kernel answers ENOTCONN), so it gets its own step.
    for (node, iface, veth) in peers {
        let n = &t.nodes[node];
        let e = &n.interfaces[iface];
        let id = b.push(
            Op::SetLinkUp {
                netns: n.netns.clone(),
                name: e.name.clone(),
                ifindex: e.ifindex,
            },
            vec![veth],
        );
        up.insert((node, iface), id);
    }

    // Per-interface sysctls, once the interface exists.
    for (i, n) in t.nodes.iter().enumerate() {
        for s in &n.sysctls {
            let Some(ifname) = &s.iface else { continue };
            let k = n
                .interfaces
                .iter()
                .position(|x| &x.name == ifname)
                .expect("validated");
            b.push(
                Op::SetSysctl {
                    netns: n.netns.clone(),
                    key: s.key.clone(),
                    value: s.value.clone(),
                },
                vec![created[&(i, k)]],
            );
        }
    }

    // Addresses: loopbacks, then interfaces.
    let mut addr_steps: HashMap<(usize, usize), Vec<StepId>> = HashMap::new();
    for (i, n) in t.nodes.iter().enumerate() {
        for a in &n.loopback {
            b.push(
                Op::AddAddress {
                    netns: n.netns.clone(),
                    name: "lo".into(),
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
                        netns: n.netns.clone(),
                        name: e.name.clone(),
                        ifindex: e.ifindex,
                        address: *a,
                    },
                    vec![created[&(i, k)]],
                );
                addr_steps.entry((i, k)).or_default().push(id);
            }
        }
    }

    // Routes need their egress interfaces up and addressed (the connected route).
    for (i, n) in t.nodes.iter().enumerate() {
        for r in &n.routes {
            let mut deps = vec![ns_step[i]];
            let ifindexes = r.nexthops.iter().map(|h| h.ifindex).chain(r.dev_ifindex);
            for ifx in ifindexes {
                let k = n
                    .interfaces
                    .iter()
                    .position(|x| x.ifindex == ifx)
                    .expect("resolved");
                deps.push(up[&(i, k)]);
                deps.extend(addr_steps.get(&(i, k)).into_iter().flatten());
            }
            b.push(
                Op::AddRoute {
                    netns: n.netns.clone(),
                    route: r.clone(),
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
                        netns: n.netns.clone(),
                        name: e.name.clone(),
                        ifindex: e.ifindex,
                        impair: imp.clone(),
                    },
                    vec![created[&(i, k)]],
                );
            }
        }
    }

    Plan {
        lab: t.lab.clone(),
        steps: b.steps,
    }
}
