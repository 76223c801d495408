//! `nslab agent FILE [--host NAME]`

use std::path::Path;

use super::{CliError, exit};
use crate::agent::{self, AgentError};
use crate::state::HostContext;

/// `host` names this machine's share (the global `--host`, the Pod's node name).
pub fn run(host: &HostContext, file: &Path) -> Result<u8, CliError> {
    match agent::run(host, file) {
        Ok(_) => Ok(exit::OK),
        Err(AgentError::Compile(e)) => Err(e.into()),
        Err(e) => {
            // One line, as the container's last words in `kubectl logs`.
            agent::log(format_args!("{e}"));
            Ok(match e {
                AgentError::Up { .. } => exit::LAB_DOWN,
                AgentError::Share(_) => exit::INVALID,
                _ => exit::FAILED,
            })
        }
    }
}
