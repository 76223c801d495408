//! The kernel's floor for a lab's nodes: exactly the kernel work a node needs and nothing
//! else, N nodes at once, timed, so `scripts/bench` can set nslab's `up` and `down` against
//! it in the same run.
//!
//! ```text
//! isolation_floor full|full-named|net N [THREADS]
//! ```
//!
//! - `full`: per node, one `clone` with new net, mount, pid, uts and ipc namespaces; the
//!   child (the node's PID 1) makes the mounts nslab's init makes (`/` private, tmpfs on
//!   /run and /tmp, and /var/run unless it is a link, the generated hosts and resolv.conf
//!   written there and bound read-only onto /etc/hosts and /etc/resolv.conf, /proc and a
//!   read-only /sys), sets the hostname, forks and execs the node's process (`sleep`),
//!   then reaps. `up` ends when every process has exec'd. `down` kills every PID 1 through
//!   its pidfd, polls the pidfds until all have exited, and reaps them.
//! - `full-named`: the same, and each node's network namespace is also bound to a file
//!   (as nslab names every node's namespace), unmounted in `down`.
//! - `net`: per node, a network namespace bound to a file (what `ip netns add` does, with
//!   no process); `down` unmounts and removes the files.
//!
//! The nodes are split over THREADS launcher threads (default 2: nslab uses both CPUs of
//! the VM this was measured on). The files live in a private tmpfs the program mounts
//! under /run and removes; everything it starts is killed by pidfd. `down` starts once the
//! kernel is quiet, as the bench times nslab's. Prints one JSON line: `{"mode", "nodes",
//! "threads", "up", "down", "up_cpu", "up_busy", "up_kthreads", "up_irq"}` (seconds).
//! The last four are for `scripts/bench-cpu`, which sets the nodes' CPU time against the
//! kernel's own: `up_cpu` is the CPU time over `up` of the cpuacct cgroup (v1) or the
//! cgroup (v2) the program runs in, which its nodes inherit (null if none is found);
//! `up_busy` each CPU's busy time over `up` (/proc/stat: whatever ran there);
//! `up_kthreads` the kernel threads' CPU time and `up_irq` all CPUs' irq and softirq
//! time over `up`, which no task of the cgroup is charged for. Needs root.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, clone, setns, unshare};
use nix::sys::stat::Mode;
use nix::unistd::{Pid, pipe2, read, write};

/// The child's stack: it only makes system calls, none deeper than nix's 1 KB path buffers.
const STACK: usize = 256 * 1024;

#[derive(Clone, Copy, PartialEq)]
enum Mode_ {
    Full,
    FullNamed,
    Net,
}

/// Everything a node's PID 1 needs, prepared before any clone: the launcher has two
/// threads, so the child of a clone must not allocate (another thread may hold the
/// allocator's lock at that instant, and the child would wait on it forever).
struct Prepared {
    hosts: Vec<u8>,
    resolv: Vec<u8>,
    /// The real files under /etc/hosts and /etc/resolv.conf (links followed).
    hosts_target: Target,
    resolv_target: Target,
    var_run: bool,
    argv: Vec<CString>,
}

/// Where a generated file is bound. A target on the node's fresh /run or /tmp (a link
/// into systemd-resolved's /run, say) is created there first, as nslab's init does.
struct Target {
    path: String,
    /// Directories to create, outermost first, then the file itself, when `create`.
    dirs: Vec<String>,
    create: bool,
}

