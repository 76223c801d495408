//! `nslab graph FILE --format dot|mermaid`

use std::io::Write;
use std::path::Path;

use super::{CliError, compile, exit};
use crate::draw;

pub fn run(file: &Path, format: draw::Format) -> Result<u8, CliError> {
    let c = compile(file)?;
    std::io::stdout()
        .lock()
        .write_all(draw::render(&c.topology, format).as_bytes())?;
    Ok(exit::OK)
}
