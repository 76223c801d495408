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
pub fn wait_exit<T>(
    mut running: Vec<T>,
    deadline: Instant,
    fd: impl Fn(&T) -> BorrowedFd,
) -> Vec<T> {
    while !running.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds: Vec<libc::pollfd> = running
            .iter()
            .map(|p| libc::pollfd {
                fd: fd(p).as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: poll over descriptors the items own, alive for the call.
        let n = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                left.as_millis().min(i32::MAX as u128) as i32,
            )
        };
        if n > 0 {
            let mut exited = fds.iter().map(|f| f.revents != 0);
            running.retain(|_| !exited.next().unwrap_or(false));
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    running
}
