//! Host ends left to their namespaces. Deleting a host interface is an unregistration
//! that waits for RCU grace periods, one request at a time: 1,000 management ports took
//! 16 s, as long as `ip -force -batch`. Deleting a network namespace unregisters all its
//! devices, and the other end of every veth in it, in one batch. So a host end that the
//! kernel says is the lab's (name, ifindex, tag: `state::owned::host_interface`) and a
//! veth whose peer lives in a namespace the teardown deletes is left to that deletion;
//! `down` then waits until the kernel has taken it, and deletes any still there (a
//! namespace held open by something else) as before.

use std::collections::{HashMap, HashSet};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use rtnetlink::packet_core::{NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::packet_route::nsid::{NsidAttribute, NsidMessage};

use super::error::KernelError;
use crate::model::hostnet::HOST_NETNS;
use crate::plan::{Name, Undo};
use crate::state::HostContext;

/// How long `down` waits without one host end going before it deletes the rest itself.
const STALL: Duration = Duration::from_secs(2);
/// How long it waits at most, however steadily they go.
const CAP: Duration = Duration::from_secs(60);

/// The netlink phase of a teardown, split: what is undone now, the host ends left to the
/// namespaces' deletion, and what waits for them (the host's bridges, which must outlive
/// their ports, and leaving a shared management network).
#[derive(Debug, Default)]
pub struct Split {
    pub now: Vec<Undo>,
    pub ends: Vec<Undo>,
    pub after: Vec<Undo>,
}

/// One host interface as a dump shows it.
struct Host {
    name: String,
    alias: Option<String>,
    kind: Option<InfoKind>,
    peer_nsid: Option<i32>,
}

impl Host {
    /// A veth whose peer is in one of the namespaces (by the host's ids for them) that
    /// the teardown deletes: their deletion takes it.
    fn goes_with(&self, nsids: &HashSet<i32>) -> bool {
        self.kind == Some(InfoKind::Veth) && self.peer_nsid.is_some_and(|id| nsids.contains(&id))
    }
}

/// Splits `netlink` (newest first). Without host interfaces in it, everything is `now`
/// and nothing is asked of the kernel.
pub async fn split(
    h: &rtnetlink::Handle,
    host: &HostContext,
    lab: &str,
    netlink: Vec<Undo>,
    deleted: &[Name],
) -> Result<Split, KernelError> {
    let is_host_link =
        |u: &Undo| matches!(u, Undo::DeleteLink { netns, .. } if **netns == *HOST_NETNS);
    let leaves = netlink.iter().any(|u| matches!(u, Undo::LeaveMgmt { .. }));
    if !netlink.iter().any(is_host_link) && !leaves {
        return Ok(Split {
            now: netlink,
            ..Split::default()
        });
    }
    let links = dump(h).await?;
    let nsids = nsids(h, host, deleted).await?;
    let recorded: HashSet<u32> = netlink
        .iter()
        .filter_map(|u| match u {
            Undo::DeleteLink { ifindex, .. } if is_host_link(u) => Some(*ifindex),
            _ => None,
        })
        .collect();
    let mut s = Split::default();
    let mut bridges = Vec::new();
    for u in netlink {
        let Undo::DeleteLink {
            netns,
            name,
            ifindex,
        } = &u
        else {
            match u {
                Undo::LeaveMgmt { .. } => bridges.push(u),
                u => s.now.push(u),
            }
            continue;
        };
        let found = links.get(ifindex).filter(|_| **netns == *HOST_NETNS);
        let ours = found.is_some_and(|l| {
            let seen = Some((l.name.as_str(), l.alias.as_deref()));
            crate::state::owned::host_interface(lab, name, *ifindex, seen) == Ok(true)
        });
        match found.filter(|_| ours) {
            Some(l) if l.goes_with(&nsids) => s.ends.push(u),
            Some(l) if l.kind == Some(InfoKind::Bridge) => bridges.push(u),
            // Untagged, gone, or not a veth into the lab: today's undo, which screens again
            // and reports a refusal.
            _ => s.now.push(u),
        }
    }
    // A lab swept by name (its journal lost) has no record of its host ends, yet a shared
    // network's leave must wait for its ports: the kernel's tag names them.
    if leaves {
        s.ends
            .extend(unrecorded_ends(lab, &links, &nsids, &recorded));
    }
    // With no host end left to a namespace, nothing needs to wait.
    if s.ends.is_empty() {
        s.now.extend(bridges);
    } else {
        s.after = bridges;
    }
    Ok(s)
}

/// The lab's tagged host ends into its deleted namespaces that no record names, by
/// ifindex (a dump's order is the kernel's).
fn unrecorded_ends(
    lab: &str,
    links: &HashMap<u32, Host>,
    nsids: &HashSet<i32>,
    recorded: &HashSet<u32>,
) -> Vec<Undo> {
    let mut ends: Vec<Undo> = links
        .iter()
        .filter(|(i, l)| {
            !recorded.contains(i)
                && l.goes_with(nsids)
                && crate::state::owned::host_interface(
                    lab,
                    &l.name,
                    **i,
                    Some((l.name.as_str(), l.alias.as_deref())),
                ) == Ok(true)
        })
        .map(|(i, l)| Undo::DeleteLink {
            netns: HOST_NETNS.into(),
            name: l.name.as_str().into(),
            ifindex: *i,
        })
        .collect();
    ends.sort_by_key(|u| match u {
        Undo::DeleteLink { ifindex, .. } => *ifindex,
        _ => 0,
    });
    ends
}

/// The host's links by ifindex: name, tag, kind, and the namespace id of a veth's peer.
async fn dump(h: &rtnetlink::Handle) -> Result<HashMap<u32, Host>, KernelError> {
    let msgs: Vec<LinkMessage> = h
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(KernelError::netlink)?;
    Ok(msgs
        .into_iter()
        .map(|m| {
            let mut l = Host {
                name: String::new(),
                alias: None,
                kind: None,
                peer_nsid: None,
            };
            for a in m.attributes {
                match a {
                    LinkAttribute::IfName(n) => l.name = n,
                    LinkAttribute::IfAlias(a) => l.alias = Some(a),
                    LinkAttribute::LinkNetNsId(id) => l.peer_nsid = Some(id),
                    LinkAttribute::LinkInfo(infos) => {
                        l.kind = infos.into_iter().find_map(|i| match i {
                            LinkInfo::Kind(k) => Some(k),
                            _ => None,
                        });
                    }
                    _ => {}
                }
            }
            (m.header.index, l)
        })
        .collect())
}

/// The ids the host's namespace gives the namespaces in `names` (RTM_GETNSID on each
/// one's file: the kernel's word, not the file's name). One the host has no id for has
/// no veth into it; one already gone has nothing left in it.
async fn nsids(
    h: &rtnetlink::Handle,
    host: &HostContext,
    names: &[Name],
) -> Result<HashSet<i32>, KernelError> {
    let mut ids = HashSet::with_capacity(names.len());
    for name in names.iter().filter(|n| ***n != *HOST_NETNS) {
        let Ok(file) = std::fs::File::open(host.netns_path(name)) else {
            continue;
        };
        let mut msg = NsidMessage::default();
        msg.attributes
            .push(NsidAttribute::Fd(file.as_raw_fd() as u32));
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetNsId(msg));
        req.header.flags = NLM_F_REQUEST;
        let mut replies = h
            .clone()
            .request(req)
            .map_err(|e| KernelError::Other(format!("ask the id of namespace {name}: {e}")))?;
        while let Some(m) = futures_util::StreamExt::next(&mut replies).await {
            match m.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(m)) => {
                    ids.extend(m.attributes.iter().find_map(|a| match a {
                        NsidAttribute::Id(id) if *id >= 0 => Some(*id),
                        _ => None,
                    }));
                }
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    return Err(KernelError::Other(format!(
                        "ask the id of namespace {name}: {}",
                        e.to_io()
                    )));
                }
                _ => {}
            }
        }
    }
    Ok(ids)
}

/// Waits until the kernel has taken the host ends in `ends` (their namespaces freed),
/// for as long as they keep going ([`STALL`], at most [`CAP`]), and says which are still
/// there: those are deleted as before.
pub async fn wait_gone(h: &rtnetlink::Handle, ends: Vec<Undo>) -> Result<Vec<Undo>, KernelError> {
    let (start, mut last) = (Instant::now(), Instant::now());
    let mut left = ends;
    loop {
        let links = dump(h).await?;
        let before = left.len();
        left.retain(|u| match u {
            Undo::DeleteLink { name, ifindex, .. } => {
                links.get(ifindex).is_some_and(|l| *l.name == **name)
            }
            _ => true,
        });
        if left.len() < before {
            last = Instant::now();
        }
        if left.is_empty() || last.elapsed() > STALL || start.elapsed() > CAP {
            return Ok(left);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
