//! Reading what reaches the host: links with one end in the host's namespace (`host:`
//! endpoints) and the management network (`mgmt:`, top level and per node). Both are
//! opt-in exceptions to "the host is untouched", so they are read apart from the lab's
//! own links and never mixed with them.

use ipnet::IpNet;

use crate::diag::{Sink, Span};
use crate::spec::link;
use crate::spec::raw::{RawEndpoint, Sp};
use crate::spec::read;
use crate::spec::values;
use crate::spec::yaml::{Kind, Yaml};

const HOST_LINK_KEYS: &[&str] = &["endpoints", "addresses", "mtu"];
const NODE_END_KEYS: &[&str] = &["node", "iface", "addresses", "mac"];
const HOST_END_KEYS: &[&str] = &["host", "addresses", "mgmt"];
const MGMT_KEYS: &[&str] = &["network", "subnet", "subnet6", "iface", "bridge"];
const NODE_MGMT_KEYS: &[&str] = &["address", "address6"];

/// A link from a node to the host: a veth with the host's end in the host's namespace.
#[derive(Debug, Clone)]
pub struct RawHostLink {
    pub span: Span,
    pub node: Sp<String>,
    pub iface: Option<Sp<String>>,
    /// The node end's addresses.
    pub addresses: Vec<Sp<IpNet>>,
    /// The host end's name, as the kernel will see it.
    pub host: Sp<String>,
    pub host_addresses: Vec<Sp<IpNet>>,
    pub mtu: Option<Sp<u32>>,
    /// Where the host end says `mgmt: true`: it is a port of the management bridge.
    pub mgmt: Option<Span>,
}

/// `mgmt:` at the top level: a bridge on the host and a veth from it to every node.
#[derive(Debug, Clone, Default)]
pub struct RawMgmt {
    pub span: Span,
    /// A management network shared with other labs on this host, by name.
    pub network: Option<Sp<String>>,
    pub subnet: Option<Sp<IpNet>>,
    pub subnet6: Option<Sp<IpNet>>,
    pub iface: Option<Sp<String>>,
    pub bridge: Option<Sp<String>>,
}

/// A node's `mgmt:`: `false` leaves it out, a mapping fixes its addresses.
#[derive(Debug, Clone, PartialEq)]
pub enum RawNodeMgmt {
    Off(Span),
    At {
        span: Span,
        address: Option<Sp<IpNet>>,
        address6: Option<Sp<IpNet>>,
    },
}

/// Whether a `links:` entry has an endpoint in the host: a `{ host: NAME }` mapping, or
/// `host:NAME` when no node is called `host` (then that form names the node, as before).
pub fn is_host_link(y: &Yaml, node_named_host: bool) -> bool {
    let items: &[Yaml] = match &y.kind {
        Kind::Seq(items) => items,
        Kind::Map(entries) => match entries
            .iter()
            .find(|(k, _)| k.as_str() == Some("endpoints"))
        {
            Some((
                _,
                Yaml {
                    kind: Kind::Seq(items),
                    ..
                },
            )) => items,
            _ => return false,
        },
        _ => return false,
    };
    items.iter().any(|i| match &i.kind {
        Kind::Map(e) => e.iter().any(|(k, _)| k.as_str() == Some("host")),
        Kind::Scalar { text, .. } => !node_named_host && text.starts_with("host:"),
        _ => false,
    })
}

/// One end as read: the node's (read as a lab link's end is) or the host's.
enum End {
    Node(RawEndpoint),
    Host {
        name: Sp<String>,
        addresses: Option<Vec<Sp<IpNet>>>,
        mgmt: Option<Span>,
    },
}

impl End {
    fn addresses(&mut self) -> &mut Option<Vec<Sp<IpNet>>> {
        match self {
            End::Node(e) => &mut e.addresses,
            End::Host { addresses, .. } => addresses,
        }
    }
}

