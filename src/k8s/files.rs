//! The files a lab's nodes mount, read for the ConfigMap. In the agent's container the
//! topology sits in the ConfigMap's directory, so a mount source must lie below the
//! topology's own directory to be found there at the same relative path.
//!
//! `nslab k8s` runs on the operator's machine, not the cluster's: whatever it reads goes
//! into the ConfigMap, where the lab's commands (and anyone who may read the namespace's
//! ConfigMaps) read it. So a mount source is walked beneath the topology's directory
//! without following a symbolic link (`openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`,
//! each file and directory opened from its parent's descriptor): a link planted in a
//! shared lab directory (`keys -> ~/.ssh`) is refused, never read. Reads stop past
//! Kubernetes' limit (1 MiB a file, as one ConfigMap holds; [`MAX_CONFIGMAPS`] of them in
//! all), so a huge file (or `/proc/kcore` through a link) costs no memory.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{Mode, SFlag, fstat};

use super::{CONFIGMAP_LIMIT, MAX_CONFIGMAPS, MountedFile, Problem};
use crate::model::Topology;

/// What the ConfigMaps of one lab hold at most.
const TOTAL: usize = MAX_CONFIGMAPS * CONFIGMAP_LIMIT;

/// Directories nested deeper are refused.
const MAX_DEPTH: usize = 32;

/// What a walk has read so far, and where it is reported.
struct Walk {
    found: BTreeMap<String, MountedFile>,
    problems: Vec<Problem>,
    /// Bytes read in all; past [`TOTAL`] nothing more is read.
    read: usize,
    at: String,
}

/// Every file below every mount source, once, sorted by path; every problem at once.
/// `file` names the topology in messages (`file:line:col`).
pub fn collect(t: &Topology, file: &str) -> Result<Vec<MountedFile>, Vec<Problem>> {
    let mut w = Walk {
        found: BTreeMap::new(),
        problems: Vec::new(),
        read: 0,
        at: String::new(),
    };
    let base = open_base(&t.base_dir);
    for node in &t.nodes {
        for m in &node.mounts {
            let at = format!("{file}:{}:{}", m.span.line, m.span.col);
            w.at = at.clone();
            let Some(rel) = relative(&t.base_dir, &m.source) else {
                w.problems.push(Problem::Mount {
                    at: at.clone(),
                    what: format!(
                        "the mount source {} of node `{}` is not below the topology's directory {}",
                        m.source.display(),
                        node.name,
                        t.base_dir.display()
                    ),
                    hint: "the ConfigMap carries only files below the topology's directory; move the file there",
                });
                continue;
            };
            let base = match &base {
                Ok(fd) => fd.as_fd(),
                Err(e) => {
                    w.push(format!("cannot open {}: {e}", t.base_dir.display()));
                    continue;
                }
            };
            let before = w.found.len();
            let (is_dir, source) = (w.walk(base, &rel, &rel, 0), m.source.display());
            if w.found.len() == before && is_dir {
                w.problems.push(Problem::Mount {
                    at: at.clone(),
                    what: format!(
                        "the mount source {source} holds no file, and a ConfigMap cannot carry an empty directory"
                    ),
                    hint: "put a file in it (a `.keep`), or make the target `private:`",
                });
            }
        }
    }
    if w.problems.is_empty() {
        Ok(w.found.into_values().collect())
    } else {
        Err(w.problems)
    }
}

/// The topology's directory, the one place the walk starts from.
fn open_base(dir: &Path) -> nix::Result<OwnedFd> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// `name` (one or more components) below `dir`, never through a link nor out of it.
fn open_beneath(dir: BorrowedFd, name: &str) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
    openat2(dir, name, how)
}

/// `source` relative to `base`, `/`-separated, when it lies below it.
fn relative(base: &Path, source: &Path) -> Option<String> {
    let rel = source.strip_prefix(base).ok()?;
    let parts: Option<Vec<&str>> = rel
        .components()
        .map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    parts.filter(|p| !p.is_empty()).map(|p| p.join("/"))
}

