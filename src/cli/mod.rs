//! Command-line interface: clap's raw arguments, one module per subcommand. Each
//! subcommand returns an exit code or a [`CliError`]; `main.rs` only prints and exits.

mod graph;
mod plan;
mod validate;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::compile::CompileError;

/// Exit codes shared by every command.
pub mod exit {
    pub const OK: u8 = 0;
    /// A check failed, or a command on a running lab failed.
    pub const FAILED: u8 = 1;
    /// The lab could not come up.
    pub const LAB_DOWN: u8 = 2;
    /// The topology file (or the arguments) are invalid.
    pub const INVALID: u8 = 3;
}

#[derive(Debug, Parser)]
#[command(
    name = "nslab",
    version,
    about = "Build network labs out of Linux namespaces, from a YAML topology",
    long_about = "nslab compiles a YAML topology (nodes, links, bridges, addresses, routes, \
processes, tests) into a deterministic plan and applies it through netlink. The same file \
always gives the same plan and the same kernel state.\n\n\
Exit codes: 0 success, 1 failure, 2 the lab could not come up, 3 invalid input."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a topology file and report every problem in it, with file:line:col.
    ///
    /// Exits 0 when the file is valid (warnings are printed but do not fail it) and 3
    /// when it is not.
    Validate {
        /// The topology file.
        file: PathBuf,
        /// Print nothing on success.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print the ordered steps that would bring the lab up, without touching the kernel.
    ///
    /// Each line is one step: its id, the operation, what it acts on, and the steps it
    /// waits for. The same file always prints the same plan.
    Plan {
        /// The topology file.
        file: PathBuf,
        /// Print the plan as JSON (steps with typed fields and dependencies).
        #[arg(long)]
        json: bool,
        /// Print the teardown derived from the plan instead.
        #[arg(long)]
        teardown: bool,
    },
    /// Draw the topology: nodes and bridges, with interface names and addresses on the
    /// links.
    Graph {
        /// The topology file.
        file: PathBuf,
        /// Output format: Graphviz DOT (`dot -Tsvg`) or a Mermaid flowchart.
        #[arg(long, value_enum, default_value = "dot")]
        format: crate::draw::Format,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Compile(_) => exit::INVALID,
            CliError::Output(_) => exit::FAILED,
        }
    }
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> Result<u8, CliError> {
    match cli.command {
        Command::Validate { file, quiet } => validate::run(&file, quiet),
        Command::Plan {
            file,
            json,
            teardown,
        } => plan::run(&file, json, teardown),
        Command::Graph { file, format } => graph::run(&file, format),
    }
}

/// Compiles a file and prints its warnings to stderr.
fn compile(file: &std::path::Path) -> Result<crate::Compiled, CliError> {
    let c = crate::compile_file(file)?;
    let warnings = c.warnings.render(crate::Severity::Warning);
    if !warnings.is_empty() {
        eprint!("{warnings}");
    }
    Ok(c)
}
