//! nslab's init (`nslab __init CONFIG`): PID 1 of a node. It joins the node's cgroups,
//! sets the hostname, builds the node's mount namespace, starts and supervises processes
//! on request, probes their readiness, reaps every zombie, and on SIGTERM stops the whole
//! node: SIGTERM, a grace period, then SIGKILL.
//!
//! It is single-threaded and event-driven (signalfd + poll), so it stays small: no
//! runtime, no threads, a few allocations at start.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use super::config::{NodeConfig, ProcessSpec, ReadySpec};
use super::control::{self, ProcStatus, Request, Status};
use super::fresh::Wanted;
use super::logsink::LogSink;
use super::ready;
use super::sys::{err, last};
use super::tree;
use super::users::{self, Ids};
use crate::model::kinds::RestartPolicy;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Readiness {
    /// No probe: ready once running.
    NoProbe,
    Pending,
    Ready,
    TimedOut,
}

struct Proc {
    spec: ProcessSpec,
    /// Its stdout and stderr, from the first start on.
    log: Option<LogSink>,
    requested: bool,
    pid: Option<i32>,
    state: &'static str,
    restarts: u32,
    exit: Option<i32>,
    error: Option<String>,
    started: Option<Instant>,
    next_start: Option<Instant>,
    backoff: Duration,
    ready: Readiness,
    probe_pid: Option<i32>,
    next_probe: Option<Instant>,
    /// Polls of the probe since the last start, for [`ready::delay`].
    polls: u32,
    ready_deadline: Option<Instant>,
    was_ready: bool,
    /// When the readiness period began, failed probes since that count toward
    /// `attempts`, and whether the running `cmd` probe counts (see [`Proc::counts`]).
    ready_since: Option<Instant>,
    failures: u32,
    probe_counts: bool,
    /// When the running `cmd` probe started, while `probe_timeout` may still end it.
    probe_started: Option<Instant>,
    /// The process group of its last start (its first pid, with that process's start
    /// time, which tells a reused number apart): what it left behind is found by it
    /// after the process itself is gone.
    group: Option<tree::Group>,
    /// Being retired (see [`Init::retire`]).
    retire: Option<Retire>,
    /// Who it and its `cmd` probe run as, looked up at its last start.
    ids: Option<Ids>,
}

/// A process on its way out of the table.
struct Retire {
    /// When what is left gets SIGKILL (its grace's end, then every 100 ms).
    kill_at: Instant,
    /// Its family when the retire began, by identity: daemons that left its group are
    /// reparented to the init once it dies, and only this still ties them to it.
    known: Vec<tree::Entry>,
}

impl Proc {
    /// A process of the table, not started: `start NAME` starts it.
    fn new(spec: ProcessSpec) -> Proc {
        Proc {
            spec,
            log: None,
            requested: false,
            pid: None,
            state: "waiting",
            restarts: 0,
            exit: None,
            error: None,
            started: None,
            next_start: None,
            backoff: Duration::ZERO,
            ready: Readiness::NoProbe,
            probe_pid: None,
            next_probe: None,
            polls: 0,
            ready_deadline: None,
            was_ready: false,
            ready_since: None,
            failures: 0,
            probe_counts: false,
            probe_started: None,
            group: None,
            retire: None,
            ids: None,
        }
    }

    /// A launcher that did its job: it exited 0 and will not be started again (the
    /// daemons it started live on, like `frrinit.sh start`).
    fn completed(&self) -> bool {
        self.pid.is_none()
            && self.exit == Some(0)
            && self.next_start.is_none()
            && self.state == "exited"
    }

    /// Whether readiness probes run now: while the process runs, or after it completed.
    fn probing(&self) -> bool {
        self.ready == Readiness::Pending && (self.pid.is_some() || self.completed())
    }

    /// What `ps` and `up` see as ready.
    fn is_ready(&self) -> bool {
        matches!(self.ready, Readiness::NoProbe | Readiness::Ready)
            && (self.pid.is_some() || self.completed())
    }

    /// Whether a probe made now counts toward `attempts`: once polls come at the
    /// `interval` (the quick first ones are free) and after `start_period`.
    fn counts(&self, interval: Duration, now: Instant) -> bool {
        let start = Duration::from_millis(self.spec.ready_limits.start_period_ms);
        self.polls > 0
            && ready::delay(interval, self.polls - 1) >= interval
            && self.ready_since.is_none_or(|s| now >= s + start)
    }

    /// When `probe_timeout` ends the running `cmd` probe, if it does.
    fn probe_end(&self) -> Option<Instant> {
        let limit = self.spec.ready_limits.probe_timeout_ms?;
        Some(self.probe_started? + Duration::from_millis(limit))
    }

    /// A failed probe that counts: the last of `attempts` ends the wait.
    fn failed_probe(&mut self) {
        self.failures = self.failures.saturating_add(1);
        let limit = self.spec.ready_limits.attempts;
        if self.ready == Readiness::Pending && limit.is_some_and(|a| self.failures >= a) {
            self.ready = Readiness::TimedOut;
        }
    }

    /// Looks its `user:` up in the node's own /etc (the init is in the node's mount
    /// namespace, with the node's binds in place), at every start: a restart sees an
    /// edited file. The error names the lab, the node and the process.
    fn lookup_user(&mut self, node: &super::config::NodeStart) -> Result<(), String> {
        let Some(user) = &self.spec.user else {
            self.ids = None;
            return Ok(());
        };
        let found = users::resolve_in(
            user,
            std::path::Path::new("/etc/passwd"),
            std::path::Path::new("/etc/group"),
        );
        self.ids = Some(found.map_err(|e| {
            format!(
                "lab `{}`, node `{}`: process `{}` cannot run as `{user}`: {e} (looked up in the node's /etc/passwd and /etc/group)",
                node.lab, node.node, self.spec.name
            )
        })?);
        Ok(())
    }

    /// Its `rlimits`, `nice`, `oom_score_adj`, `cpus` and `ionice`, checked at every
    /// start against what the init may give (`None` when it asks for none). The error
    /// names the attribute; nslab's report of the start names the lab, node and process.
    fn wanted(&self) -> Result<Option<Wanted>, String> {
        if self.spec.attrs.is_empty() {
            return Ok(None);
        }
        Wanted::new(&self.spec.attrs).map(Some)
    }

