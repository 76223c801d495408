//! The filter grammar, as pcap-filter(7) has it: `not`/`!` binds tightest; `and`/`&&` and
//! `or`/`||` have the same precedence and group left to right (`a or b and c` is
//! `(a or b) and c`); a value without qualifiers repeats the previous primitive's
//! (`host 10.0.0.1 or 10.0.0.2`, `port 179 or 646`).

use std::net::IpAddr;

use super::lex::{Spanned, Tok, lex};
use super::services::Services;
use super::{Dir, Filter, FilterError, MAX_TAGS, Prim, Proto, TCPDUMP_HINT};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Host,
    Net,
    Port,
    Range,
    Proto,
}

/// The qualifiers of a primitive, kept for the bare values after it.
#[derive(Debug, Clone, Copy)]
struct Quals {
    proto: Option<Proto>,
    dir: Dir,
    kind: Kind,
}

/// How deep `(` and `not` may nest, and how many primitives a filter may hold: the
/// parser, the matcher and the tree's drop all recurse, and a command line may carry
/// 2 MiB of filter. Far above what people write (tcpdump users list hosts by the
/// hundred, and nest a few levels).
const MAX_DEPTH: usize = 64;
const MAX_PRIMITIVES: usize = 1000;

struct Parser<'a> {
    text: &'a str,
    toks: Vec<Spanned>,
    at: usize,
    last: Option<Quals>,
    /// The `vlan` keywords read so far.
    tags: u8,
    services: &'a Services,
    /// `(` and `not` open around the current token.
    depth: usize,
    primitives: usize,
}

/// Parses a filter (the words after the target, joined by spaces); port names come from
/// the host's /etc/services.
pub fn parse(text: &str) -> Result<Filter, FilterError> {
    parse_with(text, Services::host())
}

/// [`parse`] with the port names of `services`.
pub fn parse_with(text: &str, services: &Services) -> Result<Filter, FilterError> {
    let toks = lex(text)?;
    let mut p = Parser {
        text,
        toks,
        at: 0,
        last: None,
        tags: 0,
        services,
        depth: 0,
        primitives: 0,
    };
    if p.toks.is_empty() {
        return Err(p.err(
            1,
            "the filter is empty",
            "give a primitive, e.g. `port 179`",
        ));
    }
    let f = p.expr()?;
    match p.toks.get(p.at) {
        None => Ok(f),
        Some((Tok::Close, col)) => Err(p.err(*col, "`)` closes nothing", "remove it")),
        Some(_) => Err(p.stray()),
    }
}

const PROTOS: [(&str, Proto); 8] = [
    ("ether", Proto::Ether),
    ("ip", Proto::Ip),
    ("ip6", Proto::Ip6),
    ("arp", Proto::Arp),
    ("icmp", Proto::Icmp),
    ("icmp6", Proto::Icmp6),
    ("tcp", Proto::Tcp),
    ("udp", Proto::Udp),
];

/// pcap words this subset does not have: refused by name rather than as unknown.
const UNSUPPORTED: &[&str] = &[
    "greater",
    "less",
    "len",
    "mpls",
    "pppoed",
    "pppoes",
    "geneve",
    "vxlan",
    "gateway",
    "broadcast",
    "multicast",
    "protochain",
    "sctp",
    "igmp",
    "igrp",
    "pim",
    "ah",
    "esp",
    "vrrp",
    "carp",
    "rarp",
    "atalk",
    "aarp",
    "decnet",
    "iso",
    "stp",
    "ipx",
    "netbeui",
    "llc",
    "wlan",
    "inbound",
    "outbound",
    "ifname",
    "on",
    "rnr",
    "rulenum",
    "reason",
    "rset",
    "srnr",
    "subrulenum",
    "action",
    "type",
    "subtype",
    "dir",
    "ra",
    "ta",
    "addr1",
    "addr2",
    "addr3",
    "addr4",
    "mask",
];

