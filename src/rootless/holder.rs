//! The lab holder: `nslab __holder <lab> <netns dir>`. It makes a user namespace that
//! maps the caller's uid and gid to 0, then mount, network and pid namespaces owned by
//! it, and forks PID 1 of that pid namespace, which stays and reaps. Its own network
//! namespace is what lets the engine add named namespaces at all: in a user namespace
//! without one, `ip netns add` fails switching back to the host's (which the user does
//! not own). Its pid is kept in `<run dir>/<lab>.holder`, locked while read or written,
//! with the cgroups it runs in (the lab's groups go below them).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::fcntl::{Flock, FlockArg};
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::{ForkResult, Pid};

use super::RootlessError;
use crate::node::cgroup;
use crate::state::HostContext;

/// A running holder, pinned by its pidfd (a pid alone could be reused).
#[derive(Debug)]
pub struct Holder {
    pub lab: String,
    pub pid: i32,
    pidfd: OwnedFd,
}

impl Holder {
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Kills the holder and with it everything of the lab still running, waits until it
    /// is gone, and forgets its pid. After an orderly `down` nothing is left to kill but
    /// the holder itself.
    pub fn stop(self, host: &HostContext) -> Result<(), RootlessError> {
        let file = HolderFile::lock(host, &self.lab)?;
        crate::sys::pidfd::signal(self.pidfd(), libc::SIGKILL);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        crate::sys::pidfd::wait_exit(vec![self.pidfd()], deadline, |fd| *fd);
        file.remove()?;
        tidy_netns_dir(host);
        Ok(())
    }
}

/// The running holder of `lab`, or a new one when `may_start`. A recorded holder that is
/// gone took the lab's kernel objects with it, so what is left of the lab's state (its
/// journal and files, and its cgroups, which the kernel keeps) is stale and removed
/// first. The lab's cgroups go below the holder's (see [`cgroup::place_below`]).
pub fn open(
    host: &HostContext,
    lab: &str,
    may_start: bool,
) -> Result<Option<Holder>, RootlessError> {
    crate::state::files::ensure_root(&host.run_dir)?;
    let mut file = HolderFile::lock(host, lab)?;
    let (pid, recorded) = file.read();
    if let Some(holder) = pid.and_then(|pid| alive(lab, pid)) {
        let own = std::fs::read_to_string(format!("/proc/{}/cgroup", holder.pid)).ok();
        if let Some(m) = recorded.or(own) {
            cgroup::place_below(m);
        }
        return Ok(Some(holder));
    }
    if let Some(m) = recorded {
        cgroup::place_below(m);
    }
    if host.lab_dir(lab).exists() {
        crate::apply::forget(host, lab).map_err(|e| RootlessError::Start {
            lab: lab.to_string(),
            why: format!("removing the state its last holder left: {e}"),
            hint: String::new(),
        })?;
    }
    remove_stale_cgroups(lab).map_err(|why| RootlessError::Start {
        lab: lab.to_string(),
        why: format!("removing the cgroups its last holder left: {why}"),
        hint: String::new(),
    })?;
    if !may_start {
        file.remove()?;
        tidy_netns_dir(host);
        return Ok(None);
    }
    let holder = match start(host, lab) {
        Ok(h) => h,
        Err(e) => {
            // Nothing of the lab exists: no file of it either.
            let _ = file.remove();
            tidy_netns_dir(host);
            return Err(e);
        }
    };
    let own = std::fs::read_to_string(format!("/proc/{}/cgroup", holder.pid))
        .map_err(|e| RootlessError::io(format!("/proc/{}/cgroup", holder.pid), e))?;
    cgroup::place_below(own.clone());
    file.record(holder.pid, &own)?;
    Ok(Some(holder))
}

