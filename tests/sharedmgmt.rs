//! A management network shared by several labs (`mgmt: { network: NAME }`).
//! Compile tests (no root): the language, the bridge every lab plans alike, the plan's
//! join and leave, located errors. Privileged tests: two labs up at once on one network
//! reach each other's nodes and the host reaches both; each `down` leaves the others
//! working and the last removes the bridge and the registry; a mismatch or a held
//! address is refused naming both labs; a lab killed mid-`up` and then `down`ed leaves
//! the network consistent for the others. Half states: a member with nothing else left,
//! a lost registry, a bridge stripped of the host's addresses, a registry that cannot be
//! written. `apply` and the network: addresses freed and taken, a lab moved between
//! networks (and rolled back), `plan` showing what a live network gives.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nslab::plan::{Op, Undo};
use support::*;

const NET: &str =
    "mgmt: { network: smnet, subnet: 172.31.236.0/24, subnet6: \"fd7e:1ab:236::/64\" }\n";

fn registry() -> std::path::PathBuf {
    Path::new("/run/nslab/mgmt/smnet.json").to_path_buf()
}

#[test]
fn labs_on_one_network_plan_the_same_bridge_and_join_it_instead_of_making_it() {
    let a = ok(&format!(
        "name: sm-a\n{NET}nodes: {{ r1: {{}}, r2: {{}} }}\n"
    ));
    let b = ok(&format!(
        "name: sm-bee\n{NET}nodes: {{ h1: {{}} }}\nlinks: [[h1:eth1, \"host:sm-bee-x\"]]\n"
    ));
    let (ma, mb) = (a.mgmt.as_ref().unwrap(), b.mgmt.as_ref().unwrap());
    assert_eq!(ma.network.as_deref(), Some("smnet"));
    assert_eq!(
        ma.bridge, "br-smnet",
        "a shared network's bridge is named for it"
    );
    // Numbered from the network's name alone, whatever else each lab has on the host.
    assert_eq!((ma.ifindex, ma.mac), (mb.ifindex, mb.mac));
    let p = nslab::plan::plan(&a);
    let host: Vec<&str> = p
        .steps
        .iter()
        .filter(|s| s.op.netns() == "@host")
        .map(|s| s.op.name())
        .collect();
    assert_eq!(host[0], "join-mgmt", "{host:?}");
    assert!(!host.contains(&"create-bridge"), "{host:?}");
    // The ports are the lab's own, on the network's bridge.
    for s in &p.steps {
        if let Op::CreateLink(l) = &s.op
            && *l.netns == *"@host"
        {
            assert_eq!(l.master, Some(ma.ifindex), "{}", l.name);
        }
    }
    // Leaving is the lab's last undo on the host, after its ports.
    let t = p.teardown();
    let last = t.netlink.last().expect("host undos");
    assert!(
        matches!(last, Undo::LeaveMgmt { network, .. } if network == "smnet"),
        "{last:?}"
    );
    let text = nslab::plan::teardown_text(&p);
    assert!(text.contains("leave-mgmt     smnet"), "{text}");
    // The stored plan reads back.
    let back: nslab::plan::Plan = serde_json::from_str(&p.to_json()).unwrap();
    assert_eq!(back.to_json(), p.to_json());
}

#[test]
fn a_bad_network_name_is_a_located_error() {
    for (name, why) in [
        ("Big", "holds `B`"),
        ("a-network-too-long", "the limit is 12"),
        ("../x", "holds `.`"),
    ] {
        let e = err(&format!(
            "name: sm-bad\nmgmt: {{ network: \"{name}\", subnet: 172.31.236.0/24 }}\nnodes: {{ r1: {{}} }}\n"
        ));
        assert!(e.contains("t.yaml:2:18"), "{e}");
        assert!(e.contains("`mgmt.network`: network name"), "{e}");
        assert!(e.contains(why), "{e}");
    }
}

/// Whether `to` answers an ICMP echo sent from `netns` (`@host` for the host's own),
/// with nslab's own prober: the test needs no `ping` binary.
fn reaches(netns: &str, to: &str) -> bool {
    use nslab::probe::icmp::{PingResult, ping_many};
    let rt = nslab::apply::tokio_runtime().unwrap();
    rt.block_on(async {
        let host = nslab::state::HostContext::from_env();
        let k =
            nslab::apply::netlink::NetlinkKernel::new(&host, tokio::runtime::Handle::current(), 1)
                .unwrap();
        let got = ping_many(
            &k,
            &netns.into(),
            &[to.parse().unwrap()],
            &nslab::kinds::Echo::default(),
            std::time::Duration::from_secs(3),
            std::time::Duration::from_millis(200),
        )
        .await
        .unwrap();
        matches!(got[0], PingResult::Reply(_))
    })
}

fn host_ping(to: &str) -> bool {
    reaches("@host", to)
}

/// From `node` of `lab`.
fn node_ping(lab: &Lab, node: &str, to: &str) -> bool {
    reaches(&format!("nslab.{}.{node}", lab.name), to)
}

fn members() -> Vec<String> {
    let text = std::fs::read_to_string(registry()).unwrap_or_default();
    if text.is_empty() {
        return Vec::new();
    }
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["lab"].as_str().unwrap().to_string())
        .collect()
}

/// The registries of other networks than this file's, `None` when the directory is
/// gone. It goes with the last network, but another network on this host (not this
/// test's) keeps it, so only a directory holding none of theirs is left over.
fn other_registries() -> Option<Vec<String>> {
    let entries = std::fs::read_dir("/run/nslab/mgmt").ok()?;
    Some(
        entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json") && n != "smnet.json")
            .collect(),
    )
}

