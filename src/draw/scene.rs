//! The picture before it is written out: boxes for nodes and bridges, lines for links with
//! their end labels, group frames, all in whole pixels. SVG, HTML and draw.io write the
//! same scene, so they agree on where everything is.

use petgraph::visit::EdgeRef;

use super::layout::{self, Frame, Placed};
use super::live::{self, Live};
use crate::model::{End, LinkKind, Topology, Vertex};

/// The node label that groups nodes in a frame when the lab has no `hosts:`:
/// `labels: { host: h1 }` puts a node in h1's frame. In a multi-host lab the frame is the
/// machine the node is placed on; a bridge goes with the first node attached to it.
pub const GROUP_LABEL: &str = "host";
/// Width of a character of the 12 px monospace font, in tenths of a pixel.
const CHAR_TENTHS: i64 = 73;
const LINE: i64 = 15;
/// Line height of the 11 px labels on links.
const LABEL_LINE: i64 = 13;
/// A node with more links to other nodes than this is the hub of a dense bundle (a
/// spine of a fabric): the labels of its links name the interfaces only, as a label
/// with an address is too wide for lines that close together. See [`terse_links`].
const DENSE: usize = 8;
/// The most links of a fan that give its layers more height (a 300-node fabric's).
const MAX_FAN: i64 = 32;

#[derive(Debug, Clone)]
pub struct Scene {
    pub lab: String,
    pub width: i64,
    pub height: i64,
    pub boxes: Vec<VBox>,
    pub links: Vec<Line>,
    pub frames: Vec<Frame>,
}

#[derive(Debug, Clone)]
pub struct VBox {
    /// `node-NAME` or `bridge-NAME`, unique in the document.
    pub id: String,
    pub name: String,
    pub bridge: bool,
    /// Text under the name: kind and labels, loopbacks or subnets, processes.
    pub lines: Vec<String>,
    pub at: Placed,
    /// Live state (`up`, `degraded`, `missing`), empty for the topology alone.
    pub state: String,
}

#[derive(Debug, Clone)]
pub struct Line {
    pub id: String,
    pub from: (i64, i64),
    pub to: (i64, i64),
    /// Interface name and addresses at each end, centred at the given point.
    pub labels: [(Vec<String>, (i64, i64)); 2],
    /// `up`, `down`, `no-carrier`, `unknown`; empty for the topology alone.
    pub state: String,
    /// The impairment, declared or (live) read from the kernel.
    pub impairment: Option<String>,
    /// The two ends as `node:iface` or the bridge's name.
    pub ends: [String; 2],
    /// The boxes it joins (indices into `Scene::boxes`).
    pub boxes: [usize; 2],
    /// Addresses left off the end labels of a dense bundle's link (see [`DENSE`]), as
    /// `node:iface address`: the picture has them in the link's tooltip.
    pub hidden: Vec<String>,
    /// A link between two machines of a multi-host lab: `VXLAN` and its VNI, written at
    /// the middle of the line, where it crosses from one host's frame to the other's.
    pub tunnel: Option<String>,
}

impl Line {
    /// The text shown on hovering the line: its ends and state, the addresses a dense
    /// bundle leaves off its labels, its tunnel and impairment, a line each. SVG and
    /// draw.io both carry it, so neither loses an address the picture hides.
    pub fn tooltip(&self) -> String {
        let mut tip = format!("{} — {}", self.ends[0], self.ends[1]);
        if !self.state.is_empty() {
            tip.push_str(&format!(" ({})", self.state));
        }
        for h in &self.hidden {
            tip.push_str(&format!("\n{h}"));
        }
        if let Some(t) = &self.tunnel {
            tip.push_str(&format!("\nacross hosts: {t}"));
        }
        if let Some(i) = &self.impairment {
            tip.push_str(&format!("\nimpaired: {i}"));
        }
        tip
    }
}

fn text_width(lines: &[String]) -> i64 {
    let chars = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) as i64;
    chars * CHAR_TENTHS / 10
}

fn text_height(lines: &[String]) -> i64 {
    lines.len() as i64 * LINE
}

