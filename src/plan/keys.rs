//! What each step of a plan *is*, independent of where it sits: two plans' steps with the
//! same key make the same kernel object, so `apply` compares objects, not step numbers.
//! Each key also names the objects it lives on (its parents): when a parent goes, the
//! kernel takes the child with it, so the child must be made again.

use std::collections::HashMap;

use crate::model::names::FnvBuild;

/// A map keyed by nslab's own names.
pub type Map<K, V> = HashMap<K, V, FnvBuild>;

use ipnet::IpNet;

use super::{Gate, Name, Op, Plan};

/// An object's identity across plans of one lab.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Netns(Name),
    Sysctl(Name, String),
    /// A bridge, or a veth pair by the end it is created from.
    Link(Name, Name),
    LinkUp(Name, Name),
    Snooping(Name, Name),
    Address(Name, Name, IpNet),
    Route(Name, IpNet, Option<u32>),
    Impair(Name, Name),
    RunDirs,
    Template,
    Hosts,
    Cgroup(String),
    Node(String),
    Process(String, String),
    /// A node's command by its text and how many identical ones come before it.
    Exec(String, Vec<String>, usize),
    Barrier(Gate),
}

/// A plan's steps by key, with what is needed to find each one's parents.
pub struct Index<'a> {
    pub plan: &'a Plan,
    /// Step position by key.
    pub by_key: Map<Key, usize>,
    /// Each step's key, by position.
    pub keys: Vec<Key>,
    /// Interface `(netns, name)` -> the link object that made it (a veth's far end is
    /// made by the step that made its near end).
    ends: Map<(Name, Name), Key>,
    /// `(netns, ifindex)` -> interface name, for bridge masters.
    names: Map<(Name, u32), Name>,
    /// Addresses on each interface, which routes through it depend on.
    addresses: Map<(Name, Name), Vec<Key>>,
}

