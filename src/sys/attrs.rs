//! Process attributes nix has no call for (or none that does not allocate): resource
//! limits by number, scheduling, I/O priority, personality, prctl knobs, capabilities,
//! the memory policy, the session keyring. Each is a single system call on the calling
//! process with values prepared by the caller, so all are async-signal-safe: the init
//! and `nslab exec` call them between fork and exec (see `node::fresh`).

use std::io;

use nix::errno::Errno;

/// The limit of resource `res` (`RLIMIT_*`), or 0/0 if the kernel refuses to say.
pub fn get_rlimit(res: u32) -> libc::rlimit {
    let mut now = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one struct into a local we own.
    unsafe { libc::getrlimit(res as _, &mut now) };
    now
}

/// Sets resource `res`'s limit to `lim`.
pub fn set_rlimit(res: u32, lim: &libc::rlimit) -> io::Result<()> {
    // SAFETY: setrlimit reads one struct we own.
    if unsafe { libc::setrlimit(res as _, lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The calling process back to `SCHED_OTHER`, priority 0.
pub fn reset_scheduler() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: reads one local struct.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
}

/// Sets the calling process's nice value.
pub fn set_nice(n: i32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The calling process's nice value.
pub fn nice() -> io::Result<i32> {
    Errno::clear();
    // SAFETY: integer arguments only.
    let n = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    match Errno::last_raw() {
        0 => Ok(n),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Sets the calling process's I/O priority (`IOPRIO_WHO_PROCESS`; 0: none, which
/// follows the nice value).
pub fn set_ioprio(value: i32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    if unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, value) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The calling process's I/O priority.
pub fn ioprio() -> io::Result<i32> {
    // SAFETY: integer arguments only.
    let r = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, 0) };
    Errno::result(r).map(|v| v as i32).map_err(io::Error::from)
}

/// Sets the execution domain (`personality(2)`; 0 is Linux's default), returning the
/// previous one. `0xffff_ffff` only reads it.
pub fn personality(persona: u64) -> i32 {
    // SAFETY: an integer argument only.
    unsafe { libc::personality(persona as libc::c_ulong) }
}

/// `prctl` with integer arguments only: the knobs `node::fresh` resets
/// (`PR_SET_TIMERSLACK`, `PR_SET_SECUREBITS`, `PR_CAP_AMBIENT`, `PR_SET_THP_DISABLE`,
/// `PR_GET_TIMERSLACK`, `PR_SET_PDEATHSIG`). Options taking a pointer are not passed
/// here: `option` is checked against that list.
pub fn prctl(option: i32, arg2: u64, arg3: u64) -> io::Result<i32> {
    const INTEGERS: [i32; 6] = [
        libc::PR_SET_TIMERSLACK,
        libc::PR_GET_TIMERSLACK,
        libc::PR_SET_SECUREBITS,
        libc::PR_CAP_AMBIENT,
        libc::PR_SET_THP_DISABLE,
        libc::PR_SET_PDEATHSIG,
    ];
    if !INTEGERS.contains(&option) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: every option above takes integers, not pointers.
    let r = unsafe { libc::prctl(option, arg2 as libc::c_ulong, arg3 as libc::c_ulong, 0, 0) };
    Errno::result(r).map_err(io::Error::from)
}

/// Empties the inheritable capability set, keeping the effective and permitted ones.
pub fn clear_inheritable_caps() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut head = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capget/capset with a version 3 header and two data structs, as the
    // kernel's ABI asks; all are locals.
    unsafe {
        if libc::syscall(libc::SYS_capget, &mut head, data.as_mut_ptr()) != 0 {
            return;
        }
        if data.iter().all(|d| d.inheritable == 0) {
            return;
        }
        for d in &mut data {
            d.inheritable = 0;
        }
        libc::syscall(libc::SYS_capset, &mut head, data.as_ptr());
    }
}

/// The system's default NUMA memory policy (allocate on the local node).
pub fn default_mempolicy() {
    const MPOL_DEFAULT: libc::c_int = 0;
    // SAFETY: a null node mask with a max node of 0, as MPOL_DEFAULT asks.
    unsafe {
        libc::syscall(
            libc::SYS_set_mempolicy,
            MPOL_DEFAULT,
            std::ptr::null::<libc::c_ulong>(),
            0,
        )
    };
}

/// Joins a new anonymous session keyring; the errno of a refusal.
pub fn join_session_keyring() -> Result<(), Errno> {
    // SAFETY: a null name asks for an anonymous keyring.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            libc::KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    Errno::result(r).map(drop)
}

/// `keyctl(op, KEY_SPEC_SESSION_KEYRING, NULL, 0)`: asks about the session keyring
/// with no buffer (so nothing is written); the errno of a refusal.
pub fn probe_session_keyring(op: libc::c_int) -> Result<(), Errno> {
    // SAFETY: a null buffer of length 0 (for the id: `create` 0), which writes nothing.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            op,
            libc::KEY_SPEC_SESSION_KEYRING,
            std::ptr::null_mut::<libc::c_char>(),
            0usize,
        )
    };
    Errno::result(r).map(drop)
}

/// No supplementary groups (nix's `setgroups` allocates: not between fork and exec).
pub fn drop_groups() -> io::Result<()> {
    // SAFETY: a count of 0 reads no list.
    if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Installs a classic BPF seccomp filter on the calling thread (root may, without
/// `no_new_privs`): the tests' way of making the kernel refuse a call.
#[cfg(test)]
pub fn install_seccomp(prog: &mut [libc::sock_filter]) -> bool {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: the kernel copies the program during the call; `fprog` outlives it.
    unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const libc::sock_fprog,
        ) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::child::testing::in_child;

    /// In a child: the attributes are the whole process's.
    #[test]
    fn attributes_set_read_back() {
        let code = in_child(|| {
            let mut bad = 0;
            let low = libc::rlimit {
                rlim_cur: 100,
                rlim_max: 200,
            };
            if set_rlimit(libc::RLIMIT_NOFILE, &low).is_err() {
                bad |= 1;
            }
            let l = get_rlimit(libc::RLIMIT_NOFILE);
            if (l.rlim_cur, l.rlim_max) != (100, 200) {
                bad |= 2;
            }
            if set_nice(7).is_err() || nice().ok() != Some(7) {
                bad |= 4;
            }
            // The idle class.
            if set_ioprio(3 << 13).is_err() || ioprio().ok() != Some(3 << 13) {
                bad |= 8;
            }
            let _ = prctl(libc::PR_SET_TIMERSLACK, 1_000_000, 0);
            if prctl(libc::PR_GET_TIMERSLACK, 0, 0).ok() != Some(1_000_000) {
                bad |= 16;
            }
            personality(libc::ADDR_NO_RANDOMIZE as u64);
            if personality(0) & libc::ADDR_NO_RANDOMIZE == 0 || personality(0xffff_ffff) != 0 {
                bad |= 32;
            }
            bad
        });
        assert_eq!(
            code,
            Some(0),
            "bits: 1/2 limits, 4 nice, 8 ioprio, 16 slack, 32 personality"
        );
    }

    #[test]
    fn prctl_refuses_options_that_take_pointers() {
        let e = prctl(libc::PR_SET_NAME, 0, 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }
}
