//! Whether a lab a long-running command follows (`logs -f`, `capture`) has gone down. The
//! node's named network namespace is the mark: `down` unmounts it, and a later `up` of the
//! same lab mounts a new namespace with another inode, so a lab that went down and came
//! back between two looks is still seen as gone. (An open capture socket keeps the old
//! namespace alive, but not its name.)

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct LabWatch {
    path: PathBuf,
    /// (device, inode) of the mark when the watch began.
    seen: Option<(u64, u64)>,
}

fn identity(path: &std::path::Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl LabWatch {
    /// Watches `node` of `lab`. A node whose namespace is already gone is gone at once.
    pub fn node(host: &crate::state::HostContext, lab: &str, node: &str) -> LabWatch {
        let path = host.netns_path(&crate::model::names::node_netns(lab, node));
        let seen = identity(&path);
        LabWatch { path, seen }
    }

    /// Whether the node (with its lab) is gone or was replaced since the watch began.
    pub fn gone(&self) -> bool {
        self.seen.is_none() || identity(&self.path) != self.seen
    }

    /// Sets `flag` once the lab is gone, from a thread of its own, checking every 200 ms:
    /// for loops that block in their own waits. Returns a flag that says it was the lab.
    pub fn spawn(
        self,
        flag: &'static std::sync::atomic::AtomicBool,
    ) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        use std::sync::atomic::Ordering;
        let gone = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mark = gone.clone();
        std::thread::spawn(move || {
            while !self.gone() {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            mark.store(true, Ordering::Relaxed);
            flag.store(true, Ordering::Relaxed);
        });
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_namespace_is_gone_and_a_replaced_mark_too() {
        let host = crate::state::HostContext::from_env();
        assert!(LabWatch::node(&host, "qx-none", "n1").gone());
        let dir = std::env::temp_dir().join(format!("nslab-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mark = dir.join("mark");
        std::fs::write(&mark, "").unwrap();
        let w = LabWatch {
            seen: identity(&mark),
            path: mark.clone(),
        };
        assert!(!w.gone());
        // A new file under the same name is another inode while the old one is held.
        let held = std::fs::File::open(&mark).unwrap();
        std::fs::remove_file(&mark).unwrap();
        assert!(w.gone());
        std::fs::write(&mark, "").unwrap();
        assert!(w.gone());
        drop(held);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
