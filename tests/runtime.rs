//! Operations on a running lab, as root: links down and up (both ends, one end, bridge
//! ports), impairments (a rate that caps a real transfer, the missing-netem error), node
//! stop/start/restart with links kept, packet capture read back as pcap, and the event log.
//! Each test uses its own lab name.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Instant;

use support::*;

fn run(args: &[&str]) -> std::process::Output {
    nslab().args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "nslab {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `nslab status --json`: (admin up, carrier) of one interface.
fn iface_state(lab: &str, node: &str, iface: &str) -> (bool, bool) {
    let o = run(&["status", "--json", lab]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let n = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == node)
        .unwrap();
    let l = n["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == iface)
        .unwrap_or_else(|| panic!("{node} has no {iface}: {n}"));
    (l["up"] == true, l["lower_up"] == true)
}

fn events(lab: &str) -> Vec<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(&ok(&["events", "--json", lab])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["target"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn links_go_down_and_up_on_both_ends_one_end_and_bridge_ports() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "it-link",
        "nodes: { a: {}, b: {}, c: {} }\nbridges: { br0: {} }\nlinks:\n  - [a:eth0, b:eth0]\n  - [a:eth1, br0]\n  - [c:eth0, br0]\n",
    );
    lab.up();
    assert!(lab.ping("a", "b") && lab.ping("a", "c"));

    // Both ends: the far end goes administratively down too.
    let said = ok(&["link", "down", "--lab", "it-link", "a:eth0"]);
    assert!(
        said.contains("link-down") && said.contains("b:eth0"),
        "{said}"
    );
    assert_eq!(iface_state("it-link", "a", "eth0"), (false, false));
    assert_eq!(iface_state("it-link", "b", "eth0"), (false, false));
    assert!(!lab.ping("a", "b"));
    ok(&["link", "up", "--lab", "it-link", "a:eth0"]);
    wait_for("a to reach b again", || lab.ping("a", "b"));

    // One end: b's side stays up but loses its carrier, as when a cable is cut far away.
    ok(&["link", "down", "--one-side", "--lab", "it-link", "a:eth0"]);
    assert_eq!(iface_state("it-link", "a", "eth0"), (false, false));
    assert_eq!(iface_state("it-link", "b", "eth0"), (true, false));
    assert!(!lab.ping("b", "a"));
    ok(&["link", "up", "--one-side", "--lab", "it-link", "a:eth0"]);
    wait_for("b to reach a again", || lab.ping("b", "a"));

    // A bridge port: the node's end and its port in the fabric.
    ok(&["link", "down", "--lab", "it-link", "c:eth0"]);
    assert!(!lab.ping("a", "c"));
    assert!(lab.ping("a", "b"), "other links are untouched");
    ok(&["link", "up", "--lab", "it-link", "c:eth0"]);
    wait_for("a to reach c again", || lab.ping("a", "c"));

    // Names that are not there are usage errors (exit 3) that list what is there.
    let o = run(&["link", "down", "--lab", "it-link", "z:eth0"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("no node `z`; its nodes are: a, b, c"),
        "{}",
        text(&o)
    );
    let o = run(&["link", "down", "--lab", "it-link", "a:eth9"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("has: eth0, eth1"), "{}", text(&o));
    let o = run(&["link", "down", "--lab", "it-link", "a"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("NODE:IFACE"), "{}", text(&o));

    // The event log holds every change, in order, with times.
    let want: Vec<(String, String)> = [
        ("link-down", "a:eth0"),
        ("link-up", "a:eth0"),
        ("link-down", "a:eth0"),
        ("link-up", "a:eth0"),
        ("link-down", "c:eth0"),
        ("link-up", "c:eth0"),
    ]
    .iter()
    .map(|(a, t)| (a.to_string(), t.to_string()))
    .collect();
    assert_eq!(events("it-link"), want);
    let listed = ok(&["events", "it-link"]);
    let first = listed.lines().next().unwrap();
    assert!(
        first.starts_with("20") && first.contains('T') && first.contains("Z  link-down"),
        "{listed}"
    );
    lab.down();
    assert!(
        !std::path::Path::new("/run/nslab/it-link.events").exists(),
        "the event log goes with the lab"
    );
}

/// (admin up, carrier) of a bridge's port in the lab's fabric namespace.
fn port_state(lab: &Lab, bridge: &str, node: &str) -> (bool, bool) {
    let t = lab.topology();
    let n = t.nodes.iter().position(|n| n.name == node).unwrap();
    let b = t.bridges.iter().find(|b| b.name == bridge).unwrap();
    let port = &b.ports.iter().find(|p| p.node == n).unwrap().name;
    let fabric = t.fabric_netns().unwrap();
    let dump = nslab::runtime::dump_lab(&nslab::state::HostContext::from_env(), &t.lab).unwrap();
    let ns = dump.iter().find(|ns| ns.netns == fabric).unwrap();
    let l = ns.links.iter().find(|l| &l.name == port).unwrap();
    (l.up, l.lower_up)
}

/// `BRIDGE:NODE` sets the switch's port to the node down alone, as a switch port going
/// down: the node's interface stays administratively up and loses its carrier, traffic
/// across the bridge stops, and comes back with the port.
#[test]
fn a_bridge_port_goes_down_alone_and_the_node_end_stays_up() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "it-bport",
        "nodes: { a: {}, b: {}, c: {} }\nbridges: { s1: {} }\nlinks:\n  - [a:eth0, s1]\n  - [b:eth0, s1]\n  - [c:eth0, s1]\n",
    );
    lab.up();
    assert!(lab.ping("a", "b") && lab.ping("a", "c"));
    assert_eq!(port_state(&lab, "s1", "b"), (true, true));

    let said = ok(&["link", "down", "--lab", "it-bport", "s1:b"]);
    assert!(
        said.contains("bridge s1 port") && said.contains("b:eth0"),
        "{said}"
    );
    assert_eq!(port_state(&lab, "s1", "b"), (false, false));
    assert_eq!(iface_state("it-bport", "b", "eth0"), (true, false));
    assert_eq!(port_state(&lab, "s1", "a"), (true, true));
    assert!(!lab.ping("a", "b") && !lab.ping("b", "c"));
    assert!(lab.ping("a", "c"), "the other ports forward");

    ok(&["link", "up", "--lab", "it-bport", "s1:b"]);
    assert_eq!(port_state(&lab, "s1", "b"), (true, true));
    wait_for("a to reach b again", || lab.ping("a", "b"));
    assert_eq!(iface_state("it-bport", "b", "eth0"), (true, true));

    // A node not on the bridge gets the nodes that are.
    let o = run(&["link", "down", "--lab", "it-bport", "s1:z"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("bridge `s1` has no port to `z`") && text(&o).contains("are: a, b, c"),
        "{}",
        text(&o)
    );
    let want: Vec<(String, String)> = [("link-down", "s1:b"), ("link-up", "s1:b")]
        .iter()
        .map(|(a, t)| (a.to_string(), t.to_string()))
        .collect();
    assert_eq!(events("it-bport"), want);
    lab.down();
}

/// The scenario step `link_down: s1:b` sets the switch port to b down alone, as the
/// command does: b is cut off, a and c still reach each other, and `link_up` restores it.
#[test]
fn a_scenario_step_sets_a_bridge_port_down_and_up() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "it-bstep",
        "nodes: { a: {}, b: {}, c: {} }\nbridges: { s1: {} }\nlinks:\n  - [a:eth0, s1]\n  - [b:eth0, s1]\n  - [c:eth0, s1]\ntests:\n  - reach: { from: a, to: b }\n  - link_down: s1:b\n  - reach: { from: a, to: b, expect: fail, timeout: 2s, name: cut }\n  - reach: { from: a, to: c, name: others }\n  - link_up: s1:b\n  - reach: { from: a, to: b, name: restored }\n",
    );
    let o = nslab()
        .args(["test", "--json"])
        .arg(&lab.file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let got: Vec<(&str, &str)> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("1: reach a -> b", "pass"),
            ("2: link_down s1:b", "pass"),
            ("cut", "pass"),
            ("others", "pass"),
            ("5: link_up s1:b", "pass"),
            ("restored", "pass"),
        ]
    );
    assert!(!lab.is_up(), "nslab test takes the lab down");
}

/// Seconds to send `bytes` from `from` to `to` over TCP, until `to` has counted them all
/// (the sink answers with its count after EOF, so the socket buffers cannot hide the time).
fn transfer(lab: &Lab, from: &str, to: &str, bytes: u64) -> f64 {
    let script =
        format!("head -c {bytes} /dev/zero | socat -t 30 - TCP:{to}:7001,connect-timeout=5");
    let start = Instant::now();
    let o = lab.exec(from, &["sh", "-c", &script]);
    let took = start.elapsed().as_secs_f64();
    assert!(o.status.success(), "transfer failed: {}", text(&o));
    let counted = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert_eq!(counted, bytes.to_string(), "{}", text(&o));
    took
}

#[test]
fn a_rate_limit_caps_a_transfer_and_delay_names_the_missing_netem() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "it-rate",
        r#"
nodes:
  a: {}
  b:
    processes:
      - { name: sink, cmd: "socat TCP-LISTEN:7001,fork,reuseaddr SYSTEM:'wc -c'", ready: { tcp: 7001 } }
links:
  - [a:eth0, b:eth0]
"#,
    );
    lab.up();
    const BYTES: u64 = 1_000_000;
    let free = transfer(&lab, "a", "b", BYTES);
    let said = ok(&[
        "link", "impair", "--lab", "it-rate", "a:eth0", "--rate", "8mbit",
    ]);
    assert!(said.contains("rate 8mbit"), "{said}");
    // 1 MB at 8 Mbit/s is 1 s on the wire; the token bucket's 32 KB burst saves 0.03 s.
    let capped = transfer(&lab, "a", "b", BYTES);
    assert!(
        capped >= 0.9,
        "1 MB at 8mbit took {capped:.3} s (unimpaired {free:.3} s)"
    );

    // This kernel has no netem: the error names it, and the rate limit stays in place.
    let o = run(&[
        "link", "impair", "--lab", "it-rate", "a:eth0", "--delay", "20ms",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("no `netem` qdisc") && t.contains("sch_netem") && t.contains("node `a`"),
        "{t}"
    );
    let qdisc = Command::new("tc")
        .args(["-n", "nslab.it-rate.a", "qdisc", "show", "dev", "eth0"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&qdisc.stdout).contains("tbf"),
        "the refused impairment removed the rate limit: {}",
        text(&qdisc)
    );
    let o = run(&[
        "link", "impair", "--lab", "it-rate", "a:eth0", "--jitter", "5ms",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("needs a --delay"), "{}", text(&o));

    ok(&["link", "impair", "--lab", "it-rate", "a:eth0", "--clear"]);
    let cleared = transfer(&lab, "a", "b", BYTES);
    assert!(
        cleared < capped,
        "cleared {cleared:.3} s is not faster than capped {capped:.3} s"
    );
    eprintln!("1 MB: unimpaired {free:.3} s, at 8mbit {capped:.3} s, cleared {cleared:.3} s");
    let acts: Vec<String> = events("it-rate").into_iter().map(|e| e.0).collect();
    assert_eq!(
        acts,
        ["impair", "impair-clear"],
        "refused changes are not recorded"
    );
    lab.down();
}

#[test]
fn a_stopped_node_keeps_its_links_and_comes_back_ready() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "it-node",
        r#"
nodes:
  a:
    processes:
      - { name: web, cmd: "socat TCP-LISTEN:7002,fork,reuseaddr SYSTEM:'echo hi'", ready: { tcp: 7002 } }
      - { name: after, cmd: "sleep 1000", depends_on: [web] }
    exec: ["sh -c 'echo configured >> /run/exec.log'"]
  b: {}
links:
  - [a:eth0, b:eth0]
"#,
    );
    lab.up();
    let exec_runs = || {
        let o = lab.exec("a", &["cat", "/run/exec.log"]);
        String::from_utf8_lossy(&o.stdout).lines().count()
    };
    assert_eq!(exec_runs(), 1);
    let fetch = || {
        let o = lab.exec(
            "b",
            &[
                "sh",
                "-c",
                "socat -u TCP:a:7002,connect-timeout=2 - </dev/null",
            ],
        );
        String::from_utf8_lossy(&o.stdout).trim() == "hi"
    };
    assert!(fetch());
    let ps = || -> serde_json::Value {
        serde_json::from_str(&ok(&["ps", "--json", "--lab", "it-node", "a"])).unwrap()
    };
    let pid_before = ps()[0]["processes"][0]["pid"].clone();

    let said = ok(&["node", "stop", "--lab", "it-node", "a"]);
    assert!(
        said.contains("node-stop") && said.contains("2 process(es)"),
        "{said}"
    );
    let procs = ps();
    for p in procs[0]["processes"].as_array().unwrap() {
        assert!(p["pid"].is_null(), "still running after stop: {p}");
    }
    // The namespaces and links stay: b's interface keeps its carrier and a still answers
    // pings (the kernel does), but the service is gone.
    assert_eq!(iface_state("it-node", "b", "eth0"), (true, true));
    assert!(lab.ping("b", "a"));
    assert!(!fetch(), "the service still answers after `node stop`");

    let said = ok(&["node", "start", "--lab", "it-node", "a"]);
    assert!(said.contains("node-start"), "{said}");
    let procs = ps();
    assert_eq!(procs[0]["processes"][0]["ready"], true, "{procs}");
    assert_ne!(procs[0]["processes"][0]["pid"], pid_before);
    assert!(fetch());

    // The node's exec commands ran again after its processes, as at `up`.
    assert_eq!(exec_runs(), 2, "exec commands re-run at start");

    let said = ok(&["node", "restart", "--lab", "it-node", "a"]);
    assert!(
        said.contains("node-stop") && said.contains("node-start"),
        "{said}"
    );
    assert!(fetch());
    assert_eq!(exec_runs(), 3);

    // A crashed process with no restart policy: `node start` brings it back (and leaves
    // the running one alone).
    let after = |v: &serde_json::Value| v[0]["processes"][1].clone();
    let pid = after(&ps())["pid"].as_i64().unwrap();
    assert!(
        lab.exec("a", &["kill", "-9", &pid.to_string()])
            .status
            .success()
    );
    wait_for("`after` to be seen dead", || {
        after(&ps())["state"] == "exited"
    });
    let web_pid = ps()[0]["processes"][0]["pid"].clone();
    let said = ok(&["node", "start", "--lab", "it-node", "a"]);
    assert!(said.contains("1 process(es) started"), "{said}");
    assert_eq!(after(&ps())["state"], "running");
    assert_eq!(ps()[0]["processes"][0]["pid"], web_pid, "web was restarted");
    // On a node where everything runs, `start` does nothing (exec commands included).
    let runs = exec_runs();
    let said = ok(&["node", "start", "--lab", "it-node", "a"]);
    assert!(said.contains("already running"), "{said}");
    assert_eq!(exec_runs(), runs);
    let o = run(&["node", "stop", "--lab", "it-node", "nope"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));

    let acts: Vec<String> = events("it-node").into_iter().map(|e| e.0).collect();
    assert_eq!(
        acts,
        [
            "node-stop",
            "node-start",
            "node-stop",
            "node-start",
            "node-start",
            "node-start"
        ]
    );
    lab.down();
}