fn target(link: &str) -> Result<Target, String> {
    let real = nslab::node::mountns::resolve(Path::new(link));
    let path = real
        .to_str()
        .ok_or(format!("{link}: not UTF-8"))?
        .to_string();
    let create = ["/run/", "/tmp/"].iter().any(|p| path.starts_with(p));
    let mut dirs: Vec<String> = real
        .ancestors()
        .skip(1)
        .filter(|a| create && a.components().count() > 2)
        .filter_map(|a| a.to_str().map(str::to_string))
        .collect();
    dirs.reverse();
    Ok(Target { path, dirs, create })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: isolation_floor full|full-named|net N [THREADS]";
    let mode = match args.get(1).map(String::as_str) {
        Some("full") => Mode_::Full,
        Some("full-named") => Mode_::FullNamed,
        Some("net") => Mode_::Net,
        _ => fail(usage),
    };
    let n: usize = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| fail(usage));
    let threads: usize = match args.get(3) {
        Some(a) => a
            .parse()
            .ok()
            .filter(|&t| t > 0)
            .unwrap_or_else(|| fail(usage)),
        None => 2,
    };
    if !nix::unistd::geteuid().is_root() {
        fail("isolation_floor needs root: it creates namespaces and mounts");
    }
    let dir = PathBuf::from(format!("/run/isolation-floor.{}", std::process::id()));
    if let Err(e) = private_dir(&dir) {
        fail(&format!("{}: {e}", dir.display()));
    }
    let result = match mode {
        Mode_::Net => net(&dir, n, threads),
        _ => full(&dir, n, threads, mode == Mode_::FullNamed),
    };
    let removed = remove_dir(&dir);
    match (result, removed) {
        (Ok((up, down)), Ok(())) => println!(
            "{{\"mode\": \"{}\", \"nodes\": {n}, \"threads\": {threads}, \"up\": {:.4}, \"down\": {:.4}, \"up_cpu\": {}, \"up_busy\": {:?}, \"up_kthreads\": {:.3}, \"up_irq\": {:.3}}}",
            args[1],
            up.wall.as_secs_f64(),
            down.as_secs_f64(),
            up.cpu.map_or("null".into(), |c| format!("{c:.4}")),
            up.busy,
            up.kernel[0],
            up.kernel[1]
        ),
        (Err(e), _) | (_, Err(e)) => fail(&e),
    }
}

fn fail(why: &str) -> ! {
    eprintln!("isolation_floor: {why}");
    std::process::exit(2)
}

/// The directory the names go in: a tmpfs of its own (creating and removing a file there
/// is the cheapest a file system does it; /run may be a disk), and private, so that no
/// bind in it propagates to any other mount namespace (nslab's node namespaces are
/// copied from a template without its netns directory, for the same reason).
fn private_dir(dir: &Path) -> nix::Result<()> {
    nix::unistd::mkdir(dir, Mode::from_bits_truncate(0o755))?;
    let none: Option<&str> = None;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("tmpfs"), dir, Some("tmpfs"), flags, Some("mode=0755"))?;
    mount(none, dir, none, MsFlags::MS_PRIVATE, none)
}

/// Unmounts and removes the private directory, and whatever bind is still in it.
fn remove_dir(dir: &Path) -> Result<(), String> {
    let left: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    for f in left {
        let _ = umount2(&f, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&f);
    }
    umount2(dir, MntFlags::MNT_DETACH).map_err(|e| format!("unmount {}: {e}", dir.display()))?;
    std::fs::remove_dir(dir).map_err(|e| format!("remove {}: {e}", dir.display()))
}

/// Waits until the kernel is quiet (at most 2 busy ticks of all CPUs in 200 ms, for at
/// most 30 s), as `scripts/bench` does before it times nslab: new namespaces keep the
/// kernel's workers busy for a while after `up`, and a `down` timed inside that measures
/// them too.
fn settle() {
    let busy = || -> Option<u64> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let v: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        Some(v.iter().sum::<u64>() - v.get(3)? - v.get(4)?)
    };
    let start = Instant::now();
    let mut prev = busy();
    while start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
        let cur = busy();
        if let (Some(a), Some(b)) = (prev, cur)
            && b - a <= 2
        {
            break;
        }
        prev = cur;
    }
}

/// A moment of the run: the time, the CPU time of this program's cgroup so far, and each
/// CPU's busy ticks so far.
struct Mark {
    at: Instant,
    cpu: Option<f64>,
    busy: Vec<u64>,
    kernel: Kernel,
}

/// Each kernel thread's CPU ticks so far (by pid), and all CPUs' irq and softirq ticks.
struct Kernel {
    threads: std::collections::HashMap<u32, u64>,
    irq: u64,
}

