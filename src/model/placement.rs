//! Placing nodes on hosts: `placement: auto`. Pure and deterministic, because every host
//! computes its own share from the same file and they must agree without talking. Node
//! counts are balanced (at most ceil(N/H) per host, unless hand placement already put more
//! on one), and the cut (links between hosts, each a VXLAN) is kept small: partitions grow
//! breadth-first from the lowest free name, then a Kernighan-Lin-style pass swaps or moves
//! nodes while that shrinks the cut. Hand-placed nodes never move.

/// The input: nodes `0..n`, their names (for the order of ties), the edges between them
/// and the hosts already fixed by hand.
pub struct Problem<'a> {
    pub names: &'a [&'a str],
    pub edges: &'a [(usize, usize)],
    pub hosts: usize,
    pub fixed: &'a [Option<usize>],
}

/// How many improvement passes at most: each pass only applies moves that shrink the
/// cut, so this bounds the work on a large lab, not the result on a small one.
const MAX_PASSES: usize = 16;

/// The host of every node.
pub fn place(p: &Problem) -> Vec<usize> {
    let n = p.names.len();
    if p.hosts == 0 {
        return vec![0; n];
    }
    let adj = adjacency(n, p.edges);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| p.names[*a].cmp(p.names[*b]).then(a.cmp(b)));
    let mut host: Vec<Option<usize>> = p.fixed.to_vec();
    let mut count = vec![0usize; p.hosts];
    for h in host.iter().flatten() {
        count[*h] += 1;
    }
    let cap = n.div_ceil(p.hosts);
    grow(&adj, &order, cap, &mut host, &mut count);
    let mut host: Vec<usize> = host
        .into_iter()
        .map(|h| h.expect("grow places every node"))
        .collect();
    improve(&adj, p.fixed, cap, &mut host, &mut count);
    host
}

/// The number of edges whose ends are on different hosts.
pub fn cut(edges: &[(usize, usize)], host: &[usize]) -> usize {
    edges.iter().filter(|(a, b)| host[*a] != host[*b]).count()
}

/// Each node's neighbours, sorted, once each (a node's link to itself does not count).
fn adjacency(n: usize, edges: &[(usize, usize)]) -> Vec<Vec<usize>> {
    let mut adj = vec![Vec::new(); n];
    for &(a, b) in edges {
        if a != b {
            adj[a].push(b);
            adj[b].push(a);
        }
    }
    adj
}

/// Fills each host in turn up to `cap`: breadth-first from its hand-placed nodes, or from
/// the lowest free name, taking neighbours in name order.
fn grow(
    adj: &[Vec<usize>],
    order: &[usize],
    cap: usize,
    host: &mut [Option<usize>],
    count: &mut [usize],
) {
    let rank = rank_of(order);
    for (h, filled) in count.iter_mut().enumerate() {
        let mut queue: std::collections::VecDeque<usize> = order
            .iter()
            .copied()
            .filter(|v| host[*v] == Some(h))
            .collect();
        while *filled < cap {
            let v = match queue.pop_front() {
                Some(v) => v,
                None => match order.iter().find(|v| host[**v].is_none()) {
                    Some(v) => {
                        host[*v] = Some(h);
                        *filled += 1;
                        *v
                    }
                    None => return,
                },
            };
            let mut next: Vec<usize> = adj[v]
                .iter()
                .copied()
                .filter(|u| host[*u].is_none())
                .collect();
            next.sort_by_key(|u| rank[*u]);
            next.dedup();
            for u in next {
                if *filled == cap {
                    break;
                }
                host[u] = Some(h);
                *filled += 1;
                queue.push_back(u);
            }
        }
    }
    // Hand placement over the capacity leaves free nodes: the least loaded host takes each.
    for &v in order {
        if host[v].is_none() {
            let h = (0..count.len())
                .min_by_key(|h| (count[*h], *h))
                .unwrap_or(0);
            host[v] = Some(h);
            count[h] += 1;
        }
    }
}

fn rank_of(order: &[usize]) -> Vec<usize> {
    let mut rank = vec![0; order.len()];
    for (r, v) in order.iter().enumerate() {
        rank[*v] = r;
    }
    rank
}

/// Links from `v` to nodes on host `h`.
fn links_to(adj: &[Vec<usize>], host: &[usize], v: usize, h: usize) -> i64 {
    adj[v].iter().filter(|u| host[**u] == h).count() as i64
}

