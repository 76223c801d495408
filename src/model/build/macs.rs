//! MAC addresses: explicit ones stay, the rest are derived from (lab, owner, interface).

use std::collections::{HashMap, HashSet};

use super::super::names;
use super::wires::Wire;
use crate::diag::Sink;
use crate::model::{Bridge, Node};
use crate::spec::raw::*;

/// Explicit MACs stay; the rest are derived from (lab, owner, interface), skipping any
/// already taken in the lab. Two explicit MACs on one L2 segment are an error.
pub(super) fn assign(
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
    let mut derive = |owner: &str, ifname: &str| free_mac(lab, owner, ifname, &mut taken);
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
        for u in &mut b.uplinks {
            u.mac = derive("", &u.name);
        }
    }
}

/// The MAC derived from (lab, owner, interface) with the first salt whose MAC is not in
/// `taken`, and now taken. Every derived MAC of the lab comes from here.
pub(super) fn free_mac(
    lab: &str,
    owner: &str,
    ifname: &str,
    taken: &mut HashSet<[u8; 6]>,
) -> [u8; 6] {
    (0..)
        .map(|salt| names::derive_mac(lab, owner, ifname, salt))
        .find(|m| taken.insert(*m))
        .expect("some salt gives a free MAC")
}

/// The MACs on each node, by node index. A node's own interfaces (dummies, vlans,
/// macvlans) and its host and management links are numbered after its link ends, in
/// separate stages: one set for all of them keeps any two interfaces of a node apart,
/// an explicit MAC included.
pub(super) struct NodeMacs(Vec<HashSet<[u8; 6]>>);

impl NodeMacs {
    /// Holding each node's link ends, as [`assign`] left them.
    pub(super) fn new(nodes: &[Node]) -> Self {
        NodeMacs(
            nodes
                .iter()
                .map(|n| n.interfaces.iter().map(|i| i.mac).collect())
                .collect(),
        )
    }

    /// Takes a MAC written in the file.
    pub(super) fn take(&mut self, node: usize, mac: [u8; 6]) {
        self.0[node].insert(mac);
    }

    /// Derives the MAC of node `node` (named `owner`)'s interface `ifname`, clear of the
    /// node's others.
    pub(super) fn derive(&mut self, lab: &str, node: usize, owner: &str, ifname: &str) -> [u8; 6] {
        free_mac(lab, owner, ifname, &mut self.0[node])
    }
}

#[cfg(test)]
mod tests {
    use crate::model::names::derive_mac;

    /// A node's devices and its host and management links derive from one set: dummies
    /// written with the MACs that the host link's and the management link's node ends
    /// would derive first push those ends to the next salt. With a set of their own, the
    /// node would hold two interfaces of one MAC.
    #[test]
    fn a_host_or_mgmt_link_never_takes_a_mac_a_device_of_its_node_holds() {
        let first = |iface: &str| derive_mac("mc", "r1", iface, 0);
        let hex = |m: [u8; 6]| m.map(|b| format!("{b:02x}")).join(":");
        let yaml = format!(
            "name: mc\nmgmt: {{ subnet: 172.31.99.0/24 }}\nnodes:\n  r1:\n    interfaces:\n      d1: {{ kind: dummy, mac: \"{}\" }}\n      d2: {{ kind: dummy, mac: \"{}\" }}\n  r2: {{}}\nlinks:\n  - [r1:eth1, r2:eth1]\n  - [r1:eth9, \"host:mc-h\"]\n",
            hex(first("eth9")),
            hex(first("mgmt0")),
        );
        let t = crate::compile_str(&yaml, "t.yaml", std::path::Path::new("/"))
            .unwrap_or_else(|e| panic!("{e}"))
            .topology;
        let r1 = &t.nodes[0];
        let ends: Vec<([u8; 6], &str)> = t
            .host_links
            .iter()
            .filter(|h| h.node == 0)
            .map(|h| (h.mac, h.iface.as_str()))
            .collect();
        assert_eq!(
            ends,
            [
                (derive_mac("mc", "r1", "eth9", 1), "eth9"),
                (derive_mac("mc", "r1", "mgmt0", 1), "mgmt0"),
            ]
        );
        let mut macs: Vec<[u8; 6]> = r1.interfaces.iter().map(|i| i.mac).collect();
        macs.extend(r1.devices.iter().map(|d| d.mac));
        macs.extend(ends.iter().map(|(m, _)| *m));
        let all = macs.len();
        assert_eq!(all, 5, "eth1, d1, d2, eth9 and mgmt0");
        macs.sort_unstable();
        macs.dedup();
        assert_eq!(macs.len(), all, "two interfaces of r1 share a MAC");
        // r2 has no device in the way: its management end keeps the first salt.
        let r2 = t
            .host_links
            .iter()
            .find(|h| h.node == 1)
            .expect("r2's mgmt");
        assert_eq!(r2.mac, derive_mac("mc", "r2", "mgmt0", 0));
    }
}
