//! Per-node cgroups for `limits:`. Each controller (memory, cpu, pids) is used from cgroup
//! v2 when the v2 hierarchy has it, and from its v1 hierarchy otherwise; hybrid hosts
//! (v2 mounted beside v1 controllers, like this one) are common. Groups live under
//! `nslab/lab-<lab>/node-<node>` in each hierarchy (see [`relative`]) and are emptied
//! and removed at `down`: at the hierarchy's root for a root lab, and below the cgroup the
//! lab's holder runs in for a rootless one (see [`place_below`]), which the user can
//! write to only when it is delegated.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::model::Limits;

const CPU_PERIOD_US: u64 = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Hierarchy {
    V2(PathBuf),
    V1 {
        mount: PathBuf,
        controllers: Vec<String>,
    },
}

fn hierarchies() -> Vec<Hierarchy> {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [_, target, fstype, opts, ..] = f.as_slice() else {
            continue;
        };
        match *fstype {
            "cgroup2" => out.push(Hierarchy::V2(PathBuf::from(target))),
            "cgroup" => out.push(Hierarchy::V1 {
                mount: PathBuf::from(target),
                controllers: opts.split(',').map(str::to_string).collect(),
            }),
            _ => {}
        }
    }
    out
}

fn v2_has(root: &Path, controller: &str) -> bool {
    let enabled = |f: &str| {
        std::fs::read_to_string(root.join(f))
            .map(|s| s.split_whitespace().any(|c| c == controller))
            .unwrap_or(false)
    };
    // The root must already delegate it: nslab never changes the host's root cgroup.
    enabled("cgroup.controllers") && enabled("cgroup.subtree_control")
}

/// The cgroup membership (`/proc/PID/cgroup` text) of a rootless lab's holder; unset for
/// a root lab. A process-wide setting, because every command works on one lab.
static BELOW: RwLock<Option<String>> = RwLock::new(None);

/// Puts this process's groups below the cgroups that `membership` (the text of a
/// `/proc/PID/cgroup`) names, in each hierarchy: a rootless lab's, under its holder's.
pub fn place_below(membership: String) {
    *BELOW.write().unwrap_or_else(|e| e.into_inner()) = Some(membership);
}

fn below() -> Option<String> {
    BELOW.read().unwrap_or_else(|e| e.into_inner()).clone()
}

fn mount_of(h: &Hierarchy) -> &Path {
    match h {
        Hierarchy::V2(root) | Hierarchy::V1 { mount: root, .. } => root,
    }
}

/// The path a membership line gives for `h`, relative to its mount: `0::PATH` for v2, and
/// for v1 the line whose controllers are those the hierarchy was mounted with. `None`
/// also when the path has a `..` or `.` component: a process in another cgroup namespace
/// sees its group as `/../x`, which joined to the mount would climb out of it.
fn own_path(h: &Hierarchy, membership: &str) -> Option<PathBuf> {
    let path = membership.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (id, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        let fits = match h {
            Hierarchy::V2(_) => id == "0" && ctrls.is_empty(),
            Hierarchy::V1 { controllers, .. } => {
                !ctrls.is_empty() && ctrls.split(',').all(|c| controllers.iter().any(|m| m == c))
            }
        };
        fits.then_some(path.trim_start_matches('/'))
    })?;
    let climbs = path.split('/').any(|c| c == ".." || c == ".");
    (!climbs).then(|| PathBuf::from(path))
}

/// The directory nslab's levels go below in `h`: its root for a root lab, the holder's
/// cgroup for a rootless one (`None` when the holder is in no group of it, or in the
/// root one, whose `nslab/` is root labs').
fn base(h: &Hierarchy) -> Option<PathBuf> {
    match below() {
        None => Some(mount_of(h).to_path_buf()),
        Some(m) => own_path(h, &m)
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| mount_of(h).join(p)),
    }
}

