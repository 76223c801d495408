//! Noticing that the topology file changed. A ConfigMap volume is updated by writing a
//! new timestamped directory and renaming a `..data` link onto it, so the file's path
//! never changes while what it leads to does: the file is read through its links and
//! compared by content (an in-place edit is noticed the same way). Polling a few small
//! bytes twice a second costs nothing next to a lab, and needs no inotify watch on a
//! directory that is replaced under it.

use std::path::{Path, PathBuf};

pub struct Watch {
    path: PathBuf,
    /// What the file held when it was last looked at.
    seen: Option<Vec<u8>>,
    /// The last read error, said once rather than on every poll.
    failing: Option<String>,
}

/// What one look at the file found.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    Same,
    Changed,
    /// The file cannot be read now: say so, once.
    Unreadable(String),
}

/// The file's bytes, then every other file of the ConfigMap volume it is in (see
/// [`volume_files`]); outside a volume, those of the split lab's parts' markers beside
/// it (see `agent::parts`): a part updated alone, a mounted file's, is a change too.
fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = std::fs::read(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let own = std::fs::canonicalize(path).ok();
    if volume_files(dir, own.as_deref(), &mut bytes) {
        return Ok(bytes);
    }
    let parts = dir.join(super::parts::DIR);
    for i in 1..=crate::k8s::MAX_CONFIGMAPS {
        match std::fs::read(parts.join(i.to_string())) {
            Ok(marker) => bytes.extend(marker),
            Err(_) => break,
        }
    }
    Ok(bytes)
}

/// At most this many files of a volume are looked at (a ConfigMap holds far fewer).
const MAX_FILES: usize = 10_000;

/// Every regular file under the volume's `..data` directory (when `dir` is a ConfigMap
/// volume) but `own` (the file itself, already read), by path and content, in path
/// order: a file the lab mounts from the volume (a daemon's config) edited with the
/// topology unchanged is a change too, which `apply` then weighs (it restarts the node
/// whose mounted files changed), and an update that rewrites the same bytes is not.
/// Links are not followed below `..data`. Whether `own` is one of the volume's files
/// (then so are the parts' markers beside it).
fn volume_files(dir: &Path, own: Option<&Path>, out: &mut Vec<u8>) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(root) = std::fs::canonicalize(dir.join("..data")) else {
        return false;
    };
    let mut stack = vec![root.clone()];
    let mut files = Vec::new();
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() && files.len() < MAX_FILES => files.push(e.path()),
                _ => {}
            }
        }
    }
    files.sort();
    let mut inside = false;
    for f in files {
        if Some(f.as_path()) == own {
            inside = true;
            continue;
        }
        let name = f.strip_prefix(&root).unwrap_or(&f);
        out.extend(name.as_os_str().as_bytes());
        out.push(0);
        if let Ok(b) = std::fs::read(&f) {
            out.extend(b);
        }
    }
    inside
}

impl Watch {
    /// Starts from what the file holds now.
    pub fn new(path: &Path) -> Watch {
        Watch {
            path: path.to_path_buf(),
            seen: read(path).ok(),
            failing: None,
        }
    }

    /// Whether the file differs from the last look.
    pub fn look(&mut self) -> Seen {
        match read(&self.path) {
            Ok(bytes) => {
                self.failing = None;
                if self.seen.as_ref() == Some(&bytes) {
                    return Seen::Same;
                }
                self.seen = Some(bytes);
                Seen::Changed
            }
            Err(e) => {
                let why = e.to_string();
                if self.failing.as_ref() == Some(&why) {
                    return Seen::Same;
                }
                self.failing = Some(why.clone());
                Seen::Unreadable(why)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ConfigMap update as the kubelet makes it: a new directory, a `..data` link
    /// renamed onto it, the file a link through `..data`.
    #[test]
    fn a_swapped_data_link_is_a_change_and_a_rewrite_of_the_same_bytes_is_not() {
        let dir = std::env::temp_dir().join(format!("nslab-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("..v1")).unwrap();
        std::fs::write(dir.join("..v1/lab.yaml"), "one").unwrap();
        std::os::unix::fs::symlink("..v1", dir.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/lab.yaml", dir.join("lab.yaml")).unwrap();
        let mut w = Watch::new(&dir.join("lab.yaml"));
        assert_eq!(w.look(), Seen::Same);

        let swap = |name: &str, text: &str| {
            std::fs::create_dir_all(dir.join(name)).unwrap();
            std::fs::write(dir.join(name).join("lab.yaml"), text).unwrap();
            std::os::unix::fs::symlink(name, dir.join("..data_tmp")).unwrap();
            std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        };
        swap("..v2", "two");
        assert_eq!(w.look(), Seen::Changed);
        assert_eq!(w.look(), Seen::Same);
        swap("..v3", "two");
        assert_eq!(w.look(), Seen::Same, "same bytes in a new directory");
        // A file the lab mounts from the volume, edited alone: a change.
        swap("..v4", "two");
        std::fs::create_dir_all(dir.join("..v4/configs")).unwrap();
        std::fs::write(dir.join("..v4/configs/motd"), "version 2").unwrap();
        assert_eq!(w.look(), Seen::Changed, "a mounted file edited");
        swap("..v5", "two");
        std::fs::create_dir_all(dir.join("..v5/configs")).unwrap();
        std::fs::write(dir.join("..v5/configs/motd"), "version 2").unwrap();
        assert_eq!(w.look(), Seen::Same, "the same mounted file again");

        std::fs::remove_file(dir.join("..data")).unwrap();
        assert!(matches!(w.look(), Seen::Unreadable(_)));
        assert_eq!(w.look(), Seen::Same, "a failure is said once");
        std::os::unix::fs::symlink("..v1", dir.join("..data")).unwrap();
        assert_eq!(w.look(), Seen::Changed);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
