//! The guard rails of what a lab makes in the host's namespace (host links, the
//! management network): before `up` makes anything, every name it would create there
//! must be free, every ifindex unused, and every subnet clear of the host's addresses and
//! routes. nslab never adopts, changes or deletes a host interface it did not make.

use std::net::IpAddr;

use ipnet::IpNet;
use rtnetlink::packet_route::route::RouteAttribute;

use super::error::KernelError;
use crate::model::hostnet::HOST_NETNS;
use crate::plan::{Op, Plan, Undo};

/// Host interfaces by name and ifindex.
type Named = Vec<(String, u32)>;

/// A shared management network a plan joins: its name, bridge and the host's addresses
/// the lab gives the bridge.
type Shared = (String, String, Vec<IpNet>);

/// What the plan would make on the host, by name and ifindex, and the subnets it would
/// route there; and the shared management networks it joins.
fn planned(plan: &Plan) -> (Named, Vec<IpNet>, Vec<Shared>) {
    let (mut links, mut nets, mut shared) = (Vec::new(), Vec::new(), Vec::new());
    for s in plan.steps.iter().filter(|s| s.op.netns() == HOST_NETNS) {
        match &s.op {
            Op::CreateBridge { name, ifindex, .. } => links.push((name.to_string(), *ifindex)),
            Op::CreateLink(l) => links.push((l.name.to_string(), l.ifindex)),
            Op::AddAddress { address, .. } => nets.push(address.trunc()),
            Op::JoinMgmt {
                network,
                bridge,
                ifindex,
                addresses,
                ..
            } => {
                links.push((bridge.to_string(), *ifindex));
                nets.extend(addresses.iter().map(IpNet::trunc));
                shared.push((network.clone(), bridge.to_string(), addresses.clone()));
            }
            _ => {}
        }
    }
    (links, nets, shared)
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Every clash between the plan's host objects and the host as it is now, one sentence
/// each; empty when the plan makes nothing on the host.
pub async fn clashes(plan: &Plan) -> Result<Vec<String>, KernelError> {
    clashes_after(plan, &[]).await
}

/// [`clashes`] with the host as it will be once `going` (what an `apply` removes before
/// it adds) is gone: checked before anything changes, so a refused `apply` leaves the lab
/// as it ran, while a link made anew does not clash with itself.
pub async fn clashes_after(plan: &Plan, going: &[Undo]) -> Result<Vec<String>, KernelError> {
    let (mut links, nets, shared) = planned(plan);
    if links.is_empty() && nets.is_empty() {
        return Ok(Vec::new());
    }
    // Tokio's threads stay in nslab's own namespace: this socket is the host's.
    let (conn, h, _) = rtnetlink::new_connection().map_err(KernelError::Io)?;
    tokio::spawn(conn);
    let mut have = super::inspect::links(&h).await?;
    let going = deletable(&h, &plan.lab, going).await?;
    let mut gone = without(&mut have, &going);
    let mut out = Vec::new();
    // A shared network another lab made is joined, not made: its bridge, addresses and
    // routes are the network's own, so they clash with nothing of the plan's.
    for (network, bridge, mine) in &shared {
        match super::mgmtnet::present(&h, network, bridge).await {
            Ok(Some(ix)) => {
                if let Some(why) = have
                    .iter()
                    .find(|l| l.ifindex == ix)
                    .and_then(|l| foreign_addresses(network, bridge, &l.addresses, mine))
                {
                    out.push(why);
                }
                links.retain(|(name, _)| name != bridge);
                have.retain(|l| l.ifindex != ix);
                gone.links.push(ix);
            }
            Ok(None) => {}
            Err(KernelError::NotTheLabs(why)) => {
                links.retain(|(name, _)| name != bridge);
                out.push(why);
            }
            Err(e) => return Err(e),
        }
    }
    for (name, ix) in &links {
        if have.iter().any(|l| l.name == *name) {
            out.push(format!(
                "interface `{name}` already exists on the host; nslab never adopts or deletes a host interface it did not make (rename it in the file, or remove the host's)"
            ));
        } else if let Some(l) = have.iter().find(|l| l.ifindex == *ix) {
            out.push(format!(
                "ifindex {ix}, which `{name}` would get, is taken on the host by `{}`",
                l.name
            ));
        }
    }
    // One dump of the host's routes for every subnet (it was one per subnet).
    let routes = if nets.is_empty() {
        Vec::new()
    } else {
        let mut routes = host_routes(&h).await?;
        // The routes of what goes: through its links, or its addresses' own prefixes.
        routes.retain(|(dst, oifs)| {
            let through_gone = !oifs.is_empty() && oifs.iter().all(|i| gone.links.contains(i));
            !(through_gone || gone.prefixes.contains(dst))
        });
        routes.into_iter().map(|(dst, _)| dst).collect()
    };
    for net in &nets {
        for l in &have {
            if let Some(a) = l.addresses.iter().find(|a| overlaps(&a.trunc(), net)) {
                out.push(format!(
                    "subnet {net} overlaps address {a} of the host's `{}`",
                    l.name
                ));
            }
        }
        for dst in &routes {
            if overlaps(dst, net) {
                out.push(format!("subnet {net} overlaps the host's route to {dst}"));
            }
        }
    }
    Ok(out)
}

/// A shared network's bridge found on the host with addresses the lab would not give it
/// (a network of other subnets, its registry lost): joining would add the lab's subnets
/// beside them on one bridge. The refusal names the bridge, its addresses and the
/// command that removes it; `None` when every address is one the lab gives it too (or
/// the kernel's own IPv6 link-local one).
fn foreign_addresses(network: &str, bridge: &str, has: &[IpNet], mine: &[IpNet]) -> Option<String> {
    let link_local = |a: &IpNet| matches!(a.addr(), IpAddr::V6(v6) if v6.is_unicast_link_local());
    let foreign: Vec<String> = has
        .iter()
        .filter(|a| !link_local(a) && !mine.contains(a))
        .map(IpNet::to_string)
        .collect();
    if foreign.is_empty() {
        return None;
    }
    let ours: Vec<String> = mine.iter().map(IpNet::to_string).collect();
    Some(format!(
        "shared management network `{network}`: bridge `{bridge}` is on the host with addresses {}, not this lab's ({}): no member agrees with this lab on the network (its registry, `mgmt/{network}.json` in nslab's run directory, is gone or names other subnets), and joining would put both on one bridge. If no lab uses it, remove it: `ip link del dev {bridge}`; else give this lab the network's subnets",
        foreign.join(", "),
        if ours.is_empty() {
            "none".to_string()
        } else {
            ours.join(", ")
        }
    ))
}

/// Of `going`, what will be gone: a host interface (or an address on one) only when the
/// kernel says it is the lab's ([`still_ours`]); one left in place still clashes.
async fn deletable(
    h: &rtnetlink::Handle,
    lab: &str,
    going: &[Undo],
) -> Result<Vec<Undo>, KernelError> {
    let mut sure = Vec::with_capacity(going.len());
    for u in going {
        let on = match u {
            Undo::DeleteLink {
                netns,
                name,
                ifindex,
            } if **netns == *HOST_NETNS => Some((name, ifindex)),
            Undo::DeleteAddress {
                netns,
                ifindex,
                link: Some(name),
                ..
            } if **netns == *HOST_NETNS => Some((name, ifindex)),
            _ => None,
        };
        let kept = match on {
            Some((name, ifindex)) => match still_ours(h, lab, *ifindex, name).await {
                Ok(ours) => ours,
                Err(KernelError::NotTheLabs(_)) => false,
                Err(e) => return Err(e),
            },
            None => true,
        };
        if kept {
            sure.push(u.clone());
        }
    }
    Ok(sure)
}

/// What of the host's is gone by the time an `apply` adds: the ifindexes of its links
/// and the prefixes of its addresses.
#[derive(Default)]
struct Gone {
    links: Vec<u32>,
    prefixes: Vec<IpNet>,
}

/// Takes out of `have` the host links and addresses that `going` deletes (a link only
/// while it still has the name the lab gave it), and says what they were.
fn without(have: &mut Vec<super::inspect::LinkState>, going: &[Undo]) -> Gone {
    let mut gone = Gone::default();
    for u in going.iter().filter(|u| u.netns() == HOST_NETNS) {
        match u {
            Undo::DeleteLink { name, ifindex, .. } => {
                if let Some(l) = have
                    .iter()
                    .find(|l| l.ifindex == *ifindex && *l.name == **name)
                {
                    gone.prefixes.extend(l.addresses.iter().map(IpNet::trunc));
                    gone.links.push(l.ifindex);
                }
            }
            Undo::DeleteAddress {
                ifindex, address, ..
            } => {
                for l in have.iter_mut().filter(|l| l.ifindex == *ifindex) {
                    l.addresses.retain(|a| a != address);
                }
                gone.prefixes.push(address.trunc());
            }
            _ => {}
        }
    }
    have.retain(|l| !gone.links.contains(&l.ifindex));
    gone
}

/// The destinations of the host's main table with their output interfaces, its default
/// routes left out (every subnet is inside those).
async fn host_routes(h: &rtnetlink::Handle) -> Result<Vec<(IpNet, Vec<u32>)>, KernelError> {
    let routes = super::inspect::main_table(h).await?;
    Ok(routes
        .iter()
        .filter(|r| r.header.destination_prefix_length > 0)
        .filter_map(|r| {
            let dst: IpAddr = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(d) => super::inspect::route_addr(d),
                _ => None,
            })?;
            let oifs = r
                .attributes
                .iter()
                .filter_map(|a| match a {
                    RouteAttribute::Oif(i) => Some(*i),
                    _ => None,
                })
                .collect();
            Some((
                IpNet::new(dst, r.header.destination_prefix_length).ok()?,
                oifs,
            ))
        })
        .collect())
}

