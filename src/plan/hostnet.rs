//! The steps of what a lab makes in the host's namespace ([`HOST_NETNS`]): the management
//! bridge with the host's addresses, and each host link as a veth made from the host with
//! its peer straight in the node. The host end is the link's own end, so its undo deletes
//! it (and its peer) through the host, before the node's namespace goes; nothing lingers
//! on the host while the kernel frees a deleted namespace.

use super::build::Builder;
use super::links::{Link, LinkSpec, Peer};
use super::{Name, Op, StepId};
use crate::model::Topology;
use crate::model::hostnet::{HOST_NETNS, Mgmt};

/// The host's steps for the nodes that are `local`, after each node's namespace
/// (`ready[node]`).
pub(super) fn steps(t: &Topology, b: &mut Builder, ready: &[Vec<StepId>], local: &[bool]) {
    let host = Name::from(HOST_NETNS);
    let links: Vec<_> = t.host_links.iter().filter(|h| local[h.node]).collect();
    let bridge = t
        .mgmt
        .as_ref()
        .filter(|_| links.iter().any(|h| h.mgmt))
        .map(|m| mgmt_bridge(b, m, &host));
    for h in links {
        let netns = Name::from(t.nodes[h.node].netns.as_str());
        let (own, peer) = (
            Name::from(h.host_iface.as_str()),
            Name::from(h.iface.as_str()),
        );
        let mut deps = ready[h.node].clone();
        let master = match (h.mgmt, bridge) {
            (true, Some((ix, step))) => {
                deps.push(step);
                Some(ix)
            }
            _ => None,
        };
        let made = b.push(
            Op::CreateLink(Link {
                netns: host.clone(),
                name: own.clone(),
                ifindex: h.host_ifindex,
                mac: h.host_mac,
                mtu: h.mtu,
                master,
                kind: LinkSpec::Veth(Peer {
                    peer_netns: netns.clone(),
                    peer_name: peer.clone(),
                    peer_ifindex: h.ifindex,
                    peer_mac: h.mac,
                }),
            }),
            deps,
        );
        let up = Op::SetLinkUp {
            netns: netns.clone(),
            name: peer.clone(),
            ifindex: h.ifindex,
        };
        b.push(up, vec![made]);
        let ends = [
            (&netns, &peer, h.ifindex, &h.addresses),
            (&host, &own, h.host_ifindex, &h.host_addresses),
        ];
        for (ns, name, ifindex, addrs) in ends {
            for a in addrs {
                let op = Op::AddAddress {
                    netns: ns.clone(),
                    name: name.clone(),
                    ifindex,
                    address: *a,
                };
                b.push(op, vec![made]);
            }
        }
    }
}

/// The management bridge's steps: a shared network's one `join-mgmt` (made by its first
/// lab, found by the others), or a bridge of the lab's own with the host's addresses.
/// Its ifindex, and the step host links wait for.
fn mgmt_bridge(b: &mut Builder, m: &Mgmt, host: &Name) -> (u32, StepId) {
    let name = Name::from(m.bridge.as_str());
    if let Some(network) = &m.network {
        let join = Op::JoinMgmt {
            netns: host.clone(),
            network: network.clone(),
            bridge: name,
            ifindex: m.ifindex,
            mac: m.mac,
            addresses: m.addresses.clone(),
        };
        return (m.ifindex, b.push(join, vec![]));
    }
    let made = b.push(
        Op::CreateBridge {
            netns: host.clone(),
            name: name.clone(),
            ifindex: m.ifindex,
            mac: m.mac,
            mtu: None,
            stp: false,
        },
        vec![],
    );
    for a in &m.addresses {
        b.push(
            Op::AddAddress {
                netns: host.clone(),
                name: name.clone(),
                ifindex: m.ifindex,
                address: *a,
            },
            vec![made],
        );
    }
    let up = Op::SetLinkUp {
        netns: host.clone(),
        name,
        ifindex: m.ifindex,
    };
    (m.ifindex, b.push(up, vec![made]))
}

/// How many steps [`steps`] emits at most, for the plan's one allocation.
pub(super) fn estimate(t: &Topology) -> usize {
    let links: usize = t
        .host_links
        .iter()
        .map(|h| 2 + h.addresses.len() + h.host_addresses.len())
        .sum();
    links + t.mgmt.as_ref().map_or(0, |m| 2 + m.addresses.len())
}
