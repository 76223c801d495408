//! A lab's state on disk under `/run/nslab/<lab>/`: the journal of every object created
//! (written before the object is), the lab's summary for `status`, and the per-lab lock.

mod journal;
mod lock;
mod summary;

use std::path::{Path, PathBuf};

pub use journal::{Journal, Record, objects as journal_objects};
pub use lock::LabLock;
pub use summary::{LabSummary, NodeSummary};

/// Where labs keep their state; `NSLAB_RUN_DIR` moves it (tests of this layer only).
pub fn run_root() -> PathBuf {
    std::env::var_os("NSLAB_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/nslab"))
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: corrupt record on line {line}: {msg}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        msg: String,
    },
}

impl StateError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        StateError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The directory of one lab.
#[derive(Debug, Clone)]
pub struct LabDir {
    pub lab: String,
    pub path: PathBuf,
}

impl LabDir {
    pub fn new(lab: &str) -> Self {
        LabDir {
            lab: lab.to_string(),
            path: run_root().join(lab),
        }
    }

    pub fn journal_path(&self) -> PathBuf {
        self.path.join("journal.jsonl")
    }

    pub fn summary_path(&self) -> PathBuf {
        self.path.join("lab.json")
    }

    pub fn logs(&self) -> PathBuf {
        self.path.join("logs")
    }

    /// Whether anything of this lab is on record (up, or left by an interrupted run).
    pub fn exists(&self) -> bool {
        self.journal_path().exists()
    }

    pub fn create(&self) -> Result<(), StateError> {
        std::fs::create_dir_all(&self.path).map_err(|e| StateError::io(&self.path, e))
    }

    /// Removes the lab's directory once everything in its journal is gone.
    pub fn remove(&self) -> Result<(), StateError> {
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StateError::io(&self.path, e)),
        }
    }
}

/// Every lab with state on this host, sorted by name.
pub fn list_labs() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(run_root()) else {
        return Vec::new();
    };
    let mut labs: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join("journal.jsonl").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    labs.sort();
    labs
}
