//! Full-isolation nodes inside a simulated host (root): a network namespace with a private
//! mount namespace and its own tmpfs on /run, as tests/multihost_up.rs makes them. The
//! lab's mount template must be bindable there: the kernel binds a mount namespace's file
//! only when its id is above the caller's, and ids come from per-CPU batches, so a host
//! whose namespace was made on one CPU and an nslab running on another is the case that
//! failed (EINVAL). Every pair of (host's CPU, nslab's CPU) is tried, up to three CPUs.

mod support;

use std::process::Command;

use support::simhost::SimHost;
use support::*;

/// The CPUs this test may run things on, at most three.
fn cpus() -> Vec<usize> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
    (0..nix::sched::CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .take(3)
        .collect()
}

/// The inits of `lab` still running anywhere on the machine.
fn inits_of(lab: &str) -> Vec<String> {
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    text(&ps)
        .lines()
        .filter(|l| l.contains("__init") && l.contains(&format!(" {lab}/")))
        .map(str::to_string)
        .collect()
}

#[test]
fn full_isolation_nodes_come_up_in_a_simulated_host_and_go_away() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let dir = std::env::temp_dir().join("nslab-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let lab = "simh-full";
    let file = dir.join(format!("{lab}.yaml"));
    let _file = Scratch(file.clone());
    // Full isolation is the default; a process keeps each node's init busy.
    std::fs::write(
        &file,
        format!(
            "name: {lab}\nnodes:\n  a:\n    processes: [{{ name: idle, cmd: \"sleep 100000\" }}]\n  b: {{}}\nlinks:\n  - [a:eth0, b:eth0]\n"
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let bin = env!("CARGO_BIN_EXE_nslab");
    for host_cpu in cpus() {
        let host = SimHost::on_cpu(host_cpu);
        let host_mnt = host.ok(&["readlink", "/proc/self/ns/mnt"]);
        for cpu in cpus() {
            let at = format!("host made on CPU {host_cpu}, nslab on CPU {cpu}");
            let o = host.run_on(Some(cpu), &[bin, "up", file]);
            assert!(o.status.success(), "up ({at}): {}", text(&o));
            // The node has a mount namespace of its own (copied from the template) and
            // its own hostname and pid namespace.
            let node_mnt = host.ok(&[bin, "exec", "a", "--", "readlink", "/proc/self/ns/mnt"]);
            assert_ne!(node_mnt, host_mnt, "{at}");
            assert_eq!(host.ok(&[bin, "exec", "a", "--", "hostname"]).trim(), "a");
            let ps = host.ok(&[bin, "exec", "a", "--", "cat", "/proc/1/cmdline"]);
            assert!(ps.contains("__init"), "{at}: PID 1 of node a is {ps}");
            assert!(
                host.ok(&["cat", "/proc/self/mountinfo"])
                    .contains("template.mnt")
            );

            let o = host.run_on(Some(cpu), &[bin, "down", lab]);
            assert!(o.status.success(), "down ({at}): {}", text(&o));
            // Nothing of the lab is left in the host: namespaces, mounts, run files,
            // processes.
            assert_eq!(host.ok(&["ip", "netns", "list"]).trim(), "", "{at}");
            let mounts = host.ok(&["cat", "/proc/self/mountinfo"]);
            assert!(!mounts.contains(lab), "{at}: {mounts}");
            let run = host.ok(&["sh", "-c", "ls -A /run/nslab 2>/dev/null; true"]);
            assert!(!run.contains(lab), "{at}: /run/nslab holds {run}");
            wait_for("the lab's inits to end", || inits_of(lab).is_empty());
        }
    }
}

/// `/run/netns` on `host`: whether the directory exists, and how many mounts sit on it.
/// Only mounts on the host's own /run count: the real host's `/run/netns` mount (another
/// lab's), copied into the simulated host's namespace, stays listed under its tmpfs.
fn netns_dir(host: &SimHost) -> String {
    host.ok(&[
        "sh",
        "-c",
        "test -d /run/netns && printf 'dir ' || printf 'absent '; \
         awk '$5 == \"/run\" && / - tmpfs nslab-sim / { run = $1 } \
              $5 == \"/run/netns\" { on[$2]++ } END { print on[run] + 0 }' /proc/self/mountinfo",
    ])
    .trim()
    .to_string()
}

#[test]
fn down_removes_run_netns_only_when_nslab_made_it() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let dir = std::env::temp_dir().join("nslab-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let lab = "simh-nsdir";
    let file = dir.join(format!("{lab}.yaml"));
    std::fs::write(
        &file,
        format!("name: {lab}\nnodes:\n  a: {{ isolation: [net] }}\n  b: {{ isolation: [net] }}\nlinks:\n  - [a:eth0, b:eth0]\n"),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let cycle = |host: &SimHost, between: &[&str]| {
        let o = host.nslab(&["up", file]);
        assert!(o.status.success(), "up: {}", text(&o));
        assert_eq!(netns_dir(host), "dir 1", "up makes /run/netns a mount");
        if !between.is_empty() {
            host.ok(between);
        }
        let o = host.nslab(&["down", lab]);
        assert!(o.status.success(), "down: {}", text(&o));
    };
    // No /run/netns before: nslab made the directory and its mount, and takes both away.
    let host = SimHost::new();
    assert_eq!(netns_dir(&host), "absent 0");
    cycle(&host, &[]);
    assert_eq!(netns_dir(&host), "absent 0", "nslab's own directory goes");
    // A plain directory someone else made stays; only nslab's bind mount on it goes.
    let host = SimHost::new();
    host.ok(&["mkdir", "/run/netns"]);
    cycle(&host, &[]);
    assert_eq!(netns_dir(&host), "dir 0", "the caller's directory stays");
    // iproute2's directory and shared mount (`ip netns add`, then `del`) stay as they were.
    let host = SimHost::new();
    host.ok(&["ip", "netns", "add", "keep"]);
    host.ok(&["ip", "netns", "del", "keep"]);
    assert_eq!(netns_dir(&host), "dir 1");
    cycle(&host, &[]);
    assert_eq!(netns_dir(&host), "dir 1", "iproute2's mount stays");
    // nslab made them, but another tool's namespace is in there at `down`: both stay with
    // it; once it is gone, the next lab's `down` takes them away.
    let host = SimHost::new();
    cycle(&host, &["ip", "netns", "add", "other"]);
    assert_eq!(netns_dir(&host), "dir 1");
    assert_eq!(host.ok(&["ip", "netns", "list"]).trim(), "other");
    host.ok(&["ip", "netns", "del", "other"]);
    cycle(&host, &[]);
    assert_eq!(netns_dir(&host), "absent 0");
    host.assert_clean();
    let _ = std::fs::remove_file(file);
}

#[test]
fn down_all_takes_every_lab_of_the_host_down() {
    if !privileged() {
        return;
    }
    let _g = shared();
    let dir = std::env::temp_dir().join("nslab-tests");
    std::fs::create_dir_all(&dir).unwrap();
    // In a simulated host, whose /run is its own: `--all` there cannot reach this
    // machine's other labs.
    let host = SimHost::new();
    let o = host.nslab(&["down", "--all"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(text(&o).trim(), "no lab on this host");
    let mut files = Vec::new();
    for lab in ["simh-all1", "simh-all2"] {
        let file = dir.join(format!("{lab}.yaml"));
        std::fs::write(
            &file,
            format!("name: {lab}\nnodes:\n  a: {{ processes: [{{ name: p, cmd: \"sleep 1000\" }}] }}\n  b: {{ isolation: [net] }}\nlinks:\n  - [a:eth0, b:eth0]\n"),
        )
        .unwrap();
        let o = host.nslab(&["up", file.to_str().unwrap()]);
        assert!(o.status.success(), "up {lab}: {}", text(&o));
        files.push(file);
    }
    let o = host.nslab(&["down", "--all", "x"]);
    assert_eq!(o.status.code(), Some(3), "a lab and --all: {}", text(&o));
    let o = host.nslab(&["down", "--all"]);
    assert!(o.status.success(), "{}", text(&o));
    for lab in ["simh-all1", "simh-all2"] {
        assert!(
            text(&o).contains(&format!("lab `{lab}` is down")),
            "{}",
            text(&o)
        );
        wait_for("the lab's inits to end", || inits_of(lab).is_empty());
    }
    host.assert_clean();
    for f in files {
        let _ = std::fs::remove_file(f);
    }
}

/// `nslab ls --json` on `host`: each lab's name, state and the records it was found in.
fn listed(host: &SimHost) -> Vec<(String, String, String)> {
    let o = host.nslab(&["ls", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let found: Vec<&str> = r["found"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap())
                .collect();
            (
                r["lab"].as_str().unwrap().to_string(),
                r["state"].as_str().unwrap().to_string(),
                found.join(","),
            )
        })
        .collect()
}

/// A lab file of net-only nodes (no init, so a lab cut short leaves no process behind).
fn net_only(dir: &std::path::Path, lab: &str, extra: &str) -> Scratch {
    let file = Scratch(dir.join(format!("{lab}.yaml")));
    std::fs::write(
        file.path(),
        format!(
            "name: {lab}\n{extra}defaults: {{ isolation: [net] }}\nnodes: {{ a: {{}}, b: {{}} }}\nlinks:\n  - [a:eth0, b:eth0]\n"
        ),
    )
    .unwrap();
    file
}

fn scratch_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join("nslab-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn ls_and_down_all_find_labs_cut_short_or_missing_their_journal() {
    if !privileged() {
        return;
    }
    let _g = exclusive();
    let before = host_snapshot();
    let dir = scratch_dir();
    let host = SimHost::new();
    let (up, cut, nojr) = ("lo-up", "lo-cut", "lo-nojr");
    let files: Vec<Scratch> = [up, cut, nojr]
        .iter()
        .map(|l| net_only(&dir, l, ""))
        .collect();
    let path = |i: usize| files[i].path().to_str().unwrap().to_string();
    for i in [0, 2] {
        let o = host.nslab(&["up", &path(i)]);
        assert!(o.status.success(), "{}", text(&o));
    }
    // An `up` killed (SIGKILL) between its steps: a journal without its `up` record.
    let mut child = host
        .nslab_command(&["up", "--quiet", &path(1)])
        .env("NSLAB_TEST_STEP_DELAY_MS", "150")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the cut lab's first namespace", || {
        host.run(&["test", "-e", "/run/netns/nslab.lo-cut.a"])
            .status
            .success()
            || host
                .run(&["test", "-e", "/run/netns/nslab.lo-cut"])
                .status
                .success()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    // A journal deleted by hand: its summary, plan and source are left, and its namespaces.
    host.ok(&["rm", "/run/nslab/lo-nojr.journal"]);
    let got = listed(&host);
    let row = |lab: &str| got.iter().find(|r| r.0 == lab).cloned();
    assert_eq!(row(up).map(|r| r.1), Some("up".into()), "{got:?}");
    let c = row(cut).unwrap_or_else(|| panic!("{got:?}"));
    assert_eq!(c.1, "partial", "{got:?}");
    assert!(c.2.starts_with("journal"), "{got:?}");
    let n = row(nojr).unwrap_or_else(|| panic!("{got:?}"));
    assert_eq!(n.1, "partial", "{got:?}");
    assert!(
        n.2.contains("summary") && !n.2.contains("journal"),
        "{got:?}"
    );
    // The table says it too.
    let table = host.ok(&[env!("CARGO_BIN_EXE_nslab"), "ls"]);
    assert!(
        table.contains("FOUND IN") && table.contains("summary, plan"),
        "{table}"
    );
    let o = host.nslab(&["down", "--all"]);
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    for lab in [up, cut, nojr] {
        assert!(said.contains(&format!("lab `{lab}` is down")), "{said}");
    }
    assert!(
        said.contains("lab `lo-nojr` is partial (found in: summary"),
        "{said}"
    );
    assert!(
        said.contains("lab `lo-cut` is partial (found in: journal"),
        "{said}"
    );
    assert!(listed(&host).is_empty());
    host.assert_clean();
    drop(host);
    drop(files);
    assert_same_host(&before, &host_snapshot(), "after down --all");
}

/// The registry of shared network `lonet` on `host`: each member and its IPv4 addresses.
fn lonet_members(host: &SimHost) -> Vec<(String, Vec<String>)> {
    let o = host.run(&["cat", "/run/nslab/mgmt/lonet.json"]);
    if !o.status.success() {
        return Vec::new();
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let addrs = m["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|n| n["addresses"].as_array().unwrap().clone())
                .map(|a| a.as_str().unwrap().to_string())
                .collect();
            (m["lab"].as_str().unwrap().to_string(), addrs)
        })
        .collect()
}

#[test]
fn down_all_removes_a_registry_entry_whose_lab_is_gone_and_keeps_the_others() {
    if !privileged() {
        return;
    }
    let _g = exclusive();
    let before = host_snapshot();
    let dir = scratch_dir();
    let host = SimHost::new();
    let net = "mgmt: { network: lonet, subnet: 172.31.241.0/24 }\n";
    let labs = ["lo-mem", "lo-orph1", "lo-orph2"];
    let files: Vec<Scratch> = labs.iter().map(|l| net_only(&dir, l, net)).collect();
    for f in &files {
        let o = host.nslab(&["up", f.path().to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let held = lonet_members(&host);
    assert_eq!(held.len(), 3, "{held:?}");
    // Two members whose own state is gone (files removed, namespaces deleted by hand):
    // only the registry names them, holding their addresses.
    for lab in ["lo-orph1", "lo-orph2"] {
        host.ok(&[
            "sh",
            "-c",
            &format!("rm -r /run/nslab/{lab}.* && for n in /run/netns/nslab.{lab}*; do ip netns del ${{n##*/}}; done"),
        ]);
    }
    let got = listed(&host);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!((got[0].0.as_str(), got[0].1.as_str()), ("lo-mem", "up"));
    assert!(
        got[0].2.starts_with("journal,summary") && got[0].2.ends_with(",registry lonet"),
        "{got:?}"
    );
    for (row, lab) in got[1..].iter().zip(["lo-orph1", "lo-orph2"]) {
        assert_eq!(
            *row,
            (lab.into(), "orphaned".into(), "registry lonet".into())
        );
    }
    // One orphan's entry goes; the others' entries, addresses included, stay as they were,
    // and the member still reaches the host.
    let o = host.nslab(&["down", "lo-orph1"]);
    assert!(o.status.success(), "{}", text(&o));
    let after = lonet_members(&host);
    assert_eq!(after, [held[0].clone(), held[2].clone()]);
    let mem_a = held[0].1[0].split('/').next().unwrap().to_string();
    let ping = host.run(&["ping", "-c1", "-W2", &mem_a]);
    assert!(ping.status.success(), "{}", text(&ping));
    let o = host.nslab(&["down", "--all"]);
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    assert!(
        said.contains("lab `lo-orph2` is orphaned (found in: registry lonet)"),
        "{said}"
    );
    assert!(
        said.contains("lab `lo-orph2` is down") && said.contains("lab `lo-mem` is down"),
        "{said}"
    );
    assert!(lonet_members(&host).is_empty());
    let bridge = host.run(&["ip", "link", "show", "br-lonet"]);
    assert!(!bridge.status.success(), "the bridge outlived its labs");
    host.assert_clean();
    drop(host);
    drop(files);
    assert_same_host(&before, &host_snapshot(), "after down --all");
}
