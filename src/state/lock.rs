//! The per-lab lock: an exclusive `flock` on `/run/nslab/.locks/<lab>`, so two commands
//! on one lab run one after the other. `down` removes the lock file while holding it; a
//! waiter that then gets the lock sees the path no longer names its file and tries again,
//! so two holders can never exist.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::{StateError, run_root};

pub struct LabLock {
    file: File,
    path: PathBuf,
}

impl LabLock {
    /// Takes the lab's lock, waiting for the holder if there is one; `waiting` is called
    /// once with the holder's pid before blocking.
    pub fn acquire(lab: &str, waiting: impl FnOnce(Option<u32>)) -> Result<LabLock, StateError> {
        crate::model::names::check_lab_name(lab).map_err(StateError::BadLabName)?;
        let dir = run_root().join(".locks");
        let path: PathBuf = dir.join(lab);
        let mut waiting = Some(waiting);
        let mut vanished = 0;
        loop {
            std::fs::create_dir_all(&dir).map_err(|e| StateError::io(&dir, e))?;
            let opened = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path);
            let mut file = match opened {
                // The last lab going down removed the directory in between: again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && vanished < 100 => {
                    vanished += 1;
                    continue;
                }
                r => r.map_err(|e| StateError::io(&path, e))?,
            };
            // SAFETY: flock on a file descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                if let Some(w) = waiting.take() {
                    w(holder.trim().parse().ok());
                }
                // SAFETY: as above; this call blocks until the holder releases the lock.
                if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
                    return Err(StateError::io(&path, std::io::Error::last_os_error()));
                }
            }
            // The holder may have removed the file before we got it: start over.
            let same = match (file.metadata(), std::fs::metadata(&path)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if !same {
                continue;
            }
            let _ = file.set_len(0);
            let _ = file.rewind();
            let _ = write!(file, "{}", std::process::id());
            return Ok(LabLock { file, path });
        }
    }

    /// Releases the lock and removes its file (the lab is gone), and the lock directory
    /// and run directory when nothing else is left in them.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
        // Not while an `up` is between creating the run directory and its journal.
        let _host = HostLock::acquire();
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir(dir);
            if let Some(root) = dir.parent() {
                let _ = std::fs::remove_dir(root);
            }
        }
    }
}

impl Drop for LabLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        // SAFETY: unlocking our own descriptor (closing it would too).
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// A short host-wide lock for what all labs share (`/run/netns` and its mount): `up`
/// holds it from preparing the directory until its journal exists, and the last lab
/// going down holds it while it checks that no lab is left and releases the directory,
/// so one lab can never pull the directory out from under another's `up`. It locks the
/// directory that holds the run directory, so it leaves no file behind.
pub struct HostLock {
    _file: File,
}

impl HostLock {
    pub fn acquire() -> Result<HostLock, StateError> {
        let root = run_root();
        let dir = root.parent().unwrap_or(std::path::Path::new("/"));
        let file = File::open(dir).map_err(|e| StateError::io(dir, e))?;
        // SAFETY: flock on a descriptor we own; blocks while another nslab holds it.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(StateError::io(dir, std::io::Error::last_os_error()));
        }
        Ok(HostLock { _file: file })
    }
}
