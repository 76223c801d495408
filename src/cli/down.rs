//! `nslab down [LAB|FILE]`, `nslab down --all`

use super::{CliError, exit, lab_arg};
use crate::apply;

pub fn run(
    host: &crate::state::HostContext,
    target: Option<&str>,
    lab: Option<&str>,
    quiet: bool,
) -> Result<u8, CliError> {
    let lab = lab_arg(host, target, lab)?;
    one(host, &lab, quiet)
}

/// Every lab of this host, as containerlab's `destroy --all`: each goes down on its own,
/// so one that fails (reported) keeps none of the others up. Exits 1 if any failed. The
/// labs are those `ls` lists: any record names them (a journal, files a deleted journal
/// left, a shared network's registry), so a member whose own state is gone leaves the
/// network too, and only its entry goes.
pub fn all(host: &crate::state::HostContext, quiet: bool) -> Result<u8, CliError> {
    let labs = crate::state::found::find(host);
    if labs.is_empty() && !quiet {
        crate::outln!("no lab on this host");
    }
    let mut failed = 0;
    for f in &labs {
        if f.state != crate::state::found::Seen::Up && !quiet {
            crate::outln!(
                "lab `{}` is {} (found in: {})",
                f.lab,
                f.state.word(),
                f.records.join(", ")
            );
        }
        match one(host, &f.lab, quiet) {
            Ok(_) => {}
            // A lock file alone: `down` took and removed it, and found nothing else.
            Err(CliError::Lab(apply::ApplyError::NotUp(_))) if f.only_lock() => {
                if !quiet {
                    crate::outln!("lab `{}`: only a stale lock file was left; removed", f.lab);
                }
            }
            Err(e) => {
                crate::errln!("error: {e}");
                failed += 1;
            }
        }
    }
    Ok(if failed == 0 { exit::OK } else { exit::FAILED })
}

fn one(host: &crate::state::HostContext, lab: &str, quiet: bool) -> Result<u8, CliError> {
    let lab = lab.to_string();
    let progress = super::progress::reporter(&lab, quiet);
    let report = apply::down_with(host, &lab, progress.as_ref()).map_err(CliError::Lab)?;
    // `--quiet` prints nothing on success, as cargo's does; failures still go to stderr.
    if quiet {
        return Ok(exit::OK);
    }
    crate::outln!(
        "lab `{lab}` is down: {} removed in {:.2} s",
        crate::words::count(report.objects, "object"),
        report.elapsed.as_secs_f64()
    );
    Ok(exit::OK)
}
