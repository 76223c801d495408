//! `nslab up FILE`

use std::path::Path;

use super::{CliError, compile_checked, exit};
use crate::apply::{self, UpOptions};
use crate::state::HostContext;

pub fn run(
    host: &HostContext,
    file: &Path,
    jobs: usize,
    quiet: bool,
    raise_neigh: bool,
) -> Result<u8, CliError> {
    let c = compile_checked(host, file)?;
    let t = &c.topology;
    let p = super::plan_for(host, t)?;
    let opts = options(host, file, &c, jobs, quiet);
    if raise_neigh {
        raise_neigh_limit(host, t, quiet)?;
    }
    let report = apply::up(t, &p, &opts).map_err(|e| {
        undo_raise(host, &t.lab, raise_neigh && !lab_exists(&e));
        CliError::Up(e)
    })?;
    // `--quiet` prints nothing on success, as cargo's does; failures still go to stderr.
    if quiet {
        return Ok(exit::OK);
    }
    // With --host, this host's share: its own nodes.
    let nodes = t
        .nodes
        .iter()
        .filter(|n| host.host.is_none() || n.host == host.host)
        .count();
    let here = host
        .host
        .as_ref()
        .map(|h| format!(" on host {h}"))
        .unwrap_or_default();
    crate::outln!(
        "lab `{}` is up{here}: {}, {}, {} ({} in {:.2} s)",
        t.lab,
        crate::words::count(nodes, "node"),
        crate::words::count(t.bridges.len(), "bridge"),
        crate::words::count(t.links.len(), "link"),
        crate::words::count(report.steps, "step"),
        report.elapsed.as_secs_f64()
    );
    Ok(exit::OK)
}

/// What `up` and `apply` run with from the command line: the file's absolute path and
/// text kept with the lab, signals handled, progress on a terminal.
pub(super) fn options(
    host: &HostContext,
    file: &Path,
    c: &crate::Compiled,
    jobs: usize,
    quiet: bool,
) -> UpOptions {
    UpOptions {
        jobs,
        file: std::path::absolute(file)
            .unwrap_or(file.to_path_buf())
            .display()
            .to_string(),
        handle_signals: true,
        source: Some(c.warnings.source.clone()),
        progress: super::progress::reporter(&c.topology.lab, quiet),
        ..UpOptions::new(host.clone())
    }
}

/// `--raise-neigh-limit`: raises the host's neighbour limits the lab's estimate passes,
/// recorded for the lab's `down` to put back (see `state::sysctls`). The one change to the
/// host's own settings nslab makes, and only when asked.
pub(super) fn raise_neigh_limit(
    host: &HostContext,
    t: &crate::model::Topology,
    quiet: bool,
) -> Result<(), CliError> {
    use crate::state::sysctls;
    let wants = crate::preflight::neigh::raises(t, crate::preflight::neigh::host_limit);
    let changed = sysctls::raise(Path::new(sysctls::PROC_SYS), &host.run_dir, &t.lab, &wants)
        .map_err(|e| {
            undo_raise(host, &t.lab, true);
            CliError::Io(std::io::Error::other(format!(
                "lab `{}`: cannot raise the host's neighbour limit: {e}",
                t.lab
            )))
        })?;
    for r in changed.iter().filter(|_| !quiet) {
        crate::errln!(
            "nslab: lab `{}`: {} raised from {} to {} until the lab's `down`",
            t.lab,
            r.key,
            r.before,
            r.set
        );
    }
    Ok(())
}

/// Whether `up` failed because the lab already runs (or left state behind): the raise
/// recorded for the lab is then that lab's, for its `down` to put back, not this `up`'s.
pub(super) fn lab_exists(e: &apply::ApplyError) -> bool {
    matches!(
        e,
        apply::ApplyError::AlreadyUp { .. } | apply::ApplyError::Leftovers { .. }
    )
}

/// Puts back what [`raise_neigh_limit`] changed when the lab did not come up (its `down`
/// does it otherwise).
pub(super) fn undo_raise(host: &HostContext, lab: &str, raised: bool) {
    if !raised {
        return;
    }
    let proc_sys = Path::new(crate::state::sysctls::PROC_SYS);
    for e in crate::state::sysctls::restore(proc_sys, &host.run_dir, lab) {
        crate::errln!("nslab: lab `{lab}`: {e}");
    }
}
