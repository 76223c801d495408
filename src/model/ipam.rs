//! Address pools. Point-to-point links get a /31 (and a /127), bridges a /24 (and a /64),
//! `loopback: auto` a /32 (and a /128). Blocks that overlap any explicit address or subnet
//! are skipped, so the pool never hands out what the user wrote.
//!
//! Allocation is keyed by identity, so inserting or removing one owner moves no other:
//! - a block's home is the stable hash of its owner (a link: its two ends `node:iface`,
//!   sorted; a bridge: its name; a loopback: its node's name) reduced to the pool's blocks
//!   (to its first 65,536 when it has more, which keeps IPv6 addresses short);
//! - owners ask in declaration order; one whose home is taken or reserved probes the next
//!   blocks (wrapping round, over the whole pool), so a collision moves only the owner
//!   declared later, and a nearly full pool still finds its last free block;
//! - on a bridge, each member's host address is placed the same way by its `node:iface`
//!   within the subnet's hosts (never the network or IPv4 broadcast address, never an
//!   address written anywhere in the lab); a link's two ends take the subnet's two
//!   addresses, the lower `node:iface` the lower one.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::names;
use crate::diag::{Sink, Span};
use crate::spec::raw::{RawAddressing, Sp};

/// Address arithmetic on u128 for both families.
fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(v: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(v))
    } else {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    }
}

fn bits(v6: bool) -> u8 {
    if v6 { 128 } else { 32 }
}

/// First and last address of a network, as integers.
fn range(net: &IpNet) -> (u128, u128) {
    let start = to_u128(net.network());
    let host_bits = bits(net.addr().is_ipv6()) - net.prefix_len();
    let size = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    (start, start.saturating_add(size))
}

/// What the pools must not hand out: disjoint ranges of one family (every subnet an
/// explicit address or `subnet:` lies in), merged once before allocation starts, and every
/// address written anywhere in the lab, which no auto address may repeat even inside a
/// subnet the pools did not choose.
#[derive(Default)]
pub struct Reserved {
    v4: BTreeMap<u128, u128>,
    v6: BTreeMap<u128, u128>,
    hosts: HashSet<IpAddr>,
}

impl Reserved {
    pub fn new(nets: &[IpNet]) -> Self {
        let mut r = Reserved {
            hosts: nets.iter().map(IpNet::addr).collect(),
            ..Reserved::default()
        };
        for fam in [false, true] {
            let mut ranges: Vec<(u128, u128)> = nets
                .iter()
                .filter(|n| n.addr().is_ipv6() == fam)
                .map(range)
                .collect();
            ranges.sort();
            let map = if fam { &mut r.v6 } else { &mut r.v4 };
            let mut cur: Option<(u128, u128)> = None;
            for (s, e) in ranges {
                cur = match cur {
                    Some((cs, ce)) if s <= ce.saturating_add(1) => Some((cs, ce.max(e))),
                    Some((cs, ce)) => {
                        map.insert(cs, ce);
                        Some((s, e))
                    }
                    None => Some((s, e)),
                };
            }
            if let Some((cs, ce)) = cur {
                map.insert(cs, ce);
            }
        }
        r
    }

    /// The end of a reserved range overlapping `start..=end`, if any.
    fn overlap(&self, v6: bool, start: u128, end: u128) -> Option<u128> {
        let map = if v6 { &self.v6 } else { &self.v4 };
        map.range(..=end)
            .next_back()
            .filter(|(_, e)| **e >= start)
            .map(|(_, e)| *e)
    }
}

/// Homes are drawn from at most this many blocks (or hosts) at the start of a range, so
/// IPv6 identities stay short (`fd00:1ab:0:1::3a4e/127`, not 64 random bits); probing
/// still covers the whole range.
const WINDOW: u128 = 1 << 16;

/// A pool handing out fixed-size blocks, each at a place derived from its owner's identity.
#[derive(Debug, Clone)]
pub struct Pool {
    pub name: String,
    pub base: IpNet,
    pub block_len: u8,
    /// Blocks `first..count` are the pool's; lower ones are kept back (see `Pools::new`).
    first: u128,
    count: u128,
    taken: HashSet<u128>,
    /// Set once an allocation failed: nothing is ever given back, so later ones fail too,
    /// without probing the whole range again.
    full: bool,
    pub span: Option<Span>,
}

