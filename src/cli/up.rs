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
    crate::apply::progress::trace("compile");
    let c = compile_checked(host, file)?;
    let t = &c.topology;
    crate::apply::progress::trace("plan");
    let p = super::plan_for(host, t)?;
    let opts = UpOptions {
        raise_neigh_limit: raise_neigh,
        ..options(host, file, &c, jobs, quiet)
    };
    let report = apply::up(t, &p, &opts).map_err(CliError::Up)?;
    // `--quiet` prints nothing on success, as cargo's does; failures still go to stderr.
    if quiet {
        return Ok(exit::OK);
    }
    say_raised(&t.lab, &report.raised);
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

/// What `--raise-neigh-limit` changed (the engine raises it under the lab's lock).
pub(super) fn say_raised(lab: &str, raised: &[crate::state::sysctls::Raised]) {
    for r in raised {
        crate::errln!(
            "nslab: lab `{lab}`: {} raised from {} to {} until the lab's `down`",
            r.key,
            r.before,
            r.set
        );
    }
}
