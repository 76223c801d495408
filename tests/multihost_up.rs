//! Multi-host labs on real namespaces (root): two simulated hosts on this machine, each a
//! network namespace with a private mount namespace and its own tmpfs on /run (so its
//! /run/nslab and /run/netns are its own), joined by an underlay veth. `nslab up --host`
//! runs inside each through nsenter, as it would on two machines. The first chain's
//! nodes have every namespace (the default); the other labs are net-only, since what
//! they test is the wiring.

mod support;

use support::simhost::*;
use support::*;

const CHAIN: &str = "
name: mhu-chain
hosts:
  ha: { address: 198.51.100.1 }
  hb: { address: 198.51.100.2 }
routing: static
nodes:
  r1: { host: ha, loopback: 10.0.0.1/32 }
  r2: { host: hb, loopback: 10.0.0.2/32 }
links:
  - endpoints: [r1:eth1, r2:eth1]
    addresses: [10.77.0.0/31, 10.77.0.1/31]
";

#[test]
fn a_routed_chain_across_two_hosts_pings_at_the_vxlan_mtu_and_goes_away() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let file = write_lab("mhu-chain", CHAIN);
    let file = file.as_str();
    let (ha, hb) = two_hosts("198.51.100.1/24", "198.51.100.2/24");

    for (h, name) in [(&ha, "ha"), (&hb, "hb")] {
        let o = h.nslab(&["up", "--host", name, file]);
        assert!(o.status.success(), "up --host {name}: {}", text(&o));
    }
    // Each host holds only its own node.
    assert!(
        ha.ok(&["ip", "netns", "list"])
            .contains("nslab.mhu-chain.r1")
    );
    assert!(
        !ha.ok(&["ip", "netns", "list"])
            .contains("nslab.mhu-chain.r2")
    );
    assert!(
        hb.ok(&["ip", "netns", "list"])
            .contains("nslab.mhu-chain.r2")
    );
    // r1's eth1 is a VXLAN to hb, MTU 1450 over the 1500 underlay; its UDP socket is in
    // the host's namespace, not the node's.
    let link = ha.ok(&[
        "ip",
        "-n",
        "nslab.mhu-chain.r1",
        "-d",
        "link",
        "show",
        "eth1",
    ]);
    assert!(link.contains("mtu 1450"), "{link}");
    assert!(
        link.contains("remote 198.51.100.2 local 198.51.100.1"),
        "{link}"
    );
    assert!(link.contains("dstport 14789 nolearning"), "{link}");
    assert!(ha.ok(&["ss", "-Huan"]).contains(":14789"));
    assert!(
        !ha.ok(&["ip", "netns", "exec", "nslab.mhu-chain.r1", "ss", "-Huan"])
            .contains(":14789")
    );
    // Both ends agree on the VNI.
    let vni = |l: &str| {
        l.split("vxlan id ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    };
    let other = hb.ok(&[
        "ip",
        "-n",
        "nslab.mhu-chain.r2",
        "-d",
        "link",
        "show",
        "eth1",
    ]);
    assert_eq!(vni(&link), vni(&other));

    // A full-size frame with DF set crosses (polled: the first packets after setup may be
    // lost while neighbours resolve), loopback to loopback through the static routes.
    wait_for("r1 pinging r2 across the hosts at 1422 bytes", || {
        ping(&ha, "nslab.mhu-chain.r1", "1422", "10.77.0.1")
            .status
            .success()
    });
    let o = ping(&hb, "nslab.mhu-chain.r2", "1422", "10.0.0.1");
    assert!(o.status.success(), "{}", text(&o));
    // One byte more does not fit the link's MTU.
    let o = ping(&ha, "nslab.mhu-chain.r1", "1423", "10.77.0.1");
    assert!(!o.status.success());
    assert!(
        text(&o).contains("message too long, mtu=1450"),
        "{}",
        text(&o)
    );

    // Commands on ha work on its share and say where r2 lives.
    let o = ha.nslab(&["status", "mhu-chain"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        words(&text(&o)).contains("r2 remote node r2 lives on host hb (198.51.100.2)"),
        "{}",
        text(&o)
    );
    // The tunnel's VNI is shown with its link.
    assert!(
        text(&o).contains(&format!("(vni {})", vni(&link))),
        "{}",
        text(&o)
    );
    let o = ha.nslab(&["exec", "--lab", "mhu-chain", "r2", "--", "true"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("node r2 lives on host hb (198.51.100.2)"),
        "{}",
        text(&o)
    );
    for args in [
        &["logs", "--lab", "mhu-chain", "r2"][..],
        &["link", "down", "--lab", "mhu-chain", "r2:eth1"],
    ] {
        let o = ha.nslab(args);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {}", text(&o));
        assert!(
            text(&o).contains("node r2 lives on host hb"),
            "{}",
            text(&o)
        );
    }
    let o = ha.nslab(&["exec", "--lab", "mhu-chain", "r1", "--", "true"]);
    assert!(o.status.success(), "{}", text(&o));

    down_and_clean(&[&ha, &hb], "mhu-chain");
}

const LAN: &str = "
name: mhu-lan
hosts:
  ha: { address: 198.51.100.1 }
  hb: { address: 198.51.100.2 }
defaults: { isolation: [net] }
nodes:
  h1: { host: ha }
  h2: { host: hb }
  h3: { host: ha }
bridges: { lan: {} }
links:
  - endpoints: [{ node: h1, iface: eth0, addresses: [10.78.0.1/24] }, lan]
  - endpoints: [{ node: h2, iface: eth0, addresses: [10.78.0.2/24] }, lan]
  - endpoints: [{ node: h3, iface: eth0, addresses: [10.78.0.3/24] }, lan]
";

#[test]
fn a_bridge_across_two_hosts_is_one_segment_through_its_replicas() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let file = write_lab("mhu-lan", LAN);
    let file = file.as_str();
    let (ha, hb) = two_hosts("198.51.100.1/24", "198.51.100.2/24");
    for (h, name) in [(&ha, "ha"), (&hb, "hb")] {
        let o = h.nslab(&["up", "--host", name, file]);
        assert!(o.status.success(), "up --host {name}: {}", text(&o));
    }
    // Each host's replica of `lan` has a VXLAN port that floods to the other host.
    let fdb = ha.ok(&[
        "ip",
        "netns",
        "exec",
        "nslab.mhu-lan",
        "bridge",
        "fdb",
        "show",
        "dev",
        "vx-lan",
    ]);
    assert!(fdb.contains("00:00:00:00:00:00 dst 198.51.100.2"), "{fdb}");
    let port = hb.ok(&["ip", "-n", "nslab.mhu-lan", "-d", "link", "show", "vx-lan"]);
    assert!(port.contains("master lan"), "{port}");
    assert!(port.contains("mtu 1450"), "{port}");
    // Both hosts' members reach each other at the full MTU, and ha's two locally.
    wait_for("h1 pinging h2 across the hosts", || {
        ping(&ha, "nslab.mhu-lan.h1", "1422", "10.78.0.2")
            .status
            .success()
    });
    for (h, from, to) in [
        (&ha, "nslab.mhu-lan.h3", "10.78.0.2"),
        (&hb, "nslab.mhu-lan.h2", "10.78.0.1"),
        (&hb, "nslab.mhu-lan.h2", "10.78.0.3"),
        (&ha, "nslab.mhu-lan.h1", "10.78.0.3"),
    ] {
        let o = ping(h, from, "1422", to);
        assert!(o.status.success(), "{from} -> {to}: {}", text(&o));
    }
    down_and_clean(&[&ha, &hb], "mhu-lan");
}

const LAN3: &str = "
name: mhu-lan3
hosts:
  ha: { address: 198.51.100.1 }
  hb: { address: 198.51.100.2 }
  hc: { address: 198.51.100.3 }
defaults: { isolation: [net] }
nodes: { h1: { host: ha }, h2: { host: hb }, h3: { host: hc } }
bridges: { lan: {} }
links:
  - endpoints: [{ node: h1, iface: eth0, addresses: [10.79.0.1/24] }, lan]
  - endpoints: [{ node: h2, iface: eth0, addresses: [10.79.0.2/24] }, lan]
  - endpoints: [{ node: h3, iface: eth0, addresses: [10.79.0.3/24] }, lan]
";

#[test]
fn a_bridge_over_three_hosts_floods_to_both_other_replicas() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let file = write_lab("mhu-lan3", LAN3);
    let file = file.as_str();
    let (_switch, hosts) = three_hosts();
    for (h, name) in hosts.iter().zip(["ha", "hb", "hc"]) {
        let o = h.nslab(&["up", "--host", name, file]);
        assert!(o.status.success(), "up --host {name}: {}", text(&o));
    }
    // Two appended all-zeros entries on each replica's port: one per other host.
    let fdb = hosts[0].ok(&[
        "ip",
        "netns",
        "exec",
        "nslab.mhu-lan3",
        "bridge",
        "fdb",
        "show",
        "dev",
        "vx-lan",
    ]);
    assert!(fdb.contains("00:00:00:00:00:00 dst 198.51.100.2"), "{fdb}");
    assert!(fdb.contains("00:00:00:00:00:00 dst 198.51.100.3"), "{fdb}");
    wait_for("h1 pinging h2 and h3", || {
        ["10.79.0.2", "10.79.0.3"].iter().all(|to| {
            ping(&hosts[0], "nslab.mhu-lan3.h1", "1422", to)
                .status
                .success()
        })
    });
    let o = ping(&hosts[1], "nslab.mhu-lan3.h2", "1422", "10.79.0.3");
    assert!(o.status.success(), "h2 -> h3: {}", text(&o));
    let all: Vec<&SimHost> = hosts.iter().collect();
    down_and_clean(&all, "mhu-lan3");
}

/// A routed chain over three hosts: h1 and r1 on ha, r2 on hb, r3 and h2 on hc, every
/// link but h1-r1 and r3-h2 a VXLAN, routes from `routing: static`.
const CHAIN3: &str = "
name: mhu-chain3
hosts:
  ha: { address: 198.51.100.1 }
  hb: { address: 198.51.100.2 }
  hc: { address: 198.51.100.3 }
routing: static
defaults: { isolation: [net] }
nodes:
  h1: { host: ha, loopback: 10.80.0.1/32 }
  r1: { host: ha, loopback: 10.80.0.2/32 }
  r2: { host: hb, loopback: 10.80.0.3/32 }
  r3: { host: hc, loopback: 10.80.0.4/32 }
  h2: { host: hc, loopback: 10.80.0.5/32 }
links:
  - [h1:eth1, r1:eth1]
  - [r1:eth2, r2:eth1]
  - [r2:eth2, r3:eth1]
  - [r3:eth2, h2:eth1]
tests:
  - reach: { from: h1, to: h2, name: h1-reach }
  - path: { from: h1, to: h2, hops: [r1, r2, r3, h2], name: h1-path }
  - route: { node: r2, to: 10.80.0.5/32, via: r3, name: r2-route }
  - reach: { from: h2, to: [h1, 10.80.0.2], name: h2-reach }
  - path: { from: h2, to: h1, hops: [r3, r2, r1, h1], name: h2-path }
";

/// `text` written as `<name>.yaml` in the tests' directory; its path, as a string.
fn write_lab(name: &str, text: &str) -> LabFile {
    let dir = std::env::temp_dir().join("nslab-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, text).unwrap();
    LabFile {
        arg: file.to_str().unwrap().to_string(),
        _file: Scratch(file),
    }
}

/// A lab's file as the string a command line takes; the file goes when this is dropped.
struct LabFile {
    arg: String,
    _file: Scratch,
}

impl std::ops::Deref for LabFile {
    type Target = String;
    fn deref(&self) -> &String {
        &self.arg
    }
}

/// The addresses (without prefix) of `node`'s interface `iface` as the compiler gives them.
fn addresses(text: &str, node: &str, iface: &str) -> Vec<String> {
    let c = nslab::compile_str(text, "lab.yaml", &std::env::temp_dir())
        .unwrap_or_else(|e| panic!("{e}"));
    let n = c.topology.node(node).expect("a node of the lab");
    let i = n.interfaces.iter().find(|i| i.name == iface).unwrap();
    i.addresses.iter().map(|a| a.addr().to_string()).collect()
}

#[test]
fn a_static_routed_chain_over_three_hosts_pings_end_to_end_through_each_router() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let file = write_lab("mhu-chain3", CHAIN3);
    let (_switch, hosts) = three_hosts();
    for (h, name) in hosts.iter().zip(["ha", "hb", "hc"]) {
        let o = h.nslab(&["up", "--host", name, &file]);
        assert!(o.status.success(), "up --host {name}: {}", text(&o));
    }
    let [ha, hb, hc] = &hosts;
    // `routing: static` across hosts: each router's route to h2's loopback goes to the
    // next router over the tunnel, which lives on another host.
    let r2_next = addresses(CHAIN3, "r2", "eth1")[0].clone();
    let r3_next = addresses(CHAIN3, "r3", "eth1")[0].clone();
    let route = ha.ok(&[
        "ip",
        "-n",
        "nslab.mhu-chain3.r1",
        "route",
        "show",
        "10.80.0.5",
    ]);
    assert!(
        route.contains(&format!("via {r2_next} dev eth2")),
        "{route}"
    );
    let route = hb.ok(&[
        "ip",
        "-n",
        "nslab.mhu-chain3.r2",
        "route",
        "show",
        "10.80.0.5",
    ]);
    assert!(
        route.contains(&format!("via {r3_next} dev eth2")),
        "{route}"
    );
    let link = hb.ok(&[
        "ip",
        "-n",
        "nslab.mhu-chain3.r2",
        "-d",
        "link",
        "show",
        "eth2",
    ]);
    assert!(
        link.contains("remote 198.51.100.3 local 198.51.100.2"),
        "{link}"
    );

    // Loopback to loopback across all three hosts, both ways.
    wait_for("h1 pinging h2 over three hosts", || {
        ping(ha, "nslab.mhu-chain3.h1", "56", "10.80.0.5")
            .status
            .success()
    });
    let o = ping(hc, "nslab.mhu-chain3.h2", "56", "10.80.0.1");
    assert!(o.status.success(), "h2 -> h1: {}", text(&o));
    // The path, hop by hop: the packet with TTL n expires at the n-th hop, which answers
    // from one of its own addresses: r1 on ha, r2 on hb, r3 on hc.
    for (ttl, router) in [("1", "r1"), ("2", "r2"), ("3", "r3")] {
        let o = ha.run(&[
            "ip",
            "netns",
            "exec",
            "nslab.mhu-chain3.h1",
            "ping",
            "-n",
            "-c1",
            "-W1",
            "-t",
            ttl,
            "10.80.0.5",
        ]);
        let seen = text(&o);
        let mine: Vec<String> = ["eth1", "eth2"]
            .iter()
            .flat_map(|i| addresses(CHAIN3, router, i))
            .collect();
        assert!(
            seen.contains("Time to live exceeded")
                && mine.iter().any(|a| seen.contains(&format!("From {a} "))),
            "TTL {ttl} should expire at {router} ({mine:?}): {seen}"
        );
    }
    down_and_clean(&[ha, hb, hc], "mhu-chain3");
}

/// A chain of two routers over two hosts; the lab's name is its only difference.
fn pair(name: &str, net: u8) -> String {
    format!(
        "
name: {name}
hosts:
  ha: {{ address: 198.51.100.1 }}
  hb: {{ address: 198.51.100.2 }}
routing: static
defaults: {{ isolation: [net] }}
nodes:
  r1: {{ host: ha, loopback: 10.{net}.0.1/32 }}
  r2: {{ host: hb, loopback: 10.{net}.0.2/32 }}
links:
  - endpoints: [r1:eth1, r2:eth1]
    addresses: [10.{net}.1.0/31, 10.{net}.1.1/31]
"
    )
}

fn vni_of(h: &SimHost, netns: &str, iface: &str) -> String {
    let link = h.ok(&["ip", "-n", netns, "-d", "link", "show", iface]);
    link.split("vxlan id ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap_or_else(|| panic!("not a VXLAN: {link}"))
        .to_string()
}

#[test]
fn two_labs_share_the_same_hosts_with_their_own_vnis_and_go_down_apart() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let (ha, hb) = two_hosts("198.51.100.1/24", "198.51.100.2/24");
    let labs = [("mhu-twin-a", 81), ("mhu-twin-b", 82)];
    for (lab, net) in labs {
        let file = write_lab(lab, &pair(lab, net));
        for (h, name) in [(&ha, "ha"), (&hb, "hb")] {
            let o = h.nslab(&["up", "--host", name, &file]);
            assert!(o.status.success(), "{lab} up --host {name}: {}", text(&o));
        }
    }
    // Same UDP port, one VNI per lab, and both ends of each lab agree.
    let vnis: Vec<String> = labs
        .iter()
        .map(|(lab, _)| {
            let a = vni_of(&ha, &format!("nslab.{lab}.r1"), "eth1");
            let b = vni_of(&hb, &format!("nslab.{lab}.r2"), "eth1");
            assert_eq!(a, b, "{lab}: the two ends disagree on the VNI");
            a
        })
        .collect();
    assert_ne!(
        vnis[0], vnis[1],
        "two labs on one host and port took one VNI"
    );
    for (lab, net) in labs {
        wait_for(&format!("{lab}: r1 pinging r2"), || {
            ping(
                &ha,
                &format!("nslab.{lab}.r1"),
                "1422",
                &format!("10.{net}.0.2"),
            )
            .status
            .success()
        });
        let o = ping(
            &hb,
            &format!("nslab.{lab}.r2"),
            "1422",
            &format!("10.{net}.0.1"),
        );
        assert!(o.status.success(), "{lab}: r2 -> r1: {}", text(&o));
    }
    // The first lab goes down on both hosts; the second keeps its tunnel and still pings.
    for h in [&ha, &hb] {
        let o = h.nslab(&["down", "mhu-twin-a"]);
        assert!(o.status.success(), "{}", text(&o));
        let left = h.ok(&["ls", "-A", "/run/netns"]);
        assert!(!left.contains("mhu-twin-a"), "{left}");
        assert!(left.contains("nslab.mhu-twin-b."), "{left}");
    }
    let o = ping(&ha, "nslab.mhu-twin-b.r1", "1422", "10.82.0.2");
    assert!(
        o.status.success(),
        "mhu-twin-b after the other lab's down: {}",
        text(&o)
    );
    down_and_clean(&[&ha, &hb], "mhu-twin-b");
}

/// The VNI lab `name` (a [`pair`]) gives its one tunnel, computed as every host does.
fn pair_vni(text: &str) -> u32 {
    let t = nslab::compile_str(text, "t.yaml", std::path::Path::new("/"))
        .unwrap()
        .topology;
    nslab::plan::share::vnis(&t)[0].unwrap()
}

/// `pair(name, net)` with its block pinned so that its tunnel gets VNI `vni`.
fn pair_on_vni(name: &str, net: u8, vni: u32) -> String {
    let probe = pair(name, net).replace("routing:", "vxlan: { vni: 1 }\nrouting:");
    let slot = pair_vni(&probe) - 1;
    assert!(vni > slot, "VNI {vni} is below the lab's slot {slot}");
    let text = pair(name, net).replace(
        "routing:",
        &format!("vxlan: {{ vni: {} }}\nrouting:", vni - slot),
    );
    assert_eq!(pair_vni(&text), vni);
    text
}

#[test]
fn a_lab_whose_vni_another_lab_holds_fails_loudly_and_leaves_the_first_pinging() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let (ha, hb) = two_hosts("198.51.100.1/24", "198.51.100.2/24");
    let first = pair("mhu-vni-a", 83);
    let held = pair_vni(&first);
    let file = write_lab("mhu-vni-a", &first);
    for (h, name) in [(&ha, "ha"), (&hb, "hb")] {
        let o = h.nslab(&["up", "--host", name, &file]);
        assert!(o.status.success(), "up --host {name}: {}", text(&o));
    }
    // The second lab's block is pinned over the first's VNI: every host refuses it.
    let second = write_lab("mhu-vni-b", &pair_on_vni("mhu-vni-b", 84, held));
    for (h, name) in [(&ha, "ha"), (&hb, "hb")] {
        let o = h.nslab(&["up", "--host", name, &second]);
        assert!(!o.status.success(), "{name}: {}", text(&o));
        let e = text(&o);
        assert!(
            e.contains(&format!(
                "host {name}: lab `mhu-vni-b` cannot make its tunnels: 1 VNI on UDP port 14789 already held here"
            )) && e.contains(&format!(
                "link r1:eth1 r2:eth1: VNI {held}, held by lab `mhu-vni-a`"
            )) && e.contains("would not know")
                && e.contains("`vxlan: { vni: N }`"),
            "{e}"
        );
        // Nothing of the refused lab is on the host.
        let left = h.ok(&["sh", "-c", "ls -A /run/nslab /run/netns"]);
        assert!(!left.contains("mhu-vni-b"), "{left}");
    }
    wait_for("mhu-vni-a still pinging", || {
        ping(&ha, "nslab.mhu-vni-a.r1", "1422", "10.83.0.2")
            .status
            .success()
    });
    down_and_clean(&[&ha, &hb], "mhu-vni-a");
}

