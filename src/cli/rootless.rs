//! Commands run without root: find (or, for `up`, `apply` and `test FILE`, start) the
//! lab's holder, join it, and run the command inside with the rootless host context.
//! Commands that touch no lab (validate, plan, import, graph of a file) run as they are.

use std::path::Path;

use super::{CliError, Command, LinkCommand, NodeCommand, dispatch, lab_arg};
use crate::rootless::{RootlessError, holder, join};
use crate::state::HostContext;

/// `machine`: the global `--host` (this machine's name in a lab spread over hosts).
pub fn run(command: Command, machine: Option<String>) -> Result<u8, CliError> {
    let host = HostContext {
        host: machine,
        ..HostContext::rootless_from_env().ok_or(RootlessError::NoStateDir)?
    };
    // Root obeys the holder file there: it joins the namespaces of the pid it names, and
    // a user owning those controls the mounts through which root then writes files and
    // runs programs. So as root only a directory no other user could have written is
    // used, as for `NSLAB_RUN_DIR`.
    if nix::unistd::geteuid().is_root() {
        crate::state::trust::trusted(&host.run_dir).map_err(|why| {
            RootlessError::UntrustedStateDir {
                path: host.run_dir.clone(),
                why,
            }
        })?;
    }
    // A rootless lab's cgroups are never at the hierarchies' roots, where a root lab of the
    // same name has its own: below this process's until the holder's are known.
    if let Ok(own) = std::fs::read_to_string("/proc/self/cgroup") {
        crate::node::cgroup::place_below(own);
    }
    if matches!(command, Command::Ls { .. }) {
        // A lab whose holder died is gone: do not list it.
        for lab in host.labs() {
            holder::open(&host, &lab, false)?;
        }
    }
    let Some((lab, may_start)) = lab_of(&host, &command)? else {
        return dispatch(&host, command);
    };
    let Some(holder) = holder::open(&host, &lab, may_start)? else {
        return Err(CliError::Lab(crate::apply::ApplyError::NotUp(lab)));
    };
    // Inside the user namespace the host's root-owned directories show as the overflow
    // uid, so `NSLAB_BIN` could never pass its trust check there; this binary is nslab and
    // serves as the nodes' init itself (see `apply::nodes::nslab_binary`).
    // Single-threaded still (no runtime has started).
    if std::env::current_exe().is_ok_and(|e| e.file_name().is_some_and(|n| n == "nslab"))
        && let Some(one) = crate::sys::child::SingleThreaded::check()
    {
        one.remove_env("NSLAB_BIN");
    }
    match join::join(&holder)? {
        join::Joined::Inside => dispatch(&host, command),
        join::Joined::Done(ended) => {
            // Down, rolled back, or tested and torn down: the holder has nothing to hold.
            if !host.lab_dir(&lab).exists() {
                holder.stop(&host)?;
            }
            Ok(exit_code(ended))
        }
    }
}

/// The joining process's exit code: the command's, or 128 + the signal that ended it,
/// as a shell reports it.
fn exit_code(ended: join::Ended) -> u8 {
    match ended {
        join::Ended::Exited(code) => code,
        join::Ended::Killed(sig) => 128u8.saturating_add(sig as u8),
    }
}

