//! Where nodes run in a multi-host lab: the hosts, each node's host (by hand, or by
//! `placement: auto`), which links cross hosts (they become VXLANs) and their MTUs. A lab
//! without `hosts:` comes out of this stage exactly as it went in.

use std::collections::HashMap;

use super::super::names::check_node_name;
use super::super::placement::{self, Problem};
use super::layout::Layout;
use super::specs::Specs;
use super::wires::Wire;
use crate::diag::{Sink, did_you_mean};
use crate::model::{DEFAULT_VXLAN_PORT, End, Host, LinkKind};
use crate::spec::raw::*;

/// The underlay MTU of a host that does not say.
const DEFAULT_UNDERLAY_MTU: u32 = 1500;

/// The hosts, the VXLAN port and pinned first VNI; places every node and marks
/// cross-host links.
pub(super) fn place(
    sink: &mut Sink,
    raw: &RawTopology,
    specs: &Specs,
    wires: &[Wire],
    l: &mut Layout,
) -> (Vec<Host>, u16, Option<u32>) {
    let (hosts, port) = place_nodes(sink, raw, specs, wires, l);
    let vni = raw.vxlan.vni.as_ref().map(|v| v.value);
    block(sink, raw, l);
    (hosts, port, vni)
}

/// The lab's VNI block holds every tunnel it needs and ends by 2^24-1 (`plan::share`).
fn block(sink: &mut Sink, raw: &RawTopology, l: &Layout) {
    use crate::plan::share::{BLOCK, VNI_MAX};
    if let Some(v) = &raw.vxlan.vni
        && v.value > VNI_MAX - BLOCK + 1
    {
        sink.error(
            Some(v.span),
            format!(
                "`vxlan.vni` {}: the lab's block of {BLOCK} VNIs would end past {VNI_MAX}",
                v.value
            ),
        )
        .hint(format!(
            "the block starts at `vni:` and holds {BLOCK} VNIs: pin at most {}",
            VNI_MAX - BLOCK + 1
        ));
    }
    let needed = l.links.iter().filter(|k| k.kind == LinkKind::Vxlan).count()
        + l.bridges.iter().filter(|b| !b.hosts.is_empty()).count();
    if needed > BLOCK as usize {
        let span = raw.hosts.first().map(|(n, _)| n.span);
        sink.error(
            span,
            format!("the lab needs {needed} VNIs across hosts, more than its block of {BLOCK}"),
        )
        .hint("each link between hosts and each bridge spanning hosts takes one; place more of them on one host, or split the lab");
    }
}

/// The hosts and the VXLAN port; places every node and marks cross-host links.
fn place_nodes(
    sink: &mut Sink,
    raw: &RawTopology,
    specs: &Specs,
    wires: &[Wire],
    l: &mut Layout,
) -> (Vec<Host>, u16) {
    let port = raw
        .vxlan
        .port
        .as_ref()
        .map_or(DEFAULT_VXLAN_PORT, |p| p.value);
    let hosts = hosts(sink, raw);
    if raw.hosts.is_empty() {
        without_hosts(sink, raw, specs);
        return (hosts, port);
    }
    if hosts.is_empty() {
        return (hosts, port); // no host had a usable address: each is reported
    }
    let index: HashMap<&str, usize> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.name.as_str(), i))
        .collect();
    let fixed = by_hand(sink, raw, specs, &index);
    let host_of = if raw.placement.is_some() {
        auto(specs, l, &fixed, hosts.len())
    } else {
        fixed.iter().map(|h| h.unwrap_or(0)).collect()
    };
    for ((n, h), hand) in l.nodes.iter_mut().zip(&host_of).zip(&fixed) {
        n.host = Some(hosts[*h].name.clone());
        n.host_by_hand = hand.is_some();
    }
    cross_links(sink, raw, wires, l, &hosts, &host_of);
    (hosts, port)
}

