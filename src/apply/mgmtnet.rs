//! A management network shared by several labs (`mgmt: { network: NAME }`), in the
//! engine: at `up` the lab takes its addresses from the network's registry under the host
//! lock, before any step runs, and its plan is given them; `join-mgmt` makes the bridge
//! if no member has, and `leave-mgmt` removes the lab from the registry and, for the
//! last member, deletes the bridge. Each takes the host lock, so a join and the last
//! leave never interleave.

use ipnet::IpNet;
use rtnetlink::Handle;

use super::error::KernelError;
use crate::model::Topology;
use crate::plan::{Op, Plan};
use crate::state::mgmtnet::{self, Held, Join, Refusal, Shape, Want};
use crate::state::{HostContext, HostLock};

/// What the lab asks of its shared network, `None` when its `mgmt:` is its own: for the
/// nodes `plan` makes, since a multi-host lab's share takes addresses on this host's
/// network for its own nodes only.
pub fn join_for_plan(t: &Topology, plan: &Plan, file: &str) -> Option<Join> {
    let made: std::collections::HashSet<&str> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::CreateNetns { netns } => Some(&**netns),
            _ => None,
        })
        .collect();
    join_of_nodes(t, file, |netns| made.contains(netns))
}

fn join_of_nodes(t: &Topology, file: &str, here: impl Fn(&str) -> bool) -> Option<Join> {
    let m = t.mgmt.as_ref()?;
    let network = m.network.clone()?;
    let nodes = t
        .host_links
        .iter()
        .filter(|h| allocated(t, h) && here(&t.nodes[h.node].netns))
        .map(|h| Want {
            node: t.nodes[h.node].name.clone(),
            planned: h.addresses.clone(),
            written: h.written.clone(),
            at: h.written_at.unwrap_or(m.span),
        })
        .collect();
    Some(Join {
        network,
        shape: Shape {
            bridge: m.bridge.clone(),
            ifindex: m.ifindex,
            host: m.addresses.clone(),
        },
        at: m.span,
        lab: t.lab.clone(),
        file: file.to_string(),
        nodes,
    })
}

/// At `up`, under the host lock and before anything is made: the lab's place on its
/// shared network, taken from the registry (not yet written: that waits for the journal
/// to say so). `None` when this host's share joins no shared network (its nodes all
/// `mgmt: false`, say); an error naming both labs when the lab does not fit.
pub fn reserve(
    host: &HostContext,
    t: &Topology,
    plan: &Plan,
    file: &str,
) -> Result<Option<(mgmtnet::Registry, Vec<Held>)>, super::ApplyError> {
    let joins = plan
        .steps
        .iter()
        .any(|s| matches!(s.op, Op::JoinMgmt { .. }));
    let Some(j) = join_for_plan(t, plan, file).filter(|_| joins) else {
        return Ok(None);
    };
    let reg = mgmtnet::read(host, &j.network)?;
    mgmtnet::join(reg, &j).map(Some).map_err(|refused| {
        let file = if file.is_empty() { "<lab>" } else { file };
        super::ApplyError::MgmtRefused {
            lab: t.lab.clone(),
            refused: located(file, &refused),
        }
    })
}

/// Whether `h` is a node's own link to the management bridge (`mgmt0`), whose
/// addresses the network's registry hands out, not a `mgmt: true` host link the file
/// addressed itself.
fn allocated(t: &Topology, h: &crate::model::hostnet::HostLink) -> bool {
    t.mgmt.as_ref().is_some_and(|m| h.mgmt && h.span == m.span)
}

/// Refusals as `FILE:LINE:COL: what`, the way compile errors are located.
pub fn located(file: &str, refused: &[Refusal]) -> Vec<String> {
    refused
        .iter()
        .map(|r| format!("{file}:{}:{}: {}", r.at.line, r.at.col, r.what))
        .collect()
}

/// The plan with the addresses the registry gave the lab's nodes on the network, in
/// place of those compile chose alone.
pub fn with_addresses(plan: &Plan, t: &Topology, held: &[Held]) -> Plan {
    let mut out = plan.clone();
    for h in t.host_links.iter().filter(|h| allocated(t, h)) {
        let node = &t.nodes[h.node];
        let Some(got) = held.iter().find(|x| x.node == node.name) else {
            continue;
        };
        for s in &mut out.steps {
            if let Op::AddAddress {
                netns,
                ifindex,
                address,
                ..
            } = &mut s.op
                && **netns == *node.netns
                && *ifindex == h.ifindex
                && let Some(a) = got
                    .addresses
                    .iter()
                    .find(|a| a.addr().is_ipv6() == address.addr().is_ipv6())
            {
                *address = *a;
            }
        }
    }
    out
}

