//! A host's share of a multi-host lab: which nodes are local, and the VNI of every link
//! between hosts. Pure, like the rest of the plan: what the host already runs (other labs'
//! VNIs) comes in as a value.
//!
//! A VNI is a hash of the lab and the link's two ends, so both hosts compute the same one
//! without talking, and adding a link moves no other link's VNI. The kernel allows a VNI
//! once per host and UDP port, whatever the remote (a second device fails with "A VXLAN
//! device with the specified VNI already exists", even after the first was moved into
//! another namespace), so a VNI already taken, by an earlier link of the lab in canonical
//! order or by another lab on this host, moves on to the next free one.

use std::collections::BTreeSet;

use crate::model::{End, LinkKind, Topology};

/// The lowest VNI nslab hands out: the small ones are what people type by hand.
pub const VNI_MIN: u32 = 4096;
/// The highest VNI (24 bits).
pub const VNI_MAX: u32 = (1 << 24) - 1;

/// What the plan of one host needs beyond the topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// This host, by index into `Topology::hosts`.
    pub host: usize,
    /// Per link: its VNI if it crosses hosts.
    pub vnis: Vec<Option<u32>>,
    /// Per bridge: its VNI if it spans hosts.
    pub bridge_vnis: Vec<Option<u32>>,
}

impl Share {
    /// The share of host `name`, with the VNIs other labs use on this host and port.
    pub fn of(t: &Topology, name: &str, taken: &BTreeSet<u32>) -> Option<Share> {
        let host = t.hosts.iter().position(|h| h.name == name)?;
        let (vnis, bridge_vnis) = allocate(t, taken);
        Some(Share {
            host,
            vnis,
            bridge_vnis,
        })
    }

    /// Whether node `i` runs on this host.
    pub fn is_local(&self, t: &Topology, i: usize) -> bool {
        t.host_of(i) == Some(self.host)
    }
}

/// The VNI of every cross-host link: its hash, probed upwards past `taken` and the VNIs
/// of links earlier in canonical order (by their ends' names, not their place in the file).
pub fn vnis(t: &Topology, taken: &BTreeSet<u32>) -> Vec<Option<u32>> {
    allocate(t, taken).0
}

/// The VNIs of cross-host links and of bridges that span hosts (keyed `bridge <name>`),
/// in one canonical order.
fn allocate(t: &Topology, taken: &BTreeSet<u32>) -> (Vec<Option<u32>>, Vec<Option<u32>>) {
    let links = t
        .links
        .iter()
        .enumerate()
        .filter(|(_, l)| l.kind == LinkKind::Vxlan)
        .map(|(i, l)| (link_key(t, l.a, l.b), Ok(i)));
    let bridges = t
        .bridges
        .iter()
        .enumerate()
        .filter(|(_, b)| !b.hosts.is_empty())
        .map(|(i, b)| (format!("bridge {}", b.name), Err(i)));
    let mut keyed: Vec<(String, Result<usize, usize>)> = links.chain(bridges).collect();
    keyed.sort();
    let mut used = taken.clone();
    let mut out = (vec![None; t.links.len()], vec![None; t.bridges.len()]);
    for (key, i) in keyed {
        let mut vni = hashed(&t.lab, &key);
        while used.contains(&vni) {
            vni = if vni == VNI_MAX { VNI_MIN } else { vni + 1 };
        }
        used.insert(vni);
        match i {
            Ok(l) => out.0[l] = Some(vni),
            Err(b) => out.1[b] = Some(vni),
        }
    }
    out
}

/// `node:iface node:iface`, the two ends sorted.
fn link_key(t: &Topology, a: End, b: End) -> String {
    let end = |e: End| match e {
        End::Node { node, iface } => {
            let n = &t.nodes[node];
            format!("{}:{}", n.name, n.interfaces[iface].name)
        }
        End::Bridge { bridge, .. } | End::Uplink { bridge, .. } => t.bridges[bridge].name.clone(),
    };
    let mut ends = [end(a), end(b)];
    ends.sort();
    format!("{} {}", ends[0], ends[1])
}

/// FNV-1a over the lab and the link key, folded into `VNI_MIN..=VNI_MAX`. Written out
/// rather than `std::hash`, whose output may change between Rust releases: two hosts
/// built by different compilers must agree.
fn hashed(lab: &str, key: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in lab.bytes().chain([0]).chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    VNI_MIN + (h % u64::from(VNI_MAX - VNI_MIN + 1)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fixed_and_in_range() {
        // Pinned: every host, whatever compiler built it, must compute this value.
        assert_eq!(hashed("lab", "r1:eth1 r2:eth1"), 11_012_395);
        assert_ne!(hashed("lab2", "r1:eth1 r2:eth1"), 11_012_395);
        for key in ["a:eth0 b:eth0", "x:e y:e", ""] {
            assert!((VNI_MIN..=VNI_MAX).contains(&hashed("l", key)));
        }
    }
}
