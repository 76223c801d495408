//! Host links and the management network: the opt-in parts of a lab that live in the
//! host's namespace. Compile tests (no root): plans, names, addresses and located errors.
//! Privileged tests: the host reaches nodes over both, `down` leaves the host as it was,
//! and an `up` that would clash with the host makes nothing.

mod support;

use std::process::Command;

use nslab::plan::{Op, Undo};
use support::*;

const MGMT: &str = "\
mgmt: { subnet: 172.31.240.0/24, subnet6: \"fd7e:1ab:240::/64\" }
nodes:
  r1: {}
  r2: { mgmt: { address: 172.31.240.9 } }
  r3: { mgmt: false }
  r4: {}
links:
  - [r1:eth1, r2:eth1]
";

fn plan_of(yaml: &str) -> nslab::plan::Plan {
    nslab::plan::plan(&ok(yaml))
}

#[test]
fn mgmt_gives_each_node_the_next_address_and_the_host_the_first() {
    let t = ok(&format!("name: mg\n{MGMT}"));
    let m = t.mgmt.as_ref().expect("a management bridge");
    assert_eq!(m.bridge, "br-mg");
    let host: Vec<String> = m.addresses.iter().map(|a| a.to_string()).collect();
    assert_eq!(host, ["172.31.240.1/24", "fd7e:1ab:240::1/64"]);
    let ends: Vec<(String, String, Vec<String>)> = t
        .host_links
        .iter()
        .map(|h| {
            let addrs = h.addresses.iter().map(|a| a.to_string()).collect();
            (t.nodes[h.node].name.clone(), h.host_iface.clone(), addrs)
        })
        .collect();
    // r2 keeps its written address, r3 is left out, r4 gets the next free one after r1.
    assert_eq!(
        ends,
        [
            (
                "r1".into(),
                "mg-r1".into(),
                vec!["172.31.240.2/24".into(), "fd7e:1ab:240::2/64".into()]
            ),
            (
                "r2".into(),
                "mg-r2".into(),
                vec!["172.31.240.9/24".into(), "fd7e:1ab:240::3/64".into()]
            ),
            (
                "r4".into(),
                "mg-r4".into(),
                vec!["172.31.240.3/24".into(), "fd7e:1ab:240::4/64".into()]
            ),
        ]
    );
    assert!(t.host_links.iter().all(|h| h.mgmt && h.iface == "mgmt0"));
    // No node gets a route through the management network: the host is on-link.
    assert!(t.nodes.iter().all(|n| n.routes.is_empty()));
}

#[test]
fn the_host_end_of_a_long_node_name_is_a_hash_within_15_bytes() {
    let t = ok(
        "name: labtwelvechr\nmgmt: { subnet: 172.31.241.0/24 }\nnodes: { a-rather-long-node: {}, b: {} }\n",
    );
    let names: Vec<&str> = t.host_links.iter().map(|h| h.host_iface.as_str()).collect();
    assert!(
        names[0].starts_with("labtwelvechr-") && names[0].len() == 15,
        "{names:?}"
    );
    assert_eq!(names[1], "labtwelvechr-b");
    assert_eq!(t.mgmt.as_ref().unwrap().bridge, "br-labtwelvechr");
}

#[test]
fn a_host_link_or_mgmt_on_a_name_of_the_nodes_own_interfaces_is_refused() {
    let e = err(
        "name: hn-own\nmgmt: { subnet: 172.31.242.0/24 }\nnodes:\n  r1:\n    interfaces:\n      mgmt0: { kind: dummy, addresses: [10.255.0.1/32] }\n      lo1: { kind: dummy }\nlinks:\n  - endpoints: [r1:lo1, { host: hn-up, addresses: [198.51.100.1/30] }]\n",
    );
    for iface in ["mgmt0", "lo1"] {
        assert!(
            e.contains(&format!("interface `{iface}` of node `r1` is already used")),
            "{iface}: {e}"
        );
    }
    // A host route to a subnet a node's own interface has would shadow it.
    let e = err(
        "name: hn-own\nnodes:\n  r1:\n    interfaces:\n      lo1: { kind: dummy, addresses: [198.51.100.2/30] }\nlinks:\n  - endpoints: [r1:eth5, { host: hn-up, addresses: [198.51.100.1/30] }]\n",
    );
    assert!(e.contains("198.51.100.0/30"), "{e}");
}

