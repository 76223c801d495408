//! What `nslab plan` says about a multi-host lab before its steps: which nodes land on
//! which host and why (by `host:` or by `placement: auto`), and the tunnels between
//! hosts with the MTU a node gets on them. Every host computes the same placement, so
//! the summary is the whole lab's whichever share is printed.

use std::collections::BTreeMap;

use crate::model::{End, LinkKind, Topology};

/// The summary's lines; none for a lab on one machine. `share` is the host whose share
/// the plan is (`--host`), none for the whole lab on this machine.
pub fn summary(t: &Topology, share: Option<&str>) -> Vec<String> {
    if t.hosts.is_empty() {
        return Vec::new();
    }
    let how = if t.nodes.iter().all(|n| n.host_by_hand) {
        "every node by its `host:`"
    } else {
        "by `placement: auto` (balanced, few links between hosts) where a node has no `host:`"
    };
    // (host, host) -> (tunnels, their MTU, the smallest when they differ)
    let mut tunnels: BTreeMap<(usize, usize), (usize, u32)> = BTreeMap::new();
    for l in t.links.iter().filter(|l| l.kind == LinkKind::Vxlan) {
        let (End::Node { node: a, .. }, End::Node { node: b, .. }) = (&l.a, &l.b) else {
            continue;
        };
        let (Some(a), Some(b)) = (t.host_of(*a), t.host_of(*b)) else {
            continue;
        };
        let e = tunnels.entry((a.min(b), a.max(b))).or_insert((0, u32::MAX));
        e.0 += 1;
        e.1 = e.1.min(l.mtu.unwrap_or(u32::MAX));
    }
    let crossing: usize = tunnels.values().map(|(n, _)| n).sum();
    let steps = match share {
        Some(h) => format!("the steps below are host `{h}`'s share"),
        None => "the steps below run the whole lab on this machine, those links as veths with the tunnels' MTU (`--host NAME` gives one host's share)".to_string(),
    };
    let mut out = vec![format!(
        "placement: {} nodes on {} hosts, {how}; {crossing} of {} links between hosts, each a VXLAN on UDP port {}; {steps}",
        t.nodes.len(),
        t.hosts.len(),
        t.links.len(),
        t.vxlan_port
    )];
    for (i, h) in t.hosts.iter().enumerate() {
        let nodes: Vec<&crate::model::Node> = (0..t.nodes.len())
            .filter(|n| t.host_of(*n) == Some(i))
            .map(|n| &t.nodes[n])
            .collect();
        let hand = nodes.iter().filter(|n| n.host_by_hand).count();
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        let to: Vec<String> = tunnels
            .iter()
            .filter(|((a, b), _)| *a == i || *b == i)
            .map(|((a, b), (n, mtu))| {
                let peer = &t.hosts[if *a == i { *b } else { *a }].name;
                format!("{n} to {peer} (MTU {mtu})")
            })
            .collect();
        out.push(format!(
            "  host {} ({}, underlay MTU {}): {} nodes, {hand} by `host:`: {}; tunnels: {}",
            h.name,
            h.address,
            h.mtu,
            nodes.len(),
            short_list(&names),
            if to.is_empty() {
                "none".to_string()
            } else {
                to.join(", ")
            }
        ));
    }
    out
}

/// Names in file order, the middle left out past ten: `r1, r2, r3, ... r99, r100`.
fn short_list(names: &[&str]) -> String {
    match names.len() {
        0 => "none".to_string(),
        n if n <= 10 => names.join(", "),
        n => format!(
            "{}, ... {}",
            names[..3].join(", "),
            names[n - 2..].join(", ")
        ),
    }
}
