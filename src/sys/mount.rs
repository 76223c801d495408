//! The new mount API and mount facts nix has no call for: a recursive read-only
//! `mount_setattr`, a mount id by `statx`, a detached procfs instance (`fsopen`,
//! `fsconfig`, `fsmount`), and a mount namespace's id (`NS_GET_MNTNS_ID`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

/// Makes the mount at `top` and every mount below it read-only (`mount_setattr` with
/// `AT_RECURSIVE`). ENOSYS on a kernel before 5.12.
pub fn read_only_tree(top: BorrowedFd) -> io::Result<()> {
    /// `struct mount_attr` of linux/mount.h.
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr on a descriptor the borrow keeps open, an empty C string and
    // a mount_attr of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            top.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(r).map(drop).map_err(io::Error::from)
}

/// The id of the mount `fd` lies on, and whether `fd` is that mount's root (ENOSYS
/// where the kernel's statx reports neither).
pub fn mount_of(fd: BorrowedFd) -> Result<(u64, bool), Errno> {
    // SAFETY: an all-zero statx is a valid value (plain integers).
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: statx(2) writes a `struct statx` into the buffer we own; the empty path
    // with AT_EMPTY_PATH makes it describe `fd`, which the borrow keeps open.
    let r = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_MNT_ID,
            &mut st,
        )
    };
    Errno::result(r)?;
    let root = libc::STATX_ATTR_MOUNT_ROOT as u64;
    if st.stx_mask & libc::STATX_MNT_ID == 0 || st.stx_attributes_mask & root == 0 {
        return Err(Errno::ENOSYS);
    }
    Ok((st.stx_mnt_id, st.stx_attributes & root != 0))
}

/// A procfs instance of our own, never attached to any path (`fsopen`, `fsconfig`,
/// `fsmount`): the descriptor of its root.
pub fn detached_proc() -> io::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    // SAFETY: fsopen with a C string and flags.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, c"proc".as_ptr(), FSOPEN_CLOEXEC) };
    let fs = Errno::result(fs)?;
    // SAFETY: a fresh descriptor, owned from here on.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as i32) };
    let none: *const libc::c_char = std::ptr::null();
    // SAFETY: fsconfig's create command takes no key, value or aux.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            none,
            none,
            0,
        )
    };
    Errno::result(r)?;
    // SAFETY: fsmount on the context we own, integer flags.
    let mnt = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, 0) };
    let mnt = Errno::result(mnt)?;
    // SAFETY: a fresh descriptor, owned from here on.
    Ok(unsafe { OwnedFd::from_raw_fd(mnt as i32) })
}

/// The 64-bit id of the mount namespace `ns` (an nsfs file, `/proc/.../ns/mnt`);
/// `None` where the kernel has no such ioctl (before 6.8).
pub fn mntns_id(ns: BorrowedFd) -> Option<u64> {
    /// `NS_GET_MNTNS_ID` (linux/nsfs.h).
    const NS_GET_MNTNS_ID: libc::c_ulong = 0x8008_b705;
    let mut id = 0u64;
    // SAFETY: the ioctl writes one u64 through a pointer to `id`, on a descriptor the
    // borrow keeps open; on another kind of file it fails without writing.
    let r = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_MNTNS_ID as _, &mut id) };
    (r == 0).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn the_root_of_proc_is_a_mount_root_and_a_file_below_it_is_not() {
        let proc = std::fs::File::open("/proc").unwrap();
        let below = std::fs::File::open("/proc/self/stat").unwrap();
        let (id, root) = mount_of(proc.as_fd()).unwrap();
        assert!(root, "/proc is a mount's root");
        assert_eq!(mount_of(below.as_fd()).unwrap(), (id, false));
    }

    #[test]
    fn a_namespace_file_has_an_id_and_a_plain_file_none() {
        let ns = std::fs::File::open("/proc/self/ns/mnt").unwrap();
        let plain = std::fs::File::open("/proc/self/stat").unwrap();
        assert!(mntns_id(plain.as_fd()).is_none());
        // Before 6.8 there is no id at all: both are None there.
        let a = mntns_id(ns.as_fd());
        let again = std::fs::File::open("/proc/thread-self/ns/mnt").unwrap();
        assert_eq!(a, mntns_id(again.as_fd()), "one namespace, one id");
    }

    /// Root only: fsopen needs CAP_SYS_ADMIN.
    #[test]
    fn a_detached_proc_reads_like_proc() {
        if !nix::unistd::geteuid().is_root() {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "needs root");
            return;
        }
        let proc = detached_proc().unwrap();
        let f = nix::fcntl::openat(
            proc.as_fd(),
            "sys/kernel/ostype",
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(f), &mut s).unwrap();
        assert_eq!(s.trim(), "Linux");
    }
}