fn bridge_alias() -> Option<String> {
    std::fs::read_to_string("/sys/class/net/br-smnet/ifalias")
        .ok()
        .map(|a| a.trim().to_string())
}

fn lab_a() -> Lab {
    Lab::new(
        "sm-a",
        &format!("{NET}nodes: {{ a1: {{}}, a2: {{}} }}\nlinks: [[a1:eth1, a2:eth1]]\n"),
    )
}

fn lab_b() -> Lab {
    Lab::new("sm-b", &format!("{NET}nodes: {{ b1: {{}} }}\n"))
}

/// The shared network is gone (no tagged bridge, no registry) and the host is as it was.
fn assert_network_gone(before: &str, when: &str) {
    assert!(
        bridge_alias().is_none() && !registry().exists(),
        "the network's bridge or registry is left {when}"
    );
    assert_same_host(before, &host_snapshot(), when);
}

#[test]
fn two_labs_on_one_network_reach_each_other_and_the_last_down_removes_it() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let (a, b) = (lab_a(), lab_b());
    a.up();
    b.up();
    // Both planned .2 for their first node alone; the registry gave b the next free one.
    let addr = |lab: &Lab, node: &str| {
        let o = lab.exec(node, &["ip", "-o", "-4", "addr", "show", "mgmt0"]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(
        addr(&a, "a1").contains("172.31.236.2/24"),
        "{}",
        addr(&a, "a1")
    );
    assert!(
        addr(&a, "a2").contains("172.31.236.3/24"),
        "{}",
        addr(&a, "a2")
    );
    assert!(
        addr(&b, "b1").contains("172.31.236.4/24"),
        "{}",
        addr(&b, "b1")
    );
    // Nodes of one lab reach the other's, both ways, over IPv4 and IPv6.
    assert!(node_ping(&a, "a1", "172.31.236.4"), "a1 cannot reach b1");
    assert!(node_ping(&b, "b1", "172.31.236.3"), "b1 cannot reach a2");
    assert!(
        node_ping(&b, "b1", "fd7e:1ab:236::2"),
        "b1 cannot reach a1 over IPv6"
    );
    for to in ["172.31.236.2", "172.31.236.4", "fd7e:1ab:236::4"] {
        assert!(host_ping(to), "the host cannot reach {to}");
    }
    assert_eq!(members(), ["sm-a", "sm-b"]);
    assert_eq!(std::fs::metadata(registry()).unwrap().mode() & 0o777, 0o600);
    assert_eq!(bridge_alias().as_deref(), Some("nslab-mgmt:smnet"));
    // The ports are each lab's own.
    let port = std::fs::read_to_string("/sys/class/net/sm-b-b1/ifalias").unwrap();
    assert_eq!(port.trim(), "nslab:sm-b");
    // The first lab goes: the second keeps the network.
    a.down();
    assert_eq!(members(), ["sm-b"]);
    assert_eq!(bridge_alias().as_deref(), Some("nslab-mgmt:smnet"));
    assert!(
        host_ping("172.31.236.4"),
        "b1 lost the network with a's down"
    );
    assert!(!Path::new("/sys/class/net/sm-a-a1").exists());
    // The last lab goes: the bridge and the registry with it.
    b.down();
    assert!(bridge_alias().is_none(), "the bridge outlived its last lab");
    assert!(!registry().exists(), "the registry outlived its last lab");
    let others = other_registries();
    assert!(
        others.as_ref().is_none_or(|o| !o.is_empty()),
        "the registry directory outlived it, with no other network's registry in it"
    );
    assert_same_host(&before, &host_snapshot(), "after both downs");
}

#[test]
fn a_lab_at_odds_with_the_network_or_its_addresses_is_refused_naming_both() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let a = lab_a();
    a.up();
    let other = Lab::new(
        "sm-odd",
        "mgmt: { network: smnet, subnet: 172.31.237.0/24 }\nnodes: { o1: {} }\n",
    );
    let o = other.up_fails(&[
        "sm-odd.yaml:2:7",
        "lab `sm-a`",
        "sm-a.yaml",
        "172.31.237.0/24",
        "agree",
        "nothing was made",
    ]);
    assert!(!text(&o).contains("panicked"), "{}", text(&o));
    let held = Lab::new(
        "sm-held",
        &format!("{NET}nodes: {{ h1: {{ mgmt: {{ address: 172.31.236.3 }} }} }}\n"),
    );
    held.up_fails(&[
        "sm-held.yaml:3:",
        "node `h1`",
        "172.31.236.3",
        "node `a2` of lab `sm-a`",
    ]);
    assert_eq!(members(), ["sm-a"], "a refused lab is no member");
    a.down();
    assert_same_host(&before, &host_snapshot(), "after the refusals and down");
}

#[test]
fn a_lab_killed_mid_up_then_downed_leaves_the_network_to_the_others() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let a = lab_a();
    a.up();
    let b = lab_b();
    let mut child = nslab()
        .arg("up")
        .arg(&b.file)
        .env("NSLAB_TEST_STEP_DELAY_MS", "300")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the registry has it (its addresses taken, its journal saying so).
    wait_for("sm-b to join the registry", || members().len() == 2);
    std::thread::sleep(std::time::Duration::from_millis(700));
    child.kill().unwrap();
    child.wait().unwrap();
    b.down();
    assert_eq!(members(), ["sm-a"]);
    assert_eq!(bridge_alias().as_deref(), Some("nslab-mgmt:smnet"));
    assert!(
        node_ping(&a, "a1", "172.31.236.3"),
        "a lost its network with b's down"
    );
    assert!(host_ping("172.31.236.2"));
    a.down();
    assert_network_gone(&before, "after the killed up and both downs");
}

