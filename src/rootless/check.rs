//! What a rootless lab cannot have, found before `up` and located in the file, so `up`
//! refuses it before any namespace exists. [`check_with`] is pure; [`check`] adds what
//! the host says about the user's cgroups.

use crate::diag::Diagnostic;
use crate::model::Topology;

/// Every part of `t` that needs real root, or a cgroup this user has not been delegated.
/// `only_own`: why only the user's own uid is mapped (no subordinate id range nslab maps,
/// see [`super::holder::sub_ids`]); `None` when ids other than its own exist too.
pub fn check(t: &Topology, only_own: Option<&str>) -> Vec<Diagnostic> {
    let mut out = check_lab(t, only_own);
    out.extend(process_attrs(t, &|res| {
        let own = crate::sys::attrs::get_rlimit(res);
        own.rlim_max.min(crate::node::fresh::default_hard(res))
    }));
    out
}

/// Process attributes a rootless lab cannot give: the kernel takes a nice value or an
/// `oom_score_adj` below 0, the realtime I/O class, and a hard limit above the one the
/// node starts with (`hard(resource)`: the default, or the caller's own where lower) only
/// from a holder of `CAP_SYS_NICE` or `CAP_SYS_RESOURCE` in the host's user namespace.
pub fn process_attrs(t: &Topology, hard: &dyn Fn(u32) -> u64) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for n in &t.nodes {
        for p in &n.processes {
            let a = &p.attrs;
            let mut refused: Vec<String> = Vec::new();
            if let Some(v) = a.nice.filter(|v| *v < 0) {
                refused.push(format!("`nice: {v}` (CAP_SYS_NICE)"));
            }
            if let Some(v) = a.oom_score_adj.filter(|v| *v < 0) {
                refused.push(format!("`oom_score_adj: {v}` (CAP_SYS_RESOURCE)"));
            }
            if a.ionice
                .is_some_and(|i| i.class == crate::attrs::IoClass::Realtime)
            {
                refused.push("`ionice` class realtime (CAP_SYS_NICE)".into());
            }
            for (res, l) in &a.rlimits {
                let max = hard(res.raw());
                if l.hard.0 > max {
                    refused.push(format!(
                        "`rlimits.{}` hard {} above {} (CAP_SYS_RESOURCE)",
                        res.name(),
                        l.hard,
                        crate::attrs::Bound(max)
                    ));
                }
            }
            if refused.is_empty() {
                continue;
            }
            out.push(
                Diagnostic::error(
                    Some(p.attr_spans.first.unwrap_or(p.span)),
                    format!(
                        "node `{}`: process `{}` asks for {}, which a rootless lab cannot give: the kernel takes it only from root in the host's user namespace",
                        n.name,
                        p.name,
                        refused.join(", ")
                    ),
                )
                .with_hint("run the lab as root, or ask for less: a rootless lab may lower limits, raise nice and oom_score_adj, pick CPUs and the best-effort or idle I/O class"),
            );
        }
    }
    out
}

/// [`check`] without the process attributes, which depend on the caller's limits.
fn check_lab(t: &Topology, only_own: Option<&str>) -> Vec<Diagnostic> {
    // Asked once per controller, and only of a lab that has limits.
    let limited = t.nodes.iter().any(|n| !n.limits.is_empty());
    let verdicts: Vec<(&str, Result<(), String>)> = CONTROLLERS
        .iter()
        .filter(|_| limited)
        .map(|c| (*c, crate::node::cgroup::delegated(c)))
        .collect();
    let delegated = |c: &str| {
        verdicts
            .iter()
            .find(|(k, _)| *k == c)
            .map_or(Ok(()), |(_, v)| v.clone())
    };
    check_with(t, only_own, &delegated)
}

const CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

