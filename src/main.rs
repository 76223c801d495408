//! The `nslab` binary: parse arguments, call the library, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use nslab::cli::{Cli, CliError, exit, run};

fn main() -> ExitCode {
    // The caller's umask must not decide the modes of what nslab makes as root (lab
    // locks, pid files, node logs, the inits' control sockets) nor reach a node: under
    // `umask 0` an init's socket was writable by every user, who could add a process to
    // it and so run a command as root.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    // The node init is this same binary; it must not pay for argument parsing.
    let mut args = std::env::args_os();
    let first = args.next().and(args.next());
    // A rootless lab's holder (`__holder LAB NETNS_DIR`): the lab names it in `ps`.
    if first.as_ref().is_some_and(|a| a == "__holder") {
        let netns_dir = args.nth(1).unwrap_or_default();
        let sub_ids = args.next().is_some_and(|m| m == "subids");
        return ExitCode::from(nslab::rootless::holder::main(netns_dir.as_ref(), sub_ids) as u8);
    }
    // A Rust test's guard of its lab (`__guard LAB`, see `nslab::guard`).
    if first.as_ref().is_some_and(|a| a == "__guard") {
        let lab = args
            .next()
            .and_then(|l| l.into_string().ok())
            .unwrap_or_default();
        return ExitCode::from(nslab::guard::main(&lab) as u8);
    }
    // The fork server of node inits (see `node::zygote`); its argument is only room.
    if first.as_ref().is_some_and(|a| a == "__zygote") {
        default_dispositions();
        return ExitCode::from(nslab::node::zygote::main() as u8);
    }
    if first.is_some_and(|a| a == "__init") {
        default_dispositions();
        let config = args
            .next()
            .and_then(|c| c.into_string().ok())
            .unwrap_or_default();
        return ExitCode::from(nslab::node::launch::shim(&config) as u8);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return ExitCode::from(usage_error(&e)),
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let code = err.exit_code();
            match &err {
                // The report is already formatted, one located error after another.
                CliError::Compile(nslab::CompileError::Invalid(report)) => {
                    nslab::err!("{report}")
                }
                // Our messages already carry their causes; anyhow's chain would repeat them.
                _ => nslab::errln!("error: {}", anyhow::Error::from(err)),
            }
            ExitCode::from(code)
        }
    }
}

/// A signal the caller ignored stays ignored across exec, into the fork server, the
/// inits and every process they start (`trap '' USR1; nslab up` left SIGUSR1 ignored in
/// the node's daemons): a node starts from the default dispositions, as a container does.
/// SIGPIPE stays ignored, as the runtime set it: the init writes to sockets whose reader
/// may be gone, and the standard library resets it for the commands it spawns.
fn default_dispositions() {
    use nix::sys::signal::Signal;
    for sig in Signal::iterator() {
        if !matches!(sig, Signal::SIGPIPE | Signal::SIGKILL | Signal::SIGSTOP) {
            let _ = nslab::sys::signal::set_default(sig);
        }
    }
}

/// Prints clap's message and gives the documented exit code: 0 for --help and
/// --version, 3 (invalid input) for a usage error, where clap itself would exit 2, the
/// code of "the lab could not come up".
fn usage_error(e: &clap::Error) -> u8 {
    // A closed stdout (`nslab --help | head -1`) is no reason to panic.
    let _ = e.print();
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => exit::OK,
        _ => exit::INVALID,
    }
}
