//! What crosses from the caller into a node, as root: no descriptor but 0-2, none of the
//! caller's environment; and how nslab ends when its terminal or its reader goes away
//! (SIGHUP, a closed pipe): torn down, never a panic. Labs here are named `fx-*`.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// A file the caller holds open as descriptor 9 (inherited: not close-on-exec), for a
/// node to leak into.
struct Leak {
    path: PathBuf,
}

impl Leak {
    fn new(name: &str) -> Leak {
        let dir = std::env::temp_dir().join("nslab-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.fd9"));
        std::fs::write(&path, "").unwrap();
        Leak { path }
    }

    /// `nslab ARGS` started by a shell that opened the file as fd 9 first.
    fn nslab(&self, args: &[&str]) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(r#"f="$1"; shift; exec "$@" 9>>"$f""#)
            .arg("sh")
            .arg(&self.path)
            .arg(env!("CARGO_BIN_EXE_nslab"))
            .args(args);
        c
    }

    fn contents(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap()
    }

    /// Descriptors of process `pid` that point at the file.
    fn held_by(&self, pid: &str) -> Vec<String> {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.flatten()
                    .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == self.path))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Leak {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The pid of a node's init, from the pid file nslab keeps.
fn init_pid(lab: &str, node: &str) -> String {
    let f = format!("/run/nslab/{lab}.nodes/{node}.pid");
    let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{f}: {e}"));
    text.split_whitespace().next().unwrap().to_string()
}

fn logs(lab: &str, node: &str, process: &str) -> String {
    stdout(
        &nslab()
            .args(["logs", "--lab", lab, node, process])
            .output()
            .unwrap(),
    )
}

/// A process that lists its shell's descriptors, then tries to write into fd 9.
const FD_PROCESS: &str = r#"
nodes:
  a:
    processes:
      - { name: fds, cmd: "sh -c 'ls -m /proc/$$/fd; echo leaked-by-process >&9; echo done; exec sleep 1000'" }
"#;

#[test]
fn the_callers_descriptors_reach_neither_init_nor_processes_nor_exec() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new("fx-fds", FD_PROCESS);
    let leak = Leak::new("fx-fds");
    let o = leak.nslab(&["up"]).arg(&lab.file).output().unwrap();
    assert!(o.status.success(), "up: {}{}", stdout(&o), stderr(&o));
    wait_for("the process to list its descriptors", || {
        logs("fx-fds", "a", "fds").contains("done")
    });
    let log = logs("fx-fds", "a", "fds");
    assert!(
        log.contains("0, 1, 2\n"),
        "the process had more than 0-2:\n{log}"
    );
    let init = init_pid("fx-fds", "a");
    assert_eq!(
        leak.held_by(&init),
        Vec::<String>::new(),
        "the init holds fd 9"
    );
    // exec: the command sees 0-2 only, and cannot write into the caller's fd 9.
    let o = leak
        .nslab(&["exec", "--lab", "fx-fds", "a", "--"])
        .args(["sh", "-c", "ls -m /proc/$$/fd; echo leaked-by-exec >&9"])
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "0, 1, 2\n", "{}", stderr(&o));
    assert!(!o.status.success(), "fd 9 was writable inside the node");
    assert_eq!(leak.contents(), "", "something in the node wrote into fd 9");
    lab.down();
}

/// Mode bits of `path` that let group or others write it.
fn writable_by_others(path: &str) -> u32 {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    m.mode() & 0o022
}

#[test]
fn the_callers_umask_and_ignored_signals_reach_neither_nslabs_files_nor_the_node() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "fx-umask",
        r#"
nodes:
  a:
    processes:
      - { name: p, cmd: "sh -c 'umask; grep SigIgn /proc/self/status; echo done; exec sleep 1000'" }
"#,
    );
    // The caller: umask 0, SIGUSR1 and SIGUSR2 ignored (as `trap '' USR1 USR2` leaves them).
    let caller = |args: &[&str]| {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(r#"umask 000; trap '' USR1 USR2; exec "$@""#)
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_nslab"))
            .args(args);
        c
    };
    let o = caller(&["up"]).arg(&lab.file).output().unwrap();
    assert!(o.status.success(), "up: {}{}", stdout(&o), stderr(&o));
    wait_for("the process to report", || {
        logs("fx-umask", "a", "p").contains("done")
    });
    let log = logs("fx-umask", "a", "p");
    assert!(
        log.lines().any(|l| l == "0022"),
        "the process's umask is not 0022:\n{log}"
    );
    let ignored = log
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
        .unwrap_or_else(|| panic!("no SigIgn in:\n{log}"));
    for sig in [libc::SIGUSR1, libc::SIGUSR2] {
        assert_eq!(
            ignored & (1 << (sig - 1)),
            0,
            "signal {sig} still ignored in the node ({ignored:x})"
        );
    }
    // What nslab made as root: nobody else may write it (a control socket others can
    // write lets them add a process to the init, which runs it as root).
    for path in [
        "/run/nslab/fx-umask.nodes/a.sock",
        "/run/nslab/fx-umask.nodes/a.pid",
        "/run/nslab/fx-umask.nodes",
        "/run/nslab/fx-umask.logs/a",
        "/run/nslab/fx-umask.logs/a/p.log",
    ] {
        assert_eq!(writable_by_others(path), 0, "{path} is writable by others");
    }
    let o = caller(&["exec", "--lab", "fx-umask", "a", "--", "sh", "-c", "umask"])
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "0022\n", "exec's umask: {}", stderr(&o));
    lab.down();
}

