//! The lab's node directories (`<lab>.nodes`: pid files, control sockets, the hosts file,
//! the mount template; `<lab>.logs`: process logs) on a tmpfs of their own. On a host whose
//! /run is a disk filesystem (this project's VM: ext4), each `up` creates and each `down`
//! deletes several inodes per node, and ext4 then scans past every inode freed in the
//! last half minute: 16% of the CPU of a 1,000-node `up`, 0.5 s of wall time.

use std::ffi::CString;

use super::NodePaths;

/// Mounts a private tmpfs on each of the lab's node directories.
pub fn mount(paths: &NodePaths) -> Result<(), String> {
    for dir in [&paths.dir, &paths.logs] {
        // A link planted here would take the mount elsewhere on the host.
        crate::state::files::ensure_dir(dir).map_err(|e| e.to_string())?;
        let target = CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
        use nix::mount::MsFlags;
        nix::mount::mount(
            Some(c"nslab"),
            target.as_c_str(),
            Some(c"tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(c"mode=0755"),
        )
        .map_err(|e| {
            let e = std::io::Error::from(e);
            format!("mount a tmpfs on {}: {e}", dir.display())
        })?;
    }
    Ok(())
}

/// Unmounts them (what is not mounted is fine); their content goes with them.
pub fn unmount(paths: &NodePaths) -> Result<(), String> {
    for dir in [&paths.logs, &paths.dir] {
        super::detach(dir).map_err(|e| format!("unmount {}: {e}", dir.display()))?;
    }
    Ok(())
}