/// The registry's entries: each member lab with its nodes' IPv4 addresses.
fn held() -> Vec<(String, Vec<String>)> {
    held_on("smnet")
}

fn held_on(network: &str) -> Vec<(String, Vec<String>)> {
    let path = format!("/run/nslab/mgmt/{network}.json");
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let nodes = m["nodes"].as_array().unwrap().iter().map(|n| {
                format!(
                    "{}={}",
                    n["node"].as_str().unwrap(),
                    n["addresses"][0].as_str().unwrap()
                )
            });
            (m["lab"].as_str().unwrap().to_string(), nodes.collect())
        })
        .collect()
}

fn holding(entries: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    entries
        .iter()
        .map(|(lab, nodes)| {
            (
                lab.to_string(),
                nodes.iter().map(|n| n.to_string()).collect(),
            )
        })
        .collect()
}

/// `nslab apply` of `lab` with `yaml` (after its name line), and the output.
fn apply_as(lab: &Lab, yaml: &str, env: &[(&str, &str)]) -> std::process::Output {
    std::fs::write(&lab.file, format!("name: {}\n{yaml}", lab.name)).unwrap();
    nslab()
        .arg("apply")
        .arg(&lab.file)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// `nslab apply` of the lab's file as it stands, started and left running: 2.5 s per
/// step, failing at its 4th, so another lab can take what it freed before it rolls back.
fn slow_apply_failing_at_step_4(lab: &Lab) -> std::process::Child {
    nslab()
        .arg("apply")
        .arg(&lab.file)
        .env("NSLAB_TEST_STEP_DELAY_MS", "2500")
        .env("NSLAB_TEST_FAIL_AT_STEP", "4")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The IPv4 address of `node`'s `iface`, as the kernel has it.
fn mgmt_of(lab: &Lab, node: &str, iface: &str) -> String {
    let o = lab.exec(node, &["ip", "-o", "-4", "addr", "show", iface]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    out.split_whitespace().nth(3).unwrap_or("none").to_string()
}

#[test]
fn apply_frees_removed_nodes_addresses_and_takes_new_ones_as_up_does() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let (a, b) = (lab_a(), lab_b());
    a.up();
    b.up();
    // A change beside the network: b1 keeps 172.31.236.4, which compile alone would
    // have made .2 (held by a1).
    let o = apply_as(
        &b,
        &format!(
            "{NET}nodes: {{ b1: {{}}, b2: {{ mgmt: false }} }}\nlinks: [[b1:eth1, b2:eth1]]\n"
        ),
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("172.31.236.2"), "{}", text(&o));
    assert_eq!(mgmt_of(&b, "b1", "mgmt0"), "172.31.236.4/24");
    // b1 goes and b0, b3 come: b0 (first in node order) gets b1's address, freed; b3
    // the next free one. The registry says so.
    let o = apply_as(&b, &format!("{NET}nodes: {{ b0: {{}}, b3: {{}} }}\n"), &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(mgmt_of(&b, "b0", "mgmt0"), "172.31.236.4/24");
    assert_eq!(mgmt_of(&b, "b3", "mgmt0"), "172.31.236.5/24");
    let want = holding(&[
        ("sm-a", &["a1=172.31.236.2/24", "a2=172.31.236.3/24"]),
        ("sm-b", &["b0=172.31.236.4/24", "b3=172.31.236.5/24"]),
    ]);
    assert_eq!(held(), want);
    assert!(node_ping(&a, "a1", "172.31.236.5"), "a1 cannot reach b3");
    assert!(host_ping("fd7e:1ab:236::5"), "the host cannot reach b3");
    // A change that fails after b3 went rolls back: b3 and its address come back, and
    // the registry is what it was (b4's address is not kept).
    for step in ["1", "6"] {
        let o = apply_as(
            &b,
            &format!("{NET}nodes: {{ b0: {{}}, b4: {{}} }}\n"),
            &[("NSLAB_TEST_FAIL_AT_STEP", step)],
        );
        assert_eq!(o.status.code(), Some(1), "step {step}: {}", text(&o));
        assert!(text(&o).contains("rolled back"), "{}", text(&o));
        assert_eq!(held(), want, "step {step}: {}", text(&o));
        assert_eq!(mgmt_of(&b, "b3", "mgmt0"), "172.31.236.5/24");
        assert!(
            host_ping("172.31.236.5"),
            "step {step}: b3 lost its address"
        );
    }
    // A third lab's `up` gets the addresses after the ones b holds now.
    let c = Lab::new("sm-c", &format!("{NET}nodes: {{ c1: {{}} }}\n"));
    c.up();
    assert_eq!(mgmt_of(&c, "c1", "mgmt0"), "172.31.236.6/24");
    // Two nodes new to the network, and b3 gone: its address goes to the new ones.
    let o = apply_as(
        &b,
        &format!("{NET}nodes: {{ b0: {{}}, b5: {{}}, b6: {{}} }}\n"),
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        held()[1].1,
        [
            "b0=172.31.236.4/24",
            "b5=172.31.236.5/24",
            "b6=172.31.236.7/24"
        ]
    );
    assert!(node_ping(&c, "c1", "172.31.236.7"), "c1 cannot reach b6");
    c.down();
    b.down();
    a.down();
    assert_network_gone(&before, "after the applies and downs");
}

#[test]
fn apply_moves_a_lab_between_its_own_management_network_and_shared_ones() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let (a, b) = (lab_a(), lab_b());
    a.up();
    b.up();
    let nodes = "nodes: { b1: {}, b2: {} }\n";
    let own = "mgmt: { subnet: 172.31.239.0/24 }\n";
    let other = "mgmt: { network: smnet2, subnet: 172.31.238.0/24 }\n";
    let on = |dev: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{dev}/master/ifalias"))
            .map(|a| a.trim().to_string())
            .unwrap_or_default()
    };
    // Its own network: b leaves smnet (a keeps it) and gets a bridge of its own.
    let o = apply_as(&b, &format!("{own}{nodes}"), &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(members(), ["sm-a"]);
    assert_eq!(
        on("sm-b-b1"),
        "nslab:sm-b",
        "b1's port is not on b's own bridge"
    );
    assert_eq!(mgmt_of(&b, "b1", "mgmt0"), "172.31.239.2/24");
    assert!(
        host_ping("172.31.239.3"),
        "the host cannot reach b2 on b's own network"
    );
    assert!(host_ping("172.31.236.3"), "a lost its network");
    // Back on smnet: b1 and b2 get free addresses after a's.
    let o = apply_as(&b, &format!("{NET}{nodes}"), &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(members(), ["sm-a", "sm-b"]);
    assert!(
        !Path::new("/sys/class/net/br-sm-b").exists(),
        "b's own bridge is left"
    );
    assert_eq!(on("sm-b-b1"), "nslab-mgmt:smnet");
    assert_eq!(mgmt_of(&b, "b2", "mgmt0"), "172.31.236.5/24");
    assert!(node_ping(&a, "a1", "172.31.236.5"), "a1 cannot reach b2");
    // A move to another shared network that fails half way rolls back to smnet.
    let o = apply_as(
        &b,
        &format!("{other}{nodes}"),
        &[("NSLAB_TEST_FAIL_AT_STEP", "4")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(members(), ["sm-a", "sm-b"], "{}", text(&o));
    assert!(held_on("smnet2").is_empty(), "{}", text(&o));
    assert!(
        !Path::new("/sys/class/net/br-smnet2").exists(),
        "{}",
        text(&o)
    );
    assert_eq!(on("sm-b-b1"), "nslab-mgmt:smnet");
    assert!(
        node_ping(&a, "a1", "172.31.236.5"),
        "b2 lost smnet with the rollback"
    );
    // The move itself: smnet2 is made for b, smnet stays a's.
    let o = apply_as(&b, &format!("{other}{nodes}"), &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(members(), ["sm-a"]);
    assert_eq!(
        held_on("smnet2"),
        holding(&[("sm-b", &["b1=172.31.238.2/24", "b2=172.31.238.3/24"])])
    );
    assert_eq!(on("sm-b-b2"), "nslab-mgmt:smnet2");
    assert!(host_ping("172.31.238.3") && host_ping("172.31.236.3"));
    // The subnets of a network the lab stays on are not changed by `apply`: the
    // refusal names the commands.
    let o = apply_as(
        &b,
        &format!("{}{nodes}", other.replace(".238.", ".234.")),
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("`nslab down sm-b` then `nslab up"),
        "{}",
        text(&o)
    );
    // No `mgmt:` at all: b leaves smnet2, the last member, so its bridge goes.
    let o = apply_as(&b, nodes, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!Path::new("/sys/class/net/br-smnet2").exists());
    assert!(!Path::new("/run/nslab/mgmt/smnet2.json").exists());
    assert_eq!(mgmt_of(&b, "b1", "mgmt0"), "none");
    // And back to smnet from nothing.
    let o = apply_as(&b, &format!("{NET}{nodes}"), &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(node_ping(&b, "b1", "172.31.236.2"), "b1 cannot reach a1");
    b.down();
    a.down();
    assert_network_gone(&before, "after the moves and downs");
}

#[test]
fn plan_shows_the_addresses_a_live_network_gives_and_calls_others_provisional() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let (a, b) = (lab_a(), lab_b());
    let plan = |lab: &Lab| {
        let o = nslab().arg("plan").arg(&lab.file).output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
        text(&o)
    };
    let alone = plan(&b);
    assert!(alone.contains("b1:mgmt0 172.31.236.2/24"), "{alone}");
    assert!(
        alone.contains("`smnet` is not up") && alone.contains("provisional"),
        "{alone}"
    );
    a.up();
    let stamp = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let (was, when) = (std::fs::read(registry()).unwrap(), stamp(&registry()));
    let live = plan(&b);
    assert!(live.contains("b1:mgmt0 172.31.236.4/24"), "{live}");
    assert!(live.contains("b1:mgmt0 fd7e:1ab:236::4/64"), "{live}");
    assert!(live.contains("`smnet` is up (labs sm-a on it)"), "{live}");
    assert_eq!(
        std::fs::read(registry()).unwrap(),
        was,
        "plan wrote the registry"
    );
    assert_eq!(stamp(&registry()), when);
    // What `plan` showed is what `up` gives.
    b.up();
    assert_eq!(mgmt_of(&b, "b1", "mgmt0"), "172.31.236.4/24");
    // Of a running lab, what `apply` would give: b1 keeps its address.
    std::fs::write(
        &b.file,
        format!("name: sm-b\n{NET}nodes: {{ b0: {{}}, b1: {{}} }}\n"),
    )
    .unwrap();
    let running = plan(&b);
    assert!(running.contains("b1:mgmt0 172.31.236.4/24"), "{running}");
    assert!(running.contains("b0:mgmt0 172.31.236.5/24"), "{running}");
    // A written address another lab holds: `plan` says `up` would refuse it.
    let c = Lab::new(
        "sm-c",
        &format!("{NET}nodes: {{ c1: {{ mgmt: {{ address: 172.31.236.3 }} }} }}\n"),
    );
    let refused = plan(&c);
    assert!(
        refused.contains("node `a2` of lab `sm-a`") && refused.contains("provisional"),
        "{refused}"
    );
    b.down();
    a.down();
    assert_network_gone(&before, "after the plans and downs");
}

/// A containerlab file that names its management network but no `mgmt.network`.
fn clab_file(lab: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join("nslab-tests-sharedmgmt");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{lab}.clab.yml"));
    std::fs::write(
        &file,
        format!(
            "name: {lab}\nmgmt:\n  ipv4-subnet: 172.31.235.0/24\n  ipv6-subnet: fd7e:1ab:235::/64\ntopology:\n  nodes:\n    n1: {{ kind: linux, image: debian:bookworm }}\n"
        ),
    )
    .unwrap();
    file
}

#[test]
fn containerlab_files_share_the_default_network_clab() {
    let c = nslab::compile_file(&clab_file("smc-a")).unwrap();
    let m = c.topology.mgmt.as_ref().unwrap();
    assert_eq!(m.network.as_deref(), Some("clab"));
    assert_eq!(m.bridge, "br-clab");
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let (fa, fb) = (clab_file("smc-a"), clab_file("smc-b"));
    for f in [&fa, &fb] {
        let o = nslab().arg("up").arg(f).output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
    // Two imported labs side by side: each n1 on eth0, .2 and .3 in the order of `up`s.
    assert!(
        reaches("nslab.smc-a.n1", "172.31.235.3"),
        "smc-a's n1 cannot reach smc-b's"
    );
    assert!(
        reaches("nslab.smc-b.n1", "fd7e:1ab:235::2"),
        "smc-b's n1 cannot reach smc-a's"
    );
    assert!(host_ping("172.31.235.2") && host_ping("172.31.235.3"));
    for lab in ["smc-a", "smc-b"] {
        let o = nslab().args(["down", lab]).output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
    assert!(!Path::new("/sys/class/net/br-clab").exists());
    assert!(!Path::new("/run/nslab/mgmt/clab.json").exists());
    assert_same_host(&before, &host_snapshot(), "after both containerlab labs");
    let _ = std::fs::remove_file(fa);
    let _ = std::fs::remove_file(fb);
    let _ = std::fs::remove_dir(std::env::temp_dir().join("nslab-tests-sharedmgmt"));
}

#[test]
fn a_down_without_its_journal_still_leaves_the_network() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let (a, b) = (lab_a(), lab_b());
    a.up();
    b.up();
    std::fs::remove_file("/run/nslab/sm-b.journal").unwrap();
    let o = nslab().args(["down", "sm-b"]).output().unwrap();
    assert!(text(&o).contains("swept by name"), "{}", text(&o));
    assert_eq!(members(), ["sm-a"], "{}", text(&o));
    assert_eq!(bridge_alias().as_deref(), Some("nslab-mgmt:smnet"));
    assert!(
        host_ping("172.31.236.2"),
        "a lost its network with b's down"
    );
    a.down();
    assert_network_gone(&before, "after both downs");
}

#[test]
fn a_failed_up_rolls_back_its_membership_and_ports_only() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let (a, b) = (lab_a(), lab_b());
    a.up();
    // The last step fails, after b joined the network and made its port.
    let last = nslab::plan::plan(&b.topology()).steps.len() - 1;
    let o = nslab()
        .arg("up")
        .arg(&b.file)
        .env("NSLAB_TEST_FAIL_AT_STEP", last.to_string())
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(!b.is_up());
    assert_eq!(members(), ["sm-a"], "{}", text(&o));
    assert!(!Path::new("/sys/class/net/sm-b-b1").exists());
    assert_eq!(bridge_alias().as_deref(), Some("nslab-mgmt:smnet"));
    assert!(
        host_ping("172.31.236.3"),
        "a lost its network with b's rollback"
    );
    a.down();
    assert_same_host(&before, &host_snapshot(), "after the rollback and down");
}

#[test]
fn two_ups_at_once_hand_out_no_address_twice() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let (a, b) = (lab_a(), lab_b());
    let spawn = |lab: &Lab| nslab().arg("up").arg(&lab.file).output();
    let (oa, ob) = std::thread::scope(|s| {
        let ta = s.spawn(|| spawn(&a).unwrap());
        let tb = s.spawn(|| spawn(&b).unwrap());
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert!(
        oa.status.success() && ob.status.success(),
        "{}{}",
        text(&oa),
        text(&ob)
    );
    let mut held: Vec<String> = [(&a, "a1"), (&a, "a2"), (&b, "b1")]
        .iter()
        .map(|(lab, node)| {
            let o = lab.exec(node, &["ip", "-o", "-4", "addr", "show", "mgmt0"]);
            let out = String::from_utf8_lossy(&o.stdout).into_owned();
            out.split_whitespace()
                .nth(3)
                .unwrap_or_else(|| panic!("{node}: {out}"))
                .to_string()
        })
        .collect();
    held.sort();
    assert_eq!(
        held,
        ["172.31.236.2/24", "172.31.236.3/24", "172.31.236.4/24"]
    );
    assert!(node_ping(&b, "b1", "172.31.236.2") && node_ping(&a, "a1", "172.31.236.4"));
    b.down();
    a.down();
    assert_network_gone(&before, "after both downs");
}

#[test]
fn a_host_bridge_of_the_networks_name_without_its_tag_is_never_joined() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let ip = |args: &[&str]| {
        std::process::Command::new("ip")
            .args(args)
            .status()
            .expect("ip runs")
    };
    assert!(ip(&["link", "add", "br-smnet", "type", "bridge"]).success());
    let before = host_snapshot();
    let a = lab_a();
    let o = a.up_fails(&[
        "host interface `br-smnet`",
        "not shared management network `smnet`'s",
        "`ip link del dev br-smnet`",
    ]);
    let after = host_snapshot();
    ip(&["link", "del", "br-smnet"]);
    assert_same_host(&before, &after, "after the refused up");
    assert!(!registry().exists(), "{}", text(&o));
}

#[test]
fn a_member_whose_lab_files_are_gone_is_downed_by_name_and_frees_the_network() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let a = lab_a();
    a.up();
    // A member with nothing else left on the host (its files removed after a crash):
    // only the registry names it.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(registry()).unwrap()).unwrap();
    v["members"].as_array_mut().unwrap().push(serde_json::json!(
        { "lab": "sm-gone", "file": "/gone.yaml", "nodes": [] }
    ));
    std::fs::write(registry(), serde_json::to_vec(&v).unwrap()).unwrap();
    let o = nslab().args(["down", "sm-gone"]).output().unwrap();
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    assert!(said.contains("1 shared-network membership"), "{said}");
    assert_eq!(members(), ["sm-a"], "{said}");
    assert_eq!(bridge_alias().as_deref(), Some("nslab-mgmt:smnet"));
    assert!(host_ping("172.31.236.2"), "a lost its network");
    a.down();
    assert_network_gone(&before, "after both downs");
}

#[test]
fn a_lab_joining_a_bridge_left_without_the_hosts_addresses_puts_them_back() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let a = lab_a();
    a.up();
    // The bridge as a first member killed between tagging and addressing it leaves it:
    // the network's tag, no address, down.
    for args in [
        &["addr", "flush", "dev", "br-smnet"][..],
        &["link", "set", "br-smnet", "down"],
    ] {
        let o = std::process::Command::new("ip")
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "ip {args:?}: {}", text(&o));
    }
    assert!(!host_ping("172.31.236.2"), "the bridge was not stripped");
    let b = lab_b();
    b.up();
    for to in ["172.31.236.2", "172.31.236.4", "fd7e:1ab:236::4"] {
        assert!(host_ping(to), "the host cannot reach {to} after b joined");
    }
    assert!(
        node_ping(&b, "b1", "172.31.236.1"),
        "b1 cannot reach the host"
    );
    b.down();
    assert!(
        host_ping("172.31.236.2"),
        "b's down took the host's address"
    );
    a.down();
    assert_network_gone(&before, "after both downs");
}

#[test]
fn a_lost_registry_never_lets_one_labs_down_take_the_bridge_from_another() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let (a, b) = (lab_a(), lab_b());
    a.up();
    b.up();
    // The registry removed by hand: b's down looks like the last member's.
    std::fs::remove_file(registry()).unwrap();
    let o = nslab().args(["down", "sm-b"]).output().unwrap();
    let said = text(&o);
    assert_eq!(
        bridge_alias().as_deref(),
        Some("nslab-mgmt:smnet"),
        "{said}"
    );
    assert!(
        host_ping("172.31.236.2"),
        "a lost its network with b's down"
    );
    assert!(node_ping(&a, "a1", "172.31.236.1"), "a1 lost the host");
    assert!(said.contains("still has ports not lab `sm-b`'s"), "{said}");
    // With only its own ports left, a's down removes the bridge.
    a.down();
    assert_network_gone(&before, "after both downs");
}

#[test]
fn an_up_that_cannot_write_the_registry_rolls_back() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let a = lab_a();
    a.up();
    // A directory where the registry's temporary file goes: its write fails.
    let tmp = Path::new("/run/nslab/mgmt/smnet.json.tmp");
    std::fs::create_dir(tmp).unwrap();
    let b = lab_b();
    let o = nslab().arg("up").arg(&b.file).output().unwrap();
    std::fs::remove_dir(tmp).unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        !Path::new("/run/nslab/sm-b.journal").exists(),
        "the failed up left its journal: {}",
        text(&o)
    );
    assert_eq!(members(), ["sm-a"]);
    assert!(host_ping("172.31.236.2"));
    a.down();
    assert_network_gone(&before, "after the failed up and a's down");
}