/// The groups of a lab whose holder died (with every process in them, so they are
/// empty), wherever [`open`] placed them; a journal lost with them leaves no other trace.
fn remove_stale_cgroups(lab: &str) -> Result<(), String> {
    let errors: Vec<String> = cgroup::nodes_of(lab)
        .iter()
        .filter_map(|node| cgroup::remove(lab, node).err())
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// The holder file, flocked for as long as this value lives.
struct HolderFile {
    file: Flock<File>,
    path: PathBuf,
}

impl HolderFile {
    fn lock(host: &HostContext, lab: &str) -> Result<HolderFile, RootlessError> {
        crate::model::names::check_lab_name(lab).map_err(crate::state::StateError::BadLabName)?;
        let path = host.run_dir.join(format!("{lab}.holder"));
        // The lab locks' rules: never through a link, the caller's own regular file, 0600.
        let file = crate::state::open_lock_file(&path)?;
        // Blocks while another command holds it; released when the value is dropped.
        let file = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| RootlessError::io(&path, e.into()))?;
        Ok(HolderFile { file, path })
    }

    /// The holder's pid (the first line) and its cgroup membership (the rest, as its
    /// `/proc/PID/cgroup` read when it started).
    fn read(&mut self) -> (Option<i32>, Option<String>) {
        let mut text = String::new();
        if self.file.read_to_string(&mut text).is_err() {
            return (None, None);
        }
        let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
        let cgroups = (!rest.trim().is_empty()).then(|| rest.to_string());
        (first.trim().parse().ok(), cgroups)
    }

    fn record(&mut self, pid: i32, cgroups: &str) -> Result<(), RootlessError> {
        let io = |e| RootlessError::io(&self.path, e);
        self.file.set_len(0).map_err(io)?;
        self.file.rewind().map_err(io)?;
        write!(self.file, "{pid}\n{cgroups}").map_err(io)
    }

    fn remove(self) -> Result<(), RootlessError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RootlessError::io(&self.path, e)),
        }
    }
}

/// The process `pid` if it is still the holder of `lab`: alive, and running `__holder
/// <lab>` (checked after its pidfd is open, so the pid cannot be reused in between).
fn alive(lab: &str, pid: i32) -> Option<Holder> {
    let pidfd = crate::sys::pidfd::open(pid).ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let mut args = cmdline.split(|b| *b == 0).skip(1);
    if args.next()? != b"__holder" || args.next()? != lab.as_bytes() {
        return None;
    }
    let live = crate::sys::pidfd::alive(pidfd.as_fd());
    live.then(|| Holder {
        lab: lab.to_string(),
        pid,
        pidfd,
    })
}

/// The state directory, flocked while this value lives: [`start`] holds it from making
/// the netns directory until its holder has mounted its tmpfs there, and
/// [`tidy_netns_dir`] while it looks for holders and removes the directory (removing a
/// directory another mount namespace has a mount on takes that mount with it).
fn lock_state_dir(host: &HostContext) -> Result<Flock<File>, RootlessError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e| RootlessError::io(&host.run_dir, e);
    let dir = File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(&host.run_dir)
        .map_err(io)?;
    Flock::lock(dir, FlockArg::LockExclusive).map_err(|(_, e)| io(e.into()))
}

/// Removes the netns directory (only the holders' mount point) once no lab of this user
/// has a holder file, so nothing is left in the state directory after the last `down`.
fn tidy_netns_dir(host: &HostContext) {
    let Ok(_lock) = lock_state_dir(host) else {
        return;
    };
    let held = std::fs::read_dir(&host.run_dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".holder"));
    if !held {
        // A command that joined the holder is still in the holder's mount namespace,
        // where the directory is the tmpfs's mount point (busy): that mount goes first.
        let busy = |e: &std::io::Error| e.raw_os_error() == Some(libc::EBUSY);
        if std::fs::remove_dir(&host.netns_dir).is_err_and(|e| busy(&e)) {
            let flags = nix::mount::MntFlags::MNT_DETACH | nix::mount::MntFlags::UMOUNT_NOFOLLOW;
            if nix::mount::umount2(&host.netns_dir, flags).is_ok() {
                let _ = std::fs::remove_dir(&host.netns_dir);
            }
        }
    }
}

