//! Process users (`user: frr`) looked up as the node will look them up: in the
//! /etc/passwd and /etc/group it sees, the host's unless a bind mount replaces them. An
//! unknown user is then a located error at `validate` rather than a process that fails
//! to start. What a private tmpfs hides is left to the node's init, which reports it at
//! start, naming the lab, the node and the process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;
use crate::model::Node;
use crate::node::users;

/// Files read so far, by path: most nodes see the host's two.
type Files = HashMap<PathBuf, Option<String>>;

pub fn check(nodes: &[Node], out: &mut Vec<Diagnostic>) {
    let mut files = Files::new();
    for n in nodes {
        for p in &n.processes {
            let Some(user) = &p.user else { continue };
            let (Some(passwd), Some(group)) = (seen(n, "/etc/passwd"), seen(n, "/etc/group"))
            else {
                continue;
            };
            let (Some(pw), Some(gr)) = (read(&mut files, &passwd), read(&mut files, &group)) else {
                continue;
            };
            if let Err(e) = users::resolve(user, &pw, &gr) {
                out.push(
                    Diagnostic::error(
                        Some(p.user_span),
                        format!(
                            "node `{}`: process `{}` cannot run as `{user}`: {e} in {} or {}",
                            n.name,
                            p.name,
                            passwd.display(),
                            group.display()
                        ),
                    )
                    .with_hint("the node sees these files; add the user there, or give numbers (`user: 100:101`), which need no entry"),
                );
            }
        }
    }
}

/// The host path of the file the node sees at `path`: the source of the deepest bind
/// mount over it, or the host's own. None when a private tmpfs hides it (the init looks
/// at start).
fn seen(n: &Node, path: &str) -> Option<PathBuf> {
    let covers = |target: &str| {
        let t = target.trim_end_matches('/');
        path == t
            || path
                .strip_prefix(t)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    let depth = |t: &str| t.trim_end_matches('/').len();
    let mount = n
        .mounts
        .iter()
        .filter(|m| covers(&m.target))
        .max_by_key(|m| depth(&m.target));
    let private = n
        .private
        .iter()
        .filter(|p| covers(&p.path))
        .map(|p| depth(&p.path))
        .max();
    match (mount, private) {
        (Some(m), Some(d)) if d >= depth(&m.target) => None,
        (None, Some(_)) => None,
        (Some(m), _) => {
            let rest = path[depth(&m.target)..].trim_start_matches('/');
            Some(match rest {
                "" => m.source.clone(),
                rest => m.source.join(rest),
            })
        }
        (None, None) => Some(PathBuf::from(path)),
    }
}

fn read(files: &mut Files, path: &Path) -> Option<String> {
    files
        .entry(path.to_path_buf())
        .or_insert_with(|| std::fs::read_to_string(path).ok())
        .clone()
}
