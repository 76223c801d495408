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
            "host interface `{bridge}` (index {ix}) is not shared management network `{network}`'s: its alias is {}, not `{tag}`; nslab never adopts a host interface it did not make. If it is the network's bridge and its alias was changed by hand, put the tag back: `ip link set dev {bridge} alias {tag}`; if it is not, remove it (`ip link del dev {bridge}`) or give the network another `bridge:`",
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

/// A lab's place on the shared network its file names, as the registry gives it now,
/// with the plan that place gives it.
pub struct Placed {
    pub plan: Plan,
    pub network: String,
    pub shape: Shape,
    pub file: String,
    pub held: Vec<Held>,
    /// The labs on the network besides this one, in the order they joined.
    pub others: Vec<String>,
    /// Whether the network is up: its registry names members (the lab itself, or others).
    pub live: bool,
}

/// The lab's place on its shared network, read from the registry and written nowhere:
/// for `up` as [`mgmtnet::join`] gives it, for a `running` lab (`apply`) as
/// [`mgmtnet::rejoin`] does (its nodes keep what they hold). `None` when this host's
/// share joins no shared network; the refusals, located, when the lab does not fit.
pub fn place(
    host: &HostContext,
    t: &Topology,
    plan: &Plan,
    file: &str,
    running: bool,
) -> Result<Option<Placed>, super::ApplyError> {
    let joins = plan
        .steps
        .iter()
        .any(|s| matches!(s.op, Op::JoinMgmt { .. }));
    let Some(j) = join_for_plan(t, plan, file).filter(|_| joins) else {
        return Ok(None);
    };
    let reg = mgmtnet::read(host, &j.network)?;
    let live = reg.as_ref().is_some_and(|r| !r.members.is_empty());
    let placed = if running {
        mgmtnet::rejoin(reg, &j)
    } else {
        mgmtnet::join(reg, &j)
    };
    let (reg, held) = placed.map_err(|refused| {
        let file = if file.is_empty() { "<lab>" } else { file };
        super::ApplyError::MgmtRefused {
            lab: t.lab.clone(),
            refused: located(file, &refused),
        }
    })?;
    Ok(Some(Placed {
        plan: with_addresses(plan, t, &held),
        others: reg
            .members
            .iter()
            .filter(|m| m.lab != t.lab)
            .map(|m| m.lab.clone())
            .collect(),
        live,
        network: j.network,
        shape: reg.shape,
        file: j.file,
        held,
    }))
}

/// The lab's membership of one network before an `apply` changed it, to put back if the
/// change is rolled back.
#[derive(Debug, Clone)]
pub struct Before {
    network: String,
    shape: Shape,
    entry: Option<mgmtnet::Member>,
}

/// At the start of an `apply`, under the host lock the caller holds since it placed the
/// lab: what the lab holds on every network it is on or joins, and, on the network the
/// file names, the addresses it will hold added to those it holds (both stay the lab's
/// until the change is over: it may yet be rolled back).
pub fn begin_apply(
    host: &HostContext,
    lab: &str,
    placed: Option<&Placed>,
) -> Result<Vec<Before>, crate::state::StateError> {
    let mut nets = mgmtnet::memberships(host, lab);
    if let Some(p) = placed
        && !nets.contains(&p.network)
    {
        nets.push(p.network.clone());
    }
    let mut before = Vec::new();
    for network in nets {
        let reg = mgmtnet::read(host, &network)?;
        let entry = reg
            .as_ref()
            .and_then(|r| r.members.iter().find(|m| m.lab == lab).cloned());
        let shape = match (&reg, placed) {
            (Some(r), _) => r.shape.clone(),
            (None, Some(p)) if p.network == network => p.shape.clone(),
            (None, _) => continue,
        };
        before.push(Before {
            network,
            shape,
            entry,
        });
    }
    if let Some(p) = placed {
        let was = before
            .iter()
            .find(|b| b.network == p.network)
            .and_then(|b| b.entry.as_ref())
            .map(|m| m.nodes.clone())
            .unwrap_or_default();
        set(host, p, lab, mgmtnet::union(&was, &p.held))?;
    }
    Ok(before)
}

