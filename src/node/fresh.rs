//! The process attributes a node's processes start from, whoever ran nslab: a fork and
//! an exec keep the caller's nice value, scheduling policy, CPU affinity, I/O priority,
//! `oom_score_adj`, resource limits, personality (`setarch -R` turns address space
//! randomization off), timer slack, securebits, inheritable and ambient capabilities,
//! supplementary groups, NUMA memory policy and transparent huge pages switched off. `nice -n 10 nslab up`, or nslab started from a service with
//! `OOMScoreAdjust=-900`, would otherwise hand those to every node, as a container
//! runtime does not. The init applies [`Fresh`] to itself before it starts anything (its
//! processes inherit it), and so does `nslab exec` in the command it starts. The
//! caller's session keyring is swapped for an empty one of the node's own, as runc does
//! for a container.
//!
//! What cannot be undone stays: `no_new_privs`, a seccomp filter, a shrunken capability
//! bounding set, locked securebits. Without `CAP_SYS_NICE` or `CAP_SYS_RESOURCE` (a
//! rootless lab's user namespace, or a root that lacks them) the kernel refuses a lower
//! nice value, an `oom_score_adj` below what a privileged caller set, or a hard limit
//! above the caller's: each attribute is set as far as it may be, the rest is kept.

/// Resource limits a node starts with: the kernel's own for its first process, except
/// open files, which are systemd's for a service (1024 soft, so `select` stays safe; the
/// hard one high enough for a daemon that raises its own).
const LIMITS: [(u32, u64, u64); 14] = {
    const INF: u64 = libc::RLIM_INFINITY;
    [
        (libc::RLIMIT_CPU, INF, INF),
        (libc::RLIMIT_FSIZE, INF, INF),
        (libc::RLIMIT_DATA, INF, INF),
        (libc::RLIMIT_STACK, 8 << 20, INF),
        (libc::RLIMIT_CORE, 0, INF),
        (libc::RLIMIT_RSS, INF, INF),
        (libc::RLIMIT_NOFILE, 1024, 524_288),
        (libc::RLIMIT_MEMLOCK, 8 << 20, 8 << 20),
        (libc::RLIMIT_AS, INF, INF),
        (libc::RLIMIT_LOCKS, INF, INF),
        (libc::RLIMIT_MSGQUEUE, 819_200, 819_200),
        (libc::RLIMIT_NICE, 0, 0),
        (libc::RLIMIT_RTPRIO, 0, 0),
        (libc::RLIMIT_RTTIME, INF, INF),
    ]
};

/// `set_mempolicy`'s mode for the system's default policy (allocate on the local node).
const MPOL_DEFAULT: libc::c_int = 0;

/// The kernel's default timer slack, in nanoseconds (`PR_SET_TIMERSLACK` with 0 would
/// give back the caller's, which is what a thread's default is inherited from).
const TIMER_SLACK_NS: libc::c_ulong = 50_000;

/// The defaults, computed before a fork so that applying them in the child only makes
/// system calls (async-signal-safe, no allocation).
pub struct Fresh {
    /// Processes and pending signals: the kernel gives its first process half of
    /// `kernel.threads-max` for both.
    per_user: Option<u64>,
    /// Whether to join a session keyring of its own: only as root of the host's user
    /// namespace. A rootless lab's keyrings would count against its user's quota (200
    /// keys), which a lab of many nodes would use up for the user's own sessions.
    own_keyring: bool,
}

