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

/// JUnit XML: a testsuite for the lab with a testcase per check. A lab that could not
/// come up is one testcase with an `<error>`, and so is a check a signal interrupted (an
/// error, not a failure: it never gave a verdict).
pub fn junit(
    lab: &str,
    results: &[CheckResult],
    elapsed: Duration,
    up_error: Option<&str>,
) -> String {
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    let (fail, skip) = (count(Status::Fail), count(Status::Skipped));
    let errors = usize::from(up_error.is_some()) + count(Status::Interrupted);
    let tests = results.len() + usize::from(up_error.is_some());
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"nslab\" tests=\"{tests}\" failures=\"{fail}\" errors=\"{errors}\" skipped=\"{skip}\" time=\"{:.3}\">",
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{fail}\" errors=\"{errors}\" skipped=\"{skip}\" time=\"{:.3}\">",
        xml(lab),
        elapsed.as_secs_f64()
    );
    if let Some(e) = up_error {
        let _ = writeln!(
            out,
            "    <testcase name=\"lab up\" classname=\"nslab.{}\" time=\"{:.3}\">\n      <error message=\"{}\">{}</error>\n    </testcase>",
            xml(lab),
            elapsed.as_secs_f64(),
            xml(e.lines().next().unwrap_or("")),
            xml(e)
        );
    }
    for r in results {
        let head = format!(
            "    <testcase name=\"{}\" classname=\"nslab.{}.{}\" time=\"{:.3}\"",
            xml(&r.name),
            xml(lab),
            r.kind,
            r.duration.as_secs_f64()
        );
        let reason = r.reason.as_deref().unwrap_or("");
        match r.status {
            Status::Pass => {
                let _ = writeln!(out, "{head}/>");
            }
            Status::Fail => {
                // The message is the first line; the text has it all (a log's end).
                let _ = writeln!(
                    out,
                    "{head}>\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                    xml(reason.lines().next().unwrap_or("")),
                    xml(reason)
                );
            }
            Status::Skipped => {
                let _ = writeln!(
                    out,
                    "{head}>\n      <skipped message=\"{}\"/>\n    </testcase>",
                    xml(reason)
                );
            }
            Status::Interrupted => {
                let _ = writeln!(
                    out,
                    "{head}>\n      <error message=\"{}\" type=\"interrupted\">{}</error>\n    </testcase>",
                    xml(reason),
                    xml(reason)
                );
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
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
    checks: &'a [CheckResult],
}

pub fn json(
    lab: &str,
    results: &[CheckResult],
    elapsed: Duration,
    up_error: Option<&str>,
) -> String {
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    serde_json::to_string_pretty(&JsonReport {
        lab,
        passed: count(Status::Pass),
        failed: count(Status::Fail),
        skipped: count(Status::Skipped),
        interrupted: count(Status::Interrupted),
        duration_s: (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        error: up_error,
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
        }
    }

    #[test]
    fn junit_escapes_and_counts() {
        let rs = [
            r("a <b>", Status::Pass, None),
            r("c", Status::Fail, Some("x & \"y\"\u{1}")),
        ];
        let x = junit("lab", &rs, Duration::from_secs(2), None);
        assert!(x.contains("tests=\"2\" failures=\"1\" errors=\"0\""));
        assert!(x.contains("name=\"a &lt;b&gt;\""));
        assert!(x.contains("<failure message=\"x &amp; &quot;y&quot;?\">"));
        let x = junit("lab", &[], Duration::ZERO, Some("cannot create namespace"));
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
        let x = junit("lab", &rs, Duration::from_secs(2), None);
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
        let x = junit("lab", &rs, Duration::from_secs(4), None);
        assert!(
            x.contains("tests=\"3\" failures=\"0\" errors=\"1\" skipped=\"1\""),
            "{x}"
        );
        assert!(x.contains(&format!(
            "<error message=\"{why}\" type=\"interrupted\">{why}</error>"
        )));
        let v: serde_json::Value =
            serde_json::from_str(&json("lab", &rs, Duration::ZERO, None)).unwrap();
        assert_eq!(
            (v["interrupted"].as_u64(), v["skipped"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(v["checks"][1]["status"], "interrupted");
    }
}
