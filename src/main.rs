//! The `nslab` binary: parse arguments, call the library, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use nslab::cli::{Cli, CliError, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let code = err.exit_code();
            match &err {
                // The report is already formatted, one located error after another.
                CliError::Compile(nslab::CompileError::Invalid(report)) => eprint!("{report}"),
                _ => eprintln!("error: {:#}", anyhow::Error::from(err)),
            }
            ExitCode::from(code)
        }
    }
}
