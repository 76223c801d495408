//! `nslab node stop|start|restart`: a node's processes go away and come back while its
//! namespaces and links stay, as when a router's daemons crash and restart. Stopping asks
//! the node's init to halt its processes; starting runs the node's own start-process
//! steps from the lab's plan, in their dependency order, through the executor.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{LiveLab, RuntimeError, events};
use crate::apply::executor::{self, ExecError};
use crate::apply::netlink::NetlinkKernel;
use crate::model::kinds::NodeAction;
use crate::node::control;
use crate::node::enter;
use crate::plan::{Op, Plan, Step};

fn node_error(live: &LiveLab, node: &str, msg: impl Into<String>) -> RuntimeError {
    RuntimeError::Node {
        lab: live.lab.clone(),
        node: node.to_string(),
        msg: msg.into(),
    }
}

/// The node's control socket, once its init is known to run.
fn control_socket(live: &LiveLab, node: &str) -> Result<std::path::PathBuf, RuntimeError> {
    live.node(node)?;
    let paths = live.node_paths();
    if enter::init_pid(&paths.pid_file(node)).is_none() {
        return Err(node_error(
            live,
            node,
            if paths.pid_file(node).exists() {
                "its init is not running (it was killed); run `nslab down` and bring the lab up again"
            } else {
                "it has no processes (it runs no init)"
            },
        ));
    }
    Ok(paths.control(node))
}

async fn status(
    live: &LiveLab,
    node: &str,
    socket: &Path,
    request: &str,
) -> Result<control::Status, RuntimeError> {
    let reply = control::request_async(socket, request)
        .await
        .map_err(|e| node_error(live, node, format!("its init does not answer: {e}")))?;
    control::parse_status(&reply).map_err(|e| node_error(live, node, e))
}

/// `node stop|start|restart`, for the CLI and scenario steps alike: the events, in order.
pub async fn node_action(
    kernel: &NetlinkKernel,
    live: &LiveLab,
    node: &str,
    action: NodeAction,
) -> Result<Vec<events::Event>, RuntimeError> {
    let mut done = Vec::new();
    if action != NodeAction::Start {
        done.push(stop_node(live, node).await?);
    }
    if action != NodeAction::Stop {
        done.push(start_node(kernel, live, node).await?);
    }
    Ok(done)
}