#[test]
fn a_bridge_whose_tag_was_removed_by_hand_is_refused_with_the_command_that_puts_it_back() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let a = lab_a();
    a.up();
    let ip = |args: &[&str]| {
        let o = std::process::Command::new("ip")
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "ip {args:?}: {}", text(&o));
    };
    ip(&["link", "set", "dev", "br-smnet", "alias", "by-hand"]);
    let b = lab_b();
    let o = b.up_fails(&["its alias is `by-hand`", "nothing was made"]);
    // The command the refusal gives, run as given, lets the next `up` join.
    let said = text(&o);
    let cmd = said
        .split('`')
        .find(|c| c.starts_with("ip link set dev br-smnet alias "))
        .unwrap_or_else(|| panic!("no command to put the tag back: {said}"));
    assert_eq!(cmd, "ip link set dev br-smnet alias nslab-mgmt:smnet");
    let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
    ip(&args);
    b.up();
    assert!(node_ping(&b, "b1", "172.31.236.2"), "b1 cannot reach a1");
    b.down();
    a.down();
    assert_network_gone(&before, "after the refusal, the fix and both downs");
}

#[test]
fn an_apply_killed_while_moving_networks_converges_on_the_next_apply_and_down() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let (a, b) = (lab_a(), lab_b());
    a.up();
    b.up();
    let moved =
        "name: sm-b\nmgmt: { network: smnet2, subnet: 172.31.238.0/24 }\nnodes: { b1: {} }\n";
    std::fs::write(&b.file, moved).unwrap();
    let kill_mid_apply = || {
        let mut child = nslab()
            .arg("apply")
            .arg(&b.file)
            .env("NSLAB_TEST_STEP_DELAY_MS", "600")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Killed once smnet2's registry has b (its addresses reserved, the change begun),
        // within the change's first steps (each delayed 600 ms).
        wait_for("sm-b to join smnet2", || !held_on("smnet2").is_empty());
        std::thread::sleep(std::time::Duration::from_millis(300));
        child.kill().unwrap();
        child.wait().unwrap();
        let journal = std::fs::read_to_string("/run/nslab/sm-b.journal").unwrap();
        let last = journal.lines().last().unwrap_or_default();
        assert!(
            !last.contains("\"applied\""),
            "the apply finished before the kill"
        );
    };
    kill_mid_apply();
    // The next apply takes up from what is left: b on smnet2 alone, a keeps smnet.
    let o = nslab().arg("apply").arg(&b.file).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(members(), ["sm-a"], "{}", text(&o));
    assert_eq!(
        held_on("smnet2"),
        holding(&[("sm-b", &["b1=172.31.238.2/24"])])
    );
    assert!(host_ping("172.31.238.2") && host_ping("172.31.236.3"));
    // Killed on the way back to smnet, then `down`: both networks are as a has them.
    std::fs::write(&b.file, format!("name: sm-b\n{NET}nodes: {{ b1: {{}} }}\n")).unwrap();
    let mut child = nslab()
        .arg("apply")
        .arg(&b.file)
        .env("NSLAB_TEST_STEP_DELAY_MS", "600")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("sm-b to join smnet again", || members().len() == 2);
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    b.down();
    assert_eq!(members(), ["sm-a"]);
    assert!(held_on("smnet2").is_empty());
    assert!(!Path::new("/sys/class/net/br-smnet2").exists());
    assert!(node_ping(&a, "a1", "172.31.236.1"), "a lost its network");
    a.down();
    assert_network_gone(&before, "after the killed applies and downs");
}