impl Pool {
    fn new(name: &str, base: IpNet, block_len: u8, first: u128, span: Option<Span>) -> Pool {
        let count = 1u128
            .checked_shl(u32::from(block_len.saturating_sub(base.prefix_len())))
            .unwrap_or(u128::MAX);
        Pool {
            name: name.to_string(),
            base,
            block_len,
            first,
            count,
            taken: HashSet::new(),
            full: false,
            span,
        }
    }

    /// The block of the owner whose identity hashes to `key`: its home block, or the next
    /// free one after it (wrapping round), or `None` when every block is taken or reserved.
    /// Callers ask in declaration order, so a collision moves only the later owner.
    pub fn alloc(&mut self, key: u64, reserved: &Reserved) -> Option<IpNet> {
        if self.full || self.first >= self.count {
            return None;
        }
        let v6 = self.base.addr().is_ipv6();
        let step = 1u128 << (bits(v6) - self.block_len);
        let base = to_u128(self.base.network());
        let len = self.count - self.first;
        let mut i = self.first + names::home(key, len, WINDOW);
        let mut seen: u128 = 0;
        while seen < len {
            let start = base + i * step;
            let end = start + (step - 1);
            let next = match reserved.overlap(v6, start, end) {
                // Jump past the reserved range rather than probing block by block.
                Some(r_end) => ((r_end - base) / step).saturating_add(1).min(self.count),
                None if self.taken.contains(&i) => i + 1,
                None => {
                    self.taken.insert(i);
                    return IpNet::new(from_u128(start, v6), self.block_len).ok();
                }
            };
            seen += next - i;
            i = if next >= self.count { self.first } else { next };
        }
        self.full = true;
        None
    }
}

/// Every pool of a lab, with the IPv6 ones present only for dual-stack labs.
pub struct Pools {
    pub p2p4: Pool,
    pub lan4: Pool,
    pub lo4: Pool,
    pub p2p6: Option<Pool>,
    pub lan6: Option<Pool>,
    pub lo6: Option<Pool>,
}

pub const DEFAULT_P2P: &str = "10.255.0.0/16";
pub const DEFAULT_LAN: &str = "10.128.0.0/12";
pub const DEFAULT_LOOPBACK: &str = "10.0.0.0/16";

impl Pools {
    pub fn new(sink: &mut Sink, raw: &RawAddressing) -> Pools {
        let pick = |sink: &mut Sink, v: &Option<Sp<IpNet>>, default: &str, key: &str, max: u8| {
            let (net, span) = match v {
                Some(p) => (p.value, Some(p.span)),
                None => (default.parse().expect("valid default pool"), None),
            };
            if !net.addr().is_ipv4() || net.prefix_len() > max {
                sink.error(
                    span,
                    format!("`addressing.{key}` must be an IPv4 prefix of /{max} or shorter, found `{net}`"),
                );
                return (default.parse().expect("valid default pool"), span);
            }
            (net, span)
        };
        let (p2p, p2p_span) = pick(sink, &raw.p2p, DEFAULT_P2P, "p2p", 31);
        let (lan, lan_span) = pick(sink, &raw.lan, DEFAULT_LAN, "lan", 24);
        let (lo, lo_span) = pick(sink, &raw.loopback, DEFAULT_LOOPBACK, "loopback", 32);
        let named = [
            ("p2p", p2p, p2p_span),
            ("lan", lan, lan_span),
            ("loopback", lo, lo_span),
        ];
        for (i, (an, a, aspan)) in named.iter().enumerate() {
            for (bn, b, bspan) in &named[i + 1..] {
                if a.contains(&b.network()) || b.contains(&a.network()) {
                    sink.error(
                        aspan.or(*bspan),
                        format!("address pools `{an}` ({a}) and `{bn}` ({b}) overlap"),
                    )
                    .hint("give each pool its own range so auto addresses never collide");
                }
            }
        }
        let mut pools = Pools {
            p2p4: Pool::new("addressing.p2p", p2p, 31, 0, p2p_span),
            lan4: Pool::new("addressing.lan", lan, 24, 0, lan_span),
            // Block 0 (x.x.0.0) reads as a network address; loopbacks start at .1.
            lo4: Pool::new("addressing.loopback", lo, 32, 1, lo_span),
            p2p6: None,
            lan6: None,
            lo6: None,
        };
        if let Some(v6) = &raw.ipv6 {
            let net = v6.value;
            if !net.addr().is_ipv6() || net.prefix_len() > 62 {
                sink.error(
                    Some(v6.span),
                    format!("`addressing.ipv6` must be an IPv6 prefix of /62 or shorter, found `{net}`"),
                )
                .hint("for example `ipv6: fd00:1ab::/48`: loopbacks come from its first /64, links from the second, bridges from the rest");
            } else {
                let sub = |i: u128| {
                    let (start, _) = range(&net);
                    IpNet::new(from_u128(start + (i << 64), true), 64).expect("valid /64")
                };
                pools.lo6 = Some(Pool::new(
                    "addressing.ipv6 (loopbacks)",
                    sub(0),
                    128,
                    1,
                    Some(v6.span),
                ));
                pools.p2p6 = Some(Pool::new(
                    "addressing.ipv6 (links)",
                    sub(1),
                    127,
                    0,
                    Some(v6.span),
                ));
                pools.lan6 = Some(Pool::new(
                    "addressing.ipv6 (bridges)",
                    net,
                    64,
                    2,
                    Some(v6.span),
                ));
            }
        }
        pools
    }
}

