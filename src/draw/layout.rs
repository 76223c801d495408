//! Where each vertex goes: a layered (Sugiyama) layout from the `rust-sugiyama` crate, per
//! group and per connected component, packed into rows. The crate lays out directed
//! graphs, so each undirected link is pointed away from a root (the vertex of most links,
//! the first declared on a tie) in breadth-first order; that keeps the result acyclic and
//! puts bridges and core routers on top. Coordinates are rounded to whole pixels, so the
//! same topology always gives the same bytes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use petgraph::stable_graph::{NodeIndex, StableDiGraph};

/// Space between vertices in a layer and between a vertex and the next layer's.
const SPACING: f64 = 36.0;
/// Gap between packed components and groups.
const GAP: i64 = 48;
/// A row of packed components wraps past this width.
const ROW_WIDTH: i64 = 1600;
/// A component of more layers than this wraps into bands side by side.
const MAX_RANKS: usize = 10;
/// A layer of more leaves than this (a bridge with hundreds of hosts) folds into rows of
/// that many.
const MAX_LEAVES_PER_ROW: usize = 16;

/// A vertex's size in, its centre out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
}

impl Placed {
    pub fn left(&self) -> i64 {
        self.x - self.w / 2
    }
    pub fn top(&self) -> i64 {
        self.y - self.h / 2
    }
}

/// A group's frame (vertices sharing a group key, see `scene::GROUP_LABEL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub name: String,
    /// What its top left corner says (`host NAME`, and a host's underlay address).
    pub title: String,
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
}

#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub vertices: Vec<Placed>,
    pub frames: Vec<Frame>,
    pub width: i64,
    pub height: i64,
}

/// The input: vertex sizes, undirected edges between vertex indices, and an optional
/// group per vertex. Vertices of one group are laid out together and framed.
pub struct Input<'a> {
    pub sizes: &'a [(i64, i64)],
    pub edges: &'a [(usize, usize)],
    pub groups: &'a [Option<String>],
    /// Extra height given to each vertex while laying out, so that the links between two
    /// layers are long enough to carry both ends' labels.
    pub label_room: i64,
    /// Width given to each vertex while laying out (by index; missing is 0): its widest
    /// link end label, so that neighbours in a layer stand far enough apart for theirs.
    pub label_w: &'a [i64],
    /// Each group's frame title (missing: `host NAME`); the frame is at least as wide.
    pub titles: &'a BTreeMap<String, String>,
}

impl Input<'_> {
    /// The width a vertex takes in its layer: its box or its labels, the wider.
    fn room(&self, v: usize) -> i64 {
        self.sizes[v]
            .0
            .max(self.label_w.get(v).copied().unwrap_or(0))
    }
}

/// Lays the graph out: groups (ungrouped first) left to right, each the packed layout of
/// its components.
pub fn layout(input: &Input) -> Layout {
    let n = input.sizes.len();
    let mut out = Layout {
        vertices: input
            .sizes
            .iter()
            .map(|&(w, h)| Placed { x: 0, y: 0, w, h })
            .collect(),
        ..Layout::default()
    };
    let mut by_group: BTreeMap<Option<&str>, Vec<usize>> = BTreeMap::new();
    for v in 0..n {
        by_group
            .entry(input.groups.get(v).and_then(|g| g.as_deref()))
            .or_default()
            .push(v);
    }
    let mut blocks = Vec::new();
    for (group, members) in &by_group {
        let mut block = pack(&components(input, members), &mut out.vertices);
        if let Some(name) = group {
            let title = input
                .titles
                .get(*name)
                .cloned()
                .unwrap_or_else(|| format!("host {name}"));
            block.pad(GAP / 2, 24);
            block.w = block.w.max(title_width(&title) + 20);
            block.frame = Some((name.to_string(), title));
        }
        blocks.push(block);
    }
    let placed = shelf(&mut blocks, &mut out.vertices);
    out.frames = placed;
    out.width = blocks.iter().map(|b| b.x + b.w).max().unwrap_or(0);
    out.height = blocks.iter().map(|b| b.y + b.h).max().unwrap_or(0);
    out
}

/// The width of a frame's title in the 12 px bold monospace font (0.6 em a character,
/// a little more for bold).
fn title_width(title: &str) -> i64 {
    title.chars().count() as i64 * 75 / 10
}

