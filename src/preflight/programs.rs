//! Can each process's program be found, as the node will see it? Not through the caller's
//! PATH and filesystem: a node starts from its own PATH (see `node::environ`), and with a
//! mount namespace its /run, /tmp, /var/run and `private:` directories are empty tmpfs,
//! while bind `mounts:` bring host files in. A program only the caller can see would pass
//! here and be missing in the node, so the check walks the node's view, and says why
//! when a host file is hidden. A kind's process missing on twenty nodes is one error.

use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Span};
use crate::model::kinds::NsKind;
use crate::model::{Command, Node};
use crate::node::environ::DEFAULT_PATH;
use crate::node::mountns::resolve;

/// Shell words that are not programs on the PATH.
const SHELL_WORDS: &[&str] = &[
    "cd", "exec", "while", "for", "if", "until", "case", "echo", "printf", "true", "false", ":",
    "set", "export", "test", "[", "trap", "read", "eval", "source", ".", "ulimit", "umask", "wait",
    "sleep", "kill", "exit", "{", "(", "!",
];

/// The program a command starts, if it can be told without running a shell: the argv's
/// first word, or a shell string's first word when it is a plain word.
pub(super) fn program(cmd: &Command) -> Option<String> {
    let first = match cmd {
        Command::Argv(v) => v.first()?.clone(),
        Command::Shell(s) => {
            let w = s.split_whitespace().next()?;
            if w.contains('=')
                || w.contains(['$', '`', '\'', '"', ';', '&', '|', '(', ')', '<', '>'])
            {
                return None;
            }
            w.to_string()
        }
    };
    (!SHELL_WORDS.contains(&first.as_str())).then_some(first)
}

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What covers a path in the node: a bind from the host, or an empty tmpfs.
enum Cover {
    Bind(PathBuf),
    Tmpfs(String),
}

/// The node's mounts that change what a path shows, in the order its init stacks them.
struct View {
    covers: Vec<(PathBuf, Cover)>,
}

impl View {
    fn of(n: &Node) -> View {
        let mut covers = Vec::new();
        if n.isolation.contains(&NsKind::Mnt) {
            for p in ["/run", "/tmp", "/var/run"] {
                let why = format!("{p} is the node's own empty tmpfs");
                covers.push((resolve(Path::new(p)), Cover::Tmpfs(why)));
            }
            for m in &n.mounts {
                covers.push((resolve(Path::new(&m.target)), Cover::Bind(m.source.clone())));
            }
            for p in &n.private {
                let why = format!("`{}` is a private directory, empty in the node", p.path);
                covers.push((resolve(Path::new(&p.path)), Cover::Tmpfs(why)));
            }
        }
        View { covers }
    }

    /// Where `path` (as the node names it) is on the host, or why the node cannot see it.
    /// The deepest cover wins; among equals the last (mounted on top).
    fn host_path(&self, path: &Path) -> Result<PathBuf, &str> {
        let path = resolve(path);
        let top = self
            .covers
            .iter()
            .enumerate()
            .filter(|(_, (t, _))| path.starts_with(t))
            .max_by_key(|(i, (t, _))| (t.components().count(), *i));
        match top {
            None => Ok(path),
            // A file bound onto the path itself is the source, not `source/`.
            Some((_, (t, Cover::Bind(src)))) => match path.strip_prefix(t) {
                Ok(rest) if !rest.as_os_str().is_empty() => Ok(src.join(rest)),
                _ => Ok(src.clone()),
            },
            Some((_, (_, Cover::Tmpfs(why)))) => Err(why),
        }
    }
}

/// Why a program cannot be found in the node, if it cannot.
fn missing(prog: &str, view: &View, path_var: &str) -> Option<(String, String)> {
    let candidates: Vec<PathBuf> = if prog.contains('/') {
        vec![PathBuf::from(prog)]
    } else {
        std::env::split_paths(path_var)
            .map(|d| d.join(prog))
            .collect()
    };
    let mut hidden = None;
    for c in &candidates {
        match view.host_path(c) {
            Ok(h) if executable(&h) => return None,
            Err(why) if hidden.is_none() && executable(c) => {
                hidden = Some(format!(
                    "`{}` is on the host, but not in the node: {why}",
                    c.display()
                ));
            }
            _ => {}
        }
    }
    if let Some(why) = hidden {
        let hint = "bind-mount it in (`mounts: [\"/host/path:/node/path:ro\"]`), or install it outside /tmp, /run and /var/run";
        return Some((why, hint.into()));
    }
    let why = if prog.contains('/') {
        format!("`{prog}` is not an executable file")
    } else {
        format!("`{prog}` is not an executable on the node's PATH ({path_var})")
    };
    let on_caller = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(prog))
        .find(|c| !prog.contains('/') && executable(c));
    let hint = match on_caller {
        Some(c) => format!(
            "it is on your PATH as `{}`, but a node does not inherit your PATH: give the full path, or set `env: {{ PATH: ... }}`",
            c.display()
        ),
        None => "install the program, give its full path, or mount it into the node".into(),
    };
    Some((why, hint))
}