    /// Whether a `wait` for it is answered now: ready, failed to start, ended before it
    /// was ready (a launcher's exit 0 is not an end: its daemons are still probed), out
    /// of readiness time, or not asked to start (never, or a halt undid it).
    fn settled(&self) -> bool {
        self.is_ready()
            || self.error.is_some()
            || self.ready == Readiness::TimedOut
            || (self.state == "exited" && self.pid.is_none() && self.exit != Some(0))
            || !self.requested
    }
}

/// A client's `wait NAME`, answered once that process is settled (see [`Proc::settled`]).
struct Waiter {
    stream: UnixStream,
    name: String,
}

struct Init {
    cfg: NodeConfig,
    logs: Option<OwnedFd>,
    procs: Vec<Proc>,
    pid1: bool,
    stopping: Option<Instant>,
    /// While halting: when to send SIGKILL (the grace's end, then every 100 ms).
    halting: Option<Instant>,
    /// When to give back start-up pages again after activity (see [`trim_memory`]).
    trim_at: Option<Instant>,

    /// Clients waiting for processes to settle: answered from the loop, so a wait holds
    /// no turn of it and nslab never polls.
    waiters: Vec<Waiter>,
}

/// The base environment, read once (from the node's own /etc/passwd, as the mounts are
/// in place by the first spawn): readiness probes spawn every interval.
fn base_env() -> &'static [(String, String)] {
    static BASE: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    BASE.get_or_init(|| super::environ::base(None))
}

/// Starts `argv` with the base environment and `env`, in `cwd`, as `user`, with the
/// process attributes `wanted` (none for readiness probes: they start from the defaults).
fn spawn(
    argv: &[String],
    env: &[(String, String)],
    cwd: Option<&str>,
    log: Option<File>,
    user: Option<&Ids>,
    wanted: Option<Wanted>,
) -> std::io::Result<i32> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty command"))?;
    let mut cmd = std::process::Command::new(prog);
    // Nothing of the caller's environment: the base (with the user's own name and home
    // when it runs as one), then the node's and process's `env:`.
    cmd.args(args)
        .env_clear()
        .envs(base_env().iter().map(|(k, v)| (k, v)));
    if let Some(ids) = user {
        // A number without an entry is named by its number, at home in `/`, as
        // `environ::base` names an unknown user.
        let name = ids.name.clone().unwrap_or_else(|| ids.uid.to_string());
        let home = ids.home.as_deref().unwrap_or("/");
        cmd.env("USER", &name)
            .env("LOGNAME", &name)
            .env("HOME", home);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null());
    let switch = user.map(Ids::switch);
    // A process starts in `/` unless told otherwise: the cwd nslab was run from may not
    // exist inside the node (its /tmp is the node's own). Entered after the switch to its
    // user (not with `current_dir`, which runs before `pre_exec`, as root), so a `user:`
    // process cannot start inside a directory that user may not enter.
    let dir = std::ffi::CString::new(cwd.unwrap_or("/"))
        .map_err(|_| std::io::Error::other("a cwd holding a NUL byte"))?;
    match log {
        Some(f) => {
            let f2 = f.try_clone()?;
            cmd.stdout(f).stderr(f2);
        }
        None => {
            cmd.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
        }
    }
    // Its own process group, so a stop reaches everything it started.
    cmd.process_group(0);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Restore the signals the init blocked for its signalfd.
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            // Only 0-2 reach the process, whatever the init holds open (close-on-exec
            // rather than closed: the standard library's exec-error pipe is among them).
            crate::sys::fd::close_from(3, true);
            // As root, before the switch: a hard limit, a nice value below 0 and a low
            // `oom_score_adj` need privileges the user may not have.
            wanted.as_ref().map_or(Ok(()), Wanted::apply)?;
            // After the switch, the process could no longer change the rest.
            switch.as_ref().map_or(Ok(()), |s| s.apply())?;
            if libc::chdir(dir.as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    Ok(child.id() as i32)
}

/// One request line, read whole (without its newline), but never more than
/// [`control::MAX_REQUEST`] bytes nor for more than 2 s: the init serves one client at a
/// time, and a client must not hold it or grow its memory. `None` when the client sent
/// nothing or broke off.
fn read_request(mut stream: &UnixStream) -> Result<Option<String>, String> {
    use std::io::Read;
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut line: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Ok(None);
        }
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Ok(None),
        };
        let got = &chunk[..n];
        let end = got.iter().position(|&b| b == b'\n');
        line.extend_from_slice(&got[..end.unwrap_or(n)]);
        if line.len() > control::MAX_REQUEST {
            return Err(format!(
                "the request is longer than {} bytes",
                control::MAX_REQUEST
            ));
        }
        if end.is_some() || n == 0 {
            break;
        }
    }
    if line.is_empty() {
        return Ok(None);
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| "the request is not UTF-8".into())
}

impl Init {
    fn start(&mut self, i: usize) {
        let policy = self.cfg.start.logs;
        let p = &mut self.procs[i];
        if p.log.is_none() {
            p.log = self
                .logs
                .as_ref()
                .and_then(|dir| LogSink::new(dir, &p.spec.name, policy).ok());
        }
        let log = p.log.as_mut().and_then(|sink| {
            // What the last instance wrote goes before the new one's header.
            sink.drain(16);
            let header = format!(
                "--- nslab: starting {} (restart {}) ---\n",
                p.spec.name, p.restarts
            );
            let _ = sink.write(header.as_bytes());
            sink.writer().ok()
        });
        if let Err(e) = p.lookup_user(&self.cfg.start) {
            p.state = "failed";
            p.error = Some(e);
            return;
        }
        let wanted = match p.wanted() {
            Ok(w) => w,
            Err(e) => {
                p.state = "failed";
                p.error = Some(e);
                return;
            }
        };
        match spawn(
            &p.spec.argv,
            &p.spec.env,
            p.spec.cwd.as_deref(),
            log,
            p.ids.as_ref(),
            wanted,
        ) {
            Ok(pid) => {
                p.pid = Some(pid);
                p.group = Some(tree::Group {
                    id: pid,
                    start: super::enter::start_time(pid).unwrap_or(0),
                });
                p.state = "running";
                p.started = Some(Instant::now());
                p.exit = None;
                p.error = None;
                p.next_start = None;
                // Readiness counts from the first start: a process that keeps crashing
                // times out instead of being waited for forever. One that was ready
                // before gets a fresh period each time it restarts.
                match &p.spec.ready {
                    Some(spec) if p.ready_deadline.is_none() || p.was_ready => {
                        p.ready = Readiness::Pending;
                        p.ready_deadline = Some(Instant::now() + spec.timeout());
                        p.ready_since = Some(Instant::now());
                        p.failures = 0;
                    }
                    Some(_) if p.ready != Readiness::TimedOut => p.ready = Readiness::Pending,
                    Some(_) => {}
                    None => p.ready = Readiness::NoProbe,
                }
                p.next_probe = Some(Instant::now());
                p.polls = 0;
            }
            Err(e) => {
                p.state = "failed";
                p.error = Some(format!("cannot start `{}`: {e}", p.spec.argv.join(" ")));
            }
        }
    }

