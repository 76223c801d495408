//! Single processes of a running node, for `apply`: one joins the node's init (`add`,
//! then the usual start-process step, `start NAME`, through the executor) or leaves it
//! (`retire`), while every other process keeps running with its pid. The lab's lock is
//! the caller's. The pid file's grace (what `down` waits for) follows each change.
//! Errors are the message alone; callers add the lab and node.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::node::config::ProcessSpec;
use crate::node::control::{self, Request, Status};
use crate::node::{NodePaths, enter};
use crate::state::HostContext;

/// What a retire may take beyond the node's grace: the SIGKILL rounds and reaping.
const RETIRE_MARGIN: Duration = Duration::from_secs(5);

/// The node's control socket, once its init is known to run. The lab's summary is not
/// asked: during an apply it may not yet list what the new topology has.
fn socket(host: &HostContext, lab: &str, node: &str, what: &str) -> Result<PathBuf, String> {
    let paths = NodePaths::of_lab(host, lab);
    if enter::init_pid(&paths.pid_file(node)).is_none() {
        return Err(format!("cannot {what}: its init is not running"));
    }
    Ok(paths.control(node))
}

async fn ask(socket: &Path, req: &Request) -> Result<Status, String> {
    let reply = control::request_async(socket, &req.line())
        .await
        .map_err(|e| format!("its init does not answer: {e}"))?;
    control::parse_status(&reply)
}

/// Keeps the pid file's grace equal to the init's. Best effort: a grace left too long
/// only makes `down` wait longer for a node that will not stop.
fn record_grace(host: &HostContext, lab: &str, node: &str, status: &Status) {
    let pid_file = NodePaths::of_lab(host, lab).pid_file(node);
    if enter::init_grace(&pid_file).as_millis() as u64 != status.grace_ms {
        let _ = enter::set_init_grace(&pid_file, status.grace_ms);
    }
}

/// Adds a process to the node's init, not started: the start-process step for it
/// (`start NAME`) starts it and waits for its readiness, as at `up`.
pub async fn add_process(
    host: &HostContext,
    lab: &str,
    node: &str,
    spec: &ProcessSpec,
) -> Result<(), String> {
    let socket = socket(host, lab, node, &format!("add process `{}`", spec.name))?;
    let request = Request::Add(Box::new(spec.clone()));
    // Said here: the init refuses a longer line, but this side would only see the
    // connection close while it still writes.
    let len = request.line().len();
    if len > control::MAX_REQUEST {
        return Err(format!(
            "cannot add process `{}`: it is {len} bytes as JSON; the init reads at most {}",
            spec.name,
            control::MAX_REQUEST
        ));
    }
    let status = ask(&socket, &request)
        .await
        .map_err(|e| format!("cannot add process `{}`: {e}", spec.name))?;
    record_grace(host, lab, node, &status);
    Ok(())
}

/// Stops one process of the node (SIGTERM, its `stop_timeout`, SIGKILL of what is left
/// of it) and waits until the init has dropped it; the node's other processes go on.
pub async fn retire_process(
    host: &HostContext,
    lab: &str,
    node: &str,
    process: &str,
) -> Result<(), String> {
    let socket = socket(host, lab, node, &format!("retire process `{process}`"))?;
    let fail = |e: String| format!("cannot retire process `{process}`: {e}");
    let mut status = ask(&socket, &Request::Retire(process.to_string()))
        .await
        .map_err(fail)?;
    let deadline = Instant::now() + Duration::from_millis(status.grace_ms) + RETIRE_MARGIN;
    while status.processes.iter().any(|p| p.name == process) {
        if Instant::now() > deadline {
            return Err(fail(format!(
                "it did not stop within its grace period and SIGKILL ({:.1} s)",
                (Duration::from_millis(status.grace_ms) + RETIRE_MARGIN).as_secs_f64()
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        status = ask(&socket, &Request::Status).await.map_err(fail)?;
    }
    record_grace(host, lab, node, &status);
    Ok(())
}

/// [`retire_process`] for a process that may be gone already (a change cut short, then
/// taken back): a node whose init is not running, or whose init does not list it, has
/// nothing to retire.
pub async fn retire_if_present(
    host: &HostContext,
    lab: &str,
    node: &str,
    process: &str,
) -> Result<(), String> {
    let paths = NodePaths::of_lab(host, lab);
    if enter::init_pid(&paths.pid_file(node)).is_none() {
        return Ok(());
    }
    let status = ask(&paths.control(node), &Request::Status).await?;
    if !status.processes.iter().any(|p| p.name == process) {
        return Ok(());
    }
    retire_process(host, lab, node, process).await
}
