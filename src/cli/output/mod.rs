//! Files nslab writes for its caller at a path the caller gives (`capture -w`, `test
//! --junit`). nslab runs as root and the path is often in a directory anyone can write
//! (/tmp), where another user may have put something at that name first: a link to
//! /etc/passwd, a hard link to /etc/shadow (truncated through the name), or a file or
//! FIFO of their own that would hand them the capture or the report; or at a directory
//! on the way: `/tmp/evil/x.xml` with `/tmp/evil` their link to /etc. The kernel's
//! `fs.protected_*` switches refuse most of these, but they may be off (this is what
//! they would refuse, whatever they are set to), and they say nothing of a directory
//! another user owns. A pcap can carry secrets (passwords of clear-text protocols), so a
//! new file is its reader's alone: 0600, given to the user who ran `sudo` (as dumpcap
//! makes its files 0600, and tcpdump writes as its own user).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat};

mod whole;
pub use whole::replace;

/// The kernel's own bound on the links one lookup follows.
const MAX_LINKS: u32 = 40;

/// Whom a file is written for: nslab's user, and under `sudo` the user who ran it
/// (`SUDO_UID`/`SUDO_GID`), whose directories and files are as good as root's here and
/// who gets the new file, to open in Wireshark without root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    euid: u32,
    invoker: Option<(u32, u32)>,
    /// Whether nslab may write where its caller may not (root of the host's user
    /// namespace), so directories and links on the way are walked and checked here. An
    /// ordinary user's nslab (a rootless lab, in a user namespace where others' files
    /// are nobody's) writes with that user's own rights: the kernel resolves the path,
    /// with its own `fs.protected_symlinks`.
    guards: bool,
}

impl Caller {
    /// nslab's user, and the user `sudo` names when nslab is root (only sudo, or root
    /// itself, sets those variables for a root process: nslab is never set-uid).
    pub fn from_env() -> Caller {
        let num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
        let host_userns = std::fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|m| m.split_whitespace().eq(["0", "0", "4294967295"]));
        let root = nix::unistd::getuid().is_root() && nix::unistd::geteuid().is_root();
        let invoker = match (num("SUDO_UID"), num("SUDO_GID")) {
            (Some(u), Some(g)) if root && host_userns && u != 0 => Some((u, g)),
            _ => None,
        };
        Caller {
            guards: root && host_userns,
            ..Caller::new(nix::unistd::geteuid().as_raw(), invoker)
        }
    }

    /// A root caller (`euid` 0) or another, with the user who ran sudo.
    pub fn new(euid: u32, invoker: Option<(u32, u32)>) -> Caller {
        Caller {
            euid,
            invoker,
            guards: euid == 0,
        }
    }

    /// nslab's user or the one who ran sudo.
    fn is(&self, uid: u32) -> bool {
        uid == self.euid || self.invoker.is_some_and(|(u, _)| u == uid)
    }

    /// Whether a directory or link of `uid` is as good as the caller's: root's too.
    fn trusts(&self, uid: u32) -> bool {
        uid == 0 || self.is(uid)
    }
}

/// [`create_for`] the user running nslab (see [`Caller::from_env`]).
pub fn create(path: &Path) -> io::Result<File> {
    create_for(path, &Caller::from_env())
}

/// Opens `path` to write a whole new content: a new file (mode 0600, the invoking
/// user's under sudo), or an existing regular file (truncated, its mode and owner kept)
/// or FIFO that is safe to write. Refused (never followed or truncated): a symbolic link
/// at the name (`ELOOP`); a regular file with another hard link; in a directory others
/// can write, a file or FIFO that is neither the caller's nor the directory owner's
/// (`PermissionDenied`); anything else but a character device (`/dev/null`). The
/// directories on the way are walked one by one (see [`parent`]).
pub fn create_for(path: &Path, caller: &Caller) -> io::Result<File> {
    let (dir, name) = parent(path, caller)?;
    // Another user may create the name between the look and the create: look again.
    for _ in 0..3 {
        let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match openat(&dir, name.as_os_str(), flags, Mode::empty()) {
            Ok(found) => return reopen(&dir, found, caller),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e.into()),
        }
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match openat(
            &dir,
            name.as_os_str(),
            flags,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(fd) => {
                give(&fd, caller)?;
                return Ok(File::from(fd));
            }
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::other("its name keeps changing under nslab"))
}

