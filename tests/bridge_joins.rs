//! Links joining two bridges, compiled (no root): one subnet per joined segment, member
//! addresses unique across it, port names, the plan's steps, static routes and the
//! neighbour estimate over the segment, and STP on the bridges that ask for it.

mod support;

use nslab::plan::{self, LinkSpec, Op};
use support::{err, ok};

const TREE: &str = "name: tree
bridges: { s1: {}, s2: { subnet: 10.7.0.0/24 }, s3: {}, lone: {} }
nodes: { h1: {}, h2: {}, h3: {}, h4: {}, h5: {} }
links:
  - [s1, s2]
  - endpoints: [s1, s3]
    mtu: 9000
    impair: { delay: 5ms }
  - [h1:eth0, s2]
  - [h2:eth0, s2]
  - [h3:eth0, s3]
  - [h4:eth0, s3]
  - [h5:eth0, lone]
";

#[test]
fn joined_bridges_share_one_subnet_and_their_members_its_addresses() {
    let t = ok(TREE);
    let subnet = |b: &str| {
        let b = t.bridges.iter().find(|x| x.name == b).unwrap();
        b.subnets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    // s2 writes the segment's subnet; s1 and s3 are joined to it.
    for b in ["s1", "s2", "s3"] {
        assert_eq!(subnet(b), ["10.7.0.0/24"], "{b}");
    }
    assert_ne!(subnet("lone"), ["10.7.0.0/24"]);
    let mut addrs: Vec<String> = (1..=4)
        .map(|i| t.node(&format!("h{i}")).unwrap().interfaces[0].addresses[0].to_string())
        .collect();
    assert!(addrs.iter().all(|a| a.starts_with("10.7.0.")), "{addrs:?}");
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 4, "unique across the segment: {addrs:?}");
}

#[test]
fn a_join_is_a_veth_in_the_fabric_with_a_port_on_each_bridge() {
    let t = ok(TREE);
    let s1 = t.bridges.iter().find(|b| b.name == "s1").unwrap();
    let names: Vec<&str> = s1.uplinks.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["s1.s2", "s1.s3"]);
    assert_eq!(s1.uplinks[1].mtu, Some(9000));
    assert!(s1.uplinks[1].impair.is_some());
    let p = plan::plan(&t);
    let joins: Vec<_> = p
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::CreateLink(l) => match &l.kind {
                LinkSpec::Join(j) => Some((l.clone(), j.clone())),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(joins.len(), 2);
    let (l, j) = &joins[1];
    assert_eq!(&*l.netns, "nslab.tree");
    assert_eq!((&*l.name, &*j.peer_name), ("s1.s3", "s3.s1"));
    assert_eq!(l.master, Some(s1.ifindex));
    let s3 = t.bridges.iter().find(|b| b.name == "s3").unwrap();
    assert_eq!(j.peer_master, s3.ifindex);
    assert_eq!(l.mtu, Some(9000));
    // Both ends' impairment is set on the fabric's ports.
    let impaired: Vec<&str> = p
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::SetImpair { netns, name, .. } if &**netns == "nslab.tree" => Some(&**name),
            _ => None,
        })
        .collect();
    assert_eq!(impaired, ["s1.s3", "s3.s1"]);
    // A stored plan reads back the same.
    let back: plan::Plan = serde_json::from_str(&p.to_json()).unwrap();
    assert_eq!(back.to_json(), p.to_json());
}

#[test]
fn static_routing_and_the_neighbour_estimate_see_the_whole_segment() {
    use nslab::preflight::neigh;
    let t = ok(TREE);
    // 4 members on the joined segment: 4 x 3; `lone` has one member.
    assert_eq!(neigh::entries(&t, false), 12);
    // A router on s2 reaches a host on s3 directly: the segment is its connected subnet.
    let t = ok("name: rt
routing: static
bridges: { s1: {}, s2: {} }
nodes: { r: {}, h: {}, far: {} }
links:
  - [s1, s2]
  - [r:eth0, s1]
  - [h:eth0, s2]
  - [r:eth1, far:eth0]
");
    let h = t.node("h").unwrap();
    let r_addr = t.node("r").unwrap().interfaces[0].addresses[0].addr();
    let far = t.node("far").unwrap().interfaces[0].addresses[0];
    let route = h
        .routes
        .iter()
        .find(|x| x.dst.contains(&far.addr()))
        .unwrap_or_else(|| panic!("h has a route to far: {:?}", h.routes));
    assert_eq!(route.nexthops[0].gateway, r_addr);
}

#[test]
fn stp_is_made_on_the_bridges_that_ask_for_it() {
    let t = ok("name: ring
bridges: { s1: { stp: true }, s2: { stp: true }, s3: { stp: true }, s4: {} }
nodes: { h: {} }
links:
  - [s1, s2]
  - [s2, s3]
  - [s3, s1]
  - [s3, s4]
  - [h, s4]
");
    let stp: Vec<(String, bool)> = plan::plan(&t)
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::CreateBridge { name, stp, .. } => Some((name.to_string(), *stp)),
            _ => None,
        })
        .collect();
    let want = [("s1", true), ("s2", true), ("s3", true), ("s4", false)];
    assert_eq!(stp, want.map(|(n, s)| (n.to_string(), s)));
    // One bridge of the ring without STP refuses it, naming the ring.
    let e = err("name: ring
bridges: { s1: { stp: true }, s2: {}, s3: { stp: true } }
nodes: { h: {} }
links:
  - [s1, s2]
  - [s2, s3]
  - [s3, s1]
  - [h, s1]
");
    assert!(e.contains("t.yaml:7:5"), "{e}");
    assert!(
        e.contains("this link closes a loop of bridges: `s3` - `s2` - `s1`"),
        "{e}"
    );
    assert!(e.contains("(`s2` does not)"), "{e}");
}

#[test]
fn a_join_without_its_own_mtu_takes_the_smaller_of_its_bridges() {
    let t = ok("name: mtu
bridges: { a: { mtu: 9000 }, b: { mtu: 4000 }, c: { mtu: 9000 }, d: {} }
nodes: { h: {} }
links:
  - [a, b]
  - [a, c]
  - [c, d]
  - [h, a]
");
    let mtus: Vec<Option<u32>> = t
        .bridges
        .iter()
        .flat_map(|b| &b.uplinks)
        .map(|u| u.mtu)
        .collect();
    // a: to b, to c; b: to a; c: to a, to d; d: to c.
    assert_eq!(
        mtus,
        [Some(4000), Some(9000), Some(4000), Some(9000), None, None]
    );
}
