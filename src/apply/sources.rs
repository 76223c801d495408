//! Fingerprints of what the nodes' bind-mount sources hold, put in the plan that `up` and
//! `apply` store, so the next `apply` sees an edited config file and restarts its node
//! (`plan::diff`). The compiler never reads them: a plan stays a function of its file.
//!
//! Bounded, since a source may be any host directory: a walk stops after [`MAX_ENTRIES`]
//! entries and reads at most [`MAX_BYTES`] of file content in all (past that a file counts
//! by its size and modification time); it follows no symlink below the source (a link
//! counts by its target's text) and reads only regular files, opened without following a
//! link and without blocking, so a FIFO or device swapped in is never read.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::Hasher;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::model::names::Fnv;
use crate::plan::{Op, Plan};

/// Entries walked per source, at most.
const MAX_ENTRIES: usize = 10_000;
/// File content read per source, at most.
const MAX_BYTES: u64 = 16 << 20;
/// Directory levels walked below a source, at most.
const MAX_DEPTH: usize = 32;

/// `plan` with a fingerprint on every mount of every node (one walk per distinct source);
/// a plan without mounts, most large labs', is not copied.
pub fn fingerprint(plan: &Plan) -> Cow<'_, Plan> {
    let mounts = |op: &Op| matches!(op, Op::StartNode { start, .. } if !start.mounts.is_empty());
    if !plan.steps.iter().any(|s| mounts(&s.op)) {
        return Cow::Borrowed(plan);
    }
    let mut plan = plan.clone();
    let mut seen: HashMap<PathBuf, String> = HashMap::new();
    for step in &mut plan.steps {
        if let Op::StartNode { start, .. } = &mut step.op {
            for m in &mut start.mounts {
                let d = seen
                    .entry(m.source.clone())
                    .or_insert_with(|| digest(&m.source));
                m.digest = Some(d.clone());
            }
        }
    }
    Cow::Owned(plan)
}

/// The fingerprint of one source: a file's content, or a directory's names, kinds and
/// contents, as 16 hex digits.
pub fn digest(source: &Path) -> String {
    let mut w = Walk {
        h: Fnv::default(),
        entries: 0,
        bytes: 0,
    };
    // The source itself is followed, as mount(2) follows it: resolved first, so a source
    // that is a link (a ConfigMap volume's top-level names are) is read by its content,
    // not by the time of a file the next update replaces with the same bytes.
    let source = std::fs::canonicalize(source).unwrap_or_else(|_| source.to_path_buf());
    match std::fs::metadata(&source) {
        Ok(md) => w.entry(&source, &md, 0),
        Err(e) => w.h.write(format!("error {:?}", e.kind()).as_bytes()),
    }
    format!("{:016x}", w.h.finish())
}

struct Walk {
    h: Fnv,
    entries: usize,
    bytes: u64,
}

impl Walk {
    fn entry(&mut self, path: &Path, md: &std::fs::Metadata, depth: usize) {
        self.entries += 1;
        self.h.write(&md.mode().to_le_bytes());
        if md.is_dir() {
            self.dir(path, depth);
        } else if md.file_type().is_symlink() {
            let to = std::fs::read_link(path).unwrap_or_default();
            self.h.write(to.as_os_str().as_encoded_bytes());
        } else if md.is_file() {
            self.file(path, md);
        } else {
            // A device, FIFO or socket: never opened.
            self.h.write(&md.rdev().to_le_bytes());
        }
    }

    fn dir(&mut self, path: &Path, depth: usize) {
        if depth >= MAX_DEPTH {
            return;
        }
        let Ok(rd) = std::fs::read_dir(path) else {
            self.h.write(b"unreadable");
            return;
        };
        let mut names: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
        names.sort();
        for name in names {
            if self.entries >= MAX_ENTRIES {
                self.h.write(b"...");
                return;
            }
            self.h.write(name.as_encoded_bytes());
            self.h.write(&[0]);
            let p = path.join(&name);
            if let Ok(md) = std::fs::symlink_metadata(&p) {
                self.entry(&p, &md, depth + 1);
            }
        }
    }

