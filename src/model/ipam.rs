//! Address pools. Point-to-point links get a /31 (and a /127), bridges a /24 (and a /64),
//! `loopback: auto` a /32 (and a /128), all in declaration order. Blocks that overlap any
//! explicit address or subnet are skipped, so the pool never hands out what the user wrote.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

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

/// A pool handing out fixed-size blocks in order.
#[derive(Debug, Clone)]
pub struct Pool {
    pub name: String,
    pub base: IpNet,
    pub block_len: u8,
    next: u128,
    count: u128,
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
            next: first,
            count,
            span,
        }
    }

    /// The next free block, or `None` when the pool is exhausted.
    pub fn alloc(&mut self, reserved: &Reserved) -> Option<IpNet> {
        let v6 = self.base.addr().is_ipv6();
        let step = 1u128 << (bits(v6) - self.block_len);
        let base = to_u128(self.base.network());
        while self.next < self.count {
            let start = base + self.next * step;
            let end = start + (step - 1);
            match reserved.overlap(v6, start, end) {
                Some(r_end) => {
                    // Jump past the reserved range rather than probing block by block.
                    self.next = (r_end - base) / step + 1;
                }
                None => {
                    self.next += 1;
                    return IpNet::new(from_u128(start, v6), self.block_len).ok();
                }
            }
        }
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
    /// Subnets written on a bridge (`subnet:`, `subnet6:`), per family (v4, v6).
    pub fixed: [Option<&'a Sp<IpNet>>; 2],
    pub members: Vec<Member<'a>>,
}

pub struct Member<'a> {
    pub span: Span,
    /// `None`: take addresses from the segment's subnets.
    pub explicit: Option<&'a [Sp<IpNet>]>,
}

pub struct Assigned {
    pub subnets: Vec<IpNet>,
    pub members: Vec<Vec<IpNet>>,
}

/// Addresses one segment and returns each member's addresses. Call it for every segment
/// in declaration order: the pools hand out blocks in call order.
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
        let subnet = match &seg.fixed[usize::from(v6)] {
            Some(fixed) => {
                for a in &explicit {
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
                Some(fixed.value)
            }
            None => match explicit.first() {
                Some(first) => {
                    let net = first.value.trunc();
                    for a in &explicit[1..] {
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
                    Some(net)
                }
                None if any_auto => {
                    let pool = match (seg.lan, v6) {
                        (false, false) => Some(&mut pools.p2p4),
                        (true, false) => Some(&mut pools.lan4),
                        (false, true) => pools.p2p6.as_mut(),
                        (true, true) => pools.lan6.as_mut(),
                    };
                    match pool {
                        Some(pool) => match pool.alloc(reserved) {
                            Some(net) => Some(net),
                            None => {
                                exhausted(sink, pool, &name(None), seg.span);
                                None
                            }
                        },
                        None => None,
                    }
                }
                None => None,
            },
        };
        let Some(subnet) = subnet else { continue };
        out.subnets.push(subnet);
        if !any_auto {
            continue;
        }
        let mut used: HashSet<IpAddr> = reserved.hosts.clone();
        used.extend(explicit.iter().map(|a| a.value.addr()));
        let mut hosts = Hosts::new(subnet);
        for (i, m) in seg.members.iter().enumerate() {
            if m.explicit.is_some() {
                continue;
            }
            match hosts.next_free(&used) {
                Some(addr) => {
                    used.insert(addr);
                    out.members[i]
                        .push(IpNet::new(addr, subnet.prefix_len()).expect("valid prefix"));
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

/// Usable host addresses of a subnet, lowest first: /31 and /127 use both addresses
/// (RFC 3021, RFC 6164); otherwise the network address (and IPv4 broadcast) are skipped.
struct Hosts {
    v6: bool,
    next: u128,
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
        Hosts {
            v6,
            next: first,
            last,
        }
    }

    fn next_free(&mut self, used: &HashSet<IpAddr>) -> Option<IpAddr> {
        while self.next <= self.last {
            let a = from_u128(self.next, self.v6);
            self.next = self.next.checked_add(1)?;
            if !used.contains(&a) {
                return Some(a);
            }
        }
        None
    }
}

/// Allocates a loopback per node that asked for `auto`, in node order.
pub fn loopback(
    sink: &mut Sink,
    pools: &mut Pools,
    reserved: &Reserved,
    node: &str,
    span: Span,
) -> Vec<IpNet> {
    let mut out = Vec::new();
    let what = format!("the loopback of node `{node}`");
    match pools.lo4.alloc(reserved) {
        Some(n) => out.push(n),
        None => exhausted(sink, &pools.lo4, &what, span),
    }
    if let Some(lo6) = pools.lo6.as_mut() {
        match lo6.alloc(reserved) {
            Some(n) => out.push(n),
            None => exhausted(sink, lo6, &what, span),
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

    #[test]
    fn pool_skips_reserved_blocks() {
        let reserved = Reserved::new(&[net("10.255.0.2/31"), net("10.255.0.5/32")]);
        let mut p = Pool::new("p", net("10.255.0.0/29"), 31, 0, None);
        assert_eq!(p.alloc(&reserved), Some(net("10.255.0.0/31")));
        assert_eq!(p.alloc(&reserved), Some(net("10.255.0.6/31")));
        assert_eq!(p.alloc(&reserved), None);
    }

    #[test]
    fn hosts_follow_rfc3021_and_skip_network() {
        let used = HashSet::new();
        let mut h = Hosts::new(net("10.0.0.0/31"));
        assert_eq!(h.next_free(&used), Some("10.0.0.0".parse().unwrap()));
        assert_eq!(h.next_free(&used), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(h.next_free(&used), None);
        let mut h = Hosts::new(net("10.0.0.0/30"));
        assert_eq!(h.next_free(&used), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(h.next_free(&used), Some("10.0.0.2".parse().unwrap()));
        assert_eq!(h.next_free(&used), None);
        let mut h = Hosts::new(net("fd00::/127"));
        assert_eq!(h.next_free(&used), Some("fd00::".parse().unwrap()));
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
        assert_eq!(
            pools.lo6.as_mut().unwrap().alloc(&r),
            Some(net("fd00:1ab::1/128"))
        );
        assert_eq!(
            pools.p2p6.as_mut().unwrap().alloc(&r),
            Some(net("fd00:1ab:0:1::/127"))
        );
        assert_eq!(
            pools.lan6.as_mut().unwrap().alloc(&r),
            Some(net("fd00:1ab:0:2::/64"))
        );
        assert_eq!(pools.lo4.alloc(&r), Some(net("10.0.0.1/32")));
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
