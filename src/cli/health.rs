//! The health of a node's init and processes, for `nslab status`: a lab whose links are
//! all up is still degraded when an init was killed or a process keeps crashing.

use crate::node::control::{self, ProcStatus};
use crate::node::{NodePaths, enter};

/// What is wrong with `node`'s init and processes, one line each; empty when healthy or
/// when the node has no init (it runs nothing).
pub fn problems(paths: &NodePaths, node: &str) -> Vec<String> {
    by_process(paths, node)
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

/// [`problems`], each with the process it is about (none for the init itself), so a
/// report can add the end of that process's log.
pub fn by_process(paths: &NodePaths, node: &str) -> Vec<(Option<String>, String)> {
    let pid_file = paths.pid_file(node);
    if !pid_file.exists() {
        return Vec::new();
    }
    if enter::init_pid(&pid_file).is_none() {
        let dead = "its init is not running (killed?): its processes and namespaces are gone; \
             `nslab down` and `nslab up` bring it back";
        return vec![(None, dead.to_string())];
    }
    let status = control::request(&paths.control(node), "status")
        .map_err(|e| e.to_string())
        .and_then(|r| control::parse_status(&r));
    match status {
        Ok(s) => s
            .processes
            .iter()
            .filter_map(|p| Some((Some(p.name.clone()), problem(p)?)))
            .collect(),
        Err(e) => vec![(None, format!("its init does not answer: {e}"))],
    }
}

/// What is wrong with one process, if anything. A process stopped on request
/// (`nslab node stop`) or one that exited 0 (a launcher) is fine.
fn problem(p: &ProcStatus) -> Option<String> {
    let name = &p.name;
    match p.state.as_str() {
        "backoff" => Some(format!(
            "process `{name}` is crash-looping: exited with status {} and restarted {} time{}; `nslab logs` shows why",
            p.exit.unwrap_or(-1),
            p.restarts,
            if p.restarts == 1 { "" } else { "s" }
        )),
        "failed" => Some(format!(
            "process `{name}` failed: {}",
            p.error.as_deref().unwrap_or("it could not start")
        )),
        "exited" if p.exit.is_some_and(|c| c != 0) => Some(format!(
            "process `{name}` exited with status {}",
            p.exit.unwrap_or(-1)
        )),
        _ if p.ready_timed_out => Some(format!("process `{name}` never became ready")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(state: &str, exit: Option<i32>, restarts: u32) -> ProcStatus {
        ProcStatus {
            name: "p".into(),
            pid: None,
            state: state.into(),
            restarts,
            exit,
            ready: false,
            ready_timed_out: false,
            failed_probes: 0,
            error: None,
            uptime_ms: None,
        }
    }

    #[test]
    fn crash_loops_failures_and_bad_exits_are_problems_and_the_rest_is_not() {
        let looping = problem(&proc("backoff", Some(1), 3)).unwrap();
        assert!(looping.contains("crash-looping"), "{looping}");
        assert!(looping.contains("restarted 3 times"), "{looping}");
        assert!(problem(&proc("failed", None, 0)).is_some());
        assert!(problem(&proc("exited", Some(2), 0)).is_some());
        assert!(problem(&proc("exited", Some(0), 0)).is_none());
        assert!(problem(&proc("running", None, 2)).is_none());
        assert!(problem(&proc("stopped", Some(143), 0)).is_none());
    }
}
