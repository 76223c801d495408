//! A file nslab rewrites whole for its caller (`test --junit`, written as the checks end
//! and again after the teardown): the new content goes into a new file beside the name,
//! renamed over it once complete, so the name never holds a part of a report, even when
//! nslab is killed in between. The name is screened as `create_for` screens it.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag};

use super::{Caller, give, kind, parent, screen};

/// [`replace_for`] the user running nslab.
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    replace_for(path, bytes, &Caller::from_env())
}

/// Makes `bytes` the content of `path` in one step: a whole new file, written beside the
/// name and renamed over it, so the name holds the old content or the new, never a part,
/// even when nslab is killed in between (a report rewritten after a teardown that a
/// runner may cut short with SIGKILL). The name is screened as [`create_for`] screens
/// it; an existing file's mode and owner are kept, a new file is 0600 and the invoking
/// user's. False, with nothing written, where a rename is not the way: the name holds a
/// FIFO or a character device (a rename would replace it; write those through
/// [`create_for`], once), or the directory takes no new file from this user.
pub fn replace_for(path: &Path, bytes: &[u8], caller: &Caller) -> io::Result<bool> {
    let (dir, name) = parent(path, caller)?;
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let old = match openat(&dir, name.as_os_str(), flags, Mode::empty()) {
        Ok(found) => Some(screen(&dir, &found, caller)?),
        Err(Errno::ENOENT) => None,
        Err(e) => return Err(e.into()),
    };
    if old.as_ref().is_some_and(|st| kind(st) != SFlag::S_IFREG) {
        return Ok(false);
    }
    let Some((tmp, fd)) = beside(&dir, &name)? else {
        return Ok(false);
    };
    let written = fill(fd, bytes, old.as_ref(), caller).and_then(|()| {
        // A name that was free must still be: what appeared there meanwhile is not ours.
        let how = match old {
            Some(_) => nix::fcntl::RenameFlags::empty(),
            None => nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        };
        nix::fcntl::renameat2(&dir, tmp.as_os_str(), &dir, name.as_os_str(), how)
            .map_err(io::Error::from)
    });
    if written.is_err() {
        let _ = nix::unistd::unlinkat(
            &dir,
            tmp.as_os_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }
    written.map(|()| true)
}

/// A new file beside `name` in `dir`, `.NAME.nslab-PID` (a number more when that is
/// taken), mode 0600, never through a link; None where the directory takes no new file
/// from this user.
fn beside(dir: &OwnedFd, name: &OsStr) -> io::Result<Option<(OsString, OwnedFd)>> {
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    for n in 0..100 {
        let mut tmp = OsString::from(".");
        tmp.push(name);
        tmp.push(format!(".nslab-{}", std::process::id()));
        if n > 0 {
            tmp.push(format!("-{n}"));
        }
        match openat(dir, tmp.as_os_str(), flags, Mode::from_bits_truncate(0o600)) {
            Ok(fd) => return Ok(Some((tmp, fd))),
            Err(Errno::EEXIST) => continue,
            Err(Errno::EACCES | Errno::EPERM | Errno::EROFS) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::other(
        "no free name beside it for the new content",
    ))
}

/// Writes the new file whole, to disk, with the old file's mode and owner (a new one's
/// goes to the invoking user).
fn fill(fd: OwnedFd, bytes: &[u8], old: Option<&FileStat>, caller: &Caller) -> io::Result<()> {
    match old {
        Some(st) => {
            // The owner first: a change of owner clears set-id bits the mode may carry.
            let (u, g) = (
                nix::unistd::Uid::from_raw(st.st_uid),
                nix::unistd::Gid::from_raw(st.st_gid),
            );
            let _ = nix::unistd::fchown(&fd, Some(u), Some(g));
            nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(st.st_mode & 0o777))?;
        }
        None => give(&fd, caller)?,
    }
    let mut f = File::from(fd);
    std::io::Write::write_all(&mut f, bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod replaced {
    use super::super::Caller;
    use super::{replace, replace_for};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// A report rewritten after the teardown: a new content renamed over the name, with
    /// the old file's mode and owner, nothing left beside it; what `create` refuses is
    /// refused, and a FIFO or a device is left to be written through.
    #[test]
    fn a_report_is_replaced_whole_and_what_create_refuses_is_refused() {
        let dir = std::env::temp_dir().join(format!("nslab-replace-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let report = dir.join("r.xml");
        let fresh = replace(&report, b"first, longer");
        let fresh_mode = std::fs::metadata(&report).map(|m| m.mode() & 0o777);
        std::fs::set_permissions(&report, PermissionsExt::from_mode(0o644)).unwrap();
        let old_ino = std::fs::metadata(&report).unwrap().ino();
        let again = replace(&report, b"second");
        let meta = std::fs::metadata(&report).unwrap();
        let text = std::fs::read_to_string(&report).unwrap();
        // A link at the name, and a file with another hard link: refused, untouched.
        let victim = dir.join("victim");
        std::fs::write(&victim, "secret").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("link.xml")).unwrap();
        let through_link = replace(&dir.join("link.xml"), b"x").map(|_| ());
        std::fs::hard_link(&victim, dir.join("hard.xml")).unwrap();
        let hard = replace(&dir.join("hard.xml"), b"x").map(|_| ());
        let victim_after = std::fs::read_to_string(&victim).unwrap();
        let fifo = dir.join("fifo.xml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let to_fifo = replace(&fifo, b"x");
        let to_null = replace(std::path::Path::new("/dev/null"), b"x");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let sudo = Caller::new(0, Some((4711, 4712)));
        let given = nix::unistd::geteuid().is_root().then(|| {
            replace_for(&dir.join("u.xml"), b"u", &sudo).unwrap();
            let m = std::fs::metadata(dir.join("u.xml")).unwrap();
            (m.uid(), m.gid(), m.mode() & 0o777)
        });
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(fresh.unwrap(), "a new report is written by a rename");
        assert_eq!(
            fresh_mode.unwrap(),
            0o600,
            "a new report is its reader's alone"
        );
        assert!(again.unwrap(), "an old report is replaced by a rename");
        assert_eq!(text, "second");
        assert_eq!(meta.mode() & 0o777, 0o644, "the old file's mode is kept");
        assert_ne!(meta.ino(), old_ino, "a new file took the name");
        let e = through_link.expect_err("a link at the name is refused");
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        hard.expect_err("a file with other hard links is refused");
        assert_eq!(victim_after, "secret");
        assert!(!to_fifo.unwrap(), "a FIFO is left to be written through");
        assert!(!to_null.unwrap(), "a device is left to be written through");
        assert_eq!(
            names,
            ["fifo.xml", "hard.xml", "link.xml", "r.xml", "victim"],
            "nothing left beside the names"
        );
        if let Some(given) = given {
            assert_eq!(
                given,
                (4711, 4712, 0o600),
                "a new file goes to the sudo user"
            );
        }
    }
}