/// (ethertype, IP protocol, ICMP type) of every frame in a pcap (Ethernet, µs, LE).
fn icmp_types(pcap: &[u8]) -> Vec<u8> {
    assert!(pcap.len() >= 24, "no pcap header");
    assert_eq!(&pcap[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "pcap magic");
    assert_eq!(
        u32::from_le_bytes(pcap[20..24].try_into().unwrap()),
        1,
        "Ethernet"
    );
    let mut types = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let caplen = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &pcap[at + 16..(at + 16 + caplen).min(pcap.len())];
        at += 16 + caplen;
        // IPv4 (0x0800), protocol 1 (ICMP), header length from IHL.
        if frame.len() > 34 && frame[12..14] == [0x08, 0x00] && frame[23] == 1 {
            let ihl = usize::from(frame[14] & 0x0f) * 4;
            types.push(frame[14 + ihl]);
        }
    }
    assert_eq!(at, pcap.len(), "records run to the end of the file");
    types
}

/// Captures `target` of lab it-cap to stdout for `duration` while `during` runs; the
/// capture must end by itself, successfully.
fn capture_while(target: &str, duration: &str, during: impl FnOnce()) -> Vec<u8> {
    let mut child = start_capture(&[
        "capture",
        "--lab",
        "it-cap",
        target,
        "-w",
        "-",
        "--duration",
        duration,
    ]);
    during();
    let mut stream = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stream)
        .unwrap();
    assert!(
        wait_or_kill(child).unwrap().success(),
        "the capture on {target} failed"
    );
    stream
}

