//! The `cmd` check: a command run inside a node, judged by its exit status (`exit: N`, or
//! any failure with `expect: fail`), `stdout` and `stderr` regexes, and the JSON its stdout
//! must contain (`expect_json`, or `expect_json_file` read at each attempt).

use std::process::Output;
use std::time::Duration;

use super::jsonmatch::{self, Lists};
use super::report::output_tail;
use super::{Attempt, Captured, Context};
use crate::apply::nodes;
use crate::model::kinds::Exit;
use crate::model::{Command, JsonExpect, JsonSource};

/// What a cmd check wants of its command.
pub struct Want<'a> {
    pub exit: Exit,
    pub stdout: Option<&'a str>,
    pub stderr: Option<&'a str>,
    pub json: Option<&'a JsonExpect>,
}

pub async fn cmd(
    ctx: &Context<'_>,
    node: usize,
    run: &Command,
    want: &Want<'_>,
    timeout: Duration,
) -> (Attempt, Option<Captured>) {
    let out = match output(ctx, node, run, timeout).await {
        Ok(o) => o,
        // Not an answer: `expect: fail` must not pass on a command that never ran.
        Err(seen) => return (Attempt { holds: false, seen }, None),
    };
    let printed = Captured {
        stdout: output_tail(&out.stdout),
        stderr: output_tail(&out.stderr),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut problems = Vec::new();
    let code = out.status.code();
    let shown = code.map_or_else(
        || "killed by a signal".to_string(),
        |c| format!("exit status {c}"),
    );
    match want.exit {
        Exit::Code(w) if code != Some(w) => {
            problems.push(format!("{shown}, expected {w}{}", said(&stdout, &stderr)))
        }
        Exit::Failure if code == Some(0) => problems.push(format!(
            "exit status 0, expected a failure (non-zero){}",
            tail("stdout", &stdout)
        )),
        _ => {}
    }
    for (what, re, text) in [
        ("stdout", want.stdout, &stdout),
        ("stderr", want.stderr, &stderr),
    ] {
        if let Some(re) = re {
            problems.extend(regex(what, re, text));
        }
    }
    if let Some(j) = want.json {
        problems.extend(json(j, &stdout));
    }
    let a = Attempt {
        holds: problems.is_empty(),
        seen: problems.join("; "),
    };
    (a, Some(printed))
}

/// The most of a check command's stdout nslab reads (what `expect_json_file` may hold),
/// and of its stderr (shown, or matched by `stderr:`).
const MAX_OUTPUT_BYTES: usize = MAX_EXPECTED_BYTES;
const MAX_STDERR_BYTES: usize = 1 << 20;

/// Runs the command in the node, or says why it did not run to the end.
async fn output(
    ctx: &Context<'_>,
    node: usize,
    run: &Command,
    timeout: Duration,
) -> Result<Output, String> {
    let n = &ctx.topology.nodes[node];
    let std_cmd = nodes::target(ctx.kernel.host(), &ctx.topology.lab, &n.name, &n.netns)
        .and_then(|t| t.detached_command(&run.argv()))
        .map_err(|e| format!("cannot enter {}: {e}", n.name))?;
    let mut c = tokio::process::Command::from(std_cmd);
    c.kill_on_drop(true).stdin(std::process::Stdio::null());
    let ran = crate::sys::bounded::output(c, MAX_OUTPUT_BYTES, MAX_STDERR_BYTES);
    match tokio::time::timeout(timeout, ran).await {
        Ok(Ok(o)) if o.stdout_cut => Err(format!(
            "`{}` on {} printed more than {} MiB on stdout, more than a check reads",
            run.display(),
            n.name,
            MAX_OUTPUT_BYTES >> 20
        )),
        Ok(Ok(o)) => Ok(Output {
            status: o.status,
            stdout: o.stdout,
            stderr: o.stderr,
        }),
        Ok(Err(e)) => Err(format!("cannot run `{}` on {}: {e}", run.display(), n.name)),
        Err(_) => Err(format!(
            "`{}` on {} did not finish within {:.0}s",
            run.display(),
            n.name,
            timeout.as_secs_f64()
        )),
    }
}

/// What a command that exited wrongly said: its stderr, else its stdout (vtysh, and many
/// a script, report errors on stdout), so the failure shows why without a rerun.
fn said(stdout: &str, stderr: &str) -> String {
    match tail("stderr", stderr) {
        t if t.is_empty() => tail("stdout", stdout),
        t => t,
    }
}

/// The last 300 characters of a stream, to show beside a wrong exit status.
fn tail(what: &str, text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        return String::new();
    }
    let skip = t.chars().count().saturating_sub(300);
    let kept: String = t.chars().skip(skip).collect();
    // What a node printed reaches the terminal of whoever runs the test: as text.
    format!("; {what}: {}", crate::model::names::shown(&kept, true))
}

