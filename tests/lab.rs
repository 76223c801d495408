//! Privileged integration tests of `up`/`down`: real namespaces, real packets, and the host
//! left exactly as it was. Each test uses its own lab name. Run as root; under CI=true a
//! test that cannot run fails.

mod support;

use std::io::BufRead;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::*;

#[test]
fn routed_chain_of_5_pings_end_to_end_over_v4_and_v6() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::from_example("it-chain", "chain5.yaml");
    lab.up();
    let lo = |n: &str, v6: bool| lab.addr(n, "lo", v6);
    assert!(lab.ping("r1", &lo("r5", false)), "r1 -> r5 over IPv4");
    assert!(lab.ping("r1", &lo("r5", true)), "r1 -> r5 over IPv6");
    assert!(lab.ping("r5", &lo("r1", false)), "and back");
    lab.down();
}

#[test]
fn bridge_star_of_4_reaches_all_pairs() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::from_example("it-star", "star4.yaml");
    lab.up();
    for a in 1..=4 {
        for b in 1..=4 {
            if a != b {
                let to = lab.addr(&format!("h{b}"), "eth0", false);
                assert!(lab.ping(&format!("h{a}"), &to), "h{a} -> h{b}");
            }
        }
    }
    // The bridge lives in the lab's fabric namespace, not on the host.
    let links = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains("lan1"));
    // The fabric is a switch, not a host: its bridge and ports carry no IPv6 address (no
    // DAD, MLD or router solicitations of their own)...
    let fabric = std::process::Command::new("ip")
        .args(["-n", "nslab.it-star", "-6", "-o", "addr"])
        .output()
        .unwrap();
    assert!(fabric.status.success());
    assert_eq!(text(&fabric).trim(), "", "IPv6 addresses in the fabric");
    // ...yet it still bridges IPv6: h1 reaches h2's link-local address.
    let h2 = lab.exec(
        "h2",
        &[
            "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link",
        ],
    );
    let ll = text(&h2)
        .split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .map(str::to_string)
        .expect("h2 has a link-local address");
    let ping = lab.exec(
        "h1",
        &["ping", "-6", "-c", "1", "-W", "2", &format!("{ll}%eth0")],
    );
    assert!(
        ping.status.success(),
        "h1 -> h2 link-local {ll}: {}",
        text(&ping)
    );
    // Created without multicast snooping (so ports come up in linear time), the bridge
    // ends with it on, as a Linux bridge is by default.
    let bridge = link_details("nslab.it-star", "lan1");
    assert!(bridge.contains("mcast_snooping 1"), "{bridge}");
    // Both ends of a veth have the one transmit queue the kernel would use anyway, asked
    // for at creation (trimming more afterwards waits for an RCU grace period per end).
    for (ns, dev) in [("nslab.it-star", "h1.eth0"), ("nslab.it-star.h1", "eth0")] {
        let l = link_details(ns, dev);
        assert!(l.contains("numtxqueues 1 "), "{ns} {dev}: {l}");
    }
    // Under their mounts, the namespaces' names are hard links to one file (no new inode
    // per namespace). Seen from a private copy of the mount table, with two unmounted.
    let under = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(
            "umount /run/netns/nslab.it-star.h1 /run/netns/nslab.it-star.h2 && \
             stat -c '%i %h' /run/netns/nslab.it-star.h1 /run/netns/nslab.it-star.h2",
        )
        .output()
        .unwrap();
    assert!(under.status.success(), "{}", text(&under));
    let rows: Vec<&str> = std::str::from_utf8(&under.stdout)
        .unwrap()
        .lines()
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0], rows[1], "one inode for both names");
    let links: u32 = rows[0].split(' ').nth(1).unwrap().parse().unwrap();
    assert!(links >= 5, "the lab's 5 names link one inode: {rows:?}");
    lab.down();
}

/// `ip -d link show` of one interface in a namespace, as text.
fn link_details(netns: &str, dev: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["-n", netns, "-d", "link", "show", dev])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip -n {netns} link show {dev}: {}",
        text(&out)
    );
    text(&out)
}

