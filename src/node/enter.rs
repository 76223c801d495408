//! Running a command inside all of a node's namespaces and its cgroups (`nslab exec`,
//! `nslab shell`, `exec:` commands and `cmd` checks). The child enters them between fork
//! and exec. A pid namespace only applies to children of whoever enters it, so the child
//! forks once more: the grandchild runs the command inside the node's pid namespace, and
//! the intermediate waits for it and exits the same way, so exit codes pass through.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Command;

use nix::unistd::ForkResult;

/// The namespaces of a running process, opened up front (nothing may allocate after fork).
pub struct Target {
    /// (fd, CLONE_NEW*) in the order to enter them: mount last but for pid.
    ns: Vec<(OwnedFd, libc::c_int)>,
    cgroups: Vec<OwnedFd>,
    pid_ns: bool,
}

/// The node's init (the owner of its namespaces), from the pid file nslab keeps.
pub fn init_pid(pid_file: &Path) -> Option<i32> {
    let record = PidRecord::read(pid_file)?;
    record.running().then_some(record.pid)
}

/// What an init's pid file says: its pid, its start time (with the pid, its identity),
/// its grace period and the namespaces it made for its node. `down` reads it once per
/// node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidRecord {
    pub pid: i32,
    pub start: u64,
    pub grace: std::time::Duration,
    /// The node's own namespaces, as CLONE_NEW* flags (see [`OWN_KINDS`]).
    pub own: libc::c_int,
}

/// The namespace kinds a pid file's fourth field may name (`net,uts,mnt,ipc,pid`).
/// Only these mark a node's processes: an init shares every other namespace with
/// whoever ran `up`, which is not the node's, whatever namespace `down` runs in.
pub const OWN_KINDS: [(&str, libc::c_int); 6] = [
    ("net", libc::CLONE_NEWNET),
    ("uts", libc::CLONE_NEWUTS),
    ("mnt", libc::CLONE_NEWNS),
    ("ipc", libc::CLONE_NEWIPC),
    ("pid", libc::CLONE_NEWPID),
    ("cgroup", libc::CLONE_NEWCGROUP),
];

/// The pid file's words for the namespaces in `flags`, comma-separated.
pub fn own_words(flags: libc::c_int) -> String {
    let words: Vec<&str> = OWN_KINDS
        .iter()
        .filter(|(_, f)| flags & f != 0)
        .map(|(w, _)| *w)
        .collect();
    words.join(",")
}

/// The flags a pid file's fourth field names. A file written before the field existed
/// has none: then only the network namespace (every node's own) counts.
fn own_flags(field: Option<&str>) -> libc::c_int {
    let Some(field) = field else {
        return libc::CLONE_NEWNET;
    };
    field
        .split(',')
        .filter_map(|w| OWN_KINDS.iter().find(|(k, _)| *k == w).map(|(_, f)| *f))
        .fold(0, |all, f| all | f)
}

impl PidRecord {
    pub fn read(pid_file: &Path) -> Option<PidRecord> {
        let mut buf = [0u8; 128];
        let text = std::str::from_utf8(read_small(pid_file, &mut buf)?).ok()?;
        let mut parts = text.split_whitespace();
        let pid: i32 = parts.next()?.parse().ok()?;
        let start: u64 = parts.next()?.parse().ok()?;
        let ms = parts.next().and_then(|g| g.parse().ok()).unwrap_or(0);
        Some(PidRecord {
            pid,
            start,
            grace: std::time::Duration::from_millis(ms),
            own: own_flags(parts.next()),
        })
    }

    /// The pid file's text for an init: `pid start grace_ms own`.
    pub fn line(pid: i32, start: u64, grace_ms: u64, own: libc::c_int) -> String {
        format!("{pid} {start} {grace_ms} {}\n", own_words(own))
    }

    /// Whether the recorded process still runs: guards against a reused pid (the start
    /// time must match). A zombie (killed, not yet reaped by the host's init) has no
    /// namespaces left to enter.
    pub fn running(&self) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) else {
            return false;
        };
        let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
            return false;
        };
        !rest.starts_with('Z') && start_of(rest) == Some(self.start)
    }

    /// Whether the recorded process is the init of `lab`'s `node`, by the command line
    /// every init carries (`nslab __init - LAB/NODE`). A pid and start time are easy to
    /// copy from /proc: a pid file naming another process (another lab's init, a
    /// container's daemon) would have `down` kill it and sweep its namespaces.
    pub fn is_init_of(&self, lab: &str, node: &str) -> bool {
        let mut buf = [0u8; 4096];
        let path = format!("/proc/{}/cmdline", self.pid);
        read_small(Path::new(&path), &mut buf).is_some_and(|c| is_init_command_line(c, lab, node))
    }
}

