//! Teardown from the journal, shared by `down` and the rollback of a failed `up`. It is
//! best effort: every object is attempted and every failure is reported.

use super::error::{self, ApplyError};
use super::kernel::Kernel;
use super::netlink::NetlinkKernel;
use super::netns;
use crate::plan::{Name, Undo};
use crate::state::LabDir;

/// What to undo, in order, from the lab's journal.
pub fn undos(dir: &LabDir) -> Result<Vec<Undo>, ApplyError> {
    // Already without what dies with the lab's namespaces: only the order is left.
    let mut objects = crate::state::teardown_objects(&dir.journal_path())?;
    objects.reverse();
    Ok(objects)
}

/// A teardown in the order it runs: nodes stop first (their processes hold the
/// namespaces and cgroups), then objects in surviving namespaces, then the namespaces,
/// whose deletion takes every link, address and route with it, then cgroups and mounts.
#[derive(Debug, Default)]
pub struct Split {
    pub nodes: Vec<String>,
    pub netlink: Vec<Undo>,
    pub cgroups: Vec<String>,
    pub namespaces: Vec<Name>,
    /// Labs whose mount template is bound.
    pub templates: Vec<String>,
    /// Labs whose node directories are on a tmpfs.
    pub run_dirs: Vec<String>,
}

pub fn split(undos: &[Undo]) -> Split {
    let mut s = Split::default();
    for u in undos {
        match u {
            Undo::DeleteNetns { netns } => s.namespaces.push(netns.clone()),
            Undo::StopNode { node, .. } => s.nodes.push(node.clone()),
            Undo::RemoveCgroup { node, .. } => s.cgroups.push(node.clone()),
            Undo::RemoveMountTemplate { lab } => s.templates.push(lab.clone()),
            Undo::UnmountRunDirs { lab } => s.run_dirs.push(lab.clone()),
            other => s.netlink.push(other.clone()),
        }
    }
    s
}

/// What is left once the nodes are stopped and the netlink objects undone: the lab's
/// namespaces, any process still inside them, then the cgroups those processes were in,
/// then the mount template and node directories. The namespaces come back held
/// ([`netns::Held`]): the caller lets go after its bookkeeping.
pub fn remove_rest(
    lab: &str,
    s: &Split,
    progress: Option<&super::progress::Reporter>,
) -> (Vec<String>, netns::Held) {
    let mut held = netns::Held::new(s.namespaces.len());
    let mut errors = delete_namespaces(&s.namespaces, progress, &mut held);
    // Held, the namespaces outlive their names: whatever still runs in them dies now. (Not
    // beside the unmounts: an unmount's RCU grace period waits for a CPU busy sweeping.)
    errors.extend(super::nodes::sweep(&held.inodes));
    errors.extend(remove_cgroups(lab, s));
    errors.extend(remove_templates(s));
    (errors, held)
}

/// Unbinds the lab's mount template, if it has one.
/// Then the tmpfs of its node directories (the template's file is on it).
fn remove_templates(s: &Split) -> Vec<String> {
    let mut errors: Vec<String> = s
        .templates
        .iter()
        .filter_map(|lab| super::nodes::remove_mount_template(lab).err())
        .collect();
    errors.extend(
        s.run_dirs
            .iter()
            .filter_map(|lab| crate::node::rundirs::unmount(lab).err()),
    );
    errors
}

fn remove_cgroups(lab: &str, s: &Split) -> Vec<String> {
    s.cgroups
        .iter()
        .filter_map(|node| {
            crate::node::cgroup::remove(lab, node)
                .err()
                .map(|e| format!("remove the cgroup of node {node}: {e}"))
        })
        .collect()
}

/// Undoes objects one by one, in reverse creation order, collecting every failure.
pub async fn undo_inside(kernel: &NetlinkKernel, undos: &[Undo]) -> Vec<String> {
    let mut errors = Vec::new();
    for u in undos {
        if let Err(e) = kernel.undo(u).await {
            errors.push(format!("{}: {e}", error::undo_text(u)));
        }
    }
    errors
}

/// Deletes namespaces one after the other, holding each first, in creation order (the
/// list is in teardown order, reversed here): the fabric first, its bridge's cleanup
/// held back until the end like every other. Each unmount ends in an expedited RCU grace
/// period; measured on this 2-core host, one thread deleted 1,000 in 16 ms, while 2 to 8
/// unmounting threads took 20 to 230 ms because their grace periods fight each other,
/// and a second thread only removing the files behind the first took 35 to 220 ms.
fn delete_namespaces(
    names: &[Name],
    progress: Option<&super::progress::Reporter>,
    held: &mut netns::Held,
) -> Vec<String> {
    super::progress::phase(progress, "delete namespaces", names.len() as u64);
    names
        .iter()
        .rev()
        .filter_map(|name| {
            // One path for the hold, the unmount and the unlink.
            let path = netns::netns_path(name);
            held.take(&path);
            let r = netns::delete_at(&path)
                .err()
                .map(|e| format!("delete namespace {name}: {e}"));
            super::progress::advance(progress, "delete-netns");
            r
        })
        .collect()
}

/// Removes the lab's directory if everything went, else reports what did not. The last
/// lab out puts /run/netns back the way nslab found it.
pub fn finish(lab: &str, dir: &LabDir, errors: Vec<String>) -> Result<(), ApplyError> {
    if !errors.is_empty() {
        return Err(ApplyError::Teardown {
            lab: lab.to_string(),
            errors,
        });
    }
    dir.remove()?;
    let nodes = crate::node::NodePaths::of_lab(lab);
    for d in [nodes.dir, nodes.logs] {
        if let Err(e) = std::fs::remove_dir_all(&d)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(ApplyError::State(crate::state::StateError::io(&d, e)));
        }
    }
    // Without the marker nslab made nothing in /run/netns (the usual case: iproute2 or
    // the distribution did), so there is nothing to release and no need to look.
    let marker = crate::state::netns_dir_marker();
    if marker.exists() && crate::state::list_labs().is_empty() {
        // Checked again under the host lock: an `up` may be between preparing /run/netns
        // and writing its journal.
        let _host = crate::state::HostLock::acquire()?;
        if crate::state::list_labs().is_empty()
            && let Err(e) = netns::release_netns_dir(&marker)
        {
            crate::errln!("nslab: could not release /run/netns: {e}");
        }
    }
    Ok(())
}