/// Applies the best cut-shrinking move or swap, again and again, up to `MAX_PASSES`
/// rounds over the nodes. A move needs room on the target host; a swap keeps both
/// counts. Ties go to the lowest node indexes, so the result is deterministic.
fn improve(
    adj: &[Vec<usize>],
    fixed: &[Option<usize>],
    cap: usize,
    host: &mut [usize],
    count: &mut [usize],
) {
    let n = host.len();
    for _ in 0..MAX_PASSES * n.max(1) {
        let mut best: Option<(i64, usize, Option<usize>, usize)> = None;
        for a in (0..n).filter(|a| fixed[*a].is_none()) {
            let ha = host[a];
            let own = links_to(adj, host, a, ha);
            let mut targets: Vec<usize> = adj[a].iter().map(|u| host[*u]).collect();
            targets.sort_unstable();
            targets.dedup();
            for hb in targets.into_iter().filter(|hb| *hb != ha) {
                let gain_a = links_to(adj, host, a, hb) - own;
                if count[hb] < cap && gain_a > 0 && best.is_none_or(|b| gain_a > b.0) {
                    best = Some((gain_a, a, None, hb));
                }
                for b in (a + 1..n).filter(|b| host[*b] == hb && fixed[*b].is_none()) {
                    let ab = adj[a].iter().filter(|u| **u == b).count() as i64;
                    let gain_b = links_to(adj, host, b, ha) - links_to(adj, host, b, hb);
                    let gain = gain_a + gain_b - 2 * ab;
                    if gain > 0 && best.is_none_or(|x| gain > x.0) {
                        best = Some((gain, a, Some(b), hb));
                    }
                }
            }
        }
        let Some((_, a, b, hb)) = best else { return };
        let ha = host[a];
        host[a] = hb;
        match b {
            Some(b) => host[b] = ha,
            None => {
                count[ha] -= 1;
                count[hb] += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i:03}")).collect()
    }

    fn run(
        n: usize,
        edges: &[(usize, usize)],
        hosts: usize,
        fixed: &[Option<usize>],
    ) -> Vec<usize> {
        let owned = names(n);
        let names: Vec<&str> = owned.iter().map(String::as_str).collect();
        place(&Problem {
            names: &names,
            edges,
            hosts,
            fixed,
        })
    }

    fn counts(host: &[usize], hosts: usize) -> Vec<usize> {
        let mut c = vec![0; hosts];
        for h in host {
            c[*h] += 1;
        }
        c
    }

    fn chain(n: usize) -> Vec<(usize, usize)> {
        (1..n).map(|i| (i - 1, i)).collect()
    }

    fn grid(w: usize) -> Vec<(usize, usize)> {
        let mut e = Vec::new();
        for r in 0..w {
            for c in 0..w {
                let v = r * w + c;
                if c + 1 < w {
                    e.push((v, v + 1));
                }
                if r + 1 < w {
                    e.push((v, v + w));
                }
            }
        }
        e
    }

    #[test]
    fn a_chain_is_cut_once_per_host_boundary() {
        let e = chain(10);
        let h = run(10, &e, 2, &[None; 10]);
        assert_eq!(counts(&h, 2), vec![5, 5]);
        assert_eq!(cut(&e, &h), 1);
        let h3 = run(10, &e, 3, &[None; 10]);
        assert!(counts(&h3, 3).iter().all(|c| *c <= 4), "{h3:?}");
        assert_eq!(cut(&e, &h3), 2);
    }

    #[test]
    fn a_grid_is_cut_along_a_side() {
        let e = grid(4);
        let h = run(16, &e, 2, &[None; 16]);
        assert_eq!(counts(&h, 2), vec![8, 8]);
        assert_eq!(cut(&e, &h), 4, "{h:?}");
        let e = grid(6);
        let h = run(36, &e, 3, &[None; 36]);
        assert_eq!(counts(&h, 3), vec![12, 12, 12]);
        // Three bands of two rows cut twice across: 12 links. Allow a little slack.
        assert!(cut(&e, &h) <= 13, "cut {} of {h:?}", cut(&e, &h));
    }

    #[test]
    fn the_same_input_gives_the_same_placement() {
        let e = grid(5);
        let a = run(25, &e, 3, &[None; 25]);
        let b = run(25, &e, 3, &[None; 25]);
        assert_eq!(a, b);
    }

    #[test]
    fn hand_placed_nodes_stay_and_count_towards_balance() {
        let e = chain(6);
        // Both ends of the chain by hand on host 1: the rest fill host 0 first.
        let mut fixed = vec![None; 6];
        fixed[0] = Some(1);
        fixed[5] = Some(1);
        let h = run(6, &e, 2, &fixed);
        assert_eq!((h[0], h[5]), (1, 1));
        assert_eq!(counts(&h, 2), vec![3, 3]);
        // Hand placement above the share is kept; the free nodes go elsewhere.
        let fixed = vec![Some(0), Some(0), Some(0), Some(0), None, None];
        let h = run(6, &e, 2, &fixed);
        assert_eq!(h, vec![0, 0, 0, 0, 1, 1]);
    }

    #[test]
    fn disconnected_parts_and_more_hosts_than_nodes_still_place_everyone() {
        let h = run(3, &[], 5, &[None; 3]);
        assert_eq!(h.len(), 3);
        assert!(counts(&h, 5).iter().all(|c| *c <= 1));
    }
}
