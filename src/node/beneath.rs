//! Opening and creating a node's mount targets without following symlinks. A bind mount
//! brings a host directory into the node, and a symlink inside it would lead the init,
//! which runs as root, to create directories and files anywhere on the host, even through
//! a read-only bind. So targets are walked one component at a time with
//! `openat2(RESOLVE_NO_SYMLINKS)`, and a missing component is created only on a
//! filesystem the init mounted itself (its tmpfs mounts and overlays, known by mount id),
//! never on the host's filesystem or inside a bind source.
//!
//! Host symlinks that a target deliberately goes through (Debian's /etc/resolv.conf) are
//! followed before any mount by `mountns::resolve`; after that, any symlink on the way was
//! brought in by a mount (or appeared since) and is refused.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat, openat2, readlinkat};
use nix::sys::stat::{Mode, mkdirat};

/// What to do with a missing target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Nothing: the target must exist.
    No,
    /// A directory, with any missing parents.
    Dir,
    /// An empty file, with any missing parent directories.
    File,
}

/// The mount ids of the filesystems the init made for the node; only on these may it
/// create anything.
#[derive(Debug, Default)]
pub struct Owned(Vec<u64>);

impl Owned {
    /// Records the filesystem just mounted onto `under` (the fd it was mounted on), opened
    /// again by path as `top`. `top` must be the root of a mount other than `under`'s: if
    /// the path led elsewhere meanwhile (a directory in a bind source renamed on the
    /// host), a source's mount would pass for the node's own, so that is refused.
    pub fn adopt(&mut self, under: BorrowedFd, top: BorrowedFd, shown: &str) -> Result<(), String> {
        let stat = |fd| mount_of(fd).map_err(|e| format!("statx of {shown}: {e}"));
        let ((below, _), (id, root)) = (stat(under)?, stat(top)?);
        if !root || id == below {
            return Err(format!(
                "{shown} is not the mount just made there: its path changed meanwhile"
            ));
        }
        self.0.push(id);
        Ok(())
    }

    /// Records the node's new root (see `node::newroot`), opened as `top`: an overlay
    /// the init made, so entries missing directly under `/` may be created on it.
    pub fn adopt_root(&mut self, top: BorrowedFd) -> Result<(), String> {
        let (id, root) = mount_of(top).map_err(|e| format!("statx of /: {e}"))?;
        if !root {
            return Err("/ is not the root of the node's new root mount".into());
        }
        self.0.push(id);
        Ok(())
    }

    fn contains(&self, fd: BorrowedFd) -> bool {
        mount_of(fd).is_ok_and(|(id, _)| self.0.contains(&id))
    }
}

/// The id of the mount `fd` lies on, and whether `fd` is that mount's root.
fn mount_of(fd: BorrowedFd) -> Result<(u64, bool), Errno> {
    crate::sys::mount::mount_of(fd)
}

/// `/proc/self/fd/N` for an fd: mount(2) given this path acts on exactly the file the fd
/// was opened on, where a path string would be resolved again (through any new link).
pub fn proc_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn no_symlinks() -> OpenHow {
    OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// Opens `path` (absolute, without `..`) as an `O_PATH` fd without following any symlink,
/// creating what is missing as `create` says, but only on an [`Owned`] filesystem.
pub fn open(path: &Path, create: Create, owned: &Owned) -> Result<OwnedFd, String> {
    let parts: Vec<&std::ffi::OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(Ok(s)),
            Component::RootDir | Component::CurDir => None,
            _ => Some(Err(())),
        })
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{}: not an absolute path without `..`", path.display()))?;
    if !path.is_absolute() {
        return Err(format!("{}: not an absolute path", path.display()));
    }
    let mut dir = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("open /: {e}"))?;
    let mut walked = PathBuf::from("/");
    for (i, name) in parts.iter().enumerate() {
        walked.push(name);
        let last = i + 1 == parts.len();
        dir = step(&dir, name, &walked, last, create, owned)?;
    }
    Ok(dir)
}

