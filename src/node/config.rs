//! What nslab tells a node's init: everything it needs to set the node up and supervise
//! its processes, written as JSON next to the lab's state before the init starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{Node, Ready, Topology};
use crate::spec::raw::{NsKind, RestartPolicy};

/// A node as the plan describes it: pure data, derived from the topology alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStart {
    pub lab: String,
    pub node: String,
    pub netns: String,
    pub uts: bool,
    pub mnt: bool,
    pub pid: bool,
    pub ipc: bool,
    /// The `/etc/hosts` lines for the node's own addresses; the lab-wide list comes from
    /// one file shared by every node (a copy per node would make the plan O(N²)).
    pub own_hosts: String,
    pub mounts: Vec<MountSpec>,
    /// Private directories, with owners as written (`frr`, `frr:frr`, `100:101`).
    pub private: Vec<PrivateSpec>,
    pub processes: Vec<ProcessSpec>,
    /// Whether the node has its own cgroup (`limits:`).
    pub cgroup: bool,
    /// The lab's cap on each process's log (left out of the plan when it is the default).
    #[serde(default, skip_serializing_if = "crate::model::LogPolicy::is_default")]
    pub logs: crate::model::LogPolicy,
}

impl NodeStart {
    /// The longest stop grace period of the node's processes.
    pub fn grace_ms(&self) -> u64 {
        self.processes
            .iter()
            .map(|p| p.stop_timeout_ms)
            .max()
            .unwrap_or(0)
    }
}

/// What the init reads: the plan's [`NodeStart`] plus what only apply knows (paths in the
/// lab's state, owners resolved to ids, the cgroups to join).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeConfig {
    pub start: NodeStart,
    /// Where the init listens for nslab.
    pub control: PathBuf,
    /// The lab's `/etc/hosts`, shared by its nodes.
    pub hosts: PathBuf,
    /// Directory for process logs (opened before /run is covered by a tmpfs).
    pub logs: PathBuf,
    /// Owners of private directories, resolved: (uid, gid) per entry of `start.private`.
    pub owners: Vec<Option<(u32, u32)>>,
    /// cgroup.procs files to join before anything starts.
    pub cgroups: Vec<PathBuf>,
    /// Where the shim records the init's pid and start time.
    pub pid_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountSpec {
    pub source: PathBuf,
    pub target: String,
    pub readonly: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrivateSpec {
    pub path: String,
    pub owner: Option<String>,
    pub mode: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessSpec {
    pub name: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    pub restart: RestartPolicy,
    pub ready: Option<ReadySpec>,
    pub stop_timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadySpec {
    Cmd {
        argv: Vec<String>,
        timeout_ms: u64,
        interval_ms: u64,
    },
    Tcp {
        port: u16,
        timeout_ms: u64,
        interval_ms: u64,
    },
}

impl ReadySpec {
    pub fn timeout(&self) -> Duration {
        match self {
            ReadySpec::Cmd { timeout_ms, .. } | ReadySpec::Tcp { timeout_ms, .. } => {
                Duration::from_millis(*timeout_ms)
            }
        }
    }
}

/// Whether a node needs an init at all: a net-only node without processes, commands,
/// mounts or limits is just its network namespace.
pub fn needs_init(n: &Node) -> bool {
    n.isolation.iter().any(|k| *k != NsKind::Net)
        || !n.processes.is_empty()
        || !n.exec.is_empty()
        || !n.mounts.is_empty()
        || !n.private.is_empty()
        || !n.limits.is_empty()
}

/// The lab's `/etc/hosts`: localhost, and every node by its loopback or first address
/// (both families). Each node adds its own addresses ([`own_hosts`]).
pub fn lab_hosts(t: &Topology) -> String {
    let mut out = String::with_capacity(64 + t.nodes.len() * 32);
    out.push_str("# written by nslab for lab `");
    out.push_str(&t.lab);
    out.push_str("`\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (i, n) in t.nodes.iter().enumerate() {
        for v6 in [false, true] {
            if let Some(a) = t.primary_address(i, v6) {
                out.push_str(&format!("{a}\t{}\n", n.name));
            }
        }
    }
    out
}

/// Every address of one node under its own name.
pub fn own_hosts(t: &Topology, node: usize) -> String {
    let me = &t.nodes[node];
    let mut out = format!("# this node, {}\n", me.name);
    for a in me
        .loopback
        .iter()
        .chain(me.interfaces.iter().flat_map(|i| i.addresses.iter()))
    {
        out.push_str(&format!("{}\t{}\n", a.addr(), me.name));
    }
    out
}

pub const RESOLV_CONF: &str = "# written by nslab: the lab has no DNS; node names resolve through /etc/hosts\noptions timeout:1 attempts:1\n";

/// Resolves an owner like `frr`, `frr:frr` or `100:101` to ids, from `/etc/passwd` and
/// `/etc/group` as container runtimes do, not through NSS: nslab is a static binary, and
/// a static glibc cannot load NSS modules (the lookup crashed). Lab daemons' users are
/// local system users.
pub fn owner_ids(owner: &str) -> Result<(u32, u32), String> {
    owner_ids_in(owner, Path::new("/etc/passwd"), Path::new("/etc/group"))
}

fn owner_ids_in(owner: &str, passwd: &Path, group: &Path) -> Result<(u32, u32), String> {
    let (user, group_name) = match owner.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (owner, None),
    };
    if user.is_empty() || group_name.is_some_and(str::is_empty) {
        return Err(format!("owner `{owner}` names no user or no group"));
    }
    let (uid, default_gid) = match user.parse::<u32>() {
        Ok(uid) => (uid, uid),
        Err(_) => {
            let entry = db_entry(passwd, user)?.ok_or(format!("no user `{user}` on this host"))?;
            // name:password:uid:gid:...
            let id = |i: usize| entry.get(i).and_then(|f| f.parse::<u32>().ok());
            match (id(2), id(3)) {
                (Some(u), Some(g)) => (u, g),
                _ => {
                    return Err(format!(
                        "user `{user}` has a malformed {}",
                        passwd.display()
                    ));
                }
            }
        }
    };
    let gid = match group_name {
        None => default_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let entry = db_entry(group, g)?.ok_or(format!("no group `{g}` on this host"))?;
                // name:password:gid:members
                entry
                    .get(2)
                    .and_then(|f| f.parse::<u32>().ok())
                    .ok_or(format!("group `{g}` has a malformed {}", group.display()))?
            }
        },
    };
    Ok((uid, gid))
}