/// One program that cannot be found, on one node.
struct Problem<'t> {
    node: &'t str,
    kind: Option<&'t str>,
    key: String,
    span: Span,
    why: String,
    hint: String,
}

/// Every process whose program the node cannot find; problems that differ only in the
/// node (a kind's or a daemonset's process) are one error naming the nodes.
pub fn check(nodes: &[Node], out: &mut Vec<Diagnostic>) {
    let mut problems: Vec<Problem> = Vec::new();
    for n in nodes {
        let view = View::of(n);
        for p in &n.processes {
            let Some(prog) = program(&p.cmd) else {
                continue;
            };
            // As `node::environ` builds it: the process's env over the node's over the base.
            let path_var = p
                .env
                .iter()
                .chain(&n.env)
                .find(|(k, _)| k == "PATH")
                .map(|(_, v)| v.as_str())
                .unwrap_or(DEFAULT_PATH);
            if let Some((why, hint)) = missing(&prog, &view, path_var) {
                let key = match &p.daemonset {
                    Some(_) => format!("daemonset `cmd` of `{}`", p.name),
                    None => format!("process `cmd` of `{}`", p.name),
                };
                problems.push(Problem {
                    node: &n.name,
                    kind: n.kind.as_deref(),
                    key,
                    span: p.span,
                    why,
                    hint,
                });
            }
        }
    }
    group(problems, out);
}

/// One error per (kind, key, reason), at the first node's location, naming every node.
fn group(problems: Vec<Problem>, out: &mut Vec<Diagnostic>) {
    let mut done = vec![false; problems.len()];
    for (i, first) in problems.iter().enumerate() {
        if done[i] {
            continue;
        }
        let same: Vec<usize> = (i..problems.len())
            .filter(|&j| {
                let o = &problems[j];
                !done[j] && o.kind == first.kind && o.key == first.key && o.why == first.why
            })
            .collect();
        let names: Vec<String> = same
            .iter()
            .map(|&j| format!("`{}`", problems[j].node))
            .collect();
        let who = match (names.len(), first.kind) {
            (1, _) => format!("node {}", names[0]),
            (k, Some(kind)) => format!("{k} nodes of kind `{kind}` ({})", names.join(", ")),
            (k, None) => format!("{k} nodes ({})", names.join(", ")),
        };
        let mut d = Diagnostic::error(
            Some(first.span),
            format!("{who}: {} cannot be found: {}", first.key, first.why),
        )
        .with_hint(first.hint.clone());
        let mut noted = vec![first.span];
        for &j in &same {
            done[j] = true;
            let o = &problems[j];
            if !noted.contains(&o.span) {
                noted.push(o.span);
                d = d.with_note(o.span, format!("and here, for node `{}`", o.node));
            }
        }
        out.push(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_of_commands() {
        assert_eq!(
            program(&Command::Shell("python3 -m http.server".into())).as_deref(),
            Some("python3")
        );
        assert_eq!(program(&Command::Shell("FOO=1 bar".into())), None);
        assert_eq!(
            program(&Command::Shell("while :; do sleep 1; done".into())),
            None
        );
        assert_eq!(
            program(&Command::Argv(vec!["/usr/bin/env".into()])).as_deref(),
            Some("/usr/bin/env")
        );
    }

    #[test]
    fn the_deepest_and_last_cover_decides() {
        let v = View {
            covers: vec![
                (PathBuf::from("/tmp"), Cover::Tmpfs("tmp".into())),
                (
                    PathBuf::from("/opt/app"),
                    Cover::Bind(PathBuf::from("/srv/app")),
                ),
                (
                    PathBuf::from("/tmp/tools"),
                    Cover::Bind(PathBuf::from("/srv/t")),
                ),
                (PathBuf::from("/opt/app"), Cover::Tmpfs("private".into())),
            ],
        };
        let host = |p: &str| v.host_path(Path::new(p));
        assert_eq!(host("/nslab-x/bin"), Ok(PathBuf::from("/nslab-x/bin")));
        assert_eq!(host("/tmp/nslab-x"), Err("tmp"));
        assert_eq!(host("/tmp/tools/run"), Ok(PathBuf::from("/srv/t/run")));
        // A file bound onto the program's own path is that file.
        assert_eq!(host("/tmp/tools"), Ok(PathBuf::from("/srv/t")));
        // The private directory declared after the mount of the same path is on top.
        assert_eq!(host("/opt/app/run"), Err("private"));
    }
}