/// Starts a capture and waits until its socket is open (it says so on stderr).
fn start_capture(args: &[&str]) -> std::process::Child {
    let mut child = nslab()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("capturing on"), "{line}");
    child
}

#[test]
fn a_capture_during_a_ping_holds_echo_requests_and_replies() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "it-cap",
        "nodes: { a: {}, b: {} }\nlinks:\n  - [a:eth0, b:eth0]\n",
    );
    lab.up();
    let dir = std::env::temp_dir().join("nslab-tests");
    let file = dir.join("it-cap.pcap");
    let file_s = file.to_str().unwrap();

    // To a file, stopped by a count: the ping's two requests and two replies.
    let mut child = start_capture(&[
        "capture", "--lab", "it-cap", "b:eth0", "-w", file_s, "-c", "12",
    ]);
    // Ping until the capture has its twelve packets (ARP may take some of them).
    let mut status = None;
    for _ in 0..20 {
        lab.exec("a", &["ping", "-c2", "-i0.2", "b"]);
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
    }
    let status = match status {
        Some(s) => s,
        None => wait_or_kill(child).unwrap(),
    };
    assert!(status.success());
    let pcap = std::fs::read(&file).unwrap();
    let types = icmp_types(&pcap);
    assert!(
        types.contains(&8) && types.contains(&0),
        "ICMP types {types:?}"
    );

    // tcpdump reads the file.
    let td = Command::new("tcpdump")
        .args(["-n", "-r", file_s])
        .output()
        .expect("tcpdump is installed (.ci/run installs it)");
    assert!(td.status.success(), "{}", text(&td));
    let shown = String::from_utf8_lossy(&td.stdout);
    assert!(
        shown.contains("ICMP echo request") && shown.contains("ICMP echo reply"),
        "{shown}"
    );

    // To stdout, stopped by a duration: a pcap stream a pipe reader can parse.
    let stream = capture_while("a:eth0", "1500ms", || {
        lab.exec("a", &["ping", "-c3", "-i0.2", "b"]);
    });
    let types = icmp_types(&stream);
    assert_eq!(types.iter().filter(|t| **t == 8).count(), 3, "{types:?}");
    assert_eq!(types.iter().filter(|t| **t == 0).count(), 3, "{types:?}");

    // Loopback: each packet once, not once leaving and once arriving.
    let stream = capture_while("a:lo", "1500ms", || {
        lab.exec("a", &["ping", "-c2", "-i0.2", "127.0.0.1"]);
    });
    let types = icmp_types(&stream);
    assert_eq!(types, [8, 0, 8, 0], "lo: {types:?}");

    // The link goes down and up under a running capture: it carries on.
    let stream = capture_while("b:eth0", "3s", || {
        ok(&["link", "down", "--lab", "it-cap", "a:eth0"]);
        ok(&["link", "up", "--lab", "it-cap", "a:eth0"]);
        wait_for("the link to carry pings again", || lab.ping("a", "b"));
    });
    let types = icmp_types(&stream);
    assert!(types.contains(&8) && types.contains(&0), "{types:?}");

    let acts: Vec<(String, String)> = events("it-cap")
        .into_iter()
        .filter(|e| e.0 == "capture")
        .collect();
    assert_eq!(
        acts,
        [
            ("capture".to_string(), "b:eth0".to_string()),
            ("capture".to_string(), "a:eth0".to_string()),
            ("capture".to_string(), "a:lo".to_string()),
            ("capture".to_string(), "b:eth0".to_string())
        ]
    );
    let _ = std::fs::remove_file(&file);
    lab.down();
}

