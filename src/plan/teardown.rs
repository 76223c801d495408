//! The one teardown: what `down`, the rollback of a failed `up` and `nslab plan
//! --teardown` all use, built from undo records in creation order (a plan's steps, or a
//! journal). It runs in phases: nodes stop first (their processes hold the namespaces and
//! cgroups), then objects in namespaces that survive, then the namespaces (whose deletion
//! takes every link, address and route in them), then a sweep of whatever still runs in
//! them, then cgroups and mounts.

use std::collections::HashSet;

use serde::Serialize;

use super::{Name, Undo};

/// A teardown in the order it runs; each phase in its own order.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Teardown {
    /// `stop-node`, by node name, last first: every init is signalled before any is
    /// waited for, so the order has no effect but must not be the executor's timing
    /// (node starts run concurrently, ahead of the plan's order).
    pub nodes: Vec<Undo>,
    /// Objects in namespaces that are not deleted, newest first.
    pub netlink: Vec<Undo>,
    /// `delete-netns`, in creation order (the fabric first).
    pub namespaces: Vec<Undo>,
    /// `remove-cgroup`, by node name: cgroups are independent of each other, and the
    /// order a journal holds them in is the executor's timing, not the plan's.
    pub cgroups: Vec<Undo>,
    /// The mount template, then the node directories.
    pub mounts: Vec<Undo>,
}

impl Teardown {
    /// From undo records in creation order. Whatever lives in a namespace that is itself
    /// deleted is left to that deletion.
    pub fn of(undos: Vec<Undo>) -> Teardown {
        let deleted: HashSet<Name> = undos
            .iter()
            .filter_map(|u| match u {
                Undo::DeleteNetns { netns } => Some(netns.clone()),
                _ => None,
            })
            .collect();
        let mut t = Teardown::default();
        let mut templates = Vec::new();
        let mut run_dirs = Vec::new();
        for u in undos.into_iter().rev() {
            if u.dies_with().is_some_and(|ns| deleted.contains(ns)) {
                continue;
            }
            match u {
                Undo::DeleteNetns { .. } => t.namespaces.push(u),
                Undo::StopNode { .. } => t.nodes.push(u),
                Undo::RemoveCgroup { .. } => t.cgroups.push(u),
                Undo::RemoveMountTemplate { .. } => templates.push(u),
                Undo::UnmountRunDirs { .. } => run_dirs.push(u),
                // Every node's init stops as a whole, and its processes with it.
                Undo::RetireProcess { .. } => {}
                Undo::DeleteLink { .. }
                | Undo::DeleteTunnel { .. }
                | Undo::DeleteAddress { .. }
                | Undo::DeleteRoute { .. }
                | Undo::ClearImpair { .. }
                | Undo::LeaveMgmt { .. } => t.netlink.push(u),
            }
        }
        t.namespaces.reverse();
        // The same records in any order give the same teardown (the plan's order and a
        // journal's differ when nodes' cgroups were made concurrently).
        t.cgroups.sort_by(|a, b| cgroup_node(a).cmp(cgroup_node(b)));
        t.nodes.sort_by(|a, b| stopped_node(b).cmp(stopped_node(a)));
        t.mounts = templates.into_iter().chain(run_dirs).collect();
        t
    }

    /// Every undo in the order it runs (the sweep, which has no record, sits between the
    /// namespaces and the cgroups).
    pub fn in_order(&self) -> impl Iterator<Item = &Undo> {
        self.nodes
            .iter()
            .chain(&self.netlink)
            .chain(&self.namespaces)
            .chain(&self.cgroups)
            .chain(&self.mounts)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
            + self.netlink.len()
            + self.namespaces.len()
            + self.cgroups.len()
            + self.mounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The names of the nodes to stop.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter_map(|u| match u {
                Undo::StopNode { node, .. } => Some(node.clone()),
                _ => None,
            })
            .collect()
    }

    /// The names of the nodes whose cgroups go.
    pub fn cgroup_nodes(&self) -> Vec<String> {
        self.cgroups
            .iter()
            .filter_map(|u| match u {
                Undo::RemoveCgroup { node, .. } => Some(node.clone()),
                _ => None,
            })
            .collect()
    }

    /// The namespaces to delete, in the order they go.
    pub fn netns_names(&self) -> Vec<Name> {
        self.namespaces
            .iter()
            .filter_map(|u| match u {
                Undo::DeleteNetns { netns } => Some(netns.clone()),
                _ => None,
            })
            .collect()
    }
}

/// The node a `remove-cgroup` names.
fn stopped_node(u: &Undo) -> &str {
    match u {
        Undo::StopNode { node, .. } => node,
        _ => "",
    }
}

fn cgroup_node(u: &Undo) -> &str {
    match u {
        Undo::RemoveCgroup { node, .. } => node,
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_the_order_down_runs_in() {
        let ns = |n: &str| Undo::DeleteNetns { netns: n.into() };
        let undos = vec![
            Undo::UnmountRunDirs { lab: "l".into() },
            ns("nslab.l"),
            ns("nslab.l.a"),
            Undo::DeleteLink {
                netns: "nslab.l.a".into(),
                name: "eth0".into(),
                ifindex: 2,
            },
            Undo::DeleteRoute {
                netns: "host".into(),
                dst: "10.0.0.0/8".parse().unwrap(),
                gateways: vec![],
            },
            Undo::RemoveCgroup {
                netns: "nslab.l.a".into(),
                node: "a".into(),
            },
            Undo::RemoveMountTemplate { lab: "l".into() },
            Undo::StopNode {
                netns: "nslab.l.a".into(),
                node: "a".into(),
            },
        ];
        let t = Teardown::of(undos);
        let names: Vec<&str> = t.in_order().map(Undo::name).collect();
        assert_eq!(
            names,
            [
                "stop-node",
                "delete-route",
                "delete-netns",
                "delete-netns",
                "remove-cgroup",
                "remove-mount-template",
                "unmount-run-dirs"
            ]
        );
        // The fabric goes first among the namespaces, as it was made first.
        assert_eq!(
            t.netns_names(),
            vec![Name::from("nslab.l"), "nslab.l.a".into()]
        );
        assert_eq!(t.len(), 7);
    }

    #[test]
    fn cgroups_made_concurrently_give_one_teardown_whatever_their_order() {
        let cgroup = |n: &str| Undo::RemoveCgroup {
            netns: format!("nslab.l.{n}").as_str().into(),
            node: n.into(),
        };
        // A journal of `web` then `client`, and one of `client` then `web`.
        let one = Teardown::of(vec![cgroup("web"), cgroup("client")]);
        let other = Teardown::of(vec![cgroup("client"), cgroup("web")]);
        assert_eq!(one, other);
        assert_eq!(one.cgroup_nodes(), ["client", "web"]);
    }

    #[test]
    fn nodes_started_concurrently_give_one_teardown_whatever_their_order() {
        let stop = |n: &str| Undo::StopNode {
            netns: format!("nslab.l.{n}").as_str().into(),
            node: n.into(),
        };
        // The node lane starts inits ahead of the plan's order: journals differ by run.
        let one = Teardown::of(vec![stop("a"), stop("c"), stop("b")]);
        let other = Teardown::of(vec![stop("b"), stop("a"), stop("c")]);
        assert_eq!(one, other);
        assert_eq!(one.node_names(), ["c", "b", "a"]);
    }
}
