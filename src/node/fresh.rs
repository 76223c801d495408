//! The process attributes a node's processes start from, whoever ran nslab: a fork and
//! an exec keep the caller's nice value, scheduling policy, CPU affinity, I/O priority,
//! `oom_score_adj`, resource limits, personality (`setarch -R` turns address space
//! randomization off), timer slack, securebits, inheritable and ambient capabilities,
//! supplementary groups, NUMA memory policy and transparent huge pages switched off. `nice -n 10 nslab up`, or nslab started from a service with
//! `OOMScoreAdjust=-900`, would otherwise hand those to every node, as a container
//! runtime does not. The init applies [`Fresh`] to itself before it starts anything (its
//! processes inherit it), and so does `nslab exec` in the command it starts. The
//! caller's session keyring is swapped for an empty one of the node's own, as runc does
//! for a container (unless the caller's seccomp filter refuses `keyctl`, which the node
//! inherits: then no keyring is in its reach).
//!
//! What cannot be undone stays: `no_new_privs`, a seccomp filter, a shrunken capability
//! bounding set, locked securebits. Without `CAP_SYS_NICE` or `CAP_SYS_RESOURCE` (a
//! rootless lab's user namespace, or a root that lacks them) the kernel refuses a lower
//! nice value, an `oom_score_adj` below what a privileged caller set, or a hard limit
//! above the caller's: each attribute is set as far as it may be, the rest is kept.

pub use super::keyring::NoKeyring;

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
        let root = nix::unistd::geteuid().is_root();
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
    /// `/proc`). Only system calls: safe between fork and exec. Everything is best
    /// effort but the session keyring, whose refusal is the error.
    pub fn apply(&self) -> Result<(), NoKeyring> {
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
            // A session keyring of its own, or none in reach (see `keyring`).
            let keyring = if self.own_keyring {
                super::keyring::join_own()
            } else {
                Ok(())
            };
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
            keyring
        }
    }
}

/// The hard limit of `res` a node's processes start with when nothing is raised by the
/// topology, before the caller's own hard limit (which caps it without
/// `CAP_SYS_RESOURCE`) is taken into account.
pub fn default_hard(res: u32) -> u64 {
    if res == libc::RLIMIT_NPROC || res == libc::RLIMIT_SIGPENDING {
        return Fresh::new().per_user.unwrap_or(libc::RLIM_INFINITY);
    }
    LIMITS
        .iter()
        .find(|(r, _, _)| *r == res)
        .map_or(libc::RLIM_INFINITY, |(_, _, max)| *max)
}

impl Default for Fresh {
    fn default() -> Fresh {
        Fresh::new()
    }
}

/// What a process's `rlimits`, `nice`, `oom_score_adj`, `cpus` and `ionice` ask for,
/// checked and encoded before the fork, so that the child only makes system calls. It is
/// applied after [`Fresh`] (the init already has the defaults) and before the switch to
/// the process's `user:`, while the child is still root.
pub struct Wanted {
    limits: Vec<(u32, libc::rlimit)>,
    ionice: Option<i32>,
    nice: Option<i32>,
    cpus: Option<libc::cpu_set_t>,
    /// `oom_score_adj` as the text written to /proc/self/oom_score_adj.
    oom: Option<([u8; 8], usize)>,
}

/// What this process may do that an unprivileged one may not, as the kernel checks it:
/// capabilities count only in the host's user namespace (a rootless lab's root has none
/// there).
struct Privilege {
    resource: bool,
    nice: bool,
}

impl Privilege {
    fn of_self() -> Privilege {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let eff = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0);
        // The host's user namespace maps every id to itself.
        let host_ns = std::fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"]);
        let has = |cap: u32| host_ns && eff & (1 << cap) != 0;
        Privilege {
            // CAP_SYS_RESOURCE and CAP_SYS_NICE (linux/capability.h).
            resource: has(24),
            nice: has(23),
        }
    }
}