/// The text of a vertex's box, name first.
fn box_lines(t: &Topology, v: Vertex, live: Option<&Live>) -> Vec<String> {
    let mut lines = Vec::new();
    match v {
        Vertex::Node(n) => {
            let node = &t.nodes[n];
            lines.push(node.name.clone());
            let mut kind: Vec<String> = node.kind.iter().map(|k| format!("[{k}]")).collect();
            kind.extend(node.labels.iter().map(|(k, v)| format!("{k}={v}")));
            if !kind.is_empty() {
                lines.push(kind.join(" "));
            }
            lines.extend(node.loopback.iter().map(|a| format!("lo {a}")));
            lines.extend(
                super::local::of(t, n)
                    .iter()
                    .flat_map(super::local::Local::lines),
            );
            let procs = live.and_then(|l| l.nodes.get(&node.name));
            match procs {
                Some(p) if !p.processes.is_empty() => {
                    lines.push(format!("procs: {}", live::process_summary(&p.processes)));
                }
                _ if !node.processes.is_empty() => {
                    let names: Vec<&str> = node.processes.iter().map(|p| p.name.as_str()).collect();
                    lines.push(format!("procs: {}", names.join(", ")));
                }
                _ => {}
            }
        }
        Vertex::Bridge(b) => {
            let br = &t.bridges[b];
            lines.push(br.name.clone());
            lines.extend(br.subnets.iter().map(ToString::to_string));
        }
    }
    lines
}

fn vertex_of(e: End) -> Vertex {
    match e {
        End::Node { node, .. } => Vertex::Node(node),
        End::Bridge { bridge, .. } | End::Uplink { bridge, .. } => Vertex::Bridge(bridge),
    }
}

fn end_name(t: &Topology, e: End) -> String {
    match e {
        End::Node { node, iface } => {
            format!(
                "{}:{}",
                t.nodes[node].name, t.nodes[node].interfaces[iface].name
            )
        }
        End::Bridge { bridge, .. } | End::Uplink { bridge, .. } => t.bridges[bridge].name.clone(),
    }
}

/// The label at a link's end: the interface's name, and its addresses unless `terse`.
fn end_lines(t: &Topology, e: End, terse: bool) -> Vec<String> {
    match e {
        End::Node { node, iface } => {
            let i = &t.nodes[node].interfaces[iface];
            let mut v = vec![i.name.clone()];
            if !terse {
                v.extend(i.addresses.iter().map(ToString::to_string));
            }
            v
        }
        End::Bridge { .. } | End::Uplink { .. } => Vec::new(),
    }
}

/// Which links are drawn with terse end labels (names without addresses): those between
/// two nodes where either node has more than [`DENSE`] such links. The rule depends on the
/// topology alone, so the same file gives the same picture.
pub(super) fn terse_links(t: &Topology) -> Vec<bool> {
    let node_of = |e: End| match e {
        End::Node { node, .. } => Some(node),
        End::Bridge { .. } | End::Uplink { .. } => None,
    };
    let mut count = vec![0usize; t.nodes.len()];
    let pairs: Vec<Option<(usize, usize)>> = t
        .links
        .iter()
        .map(|l| Some((node_of(l.a)?, node_of(l.b)?)))
        .collect();
    for &(a, b) in pairs.iter().flatten() {
        count[a] += 1;
        count[b] += 1;
    }
    pairs
        .iter()
        .map(|p| p.is_some_and(|(a, b)| count[a] > DENSE || count[b] > DENSE))
        .collect()
}

/// Extra height between layers for a dense bundle: a line of label height per link of the
/// widest fan (at most [`MAX_FAN`]), so that its lines leave the hub steeply enough for
/// their labels to sit apart on them rather than crowd along a flat band.
fn fan_room(t: &Topology, terse: &[bool]) -> i64 {
    let mut fan = vec![0i64; t.nodes.len()];
    for (l, _) in t.links.iter().zip(terse).filter(|(_, t)| **t) {
        for e in [l.a, l.b] {
            if let End::Node { node, .. } = e {
                fan[node] += 1;
            }
        }
    }
    fan.into_iter().max().unwrap_or(0).min(MAX_FAN) * LABEL_LINE
}

/// The group of each vertex, by graph index: its host in a multi-host lab, else the
/// [`GROUP_LABEL`] label.
pub(super) fn groups(t: &Topology) -> Vec<Option<String>> {
    let of_node = |n: usize| match t.hosts.is_empty() {
        true => t.nodes[n].labels.get(GROUP_LABEL).cloned(),
        false => t.nodes[n].host.clone(),
    };
    t.graph
        .node_indices()
        .map(|i| match t.graph[i] {
            Vertex::Node(n) => of_node(n),
            Vertex::Bridge(b) => t.bridges[b].ports.first().and_then(|p| of_node(p.node)),
        })
        .collect()
}

