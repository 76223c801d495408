//! The scene as a standalone SVG. Every element that the live state changes carries an
//! id and a class (`node-r1` with `up`/`degraded`/`missing`, `link-3` with `up`/`down`),
//! so the HTML page restyles it in place, and the browser test finds it in the DOM.

use std::fmt::Write;

use super::scene::{Line, Scene, VBox};

/// Escapes text for XML content and attribute values.
pub use crate::xml::escape as esc;

const STYLE: &str = "\
.nslab text{font-family:monospace;font-size:12px;fill:#1d2733}
.nslab .name{font-weight:bold}
.nslab .vertex rect{fill:#eef4fb;stroke:#3d6fa8;stroke-width:1.5}
.nslab .vertex.bridge rect{fill:#fdf6e3;stroke:#b07d12}
.nslab .vertex.degraded rect{fill:#fff0e6;stroke:#d9480f;stroke-width:2.5}
.nslab .vertex.missing rect{fill:#f1f1f1;stroke:#888;stroke-dasharray:4 3}
.nslab .link line{stroke:#4b5563;stroke-width:1.6}
.nslab .link.impaired line{stroke:#c77c02;stroke-width:2.4}
.nslab .link.vxlan line{stroke:#6741d9;stroke-dasharray:10 3 2 3}
.nslab .tunnel{fill:#6741d9;font-weight:bold}
.nslab .link.no-carrier line{stroke:#d9480f;stroke-dasharray:2 4}
.nslab .link.down line{stroke:#c92a2a;stroke-width:2.4;stroke-dasharray:8 5}
.nslab .link.unknown line{stroke:#999;stroke-dasharray:2 4}
.nslab .label text{font-size:11px;paint-order:stroke;stroke:#fff;stroke-width:4px;stroke-linejoin:round}
.nslab .imp{fill:#a35f00;font-style:italic}
.nslab .frame rect{fill:#f7f9fc;stroke:#9aa8b8;stroke-dasharray:6 4}
.nslab .frame text{font-weight:bold;fill:#52606d}
";

/// The whole SVG document.
pub fn render(s: &Scene) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"nslab\" id=\"graph\" \
         viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" data-lab=\"{lab}\">",
        w = s.width,
        h = s.height,
        lab = esc(&s.lab)
    );
    let _ = writeln!(out, "<title>lab {}</title>", esc(&s.lab));
    let _ = writeln!(out, "<style>\n{STYLE}</style>");
    let _ = writeln!(
        out,
        "<rect width=\"{}\" height=\"{}\" fill=\"#fff\"/>",
        s.width, s.height
    );
    for f in &s.frames {
        let _ = writeln!(
            out,
            "<g class=\"frame\" id=\"host-{n}\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"8\"/>\
             <text x=\"{}\" y=\"{}\">{}</text></g>",
            f.x,
            f.y,
            f.w,
            f.h,
            f.x + 10,
            f.y + 18,
            esc(&f.title),
            n = esc(&f.name)
        );
    }
    out.push_str("<g class=\"links\">\n");
    for l in &s.links {
        link(&mut out, l);
    }
    out.push_str("</g>\n<g class=\"vertices\">\n");
    for b in &s.boxes {
        vertex(&mut out, b);
    }
    out.push_str("</g>\n</svg>\n");
    out
}

fn classes(base: &str, extra: &[&str]) -> String {
    let mut c = base.to_string();
    for e in extra.iter().filter(|e| !e.is_empty()) {
        c.push(' ');
        c.push_str(e);
    }
    c
}

fn link(out: &mut String, l: &Line) {
    let imp = if l.impairment.is_some() {
        "impaired"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "<g class=\"{}\" id=\"{}\" data-a=\"{}\" data-b=\"{}\">",
        classes("link", &[&l.state, imp, tunnel_class(l)]),
        l.id,
        esc(&l.ends[0]),
        esc(&l.ends[1])
    );
    let tip = l.tooltip();
    let _ = writeln!(out, "<title>{}</title>", esc(&tip));
    let _ = writeln!(
        out,
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
        l.from.0, l.from.1, l.to.0, l.to.1
    );
    out.push_str("<g class=\"label\">");
    for (lines, (x, y)) in &l.labels {
        text_block(out, lines, *x, *y, 13, "");
    }
    let (mx, mut my) = ((l.from.0 + l.to.0) / 2, (l.from.1 + l.to.1) / 2);
    if let Some(t) = &l.tunnel {
        text_block(out, std::slice::from_ref(t), mx, my, 13, "tunnel");
        my += 13;
    }
    if let Some(i) = &l.impairment {
        text_block(out, std::slice::from_ref(i), mx, my, 13, "imp");
    }
    out.push_str("</g>\n</g>\n");
}

/// `vxlan` for a link between machines, so the line is drawn as a tunnel.
fn tunnel_class(l: &Line) -> &'static str {
    if l.tunnel.is_some() { "vxlan" } else { "" }
}

/// Lines of text centred on (x, y), one `tspan` each.
fn text_block(out: &mut String, lines: &[String], x: i64, y: i64, step: i64, class: &str) {
    if lines.is_empty() {
        return;
    }
    let top = y - (lines.len() as i64 - 1) * step / 2;
    let class = if class.is_empty() {
        String::new()
    } else {
        format!(" class=\"{class}\"")
    };
    let _ = write!(
        out,
        "<text{class} x=\"{x}\" y=\"{top}\" text-anchor=\"middle\" dominant-baseline=\"middle\">"
    );
    for (i, l) in lines.iter().enumerate() {
        let dy = if i == 0 { 0 } else { step };
        let _ = write!(out, "<tspan x=\"{x}\" dy=\"{dy}\">{}</tspan>", esc(l));
    }
    out.push_str("</text>");
}

fn vertex(out: &mut String, b: &VBox) {
    let kind = if b.bridge { "bridge" } else { "node" };
    let _ = writeln!(
        out,
        "<g class=\"{}\" id=\"{}\" data-name=\"{}\">",
        classes("vertex", &[kind, &b.state]),
        esc(&b.id),
        esc(&b.name)
    );
    let mut tip = format!("{kind} {}", b.name);
    if !b.state.is_empty() {
        tip.push_str(&format!(" ({})", b.state));
    }
    let _ = writeln!(out, "<title>{}</title>", esc(&tip));
    let rx = if b.bridge { b.at.h / 2 } else { 4 };
    let _ = writeln!(
        out,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"{rx}\"/>",
        b.at.left(),
        b.at.top(),
        b.at.w,
        b.at.h
    );
    let mut all = vec![b.name.clone()];
    all.extend(b.lines.iter().cloned());
    let top = b.at.top() + 6 + 15 / 2 + 1;
    let _ = write!(
        out,
        "<text x=\"{x}\" y=\"{top}\" text-anchor=\"middle\" dominant-baseline=\"middle\">",
        x = b.at.x
    );
    for (i, l) in all.iter().enumerate() {
        let (dy, class) = match i {
            0 => (0, " class=\"name\""),
            _ if l.starts_with("procs: ") => (15, " class=\"procs\""),
            _ => (15, ""),
        };
        let _ = write!(
            out,
            "<tspan x=\"{}\" dy=\"{dy}\"{class}>{}</tspan>",
            b.at.x,
            esc(l)
        );
    }
    out.push_str("</text>\n</g>\n");
}
