//! `nslab shell NODE`: an interactive shell inside the node, its prompt naming the node.

use std::os::unix::process::ExitStatusExt;

use super::{CliError, exit, lab_arg};
use crate::runtime::LiveLab;

pub fn run(
    host: &crate::state::HostContext,
    lab: Option<&str>,
    node: &str,
) -> Result<u8, CliError> {
    let lab = lab_arg(host, None, lab)?;
    let live = LiveLab::open(host, &lab)?;
    let n = live.node(node)?;
    // bash without its rc files keeps our prompt; any other shell gets PS1 too.
    let (argv, prompt) = if std::path::Path::new("/bin/bash").exists() {
        (
            vec![
                "/bin/bash".to_string(),
                "--norc".into(),
                "--noprofile".into(),
                "-i".into(),
            ],
            format!("[{lab}/{node}] \\w \\$ "),
        )
    } else {
        (
            vec!["/bin/sh".to_string(), "-i".into()],
            format!("[{lab}/{node}] # "),
        )
    };
    let mut cmd = live.exec_target(n)?.command(&argv)?;
    cmd.env_clear()
        .envs(super::exec::node_env(n, &[]))
        .env("PS1", prompt)
        .env("NSLAB_LAB", &lab)
        .env("NSLAB_NODE", node);
    let status = cmd.status()?;
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(s)) => 128u8.wrapping_add(s as u8),
        _ => exit::FAILED,
    })
}