/// The title of a host's frame: its name, its underlay address, and its underlay's MTU
/// when not Ethernet's 1500, which is what a VXLAN between hosts depends on.
pub(super) fn host_title(h: &crate::model::Host) -> String {
    let mut title = format!("host {} {}", h.name, h.address);
    if h.mtu != 1500 {
        title.push_str(&format!(" mtu {}", h.mtu));
    }
    title
}

/// The frames' titles of a multi-host lab, by host name (a lab on one machine has
/// `host NAME` frames, from its nodes' labels).
fn frame_titles(t: &Topology) -> std::collections::BTreeMap<String, String> {
    t.hosts
        .iter()
        .map(|h| (h.name.clone(), host_title(h)))
        .collect()
}

/// What each link crosses machines as: `VXLAN <vni>` for a cross-host link (the VNI the
/// plan gives it when no other lab holds it), `None` for a veth.
pub(super) fn tunnels(t: &Topology) -> Vec<Option<String>> {
    let vnis = crate::plan::share::vnis(t);
    t.links
        .iter()
        .zip(vnis)
        .map(|(l, vni)| match (l.kind, vni) {
            (LinkKind::Vxlan, Some(v)) => Some(format!("VXLAN {v}")),
            (LinkKind::Vxlan, None) => Some("VXLAN".to_string()),
            (LinkKind::Veth, _) => None,
        })
        .collect()
}

/// Lays the topology out and builds the scene, with the live state when given.
pub fn build(t: &Topology, live: Option<&Live>) -> Scene {
    const PAD: i64 = 20;
    let lines: Vec<Vec<String>> = t
        .graph
        .node_indices()
        .map(|i| box_lines(t, t.graph[i], live))
        .collect();
    let sizes: Vec<(i64, i64)> = lines
        .iter()
        .map(|l| (text_width(l).max(40) + 20, text_height(l) + 12))
        .collect();
    let edges: Vec<(usize, usize)> = t
        .graph
        .edge_references()
        .map(|e| (e.source().index(), e.target().index()))
        .collect();
    let groups = groups(t);
    let terse = terse_links(t);
    // Room for the two tallest end labels, an impairment between them, and some air.
    let tallest = t
        .links
        .iter()
        .zip(&terse)
        .flat_map(|(l, &terse)| [end_lines(t, l.a, terse), end_lines(t, l.b, terse)])
        .map(|lines| lines.len() as i64)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut lay = layout::layout(&layout::Input {
        sizes: &sizes,
        edges: &edges,
        groups: &groups,
        label_room: 2 * tallest * LABEL_LINE + LABEL_LINE + 48 + fan_room(t, &terse),
        label_w: &label_widths(t),
        titles: &frame_titles(t),
    });
    for p in &mut lay.vertices {
        p.x += PAD;
        p.y += PAD;
    }
    for f in &mut lay.frames {
        f.x += PAD;
        f.y += PAD;
    }
    let boxes: Vec<VBox> = t
        .graph
        .node_indices()
        .zip(lines)
        .map(|(i, lines)| vbox(t.graph[i], lines, lay.vertices[i.index()], live))
        .collect();
    let mut links = lines_of(t, &lay.vertices, &terse, live);
    super::labels::declutter(&mut links, &boxes, &lay.frames);
    let mut scene = Scene {
        lab: t.lab.clone(),
        width: lay.width + 2 * PAD,
        height: lay.height + 2 * PAD,
        boxes,
        links,
        frames: lay.frames,
    };
    fit(&mut scene);
    scene
}

/// Grows the picture so that labels moved beside their lines stay inside it, moving
/// everything right and down when one sticks out on the left or top.
fn fit(s: &mut Scene) {
    let Some((l, t, r, b)) = super::labels::extent(&s.links) else {
        return;
    };
    let (dx, dy) = ((-l).max(0), (-t).max(0));
    s.width = s.width.max(r + 1) + dx;
    s.height = s.height.max(b + 1) + dy;
    if dx == 0 && dy == 0 {
        return;
    }
    for v in &mut s.boxes {
        v.at.x += dx;
        v.at.y += dy;
    }
    for f in &mut s.frames {
        f.x += dx;
        f.y += dy;
    }
    let shift = |p: &mut (i64, i64)| {
        p.0 += dx;
        p.1 += dy;
    };
    for line in &mut s.links {
        shift(&mut line.from);
        shift(&mut line.to);
        line.labels.iter_mut().for_each(|(_, at)| shift(at));
    }
}