    fn status(&self) -> Status {
        Status {
            node: self.cfg.start.node.clone(),
            processes: self
                .procs
                .iter()
                .map(|p| ProcStatus {
                    name: p.spec.name.clone(),
                    pid: p.pid,
                    state: p.state.to_string(),
                    restarts: p.restarts,
                    exit: p.exit,
                    ready: p.is_ready(),
                    ready_timed_out: p.ready == Readiness::TimedOut,
                    failed_probes: p.failures,
                    error: p.error.clone(),
                    uptime_ms: p
                        .started
                        .filter(|_| p.pid.is_some())
                        .map(|s| s.elapsed().as_millis() as u64),
                })
                .collect(),
            halting: self.halting.is_some(),
            grace_ms: self.grace().as_millis() as u64,
        }
    }

    fn handle(&mut self, stream: UnixStream) {
        let reply = match read_request(&stream).map(|l| l.map(|l| Request::parse(&l))) {
            Ok(Some(Ok(Request::Wait(name)))) => match self.index(&name) {
                Ok(_) => {
                    self.waiters.push(Waiter { stream, name });
                    return;
                }
                Err(e) => control::error_reply(&e),
            },
            Ok(Some(Ok(request))) => self.answer(request),
            Ok(None) => return,
            Ok(Some(Err(e))) | Err(e) => control::error_reply(&e),
        };
        let mut w = &stream;
        let _ = writeln!(w, "{reply}");
    }

