//! Reading links (short and long form), their endpoints, bridges and impairments.

use crate::diag::Sink;
use crate::spec::raw::*;
use crate::spec::read;
use crate::spec::values;
use crate::spec::yaml::{Kind, Yaml};

const LINK_KEYS: &[&str] = &[
    "endpoints",
    "addresses",
    "macs",
    "mtu",
    "impair",
    "unnumbered",
];
const ENDPOINT_KEYS: &[&str] = &["node", "iface", "addresses", "mac", "impair"];
const BRIDGE_KEYS: &[&str] = &["mtu", "subnet", "subnet6", "stp"];
pub const IMPAIR_KEYS: &[&str] = &[
    "delay",
    "jitter",
    "loss",
    "duplicate",
    "corrupt",
    "reorder",
    "rate",
];

pub fn bridge(sink: &mut Sink, y: &Yaml, what: &str) -> RawBridge {
    let mut b = RawBridge {
        span: y.span,
        ..Default::default()
    };
    let Some(f) = read::fields(sink, y, what, BRIDGE_KEYS) else {
        return b;
    };
    b.mtu = f.value("mtu").and_then(|v| mtu(sink, v));
    b.subnet = f
        .value("subnet")
        .and_then(|v| read::parsed(sink, v, "bridge `subnet`", values::parse_prefix));
    b.subnet6 = f
        .value("subnet6")
        .and_then(|v| read::parsed(sink, v, "bridge `subnet6`", values::parse_prefix));
    b.stp = f
        .value("stp")
        .and_then(|v| read::boolean(sink, v, "bridge `stp`").map(|s| Sp::new(s, v.span)));
    b
}

/// A link's `mtu:` (a host link's too).
pub(crate) fn mtu(sink: &mut Sink, y: &Yaml) -> Option<Sp<u32>> {
    read::int(sink, y, "`mtu`", 68, 65535).map(|m| Sp::new(m.value as u32, m.span))
}

pub fn link(sink: &mut Sink, y: &Yaml) -> Option<RawLink> {
    if let Kind::Seq(items) = &y.kind {
        let endpoints = endpoints(sink, y, items)?;
        return Some(RawLink {
            span: y.span,
            endpoints,
            mtu: None,
            unnumbered: false,
            impair: None,
        });
    }
    let f = read::fields(sink, y, "a link", LINK_KEYS)?;
    let Some(ep) = f.value("endpoints") else {
        sink.error(Some(y.span), "a link needs `endpoints:`").hint(
            "for example `endpoints: [r1:eth1, r2:eth1]`, or the short form `[r1:eth1, r2:eth1]`",
        );
        return None;
    };
    let items = read::list(sink, ep, "`endpoints`");
    let mut endpoints = endpoints(sink, ep, items)?;
    if let Some(a) = f.value("addresses") {
        let ends = endpoints.iter_mut().map(|e| &mut e.addresses).collect();
        let hint = "give one entry per endpoint, in endpoint order; use `~` for a bridge end or to let the pool choose";
        spread_addresses(sink, a, ends, hint);
    }
    if let Some(m) = f.value("macs") {
        let per_end = read::list(sink, m, "link `macs`");
        if per_end.len() != endpoints.len() {
            sink.error(
                Some(m.span),
                format!(
                    "link `macs` has {} for {} endpoints",
                    entries(per_end.len()),
                    endpoints.len()
                ),
            )
            .hint("give one MAC per endpoint, in endpoint order; `~` leaves that end's derived");
        } else {
            for (end, entry) in endpoints.iter_mut().zip(per_end) {
                if !entry.is_null() {
                    end.mac = read::parsed(sink, entry, "MAC address", values::parse_mac);
                }
            }
        }
    }
    Some(RawLink {
        span: y.span,
        endpoints,
        mtu: f.value("mtu").and_then(|v| mtu(sink, v)),
        unnumbered: f
            .value("unnumbered")
            .and_then(|v| read::boolean(sink, v, "`unnumbered`"))
            .unwrap_or(false),
        impair: f.value("impair").and_then(|v| impair(sink, v)),
    })
}

fn endpoints(sink: &mut Sink, y: &Yaml, items: &[Yaml]) -> Option<Vec<RawEndpoint>> {
    if items.len() != 2 {
        sink.error(
            Some(y.span),
            format!("a link joins exactly 2 endpoints, found {}", items.len()),
        )
        .hint("for a shared segment, declare a bridge and link each node to it");
        return None;
    }
    // Collected from an exact-size iterator: two endpoints, no spare capacity.
    let ends: Vec<Option<RawEndpoint>> = items.iter().map(|i| endpoint(sink, i)).collect();
    ends.into_iter().collect()
}

/// A link's `addresses:`, one entry per end in endpoint order (`~` for none), onto the
/// ends' own addresses; an end that already has some keeps them, and the clash is an
/// error at the link's entry. Shared with host links, which read their ends apart and
/// give their own `hint` for a wrong count (a `~` there means no address, not the pool).
pub(crate) fn spread_addresses(
    sink: &mut Sink,
    a: &Yaml,
    mut ends: Vec<&mut Option<Vec<Sp<ipnet::IpNet>>>>,
    hint: &str,
) {
    let per_end = read::list(sink, a, "link `addresses`");
    if per_end.len() != ends.len() {
        sink.error(
            Some(a.span),
            format!(
                "link `addresses` has {} for {} endpoints",
                entries(per_end.len()),
                ends.len()
            ),
        )
        .hint(hint);
        return;
    }
    for (end, entry) in ends.iter_mut().zip(per_end) {
        if entry.is_null() {
            continue;
        }
        if end.is_some() {
            sink.error(
                Some(entry.span),
                "addresses given both on the link and on the endpoint",
            );
            continue;
        }
        **end = Some(addresses(sink, entry));
    }
}

