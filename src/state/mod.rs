//! A lab's state on disk under `/run/nslab/`: the journal of every object created
//! (written before the object is), the lab's summary for `status`, and the per-lab lock.

pub mod files;
pub mod found;
mod host;
mod journal;
mod lock;
pub mod mgmtnet;
pub mod owned;
mod summary;
pub mod sysctls;
pub mod trust;
pub mod vnis;

use std::path::{Path, PathBuf};

pub use host::{DEFAULT_NETNS_DIR, DEFAULT_RUN_DIR, HostContext};
pub use journal::{
    Journal, Record, apply_state, objects as journal_objects, teardown_objects, unfinished_apply,
};
pub use lock::{HostLock, LabLock, host_lock_path, open_lock_file};
pub use summary::{IfaceSummary, LabSummary, NodeSummary, PeerSummary, RemoteNode};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Lab names become file names under the run directory: anything else is refused
    /// before a path is built from it.
    #[error("{0}")]
    BadLabName(String),
    /// A symbolic link where nslab keeps its own files: never followed.
    #[error("{}: is a symbolic link, and nslab never follows links in its run directory; remove it if nslab did not make it", .0.display())]
    Link(PathBuf),
    #[error("{}: refusing to keep lab state here: {why}", .path.display())]
    Unsafe { path: PathBuf, why: String },
    /// A lab file naming something not the lab's: never acted on.
    #[error("{}: refused, never acted on: {why}", .path.display())]
    NotTheLabs { path: PathBuf, why: String },
    #[error("{path}: corrupt record on line {line}: {msg}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    /// `--host` given for a lab that runs on one machine.
    #[error("--host {host}: lab `{lab}` declares no `hosts:`; drop --host to run it all here")]
    NoHosts { host: String, lab: String },
    /// `--host` names none of the lab's hosts.
    #[error("--host {host}: lab `{lab}` has no host `{host}`; its hosts: {}", .hosts.join(", "))]
    NoSuchHost {
        host: String,
        lab: String,
        hosts: Vec<String>,
    },
    /// Another lab or tool holds VNIs of this lab's tunnels here: the whole message,
    /// every VNI held and a hint (see `vnis::clashes`).
    #[error("{0}")]
    VnisHeld(String),
    /// Root could not read which VXLAN devices this host has, so no VNI is known free.
    #[error("cannot list this host's VXLAN devices: {0}")]
    VxlanDevices(crate::apply::KernelError),
}

impl StateError {
    /// Whether the error is about the command's input (a `--host` that does not fit the
    /// lab, VNIs another lab holds) rather than the host's state.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            StateError::NoHosts { .. } | StateError::NoSuchHost { .. } | StateError::VnisHeld(_)
        )
    }
}

impl StateError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        StateError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Where one lab's state lives: flat files beside each other in the run directory
/// (`<lab>.journal`, `<lab>.json`), because on this VM's ext4 /run (mounted `discard`)
/// removing a directory waits for the discard of its block, 0.3 to 0.4 ms.
#[derive(Debug, Clone)]
pub struct LabDir {
    pub lab: String,
    pub root: PathBuf,
}

impl LabDir {
    pub fn new(host: &HostContext, lab: &str) -> Self {
        host.lab_dir(lab)
    }

    pub fn journal_path(&self) -> PathBuf {
        self.root.join(format!("{}.journal", self.lab))
    }

    pub fn summary_path(&self) -> PathBuf {
        self.root.join(format!("{}.json", self.lab))
    }

    /// The plan the lab was brought up with (compact JSON), for operations on it.
    pub fn plan_path(&self) -> PathBuf {
        self.root.join(format!("{}.plan.json", self.lab))
    }

    /// The plan an unfinished `apply` was heading for: with the journal, what the lab may
    /// be after a `kill -9` (see `plan::diff::realized`).
    pub fn next_plan_path(&self) -> PathBuf {
        self.root.join(format!("{}.plan.next.json", self.lab))
    }

    /// The VNIs a lab with tunnels claimed under the host's VNI lock, kept from its check
    /// until its plan (or an `apply`'s next plan) holds them (see `vnis::VniLock::claim`).
    pub fn vnis_path(&self) -> PathBuf {
        self.root.join(format!("{}.vnis.json", self.lab))
    }

    /// Reads a stored plan.
    pub fn read_plan(path: &Path) -> Result<crate::plan::Plan, StateError> {
        let text = files::read(path)?;
        serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
            path: path.to_path_buf(),
            line: e.line(),
            msg: e.to_string(),
        })
    }

    /// The topology text the lab was brought up from.
    pub fn source_path(&self) -> PathBuf {
        self.root.join(format!("{}.yaml", self.lab))
    }

    /// What was done to the lab while it ran (`nslab events`).
    pub fn events_path(&self) -> PathBuf {
        self.root.join(format!("{}.events", self.lab))
    }

    /// Process logs; created only for labs that run processes.
    pub fn logs(&self) -> PathBuf {
        self.root.join(format!("{}.logs", self.lab))
    }

    /// Whether anything of this lab is on record (up, or left by an interrupted run); a
    /// link planted as the journal counts, so `down` refuses it by name.
    pub fn exists(&self) -> bool {
        std::fs::symlink_metadata(self.journal_path()).is_ok()
    }

    /// Whether any file of the lab besides its lock is here: a journal deleted by hand
    /// leaves the summary, the plan and the pid files, which `down` must still remove.
    pub fn any_file(&self) -> bool {
        let root = &self.root;
        let lab = &self.lab;
        self.exists()
            || [
                self.summary_path(),
                self.plan_path(),
                self.next_plan_path(),
                self.vnis_path(),
                self.source_path(),
                self.events_path(),
                self.logs(),
                root.join(format!("{lab}.nodes")),
                root.join(format!("{lab}.host-sysctls")),
            ]
            .iter()
            .any(|p| std::fs::symlink_metadata(p).is_ok())
    }

    pub fn create(&self) -> Result<(), StateError> {
        files::ensure_root(&self.root)
    }

    /// Removes the lab's state once everything in its journal is gone; the journal last,
    /// so an interrupted removal still leaves the lab on record.
    pub fn remove(&self) -> Result<(), StateError> {
        let logs = self.logs();
        match std::fs::remove_dir_all(&logs) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StateError::io(&logs, e)),
        }
        for path in [
            self.events_path(),
            self.vnis_path(),
            self.next_plan_path(),
            self.plan_path(),
            self.source_path(),
            self.summary_path(),
            self.journal_path(),
        ] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StateError::io(&path, e)),
            }
        }
        Ok(())
    }
}

/// A run directory of its own for a unit test (`nslab-PREFIX-TAG-PID` in the temp
/// directory, emptied first), and an unprivileged host context on it.
#[cfg(test)]
pub(crate) fn scratch_host(prefix: &str, tag: &str) -> (std::path::PathBuf, HostContext) {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("nslab-{prefix}-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let host = HostContext {
        run_dir: dir.clone(),
        netns_dir: "/nonexistent".into(),
        privileged: false,
        host: None,
    };
    (dir, host)
}
