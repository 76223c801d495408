//! Pictures of a lab: nslab's own SVG and HTML (no root), and a running lab's live
//! picture, served and opened in a real headless browser (root; Debian's chromium).

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use nslab::draw::{self, Format, live};
use support::{Lab, nslab, privileged, root, text};

fn compile(path: &Path) -> nslab::Compiled {
    let text = std::fs::read_to_string(path).unwrap();
    nslab::compile_str(&text, "lab.yaml", path.parent().unwrap()).unwrap()
}

fn compile_text(yaml: &str) -> nslab::Compiled {
    nslab::compile_str(yaml, "lab.yaml", &std::env::temp_dir()).unwrap()
}

fn examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("topologies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

/// The ids of the SVG's elements with the given class.
fn ids_with_class(doc: &roxmltree::Document, class: &str) -> Vec<String> {
    doc.descendants()
        .filter(|n| {
            n.attribute("class")
                .is_some_and(|c| c.split(' ').any(|w| w == class))
        })
        .filter_map(|n| n.attribute("id").map(String::from))
        .collect()
}

#[test]
fn every_example_draws_every_node_bridge_and_link_as_well_formed_svg() {
    for f in examples() {
        let c = compile(&f);
        let t = &c.topology;
        let svg = draw::render(t, Format::Svg);
        let doc = roxmltree::Document::parse(&svg)
            .unwrap_or_else(|e| panic!("{}: not XML: {e}", f.display()));
        let mut want: Vec<String> = t.nodes.iter().map(|n| format!("node-{}", n.name)).collect();
        want.extend(t.bridges.iter().map(|b| format!("bridge-{}", b.name)));
        let mut got = ids_with_class(&doc, "vertex");
        want.sort();
        got.sort();
        assert_eq!(got, want, "{}", f.display());
        assert_eq!(ids_with_class(&doc, "link").len(), t.links.len());
        // Interface names and addresses are on the links.
        for n in &t.nodes {
            for i in &n.interfaces {
                for a in &i.addresses {
                    assert!(svg.contains(&a.to_string()), "{}: {a} missing", f.display());
                }
            }
        }
    }
}

/// A draw.io cell's id: its own, or that of the `object` around it (which carries a
/// label and tooltip for it).
fn cell_id<'a>(c: &roxmltree::Node<'a, '_>) -> Option<&'a str> {
    c.attribute("id").or_else(|| {
        c.parent()
            .filter(|p| p.has_tag_name("object"))
            .and_then(|p| p.attribute("id"))
    })
}

#[test]
fn every_example_is_a_drawio_diagram_whose_edges_join_its_vertices() {
    for f in examples() {
        let t = compile(&f).topology;
        let xml = draw::render(&t, Format::Drawio);
        let doc = roxmltree::Document::parse(&xml)
            .unwrap_or_else(|e| panic!("{}: not XML: {e}", f.display()));
        let cells: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("mxCell"))
            .collect();
        let vertices: Vec<&str> = cells
            .iter()
            .filter(|c| c.attribute("vertex") == Some("1") && c.attribute("parent") == Some("1"))
            .filter_map(cell_id)
            .collect();
        // A multi-host lab's hosts are frames: vertices of their own, around their nodes.
        let (frames, vertices): (Vec<&str>, Vec<&str>) =
            vertices.into_iter().partition(|id| id.starts_with("host-"));
        assert_eq!(frames.len(), t.hosts.len(), "{}", f.display());
        assert_eq!(
            vertices.len(),
            t.nodes.len() + t.bridges.len(),
            "{}",
            f.display()
        );
        let edges: Vec<_> = cells
            .iter()
            .filter(|c| c.attribute("edge") == Some("1"))
            .collect();
        assert_eq!(edges.len(), t.links.len(), "{}", f.display());
        for e in edges {
            for end in ["source", "target"] {
                let id = e.attribute(end).unwrap();
                assert!(
                    vertices.contains(&id),
                    "{}: {end} {id} is no vertex",
                    f.display()
                );
            }
        }
    }
}