    fn file(&mut self, path: &Path, md: &std::fs::Metadata) {
        self.h.write(&md.len().to_le_bytes());
        if self.bytes + md.len() > MAX_BYTES || !self.read(path) {
            self.h.write(&md.mtime().to_le_bytes());
            self.h.write(&md.mtime_nsec().to_le_bytes());
        }
    }

    /// Hashes a regular file's content; false when it could not be read whole.
    fn read(&mut self, path: &Path) -> bool {
        let flags = (nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK).bits();
        let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(path)
        else {
            return false;
        };
        if !f.metadata().is_ok_and(|m| m.is_file()) {
            return false;
        }
        let mut buf = [0u8; 64 << 10];
        let mut r = f.take(MAX_BYTES - self.bytes);
        loop {
            match r.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => {
                    self.bytes += n as u64;
                    self.h.write(&buf[..n]);
                }
                Err(_) => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nslab-sources-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn an_edit_renamed_over_a_file_changes_its_digest_and_a_rewrite_of_the_same_does_not() {
        let d = scratch("file");
        let f = d.join("bgpd.conf");
        std::fs::write(&f, "set local-preference 100\n").unwrap();
        let before = digest(&f);
        std::fs::write(&f, "set local-preference 100\n").unwrap();
        assert_eq!(digest(&f), before, "same bytes, same digest");
        // As `sed -i` and most editors save: a new file renamed over the old one.
        std::fs::write(d.join(".new"), "set local-preference 200\n").unwrap();
        std::fs::rename(d.join(".new"), &f).unwrap();
        assert_ne!(digest(&f), before);
        assert_ne!(digest(&d), digest(&scratch("empty")));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_directory_digest_follows_its_files_names_and_links_but_never_reads_a_fifo() {
        let d = scratch("dir");
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/zebra.conf"), "hostname r1\n").unwrap();
        let one = digest(&d);
        std::fs::write(d.join("sub/zebra.conf"), "hostname r2\n").unwrap();
        let two = digest(&d);
        assert_ne!(one, two, "a file below changed");
        std::fs::rename(d.join("sub/zebra.conf"), d.join("sub/bgpd.conf")).unwrap();
        assert_ne!(digest(&d), two, "a file renamed");
        let three = digest(&d);
        std::os::unix::fs::symlink("/etc/passwd", d.join("link")).unwrap();
        let linked = digest(&d);
        assert_ne!(linked, three, "a link added");
        // A FIFO would block a reader forever: it counts by its kind, never opened.
        nix::unistd::mkfifo(&d.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_ne!(digest(&d), linked);
        assert_eq!(digest(&d.join("missing")), digest(&d.join("missing2")));
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A source that is a link, as a ConfigMap volume's names are (`motd` to
    /// `..data/motd`, `..data` to a fresh directory at each update): followed, and read
    /// by content, so an update that brings the same bytes in a new file changes nothing
    /// and one that brings others does.
    #[test]
    fn a_linked_source_is_read_through_its_link_by_content() {
        let d = scratch("linked");
        let publish = |n: u32, text: &str| {
            let dir = d.join(format!("..v{n}"));
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("motd"), text).unwrap();
            let _ = std::fs::remove_file(d.join("..data"));
            std::os::unix::fs::symlink(format!("..v{n}"), d.join("..data")).unwrap();
        };
        publish(1, "version 1\n");
        std::os::unix::fs::symlink("..data/motd", d.join("motd")).unwrap();
        let one = digest(&d.join("motd"));
        std::thread::sleep(std::time::Duration::from_millis(20));
        publish(2, "version 1\n");
        assert_eq!(digest(&d.join("motd")), one, "same bytes in a new file");
        publish(3, "version 2\n");
        assert_ne!(digest(&d.join("motd")), one, "other bytes");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
