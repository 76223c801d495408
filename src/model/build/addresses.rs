//! Addresses: every explicit one checked for duplicates and kept out of the pools, then
//! loopbacks, point-to-point links and bridges filled from the pools by identity.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::super::ipam::{self, Member, Pools, Reserved, Segment};
use super::super::names;
use super::layout::Layout;
use super::specs::Specs;
use super::wires::Wire;
use crate::diag::{Sink, Span};
use crate::model::{End, Node, Vertex};
use crate::spec::raw::*;

/// Checks every explicit address, then fills the rest from the pools, each block placed by
/// its owner's identity (see `ipam`): loopbacks in node order, point-to-point links in
/// link order, bridges in bridge order, so a collision moves the owner declared later.
pub(super) fn assign<'a>(
    sink: &mut Sink,
    raw: &'a RawTopology,
    specs: &Specs,
    layout: &mut Layout,
    wires: &'a [Wire<'a>],
) {
    let reserved = Reserved::new(&explicit(sink, raw, specs, wires));
    let mut pools = Pools::new(sink, &raw.addressing);
    let nodes = &mut layout.nodes;
    for (i, (name, spec)) in specs.specs.iter().enumerate() {
        nodes[i].loopback = match &spec.loopback {
            Some(Sp {
                value: RawLoopback::Auto,
                span,
            }) => ipam::loopback(sink, &mut pools, &reserved, &name.value, *span),
            Some(Sp {
                value: RawLoopback::Addrs(a),
                ..
            }) => a.iter().map(|a| a.value).collect(),
            None => Vec::new(),
        };
    }
    p2p(sink, &mut pools, &reserved, layout, wires);
    lans(sink, &mut pools, &reserved, raw, layout, wires);
    // Bridge links carry their bridge's subnets.
    for l in layout.links.iter_mut() {
        for e in [l.a, l.b] {
            if let End::Bridge { bridge, .. } = e {
                l.subnets = layout.bridges[bridge].subnets.clone();
            }
        }
    }
}

/// Every explicit address and subnet, for the pools to avoid; an address written twice is
/// an error naming both places.
fn explicit(sink: &mut Sink, raw: &RawTopology, specs: &Specs, wires: &[Wire]) -> Vec<IpNet> {
    // Every explicit address, for duplicates and for the pools to avoid.
    let mut reserved_nets: Vec<IpNet> = Vec::new();
    let mut seen: HashMap<IpAddr, (Span, String)> = HashMap::new();
    let mut note = |sink: &mut Sink, a: &Sp<IpNet>, who: String| {
        if let Some((first, first_who)) = seen.get(&a.value.addr()) {
            sink.error(
                Some(a.span),
                format!(
                    "address {} of {who} is also used by {first_who}",
                    a.value.addr()
                ),
            )
            .note(*first, "first used here")
            .hint("every address in a lab must be unique");
        } else {
            seen.insert(a.value.addr(), (a.span, who));
        }
    };
    for (name, spec) in &specs.specs {
        if let Some(Sp {
            value: RawLoopback::Addrs(addrs),
            ..
        }) = &spec.loopback
        {
            for a in addrs {
                note(sink, a, format!("the loopback of `{}`", name.value));
                reserved_nets.push(a.value);
            }
        }
    }
    for w in wires {
        for e in &w.ends {
            for a in e.raw.addresses.iter().flatten() {
                note(
                    sink,
                    a,
                    format!(
                        "`{}:{}`",
                        e.raw.name.value,
                        e.iface.as_deref().unwrap_or("")
                    ),
                );
                reserved_nets.push(a.value);
            }
        }
        if w.raw.unnumbered
            && w.ends
                .iter()
                .any(|e| e.raw.addresses.as_ref().is_some_and(|a| !a.is_empty()))
        {
            sink.error(Some(w.raw.span), "an `unnumbered` link has addresses")
                .hint("drop `unnumbered: true` or the addresses");
        }
    }
    for (name, b) in &raw.bridges {
        for (subnet, v6) in [(&b.subnet, false), (&b.subnet6, true)] {
            let Some(subnet) = subnet else { continue };
            if subnet.value.addr().is_ipv6() != v6 {
                let (key, fam) = if v6 {
                    ("subnet6", "IPv6")
                } else {
                    ("subnet", "IPv4")
                };
                sink.error(
                    Some(subnet.span),
                    format!("`{key}` of bridge `{}` must be an {fam} prefix", name.value),
                );
            }
            reserved_nets.push(subnet.value);
        }
    }
    reserved_nets
}