/// Runs the two commands of `labs` on `h` at once, slowed so that both pass their first
/// (unlocked) VNI check; exactly one must win and the other must fail with nslab's
/// message naming the winner as the holder of `vni`, never the kernel's. Returns the
/// winner's and the loser's index.
fn race(
    h: &SimHost,
    runs: [[&str; 4]; 2],
    labs: [&str; 2],
    vni: u32,
    round: usize,
) -> (usize, usize) {
    let children: Vec<std::process::Child> = runs
        .iter()
        .map(|args| {
            h.nslab_command(args)
                .env("NSLAB_TEST_STEP_DELAY_MS", "20")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<std::process::Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let won: Vec<usize> = (0..2).filter(|&i| outs[i].status.success()).collect();
    assert_eq!(
        won.len(),
        1,
        "round {round}: one must win\n{}\n{}",
        text(&outs[0]),
        text(&outs[1])
    );
    let (w, l) = (won[0], 1 - won[0]);
    let e = text(&outs[l]);
    assert!(
        e.contains(&format!(
            "host ha: lab `{}` cannot make its tunnels: 1 VNI on UDP port 14789 already held here",
            labs[l]
        )) && e.contains(&format!("VNI {vni}, held by lab `{}`", labs[w])),
        "round {round}: {e}"
    );
    assert!(
        !e.contains("File exists"),
        "round {round}: the kernel's error: {e}"
    );
    (w, l)
}

#[test]
fn two_ups_racing_for_one_vni_on_a_host_leave_one_lab_and_the_other_the_clash_message() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let (ha, hb) = two_hosts("198.51.100.1/24", "198.51.100.2/24");
    let labs = ["mhu-race-a", "mhu-race-b"];
    let first = pair(labs[0], 86);
    let vni = pair_vni(&first);
    let files = [
        write_lab(labs[0], &first),
        write_lab(labs[1], &pair_on_vni(labs[1], 87, vni)),
    ];
    let loopbacks = ["10.86.0.2", "10.87.0.2"];
    // Whichever up checks first, and however the two interleave, one lab comes up and
    // the other is refused with nslab's message: the check and the claim that holds the
    // VNI are under one lock. Slowed steps keep both ups' first checks (before the lock)
    // ahead of either's stored plan, so the check under the lock is what decides.
    for round in 0..3 {
        let runs = files.each_ref().map(|f| ["up", "--host", "ha", f.as_str()]);
        let (w, l) = race(&ha, runs, labs, vni, round);
        // Nothing of the refused lab is left; the winner's tunnel is the only one.
        let left = ha.ok(&["sh", "-c", "ls -A /run/nslab /run/netns"]);
        assert!(!left.contains(labs[l]), "round {round}: {left}");
        let o = hb.nslab(&["up", "--host", "hb", &files[w]]);
        assert!(o.status.success(), "round {round}: {}", text(&o));
        let r1 = format!("nslab.{}.r1", labs[w]);
        assert_eq!(vni_of(&ha, &r1, "eth1"), vni.to_string());
        wait_for("the winner pinging", || {
            ping(&ha, &r1, "1422", loopbacks[w]).status.success()
        });
        down_and_clean(&[&ha, &hb], labs[w]);
    }
}

/// A running `nslab`, stopped with SIGTERM (and waited for) when dropped: a failed test
/// must not leave it holding its lab's lock against the simulated host's cleanup.
struct Stopped(std::process::Child);

impl Stopped {
    /// SIGTERM, then its exit status and stderr.
    fn stop(&mut self) -> (std::process::ExitStatus, String) {
        use std::io::Read;
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let mut e = String::new();
        if let Some(mut err) = self.0.stderr.take() {
            let _ = err.read_to_string(&mut e);
        }
        (self.0.wait().unwrap(), e)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.stop();
        }
    }
}

