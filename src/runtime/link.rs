//! `nslab link down|up|impair`: a link's two ends (the named interface and the far end of
//! its veth, a node's interface or a bridge port in the fabric), or one with `one_side`.
//! `BRIDGE:NODE` names the bridge's port towards the node alone: a switch port going down
//! while the node's interface stays up (it loses carrier).

use super::{LiveLab, RuntimeError, events};
use crate::apply::kernel::Kernel;
use crate::apply::netlink::NetlinkKernel;
use crate::model::Impair;
use crate::plan::{Op, Undo};

/// `node:iface` (or `bridge:node`) split in two.
pub fn parse_target(text: &str) -> Result<(&str, &str), RuntimeError> {
    match text.split_once(':') {
        Some((n, i)) if !n.is_empty() && !i.is_empty() && !i.contains(':') => Ok((n, i)),
        _ => Err(RuntimeError::Invalid(format!(
            "`{text}` is not NODE:IFACE (for example r1:eth0) or BRIDGE:NODE (the bridge's port to the node, for example s1:r1)"
        ))),
    }
}

/// One end of a veth, as the kernel knows it.
struct End {
    /// The node it belongs to, or `fabric` for a bridge port.
    node: String,
    netns: String,
    name: String,
    ifindex: u32,
    label: String,
}

fn ends(live: &LiveLab, target: &str, one_side: bool) -> Result<Vec<End>, RuntimeError> {
    let (node, iface) = parse_target(target)?;
    if let Some(port) = bridge_port(live, node, iface)? {
        return Ok(vec![port]);
    }
    let (n, i) = live.iface(node, iface)?;
    let mut out = vec![End {
        node: node.to_string(),
        netns: n.netns.clone(),
        name: i.name.clone(),
        ifindex: i.ifindex,
        label: target.to_string(),
    }];
    if !one_side && let Some(p) = &i.peer {
        out.push(End {
            node: p.label.split(':').next().unwrap_or("fabric").to_string(),
            netns: p.netns.clone(),
            name: p.name.clone(),
            ifindex: p.ifindex,
            label: p.label.clone(),
        });
    }
    Ok(out)
}