impl Parser<'_> {
    fn err(&self, col: usize, what: impl Into<String>, hint: impl Into<String>) -> FilterError {
        FilterError::new(self.text, col, what, hint)
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|t| &t.0)
    }

    fn peek_word(&self, k: usize) -> Option<&str> {
        match self.toks.get(self.at + k) {
            Some((Tok::Word(w), _)) => Some(w),
            _ => None,
        }
    }

    /// The column of the current token, or one past the end.
    fn col(&self) -> usize {
        self.toks
            .get(self.at)
            .map_or(self.text.chars().count() + 1, |t| t.1)
    }

    /// A word where `and`, `or` or the end was expected: a keyword this subset lacks
    /// (`ip proto 89`), or a missing operator.
    fn stray(&self) -> FilterError {
        let col = self.col();
        let w = self.peek_word(0).unwrap_or_default();
        if UNSUPPORTED.contains(&w) {
            return self.err(col, format!("`{w}` is not supported"), TCPDUMP_HINT);
        }
        self.err(
            col,
            "two primitives with nothing between them",
            "join them with `and` or `or`",
        )
    }

    /// `unary { (and|or) unary }`, left to right, one precedence.
    fn expr(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        loop {
            let and = match self.peek() {
                Some(Tok::And) => true,
                Some(Tok::Or) => false,
                _ => return Ok(left),
            };
            self.at += 1;
            let right = self.unary()?;
            left = if and {
                Filter::And(Box::new(left), Box::new(right))
            } else {
                Filter::Or(Box::new(left), Box::new(right))
            };
        }
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        let col = self.col();
        let tok = self.peek().cloned();
        if matches!(tok, Some(Tok::Not | Tok::Open)) && self.depth == MAX_DEPTH {
            return Err(self.err(
                col,
                format!("`(` and `not` nest here deeper than nslab takes (at most {MAX_DEPTH})"),
                "write the filter flatter, or filter with tcpdump (`-w - | tcpdump -r - 'FILTER'`)",
            ));
        }
        match tok {
            Some(Tok::Not) => {
                self.at += 1;
                self.depth += 1;
                let f = self.unary();
                self.depth -= 1;
                Ok(Filter::Not(Box::new(f?)))
            }
            Some(Tok::Open) => {
                self.at += 1;
                self.depth += 1;
                let f = self.expr();
                self.depth -= 1;
                let f = f?;
                match self.peek() {
                    Some(Tok::Close) => {}
                    Some(_) => return Err(self.stray()),
                    None => return Err(self.err(col, "this `(` is never closed", "add a `)`")),
                }
                self.at += 1;
                Ok(f)
            }
            Some(Tok::Word(_)) if self.primitives == MAX_PRIMITIVES => Err(self.err(
                col,
                format!("the filter holds more primitives than nslab takes (at most {MAX_PRIMITIVES})"),
                "capture a wider filter and narrow it with tcpdump (`-w - | tcpdump -r - 'FILTER'`)",
            )),
            Some(Tok::Word(_)) => {
                self.primitives += 1;
                let tags = self.tags;
                let prim = self.primitive()?;
                Ok(match tags {
                    0 => Filter::Prim(prim),
                    n => Filter::Tagged(n, prim),
                })
            }
            Some(t) => Err(self.err(
                col,
                format!("expected a primitive, found `{}`", show(&t)),
                "e.g. `tcp`, `host 10.0.0.1`, `port 179`",
            )),
            None => {
                let before = self.toks.last().map_or("", |t| show(&t.0));
                Err(self.err(
                    col,
                    format!("the filter ends after `{before}`"),
                    "give a primitive after it, e.g. `tcp and port 179`",
                ))
            }
        }
    }

    /// `[proto] [dir] [kind] value`, `proto` alone, or a bare value.
    fn primitive(&mut self) -> Result<Prim, FilterError> {
        let start = self.col();
        if self.peek_word(0) == Some("vlan") {
            return self.vlan(start);
        }
        let proto = self.peek_word(0).and_then(proto_named);
        if proto.is_some() {
            self.at += 1;
        }
        let dir = self.dir();
        let kind = self.peek_word(0).and_then(kind_named);
        if kind.is_some() {
            self.at += 1;
        }
        let quals = match (proto, dir, kind) {
            (Some(p), None, None) => return Ok(Prim::Proto(p)),
            (None, None, None) if self.last.is_none() => {
                self.unknown_word(start)?;
                Quals {
                    proto: None,
                    dir: Dir::Either,
                    kind: Kind::Host,
                }
            }
            (None, None, None) => self.last.unwrap_or(Quals {
                proto: None,
                dir: Dir::Either,
                kind: Kind::Host,
            }),
            _ => Quals {
                proto,
                dir: dir.unwrap_or(Dir::Either),
                kind: kind.unwrap_or(Kind::Host),
            },
        };
        self.check_quals(start, quals)?;
        let prim = self.value(quals)?;
        self.last = Some(quals);
        Ok(prim)
    }

    /// `vlan [ID]`; what follows reads past the tag.
    fn vlan(&mut self, col: usize) -> Result<Prim, FilterError> {
        if self.tags == MAX_TAGS {
            return Err(self.err(
                col,
                format!("more than {MAX_TAGS} `vlan` keywords"),
                "nslab reads at most two tags (QinQ); filter deeper stacks with tcpdump",
            ));
        }
        self.at += 1;
        self.tags += 1;
        self.last = None;
        let Some(w) = self.peek_word(0) else {
            return Ok(Prim::Vlan(None));
        };
        if !w.starts_with(|c: char| c.is_ascii_digit()) {
            return Ok(Prim::Vlan(None));
        }
        match w.parse::<u16>() {
            Ok(id) if id < 4096 => {
                self.at += 1;
                Ok(Prim::Vlan(Some(id)))
            }
            _ => Err(self.err(
                self.col(),
                format!("`{w}` is not a VLAN id"),
                "a VLAN id is 0 to 4095",
            )),
        }
    }

    /// A first word that is neither a qualifier nor an address (a bare address is a host,
    /// as in pcap).
    fn unknown_word(&self, col: usize) -> Result<(), FilterError> {
        let w = self.peek_word(0).unwrap_or_default();
        if w.parse::<IpAddr>().is_ok() || self.refused_word(w, col).is_some() {
            return Ok(());
        }
        Err(self.err(col, format!("unknown word `{w}`"), TCPDUMP_HINT))
    }

    /// `src`, `dst`, `src or dst`, `src and dst`.
    fn dir(&mut self) -> Option<Dir> {
        let one = match self.peek_word(0)? {
            "src" => Dir::Src,
            "dst" => Dir::Dst,
            _ => return None,
        };
        self.at += 1;
        let other = if one == Dir::Src { "dst" } else { "src" };
        if self.peek_word(1) == Some(other) {
            match self.peek() {
                Some(Tok::Or) => {
                    self.at += 2;
                    return Some(Dir::Either);
                }
                Some(Tok::And) => {
                    self.at += 2;
                    return Some(Dir::Both);
                }
                _ => {}
            }
        }
        Some(one)
    }

    fn check_quals(&self, col: usize, q: Quals) -> Result<(), FilterError> {
        if q.kind == Kind::Proto && q.dir != Dir::Either {
            return Err(self.err(
                col,
                "a direction cannot qualify `proto`",
                "write `ip proto N` and add `src host ...` with `and`",
            ));
        }
        let ok = match q.kind {
            Kind::Host => matches!(
                q.proto,
                None | Some(Proto::Ip | Proto::Ip6 | Proto::Arp | Proto::Ether)
            ),
            Kind::Net => matches!(q.proto, None | Some(Proto::Ip | Proto::Ip6 | Proto::Arp)),
            Kind::Port | Kind::Range => matches!(q.proto, None | Some(Proto::Tcp | Proto::Udp)),
            Kind::Proto => matches!(q.proto, None | Some(Proto::Ip | Proto::Ip6)),
        };
        if ok {
            return Ok(());
        }
        let p = q.proto.map_or("", proto_word);
        let k = match q.kind {
            Kind::Host => "host",
            Kind::Net => "net",
            Kind::Port => "port",
            Kind::Range => "portrange",
            Kind::Proto => "proto",
        };
        Err(self.err(
            col,
            format!("`{p}` cannot qualify `{k}`"),
            format!("combine them instead, e.g. `{p} and {k} ...`"),
        ))
    }

    /// The value of a host/net/port/portrange primitive.
    fn value(&mut self, q: Quals) -> Result<Prim, FilterError> {
        let col = self.col();
        let Some(w) = self.peek_word(0).map(str::to_string) else {
            return Err(self.err(
                col,
                "a value is missing here",
                "e.g. `host 10.0.0.1`, `net 10.0.0.0/24`, `port 179`, `portrange 1000-2000`",
            ));
        };
        // A protocol keyword is a value after `proto` (`ip proto tcp`; pcap writes `\tcp`).
        if let Some(e) = self.refused_word(&w, col).filter(|_| q.kind != Kind::Proto) {
            return Err(e);
        }
        self.at += 1;
        match q.kind {
            Kind::Host if q.proto == Some(Proto::Ether) => Ok(Prim::Ether {
                dir: q.dir,
                mac: self.mac(&w, col)?,
            }),
            Kind::Host | Kind::Net => self.net(&w, col, q),
            Kind::Port | Kind::Range => self.ports(&w, col, q),
            Kind::Proto => {
                let proto = self.services.protocol(&w).map_err(|what| {
                    self.err(
                        col,
                        what,
                        "e.g. `ip proto 89`, `ip proto ospf`, `ip6 proto 58`",
                    )
                })?;
                Ok(Prim::IpProto { ip: q.proto, proto })
            }
        }
    }

    /// A word that is no value: a keyword this subset lacks, or a misplaced qualifier.
    fn refused_word(&self, w: &str, col: usize) -> Option<FilterError> {
        if UNSUPPORTED.contains(&w) {
            return Some(self.err(col, format!("`{w}` is not supported"), TCPDUMP_HINT));
        }
        if proto_named(w).is_some() || kind_named(w).is_some() || w == "src" || w == "dst" {
            return Some(self.err(
                col,
                format!("`{w}` is out of place here"),
                "qualifiers come in the order protocol, direction, type, value: `tcp src port 179`",
            ));
        }
        None
    }

    fn mac(&self, w: &str, col: usize) -> Result<[u8; 6], FilterError> {
        let parts: Vec<&str> = w.split([':', '-']).collect();
        let mut mac = [0u8; 6];
        let good = parts.len() == 6
            && parts
                .iter()
                .zip(mac.iter_mut())
                .all(|(p, b)| p.len() <= 2 && u8::from_str_radix(p, 16).map(|v| *b = v).is_ok());
        if good {
            Ok(mac)
        } else {
            Err(self.err(
                col,
                format!("`{w}` is not a MAC address"),
                "e.g. `ether host 02:00:00:00:00:01`",
            ))
        }
    }

    /// `ADDR` or, for `net`, `ADDR/LEN` with no host bits set (as pcap insists).
    fn net(&self, w: &str, col: usize, q: Quals) -> Result<Prim, FilterError> {
        let (a, len) = match w.split_once('/') {
            Some((a, l)) if q.kind == Kind::Net => (a, Some(l)),
            Some(_) => {
                return Err(self.err(
                    col,
                    format!("`{w}` is a network, not a host"),
                    format!("write `net {w}`"),
                ));
            }
            None => (w, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| {
            let hint = if a.chars().any(|c| c.is_ascii_alphabetic()) && !a.contains(':') {
                "names are not looked up: give an IPv4 or IPv6 address"
            } else {
                "e.g. `host 10.0.0.1`, `host fd00::1`, `net 10.0.0.0/24`"
            };
            self.err(col, format!("`{a}` is not an IP address"), hint)
        })?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match len {
            None => bits,
            Some(l) => match l.parse::<u8>() {
                Ok(p) if p <= bits => p,
                _ => {
                    return Err(self.err(
                        col,
                        format!(
                            "`/{l}` is not a prefix length of an IPv{}",
                            bits / 32 * 2 + 2
                        ),
                        format!("a length from 0 to {bits}"),
                    ));
                }
            },
        };
        self.check_family(col, w, q.proto, addr)?;
        if super::matcher::masked(addr, prefix) != addr {
            return Err(self.err(
                col,
                format!("`{w}` has bits set after its prefix"),
                format!(
                    "write `net {}/{prefix}`",
                    super::matcher::masked(addr, prefix)
                ),
            ));
        }
        Ok(Prim::Net {
            proto: q.proto,
            dir: q.dir,
            addr,
            prefix,
        })
    }

    fn check_family(
        &self,
        col: usize,
        w: &str,
        proto: Option<Proto>,
        addr: IpAddr,
    ) -> Result<(), FilterError> {
        let bad = match proto {
            Some(Proto::Ip | Proto::Arp) => addr.is_ipv6(),
            Some(Proto::Ip6) => addr.is_ipv4(),
            _ => false,
        };
        if bad {
            let p = proto.map_or("", proto_word);
            return Err(self.err(
                col,
                format!("`{w}` is not an address `{p}` can carry"),
                "drop the protocol, or give an address of its family",
            ));
        }
        Ok(())
    }

    /// A port number or a name of /etc/services; a name may narrow the protocol.
    fn port(
        &self,
        s: &str,
        col: usize,
        proto: Option<Proto>,
    ) -> Result<(Option<Proto>, u16), FilterError> {
        if s.chars().all(|c| c.is_ascii_digit()) {
            return match s.parse::<u16>() {
                Ok(p) => Ok((proto, p)),
                Err(_) => Err(self.err(
                    col,
                    format!("`{s}` is not a port number"),
                    "a port is 0 to 65535",
                )),
            };
        }
        self.services.port(s, proto).map_err(|what| {
            self.err(
                col,
                what,
                "give the number (bgp is 179, ssh 22), or the name /etc/services has",
            )
        })
    }

    fn ports(&self, w: &str, col: usize, q: Quals) -> Result<Prim, FilterError> {
        let ((proto, lo), (_, hi)) = if q.kind == Kind::Range {
            let Some(parts) = self.range(w, col, q.proto) else {
                return Err(self.err(
                    col,
                    format!("`{w}` is not a port range"),
                    "e.g. `portrange 1000-2000`",
                ));
            };
            parts?
        } else {
            let p = self.port(w, col, q.proto)?;
            (p, p)
        };
        if lo > hi {
            return Err(self.err(
                col,
                format!("the range `{w}` is empty"),
                format!("write `portrange {hi}-{lo}`"),
            ));
        }
        Ok(Prim::Port {
            proto,
            dir: q.dir,
            lo,
            hi,
        })
    }

    /// `A-B`, split at the first `-` whose two sides are ports (names may hold a `-`):
    /// `None` if there is no `-`. The range takes the protocol its start narrows to.
    #[allow(clippy::type_complexity)]
    fn range(
        &self,
        w: &str,
        col: usize,
        proto: Option<Proto>,
    ) -> Option<Result<((Option<Proto>, u16), (Option<Proto>, u16)), FilterError>> {
        let cuts: Vec<usize> = w.match_indices('-').map(|m| m.0).collect();
        let first = *cuts.first()?;
        for &i in &cuts {
            if let (Ok(a), Ok(b)) = (
                self.port(&w[..i], col, proto),
                self.port(&w[i + 1..], col, proto),
            ) {
                return Some(Ok((a, b)));
            }
        }
        Some(
            self.port(&w[..first], col, proto)
                .and_then(|a| Ok((a, self.port(&w[first + 1..], col, proto)?))),
        )
    }
}

fn proto_named(w: &str) -> Option<Proto> {
    PROTOS.iter().find(|p| p.0 == w).map(|p| p.1)
}

fn proto_word(p: Proto) -> &'static str {
    PROTOS.iter().find(|q| q.1 == p).map_or("?", |q| q.0)
}

fn kind_named(w: &str) -> Option<Kind> {
    Some(match w {
        "host" => Kind::Host,
        "net" => Kind::Net,
        "port" => Kind::Port,
        "portrange" => Kind::Range,
        "proto" => Kind::Proto,
        _ => return None,
    })
}

fn show(t: &Tok) -> &str {
    match t {
        Tok::Word(w) => w,
        Tok::Open => "(",
        Tok::Close => ")",
        Tok::Not => "not",
        Tok::And => "and",
        Tok::Or => "or",
    }
}