/// What `up` took: wall time, the cgroup's CPU time, each CPU's busy time (seconds).
struct Span {
    wall: Duration,
    cpu: Option<f64>,
    busy: Vec<f64>,
    /// Kernel threads' CPU time, and all CPUs' irq + softirq time.
    kernel: [f64; 2],
}

impl Mark {
    fn now() -> Mark {
        // The scan of /proc first: it is this program's work, not the nodes'.
        let kernel = kernel_ticks();
        Mark {
            at: Instant::now(),
            cpu: cgroup_cpu(),
            busy: cpu_busy(),
            kernel,
        }
    }

    fn span(&self) -> Span {
        // The scan of /proc last: it is this program's work, not the nodes'.
        let (at, cpu, busy) = (Instant::now(), cgroup_cpu(), cpu_busy());
        let end = Mark {
            at,
            cpu,
            busy,
            kernel: kernel_ticks(),
        };
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as f64;
        Span {
            wall: end.at - self.at,
            cpu: end.cpu.zip(self.cpu).map(|(b, a)| b - a),
            busy: end
                .busy
                .iter()
                .zip(&self.busy)
                .map(|(b, a)| (b - a) as f64 / hz)
                .collect(),
            kernel: end.kernel.since(&self.kernel).map(|t| t as f64 / hz),
        }
    }
}

/// The CPU time (s) of this program's cgroup: v1's `cpuacct.usage` where a cpuacct
/// hierarchy is mounted, else v2's `cpu.stat`.
fn cgroup_cpu() -> Option<f64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in own.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctl, path) = (f.next()?, f.next()?, f.next()?);
        if ctl.split(',').any(|c| c == "cpuacct") {
            for root in ["/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/cpu,cpuacct"] {
                if let Ok(v) = std::fs::read_to_string(format!("{root}{path}/cpuacct.usage")) {
                    return v.trim().parse::<f64>().ok().map(|ns| ns / 1e9);
                }
            }
        }
    }
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let stat = std::fs::read_to_string(format!("/sys/fs/cgroup{path}/cpu.stat")).ok()?;
    let us = stat.lines().find_map(|l| l.strip_prefix("usage_usec "))?;
    us.trim().parse::<f64>().ok().map(|us| us / 1e6)
}

/// The numbers of one /proc/stat `cpu` line, after its name.
fn stat_fields(line: &str) -> Vec<u64> {
    line.split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect()
}

/// Each CPU's busy ticks from /proc/stat: everything but idle, iowait and steal.
fn cpu_busy() -> Vec<u64> {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v = stat_fields(l);
            // user nice system idle iowait irq softirq steal (guest is inside user)
            v.iter().take(8).sum::<u64>()
                - v.get(3).unwrap_or(&0)
                - v.get(4).unwrap_or(&0)
                - v.get(7).unwrap_or(&0)
        })
        .collect()
}

impl Kernel {
    /// Ticks of kernel threads and of irqs since `before`: per thread, so a worker that
    /// exits meanwhile takes nothing off the sum (its own last ticks are lost).
    fn since(&self, before: &Kernel) -> [u64; 2] {
        let threads = self
            .threads
            .iter()
            .map(|(pid, t)| t.saturating_sub(*before.threads.get(pid).unwrap_or(&0)))
            .sum();
        [threads, self.irq.saturating_sub(before.irq)]
    }
}

/// CPU ticks no task of the lab is charged for: every kernel thread's (workers, RCU,
/// softirq threads: children of kthreadd), and the irq and softirq time of /proc/stat.
fn kernel_ticks() -> Kernel {
    let mut threads = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        // After the name: state ppid ... utime (12th) stime (13th).
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.get(1) == Some(&"2") {
            let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            threads.insert(pid, tick(11) + tick(12));
        }
    }
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let irq = stat
        .lines()
        .next()
        .map(|l| {
            let v = stat_fields(l);
            v.get(5).unwrap_or(&0) + v.get(6).unwrap_or(&0)
        })
        .unwrap_or(0);
    Kernel { threads, irq }
}

/// Splits 0..n into `threads` runs, one per launcher thread.
fn shares(n: usize, threads: usize) -> Vec<std::ops::Range<usize>> {
    (0..threads)
        .map(|t| n * t / threads..n * (t + 1) / threads)
        .collect()
}

