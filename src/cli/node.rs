//! `nslab node stop|start|restart NODE`

use super::{CliError, exit, lab_arg};
use crate::model::kinds::NodeAction;
use crate::runtime::{Access, Session};

pub fn run(
    host: &crate::state::HostContext,
    lab: Option<&str>,
    node: &str,
    action: NodeAction,
) -> Result<u8, CliError> {
    let lab = lab_arg(host, None, lab)?;
    let rt = crate::apply::tokio_runtime()?;
    let events = rt.block_on(async {
        Session::open(host, &lab, Access::Change)?
            .node_action(node, action)
            .await
    })?;
    for e in &events {
        super::print_event(e);
    }
    Ok(exit::OK)
}
