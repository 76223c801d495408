//! Single processes of a running node, as root: a node's init retires one process (it and
//! what it started are gone from the host, the others keep their pids and never
//! restart), takes a new one that starts and becomes ready, still halts and starts them
//! all, SIGKILLs what ignores SIGTERM after its grace, and `down` leaves nothing. Each
//! test uses its own lab name.

mod support;

use std::time::{Duration, Instant};

use nslab::model::kinds::RestartPolicy;
use nslab::node::config::{ProcessSpec, ReadySpec};
use support::*;

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// (name, pid inside the node, state, restarts, ready) of a node's processes.
type Row = (String, Option<i64>, String, u64, bool);

fn ps(lab: &str, node: &str) -> Vec<Row> {
    let o = nslab()
        .args(["ps", "--lab", lab, node, "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v[0]["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["pid"].as_i64(),
                p["state"].as_str().unwrap().to_string(),
                p["restarts"].as_u64().unwrap(),
                p["ready"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn row(rows: &[Row], name: &str) -> Row {
    rows.iter()
        .find(|r| r.0 == name)
        .unwrap_or_else(|| panic!("no process `{name}` in {rows:?}"))
        .clone()
}

/// A process on the host: its pid and start time, so a reused pid is not mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct HostProc {
    pid: i32,
    start: u64,
}

fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    if rest.starts_with('Z') {
        return None; // exited: nothing runs any more
    }
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl HostProc {
    fn running(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

/// The host's view of a node's processes: (host pid, pid inside the node, command line),
/// found by the node's pid namespace (that of its init).
fn node_procs(lab: &str, node: &str) -> Vec<(HostProc, i64, String)> {
    let pid_file = format!("/run/nslab/{lab}.nodes/{node}.pid");
    let init: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let ns = std::fs::read_link(format!("/proc/{init}/ns/pid")).unwrap();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if std::fs::read_link(e.path().join("ns/pid")).ok().as_ref() != Some(&ns) {
            continue;
        }
        let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
        let inner = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|p| p.parse().ok());
        let cmd = std::fs::read_to_string(e.path().join("cmdline"))
            .unwrap_or_default()
            .replace('\0', " ");
        if let (Some(inner), Some(start)) = (inner, start_time(pid)) {
            found.push((HostProc { pid, start }, inner, cmd.trim().to_string()));
        }
    }
    found
}

/// The host process behind a pid inside the node.
fn host_proc(lab: &str, node: &str, inner: i64) -> HostProc {
    node_procs(lab, node)
        .into_iter()
        .find(|(_, i, _)| *i == inner)
        .unwrap_or_else(|| panic!("no process with pid {inner} in node {node}"))
        .0
}

/// The host processes of a node whose command line is `cmd`.
fn by_command(lab: &str, node: &str, cmd: &str) -> Vec<HostProc> {
    node_procs(lab, node)
        .into_iter()
        .filter(|(_, _, c)| c == cmd)
        .map(|(h, _, _)| h)
        .collect()
}

const THREE: &str = r#"
nodes:
  a:
    processes:
      - { name: p1, cmd: "sleep 1001", stop_timeout: 300ms }
      - name: p2
        cmd: ["sh", "-c", "trap 'echo bye; exit 0' TERM; while :; do sleep 0.1; done"]
        stop_timeout: 2s
      - { name: p3, cmd: "sleep 1003", stop_timeout: 300ms }
"#;

fn spec(name: &str, argv: &[&str], ready: Option<ReadySpec>, stop_timeout_ms: u64) -> ProcessSpec {
    ProcessSpec {
        name: name.into(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![],
        cwd: None,
        restart: RestartPolicy::Always,
        ready,
        ready_limits: Default::default(),
        stop_timeout_ms,
        user: None,
        attrs: Default::default(),
    }
}

#[test]
fn one_process_retires_and_another_joins_while_the_others_keep_their_pids() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let before = host_snapshot();
    let name = "it-procs";
    let lab = Lab::new(name, THREE);
    lab.up();
    let first = ps(name, "a");
    assert_eq!(first.len(), 3, "{first:?}");
    let p2 = host_proc(name, "a", row(&first, "p2").1.unwrap());
    let pid_file = std::path::PathBuf::from(format!("/run/nslab/{name}.nodes/a.pid"));
    let grace = |f: &std::path::Path| nslab::node::enter::init_grace(f).as_millis();
    assert_eq!(
        grace(&pid_file),
        2000,
        "p2's stop_timeout is the node's grace"
    );

    // Retire p2: it is gone from the host and from the table; its log ends with its last
    // words and the init's note.
    block_on(nslab::runtime::retire_process(
        &nslab::state::HostContext::from_env(),
        name,
        "a",
        "p2",
    ))
    .unwrap();
    assert!(!p2.running(), "p2 ({p2:?}) still runs");
    let after = ps(name, "a");
    let names: Vec<&str> = after.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(names, ["p1", "p3"]);
    for p in ["p1", "p3"] {
        let (was, now) = (row(&first, p), row(&after, p));
        assert_eq!((now.1, now.2.as_str(), now.3), (was.1, "running", 0), "{p}");
    }
    let log = std::fs::read_to_string(format!("/run/nslab/{name}.logs/a/p2.log")).unwrap();
    assert!(log.ends_with("bye\n--- nslab: retired p2 ---\n"), "{log}");
    assert_eq!(grace(&pid_file), 300, "the grace follows the table");

    // Names that are not there, or already are, are errors naming lab, node and process.
    let e = block_on(nslab::runtime::retire_process(
        &nslab::state::HostContext::from_env(),
        name,
        "a",
        "p2",
    ))
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("lab `it-procs`, node `a`: cannot retire process `p2`: no process `p2`"),
        "{e}"
    );
    let dup = spec("p1", &["sleep", "5"], None, 100);
    let e = block_on(nslab::runtime::add_process(
        &nslab::state::HostContext::from_env(),
        name,
        "a",
        &dup,
    ))
    .unwrap_err();
    assert!(e.to_string().contains("process `p1` already exists"), "{e}");
    let big = "x".repeat(1 << 20);
    let e = block_on(nslab::runtime::add_process(
        &nslab::state::HostContext::from_env(),
        name,
        "a",
        &spec("big", &["echo", &big], None, 0),
    ))
    .unwrap_err();
    assert!(
        e.to_string().contains("the init reads at most 1048576"),
        "{e}"
    );
    let e = block_on(nslab::runtime::add_process(
        &nslab::state::HostContext::from_env(),
        name,
        "zz",
        &dup,
    ))
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("node `zz`: cannot add process `p1`: its init is not running"),
        "{e}"
    );

    // A request line over the cap gets an error, and the init goes on serving.
    let sock = format!("/run/nslab/{name}.nodes/a.sock");
    let mut client = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let mut writer = client.try_clone().unwrap();
    let flood = std::thread::spawn(move || {
        let _ = std::io::Write::write_all(&mut writer, &vec![b'x'; 2 << 20]);
    });
    // One line: the init closes with the flood unread, which resets the connection
    // after its reply.
    let mut reply = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&mut client), &mut reply).unwrap();
    drop(client);
    flood.join().unwrap();
    assert_eq!(
        reply,
        "{\"error\":\"the request is longer than 1048576 bytes\"}\n"
    );
    assert_eq!(ps(name, "a").len(), 2);
    // A `wait` for a process the init does not have is answered at once, with an error.
    let reply = nslab::node::control::request(std::path::Path::new(&sock), "wait p2").unwrap();
    assert_eq!(reply, "{\"error\":\"no process `p2`\"}\n");

    // Add p4 with a readiness probe: waiting until started, then running and ready
    // once started (its start waits through `wait`, which the init answers only then).
    let ready = ReadySpec::Cmd {
        argv: ["test", "-e", "/tmp/p4-ready"].map(String::from).to_vec(),
        timeout_ms: 10_000,
        interval_ms: 50,
    };
    let p4 = spec(
        "p4",
        &[
            "sh",
            "-c",
            "sleep 0.2; touch /tmp/p4-ready; exec sleep 1004",
        ],
        Some(ready),
        1500,
    );
    block_on(nslab::runtime::add_process(
        &nslab::state::HostContext::from_env(),
        name,
        "a",
        &p4,
    ))
    .unwrap();
    let added = ps(name, "a");
    assert_eq!(row(&added, "p4").2, "waiting");
    assert_eq!(grace(&pid_file), 1500, "the grace follows the table");
    block_on(nslab::apply::nodes::start_process(
        &nslab::state::HostContext::from_env(),
        name,
        "a",
        "p4",
    ))
    .unwrap();
    let started = ps(name, "a");
    let p4_row = row(&started, "p4");
    assert_eq!(
        (p4_row.2.as_str(), p4_row.4),
        ("running", true),
        "{p4_row:?}"
    );
    assert_eq!(by_command(name, "a", "sleep 1004").len(), 1);
    for p in ["p1", "p3"] {
        assert_eq!(row(&started, p), row(&first, p), "{p} was touched");
    }

    // A halt and a start cover the table as it is now (not the plan stored at `up`).
    let o = nslab()
        .args(["node", "restart", "--lab", name, "a"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let restarted = ps(name, "a");
    let names: Vec<&str> = restarted.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(names, ["p1", "p3", "p4"]);
    for r in &restarted {
        assert_eq!((r.2.as_str(), r.4), ("running", true), "{r:?}");
        assert_ne!(r.1, row(&started, &r.0).1, "{} got a new pid", r.0);
    }

    lab.down();
    assert!(!lab.is_up());
    assert_same_host(&before, &host_snapshot(), "after down");
}

#[test]
fn children_that_ignore_sigterm_are_killed_after_the_grace_even_outside_the_group() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let name = "it-retkill";
    // Both children ignore SIGTERM (an ignored signal stays ignored across exec); the
    // second left the process group and the session with setsid. The shell itself exits
    // on SIGTERM, so the daemon's parent link to it is gone by the end of the grace. Node
    // `a` has a pid namespace (its init is PID 1); `b` has none (its init is a subreaper
    // among the host's processes).
    let stubborn = |n: u32| {
        format!(
            r#"
    processes:
      - {{ name: keep, cmd: "sleep {}" }}
      - name: stubborn
        cmd: ["sh", "-c", "trap '' TERM; sleep {} & setsid sleep {} & trap 'exit 0' TERM; wait"]
        stop_timeout: 500ms"#,
            n + 1,
            n + 2,
            n + 3
        )
    };
    let yaml = format!(
        "nodes:\n  a:{}\n  b:\n    isolation: [net]{}\n",
        stubborn(2000),
        stubborn(3000)
    );
    let lab = Lab::new(name, &yaml);
    lab.up();
    for (node, n) in [("a", 2000), ("b", 3000)] {
        let (child_cmd, daemon_cmd) = (format!("sleep {}", n + 2), format!("sleep {}", n + 3));
        wait_for("both children", || {
            by_command(name, node, &child_cmd).len() == 1
                && by_command(name, node, &daemon_cmd).len() == 1
        });
        let first = ps(name, node);
        let shell = host_proc(name, node, row(&first, "stubborn").1.unwrap());
        let child = by_command(name, node, &child_cmd)[0];
        let daemon = by_command(name, node, &daemon_cmd)[0];

        let t = Instant::now();
        block_on(nslab::runtime::retire_process(
            &nslab::state::HostContext::from_env(),
            name,
            node,
            "stubborn",
        ))
        .unwrap();
        // Loosely: not before the grace, as SIGTERM left both children running.
        assert!(
            t.elapsed() >= Duration::from_millis(450),
            "{node}: {:?}",
            t.elapsed()
        );
        for (what, p) in [("shell", shell), ("child", child), ("daemon", daemon)] {
            assert!(
                !p.running(),
                "{node}: the {what} ({p:?}) survived the retire"
            );
        }
        assert_eq!(row(&ps(name, node), "keep"), row(&first, "keep"), "{node}");
    }
    lab.down();
}

