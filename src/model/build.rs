//! From raw specs to the validated [`Topology`]: names, merging, interfaces, MACs, IPAM,
//! routes, processes and checks, in that order. Every stage records its problems and the
//! build goes on, so one run reports everything that is wrong.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use petgraph::graph::UnGraph;

use super::ipam::{self, Member, Pools, Reserved, Segment};
use super::names::{self, check_ifname, check_lab_name, check_node_name};
use super::resolve::{self, DEFAULT_STOP_TIMEOUT, Names};
use super::routes::{self, Resolver};
use super::{deps, merge};
use crate::diag::{Sink, Span, did_you_mean};
use crate::model::{Bridge, BridgePort, End, Interface, Link, Node, Topology, Vertex};
use crate::spec::raw::*;

/// A link whose endpoints resolved, before interfaces exist.
struct Wire<'r> {
    raw: &'r RawLink,
    ends: [WireEnd<'r>; 2],
}

struct WireEnd<'r> {
    raw: &'r RawEndpoint,
    vertex: Vertex,
    /// Interface name on a node end, explicit or assigned.
    iface: Option<Cow<'r, str>>,
}

/// Builds the topology, or `None` when the raw spec had errors (already in `sink`).
pub fn build(sink: &mut Sink, raw: &RawTopology, base_dir: &Path) -> Option<Topology> {
    let lab = match &raw.name {
        Some(n) => {
            if let Err(msg) = check_lab_name(&n.value) {
                sink.error(Some(n.span), msg)
                    .hint("lab names are lowercase letters, digits and `-`, at most 12 characters, like `ospf-ring`");
            }
            n.value.clone()
        }
        None => String::new(),
    };

    // Kinds, then nodes merged over defaults and their kind.
    let mut kinds: HashMap<&str, &RawNodeSpec> = HashMap::new();
    for (name, spec) in &raw.kinds {
        kinds.entry(name.value.as_str()).or_insert(spec);
    }
    let mut node_names: HashMap<String, usize> = HashMap::new();
    let mut specs: Vec<(Sp<String>, RawNodeSpec)> = Vec::new();
    for (name, spec) in &raw.nodes {
        if node_names.contains_key(&name.value) {
            continue; // reported as a duplicate key by the YAML layer
        }
        if let Err(msg) = check_node_name(&name.value) {
            sink.error(Some(name.span), format!("invalid node name: {msg}"))
                .hint("node names are letters, digits, `_`, `-` and `.`, like `r1` or `leaf-2`");
        }
        let kind_ref = spec.kind.as_ref().or(raw.defaults.kind.as_ref());
        let base = match kind_ref {
            Some(k) => match kinds.get(k.value.as_str()) {
                Some(kspec) => merge::merge(&raw.defaults, kspec),
                None => {
                    let d = sink.error(
                        Some(k.span),
                        format!("node `{}` has unknown kind `{}`", name.value, k.value),
                    );
                    match did_you_mean(&k.value, kinds.keys().copied()) {
                        Some(s) => d.hint(format!("did you mean `{s}`?")),
                        None if kinds.is_empty() => d.hint("declare it under `kinds:`"),
                        None => {
                            let mut known: Vec<&str> = kinds.keys().copied().collect();
                            known.sort();
                            d.hint(format!("known kinds: {}", known.join(", ")))
                        }
                    };
                    raw.defaults.clone()
                }
            },
            None => raw.defaults.clone(),
        };
        node_names.insert(name.value.clone(), specs.len());
        specs.push((name.clone(), merge::merge(&base, spec)));
    }
    if raw.nodes.is_empty() && raw.name.is_some() {
        sink.error(
            raw.name.as_ref().map(|n| n.span),
            "the topology has no nodes",
        )
        .hint("add at least one node under `nodes:`");
    }

    // Bridges share the vertex namespace with nodes and are interfaces in the fabric.
    let mut bridge_names: HashMap<String, usize> = HashMap::new();
    for (i, (name, _)) in raw.bridges.iter().enumerate() {
        if bridge_names.contains_key(&name.value) {
            continue;
        }
        if let Err(msg) = check_node_name(&name.value).and_then(|_| check_ifname(&name.value)) {
            sink.error(Some(name.span), format!("invalid bridge name: {msg}"));
        }
        if let Some(&n) = node_names.get(&name.value) {
            sink.error(
                Some(name.span),
                format!("`{}` is both a node and a bridge", name.value),
            )
            .note(specs[n].0.span, "the node")
            .hint("give the bridge its own name, like `lan1`");
        }
        bridge_names.insert(name.value.clone(), i);
    }

    // Links: resolve endpoints and interface names.
    let mut wires: Vec<Wire> = Vec::with_capacity(raw.links.len());
    // Explicit interface names per node, borrowed from the spec.
    let mut used_if: Vec<HashMap<&str, Span>> = vec![HashMap::new(); specs.len()];
    for l in &raw.links {
        let mut ends = Vec::new();
        for ep in &l.endpoints {
            let vertex = if let Some(&n) = node_names.get(&ep.name.value) {
                Vertex::Node(n)
            } else if let Some(&b) = bridge_names.get(&ep.name.value) {
                Vertex::Bridge(b)
            } else {
                let d = sink.error(
                    Some(ep.name.span),
                    format!("link endpoint `{}` is not a node or bridge", ep.name.value),
                );
                let cands = node_names
                    .keys()
                    .chain(bridge_names.keys())
                    .map(String::as_str);
                match did_you_mean(&ep.name.value, cands) {
                    Some(s) => d.hint(format!("did you mean `{s}`?")),
                    None => d.hint("declare it under `nodes:` or `bridges:`"),
                };
                continue;
            };
            if let Vertex::Bridge(_) = vertex {
                if let Some(i) = &ep.iface {
                    sink.error(
                        Some(i.span),
                        format!("bridge `{}` takes no interface name", ep.name.value),
                    )
                    .hint(format!(
                        "write just `{}`; nslab names the bridge port",
                        ep.name.value
                    ));
                }
                if ep.addresses.as_ref().is_some_and(|a| !a.is_empty()) || ep.mac.is_some() {
                    sink.error(
                        Some(ep.span),
                        format!(
                            "the bridge end `{}` of a link has no addresses or MAC",
                            ep.name.value
                        ),
                    )
                    .hint("put addresses and MACs on the node end");
                }
            }
            if let (Vertex::Node(n), Some(i)) = (vertex, &ep.iface) {
                match check_ifname(&i.value) {
                    Err(msg) => {
                        sink.error(Some(i.span), format!("invalid interface name on node `{}`: {msg}", ep.name.value))
                            .hint("interface names are at most 15 bytes of letters, digits, `_`, `-` and `.`, like `eth1`");
                    }
                    Ok(()) => {
                        if let Some(first) = used_if[n].insert(i.value.as_str(), i.span) {
                            sink.error(
                                Some(i.span),
                                format!(
                                    "interface `{}:{}` is used by two links",
                                    ep.name.value, i.value
                                ),
                            )
                            .note(first, "first used here")
                            .hint("each interface joins one link; pick another name, like `eth2`");
                        }
                    }
                }
            }
            ends.push(WireEnd {
                raw: ep,
                vertex,
                iface: ep.iface.as_ref().map(|i| Cow::Borrowed(i.value.as_str())),
            });
        }
        if ends.len() != 2 {
            continue;
        }
        if matches!(
            (ends[0].vertex, ends[1].vertex),
            (Vertex::Bridge(_), Vertex::Bridge(_))
        ) {
            sink.error(Some(l.span), "a link joins two bridges")
                .hint("join segments through a node, or use one bridge");
            continue;
        }
        let [a, b]: [WireEnd; 2] = ends.try_into().ok()?;
        wires.push(Wire {
            raw: l,
            ends: [a, b],
        });
    }
    // Interfaces left unnamed get the lowest free `ethN` of their node, in link order.
    let mut next_eth: HashMap<usize, usize> = HashMap::new();
    for w in &mut wires {
        for e in &mut w.ends {
            if let (Vertex::Node(n), None) = (e.vertex, &e.iface) {
                let k = next_eth.entry(n).or_insert(0);
                loop {
                    let name = format!("eth{k}");
                    *k += 1;
                    // Auto names count up, so they only need to dodge explicit ones.
                    if !used_if[n].contains_key(name.as_str()) {
                        e.iface = Some(Cow::Owned(name));
                        break;
                    }
                }
            }
        }
    }

    // Nodes with their interfaces (ifindex 1 is lo; links follow in declaration order).
    let mut if_count = vec![0usize; specs.len()];
    for e in wires.iter().flat_map(|w| &w.ends) {
        if let Vertex::Node(n) = e.vertex {
            if_count[n] += 1;
        }
    }
    let mut nodes: Vec<Node> = specs
        .iter()
        .zip(if_count)
        .map(|((name, spec), if_count)| Node {
            name: name.value.clone(),
            netns: names::node_netns(&lab, &name.value),
            kind: spec.kind.as_ref().map(|k| k.value.clone()),
            labels: spec
                .labels
                .iter()
                .map(|(k, v)| (k.value.clone(), v.value.clone()))
                .collect(),
            loopback: Vec::new(),
            interfaces: Vec::with_capacity(if_count),
            sysctls: Vec::new(),
            routes: Vec::new(),
            exec: Vec::new(),
            processes: Vec::new(),
            mounts: Vec::new(),
            private: Vec::new(),
            limits: Default::default(),
            isolation: Vec::new(),
            depends_on: Vec::new(),
            stop_timeout: spec
                .stop_timeout
                .as_ref()
                .map(|t| t.value)
                .unwrap_or(DEFAULT_STOP_TIMEOUT),
            env: spec
                .env
                .iter()
                .map(|(k, v)| (k.value.clone(), v.value.clone()))
                .collect(),
        })
        .collect();
    let mut bridges: Vec<Bridge> = raw
        .bridges
        .iter()
        .enumerate()
        .filter(|(i, (name, _))| bridge_names.get(&name.value) == Some(i))
        .map(|(i, (name, spec))| Bridge {
            name: name.value.clone(),
            ifindex: 2 + i as u32,
            mac: [0; 6],
            mtu: spec.mtu.as_ref().map(|m| m.value),
            subnets: Vec::new(),
            ports: Vec::new(),
        })
        .collect();
    // Bridge indices above index `raw.bridges`; remap to the deduplicated list.
    let bridge_pos: HashMap<usize, usize> = raw
        .bridges
        .iter()
        .enumerate()
        .filter(|(i, (name, _))| bridge_names.get(&name.value) == Some(i))
        .enumerate()
        .map(|(pos, (i, _))| (i, pos))
        .collect();
    for (pos, b) in bridges.iter_mut().enumerate() {
        b.ifindex = 2 + pos as u32;
    }
    let mut port_names: HashSet<String> = bridges.iter().map(|b| b.name.clone()).collect();
    let mut next_port_ifindex = 2 + bridges.len() as u32;
    let mut links: Vec<Link> = Vec::with_capacity(wires.len());
    for w in &wires {
        let li = links.len();
        let mtu = w.raw.mtu.as_ref().map(|m| m.value);
        let mut ends: Vec<End> = Vec::new();
        for e in &w.ends {
            if let Vertex::Node(n) = e.vertex {
                let node = &mut nodes[n];
                node.interfaces.push(Interface {
                    name: e.iface.as_deref().unwrap_or_default().to_string(),
                    ifindex: 2 + node.interfaces.len() as u32,
                    mac: e.raw.mac.as_ref().map(|m| m.value).unwrap_or([0; 6]),
                    mtu,
                    addresses: Vec::new(),
                    link: li,
                    peer: End::Node { node: 0, iface: 0 },
                    impair: e.raw.impair.clone().or_else(|| w.raw.impair.clone()),
                });
                ends.push(End::Node {
                    node: n,
                    iface: node.interfaces.len() - 1,
                });
            } else {
                ends.push(End::Node {
                    node: usize::MAX,
                    iface: 0,
                });
            }
        }
        // Bridge ends become ports in the fabric namespace.
        for (k, e) in w.ends.iter().enumerate() {
            if let Vertex::Bridge(b) = e.vertex {
                let b = bridge_pos[&b];
                let End::Node { node, iface } = ends[1 - k] else {
                    unreachable!("the other end is a node")
                };
                let node_name = &nodes[node].name;
                let ifname = &nodes[node].interfaces[iface].name;
                let candidate = format!("{node_name}.{ifname}");
                let name =
                    if candidate.len() <= names::IFNAMSIZ_MAX && !port_names.contains(&candidate) {
                        candidate
                    } else {
                        format!("_p{next_port_ifindex}")
                    };
                port_names.insert(name.clone());
                let bridge = &mut bridges[b];
                if mtu.is_none() {
                    nodes[node].interfaces[iface].mtu = bridge.mtu;
                }
                bridge.ports.push(BridgePort {
                    name,
                    ifindex: next_port_ifindex,
                    mac: [0; 6],
                    node,
                    iface,
                    link: li,
                });
                next_port_ifindex += 1;
                ends[k] = End::Bridge {
                    bridge: b,
                    port: bridge.ports.len() - 1,
                };
            }
        }
        // Now each node interface knows its peer.
        for k in 0..2 {
            if let End::Node { node, iface } = ends[k] {
                nodes[node].interfaces[iface].peer = ends[1 - k];
            }
        }
        links.push(Link {
            a: ends[0],
            b: ends[1],
            mtu,
            subnets: Vec::new(),
        });
    }

    assign_macs(sink, &lab, &mut nodes, &mut bridges, &wires);
    assign_addresses(
        sink,
        raw,
        &specs,
        &mut nodes,
        &mut bridges,
        &mut links,
        &wires,
        &bridge_pos,
    );

    // Routes: written ones first; `routing: static` fills in the rest.
    {
        let resolver = Resolver {
            nodes: &nodes,
            bridges: &bridges,
            names: &node_names,
        };
        let written: Vec<_> = specs
            .iter()
            .enumerate()
            .map(|(i, (_, spec))| resolver.routes(sink, i, &spec.routes))
            .collect();
        for (node, routes) in nodes.iter_mut().zip(written) {
            node.routes = routes;
        }
    }
    let static_routing = raw
        .routing
        .as_ref()
        .is_some_and(|r| r.value == RoutingMode::Static);
    if static_routing {
        let computed = routes::static_routes(&nodes, &bridges);
        for (node, extra) in nodes.iter_mut().zip(computed) {
            let transit = node.interfaces.len() >= 2;
            for r in extra {
                if !node.routes.iter().any(|w| w.dst == r.dst) {
                    node.routes.push(r);
                }
            }
            if transit {
                for (k, v) in [
                    ("net.ipv4.ip_forward", "1"),
                    ("net.ipv6.conf.all.forwarding", "1"),
                ] {
                    node.sysctls.push(crate::model::Sysctl {
                        key: k.into(),
                        value: v.into(),
                        iface: None,
                    });
                }
            }
        }
    }

    // Sysctls, commands, mounts and limits.
    for (i, (name, spec)) in specs.iter().enumerate() {
        let written = resolve::sysctls(sink, &nodes[i], &spec.sysctls);
        let node = &mut nodes[i];
        // Addresses must be usable at once: no duplicate address detection, which would
        // hold new link-local addresses tentative for about two seconds. Set first, before
        // any interface exists, and overridable like any other key.
        for (k, v) in resolve::IMPLICIT_SYSCTLS.iter().rev() {
            if !node.sysctls.iter().any(|s| s.key == *k) {
                node.sysctls.insert(
                    0,
                    crate::model::Sysctl {
                        key: k.to_string(),
                        value: v.to_string(),
                        iface: None,
                    },
                );
            }
        }
        for s in written {
            node.sysctls.retain(|o| o.key != s.key);
            node.sysctls.push(s);
        }
        node.exec = resolve::exec(&spec.exec);
        node.mounts = resolve::mounts(sink, &lab, &name.value, base_dir, &spec.mounts);
        node.private = resolve::private(sink, &spec.private);
        node.limits = resolve::limits(&spec.limits);
        node.isolation = resolve::isolation(sink, &spec.isolation);
    }

    // Processes: the node's own, then daemonsets on the nodes their selector matches.
    let labels: Vec<BTreeMap<String, String>> = nodes.iter().map(|n| n.labels.clone()).collect();
    let mut ds_matches: Vec<Vec<usize>> = Vec::new();
    for ds in &raw.daemonsets {
        let matched = resolve::select(&labels, &ds.selector);
        if matched.is_empty() {
            let sel: Vec<String> = ds
                .selector
                .iter()
                .map(|(k, v)| format!("{}={}", k.value, v.value))
                .collect();
            sink.warning(
                Some(ds.span),
                format!(
                    "daemonset `{}` matches no node (selector {})",
                    ds.process.name.value,
                    sel.join(", ")
                ),
            )
            .hint("check the selector against the nodes' `labels:`");
        }
        ds_matches.push(matched);
    }
    let mut proc_spans: HashMap<(usize, usize), Vec<Sp<String>>> = HashMap::new();
    let mut dep_spans: HashMap<(usize, Option<usize>), Span> = HashMap::new();
    for (i, (_, spec)) in specs.iter().enumerate() {
        let mut all: Vec<(&RawProcess, Option<&str>)> =
            spec.processes.iter().map(|p| (p, None)).collect();
        for (ds, matched) in raw.daemonsets.iter().zip(&ds_matches) {
            if matched.contains(&i) {
                all.push((&ds.process, Some(ds.process.name.value.as_str())));
            }
        }
        let refs: Vec<&RawProcess> = all.iter().map(|(p, _)| *p).collect();
        resolve::check_process_names(sink, &nodes[i].name, &refs);
        let stop = nodes[i].stop_timeout;
        for (k, (p, ds)) in all.iter().enumerate() {
            nodes[i].processes.push(resolve::process(p, *ds, stop));
            proc_spans.insert((i, k), p.depends_on.clone());
            if let Some(d) = p.depends_on.first() {
                dep_spans.insert((i, Some(k)), d.span);
            }
        }
        if let Some(d) = spec.depends_on.first() {
            dep_spans.insert((i, None), d.span);
        }
    }
    let daemonsets = raw
        .daemonsets
        .iter()
        .zip(ds_matches)
        .map(|(ds, m)| resolve::daemonset_summary(ds, m))
        .collect();

    // depends_on, then cycles in it.
    let mut node_deps = Vec::new();
    let mut proc_deps: Vec<((usize, usize), Vec<crate::model::Dep>)> = Vec::new();
    {
        let lookup = Names {
            nodes: &node_names,
            all: &nodes,
        };
        for (_, spec) in &specs {
            let deps: Vec<_> = spec
                .depends_on
                .iter()
                .filter_map(|d| lookup.dep(sink, d, None))
                .collect();
            node_deps.push(deps);
        }
        let mut keys: Vec<_> = proc_spans.keys().copied().collect();
        keys.sort();
        for key in keys {
            let deps = proc_spans[&key]
                .iter()
                .filter_map(|d| lookup.dep(sink, d, Some(key.0)))
                .collect();
            proc_deps.push((key, deps));
        }
    }
    for (i, deps) in node_deps.into_iter().enumerate() {
        nodes[i].depends_on = deps;
    }
    for ((n, p), deps) in proc_deps {
        nodes[n].processes[p].depends_on = deps;
    }
    deps::check_cycles(sink, &nodes, &dep_spans);

    // Checks.
    let mut checks = Vec::new();
    {
        let lookup = Names {
            nodes: &node_names,
            all: &nodes,
        };
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, c) in raw.tests.iter().enumerate() {
            if let Some(mut check) = lookup.check(sink, c, i) {
                let n = seen.entry(check.name.clone()).or_insert(0);
                *n += 1;
                if *n > 1 {
                    check.name = format!("{} #{n}", check.name);
                }
                checks.push(check);
            }
        }
    }

    // The graph: nodes and bridges as vertices, links as edges.
    let mut graph: UnGraph<Vertex, usize> =
        UnGraph::with_capacity(nodes.len() + bridges.len(), links.len());
    let node_vertex: Vec<_> = (0..nodes.len())
        .map(|i| graph.add_node(Vertex::Node(i)))
        .collect();
    let bridge_vertex: Vec<_> = (0..bridges.len())
        .map(|i| graph.add_node(Vertex::Bridge(i)))
        .collect();
    for (i, l) in links.iter().enumerate() {
        let v = |e: &End| match e {
            End::Node { node, .. } => node_vertex[*node],
            End::Bridge { bridge, .. } => bridge_vertex[*bridge],
        };
        graph.add_edge(v(&l.a), v(&l.b), i);
    }

    if sink.has_errors() {
        return None;
    }
    Some(Topology {
        lab,
        base_dir: base_dir.to_path_buf(),
        nodes,
        bridges,
        links,
        graph,
        node_vertex,
        bridge_vertex,
        daemonsets,
        checks,
        logs: log_policy(&raw.logs),
    })
}

