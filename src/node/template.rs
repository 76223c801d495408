//! The lab's mount template: a mount namespace made once per lab, a copy of the host's
//! without `/run/netns`, that every node's own mount namespace is then copied from.
//! Copying a mount namespace is O(mounts in it), and the host holds one nsfs mount per
//! node namespace: without the template, N nodes copy N mounts each (O(N²); at 1,000
//! nodes that was a tenth of all CPU time in `up`). The template is held by a bind mount
//! of its nsfs file under the lab's run directory, and goes at `down`.

use std::ffi::CString;
use std::path::Path;

use super::sys::{cpath as cstr, last};

/// Makes the template and binds it at `at`. Runs on a thread of its own, which unshares
/// its mount namespace (only that thread's view changes) and ends afterwards.
/// `netns_dir` is where named namespaces are mounted, left out of the template.
pub fn create(at: &Path, netns_dir: &Path) -> Result<(), String> {
    if let Some(dir) = at.parent() {
        crate::state::files::ensure_dir(dir).map_err(|e| e.to_string())?;
    }
    crate::state::files::replace(at, b"").map_err(|e| e.to_string())?;
    let (tx, rx) = std::sync::mpsc::channel::<Result<i32, String>>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let netns_dir = netns_dir.to_path_buf();
    let worker = std::thread::Builder::new()
        .name("nslab-mnt".into())
        .spawn(move || {
            let _ = tx.send(prepare(&netns_dir));
            // Stay until the host side has bound the namespace.
            let _ = done_rx.recv();
        })
        .map_err(|e| format!("a thread for the mount template: {e}"))?;
    let bound = match rx.recv() {
        Ok(Ok(tid)) => bind(tid, at),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("the mount template thread ended early".into()),
    };
    let _ = done_tx.send(());
    let _ = worker.join();
    if bound.is_err() {
        let _ = std::fs::remove_file(at);
    }
    bound
}

/// On the template's thread: a private copy of the host's mounts without the netns
/// directory's.
fn prepare(netns_dir: &Path) -> Result<i32, String> {
    // SAFETY: unshare and mount calls on this thread only; the strings outlive the calls.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(last("unshare a mount namespace"));
        }
        let root = c"/";
        // Nothing done here may propagate back to the host.
        if libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(last("make the template's mounts private"));
        }
    }
    let info = std::fs::read_to_string("/proc/thread-self/mountinfo")
        .map_err(|e| format!("/proc/thread-self/mountinfo: {e}"))?;
    // Deepest first, so children go before their parents.
    let mut netns: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(netns_dir))
        .collect();
    netns.sort_by_key(|m| std::cmp::Reverse(m.len()));
    netns.dedup();
    for m in netns {
        let Ok(c) = CString::new(m) else { continue };
        // SAFETY: umount2 with a valid path, in this thread's namespace.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
    // SAFETY: gettid has no preconditions.
    Ok(unsafe { libc::gettid() })
}

/// On the host: binds the thread's mount namespace file at `at`.
fn bind(tid: i32, at: &Path) -> Result<(), String> {
    let src = CString::new(format!("/proc/self/task/{tid}/ns/mnt")).map_err(|e| e.to_string())?;
    let dst = cstr(at)?;
    // SAFETY: a bind mount between two valid paths.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(last("bind the mount template"));
    }
    Ok(())
}

/// Unbinds and removes the template (nothing to do when it is not there).
pub fn remove(at: &Path) -> Result<(), String> {
    super::detach(at).map_err(|e| format!("unbind {}: {e}", at.display()))?;
    match std::fs::remove_file(at) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("remove {}: {e}", at.display()))
        }
        _ => Ok(()),
    }
}
