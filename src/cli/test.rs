//! `nslab test FILE`: up, run the checks, report, and always down (on success, failure or
//! SIGINT), unless `--keep`. `nslab test --lab NAME` runs the checks of a running lab.

use std::path::Path;
use std::time::Instant;

use super::{CliError, exit};
use crate::apply::{self, UpOptions};
use crate::harness::{CheckResult, Status, report};
use crate::model::Topology;
use crate::runtime::{RuntimeError, Session};
use crate::{CompileError, Severity};

pub struct Args<'a> {
    pub file: Option<&'a Path>,
    pub lab: Option<&'a str>,
    pub keep: bool,
    pub junit: Option<&'a Path>,
    pub json: bool,
    /// `--check` patterns: run only the checks they match (all when empty).
    pub checks: &'a [String],
    pub jobs: usize,
    pub quiet: bool,
    pub raise_neigh_limit: bool,
}

/// The `--junit` file, never written through a link or into a file another user left at
/// the name (see `output`).
fn write_report(path: &Path, text: &str) -> Result<(), CliError> {
    super::output::create(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .map_err(|e| {
            CliError::Usage(format!(
                "cannot write {}: {}",
                path.display(),
                super::output::why(&e)
            ))
        })
}

pub fn run(host: &crate::state::HostContext, a: Args) -> Result<u8, CliError> {
    let started = Instant::now();
    // The topology: the file given, or the one a running lab was brought up from (that
    // lab's session then runs the checks, opened once).
    let mut running = None;
    let (compiled, name) = match (a.file, a.lab) {
        (Some(f), None) => (
            crate::compile::compile_file_with(f, super::image_map())
                .and_then(|c| crate::preflight_for(c, !host.privileged)),
            f.display().to_string(),
        ),
        (None, Some(lab)) => {
            let not_up = || CliError::Lab(apply::ApplyError::NotUp(lab.to_string()));
            // A bad name is "not up" here, as it always was (exit 1, not 3).
            let session = Session::for_checks(host, lab).map_err(|e| match e {
                RuntimeError::Invalid(_) => not_up(),
                e => e.into(),
            })?;
            let compiled = session.live.topology().ok_or_else(not_up)?;
            running = Some(session);
            (compiled, lab.to_string())
        }
        _ => {
            return Err(CliError::Usage(
                "give a topology file, or --lab NAME for a running lab".into(),
            ));
        }
    };
    let c = match compiled {
        Ok(c) => c,
        Err(e) => {
            if let (Some(j), CompileError::Invalid(r)) = (a.junit, &e) {
                let _ = write_report(
                    j,
                    &report::junit(&name, &[], started.elapsed(), Some(&r.to_string())),
                );
            }
            return Err(e.into());
        }
    };
    let warnings = c.warnings.render(Severity::Warning);
    if !warnings.is_empty() {
        crate::err!("{warnings}");
    }
    let t = &c.topology;
    // On one host of a multi-host lab, the checks that start on it.
    let here = host.host.clone().or_else(|| {
        let s = running.as_ref()?;
        s.live.summary().ok()?.host.clone()
    });
    let (checked, skipped_note, elsewhere) = local_checks(t, here.as_deref());
    let mut checked = checked.unwrap_or_else(|| t.clone());
    // Patterns are matched against every check of the lab, this host's or not.
    let (chosen, unselected) = match a.checks {
        [] => (checked.checks.clone(), Vec::new()),
        p => {
            if let Some(e) = crate::harness::select::unknown(&t.checks, p) {
                return Err(CliError::Usage(format!("lab `{}`: {e}", t.lab)));
            }
            crate::harness::select::split(&checked.checks, p)
        }
    };
    let selected_note = (!unselected.is_empty()).then(|| {
        format!(
            "--check: running {} of {}; {} not selected",
            chosen.len(),
            chosen.len() + unselected.len(),
            unselected.len()
        )
    });
    checked.checks = chosen;
    let checked = &checked;
    let out_human = |line: String| {
        if a.json {
            crate::errln!("{line}");
        } else {
            crate::outln!("{line}");
        }
    };

    let rt = apply::tokio_runtime()?;
    let (cancel, trigger, _signals) = {
        let _ctx = rt.enter();
        apply::signals_with_trigger()
    };
    // A closed stdout (`nslab test lab.yaml | head -1`) stops the run as SIGINT does, and
    // the lab still goes down below.
    crate::out::on_closed_stdout(move || apply::cancel_with(&trigger, "a closed stdout (EPIPE)"));
    let bring_up = a.lab.is_none();
    if bring_up {
        // With --host, this host's share, as `up --host` makes it.
        let p = super::plan_for(host, t)?;
        let opts = UpOptions {
            jobs: a.jobs,
            progress: super::progress::reporter(&t.lab, a.quiet),
            file: std::path::absolute(&name)
                .map(|p| p.display().to_string())
                .unwrap_or(name.clone()),
            source: Some(c.warnings.source.clone()),
            raise_neigh_limit: a.raise_neigh_limit,
            held_by: (!a.keep).then(|| "`nslab test`".to_string()),
            ..UpOptions::new(host.clone())
        };
        let up = rt.block_on(apply::up_with(t, &p, &opts, cancel.clone()));
        if let Ok(report) = &up
            && !a.quiet
        {
            super::up::say_raised(&t.lab, &report.raised);
        }
        if let Err(e) = up {
            // Every check is still listed, not run, so a report has the same test
            // cases whether the lab came up or not.
            let why = "the lab could not come up";
            let left: Vec<CheckResult> = (checked.checks.iter())
                .map(|c| crate::harness::not_run(c, why))
                .collect();
            let (msg, took) = (e.to_string(), started.elapsed());
            if let Some(j) = a.junit {
                write_report(j, &report::junit(&t.lab, &left, took, Some(&msg)))?;
            }
            if a.json {
                crate::outln!("{}", report::json(&t.lab, &left, took, Some(&msg)));
            }
            return Err(CliError::Up(e));
        }
        let steps = checked
            .checks
            .iter()
            .filter(|c| matches!(c.body, crate::model::CheckBody::Action(_)))
            .count();
        let what = match steps {
            0 => crate::words::count(checked.checks.len(), "check"),
            _ => format!(
                "{} and {}",
                crate::words::count(checked.checks.len() - steps, "check"),
                crate::words::count(steps, "step")
            ),
        };
        out_human(format!(
            "lab `{}` is up ({:.2}s); running {what}",
            t.lab,
            started.elapsed().as_secs_f64(),
        ));
    }

    for note in [skipped_note, selected_note].into_iter().flatten() {
        out_human(note);
    }
    let checks_started = Instant::now();
    let results: Result<Vec<CheckResult>, CliError> = rt.block_on(async {
        // The checks run on the session's kernel; dropping the session closes its handles.
        let session = match running.take() {
            Some(s) => s,
            None => Session::for_checks(host, &t.lab)?,
        };
        let width = checked.checks.iter().map(|c| c.name.chars().count()).max();
        let width = width.unwrap_or(0);
        let mut print = |r: &CheckResult| out_human(report::human_line(r, width));
        Ok(session.check(checked, cancel.clone(), &mut print).await?)
    });
    // Processes that died during the run fail it, with the end of their logs; not
    // after a signal, whose teardown is what is wanted then.
    let results = results.map(|mut rs| {
        if cancel.borrow().is_none() {
            let dead = process_results(host, t);
            let width = rs.iter().chain(&dead).map(|r| r.name.chars().count()).max();
            for r in &dead {
                out_human(report::human_line(r, width.unwrap_or(0)));
            }
            rs.extend(dead);
        }
        rs
    });
    // Whatever happened, the lab goes down (unless asked to keep it).
    let teardown = if bring_up && !a.keep {
        let progress = super::progress::reporter(&t.lab, a.quiet);
        Some(apply::down_with(host, &t.lab, progress.as_ref()))
    } else {
        None
    };
    let mut results = results?;
    let all_passed = results.iter().all(|r| r.status == Status::Pass);
    // Unselected checks count in the summary as not run, and are listed in the reports.
    results.extend(unselected);
    out_human(report::summary(&t.lab, &results, checks_started.elapsed()));
    // The reports list the checks left to other hosts too, skipped, naming the host.
    let reported = [results.as_slice(), &elsewhere].concat();
    if let Some(j) = a.junit {
        write_report(
            j,
            &report::junit(&t.lab, &reported, checks_started.elapsed(), None),
        )?;
    }
    if a.json {
        crate::outln!(
            "{}",
            report::json(&t.lab, &reported, checks_started.elapsed(), None)
        );
    }
    match teardown {
        Some(Err(e)) => return Err(CliError::Lab(e)),
        None if bring_up => crate::errln!(
            "nslab: keeping lab `{}` up (--keep); `nslab down {}` removes it",
            t.lab,
            t.lab
        ),
        _ => {}
    }
    if let Some(sig) = cancel.borrow().clone() {
        crate::errln!("nslab: interrupted by {sig}; the lab was torn down");
        return Ok(exit::FAILED);
    }
    Ok(if all_passed { exit::OK } else { exit::FAILED })
}

/// A failed result, `processes [NODE]`, for each node of this host whose processes
/// exited non-zero, failed, crash-loop or never became ready during the run, as
/// `status` reports them, each with the end of its log. A process without `ready:`
/// counts as started once it runs, so one that exits at once would otherwise leave a
/// run green that never tested what it serves.
fn process_results(host: &crate::state::HostContext, t: &Topology) -> Vec<CheckResult> {
    let paths = crate::node::NodePaths::of_lab(host, &t.lab);
    let mut out = Vec::new();
    for node in &t.nodes {
        let problems = super::health::by_process(&paths, &node.name);
        if problems.is_empty() {
            continue;
        }
        let lines: Vec<String> = problems
            .into_iter()
            .map(|(process, what)| {
                let tail = process
                    .map(|p| apply::nodes::log_tail(&paths.log(&node.name, &p), 10))
                    .unwrap_or_default();
                match tail.is_empty() {
                    true => what,
                    false => format!("{what}; its log ends with:\n{tail}"),
                }
            })
            .collect();
        out.push(CheckResult {
            name: format!("processes [{}]", node.name),
            kind: "processes",
            status: Status::Fail,
            duration: std::time::Duration::ZERO,
            reason: Some(lines.join("\n")),
            attempts: 1,
            node: Some(node.name.clone()),
        });
    }
    out
}

/// On `host` of a lab spread over hosts, the lab with only the checks whose source lives
/// there (probes start in the source's namespace, which only its host has), a line
/// saying how many were left to which other hosts, and those as skipped results for the
/// reports. None: every check runs here.
fn local_checks(
    t: &Topology,
    host: Option<&str>,
) -> (Option<Topology>, Option<String>, Vec<CheckResult>) {
    let Some(host) = host.filter(|_| !t.hosts.is_empty()) else {
        return (None, None, Vec::new());
    };
    let local = crate::harness::local::for_host(t, host);
    let note = local.note().map(|n| format!("on host {host}: {n}"));
    let elsewhere = local.left_results();
    let mut mine = t.clone();
    mine.checks = local.checks;
    (Some(mine), note, elsewhere)
}

#[cfg(test)]
mod tests {
    use super::write_report;

    #[test]
    fn a_junit_report_is_never_written_through_a_link() {
        let dir = std::env::temp_dir().join(format!("nslab-junitw-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let victim = dir.join("passwd");
        std::fs::write(&victim, "root:x:0:0::/root:/bin/sh\n").unwrap();
        let link = dir.join("report.xml");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let through_link = write_report(&link, "<testsuites/>");
        let victim_after = std::fs::read_to_string(&victim).unwrap();
        let plain = write_report(&dir.join("plain.xml"), "<testsuites/>").map(|_| ());
        let written = std::fs::read_to_string(dir.join("plain.xml")).unwrap_or_default();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            victim_after, "root:x:0:0::/root:/bin/sh\n",
            "written through the link"
        );
        let err = through_link.expect_err("a link at the name is refused");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        plain.expect("a plain new file is written");
        assert_eq!(written, "<testsuites/>");
    }
}
