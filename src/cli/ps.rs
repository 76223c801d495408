//! `nslab ps [NODE]`: each node's processes, from its init.

use super::{CliError, exit, lab_arg};
use crate::node::control;
use crate::runtime::LiveLab;

pub fn run(
    host: &crate::state::HostContext,
    lab: Option<&str>,
    node: Option<&str>,
    json: bool,
) -> Result<u8, CliError> {
    let lab = lab_arg(host, None, lab)?;
    let live = LiveLab::open(host, &lab)?;
    let summary = &live.summary;
    if let Some(n) = node {
        live.node(n)?;
    }
    let paths = live.node_paths();
    let mut all = Vec::new();
    let mut failed = false;
    for n in summary
        .nodes
        .iter()
        .filter(|n| node.is_none_or(|x| x == n.name))
    {
        let sock = paths.control(&n.name);
        if !sock.exists() {
            continue; // a node without an init runs nothing
        }
        match control::request(&sock, "status")
            .map_err(|e| e.to_string())
            .and_then(|r| control::parse_status(&r))
        {
            Ok(s) => all.push(s),
            Err(e) => {
                failed = true;
                crate::errln!("nslab: node `{}`: cannot reach its init: {e}", n.name);
            }
        }
    }
    if json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&all).expect("status serializes")
        );
    } else {
        crate::outln!(
            "{:<12} {:<16} {:>7} {:<8} {:>8} {:<5} {:>9}",
            "NODE",
            "PROCESS",
            "PID",
            "STATE",
            "RESTARTS",
            "READY",
            "UPTIME"
        );
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
                crate::outln!(
                    "{:<12} {:<16} {pid:>7} {state:<8} {:>8} {ready:<5} {up:>9}",
                    s.node,
                    p.name,
                    p.restarts
                );
            }
        }
    }
    Ok(if failed { exit::FAILED } else { exit::OK })
}
