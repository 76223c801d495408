//! Processes by pidfd: a signal that cannot reach a reused pid, and a wait that ends when
//! each process exits (its pidfd polls readable). `down` stops node inits and the strays
//! of nodes without a pid namespace this way.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Instant;

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
