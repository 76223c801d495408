//! What a rootless lab cannot have, found at compile time and located in the file, so
//! `up` refuses it before any namespace exists. Pure: the topology in, errors out.

use crate::diag::Diagnostic;
use crate::model::Topology;

/// Every part of `t` that needs real root. `sub_ids`: the user has a subordinate id range
/// nslab maps (see [`super::holder::sub_ids`]), so ids other than its own exist too.
pub fn check(t: &Topology, sub_ids: bool) -> Vec<Diagnostic> {
    let mut out = host_side(t);
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

/// Host links and the management network: a rootless lab's own namespace is not the
/// host's, so what it made there would reach nothing the user can use, and the host's
/// namespace needs real root.
fn host_side(t: &Topology) -> Vec<Diagnostic> {
    let hint = "run the lab as root, or remove the host link (a rootless lab cannot touch the host's network)";
    let mut out: Vec<Diagnostic> = t
        .host_links
        .iter()
        .filter(|h| !h.mgmt)
        .map(|h| {
            Diagnostic::error(
                Some(h.span),
                format!(
                    "host link {}:{} -> `{}`: a rootless lab cannot make interfaces in the host's namespace",
                    t.nodes[h.node].name, h.iface, h.host_iface
                ),
            )
            .with_hint(hint)
        })
        .collect();
    if let Some(m) = &t.mgmt {
        out.push(
            Diagnostic::error(
                Some(m.span),
                format!(
                    "`mgmt`: a rootless lab cannot make the bridge `{}` on the host",
                    m.bridge
                ),
            )
            .with_hint("run the lab as root, or remove `mgmt:` (`nslab exec` and `nslab shell` reach nodes without it)"),
        );
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
    fn host_links_and_the_management_network_are_located_errors() {
        let t = compiled(
            "name: rl\nmgmt: { subnet: 172.31.9.0/24 }\nnodes: { a: {} }\nlinks:\n  - [a:eth1, \"host:rl-up\"]\n",
        );
        let found = check(&t, false);
        let lines: Vec<u32> = found
            .iter()
            .map(|d| d.span.expect("located").line)
            .collect();
        assert_eq!(lines, vec![5, 2], "{found:?}");
        assert!(found[0].message.contains("`rl-up`"), "{found:?}");
        assert!(found[1].message.contains("bridge `br-rl`"), "{found:?}");
    }

    #[test]
    fn root_owners_are_root_however_written() {
        assert!(is_root("root") && is_root("0:0") && is_root("root:0"));
        assert!(!is_root("frr") && !is_root("root:frr"));
    }
}
