//! One kernel function per link kind (see `plan/links.rs`): the rtnetlink request that
//! makes it. Taking it down is the same for every kind, `Undo::DeleteLink` of its own end.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth};

use super::error::{KernelError, missing_link_kind};
use crate::plan::links::{Link, LinkSpec, Peer};

/// Makes `l` through `h`, a handle in its own namespace. `others` are the descriptors of
/// the rest of `l.namespaces()`, in that order.
pub async fn create(h: &Handle, others: &[Arc<OwnedFd>], l: &Link) -> Result<(), KernelError> {
    let r = match &l.kind {
        LinkSpec::Veth(p) => {
            let fd = others.first().ok_or_else(|| {
                KernelError::Other(format!("no namespace open for the peer of {}", l.name))
            })?;
            veth(h, fd, l, p).await
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
