//! The YAML language: from text to raw, located structs. Reading is forgiving in one way
//! only: it keeps going after a problem so every problem in the file is reported together.
//!
//! serde derive stops at the first error of a struct, so this layer reads a located YAML
//! tree by hand; serde is still how everything leaves nslab (plan JSON, status, reports).

pub mod attrs;
pub mod check;
pub mod device;
pub mod hostnet;
pub mod hosts;
pub mod link;
pub mod node;
pub mod raw;
pub mod read;
pub mod values;
pub mod yaml;

#[cfg(test)]
mod documented;

use crate::diag::Sink;
use raw::*;
use yaml::Yaml;

pub const TOP_KEYS: &[&str] = &[
    "name",
    "addressing",
    "routing",
    "defaults",
    "kinds",
    "nodes",
    "bridges",
    "links",
    "daemonsets",
    "tests",
    "mgmt",
    "logs",
    "hosts",
    "placement",
    "vxlan",
];
const ADDRESSING_KEYS: &[&str] = &["p2p", "lan", "loopback", "ipv6"];
const LOGS_KEYS: &[&str] = &["max_size", "keep"];
/// Bounds of `logs.max_size`: a part must hold some lines, and a few parts of every
/// process of a lab must fit the tmpfs they are written to.
pub const LOG_SIZE_MIN: u64 = 4 << 10;
pub const LOG_SIZE_MAX: u64 = 1 << 30;
pub const LOG_KEEP_MAX: i64 = 100;

/// Parses the text of a topology. Problems go to `sink`; the result is as complete as the
/// input allows, so the model layer can report its own problems too.
pub fn read_topology(sink: &mut Sink, source: &str) -> Option<RawTopology> {
    let root = match yaml::parse(source, yaml::Limits::default()) {
        Ok(root) => root,
        Err(diags) => {
            sink.diagnostics.extend(diags);
            return None;
        }
    };
    Some(topology(sink, root))
}

/// Reads an already parsed tree (a containerlab file mapped to nslab's language keeps
/// the positions of its own text).
pub fn read_tree(sink: &mut Sink, root: Yaml) -> RawTopology {
    topology(sink, root)
}

fn logs(sink: &mut Sink, y: &Yaml) -> RawLogs {
    let mut l = RawLogs::default();
    let Some(f) = read::fields(sink, y, "`logs`", LOGS_KEYS) else {
        return l;
    };
    l.max_size = f.value("max_size").and_then(|v| {
        read::parsed(sink, v, "`logs.max_size`", |s| {
            let bytes = values::parse_size(s)?;
            if !(LOG_SIZE_MIN..=LOG_SIZE_MAX).contains(&bytes) {
                return Err(format!("`{s}` is out of range: use 4K to 1G"));
            }
            Ok(bytes)
        })
    });
    l.keep = f
        .value("keep")
        .and_then(|v| read::int(sink, v, "`logs.keep`", 0, LOG_KEEP_MAX))
        .map(|k| Sp::new(k.value as u64, k.span));
    l
}

fn topology(sink: &mut Sink, mut root: Yaml) -> RawTopology {
    let y = &root;
    let mut t = RawTopology::default();
    let Some(f) = read::fields(sink, y, "the topology", TOP_KEYS) else {
        return t;
    };
    match f.value("name") {
        Some(v) => t.name = read::string(sink, v, "`name`"),
        None => {
            sink.error(Some(f.span), "the topology needs a `name:`")
                .hint(
                    "add `name: mylab` (lowercase letters, digits and `-`, at most 12 characters)",
                );
        }
    }
    lab_settings(sink, &f, &mut t);
    node_sections(sink, &f, &mut t);
    if let Some(v) = f.get("bridges") {
        for (k, spec) in read::entries(sink, v, "`bridges`") {
            let name = read::key(k);
            let what = format!("bridge `{}`", name.value);
            t.bridges.push((name, link::bridge(sink, spec, &what)));
        }
    }
    if let Some(v) = f.get("daemonsets") {
        for item in read::list(sink, v, "`daemonsets`") {
            if let Some(d) = daemonset(sink, item) {
                t.daemonsets.push(d);
            }
        }
    }
    if let Some(v) = f.get("tests") {
        for item in read::list(sink, v, "`tests`") {
            if let Some(c) = check::check(sink, item) {
                t.tests.push(c);
            }
        }
    }
    // Links are most of a large file: read them last, from the owned tree, and free each
    // one as it is read so the tree and the raw links never both exist whole.
    let links = take_links(&mut root);
    drop(root);
    if let Some(v) = links {
        read_links(sink, v, &mut t);
    }
    t
}

/// The lab-wide settings: address pools, routing, logs, hosts and placement, VXLAN and
/// the management network.
fn lab_settings(sink: &mut Sink, f: &read::Fields, t: &mut RawTopology) {
    if let Some(v) = f.get("addressing") {
        t.addressing = addressing(sink, v);
    }
    t.routing = f.value("routing").and_then(|v| {
        read::parsed(sink, v, "`routing`", |s| match s {
            "none" | "manual" => Ok(RoutingMode::None),
            "static" => Ok(RoutingMode::Static),
            _ => Err(format!("`{s}` is not `none` or `static`")),
        })
    });
    if let Some(v) = f.get("logs") {
        t.logs = logs(sink, v);
    }
    if let Some(v) = f.get("hosts") {
        t.hosts = hosts::hosts(sink, v);
    }
    t.placement = f.value("placement").and_then(|v| hosts::placement(sink, v));
    if let Some(v) = f.get("vxlan") {
        t.vxlan = hosts::vxlan(sink, v);
    }
    if let Some(v) = f.get("mgmt") {
        t.mgmt = hostnet::mgmt(sink, v);
    }
}

