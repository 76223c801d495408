//! Reports of a test run: a human table, JUnit XML (one testcase per check) and JSON.

use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use super::{CheckResult, Status};
use crate::xml::escape as xml;

/// One line per check, as it finishes: status, name, time, and the reason on failure.
/// `width` is the longest name of the run's checks, so the times line up (the lines are
/// printed one by one, so it is measured before the first).
pub fn human_line(r: &CheckResult, width: usize) -> String {
    let tag = match r.status {
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::Skipped => "SKIP",
        Status::Interrupted => "INTR",
    };
    let mut line = format!(
        "{tag}  {:<width$}  {:>6.2}s",
        r.name,
        r.duration.as_secs_f64()
    );
    if let Some(reason) = &r.reason {
        // A reason of several lines (a log's end) stays indented under its check.
        for l in reason.lines() {
            let _ = write!(line, "\n      {l}");
        }
    }
    line
}

pub fn summary(lab: &str, results: &[CheckResult], elapsed: Duration) -> String {
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    let (pass, fail) = (count(Status::Pass), count(Status::Fail));
    let (skip, cut) = (count(Status::Skipped), count(Status::Interrupted));
    let steps = results.iter().filter(|r| r.kind == "step").count();
    let what = if steps == 0 {
        crate::words::count(results.len(), "check")
    } else {
        format!(
            "{} and {}",
            crate::words::count(results.len() - steps, "check"),
            crate::words::count(steps, "step")
        )
    };
    let mut s = format!("lab `{lab}`: {what}, {pass} passed, {fail} failed");
    if cut > 0 {
        let _ = write!(s, ", {cut} interrupted");
    }
    if skip > 0 {
        let _ = write!(s, ", {skip} not run");
    }
    let _ = write!(s, " ({:.2}s)", elapsed.as_secs_f64());
    s
}

/// What a run's reports carry besides its results.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome<'a> {
    /// Why the lab is not up (or the file is invalid): a testcase `lab up` with an
    /// `<error>`, counted in `errors`.
    pub up_error: Option<&'a str>,
    /// The signal that stopped the run (`SIGTERM`, ...), and the phase it came in: `up`,
    /// `checks` or `down`.
    pub interrupted: Option<(&'a str, &'a str)>,
    /// Written as the checks ended, with the lab's teardown still to come: the report a
    /// run killed (SIGKILL) during its teardown leaves, which a later one replaces.
    pub teardown_pending: bool,
}

/// What a report written before the teardown says of it, in the JUnit file's
/// `<system-err>` (the `teardown` property says `pending`).
const PENDING: &str = "nslab wrote this report when the checks ended, before taking the lab down, and replaces it once the lab is down: a report that still says so comes from a run killed during its teardown, whose lab may be partly up (`nslab ls` lists it, `nslab down LAB` removes it)";

/// The most of a process's log, or of a check command's stdout or stderr, a testcase's
/// `<system-out>` or `<system-err>` holds: the end, where the reason usually is.
pub const MAX_OUTPUT: usize = 64 << 10;

