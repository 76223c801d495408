//! Nodes' own interfaces: the dummies and vlans of `interfaces:`, and the node ends of
//! links to a host interface (macvlan). Each is named, checked against the node's other
//! interfaces, given an ifindex and a MAC the way link ends are, and ordered so that a
//! vlan comes after its parent.

use std::collections::HashSet;

use super::super::names::check_ifname;
use super::layout::ifindex;
use super::macs::NodeMacs;
use super::specs::Specs;
use crate::diag::{Sink, Span, did_you_mean};
use crate::kinds;
use crate::model::{Device, DeviceKind, Node};
use crate::spec::device::RawDevice;
use crate::spec::raw::*;

/// Whether a link is a node's macvlan on a host interface.
pub(super) fn is_macvlan(l: &RawLink) -> bool {
    l.endpoints.iter().any(|e| e.macvlan.is_some())
}

/// A device before its ifindex and MAC, with where its parent is written.
struct Pending {
    dev: Device,
    mac: Option<[u8; 6]>,
    parent_span: Option<Span>,
}

pub(super) fn build(
    sink: &mut Sink,
    lab: &str,
    raw: &RawTopology,
    specs: &Specs,
    nodes: &mut [Node],
    macs: &mut NodeMacs,
) {
    let mut per: Vec<Vec<Pending>> = nodes.iter().map(|_| Vec::new()).collect();
    for (n, (_, spec)) in specs.specs.iter().enumerate() {
        for d in &spec.interfaces {
            per[n].extend(declared(sink, &nodes[n].name, d));
        }
    }
    let mut next_eth: Vec<usize> = vec![0; nodes.len()];
    for l in raw.links.iter().filter(|l| is_macvlan(l)) {
        if let Some((n, mut p)) = macvlan(sink, specs, l) {
            if p.dev.name.is_empty() {
                p.dev.name = free_eth(&nodes[n], &per[n], &mut next_eth[n]);
            }
            per[n].push(p);
        }
    }
    for (n, (node, pending)) in nodes.iter_mut().zip(per).enumerate() {
        if pending.is_empty() {
            continue;
        }
        unique(sink, node, &pending);
        let ordered = parents_first(sink, node, pending);
        number(lab, (n, node), macs, ordered);
    }
}

/// One `interfaces:` entry, its kind's keys checked.
fn declared(sink: &mut Sink, node: &str, d: &RawDevice) -> Option<Pending> {
    let kind = match d.kind.value {
        kinds::DeviceKind::Dummy => {
            for span in [
                d.parent.as_ref().map(|p| p.span),
                d.id.as_ref().map(|i| i.span),
            ]
            .into_iter()
            .flatten()
            {
                sink.error(
                    Some(span),
                    format!(
                        "dummy interface `{}` takes no `parent` or `id`",
                        d.name.value
                    ),
                )
                .hint("a dummy stands alone; for a tagged subinterface write `kind: vlan`");
            }
            DeviceKind::Dummy
        }
        kinds::DeviceKind::Vlan => {
            let Some(parent) = &d.parent else {
                sink.error(
                    Some(d.span),
                    format!("vlan `{}` of node `{node}` needs `parent:`", d.name.value),
                )
                .hint("the interface it tags, like `parent: eth1`");
                return None;
            };
            let Some(id) = &d.id else {
                sink.error(
                    Some(d.span),
                    format!("vlan `{}` of node `{node}` needs `id:`", d.name.value),
                )
                .hint("its VLAN id, 1 to 4094, like `id: 100`");
                return None;
            };
            let Some(id16) = u16::try_from(id.value)
                .ok()
                .filter(|i| (1..=4094).contains(i))
            else {
                sink.error(
                    Some(id.span),
                    format!("vlan id {} is not between 1 and 4094", id.value),
                )
                .hint("0 and 4095 are reserved by 802.1Q");
                return None;
            };
            DeviceKind::Vlan {
                parent: parent.value.clone(),
                id: id16,
            }
        }
    };
    Some(Pending {
        dev: Device {
            name: d.name.value.clone(),
            ifindex: 0,
            mac: [0; 6],
            mtu: d.mtu.as_ref().map(|m| m.value),
            addresses: d.addresses.iter().map(|a| a.value).collect(),
            kind,
            span: d.name.span,
        },
        mac: d.mac.as_ref().map(|m| m.value),
        parent_span: d.parent.as_ref().map(|p| p.span),
    })
}