/// Runs `nslab __holder` and waits until its PID 1 says the namespaces are ready.
fn start(host: &HostContext, lab: &str) -> Result<Holder, RootlessError> {
    let fail = |why: String, hint: String| RootlessError::Start {
        lab: lab.to_string(),
        why,
        hint,
    };
    let _dir = lock_state_dir(host)?;
    crate::state::files::ensure_dir(&host.netns_dir)?;
    let exe = crate::apply::nodes::nslab_binary().map_err(|e| fail(e.to_string(), "".into()))?;
    let sub = sub_ids();
    let mut child = Command::new(exe)
        .arg("__holder")
        .arg(lab)
        .arg(&host.netns_dir)
        .arg(if sub.is_some() { "subids" } else { "own" })
        .stdin(if sub.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| fail(format!("cannot run nslab: {e}"), String::new()))?;
    let mut out = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let mut said = String::new();
    if let Some(ids) = sub {
        // The holder waits in its new user namespace for the maps only a set-uid
        // helper may write; one byte says whether they are in place.
        let _ = std::io::BufRead::read_line(&mut out, &mut said);
        // Anything but `userns` is the holder's error, read with the rest below.
        let mapped = (said.trim() == "userns").then(|| map_sub_ids(child.id(), &ids));
        let go: &[u8] = if matches!(mapped, Some(Ok(()))) {
            b"g"
        } else {
            b"x"
        };
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(go);
        }
        if let Some(Err(e)) = mapped {
            let _ = child.wait();
            return Err(fail(e, String::new()));
        }
    }
    let read = out.read_to_string(&mut said);
    let _ = child.wait();
    read.map_err(|e| fail(e.to_string(), String::new()))?;
    let pid = said
        .lines()
        .find_map(|l| l.strip_prefix("pid ")?.parse::<i32>().ok());
    if let Some(e) = said.lines().find_map(|l| l.strip_prefix("error: ")) {
        return Err(fail(e.to_string(), userns_hint(&read_sysctls())));
    }
    match pid {
        Some(pid) if said.lines().any(|l| l == "ready") => {
            alive(lab, pid).ok_or_else(|| fail("it exited at once".into(), String::new()))
        }
        _ => Err(fail(
            "it ended without saying it was ready".into(),
            String::new(),
        )),
    }
}

/// A subordinate range of ids (`/etc/subuid`, `/etc/subgid`): the first id and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubIds {
    pub uid: (u32, u32),
    pub gid: (u32, u32),
}

/// The caller's subordinate ranges, when it has both and `newuidmap`/`newgidmap` (Debian
/// package uidmap) are installed; then ids other than the caller's own are mapped too
/// (a daemon's `-u frr`, a private directory owned by another user).
pub fn sub_ids() -> Option<SubIds> {
    if map_helper("newuidmap").is_none() || map_helper("newgidmap").is_none() {
        return None;
    }
    let uid = nix::unistd::getuid().as_raw();
    let name = user_name(&std::fs::read_to_string("/etc/passwd").ok()?, uid);
    let read = |path: &str| {
        let text = std::fs::read_to_string(path).ok()?;
        sub_range(&text, name.as_deref(), uid)
    };
    Some(SubIds {
        uid: read("/etc/subuid")?,
        gid: read("/etc/subgid")?,
    })
}

/// The caller's login name (its uid when it has none), and what keeps [`sub_ids`] from
/// finding a range, in words (`/etc/subgid has no range for \`alice\``), so a hint names
/// what is missing on this machine, not every requirement.
pub fn sub_ids_missing() -> (String, Option<String>) {
    let uid = nix::unistd::getuid().as_raw();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = user_name(&passwd, uid);
    let who = name.clone().unwrap_or_else(|| uid.to_string());
    let helpers = ["newuidmap", "newgidmap"].map(|h| (h, map_helper(h).is_some()));
    let ranges = ["/etc/subuid", "/etc/subgid"].map(|path| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        (path, sub_range(&text, name.as_deref(), uid).is_some())
    });
    let missing = missing_words(&who, helpers, ranges);
    (who, missing)
}