/// JUnit XML: a testsuite for the lab with a testcase per check. A lab that could not
/// come up is one testcase with an `<error>`, and so is a check a signal interrupted (an
/// error, not a failure: it never gave a verdict), and `lab up` when the signal came
/// during `up`, `type="interrupted"` both. The signal and phase are also the suite's
/// properties, and so is a teardown still pending (`teardown`, also said in the suite's
/// `<system-err>`). A check's captured output (a `cmd` check's stdout and stderr, the
/// end of a failed process's log) goes in `<system-out>` and `<system-err>`.
pub fn junit(lab: &str, results: &[CheckResult], elapsed: Duration, o: &Outcome) -> String {
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    let (fail, skip) = (count(Status::Fail), count(Status::Skipped));
    let errors = usize::from(o.up_error.is_some()) + count(Status::Interrupted);
    let tests = results.len() + usize::from(o.up_error.is_some());
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let totals = format!(
        "tests=\"{tests}\" failures=\"{fail}\" errors=\"{errors}\" skipped=\"{skip}\" time=\"{:.3}\"",
        elapsed.as_secs_f64()
    );
    let _ = writeln!(out, "<testsuites name=\"nslab\" {totals}>");
    let _ = writeln!(out, "  <testsuite name=\"{}\" {totals}>", xml(lab));
    properties(&mut out, o);
    if let Some(e) = o.up_error {
        let _ = writeln!(
            out,
            "    <testcase name=\"lab up\" classname=\"nslab.{}\" time=\"{:.3}\">",
            xml(lab),
            elapsed.as_secs_f64()
        );
        let _ = match o.interrupted {
            Some((signal, "up")) => writeln!(
                out,
                "      <error message=\"interrupted by {} during up, after {:.1}s\" type=\"interrupted\">{}</error>",
                xml(signal),
                elapsed.as_secs_f64(),
                xml(e)
            ),
            _ => writeln!(
                out,
                "      <error message=\"{}\">{}</error>",
                xml(e.lines().next().unwrap_or("")),
                xml(e)
            ),
        };
        out.push_str("    </testcase>\n");
    }
    for r in results {
        testcase(&mut out, lab, r);
    }
    if o.teardown_pending {
        let _ = writeln!(out, "    <system-err>{}</system-err>", xml(PENDING));
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// The suite's properties: where a signal stopped the run, and a teardown to come.
fn properties(out: &mut String, o: &Outcome) {
    let mut props = Vec::new();
    if let Some((signal, phase)) = o.interrupted {
        props.push(("interrupted_by", signal));
        props.push(("interrupted_during", phase));
    }
    if o.teardown_pending {
        props.push(("teardown", "pending"));
    }
    if props.is_empty() {
        return;
    }
    out.push_str("    <properties>\n");
    for (name, value) in props {
        let _ = writeln!(
            out,
            "      <property name=\"{name}\" value=\"{}\"/>",
            xml(value)
        );
    }
    out.push_str("    </properties>\n");
}

/// One check's testcase: its verdict, then what it printed.
fn testcase(out: &mut String, lab: &str, r: &CheckResult) {
    let _ = write!(
        out,
        "    <testcase name=\"{}\" classname=\"nslab.{}.{}\" time=\"{:.3}\"",
        xml(&r.name),
        xml(lab),
        r.kind,
        r.duration.as_secs_f64()
    );
    let reason = r.reason.as_deref().unwrap_or("");
    let first = reason.lines().next().unwrap_or("");
    let verdict = match r.status {
        Status::Pass => String::new(),
        // The message is the first line; the text has it all (a log's end).
        Status::Fail => format!(
            "      <failure message=\"{}\">{}</failure>\n",
            xml(first),
            xml(reason)
        ),
        Status::Skipped => format!("      <skipped message=\"{}\"/>\n", xml(reason)),
        Status::Interrupted => format!(
            "      <error message=\"{}\" type=\"interrupted\">{}</error>\n",
            xml(reason),
            xml(reason)
        ),
    };
    let mut body = verdict;
    for (tag, text) in [("system-out", &r.stdout), ("system-err", &r.stderr)] {
        if let Some(t) = text.as_deref().filter(|t| !t.is_empty()) {
            let _ = writeln!(body, "      <{tag}>{}</{tag}>", xml(t));
        }
    }
    if body.is_empty() {
        out.push_str("/>\n");
    } else {
        let _ = write!(out, ">\n{body}    </testcase>\n");
    }
}

/// The end of `bytes`, at most [`MAX_OUTPUT`] of them, as text: invalid UTF-8 becomes
/// U+FFFD (a report must read as text, whatever a process printed), and a cut says how
/// much came before.
pub fn output_tail(bytes: &[u8]) -> String {
    let cut = bytes.len().saturating_sub(MAX_OUTPUT);
    let mut tail = &bytes[cut..];
    // Not from the middle of a character.
    while cut > 0 && tail.first().is_some_and(|b| b & 0xC0 == 0x80) {
        tail = &tail[1..];
    }
    let text = String::from_utf8_lossy(tail);
    match bytes.len() - tail.len() {
        0 => text.into_owned(),
        before => format!("[... {before} bytes before]\n{text}"),
    }
}

#[derive(Serialize)]
struct JsonReport<'a> {
    lab: &'a str,
    passed: usize,
    failed: usize,
    skipped: usize,
    interrupted: usize,
    duration_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interrupted_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interrupted_during: Option<&'a str>,
    checks: &'a [CheckResult],
}

pub fn json(lab: &str, results: &[CheckResult], elapsed: Duration, o: &Outcome) -> String {
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    serde_json::to_string_pretty(&JsonReport {
        lab,
        passed: count(Status::Pass),
        failed: count(Status::Fail),
        skipped: count(Status::Skipped),
        interrupted: count(Status::Interrupted),
        duration_s: (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        error: o.up_error,
        interrupted_by: o.interrupted.map(|(s, _)| s),
        interrupted_during: o.interrupted.map(|(_, p)| p),
        checks: results,
    })
    .expect("report serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, status: Status, reason: Option<&str>) -> CheckResult {
        CheckResult {
            name: name.into(),
            kind: "reach",
            status,
            duration: Duration::from_millis(1500),
            reason: reason.map(String::from),
            attempts: 1,
            node: None,
            stdout: None,
            stderr: None,
        }
    }

    #[test]
    fn junit_escapes_and_counts() {
        let rs = [
            r("a <b>", Status::Pass, None),
            r("c", Status::Fail, Some("x & \"y\"\u{1}")),
        ];
        let x = junit("lab", &rs, Duration::from_secs(2), &Outcome::default());
        assert!(x.contains("tests=\"2\" failures=\"1\" errors=\"0\""));
        assert!(x.contains("name=\"a &lt;b&gt;\""));
        assert!(x.contains("<failure message=\"x &amp; &quot;y&quot;\\x01\">"));
        let x = junit(
            "lab",
            &[],
            Duration::ZERO,
            &Outcome {
                up_error: Some("cannot create namespace"),
                ..Outcome::default()
            },
        );
        assert!(x.contains("errors=\"1\""));
        assert!(x.contains("<error message=\"cannot create namespace\">"));
    }

    #[test]
    fn human_lines_line_up_on_the_longest_name() {
        let long = "a-check-name-longer-than-the-old-44-column-width";
        let rs = [r("a", Status::Pass, None), r(long, Status::Pass, None)];
        let lines: Vec<String> = rs.iter().map(|r| human_line(r, long.len())).collect();
        assert_eq!(
            lines[0],
            format!("PASS  a{}    1.50s", " ".repeat(long.len() - 1))
        );
        assert_eq!(lines[1], format!("PASS  {long}    1.50s"));
    }

    #[test]
    fn a_reason_of_several_lines_stays_under_its_check_and_heads_the_failure() {
        let why = "process `p` exited with status 3; its log ends with:\nstarting\nfatal";
        let rs = [r("processes [a]", Status::Fail, Some(why))];
        assert_eq!(
            human_line(&rs[0], 13),
            format!(
                "FAIL  processes [a]    1.50s\n      {}\n      starting\n      fatal",
                why.lines().next().unwrap()
            )
        );
        let x = junit("lab", &rs, Duration::from_secs(2), &Outcome::default());
        assert!(x.contains(
            "<failure message=\"process `p` exited with status 3; its log ends with:\">process `p` exited with status 3; its log ends with:\nstarting\nfatal</failure>"
        ), "{x}");
    }

    #[test]
    fn an_interrupted_check_is_an_error_counted_apart_from_not_run() {
        let why = "interrupted by SIGINT while running, after 3.0s";
        let rs = [
            r("a", Status::Pass, None),
            r("b", Status::Interrupted, Some(why)),
            r("c", Status::Skipped, Some("not run: interrupted by SIGINT")),
        ];
        let s = summary("lab", &rs, Duration::from_secs(4));
        assert_eq!(
            s,
            "lab `lab`: 3 checks, 1 passed, 0 failed, 1 interrupted, 1 not run (4.00s)"
        );
        assert!(human_line(&rs[1], 1).starts_with("INTR  b "));
        let x = junit("lab", &rs, Duration::from_secs(4), &Outcome::default());
        assert!(
            x.contains("tests=\"3\" failures=\"0\" errors=\"1\" skipped=\"1\""),
            "{x}"
        );
        assert!(x.contains(&format!(
            "<error message=\"{why}\" type=\"interrupted\">{why}</error>"
        )));
        let v: serde_json::Value =
            serde_json::from_str(&json("lab", &rs, Duration::ZERO, &Outcome::default())).unwrap();
        assert_eq!(
            (v["interrupted"].as_u64(), v["skipped"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(v["checks"][1]["status"], "interrupted");
    }

    #[test]
    fn a_run_stopped_during_up_marks_lab_up_interrupted_and_says_where() {
        let rs = [r(
            "a",
            Status::Skipped,
            Some("not run: interrupted by SIGTERM"),
        )];
        let why = "lab `l`: interrupted by SIGTERM; everything created so far was rolled back";
        let o = Outcome {
            up_error: Some(why),
            interrupted: Some(("SIGTERM", "up")),
            ..Outcome::default()
        };
        let x = junit("l", &rs, Duration::from_millis(3100), &o);
        assert!(
            x.contains(&format!(
                "<error message=\"interrupted by SIGTERM during up, after 3.1s\" type=\"interrupted\">{}</error>",
                xml(why)
            )),
            "{x}"
        );
        assert!(
            x.contains("<property name=\"interrupted_by\" value=\"SIGTERM\"/>"),
            "{x}"
        );
        assert!(
            x.contains("<property name=\"interrupted_during\" value=\"up\"/>"),
            "{x}"
        );
        assert!(x.contains("errors=\"1\" skipped=\"1\""), "{x}");
        let v: serde_json::Value =
            serde_json::from_str(&json("l", &rs, Duration::ZERO, &o)).unwrap();
        assert_eq!(
            (
                v["interrupted_by"].as_str(),
                v["interrupted_during"].as_str()
            ),
            (Some("SIGTERM"), Some("up"))
        );
        // Not interrupted: a plain error, and no properties.
        let o = Outcome {
            up_error: Some("cannot create namespace"),
            ..Outcome::default()
        };
        let x = junit("l", &rs, Duration::ZERO, &o);
        assert!(
            x.contains("<error message=\"cannot create namespace\">"),
            "{x}"
        );
        assert!(!x.contains("<properties>"), "{x}");
    }

    #[test]
    fn a_report_written_before_the_teardown_says_it_is_pending() {
        let rs = [r("a", Status::Pass, None)];
        let o = Outcome {
            interrupted: Some(("SIGINT", "checks")),
            teardown_pending: true,
            ..Outcome::default()
        };
        let x = junit("l", &rs, Duration::ZERO, &o);
        let doc = roxmltree::Document::parse(&x).expect("XML");
        let props: Vec<(&str, &str)> = doc
            .descendants()
            .filter(|n| n.has_tag_name("property"))
            .map(|n| (n.attribute("name").unwrap(), n.attribute("value").unwrap()))
            .collect();
        assert_eq!(
            props,
            [
                ("interrupted_by", "SIGINT"),
                ("interrupted_during", "checks"),
                ("teardown", "pending")
            ]
        );
        let err = doc
            .descendants()
            .find(|n| n.has_tag_name("system-err"))
            .expect("a <system-err>");
        assert_eq!(err.parent().unwrap().tag_name().name(), "testsuite");
        assert!(err.text().unwrap().contains("`nslab down LAB`"), "{x}");
        // The report after the teardown says nothing of it.
        let x = junit("l", &rs, Duration::ZERO, &Outcome::default());
        assert!(!x.contains("pending") && !x.contains("<properties>"), "{x}");
    }

    #[test]
    fn output_goes_in_system_out_and_err_escaped_and_only_its_end() {
        let mut c = r("c", Status::Pass, None);
        c.stdout = Some(output_tail(b"ok \x1b[1m\xff\n"));
        c.stderr = Some("warn <x>".into());
        let x = junit("l", &[c], Duration::ZERO, &Outcome::default());
        assert!(
            x.contains("<system-out>ok \\x1b[1m\u{fffd}\n</system-out>\n      <system-err>warn &lt;x&gt;</system-err>"),
            "{x}"
        );
        // A passing check with no output stays one empty element.
        let x = junit(
            "l",
            &[r("p", Status::Pass, None)],
            Duration::ZERO,
            &Outcome::default(),
        );
        assert!(x.contains("time=\"1.500\"/>"), "{x}");
        // Over the bound: the end only, never from the middle of a character.
        let mut long = "é".repeat(MAX_OUTPUT);
        long.push_str("the end");
        let t = output_tail(long.as_bytes());
        let (head, body) = t.split_once('\n').unwrap();
        assert!(
            head.starts_with("[... ") && head.ends_with(" bytes before]"),
            "{head}"
        );
        assert!(body.len() <= MAX_OUTPUT && body.ends_with("the end"));
        assert!(body.starts_with('é'), "cut at a character");
        assert_eq!(output_tail(b"short"), "short");
    }
}
