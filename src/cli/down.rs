//! `nslab down [LAB|FILE]`, `nslab down --all`

use nix::sys::signal::Signal;

use super::{CliError, exit, lab_arg};
use crate::apply;

pub fn run(
    host: &crate::state::HostContext,
    target: Option<&str>,
    lab: Option<&str>,
    quiet: bool,
) -> Result<u8, CliError> {
    let lab = lab_arg(host, target, lab)?;
    let (signal, done) = one(host, &lab, quiet);
    let Some(signal) = signal else {
        return done.map(|()| exit::OK);
    };
    if let Err(e) = done {
        crate::errln!("error: {e}");
    }
    Ok(interrupted(signal, &lab))
}

/// Says that a signal came during the teardown of `lab`, which went on to its end, and
/// gives its exit code (128 + N).
fn interrupted(signal: Signal, lab: &str) -> u8 {
    crate::errln!("nslab: interrupted by {signal}; the teardown of lab `{lab}` finished first");
    exit::interrupted(signal.as_str())
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
    for (i, f) in labs.iter().enumerate() {
        if f.state != crate::state::found::Seen::Up && !quiet {
            crate::outln!(
                "lab `{}` is {} (found in: {})",
                f.lab,
                f.state.word(),
                f.records.join(", ")
            );
        }
        let (signal, done) = one(host, &f.lab, quiet);
        match done {
            Ok(()) => {}
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
        // A signal stops `--all` between labs: the rest stay up, named.
        if let Some(signal) = signal {
            let left: Vec<&str> = labs[i + 1..].iter().map(|f| f.lab.as_str()).collect();
            if !left.is_empty() {
                crate::errln!("nslab: not taken down: {}", left.join(", "));
            }
            return Ok(interrupted(signal, &f.lab));
        }
    }
    Ok(if failed == 0 { exit::OK } else { exit::FAILED })
}

/// One lab's teardown, with SIGINT, SIGTERM and SIGHUP held from the moment its lock is
/// taken until the teardown is over (see `sys::held`): the signal that came meanwhile,
/// if one did, and the outcome.
fn one(
    host: &crate::state::HostContext,
    lab: &str,
    quiet: bool,
) -> (Option<Signal>, Result<(), CliError>) {
    let lock = match apply::lock(host, lab) {
        Ok(l) => l,
        Err(e) => return (None, Err(CliError::Lab(e))),
    };
    let held = crate::sys::held::Held::begin();
    // After the signals are held: the threads it starts (the bar's ticker) hold them too.
    let progress = super::progress::reporter(lab, quiet);
    let report = apply::down_locked(host, lab, lock, progress.as_ref()).map_err(CliError::Lab);
    let signal = held.ok().and_then(|h| h.release());
    let report = match report {
        Ok(r) => r,
        Err(e) => return (signal, Err(e)),
    };
    // `--quiet` prints nothing on success, as cargo's does; failures still go to stderr.
    if !quiet {
        crate::outln!(
            "lab `{lab}` is down: {} removed in {:.2} s",
            crate::words::count(report.objects, "object"),
            report.elapsed.as_secs_f64()
        );
    }
    (signal, Ok(()))
}