/// The host lock, from inside the engine (never held by the caller while steps run).
fn host_lock(host: &HostContext) -> Result<HostLock, KernelError> {
    tokio::task::block_in_place(|| HostLock::acquire(host))
        .map_err(|e| KernelError::Other(format!("host lock: {e}")))
}

/// The host's interface called `name`: its ifindex and alias.
async fn by_name(h: &Handle, name: &str) -> Result<Option<(u32, Option<String>)>, KernelError> {
    use futures_util::TryStreamExt;
    use rtnetlink::packet_route::link::LinkAttribute;
    let found = match h
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
    {
        Ok(m) => m,
        Err(e) => match KernelError::netlink(e) {
            e if e.is_gone() || e.errno() == Some(nix::errno::Errno::ENODEV as i32) => None,
            e => return Err(e),
        },
    };
    Ok(found.map(|m| {
        let alias = m.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfAlias(s) => Some(s.clone()),
            _ => None,
        });
        (m.header.index, alias)
    }))
}

/// Whether the host has the network's bridge already, as the network's: its ifindex when
/// it is there with the network's tag; an error when an interface of that name is there
/// without it (never adopted).
pub async fn present(h: &Handle, network: &str, bridge: &str) -> Result<Option<u32>, KernelError> {
    let tag = mgmtnet::shared_tag(network);
    match by_name(h, bridge).await? {
        None => Ok(None),
        Some((ix, Some(alias))) if alias == tag => Ok(Some(ix)),
        Some((ix, alias)) => Err(KernelError::NotTheLabs(format!(
            "host interface `{bridge}` (index {ix}) is not shared management network `{network}`'s: its alias is {}, not `{tag}`; nslab never adopts a host interface it did not make",
            alias.map_or("unset".into(), |a| format!("`{}`", a.escape_debug()))
        ))),
    }
}

/// `join-mgmt`: under the host lock, the bridge is found as the network's, or made (the
/// lab is the first member to need it): tagged at once, given the host's addresses and
/// brought up; deleted again if any of that fails. One found is given them again: a first
/// member killed between tagging and addressing it (or a hand) may have left it without.
pub async fn join(
    h: &Handle,
    host: &HostContext,
    op: (&str, &str, u32, [u8; 6], &[IpNet]),
) -> Result<(), KernelError> {
    let (network, bridge, ifindex, mac, addresses) = op;
    let _lock = host_lock(host)?;
    if let Some(ix) = present(h, network, bridge).await? {
        if ix != ifindex {
            return Err(KernelError::Other(format!(
                "shared management network `{network}`: bridge `{bridge}` has index {ix}, not {ifindex}"
            )));
        }
        return host_side(h, ix, addresses, true).await;
    }
    use rtnetlink::{LinkBridge, LinkMessageBuilder};
    let msg = LinkMessageBuilder::<LinkBridge>::new(bridge)
        .index(ifindex)
        .address(mac.to_vec())
        .build();
    h.link()
        .add(msg)
        .execute()
        .await
        .map_err(KernelError::netlink)?;
    let made = async {
        super::hostnet::tag_as(h, mgmtnet::shared_tag(network), ifindex).await?;
        host_side(h, ifindex, addresses, false).await
    };
    let r = made.await;
    if r.is_err() {
        let _ = h.link().del(ifindex).execute().await;
    }
    r
}

/// The host's addresses on the network's bridge, and the bridge up; on a bridge found
/// (`found`), an address it has already is no error.
async fn host_side(
    h: &Handle,
    ifindex: u32,
    addresses: &[IpNet],
    found: bool,
) -> Result<(), KernelError> {
    for a in addresses {
        match super::netlink::add_address(h, ifindex, *a).await {
            Err(e) if found && e.errno() == Some(nix::errno::Errno::EEXIST as i32) => {}
            r => r?,
        }
    }
    let up = rtnetlink::LinkUnspec::new_with_index(ifindex).up().build();
    h.link()
        .change(up)
        .execute()
        .await
        .map_err(KernelError::netlink)
}

