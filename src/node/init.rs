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
use std::time::{Duration, Instant};

use super::config::{NodeConfig, ProcessSpec, ReadySpec};
use super::control::{self, ProcStatus, Request, Status};
use super::logsink::LogSink;
use super::ready;
use super::sys::last;
use super::tree;
use crate::model::kinds::RestartPolicy;

mod memory;
mod proc;
mod setup;
mod spawn;
#[cfg(test)]
mod tests;

pub(crate) use memory::learn_droppable;
use memory::{LEARNED, droppable};
use proc::{Proc, Readiness, Retire};
use spawn::spawn;

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

/// Lets the code pages [`trim_memory`] dropped come back with readahead again (on 6.18
/// MADV_RANDOM stops readahead, not the 64 KB fault-around: README Performance): stopping
/// runs code the init has not run since it started, and a `down` of 1,000 nodes spent a
/// sixth of the inits' time in faults.
fn fault_around() {
    for (start, end) in LEARNED.get().into_iter().flatten() {
        // SAFETY: only the access pattern hint of mappings this process has.
        unsafe { libc::madvise(*start as *mut libc::c_void, end - start, libc::MADV_NORMAL) };
    }
}

/// The init proper: sets the node up, tells nslab, then supervises until stopped.
pub(crate) fn run(cfg: NodeConfig) -> ! {
    let (logs, listener, sig) = set_up_and_report(&cfg);
    let mut init = Init::new(cfg, logs);
    loop {
        let now = Instant::now();
        init.turn(now);
        init.trim_when_quiet(now);
        init.wait_and_serve(&sig, &listener);
    }
}

/// Sets the node up and says `ready` (or the error, and exits); then makes the node's
/// session and lets go of nslab's pipes.
fn set_up_and_report(cfg: &NodeConfig) -> (Option<OwnedFd>, UnixListener, OwnedFd) {
    let mut out = std::io::stdout();
    let set_up = match setup::setup(cfg) {
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
    set_up
}

impl Init {
    fn new(cfg: NodeConfig, logs: Option<OwnedFd>) -> Init {
        let procs = cfg
            .start
            .processes
            .iter()
            .map(|s| Proc::new(s.clone()))
            .collect();
        // SAFETY: getpid has no preconditions.
        let pid1 = unsafe { libc::getpid() } == 1;
        Init {
            cfg,
            logs,
            procs,
            pid1,
            stopping: None,
            halting: None,
            // Not trimmed yet: nslab asks for the node's processes right after `ready`,
            // and starting them would fault back in what a trim now gave away.
            trim_at: Some(Instant::now() + Duration::from_millis(500)),
            waiters: Vec::new(),
        }
    }

    /// One turn's timed work: the stop's end, retires and halts, due starts, probes,
    /// and the waiters whose processes settled.
    fn turn(&mut self, now: Instant) {
        if let Some(deadline) = self.stopping
            && (self.all_stopped() || now >= deadline)
        {
            self.finish();
        }
        self.continue_retire(now);
        self.continue_halt(now);
        for i in 0..self.procs.len() {
            if self.procs[i].next_start.is_some_and(|t| t <= now) {
                self.start(i);
            }
        }
        // No probes while halting: a new one would be a child the halt waits for.
        if self.halting.is_none() {
            self.probe(now);
        }
        self.answer_waiters();
    }

    /// Once things are quiet again, gives back the pages the activity faulted in. Not
    /// while stopping: the stop path would only fault back in what it gave away.
    fn trim_when_quiet(&mut self, now: Instant) {
        if self.stopping.is_some() {
            self.trim_at = None;
        } else if self.trim_at.is_some_and(|t| t <= now) {
            let quiet = self
                .procs
                .iter()
                .all(|p| p.probe_pid.is_none() && p.ready != Readiness::Pending);
            // Not while probes still run; and never leave a past timer behind (a busy loop).
            self.trim_at = if quiet {
                trim_memory();
                None
            } else {
                Some(now + Duration::from_millis(500))
            };
        }
    }

    /// Waits for the next timer, a signal, a request or a process's output, and handles
    /// what came.
    fn wait_and_serve(&mut self, sig: &OwnedFd, listener: &UnixListener) {
        let timeout = self
            .next_timer()
            .map(|t| {
                t.saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(60_000) as i32
            })
            .unwrap_or(60_000);
        let logs = self.log_fds();
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
            return;
        }
        let ready = logs
            .iter()
            .zip(&fds[2..])
            .filter(|(_, f)| f.revents != 0)
            .map(|((i, _), _)| *i);
        self.drain_logs(ready, false);
        if fds[0].revents & libc::POLLIN != 0 {
            self.read_signals(sig);
        }
        if fds[1].revents & libc::POLLIN != 0 {
            self.serve(listener);
        }
    }

    /// Reaps on SIGCHLD; any other signal (SIGTERM, SIGINT) begins the stop.
    fn read_signals(&mut self, sig: &OwnedFd) {
        // SAFETY: an all-zero siginfo is a valid value.
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
                    self.reap();
                    self.trim_at = Some(Instant::now() + Duration::from_millis(500));
                }
                _ => self.begin_stop(),
            }
        }
    }

    /// Answers each waiting connection of this init's own user.
    fn serve(&mut self, listener: &UnixListener) {
        while let Ok((stream, _)) = listener.accept() {
            if !peer_is_ours(&stream) {
                // Closed unanswered.
                continue;
            }
            let _ = stream.set_nonblocking(false);
            self.handle(stream);
            self.trim_at = Some(Instant::now() + Duration::from_millis(500));
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