/// `sh -c SCRIPT` on a terminal of its own that is its controlling terminal (`script`
/// makes a pseudo-terminal and a session for it), as from an interactive shell.
fn on_a_terminal(script: &str) -> Output {
    Command::new("script")
        .args(["-qec", script, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn exec_commands_and_checks_never_get_the_terminal_test_ran_on() {
    if !privileged() || !installed(&["/usr/bin/script"], "script (util-linux)") {
        return;
    }
    let _h = shared();
    // The terminal is real: a command started on it opens it, so the checks below can fail.
    let o = on_a_terminal("sh -c ': </dev/tty && echo opened-it'");
    assert!(text(&o).contains("opened-it"), "{}", text(&o));
    // With the node's own pid namespace (the command is forked once more) and without.
    for (name, isolation) in [("fx-tty", ""), ("fx-ttyn", "    isolation: [net]\n")] {
        let yaml = format!(
            "nodes:\n  a:\n{isolation}    exec:\n      - \"sh -c 'if (: </dev/tty) 2>/dev/null; then echo exec-opened-the-terminal; exit 1; fi'\"\ntests:\n  - cmd: {{ node: a, run: \"sh -c ': </dev/tty'\", expect: fail, name: no-terminal }}\n"
        );
        let lab = Lab::new(name, &yaml);
        let o = on_a_terminal(&format!(
            "{} test {}",
            env!("CARGO_BIN_EXE_nslab"),
            lab.file.display()
        ));
        let all = text(&o);
        assert!(!all.contains("exec-opened-the-terminal"), "{name}: {all}");
        assert!(o.status.success(), "{name}: {all}");
        assert!(!lab.is_up(), "{name} is still up");
    }
}

#[test]
fn a_checks_run_under_test_sees_only_0_to_2_and_teardown_is_complete() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "fx-fdtest",
        &format!(
            "{FD_PROCESS}tests:\n  - cmd: {{ node: a, run: \"sh -c 'ls -m /proc/$$/fd'\", stdout: '^0, 1, 2\\s*$' }}\n"
        ),
    );
    let leak = Leak::new("fx-fdtest");
    let o = leak.nslab(&["test"]).arg(&lab.file).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(leak.contents(), "", "something in the node wrote into fd 9");
    assert!(!lab.is_up());
}

#[test]
fn exec_gets_the_nodes_environment_not_the_callers() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "fx-env",
        r#"
nodes:
  a:
    env: { SITE: lab, PATH: "/usr/bin:/bin:/opt/node/bin" }
    processes:
      - { name: env, cmd: "sh -c 'env; echo done; exec sleep 1000'", env: { ROLE: web } }
"#,
    );
    let o = nslab()
        .arg("up")
        .arg(&lab.file)
        .env("FX_CALLER_MARKER", "from-the-caller")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let run = |extra: &[&str]| {
        nslab()
            .args(["exec", "--lab", "fx-env"])
            .args(extra)
            .args(["a", "--", "env"])
            .env("FX_CALLER_MARKER", "from-the-caller")
            .env("FX_PASSED", "by-name")
            .env("TERM", "xterm-fx")
            .output()
            .unwrap()
    };
    let o = run(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let env = stdout(&o);
    for want in [
        "SITE=lab\n",
        "PATH=/usr/bin:/bin:/opt/node/bin\n",
        "HOME=/root\n",
        "TERM=xterm-fx\n",
    ] {
        assert!(env.contains(want), "`{want}` missing from:\n{env}");
    }
    assert!(
        !env.contains("FX_CALLER_MARKER"),
        "the caller's env got in:\n{env}"
    );
    // -e adds (KEY=VALUE, or KEY for the caller's value) and overrides.
    let env = stdout(&run(&[
        "-e",
        "EXTRA=1=2",
        "--env",
        "SITE=override",
        "-e",
        "FX_PASSED",
    ]));
    for want in ["EXTRA=1=2\n", "SITE=override\n", "FX_PASSED=by-name\n"] {
        assert!(env.contains(want), "`{want}` missing from:\n{env}");
    }
    let o = run(&["-e", "=nameless"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    // The node's processes do not see the caller's environment either.
    wait_for("the process to print its environment", || {
        logs("fx-env", "a", "env").contains("done")
    });
    let log = logs("fx-env", "a", "env");
    assert!(
        log.contains("SITE=lab\n") && log.contains("ROLE=web\n"),
        "{log}"
    );
    assert!(
        !log.contains("FX_CALLER_MARKER"),
        "the caller's env got in:\n{log}"
    );
    lab.down();
}

#[test]
fn exec_takes_the_command_after_the_node_without_a_double_dash() {
    if !privileged() {
        return;
    }
    // `docker exec c CMD` and `ip netns exec ns CMD` need no `--`: neither does nslab's.
    // What follows the node is the command's, its options included (`-e`, `--lab`);
    // options before the node are nslab's.
    let lab = Lab::new("fx-nodash", "nodes: { a: {} }\n");
    lab.up();
    let exec = |args: &[&str]| {
        nslab()
            .args(["exec", "--lab", "fx-nodash"])
            .args(args)
            .output()
            .unwrap()
    };
    let script = r#"echo "$0|$*|${MARK:-unset}""#;
    let o = exec(&[
        "-e", "MARK=set", "a", "sh", "-c", script, "x", "-e", "--lab", "b",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o), "x|-e --lab b|set\n");
    // With `--` the same as before, and the exit code passes through either way.
    let o = exec(&["a", "--", "sh", "-c", script, "y", "-e"]);
    assert_eq!(stdout(&o), "y|-e|unset\n", "{}", text(&o));
    assert_eq!(exec(&["a", "sh", "-c", "exit 7"]).status.code(), Some(7));
    // Nor between the node and the command: `-e` and `--lab` there are the command's
    // first word (a wrapper's `nslab exec --lab L a $CMD` keeps `$CMD` in lab L), so
    // no such command runs and nothing is set.
    let o = exec(&["a", "-e", "MARK=smuggled", "env"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(!stdout(&o).contains("MARK=smuggled"), "{}", text(&o));
    let o = exec(&["a", "--lab", "fx-nowhere", "true"]);
    assert!(!text(&o).contains("fx-nowhere` is up"), "{}", text(&o));
    assert!(!o.status.success(), "{}", text(&o));
    // No command at all is still a usage error.
    assert_eq!(exec(&["a"]).status.code(), Some(3));
    lab.down();
}

/// A lab whose checks take a while: time for a signal, or for a reader to go away.
const SLOW_CHECKS: &str = r#"
nodes:
  a:
    processes:
      - { name: sleeper, cmd: "sleep 1000" }
tests:
  - cmd: { node: a, run: "sleep 1" }
  - cmd: { node: a, run: "sleep 1" }
  - cmd: { node: a, run: "sleep 20" }
  - cmd: { node: a, run: "true" }
"#;

#[test]
fn sighup_during_test_tears_the_lab_down_like_sigint() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let lab = Lab::new("fx-hup", SLOW_CHECKS);
    let before = host_snapshot();
    let mut child = nslab()
        .arg("test")
        .arg(&lab.file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("is up"), "{first}");
    // SAFETY: kill on the pid of a child we started and have not waited for.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGHUP) }, 0);
    let started = Instant::now();
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert!(started.elapsed() < Duration::from_secs(15), "{err}");
    assert_eq!(o.status.code(), Some(129), "{err}");
    assert!(err.contains("interrupted by SIGHUP"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!lab.is_up());
    assert_same_host(&before, &host_snapshot(), "after SIGHUP to `nslab test`");
}

#[test]
fn test_into_a_reader_that_goes_away_tears_down_without_a_panic() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let lab = Lab::new("fx-pipe", SLOW_CHECKS);
    let errors = std::env::temp_dir().join("nslab-tests/fx-pipe.stderr");
    let code = std::env::temp_dir().join("nslab-tests/fx-pipe.code");
    let before = host_snapshot();
    let o = Command::new("sh")
        .arg("-c")
        .arg(r#"{ "$0" test "$1" 2>"$2"; echo $? >"$3"; } | head -1"#)
        .arg(env!("CARGO_BIN_EXE_nslab"))
        .arg(&lab.file)
        .arg(&errors)
        .arg(&code)
        .output()
        .unwrap();
    let err = std::fs::read_to_string(&errors).unwrap_or_default();
    let _ = std::fs::remove_file(&errors);
    let exited = std::fs::read_to_string(&code).unwrap_or_default();
    let _ = std::fs::remove_file(&code);
    // A closed stdout counts as SIGPIPE: 128 + 13, as `yes | head -1` reports.
    assert_eq!(exited.trim(), "141", "{err}");
    assert!(stdout(&o).contains("is up"), "{}", stdout(&o));
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("closed stdout"), "{err}");
    assert!(!lab.is_up(), "{err}");
    assert_same_host(&before, &host_snapshot(), "after `nslab test | head -1`");
}

/// Runs nslab with stdout a pipe nobody reads any more: every write fails with EPIPE.
fn into_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    nslab()
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn listing_commands_into_a_closed_pipe_do_not_panic() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let processes: String = (0..40)
        .map(|i| format!("      - {{ name: p{i}, cmd: \"sleep 1000\" }}\n"))
        .collect();
    let lab = Lab::new(
        "fx-ps",
        &format!(
            "nodes:\n  a:\n    processes:\n{processes}  b: {{}}\nlinks:\n  - [a:eth0, b:eth0]\n"
        ),
    );
    lab.up();
    let o = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" ps --lab fx-ps | head -1"#)
        .arg(env!("CARGO_BIN_EXE_nslab"))
        .output()
        .unwrap();
    assert!(stdout(&o).starts_with("NODE"), "{}", text(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    for args in [
        &["ps", "--lab", "fx-ps"][..],
        &["ps", "--lab", "fx-ps", "--json"],
        &["status", "fx-ps"],
        &["ls"],
        &["events", "fx-ps"],
        &["--help"],
    ] {
        let o = into_closed_pipe(args);
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "nslab {args:?}: {err}");
        assert_ne!(o.status.code(), Some(101), "nslab {args:?}: {err}");
    }
    lab.down();
}

#[test]
fn status_fails_for_a_crash_loop_and_for_a_killed_init() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "fx-status",
        r#"
nodes:
  a:
    processes:
      - { name: steady, cmd: "sleep 1000" }
  b:
    processes:
      - { name: crashy, cmd: "sh -c 'sleep 0.2; exit 3'", restart: always }
  c: {}
links:
  - [a:eth0, b:eth0]
  - [b:eth1, c:eth0]
"#,
    );
    lab.up();
    // It runs 0.2 s between restarts: poll until a status lands in its backoff.
    let mut seen = None;
    wait_for("status to see crashy between restarts", || {
        let o = nslab().args(["status", "fx-status"]).output().unwrap();
        let looping = stdout(&o).contains("crash-looping");
        seen = Some(o);
        looping
    });
    let o = seen.unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stdout(&o).contains("process `crashy` is crash-looping: exited with status 3"),
        "{}",
        text(&o)
    );
    let mut v = serde_json::Value::Null;
    wait_for("the JSON status to see crashy between restarts", || {
        let o = nslab()
            .args(["status", "fx-status", "--json"])
            .output()
            .unwrap();
        v = serde_json::from_slice(&o.stdout).unwrap();
        v["nodes"][1]["state"] == "degraded"
    });
    assert!(
        v["nodes"][1]["problems"][0]
            .as_str()
            .is_some_and(|p| p.contains("crashy")),
        "{v}"
    );
    assert_eq!(v["nodes"][0]["state"], "up", "{v}");
    lab.down();

    // A lab that is healthy exits 0, until one of its inits is killed.
    let lab = Lab::new(
        "fx-init",
        r#"
nodes:
  a:
    processes:
      - { name: steady, cmd: "sleep 1000" }
  b: {}
links:
  - [a:eth0, b:eth0]
"#,
    );
    lab.up();
    let o = nslab().args(["status", "fx-init"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let pid: i32 = init_pid("fx-init", "a").parse().unwrap();
    // SAFETY: kill on the pid of the lab's init, read from its pid file just now.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    wait_for("the init to die", || {
        !std::path::Path::new(&format!("/proc/{pid}/ns")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z"))
    });
    let o = nslab().args(["status", "fx-init"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stdout(&o).contains("its init is not running"),
        "{}",
        text(&o)
    );
    lab.down();
}

#[test]
fn an_interrupted_up_is_named_with_the_way_out() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "fx-cut",
        "nodes:\n  a: {}\n  b: {}\n  c: {}\nlinks:\n  - [a:eth0, b:eth0]\n  - [b:eth1, c:eth0]\n",
    );
    let mut child = slow_up(&lab);
    wait_for("the journal", || lab.is_up());
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    for args in [
        &["status", "fx-cut"][..],
        &["ps", "--lab", "fx-cut"],
        &["exec", "--lab", "fx-cut", "a", "--", "true"],
    ] {
        let o = nslab().args(args).output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "nslab {args:?}: {err}");
        assert!(err.contains("interrupted `up`"), "nslab {args:?}: {err}");
        assert!(err.contains("nslab down fx-cut"), "nslab {args:?}: {err}");
        assert!(!err.contains("No such file"), "nslab {args:?}: {err}");
    }
    lab.down();
}

