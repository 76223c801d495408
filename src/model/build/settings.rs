//! Per-node settings once addresses are known: routes (written, then `routing: static`),
//! sysctls, commands, mounts, private directories, limits and isolation.

use std::path::Path;

use super::super::placeholders::{self, Vars};
use super::super::resolve;
use super::super::routes::{self, Resolver};
use super::layout::Layout;
use super::specs::Specs;
use super::wires::Wire;
use crate::diag::Sink;
use crate::model::{Bridge, End, Node, impair};
use crate::spec::raw::*;

/// Routes: written ones first; `routing: static` fills in the rest and turns on
/// forwarding on transit nodes.
pub(super) fn routes(
    sink: &mut Sink,
    raw: &RawTopology,
    specs: &Specs,
    nodes: &mut [Node],
    bridges: &[Bridge],
) {
    let node_names = &specs.names;
    let specs = &specs.specs;
    {
        let resolver = Resolver {
            nodes,
            bridges,
            names: node_names,
        };
        let written: Vec<_> = specs
            .iter()
            .enumerate()
            .map(|(i, (_, spec))| resolver.routes(sink, i, &spec.routes))
            .collect();
        for (node, routes) in nodes.iter_mut().zip(written) {
            node.routes = routes;
        }
    }
    let static_routing = raw
        .routing
        .as_ref()
        .is_some_and(|r| r.value == RoutingMode::Static);
    if static_routing {
        let computed = routes::static_routes(nodes, bridges);
        for (node, extra) in nodes.iter_mut().zip(computed) {
            let transit = node.interfaces.len() >= 2;
            for r in extra {
                if !node.routes.iter().any(|w| w.dst == r.dst) {
                    node.routes.push(r);
                }
            }
            if transit {
                for (k, v) in [
                    ("net.ipv4.ip_forward", "1"),
                    ("net.ipv6.conf.all.forwarding", "1"),
                ] {
                    node.sysctls.push(crate::model::Sysctl {
                        key: k.into(),
                        value: v.into(),
                        iface: None,
                    });
                }
            }
        }
    }
}

/// Sysctls (the implicit ones first, overridable), env, commands, mounts and limits,
/// with `{node}` and `{lab}` filled in.
pub(super) fn node(sink: &mut Sink, lab: &str, base_dir: &Path, specs: &Specs, nodes: &mut [Node]) {
    for (i, (name, spec)) in specs.specs.iter().enumerate() {
        let written = resolve::sysctls(sink, &nodes[i], &spec.sysctls);
        let node = &mut nodes[i];
        // Addresses must be usable at once: no duplicate address detection, which would
        // hold new link-local addresses tentative for about two seconds. Set first, before
        // any interface exists, and overridable like any other key.
        for (k, v) in resolve::IMPLICIT_SYSCTLS.iter().rev() {
            if !node.sysctls.iter().any(|s| s.key == *k) {
                node.sysctls.insert(
                    0,
                    crate::model::Sysctl {
                        key: k.to_string(),
                        value: v.to_string(),
                        iface: None,
                    },
                );
            }
        }
        for s in written {
            node.sysctls.retain(|o| o.key != s.key);
            node.sysctls.push(s);
        }
        let vars = Vars {
            node: &name.value,
            lab,
        };
        node.env = placeholders::env(sink, &spec.env, "env", vars);
        node.exec = resolve::exec(sink, &spec.exec, vars);
        node.mounts = resolve::mounts(sink, vars, base_dir, &spec.mounts);
        node.private = resolve::private(sink, vars, &spec.private);
        node.limits = resolve::limits(&spec.limits);
        node.limits_span = resolve::limits_span(&spec.limits);
        node.attrs = spec.attrs.values();
        node.attr_spans = spec.attrs.spans();
        node.isolation = resolve::isolation(sink, &spec.isolation);
    }
}

/// Impairments: each written one checked once (a link's applies to both its node ends),
/// an end's own winning over its link's.
pub(super) fn impairs(sink: &mut Sink, wires: &[Wire], l: &mut Layout) {
    for (w, link) in wires.iter().zip(&l.links) {
        let shared = w.raw.impair.as_ref().and_then(|r| impair::of_raw(sink, r));
        for (e, end) in w.ends.iter().zip([link.a, link.b]) {
            let own = e.raw.impair.as_ref().map(|r| impair::of_raw(sink, r));
            let slot = match end {
                End::Node { node, iface } => &mut l.nodes[node].interfaces[iface].impair,
                End::Uplink { bridge, uplink } => &mut l.bridges[bridge].uplinks[uplink].impair,
                End::Bridge { .. } => continue,
            };
            *slot = own.unwrap_or_else(|| shared.clone());
        }
    }
}
