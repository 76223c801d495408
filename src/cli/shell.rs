//! `nslab shell NODE`: an interactive shell inside the node, its prompt naming the node.

use std::os::unix::process::ExitStatusExt;

use super::{CliError, exit, lab_arg};
use crate::runtime::{Access, Session};

pub fn run(
    host: &crate::state::HostContext,
    lab: Option<&str>,
    node: &str,
) -> Result<u8, CliError> {
    let lab = lab_arg(host, None, lab)?;
    let session = Session::open(host, &lab, Access::Read)?;
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
    let extra = [
        ("PS1".to_string(), prompt),
        ("NSLAB_LAB".to_string(), lab.clone()),
        ("NSLAB_NODE".to_string(), node.to_string()),
    ];
    let mut cmd = session.command(node, &argv, &extra)?;
    let status = cmd.status()?;
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(s)) => 128u8.wrapping_add(s as u8),
        _ => exit::FAILED,
    })
}
