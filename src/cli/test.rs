//! `nslab test FILE`: up, run the checks, report, and always down (on success, failure or
//! a signal), unless `--keep`. `nslab test --lab NAME` runs the checks of a running lab.
//! Interrupted, it exits 128 + N (see `exit::interrupted`) and its reports say where.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{CliError, exit};
use crate::apply::executor::Cancel;
use crate::apply::{self, UpOptions};
use crate::harness::report::{self, Outcome};
use crate::harness::{CheckResult, Status};
use crate::model::Topology;
use crate::runtime::{RuntimeError, Session};
use crate::state::HostContext;
use crate::{CompileError, Compiled, Severity};

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
/// the name (see `output`). Replaced whole at once (a new file renamed over the name), so
/// it holds one whole report whenever the run is killed: the one written as the checks
/// ended, or the last. A FIFO or a device at the name is written through, and only the
/// `last` report (a reader of a FIFO would read both).
fn write_report(path: &Path, text: &str, last: bool) -> Result<(), CliError> {
    let cannot = |e: std::io::Error| {
        CliError::Usage(format!(
            "cannot write {}: {}",
            path.display(),
            super::output::why(&e)
        ))
    };
    match super::output::replace(path, text.as_bytes()) {
        Ok(true) => Ok(()),
        Ok(false) if !last => Ok(()),
        Ok(false) => super::output::create(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .map_err(cannot),
        Err(e) => Err(cannot(e)),
    }
}

pub fn run(host: &HostContext, a: Args) -> Result<u8, CliError> {
    let started = Instant::now();
    let (c, name, running) = topology(host, &a, started)?;
    let warnings = c.warnings.render(Severity::Warning);
    if !warnings.is_empty() {
        crate::err!("{warnings}");
    }
    let chosen = choose(host, &c.topology, running.as_ref(), a.checks)?;
    let rt = apply::tokio_runtime()?;
    let (cancel, trigger, _signals) = {
        let _ctx = rt.enter();
        apply::signals_with_trigger()
    };
    // A closed stdout (`nslab test lab.yaml | head -1`) stops the run as SIGINT does, and
    // the lab still goes down below.
    crate::out::on_closed_stdout(move || apply::cancel_with(&trigger, apply::CLOSED_STDOUT));
    let run = Run {
        host,
        a: &a,
        lab: &c.topology.lab,
        started,
        cancel,
    };
    if a.lab.is_none() {
        run.bring_up(&rt, &c, &name, &chosen)?;
    }
    for note in &chosen.notes {
        run.say(note.clone());
    }
    let checks_started = Instant::now();
    let results = run.checks(&rt, running, &chosen.lab);
    run.finish(results, chosen, checks_started)
}

/// The topology: the file given (its problems in the `--junit` file when it is invalid),
/// or the one a running lab was brought up from, with that lab's session, which then
/// runs the checks (opened once). Also the name the reports give an invalid file.
fn topology(
    host: &HostContext,
    a: &Args,
    started: Instant,
) -> Result<(Compiled, String, Option<Session<'static>>), CliError> {
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
    match compiled {
        Ok(c) => Ok((c, name, running)),
        Err(e) => {
            // Its warnings too, as `validate` prints them (valid, they print in `run`).
            if let CompileError::Invalid(r) = &e {
                crate::err!("{}", r.render(Severity::Warning));
            }
            if let (Some(j), CompileError::Invalid(r)) = (a.junit, &e) {
                let why = r.to_string();
                let o = Outcome {
                    up_error: Some(&why),
                    ..Outcome::default()
                };
                let _ = write_report(j, &report::junit(&name, &[], started.elapsed(), &o), true);
            }
            Err(e.into())
        }
    }
}

/// The checks a run makes, and the results of those it leaves out.
struct Chosen {
    /// The lab with only the checks this run makes.
    lab: Topology,
    /// What is said before the checks: how many were left to other hosts, or not
    /// selected.
    notes: Vec<String>,
    /// The checks `--check` left out: not run, counted in the summary.
    unselected: Vec<CheckResult>,
    /// The checks left to other hosts: skipped, naming the host, in the reports only.
    elsewhere: Vec<CheckResult>,
}

/// On one host of a multi-host lab, the checks that start on it; of those, the ones the
/// `--check` patterns select. Patterns are matched against every check of the lab, this
/// host's or not.
fn choose(
    host: &HostContext,
    t: &Topology,
    running: Option<&Session>,
    patterns: &[String],
) -> Result<Chosen, CliError> {
    let here = host
        .host
        .clone()
        .or_else(|| running?.live.summary().ok()?.host.clone());
    let (checked, skipped_note, elsewhere) = local_checks(t, here.as_deref());
    let mut checked = checked.unwrap_or_else(|| t.clone());
    let (chosen, unselected) = match patterns {
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
    Ok(Chosen {
        lab: checked,
        notes: [skipped_note, selected_note]
            .into_iter()
            .flatten()
            .collect(),
        unselected,
        elsewhere,
    })
}

/// One `nslab test` run, as its phases (up, checks, down and the reports) see it.
struct Run<'a> {
    host: &'a HostContext,
    a: &'a Args<'a>,
    lab: &'a str,
    started: Instant,
    /// Fired by SIGINT, SIGTERM, SIGHUP or a closed stdout; the first reason sticks.
    cancel: Cancel,
}

impl Run<'_> {
    /// A line for people: on stdout, or on stderr when stdout carries the JSON report.
    fn say(&self, line: String) {
        if self.a.json {
            crate::errln!("{line}");
        } else {
            crate::outln!("{line}");
        }
    }

    /// The `--junit` file and the `--json` report; with the teardown still to come, the
    /// `--junit` file only, marked so: stdout cannot be taken back, so the JSON report
    /// is printed once, at the end.
    fn report(&self, results: &[CheckResult], took: Duration, o: &Outcome) -> Result<(), CliError> {
        if let Some(j) = self.a.junit {
            write_report(
                j,
                &report::junit(self.lab, results, took, o),
                !o.teardown_pending,
            )?;
        }
        if self.a.json && !o.teardown_pending {
            crate::outln!("{}", report::json(self.lab, results, took, o));
        }
        Ok(())
    }

    /// Brings the lab up, as `up` does (with --host, this host's share). When it cannot
    /// come up, or a signal stops it, the reports are written, listing every check as
    /// not run so a report has the same test cases whatever happened, and the error is
    /// returned (its exit code says which).
    fn bring_up(
        &self,
        rt: &tokio::runtime::Runtime,
        c: &Compiled,
        name: &str,
        chosen: &Chosen,
    ) -> Result<(), CliError> {
        let (t, a) = (&c.topology, self.a);
        let p = super::plan_for(self.host, t)?;
        let opts = UpOptions {
            jobs: a.jobs,
            progress: super::progress::reporter(&t.lab, a.quiet),
            file: std::path::absolute(name)
                .map(|p| p.display().to_string())
                .unwrap_or(name.to_string()),
            source: Some(c.warnings.source.clone()),
            raise_neigh_limit: a.raise_neigh_limit,
            held_by: (!a.keep).then(|| "`nslab test`".to_string()),
            ..UpOptions::new(self.host.clone())
        };
        match rt.block_on(apply::up_with(t, &p, &opts, self.cancel.clone())) {
            Ok(report) => {
                if !a.quiet {
                    super::up::say_raised(&t.lab, &report.raised);
                }
                self.say(format!(
                    "lab `{}` is up ({:.2}s); running {}",
                    t.lab,
                    self.started.elapsed().as_secs_f64(),
                    what_runs(&chosen.lab.checks)
                ));
                Ok(())
            }
            Err(e) => {
                let signal = e.interrupted_by();
                let why = match signal {
                    Some(sig) => format!("interrupted by {sig}"),
                    None => "the lab could not come up".to_string(),
                };
                let left: Vec<CheckResult> = (chosen.lab.checks.iter())
                    .map(|c| crate::harness::not_run(c, &why))
                    .collect();
                let msg = e.to_string();
                let o = Outcome {
                    up_error: Some(&msg),
                    interrupted: signal.map(|s| (s, "up")),
                    ..Outcome::default()
                };
                self.report(&left, self.started.elapsed(), &o)?;
                Err(CliError::Up(e))
            }
        }
    }

    /// Runs the checks on the lab's session, then, unless a signal stopped them, adds a
    /// failed result for each node whose processes died or failed during the run.
    fn checks(
        &self,
        rt: &tokio::runtime::Runtime,
        running: Option<Session<'static>>,
        checked: &Topology,
    ) -> Result<Vec<CheckResult>, CliError> {
        let mut results = rt.block_on(async {
            // The checks run on the session's kernel; dropping the session closes its
            // handles.
            let session = match running {
                Some(s) => s,
                None => Session::for_checks(self.host, self.lab)?,
            };
            let width = checked.checks.iter().map(|c| c.name.chars().count()).max();
            let width = width.unwrap_or(0);
            let mut print = |r: &CheckResult| self.say(report::human_line(r, width));
            Ok::<_, CliError>(
                session
                    .check(checked, self.cancel.clone(), &mut print)
                    .await?,
            )
        })?;
        // Processes that died during the run fail it, with the end of their logs; not
        // after a signal, whose teardown is what is wanted then.
        if self.cancel.borrow().is_none() {
            let dead = process_results(self.host, checked);
            let width = results
                .iter()
                .chain(&dead)
                .map(|r| r.name.chars().count())
                .max();
            for r in &dead {
                self.say(report::human_line(r, width.unwrap_or(0)));
            }
            results.extend(dead);
        }
        Ok(results)
    }

    /// Takes the lab down whatever happened (unless `--keep` or `--lab`), then reports
    /// and gives the exit code: 128 + N after signal N, in any phase (see `exit`). The
    /// `--junit` file is written before the teardown too, marked as teardown pending: a
    /// runner may SIGKILL a run whose teardown outlasts its grace.
    fn finish(
        self,
        results: Result<Vec<CheckResult>, CliError>,
        chosen: Chosen,
        checks_started: Instant,
    ) -> Result<u8, CliError> {
        let bring_up = self.a.lab.is_none();
        let down = bring_up && !self.a.keep;
        // A signal seen by now stopped the checks; one that comes later, the teardown
        // (which goes on to its end: later signals are absorbed).
        let in_checks = self.cancel.borrow().is_some();
        let took = checks_started.elapsed();
        // Unselected checks count in the summary as not run, and are listed in the
        // reports, with the checks left to other hosts (skipped, naming the host).
        let results = results.map(|mut r| {
            let all_passed = r.iter().all(|r| r.status == Status::Pass);
            r.extend(chosen.unselected);
            (r, all_passed)
        });
        let reported = |r: &[CheckResult]| [r, &chosen.elsewhere].concat();
        if let (Ok((results, _)), true) = (&results, down) {
            let early = self.cancel.borrow().clone();
            let o = Outcome {
                interrupted: early.as_deref().map(|s| (s, "checks")),
                teardown_pending: true,
                ..Outcome::default()
            };
            // Not fatal: the teardown comes first, and the last report says it again.
            let _ = self.report(&reported(results), took, &o);
        }
        let teardown = down.then(|| {
            let progress = super::progress::reporter(self.lab, self.a.quiet);
            apply::down_with(self.host, self.lab, progress.as_ref())
        });
        let signal = self.cancel.borrow().clone();
        let (results, all_passed) = results?;
        self.say(report::summary(self.lab, &results, took));
        let phase = if in_checks { "checks" } else { "down" };
        let o = Outcome {
            interrupted: signal.as_deref().map(|s| (s, phase)),
            ..Outcome::default()
        };
        self.report(&reported(&results), took, &o)?;
        match (teardown, &signal) {
            (Some(Err(e)), None) => return Err(CliError::Lab(e)),
            (Some(Err(e)), Some(_)) => crate::errln!("error: {e}"),
            (None, _) if bring_up => crate::errln!(
                "nslab: keeping lab `{}` up (--keep); `nslab down {}` removes it",
                self.lab,
                self.lab
            ),
            _ => {}
        }
        if let Some(sig) = signal {
            let lab = match down {
                true => "the lab was torn down",
                false => "the lab stays up",
            };
            crate::errln!("nslab: interrupted by {sig} during the {phase}; {lab}");
            return Ok(exit::interrupted(&sig));
        }
        Ok(if all_passed { exit::OK } else { exit::FAILED })
    }
}

