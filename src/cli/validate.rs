//! `nslab validate FILE`

use std::path::Path;

use super::{CliError, compile_checked, exit};

pub fn run(file: &Path, quiet: bool) -> Result<u8, CliError> {
    let c = compile_checked(file)?;
    if !quiet {
        let t = &c.topology;
        println!(
            "{}: lab `{}` is valid: {} nodes, {} bridges, {} links, {} checks",
            file.display(),
            t.lab,
            t.nodes.len(),
            t.bridges.len(),
            t.links.len(),
            t.checks.len()
        );
    }
    Ok(exit::OK)
}
