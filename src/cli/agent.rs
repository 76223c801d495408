//! `nslab agent FILE [--host NAME]`

use std::path::Path;

use super::{CliError, exit};
use crate::agent::{self, AgentError};
use crate::state::HostContext;

pub fn run(host: &HostContext, file: &Path, name: Option<&str>) -> Result<u8, CliError> {
    // This machine's name in a lab spread over several (the Pod's node name).
    let host = HostContext {
        host: name.map(str::to_string),
        ..host.clone()
    };
    match agent::run(&host, file) {
        Ok(_) => Ok(exit::OK),
        Err(AgentError::Compile(e)) => Err(e.into()),
        Err(e) => {
            // One line, as the container's last words in `kubectl logs`.
            agent::log(format_args!("{e}"));
            Ok(match e {
                AgentError::Up { .. } => exit::LAB_DOWN,
                _ => exit::FAILED,
            })
        }
    }
}
