//! Starting a process of the node (or a `cmd` readiness probe) from the init: the
//! node's environment, its own process group, and between fork and exec the defaults
//! and what the process asks for.

use std::fs::File;
use std::os::unix::process::CommandExt;

use nix::sys::signal::SigSet;

use super::super::fresh::Wanted;
use super::super::users::Ids;

/// The base environment, read once (from the node's own /etc/passwd, as the mounts are
/// in place by the first spawn): readiness probes spawn every interval.
fn base_env() -> &'static [(String, String)] {
    static BASE: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    BASE.get_or_init(|| super::super::environ::base(None))
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
    // Only async-signal-safe calls between fork and exec.
    crate::sys::child::before_exec(&mut cmd, move |_| {
        // Restore the signals the init blocked for its signalfd.
        SigSet::empty().thread_set_mask()?;
        // Only 0-2 reach the process, whatever the init holds open (close-on-exec rather
        // than closed: the standard library's exec-error pipe is among them).
        crate::sys::fd::close_from(3, true);
        // As root, before the switch: a hard limit, a nice value below 0 and a low
        // `oom_score_adj` need privileges the user may not have.
        wanted.as_ref().map_or(Ok(()), Wanted::apply)?;
        // After the switch, the process could no longer change the rest.
        switch.as_ref().map_or(Ok(()), |s| s.apply())?;
        nix::unistd::chdir(dir.as_c_str())?;
        Ok(())
    });
    let child = cmd.spawn()?;
    Ok(child.id() as i32)
}
