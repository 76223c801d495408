//! What a node inherits from nslab's caller that no process can undo (`node::fresh`
//! resets the rest): `no_new_privs` and a seccomp filter. A lab run from
//! `setpriv --no-new-privs`, or a service with `NoNewPrivileges=` or
//! `SystemCallFilter=`, gets a warning, since set-uid programs (`ping`, `sudo`) and
//! file capabilities in its nodes stop working, or system calls fail.

use crate::diag::Diagnostic;
use crate::model::Topology;

/// Warnings for a lab that runs commands in its nodes, from `status` (the text of
/// `/proc/self/status`).
pub fn warnings(t: &Topology, status: &str) -> Vec<Diagnostic> {
    if !t
        .nodes
        .iter()
        .any(|n| !n.processes.is_empty() || !n.exec.is_empty())
    {
        return Vec::new();
    }
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let mut out = Vec::new();
    if field("NoNewPrivs:").as_deref() == Some("1") {
        out.push(
            Diagnostic::warning(None, "nslab runs with no_new_privs, which every node's commands inherit: set-uid programs (`ping`, `sudo`) and file capabilities do not raise privileges in them")
                .with_hint("run nslab without `setpriv --no-new-privs` or `NoNewPrivileges=`; no process can clear it"),
        );
    }
    if field("Seccomp:").is_some_and(|v| v != "0") {
        out.push(
            Diagnostic::warning(None, "nslab runs under a seccomp filter, which every node's commands inherit: system calls it refuses fail in them too")
                .with_hint("run nslab without the filter (`SystemCallFilter=`, a container's seccomp profile); no process can remove it"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lab_with_commands_hears_of_no_new_privs_or_seccomp() {
        let topo = |yaml: &str| {
            crate::compile::compile_str(yaml, "t.yaml", std::path::Path::new("/"))
                .unwrap()
                .topology
        };
        let with = topo("name: t\nnodes:\n  a:\n    processes: [{ name: p, cmd: sleep 1 }]\n");
        let without = topo("name: t\nnodes:\n  a: {}\n");
        let plain = "Name:\tx\nNoNewPrivs:\t0\nSeccomp:\t0\n";
        let locked = "Name:\tx\nNoNewPrivs:\t1\nSeccomp:\t2\n";
        assert!(warnings(&with, plain).is_empty());
        assert!(warnings(&without, locked).is_empty());
        let w = warnings(&with, locked);
        assert_eq!(w.len(), 2);
        assert!(w.iter().all(|d| !d.is_error()));
    }
}