#[test]
fn a_lab_name_too_long_for_the_host_ends_is_an_error_not_a_panic() {
    // Found by the fuzzer: the hashed host-end name had no room left for its digits.
    for name in [
        "labthirteench",
        "a-lab-name-of-15",
        "a-lab-name-much-longer-than-15",
    ] {
        let e = err(&format!(
            "name: {name}\nmgmt: {{ subnet: 172.31.241.0/24 }}\nnodes: {{ a-rather-long-node: {{}} }}\n"
        ));
        assert!(e.contains("name"), "{e}");
    }
}

#[test]
fn the_plan_makes_host_objects_in_the_hosts_namespace_and_tears_them_down_there() {
    let p = plan_of(&format!(
        "name: mp\n{MGMT}  - endpoints: [r4:eth7, {{ host: mp-up, addresses: [198.51.100.1/30] }}]\n    addresses: [198.51.100.2/30, ~]\n"
    ));
    let host: Vec<String> = p
        .steps
        .iter()
        .filter(|s| s.op.netns() == "@host")
        .map(|s| {
            format!(
                "{} {}",
                s.op.name(),
                serde_json::to_value(&s.op).unwrap()["name"]
            )
        })
        .collect();
    assert_eq!(
        host,
        [
            "create-bridge \"br-mp\"",
            "add-address \"br-mp\"",
            "add-address \"br-mp\"",
            "set-link-up \"br-mp\"",
            "create-veth \"mp-up\"",
            "add-address \"mp-up\"",
            "create-veth \"mp-r1\"",
            "create-veth \"mp-r2\"",
            "create-veth \"mp-r4\"",
        ]
    );
    // Every host object is undone through the host, before the namespaces go.
    let down = p.teardown();
    let deleted: Vec<&str> = down
        .netlink
        .iter()
        .filter_map(|u| match u {
            Undo::DeleteLink { netns, name, .. } if &**netns == "@host" => Some(&**name),
            _ => None,
        })
        .collect();
    for name in ["br-mp", "mp-up", "mp-r1", "mp-r2", "mp-r4"] {
        assert!(deleted.contains(&name), "{name} not torn down: {deleted:?}");
    }
    // A stored plan reads back as it was written (`nslab apply` and `down` read it).
    let back: nslab::plan::Plan = serde_json::from_str(&p.to_json()).expect("reads back");
    assert_eq!(back.steps.len(), p.steps.len());
    assert!(back.steps.iter().zip(&p.steps).all(|(a, b)| a.op == b.op));
    nslab::invariants::check_plan(&p).expect("the plan's invariants hold");
}

#[test]
fn the_short_form_names_the_host_and_a_node_called_host_keeps_its_meaning() {
    let t = ok("name: sf\nnodes: { r1: {} }\nlinks: [[r1:eth1, \"host:sf-r1\"]]\n");
    assert_eq!(t.host_links.len(), 1);
    assert_eq!(t.host_links[0].host_iface, "sf-r1");
    assert!(t.links.is_empty());
    let t = ok("name: sf\nnodes: { r1: {}, host: {} }\nlinks: [[r1:eth1, host:eth1]]\n");
    assert!(t.host_links.is_empty());
    assert_eq!(t.links.len(), 1);
}

