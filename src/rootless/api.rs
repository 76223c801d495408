//! The Rust API's rootless side. A test process has threads, and only a single-threaded
//! process may join a user namespace, so a rootless [`crate::Lab`] is driven through the
//! `nslab` binary (`NSLAB_BIN`, or `nslab` on the PATH): each operation is one command,
//! which finds the lab's holder, joins it and runs the same engine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::harness::{CheckResult, Status};
use crate::model::Topology;

/// A rootless lab that is up, by name.
#[derive(Debug)]
pub struct CliLab {
    bin: PathBuf,
    lab: String,
}

fn other(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Runs `nslab ARGS`; a failure carries what the command said.
fn run(bin: &Path, args: &[&str]) -> std::io::Result<Output> {
    Command::new(bin).args(args).output()
}

fn ok(bin: &Path, args: &[&str]) -> std::io::Result<Output> {
    let o = run(bin, args)?;
    if o.status.success() {
        return Ok(o);
    }
    Err(other(format!(
        "`nslab {}` failed ({}): {}{}",
        args.join(" "),
        o.status,
        String::from_utf8_lossy(&o.stdout).trim(),
        String::from_utf8_lossy(&o.stderr).trim()
    )))
}

/// Writes the topology text beside its base directory (mount sources are relative to
/// it), runs `nslab ARGS FILE`, and removes the file; the lab keeps its own copy.
fn with_file(bin: &Path, t: &Topology, source: &str, args: &[&str]) -> std::io::Result<()> {
    let name = format!(".nslab-api-{}-{}", t.lab, std::process::id());
    let beside = t
        .base_dir
        .is_dir()
        .then(|| place(&t.base_dir, &name, source).ok())
        .flatten();
    let file = match beside {
        Some(f) => f,
        None => place(&std::env::temp_dir(), &name, source)?,
    };
    let path = file.display().to_string();
    let mut all = args.to_vec();
    all.push(&path);
    let r = ok(bin, &all);
    let _ = std::fs::remove_file(&file);
    r.map(|_| ())
}

/// Writes `source` to a file of this process's own under `dir`, named `name` plus a
/// counter. The name can be guessed and `dir` may be shared (`/tmp`): the file is made
/// fresh (never an existing one, never through a link) and private, so no other user can
/// point the write at a file of ours, or change the topology between the write and the
/// read and so run commands in our lab.
fn place(dir: &Path, name: &str, source: &str) -> std::io::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut last = None;
    for n in 0..16 {
        let path = dir.join(format!("{name}-{n}.yaml"));
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path);
        match opened {
            Ok(mut f) => {
                let written = f.write_all(source.as_bytes());
                if let Err(e) = written {
                    let _ = std::fs::remove_file(&path);
                    return Err(e);
                }
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::ErrorKind::AlreadyExists.into()))
}

impl CliLab {
    /// `nslab up` of the topology.
    pub fn up(t: &Topology, source: &str, jobs: usize) -> std::io::Result<CliLab> {
        let bin = crate::apply::nodes::nslab_binary().map_err(other)?;
        let jobs = jobs.to_string();
        with_file(&bin, t, source, &["up", "--quiet", "--jobs", &jobs])?;
        Ok(CliLab {
            bin,
            lab: t.lab.clone(),
        })
    }

    /// `nslab apply` of a new version of the topology.
    pub fn apply(&self, t: &Topology, source: &str, jobs: usize) -> std::io::Result<()> {
        let jobs = jobs.to_string();
        with_file(&self.bin, t, source, &["apply", "--quiet", "--jobs", &jobs])
    }

    /// `nslab exec`: the command's own output and exit status.
    pub fn exec(&self, node: &str, argv: &[&str]) -> std::io::Result<Output> {
        let mut args = vec!["exec", "--lab", &self.lab, node, "--"];
        args.extend_from_slice(argv);
        run(&self.bin, &args)
    }

    /// `nslab link up|down`.
    pub fn set_link(&self, target: &str, up: bool, one_side: bool) -> std::io::Result<()> {
        let mut args = vec![
            "link",
            if up { "up" } else { "down" },
            "--lab",
            &self.lab,
            target,
        ];
        if one_side {
            args.push("--one-side");
        }
        ok(&self.bin, &args).map(|_| ())
    }

