//! `nslab events [LAB] [--json]`

use super::{CliError, exit, lab_arg};
use crate::runtime::events;

pub fn run(
    host: &crate::state::HostContext,
    target: Option<&str>,
    lab: Option<&str>,
    json: bool,
) -> Result<u8, CliError> {
    let lab = lab_arg(host, target, lab)?;
    let list = events::read(&host.lab_dir(&lab)).map_err(crate::runtime::RuntimeError::from)?;
    if json {
        let text = serde_json::to_string_pretty(&list)
            .map_err(|e| CliError::Usage(format!("cannot print the events as JSON: {e}")))?;
        crate::outln!("{text}");
        return Ok(exit::OK);
    }
    if list.is_empty() {
        crate::errln!(
            "lab `{lab}`: no events yet (link, node, capture and apply commands record them)"
        );
    }
    // The action and target columns as wide as this log needs.
    let mut table = super::table::Table::new(&[]);
    for e in &list {
        let time = events::format_time(e.at_ms);
        table.row([time, e.action.clone(), e.target.clone(), e.detail.clone()]);
    }
    table.print();
    Ok(exit::OK)
}