#[test]
fn host_side_problems_are_located_errors_all_at_once() {
    let e = err(r#"name: bad
nodes: { r1: {}, r2: {} }
links:
  - endpoints: [r1:eth1, r2:eth1]
    addresses: [10.9.0.0/31, 10.9.0.1/31]
  - endpoints: [r1:eth2, { host: bad-up, addresses: [10.9.0.1/24] }]
  - [r2:eth2, "host:a-name-longer-than-15"]
  - [r2:eth1, "host:bad-x"]
  - [r1:eth3, "host:bad-up"]
"#);
    for needle in [
        "t.yaml:6:54",
        "10.9.0.0/24 overlaps the lab's subnet 10.9.0.0/31",
        "t.yaml:7:21",
        "is 21 bytes long",
        "t.yaml:8:9",
        "interface `eth1` of node `r2` is already used",
        "t.yaml:9:21",
        "host interface `bad-up` is named twice",
    ] {
        assert!(e.contains(needle), "`{needle}` missing from:\n{e}");
    }
}

#[test]
fn mgmt_problems_are_located_errors() {
    let e = err(r#"name: bad
mgmt: { subnet: "fd00::/64", bridge: br-bad.with.far.too.long.name }
defaults: { mgmt: false }
nodes: { r1: { mgmt: { address: 172.16.0.1 } } }
"#);
    for needle in [
        "t.yaml:2:17",
        "`mgmt.subnet` must be an IPv4 prefix",
        "t.yaml:2:38",
        "host interface: interface name",
        "t.yaml:3:13",
        "`defaults` cannot set `mgmt`",
        "no `mgmt` subnet of its family",
    ] {
        assert!(e.contains(needle), "`{needle}` missing from:\n{e}");
    }
    // An IPv6 address outside a /64 is refused without walking the subnet.
    let e = err(
        "name: bad\nmgmt: { subnet6: \"fd7e:1::/64\" }\nnodes: { r1: { mgmt: { address6: \"fd7e:2::1\" } } }\n",
    );
    assert!(
        e.contains("mgmt address fd7e:2::1 is not a free address of fd7e:1::/64"),
        "{e}"
    );
    let e =
        err("name: bad\nmgmt: { subnet: 10.0.0.0/16 }\nnodes: { r1: { loopback: 10.0.3.1/32 } }\n");
    assert!(
        e.contains("10.0.0.0/16 overlaps the lab's subnet 10.0.3.1/32"),
        "{e}"
    );
}

/// The host's links and addresses as `ip -o` prints them, the fields that name objects
/// (link counters and lifetimes change by themselves).
fn host_net() -> String {
    let run = |args: &[&str]| {
        let o = Command::new("ip").args(args).output().expect("ip runs");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let links: Vec<String> = run(&["-o", "link"])
        .lines()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect();
    let addrs: Vec<String> = run(&["-o", "addr"])
        .lines()
        .map(|l| l.split_whitespace().take(4).collect::<Vec<_>>().join(" "))
        .collect();
    format!("{}\n{}", links.join("\n"), addrs.join("\n"))
}

fn host_ping(addr: &str) -> bool {
    Command::new("ping")
        .args(["-c1", "-W2", addr])
        .output()
        .expect("ping runs")
        .status
        .success()
}

#[test]
fn the_host_reaches_every_node_over_mgmt_and_a_host_link_and_down_leaves_it_as_it_was() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_net();
    let lab = Lab::new(
        "hn-reach",
        "mgmt: { subnet: 172.31.242.0/24, subnet6: \"fd7e:1ab:242::/64\" }
nodes:
  r1:
    processes:
      - name: web
        cmd: \"socat TCP-LISTEN:8080,reuseaddr,fork SYSTEM:'echo from-r1'\"
        ready: { tcp: 8080 }
  r2: {}
  r3: { mgmt: false }
links:
  - [r1:eth1, r2:eth1]
  - endpoints: [r3:eth1, { host: hn-reach-up, addresses: [198.51.100.5/30] }]
    addresses: [198.51.100.6/30, ~]
",
    );
    lab.up();
    for addr in [
        "172.31.242.2",
        "172.31.242.3",
        "fd7e:1ab:242::2",
        "198.51.100.6",
    ] {
        assert!(host_ping(addr), "the host cannot ping {addr}");
    }
    // r3 is left out of the management network.
    assert!(
        !lab.exec("r3", &["ip", "link", "show", "mgmt0"])
            .status
            .success()
    );
    // A TCP connection from the host to a listener in r1, through its mgmt address.
    let o = Command::new("socat")
        .args(["-T2", "-", "TCP:172.31.242.2:8080,connect-timeout=2"])
        .output()
        .expect("socat runs");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "from-r1",
        "{o:?}"
    );
    let during = host_net();
    for name in ["br-hn-reach", "hn-reach-r1", "hn-reach-r2", "hn-reach-up"] {
        let shown = [format!(" {name}:"), format!(" {name}@")];
        assert!(
            shown.iter().any(|s| during.contains(s)),
            "{name} missing on the host:\n{during}"
        );
        // Each carries the lab's tag, the one proof `down` takes that it is the lab's.
        let alias = std::fs::read_to_string(format!("/sys/class/net/{name}/ifalias")).unwrap();
        assert_eq!(alias.trim(), "nslab:hn-reach", "{name} is not tagged");
    }
    lab.down();
    assert_same_host(&before, &host_net(), "after down");
}

#[test]
fn an_up_that_would_clash_with_the_host_makes_nothing_and_names_the_clash() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let ip = |args: &[&str]| Command::new("ip").args(args).status().expect("ip runs");
    // An interface of the host's own, which the lab's host link would be named as.
    assert!(ip(&["link", "add", "hn-clash-up", "type", "bridge"]).success());
    let before = host_net();
    let lab = Lab::new(
        "hn-clash",
        "mgmt: { subnet: 172.31.243.0/24 }
nodes: { r1: {} }
links: [[r1:eth1, \"host:hn-clash-up\"]]
",
    );
    let o = lab.up_fails(&[
        "interface `hn-clash-up` already exists on the host",
        "nothing was made",
    ]);
    let after = host_net();
    ip(&["link", "del", "hn-clash-up"]);
    assert_same_host(&before, &after, "after the refused up");
    assert!(!text(&o).contains("br-hn-clash already"), "{}", text(&o));
    assert!(!std::path::Path::new("/run/netns/nslab.hn-clash.r1").exists());
}

fn import(src: &str) -> String {
    let dir = std::env::temp_dir().join("nslab-tests-hostnet");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!(
        "{:016x}.clab.yml",
        nslab::model::names::fnv1a(&[src])
    ));
    std::fs::write(&file, src).unwrap();
    let o = nslab().arg("import").arg(&file).output().unwrap();
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_dir(&dir);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn containerlab_host_links_and_management_keys_map_and_import_prints_them() {
    let yaml = import(
        r#"name: cl1
mgmt: { network: custom, ipv4-subnet: 172.31.100.0/24, ipv6-subnet: "fd7e:100::/64" }
topology:
  nodes:
    r1: { kind: linux, image: alpine, mgmt-ipv4: 172.31.100.11 }
    r2: { kind: linux, image: alpine }
  links:
    - endpoints: ["r1:eth1", "r2:eth1"]
    - endpoints: ["r1:eth2", "host:cl1-r1"]
    - type: host
      endpoint: { node: r2, interface: eth2 }
      host-interface: cl1-r2
    - endpoints: ["r2:eth3", "mgmt-net:r2-m"]
"#,
    );
    for needle in [
        // The file's own network, shared with every lab naming it.
        "mgmt:\n  network: custom\n  subnet: 172.31.100.0/24\n  subnet6: fd7e:100::/64\n  iface: eth0\n",
        "    mgmt:\n      address: 172.31.100.11\n",
        "- r1:eth2\n    - host:cl1-r1\n",
        "- r2:eth2\n    - host:cl1-r2\n",
        "- r2:eth3\n    - host: r2-m\n      mgmt: true\n",
    ] {
        assert!(yaml.contains(needle), "`{needle}` missing from:\n{yaml}");
    }
    // What import prints compiles to the same host objects as the file itself.
    let t = ok(yaml.as_str());
    let host: Vec<&str> = t.host_links.iter().map(|h| h.host_iface.as_str()).collect();
    assert_eq!(host.len(), 5, "{host:?}");
    // containerlab's `mgmt-net:r2-m` keeps its names: r2's eth3, the host's r2-m, a port
    // of the management bridge.
    let m = t
        .host_links
        .iter()
        .find(|h| h.host_iface == "r2-m")
        .unwrap();
    assert!(m.mgmt && m.iface == "eth3", "{m:?}");
    assert_eq!(t.mgmt.as_ref().unwrap().bridge, "br-custom");
    assert!(
        host.contains(&"cl1-r1") && host.contains(&"cl1-r2"),
        "{host:?}"
    );
    // The node whose plain management name a host link took gets the hashed form.
    assert!(
        host.iter().filter(|h| h.len() == 15).count() == 2,
        "{host:?}"
    );
}

#[test]
fn a_containerlab_file_without_management_keys_makes_nothing_on_the_host() {
    let yaml = import(
        "name: cl2\ntopology:\n  nodes:\n    r1: { kind: linux, image: alpine }\n    r2: { kind: linux, image: alpine }\n  links:\n    - endpoints: [\"r1:eth1\", \"r2:eth1\"]\n",
    );
    assert!(!yaml.contains("mgmt"), "{yaml}");
    let t = ok(yaml.as_str());
    assert!(t.mgmt.is_none() && t.host_links.is_empty());
}

#[test]
fn each_host_of_a_multi_host_lab_makes_its_own_mgmt_bridge_for_its_own_nodes() {
    let t = ok(r#"name: mh
hosts: { ha: { address: 192.0.2.11 }, hb: { address: 192.0.2.12 } }
mgmt: { subnet: 172.31.245.0/24 }
nodes:
  a1: { host: ha }
  a2: { host: ha }
  b1: { host: hb }
links:
  - [a1:eth1, b1:eth1]
  - [b1:eth2, "host:mh-b1-up"]
"#);
    let share = |host: &str| {
        let s = nslab::plan::share::Share::of(&t, host).unwrap();
        let p = nslab::plan::plan_share(&t, &s);
        let made: Vec<String> = p
            .steps
            .iter()
            .filter(|s| s.op.netns() == "@host")
            .filter_map(|s| match &s.op {
                Op::CreateBridge { name, .. } => Some(format!("bridge {name}")),
                Op::CreateLink(l) => Some(format!("veth {}", l.name)),
                Op::AddAddress { name, address, .. } => Some(format!("{name} {address}")),
                _ => None,
            })
            .collect();
        made
    };
    assert_eq!(
        share("ha"),
        [
            "bridge br-mh",
            "br-mh 172.31.245.1/24",
            "veth mh-a1",
            "veth mh-a2"
        ]
    );
    assert_eq!(
        share("hb"),
        [
            "bridge br-mh",
            "br-mh 172.31.245.1/24",
            "veth mh-b1-up",
            "veth mh-b1"
        ]
    );
    // The nodes' addresses come from the whole file: unique across the hosts.
    let b1 = t
        .host_links
        .iter()
        .find(|h| h.host_iface == "mh-b1")
        .unwrap();
    assert_eq!(b1.addresses[0].to_string(), "172.31.245.4/24");
}

#[test]
fn apply_adds_and_removes_nodes_management_links_on_the_host() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_net();
    let lab = Lab::new(
        "hn-apply",
        "mgmt: { subnet: 172.31.246.0/24 }\nnodes:\n  r1: {}\n  r2: { mgmt: false }\n",
    );
    lab.up();
    let changed = lab.file.with_extension("next.yaml");
    std::fs::write(
        &changed,
        "name: hn-apply\nmgmt: { subnet: 172.31.246.0/24 }\nnodes:\n  r1: { mgmt: false }\n  r2: { mgmt: { address: 172.31.246.20 } }\n  r3: {}\n",
    )
    .unwrap();
    let o = nslab().arg("apply").arg(&changed).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let during = host_net();
    assert!(!during.contains(" hn-apply-r1@"), "{during}");
    for name in ["hn-apply-r2", "hn-apply-r3"] {
        assert!(
            during.contains(&format!(" {name}@")),
            "{name} missing:\n{during}"
        );
    }
    assert!(host_ping("172.31.246.20") && host_ping("172.31.246.2"));
    assert!(
        !lab.exec("r1", &["ip", "link", "show", "mgmt0"])
            .status
            .success()
    );
    lab.down();
    let _ = std::fs::remove_file(&changed);
    assert_same_host(&before, &host_net(), "after apply and down");
}

#[test]
fn an_apply_refused_for_a_host_clash_changes_nothing_of_the_lab() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let ip = |args: &[&str]| Command::new("ip").args(args).status().expect("ip runs");
    let before = host_net();
    let lab = Lab::new(
        "hn-refuse",
        "nodes: { r1: {}, r2: {} }\nlinks: [[r1:eth1, r2:eth1]]\n",
    );
    lab.up();
    // A mark the plan does not know: it survives only if the link is never deleted.
    let mark = ["ip", "addr", "add", "192.0.2.9/32", "dev", "eth1"];
    assert!(lab.exec("r1", &mark).status.success());
    // An interface of the host's own, which the new host link would be named as.
    assert!(ip(&["link", "add", "hn-refuse-up", "type", "bridge"]).success());
    let changed = lab.file.with_extension("next.yaml");
    std::fs::write(
        &changed,
        "name: hn-refuse\nnodes: { r1: {}, r2: {} }\nlinks: [[r1:eth2, \"host:hn-refuse-up\"]]\n",
    )
    .unwrap();
    let o = nslab().arg("apply").arg(&changed).output().unwrap();
    let out = text(&o);
    ip(&["link", "del", "hn-refuse-up"]);
    let _ = std::fs::remove_file(&changed);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("interface `hn-refuse-up` already exists on the host"),
        "{out}"
    );
    let shown = lab.exec("r1", &["ip", "-o", "addr", "show", "dev", "eth1"]);
    assert!(
        text(&shown).contains("192.0.2.9/32"),
        "the link the apply would remove was deleted: {}",
        text(&shown)
    );
    let r2 = lab.addr("r2", "eth1", false);
    assert!(lab.ping("r1", &r2), "r1 no longer reaches r2");
    lab.down();
    assert_same_host(&before, &host_net(), "after the refused apply and down");
}