/// Whether the host's interface at `ifindex` is still the one the lab made under `name`
/// (see `state::owned::host_interface`): `Ok(true)` when it is, with the lab's tag the
/// kernel keeps; `Ok(false)` when it is gone or the number is someone else's now, so an
/// undo never deletes a host interface that took over a freed number; an error when an
/// interface of that name is there without the lab's tag, since no file on disk (journal
/// or stored plan) proves a host interface is the lab's.
pub async fn still_ours(
    h: &rtnetlink::Handle,
    lab: &str,
    ifindex: u32,
    name: &str,
) -> Result<bool, KernelError> {
    use futures_util::TryStreamExt;
    use rtnetlink::packet_route::link::LinkAttribute;
    let found = match h
        .link()
        .get()
        .match_index(ifindex)
        .execute()
        .try_next()
        .await
    {
        Ok(m) => m,
        // ENODEV: no interface has that number any more.
        Err(e) => match KernelError::netlink(e) {
            e if e.errno() == Some(nix::errno::Errno::ENODEV as i32) => None,
            e => return Err(e),
        },
    };
    let attrs = found
        .as_ref()
        .map(|m| &m.attributes[..])
        .unwrap_or_default();
    let found_name = attrs.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    });
    let alias = attrs.iter().find_map(|a| match a {
        LinkAttribute::IfAlias(s) => Some(s.as_str()),
        _ => None,
    });
    let found = found_name.map(|n| (n, alias));
    crate::state::owned::host_interface(lab, name, ifindex, found).map_err(KernelError::NotTheLabs)
}

/// Tags the host interface at `ifindex`, just made, as the lab's. The kernel takes no
/// `IFLA_IFALIAS` when it creates a link (rtnl_create_link ignores it), so this is a
/// second request; if it fails the interface is deleted again, since an untagged one
/// would never be deleted by nslab.
pub async fn tag(h: &rtnetlink::Handle, lab: &str, ifindex: u32) -> Result<(), KernelError> {
    tag_as(h, crate::state::owned::host_tag(lab), ifindex).await
}

/// [`tag`] with any alias (a shared management network's bridge carries its network's).
pub async fn tag_as(h: &rtnetlink::Handle, alias: String, ifindex: u32) -> Result<(), KernelError> {
    use rtnetlink::packet_route::link::LinkAttribute;
    let msg = rtnetlink::LinkUnspec::new_with_index(ifindex)
        .append_extra_attribute(LinkAttribute::IfAlias(alias))
        .build();
    let tagged = h
        .link()
        .set(msg)
        .execute()
        .await
        .map_err(KernelError::netlink);
    if tagged.is_err() {
        let _ = h.link().del(ifindex).execute().await;
    }
    tagged
}
