//! `nslab exec NODE -- CMD...`

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;

use super::{CliError, exit, lab_arg};
use crate::apply::{ApplyError, netns};
use crate::state::{LabDir, LabSummary};

pub fn run(lab: Option<&str>, node: &str, argv: &[String]) -> Result<u8, CliError> {
    let lab = lab_arg(None, lab)?;
    let dir = LabDir::new(&lab);
    let summary = LabSummary::read(&dir.summary_path())
        .map_err(|_| CliError::Lab(ApplyError::NotUp(lab.clone())))?;
    let Some(n) = summary.node(node) else {
        let names: Vec<&str> = summary.nodes.iter().map(|n| n.name.as_str()).collect();
        return Err(CliError::Usage(format!(
            "lab `{lab}` has no node `{node}`; its nodes are: {}",
            names.join(", ")
        )));
    };
    let fd = netns::open(&n.netns)?;
    let Some((prog, args)) = argv.split_first() else {
        return Err(CliError::Usage(
            "nothing to run: give a command after `--`".into(),
        ));
    };
    let mut cmd = Command::new(prog);
    cmd.args(args);
    // SAFETY: setns is async-signal-safe; the closure only makes that call.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = cmd
        .status()
        .map_err(|e| CliError::Usage(format!("cannot run `{prog}` in node `{node}`: {e}")))?;
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
        _ => exit::FAILED,
    })
}
