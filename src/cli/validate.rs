//! `nslab validate FILE`

use std::path::Path;

use super::{CliError, compile_checked, exit};

pub fn run(host: &crate::state::HostContext, file: &Path, quiet: bool) -> Result<u8, CliError> {
    let c = compile_checked(host, file)?;
    if !quiet {
        let t = &c.topology;
        crate::outln!(
            "{}: lab `{}` is valid: {}, {}, {}, {}",
            file.display(),
            t.lab,
            crate::words::count(t.nodes.len(), "node"),
            crate::words::count(t.bridges.len(), "bridge"),
            crate::words::count(t.links.len(), "link"),
            crate::words::count(t.checks.len(), "check")
        );
    }
    Ok(exit::OK)
}