    /// Answers every `wait` whose process has settled, is gone or being retired, or
    /// whose node is halting or stopping, with the status of now.
    fn answer_waiters(&mut self) {
        if self.waiters.is_empty() {
            return;
        }
        let busy = self.halting.is_some() || self.stopping.is_some();
        let (done, keep): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| {
                busy || self
                    .procs
                    .iter()
                    .find(|p| p.spec.name == w.name)
                    .is_none_or(|p| p.retire.is_some() || p.settled())
            });
        self.waiters = keep;
        if done.is_empty() {
            return;
        }
        let reply = serde_json::to_string(&self.status())
            .unwrap_or_else(|e| control::error_reply(&e.to_string()));
        for w in done {
            // Never blocks the loop: a client that stopped reading loses its answer.
            let _ = w.stream.set_nonblocking(true);
            let _ = writeln!(&w.stream, "{reply}");
        }
    }

    /// The reply to one request (all but `wait`, which [`Init::handle`] keeps).
    fn answer(&mut self, request: Request) -> String {
        let busy = self.halting.is_some() || self.stopping.is_some();
        let done = match request {
            Request::Start(_) if busy => Err("the node is stopping its processes".into()),
            Request::Start(name) => self.start_request(&name),
            Request::Status => Ok(()),
            Request::Halt => {
                self.halt();
                Ok(())
            }
            Request::Stop => {
                self.begin_stop();
                return "{\"ok\":true}".into();
            }
            Request::Add(_) | Request::Retire(_) if self.stopping.is_some() => {
                Err("the node is stopping".into())
            }
            Request::Add(spec) => self.add(*spec),
            Request::Retire(name) => self.retire(&name),
            Request::Wait(_) => Err("`wait` is answered by the loop".into()),
        };
        match done.and_then(|()| serde_json::to_string(&self.status()).map_err(|e| e.to_string())) {
            Ok(status) => status,
            Err(e) => control::error_reply(&e),
        }
    }

    fn start_request(&mut self, name: &str) -> Result<(), String> {
        let i = self.index(name)?;
        let p = &self.procs[i];
        // Not asked for yet, or it died and nothing will restart it (a crash under
        // `restart: never`); a completed one-shot stays done.
        let dead = p.pid.is_none() && p.next_start.is_none() && !p.completed();
        if !p.requested || dead {
            self.procs[i].requested = true;
            self.start(i);
        }
        Ok(())
    }

    /// The table's entry for `name`; one being retired is no longer there to use.
    fn index(&self, name: &str) -> Result<usize, String> {
        match self.procs.iter().position(|p| p.spec.name == name) {
            Some(i) if self.procs[i].retire.is_some() => {
                Err(format!("process `{name}` is being retired"))
            }
            Some(i) => Ok(i),
            None => Err(format!("no process `{name}`")),
        }
    }

    /// A new process joins the table, not started: `start NAME` starts it, with the usual
    /// readiness. The grace of the node (see [`Init::grace`]) follows.
    fn add(&mut self, spec: ProcessSpec) -> Result<(), String> {
        if let Some(p) = self.procs.iter().find(|p| p.spec.name == spec.name) {
            return Err(if p.retire.is_some() {
                format!("process `{}` is still being retired", spec.name)
            } else {
                format!("process `{}` already exists", spec.name)
            });
        }
        self.procs.push(Proc::new(spec));
        Ok(())
    }

    /// Stops one process and what it started (SIGTERM now, SIGKILL after its own
    /// `stop_timeout`), without touching the others; [`Init::continue_retire`] drops it
    /// from the table once all of it is gone.
    fn retire(&mut self, name: &str) -> Result<(), String> {
        let Some(i) = self.procs.iter().position(|p| p.spec.name == name) else {
            return Err(format!("no process `{name}`"));
        };
        if self.procs[i].retire.is_some() {
            return Ok(());
        }
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        let p = &mut self.procs[i];
        p.requested = false;
        p.next_start = None;
        p.ready = Readiness::NoProbe;
        p.ready_deadline = None;
        p.next_probe = None;
        p.state = "retiring";
        if let Some(pid) = p.probe_pid {
            // SAFETY: a probe we started (reaped only by this init, so still ours).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let known = p
            .group
            .map(|g| tree::family(&tree::scan(), me, g))
            .unwrap_or_default();
        // The group at once while its leader holds its number; the rest of its family
        // (the whole of it, once the leader is gone) one by one.
        let rest: Vec<tree::Entry> = match p.pid {
            Some(pid) => {
                // SAFETY: a process group we created, whose leader is not reaped yet.
                unsafe { libc::kill(-pid, libc::SIGTERM) };
                known.iter().filter(|e| e.pgrp != pid).copied().collect()
            }
            None => known.clone(),
        };
        tree::signal(&rest, libc::SIGTERM);
        p.retire = Some(Retire {
            kill_at: Instant::now() + Duration::from_millis(p.spec.stop_timeout_ms),
            known,
        });
        Ok(())
    }

    /// Drops retired processes that are gone, with their log; past a process's grace,
    /// SIGKILLs what is left of it.
    fn continue_retire(&mut self, now: Instant) {
        if self.procs.iter().all(|p| p.retire.is_none()) {
            return;
        }
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        let table = tree::scan();
        let mut i = 0;
        while i < self.procs.len() {
            let p = &mut self.procs[i];
            let Some(r) = p.retire.as_mut() else {
                i += 1;
                continue;
            };
            let mut left = tree::alive(&table, &r.known);
            if let Some(g) = p.group {
                for e in tree::family(&table, me, g)
                    .into_iter()
                    .filter(|e| !e.zombie)
                {
                    if !left.iter().any(|l| l.pid == e.pid) {
                        left.push(e);
                    }
                }
            }
            if p.pid.is_none() && p.probe_pid.is_none() && left.is_empty() {
                let mut gone = self.procs.remove(i);
                if let Some(log) = gone.log.as_mut() {
                    // Its last words (bounded all the same), then the pipe and the file
                    // close with it.
                    for _ in 0..64 {
                        if !log.drain(16) {
                            break;
                        }
                    }
                    let footer = format!("--- nslab: retired {} ---\n", gone.spec.name);
                    let _ = log.write(footer.as_bytes());
                }
                continue;
            }
            if now >= r.kill_at {
                if let Some(pid) = p.pid {
                    // SAFETY: our own process group, its leader not reaped yet.
                    unsafe { libc::kill(-pid, libc::SIGKILL) };
                }
                tree::signal(&left, libc::SIGKILL);
                // Again every 100 ms: a child forked between the scan and the kill
                // escapes one pass, but not the next.
                r.kill_at = now + Duration::from_millis(100);
            }
            i += 1;
        }
    }

    /// The longest stop timeout of the node's processes: how long TERM is given.
    fn grace(&self) -> Duration {
        let ms = self
            .procs
            .iter()
            .map(|p| p.spec.stop_timeout_ms)
            .max()
            .unwrap_or(0);
        Duration::from_millis(ms)
    }

    fn begin_stop(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some(Instant::now() + self.grace());
        fault_around();
        for p in &mut self.procs {
            p.next_start = None;
            if let Some(pid) = p.pid {
                // SAFETY: signalling a process group we created.
                unsafe { libc::kill(-pid, libc::SIGTERM) };
            }
            if let Some(pid) = p.probe_pid {
                // SAFETY: as above, a probe we started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        if self.pid1 {
            // Everything else in the node's pid namespace gets the same warning.
            signal_namespace(nix::sys::signal::Signal::SIGTERM);
        } else {
            // Without a pid namespace, daemons that left their process group (setsid, a
            // double fork) are still the init's descendants: it is their subreaper.
            signal_descendants(libc::SIGTERM, None);
        }
    }

    /// Stops every process the init started (and what they started) but keeps the node:
    /// its namespaces and links stay, as when a router's daemons crash. Commands entered
    /// with `nslab exec` are not the node's processes and stay. `start` brings processes
    /// back; readiness starts over.
    fn halt(&mut self) {
        if self.stopping.is_some() || self.halting.is_some() {
            return;
        }
        self.halting = Some(Instant::now() + self.grace());
        for p in &mut self.procs {
            p.requested = false;
            p.next_start = None;
            if let Some(pid) = p.probe_pid {
                // SAFETY: a probe we started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            if let Some(pid) = p.pid {
                // SAFETY: signalling a process group we created.
                unsafe { libc::kill(-pid, libc::SIGTERM) };
            }
        }
        signal_descendants(libc::SIGTERM, None);
    }

    fn continue_halt(&mut self, now: Instant) {
        let Some(deadline) = self.halting else {
            return;
        };
        if self.all_stopped() {
            self.halting = None;
            for p in self.procs.iter_mut().filter(|p| p.retire.is_none()) {
                p.state = "stopped";
                p.ready = Readiness::NoProbe;
                p.ready_deadline = None;
                p.was_ready = false;
                p.next_probe = None;
            }
        } else if now >= deadline {
            // Again every 100 ms: a child forked between the /proc scan and the kill
            // escapes one pass, but not the next.
            signal_descendants(libc::SIGKILL, None);
            self.halting = Some(now + Duration::from_millis(100));
        }
    }

    fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid on any child, non-blocking.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
            for p in &mut self.procs {
                if p.probe_pid == Some(pid) {
                    p.probe_pid = None;
                    p.probe_started = None;
                    if code == 0 && p.ready == Readiness::Pending {
                        p.ready = Readiness::Ready;
                        p.was_ready = true;
                    } else if p.probe_counts {
                        p.failed_probe();
                    }
                }
                if p.pid == Some(pid) {
                    p.pid = None;
                    p.exit = Some(code);
                    if p.retire.is_some() {
                        continue;
                    }
                    p.state = "exited";
                    let again = self.stopping.is_none()
                        && self.halting.is_none()
                        && match p.spec.restart {
                            RestartPolicy::Always => true,
                            RestartPolicy::OnFailure => code != 0,
                            RestartPolicy::Never => false,
                        };
                    if again {
                        // What the old instance left in its group (a daemon under a
                        // `sh -c`, a worker) would hold the new one's pid file and
                        // ports: it goes first, as systemd does before a restart.
                        signal_descendants(libc::SIGKILL, Some(pid));
                        // Back off exponentially; a process that ran 10 s starts over.
                        let ran = p.started.map(|s| s.elapsed()).unwrap_or_default();
                        p.backoff = if ran > Duration::from_secs(10) {
                            Duration::from_millis(100)
                        } else {
                            (p.backoff * 2)
                                .clamp(Duration::from_millis(100), Duration::from_secs(10))
                        };
                        p.state = "backoff";
                        p.restarts += 1;
                        p.next_start = Some(Instant::now() + p.backoff);
                    }
                }
            }
        }
    }

    fn probe(&mut self, now: Instant) {
        for p in &mut self.procs {
            if p.ready == Readiness::Pending && p.ready_deadline.is_some_and(|d| now > d) {
                p.ready = Readiness::TimedOut;
                if let Some(pid) = p.probe_pid.take() {
                    // SAFETY: a probe we started.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                continue;
            }
            if let (Some(pid), Some(end)) = (p.probe_pid, p.probe_end()) {
                // Killed once; its exit (reaped as 137) is a failed probe.
                if now >= end {
                    // SAFETY: a probe we started and have not reaped.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    p.probe_started = None;
                }
            }
            if !p.probing() {
                continue;
            }
            let (Some(spec), Some(when)) = (&p.spec.ready, p.next_probe) else {
                continue;
            };
            if now < when || p.probe_pid.is_some() {
                continue;
            }
            let counts = p.counts(spec.interval(), now);
            p.next_probe = Some(now + ready::delay(spec.interval(), p.polls));
            p.polls = p.polls.saturating_add(1);
            let ok = match spec {
                ReadySpec::Cmd { argv, .. } => {
                    let (env, cwd) = (&p.spec.env, p.spec.cwd.as_deref());
                    p.probe_pid = spawn(argv, env, cwd, None, p.ids.as_ref(), None).ok();
                    p.probe_started = Some(now);
                    p.probe_counts = counts;
                    continue;
                }
                ReadySpec::Tcp { port, .. } => ready::tcp(*port),
                ReadySpec::Unix { path, .. } => ready::unix(path),
                ReadySpec::File { path, .. } => ready::file(path),
            };
            if ok {
                p.ready = Readiness::Ready;
                p.was_ready = true;
            } else if counts {
                p.failed_probe();
            }
        }
    }

    fn next_timer(&self) -> Option<Instant> {
        let mut t: Option<Instant> = self.stopping;
        if let Some(d) = self.halting {
            t = Some(t.map_or(d, |x| x.min(d)));
        }
        if let Some(c) = self.trim_at {
            t = Some(t.map_or(c, |x| x.min(c)));
        }
        // A retiring process is looked at every 50 ms until it is gone: what it leaves
        // may die without a SIGCHLD to this init (its parent is not the init).
        let soon = Instant::now() + Duration::from_millis(50);
        for r in self.procs.iter().filter_map(|p| p.retire.as_ref()) {
            let c = r.kill_at.min(soon);
            t = Some(t.map_or(c, |x| x.min(c)));
        }
        for p in &self.procs {
            // A probe that cannot run now (the process is in backoff) is not a timer; its
            // deadline is.
            let probe = (p.probing() && p.probe_pid.is_none())
                .then_some(p.next_probe)
                .flatten();
            let deadline = (p.ready == Readiness::Pending)
                .then_some(p.ready_deadline)
                .flatten();
            let probe_end = p.probe_pid.and(p.probe_end());
            for c in [p.next_start, probe, deadline, probe_end]
                .into_iter()
                .flatten()
            {
                t = Some(t.map_or(c, |x| x.min(c)));
            }
        }
        t
    }

    /// Every process gone, including daemons that left their launcher: the init reaps
    /// the whole node (PID 1, or a subreaper), so they are its children.
    fn all_stopped(&self) -> bool {
        self.procs.iter().all(|p| p.pid.is_none()) && !has_children()
    }

    /// The log pipes to poll, with the process each belongs to.
    fn log_fds(&self) -> Vec<(usize, RawFd)> {
        self.procs
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.log.as_ref().map(|l| (i, l.fd())))
            .collect()
    }

    /// Copies what the processes wrote to their logs: a few reads each per turn of the
    /// loop, or everything (`all`) before the init exits.
    fn drain_logs(&mut self, ready: impl Iterator<Item = usize>, all: bool) {
        for i in ready {
            if let Some(log) = self.procs[i].log.as_mut() {
                // Bounded even then: something may still write as fast as it is read.
                let mut turns = if all { 64 } else { 1 };
                while log.drain(16) && turns > 1 {
                    turns -= 1;
                }
            }
        }
    }

    fn finish(&mut self) -> ! {
        for p in &self.procs {
            if let Some(pid) = p.pid {
                // SAFETY: killing our own process groups.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
        }
        // As PID 1, nothing more to do: when it exits, the kernel SIGKILLs every other
        // process of its pid namespace (daemons that left their group, `nslab exec`
        // commands) and waits for them before the init's own exit is complete, so
        // `down`, which waits for that exit, still finds the node empty. Listing the
        // node's /proc again for a SIGKILL round only faulted that code back in.
        if !self.pid1 {
            // Nothing dies with this init: what it started goes now, not to the host.
            signal_descendants(libc::SIGKILL, None);
        }
        // The last words of the processes (what their TERM handlers printed).
        self.drain_logs(0..self.procs.len(), true);
        // Nothing is buffered (logs are written straight to their files, and stdout was
        // flushed line by line): the exit handlers would only fault their code back in.
        // SAFETY: ends this process.
        unsafe { libc::_exit(0) }
    }
}

