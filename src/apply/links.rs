//! One kernel function per link kind (see `plan/links.rs`): the rtnetlink request that
//! makes it. Taking it down is the same for every kind: deleting its own end
//! (`Undo::DeleteLink`, or `Undo::DeleteTunnel` before its namespace goes).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use std::net::IpAddr;

use futures_util::StreamExt;
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute};
use rtnetlink::packet_route::neighbour::NeighbourFlags;
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, LinkVxlan};

use super::error::{KernelError, missing_link_kind};
use crate::plan::links::{Join, Link, LinkSpec, Peer, Vxlan};

/// Where a link is made from: a handle and descriptor of its own namespace, the
/// descriptors of the rest of `l.namespaces()` in that order, and a handle in the
/// namespace nslab runs in when the kind needs one (`LinkSpec::from_home`).
pub struct At<'a> {
    pub own: &'a Handle,
    pub own_fd: &'a OwnedFd,
    pub others: &'a [Arc<OwnedFd>],
    pub home: Option<&'a Handle>,
}

/// Makes `l`.
pub async fn create(at: &At<'_>, l: &Link) -> Result<(), KernelError> {
    let r = match &l.kind {
        LinkSpec::Veth(p) => {
            let fd = at.others.first().ok_or_else(|| {
                KernelError::Other(format!("no namespace open for the peer of {}", l.name))
            })?;
            veth(at.own, fd, l, p).await
        }
        LinkSpec::Vxlan(v) => {
            let home = at.home.ok_or_else(|| {
                KernelError::Other(format!("no handle on this host for vxlan {}", l.name))
            })?;
            match vxlan(home, at.own_fd, l, v).await {
                Ok(()) => flood(at.own, l, v).await,
                e => e,
            }
        }
        LinkSpec::Join(j) => join(at.own, at.own_fd, l, j).await,
        LinkSpec::Dummy(_) => super::devices::dummy(at.own, l).await,
        LinkSpec::Vlan(v) => super::devices::vlan(at.own, l, v).await,
        LinkSpec::Macvlan(m) => {
            let home = at.home.ok_or_else(|| {
                KernelError::Other(format!("no handle on this host for macvlan {}", l.name))
            })?;
            super::devices::macvlan(home, at.own_fd, l, m).await
        }
    };
    r.map_err(|e| missing_link_kind(l.kind.kernel_kind(), e))
}

/// A veth pair whose peer is created straight into its namespace by `peer_fd`, so it
/// never appears on the host. One transmit queue each (see the README's decisions).
async fn veth(h: &Handle, peer_fd: &OwnedFd, l: &Link, p: &Peer) -> Result<(), KernelError> {
    // The peer must not be created up: the kernel answers ENOTCONN.
    let mut peer = LinkUnspec::new_with_name(&p.peer_name)
        .index(p.peer_ifindex)
        .address(p.peer_mac.to_vec())
        .setns_by_fd(peer_fd.as_raw_fd())
        .append_extra_attribute(LinkAttribute::NumTxQueues(1));
    let mut link = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(l.name.to_string())
        .index(l.ifindex)
        .address(l.mac.to_vec())
        .append_extra_attribute(LinkAttribute::NumTxQueues(1));
    if let Some(m) = l.mtu {
        peer = peer.mtu(m);
        link = link.mtu(m);
    }
    if let Some(m) = l.master {
        link = link.controller(m);
    }
    let msg = link
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
        .build();
    // `peer_fd` is borrowed, so it stays open until the request is answered.
    h.link()
        .add(msg)
        .execute()
        .await
        .map_err(KernelError::netlink)
}

/// A veth pair joining two bridges in one namespace: made as a member's port is (the
/// own end up and enslaved, the peer down, since a peer cannot be created up), then the
/// peer enslaved to its own bridge and brought up in one more request.
async fn join(h: &Handle, fd: &OwnedFd, l: &Link, j: &Join) -> Result<(), KernelError> {
    let peer = Peer {
        peer_netns: l.netns.clone(),
        peer_name: j.peer_name.clone(),
        peer_ifindex: j.peer_ifindex,
        peer_mac: j.peer_mac,
    };
    veth(h, fd, l, &peer).await?;
    let msg = LinkUnspec::new_with_index(j.peer_ifindex)
        .controller(j.peer_master)
        .up()
        .build();
    h.link()
        .set(msg)
        .execute()
        .await
        .map_err(KernelError::netlink)
}

/// A VXLAN to another host, asked for from this host's namespace with the node's as its
/// target: the kernel makes the device there under the interface's name, while its UDP
/// socket (and so the underlay it uses) stays in the namespace that asked. No stitching
/// veth and no tc redirect. Learning is off: the only far end is `remote`.
async fn vxlan(home: &Handle, node_fd: &OwnedFd, l: &Link, v: &Vxlan) -> Result<(), KernelError> {
    let mut b = LinkMessageBuilder::<LinkVxlan>::new(&l.name)
        .id(v.vni)
        .port(v.port)
        .learning(false)
        .setns_by_fd(node_fd.as_raw_fd());
    b = match (v.local, v.remote) {
        (IpAddr::V4(local), Some(IpAddr::V4(remote))) => b.local(local).remote(remote),
        (IpAddr::V6(local), Some(IpAddr::V6(remote))) => b.local6(local).remote6(remote),
        (IpAddr::V4(local), None) => b.local(local),
        (IpAddr::V6(local), None) => b.local6(local),
        _ => {
            return Err(KernelError::Other(format!(
                "vxlan {}: {} and {:?} are of different families",
                l.name, v.local, v.remote
            )));
        }
    };
    // `node_fd` is borrowed, so it stays open until the request is answered.
    add_up(home, own_end(b, l, true)).await
}

/// The own end's ifindex, MTU and bridge, as every kind made whole in one request sets
/// them; the MAC too unless the kind's kernel picks it (`mac: false`, a passthru macvlan).
pub(super) fn own_end<T>(b: LinkMessageBuilder<T>, l: &Link, mac: bool) -> LinkMessageBuilder<T> {
    let mut b = b.index(l.ifindex);
    if mac {
        b = b.address(l.mac.to_vec());
    }
    if let Some(m) = l.mtu {
        b = b.mtu(m);
    }
    if let Some(m) = l.master {
        b = b.controller(m);
    }
    b
}

/// Asks for `b`, up.
pub(super) async fn add_up<T>(h: &Handle, b: LinkMessageBuilder<T>) -> Result<(), KernelError> {
    h.link()
        .add(b.up().build())
        .execute()
        .await
        .map_err(KernelError::netlink)
}

/// Head-end replication: an all-zeros FDB entry towards each other replica's host, each
/// appended (`bridge fdb append 00:00:00:00:00:00 dev vx dst PEER`), through a handle in
/// the device's own namespace.
async fn flood(own: &Handle, l: &Link, v: &Vxlan) -> Result<(), KernelError> {
    for peer in &v.flood {
        let mut req = own
            .neighbours()
            .add_bridge(l.ifindex, &[0; 6])
            .destination(*peer);
        req.message_mut().header.flags = NeighbourFlags::Own;
        let msg = req.message_mut().clone();
        let mut nl = NetlinkMessage::from(RouteNetlinkMessage::NewNeighbour(msg));
        nl.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND;
        let mut response = own.clone().request(nl).map_err(KernelError::netlink)?;
        while let Some(m) = response.next().await {
            if let NetlinkPayload::Error(e) = m.payload
                && e.code.is_some()
            {
                return Err(KernelError::netlink(rtnetlink::Error::NetlinkError(e)));
            }
        }
    }
    Ok(())
}
