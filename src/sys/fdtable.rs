//! The process's descriptor table, grown once ahead of a lab's descriptors. The kernel
//! doubles the table as descriptors are opened, and in a process with threads each
//! growth waits for an RCU grace period (`expand_fdtable`) while every other thread that
//! opens a descriptor waits for the growth: `up` holds two per network namespace (its
//! descriptor and a netlink socket), so a lab of 1,000 nodes grew the table three to
//! five times while its namespace threads opened them (one stall measured at 74 ms).
//! Grown before those threads exist, the table waits for nothing; grown later, once.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::fcntl::{FcntlArg, OFlag, fcntl, open};
use nix::sys::resource::{Resource, getrlimit};
use nix::sys::stat::Mode;

/// Grows the table to hold descriptors up to `fds`, or the soft open-file limit if that
/// is lower (raise the limit first). Best effort: on any error the table grows as before,
/// descriptor by descriptor. Opens nothing that stays open.
pub fn reserve(fds: usize) {
    let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let Some(top) = highest(fds, soft) else {
        return;
    };
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let Ok(probe) = open("/", flags, Mode::empty()) else {
        return;
    };
    // The lowest free descriptor at or above `top`: the table grows to hold it.
    if let Ok(fd) = fcntl(&probe, FcntlArg::F_DUPFD_CLOEXEC(top)) {
        // SAFETY: fcntl just returned this descriptor, owned by nothing else.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
}

/// The descriptor to place: `fds`, under the soft limit; none below the 64 a table
/// starts with room for.
fn highest(fds: usize, soft: u64) -> Option<RawFd> {
    let top = fds.min(
        usize::try_from(soft)
            .unwrap_or(usize::MAX)
            .saturating_sub(1),
    );
    Some(RawFd::try_from(top).unwrap_or(RawFd::MAX)).filter(|&t| t >= 64)
}

/// How many descriptors the table has room for (`FDSize` in /proc/self/status).
pub fn size() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("FDSize:"))?;
    line["FDSize:".len()..].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_grows_the_table_and_leaves_nothing_open() {
        crate::apply::netns::raise_nofile_limit();
        let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        let want = 3000.min(soft as usize - 1);
        reserve(want);
        // The kernel sizes a table in powers of two.
        assert!(size().unwrap() > want, "FDSize {:?} for {want}", size());
        let top = highest(want, soft).unwrap();
        // SAFETY: only asks whether the descriptor exists.
        let r = unsafe { libc::fcntl(top, libc::F_GETFD) };
        assert_eq!(r, -1, "descriptor {top} left open");
    }

    #[test]
    fn the_descriptor_placed_stays_under_the_soft_limit() {
        assert_eq!(highest(2032, 1024), Some(1023));
        assert_eq!(highest(2032, 1_048_576), Some(2032));
        assert_eq!(highest(usize::MAX, u64::MAX), Some(RawFd::MAX));
        // Nothing to grow: the table starts with room for 64.
        assert_eq!(highest(10, 1024), None);
        assert_eq!(highest(2032, 50), None);
    }
}
