//! Scenario steps in `tests:`: the same runtime operations as `nslab link`, `nslab node`
//! and friends, done once, in order, between checks, and recorded in the event log. The
//! checks after a step poll until the network has converged to what they expect.

use super::Context;
use crate::model::Action;
use crate::runtime::{Access, Session};

/// Does one step; the error says what failed, for the report.
pub async fn perform(ctx: &Context<'_>, action: &Action) -> Result<(), String> {
    let lab = &ctx.topology.lab;
    let node_name = |n: usize| ctx.topology.nodes[n].name.as_str();
    if let Action::Sleep { duration } = action {
        tokio::time::sleep(*duration).await;
        return Ok(());
    }
    // The same lock as the commands typed by hand, so the two never interleave.
    let s =
        Session::with_kernel(ctx.kernel, lab, Access::ChangeQuietly).map_err(|e| e.to_string())?;
    let r = match action {
        Action::Link {
            node,
            iface,
            bridge,
            up,
            one_side,
        } => {
            let target = target(node_name(*node), iface, bridge);
            s.set_link(&target, *up, *one_side).await.map(drop)
        }
        Action::Impair {
            node,
            iface,
            bridge,
            impair,
            one_side,
        } => {
            let target = target(node_name(*node), iface, bridge);
            let imp = impair.as_deref().cloned();
            s.impair(&target, imp, *one_side).await.map(drop)
        }
        Action::Node { node, action } => s.node_action(node_name(*node), *action).await.map(drop),
        Action::Sleep { .. } => Ok(()),
    };
    r.map_err(|e| e.to_string())
}

/// `node:iface`, or `bridge:node` for the bridge's port to the node.
fn target(node: &str, iface: &str, bridge: &Option<String>) -> String {
    match bridge {
        Some(b) => format!("{b}:{node}"),
        None => format!("{node}:{iface}"),
    }
}
