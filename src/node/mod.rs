//! Nodes as namespaced process sets: each node with more than a network namespace gets
//! nslab's own init as PID 1 (uts, mnt, pid, ipc namespaces, cgroups), which supervises
//! the node's processes. This module holds what the init and nslab share.

pub mod beneath;
pub mod cgroup;
mod cgroupfs;
mod cgroupmem;
pub mod config;
pub mod control;
pub mod enter;
pub mod environ;
pub mod fresh;
pub mod init;
mod keyring;
pub mod launch;
pub mod logsink;
pub mod mountns;
mod newroot;
mod ready;
pub mod rundirs;
mod sys;
pub mod template;
pub mod tree;
pub mod users;
pub mod zygote;

use std::path::{Path, PathBuf};

/// Where a lab keeps the runtime files of its nodes.
#[derive(Debug, Clone)]
pub struct NodePaths {
    pub dir: PathBuf,
    pub logs: PathBuf,
}

impl NodePaths {
    pub fn new(root: &Path, lab: &str) -> NodePaths {
        NodePaths {
            dir: root.join(format!("{lab}.nodes")),
            logs: root.join(format!("{lab}.logs")),
        }
    }

    /// The lab's node directories in the host's run directory.
    pub fn of_lab(host: &crate::state::HostContext, lab: &str) -> NodePaths {
        NodePaths::new(&host.run_dir, lab)
    }

    /// `<pid> <start time> <grace ms> <own namespaces>` of the node's init.
    pub fn pid_file(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.pid"))
    }

    pub fn control(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.sock"))
    }

    /// The lab's mount template (see [`template`]).
    pub fn mount_template(&self) -> PathBuf {
        self.dir.join("template.mnt")
    }

    /// The lab's `/etc/hosts`, which every node's own copy starts from.
    pub fn hosts(&self) -> PathBuf {
        self.dir.join("hosts")
    }

    pub fn log(&self, node: &str, process: &str) -> PathBuf {
        self.logs.join(node).join(format!("{process}.log"))
    }
}

/// Detaches the mount at `path`; a path that is not (or no longer) a mount point, or not
/// there at all, is fine: teardown may run twice.
pub fn detach(path: &Path) -> std::io::Result<()> {
    use nix::errno::Errno;
    use nix::mount::MntFlags;
    // A link at `path` is never followed: it could name any mount of the host.
    match nix::mount::umount2(path, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
