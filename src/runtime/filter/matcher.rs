//! Evaluates a filter on one Ethernet frame. The frame is decoded once (addresses,
//! protocol, ports), then the tree is walked. IPv6 extension headers (hop-by-hop,
//! routing, destination options, fragment, AH) are skipped to reach TCP/UDP/ICMPv6; as in
//! pcap, a fragment other than the first has no ports, and a VLAN-tagged frame is neither
//! `ip` nor `ip6` (a primitive after `vlan` reads past the tag: it is decoded again, 4
//! bytes further on).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Dir, Filter, Prim, Proto};

const ETH_IP: u16 = 0x0800;
const ETH_IP6: u16 = 0x86dd;
const ETH_ARP: u16 = 0x0806;
/// The tag protocol ids pcap's `vlan` accepts: 802.1Q, 802.1ad, and the old QinQ one.
pub const TPIDS: [u16; 3] = [0x8100, 0x88a8, 0x9100];
const TCP: u8 = 6;
const UDP: u8 = 17;

/// What the filter can test in a frame.
#[derive(Debug, Default)]
struct Frame {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    /// The ethertype after the MACs and the tags skipped (0 if the frame ends before).
    ethertype: u16,
    /// The 2 bytes after the ethertype: a tag's TCI when the ethertype is a TPID.
    tci: Option<u16>,
    /// Source and destination: of the IP header, or ARP's sender and target.
    addrs: Option<(IpAddr, IpAddr)>,
    /// The IPv4 protocol or the IPv6 upper-layer header.
    l4: Option<u8>,
    ports: Option<(u16, u16)>,
}

impl Filter {
    /// True if the frame (from its Ethernet header on) passes the filter.
    /// A VLAN tag the kernel took out of the frame must be put back first (as libpcap
    /// does, and as the pcap nslab writes has it).
    pub fn matches(&self, frame: &[u8]) -> bool {
        match decode(frame, 0) {
            Some(f) => self.eval(frame, &f),
            None => false,
        }
    }

    fn eval(&self, b: &[u8], f: &Frame) -> bool {
        match self {
            Filter::Not(a) => !a.eval(b, f),
            Filter::And(a, c) => a.eval(b, f) && c.eval(b, f),
            Filter::Or(a, c) => a.eval(b, f) || c.eval(b, f),
            Filter::Prim(p) => p.eval(f),
            Filter::Tagged(n, p) => decode(b, *n).is_some_and(|f| p.eval(&f)),
        }
    }
}

impl Prim {
    fn eval(&self, f: &Frame) -> bool {
        match *self {
            Prim::Proto(p) => has_proto(f, p),
            Prim::Net {
                proto,
                dir,
                addr,
                prefix,
            } => {
                let carried = match proto {
                    None => true,
                    Some(p) => has_proto(f, p),
                };
                let inside = |a: IpAddr| same_family(a, addr) && masked(a, prefix) == addr;
                carried
                    && f.addrs
                        .is_some_and(|(s, d)| by_dir(dir, inside(s), inside(d)))
            }
            Prim::Port { proto, dir, lo, hi } => {
                let carried = match proto {
                    None => f.l4 == Some(TCP) || f.l4 == Some(UDP),
                    Some(p) => has_proto(f, p),
                };
                let inside = |p: u16| (lo..=hi).contains(&p);
                carried
                    && f.ports
                        .is_some_and(|(s, d)| by_dir(dir, inside(s), inside(d)))
            }
            Prim::Ether { dir, mac } => by_dir(dir, f.src_mac == mac, f.dst_mac == mac),
            Prim::IpProto { ip, proto } => {
                let family = match ip {
                    Some(p) => has_proto(f, p),
                    None => f.ethertype == ETH_IP || f.ethertype == ETH_IP6,
                };
                family && f.l4 == Some(proto)
            }
            Prim::Vlan(id) => {
                TPIDS.contains(&f.ethertype)
                    && id.is_none_or(|id| f.tci.is_some_and(|t| t & 0x0fff == id))
            }
        }
    }
}

fn has_proto(f: &Frame, p: Proto) -> bool {
    let ip = f.ethertype == ETH_IP || f.ethertype == ETH_IP6;
    match p {
        Proto::Ether => true,
        Proto::Ip => f.ethertype == ETH_IP,
        Proto::Ip6 => f.ethertype == ETH_IP6,
        Proto::Arp => f.ethertype == ETH_ARP,
        Proto::Icmp => f.ethertype == ETH_IP && f.l4 == Some(1),
        Proto::Icmp6 => f.ethertype == ETH_IP6 && f.l4 == Some(58),
        Proto::Tcp => ip && f.l4 == Some(TCP),
        Proto::Udp => ip && f.l4 == Some(UDP),
    }
}

