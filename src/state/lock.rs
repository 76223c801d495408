//! The per-lab lock: an exclusive `flock` on `/run/nslab/<lab>.lock`, so two commands
//! on one lab run one after the other. `down` removes the lock file while holding it; a
//! waiter that then gets the lock sees the path no longer names its file and tries again,
//! so two holders can never exist.
//!
//! The lock file stays empty: a waiter finds the holder's pid in `/proc/locks`. A file
//! with data would cost a discard when its block is freed (this host's /run is ext4
//! mounted with `discard`): 0.75 ms when `down` closes the removed file, a sixth of a
//! small lab's teardown.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use nix::fcntl::{Flock, FlockArg};
use std::path::{Path, PathBuf};

use super::{HostContext, LabDir, StateError};

pub struct LabLock {
    /// Held until dropped (after `drop` below removes the file).
    _file: Flock<File>,
    path: PathBuf,
    dir: LabDir,
}

impl LabLock {
    /// Takes the lab's lock, waiting for the holder if there is one; `waiting` is called
    /// once with the holder's pid before blocking.
    pub fn acquire(
        host: &HostContext,
        lab: &str,
        waiting: impl FnOnce(Option<u32>),
    ) -> Result<LabLock, StateError> {
        let taken = Self::take(host, lab, waiting, |file, path| {
            // Blocks until the holder releases the lock.
            Flock::lock(file, FlockArg::LockExclusive)
                .map(Ok)
                .map_err(|(_, e)| StateError::io(path, e.into()))
        })?;
        taken.map_err(|why| StateError::io(&host.run_dir, std::io::Error::other(why)))
    }

    /// [`acquire`](Self::acquire), given up when `stop` says why while it waits (a
    /// signal: `up` waiting for another command is stopped at once, having done
    /// nothing). The holder is polled every 50 ms, so waiters are not served in order.
    pub fn acquire_unless(
        host: &HostContext,
        lab: &str,
        waiting: impl FnOnce(Option<u32>),
        stop: impl Fn() -> Option<String>,
    ) -> Result<Result<LabLock, String>, StateError> {
        Self::take(host, lab, waiting, |mut file, path| {
            loop {
                if let Some(why) = stop() {
                    return Ok(Err(why));
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
                match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                    Ok(locked) => return Ok(Ok(locked)),
                    Err((f, nix::errno::Errno::EWOULDBLOCK)) => file = f,
                    Err((_, e)) => return Err(StateError::io(path, e.into())),
                }
            }
        })
    }

    /// The lock, with `wait` for a holder (told to `waiting` first); `wait` may give up,
    /// saying why.
    fn take(
        host: &HostContext,
        lab: &str,
        waiting: impl FnOnce(Option<u32>),
        mut wait: impl FnMut(File, &Path) -> Result<Result<Flock<File>, String>, StateError>,
    ) -> Result<Result<LabLock, String>, StateError> {
        crate::model::names::check_lab_name(lab).map_err(StateError::BadLabName)?;
        let dir = host.run_dir.clone();
        let path: PathBuf = dir.join(format!("{lab}.lock"));
        let mut waiting = Some(waiting);
        loop {
            // Again each time: someone may have removed the directory in between.
            super::files::ensure_root(&dir)?;
            let file = open_lock_file(&path)?;
            let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(locked) => locked,
                Err((file, _)) => {
                    if let Some(w) = waiting.take() {
                        w(holder_of(&file));
                    }
                    match wait(file, &path)? {
                        Ok(locked) => locked,
                        Err(why) => return Ok(Err(why)),
                    }
                }
            };
            // The holder may have removed the file before we got it: start over.
            if !still_at(&file, &path) {
                continue;
            }
            return Ok(Ok(LabLock {
                _file: file,
                path,
                dir: host.lab_dir(lab),
            }));
        }
    }
}