fn overlapping(boxes: &[draw::layout::Placed]) -> Option<(usize, usize)> {
    for (i, a) in boxes.iter().enumerate() {
        for (j, b) in boxes.iter().enumerate().skip(i + 1) {
            if a.left() < b.left() + b.w
                && b.left() < a.left() + a.w
                && a.top() < b.top() + b.h
                && b.top() < a.top() + a.h
            {
                return Some((i, j));
            }
        }
    }
    None
}

fn generated(args: &[&str]) -> String {
    let out = Command::new(root().join("scripts/gen-topology"))
        .args(args)
        .output()
        .expect("scripts/gen-topology runs (python3)");
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn labs_of_2_to_300_nodes_lay_out_without_overlapping_boxes() {
    let mut labs: Vec<(String, String)> = examples()
        .iter()
        .map(|f| (f.display().to_string(), std::fs::read_to_string(f).unwrap()))
        .collect();
    for args in [["chain", "100"], ["star", "300"], ["clos", "300"]] {
        labs.push((args.join(" "), generated(&args)));
    }
    for (what, yaml) in labs {
        let c = nslab::compile_str(&yaml, "lab.yaml", &root().join("topologies")).unwrap();
        let start = Instant::now();
        let scene = draw::scene::build(&c.topology, None);
        let took = start.elapsed();
        let boxes: Vec<_> = scene.boxes.iter().map(|b| b.at).collect();
        if let Some((i, j)) = overlapping(&boxes) {
            panic!(
                "{what}: {} overlaps {}",
                scene.boxes[i].id, scene.boxes[j].id
            );
        }
        for b in &boxes {
            assert!(b.left() >= 0 && b.left() + b.w <= scene.width, "{what}");
            assert!(b.top() >= 0 && b.top() + b.h <= scene.height, "{what}");
        }
        eprintln!(
            "{what}: {} vertices, {} links, {}x{} px in {:.0?}",
            boxes.len(),
            scene.links.len(),
            scene.width,
            scene.height,
            took
        );
    }
}

#[test]
fn the_svg_is_the_same_bytes_from_two_processes() {
    let run = || {
        let o = nslab()
            .current_dir(root())
            .args(["graph", "topologies/ospf-ring.yaml", "--format", "svg"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        o.stdout
    };
    let first = run();
    assert!(first.starts_with(b"<svg "));
    assert_eq!(first, run());
}

#[test]
fn the_html_page_is_self_contained() {
    let c = compile(&root().join("topologies/services.yaml"));
    let page = draw::render(&c.topology, Format::Html);
    for bad in ["src=", "href=", "@import", "url(", "https:", "//cdn"] {
        assert!(
            !page.contains(bad),
            "the page refers to something outside: {bad}"
        );
    }
    // The only URL is the SVG namespace, which is a name, not a fetch.
    assert_eq!(page.matches("http:").count(), 1);
    for n in &c.topology.nodes {
        assert!(
            page.contains(&format!("id=\"panel-{}\"", n.name)),
            "{}",
            n.name
        );
    }
    // The declared processes are in their node's panel.
    assert!(page.contains("<h3>Processes</h3>"));
}

#[test]
fn nodes_labelled_with_a_host_are_framed_by_host() {
    let c = compile_text(
        "name: two-sites\n\
         nodes:\n  a1: { labels: { host: alpha } }\n  a2: { labels: { host: alpha } }\n  \
         b1: { labels: { host: beta } }\n  b2: { labels: { host: beta } }\n\
         links:\n  - [a1:eth0, a2:eth0]\n  - [b1:eth0, b2:eth0]\n  - [a2:eth1, b1:eth1]\n",
    );
    let scene = draw::scene::build(&c.topology, None);
    let names: Vec<&str> = scene.frames.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    for b in &scene.boxes {
        let f = &scene.frames[usize::from(b.name.starts_with('b'))];
        assert!(
            b.at.left() >= f.x && b.at.left() + b.at.w <= f.x + f.w,
            "{}",
            b.name
        );
        assert!(
            b.at.top() >= f.y && b.at.top() + b.at.h <= f.y + f.h,
            "{}",
            b.name
        );
    }
    assert!(draw::render(&c.topology, Format::Svg).contains("id=\"host-alpha\""));
}

/// The live state of a two-node lab whose link is down at r2 and whose process failed.
fn broken_live() -> live::Live {
    let iface = |name: &str, up: bool| live::IfaceLive {
        name: name.into(),
        up,
        carrier: up,
        mtu: 1500,
        addresses: vec![],
        impairment: None,
    };
    let mut l = live::Live::default();
    for (node, up) in [("r1", true), ("r2", false)] {
        l.nodes.insert(
            node.into(),
            live::NodeLive {
                state: if up { "up" } else { "degraded" }.into(),
                interfaces: vec![iface("lo", true), iface("eth0", up)],
                processes: vec![live::ProcLive {
                    name: "web".into(),
                    state: if up { "running" } else { "backoff" }.into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
        );
    }
    l
}

#[test]
fn live_state_marks_links_down_and_nodes_degraded() {
    let c = compile_text(
        "name: pair\nnodes:\n  r1: {}\n  r2: {}\n  r3: {}\n\
         links:\n  - [r1:eth0, r2:eth0]\n  - [r1:eth1, r3:eth0]\n",
    );
    let svg = draw::render_live(&c.topology, Some(&broken_live()), Format::Svg);
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let class = |id: &str| {
        doc.descendants()
            .find(|n| n.attribute("id") == Some(id))
            .and_then(|n| n.attribute("class"))
            .unwrap_or_else(|| panic!("no {id}"))
            .to_string()
    };
    assert_eq!(class("link-0"), "link down");
    assert_eq!(class("link-1"), "link unknown"); // r3 is not in the live state
    assert_eq!(class("node-r1"), "vertex node up");
    assert_eq!(class("node-r2"), "vertex node degraded");
    assert_eq!(class("node-r3"), "vertex node missing");
    assert!(svg.contains("procs: 1 failed"), "{svg}");
}

#[test]
fn serving_refuses_any_address_but_loopback() {
    for addr in ["0.0.0.0:7878", "[::]:7878", "10.1.2.3:80"] {
        let o = nslab()
            .args(["graph", "--lab", "gr-none", "--serve", addr])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(3), "{addr}: {}", text(&o));
        assert!(text(&o).contains("loopback address only"), "{}", text(&o));
    }
}

// ---- a running lab (root) ----

/// A lab with a bridge, a rate limit and a process: the screenshot's subject too.
const LIVE_LAB: &str = "\
addressing: { ipv6: fd00:9::/48 }
routing: static
defaults: { sysctls: { net.ipv4.ip_forward: 1 } }
bridges:
  lan: {}
nodes:
  core: { loopback: auto, labels: { role: core } }
  edge1: { loopback: auto }
  edge2: { loopback: auto }
  web:
    processes: [{ name: httpd, cmd: \"sleep 1000\" }]
  db:
    processes: [{ name: store, cmd: \"sleep 1000\" }]
  client: {}
links:
  - [core:eth1, edge1:eth1]
  - { endpoints: [core:eth2, edge2:eth1], impair: { rate: 50mbit } }
  - [edge1:eth2, edge2:eth2]
  - [edge1:eth0, lan]
  - [web:eth0, lan]
  - [db:eth0, lan]
  - [edge2:eth3, client:eth0]
";

fn live_svg(lab: &str) -> String {
    let o = nslab()
        .args(["graph", "--lab", lab, "--format", "svg"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8(o.stdout).unwrap()
}

fn class_of(svg: &str, id: &str) -> String {
    let doc = roxmltree::Document::parse(svg).unwrap();
    doc.descendants()
        .find(|n| n.attribute("id") == Some(id))
        .and_then(|n| n.attribute("class"))
        .unwrap_or_else(|| panic!("no element {id}"))
        .to_string()
}

#[test]
fn a_running_lab_is_drawn_with_its_live_links_impairments_and_processes() {
    if !privileged() {
        return;
    }
    let _g = support::shared();
    let lab = Lab::new("gr-live", LIVE_LAB);
    lab.up();
    let svg = live_svg(&lab.name);
    for n in ["core", "edge1", "edge2", "web", "db", "client"] {
        assert_eq!(
            class_of(&svg, &format!("node-{n}")),
            "vertex node up",
            "{n}"
        );
    }
    assert_eq!(class_of(&svg, "link-0"), "link up");
    // The rate limit is read back from the kernel's qdisc.
    assert_eq!(class_of(&svg, "link-1"), "link up impaired");
    assert!(svg.contains("rate 50mbit"), "{svg}");
    assert!(svg.contains("procs: 1 running"));

    let o = nslab()
        .args(["link", "down", "--lab", &lab.name, "core:eth1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = nslab()
        .args(["node", "stop", "--lab", &lab.name, "db"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let svg = live_svg(&lab.name);
    assert_eq!(class_of(&svg, "link-0"), "link down");
    assert_eq!(class_of(&svg, "node-core"), "vertex node degraded");
    assert_eq!(class_of(&svg, "node-edge1"), "vertex node degraded");
    assert_eq!(class_of(&svg, "link-2"), "link up");
    assert!(svg.contains("procs: 1 stopped"), "{svg}");
    lab.down();
}

/// The server, stopped (by its pid) when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `nslab graph --serve` on a free loopback port; returns it and its URL.
fn serve(lab: &str) -> (Server, String) {
    let mut child = nslab()
        .args(["graph", "--lab", lab, "--serve", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let server = Server(child);
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no URL in `{line}`"))
        .to_string();
    (server, url)
}

/// Debian's chromium, which CI installs (.ci/run); under CI=true its absence fails.
fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium is not installed (.ci/run installs it; CI=true forbids skipping)"
        );
        eprintln!("skipping: chromium is not installed");
    }
    found
}

/// Runs headless chromium on `url` with `args`, letting the page's scripts and fetches
/// run for a few (virtual) seconds first.
fn browse(chromium: &Path, url: &str, args: &[&str]) -> std::process::Output {
    let profile = tempdir("gr-chromium");
    let o = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--virtual-time-budget=4000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    assert!(o.status.success(), "chromium failed: {}", text(&o));
    o
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The rendered DOM (after scripts ran) as a document.
fn dom(chromium: &Path, url: &str) -> String {
    let o = browse(chromium, url, &["--dump-dom"]);
    String::from_utf8(o.stdout).unwrap()
}

fn dom_class(dom: &str, id: &str) -> String {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("{id} is not in the DOM"));
    let tag = &dom[dom[..start].rfind('<').unwrap()..];
    let tag = &tag[..tag.find('>').unwrap()];
    let c = tag
        .find("class=\"")
        .unwrap_or_else(|| panic!("{id} has no class: {tag}"));
    tag[c + 7..].split('"').next().unwrap().to_string()
}

#[test]
fn the_served_page_renders_in_chromium_and_shows_a_link_set_down_after_a_refresh() {
    if !privileged() {
        return;
    }
    let Some(chromium) = chromium() else { return };
    let _g = support::shared();
    let lab = Lab::new("gr-web", LIVE_LAB);
    lab.up();
    let (_server, url) = serve(&lab.name);

    let page = dom(&chromium, &url);
    for n in ["core", "edge1", "edge2", "web", "db", "client"] {
        assert!(
            page.contains(&format!("id=\"node-{n}\"")),
            "node {n} not in the DOM"
        );
        assert!(
            page.contains(&format!("id=\"panel-{n}\"")),
            "panel {n} not in the DOM"
        );
    }
    assert_eq!(dom_class(&page, "link-0"), "link up");
    // The page's script fetched state.json and applied it.
    assert!(
        page.contains("refreshed "),
        "the page did not refresh its state"
    );

    let o = nslab()
        .args(["link", "down", "--lab", &lab.name, "edge1:eth2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let page = dom(&chromium, &url);
    assert_eq!(dom_class(&page, "link-2"), "link down");
    assert_eq!(dom_class(&page, "link-0"), "link up");

    // A picture of it, for the README (UPDATE_SCREENSHOT=1 keeps it in docs/).
    let shot = tempdir("gr-shot").join("graph.png");
    browse(
        &chromium,
        &format!("{url}#edge1"),
        &[
            "--window-size=1400,860",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    assert!(
        png.len() > 20_000,
        "a blank screenshot ({} bytes)",
        png.len()
    );
    if std::env::var_os("UPDATE_SCREENSHOT").is_some() {
        std::fs::copy(&shot, root().join("docs/graph.png")).unwrap();
    }
    let _ = std::fs::remove_dir_all(shot.parent().unwrap());
    lab.down();
}

/// A text's box in the SVG: left, top, right, bottom, and the text, for messages.
type TextBox = (f64, f64, f64, f64, String);

/// The box of every `<text>` in the SVG, its width approximated as characters x font size
/// x 0.6 (a monospace font's advance): labels at link ends (11 px), box texts (12 px),
/// frame titles (12 px, left-anchored on their baseline).
fn text_boxes(svg: &str) -> Vec<TextBox> {
    let doc = roxmltree::Document::parse(svg).unwrap();
    let num = |n: roxmltree::Node, a: &str| n.attribute(a).map_or(0.0, |v| v.parse().unwrap());
    let mut out = Vec::new();
    for t in doc.descendants().filter(|n| n.has_tag_name("text")) {
        let small = t.ancestors().any(|a| a.attribute("class") == Some("label"));
        let font = if small { 11.0 } else { 12.0 };
        let spans: Vec<roxmltree::Node> = t.children().filter(|c| c.is_element()).collect();
        let lines: Vec<String> = if spans.is_empty() {
            vec![t.text().unwrap_or("").to_string()]
        } else {
            spans
                .iter()
                .map(|s| s.text().unwrap_or("").to_string())
                .collect()
        };
        let chars = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        let w = chars as f64 * font * 0.6;
        let (x, y) = (num(t, "x"), num(t, "y"));
        let last = y + spans.iter().skip(1).map(|s| num(*s, "dy")).sum::<f64>();
        let (left, right) = match t.attribute("text-anchor") {
            Some("middle") => (x - w / 2.0, x + w / 2.0),
            _ => (x, x + w),
        };
        let (top, bottom) = match t.attribute("dominant-baseline") {
            Some("middle") => (y - font / 2.0, last + font / 2.0),
            _ => (y - font, last),
        };
        out.push((left, top, right, bottom, lines.join(" ")));
    }
    out
}

/// The first two texts whose boxes overlap.
fn overlapping_texts(boxes: &[TextBox]) -> Option<(String, String)> {
    for (i, a) in boxes.iter().enumerate() {
        for b in &boxes[i + 1..] {
            if a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3 {
                return Some((a.4.clone(), b.4.clone()));
            }
        }
    }
    None
}

#[test]
fn no_two_texts_overlap_in_the_picture_of_any_example() {
    // The check itself: two labels at one point overlap.
    let same = text_boxes(
        "<svg><g class=\"label\"><text x=\"10\" y=\"10\" text-anchor=\"middle\" \
         dominant-baseline=\"middle\">eth0</text><text x=\"14\" y=\"12\" \
         text-anchor=\"middle\" dominant-baseline=\"middle\">eth1</text></g></svg>",
    );
    assert!(overlapping_texts(&same).is_some());
    let mut labs: Vec<(String, nslab::model::Topology)> = examples()
        .iter()
        .map(|f| (f.display().to_string(), compile(f).topology))
        .collect();
    // Dense fabrics: 64 and 128 links between two rows, with and without hosts, and the
    // 300-node one (6 spines, 49 leaves, 196 hosts).
    for args in [
        &["clos", "20", "--spines", "4", "--hosts-per-leaf", "0"][..],
        &["clos", "40", "--spines", "8", "--hosts-per-leaf", "1"],
        &["clos", "300"],
    ] {
        let yaml = generated(args);
        let c = nslab::compile_str(&yaml, "lab.yaml", &root().join("topologies")).unwrap();
        labs.push((args.join(" "), c.topology));
    }
    let mut bad = Vec::new();
    for (what, t) in &labs {
        let svg = draw::render(t, Format::Svg);
        let boxes = text_boxes(&svg);
        assert!(boxes.len() > 2, "{what}");
        if let Some((a, b)) = overlapping_texts(&boxes) {
            bad.push(format!("{what}: '{a}' overlaps '{b}'"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn a_dense_fabric_names_its_interfaces_on_the_picture_and_its_addresses_in_tooltips() {
    let yaml = generated(&["clos", "36", "--spines", "4", "--hosts-per-leaf", "1"]);
    let t = nslab::compile_str(&yaml, "lab.yaml", &root().join("topologies"))
        .unwrap()
        .topology;
    let scene = draw::scene::build(&t, None);
    let address = |end: &str| -> String {
        let (node, iface) = end.split_once(':').unwrap();
        let n = t.nodes.iter().find(|n| n.name == node).unwrap();
        let i = n.interfaces.iter().find(|i| i.name == iface).unwrap();
        i.addresses[0].to_string()
    };
    let (mut terse, mut full) = (0, 0);
    for l in &scene.links {
        let spine = l.ends.iter().any(|e| e.starts_with("spine"));
        let lines: Vec<usize> = l.labels.iter().map(|(lines, _)| lines.len()).collect();
        if spine {
            // A spine has 16 links: more than DENSE, so its bundle's labels are names.
            assert_eq!(lines, [1, 1], "{:?}", l.ends);
            let want: Vec<String> = l
                .ends
                .iter()
                .map(|e| format!("{e} {}", address(e)))
                .collect();
            assert_eq!(l.hidden, want);
            terse += 1;
        } else {
            // A leaf's host link keeps its addresses on the picture.
            assert_eq!(lines, [2, 2], "{:?}", l.ends);
            assert!(l.hidden.is_empty());
            full += 1;
        }
    }
    assert_eq!((terse, full), (64, 16));
    let svg = draw::render(&t, Format::Svg);
    let tip = format!("\nleaf1:up1 {}\n", address("leaf1:up1"));
    assert!(svg.contains(&tip), "the tooltip has the addresses");
    // Spines of 8 links (8 leaves) are not dense, and no example is: every one keeps its
    // addresses on the picture.
    let eight = generated(&["clos", "20", "--spines", "4", "--hosts-per-leaf", "1"]);
    let eight = nslab::compile_str(&eight, "lab.yaml", &root().join("topologies")).unwrap();
    let mut labs = vec![("8 leaves".to_string(), eight.topology)];
    labs.extend(
        examples()
            .iter()
            .map(|f| (f.display().to_string(), compile(f).topology)),
    );
    for (what, t) in &labs {
        let scene = draw::scene::build(t, None);
        assert!(scene.links.iter().all(|l| l.hidden.is_empty()), "{what}");
    }
}

#[test]
fn a_dense_fabric_in_drawio_has_every_address_in_its_labels_or_tooltips() {
    let yaml = generated(&["clos", "36", "--spines", "4", "--hosts-per-leaf", "1"]);
    let t = nslab::compile_str(&yaml, "lab.yaml", &root().join("topologies"))
        .unwrap()
        .topology;
    let xml = draw::render(&t, Format::Drawio);
    let doc = roxmltree::Document::parse(&xml).expect("the drawio file is XML");
    // draw.io shows a cell's `tooltip` as HTML: the attribute holds it escaped once more.
    let unhtml = |s: &str| {
        s.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    let tips: std::collections::BTreeMap<&str, String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("object"))
        .filter(|o| o.first_element_child().unwrap().attribute("edge") == Some("1"))
        .map(|o| {
            (
                o.attribute("id").unwrap(),
                unhtml(o.attribute("tooltip").unwrap()),
            )
        })
        .collect();
    // Every edge is an object with the tooltip of the SVG's line, addresses and all.
    let scene = draw::scene::build(&t, None);
    assert_eq!(tips.len(), scene.links.len());
    let dense = scene.links.iter().filter(|l| !l.hidden.is_empty()).count();
    assert_eq!(
        dense, 64,
        "the spines' links leave their addresses off the labels"
    );
    for l in &scene.links {
        assert_eq!(tips[l.id.as_str()], l.tooltip(), "{:?}", l.ends);
    }
    // And every address of the lab is in the file: on a label, or in a tooltip.
    let text: Vec<&str> = doc
        .descendants()
        .flat_map(|n| n.attributes())
        .map(|a| a.value())
        .collect();
    let mut missing = Vec::new();
    for n in &t.nodes {
        for i in &n.interfaces {
            for a in &i.addresses {
                let a = a.to_string();
                if !text.iter().any(|v| v.contains(&a)) {
                    missing.push(format!("{}:{} {a}", n.name, i.name));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "missing from the drawio file: {missing:?}"
    );
}

#[test]
fn a_drawio_node_has_its_panel_as_its_tooltip() {
    let t = compile_text(
        "name: gr-tip\nnodes:\n  r1: { loopback: [10.255.0.1/32], processes: [{ name: idle, cmd: \"sleep 9\" }] }\n  r2:\n    routes: [{ to: 10.9.0.0/16, via: 10.0.0.0 }]\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n    addresses: [10.0.0.0/31, 10.0.0.1/31]\n",
    )
    .topology;
    let xml = draw::render(&t, Format::Drawio);
    let doc = roxmltree::Document::parse(&xml).expect("the drawio file is XML");
    let tip = |id: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name("object") && n.attribute("id") == Some(id))
            .and_then(|o| o.attribute("tooltip"))
            .unwrap_or_else(|| panic!("no tooltip on {id}: {xml}"))
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    let r1 = tip("node-r1");
    for want in [
        "<h3>Interfaces</h3>",
        "10.255.0.1/32",
        "10.0.0.0/31",
        "idle",
        "sleep 9",
    ] {
        assert!(r1.contains(want), "{want} not in r1's tooltip: {r1}");
    }
    let r2 = tip("node-r2");
    assert!(
        r2.contains("10.0.0.1/31") && r2.contains("10.9.0.0/16 via 10.0.0.0 dev eth1"),
        "{r2}"
    );
    assert!(
        !r2.contains("10.255.0.1"),
        "r1's loopback is not r2's: {r2}"
    );
}

#[test]
fn a_nodes_own_interfaces_and_host_links_are_in_its_box_and_panel() {
    let t = compile_text(
        "name: gr-local\nnodes:\n  r1:\n    interfaces:\n      lo1: { kind: dummy, addresses: [10.255.0.1/32] }\n      eth1.100: { kind: vlan, parent: eth1, id: 100, addresses: [10.100.0.1/24] }\n  r2: {}\nlinks:\n  - [r1:eth1, r2:eth1]\n  - endpoints: [r2:eth2, { macvlan: enp0s3, mode: bridge }]\n    addresses: [192.168.1.50/24, ~]\n  - endpoints: [r1:eth9, { host: gr-r1, addresses: [198.51.100.1/30] }]\n    addresses: [198.51.100.2/30, ~]\n",
    )
    .topology;
    let scene = draw::scene::build(&t, None);
    let lines = |node: &str| {
        scene
            .boxes
            .iter()
            .find(|b| b.name == node)
            .unwrap()
            .lines
            .clone()
    };
    let r1 = [
        "lo1 dummy",
        "  10.255.0.1/32",
        "eth1.100 vlan 100 on eth1",
        "  10.100.0.1/24",
        "eth9 veth to host gr-r1",
        "  198.51.100.2/30",
    ];
    assert_eq!(lines("r1"), r1);
    assert_eq!(
        lines("r2"),
        ["eth2 macvlan on host enp0s3", "  192.168.1.50/24"]
    );
    // Only the link between the nodes is a line; the rest are the nodes' own.
    assert_eq!(scene.links.len(), 1);
    let svg = draw::render(&t, Format::Svg);
    assert_eq!(overlapping_texts(&text_boxes(&svg)), None);
    let html = draw::render(&t, Format::Html);
    for row in [
        "<tr class=\"local\"><td>eth1.100<br><small>vlan 100 on eth1</small></td><td></td><td>10.100.0.1/24</td></tr>",
        "<tr class=\"local\"><td>eth2<br><small>macvlan on host enp0s3</small></td><td></td><td>192.168.1.50/24</td></tr>",
        "<tr class=\"local\"><td>eth9<br><small>veth to host gr-r1</small></td><td></td><td>198.51.100.2/30</td></tr>",
    ] {
        assert!(html.contains(row), "{row}");
    }
    // The management network's interface says which bridge on the host it is on.
    let mgmt = compile(&root().join("topologies/mgmt.yaml")).topology;
    let scene = draw::scene::build(&mgmt, None);
    let r1 = scene.boxes.iter().find(|b| b.name == "r1").unwrap();
    assert_eq!(r1.lines[0], "mgmt0 mgmt (host br-mgmt)");
}

#[test]
fn a_leaf_spine_fabric_is_two_rows_no_wider_than_its_leaves() {
    let yaml = generated(&["clos", "20", "--spines", "4", "--hosts-per-leaf", "0"]);
    let c = nslab::compile_str(&yaml, "lab.yaml", &root().join("topologies")).unwrap();
    let scene = draw::scene::build(&c.topology, None);
    let row = |prefix: &str| -> Vec<draw::layout::Placed> {
        let v: Vec<_> = scene
            .boxes
            .iter()
            .filter(|b| b.name.starts_with(prefix))
            .map(|b| b.at)
            .collect();
        assert!(
            v.iter().all(|b| b.y == v[0].y),
            "{prefix}: not one row: {v:?}"
        );
        v
    };
    let (spines, leaves) = (row("spine"), row("leaf"));
    assert_eq!((spines.len(), leaves.len()), (4, 16));
    assert!(spines[0].y < leaves[0].y, "spines above leaves");
    // No wider than the row of 16 leaves, each given room for its labels (an interface
    // name and a /31, about 100 px) and the gap between vertices.
    let pitch = 200;
    assert!(
        scene.width <= leaves.len() as i64 * pitch,
        "{} px wide for 16 leaves",
        scene.width
    );
    let span = |r: &[draw::layout::Placed]| {
        r.iter().map(|b| b.left() + b.w).max().unwrap() - r.iter().map(|b| b.left()).min().unwrap()
    };
    assert!(
        span(&spines) <= span(&leaves),
        "the spines' row is the narrower"
    );
    eprintln!("clos 4x16: {}x{} px", scene.width, scene.height);
}

#[test]
fn a_multi_host_lab_is_framed_per_host_with_its_vxlan_marked_in_every_format() {
    let t = compile(&root().join("topologies/two-machines.yaml")).topology;
    let scene = draw::scene::build(&t, None);
    let names: Vec<&str> = scene.frames.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["ha", "hb"]);
    for b in &scene.boxes {
        let host = t
            .nodes
            .iter()
            .find(|n| n.name == b.name)
            .unwrap()
            .host
            .clone();
        let f = scene.frames.iter().find(|f| Some(&f.name) == host.as_ref());
        let f = f.unwrap_or_else(|| panic!("{} has no frame", b.name));
        assert!(
            b.at.left() >= f.x && b.at.left() + b.at.w <= f.x + f.w,
            "{}",
            b.name
        );
        assert!(
            b.at.top() >= f.y && b.at.top() + b.at.h <= f.y + f.h,
            "{}",
            b.name
        );
    }
    // r2-r3 is the one link between hosts: it says VXLAN and the plan's VNI.
    let vni = nslab::plan::share::vnis(&t)[1].unwrap();
    let tunnels: Vec<Option<&str>> = scene.links.iter().map(|l| l.tunnel.as_deref()).collect();
    let marked = format!("VXLAN {vni}");
    assert_eq!(tunnels, [None, Some(marked.as_str()), None]);
    let svg = draw::render(&t, Format::Svg);
    assert_eq!(class_of(&svg, "link-1"), "link vxlan");
    assert!(svg.contains(&format!(">{marked}</tspan>")));
    // Each frame says its host's underlay address, in every format that has a title.
    let titles: Vec<&str> = scene.frames.iter().map(|f| f.title.as_str()).collect();
    assert_eq!(titles, ["host ha 192.0.2.11", "host hb 192.0.2.12"]);
    assert!(svg.contains(">host ha 192.0.2.11</text>"), "{svg}");
    let drawio = draw::render(&t, Format::Drawio);
    assert!(drawio.contains("value=\"host hb 192.0.2.12\""), "{drawio}");
    let dot = draw::render(&t, Format::Dot);
    assert!(
        dot.contains("subgraph cluster_0 { label=\"host ha 192.0.2.11\"; style=dashed; n0; n1; }")
    );
    assert!(dot.contains(&format!("label=\"{marked}\", style=dashed")));
    let mmd = draw::render(&t, Format::Mermaid);
    assert!(mmd.contains("  subgraph host1[\"host hb 192.0.2.12\"]\n    n2\n    n3\n  end\n"));
    assert!(mmd.contains("n1 -.-|") && mmd.contains(&format!("({marked})")));
}
