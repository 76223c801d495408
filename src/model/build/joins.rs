//! Links joining two bridges (a Mininet tree's switch-to-switch links). Joined bridges
//! are one L2 segment, so a loop among them floods every broadcast frame round it for
//! ever: a second link between the same two bridges, or a cycle, is refused unless every
//! bridge on the cycle runs the kernel's spanning tree (`stp: true`), which then blocks
//! one port of the loop. Across hosts each bridge already has replicas joined by VXLAN,
//! and a join there could close a loop through them, so it is refused for now.

use std::collections::HashMap;

use super::layout::Layout;
use super::wires::Wire;
use crate::diag::{Sink, Span};
use crate::model::End;
use crate::spec::raw::RawTopology;

/// Reports parallel links, cycles without STP, and joins in a multi-host lab.
pub(super) fn check(sink: &mut Sink, raw: &RawTopology, l: &Layout, wires: &[Wire]) {
    let joins: Vec<(usize, [usize; 2])> = l
        .links
        .iter()
        .enumerate()
        .filter_map(|(li, link)| match (link.a, link.b) {
            (End::Uplink { bridge: a, .. }, End::Uplink { bridge: b, .. }) => Some((li, [a, b])),
            _ => None,
        })
        .collect();
    if let (Some((li, _)), false) = (joins.first(), raw.hosts.is_empty()) {
        sink.error(
            Some(wires[*li].raw.span),
            "a link joining two bridges is not supported yet across hosts",
        )
        .hint("in a lab with `hosts:`, join the segments through a node, or use one bridge");
        return;
    }
    let name = |b: usize| format!("`{}`", l.bridges[b].name);
    let mut first: HashMap<[usize; 2], Span> = HashMap::new();
    // The spanning forest of the joins so far, as adjacency lists.
    let mut tree: Vec<Vec<usize>> = vec![Vec::new(); l.bridges.len()];
    for (li, [a, b]) in joins {
        let span = wires[li].raw.span;
        let pair = [a.min(b), a.max(b)];
        if let Some(f) = first.get(&pair) {
            sink.error(
                Some(span),
                format!("bridges {} and {} are joined twice", name(a), name(b)),
            )
            .note(*f, "first joined here")
            .hint("two links between the same bridges make a loop; keep one");
            continue;
        }
        first.insert(pair, span);
        let Some(path) = path(&tree, a, b) else {
            tree[a].push(b);
            tree[b].push(a);
            continue;
        };
        if path.iter().all(|&x| l.bridges[x].stp) {
            continue;
        }
        let ring: Vec<String> = path.iter().map(|&x| name(x)).collect();
        let without: Vec<String> = path
            .iter()
            .filter(|&&x| !l.bridges[x].stp)
            .map(|&x| name(x))
            .collect();
        sink.error(
            Some(span),
            format!(
                "this link closes a loop of bridges: {} (and back to {})",
                ring.join(" - "),
                ring[0]
            ),
        )
        .hint(format!(
            "a loop of bridges floods broadcasts for ever: drop a link of the loop, or set `stp: true` on every bridge of it ({} {} not)",
            without.join(", "),
            if without.len() == 1 { "does" } else { "do" }
        ));
    }
}

/// The bridges on the path from `from` to `to` in the forest, both included.
fn path(tree: &[Vec<usize>], from: usize, to: usize) -> Option<Vec<usize>> {
    let mut prev: Vec<Option<usize>> = vec![None; tree.len()];
    let mut todo = std::collections::VecDeque::from([from]);
    prev[from] = Some(from);
    while let Some(x) = todo.pop_front() {
        if x == to {
            let mut out = vec![to];
            let mut at = to;
            while at != from {
                at = prev[at].expect("visited");
                out.push(at);
            }
            out.reverse();
            return Some(out);
        }
        for &y in &tree[x] {
            if prev[y].is_none() {
                prev[y] = Some(x);
                todo.push_back(y);
            }
        }
    }
    None
}
