//! The `nslab` binary: parse arguments, call the library, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use nslab::cli::{Cli, CliError, run};

fn main() -> ExitCode {
    // The node init is this same binary; it must not pay for argument parsing.
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == "__init") {
        let config = args
            .next()
            .and_then(|c| c.into_string().ok())
            .unwrap_or_default();
        return ExitCode::from(nslab::node::init::main(&config) as u8);
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let code = err.exit_code();
            match &err {
                // The report is already formatted, one located error after another.
                CliError::Compile(nslab::CompileError::Invalid(report)) => eprint!("{report}"),
                // Our messages already carry their causes; anyhow's chain would repeat them.
                _ => eprintln!("error: {}", anyhow::Error::from(err)),
            }
            ExitCode::from(code)
        }
    }
}