/// `apply` of sm-b leaves smnet (its address there freed at once), then fails; while its
/// later steps run, sm-c comes up and takes the freed address. The rollback, which would
/// give b1 that address again beside c1, does not run: the apply fails naming the lab,
/// the address and who holds it, and c keeps it alone.
#[test]
fn a_rollback_never_takes_back_an_address_another_lab_took_meanwhile() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let (a, b) = (lab_a(), lab_b());
    a.up();
    b.up();
    assert_eq!(mgmt_of(&b, "b1", "mgmt0"), "172.31.236.4/24");
    // Its own network instead of smnet: leave-mgmt goes first, then slow steps, the
    // fourth of which fails.
    std::fs::write(
        &b.file,
        "name: sm-b\nmgmt: { subnet: 172.31.239.0/24 }\nnodes: { b1: {} }\n",
    )
    .unwrap();
    let child = slow_apply_failing_at_step_4(&b);
    wait_for("sm-b to leave smnet", || members() == ["sm-a"]);
    let c = Lab::new("sm-c", &format!("{NET}nodes: {{ c1: {{}} }}\n"));
    c.up();
    let o = child.wait_with_output().unwrap();
    let said = text(&o);
    assert_eq!(o.status.code(), Some(1), "{said}");
    for part in [
        "lab `sm-b`",
        "not rolled back",
        "172.31.236.4",
        "node `c1` of lab `sm-c`",
        "nslab down sm-b",
    ] {
        assert!(said.contains(part), "`{part}` missing: {said}");
    }
    assert!(!said.contains("panicked"), "{said}");
    // c1 alone holds the address, in the registry and on the wire.
    assert_eq!(
        held(),
        holding(&[
            ("sm-a", &["a1=172.31.236.2/24", "a2=172.31.236.3/24"]),
            ("sm-c", &["c1=172.31.236.4/24"]),
        ])
    );
    assert_eq!(mgmt_of(&c, "c1", "mgmt0"), "172.31.236.4/24");
    assert_ne!(mgmt_of(&b, "b1", "mgmt0"), "172.31.236.4/24", "{said}");
    assert!(node_ping(&a, "a1", "172.31.236.4"), "a1 cannot reach c1");
    // The lab goes down from its journal as the failed change left it.
    b.down();
    c.down();
    a.down();
    assert_network_gone(&before, "after the blocked rollback and the downs");
}