/// Whether a rootless lab can have a `controller` group: the cgroup it would go below
/// (the holder's, or this process's when no holder is set yet, as a holder started now
/// inherits it) must be writable by the user, as systemd's `Delegate=yes` or a `chown`
/// by the admin makes it. The error names that cgroup.
pub fn delegated(controller: &str) -> Result<(), String> {
    let membership = match below() {
        Some(m) => m,
        None => std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("/proc/self/cgroup: {e}"))?,
    };
    let h = placement(controller, &hierarchies())
        .ok_or_else(|| format!("this kernel has no usable `{controller}` cgroup controller"))?;
    let own = own_path(&h, &membership).ok_or_else(|| {
        format!("your processes are in no cgroup of the `{controller}` hierarchy")
    })?;
    let dir = mount_of(&h).join(&own);
    if own.as_os_str().is_empty() {
        return Err(format!(
            "your processes are in the root cgroup of the `{controller}` hierarchy, {}, where root labs keep theirs",
            dir.display()
        ));
    }
    let flags = nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK;
    nix::unistd::access(&dir, flags).map_err(|e| {
        format!(
            "your cgroup in the `{controller}` hierarchy, {}, is not writable by you ({})",
            dir.display(),
            e.desc()
        )
    })?;
    match h {
        Hierarchy::V2(_) => {
            let given = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
            Err(v2_refusal(&dir, controller, &given))
        }
        Hierarchy::V1 { .. } => Ok(()),
    }
}

/// Why a rootless lab cannot put `controller` groups below `dir`, the user's own cgroup
/// in the cgroup v2 tree (`given`: its `cgroup.controllers`). Either the controller was
/// not handed down to it, or (the usual case, also under systemd's `Delegate=yes`) it
/// holds processes, nslab's own among them: the kernel enables a controller for a
/// cgroup's children only in a cgroup without processes of its own (cgroup v2's "no
/// internal processes" rule), so the nodes' groups could not have it.
fn v2_refusal(dir: &Path, controller: &str, given: &str) -> String {
    if !given.split_whitespace().any(|c| c == controller) {
        return format!(
            "your cgroup {} (cgroup v2) was not given the `{controller}` controller: its cgroup.controllers lacks it, so the cgroup above it does not delegate it (`+{controller}` in that one's cgroup.subtree_control)",
            dir.display()
        );
    }
    format!(
        "your cgroup {} (cgroup v2) holds your processes, nslab's among them, and cgroup v2 enables `{controller}` for a cgroup's children only in a cgroup without processes of its own; a rootless lab's node groups under cgroup v2 are not supported yet",
        dir.display()
    )
}

/// Where each controller lives on this host.
fn placement(controller: &str, all: &[Hierarchy]) -> Option<Hierarchy> {
    for h in all {
        if let Hierarchy::V2(root) = h
            && v2_has(root, controller)
        {
            return Some(h.clone());
        }
    }
    all.iter()
        .find(|h| matches!(h, Hierarchy::V1 { controllers, .. } if controllers.iter().any(|c| c == controller)))
        .cloned()
}

/// The lab's level below `nslab/`.
fn lab_level(lab: &str) -> PathBuf {
    Path::new("nslab").join(format!("lab-{lab}"))
}

/// A node's group, relative to a hierarchy's root. A group's directory also holds its
/// control files: `tasks`, `notify_on_release`, `release_agent` (v1) and
/// `<controller>.<file>` (`cgroup.procs`, `memory.max`, `pids.max`, ...). A node or lab
/// named like one would collide with a file of its parent: `mkdir` fails, and `down`
/// would try to remove a file. The prefixes hold a `-`, which no control file of either
/// version has, so every name the rules allow is safe, always at the same path for
/// `up`, `down`, `exec` and `ps`.
pub fn relative(lab: &str, node: &str) -> PathBuf {
    lab_level(lab).join(format!("node-{node}"))
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("{}: {e}", path.display()))
}

