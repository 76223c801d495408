//! The first stage: the lab's name, every node's spec merged over the defaults and its
//! kind, and the bridges' names, which share the vertex namespace with the nodes'.

use std::collections::HashMap;

use super::super::merge;
use super::super::names::{check_ifname, check_lab_name, check_node_name};
use crate::diag::{Sink, did_you_mean};
use crate::spec::raw::*;

/// Nodes by name (their index in `Specs::specs`), and each node's merged spec.
pub(super) struct Specs {
    pub names: HashMap<String, usize>,
    pub specs: Vec<(Sp<String>, RawNodeSpec)>,
}

pub(super) fn lab_name(sink: &mut Sink, raw: &RawTopology) -> String {
    match &raw.name {
        Some(n) => {
            if let Err(msg) = check_lab_name(&n.value) {
                sink.error(Some(n.span), msg)
                    .hint("lab names are lowercase letters, digits and `-`, at most 12 characters, like `ospf-ring`");
            }
            n.value.clone()
        }
        None => String::new(),
    }
}

/// Names nslab prints but does not otherwise restrict (kinds, labels, checks) hold no
/// control or format character: `nslab status`, `test` and errors would show another
/// name than the one written (U+202E reverses what follows it). Node, bridge, lab and
/// interface names are plainer still; process and user names are checked with them.
pub(super) fn shown_names(sink: &mut Sink, raw: &RawTopology) {
    let mut named: Vec<(&str, &Sp<String>)> = Vec::new();
    named.extend(raw.kinds.iter().map(|(k, _)| ("kind name", k)));
    let specs = std::iter::once(&raw.defaults)
        .chain(raw.kinds.iter().map(|(_, s)| s))
        .chain(raw.nodes.iter().map(|(_, s)| s));
    for spec in specs {
        for (k, v) in &spec.labels {
            named.push(("label", k));
            named.push(("label value", v));
        }
    }
    for ds in &raw.daemonsets {
        for (k, v) in &ds.selector {
            named.push(("label", k));
            named.push(("label value", v));
        }
    }
    named.extend(
        raw.tests
            .iter()
            .filter_map(|t| t.name.as_ref())
            .map(|n| ("check name", n)),
    );
    for (what, name) in named {
        if let Some(c) = name
            .value
            .chars()
            .find(|&c| super::super::names::is_hidden(c))
        {
            sink.error(
                Some(name.span),
                format!(
                    "{what} `{}` holds {}",
                    name.value.escape_debug(),
                    super::super::names::describe(c)
                ),
            )
            .hint("names are printed as written: use visible characters only (`\\u{202e}` and other bidi or zero-width characters make a name read as another)");
        }
    }
}

/// Kinds, then nodes merged over defaults and their kind (node > kind > defaults).
pub(super) fn nodes(sink: &mut Sink, raw: &RawTopology) -> Specs {
    let mut kinds: HashMap<&str, &RawNodeSpec> = HashMap::new();
    for (name, spec) in &raw.kinds {
        kinds.entry(name.value.as_str()).or_insert(spec);
    }
    let mut node_names: HashMap<String, usize> = HashMap::new();
    let mut specs: Vec<(Sp<String>, RawNodeSpec)> = Vec::new();
    for (name, spec) in &raw.nodes {
        if node_names.contains_key(&name.value) {
            continue; // reported as a duplicate key by the YAML layer
        }
        if let Err(msg) = check_node_name(&name.value) {
            sink.error(Some(name.span), format!("invalid node name: {msg}"))
                .hint("node names are letters, digits, `_`, `-` and `.`, like `r1` or `leaf-2`");
        }
        let kind_ref = spec.kind.as_ref().or(raw.defaults.kind.as_ref());
        let base = match kind_ref {
            Some(k) => match kinds.get(k.value.as_str()) {
                Some(kspec) => merge::merge(&raw.defaults, kspec),
                None => {
                    let d = sink.error(
                        Some(k.span),
                        format!("node `{}` has unknown kind `{}`", name.value, k.value),
                    );
                    match did_you_mean(&k.value, kinds.keys().copied()) {
                        _ if is_bridge_kind(&k.value) => d.hint(format!(
                            "a bridge is not a node: declare `{}` under `bridges:` and link nodes to it, like `- [h1:eth0, {}]`",
                            name.value, name.value
                        )),
                        Some(s) => d.hint(format!("did you mean `{s}`?")),
                        None if kinds.is_empty() => d.hint("declare it under `kinds:`"),
                        None => {
                            let mut known: Vec<&str> = kinds.keys().copied().collect();
                            known.sort();
                            d.hint(format!("known kinds: {}", known.join(", ")))
                        }
                    };
                    raw.defaults.clone()
                }
            },
            None => raw.defaults.clone(),
        };
        node_names.insert(name.value.clone(), specs.len());
        specs.push((name.clone(), merge::merge(&base, spec)));
    }
    if raw.nodes.is_empty() && raw.name.is_some() {
        sink.error(
            raw.name.as_ref().map(|n| n.span),
            "the topology has no nodes",
        )
        .hint("add at least one node under `nodes:`");
    }

    Specs {
        names: node_names,
        specs,
    }
}

/// Kinds other tools use for a switch (containerlab's `bridge` and `ovs-bridge`): in
/// nslab a bridge is declared under `bridges:`, not as a node.
fn is_bridge_kind(kind: &str) -> bool {
    let k = kind.to_ascii_lowercase();
    matches!(
        k.as_str(),
        "bridge" | "ovs-bridge" | "linux-bridge" | "switch"
    )
}

/// Bridges by name (their index in `raw.bridges`; a repeated name keeps the first).
pub(super) fn bridges(sink: &mut Sink, raw: &RawTopology, nodes: &Specs) -> HashMap<String, usize> {
    let (node_names, specs) = (&nodes.names, &nodes.specs);
    let mut bridge_names: HashMap<String, usize> = HashMap::new();
    for (i, (name, _)) in raw.bridges.iter().enumerate() {
        if bridge_names.contains_key(&name.value) {
            continue;
        }
        if let Err(msg) = check_node_name(&name.value).and_then(|_| check_ifname(&name.value)) {
            sink.error(Some(name.span), format!("invalid bridge name: {msg}"));
        }
        if let Some(&n) = node_names.get(&name.value) {
            sink.error(
                Some(name.span),
                format!("`{}` is both a node and a bridge", name.value),
            )
            .note(specs[n].0.span, "the node")
            .hint("give the bridge its own name, like `lan1`");
        }
        bridge_names.insert(name.value.clone(), i);
    }

    bridge_names
}