impl Walk {
    /// Reads `name` below `dir` (a file, or a directory's files), known as `rel` in the
    /// ConfigMap. Returns whether it was a directory.
    fn walk(&mut self, dir: BorrowedFd, name: &str, rel: &str, depth: usize) -> bool {
        let fd = match open_beneath(dir, name) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ELOOP | nix::errno::Errno::EXDEV) => {
                self.push(format!(
                    "{rel} is, or lies below, a symbolic link: the ConfigMap carries files below the topology's directory, never what a link points to"
                ));
                return false;
            }
            Err(e) => {
                self.push(format!("cannot open {rel}: {e}"));
                return false;
            }
        };
        let st = match fstat(fd.as_fd()) {
            Ok(st) => st,
            Err(e) => {
                self.push(format!("cannot read {rel}: {e}"));
                return false;
            }
        };
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFREG {
            self.file(fd, rel, st.st_mode & 0o111 != 0);
            return false;
        }
        if kind != SFlag::S_IFDIR {
            self.push(format!("{rel} is not a file or a directory"));
            return false;
        }
        if depth >= MAX_DEPTH {
            self.push(format!("{rel} is nested too deep"));
            return true;
        }
        let names = match entries(&fd) {
            Ok(n) => n,
            Err(e) => {
                self.push(format!("cannot read {rel}: {e}"));
                return true;
            }
        };
        for n in names {
            let Some(n) = n.to_str() else {
                self.push(format!("{rel} holds a name that is not UTF-8"));
                continue;
            };
            self.walk(fd.as_fd(), n, &format!("{rel}/{n}"), depth + 1);
        }
        true
    }

    /// A regular file, read only as far as one ConfigMap, and what is left of the
    /// lab's, could still hold it.
    fn file(&mut self, fd: OwnedFd, rel: &str, executable: bool) {
        let left = TOTAL.saturating_sub(self.read);
        let room = CONFIGMAP_LIMIT.min(left);
        let read = crate::spec::yaml::read_at_most(std::fs::File::from(fd), room);
        match read {
            Ok(Some(bytes)) => {
                self.read += bytes.len();
                let f = MountedFile {
                    path: rel.to_string(),
                    bytes,
                    executable,
                };
                self.found.insert(rel.to_string(), f);
            }
            Ok(None) if room == CONFIGMAP_LIMIT => self.problems.push(Problem::Mount {
                at: self.at.clone(),
                what: format!(
                    "{rel} does not fit: it holds more than {CONFIGMAP_LIMIT} bytes, Kubernetes' limit for one ConfigMap, and a file is never split across two"
                ),
                hint: "build the file into the agent's image (deploy/Dockerfile's BASE is every node's file system) and drop the mount",
            }),
            Ok(None) => {
                self.read = TOTAL + 1;
                self.problems.push(Problem::Mount {
                    at: self.at.clone(),
                    what: format!(
                        "{rel} does not fit: the mounted files would hold more than {TOTAL} bytes, the {MAX_CONFIGMAPS} ConfigMaps of 1 MiB nslab splits a lab into at most"
                    ),
                    hint: "build large files into the agent's image (deploy/Dockerfile's BASE) and drop their mounts",
                });
            }
            Err(e) => self.push(format!("cannot read {rel}: {e}")),
        }
    }

    fn push(&mut self, what: String) {
        push(&mut self.problems, &self.at, what);
    }
}

/// A directory's entries but `.` and `..`, sorted.
fn entries(dir: &OwnedFd) -> nix::Result<Vec<std::ffi::OsString>> {
    use std::os::unix::ffi::OsStrExt;
    let fd = nix::fcntl::openat(
        dir.as_fd(),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut d = nix::dir::Dir::from_fd(fd)?;
    let mut names: Vec<std::ffi::OsString> = Vec::new();
    for e in d.iter() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(std::ffi::OsStr::from_bytes(n).to_os_string());
        }
    }
    names.sort();
    Ok(names)
}

fn push(problems: &mut Vec<Problem>, at: &str, what: String) {
    problems.push(Problem::Mount {
        at: at.to_string(),
        what,
        hint: "the ConfigMap carries the regular files below a mount source",
    });
}