const SCENARIO: &str = r#"
nodes:
  a: {}
  b:
    processes:
      - { name: web, cmd: "socat TCP-LISTEN:7003,fork,reuseaddr SYSTEM:'echo hi'", ready: { tcp: 7003 } }
links:
  - [a:eth0, b:eth0]
tests:
  - reach: { from: a, to: b }
  - link_down: a:eth0
  - reach: { from: a, to: b, expect: fail, timeout: 2s, name: cut }
  - link_up: a:eth0
  - reach: { from: a, to: b, name: restored }
  - impair: { link: b:eth0, rate: 10mbit, name: slow-b }
  - impair: { link: b:eth0, clear: true }
  - node_stop: b
  - tcp: { from: a, to: "b:7003", expect: fail, timeout: 2s, name: service-gone }
  - reach: { from: a, to: b, name: but-b-answers-pings }
  - node_start: b
  - tcp: { from: a, to: "b:7003", name: service-back }
  - node_restart: b
  - tcp: { from: a, to: "b:7003", name: service-after-restart }
  - sleep: 100ms
  - impair: { link: a:eth0, delay: 10ms, name: needs-netem }
  - reach: { from: a, to: b, name: after-the-failed-step }
"#;

#[test]
fn scenario_steps_run_in_order_between_checks_and_a_failed_step_stops_the_run() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new("it-steps", SCENARIO);
    let o = nslab()
        .args(["test", "--json", "--keep"])
        .arg(&lab.file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let results = v["checks"].as_array().unwrap();
    let status: Vec<(&str, &str, &str)> = results
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap(),
                r["kind"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        status,
        [
            ("1: reach a -> b", "reach", "pass"),
            ("2: link_down a:eth0", "step", "pass"),
            ("cut", "reach", "pass"),
            ("4: link_up a:eth0", "step", "pass"),
            ("restored", "reach", "pass"),
            ("slow-b", "step", "pass"),
            ("7: impair b:eth0 clear", "step", "pass"),
            ("8: node_stop b", "step", "pass"),
            ("service-gone", "tcp", "pass"),
            ("but-b-answers-pings", "reach", "pass"),
            ("11: node_start b", "step", "pass"),
            ("service-back", "tcp", "pass"),
            ("13: node_restart b", "step", "pass"),
            ("service-after-restart", "tcp", "pass"),
            ("15: sleep 100ms", "step", "pass"),
            ("needs-netem", "step", "fail"),
            ("after-the-failed-step", "reach", "skipped"),
        ]
    );
    let why = results[15]["reason"].as_str().unwrap();
    assert!(why.contains("sch_netem"), "{why}");
    let skipped = results[16]["reason"].as_str().unwrap();
    assert!(
        skipped.contains("the step `needs-netem` failed"),
        "{skipped}"
    );
    // The steps are in the event log, like the same commands typed by hand.
    let acts: Vec<String> = events("it-steps").into_iter().map(|e| e.0).collect();
    assert_eq!(
        acts,
        [
            "link-down",
            "link-up",
            "impair",
            "impair-clear",
            "node-stop",
            "node-start",
            "node-stop",
            "node-start"
        ]
    );
    lab.down();
}

