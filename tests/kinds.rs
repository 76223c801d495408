//! Nodes' own interfaces on a real kernel: a macvlan on a host interface passing real
//! packets to the network behind it, and dummies and vlans, which this kernel may lack:
//! nslab's own probe says which, and each test asserts the interface works where the
//! kernel has its module and the exact error (with nothing left behind) where it has not.

mod support;

use std::process::{Child, Command, Stdio};

use nslab::apply::devices::kernel_kinds;
use support::{Lab, assert_same_host, host_snapshot, nslab, privileged, text};

fn run(argv: &[&str]) {
    let o = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    assert!(o.status.success(), "{argv:?}: {}", text(&o));
}

/// The test's own network: a veth pair on the host, `nsltmv1` moved into a namespace
/// held by a sleeping process, addressed; removed (with the process) when dropped.
struct Network {
    holder: Child,
}

impl Network {
    fn new() -> Network {
        let _ = Command::new("ip").args(["link", "del", "nsltmv0"]).output();
        let holder = Command::new("unshare")
            .args(["--net", "sleep", "infinity"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let net = Network { holder };
        let pid = net.holder.id().to_string();
        // The namespace exists once unshare has exec'd sleep.
        while std::fs::read_link(format!("/proc/{pid}/exe"))
            .is_ok_and(|e| !e.to_string_lossy().contains("sleep"))
        {
            std::thread::yield_now();
        }
        run(&[
            "ip", "link", "add", "nsltmv0", "type", "veth", "peer", "name", "nsltmv1",
        ]);
        run(&["ip", "link", "set", "nsltmv1", "netns", &pid]);
        run(&["ip", "link", "set", "nsltmv0", "up"]);
        net.in_ns(&["ip", "addr", "add", "192.0.2.99/24", "dev", "nsltmv1"]);
        net.in_ns(&["ip", "link", "set", "nsltmv1", "up"]);
        // A network behind the gateway, for a route through the macvlan.
        net.in_ns(&["ip", "addr", "add", "198.51.100.1/32", "dev", "lo"]);
        net.in_ns(&["ip", "link", "set", "lo", "up"]);
        net
    }

    fn in_ns(&self, argv: &[&str]) -> std::process::Output {
        Command::new("nsenter")
            .args(["-t", &self.holder.id().to_string(), "-n"])
            .args(argv)
            .output()
            .unwrap()
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", "nsltmv0"]).output();
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

#[test]
fn a_macvlan_on_a_host_interface_reaches_the_network_behind_it() {
    if !privileged() {
        return;
    }
    let _g = support::exclusive();
    let before = host_snapshot();
    {
        let net = Network::new();
        let lab = Lab::new(
            "kmv",
            "nodes:\n  m1:\n    routes: [{ to: 198.51.100.0/24, via: 192.0.2.99 }]\nlinks:\n  - endpoints: [m1:eth1, { macvlan: nsltmv0, mode: bridge }]\n    addresses: [192.0.2.10/24, ~]\n",
        );
        lab.up();
        let o = lab.exec("m1", &["ip", "-d", "link", "show", "eth1"]);
        assert!(text(&o).contains("macvlan mode bridge"), "{}", text(&o));
        // `status` reads the node's interfaces from the kernel: the macvlan is there.
        let o = nslab().args(["status", "kmv", "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status JSON");
        let eth1 = v["nodes"][0]["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == "eth1")
            .unwrap_or_else(|| panic!("no eth1 in {v}"))
            .clone();
        assert_eq!(eth1["kind"], "macvlan", "{eth1}");
        assert_eq!(eth1["addresses"][0], "192.0.2.10/24", "{eth1}");
        let o = lab.exec("m1", &["ping", "-c", "1", "-W", "5", "192.0.2.99"]);
        assert!(o.status.success(), "m1 -> 192.0.2.99: {}", text(&o));
        let o = lab.exec("m1", &["ping", "-c", "1", "-W", "5", "198.51.100.1"]);
        assert!(o.status.success(), "m1 -> behind the gateway: {}", text(&o));
        let o = net.in_ns(&["ping", "-c", "1", "-W", "5", "192.0.2.10"]);
        assert!(o.status.success(), "network -> m1: {}", text(&o));
        // nslab never touched the parent: it is still up, with no address of nslab's.
        let o = Command::new("ip")
            .args(["-o", "addr", "show", "nsltmv0"])
            .output()
            .unwrap();
        assert!(!text(&o).contains("192.0.2."), "{}", text(&o));
        lab.down();
        let o = Command::new("ip")
            .args(["-o", "link", "show", "type", "macvlan"])
            .output()
            .unwrap();
        assert!(
            !text(&o).contains("eth1"),
            "a macvlan is left: {}",
            text(&o)
        );
    }
    assert_same_host(&before, &host_snapshot(), "macvlan lab and its network");
}

#[test]
fn a_macvlan_on_a_missing_host_interface_names_it_and_the_ones_there_are() {
    if !privileged() {
        return;
    }
    let _g = support::exclusive();
    let before = host_snapshot();
    let lab = Lab::new(
        "kmvgone",
        "nodes:\n  m1: {}\nlinks:\n  - [m1:eth1, { macvlan: nsltnone0 }]\n",
    );
    lab.up_fails(&[
        "the host has no interface `nsltnone0`",
        "its interfaces are: ",
        "lo",
    ]);
    drop(lab);
    assert_same_host(&before, &host_snapshot(), "failed macvlan lab");
}

/// `kind`'s lab comes up where the kernel has the module, and otherwise fails before it
/// makes anything, naming the module and the config option.
fn kind_works_or_is_named(has: Option<bool>, lab: Lab, missing: &[&str], works: impl FnOnce(&Lab)) {
    let has = has.expect("nslab's probe runs as root");
    let before = host_snapshot();
    if has {
        lab.up();
        works(&lab);
        lab.down();
    } else {
        lab.up_fails(missing);
    }
    drop(lab);
    assert_same_host(&before, &host_snapshot(), "dummy/vlan lab");
}

#[test]
fn a_dummy_is_reached_through_its_node_where_the_kernel_has_the_module() {
    if !privileged() {
        return;
    }
    let _g = support::exclusive();
    let lab = Lab::new(
        "kdummy",
        "routing: static\nnodes:\n  r1:\n    interfaces:\n      lo1: { kind: dummy, addresses: [10.255.0.1/32] }\n  r2: {}\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n    addresses: [10.0.0.0/31, 10.0.0.1/31]\n",
    );
    let missing = [
        "node `r1`: create dummy lo1 failed: this kernel has no `dummy` link type",
        "`modprobe dummy`",
        "CONFIG_DUMMY",
    ];
    kind_works_or_is_named(kernel_kinds().dummy, lab, &missing, |lab| {
        let o = lab.exec("r1", &["ip", "-o", "addr", "show", "dev", "lo1"]);
        assert!(text(&o).contains("10.255.0.1/32"), "{}", text(&o));
        let o = lab.exec("r2", &["ping", "-c", "1", "-W", "5", "10.255.0.1"]);
        assert!(o.status.success(), "r2 -> r1's dummy: {}", text(&o));
    });
}

#[test]
fn a_vlan_carries_tagged_frames_where_the_kernel_has_the_module() {
    if !privileged() {
        return;
    }
    let _g = support::exclusive();
    let lab = Lab::new(
        "kvlan",
        "nodes:\n  r1:\n    interfaces:\n      eth1.100: { kind: vlan, parent: eth1, id: 100, addresses: [10.100.0.1/24] }\n  r2:\n    interfaces:\n      v100: { kind: vlan, parent: eth1, id: 100, addresses: [10.100.0.2/24] }\nlinks:\n  - [r1:eth1, r2:eth1]\n",
    );
    let missing = [
        "node `r1`: create vlan eth1.100 (id 100 on eth1) failed: this kernel has no `vlan` link type",
        "`modprobe 8021q`",
        "CONFIG_VLAN_8021Q",
    ];
    kind_works_or_is_named(kernel_kinds().vlan, lab, &missing, |lab| {
        let o = lab.exec("r1", &["ip", "-d", "link", "show", "eth1.100"]);
        assert!(
            text(&o).contains("vlan protocol 802.1Q id 100"),
            "{}",
            text(&o)
        );
        let o = lab.exec("r1", &["ping", "-c", "1", "-W", "5", "10.100.0.2"]);
        assert!(o.status.success(), "r1 -> r2 on vlan 100: {}", text(&o));
    });
}