/// `apply` moves sm-b (two nodes) from smnet to smnet2 and fails: its rollback puts
/// back both memberships, or neither. With smnet left alone, both (b is on smnet again
/// with its addresses, smnet2 is gone). With sm-c up meanwhile on b's two freed smnet
/// addresses, neither: the apply fails naming both addresses and the nodes holding them,
/// smnet2 still lists b with what its nodes hold there (so a lab joining smnet2 gets
/// others), and `down` cleans it all. Before, smnet was refused and smnet2 put back: b
/// left smnet2's registry while its nodes kept their addresses on its bridge.
#[test]
fn a_rollback_over_two_networks_puts_back_both_memberships_or_neither() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let a = lab_a();
    let b = Lab::new("sm-b", &format!("{NET}nodes: {{ b1: {{}}, b2: {{}} }}\n"));
    a.up();
    b.up();
    let on_smnet = holding(&[
        ("sm-a", &["a1=172.31.236.2/24", "a2=172.31.236.3/24"]),
        ("sm-b", &["b1=172.31.236.4/24", "b2=172.31.236.5/24"]),
    ]);
    assert_eq!(held(), on_smnet);
    let moved = "mgmt: { network: smnet2, subnet: 172.31.238.0/24 }\nnodes: { b1: {}, b2: {} }\n";
    // Both: nothing else changed, the rollback runs and b is as it was.
    let o = apply_as(&b, moved, &[("NSLAB_TEST_FAIL_AT_STEP", "4")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("rolled back"), "{}", text(&o));
    assert_eq!(held(), on_smnet, "{}", text(&o));
    assert!(held_on("smnet2").is_empty(), "{}", text(&o));
    assert!(!Path::new("/sys/class/net/br-smnet2").exists());
    assert_eq!(mgmt_of(&b, "b2", "mgmt0"), "172.31.236.5/24");
    assert!(node_ping(&a, "a1", "172.31.236.5"), "b2 lost smnet");
    // Neither: c takes both of b's smnet addresses while the change runs.
    std::fs::write(&b.file, format!("name: sm-b\n{moved}")).unwrap();
    let child = slow_apply_failing_at_step_4(&b);
    wait_for("sm-b to leave smnet", || members() == ["sm-a"]);
    let c = Lab::new("sm-c", &format!("{NET}nodes: {{ c1: {{}}, c2: {{}} }}\n"));
    c.up();
    let o = child.wait_with_output().unwrap();
    let said = text(&o);
    assert_eq!(o.status.code(), Some(1), "{said}");
    for part in [
        "lab `sm-b`",
        "not rolled back",
        "mgmt address 172.31.236.4 is held by node `c1` of lab `sm-c`",
        "mgmt address 172.31.236.5 is held by node `c2` of lab `sm-c`",
        "nslab down sm-b",
    ] {
        assert!(said.contains(part), "`{part}` missing: {said}");
    }
    assert!(!said.contains("panicked"), "{said}");
    assert_eq!(
        held(),
        holding(&[
            ("sm-a", &["a1=172.31.236.2/24", "a2=172.31.236.3/24"]),
            ("sm-c", &["c1=172.31.236.4/24", "c2=172.31.236.5/24"]),
        ])
    );
    // smnet2 as the change left it: b holds what its nodes were given there.
    let on_smnet2 = holding(&[("sm-b", &["b1=172.31.238.2/24", "b2=172.31.238.3/24"])]);
    assert_eq!(held_on("smnet2"), on_smnet2, "{said}");
    for node in ["b1", "b2"] {
        assert!(
            !mgmt_of(&b, node, "mgmt0").starts_with("172.31.236."),
            "{node} kept an smnet address: {said}"
        );
    }
    // A lab joining smnet2 now is given addresses b's nodes do not hold.
    let d = Lab::new(
        "sm-d",
        "mgmt: { network: smnet2, subnet: 172.31.238.0/24 }\nnodes: { d1: {} }\n",
    );
    d.up();
    assert_eq!(mgmt_of(&d, "d1", "mgmt0"), "172.31.238.4/24");
    // `down` cleans the lab from where the failed change left it.
    b.down();
    assert_eq!(
        held_on("smnet2"),
        holding(&[("sm-d", &["d1=172.31.238.4/24"])])
    );
    d.down();
    c.down();
    a.down();
    assert!(held_on("smnet2").is_empty());
    assert!(!Path::new("/sys/class/net/br-smnet2").exists());
    assert_network_gone(
        &before,
        "after the rollbacks over two networks and the downs",
    );
}