/// A laid-out set of vertices with its bounding box; moving it moves its vertices.
struct Block {
    members: Vec<usize>,
    x: i64,
    y: i64,
    w: i64,
    h: i64,
    /// The group's name and title, when it is framed.
    frame: Option<(String, String)>,
}

impl Block {
    /// Room around the members (and on top, for a frame's title).
    fn pad(&mut self, side: i64, title: i64) {
        self.w += 2 * side;
        self.h += 2 * side + title;
        self.x -= side;
        self.y -= side + title;
    }
}

/// Packs blocks in rows (a shelf packing) and moves their vertices; returns the frames.
fn shelf(blocks: &mut [Block], vertices: &mut [Placed]) -> Vec<Frame> {
    let (mut cx, mut cy, mut row_h) = (0i64, 0i64, 0i64);
    let mut frames = Vec::new();
    for b in blocks.iter_mut() {
        if cx > 0 && cx + b.w > ROW_WIDTH {
            cx = 0;
            cy += row_h + GAP;
            row_h = 0;
        }
        let (dx, dy) = (cx - b.x, cy - b.y);
        for &m in &b.members {
            vertices[m].x += dx;
            vertices[m].y += dy;
        }
        b.x = cx;
        b.y = cy;
        if let Some((name, title)) = &b.frame {
            frames.push(Frame {
                name: name.clone(),
                title: title.clone(),
                x: b.x,
                y: b.y,
                w: b.w,
                h: b.h,
            });
        }
        cx += b.w + GAP;
        row_h = row_h.max(b.h);
    }
    frames
}