/// Hands a new file to the user who ran sudo (root made it 0600, so no one else could
/// open it in between).
fn give(fd: &OwnedFd, caller: &Caller) -> io::Result<()> {
    if let Some((uid, gid)) = caller.invoker {
        let (u, g) = (
            nix::unistd::Uid::from_raw(uid),
            nix::unistd::Gid::from_raw(gid),
        );
        nix::unistd::fchown(fd, Some(u), Some(g))?;
    }
    Ok(())
}

/// What went wrong, for the caller's message: `ELOOP` is the link at the name.
pub fn why(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ELOOP) => "it is a symbolic link; give the file it names".into(),
        _ => e.to_string(),
    }
}

fn refused(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, why)
}

/// The directory `path` names its file in, opened (`O_PATH`) by walking each part from
/// `/` (or the working directory) through descriptors, so no part can be swapped between
/// a check and its use; and the file's name. Refused: a directory owned by a user other
/// than root and the caller (who could swap what nslab puts in it), and a symbolic link
/// someone else could have put there: one in a directory others can write without the
/// sticky bit, or, in a sticky one (/tmp), a link owned by neither the caller, root nor
/// the directory's owner (the kernel's `fs.protected_symlinks` rule). Other links are
/// followed (a home directory that is a link of its owner's). A caller without root's
/// rights gets the directory as the kernel resolves it (see [`Caller`]).
fn parent(path: &Path, caller: &Caller) -> io::Result<(OwnedFd, OsString)> {
    let Some(Component::Normal(name)) = path.components().next_back() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it names no file (it ends in `/`, `.` or `..`)",
        ));
    };
    if !caller.guards {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = openat(AT_FDCWD, dir, flags, Mode::empty()).map_err(|e| {
            io::Error::new(io::Error::from(e).kind(), format!("{}: {e}", dir.display()))
        })?;
        return Ok((fd, name.to_os_string()));
    }
    let mut parts: VecDeque<OsString> = path
        .components()
        .map(|c| c.as_os_str().to_os_string())
        .collect();
    parts.pop_back();
    let start = if path.is_absolute() {
        parts.pop_front();
        OsStr::new("/")
    } else {
        OsStr::new(".")
    };
    let walk = Walk {
        caller,
        shown: PathBuf::from(start),
        links: 0,
    };
    Ok((walk.run(start, parts)?, name.to_os_string()))
}

/// A walk down a path's directories: where it is (for messages), links followed so far.
struct Walk<'a> {
    caller: &'a Caller,
    shown: PathBuf,
    links: u32,
}