#[test]
fn sighup_during_up_rolls_back_like_sigint() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let lab = Lab::new(
        "fx-hupup",
        "nodes:\n  a: {}\n  b: {}\n  c: {}\nlinks:\n  - [a:eth0, b:eth0]\n  - [b:eth1, c:eth0]\n",
    );
    let before = host_snapshot();
    let child = nslab()
        .arg("up")
        .arg(&lab.file)
        .args(["--jobs", "1"])
        .env("NSLAB_TEST_STEP_DELAY_MS", "100")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the journal", || lab.is_up());
    std::thread::sleep(Duration::from_millis(250));
    // SAFETY: kill on the pid of a child we started and have not waited for.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGHUP) }, 0);
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(129), "{err}");
    assert!(err.contains("interrupted by SIGHUP"), "{err}");
    assert!(!lab.is_up(), "{err}");
    assert_same_host(&before, &host_snapshot(), "after SIGHUP to `nslab up`");
}

/// What `/proc` says of a node's init that a fork of the fork server could get wrong:
/// its descriptors (by target), environment, signal mask and dispositions, limits and
/// command line.
fn init_state(lab: &str) -> Vec<String> {
    let pid = init_pid(lab, "a");
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .map(|e| {
            let t = std::fs::read_link(e.path()).unwrap_or_default();
            // Pipes, sockets and the like by kind: their numbers are per run.
            let t = t.to_string_lossy();
            let kind = t.split(":[").next().unwrap_or_default().to_string();
            format!("fd {} {kind}", e.file_name().to_string_lossy())
        })
        .collect();
    fds.sort();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let signals = status
        .lines()
        .filter(|l| {
            ["SigBlk", "SigIgn", "SigCgt"]
                .iter()
                .any(|s| l.starts_with(s))
        })
        .map(str::to_string);
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .skip(1)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    fds.into_iter()
        .chain(signals)
        .chain([
            format!("environ {} bytes", environ.len()),
            limits,
            format!("args {args:?}"),
        ])
        .collect()
}

