//! The init's set-up, before its loop: the defaults, the subreaper, the logs directory
//! and control socket, the hostname, the cgroup and mount namespaces, the signalfd.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;

use super::super::config::NodeConfig;
use super::super::sys::err;

/// Everything before the loop. Errors go back to nslab on stdout.
pub(super) fn setup(cfg: &NodeConfig) -> Result<(Option<OwnedFd>, UnixListener, OwnedFd), String> {
    // nslab's working directory may not exist inside the node.
    let _ = std::env::set_current_dir("/");
    // Nor do the caller's nice value, limits, affinity... reach the node's processes.
    super::super::fresh::Fresh::new()
        .apply()
        .map_err(|e| e.to_string())?;
    if nix::unistd::getpid().as_raw() != 1 {
        let _ = nix::sys::prctl::set_child_subreaper(true);
    }
    std::fs::create_dir_all(&cfg.logs).map_err(|e| err("logs", e))?;
    let logs = File::open(&cfg.logs).ok().map(OwnedFd::from);
    let _ = std::fs::remove_file(&cfg.control);
    let listener =
        UnixListener::bind(&cfg.control).map_err(|e| err(&cfg.control.display().to_string(), e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| err("control socket", e))?;
    if cfg.start.uts {
        nix::unistd::sethostname(&cfg.start.node)
            .map_err(|e| err("sethostname", std::io::Error::from(e)))?;
    }
    if cfg.start.mnt {
        // Before anything is mounted, and after nslab put the init in its groups (it
        // waited for that): the namespace is rooted where the init is now.
        super::super::cgroupfs::unshare()?;
        super::super::mountns::build(cfg)?;
    }
    let sig = super::signalfd()?;
    Ok((logs, listener, sig))
}
