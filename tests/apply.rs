//! `nslab apply` on real labs: a changed lab is exactly the lab a fresh `up` of the new
//! file gives (a normalised kernel dump), untouched processes keep their pids, a second
//! apply changes nothing, a failure rolls back only its change, and a `kill -9` in the
//! middle converges on the next `apply` or `down`.

mod support;

use std::process::Output;

use support::*;

/// Routers with a bridge LAN, loopbacks and static routes; `b` runs processes.
const BASE: &str = "
defaults: { sysctls: { net.ipv4.ip_forward: 1 } }
bridges: { lan: {} }
nodes:
  a: { loopback: auto }
  b:
    processes:
      - { name: p1, cmd: 'sleep 1000' }
      - { name: p2, cmd: 'sleep 2000' }
  c: { sysctls: { net.ipv4.conf.all.rp_filter: 2 } }
  h1: {}
  h2: {}
links:
  - [a:eth0, b:eth0]
  - [b:eth1, c:eth0]
  - [h1:eth0, lan]
  - [h2:eth0, lan]
  - [c:eth1, lan]
routing: static
";

fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "`{from}` is not in the base lab");
    BASE.replace(from, to)
}

fn apply(lab: &Lab, args: &[&str]) -> Output {
    nslab()
        .arg("apply")
        .arg(&lab.file)
        .args(args)
        .output()
        .unwrap()
}

fn apply_ok(lab: &Lab) -> String {
    let o = apply(lab, &[]);
    assert!(
        o.status.success(),
        "apply {} failed: {}",
        lab.name,
        text(&o)
    );
    text(&o)
}

fn write(lab: &Lab, yaml: &str) {
    std::fs::write(&lab.file, format!("name: {}\n{yaml}", lab.name)).unwrap();
}

/// The kernel's state of the lab, then the files in its node directory (pid files and
/// control sockets: a removed node's must go with its init).
fn dump(lab: &Lab) -> String {
    let kernel = serde_json::to_string_pretty(&settled_dump(&lab.name)).unwrap();
    let dir = format!("/run/nslab/{}.nodes", lab.name);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    format!("{kernel}\n{dir}:\n{}", files.join("\n"))
}

/// The lab as a fresh `up` of `yaml` has it.
fn fresh(lab: &Lab, yaml: &str) -> String {
    write(lab, yaml);
    lab.up();
    let d = dump(lab);
    lab.down();
    d
}

/// Applies `to` on a lab brought up from `from`, and compares with a fresh `to`.
fn converges(lab: &Lab, from: &str, to: &str) {
    let want = fresh(lab, to);
    write(lab, from);
    apply_ok(lab);
    write(lab, to);
    let out = apply_ok(lab);
    let got = dump(lab);
    if got != want {
        // Where they part, with some context.
        let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
        let at = g
            .iter()
            .zip(&w)
            .position(|(a, b)| a != b)
            .unwrap_or(g.len().min(w.len()));
        let from = at.saturating_sub(12);
        let diff = [
            format!("  applied:\n{}", g[from..(at + 8).min(g.len())].join("\n")),
            format!("  fresh:\n{}", w[from..(at + 8).min(w.len())].join("\n")),
        ];
        panic!(
            "{}: the applied lab differs from a fresh one\n{out}\n{}",
            lab.name,
            diff.join("\n")
        );
    }
    // And nothing is left to do.
    assert!(apply_ok(lab).contains("nothing changed"));
    lab.down();
}

