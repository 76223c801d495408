//! Teardown from the journal, shared by `down` and the rollback of a failed `up`. It is
//! best effort: every object is attempted and every failure is reported.

use std::collections::HashSet;

use super::error::{self, ApplyError};
use super::kernel::Kernel;
use super::netlink::NetlinkKernel;
use super::netns;
use crate::model::hostnet::HOST_NETNS;
use crate::plan::{Name, Teardown, Undo};
use crate::state::{HostContext, LabDir};

/// The lab's teardown from its journal, and the records refused because they name
/// something that is not the lab's (see `state::owned`): those are never acted on.
pub fn from_journal(dir: &LabDir) -> Result<(Teardown, Vec<String>), ApplyError> {
    // Already without what dies with the lab's namespaces, in creation order.
    let objects = crate::state::teardown_objects(&dir.journal_path())?;
    let s = crate::state::owned::screen(&dir.lab, objects);
    Ok((Teardown::of(s.kept), refusals(s.refused)))
}

/// Records screened out as not the lab's (see `state::owned::screen`), as `down` and
/// `apply` report them.
pub(super) fn refusals(refused: Vec<(Undo, String)>) -> Vec<String> {
    refused
        .into_iter()
        .map(|(u, what)| format!("{}: names {what}", error::undo_text(&u)))
        .collect()
}

/// Adds what exists of the lab by name but is not in `s` (a journal cut short, emptied
/// or deleted): namespaces `nslab.<lab>` and `nslab.<lab>.<node>`, node inits with a pid
/// file, cgroups under `nslab/<lab>`, and the lab's mounts (unmounting those is harmless
/// when they are not there). Says what it found, or `None` when the journal had it all.
pub fn sweep_by_name(host: &HostContext, lab: &str, s: &mut Teardown) -> Option<String> {
    let fabric = crate::model::names::fabric_netns(lab);
    // What the journal already names, looked up once per name found (a 1,000-node lab
    // has a thousand of each).
    let known_ns: HashSet<&str> = s.namespaces.iter().map(Undo::netns).collect();
    let known_nodes: HashSet<String> = s.node_names().into_iter().collect();
    let known_cgroups: HashSet<String> = s.cgroup_nodes().into_iter().collect();
    let netns: Vec<Name> = std::fs::read_dir(&host.netns_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| crate::state::owned::netns_of_lab(lab, n).is_ok())
        .filter(|n| !known_ns.contains(n.as_str()))
        .map(Name::from)
        .collect();
    let pid_files = std::fs::read_dir(crate::node::NodePaths::of_lab(host, lab).dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok());
    let nodes: Vec<String> = pid_files
        .filter_map(|f| f.strip_suffix(".pid").map(str::to_string))
        .filter(|n| crate::model::names::check_node_name(n).is_ok())
        .filter(|n| !known_nodes.contains(n))
        .collect();
    let cgroups: Vec<String> = crate::node::cgroup::nodes_of(lab)
        .into_iter()
        .filter(|n| !known_cgroups.contains(n))
        .collect();
    let mut found = vec![
        crate::words::count(netns.len(), "namespace"),
        crate::words::count(nodes.len(), "node init"),
        crate::words::count(cgroups.len(), "cgroup"),
    ];
    let mut any = !(netns.is_empty() && nodes.is_empty() && cgroups.is_empty());
    let node_undo = |node: String| (crate::model::names::node_netns(lab, &node).into(), node);
    // The fabric first, as it was made first.
    let (fab, rest): (Vec<Name>, Vec<Name>) = netns.into_iter().partition(|n| **n == *fabric);
    let found_ns = fab
        .into_iter()
        .chain(rest)
        .map(|netns| Undo::DeleteNetns { netns });
    s.namespaces.splice(0..0, found_ns);
    s.nodes.extend(
        nodes
            .into_iter()
            .map(node_undo)
            .map(|(netns, node)| Undo::StopNode { netns, node }),
    );
    s.cgroups.extend(
        cgroups
            .into_iter()
            .map(node_undo)
            .map(|(netns, node)| Undo::RemoveCgroup { netns, node }),
    );
    // Shared management networks whose registries still name the lab: left, so the
    // last member's `down` can delete the bridge. A membership is something of the lab's
    // even when nothing else is left (its files gone): `down` then removes it rather
    // than say the lab is not up, which would hold the network forever.
    let mut left = 0;
    for network in crate::state::mgmtnet::memberships(host, lab) {
        let Ok(Some(reg)) = crate::state::mgmtnet::read(host, &network) else {
            continue;
        };
        let undo = Undo::LeaveMgmt {
            netns: crate::model::hostnet::HOST_NETNS.into(),
            bridge: reg.shape.bridge.as_str().into(),
            ifindex: reg.shape.ifindex,
            network,
        };
        // A registry is a file too: what it names is screened as a record is.
        if crate::state::owned::check(lab, &undo).is_ok() && !s.netlink.contains(&undo) {
            s.netlink.push(undo);
            left += 1;
        }
    }
    if left > 0 {
        found.push(crate::words::count(left, "shared-network membership"));
        any = true;
    }
    for undo in [
        Undo::RemoveMountTemplate { lab: lab.into() },
        Undo::UnmountRunDirs { lab: lab.into() },
    ] {
        if !s.mounts.contains(&undo) {
            s.mounts.push(undo);
        }
    }
    any.then(|| found.join(", "))
}

