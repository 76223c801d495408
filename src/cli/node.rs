//! `nslab node stop|start|restart NODE`

use super::{CliError, exit, lab_arg};
use crate::runtime::{self, LiveLab};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Stop,
    Start,
    Restart,
}

pub fn run(lab: Option<&str>, node: &str, action: Action) -> Result<u8, CliError> {
    let lab = lab_arg(None, lab)?;
    // A lab that is not up gets no lock file.
    LiveLab::open(&lab)?;
    let _lock = super::lock_lab(&lab)?;
    let live = LiveLab::open(&lab)?;
    let rt = crate::apply::runtime()?;
    rt.block_on(async {
        if action != Action::Start {
            super::print_event(&runtime::stop_node(&live, node).await?);
        }
        if action != Action::Stop {
            let kernel = super::runtime_kernel()?;
            super::print_event(&runtime::start_node(&kernel, &live, node).await?);
        }
        Ok::<_, CliError>(())
    })?;
    Ok(exit::OK)
}
