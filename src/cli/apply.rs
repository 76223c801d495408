//! `nslab apply FILE [--dry-run [--json]]`

use std::path::Path;

use super::{CliError, compile, compile_checked, exit};
use crate::apply::ApplyError;
use crate::apply::reconcile::{self, Applied};
use crate::plan::diff;
use crate::runtime;

pub struct Args {
    pub dry_run: bool,
    pub json: bool,
    pub jobs: usize,
    pub quiet: bool,
}

pub fn run(host: &crate::state::HostContext, file: &Path, args: Args) -> Result<u8, CliError> {
    if args.dry_run {
        return dry_run(host, file, args.json);
    }
    let c = compile_checked(host, file)?;
    let t = &c.topology;
    let p = super::plan_for(host, t)?;
    let opts = super::up::options(host, file, &c, args.jobs, args.quiet);
    let applied = runtime::apply(t, &p, &opts).map_err(|e| match e {
        // The lab stays up as it was: a failed change, not a lab that could not come up.
        e @ (ApplyError::RolledBack { .. } | ApplyError::NotRolledBack { .. }) => CliError::Lab(e),
        e => CliError::Up(e),
    })?;
    if args.quiet {
        return Ok(exit::OK);
    }
    match applied {
        Applied::Up(report) => crate::outln!(
            "lab `{}` was not up; it is now: {} in {:.2} s",
            t.lab,
            crate::words::count(report.steps, "step"),
            report.elapsed.as_secs_f64()
        ),
        Applied::Changed {
            diff,
            elapsed,
            recovered,
            ..
        } => {
            if recovered {
                crate::outln!("lab `{}`: an interrupted apply was taken back first", t.lab);
            }
            if diff.groups.is_empty() {
                crate::outln!(
                    "lab `{}` is already what the file says: nothing changed",
                    t.lab
                );
            } else {
                crate::out!("{}", diff::render(&diff));
                crate::outln!("lab `{}` changed in {:.3} s", t.lab, elapsed.as_secs_f64());
            }
        }
    }
    Ok(exit::OK)
}

/// The change plan, touching nothing (no root needed to read a lab's state files).
fn dry_run(host: &crate::state::HostContext, file: &Path, json: bool) -> Result<u8, CliError> {
    let c = compile(file)?;
    let p = super::plan_for(host, &c.topology)?;
    // As `apply` would: a host's share checks the machine against the host's `address:`
    // (refused, exit 2, as `apply` refuses) and `mtu:` (warned). Reading it needs no root.
    if let Some(name) = &host.host {
        let rt = crate::apply::tokio_runtime()?;
        rt.block_on(crate::apply::underlay::check(&c.topology, name))
            .map_err(CliError::Up)?;
    }
    // As `apply` would: on a shared management network the lab's addresses are the
    // registry's (read only; a lab that does not fit is refused here as by `apply`).
    let running = host.lab_dir(&p.lab).exists();
    let p = match crate::apply::mgmtnet::place(
        host,
        &c.topology,
        &p,
        &file.display().to_string(),
        running,
    ) {
        Ok(Some(placed)) => placed.plan,
        Ok(None) => p,
        Err(e @ ApplyError::MgmtRefused { .. }) => return Err(CliError::Lab(e)),
        Err(e) => {
            crate::errln!("nslab: {e}: the management addresses shown are the file's alone");
            p
        }
    };
    let d = reconcile::dry_run(host, &p).map_err(CliError::Lab)?;
    match (d, json) {
        (None, false) => crate::outln!(
            "lab `{}` is not up: `nslab apply` would bring it up ({})",
            p.lab,
            crate::words::count(p.steps.len(), "step")
        ),
        (None, true) => crate::outln!(
            "{}",
            serde_json::json!({ "lab": p.lab, "up": false, "would": "up", "steps": p.steps.len() })
        ),
        (Some(d), false) => crate::out!("{}", diff::render(&d)),
        (Some(d), true) => {
            let v = serde_json::json!({
                "lab": d.lab,
                "up": true,
                "changes": d.groups,
                "added": d.count_whole(diff::Action::Add),
                "removed": d.count_whole(diff::Action::Remove),
                "in_place": d.count(diff::Class::InPlace),
                "restart": d.count(diff::Class::Restart),
                "replace": d.count(diff::Class::Replace),
            });
            crate::outln!("{}", serde_json::to_string_pretty(&v).expect("json"));
        }
    }
    Ok(exit::OK)
}
