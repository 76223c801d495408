//! The topology as text for other tools: Graphviz DOT or Mermaid. Vertices are nodes and
//! bridges, edges are links labelled with interface names and addresses. A multi-host lab
//! has a cluster (subgraph) per host, and its links between hosts are dashed and say VXLAN.

use std::fmt::Write;

use petgraph::visit::EdgeRef;

use crate::model::{End, Topology, Vertex};

pub(super) fn end_label(t: &Topology, e: End, sep: &str) -> String {
    match e {
        End::Node { node, iface } => {
            let i = &t.nodes[node].interfaces[iface];
            let mut s = i.name.clone();
            for a in &i.addresses {
                s.push_str(sep);
                s.push_str(&a.to_string());
            }
            s
        }
        End::Bridge { bridge, port } => t.bridges[bridge].ports[port].name.clone(),
        End::Uplink { bridge, uplink } => t.bridges[bridge].uplinks[uplink].name.clone(),
    }
}

pub(super) fn vertex_label(t: &Topology, v: Vertex, sep: &str) -> String {
    match v {
        Vertex::Node(n) => {
            let node = &t.nodes[n];
            let mut s = node.name.clone();
            for a in &node.loopback {
                s.push_str(sep);
                s.push_str(&format!("lo {a}"));
            }
            s
        }
        Vertex::Bridge(b) => {
            let br = &t.bridges[b];
            let mut s = br.name.clone();
            for n in &br.subnets {
                s.push_str(sep);
                s.push_str(&n.to_string());
            }
            s
        }
    }
}

fn vertex_id(v: Vertex) -> String {
    match v {
        Vertex::Node(n) => format!("n{n}"),
        Vertex::Bridge(b) => format!("b{b}"),
    }
}

/// Each host of a multi-host lab, in written order: its title and its vertices' ids
/// (a bridge with its first member). Empty for a lab on one machine.
fn host_members(t: &Topology) -> Vec<(String, Vec<String>)> {
    let groups = super::scene::groups(t);
    t.hosts
        .iter()
        .map(|h| {
            let members = t
                .graph
                .node_indices()
                .filter(|i| groups[i.index()].as_deref() == Some(h.name.as_str()))
                .map(|i| vertex_id(t.graph[i]))
                .collect();
            (super::scene::host_title(h), members)
        })
        .collect()
}

pub(super) fn dot(t: &Topology) -> String {
    let mut out = String::new();
    let hosts = host_members(t);
    let _ = writeln!(out, "graph \"{}\" {{", t.lab);
    // neato ignores clusters; fdp draws them.
    let engine = if hosts.is_empty() { "neato" } else { "fdp" };
    let _ = writeln!(out, "  layout={engine}; overlap=false; splines=true;");
    let _ = writeln!(out, "  node [shape=box, fontname=\"monospace\"];");
    let _ = writeln!(out, "  edge [fontname=\"monospace\", fontsize=9];");
    for idx in t.graph.node_indices() {
        let v = t.graph[idx];
        let shape = match v {
            Vertex::Node(_) => "box",
            Vertex::Bridge(_) => "ellipse",
        };
        let _ = writeln!(
            out,
            "  {} [label=\"{}\", shape={shape}];",
            vertex_id(v),
            vertex_label(t, v, "\\n")
        );
    }
    for (i, (title, members)) in hosts.iter().enumerate() {
        let _ = writeln!(
            out,
            "  subgraph cluster_{i} {{ label=\"{title}\"; style=dashed; {}; }}",
            members.join("; ")
        );
    }
    let tunnels = super::scene::tunnels(t);
    for e in t.graph.edge_references() {
        let l = &t.links[*e.weight()];
        let (a, b) = (t.graph[e.source()], t.graph[e.target()]);
        let tunnel = match &tunnels[*e.weight()] {
            Some(v) => format!(", label=\"{v}\", style=dashed"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "  {} -- {} [taillabel=\"{}\", headlabel=\"{}\"{tunnel}];",
            vertex_id(a),
            vertex_id(b),
            end_label(t, l.a, "\\n"),
            end_label(t, l.b, "\\n")
        );
    }
    out.push_str("}\n");
    out
}

pub(super) fn mermaid(t: &Topology) -> String {
    let mut out = String::from("graph LR\n");
    for idx in t.graph.node_indices() {
        let v = t.graph[idx];
        let label = vertex_label(t, v, "<br/>");
        let _ = match v {
            Vertex::Node(_) => writeln!(out, "  {}[\"{label}\"]", vertex_id(v)),
            Vertex::Bridge(_) => writeln!(out, "  {}((\"{label}\"))", vertex_id(v)),
        };
    }
    for (i, (title, members)) in host_members(t).iter().enumerate() {
        let _ = writeln!(out, "  subgraph host{i}[\"{title}\"]");
        for m in members {
            let _ = writeln!(out, "    {m}");
        }
        out.push_str("  end\n");
    }
    let tunnels = super::scene::tunnels(t);
    for e in t.graph.edge_references() {
        let l = &t.links[*e.weight()];
        let (a, b) = (t.graph[e.source()], t.graph[e.target()]);
        // A dotted edge between hosts, its VXLAN in the label.
        let (edge, tunnel) = match &tunnels[*e.weight()] {
            Some(v) => ("-.-", format!(" ({v})")),
            None => ("---", String::new()),
        };
        let _ = writeln!(
            out,
            "  {} {edge}|\"{} — {}{tunnel}\"| {}",
            vertex_id(a),
            end_label(t, l.a, " "),
            end_label(t, l.b, " "),
            vertex_id(b)
        );
    }
    out
}