impl Wanted {
    /// Checks `attrs` against what the kernel will let this process (the init, with the
    /// defaults) give a child, and encodes them. The error names the attribute and why:
    /// a hard limit above the current one without `CAP_SYS_RESOURCE`, open files above
    /// the host's `fs.nr_open`, a negative nice value or a realtime I/O class without
    /// `CAP_SYS_NICE`, an `oom_score_adj` below the current one without
    /// `CAP_SYS_RESOURCE`, CPUs this process may not use.
    pub fn new(attrs: &crate::attrs::ProcAttrs) -> Result<Wanted, String> {
        let privilege = Privilege::of_self();
        let mut limits = Vec::new();
        for (res, l) in &attrs.rlimits {
            let now = get_limit(res.raw());
            check_limit(*res, l, now, privilege.resource)?;
            limits.push((
                res.raw(),
                libc::rlimit {
                    rlim_cur: l.soft.0,
                    rlim_max: l.hard.0,
                },
            ));
        }
        if let Some(n) = attrs.nice {
            // Without CAP_SYS_NICE a process may go below nice 0 only as far as its
            // `nice` limit (20 - nice) allows.
            let allowed = attrs
                .rlimits
                .get(&crate::attrs::Resource::Nice)
                .map_or(get_limit(libc::RLIMIT_NICE).rlim_cur, |l| l.soft.0);
            if n < 0 && !privilege.nice && allowed < (20 - n) as u64 {
                return Err(format!(
                    "`nice: {n}` needs CAP_SYS_NICE (or `rlimits: {{ nice: {} }}`), which nslab lacks here{}",
                    20 - n,
                    ROOTLESS
                ));
            }
        }
        if let Some(io) = attrs.ionice
            && io.class == crate::attrs::IoClass::Realtime
            && !privilege.nice
        {
            return Err(format!(
                "`ionice` class realtime needs CAP_SYS_NICE, which nslab lacks here{ROOTLESS}"
            ));
        }
        let oom = match attrs.oom_score_adj {
            Some(o) => Some(oom_text(o, privilege.resource)?),
            None => None,
        };
        let cpus = match &attrs.cpus {
            Some(list) => Some(cpu_set(list)?),
            None => None,
        };
        Ok(Wanted {
            limits,
            ionice: attrs.ionice.map(crate::attrs::IoNice::raw),
            nice: attrs.nice,
            cpus,
            oom,
        })
    }

    /// Sets each attribute on the calling process. Only system calls: safe between fork
    /// and exec. An error is the kernel's refusal of something [`Wanted::new`] allowed.
    pub fn apply(&self) -> std::io::Result<()> {
        let fail = || Err(std::io::Error::last_os_error());
        // SAFETY: plain system calls on this process with values prepared before the fork.
        unsafe {
            for (res, lim) in &self.limits {
                if libc::setrlimit(*res as _, lim) != 0 {
                    return fail();
                }
            }
            if let Some(io) = self.ionice
                && libc::syscall(libc::SYS_ioprio_set, 1, 0, io) != 0
            {
                return fail();
            }
            if let Some(n) = self.nice
                && libc::setpriority(libc::PRIO_PROCESS, 0, n) != 0
            {
                return fail();
            }
            if let Some(set) = &self.cpus
                && libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) != 0
            {
                return fail();
            }
            if let Some((text, len)) = &self.oom {
                let fd = libc::open(
                    c"/proc/self/oom_score_adj".as_ptr(),
                    libc::O_WRONLY | libc::O_CLOEXEC,
                );
                if fd < 0 {
                    return fail();
                }
                let n = libc::write(fd, text.as_ptr() as *const libc::c_void, *len);
                libc::close(fd);
                if n != *len as isize {
                    return fail();
                }
            }
        }
        Ok(())
    }
}

/// Said of a refusal that a rootless lab always meets.
const ROOTLESS: &str = " (a rootless lab, or a root without it)";

