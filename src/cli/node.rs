//! `nslab node stop|start|restart NODE`

use super::{CliError, exit, lab_arg};
use crate::model::kinds::NodeAction;
use crate::runtime::{self, LiveLab};

pub fn run(lab: Option<&str>, node: &str, action: NodeAction) -> Result<u8, CliError> {
    let lab = lab_arg(None, lab)?;
    // A lab that is not up gets no lock file.
    LiveLab::open(&lab)?;
    let _lock = super::lock_lab(&lab)?;
    let live = LiveLab::open(&lab)?;
    let rt = crate::apply::tokio_runtime()?;
    let events = rt.block_on(async {
        let kernel = super::runtime_kernel()?;
        Ok::<_, CliError>(runtime::node_action(&kernel, &live, node, action).await?)
    })?;
    for e in &events {
        super::print_event(e);
    }
    Ok(exit::OK)
}
