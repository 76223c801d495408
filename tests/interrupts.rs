//! Real SIGINT and SIGTERM sent to real `nslab test`, `down` and `apply` runs in each
//! phase (during `up`, during the checks, during the teardown, a second signal during
//! the teardown), as root: the exit code is 128 + N, the JUnit file says where the run
//! was stopped, and the host is left as it was. Also what the JUnit file carries of a
//! check's output and a dying process's log, escaped so that it stays XML.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use support::*;

/// Sends `sig` to a child we started and have not waited for.
fn signal(child: &Child, sig: i32) {
    // SAFETY: kill on the pid of our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// The JUnit file parsed by a strict XML parser (and by python3's when it is installed).
fn parsed(path: &Path) -> String {
    let xml = std::fs::read_to_string(path).expect("the JUnit file is written");
    if let Err(e) = roxmltree::Document::parse(&xml) {
        panic!("not XML: {e}\n{xml}");
    }
    if Command::new("python3").arg("--version").output().is_ok() {
        let o = Command::new("python3")
            .args([
                "-c",
                "import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])",
            ])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "python3 cannot parse it: {}\n{xml}",
            text(&o)
        );
    }
    xml
}

/// The `<testcase>` named `name`.
fn case<'a>(doc: &'a roxmltree::Document, name: &str) -> roxmltree::Node<'a, 'a> {
    doc.descendants()
        .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(name))
        .unwrap_or_else(|| panic!("no testcase `{name}`"))
}

/// The suite's `interrupted_by` and `interrupted_during` properties.
fn interrupted(doc: &roxmltree::Document) -> (Option<String>, Option<String>) {
    let prop = |k: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name("property") && n.attribute("name") == Some(k))
            .and_then(|n| n.attribute("value").map(str::to_string))
    };
    (prop("interrupted_by"), prop("interrupted_during"))
}

/// Nothing of `lab` is left in /run/nslab or /run/netns, nor a process of it.
fn nothing_left(lab: &str) {
    let prefix = format!("nslab.{lab}");
    for (dir, p) in [("/run/nslab", lab), ("/run/netns", prefix.as_str())] {
        let left: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(p))
            .collect();
        assert!(left.is_empty(), "{dir} still holds {left:?}");
    }
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(
        !ps.lines().any(|l| l.contains(&format!("__init - {lab}/"))),
        "an init of {lab} is left:\n{ps}"
    );
}

/// A scratch path of this test's own.
fn scratch(name: &str) -> Scratch {
    let p = std::env::temp_dir().join("nslab-tests").join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&p);
    Scratch(p)
}

#[test]
fn sigterm_during_up_exits_143_and_the_junit_file_says_lab_up_was_interrupted() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let before = host_snapshot();
    let lab = Lab::new(
        "sg-termup",
        "nodes: { a: {}, b: {}, c: {} }\nlinks: [[a, b], [b, c]]\ntests:\n  - reach: { from: a, to: c }\n  - reach: { from: a, to: b }\n",
    );
    let junit = scratch("sg-termup.xml");
    let child = nslab()
        .arg("test")
        .arg(&lab.file)
        .args(["--jobs", "1", "--junit"])
        .arg(junit.path())
        .env("NSLAB_TEST_STEP_DELAY_MS", "100")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its journal exists once `up` has begun making objects.
    wait_for("the journal", || lab.is_up());
    signal(&child, libc::SIGTERM);
    // A second signal while it rolls back changes neither the rollback nor the code.
    std::thread::sleep(std::time::Duration::from_millis(50));
    // (Not reaped yet, so the pid is still the child's, even if it has exited.)
    signal(&child, libc::SIGINT);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{}", text(&o));
    assert!(text(&o).contains("interrupted by SIGTERM"), "{}", text(&o));
    let xml = parsed(junit.path());
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let up = case(&doc, "lab up");
    let err = up
        .children()
        .find(|n| n.has_tag_name("error"))
        .expect("`lab up` has an <error>");
    assert_eq!(err.attribute("type"), Some("interrupted"), "{xml}");
    let msg = err.attribute("message").unwrap();
    assert!(
        msg.starts_with("interrupted by SIGTERM during up, after"),
        "{xml}"
    );
    assert!(!xml.contains("<failure"), "{xml}");
    for name in ["1: reach a -> c", "2: reach a -> b"] {
        let skipped = case(&doc, name)
            .children()
            .find(|n| n.has_tag_name("skipped"))
            .unwrap_or_else(|| panic!("{name} is not skipped: {xml}"));
        assert_eq!(
            skipped.attribute("message"),
            Some("not run: interrupted by SIGTERM"),
            "{xml}"
        );
    }
    assert_eq!(
        interrupted(&doc),
        (Some("SIGTERM".into()), Some("up".into()))
    );
    assert!(!lab.is_up());
    nothing_left("sg-termup");
    assert_same_host(&before, &host_snapshot(), "after SIGTERM during up");
}