impl Walk<'_> {
    fn run(mut self, start: &OsStr, mut parts: VecDeque<OsString>) -> io::Result<OwnedFd> {
        let (mut dir, mut dir_st) = self.enter(AT_FDCWD, start)?;
        while let Some(part) = parts.pop_front() {
            if part.is_empty() || part == "." {
                continue;
            }
            let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let next = openat(&dir, part.as_os_str(), flags, Mode::empty())
                .map_err(|e| self.fail(&part, e.into()))?;
            let st = fstat(&next)?;
            if kind(&st) != SFlag::S_IFLNK {
                self.shown.push(&part);
                (dir, dir_st) = self.enter(&next, OsStr::new("."))?;
                continue;
            }
            self.follow(&dir_st, &st, &part)?;
            let target = readlinkat(&next, "").map_err(|e| self.fail(&part, e.into()))?;
            let target = Path::new(&target);
            for c in target.components().rev() {
                parts.push_front(c.as_os_str().to_os_string());
            }
            if target.is_absolute() {
                parts.pop_front();
                self.shown = PathBuf::from("/");
                (dir, dir_st) = self.enter(AT_FDCWD, OsStr::new("/"))?;
            }
        }
        Ok(dir)
    }

    /// Opens `name` beneath `at` as a directory, and checks its owner.
    fn enter<Fd: AsFd>(&self, at: Fd, name: &OsStr) -> io::Result<(OwnedFd, FileStat)> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = openat(at, name, flags, Mode::empty())
            .map_err(|e| self.fail(OsStr::new(""), e.into()))?;
        let st = fstat(&fd)?;
        if !self.caller.trusts(st.st_uid) {
            return Err(refused(format!(
                "{} belongs to uid {}, who could replace what nslab writes in it; write into a directory of yours or root's",
                self.shown.display(),
                st.st_uid
            )));
        }
        Ok((fd, st))
    }

    fn fail(&self, part: &OsStr, e: io::Error) -> io::Error {
        let at = self.shown.join(part);
        io::Error::new(e.kind(), format!("{}: {e}", at.display()))
    }

    /// Whether the link `link` in the directory `dir` may be followed (see [`parent`]).
    fn follow(&mut self, dir: &FileStat, link: &FileStat, part: &OsStr) -> io::Result<()> {
        self.links += 1;
        if self.links > MAX_LINKS {
            return Err(self.fail(part, io::Error::from_raw_os_error(libc::ELOOP)));
        }
        let others_write = dir.st_mode & 0o022 != 0;
        let sticky = dir.st_mode & libc::S_ISVTX != 0;
        let owner = link.st_uid;
        if !others_write || (sticky && (self.caller.trusts(owner) || owner == dir.st_uid)) {
            return Ok(());
        }
        Err(refused(format!(
            "{} is a symbolic link of uid {owner} in a directory others can write (mode {:o}): nslab follows no link another user could have put there; give the path it names",
            self.shown.join(part).display(),
            dir.st_mode & 0o7777
        )))
    }
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// Checks what `found` (an `O_PATH` descriptor of the name in `dir`, not followed) is,
/// and only then opens it for writing, through the descriptor: the name may have changed
/// since. An existing file keeps its mode and owner, as a shell's `>` leaves them.
fn reopen(dir: &OwnedFd, found: OwnedFd, caller: &Caller) -> io::Result<File> {
    let kind = kind(&screen(dir, &found, caller)?);
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

/// What `found` (the name in `dir`, not followed) is, if nslab may write it: not a
/// link, not a regular file with other hard links, not one another user planted (see
/// [`create_for`]).
fn screen(dir: &OwnedFd, found: &OwnedFd, caller: &Caller) -> io::Result<FileStat> {
    let st = fstat(found)?;
    let kind = kind(&st);
    if kind == SFlag::S_IFLNK {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    if kind == SFlag::S_IFREG && st.st_nlink > 1 {
        return Err(refused(format!(
            "it has {} hard links: truncating it would truncate the file under its other names",
            st.st_nlink
        )));
    }
    if !matches!(kind, SFlag::S_IFREG | SFlag::S_IFIFO | SFlag::S_IFCHR) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is not a regular file, a FIFO or a character device",
        ));
    }
    if kind != SFlag::S_IFCHR {
        planted(&fstat(dir)?, st.st_uid, caller)?;
    }
    Ok(st)
}

/// Refuses a file of `owner` in a directory others than its owner can write, unless the
/// file is the caller's or the directory owner's (the rule of `fs.protected_regular=2`).
fn planted(dir: &FileStat, owner: u32, caller: &Caller) -> io::Result<()> {
    if dir.st_mode & 0o022 == 0 || caller.is(owner) || owner == dir.st_uid {
        return Ok(());
    }
    Err(refused(format!(
        "it belongs to uid {owner}, in a directory others can write (mode {:o}): another user may have put it there to read what nslab writes; remove it or write elsewhere",
        dir.st_mode & 0o7777
    )))
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
        assert_eq!(mode & 0o777, 0o600);
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

/// Root-only tests: whether they can run (false skips, with a note; under `CI=true` a
/// test that cannot run fails).
#[cfg(test)]
fn as_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "needs root");
    eprintln!("skipped: needs root to give files to other users");
    false
}

