//! `nslab test` end to end, as root: every example's checks pass, every kind of check
//! fails with a useful reason when it should, reports parse back, and the lab is always
//! torn down, interrupted or not.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use support::*;

fn test_cmd(lab: &Lab, extra: &[&str]) -> Output {
    nslab()
        .arg("test")
        .arg(&lab.file)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn every_example_passes_its_checks() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let dir = root().join("topologies");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    // In parallel: routing labs spend their time waiting for protocol timers, not CPU.
    let runs: Vec<_> = files
        .into_iter()
        .map(|f| {
            std::thread::spawn(move || {
                let stem = f.file_stem().unwrap().to_string_lossy().to_string();
                let name: String = format!("ix-{stem}").chars().take(12).collect();
                let name = name.trim_end_matches('-').to_string();
                let lab = Lab::from_example(&name, &format!("{stem}.yaml"));
                let o = test_cmd(&lab, &[]);
                assert_eq!(o.status.code(), Some(0), "{stem}: {}", text(&o));
                assert!(!lab.is_up(), "{stem}: torn down after the run");
            })
        })
        .collect();
    let failed: Vec<String> = runs
        .into_iter()
        .filter_map(|r| r.join().err())
        .map(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "an example panicked".into())
        })
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

const FAILING: &str = r#"
nodes:
  a: {}
  b: {}
  c: {}
links:
  # Written out: the messages below name these addresses.
  - { endpoints: [a:eth0, b:eth0], addresses: [10.255.0.0/31, 10.255.0.1/31] }
  - { endpoints: [b:eth1, c:eth0], addresses: [10.255.0.2/31, 10.255.0.3/31] }
tests:
  - reach: { from: a, to: c, timeout: 1s, name: unreachable-pair }
  - reach: { from: a, to: b, expect: fail, timeout: 1s, name: not-isolated }
  - tcp: { from: a, to: "b:80", timeout: 1s, name: tcp-refused }
  - route: { node: a, to: 10.9.0.0/16, timeout: 1s, name: no-route }
  - route: { node: a, to: 10.255.0.0/31, via: b, timeout: 1s, name: wrong-next-hop }
  - path: { from: a, to: b, hops: [c, b], timeout: 1s, name: wrong-path }
  - cmd: { node: a, run: "echo '{\"x\": 1}'", expect_json: { x: 2 }, timeout: 1s, name: json-differs }
  - cmd: { node: a, run: "echo hello; exit 3", stdout: "^bye", timeout: 1s, name: exit-and-stdout }
  - cmd: { node: a, run: "echo ok", stdout: "^ok$", name: passes }
  # 70 MB on stdout: nslab keeps 64 MiB of a check's output, never all it is sent.
  - cmd: { node: a, run: "head -c 70000000 /dev/zero", timeout: 20s, name: floods-stdout }
"#;

#[test]
fn every_kind_of_check_fails_with_a_useful_reason() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new("it-fail", FAILING);
    let junit = std::env::temp_dir().join("nslab-tests/it-fail.xml");
    let _junit_scratch = Scratch(junit.clone());
    let o = test_cmd(&lab, &["--junit", junit.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(!lab.is_up());
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("valid XML");
    let suites: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 1);
    assert_eq!(suites[0].attribute("tests"), Some("10"));
    assert_eq!(suites[0].attribute("failures"), Some("9"));
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 10);
    let failure = |name: &str| -> String {
        let case = cases
            .iter()
            .find(|c| c.attribute("name") == Some(name))
            .unwrap_or_else(|| panic!("testcase {name}"));
        case.children()
            .find(|n| n.has_tag_name("failure"))
            .and_then(|f| f.attribute("message"))
            .unwrap_or_default()
            .to_string()
    };
    let expect = [
        ("unreachable-pair", "a -> c (10.255.0.3): no reply"),
        (
            "not-isolated",
            "expected no replies, but 1 of 1 pairs answered: a -> b",
        ),
        (
            "tcp-refused",
            "expected a to connect to 10.255.0.1:80; it failed: Connection refused",
        ),
        ("no-route", "a has no route to 10.9.0.0/16"),
        (
            "wrong-next-hop",
            "has no gateway (a connected route via eth0); expected via 10.255.0.1",
        ),
        ("wrong-path", "expected the path c b, saw b"),
        (
            "json-differs",
            "stdout JSON differs: $.x: expected 2, found 1",
        ),
        ("exit-and-stdout", "exit status 3, expected 0"),
        (
            "floods-stdout",
            "printed more than 64 MiB on stdout, more than a check reads",
        ),
    ];
    for (name, msg) in expect {
        let f = failure(name);
        assert!(f.contains(msg), "{name}: `{f}` lacks `{msg}`");
    }
    assert!(failure("exit-and-stdout").contains("stdout does not match /^bye/; stdout was: hello"));
    let passes = cases
        .iter()
        .find(|c| c.attribute("name") == Some("passes"))
        .unwrap();
    // A passing case has no failure, only what its command printed.
    let children: Vec<_> = passes.children().filter(|n| n.is_element()).collect();
    assert_eq!(
        children
            .iter()
            .map(|n| n.tag_name().name())
            .collect::<Vec<_>>(),
        ["system-out"],
        "a passing case has no failure"
    );
    assert_eq!(children[0].text(), Some("ok\n"));
    // The human table names the failing check and its reason.
    assert!(text(&o).contains("FAIL  wrong-path"), "{}", text(&o));
}

