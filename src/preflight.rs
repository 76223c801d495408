//! Checks that need the host's filesystem, run after the (pure) compile by `validate`,
//! `up` and `test`: mount sources exist (with no symlink below a mount's target, see
//! `preflight/mounts.rs`), process commands can be found. Each problem is
//! located in the file and names the node and the key.

mod mounts;

use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;
use crate::model::{Command, Mount, Topology};

/// Shell words that are not programs on the PATH.
const SHELL_WORDS: &[&str] = &[
    "cd", "exec", "while", "for", "if", "until", "case", "echo", "printf", "true", "false", ":",
    "set", "export", "test", "[", "trap", "read", "eval", "source", ".", "ulimit", "umask", "wait",
    "sleep", "kill", "exit", "{", "(", "!",
];

/// The program a command starts, if it can be told without running a shell: the argv's
/// first word, or a shell string's first word when it is a plain word.
fn program(cmd: &Command) -> Option<String> {
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

/// A path as the node sees it, mapped back to the host through the node's bind mounts.
fn on_host(path: &str, mounts: &[Mount]) -> PathBuf {
    for m in mounts {
        if let Some(rest) = path.strip_prefix(&m.target)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return m.source.join(rest.trim_start_matches('/'));
        }
    }
    PathBuf::from(path)
}

fn found(prog: &str, mounts: &[Mount], path_var: &str) -> bool {
    if prog.contains('/') {
        return executable(&on_host(prog, mounts));
    }
    std::env::split_paths(path_var)
        .any(|d| executable(&on_host(&d.join(prog).to_string_lossy(), mounts)))
}

pub fn check(t: &Topology) -> Vec<Diagnostic> {
    let path_var = std::env::var("PATH")
        .unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
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
        for p in &n.processes {
            let Some(prog) = program(&p.cmd) else {
                continue;
            };
            let node_path = p
                .env
                .iter()
                .chain(&n.env)
                .find(|(k, _)| k == "PATH")
                .map(|(_, v)| v.as_str())
                .unwrap_or(&path_var);
            if !found(&prog, &n.mounts, node_path) {
                let key = if p.daemonset.is_some() {
                    "daemonset `cmd`"
                } else {
                    "process `cmd`"
                };
                out.push(
                    Diagnostic::error(Some(p.span), format!("node `{}`: {key} of `{}` cannot be found: `{prog}` is not an executable on the PATH", n.name, p.name))
                        .with_hint("install the program, give its full path, or mount it into the node"),
                );
            }
        }
    }
    expected_json(t, &mut out);
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
        let problem = match std::fs::read_to_string(path) {
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
    fn paths_map_through_mounts() {
        let m = Mount {
            span: Default::default(),
            target_span: Default::default(),
            source: PathBuf::from("/srv/app"),
            target: "/opt/app".into(),
            readonly: true,
        };
        assert_eq!(
            on_host("/opt/app/bin/run", std::slice::from_ref(&m)),
            PathBuf::from("/srv/app/bin/run")
        );
        assert_eq!(
            on_host("/opt/application", &[m]),
            PathBuf::from("/opt/application")
        );
    }
}
