//! One self-contained page: the SVG, pan and zoom, and a panel per node (interfaces,
//! routes, processes). No script or style comes from elsewhere, so the file works offline.
//! Served by `nslab graph --serve`, the page polls `state.json` and restyles the picture
//! and the panels in place.

use std::fmt::Write;

use super::live::{self, Live, NodeLive};
use super::scene::{self, Scene};
use super::svg::{self, esc};
use crate::model::{Node, Route, Topology};

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Where the page fetches fresh state (`state.json` when served); none for a file.
    pub refresh: Option<String>,
}

/// How often a served page asks for fresh state.
const REFRESH_MS: u32 = 2000;

const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// The page.
pub fn render(t: &Topology, live: Option<&Live>, opts: &Options) -> String {
    let scene = scene::build(t, live);
    let mut out = String::new();
    let refresh = opts
        .refresh
        .as_deref()
        .map(|u| {
            format!(
                " data-refresh=\"{}\" data-interval=\"{REFRESH_MS}\"",
                esc(u)
            )
        })
        .unwrap_or_default();
    let what = if live.is_some() { "live" } else { "topology" };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>nslab: {lab}</title>\n<style>\n{STYLE}</style>\n</head>\n\
         <body{refresh}>\n<header><h1>lab <b>{lab}</b></h1><span class=\"what\">{what}</span>\
         <span id=\"stamp\"></span>{legend}\
         <span class=\"tools\"><button id=\"zoom-in\" title=\"zoom in\">+</button>\
         <button id=\"zoom-out\" title=\"zoom out\">&minus;</button>\
         <button id=\"fit\" title=\"fit the lab in the window\">fit</button></span></header>\n\
         <main>\n<div id=\"view\">\n",
        lab = esc(&t.lab),
        legend = legend(live.is_some()),
    );
    out.push_str(&svg::render(&scene));
    out.push_str("</div>\n<aside id=\"panels\">\n");
    for (i, n) in t.nodes.iter().enumerate() {
        let _ = writeln!(
            out,
            "<details class=\"panel {st}\" id=\"panel-{id}\" data-node=\"{id}\">\
             <summary>{id} <span class=\"st\">{st}</span></summary>\
             <div class=\"body\">{body}</div></details>",
            id = esc(&n.name),
            st = esc(&node_state(&scene, &n.name)),
            body = panel(t, i, live.and_then(|l| l.nodes.get(&n.name))),
        );
    }
    let _ = write!(
        out,
        "</aside>\n</main>\n<script>\n{SCRIPT}</script>\n</body>\n</html>\n"
    );
    out
}

fn legend(live: bool) -> String {
    if !live {
        return String::new();
    }
    "<span class=\"legend\"><i class=\"l-up\"></i>up <i class=\"l-down\"></i>down \
     <i class=\"l-nc\"></i>no carrier <i class=\"l-imp\"></i>impaired</span>"
        .to_string()
}

fn node_state(s: &Scene, name: &str) -> String {
    s.boxes
        .iter()
        .find(|b| !b.bridge && b.name == name)
        .map(|b| b.state.clone())
        .unwrap_or_default()
}

/// A node's panel: live interfaces, routes and processes, or the declared ones.
pub fn panel(t: &Topology, node: usize, live: Option<&NodeLive>) -> String {
    let mut out = String::new();
    match live {
        Some(l) => live_panel(&mut out, l),
        None => declared_panel(&mut out, &t.nodes[node], &super::local::of(t, node)),
    }
    out
}

