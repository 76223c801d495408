//! Targets below a bind mount, checked in the bind's source on the host. A node's init
//! follows no symlink inside a bind source and creates nothing there (see
//! `node::beneath`): a link there could lead it, as root, to create directories anywhere
//! on the host. So a link or a missing directory on the way is reported at `validate`,
//! located at the target that needs it, instead of failing `up`. Read-only checks.

use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Span};
use crate::model::Node;
use crate::node::mountns::resolve;

/// A path the init mounts on, as it will see it (host links followed, as at run time).
struct Target<'a> {
    what: String,
    /// None for the files nslab generates: their errors point at the covering mount.
    span: Option<Span>,
    path: PathBuf,
    /// The bind source, for a mount; None for a private tmpfs or a generated file.
    source: Option<&'a Path>,
}

/// The node's targets in the order its init mounts them among equals: the generated
/// files, the mounts, the private directories.
fn targets(n: &Node) -> Vec<Target<'_>> {
    // The same host paths for every node: resolved once (four `statx` per node were most
    // of compiling a 1,000-node lab).
    static GENERATED: std::sync::OnceLock<[PathBuf; 2]> = std::sync::OnceLock::new();
    let resolved =
        GENERATED.get_or_init(|| ["/etc/hosts", "/etc/resolv.conf"].map(|p| resolve(Path::new(p))));
    let generated = ["/etc/hosts", "/etc/resolv.conf"]
        .into_iter()
        .zip(resolved)
        .map(|(p, path)| Target {
            what: format!("the `{p}` nslab writes for the node"),
            span: None,
            path: path.clone(),
            source: None,
        });
    let mounts = n.mounts.iter().map(|m| Target {
        what: format!("mount target `{}`", m.target),
        span: Some(m.target_span),
        path: resolve(Path::new(&m.target)),
        source: Some(m.source.as_path()),
    });
    let private = n.private.iter().map(|p| Target {
        what: format!("private directory `{}`", p.path),
        span: Some(p.span),
        path: resolve(Path::new(&p.path)),
        source: None,
    });
    generated.into_iter().chain(mounts).chain(private).collect()
}

/// The mount `t` ends up inside: the deepest target strictly above it, the later one
/// among equals (mounted last, so on top).
fn cover<'t, 'a>(all: &'t [Target<'a>], t: &Target) -> Option<&'t Target<'a>> {
    all.iter()
        .enumerate()
        .filter(|(_, o)| o.path != t.path && t.path.starts_with(&o.path))
        .max_by_key(|(i, o)| (o.path.components().count(), *i))
        .map(|(_, o)| o)
}

/// Walks `t`'s path below `bind` inside the bind's source, without following links.
fn walk(node: &str, t: &Target, bind: &Target, source: &Path) -> Option<Diagnostic> {
    if !source.exists() {
        return None; // reported as a missing source already
    }
    let rest = t.path.strip_prefix(&bind.path).ok()?;
    let span = t.span.or(bind.span);
    let head = format!("node `{node}`: {} lies below {}", t.what, bind.what);
    let mut cur = source.to_path_buf();
    for part in rest.components() {
        cur.push(part);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&cur).unwrap_or_default();
                return Some(
                    Diagnostic::error(span, format!(
                        "{head}, and that mount's source has a symlink on the way: `{}` -> `{}`",
                        cur.display(),
                        to.display()
                    ))
                    .with_hint("nslab follows no symlink inside a mount source: it could lead the node's init to create files anywhere on the host, even through a read-only mount; make it a real directory, or mount what it points to on its own"),
                );
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Some(
                    Diagnostic::error(span, format!(
                        "{head}, but `{}` does not exist in that mount's source",
                        cur.display()
                    ))
                    .with_hint("nslab creates nothing inside a mount source; create it there, or put the target outside the mount"),
                );
            }
            Err(e) => {
                return Some(Diagnostic::error(
                    span,
                    format!("{head}, but `{}` cannot be checked: {e}", cur.display()),
                ));
            }
        }
    }
    None
}

/// Every target of `n` that lies inside one of its bind mounts, walked in the source. A
/// target missing directly under `/` is fine: the node gets a new root (`node::newroot`).
pub fn check(n: &Node, out: &mut Vec<Diagnostic>) {
    // A node that mounts nothing (no mount namespace of its own) has nothing to check.
    if !n.isolation.contains(&crate::model::kinds::NsKind::Mnt)
        && n.mounts.is_empty()
        && n.private.is_empty()
    {
        return;
    }
    let all = targets(n);
    for t in &all {
        if let Some(bind) = cover(&all, t)
            && let Some(source) = bind.source
            && let Some(d) = walk(&n.name, t, bind, source)
        {
            out.push(d);
        }
    }
}