#[test]
fn a_link_flap_brings_back_addresses_and_static_routes_on_both_families() {
    if !privileged() {
        return;
    }
    let _h = shared();
    // Setting an interface down drops its routes and (by default) its IPv6 addresses;
    // `link up` must bring the lab's own back, or static labs stay broken after a flap.
    let lab = Lab::new(
        "it-flap",
        r#"
addressing:
  ipv6: fd00:f1::/48
routing: static
nodes:
  a: { loopback: auto }
  b: { loopback: auto }
  c: { loopback: [10.0.0.3/32, 'fd00:f1::3/128'] }
links:
  - [a:eth1, b:eth1]
  - [b:eth2, c:eth1]
tests:
  - reach: { from: a, to: c, family: both }
  - route: { node: a, to: 10.0.0.3/32, via: b }
"#,
    );
    lab.up();
    let check = || nslab().args(["test", "--lab", "it-flap"]).output().unwrap();
    let o = check();
    assert!(o.status.success(), "{}", text(&o));
    for (target, one_side) in [("b:eth1", false), ("a:eth1", true), ("c:eth1", false)] {
        let mut args = vec!["link", "down", "--lab", "it-flap", target];
        if one_side {
            args.push("--one-side");
        }
        ok(&args);
        args[1] = "up";
        ok(&args);
        let o = check();
        assert!(o.status.success(), "after flapping {target}: {}", text(&o));
    }
    lab.down();
}

/// The frames of a pcap (Ethernet, µs, little-endian), in order.
fn pcap_frames(pcap: &[u8]) -> Vec<Vec<u8>> {
    assert!(
        pcap.len() >= 24 && pcap[..4] == [0xd4, 0xc3, 0xb2, 0xa1],
        "a pcap header"
    );
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let caplen = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        frames.push(pcap[at + 16..at + 16 + caplen].to_vec());
        at += 16 + caplen;
    }
    assert_eq!(at, pcap.len(), "records run to the end of the file");
    frames
}

/// (IP version, protocol, source, destination, source port, destination port).
type Seen = (u8, u8, String, String, u16, u16);

/// What the test itself reads of a frame, independently of nslab's filter; IPv6 without
/// extension headers, which is all this lab sends to the ports tested.
fn ip_of(f: &[u8]) -> Option<Seen> {
    let port = |b: &[u8], at: usize| b.get(at..at + 2).map(|p| u16::from_be_bytes([p[0], p[1]]));
    let (v, proto, src, dst, l4) = match f.get(12..14)? {
        [0x08, 0x00] => {
            let ihl = usize::from(f.get(14)? & 0x0f) * 4;
            let a = |o: usize| std::net::Ipv4Addr::new(f[o], f[o + 1], f[o + 2], f[o + 3]);
            (
                4,
                *f.get(23)?,
                a(26).to_string(),
                a(30).to_string(),
                14 + ihl,
            )
        }
        [0x86, 0xdd] => {
            let a =
                |o: usize| std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&f[o..o + 16]).unwrap());
            (6, *f.get(20)?, a(22).to_string(), a(38).to_string(), 54)
        }
        _ => return None,
    };
    let (sp, dp) = match proto {
        6 | 17 => (port(f, l4)?, port(f, l4 + 2)?),
        _ => (0, 0),
    };
    Some((v, proto, src, dst, sp, dp))
}

