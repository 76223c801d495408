//! Descriptor calls nix has no wrapper for.

use std::os::fd::{AsRawFd, BorrowedFd};

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

/// Reads from `fd` into the spare capacity of `buf` (at most all of it) and adds what was
/// read to `buf`'s length: the buffer is never zeroed first, so a read touches only the
/// pages it fills. `Ok(0)` is the end of the file.
pub fn read_spare(fd: BorrowedFd, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    // SAFETY: read(2) writes at most `spare.len()` bytes into memory `buf` owns.
    let n = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the kernel initialised the `n` bytes after the old length.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn a_read_into_spare_capacity_keeps_what_was_there_and_adds_what_came() {
        let (r, w) = nix::unistd::pipe().unwrap();
        std::fs::File::from(w).write_all(b"world").unwrap();
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(b"hello ");
        assert_eq!(super::read_spare(r.as_fd(), &mut buf).unwrap(), 5);
        assert_eq!(buf, b"hello world");
        // The write end is closed: the end of the file.
        assert_eq!(super::read_spare(r.as_fd(), &mut buf).unwrap(), 0);
        assert_eq!(buf, b"hello world");
    }
}
