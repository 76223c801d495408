//! The scene as a draw.io (diagrams.net) file, which containerlab users open and edit:
//! one cell per node and bridge at the layout's place, one edge per link with its two
//! end labels as child cells near each end, and a container per host frame. Each edge has
//! the tooltip the SVG gives its line, so the addresses a dense bundle leaves off its
//! labels are in the file too. Each node has its HTML page's panel (interfaces, routes,
//! processes) as its tooltip, so the file alone tells what a node is.

use std::collections::HashMap;
use std::fmt::Write;

use super::scene::{Scene, VBox};
use super::svg::esc;

const NODE: &str = "rounded=1;arcSize=6;whiteSpace=wrap;html=1;fillColor=#eef4fb;\
strokeColor=#3d6fa8;fontFamily=monospace;fontSize=12;verticalAlign=top;";
const BRIDGE: &str = "rounded=1;arcSize=50;whiteSpace=wrap;html=1;fillColor=#fdf6e3;\
strokeColor=#b07d12;fontFamily=monospace;fontSize=12;verticalAlign=top;";
const FRAME: &str = "rounded=1;arcSize=3;html=1;dashed=1;fillColor=#f7f9fc;\
strokeColor=#9aa8b8;verticalAlign=top;align=left;spacingLeft=8;fontStyle=1;";
const EDGE: &str = "endArrow=none;html=1;strokeColor=#4b5563;strokeWidth=1.5;";
const EDGE_DOWN: &str = "endArrow=none;html=1;strokeColor=#c92a2a;strokeWidth=2;dashed=1;";
const EDGE_IMPAIRED: &str = "endArrow=none;html=1;strokeColor=#c77c02;strokeWidth=2.5;";
const LABEL: &str = "edgeLabel;html=1;align=center;verticalAlign=middle;resizable=0;\
points=[];fontFamily=monospace;fontSize=10;";

/// Lines as one html value (`<br>` between, each line escaped, then the whole escaped
/// again as an attribute).
fn value(lines: &[String]) -> String {
    let html: Vec<String> = lines.iter().map(|l| esc(l)).collect();
    esc(&html.join("<br>"))
}

/// A tooltip as an attribute: draw.io shows it as HTML (so it is escaped once for that,
/// then for the attribute) and breaks its lines at newlines, written `&#10;` because a
/// newline in an attribute reads back as a space.
fn tooltip(text: &str) -> String {
    esc(&esc(text)).replace('\n', "&#10;")
}

/// The scene, with `panels` (HTML, by box id) as the tooltips of its nodes.
pub fn render(s: &Scene, panels: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<mxfile host=\"nslab\">\n<diagram id=\"{lab}\" name=\"{lab}\">\n\
         <mxGraphModel grid=\"1\" gridSize=\"10\" arrows=\"0\" page=\"1\" pageWidth=\"{w}\" \
         pageHeight=\"{h}\">\n<root>\n<mxCell id=\"0\"/>\n<mxCell id=\"1\" parent=\"0\"/>",
        lab = esc(&s.lab),
        w = s.width,
        h = s.height
    );
    for f in &s.frames {
        let _ = writeln!(
            out,
            "<mxCell id=\"host-{n}\" value=\"{t}\" style=\"{FRAME}\" vertex=\"1\" \
             parent=\"1\"><mxGeometry x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" \
             as=\"geometry\"/></mxCell>",
            f.x,
            f.y,
            f.w,
            f.h,
            n = esc(&f.name),
            t = esc(&f.title)
        );
    }
    for b in &s.boxes {
        vertex(&mut out, b, panels.get(&b.id).map(String::as_str));
    }
    for l in &s.links {
        let style = match (l.state.as_str(), &l.impairment) {
            ("down" | "no-carrier", _) => EDGE_DOWN,
            (_, Some(_)) => EDGE_IMPAIRED,
            _ => EDGE,
        };
        // An `object` around the edge carries its label and a `tooltip`, which draw.io
        // shows on hovering the edge (a plain mxCell has no place for one).
        let _ = writeln!(
            out,
            "<object id=\"{id}\" label=\"{v}\" tooltip=\"{tip}\"><mxCell style=\"{style}\" \
             edge=\"1\" parent=\"1\" source=\"{a}\" target=\"{b}\"><mxGeometry relative=\"1\" \
             as=\"geometry\"/></mxCell></object>",
            id = l.id,
            v = esc(&[l.tunnel.as_deref(), l.impairment.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ")),
            tip = tooltip(&l.tooltip()),
            a = esc(&s.boxes[l.boxes[0]].id),
            b = esc(&s.boxes[l.boxes[1]].id),
        );
        for (end, (lines, _)) in l.labels.iter().enumerate() {
            if lines.is_empty() {
                continue;
            }
            let x = if end == 0 { "-0.55" } else { "0.55" };
            let _ = writeln!(
                out,
                "<mxCell id=\"{id}-{end}\" value=\"{v}\" style=\"{LABEL}\" vertex=\"1\" \
                 connectable=\"0\" parent=\"{id}\"><mxGeometry x=\"{x}\" relative=\"1\" \
                 as=\"geometry\"><mxPoint as=\"offset\"/></mxGeometry></mxCell>",
                id = l.id,
                v = value(lines),
            );
        }
    }
    out.push_str("</root>\n</mxGraphModel>\n</diagram>\n</mxfile>\n");
    out
}

/// A node or bridge; one with a panel is wrapped in an `object` that carries it as the
/// tooltip (HTML, which draw.io sanitises and shows on hover).
fn vertex(out: &mut String, b: &VBox, panel: Option<&str>) {
    let mut lines = vec![format!("<b>{}</b>", esc(&b.name))];
    lines.extend(b.lines.iter().map(|l| esc(l)));
    let style = if b.bridge { BRIDGE } else { NODE };
    let degraded = if b.state == "degraded" || b.state == "missing" {
        "strokeColor=#d9480f;strokeWidth=2;"
    } else {
        ""
    };
    let geometry = format!(
        "<mxGeometry x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" as=\"geometry\"/>",
        b.at.left(),
        b.at.top(),
        b.at.w,
        b.at.h
    );
    let (id, value) = (esc(&b.id), esc(&lines.join("<br>")));
    let style = format!("{style}{degraded}");
    let _ = match panel {
        Some(p) => writeln!(
            out,
            "<object id=\"{id}\" label=\"{value}\" tooltip=\"{tip}\"><mxCell \
             style=\"{style}\" vertex=\"1\" parent=\"1\">{geometry}</mxCell></object>",
            tip = esc(p).replace('\n', "&#10;"),
        ),
        None => writeln!(
            out,
            "<mxCell id=\"{id}\" value=\"{value}\" style=\"{style}\" vertex=\"1\" \
             parent=\"1\">{geometry}</mxCell>"
        ),
    };
}
