//! Nodes with their interfaces, bridges with their ports, and links between ends. An
//! interface's ifindex is fixed here, so apply never has to look one up, and derived from
//! its identity, so inserting an interface renumbers no other (the kernel cannot change
//! the ifindex of an interface that exists).

use std::collections::{HashMap, HashSet};

use super::super::names;
use super::super::resolve::DEFAULT_STOP_TIMEOUT;
use super::specs::Specs;
use super::wires::Wire;
use crate::model::{Bridge, BridgePort, End, Interface, Link, LinkKind, Node, Uplink, Vertex};
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
    number(&mut nodes, &mut bridges);
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
            devices: Vec::new(),
            sysctls: Vec::new(),
            routes: Vec::new(),
            exec: Vec::new(),
            processes: Vec::new(),
            mounts: Vec::new(),
            private: Vec::new(),
            limits: Default::default(),
            limits_span: None,
            attrs: Default::default(),
            attr_spans: Default::default(),
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
            host: None,
            host_by_hand: false,
        })
        .collect();
    nodes
}

/// Bridges in declaration order, and where each of `raw.bridges` landed.
fn bridges_of(
    raw: &RawTopology,
    bridge_names: &HashMap<String, usize>,
) -> (Vec<Bridge>, HashMap<usize, usize>) {
    let bridges: Vec<Bridge> = raw
        .bridges
        .iter()
        .enumerate()
        .filter(|(i, (name, _))| bridge_names.get(&name.value) == Some(i))
        .map(|(_, (name, spec))| Bridge {
            name: name.value.clone(),
            ifindex: 0,
            mac: [0; 6],
            mtu: spec.mtu.as_ref().map(|m| m.value),
            subnets: Vec::new(),
            ports: Vec::new(),
            hosts: Vec::new(),
            uplinks: Vec::new(),
            stp: spec.stp.as_ref().is_some_and(|s| s.value),
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
    (bridges, bridge_pos)
}

/// Interfaces on nodes, ports on bridges (see `port_name`), and the links between their
/// ends; ifindexes come later, from `number`.
fn links_of(
    nodes: &mut [Node],
    bridges: &mut [Bridge],
    bridge_pos: &HashMap<usize, usize>,
    wires: &[Wire],
) -> Vec<Link> {
    let mut port_names: HashSet<String> = bridges.iter().map(|b| b.name.clone()).collect();
    let mut links: Vec<Link> = Vec::with_capacity(wires.len());
    for w in wires {
        let li = links.len();
        let mtu = w.raw.mtu.as_ref().map(|m| m.value);
        if let [Vertex::Bridge(a), Vertex::Bridge(b)] = w.ends.each_ref().map(|e| e.vertex) {
            links.push(uplink(
                bridges,
                bridge_pos,
                [a, b],
                li,
                mtu,
                &mut port_names,
            ));
            continue;
        }
        let mut ends: Vec<End> = Vec::new();
        for e in &w.ends {
            if let Vertex::Node(n) = e.vertex {
                let node = &mut nodes[n];
                node.interfaces.push(Interface {
                    name: e.iface.as_deref().unwrap_or_default().to_string(),
                    ifindex: 0,
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
                let name = port_name(
                    &nodes[node].name,
                    &nodes[node].interfaces[iface].name,
                    &mut port_names,
                );
                let bridge = &mut bridges[b];
                if mtu.is_none() {
                    nodes[node].interfaces[iface].mtu = bridge.mtu;
                }
                bridge.ports.push(BridgePort {
                    name,
                    ifindex: 0,
                    mac: [0; 6],
                    node,
                    iface,
                    link: li,
                });
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
            kind: LinkKind::Veth,
            mtu,
            subnets: Vec::new(),
        });
    }

    links
}

/// A link joining two bridges: a port on each, named as a member's port is, with the
/// other bridge in the place of the interface (`sw1.sw2` is `sw1`'s port to `sw2`). Its
/// MTU is the link's, else the smaller of the bridges' (a bridge without one is at the
/// kernel's default, so the join is too).
fn uplink(
    bridges: &mut [Bridge],
    bridge_pos: &HashMap<usize, usize>,
    raw: [usize; 2],
    li: usize,
    mtu: Option<u32>,
    port_names: &mut HashSet<String>,
) -> Link {
    let [a, b] = raw.map(|r| bridge_pos[&r]);
    let mtu = mtu.or_else(|| Some(bridges[a].mtu?.min(bridges[b].mtu?)));
    let mut ends = [a, b].map(|x| End::Uplink {
        bridge: x,
        uplink: 0,
    });
    for (k, (own, peer)) in [(a, b), (b, a)].into_iter().enumerate() {
        let name = port_name(&bridges[own].name, &bridges[peer].name, port_names);
        let br = &mut bridges[own];
        br.uplinks.push(Uplink {
            name,
            ifindex: 0,
            mac: [0; 6],
            peer,
            link: li,
            mtu,
            impair: None,
        });
        ends[k] = End::Uplink {
            bridge: own,
            uplink: br.uplinks.len() - 1,
        };
    }
    Link {
        a: ends[0],
        b: ends[1],
        kind: LinkKind::Veth,
        mtu,
        subnets: Vec::new(),
    }
}

/// The fabric-side name of a bridge member's port: `<node>.<iface>` when that fits in
/// IFNAMSIZ, else `_p` and 13 hex digits of the member's hash (15 bytes); either way a
/// function of the member, not of its position. A name already taken (a bridge, or
/// another port) moves the member declared later on: to the hashed form, then to the
/// next salt.
fn port_name(node: &str, iface: &str, taken: &mut HashSet<String>) -> String {
    let readable = format!("{node}.{iface}");
    if readable.len() <= names::IFNAMSIZ_MAX && taken.insert(readable.clone()) {
        return readable;
    }
    for salt in 0u32.. {
        let h = names::identity_hash(&["port", node, iface, &salt.to_string()]);
        let name = format!("_p{:013x}", h >> 12);
        if taken.insert(name.clone()) {
            return name;
        }
    }
    unreachable!("a 52-bit name space outlasts any lab")
}

/// Ifindexes other than `lo`'s 1 fall in `IFINDEX_FIRST..=IFINDEX_LAST`: far above the
/// small numbers the kernel gives interfaces it creates in every new namespace (`sit0`,
/// `gre0`, ... when their modules are loaded), and far below `i32::MAX`.
const IFINDEX_FIRST: u32 = 1 << 8;
const IFINDEX_LAST: u32 = 1 << 24;

/// Every interface's ifindex: in a node's namespace, from the hash of (node, interface);
/// in the fabric, bridges then ports (and uplinks) in link order, from the hash of their names. Within
/// a namespace an ifindex already taken moves the interface declared later to the next
/// free one (wrapping round).
fn number(nodes: &mut [Node], bridges: &mut [Bridge]) {
    for n in nodes.iter_mut() {
        let mut taken = HashSet::new();
        for i in n.interfaces.iter_mut() {
            i.ifindex = ifindex(&["ifindex", &n.name, &i.name], &mut taken);
        }
    }
    let mut taken = HashSet::new();
    for b in bridges.iter_mut() {
        b.ifindex = ifindex(&["ifindex", "", &b.name], &mut taken);
    }
    // (link, bridge, an uplink?, index): ports and uplinks in link order.
    let mut ports: Vec<(usize, usize, bool, usize)> = bridges
        .iter()
        .enumerate()
        .flat_map(|(b, br)| {
            let ports = br.ports.iter().enumerate();
            let ups = br.uplinks.iter().enumerate();
            ports
                .map(move |(p, x)| (x.link, b, false, p))
                .chain(ups.map(move |(u, x)| (x.link, b, true, u)))
        })
        .collect();
    ports.sort_unstable();
    for (_, b, up, p) in ports {
        let br = &mut bridges[b];
        match up {
            false => {
                let x = &mut br.ports[p];
                x.ifindex = ifindex(&["ifindex", "", &x.name], &mut taken);
            }
            true => {
                let x = &mut br.uplinks[p];
                x.ifindex = ifindex(&["ifindex", "", &x.name], &mut taken);
            }
        }
    }
}

/// One ifindex: the home of `id` in the range, or the next one free in `taken`.
pub(super) fn ifindex(id: &[&str], taken: &mut HashSet<u32>) -> u32 {
    let len = IFINDEX_LAST - IFINDEX_FIRST + 1;
    let home = names::home(names::identity_hash(id), u128::from(len), u128::from(len));
    let mut off = u32::try_from(home).expect("below the range's length");
    loop {
        let ix = IFINDEX_FIRST + off;
        if taken.insert(ix) {
            return ix;
        }
        off = (off + 1) % len;
    }
}
