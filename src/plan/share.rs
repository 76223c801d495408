//! A host's share of a multi-host lab: which nodes are local, and the VNI of every link
//! and bridge between hosts. Pure, like the rest of the plan.
//!
//! The VNIs are a function of the file alone, so every host computes the same ones
//! without talking. Each lab has a block of [`BLOCK`] VNIs: its base is pinned by
//! `vxlan: { vni: N }` or hashed from the lab's name onto one of [`BLOCKS`] aligned
//! blocks. A cross-host link (keyed by its two ends, `node:iface`, sorted) or a bridge
//! spanning hosts (keyed `bridge <name>`) hashes to a slot in the block; two that hash
//! to one slot are resolved in canonical key order over the whole file, the later moving
//! to the next free slot, so every host resolves them the same way. The kernel allows a
//! VNI once per host and UDP port, whatever the remote, so a VNI another lab or tool
//! already holds on a host is an error there (`state::vnis`), never a silent move: the
//! far host would keep the VNI and the link would be dead.

use crate::model::{End, LinkKind, Topology};

/// The lowest VNI a file may pin (`vxlan.vni`).
pub const VNI_MIN: u32 = 1;
/// The highest VNI (24 bits).
pub const VNI_MAX: u32 = (1 << 24) - 1;
/// VNIs per lab: a lab's cross-host links and spanning bridges must fit in it. 16384
/// keeps thousands of tunnels at a low fill (few probes) and leaves 1023 blocks.
pub const BLOCK: u32 = 1 << 14;
/// The aligned blocks a lab's name hashes onto: 1..=1023 (`k * BLOCK`), block 0 (VNIs
/// below 16384, where hand-made tunnels and other tools' defaults live) left out.
pub const BLOCKS: u32 = VNI_MAX / BLOCK;

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

/// A VNI this host would make, with what it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    pub vni: u32,
    /// `link r1:eth1 r2:eth1` or `bridge b1`.
    pub what: String,
}

impl Share {
    /// The share of host `name`.
    pub fn of(t: &Topology, name: &str) -> Option<Share> {
        let host = t.hosts.iter().position(|h| h.name == name)?;
        let (vnis, bridge_vnis) = allocate(t);
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

    /// The VNIs this host makes a VXLAN for: links with an end here, bridges with a
    /// replica here.
    pub fn tunnels(&self, t: &Topology) -> Vec<Tunnel> {
        let here = &t.hosts[self.host].name;
        let mut out = Vec::new();
        for (l, vni) in t.links.iter().zip(&self.vnis) {
            let local = [l.a, l.b].iter().any(|e| match e {
                End::Node { node, .. } => self.is_local(t, *node),
                End::Bridge { .. } | End::Uplink { .. } => false,
            });
            if let (Some(vni), true) = (vni, local) {
                out.push(Tunnel {
                    vni: *vni,
                    what: format!("link {}", link_key(t, l.a, l.b)),
                });
            }
        }
        for (b, vni) in t.bridges.iter().zip(&self.bridge_vnis) {
            if let (Some(vni), true) = (vni, b.hosts.contains(here)) {
                out.push(Tunnel {
                    vni: *vni,
                    what: format!("bridge {}", b.name),
                });
            }
        }
        out
    }
}

/// The first VNI of the lab's block: pinned, or its name's hash onto an aligned block.
pub fn block_base(t: &Topology) -> u32 {
    t.vxlan_vni
        .unwrap_or_else(|| BLOCK * (1 + (fnv(&t.lab, "") % u64::from(BLOCKS)) as u32))
}

/// The VNI of every cross-host link, by link index.
pub fn vnis(t: &Topology) -> Vec<Option<u32>> {
    allocate(t).0
}

/// The VNIs of cross-host links and of bridges that span hosts, in the lab's block.
fn allocate(t: &Topology) -> (Vec<Option<u32>>, Vec<Option<u32>>) {
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
    let keyed: Vec<(String, Result<usize, usize>)> = links.chain(bridges).collect();
    let keys: Vec<&str> = keyed.iter().map(|(k, _)| k.as_str()).collect();
    let slots = assign(&t.lab, &keys, block_base(t), BLOCK);
    let mut out = (vec![None; t.links.len()], vec![None; t.bridges.len()]);
    for ((_, i), vni) in keyed.iter().zip(slots) {
        match i {
            Ok(l) => out.0[*l] = vni,
            Err(b) => out.1[*b] = vni,
        }
    }
    out
}

/// Each key's VNI in `base..base + size`: its hash's slot, or the next free one (wrapping
/// in the block) when a key earlier in sorted order holds it. The result depends on the
/// set of keys, not their order, so every host that reads the same file agrees. A key
/// that finds the block full gets `None` (the model reports a lab that needs more).
pub fn assign(lab: &str, keys: &[&str], base: u32, size: u32) -> Vec<Option<u32>> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|i| keys[*i]);
    let mut used = vec![false; size as usize];
    let mut out = vec![None; keys.len()];
    for i in order {
        let start = (fnv(lab, keys[i]) % u64::from(size)) as u32;
        let free = (0..size)
            .map(|k| (start + k) % size)
            .find(|s| !used[*s as usize]);
        if let Some(s) = free {
            used[s as usize] = true;
            out[i] = Some(base + s);
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

/// FNV-1a over the lab and the key. Written out rather than `std::hash`, whose output may
/// change between Rust releases: two hosts built by different compilers must agree.
fn fnv(lab: &str, key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in lab.bytes().chain([0]).chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fixed() {
        // Pinned: every host, whatever compiler built it, must compute these values.
        assert_eq!(fnv("lab", "r1:eth1 r2:eth1") % u64::from(BLOCK), 14635);
        assert_eq!(fnv("lab", "") % u64::from(BLOCKS), 606);
        assert_eq!(BLOCKS, 1023);
        assert_eq!(
            BLOCK * (BLOCKS + 1) - 1,
            VNI_MAX,
            "the last block ends at 2^24-1"
        );
    }

    #[test]
    fn colliding_keys_resolve_the_same_whatever_their_order_and_fill_the_block() {
        let keys = ["a:e b:e", "c:e d:e", "e:e f:e", "bridge x"];
        let one = assign("l", &keys, 100, 4);
        let mut rev = keys;
        rev.reverse();
        let mut two = assign("l", &rev, 100, 4);
        two.reverse();
        assert_eq!(one, two, "the file's order must not matter");
        // Four keys in a block of four: some collided, yet each has its own VNI.
        let mut got: Vec<u32> = one.iter().map(|v| v.unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, [100, 101, 102, 103]);
        let starts: std::collections::BTreeSet<u64> =
            keys.iter().map(|k| fnv("l", k) % 4).collect();
        assert!(
            starts.len() < 4,
            "the test should force a collision: {starts:?}"
        );
        // A fifth key finds the block full.
        let five = assign(
            "l",
            &["a:e b:e", "c:e d:e", "e:e f:e", "bridge x", "z"],
            100,
            4,
        );
        assert_eq!(five.iter().filter(|v| v.is_none()).count(), 1);
    }
}
