//! Joining a lab's holder, as `nsenter -U -m -n -p --preserve-credentials` does: one
//! `setns` on the holder's pidfd, then a fork, because only children enter a pid
//! namespace. The child runs the command inside the lab (every pid it forks and reads in
//! /proc is the lab's); the parent waits for it and says how it ended.

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use super::{Holder, RootlessError};

/// Which side of the fork [`join`] returned on.
#[derive(Debug, PartialEq, Eq)]
pub enum Joined {
    /// Inside the lab: run the command.
    Inside,
    /// The process that joined, after the command ended.
    Done(Ended),
}

/// How the command run inside the lab ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this code.
    Exited(u8),
    /// A signal ended it.
    Killed(Signal),
}

/// Enters the holder's user, mount, network and pid namespaces and forks. Must be called
/// while the process has one thread: the kernel lets only a single-threaded process join
/// a user namespace (so before any runtime starts).
pub fn join(holder: &Holder) -> Result<Joined, RootlessError> {
    let err = |source| RootlessError::Join {
        lab: holder.lab.clone(),
        pid: holder.pid,
        source,
    };
    // Checked before the setns: /proc/self would not be this process inside.
    let one = crate::sys::child::SingleThreaded::check().ok_or_else(|| {
        err(std::io::Error::other(
            "joining a lab's namespaces needs a process with one thread",
        ))
    })?;
    // Entering a mount namespace moves the working directory to its root; the same path
    // exists inside (the mounts are a copy), so relative file names keep working.
    let cwd = std::env::current_dir().map_err(err)?;
    let flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWPID;
    // setns on a pidfd joins all of them at once, so the process is never half inside.
    nix::sched::setns(holder.pidfd(), flags).map_err(|e| err(e.into()))?;
    std::env::set_current_dir(&cwd).map_err(err)?;
    // Opened before the fork, so the child can tell whether this process is still there.
    let me = crate::sys::pidfd::open(std::process::id() as i32).map_err(err)?;
    match one.fork().map_err(|e| err(e.into()))? {
        ForkResult::Child => {
            die_with_parent(&me);
            Ok(Joined::Inside)
        }
        ForkResult::Parent { child } => {
            wait_forwarding(child)
                .map(Joined::Done)
                .map_err(|e| RootlessError::Lost {
                    lab: holder.lab.clone(),
                    source: e.into(),
                })
        }
    }
}

/// The command inside dies with the process that joined (the one the user started): a
/// `kill -9` of `nslab up` stops the `up` inside too, as it stops a root `up`, instead of
/// letting it run on unseen and hold the lab's lock; `down` then removes what it made.
fn die_with_parent(parent: &std::os::fd::OwnedFd) {
    use std::os::fd::AsFd;
    let _ = crate::sys::attrs::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as u64, 0);
    // Killed before the prctl: go now. The parent is outside the lab's pid namespace, so
    // getppid reads 0 either way, and it cannot be signalled from here; its pidfd turns
    // readable when it exits.
    let mut fds = [nix::poll::PollFd::new(
        parent.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    if nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).is_ok_and(|n| n > 0) {
        std::process::exit(128 + libc::SIGKILL);
    }
}

/// Waits for the command; SIGTERM, SIGHUP and a process's SIGINT sent to this process
/// reach it too, and Ctrl-C (which the terminal sends to both) is left to it, so its
/// rollback runs. Without the SIGINT, `kill -INT` of a rootless `nslab test` did nothing.
fn wait_forwarding(child: Pid) -> nix::Result<Ended> {
    let _ = crate::sys::signal::forward_to(child, &[Signal::SIGTERM, Signal::SIGHUP]);
    let _ = crate::sys::signal::forward_unless_from_terminal(child, Signal::SIGINT);
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(Ended::Exited(code as u8)),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Ended::Killed(sig)),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}
