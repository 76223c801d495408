//! Processes of a node without a pid namespace that its init did not stop: daemons started
//! by `nslab exec` (their parent is on the host), or left behind by an init that was
//! killed. Without a pid namespace nothing ends them with the init, and one that ran
//! `unshare -n` is not in the node's network namespace either, so the namespace sweep at
//! the end of `down` misses it.
//!
//! They are found by what they cannot shed without asking for it: the namespaces the
//! node's init made for it (network always; uts, mount, ipc as its `isolation:` says; a
//! process has to unshare every one of them to leave them all) and the node's cgroups.
//! Never by name, and never by a namespace the init merely shares with whoever ran `up`:
//! run from another namespace (`unshare -u`, a service with `ProtectHostname=`), `down`
//! would otherwise take the host's for the node's and stop every process in it. Each
//! gets SIGTERM
//! through a pidfd (so a reused pid is never signalled), the node's grace period, then
//! SIGKILL, and is confirmed gone.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::nodes::{kernel_threads, proc_link};

/// The namespace kinds a stray can be recognised by, with their CLONE_NEW* flags (pid is
/// not one: a node with a pid namespace never has strays, its processes die with its
/// init).
const KINDS: [(&str, libc::c_int); 5] = [
    ("mnt", libc::CLONE_NEWNS),
    ("uts", libc::CLONE_NEWUTS),
    ("ipc", libc::CLONE_NEWIPC),
    ("net", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
];

/// What marks the processes of one node.
#[derive(Debug, Clone)]
pub struct Identity {
    pub node: String,
    pub grace: Duration,
    /// Inodes of the init's namespaces that are not ours (namespace inodes are unique
    /// across kinds).
    namespaces: HashSet<u64>,
    /// The `cgroup.procs` files of the node's cgroups.
    cgroups: Vec<PathBuf>,
}

fn ns_inode(proc_dir: &std::fs::File, pid: u32, kind: &str) -> Option<u64> {
    let mut buf = [0u8; 64];
    let link = proc_link(proc_dir, pid, &format!("ns/{kind}"), &mut buf).ok()?;
    let inner = link.split(|&b| b == b'[').nth(1)?.strip_suffix(b"]")?;
    std::str::from_utf8(inner).ok()?.parse().ok()
}

/// This process's own namespaces, read once for all the nodes `down` stops (a lab of
/// 1,000 nodes would otherwise read the same links a thousand times).
pub struct Ours {
    proc_dir: std::fs::File,
    pid: Option<u64>,
    kinds: [Option<u64>; KINDS.len()],
}

impl Ours {
    pub fn read() -> Option<Ours> {
        let proc_dir = std::fs::File::open("/proc").ok()?;
        let me = std::process::id();
        Some(Ours {
            pid: ns_inode(&proc_dir, me, "pid"),
            kinds: KINDS.map(|(k, _)| ns_inode(&proc_dir, me, k)),
            proc_dir,
        })
    }
}

/// The identity of the node whose init is `init`, or `None` when the init has a pid
/// namespace of its own (everything in it dies with the init) or is gone. `own` are the
/// namespaces the init made for the node (CLONE_NEW* flags, from its pid file): only
/// those, and only where they differ from ours, mark the node's processes.
pub fn identity(
    ours: &Ours,
    node: &str,
    init: i32,
    grace: Duration,
    own: libc::c_int,
    cgroups: impl FnOnce() -> Vec<PathBuf>,
) -> Option<Identity> {
    let proc_dir = &ours.proc_dir;
    let init = u32::try_from(init).ok()?;
    // The init was cloned into the pid namespace it made: no need to read its link (one
    // /proc lookup per node, on the path every `down` waits for).
    if own & libc::CLONE_NEWPID != 0 || ns_inode(proc_dir, init, "pid")? != ours.pid? {
        return None;
    }
    let namespaces: HashSet<u64> = KINDS
        .iter()
        .zip(ours.kinds)
        .filter(|((_, flag), _)| own & flag != 0)
        .filter_map(|((k, _), mine)| {
            let theirs = ns_inode(proc_dir, init, k)?;
            (Some(theirs) != mine).then_some(theirs)
        })
        .collect();
    Some(Identity {
        node: node.to_string(),
        grace,
        namespaces,
        cgroups: cgroups(),
    })
}

impl Identity {
    fn owns(&self, proc_dir: &std::fs::File, pid: u32) -> bool {
        KINDS
            .iter()
            .any(|(k, _)| ns_inode(proc_dir, pid, k).is_some_and(|i| self.namespaces.contains(&i)))
    }

    fn cgroup_members(&self) -> impl Iterator<Item = u32> + '_ {
        self.cgroups.iter().flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
    }
}

/// Every live process that belongs to one of the nodes: (pid, index into `ids`). Each
/// process's namespace links are read once and looked up among every node's.
fn find(ids: &[Identity]) -> Vec<(u32, usize)> {
    let Ok(proc_dir) = std::fs::File::open("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    let mut found: Vec<(u32, usize)> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        found.extend(id.cgroup_members().map(|p| (p, i)));
    }
    let owner: HashMap<u64, usize> = ids
        .iter()
        .enumerate()
        .flat_map(|(i, id)| id.namespaces.iter().map(move |n| (*n, i)))
        .collect();
    if !owner.is_empty()
        && let Ok(dir) = std::fs::read_dir("/proc")
    {
        let kthreads = kernel_threads(&proc_dir);
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if pid == me || kthreads.binary_search(&pid).is_ok() {
                continue;
            }
            let node = KINDS
                .iter()
                .find_map(|(k, _)| owner.get(&ns_inode(&proc_dir, pid, k)?).copied());
            if let Some(i) = node {
                found.push((pid, i));
            }
        }
    }
    found.retain(|(p, _)| *p != me);
    found.sort_unstable();
    found.dedup_by_key(|(p, _)| *p);
    found
}

