//! containerlab's management network to nslab's `mgmt:`. containerlab puts every lab on
//! one for every lab; nslab does only when the file asks for it (a top-level `mgmt:`, a
//! node's `mgmt-ipv4`/`mgmt-ipv6`, or a `mgmt-net:` link), because it is a bridge on the
//! host, and a lab that never names it should leave the host untouched. Like
//! containerlab's, the network is shared: `mgmt.network`, or `clab` by default, so two
//! labs on the default network come up side by side on one bridge.

use crate::clab::inherit::Resolved;
use crate::clab::schema::ClabFile;
use crate::clab::tree::{map, text};
use crate::diag::Sink;
use crate::spec::read;
use crate::spec::yaml::{Kind, Yaml};

/// containerlab's management subnets when its `mgmt:` leaves them out.
pub const CLAB_SUBNET: &str = "172.20.20.0/24";
pub const CLAB_SUBNET6: &str = "3fff:172:20:20::/64";
/// The node-side name containerlab gives the management interface.
pub const CLAB_IFACE: &str = "eth0";
/// containerlab's default management network, which every lab without a `network` of
/// its own shares.
pub const CLAB_NETWORK: &str = "clab";

const MGMT_KEYS: &[&str] = &[
    "network",
    "bridge",
    "ipv4-subnet",
    "ipv6-subnet",
    "ipv4-gw",
    "ipv6-gw",
    "ipv4-range",
    "ipv6-range",
    "mtu",
    "external-access",
    "driver-opts",
];

/// Whether a link end names the management network (`mgmt-net:IF`).
fn is_mgmt_end(y: &Yaml) -> bool {
    y.as_str().is_some_and(|s| s.starts_with("mgmt-net:"))
}

/// Whether the file asks for the management network.
pub fn wanted(c: &ClabFile, nodes: &[Resolved]) -> bool {
    let link = c.links.iter().any(|l| match &l.kind {
        Kind::Map(e) => e.iter().any(|(k, v)| match k.as_str() {
            Some("endpoints") => {
                matches!(&v.kind, Kind::Seq(items) if items.iter().any(is_mgmt_end))
            }
            Some("type") => v.as_str() == Some("mgmt-net"),
            _ => false,
        }),
        _ => false,
    });
    let node = nodes
        .iter()
        .any(|r| r.field("mgmt-ipv4").is_some() || r.field("mgmt-ipv6").is_some());
    c.mgmt.is_some() || link || node
}

/// nslab's `mgmt:` for the file: containerlab's subnets (or its defaults) and `bridge`,
/// its interface name `eth0`.
pub fn top(sink: &mut Sink, c: &ClabFile) -> Yaml {
    let at = c.mgmt.as_ref().map_or(c.span, |m| m.span);
    let f = c
        .mgmt
        .as_ref()
        .and_then(|m| read::fields(sink, m, "`mgmt`", MGMT_KEYS));
    let value = |k: &str| f.as_ref().and_then(|f| f.value(k)).cloned();
    let mut out = vec![
        (
            "network",
            value("network").unwrap_or_else(|| text(CLAB_NETWORK, at)),
        ),
        (
            "subnet",
            value("ipv4-subnet").unwrap_or_else(|| text(CLAB_SUBNET, at)),
        ),
        (
            "subnet6",
            value("ipv6-subnet").unwrap_or_else(|| text(CLAB_SUBNET6, at)),
        ),
        ("iface", text(CLAB_IFACE, at)),
    ];
    if let Some(b) = value("bridge") {
        out.push(("bridge", b));
    }
    if let Some(f) = &f {
        for key in MGMT_KEYS
            .iter()
            .filter(|k| !matches!(**k, "network" | "bridge" | "ipv4-subnet" | "ipv6-subnet"))
        {
            if let Some(span) = f.key_span(key) {
                sink.warning(Some(span), format!("`mgmt.{key}` is not used"))
                    .hint("nslab's management network is a bridge on the host holding the subnets' first addresses, without NAT or a default route in the nodes");
            }
        }
    }
    map(out, at)
}

/// A node's `mgmt:` from its `mgmt-ipv4`/`mgmt-ipv6`, if it sets either.
pub fn node(r: &Resolved) -> Option<Yaml> {
    let mut out = Vec::new();
    if let Some(a) = r.field("mgmt-ipv4") {
        out.push(("address", a.clone()));
    }
    if let Some(a) = r.field("mgmt-ipv6") {
        out.push(("address6", a.clone()));
    }
    (!out.is_empty()).then(|| map(out, r.def.span))
}