/// The node end of a link whose other end is `{ macvlan: IF }`. Its name is empty when
/// not written (the caller picks a free `ethN`).
fn macvlan(sink: &mut Sink, specs: &Specs, l: &RawLink) -> Option<(usize, Pending)> {
    let (mv, end) = match &l.endpoints[..] {
        [a, b] if a.macvlan.is_some() && b.macvlan.is_none() => (a, b),
        [a, b] if b.macvlan.is_some() && a.macvlan.is_none() => (b, a),
        _ => {
            sink.error(
                Some(l.span),
                "a macvlan link joins one node to one host interface",
            )
            .hint("for example `endpoints: [r1:eth1, { macvlan: eth0 }]`");
            return None;
        }
    };
    let mode = mv.macvlan.as_ref()?.value;
    if let Err(msg) = check_ifname(&mv.name.value) {
        sink.error(
            Some(mv.name.span),
            format!("invalid host interface name: {msg}"),
        );
    }
    if mv.addresses.as_ref().is_some_and(|a| !a.is_empty()) || mv.mac.is_some() {
        sink.error(
            Some(mv.span),
            "the macvlan end of a link has no addresses or MAC",
        )
        .hint("put them on the node end: the macvlan is the node's interface");
    }
    let Some(&n) = specs.names.get(&end.name.value) else {
        let d = sink.error(
            Some(end.name.span),
            format!(
                "the other end of a macvlan link, `{}`, is not a node",
                end.name.value
            ),
        );
        match did_you_mean(&end.name.value, specs.names.keys().map(String::as_str)) {
            Some(s) => d.hint(format!("did you mean `{s}`?")),
            None => d.hint("a macvlan joins a node (not a bridge) to the host's network"),
        };
        return None;
    };
    if let Some(i) = l.impair.as_ref().or(end.impair.as_ref()) {
        sink.error(Some(i.span), "a macvlan link takes no `impair`")
            .hint("impair a link between nodes instead");
    }
    let name = end
        .iface
        .as_ref()
        .map(|i| i.value.clone())
        .unwrap_or_default();
    Some((
        n,
        Pending {
            dev: Device {
                name,
                ifindex: 0,
                mac: [0; 6],
                mtu: l.mtu.as_ref().map(|m| m.value),
                addresses: end.addresses.iter().flatten().map(|a| a.value).collect(),
                kind: DeviceKind::Macvlan {
                    parent: mv.name.value.clone(),
                    mode,
                },
                span: end.iface.as_ref().map_or(end.span, |i| i.span),
            },
            mac: end.mac.as_ref().map(|m| m.value),
            parent_span: Some(mv.name.span),
        },
    ))
}

/// The lowest `ethN` that no interface of the node has.
fn free_eth(node: &Node, pending: &[Pending], next: &mut usize) -> String {
    loop {
        let name = format!("eth{next}");
        *next += 1;
        let taken = node.interfaces.iter().any(|i| i.name == name)
            || pending.iter().any(|p| p.dev.name == name);
        if !taken {
            return name;
        }
    }
}