#[test]
fn a_failed_ups_rollback_removes_what_it_made_on_the_host() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_net();
    let lab = Lab::new(
        "hn-rollbk",
        "mgmt: { subnet: 172.31.247.0/24 }\nnodes: { r1: {}, r2: {} }\nlinks:\n  - endpoints: [r1:eth1, { host: hn-rollbk-up, addresses: [198.51.100.9/30] }]\n",
    );
    let p = nslab::plan::plan(&lab.topology());
    // The last step fails: by then every host object was made.
    let last = p.steps.len();
    let made_on_host = p.steps[..last - 1]
        .iter()
        .filter(|s| s.op.netns() == "@host")
        .count();
    assert!(made_on_host >= 5, "{made_on_host}");
    let o = nslab()
        .arg("up")
        .arg(&lab.file)
        .env("NSLAB_TEST_FAIL_AT_STEP", last.to_string())
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    // It failed where it was told to, after the host's objects, and rolled back.
    assert_eq!(p.steps[last - 1].op.name(), "start-node");
    assert!(
        text(&o).contains("start node init of node r2 failed: injected failure"),
        "{}",
        text(&o)
    );
    assert!(!lab.is_up());
    assert_same_host(&before, &host_net(), "after the rolled back up");
}

#[test]
fn a_host_end_with_mgmt_true_is_a_port_of_the_management_bridge() {
    let t = ok(r#"name: mj
mgmt: { subnet: 172.31.246.0/24 }
nodes: { r1: {} }
links:
  - endpoints: [{ node: r1, iface: eth5, addresses: [172.31.246.50/24] }, { host: mj-r1-x, mgmt: true }]
"#);
    let h = t
        .host_links
        .iter()
        .find(|h| h.host_iface == "mj-r1-x")
        .unwrap();
    assert!(h.mgmt && h.iface == "eth5", "{h:?}");
    // Its host end joins the bridge in the plan, as the nodes' own management ends do.
    let p = nslab::plan::plan(&t);
    let bridge = t.mgmt.as_ref().unwrap().ifindex;
    let joined = p.steps.iter().any(|s| {
        matches!(&s.op, Op::CreateLink(l) if l.name.as_ref() == "mj-r1-x" && l.master == Some(bridge))
    });
    assert!(joined, "{}", nslab::plan::render_text(&p));
    // Without `mgmt:` there is no bridge to join; the host end holds no address.
    let e = err(
        "name: mk\nnodes: { r1: {} }\nlinks:\n  - endpoints: [r1:eth5, { host: x-m, mgmt: true, addresses: [10.1.0.1/24] }]\n",
    );
    assert!(
        e.contains("host interface `x-m` joins the management bridge, but the lab has no `mgmt:`")
            && e.contains("t.yaml:4:45"),
        "{e}"
    );
    assert!(
        e.contains("the host end of a link to the management bridge holds no address"),
        "{e}"
    );
}

/// Whether the host has an interface called `name`.
fn on_host(name: &str) -> bool {
    std::path::Path::new(&format!("/sys/class/net/{name}")).exists()
}

#[test]
fn down_deletes_a_host_end_whose_namespace_another_process_holds_open() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_net();
    let lab = Lab::new(
        "hn-held",
        "mgmt: { subnet: 172.31.238.0/24 }\nnodes: { n1: {}, n2: {} }\nlinks:\n  - endpoints: [n2:eth1, { host: hn-held-up }]\n",
    );
    lab.up();
    let ends = ["hn-held-n1", "hn-held-n2", "hn-held-up", "br-hn-held"];
    assert!(ends.iter().all(|e| on_host(e)), "{}", host_net());
    // A process outside the lab (in the host's namespaces, so the sweep of the lab's
    // namespaces leaves it) holds n1's namespace by a descriptor: the kernel cannot free
    // it when `down` deletes its name, nor the host end of its veth with it.
    let ns = std::fs::File::open("/run/netns/nslab.hn-held.n1").unwrap();
    let mut holder = Command::new("sleep")
        .arg("600")
        .stdin(std::process::Stdio::from(ns))
        .spawn()
        .unwrap();
    let o = nslab().args(["down", "hn-held"]).output().unwrap();
    let out = text(&o);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(o.status.success(), "{out}");
    // n1's end is deleted by `down` itself, after waiting for it; the others went with
    // their namespaces; the bridge after its ports.
    assert!(
        out.contains("1 host end still on the host after its namespace was deleted"),
        "{out}"
    );
    for e in ends {
        assert!(!on_host(e), "{e} is still on the host:\n{}", host_net());
    }
    assert!(!lab.is_up());
    assert_same_host(&before, &host_net(), "after down");
}

#[test]
fn down_leaves_host_ends_to_their_namespaces_and_returns_once_they_are_gone() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_net();
    let lab = Lab::new(
        "hn-gone",
        "mgmt: { subnet: 172.31.239.0/24 }\nnodes: { n1: {}, n2: {}, n3: {} }\nlinks:\n  - endpoints: [n3:eth1, { host: hn-gone-up }]\n",
    );
    lab.up();
    let o = nslab().args(["down", "hn-gone"]).output().unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    // None needed deleting one by one, and none is left when `down` returns.
    assert!(!out.contains("still on the host"), "{out}");
    for e in [
        "hn-gone-n1",
        "hn-gone-n2",
        "hn-gone-n3",
        "hn-gone-up",
        "br-hn-gone",
    ] {
        assert!(!on_host(e), "{e} is still on the host:\n{}", host_net());
    }
    assert_same_host(&before, &host_net(), "after down");
    // The names are free at once: the same lab comes up again.
    lab.up();
    lab.down();
    assert_same_host(&before, &host_net(), "after the second down");
}
