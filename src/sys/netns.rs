//! Named network namespaces as iproute2 keeps them: a bind mount of the namespace at
//! `<netns dir>/<name>` (`/run/netns` unless the host context says otherwise), so
//! `ip netns` and nslab see the same names.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub fn netns_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// Opens a named namespace (for `setns`), by its name under the netns directory `dir`.
pub fn open(dir: &Path, name: &str) -> io::Result<OwnedFd> {
    Ok(File::open(netns_path(dir, name))?.into())
}