impl Drop for LabLock {
    /// The file goes when the lab is not on record (taken down, rolled back, never up,
    /// or gone while a command waited), so no lock outlives its lab; the lock is released
    /// after that, as `file` drops. The run directory stays, empty, as iproute2's
    /// `/run/netns` does (see `HostContext`).
    fn drop(&mut self) {
        if !self.dir.exists() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether the locked `file` is still the file at `path`: one removed (and perhaps made
/// again) while we waited for its lock would keep nobody out.
pub(super) fn still_at(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

/// Opens a lock file, creating it empty: anyone who can open it can `flock` it and hold
/// every command waiting on it forever (`down` included), and `flock` needs only a
/// read-only descriptor. So it is never opened through a link, must be a regular file of
/// this process's user, and is the owner's alone; one an older nslab left readable is made
/// so.
pub fn open_lock_file(path: &Path) -> Result<File, StateError> {
    use std::os::unix::fs::PermissionsExt;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| super::files::io_err(path, e))?;
    let meta = file.metadata().map_err(|e| StateError::io(path, e))?;
    let me = nix::unistd::geteuid().as_raw();
    let why = if !meta.file_type().is_file() {
        Some("the lock is not a regular file".to_string())
    } else if meta.uid() != me {
        Some(format!("the lock is owned by uid {}, not {me}", meta.uid()))
    } else {
        None
    };
    if let Some(why) = why {
        return Err(StateError::Unsafe {
            path: path.to_path_buf(),
            why,
        });
    }
    if meta.mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| StateError::io(path, e))?;
    }
    Ok(file)
}

/// Who holds the `flock` on this file, from `/proc/locks`; `None` if it cannot tell.
fn holder_of(file: &File) -> Option<u32> {
    let meta = file.metadata().ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    flock_holder(
        &locks,
        libc::major(meta.dev()),
        libc::minor(meta.dev()),
        meta.ino(),
    )
    .or_else(|| flock_holder_by_inode(&locks, meta.ino()))
}

/// The granted `flock`s in `/proc/locks` text, as (pid, `MAJ:MIN:INODE`), from lines such
/// as `1: FLOCK  ADVISORY  WRITE 4242 fe:00:326279 0 EOF` (blocked waiters' carry `->`).
fn flocks(locks: &str) -> impl Iterator<Item = (u32, &str)> {
    locks.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [_, "FLOCK", _, _, pid, id, ..] => Some((pid.parse().ok()?, *id)),
            _ => None,
        }
    })
}

/// The pid holding a `flock` on the inode of that device.
fn flock_holder(locks: &str, major: u32, minor: u32, ino: u64) -> Option<u32> {
    let want = format!("{major:02x}:{minor:02x}:{ino}");
    flocks(locks).find_map(|(pid, id)| (id == want).then_some(pid))
}

/// The holder by inode alone, when exactly one `flock` has that inode: /proc/locks names
/// the file system's own device, which `stat` may not report (btrfs subvolumes).
fn flock_holder_by_inode(locks: &str, ino: u64) -> Option<u32> {
    let ino = ino.to_string();
    let mut holders = flocks(locks)
        .filter(|(_, id)| id.rsplit(':').next() == Some(ino.as_str()))
        .map(|(pid, _)| pid);
    let first = holders.next()?;
    holders.next().is_none().then_some(first)
}

/// A short host-wide lock for what all labs share (`/run/netns` and its mount): `up`
/// holds it from preparing the directory until its journal exists, and the last lab
/// going down holds it while it checks that no lab is left and releases the directory,
/// so one lab can never pull the directory out from under another's `up`. It is the file
/// `<run_dir>.lock` (`/run/nslab.lock`, or `$XDG_RUNTIME_DIR/nslab.lock` for a rootless
/// lab), which stays, empty, as the run directory does.
pub struct HostLock {
    _file: Flock<File>,
}

impl HostLock {
    pub fn acquire(host: &HostContext) -> Result<HostLock, StateError> {
        let path = host_lock_path(host);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StateError::io(dir, e))?;
        }
        let file = open_lock_file(&path)?;
        // Blocks while another nslab holds it. Nobody removes the file, so the file
        // locked is the one every nslab opens.
        let file = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| StateError::io(&path, e.into()))?;
        Ok(HostLock { _file: file })
    }
}

