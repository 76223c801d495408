//! nslab's init (`nslab __init CONFIG`): PID 1 of a node. It joins the node's cgroups,
//! sets the hostname, builds the node's mount namespace, starts and supervises processes
//! on request, probes their readiness, reaps every zombie, and on SIGTERM stops the whole
//! node: SIGTERM, a grace period, then SIGKILL.
//!
//! It is single-threaded and event-driven (signalfd + poll), so it stays small: no
//! runtime, no threads, a few allocations at start. This module holds its set-up and its
//! loop; each job the loop hands out has a module of its own:
//!
//! - [`process`]: one process's state (started, restarting, probed, retired)
//! - [`spawn`]: starting processes and `cmd` probes
//! - [`probe`]: readiness probes at their intervals
//! - [`reap`]: exits, and restarts with a backoff
//! - [`requests`]: the control socket's requests and `wait`s
//! - [`retire`]: taking one process out of a running node
//! - [`stop`]: the halt and the stop of the whole node
//! - [`memory`]: giving back what only start-up needed

mod memory;
mod probe;
mod process;
mod reap;
mod requests;
mod retire;
mod spawn;
mod stop;

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use super::config::NodeConfig;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::getpid;

use super::sys::err;
use crate::sys::fd::close_from;
pub(crate) use memory::learn_droppable;
use process::{Proc, Readiness};
use requests::Waiter;

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

impl Init {
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

    /// The log pipes to poll, with the process each belongs to.
    fn log_fds(&self) -> Vec<(usize, BorrowedFd<'_>)> {
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
}

fn signalfd() -> Result<SignalFd, String> {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        set.add(s);
    }
    let io = |what: &str, e: nix::errno::Errno| err(what, std::io::Error::from(e));
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(|e| io("sigprocmask", e))?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| io("signalfd", e))
}

/// Everything before the loop. Errors go back to nslab on stdout.
fn setup(cfg: &NodeConfig) -> Result<(Option<OwnedFd>, UnixListener, SignalFd), String> {
    // nslab's working directory may not exist inside the node.
    let _ = std::env::set_current_dir("/");
    // Nor do the caller's nice value, limits, affinity... reach the node's processes.
    super::fresh::Fresh::new().apply();
    if getpid().as_raw() != 1 {
        let _ = nix::sys::prctl::set_child_subreaper(true);
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
        nix::unistd::sethostname(&cfg.start.node)
            .map_err(|e| err("sethostname", std::io::Error::from(e)))?;
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
    let (logs, listener, sig) = set_up_and_report(&cfg);
    leave_caller();
    let mut init = Init::new(cfg, logs);
    loop {
        init.turn(Instant::now());
        init.wait_and_serve(&sig, &listener);
    }
}

/// Runs [`setup`] and tells nslab how it went, on stdout: `ready`, or the error, and then
/// the init exits.
fn set_up_and_report(cfg: &NodeConfig) -> (Option<OwnedFd>, UnixListener, SignalFd) {
    let mut out = std::io::stdout();
    match setup(cfg) {
        Ok(v) => {
            let _ = writeln!(out, "ready");
            let _ = out.flush();
            v
        }
        Err(e) => {
            let _ = writeln!(out, "error: {e}");
            std::process::exit(1);
        }
    }
}

/// Leaves what the init shares with nslab once `ready` is sent: its session and its
/// standard descriptors.
fn leave_caller() {
    // A session of its own only now: on a host with scheduler autogroups a new session
    // is a scheduling group of its own, and an init that made it first thing waited
    // for a CPU behind every other group while nslab waited for its `ready` (see
    // docs/performance.md, "Why the inits stop starting beside the wiring"). Its
    // processes, all started from here on, are in it.
    let _ = nix::unistd::setsid();
    // Nobody reads our output from here on.
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
}

impl Init {
    /// The table of the node's processes, none started: nslab asks for them next.
    fn new(cfg: NodeConfig, logs: Option<OwnedFd>) -> Init {
        let procs = cfg
            .start
            .processes
            .iter()
            .map(|s| Proc::new(s.clone()))
            .collect();
        let pid1 = getpid().as_raw() == 1;
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

    /// The timed work of one turn of the loop: the stop's end, retires and the halt,
    /// due (re)starts, probes, settled `wait`s, and the trim once things are quiet.
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
        self.trim_when_quiet(now);
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
                memory::trim_memory();
                None
            } else {
                Some(now + Duration::from_millis(500))
            };
        }
    }

    /// Activity after which the trim waits for quiet again.
    fn busy_now(&mut self) {
        self.trim_at = Some(Instant::now() + Duration::from_millis(500));
    }

    /// Waits for the next timer, a signal, a client or a log line, and handles what came.
    fn wait_and_serve(&mut self, sig: &SignalFd, listener: &UnixListener) {
        let timeout = self
            .next_timer()
            .map(|t| {
                t.saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(60_000) as i32
            })
            .unwrap_or(60_000);
        // The descriptors polled borrow the table, which handling what came changes.
        let (ready, signals, clients) = {
            let logs = self.log_fds();
            let mut fds: Vec<PollFd> = [sig.as_fd(), listener.as_fd()]
                .into_iter()
                .chain(logs.iter().map(|(_, fd)| *fd))
                .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
                .collect();
            // At most 60 s, so it fits.
            let timeout = PollTimeout::from(timeout.max(1) as u16);
            if !poll(&mut fds, timeout).is_ok_and(|n| n > 0) {
                return;
            }
            // Empty, so not allocated, unless a log has something to copy.
            let ready: Vec<usize> = logs
                .iter()
                .zip(&fds[2..])
                .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
                .map(|((i, _), _)| *i)
                .collect();
            (ready, readable(&fds[0]), readable(&fds[1]))
        };
        self.drain_logs(ready.into_iter(), false);
        if signals {
            self.read_signals(sig);
        }
        if clients {
            self.serve(listener);
        }
    }

    /// Every signal queued on the signalfd: SIGCHLD reaps, the others stop the node.
    fn read_signals(&mut self, sig: &SignalFd) {
        while let Ok(Some(info)) = sig.read_signal() {
            match info.ssi_signo as i32 {
                libc::SIGCHLD => {
                    self.reap();
                    self.busy_now();
                }
                _ => self.begin_stop(),
            }
        }
    }
}

/// Sends `sig` to `pid` (a negative one: that process group). Only for what this init
/// started and has not reaped: a number it has not reaped is still that process's (or
/// its group's), so the signal cannot reach another. A failure (already gone) is fine.
fn send(pid: i32, sig: Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

/// Whether a poll found `fd` readable.
fn readable(fd: &PollFd) -> bool {
    fd.revents().is_some_and(|r| r.contains(PollFlags::POLLIN))
}

/// `nslab __init CONFIG`. Started by nslab (a shim, the way before the fork server):
/// joins the node's namespaces and makes the init in its new ones, PID 1 of its own pid
/// namespace, prints the init's pid, and leaves the init running on its own.
pub fn main(config: &str) -> i32 {
    // Whatever the caller left open (a shell's `9>file`, a pipe) must not reach the node:
    // nothing of ours is open yet, and 0-2 are the pipes to nslab.
    close_from(3, 0);
    let cfg = match super::launch::read_config(config)
        .and_then(|cfg| super::launch::join(&cfg).map(|()| cfg))
    {
        Ok(c) => c,
        Err(e) => {
            crate::outln!("error: {e}");
            return 1;
        }
    };
    match super::launch::launch(cfg, &mut std::io::stdout(), 2, |cfg| run(cfg)) {
        Some(_) => 0,
        None => 1,
    }
}