#[test]
fn json_report_and_tests_against_a_running_lab() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::from_example("it-json", "triangle.yaml");
    let o = test_cmd(&lab, &["--json", "--keep"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    assert_eq!(v["passed"], 3);
    assert_eq!(v["failed"], 0);
    assert_eq!(v["checks"][0]["kind"], "reach");
    assert!(lab.is_up(), "--keep keeps the lab");
    // The same checks again, on the running lab.
    let o = nslab().args(["test", "--lab", "it-json"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(lab.is_up(), "--lab never tears down");
    lab.down();
}

#[test]
fn exit_codes_for_a_lab_that_cannot_come_up_and_for_invalid_input() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::from_example("it-exit", "two-hosts.yaml");
    let junit = std::env::temp_dir().join("nslab-tests/it-exit.xml");
    let _junit_scratch = Scratch(junit.clone());
    let o = nslab()
        .arg("test")
        .arg(&lab.file)
        .args(["--junit", junit.to_str().unwrap()])
        .env("NSLAB_TEST_FAIL_AT_STEP", "4")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let err = doc
        .descendants()
        .find(|n| n.has_tag_name("error"))
        .expect("an <error> for the failed up");
    assert!(
        err.attribute("message")
            .unwrap()
            .contains("injected failure")
    );
    // The up's own time, and the file's checks listed as not run: a report has the same
    // test cases whether the lab came up or not.
    let up_case = err.parent().unwrap();
    assert_eq!(up_case.attribute("name"), Some("lab up"));
    assert_ne!(up_case.attribute("time"), Some("0.000"), "{xml}");
    let topology = lab.topology();
    let not_run: Vec<&str> = doc
        .descendants()
        .filter(|n| {
            n.has_tag_name("skipped")
                && n.attribute("message") == Some("not run: the lab could not come up")
        })
        .filter_map(|n| n.parent()?.attribute("name"))
        .collect();
    let names: Vec<&str> = topology.checks.iter().map(|c| c.name.as_str()).collect();
    assert!(!names.is_empty());
    assert_eq!(not_run, names, "{xml}");
    assert!(!lab.is_up());

    let bad = Lab::new("it-bad", "nodes: { a: { kind: nope } }\n");
    let o = test_cmd(&bad, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("unknown kind `nope`"));
}

/// 100 nodes, 9,900 pairs: a leaf-spine fabric with hosts, routed, so the pairs need a
/// neighbour entry per link rather than per pair (the host-wide table holds 1,024).
#[test]
fn all_pairs_matrix_over_100_nodes() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let mut y = String::from("addressing: { p2p: 100.64.0.0/16 }\nrouting: static\nnodes:\n");
    let (spines, leaves, per_leaf) = (5, 19, 4);
    for s in 1..=spines {
        y.push_str(&format!("  s{s}: {{}}\n"));
    }
    for l in 1..=leaves {
        y.push_str(&format!("  l{l}: {{}}\n"));
        for h in 1..=per_leaf {
            y.push_str(&format!("  h{l}-{h}: {{}}\n"));
        }
    }
    y.push_str("links:\n");
    for l in 1..=leaves {
        for s in 1..=spines {
            y.push_str(&format!("  - [l{l}, s{s}]\n"));
        }
        for h in 1..=per_leaf {
            y.push_str(&format!("  - [h{l}-{h}, l{l}]\n"));
        }
    }
    y.push_str("tests:\n  - reach: { from: all, to: all, name: matrix }\n");
    let lab = Lab::new("it-matrix", &y);
    let start = Instant::now();
    let o = test_cmd(&lab, &["--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    eprintln!(
        "100-node all-pairs matrix: checks {} s, whole run {:.2} s",
        v["checks"][0]["duration_s"],
        start.elapsed().as_secs_f64()
    );
    assert_eq!(v["passed"], 1);
}

const GC_THRESH3: &str = "/proc/sys/net/ipv4/neigh/default/gc_thresh3";
const GC_THRESH2: &str = "/proc/sys/net/ipv4/neigh/default/gc_thresh2";

fn sysctl_value(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A column of the kernel's IPv4 neighbour table statistics, by its header's name (hex
/// values; the table's count, `entries`, is every namespace's).
fn arp_stat(column: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/net/stat/arp_cache").unwrap();
    let mut lines = text.lines();
    let at = lines
        .next()
        .unwrap()
        .split_whitespace()
        .position(|h| h == column)
        .unwrap_or_else(|| panic!("no column {column} in: {text}"));
    let value = lines.next().unwrap().split_whitespace().nth(at).unwrap();
    u64::from_str_radix(value, 16).unwrap()
}

/// The host's IPv4 neighbour entries, every namespace's.
fn arp_entries() -> u64 {
    arp_stat("entries")
}

/// `n` hosts on one bridge: n x (n - 1) IPv4 neighbour entries when all pairs talk.
fn hosts_on_a_bridge(n: usize) -> String {
    let mut y = String::from("nodes:\n");
    for i in 0..n {
        y.push_str(&format!("  h{i}: {{ isolation: [net] }}\n"));
    }
    y.push_str("bridges: { s1: {} }\nlinks:\n");
    for i in 0..n {
        y.push_str(&format!("  - [h{i}, s1]\n"));
    }
    y.push_str("tests:\n  - reach: { from: all, to: all, name: all-pairs, timeout: 30s }\n");
    y
}

/// 33 hosts on one bridge: 33 x 32 = 1,056 IPv4 neighbour entries when all pairs talk.
fn over_the_neigh_limit() -> String {
    hosts_on_a_bridge(33)
}

/// The host's gc_thresh3 and gc_thresh2, which must be below what `--raise-neigh-limit`
/// raises them to for a test of it to show anything.
fn limits_to_raise() -> (u64, u64) {
    let (before3, before2) = (sysctl_value(GC_THRESH3), sysctl_value(GC_THRESH2));
    assert!(
        before3 < 4096 && before2 < 2048,
        "this host's limits ({before3}, {before2}) are already high: nothing to raise"
    );
    (before3, before2)
}

/// `--raise-neigh-limit` is carried out under the lab's lock, after `up` knows the lab is
/// not running: an `up` refused because the lab already runs leaves the host's limits as
/// they are (it raised them before refusing), and one that fails puts them back with its
/// rollback.
#[test]
fn raise_neigh_limit_is_left_alone_by_a_refused_up_and_undone_by_a_failed_one() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let (before3, before2) = limits_to_raise();
    let record = std::path::Path::new("/run/nslab/ck-neighref.host-sysctls");
    let lab = Lab::new("ck-neighref", &over_the_neigh_limit());
    lab.up();
    let o = lab.up_with(&["--raise-neigh-limit"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("apply"), "{}", text(&o));
    assert!(!text(&o).contains("raised from"), "{}", text(&o));
    assert_eq!(sysctl_value(GC_THRESH3), before3, "a refused up raised it");
    assert_eq!(sysctl_value(GC_THRESH2), before2, "a refused up raised it");
    assert!(!record.exists());
    lab.down();

    // A step that fails: the rollback puts the limits back and forgets the record.
    let o = nslab()
        .arg("up")
        .arg(&lab.file)
        .arg("--raise-neigh-limit")
        .env("NSLAB_TEST_FAIL_AT_STEP", "40")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!lab.is_up());
    assert_eq!(
        sysctl_value(GC_THRESH3),
        before3,
        "a failed up kept it raised"
    );
    assert_eq!(
        sysctl_value(GC_THRESH2),
        before2,
        "a failed up kept it raised"
    );
    assert!(!record.exists());
}

/// `--raise-neigh-limit`: 33 hosts on one bridge need 33 x 32 = 1,056 IPv4 neighbour
/// entries when all pairs talk, over the default limit of 1,024. `up` raises gc_thresh3
/// to 4,096 and gc_thresh2 to 2,048 for the lab's lifetime and `down` puts both back once
/// the kernel has freed the lab's entries; `test` does the same around its run, and its
/// all-pairs check passes.
#[test]
fn raise_neigh_limit_lasts_as_long_as_the_lab() {
    if !privileged() {
        return;
    }
    // The limit is the host's: no other lab of this binary runs meanwhile.
    let _h = exclusive();
    let (before3, before2) = limits_to_raise();
    let lab = Lab::new("ck-neighup", &over_the_neigh_limit());
    let o = lab.up_with(&["--raise-neigh-limit"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "net.ipv4.neigh.default.gc_thresh3 raised from {before3} to 4096 until the lab's `down`"
        )),
        "{}",
        text(&o)
    );
    assert_eq!(sysctl_value(GC_THRESH3), 4096);
    assert_eq!(sysctl_value(GC_THRESH2), 2048);
    lab.down();
    assert_eq!(
        sysctl_value(GC_THRESH3),
        before3,
        "down put gc_thresh3 back"
    );
    assert_eq!(
        sysctl_value(GC_THRESH2),
        before2,
        "down put gc_thresh2 back"
    );
    assert!(!std::path::Path::new("/run/nslab/ck-neighup.host-sysctls").exists());
    // The lab's 1,056 entries leave as the kernel frees its namespaces: the old limit
    // went back only after, or the next lab's first neighbours would overflow the table.
    let left = arp_entries();
    assert!(left < before3, "{left} entries under a limit of {before3}");

    let o = test_cmd(&lab, &["--raise-neigh-limit", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["passed"], 1, "{v}");
    assert!(!lab.is_up());
    assert_eq!(
        sysctl_value(GC_THRESH3),
        before3,
        "test put gc_thresh3 back"
    );
    assert_eq!(
        sysctl_value(GC_THRESH2),
        before2,
        "test put gc_thresh2 back"
    );
    let left = arp_entries();
    assert!(left < before3, "{left} entries under a limit of {before3}");
}

/// Two bridges of hosts, sized from the host's IPv4 limit: the first fills most of the
/// table (870 of 1,024 entries), the second alone fits (210) but not beside the first.
fn two_labs_over_the_limit() -> (usize, usize, u64) {
    let limit = sysctl_value(GC_THRESH3);
    let pairs = |n: usize| (n * (n - 1)) as u64;
    let a = (2..)
        .take_while(|&n| pairs(n) * 100 <= limit * 85)
        .last()
        .unwrap();
    let b = (2..).find(|&m| pairs(a) + pairs(m) > limit + 50).unwrap();
    assert!(pairs(b) <= limit, "limit {limit}: sizes {a}, {b}");
    (a, b, limit)
}

/// Lab A's 870 entries stay in the table after its `down` until the kernel frees its
/// namespaces (held open here for 200 ms, the kernel's own delay being 30 to 130 ms
/// measured): lab B's `up` right after it waits until they are gone, and B's all-pairs
/// check then never finds the table full. Without the wait, B came up in 40 ms with A's
/// entries still there and its ARP exchanges overflowed the table.
#[test]
fn up_right_after_a_big_labs_down_waits_for_its_neighbours_to_leave() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let (a, b, limit) = two_labs_over_the_limit();
    let first = Lab::new("ck-nbfirst", &hosts_on_a_bridge(a));
    first.up();
    let o = nslab()
        .args(["test", "--lab", &first.name])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // Every namespace of the lab, its bridge's too: a veth goes with either end's.
    let held: Vec<std::fs::File> = std::fs::read_dir("/run/netns")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name == "nslab.ck-nbfirst" || name.starts_with("nslab.ck-nbfirst.")
        })
        .map(|p| std::fs::File::open(p).unwrap())
        .collect();
    assert_eq!(held.len(), a + 1, "the hosts' namespaces and the bridge's");
    first.down();
    let left = arp_entries();
    assert!(
        left >= (a * (a - 1)) as u64,
        "the held namespaces keep their {left} entries"
    );
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        drop(held);
    });
    let second = Lab::new("ck-nbsecond", &hosts_on_a_bridge(b));
    let fulls = arp_stat("table_fulls");
    second.up();
    let now = arp_entries();
    release.join().unwrap();
    assert!(
        now + (b * (b - 1)) as u64 <= limit,
        "up returned with {now} entries in the table, no room for its {} under {limit}",
        b * (b - 1)
    );
    let o = nslab()
        .args(["test", "--lab", &second.name])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(arp_stat("table_fulls"), fulls, "the table overflowed");
    second.down();
}