/// Names are valid, and no other interface of the node has them.
fn unique(sink: &mut Sink, node: &Node, pending: &[Pending]) {
    let mut seen: Vec<(&str, Span)> = Vec::new();
    for p in pending {
        let name = p.dev.name.as_str();
        if let Err(msg) = check_ifname(name) {
            sink.error(Some(p.dev.span), format!("invalid interface name on node `{}`: {msg}", node.name))
                .hint("interface names are at most 15 bytes of letters, digits, `_`, `-` and `.`, like `eth1.100`");
            continue;
        }
        if name == "lo" || node.interfaces.iter().any(|i| i.name == name) {
            sink.error(
                Some(p.dev.span),
                format!("node `{}` already has an interface `{name}`", node.name),
            )
            .hint(
                "each interface of a node has its own name; this one is also a link's end or `lo`",
            );
        } else if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
            sink.error(
                Some(p.dev.span),
                format!(
                    "interface `{name}` of node `{}` is declared twice",
                    node.name
                ),
            )
            .note(*first, "first declared here");
        } else {
            seen.push((name, p.dev.span));
        }
    }
}

/// Vlans after their parents; a parent that is no interface of the node, or a loop of
/// vlans, is reported.
fn parents_first(sink: &mut Sink, node: &Node, mut pending: Vec<Pending>) -> Vec<Pending> {
    let known = |name: &str, pending: &[Pending]| {
        node.interfaces.iter().any(|i| i.name == name) || pending.iter().any(|p| p.dev.name == name)
    };
    for p in &pending {
        if let DeviceKind::Vlan { parent, .. } = &p.dev.kind
            && !known(parent, &pending)
        {
            let names: Vec<&str> = node
                .interfaces
                .iter()
                .map(|i| i.name.as_str())
                .chain(pending.iter().map(|p| p.dev.name.as_str()))
                .collect();
            let d = sink.error(
                p.parent_span,
                format!(
                    "vlan `{}`: node `{}` has no interface `{parent}`",
                    p.dev.name, node.name
                ),
            );
            match did_you_mean(parent, names.iter().copied()) {
                Some(s) => d.hint(format!("did you mean `{s}`?")),
                None if names.is_empty() => d.hint(
                    "the parent is a link's end on this node, or another of its `interfaces:`",
                ),
                None => d.hint(format!("its interfaces are: {}", names.join(", "))),
            };
        }
    }
    let mut out: Vec<Pending> = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending.iter().position(|p| match &p.dev.kind {
            DeviceKind::Vlan { parent, .. } => {
                node.interfaces.iter().any(|i| &i.name == parent)
                    || out.iter().any(|o| &o.dev.name == parent)
                    || !known(parent, &pending)
            }
            _ => true,
        });
        match ready {
            Some(i) => out.push(pending.remove(i)),
            None => {
                let names: Vec<&str> = pending.iter().map(|p| p.dev.name.as_str()).collect();
                sink.error(
                    Some(pending[0].dev.span),
                    format!(
                        "the vlans {} of node `{}` are each other's parents",
                        names.join(", "),
                        node.name
                    ),
                )
                .hint("a vlan's parent is a link's end, a dummy, or a vlan whose own parent is");
                break;
            }
        }
    }
    out
}

/// Ifindexes and MACs as for link ends: from the (node, interface) identity, clear of
/// the node's other interfaces.
fn number(lab: &str, (n, node): (usize, &mut Node), macs: &mut NodeMacs, ordered: Vec<Pending>) {
    let mut taken: HashSet<u32> = node.interfaces.iter().map(|i| i.ifindex).collect();
    for p in ordered {
        let mut d = p.dev;
        d.ifindex = ifindex(&["ifindex", &node.name, &d.name], &mut taken);
        d.mac = match p.mac {
            Some(m) => {
                macs.take(n, m);
                m
            }
            None => macs.derive(lab, n, &node.name, &d.name),
        };
        node.devices.push(d);
    }
}

#[cfg(test)]
mod tests {
    use crate::compile::CompileError;
    use crate::model::{DeviceKind, Topology};
    use crate::plan::{LinkSpec, Op};