/// Where `part`, `at` characters into the scalar's value, is in the source: exact when the
/// value is written as it reads (plain, or quoted on one line without escapes), else the
/// whole scalar (a plain scalar folded over lines, escapes), never past it.
pub(crate) fn part_span(s: &Sp<String>, at: usize, part: &str) -> crate::diag::Span {
    let n = s.value.chars().count() as u32;
    let quote = match s.span.len {
        l if l == n => 0,
        l if l == n + 2 => 1,
        _ => return s.span,
    };
    let col = s.span.col + quote + at as u32;
    crate::diag::Span::new(s.span.line, col, part.chars().count() as u32)
}

/// `node:iface`, `node`, `bridge`, a mapping with per-endpoint settings, or a macvlan of
/// a host interface.
fn endpoint(sink: &mut Sink, y: &Yaml) -> Option<RawEndpoint> {
    if crate::spec::device::is_macvlan(y) {
        return crate::spec::device::macvlan_end(sink, y);
    }
    if let Kind::Map(_) = y.kind {
        let f = read::fields(sink, y, "a link endpoint", ENDPOINT_KEYS)?;
        let Some(node) = f.value("node") else {
            sink.error(Some(y.span), "a link endpoint needs `node:`")
                .hint("for example `{ node: r1, iface: eth1, addresses: [10.1.0.0/31] }`");
            return None;
        };
        let mut end = node_end(sink, y, node, &f)?;
        end.mac = f
            .value("mac")
            .and_then(|v| read::parsed(sink, v, "MAC address", values::parse_mac));
        end.impair = f.value("impair").and_then(|v| impair(sink, v));
        return Some(end);
    }
    let s = read::string(sink, y, "a link endpoint")?;
    Some(scalar_end(s))
}

/// A node's end written as a mapping (its `node:` is `node`): the name, `iface` and
/// `addresses`, which every link form reads alike. What else an end may say (a MAC, an
/// impairment) is up to its link form, as are its keys, already checked in `f`.
pub(crate) fn node_end(
    sink: &mut Sink,
    y: &Yaml,
    node: &Yaml,
    f: &read::Fields,
) -> Option<RawEndpoint> {
    Some(RawEndpoint {
        span: y.span,
        name: read::string(sink, node, "endpoint `node`")?,
        iface: f
            .value("iface")
            .and_then(|v| read::string(sink, v, "endpoint `iface`")),
        addresses: f.value("addresses").map(|v| addresses(sink, v)),
        mac: None,
        impair: None,
        macvlan: None,
    })
}

/// A node's end written as `node:iface` or `node`, each part located at its own columns.
pub(crate) fn scalar_end(s: Sp<String>) -> RawEndpoint {
    let (name, iface) = match s.value.split_once(':') {
        Some((n, i)) => {
            let ispan = part_span(&s, n.chars().count() + 1, i);
            (n.to_string(), Some(Sp::new(i.to_string(), ispan)))
        }
        None => (s.value.clone(), None),
    };
    let nspan = part_span(&s, 0, &name);
    RawEndpoint {
        span: s.span,
        name: Sp::new(name, nspan),
        iface,
        addresses: None,
        mac: None,
        impair: None,
        macvlan: None,
    }
}

/// One endpoint's addresses: a CIDR or a list; an empty list means none.
pub(crate) fn addresses(sink: &mut Sink, y: &Yaml) -> Vec<Sp<ipnet::IpNet>> {
    read::one_or_many(y)
        .iter()
        .filter_map(|a| read::parsed(sink, a, "address", |s| values::parse_cidr(s, false)))
        .collect()
}

pub fn impair(sink: &mut Sink, y: &Yaml) -> Option<Box<RawImpair>> {
    let f = read::fields(sink, y, "`impair`", IMPAIR_KEYS)?;
    let dur = |sink: &mut Sink, k: &str| {
        f.value(k)
            .and_then(|v| read::parsed(sink, v, &format!("`{k}`"), values::parse_duration))
            .map(|d| d.value)
    };
    let delay = dur(sink, "delay");
    let jitter = dur(sink, "jitter");
    let pct = |sink: &mut Sink, k: &str| {
        f.value(k)
            .and_then(|v| read::parsed(sink, v, &format!("`{k}`"), values::parse_percent))
            .map(|p| p.value)
    };
    let imp = RawImpair {
        span: y.span,
        delay,
        jitter,
        loss: pct(sink, "loss"),
        duplicate: pct(sink, "duplicate"),
        corrupt: pct(sink, "corrupt"),
        reorder: pct(sink, "reorder"),
        rate: f
            .value("rate")
            .and_then(|v| read::parsed(sink, v, "`rate`", values::parse_rate))
            .map(|r| r.value),
    };
    // Its rules (it sets something, jitter and reorder need a delay) are the model's,
    // shared with `nslab link impair`.
    Some(Box::new(imp))
}

/// "1 entry", "3 entries".
fn entries(n: usize) -> String {
    if n == 1 {
        "1 entry".into()
    } else {
        format!("{n} entries")
    }
}