#[test]
fn a_lab_held_in_its_up_claims_its_vni_and_keeps_no_other_lab_waiting() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let (ha, hb) = two_hosts("198.51.100.1/24", "198.51.100.2/24");
    let labs = ["mhu-side-a", "mhu-side-b"];
    // A's r1 runs an exec that never ends: its `up` stays in its steps until stopped.
    let slow = pair(labs[0], 90).replace(
        "r1: { host: ha, loopback: 10.90.0.1/32 }",
        "r1: { host: ha, loopback: 10.90.0.1/32, exec: ['sleep 100000'] }",
    );
    assert!(slow.contains("sleep 100000"));
    let held = pair_vni(&slow);
    let a_file = write_lab(labs[0], &slow);
    let mut a = Stopped(
        ha.nslab_command(&["up", "--host", "ha", &a_file])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_for("A's claim on its VNI", || {
        ha.ok(&["sh", "-c", "ls -A /run/nslab 2>/dev/null; true"])
            .contains("mhu-side-a.vnis.json")
    });
    // Another lab on its own VNI comes up while A is still in its `up`.
    let other = pair(labs[1], 91);
    assert_ne!(pair_vni(&other), held);
    let b_file = write_lab(labs[1], &other);
    let mut b = ha
        .nslab_command(&["up", "--host", "ha", &b_file])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("B's up, which must not wait for A's", || {
        b.try_wait().unwrap().is_some()
    });
    let o = b.wait_with_output().unwrap();
    assert!(o.status.success(), "B: {}", text(&o));
    assert!(a.0.try_wait().unwrap().is_none(), "A's up ended before B's");
    // A's VNI is A's from its check on, before its plan is stored: a third lab pinned
    // onto it is refused by name.
    let third = write_lab("mhu-side-c", &pair_on_vni("mhu-side-c", 92, held));
    let o = ha.nslab(&["up", "--host", "ha", &third]);
    assert!(!o.status.success(), "{}", text(&o));
    let e = text(&o);
    assert!(
        e.contains(&format!("VNI {held}, held by lab `mhu-side-a`")),
        "{e}"
    );
    // Stopped, A rolls back, and its claim goes with its other files.
    let (status, e) = a.stop();
    assert!(!status.success(), "A: {e}");
    let left = ha.ok(&["sh", "-c", "ls -A /run/nslab /run/netns"]);
    assert!(
        !left.contains("mhu-side-a") && !left.contains("mhu-side-c"),
        "{left}"
    );
    assert_eq!(
        vni_of(&ha, "nslab.mhu-side-b.r1", "eth1"),
        pair_vni(&other).to_string()
    );
    down_and_clean(&[&ha], labs[1]);
    // Nothing ran on hb: it only gives the files their second host.
    drop(hb);
}

