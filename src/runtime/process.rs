//! Adding and retiring single processes of a running node (the engine's, in
//! `apply::process`), with errors that name the lab and node.

use super::RuntimeError;
use crate::node::config::ProcessSpec;
use crate::state::HostContext;

fn error(lab: &str, node: &str, msg: String) -> RuntimeError {
    RuntimeError::Node {
        lab: lab.to_string(),
        node: node.to_string(),
        msg,
    }
}

/// See [`crate::apply::process::add_process`].
pub async fn add_process(
    host: &HostContext,
    lab: &str,
    node: &str,
    spec: &ProcessSpec,
) -> Result<(), RuntimeError> {
    crate::apply::process::add_process(host, lab, node, spec)
        .await
        .map_err(|e| error(lab, node, e))
}

/// See [`crate::apply::process::retire_process`].
pub async fn retire_process(
    host: &HostContext,
    lab: &str,
    node: &str,
    process: &str,
) -> Result<(), RuntimeError> {
    crate::apply::process::retire_process(host, lab, node, process)
        .await
        .map_err(|e| error(lab, node, e))
}