#[cfg(test)]
mod modes {
    use super::{Caller, as_root, create, create_for};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// A pcap may hold passwords: a new file is 0600, and under sudo the invoking user's
    /// (so they open it without root); an existing file keeps its mode and owner.
    #[test]
    fn a_new_file_is_the_callers_alone_and_an_existing_one_keeps_its_mode() {
        if !as_root() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("nslab-outmode-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let meta = |name: &str| std::fs::metadata(dir.join(name)).unwrap();
        let sudo = Caller::new(0, Some((4711, 4712)));
        create(&dir.join("root.pcap")).unwrap();
        create_for(&dir.join("user.pcap"), &sudo).unwrap();
        // The same user's file again (in a shared directory too): still theirs, 0600.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        create_for(&dir.join("user.pcap"), &sudo).unwrap();
        std::fs::write(dir.join("tight.pcap"), "old").unwrap();
        std::fs::set_permissions(dir.join("tight.pcap"), PermissionsExt::from_mode(0o600)).unwrap();
        std::fs::write(dir.join("open.pcap"), "old").unwrap();
        std::fs::set_permissions(dir.join("open.pcap"), PermissionsExt::from_mode(0o640)).unwrap();
        create_for(&dir.join("tight.pcap"), &sudo).unwrap();
        create_for(&dir.join("open.pcap"), &sudo).unwrap();
        let got: Vec<(u32, u32, u32, u64)> = ["root.pcap", "user.pcap", "tight.pcap", "open.pcap"]
            .map(|n| {
                let m = meta(n);
                (m.mode() & 0o7777, m.uid(), m.gid(), m.len())
            })
            .into();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(got[0], (0o600, 0, 0, 0), "root's own file");
        assert_eq!(got[1], (0o600, 4711, 4712, 0), "the sudo user's file");
        assert_eq!(
            got[2],
            (0o600, 0, 0, 0),
            "an existing 0600 file is not widened"
        );
        assert_eq!(
            got[3],
            (0o640, 0, 0, 0),
            "an existing file keeps its mode and owner"
        );
    }
}

#[cfg(test)]
mod parents {
    use super::{Caller, as_root, create, create_for};
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// A user made for one test and removed after it (`useradd`, `userdel`).
    struct User {
        name: String,
        uid: u32,
        gid: u32,
    }

    impl User {
        fn new() -> User {
            let name = format!("nslabt{}", std::process::id());
            let _ = Command::new("userdel").arg(&name).output();
            let o = Command::new("useradd")
                .args(["--system", "--no-create-home", "--user-group"])
                .args(["--shell", "/usr/sbin/nologin", &name])
                .output()
                .expect("useradd runs");
            assert!(o.status.success(), "useradd: {o:?}");
            let id = |flag: &str| -> u32 {
                let o = Command::new("id").args([flag, &name]).output().unwrap();
                String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
            };
            let (uid, gid) = (id("-u"), id("-g"));
            User { name, uid, gid }
        }

        fn owns(&self, path: &Path) {
            let (u, g) = (
                nix::unistd::Uid::from_raw(self.uid),
                nix::unistd::Gid::from_raw(self.gid),
            );
            nix::unistd::fchownat(
                nix::fcntl::AT_FDCWD,
                path,
                Some(u),
                Some(g),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .unwrap();
        }
    }

    impl Drop for User {
        fn drop(&mut self) {
            let _ = Command::new("userdel").arg(&self.name).output();
        }
    }

    fn dir(path: &Path, mode: u32) -> PathBuf {
        std::fs::create_dir_all(path).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        path.to_path_buf()
    }

    fn link(target: &Path, at: &Path) -> PathBuf {
        std::os::unix::fs::symlink(target, at).unwrap();
        at.to_path_buf()
    }