#[test]
fn an_apply_adding_a_tunnel_and_an_up_racing_for_its_vni_leave_one_the_clash_message() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let (ha, hb) = two_hosts("198.51.100.1/24", "198.51.100.2/24");
    let labs = ["mhu-rac-a", "mhu-rac-b"];
    let first = pair(labs[0], 88);
    let vni = pair_vni(&first);
    // B runs with both nodes on ha (no tunnel); the apply moves r2 to hb, which gives
    // its link a tunnel on the VNI A's up wants.
    let moved = pair_on_vni(labs[1], 89, vni);
    let together = moved.replace("r2: { host: hb", "r2: { host: ha");
    let a = write_lab(labs[0], &first);
    for round in 0..3 {
        let b = write_lab(labs[1], &together);
        let o = ha.nslab(&["up", "--host", "ha", &b]);
        assert!(o.status.success(), "round {round}: {}", text(&o));
        let b = write_lab(labs[1], &moved);
        let runs = [["up", "--host", "ha", &a], ["apply", "--host", "ha", &b]];
        let (w, l) = race(&ha, runs, labs, vni, round);
        // The winner holds the VNI on ha; a refused up left nothing, a refused apply left
        // B as it ran (r1 still reaches r2 on ha).
        let r1 = format!("nslab.{}.r1", labs[w]);
        assert_eq!(vni_of(&ha, &r1, "eth1"), vni.to_string(), "round {round}");
        if l == 0 {
            let left = ha.ok(&["sh", "-c", "ls -A /run/nslab /run/netns"]);
            assert!(!left.contains(labs[0]), "round {round}: {left}");
        } else {
            let r1 = format!("nslab.{}.r1", labs[1]);
            assert!(
                ping(&ha, &r1, "56", "10.89.0.2").status.success(),
                "round {round}: B is not as it ran"
            );
        }
        for lab in labs {
            if ha
                .ok(&["sh", "-c", "ls -A /run/nslab"])
                .contains(&format!("{lab}.journal"))
            {
                let o = ha.nslab(&["down", lab]);
                assert!(o.status.success(), "round {round}: {}", text(&o));
            }
        }
        ha.assert_clean();
    }
    // Nothing ran on hb: it only gives the file its second host.
    drop(hb);
}

#[test]
fn a_foreign_vxlan_device_on_the_port_holds_its_vni_against_a_lab() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let (ha, hb) = two_hosts("198.51.100.1/24", "198.51.100.2/24");
    let lab = pair("mhu-vni-f", 85);
    let vni = pair_vni(&lab).to_string();
    let file = write_lab("mhu-vni-f", &lab);
    // Another tool's tunnel in ha's own namespace, on nslab's port with the lab's VNI.
    ha.ok(&[
        "ip",
        "link",
        "add",
        "vxf",
        "type",
        "vxlan",
        "id",
        &vni,
        "dstport",
        "14789",
        "local",
        "198.51.100.1",
        "nolearning",
    ]);
    for args in [
        vec!["up", "--host", "ha", &file],
        vec!["plan", "--host", "ha", &file],
    ] {
        let o = ha.nslab(&args);
        assert!(!o.status.success(), "{args:?}: {}", text(&o));
        assert!(
            text(&o).contains(&format!(
                "link r1:eth1 r2:eth1: VNI {vni}, held by VXLAN device `vxf` in this host's namespace"
            )),
            "{}",
            text(&o)
        );
    }
    let left = ha.ok(&["sh", "-c", "ls -A /run/nslab /run/netns 2>/dev/null; true"]);
    assert!(!left.contains("mhu-vni-f"), "{left}");
    // hb has no such device: its share comes up; with the device gone, so does ha's.
    let o = hb.nslab(&["up", "--host", "hb", &file]);
    assert!(o.status.success(), "{}", text(&o));
    ha.ok(&["ip", "link", "del", "vxf"]);
    let o = ha.nslab(&["up", "--host", "ha", &file]);
    assert!(o.status.success(), "{}", text(&o));
    wait_for("mhu-vni-f pinging once the device is gone", || {
        ping(&ha, "nslab.mhu-vni-f.r1", "1422", "10.85.0.2")
            .status
            .success()
    });
    down_and_clean(&[&ha, &hb], "mhu-vni-f");
}

/// A chain r1 - r2 - r3 with r2 on `r2_host`: moving r2 is the only difference.
fn movable(r2_host: &str) -> String {
    format!(
        "
name: mhu-move
hosts:
  ha: {{ address: 198.51.100.1 }}
  hb: {{ address: 198.51.100.2 }}
routing: static
defaults: {{ isolation: [net] }}
nodes:
  r1: {{ host: ha, loopback: 10.86.0.1/32 }}
  r2: {{ host: {r2_host}, loopback: 10.86.0.2/32 }}
  r3: {{ host: hb, loopback: 10.86.0.3/32 }}
links:
  - [r1:eth1, r2:eth1]
  - [r2:eth2, r3:eth1]
"
    )
}

/// The kind (`veth`, `vxlan`) of `iface` in `netns` on `h`.
fn kind_of(h: &SimHost, netns: &str, iface: &str) -> String {
    let link = h.ok(&["ip", "-n", netns, "-d", "-o", "link", "show", iface]);
    ["vxlan", "veth"]
        .into_iter()
        .find(|k| link.contains(&format!(" {k} ")))
        .unwrap_or_else(|| panic!("neither veth nor vxlan: {link}"))
        .to_string()
}

/// The lab's namespaces on `h`, sorted.
fn lab_namespaces(h: &SimHost) -> Vec<String> {
    let mut out: Vec<String> = h
        .ok(&["sh", "-c", "ls -A /run/netns 2>/dev/null; true"])
        .lines()
        .filter(|l| l.starts_with("nslab.mhu-move."))
        .map(str::to_string)
        .collect();
    out.sort();
    out
}

#[test]
fn apply_on_each_host_moves_a_node_between_hosts_and_the_chain_still_pings() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let (ha, hb) = two_hosts("198.51.100.1/24", "198.51.100.2/24");
    let file = write_lab("mhu-move", &movable("ha"));
    for (h, name) in [(&ha, "ha"), (&hb, "hb")] {
        let o = h.nslab(&["up", "--host", name, &file]);
        assert!(o.status.success(), "up --host {name}: {}", text(&o));
    }
    assert_eq!(kind_of(&ha, "nslab.mhu-move.r2", "eth2"), "vxlan");
    wait_for("r1 pinging r3 before the move", || {
        ping(&ha, "nslab.mhu-move.r1", "1422", "10.86.0.3")
            .status
            .success()
    });
    // r2 moves from ha to hb: its links turn, r1-r2 into a tunnel and r2-r3 into a veth.
    std::fs::write(file.as_str(), movable("hb")).unwrap();
    for (h, name) in [(&ha, "ha"), (&hb, "hb")] {
        let o = h.nslab(&["--host", name, "apply", &file]);
        assert!(o.status.success(), "apply --host {name}: {}", text(&o));
    }
    assert_eq!(lab_namespaces(&ha), ["nslab.mhu-move.r1"]);
    assert_eq!(
        lab_namespaces(&hb),
        ["nslab.mhu-move.r2", "nslab.mhu-move.r3"]
    );
    assert_eq!(kind_of(&ha, "nslab.mhu-move.r1", "eth1"), "vxlan");
    assert_eq!(kind_of(&hb, "nslab.mhu-move.r2", "eth1"), "vxlan");
    assert_eq!(kind_of(&hb, "nslab.mhu-move.r2", "eth2"), "veth");
    assert_eq!(kind_of(&hb, "nslab.mhu-move.r3", "eth1"), "veth");
    assert_eq!(
        vni_of(&ha, "nslab.mhu-move.r1", "eth1"),
        vni_of(&hb, "nslab.mhu-move.r2", "eth1")
    );
    // The old tunnel is gone from hb's r3, and each host's stored plan is its new share.
    for (h, name, nodes) in [(&ha, "ha", "r1"), (&hb, "hb", "r2, r3")] {
        let o = h.nslab(&["status", "mhu-move"]);
        assert!(o.status.success(), "status on {name}: {}", text(&o));
        let remote = if name == "ha" { "r2" } else { "r1" };
        assert!(
            words(&text(&o)).contains(&format!("\n{remote} remote ")),
            "{name} ({nodes}): {}",
            text(&o)
        );
    }
    wait_for("r1 pinging r3 after the move", || {
        ping(&ha, "nslab.mhu-move.r1", "1422", "10.86.0.3")
            .status
            .success()
    });
    let o = ping(&hb, "nslab.mhu-move.r3", "1422", "10.86.0.1");
    assert!(o.status.success(), "r3 -> r1: {}", text(&o));
    down_and_clean(&[&ha, &hb], "mhu-move");
}

