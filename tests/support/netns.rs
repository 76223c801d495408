//! A named network namespace that is not a lab's, made and removed the way nslab makes
//! its own, so a test leaves the host's `/run/netns` as it found it. `ip netns add` would
//! make `/run/netns` a mount point of its own that nothing records, and that stays after
//! the suite; here nslab's own preparation records what it made, and the last of nslab
//! and these namespaces to go undoes it.

use std::path::PathBuf;

use nslab::apply::netns;
use nslab::state::{HostContext, HostLock};

pub struct ForeignNetns {
    host: HostContext,
    pub path: PathBuf,
}

impl ForeignNetns {
    /// The namespace `name` in the host's netns directory; panics if it cannot be made.
    pub fn new(name: &str) -> ForeignNetns {
        let host = HostContext::from_env();
        let path = host.netns_path(name);
        {
            // As `up` does: the directory is prepared under the host lock, so no lab's
            // `down` releases it meanwhile.
            let _lock = HostLock::acquire(&host).expect("the host lock");
            netns::ensure_netns_dir(&host).expect("the netns directory");
            let p = path.clone();
            // Its own thread: making a namespace moves the thread into it.
            std::thread::spawn(move || netns::create_here(&p).map(drop))
                .join()
                .expect("the namespace thread")
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        ForeignNetns { host, path }
    }
}

impl Drop for ForeignNetns {
    /// Removes the namespace (if a test's `down` did not), then lets the netns directory
    /// go back to how nslab found it when nothing else is left in it.
    fn drop(&mut self) {
        let _lock = HostLock::acquire(&self.host).expect("the host lock");
        let _ = netns::delete_at(&self.path);
        let _ = netns::release_netns_dir(&self.host);
    }
}