/// A small file whole in one `read`, or `None` if it is longer than `buf` (or cannot be
/// read). `std::fs::read` also stats the file and reads again to find its end: five
/// system calls where three do, and `down` reads a pid file and a command line per
/// node. A short read is the end: a tmpfs file gives all it has, and so does a
/// process's command line (the kernel copies it in pages until the count or its end).
fn read_small<'a>(path: &Path, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    use std::io::Read;
    let n = std::fs::File::open(path).ok()?.read(buf).ok()?;
    (n < buf.len()).then(|| &buf[..n])
}

/// `ARGV0 __init - LAB/NODE`, NUL-separated, with any NUL padding after it (a forked
/// init writes its words over the fork server's longer arguments).
fn is_init_command_line(cmdline: &[u8], lab: &str, node: &str) -> bool {
    let title = format!("{lab}/{node}");
    let mut args = cmdline.split(|b| *b == 0).skip(1);
    args.next() == Some(b"__init".as_slice())
        && args.next() == Some(b"-".as_slice())
        && args.next() == Some(title.as_bytes())
        && args.all(<[u8]>::is_empty)
}

/// How long the init gives its processes to stop (the third field of its pid file).
pub fn init_grace(pid_file: &Path) -> std::time::Duration {
    let ms = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|t| t.split_whitespace().nth(2).and_then(|g| g.parse().ok()))
        .unwrap_or(0);
    std::time::Duration::from_millis(ms)
}

/// Records a new grace in the init's pid file, keeping its identity (pid and start
/// time): a process added to or retired from a running node changes the longest
/// `stop_timeout`, and `down` reads it here. Replaced whole, so a reader never sees half.
pub fn set_init_grace(pid_file: &Path, grace_ms: u64) -> Result<(), crate::state::StateError> {
    let text = crate::state::files::read(pid_file)?;
    let mut parts = text.split_whitespace();
    let (Some(pid), Some(start)) = (parts.next(), parts.next()) else {
        // No identity to keep: `init_pid` already reads this init as gone.
        return Ok(());
    };
    // The fields after the grace (the node's own namespaces) are kept as they are.
    let rest: Vec<&str> = parts.skip(1).collect();
    let mut line = format!("{pid} {start} {grace_ms}");
    for w in rest {
        line.push(' ');
        line.push_str(w);
    }
    line.push('\n');
    crate::state::files::replace(pid_file, line.as_bytes())
}

/// A process's start time in clock ticks since boot (field 22 of /proc/PID/stat).
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields resume after its closing parenthesis.
    start_of(&stat[stat.rfind(')')? + 2..])
}

