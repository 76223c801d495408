//! Stable identity (no root): inserting or removing one node and its link, anywhere in the
//! declarations, changes no other object's name, ifindex, MAC, addresses or routes, in
//! the model and in the plan. What `nslab apply` relies on to touch little.
//!
//! The labs are sized so no two identities share a home (a pool block, a host address, an
//! ifindex): a collision moves the owner declared later, by design, and the ipam unit
//! tests cover that. The inputs are fixed, so a collision here would fail every run.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::Path;

use nslab::compile_str;
use nslab::model::Topology;

fn compile(yaml: &str) -> Topology {
    match compile_str(yaml, "t.yaml", Path::new("/labs")) {
        Ok(c) => c.topology,
        Err(e) => panic!("expected a valid topology:\n{e}\n{yaml}"),
    }
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Every object of the model by its identity, with what must not move.
fn objects(t: &Topology) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for n in &t.nodes {
        out.insert(format!("{} lo", n.name), format!("{:?}", n.loopback));
        for i in &n.interfaces {
            out.insert(
                format!("{}:{}", n.name, i.name),
                format!(
                    "#{} {} {:?} {:?}",
                    i.ifindex,
                    mac(i.mac),
                    i.addresses,
                    i.mtu
                ),
            );
        }
        for r in &n.routes {
            out.insert(format!("{} route {}", n.name, r.dst), format!("{r:?}"));
        }
    }
    for b in &t.bridges {
        out.insert(
            format!("bridge {}", b.name),
            format!("#{} {} {:?}", b.ifindex, mac(b.mac), b.subnets),
        );
        for p in &b.ports {
            let n = &t.nodes[p.node];
            out.insert(
                format!("port {}:{}", n.name, n.interfaces[p.iface].name),
                format!("{} #{} {}", p.name, p.ifindex, mac(p.mac)),
            );
        }
    }
    out
}

/// The plan's operations, without step ids or dependencies.
fn ops(t: &Topology) -> BTreeSet<String> {
    let p = nslab::plan::plan(t);
    p.steps
        .iter()
        .map(|s| serde_json::to_string(&s.op).unwrap())
        .collect()
}

/// `small` is `big` without one node and its link(s): everything of `small` is in `big`,
/// unchanged, in the model and in the plan. Also: the same file gives the same bytes.
fn assert_only_added(small: &str, big: &str, what: &str) {
    let (s, b) = (compile(small), compile(big));
    let (so, bo) = (objects(&s), objects(&b));
    assert!(so.len() < bo.len(), "{what}: nothing was added");
    for (k, v) in &so {
        assert_eq!(bo.get(k), Some(v), "{what}: `{k}` changed");
    }
    // What names every node (the lab's hosts file) or a node's own addresses (its start,
    // on a node that gained an interface) changes with them; nothing else may.
    let grown: Vec<String> = s
        .nodes
        .iter()
        .filter(|n| b.node(&n.name).unwrap().interfaces.len() != n.interfaces.len())
        .map(|n| {
            format!(
                "\"op\":\"start-node\",\"netns\":\"nslab.{}.{}\"",
                s.lab, n.name
            )
        })
        .collect();
    let (sp, bp) = (ops(&s), ops(&b));
    let changed: Vec<&String> = sp
        .difference(&bp)
        .filter(|o| !o.contains("\"op\":\"write-hosts\""))
        .filter(|o| !grown.iter().any(|g| o.contains(g.as_str())))
        .collect();
    assert!(
        changed.is_empty(),
        "{what}: plan operations changed: {changed:#?}"
    );
    for y in [small, big] {
        let (p1, p2) = (
            nslab::plan::plan(&compile(y)),
            nslab::plan::plan(&compile(y)),
        );
        assert_eq!(p1.to_json(), p2.to_json(), "{what}: same file, other plan");
    }
}

