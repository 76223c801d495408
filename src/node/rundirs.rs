//! The lab's node directories (`<lab>.nodes`: pid files, control sockets, the hosts file,
//! the mount template; `<lab>.logs`: process logs) on a tmpfs of their own. On a host whose
//! /run is a disk filesystem (this project's VM: ext4), each `up` creates and each `down`
//! deletes several inodes per node, and ext4 then scans past every inode freed in the
//! last half minute: 16% of the CPU of a 1,000-node `up`, 0.5 s of wall time.

use std::ffi::CString;
use std::path::Path;

use super::NodePaths;

fn last(what: &str, p: &Path) -> String {
    super::sys::last(&format!("{what} {}", p.display()))
}

/// Mounts a private tmpfs on each of the lab's node directories.
pub fn mount(paths: &NodePaths) -> Result<(), String> {
    for dir in [&paths.dir, &paths.logs] {
        // A link planted here would take the mount elsewhere on the host.
        crate::state::files::ensure_dir(dir).map_err(|e| e.to_string())?;
        let target = CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: a tmpfs mount on a directory we made, with valid C strings.
        let r = unsafe {
            libc::mount(
                c"nslab".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                c"mode=0755".as_ptr() as *const libc::c_void,
            )
        };
        if r != 0 {
            return Err(last("mount a tmpfs on", dir));
        }
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