/// "3 checks", or "2 checks and 1 step" when scenario steps are among them.
fn what_runs(checks: &[crate::model::Check]) -> String {
    let steps = checks
        .iter()
        .filter(|c| matches!(c.body, crate::model::CheckBody::Action(_)))
        .count();
    match steps {
        0 => crate::words::count(checks.len(), "check"),
        _ => format!(
            "{} and {}",
            crate::words::count(checks.len() - steps, "check"),
            crate::words::count(steps, "step")
        ),
    }
}

/// A failed result, `processes [NODE]`, for each node of this host whose processes
/// exited non-zero, failed, crash-loop or never became ready during the run, as
/// `status` reports them, each with the end of its log (the last lines in the reason,
/// more in the reports' output, at most [`report::MAX_OUTPUT`] for the node). A process
/// without `ready:` counts as started once it runs, so one that exits at once would
/// otherwise leave a run green that never tested what it serves.
fn process_results(host: &HostContext, t: &Topology) -> Vec<CheckResult> {
    let paths = crate::node::NodePaths::of_lab(host, &t.lab);
    let mut out = Vec::new();
    for node in &t.nodes {
        let problems = super::health::by_process(&paths, &node.name);
        if problems.is_empty() {
            continue;
        }
        let share = (report::MAX_OUTPUT / problems.len()) as u64;
        let mut logs = Vec::new();
        let lines: Vec<String> = problems
            .into_iter()
            .map(|(process, what)| {
                let Some(p) = process else { return what };
                let log = paths.log(&node.name, &p);
                let end = report::output_tail(&apply::nodes::log_end(&log, share));
                logs.push(format!("--- the end of `{p}`'s log ---\n{end}"));
                match apply::nodes::log_tail(&log, 10) {
                    tail if tail.is_empty() => what,
                    tail => format!("{what}; its log ends with:\n{tail}"),
                }
            })
            .collect();
        out.push(CheckResult {
            name: format!("processes [{}]", node.name),
            kind: "processes",
            status: Status::Fail,
            duration: Duration::ZERO,
            reason: Some(lines.join("\n")),
            attempts: 1,
            node: Some(node.name.clone()),
            stdout: (!logs.is_empty()).then(|| logs.join("\n")),
            stderr: None,
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
        let through_link = write_report(&link, "<testsuites/>", true);
        let victim_after = std::fs::read_to_string(&victim).unwrap();
        let plain = write_report(&dir.join("plain.xml"), "<testsuites/>", true).map(|_| ());
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
