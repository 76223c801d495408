//! Starting processes: the node's own (with their log, user and attributes) and the
//! `cmd` readiness probes, each in a process group of its own with a clean environment.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::time::Instant;

use super::process::Readiness;
use super::{Init, close_from};
use crate::node::fresh::Wanted;
use crate::node::logsink::LogSink;
use crate::node::tree;
use crate::node::users::Ids;

/// The base environment, read once (from the node's own /etc/passwd, as the mounts are
/// in place by the first spawn): readiness probes spawn every interval.
fn base_env() -> &'static [(String, String)] {
    static BASE: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    BASE.get_or_init(|| crate::node::environ::base(None))
}

/// Starts `argv` with the base environment and `env`, in `cwd`, as `user`, with the
/// process attributes `wanted` (none for readiness probes: they start from the defaults).
pub(super) fn spawn(
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
            close_from(3, libc::CLOSE_RANGE_CLOEXEC);
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

impl Init {
    /// Starts process `i` of the table: its log's header, its user looked up again, its
    /// attributes checked, then the fork and exec; a failure is its state, not an error.
    pub(super) fn start(&mut self, i: usize) {
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
                    start: crate::node::enter::start_time(pid).unwrap_or(0),
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
}