#[test]
fn ecmp_route_is_in_the_kernel_with_both_next_hops() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::from_example("it-ecmp", "ecmp-diamond.yaml");
    lab.up();
    let dump = nslab::runtime::dump_lab(&nslab::state::HostContext::from_env(), "it-ecmp").unwrap();
    let r1 = dump.iter().find(|n| n.netns == "nslab.it-ecmp.r1").unwrap();
    let route = r1
        .routes
        .iter()
        .find(|r| r.starts_with("10.20.0.0/24"))
        .expect("the ECMP route");
    for (peer, dev) in [("r2", "eth1"), ("r3", "eth2")] {
        let hop = format!(
            "nexthop via {} dev #{}",
            lab.addr(peer, "eth1", false),
            lab.ifindex("r1", dev)
        );
        assert!(route.contains(&hop), "{hop} in {route}");
    }
    assert!(lab.ping("h1", "10.20.0.2"), "traffic crosses the diamond");
    // And through iproute2, for a cross-check.
    let out = lab.exec("r1", &["ip", "route", "show", "10.20.0.0/24"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("nexthop via").count(), 2, "{text}");
    lab.down();
}

const SAMPLE: &str = "
addressing: { ipv6: 'fd00:5a::/48' }
bridges: { sw: {} }
nodes:
  r1:
    loopback: auto
    sysctls: { net.ipv4.ip_forward: 1, net.ipv6.conf.all.forwarding: 1 }
    routes: [{ to: 10.0.0.2/32, via: r2 }]
  r2: { loopback: [10.0.0.2/32, 'fd00:5a::2/128'], routes: [{ to: default, via: r1 }] }
  h1: { routes: [{ to: default, via: r1 }] }
  h2: { routes: [{ to: 10.0.0.0/16, via: r1 }] }
links:
  - [r1:eth1, r2:eth1]
  - { endpoints: [r1:eth2, sw], mtu: 1400 }
  - [h1:eth0, sw]
  - [h2:eth0, sw]
";

#[test]
fn host_is_untouched_by_up_and_down() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let before = host_snapshot();
    let a = Lab::new("it-host", SAMPLE);
    let b = Lab::from_example("it-host2", "dual-stack.yaml");
    a.up();
    b.up();
    assert_ne!(
        host_snapshot(),
        before,
        "the labs show up in /run/netns while up"
    );
    assert!(
        a.ping("h1", "10.0.0.2"),
        "h1 reaches r2's loopback through r1"
    );
    a.down();
    b.down();
    assert_same_host(&before, &host_snapshot(), "after up and down");
}

#[test]
fn same_kernel_state_across_runs_and_job_counts() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new("it-determ", SAMPLE);
    let mut dumps = Vec::new();
    for jobs in ["8", "1", "16"] {
        let o = lab.up_with(&["--jobs", jobs]);
        assert!(o.status.success(), "{}", text(&o));
        dumps.push(serde_json::to_string_pretty(&settled_dump("it-determ")).unwrap());
        lab.down();
    }
    assert!(
        dumps[0].contains("10.0.0.0/16 unicast static"),
        "{}",
        dumps[0]
    );
    assert_eq!(dumps[0], dumps[1], "--jobs 8 and --jobs 1 differ");
    assert_eq!(dumps[0], dumps[2], "a second run differs from the first");
}

#[test]
fn a_failure_at_any_step_rolls_back_to_a_clean_host() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let lab = Lab::new("it-fault", SAMPLE);
    let plan = nslab::compile_file(&lab.file)
        .map(|c| nslab::plan::plan(&c.topology))
        .unwrap();
    let before = host_snapshot();
    for k in 1..=plan.steps.len() {
        let o = nslab()
            .arg("up")
            .arg(&lab.file)
            .env("NSLAB_TEST_FAIL_AT_STEP", k.to_string())
            .output()
            .unwrap();
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "step {k}: {t}");
        assert!(t.contains("injected failure"), "step {k}: {t}");
        assert!(
            t.contains("lab `it-fault`, node `"),
            "step {k}: the error names the node: {t}"
        );
        assert!(!lab.is_up(), "step {k}: the journal is gone");
        assert_same_host(&before, &host_snapshot(), &format!("failure at step {k}"));
    }
}