/// A host link, in the short form `[r1:eth1, "host:nsl-r1"]` or the long one.
pub fn host_link(sink: &mut Sink, y: &Yaml) -> Option<RawHostLink> {
    let (items, f) = match &y.kind {
        Kind::Seq(items) => (items.as_slice(), None),
        _ => {
            let f = read::fields(sink, y, "a host link", HOST_LINK_KEYS)?;
            let items = read::list(sink, f.value("endpoints")?, "`endpoints`");
            (items, Some(f))
        }
    };
    if items.len() != 2 {
        sink.error(
            Some(y.span),
            format!("a link joins exactly 2 endpoints, found {}", items.len()),
        );
        return None;
    }
    let ends: Vec<Option<End>> = items.iter().map(|i| end(sink, i)).collect();
    let [Some(mut a), Some(mut b)] = <[Option<End>; 2]>::try_from(ends).ok()? else {
        return None;
    };
    if let Some(v) = f.as_ref().and_then(|f| f.value("addresses")) {
        let hint = "give one entry per endpoint, in endpoint order";
        link::spread_addresses(sink, v, vec![a.addresses(), b.addresses()], hint);
    }
    let mtu = f
        .as_ref()
        .and_then(|f| f.value("mtu"))
        .and_then(|v| link::mtu(sink, v));
    let (node, host_end) = match (a, b) {
        (End::Node(n), h @ End::Host { .. }) | (h @ End::Host { .. }, End::Node(n)) => (n, h),
        _ => {
            sink.error(Some(y.span), "a host link joins one node and the host")
                .hint("for example `[r1:eth1, \"host:nsl-r1\"]`");
            return None;
        }
    };
    let End::Host {
        name,
        addresses: host_addresses,
        mgmt,
    } = host_end
    else {
        return None;
    };
    let host_addresses = host_addresses.unwrap_or_default();
    if let (Some(_), Some(a)) = (mgmt, host_addresses.first()) {
        sink.error(
            Some(a.span),
            "the host end of a link to the management bridge holds no address",
        )
        .hint("the bridge holds the host's management addresses; give the node's end one, or none");
    }
    Some(RawHostLink {
        span: y.span,
        node: node.name,
        iface: node.iface,
        addresses: node.addresses.unwrap_or_default(),
        host: name,
        host_addresses,
        mtu,
        mgmt,
    })
}

fn end(sink: &mut Sink, y: &Yaml) -> Option<End> {
    if let Kind::Map(e) = &y.kind {
        if e.iter().any(|(k, _)| k.as_str() == Some("host")) {
            let f = read::fields(sink, y, "a host endpoint", HOST_END_KEYS)?;
            let name = read::string(sink, f.value("host")?, "endpoint `host`")?;
            let mgmt = f
                .value("mgmt")
                .filter(|v| read::boolean(sink, v, "endpoint `mgmt`") == Some(true))
                .map(|v| v.span);
            return Some(End::Host {
                name,
                addresses: f.value("addresses").map(|v| link::addresses(sink, v)),
                mgmt,
            });
        }
        let f = read::fields(sink, y, "a link endpoint", NODE_END_KEYS)?;
        let Some(node) = f.value("node") else {
            sink.error(Some(y.span), "a link endpoint needs `node:` or `host:`");
            return None;
        };
        if f.has("mac") {
            sink.error(f.key_span("mac"), "a host link's MACs are derived")
                .hint("remove `mac:`");
        }
        return link::node_end(sink, y, node, &f).map(End::Node);
    }
    let s = read::string(sink, y, "a link endpoint")?;
    if let Some(name) = s.value.strip_prefix("host:") {
        // Columns count characters, not bytes: a name may hold any.
        let span = link::part_span(&s, 5, name);
        return Some(End::Host {
            name: Sp::new(name.to_string(), span),
            addresses: None,
            mgmt: None,
        });
    }
    Some(End::Node(link::scalar_end(s)))
}

/// The top-level `mgmt:`.
pub fn mgmt(sink: &mut Sink, y: &Yaml) -> Option<RawMgmt> {
    let f = read::fields(sink, y, "`mgmt`", MGMT_KEYS)?;
    let m = RawMgmt {
        span: y.span,
        network: f
            .value("network")
            .and_then(|v| read::string(sink, v, "`mgmt.network`")),
        subnet: f
            .value("subnet")
            .and_then(|v| read::parsed(sink, v, "`mgmt.subnet`", values::parse_prefix)),
        subnet6: f
            .value("subnet6")
            .and_then(|v| read::parsed(sink, v, "`mgmt.subnet6`", values::parse_prefix)),
        iface: f
            .value("iface")
            .and_then(|v| read::string(sink, v, "`mgmt.iface`")),
        bridge: f
            .value("bridge")
            .and_then(|v| read::string(sink, v, "`mgmt.bridge`")),
    };
    if m.subnet.is_none() && m.subnet6.is_none() {
        sink.error(Some(y.span), "`mgmt` needs a `subnet` (or `subnet6`)")
            .hint("for example `mgmt: { subnet: 172.20.20.0/24 }`");
    }
    Some(m)
}

/// A node's `mgmt:` (`false`, or `{ address: 172.20.20.9/24 }`).
pub fn node_mgmt(sink: &mut Sink, y: &Yaml) -> Option<RawNodeMgmt> {
    if let Kind::Scalar { .. } = y.kind {
        return match read::boolean(sink, y, "a node's `mgmt`")? {
            false => Some(RawNodeMgmt::Off(y.span)),
            true => Some(RawNodeMgmt::At {
                span: y.span,
                address: None,
                address6: None,
            }),
        };
    }
    let f = read::fields(sink, y, "a node's `mgmt`", NODE_MGMT_KEYS)?;
    let addr = |sink: &mut Sink, k: &str| {
        f.value(k).and_then(|v| {
            read::parsed(sink, v, &format!("`mgmt.{k}`"), |s| {
                values::parse_cidr(s, true)
            })
        })
    };
    Some(RawNodeMgmt::At {
        span: y.span,
        address: addr(sink, "address"),
        address6: addr(sink, "address6"),
    })
}
