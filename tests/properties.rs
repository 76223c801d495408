//! Property tests of the compiler (no root): random topologies, valid and mutated, and
//! random bytes, each checked against `nslab::invariants` (the checks the fuzz target
//! runs): no panic, byte-identical output twice, spans inside the source, every created
//! object torn down, every step behind what it acts on. Bounded, so `cargo test` stays
//! fast; `PROPTEST_CASES=N` runs more.

use std::fmt::Write;
use std::path::Path;

use nslab::invariants::{Outcome, check_bytes, check_str};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// One end of a generated link: a node or a bridge, by index.
#[derive(Debug, Clone, Copy)]
enum End {
    Node(usize),
    Bridge(usize),
}

#[derive(Debug, Clone)]
struct GenNode {
    loopback: bool,
    forwarding: bool,
    /// Per-interface sysctl on the node's first interface, when it has one.
    rp_filter: bool,
    isolation: Vec<&'static str>,
    processes: usize,
    limits: bool,
    exec: bool,
    mount: bool,
    /// Depends on this earlier node (by offset back), so there is never a cycle.
    depends_back: Option<usize>,
}

#[derive(Debug, Clone)]
struct GenLink {
    a: usize,
    b: End,
    long: bool,
    mtu: Option<u32>,
    rate: Option<u32>,
}

#[derive(Debug, Clone)]
struct Topo {
    name: String,
    nodes: Vec<GenNode>,
    bridges: usize,
    links: Vec<GenLink>,
    /// (node, neighbour): a route via the neighbour, kept only when they share one link.
    routes: Vec<(usize, usize)>,
    blackholes: Vec<usize>,
    dual_stack: bool,
}

fn node() -> impl Strategy<Value = GenNode> {
    let isolation = prop_oneof![
        Just(vec!["net", "uts", "mnt", "pid", "ipc"]),
        Just(vec!["net"]),
        Just(vec!["net", "uts"]),
        Just(vec!["net", "mnt", "pid"]),
    ];
    (
        any::<(bool, bool, bool)>(),
        isolation,
        0usize..3,
        any::<(bool, bool, bool)>(),
        proptest::option::of(1usize..4),
    )
        .prop_map(
            |(
                (loopback, forwarding, rp_filter),
                isolation,
                processes,
                (limits, exec, mount),
                depends_back,
            )| GenNode {
                loopback,
                forwarding,
                rp_filter,
                isolation,
                processes,
                limits,
                exec,
                mount,
                depends_back,
            },
        )
}

fn topo() -> impl Strategy<Value = Topo> {
    (1usize..7, 0usize..3).prop_flat_map(|(n, bridges)| {
        let end = if bridges > 0 {
            prop_oneof![
                (0..n).prop_map(End::Node),
                (0..bridges).prop_map(End::Bridge)
            ]
            .boxed()
        } else {
            (0..n).prop_map(End::Node).boxed()
        };
        let link = (
            0..n,
            end,
            any::<bool>(),
            proptest::option::of(prop_oneof![Just(1400u32), Just(9000)]),
            proptest::option::of(1u32..1000),
        )
            .prop_map(|(a, b, long, mtu, rate)| GenLink {
                a,
                b,
                long,
                mtu,
                rate,
            });
        (
            "[a-z][a-z0-9]{0,7}",
            proptest::collection::vec(node(), n),
            proptest::collection::vec(link, 0..(2 * n + 2)),
            proptest::collection::vec((0..n, 0..n), 0..n + 1),
            proptest::collection::vec(0..n, 0..3),
            any::<bool>(),
        )
            .prop_map(
                move |(name, nodes, links, routes, blackholes, dual_stack)| Topo {
                    name,
                    nodes,
                    bridges,
                    // A node linked to itself is invalid by design; the mutations cover that.
                    links: links
                        .into_iter()
                        .filter(|l| !matches!(l.b, End::Node(b) if b == l.a))
                        .collect(),
                    routes,
                    blackholes,
                    dual_stack,
                },
            )
    })
}

impl Topo {
    /// The links each pair of nodes shares (directly or through a bridge).
    fn shared(&self, x: usize, y: usize) -> usize {
        let direct = self
            .links
            .iter()
            .filter(|l| matches!(l.b, End::Node(b) if (l.a, b) == (x, y) || (l.a, b) == (y, x)))
            .count();
        let on = |n: usize, br: usize| {
            self.links
                .iter()
                .filter(|l| l.a == n && matches!(l.b, End::Bridge(b) if b == br))
                .count()
        };
        let via_bridges: usize = (0..self.bridges).map(|br| on(x, br) * on(y, br)).sum();
        direct + via_bridges
    }