/// Stops every process of the node (SIGTERM, its grace period, SIGKILL) and waits until
/// they are gone; the node's namespaces and links stay.
pub async fn stop_node(live: &LiveLab, node: &str) -> Result<events::Event, RuntimeError> {
    let socket = control_socket(live, node)?;
    let grace = enter::init_grace(&live.node_paths().pid_file(node));
    let mut s = status(live, node, &socket, "halt").await?;
    let count = s.processes.iter().filter(|p| p.pid.is_some()).count();
    // The init's own grace follows processes added since `up`.
    let grace = grace.max(Duration::from_millis(s.grace_ms));
    let deadline = Instant::now() + grace + Duration::from_secs(5);
    while s.halting {
        if Instant::now() > deadline {
            return Err(node_error(
                live,
                node,
                "its processes did not stop within their grace period and SIGKILL",
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        s = status(live, node, &socket, "status").await?;
    }
    Ok(events::record(
        &live.dir,
        "node-stop",
        node,
        &format!("{count} process(es) stopped"),
    )?)
}

/// The node's start-process and exec steps from the lab's plan, renumbered, with the
/// dependencies among them (other nodes' processes are running already).
fn start_plan(live: &LiveLab, node: &str) -> Option<Plan> {
    let full = live.stored_plan()?;
    let mut renumber: HashMap<usize, usize> = HashMap::new();
    let mut steps = Vec::new();
    for s in &full.steps {
        let mine = match &s.op {
            Op::StartProcess { node: n, .. } | Op::RunExec { node: n, .. } => n == node,
            _ => false,
        };
        if mine {
            let id = steps.len() + 1;
            renumber.insert(s.id, id);
            steps.push(Step {
                id,
                op: s.op.clone(),
                deps: s
                    .deps
                    .iter()
                    .filter_map(|d| renumber.get(d).copied())
                    .collect(),
            });
        }
    }
    Some(Plan {
        lab: live.lab.clone(),
        steps,
    })
}

/// The start steps as the init's table has them now (`table`, its process names): a
/// process retired since the plan was stored is left out, and what depended on it keeps
/// that step's own dependencies; one added since goes after the plan's processes. A
/// successful `apply` rewrites the stored plan; this keeps `node start` true after one
/// that stopped half way.
fn follow_table(plan: Plan, netns: &str, node: &str, table: &[String]) -> Plan {
    // Each step of the stored plan, as the kept steps it stands for.
    let mut stands_for: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut in_plan: Vec<&str> = Vec::new();
    let mut kept: Vec<Step> = Vec::new();
    for s in &plan.steps {
        let mut deps: Vec<usize> = s
            .deps
            .iter()
            .flat_map(|d| stands_for.get(d).cloned().unwrap_or_default())
            .collect();
        deps.sort_unstable();
        deps.dedup();
        let gone = match &s.op {
            Op::StartProcess { process, .. } => {
                in_plan.push(process);
                !table.contains(process)
            }
            _ => false,
        };
        if gone {
            stands_for.insert(s.id, deps);
        } else {
            stands_for.insert(s.id, vec![s.id]);
            kept.push(Step {
                id: s.id,
                op: s.op.clone(),
                deps,
            });
        }
    }
    let renumber: HashMap<usize, usize> = kept
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id, i + 1))
        .collect();
    let mut steps: Vec<Step> = kept
        .into_iter()
        .map(|s| Step {
            id: renumber[&s.id],
            deps: s.deps.iter().map(|d| renumber[d]).collect(),
            op: s.op,
        })
        .collect();
    let starts: Vec<usize> = steps
        .iter()
        .filter(|s| matches!(s.op, Op::StartProcess { .. }))
        .map(|s| s.id)
        .collect();
    for name in table.iter().filter(|n| !in_plan.contains(&n.as_str())) {
        steps.push(Step {
            id: steps.len() + 1,
            op: Op::StartProcess {
                netns: netns.into(),
                node: node.to_string(),
                process: name.clone(),
            },
            deps: starts.clone(),
        });
    }
    Plan {
        lab: plan.lab,
        steps,
    }
}

/// Starts the node's processes again, each after what it depends on is ready, and waits
/// until all are ready.
pub async fn start_node(
    kernel: &NetlinkKernel,
    live: &LiveLab,
    node: &str,
) -> Result<events::Event, RuntimeError> {
    let socket = control_socket(live, node)?;
    let netns = live.node(node)?.netns.clone();
    // Nothing to do when every process runs (or is a one-shot that completed): its exec
    // commands do not run again either.
    let now = status(live, node, &socket, "status").await?;
    let down = now
        .processes
        .iter()
        .filter(|p| p.pid.is_none() && !(p.state == "exited" && p.exit == Some(0)))
        .count();
    if down == 0 {
        return Ok(events::record(
            &live.dir,
            "node-start",
            node,
            "already running; nothing started",
        )?);
    }
    let table: Vec<String> = now.processes.iter().map(|p| p.name.clone()).collect();
    let plan = match start_plan(live, node) {
        Some(p) => follow_table(p, &netns, node, &table),
        // No stored topology (a lab from the Rust API): the init's order.
        None => Plan {
            lab: live.lab.clone(),
            steps: now
                .processes
                .iter()
                .enumerate()
                .map(|(i, p)| Step {
                    id: i + 1,
                    op: Op::StartProcess {
                        netns: netns.as_str().into(),
                        node: node.to_string(),
                        process: p.name.clone(),
                    },
                    deps: if i == 0 { vec![] } else { vec![i] },
                })
                .collect(),
        },
    };
    let opts = executor::Options {
        jobs: 8,
        fail_at: None,
        step_delay: None,
        progress: None,
    };
    let mut journal = |_: executor::Entry| Ok(());
    match executor::execute(&plan, kernel, &mut journal, &opts, crate::apply::never()).await {
        Ok(()) => {}
        Err(ExecError::Step { step, error }) => {
            return Err(RuntimeError::kernel(
                &live.lab,
                node,
                crate::apply::error::object_of(&step.op),
                &step.op.name().replace('-', " "),
                error,
            ));
        }
        Err(e) => return Err(node_error(live, node, e.to_string())),
    }
    Ok(events::record(
        &live.dir,
        "node-start",
        node,
        &format!("{down} process(es) started"),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(id: usize, process: &str, deps: &[usize]) -> Step {
        Step {
            id,
            op: Op::StartProcess {
                netns: "nslab.l.a".into(),
                node: "a".into(),
                process: process.into(),
            },
            deps: deps.to_vec(),
        }
    }

    fn shape(plan: &Plan) -> Vec<(usize, String, Vec<usize>)> {
        plan.steps
            .iter()
            .map(|s| {
                let what = match &s.op {
                    Op::StartProcess { process, .. } => process.clone(),
                    other => other.name().to_string(),
                };
                (s.id, what, s.deps.clone())
            })
            .collect()
    }

    #[test]
    fn the_start_plan_follows_processes_added_and_retired_since_it_was_stored() {
        // web depends on db, which depends on cfg; db was retired, cache added.
        let plan = Plan {
            lab: "l".into(),
            steps: vec![
                start(1, "cfg", &[]),
                start(2, "db", &[1]),
                start(3, "web", &[2]),
            ],
        };
        let table = ["cfg", "web", "cache"].map(String::from);
        let got = follow_table(plan.clone(), "nslab.l.a", "a", &table);
        assert_eq!(
            shape(&got),
            vec![
                (1, "cfg".into(), vec![]),
                (2, "web".into(), vec![1]),
                (3, "cache".into(), vec![1, 2]),
            ]
        );
        // Nothing changed: the stored plan as it is.
        let same = follow_table(
            plan.clone(),
            "nslab.l.a",
            "a",
            &["cfg", "db", "web"].map(String::from),
        );
        assert_eq!(shape(&same), shape(&plan));
    }
}