/// One end of a segment, as the pools see it (an `unnumbered` link's ends get none).
fn member<'a>(w: &Wire<'a>, k: usize, key: Option<u64>) -> Member<'a> {
    const NONE: &[Sp<IpNet>] = &[];
    Member {
        span: w.ends[k].raw.span,
        key,
        explicit: if w.raw.unnumbered {
            Some(NONE)
        } else {
            w.ends[k].raw.addresses.as_deref()
        },
    }
}

fn node_end(e: End) -> (usize, usize) {
    match e {
        End::Node { node, iface } => (node, iface),
        End::Bridge { .. } | End::Uplink { .. } => unreachable!("member ends are node ends"),
    }
}

fn iface_name(nodes: &[Node], (n, i): (usize, usize)) -> String {
    format!("{}:{}", nodes[n].name, nodes[n].interfaces[i].name)
}

/// Point-to-point links in link order, one segment at a time so no per-segment state
/// outlives its allocation. A link is known by its two ends, `node:iface` sorted.
fn p2p(
    sink: &mut Sink,
    pools: &mut Pools,
    reserved: &Reserved,
    layout: &mut Layout,
    wires: &[Wire],
) {
    let (nodes, links) = (&mut layout.nodes, &mut layout.links);
    for (li, w) in wires.iter().enumerate() {
        if !w.ends.iter().all(|e| matches!(e.vertex, Vertex::Node(_))) {
            continue;
        }
        let owners = [node_end(links[li].a), node_end(links[li].b)];
        let id =
            |(n, i): (usize, usize)| (nodes[n].name.as_str(), nodes[n].interfaces[i].name.as_str());
        let (a, b) = (id(owners[0]), id(owners[1]));
        let (lo, hi, order) = if a <= b {
            (a, b, vec![0, 1])
        } else {
            (b, a, vec![1, 0])
        };
        let seg = Segment {
            span: w.raw.span,
            lan: false,
            key: names::identity_hash(&["link", lo.0, lo.1, hi.0, hi.1]),
            fixed: [None, None],
            members: vec![member(w, 0, None), member(w, 1, None)],
            order,
        };
        let a = {
            let ro: &[Node] = nodes;
            let namer = |m: Option<usize>| match m {
                Some(m) => format!("`{}`", iface_name(ro, owners[m])),
                None => format!(
                    "link {} -- {}",
                    iface_name(ro, owners[0]),
                    iface_name(ro, owners[1])
                ),
            };
            ipam::assign_segment(sink, pools, reserved, &seg, &namer)
        };
        for ((node, iface), addrs) in owners.iter().zip(a.members) {
            nodes[*node].interfaces[*iface].addresses = addrs;
        }
        links[li].subnets = a.subnets;
    }
}