/// One L2 segment to address: a point-to-point link or a bridge.
pub struct Segment<'a> {
    pub span: Span,
    pub lan: bool,
    /// The hash of the segment's identity (a link's two ends, a bridge's name), which
    /// places its blocks in the pools.
    pub key: u64,
    /// Subnets written on a bridge (`subnet:`, `subnet6:`), per family (v4, v6).
    pub fixed: [Option<&'a Sp<IpNet>>; 2],
    pub members: Vec<Member<'a>>,
    /// The order members take their host addresses in: a link's ends sorted by
    /// `node:iface`, so writing them the other way round changes nothing.
    pub order: Vec<usize>,
}

pub struct Member<'a> {
    pub span: Span,
    /// On a bridge, the hash of the member's `node:iface`, which places its host address;
    /// a link's two ends instead take the subnet's hosts lowest first, in the order given.
    pub key: Option<u64>,
    /// `None`: take addresses from the segment's subnets.
    pub explicit: Option<&'a [Sp<IpNet>]>,
}

pub struct Assigned {
    pub subnets: Vec<IpNet>,
    pub members: Vec<Vec<IpNet>>,
}

/// A segment's subnet of one family: its fixed `subnet:`, the one its written addresses
/// share, or a block of the family's pool when a member takes its address from the pool
/// (`None`: the segment has none of that family, or the pool is full, reported).
fn family_subnet(
    sink: &mut Sink,
    pools: &mut Pools,
    reserved: &Reserved,
    seg: &Segment,
    v6: bool,
    explicit: &[&Sp<IpNet>],
    name: &dyn Fn(Option<usize>) -> String,
) -> Option<IpNet> {
    if let Some(fixed) = &seg.fixed[usize::from(v6)] {
        for a in explicit {
            if !fixed.value.contains(&a.value.addr())
                || a.value.prefix_len() != fixed.value.prefix_len()
            {
                sink.error(
                    Some(a.span),
                    format!(
                        "address {} is not in {}'s subnet {}",
                        a.value,
                        name(None),
                        fixed.value
                    ),
                )
                .hint(format!(
                    "use an address of {} with the same prefix length",
                    fixed.value
                ));
            }
        }
        return Some(fixed.value);
    }
    if let Some(first) = explicit.first() {
        return Some(shared_subnet(sink, seg, first, &explicit[1..], name));
    }
    if !seg.members.iter().any(|m| m.explicit.is_none()) {
        return None;
    }
    let pool = match (seg.lan, v6) {
        (false, false) => Some(&mut pools.p2p4),
        (true, false) => Some(&mut pools.lan4),
        (false, true) => pools.p2p6.as_mut(),
        (true, true) => pools.lan6.as_mut(),
    }?;
    let net = pool.alloc(seg.key, reserved);
    if net.is_none() {
        exhausted(sink, pool, &name(None), seg.span);
    }
    net
}