/// What is left once the nodes are stopped and the netlink objects undone: the lab's
/// namespaces, any process still inside them, then the cgroups those processes were in,
/// then the mount template and node directories. The namespaces come back held
/// ([`netns::Held`]): the caller lets go after its bookkeeping.
pub fn remove_rest(
    host: &HostContext,
    lab: &str,
    s: &Teardown,
    progress: Option<&super::progress::Reporter>,
) -> (Vec<String>, netns::Held) {
    let mut held = netns::Held::new(s.namespaces.len());
    let mut errors = delete_namespaces(host, &s.netns_names(), progress, &mut held);
    // Held, the namespaces outlive their names: whatever still runs in them dies now. (Not
    // beside the unmounts: an unmount's RCU grace period waits for a CPU busy sweeping.)
    super::progress::trace("sweep the lab's namespaces");
    errors.extend(super::nodes::sweep(&held.inodes));
    super::progress::trace("remove cgroups");
    errors.extend(remove_cgroups(lab, s));
    super::progress::trace("remove mounts");
    errors.extend(remove_mounts(host, s));
    (errors, held)
}

/// Unbinds the lab's mount template, then the tmpfs of its node directories (the
/// template's file is on it).
fn remove_mounts(host: &HostContext, s: &Teardown) -> Vec<String> {
    s.mounts
        .iter()
        .filter_map(|u| match u {
            Undo::RemoveMountTemplate { lab } => {
                super::nodes::remove_mount_template(host, lab).err()
            }
            Undo::UnmountRunDirs { lab } => {
                crate::node::rundirs::unmount(&crate::node::NodePaths::of_lab(host, lab)).err()
            }
            _ => None,
        })
        .collect()
}

fn remove_cgroups(lab: &str, s: &Teardown) -> Vec<String> {
    s.cgroup_nodes()
        .iter()
        .filter_map(|node| {
            crate::node::cgroup::remove(lab, node)
                .err()
                .map(|e| format!("remove the cgroup of node {node}: {e}"))
        })
        .collect()
}

/// Undoes objects one by one, in reverse creation order, collecting every failure. A
/// host interface the kernel does not say is the lab's (no lab tag) is refused, not
/// failed: it goes to `refused` with the command that removes it by hand.
pub async fn undo_inside(
    kernel: &NetlinkKernel,
    undos: &[Undo],
    refused: &mut Vec<String>,
) -> Vec<String> {
    let mut errors = Vec::new();
    for u in undos {
        match kernel.undo(u).await {
            Ok(()) => {}
            Err(super::error::KernelError::NotTheLabs(why)) => {
                refused.push(format!("{}: {why}", error::undo_text(u)));
            }
            Err(e) => errors.push(format!("{}: {e}", error::undo_text(u))),
        }
    }
    errors
}

/// What of the netlink phase waits for the namespaces' deletion (see `hostends`).
#[derive(Default)]
pub struct Later {
    ends: Vec<Undo>,
    after: Vec<Undo>,
}

impl Later {
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty() && self.after.is_empty()
    }
}

/// The netlink phase: every object undone now, except the host ends the namespaces'
/// deletion takes with them and what must outlive those (see `hostends::split`). If the
/// kernel cannot be asked which those are, everything is undone now, as before.
pub async fn undo_netlink(
    kernel: &NetlinkKernel,
    lab: &str,
    s: &Teardown,
    refused: &mut Vec<String>,
) -> (Vec<String>, Later) {
    let host = kernel.host().clone();
    let split = match kernel.handle(&Name::from(HOST_NETNS)).await {
        Ok(h) => super::hostends::split(&h, &host, lab, s.netlink.clone(), &s.netns_names())
            .await
            .ok(),
        Err(_) => None,
    };
    let split = split.unwrap_or_else(|| super::hostends::Split {
        now: s.netlink.clone(),
        ..Default::default()
    });
    let errors = undo_inside(kernel, &split.now, refused).await;
    let later = Later {
        ends: split.ends,
        after: split.after,
    };
    (errors, later)
}