/// The fork server's processes still running, by command line.
fn fork_servers() -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).nth(1) == Some(b"__zygote"))
        })
        .count()
}

#[test]
fn an_init_forked_by_the_fork_server_starts_as_an_exec_d_one_would() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new("fx-fork", FD_PROCESS);
    let mut seen = Vec::new();
    for exec in [false, true] {
        let mut up = nslab();
        up.arg("up").arg(&lab.file).env("FX_CALLER_MARKER", "x");
        if exec {
            up.env("NSLAB_INIT_EXEC", "1");
        }
        let o = up.output().unwrap();
        assert!(o.status.success(), "up: {}", text(&o));
        seen.push(init_state("fx-fork"));
        lab.down();
    }
    assert_eq!(
        seen[0], seen[1],
        "forked (left) and exec'd (right) inits differ"
    );
    assert!(
        seen[0].contains(&"environ 0 bytes".to_string()),
        "{:?}",
        seen[0]
    );
    assert!(
        seen[0].contains(&r#"args ["__init", "-", "fx-fork/a"]"#.to_string()),
        "{:?}",
        seen[0]
    );
    // Each `up` ended, and with it its fork servers (other tests' may still run: only
    // this count's not growing is asserted, after a quiet moment).
    let after = fork_servers();
    let o = nslab().arg("up").arg(&lab.file).output().unwrap();
    assert!(o.status.success(), "up: {}", text(&o));
    lab.down();
    wait_for("the fork server of `up` to exit", || {
        fork_servers() <= after
    });
}

