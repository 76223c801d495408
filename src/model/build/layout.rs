//! Nodes with their interfaces, bridges with their ports, and links between ends. An
//! interface's ifindex is fixed here (1 is `lo`; links follow in declaration order), so
//! apply never has to look one up.

use std::collections::{HashMap, HashSet};

use super::super::names;
use super::super::resolve::DEFAULT_STOP_TIMEOUT;
use super::specs::Specs;
use super::wires::Wire;
use crate::model::{Bridge, BridgePort, End, Interface, Link, Node, Vertex};
use crate::spec::raw::*;

/// The lab's objects before MACs, addresses, routes and processes.
pub(super) struct Layout {
    pub nodes: Vec<Node>,
    pub bridges: Vec<Bridge>,
    pub links: Vec<Link>,
    /// Index in `raw.bridges` -> index in `bridges` (repeated names dropped).
    pub bridge_pos: HashMap<usize, usize>,
}

pub(super) fn layout(
    lab: &str,
    raw: &RawTopology,
    specs: &Specs,
    bridge_names: &HashMap<String, usize>,
    wires: &[Wire],
) -> Layout {
    let mut nodes = nodes_of(lab, specs, wires);
    let (mut bridges, bridge_pos) = bridges_of(raw, bridge_names);
    let links = links_of(&mut nodes, &mut bridges, &bridge_pos, wires);
    Layout {
        nodes,
        bridges,
        links,
        bridge_pos,
    }
}

/// Nodes from their specs, each with room for its interfaces.
fn nodes_of(lab: &str, specs: &Specs, wires: &[Wire]) -> Vec<Node> {
    let specs = &specs.specs;
    let mut if_count = vec![0usize; specs.len()];
    for e in wires.iter().flat_map(|w| &w.ends) {
        if let Vertex::Node(n) = e.vertex {
            if_count[n] += 1;
        }
    }
    let nodes: Vec<Node> = specs
        .iter()
        .zip(if_count)
        .map(|((name, spec), if_count)| Node {
            name: name.value.clone(),
            netns: names::node_netns(lab, &name.value),
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
    nodes
}

/// Bridges in declaration order (ifindex 2 on in the fabric), and where each of
/// `raw.bridges` landed.
fn bridges_of(
    raw: &RawTopology,
    bridge_names: &HashMap<String, usize>,
) -> (Vec<Bridge>, HashMap<usize, usize>) {
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
    (bridges, bridge_pos)
}

/// Interfaces on nodes, ports on bridges (named `<node>.<iface>` when that fits in
/// IFNAMSIZ, else `_p<ifindex>`), and the links between their ends.
fn links_of(
    nodes: &mut [Node],
    bridges: &mut [Bridge],
    bridge_pos: &HashMap<usize, usize>,
    wires: &[Wire],
) -> Vec<Link> {
    let mut port_names: HashSet<String> = bridges.iter().map(|b| b.name.clone()).collect();
    let mut next_port_ifindex = 2 + bridges.len() as u32;
    let mut links: Vec<Link> = Vec::with_capacity(wires.len());
    for w in wires {
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
                    impair: None,
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

    links
}