/// Sends SIGTERM to a capture we started (it ends cleanly on it) and returns its stream.
fn stop_capture(mut child: std::process::Child) -> Vec<u8> {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut stream = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stream)
        .unwrap();
    assert!(wait_or_kill(child).unwrap().success(), "a capture failed");
    stream
}

#[test]
fn a_filtered_capture_keeps_exactly_the_matching_frames() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "it-capf",
        "addressing: { ipv6: fd00:1ab::/48 }\nnodes:\n  a: {}\n  b:\n    processes:\n      - { name: web, cmd: \"socat TCP-LISTEN:7003,fork,reuseaddr SYSTEM:'echo hi'\", ready: { tcp: 7003 } }\nlinks:\n  - [a:eth0, b:eth0]\n",
    );
    lab.up();
    let (a4, b4) = (lab.addr("a", "eth0", false), lab.addr("b", "eth0", false));
    let b6 = lab.addr("b", "eth0", true);
    let src_a = format!("icmp and src host {a4}");
    // Everything first (and stopped last), so its window holds every filtered one's.
    let filters: [&[&str]; 5] = [
        &[],
        // pcap groups `or` and `and` left to right: (icmp or udp) and dst port 7001, so
        // no ICMP (it has no ports), only the UDP datagrams to 7001.
        &["icmp", "or", "udp", "and", "dst", "port", "7001"],
        &[&src_a],
        &["tcp and dst port 7003"],
        &["ip6", "and", "udp", "dst", "port", "7001"],
    ];
    let captures: Vec<_> = filters
        .iter()
        .map(|f| {
            let mut args = vec!["capture", "--lab", "it-capf", "b:eth0", "-w", "-"];
            args.extend_from_slice(f);
            start_capture(&args)
        })
        .collect();
    // Traffic: 2 pings, 4 UDP datagrams to 7001 and 3 to 7002 over IPv4 (nothing listens:
    // b answers with ICMP port unreachable), 3 to 7001 over IPv6, one TCP exchange.
    assert!(
        lab.exec("a", &["ping", "-c2", "-i0.2", &b4])
            .status
            .success()
    );
    let send = |dst: String, n: usize| {
        for _ in 0..n {
            let o = lab.exec("a", &["sh", "-c", &format!("echo x | socat -u - {dst}")]);
            assert!(o.status.success(), "{}", text(&o));
        }
    };
    send(format!("UDP4-SENDTO:{b4}:7001"), 4);
    send(format!("UDP4-SENDTO:{b4}:7002"), 3);
    send(format!("UDP6-SENDTO:[{b6}]:7001"), 3);
    let o = lab.exec("a", &["socat", "-u", &format!("TCP:{b4}:7003"), "-"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("hi"),
        "{}",
        text(&o)
    );
    let mut streams: Vec<Vec<Vec<u8>>> = captures
        .into_iter()
        .rev()
        .map(|c| pcap_frames(&stop_capture(c)))
        .collect();
    streams.reverse();

    // Each filtered capture holds exactly the frames of the whole capture that the test
    // itself finds matching, in the same order.
    let all = &streams[0];
    let pick = |keep: &dyn Fn(&Seen) -> bool| -> Vec<Vec<u8>> {
        all.iter()
            .filter(|f| ip_of(f).is_some_and(|i| keep(&i)))
            .cloned()
            .collect()
    };
    let udp7001 = pick(&|i| i.1 == 17 && i.5 == 7001);
    let echo = pick(&|i| i.0 == 4 && i.1 == 1 && i.2 == a4);
    let tcp = pick(&|i| i.1 == 6 && i.5 == 7003);
    let udp6 = pick(&|i| i.0 == 6 && i.1 == 17 && i.5 == 7001);
    assert_eq!(udp7001.len(), 7, "4 over IPv4, 3 over IPv6");
    assert_eq!(echo.len(), 2, "the echo requests");
    assert!(tcp.len() >= 3, "a handshake and more: {}", tcp.len());
    assert_eq!(udp6.len(), 3);
    let from_b = pick(&|i| i.0 == 4 && i.1 == 1 && i.2 == b4).len();
    assert!(
        from_b >= 2,
        "ICMP from b (replies, unreachables) to leave out: {from_b}"
    );
    assert_eq!(streams[1], udp7001, "icmp or udp and dst port 7001");
    assert_eq!(streams[2], echo, "{src_a}");
    assert_eq!(streams[3], tcp, "tcp and dst port 7003");
    assert_eq!(streams[4], udp6, "ip6 and udp dst port 7001");
    assert_eq!(tcp[0][14 + 20 + 13] & 0x12, 0x02, "the first is the SYN");

    // A bad filter is refused before anything starts, with its column.
    let o = run(&[
        "capture",
        "--lab",
        "it-capf",
        "b:eth0",
        "-w",
        "-",
        "port",
        "nosuchport",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("column 6") && text(&o).contains("179"),
        "{}",
        text(&o)
    );
    let o = run(&[
        "capture", "--lab", "it-capf", "b:eth0", "-w", "-", "tcp[13]", "!=", "0",
    ]);
    assert!(text(&o).contains("tcpdump -r -"), "{}", text(&o));
    assert!(o.stdout.is_empty(), "no pcap was written");
    lab.down();
}

/// Each record of a pcap without its timestamp: (length on the wire, captured bytes).
fn pcap_records(pcap: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let caplen = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let len = u32::from_le_bytes(pcap[at + 12..at + 16].try_into().unwrap());
        out.push((len, pcap[at + 16..at + 16 + caplen].to_vec()));
        at += 16 + caplen;
    }
    assert_eq!(at, pcap.len(), "records run to the end of the file");
    out
}

