//! Multi-host labs on real namespaces (root): two simulated hosts on this machine, each a
//! network namespace with a private mount namespace and its own tmpfs on /run (so its
//! /run/nslab and /run/netns are its own), joined by an underlay veth. `nslab up --host`
//! runs inside each through nsenter, as it would on two machines. The nodes are net-only
//! (`isolation: [net]`): what is tested is the wiring, and a node's own mount namespace
//! needs the lab's mount template, whose bind mount the kernel refuses (EINVAL) inside
//! some of these simulated hosts' mount namespaces, for a reason not yet understood.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use support::*;

/// A simulated host: a holder process in new network and mount namespaces, with a tmpfs
/// on /run. Dropped, the holder is killed and with it everything left inside.
struct SimHost {
    holder: Child,
}

impl SimHost {
    fn new() -> SimHost {
        let mut holder = Command::new("unshare")
            .args(["--net", "--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs nslab-sim /run && ip link set lo up && echo ready && exec sleep 3600")
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare runs");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the simulated host did not start");
        SimHost { holder }
    }

    fn pid(&self) -> String {
        self.holder.id().to_string()
    }

    /// Runs `argv` inside the host's network and mount namespaces.
    fn run(&self, argv: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.pid(), "-n", "-m", "--"])
            .args(argv)
            .output()
            .expect("nsenter runs")
    }

    fn ok(&self, argv: &[&str]) -> String {
        let o = self.run(argv);
        assert!(o.status.success(), "{argv:?}: {}", text(&o));
        text(&o)
    }

    fn nslab(&self, args: &[&str]) -> Output {
        let mut argv = vec![env!("CARGO_BIN_EXE_nslab")];
        argv.extend(args);
        self.run(&argv)
    }
}

impl Drop for SimHost {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Two simulated hosts with addresses `a` and `b` on an underlay veth of MTU 1500.
fn two_hosts(a: &str, b: &str) -> (SimHost, SimHost) {
    let (ha, hb) = (SimHost::new(), SimHost::new());
    let out = Command::new("ip")
        .args(["link", "add", "ul0", "netns", &ha.pid(), "type", "veth"])
        .args(["peer", "name", "ul0", "netns", &hb.pid()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    for (h, addr) in [(&ha, a), (&hb, b)] {
        h.ok(&["ip", "addr", "add", addr, "dev", "ul0"]);
        h.ok(&["ip", "link", "set", "ul0", "up"]);
    }
    (ha, hb)
}

/// Three simulated hosts on one underlay segment: a bridge in a fourth namespace.
fn three_hosts() -> (SimHost, [SimHost; 3]) {
    let switch = SimHost::new();
    switch.ok(&["ip", "link", "add", "br0", "type", "bridge"]);
    switch.ok(&["ip", "link", "set", "br0", "up"]);
    let hosts = [SimHost::new(), SimHost::new(), SimHost::new()];
    for (i, h) in hosts.iter().enumerate() {
        let port = format!("p{i}");
        let out = Command::new("ip")
            .args(["link", "add", "ul0", "netns", &h.pid(), "type", "veth"])
            .args(["peer", "name", &port, "netns", &switch.pid()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        switch.ok(&["ip", "link", "set", &port, "master", "br0", "up"]);
        h.ok(&[
            "ip",
            "addr",
            "add",
            &format!("198.51.100.{}/24", i + 1),
            "dev",
            "ul0",
        ]);
        h.ok(&["ip", "link", "set", "ul0", "up"]);
    }
    (switch, hosts)
}

const CHAIN: &str = "
name: mhu-chain
hosts:
  ha: { address: 198.51.100.1 }
  hb: { address: 198.51.100.2 }
routing: static
defaults: { isolation: [net] }
nodes:
  r1: { host: ha, loopback: 10.0.0.1/32 }
  r2: { host: hb, loopback: 10.0.0.2/32 }
links:
  - endpoints: [r1:eth1, r2:eth1]
    addresses: [10.77.0.0/31, 10.77.0.1/31]
";

fn ping(h: &SimHost, netns: &str, size: &str, to: &str) -> Output {
    h.run(&[
        "ip", "netns", "exec", netns, "ping", "-n", "-c1", "-W1", "-M", "do", "-s", size, to,
    ])
}

#[test]
fn a_routed_chain_across_two_hosts_pings_at_the_vxlan_mtu_and_goes_away() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let dir = std::env::temp_dir().join("nslab-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mhu-chain.yaml");
    std::fs::write(&file, CHAIN).unwrap();
    let file = file.to_str().unwrap();
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
        text(&o).contains("r2           remote    node r2 lives on host hb (198.51.100.2)"),
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

/// `down` on every host, then nothing of the lab is left on any: no state, no namespace,
/// no VXLAN device and no UDP socket (deleted before the namespaces, so at once).
fn down_and_clean(hosts: &[&SimHost], lab: &str) {
    for h in hosts {
        let o = h.nslab(&["down", lab]);
        assert!(o.status.success(), "{}", text(&o));
        let left = h.ok(&[
            "sh",
            "-c",
            "ls -A /run/nslab; ls -A /run/netns 2>/dev/null; ip -o link show type vxlan; ss -Huan",
        ]);
        assert_eq!(left, "", "left on the simulated host");
    }
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
    let dir = std::env::temp_dir().join("nslab-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mhu-lan.yaml");
    std::fs::write(&file, LAN).unwrap();
    let file = file.to_str().unwrap();
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
    let dir = std::env::temp_dir().join("nslab-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mhu-lan3.yaml");
    std::fs::write(&file, LAN3).unwrap();
    let file = file.to_str().unwrap();
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