    /// The topology as YAML, valid by construction.
    fn yaml(&self) -> String {
        let mut y = format!("name: p{}\n", self.name);
        if self.dual_stack {
            y.push_str("addressing: { ipv6: \"fd00:1ab::/48\" }\n");
        }
        if self.bridges > 0 {
            y.push_str("bridges:\n");
            for b in 0..self.bridges {
                let _ = writeln!(
                    y,
                    "  lan{b}: {}",
                    if b == 1 { "{ mtu: 9000 }" } else { "{}" }
                );
            }
        }
        // Interface names, in link order, per node.
        let mut ifaces: Vec<Vec<String>> = vec![Vec::new(); self.nodes.len()];
        let mut link_text = String::new();
        for l in &self.links {
            let mut end = |n: usize| {
                let name = format!("eth{}", ifaces[n].len());
                ifaces[n].push(name.clone());
                format!("n{n}:{name}")
            };
            let a = end(l.a);
            let b = match l.b {
                End::Node(n) => end(n),
                End::Bridge(b) => format!("lan{b}"),
            };
            if l.long {
                let _ = writeln!(link_text, "  - endpoints: [{a}, {b}]");
                if let (Some(mtu), End::Node(_)) = (l.mtu, l.b) {
                    let _ = writeln!(link_text, "    mtu: {mtu}");
                }
                if let Some(rate) = l.rate {
                    let _ = writeln!(link_text, "    impair: {{ rate: {rate}mbit }}");
                }
            } else {
                let _ = writeln!(link_text, "  - [{a}, {b}]");
            }
        }
        y.push_str("nodes:\n");
        for (i, n) in self.nodes.iter().enumerate() {
            self.node_yaml(&mut y, i, n, &ifaces[i]);
        }
        if !link_text.is_empty() {
            y.push_str("links:\n");
            y.push_str(&link_text);
        }
        y.push_str("tests:\n  - reach: { from: all, to: all }\n");
        y
    }

    fn node_yaml(&self, y: &mut String, i: usize, n: &GenNode, ifaces: &[String]) {
        let _ = writeln!(y, "  n{i}:");
        let _ = writeln!(y, "    isolation: [{}]", n.isolation.join(", "));
        if n.loopback {
            y.push_str("    loopback: auto\n");
        }
        y.push_str("    sysctls:\n");
        let _ = writeln!(y, "      net.ipv4.ip_forward: {}", u8::from(n.forwarding));
        if let (true, Some(first)) = (n.rp_filter, ifaces.first()) {
            let _ = writeln!(y, "      net.ipv4.conf.{first}.rp_filter: 2");
        }
        let routes: Vec<String> = self
            .routes
            .iter()
            .enumerate()
            .filter(|(_, (from, to))| *from == i && from != to && self.shared(*from, *to) == 1)
            .map(|(k, (_, to))| format!("{{ to: 10.200.{k}.0/24, via: n{to} }}"))
            .chain(
                self.blackholes
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| **n == i)
                    .map(|(k, _)| format!("{{ to: 10.201.{k}.0/24, type: blackhole }}")),
            )
            .collect();
        if !routes.is_empty() {
            let _ = writeln!(y, "    routes: [{}]", routes.join(", "));
        }
        // Processes, exec and limits need an init; a node gets one with any of them.
        if n.processes > 0 {
            y.push_str("    processes:\n");
            for p in 0..n.processes {
                let _ = writeln!(
                    y,
                    "      - {{ name: p{p}, cmd: \"sleep 1000\", ready: {{ tcp: {} }}, restart: on-failure }}",
                    8000 + p
                );
            }
        }
        if n.exec {
            y.push_str(
                "    exec: [\"true\", { cmd: [ip, route], ignore_errors: true, timeout: 5s }]\n",
            );
        }
        if n.limits {
            y.push_str("    limits: { memory: 64M, pids: 32 }\n");
        }
        if n.mount && n.isolation.contains(&"mnt") {
            y.push_str("    mounts: [\"data/{node}:/srv:ro\"]\n");
        }
        if let Some(back) = n.depends_back.filter(|b| *b <= i) {
            let _ = writeln!(y, "    depends_on: [n{}]", i - back);
        }
    }
}

/// An edit of valid text: the kinds of mistakes people and merges make.
#[derive(Debug, Clone)]
enum Edit {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize),
    Insert(usize, &'static str),
    Truncate(usize),
    Indent(usize),
}