/// Prints the process attributes a fork and an exec keep, one `key value` a line.
const ATTRS_SCRIPT: &str = r#"
echo "oom $(cat /proc/self/oom_score_adj)"
echo "personality $(cat /proc/self/personality)"
echo "slack $(cat /proc/self/timerslack_ns)"
echo "nice $(cut -d' ' -f19 /proc/self/stat)"
echo "policy $(cut -d' ' -f41 /proc/self/stat)"
echo "ionice $(ionice -p $$)"
sed -n 's/^\(Cpus_allowed_list\|CapInh\|Groups\):[[:space:]]*/\1 /p' /proc/self/status
sed -n 's/^Max \(core\|stack\|processes\|locked\|open\)[a-z ]*  */\1 /p' /proc/self/limits
echo "mempolicy $(head -1 /proc/self/numa_maps | cut -d' ' -f2)"
sed -n 's/^THP_enabled:[[:space:]]*/thp /p' /proc/self/status
python3 -c '
import ctypes
b = ctypes.create_string_buffer(256)
# keyctl(KEYCTL_DESCRIBE, KEY_SPEC_SESSION_KEYRING): "type;uid;gid;perm;name"
n = ctypes.CDLL(None).syscall(250, 6, -3, b, 256)
print("keyring", b.value.decode().split(";")[-1] if n > 0 else "none")
'
echo done
"#;

/// `key value` lines of `text` as a map (the last one of a key wins).
fn attrs(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect()
}

/// Whether this process may raise a hard limit (`CAP_SYS_RESOURCE`, 24): root in a VM or
/// container without it cannot, and neither can nslab, so a node keeps the caller's hard
/// limit where it is below the default.
fn has_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
        .unwrap();
    eff & (1 << 24) != 0
}

