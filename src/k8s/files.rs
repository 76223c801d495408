//! The files a lab's nodes mount, read for the ConfigMap. In the agent's container the
//! topology sits in the ConfigMap's directory, so a mount source must lie below the
//! topology's own directory to be found there at the same relative path.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};

use super::{MountedFile, Problem};
use crate::model::Topology;

/// Directories nested deeper are refused (a link loop would never end).
const MAX_DEPTH: usize = 32;

/// Every file below every mount source, once, sorted by path; every problem at once.
/// `file` names the topology in messages (`file:line:col`).
pub fn collect(t: &Topology, file: &str) -> Result<Vec<MountedFile>, Vec<Problem>> {
    let mut found = BTreeMap::new();
    let mut problems = Vec::new();
    for node in &t.nodes {
        for m in &node.mounts {
            let at = format!("{file}:{}:{}", m.span.line, m.span.col);
            match relative(&t.base_dir, &m.source) {
                Some(rel) => {
                    let before = found.len();
                    walk(&m.source, &rel, 0, &mut found, &mut problems, &at);
                    if found.len() == before && m.source.is_dir() {
                        problems.push(Problem::Mount {
                            at,
                            what: format!(
                                "the mount source {} holds no file, and a ConfigMap cannot carry an empty directory",
                                m.source.display()
                            ),
                            hint: "put a file in it (a `.keep`), or make the target `private:`",
                        });
                    }
                }
                None => problems.push(Problem::Mount {
                    at,
                    what: format!(
                        "the mount source {} of node `{}` is not below the topology's directory {}",
                        m.source.display(),
                        node.name,
                        t.base_dir.display()
                    ),
                    hint: "the ConfigMap carries only files below the topology's directory; move the file there",
                }),
            }
        }
    }
    if problems.is_empty() {
        Ok(found.into_values().collect())
    } else {
        Err(problems)
    }
}

/// `source` relative to `base`, `/`-separated, when it lies below it.
fn relative(base: &Path, source: &Path) -> Option<String> {
    let rel = source.strip_prefix(base).ok()?;
    let parts: Option<Vec<&str>> = rel
        .components()
        .map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    parts.filter(|p| !p.is_empty()).map(|p| p.join("/"))
}

fn walk(
    path: &Path,
    rel: &str,
    depth: usize,
    found: &mut BTreeMap<String, MountedFile>,
    problems: &mut Vec<Problem>,
    at: &str,
) {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return push(problems, at, format!("cannot read {}: {e}", path.display())),
    };
    if meta.is_file() {
        match std::fs::read(path) {
            Ok(bytes) => {
                found.insert(
                    rel.to_string(),
                    MountedFile {
                        path: rel.to_string(),
                        bytes,
                        executable: meta.permissions().mode() & 0o111 != 0,
                    },
                );
            }
            Err(e) => push(problems, at, format!("cannot read {}: {e}", path.display())),
        }
        return;
    }
    if !meta.is_dir() {
        return push(
            problems,
            at,
            format!("{} is not a file or a directory", path.display()),
        );
    }
    if depth >= MAX_DEPTH {
        return push(
            problems,
            at,
            format!("{} is nested too deep", path.display()),
        );
    }
    let entries = match std::fs::read_dir(path) {
        Ok(d) => d,
        Err(e) => return push(problems, at, format!("cannot read {}: {e}", path.display())),
    };
    let mut names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
    names.sort();
    for name in names {
        let Some(n) = name.to_str() else {
            push(
                problems,
                at,
                format!("{} holds a name that is not UTF-8", path.display()),
            );
            continue;
        };
        let child = format!("{rel}/{n}");
        walk(&path.join(n), &child, depth + 1, found, problems, at);
    }
}

fn push(problems: &mut Vec<Problem>, at: &str, what: String) {
    problems.push(Problem::Mount {
        at: at.to_string(),
        what,
        hint: "the ConfigMap carries the regular files below a mount source",
    });
}