/// The names and statuses of `nslab test --json`'s checks, in order.
fn results(o: &std::process::Output) -> Vec<(String, String)> {
    let out = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)));
    v["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks: {v}"))
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn each_host_tests_the_checks_that_start_on_it_and_names_the_hosts_of_the_rest() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let file = write_lab("mhu-chain3t", &CHAIN3.replace("mhu-chain3", "mhu-chain3t"));
    let (_switch, hosts) = three_hosts();
    for (h, name) in hosts.iter().zip(["ha", "hb", "hc"]) {
        let o = h.nslab(&["up", "--host", name, &file]);
        assert!(o.status.success(), "up --host {name}: {}", text(&o));
    }
    let [ha, hb, hc] = &hosts;
    // `test --lab` on each host: the share knows its host, and each runs its own checks,
    // whose targets (and a path's hops) are on the other hosts.
    // The JSON lists the checks left to other hosts after its own, skipped.
    let pass = |names: &[&str]| -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| {
                let status = if n.starts_with('-') {
                    "skipped"
                } else {
                    "pass"
                };
                (n.trim_start_matches('-').to_string(), status.to_string())
            })
            .collect()
    };
    for (h, want, note) in [
        (
            ha,
            pass(&["h1-reach", "h1-path", "-r2-route", "-h2-reach", "-h2-path"]),
            "on host ha: skipped 3 checks whose source lives on another host: 1 on hb, 2 on hc",
        ),
        (
            hb,
            pass(&["r2-route", "-h1-reach", "-h1-path", "-h2-reach", "-h2-path"]),
            "on host hb: skipped 4 checks whose source lives on another host: 2 on ha, 2 on hc",
        ),
        (
            hc,
            pass(&["h2-reach", "h2-path", "-h1-reach", "-h1-path", "-r2-route"]),
            "on host hc: skipped 3 checks whose source lives on another host: 2 on ha, 1 on hb",
        ),
    ] {
        let o = h.nslab(&["test", "--lab", "mhu-chain3t", "--json"]);
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(results(&o), want, "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(note),
            "{}",
            text(&o)
        );
    }
    // A skipped check says which host runs it, in the JSON and as a JUnit testcase.
    let junit = std::env::temp_dir().join("nslab-tests/mhu-chain3t.junit.xml");
    let junit = junit.to_str().unwrap();
    let o = hb.nslab(&["test", "--lab", "mhu-chain3t", "--json", "--junit", junit]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((&v["passed"], &v["skipped"]), (&1.into(), &4.into()), "{v}");
    let on_ha = "not run: its source lives on host ha; `nslab --host ha test` runs it there";
    assert_eq!(v["checks"][1]["reason"], on_ha, "{v}");
    let xml = std::fs::read_to_string(junit).unwrap();
    std::fs::remove_file(junit).unwrap();
    assert!(
        xml.contains(r#"tests="5" failures="0" errors="0" skipped="4""#),
        "{xml}"
    );
    assert!(
        xml.contains(&format!(
            "<testcase name=\"h2-path\" classname=\"nslab.mhu-chain3t.path\" time=\"0.000\">\n      <skipped message=\"{}\"/>",
            on_ha.replace("ha", "hc")
        )),
        "{xml}"
    );
    // `test FILE --host hc` brings up hc's share (the others are up), runs hc's checks
    // through the routers on hb and ha, and takes the share down again.
    let o = hc.nslab(&["down", "mhu-chain3t"]);
    assert!(o.status.success(), "{}", text(&o));
    hc.assert_clean();
    let o = hc.nslab(&["--host", "hc", "test", &file]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("lab `mhu-chain3t`: 2 checks, 2 passed, 0 failed"),
        "{out}"
    );
    assert!(out.contains("2 on ha, 1 on hb"), "{out}");
    hc.assert_clean();
    down_and_clean(&[ha, hb], "mhu-chain3t");
}

/// Agents started inside simulated hosts; dropped, they are killed whatever happened (the
/// simulated host's holder going does not take them along).
struct Agents(Vec<std::process::Child>);

impl Agents {
    /// `nslab --host NAME agent FILE` inside `h`, its output in `log`. nsenter without
    /// `-p` execs, so the child is the agent itself and signals reach it.
    fn start(&mut self, h: &SimHost, name: &str, file: &str, log: &std::path::Path) {
        let out = std::fs::File::create(log).unwrap();
        let child = std::process::Command::new("nsenter")
            .args(["-t", &h.pid(), "-n", "-m", "--"])
            .arg(env!("CARGO_BIN_EXE_nslab"))
            .args(["--host", name, "agent", file])
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        self.0.push(child);
    }

    fn last(&mut self) -> &mut std::process::Child {
        self.0.last_mut().expect("an agent")
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        for a in &mut self.0 {
            let _ = a.kill();
            let _ = a.wait();
        }
    }
}

fn read(log: &std::path::Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

#[test]
fn an_agent_with_host_keeps_its_share_is_adopted_after_kill_9_and_takes_it_down_on_sigterm() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let lab = "mhu-agent";
    let file = write_lab(lab, &pair(lab, 83));
    let logs = std::env::temp_dir().join("nslab-tests");
    let (ha, hb) = two_hosts("198.51.100.1/24", "198.51.100.2/24");
    let mut agents = Agents(Vec::new());
    let first = logs.join("mhu-agent-1.log");
    agents.start(&ha, "ha", &file, &first);
    let o = hb.nslab(&["up", "--host", "hb", &file]);
    assert!(o.status.success(), "{}", text(&o));
    wait_for("the agent's share to be up", || {
        read(&first).contains("is up")
    });
    // Only ha's share: r1 here, r2 remote, and the tunnel to hb works.
    let netns = ha.ok(&["ls", "-A", "/run/netns"]);
    assert!(netns.contains("nslab.mhu-agent.r1"), "{netns}");
    assert!(!netns.contains("nslab.mhu-agent.r2"), "{netns}");
    wait_for("r1 pinging r2 across the hosts", || {
        ping(&ha, "nslab.mhu-agent.r1", "1422", "10.83.0.2")
            .status
            .success()
    });

    // kill -9: the share stays; the next agent adopts it as it is: the same namespace
    // and the same tunnel device, not made again.
    let made = || {
        (
            ha.ok(&["stat", "-L", "-c", "%i", "/run/netns/nslab.mhu-agent.r1"]),
            ha.ok(&[
                "ip",
                "-n",
                "nslab.mhu-agent.r1",
                "-o",
                "-d",
                "link",
                "show",
                "eth1",
            ]),
        )
    };
    let before = made();
    assert!(before.1.contains("vxlan id"), "{}", before.1);
    agents.last().kill().unwrap();
    agents.last().wait().unwrap();
    let o = ping(&ha, "nslab.mhu-agent.r1", "1422", "10.83.0.2");
    assert!(
        o.status.success(),
        "the share did not survive its agent: {}",
        text(&o)
    );
    let second = logs.join("mhu-agent-2.log");
    agents.start(&ha, "ha", &file, &second);
    wait_for("the new agent to adopt the share", || {
        read(&second).contains("adopted")
    });
    assert!(
        read(&second).contains("nothing changed"),
        "{}",
        read(&second)
    );
    assert!(
        agents.last().try_wait().unwrap().is_none(),
        "{}",
        read(&second)
    );
    let o = ping(&ha, "nslab.mhu-agent.r1", "1422", "10.83.0.2");
    assert!(o.status.success(), "after adoption: {}", text(&o));
    assert_eq!(made(), before, "the adopted share was made again");

    // SIGTERM: the share goes, the agent exits 0, and ha is clean; hb's share is hb's.
    let pid = nix::unistd::Pid::from_raw(agents.last().id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    wait_for("the agent to exit", || {
        agents.last().try_wait().is_ok_and(|s| s.is_some())
    });
    let status = agents.last().wait().unwrap();
    assert!(status.success(), "{status}: {}", read(&second));
    assert!(
        read(&second).contains("lab `mhu-agent` is down"),
        "{}",
        read(&second)
    );
    ha.assert_clean();
    assert!(
        hb.ok(&["ls", "-A", "/run/netns"])
            .contains("nslab.mhu-agent.r2")
    );
    down_and_clean(&[&hb], lab);
    let _ = std::fs::remove_file(first);
    let _ = std::fs::remove_file(second);
}

/// The FRR OSPF ring (`topologies/ospf-ring.yaml`) spread over two simulated hosts: r1,
/// r2 and h1 on ha, r3, r4, r5 and h2 on hb, so two of the ring's links are tunnels. Each
/// host runs the file's checks whose source is its own: adjacencies go Full over the
/// tunnels (MTU 1450 on both ends, as OSPF requires), routes and the hop-by-hop path
/// cross hosts, and ha's scenario cuts r1-r2 and sees OSPF reroute through hb and back.
#[test]
fn an_frr_ospf_ring_over_two_hosts_converges_and_reroutes_across_them() {
    if !privileged() || !frr_installed() {
        return;
    }
    let _g = shared();
    let dir = std::env::temp_dir().join("nslab-tests");
    let _configs = Scratch(dir.join("ospf-ring"));
    copy_dir(&root().join("topologies/ospf-ring"), &dir.join("ospf-ring")).unwrap();
    let ring = std::fs::read_to_string(root().join("topologies/ospf-ring.yaml")).unwrap();
    let yaml = ring
        .replace(
            "name: ospf-ring\n",
            "name: mhu-ospf\nhosts:\n  ha: { address: 198.51.100.1 }\n  hb: { address: 198.51.100.2 }\n",
        )
        .replace("kind: frr, loopback: 10.0.0.1/32", "kind: frr, host: ha, loopback: 10.0.0.1/32")
        .replace("kind: frr, loopback: 10.0.0.2/32", "kind: frr, host: ha, loopback: 10.0.0.2/32")
        .replace("kind: frr, loopback: 10.0.0.3/32", "kind: frr, host: hb, loopback: 10.0.0.3/32")
        .replace("kind: frr, loopback: 10.0.0.4/32", "kind: frr, host: hb, loopback: 10.0.0.4/32")
        .replace("kind: frr, loopback: 10.0.0.5/32", "kind: frr, host: hb, loopback: 10.0.0.5/32")
        .replace("h1: { routes", "h1: { host: ha, routes")
        .replace("h2: { routes", "h2: { host: hb, routes");
    assert_eq!(
        yaml.matches("host: h").count(),
        7,
        "every node placed:\n{yaml}"
    );
    let file = write_lab("mhu-ospf", &yaml);
    let (ha, hb) = two_hosts("198.51.100.1/24", "198.51.100.2/24");
    for (h, name) in [(&ha, "ha"), (&hb, "hb")] {
        let o = h.nslab(&["up", "--host", name, &file]);
        assert!(o.status.success(), "up --host {name}: {}", text(&o));
    }
    // hb first: its adjacencies and routes only look; ha's scenario then cuts a link.
    let hb_checks = ["ospf-r3-full", "ospf-r4-full", "ospf-r5-full"];
    let ha_checks = [
        "ospf-r1-full",
        "ospf-r2-full",
        "rerouted-long-way",
        "short-way-back",
    ];
    for (h, want, other) in [
        (&hb, &hb_checks[..], &ha_checks[..]),
        (&ha, &ha_checks[..], &hb_checks[..]),
    ] {
        let o = h.nslab(&["test", "--lab", "mhu-ospf", "--json"]);
        let got = results(&o);
        assert!(o.status.success(), "{}", text(&o));
        for name in want {
            assert!(
                got.iter().any(|(n, s)| n == name && s == "pass"),
                "{name} did not pass: {got:?}\n{}",
                text(&o)
            );
        }
        // The other host's checks are listed, skipped; every one run here passed.
        for name in other {
            assert!(
                got.iter().any(|(n, s)| n == name && s == "skipped"),
                "{name} is not listed as skipped: {got:?}"
            );
        }
        assert!(
            got.iter().all(|(_, s)| s == "pass" || s == "skipped"),
            "{got:?}"
        );
    }
    down_and_clean(&[&ha, &hb], "mhu-ospf");
}

/// Whether FRR's daemons are here (under CI=true they must be: the test setup installs
/// them).
fn frr_installed() -> bool {
    let here = std::path::Path::new("/usr/lib/frr/ospfd").exists();
    if !here && std::env::var("CI").as_deref() == Ok("true") {
        panic!("FRR is not installed (CI=true forbids skipping)");
    }
    here
}

/// A table's text with each run of blanks made one space (columns are sized to their
/// content), lines kept.
fn words(table: &str) -> String {
    let lines: Vec<String> = table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    lines.join("\n")
}

/// The VXLAN devices in `h`'s own network namespace and the lab's nodes, as `ip -o link`
/// lines (one per tunnel).
fn tunnels(h: &SimHost, netns: &str) -> String {
    h.ok(&["ip", "-n", netns, "-o", "link", "show", "type", "vxlan"])
}

/// One host's share lost halfway through its `up` (`kill -9`, as a crashed agent or a
/// cancelled job leaves it), while the other host's share runs: ha's `down` removes what
/// ha's `up` made (no namespace, tunnel or UDP socket left) without touching hb's share;
/// hb's share keeps its tunnel and its node; ha's next `up` makes its share whole again
/// and the tunnel carries full-size frames. Then hb's underlay goes away under the
/// running lab: ha's checks fail and name the unreachable target, ha's `down` does not
/// wait for the lost host, and ha comes up again meanwhile; with the underlay back, the
/// checks pass.
#[test]
fn a_share_killed_in_its_up_goes_with_down_and_the_other_hosts_share_keeps_running() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let lab = "mhu-lost";
    let yaml = pair(lab, 84).replace(
        "links:",
        "tests:\n  - reach: { from: r1, to: 10.84.0.2, name: r1-r2, timeout: 2s }\nlinks:",
    );
    let file = write_lab(lab, &yaml);
    let (ha, hb) = two_hosts("198.51.100.1/24", "198.51.100.2/24");
    let o = hb.nslab(&["up", "--host", "hb", &file]);
    assert!(o.status.success(), "{}", text(&o));
    let hb_tunnel = tunnels(&hb, "nslab.mhu-lost.r2");
    assert!(hb_tunnel.contains("eth1"), "{hb_tunnel}");

    // ha's up, slowed and killed once its journal shows it under way.
    let mut up = ha
        .nslab_command(&["up", "--host", "ha", &file])
        .env("NSLAB_TEST_STEP_DELAY_MS", "150")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("ha's up to be under way", || {
        ha.run(&[
            "sh",
            "-c",
            "test $(wc -l < /run/nslab/mhu-lost.journal) -ge 6",
        ])
        .status
        .success()
    });
    up.kill().unwrap();
    let status = up.wait().unwrap();
    assert!(!status.success(), "up ended before it was killed");
    let o = ha.nslab(&["status", lab]);
    assert!(
        !o.status.success(),
        "a share cut short looks healthy: {}",
        text(&o)
    );

    // ha's down: nothing of ha's share is left; hb's share is as it was.
    let o = ha.nslab(&["down", lab]);
    assert!(o.status.success(), "{}", text(&o));
    ha.assert_clean();
    assert_eq!(tunnels(&hb, "nslab.mhu-lost.r2"), hb_tunnel);
    let o = hb.nslab(&["status", lab]);
    assert!(
        o.status.success(),
        "hb's share after ha's down: {}",
        text(&o)
    );

    // ha's share again: the tunnel carries a full-size frame both ways.
    let o = ha.nslab(&["up", "--host", "ha", &file]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        vni_of(&ha, "nslab.mhu-lost.r1", "eth1"),
        vni_of(&hb, "nslab.mhu-lost.r2", "eth1")
    );
    wait_for("r1 pinging r2 once ha's share is back", || {
        ping(&ha, "nslab.mhu-lost.r1", "1422", "10.84.0.2")
            .status
            .success()
    });
    let o = ping(&hb, "nslab.mhu-lost.r2", "1422", "10.84.0.1");
    assert!(o.status.success(), "r2 -> r1: {}", text(&o));

    // hb lost (its underlay down): ha's check fails and says so; ha's share can go and
    // come back meanwhile, since nothing in it waits for the other host.
    hb.ok(&["ip", "link", "set", "ul0", "down"]);
    let o = ha.nslab(&["test", "--lab", lab]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("r1-r2") && text(&o).contains("1 failed"),
        "{}",
        text(&o)
    );
    let o = ha.nslab(&["down", lab]);
    assert!(o.status.success(), "{}", text(&o));
    ha.assert_clean();
    let o = ha.nslab(&["up", "--host", "ha", &file]);
    assert!(o.status.success(), "{}", text(&o));
    hb.ok(&["ip", "link", "set", "ul0", "up"]);
    wait_for("r1 reaching r2 once hb is back", || {
        ha.nslab(&["test", "--lab", lab]).status.success()
    });
    down_and_clean(&[&ha, &hb], lab);
}

/// Three routers on three hosts; `relinked` moves a's link from b to c.
fn apply_lab(relinked: bool) -> String {
    let links = if relinked {
        "  - [b:eth2, c:eth1]\n  - [a:eth2, c:eth2]\n"
    } else {
        "  - [a:eth1, b:eth1]\n  - [b:eth2, c:eth1]\n"
    };
    format!(
        "
name: mhu-applyf
hosts:
  ha: {{ address: 198.51.100.1 }}
  hb: {{ address: 198.51.100.2 }}
  hc: {{ address: 198.51.100.3 }}
routing: static
defaults: {{ isolation: [net] }}
nodes:
  a: {{ host: ha, loopback: 10.87.0.1/32 }}
  b: {{ host: hb, loopback: 10.87.0.2/32 }}
  c: {{ host: hc, loopback: 10.87.0.3/32 }}
links:
{links}"
    )
}

/// `apply` across hosts is one `apply` per host, each rolled back on its own: a
/// cross-host link removed (a-b) and one added (a-c) applied on hb and hc, then failing
/// on ha (an interface in the way of the new tunnel's end) leaves ha's share as it was
/// (a-b's tunnel end back with its VNI) while hb and hc keep the change, so a reaches
/// nobody until ha applies again, which then converges and a and c ping.
#[test]
fn an_apply_failing_on_one_host_rolls_back_that_share_alone_and_converges_when_retried() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let file = write_lab("mhu-applyf", &apply_lab(false));
    let (_switch, hosts) = three_hosts();
    let names = ["ha", "hb", "hc"];
    for (h, name) in hosts.iter().zip(names) {
        let o = h.nslab(&["up", "--host", name, &file]);
        assert!(o.status.success(), "up --host {name}: {}", text(&o));
    }
    let [ha, hb, hc] = &hosts;
    let a = "nslab.mhu-applyf.a";
    wait_for("a pinging c through b", || {
        ping(ha, a, "56", "10.87.0.3").status.success()
    });
    let vni_ab = vni_of(ha, a, "eth1");

    // The failure injected on ha: an interface where the new tunnel's end goes.
    ha.ok(&[
        "ip", "-n", a, "link", "add", "eth2", "type", "veth", "peer", "name", "blk0",
    ]);
    std::fs::write(file.as_str(), apply_lab(true)).unwrap();
    for (h, name) in [(hb, "hb"), (hc, "hc")] {
        let o = h.nslab(&["--host", name, "apply", &file]);
        assert!(o.status.success(), "apply --host {name}: {}", text(&o));
    }
    let o = ha.nslab(&["--host", "ha", "apply", &file]);
    let err = text(&o);
    assert!(
        !o.status.success(),
        "apply on ha succeeded over the blocker: {err}"
    );
    assert!(
        err.contains("rolled back") && err.contains("lab `mhu-applyf`") && err.contains("node `a`"),
        "{err}"
    );
    // ha's share is as before: the removed tunnel is back with its VNI, the blocker
    // untouched; hb and hc kept the change, so a-b is dead on hb's side.
    assert_eq!(kind_of(ha, a, "eth1"), "vxlan");
    assert_eq!(vni_of(ha, a, "eth1"), vni_ab);
    assert_eq!(kind_of(ha, a, "eth2"), "veth");
    let o = hb.run(&["ip", "-n", "nslab.mhu-applyf.b", "link", "show", "eth1"]);
    assert!(
        !o.status.success(),
        "b's end of a-b is still there: {}",
        text(&o)
    );
    assert_eq!(kind_of(hc, "nslab.mhu-applyf.c", "eth2"), "vxlan");
    let o = ping(ha, a, "56", "10.87.0.3");
    assert!(
        !o.status.success(),
        "a reached c with ha not applied: {}",
        text(&o)
    );

    // The cause gone, ha applies again and the three shares agree.
    ha.ok(&["ip", "-n", a, "link", "del", "eth2"]);
    let o = ha.nslab(&["--host", "ha", "apply", &file]);
    assert!(o.status.success(), "apply --host ha again: {}", text(&o));
    let o = ha.run(&["ip", "-n", a, "link", "show", "eth1"]);
    assert!(
        !o.status.success(),
        "a-b's tunnel end stayed on ha: {}",
        text(&o)
    );
    assert_eq!(kind_of(ha, a, "eth2"), "vxlan");
    assert_eq!(
        vni_of(ha, a, "eth2"),
        vni_of(hc, "nslab.mhu-applyf.c", "eth2")
    );
    wait_for("a pinging c over the new tunnel", || {
        ping(ha, a, "56", "10.87.0.3").status.success()
    });
    let o = ping(hc, "nslab.mhu-applyf.c", "56", "10.87.0.1");
    assert!(o.status.success(), "c -> a: {}", text(&o));
    down_and_clean(&[ha, hb, hc], "mhu-applyf");
}