/// `defaults`, `kinds` and `nodes`: node specs, merged later (node > kind > defaults).
fn node_sections(sink: &mut Sink, f: &read::Fields, t: &mut RawTopology) {
    if let Some(v) = f.get("defaults") {
        per_node_only(sink, v, "`defaults`");
        t.defaults = node::node_spec(sink, v, "`defaults`", true);
    }
    if let Some(v) = f.get("kinds") {
        for (k, spec) in read::entries(sink, v, "`kinds`") {
            let name = read::key(k);
            let what = format!("kind `{}`", name.value);
            per_node_only(sink, spec, &what);
            t.kinds
                .push((name, node::node_spec(sink, spec, &what, false)));
        }
    }
    match f.get("nodes") {
        Some(v) => {
            for (k, spec) in read::entries(sink, v, "`nodes`") {
                let name = read::key(k);
                let what = format!("node `{}`", name.value);
                if let Some(m) = node_mgmt(sink, spec) {
                    t.node_mgmt.push((name.clone(), m));
                }
                t.nodes
                    .push((name, node::node_spec(sink, spec, &what, true)));
            }
        }
        None => {
            sink.error(Some(f.span), "the topology needs `nodes:`")
                .hint("for example `nodes: { h1: {}, h2: {} }`");
        }
    }
}

/// Takes `links` out of the tree, leaving null in its place.
fn take_links(root: &mut Yaml) -> Option<Yaml> {
    match &mut root.kind {
        yaml::Kind::Map(entries) => entries
            .iter_mut()
            .find(|(k, _)| k.as_str() == Some("links"))
            .map(|(_, v)| {
                std::mem::replace(
                    v,
                    Yaml {
                        kind: yaml::Kind::Null,
                        span: v.span,
                    },
                )
            }),
        _ => None,
    }
}

/// The links, each freed as it is read; a link with `host` as an end is a host link
/// unless a node is named `host`.
fn read_links(sink: &mut Sink, v: Yaml, t: &mut RawTopology) {
    read::list(sink, &v, "`links`");
    if let yaml::Kind::Seq(items) = v.kind {
        t.links.reserve_exact(items.len());
        let node_named_host = t.nodes.iter().any(|(n, _)| n.value == "host");
        for item in items {
            if hostnet::is_host_link(&item, node_named_host) {
                t.host_links.extend(hostnet::host_link(sink, &item));
            } else if let Some(l) = link::link(sink, &item) {
                t.links.push(l);
            }
        }
    }
}

/// A node's own `mgmt:` key, read apart from the rest of its spec.
fn node_mgmt(sink: &mut Sink, spec: &Yaml) -> Option<hostnet::RawNodeMgmt> {
    let yaml::Kind::Map(entries) = &spec.kind else {
        return None;
    };
    let (_, v) = entries.iter().find(|(k, _)| k.as_str() == Some("mgmt"))?;
    hostnet::node_mgmt(sink, v)
}

/// `mgmt:` chooses a node's own management address, so it is not merged from `defaults`
/// or a kind.
fn per_node_only(sink: &mut Sink, spec: &Yaml, what: &str) {
    if let yaml::Kind::Map(entries) = &spec.kind
        && let Some((k, _)) = entries.iter().find(|(k, _)| k.as_str() == Some("mgmt"))
    {
        sink.error(Some(k.span), format!("{what} cannot set `mgmt`"))
            .hint("set `mgmt:` on each node, or at the top level for the whole lab");
    }
}

fn addressing(sink: &mut Sink, y: &Yaml) -> RawAddressing {
    let mut a = RawAddressing::default();
    let Some(f) = read::fields(sink, y, "`addressing`", ADDRESSING_KEYS) else {
        return a;
    };
    let mut pool = |key: &str| {
        f.value(key).and_then(|v| {
            read::parsed(
                sink,
                v,
                &format!("`addressing.{key}` pool"),
                values::parse_prefix,
            )
        })
    };
    a.p2p = pool("p2p");
    a.lan = pool("lan");
    a.loopback = pool("loopback");
    a.ipv6 = pool("ipv6");
    a
}

fn daemonset(sink: &mut Sink, y: &Yaml) -> Option<RawDaemonSet> {
    let keys: Vec<&str> = node::PROCESS_KEYS
        .iter()
        .copied()
        .chain(["selector"])
        .collect();
    let (process, f) = node::process(sink, y, "a daemonset", &keys)?;
    let selector = match f.value("selector") {
        Some(s) => read::string_map(sink, s, "daemonset `selector`"),
        None => {
            sink.error(Some(y.span), "a daemonset needs `selector:`")
                .hint("for example `selector: { role: core }`");
            return None;
        }
    };
    Some(RawDaemonSet {
        span: y.span,
        selector,
        process,
    })
}