    fn compiled(yaml: &str) -> Topology {
        match crate::compile_str(yaml, "t.yaml", std::path::Path::new("/")) {
            Ok(c) => c.topology,
            Err(e) => panic!("{e}"),
        }
    }

    /// Every error, as `line:col message`.
    fn errors(yaml: &str) -> Vec<String> {
        match crate::compile_str(yaml, "t.yaml", std::path::Path::new("/")) {
            Err(CompileError::Invalid(r)) => r
                .diagnostics
                .iter()
                .map(|d| {
                    let at = d.span.map(|s| format!("{}:{}", s.line, s.col));
                    format!("{} {}", at.unwrap_or_default(), d.message)
                })
                .collect(),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("compiled"),
        }
    }

    const LAB: &str = "name: d\nnodes:\n  r1:\n    interfaces:\n      lo1: { kind: dummy, addresses: [10.255.0.1/32] }\n      eth1.100: { kind: vlan, parent: eth1, id: 100, addresses: [10.100.0.1/24] }\n      v7: { kind: vlan, parent: lo1, id: 7 }\n    routes: [{ to: 10.77.0.0/16, dev: lo1 }]\n  r2:\n    routes: [{ to: default4, via: 192.168.1.1 }]\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n    addresses: [10.0.0.0/31, 10.0.0.1/31]\n  - endpoints: [{ macvlan: enp0s3, mode: vepa }, { node: r2, mac: 02:00:00:00:00:42, addresses: [192.168.1.7/24] }]\n    mtu: 1400\nrouting: static\n";

    #[test]
    fn devices_are_planned_after_their_parents_with_their_addresses() {
        let t = compiled(LAB);
        let r1 = t.node("r1").unwrap();
        let names: Vec<&str> = r1.devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["lo1", "eth1.100", "v7"]);
        let r2 = t.node("r2").unwrap();
        assert_eq!(r2.devices[0].name, "eth0", "the lowest free ethN");
        assert_eq!(r2.devices[0].mac, [2, 0, 0, 0, 0, 0x42]);
        assert_eq!(r2.devices[0].mtu, Some(1400));
        assert_eq!(
            r2.devices[0].kind,
            DeviceKind::Macvlan {
                parent: "enp0s3".into(),
                mode: crate::kinds::MacvlanMode::Vepa
            }
        );
        // Ifindexes clash with no link end of the node.
        let mut ix: Vec<u32> = r1.interfaces.iter().map(|i| i.ifindex).collect();
        ix.extend(r1.devices.iter().map(|d| d.ifindex));
        let n = ix.len();
        ix.sort_unstable();
        ix.dedup();
        assert_eq!(ix.len(), n);
        // `routing: static` reaches the dummy and the vlan through r1.
        let dsts: Vec<String> = r2.routes.iter().map(|r| r.dst.to_string()).collect();
        assert!(dsts.contains(&"10.255.0.1/32".to_string()), "{dsts:?}");
        assert!(dsts.contains(&"10.100.0.0/24".to_string()), "{dsts:?}");

