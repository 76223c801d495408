//! containerlab links to nslab links: the brief form (`endpoints: ["a:eth1", "b:eth1"]`)
//! and the extended `type: veth`, `type: host`, `type: mgmt-net` and `type: macvlan`. Ends without addresses stay unnumbered, as in
//! containerlab; the MTU is containerlab's 9500 unless the link sets one.

use crate::clab::map::Role;
use crate::clab::schema::ClabFile;
use crate::clab::tree::{map, plain, seq, text};
use crate::diag::{Sink, Span};
use crate::spec::read;
use crate::spec::yaml::{Kind, Yaml};

/// containerlab's default MTU for veth links.
pub const CLAB_MTU: u32 = 9500;

const LINK_KEYS: &[&str] = &[
    "type",
    "endpoints",
    "endpoint",
    "mtu",
    "vars",
    "labels",
    "ipv4",
    "ipv6",
    "host-interface",
    "mode",
    "remote",
    "vni",
    "dst-port",
    "src-port",
    "udp-port",
];
const ENDPOINT_KEYS: &[&str] = &["node", "interface", "mac", "ipv4", "ipv6", "vars"];
/// Pseudo-nodes of the brief form that stand for the host's own interfaces.
const HOST_ENDS: &[&str] = &["host", "mgmt-net", "macvlan"];

/// One end as read: node, interface, MAC and addresses, each located.
struct End {
    span: Span,
    node: String,
    iface: Option<String>,
    mac: Option<Yaml>,
    addrs: Vec<Yaml>,
}

pub fn links(sink: &mut Sink, c: &ClabFile, roles: &[(String, Role)]) -> Vec<Yaml> {
    c.links
        .iter()
        .filter_map(|l| link(sink, l, roles))
        .collect()
}

fn link(sink: &mut Sink, y: &Yaml, roles: &[(String, Role)]) -> Option<Yaml> {
    let f = read::fields(sink, y, "a link", LINK_KEYS)?;
    let kind = f
        .value("type")
        .and_then(|t| read::string(sink, t, "link `type`"));
    if let Some(t) = &kind
        && matches!(t.value.as_str(), "host" | "mgmt-net")
    {
        return host_side(sink, &f, y, &t.value);
    }
    if let Some(t) = &kind
        && t.value == "macvlan"
    {
        return macvlan_side(sink, &f, y, roles);
    }
    if let Some(t) = &kind
        && t.value != "veth"
    {
        sink.warning(
            Some(t.span),
            format!("a link of type `{}` is left out", t.value),
        )
        .hint(match t.value.as_str() {
            "vxlan" | "vxlan-stitch" => {
                "it reaches a remote endpoint outside the lab; nslab makes the VXLANs of a lab spread over machines itself, from `hosts:` (see the README's Multi-host labs)"
            }
            _ => "nslab makes veth links only",
        });
        return None;
    }
    if let Some(v) = f.key_span("vars") {
        sink.warning(Some(v), "link `vars` are not used")
            .hint("they feed vendor configuration templates");
    }
    let Some(eps) = f.value("endpoints") else {
        sink.error(Some(y.span), "a link needs `endpoints:`");
        return None;
    };
    let items = read::list(sink, eps, "`endpoints`");
    if items.len() != 2 {
        sink.error(
            Some(eps.span),
            format!("a veth link joins 2 endpoints, found {}", items.len()),
        );
        return None;
    }
    let mut ends: Vec<End> = Vec::new();
    for item in items {
        ends.push(end(sink, item, kind.is_some())?);
    }
    link_addrs(sink, &f, &mut ends);
    if let Some(h) = ends
        .iter()
        .position(|e| e.node == "host" || e.node == "mgmt-net")
    {
        let (host, node) = (&ends[h], &ends[1 - h]);
        return host_link(sink, node, host, f.value("mtu"), y);
    }
    if let Some(out) = macvlan_link(&ends, f.value("mtu"), None, roles, y.span) {
        return Some(out);
    }
    for e in &ends {
        if HOST_ENDS.contains(&e.node.as_str()) {
            sink.warning(Some(e.span), format!("a link to `{}:` is left out", e.node))
                .hint("it reaches into the host's network; nslab does not have such links yet");
            return None;
        }
        match roles.iter().find(|(n, _)| *n == e.node) {
            Some((_, Role::Host)) => {
                sink.warning(
                    Some(e.span),
                    format!("a link to the host node `{}` is left out", e.node),
                );
                return None;
            }
            // Its node is refused with an error of its own (a vendor kind, say): a second
            // error here would call a declared node unknown.
            Some((_, Role::Invalid)) => return None,
            _ => {}
        }
    }
    let numbered = ends.iter().any(|e| !e.addrs.is_empty());
    let out_ends: Vec<Yaml> = ends.iter().map(|e| endpoint(e, roles, numbered)).collect();
    let mtu = match f.value("mtu") {
        Some(m) => m.clone(),
        None => plain(CLAB_MTU, y.span),
    };
    let mut fields = vec![("endpoints", seq(out_ends, y.span)), ("mtu", mtu)];
    if !numbered {
        fields.push(("unnumbered", plain(true, y.span)));
    }
    Some(map(fields, y.span))
}

