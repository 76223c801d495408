//! The wait-for graph of `depends_on`: a node waits for other nodes to be ready (all their
//! processes ready), a process waits for nodes or processes. A cycle can never start, so it
//! is a compile error that names every member of the cycle.

use std::collections::HashMap;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::diag::{Sink, Span};
use crate::model::{Dep, Node};

/// What one vertex of the wait-for graph stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Waiter {
    NodeReady(usize),
    Process(usize, usize),
}

/// Reports each dependency cycle once. `spans[(node, process)]` locates the declaration
/// of a node's (`None`) or a process's `depends_on`.
pub fn check_cycles(
    sink: &mut Sink,
    nodes: &[Node],
    spans: &HashMap<(usize, Option<usize>), Span>,
) {
    let mut g: DiGraph<Waiter, ()> = DiGraph::new();
    let mut idx: HashMap<Waiter, NodeIndex> = HashMap::new();
    let mut vertex =
        |g: &mut DiGraph<Waiter, ()>, w: Waiter| *idx.entry(w).or_insert_with(|| g.add_node(w));
    let target = |d: &Dep| match d.process {
        Some(p) => Waiter::Process(d.node, p),
        None => Waiter::NodeReady(d.node),
    };
    for (n, node) in nodes.iter().enumerate() {
        let ready = vertex(&mut g, Waiter::NodeReady(n));
        for (p, proc_) in node.processes.iter().enumerate() {
            let pv = vertex(&mut g, Waiter::Process(n, p));
            g.add_edge(ready, pv, ());
            for d in node.depends_on.iter().chain(&proc_.depends_on) {
                let t = vertex(&mut g, target(d));
                g.add_edge(pv, t, ());
            }
        }
        // A node without processes still orders its dependencies (its exec waits for them).
        if node.processes.is_empty() {
            for d in &node.depends_on {
                let t = vertex(&mut g, target(d));
                g.add_edge(ready, t, ());
            }
        }
    }
    let name = |w: Waiter| match w {
        Waiter::NodeReady(n) => format!("node `{}`", nodes[n].name),
        Waiter::Process(n, p) => {
            format!("process `{}:{}`", nodes[n].name, nodes[n].processes[p].name)
        }
    };
    let mut sccs = tarjan_scc(&g);
    sccs.sort_by_key(|c| c.iter().map(|v| v.index()).min());
    for scc in sccs {
        let self_loop = scc.len() == 1 && g.contains_edge(scc[0], scc[0]);
        if scc.len() < 2 && !self_loop {
            continue;
        }
        // Walk the cycle inside the component, starting at its lowest vertex.
        let start = *scc.iter().min_by_key(|v| v.index()).expect("non-empty");
        let mut path = vec![start];
        let mut cur = start;
        loop {
            let next = g
                .neighbors(cur)
                .filter(|v| scc.contains(v))
                .min_by_key(|v| v.index())
                .expect("a component member has a successor inside it");
            if let Some(pos) = path.iter().position(|v| *v == next) {
                path.drain(..pos);
                path.push(next);
                break;
            }
            path.push(next);
            cur = next;
        }
        let names: Vec<String> = path.iter().map(|v| name(g[*v])).collect();
        let span = path.iter().find_map(|v| match g[*v] {
            Waiter::Process(n, p) => spans.get(&(n, Some(p))).or(spans.get(&(n, None))).copied(),
            Waiter::NodeReady(n) => spans.get(&(n, None)).copied(),
        });
        sink.error(span, format!("dependency cycle: {}", names.join(" -> ")))
            .hint("`depends_on` must form a chain or tree; remove one of these dependencies");
    }
}
