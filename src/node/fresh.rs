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

/// The kernel's default timer slack, in nanoseconds (`PR_SET_TIMERSLACK` with 0 would
/// give back the caller's, which is what a thread's default is inherited from).
const TIMER_SLACK_NS: u64 = 50_000;

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
        use crate::sys::attrs;
        attrs::reset_scheduler();
        let _ = attrs::set_nice(0);
        // Every CPU: the kernel keeps those of the cpuset.
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &all_cpus());
        // IOPRIO_WHO_PROCESS, this process, class none: follows the nice value.
        let _ = attrs::set_ioprio(0);
        attrs::personality(0);
        let _ = attrs::prctl(libc::PR_SET_TIMERSLACK, TIMER_SLACK_NS, 0);
        let _ = attrs::prctl(libc::PR_SET_SECUREBITS, 0, 0);
        let _ = attrs::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as u64,
            0,
        );
        attrs::clear_inheritable_caps();
        // The caller's NUMA memory policy (`numactl --membind`) and transparent huge
        // pages switched off (`PR_SET_THP_DISABLE`): both survive exec.
        attrs::default_mempolicy();
        let _ = attrs::prctl(libc::PR_SET_THP_DISABLE, 0, 0);
        // A session keyring of its own, or none in reach (see `keyring`).
        let keyring = if self.own_keyring {
            super::keyring::join_own()
        } else {
            Ok(())
        };
        // Root's processes get no supplementary group (one with `user:` gets that user's).
        // Refused in a user namespace, where the caller's are kept.
        let _ = attrs::drop_groups();
        let _ = write_oom(b"0");
        keyring
    }
}

/// Every CPU, as a set (the kernel keeps those of the cpuset).
fn all_cpus() -> nix::sched::CpuSet {
    let mut all = nix::sched::CpuSet::new();
    for c in 0..nix::sched::CpuSet::count() {
        let _ = all.set(c);
    }
    all
}

/// Writes `text` to /proc/self/oom_score_adj: an open, a write and a close, so safe
/// between fork and exec (a C string path: nix does not allocate for it).
fn write_oom(text: &[u8]) -> std::io::Result<()> {
    use nix::fcntl::OFlag;
    let fd = nix::fcntl::open(
        c"/proc/self/oom_score_adj",
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    if nix::unistd::write(&fd, text)? != text.len() {
        return Err(std::io::Error::from_raw_os_error(libc::EIO));
    }
    Ok(())
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
    cpus: Option<nix::sched::CpuSet>,
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
        use crate::sys::attrs;
        for (res, lim) in &self.limits {
            attrs::set_rlimit(*res, lim)?;
        }
        if let Some(io) = self.ionice {
            attrs::set_ioprio(io)?;
        }
        if let Some(n) = self.nice {
            attrs::set_nice(n)?;
        }
        if let Some(set) = &self.cpus {
            nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), set)?;
        }
        if let Some((text, len)) = &self.oom {
            write_oom(&text[..*len])?;
        }
        Ok(())
    }
}

/// Said of a refusal that a rootless lab always meets.
const ROOTLESS: &str = " (a rootless lab, or a root without it)";