/// Signals every other process of the node's pid namespace, from its PID 1. `kill(-1)`
/// does that too, but the kernel finds them by walking every process on the host under
/// its task-list lock: when a `down` stops 1,000 nodes at once, that walk was a quarter
/// of the inits' CPU time, and it holds back every exit meanwhile.
/// The node's own /proc lists only its processes; without one, `kill(-1)` it is.
fn signal_namespace(sig: nix::sys::signal::Signal) {
    use nix::{sys::signal::kill, unistd::Pid};
    let Some(pids) = namespace_pids() else {
        // From PID 1 of a namespace, -1 reaches only that namespace.
        let _ = kill(Pid::from_raw(-1), sig);
        return;
    };
    for pid in pids.into_iter().filter(|&p| p != 1) {
        // A process of this node's pid namespace (this init is its PID 1).
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

/// The processes of this pid namespace, from its own /proc, or `None` when /proc is
/// not its own (it shows this process as 1 only if it is).
fn namespace_pids() -> Option<Vec<i32>> {
    use nix::fcntl::{OFlag, open};
    use nix::unistd::{Whence, lseek};
    if !std::fs::read_link("/proc/self").is_ok_and(|p| p.as_os_str() == "1") {
        return None;
    }
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let fd = open("/proc", flags, nix::sys::stat::Mode::empty()).ok()?;
    // The processes start at this offset (FIRST_PROCESS_ENTRY in the kernel's
    // fs/proc/base.c); listing /proc's fixed files before them costs more than the
    // node's few processes. Should that ever change, this process (1) is missing and
    // the whole directory is read instead.
    let skip = lseek(&fd, 256, Whence::SeekSet).is_ok();
    let pids: Vec<i32> = nix::dir::Dir::from_fd(fd)
        .ok()?
        .iter()
        .flatten()
        .filter_map(|e| e.file_name().to_str().ok()?.parse().ok())
        .collect();
    match pids.contains(&1) {
        true => Some(pids),
        false if skip => std::fs::read_dir("/proc").ok().map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        }),
        false => None,
    }
}