/// Bridges in bridge order, each known by its name; members in link order, each placed in
/// the subnet by its `node:iface`. Bridges joined by links are one segment, known by its
/// first bridge: one subnet (the one a bridge of it writes, else from the pool) whose
/// addresses go to the members of all of them, as a Mininet tree is one subnet.
fn lans(
    sink: &mut Sink,
    pools: &mut Pools,
    reserved: &Reserved,
    raw: &RawTopology,
    layout: &mut Layout,
    wires: &[Wire],
) {
    let Layout {
        nodes,
        bridges,
        bridge_pos,
        ..
    } = layout;
    let mut spec_of: Vec<Option<&RawBridge>> = vec![None; bridges.len()];
    for (raw_i, (_, spec)) in raw.bridges.iter().enumerate() {
        if let Some(&b) = bridge_pos.get(&raw_i) {
            spec_of[b] = Some(spec);
        }
    }
    let spec_of: Vec<&RawBridge> = spec_of
        .into_iter()
        .map(|s| s.expect("every bridge has its spec"))
        .collect();
    for b in 0..bridges.len() {
        let seg = crate::model::segment(bridges, b);
        if seg[0] != b {
            continue;
        }
        let mut ports: Vec<&crate::model::BridgePort> =
            seg.iter().flat_map(|&x| &bridges[x].ports).collect();
        ports.sort_by_key(|p| p.link);
        let mut members = Vec::new();
        let mut owners = Vec::new();
        for p in ports {
            let w = &wires[p.link];
            let k = w
                .ends
                .iter()
                .position(|e| matches!(e.vertex, Vertex::Node(_)))
                .expect("one node end");
            let (node, iface) = (&nodes[p.node].name, &nodes[p.node].interfaces[p.iface].name);
            let key = names::identity_hash(&["host", node, iface]);
            members.push(member(w, k, Some(key)));
            owners.push((p.node, p.iface));
        }
        let names: Vec<&str> = seg.iter().map(|&x| bridges[x].name.as_str()).collect();
        let fixed = [
            one_subnet(
                sink,
                &seg,
                &names,
                &spec_of,
                |s| s.subnet.as_ref(),
                "subnet",
            ),
            one_subnet(
                sink,
                &seg,
                &names,
                &spec_of,
                |s| s.subnet6.as_ref(),
                "subnet6",
            ),
        ];
        let seg_spec = spec_of[b];
        let segment = Segment {
            span: seg_spec.span,
            lan: true,
            key: names::identity_hash(&["bridge", &bridges[b].name]),
            fixed,
            order: (0..members.len()).collect(),
            members,
        };
        let a = {
            let ro: &[Node] = nodes;
            let bname = match names.len() {
                1 => format!("bridge `{}`", names[0]),
                _ => format!("the joined bridges `{}`", names.join("`, `")),
            };
            let namer = |m: Option<usize>| match m {
                Some(m) => format!("`{}`", iface_name(ro, owners[m])),
                None => bname.clone(),
            };
            ipam::assign_segment(sink, pools, reserved, &segment, &namer)
        };
        for ((node, iface), addrs) in owners.iter().zip(a.members) {
            nodes[*node].interfaces[*iface].addresses = addrs;
        }
        for &x in &seg {
            bridges[x].subnets = a.subnets.clone();
        }
    }
}

/// The one subnet (of a family) that the bridges of a segment write; two different ones
/// are an error, since a segment is one subnet.
fn one_subnet<'r>(
    sink: &mut Sink,
    seg: &[usize],
    names: &[&str],
    spec_of: &[&'r RawBridge],
    get: impl Fn(&'r RawBridge) -> Option<&'r Sp<IpNet>>,
    key: &str,
) -> Option<&'r Sp<IpNet>> {
    let mut found: Option<(&'r Sp<IpNet>, &str)> = None;
    for (&b, name) in seg.iter().zip(names) {
        let Some(s) = get(spec_of[b]) else { continue };
        match found {
            None => found = Some((s, name)),
            Some((f, fname)) if f.value != s.value => {
                sink.error(
                    Some(s.span),
                    format!(
                        "bridges `{fname}` and `{name}` are joined, so one L2 segment, but their `{key}`s differ ({} and {})",
                        f.value, s.value
                    ),
                )
                .note(f.span, format!("`{fname}`'s {key}"))
                .hint(format!(
                    "a segment is one subnet: write `{key}` on one of the joined bridges (or the same on each)"
                ));
            }
            Some(_) => {}
        }
    }
    found.map(|(f, _)| f)
}