    /// `nslab link impair`: `None` clears the impairment.
    pub fn impair(
        &self,
        target: &str,
        impair: Option<&crate::model::Impair>,
        one_side: bool,
    ) -> std::io::Result<()> {
        let mut args: Vec<String> = ["link", "impair", "--lab", &self.lab, target]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(match impair {
            Some(imp) => impair_args(imp),
            None => vec!["--clear".to_string()],
        });
        if one_side {
            args.push("--one-side".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&self.bin, &args).map(|_| ())
    }

    /// `nslab node stop|start|restart`.
    pub fn node_action(
        &self,
        node: &str,
        action: crate::model::kinds::NodeAction,
    ) -> std::io::Result<()> {
        use crate::model::kinds::NodeAction;
        let verb = match action {
            NodeAction::Stop => "stop",
            NodeAction::Start => "start",
            NodeAction::Restart => "restart",
        };
        ok(&self.bin, &["node", verb, "--lab", &self.lab, node]).map(|_| ())
    }

    /// Every check of the lab, through `nslab test --lab --json` (which exits 1 when one
    /// fails, and still reports).
    pub fn checks(&self, t: &Topology) -> std::io::Result<Vec<CheckResult>> {
        let o = run(
            &self.bin,
            &["test", "--lab", &self.lab, "--json", "--quiet"],
        )?;
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).map_err(|e| {
            other(format!(
                "`nslab test --lab {}`: {e}: {}",
                self.lab,
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        })?;
        let checks = report["checks"].as_array().cloned().unwrap_or_default();
        Ok(checks.iter().filter_map(|c| result(t, c)).collect())
    }

    /// `nslab down`.
    pub fn down(&self) -> std::io::Result<()> {
        ok(&self.bin, &["down", "--quiet", &self.lab]).map(|_| ())
    }
}

/// The options of `nslab link impair` that set `imp`, in units its parser reads back
/// exactly (seconds, percent, bits per second).
fn impair_args(imp: &crate::model::Impair) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |flag: &str, value: Option<String>| {
        if let Some(v) = value {
            out.push(format!("--{flag}"));
            out.push(v);
        }
    };
    let secs = |d: Option<std::time::Duration>| d.map(|d| format!("{}s", d.as_secs_f64()));
    let percent = |f: Option<f64>| f.map(|f| format!("{}%", f * 100.0));
    push("delay", secs(imp.delay));
    push("jitter", secs(imp.jitter));
    push("loss", percent(imp.loss));
    push("duplicate", percent(imp.duplicate));
    push("corrupt", percent(imp.corrupt));
    push("reorder", percent(imp.reorder));
    push("rate", imp.rate.map(|r| format!("{r}bit")));
    out
}

/// One entry of the JSON report as the harness's own result.
fn result(t: &Topology, c: &serde_json::Value) -> Option<CheckResult> {
    let name = c["name"].as_str()?.to_string();
    let check = t.checks.iter().find(|k| k.name == name)?;
    Some(CheckResult {
        kind: crate::harness::kind_of(check),
        status: match c["status"].as_str()? {
            "pass" => Status::Pass,
            "fail" => Status::Fail,
            "interrupted" => Status::Interrupted,
            _ => Status::Skipped,
        },
        duration: Duration::from_secs_f64(c["duration_s"].as_f64().unwrap_or(0.0)),
        reason: c["reason"].as_str().map(str::to_string),
        attempts: c["attempts"].as_u64().unwrap_or(0) as u32,
        node: c["node"].as_str().map(str::to_string),
        stdout: c["stdout"].as_str().map(str::to_string),
        stderr: c["stderr"].as_str().map(str::to_string),
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Impair;
    use clap::Parser;
    use std::time::Duration;

    #[test]
    fn the_topology_for_the_cli_is_never_written_through_a_planted_name() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("nslab-place-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "mine").unwrap();
        // Another user's link, and another user's file, at the names tried first.
        std::os::unix::fs::symlink(&victim, dir.join("t-0.yaml")).unwrap();
        std::fs::write(dir.join("t-1.yaml"), "lab: theirs").unwrap();
        let got = place(&dir, "t", "lab: ours\n");
        let victim_after = std::fs::read_to_string(&victim).unwrap();
        let theirs_after = std::fs::read_to_string(dir.join("t-1.yaml")).unwrap();
        let written = got.as_ref().ok().map(|p| {
            let meta = std::fs::symlink_metadata(p).unwrap();
            let text = std::fs::read_to_string(p).unwrap();
            (
                p.clone(),
                meta.file_type().is_file(),
                meta.permissions().mode() & 0o777,
                text,
            )
        });
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(victim_after, "mine", "written through the link");
        assert_eq!(theirs_after, "lab: theirs", "written into their file");
        let (path, regular, mode, text) = written.expect("a fresh file is made");
        assert_eq!(path, dir.join("t-2.yaml"));
        assert!(regular);
        assert_eq!(mode, 0o600, "others must not read or change it");
        assert_eq!(text, "lab: ours\n");
    }

    #[test]
    fn impair_options_read_back_as_the_same_impairment() {
        let imp = Impair {
            delay: Some(Duration::from_millis(20)),
            jitter: Some(Duration::from_micros(1500)),
            loss: Some(0.01),
            duplicate: Some(0.005),
            corrupt: Some(0.001),
            reorder: Some(0.25),
            rate: Some(10_000_000),
        };
        for imp in [
            imp,
            Impair {
                rate: Some(512_000),
                ..Impair::default()
            },
        ] {
            let mut argv = vec![
                "nslab".to_string(),
                "link".into(),
                "impair".into(),
                "a:eth1".into(),
            ];
            argv.extend(impair_args(&imp));
            let cli = crate::cli::Cli::try_parse_from(&argv).expect("parses");
            let crate::cli::Command::Link {
                action: crate::cli::LinkCommand::Impair { values, .. },
            } = cli.command
            else {
                panic!("not link impair: {argv:?}");
            };
            let back = values.into_impair().unwrap().expect("an impairment");
            assert_eq!(back.delay, imp.delay, "{argv:?}");
            assert_eq!(back.jitter, imp.jitter, "{argv:?}");
            assert_eq!(back.rate, imp.rate, "{argv:?}");
            for (a, b) in [
                (back.loss, imp.loss),
                (back.duplicate, imp.duplicate),
                (back.corrupt, imp.corrupt),
                (back.reorder, imp.reorder),
            ] {
                assert_eq!(a.is_some(), b.is_some(), "{argv:?}");
                assert!(
                    (a.unwrap_or(0.0) - b.unwrap_or(0.0)).abs() < 1e-12,
                    "{argv:?}"
                );
            }
        }
    }
}
