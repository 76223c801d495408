//! Checks that need the host's filesystem, run after the (pure) compile by `validate`,
//! `up` and `test`: mount sources exist (with no symlink below a mount's target, see
//! `preflight/mounts.rs`), process commands can be found as the node will see them
//! (`preflight/programs.rs`), process users exist in the node's /etc
//! (`preflight/users.rs`), and a warning when the lab's L2 segments may need more
//! neighbour entries than the host's table holds (`preflight/neigh.rs`), and a warning for
//! a dummy or vlan this kernel cannot make or a macvlan parent the host lacks
//! (`preflight/kinds.rs`), and a warning when nslab runs with `no_new_privs` or a
//! seccomp filter, which its nodes would inherit (`preflight/inherit.rs`), and process
//! attributes the host cannot give (`preflight/attrs.rs`). What a multi-host share's
//! machine must have, its host's address and underlay MTU, is judged in
//! `preflight/underlay.rs` from what the engine reads over netlink. Each problem is
//! located in the file and names the node and the key.

mod attrs;
mod inherit;
mod kinds;
mod mounts;
pub mod neigh;
mod programs;
pub mod underlay;
mod users;

use std::path::Path;

use crate::diag::Diagnostic;
use crate::model::Topology;

pub fn check(t: &Topology) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = Vec::new();
    for n in &t.nodes {
        let busybox = Path::new(crate::clab::images::BUSYBOX);
        for m in n.mounts.iter().filter(|m| !m.source.exists()) {
            // The applets of an image whose userland is busybox (Alpine's): one error.
            if m.source == busybox {
                if !out.iter().any(|d| d.span == Some(m.span)) {
                    out.push(
                        Diagnostic::error(Some(m.span), format!("node `{}`: the host has no {}, which gives the node its image's busybox applets (`ash`, ...)", n.name, busybox.display()))
                            .with_hint("install busybox (Debian, Ubuntu: `apt-get install busybox`)"),
                    );
                }
                continue;
            }
            out.push(
                Diagnostic::error(Some(m.span), format!("node `{}`: the source of mount `{}` does not exist: {}", n.name, m.target, m.source.display()))
                    .with_hint("mount sources resolve against the topology file's directory; `{node}` and `{lab}` are filled in"),
            );
        }
        mounts::check(n, &mut out);
    }
    programs::check(&t.nodes, &mut out);
    users::check(&t.nodes, &mut out);
    attrs::check(&t.nodes, &attrs::Host::read(), &mut out);
    expected_json(t, &mut out);
    out.extend(neigh::warnings(t, neigh::host_limit));
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    out.extend(inherit::warnings(t, &status));
    kinds::check(t, &mut out);
    kinds::vrf_checks(t, &mut out);
    out
}

/// Every `expect_json_file` can be read and parses, so a typo is a located error at
/// `validate` rather than a check that fails every attempt.
fn expected_json(t: &Topology, out: &mut Vec<Diagnostic>) {
    for c in &t.checks {
        let crate::model::CheckBody::Cmd { json: Some(j), .. } = &c.body else {
            continue;
        };
        let crate::model::JsonSource::File { path, span } = &j.source else {
            continue;
        };
        // The per-node checks of one entry share the file: one error is enough.
        if out.iter().any(|d| d.span == Some(*span)) {
            continue;
        }
        let problem = match crate::harness::cmd::read_expected_text(path) {
            Err(e) => format!("cannot read {}: {e}", path.display()),
            Ok(text) => match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(_) => continue,
                Err(e) => format!("{} is not JSON: {e}", path.display()),
            },
        };
        out.push(
            Diagnostic::error(
                Some(*span),
                format!("check `{}`: `expect_json_file`: {problem}", c.name),
            )
            .with_hint("the path is relative to the topology file's directory"),
        );
    }
}
