//! Paths taken from the environment (`NSLAB_RUN_DIR`, `NSLAB_BIN`). nslab runs as root, and
//! an environment can be passed on by sudo rules, CI systems or wrappers: a path from it is
//! used only if nobody but root and the user running nslab could have written it or any
//! directory above it, so it gives the caller nothing they could not already do.

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// The path in `var`, if set and trusted; `Err` says why a set path is not.
pub fn env_path(var: &str) -> Result<Option<PathBuf>, String> {
    let Some(value) = std::env::var_os(var) else {
        return Ok(None);
    };
    let path = PathBuf::from(value);
    trusted(&path).map_err(|why| format!("{var}={} is not used: {why}", path.display()))?;
    Ok(Some(path))
}

/// Whether `uid` may own something nslab trusts: root, or the user running nslab when
/// that user is also the effective one (a set-uid nslab trusts only root).
fn owner_ok(uid: u32) -> bool {
    let (real, effective) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::geteuid().as_raw(),
    );
    uid == 0 || (uid == real && real == effective)
}

/// Checks every existing component of an absolute path: no links, trusted owners, and
/// writable by no one else (a sticky directory such as /tmp may lie above it).
pub fn trusted(path: &Path) -> Result<(), String> {
    if !path.is_absolute() {
        return Err("it is not an absolute path".into());
    }
    let mut cur = PathBuf::from("/");
    let mut parts = path.components().peekable();
    // The mode of the last directory seen when others can write it (sticky, as /tmp).
    let mut open_parent: Option<u32> = None;
    while let Some(c) = parts.next() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => cur.push(n),
            _ => return Err("it holds `.` or `..`".into()),
        }
        let last = parts.peek().is_none();
        let m = match std::fs::symlink_metadata(&cur) {
            Ok(m) => m,
            // What is missing will be created by nslab itself, unless another user can
            // create it first (in /tmp), and own the directory nslab then works in.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return match open_parent {
                    None => Ok(()),
                    Some(mode) => Err(format!(
                        "{} does not exist, and others could make it first in its directory (mode {:o}); create it (as root, mode 0755) beforehand",
                        cur.display(),
                        mode & 0o7777
                    )),
                };
            }
            Err(e) => return Err(format!("{}: {e}", cur.display())),
        };
        if m.file_type().is_symlink() {
            return Err(format!("{} is a symbolic link", cur.display()));
        }
        if !owner_ok(m.uid()) {
            return Err(format!("{} is owned by uid {}", cur.display(), m.uid()));
        }
        let shared = m.mode() & 0o022 != 0;
        let sticky_dir = m.is_dir() && m.mode() & 0o1000 != 0 && !last;
        open_parent = shared.then_some(m.mode());
        if shared && !sticky_dir {
            return Err(format!(
                "others can write {} (mode {:o})",
                cur.display(),
                m.mode() & 0o7777
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_paths_nobody_else_could_write_are_trusted() {
        let dir = std::env::temp_dir().join(format!("nslab-trust-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("ok")).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(trusted(&dir.join("ok")), Ok(()));
        assert_eq!(trusted(&dir.join("ok/not-yet")), Ok(()));
        assert!(trusted(Path::new("relative/dir")).is_err());
        assert!(trusted(&dir.join("ok/../ok")).is_err());
        std::os::unix::fs::symlink(dir.join("ok"), dir.join("link")).unwrap();
        assert!(
            trusted(&dir.join("link"))
                .unwrap_err()
                .contains("symbolic link")
        );
        std::fs::create_dir(dir.join("shared")).unwrap();
        std::fs::set_permissions(dir.join("shared"), std::fs::Permissions::from_mode(0o777))
            .unwrap();
        assert!(
            trusted(&dir.join("shared"))
                .unwrap_err()
                .contains("others can write")
        );
        // Below a sticky, world-writable directory (like /tmp) is fine; the directory is not.
        std::fs::set_permissions(dir.join("shared"), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
        std::fs::create_dir(dir.join("shared/mine")).unwrap();
        assert_eq!(trusted(&dir.join("shared/mine")), Ok(()));
        assert_eq!(trusted(&dir.join("shared/mine/not-yet")), Ok(()));
        // Missing right below it is not: another user could make it first, as theirs,
        // and swap what nslab creates in it for a link.
        let missing = trusted(&dir.join("shared/not-yet/run")).unwrap_err();
        assert!(missing.contains("others could make it first"), "{missing}");
        assert!(trusted(&dir.join("shared")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
