//! Named network namespaces without fork: a dedicated OS thread unshares a new network
//! namespace and bind-mounts `/proc/thread-self/ns/net` onto `/run/netns/<name>`, as
//! iproute2 does. Namespace switches happen only on nslab's own threads (never on tokio's,
//! which are reused), and a netlink socket stays bound to the namespace it was opened in.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::stat::Mode;

use crate::state::HostContext;

pub use crate::sys::netns::{netns_path, open};

/// Makes the netns directory (`/run/netns`) a shared mount point, the way `ip netns add`
/// does, so namespace mounts propagate into other mount namespaces. What nslab had to
/// create (the directory, the mount) is recorded in the host's marker, so the last `down`
/// can put the host back as it was.
pub fn ensure_netns_dir(host: &HostContext) -> io::Result<()> {
    let (dir, marker) = (host.netns_dir.as_path(), host.netns_dir_marker());
    let mut made = Vec::new();
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        made.push("dir");
    }
    let none: Option<&str> = None;
    let mut bound = false;
    let result = loop {
        match mount(none, dir, none, MsFlags::MS_SHARED | MsFlags::MS_REC, none) {
            Ok(()) => break Ok(()),
            Err(Errno::EINVAL) if !bound => {
                mount(
                    Some(dir),
                    dir,
                    none,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    none,
                )?;
                bound = true;
                made.push("mount");
            }
            Err(e) => break Err(e.into()),
        }
    };
    if !made.is_empty() {
        if let Some(parent) = marker.parent() {
            crate::state::files::ensure_root(parent).map_err(io::Error::other)?;
        }
        crate::state::files::replace(&marker, made.join("\n").as_bytes())
            .map_err(io::Error::other)?;
    }
    result
}

/// Undoes what [`ensure_netns_dir`] created, once no named namespace is left in the
/// netns directory (nslab's or anyone's). Returns whether it did.
pub fn release_netns_dir(host: &HostContext) -> io::Result<bool> {
    let (dir, marker) = (host.netns_dir.as_path(), host.netns_dir_marker());
    let Ok(made) = std::fs::read_to_string(&marker) else {
        return Ok(false);
    };
    if std::fs::read_dir(dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
    {
        return Ok(false);
    }
    if made.lines().any(|l| l == "mount") {
        match umount2(dir, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if made.lines().any(|l| l == "dir") {
        let _ = std::fs::remove_dir(dir);
    }
    std::fs::remove_file(&marker)?;
    Ok(true)
}

/// Creates the namespace named by `path` (in the netns directory) on the calling thread,
/// which is left inside it. Must run on a dedicated thread. Refuses a name that exists.
pub fn create_here(path: &Path) -> io::Result<OwnedFd> {
    let path = path.to_path_buf();
    make_mount_point(&path)?;
    let made = (|| -> io::Result<OwnedFd> {
        unshare(CloneFlags::CLONE_NEWNET)?;
        let none: Option<&str> = None;
        // thread-self: from any thread but the main one, /proc/self is the main thread's.
        mount(
            Some("/proc/thread-self/ns/net"),
            &path,
            none,
            MsFlags::MS_BIND,
            none,
        )?;
        Ok(File::open(&path)?.into())
    })();
    if made.is_err() {
        let _ = umount2(&path, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&path);
    }
    made
}

/// An unnamed file in the netns directory whose hard links become the namespaces' mount points.
static ANCHOR: Mutex<Option<File>> = Mutex::new(None);

/// Makes the empty file a namespace is mounted on; refuses a name that exists. It is a
/// hard link to one unnamed file (`O_TMPFILE`), not a new inode: on this VM's ext4 each
/// new inode scanned past every inode freed in the last minute, which was 16% of the CPU
/// of a 1,000-node `up` right after another lab's `down`. A file system without
/// `O_TMPFILE` or out of links gets plain files.
fn make_mount_point(path: &Path) -> io::Result<()> {
    let mut anchor = ANCHOR.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..2 {
        if anchor.is_none() {
            *anchor = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_TMPFILE)
                .mode(0o000)
                .open(path.parent().unwrap_or(Path::new("/")))
                .ok();
        }
        let Some(file) = anchor.as_ref() else { break };
        match link_fd(file, path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e),
            // Too many links (ext4 allows 65,000), or the netns directory was mounted
            // anew since (the last lab's `down` released it): a fresh anchor, once.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMLINK | libc::EXDEV)) => {
                *anchor = None
            }
            Err(_) => break,
        }
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o000)
        .open(path)
        .map(drop)
}