/// The `Name:` line of a host process's /proc status, its tab-separated fields.
fn status_line(pid: i32, key: &str) -> Vec<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_process_with_a_user_runs_as_that_user_and_so_does_its_probe() {
    if !privileged() {
        return;
    }
    let _h = shared();
    // Node b sees passwd and group files of its own, which know a user the host does not.
    let etc = std::env::temp_dir().join("nslab-tests-pr-user-etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\nlabuser:x:5000:5001::/home/lab:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("group"),
        "root:x:0:\nlab:x:5001:\nwheel2:x:5002:labuser\n",
    )
    .unwrap();
    let etc_s = etc.display();
    // The probe is ready only when it runs as nobody too: run as root, it never is, and
    // `up` fails after 5 s.
    let lab = Lab::new(
        "pr-user",
        &format!(
            "nodes:\n  a:\n    processes:\n      \
             - {{ name: nap, cmd: \"sleep 1000\", user: nobody, ready: {{ cmd: \"sh -c 'test $(id -u) = 65534'\", timeout: 5s }} }}\n      \
             - {{ name: numbers, cmd: \"sleep 1001\", user: \"4242:4343\" }}\n      \
             - {{ name: plain, cmd: \"sleep 1002\" }}\n  \
             b:\n    mounts: [\"{etc_s}/passwd:/etc/passwd:ro\", \"{etc_s}/group:/etc/group:ro\"]\n    \
             processes:\n      - {{ name: own, cmd: \"sleep 1003\", user: labuser }}\n"
        ),
    );
    lab.up();
    let rows = ps("pr-user", "b");
    let own = host_proc("pr-user", "b", row(&rows, "own").1.unwrap()).pid;
    assert_eq!(status_line(own, "Uid"), ["5000"; 4]);
    assert_eq!(status_line(own, "Gid"), ["5001"; 4]);
    assert_eq!(status_line(own, "Groups"), ["5001", "5002"]);
    let rows = ps("pr-user", "a");
    let host = |name: &str| host_proc("pr-user", "a", row(&rows, name).1.unwrap()).pid;
    let nap = host("nap");
    // Real, effective, saved and file-system ids.
    assert_eq!(status_line(nap, "Uid"), ["65534"; 4]);
    assert_eq!(status_line(nap, "Gid"), ["65534"; 4]);
    assert_eq!(status_line(nap, "Groups"), ["65534"]);
    let environ = std::fs::read(format!("/proc/{nap}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(environ.split('\0').any(|e| e == "USER=nobody"), "{environ}");
    assert!(
        environ.split('\0').any(|e| e == "HOME=/nonexistent"),
        "{environ}"
    );
    let numbers = host("numbers");
    let environ = std::fs::read(format!("/proc/{numbers}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(environ.split('\0').any(|e| e == "USER=4242"), "{environ}");
    assert!(environ.split('\0').any(|e| e == "HOME=/"), "{environ}");
    assert_eq!(status_line(numbers, "Uid"), ["4242"; 4]);
    assert_eq!(status_line(numbers, "Gid"), ["4343"; 4]);
    assert_eq!(status_line(numbers, "Groups"), ["4343"]);
    assert_eq!(status_line(host("plain"), "Uid"), ["0"; 4]);
    lab.down();
    std::fs::remove_dir_all(&etc).unwrap();
}

#[test]
fn a_process_with_a_user_enters_its_cwd_as_that_user() {
    if !privileged() {
        return;
    }
    let _h = shared();
    use std::os::unix::fs::PermissionsExt;
    // Under /var/tmp, which a node shares with the host (its /tmp is its own).
    let base = std::path::Path::new("/var/tmp/nslab-tests-pr-cwd");
    let _ = std::fs::remove_dir_all(base);
    let (shut, open) = (base.join("shut"), base.join("open"));
    for (dir, mode) in [(base, 0o755), (&shut, 0o700), (&open, 0o755)] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    // nobody may not enter a root-only directory, so its process must not start there.
    let lab = Lab::new(
        "pr-cwd",
        &format!(
            "nodes:\n  a:\n    processes:\n      \
             - {{ name: shut, cmd: \"sleep 1000\", user: nobody, cwd: {} }}\n",
            shut.display()
        ),
    );
    lab.up_fails(&["start process `shut` failed", "Permission denied"]);
    let lab = Lab::new(
        "pr-cwd2",
        &format!(
            "nodes:\n  a:\n    processes:\n      \
             - {{ name: open, cmd: \"sleep 1001\", user: nobody, cwd: {} }}\n      \
             - {{ name: root, cmd: \"sleep 1002\", cwd: {} }}\n",
            open.display(),
            shut.display()
        ),
    );
    lab.up();
    let rows = ps("pr-cwd2", "a");
    let cwd_of = |name: &str| {
        let pid = host_proc("pr-cwd2", "a", row(&rows, name).1.unwrap()).pid;
        std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap()
    };
    let (open_cwd, root_cwd) = (cwd_of("open"), cwd_of("root"));
    lab.down();
    std::fs::remove_dir_all(base).unwrap();
    assert_eq!(open_cwd, open);
    assert_eq!(root_cwd, shut, "root enters it");
}

#[test]
fn a_probe_that_hangs_is_ended_by_its_probe_timeout_and_counted_toward_attempts() {
    if !privileged() {
        return;
    }
    let _h = shared();
    // The whole wait would last a minute, and by then far more than two probes would
    // have failed: only the attempts end it with two.
    let lab = Lab::new(
        "pr-attempts",
        "nodes:\n  a:\n    processes:\n      \
         - { name: stuck, cmd: \"sleep 1000\", ready: { cmd: \"sleep 1000\", probe_timeout: 100ms, attempts: 2, interval: 20ms, timeout: 60s } }\n",
    );
    lab.up_fails(&["process `stuck` is not ready", "(2 counted probes failed)"]);
}

#[test]
fn users_are_checked_at_validate_where_the_node_looks_them_up() {
    let validate = |lab: &Lab| {
        let o = nslab().arg("validate").arg(&lab.file).output().unwrap();
        assert_eq!(o.status.code(), Some(3), "{}", text(&o));
        text(&o)
    };
    // Node b's /etc (a bind mount) has no `nobody`.
    let etc = std::env::temp_dir().join("nslab-tests-pr-users-etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(etc.join("group"), "root:x:0:\n").unwrap();
    // What nslab binds into every node's /etc needs a place in it.
    for f in ["hosts", "resolv.conf"] {
        std::fs::write(etc.join(f), "").unwrap();
    }
    let lab = Lab::new(
        "pr-users",
        &format!(
            "nodes:\n  a:\n    processes:\n      \
             - {{ name: p, cmd: \"sleep 1\", user: nslab-no-such-user }}\n      \
             - {{ name: q, cmd: \"sleep 1\", user: \"nobody:nslab-no-such-group\" }}\n      \
             - {{ name: s, cmd: \"sleep 1\", user: \"100:101\" }}\n      \
             - {{ name: t, cmd: \"sleep 1\", user: nobody }}\n  \
             b:\n    mounts: [{{ source: {}, target: /etc }}]\n    \
             processes:\n      - {{ name: u, cmd: \"sleep 1\", user: nobody }}\n",
            etc.display()
        ),
    );
    let t = validate(&lab);
    let b_passwd = format!("no user `nobody` in {}/passwd", etc.display());
    for needle in [
        "process `p` cannot run as `nslab-no-such-user`: no user `nslab-no-such-user` in /etc/passwd",
        "pr-users.yaml:5:42",
        "process `q` cannot run as `nobody:nslab-no-such-group`: no group `nslab-no-such-group`",
        "pr-users.yaml:6:42",
        "node `b`: process `u` cannot run as `nobody`",
        &b_passwd,
        "pr-users.yaml:12:42",
        "3 errors",
    ] {
        assert!(t.contains(needle), "`{needle}` missing from {t}");
    }
    let lab = Lab::new(
        "pr-users",
        "nodes:\n  a:\n    processes:\n      \
         - { name: r, cmd: \"sleep 1\", user: \"a:b:c\" }\n",
    );
    let t = validate(&lab);
    assert!(t.contains("`a:b:c` has more than one `:`"), "{t}");
    assert!(t.contains("pr-users.yaml:5:42"), "{t}");
    std::fs::remove_dir_all(&etc).unwrap();
}