fn get_limit(res: u32) -> libc::rlimit {
    let mut now = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit into a local struct.
    unsafe { libc::getrlimit(res as _, &mut now) };
    now
}

/// Whether the kernel will take limit `l` of `res` from a process whose limit is `now`.
fn check_limit(
    res: crate::attrs::Resource,
    l: &crate::attrs::Rlimit,
    now: libc::rlimit,
    privileged: bool,
) -> Result<(), String> {
    let name = res.name();
    if l.hard.0 > now.rlim_max && !privileged {
        return Err(format!(
            "`rlimits.{name}`: raising the hard limit from {} to {} needs CAP_SYS_RESOURCE, which nslab lacks here{ROOTLESS}",
            crate::attrs::Bound(now.rlim_max),
            l.hard
        ));
    }
    if res == crate::attrs::Resource::Nofile {
        let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok());
        if let Some(max) = nr_open
            && l.hard.0 > max
        {
            return Err(format!(
                "`rlimits.nofile`: {} is above this host's fs.nr_open ({max}), the most open files the kernel allows",
                l.hard
            ));
        }
    }
    Ok(())
}

/// The text to write for `oom_score_adj` `o`; below the current value it needs
/// `CAP_SYS_RESOURCE` (the kernel keeps the lowest a privileged writer set).
fn oom_text(o: i32, privileged: bool) -> Result<([u8; 8], usize), String> {
    let now = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .unwrap_or(0);
    if o < now && !privileged {
        return Err(format!(
            "`oom_score_adj: {o}` is below {now}, which needs CAP_SYS_RESOURCE, which nslab lacks here{ROOTLESS}"
        ));
    }
    let text = o.to_string();
    let mut buf = [0u8; 8];
    buf[..text.len()].copy_from_slice(text.as_bytes());
    Ok((buf, text.len()))
}

