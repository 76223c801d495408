//! Processes by pidfd: a signal that cannot reach a reused pid, and a wait that ends when
//! each process exits (its pidfd polls readable). `down` stops node inits and the strays
//! of nodes without a pid namespace this way.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Instant;

/// A descriptor that pins process `pid`: signals through it cannot reach another process
/// that later gets the same pid.
pub fn open(pid: libc::pid_t) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor, or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Whether the process behind `fd` still runs (signal 0 only checks).
pub fn alive(fd: BorrowedFd) -> bool {
    // SAFETY: pidfd_send_signal on a pidfd the caller owns, with no siginfo.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        ) == 0
    }
}

/// Sends `sig` to the process behind `fd`.
pub fn signal(fd: BorrowedFd, sig: libc::c_int) {
    // SAFETY: pidfd_send_signal on a pidfd the caller owns, with no siginfo.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
}

/// Waits until every process has exited or `deadline` passes; returns those still
/// running. `fd` gives each item's pidfd.
///
/// One process at a time, in the order given (the order they were signalled, so mostly
/// the order they exit): a `poll` over all of them at once queues a waiter on every
/// pidfd at each wake-up, and a `down` of 1,000 nodes woke up hundreds of times while
/// the inits exited, each time re-arming the ones left. One at a time, each pidfd is
/// polled about once.
pub fn wait_exit<T>(running: Vec<T>, deadline: Instant, fd: impl Fn(&T) -> BorrowedFd) -> Vec<T> {
    let mut left = Vec::new();
    let mut rest = running.into_iter();
    for p in rest.by_ref() {
        if !exited_by(fd(&p), deadline) {
            left.push(p);
            break;
        }
    }
    // Past the deadline: the others are only looked at.
    let now = Instant::now();
    left.extend(rest.filter(|p| !exited_by(fd(p), now)));
    left
}

/// Whether the process behind `fd` has exited by `deadline` (at once when it is past).
fn exited_by(fd: BorrowedFd, deadline: Instant) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Rounded up: a wait cut short by the millisecond rounding would busy-loop.
        let ms = left.as_micros().div_ceil(1000);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(n) if n > 0 => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            // Polled past the deadline, or a pidfd that cannot be polled.
            _ if Instant::now() >= deadline => return false,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::process::Command;
    use std::time::Duration;

    #[test]
    fn waits_for_the_exited_and_returns_the_running() {
        let mut dead = Command::new("sleep").arg("100").spawn().unwrap();
        let mut live = Command::new("sleep").arg("100").spawn().unwrap();
        let dead_fd = open(dead.id() as i32).unwrap();
        let alive_fd = open(live.id() as i32).unwrap();
        dead.kill().unwrap();
        dead.wait().unwrap();
        // The exited one first and last: the running one must not hide it.
        let fds = vec![
            (1, dead_fd.as_fd()),
            (2, alive_fd.as_fd()),
            (3, dead_fd.as_fd()),
        ];
        let left = wait_exit(fds, Instant::now() + Duration::from_millis(50), |p| p.1);
        assert_eq!(left.iter().map(|p| p.0).collect::<Vec<_>>(), vec![2]);
        assert!(alive(alive_fd.as_fd()));
        signal(alive_fd.as_fd(), libc::SIGKILL);
        // Killed, it exits; the deadline only bounds a failure.
        let left = wait_exit(
            vec![alive_fd.as_fd()],
            Instant::now() + Duration::from_secs(60),
            |f| *f,
        );
        assert!(left.is_empty());
        live.wait().unwrap();
    }
}