/// Starts a slowed-down `up` and waits until it has journaled `objects` objects. The
/// caller waits for the child.
#[allow(clippy::zombie_processes)]
fn start_slow_up(lab: &Lab, objects: usize) -> std::process::Child {
    let mut child = nslab()
        .arg("up")
        .arg(&lab.file)
        .args(["--jobs", "2"])
        .env("NSLAB_TEST_STEP_DELAY_MS", "20")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let journal = std::path::Path::new("/run/nslab").join(format!("{}.journal", lab.name));
    let start = Instant::now();
    loop {
        let n = std::fs::File::open(&journal)
            .map(|f| {
                std::io::BufReader::new(f)
                    .lines()
                    .filter(|l| l.as_ref().is_ok_and(|l| l.contains("\"object\"")))
                    .count()
            })
            .unwrap_or(0);
        if n >= objects {
            return child;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("up never got going");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn kill_9_during_up_then_down_leaves_nothing() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let before = host_snapshot();
    let lab = Lab::new("it-kill", SAMPLE);
    let mut child = start_slow_up(&lab, 6);
    // SAFETY: killing the child we spawned, by pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    assert!(lab.is_up(), "the journal survives the kill");
    let o = nslab().args(["up"]).arg(&lab.file).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("leftovers of an interrupted `up`"),
        "{}",
        text(&o)
    );
    lab.down();
    assert_same_host(&before, &host_snapshot(), "after kill -9 and down");
}

#[test]
fn sigint_and_sigterm_during_up_roll_back() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let before = host_snapshot();
    for (sig, name, code) in [
        (libc::SIGINT, "SIGINT", 130),
        (libc::SIGTERM, "SIGTERM", 143),
    ] {
        let lab = Lab::new("it-signal", SAMPLE);
        let child = start_slow_up(&lab, 6);
        // SAFETY: signalling the child we spawned, by pid.
        unsafe { libc::kill(child.id() as i32, sig) };
        let o = child.wait_with_output().unwrap();
        // 128 + N once rolled back, not 2: a cancel, not a lab that could not come up.
        assert_eq!(o.status.code(), Some(code), "{}", text(&o));
        assert!(
            text(&o).contains(&format!("interrupted by {name}")),
            "{}",
            text(&o)
        );
        assert!(!lab.is_up());
        assert_same_host(&before, &host_snapshot(), name);
    }
}

#[test]
fn up_and_down_on_one_lab_are_serialised() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new("it-serial", SAMPLE);
    let up = start_slow_up(&lab, 3);
    let holder = up.id();
    // `down` must wait for `up` to finish, then remove the complete lab.
    let down = nslab().args(["down", "it-serial"]).output().unwrap();
    let up = up.wait_with_output().unwrap();
    assert!(up.status.success(), "up: {}", text(&up));
    assert!(down.status.success(), "down: {}", text(&down));
    // The holder's pid comes from /proc/locks (the lock file holds no data).
    assert!(
        text(&down).contains(&format!("is busy with another command (pid {holder})")),
        "{}",
        text(&down)
    );
    assert!(!lab.is_up());
    assert!(!std::path::Path::new("/run/netns/nslab.it-serial.r1").exists());
}

#[test]
fn two_labs_run_side_by_side() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let a = Lab::from_example("it-side-a", "two-hosts.yaml");
    let b = Lab::from_example("it-side-b", "two-hosts.yaml");
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| a.up_with(&[]));
        let tb = s.spawn(|| b.up_with(&[]));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert!(
        ra.status.success() && rb.status.success(),
        "{} {}",
        text(&ra),
        text(&rb)
    );
    // Same addresses, separate namespaces: each lab reaches its own peer.
    let peer = a.addr("h2", "eth0", false);
    assert_eq!(peer, b.addr("h2", "eth0", false));
    assert!(a.ping("h1", &peer));
    assert!(b.ping("h1", &peer));
    a.down();
    assert!(b.ping("h1", &peer), "taking lab a down leaves lab b alone");
    // With two labs up, a command without --lab must refuse and list them.
    let c = Lab::from_example("it-side-c", "two-hosts.yaml");
    c.up();
    let o = nslab().args(["status"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    b.down();
    c.down();
}

#[test]
fn missing_kernel_feature_is_named() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let netem = std::path::Path::new("/sys/module/sch_netem").exists();
    let lab = Lab::new(
        "it-netem",
        "nodes: { a: {}, b: {} }\nlinks:\n  - { endpoints: [a:eth0, b:eth0], impair: { delay: 10ms } }\n",
    );
    let o = lab.up_with(&[]);
    if netem {
        assert!(o.status.success(), "{}", text(&o));
        lab.down();
        return;
    }
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("this kernel has no `netem` qdisc") && t.contains("set impair"),
        "{t}"
    );
    assert!(!lab.is_up());
    // A plain rate needs only tbf, which this kernel has.
    let rate = Lab::new(
        "it-tbf",
        "nodes: { a: {}, b: {} }\nlinks:\n  - { endpoints: [a:eth0, b:eth0], impair: { rate: 10mbit } }\n",
    );
    rate.up();
    let q = rate.exec("a", &["tc", "qdisc", "show", "dev", "eth0"]);
    assert!(
        String::from_utf8_lossy(&q.stdout).contains("tbf"),
        "{}",
        text(&q)
    );
    assert!(rate.ping("a", &rate.addr("b", "eth0", false)));
    rate.down();
}

