//! `nslab node stop|start|restart NODE`

use super::{CliError, exit, lab_arg};
use crate::runtime::{self, LiveLab};
use crate::spec::raw::NodeAction;

pub fn run(
    host: &crate::state::HostContext,
    lab: Option<&str>,
    node: &str,
    action: NodeAction,
) -> Result<u8, CliError> {
    let lab = lab_arg(host, None, lab)?;
    // A lab that is not up gets no lock file.
    LiveLab::open(host, &lab)?;
    let _lock = super::lock_lab(host, &lab)?;
    let live = LiveLab::open(host, &lab)?;
    let rt = crate::apply::tokio_runtime()?;
    let events = rt.block_on(async {
        let kernel = super::runtime_kernel(host)?;
        Ok::<_, CliError>(runtime::node_action(&kernel, &live, node, action).await?)
    })?;
    for e in &events {
        super::print_event(e);
    }
    Ok(exit::OK)
}
