//! Model tests (no root): IPAM, interface naming, MACs, route resolution, merging,
//! daemonsets, dependencies and checks, through the public compile API.

use std::path::Path;

use nslab::compile_str;
use nslab::model::{CheckBody, End, Topology};

mod support;

use support::{err, ok};

fn addrs(t: &Topology, node: &str, iface: &str) -> Vec<String> {
    let n = t.node(node).unwrap();
    let i = n.interfaces.iter().find(|i| i.name == iface).unwrap();
    i.addresses.iter().map(ToString::to_string).collect()
}

#[test]
fn pools_place_blocks_by_owner_and_skip_explicit_addresses() {
    let t = ok("
name: ipam
nodes: { a: {}, b: {}, c: {}, d: {} }
links:
  - [a:eth0, b:eth0]
  - endpoints: [b:eth1, c:eth0]
    addresses: [10.255.0.2/31, 10.255.0.3/31]
  - [c:eth1, d:eth0]
");
    // Each link's /31 comes from the hash of its ends; the lower `node:iface` gets the
    // lower address.
    assert_eq!(addrs(&t, "a", "eth0"), ["10.255.178.62/31"]);
    assert_eq!(addrs(&t, "b", "eth0"), ["10.255.178.63/31"]);
    assert_eq!(addrs(&t, "b", "eth1"), ["10.255.0.2/31"]);
    assert_eq!(addrs(&t, "c", "eth1"), ["10.255.182.128/31"]);
    assert_eq!(addrs(&t, "d", "eth0"), ["10.255.182.129/31"]);
    // Without the middle link, with the first one's ends swapped and a new link first,
    // the other links keep their blocks.
    let t2 = ok("
name: ipam
nodes: { a: {}, b: {}, c: {}, d: {}, e: {} }
links:
  - [d:eth1, e:eth0]
  - [b:eth0, a:eth0]
  - [c:eth1, d:eth0]
");
    for (n, i) in [("a", "eth0"), ("b", "eth0"), ("c", "eth1"), ("d", "eth0")] {
        assert_eq!(addrs(&t2, n, i), addrs(&t, n, i), "{n}:{i}");
    }
}

#[test]
fn a_pool_block_written_by_hand_moves_the_owner_to_the_next_free_block() {
    // The first link's home block (10.255.178.62/31) is taken by an explicit address.
    let t = ok("
name: ipam
nodes: { a: {}, b: {}, c: {}, d: {} }
links:
  - [a:eth0, b:eth0]
  - endpoints: [c:eth0, d:eth0]
    addresses: [10.255.178.63/31, 10.255.178.62/31]
");
    assert_eq!(addrs(&t, "a", "eth0"), ["10.255.178.64/31"]);
    assert_eq!(addrs(&t, "b", "eth0"), ["10.255.178.65/31"]);
}

#[test]
fn an_auto_address_never_repeats_one_written_on_another_link() {
    // The `~` end shares its subnet with an address written on another link: it must
    // skip that one, as writing the same address twice by hand is an error.
    let t = ok("
name: reuse
nodes: { a: {}, b: {}, c: {}, d: {} }
links:
  - endpoints: [a:eth0, b:eth0]
    addresses: [192.168.5.1/24, 192.168.5.2/24]
  - endpoints: [c:eth0, d:eth0]
    addresses: [192.168.5.3/24, ~]
");
    assert_eq!(addrs(&t, "c", "eth0"), ["192.168.5.3/24"]);
    assert_eq!(addrs(&t, "d", "eth0"), ["192.168.5.4/24"]);
}

#[test]
fn bridges_infer_their_subnet_from_explicit_members() {
    let t = ok("
name: lan
bridges: { sw: {}, sw2: { subnet: 192.168.50.0/24 } }
nodes: { h1: {}, h2: {}, h3: {}, h4: {} }
links:
  - endpoints: [{ node: h1, iface: eth0, addresses: 172.16.0.1/24 }, sw]
  - [h2:eth0, sw]
  - [h3:eth0, sw2]
  - [h4:eth0, sw2]
");
    assert_eq!(addrs(&t, "h1", "eth0"), ["172.16.0.1/24"]);
    // Members take the host their `node:iface` hashes to.
    assert_eq!(addrs(&t, "h2", "eth0"), ["172.16.0.81/24"]);
    assert_eq!(addrs(&t, "h3", "eth0"), ["192.168.50.66/24"]);
    assert_eq!(addrs(&t, "h4", "eth0"), ["192.168.50.222/24"]);
    assert_eq!(t.bridges[0].subnets[0].to_string(), "172.16.0.0/24");
}

#[test]
fn dual_stack_pools_and_loopbacks() {
    let t = ok("
name: ds
addressing: { ipv6: 'fd00:1::/48', loopback: 10.9.0.0/24 }
bridges: { lan: {} }
nodes: { r1: { loopback: auto }, r2: { loopback: auto }, h: {} }
links:
  - [r1:eth1, r2:eth1]
  - [h:eth0, lan]
  - [r1:eth0, lan]
");
    assert_eq!(
        addrs(&t, "r1", "eth1"),
        ["10.255.31.130/31", "fd00:1:0:1::1:1f82/127"]
    );
    assert_eq!(
        addrs(&t, "h", "eth0"),
        ["10.133.188.219/24", "fd00:1:0:3cb8::6acb/64"]
    );
    assert_eq!(
        addrs(&t, "r1", "eth0"),
        ["10.133.188.17/24", "fd00:1:0:3cb8::91db/64"]
    );
    let lo: Vec<String> = t
        .node("r2")
        .unwrap()
        .loopback
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(lo, ["10.9.0.225/32", "fd00:1::fe66/128"]);
}

#[test]
fn unnamed_interfaces_get_the_lowest_free_eth() {
    let t = ok("
name: auto
nodes: { a: {}, b: {} }
links:
  - [a, b:eth0]
  - [a:eth0, b]
  - [a, b]
");
    let a: Vec<&str> = t
        .node("a")
        .unwrap()
        .interfaces
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    let b: Vec<&str> = t
        .node("b")
        .unwrap()
        .interfaces
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(a, ["eth1", "eth0", "eth2"]);
    assert_eq!(b, ["eth0", "eth1", "eth2"]);
    let idx: Vec<u32> = t
        .node("a")
        .unwrap()
        .interfaces
        .iter()
        .map(|i| i.ifindex)
        .collect();
    // Hashed from (node, interface) into 2^8..=2^24, distinct within the namespace.
    assert_eq!(idx, [1027145, 5965485, 818393]);
}

#[test]
fn macs_are_unique_local_and_explicit_ones_kept() {
    let t = ok("
name: macs
bridges: { sw: {} }
nodes: { a: {}, b: {}, c: {} }
links:
  - endpoints: [a:eth0, b:eth0]
    macs: ['02:00:00:00:00:01', ~]
  - [c:eth0, sw]
");
    let a = &t.node("a").unwrap().interfaces[0];
    assert_eq!(a.mac, [2, 0, 0, 0, 0, 1]);
    let mut all = vec![
        a.mac,
        t.node("b").unwrap().interfaces[0].mac,
        t.node("c").unwrap().interfaces[0].mac,
    ];
    all.push(t.bridges[0].mac);
    all.push(t.bridges[0].ports[0].mac);
    for m in &all {
        assert_eq!(m[0] & 3, 2, "locally administered unicast");
    }
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 5);
    // Same lab, node and interface: same MAC; another lab: another MAC.
    let again = ok("name: macs\nnodes: { a: {}, b: {} }\nlinks: [[a:eth1, b:eth1]]\n");
    let other = ok("name: other\nnodes: { a: {}, b: {} }\nlinks: [[a:eth1, b:eth1]]\n");
    assert_eq!(
        again.node("a").unwrap().interfaces[0].mac,
        ok("name: macs\nnodes: { a: {}, b: {} }\nlinks: [[a:eth1, b:eth1]]\n")
            .node("a")
            .unwrap()
            .interfaces[0]
            .mac
    );
    assert_ne!(
        again.node("a").unwrap().interfaces[0].mac,
        other.node("a").unwrap().interfaces[0].mac
    );
}

#[test]
fn routes_resolve_neighbours_ecmp_and_blackholes() {
    let t = ok("
name: rt
addressing: { ipv6: 'fd00:2::/48' }
nodes:
  a:
    routes:
      - { to: 10.50.0.0/16, via: [b, c] }
      - { to: default, via: b:eth0 }
      - { to: 10.66.0.0/16, type: blackhole }
      - { to: 10.77.0.0/16, dev: eth1, metric: 20 }
  b: {}
  c: {}
links:
  - [a:eth0, b:eth0]
  - [a:eth1, c:eth0]
");
    let r = &t.node("a").unwrap().routes;
    assert_eq!(r[0].nexthops.len(), 2);
    let b = addrs(&t, "b", "eth0");
    assert_eq!(
        r[0].nexthops[0].gateway.to_string(),
        b[0].split('/').next().unwrap()
    );
    assert_eq!(r[0].nexthops[1].dev, "eth1");
    // `default` through a dual-stack neighbour covers both families.
    assert_eq!(r[1].dst.to_string(), "0.0.0.0/0");
    assert_eq!(r[2].dst.to_string(), "::/0");
    assert_eq!(
        r[2].nexthops[0].gateway.to_string(),
        b[1].split('/').next().unwrap()
    );
    assert_eq!(format!("{:?}", r[3].kind), "Blackhole");
    assert_eq!(r[4].dev.as_deref(), Some("eth1"));
    assert_eq!(r[4].metric, Some(20));
}

#[test]
fn route_errors_are_precise() {
    let e = err("
name: rt
nodes:
  a: { routes: [{ to: 10.0.0.0/8, via: c }, { to: 10.1.0.0/16, via: b }] }
  b: {}
  c: {}
links:
  - [a:eth0, b:eth0]
  - [a:eth1, b:eth1]
");
    assert!(
        e.contains("next hop `c` is not a neighbour of node `a`"),
        "{e}"
    );
    assert!(e.contains("hint: neighbours of `a`: b"), "{e}");
    assert!(e.contains("next hop `b` is ambiguous"), "{e}");
    assert!(e.contains("`b:eth0` or `b:eth1`"), "{e}");
}

#[test]
fn static_routing_reaches_every_subnet_and_sets_forwarding() {
    let t = ok("
name: st
routing: static
nodes: { a: { loopback: auto }, b: {}, c: { loopback: auto } }
links:
  - [a:eth0, b:eth0]
  - [b:eth1, c:eth0]
");
    let a = t.node("a").unwrap();
    let dsts: Vec<String> = a.routes.iter().map(|r| r.dst.to_string()).collect();
    let bc = t.links[1].subnets[0].to_string();
    let c_lo = t.node("c").unwrap().loopback[0].to_string();
    assert_eq!(dsts, [bc, c_lo]);
    assert!(
        t.node("b")
            .unwrap()
            .sysctls
            .iter()
            .any(|s| s.key == "net.ipv4.ip_forward" && s.value == "1")
    );
    assert!(
        !a.sysctls.iter().any(|s| s.key.contains("forward")),
        "a is not a transit node"
    );
}

#[test]
fn static_routing_breaks_ties_by_declaration_order() {
    // r1 reaches r4 through r2 or r3 equally; r3 sits on r1's first interface, but r2 is
    // declared first, so r2 is the next hop (for both families).
    let t = ok("
name: tie
routing: static
addressing: { ipv6: 'fd00:71e::/48' }
nodes: { r1: {}, r2: {}, r3: {}, r4: { loopback: auto } }
links:
  - [r1:eth0, r3:eth0]
  - [r1:eth1, r2:eth0]
  - [r2:eth1, r4:eth0]
  - [r3:eth1, r4:eth1]
");
    let r1 = t.node("r1").unwrap();
    let r2 = t.node("r2").unwrap();
    let r2_addrs: Vec<std::net::IpAddr> = r2.interfaces[0]
        .addresses
        .iter()
        .map(|a| a.addr())
        .collect();
    let to_lo: Vec<_> = r1
        .routes
        .iter()
        .filter(|r| r.dst.prefix_len() == 32 || r.dst.prefix_len() == 128)
        .collect();
    assert!(!to_lo.is_empty());
    for r in to_lo {
        assert_eq!(r.nexthops.len(), 1);
        assert!(
            r2_addrs.contains(&r.nexthops[0].gateway),
            "{} via {}",
            r.dst,
            r.nexthops[0].gateway
        );
        assert_eq!(r.nexthops[0].dev, "eth1");
    }
}

#[test]
fn defaults_kind_and_node_merge_in_that_order() {
    let t = ok("
name: merge
defaults:
  sysctls: { net.ipv4.ip_forward: 1 }
  labels: { site: lab }
  processes: [{ name: agent, cmd: 'sleep 1' }]
kinds:
  router:
    labels: { role: core }
    limits: { memory: 64M }
    processes: [{ name: agent, cmd: 'sleep 2' }, { name: bgp, cmd: 'sleep 3' }]
nodes:
  r1: { kind: router, labels: { role: edge }, limits: { pids: 10 } }
  h1: {}
");
    let r1 = t.node("r1").unwrap();
    assert_eq!(r1.labels.get("role").map(String::as_str), Some("edge"));
    assert_eq!(r1.labels.get("site").map(String::as_str), Some("lab"));
    assert_eq!(r1.limits.memory, Some(64 << 20));
    assert_eq!(r1.limits.pids, Some(10));
    let procs: Vec<(&str, String)> = r1
        .processes
        .iter()
        .map(|p| (p.name.as_str(), p.cmd.display()))
        .collect();
    assert_eq!(
        procs,
        [
            ("agent", "sleep 2".to_string()),
            ("bgp", "sleep 3".to_string())
        ]
    );
    assert_eq!(t.node("h1").unwrap().processes.len(), 1);
    let fwd = t
        .node("h1")
        .unwrap()
        .sysctls
        .iter()
        .find(|s| s.key == "net.ipv4.ip_forward")
        .unwrap();
    assert_eq!(fwd.value, "1");
}

#[test]
fn daemonsets_run_on_matching_nodes_and_warn_when_none_match() {
    let c = compile_str(
        "
name: ds
nodes:
  r1: { labels: { role: core } }
  r2: { labels: { role: core } }
  h1: {}
daemonsets:
  - { name: probe, selector: { role: core }, cmd: 'sleep 60' }
  - { name: ghost, selector: { role: nope }, cmd: 'sleep 60' }
",
        "t.yaml",
        Path::new("/"),
    )
    .unwrap();
    let t = &c.topology;
    assert_eq!(t.daemonsets[0].nodes, vec![0, 1]);
    assert!(
        t.node("r1")
            .unwrap()
            .processes
            .iter()
            .any(|p| p.name == "probe" && p.daemonset.is_some())
    );
    assert!(t.node("h1").unwrap().processes.is_empty());
    let w = c.warnings.render(nslab::Severity::Warning);
    assert!(w.contains("daemonset `ghost` matches no node"), "{w}");
}

#[test]
fn mounts_template_and_resolve_against_the_topology_directory() {
    let t = ok("
name: m
nodes:
  r1:
    mounts: ['configs/{node}/frr.conf:/etc/frr/frr.conf:ro', { source: '/abs/{lab}', target: /data }]
    private: [/var/run/frr, { path: /etc/frr, owner: frr, mode: '0755' }]
");
    let r1 = t.node("r1").unwrap();
    assert_eq!(r1.mounts[0].source, Path::new("/labs/configs/r1/frr.conf"));
    assert!(r1.mounts[0].readonly);
    assert_eq!(r1.mounts[1].source, Path::new("/abs/m"));
    assert_eq!(r1.private[1].mode, Some(0o755));
}

#[test]
fn process_and_node_dependencies_resolve() {
    let t = ok("
name: deps
nodes:
  db: { processes: [{ name: pg, cmd: 'sleep 9', ready: { tcp: 5432 } }] }
  web:
    depends_on: [db]
    processes:
      - { name: app, cmd: [sleep, '9'], depends_on: ['db:pg'] }
      - { name: proxy, cmd: 'sleep 9', depends_on: [app] }
");
    let web = t.node("web").unwrap();
    assert_eq!(web.depends_on[0].node, 0);
    assert_eq!(web.processes[0].depends_on[0].process, Some(0));
    assert_eq!(web.processes[1].depends_on[0].node, 1);
}

#[test]
fn a_node_without_processes_runs_its_exec_after_its_dependencies() {
    use nslab::plan::{self, Op};
    let t = ok("
name: deps
nodes:
  web: { processes: [{ name: http, cmd: 'sleep 9', ready: { tcp: 80 } }, { name: log, cmd: 'sleep 9' }] }
  db: { processes: [{ name: pg, cmd: 'sleep 9' }] }
  client:
    depends_on: [web, 'db:pg']
    exec: ['curl web', 'true']
");
    let p = plan::plan(&t);
    let step = |f: &dyn Fn(&Op) -> bool| p.steps.iter().find(|s| f(&s.op)).unwrap();
    let proc_step = |name: &str| {
        step(&|op| matches!(op, Op::StartProcess { process, .. } if process == name)).id
    };
    let first = step(
        &|op| matches!(op, Op::RunExec { argv, .. } if argv.last().is_some_and(|a| a == "curl web")),
    );
    for dep in ["http", "log", "pg"] {
        assert!(
            first.deps.contains(&proc_step(dep)),
            "{dep}: {:?}",
            first.deps
        );
    }
    // The second command follows the first only.
    let second = step(
        &|op| matches!(op, Op::RunExec { argv, .. } if argv.last().is_some_and(|a| a == "true")),
    );
    assert_eq!(second.deps, vec![first.id]);
}

#[test]
fn checks_resolve_selectors_and_get_names() {
    let t = ok("
name: chk
nodes: { a: { labels: { r: x } }, b: { labels: { r: x } }, c: {} }
links: [[a:eth0, b:eth0], [b:eth1, c:eth0]]
tests:
  - reach: { from: { r: x }, to: [c], expect: fail }
  - tcp: { from: a, to: 'c:80' }
  - route: { node: a, to: 10.255.0.2/31, via: b }
  - path: { from: a, to: c, hops: [b, c] }
  - cmd: { node: a, run: 'true', exit: 0, stdout: '^$', expect_json: { x: ~ } }
");
    assert_eq!(t.checks.len(), 5);
    assert_eq!(t.checks[0].name, "1: reach r=x -> c (expect fail)");
    match &t.checks[0].body {
        CheckBody::Reach {
            from,
            to,
            expect_ok,
            ..
        } => {
            assert_eq!(from, &vec![0, 1]);
            assert_eq!(to, &vec![nslab::model::Target::Node(2)]);
            assert!(!expect_ok);
        }
        _ => panic!(),
    }
    match &t.checks[2].body {
        CheckBody::Route { via, .. } => {
            assert_eq!(format!("{}/31", via[0]), addrs(&t, "b", "eth0")[0])
        }
        _ => panic!(),
    }
}

#[test]
fn check_errors_name_the_unknown_node() {
    let e = err("
name: chk
nodes: { a: {} }
tests:
  - reach: { from: a, to: [b] }
  - cmd: { node: a, run: x, stdout: '(' }
  - bogus: {}
");
    assert!(e.contains("`reach.to` names unknown node `b`"), "{e}");
    assert!(
        e.contains("`stdout` is not a valid regular expression"),
        "{e}"
    );
    assert!(e.contains("unknown key `bogus` in a check"), "{e}");
}

#[test]
fn links_to_bridges_have_ports_in_the_fabric() {
    let t = ok("
name: br
bridges: { lan1: { mtu: 9000 } }
nodes: { averyverylongnodename: {}, h: {} }
links:
  - [averyverylongnodename:eth0, lan1]
  - [h:eth0, lan1]
");
    let ports: Vec<&str> = t.bridges[0].ports.iter().map(|p| p.name.as_str()).collect();
    // `averyverylongnodename.eth0` does not fit in 15 bytes: a hash of the member instead.
    assert_eq!(ports, ["_pfdc156d2b44fa", "h.eth0"]);
    assert_eq!(t.fabric_netns().as_deref(), Some("nslab.br"));
    assert_eq!(t.node("h").unwrap().interfaces[0].mtu, Some(9000));
    assert!(matches!(
        t.node("h").unwrap().interfaces[0].peer,
        End::Bridge { bridge: 0, port: 1 }
    ));
}

#[test]
fn sysctl_names_are_checked() {
    let e = err("
name: s
nodes:
  a: { sysctls: { net.ipv4.conf.eth9.rp_filter: 0, 'net.ipv4.../x': 1, net.ipv4.ip_forward: 1 } }
links: [[a:eth0, a:eth1]]
");
    assert!(
        e.contains("names interface `eth9`, which node `a` does not have"),
        "{e}"
    );
    assert!(e.contains("is not a valid sysctl name"), "{e}");
    assert_eq!(e.matches("error:").count(), 2, "{e}");
}

#[test]
fn never_panics_on_odd_input() {
    let inputs = [
        "",
        "~",
        "[]",
        "{}",
        "name: x",
        "name: [a]",
        "name: x\nnodes: 5",
        "name: x\nnodes: {a: 5}",
        "name: x\nnodes: {a: {}}\nlinks: [5]",
        "name: x\nnodes: {a: {}}\nlinks: [[a]]",
        "name: x\nnodes: {a: {}}\nlinks: [[a, a, a]]",
        "name: x\nnodes: {a: {routes: [5]}}",
        "name: x\nnodes: {a: {routes: [{to: default}]}}",
        "\u{0}",
        "name: x\nnodes: {?a: b}",
        "name: x\nnodes: {a: {}}\ntests: [{reach: 5}]",
        "name: x\nnodes: {a: {loopback: [auto]}}",
        "name: x\nnodes: {[a]: {}}",
        "name: x\nnodes: !!map {a: {}}",
        "*a",
        "&a [*a]",
        "name: x\nnodes: {a: {}, b: {}}\nlinks: [[a:eth0, b:eth0], [a:eth0, b:eth0]]",
        "name: x\nbridges: {b: {}}\nnodes: {a: {}}\nlinks: [[b, b]]",
        "name: x\naddressing: {p2p: 10.0.0.0/32}\nnodes: {a: {}, b: {}}\nlinks: [[a, b]]",
        "name: x\naddressing: {ipv6: '::/0'}\nnodes: {a: {loopback: auto}}",
    ];
    for i in inputs {
        let _ = compile_str(i, "odd.yaml", Path::new("/"));
    }
}

/// Mutates every example thousands of times (deterministically) and compiles each
/// result, planning the ones that compile: nothing may panic on any input.
#[test]
fn mutated_examples_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let tokens: &[&str] = &[
        ":",
        "-",
        "[",
        "]",
        "{",
        "}",
        "\n",
        " ",
        "~",
        "*a",
        "&a ",
        "r1",
        "eth0",
        "lan1",
        "10.0.0.1/31",
        "default",
        "via",
        "0",
        "99999",
        "\"",
        "'",
        "#",
        "!!str ",
        "<<: ",
        "::",
        "/",
        "..",
        "auto",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut compiled = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for _ in 0..1500 {
            let mut s: Vec<char> = text.chars().collect();
            for _ in 0..(1 + next() % 4) {
                let pos = (next() as usize) % (s.len() + 1);
                match next() % 3 {
                    0 if pos < s.len() => {
                        s.remove(pos);
                    }
                    1 => {
                        let t = tokens[(next() as usize) % tokens.len()];
                        for (k, c) in t.chars().enumerate() {
                            s.insert(pos + k, c);
                        }
                    }
                    _ if pos < s.len() => {
                        let end = (pos + (next() as usize) % 20).min(s.len());
                        let dup: Vec<char> = s[pos..end].to_vec();
                        for (k, c) in dup.into_iter().enumerate() {
                            s.insert(end + k, c);
                        }
                    }
                    _ => {}
                }
            }
            let src: String = s.into_iter().collect();
            if let Ok(c) = compile_str(&src, "fuzz.yaml", Path::new("/")) {
                let p = nslab::plan::plan(&c.topology);
                let _ = nslab::plan::render_text(&p);
                let _ = nslab::draw::render(&c.topology, nslab::draw::Format::Dot);
                compiled += 1;
            }
        }
    }
    assert!(
        compiled > 100,
        "the mutations should leave many files valid, got {compiled}"
    );
}

/// `{node}` and `{lab}` fill in every per-node string of a kind and a daemonset, each
/// node getting its own, and the plan carries the filled-in strings.
#[test]
fn node_and_lab_placeholders_fill_in_every_per_node_string() {
    let t = ok(r#"
name: ph
kinds:
  k:
    env: { ID: "{lab}-{node}", LIT: "{{node}}" }
    exec: ["echo {node} > /run/{node}", { cmd: [touch, "/tmp/{lab}.{node}"] }]
    processes:
      - name: d
        cmd: "sleep 100 # {node}"
        env: { WHO: "{node}" }
        cwd: /srv/{node}
        ready: "test -e /run/{node}"
    mounts: [{ source: "cfg/{node}", target: "/etc/{lab}/{node}" }]
    private: ["/var/lib/{node}"]
nodes:
  a: { kind: k, labels: { x: "1" } }
  b: { kind: k, labels: { x: "1" } }
daemonsets:
  - { name: ds, selector: { x: "1" }, cmd: [echo, "{node}@{lab}"] }
"#);
    use nslab::model::{Command, Ready};
    for name in ["a", "b"] {
        let n = t.node(name).unwrap();
        let env = |k: &str| n.env.iter().find(|(e, _)| e == k).unwrap().1.clone();
        assert_eq!(env("ID"), format!("ph-{name}"));
        assert_eq!(env("LIT"), "{node}");
        assert_eq!(
            n.exec[0].cmd,
            Command::Shell(format!("echo {name} > /run/{name}"))
        );
        assert_eq!(
            n.exec[1].cmd,
            Command::Argv(vec!["touch".into(), format!("/tmp/ph.{name}")])
        );
        let d = &n.processes[0];
        assert_eq!(d.cmd, Command::Shell(format!("sleep 100 # {name}")));
        assert_eq!(d.env, [("WHO".to_string(), name.to_string())]);
        assert_eq!(d.cwd.as_deref(), Some(format!("/srv/{name}").as_str()));
        match &d.ready.as_ref().unwrap().probe {
            Ready::Cmd(c) => assert_eq!(*c, Command::Shell(format!("test -e /run/{name}"))),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            n.processes[1].cmd,
            Command::Argv(vec!["echo".into(), format!("{name}@ph")])
        );
        assert_eq!(n.mounts[0].source, Path::new("/labs/cfg").join(name));
        assert_eq!(n.mounts[0].target, format!("/etc/ph/{name}"));
        assert_eq!(n.private[0].path, format!("/var/lib/{name}"));
    }
    let plan = nslab::plan::render_text(&nslab::plan::plan(&t));
    assert!(plan.contains("echo b > /run/b"), "{plan}");
    assert!(!plan.contains("{node}"), "{plan}");
}

/// A misspelt placeholder in a kind is one located error (not one per node) naming the
/// right placeholder, wherever it is written; a path made bad by a placeholder is checked
/// after it is filled in.
#[test]
fn misspelt_placeholders_are_located_errors_once_per_string() {
    let e = err(r#"
name: ph
kinds:
  k:
    exec: ["echo {nodes}"]
    env: { A: "{Lab}" }
    processes: [{ name: d, cmd: "x", cwd: "/{nod}", ready: "test {labb}" }]
    mounts: [{ source: "cfg/{noed}", target: /etc/x }]
    private: ["/var/{nodee}"]
nodes: { a: { kind: k }, b: { kind: k } }
"#);
    for (word, right, at) in [
        ("{nodes}", "{node}", "t.yaml:5:18"),
        ("{Lab}", "{lab}", "t.yaml:6:15"),
        ("{nod}", "{node}", "t.yaml:7:45"),
        ("{labb}", "{lab}", "t.yaml:7:60"),
        ("{noed}", "{node}", "t.yaml:8:29"),
        ("{nodee}", "{node}", "t.yaml:9:21"),
    ] {
        let msg = format!("unknown placeholder `{word}`");
        assert_eq!(e.matches(&msg).count(), 1, "{word} once:\n{e}");
        assert!(e.contains(&format!("did you mean `{right}`?")), "{e}");
        assert!(e.contains(at), "{word} at {at}:\n{e}");
    }
}

/// The hint for an interface used twice offers a name free on that node: not one
/// written elsewhere in the file, not one given to an unnamed end.
#[test]
fn an_interface_used_twice_is_offered_a_free_name() {
    let e = err("
name: twice
nodes: { r1: {}, r2: {}, r3: {} }
links:
  - [r1:eth0, r2:eth0]
  - [r1:eth2, r3:eth0]
  - [r1, r2]
  - [r1:eth0, r3:eth1]
");
    assert!(
        e.contains("interface `r1:eth0` is used by two links"),
        "{e}"
    );
    assert!(e.contains("t.yaml:8:9"), "{e}");
    // eth0 and eth2 are written, eth1 goes to the unnamed end: eth3 is the free one.
    assert!(e.contains("give this end a free name, like `eth3`"), "{e}");
}

/// `BRIDGE:NODE` in a step names the bridge's port to the node; a node not on the bridge
/// gets the nodes that are, instead of a node with a similar name.
#[test]
fn a_step_on_a_bridge_names_its_port_to_a_node() {
    let yaml = "
name: steps
bridges: { s3: {} }
nodes: { r3: {}, h1: {}, h2: {} }
links:
  - [r3:eth4, s3]
  - [h1, s3]
  - [h2, s3]
  - [h2, s3]
tests:
  - link_down: s3:STEP
";
    let t = ok(&yaml.replace("STEP", "r3"));
    let step = serde_json::to_value(&t.checks[0]).unwrap();
    let a = &step["body"]["action"]["link"];
    assert_eq!(a["bridge"], "s3", "{step}");
    assert_eq!(a["iface"], "eth4", "{step}");
    assert_eq!(a["node"], 0, "{step}");
    assert_eq!(a["up"], false, "{step}");

    let e = err(&yaml.replace("STEP", "x"));
    assert!(e.contains("bridge `s3` has no port to `x`"), "{e}");
    assert!(e.contains("t.yaml:11:16"), "{e}");
    assert!(e.contains("the nodes on `s3` are: r3, h1, h2"), "{e}");
    assert!(!e.contains("did you mean `r3`"), "{e}");

    let e = err(&yaml.replace("STEP", "h2"));
    assert!(e.contains("node `h2` has 2 links to bridge `s3`"), "{e}");
    assert!(e.contains("one_side: true"), "{e}");
}

/// `kind: bridge` (containerlab's switch) points to `bridges:`, not to `kinds:`.
#[test]
fn a_bridge_kind_on_a_node_points_to_bridges() {
    for kinds in ["", "kinds: { frr: {} }\n"] {
        let e = err(&format!(
            "name: k\n{kinds}nodes:\n  h1: {{}}\n  sw1: {{ kind: bridge }}\n"
        ));
        assert!(e.contains("node `sw1` has unknown kind `bridge`"), "{e}");
        assert!(e.contains("declare `sw1` under `bridges:`"), "{e}");
        assert!(!e.contains("under `kinds:`"), "{e}");
    }
}

/// A `cmd` check runs in one node, so `{node}` and `{lab}` in its `run` are that node's
/// and the lab's; a misspelt one is a located error, never handed to a shell.
#[test]
fn cmd_checks_fill_in_placeholders_for_their_node() {
    let t = ok("
name: phc
nodes: { r1: {} }
tests:
  - cmd: { node: r1, run: \"test -e /run/{lab}-{node}\" }
");
    match &t.checks[0].body {
        CheckBody::Cmd { run, .. } => assert_eq!(
            *run,
            nslab::model::Command::Shell("test -e /run/phc-r1".into())
        ),
        other => panic!("{other:?}"),
    }
    let e = err("
name: phc
nodes: { r1: {} }
tests:
  - cmd: { node: r1, run: [cat, \"/run/{nodes}\"] }
");
    assert!(
        e.contains("`cmd.run` uses the unknown placeholder `{nodes}`"),
        "{e}"
    );
    assert!(e.contains("t.yaml:5:27"), "{e}");
}

/// `addresses: [[], x]`: an empty list gives that endpoint no address, the other its own.
#[test]
fn an_empty_address_list_leaves_one_endpoint_without_an_address() {
    let t = ok("
name: half
nodes: { r1: {}, r2: {} }
links:
  - endpoints: [r1:eth1, r2:eth1]
    addresses: [[], 10.9.0.1/24]
");
    assert!(addrs(&t, "r1", "eth1").is_empty());
    assert_eq!(addrs(&t, "r2", "eth1"), ["10.9.0.1/24"]);
}

/// The neighbour estimate: m x (m - 1) per L2 segment of m addressed members, per family;
/// over the host's limit it warns with the sysctl to raise, under it says nothing.
#[test]
fn the_neighbour_estimate_counts_pairs_per_segment_and_warns_past_the_limit() {
    use nslab::preflight::neigh;
    let mut yaml = String::from(
        "name: big\naddressing: { ipv6: fd00:1ab::/48 }\nbridges: { s1: {}, s2: {} }\nlinks:\n  - [a:eth0, b:eth0]\n  - endpoints: [c:eth0, d:eth0]\n    addresses: [[10.9.0.1/24], []]\n",
    );
    let mut nodes = ["a", "b", "c", "d"].join(": {}, ") + ": {}";
    for i in 0..40 {
        yaml += &format!("  - [h{i}, s1]\n");
        nodes += &format!(", h{i}: {{}}");
    }
    yaml += "  - [a, s2]\n  - [b, s2]\n  - [c, s2]\n";
    yaml += &format!("nodes: {{ {nodes} }}\n");
    let t = ok(&yaml);
    // s1: 40 x 39; s2: 3 x 2; a-b: 2; c-d: only c has an address, so no pair.
    assert_eq!(neigh::entries(&t, false), 1560 + 6 + 2);
    // IPv6: the same, but c-d has no IPv6 at all.
    assert_eq!(neigh::entries(&t, true), 1560 + 6 + 2);

    let w = neigh::warnings(&t, |v6| Some(if v6 { 4096 } else { 1024 }));
    assert_eq!(w.len(), 1, "{w:?}");
    let text = format!("{}: {}", w[0].message, w[0].hint.as_deref().unwrap_or(""));
    assert!(text.contains("1568 IPv4 neighbour entries"), "{text}");
    assert!(
        text.contains("limit of 1024 (net.ipv4.neigh.default.gc_thresh3"),
        "{text}"
    );
    assert!(
        text.contains("sysctl -w net.ipv4.neigh.default.gc_thresh3=4096"),
        "{text}"
    );
    assert!(text.contains("up --raise-neigh-limit"), "{text}");
    assert!(neigh::warnings(&t, |_| Some(1568)).is_empty());
    assert!(neigh::warnings(&t, |_| None).is_empty());

    // What `up --raise-neigh-limit` sets: only the family over its limit, gc_thresh3 to
    // the warning's value and gc_thresh2 to half of it (still above the need).
    let r = neigh::raises(&t, |v6| Some(if v6 { 4096 } else { 1024 }));
    let want = [
        ("net.ipv4.neigh.default.gc_thresh3".to_string(), 4096),
        ("net.ipv4.neigh.default.gc_thresh2".to_string(), 2048),
    ];
    assert_eq!(r, want);
    assert!(neigh::raises(&t, |_| Some(1568)).is_empty());
    assert!(neigh::raises(&t, |_| None).is_empty());
}