/// `hosts:` checked: names as node names are, addresses of one family and each once.
fn hosts(sink: &mut Sink, raw: &RawTopology) -> Vec<Host> {
    let mut out: Vec<Host> = Vec::new();
    for (name, h) in &raw.hosts {
        if let Err(msg) = check_node_name(&name.value) {
            sink.error(Some(name.span), format!("invalid host name: {msg}"))
                .hint("host names are letters, digits, `_`, `-` and `.`, like `ha` or `rack-2`");
        }
        let Some(address) = &h.address else { continue };
        if let Some(other) = out.iter().find(|o| o.address == address.value) {
            sink.error(
                Some(address.span),
                format!(
                    "hosts `{}` and `{}` have the same address",
                    other.name, name.value
                ),
            )
            .hint("each host is one machine with its own underlay address");
        } else if let Some(first) = out.first()
            && first.address.is_ipv6() != address.value.is_ipv6()
        {
            sink.error(
                Some(address.span),
                format!(
                    "host `{}` is on an {} underlay but host `{}` on an {} one",
                    name.value,
                    family(address.value.is_ipv6()),
                    first.name,
                    family(first.address.is_ipv6())
                ),
            )
            .hint("a VXLAN joins two addresses of one family: give every host an IPv4 or every host an IPv6 address");
        }
        out.push(Host {
            name: name.value.clone(),
            address: address.value,
            mtu: h.mtu.as_ref().map_or(DEFAULT_UNDERLAY_MTU, |m| m.value),
        });
    }
    out
}

fn family(v6: bool) -> &'static str {
    if v6 { "IPv6" } else { "IPv4" }
}

/// Without `hosts:`, a node's `host:` and `placement:` have nothing to refer to.
fn without_hosts(sink: &mut Sink, raw: &RawTopology, specs: &Specs) {
    for (name, spec) in &specs.specs {
        if let Some(h) = &spec.host {
            sink.error(
                Some(h.span),
                format!(
                    "node `{}` is placed on host `{}`, but the topology has no `hosts:`",
                    name.value, h.value
                ),
            )
            .hint(format!(
                "declare it, like `hosts: {{ {}: {{ address: 192.0.2.11 }} }}`",
                h.value
            ));
        }
    }
    if let Some(p) = &raw.placement {
        sink.error(Some(p.span), "`placement:` without `hosts:`")
            .hint("declare the machines under `hosts:`, or drop `placement:`");
    }
}

/// Each node's hand-written host, checked; a node without one is an error unless
/// `placement: auto` places it.
fn by_hand(
    sink: &mut Sink,
    raw: &RawTopology,
    specs: &Specs,
    index: &HashMap<&str, usize>,
) -> Vec<Option<usize>> {
    let mut fixed = Vec::with_capacity(specs.specs.len());
    for (name, spec) in &specs.specs {
        let h = match &spec.host {
            Some(h) => match index.get(h.value.as_str()) {
                Some(i) => Some(*i),
                None => {
                    let d = sink.error(
                        Some(h.span),
                        format!(
                            "node `{}` is placed on unknown host `{}`",
                            name.value, h.value
                        ),
                    );
                    match did_you_mean(&h.value, index.keys().copied()) {
                        Some(s) => d.hint(format!("did you mean `{s}`?")),
                        None => {
                            let mut known: Vec<&str> = index.keys().copied().collect();
                            known.sort();
                            d.hint(format!("hosts: {}", known.join(", ")))
                        }
                    };
                    Some(0)
                }
            },
            None => {
                if raw.placement.is_none() {
                    sink.error(
                        Some(name.span),
                        format!("node `{}` has no `host:`", name.value),
                    )
                    .hint("place it by hand with `host: <name>`, or let nslab place the rest with top-level `placement: auto`");
                }
                None
            }
        };
        fixed.push(h);
    }
    fixed
}

/// `placement: auto` over the nodes' links; a bridge ties its members to its first one.
fn auto(specs: &Specs, l: &Layout, fixed: &[Option<usize>], hosts: usize) -> Vec<usize> {
    let names: Vec<&str> = specs.specs.iter().map(|(n, _)| n.value.as_str()).collect();
    let mut edges: Vec<(usize, usize)> = Vec::new();
    for link in &l.links {
        if let (End::Node { node: a, .. }, End::Node { node: b, .. }) = (link.a, link.b) {
            edges.push((a, b));
        }
    }
    for br in &l.bridges {
        if let Some(first) = br.ports.first() {
            edges.extend(br.ports[1..].iter().map(|p| (first.node, p.node)));
        }
    }
    placement::place(&Problem {
        names: &names,
        edges: &edges,
        hosts,
        fixed,
    })
}