/// The room each vertex needs in its layer for the labels at its links' ends, by graph
/// index (a folded leaf sits in its grid with its box only).
fn label_widths(t: &Topology) -> Vec<i64> {
    let mut w = vec![0; t.graph.node_count()];
    let mut links = vec![0; t.graph.node_count()];
    for l in &t.links {
        for e in [l.a, l.b] {
            let v = vertex_index(t, vertex_of(e));
            // The whole label, addresses too, even where the picture leaves them off: a
            // dense fabric keeps its width, which keeps its many lines apart.
            w[v] = w[v].max(super::labels::size(&end_lines(t, e, false)).0);
            links[v] += 1;
        }
    }
    // Half as much again where lines meet: their labels sit side by side.
    w.iter()
        .zip(links)
        .map(|(w, n)| if n > 1 { w * 3 / 2 } else { *w })
        .collect()
}

fn vbox(v: Vertex, mut lines: Vec<String>, at: Placed, live: Option<&Live>) -> VBox {
    let name = lines.remove(0);
    let (id, bridge, state) = match v {
        Vertex::Node(_) => {
            let state = live.map(|l| {
                l.nodes
                    .get(&name)
                    .map_or("missing".to_string(), |n| n.state.clone())
            });
            (format!("node-{name}"), false, state.unwrap_or_default())
        }
        Vertex::Bridge(_) => (format!("bridge-{name}"), true, String::new()),
    };
    VBox {
        id,
        name,
        bridge,
        lines,
        at,
        state,
    }
}

/// Where a line from the centre of `a` towards `b` leaves `a`'s box.
fn clip(a: Placed, toward: (i64, i64)) -> (i64, i64) {
    let (dx, dy) = ((toward.0 - a.x) as f64, (toward.1 - a.y) as f64);
    if dx == 0.0 && dy == 0.0 {
        return (a.x, a.y);
    }
    let tx = if dx == 0.0 {
        f64::INFINITY
    } else {
        (a.w as f64 / 2.0) / dx.abs()
    };
    let ty = if dy == 0.0 {
        f64::INFINITY
    } else {
        (a.h as f64 / 2.0) / dy.abs()
    };
    let s = tx.min(ty).min(1.0);
    (a.x + (dx * s).round() as i64, a.y + (dy * s).round() as i64)
}

/// A label's centre: far enough along the line from `end` that its box clears the
/// vertex the line leaves.
fn label_at(end: (i64, i64), other: (i64, i64), lines: &[String]) -> (i64, i64) {
    let (dx, dy) = ((other.0 - end.0) as f64, (other.1 - end.1) as f64);
    let len = (dx * dx + dy * dy).sqrt().max(1.0);
    let (ux, uy) = (dx / len, dy / len);
    let (w, h) = (text_width(lines) as f64, text_height(lines) as f64);
    // A third of the way along at least: labels of links that fan out from one side of
    // a box then sit apart, where the lines have diverged.
    let clear = ux.abs() * w / 2.0 + uy.abs() * h / 2.0 + 6.0;
    let s = clear.max(len * 0.3).min(len / 2.0);
    (
        end.0 + (ux * s).round() as i64,
        end.1 + (uy * s).round() as i64,
    )
}

/// Each link's line; `terse` is [`terse_links`], which also sized the layout's label room.
fn lines_of(t: &Topology, at: &[Placed], terse: &[bool], live: Option<&Live>) -> Vec<Line> {
    let mut pair_count: std::collections::BTreeMap<(usize, usize), (usize, usize)> =
        Default::default();
    let pairs: Vec<(usize, usize)> = t
        .links
        .iter()
        .map(|l| {
            let (a, b) = (
                vertex_index(t, vertex_of(l.a)),
                vertex_index(t, vertex_of(l.b)),
            );
            (a.min(b), a.max(b))
        })
        .collect();
    for p in &pairs {
        pair_count.entry(*p).or_default().1 += 1;
    }
    let tunnels = tunnels(t);
    t.links
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let slot = pair_count.get_mut(&pairs[i]).map_or((0, 1), |c| {
                c.0 += 1;
                (c.0 - 1, c.1)
            });
            let mut line = line(t, i, l, at, slot, live);
            line.tunnel.clone_from(&tunnels[i]);
            if terse[i] {
                terse_labels(t, l, &mut line);
            }
            line
        })
        .collect()
}

