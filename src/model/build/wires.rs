//! Links with their endpoints resolved to nodes and bridges and every node end named:
//! explicit interface names are checked, the rest get the lowest free `ethN`. A link may
//! join two bridges (see `joins`), not a bridge to itself.

use std::borrow::Cow;
use std::collections::HashMap;

use super::super::names::check_ifname;
use super::specs::Specs;
use crate::diag::{Sink, Span, did_you_mean};
use crate::model::Vertex;
use crate::spec::raw::*;

/// A link whose endpoints resolved, before interfaces exist.
pub(super) struct Wire<'r> {
    pub raw: &'r RawLink,
    pub ends: [WireEnd<'r>; 2],
}

pub(super) struct WireEnd<'r> {
    pub raw: &'r RawEndpoint,
    pub vertex: Vertex,
    /// Interface name on a node end, explicit or assigned.
    pub iface: Option<Cow<'r, str>>,
}

/// Resolves every link's endpoints; links with a bad endpoint are reported and left out.
pub(super) fn resolve<'r>(
    sink: &mut Sink,
    raw: &'r RawTopology,
    nodes: &Specs,
    bridge_names: &HashMap<String, usize>,
) -> Option<Vec<Wire<'r>>> {
    let node_names = &nodes.names;
    let mut wires: Vec<Wire> = Vec::with_capacity(raw.links.len());
    // Explicit interface names per node, borrowed from the spec.
    let mut used_if: Vec<HashMap<&str, Span>> = vec![HashMap::new(); nodes.specs.len()];
    let mut twice: Vec<Twice> = Vec::new();
    // A link with a macvlan end makes a device of its node (`devices`), not a wire.
    for l in raw.links.iter().filter(|l| !super::devices::is_macvlan(l)) {
        let mut ends = Vec::new();
        for ep in &l.endpoints {
            let Some(vertex) = vertex_of(sink, ep, node_names, bridge_names) else {
                continue;
            };
            check_end(sink, ep, vertex, &mut used_if, &mut twice);
            ends.push(WireEnd {
                raw: ep,
                vertex,
                iface: ep.iface.as_ref().map(|i| Cow::Borrowed(i.value.as_str())),
            });
        }
        if ends.len() != 2 {
            continue;
        }
        if let (Vertex::Bridge(a), Vertex::Bridge(b)) = (ends[0].vertex, ends[1].vertex)
            && a == b
        {
            sink.error(Some(l.span), "a link joins a bridge to itself")
                .hint("a bridge already joins its own ports; drop this link");
            continue;
        }
        let [a, b]: [WireEnd; 2] = ends.try_into().ok()?;
        wires.push(Wire {
            raw: l,
            ends: [a, b],
        });
    }
    name_unnamed(&mut wires, &used_if);
    for t in twice {
        report_twice(sink, &t, &wires, &used_if[t.node]);
    }
    Some(wires)
}

/// An interface named by a second link, reported once every name is known so the hint
/// can offer one that is free.
struct Twice {
    node: usize,
    end: String,
    span: Span,
    first: Span,
}

fn report_twice(sink: &mut Sink, t: &Twice, wires: &[Wire], explicit: &HashMap<&str, Span>) {
    let taken = |name: &str| {
        explicit.contains_key(name)
            || wires
                .iter()
                .flat_map(|w| &w.ends)
                .any(|e| e.vertex == Vertex::Node(t.node) && e.iface.as_deref() == Some(name))
    };
    let free = (0..)
        .map(|k| format!("eth{k}"))
        .find(|n| !taken(n))
        .expect("some ethN is free");
    sink.error(
        Some(t.span),
        format!("interface `{}` is used by two links", t.end),
    )
    .note(t.first, "first used here")
    .hint(format!(
        "each interface joins one link; give this end a free name, like `{free}`"
    ));
}

/// The node or bridge an endpoint names; an unknown name is reported.
fn vertex_of(
    sink: &mut Sink,
    ep: &RawEndpoint,
    node_names: &HashMap<String, usize>,
    bridge_names: &HashMap<String, usize>,
) -> Option<Vertex> {
    if let Some(&n) = node_names.get(&ep.name.value) {
        return Some(Vertex::Node(n));
    }
    if let Some(&b) = bridge_names.get(&ep.name.value) {
        return Some(Vertex::Bridge(b));
    }
    let d = sink.error(
        Some(ep.name.span),
        format!("link endpoint `{}` is not a node or bridge", ep.name.value),
    );
    let cands = node_names
        .keys()
        .chain(bridge_names.keys())
        .map(String::as_str);
    match did_you_mean(&ep.name.value, cands) {
        Some(s) => d.hint(format!("did you mean `{s}`?")),
        None => d.hint("declare it under `nodes:` or `bridges:`"),
    };
    None
}

/// A bridge end takes no interface name, address or MAC; a node end's interface name
/// must be valid and used by one link only.
fn check_end<'r>(
    sink: &mut Sink,
    ep: &'r RawEndpoint,
    vertex: Vertex,
    used_if: &mut [HashMap<&'r str, Span>],
    twice: &mut Vec<Twice>,
) {
    if let Vertex::Bridge(_) = vertex {
        if let Some(i) = &ep.iface {
            sink.error(
                Some(i.span),
                format!("bridge `{}` takes no interface name", ep.name.value),
            )
            .hint(format!(
                "write just `{}`; nslab names the bridge port",
                ep.name.value
            ));
        }
        if ep.addresses.as_ref().is_some_and(|a| !a.is_empty()) || ep.mac.is_some() {
            sink.error(
                Some(ep.span),
                format!(
                    "the bridge end `{}` of a link has no addresses or MAC",
                    ep.name.value
                ),
            )
            .hint("put addresses and MACs on the node end");
        }
    }
    if let (Vertex::Node(n), Some(i)) = (vertex, &ep.iface) {
        match check_ifname(&i.value) {
            Err(msg) => {
                sink.error(Some(i.span), format!("invalid interface name on node `{}`: {msg}", ep.name.value))
                    .hint("interface names are at most 15 bytes of letters, digits, `_`, `-` and `.`, like `eth1`");
            }
            Ok(()) => {
                // The first use stays the one on record.
                if let Some(&first) = used_if[n].get(i.value.as_str()) {
                    twice.push(Twice {
                        node: n,
                        end: format!("{}:{}", ep.name.value, i.value),
                        span: i.span,
                        first,
                    });
                } else {
                    used_if[n].insert(i.value.as_str(), i.span);
                }
            }
        }
    }
}

/// Interfaces left unnamed get the lowest free `ethN` of their node, in link order.
fn name_unnamed(wires: &mut [Wire], used_if: &[HashMap<&str, Span>]) {
    let mut next_eth: HashMap<usize, usize> = HashMap::new();
    for w in wires.iter_mut() {
        for e in &mut w.ends {
            if let (Vertex::Node(n), None) = (e.vertex, &e.iface) {
                let k = next_eth.entry(n).or_insert(0);
                loop {
                    let name = format!("eth{k}");
                    *k += 1;
                    // Auto names count up, so they only need to dodge explicit ones.
                    if !used_if[n].contains_key(name.as_str()) {
                        e.iface = Some(Cow::Owned(name));
                        break;
                    }
                }
            }
        }
    }
}
