//! `nslab plan FILE [--json] [--teardown]`

use std::io::{BufWriter, Write};
use std::path::Path;

use super::{CliError, compile, exit};
use crate::plan;

pub fn run(
    host: &crate::state::HostContext,
    file: &Path,
    json: bool,
    teardown: bool,
) -> Result<u8, CliError> {
    let c = compile(file)?;
    let p = super::plan_for(host, &c.topology)?;
    let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    match (json, teardown) {
        (true, false) => {
            p.write_json(&mut out)?;
            writeln!(out)?;
        }
        (true, true) => {
            serde_json::to_writer_pretty(&mut out, &p.teardown()).map_err(std::io::Error::other)?;
            writeln!(out)?;
        }
        (false, false) => plan::write_text(&p, &mut out)?,
        (false, true) => out.write_all(plan::teardown_text(&p).as_bytes())?,
    }
    out.flush()?;
    Ok(exit::OK)
}
