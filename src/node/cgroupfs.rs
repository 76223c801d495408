//! What a node sees of cgroups, as a container does: its init gets a cgroup namespace of
//! its own once nslab has put it in the node's groups, so `/proc/self/cgroup` shows `/`
//! for them and a cgroup filesystem mounted in the node (by anyone, root included) has
//! its root at the node's group, never the host's. Under `/sys/fs/cgroup` the node sees
//! the hierarchies it has a group in (its `limits:`), each rooted at that group and
//! read-only, on a read-only tmpfs as the host lays them out; without a group of its own
//! it sees the empty directory its fresh `/sys` has.

use std::os::fd::AsFd;
use std::path::Path;

use super::beneath::{self, Create, Owned};
use super::cgroup::View;
use super::mountns::mount_at;
use super::sys::err;

/// Read-only, and nothing to execute, set-uid or open as a device, as the node's `/sys`.
const RO: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY;

/// A cgroup namespace rooted where the init is now: its own groups (nslab placed it there
/// before letting it go), in the other hierarchies the group it was started in. Its
/// processes inherit it.
pub fn unshare() -> Result<(), String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
        .map_err(|e| err("unshare of a cgroup namespace", std::io::Error::from(e)))
}

/// Mounts `views` under the node's `/sys/fs/cgroup` (its fresh sysfs), after
/// [`unshare`], so each is rooted at the node's group.
pub fn mount(views: &[View], owned: &mut Owned) -> Result<(), String> {
    let dir = Path::new("/sys/fs/cgroup");
    match views {
        [] => Ok(()),
        // cgroup v2 alone, mounted at /sys/fs/cgroup itself on the host.
        [
            View {
                name: None,
                controllers: None,
            },
        ] => {
            let at = beneath::open(dir, Create::No, owned)?;
            mount_at(
                Some("cgroup2"),
                &at,
                "/sys/fs/cgroup",
                Some("cgroup2"),
                RO,
                None,
            )
        }
        _ => {
            let at = beneath::open(dir, Create::No, owned)?;
            let flags = RO & !libc::MS_RDONLY;
            mount_at(
                Some("tmpfs"),
                &at,
                "/sys/fs/cgroup",
                Some("tmpfs"),
                flags,
                Some("mode=755"),
            )?;
            let top = beneath::open(dir, Create::No, owned)?;
            owned.adopt(at.as_fd(), top.as_fd(), "/sys/fs/cgroup")?;
            for v in views {
                hierarchy(dir, v, owned)?;
                for alias in aliases(v) {
                    // `cpu -> cpu,cpuacct`, as the host (and a container) has it.
                    let name = v.name.as_deref().unwrap_or_default();
                    match nix::unistd::symlinkat(name, &top, alias) {
                        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                        Err(e) => return Err(format!("/sys/fs/cgroup/{alias}: {e}")),
                    }
                }
            }
            // Read-only once its directories are made, as the host's is in a container.
            let remount = libc::MS_BIND | libc::MS_REMOUNT | RO;
            mount_at(None, &top, "/sys/fs/cgroup", None, remount, None)
        }
    }
}

/// The controllers of a v1 hierarchy mounted under another name (`cpu` and `cpuacct` of
/// `cpu,cpuacct`), which tools look for by their own name.
fn aliases(v: &View) -> Vec<&str> {
    let (Some(name), Some(controllers)) = (&v.name, &v.controllers) else {
        return Vec::new();
    };
    controllers
        .split(',')
        .filter(|c| c != name && !c.is_empty() && !c.starts_with("name=") && !c.contains('/'))
        .collect()
}

/// One hierarchy at `/sys/fs/cgroup/<name>` (`unified` for a v2 hierarchy the host has
/// at /sys/fs/cgroup itself beside v1 ones, which no known layout has).
fn hierarchy(dir: &Path, v: &View, owned: &mut Owned) -> Result<(), String> {
    let name = v.name.as_deref().unwrap_or("unified");
    // A name from the host's mount table; one that could leave the directory is none.
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(format!("a cgroup hierarchy mounted at `{name}`"));
    }
    let target = dir.join(name);
    let shown = target.display().to_string();
    let at = beneath::open(&target, Create::Dir, owned)?;
    match &v.controllers {
        None => mount_at(Some("cgroup2"), &at, &shown, Some("cgroup2"), RO, None),
        Some(c) => mount_at(Some("cgroup"), &at, &shown, Some("cgroup"), RO, Some(c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn co_mounted_controllers_are_linked_to_their_hierarchy_by_their_own_names() {
        let v = |name: Option<&str>, c: Option<&str>| View {
            name: name.map(String::from),
            controllers: c.map(String::from),
        };
        let shared = v(Some("cpu,cpuacct"), Some("cpu,cpuacct"));
        assert_eq!(aliases(&shared), ["cpu", "cpuacct"]);
        assert!(aliases(&v(Some("memory"), Some("memory"))).is_empty());
        assert!(aliases(&v(Some("systemd"), Some("name=systemd"))).is_empty());
        assert!(aliases(&v(Some("unified"), None)).is_empty());
        assert!(aliases(&v(None, None)).is_empty());
    }
}