/// Creates the node's groups with its limits, and with `outside` a group in every other
/// hierarchy too (see [`create_outside`]); returns the `cgroup.procs` files to join.
pub fn create(
    lab: &str,
    node: &str,
    limits: &Limits,
    outside: bool,
) -> Result<Vec<PathBuf>, String> {
    let mut procs = create_limited(lab, node, limits)?;
    if outside {
        for p in create_outside(lab, node)? {
            if !procs.contains(&p) {
                procs.push(p);
            }
        }
    }
    Ok(procs)
}

/// The node's group in every hierarchy, limits or none: a container runtime kills what
/// is in the container's cgroup (v2's `cgroup.kill`, or every pid of a v1 group, as
/// runc's `signalAllProcesses` does), and an init in a group of its own in each
/// hierarchy is in none of the caller's. A v1 `cpuset` group starts with no CPUs and no
/// memory nodes, where a task cannot join, so each new level copies its parent's.
fn create_outside(lab: &str, node: &str) -> Result<Vec<PathBuf>, String> {
    let mut procs = Vec::new();
    for h in hierarchies() {
        let Some(top) = base(&h) else { continue };
        let cpuset = matches!(&h, Hierarchy::V1 { controllers, .. } if controllers.iter().any(|c| c == "cpuset"));
        // Another lab's `down` removes the shared `nslab` level once it is empty, which
        // it is between our making it and making our own level below: a level that
        // vanished under us is made again, a few times.
        let mut tries = 0;
        let leaf = loop {
            match create_levels(&top, &relative(lab, node), cpuset) {
                Err((_, true)) if tries < 3 => tries += 1,
                Err((e, _)) => return Err(e),
                Ok(leaf) => break leaf,
            }
        };
        procs.push(leaf.join("cgroup.procs"));
    }
    Ok(procs)
}

/// Makes each level of `rel` below `top` that is missing (a new v1 `cpuset` level copies
/// its parent's CPUs and memory nodes); the leaf, or the error and whether it was a
/// parent that vanished meanwhile.
fn create_levels(top: &Path, rel: &Path, cpuset: bool) -> Result<PathBuf, (String, bool)> {
    let mut cur = top.to_path_buf();
    for part in rel.components() {
        let parent = cur.clone();
        cur = cur.join(part);
        match std::fs::create_dir(&cur) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                let vanished = e.kind() == std::io::ErrorKind::NotFound;
                return Err((format!("{}: {e}", cur.display()), vanished));
            }
        }
        // Also on a level that exists: another lab may have made it a moment ago and
        // not filled it yet, and a task cannot join an empty cpuset (ENOSPC).
        if cpuset {
            fill_cpuset(&parent, &cur)?;
        }
    }
    Ok(cur)
}

/// Copies the parent's CPUs and memory nodes into a v1 `cpuset` level that has none.
fn fill_cpuset(parent: &Path, dir: &Path) -> Result<(), (String, bool)> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let read = |p: &Path| {
            std::fs::read_to_string(p.join(f)).map_err(|e| {
                let vanished = e.kind() == std::io::ErrorKind::NotFound;
                (format!("{}: {e}", p.join(f).display()), vanished)
            })
        };
        if read(dir)?.trim().is_empty() {
            write(&dir.join(f), read(parent)?.trim()).map_err(|e| (e, false))?;
        }
    }
    Ok(())
}

