//! Multi-host labs without root: the language, placement, and each host's share of the
//! plan (cross-host links as VXLANs with agreeing VNIs, MTUs from the underlay).

use std::collections::BTreeSet;
use std::path::Path;

use nslab::compile_str;
use nslab::model::{LinkKind, Topology};
use nslab::plan::share::{self, Share};
use nslab::plan::{self, LinkSpec, Op, Plan};

mod support;

use support::{err, ok};

fn host_of(t: &Topology, node: &str) -> String {
    t.node(node).unwrap().host.clone().unwrap()
}

fn share_plan(t: &Topology, host: &str) -> Plan {
    plan::plan_share(t, &Share::of(t, host).unwrap())
}

/// (node netns, iface, vni, port, local, remote, mtu) of a vxlan step.
type Tunnel = (String, String, u32, u16, String, String, Option<u32>);

fn vxlans(p: &Plan) -> Vec<Tunnel> {
    p.steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::CreateLink(l) => match &l.kind {
                LinkSpec::Vxlan(v) => Some((
                    l.netns.to_string(),
                    l.name.to_string(),
                    v.vni,
                    v.port,
                    v.local.to_string(),
                    v.remote.map(|r| r.to_string()).unwrap_or_default(),
                    l.mtu,
                )),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn namespaces(p: &Plan) -> Vec<String> {
    p.steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::CreateNetns { netns } => Some(netns.to_string()),
            _ => None,
        })
        .collect()
}

const CHAIN: &str = "
name: mh
hosts:
  ha: { address: 192.0.2.11 }
  hb: { address: 192.0.2.12, mtu: 9000 }
routing: static
nodes:
  r1: { host: ha }
  r2: { host: ha }
  r3: { host: hb }
links:
  - [r1:eth1, r2:eth1]
  - [r2:eth2, r3:eth1]
";

#[test]
fn a_file_without_hosts_has_no_hosts_and_only_veths() {
    let t = ok("name: one\nnodes: { a: {}, b: {} }\nlinks: [[a:eth0, b:eth0]]\n");
    assert!(t.hosts.is_empty());
    assert_eq!(t.vxlan_port, 14789);
    assert!(t.nodes.iter().all(|n| n.host.is_none()));
    assert!(t.links.iter().all(|l| l.kind == LinkKind::Veth));
    assert_eq!(t.links[0].mtu, None);
}

#[test]
fn a_cross_host_link_is_a_vxlan_with_the_smaller_underlay_mtu_less_50() {
    let t = ok(CHAIN);
    assert_eq!(t.hosts.len(), 2);
    assert_eq!(t.hosts[1].mtu, 9000);
    assert_eq!(t.links[0].kind, LinkKind::Veth);
    assert_eq!(t.links[0].mtu, None);
    assert_eq!(t.links[1].kind, LinkKind::Vxlan);
    assert_eq!(t.links[1].mtu, Some(1450));
    let r3 = t.node("r3").unwrap();
    assert_eq!(r3.interfaces[0].mtu, Some(1450));
}