/// The helpers and ranges that are not there, in words; none when all are.
fn missing_words(
    who: &str,
    helpers: [(&str, bool); 2],
    ranges: [(&str, bool); 2],
) -> Option<String> {
    let helpers = helpers.iter().filter(|(_, there)| !there);
    let ranges = ranges.iter().filter(|(_, there)| !there);
    let missing: Vec<String> = helpers
        .map(|(h, _)| format!("{h} is not installed"))
        .chain(ranges.map(|(p, _)| format!("{p} has no range for `{who}`")))
        .collect();
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// Where the id-map helper `name` is installed: the one [`sub_ids`] found is the one
/// run, never whatever the caller's `PATH` names first.
fn map_helper(name: &str) -> Option<std::path::PathBuf> {
    ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Whether a rootless lab of this user has ids besides the user's own: inside a lab's
/// user namespace (a command that joined it), whether its map holds more than one id;
/// outside, whether a holder would map a subordinate range. `Err` says what is missing.
pub fn other_ids() -> Result<(), String> {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) if !is_initial(&map) => {
            if mapped_ids(&map) > 1 {
                Ok(())
            } else {
                Err("the lab was brought up with your own uid alone mapped (it had no subordinate range then); take it down and up again once it has one".into())
            }
        }
        _ if sub_ids().is_some() => Ok(()),
        _ => Err(why_no_sub_ids()),
    }
}

/// Why [`sub_ids`] found nothing for this user: the id-map helpers missing, or no range
/// in /etc/subuid or /etc/subgid, each named.
fn why_no_sub_ids() -> String {
    let uid = nix::unistd::getuid().as_raw();
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| user_name(&p, uid));
    let range = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| sub_range(&t, name.as_deref(), uid))
    };
    missing_sub_ids(
        [map_helper("newuidmap"), map_helper("newgidmap")].map(|h| h.is_some()),
        [range("/etc/subuid"), range("/etc/subgid")],
        name.as_deref(),
        uid,
    )
}

/// [`why_no_sub_ids`] from what it found: whether `newuidmap` and `newgidmap` are
/// installed, and the user's ranges in /etc/subuid and /etc/subgid.
fn missing_sub_ids(
    helpers: [bool; 2],
    ranges: [Option<(u32, u32)>; 2],
    name: Option<&str>,
    uid: u32,
) -> String {
    let who = name.map_or(format!("uid {uid}"), |n| format!("`{n}` (uid {uid})"));
    let files = ["/etc/subuid", "/etc/subgid"];
    let mut missing: Vec<String> = files
        .iter()
        .zip(ranges)
        .filter(|(_, r)| r.is_none())
        .map(|(f, _)| format!("{f} has no range for {who}"))
        .collect();
    let absent: Vec<&str> = ["newuidmap", "newgidmap"]
        .into_iter()
        .zip(helpers)
        .filter(|(_, there)| !there)
        .map(|(h, _)| h)
        .collect();
    if !absent.is_empty() {
        let have = if missing.is_empty() {
            "you have a range in /etc/subuid and /etc/subgid, but "
        } else {
            ""
        };
        missing.push(format!(
            "{have}{} not installed (Debian package uidmap; looked for in /usr/bin, /bin and /usr/local/bin)",
            absent.join(" and ") + if absent.len() == 2 { " are" } else { " is" }
        ));
    }
    missing.join("; ")
}

/// The initial user namespace maps every id to itself.
fn is_initial(map: &str) -> bool {
    map.split_whitespace().eq(["0", "0", "4294967295"])
}

/// How many ids a uid_map maps.
fn mapped_ids(map: &str) -> u64 {
    map.lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum()
}

/// The name of `uid` in `/etc/passwd` text (read directly: nslab is a static binary).
fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2].parse() == Ok(uid)).then(|| f[0].to_string())
    })
}

/// The first range of the user (by name or by uid) in subuid/subgid text.
fn sub_range(text: &str, name: Option<&str>, uid: u32) -> Option<(u32, u32)> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.trim().split(':').collect();
        let [who, start, count] = f.as_slice() else {
            return None;
        };
        let me = Some(*who) == name || who.parse() == Ok(uid);
        let (start, count) = (start.parse().ok()?, count.parse::<u32>().ok()?);
        (me && count > 0).then_some((start, count))
    })
}

