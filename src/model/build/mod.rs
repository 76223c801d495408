//! From raw specs to the validated [`Topology`], in stages a reader can take one at a
//! time: names and merged specs (`specs`), links' endpoints (`wires`), nodes, bridges and
//! interfaces (`layout`), MACs (`macs`), addresses (`addresses`), routes and per-node
//! settings (`settings`), processes and dependencies (`processes`), then checks and the
//! graph. Every stage records its problems and the build goes on, so one run reports
//! everything that is wrong.

mod addresses;
mod devices;
mod hostnet;
mod hosts;
mod joins;
mod layout;
mod macs;
mod processes;
mod settings;
mod specs;
mod wires;

use std::collections::HashMap;
use std::path::Path;

use petgraph::graph::{NodeIndex, UnGraph};

use super::resolve::Names;
use crate::diag::Sink;
use crate::model::{Check, End, Topology, Vertex};
use crate::spec::raw::*;
use layout::Layout;

/// Builds the topology, or `None` when the raw spec had errors (already in `sink`).
pub fn build(sink: &mut Sink, raw: &RawTopology, base_dir: &Path) -> Option<Topology> {
    let lab = specs::lab_name(sink, raw);
    specs::shown_names(sink, raw);
    let specs = specs::nodes(sink, raw);
    let bridge_names = specs::bridges(sink, raw, &specs);
    let wires = wires::resolve(sink, raw, &specs, &bridge_names)?;
    let mut l = layout::layout(&lab, raw, &specs, &bridge_names, &wires);
    joins::check(sink, raw, &l, &wires);
    let (hosts, vxlan_port, vxlan_vni) = hosts::place(sink, raw, &specs, &wires, &mut l);
    hosts::unequal_mtus(sink, raw, &l);
    macs::assign(sink, &lab, &mut l.nodes, &mut l.bridges, &wires);
    // Devices, then host and management links, derive their MACs clear of this set.
    let mut node_macs = macs::NodeMacs::new(&l.nodes);
    addresses::assign(sink, raw, &specs, &mut l, &wires);
    devices::build(sink, &lab, raw, &specs, &mut l.nodes, &mut node_macs);
    settings::impairs(sink, &wires, &mut l);
    settings::routes(sink, raw, &specs, &mut l.nodes, &l.bridges);
    settings::node(sink, &lab, base_dir, &specs, &mut l.nodes);
    let daemonsets = processes::resolve(sink, &lab, raw, &specs, &mut l.nodes);
    let checks = checks(sink, &lab, raw, &specs.names, &l, base_dir);
    let (host_links, mgmt) = hostnet::build(sink, &lab, raw, &specs.names, &l, node_macs);
    let (graph, node_vertex, bridge_vertex) = graph(&l);
    if sink.has_errors() {
        return None;
    }
    let Layout {
        nodes,
        bridges,
        links,
        ..
    } = l;
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
        hosts,
        vxlan_port,
        vxlan_vni,
        host_links,
        mgmt,
        own_cgroups: false,
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

/// The `tests:` checks, each named; a repeated name gets ` #2`, ` #3`, ...
fn checks(
    sink: &mut Sink,
    lab: &str,
    raw: &RawTopology,
    node_names: &HashMap<String, usize>,
    l: &Layout,
    base_dir: &Path,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let lookup = Names {
        nodes: node_names,
        all: &l.nodes,
        lab,
        bridges: &l.bridges,
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, c) in raw.tests.iter().enumerate() {
        for mut check in lookup.check(sink, c, i, base_dir) {
            let n = seen.entry(check.name.clone()).or_insert(0);
            *n += 1;
            if *n > 1 {
                check.name = format!("{} #{n}", check.name);
            }
            checks.push(check);
        }
    }
    checks
}

type Graph = (UnGraph<Vertex, usize>, Vec<NodeIndex>, Vec<NodeIndex>);

/// The graph: nodes and bridges as vertices, links as edges.
fn graph(l: &Layout) -> Graph {
    let (nodes, bridges, links) = (&l.nodes, &l.bridges, &l.links);
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
            End::Bridge { bridge, .. } | End::Uplink { bridge, .. } => bridge_vertex[*bridge],
        };
        graph.add_edge(v(&l.a), v(&l.b), i);
    }

    (graph, node_vertex, bridge_vertex)
}