#[test]
fn both_ends_of_a_link_between_hosts_of_different_underlay_mtus_get_the_smaller() {
    // Both orders: the jumbo host first and last; a third link between two jumbo hosts.
    let t = ok("
name: jumbo
hosts:
  ha: { address: 192.0.2.11, mtu: 9000 }
  hb: { address: 192.0.2.12, mtu: 1500 }
  hc: { address: 192.0.2.13, mtu: 9000 }
nodes: { a: { host: ha }, b: { host: hb }, c: { host: hc } }
links:
  - [a:eth1, b:eth1]
  - [b:eth2, c:eth2]
  - [c:eth3, a:eth3]
");
    let mtus = |host: &str| -> Vec<(String, Option<u32>)> {
        vxlans(&share_plan(&t, host))
            .into_iter()
            .map(|(netns, iface, _, _, _, _, mtu)| (format!("{netns}:{iface}"), mtu))
            .collect()
    };
    assert_eq!(
        mtus("ha"),
        [
            ("nslab.jumbo.a:eth1".to_string(), Some(1450)),
            ("nslab.jumbo.a:eth3".to_string(), Some(8950)),
        ]
    );
    assert_eq!(
        mtus("hb"),
        [
            ("nslab.jumbo.b:eth1".to_string(), Some(1450)),
            ("nslab.jumbo.b:eth2".to_string(), Some(1450)),
        ]
    );
    assert_eq!(
        mtus("hc"),
        [
            ("nslab.jumbo.c:eth2".to_string(), Some(1450)),
            ("nslab.jumbo.c:eth3".to_string(), Some(8950)),
        ]
    );
    // The model agrees: every link's two interfaces carry one MTU.
    for l in &t.links {
        let mtu = |e: nslab::model::End| match e {
            nslab::model::End::Node { node, iface } => t.nodes[node].interfaces[iface].mtu,
            _ => unreachable!("no bridges here"),
        };
        assert_eq!(mtu(l.a), mtu(l.b));
        assert_eq!(mtu(l.a), l.mtu);
    }
}

#[test]
fn an_ipv6_underlay_costs_70_bytes_and_a_written_mtu_below_it_stays() {
    let t = ok("
name: mh6
hosts:
  ha: { address: '2001:db8::1', mtu: 9000 }
  hb: { address: '2001:db8::2', mtu: 9000 }
nodes: { a: { host: ha }, b: { host: hb }, c: { host: hb } }
links:
  - [a:eth0, b:eth0]
  - endpoints: [a:eth1, c:eth0]
    mtu: 1500
");
    assert_eq!(t.links[0].mtu, Some(8930));
    assert_eq!(t.links[1].mtu, Some(1500));
    let e = err("
name: mh6
hosts:
  ha: { address: '2001:db8::1' }
  hb: { address: '2001:db8::2' }
nodes: { a: { host: ha }, b: { host: hb } }
links:
  - endpoints: [a:eth0, b:eth0]
    mtu: 1450
");
    assert!(e.contains("t.yaml:9:10"), "{e}");
    assert!(
        e.contains(
            "MTU 1450 is more than the underlay between hosts `ha` and `hb` carries: at most 1430"
        ),
        "{e}"
    );
    assert!(e.contains("a VXLAN adds 70 bytes"), "{e}");
}

#[test]
fn without_hosts_a_host_or_placement_is_a_located_error() {
    let e = err("name: x\nplacement: auto\nnodes:\n  a: { host: ha }\n");
    assert!(
        e.contains("error: `placement:` without `hosts:`\n --> t.yaml:2:12"),
        "{e}"
    );
    assert!(e.contains("error: node `a` is placed on host `ha`, but the topology has no `hosts:`\n --> t.yaml:4:14"), "{e}");
    let e = err(
        "name: x\nhosts: { ha: { address: 192.0.2.1 } }\nplacement: manual\nvxlan: { port: 0 }\nnodes: { a: {} }\n",
    );
    assert!(
        e.contains("invalid `placement`: `manual` is not `auto`"),
        "{e}"
    );
    assert!(
        e.contains("invalid `vxlan.port`: 0 is not between 1 and 65535"),
        "{e}"
    );
    let e = err("name: x\nkinds: { k: { host: ha } }\nnodes: { a: { kind: k } }\n");
    assert!(e.contains("unknown key `host` in kind `k`"), "{e}");
}

#[test]
fn auto_placement_balances_cuts_little_and_hand_placement_wins() {
    let t = ok("
name: auto
hosts:
  ha: { address: 192.0.2.11 }
  hb: { address: 192.0.2.12 }
placement: auto
nodes: { a: {}, b: {}, c: {}, d: { host: ha }, e: {}, f: {} }
links:
  - [a:eth1, b:eth1]
  - [b:eth2, c:eth1]
  - [c:eth2, d:eth1]
  - [d:eth2, e:eth1]
  - [e:eth2, f:eth1]
");
    assert_eq!(host_of(&t, "d"), "ha");
    let on_a = t
        .nodes
        .iter()
        .filter(|n| n.host.as_deref() == Some("ha"))
        .count();
    assert_eq!(on_a, 3);
    let cut = t.links.iter().filter(|l| l.kind == LinkKind::Vxlan).count();
    assert_eq!(
        cut,
        1,
        "{:?}",
        t.nodes
            .iter()
            .map(|n| (&n.name, &n.host))
            .collect::<Vec<_>>()
    );
    // The same file, the same placement, on every host.
    let again = ok(&std::fs::read_to_string("topologies/two-machines.yaml").unwrap());
    let once = ok(&std::fs::read_to_string("topologies/two-machines.yaml").unwrap());
    let hosts = |t: &Topology| t.nodes.iter().map(|n| n.host.clone()).collect::<Vec<_>>();
    assert_eq!(hosts(&again), hosts(&once));
    assert_eq!(
        hosts(&again),
        [Some("ha"), Some("ha"), Some("hb"), Some("hb")].map(|h| h.map(String::from))
    );
}

#[test]
fn each_host_plans_its_share_and_both_ends_agree_on_the_tunnel() {
    let t = ok(CHAIN);
    let (a, b) = (share_plan(&t, "ha"), share_plan(&t, "hb"));
    assert_eq!(namespaces(&a), ["nslab.mh.r1", "nslab.mh.r2"]);
    assert_eq!(namespaces(&b), ["nslab.mh.r3"]);
    let (va, vb) = (vxlans(&a), vxlans(&b));
    assert_eq!(va.len(), 1);
    assert_eq!(vb.len(), 1);
    assert_eq!(
        (va[0].0.as_str(), va[0].1.as_str()),
        ("nslab.mh.r2", "eth2")
    );
    assert_eq!(
        (vb[0].0.as_str(), vb[0].1.as_str()),
        ("nslab.mh.r3", "eth1")
    );
    assert_eq!(va[0].2, vb[0].2, "one VNI for both ends");
    assert_eq!((va[0].3, vb[0].3), (14789, 14789));
    assert_eq!(
        (va[0].4.as_str(), va[0].5.as_str()),
        ("192.0.2.11", "192.0.2.12")
    );
    assert_eq!(
        (vb[0].4.as_str(), vb[0].5.as_str()),
        ("192.0.2.12", "192.0.2.11")
    );
    assert_eq!((va[0].6, vb[0].6), (Some(1450), Some(1450)));
    // r1-r2 is a veth on ha; r2's routes to r3 go through the vxlan.
    let veths = a
        .steps
        .iter()
        .filter(|s| s.op.name() == "create-veth")
        .count();
    assert_eq!(veths, 1);
    assert!(b.steps.iter().all(|s| s.op.name() != "create-veth"));
    // Every dependency of a share's step is a step of the share.
    for p in [&a, &b] {
        for (i, s) in p.steps.iter().enumerate() {
            assert_eq!(s.id, i + 1);
            assert!(s.deps.iter().all(|d| *d >= 1 && *d < s.id), "{:?}", s);
        }
    }
    // A share reads back from the JSON a running lab keeps.
    let back: Plan = serde_json::from_str(&a.to_json()).unwrap();
    assert_eq!(back.to_json(), a.to_json());
    assert!(a.to_json().contains(r#""create-vxlan""#), "{}", a.to_json());
}

#[test]
fn without_host_the_whole_lab_runs_here_with_veths() {
    let t = ok(CHAIN);
    let p = plan::plan(&t);
    assert_eq!(namespaces(&p).len(), 3);
    assert!(vxlans(&p).is_empty());
    assert_eq!(
        p.steps
            .iter()
            .filter(|s| s.op.name() == "create-veth")
            .count(),
        2
    );
}

#[test]
fn vnis_are_stable_unique_in_the_labs_block_and_pinned_by_vxlan_vni() {
    let t = ok("
name: vni
hosts:
  ha: { address: 192.0.2.11 }
  hb: { address: 192.0.2.12 }
vxlan: { port: 4790 }
nodes: { a: { host: ha }, b: { host: hb }, c: { host: hb } }
links:
  - [a:eth0, b:eth0]
  - [a:eth1, c:eth0]
");
    assert_eq!(t.vxlan_port, 4790);
    let free = share::vnis(&t);
    let (v0, v1) = (free[0].unwrap(), free[1].unwrap());
    assert_ne!(v0, v1);
    // The block is the lab name's: aligned, above the small VNIs other tools use.
    let base = share::block_base(&t);
    assert_eq!(base % share::BLOCK, 0);
    assert!(base >= share::BLOCK);
    for v in [v0, v1] {
        assert!(
            (base..base + share::BLOCK).contains(&v),
            "{v} outside {base}"
        );
    }
    // Adding a link leaves the VNIs of the others as they were.
    let more = ok("
name: vni
hosts:
  ha: { address: 192.0.2.11 }
  hb: { address: 192.0.2.12 }
nodes: { a: { host: ha }, b: { host: hb }, c: { host: hb }, d: { host: hb } }
links:
  - [a:eth5, d:eth0]
  - [a:eth0, b:eth0]
  - [a:eth1, c:eth0]
");
    let with = share::vnis(&more);
    assert_eq!((with[1], with[2]), (Some(v0), Some(v1)));
    // `vxlan: { vni: N }` moves the whole block to N, each link keeping its slot.
    let pinned = ok("
name: vni
hosts:
  ha: { address: 192.0.2.11 }
  hb: { address: 192.0.2.12 }
vxlan: { port: 4790, vni: 70000 }
nodes: { a: { host: ha }, b: { host: hb }, c: { host: hb } }
links:
  - [a:eth0, b:eth0]
  - [a:eth1, c:eth0]
");
    assert_eq!(share::block_base(&pinned), 70000);
    let moved = share::vnis(&pinned);
    assert_eq!(moved[0], Some(70000 + v0 - base));
    assert_eq!(moved[1], Some(70000 + v1 - base));
}

/// (link's two ends, VNI) of every tunnel in a share's plan.
fn tunnel_vnis(t: &Topology, host: &str) -> Vec<(String, u32)> {
    vxlans(&share_plan(t, host))
        .into_iter()
        .map(|(netns, iface, vni, ..)| (format!("{netns}:{iface}"), vni))
        .collect()
}

#[test]
fn every_host_computes_the_same_vni_for_every_link_of_a_grid_over_three_hosts() {
    let mut text = String::from(
        "name: grid\nhosts:\n  ha: { address: 192.0.2.11 }\n  hb: { address: 192.0.2.12 }\n  hc: { address: 192.0.2.13 }\nplacement: auto\nnodes:\n",
    );
    for i in 0..36 {
        text += &format!("  n{i}: {{}}\n");
    }
    text += "links:\n";
    for i in 0..36 {
        if i % 6 != 5 {
            text += &format!("  - [n{i}:e{}, n{}:w{i}]\n", i + 1, i + 1);
        }
        if i < 30 {
            text += &format!("  - [n{i}:s{}, n{}:n{i}]\n", i + 6, i + 6);
        }
    }
    let t = ok(&text);
    let whole = share::vnis(&t);
    let cross: Vec<u32> = whole.iter().flatten().copied().collect();
    assert!(cross.len() >= 6, "the grid should cross hosts: {cross:?}");
    let unique: BTreeSet<u32> = cross.iter().copied().collect();
    assert_eq!(unique.len(), cross.len(), "one VNI per link");
    // Each host's plan holds one end of each of its tunnels; every VNI a host uses is
    // the link's, and each appears on exactly two hosts.
    let mut seen: std::collections::BTreeMap<u32, usize> = Default::default();
    for h in ["ha", "hb", "hc"] {
        for (_, vni) in tunnel_vnis(&t, h) {
            assert!(
                unique.contains(&vni),
                "{h} made VNI {vni} that is no link's"
            );
            *seen.entry(vni).or_default() += 1;
        }
    }
    assert!(seen.values().all(|n| *n == 2), "{seen:?}");
    assert_eq!(seen.len(), cross.len());
}

#[test]
fn a_bad_vxlan_vni_is_a_located_error() {
    let lab = |vni: &str| {
        format!(
            "name: x\nhosts: {{ ha: {{ address: 192.0.2.1 }} }}\nvxlan: {{ vni: {vni} }}\nnodes: {{ a: {{ host: ha }} }}\n"
        )
    };
    let e = err(&lab("0"));
    assert!(
        e.contains("invalid `vxlan.vni`: 0 is not between 1 and 16777215\n --> t.yaml:3:15"),
        "{e}"
    );
    let e = err(&lab("16777216"));
    assert!(e.contains("16777216 is not between 1 and 16777215"), "{e}");
    let e = err(&lab("16770000"));
    assert!(
        e.contains("`vxlan.vni` 16770000: the lab's block of 16384 VNIs would end past 16777215\n --> t.yaml:3:15"),
        "{e}"
    );
    assert!(e.contains("pin at most 16760832"), "{e}");
    // The last block that fits is fine.
    ok(&lab("16760832"));
}

#[test]
fn a_vni_another_lab_or_device_holds_here_is_an_error_naming_both_and_the_fix() {
    let t = ok(CHAIN);
    let s = Share::of(&t, "ha").unwrap();
    let vni = share::vnis(&t)[1].unwrap();
    assert!(nslab::state::vnis::clashes(&t, &s, &Default::default()).is_none());
    // hb holds nothing of r1-r2 (a veth on ha), so a clash there is no clash for ha.
    let held = [
        (vni, "lab `other`".to_string()),
        (vni + 1, "lab `x`".to_string()),
    ]
    .into();
    let e = nslab::state::vnis::clashes(&t, &s, &held).expect("a clash");
    let base = share::block_base(&t);
    assert!(
        e.starts_with(&format!("host ha: lab `mh` cannot make its tunnels: 1 VNI on UDP port 14789 already held here\n  link r2:eth2 r3:eth1: VNI {vni}, held by lab `other`\n")),
        "{e}"
    );
    assert!(e.contains("the other hosts compute the same VNIs"), "{e}");
    assert!(
        e.contains(&format!("({base}..{})", base + share::BLOCK - 1)),
        "{e}"
    );
    assert!(e.contains("`vxlan: { vni: 16384 }`"), "{e}");
    assert!(e.contains("another `vxlan: { port: P }`"), "{e}");
}

#[test]
fn hosts_without_a_usable_address_are_errors_not_a_panic() {
    let e = err("name: x\nhosts: { ha: { address: nope } }\nnodes: { a: { host: ha } }\n");
    assert!(e.contains("invalid address of host `ha`"), "{e}");
    let e = err(
        "name: x\nhosts: { ha: {} }\nplacement: auto\nnodes: { a: {}, b: {} }\nlinks: [[a:eth0, b:eth0]]\n",
    );
    assert!(e.contains("host `ha` needs an `address:`"), "{e}");
}

#[test]
fn a_bridge_with_members_of_different_mtus_is_a_warning() {
    let c = compile_str(
        "name: w\nnodes: { a: {}, b: {} }\nbridges: { lan: {} }\nlinks:\n  - { endpoints: [a:eth0, lan], mtu: 9000 }\n  - [b:eth0, lan]\n",
        "t.yaml",
        Path::new("/labs"),
    )
    .unwrap();
    let w = c.warnings.render(nslab::Severity::Warning);
    assert!(
        w.contains("warning: bridge `lan` joins interfaces of different MTUs (1500, 9000)"),
        "{w}"
    );
    assert!(w.contains("t.yaml:3:12"), "{w}");
    let c = compile_str(
        "name: w\nnodes: { a: {}, b: {} }\nbridges: { lan: { mtu: 9000 } }\nlinks: [[a:eth0, lan], [b:eth0, lan]]\n",
        "t.yaml",
        Path::new("/labs"),
    )
    .unwrap();
    assert!(
        !c.warnings
            .render(nslab::Severity::Warning)
            .contains("different MTUs")
    );
}

#[test]
fn a_bridge_across_hosts_has_a_replica_on_each_joined_by_a_flooding_vxlan() {
    let t = ok("
name: span
hosts:
  ha: { address: 192.0.2.11 }
  hb: { address: 192.0.2.12 }
  hc: { address: 192.0.2.13 }
nodes: { a: { host: ha }, b: { host: hb }, c: { host: ha }, d: { host: hc } }
bridges: { lan: {} }
links: [[a:eth0, lan], [b:eth0, lan], [c:eth0, lan]]
");
    assert_eq!(t.bridges[0].hosts, ["ha", "hb"]);
    assert_eq!(t.node("a").unwrap().interfaces[0].mtu, Some(1450));
    let (a, b, c) = (
        share_plan(&t, "ha"),
        share_plan(&t, "hb"),
        share_plan(&t, "hc"),
    );
    let (va, vb) = (vxlans(&a), vxlans(&b));
    assert_eq!(va.len(), 1);
    assert_eq!(
        (va[0].0.as_str(), va[0].1.as_str()),
        ("nslab.span", "vx-lan")
    );
    assert_eq!(va[0].2, vb[0].2, "one VNI for the bridge on every host");
    let flood = |p: &Plan| -> Vec<String> {
        p.steps
            .iter()
            .find_map(|s| match &s.op {
                Op::CreateLink(l) => match &l.kind {
                    LinkSpec::Vxlan(v) => Some(v.flood.iter().map(|a| a.to_string()).collect()),
                    _ => None,
                },
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(flood(&a), ["192.0.2.12"]);
    assert_eq!(flood(&b), ["192.0.2.11"]);
    // A veth port per local member; hc has no member and so no replica (d only).
    assert_eq!(
        a.steps
            .iter()
            .filter(|s| s.op.name() == "create-veth")
            .count(),
        2
    );
    assert_eq!(namespaces(&c), ["nslab.span.d"]);
    assert!(namespaces(&a).contains(&"nslab.span".to_string()));
    // The tunnel goes before the fabric at down.
    let td = a.teardown();
    assert!(td.netlink.iter().any(|u| u.name() == "delete-tunnel"));
}

/// `nslab plan` of a multi-host lab says, before its steps, which nodes land on which
/// host and why, and the tunnels between hosts with the MTU a node gets on them; a
/// reader that stops early (`| head`) is no error.
#[test]
fn the_plan_says_where_each_node_lands_why_and_the_tunnels_mtu() {
    let dir = std::env::temp_dir().join(format!("nslab-mh-place-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("place.yaml");
    let mut text = String::from(
        "name: mh-place\nhosts:\n  ha: { address: 192.0.2.1, mtu: 9000 }\n  hb: { address: 192.0.2.2, mtu: 9000 }\n  hc: { address: 192.0.2.3 }\nplacement: auto\nnodes:\n  r1: { host: hc }\n",
    );
    for n in 2..=30 {
        text.push_str(&format!("  r{n}: {{}}\n"));
    }
    text.push_str("links:\n");
    for n in 1..30 {
        text.push_str(&format!("  - [r{n}:eth1, r{}:eth0]\n", n + 1));
    }
    std::fs::write(&file, &text).unwrap();
    let t = ok(&text);
    let run = |args: &[&str]| {
        support::nslab()
            .arg("plan")
            .arg(&file)
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(&["--host", "hb"]);
    assert!(o.status.success(), "{}", support::text(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let head: Vec<&str> = out.lines().take(4).collect();
    assert!(
        head[0].starts_with("placement: 30 nodes on 3 hosts, by `placement: auto`")
            && head[0].ends_with("the steps below are host `hb`'s share"),
        "{out}"
    );
    // Each host's line: its nodes as placed, how many by hand, its tunnels and MTUs.
    for (i, h) in ["ha", "hb", "hc"].iter().enumerate() {
        let mine: Vec<String> = (1..=30)
            .map(|n| format!("r{n}"))
            .filter(|n| host_of(&t, n) == *h)
            .collect();
        let line = head[i + 1];
        assert!(
            line.starts_with(&format!("  host {h} (192.0.2.{}", i + 1)),
            "{line}"
        );
        assert!(
            line.contains(&format!(": {} nodes, ", mine.len())),
            "{line}"
        );
        let hand = usize::from(*h == "hc");
        assert!(line.contains(&format!("{hand} by `host:`")), "{line}");
        assert!(line.contains(&mine[0]), "{line}");
    }
    // A link to hc (underlay 1500) gets 1450 on both ends; ha-hb (9000) gets 8950.
    let cross: Vec<(String, String, Option<u32>)> = t
        .links
        .iter()
        .filter(|l| l.kind == LinkKind::Vxlan)
        .map(|l| {
            let node = |e: &nslab::model::End| match e {
                nslab::model::End::Node { node, .. } => t.nodes[*node].name.clone(),
                other => panic!("a tunnel ends at {other:?}"),
            };
            (host_of(&t, &node(&l.a)), host_of(&t, &node(&l.b)), l.mtu)
        })
        .collect();
    assert!(!cross.is_empty());
    for (a, b, mtu) in &cross {
        let want = if a == "hc" || b == "hc" { 1450 } else { 8950 };
        assert_eq!(*mtu, Some(want), "{a}-{b}");
        let line = head
            .iter()
            .find(|l| l.starts_with(&format!("  host {a} ")))
            .unwrap();
        assert!(line.contains(&format!(" to {b} (MTU {want})")), "{line}");
    }
    // Without --host, the whole lab here: the summary says its links are veths.
    let o = run(&[]);
    let first = String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    assert!(first.contains("as veths with the tunnels' MTU"), "{first}");
    // A reader that went away (`| head`): its pipe's read end closed before the first
    // write, so every write fails with EPIPE; exit 0, nothing on stderr.
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let o = support::nslab()
        .args(["plan", "--host", "ha"])
        .arg(&file)
        .stdout(std::process::Stdio::from(write))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