fn by_dir(dir: Dir, src: bool, dst: bool) -> bool {
    match dir {
        Dir::Src => src,
        Dir::Dst => dst,
        Dir::Either => src || dst,
        Dir::Both => src && dst,
    }
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// `addr` with the bits after `prefix` cleared.
pub fn masked(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// The frame seen past `tags` VLAN tags; `None` if it is shorter than an Ethernet header.
fn decode(b: &[u8], tags: u8) -> Option<Frame> {
    let skip = 4 * usize::from(tags);
    be16(b, 12)?;
    let l3 = b.get(14 + skip..).unwrap_or_default();
    let mut f = Frame {
        dst_mac: b.get(0..6)?.try_into().ok()?,
        src_mac: b.get(6..12)?.try_into().ok()?,
        ethertype: be16(b, 12 + skip).unwrap_or(0),
        tci: be16(l3, 0),
        ..Frame::default()
    };
    match f.ethertype {
        ETH_IP => ipv4(l3, &mut f),
        ETH_IP6 => ipv6(l3, &mut f),
        ETH_ARP => arp(l3, &mut f),
        _ => {}
    }
    Some(f)
}

fn ipv4(b: &[u8], f: &mut Frame) {
    let (Some(ver_ihl), Some(proto)) = (b.first(), b.get(9)) else {
        return;
    };
    let (Some(s), Some(d)) = (b.get(12..16), b.get(16..20)) else {
        return;
    };
    let four = |x: &[u8]| IpAddr::V4(Ipv4Addr::new(x[0], x[1], x[2], x[3]));
    f.addrs = Some((four(s), four(d)));
    f.l4 = Some(*proto);
    let ihl = usize::from(ver_ihl & 0x0f) * 4;
    let first_fragment = be16(b, 6).is_some_and(|v| v & 0x1fff == 0);
    if ihl >= 20 && first_fragment {
        f.ports = ports(*proto, b.get(ihl..).unwrap_or_default());
    }
}

fn ipv6(b: &[u8], f: &mut Frame) {
    let (Some(s), Some(d)) = (b.get(8..24), b.get(24..40)) else {
        return;
    };
    let sixteen = |x: &[u8]| IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(x).unwrap()));
    f.addrs = Some((sixteen(s), sixteen(d)));
    let Some(mut next) = b.get(6).copied() else {
        return;
    };
    let mut at = 40;
    let mut first_fragment = true;
    // A bounded walk: a chain of more headers than this is not worth following.
    for _ in 0..8 {
        let len = match next {
            0 | 43 | 60 => b.get(at + 1).map(|l| (usize::from(*l) + 1) * 8),
            44 => {
                first_fragment &= be16(b, at + 2).is_some_and(|v| v & 0xfff8 == 0);
                Some(8)
            }
            51 => b.get(at + 1).map(|l| (usize::from(*l) + 2) * 4),
            _ => break,
        };
        let (Some(len), Some(n)) = (len, b.get(at).copied()) else {
            return;
        };
        next = n;
        at += len;
    }
    f.l4 = Some(next);
    if first_fragment {
        f.ports = ports(next, b.get(at..).unwrap_or_default());
    }
}

fn ports(proto: u8, l4: &[u8]) -> Option<(u16, u16)> {
    if proto != TCP && proto != UDP {
        return None;
    }
    Some((be16(l4, 0)?, be16(l4, 2)?))
}

/// Ethernet/IPv4 ARP: sender and target protocol addresses stand for source and destination,
/// as in pcap's `host` and `net`.
fn arp(b: &[u8], f: &mut Frame) {
    if be16(b, 0) != Some(1) || be16(b, 2) != Some(ETH_IP) || b.get(4..6) != Some(&[6, 4]) {
        return;
    }
    let (Some(s), Some(d)) = (b.get(14..18), b.get(24..28)) else {
        return;
    };
    let four = |x: &[u8]| IpAddr::V4(Ipv4Addr::new(x[0], x[1], x[2], x[3]));
    f.addrs = Some((four(s), four(d)));
}
