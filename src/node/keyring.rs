//! A node's session keyring: an empty one of its own (anonymous), as runc gives each
//! container. A process possesses the keys of the session keyring it inherits, and may
//! read them whatever its user, so a node's `user: nobody` would read the caller's (a
//! Kerberos ticket, a disk's key). Failing that (root's key quota used up), the caller's
//! keys would be in reach: refused, not warned (see [`NoKeyring`]). A kernel without
//! keys has no keyring to share, and neither has a process whose seccomp filter refuses
//! it keyctl (a container runtime's default profile): the filter is inherited, so the
//! node cannot reach the caller's keyring either.

use nix::errno::Errno;

use crate::sys::attrs;

/// Joins a new anonymous session keyring; a refusal is an error only while the
/// inherited keyring is still in reach. Only system calls: safe between fork and exec.
pub(super) fn join_own() -> Result<(), NoKeyring> {
    match attrs::join_session_keyring() {
        Ok(()) => Ok(()),
        Err(Errno::ENOSYS) => Ok(()),
        Err(_) if !session_keyring_reachable() => Ok(()),
        Err(errno) => Err(NoKeyring(errno as i32)),
    }
}

/// Whether this process can still reach the session keyring it inherited, after the
/// join of its own was refused: the keyring's id, description or list of keys, any of
/// them, is reach (keys are read by the id the list gives). Each refused with an errno
/// a filter or a kernel without keys gives (not the quota's `EDQUOT` or `ENOMEM`,
/// which say the kernel would have answered) means every keyctl on it is refused, as
/// a seccomp filter refusing `keyctl` does: nothing of the caller's keys is in reach.
/// Only system calls: safe between fork and exec.
fn session_keyring_reachable() -> bool {
    let probes = [
        libc::KEYCTL_GET_KEYRING_ID,
        libc::KEYCTL_DESCRIBE,
        libc::KEYCTL_READ,
    ];
    probes.iter().any(|&op| {
        !matches!(
            attrs::probe_session_keyring(op as libc::c_int),
            Err(Errno::EPERM | Errno::EACCES | Errno::ENOSYS)
        )
    })
}

/// The kernel refused the node a session keyring of its own (the errno of
/// `KEYCTL_JOIN_SESSION_KEYRING`: `EDQUOT` when root's key quota is used up). The
/// process would keep its caller's, and possess (so may read, whatever its user) every
/// key in it: the README promises a keyring of the node's own, so the node or command
/// does not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoKeyring(pub i32);

impl NoKeyring {
    /// Said on a command's stderr, between fork and exec (where nothing may be
    /// formatted): the error that follows names the errno.
    pub const NOTE: &'static [u8] = b"nslab: the kernel refused this command a session keyring of its own: it would share the caller's keys, so it does not start\n";
}

impl std::fmt::Display for NoKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the kernel refused the node a session keyring of its own ({}): its processes would share the session keyring of whoever ran nslab, and could read every key in it, so the node does not start (root's key quota may be used up: see /proc/key-users and kernel.keys.root_maxkeys)",
            std::io::Error::from_raw_os_error(self.0)
        )
    }
}