/// A process pinned by a pidfd: signals reach it and no later owner of its pid.
struct Pinned {
    pid: u32,
    node: usize,
    fd: OwnedFd,
}

impl Pinned {
    /// Opens a pidfd and checks the process still belongs to the node now that it is
    /// pinned (the pid may have been reused since the scan).
    fn open(pid: u32, node: usize, ids: &[Identity]) -> Option<Pinned> {
        let fd = crate::sys::pidfd::open(pid as libc::pid_t).ok()?;
        let proc_dir = std::fs::File::open("/proc").ok()?;
        let id = &ids[node];
        let still = id.owns(&proc_dir, pid) || id.cgroup_members().any(|p| p == pid);
        still.then_some(Pinned { pid, node, fd })
    }

    fn signal(&self, sig: libc::c_int) {
        crate::sys::pidfd::signal(self.fd.as_fd(), sig);
    }
}

/// Waits until every pinned process has exited or `deadline` passes; returns the others.
fn wait_exit(running: Vec<Pinned>, deadline: Instant) -> Vec<Pinned> {
    crate::sys::pidfd::wait_exit(running, deadline, |p| p.fd.as_fd())
}

/// Stops every stray of the nodes: SIGTERM, the longest grace of their nodes, SIGKILL,
/// and a last look. A few rounds, since a stray may fork while it stops. Returns what
/// would not die.
pub fn stop(lab: &str, ids: &[Identity]) -> Vec<String> {
    if ids.is_empty() {
        return Vec::new();
    }
    for _round in 0..3 {
        let pinned: Vec<Pinned> = find(ids)
            .into_iter()
            .filter_map(|(pid, i)| Pinned::open(pid, i, ids))
            .collect();
        if pinned.is_empty() {
            return Vec::new();
        }
        let grace = pinned
            .iter()
            .map(|p| ids[p.node].grace)
            .max()
            .unwrap_or_default();
        for p in &pinned {
            p.signal(libc::SIGTERM);
        }
        let stubborn = wait_exit(pinned, Instant::now() + grace);
        for p in &stubborn {
            p.signal(libc::SIGKILL);
        }
        let left = wait_exit(stubborn, Instant::now() + Duration::from_secs(2));
        if !left.is_empty() {
            return left
                .iter()
                .map(|p| {
                    format!(
                        "lab {lab}, node {}: process {} would not die",
                        ids[p.node].node, p.pid
                    )
                })
                .collect();
        }
    }
    find(ids)
        .iter()
        .map(|(pid, i)| {
            format!(
                "lab {lab}, node {}: process {pid} kept coming back while it was stopped",
                ids[*i].node
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_never_a_stray() {
        let me = std::process::id() as i32;
        // Our own pid namespace, and no namespace that differs from ours.
        let ours = Ours::read().unwrap();
        let all = KINDS.iter().fold(0, |a, (_, f)| a | f);
        let id =
            identity(&ours, "x", me, Duration::ZERO, all, Vec::new).expect("same pid namespace");
        assert!(id.namespaces.is_empty());
        assert!(find(std::slice::from_ref(&id)).is_empty());
    }

    #[test]
    fn only_the_namespaces_the_init_made_mark_a_node() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: unsharing a uts namespace needs root");
            return;
        }
        // A child in a uts namespace of its own: its other namespaces are ours. It only
        // unshares, signals readiness by a pipe, and sleeps.
        let (r, w) = nix::unistd::pipe().unwrap();
        let child = crate::sys::child::testing::fork_child(|| {
            let ok = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUTS).is_ok();
            let _ = nix::unistd::write(&w, &[u8::from(ok)]);
            nix::unistd::pause();
            0
        });
        drop(w);
        let mut b = [0u8; 1];
        let got = nix::unistd::read(&r, &mut b);
        let ours = Ours::read().unwrap();
        let uts = |own| identity(&ours, "x", child.as_raw(), Duration::ZERO, own, Vec::new);
        let (made, shared) = (uts(libc::CLONE_NEWUTS), uts(libc::CLONE_NEWNET));
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(child, None);
        assert_eq!(
            (got.ok(), b[0]),
            (Some(1), 1),
            "the child could not unshare"
        );
        assert_eq!(made.expect("same pid namespace").namespaces.len(), 1);
        // Told it made only its network namespace (ours here), nothing marks it.
        assert!(shared.expect("same pid namespace").namespaces.is_empty());
    }

    #[test]
    fn namespace_links_parse_for_every_kind() {
        let proc_dir = std::fs::File::open("/proc").unwrap();
        for k in KINDS.iter().map(|(k, _)| k).chain(std::iter::once(&"pid")) {
            assert!(ns_inode(&proc_dir, std::process::id(), k).is_some(), "{k}");
        }
        assert_eq!(ns_inode(&proc_dir, u32::MAX, "net"), None);
    }
}