/// A directory of the test's own beside the labs' files, mounted at `/mnt/out` in a
/// node (its `/tmp` is its own).
fn out_dir(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join("nslab-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// A lab whose one process ignores SIGTERM and says when it got one (`term` in its
/// out directory), so its teardown waits out the process's `stop_timeout` and a test
/// knows the teardown has begun. It is ready (for `up`, so for the test) only once its
/// trap is set: without that, a process counts as ready once it runs, and on a loaded
/// host the SIGTERM of a `down` right after `up` could reach the shell before its `trap`
/// line and kill it (no flag, no grace).
fn stubborn(name: &str) -> (Lab, Scratch) {
    let out = out_dir(&format!("{name}-out"));
    let lab = Lab::new(
        name,
        &format!(
            r#"
nodes:
  a:
    mounts: ["{name}-out:/mnt/out"]
    processes:
      - name: stubborn
        cmd: "sh -c 'trap \"touch /mnt/out/term\" TERM; touch /mnt/out/trapped; while :; do sleep 0.1; done'"
        ready: {{ file: /mnt/out/trapped }}
        stop_timeout: 3s
  b: {{}}
links: [[a, b]]
tests:
  - reach: {{ from: a, to: b, name: ping }}
"#
        ),
    );
    (lab, out)
}

#[test]
fn signals_during_the_teardown_of_nslab_test_let_it_finish_and_exit_128_plus_n() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let before = host_snapshot();
    let (lab, out) = stubborn("sg-testdown");
    let flag = out.path().join("term");
    let junit = scratch("sg-testdown.xml");
    let mut child = nslab()
        .arg("test")
        .arg(&lab.file)
        .arg("--junit")
        .arg(junit.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = String::new();
    while !lines.contains("PASS  ping") {
        assert!(out.read_line(&mut lines).unwrap() > 0, "{lines}");
    }
    // The check passed; the teardown has begun once the process got its SIGTERM.
    wait_for("the process's SIGTERM", || flag.exists());
    signal(&child, libc::SIGINT);
    // A second signal while the teardown still waits out the process's grace.
    std::thread::sleep(std::time::Duration::from_millis(200));
    signal(&child, libc::SIGTERM);
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(status.code(), Some(130), "{lines}{rest}");
    assert!(rest.contains("1 check, 1 passed, 0 failed"), "{rest}");
    let xml = parsed(junit.path());
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(
        interrupted(&doc),
        (Some("SIGINT".into()), Some("down".into()))
    );
    assert!(
        !xml.contains("<error") && !xml.contains("<failure"),
        "{xml}"
    );
    assert!(!lab.is_up());
    nothing_left("sg-testdown");
    assert_same_host(
        &before,
        &host_snapshot(),
        "after signals during the teardown",
    );
}

/// The suite's `teardown` property (`pending` in a report written before the teardown).
fn teardown(doc: &roxmltree::Document) -> Option<String> {
    doc.descendants()
        .find(|n| n.has_tag_name("property") && n.attribute("name") == Some("teardown"))
        .and_then(|n| n.attribute("value").map(str::to_string))
}

/// A CI runner's last resort: SIGKILL after its grace, here while the teardown waits out
/// a process's `stop_timeout`. The JUnit file written when the checks ended is there,
/// whole, with the check's verdict and the teardown marked pending; `down` then removes
/// the lab. Run to its end, the same run replaces that report with one without the mark.
#[test]
fn a_run_killed_during_its_teardown_leaves_a_whole_report_marked_teardown_pending() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let before = host_snapshot();
    let (lab, out) = stubborn("sg-killdown");
    let flag = out.path().join("term");
    let junit = scratch("sg-killdown.xml");
    // A report of an earlier run at the name: replaced, never left half-written.
    std::fs::write(junit.path(), "<testsuites name=\"old\"/>\n").unwrap();
    let mut child = nslab()
        .arg("test")
        .arg(&lab.file)
        .arg("--junit")
        .arg(junit.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = String::new();
    while !lines.contains("PASS  ping") {
        assert!(stdout.read_line(&mut lines).unwrap() > 0, "{lines}");
    }
    // The teardown has begun once the process got its SIGTERM; it waits 3 s for it.
    wait_for("the process's SIGTERM", || flag.exists());
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    let xml = parsed(junit.path());
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(teardown(&doc).as_deref(), Some("pending"), "{xml}");
    assert_eq!(interrupted(&doc), (None, None), "{xml}");
    let ping = case(&doc, "ping");
    assert!(ping.children().all(|n| !n.is_element()), "{xml}");
    assert!(xml.contains("`nslab down LAB` removes it"), "{xml}");
    // Nothing but the report beside it: the new content was renamed over the name.
    let dir = junit.path().parent().unwrap();
    let beside: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("sg-killdown.xml."))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");
    // The killed run's lab is left for `down`.
    let o = nslab().args(["down", "sg-killdown"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    nothing_left("sg-killdown");
    // Let to finish, the run's last report replaces the pending one.
    let o = nslab()
        .arg("test")
        .arg(&lab.file)
        .arg("--junit")
        .arg(junit.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let xml = parsed(junit.path());
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(teardown(&doc), None, "{xml}");
    assert!(!xml.contains("<system-err>"), "{xml}");
    assert!(!lab.is_up());
    nothing_left("sg-killdown");
    assert_same_host(
        &before,
        &host_snapshot(),
        "after a run killed in its teardown",
    );
}

#[test]
fn signals_during_nslab_down_let_it_finish_and_exit_128_plus_n() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let before = host_snapshot();
    let (lab, out) = stubborn("sg-down");
    let flag = out.path().join("term");
    lab.up();
    let child = nslab()
        .args(["down", "sg-down"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the process's SIGTERM", || flag.exists());
    signal(&child, libc::SIGTERM);
    // A second one (a closed terminal) while it still waits out the process's grace. Held
    // signals are told in the order SIGINT, SIGTERM, SIGHUP, not the order they came.
    std::thread::sleep(std::time::Duration::from_millis(200));
    signal(&child, libc::SIGHUP);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{}", text(&o));
    assert!(
        text(&o).contains("interrupted by SIGTERM; the teardown of lab `sg-down` finished first"),
        "{}",
        text(&o)
    );
    assert!(!lab.is_up());
    nothing_left("sg-down");
    assert_same_host(&before, &host_snapshot(), "after signals during down");
}

#[test]
fn sigint_during_a_change_by_apply_rolls_it_back_and_exits_130() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let before = host_snapshot();
    let base = "nodes: { a: {}, b: {} }\nlinks: [[a, b]]\n";
    let lab = Lab::new("sg-apply", base);
    lab.up();
    let journal = PathBuf::from("/run/nslab/sg-apply.journal");
    let objects = || {
        std::fs::read_to_string(&journal)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"object\""))
            .count()
    };
    let had = objects();
    let bigger = "name: sg-apply\nnodes: { a: {}, b: {}, c: {}, d: {}, e: {} }\nlinks: [[a, b], [b, c], [c, d], [d, e]]\n";
    std::fs::write(&lab.file, bigger).unwrap();
    let child = nslab()
        .arg("apply")
        .arg(&lab.file)
        .args(["--jobs", "1"])
        .env("NSLAB_TEST_STEP_DELAY_MS", "100")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the change to begin", || objects() > had);
    signal(&child, libc::SIGINT);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    assert!(text(&o).contains("interrupted by SIGINT"), "{}", text(&o));
    // Rolled back: the lab is what it was, two nodes.
    let ns: Vec<String> = std::fs::read_dir("/run/netns")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("nslab.sg-apply."))
        .collect();
    assert!(
        !ns.iter().any(|n| n.ends_with(".c") || n.ends_with(".e")),
        "{ns:?}"
    );
    lab.down();
    nothing_left("sg-apply");
    assert_same_host(&before, &host_snapshot(), "after SIGINT during apply");
}

/// Bytes XML cannot hold (control characters, U+FFFE), invalid UTF-8 and a colour code.
const UGLY: &str = r"printf 'start\033[31mred\001\002\377\376 \357\277\276 end\n'";

#[test]
fn the_junit_file_carries_check_output_and_process_logs_escaped_and_bounded() {
    if !privileged() {
        return;
    }
    let _h = shared();
    // The commands as scripts, in a directory the nodes mount.
    let dir = out_dir("sg-output-out");
    let script = |name: &str, body: &str| {
        std::fs::write(dir.path().join(name), format!("{body}\n")).unwrap();
        format!("/mnt/out/{name}")
    };
    let ugly = script("ugly.sh", UGLY);
    let dies = script("dies.sh", &format!("sh {ugly}; echo last-words; exit 3"));
    let check = script("check.sh", &format!("sh {ugly}; sh {ugly} >&2; exit 1"));
    let long = script(
        "long.sh",
        "head -c 200000 /dev/zero | tr '\\0' x; echo; echo the-end",
    );
    let lab = Lab::new(
        "sg-output",
        &format!(
            r#"
defaults:
  mounts: ["sg-output-out:/mnt/out"]
nodes:
  a:
    processes:
      - {{ name: dies, cmd: "sh {dies}" }}
  b: {{}}
links: [[a, b]]
tests:
  - cmd: {{ node: b, run: "sh {check}", timeout: 1s, name: ugly }}
  - cmd: {{ node: b, run: "sh {long}", name: long }}
"#
        ),
    );
    let junit = scratch("sg-output.xml");
    let o = nslab()
        .arg("test")
        .arg(&lab.file)
        .arg("--junit")
        .arg(junit.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let xml = parsed(junit.path());
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let stream = |case_name: &str, tag: &str| -> String {
        case(&doc, case_name)
            .children()
            .find(|n| n.has_tag_name(tag))
            .and_then(|n| n.text())
            .unwrap_or_else(|| panic!("`{case_name}` has no <{tag}>: {xml}"))
            .to_string()
    };
    // The check's own output, both streams, the bytes XML forbids written out.
    let shown = "start\\x1b[31mred\\x01\\x02\u{fffd}\u{fffd} \\u{fffe} end";
    for tag in ["system-out", "system-err"] {
        let t = stream("ugly", tag);
        assert!(t.contains(shown), "{tag}: {t:?}");
    }
    // The dying process: a failure with the end of its log, and its log in system-out.
    let dead = case(&doc, "processes [a]");
    assert!(dead.children().any(|n| n.has_tag_name("failure")), "{xml}");
    let log = stream("processes [a]", "system-out");
    assert!(log.contains("--- the end of `dies`'s log ---"), "{log:?}");
    assert!(log.contains(shown) && log.contains("last-words"), "{log:?}");
    // A passing check's output is there too, its end only, saying what was cut.
    let long = stream("long", "system-out");
    assert!(long.len() <= 64 * 1024 + 100, "{}", long.len());
    assert!(
        long.starts_with("[... ") && long.contains("bytes before]"),
        "{}",
        &long[..80]
    );
    assert!(
        long.trim_end().ends_with("the-end"),
        "{}",
        &long[long.len() - 80..]
    );
    assert!(!lab.is_up());
}

#[test]
fn a_signal_stops_an_up_waiting_for_another_commands_lock_at_once() {
    if !privileged() {
        return;
    }
    let _h = exclusive();
    let before = host_snapshot();
    let lab = Lab::new(
        "sg-wait",
        "nodes: { a: {}, b: {}, c: {} }\nlinks: [[a, b], [b, c]]\n",
    );
    // A slow `up` holds the lab's lock...
    let mut first = slow_up(&lab);
    wait_for("the journal", || lab.is_up());
    // ...and a second one waits for it, saying so.
    let mut second = nslab()
        .arg("up")
        .arg(&lab.file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(second.stderr.take().unwrap());
    let mut said = String::new();
    err.read_line(&mut said).unwrap();
    assert!(said.contains("is busy with another command"), "{said}");
    signal(&second, libc::SIGINT);
    let status = second.wait().unwrap();
    // It did not wait for the first to finish.
    let first_running = first.try_wait().unwrap().is_none();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert_eq!(status.code(), Some(130), "{said}{rest}");
    assert!(rest.contains("interrupted by SIGINT"), "{rest}");
    assert!(first_running, "the second `up` waited for the first to end");
    // The first goes on unharmed.
    assert!(first.wait().unwrap().success());
    assert!(lab.is_up());
    lab.down();
    nothing_left("sg-wait");
    assert_same_host(&before, &host_snapshot(), "after SIGINT to a waiting up");
}