/// The CPU set for `list`, which must lie within the CPUs this process may use (every
/// one of the host's, within its cpuset, once [`Fresh`] applied).
fn cpu_set(list: &crate::attrs::CpuList) -> Result<libc::cpu_set_t, String> {
    // SAFETY: cpu_set_t is plain bits; sched_getaffinity fills a local one.
    let (mut set, mut allowed): (libc::cpu_set_t, libc::cpu_set_t) =
        unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: as above.
    if unsafe { libc::sched_getaffinity(0, size, &mut allowed) } != 0 {
        return Err(format!(
            "`cpus`: cannot read this node's CPUs: {}",
            std::io::Error::last_os_error()
        ));
    }
    let mut usable = Vec::new();
    for c in 0..=crate::attrs::MAX_CPU {
        // SAFETY: c is below the set's 1,024 bits.
        if unsafe { libc::CPU_ISSET(c as usize, &allowed) } {
            usable.push(c);
        }
    }
    let missing: Vec<u32> = list
        .0
        .iter()
        .copied()
        .filter(|c| !usable.contains(c))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "`cpus: {list}`: CPU {} is not one this node may use; it may use {}",
            crate::attrs::CpuList(missing),
            crate::attrs::CpuList(usable)
        ));
    }
    for c in &list.0 {
        // SAFETY: c is at most MAX_CPU, within the set.
        unsafe { libc::CPU_SET(*c as usize, &mut set) };
    }
    Ok(set)
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

    /// What a process asks for is set in a child of its own: lowered limits, a higher
    /// nice value and `oom_score_adj`, the idle I/O class, one CPU (none needs a
    /// privilege); read back there.
    #[test]
    fn wanted_attributes_are_set_in_the_child() {
        use crate::attrs::*;
        let cpu = first_cpu();
        let attrs = ProcAttrs {
            rlimits: [(
                Resource::Nofile,
                Rlimit {
                    soft: Bound(100),
                    hard: Bound(200),
                },
            )]
            .into(),
            nice: Some(7),
            oom_score_adj: Some(321),
            cpus: Some(CpuList(vec![cpu])),
            ionice: Some(IoNice {
                class: IoClass::Idle,
                level: 0,
            }),
        };
        let wanted = Wanted::new(&attrs).unwrap();
        // SAFETY: the child makes system calls only.
        let code = in_child(|| unsafe {
            if wanted.apply().is_err() {
                return 100;
            }
            let mut bad = 0;
            let l = get_limit(libc::RLIMIT_NOFILE);
            if (l.rlim_cur, l.rlim_max) != (100, 200) {
                bad |= 1;
            }
            *libc::__errno_location() = 0;
            if libc::getpriority(libc::PRIO_PROCESS, 0) != 7 {
                bad |= 2;
            }
            if libc::syscall(libc::SYS_ioprio_get, 1, 0) != 3 << 13 {
                bad |= 4;
            }
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
            if libc::CPU_COUNT(&set) != 1 || !libc::CPU_ISSET(cpu as usize, &set) {
                bad |= 8;
            }
            let mut buf = [0u8; 8];
            let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_RDONLY);
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            if n < 3 || &buf[..3] != b"321" {
                bad |= 16;
            }
            bad
        });
        // Bits: 1 nofile, 2 nice, 4 ionice, 8 cpus, 16 oom_score_adj; 100 apply failed.
        assert_eq!(code, 0);
    }

    /// `f`'s result as the exit status of a child it runs in: attributes set there are
    /// the whole (single-threaded) process's, and leave the test runner's alone.
    fn in_child(f: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child runs `f` (system calls only) and `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = f();
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status));
        libc::WEXITSTATUS(status)
    }

    fn first_cpu() -> u32 {
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: fills a local set.
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        (0..1024u32)
            .find(|c| unsafe { libc::CPU_ISSET(*c as usize, &set) })
            .unwrap()
    }

    #[test]
    fn what_the_kernel_would_refuse_is_named_before_the_fork() {
        use crate::attrs::*;
        let now = libc::rlimit {
            rlim_cur: 1024,
            rlim_max: 4096,
        };
        let l = |hard| Rlimit {
            soft: Bound(1),
            hard: Bound(hard),
        };
        let e = check_limit(Resource::Memlock, &l(8192), now, false).unwrap_err();
        assert!(
            e.contains(
                "`rlimits.memlock`: raising the hard limit from 4096 to 8192 needs CAP_SYS_RESOURCE"
            ),
            "{e}"
        );
        assert!(check_limit(Resource::Memlock, &l(8192), now, true).is_ok());
        assert!(check_limit(Resource::Memlock, &l(2048), now, false).is_ok());
        let e = check_limit(Resource::Nofile, &l(u64::MAX - 1), now, true).unwrap_err();
        assert!(e.contains("above this host's fs.nr_open"), "{e}");
        let e = cpu_set(&CpuList(vec![1023])).unwrap_err();
        assert!(
            e.contains("CPU 1023 is not one this node may use; it may use"),
            "{e}"
        );
        assert!(cpu_set(&CpuList(vec![first_cpu()])).is_ok());
        let e = oom_text(-1000, false).unwrap_err();
        assert!(e.contains("needs CAP_SYS_RESOURCE"), "{e}");
        assert_eq!(oom_text(-1000, true).unwrap().1, 5);
    }

    /// In a child of its own: the attributes are the whole process's.
    #[test]
    fn a_niced_pinned_child_with_small_limits_gets_the_defaults() {
        let fresh = Fresh::new();
        // SAFETY: the child makes system calls only.
        let code = in_child(|| unsafe {
            libc::setpriority(libc::PRIO_PROCESS, 0, 7);
            let small = libc::rlimit {
                rlim_cur: 64 << 10,
                rlim_max: libc::RLIM_INFINITY,
            };
            libc::setrlimit(libc::RLIMIT_STACK, &small);
            libc::personality(libc::ADDR_NO_RANDOMIZE as libc::c_ulong);
            libc::prctl(libc::PR_SET_TIMERSLACK, 1_000_000, 0, 0, 0);
            let joined = fresh.apply();
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
            if joined.is_err() {
                bad |= 16;
            }
            bad
        });
        // Bits: 1 stack, 2 nice, 4 timer slack, 8 personality, 16 keyring refused.
        assert_eq!(code, 0);
    }

    /// Makes `keyctl(KEYCTL_JOIN_SESSION_KEYRING, ...)` fail with `errno` in this
    /// process and its children (every keyctl with `all`), as a kernel would: a seccomp
    /// filter, which root may install without `no_new_privs`.
    fn refuse_keyring_join(errno: u32, all: bool) -> bool {
        const LD_W_ABS: u16 = 0x20;
        const JEQ_K: u16 = 0x15;
        const RET_K: u16 = 0x06;
        let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
        // seccomp_data: nr at 0, arch at 4, the first argument's low half at 16.
        // Jumps count the instructions skipped: to the last (allow), or the errno.
        let other_op = if all { 0 } else { 1 };
        let mut prog = [
            op(LD_W_ABS, 0, 0, 4),
            op(JEQ_K, 0, 5, 0xc000_003e),
            op(LD_W_ABS, 0, 0, 0),
            op(JEQ_K, 0, 3, libc::SYS_keyctl as u32),
            op(LD_W_ABS, 0, 0, 16),
            op(JEQ_K, 0, other_op, libc::KEYCTL_JOIN_SESSION_KEYRING),
            op(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | errno),
            op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
        ];
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_mut_ptr(),
        };
        // SAFETY: the kernel copies the program during the call.
        unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &fprog as *const libc::sock_fprog,
            ) == 0
        }
    }

    /// A refused keyring is the error, whatever else `apply` set; a kernel without keys
    /// (every keyctl is ENOSYS), or a filter refusing every keyctl, leaves nothing to
    /// share and is no error.
    #[test]
    fn a_refused_session_keyring_is_an_error_and_no_keys_at_all_is_none() {
        if !nix::unistd::geteuid().is_root() {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "needs root");
            return;
        }
        let fresh = Fresh::new();
        let code = in_child(|| {
            if !refuse_keyring_join(libc::EDQUOT as u32, false) {
                return 100;
            }
            match fresh.apply() {
                Err(NoKeyring(e)) if e == libc::EDQUOT => 0,
                Err(_) => 1,
                Ok(()) => 2,
            }
        });
        assert_eq!(code, 0, "1: another errno, 2: no error, 100: no filter");
        let code = in_child(|| {
            if !refuse_keyring_join(libc::ENOSYS as u32, true) {
                return 100;
            }
            i32::from(fresh.apply().is_err())
        });
        assert_eq!(code, 0, "no keys at all is no error");
        // A container runtime's profile: every keyctl refused with EPERM, so the
        // inherited keyring is out of reach too, and the node may start.
        let code = in_child(|| {
            if !refuse_keyring_join(libc::EPERM as u32, true) {
                return 100;
            }
            i32::from(fresh.apply().is_err())
        });
        assert_eq!(code, 0, "a filter refusing every keyctl is no error");
        // The join alone refused with that errno: the inherited keyring stays in reach.
        let code = in_child(|| {
            if !refuse_keyring_join(libc::EPERM as u32, false) {
                return 100;
            }
            match fresh.apply() {
                Err(NoKeyring(e)) if e == libc::EPERM => 0,
                Err(_) => 1,
                Ok(()) => 2,
            }
        });
        assert_eq!(code, 0, "1: another errno, 2: no error, 100: no filter");
        let text = NoKeyring(libc::EDQUOT).to_string();
        assert!(
            text.contains("Disk quota exceeded") && text.contains("key-users"),
            "{text}"
        );
    }
}
