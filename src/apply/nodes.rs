//! Starting and stopping nodes: cgroups, the init, processes and `exec:` commands. The
//! init runs in the node's namespaces as PID 1; nslab talks to it over its control socket.

pub use super::logtail::{log_end, log_tail};
use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::error::KernelError;
use super::netns;
use super::strays;
use crate::node::config::{self, NodeConfig, NodeStart};
use crate::node::control;
use crate::node::enter::{self, Target};
use crate::node::{NodePaths, cgroup, zygote};
use crate::state::HostContext;

fn other(e: impl std::fmt::Display) -> KernelError {
    KernelError::Other(e.to_string())
}

/// The binary that serves as every node's init: `NSLAB_BIN` (when nobody but root and the
/// caller could have written it, see `state::trust`), this executable when it is nslab,
/// or `nslab` on the PATH (a test binary using the Rust API is not nslab).
pub fn nslab_binary() -> Result<PathBuf, KernelError> {
    if let Some(p) = crate::state::trust::env_path("NSLAB_BIN").map_err(other)? {
        return Ok(p);
    }
    if let Ok(exe) = std::env::current_exe()
        && exe.file_name().is_some_and(|n| n == "nslab")
    {
        return Ok(exe);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("nslab"))
        .find(|p| p.is_file())
        .ok_or_else(|| other("cannot find the nslab binary to run as the node's init: install nslab on the PATH or set NSLAB_BIN"))
}

/// The standard streams of what starts a node's init, as nslab holds them: the init made
/// by the fork server (its child), or an exec'd shim, kept in `exec` to be waited for.
struct Starter {
    stdin: std::fs::File,
    stdout: std::fs::File,
    stderr: std::fs::File,
    exec: Option<std::process::Child>,
}

thread_local! {
    /// This spawner thread's fork server: its socket lives in the thread's own
    /// descriptor table (see `spawner`), so each thread has one.
    static SERVER: std::cell::RefCell<Option<zygote::Server>> = const { std::cell::RefCell::new(None) };
}

/// An init made by this thread's fork server, started on first use; a server that has
/// gone away is started again once.
fn forked_init(title: &str) -> Result<Starter, KernelError> {
    SERVER.with(|cell| {
        let mut server = cell.borrow_mut();
        let mut failure = None;
        for _ in 0..2 {
            if server.is_none() {
                *server = Some(zygote::Server::start(&nslab_binary()?)?);
            }
            match server.as_ref().map(|s| s.make_init(title)) {
                Some(Ok([stdin, stdout, stderr])) => {
                    return Ok(Starter {
                        stdin,
                        stdout,
                        stderr,
                        exec: None,
                    });
                }
                Some(Err(e)) => failure = Some(e),
                None => {}
            }
            *server = None;
        }
        Err(other(format!(
            "the fork server of node inits failed: {}",
            failure.map(|e| e.to_string()).unwrap_or_default()
        )))
    })
}

/// An exec'd shim, `nslab __init - LAB/NODE`: the way before the fork server, kept for
/// comparing the two (`NSLAB_INIT_EXEC=1`).
fn exec_shim(title: &str) -> Result<Starter, KernelError> {
    // The configuration goes through the init's stdin, and the init enters the node's
    // namespaces itself: no file per node, and no pre-exec hook, so the spawn is a cheap
    // posix_spawn instead of a fork of this (large) process.
    let mut cmd = std::process::Command::new(nslab_binary()?);
    // The last argument only names the node in `ps` on the host.
    cmd.arg("__init")
        .arg("-")
        .arg(title)
        // The caller's environment stays out of the node: every path the init needs
        // (from the host context) is in its configuration.
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    Ok(Starter {
        stdin: OwnedFd::from(child.stdin.take().expect("piped")).into(),
        stdout: OwnedFd::from(child.stdout.take().expect("piped")).into(),
        stderr: OwnedFd::from(child.stderr.take().expect("piped")).into(),
        exec: Some(child),
    })
}