impl<'a> Index<'a> {
    pub fn of(plan: &'a Plan) -> Index<'a> {
        let mut ix = Index {
            plan,
            by_key: Map::with_capacity_and_hasher(plan.steps.len(), FnvBuild::default()),
            keys: Vec::with_capacity(plan.steps.len()),
            ends: Map::default(),
            names: Map::default(),
            addresses: Map::default(),
        };
        let mut execs: Map<(String, Vec<String>), usize> = Map::default();
        for (i, s) in plan.steps.iter().enumerate() {
            let key = key_of(&s.op, &mut execs);
            match &s.op {
                Op::CreateBridge {
                    netns,
                    name,
                    ifindex,
                    ..
                } => {
                    ix.ends.insert((netns.clone(), name.clone()), key.clone());
                    ix.names.insert((netns.clone(), *ifindex), name.clone());
                }
                Op::JoinMgmt {
                    netns,
                    bridge,
                    ifindex,
                    ..
                } => {
                    ix.ends.insert((netns.clone(), bridge.clone()), key.clone());
                    ix.names.insert((netns.clone(), *ifindex), bridge.clone());
                }
                Op::CreateLink(l) => {
                    for end in l.ends() {
                        ix.ends
                            .insert((end.netns.clone(), end.name.clone()), key.clone());
                        ix.names.insert((end.netns, end.ifindex), end.name);
                    }
                }
                Op::AddAddress { netns, name, .. } => ix
                    .addresses
                    .entry((netns.clone(), name.clone()))
                    .or_default()
                    .push(key.clone()),
                _ => {}
            }
            ix.by_key.insert(key.clone(), i);
            ix.keys.push(key);
        }
        ix
    }

    /// The object an interface lives on: its link, or the namespace for `lo` and for
    /// interfaces the plan did not make.
    fn link_of(&self, netns: &Name, name: &str) -> Key {
        self.ends
            .get(&(netns.clone(), Name::from(name)))
            .cloned()
            .unwrap_or_else(|| Key::Netns(netns.clone()))
    }

    /// What the step at `i` lives on.
    pub fn parents(&self, i: usize) -> Vec<Key> {
        let ns = |n: &Name| Key::Netns(n.clone());
        match &self.plan.steps[i].op {
            Op::CreateNetns { .. }
            | Op::Barrier { .. }
            | Op::MountRunDirs { .. }
            | Op::CreateMountTemplate { .. }
            | Op::WriteHosts { .. }
            | Op::CreateCgroup { .. } => vec![],
            Op::SetSysctl { netns, key, .. } => {
                let mut p = vec![ns(netns)];
                if let Some(iface) = sysctl_interface(key) {
                    p.push(self.link_of(netns, &iface));
                }
                p
            }
            Op::CreateBridge { netns, .. } | Op::JoinMgmt { netns, .. } => vec![ns(netns)],
            Op::CreateLink(l) => {
                let mut p: Vec<Key> = l.namespaces().into_iter().map(ns).collect();
                let netns = &l.netns;
                for m in l.masters() {
                    if let Some(m) = self.names.get(&(netns.clone(), m)) {
                        p.push(self.link_of(netns, m));
                    }
                }
                p
            }
            Op::SetLinkUp { netns, name, .. }
            | Op::SetLinkDown { netns, name, .. }
            | Op::SetMtu { netns, name, .. }
            | Op::SetMulticastSnooping { netns, name, .. }
            | Op::AddAddress { netns, name, .. }
            | Op::SetImpair { netns, name, .. } => vec![self.link_of(netns, name)],
            Op::AddRoute { netns, route } => {
                let mut p = vec![ns(netns)];
                let devs = route.nexthops.iter().map(|h| h.dev.as_str());
                for dev in devs.chain(route.dev.as_deref()) {
                    p.push(self.link_of(netns, dev));
                    // A gateway is reachable through the interface's addresses.
                    let addrs = self.addresses.get(&(netns.clone(), Name::from(dev)));
                    p.extend(addrs.into_iter().flatten().cloned());
                }
                p
            }
            Op::StartNode { netns, start } => {
                let mut p = vec![ns(netns)];
                if start.cgroup {
                    p.push(Key::Cgroup(start.node.clone()));
                }
                p
            }
            Op::StartProcess { node, .. }
            | Op::AddProcess { node, .. }
            | Op::RunExec { node, .. } => {
                vec![Key::Node(node.clone())]
            }
        }
    }
}

/// The key of one step; `execs` counts identical commands per node.
fn key_of(op: &Op, execs: &mut Map<(String, Vec<String>), usize>) -> Key {
    match op {
        Op::CreateNetns { netns } => Key::Netns(netns.clone()),
        Op::SetSysctl { netns, key, .. } => Key::Sysctl(netns.clone(), key.clone()),
        Op::CreateBridge { netns, name, .. } => Key::Link(netns.clone(), name.clone()),
        Op::JoinMgmt { netns, bridge, .. } => Key::Link(netns.clone(), bridge.clone()),
        Op::CreateLink(l) => Key::Link(l.netns.clone(), l.name.clone()),
        Op::SetLinkUp { netns, name, .. } | Op::SetLinkDown { netns, name, .. } => {
            Key::LinkUp(netns.clone(), name.clone())
        }
        Op::SetMtu { netns, name, .. } => Key::Link(netns.clone(), name.clone()),
        Op::SetMulticastSnooping { netns, name, .. } => Key::Snooping(netns.clone(), name.clone()),
        Op::AddAddress {
            netns,
            name,
            address,
            ..
        } => Key::Address(netns.clone(), name.clone(), *address),
        Op::AddRoute { netns, route } => Key::Route(netns.clone(), route.dst, route.metric),
        Op::SetImpair { netns, name, .. } => Key::Impair(netns.clone(), name.clone()),
        Op::Barrier { before } => Key::Barrier(*before),
        Op::MountRunDirs { .. } => Key::RunDirs,
        Op::CreateMountTemplate { .. } => Key::Template,
        Op::WriteHosts { .. } => Key::Hosts,
        Op::CreateCgroup { node, .. } => Key::Cgroup(node.clone()),
        Op::StartNode { start, .. } => Key::Node(start.node.clone()),
        Op::StartProcess { node, process, .. } => Key::Process(node.clone(), process.clone()),
        Op::AddProcess { node, spec, .. } => Key::Process(node.clone(), spec.name.clone()),
        Op::RunExec { node, argv, .. } => {
            let n = execs.entry((node.clone(), argv.clone())).or_default();
            *n += 1;
            Key::Exec(node.clone(), argv.clone(), *n - 1)
        }
    }
}

/// The interface a per-interface sysctl names (`net.ipv4.conf.eth1.rp_filter`), if any;
/// `all` and `default` are namespace-wide.
pub fn sysctl_interface(key: &str) -> Option<String> {
    let iface = crate::model::sysctl::parse(key).ok()?.iface?;
    (!matches!(iface.as_str(), "all" | "default")).then_some(iface)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_interface_sysctls_name_their_interface() {
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            sysctl_interface("net.ipv4.conf.eth1.rp_filter"),
            some("eth1")
        );
        assert_eq!(
            sysctl_interface("net.ipv4.conf.eth0/100.rp_filter"),
            some("eth0.100")
        );
        assert_eq!(
            sysctl_interface("net.ipv6.neigh.eth0.base_reachable_time_ms"),
            some("eth0")
        );
        assert_eq!(sysctl_interface("net.ipv4.conf.all.forwarding"), None);
        assert_eq!(sysctl_interface("net.ipv4.conf.default.rp_filter"), None);
        assert_eq!(sysctl_interface("net.ipv4.ip_forward"), None);
    }
}