/// Links between nodes on different hosts become VXLANs, with the MTU both underlays
/// carry unless the link asks for less. A bridge with members on several hosts is not
/// made yet.
fn cross_links(
    sink: &mut Sink,
    raw: &RawTopology,
    wires: &[Wire],
    l: &mut Layout,
    hosts: &[Host],
    host_of: &[usize],
) {
    for (li, link) in l.links.iter_mut().enumerate() {
        let (End::Node { node: a, iface: ia }, End::Node { node: b, iface: ib }) = (link.a, link.b)
        else {
            continue;
        };
        let (ha, hb) = (&hosts[host_of[a]], &hosts[host_of[b]]);
        if ha.name == hb.name {
            continue;
        }
        link.kind = LinkKind::Vxlan;
        let most = ha.mtu.min(hb.mtu) - ha.vxlan_overhead().max(hb.vxlan_overhead());
        match &wires[li].raw.mtu {
            Some(m) if m.value > most => {
                sink.error(
                    Some(m.span),
                    format!(
                        "MTU {} is more than the underlay between hosts `{}` and `{}` carries: at most {most}",
                        m.value, ha.name, hb.name
                    ),
                )
                .hint(format!(
                    "a VXLAN adds {} bytes; lower the link's `mtu:`, or raise the hosts' `mtu:` if their underlay carries more",
                    ha.vxlan_overhead().max(hb.vxlan_overhead())
                ));
            }
            Some(_) => {}
            None => {
                link.mtu = Some(most);
                l.nodes[a].interfaces[ia].mtu = Some(most);
                l.nodes[b].interfaces[ib].mtu = Some(most);
            }
        }
    }
    for bi in 0..l.bridges.len() {
        spanning_bridge(sink, raw, l, bi, hosts, host_of);
    }
}

/// A bridge with members on several hosts: a replica on each, so its members' MTU is what
/// the VXLANs between the replicas carry (the default), and no more.
fn spanning_bridge(
    sink: &mut Sink,
    raw: &RawTopology,
    l: &mut Layout,
    bi: usize,
    hosts: &[Host],
    host_of: &[usize],
) {
    let br = &l.bridges[bi];
    let mut on: Vec<usize> = br.ports.iter().map(|p| host_of[p.node]).collect();
    on.sort_unstable();
    on.dedup();
    if on.len() < 2 {
        return;
    }
    let over = on
        .iter()
        .map(|h| hosts[*h].vxlan_overhead())
        .max()
        .unwrap_or(50);
    let most = on.iter().map(|h| hosts[*h].mtu).min().unwrap_or(1500) - over;
    let span = l
        .bridge_pos
        .iter()
        .find(|(_, b)| **b == bi)
        .map(|(r, _)| raw.bridges[*r].0.span);
    if let Some(m) = br.mtu.filter(|m| *m > most) {
        sink.error(
            span,
            format!(
                "bridge `{}` spans hosts and its MTU {m} is more than they carry: at most {most}",
                br.name
            ),
        )
        .hint(format!(
            "a VXLAN adds {over} bytes; lower the bridge's `mtu:`, or raise the hosts' `mtu:`"
        ));
    }
    let ports: Vec<(usize, usize)> = br.ports.iter().map(|p| (p.node, p.iface)).collect();
    for (n, i) in ports {
        let node = &mut l.nodes[n];
        let iface = &mut node.interfaces[i];
        match iface.mtu {
            Some(m) if m > most => {
                sink.error(
                    span,
                    format!(
                        "bridge `{}` spans hosts, but {}:{} has MTU {m}: at most {most}",
                        l.bridges[bi].name, node.name, iface.name
                    ),
                )
                .hint(format!(
                    "a VXLAN adds {over} bytes; lower the link's `mtu:`"
                ));
            }
            Some(_) => {}
            None => iface.mtu = Some(most),
        }
    }
    l.bridges[bi].hosts = on.iter().map(|h| hosts[*h].name.clone()).collect();
}

/// A warning for a bridge whose members' interfaces have different MTUs: routers on that
/// segment stall on the mismatch (OSPF's database exchange). Multi-host labs meet it
/// first, as a cross-host link's MTU is its underlay's less the tunnel's overhead.
pub(super) fn unequal_mtus(sink: &mut Sink, raw: &RawTopology, l: &Layout) {
    for (bi, br) in l.bridges.iter().enumerate() {
        let mut mtus: Vec<u32> = br
            .ports
            .iter()
            .map(|p| {
                l.nodes[p.node].interfaces[p.iface]
                    .mtu
                    .or(br.mtu)
                    .unwrap_or(1500)
            })
            .collect();
        mtus.sort_unstable();
        mtus.dedup();
        if mtus.len() > 1 {
            let span = l
                .bridge_pos
                .iter()
                .find(|(_, b)| **b == bi)
                .map(|(r, _)| raw.bridges[*r].0.span);
            let list: Vec<String> = mtus.iter().map(u32::to_string).collect();
            sink.warning(
                span,
                format!(
                    "bridge `{}` joins interfaces of different MTUs ({})",
                    br.name,
                    list.join(", ")
                ),
            )
            .hint("routing adjacencies over it stall on the mismatch (OSPF's database exchange); give its links one `mtu:`");
        }
    }
}