/// Writes the node's files and starts its init in new namespaces; returns once the init
/// reports its mounts and hostname are in place.
fn start_node_blocking(host: &HostContext, start: &NodeStart) -> Result<(), KernelError> {
    let paths = NodePaths::of_lab(host, &start.lab);
    for dir in [&paths.dir, &paths.logs] {
        crate::state::files::ensure_dir(dir).map_err(other)?;
    }
    let cgroups = if start.cgroup {
        cgroup::groups(&start.lab, &start.node)
    } else {
        cgroup::Groups::default()
    };
    let netns = host.netns_path(&start.netns);
    let cfg: NodeConfig = config::config(start, &paths, netns, cgroups).map_err(other)?;
    let title = format!("{}/{}", start.lab, start.node);
    let mut starter = if std::env::var_os("NSLAB_INIT_EXEC").is_some() {
        exec_shim(&title)?
    } else {
        forked_init(&title)?
    };
    {
        let mut stdin = starter.stdin;
        std::io::Write::write_all(&mut stdin, &serde_json::to_vec(&cfg).map_err(other)?)?;
    }
    let mut lines = BufReader::new(starter.stdout);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut line = String::new();
    let mut outcome = Err(other("the node's init ended without saying it was ready"));
    let mut unplaced = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // A line the last read took in with the one before (`pid N` and `ready` can come
        // together) is already here: the pipe would not poll readable for it again, and
        // only end of file (every writer gone) would have ended the wait.
        let n = if lines.buffer().is_empty() {
            use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
            let mut fds = [PollFd::new(lines.get_ref().as_fd(), PollFlags::POLLIN)];
            match poll(
                &mut fds,
                PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    let e = std::io::Error::from(e);
                    outcome = Err(other(format!("waiting for the node's init: {e}")));
                    break;
                }
            }
        } else {
            1
        };
        if n == 0 {
            outcome = Err(other("the node's init did not get ready within 30 s"));
            // Do not wait on it below; what it started lives in the node's network
            // namespace and goes with the rollback's sweep.
            if let Some(child) = &mut starter.exec {
                let _ = child.kill();
            }
            break;
        }
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            break;
        }
        match InitLine::of(&line) {
            InitLine::Ready => {
                outcome = Ok(());
                break;
            }
            InitLine::Error(e) => {
                outcome = Err(other(format!("setting up the node failed: {e}")));
                break;
            }
            InitLine::Pid => {}
            InitLine::Unplaced(l) => unplaced.push(l.to_string()),
        }
    }
    // Lines that are none of the protocol's say more than "ended without ready": two
    // writers interleaving on the pipe once looked exactly like that.
    if outcome.is_err() && !unplaced.is_empty() {
        outcome = outcome.map_err(|e| other(format!("{e}; it also said: {}", unplaced.join("; "))));
    }
    // An init that died before `ready` may have said why on stderr (a panic, say).
    if let Err(e) = outcome {
        outcome = Err(with_stderr(e, &starter.stderr));
    }
    // An init the fork server made is the server's child to reap; an exec'd shim
    // exits 0 once it said `ready`.
    let Some(mut child) = starter.exec else {
        return outcome;
    };
    let status = child.wait()?;
    if outcome.is_ok() && !status.success() {
        // The shim failed after the init got going: its reason is on stdout or stderr.
        let mut said = String::new();
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut starter.stderr, &mut err);
        while lines.read_line(&mut said).unwrap_or(0) > 0 {}
        let why: Vec<&str> = said
            .lines()
            .chain(err.lines())
            .filter(|l| !l.trim().is_empty())
            .collect();
        return Err(other(format!(
            "the node's init failed ({status}): {}",
            why.join("; ")
        )));
    }
    outcome
}

