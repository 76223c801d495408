//! Named network namespaces as iproute2 keeps them: a bind mount of the namespace at
//! `/run/netns/<name>`, so `ip netns` and nslab see the same names.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub const NETNS_DIR: &str = "/run/netns";

pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Opens a named namespace (for `setns`), by its name under [`NETNS_DIR`].
pub fn open(name: &str) -> io::Result<OwnedFd> {
    Ok(File::open(netns_path(name))?.into())
}
