//! Reading a node's own interfaces (`interfaces:`: dummy and vlan) and the macvlan end of
//! a link (`{ macvlan: IF, mode: M }`). The model checks names, parents and VLAN ids.

use crate::diag::{Sink, Span};
use crate::kinds::{DeviceKind, MacvlanMode};
use crate::spec::raw::{RawEndpoint, Sp};
use crate::spec::read;
use crate::spec::values;
use crate::spec::yaml::{Kind, Yaml};

const DEVICE_KEYS: &[&str] = &["kind", "parent", "id", "addresses", "mac", "mtu"];
const MACVLAN_KEYS: &[&str] = &["macvlan", "mode", "iface"];

/// One entry of `interfaces:` as written.
#[derive(Debug, Clone)]
pub struct RawDevice {
    pub span: Span,
    pub name: Sp<String>,
    pub kind: Sp<DeviceKind>,
    /// A vlan's parent: an interface of the same node.
    pub parent: Option<Sp<String>>,
    /// A vlan's id, checked to 1-4094 by the model (so every problem is located there).
    pub id: Option<Sp<i64>>,
    pub addresses: Vec<Sp<ipnet::IpNet>>,
    pub mac: Option<Sp<[u8; 6]>>,
    pub mtu: Option<Sp<u32>>,
}

/// `interfaces:`: a mapping from interface name to its settings.
pub fn interfaces(sink: &mut Sink, y: &Yaml) -> Vec<RawDevice> {
    let mut out = Vec::new();
    for (k, v) in read::entries(sink, y, "`interfaces`") {
        let name = read::key(k);
        let what = format!("interface `{}`", name.value);
        let Some(f) = read::fields(sink, v, &what, DEVICE_KEYS) else {
            continue;
        };
        let Some(kind_y) = f.value("kind") else {
            sink.error(Some(v.span), format!("{what} needs `kind:`"))
                .hint("`kind: dummy`, or `kind: vlan` with `parent:` and `id:`");
            continue;
        };
        let Some(kind) = read::parsed(sink, kind_y, "interface `kind`", |s| match s {
            "dummy" => Ok(DeviceKind::Dummy),
            "vlan" => Ok(DeviceKind::Vlan),
            "macvlan" => Err(
                "a macvlan is a link end: `endpoints: [r1:eth1, { macvlan: eth0 }]`".to_string(),
            ),
            _ => Err(format!("`{s}` is not one of dummy, vlan")),
        }) else {
            continue;
        };
        out.push(RawDevice {
            span: v.span,
            name,
            kind,
            parent: f
                .value("parent")
                .and_then(|p| read::string(sink, p, "`parent`")),
            id: f
                .value("id")
                .and_then(|i| read::int(sink, i, "vlan `id`", i64::MIN, i64::MAX)),
            addresses: f
                .value("addresses")
                .map(|a| {
                    read::one_or_many(a)
                        .iter()
                        .filter_map(|a| {
                            read::parsed(sink, a, "address", |s| values::parse_cidr(s, true))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            mac: f
                .value("mac")
                .and_then(|m| read::parsed(sink, m, "MAC address", values::parse_mac)),
            mtu: f
                .value("mtu")
                .and_then(|m| read::int(sink, m, "`mtu`", 68, 65535))
                .map(|m| Sp::new(m.value as u32, m.span)),
        });
    }
    out
}

/// Whether a link endpoint is a macvlan end (a mapping with a `macvlan` key).
pub fn is_macvlan(y: &Yaml) -> bool {
    matches!(&y.kind, Kind::Map(entries) if entries.iter().any(|(k, _)| k.as_str() == Some("macvlan")))
}

/// `{ macvlan: IF, mode: M }`: a macvlan of the host's interface IF (mode `bridge` unless
/// written). The node end of its link carries the addresses, MAC and name.
pub fn macvlan_end(sink: &mut Sink, y: &Yaml) -> Option<RawEndpoint> {
    let f = read::fields(sink, y, "a macvlan end", MACVLAN_KEYS)?;
    if let Some(i) = f.value("iface") {
        sink.error(Some(i.span), "a macvlan end takes no `iface`")
            .hint("name the interface on the node end, like `r1:eth1`");
        return None;
    }
    let parent = read::string(sink, f.value("macvlan")?, "`macvlan`")?;
    let mode = match f.value("mode") {
        Some(m) => read::parsed(sink, m, "macvlan `mode`", |s| {
            MacvlanMode::ALL
                .into_iter()
                .find(|k| k.name() == s)
                .ok_or_else(|| format!("`{s}` is not one of bridge, private, vepa, passthru"))
        })?,
        None => Sp::new(MacvlanMode::Bridge, y.span),
    };
    Some(RawEndpoint {
        span: y.span,
        name: parent,
        iface: None,
        addresses: None,
        mac: None,
        impair: None,
        macvlan: Some(mode),
    })
}