/// The node's groups in the hierarchies of its limits, with those limits.
fn create_limited(lab: &str, node: &str, limits: &Limits) -> Result<Vec<PathBuf>, String> {
    let all = hierarchies();
    let rel = relative(lab, node);
    let mut wanted: Vec<(&str, Hierarchy)> = Vec::new();
    for (ctrl, needed) in [
        ("memory", limits.memory.is_some()),
        ("cpu", limits.cpu.is_some()),
        ("pids", limits.pids.is_some()),
    ] {
        if !needed {
            continue;
        }
        let h = placement(ctrl, &all).ok_or_else(|| {
            format!("this kernel has no usable `{ctrl}` cgroup controller (neither in cgroup v2 nor mounted as v1); remove the `{ctrl}` limit")
        })?;
        wanted.push((ctrl, h));
    }
    let mut procs = Vec::new();
    let mut dirs: Vec<PathBuf> = Vec::new();
    for (ctrl, h) in &wanted {
        let top = base(h)
            .ok_or_else(|| format!("the lab's holder is in no cgroup of the `{ctrl}` hierarchy"))?;
        let dir = top.join(&rel);
        if !dirs.contains(&dir) {
            if let Hierarchy::V2(_) = h {
                // Delegate the controllers down our own levels, never the host's root
                // (a rootless lab's base is the user's own group: enabling it there is
                // the user's to do, and may be refused while processes are in it).
                let mut cur = top.clone();
                if below().is_some() {
                    let _ = write(&cur.join("cgroup.subtree_control"), &format!("+{ctrl}"));
                }
                for part in lab_level(lab).components() {
                    cur = cur.join(part);
                    std::fs::create_dir_all(&cur).map_err(|e| format!("{}: {e}", cur.display()))?;
                    let _ = write(&cur.join("cgroup.subtree_control"), &format!("+{ctrl}"));
                }
            }
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            procs.push(dir.join("cgroup.procs"));
            dirs.push(dir.clone());
        } else if let Hierarchy::V2(_) = h {
            let _ = write(
                &dir.parent()
                    .expect("lab level")
                    .join("cgroup.subtree_control"),
                &format!("+{ctrl}"),
            );
        }
        let v2 = matches!(h, Hierarchy::V2(_));
        match *ctrl {
            "memory" => {
                let bytes = limits.memory.expect("wanted").to_string();
                if v2 {
                    write(&dir.join("memory.max"), &bytes)?;
                    let _ = write(&dir.join("memory.swap.max"), "0");
                } else {
                    write(&dir.join("memory.limit_in_bytes"), &bytes)?;
                    // Without swap accounting the file is absent; the limit alone holds.
                    let _ = write(&dir.join("memory.memsw.limit_in_bytes"), &bytes);
                }
            }
            "cpu" => {
                let quota =
                    ((limits.cpu.expect("wanted") * CPU_PERIOD_US as f64).round() as u64).max(1000);
                if v2 {
                    write(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
                } else {
                    write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                    write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
            }
            "pids" => write(
                &dir.join("pids.max"),
                &limits.pids.expect("wanted").to_string(),
            )?,
            _ => unreachable!("only the three controllers above"),
        }
    }
    Ok(procs)
}

/// The nodes that have a group under the lab's level in any hierarchy, found by name
/// (for a `down` whose journal was lost); names that are not node names are left alone.
pub fn nodes_of(lab: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in hierarchies() {
        let Some(root) = base(&h) else { continue };
        let Ok(entries) = std::fs::read_dir(root.join(lab_level(lab))) else {
            continue;
        };
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            let Some(name) = file.strip_prefix("node-") else {
                continue;
            };
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            if is_dir
                && crate::model::names::check_node_name(name).is_ok()
                && !out.iter().any(|n| n == name)
            {
                out.push(name.to_string());
            }
        }
    }
    out.sort();
    out
}

/// A hierarchy the node has a group of its own in, as its init mounts it in the node: at
/// `/sys/fs/cgroup/<name>` (at `/sys/fs/cgroup` itself when `name` is `None`, a host with
/// cgroup v2 alone), where the node's cgroup namespace roots it at the node's group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub name: Option<String>,
    /// The v1 hierarchy's controllers (`memory`, `cpu,cpuacct`), as a mount names them;
    /// `None` for cgroup v2.
    pub controllers: Option<String>,
}

/// The node's groups: the `cgroup.procs` files its init joins and the hierarchies they
/// are in, as the node sees them.
#[derive(Debug, Default)]
pub struct Groups {
    pub procs: Vec<PathBuf>,
    pub views: Vec<View>,
}