        let plan = crate::plan::plan(&t);
        let step = |name: &str| {
            plan.steps
                .iter()
                .find(|s| matches!(&s.op, Op::CreateLink(l) if &*l.name == name))
                .unwrap_or_else(|| panic!("no step makes {name}"))
        };
        let veth = step("eth1");
        let vlan = step("eth1.100");
        assert!(vlan.deps.contains(&veth.id), "a vlan waits for its parent");
        let Op::CreateLink(l) = &vlan.op else {
            unreachable!()
        };
        let LinkSpec::Vlan(v) = &l.kind else {
            panic!("{:?}", l.kind)
        };
        assert_eq!(
            (v.vlan_id, v.parent_ifindex),
            (100, r1.interfaces[0].ifindex)
        );
        assert!(step("v7").deps.contains(&step("lo1").id));
        assert_eq!(step("eth0").op.name(), "create-macvlan");
        let addr = plan
            .steps
            .iter()
            .find(|s| matches!(&s.op, Op::AddAddress { name, .. } if &**name == "lo1"));
        assert!(addr.is_some_and(|a| a.deps == [step("lo1").id]));
        // A node's own routes reach through its devices, once they are made and addressed.
        let route = |node: &str, dst: &str| {
            plan.steps
                .iter()
                .find(|s| {
                    matches!(&s.op, Op::AddRoute { netns, route }
                        if netns.ends_with(node) && route.dst.to_string() == dst)
                })
                .unwrap_or_else(|| panic!("no route to {dst} on {node}"))
        };
        let default = route("r2", "0.0.0.0/0");
        let Op::AddRoute { route: r, .. } = &default.op else {
            unreachable!()
        };
        assert_eq!(r.nexthops[0].dev, "eth0");
        assert_eq!(r.nexthops[0].ifindex, r2.devices[0].ifindex);
        assert!(
            default.deps.contains(&step("eth0").id),
            "{:?}",
            default.deps
        );
        let dev = route("r1", "10.77.0.0/16");
        assert!(dev.deps.contains(&step("lo1").id), "{:?}", dev.deps);
        // The same file gives the same plan.
        assert_eq!(plan.to_json(), crate::plan::plan(&compiled(LAB)).to_json());
    }

    #[test]
    fn bad_devices_are_located_errors_all_at_once() {
        let e = errors(
            "name: d\nnodes:\n  r1:\n    interfaces:\n      v1: { kind: vlan, parent: eht1, id: 100 }\n      v2: { kind: vlan, parent: eth1, id: 4095 }\n      eth1: { kind: dummy }\n      averyveryverylongname: { kind: dummy }\n      v3: { kind: vlan, id: 3 }\n      d1: { kind: dummy, id: 3 }\n      v4: { kind: bond }\n  r2: {}\nlinks:\n  - [r1:eth1, r2:eth1]\n  - [r9:eth1, { macvlan: eth0 }]\n  - [r1:eth3, { macvlan: eth0, iface: x }]\nnodes2: ~\n",
        );
        let want = [
            "5:33 vlan `v1`: node `r1` has no interface `eht1`",
            "6:43 vlan id 4095 is not between 1 and 4094",
            "7:7 node `r1` already has an interface `eth1`",
            "8:7 invalid interface name on node `r1`: interface name `averyveryverylongname` is 21 bytes long",
            "9:11 vlan `v3` of node `r1` needs `parent:`",
            "10:30 dummy interface `d1` takes no `parent` or `id`",
            "11:19 invalid interface `kind`: `bond` is not one of dummy, vlan",
            "15:6 the other end of a macvlan link, `r9`, is not a node",
            "16:39 a macvlan end takes no `iface`",
        ];
        for w in want {
            assert!(
                e.iter().any(|x| x.starts_with(w)),
                "`{w}` missing from {e:#?}"
            );
        }
    }

    #[test]
    fn interfaces_merge_from_kinds_by_name_and_a_name_twice_is_an_error() {
        let t = compiled(
            "name: d\nkinds:\n  r:\n    interfaces: { lo1: { kind: dummy, addresses: [10.9.0.1/32] } }\nnodes:\n  r1: { kind: r, interfaces: { lo1: { kind: dummy, addresses: [10.9.0.2/32] } } }\n",
        );
        let r1 = t.node("r1").unwrap();
        assert_eq!(r1.devices.len(), 1);
        assert_eq!(r1.devices[0].addresses[0].to_string(), "10.9.0.2/32");
        let e = errors(
            "name: d\nnodes:\n  r1: {}\nlinks:\n  - [r1:eth1, { macvlan: eth0 }]\n  - [r1:eth1, { macvlan: eth1 }]\n",
        );
        assert!(
            e.iter()
                .any(|x| x.starts_with("6:9 interface `eth1` of node `r1` is declared twice")),
            "{e:#?}"
        );
    }
}