/// Sends VLAN-tagged frames out of `iface` with a packet socket (no 8021q here): a UDP
/// datagram to port 53 in VLAN 10, the same in VLAN 11, TCP from port 22 in VLAN 30 inside
/// 802.1ad VLAN 20 (QinQ), and an ARP request in VLAN 10.
const TAGGED: &str = r#"
import socket, struct, sys
def tag(tpid, vid, rest): return struct.pack("!HH", tpid, vid) + rest
ip = lambda proto, l4: struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0,
    bytes([10, 9, 9, 1]), bytes([10, 9, 9, 2])) + l4
udp = struct.pack("!HHHH", 5353, 53, 8, 0)
tcp = struct.pack("!HHIIBBHHH", 22, 40000, 0, 0, 0x50, 2, 1024, 0, 0)
arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, b"\x02\0\0\0\0\x09",
    bytes([10, 9, 9, 1]), b"\0" * 6, bytes([10, 9, 9, 2]))
macs = b"\xff" * 6 + b"\x02\0\0\0\0\x09"
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for body in [tag(0x8100, 10, b"\x08\0" + ip(17, udp)), tag(0x8100, 11, b"\x08\0" + ip(17, udp)),
             tag(0x88a8, 20, tag(0x8100, 0x2000 | 30, b"\x08\0" + ip(6, tcp))),
             tag(0x8100, 10, b"\x08\x06" + arp)]:
    s.send(macs + body + b"\0" * 8)
"#;

#[test]
fn a_capture_filtered_in_the_kernel_equals_one_filtered_in_nslab() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "it-capbpf",
        "addressing: { ipv6: fd00:1ac::/48 }\nnodes: { a: {}, b: {} }\nlinks:\n  - [a:eth0, b:eth0]\n",
    );
    lab.up();
    let (a4, b4) = (lab.addr("a", "eth0", false), lab.addr("b", "eth0", false));
    let b6 = lab.addr("b", "eth0", true);
    let src_a = format!("icmp and src host {a4}");
    // (filter, frames the test sends that it keeps): the tagged frames go out of a (b
    // receives them, the kernel takes the outer tag into the metadata) and out of b
    // itself (the tag stays inline), so each tagged one counts twice.
    let filters: [(&str, usize); 7] = [
        ("vlan", 8),
        ("vlan 10 and udp port 53", 2),
        ("vlan 20 and vlan 30 and tcp src port ssh", 2),
        ("vlan 10 and arp host 10.9.9.2", 2),
        ("udp port 7001", 5),
        (&src_a, 2),
        ("ip6 and udp dst port 7001", 2),
    ];
    let captures: Vec<_> = filters
        .iter()
        .flat_map(|(f, _)| {
            ["kernel", "user"].map(|place| {
                start_capture(&[
                    "capture",
                    "--lab",
                    "it-capbpf",
                    "b:eth0",
                    "-w",
                    "-",
                    "--filter-in",
                    place,
                    f,
                ])
            })
        })
        .collect();
    assert!(
        lab.exec("a", &["ping", "-c2", "-i0.2", &b4])
            .status
            .success()
    );
    for (node, dst) in [
        ("a", format!("UDP4-SENDTO:{b4}:7001")),
        ("a", format!("UDP4-SENDTO:{b4}:7001")),
        ("a", format!("UDP4-SENDTO:{b4}:7001")),
        ("a", format!("UDP6-SENDTO:[{b6}]:7001")),
        ("a", format!("UDP6-SENDTO:[{b6}]:7001")),
    ] {
        let o = lab.exec(node, &["sh", "-c", &format!("echo x | socat -u - {dst}")]);
        assert!(o.status.success(), "{}", text(&o));
    }
    for node in ["a", "b"] {
        let o = lab.exec(node, &["python3", "-c", TAGGED, "eth0"]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let streams: Vec<Vec<(u32, Vec<u8>)>> = captures
        .into_iter()
        .map(|c| pcap_records(&stop_capture(c)))
        .collect();
    for (i, (filter, want)) in filters.iter().enumerate() {
        let (kernel, user) = (&streams[2 * i], &streams[2 * i + 1]);
        assert_eq!(
            kernel, user,
            "`{filter}`: kernel-filtered and nslab-filtered differ"
        );
        assert_eq!(kernel.len(), *want, "`{filter}`: {kernel:02x?}");
    }
    // The tag the kernel took out of a received frame is back in the pcap.
    let tagged = &streams[0];
    assert!(
        tagged
            .iter()
            .all(|(_, f)| f[12..14] == [0x81, 0x00] || f[12..14] == [0x88, 0xa8])
    );
    assert!(tagged.iter().all(|(len, f)| *len as usize == f.len()));
    lab.down();
}

/// Sends HITS small UDP frames to port 7001, each after one to port 7002, out of eth0
/// from a packet socket (no ARP, no neighbour queue: each frame passes the interface's
/// taps once); prints how many of each went out.
const FLOOD: &str = r#"
import socket, struct, sys
def frame(dport):
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0,
                     bytes([10, 9, 9, 1]), bytes([10, 9, 9, 2]))
    return b"\xff" * 6 + b"\x02\0\0\0\0\x09" + b"\x08\0" + ip + struct.pack("!HHHH", 5000, dport, 8, 0)
