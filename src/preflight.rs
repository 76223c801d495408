//! Checks that need the host's filesystem, run after the (pure) compile by `validate`,
//! `up` and `test`: mount sources exist (with no symlink below a mount's target, see
//! `preflight/mounts.rs`), process commands can be found as the node will see them
//! (`preflight/programs.rs`). Each problem is
//! located in the file and names the node and the key.

mod mounts;
mod programs;

use crate::diag::Diagnostic;
use crate::model::Topology;

pub fn check(t: &Topology) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for n in &t.nodes {
        for m in &n.mounts {
            if !m.source.exists() {
                out.push(
                    Diagnostic::error(Some(m.span), format!("node `{}`: the source of mount `{}` does not exist: {}", n.name, m.target, m.source.display()))
                        .with_hint("mount sources resolve against the topology file's directory; `{node}` and `{lab}` are filled in"),
                );
            }
        }
        mounts::check(n, &mut out);
    }
    programs::check(&t.nodes, &mut out);
    out
}