/// A chain of `n` routers with no `host:`, placed by `placement: auto` over three hosts,
/// routed by `routing: static`, with a check from each end to the other.
fn auto_chain(n: usize) -> String {
    let mut t = String::from(
        "
name: mhu-auto
hosts:
  ha: { address: 198.51.100.1 }
  hb: { address: 198.51.100.2 }
  hc: { address: 198.51.100.3 }
placement: auto
addressing: { p2p: 10.89.0.0/16, loopback: 10.88.0.0/16 }
routing: static
defaults: { isolation: [net], loopback: auto }
nodes:
",
    );
    for i in 1..=n {
        t.push_str(&format!("  r{i}: {{}}\n"));
    }
    t.push_str("links:\n");
    for i in 1..n {
        t.push_str(&format!("  - [r{i}:eth1, r{}:eth0]\n", i + 1));
    }
    t.push_str(&format!(
        "tests:\n  - reach: {{ from: r1, to: r{n}, name: first-last }}\n  - reach: {{ from: r{n}, to: r1, name: last-first }}\n"
    ));
    t
}

/// The routes `node` has in `netns` on `h`, as `dst via gateway` lines, sorted.
fn kernel_routes(h: &SimHost, netns: &str) -> Vec<String> {
    let mut out: Vec<String> = h
        .ok(&["ip", "-n", netns, "-4", "route", "show"])
        .lines()
        .filter(|l| l.contains(" via "))
        .map(|l| l.split(" dev ").next().unwrap().trim().to_string())
        .collect();
    out.sort();
    out
}