/// The colon-separated fields of the line for `name` in a passwd-style file.
fn db_entry(path: &Path, name: &str) -> Result<Option<Vec<String>>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot look up `{name}` in {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(|l| l.split(':').collect::<Vec<&str>>())
        .find(|f| f.first() == Some(&name))
        .map(|f| f.into_iter().map(str::to_string).collect()))
}

/// The plan's description of one node.
pub fn node_start(t: &Topology, node: usize) -> NodeStart {
    let n = &t.nodes[node];
    let has = |k: NsKind| n.isolation.contains(&k);
    let processes = n
        .processes
        .iter()
        .map(|p| {
            let mut env = n.env.clone();
            env.extend(p.env.iter().cloned());
            ProcessSpec {
                name: p.name.clone(),
                argv: p.cmd.direct_argv(),
                env,
                cwd: p.cwd.clone(),
                restart: p.restart,
                ready: p.ready.as_ref().map(|r| match &r.probe {
                    Ready::Cmd(c) => ReadySpec::Cmd {
                        argv: c.direct_argv(),
                        timeout_ms: r.timeout.as_millis() as u64,
                        interval_ms: r.interval.as_millis() as u64,
                    },
                    Ready::Tcp(port) => ReadySpec::Tcp {
                        port: *port,
                        timeout_ms: r.timeout.as_millis() as u64,
                        interval_ms: r.interval.as_millis() as u64,
                    },
                }),
                stop_timeout_ms: p.stop_timeout.as_millis() as u64,
            }
        })
        .collect();
    NodeStart {
        lab: t.lab.clone(),
        node: n.name.clone(),
        netns: n.netns.clone(),
        uts: has(NsKind::Uts),
        mnt: has(NsKind::Mnt),
        pid: has(NsKind::Pid),
        ipc: has(NsKind::Ipc),
        own_hosts: own_hosts(t, node),
        mounts: n
            .mounts
            .iter()
            .map(|m| MountSpec {
                source: m.source.clone(),
                target: m.target.clone(),
                readonly: m.readonly,
            })
            .collect(),
        private: n
            .private
            .iter()
            .map(|p| PrivateSpec {
                path: p.path.clone(),
                owner: p.owner.clone(),
                mode: p.mode,
            })
            .collect(),
        processes,
        cgroup: !n.limits.is_empty(),
        logs: t.logs,
    }
}

/// The init's configuration, resolving what the plan leaves to apply.
pub fn config(
    start: &NodeStart,
    paths: &super::NodePaths,
    cgroups: Vec<PathBuf>,
) -> Result<NodeConfig, String> {
    let mut owners = Vec::new();
    for p in &start.private {
        owners.push(match &p.owner {
            Some(o) => Some(owner_ids(o).map_err(|e| format!("`private` {}: {e}", p.path))?),
            None => None,
        });
    }
    Ok(NodeConfig {
        control: paths.control(&start.node),
        hosts: paths.hosts(),
        logs: paths.logs.join(&start.node),
        pid_file: paths.pid_file(&start.node),
        owners,
        cgroups,
        start: start.clone(),
    })
}

#[cfg(test)]
mod owner_tests {
    use super::owner_ids;

    #[test]
    fn owners_are_read_from_passwd_and_group_files() {
        let dir = std::env::temp_dir().join(format!("nslab-owners-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (passwd, group) = (dir.join("passwd"), dir.join("group"));
        std::fs::write(
            &passwd,
            "root:x:0:0:root:/root:/bin/sh\nfrr:x:102:105:FRR:/nonexistent:/usr/sbin/nologin\nbad:x:zz:1::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(&group, "root:x:0:\nfrrvty:x:106:frr\nfrr:x:105:\n").unwrap();
        let ids = |o: &str| super::owner_ids_in(o, &passwd, &group);
        assert_eq!(ids("frr"), Ok((102, 105)));
        assert_eq!(ids("frr:frrvty"), Ok((102, 106)));
        assert_eq!(ids("frr:7"), Ok((102, 7)));
        assert!(ids("fr").unwrap_err().contains("no user `fr`"));
        assert!(ids("frr:vty").unwrap_err().contains("no group `vty`"));
        assert!(ids("bad").unwrap_err().contains("malformed"));
        assert!(ids("").unwrap_err().contains("names no user"));
        assert!(
            ids("frr:")
                .unwrap_err()
                .contains("names no user or no group")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn owners_resolve_by_name_or_number() {
        assert_eq!(owner_ids("root"), Ok((0, 0)));
        assert_eq!(owner_ids("root:root"), Ok((0, 0)));
        assert_eq!(owner_ids("100:101"), Ok((100, 101)));
        assert_eq!(owner_ids("100"), Ok((100, 100)));
        let e = owner_ids("nslab-no-such-user").unwrap_err();
        assert!(e.contains("no user `nslab-no-such-user`"), "{e}");
        let e = owner_ids("root:nslab-no-such-group").unwrap_err();
        assert!(e.contains("no group `nslab-no-such-group`"), "{e}");
    }
}