/// [`check`], with `delegated(controller)` saying whether the user may make groups of
/// that controller (and why not).
pub fn check_with(
    t: &Topology,
    only_own: Option<&str>,
    delegated: &dyn Fn(&str) -> Result<(), String>,
) -> Vec<Diagnostic> {
    let mut out = host_side(t);
    let ids_hint = sub_ids_hint();
    for n in &t.nodes {
        let needed = [
            n.limits.memory.is_some(),
            n.limits.cpu.is_some(),
            n.limits.pids.is_some(),
        ];
        let refused: Vec<String> = CONTROLLERS
            .iter()
            .zip(needed)
            .filter(|(_, needed)| *needed)
            .filter_map(|(c, _)| delegated(c).err())
            .collect();
        if !refused.is_empty() {
            out.push(
                Diagnostic::error(
                    n.limits_span,
                    format!(
                        "node `{}`: `limits:` need a cgroup of the node's own, and a rootless lab makes it only in a cgroup delegated to you: {}",
                        n.name,
                        refused.join("; ")
                    ),
                )
                .with_hint(DELEGATION_HINT),
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
        let Some(why) = only_own else { continue };
        for p in &n.private {
            let Some(owner) = p.owner.as_deref().filter(|o| !is_root(o)) else {
                continue;
            };
            out.push(
                Diagnostic::error(
                    Some(p.span),
                    format!(
                        "node `{}`: private directory `{}` is owned by `{owner}`, but this rootless lab would map only your own uid (as root): {why}",
                        n.name, p.path
                    ),
                )
                .with_hint(&ids_hint),
            );
        }
        for p in &n.processes {
            let Some(user) = p.user.as_deref().filter(|u| !is_root(u)) else {
                continue;
            };
            out.push(
                Diagnostic::error(
                    Some(p.user_span),
                    format!(
                        "node `{}`: process `{}` runs as `{user}`, but this rootless lab would map only your own uid (as root): {why}",
                        n.name, p.name
                    ),
                )
                .with_hint(&ids_hint),
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

/// `--host NAME` with a file of a lab spread over hosts: this machine's share would reach
/// the other hosts through VXLANs in the host's own network namespace (the underlay),
/// which a user namespace does not own. Located at the file's `hosts:`.
pub fn multi_host(t: &Topology, source: &str, host: &str) -> Diagnostic {
    let span = source
        .lines()
        .position(|l| l.starts_with("hosts:"))
        .map(|i| crate::diag::Span::new(i as u32 + 1, 1, 5));
    Diagnostic::error(
        span,
        format!(
            "`--host {host}` brings up this machine's share of lab `{}`, whose links to its other hosts are VXLANs over the host's own network, which a rootless lab cannot reach",
            t.lab
        ),
    )
    .with_hint("run the lab spread over hosts as root on each of them, or leave out `--host` to run the whole lab on this machine without root")
}

/// How a user gets a cgroup of its own.
const DELEGATION_HINT: &str = "have the admin make a cgroup of yours in each cgroup v1 hierarchy the limits use (memory, cpu, pids: `mkdir`, `chown -R USER`, then move your shell into it); under cgroup v2 a rootless lab's limits are not supported yet; or run the lab as root, or remove `limits:`";

/// What to add so that other users exist in a rootless lab.
const SUB_IDS_HINT: &str = "give your user a subordinate id range: a line `USER:100000:65536` (USER your login name) in both /etc/subuid and /etc/subgid, and newuidmap/newgidmap installed (Debian package uidmap); or drop `owner:`/`user:`, or run the lab as root";

/// [`SUB_IDS_HINT`], led by what this machine lacks (`/etc/subgid has no range for
/// \`alice\``: newuidmap is not installed`), the user's own name in the line to add.
fn sub_ids_hint() -> String {
    let (who, missing) = super::holder::sub_ids_missing();
    let line = format!("`{who}:100000:65536`");
    let hint = SUB_IDS_HINT.replace("`USER:100000:65536` (USER your login name)", &line);
    match missing {
        Some(m) => format!("here {m}; {hint}"),
        None => hint,
    }
}

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
        let out = check(&t, None);
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
        let refuse = |c: &str| Err(format!("/sys/fs/cgroup/{c}/user is not writable"));
        let found = check_with(&t, Some("no range"), &refuse);
        let lines: Vec<u32> = found
            .iter()
            .map(|d| d.span.expect("located").line)
            .collect();
        assert_eq!(lines, vec![4, 6, 9], "{found:?}");
        assert!(found[0].message.contains("`limits:`"));
        assert!(found[0].message.contains("/sys/fs/cgroup/pids/user"));
        assert!(
            !found[0].message.contains("memory"),
            "only what the node needs"
        );
        assert!(found[0].hint.as_deref().unwrap().contains("chown -R USER"));
        assert!(found[1].message.contains("owned by `frr`"));
        assert!(found[2].message.contains("runs as `daemon`"));
        assert!(found.iter().all(|d| d.hint.is_some()));
        // With a subordinate range, other owners exist in the lab's user namespace.
        let with_range = check_with(&t, None, &refuse);
        assert_eq!(with_range.len(), 1, "{with_range:?}");
        assert!(with_range[0].message.contains("`limits:`"));
        // In a delegated cgroup, limits work.
        assert!(check_with(&t, None, &|_| Ok(())).is_empty());
    }

    #[test]
    fn a_share_of_a_multi_host_lab_is_located_at_hosts() {
        let src = "name: mh\nhosts:\n  ha: { address: 192.0.2.1 }\n  hb: { address: 192.0.2.2 }\nnodes:\n  a: { host: ha }\n  b: { host: hb }\nlinks: [[a:eth1, b:eth1]]\n";
        let d = multi_host(&compiled(src), src, "ha");
        let span = d.span.expect("located");
        assert_eq!((span.line, span.col), (2, 1));
        assert!(d.message.contains("--host ha") && d.message.contains("`mh`"));
        assert!(d.hint.as_deref().unwrap().contains("as root"));
    }

    #[test]
    fn process_attributes_only_root_may_give_are_located_errors() {
        let t = compiled(
            "name: rl\nnodes:\n  a:\n    nice: -1\n    processes:\n      - { name: p, cmd: sleep 1, rlimits: { nofile: 9000, core: 0 } }\n      - { name: q, cmd: sleep 1, nice: 5, oom_score_adj: 10, ionice: idle, cpus: 0, rlimits: { nofile: 100 } }\n      - { name: r, cmd: sleep 1, nice: 0, oom_score_adj: -1, ionice: realtime }\n",
        );
        let found = process_attrs(&t, &|res| if res == libc::RLIMIT_NOFILE { 8192 } else { 0 });
        let lines: Vec<u32> = found
            .iter()
            .map(|d| d.span.expect("located").line)
            .collect();
        assert_eq!(lines, vec![6, 8], "{found:?}");
        assert!(
            found[0].message.contains("process `p` asks for `nice: -1` (CAP_SYS_NICE), `rlimits.nofile` hard 9000 above 8192 (CAP_SYS_RESOURCE)"),
            "{}",
            found[0].message
        );
        assert!(
            found[1].message.contains(
                "`oom_score_adj: -1` (CAP_SYS_RESOURCE), `ionice` class realtime (CAP_SYS_NICE)"
            ),
            "{}",
            found[1].message
        );
    }

    #[test]
    fn a_plain_lab_needs_nothing_of_root() {
        let t = compiled("name: rl\nnodes: { a: {}, b: {} }\nlinks: [[a:eth1, b:eth1]]\n");
        assert!(check_with(&t, Some("no range"), &|_| Err("no".into())).is_empty());
    }

    #[test]
    fn host_links_and_the_management_network_are_located_errors() {
        let t = compiled(
            "name: rl\nmgmt: { subnet: 172.31.9.0/24 }\nnodes: { a: {} }\nlinks:\n  - [a:eth1, \"host:rl-up\"]\n",
        );
        let found = check(&t, Some("no range"));
        let lines: Vec<u32> = found
            .iter()
            .map(|d| d.span.expect("located").line)
            .collect();
        assert_eq!(lines, vec![5, 2], "{found:?}");
        assert!(found[0].message.contains("`rl-up`"), "{found:?}");
        assert!(found[1].message.contains("bridge `br-rl`"), "{found:?}");
        // A shared network is a bridge on the host too.
        let t = compiled(
            "name: rl\nmgmt: { network: clab, subnet: 172.31.9.0/24 }\nnodes: { a: {} }\n",
        );
        let found = check(&t, Some("no range"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("bridge `br-clab`"), "{found:?}");
        assert_eq!(found[0].span.expect("located").line, 2);
    }

    #[test]
    fn root_owners_are_root_however_written() {
        assert!(is_root("root") && is_root("0:0") && is_root("root:0"));
        assert!(!is_root("frr") && !is_root("root:frr"));
    }
}
