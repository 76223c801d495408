//! Forks. A fork is safe in a process with one thread (no lock can be held by another
//! thread, no memory is halfway changed); nix's `fork` is unsafe because it cannot know.
//! [`SingleThreaded`] is that knowledge: checked once, and kept on the thread that
//! checked. Between fork and exec the child always has one thread, so the hook of
//! [`before_exec`] is handed one too.

use std::io;
use std::marker::PhantomData;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::unistd::{ForkResult, Pid};

/// This process has one thread, the calling one. Neither `Send` nor `Sync`: it stays on
/// that thread, which must start no other while it holds the token.
pub struct SingleThreaded(PhantomData<*const ()>);

impl SingleThreaded {
    /// The token, if the process has one thread now (`/proc/self/stat`'s count).
    pub fn check() -> Option<SingleThreaded> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The fields after the command's closing parenthesis; num_threads is the 20th
        // of the line, the 18th after it.
        let rest = &stat[stat.rfind(')')? + 2..];
        let threads: u32 = rest.split(' ').nth(17)?.parse().ok()?;
        (threads == 1).then_some(SingleThreaded(PhantomData))
    }

    /// Removes `key` from the environment (unsafe in std because another thread may be
    /// reading it: here there is none).
    pub fn remove_env(&self, key: &str) {
        // SAFETY: the process has one thread (the token's invariant).
        unsafe { std::env::remove_var(key) };
    }

    /// fork(2).
    pub fn fork(&self) -> nix::Result<ForkResult> {
        // SAFETY: the process has one thread (the token's invariant).
        unsafe { nix::unistd::fork() }
    }

    /// fork(2) into new namespaces (`flags`, CLONE_NEW*): a clone without a stack, which
    /// copies the address space as fork does; `None` in the child. The C library's
    /// fork handlers (nslab registers none) do not run, and its record of the thread's
    /// id stays the parent's: glibc 2.34 and later ask the kernel.
    pub fn clone_into(&self, flags: libc::c_int) -> nix::Result<Option<Pid>> {
        // SAFETY: one thread (the token), so no lock is held; the raw clone returns 0 in
        // the child and its pid in the parent, as fork does.
        let r = unsafe {
            libc::syscall(
                libc::SYS_clone,
                (flags | libc::SIGCHLD) as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
        let pid = nix::errno::Errno::result(r)? as libc::pid_t;
        Ok((pid != 0).then(|| Pid::from_raw(pid)))
    }
}

/// Ends this process at once with `code`: no destructors, no atexit handlers, no
/// flush of std's buffers (a forked child must not flush its parent's). Async-signal-safe.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) takes an integer and does not return.
    unsafe { libc::_exit(code) }
}

/// Runs `hook` in `cmd`'s child between fork and exec, with the child's one thread as
/// its token. The hook must not allocate or take locks (the parent's other threads may
/// have held them at the fork): only system calls, through nix or this module tree.
pub fn before_exec<F>(cmd: &mut Command, mut hook: F)
where
    F: FnMut(&SingleThreaded) -> io::Result<()> + Send + Sync + 'static,
{
    // SAFETY: the child of the standard library's fork has one thread; the hook's
    // contract (above) keeps it to async-signal-safe calls.
    unsafe {
        cmd.pre_exec(move || hook(&SingleThreaded(PhantomData)));
    }
}

/// Forks for tests, whose process attributes must not leak into the test runner.
#[cfg(test)]
pub mod testing {
    use nix::unistd::{ForkResult, Pid};

    use super::exit_now;

    /// Runs `f` in a forked child and gives its exit status (`None`: killed by a signal).
    /// For tests, whose process attributes must not leak into the test runner: `f` makes
    /// system calls only (the runner's other threads may hold locks).
    pub fn in_child(f: impl FnOnce() -> i32) -> Option<i32> {
        use nix::sys::wait::{WaitStatus, waitpid};
        // SAFETY: the child runs `f` (system calls only, see above) and `_exit`s.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            ForkResult::Child => exit_now(f()),
            ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
                WaitStatus::Exited(_, code) => Some(code),
                _ => None,
            },
        }
    }

    /// Starts `f` in a forked child that ends with its result, and returns at once with the
    /// child's pid (the caller waits for it). For tests; `f` makes system calls only.
    pub fn fork_child(f: impl FnOnce() -> i32) -> Pid {
        // SAFETY: the child runs `f` (system calls only, see `in_child`) and `_exit`s.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            ForkResult::Child => exit_now(f()),
            ForkResult::Parent { child } => child,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::in_child;
    use super::*;

    #[test]
    fn a_process_with_threads_has_no_token_and_one_without_has() {
        let other = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_secs(2)));
        assert!(
            SingleThreaded::check().is_none(),
            "the test runner has threads"
        );
        // A forked child has one thread.
        let code = in_child(|| {
            let Some(one) = SingleThreaded::check() else {
                return 1;
            };
            match one.clone_into(0) {
                Ok(None) => exit_now(7),
                Ok(Some(pid)) => match nix::sys::wait::waitpid(pid, None) {
                    Ok(nix::sys::wait::WaitStatus::Exited(_, 7)) => 0,
                    _ => 2,
                },
                Err(_) => 3,
            }
        });
        assert_eq!(code, Some(0));
        drop(other);
    }

    #[test]
    fn the_hook_runs_in_the_child_before_exec() {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "exit 0"]);
        before_exec(&mut cmd, |_| Err(io::Error::from_raw_os_error(libc::EPERM)));
        let e = cmd.status().unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(libc::EPERM),
            "the hook's error is spawn's"
        );
    }
}