/// The node's groups, wherever the hierarchies are mounted (the same search [`create`]
/// and [`remove`] make).
pub fn groups(lab: &str, node: &str) -> Groups {
    let rel = relative(lab, node);
    let known = known_controllers();
    let mut out = Groups::default();
    for h in hierarchies() {
        let Some(root) = base(&h) else { continue };
        let p = root.join(&rel).join("cgroup.procs");
        // Co-mounted v1 controllers show one group under several paths.
        if let Ok(real) = std::fs::canonicalize(&p)
            && !out.procs.contains(&real)
        {
            out.procs.push(real);
            out.views.push(view_of(&h, &known));
        }
    }
    out
}

/// The `cgroup.procs` files of the node's groups: the files the init joins.
pub fn procs_files(lab: &str, node: &str) -> Vec<PathBuf> {
    groups(lab, node).procs
}

/// The controllers the kernel has (`/proc/cgroups`), to tell them from a v1 mount's
/// other options (`rw`, `relatime`, `clone_children`).
fn known_controllers() -> Vec<String> {
    std::fs::read_to_string("/proc/cgroups")
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// How the node sees `h`: under its host name below `/sys/fs/cgroup` (the last
/// component of its mount point), with the controllers a mount of it must name.
fn view_of(h: &Hierarchy, known: &[String]) -> View {
    let mount = mount_of(h);
    let name = match mount.strip_prefix("/sys/fs/cgroup") {
        Ok(rest) if rest.as_os_str().is_empty() => None,
        _ => mount.file_name().map(|n| n.to_string_lossy().into_owned()),
    };
    let controllers = match h {
        Hierarchy::V2(_) => None,
        Hierarchy::V1 { controllers, .. } => Some(
            controllers
                .iter()
                .filter(|c| c.starts_with("name=") || known.contains(c))
                .cloned()
                .collect::<Vec<_>>()
                .join(","),
        ),
    };
    View { name, controllers }
}

/// Removes the node's groups from every hierarchy, and the lab's and nslab's levels when
/// they are empty. Groups that still hold a task are retried briefly (a process that was
/// just killed leaves its cgroup a moment later). Missing groups count as removed.
pub fn remove(lab: &str, node: &str) -> Result<(), String> {
    let rel = relative(lab, node);
    let mut errors = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    for h in hierarchies() {
        let Some(root) = base(&h) else { continue };
        let dir = root.join(&rel);
        if seen.contains(&dir) || !dir.exists() {
            continue;
        }
        seen.push(dir.clone());
        let mut last = None;
        let mut emptied = false;
        for _ in 0..50 {
            // Once its last task is gone (a task left would charge pages again).
            if !emptied {
                emptied = super::cgroupmem::empty(&dir);
            }
            match std::fs::remove_dir(&dir) {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    last = None;
                    break;
                }
                Err(e) => {
                    last = Some(e);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        }
        if let Some(e) = last {
            errors.push(format!("{}: {e}", dir.display()));
            continue;
        }
        // Empty parents go too; a busy one belongs to another node or lab.
        let _ = std::fs::remove_dir(root.join(lab_level(lab)));
        let _ = std::fs::remove_dir(root.join("nslab"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rootless_lab_under_cgroup_v2_is_told_what_its_cgroup_lacks() {
        let dir = Path::new("/sys/fs/cgroup/user.slice/user-1000.slice/run-r1.scope");
        let not_given = v2_refusal(dir, "memory", "cpu pids\n");
        assert!(
            not_given.contains("run-r1.scope (cgroup v2) was not given the `memory` controller")
                && not_given.contains("`+memory` in that one's cgroup.subtree_control"),
            "{not_given}"
        );
        let busy = v2_refusal(dir, "pids", "cpu pids\n");
        assert!(
            busy.contains("holds your processes") && busy.contains("not supported yet"),
            "{busy}"
        );
    }

    #[test]
    fn group_names_never_collide_with_control_files() {
        // Control files have no `-`; every level nslab names below `nslab/` has one.
        for node in [
            "tasks",
            "cgroup.procs",
            "memory.max",
            "pids.max",
            "cpu.max",
            "notify_on_release",
            "release_agent",
        ] {
            let rel = relative("tasks", node);
            assert_eq!(
                rel,
                Path::new("nslab/lab-tasks").join(format!("node-{node}"))
            );
            assert!(
                rel.components()
                    .skip(1)
                    .all(|c| c.as_os_str().to_string_lossy().contains('-')),
                "{}",
                rel.display()
            );
        }
    }

    #[test]
    fn a_membership_line_is_found_for_its_hierarchy() {
        let m = "9:name=systemd:/\n4:memory:/user/alice\n2:cpu,cpuacct:/user/alice/x\n0::/user.slice/u.scope\n";
        let v1 = |c: &[&str]| Hierarchy::V1 {
            mount: PathBuf::from("/sys/fs/cgroup/x"),
            controllers: c.iter().map(|s| s.to_string()).collect(),
        };
        let own = |h: &Hierarchy| own_path(h, m);
        assert_eq!(
            own(&v1(&["rw", "memory"])),
            Some(PathBuf::from("user/alice"))
        );
        assert_eq!(
            own(&v1(&["rw", "cpu", "cpuacct"])),
            Some(PathBuf::from("user/alice/x"))
        );
        assert_eq!(own(&v1(&["rw", "pids"])), None);
        assert_eq!(
            own(&Hierarchy::V2(PathBuf::from("/sys/fs/cgroup"))),
            Some(PathBuf::from("user.slice/u.scope"))
        );
    }

    #[test]
    fn a_membership_path_that_climbs_is_refused() {
        let v2 = Hierarchy::V2(PathBuf::from("/sys/fs/cgroup"));
        // As a process in another cgroup namespace is seen from this one.
        for m in [
            "0::/../../etc\n",
            "0::/..\n",
            "0::/user.slice/../../x\n",
            "0::/user.slice/./u.scope\n",
            "0::/.\n",
        ] {
            assert_eq!(own_path(&v2, m), None, "{m:?}");
        }
        // A name that merely holds dots is a group like any other.
        assert_eq!(
            own_path(&v2, "0::/user.slice/..x/a..b\n"),
            Some(PathBuf::from("user.slice/..x/a..b"))
        );
        // Every line of a v1 hierarchy is checked the same way.
        let v1 = Hierarchy::V1 {
            mount: PathBuf::from("/sys/fs/cgroup/memory"),
            controllers: vec!["memory".into()],
        };
        assert_eq!(own_path(&v1, "4:memory:/../x\n"), None);
    }

    #[test]
    fn a_node_sees_each_hierarchy_where_the_host_mounts_it_with_its_controllers_only() {
        let known: Vec<String> = ["cpu", "cpuacct", "memory"].map(String::from).to_vec();
        let v1 = |mount: &str, opts: &str| Hierarchy::V1 {
            mount: PathBuf::from(mount),
            controllers: opts.split(',').map(str::to_string).collect(),
        };
        let view = |name: Option<&str>, controllers: Option<&str>| View {
            name: name.map(String::from),
            controllers: controllers.map(String::from),
        };
        assert_eq!(
            view_of(
                &v1(
                    "/sys/fs/cgroup/cpu,cpuacct",
                    "rw,nosuid,relatime,cpu,cpuacct"
                ),
                &known
            ),
            view(Some("cpu,cpuacct"), Some("cpu,cpuacct"))
        );
        assert_eq!(
            view_of(
                &v1("/sys/fs/cgroup/systemd", "rw,xattr,name=systemd"),
                &known
            ),
            view(Some("systemd"), Some("name=systemd"))
        );
        // v2 alone at /sys/fs/cgroup is mounted there; beside v1, under its own name.
        let v2 = |m: &str| view_of(&Hierarchy::V2(PathBuf::from(m)), &known);
        assert_eq!(v2("/sys/fs/cgroup"), view(None, None));
        assert_eq!(v2("/sys/fs/cgroup/unified"), view(Some("unified"), None));
        // Mounted elsewhere: under the last component of its mount point.
        assert_eq!(
            view_of(&v1("/cgroup/mem", "rw,memory"), &known),
            view(Some("mem"), Some("memory"))
        );
    }
}
