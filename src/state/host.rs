//! The host a lab lives on, as one value passed down from the command line or the Rust
//! API instead of constants: where lab state goes, where named namespaces are, whether
//! nslab runs privileged, and (for a lab spread over hosts, later) this host's name. A
//! rootless or multi-host lab is then a different context, not different code.

use std::path::{Path, PathBuf};

use super::{LabDir, trust};

/// Where iproute2 keeps named network namespaces, and so nslab too by default.
pub const DEFAULT_NETNS_DIR: &str = "/run/netns";
/// Where labs keep their state by default.
pub const DEFAULT_RUN_DIR: &str = "/run/nslab";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostContext {
    /// Where labs keep their state (see [`HostContext::from_env`]).
    pub run_dir: PathBuf,
    /// Where named network namespaces are mounted (iproute2's `/run/netns`).
    pub netns_dir: PathBuf,
    /// Whether nslab runs as root (effective uid 0).
    pub privileged: bool,
    /// This host's name in a lab spread over several hosts; `None` for a local lab.
    pub host: Option<String>,
}

impl HostContext {
    /// The context of this process: `NSLAB_RUN_DIR` moves the run directory, when nobody
    /// but root and the caller could have written that path (see [`trust`]); an untrusted
    /// value is ignored with a warning. The directory outlives the last lab, empty, as
    /// iproute2's `/run/netns` does: removing a directory on a disk-backed /run mounted
    /// `discard` waits for the discard of its block (0.3 to 0.4 ms measured), a tenth of a
    /// small lab's `down`.
    pub fn from_env() -> HostContext {
        let run_dir = match trust::env_path("NSLAB_RUN_DIR") {
            Ok(Some(p)) => p,
            Ok(None) => PathBuf::from(DEFAULT_RUN_DIR),
            Err(why) => {
                eprintln!("nslab: {why}; using {DEFAULT_RUN_DIR}");
                PathBuf::from(DEFAULT_RUN_DIR)
            }
        };
        HostContext {
            run_dir,
            netns_dir: PathBuf::from(DEFAULT_NETNS_DIR),
            privileged: nix::unistd::geteuid().is_root(),
            host: None,
        }
    }

    /// The context of a rootless lab: state in `$XDG_RUNTIME_DIR/nslab` (or
    /// `~/.local/state/nslab` when unset), named namespaces in its `netns` directory,
    /// over which each lab's holder mounts a tmpfs of its own (see `crate::rootless`), so
    /// nothing goes to /run/nslab or /run/netns. `None` when neither variable is set.
    pub fn rootless_from_env() -> Option<HostContext> {
        let run_dir = rootless_run_dir(
            std::env::var_os("XDG_RUNTIME_DIR"),
            std::env::var_os("HOME"),
        )?;
        Some(HostContext {
            netns_dir: run_dir.join("netns"),
            run_dir,
            privileged: false,
            host: None,
        })
    }

    /// Where one lab's files are.
    pub fn lab_dir(&self, lab: &str) -> LabDir {
        LabDir {
            lab: lab.to_string(),
            root: self.run_dir.clone(),
        }
    }

    /// The file a named namespace is mounted on.
    pub fn netns_path(&self, name: &str) -> PathBuf {
        self.netns_dir.join(name)
    }

    /// Where `up` records what it had to create in the netns directory, for the last
    /// `down` to undo; absent when it created nothing there.
    pub fn netns_dir_marker(&self) -> PathBuf {
        self.run_dir.join(".netns-dir")
    }

    /// Every lab with state on this host, sorted by name.
    pub fn labs(&self) -> Vec<String> {
        list_labs(&self.run_dir)
    }
}

/// `$XDG_RUNTIME_DIR/nslab`, or `$HOME/.local/state/nslab`; an empty or relative value
/// counts as unset, as the XDG base directory specification says.
fn rootless_run_dir(
    xdg: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    let usable = |v: Option<std::ffi::OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    usable(xdg)
        .map(|d| d.join("nslab"))
        .or_else(|| usable(home).map(|h| h.join(".local/state/nslab")))
}

fn list_labs(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut labs: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".journal").map(str::to_string))
        .collect();
    labs.sort();
    labs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_files_and_namespaces_live_where_the_context_says() {
        let ctx = HostContext {
            run_dir: "/tmp/r".into(),
            netns_dir: "/tmp/n".into(),
            privileged: false,
            host: None,
        };
        assert_eq!(
            ctx.lab_dir("x").journal_path(),
            Path::new("/tmp/r/x.journal")
        );
        assert_eq!(ctx.netns_path("nslab.x.a"), Path::new("/tmp/n/nslab.x.a"));
        assert_eq!(ctx.netns_dir_marker(), Path::new("/tmp/r/.netns-dir"));
    }

    #[test]
    fn rootless_state_goes_to_the_runtime_dir_then_home() {
        let os = |s: &str| Some(std::ffi::OsString::from(s));
        assert_eq!(
            rootless_run_dir(os("/run/user/7"), os("/home/u")),
            Some(PathBuf::from("/run/user/7/nslab"))
        );
        assert_eq!(
            rootless_run_dir(None, os("/home/u")),
            Some(PathBuf::from("/home/u/.local/state/nslab"))
        );
        assert_eq!(
            rootless_run_dir(os("relative"), os("/home/u")),
            Some(PathBuf::from("/home/u/.local/state/nslab"))
        );
        assert_eq!(rootless_run_dir(os(""), None), None);
    }
}
