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
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use super::config::NodeConfig;
use super::sys::{err, last};
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

/// Closes (or, with CLOSE_RANGE_CLOEXEC, marks close-on-exec) every descriptor from
/// `first` up. Async-signal-safe: a single system call, usable between fork and exec.
pub(crate) fn close_from(first: u32, flags: libc::c_uint) {
    // SAFETY: close_range only acts on this process's descriptor table; callers own every
    // descriptor from `first` up (nothing of the standard library's is closed outright
    // after fork: it is marked close-on-exec).
    unsafe {
        libc::syscall(libc::SYS_close_range, first, u32::MAX, flags);
    }
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

/// Everything before the loop. Errors go back to nslab on stdout.
fn setup(cfg: &NodeConfig) -> Result<(Option<OwnedFd>, UnixListener, OwnedFd), String> {
    // nslab's working directory may not exist inside the node.
    let _ = std::env::set_current_dir("/");
    // Nor do the caller's nice value, limits, affinity... reach the node's processes.
    super::fresh::Fresh::new().apply();
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
fn set_up_and_report(cfg: &NodeConfig) -> (Option<OwnedFd>, UnixListener, OwnedFd) {
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

    /// Every signal queued on the signalfd: SIGCHLD reaps, the others stop the node.
    fn read_signals(&mut self, sig: &OwnedFd) {
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
                    self.busy_now();
                }
                _ => self.begin_stop(),
            }
        }
    }
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
