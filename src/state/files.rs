//! Files in the run directory, opened the way a root process must open paths others might
//! have prepared: never through a symbolic link. A link planted at `/run/nslab/<lab>.json`
//! (or `.tmp`, `.yaml`, `.events`, `.lock`, `.nodes`) would otherwise make nslab write,
//! mount or truncate whatever it points to. The run directory itself must be a real
//! directory that only its owner (root, or the user running nslab) can write.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::StateError;

/// `ELOOP` from an `O_NOFOLLOW` open is the planted link; name it as such.
pub(super) fn io_err(path: &Path, e: std::io::Error) -> StateError {
    if e.raw_os_error() == Some(libc::ELOOP) {
        StateError::Link(path.to_path_buf())
    } else {
        StateError::io(path, e)
    }
}

/// Refuses a path that is a symbolic link; a missing path is fine.
pub fn no_link(path: &Path) -> Result<(), StateError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(StateError::Link(path.to_path_buf())),
        _ => Ok(()),
    }
}

/// Directories made with mode 0755 asked for, not the default 0777: a library caller's
/// umask (0, say) must not make them writable by others.
fn dir_builder() -> std::fs::DirBuilder {
    use std::os::unix::fs::DirBuilderExt;
    let mut b = std::fs::DirBuilder::new();
    b.mode(0o755);
    b
}

/// Creates the run directory if needed and checks it: a real directory, owned by this
/// process's user, writable by nobody else.
pub fn ensure_root(root: &Path) -> Result<(), StateError> {
    if let Some(parent) = root.parent() {
        dir_builder()
            .recursive(true)
            .create(parent)
            .map_err(|e| StateError::io(parent, e))?;
    }
    match dir_builder().create(root) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(StateError::io(root, e)),
    }
    let m = std::fs::symlink_metadata(root).map_err(|e| StateError::io(root, e))?;
    if m.file_type().is_symlink() {
        return Err(StateError::Link(root.to_path_buf()));
    }
    let me = nix::unistd::geteuid().as_raw();
    let why = if !m.is_dir() {
        Some("it is not a directory".to_string())
    } else if m.uid() != me {
        Some(format!("it is owned by uid {}, not {me}", m.uid()))
    } else if m.mode() & 0o022 != 0 {
        Some(format!(
            "others can write it (mode {:o})",
            m.mode() & 0o7777
        ))
    } else {
        None
    };
    match why {
        Some(why) => Err(StateError::Unsafe {
            path: root.to_path_buf(),
            why,
        }),
        None => Ok(()),
    }
}

/// A directory of the lab's (node files, logs) directly in the run directory.
pub fn ensure_dir(path: &Path) -> Result<(), StateError> {
    match dir_builder().create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let m = std::fs::symlink_metadata(path).map_err(|e| StateError::io(path, e))?;
            if m.file_type().is_symlink() {
                Err(StateError::Link(path.to_path_buf()))
            } else if !m.is_dir() {
                Err(StateError::io(
                    path,
                    std::io::Error::other("exists and is not a directory"),
                ))
            } else {
                Ok(())
            }
        }
        Err(e) => Err(StateError::io(path, e)),
    }
}

/// Reads a whole file, refusing a link.
pub fn read(path: &Path) -> Result<String, StateError> {
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    let mut text = String::new();
    f.read_to_string(&mut text)
        .map_err(|e| StateError::io(path, e))?;
    Ok(text)
}

/// Opens a file for appending (created if missing), refusing a link.
pub fn open_append(path: &Path) -> Result<File, StateError> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| io_err(path, e))
}

/// Replaces a file whole, readable by its owner alone: lab files carry the topology, the
/// nodes' `env:` values and commands (see [`replace_with_mode`]).
pub fn replace(path: &Path, data: &[u8]) -> Result<(), StateError> {
    replace_with_mode(path, data, 0o600)
}

/// Replaces a file whole, readable by everyone: for what a node's processes read
/// whatever their user (its `/etc/hosts`).
pub fn replace_readable(path: &Path, data: &[u8]) -> Result<(), StateError> {
    replace_with_mode(path, data, 0o644)
}

/// Replaces a file whole: written to `<path>.tmp` (a stale one, or a link planted there,
/// is unlinked first, never followed) with `mode`, then renamed over `path`, which
/// replaces a link at `path` rather than writing through it, and a file of a wider mode.
/// A failed write (a full disk) leaves no `.tmp`.
fn replace_with_mode(path: &Path, data: &[u8], mode: u32) -> Result<(), StateError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StateError::io(&tmp, e)),
    }
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| f.write_all(data));
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(&tmp, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_refused_or_replaced_never_followed() {
        let dir = std::env::temp_dir().join(format!("nslab-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let link = |name: &str| {
            let p = dir.join(name);
            std::os::unix::fs::symlink(&victim, &p).unwrap();
            p
        };
        assert!(matches!(read(&link("a")), Err(StateError::Link(_))));
        assert!(matches!(open_append(&link("b")), Err(StateError::Link(_))));
        assert!(matches!(ensure_dir(&link("c")), Err(StateError::Link(_))));
        assert!(matches!(no_link(&link("d")), Err(StateError::Link(_))));
        // A link at the file and at its .tmp: both replaced, the victim untouched.
        let e = link("e");
        link("e.tmp");
        replace(&e, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&e).unwrap(), "new");
        assert!(!dir.join("e.tmp").exists());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn replaced_files_are_the_owners_alone_unless_asked_readable() {
        let dir = std::env::temp_dir().join(format!("nslab-modes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
        let secret = dir.join("lab.yaml");
        // One an older nslab left readable is replaced by one that is not.
        std::fs::write(&secret, "env: old").unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        replace(&secret, b"env: new").unwrap();
        assert_eq!(mode(&secret), 0o600);
        let hosts = dir.join("hosts");
        replace_readable(&hosts, b"10.0.0.1 a\n").unwrap();
        assert_eq!(mode(&hosts), 0o644);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn directories_are_0755_whatever_the_callers_umask() {
        let dir = std::env::temp_dir().join(format!("nslab-umask-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // In a child of its own: the umask is the whole process's.
        let code = crate::sys::child::testing::in_child(|| {
            nix::sys::stat::umask(nix::sys::stat::Mode::empty());
            let made = ensure_root(&dir.join("run")).is_ok()
                && ensure_dir(&dir.join("run/lab.nodes")).is_ok();
            i32::from(!made)
        });
        assert!(
            code == Some(0),
            "the directories were not made, or refused: {code:?}"
        );
        let mode = |p: &str| std::fs::metadata(dir.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(
            (mode(""), mode("run"), mode("run/lab.nodes")),
            (0o755, 0o755, 0o755)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_run_directory_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("nslab-root-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        ensure_root(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(ensure_root(&dir), Err(StateError::Unsafe { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