fn get_limit(res: u32) -> libc::rlimit {
    crate::sys::attrs::get_rlimit(res)
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
fn cpu_set(list: &crate::attrs::CpuList) -> Result<nix::sched::CpuSet, String> {
    use nix::sched::{CpuSet, sched_getaffinity};
    let allowed = sched_getaffinity(nix::unistd::Pid::from_raw(0)).map_err(|e| {
        format!(
            "`cpus`: cannot read this node's CPUs: {}",
            std::io::Error::from(e)
        )
    })?;
    let usable: Vec<u32> = (0..=crate::attrs::MAX_CPU)
        .filter(|c| allowed.is_set(*c as usize).unwrap_or(false))
        .collect();
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
    let mut set = CpuSet::new();
    for c in &list.0 {
        // At most MAX_CPU, within the set.
        let _ = set.set(*c as usize);
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
    use crate::sys::attrs;
    if attrs::set_rlimit(res, &want).is_ok() {
        return;
    }
    let now = attrs::get_rlimit(res);
    // Unknown (the read failed): leave the limit as it is.
    if now.rlim_max == 0 && now.rlim_cur == 0 {
        return;
    }
    let max = max.min(now.rlim_max);
    let lim = libc::rlimit {
        rlim_cur: cur.min(max),
        rlim_max: max,
    };
    let _ = attrs::set_rlimit(res, &lim);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::child::testing::in_child;

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
        let code = in_child(|| {
            if wanted.apply().is_err() {
                return 100;
            }
            let mut bad = 0;
            let l = get_limit(libc::RLIMIT_NOFILE);
            if (l.rlim_cur, l.rlim_max) != (100, 200) {
                bad |= 1;
            }
            if crate::sys::attrs::nice().ok() != Some(7) {
                bad |= 2;
            }
            if crate::sys::attrs::ioprio().ok() != Some(3 << 13) {
                bad |= 4;
            }
            let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
            let on = (0..nix::sched::CpuSet::count()).filter(|c| set.is_set(*c).unwrap_or(false));
            if on.collect::<Vec<_>>() != [cpu as usize] {
                bad |= 8;
            }
            let oom = std::fs::read("/proc/self/oom_score_adj").unwrap_or_default();
            if !oom.starts_with(b"321") {
                bad |= 16;
            }
            bad
        });
        // Bits: 1 nofile, 2 nice, 4 ionice, 8 cpus, 16 oom_score_adj; 100 apply failed.
        assert_eq!(code, Some(0));
    }

    fn first_cpu() -> u32 {
        let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
        (0..1024u32)
            .find(|c| set.is_set(*c as usize).unwrap_or(false))
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
        let code = in_child(|| {
            use crate::sys::attrs;
            let _ = attrs::set_nice(7);
            let small = libc::rlimit {
                rlim_cur: 64 << 10,
                rlim_max: libc::RLIM_INFINITY,
            };
            let _ = attrs::set_rlimit(libc::RLIMIT_STACK, &small);
            attrs::personality(libc::ADDR_NO_RANDOMIZE as u64);
            let _ = attrs::prctl(libc::PR_SET_TIMERSLACK, 1_000_000, 0);
            let joined = fresh.apply();
            let stack = get_limit(libc::RLIMIT_STACK);
            let nice = attrs::nice().unwrap_or(-100);
            let slack = attrs::prctl(libc::PR_GET_TIMERSLACK, 0, 0).unwrap_or(-1);
            let pers = attrs::personality(0xffff_ffff);
            let mut bad = 0;
            if stack.rlim_cur != 8 << 20 {
                bad |= 1;
            }
            if nice != 0 && nix::unistd::geteuid().is_root() {
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
        assert_eq!(code, Some(0));
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
        crate::sys::attrs::install_seccomp(&mut prog)
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
        // `apply` under a filter refusing the join (every keyctl with `all`) with
        // `errno`: 0 when it is refused with that errno, 1 another errno, 2 no error,
        // 100 no filter.
        let refused_with = |errno: i32, all: bool| {
            in_child(|| {
                if !refuse_keyring_join(errno as u32, all) {
                    return 100;
                }
                match fresh.apply() {
                    Err(NoKeyring(e)) if e == errno => 0,
                    Err(_) => 1,
                    Ok(()) => 2,
                }
            })
        };
        assert_eq!(
            refused_with(libc::EDQUOT, false),
            Some(0),
            "1: another errno, 2: no error, 100: no filter"
        );
        let code = in_child(|| {
            if !refuse_keyring_join(libc::ENOSYS as u32, true) {
                return 100;
            }
            i32::from(fresh.apply().is_err())
        });
        assert_eq!(code, Some(0), "no keys at all is no error");
        // A container runtime's profile: every keyctl refused with EPERM, so the
        // inherited keyring is out of reach too, and the node may start.
        let code = in_child(|| {
            if !refuse_keyring_join(libc::EPERM as u32, true) {
                return 100;
            }
            i32::from(fresh.apply().is_err())
        });
        assert_eq!(code, Some(0), "a filter refusing every keyctl is no error");
        // The join alone refused with that errno: the inherited keyring stays in reach.
        assert_eq!(
            refused_with(libc::EPERM, false),
            Some(0),
            "1: another errno, 2: no error, 100: no filter"
        );
        let text = NoKeyring(libc::EDQUOT).to_string();
        assert!(
            text.contains("Disk quota exceeded") && text.contains("key-users"),
            "{text}"
        );
    }
}