/// Where the [`HostLock`] of this host is: beside the run directory, so an idle host's
/// run directory stays empty, and not its parent (`/run`), which anyone can open and
/// `flock`.
pub fn host_lock_path(host: &HostContext) -> PathBuf {
    let mut name = host.run_dir.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::flock_holder;
    use super::{HostContext, LabLock};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// A run directory of this test's own, as `ensure_root` wants it (mode 0755).
    fn run_dir(name: &str) -> HostContext {
        let dir = std::env::temp_dir().join(format!("nslab-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        HostContext {
            run_dir: dir,
            netns_dir: "/nonexistent".into(),
            privileged: false,
            host: None,
        }
    }

    #[test]
    fn a_waiter_that_is_told_to_stop_gives_up_and_one_that_is_not_gets_the_lock() {
        let host = run_dir("lock-stop");
        let held = LabLock::acquire(&host, "ls1", |_| {}).unwrap();
        // Held (flock is per open file, so this process's second open waits too).
        let told = std::cell::Cell::new(false);
        let polls = std::cell::Cell::new(0);
        let stopped = LabLock::acquire_unless(
            &host,
            "ls1",
            |_| told.set(true),
            || {
                polls.set(polls.get() + 1);
                (polls.get() > 2).then(|| "SIGINT".to_string())
            },
        )
        .unwrap();
        assert_eq!(stopped.err().as_deref(), Some("SIGINT"));
        assert!(told.get(), "told whom it waits for first");
        drop(held);
        let got = LabLock::acquire_unless(&host, "ls1", |_| {}, || None).unwrap();
        assert!(got.is_ok(), "free: taken at once");
        drop(got);
        std::fs::remove_dir_all(&host.run_dir).unwrap();
    }

    #[test]
    fn lab_lock_files_are_the_owners_alone_even_one_left_readable() {
        let host = run_dir("lock-mode");
        let lock = LabLock::acquire(&host, "lm1", |_| {}).unwrap();
        let mode = |f: &str| std::fs::metadata(host.run_dir.join(f)).unwrap().mode() & 0o777;
        assert_eq!(mode("lm1.lock"), 0o600, "a new lock file");
        drop(lock);
        let old = host.run_dir.join("lm2.lock");
        std::fs::write(&old, "").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        let lock = LabLock::acquire(&host, "lm2", |_| {}).unwrap();
        assert_eq!(mode("lm2.lock"), 0o600, "a lock file an older nslab left");
        drop(lock);
        std::fs::remove_dir_all(&host.run_dir).unwrap();
    }

    #[test]
    fn the_host_lock_is_an_owner_only_file_beside_the_run_directory() {
        let host = run_dir("host-lock");
        let path = super::host_lock_path(&host);
        assert_eq!(
            path.file_name().unwrap().to_string_lossy(),
            format!(
                "{}.lock",
                host.run_dir.file_name().unwrap().to_string_lossy()
            )
        );
        let mode = || std::fs::metadata(&path).unwrap().mode() & 0o777;
        let lock = super::HostLock::acquire(&host).unwrap();
        assert_eq!(mode(), 0o600, "a new host lock");
        drop(lock);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let lock = super::HostLock::acquire(&host).unwrap();
        assert_eq!(mode(), 0o600, "a host lock an older nslab left readable");
        drop(lock);
        assert_eq!(std::fs::read_dir(&host.run_dir).unwrap().count(), 0);
        // Something else at the path (here a directory) is refused, not locked.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(super::HostLock::acquire(&host).is_err());
        std::fs::remove_dir(&path).unwrap();
        std::fs::remove_dir_all(&host.run_dir).unwrap();
    }

    const LOCKS: &str = "\
1: POSIX  ADVISORY  WRITE 611 00:1a:4242 0 EOF
2: FLOCK  ADVISORY  WRITE 7001 fe:00:326279 0 EOF
2: -> FLOCK  ADVISORY  WRITE 7002 fe:00:326279 0 EOF
3: FLOCK  ADVISORY  WRITE 7003 fe:00:3262790 0 EOF
";

    #[test]
    fn the_holder_is_the_granted_flock_on_the_same_inode() {
        assert_eq!(flock_holder(LOCKS, 0xfe, 0, 326279), Some(7001));
        assert_eq!(flock_holder(LOCKS, 0xfe, 0, 3262790), Some(7003));
    }

    #[test]
    fn an_inode_held_once_names_its_holder_whatever_the_device() {
        use super::flock_holder_by_inode;
        assert_eq!(flock_holder_by_inode(LOCKS, 3262790), Some(7003));
        assert_eq!(flock_holder_by_inode(LOCKS, 4242), None, "a POSIX lock");
        let twice = format!("{LOCKS}4: FLOCK  ADVISORY  WRITE 7009 00:2b:3262790 0 EOF\n");
        assert_eq!(flock_holder_by_inode(&twice, 3262790), None, "ambiguous");
    }

    #[test]
    fn other_inodes_devices_and_posix_locks_are_not_holders() {
        assert_eq!(flock_holder(LOCKS, 0xfe, 1, 326279), None);
        assert_eq!(flock_holder(LOCKS, 0, 0x1a, 4242), None);
        assert_eq!(flock_holder(LOCKS, 0xfe, 0, 32627), None);
        assert_eq!(flock_holder("", 0xfe, 0, 326279), None);
    }
}
