//! Files nslab writes for its caller at a path the caller gives (`capture -w`, `test
//! --junit`). nslab runs as root and the path is often in a directory anyone can write
//! (/tmp), where another user may have put something at that name first: a link to
//! /etc/passwd, a hard link to /etc/shadow (truncated through the name), or a file or
//! FIFO of their own that would hand them the capture or the report. The kernel's
//! `fs.protected_*` switches refuse most of these, but they may be off (this is what
//! they would refuse, whatever they are set to).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::{OFlag, open};
use nix::sys::stat::{Mode, SFlag, fstat};

/// Opens `path` to write a whole new content: a new file (mode 0644), or an existing
/// regular file (truncated) or FIFO that is safe to write. Refused (never followed or
/// truncated): a symbolic link at the name (`ELOOP`); a regular file with another hard
/// link; in a directory others can write, a file or FIFO that is neither this user's
/// nor the directory owner's (`PermissionDenied`); anything else but a character
/// device (`/dev/null`). Directories on the way are followed as given.
pub fn create(path: &Path) -> io::Result<File> {
    // Another user may create the name between the look and the create: look again.
    for _ in 0..3 {
        match open(
            path,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(found) => return reopen(path, found),
            Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(e.into()),
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
        {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            r => return r,
        }
    }
    Err(io::Error::other("its name keeps changing under nslab"))
}

/// What went wrong, for the caller's message: `ELOOP` is the link at the name.
pub fn why(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ELOOP) => "it is a symbolic link; give the file it names".into(),
        _ => e.to_string(),
    }
}

/// Checks what `found` (an `O_PATH` descriptor of the name, not followed) is, and only
/// then opens it for writing, through the descriptor: the name may have changed since.
fn reopen(path: &Path, found: OwnedFd) -> io::Result<File> {
    let st = fstat(&found)?;
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    let refuse = |kind, why: String| Err(io::Error::new(kind, why));
    if kind == SFlag::S_IFLNK {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    if kind == SFlag::S_IFREG && st.st_nlink > 1 {
        return refuse(
            io::ErrorKind::PermissionDenied,
            format!(
                "it has {} hard links: truncating it would truncate the file under its other names",
                st.st_nlink
            ),
        );
    }
    if !matches!(kind, SFlag::S_IFREG | SFlag::S_IFIFO | SFlag::S_IFCHR) {
        return refuse(
            io::ErrorKind::InvalidInput,
            "it is not a regular file, a FIFO or a character device".into(),
        );
    }
    if kind != SFlag::S_IFCHR {
        planted(path, st.st_uid)?;
    }
    // Reopened through the descriptor, never the name again; a FIFO's open waits here
    // for its reader, as `wireshark -k -i FIFO` expects.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(format!("/proc/self/fd/{}", found.as_raw_fd()))?;
    if kind == SFlag::S_IFREG {
        file.set_len(0)?;
    }
    Ok(file)
}

/// Refuses a file of `owner` in a directory others than its owner can write, unless the
/// file is this user's or the directory owner's (the rule of `fs.protected_regular=2`).
fn planted(path: &Path, owner: u32) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = std::fs::metadata(parent)?;
    let me = nix::unistd::geteuid().as_raw();
    if dir.mode() & 0o022 == 0 || owner == me || owner == dir.uid() {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "it belongs to uid {owner}, in {} which others can write (mode {:o}): another user may have put it there to read what nslab writes; remove it or write elsewhere",
            parent.display(),
            dir.mode() & 0o7777
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::create;
    use std::io::Write;

    #[test]
    fn a_new_file_is_made_and_an_own_file_is_replaced() {
        let dir = std::env::temp_dir().join(format!("nslab-output-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let f = dir.join("a.out");
        create(&f).unwrap().write_all(b"first, longer").unwrap();
        create(&f).unwrap().write_all(b"second").unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&f).unwrap().permissions());
        let null = create(std::path::Path::new("/dev/null")).map(|_| ());
        let in_dir = create(&dir).map(|_| ());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(text, "second");
        assert_eq!(mode & 0o777, 0o644);
        null.expect("a character device is written");
        assert!(in_dir.is_err(), "a directory is refused");
    }
}

#[cfg(test)]
mod links {
    use super::create;

    #[test]
    fn the_capture_file_is_never_written_through_a_link() {
        let dir = std::env::temp_dir().join(format!("nslab-capw-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let victim = dir.join("shadow");
        std::fs::write(&victim, "root:secret\n").unwrap();
        let link = dir.join("x.pcap");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let through_link = create(&link).map(|_| ());
        let victim_after = std::fs::read_to_string(&victim).unwrap();
        let plain = create(&dir.join("y.pcap")).map(|_| ());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(victim_after, "root:secret\n", "truncated through the link");
        let err = through_link.expect_err("a link at the name is refused");
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
        plain.expect("a plain new file is made");
    }
}

#[cfg(test)]
mod planted {
    use super::create;
    use std::os::unix::fs::PermissionsExt;

    /// A directory anyone can write, as /tmp: what another user leaves there at the
    /// name must not receive the capture.
    #[test]
    fn a_file_or_fifo_another_user_left_in_a_shared_directory_gets_no_capture() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to give a file to another user");
            return;
        }
        let dir = std::env::temp_dir().join(format!("nslab-capshared-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let nobody = Some(nix::unistd::Uid::from_raw(65534));
        let theirs = dir.join("theirs.pcap");
        std::fs::write(&theirs, "").unwrap();
        nix::unistd::chown(&theirs, nobody, None).unwrap();
        let fifo = dir.join("fifo.pcap");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
        nix::unistd::chown(&fifo, nobody, None).unwrap();
        let file_result = create(&theirs).map(|_| ());
        // Without a reader a FIFO's open would block: a refusal must come first.
        let fifo_result = create(&fifo).map(|_| ());
        let mine = create(&dir.join("mine.pcap")).map(|_| ());
        std::fs::remove_dir_all(&dir).unwrap();
        let err = file_result.expect_err("another user's file is refused");
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
        let err = fifo_result.expect_err("another user's FIFO is refused");
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
        mine.expect("a new file is made");
    }
}

#[cfg(test)]
mod hard_links {
    use super::create;

    /// A hard link is another name of the same file: truncating it truncates the file
    /// (/etc/shadow, linked into /tmp where `protected_hardlinks` is off).
    #[test]
    fn a_name_with_other_hard_links_is_not_truncated() {
        let dir = std::env::temp_dir().join(format!("nslab-caplink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let victim = dir.join("shadow");
        std::fs::write(&victim, "root:secret\n").unwrap();
        let link = dir.join("x.pcap");
        std::fs::hard_link(&victim, &link).unwrap();
        let result = create(&link).map(|_| ());
        let victim_after = std::fs::read_to_string(&victim).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            victim_after, "root:secret\n",
            "truncated through a hard link"
        );
        let err = result.expect_err("a file with two names is refused");
        assert!(err.to_string().contains("hard link"), "{err}");
    }
}