/// The registry lost, the network's tagged bridge left with a's addresses: a lab naming
/// the network with other subnets is refused before anything is made, naming the bridge,
/// its addresses and the command that removes it; the bridge keeps a's addresses only.
/// (A lab of the same subnets still joins it: the lost-registry tests above.)
#[test]
fn a_left_bridge_of_other_subnets_is_refused_naming_its_addresses_and_the_cleanup() {
    if !privileged() {
        return;
    }
    let _host = exclusive();
    let before = host_snapshot();
    let a = lab_a();
    a.up();
    std::fs::remove_file(registry()).unwrap();
    let odd = Lab::new(
        "sm-odd2",
        "mgmt: { network: smnet, subnet: 172.31.237.0/24 }\nnodes: { o1: {} }\n",
    );
    odd.up_fails(&[
        "bridge `br-smnet`",
        "172.31.236.1/24",
        "fd7e:1ab:236::1/64",
        "not this lab's (172.31.237.1/24)",
        "`ip link del dev br-smnet`",
        "nothing was made",
    ]);
    let addrs = std::process::Command::new("ip")
        .args(["-o", "addr", "show", "dev", "br-smnet"])
        .output()
        .unwrap();
    let addrs = text(&addrs);
    assert!(addrs.contains("172.31.236.1/24"), "{addrs}");
    assert!(
        !addrs.contains("172.31.237.1"),
        "the refused lab's address: {addrs}"
    );
    assert!(host_ping("172.31.236.2"), "a lost its network");
    a.down();
    assert_network_gone(&before, "after the refusal and a's down");
}
