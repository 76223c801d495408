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

fn share_plan(t: &Topology, host: &str, taken: &[u32]) -> Plan {
    let taken: BTreeSet<u32> = taken.iter().copied().collect();
    plan::plan_share(t, &Share::of(t, host, &taken).unwrap())
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
    let (a, b) = (share_plan(&t, "ha", &[]), share_plan(&t, "hb", &[]));
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
fn vnis_are_stable_unique_and_step_around_other_labs() {
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
    let free = share::vnis(&t, &BTreeSet::new());
    let (v0, v1) = (free[0].unwrap(), free[1].unwrap());
    assert_ne!(v0, v1);
    assert!((share::VNI_MIN..=share::VNI_MAX).contains(&v0));
    // Another lab holds v0 on this host: that link moves to the next free VNI, the other
    // keeps its own.
    let taken: BTreeSet<u32> = [v0].into();
    let moved = share::vnis(&t, &taken);
    assert_ne!(moved[0].unwrap(), v0);
    assert!(!taken.contains(&moved[0].unwrap()));
    assert_ne!(moved[0], moved[1]);
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
    let with = share::vnis(&more, &BTreeSet::new());
    assert_eq!((with[1], with[2]), (Some(v0), Some(v1)));
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
        share_plan(&t, "ha", &[]),
        share_plan(&t, "hb", &[]),
        share_plan(&t, "hc", &[]),
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
