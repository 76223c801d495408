//! `nslab graph FILE --format dot|mermaid|svg|html`, and `nslab graph --lab LAB` for a
//! running lab, drawn with its live state (`--serve` keeps the page fresh).

mod live;
mod serve;

use std::io::Write;
use std::path::Path;

use super::{CliError, compile, exit};
use crate::draw::{self, Format};

pub use serve::DEFAULT_ADDR;

pub struct Args<'a> {
    pub file: Option<&'a Path>,
    pub lab: Option<&'a str>,
    pub format: Format,
    /// Serve the page on this address instead of printing it.
    pub serve: Option<&'a str>,
}

pub fn run(args: Args, host: &crate::state::HostContext) -> Result<u8, CliError> {
    let text = match (args.file, args.lab) {
        (Some(file), None) => {
            if args.serve.is_some() {
                return Err(CliError::Usage(
                    "--serve shows a running lab: give it with --lab".into(),
                ));
            }
            draw::render(&compile(file)?.topology, args.format)
        }
        (None, lab) => {
            let lab = super::lab_arg(host, None, lab)?;
            if let Some(addr) = args.serve {
                return serve::run(host, &lab, addr);
            }
            let running = live::open(host, &lab)?;
            let state = live::read(&running)?;
            draw::render_live(&running.topology, Some(&state), args.format)
        }
        (Some(_), Some(_)) => {
            return Err(CliError::Usage(
                "give a topology file or --lab, not both".into(),
            ));
        }
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(exit::OK)
}