/// The lab's membership of `p.network` set to `nodes`: refused when another lab holds
/// one of them now.
fn set(
    host: &HostContext,
    p: &Placed,
    lab: &str,
    nodes: Vec<Held>,
) -> Result<(), crate::state::StateError> {
    let mut reg = mgmtnet::read(host, &p.network)?.unwrap_or_else(|| mgmtnet::Registry {
        network: p.network.clone(),
        shape: p.shape.clone(),
        members: Vec::new(),
    });
    mgmtnet::set_member(&mut reg, lab, &p.file, nodes).map_err(|e| {
        crate::state::StateError::Io {
            path: mgmtnet::path(host, &p.network),
            source: std::io::Error::other(e),
        }
    })?;
    mgmtnet::write(host, &reg)
}

/// Once an `apply`'s change is made: the lab holds on its network only what its nodes
/// have now; the addresses of nodes that left it are free for other labs.
pub fn finish_apply(
    host: &HostContext,
    lab: &str,
    placed: &Placed,
) -> Result<(), crate::state::StateError> {
    let _lock = tokio::task::block_in_place(|| HostLock::acquire(host))?;
    set(host, placed, lab, placed.held.clone())
}

/// A rolled-back `apply`: the lab's memberships as they were before it, under the host
/// lock, before the rollback's steps run (a network it joins again finds it a member;
/// one it leaves again finds it gone). All or none: every network's registry is read
/// and checked before any is written, so a lab on several networks is never put back on
/// one and left as the change left it on another. Returns every failure: each address
/// another lab took meanwhile, on every network, with the node and lab holding it
/// (then no registry is written), or a registry that could not be read or written
/// (those written before it are put back as they were).
pub fn restore(host: &HostContext, lab: &str, before: &[Before]) -> Vec<String> {
    let lock = match tokio::task::block_in_place(|| HostLock::acquire(host)) {
        Ok(l) => l,
        Err(e) => return vec![format!("host lock: {e}")],
    };
    let mut now = Vec::with_capacity(before.len());
    let mut errors = Vec::new();
    for b in before {
        match mgmtnet::read(host, &b.network) {
            Ok(r) => now.push(r),
            Err(e) => errors.push(format!(
                "shared management network `{}`: lab `{lab}`'s membership could not be put back: {e}",
                b.network
            )),
        }
    }
    if !errors.is_empty() {
        return errors;
    }
    let regs = match restored(lab, before, now) {
        Ok(r) => r,
        Err(taken) => return taken,
    };
    for (i, (_, new)) in regs.iter().enumerate() {
        if let Err(e) = mgmtnet::write(host, new) {
            errors.push(format!(
                "shared management network `{}`: lab `{lab}`'s membership could not be put back: {e}",
                new.network
            ));
            // Those written already go back as the change left them.
            for (old, new) in &regs[..i] {
                let empty = mgmtnet::Registry {
                    members: Vec::new(),
                    ..new.clone()
                };
                if let Err(e) = mgmtnet::write(host, old.as_ref().unwrap_or(&empty)) {
                    errors.push(format!(
                        "shared management network `{}`: its registry could not be put back as the change left it: {e}",
                        new.network
                    ));
                }
            }
            break;
        }
    }
    drop(lock);
    errors
}

/// The registries that give `lab` what `before` says it held, from those there `now`
/// (one per entry of `before`), each with what it replaces; only those that change.
/// `Err` names every address another lab holds now, on every network: then none is
/// to be written.
fn restored(
    lab: &str,
    before: &[Before],
    now: Vec<Option<mgmtnet::Registry>>,
) -> Result<Vec<(Option<mgmtnet::Registry>, mgmtnet::Registry)>, Vec<String>> {
    let mut out = Vec::new();
    let mut taken = Vec::new();
    for (b, old) in before.iter().zip(now) {
        let mut reg = old.clone().unwrap_or_else(|| mgmtnet::Registry {
            network: b.network.clone(),
            shape: b.shape.clone(),
            members: Vec::new(),
        });
        match &b.entry {
            Some(m) => {
                if let Err(held) = mgmtnet::set_member(&mut reg, lab, &m.file, m.nodes.clone()) {
                    taken.push(held);
                    continue;
                }
            }
            None => {
                mgmtnet::leave(&mut reg, lab);
            }
        }
        let same = old.as_ref() == Some(&reg) || (old.is_none() && reg.members.is_empty());
        if !same {
            out.push((old, reg));
        }
    }
    if taken.is_empty() {
        Ok(out)
    } else {
        Err(taken)
    }
}