/// The link's `ipv4:` and `ipv6:` lists, one address per endpoint, onto its ends.
fn link_addrs(sink: &mut Sink, f: &read::Fields, ends: &mut [End]) {
    for (key, _) in [("ipv4", 0), ("ipv6", 1)] {
        if let Some(v) = f.value(key) {
            let per = read::list(sink, v, &format!("link `{key}`"));
            if per.len() != 2 {
                sink.error(
                    Some(v.span),
                    format!("link `{key}` needs one address per endpoint"),
                );
                continue;
            }
            for (e, a) in ends.iter_mut().zip(per) {
                e.addrs.push(a.clone());
            }
        }
    }
}

/// `["r1:eth1", "macvlan:enp0s3"]`: nslab's macvlan end on the host's interface (mode
/// bridge, containerlab's default). No MTU unless written: a macvlan cannot be larger
/// than its parent, which containerlab's 9500 usually is.
fn macvlan_link(
    ends: &[End],
    mtu: Option<&Yaml>,
    mode: Option<&Yaml>,
    roles: &[(String, Role)],
    span: Span,
) -> Option<Yaml> {
    let [a, b] = ends else { return None };
    let (node, mv) = match (a.node.as_str(), b.node.as_str()) {
        (_, "macvlan") => (a, b),
        ("macvlan", _) => (b, a),
        _ => return None,
    };
    let parent = mv.iface.clone()?;
    if HOST_ENDS.contains(&node.node.as_str()) {
        return None;
    }
    let end = endpoint(node, roles, !node.addrs.is_empty());
    let mut far = vec![("macvlan", text(parent, mv.span))];
    if let Some(m) = mode {
        far.push(("mode", m.clone()));
    }
    let mut fields = vec![("endpoints", seq(vec![end, map(far, mv.span)], span))];
    if let Some(m) = mtu {
        fields.push(("mtu", m.clone()));
    }
    Some(map(fields, span))
}

/// An end: `"node:iface"` in the brief form, a mapping in the extended one.
fn end(sink: &mut Sink, y: &Yaml, extended: bool) -> Option<End> {
    if !extended || !matches!(y.kind, Kind::Map(_)) {
        let s = read::string(sink, y, "a link endpoint")?;
        let (node, iface) = match s.value.split_once(':') {
            Some((n, i)) => (n.to_string(), Some(i.to_string())),
            None => (s.value.clone(), None),
        };
        return Some(End {
            span: y.span,
            node,
            iface,
            mac: None,
            addrs: Vec::new(),
        });
    }
    let f = read::fields(sink, y, "a link endpoint", ENDPOINT_KEYS)?;
    let node = f
        .value("node")
        .and_then(|n| read::string(sink, n, "endpoint `node`"));
    let Some(node) = node else {
        sink.error(Some(y.span), "a link endpoint needs `node:`");
        return None;
    };
    let mut addrs = Vec::new();
    for key in ["ipv4", "ipv6"] {
        if let Some(v) = f.value(key) {
            addrs.extend(read::one_or_many(v).iter().cloned());
        }
    }
    Some(End {
        span: y.span,
        node: node.value,
        iface: f
            .value("interface")
            .and_then(|v| v.as_str().map(str::to_string)),
        mac: f.value("mac").cloned(),
        addrs,
    })
}

fn endpoint(e: &End, roles: &[(String, Role)], numbered: bool) -> Yaml {
    let bridge = matches!(
        roles.iter().find(|(n, _)| *n == e.node),
        Some((_, Role::Bridge))
    );
    if bridge {
        // A bridge's port is named by nslab; containerlab's name is the host's.
        return text(e.node.clone(), e.span);
    }
    let short = match &e.iface {
        Some(i) => format!("{}:{i}", e.node),
        None => e.node.clone(),
    };
    if e.mac.is_none() && !numbered {
        return text(short, e.span);
    }
    let mut fields = vec![("node", text(e.node.clone(), e.span))];
    if let Some(i) = &e.iface {
        fields.push(("iface", text(i.clone(), e.span)));
    }
    if let Some(m) = &e.mac {
        fields.push(("mac", m.clone()));
    }
    if numbered {
        fields.push(("addresses", seq(e.addrs.clone(), e.span)));
    }
    map(fields, e.span)
}