/// The lab a command works on, and whether it may bring the lab's holder up; `None` for
/// a command that needs no lab.
fn lab_of(host: &HostContext, command: &Command) -> Result<Option<(String, bool)>, CliError> {
    let running = |target: Option<&str>, lab: Option<&str>| {
        lab_arg(host, target, lab).map(|l| Some((l, false)))
    };
    match command {
        Command::Validate { .. }
        | Command::Import { .. }
        | Command::Plan { .. }
        | Command::Ls { .. }
        | Command::K8s { .. }
        | Command::Agent { .. }
        | Command::Graph { lab: None, .. } => Ok(None),
        Command::Up { file, .. } | Command::Apply { file, .. } => file_lab(host, file),
        Command::Test { file: Some(f), .. } => file_lab(host, f),
        Command::Test { lab: l, .. } | Command::Graph { lab: l, .. } => running(None, lab(l)),
        Command::Down { target, lab: l, .. }
        | Command::Status { target, lab: l, .. }
        | Command::Events { target, lab: l, .. } => running(target.as_deref(), lab(l)),
        Command::Shell { lab: l, .. }
        | Command::Ps { lab: l, .. }
        | Command::Logs { lab: l, .. }
        | Command::Capture { lab: l, .. }
        | Command::Exec { lab: l, .. } => running(None, lab(l)),
        Command::Link { action } => match action {
            LinkCommand::Down(e) | LinkCommand::Up(e) => running(None, lab(&e.lab)),
            LinkCommand::Impair { lab: l, .. } => running(None, lab(l)),
        },
        Command::Node { action } => match action {
            NodeCommand::Stop { lab: l, .. }
            | NodeCommand::Start { lab: l, .. }
            | NodeCommand::Restart { lab: l, .. } => running(None, lab(l)),
        },
    }
}

fn lab(l: &Option<String>) -> Option<&str> {
    l.as_deref()
}

/// The lab a topology file brings up. The file is compiled here, before a holder starts,
/// so what a rootless lab cannot have is reported without one (the command compiles it
/// again inside; compiling is a few percent of `up`).
fn file_lab(host: &HostContext, file: &Path) -> Result<Option<(String, bool)>, CliError> {
    let c = super::compile_with(file, Some(host), false)?;
    if host.host.is_some() && c.topology.hosts.is_empty() {
        // A lab on one machine has no share to pick: refused as without `--rootless`,
        // before a holder starts.
        super::plan_for(host, &c.topology)?;
    } else if let Some(machine) = &host.host {
        let mut report = c.warnings;
        let found = crate::rootless::check::multi_host(&c.topology, &report.source, machine);
        report.diagnostics.push(found);
        return Err(crate::compile::CompileError::Invalid(report).into());
    }
    Ok(Some((c.topology.lab, true)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn lab_for(host: &HostContext, argv: &[&str]) -> Option<(String, bool)> {
        let cli = super::super::Cli::try_parse_from(argv).expect("parses");
        lab_of(host, &cli.command).expect("a lab or none")
    }

    #[test]
    fn a_command_killed_inside_exits_as_a_shell_says() {
        use nix::sys::signal::Signal;
        assert_eq!(exit_code(join::Ended::Exited(3)), 3);
        assert_eq!(exit_code(join::Ended::Killed(Signal::SIGKILL)), 137);
        assert_eq!(exit_code(join::Ended::Killed(Signal::SIGTERM)), 143);
    }

    #[test]
    fn only_commands_that_bring_a_lab_up_may_start_its_holder() {
        let dir = std::env::temp_dir().join(format!("nslab-rl-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("t.yaml");
        std::fs::write(&file, "name: rlcli\nnodes: { a: {} }\n").unwrap();
        let host = HostContext {
            run_dir: dir.join("run"),
            netns_dir: dir.join("run/netns"),
            privileged: false,
            host: None,
        };
        let f = file.to_str().unwrap();
        let up = Some(("rlcli".to_string(), true));
        assert_eq!(lab_for(&host, &["nslab", "up", f]), up);
        assert_eq!(lab_for(&host, &["nslab", "apply", f]), up);
        assert_eq!(lab_for(&host, &["nslab", "test", f]), up);
        let running = Some(("rlcli".to_string(), false));
        assert_eq!(lab_for(&host, &["nslab", "down", "rlcli"]), running);
        assert_eq!(lab_for(&host, &["nslab", "status", f]), running);
        assert_eq!(
            lab_for(
                &host,
                &["nslab", "exec", "--lab", "rlcli", "a", "--", "true"]
            ),
            running
        );
        assert_eq!(
            lab_for(&host, &["nslab", "--rootless", "validate", f]),
            None
        );
        assert_eq!(lab_for(&host, &["nslab", "plan", f]), None);
        assert_eq!(lab_for(&host, &["nslab", "ls"]), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