#[test]
fn up_twice_is_refused_and_down_needs_no_file() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::from_example("it-twice", "two-hosts.yaml");
    lab.up();
    let o = lab.up_with(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("lab `it-twice` is already up"),
        "{}",
        text(&o)
    );
    // down works from the journal alone: the file is gone.
    std::fs::remove_file(&lab.file).unwrap();
    lab.down();
    let o = nslab().args(["down", "it-twice"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("no lab named `it-twice` is up"));
}

#[test]
fn a_foreign_namespace_is_refused_and_left_alone() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::from_example("it-foreign", "two-hosts.yaml");
    let ns = "nslab.it-foreign.h2";
    let foreign = support::netns::ForeignNetns::new(ns);
    let o = lab.up_with(&[]);
    drop(foreign);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("nslab.it-foreign.h2 already exists"),
        "{}",
        text(&o)
    );
    assert!(!lab.is_up());
    assert!(
        !std::path::Path::new("/run/nslab/it-foreign.lock").exists(),
        "a refused up leaves no lock file"
    );
}

#[test]
fn status_and_ls_describe_a_running_lab() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::from_example("it-status", "triangle.yaml");
    lab.up();
    let o = nslab()
        .args(["status", "it-status", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let r1 = &v["nodes"][0];
    assert_eq!(r1["name"], "r1");
    assert_eq!(r1["state"], "up");
    let eth1 = r1["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "eth1")
        .unwrap();
    assert_eq!(eth1["addresses"][0], "10.1.2.0/31");
    let o = nslab().args(["ls"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("it-status"));
    // Exit codes and stdin pass through exec.
    let o = lab.exec("r1", &["sh", "-c", "exit 5"]);
    assert_eq!(o.status.code(), Some(5));
    let mut child = nslab()
        .args(["exec", "--lab", "it-status", "r2", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through stdin\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "through stdin\n");
    // A link taken down shows in status.
    let _ = lab.exec("r3", &["ip", "link", "set", "eth1", "down"]);
    let o = nslab().args(["status", "it-status"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("degraded"));
    lab.down();
}

#[test]
fn a_lab_name_never_becomes_a_path_outside_the_run_directory() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let dir = std::env::temp_dir().join("nslab-tests/victim");
    std::fs::create_dir_all(&dir).unwrap();
    let victim = dir.join("precious");
    std::fs::write(&victim, "keep me\n").unwrap();
    // Far enough up from /run/nslab to reach the victim from the root.
    let sneaky = format!("../../../..{}", victim.display());
    let file = dir.join("evil.yaml");
    std::fs::write(&file, format!("name: \"{sneaky}\"\nnodes: {{ a: {{}} }}\n")).unwrap();
    for args in [
        vec!["down", sneaky.as_str()],
        vec!["down", "--lab", sneaky.as_str()],
        vec!["down", file.to_str().unwrap()],
        vec!["status", "--lab", sneaky.as_str()],
        vec!["ps", "--lab", sneaky.as_str()],
    ] {
        let o = nslab().args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(3), "{args:?}: {}", text(&o));
        // (Positionally the path names an existing file, read as a topology.)
        assert!(
            text(&o).contains("lab name `") || text(&o).contains("has no `name:`"),
            "{args:?}: {}",
            text(&o)
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
    }
    // The Rust API refuses it too.
    let api = nslab::apply::resolve_lab(&nslab::state::HostContext::from_env(), Some(&sneaky));
    assert!(api.is_err());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn labs_coming_and_going_in_parallel_never_trip_over_each_other() {
    if !privileged() {
        return;
    }
    let _h = shared();
    // The last lab going down releases /run/netns (when nslab made it); another lab's
    // `up` in the same instant must neither lose the directory nor fail on its lock.
    let workers: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let lab = Lab::new(
                    &format!("it-par{i}"),
                    "nodes: { a: {}, b: {} }\nlinks: [[a:eth0, b:eth0]]\n",
                );
                for _ in 0..10 {
                    lab.up();
                    assert!(lab.ping("a", "b"));
                    lab.down();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("every up and down succeeded");
    }
}

#[test]
fn down_then_up_at_once_works_while_the_kernel_frees_namespaces() {
    if !privileged() {
        return;
    }
    let _h = shared();
    // A chain of 60 (the kernel frees 60 namespaces, their veths and a node's init in the
    // background after `down`) with one full-isolation node running a process.
    let mut yaml =
        String::from("nodes:\n  svc: { processes: [{ name: p, cmd: \"sleep 1000\" }] }\n");
    for i in 1..=60 {
        yaml.push_str(&format!("  r{i}: {{ isolation: [net] }}\n"));
    }
    yaml.push_str("links:\n  - [svc:eth0, r1:eth9]\n");
    for i in 1..60 {
        yaml.push_str(&format!("  - [r{i}:eth1, r{}:eth0]\n", i + 1));
    }
    yaml.push_str("tests:\n  - reach: { from: r1, to: r2 }\n  - reach: { from: svc, to: r1 }\n");
    let lab = Lab::new("it-relag", &yaml);
    for round in 0..3 {
        lab.up();
        let o = nslab()
            .args(["test", "--lab", "it-relag"])
            .output()
            .unwrap();
        assert!(o.status.success(), "round {round}: {}", text(&o));
        lab.down();
    }
}

/// Runs nslab under a pseudo-terminal (`script`), so stderr is a TTY; returns the output.
fn on_a_terminal(args: &str, ci: Option<&str>) -> String {
    let mut cmd = std::process::Command::new("script");
    cmd.args([
        "-qec",
        &format!("{} {args}", env!("CARGO_BIN_EXE_nslab")),
        "/dev/null",
    ]);
    match ci {
        Some(v) => cmd.env("CI", v),
        None => cmd.env_remove("CI"),
    };
    let o = cmd.output().expect("script (bsdutils) runs");
    assert!(o.status.success(), "{args}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn progress_shows_on_a_terminal_and_never_in_ci_or_with_quiet() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let mut yaml = String::from("nodes:\n");
    for i in 1..=30 {
        yaml.push_str(&format!("  r{i}: {{ isolation: [net] }}\n"));
    }
    yaml.push_str("links:\n");
    for i in 1..30 {
        yaml.push_str(&format!("  - [r{i}:eth1, r{}:eth0]\n", i + 1));
    }
    let lab = Lab::new("it-progress", &yaml);
    let file = lab.file.display().to_string();
    let up = on_a_terminal(&format!("up {file}"), None);
    // The bar: the lab, the phase, steps done of the total, the kind of step.
    assert!(up.contains("it-progress up"), "{up:?}");
    let steps = up
        .split("links (")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("no step count in {up:?}"));
    assert!(up.contains(&format!("/{steps}")), "{up:?}");
    assert!(up.contains("lab `it-progress` is up"), "{up:?}");
    let down = on_a_terminal("down it-progress", None);
    assert!(down.contains("it-progress delete namespaces"), "{down:?}");
    // CI: no bar, only the result line; --quiet: nothing at all on success, as cargo -q.
    for (args, ci, lines) in [
        (format!("up {file}"), Some("true"), 1),
        ("down it-progress".to_string(), Some("true"), 1),
        (format!("up --quiet {file}"), None, 0),
        ("down -q it-progress".to_string(), None, 0),
    ] {
        let out = on_a_terminal(&args, ci);
        assert!(
            !out.contains('[') && out.lines().count() == lines,
            "{args} (CI={ci:?}) printed other than {lines} result line(s): {out:?}"
        );
    }
    assert!(!lab.is_up(), "the quiet down left the lab up");
}

#[test]
fn down_kills_processes_left_in_a_net_only_node() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "it-stray",
        "defaults: { isolation: [net] }\nnodes:\n  a: {}\n  b: {}\n",
    );
    lab.up();
    // Something started into the node's namespace behind nslab's back, as `ip netns exec`
    // or a backgrounded `nslab exec` leaves it.
    let mut stray = std::process::Command::new("ip")
        .args(["netns", "exec", "nslab.it-stray.b", "sleep", "1000"])
        .spawn()
        .unwrap();
    let ns_of = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
    let b_ns = std::fs::metadata("/run/netns/nslab.it-stray.b").map(|m| {
        use std::os::unix::fs::MetadataExt;
        format!("net:[{}]", m.ino())
    });
    wait_for("the stray process to enter b", || {
        ns_of(stray.id()).map(|l| l.to_string_lossy().into_owned()) == b_ns.as_ref().ok().cloned()
    });
    lab.down();
    let end = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = stray.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "the stray process outlived `down`");
        std::thread::sleep(Duration::from_millis(20));
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
}

/// `-q` on `validate` and `apply` prints nothing on success, as on `up` and `down`: no
/// summary line, where the same command without it prints one.
#[test]
fn quiet_validate_and_apply_print_nothing_on_success() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new("it-quietap", "nodes: { a: {}, b: {} }\nlinks: [[a, b]]\n");
    let run = |args: &[&str]| {
        let o = nslab().args(args).arg(&lab.file).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        text(&o)
    };
    assert!(run(&["validate"]).contains("is valid"));
    assert_eq!(run(&["validate", "-q"]), "");
    // A lab that is not up is brought up by apply; then an edit is applied in place.
    assert_eq!(run(&["apply", "-q"]), "");
    assert!(lab.is_up());
    std::fs::write(
        &lab.file,
        "name: it-quietap\nnodes: { a: {}, b: {}, c: {} }\nlinks: [[a, b], [b, c]]\n",
    )
    .unwrap();
    assert_eq!(run(&["apply", "--quiet"]), "");
    assert!(lab.topology().node("c").is_some());
    // Nothing left to change: without -q it says so.
    assert!(!run(&["apply"]).is_empty());
    lab.down();
}

#[test]
fn status_and_a_missing_interface_list_interfaces_in_reading_order() {
    if !privileged() {
        return;
    }
    let _h = shared();
    // The kernel lists a node's interfaces by ifindex, which nslab hashes: people read
    // lo, eth0, eth1, eth2, eth10.
    let lab = Lab::new(
        "it-ifsort",
        "nodes: { a: {}, b: {} }\nlinks:\n  - [a:eth10, b:eth3]\n  - [a:eth2, b:eth2]\n  - [a:eth0, b:eth0]\n  - [a:eth1, b:eth1]\n",
    );
    lab.up();
    let o = nslab().args(["status", "it-ifsort"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    let at = table.lines().nth(1).unwrap().find("IFACE").unwrap();
    let ifaces: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.starts_with("a "))
        .take(5)
        .filter_map(|l| l.get(at..).and_then(|r| r.split_whitespace().next()))
        .collect();
    assert_eq!(ifaces, ["lo", "eth0", "eth1", "eth2", "eth10"], "{table}");
    // A link without carrier (its far end down) is 10 characters: the columns after it
    // still line up with their headers.
    let o = nslab()
        .args(["link", "down", "--lab", "it-ifsort", "--one-side", "a:eth0"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = nslab().args(["status", "it-ifsort"]).output().unwrap();
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    let head = table.lines().nth(1).unwrap();
    let col = |name: &str| head.find(name).unwrap();
    let (link, mtu_end) = (col("LINK"), col("MTU") + 3);
    let rows: Vec<&str> = table.lines().skip(2).collect();
    assert!(
        rows.iter()
            .any(|r| r.get(link..).is_some_and(|r| r.starts_with("no-carrier"))),
        "{table}"
    );
    for r in &rows {
        let cell = r.get(link..).and_then(|r| r.split_whitespace().next());
        assert!(
            matches!(cell, Some("up" | "down" | "no-carrier")),
            "{r:?} in\n{table}"
        );
        // The MTU is right-aligned under its header: a digit ends there, a blank follows.
        let b = r.as_bytes();
        assert!(
            b[mtu_end - 1].is_ascii_digit() && b.get(mtu_end).is_none_or(|c| *c == b' '),
            "{r:?} in\n{table}"
        );
    }
    let o = nslab()
        .args(["link", "down", "--lab", "it-ifsort", "a:eth9"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("it has: eth0, eth1, eth2, eth10"),
        "{}",
        text(&o)
    );
    lab.down();
}
