//! The journal: one JSON record per line, appended with `write(2)` before the object it
//! names is created. A `kill -9` cannot lose a record that was written (the page cache
//! outlives the process), so `down` always knows everything `up` may have created.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::StateError;
use crate::plan::Undo;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "kebab-case")]
pub enum Record {
    /// `up` started.
    Begin {
        lab: String,
        pid: u32,
        version: String,
        started: u64,
        file: String,
    },
    /// An object about to be created, as the step that removes it.
    Object { undo: Undo },
    /// An object of an earlier `Object` record turned out to exist already (it is not the
    /// lab's): teardown must leave it alone.
    Disown { undo: Undo },
    /// `up` finished; the lab is complete.
    Up { finished: u64 },
}

pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Starts a new journal; fails if one exists (the lab is up or was interrupted).
    pub fn create(path: &Path) -> Result<Journal, StateError> {
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| StateError::io(path, e))?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one record with a single `write(2)` of a whole line.
    pub fn append(&mut self, r: &Record) -> Result<(), StateError> {
        let mut line = serde_json::to_vec(r).expect("records serialize");
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(|e| StateError::io(&self.path, e))
    }

    /// Reads every record. A torn last line (a crash mid-write) is ignored; a corrupt
    /// line elsewhere is an error.
    pub fn read(path: &Path) -> Result<Vec<Record>, StateError> {
        let text = std::fs::read_to_string(path).map_err(|e| StateError::io(path, e))?;
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            match serde_json::from_str(line) {
                Ok(r) => out.push(r),
                Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
                Err(e) => {
                    return Err(StateError::Corrupt {
                        path: path.to_path_buf(),
                        line: i + 1,
                        msg: e.to_string(),
                    });
                }
            }
        }
        Ok(out)
    }
}

/// The objects a journal names, in creation order, minus the disowned ones.
pub fn objects(records: &[Record]) -> Vec<Undo> {
    let disowned: Vec<&Undo> = records
        .iter()
        .filter_map(|r| match r {
            Record::Disown { undo } => Some(undo),
            _ => None,
        })
        .collect();
    records
        .iter()
        .filter_map(|r| match r {
            Record::Object { undo } if !disowned.contains(&undo) => Some(undo.clone()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn_tail() {
        let dir = std::env::temp_dir().join(format!("nslab-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("j.jsonl");
        let _ = std::fs::remove_file(&path);
        let mut j = Journal::create(&path).unwrap();
        assert!(
            Journal::create(&path).is_err(),
            "a second journal must not start"
        );
        let undo = Undo::DeleteNetns {
            netns: "nslab.t.a".into(),
        };
        j.append(&Record::Object { undo: undo.clone() }).unwrap();
        j.append(&Record::Up { finished: 1 }).unwrap();
        // A crash in the middle of a write leaves half a line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"record\":\"obj")
            .unwrap();
        let recs = Journal::read(&path).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(objects(&recs), vec![undo]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