/// Side by side, a lab whose entries do not leave: the next lab's `up` waits no longer
/// than the count holds still (0.5 s) and says the table is short of room for it.
#[test]
fn up_beside_a_lab_that_fills_the_neighbour_table_says_so() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let (a, b, limit) = two_labs_over_the_limit();
    let first = Lab::new("ck-nbfull", &hosts_on_a_bridge(a));
    first.up();
    let o = nslab()
        .args(["test", "--lab", &first.name])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let second = Lab::new("ck-nbbeside", &hosts_on_a_bridge(b));
    let o = second.up_with(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let want = format!(
        "this lab may need up to {} more, over the limit of {limit}",
        b * (b - 1)
    );
    assert!(text(&o).contains(&want), "{want}: {}", text(&o));
    second.down();
    first.down();
}

/// `route` with `vrf:` reads the table of the node's VRF device. Where the kernel makes
/// VRFs (checked here by making one in a namespace of its own), a route in a VRF made by
/// the node's `exec` is found; where it cannot (no `vrf` module, as on the kernel this
/// project is developed on), the failure names the module and the config option. An
/// interface that is no VRF, or none at all, is said so either way.
#[test]
fn route_checks_read_a_vrf_table_or_name_the_missing_module() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let has_vrf = support::kernel_has_vrf();
    let lab = Lab::new(
        "ck-vrf",
        r#"nodes:
  a:
    exec:
      - { cmd: "ip link add red type vrf table 1010 && ip link set red up && ip route add blackhole 10.77.0.0/24 table 1010", ignore_errors: true }
  b: {}
links: [[a:eth0, b:eth0]]
tests:
  - route: { node: a, to: 10.77.0.0/24, vrf: red, name: in-red, timeout: 1s }
  - route: { node: a, to: 10.77.0.0/24, name: not-in-main, expect: absent, timeout: 1s }
  - route: { node: a, to: 10.77.0.0/24, vrf: eth0, name: not-a-vrf, timeout: 1s }
  - route: { node: b, to: 10.77.0.0/24, vrf: red, name: no-red, timeout: 1s }
"#,
    );
    let o = test_cmd(&lab, &["--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(!lab.is_up());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    let result = |name: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no result `{name}` in {v}"))
            .clone()
    };
    let reason = |name: &str| {
        result(name)["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(result("not-in-main")["status"], "pass");
    assert_eq!(result("not-a-vrf")["status"], "fail");
    assert!(
        reason("not-a-vrf").contains("a's interface `eth0` is a veth, not a VRF"),
        "{}",
        reason("not-a-vrf")
    );
    let missing = "this kernel has no `vrf` link type: load the `vrf` module (`modprobe vrf`) or use a kernel built with CONFIG_NET_VRF";
    assert_eq!(result("no-red")["status"], "fail");
    assert!(
        reason("no-red").contains("b has no VRF `red`"),
        "{}",
        reason("no-red")
    );
    if has_vrf {
        assert_eq!(result("in-red")["status"], "pass", "{}", result("in-red"));
        assert!(!reason("no-red").contains(missing), "{}", reason("no-red"));
    } else {
        assert_eq!(result("in-red")["status"], "fail");
        assert!(
            reason("in-red").contains(&format!("a has no VRF `red`; {missing}")),
            "{}",
            reason("in-red")
        );
    }
}

#[test]
fn sigint_during_checks_tears_the_lab_down() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let before = host_snapshot();
    let lab = Lab::new(
        "it-sigint",
        "nodes: { a: {}, b: {}, c: {} }\nlinks: [[a, b], [b, c]]\ntests:\n  - reach: { from: a, to: c, timeout: 60s }\n  - reach: { from: a, to: b }\n",
    );
    let junit = std::env::temp_dir().join("nslab-tests/it-sigint.xml");
    let _ = std::fs::remove_file(&junit);
    let _junit_scratch = Scratch(junit.clone());
    let mut child = nslab()
        .arg("test")
        .arg(&lab.file)
        .args(["--junit", junit.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("is up"), "{line}");
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling the child we spawned, by pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    // 128 + SIGINT, as a shell reports a command Ctrl-C stopped: told from a failure.
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(
        rest.contains("SKIP") && rest.contains("interrupted by SIGINT"),
        "{rest}"
    );
    // The check it was waiting on says so (a cancelled CI job shows what hung); the one
    // after it never ran.
    assert!(
        rest.contains("interrupted by SIGINT while running, after"),
        "{rest}"
    );
    assert!(rest.contains("not run: interrupted by SIGINT"), "{rest}");
    // Counted as interrupted, not as not run; in JUnit an error with the same message.
    assert!(rest.contains("INTR  1: reach a -> c"), "{rest}");
    assert!(
        rest.contains("2 checks, 0 passed, 0 failed, 1 interrupted, 1 not run"),
        "{rest}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    let counts = ["tests", "failures", "errors", "skipped"].map(|a| suite.attribute(a));
    assert_eq!(
        counts,
        [Some("2"), Some("0"), Some("1"), Some("1")],
        "{xml}"
    );
    let err = doc.descendants().find(|n| n.has_tag_name("error")).unwrap();
    let msg = err.attribute("message").unwrap();
    assert!(
        msg.starts_with("interrupted by SIGINT while running, after"),
        "{xml}"
    );
    assert_eq!(
        err.parent().unwrap().attribute("name"),
        Some("1: reach a -> c")
    );
    let property = |k: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name("property") && n.attribute("name") == Some(k))
            .and_then(|n| n.attribute("value"))
    };
    assert_eq!(
        (property("interrupted_by"), property("interrupted_during")),
        (Some("SIGINT"), Some("checks")),
        "{xml}"
    );
    assert!(!lab.is_up());
    assert_same_host(&before, &host_snapshot(), "after SIGINT during nslab test");
}