/// Signals every process descending from the init (its children and theirs; a daemon
/// whose parent died was reparented to the init, so it is found too), but not commands
/// entered from outside with `nslab exec`, whose parent is not the init. With `group`,
/// only those in that process group.
fn signal_descendants(sig: libc::c_int, group: Option<i32>) {
    let me = std::process::id() as i32;
    let found: Vec<tree::Entry> = tree::descendants(&tree::scan(), me)
        .into_iter()
        .filter(|e| group.is_none_or(|want| e.pgrp == want))
        .collect();
    tree::signal(&found, sig);
}

/// Whether any child is left, without reaping it (that is [`Init::reap`]'s job).
fn has_children() -> bool {
    // SAFETY: waitid with WNOWAIT only inspects; the siginfo is ours.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        !(r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD))
    }
}

fn signalfd() -> Result<OwnedFd, String> {
    // SAFETY: building and installing a signal mask, then a signalfd for it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [
            libc::SIGCHLD,
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGQUIT,
        ] {
            libc::sigaddset(&mut set, s);
        }
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(last("sigprocmask"));
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(last("signalfd"));
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// The mappings whose pages can be dropped and read back from their file: read-only,
/// file-backed, and holding no private page at all, neither resident (Anonymous,
/// Private_Dirty) nor swapped out (Swap: a relocated page that went to swap shows as
/// neither, and dropping it would bring back the unrelocated file contents).
fn droppable(smaps: &str) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    let mut keep = false;
    let mut finish = |current: Option<(usize, usize)>, keep: bool| {
        if let Some(r) = current
            && !keep
        {
            ranges.push(r);
        }
    };
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            finish(current, keep);
            let perms = f.next().unwrap_or("");
            let path = f.nth(3).unwrap_or("");
            let clean_file = !perms.contains('w') && path.starts_with('/');
            current = clean_file.then_some((start, end));
            keep = false;
        } else if matches!(first, "Anonymous:" | "Private_Dirty:" | "Swap:")
            && f.next() != Some("0")
        {
            keep = true;
        }
    }
    finish(current, keep);
    ranges
}

/// The droppable mappings as the fork server found them before its first fork (see
/// [`learn_droppable`]).
static LEARNED: std::sync::OnceLock<Vec<(usize, usize)>> = std::sync::OnceLock::new();

/// Reads this process's droppable mappings once, for the inits it will fork: reading
/// `/proc/self/smaps` walks every page table and was a fifth of an init's CPU time. A
/// fork has the same mappings, and its read-only ones cannot gain private pages.
pub(crate) fn learn_droppable() {
    if let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") {
        let _ = LEARNED.set(droppable(&smaps));
    }
}

/// Gives back what only start-up needed: freed heap, and the clean file pages (code and
/// read-only data of this binary and its libraries) faulted in while parsing and mounting.
/// Mappings holding private copies (relocated data) are left alone: dropping those would
/// lose their contents. What the loop uses is faulted back in on demand.
fn trim_memory() {
    // SAFETY: malloc_trim only returns free heap to the kernel.
    unsafe { libc::malloc_trim(0) };
    let ranges = match LEARNED.get() {
        Some(r) => r.clone(),
        None => match std::fs::read_to_string("/proc/self/smaps") {
            Ok(smaps) => droppable(&smaps),
            Err(_) => return,
        },
    };
    for (start, end) in ranges {
        // SAFETY: dropping clean, file-backed, never-written pages is always safe: they
        // are read back from the file on the next access.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_RANDOM);
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        };
    }
}

/// Lets the code pages [`trim_memory`] dropped come back in the kernel's batches again
/// (MADV_RANDOM made each its own fault): stopping runs code the init has not run since
/// it started, and a `down` of 1,000 nodes spent a sixth of the inits' time in faults.
fn fault_around() {
    for (start, end) in LEARNED.get().into_iter().flatten() {
        // SAFETY: only the access pattern hint of mappings this process has.
        unsafe { libc::madvise(*start as *mut libc::c_void, end - start, libc::MADV_NORMAL) };
    }
}