/// `soft hard unit` as /proc/PID/limits shows the default `soft`/`hard` of `res`, given
/// this process's hard limit (which the odd caller keeps).
fn expected_limit(res: libc::__rlimit_resource_t, soft: u64, hard: u64, unit: &str) -> String {
    let mut own = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills a local struct.
    assert_eq!(unsafe { libc::getrlimit(res, &mut own) }, 0);
    let hard = if has_sys_resource() {
        hard
    } else {
        hard.min(own.rlim_max)
    };
    let show = |v: u64| {
        if v == libc::RLIM_INFINITY {
            "unlimited".to_string()
        } else {
            v.to_string()
        }
    };
    format!("{} {} {unit}", show(soft.min(hard)), show(hard))
}

/// What a node's process must have, whatever its caller had.
fn check_defaults(who: &str, got: &std::collections::HashMap<String, String>) {
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let cpus = own
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string();
    let threads: u64 = std::fs::read_to_string("/proc/sys/kernel/threads-max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let limits: Vec<(&str, String)> = [
        ("core", libc::RLIMIT_CORE, 0, libc::RLIM_INFINITY, "bytes"),
        (
            "stack",
            libc::RLIMIT_STACK,
            8 << 20,
            libc::RLIM_INFINITY,
            "bytes",
        ),
        (
            "processes",
            libc::RLIMIT_NPROC,
            threads / 2,
            threads / 2,
            "processes",
        ),
        ("locked", libc::RLIMIT_MEMLOCK, 8 << 20, 8 << 20, "bytes"),
        ("open", libc::RLIMIT_NOFILE, 1024, 524_288, "files"),
    ]
    .into_iter()
    .map(|(key, res, soft, hard, unit)| (key, expected_limit(res, soft, hard, unit)))
    .collect();
    let mut want = vec![
        ("oom", "0"),
        ("personality", "00000000"),
        ("slack", "50000"),
        ("nice", "0"),
        ("policy", "0"),
        ("ionice", "none: prio 0"),
        ("Cpus_allowed_list", cpus.as_str()),
        ("CapInh", "0000000000000000"),
        ("Groups", ""),
        ("mempolicy", "default"),
        ("thp", "1"),
    ];
    // A session keyring of its own, not the caller's (whose keys a process possesses,
    // and so may read, whatever its user).
    let keyring = got.get("keyring").map(String::as_str);
    assert!(
        keyring.is_some_and(|k| k != "none" && k != CALLER_KEYRING.to_str().unwrap()),
        "{who}: session keyring {keyring:?} (all: {got:?})"
    );
    want.extend(limits.iter().map(|(k, v)| (*k, v.as_str())));
    for (key, value) in want {
        assert_eq!(
            got.get(key).map(String::as_str),
            Some(value),
            "{who}: `{key}` (all: {got:?})"
        );
    }
}

/// The session keyring the odd caller joins (and holds a key in).
const CALLER_KEYRING: &std::ffi::CStr = c"nslab-test-caller";

/// Joins a session keyring named [`CALLER_KEYRING`] and adds a key to it, as a caller
/// holding secrets would; false if either call fails. Only system calls, so it may run
/// between fork and exec.
///
/// # Safety
/// Called in a child between fork and exec, or in a process whose keyring may change.
unsafe fn hold_a_caller_key() -> bool {
    // SAFETY: both calls take valid, NUL-terminated strings and a 1-byte payload.
    unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            libc::KEYCTL_JOIN_SESSION_KEYRING,
            CALLER_KEYRING.as_ptr(),
        ) >= 0
            && libc::syscall(
                libc::SYS_add_key,
                c"user".as_ptr(),
                c"nslab-test-secret".as_ptr(),
                b"x".as_ptr(),
                1usize,
                libc::KEY_SPEC_SESSION_KEYRING,
            ) >= 0
    }
}