    /// Each case as real files: `shared` stands for /tmp (sticky, anyone writes), `etc`
    /// for a directory only root writes, `user` a throwaway user.
    #[test]
    fn directories_on_the_way_are_walked_as_protected_symlinks_would() {
        if !as_root() {
            return;
        }
        let user = User::new();
        let top = std::env::temp_dir().join(format!("nslab-outdirs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&top);
        let etc = dir(&top.join("etc"), 0o755);
        let shared = dir(&top.join("shared"), 0o1777);
        let open = dir(&top.join("open"), 0o777);
        let theirs = dir(&top.join("home/them"), 0o755);
        user.owns(&theirs);
        // Another user's link in a sticky shared directory, to a directory of root's.
        let evil = link(&etc, &shared.join("evil"));
        user.owns(&evil);
        // Root's own link there, and any link in a directory anyone can write unsticky.
        let mine = link(&etc, &shared.join("mine"));
        let unsticky = link(&etc, &open.join("any"));
        // A user's home that is a link of root's to a directory of theirs (as under sudo).
        let data = dir(&top.join("data/them"), 0o755);
        user.owns(&data);
        link(&data, &top.join("home/linked"));
        let loop_a = link(&shared.join("loop-b"), &shared.join("loop-a"));
        link(&loop_a, &shared.join("loop-b"));

        let root = Caller::new(0, None);
        let sudo = Caller::new(0, Some((user.uid, user.gid)));
        let try_as = |c: &Caller, p: PathBuf| create_for(&p, c).map(|_| ());
        let through_evil = try_as(&root, evil.join("x.xml"));
        let through_evil_sudo = try_as(&sudo, evil.join("x.xml"));
        let through_mine = try_as(&root, mine.join("mine.xml"));
        let through_unsticky = try_as(&root, unsticky.join("x.xml"));
        let into_theirs = try_as(&root, theirs.join("x.pcap"));
        let into_theirs_sudo = try_as(&sudo, theirs.join("y.pcap"));
        let home = try_as(&sudo, top.join("home/linked/z.pcap"));
        let home_root = try_as(&root, top.join("home/linked/w.pcap"));
        let looped = try_as(&root, loop_a.join("x"));
        let dotdot = try_as(&root, shared.join("../etc/up.xml"));
        let no_name = try_as(&root, top.join("etc/.."));
        let in_tmp = std::env::temp_dir().join(format!("nslab-outtmp-{}", std::process::id()));
        let tmp = create(&in_tmp).map(|_| ());
        let _ = std::fs::remove_file(&in_tmp);
        let in_etc: Vec<String> = std::fs::read_dir(&etc)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let in_data: Vec<String> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        std::fs::remove_dir_all(&top).unwrap();
        drop(user);

        let denied = |r: std::io::Result<()>, what: &str, needle: &str| {
            let e = r.expect_err(what);
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied,
                "{what}: {e}"
            );
            assert!(e.to_string().contains(needle), "{what}: {e}");
        };
        denied(
            through_evil,
            "another user's link in /tmp",
            "symbolic link of uid",
        );
        // Their own link, when they ran sudo: followed, as the kernel follows a link of
        // the follower's (they may write where it leads anyway).
        through_evil_sudo.expect("the sudo user's own link");
        denied(
            through_unsticky,
            "a link in an unsticky shared directory",
            "mode 777",
        );
        denied(into_theirs, "another user's directory", "who could replace");
        through_mine.expect("root's own link in /tmp is followed");
        into_theirs_sudo.expect("the sudo user's own directory");
        home.expect("the sudo user's home, a link of root's to their directory");
        denied(
            home_root,
            "a user's directory, for root alone",
            "who could replace",
        );
        let e = looped.expect_err("a loop of links");
        assert!(e.to_string().contains("symbolic links"), "{e}");
        dotdot.expect("`..` is walked too");
        assert!(no_name.is_err(), "a path ending in `..` names no file");
        tmp.expect("a file in the temporary directory itself");
        let mut in_etc = in_etc;
        in_etc.sort();
        assert_eq!(
            in_etc,
            ["mine.xml", "up.xml", "x.xml"],
            "what reached the root-only directory"
        );
        assert_eq!(in_data, ["z.pcap"]);
    }
}