const TOKENS: &[&str] = &[
    ":",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "\n",
    " ",
    "\t",
    "~",
    "*a",
    "&a ",
    "<<: ",
    "!!str ",
    "\"",
    "'",
    "#",
    "..",
    "/",
    "n0",
    "n1",
    "eth0",
    "lan0",
    "lo",
    "default",
    "auto",
    "via: n0",
    "10.0.0.1/31",
    "fd00::/127",
    "0",
    "-1",
    "99999999999",
    "1e9",
    "nan",
    "0x10",
    "1s",
    "64K",
    "\u{e9}",
    "\r",
    "net.ipv4.conf.eth9.rp_filter: 1",
    "{ to: default, via: n1 }",
];

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::DeleteLine),
        any::<usize>().prop_map(Edit::DuplicateLine),
        any::<usize>().prop_map(Edit::SwapLines),
        (any::<usize>(), proptest::sample::select(TOKENS)).prop_map(|(p, t)| Edit::Insert(p, t)),
        any::<usize>().prop_map(Edit::Truncate),
        any::<usize>().prop_map(Edit::Indent),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for e in edits {
        if lines.is_empty() {
            break;
        }
        let n = lines.len();
        match *e {
            Edit::DeleteLine(i) => {
                lines.remove(i % n);
            }
            Edit::DuplicateLine(i) => lines.insert(i % n, lines[i % n].clone()),
            Edit::SwapLines(i) => lines.swap(i % n, (i + 1) % n),
            Edit::Insert(i, t) => {
                let line = &mut lines[i % n];
                let mut at = (i / n) % (line.len() + 1);
                while !line.is_char_boundary(at) {
                    at -= 1;
                }
                line.insert_str(at, t);
            }
            Edit::Truncate(i) => lines.truncate(1 + i % n),
            Edit::Indent(i) => lines[i % n].insert_str(0, "  "),
        }
    }
    lines.join("\n")
}

/// Bounded so the three properties take a few seconds in a debug build (a generated lab
/// compiles twice and renders five ways); `PROPTEST_CASES` overrides it. A failure is
/// saved in tests/properties.proptest-regressions and replayed first from then on.
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn generated_topologies_compile_and_keep_every_invariant(t in topo()) {
        let yaml = t.yaml();
        match check_str(&yaml) {
            Ok(Outcome::Planned { steps }) => prop_assert!(steps > 0),
            Ok(Outcome::Invalid { .. }) => {
                let why = match nslab::compile_str(&yaml, "gen.yaml", Path::new("/")) {
                    Err(e) => e.to_string(),
                    Ok(_) => "compiled the second time".into(),
                };
                prop_assert!(false, "a generated topology was rejected:\n{yaml}\n{why}");
            }
            Err(v) => prop_assert!(false, "{v}\nin:\n{yaml}"),
        }
    }

}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn mutated_topologies_keep_every_invariant(
        t in topo(),
        edits in proptest::collection::vec(edit(), 1..5),
    ) {
        let text = apply(&t.yaml(), &edits);
        if let Err(v) = check_str(&text) {
            prop_assert!(false, "{v}\nin:\n{text}");
        }
    }

    #[test]
    fn random_bytes_keep_every_invariant(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Err(v) = check_bytes(&bytes) {
            prop_assert!(false, "{v}\nin: {bytes:?}");
        }
    }
}

/// The topology files in `dir`, or with `clab` the containerlab files (`.clab.yml`,
/// `.clab.yaml`, `topo.yaml`) anywhere under it: what scripts/fuzz copies in.
fn seed_files(dir: &Path, clab: bool) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if clab && p.is_dir() {
            out.extend(seed_files(&p, true));
        } else if clab {
            let clab_name = [".clab.yml", ".clab.yaml"]
                .iter()
                .any(|x| name.ends_with(x));
            if clab_name || name == "topo.yaml" {
                out.push(p);
            }
        } else if name.ends_with(".yaml") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The fuzzer's seeds (see scripts/fuzz): every example, every invalid-input file, the
/// containerlab files and fuzz/seeds, whose files must plan (each is there to lead the
/// fuzzer into the plan of what the others lack).
#[test]
fn every_seed_file_keeps_every_invariant() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut planned = 0;
    let mut checked = 0;
    let dirs = [
        ("topologies", false),
        ("tests/invalid", false),
        ("tests/clab", true),
        ("fuzz/seeds", false),
    ];
    for (dir, clab) in dirs {
        for f in seed_files(&root.join(dir), clab) {
            let text = std::fs::read_to_string(&f).unwrap();
            match check_str(&text) {
                Ok(Outcome::Planned { .. }) => planned += 1,
                Ok(Outcome::Invalid { errors }) => {
                    assert!(errors > 0, "{}", f.display());
                    assert!(dir != "fuzz/seeds", "{}: a seed must plan", f.display());
                }
                Err(v) => panic!("{}: {v}", f.display()),
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 50 && planned >= 20,
        "{checked} files, {planned} planned"
    );
}
