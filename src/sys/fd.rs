//! Descriptor calls std and nix leave raw: closing a whole range, writing to a raw
//! descriptor between fork and exec, reading into a buffer's spare capacity, and taking
//! ownership of descriptors the kernel just handed over.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Closes (or, with `cloexec`, marks close-on-exec) every descriptor from `first` up.
/// Async-signal-safe: a single system call, usable between fork and exec.
pub fn close_from(first: u32, cloexec: bool) {
    let flags = if cloexec {
        libc::CLOSE_RANGE_CLOEXEC
    } else {
        0
    };
    // SAFETY: close_range only acts on this process's descriptor table; callers own every
    // descriptor from `first` up (nothing of the standard library's is closed outright
    // after fork: it is marked close-on-exec).
    unsafe {
        libc::syscall(libc::SYS_close_range, first, u32::MAX, flags);
    }
}

/// Writes `buf` once to `fd`, whatever that descriptor is (a starting init's stderr,
/// a cgroup's `cgroup.procs`); the count written, or -1. Async-signal-safe.
pub fn write_raw(fd: RawFd, buf: &[u8]) -> isize {
    // SAFETY: write(2) only reads `buf.len()` bytes of `buf`; a descriptor that is not
    // open gives EBADF.
    unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) }
}

/// One read(2) of `fd` into `buf`'s spare capacity, extending its length by the count
/// read: no zeroing of a buffer the kernel fills anyway (a log pipe's 64 KiB).
pub fn read_spare(fd: BorrowedFd, buf: &mut Vec<u8>) -> nix::Result<usize> {
    let spare = buf.spare_capacity_mut();
    // SAFETY: read(2) writes at most `spare.len()` bytes into memory `buf` owns.
    let n = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) };
    let n = nix::errno::Errno::result(n)? as usize;
    // SAFETY: the kernel initialised the `n` bytes after the old length.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// Takes ownership of descriptors the kernel installed in this process for us alone
/// (SCM_RIGHTS): nothing else in the process knows their numbers.
pub fn received(fds: &[RawFd]) -> Vec<OwnedFd> {
    fds.iter()
        // SAFETY: each was just installed by recvmsg, owned by nothing else.
        .map(|&fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect()
}

/// Registers `fd` with the tokio reactor of the calling context (`AsyncFd::new` is
/// deprecated as unsound for descriptors that are not owned).
pub fn async_fd(fd: OwnedFd) -> std::io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd keeps its descriptor open, and `as_raw_fd` returns that same
    // number, for as long as the AsyncFd owns it.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// Sets an integer socket option by number, for the options nix has no type for
/// (`IP_MTU_DISCOVER` and `IPV6_MTU_DISCOVER` in nix 0.31).
pub fn set_int_sockopt(
    fd: BorrowedFd,
    level: libc::c_int,
    opt: libc::c_int,
    v: libc::c_int,
) -> std::io::Result<()> {
    // SAFETY: setsockopt reads one c_int of the size given, from a local.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            &v as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Reads the link `path` relative to `dir` into `buf`, without allocating (nix's
/// `readlinkat` returns a new string): the link's bytes, cut at `buf`'s length.
pub fn readlink_at<'b>(
    dir: BorrowedFd,
    path: &std::ffi::CStr,
    buf: &'b mut [u8],
) -> std::io::Result<&'b [u8]> {
    // SAFETY: a NUL-terminated path, and a buffer the kernel fills up to the length given.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            path.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    match usize::try_from(n) {
        Ok(n) => Ok(&buf[..n]),
        Err(_) => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_pipe_written_raw_is_read_into_spare_capacity() {
        let (r, w) = nix::unistd::pipe().unwrap();
        assert_eq!(write_raw(w.as_raw_fd(), b"hello"), 5);
        let mut buf = Vec::with_capacity(16);
        buf.push(b'>');
        assert_eq!(read_spare(r.as_fd(), &mut buf), Ok(5));
        assert_eq!(buf, b">hello");
        drop(w);
        assert_eq!(read_spare(r.as_fd(), &mut buf), Ok(0));
        assert_eq!(write_raw(-1, b"x"), -1);
    }

    #[test]
    fn received_descriptors_are_closed_when_dropped() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let raw = w.as_raw_fd();
        std::mem::forget(w);
        drop(received(&[raw]));
        // The write end is gone: the read end sees end of file.
        let mut buf = Vec::with_capacity(1);
        assert_eq!(read_spare(r.as_fd(), &mut buf), Ok(0));
    }

    #[test]
    fn a_link_is_read_into_the_buffer_and_cut_at_its_length() {
        let proc = std::fs::File::open("/proc").unwrap();
        let mut buf = [0u8; 64];
        let me = readlink_at(proc.as_fd(), c"self", &mut buf).unwrap();
        assert_eq!(me, std::process::id().to_string().as_bytes());
        let mut two = [0u8; 2];
        assert_eq!(
            readlink_at(proc.as_fd(), c"self", &mut two).unwrap().len(),
            2
        );
        assert!(readlink_at(proc.as_fd(), c"no-such-link", &mut buf).is_err());
    }

    #[test]
    fn close_from_marks_descriptors_close_on_exec() {
        // In a child: the marks are the whole process's.
        let code = crate::sys::child::testing::in_child(|| {
            let (r, _w) = nix::unistd::pipe().unwrap();
            close_from(r.as_raw_fd() as u32, true);
            let flags = nix::fcntl::fcntl(r.as_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
            i32::from(flags & libc::FD_CLOEXEC == 0)
        });
        assert_eq!(code, Some(0));
    }
}
