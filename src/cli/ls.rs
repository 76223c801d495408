//! `nslab ls`

use super::{CliError, exit};
use crate::state::found::{self, Seen};
use crate::state::{HostContext, LabSummary};

#[derive(serde::Serialize)]
struct Row {
    lab: String,
    /// `up`, `partial` or `orphaned` (see `state::found::Seen`).
    state: Seen,
    /// The records that name the lab: `journal`, `summary`, `registry NET`, ...
    found: Vec<String>,
    nodes: Option<usize>,
    links: Option<usize>,
    pid: Option<u32>,
    file: Option<String>,
}

pub fn run(host: &HostContext, json: bool) -> Result<u8, CliError> {
    let rows: Vec<Row> = found::find(host)
        .into_iter()
        .map(|f| {
            let dir = host.lab_dir(&f.lab);
            let summary = LabSummary::read(&dir.summary_path()).ok();
            Row {
                state: f.state,
                found: f.records,
                nodes: summary.as_ref().map(|s| s.nodes.len()),
                links: summary.as_ref().map(|s| s.links),
                pid: summary.as_ref().map(|s| s.pid),
                file: summary.map(|s| s.file),
                lab: f.lab,
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
    let mut table =
        super::table::Table::new(&["LAB", "STATE", "NODES>", "LINKS>", "FILE", "FOUND IN"]);
    for r in rows {
        let n = |v: Option<usize>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
        table.row([
            r.lab,
            r.state.word().to_string(),
            n(r.nodes),
            n(r.links),
            r.file.unwrap_or_default(),
            r.found.join(", "),
        ]);
    }
    table.print();
    Ok(exit::OK)
}