/// The connected components among `members`, each laid out, in declaration order of
/// their first vertex.
fn components(input: &Input, members: &[usize]) -> Vec<Vec<(usize, f64, f64)>> {
    let inside: BTreeSet<usize> = members.iter().copied().collect();
    let mut adj: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for &(a, b) in input.edges {
        if a != b && inside.contains(&a) && inside.contains(&b) {
            adj.entry(a).or_default().insert(b);
            adj.entry(b).or_default().insert(a);
        }
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for &start in members {
        if !seen.insert(start) {
            continue;
        }
        let mut comp = vec![start];
        let mut queue = VecDeque::from([start]);
        while let Some(v) = queue.pop_front() {
            for &w in adj.get(&v).into_iter().flatten() {
                if seen.insert(w) {
                    comp.push(w);
                    queue.push_back(w);
                }
            }
        }
        comp.sort_unstable();
        out.push(layered(input, &comp, &adj));
    }
    out
}

/// Places the components of one group side by side, as one block.
fn pack(comps: &[Vec<(usize, f64, f64)>], vertices: &mut [Placed]) -> Block {
    let mut blocks: Vec<Block> = comps
        .iter()
        .map(|c| {
            for &(v, x, y) in c {
                vertices[v].x = x.round() as i64;
                vertices[v].y = y.round() as i64;
            }
            bounds(c.iter().map(|&(v, _, _)| v).collect(), vertices)
        })
        .collect();
    shelf(&mut blocks, vertices);
    let members = blocks.iter().flat_map(|b| b.members.clone()).collect();
    bounds(members, vertices)
}

fn bounds(members: Vec<usize>, vertices: &[Placed]) -> Block {
    let l = members
        .iter()
        .map(|&v| vertices[v].left())
        .min()
        .unwrap_or(0);
    let t = members
        .iter()
        .map(|&v| vertices[v].top())
        .min()
        .unwrap_or(0);
    let r = members
        .iter()
        .map(|&v| vertices[v].left() + vertices[v].w)
        .max()
        .unwrap_or(0);
    let b = members
        .iter()
        .map(|&v| vertices[v].top() + vertices[v].h)
        .max()
        .unwrap_or(0);
    Block {
        members,
        x: l,
        y: t,
        w: r - l,
        h: b - t,
        frame: None,
    }
}

/// One connected component through the Sugiyama layout; centres per vertex.
fn layered(
    input: &Input,
    comp: &[usize],
    adj: &BTreeMap<usize, BTreeSet<usize>>,
) -> Vec<(usize, f64, f64)> {
    if comp.len() == 1 {
        return vec![(comp[0], 0.0, 0.0)];
    }
    let depth = depths(comp, adj);
    let (leaves, rest) = fold_leaves(comp, adj, &depth);
    let mut g: StableDiGraph<usize, ()> = StableDiGraph::new();
    let index: BTreeMap<usize, NodeIndex> = rest.iter().map(|&v| (v, g.add_node(v))).collect();
    let key = |v: usize| (depth[&v], v);
    for &a in &rest {
        for &b in adj.get(&a).into_iter().flatten() {
            if key(a) < key(b)
                && let (Some(&ia), Some(&ib)) = (index.get(&a), index.get(&b))
            {
                g.add_edge(ia, ib, ());
            }
        }
    }
    // A parent is as wide as the grid of leaves folded under it, so grids side by side
    // do not overlap.
    let grid_w: BTreeMap<usize, f64> = leaves
        .iter()
        .map(|(p, l)| (*p, Grid::of(input, l).width()))
        .collect();
    let size = |_: NodeIndex, v: &usize| {
        let (w, h) = (input.room(*v), input.sizes[*v].1);
        let w = (w as f64).max(grid_w.get(v).copied().unwrap_or(0.0));
        (w, (h + input.label_room) as f64)
    };
    let config = rust_sugiyama::configure::Config {
        vertex_spacing: SPACING,
        ..Default::default()
    };
    let mut out = Vec::new();
    for (coords, _, _) in rust_sugiyama::from_graph(&g, &size, &config) {
        for (ni, (x, y)) in coords {
            out.push((g[ni], x, y));
        }
    }
    out.sort_by_key(|&(v, _, _)| v);
    wrap_deep(input, &mut out);
    place_folded(input, &leaves, &mut out);
    out
}

/// A component deeper than `MAX_RANKS` layers (a long chain) is cut into bands of that
/// many layers, set side by side: a chain of 100 is ten columns, not a line 17,000
/// pixels tall. The links between bands run from the bottom of one to the top of the next.
fn wrap_deep(input: &Input, out: &mut [(usize, f64, f64)]) {
    let mut ranks: Vec<f64> = out.iter().map(|&(_, _, y)| y).collect();
    ranks.sort_by(f64::total_cmp);
    ranks.dedup();
    if ranks.len() <= MAX_RANKS {
        return;
    }
    let half_w = |v: usize| input.sizes[v].0 as f64 / 2.0;
    let left = out
        .iter()
        .map(|&(v, x, _)| x - half_w(v))
        .fold(f64::MAX, f64::min);
    let right = out
        .iter()
        .map(|&(v, x, _)| x + half_w(v))
        .fold(f64::MIN, f64::max);
    let band_w = right - left + 2.0 * GAP as f64;
    for (_, x, y) in out.iter_mut() {
        let rank = ranks.partition_point(|r| r < y);
        let band = rank / MAX_RANKS;
        *x += band as f64 * band_w;
        *y -= ranks[band * MAX_RANKS] - ranks[0];
    }
}

/// Breadth-first depth from the root: the vertex with the most links, the first on a tie,
/// and its twins.
fn depths(comp: &[usize], adj: &BTreeMap<usize, BTreeSet<usize>>) -> BTreeMap<usize, usize> {
    let degree = |v: &usize| adj.get(v).map_or(0, BTreeSet::len);
    let root = comp
        .iter()
        .copied()
        .max_by_key(|v| (degree(v), std::cmp::Reverse(*v)))
        .unwrap_or(comp[0]);
    // The root's twins (the same three or more neighbours: the other spines of a leaf-spine
    // fabric) are roots too, so that they share its layer instead of sitting under it.
    let twins = comp
        .iter()
        .copied()
        .filter(|&v| degree(&v) >= 3 && adj.get(&v) == adj.get(&root));
    let mut depth: BTreeMap<usize, usize> = twins.clone().map(|v| (v, 0)).collect();
    depth.insert(root, 0);
    let mut queue: VecDeque<usize> = std::iter::once(root)
        .chain(twins.filter(|&v| v != root))
        .collect();
    while let Some(v) = queue.pop_front() {
        let d = depth[&v];
        for &w in adj.get(&v).into_iter().flatten() {
            if let std::collections::btree_map::Entry::Vacant(e) = depth.entry(w) {
                e.insert(d + 1);
                queue.push_back(w);
            }
        }
    }
    depth
}

/// Leaves (one link) hanging off a parent are taken out of the layered layout and placed
/// under it in a grid when it has more than `MAX_LEAVES_PER_ROW` of them, or when the
/// component has more than `CROWD` leaves in all (the hosts of a Clos fabric): a bridge
/// with 300 hosts is a block, not a line 40,000 pixels wide.
type Folded = Vec<(usize, Vec<usize>)>;

/// Leaves in a component past which every parent's leaves fold.
const CROWD: usize = 32;

fn fold_leaves(
    comp: &[usize],
    adj: &BTreeMap<usize, BTreeSet<usize>>,
    depth: &BTreeMap<usize, usize>,
) -> (Folded, Vec<usize>) {
    let mut per_parent: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &v in comp {
        let Some(nb) = adj.get(&v) else { continue };
        if nb.len() == 1
            && let Some(&p) = nb.iter().next()
            && depth[&p] < depth[&v]
        {
            per_parent.entry(p).or_default().push(v);
        }
    }
    let crowded = per_parent.values().map(Vec::len).sum::<usize>() > CROWD;
    let folded: Folded = per_parent
        .into_iter()
        .filter(|(_, l)| l.len() > MAX_LEAVES_PER_ROW || (crowded && l.len() > 1))
        .collect();
    let gone: BTreeSet<usize> = folded.iter().flat_map(|(_, l)| l.iter().copied()).collect();
    let rest = comp.iter().copied().filter(|v| !gone.contains(v)).collect();
    (folded, rest)
}

/// The grid a parent's folded leaves sit in: about square, at most
/// `MAX_LEAVES_PER_ROW` wide.
struct Grid {
    cols: usize,
    rows: usize,
    cell_w: f64,
    cell_h: f64,
}

impl Grid {
    fn of(input: &Input, leaves: &[usize]) -> Grid {
        let n = leaves.len().max(1);
        let cols = (n as f64).sqrt().ceil() as usize;
        let cols = cols.clamp(1, MAX_LEAVES_PER_ROW);
        Grid {
            cols,
            rows: n.div_ceil(cols),
            cell_w: leaves.iter().map(|&v| input.sizes[v].0).max().unwrap_or(0) as f64 + SPACING,
            cell_h: leaves.iter().map(|&v| input.sizes[v].1).max().unwrap_or(0) as f64
                + input.label_room as f64
                + SPACING,
        }
    }

    fn width(&self) -> f64 {
        self.cols as f64 * self.cell_w - SPACING
    }

    fn height(&self) -> f64 {
        self.rows as f64 * self.cell_h
    }
}

/// Puts each parent's folded leaves in a grid centred under it, below the layered part,
/// and below any grid it would overlap.
fn place_folded(input: &Input, folded: &Folded, out: &mut Vec<(usize, f64, f64)>) {
    let bottom = out
        .iter()
        .map(|&(v, _, y)| y + input.sizes[v].1 as f64 / 2.0)
        .fold(f64::MIN, f64::max);
    let mut placed: Vec<(f64, f64, f64, f64)> = Vec::new(); // left, top, right, bottom
    for (parent, leaves) in folded {
        let Some(&(_, px, _)) = out.iter().find(|(v, _, _)| v == parent) else {
            continue;
        };
        let g = Grid::of(input, leaves);
        let left = px - g.width() / 2.0;
        let right = left + g.width();
        let mut top = bottom + input.label_room as f64;
        while let Some(&(_, _, _, b)) = placed
            .iter()
            .find(|&&(l, t, r, b)| l < right && left < r && t < top + g.height() && top < b)
        {
            top = b + SPACING;
        }
        placed.push((left, top, right, top + g.height()));
        for (i, &v) in leaves.iter().enumerate() {
            let (row, col) = (i / g.cols, i % g.cols);
            let x = left + (col as f64 + 0.5) * g.cell_w - SPACING / 2.0;
            let y = top + g.cell_h * (row as f64 + 0.5);
            out.push((v, x, y));
        }
    }
    out.sort_by_key(|&(v, _, _)| v);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(n: usize) -> Vec<(usize, usize)> {
        (0..n).map(|i| (i, (i + 1) % n)).collect()
    }

    fn overlaps(a: &Placed, b: &Placed) -> bool {
        a.left() < b.left() + b.w
            && b.left() < a.left() + a.w
            && a.top() < b.top() + b.h
            && b.top() < a.top() + a.h
    }

    fn run(n: usize, edges: &[(usize, usize)], groups: &[Option<String>]) -> Layout {
        let sizes: Vec<(i64, i64)> = (0..n).map(|i| (60 + (i as i64 % 3) * 20, 40)).collect();
        layout(&Input {
            sizes: &sizes,
            edges,
            groups,
            label_room: 90,
            label_w: &[],
            titles: &BTreeMap::new(),
        })
    }

    #[test]
    fn no_two_vertices_overlap_and_all_are_inside_the_picture() {
        let mut edges = ring(12);
        edges.extend((12..40).map(|i| (0, i))); // 28 leaves on vertex 0: folded into rows
        edges.push((40, 41)); // a second component
        let l = run(43, &edges, &vec![None; 43]);
        for (i, a) in l.vertices.iter().enumerate() {
            assert!(a.left() >= 0 && a.top() >= 0, "{i}: {a:?}");
            assert!(
                a.left() + a.w <= l.width && a.top() + a.h <= l.height,
                "{i}"
            );
            for (j, b) in l.vertices.iter().enumerate().skip(i + 1) {
                assert!(!overlaps(a, b), "{i} {a:?} overlaps {j} {b:?}");
            }
        }
        // The layered part: the root (most links) sits above its neighbours.
        assert!(l.vertices[0].y < l.vertices[1].y);
    }

    #[test]
    fn the_same_graph_gives_the_same_layout_every_time() {
        // Each run hashes with new keys (the crate keeps some state in HashMaps), so a
        // layout that depended on hash order would differ between runs.
        let mut edges = ring(30);
        edges.extend([(0, 15), (5, 20), (7, 25)]);
        let first = run(30, &edges, &vec![None; 30]).vertices;
        for _ in 0..20 {
            assert_eq!(run(30, &edges, &vec![None; 30]).vertices, first);
        }
    }

    #[test]
    fn a_long_chain_wraps_into_bands_of_at_most_max_ranks_layers() {
        let edges: Vec<(usize, usize)> = (0..34).map(|i| (i, i + 1)).collect();
        let l = run(35, &edges, &vec![None; 35]);
        let mut ys: Vec<i64> = l.vertices.iter().map(|v| v.y).collect();
        ys.sort_unstable();
        ys.dedup();
        assert!(ys.len() <= MAX_RANKS, "{} layers", ys.len());
        for (i, a) in l.vertices.iter().enumerate() {
            for b in &l.vertices[i + 1..] {
                assert!(!overlaps(a, b), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn groups_get_frames_that_hold_exactly_their_vertices() {
        let groups: Vec<Option<String>> = (0..6)
            .map(|i| Some(if i < 3 { "a" } else { "b" }.to_string()))
            .collect();
        let l = run(6, &ring(6), &groups);
        assert_eq!(l.frames.len(), 2);
        for (i, v) in l.vertices.iter().enumerate() {
            let f = &l.frames[usize::from(i >= 3)];
            assert!(v.left() >= f.x && v.left() + v.w <= f.x + f.w, "{i}");
            assert!(v.top() >= f.y && v.top() + v.h <= f.y + f.h, "{i}");
        }
    }

    #[test]
    fn a_frame_is_as_wide_as_its_title_and_other_frames_stay_clear() {
        let title = "host a 2001:db8:ffff:ffff:ffff:ffff:ffff:1 mtu 9000".to_string();
        let titles = BTreeMap::from([("a".to_string(), title.clone())]);
        let groups = [Some("a".to_string()), Some("b".to_string())];
        let l = layout(&Input {
            sizes: &[(40, 30), (40, 30)],
            edges: &[(0, 1)],
            groups: &groups,
            label_room: 0,
            label_w: &[],
            titles: &titles,
        });
        let titled: Vec<(&str, &str)> = l.frames.iter().map(|f| (&*f.name, &*f.title)).collect();
        assert_eq!(titled, [("a", title.as_str()), ("b", "host b")]);
        let (a, b) = (&l.frames[0], &l.frames[1]);
        assert!(a.w >= title_width(&title) + 20, "{a:?}");
        assert!(a.x + a.w <= b.x || b.y >= a.y + a.h, "{a:?} {b:?}");
    }
}