/// `logs:` with the defaults filled in (the spec layer checked the ranges).
fn log_policy(raw: &crate::spec::raw::RawLogs) -> super::LogPolicy {
    let d = super::LogPolicy::default();
    super::LogPolicy {
        max_bytes: raw.max_size.as_ref().map_or(d.max_bytes, |s| s.value),
        keep: raw
            .keep
            .as_ref()
            .map_or(d.keep, |k| u32::try_from(k.value).unwrap_or(d.keep)),
    }
}

/// Explicit MACs stay; the rest are derived from (lab, owner, interface), skipping any
/// already taken in the lab. Two explicit MACs on one L2 segment are an error.
fn assign_macs(
    sink: &mut Sink,
    lab: &str,
    nodes: &mut [Node],
    bridges: &mut [Bridge],
    wires: &[Wire],
) {
    let mut taken: HashSet<[u8; 6]> = HashSet::new();
    for w in wires {
        let macs: Vec<(&Sp<[u8; 6]>, &str)> = w
            .ends
            .iter()
            .filter_map(|e| e.raw.mac.as_ref().map(|m| (m, e.raw.name.value.as_str())))
            .collect();
        if let [(a, _), (b, _)] = macs.as_slice()
            && a.value == b.value
        {
            sink.error(
                Some(b.span),
                "both ends of a link have the same MAC address",
            )
            .note(a.span, "the other end");
        }
        for (m, _) in macs {
            taken.insert(m.value);
        }
    }
    // Explicit MACs on one bridge must differ too.
    for b in bridges.iter() {
        let mut seen: HashMap<[u8; 6], &str> = HashMap::new();
        for p in &b.ports {
            let iface = &nodes[p.node].interfaces[p.iface];
            if iface.mac != [0; 6]
                && let Some(other) = seen.insert(iface.mac, &nodes[p.node].name)
            {
                sink.error(
                    None,
                    format!(
                        "nodes `{other}` and `{}` have the same MAC address on bridge `{}`",
                        nodes[p.node].name, b.name
                    ),
                );
            }
        }
    }
    let mut derive = |owner: &str, ifname: &str| {
        let mut salt = 0;
        loop {
            let m = names::derive_mac(lab, owner, ifname, salt);
            if taken.insert(m) {
                return m;
            }
            salt += 1;
        }
    };
    for node in nodes.iter_mut() {
        for iface in &mut node.interfaces {
            if iface.mac == [0; 6] {
                iface.mac = derive(&node.name, &iface.name);
            }
        }
    }
    for b in bridges.iter_mut() {
        b.mac = derive("", &b.name);
        for p in &mut b.ports {
            p.mac = derive("", &p.name);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn assign_addresses<'a>(
    sink: &mut Sink,
    raw: &'a RawTopology,
    specs: &[(Sp<String>, RawNodeSpec)],
    nodes: &mut [Node],
    bridges: &mut [Bridge],
    links: &mut [Link],
    wires: &'a [Wire<'a>],
    bridge_pos: &HashMap<usize, usize>,
) {
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
    for (name, spec) in specs {
        if let Some(Sp {
            value: RawLoopback::Addrs(addrs),
            ..
        }) = &spec.loopback
        {
            for a in addrs {
                note(sink, a, format!("the loopback of `{}`", name.value));
                reserved_nets.push(a.value.trunc());
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
                reserved_nets.push(a.value.trunc());
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
    let reserved = Reserved::new(&reserved_nets);
    let mut pools = Pools::new(sink, &raw.addressing);

    for (i, (name, spec)) in specs.iter().enumerate() {
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

    // Segments, one at a time so no per-segment state outlives its allocation:
    // point-to-point links in link order, then bridges in bridge order.
    const NONE: &[Sp<IpNet>] = &[];
    let member = |w: &Wire<'a>, k: usize| Member {
        span: w.ends[k].raw.span,
        explicit: if w.raw.unnumbered {
            Some(NONE)
        } else {
            w.ends[k].raw.addresses.as_deref()
        },
    };
    let node_end = |e: End| match e {
        End::Node { node, iface } => (node, iface),
        End::Bridge { .. } => unreachable!("member ends are node ends"),
    };
    let iface_name = |nodes: &[Node], (n, i): (usize, usize)| {
        format!("{}:{}", nodes[n].name, nodes[n].interfaces[i].name)
    };
    for (li, w) in wires.iter().enumerate() {
        if !w.ends.iter().all(|e| matches!(e.vertex, Vertex::Node(_))) {
            continue;
        }
        let owners = [node_end(links[li].a), node_end(links[li].b)];
        let seg = Segment {
            span: w.raw.span,
            lan: false,
            fixed: [None, None],
            members: vec![member(w, 0), member(w, 1)],
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
            ipam::assign_segment(sink, &mut pools, &reserved, &seg, &namer)
        };
        for ((node, iface), addrs) in owners.iter().zip(a.members) {
            nodes[*node].interfaces[*iface].addresses = addrs;
        }
        links[li].subnets = a.subnets;
    }
    for (raw_i, (_, spec)) in raw.bridges.iter().enumerate() {
        let Some(&b) = bridge_pos.get(&raw_i) else {
            continue;
        };
        let mut members = Vec::new();
        let mut owners = Vec::new();
        for p in &bridges[b].ports {
            let w = &wires[p.link];
            let k = w
                .ends
                .iter()
                .position(|e| matches!(e.vertex, Vertex::Node(_)))
                .expect("one node end");
            members.push(member(w, k));
            owners.push((p.node, p.iface));
        }
        let seg = Segment {
            span: spec.span,
            lan: true,
            fixed: [spec.subnet.as_ref(), spec.subnet6.as_ref()],
            members,
        };
        let a = {
            let ro: &[Node] = nodes;
            let bname = &bridges[b].name;
            let namer = |m: Option<usize>| match m {
                Some(m) => format!("`{}`", iface_name(ro, owners[m])),
                None => format!("bridge `{bname}`"),
            };
            ipam::assign_segment(sink, &mut pools, &reserved, &seg, &namer)
        };
        for ((node, iface), addrs) in owners.iter().zip(a.members) {
            nodes[*node].interfaces[*iface].addresses = addrs;
        }
        bridges[b].subnets = a.subnets;
    }
    // Bridge links carry their bridge's subnets.
    for l in links.iter_mut() {
        for e in [l.a, l.b] {
            if let End::Bridge { bridge, .. } = e {
                l.subnets = bridges[bridge].subnets.clone();
            }
        }
    }
}