/// An empty file to bind a namespace onto.
fn mount_point(dir: &Path, i: usize) -> Result<PathBuf, String> {
    let path = dir.join(format!("n{i}"));
    std::fs::File::create_new(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Binds a namespace file (`/proc/.../ns/net`) onto `path`.
fn bind(from: &str, path: &Path) -> Result<(), String> {
    let none: Option<&str> = None;
    mount(Some(from), path, none, MsFlags::MS_BIND, none)
        .map_err(|e| format!("bind {from} onto {}: {e}", path.display()))
}

/// A named namespace held open, as nslab's `down` holds every namespace it unnames: the
/// kernel frees a namespace once its last name and holder go, on a worker that competes
/// with the unmounts for the CPUs, and nslab lets go only after its bookkeeping.
fn hold(path: &Path) -> Result<OwnedFd, String> {
    open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| format!("open {}: {e}", path.display()))
}

/// Unmounts and removes every name, as `ip netns del` (and nslab's `down`) does.
fn unname(paths: &[PathBuf]) -> Result<(), String> {
    for p in paths {
        umount2(p, MntFlags::MNT_DETACH).map_err(|e| format!("unmount {}: {e}", p.display()))?;
        std::fs::remove_file(p).map_err(|e| format!("remove {}: {e}", p.display()))?;
    }
    Ok(())
}

/// Net-only nodes: a network namespace each, named by a bind mount, no process.
fn net(dir: &Path, n: usize, threads: usize) -> Result<(Span, Duration), String> {
    let t0 = Mark::now();
    let made: Vec<Result<Vec<(PathBuf, OwnedFd)>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = shares(n, threads)
            .into_iter()
            .map(|range| s.spawn(move || net_thread(dir, range)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a thread panicked".into())))
            .collect()
    });
    let up = t0.span();
    let (mut paths, mut held) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut errors = Vec::new();
    for m in made {
        match m {
            Ok(made) => made.into_iter().for_each(|(p, fd)| {
                paths.push(p);
                held.push(fd);
            }),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        // remove_dir unmounts what was made.
        return Err(errors.join("; "));
    }
    settle();
    let t1 = Instant::now();
    unname(&paths)?;
    let down = t1.elapsed();
    drop(held);
    Ok((up, down))
}

/// One thread's share of net-only nodes: unshare, bind, and back to the host's namespace.
fn net_thread(
    dir: &Path,
    range: std::ops::Range<usize>,
) -> Result<Vec<(PathBuf, OwnedFd)>, String> {
    let home: OwnedFd = open(
        "/proc/thread-self/ns/net",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("open the host's namespace: {e}"))?;
    let mut paths = Vec::with_capacity(range.len());
    for i in range {
        let path = mount_point(dir, i)?;
        let made = unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("unshare: {e}"))
            .and_then(|()| bind("/proc/thread-self/ns/net", &path));
        setns(home.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns: {e}"))?;
        made?;
        let fd = hold(&path)?;
        paths.push((path, fd));
    }
    Ok(paths)
}

/// The files a node's PID 1 writes and binds, read once, and the process it runs.
fn prepare() -> Result<Prepared, String> {
    let mut hosts = std::fs::read("/etc/hosts").map_err(|e| format!("/etc/hosts: {e}"))?;
    hosts.extend_from_slice(b"\n127.0.1.1 node\n");
    let sleep = ["/usr/bin/sleep", "/bin/sleep"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("no sleep in /usr/bin or /bin")?;
    let var_run = !std::fs::symlink_metadata("/var/run")
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(true);
    Ok(Prepared {
        hosts,
        resolv: b"nameserver 127.0.0.53\n".to_vec(),
        hosts_target: target("/etc/hosts")?,
        resolv_target: target("/etc/resolv.conf")?,
        var_run,
        argv: [sleep, "100000"]
            .iter()
            .map(|a| CString::new(*a).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?,
    })
}

/// A node's init: the mounts, the hostname, the process, then reaping forever. Runs in the
/// child of a clone from a threaded process: system calls only, no allocation.
fn node_init(p: &Prepared, argv: &[*const libc::c_char], ready: &OwnedFd) -> isize {
    if init_mounts(p).is_err() || nix::unistd::sethostname("node").is_err() {
        let _ = write(ready, b"E");
        return 1;
    }
    // The raw system call, not libc's fork: that takes the allocator's locks for its
    // fork handlers, and this process's copy of them may be held by the launcher thread
    // that was allocating when it was cloned (a node hung there for good).
    // SAFETY: fork(2) without handlers; the child only execs or exits.
    match unsafe { libc::syscall(libc::SYS_fork) } {
        0 => {
            // nix's execv collects the arguments into a Vec: the pointers are ready-made.
            // SAFETY: a NUL-terminated argv of C strings that outlive the call.
            unsafe { libc::execv(argv[0], argv.as_ptr()) };
            let _ = write(ready, b"E");
            // SAFETY: ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(127) }
        }
        pid if pid < 0 => {
            let _ = write(ready, b"E");
            return 1;
        }
        _ => {}
    }
    // The launcher's readiness pipe ends when every process has exec'd (close-on-exec):
    // this end must not keep it open.
    let _ = nix::unistd::close(ready.as_raw_fd());
    loop {
        if nix::sys::wait::wait() == Err(Errno::ECHILD) {
            nix::unistd::pause();
        }
    }
}

/// The mounts nslab's init makes in a node (`node::mountns::build`), by the same calls.
fn init_mounts(p: &Prepared) -> nix::Result<()> {
    let none: Option<&str> = None;
    let dev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)?;
    mount(Some("tmpfs"), "/run", Some("tmpfs"), dev, Some("mode=0755"))?;
    mount(Some("tmpfs"), "/tmp", Some("tmpfs"), dev, Some("mode=1777"))?;
    if p.var_run {
        mount(
            Some("tmpfs"),
            "/var/run",
            Some("tmpfs"),
            dev,
            Some("mode=0755"),
        )?;
    }
    nix::unistd::mkdir("/run/.nslab", Mode::from_bits_truncate(0o755))?;
    for (file, text, target) in [
        ("/run/.nslab/hosts", &p.hosts, &p.hosts_target),
        ("/run/.nslab/resolv.conf", &p.resolv, &p.resolv_target),
    ] {
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC;
        let fd = open(file, flags, Mode::from_bits_truncate(0o644))?;
        write(&fd, text)?;
        drop(fd);
        if target.create {
            for d in &target.dirs {
                match nix::unistd::mkdir(d.as_str(), Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e),
                }
            }
            drop(open(
                target.path.as_str(),
                flags,
                Mode::from_bits_truncate(0o644),
            )?);
        }
        let at = target.path.as_str();
        mount(
            Some(file),
            at,
            none,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            none,
        )?;
        let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount(none, at, none, ro, none)?;
    }
    let kernel = dev | MsFlags::MS_NOEXEC;
    mount(Some("proc"), "/proc", Some("proc"), kernel, none)?;
    let ro = kernel | MsFlags::MS_RDONLY;
    mount(Some("sysfs"), "/sys", Some("sysfs"), ro, none)
}

/// A started node: its PID 1, pinned by a pidfd.
struct Node {
    pid: Pid,
    fd: OwnedFd,
}

/// Full-isolation nodes: one clone each, from `threads` threads, then kill and reap all.
fn full(dir: &Path, n: usize, threads: usize, named: bool) -> Result<(Span, Duration), String> {
    let p = prepare()?;
    let argv: Vec<*const libc::c_char> = p
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    nslab::apply::netns::raise_nofile_limit();
    let (rx, tx) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let argv = Argv(&argv);
    let t0 = Mark::now();
    let made: Vec<(Vec<Node>, Option<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = shares(n, threads)
            .into_iter()
            .map(|range| {
                let (p, tx) = (&p, &tx);
                s.spawn(move || clone_share(p, argv, tx, range.len()))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| (Vec::new(), Some("a thread panicked".into())))
            })
            .collect()
    });
    drop(tx);
    let mut nodes = Vec::with_capacity(n);
    let mut errors: Vec<String> = Vec::new();
    for (started, error) in made {
        nodes.extend(started);
        errors.extend(error);
    }
    let failed = !all_exec(&rx);
    let (mut names, mut held) = (Vec::new(), Vec::new());
    if named && errors.is_empty() && !failed {
        match name_all(dir, &nodes) {
            Ok((n, h)) => (names, held) = (n, h),
            Err(e) => errors.push(e),
        }
    }
    let up = t0.span();
    settle();
    let t1 = Instant::now();
    for node in &nodes {
        nslab::sys::pidfd::signal(node.fd.as_fd(), libc::SIGKILL);
    }
    // The names go while the inits exit (remove_dir takes what is left on an error).
    if let Err(e) = unname(&names) {
        errors.push(e);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let left = nslab::sys::pidfd::wait_exit(nodes.iter().collect(), deadline, |n| n.fd.as_fd());
    if !left.is_empty() {
        errors.push(format!("{} inits would not die", left.len()));
    }
    for node in &nodes {
        let _ = nix::sys::wait::waitpid(node.pid, None);
    }
    let down = t1.elapsed();
    drop(held);
    if failed {
        errors.push("a node's init failed (mounts, hostname, fork or exec) or hung".into());
    }
    match errors.is_empty() {
        true => Ok((up, down)),
        false => Err(errors.join("; ")),
    }
}

/// Waits until every init and process has let go of the readiness pipe's write end (each
/// holds it until its exec); false when one reported a failure instead.
/// Gives up after a minute, so that a node stuck on its way still gets cleaned up.
fn all_exec(rx: &OwnedFd) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::ZERO);
        match poll(&mut [PollFd::new(rx.as_fd(), PollFlags::POLLIN)], timeout) {
            Ok(0) => return false,
            Err(Errno::EINTR) => continue,
            Err(_) => return false,
            Ok(_) => {}
        }
        match read(rx, &mut buf) {
            Ok(0) => return true,
            Ok(k) if buf[..k].contains(&b'E') => return false,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
}

