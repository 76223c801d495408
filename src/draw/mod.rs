//! Pictures of a lab: text for other tools (Graphviz DOT, Mermaid) and nslab's own drawing
//! (SVG, a self-contained HTML page, draw.io), laid out by `layout.rs` and, for a running
//! lab, coloured by its live state.

pub mod drawio;
pub mod html;
mod labels;
pub mod layout;
pub mod live;
mod local;
pub mod scene;
pub mod svg;
mod text;

use crate::model::Topology;
pub use live::Live;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Graphviz DOT (`dot -Tsvg`).
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
    /// nslab's own picture: a standalone SVG.
    Svg,
    /// One self-contained page: the SVG with pan/zoom and a panel per node.
    Html,
    /// A draw.io (diagrams.net) diagram, laid out the same way.
    Drawio,
}

/// The topology alone, in any format.
pub fn render(t: &Topology, format: Format) -> String {
    render_live(t, None, format)
}

/// Each node's HTML panel (live when the lab's state is given), by its box's id.
fn panels(t: &Topology, live: Option<&Live>) -> std::collections::HashMap<String, String> {
    t.nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let state = live.and_then(|l| l.nodes.get(&n.name));
            (format!("node-{}", n.name), html::panel(t, i, state))
        })
        .collect()
}

/// The topology, with the live state of its running lab when given (SVG and HTML show
/// it; DOT and Mermaid draw the topology only).
pub fn render_live(t: &Topology, live: Option<&Live>, format: Format) -> String {
    match format {
        Format::Dot => text::dot(t),
        Format::Mermaid => text::mermaid(t),
        Format::Svg => svg::render(&scene::build(t, live)),
        Format::Html => html::render(t, live, &html::Options::default()),
        Format::Drawio => drawio::render(&scene::build(t, live), &panels(t, live)),
    }
}