/// One line of what starts a node's init, on its stdout.
#[derive(Debug, PartialEq)]
enum InitLine<'a> {
    /// `ready`: its mounts and hostname are in place.
    Ready,
    /// `error: WHY`: it could not set the node up.
    Error(&'a str),
    /// `pid N`: the init was made and recorded.
    Pid,
    /// Anything else, kept for the error if `ready` never comes.
    Unplaced(&'a str),
}

impl<'a> InitLine<'a> {
    fn of(line: &'a str) -> InitLine<'a> {
        let l = line.trim();
        if l == "ready" {
            InitLine::Ready
        } else if let Some(e) = l.strip_prefix("error: ") {
            InitLine::Error(e)
        } else if l
            .strip_prefix("pid ")
            .is_some_and(|n| n.parse::<u32>().is_ok())
        {
            InitLine::Pid
        } else {
            InitLine::Unplaced(l)
        }
    }
}

/// `e` with what is waiting on the init's stderr, read without blocking: an init still
/// running (one that timed out) may never close it.
fn with_stderr(e: KernelError, stderr: &std::fs::File) -> KernelError {
    let mut said = Vec::new();
    if nix::fcntl::fcntl(
        stderr,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .is_ok()
    {
        let _ = std::io::Read::read_to_end(&mut &*stderr, &mut said);
    }
    let said = String::from_utf8_lossy(&said);
    let lines: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return e;
    }
    other(format!("{e}; its stderr: {}", lines.join("; ")))
}

/// Starts a node's init from a thread whose descriptor table holds none of nslab's
/// namespaces and sockets (see `spawner`): the init's exec has nothing to close.
pub async fn start_node(host: &HostContext, start: &NodeStart) -> Result<(), KernelError> {
    let (host, start) = (host.clone(), start.clone());
    super::spawner::run(move || start_node_blocking(&host, &start))
        .await
        .map_err(other)?
}

pub async fn create_cgroup(
    lab: &str,
    node: &str,
    limits: &crate::model::Limits,
    outside: bool,
) -> Result<(), KernelError> {
    let (lab, node, limits) = (lab.to_string(), node.to_string(), limits.clone());
    tokio::task::spawn_blocking(move || cgroup::create(&lab, &node, &limits, outside).map(|_| ()))
        .await
        .map_err(other)?
        .map_err(|e| {
            if e.starts_with("this kernel has no") {
                KernelError::MissingFeature {
                    feature: e
                        .split('`')
                        .nth(1)
                        .map(|c| format!("`{c}` cgroup controller"))
                        .unwrap_or_else(|| "cgroup controller".into()),
                    hint: e.clone(),
                }
            } else {
                other(e)
            }
        })
}

/// Starts a process and waits until it is ready (or has failed): the whole of a
/// start-process step, for callers outside the executor.
pub async fn start_process(
    host: &HostContext,
    lab: &str,
    node: &str,
    process: &str,
) -> Result<(), KernelError> {
    if request_start(host, lab, node, process).await? {
        return Ok(());
    }
    wait_ready(host, lab, node, process).await
}

/// What `status` says of `process`: ready (`Some(Ok)`), failed or out of time
/// (`Some(Err)`, with the end of its log), or neither yet (`None`).
fn verdict(
    status: &control::Status,
    process: &str,
    log: &Path,
    since: Instant,
) -> Option<Result<(), KernelError>> {
    let Some(p) = status.processes.iter().find(|p| p.name == process) else {
        return Some(Err(other(format!("the init has no process `{process}`"))));
    };
    if let Some(e) = &p.error {
        return Some(Err(other(e)));
    }
    if p.ready {
        return Some(Ok(()));
    }
    let with_tail = |what: String| {
        let tail = log_tail(log, 10);
        if tail.is_empty() {
            other(what)
        } else {
            other(format!("{what}; its log ends with:\n{tail}"))
        }
    };
    // An exit 0 is a launcher whose daemons are still being probed.
    if p.state == "exited" && p.pid.is_none() && p.exit != Some(0) {
        return Some(Err(with_tail(format!(
            "process `{process}` exited with status {} before it was ready",
            p.exit.unwrap_or(-1)
        ))));
    }
    if p.ready_timed_out {
        return Some(Err(with_tail(format!(
            "process `{process}` is not ready after {:.1} s{}",
            since.elapsed().as_secs_f64(),
            match p.failed_probes {
                0 => String::new(),
                n => format!(" ({n} counted probes failed)"),
            }
        ))));
    }
    None
}

/// Asks the init to start a process; true when it is ready at once (it has no probe),
/// else [`wait_ready`] waits for it. Apart, so the executor holds a job slot only for
/// this short part. A process without a probe is ready once started, even if it ends
/// right after: a later `wait` would see it ended and call that a failure.
pub async fn request_start(
    host: &HostContext,
    lab: &str,
    node: &str,
    process: &str,
) -> Result<bool, KernelError> {
    let paths = NodePaths::of_lab(host, lab);
    let reply = control::request_async(&paths.control(node), &format!("start {process}")).await?;
    let status = control::parse_status(&reply).map_err(other)?;
    let log = paths.log(node, process);
    match verdict(&status, process, &log, Instant::now()) {
        Some(Err(e)) => Err(e),
        Some(Ok(())) => Ok(true),
        None => Ok(false),
    }
}

/// Waits until a started process is ready (or has failed): one `wait` request the init
/// answers when the process settles, so any number of processes wait at no cost.
pub async fn wait_ready(
    host: &HostContext,
    lab: &str,
    node: &str,
    process: &str,
) -> Result<(), KernelError> {
    let paths = NodePaths::of_lab(host, lab);
    let socket = paths.control(node);
    let log = paths.log(node, process);
    let since = Instant::now();
    let reply = control::wait_async(&socket, process).await?;
    match control::parse_status(&reply) {
        Ok(status) => verdict(&status, process, &log, since).unwrap_or_else(|| {
            Err(other(format!(
                "process `{process}` was stopped before it was ready (its node is halting or stopping)"
            )))
        }),
        // An init started by an nslab from before `wait` (a lab up across an upgrade).
        Err(e) if e == "unknown request" => poll_ready(&socket, process, &log, since).await,
        Err(e) => Err(other(e)),
    }
}

/// [`wait_ready`] for an init without `wait`: asks for its status until the process is
/// settled, soon at first, then every 20 ms.
async fn poll_ready(
    socket: &Path,
    process: &str,
    log: &Path,
    since: Instant,
) -> Result<(), KernelError> {
    let mut pause = Duration::from_millis(1);
    loop {
        let reply = control::request_async(socket, "status").await?;
        let status = control::parse_status(&reply).map_err(other)?;
        if let Some(v) = verdict(&status, process, log, since) {
            return v;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// The namespaces a command in `node` should enter: its init's, or only its network
/// namespace when it never had an init. A node whose init died has lost its mount, pid
/// and uts namespaces: running there would mean running on the host's.
/// Rewrites a running node's own `/etc/hosts` in place (an `apply` changed the lab's
/// names or the node's addresses): the lab's list, then the node's lines. The file is the
/// one the init wrote on the node's private /run and bound onto /etc/hosts; it is opened
/// inside the node's root without following any link, and truncated rather than replaced
/// so the bind mount keeps showing it. A node whose init is gone has nothing to rewrite.
pub async fn refresh_hosts(host: &HostContext, start: &NodeStart) -> Result<(), KernelError> {
    let (host, start) = (host.clone(), start.clone());
    tokio::task::spawn_blocking(move || rewrite_hosts(&host, &start))
        .await
        .map_err(other)?
}

fn rewrite_hosts(host: &HostContext, start: &NodeStart) -> Result<(), KernelError> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat2};
    use nix::sys::stat::Mode;
    use std::io::Write;
    let paths = NodePaths::of_lab(host, &start.lab);
    let Some(pid) = enter::init_pid(&paths.pid_file(&start.node)) else {
        return Ok(());
    };
    let mut text = crate::state::files::read(&paths.hosts()).map_err(other)?;
    text.push_str(&start.own_hosts);
    let dir = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let root = open(format!("/proc/{pid}/root").as_str(), dir, Mode::empty()).map_err(other)?;
    let how = OpenHow::new()
        .flags(OFlag::O_WRONLY | OFlag::O_TRUNC | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .resolve(
            ResolveFlag::RESOLVE_IN_ROOT
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
    let fd = openat2(&root, "run/.nslab/hosts", how).map_err(other)?;
    std::fs::File::from(fd)
        .write_all(text.as_bytes())
        .map_err(other)
}

pub fn target(host: &HostContext, lab: &str, node: &str, netns: &str) -> std::io::Result<Target> {
    let paths = NodePaths::of_lab(host, lab);
    let pid_file = paths.pid_file(node);
    match enter::init_pid(&pid_file) {
        Some(pid) => Target::of_process(pid, &cgroup::procs_files(lab, node)),
        None if pid_file.exists() => Err(std::io::Error::other(format!(
            "the init of node `{node}` is not running (it was killed), so the node's own namespaces are gone; run `nslab down {lab}` and bring the lab up again"
        ))),
        None => Target::netns(&host.netns_dir, netns),
    }
}

/// How much of an `exec:` command's stderr a failure shows.
const EXEC_STDERR_KEPT: usize = 64 << 10;

/// Runs a one-shot `exec:` command; a failure carries the command's stderr.
pub async fn run_exec(
    host: &HostContext,
    lab: &str,
    node: &str,
    netns: &str,
    argv: &[String],
    ignore_errors: bool,
    timeout: Option<Duration>,
) -> Result<(), KernelError> {
    let std_cmd = target(host, lab, node, netns)?.detached_command(argv)?;
    let shown_argv = crate::model::names::shown(&argv.join(" "), false);
    let mut cmd = tokio::process::Command::from(std_cmd);
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    // Its stdout is not used and its stderr only shown on failure: neither may grow
    // nslab's memory with what the command prints.
    let run = crate::sys::bounded::output(cmd, 0, EXEC_STDERR_KEPT);
    let out = match timeout {
        Some(t) => tokio::time::timeout(t, run).await.map_err(|_| {
            other(format!(
                "`{}` did not finish within {:.1} s",
                shown_argv,
                t.as_secs_f64()
            ))
        })?,
        None => run.await,
    }
    .map_err(|e| other(format!("cannot run `{}`: {e}", shown_argv)))?;
    if out.status.success() || ignore_errors {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Shown on the terminal that ran `up`: as text, whatever the command printed.
    let stderr = crate::model::names::shown(stderr.trim(), true);
    Err(other(format!(
        "`{}` exited with status {}{}",
        shown_argv,
        out.status.code().unwrap_or(-1),
        if stderr.is_empty() {
            String::new()
        } else {
            format!("; stderr:\n{stderr}")
        }
    )))
}

/// A handle on a node's init that cannot be confused with a later process reusing its
/// pid: signals go through the pidfd, and it polls readable once the init has exited.
struct InitHandle {
    node: String,
    pid: i32,
    fd: OwnedFd,
}

impl InitHandle {
    /// The init `record` names, pinned, or `None` when it is gone or is not the init of
    /// `lab`'s `node` (a forged pid file; the sweep of the lab's namespaces still finds
    /// the real init). The pid file is read once by the caller and /proc once here: a
    /// 1,000-node `down` does this 1,000 times, and until the last init is signalled,
    /// this loop is what `down` waits for.
    fn open(lab: &str, node: &str, record: &enter::PidRecord) -> Option<InitHandle> {
        let fd = crate::sys::pidfd::open(record.pid).ok()?;
        // The pid could have been reused since the init wrote it: check now that the
        // descriptor pins whichever process it is. Its command line names the node's
        // init, and a zombie has none, so the start time (`PidRecord::running`, one more
        // /proc file per node) would tell nothing more: a reused pid that passes is
        // that node's init again.
        record.is_init_of(lab, node).then(|| InitHandle {
            node: node.to_string(),
            pid: record.pid,
            fd,
        })
    }

    fn signal(&self, sig: libc::c_int) {
        crate::sys::pidfd::signal(self.fd.as_fd(), sig);
    }
}

/// Waits until every init has exited or `deadline` passes; returns those still running.
fn wait_exit(running: Vec<InitHandle>, deadline: Instant) -> Vec<InitHandle> {
    crate::sys::pidfd::wait_exit(running, deadline, |p| p.fd.as_fd())
}

/// Removes the pid files and control sockets of nodes whose inits have stopped, when the
/// rest of the lab stays up (`down` drops the whole node directory instead). Unlinking
/// never follows a link, and the directory is the lab's own tmpfs.
pub fn forget_stopped(host: &HostContext, lab: &str, nodes: &[String]) -> Vec<String> {
    let paths = NodePaths::of_lab(host, lab);
    let mut errors = Vec::new();
    for node in nodes {
        for file in [paths.pid_file(node), paths.control(node)] {
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => errors.push(format!(
                    "lab `{lab}`: node `{node}`: cannot remove {}: {e}",
                    file.display()
                )),
                _ => {}
            }
        }
    }
    errors
}

/// Stops nodes: SIGTERM to every init at once (each stops its processes and exits),
/// the longest grace period of any node, then SIGKILL for what is left. Last, the strays
/// of nodes without a pid namespace (see [`strays`]) get the same treatment.
pub fn stop_nodes(host: &HostContext, lab: &str, nodes: &[String]) -> Vec<String> {
    let paths = NodePaths::of_lab(host, lab);
    // One pidfd per node.
    netns::raise_nofile_limit();
    let mut running = Vec::new();
    let mut grace = Duration::ZERO;
    let mut identities = Vec::new();
    let ours = strays::Ours::read();
    for node in nodes {
        let Some(record) = enter::PidRecord::read(&paths.pid_file(node)) else {
            continue;
        };
        let Some(init) = InitHandle::open(lab, node, &record) else {
            continue;
        };
        grace = grace.max(record.grace);
        // Read while the init lives: its namespaces are what marks the node's processes.
        identities.extend(ours.as_ref().and_then(|ours| {
            strays::identity(ours, node, init.pid, record.grace, record.own, || {
                cgroup::procs_files(lab, node)
            })
        }));
        init.signal(libc::SIGTERM);
        running.push(init);
    }
    super::progress::trace("wait for the inits");
    let stubborn = wait_exit(running, Instant::now() + grace + Duration::from_secs(2));
    // What ignored SIGTERM past its grace period.
    for init in &stubborn {
        init.signal(libc::SIGKILL);
    }
    let mut errors: Vec<String> = wait_exit(stubborn, Instant::now() + Duration::from_secs(2))
        .iter()
        .map(|i| {
            format!(
                "the init of node `{}` (pid {}) would not die",
                i.node, i.pid
            )
        })
        .collect();
    super::progress::trace("stop strays");
    errors.extend(strays::stop(lab, &identities));
    errors
}

/// Kills whatever still runs inside the lab's network namespaces (processes of nodes
/// without a pid namespace, or left by `nslab exec`): they are the lab's, found by the
/// namespace they live in, as `ip netns pids` finds them. `inodes` are the namespaces'
/// inode numbers ([`netns::Held`]).
pub fn sweep(inodes: &std::collections::HashSet<u64>) -> Vec<String> {
    if inodes.is_empty() {
        return Vec::new();
    }
    let Ok(proc_dir) = std::fs::File::open("/proc") else {
        return vec!["cannot read /proc to find processes left in the lab".into()];
    };
    let me = std::process::id();
    let mut errors = Vec::new();
    for _round in 0..3 {
        // Per round: a kernel thread's pid may since belong to someone else.
        let kernel_threads = kernel_threads(&proc_dir);
        let mut found = 0;
        let Ok(dir) = std::fs::read_dir("/proc") else {
            break;
        };
        for e in dir.flatten() {
            let name = e.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if pid == me
                || kernel_threads.binary_search(&pid).is_ok()
                || !netns_inode_of(&proc_dir, pid).is_some_and(|i| inodes.contains(&i))
            {
                continue;
            }
            found += 1;
            // Pinned, then checked again, then signalled through the pin: between the
            // read of /proc and a kill by number, the process could exit and its pid go
            // to a process of the host's.
            match crate::sys::pidfd::open(pid as i32) {
                Ok(fd) if netns_inode_of(&proc_dir, pid).is_some_and(|i| inodes.contains(&i)) => {
                    crate::sys::pidfd::signal(fd.as_fd(), libc::SIGKILL);
                }
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => errors.push(format!("cannot kill pid {pid}: {e}")),
            }
        }
        if found == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    errors
}

/// The kernel's threads, sorted: kthreadd (pid 2 of the host's pid namespace) and its
/// children. They are most of /proc (58 of 67 processes on this VM) and always live in
/// the host's namespaces, so the sweep does not read their links. Empty when pid 2 is
/// not kthreadd (inside a container) or the kernel cannot list children.
pub(super) fn kernel_threads(proc_dir: &std::fs::File) -> Vec<u32> {
    if !is_kernel_thread(proc_dir, 2) {
        return Vec::new();
    }
    let children = read_whole("/proc/2/task/2/children");
    let mut pids: Vec<u32> = children
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .chain([2])
        .collect();
    pids.sort_unstable();
    pids
}

/// A /proc file in as few reads as it takes: each read of a list like `children` walks it
/// again from the start, and `read_to_string` stats the file, then starts at 32 bytes and
/// doubles. A seq file fills the buffer it is given, so a short read is its end.
fn read_whole(path: &str) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    if let Ok(mut f) = std::fs::File::open(path) {
        while let Ok(n) = f.read(&mut buf[len..]) {
            len += n;
            if n == 0 || len < buf.len() {
                break;
            }
            buf.resize(buf.len() * 2, 0);
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).unwrap_or_default()
}

/// A kernel thread has no executable: reading its `exe` link fails with ENOENT, while
/// root can read any live process's. Its namespace link still reads, unlike that of a
/// missing process or a zombie. Cheaper than parsing `stat` (0.11 ms cold).
fn is_kernel_thread(proc_dir: &std::fs::File, pid: u32) -> bool {
    let mut buf = [0u8; 1];
    matches!(proc_link(proc_dir, pid, "exe", &mut buf), Err(e) if e.raw_os_error() == Some(libc::ENOENT))
        && netns_inode_of(proc_dir, pid).is_some()
}

/// The network namespace inode of a process: its `ns/net` link reads `net:[INODE]`.
fn netns_inode_of(proc_dir: &std::fs::File, pid: u32) -> Option<u64> {
    let mut buf = [0u8; 64];
    let target = proc_link(proc_dir, pid, "ns/net", &mut buf).ok()?;
    std::str::from_utf8(target.strip_prefix(b"net:[")?.strip_suffix(b"]")?)
        .ok()?
        .parse()
        .ok()
}

/// Reads the link `/proc/PID/<what>` relative to an open /proc, without allocating: a
/// sweep reads one per process.
pub(super) fn proc_link<'b>(
    proc_dir: &std::fs::File,
    pid: u32,
    what: &str,
    buf: &'b mut [u8],
) -> std::io::Result<&'b [u8]> {
    use std::io::Write;
    let mut path = [0u8; 32];
    let mut w = &mut path[..];
    write!(w, "{pid}/{what}\0")?;
    let path = std::ffi::CStr::from_bytes_until_nul(&path)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    crate::sys::fd::readlink_at(proc_dir.as_fd(), path, buf)
}

/// Unbinds the lab's mount template (see [`crate::node::template`]).
pub fn remove_mount_template(host: &HostContext, lab: &str) -> Result<(), String> {
    crate::node::template::remove(&NodePaths::of_lab(host, lab).mount_template())
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_inits_lines_are_placed_and_torn_ones_kept_for_the_error() {
        use super::InitLine;
        assert_eq!(InitLine::of("ready\n"), InitLine::Ready);
        assert_eq!(InitLine::of("pid 4463\n"), InitLine::Pid);
        assert_eq!(
            InitLine::of("error: sethostname: EPERM\n"),
            InitLine::Error("sethostname: EPERM")
        );
        // What two writers interleaving on one pipe made of `pid 4463` and `ready`.
        for torn in ["pid ready", "4463", "pid 4463ready"] {
            assert_eq!(InitLine::of(torn), InitLine::Unplaced(torn));
        }
    }

    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn kernel_threads_have_no_executable_and_processes_do() {
        let proc_dir = std::fs::File::open("/proc").unwrap();
        assert!(!is_kernel_thread(&proc_dir, std::process::id()));
        assert!(!is_kernel_thread(&proc_dir, u32::MAX), "no such process");
        // Outside a container, pid 2 is kthreadd.
        if std::fs::read_to_string("/proc/2/comm").is_ok_and(|c| c == "kthreadd\n") {
            assert!(is_kernel_thread(&proc_dir, 2));
        }
    }

    #[test]
    fn read_whole_reads_past_its_first_buffer_and_empty_files() {
        let dir = std::env::temp_dir().join(format!("nslab-read-whole-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big: String = (0..5000).map(|i| format!("{i} ")).collect();
        assert!(big.len() > 2 * 8192);
        let (a, b) = (dir.join("big"), dir.join("empty"));
        std::fs::write(&a, &big).unwrap();
        std::fs::write(&b, "").unwrap();
        assert_eq!(read_whole(a.to_str().unwrap()), big);
        assert_eq!(read_whole(b.to_str().unwrap()), "");
        assert_eq!(read_whole(dir.join("missing").to_str().unwrap()), "");
        std::fs::remove_dir_all(&dir).unwrap();
        // A seq file: the kernel's own children of pid 1's first thread, or nothing.
        let kids = read_whole("/proc/1/task/1/children");
        assert!(
            kids.split_whitespace().all(|p| p.parse::<u32>().is_ok()),
            "{kids}"
        );
    }

    #[test]
    fn this_hosts_kernel_threads_are_kthreadd_and_its_children() {
        let proc_dir = std::fs::File::open("/proc").unwrap();
        let k = kernel_threads(&proc_dir);
        if k.is_empty() {
            return; // a container, or no CONFIG_PROC_CHILDREN: the sweep reads every link
        }
        assert!(k.binary_search(&2).is_ok());
        assert!(k.binary_search(&std::process::id()).is_err());
        assert!(k.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn reads_a_process_network_namespace_inode() {
        let proc_dir = std::fs::File::open("/proc").unwrap();
        let mine = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        assert_eq!(netns_inode_of(&proc_dir, std::process::id()), Some(mine));
        // No such process (pids stop at 2^22).
        assert_eq!(netns_inode_of(&proc_dir, u32::MAX), None);
    }

    #[test]
    fn a_sweep_without_namespaces_kills_nothing() {
        assert!(sweep(&std::collections::HashSet::new()).is_empty());
    }
}