/// A change that leaves a shared network and joins it again (its subnets or bridge
/// changed in the file) is refused, naming the commands that do it: the network is
/// the same network to the other labs, and its bridge keeps what they agreed on.
pub fn refuse_reshape(d: &crate::plan::diff::Diff, file: &str) -> Result<(), String> {
    let joins: Vec<&str> = d
        .add
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::JoinMgmt { network, .. } => Some(network.as_str()),
            _ => None,
        })
        .collect();
    let again = d.remove.iter().find_map(|u| match u {
        crate::plan::Undo::LeaveMgmt { network, .. } if joins.contains(&network.as_str()) => {
            Some(network.clone())
        }
        _ => None,
    });
    match again {
        Some(network) => Err(format!(
            "`apply` does not change the subnets or bridge of shared management network `{network}`: run `nslab down {lab}` then `nslab up {file}`",
            lab = d.lab
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mgmtnet::{Member, Registry};

    fn held(node: &str, a: &str) -> Held {
        Held {
            node: node.into(),
            addresses: vec![a.parse().unwrap()],
        }
    }

    fn member(lab: &str, nodes: Vec<Held>) -> Member {
        Member {
            lab: lab.into(),
            file: format!("/labs/{lab}.yaml"),
            nodes,
        }
    }

    fn registry(network: &str, members: Vec<Member>) -> Registry {
        Registry {
            network: network.into(),
            shape: Shape {
                bridge: format!("br-{network}"),
                ifindex: 4000,
                host: vec!["172.20.20.1/24".parse().unwrap()],
            },
            members,
        }
    }

    /// Lab b was on `one` (b1 .4, b2 .5) and the failed change moved it to `two`.
    fn before() -> Vec<Before> {
        let b = member(
            "b",
            vec![held("b1", "172.20.20.4/24"), held("b2", "172.20.20.5/24")],
        );
        vec![
            Before {
                network: "one".into(),
                shape: registry("one", vec![]).shape,
                entry: Some(b),
            },
            Before {
                network: "two".into(),
                shape: registry("two", vec![]).shape,
                entry: None,
            },
        ]
    }

    fn two_with_b() -> Registry {
        registry("two", vec![member("b", vec![held("b1", "172.20.20.2/24")])])
    }

    #[test]
    fn a_rollback_over_two_networks_puts_back_both_when_both_are_free() {
        let a = member("a", vec![held("a1", "172.20.20.2/24")]);
        let now = vec![Some(registry("one", vec![a.clone()])), Some(two_with_b())];
        let regs = restored("b", &before(), now).expect("nothing of b's is taken");
        assert_eq!(regs.len(), 2);
        let labs: Vec<&str> = regs[0].1.members.iter().map(|m| m.lab.as_str()).collect();
        assert_eq!(labs, ["a", "b"]);
        assert_eq!(regs[0].1.members[1], before()[0].entry.clone().unwrap());
        assert!(regs[1].1.members.is_empty(), "b is off `two` again");
        assert_eq!(regs[1].0, Some(two_with_b()), "with what it replaces");
    }

    #[test]
    fn a_rollback_over_two_networks_puts_back_neither_and_names_every_taken_address() {
        let c = member(
            "c",
            vec![held("c1", "172.20.20.4/24"), held("c2", "172.20.20.5/24")],
        );
        let now = vec![Some(registry("one", vec![c])), Some(two_with_b())];
        let taken = restored("b", &before(), now).expect_err("c holds b's addresses");
        let all = taken.join("; ");
        for part in [
            "network `one`: mgmt address 172.20.20.4 is held by node `c1` of lab `c`",
            "mgmt address 172.20.20.5 is held by node `c2` of lab `c`",
        ] {
            assert!(all.contains(part), "`{part}` missing: {all}");
        }
        // A network whose registry is as b had it is not written again.
        let now = vec![
            Some(registry("one", vec![before()[0].entry.clone().unwrap()])),
            None,
        ];
        assert!(restored("b", &before(), now).unwrap().is_empty());
    }
}