#[test]
fn applied_labs_equal_fresh_ones() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new("it-ap-eq", BASE);
    let cases = [
        // A node and a link inserted in the middle of the declarations.
        edit("  h1: {}", "  r9: {}\n  h1: {}").replace(
            "  - [b:eth1, c:eth0]",
            "  - [a:eth1, r9:eth0]\n  - [b:eth1, c:eth0]",
        ),
        // A node removed, with its links.
        edit("  h2: {}\n", "").replace("  - [h2:eth0, lan]\n", ""),
        // A host moved to another LAN.
        edit("bridges: { lan: {} }", "bridges: { lan: {}, lan2: {} }")
            .replace("[h2:eth0, lan]", "[h2:eth0, lan2]")
            .replace("  h2: {}", "  h2: {}\n  r2: {}")
            .replace(
                "  - [c:eth1, lan]",
                "  - [c:eth1, lan]\n  - [r2:eth0, lan2]",
            ),
        // MTU, sysctls changed and removed, a route by hand.
        edit(
            "  - [a:eth0, b:eth0]",
            "  - { endpoints: [a:eth0, b:eth0], mtu: 9000 }",
        )
        .replace(
            "net.ipv4.conf.all.rp_filter: 2",
            "net.ipv4.conf.all.log_martians: 1",
        )
        .replace(
            "  a: { loopback: auto }",
            "  a: { loopback: auto, routes: [{ to: 192.0.2.0/24, type: blackhole }] }",
        ),
        // An isolation change replaces the node; its peers' links are made again.
        edit("  c: {", "  c: { isolation: [net, uts, mnt],"),
        // New limits restart the node; its links stay.
        edit("  b:\n", "  b:\n    limits: { pids: 128 }\n"),
        // A node that ran nothing gets an init, a process and a command.
        edit(
            "  h1: {}",
            "  h1: { processes: [{ name: q, cmd: 'sleep 1000' }], exec: ['touch /tmp/x'] }",
        ),
    ];
    for (i, case) in cases.iter().enumerate() {
        eprintln!("case {i}");
        converges(&lab, BASE, case);
        converges(&lab, case, BASE);
    }
}