/// A routed, dual-stack chain `n0 -- n1 -- ...` with loopbacks, and optionally a branch
/// node `x` (declared after node `at`, its link after link `at`) hanging off `n<to>`.
fn chain(len: usize, branch: Option<(usize, usize)>) -> String {
    let mut y =
        String::from("name: chain\nrouting: static\naddressing: { ipv6: 'fd00:c::/48' }\nnodes:\n");
    for i in 0..len {
        writeln!(y, "  n{i}: {{ loopback: auto }}").unwrap();
        if branch.is_some_and(|(at, _)| at == i) {
            y.push_str("  x: { loopback: auto }\n");
        }
    }
    y.push_str("links:\n");
    for i in 0..len - 1 {
        writeln!(y, "  - [n{i}:eth1, n{}:eth0]", i + 1).unwrap();
        if let Some((at, to)) = branch
            && at == i
        {
            writeln!(y, "  - [n{to}:eth9, x:eth0]").unwrap();
        }
    }
    y
}

#[test]
fn a_node_added_to_a_chain_moves_nothing_else() {
    for len in 2..=14 {
        let plain = chain(len, None);
        for at in 0..len - 1 {
            let to = (at * 5 + 3) % len;
            let what = format!("chain of {len}, x after n{at}, on n{to}");
            assert_only_added(&plain, &chain(len, Some((at, to))), &what);
        }
    }
}

/// Hosts on one bridge, dual-stack, `skip` left out and `x` declared after host `at`.
fn star(len: usize, at: Option<usize>, skip: Option<usize>) -> String {
    let mut y = String::from(
        "name: star\naddressing: { ipv6: 'fd00:5::/48' }\nbridges:\n  lan0: {}\n  lan1: { subnet: 10.20.0.0/16 }\nnodes:\n  gw: {}\n",
    );
    let hosts: Vec<String> = (0..len)
        .filter(|i| Some(*i) != skip)
        .flat_map(|i| {
            let mut v = vec![format!("h{i}")];
            if at == Some(i) {
                v.push("x".into());
            }
            v
        })
        .collect();
    for h in &hosts {
        writeln!(y, "  {h}: {{ routes: [{{ to: default, via: gw }}] }}").unwrap();
    }
    y.push_str("links:\n  - [gw:eth0, lan1]\n  - [gw:eth1, lan0]\n");
    for h in &hosts {
        writeln!(y, "  - [{h}:eth0, lan1]").unwrap();
    }
    y
}

#[test]
fn a_host_added_to_or_removed_from_a_bridge_moves_nothing_else() {
    for len in 2..=12 {
        let plain = star(len, None, None);
        for at in 0..len {
            let what = format!("star of {len}, x after h{at}");
            assert_only_added(&plain, &star(len, Some(at), None), &what);
            let what = format!("star of {len} without h{at}");
            assert_only_added(&star(len, None, Some(at)), &plain, &what);
        }
    }
}

/// A core router `c` and sites `r<i>` around it, each router with a loopback and a LAN
/// bridge with a host on it; `skip` leaves one site out (router, bridge, host, links).
fn routed(len: usize, skip: Option<usize>) -> String {
    let keep: Vec<usize> = (0..len).filter(|i| Some(*i) != skip).collect();
    let mut y = String::from("name: routed\nrouting: static\nbridges:\n");
    for i in &keep {
        writeln!(y, "  lan{i}: {{}}").unwrap();
    }
    y.push_str("nodes:\n  c: { loopback: auto }\n");
    for i in &keep {
        writeln!(y, "  r{i}: {{ loopback: auto }}").unwrap();
        writeln!(y, "  h{i}: {{ routes: [{{ to: default, via: r{i} }}] }}").unwrap();
    }
    y.push_str("links:\n");
    for i in &keep {
        writeln!(y, "  - [h{i}:eth0, lan{i}]\n  - [r{i}:eth0, lan{i}]").unwrap();
        writeln!(y, "  - [r{i}:eth1, c:eth{}]", i + 1).unwrap();
    }
    y
}

#[test]
fn a_routed_site_added_or_removed_moves_nothing_else() {
    for len in 2..=10 {
        let full = routed(len, None);
        for skip in 0..len {
            let what = format!("{len} routed sites without site {skip}");
            assert_only_added(&routed(len, Some(skip)), &full, &what);
        }
    }
}
