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
        for u in &mut b.uplinks {
            u.mac = derive("", &u.name);
        }
    }
}