/// `nslab ARGS` from a caller with every inheritable attribute off its default: nice 10
/// (`nice -n 10`), CPU 0 only (`taskset -c 0`), `oom_score_adj` 500, the idle I/O class
/// (`ionice -c 3`), ASLR off (`setarch -R`), 1 ms timer slack, other soft limits,
/// a supplementary group, an inheritable capability, a session keyring holding a key,
/// memory bound to NUMA node 0 and transparent huge pages off.
fn odd_caller(args: &[&str]) -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(env!("CARGO_BIN_EXE_nslab"));
    c.args(args);
    // SAFETY: only system calls on this child between fork and exec.
    unsafe {
        c.pre_exec(|| {
            let fail = || Err(std::io::Error::last_os_error());
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut one);
            if libc::setpriority(libc::PRIO_PROCESS, 0, 10) != 0
                || libc::sched_setaffinity(0, std::mem::size_of_val(&one), &one) != 0
                // IOPRIO_WHO_PROCESS, self, IOPRIO_CLASS_IDLE << 13.
                || libc::syscall(libc::SYS_ioprio_set, 1, 0, 3 << 13) != 0
                || libc::personality(libc::ADDR_NO_RANDOMIZE as libc::c_ulong) < 0
                || libc::prctl(libc::PR_SET_TIMERSLACK, 1_000_000, 0, 0, 0) != 0
                || libc::setgroups(1, [4242].as_ptr()) != 0
                // Memory bound to NUMA node 0 (`numactl --membind 0`), MPOL_BIND.
                || libc::syscall(libc::SYS_set_mempolicy, 2, [1u64].as_ptr(), 2) != 0
                || libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0
                // A session keyring of its own, holding a key: possessed by whatever
                // inherits the keyring, whatever its user.
                || !hold_a_caller_key()
            {
                return fail();
            }
            // Soft limits only: without CAP_SYS_RESOURCE a lowered hard limit is for good.
            for (res, cur) in [
                (libc::RLIMIT_CORE, 1 << 20),
                (libc::RLIMIT_STACK, 16 << 20),
                (libc::RLIMIT_NPROC, 5000),
                (libc::RLIMIT_MEMLOCK, 64 << 10),
                (libc::RLIMIT_NOFILE, 4000),
            ] {
                let mut lim = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::getrlimit(res, &mut lim);
                lim.rlim_cur = lim.rlim_max.min(cur);
                if libc::setrlimit(res, &lim) != 0 {
                    return fail();
                }
            }
            let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY);
            if fd < 0 || libc::write(fd, b"500".as_ptr().cast(), 3) != 3 {
                return fail();
            }
            libc::close(fd);
            // CAP_NET_RAW (13) in the inheritable set, which survives exec.
            let mut head = [0x2008_0522u32, 0];
            let mut data = [0u32; 6];
            if libc::syscall(libc::SYS_capget, head.as_mut_ptr(), data.as_mut_ptr()) != 0 {
                return fail();
            }
            data[2] |= 1 << 13;
            if libc::syscall(libc::SYS_capset, head.as_mut_ptr(), data.as_ptr()) != 0 {
                return fail();
            }
            Ok(())
        });
    }
    c
}

#[test]
fn the_callers_nice_affinity_limits_and_other_attributes_reach_no_node() {
    if !privileged() {
        return;
    }
    let _h = shared();
    // Under /var/tmp, which a node shares with the host: its /tmp is its own, and a
    // clone of this repository may itself live under /tmp.
    let script = PathBuf::from("/var/tmp/nslab-tests-fx-attrs.sh");
    std::fs::write(&script, ATTRS_SCRIPT).unwrap();
    let yaml = format!(
        "nodes:\n  a:\n    processes:\n      - {{ name: p, cmd: \"sh -c 'sh {} && exec sleep 1000'\" }}\n",
        script.display()
    );
    // Through the fork server (the default), and through an exec'd init.
    for (name, init_exec) in [("fx-attrs", "0"), ("fx-attrsx", "1")] {
        let lab = Lab::new(name, &yaml);
        let o = odd_caller(&["up"])
            .arg(&lab.file)
            .env("NSLAB_INIT_EXEC", init_exec)
            .output()
            .unwrap();
        assert!(o.status.success(), "up: {}{}", stdout(&o), stderr(&o));
        wait_for("the process to report", || {
            logs(name, "a", "p").contains("done")
        });
        check_defaults(&format!("{name}: a process"), &attrs(&logs(name, "a", "p")));
        // The init itself, read from the host.
        let init = init_pid(name, "a");
        let oom = std::fs::read_to_string(format!("/proc/{init}/oom_score_adj")).unwrap();
        assert_eq!(oom.trim(), "0", "{name}: the init's oom_score_adj");
        // `nslab exec` from the same caller: the command starts from the defaults too.
        let script_arg = script.to_str().unwrap();
        let o = odd_caller(&["exec", "--lab", name, "a", "--", "sh", script_arg])
            .output()
            .unwrap();
        assert!(o.status.success(), "exec: {}", stderr(&o));
        check_defaults(&format!("{name}: nslab exec"), &attrs(&stdout(&o)));
        lab.down();
    }
    let _ = std::fs::remove_file(&script);
}

/// `nslab ARGS` from a caller whose session keyring holds a key, under a seccomp filter
/// that makes joining a new session keyring fail with EDQUOT (root's key quota used up),
/// as its nodes' inits and commands inherit it.
fn keyring_refused(args: &[&str]) -> Command {
    keyctl_filtered(args, libc::EDQUOT, false)
}

