//! What a rootless lab cannot have, found at compile time and located in the file, so
//! `up` refuses it before any namespace exists. Pure: the topology in, errors out.

use crate::diag::Diagnostic;
use crate::model::Topology;

/// Every part of `t` that needs real root. `sub_ids`: the user has a subordinate id range
/// nslab maps (see [`super::holder::sub_ids`]), so ids other than its own exist too.
pub fn check(t: &Topology, sub_ids: bool) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for n in &t.nodes {
        if !n.limits.is_empty() {
            out.push(
                Diagnostic::error(
                    n.limits_span,
                    format!(
                        "node `{}`: `limits:` need a cgroup of the node's own, which a rootless lab cannot make",
                        n.name
                    ),
                )
                .with_hint("run the lab as root, or remove `limits:` (delegated cgroups are not used yet)"),
            );
        }
        for d in &n.devices {
            if let crate::model::DeviceKind::Macvlan { parent, .. } = &d.kind {
                out.push(
                    Diagnostic::error(
                        Some(d.span),
                        format!(
                            "node `{}`: the macvlan `{}` on the host's `{parent}` needs root: a rootless lab has no access to the host's interfaces",
                            n.name, d.name
                        ),
                    )
                    .with_hint("run the lab as root, or join the node to the lab through a link between nodes"),
                );
            }
        }
        for p in n.private.iter().filter(|_| !sub_ids) {
            let Some(owner) = p.owner.as_deref().filter(|o| !is_root(o)) else {
                continue;
            };
            out.push(
                Diagnostic::error(
                    Some(p.span),
                    format!(
                        "node `{}`: private directory `{}` is owned by `{owner}`, but a rootless lab maps only your own uid (as root)",
                        n.name, p.path
                    ),
                )
                .with_hint(SUB_IDS_HINT),
            );
        }
        for p in n.processes.iter().filter(|_| !sub_ids) {
            let Some(user) = p.user.as_deref().filter(|u| !is_root(u)) else {
                continue;
            };
            out.push(
                Diagnostic::error(
                    Some(p.user_span),
                    format!(
                        "node `{}`: process `{}` runs as `{user}`, but a rootless lab maps only your own uid (as root)",
                        n.name, p.name
                    ),
                )
                .with_hint(SUB_IDS_HINT),
            );
        }
    }
    out
}

/// What to add so that other users exist in a rootless lab.
const SUB_IDS_HINT: &str = "give your user a subordinate id range: a line `USER:100000:65536` (USER your login name) in both /etc/subuid and /etc/subgid, and newuidmap/newgidmap installed (Debian package uidmap); or drop `owner:`/`user:`, or run the lab as root";

/// `root`, `0`, `root:root`, `0:0` and the like.
fn is_root(owner: &str) -> bool {
    owner.split(':').all(|part| part == "root" || part == "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(yaml: &str) -> Topology {
        crate::compile_str(yaml, "t.yaml", std::path::Path::new("/"))
            .expect("compiles")
            .topology
    }

    #[test]
    fn a_macvlan_is_a_located_error_and_dummies_are_not() {
        let t = compiled(
            "name: rl\nnodes:\n  a:\n    interfaces: { lo1: { kind: dummy } }\nlinks:\n  - [a:eth1, { macvlan: enp0s3 }]\n",
        );
        let out = check(&t, true);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            out[0]
                .message
                .contains("macvlan `eth1` on the host's `enp0s3` needs root")
        );
        assert_eq!(out[0].span.map(|s| (s.line, s.col)), Some((6, 8)));
    }

    #[test]
    fn limits_and_foreign_owners_are_located_errors() {
        let t = compiled(
            "name: rl\nnodes:\n  a:\n    limits: { pids: 64 }\n  b:\n    private: [{ path: /var/x, owner: frr }]\n  c:\n    private: [{ path: /var/y, owner: root }]\n    processes: [{ name: d, cmd: \"sleep 1\", user: daemon }]\n",
        );
        let found = check(&t, false);
        let lines: Vec<u32> = found
            .iter()
            .map(|d| d.span.expect("located").line)
            .collect();
        assert_eq!(lines, vec![4, 6, 9], "{found:?}");
        assert!(found[0].message.contains("`limits:`"));
        assert!(found[1].message.contains("owned by `frr`"));
        assert!(found[2].message.contains("runs as `daemon`"));
        assert!(found.iter().all(|d| d.hint.is_some()));
        // With a subordinate range, other owners exist in the lab's user namespace.
        let with_range = check(&t, true);
        assert_eq!(with_range.len(), 1, "{with_range:?}");
        assert!(with_range[0].message.contains("`limits:`"));
    }

    #[test]
    fn a_plain_lab_needs_nothing_of_root() {
        let t = compiled("name: rl\nnodes: { a: {}, b: {} }\nlinks: [[a:eth1, b:eth1]]\n");
        assert!(check(&t, false).is_empty());
    }

    #[test]
    fn root_owners_are_root_however_written() {
        assert!(is_root("root") && is_root("0:0") && is_root("root:0"));
        assert!(!is_root("frr") && !is_root("root:frr"));
    }
}
