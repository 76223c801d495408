//! A new root for a node that mounts onto a path missing directly under `/` (containerlab
//! labs bind `/01-test.txt`). An overlay on a directory does not show the mounts below
//! it, and `/` holds /proc, /dev, /run and the host's own, so such a node gets what
//! container runtimes make: an overlay whose lower layer is the host's `/` and whose
//! upper layer is on a tmpfs of the node, with every mount below `/` bound again into
//! it, then `pivot_root` into it. New entries then land in the overlay's upper layer and
//! the host's `/` is never written. Only nodes that need it pay for it.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// Builds the new root and moves the node into it. `staging` is an empty directory
/// nslab may create (in the node's runtime directory, never the host's filesystem);
/// it holds the node's tmpfs only until the pivot, and is removed afterwards.
pub fn enter(node: &str, staging: &Path) -> Result<(), String> {
    let fail = |what: &str, target: &Path, e: nix::Error| {
        format!(
            "node `{node}`: a new root for targets directly under `/`: {what} {}: {e}",
            target.display()
        )
    };
    let io = |what: &str, target: &Path, e: std::io::Error| {
        format!(
            "node `{node}`: a new root for targets directly under `/`: {what} {}: {e}",
            target.display()
        )
    };
    // Read before anything is mounted: the mounts to bind into the new root.
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| io("read", Path::new("/proc/self/mountinfo"), e))?;
    let tops = top_mounts(&info);
    std::fs::create_dir_all(staging).map_err(|e| io("create", staging, e))?;
    let none: Option<&str> = None;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(
        Some("tmpfs"),
        staging,
        Some("tmpfs"),
        flags,
        Some("mode=0755"),
    )
    .map_err(|e| fail("mount tmpfs on", staging, e))?;
    let (upper, work, root) = (
        staging.join("upper"),
        staging.join("work"),
        staging.join("root"),
    );
    for d in [&upper, &work, &root] {
        std::fs::create_dir(d).map_err(|e| io("create", d, e))?;
    }
    let data = format!(
        "lowerdir=/,upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    mount(
        Some("overlay"),
        &root,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|e| fail("mount an overlay of / on", &root, e))?;
    // Unbindable once the overlay holds its upper layer (overlayfs clones that mount,
    // which an unbindable one refuses): the binds below copy the tree it lies in (the
    // host's /run) and must leave it, and the new root in it, out.
    mount(none, staging, none, MsFlags::MS_UNBINDABLE, none)
        .map_err(|e| fail("make unbindable", staging, e))?;
    for m in &tops {
        let to = root.join(m.strip_prefix("/").unwrap_or(m));
        mount(
            Some(m.as_path()),
            &to,
            none,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            none,
        )
        .map_err(|e| fail(&format!("bind {} onto", m.display()), &to, e))?;
    }
    pivot(&root).map_err(|(what, e)| fail(what, &root, e))?;
    // The staging directory is empty again in the node's view (its tmpfs went with the
    // old root); it was nslab's own, made above.
    let _ = std::fs::remove_dir(staging);
    Ok(())
}

/// `pivot_root(".", ".")` in `root`, then detaches the old root stacked below it.
fn pivot(root: &Path) -> Result<(), (&'static str, nix::Error)> {
    nix::unistd::chdir(root).map_err(|e| ("enter", e))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| ("pivot_root into", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| ("detach the old root below", e))?;
    nix::unistd::chdir("/").map_err(|e| ("enter /, the new root", e))
}

/// The mount points of the mounts right below the root mount, outermost only (binding
/// each recursively brings the ones below it), decoded from mountinfo's octal escapes.
fn top_mounts(info: &str) -> Vec<PathBuf> {
    let rows: Vec<(&str, &str, PathBuf)> = info
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((*f.first()?, *f.get(1)?, PathBuf::from(unescape(f.get(4)?))))
        })
        .collect();
    let Some(root_id) = rows.iter().find(|r| r.2 == Path::new("/")).map(|r| r.0) else {
        return Vec::new();
    };
    let mut tops: Vec<PathBuf> = rows
        .iter()
        .filter(|r| r.1 == root_id && r.2 != Path::new("/"))
        .map(|r| r.2.clone())
        .collect();
    tops.sort();
    tops.dedup();
    let outer: Vec<PathBuf> = tops
        .iter()
        .filter(|t| !tops.iter().any(|o| o != *t && t.starts_with(o)))
        .cloned()
        .collect();
    outer
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_outermost_mounts_below_the_root_are_bound() {
        let info = "\
20 1 0:20 / / rw - overlay overlay rw
21 20 0:21 / /proc rw - proc proc rw
22 21 0:22 / /proc/sys/fs/binfmt_misc rw - autofs a rw
23 20 0:23 / /run rw - tmpfs tmpfs rw
24 23 0:24 / /run/user/0 rw - tmpfs tmpfs rw
25 20 0:25 / /home/my\\040dir rw - ext4 /dev/sda rw
26 20 0:26 / /etc/hosts rw - ext4 /dev/sda rw
27 20 0:23 / /run rw - tmpfs tmpfs rw
";
        assert_eq!(
            top_mounts(info),
            ["/etc/hosts", "/home/my dir", "/proc", "/run"]
                .map(PathBuf::from)
                .to_vec()
        );
        assert!(top_mounts("").is_empty());
    }
}