/// The start time from the fields of /proc/PID/stat after the command name.
fn start_of(rest: &str) -> Option<u64> {
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl Target {
    /// Everything of process `pid` that differs from ours, plus the given cgroups.
    pub fn of_process(pid: i32, cgroup_procs: &[std::path::PathBuf]) -> io::Result<Target> {
        let kinds = [
            ("net", libc::CLONE_NEWNET),
            ("uts", libc::CLONE_NEWUTS),
            ("ipc", libc::CLONE_NEWIPC),
            // After the node's cgroups are joined (below, before any setns): the command
            // then sees them as `/`, as the node's processes do.
            ("cgroup", libc::CLONE_NEWCGROUP),
            ("pid", libc::CLONE_NEWPID),
            ("mnt", libc::CLONE_NEWNS),
        ];
        let mut ns = Vec::new();
        let mut pid_ns = false;
        for (name, flag) in kinds {
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{name}"))?;
            let ours = std::fs::read_link(format!("/proc/self/ns/{name}"))?;
            if theirs == ours {
                continue;
            }
            pid_ns |= flag == libc::CLONE_NEWPID;
            ns.push((File::open(format!("/proc/{pid}/ns/{name}"))?.into(), flag));
        }
        let cgroups = cgroup_procs
            .iter()
            .filter_map(|p| File::options().write(true).open(p).ok().map(OwnedFd::from))
            .collect();
        Ok(Target {
            ns,
            cgroups,
            pid_ns,
        })
    }

    /// Only a network namespace (a node without an init), named under `netns_dir`.
    pub fn netns(netns_dir: &std::path::Path, name: &str) -> io::Result<Target> {
        Ok(Target {
            ns: vec![(
                crate::sys::netns::open(netns_dir, name)?,
                libc::CLONE_NEWNET,
            )],
            cgroups: Vec::new(),
            pid_ns: false,
        })
    }

    /// A command that runs inside the target on the caller's terminal, if any (`nslab
    /// exec` and `shell`, as `docker exec -it`).
    pub fn command(self, argv: &[String]) -> io::Result<Command> {
        self.build(argv, false)
    }

    /// A command that runs inside the target in a session of its own, with no
    /// controlling terminal (`exec:` commands and `cmd` checks, which read nothing from
    /// one). Kept in nslab's session, the command and whatever it leaves behind (a
    /// daemon it started, one that dropped root) could open the terminal `up` or `test`
    /// ran on through `/dev/tty` and push input into the shell there with `TIOCSTI`.
    pub fn detached_command(self, argv: &[String]) -> io::Result<Command> {
        self.build(argv, true)
    }

    fn build(self, argv: &[String], own_session: bool) -> io::Result<Command> {
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        let mut cmd = Command::new(prog);
        cmd.args(args);
        let Target {
            ns,
            cgroups,
            pid_ns,
        } = self;
        let fresh = crate::node::fresh::Fresh::new();
        // Only async-signal-safe calls (write, setns, chdir, setsid, fork, prctl,
        // getppid, close_range, waitpid, sigaction, kill, _exit) run between fork and exec;
        // everything was opened before.
        crate::sys::child::before_exec(&mut cmd, move |one| {
            for fd in &cgroups {
                // "0" moves the writing process.
                nix::unistd::write(fd, b"0")?;
            }
            for (fd, flag) in &ns {
                nix::sched::setns(fd, nix::sched::CloneFlags::from_bits_retain(*flag))?;
            }
            nix::unistd::chdir(c"/")?;
            // Before the fork below, so the intermediate and the command share it.
            if own_session {
                nix::unistd::setsid()?;
            }
            // Only 0-2 reach the command: the caller's other descriptors (and ours, the
            // namespaces and cgroups just used) are marked close-on-exec.
            crate::sys::fd::close_from(3, true);
            if !pid_ns {
                return fresh_or_say(&fresh);
            }
            match one.fork()? {
                ForkResult::Child => {
                    // The command dies with the intermediate, so killing what nslab
                    // spawned (a timeout, kill_on_drop) ends the command too. Outside
                    // our pid namespace the parent reads as 0; anything else means the
                    // intermediate is already gone.
                    let _ =
                        crate::sys::attrs::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as u64, 0);
                    if nix::unistd::getppid().as_raw() != 0 {
                        crate::sys::child::exit_now(137);
                    }
                    // In the node's pid namespace: its /proc/self is this process.
                    fresh_or_say(&fresh)
                }
                ForkResult::Parent { child } => intermediate(child),
            }
        });
        Ok(cmd)
    }
}

/// The intermediate between nslab and a command in a node's pid namespace: waits for
/// the command and ends the same way. It lets go of every descriptor first: the
/// standard library waits for its exec-error pipe to close before `spawn` returns, and
/// holding the command's pipes would hide their EOF. The command keeps its own copies.
/// Between fork and exec: system calls only.
fn intermediate(child: nix::unistd::Pid) -> ! {
    use nix::sys::signal::Signal;
    use nix::sys::wait::{WaitStatus, waitpid};
    crate::sys::fd::close_from(0, false);
    for sig in [Signal::SIGINT, Signal::SIGQUIT, Signal::SIGTERM] {
        let _ = crate::sys::signal::ignore(sig);
    }
    let status = loop {
        if let Ok(status) = waitpid(child, None) {
            break status;
        }
    };
    match status {
        WaitStatus::Exited(_, code) => crate::sys::child::exit_now(code),
        WaitStatus::Signaled(_, sig, _) => {
            let _ = crate::sys::signal::set_default(sig);
            let _ = nix::sys::signal::kill(nix::unistd::getpid(), sig);
            crate::sys::child::exit_now(0)
        }
        _ => crate::sys::child::exit_now(0),
    }
}

