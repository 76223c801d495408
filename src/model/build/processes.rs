//! Processes (the node's own, then daemonsets on the nodes their selector matches), the
//! `depends_on` edges between nodes and processes, and cycles in them.

use std::collections::{BTreeMap, HashMap};

use super::super::deps;
use super::super::placeholders::Vars;
use super::super::resolve::{self, Names};
use super::specs::Specs;
use crate::diag::{Sink, Span};
use crate::model::Node;
use crate::spec::raw::*;

/// Resolves every node's processes and dependencies; returns the daemonsets' summary.
pub(super) fn resolve(
    sink: &mut Sink,
    lab: &str,
    raw: &RawTopology,
    specs: &Specs,
    nodes: &mut [Node],
) -> Vec<crate::model::DaemonSet> {
    let node_names = &specs.names;
    let specs = &specs.specs;
    let labels: Vec<BTreeMap<String, String>> = nodes.iter().map(|n| n.labels.clone()).collect();
    let mut ds_matches: Vec<Vec<usize>> = Vec::new();
    for ds in &raw.daemonsets {
        let matched = resolve::select(&labels, &ds.selector);
        if matched.is_empty() {
            let sel: Vec<String> = ds
                .selector
                .iter()
                .map(|(k, v)| format!("{}={}", k.value, v.value))
                .collect();
            sink.warning(
                Some(ds.span),
                format!(
                    "daemonset `{}` matches no node (selector {})",
                    ds.process.name.value,
                    sel.join(", ")
                ),
            )
            .hint("check the selector against the nodes' `labels:`");
        }
        ds_matches.push(matched);
    }
    let mut proc_spans: HashMap<(usize, usize), Vec<Sp<String>>> = HashMap::new();
    let mut dep_spans: HashMap<(usize, Option<usize>), Span> = HashMap::new();
    for (i, (_, spec)) in specs.iter().enumerate() {
        let mut all: Vec<(&RawProcess, Option<&str>)> =
            spec.processes.iter().map(|p| (p, None)).collect();
        for (ds, matched) in raw.daemonsets.iter().zip(&ds_matches) {
            if matched.contains(&i) {
                all.push((&ds.process, Some(ds.process.name.value.as_str())));
            }
        }
        let refs: Vec<&RawProcess> = all.iter().map(|(p, _)| *p).collect();
        resolve::check_process_names(sink, &nodes[i].name, &refs);
        let stop = nodes[i].stop_timeout;
        let attrs = (nodes[i].attrs.clone(), nodes[i].attr_spans);
        let name = nodes[i].name.clone();
        let vars = Vars { node: &name, lab };
        for (k, (p, ds)) in all.iter().enumerate() {
            let process = resolve::process(sink, p, *ds, (stop, &attrs.0, attrs.1), vars);
            nodes[i].processes.push(process);
            proc_spans.insert((i, k), p.depends_on.clone());
            if let Some(d) = p.depends_on.first() {
                dep_spans.insert((i, Some(k)), d.span);
            }
        }
        if let Some(d) = spec.depends_on.first() {
            dep_spans.insert((i, None), d.span);
        }
    }
    let daemonsets = raw
        .daemonsets
        .iter()
        .zip(ds_matches)
        .map(|(ds, m)| resolve::daemonset_summary(ds, m))
        .collect();

    // depends_on, then cycles in it.
    let mut node_deps = Vec::new();
    let mut proc_deps: Vec<((usize, usize), Vec<crate::model::Dep>)> = Vec::new();
    {
        let lookup = Names {
            nodes: node_names,
            all: nodes,
            lab,
            bridges: &[],
        };
        for (_, spec) in specs {
            let deps: Vec<_> = spec
                .depends_on
                .iter()
                .filter_map(|d| lookup.dep(sink, d, None))
                .collect();
            node_deps.push(deps);
        }
        let mut keys: Vec<_> = proc_spans.keys().copied().collect();
        keys.sort();
        for key in keys {
            let deps = proc_spans[&key]
                .iter()
                .filter_map(|d| lookup.dep(sink, d, Some(key.0)))
                .collect();
            proc_deps.push((key, deps));
        }
    }
    for (i, deps) in node_deps.into_iter().enumerate() {
        nodes[i].depends_on = deps;
    }
    for ((n, p), deps) in proc_deps {
        nodes[n].processes[p].depends_on = deps;
    }
    deps::check_cycles(sink, nodes, &dep_spans);

    daemonsets
}