/// Names every node's network namespace, held open (see [`hold`]). On an error, what was
/// named is left to [`remove_dir`].
fn name_all(dir: &Path, nodes: &[Node]) -> Result<(Vec<PathBuf>, Vec<OwnedFd>), String> {
    let (mut names, mut held) = (Vec::new(), Vec::new());
    for (i, node) in nodes.iter().enumerate() {
        let path = mount_point(dir, i)?;
        bind(&format!("/proc/{}/ns/net", node.pid), &path)?;
        held.push(hold(&path)?);
        names.push(path);
    }
    Ok((names, held))
}

/// The exec arguments as raw pointers, shared by the launcher threads: they only read them
/// (in their children's copies of memory).
#[derive(Clone, Copy)]
struct Argv<'a>(&'a [*const libc::c_char]);
// SAFETY: the pointers name CStrings that outlive the threads and are never written.
unsafe impl Send for Argv<'_> {}
// SAFETY: as above.
unsafe impl Sync for Argv<'_> {}

/// One launcher thread: `count` clones, each child a node's PID 1.
fn clone_share(
    p: &Prepared,
    argv: Argv,
    tx: &OwnedFd,
    count: usize,
) -> (Vec<Node>, Option<String>) {
    let flags = CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC;
    let mut stack = vec![0u8; STACK];
    let mut nodes = Vec::with_capacity(count);
    for _ in 0..count {
        let argv = argv.0;
        // SAFETY: the child runs node_init on its own copy of `stack` and of memory, and
        // makes only system calls (see Prepared).
        let pid = unsafe {
            clone(
                Box::new(|| node_init(p, argv, tx)),
                &mut stack,
                flags,
                Some(libc::SIGCHLD),
            )
        };
        let started = pid.map_err(|e| format!("clone: {e}")).and_then(|pid| {
            let fd = nslab::sys::pidfd::open(pid.as_raw()).map_err(|e| format!("pidfd_open: {e}"));
            if fd.is_err() {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(pid, None);
            }
            fd.map(|fd| Node { pid, fd })
        });
        match started {
            Ok(node) => nodes.push(node),
            Err(e) => return (nodes, Some(e)),
        }
    }
    (nodes, None)
}