/// The journey of a lab outgrowing one machine, small enough for a test: 60 routers
/// placed by `placement: auto` on three simulated hosts. Each host gets a third, the
/// chain crosses hosts twice, every router has the addresses and static routes the same
/// file gives on one machine, the checks from each end pass on the end's host across
/// both tunnels, and `down` on each host leaves it clean.
#[test]
fn an_auto_placed_chain_over_three_hosts_keeps_its_single_host_addresses_routes_and_checks() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let n = 60;
    let lab = auto_chain(n);
    let file = write_lab("mhu-auto", &lab);
    let t = nslab::compile_str(&lab, "lab.yaml", &std::env::temp_dir()).unwrap();
    let host = |node: &str| t.topology.node(node).unwrap().host.clone().unwrap();
    let cross = t
        .topology
        .links
        .iter()
        .filter(|l| l.kind == nslab::model::LinkKind::Vxlan)
        .count();
    assert_eq!(cross, 2, "a chain over three hosts crosses twice");
    let (_switch, hosts) = three_hosts();
    let names = ["ha", "hb", "hc"];
    for (h, name) in hosts.iter().zip(names) {
        let o = h.nslab(&["up", "--host", name, &file]);
        assert!(o.status.success(), "up --host {name}: {}", text(&o));
        let mine: Vec<String> = (1..=n)
            .map(|i| format!("r{i}"))
            .filter(|r| host(r) == name)
            .collect();
        assert_eq!(mine.len(), n / 3, "{name}: {mine:?}");
        // Every router of the share, as on one machine: its addresses and static routes.
        for r in &mine {
            let netns = format!("nslab.mhu-auto.{r}");
            let node = t.topology.node(r).unwrap();
            for iface in node.interfaces.iter().filter(|i| i.name != "lo") {
                let dump = h.ok(&["ip", "-n", &netns, "-o", "addr", "show", "dev", &iface.name]);
                for a in &iface.addresses {
                    assert!(
                        dump.contains(&format!(" {a} ")),
                        "{r}:{}: {a} in {dump}",
                        iface.name
                    );
                }
            }
            let mut want: Vec<String> = node
                .routes
                .iter()
                .filter(|rt| rt.dst.addr().is_ipv4())
                .flat_map(|rt| {
                    rt.nexthops.iter().map(move |nh| {
                        // `ip route` writes a host route without its /32.
                        let dst = if rt.dst.prefix_len() == 32 {
                            rt.dst.addr().to_string()
                        } else {
                            rt.dst.to_string()
                        };
                        format!("{dst} via {}", nh.gateway)
                    })
                })
                .collect();
            want.sort();
            assert!(!want.is_empty(), "{r} has no static route");
            assert_eq!(kernel_routes(h, &netns), want, "{r} on {name}");
        }
    }
    let [ha, hb, hc] = &hosts;
    let (first, last) = (host("r1"), host(&format!("r{n}")));
    assert_ne!(first, last);
    for (h, name) in [(ha, "ha"), (hb, "hb"), (hc, "hc")] {
        let o = h.nslab(&["test", "--lab", "mhu-auto", "--json"]);
        assert!(o.status.success(), "test on {name}: {}", text(&o));
        let want: Vec<(String, String)> = [("first-last", &first), ("last-first", &last)]
            .into_iter()
            .map(|(c, on)| {
                let status = if on == name { "pass" } else { "skipped" };
                (c.to_string(), status.to_string())
            })
            .collect();
        let mut got = results(&o);
        got.sort();
        assert_eq!(got, want, "on {name}: {}", text(&o));
    }
    down_and_clean(&[ha, hb, hc], "mhu-auto");
}

/// A chain over two hosts, net-only: what is checked is the machine under it.
const UNDERLAY: &str = "
name: mhu-ul
hosts:
  ha: { address: 198.51.100.1 }
  hb: { address: 198.51.100.2 }
defaults: { isolation: [net] }
nodes:
  r1: { host: ha }
  r2: { host: hb }
links:
  - endpoints: [r1:eth1, r2:eth1]
    addresses: [10.78.0.0/31, 10.78.0.1/31]
";

/// What a simulated host holds that an `up` could make or change: nslab's state, named
/// namespaces, links with their MTUs, addresses, routes, UDP sockets.
fn host_state(h: &SimHost) -> String {
    h.ok(&[
        "sh",
        "-c",
        "ls -A /run /run/nslab /run/netns 2>&1; ip -o link; ip -o addr; ip route; ss -Huan",
    ])
}

#[test]
fn underlay_a_host_address_the_machine_lacks_is_refused_before_anything_is_made() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let file = write_lab("mhu-ul-addr", UNDERLAY);
    let (ha, _hb) = two_hosts("198.51.100.1/24", "198.51.100.2/24");
    let before = host_state(&ha);
    // The wrong `--host`: hb's address is not this machine's.
    let o = ha.nslab(&["up", "--host", "hb", &file]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("host `hb`'s address 198.51.100.2 is not an address of this machine (its addresses: 198.51.100.1 (ul0)"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("a wrong `--host`?"), "{}", text(&o));
    assert!(text(&o).contains("nothing was made"), "{}", text(&o));
    assert_eq!(host_state(&ha), before, "the refused `up` changed the host");
    // The wrong `address:`: the file says .9 for ha.
    let wrong = write_lab(
        "mhu-ul-addr9",
        &UNDERLAY.replace("198.51.100.1 }", "198.51.100.9 }"),
    );
    let o = ha.nslab(&["up", "--host", "ha", &wrong]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("host `ha`'s address 198.51.100.9 is not an address of this machine"),
        "{}",
        text(&o)
    );
    // Not even /run/nslab was made.
    assert_eq!(host_state(&ha), before, "the refused `up` changed the host");
}

