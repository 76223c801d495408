//! What nslab tells a node's init: everything it needs to set the node up and supervise
//! its processes, written as JSON next to the lab's state before the init starts.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::plan::node::{
    MountSpec, NodeStart, PrivateSpec, ProcessSpec, ReadySpec, lab_hosts, needs_init, node_start,
    own_hosts,
};

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
    /// The hierarchies of those groups, which a node with a mount namespace (and so a
    /// cgroup namespace) sees under its `/sys/fs/cgroup`.
    #[serde(default)]
    pub cgroup_views: Vec<super::cgroup::View>,
    /// Where the shim records the init's pid and start time.
    pub pid_file: PathBuf,
    /// The node's named network namespace (the init runs in nslab's host context's
    /// netns directory, whatever its own environment says).
    pub netns: PathBuf,
    /// The lab's mount template, which a node with a mount namespace copies (with root
    /// and rootless alike); `None` copies the namespace of the process that starts it.
    pub mount_template: Option<PathBuf>,
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

/// The init's configuration, resolving what the plan leaves to apply.
pub fn config(
    start: &NodeStart,
    paths: &super::NodePaths,
    netns: PathBuf,
    cgroups: super::cgroup::Groups,
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
        netns,
        mount_template: Some(paths.mount_template()),
        owners,
        cgroups: cgroups.procs,
        cgroup_views: cgroups.views,
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