/// Once the namespaces are deleted (`remove_rest`): lets go of them, waits for the kernel
/// to take the host ends with them, deletes itself any still there (a namespace held
/// open by something else), then undoes what waited for them. With nothing waiting, the
/// namespaces come back still held, for the caller to let go after its bookkeeping.
pub async fn undo_later(
    kernel: &NetlinkKernel,
    lab: &str,
    later: Later,
    held: netns::Held,
    refused: &mut Vec<String>,
) -> (Vec<String>, Option<netns::Held>) {
    if later.is_empty() {
        return (Vec::new(), Some(held));
    }
    let mut errors = Vec::new();
    drop(held);
    if let Err(e) = kernel.leave_namespaces().await {
        errors.push(format!("lab {lab}: leave its deleted namespaces: {e}"));
    }
    let left = match kernel.handle(&Name::from(HOST_NETNS)).await {
        Ok(h) => super::hostends::wait_gone(&h, later.ends.clone()).await,
        Err(e) => Err(e),
    };
    let left = left.unwrap_or_else(|e| {
        errors.push(format!(
            "wait for the host ends of lab {lab}'s deleted namespaces: {e}"
        ));
        later.ends
    });
    if !left.is_empty() {
        crate::errln!(
            "nslab: lab `{lab}`: {} still on the host after {} deleted (held open by another process?): deleting {}",
            crate::words::count(left.len(), "host end"),
            if left.len() == 1 {
                "its namespace was"
            } else {
                "their namespaces were"
            },
            if left.len() == 1 { "it" } else { "them" },
        );
    }
    errors.extend(undo_inside(kernel, &left, refused).await);
    errors.extend(undo_inside(kernel, &later.after, refused).await);
    (errors, None)
}

/// Deletes namespaces one after the other, holding each first, in creation order: the
/// fabric first, its bridge's cleanup held back until the end like every other. Each unmount ends in an expedited RCU grace
/// period; measured on this 2-core host, one thread deleted 1,000 in 16 ms, while 2 to 8
/// unmounting threads took 20 to 230 ms because their grace periods fight each other,
/// and a second thread only removing the files behind the first took 35 to 220 ms.
fn delete_namespaces(
    host: &HostContext,
    names: &[Name],
    progress: Option<&super::progress::Reporter>,
    held: &mut netns::Held,
) -> Vec<String> {
    super::progress::phase(progress, "delete namespaces", names.len() as u64);
    names
        .iter()
        .filter_map(|name| {
            // One path for the hold, the unmount and the unlink.
            let path = host.netns_path(name);
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
/// lab out puts the netns directory back the way nslab found it. Refused journal records do not
/// keep the lab on record (they were never its objects), but they are reported.
pub fn finish(
    host: &HostContext,
    lab: &str,
    dir: &LabDir,
    errors: Vec<String>,
    refused: Vec<String>,
) -> Result<(), ApplyError> {
    if !errors.is_empty() {
        let mut errors = errors;
        errors.extend(refused.into_iter().map(|r| format!("refused {r}")));
        return Err(ApplyError::Teardown {
            lab: lab.to_string(),
            errors,
        });
    }
    release(host, lab, dir)?;
    if !refused.is_empty() {
        return Err(ApplyError::Refused {
            lab: lab.to_string(),
            records: refused,
        });
    }
    Ok(())
}

/// The lab's files and directories, and the netns directory when the lab was the last.
pub(crate) fn release(host: &HostContext, lab: &str, dir: &LabDir) -> Result<(), ApplyError> {
    dir.remove()?;
    let nodes = crate::node::NodePaths::of_lab(host, lab);
    for d in [nodes.dir, nodes.logs] {
        if let Err(e) = std::fs::remove_dir_all(&d)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(ApplyError::State(crate::state::StateError::io(&d, e)));
        }
    }
    // Without the marker nslab made nothing in /run/netns (the usual case: iproute2 or
    // the distribution did), so there is nothing to release and no need to look.
    if host.netns_dir_marker().exists() && host.labs().is_empty() {
        // Checked again under the host lock: an `up` may be between preparing /run/netns
        // and writing its journal.
        let _host = crate::state::HostLock::acquire(host)?;
        if host.labs().is_empty()
            && let Err(e) = netns::release_netns_dir(host)
        {
            crate::errln!("nslab: could not release /run/netns: {e}");
        }
    }
    Ok(())
}
