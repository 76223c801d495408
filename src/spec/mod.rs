//! The YAML language: from text to raw, located structs. Reading is forgiving in one way
//! only: it keeps going after a problem so every problem in the file is reported together.
//!
//! serde derive stops at the first error of a struct, so this layer reads a located YAML
//! tree by hand; serde is still how everything leaves nslab (plan JSON, status, reports).

pub mod check;
pub mod link;
pub mod node;
pub mod raw;
pub mod read;
pub mod values;
pub mod yaml;

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
];
const ADDRESSING_KEYS: &[&str] = &["p2p", "lan", "loopback", "ipv6"];

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
    if let Some(v) = f.get("defaults") {
        t.defaults = node::node_spec(sink, v, "`defaults`", true);
    }
    if let Some(v) = f.get("kinds") {
        for (k, spec) in read::entries(sink, v, "`kinds`") {
            let name = read::key(k);
            let what = format!("kind `{}`", name.value);
            t.kinds
                .push((name, node::node_spec(sink, spec, &what, false)));
        }
    }
    match f.get("nodes") {
        Some(v) => {
            for (k, spec) in read::entries(sink, v, "`nodes`") {
                let name = read::key(k);
                let what = format!("node `{}`", name.value);
                t.nodes
                    .push((name, node::node_spec(sink, spec, &what, true)));
            }
        }
        None => {
            sink.error(Some(f.span), "the topology needs `nodes:`")
                .hint("for example `nodes: { h1: {}, h2: {} }`");
        }
    }
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
    let links = match &mut root.kind {
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
    };
    drop(root);
    if let Some(v) = links {
        read::list(sink, &v, "`links`");
        if let yaml::Kind::Seq(items) = v.kind {
            t.links.reserve_exact(items.len());
            for item in items {
                if let Some(l) = link::link(sink, &item) {
                    t.links.push(l);
                }
            }
        }
    }
    t
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
