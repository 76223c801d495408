//! `nslab down [LAB|FILE]`

use super::{CliError, exit, lab_arg};
use crate::apply;

pub fn run(
    host: &crate::state::HostContext,
    target: Option<&str>,
    lab: Option<&str>,
    quiet: bool,
) -> Result<u8, CliError> {
    let lab = lab_arg(host, target, lab)?;
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