/// `nslab ARGS` from a caller whose session keyring holds a key, under a seccomp filter
/// (inherited by its nodes' inits and commands) that makes keyctl fail with `errno`:
/// joining a new session keyring only, or with `every` each keyctl, as a container
/// runtime's default profile does (Docker's: EPERM).
fn keyctl_filtered(args: &[&str], errno: i32, every: bool) -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(env!("CARGO_BIN_EXE_nslab"));
    c.args(args);
    // Past the operation test: to the errno (every keyctl), or past it to allow.
    let other_op = u8::from(!every);
    // SAFETY: only system calls on this child between fork and exec.
    unsafe {
        c.pre_exec(move || {
            const LD_W_ABS: u16 = 0x20;
            const JEQ_K: u16 = 0x15;
            const RET_K: u16 = 0x06;
            let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
            // seccomp_data: nr at 0, arch at 4, the first argument's low half at 16;
            // jumps skip that many instructions (to the last: allow).
            let mut prog = [
                op(LD_W_ABS, 0, 0, 4),
                op(JEQ_K, 0, 5, 0xc000_003e),
                op(LD_W_ABS, 0, 0, 0),
                op(JEQ_K, 0, 3, libc::SYS_keyctl as u32),
                op(LD_W_ABS, 0, 0, 16),
                op(JEQ_K, 0, other_op, libc::KEYCTL_JOIN_SESSION_KEYRING),
                op(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | errno as u32),
                op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
            ];
            let fprog = libc::sock_fprog {
                len: prog.len() as u16,
                filter: prog.as_mut_ptr(),
            };
            if !hold_a_caller_key()
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &fprog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c
}

#[test]
fn a_node_or_command_refused_a_keyring_of_its_own_does_not_start() {
    if !privileged() {
        return;
    }
    let _h = shared();
    let lab = Lab::new(
        "fx-keyring",
        "nodes:\n  a:\n    processes:\n      - { name: p, cmd: \"sleep 1000\" }\n",
    );
    // `up` fails, naming the lab, the node and what it would have shared, and rolls back.
    let o = keyring_refused(&["up"]).arg(&lab.file).output().unwrap();
    let said = format!("{}{}", stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(2), "{said}");
    for needle in [
        "fx-keyring",
        "`a`",
        "session keyring of its own",
        "Disk quota exceeded",
        "share the session keyring of whoever ran nslab",
    ] {
        assert!(said.contains(needle), "`{needle}` missing from: {said}");
    }
    assert!(!lab.is_up(), "the lab was rolled back");
    // A command run into a lab from such a caller does not start either.
    lab.up();
    let o = keyring_refused(&["exec", "--lab", "fx-keyring", "a", "--", "true"])
        .output()
        .unwrap();
    let said = stderr(&o);
    assert!(!o.status.success(), "{said}");
    assert!(
        said.contains("session keyring of its own") && said.contains("Disk quota exceeded"),
        "{said}"
    );
    lab.down();
}

/// Prints what keyctl gives for the session keyring: `describe N ERRNO` when refused,
/// `describe N TYPE;UID;GID;PERM;NAME` when it is in reach.
const KEYRING_PROBE: &str = r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
b = ctypes.create_string_buffer(256)
# keyctl(KEYCTL_DESCRIBE, KEY_SPEC_SESSION_KEYRING, buf, 256)
n = libc.syscall(250, 6, -3, b, 256)
print("describe", n, ctypes.get_errno() if n < 0 else b.value.decode())
"#;

/// Under a container runtime's profile, where every keyctl is refused, the keyring join
/// is refused too, and so is any reach into the caller's keyring: the node starts, and
/// neither its process nor a command run in it can read the keyring.
#[test]
fn a_node_under_a_filter_refusing_every_keyctl_starts_and_reaches_no_keyring() {
    if !privileged() {
        return;
    }
    let _h = shared();
    // Under /var/tmp, which a node shares with the host (its /tmp is its own).
    let probe = PathBuf::from("/var/tmp/nslab-tests-fx-keyfilter.py");
    std::fs::write(&probe, KEYRING_PROBE).unwrap();
    let lab = Lab::new(
        "fx-keyfilter",
        &format!(
            "nodes:\n  a:\n    processes:\n      - {{ name: p, cmd: \"sh -c 'python3 {} && exec sleep 1000'\" }}\n",
            probe.display()
        ),
    );
    let o = keyctl_filtered(&["up"], libc::EPERM, true)
        .arg(&lab.file)
        .output()
        .unwrap();
    assert!(o.status.success(), "up: {}{}", stdout(&o), stderr(&o));
    wait_for("the process to report", || {
        logs("fx-keyfilter", "a", "p").contains("describe")
    });
    // The filter came with the node: its keyring (the caller's) is out of reach.
    let said = logs("fx-keyfilter", "a", "p");
    assert!(said.contains("describe -1 1"), "{said}");
    let o = keyctl_filtered(
        &["exec", "--lab", "fx-keyfilter", "a", "--", "python3"],
        libc::EPERM,
        true,
    )
    .arg(&probe)
    .output()
    .unwrap();
    assert!(o.status.success(), "exec: {}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "describe -1 1", "{}", stderr(&o));
    lab.down();
    // The same caller with only the join refused, with the same errno: the caller's
    // keyring is in reach, so the node does not start.
    let o = keyctl_filtered(&["up"], libc::EPERM, false)
        .arg(&lab.file)
        .output()
        .unwrap();
    let said = format!("{}{}", stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(2), "{said}");
    assert!(said.contains("session keyring of its own"), "{said}");
    assert!(!lab.is_up(), "the lab was rolled back");
    let _ = std::fs::remove_file(&probe);
}
