//! `nslab plan FILE [--json] [--teardown]`

use std::io::Write;
use std::path::Path;

use super::{CliError, compile, exit};
use crate::plan;

pub fn run(file: &Path, json: bool, teardown: bool) -> Result<u8, CliError> {
    let c = compile(file)?;
    let p = plan::plan(&c.topology);
    let text = match (json, teardown) {
        (true, false) => p.to_json() + "\n",
        (true, true) => {
            serde_json::to_string_pretty(&p.teardown()).expect("undo steps serialize") + "\n"
        }
        (false, false) => plan::render_text(&p),
        (false, true) => plan::teardown_text(&p),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(exit::OK)
}