/// Multi-line: `^` and `$` match at line ends, as people expect of command output.
fn regex(what: &str, re: &str, text: &str) -> Option<String> {
    match regex::RegexBuilder::new(re).multi_line(true).build() {
        Ok(r) if r.is_match(text) => None,
        Ok(_) => {
            let kept: String = text.trim().chars().take(300).collect();
            let shown = crate::model::names::shown(&kept, true);
            Some(format!("{what} does not match /{re}/; {what} was: {shown}"))
        }
        Err(e) => Some(format!("bad {what} regex: {e}")),
    }
}

fn json(j: &JsonExpect, stdout: &str) -> Option<String> {
    let loaded;
    let expected = match &j.source {
        JsonSource::Inline(v) => v,
        JsonSource::File { path, .. } => {
            loaded = match read_expected(path) {
                Ok(v) => v,
                Err(e) => return Some(e),
            };
            &loaded
        }
    };
    let actual = match serde_json::from_str::<serde_json::Value>(stdout) {
        Ok(a) => a,
        Err(e) => return Some(format!("stdout is not JSON: {e}")),
    };
    let lists = if j.exact { Lists::Exact } else { Lists::Subset };
    jsonmatch::subset(expected, &actual, lists)
        .err()
        .map(|d| format!("stdout JSON differs: {d}"))
}

/// The largest `expect_json_file` read, the topology file's own limit: the path comes
/// from a file people share, and `/dev/zero` read whole would take every byte of memory.
pub const MAX_EXPECTED_BYTES: usize = crate::spec::yaml::MAX_BYTES;

/// An `expect_json_file`, read when the check runs: compiling reads no files (preflight
/// already said whether it parses).
pub fn read_expected(path: &std::path::Path) -> Result<serde_json::Value, String> {
    let text = read_expected_text(path)
        .map_err(|e| format!("cannot read the expected JSON {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("the expected JSON {} does not parse: {e}", path.display()))
}

/// The text of an expected JSON file: a regular file (a FIFO would hang the read, a
/// device never end it, and its open alone may act: see `open_regular`), at most
/// [`MAX_EXPECTED_BYTES`].
pub fn read_expected_text(path: &std::path::Path) -> Result<String, String> {
    let file = crate::spec::yaml::open_regular(path).map_err(|e| e.to_string())?;
    let Some(bytes) =
        crate::spec::yaml::read_at_most(file, MAX_EXPECTED_BYTES).map_err(|e| e.to_string())?
    else {
        return Err(format!("larger than {} MiB", MAX_EXPECTED_BYTES >> 20));
    };
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_exit_status_shows_stderr_else_stdout() {
        assert_eq!(said("out\n", "err\n"), "; stderr: err");
        assert_eq!(
            said("% Unknown command\n", ""),
            "; stdout: % Unknown command"
        );
        assert_eq!(said(" \n", ""), "");
        // A node's output acts on no terminal: OSC 52 (set the clipboard) and an erase
        // of the line come out as text, lines and tabs as they are.
        assert_eq!(
            said("", "\x1b]52;c;aWQK\x07\x1b[2K\rPASS\n\tok"),
            "; stderr: \\u{1b}]52;c;aWQK\\u{7}\\u{1b}[2K\\u{d}PASS\n\tok"
        );
        assert_eq!(
            regex("stdout", "^x$", "\x1b[8mhidden"),
            Some("stdout does not match /^x$/; stdout was: \\u{1b}[8mhidden".into())
        );
        let long = "x".repeat(400);
        assert_eq!(said(&long, ""), format!("; stdout: {}", "x".repeat(300)));
    }

    #[test]
    fn an_expected_json_file_is_a_regular_file_of_bounded_size() {
        let e = read_expected_text(std::path::Path::new("/dev/null")).unwrap_err();
        assert_eq!(e, "not a regular file");
        let big = std::env::temp_dir().join(format!("nslab-expected-{}.json", std::process::id()));
        let f = std::fs::File::create(&big).unwrap();
        // Sparse: no disk space, but a read would go through every byte.
        f.set_len(MAX_EXPECTED_BYTES as u64 + 1).unwrap();
        let e = read_expected_text(&big).unwrap_err();
        std::fs::remove_file(&big).unwrap();
        assert!(e.contains("larger than 64 MiB"), "{e}");
        let e = read_expected(std::path::Path::new("/dev/zero")).unwrap_err();
        assert!(e.contains("/dev/zero: not a regular file"), "{e}");
    }
}