fn vertex_index(t: &Topology, v: Vertex) -> usize {
    match v {
        Vertex::Node(n) => t.node_vertex[n].index(),
        Vertex::Bridge(b) => t.bridge_vertex[b].index(),
    }
}

/// One link: a straight line between the two boxes, shifted sideways when several
/// links join the same two vertices (`slot` = this one's index and their count).
fn line(
    t: &Topology,
    i: usize,
    l: &crate::model::Link,
    at: &[Placed],
    slot: (usize, usize),
    live: Option<&Live>,
) -> Line {
    let boxes = [
        vertex_index(t, vertex_of(l.a)),
        vertex_index(t, vertex_of(l.b)),
    ];
    let (mut pa, mut pb) = (at[boxes[0]], at[boxes[1]]);
    if slot.1 > 1 {
        let (dx, dy) = ((pb.x - pa.x) as f64, (pb.y - pa.y) as f64);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let off = (slot.0 as f64 - (slot.1 as f64 - 1.0) / 2.0) * 16.0;
        let (ox, oy) = (
            (-dy / len * off).round() as i64,
            (dx / len * off).round() as i64,
        );
        pa.x += ox;
        pa.y += oy;
        pb.x += ox;
        pb.y += oy;
    }
    let from = clip(pa, (pb.x, pb.y));
    let to = clip(pb, (pa.x, pa.y));
    let (la, lb) = (end_lines(t, l.a, false), end_lines(t, l.b, false));
    let labels = [
        (la.clone(), label_at(from, to, &la)),
        (lb.clone(), label_at(to, from, &lb)),
    ];
    let node_ends: Vec<(String, String)> = [l.a, l.b]
        .iter()
        .filter_map(|e| match *e {
            End::Node { node, iface } => Some((
                t.nodes[node].name.clone(),
                t.nodes[node].interfaces[iface].name.clone(),
            )),
            End::Bridge { .. } | End::Uplink { .. } => None,
        })
        .collect();
    let (state, impairment) = match live {
        Some(live) => {
            let ends: Vec<(&str, &str)> = node_ends
                .iter()
                .map(|(n, i)| (n.as_str(), i.as_str()))
                .collect();
            let imp: Vec<String> = ends
                .iter()
                .filter_map(|(n, i)| live.iface(n, i)?.impairment.clone())
                .collect();
            let imp = (!imp.is_empty()).then(|| dedup_join(imp));
            (live.link_state(&ends).class().to_string(), imp)
        }
        None => (String::new(), declared_impairment(t, l)),
    };
    Line {
        id: format!("link-{i}"),
        from,
        to,
        labels,
        state,
        impairment,
        ends: [end_name(t, l.a), end_name(t, l.b)],
        boxes,
        hidden: Vec::new(),
        tunnel: None,
    }
}

/// Leaves the addresses off a dense bundle's end labels, keeping them for the tooltip
/// (where the labels go is decided afterwards, by `labels::declutter`).
fn terse_labels(t: &Topology, l: &crate::model::Link, line: &mut Line) {
    for (k, e) in [l.a, l.b].into_iter().enumerate() {
        let full = std::mem::replace(&mut line.labels[k].0, end_lines(t, e, true));
        line.hidden
            .extend(full.iter().skip(1).map(|a| format!("{} {a}", line.ends[k])));
    }
}

fn dedup_join(mut v: Vec<String>) -> String {
    v.dedup();
    v.join(" / ")
}

fn declared_impairment(t: &Topology, l: &crate::model::Link) -> Option<String> {
    [l.a, l.b].iter().find_map(|e| match *e {
        End::Node { node, iface } => t.nodes[node].interfaces[iface]
            .impair
            .as_deref()
            .map(|i| i.to_string()),
        End::Uplink { bridge, uplink } => t.bridges[bridge].uplinks[uplink]
            .impair
            .as_deref()
            .map(|i| i.to_string()),
        End::Bridge { .. } => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Host;

    #[test]
    fn a_host_title_has_its_address_and_an_mtu_other_than_1500() {
        let mut h = Host {
            name: "ha".into(),
            address: "192.0.2.11".parse().unwrap(),
            mtu: 1500,
        };
        assert_eq!(host_title(&h), "host ha 192.0.2.11");
        h.mtu = 9000;
        h.address = "2001:db8::11".parse().unwrap();
        assert_eq!(host_title(&h), "host ha 2001:db8::11 mtu 9000");
    }
}
