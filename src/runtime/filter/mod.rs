//! The filter of `nslab capture`: a small, exact subset of the pcap filter language
//! (pcap-filter(7)), parsed before the capture starts, so `nslab capture r1:eth0 port 179`
//! works as tcpdump users expect without libpcap. It is compiled to a classic BPF program
//! that the kernel runs on the capture socket ([`bpf`]); the matcher in user space
//! ([`Filter::matches`]) is the reference the program is tested against. Anything outside
//! the subset is refused by name, pointing at `tcpdump -r -`.

pub mod bpf;
#[cfg(test)]
mod bpf_vm;
mod lex;
mod matcher;
mod parse;
pub mod services;

use std::net::IpAddr;

pub use parse::parse;

/// A parsed filter: the expression tree, evaluated with [`Filter::matches`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Not(Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Prim(Prim),
    /// A primitive after `n` `vlan` keywords: it reads the frame past `n` VLAN tags, as
    /// pcap's offsets move on at each `vlan` (`vlan 10 and ip`).
    Tagged(u8, Prim),
}

/// At most this many `vlan` keywords in one filter (QinQ is two).
pub const MAX_TAGS: u8 = 2;

/// Which address or port of a packet a primitive looks at (`src`, `dst`, neither: either
/// one, `src and dst`: both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Src,
    Dst,
    Either,
    Both,
}

/// The protocols a filter can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Ether,
    Ip,
    Ip6,
    Arp,
    Icmp,
    Icmp6,
    Tcp,
    Udp,
}

/// One test on a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prim {
    /// `ip`, `tcp`, `icmp6`...
    Proto(Proto),
    /// `[ip|ip6|arp] [src|dst] host ADDR` (`net ADDR/LEN` when `prefix` is shorter than
    /// the address); with no protocol, IPv4/IPv6 and ARP addresses, as in pcap.
    Net {
        proto: Option<Proto>,
        dir: Dir,
        addr: IpAddr,
        prefix: u8,
    },
    /// `[tcp|udp] [src|dst] port N` and `portrange A-B`.
    Port {
        proto: Option<Proto>,
        dir: Dir,
        lo: u16,
        hi: u16,
    },
    /// `ether [src|dst] host MAC`.
    Ether { dir: Dir, mac: [u8; 6] },
    /// `[ip|ip6] proto N`: the IPv4 protocol or the IPv6 upper-layer header (past the
    /// extension headers, as `tcp` is) is N; `ip` is None for either.
    IpProto { ip: Option<Proto>, proto: u8 },
    /// `vlan` and `vlan ID`: an 802.1Q/802.1ad tag (TPID 0x8100, 0x88a8 or 0x9100) with
    /// that VLAN id.
    Vlan(Option<u16>),
}

/// A filter nslab cannot use: where (1-based column in the words joined by spaces),
/// what, and what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("capture filter, column {col}: {what}\n  {text}\n  {caret}^\n  = hint: {hint}")]
pub struct FilterError {
    pub col: usize,
    pub what: String,
    pub hint: String,
    text: String,
    caret: String,
}

impl FilterError {
    fn new(text: &str, col: usize, what: impl Into<String>, hint: impl Into<String>) -> Self {
        FilterError {
            col,
            what: what.into(),
            hint: hint.into(),
            text: text.to_string(),
            caret: " ".repeat(col.saturating_sub(1)),
        }
    }
}

/// The hint for everything pcap has and this subset has not.
pub const TCPDUMP_HINT: &str = "nslab's filter knows ip, ip6, arp, icmp, icmp6, tcp, udp, \
     [src|dst] host/net/port/portrange, ether host, vlan, [ip|ip6] proto, and/or/not and parentheses; for the rest \
     capture everything and filter with tcpdump: `nslab capture NODE:IFACE -w - | tcpdump -r - 'FILTER'`";

#[cfg(test)]
mod tests;