/// `ps --lab LAB NODE --json`, as (name, pid, uptime in ms) of running processes (pids
/// as the node's own pid namespace numbers them; the uptime tells a restart apart).
fn procs(lab: &Lab, node: &str) -> Vec<(String, i64, i64)> {
    let o = nslab()
        .args(["ps", "--lab", &lab.name, node, "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let list = v[0]["processes"].as_array().cloned().unwrap_or_default();
    let mut out: Vec<(String, i64, i64)> = list
        .iter()
        .filter_map(|p| {
            Some((
                p["name"].as_str()?.to_string(),
                p["pid"].as_i64()?,
                p["uptime_ms"].as_i64()?,
            ))
        })
        .collect();
    out.sort();
    out
}

/// The names and pids alone.
fn pids(lab: &Lab, node: &str) -> Vec<(String, i64)> {
    procs(lab, node)
        .into_iter()
        .map(|(n, p, _)| (n, p))
        .collect()
}

#[test]
fn untouched_processes_keep_their_pids() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new("it-ap-pid", BASE);
    apply_ok(&lab);
    let before = procs(&lab, "b");
    assert_eq!(before.len(), 2, "{before:?}");
    // A link added elsewhere, p2 changed, p3 added: p1 keeps its pid.
    write(
        &lab,
        &edit("sleep 2000", "sleep 2001")
            .replace(
                "      - { name: p2",
                "      - { name: p3, cmd: 'sleep 3000' }\n      - { name: p2",
            )
            .replace(
                "  - [c:eth1, lan]",
                "  - [c:eth1, lan]\n  - [a:eth1, c:eth2]",
            ),
    );
    let o = apply(&lab, &["--dry-run", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["restart"], 0, "{plan:#}");
    assert_eq!(plan["replace"], 0, "{plan:#}");
    apply_ok(&lab);
    let after = procs(&lab, "b");
    let find = |l: &[(String, i64, i64)], n: &str| l.iter().find(|p| p.0 == n).cloned();
    let (p1, p1_after) = (find(&before, "p1").unwrap(), find(&after, "p1").unwrap());
    assert_eq!(
        p1.1, p1_after.1,
        "p1 keeps its pid: {before:?} -> {after:?}"
    );
    assert!(
        p1_after.2 >= p1.2,
        "p1 was not restarted: {before:?} -> {after:?}"
    );
    let (p2, p2_after) = (find(&before, "p2").unwrap(), find(&after, "p2").unwrap());
    assert_ne!(p2.1, p2_after.1, "p2 changed: it restarts");
    assert!(find(&after, "p3").is_some(), "p3 runs: {after:?}");
    // The new link carries traffic.
    assert!(lab.ping("a", "c"), "a reaches c");
    // A node that ran nothing gets its first process.
    let text = std::fs::read_to_string(&lab.file).unwrap().replace(
        "  h1: {}",
        "  h1: { processes: [{ name: q, cmd: 'sleep 1000' }] }",
    );
    std::fs::write(&lab.file, text).unwrap();
    apply_ok(&lab);
    assert_eq!(pids(&lab, "h1").len(), 1, "q runs on h1");
    assert_eq!(procs(&lab, "b")[0].1, p1.1, "p1 still keeps its pid");
    lab.down();
}

#[test]
fn a_second_apply_changes_nothing_and_up_points_to_apply() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new("it-ap-noop", BASE);
    let first = apply_ok(&lab);
    assert!(first.contains("was not up"), "{first}");
    let journal = std::fs::read_to_string("/run/nslab/it-ap-noop.journal").unwrap();
    let again = apply_ok(&lab);
    assert!(again.contains("nothing changed"), "{again}");
    let after = std::fs::read_to_string("/run/nslab/it-ap-noop.journal").unwrap();
    assert_eq!(journal, after, "a no-op apply writes nothing");
    let o = lab.up_with(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("nslab apply"), "{}", text(&o));
    // The dry run says what would change, and changes nothing.
    write(
        &lab,
        &edit("  h2: {}\n", "").replace("  - [h2:eth0, lan]\n", ""),
    );
    let before = dump(&lab);
    let o = apply(&lab, &["--dry-run"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("h2 (remove)"), "{}", text(&o));
    assert_eq!(before, dump(&lab));
    lab.down();
}

#[test]
fn a_failed_apply_rolls_back_only_its_change() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new("it-ap-fail", BASE);
    let want = fresh(&lab, BASE);
    apply_ok(&lab);
    let before = pids(&lab, "b");
    let changed = edit("  h2: {}", "  h2: {}\n  r9: {}")
        .replace(
            "  - [c:eth1, lan]",
            "  - [c:eth1, lan]\n  - [a:eth1, r9:eth0]",
        )
        .replace(
            "net.ipv4.ip_forward: 1",
            "net.ipv4.ip_forward: 1, net.ipv4.tcp_syncookies: 0",
        );
    write(&lab, &changed);
    for step in [1, 3, 8] {
        let o = nslab()
            .arg("apply")
            .arg(&lab.file)
            .env("NSLAB_TEST_FAIL_AT_STEP", step.to_string())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(text(&o).contains("rolled back"), "{}", text(&o));
        assert!(lab.is_up());
        assert_eq!(dump(&lab), want, "step {step}: the lab is as before");
        assert_eq!(pids(&lab, "b"), before, "its processes were not touched");
    }
    lab.down();
}

/// How far into its journal records the apply below is killed, at most: about halfway
/// (it writes 49, `applied` last).
const INTO: usize = 24;

/// The journal records the `apply` of process `pid` wrote after its own `apply` record;
/// `None` before that record.
fn records_into(lab: &Lab, pid: u32) -> Option<usize> {
    let journal = std::fs::read_to_string(format!("/run/nslab/{}.journal", lab.name)).ok()?;
    let lines: Vec<&str> = journal.lines().collect();
    let mine = format!("\"pid\":{pid},");
    let at = lines
        .iter()
        .rposition(|l| l.starts_with("{\"record\":\"apply\"") && l.contains(&mine))?;
    Some(lines.len() - at - 1)
}

#[test]
fn kill_9_during_apply_then_apply_or_down_converges() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let host = host_snapshot();
    let lab = Lab::new("it-ap-kill", BASE);
    let changed = edit("  c: {", "  c: { isolation: [net, uts, mnt],")
        .replace("  h2: {}", "  h2: {}\n  r9: {}\n  r8: {}")
        .replace(
            "  - [c:eth1, lan]",
            "  - [c:eth1, lan]\n  - [a:eth1, r9:eth0]\n  - [r9:eth1, r8:eth0]",
        );
    let want = fresh(&lab, &changed);
    for (into, then_down) in [(2, false), (INTO / 2, true), (INTO, false)] {
        write(&lab, BASE);
        apply_ok(&lab);
        write(&lab, &changed);
        // One step at a time, 40 ms each: the kill lands in the middle, `into` journal
        // records into this apply. (A time after the spawn could land before the apply
        // began, on a host busy enough that nslab takes that long to start.)
        let child = nslab()
            .arg("apply")
            .arg(&lab.file)
            .args(["--jobs", "1"])
            .env("NSLAB_TEST_STEP_DELAY_MS", "40")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        wait_for("the apply to get that far", || {
            records_into(&lab, pid).is_some_and(|n| n >= into)
        });
        // SAFETY: killing the child we started, by its pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        wait_or_kill(child).unwrap();
        let journal = std::fs::read_to_string("/run/nslab/it-ap-kill.journal").unwrap();
        let last = journal
            .lines()
            .rev()
            .find(|l| l.contains("\"record\":\"appl"))
            .unwrap();
        assert!(
            last.contains("\"apply\""),
            "killed {into} records in: the apply had finished"
        );
        if then_down {
            lab.down();
        } else {
            let out = apply_ok(&lab);
            assert_eq!(dump(&lab), want, "killed {into} records in:\n{out}");
            lab.down();
        }
        assert_same_host(
            &host,
            &host_snapshot(),
            &format!("killed {into} records in"),
        );
    }
}