hit, miss = frame(7001), frame(7002)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
sent = [0, 0]
for i in range(int(sys.argv[1])):
    sent[1] += s.send(miss) > 0
    sent[0] += s.send(hit) > 0
print(sent[0], sent[1])
"#;

/// (captured, received by filter, dropped by kernel), as a capture prints them.
type Counts = (u64, u64, u64);

/// The counts from the line a capture ends with.
fn capture_counts(stderr: &str) -> Counts {
    let line = stderr
        .lines()
        .find(|l| l.contains("packets captured"))
        .unwrap_or_else(|| panic!("no counts in: {stderr}"));
    let num = |after: &str| -> u64 {
        let head = line.split(after).next().unwrap();
        head.rsplit([' ', ','])
            .find(|w| !w.is_empty())
            .unwrap()
            .parse()
            .unwrap()
    };
    (
        num(" packets captured"),
        num(" received by filter"),
        num(" dropped by kernel"),
    )
}

/// Floods `a:eth0` from a (HITS frames the filter keeps, as many it leaves out) under a
/// capture of it in the kernel, SIGTERMs the capture once the flood is out, and returns
/// (frames the flood sent that match, pcap records, the counts the capture printed).
/// With `read_late`, nothing reads the capture's pipe until then: it blocks writing, its
/// socket's queue fills, and the kernel drops the rest.
fn flood_capture(hits: usize, read_late: bool) -> (u64, Vec<(u32, Vec<u8>)>, Counts) {
    let mut child = start_capture(&[
        "capture",
        "--lab",
        "it-capdrop",
        "a:eth0",
        "-w",
        "-",
        "udp",
        "dst",
        "port",
        "7001",
    ]);
    let stdout = child.stdout.take().unwrap();
    let read = move || {
        let mut stream = Vec::new();
        let mut stdout = stdout;
        stdout.read_to_end(&mut stream).unwrap();
        stream
    };
    let (reader, late) = if read_late {
        (None, Some(read))
    } else {
        (Some(std::thread::spawn(read)), None)
    };
    let o = nslab()
        .args(["exec", "--lab", "it-capdrop", "a", "python3", "-c", FLOOD])
        .arg(hits.to_string())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let sent: Vec<u64> = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    assert_eq!(sent, [hits as u64, hits as u64], "the flood went out whole");
    let reader = reader.unwrap_or_else(|| std::thread::spawn(late.unwrap()));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let stream = reader.join().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(wait_or_kill(child).unwrap().success(), "capture: {err}");
    (sent[0], pcap_records(&stream), capture_counts(&err))
}

#[test]
fn a_capture_reports_what_the_kernel_dropped_and_every_other_frame_is_in_the_pcap() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "it-capdrop",
        "nodes: { a: {}, b: {} }\nlinks:\n  - [a:eth0, b:eth0]\n",
    );
    lab.up();
    // A reader that keeps up, and a burst the socket's queue holds whole: nothing dropped.
    let (sent, records, (captured, received, dropped)) = flood_capture(100, false);
    assert_eq!(
        (captured, received, dropped),
        (sent, sent, 0),
        "captured, received by filter, dropped"
    );
    assert_eq!(
        records.len() as u64,
        captured,
        "the pcap holds what was counted"
    );
    // A writer that blocks (nothing reads the pipe) under a flood: the kernel drops what
    // the queue cannot hold, and says how many; every other matching frame is in the pcap.
    let (sent, records, (captured, received, dropped)) = flood_capture(20_000, true);
    eprintln!("flood: {captured} captured, {received} received, {dropped} dropped of {sent}");
    assert!(dropped > 0, "nothing dropped of {sent} frames");
    assert_eq!(
        received, sent,
        "received by filter: every matching frame sent"
    );
    assert_eq!(captured + dropped, sent, "captured + dropped");
    assert_eq!(
        records.len() as u64,
        captured,
        "the pcap holds what was counted"
    );
    assert!(
        records
            .iter()
            .all(|(_, f)| f.len() == 42 && f[36..38] == 7001u16.to_be_bytes()),
        "only the filter's frames"
    );
    // To a file, run through sudo: 0600 and the invoking user's (a pcap may hold
    // secrets; they open it without root).
    let file = std::env::temp_dir().join("nslab-tests/it-capdrop.pcap");
    let _ = std::fs::remove_file(&file);
    let o = nslab()
        .env("SUDO_UID", "4711")
        .env("SUDO_GID", "4712")
        .args([
            "capture",
            "--lab",
            "it-capdrop",
            "a:eth0",
            "--duration",
            "200ms",
        ])
        .arg("-w")
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(capture_counts(&text(&o)).2, 0, "{}", text(&o));
    let meta = std::fs::metadata(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid(), meta.gid()),
        (0o600, 4711, 4712),
        "the pcap's mode and owner"
    );
    let detail: Vec<String> = {
        let v: serde_json::Value =
            serde_json::from_str(&ok(&["events", "--json", "it-capdrop"])).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "capture")
            .map(|e| e["detail"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert!(
        detail.iter().any(|d| d.contains(&format!(
            "{received} received by filter, {dropped} dropped by kernel"
        ))),
        "{detail:?}"
    );
    lab.down();
}
