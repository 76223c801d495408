//! Rootless labs: an ordinary user runs a lab inside a user namespace of its own. One
//! process per lab, the holder, owns the lab's user, mount, network and pid namespaces;
//! every command joins it and then runs the same engine as root does, with a
//! [`HostContext`](crate::state::HostContext) whose directories are the user's. The
//! holder is PID 1 of the lab's pid namespace, so killing it takes every lab process, the
//! namespaces and their mounts with it: nothing of a rootless lab can outlive it.

pub mod api;
pub mod check;
pub mod holder;
pub mod join;

use std::path::PathBuf;

pub use holder::Holder;

#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    #[error(
        "rootless labs keep their state in $XDG_RUNTIME_DIR/nslab or ~/.local/state/nslab, and neither XDG_RUNTIME_DIR nor HOME is set"
    )]
    NoStateDir,
    /// Root running rootless would obey (join the holder named in) a state directory that
    /// another user can write.
    #[error(
        "as root, the rootless state directory {} is not used: {why}\n  hint: root runs rootless labs only from a directory no other user can write; point XDG_RUNTIME_DIR (or HOME) at root's own (`sudo -E` keeps a user's)",
        .path.display()
    )]
    UntrustedStateDir { path: PathBuf, why: String },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The holder could not make the lab's namespaces; `hint` says what to change.
    #[error("cannot start the holder of lab `{lab}`: {why}{hint}")]
    Start {
        lab: String,
        why: String,
        hint: String,
    },
    /// The command run inside the lab could not be waited for.
    #[error("lost the command run in lab `{lab}`: {source}")]
    Lost {
        lab: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot join the namespaces of lab `{lab}` (holder pid {pid}): {source}")]
    Join {
        lab: String,
        pid: i32,
        #[source]
        source: std::io::Error,
    },
}

impl RootlessError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RootlessError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Whether this process runs labs rootless: when it is not root, or when asked to.
pub fn wanted(forced: bool) -> bool {
    forced || !nix::unistd::geteuid().is_root()
}