#[test]
fn icmp_rejects_are_answers_and_unprobed_pairs_never_pass() {
    if !privileged() {
        return;
    }
    let _h = shared();
    // r rejects traffic to b's loopback ("packet filtered", rate-limited like every ICMP
    // error, so later attempts hear nothing); b has no IPv6 address at all.
    let lab = Lab::new(
        "it-reject",
        r#"
routing: static
nodes:
  a: { loopback: auto }
  r: { loopback: auto, routes: [{ to: 10.0.0.3, type: prohibit }] }
  b: { loopback: 10.0.0.3/32 }
links:
  - { endpoints: [a:eth0, r:eth0], addresses: [10.255.0.0/31, 10.255.0.1/31] }
  - [r:eth1, b:eth0]
tests:
  - reach: { from: a, to: b, timeout: 2s, name: rejected }
  - reach: { from: a, to: b, expect: fail, timeout: 2s, name: blocked }
  - reach: { from: a, to: r, timeout: 2s, name: same-source-still-works }
  - reach: { from: a, to: b, family: ipv6, expect: fail, timeout: 1s, name: unprobed }
"#,
    );
    let junit = std::env::temp_dir().join("nslab-tests/it-reject.xml");
    let _junit_scratch = Scratch(junit.clone());
    let o = test_cmd(&lab, &["--junit", junit.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("valid XML");
    let failure = |name: &str| -> Option<String> {
        let case = doc
            .descendants()
            .find(|c| c.has_tag_name("testcase") && c.attribute("name") == Some(name))
            .unwrap_or_else(|| panic!("testcase {name}"));
        case.children()
            .find(|n| n.has_tag_name("failure"))
            .and_then(|f| f.attribute("message"))
            .map(str::to_string)
    };
    let rejected = failure("rejected").expect("rejected fails");
    assert!(
        rejected.contains(
            "no reply: communication administratively prohibited (ICMP code 13) at 10.255.0.1 (r) (a filter or a prohibit route rejected it)"
        ),
        "{rejected}"
    );
    assert_eq!(failure("blocked"), None);
    assert_eq!(failure("same-source-still-works"), None);
    let unprobed = failure("unprobed").expect("unprobed fails");
    assert!(
        unprobed.contains("could not probe: b has no IPv6 address to probe"),
        "{unprobed}"
    );
    assert!(!lab.is_up());
}

/// The check options of the `tests:` section, each passing and failing: JSON lists as an
/// unordered subset (and `json_exact`), absent keys, `expect_json_file`, `expect: fail`
/// and `stderr` on `cmd`, `expect: absent` and `table` on `route`, `reach` to addresses,
/// and many-node checks reporting one result per node in the human, JSON and JUnit
/// reports.
const OPTIONS: &str = r#"
routing: static
nodes:
  a: { labels: { role: core }, exec: ["ip route add 10.60.0.0/24 dev eth0 table 1000"] }
  b: { labels: { role: core } }
  c: {}
  d: {}
links:
  # Written out: the messages below name these addresses.
  - { endpoints: [a:eth0, b:eth0], addresses: [10.255.0.0/31, 10.255.0.1/31] }
  - { endpoints: [b:eth1, c:eth0], addresses: [10.255.0.2/31, 10.255.0.3/31] }
tests:
  - cmd: { node: a, name: json-unordered, timeout: 1s, run: "echo '{\"n\": [{\"id\": 1, \"s\": \"Init\"}, {\"id\": 2, \"s\": \"Full\"}]}'",
           expect_json: { n: [{ id: 2, s: Full }, { id: 1 }], gone: ~ } }
  - cmd: { node: a, name: json-exact-order, timeout: 1s, run: "echo '{\"n\": [1, 2]}'", expect_json: { n: [2, 1] }, json_exact: true }
  - cmd: { node: a, name: json-key-present, timeout: 1s, run: "echo '{\"n\": [], \"gone\": 1}'", expect_json: { gone: ~ } }
  - cmd: { node: a, name: json-file, timeout: 1s, run: "echo '{\"v\": [3, 2, 1]}'", expect_json_file: ck-opts-want.json }
  - cmd: { node: a, name: json-file-differs, timeout: 1s, run: "echo '{\"v\": [3, 2]}'", expect_json_file: ck-opts-want.json }
  - cmd: { node: a, name: fails-as-expected, timeout: 1s, run: "echo oops >&2; exit 4", expect: fail, stderr: "^oops$" }
  - cmd: { node: a, name: should-have-failed, timeout: 1s, run: "echo fine", expect: fail }
  - cmd: { node: a, name: stderr-differs, timeout: 1s, run: "echo oops >&2", stderr: "^fine$" }
  - cmd: { node: a, name: says-on-stdout, timeout: 1s, run: "echo '% Unknown command'; exit 1" }
  - reach: { from: a, to: d, name: to-unaddressed, timeout: 1s }
  - route: { node: a, name: withdrawn, timeout: 1s, to: 10.9.0.0/16, expect: absent }
  - route: { node: a, name: still-there, timeout: 1s, to: 10.255.0.2/31, expect: absent }
  - route: { node: a, name: local-table, timeout: 1s, to: 10.255.0.0/32, table: local }
  - route: { node: a, name: not-in-main, timeout: 1s, to: 10.255.0.0/32 }
  - route: { node: a, name: table-1000, timeout: 1s, to: 10.60.0.0/24, table: 1000, dev: eth0 }
  - route: { node: b, name: not-in-1000, timeout: 1s, to: 10.60.0.0/24, table: 1000 }
  - reach: { from: a, to: [c, 10.255.0.1, 10.255.0.3], name: to-addresses, timeout: 2s }
  - reach: { from: a, to: 192.0.2.1, name: outside, timeout: 1s }
  - reach: { from: a, to: 10.255.0.1, name: owned-answers, expect: fail, timeout: 1s }
  - cmd: { node: { role: core }, name: has-eth1, timeout: 1s, run: "test -e /sys/class/net/eth1" }
  - route: { node: all, name: no-10.9, timeout: 1s, to: 10.9.0.0/16, expect: absent }
"#;

#[test]
fn check_options_pass_and_fail_with_their_reasons() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new("ck-opts", OPTIONS);
    let want = lab.file.with_file_name("ck-opts-want.json");
    let _want_scratch = Scratch(want.clone());
    std::fs::write(&want, r#"{ "v": [1, 2, 3] }"#).unwrap();
    let junit = std::env::temp_dir().join("nslab-tests/ck-opts.xml");
    let _junit_scratch = Scratch(junit.clone());
    let o = test_cmd(&lab, &["--json", "--junit", junit.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(!lab.is_up());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    let checks = v["checks"].as_array().unwrap();
    let result = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no result `{name}` in {v}"))
    };
    let passes = [
        "json-unordered",
        "json-file",
        "fails-as-expected",
        "withdrawn",
        "local-table",
        "table-1000",
        "to-addresses",
        "has-eth1 [b]",
        "no-10.9 [a]",
        "no-10.9 [b]",
        "no-10.9 [c]",
        "no-10.9 [d]",
    ];
    for p in passes {
        assert_eq!(result(p)["status"], "pass", "{p}: {}", result(p));
    }
    let fails = [
        (
            "json-exact-order",
            "stdout JSON differs: $.n[0]: expected 2, found 1",
        ),
        ("json-key-present", "$.gone: expected no such key, found 1"),
        (
            "json-file-differs",
            "$.v: expected at least 3 elements (in any order), found 2",
        ),
        (
            "should-have-failed",
            "exit status 0, expected a failure (non-zero); stdout: fine",
        ),
        (
            "stderr-differs",
            "stderr does not match /^fine$/; stderr was: oops",
        ),
        (
            "still-there",
            "expected no route to 10.255.0.2/31 on a, found a unicast route via 10.255.0.1 dev eth0",
        ),
        ("not-in-main", "a has no route to 10.255.0.0/32"),
        (
            "not-in-1000",
            "b has no route to 10.60.0.0/24 in table 1000",
        ),
        ("outside", "a -> 192.0.2.1 (outside the lab)"),
        (
            "owned-answers",
            "expected no replies, but 1 of 1 pairs answered: a -> 10.255.0.1 (b) replied",
        ),
        ("has-eth1 [a]", "exit status 1, expected 0"),
        // Said on stdout, with nothing on stderr: the failure shows stdout's tail.
        (
            "says-on-stdout",
            "exit status 1, expected 0; stdout: % Unknown command",
        ),
        // No pair to probe: the node without an address is named.
        (
            "to-unaddressed",
            "no address on d: give it a link with addresses, or a `loopback`",
        ),
    ];
    for (name, msg) in fails {
        let r = result(name);
        assert_eq!(r["status"], "fail", "{name}: {r}");
        let reason = r["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(msg), "{name}: `{reason}` lacks `{msg}`");
    }
    assert_eq!(checks.len(), passes.len() + fails.len());
    assert_eq!(v["passed"], passes.len());
    // Each node of a many-node check is its own line and its own testcase.
    let human = String::from_utf8_lossy(&o.stderr);
    assert!(human.contains("PASS  has-eth1 [b]"), "{human}");
    assert!(human.contains("FAIL  has-eth1 [a]"), "{human}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("valid XML");
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .filter_map(|n| n.attribute("name"))
        .filter(|n| n.starts_with("no-10.9"))
        .collect();
    assert_eq!(
        cases,
        ["no-10.9 [a]", "no-10.9 [b]", "no-10.9 [c]", "no-10.9 [d]"]
    );
}

/// `nslab test --lab` compiles the stored copy of the file: an `expect_json_file` still
/// resolves beside the file the lab came up from.
#[test]
fn expect_json_file_resolves_for_a_running_lab_too() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "ck-running",
        "nodes: { a: {} }\ntests:\n  - cmd: { node: a, run: \"echo '[3, 1, 2]'\", expect_json_file: ck-running-want.json, timeout: 1s }\n",
    );
    let want = lab.file.with_file_name("ck-running-want.json");
    let _want_scratch = Scratch(want.clone());
    std::fs::write(&want, "[1, 2]").unwrap();
    let o = test_cmd(&lab, &["--keep"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = nslab()
        .args(["test", "--lab", "ck-running"])
        .current_dir("/")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Read at each run: an edited file is what the next run expects.
    std::fs::write(&want, "[4]").unwrap();
    let o = nslab()
        .args(["test", "--lab", "ck-running"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(
            "stdout JSON differs: $: expected element [0] (4) matches none of the 3 elements"
        ),
        "{}",
        text(&o)
    );
    lab.down();
}

/// The nodes of a many-node check are polled together: the entry takes one timeout, not
/// one per node, and still reports each node, in order.
#[test]
fn many_node_checks_run_together_and_report_each_node() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "ck-together",
        "nodes: { a: {}, b: {}, c: {}, d: {} }\ntests:\n  - cmd: { node: all, run: \"sleep 1; false\", timeout: 1500ms, name: slow }\n",
    );
    let o = test_cmd(&lab, &["--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    let checks = v["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["slow [a]", "slow [b]", "slow [c]", "slow [d]"]);
    for (c, node) in checks.iter().zip(["a", "b", "c", "d"]) {
        assert_eq!(c["node"], node, "the JSON report names the node: {c}");
        assert_eq!(c["status"], "fail");
        assert!(c["duration_s"].as_f64().unwrap() >= 1.0, "{c}");
        assert!(
            c["reason"]
                .as_str()
                .unwrap()
                .contains("exit status 1, expected 0"),
            "{c}"
        );
    }
    // Each takes about 2.5 s (two attempts of 1 s and a pause); one after another, 10 s.
    let total = v["duration_s"].as_f64().unwrap();
    assert!(total < 6.0, "the four nodes took {total} s in all");
}

#[test]
fn check_runs_the_selected_checks_and_reports_the_rest_skipped() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "it-select",
        "nodes: { a: {}, b: {} }\nlinks: [[a, b]]\ntests:\n  - reach: { from: a, to: b, name: reach-ab }\n  - reach: { from: b, to: a, name: reach-ba }\n  - route: { node: a, to: 10.99.0.0/16, name: no-such-route, timeout: 1s }\n",
    );
    // A typo is an error before anything comes up, listing the names there are.
    let o = test_cmd(&lab, &["--check", "reach-*", "--check", "rech-ab"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains(
            "no check matches `rech-ab` (`*` matches any characters); its checks: reach-ab, reach-ba, no-such-route"
        ),
        "{}",
        text(&o)
    );
    assert!(!lab.is_up());
    // The failing route check is not selected: the run passes, and says what it left.
    let junit = std::env::temp_dir().join("nslab-tests/it-select.xml");
    let _junit_scratch = Scratch(junit.clone());
    let o = test_cmd(
        &lab,
        &["--check", "reach-*", "--junit", junit.to_str().unwrap()],
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        out.contains("--check: running 2 of 3; 1 not selected"),
        "{out}"
    );
    assert!(
        out.contains("PASS  reach-ab") && out.contains("PASS  reach-ba"),
        "{out}"
    );
    assert!(!out.contains("no-such-route  "), "{out}");
    assert!(
        out.contains("lab `it-select`: 3 checks, 2 passed, 0 failed, 1 not run"),
        "{out}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("tests"), Some("3"), "{xml}");
    assert_eq!(suite.attribute("skipped"), Some("1"), "{xml}");
    let case = doc
        .descendants()
        .find(|n| n.attribute("name") == Some("no-such-route"))
        .expect("the unselected check is listed");
    let skipped = case
        .children()
        .find(|n| n.has_tag_name("skipped"))
        .expect("as skipped");
    assert_eq!(
        skipped.attribute("message"),
        Some("not run: not selected by --check")
    );
    assert!(!lab.is_up());
}

/// A daemon that exits at once counts as started when it has no `ready:`: the run's
/// checks may all pass, but the run fails, naming the process, its status and the end
/// of its log, in the human report and in JUnit.
#[test]
fn a_process_that_exits_during_the_run_fails_it_with_its_log() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "it-procdie",
        "nodes:\n  a:\n    processes:\n      - { name: dies, cmd: \"sh -c 'echo starting; echo fatal: no config >&2; exit 3'\" }\n      - { name: fine, cmd: \"sleep 600\" }\n  b: {}\nlinks: [[a:eth0, b:eth0]]\ntests:\n  - reach: { from: a, to: b, name: ping }\n",
    );
    let junit = std::env::temp_dir().join("nslab-tests/it-procdie.xml");
    let _junit_scratch = Scratch(junit.clone());
    let o = test_cmd(&lab, &["--junit", junit.to_str().unwrap()]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("PASS  ping"), "{out}");
    assert!(out.contains("FAIL  processes [a]"), "{out}");
    assert!(out.contains("process `dies` exited with status 3"), "{out}");
    // The log's end stays indented under the check.
    assert!(out.contains("\n      fatal: no config"), "{out}");
    assert!(!out.contains("`fine`"), "{out}");
    assert!(out.contains("2 checks, 1 passed, 1 failed"), "{out}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .expect("a <failure> for the process");
    assert_eq!(
        failure.parent().unwrap().attribute("name"),
        Some("processes [a]")
    );
    assert_eq!(
        failure.attribute("message"),
        Some("process `dies` exited with status 3; its log ends with:")
    );
    let body = failure.text().unwrap_or("");
    assert!(body.contains("starting\nfatal: no config"), "{xml}");
    assert!(!lab.is_up());
}

/// Two runs of one lab at once: the second is refused without the advice to take the
/// first's lab down; once the first is killed (`kill -9`, a CI job's last resort), the
/// next run says the lab was left behind and how to remove it.
#[test]
fn the_same_lab_twice_is_in_use_and_a_killed_runs_lab_is_named() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let before = host_snapshot();
    let lab = Lab::new(
        "it-inuse",
        "nodes: { a: {}, b: {} }\nlinks: [[a, b]]\ntests:\n  - cmd: { node: a, run: \"sleep 60\", timeout: 90s }\n",
    );
    let mut first = nslab()
        .arg("test")
        .arg(&lab.file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kept open until the end: a closed stdout would stop the first run.
    let mut first_out = BufReader::new(first.stdout.take().unwrap());
    let mut line = String::new();
    first_out.read_line(&mut line).unwrap();
    assert!(line.contains("is up"), "{line}");
    let pid = first.id();
    let second = test_cmd(&lab, &[]);
    let err = text(&second);
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "lab `it-inuse` is in use: `nslab test` (pid {pid})"
        )),
        "{err}"
    );
    assert!(!err.contains("nslab down"), "{err}");
    // SAFETY: killing the child we spawned, by pid.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    first.wait().unwrap();
    drop(first_out);
    assert!(lab.is_up(), "a killed run cannot take its lab down");
    let next = test_cmd(&lab, &[]);
    let err = text(&next);
    assert_eq!(next.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "lab `it-inuse` was left up by `nslab test` (pid {pid}), which ended without taking it down (killed?); `nslab down it-inuse` removes it"
        )),
        "{err}"
    );
    lab.down();
    assert!(!lab.is_up());
    assert_same_host(
        &before,
        &host_snapshot(),
        "after a killed nslab test and its down",
    );
}