fn live_panel(out: &mut String, l: &NodeLive) {
    if let Some(e) = &l.error {
        let _ = write!(out, "<p class=\"problem\">{}</p>", esc(e));
    }
    for p in &l.problems {
        let _ = write!(out, "<p class=\"problem\">{}</p>", esc(p));
    }
    out.push_str("<h3>Interfaces</h3><table><tr><th>name</th><th>state</th><th>mtu</th><th>addresses</th></tr>");
    for i in &l.interfaces {
        let state = match (i.up, i.carrier || i.name == "lo") {
            (true, true) => "up",
            (true, false) => "no-carrier",
            _ => "down",
        };
        let mut addrs = i.addresses.join("<br>");
        if let Some(imp) = &i.impairment {
            let _ = write!(addrs, "<br><em>{}</em>", esc(imp));
        }
        let _ = write!(
            out,
            "<tr class=\"{state}\"><td>{}</td><td>{state}</td><td>{}</td><td>{addrs}</td></tr>",
            esc(&i.name),
            i.mtu
        );
    }
    out.push_str("</table><h3>Routes</h3><pre>");
    for r in &l.routes {
        let _ = writeln!(out, "{}", esc(r));
    }
    out.push_str("</pre>");
    if !l.processes.is_empty() {
        out.push_str("<h3>Processes</h3><table><tr><th>name</th><th>state</th><th>restarts</th><th>ready</th></tr>");
        for p in &l.processes {
            let class = live::process_class(p);
            let _ = write!(
                out,
                "<tr class=\"p-{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.name),
                esc(&p.state),
                p.restarts,
                if p.ready { "yes" } else { "no" }
            );
        }
        out.push_str("</table>");
    }
}

/// The declared interfaces: the links' ends, then the node's own (`local`) with what
/// each is (the live panel lists them all as the kernel has them).
fn declared_panel(out: &mut String, n: &Node, local: &[super::local::Local]) {
    out.push_str("<h3>Interfaces</h3><table><tr><th>name</th><th>mtu</th><th>addresses</th></tr>");
    for a in &n.loopback {
        let _ = write!(out, "<tr><td>lo</td><td></td><td>{a}</td></tr>");
    }
    for i in &n.interfaces {
        let addrs: Vec<String> = i.addresses.iter().map(ToString::to_string).collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&i.name),
            i.mtu.map(|m| m.to_string()).unwrap_or_default(),
            addrs.join("<br>")
        );
    }
    for l in local {
        let _ = write!(
            out,
            "<tr class=\"local\"><td>{}<br><small>{}</small></td><td>{}</td><td>{}</td></tr>",
            esc(&l.name),
            esc(&l.what),
            l.mtu.map(|m| m.to_string()).unwrap_or_default(),
            l.addresses.join("<br>")
        );
    }
    out.push_str("</table><h3>Routes</h3><pre>");
    for r in &n.routes {
        let _ = writeln!(out, "{}", esc(&route_text(r)));
    }
    out.push_str("</pre>");
    if !n.processes.is_empty() {
        out.push_str("<h3>Processes</h3><table><tr><th>name</th><th>command</th></tr>");
        for p in &n.processes {
            let _ = write!(
                out,
                "<tr><td>{}</td><td><code>{}</code></td></tr>",
                esc(&p.name),
                esc(&p.cmd.display())
            );
        }
        out.push_str("</table>");
    }
}

/// A declared route as `ip route` would show it.
fn route_text(r: &Route) -> String {
    let mut s = match r.kind {
        crate::model::kinds::RouteKind::Unicast => r.dst.to_string(),
        k => format!("{} {}", format!("{k:?}").to_lowercase(), r.dst),
    };
    for h in &r.nexthops {
        let _ = write!(s, " via {} dev {}", h.gateway, h.dev);
        if r.nexthops.len() > 1 {
            let _ = write!(s, " weight {}", u16::from(h.weight) + 1);
        }
    }
    if let Some(d) = &r.dev {
        let _ = write!(s, " dev {d}");
    }
    if let Some(m) = r.metric {
        let _ = write!(s, " metric {m}");
    }
    s
}

/// The live state as the page applies it: per node its class, process line and panel;
/// per link its class and impairment.
pub fn state_json(t: &Topology, live: &Live) -> String {
    let scene = scene::build(t, Some(live));
    let mut nodes = serde_json::Map::new();
    for (i, n) in t.nodes.iter().enumerate() {
        let l = live.nodes.get(&n.name);
        let procs = l
            .filter(|l| !l.processes.is_empty())
            .map(|l| format!("procs: {}", live::process_summary(&l.processes)));
        nodes.insert(
            n.name.clone(),
            serde_json::json!({
                "state": node_state(&scene, &n.name),
                "procs": procs,
                "panel": panel(t, i, l),
            }),
        );
    }
    let mut links = serde_json::Map::new();
    for l in &scene.links {
        links.insert(
            l.id.clone(),
            serde_json::json!({ "state": l.state, "impairment": l.impairment }),
        );
    }
    serde_json::json!({ "lab": t.lab, "nodes": nodes, "links": links }).to_string()
}