/// `newuidmap PID 0 UID 1 1 START COUNT`, and the same for gids.
fn map_sub_ids(pid: u32, ids: &SubIds) -> Result<(), String> {
    let own = [
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    ];
    for ((helper, (start, count)), id) in [("newuidmap", ids.uid), ("newgidmap", ids.gid)]
        .into_iter()
        .zip(own)
    {
        let path = map_helper(helper).ok_or_else(|| format!("{helper} is not installed"))?;
        let out = Command::new(&path)
            .arg(pid.to_string())
            .args([
                "0",
                &id.to_string(),
                "1",
                "1",
                &start.to_string(),
                &count.to_string(),
            ])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{helper} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}

/// The sysctls that decide whether an unprivileged user namespace may be made.
fn read_sysctls() -> [Option<String>; 3] {
    [
        "/proc/sys/user/max_user_namespaces",
        "/proc/sys/kernel/unprivileged_userns_clone",
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
    ]
    .map(|p| {
        std::fs::read_to_string(p)
            .ok()
            .map(|v| v.trim().to_string())
    })
}

/// What to change when a user namespace cannot be made, from the values of
/// [`read_sysctls`] (a missing file is a kernel without that knob).
fn userns_hint(values: &[Option<String>; 3]) -> String {
    let is = |i: usize, v: &str| values[i].as_deref() == Some(v);
    if is(0, "0") {
        "\n  hint: user namespaces are disabled: `sysctl -w user.max_user_namespaces=15000`".into()
    } else if is(1, "0") {
        "\n  hint: unprivileged user namespaces are disabled: `sysctl -w kernel.unprivileged_userns_clone=1`".into()
    } else if is(2, "1") {
        "\n  hint: AppArmor restricts unprivileged user namespaces: give nslab a profile with `userns,` or `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`".into()
    } else {
        String::new()
    }
}

/// The holder's entry point; returns the exit code of the first process (PID 1 never
/// returns).
pub fn main(netns_dir: &Path, sub_ids: bool) -> i32 {
    // A fresh exec of nslab, with no thread started (the user namespace needs it too).
    let Some(one) = crate::sys::child::SingleThreaded::check() else {
        println!("error: the holder has more than one thread");
        return 1;
    };
    match unshare_all(sub_ids) {
        Ok(()) => {}
        Err(e) => {
            println!("error: {e}");
            return 1;
        }
    }
    match one.fork() {
        Ok(ForkResult::Parent { child }) => {
            println!("pid {child}");
            0
        }
        Ok(ForkResult::Child) => pid1(netns_dir),
        Err(e) => {
            println!("error: fork: {e}");
            1
        }
    }
}

/// A new session (no terminal's signals reach the lab), then the namespaces.
fn unshare_all(sub_ids: bool) -> Result<(), String> {
    let _ = nix::unistd::setsid();
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| format!("cannot make a user namespace: {e}"))?;
    if sub_ids {
        // The launcher runs newuidmap and newgidmap on this process, then says go.
        println!("userns");
        let _ = std::io::stdout().flush();
        let mut go = [0u8; 1];
        let _ = std::io::stdin().read(&mut go);
        if go[0] != b'g' {
            return Err("the subordinate id maps were not written".into());
        }
        return unshare(
            CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWPID,
        )
        .map_err(|e| format!("cannot make the lab's namespaces: {e}"));
    }
    // Without a subordinate range only the caller's own ids can be mapped, and an
    // unprivileged process may write a gid map only once setgroups is denied.
    let write =
        |path: &str, text: String| std::fs::write(path, text).map_err(|e| format!("{path}: {e}"));
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("0 {uid} 1\n"))?;
    write("/proc/self/gid_map", format!("0 {gid} 1\n"))?;
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWPID)
        .map_err(|e| format!("cannot make the lab's namespaces: {e}"))
}

/// PID 1 of the lab: private mounts, a /proc of the lab's pid namespace (the engine reads
/// its processes there by the pids it forked), a tmpfs as the netns directory; then it
/// reaps every orphan until it is killed.
fn pid1(netns_dir: &Path) -> ! {
    let none: Option<&str> = None;
    let made = (|| -> nix::Result<()> {
        mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)?;
        let quiet = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(Some("proc"), "/proc", Some("proc"), quiet, none)?;
        mount(
            Some("tmpfs"),
            netns_dir,
            Some("tmpfs"),
            quiet,
            Some("mode=755"),
        )?;
        Ok(())
    })();
    if let Err(e) = made {
        println!("error: preparing the lab's mounts: {e}");
        std::process::exit(1);
    }
    println!("ready");
    let _ = std::io::stdout().flush();
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
    let _ = std::env::set_current_dir("/");
    reap()
}