/// `type: macvlan`: the node's `endpoint` on the host's `host-interface`, in `mode`
/// (bridge, containerlab's default, unless written). nslab reads the mode, so one it does
/// not make (containerlab's `source`) is an error located here.
fn macvlan_side(
    sink: &mut Sink,
    f: &read::Fields,
    y: &Yaml,
    roles: &[(String, Role)],
) -> Option<Yaml> {
    let Some(ep) = f.value("endpoint") else {
        sink.error(Some(y.span), "a `macvlan` link needs `endpoint:`");
        return None;
    };
    let node = end(sink, ep, true)?;
    let Some(h) = f.value("host-interface") else {
        sink.error(Some(y.span), "a `macvlan` link needs `host-interface:`")
            .hint("the host's interface the macvlan sits on, for example `host-interface: enp0s3`");
        return None;
    };
    let Some(parent) = h.as_str() else {
        sink.error(Some(h.span), "`host-interface` is an interface name");
        return None;
    };
    let mv = End {
        span: h.span,
        node: "macvlan".to_string(),
        iface: Some(parent.to_string()),
        mac: None,
        addrs: Vec::new(),
    };
    macvlan_link(&[node, mv], f.value("mtu"), f.value("mode"), roles, y.span)
}

/// `type: host` and `type: mgmt-net`: the node's `endpoint` and the `host-interface`.
fn host_side(sink: &mut Sink, f: &read::Fields, y: &Yaml, kind: &str) -> Option<Yaml> {
    let Some(ep) = f.value("endpoint") else {
        sink.error(Some(y.span), format!("a `{kind}` link needs `endpoint:`"));
        return None;
    };
    let node = end(sink, ep, true)?;
    let Some(h) = f.value("host-interface") else {
        sink.error(
            Some(y.span),
            format!("a `{kind}` link needs `host-interface:`"),
        );
        return None;
    };
    let host = End {
        span: h.span,
        node: kind.to_string(),
        iface: h.as_str().map(str::to_string),
        mac: None,
        addrs: Vec::new(),
    };
    host_link(sink, &node, &host, f.value("mtu"), y)
}

/// A link to `host:IF` becomes an nslab host link with the host's end named IF; one to
/// `mgmt-net:IF` too, its host end a port of the management bridge.
fn host_link(
    sink: &mut Sink,
    node: &End,
    host: &End,
    mtu: Option<&Yaml>,
    y: &Yaml,
) -> Option<Yaml> {
    let Some(hname) = &host.iface else {
        sink.error(
            Some(host.span),
            format!("a link to `{}` names the host's interface", host.node),
        )
        .hint(format!("for example `{}:r1-eth1`", host.node));
        return None;
    };
    if node.mac.is_some() {
        sink.warning(
            Some(node.span),
            "the MAC of a link to the host is derived by nslab",
        );
    }
    let short = match &node.iface {
        Some(i) => format!("{}:{i}", node.node),
        None => node.node.clone(),
    };
    let node_end = match node.addrs.is_empty() {
        true => text(short, node.span),
        false => {
            let mut fields = vec![("node", text(node.node.clone(), node.span))];
            if let Some(i) = &node.iface {
                fields.push(("iface", text(i.clone(), node.span)));
            }
            fields.push(("addresses", seq(node.addrs.clone(), node.span)));
            map(fields, node.span)
        }
    };
    // containerlab's `mgmt-net:IF`: a veth whose host end, named IF, is a port of the
    // management bridge, beside the node's own management interface.
    let host_end = match host.node == "mgmt-net" {
        true => map(
            vec![
                ("host", text(hname.clone(), host.span)),
                ("mgmt", plain(true, host.span)),
            ],
            host.span,
        ),
        false => text(format!("host:{hname}"), host.span),
    };
    let mut fields = vec![("endpoints", seq(vec![node_end, host_end], y.span))];
    fields.push((
        "mtu",
        mtu.cloned().unwrap_or_else(|| plain(CLAB_MTU, y.span)),
    ));
    Some(map(fields, y.span))
}