/// Gives the open file another name (`linkat` with `AT_EMPTY_PATH`).
fn link_fd(file: &File, path: &Path) -> io::Result<()> {
    use nix::fcntl::{AT_FDCWD, AtFlags};
    nix::unistd::linkat(file, c"", AT_FDCWD, path, AtFlags::AT_EMPTY_PATH).map_err(io::Error::from)
}

/// A lab's namespaces held open while `down` removes their names. A namespace whose last
/// name goes while nslab still holds it is not torn down by the kernel until nslab lets
/// go, after its own bookkeeping: the kernel's cleanup of a namespace (a workqueue that
/// takes the RTNL lock and, for a bridge, waits for RCU once per port) otherwise runs on
/// the other CPU while the next name is unmounted, and every unmount waits for an RCU
/// grace period that the cleanup delays. Measured here: a 1,000-port star's names go in
/// 16 ms held, against 138 ms for `ip netns del`. The inodes also tell which processes
/// still live in the lab's namespaces.
pub struct Held {
    files: Vec<File>,
    /// The namespaces' inode numbers, as `/proc/PID/ns/net` shows them (`net:[INODE]`).
    pub inodes: std::collections::HashSet<u64>,
    /// The device of every namespace file: they all live on the one nsfs superblock.
    nsfs: Option<u64>,
}

impl Held {
    pub fn new(capacity: usize) -> Held {
        use std::os::unix::fs::MetadataExt;
        raise_nofile_limit();
        Held {
            files: Vec::with_capacity(capacity),
            inodes: std::collections::HashSet::with_capacity(capacity),
            nsfs: std::fs::metadata("/proc/self/ns/net").map(|m| m.dev()).ok(),
        }
    }

    /// Opens a named namespace (its [`netns_path`]) before its name goes, if it is still a
    /// namespace (a stale file left by a killed `up` is not). Past the open-file limit it
    /// is only looked at.
    pub fn take(&mut self, path: &Path) {
        use std::os::unix::fs::MetadataExt;
        let (meta, file) = match File::open(path) {
            Ok(f) => (f.metadata(), Some(f)),
            Err(_) => (std::fs::metadata(path), None),
        };
        if let Ok(meta) = meta
            && Some(meta.dev()) == self.nsfs
        {
            self.inodes.insert(meta.ino());
            self.files.extend(file);
        }
    }
}

/// Unmounts and removes a named namespace by its path. The namespace itself is freed by
/// the kernel once no process, socket or descriptor holds it. Missing counts as deleted.
pub fn delete_at(path: &Path) -> io::Result<()> {
    crate::node::detach(path)?;
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Moves the calling thread into a namespace. Only for nslab's own threads.
pub fn enter(fd: &OwnedFd) -> io::Result<()> {
    setns(fd.as_fd(), CloneFlags::CLONE_NEWNET)?;
    Ok(())
}

type Job = Box<dyn FnOnce() + Send>;

/// A few dedicated OS threads that run namespace-bound jobs (create a namespace, write a
/// sysctl, open a socket). Each job enters the namespace it needs first, so a thread's
/// current namespace never leaks from one job into the next.
pub struct NsThreads {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl NsThreads {
    pub fn new(count: usize) -> NsThreads {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = (0..count.max(1))
            .map(|i| {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("nslab-ns-{i}"))
                    .spawn(move || {
                        loop {
                            let job = match rx.lock() {
                                Ok(r) => r.recv(),
                                Err(_) => return,
                            };
                            match job {
                                Ok(job) => job(),
                                Err(_) => return,
                            }
                        }
                    })
                    .expect("spawn a namespace thread")
            })
            .collect();
        NsThreads {
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
        }
    }

    /// Runs `f` on one of the threads and awaits its result.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        {
            let guard = self
                .tx
                .lock()
                .map_err(|_| io::Error::other("namespace threads poisoned"))?;
            let sender = guard
                .as_ref()
                .ok_or_else(|| io::Error::other("namespace threads stopped"))?;
            sender
                .send(job)
                .map_err(|_| io::Error::other("namespace threads stopped"))?;
        }
        rx.await
            .map_err(|_| io::Error::other("a namespace thread died"))?
    }
}

impl NsThreads {
    /// Runs `f` once on every thread (each waits for the others, so none runs it twice).
    pub async fn on_each(
        &self,
        f: impl Fn() -> io::Result<()> + Send + Sync + 'static,
    ) -> io::Result<()> {
        let n = self.threads.lock().map(|t| t.len()).unwrap_or(0);
        let (f, barrier) = (Arc::new(f), Arc::new(std::sync::Barrier::new(n)));
        let runs = (0..n).map(|_| {
            let (f, barrier) = (f.clone(), barrier.clone());
            self.run(move || {
                let r = f();
                barrier.wait();
                r
            })
        });
        for r in futures_util::future::join_all(runs).await {
            r?;
        }
        Ok(())
    }
}