/// Waits for SIGCHLD (blocked, so PID 1 gets it without a handler) and reaps.
fn reap() -> ! {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    let _ = set.thread_block();
    loop {
        let _ = set.wait();
        while let Ok(s) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            if s == nix::sys::wait::WaitStatus::StillAlive {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{missing_words, userns_hint};

    #[test]
    fn an_id_map_helper_is_run_by_its_installed_path_never_by_the_path_variable() {
        // `sh` is in one of the fixed directories on every machine that runs nslab.
        let sh = super::map_helper("sh").expect("sh is installed");
        assert!(
            ["/usr/bin/sh", "/bin/sh", "/usr/local/bin/sh"].contains(&sh.to_str().unwrap()),
            "{sh:?}"
        );
        assert_eq!(super::map_helper("no-such-id-map-helper"), None);
    }

    #[test]
    fn what_is_missing_for_sub_ids_is_named_not_every_requirement() {
        let all = [("newuidmap", true), ("newgidmap", true)];
        let ranges = [("/etc/subuid", true), ("/etc/subgid", true)];
        assert_eq!(missing_words("alice", all, ranges), None);
        let no_gid = [("/etc/subuid", true), ("/etc/subgid", false)];
        assert_eq!(
            missing_words("alice", all, no_gid).as_deref(),
            Some("/etc/subgid has no range for `alice`")
        );
        let no_helper = [("newuidmap", false), ("newgidmap", true)];
        let none = [("/etc/subuid", false), ("/etc/subgid", false)];
        assert_eq!(
            missing_words("1001", no_helper, none).as_deref(),
            Some(
                "newuidmap is not installed, /etc/subuid has no range for `1001`, /etc/subgid has no range for `1001`"
            )
        );
    }

    #[test]
    fn a_user_s_first_subordinate_range_is_found_by_name_or_uid() {
        let passwd = "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n";
        assert_eq!(super::user_name(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(super::user_name(passwd, 7), None);
        let subuid = "bob:100000:65536\nalice:165536:65536\nalice:300000:10\n";
        assert_eq!(
            super::sub_range(subuid, Some("alice"), 1000),
            Some((165536, 65536))
        );
        assert_eq!(
            super::sub_range("1000:200000:5\n", None, 1000),
            Some((200000, 5))
        );
        assert_eq!(
            super::sub_range("alice:1:0\nbob:1:1\n", Some("alice"), 1000),
            None
        );
        assert!(super::is_initial("         0          0 4294967295\n"));
        assert_eq!(super::mapped_ids("0 1000 1\n1 165536 65536\n"), 65537);
        assert_eq!(super::mapped_ids("0 1000 1\n"), 1);
    }

    #[test]
    fn what_keeps_other_ids_out_of_a_rootless_lab_is_named() {
        let r = Some((100000, 65536));
        let say = |h, u, g| super::missing_sub_ids(h, [u, g], Some("alice"), 1000);
        assert_eq!(
            say([true, true], None, None),
            "/etc/subuid has no range for `alice` (uid 1000); /etc/subgid has no range for `alice` (uid 1000)"
        );
        assert_eq!(
            say([true, true], r, None),
            "/etc/subgid has no range for `alice` (uid 1000)"
        );
        let m = say([false, true], r, r);
        assert!(
            m.contains("you have a range in /etc/subuid and /etc/subgid, but newuidmap is not installed (Debian package uidmap"),
            "{m}"
        );
        let m = say([false, false], None, r);
        assert!(
            m.contains("/etc/subuid has no range")
                && m.contains("newuidmap and newgidmap are not installed"),
            "{m}"
        );
        let m = super::missing_sub_ids([true, true], [None, r], None, 7);
        assert!(m.contains("no range for uid 7"), "{m}");
    }

    #[test]
    fn the_hint_names_the_knob_that_forbids_user_namespaces() {
        let v =
            |a: &str, b: &str, c: &str| [a, b, c].map(|s| (!s.is_empty()).then(|| s.to_string()));
        assert!(userns_hint(&v("0", "", "")).contains("user.max_user_namespaces"));
        assert!(userns_hint(&v("100", "", "")).is_empty());
        assert!(userns_hint(&v("100", "0", "")).contains("unprivileged_userns_clone"));
        assert!(userns_hint(&v("100", "1", "1")).contains("apparmor"));
        assert_eq!(userns_hint(&v("100", "", "0")), "");
    }
}
