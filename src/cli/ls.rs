//! `nslab ls`

use super::{CliError, exit};
use crate::state::{HostContext, Journal, LabSummary, Record};

#[derive(serde::Serialize)]
struct Row {
    lab: String,
    state: &'static str,
    nodes: Option<usize>,
    links: Option<usize>,
    pid: Option<u32>,
    file: Option<String>,
}

pub fn run(host: &HostContext, json: bool) -> Result<u8, CliError> {
    let rows: Vec<Row> = host
        .labs()
        .into_iter()
        .map(|lab| {
            let dir = host.lab_dir(&lab);
            let records = Journal::read(&dir.journal_path()).unwrap_or_default();
            let complete = records.iter().any(|r| matches!(r, Record::Up { .. }));
            let summary = LabSummary::read(&dir.summary_path()).ok();
            Row {
                state: if complete { "up" } else { "incomplete" },
                nodes: summary.as_ref().map(|s| s.nodes.len()),
                links: summary.as_ref().map(|s| s.links),
                pid: summary.as_ref().map(|s| s.pid),
                file: summary.map(|s| s.file),
                lab,
            }
        })
        .collect();
    if json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialize")
        );
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        crate::outln!("no labs are up");
        return Ok(exit::OK);
    }
    let mut table = super::table::Table::new(&["LAB", "STATE", "NODES>", "LINKS>", "FILE"]);
    for r in rows {
        let n = |v: Option<usize>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
        table.row([
            r.lab,
            r.state.to_string(),
            n(r.nodes),
            n(r.links),
            r.file.unwrap_or_default(),
        ]);
    }
    table.print();
    Ok(exit::OK)
}