/// The lab's events, as `nslab events --json` prints them: (action, target, detail).
fn events(lab: &Lab) -> Vec<(String, String, String)> {
    let o = nslab()
        .args(["events", &lab.name, "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let s = |e: &serde_json::Value, k: &str| e[k].as_str().unwrap_or("").to_string();
    (v.as_array().unwrap().iter())
        .map(|e| (s(e, "action"), s(e, "target"), s(e, "detail")))
        .collect()
}

#[test]
fn apply_records_its_change_or_its_rollback_in_the_event_log() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new("it-ap-events", BASE);
    apply_ok(&lab);
    assert_eq!(events(&lab), [], "bringing the lab up is no change");
    write(
        &lab,
        &edit("  h2: {}\n", "").replace("  - [h2:eth0, lan]\n", ""),
    );
    let out = apply_ok(&lab);
    let ev = events(&lab);
    let summary = out.lines().next().unwrap().split_once(": ").unwrap().1;
    assert_eq!(
        ev[0],
        ("apply".into(), "it-ap-events".into(), summary.to_string()),
        "{out}"
    );
    assert!(summary.starts_with("0 nodes added, 1 removed;"), "{out}");
    let h2 = ev.iter().find(|e| e.1 == "h2").expect("an event for h2");
    assert_eq!(h2.0, "apply");
    assert!(h2.2.starts_with("removed: "), "{h2:?}");
    // One event per node the dry run listed, after the lab's.
    let nodes = out
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("    "));
    assert_eq!(ev.len(), 1 + nodes.count(), "{ev:?}\n{out}");
    // The same file again: said so.
    apply_ok(&lab);
    let ev = events(&lab);
    let last = ev.last().unwrap();
    assert_eq!(last.1, "it-ap-events");
    assert_eq!(last.2, "nothing changed");
    // A failed change: rolled back, and recorded as such.
    write(
        &lab,
        &edit("  h2: {}", "  r9: {}").replace("  - [h2:eth0, lan]", "  - [a:eth1, r9:eth0]"),
    );
    let o = nslab()
        .arg("apply")
        .arg(&lab.file)
        .env("NSLAB_TEST_FAIL_AT_STEP", "2")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let ev = events(&lab);
    let last = ev.last().unwrap();
    assert_eq!(
        (last.0.as_str(), last.1.as_str()),
        ("apply-failed", "it-ap-events")
    );
    assert!(
        last.2
            .contains("the apply failed and its changes were rolled back")
            && last.2.contains("injected failure"),
        "{last:?}"
    );
    // `nslab events` prints them as a table too.
    let o = nslab().args(["events", &lab.name]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("apply-failed  it-ap-events  lab `it-ap-events`"),
        "{}",
        text(&o)
    );
    lab.down();
}