/// The defaults, between fork and exec; a refused keyring says so on the command's
/// stderr (nothing else crosses back but the errno) and fails the spawn.
fn fresh_or_say(fresh: &crate::node::fresh::Fresh) -> io::Result<()> {
    use crate::node::fresh::NoKeyring;
    fresh.apply().map_err(|NoKeyring(errno)| {
        crate::sys::fd::write_raw(2, NoKeyring::NOTE);
        io::Error::from_raw_os_error(errno)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_file_is_read_whole_and_a_longer_one_refused() {
        let dir = std::env::temp_dir().join(format!("nslab-small-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.pid");
        std::fs::write(&f, "4463 912 300 net,pid\n").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(
            read_small(&f, &mut buf),
            Some(&b"4463 912 300 net,pid\n"[..])
        );
        let mut exact = [0u8; 21];
        assert_eq!(
            read_small(&f, &mut exact),
            None,
            "as long as the buffer: maybe cut"
        );
        let record = PidRecord::read(&f).unwrap();
        assert_eq!(
            (record.pid, record.start, record.grace.as_millis()),
            (4463, 912, 300)
        );
        assert_eq!(record.own, libc::CLONE_NEWNET | libc::CLONE_NEWPID);
        let me = PidRecord {
            pid: std::process::id() as i32,
            start: 0,
            grace: Default::default(),
            own: 0,
        };
        assert!(!me.is_init_of("lab1", "r1"), "this test's own command line");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(PidRecord::read(&f).is_none());
    }

    #[test]
    fn an_init_is_known_by_its_command_line_lab_and_node() {
        let forked = b"/usr/bin/nslab\0__init\0-\0lab1/r1\0\0\0\0";
        assert!(is_init_command_line(forked, "lab1", "r1"));
        assert!(is_init_command_line(
            b"nslab\0__init\0-\0lab1/r1\0",
            "lab1",
            "r1"
        ));
        assert!(!is_init_command_line(forked, "lab1", "r2"), "another node");
        assert!(
            !is_init_command_line(forked, "lab", "1/r1"),
            "another split"
        );
        assert!(!is_init_command_line(b"/usr/sbin/sshd\0-D\0", "lab1", "r1"));
        assert!(!is_init_command_line(
            b"nslab\0__init\0-\0lab1/r1\0x\0",
            "lab1",
            "r1"
        ));
        assert!(!is_init_command_line(b"", "lab1", "r1"));
    }

    #[test]
    fn a_pid_record_names_a_running_process_only_with_its_start_time() {
        let dir = std::env::temp_dir().join(format!("nslab-pid-record-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let me = std::process::id() as i32;
        let start = start_time(me).unwrap();
        let file = dir.join("r1.pid");
        std::fs::write(&file, format!("{me} {start} 2500\n")).unwrap();
        let record = PidRecord::read(&file).unwrap();
        assert_eq!(record.pid, me);
        assert_eq!(record.grace, std::time::Duration::from_millis(2500));
        assert!(record.running());
        assert_eq!(init_pid(&file), Some(me));
        // Another start time: the pid was reused by someone else.
        let other = PidRecord {
            start: start + 1,
            ..record
        };
        assert!(!other.running());
        // Without a grace, the grace is none; without a start time, no record at all.
        std::fs::write(&file, format!("{me} {start}\n")).unwrap();
        assert_eq!(
            PidRecord::read(&file).unwrap().grace,
            std::time::Duration::ZERO
        );
        std::fs::write(&file, format!("{me}\n")).unwrap();
        assert_eq!(PidRecord::read(&file), None);
        assert_eq!(init_pid(&file), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_pid_record_names_the_nodes_own_namespaces_and_a_new_grace_keeps_them() {
        let dir = std::env::temp_dir().join(format!("nslab-pid-own-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("r1.pid");
        let own = libc::CLONE_NEWNET | libc::CLONE_NEWNS | libc::CLONE_NEWIPC;
        std::fs::write(&file, PidRecord::line(7, 9, 300, own)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "7 9 300 net,mnt,ipc\n"
        );
        assert_eq!(PidRecord::read(&file).unwrap().own, own);
        set_init_grace(&file, 1200).unwrap();
        let record = PidRecord::read(&file).unwrap();
        assert_eq!(
            (record.grace, record.own),
            (std::time::Duration::from_millis(1200), own)
        );
        // A file from before the field: the network namespace alone.
        std::fs::write(&file, "7 9 300\n").unwrap();
        assert_eq!(PidRecord::read(&file).unwrap().own, libc::CLONE_NEWNET);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