/// `BRIDGE:NODE`: the port of the bridge that goes to the node, when the first name is a
/// bridge of the lab (nodes and bridges share one name space, so this is never ambiguous).
fn bridge_port(live: &LiveLab, bridge: &str, node: &str) -> Result<Option<End>, RuntimeError> {
    let summary = live.summary()?;
    if !summary.bridges.iter().any(|b| b == bridge) {
        return Ok(None);
    }
    let label = format!("bridge {bridge}");
    // The nodes with a port on the bridge, for the error that names them.
    let on = || -> Vec<&str> {
        summary
            .nodes
            .iter()
            .filter(|n| n.interfaces.iter().any(|i| peer_is(i, &label)))
            .map(|n| n.name.as_str())
            .collect()
    };
    let n = live.node(node).map_err(|_| no_port(bridge, node, &on()))?;
    let ports: Vec<_> = n.interfaces.iter().filter(|i| peer_is(i, &label)).collect();
    match ports.as_slice() {
        [i] => {
            let p = i.peer.as_ref().expect("filtered on the peer");
            Ok(Some(End {
                node: "fabric".into(),
                netns: p.netns.clone(),
                name: p.name.clone(),
                ifindex: p.ifindex,
                label: format!("{label} port {} (to {node}:{})", p.name, i.name),
            }))
        }
        [] => Err(no_port(bridge, node, &on())),
        many => Err(RuntimeError::Invalid(format!(
            "node `{node}` has {} links to bridge `{bridge}` ({}); `{bridge}:{node}` does not say which port: set the port down with `NODE:IFACE --one-side` on the node's end instead, or give the node one link to the bridge",
            many.len(),
            many.iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn peer_is(i: &crate::state::IfaceSummary, label: &str) -> bool {
    i.peer.as_ref().is_some_and(|p| p.label == label)
}

fn no_port(bridge: &str, node: &str, on: &[&str]) -> RuntimeError {
    let hint = match on {
        [] => format!("no node is linked to bridge `{bridge}`"),
        _ => format!(
            "BRIDGE:NODE names the bridge's port to a node; the nodes on `{bridge}` are: {}",
            on.join(", ")
        ),
    };
    RuntimeError::Invalid(format!("bridge `{bridge}` has no port to `{node}`; {hint}"))
}

fn failed(
    live: &LiveLab,
    e: &End,
    operation: &str,
    source: crate::apply::KernelError,
) -> RuntimeError {
    let node = if e.label.starts_with("bridge ") || e.node == "fabric" {
        "fabric"
    } else {
        &e.node
    };
    RuntimeError::kernel(
        &live.lab,
        node,
        format!("link {}", e.name),
        operation,
        source,
    )
}

fn which(ends: &[End]) -> String {
    match ends {
        [_, peer] => format!("both ends (and {})", peer.label),
        [port] if port.node == "fabric" => format!("{} only", port.label),
        _ => "this end only".into(),
    }
}

/// Sets a link down or up, both ends unless `one_side`, and records it.
pub async fn set_link(
    kernel: &NetlinkKernel,
    live: &LiveLab,
    target: &str,
    up: bool,
    one_side: bool,
) -> Result<events::Event, RuntimeError> {
    let ends = ends(live, target, one_side)?;
    for e in &ends {
        let (netns, name, ifindex) = (e.netns.as_str().into(), e.name.as_str().into(), e.ifindex);
        let op = if up {
            Op::SetLinkUp {
                netns,
                name,
                ifindex,
            }
        } else {
            Op::SetLinkDown {
                netns,
                name,
                ifindex,
            }
        };
        kernel
            .apply(&op)
            .await
            .map_err(|s| failed(live, e, op.name(), s))?;
    }
    if up {
        restore_addresses_and_routes(kernel, live, &ends).await?;
    }
    let action = if up { "link-up" } else { "link-down" };
    Ok(events::record(&live.dir, action, target, &which(&ends))?)
}

/// Setting an interface down makes the kernel drop the routes through it, and (by default)
/// its IPv6 addresses; setting it up brings back neither. So the lab's own steps for them
/// run again from the stored plan, for the nodes at the link's ends: addresses on the
/// interface, and the node's routes (those that survived answer EEXIST, which is fine).
async fn restore_addresses_and_routes(
    kernel: &NetlinkKernel,
    live: &LiveLab,
    ends: &[End],
) -> Result<(), RuntimeError> {
    let nodes: Vec<&End> = ends
        .iter()
        .filter(|e| !e.label.starts_with("bridge "))
        .collect();
    if nodes.is_empty() {
        return Ok(());
    }
    let Some(plan) = live.stored_plan() else {
        return Ok(());
    };
    // Addresses first: routes need their gateways on a connected subnet.
    for pass in [true, false] {
        for step in &plan.steps {
            let hit = match &step.op {
                Op::AddAddress { netns, ifindex, .. } if pass => nodes
                    .iter()
                    .find(|e| **netns == *e.netns && *ifindex == e.ifindex),
                Op::AddRoute { netns, .. } if !pass => nodes.iter().find(|e| **netns == *e.netns),
                _ => None,
            };
            let Some(e) = hit else { continue };
            match kernel.apply(&step.op).await {
                Err(err) if err.errno() != Some(libc::EEXIST) => {
                    return Err(failed(live, e, step.op.name(), err));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Checks an impairment given on the command line the way the topology reader does.
pub fn validate_impair(i: &Impair) -> Result<(), RuntimeError> {
    use crate::model::ImpairProblem;
    match i.problems().first() {
        None => Ok(()),
        Some(ImpairProblem::Empty) => Err(RuntimeError::Invalid(
            "the impairment sets nothing: give at least one of --delay, --jitter, --loss, --duplicate, --corrupt, --reorder, --rate, or --clear".into(),
        )),
        Some(ImpairProblem::JitterWithoutDelay) => Err(RuntimeError::Invalid(
            "--jitter needs a --delay to vary around".into(),
        )),
        Some(ImpairProblem::ReorderWithoutDelay) => Err(RuntimeError::Invalid(
            "--reorder needs a --delay: packets are reordered by sending some without it".into(),
        )),
    }
}

/// Replaces the egress impairment of a link's ends (`None` clears it), and records it.
pub async fn impair(
    kernel: &NetlinkKernel,
    live: &LiveLab,
    target: &str,
    impairment: Option<Impair>,
    one_side: bool,
) -> Result<events::Event, RuntimeError> {
    if let Some(i) = &impairment {
        validate_impair(i)?;
    }
    let ends = ends(live, target, one_side)?;
    for e in &ends {
        let clear = Undo::ClearImpair {
            netns: e.netns.as_str().into(),
            ifindex: e.ifindex,
        };
        let Some(i) = &impairment else {
            kernel
                .undo(&clear)
                .await
                .map_err(|s| failed(live, e, "clear-impair", s))?;
            continue;
        };
        let op = Op::SetImpair {
            netns: e.netns.as_str().into(),
            name: e.name.as_str().into(),
            ifindex: e.ifindex,
            impair: Box::new(i.clone()),
        };
        // Replace in place, so a refused impairment (no netem) leaves the old one; a qdisc
        // of another kind cannot be replaced in place (EINVAL): clear it, then set.
        match kernel.apply(&op).await {
            Ok(()) => {}
            Err(err) if err.errno() == Some(libc::EINVAL) => {
                kernel
                    .undo(&clear)
                    .await
                    .map_err(|s| failed(live, e, "clear-impair", s))?;
                kernel
                    .apply(&op)
                    .await
                    .map_err(|s| failed(live, e, op.name(), s))?;
            }
            Err(err) => return Err(failed(live, e, op.name(), err)),
        }
    }
    let (action, what) = match &impairment {
        Some(i) => ("impair", i.to_string()),
        None => ("impair-clear", String::new()),
    };
    let detail = if what.is_empty() {
        which(&ends)
    } else {
        format!("{what}; {}", which(&ends))
    };
    Ok(events::record(&live.dir, action, target, &detail)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_rates_read_the_way_users_write_them() {
        assert_eq!(parse_target("r1:eth0").unwrap(), ("r1", "eth0"));
        for bad in ["r1", ":eth0", "r1:", "r1:eth0:x"] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
        use crate::model::impair::rate_text;
        assert_eq!(rate_text(10_000_000), "10mbit");
        assert_eq!(rate_text(1_500_000_000), "1.5gbit");
        assert_eq!(rate_text(512_000), "512kbit");
        assert_eq!(rate_text(300), "300bit");
    }

    #[test]
    fn impairments_from_the_command_line_are_checked_like_the_yaml() {
        assert!(validate_impair(&Impair::default()).is_err());
        let jitter_alone = Impair {
            jitter: Some(std::time::Duration::from_millis(5)),
            ..Default::default()
        };
        assert!(validate_impair(&jitter_alone).is_err());
        let rate = Impair {
            rate: Some(1_000_000),
            ..Default::default()
        };
        assert!(validate_impair(&rate).is_ok());
        assert_eq!(rate.to_string(), "rate 1mbit");
        let loss = Impair {
            delay: Some(std::time::Duration::from_millis(20)),
            loss: Some(0.07),
            duplicate: Some(0.00125),
            ..Default::default()
        };
        assert_eq!(loss.to_string(), "delay 20ms, loss 7%, duplicate 0.125%");
    }
}
