//! `nslab exec NODE -- CMD...`

use std::os::unix::process::ExitStatusExt;

use super::{CliError, exit, lab_arg};
use crate::apply::{ApplyError, nodes};
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
    if argv.is_empty() {
        return Err(CliError::Usage(
            "nothing to run: give a command after `--`".into(),
        ));
    }
    let mut cmd = nodes::target(&lab, node, &n.netns)?.command(argv)?;
    let status = cmd
        .status()
        .map_err(|e| CliError::Usage(format!("cannot run `{}` in node `{node}`: {e}", argv[0])))?;
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
        _ => exit::FAILED,
    })
}