/// Everything before the loop. Errors go back to nslab on stdout.
fn setup(cfg: &NodeConfig) -> Result<(Option<OwnedFd>, UnixListener, OwnedFd), String> {
    // nslab's working directory may not exist inside the node.
    let _ = std::env::set_current_dir("/");
    // Nor do the caller's nice value, limits, affinity... reach the node's processes.
    super::fresh::Fresh::new()
        .apply()
        .map_err(|e| e.to_string())?;
    // SAFETY: plain process calls.
    unsafe {
        if libc::getpid() != 1 {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
    }
    std::fs::create_dir_all(&cfg.logs).map_err(|e| err("logs", e))?;
    let logs = File::open(&cfg.logs).ok().map(OwnedFd::from);
    let _ = std::fs::remove_file(&cfg.control);
    let listener =
        UnixListener::bind(&cfg.control).map_err(|e| err(&cfg.control.display().to_string(), e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| err("control socket", e))?;
    if cfg.start.uts {
        let name = cfg.start.node.as_bytes();
        // SAFETY: sethostname with a valid buffer and length.
        if unsafe { libc::sethostname(name.as_ptr() as *const libc::c_char, name.len()) } != 0 {
            return Err(last("sethostname"));
        }
    }
    if cfg.start.mnt {
        // Before anything is mounted, and after nslab put the init in its groups (it
        // waited for that): the namespace is rooted where the init is now.
        super::cgroupfs::unshare()?;
        super::mountns::build(cfg)?;
    }
    let sig = signalfd()?;
    Ok((logs, listener, sig))
}

/// The init proper: sets the node up, tells nslab, then supervises until stopped.
pub(crate) fn run(cfg: NodeConfig) -> ! {
    let mut out = std::io::stdout();
    let (logs, listener, sig) = match setup(&cfg) {
        Ok(v) => v,
        Err(e) => {
            let _ = writeln!(out, "error: {e}");
            std::process::exit(1);
        }
    };
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    // A session of its own only now: on a host with scheduler autogroups a new session
    // is a scheduling group of its own, and an init that made it first thing waited
    // for a CPU behind every other group while nslab waited for its `ready` (see
    // docs/performance.md, "Why the inits stop starting beside the wiring"). Its
    // processes, all started from here on, are in it.
    // SAFETY: setsid has no preconditions.
    unsafe { libc::setsid() };
    // Nobody reads our output from here on.
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        // SAFETY: dup2 onto our own standard descriptors.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
            libc::dup2(null.as_raw_fd(), 2);
        }
    }
    let procs = cfg
        .start
        .processes
        .iter()
        .map(|s| Proc::new(s.clone()))
        .collect();
    // SAFETY: getpid has no preconditions.
    let pid1 = unsafe { libc::getpid() } == 1;
    let mut init = Init {
        cfg,
        logs,
        procs,
        pid1,
        stopping: None,
        halting: None,
        // Not trimmed yet: nslab asks for the node's processes right after `ready`, and
        // starting them would fault back in what a trim now gave away.
        trim_at: Some(Instant::now() + Duration::from_millis(500)),
        waiters: Vec::new(),
    };
    loop {
        let now = Instant::now();
        if let Some(deadline) = init.stopping
            && (init.all_stopped() || now >= deadline)
        {
            init.finish();
        }
        init.continue_retire(now);
        init.continue_halt(now);
        for i in 0..init.procs.len() {
            if init.procs[i].next_start.is_some_and(|t| t <= now) {
                init.start(i);
            }
        }
        // No probes while halting: a new one would be a child the halt waits for.
        if init.halting.is_none() {
            init.probe(now);
        }
        init.answer_waiters();
        // Once things are quiet again, give back the pages the activity faulted in.
        // Not while stopping: the stop path would only fault back in what it gave away.
        if init.stopping.is_some() {
            init.trim_at = None;
        } else if init.trim_at.is_some_and(|t| t <= now) {
            let quiet = init
                .procs
                .iter()
                .all(|p| p.probe_pid.is_none() && p.ready != Readiness::Pending);
            // Not while probes still run; and never leave a past timer behind (a busy loop).
            init.trim_at = if quiet {
                trim_memory();
                None
            } else {
                Some(now + Duration::from_millis(500))
            };
        }
        let timeout = init
            .next_timer()
            .map(|t| {
                t.saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(60_000) as i32
            })
            .unwrap_or(60_000);
        let logs = init.log_fds();
        let mut fds: Vec<libc::pollfd> = [sig.as_raw_fd(), listener.as_raw_fd()]
            .into_iter()
            .chain(logs.iter().map(|(_, fd)| *fd))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: poll over valid descriptors, as many as the vector holds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout.max(1)) };
        if n <= 0 {
            continue;
        }
        let ready = logs
            .iter()
            .zip(&fds[2..])
            .filter(|(_, f)| f.revents != 0)
            .map(|((i, _), _)| *i);
        init.drain_logs(ready, false);
        if fds[0].revents & libc::POLLIN != 0 {
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            loop {
                // SAFETY: reading whole siginfo structs from our signalfd.
                let r = unsafe {
                    libc::read(
                        sig.as_raw_fd(),
                        &mut info as *mut _ as *mut libc::c_void,
                        std::mem::size_of::<libc::signalfd_siginfo>(),
                    )
                };
                if r <= 0 {
                    break;
                }
                match info.ssi_signo as i32 {
                    libc::SIGCHLD => {
                        init.reap();
                        init.trim_at = Some(Instant::now() + Duration::from_millis(500));
                    }
                    _ => init.begin_stop(),
                }
            }
        }
        if fds[1].revents & libc::POLLIN != 0 {
            while let Ok((stream, _)) = listener.accept() {
                if !peer_is_ours(&stream) {
                    // Closed unanswered.
                    continue;
                }
                let _ = stream.set_nonblocking(false);
                init.handle(stream);
                init.trim_at = Some(Instant::now() + Duration::from_millis(500));
            }
        }
    }
}

/// Whether the peer runs as this init's own user (root, or in a rootless lab the user
/// namespace's root, which is the user): the socket's file mode already keeps others
/// out, and a request can run any command in the node as root, so a connection that got
/// past the mode anyway (a widened umask, a copied descriptor) is refused too.
fn peer_is_ours(stream: &UnixStream) -> bool {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    getsockopt(stream, PeerCredentials).is_ok_and(|c| c.uid() == nix::unistd::geteuid().as_raw())
}