/// The subnet written addresses set: `first`'s, which every other one must share.
fn shared_subnet(
    sink: &mut Sink,
    seg: &Segment,
    first: &Sp<IpNet>,
    rest: &[&Sp<IpNet>],
    name: &dyn Fn(Option<usize>) -> String,
) -> IpNet {
    let net = first.value.trunc();
    for a in rest {
        if a.value.trunc() != net {
            let kind = if seg.lan { "members of" } else { "two ends of" };
            sink.error(
                Some(a.span),
                format!(
                    "the {kind} {} are not in one subnet: {} is in {}, but {} is in {}",
                    name(None),
                    a.value,
                    a.value.trunc(),
                    first.value,
                    net
                ),
            )
            .note(first.span, "this address sets the subnet")
            .hint("give every end an address in the same subnet with the same prefix length");
        }
    }
    net
}

/// Gives each member without written addresses a host address of `subnet`, in the
/// segment's order, skipping reserved and written ones.
fn place_members(
    sink: &mut Sink,
    reserved: &Reserved,
    seg: &Segment,
    subnet: IpNet,
    explicit: &[&Sp<IpNet>],
    name: &dyn Fn(Option<usize>) -> String,
    members: &mut [Vec<IpNet>],
) {
    let mut used: HashSet<IpAddr> = reserved.hosts.clone();
    used.extend(explicit.iter().map(|a| a.value.addr()));
    let hosts = Hosts::new(subnet);
    for &i in &seg.order {
        let m = &seg.members[i];
        if m.explicit.is_some() {
            continue;
        }
        match hosts.probe(m.key, &used) {
            Some(addr) => {
                used.insert(addr);
                members[i].push(IpNet::new(addr, subnet.prefix_len()).expect("valid prefix"));
            }
            None => {
                sink.error(
                    Some(m.span),
                    format!(
                        "subnet {subnet} of {} has no free address left for {}",
                        name(None),
                        name(Some(i))
                    ),
                )
                .hint(if seg.lan {
                    "give the bridge a larger `subnet:` (for example a /16)"
                } else {
                    "a point-to-point subnet holds two ends; widen the prefix"
                });
            }
        }
    }
}

/// Addresses one segment and returns each member's addresses. Call it for every segment
/// in declaration order: on a collision the segment asking later moves.
pub fn assign_segment(
    sink: &mut Sink,
    pools: &mut Pools,
    reserved: &Reserved,
    seg: &Segment,
    // Names the segment (`None`) or a member, only when a message needs it: formatting
    // names up front for every link would cost more than the allocation itself.
    name: &dyn Fn(Option<usize>) -> String,
) -> Assigned {
    let mut out = Assigned {
        subnets: Vec::new(),
        members: seg
            .members
            .iter()
            .map(|m| m.explicit.into_iter().flatten().map(|a| a.value).collect())
            .collect(),
    };
    let any_auto = seg.members.iter().any(|m| m.explicit.is_none());
    for v6 in [false, true] {
        let explicit: Vec<&Sp<IpNet>> = seg
            .members
            .iter()
            .flat_map(|m| m.explicit.into_iter().flatten())
            .filter(|a| a.value.addr().is_ipv6() == v6)
            .collect();
        let Some(subnet) = family_subnet(sink, pools, reserved, seg, v6, &explicit, name) else {
            continue;
        };
        out.subnets.push(subnet);
        if any_auto {
            place_members(
                sink,
                reserved,
                seg,
                subnet,
                &explicit,
                name,
                &mut out.members,
            );
        }
    }
    out
}

fn exhausted(sink: &mut Sink, pool: &Pool, what: &str, span: Span) {
    let d = sink
        .error(
            Some(span),
            format!(
                "address pool `{}` ({}) is exhausted: no free /{} left for {what}",
                pool.name, pool.base, pool.block_len
            ),
        )
        .hint(format!(
            "set a larger `{}` under `addressing:`, or give this link explicit addresses",
            pool.name.split(' ').next().unwrap_or("addressing")
        ));
    if let Some(ps) = pool.span {
        d.note(ps, "the pool");
    }
}

/// Usable host addresses of a subnet: /31 and /127 use both addresses (RFC 3021,
/// RFC 6164); otherwise the network address (and IPv4 broadcast) are skipped.
struct Hosts {
    v6: bool,
    first: u128,
    last: u128,
}