impl Drop for NsThreads {
    fn drop(&mut self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Ok(mut threads) = self.threads.lock() {
            for t in threads.drain(..) {
                let _ = t.join();
            }
        }
    }
}

/// A procfs instance of our own, never attached to any path. Looking a name up in the
/// shared /proc/sys compares it against one cached entry per network namespace on the
/// host, which makes writing a sysctl in each of N namespaces O(N^2); a fresh instance
/// has no such cache.
fn private_proc() -> io::Result<OwnedFd> {
    crate::sys::mount::detached_proc()
}

/// Opens a sysctl of the calling thread's network namespace below `proc`'s `sys/net`
/// and never outside it. The key is checked as the path the kernel will see
/// (`model::sysctl::parse`), and the open resolves beneath that directory, with no
/// symlinks and no mount crossings: a key that slipped past validation (`net.//.vm.x` is
/// `net/../vm/x`) fails with EXDEV instead of reaching the host's `vm.*`.
fn open_sysctl(proc: BorrowedFd, key: &str, flags: OFlag) -> io::Result<OwnedFd> {
    use nix::fcntl::{OpenHow, ResolveFlag, openat, openat2};
    let path = crate::model::sysctl::parse(key).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("sysctl `{}` refused: {e}", key.escape_debug()),
        )
    })?;
    let dir = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let net = openat(proc, "sys/net", dir, Mode::empty())?;
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
    Ok(openat2(&net, path.rel().as_str(), how)?)
}

/// Runs `f` on a procfs root for the calling thread's network namespace: a private
/// instance when the kernel has the new mount API, else the shared /proc.
fn with_proc<T>(f: impl FnOnce(BorrowedFd) -> io::Result<T>) -> io::Result<T> {
    match private_proc() {
        Ok(root) => f(root.as_fd()),
        Err(_) => {
            let dir = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
            let proc = nix::fcntl::open("/proc", dir, Mode::empty())?;
            f(proc.as_fd())
        }
    }
}

/// Writes a sysctl of the calling thread's network namespace (the file binds to the
/// namespace of the thread that opens it).
pub fn write_sysctl(key: &str, value: &str) -> io::Result<()> {
    use std::io::Write;
    let fd = with_proc(|proc| open_sysctl(proc, key, OFlag::O_WRONLY))?;
    File::from(fd).write_all(value.as_bytes())
}

/// Reads a sysctl of the calling thread's network namespace.
pub fn read_sysctl(key: &str) -> io::Result<String> {
    use std::io::Read;
    let fd = with_proc(|proc| open_sysctl(proc, key, OFlag::O_RDONLY))?;
    let mut text = String::new();
    File::from(fd).read_to_string(&mut text)?;
    Ok(text.trim().to_string())
}

/// Raises the soft open-file limit to the hard one: a lab holds about two descriptors per
/// namespace (its fd and a netlink socket), past the usual 1024 at a few hundred nodes.
/// A node's init and processes start from their own limits (`node::fresh`), not this.
pub fn raise_nofile_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// The values a fresh network namespace has for `keys`; a per-interface key is read from
/// the namespace's `default` entry, which a new interface starts from.
pub fn fresh_sysctls(keys: &[String]) -> io::Result<Vec<String>> {
    let keys: Vec<String> = keys.iter().map(|k| default_key(k)).collect();
    std::thread::scope(|s| {
        s.spawn(|| {
            // Only this thread moves: a namespace of its own, gone when it ends.
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
            keys.iter().map(|k| read_sysctl(k)).collect()
        })
        .join()
        .map_err(|_| io::Error::other("the sysctl reader panicked"))?
    })
}

/// `net.ipv4.conf.eth1.rp_filter` -> `net.ipv4.conf.default.rp_filter`.
fn default_key(key: &str) -> String {
    match crate::model::sysctl::parse(key) {
        Ok(p) if p.iface.as_deref().is_some_and(|i| i != "all" && i != "lo") => {
            let iface = p.iface.unwrap_or_default();
            let below: Vec<&str> = p
                .below_net
                .iter()
                .map(|c| if *c == iface { "default" } else { c.as_str() })
                .collect();
            format!("net.{}", below.join("."))
        }
        _ => key.to_string(),
    }
}