/// `leave-mgmt`: under the host lock, the lab leaves the registry; the last member out
/// deletes the bridge, only while it has its name, number and the network's tag, and no
/// port of another's. Run
/// twice, or for a lab that never joined, it changes nothing of the other members'.
pub async fn leave(
    h: &Handle,
    host: &HostContext,
    lab: &str,
    op: (&str, &str, u32),
) -> Result<(), KernelError> {
    let (network, bridge, ifindex) = op;
    let _lock = host_lock(host)?;
    let state = |e: crate::state::StateError| KernelError::Other(e.to_string());
    let last = match mgmtnet::read(host, network).map_err(state)? {
        Some(mut reg) => {
            // Not a member (an `up` refused or killed before the registry had it): the
            // registry is left as it is, so a rollback never depends on writing it.
            let member = reg.members.iter().any(|m| m.lab == lab);
            let last = mgmtnet::leave(&mut reg, lab);
            if member {
                mgmtnet::write(host, &reg).map_err(state)?;
            }
            last
        }
        None => {
            // No registry left (never written, or removed by hand): its directory goes
            // as with the last registry, unless another network's keeps it.
            let _ = std::fs::remove_dir(host.run_dir.join("mgmt"));
            true
        }
    };
    if !last {
        return Ok(());
    }
    match present(h, network, bridge).await? {
        Some(ix) if ix == ifindex => {
            // The registry may be wrong (lost, or emptied by hand): a port of another lab
            // on the bridge says someone is still on the network.
            let others = others_ports(h, ix, lab).await?;
            if !others.is_empty() {
                return Err(KernelError::NotTheLabs(format!(
                    "shared management network `{network}`: no member is left in its registry, but bridge `{bridge}` still has ports not lab `{lab}`'s ({}); left in place, it goes with their lab's `down`",
                    others.join(", ")
                )));
            }
            h.link()
                .del(ix)
                .execute()
                .await
                .map_err(KernelError::netlink)
        }
        _ => Ok(()),
    }
}

/// The ports of bridge `ix` that do not carry `lab`'s tag, by name.
async fn others_ports(h: &Handle, ix: u32, lab: &str) -> Result<Vec<String>, KernelError> {
    let tag = crate::state::owned::host_tag(lab);
    let mut out = Vec::new();
    for port in super::inspect::links(h).await? {
        if port.master != Some(ix) {
            continue;
        }
        // A port gone since the dump is no one's.
        if let Some((_, alias)) = by_name(h, &port.name).await?
            && alias.as_deref() != Some(tag.as_str())
        {
            out.push(format!("`{}`", port.name.escape_debug()));
        }
    }
    Ok(out)
}

/// `apply` to a lab on a shared network: the new plan keeps the addresses the lab's nodes
/// hold in the registry (`None` when the lab joins no shared network). Joining a network
/// by `apply`, or adding a node to one, would need addresses taken under the host lock
/// like `up`'s: refused, naming the way that works.
pub fn for_apply(host: &HostContext, t: &Topology, plan: &Plan) -> Result<Option<Plan>, String> {
    let Some(j) = join_for_plan(t, plan, "") else {
        return Ok(None);
    };
    let down_up = format!("bring lab `{}` down and up instead", t.lab);
    let reg = mgmtnet::read(host, &j.network).map_err(|e| e.to_string())?;
    let Some(member) = reg
        .as_ref()
        .and_then(|r| r.members.iter().find(|m| m.lab == t.lab))
    else {
        return Err(format!(
            "`apply` does not join a lab to shared management network `{}`: {down_up}",
            j.network
        ));
    };
    for w in &j.nodes {
        let held = member.nodes.iter().find(|n| n.node == w.node);
        let keeps = held.is_some_and(|h| w.written.iter().all(|a| h.addresses.contains(a)));
        if !keeps {
            return Err(format!(
                "`apply` does not add node `{}` to shared management network `{}`, nor change its written address: {down_up}",
                w.node, j.network
            ));
        }
    }
    Ok(Some(with_addresses(plan, t, &member.nodes)))
}

/// A change that joins or leaves a shared network (or changes it) is refused, as above.
pub fn refuse_membership_change(d: &crate::plan::diff::Diff) -> Result<(), String> {
    let joins = d.add.steps.iter().find_map(|s| match &s.op {
        Op::JoinMgmt { network, .. } => Some(network.clone()),
        _ => None,
    });
    let leaves = d.remove.iter().find_map(|u| match u {
        crate::plan::Undo::LeaveMgmt { network, .. } => Some(network.clone()),
        _ => None,
    });
    match joins.or(leaves) {
        Some(network) => Err(format!(
            "`apply` does not join, leave or change shared management network `{network}`: bring lab `{}` down and up instead",
            d.lab
        )),
        None => Ok(()),
    }
}