/// The node's `/tmp/seen`, once its process has written `want` there (or what it holds
/// after 10 s: the assertion then shows it).
fn seen(lab: &Lab, node: &str, want: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let o = lab.exec(node, &["cat", "/tmp/seen"]);
        let got = String::from_utf8_lossy(&o.stdout).into_owned();
        if got == want || std::time::Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Writes `text` to `path` the way `sed -i` and most editors save: a new file renamed
/// over the old one, so a file bound on its own would keep showing the old inode.
fn save(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn an_edited_config_file_restarts_only_its_node_with_the_new_content() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let dir = std::env::temp_dir().join(SCRATCH).join("it-ap-cfg.d");
    let _ = std::fs::remove_dir_all(&dir);
    let _own = Scratch(dir.clone());
    std::fs::create_dir_all(dir.join("d")).unwrap();
    std::fs::write(dir.join("one.conf"), "one-a\n").unwrap();
    std::fs::write(dir.join("d/two.conf"), "two-a\n").unwrap();
    // b reads a file bound on its own and one in a bound directory when it starts, as a
    // routing daemon reads its config; c's process must not notice anything.
    let yaml = format!(
        "nodes:
  b:
    mounts: ['{d}/one.conf:/run/cfg/one.conf:ro', '{d}/d:/run/cfgdir:ro']
    processes:
      - {{ name: p, cmd: \"sh -c 'cat /run/cfg/one.conf /run/cfgdir/two.conf > /tmp/seen; exec sleep 1000'\" }}
  c: {{ processes: [{{ name: q, cmd: 'sleep 1000' }}] }}
links: [[b:eth0, c:eth0]]
",
        d = dir.display()
    );
    let lab = Lab::new("it-ap-cfg", &yaml);
    apply_ok(&lab);
    assert_eq!(seen(&lab, "b", "one-a\ntwo-a\n"), "one-a\ntwo-a\n");
    let c_before = pids(&lab, "c");
    save(&dir.join("one.conf"), "one-b\n");
    // The dry run names the node and the source, and changes nothing.
    let o = apply(&lab, &["--dry-run"]);
    let want = format!(
        "b (restart node: mounted files changed in {}/one.conf)",
        dir.display()
    );
    assert!(text(&o).contains(&want), "{}", text(&o));
    assert!(!text(&o).contains("  c ("), "c is untouched: {}", text(&o));
    assert_eq!(seen(&lab, "b", "one-a\ntwo-a\n"), "one-a\ntwo-a\n");
    let out = apply_ok(&lab);
    assert!(out.contains(&want), "{out}");
    // The file bound on its own is bound again: the process sees the renamed-in file.
    assert_eq!(seen(&lab, "b", "one-b\ntwo-a\n"), "one-b\ntwo-a\n");
    assert!(apply_ok(&lab).contains("nothing changed"));
    // A file changed in place inside a bound directory counts too.
    std::fs::write(dir.join("d/two.conf"), "two-b\n").unwrap();
    let out = apply_ok(&lab);
    assert!(out.contains("mounted files changed in"), "{out}");
    assert_eq!(seen(&lab, "b", "one-b\ntwo-b\n"), "one-b\ntwo-b\n");
    assert_eq!(pids(&lab, "c"), c_before, "c keeps its process");
    lab.down();
}