/// One component: open it, or create it once and open it then.
fn step(
    dir: &OwnedFd,
    name: &std::ffi::OsStr,
    walked: &Path,
    last: bool,
    create: Create,
    owned: &Owned,
) -> Result<OwnedFd, String> {
    let mut created = false;
    loop {
        match openat2(dir.as_fd(), name, no_symlinks()) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ELOOP) => return Err(symlink_error(dir, name, walked)),
            Err(Errno::ENOENT) if create != Create::No && !created => {
                make(dir, name, walked, last && create == Create::File, owned)?;
                created = true;
            }
            Err(e) => return Err(format!("{}: {e}", walked.display())),
        }
    }
}

fn symlink_error(dir: &OwnedFd, name: &std::ffi::OsStr, walked: &Path) -> String {
    let to = readlinkat(dir.as_fd(), name)
        .map(|t| format!(" (to `{}`)", t.to_string_lossy()))
        .unwrap_or_default();
    format!(
        "`{}` is a symlink{to} inside a mount; nslab follows no symlink below a mount, \
         since it could lead anywhere on the host",
        walked.display()
    )
}

/// Creates a missing directory or file in `dir`, which must be on an owned filesystem.
fn make(
    dir: &OwnedFd,
    name: &std::ffi::OsStr,
    walked: &Path,
    file: bool,
    owned: &Owned,
) -> Result<(), String> {
    if !owned.contains(dir.as_fd()) {
        let parent = walked.parent().unwrap_or(Path::new("/"));
        return Err(format!(
            "`{}` is missing, and `{}` is not on the node's own tmpfs or overlay (it is a \
             bind mount's source or the host's filesystem); nslab creates nothing there",
            walked.display(),
            parent.display()
        ));
    }
    let shown = |e: Errno| format!("create {}: {e}", walked.display());
    let made = if file {
        // O_EXCL | O_NOFOLLOW: a link or file that appeared meanwhile is not written.
        openat(
            dir.as_fd(),
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map(drop)
    } else {
        mkdirat(dir.as_fd(), name, Mode::from_bits_truncate(0o755))
    };
    match made {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(shown(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nslab-beneath-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The filesystem `dir` is on, as if the init had mounted it (no root needed).
    fn owned_at(dir: &Path) -> Owned {
        let fd = open(dir, Create::No, &Owned::default()).unwrap();
        Owned(vec![mount_of(fd.as_fd()).unwrap().0])
    }

    #[test]
    fn only_the_root_of_a_new_mount_is_adopted() {
        let dir = scratch("adopt");
        let fd = open(&dir, Create::No, &Owned::default()).unwrap();
        // Nothing was mounted on `dir`: the path still leads to the same mount.
        let mut owned = Owned::default();
        let e = owned.adopt(fd.as_fd(), fd.as_fd(), "/x").unwrap_err();
        assert!(e.contains("/x is not the mount just made there"), "{e}");
        assert!(owned.0.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_symlink_on_the_way_is_refused_and_named() {
        let dir = scratch("link");
        let away = dir.join("away");
        std::fs::create_dir_all(&away).unwrap();
        std::os::unix::fs::symlink(&away, dir.join("link")).unwrap();
        let owned = owned_at(&dir);
        let e = open(&dir.join("link/sub/file"), Create::File, &owned).unwrap_err();
        assert!(
            e.contains(&format!("`{}` is a symlink", dir.join("link").display())),
            "{e}"
        );
        assert!(e.contains(&format!("(to `{}`)", away.display())), "{e}");
        assert_eq!(
            std::fs::read_dir(&away).unwrap().count(),
            0,
            "created through the link"
        );
        // A final component that is a link is refused too, for opening as for creating.
        let e = open(&dir.join("link"), Create::No, &owned).unwrap_err();
        assert!(e.contains("is a symlink"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_parts_are_created_only_on_owned_filesystems() {
        let dir = scratch("create");
        let target = dir.join("a/b/file");
        let e = open(&target, Create::File, &Owned::default()).unwrap_err();
        assert!(e.contains("not on the node's own tmpfs or overlay"), "{e}");
        assert!(!dir.join("a").exists());
        let owned = owned_at(&dir);
        open(&target, Create::File, &owned).unwrap();
        assert!(target.is_file());
        open(&dir.join("a/c/d"), Create::Dir, &owned).unwrap();
        assert!(dir.join("a/c/d").is_dir());
        // Existing targets open without creating anything, owned or not.
        open(&target, Create::No, &Owned::default()).unwrap();
        let e = open(&dir.join("missing"), Create::No, &owned).unwrap_err();
        assert!(e.contains("No such file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