/// A reach that fails says what the network said and who said it: time exceeded from a
/// router of a routing loop, network unreachable from the router without a route, the
/// sender's own refusal when it has no route itself; a reach that holds is unchanged.
#[test]
fn reach_failures_name_the_icmp_error_and_the_router_that_sent_it() {
    if !privileged() {
        return;
    }
    let _h = shared();
    // r1 sends 10.99.0.0/24 to r2, whose default points back at r1: a loop. Nobody has a
    // route to 10.98.0.0/24 but h1, whose default is r1.
    let lab = Lab::new(
        "it-icmperr",
        r#"
defaults:
  sysctls: { net.ipv4.ip_forward: 1 }
nodes:
  h1: { routes: [{ to: default, via: r1 }] }
  r1: { routes: [{ to: 10.99.0.0/24, via: r2 }] }
  r2: { routes: [{ to: default, via: r1 }] }
links:
  - { endpoints: [h1:eth0, r1:eth0], addresses: [10.255.0.0/31, 10.255.0.1/31] }
  - { endpoints: [r1:eth1, r2:eth0], addresses: [10.255.0.2/31, 10.255.0.3/31] }
# This test starts right after raise_neigh_limit_lasts_as_long_as_the_lab (name order):
# twice in CI its first check heard nothing for the whole timeout, as that lab's `down`
# put the old neighbour limit back under its 1,058 entries and this lab's first ARP
# overflowed the table. `down` now waits for the entries to go (see `neighlimit`).
# The loop comes last: its time-exceeded errors spend r1's ICMP budget towards h1 (a
# token a second per source, shared with the unreachable errors), so checks after it
# would hear little.
tests:
  - reach: { from: h1, to: 10.98.0.1, timeout: 5s, name: router-has-no-route }
  - reach: { from: r1, to: 10.98.0.1, timeout: 1s, name: sender-has-no-route }
  - reach: { from: h1, to: r2, timeout: 5s, name: reaches }
  - reach: { from: h1, to: 10.99.0.1, timeout: 2s, name: loop }
"#,
    );
    let o = test_cmd(&lab, &["--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(!lab.is_up());
    let report: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    let seen = |name: &str| -> (bool, String) {
        let c = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("check {name}: {report}"));
        (c["status"] == "pass", c.to_string())
    };
    let (passed, looped) = seen("loop");
    assert!(!passed, "{looped}");
    assert!(
        looped.contains(
            "h1 -> 10.99.0.1 (outside the lab): no reply: time to live exceeded at 10.255.0.1 (r1)"
        ) || looped.contains(
            "h1 -> 10.99.0.1 (outside the lab): no reply: time to live exceeded at 10.255.0.3 (r2)"
        ),
        "{looped}"
    );
    assert!(looped.contains("a routing loop"), "{looped}");
    let (passed, lacks) = seen("router-has-no-route");
    assert!(!passed, "{lacks}");
    assert!(
        lacks.contains("no reply: network unreachable (ICMP code 0) at 10.255.0.1 (r1) (that router has no route to the destination)"),
        "{lacks}"
    );
    let (passed, own) = seen("sender-has-no-route");
    assert!(!passed, "{own}");
    assert!(
        own.contains("r1 -> 10.98.0.1 (outside the lab): no reply: the sender has no route to it"),
        "{own}"
    );
    let (passed, ok) = seen("reaches");
    assert!(passed, "{ok}");
}

/// `size`, `df` and `ttl` with real packets: a router whose next link has a smaller MTU
/// sends IPv4 fragmentation-needed and IPv6 packet-too-big, named with the router and the
/// MTU; a size that fits passes, and without `df` the big probe passes fragmented. A
/// router without an IPv6 route sends destination unreachable, an IPv6 loop time
/// exceeded, and a `ttl` too small time exceeded from the router at that hop.
#[test]
fn reach_size_df_and_ttl_hear_the_network_say_too_big_and_time_exceeded() {
    if !privileged() {
        return;
    }
    let _h = shared();
    // h1 - r1 =(MTU 1400)= r2 - h2. r1 sends 10.99.0.0/24 and fd00:99::/64 to r2, whose
    // default points back at r1: a loop. Nobody has a route to fd00:98::/64 but the hosts.
    let lab = Lab::new(
        "it-pmtu",
        r#"
routing: static
nodes:
  h1: { routes: [{ to: default, via: r1 }] }
  r1: { routes: [{ to: 10.99.0.0/24, via: r2 }, { to: "fd00:99::/64", via: r2 }] }
  r2: { routes: [{ to: default, via: r1 }] }
  h2: { routes: [{ to: default, via: r2 }] }
links:
  - endpoints: [h1:eth0, r1:eth0]
    addresses: [[10.255.0.0/31, "fd00:a::1/64"], [10.255.0.1/31, "fd00:a::2/64"]]
  - endpoints: [r1:eth1, r2:eth0]
    addresses: [[10.255.0.2/31, "fd00:b::1/64"], [10.255.0.3/31, "fd00:b::2/64"]]
    mtu: 1400
  - endpoints: [r2:eth1, h2:eth0]
    addresses: [[10.255.0.4/31, "fd00:c::1/64"], [10.255.0.5/31, "fd00:c::2/64"]]
# ICMP rate limits: each router's namespace lets out time-exceeded and unreachable errors
# (one budget for both) per address they go to: over IPv4 1 a second with a burst of 6
# (IPv6: every 100 ms on this kernel, net.ipv6.icmp.ratelimit). A failing check probes
# up to 5 times a second, so a second IPv4 check into the same budget could hear
# nothing. So each error check below has a (router, sender) pair of its own: r1 to h1
# (ttl 1, then IPv6 no-route: separate buckets, one per family), r2 to h1 (ttl 2), r1
# to h2 (the expect-fail ttl), r2 to h2 (the IPv6 loop, which expires at r2 for h2's
# probes). Fragmentation-needed and packet-too-big are never rate limited (the kernel
# does not limit path MTU discovery), so the too-big checks hear their router on every
# attempt, and may come first.
tests:
  - reach: { from: h1, to: h2, family: ipv4, size: 1472, df: true, timeout: 3s, name: v4-df-too-big }
  - reach: { from: h1, to: h2, family: ipv4, size: 1372, df: true, timeout: 3s, name: v4-df-fits }
  - reach: { from: h1, to: h2, family: ipv4, size: 1472, timeout: 3s, name: v4-fragmented }
  - reach: { from: h1, to: h2, family: ipv4, size: 1472, df: false, timeout: 3s, name: v4-router-fragments }
  - reach: { from: h1, to: h2, family: ipv4, size: 1473, df: true, timeout: 1s, name: v4-sender-too-big }
  - reach: { from: h1, to: h2, family: ipv6, size: 1452, df: true, timeout: 3s, name: v6-df-too-big }
  - reach: { from: h1, to: h2, family: ipv6, size: 1352, df: true, timeout: 3s, name: v6-df-fits }
  - reach: { from: h1, to: h2, family: ipv6, size: 1452, timeout: 3s, name: v6-fragmented }
  - reach: { from: h1, to: h2, family: ipv4, ttl: 1, timeout: 2s, name: v4-ttl-1 }
  - reach: { from: h1, to: h2, family: ipv4, ttl: 2, timeout: 2s, name: v4-ttl-2 }
  - reach: { from: h1, to: h2, family: ipv4, ttl: 3, timeout: 3s, name: v4-ttl-3 }
  - reach: { from: h2, to: h1, family: ipv4, ttl: 2, expect: fail, timeout: 2s, name: v4-ttl-2-fails }
  - reach: { from: h1, to: h2, family: ipv6, ttl: 2, timeout: 2s, name: v6-ttl-2 }
  - reach: { from: h1, to: h2, family: ipv6, ttl: 3, timeout: 3s, name: v6-ttl-3 }
  - reach: { from: h1, to: "fd00:98::1", timeout: 2s, name: v6-no-route }
  - reach: { from: h2, to: "fd00:99::1", timeout: 2s, name: v6-loop }
  - reach: { from: h1, to: h2, family: ipv4, size: 65507, timeout: 3s, name: v4-largest }
  - reach: { from: h1, to: h2, family: ipv6, size: 65527, timeout: 3s, name: v6-largest }
"#,
    );
    let o = test_cmd(&lab, &["--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(!lab.is_up());
    let report: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    let check = |name: &str| -> serde_json::Value {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("check {name}: {report}"))
            .clone()
    };
    let passes = [
        "v4-df-fits",
        "v4-fragmented",
        "v4-router-fragments",
        "v6-df-fits",
        "v6-fragmented",
        "v4-ttl-3",
        "v4-ttl-2-fails",
        "v6-ttl-3",
        "v4-largest",
        "v6-largest",
    ];
    for name in passes {
        assert_eq!(check(name)["status"], "pass", "{}", check(name));
    }
    let fails = |name: &str, says: &str| {
        let c = check(name);
        assert_eq!(c["status"], "fail", "{c}");
        let reason = c["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(says),
            "{name}: wanted `{says}` in: {reason}"
        );
        c
    };
    // Every attempt of a `df: true` probe reaches the router and hears it again: with
    // IP_PMTUDISC_DO the sender would refuse the probe itself once it learnt the path MTU,
    // and the failure would end "(on an earlier attempt)".
    for (name, says) in [
        (
            "v4-df-too-big",
            "h1 -> h2 (10.255.0.5): no reply: fragmentation needed (packet too big): the next hop's MTU is 1400 at 10.255.0.1 (r1) (a link on the path has a smaller MTU: the probe was 1500 bytes (1472 of payload), `size: 1372` fits)",
        ),
        (
            "v6-df-too-big",
            "h1 -> h2 (fd00:c::2): no reply: fragmentation needed (packet too big): the next hop's MTU is 1400 at fd00:a::2 (r1) (a link on the path has a smaller MTU: the probe was 1500 bytes (1452 of payload), `size: 1352` fits)",
        ),
    ] {
        let c = fails(name, says);
        assert!(c["attempts"].as_u64().unwrap() >= 2, "{c}");
        assert!(
            !c["reason"].as_str().unwrap().contains("earlier attempt"),
            "{c}"
        );
    }
    fails(
        "v4-sender-too-big",
        "no reply: the probe is larger than the MTU of the sender's own outgoing link, and `df: true` forbids fragmenting it (refused before sending)",
    );
    fails(
        "v4-ttl-1",
        "no reply: time to live exceeded at 10.255.0.1 (r1) (the check's `ttl: 1` ran out there: the destination is more than 1 hop away, or the path loops)",
    );
    fails(
        "v4-ttl-2",
        "no reply: time to live exceeded at 10.255.0.3 (r2) (the check's `ttl: 2` ran out there",
    );
    fails(
        "v6-ttl-2",
        "h1 -> h2 (fd00:c::2): no reply: time to live exceeded at fd00:b::2 (r2) (the check's `ttl: 2`",
    );
    fails(
        "v6-no-route",
        "h1 -> fd00:98::1 (outside the lab): no reply: network unreachable (ICMPv6 code 0) at fd00:a::2 (r1) (that router has no route to the destination)",
    );
    // h2 sends with hop limit 255; r2 sees the odd ones, so the last (1) expires there.
    fails(
        "v6-loop",
        "h2 -> fd00:99::1 (outside the lab): no reply: time to live exceeded at fd00:b::2 (r2) (a routing loop",
    );
}