impl Hosts {
    fn new(net: IpNet) -> Hosts {
        let v6 = net.addr().is_ipv6();
        let (start, end) = range(&net);
        let host_bits = bits(v6) - net.prefix_len();
        let (first, last) = match (v6, host_bits) {
            (_, 0) | (_, 1) => (start, end),
            (false, _) => (start + 1, end - 1),
            (true, _) => (start + 1, end),
        };
        Hosts { v6, first, last }
    }

    /// The first free address from the home of `key` (from the lowest host without one),
    /// wrapping round. Only `used` can be taken, so `used.len() + 1` probes always decide.
    fn probe(&self, key: Option<u64>, used: &HashSet<IpAddr>) -> Option<IpAddr> {
        let len = (self.last - self.first).saturating_add(1);
        let mut off = key.map_or(0, |k| names::home(k, len, WINDOW));
        for _ in 0..len.min(used.len() as u128 + 1) {
            let a = from_u128(self.first + off, self.v6);
            if !used.contains(&a) {
                return Some(a);
            }
            off = (off + 1) % len;
        }
        None
    }
}

/// The loopback of a node that asked for `auto`, placed by the node's name; call it in
/// node order, so a collision moves the node declared later.
pub fn loopback(
    sink: &mut Sink,
    pools: &mut Pools,
    reserved: &Reserved,
    node: &str,
    span: Span,
) -> Vec<IpNet> {
    let mut out = Vec::new();
    let what = || format!("the loopback of node `{node}`");
    let key = names::identity_hash(&["loopback", node]);
    match pools.lo4.alloc(key, reserved) {
        Some(n) => out.push(n),
        None => exhausted(sink, &pools.lo4, &what(), span),
    }
    if let Some(lo6) = pools.lo6.as_mut() {
        match lo6.alloc(key, reserved) {
            Some(n) => out.push(n),
            None => exhausted(sink, lo6, &what(), span),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    /// The key whose home in a pool of `len` blocks is `want`.
    fn key_at(want: u128, len: u128) -> u64 {
        (0u64..)
            .map(|i| names::identity_hash(&[&i.to_string()]))
            .find(|&k| names::home(k, len, WINDOW) == want)
            .unwrap()
    }

    #[test]
    fn blocks_sit_at_their_home() {
        let r = Reserved::default();
        let mut p = Pool::new("p", net("10.255.0.0/24"), 31, 0, None);
        assert_eq!(p.alloc(key_at(5, 128), &r), Some(net("10.255.0.10/31")));
        assert_eq!(p.alloc(key_at(0, 128), &r), Some(net("10.255.0.0/31")));
        // The same owner in another lab gets the same block.
        let mut q = Pool::new("p", net("10.255.0.0/24"), 31, 0, None);
        assert_eq!(q.alloc(key_at(0, 128), &r), Some(net("10.255.0.0/31")));
    }

    #[test]
    fn a_collision_moves_the_later_owner_to_the_next_free_block() {
        let r = Reserved::default();
        let mut p = Pool::new("p", net("10.255.0.0/29"), 31, 0, None);
        let (k3, k2) = (key_at(3, 4), key_at(2, 4));
        assert_eq!(p.alloc(k3, &r), Some(net("10.255.0.6/31")));
        assert_eq!(p.alloc(k2, &r), Some(net("10.255.0.4/31")));
        // Home 3 is taken: wrap round to block 0; then block 1; then nothing is left.
        assert_eq!(p.alloc(k3, &r), Some(net("10.255.0.0/31")));
        assert_eq!(p.alloc(k2, &r), Some(net("10.255.0.2/31")));
        assert_eq!(p.alloc(k2, &r), None);
        assert_eq!(p.alloc(key_at(0, 4), &r), None);
    }

    #[test]
    fn pool_skips_reserved_blocks() {
        let reserved = Reserved::new(&[net("10.255.0.2/31"), net("10.255.0.5/32")]);
        let mut p = Pool::new("p", net("10.255.0.0/29"), 31, 0, None);
        // Home 1 is reserved (10.255.0.2/31), and so is block 2 (holds .5): on to block 3.
        assert_eq!(p.alloc(key_at(1, 4), &reserved), Some(net("10.255.0.6/31")));
        assert_eq!(p.alloc(key_at(1, 4), &reserved), Some(net("10.255.0.0/31")));
        assert_eq!(p.alloc(key_at(3, 4), &reserved), None);
    }

    #[test]
    fn a_nearly_full_pool_finds_its_last_block_and_jumps_reserved_ranges() {
        // A /16 of /24s with everything but one block reserved in two ranges.
        let reserved = Reserved::new(&[
            net("10.128.0.0/17"),
            net("10.128.128.0/18"),
            net("10.128.193.0/24"),
            net("10.128.194.0/23"),
            net("10.128.196.0/22"),
            net("10.128.200.0/21"),
            net("10.128.208.0/20"),
            net("10.128.224.0/19"),
        ]);
        let mut p = Pool::new("p", net("10.128.0.0/16"), 24, 0, None);
        assert_eq!(
            p.alloc(key_at(7, 256), &reserved),
            Some(net("10.128.192.0/24"))
        );
        assert_eq!(p.alloc(key_at(200, 256), &reserved), None);
    }

    #[test]
    fn hosts_follow_rfc3021_and_skip_network() {
        let mut used = HashSet::new();
        let h = Hosts::new(net("10.0.0.0/31"));
        assert_eq!(h.probe(None, &used), Some("10.0.0.0".parse().unwrap()));
        used.insert("10.0.0.0".parse().unwrap());
        assert_eq!(h.probe(None, &used), Some("10.0.0.1".parse().unwrap()));
        used.insert("10.0.0.1".parse().unwrap());
        assert_eq!(h.probe(None, &used), None);
        let used = HashSet::new();
        let h = Hosts::new(net("10.0.0.0/30"));
        assert_eq!(h.probe(None, &used), Some("10.0.0.1".parse().unwrap()));
        // Two usable hosts: homes 0 and 1 are .1 and .2, never .0 or .3.
        assert_eq!(
            h.probe(Some(key_at(1, 2)), &used),
            Some("10.0.0.2".parse().unwrap())
        );
        let h = Hosts::new(net("fd00::/127"));
        assert_eq!(h.probe(None, &used), Some("fd00::".parse().unwrap()));
    }

    #[test]
    fn hosts_probe_from_their_home_and_wrap() {
        let h = Hosts::new(net("10.0.0.0/29"));
        let mut used: HashSet<IpAddr> = HashSet::new();
        // Six hosts .1 to .6; home 5 is .6.
        assert_eq!(
            h.probe(Some(key_at(5, 6)), &used),
            Some("10.0.0.6".parse().unwrap())
        );
        used.insert("10.0.0.6".parse().unwrap());
        assert_eq!(
            h.probe(Some(key_at(5, 6)), &used),
            Some("10.0.0.1".parse().unwrap())
        );
        for a in 1..6 {
            used.insert(format!("10.0.0.{a}").parse().unwrap());
        }
        assert_eq!(h.probe(Some(key_at(2, 6)), &used), None);
    }

    #[test]
    fn v6_subpools() {
        let mut sink = Sink::default();
        let raw = RawAddressing {
            ipv6: Some(Sp::new(net("fd00:1ab::/48"), Span::default())),
            ..Default::default()
        };
        let mut pools = Pools::new(&mut sink, &raw);
        let r = Reserved::default();
        // Loopbacks skip `::` (block 0), so home 0x3a4e is block 0x3a4f.
        let k = key_at(0x3a4e, WINDOW);
        assert_eq!(
            pools.lo6.as_mut().unwrap().alloc(k, &r),
            Some(net("fd00:1ab::3a4f/128"))
        );
        assert_eq!(
            pools.p2p6.as_mut().unwrap().alloc(k, &r),
            Some(net("fd00:1ab:0:1::749c/127"))
        );
        // Bridges: /64s 2 and up of the /48 (0 and 1 hold the loopbacks and links).
        let k = key_at(0, (1 << 16) - 2);
        assert_eq!(
            pools.lan6.as_mut().unwrap().alloc(k, &r),
            Some(net("fd00:1ab:0:2::/64"))
        );
        assert_eq!(
            pools.lo4.alloc(key_at(0, 65535), &r),
            Some(net("10.0.0.1/32"))
        );
        assert!(sink.diagnostics.is_empty());
    }

    #[test]
    fn overlapping_pools_are_an_error() {
        let mut sink = Sink::default();
        let raw = RawAddressing {
            p2p: Some(Sp::new(net("10.128.0.0/16"), Span::default())),
            ..Default::default()
        };
        Pools::new(&mut sink, &raw);
        assert!(sink.diagnostics[0].message.contains("overlap"));
    }
}