/// `nslab __init CONFIG`. Started by nslab (a shim, the way before the fork server):
/// joins the node's namespaces and makes the init in its new ones, PID 1 of its own pid
/// namespace, prints the init's pid, and leaves the init running on its own.
pub fn main(config: &str) -> i32 {
    // Whatever the caller left open (a shell's `9>file`, a pipe) must not reach the node:
    // nothing of ours is open yet, and 0-2 are the pipes to nslab.
    crate::sys::fd::close_from(3, false);
    let cfg = match super::launch::read_config(config)
        .and_then(|cfg| super::launch::join(&cfg).map(|()| cfg))
    {
        Ok(c) => c,
        Err(e) => {
            crate::outln!("error: {e}");
            return 1;
        }
    };
    // A fresh exec with no thread started.
    let Some(one) = crate::sys::child::SingleThreaded::check() else {
        crate::outln!("error: the init's shim has more than one thread");
        return 1;
    };
    match super::launch::launch(&one, cfg, &mut std::io::stdout(), 2, |cfg| run(cfg)) {
        Some(_) => 0,
        None => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::{Proc, Readiness, droppable, namespace_pids, read_request};
    use crate::model::kinds::{ProbeLimits, RestartPolicy};
    use crate::node::config::{ProcessSpec, ReadySpec};
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::time::{Duration, Instant};

    #[test]
    fn the_hosts_proc_is_not_a_nodes_own() {
        // This process is not 1 in the /proc it sees, so stopping a node from here would
        // fall back to kill(-1), which in the host's pid namespace is never sent.
        if std::process::id() != 1 {
            assert_eq!(namespace_pids(), None);
        }
    }

    fn probed(limits: ProbeLimits) -> Proc {
        let mut p = Proc::new(ProcessSpec {
            name: "p".into(),
            argv: vec!["true".into()],
            env: vec![],
            cwd: None,
            restart: RestartPolicy::Never,
            ready: Some(ReadySpec::Tcp {
                port: 9,
                timeout_ms: 30_000,
                interval_ms: 100,
            }),
            ready_limits: limits,
            stop_timeout_ms: 0,
            user: None,
            attrs: Default::default(),
        });
        p.ready = Readiness::Pending;
        p
    }

    #[test]
    fn only_probes_at_the_interval_and_after_the_start_period_count_toward_attempts() {
        let interval = Duration::from_millis(100);
        let start = Instant::now();
        let mut p = probed(ProbeLimits {
            attempts: Some(2),
            start_period_ms: 1_000,
            ..Default::default()
        });
        p.ready_since = Some(start);
        let later = start + Duration::from_secs(2);
        // Waits of 5, 10, 20, 40, 80 ms come before polls 1 to 5: free. Poll 6 follows
        // a wait of the whole interval.
        let counted: Vec<bool> = (0..8)
            .map(|n| {
                p.polls = n;
                p.counts(interval, later)
            })
            .collect();
        assert_eq!(
            counted,
            [false, false, false, false, false, false, true, true]
        );
        // Within the start period nothing counts.
        assert!(!p.counts(interval, start + Duration::from_millis(999)));
        p.failed_probe();
        assert_eq!(p.ready, Readiness::Pending);
        p.failed_probe();
        assert_eq!(p.ready, Readiness::TimedOut);
        // Without `attempts`, failures never end the wait.
        let mut q = probed(ProbeLimits::default());
        (0..100).for_each(|_| q.failed_probe());
        assert_eq!(q.ready, Readiness::Pending);
    }

    #[test]
    fn a_cmd_probe_ends_after_its_probe_timeout_only_when_one_is_set() {
        let at = Instant::now();
        let mut p = probed(ProbeLimits {
            probe_timeout_ms: Some(250),
            ..Default::default()
        });
        assert_eq!(p.probe_end(), None, "no probe runs");
        p.probe_started = Some(at);
        assert_eq!(p.probe_end(), Some(at + Duration::from_millis(250)));
        let mut q = probed(ProbeLimits::default());
        q.probe_started = Some(at);
        assert_eq!(q.probe_end(), None);
    }

    /// What `read_request` makes of `data`, written (then closed) by another thread.
    fn read_what(data: Vec<u8>) -> Result<Option<String>, String> {
        let (mut client, server) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            // A refused request closes the socket before all of it is written.
            let _ = client.write_all(&data);
        });
        let got = read_request(&server);
        drop(server);
        writer.join().unwrap();
        got
    }

    #[test]
    fn requests_are_read_whole_one_line_and_bounded() {
        assert_eq!(
            read_what(b"status\nextra".to_vec()),
            Ok(Some("status".into()))
        );
        assert_eq!(read_what(b"halt".to_vec()), Ok(Some("halt".into())));
        assert_eq!(read_what(Vec::new()), Ok(None));
        let spec = format!("add {{\"name\":\"{}\"}}\n", "x".repeat(100_000));
        assert_eq!(
            read_what(spec.clone().into_bytes()),
            Ok(Some(spec.trim_end().into()))
        );
        let mut full = vec![b'a'; super::control::MAX_REQUEST];
        full.push(b'\n');
        let got = read_what(full).unwrap().unwrap();
        assert_eq!(got.len(), super::control::MAX_REQUEST);
        let huge = vec![b'a'; super::control::MAX_REQUEST + 10];
        let e = read_what(huge).unwrap_err();
        assert!(e.contains("longer than 1048576 bytes"), "{e}");
        assert!(
            read_what(vec![0xff, b'\n'])
                .unwrap_err()
                .contains("not UTF-8")
        );
    }

    #[test]
    fn only_clean_file_mappings_without_private_pages_are_dropped() {
        let smaps = "\
00400000-00500000 r-xp 00000000 08:01 12 /usr/bin/nslab
Rss:                 100 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  0 kB
00500000-00510000 r--p 00100000 08:01 12 /usr/bin/nslab
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  8 kB
00510000-00520000 r--p 00110000 08:01 12 /usr/bin/nslab
Private_Dirty:         4 kB
Anonymous:             4 kB
Swap:                  0 kB
00520000-00530000 rw-p 00120000 08:01 12 /usr/bin/nslab
Anonymous:             0 kB
Swap:                  0 kB
00530000-00540000 r--p 00000000 00:00 0
Anonymous:             0 kB
7f0000000000-7f0000010000 r--p 00000000 08:01 13 /usr/lib/libc.so.6
Anonymous:             0 kB
Swap:                  0 kB
";
        assert_eq!(
            droppable(smaps),
            vec![(0x400000, 0x500000), (0x7f0000000000, 0x7f0000010000)]
        );
    }
}
