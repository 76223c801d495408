//! `nslab ps [NODE]`: each node's processes, from its init.

use super::{CliError, exit, lab_arg};
use crate::runtime::{Access, Session};

pub fn run(
    host: &crate::state::HostContext,
    lab: Option<&str>,
    node: Option<&str>,
    json: bool,
) -> Result<u8, CliError> {
    let lab = lab_arg(host, None, lab)?;
    let mut all = Vec::new();
    let mut failed = false;
    for (name, status) in Session::open(host, &lab, Access::Read)?.processes(node)? {
        match status {
            Ok(s) => all.push(s),
            Err(e) => {
                failed = true;
                crate::errln!("nslab: node `{name}`: cannot reach its init: {e}");
            }
        }
    }
    if json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&all).expect("status serializes")
        );
    } else {
        let mut table = super::table::Table::new(&[
            "NODE",
            "PROCESS",
            "PID>",
            "STATE",
            "RESTARTS>",
            "READY",
            "UPTIME>",
        ]);
        for s in &all {
            for p in &s.processes {
                let pid = p.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
                let state = match (p.state.as_str(), p.exit) {
                    ("exited", Some(code)) => format!("exit {code}"),
                    (st, _) => st.to_string(),
                };
                let ready = if p.ready {
                    "yes"
                } else if p.ready_timed_out {
                    "timeout"
                } else {
                    "no"
                };
                let up = p
                    .uptime_ms
                    .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
                    .unwrap_or_else(|| "-".into());
                table.row([
                    s.node.clone(),
                    p.name.clone(),
                    pid,
                    state,
                    p.restarts.to_string(),
                    ready.to_string(),
                    up,
                ]);
            }
        }
        table.print();
    }
    Ok(if failed { exit::FAILED } else { exit::OK })
}
