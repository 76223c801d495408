//! Descriptor-table calls nix has no wrapper for.

/// Closes (or, with `CLOSE_RANGE_CLOEXEC`, marks close-on-exec) every descriptor from
/// `first` up. Async-signal-safe: a single system call, usable between fork and exec.
pub fn close_from(first: u32, flags: libc::c_uint) {
    // SAFETY: close_range only acts on this process's descriptor table; callers own every
    // descriptor from `first` up (nothing of the standard library's is closed outright
    // after fork: it is marked close-on-exec).
    unsafe {
        libc::syscall(libc::SYS_close_range, first, u32::MAX, flags);
    }
}