#[test]
fn underlay_an_mtu_below_the_hosts_is_warned_naming_the_interface_and_the_route() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let file = write_lab("mhu-ul-mtu", UNDERLAY);
    let (ha, hb) = two_hosts("198.51.100.1/24", "198.51.100.2/24");
    // ha's interface carries 1400 of the 1500 the file says.
    ha.ok(&["ip", "link", "set", "ul0", "mtu", "1400"]);
    hb.ok(&["ip", "link", "set", "ul0", "mtu", "1400"]);
    let o = ha.nslab(&["up", "--host", "ha", &file]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        words(&text(&o)).contains("warning: host `ha`: `ul0`, which holds its address 198.51.100.1, has MTU 1400, below the host's `mtu: 1500`; the lab's tunnels get MTU 1450 but carry 1350 bytes unfragmented"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("lower `hosts: ha: mtu:` to 1400"),
        "{}",
        text(&o)
    );
    // hb's interface is at 1500 again, but its route to ha says 1400.
    hb.ok(&["ip", "link", "set", "ul0", "mtu", "1500"]);
    hb.ok(&[
        "ip",
        "route",
        "add",
        "198.51.100.1/32",
        "dev",
        "ul0",
        "mtu",
        "1400",
    ]);
    let o = hb.nslab(&["up", "--host", "hb", &file]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        words(&text(&o)).contains("warning: host `hb`: the route towards host `ha` (198.51.100.1) leaves by `ul0`, whose route's MTU is 1400, below the host's `mtu: 1500`"),
        "{}",
        text(&o)
    );
    // Why a warning and not a refusal: the tunnel does not set DF on its outer packets,
    // so the sending machine fragments them and a DF frame at the tunnel's MTU (1422
    // bytes of ping) still crosses the 1400 underlay.
    wait_for("r1 pinging r2 at 1300 bytes", || {
        ping(&ha, "nslab.mhu-ul.r1", "1300", "10.78.0.1")
            .status
            .success()
    });
    let o = ping(&ha, "nslab.mhu-ul.r1", "1422", "10.78.0.1");
    assert!(o.status.success(), "{}", text(&o));
    down_and_clean(&[&ha, &hb], "mhu-ul");
}

#[test]
fn underlay_a_machine_that_fits_the_file_comes_up_without_a_warning() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let file = write_lab("mhu-ul-fit", &UNDERLAY.replace("mhu-ul\n", "mhu-ul-fit\n"));
    let (ha, hb) = two_hosts("198.51.100.1/24", "198.51.100.2/24");
    for (h, name) in [(&ha, "ha"), (&hb, "hb")] {
        let o = h.nslab(&["up", "--host", name, &file]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(!text(&o).contains("warning"), "{}", text(&o));
    }
    wait_for("r1 pinging r2 at 1422 bytes", || {
        ping(&ha, "nslab.mhu-ul-fit.r1", "1422", "10.78.0.1")
            .status
            .success()
    });
    down_and_clean(&[&ha, &hb], "mhu-ul-fit");
}

/// Packets `iface` has sent, on host `h` (`/proc/net/dev` is the reader's namespace's;
/// the simulated host's /sys is the machine's).
fn tx_packets(h: &SimHost, iface: &str) -> u64 {
    let dev = h.ok(&["cat", "/proc/net/dev"]);
    let line = dev
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{iface}:")))
        .unwrap_or_else(|| panic!("no {iface} in {dev}"));
    // Received: bytes, packets and 6 more; then sent: bytes, packets.
    line.split_whitespace().nth(9).unwrap().parse().unwrap()
}

/// A machine with two uplinks to its peer, the main table's (MTU 1500) and one that a
/// rule takes for packets from the host's address (MTU 1400): the check looks the route
/// up from that address, as the tunnel's packets are routed, and warns of the second.
#[test]
fn underlay_the_route_is_looked_up_from_the_hosts_address_as_the_tunnels_packets_go() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let file = write_lab("mhu-ul-src", &UNDERLAY.replace("mhu-ul\n", "mhu-ul-src\n"));
    let (ha, hb) = two_hosts("198.51.100.1/24", "198.51.100.2/24");
    let out = std::process::Command::new("ip")
        .args(["link", "add", "ul1", "netns", &ha.pid(), "mtu", "1400"])
        .args(["type", "veth", "peer", "name", "ul1", "netns", &hb.pid()])
        .args(["mtu", "1400"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // Each host sends from its address over ul1; the main table still says ul0.
    for (h, own, peer) in [
        (&ha, "198.51.100.1", "198.51.100.2"),
        (&hb, "198.51.100.2", "198.51.100.1"),
    ] {
        h.ok(&["ip", "link", "set", "ul1", "up"]);
        h.ok(&["ip", "route", "add", peer, "dev", "ul1", "table", "100"]);
        h.ok(&["ip", "rule", "add", "from", own, "lookup", "100"]);
        let main = h.ok(&["ip", "route", "get", peer]);
        assert!(main.contains("dev ul0"), "{main}");
    }
    let o = ha.nslab(&["up", "--host", "ha", &file]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        words(&text(&o)).contains("warning: host `ha`: the route towards host `hb` (198.51.100.2) leaves by `ul1`, whose MTU is 1400, below the host's `mtu: 1500`; the lab's tunnels get MTU 1450 but carry 1350 bytes unfragmented"),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains("`ul0`"), "{}", text(&o));
    let o = hb.nslab(&["up", "--host", "hb", &file]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        words(&text(&o)).contains("leaves by `ul1`, whose MTU is 1400"),
        "{}",
        text(&o)
    );
    // The check named the way the tunnel's packets take: they leave by ul1.
    let before = tx_packets(&ha, "ul1");
    wait_for("r1 pinging r2 at 1300 bytes", || {
        ping(&ha, "nslab.mhu-ul-src.r1", "1300", "10.78.0.1")
            .status
            .success()
    });
    assert!(tx_packets(&ha, "ul1") > before, "nothing left by ul1");
    down_and_clean(&[&ha, &hb], "mhu-ul-src");
}

const UNDERLAY6: &str = "
name: mhu-ul6
hosts:
  ha: { address: 2001:db8:77::1 }
  hb: { address: 2001:db8:77::2 }
defaults: { isolation: [net] }
nodes:
  r1: { host: ha }
  r2: { host: hb }
links:
  - endpoints: [r1:eth1, r2:eth1]
    addresses: [10.79.0.0/31, 10.79.0.1/31]
";

/// An IPv6 underlay: the host's address found or refused, the tunnels 70 bytes under
/// the underlay (1430 over 1500, a DF ping of 1402 bytes crossing and 1403 not), and a
/// route to the peer below `mtu:` warned with what the tunnels then carry (1330).
#[test]
fn underlay_an_ipv6_underlay_is_checked_as_an_ipv4_one_with_its_own_overhead() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let file = write_lab("mhu-ul6", UNDERLAY6);
    let (ha, hb) = two_hosts("2001:db8:77::1/64", "2001:db8:77::2/64");
    let before = host_state(&ha);
    let o = ha.nslab(&["up", "--host", "hb", &file]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(
            "host `hb`'s address 2001:db8:77::2 is not an address of this machine (its addresses: "
        ),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("2001:db8:77::1 (ul0)"), "{}", text(&o));
    assert_eq!(host_state(&ha), before, "the refused `up` changed the host");
    for (h, name) in [(&ha, "ha"), (&hb, "hb")] {
        let o = h.nslab(&["up", "--host", name, &file]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(!text(&o).contains("warning"), "{}", text(&o));
    }
    wait_for("r1 pinging r2 at 1402 bytes", || {
        ping(&ha, "nslab.mhu-ul6.r1", "1402", "10.79.0.1")
            .status
            .success()
    });
    let o = ping(&ha, "nslab.mhu-ul6.r1", "1403", "10.79.0.1");
    assert!(
        text(&o).contains("message too long, mtu=1430"),
        "{}",
        text(&o)
    );
    down_and_clean(&[&ha, &hb], "mhu-ul6");
    hb.ok(&[
        "ip",
        "-6",
        "route",
        "add",
        "2001:db8:77::1/128",
        "dev",
        "ul0",
        "mtu",
        "1400",
    ]);
    let o = hb.nslab(&["up", "--host", "hb", &file]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        words(&text(&o)).contains("warning: host `hb`: the route towards host `ha` (2001:db8:77::1) leaves by `ul0`, whose route's MTU is 1400, below the host's `mtu: 1500`; the lab's tunnels get MTU 1430 but carry 1330 bytes unfragmented"),
        "{}",
        text(&o)
    );
    down_and_clean(&[&hb], "mhu-ul6");
}

/// `apply --dry-run --host` checks the machine as `apply` does: a host address the
/// machine lacks refused (exit 2), an underlay below `mtu:` warned, nothing made.
#[test]
fn underlay_apply_dry_run_checks_the_machine_as_apply_does() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let file = write_lab("mhu-ul-dry", &UNDERLAY.replace("mhu-ul\n", "mhu-ul-dry\n"));
    let (ha, _hb) = two_hosts("198.51.100.1/24", "198.51.100.2/24");
    ha.ok(&["ip", "link", "set", "ul0", "mtu", "1400"]);
    let before = host_state(&ha);
    let o = ha.nslab(&["apply", "--dry-run", "--host", "hb", &file]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("host `hb`'s address 198.51.100.2 is not an address of this machine"),
        "{}",
        text(&o)
    );
    let o = ha.nslab(&["apply", "--dry-run", "--host", "ha", &file]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        words(&text(&o)).contains(
            "warning: host `ha`: `ul0`, which holds its address 198.51.100.1, has MTU 1400"
        ),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("lab `mhu-ul-dry` is not up: `nslab apply` would bring it up"),
        "{}",
        text(&o)
    );
    assert_eq!(host_state(&ha), before, "the dry run changed the host");
}