impl Fresh {
    pub fn new() -> Fresh {
        let per_user = std::fs::read_to_string("/proc/sys/kernel/threads-max")
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .map(|t| (t / 2).max(1));
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let host_userns = std::fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|m| m.split_whitespace().eq(["0", "0", "4294967295"]));
        Fresh {
            per_user,
            own_keyring: root && host_userns,
        }
    }

    /// Sets every attribute of the calling process (single-threaded: a forked child, or
    /// an init before its first thread) to its default, as far as the kernel lets it.
    /// Needs `/proc/self` to be this process (after joining a pid namespace, its own
    /// `/proc`). Only system calls: safe between fork and exec.
    pub fn apply(&self) {
        for (res, cur, max) in LIMITS {
            set_limit(res, cur, max);
        }
        if let Some(n) = self.per_user {
            set_limit(libc::RLIMIT_NPROC, n, n);
            set_limit(libc::RLIMIT_SIGPENDING, n, n);
        }
        // SAFETY: plain system calls on this process and local values.
        unsafe {
            let param = libc::sched_param { sched_priority: 0 };
            libc::sched_setscheduler(0, libc::SCHED_OTHER, &param);
            libc::setpriority(libc::PRIO_PROCESS, 0, 0);
            // Every CPU: the kernel keeps those of the cpuset.
            let mut all: libc::cpu_set_t = std::mem::zeroed();
            std::ptr::write_bytes(&mut all, 0xff, 1);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &all);
            // IOPRIO_WHO_PROCESS, this process, class none: follows the nice value.
            libc::syscall(libc::SYS_ioprio_set, 1, 0, 0);
            libc::personality(0);
            libc::prctl(libc::PR_SET_TIMERSLACK, TIMER_SLACK_NS, 0, 0, 0);
            libc::prctl(libc::PR_SET_SECUREBITS, 0, 0, 0, 0);
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            );
            clear_inheritable();
            // The caller's NUMA memory policy (`numactl --membind`) and transparent huge
            // pages switched off (`PR_SET_THP_DISABLE`): both survive exec.
            libc::syscall(
                libc::SYS_set_mempolicy,
                MPOL_DEFAULT,
                std::ptr::null::<libc::c_ulong>(),
                0,
            );
            libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0);
            // A session keyring of its own (anonymous): a process possesses the keys of
            // the session keyring it inherits, and may read them whatever its user, so
            // a node's `user: nobody` read the caller's (a Kerberos ticket, a disk's
            // key). runc gives each container one too.
            if self.own_keyring {
                libc::syscall(
                    libc::SYS_keyctl,
                    libc::KEYCTL_JOIN_SESSION_KEYRING,
                    std::ptr::null::<libc::c_char>(),
                );
            }
            // Root's processes get no supplementary group (one with `user:` gets that
            // user's). Refused in a user namespace, where the caller's are kept.
            libc::setgroups(0, std::ptr::null());
            let fd = libc::open(
                c"/proc/self/oom_score_adj".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            if fd >= 0 {
                libc::write(fd, b"0".as_ptr() as *const libc::c_void, 1);
                libc::close(fd);
            }
        }
    }
}

impl Default for Fresh {
    fn default() -> Fresh {
        Fresh::new()
    }
}

/// Sets one limit; where a higher hard limit is refused (no `CAP_SYS_RESOURCE`), the
/// current hard limit stays and the soft one goes as near the default as it allows.
fn set_limit(res: u32, cur: u64, max: u64) {
    let want = libc::rlimit {
        rlim_cur: cur,
        rlim_max: max,
    };
    // SAFETY: getrlimit/setrlimit on local structs.
    unsafe {
        if libc::setrlimit(res as _, &want) == 0 {
            return;
        }
        let mut now = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(res as _, &mut now) != 0 {
            return;
        }
        let max = max.min(now.rlim_max);
        let lim = libc::rlimit {
            rlim_cur: cur.min(max),
            rlim_max: max,
        };
        libc::setrlimit(res as _, &lim);
    }
}

/// Empties the inheritable capability set, keeping the effective and permitted ones:
/// a root process's inheritable set survives exec (runc gives containers none).
fn clear_inheritable() {
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
    // kernel's ABI asks.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// In a child of its own: the attributes are the whole process's.
    #[test]
    fn a_niced_pinned_child_with_small_limits_gets_the_defaults() {
        let fresh = Fresh::new();
        // SAFETY: the child makes system calls only and `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = unsafe {
                libc::setpriority(libc::PRIO_PROCESS, 0, 7);
                let small = libc::rlimit {
                    rlim_cur: 64 << 10,
                    rlim_max: libc::RLIM_INFINITY,
                };
                libc::setrlimit(libc::RLIMIT_STACK, &small);
                libc::personality(libc::ADDR_NO_RANDOMIZE as libc::c_ulong);
                libc::prctl(libc::PR_SET_TIMERSLACK, 1_000_000, 0, 0, 0);
                fresh.apply();
                let mut stack = small;
                libc::getrlimit(libc::RLIMIT_STACK, &mut stack);
                *libc::__errno_location() = 0;
                let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
                let slack = libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0);
                let pers = libc::personality(0xffff_ffff);
                let mut bad = 0;
                if stack.rlim_cur != 8 << 20 {
                    bad |= 1;
                }
                if nice != 0 && libc::geteuid() == 0 {
                    bad |= 2;
                }
                if slack != TIMER_SLACK_NS as i32 {
                    bad |= 4;
                }
                if pers & libc::ADDR_NO_RANDOMIZE != 0 {
                    bad |= 8;
                }
                bad
            };
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status));
        // Bits: 1 stack, 2 nice, 4 timer slack, 8 personality.
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }
}
