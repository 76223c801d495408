//! `apply`'s change plan: what must go and what must be made so a running lab (described
//! by the plan it was built from) becomes the lab a fresh `up` of the new plan would give.
//! Pure: it compares two plans object by object (see [`keys`](super::keys)).
//!
//! Each difference has a class. Most change in place (links, addresses, routes, MTU,
//! sysctls, impairments, bridge members, single processes). A node whose mounts, env,
//! limits or other start settings differ is restarted: its init stops and starts again,
//! its namespace and links stay. A node whose isolation set differs is replaced: its
//! namespace is deleted and made again, and every link with an end in it, and what lives
//! on those links in its peers, is made again with it (nothing is silently lost).

mod text;
pub use text::{group_summary, render, summary};

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::model::names::FnvBuild;

/// A set of nslab's own keys.
type Set<K> = HashSet<K, FnvBuild>;

use serde::Serialize;

use super::keys::{Index, Key};
use super::node::{NodeStart, ProcessSpec};
use super::{Name, Op, Plan, Step, StepId, Undo};

/// How much of a node a change disturbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    InPlace,
    Restart,
    Replace,
}

/// What happens to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Add,
    Remove,
    /// Changed where it is (a sysctl's value, an MTU, an impairment).
    Change,
    /// Removed and made again: it changed in a way the kernel cannot change in place, or
    /// what it lives on is made again.
    Recreate,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub action: Action,
    pub object: String,
}

/// The changes to one node (or to the lab's fabric, or the lab as a whole).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    pub node: String,
    pub class: Class,
    /// Added or removed as a whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whole: Option<Action>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub changes: Vec<Change>,
}

/// A process to stop on a node that keeps running.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retire {
    pub netns: Name,
    pub node: String,
    pub process: String,
}

/// The change plan.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub lab: String,
    pub groups: Vec<Group>,
    /// What to undo, in the old plan's creation order (for [`super::Teardown::of`]).
    #[serde(skip)]
    pub remove: Vec<Undo>,
    #[serde(skip)]
    pub retire: Vec<Retire>,
    /// Sysctls the new plan no longer sets, on namespaces that stay: back to the kernel's
    /// default, as a fresh namespace has them.
    #[serde(skip)]
    pub restore: Vec<(Name, String)>,
    /// Running nodes with their own `/etc/hosts` whose names changed: the node's file is
    /// rewritten where it is (the lab's list, then the node's own lines).
    #[serde(skip)]
    pub hosts: Vec<NodeStart>,
    /// What to make, renumbered, with dependencies among its own steps.
    #[serde(skip)]
    pub add: Plan,
}

impl Diff {
    /// The change plan of a lab that is already what its file says.
    pub fn none(lab: &str) -> Diff {
        Diff {
            lab: lab.to_string(),
            groups: Vec::new(),
            remove: Vec::new(),
            retire: Vec::new(),
            restore: Vec::new(),
            hosts: Vec::new(),
            add: Plan {
                lab: lab.to_string(),
                steps: Vec::new(),
            },
        }
    }

    /// Nothing to do: the lab is already what the file says.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.retire.is_empty()
            && self.restore.is_empty()
            && self.hosts.is_empty()
            && self
                .add
                .steps
                .iter()
                .all(|s| matches!(s.op, Op::Barrier { .. }))
    }

    /// Nodes that stay, with this class of change (the lab-wide and fabric groups and
    /// nodes added or removed whole are not counted).
    pub fn count(&self, class: Class) -> usize {
        self.nodes()
            .filter(|g| g.whole.is_none() && g.class == class)
            .count()
    }

    /// Nodes added (`Action::Add`) or removed (`Action::Remove`) whole.
    pub fn count_whole(&self, action: Action) -> usize {
        self.nodes().filter(|g| g.whole == Some(action)).count()
    }

    fn nodes(&self) -> impl Iterator<Item = &Group> {
        self.groups
            .iter()
            .filter(|g| g.node != "lab" && g.node != "fabric")
    }
}

/// How one object that both plans have differs.
enum Delta {
    Same,
    /// Re-run the new step where the object is.
    InPlace,
    /// Only a link's MTU.
    Mtu,
    Recreate,
    /// The node's init must start again (the reason).
    Restart(String),
    /// The node's namespace must be made again (the reason).
    Replace(String),
    /// Only these processes of the node differ.
    Processes(Vec<String>),
}

fn delta(old: &Op, new: &Op) -> Delta {
    if old == new {
        return Delta::Same;
    }
    match (old, new) {
        (Op::SetSysctl { .. }, _) | (Op::SetImpair { .. }, _) | (Op::WriteHosts { .. }, _) => {
            Delta::InPlace
        }
        (Op::CreateBridge { mtu: a, .. }, Op::CreateBridge { mtu: b, .. })
            if a != b && same_but_mtu(old, new) =>
        {
            Delta::Mtu
        }
        (Op::CreateLink(a), Op::CreateLink(b)) if a.mtu != b.mtu && same_but_mtu(old, new) => {
            Delta::Mtu
        }
        (Op::CreateCgroup { .. }, _) => Delta::Restart("its limits changed".into()),
        (Op::StartNode { start: a, .. }, Op::StartNode { start: b, .. }) => node_delta(a, b),
        _ => Delta::Recreate,
    }
}

fn same_but_mtu(old: &Op, new: &Op) -> bool {
    let strip = |op: &Op| {
        let mut op = op.clone();
        match &mut op {
            Op::CreateBridge { mtu, .. } => *mtu = None,
            Op::CreateLink(l) => l.mtu = None,
            _ => {}
        }
        op
    };
    strip(old) == strip(new)
}

fn isolation(s: &NodeStart) -> String {
    let mut kinds = vec!["net"];
    for (on, k) in [
        (s.uts, "uts"),
        (s.mnt, "mnt"),
        (s.pid, "pid"),
        (s.ipc, "ipc"),
    ] {
        if on {
            kinds.push(k);
        }
    }
    kinds.join(",")
}

fn node_delta(a: &NodeStart, b: &NodeStart) -> Delta {
    let (ia, ib) = (isolation(a), isolation(b));
    if ia != ib {
        return Delta::Replace(format!("isolation {ia} -> {ib}"));
    }
    // The node's own /etc/hosts lines follow its addresses; they never restart it. What
    // the mount sources hold is compared on its own, below.
    let settings = |s: &NodeStart| {
        let mut s = s.clone();
        s.own_hosts.clear();
        s.processes.clear();
        for m in &mut s.mounts {
            m.digest = None;
        }
        s
    };
    let (sa, sb) = (settings(a), settings(b));
    if sa != sb {
        let mut what = Vec::new();
        for (differs, name) in [
            (sa.mounts != sb.mounts, "mounts"),
            (sa.private != sb.private, "private directories"),
            (sa.cgroup != sb.cgroup, "limits"),
            (sa.logs != sb.logs, "log limits"),
        ] {
            if differs {
                what.push(name);
            }
        }
        if what.is_empty() {
            what.push("settings");
        }
        return Delta::Restart(format!("its {} changed", what.join(", ")));
    }
    if let Some(edited) = edited_sources(a, b) {
        return Delta::Restart(edited);
    }
    let spec = |s: &NodeStart, name: &str| s.processes.iter().find(|p| p.name == name).cloned();
    let changed = a
        .processes
        .iter()
        .filter(|p| spec(b, &p.name).as_ref() != Some(*p))
        .map(|p| p.name.clone())
        .collect();
    Delta::Processes(changed)
}

/// The mount sources whose content changed since the old plan was applied, as a reason
/// to restart the node: its daemons read their configs at start, and a file bound on its
/// own keeps showing the old file once an editor renames a new one over it, so only a
/// fresh mount and start take the edit. A plan without fingerprints (stored by an older
/// nslab) counts as unchanged.
fn edited_sources(a: &NodeStart, b: &NodeStart) -> Option<String> {
    let edited: Vec<String> = a
        .mounts
        .iter()
        .zip(&b.mounts)
        .filter(|(x, y)| matches!((&x.digest, &y.digest), (Some(d), Some(e)) if d != e))
        .map(|(_, y)| y.source.display().to_string())
        .collect();
    (!edited.is_empty()).then(|| format!("mounted files changed in {}", edited.join(", ")))
}

/// What differs, before the consequences are followed.
#[derive(Default)]
struct Roots {
    gone: Set<Key>,
    in_place: Set<Key>,
    mtu: Vec<Key>,
    /// Node -> (class, reason).
    nodes: HashMap<String, (Class, String)>,
}

fn roots(o: &Index, n: &Index) -> Roots {
    let mut r = Roots::default();
    for (i, key) in o.keys.iter().enumerate() {
        if matches!(key, Key::Barrier(_)) {
            continue;
        }
        let Some(&j) = n.by_key.get(key) else {
            r.gone.insert(key.clone());
            continue;
        };
        let (old, new) = (&o.plan.steps[i].op, &n.plan.steps[j].op);
        match delta(old, new) {
            Delta::Same => {}
            Delta::InPlace => {
                r.in_place.insert(key.clone());
            }
            Delta::Mtu => r.mtu.push(key.clone()),
            Delta::Recreate => {
                r.gone.insert(key.clone());
            }
            Delta::Restart(why) => {
                r.gone.insert(key.clone());
                if let Op::CreateCgroup { node, .. } = old {
                    // The init runs in the cgroup: it starts again in the new one.
                    r.gone.insert(Key::Node(node.clone()));
                    r.nodes.insert(node.clone(), (Class::Restart, why));
                } else if let Op::StartNode { start, .. } = old {
                    r.nodes.insert(start.node.clone(), (Class::Restart, why));
                }
            }
            Delta::Replace(why) => {
                if let Op::StartNode { netns, start } = old {
                    r.gone.insert(Key::Netns(netns.clone()));
                    r.nodes.insert(start.node.clone(), (Class::Replace, why));
                }
            }
            Delta::Processes(names) => {
                if let Op::StartNode { start, .. } = old {
                    for p in names {
                        r.gone.insert(Key::Process(start.node.clone(), p));
                    }
                }
            }
        }
    }
    r
}

/// Everything that lives on something gone is gone too.
fn follow(o: &Index, gone: &mut Set<Key>) {
    // Most changes only add: nothing to follow, and no map of every step's parents.
    if gone.is_empty() {
        return;
    }
    let mut children: HashMap<Key, Vec<usize>, FnvBuild> = HashMap::default();
    for i in 0..o.keys.len() {
        for p in o.parents(i) {
            children.entry(p).or_default().push(i);
        }
    }
    let mut todo: Vec<Key> = gone.iter().cloned().collect();
    while let Some(k) = todo.pop() {
        for &c in children.get(&k).into_iter().flatten() {
            if gone.insert(o.keys[c].clone()) {
                todo.push(o.keys[c].clone());
            }
        }
    }
}

/// The change plan that turns a lab built from `old` into one built from `new`.
pub fn diff(old: &Plan, new: &Plan) -> Diff {
    let (o, n) = (Index::of(old), Index::of(new));
    let mut r = roots(&o, &n);
    follow(&o, &mut r.gone);
    let kept = |k: &Key| o.by_key.contains_key(k) && !r.gone.contains(k);

    let node_starts: HashMap<&str, &NodeStart> = new
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::StartNode { start, .. } => Some((start.node.as_str(), &**start)),
            _ => None,
        })
        .collect();
    let include: Vec<bool> = n
        .keys
        .iter()
        .map(|k| matches!(k, Key::Barrier(_)) || !kept(k) || r.in_place.contains(k))
        .collect();
    // A process new to a node that keeps running: its init must learn it first.
    let announce = |k: &Key| match k {
        Key::Process(node, p) if kept(&Key::Node(node.clone())) => {
            node_starts.get(node.as_str()).and_then(|s| {
                let spec = s.processes.iter().find(|x| x.name == *p)?;
                Some((Name::from(s.netns.as_str()), node.clone(), spec.clone()))
            })
        }
        _ => None,
    };
    let mtu_ops: Vec<Op> = r
        .mtu
        .iter()
        .filter(|k| kept(k))
        .filter_map(|k| mtu_ops(&new.steps[n.by_key[k]].op))
        .flatten()
        .collect();
    let add = sub_plan(new, &n, &include, mtu_ops, &announce);

    let mut remove = Vec::new();
    let mut retire = Vec::new();
    let mut restore = Vec::new();
    for (i, k) in o.keys.iter().enumerate() {
        if !r.gone.contains(k) {
            continue;
        }
        let op = &old.steps[i].op;
        if let Some(u) = op.undo() {
            remove.push(u);
        }
        match op {
            Op::StartProcess {
                netns,
                node,
                process,
            } if kept(&Key::Node(node.clone())) => retire.push(Retire {
                netns: netns.clone(),
                node: node.clone(),
                process: process.clone(),
            }),
            Op::SetSysctl { netns, key, .. }
                if !n.by_key.contains_key(k) && o.parents(i).iter().all(kept) =>
            {
                restore.push((netns.clone(), key.clone()));
            }
            _ => {}
        }
    }
    let groups = groups(&o, &n, &r, &kept);
    let hosts = stale_hosts(&o, &n, &kept);
    Diff {
        lab: new.lab.clone(),
        groups,
        remove,
        retire,
        restore,
        hosts,
        add,
    }
}

/// What a lab built from `stored` is after a change toward `next` that did not finish
/// (killed, or failed and being rolled back): the in-place changes may be made, and each
/// object in `touched` (what the change made or retired) may or may not exist. Those are
/// left out, with everything on them; the caller removes them first, so the lab is then
/// exactly the returned plan and a [`diff`] from it converges.
pub fn realized(stored: &Plan, next: Option<&Plan>, touched: &[Undo]) -> Plan {
    let o = Index::of(stored);
    let mut steps = stored.steps.clone();
    let mut out: Set<Key> = Set::default();
    if let Some(next) = next {
        let n = Index::of(next);
        let r = roots(&o, &n);
        for (i, k) in o.keys.iter().enumerate() {
            if r.in_place.contains(k) || r.mtu.contains(k) {
                steps[i].op = next.steps[n.by_key[k]].op.clone();
            } else if matches!(k, Key::Sysctl(..)) && !n.by_key.contains_key(k) {
                // Maybe back to its default already.
                out.insert(k.clone());
            }
        }
    }
    let touched: HashSet<&Undo> = touched.iter().collect();
    for (i, s) in stored.steps.iter().enumerate() {
        if s.op.identity().is_some_and(|u| touched.contains(&u)) {
            out.insert(o.keys[i].clone());
        }
    }
    follow(&o, &mut out);
    let steps = steps
        .into_iter()
        .zip(&o.keys)
        .filter(|(_, k)| !out.contains(k))
        .map(|(s, _)| s)
        .collect();
    Plan {
        lab: stored.lab.clone(),
        steps,
    }
}

/// Nodes that keep running with their own `/etc/hosts` (a mount namespace) while the
/// lab's names or the node's own lines changed, as the new plan has them.
fn stale_hosts(o: &Index, n: &Index, kept: &dyn Fn(&Key) -> bool) -> Vec<NodeStart> {
    let hosts = |ix: &Index| {
        ix.by_key
            .get(&Key::Hosts)
            .map(|&i| match &ix.plan.steps[i].op {
                Op::WriteHosts { content, .. } => content.clone(),
                _ => String::new(),
            })
    };
    let lab_changed = hosts(o) != hosts(n);
    n.plan
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::StartNode { start, .. } if start.mnt && kept(&Key::Node(start.node.clone())) => {
                let old = match &o.plan.steps[o.by_key[&Key::Node(start.node.clone())]].op {
                    Op::StartNode { start, .. } => start.own_hosts.clone(),
                    _ => String::new(),
                };
                (lab_changed || old != start.own_hosts).then(|| (**start).clone())
            }
            _ => None,
        })
        .collect()
}

/// The MTU steps of a link kept with a new MTU: every end it made.
fn mtu_ops(op: &Op) -> Option<Vec<Op>> {
    match op {
        // Back to the kernel's default MTU for the kind when the file no longer sets one.
        Op::CreateBridge {
            netns,
            name,
            ifindex,
            mtu,
            ..
        } => Some(vec![Op::SetMtu {
            netns: netns.clone(),
            name: name.clone(),
            ifindex: *ifindex,
            mtu: mtu.unwrap_or(1500),
        }]),
        // Every end the link made; back to the kernel's default MTU for the kind.
        Op::CreateLink(l) => Some(
            l.ends()
                .into_iter()
                .map(|e| Op::SetMtu {
                    netns: e.netns,
                    name: e.name,
                    ifindex: e.ifindex,
                    mtu: l.mtu.unwrap_or(1500),
                })
                .collect(),
        ),
        _ => None,
    }
}

type Announce<'a> = dyn Fn(&Key) -> Option<(Name, String, ProcessSpec)> + 'a;

/// The steps of `plan` marked in `include`, renumbered; a step's dependencies on steps
/// left out become dependencies on what those depended on, so the order holds. `first`
/// runs before everything else; `announce` puts an `add-process` before a process's start.
fn sub_plan(
    plan: &Plan,
    ix: &Index,
    include: &[bool],
    first: Vec<Op>,
    announce: &Announce,
) -> Plan {
    let mut steps: Vec<Step> = first
        .into_iter()
        .enumerate()
        .map(|(i, op)| Step {
            id: i + 1,
            op,
            deps: vec![],
        })
        .collect();
    let mut renumber: HashMap<StepId, StepId> = HashMap::new();
    let mut through: HashMap<StepId, Vec<StepId>> = HashMap::new();
    for (i, s) in plan.steps.iter().enumerate() {
        if !include[i] {
            let deps = effective(&s.deps, &renumber, &through);
            through.insert(s.id, deps);
            continue;
        }
        let mut deps = effective(&s.deps, &renumber, &through);
        if let Some((netns, node, spec)) = announce(&ix.keys[i]) {
            let id = steps.len() + 1;
            steps.push(Step {
                id,
                op: Op::AddProcess {
                    netns,
                    node,
                    spec: Box::new(spec),
                },
                deps: deps.clone(),
            });
            deps.push(id);
        }
        let id = steps.len() + 1;
        renumber.insert(s.id, id);
        steps.push(Step {
            id,
            op: s.op.clone(),
            deps,
        });
    }
    Plan {
        lab: plan.lab.clone(),
        steps,
    }
}

fn effective(
    deps: &[StepId],
    renumber: &HashMap<StepId, StepId>,
    through: &HashMap<StepId, Vec<StepId>>,
) -> Vec<StepId> {
    let mut out: Vec<StepId> = deps
        .iter()
        .flat_map(|d| match renumber.get(d) {
            Some(&id) => vec![id],
            None => through.get(d).cloned().unwrap_or_default(),
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The node a key belongs to, for grouping: a node's name, `fabric` for the lab's bridges,
/// `lab` for what all nodes share.
fn owner(lab: &str, k: &Key) -> String {
    let of_ns = |ns: &str| {
        let fabric = crate::model::names::fabric_netns(lab);
        if ns == fabric {
            "fabric".to_string()
        } else {
            ns.strip_prefix(&format!("{fabric}."))
                .unwrap_or(ns)
                .to_string()
        }
    };
    match k {
        Key::Netns(ns)
        | Key::Sysctl(ns, _)
        | Key::Link(ns, _)
        | Key::LinkUp(ns, _)
        | Key::Snooping(ns, _)
        | Key::Address(ns, ..)
        | Key::Route(ns, ..)
        | Key::Impair(ns, _) => of_ns(ns),
        Key::Cgroup(n) | Key::Node(n) | Key::Process(n, _) | Key::Exec(n, ..) => n.clone(),
        Key::RunDirs | Key::Template | Key::Hosts | Key::Barrier(_) => "lab".into(),
    }
}

/// What a change names, for people; `None` for steps that only follow others (a link
/// coming up, snooping, barriers).
fn describe(op: &Op) -> Option<String> {
    Some(match op {
        Op::CreateNetns { netns } => format!("namespace {netns}"),
        Op::SetSysctl { key, value, .. } => format!("sysctl {key} = {value}"),
        Op::CreateBridge { name, mtu, .. } => {
            format!(
                "bridge {name}{}",
                mtu.map(|m| format!(" mtu {m}")).unwrap_or_default()
            )
        }
        Op::CreateLink(l) => format!(
            "link {}{}",
            l.ends()
                .iter()
                .map(|e| format!("{}:{}", short(&e.netns), e.name))
                .collect::<Vec<_>>()
                .join(" -- "),
            l.mtu.map(|m| format!(" mtu {m}")).unwrap_or_default()
        ),
        Op::AddAddress { name, address, .. } => format!("address {address} on {name}"),
        Op::JoinMgmt {
            network, bridge, ..
        } => format!("shared management network {network} (bridge {bridge})"),
        Op::AddRoute { route, .. } => format!("route {}", super::route_text(route)),
        Op::SetImpair { name, impair, .. } => format!("impairment on {name}: {impair}"),
        Op::WriteHosts { .. } => "the lab's /etc/hosts".into(),
        Op::MountRunDirs { .. } => "the lab's node directories".into(),
        Op::CreateMountTemplate { .. } => "the lab's mount template".into(),
        Op::CreateCgroup { node, .. } => format!("cgroup of node {node}"),
        Op::StartNode { start, .. } => format!("init of node {}", start.node),
        Op::StartProcess { process, .. } => format!("process {process}"),
        Op::RunExec { argv, .. } => format!(
            "exec `{}`",
            crate::model::names::shown(&argv.join(" "), false)
        ),
        Op::SetMtu { name, mtu, .. } => format!("mtu of {name} = {mtu}"),
        Op::SetLinkUp { .. }
        | Op::SetLinkDown { .. }
        | Op::SetMulticastSnooping { .. }
        | Op::AddProcess { .. }
        | Op::Barrier { .. } => return None,
    })
}

/// `nslab.lab.r1` -> `r1`, the fabric -> `fabric`.
fn short(netns: &str) -> String {
    let lab = crate::model::names::lab_of_netns(netns);
    owner(&lab, &Key::Netns(netns.into()))
}

/// The changes grouped by node, each node with its class: the lab and the fabric first,
/// then nodes by name.
fn groups(o: &Index, n: &Index, r: &Roots, kept: &dyn Fn(&Key) -> bool) -> Vec<Group> {
    let lab = &n.plan.lab;
    let mut by: BTreeMap<(u8, String), Vec<Change>> = BTreeMap::new();
    let mut push = |k: &Key, action: Action, op: &Op| {
        if let Some(object) = describe(op) {
            let node = owner(lab, k);
            let rank = match node.as_str() {
                "lab" => 0,
                "fabric" => 1,
                _ => 2,
            };
            by.entry((rank, node))
                .or_default()
                .push(Change { action, object });
        }
    };
    for (i, k) in o.keys.iter().enumerate() {
        if kept(k) || n.by_key.contains_key(k) {
            continue;
        }
        push(k, Action::Remove, &o.plan.steps[i].op);
    }
    for (j, k) in n.keys.iter().enumerate() {
        let op = &n.plan.steps[j].op;
        match o.by_key.get(k) {
            None => push(k, Action::Add, op),
            Some(&i) if r.gone.contains(k) => {
                let same = o.plan.steps[i].op == *op;
                push(
                    k,
                    if same {
                        Action::Recreate
                    } else {
                        Action::Change
                    },
                    op,
                );
            }
            Some(_) if r.in_place.contains(k) || r.mtu.contains(k) => push(k, Action::Change, op),
            Some(_) => {}
        }
    }
    by.into_iter()
        .map(|((_, node), changes)| {
            let in_old = o.by_key.contains_key(&Key::Netns(node_ns(lab, &node)));
            let in_new = n.by_key.contains_key(&Key::Netns(node_ns(lab, &node)));
            let whole = match (in_old, in_new) {
                (false, true) => Some(Action::Add),
                (true, false) => Some(Action::Remove),
                _ => None,
            };
            let (class, reason) = match (whole, r.nodes.get(&node)) {
                (None, Some((c, why))) => (*c, Some(why.clone())),
                _ => (Class::InPlace, None),
            };
            Group {
                node,
                class,
                whole,
                reason,
                changes,
            }
        })
        .collect()
}

fn node_ns(lab: &str, node: &str) -> Name {
    match node {
        "fabric" => crate::model::names::fabric_netns(lab).into(),
        _ => crate::model::names::node_netns(lab, node).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::LinkSpec;

    fn plan(yaml: &str) -> Plan {
        let c = crate::compile_str(yaml, "t.yaml", std::path::Path::new("/")).unwrap();
        super::super::plan(&c.topology)
    }

    /// Applying `d` to the objects of `old` gives exactly the objects of `new`: every
    /// kept object is unchanged or changed in place, everything else is made.
    fn converges(old: &Plan, new: &Plan) -> Diff {
        let d = diff(old, new);
        let (o, n) = (Index::of(old), Index::of(new));
        let gone: Set<Key> = {
            let mut r = roots(&o, &n);
            follow(&o, &mut r.gone);
            r.gone
        };
        let added: HashSet<Key> = Index::of(&d.add).keys.into_iter().collect();
        for (j, k) in n.keys.iter().enumerate() {
            let kept = o.by_key.contains_key(k) && !gone.contains(k);
            let (was, is) = (
                &o.plan.steps[o.by_key.get(k).copied().unwrap_or(0)].op,
                &n.plan.steps[j].op,
            );
            if let (true, Op::StartNode { start: a, .. }, Op::StartNode { start: b, .. }) =
                (kept, was, is)
            {
                // Processes change one by one; the hosts file is rewritten.
                let started =
                    |name: &str| added.contains(&Key::Process(b.node.clone(), name.to_string()));
                for p in &b.processes {
                    let same = a.processes.contains(p);
                    assert!(same || started(&p.name), "process {} of {}", p.name, b.node);
                }
                if a.own_hosts != b.own_hosts {
                    assert!(
                        d.hosts.iter().any(|h| h.node == b.node),
                        "hosts of {}",
                        b.node
                    );
                }
            } else if kept && was != is {
                assert!(
                    added.contains(k),
                    "{k:?} changed but is neither made nor set"
                );
            } else if !kept {
                assert!(added.contains(k), "{k:?} is missing after the apply");
            }
        }
        for k in &o.keys {
            if !n.by_key.contains_key(k) && !matches!(k, Key::Barrier(_)) {
                assert!(gone.contains(k), "{k:?} outlives the apply");
            }
        }
        // The additions are a valid plan: every dependency comes first.
        for s in &d.add.steps {
            assert!(s.deps.iter().all(|&x| x < s.id), "{s:?}");
        }
        d
    }

    const BASE: &str = "
name: d
defaults: { sysctls: { net.ipv4.ip_forward: 1 } }
bridges: { lan: {} }
nodes:
  a: { loopback: auto }
  b: { processes: [{ name: p1, cmd: 'sleep 100' }, { name: p2, cmd: 'sleep 200' }] }
  c: {}
  h1: {}
links: [[a:eth0, b:eth0], [b:eth1, c:eth0], [h1:eth0, lan], [c:eth1, lan]]
routing: static
";

    fn edit(from: &str, to: &str) -> String {
        assert!(BASE.contains(from), "{from}");
        BASE.replace(from, to)
    }

    #[test]
    fn the_same_file_changes_nothing() {
        let d = converges(&plan(BASE), &plan(BASE));
        assert!(d.is_empty(), "{}", render(&d));
        assert!(d.groups.is_empty());
        assert_eq!(render(&d), "lab `d`: no changes\n");
    }

    #[test]
    fn a_new_link_is_made_in_place_and_nothing_goes() {
        let new = edit("[c:eth1, lan]]", "[c:eth1, lan], [a:eth1, c:eth2]]");
        let d = converges(&plan(BASE), &plan(&new));
        assert!(d.retire.is_empty());
        assert!(
            d.add.steps.iter().any(|s| matches!(&s.op,
                Op::CreateLink(l) if &*l.name == "eth1"
                    && matches!(&l.kind, LinkSpec::Veth(p) if &*p.peer_name == "eth2"))),
            "{:#?}",
            d.add
        );
        assert!(d.groups.iter().all(|g| g.class == Class::InPlace));
        assert!(
            !d.add
                .steps
                .iter()
                .any(|s| matches!(s.op, Op::CreateNetns { .. } | Op::StartNode { .. })),
            "no node is made again"
        );
    }

    #[test]
    fn a_removed_node_takes_its_links_and_its_peers_routes_follow() {
        let new = edit("  h1: {}\n", "").replace("[h1:eth0, lan], ", "");
        let d = converges(&plan(BASE), &plan(&new));
        assert!(d.remove.contains(&Undo::DeleteNetns {
            netns: "nslab.d.h1".into()
        }));
        let g = d.groups.iter().find(|g| g.node == "h1").unwrap();
        assert_eq!(g.whole, Some(Action::Remove));
    }

    #[test]
    fn a_new_isolation_replaces_the_node_and_remakes_its_peers_links() {
        let new = edit("  c: {}", "  c: { isolation: [net, uts] }");
        let d = converges(&plan(BASE), &plan(&new));
        let g = d.groups.iter().find(|g| g.node == "c").unwrap();
        assert_eq!(g.class, Class::Replace, "{}", render(&d));
        assert!(d.remove.contains(&Undo::DeleteNetns {
            netns: "nslab.d.c".into()
        }));
        // b's end of the b-c link dies with c's namespace and is made again.
        let b = d.groups.iter().find(|g| g.node == "b").unwrap();
        assert_eq!(b.class, Class::InPlace);
        assert!(
            b.changes
                .iter()
                .any(|c| c.action == Action::Recreate && c.object.contains("b:eth1")),
            "{}",
            render(&d)
        );
    }

    #[test]
    fn a_changed_process_alone_is_retired_and_started_again() {
        let new = edit("sleep 200", "sleep 300");
        let d = converges(&plan(BASE), &plan(&new));
        assert_eq!(d.retire.len(), 1);
        assert_eq!(d.retire[0].process, "p2");
        let names: Vec<&str> = d.add.steps.iter().map(|s| s.op.name()).collect();
        assert!(names.contains(&"add-process") && names.contains(&"start-process"));
        assert!(!names.contains(&"start-node"), "{names:?}");
        assert_eq!(
            d.add
                .steps
                .iter()
                .filter(|s| matches!(s.op, Op::StartProcess { .. }))
                .count(),
            1,
            "p1 keeps running"
        );
    }

    #[test]
    fn new_limits_restart_the_node_but_keep_its_links() {
        let new = edit("  b: {", "  b: { limits: { pids: 64 },");
        let d = converges(&plan(BASE), &plan(&new));
        let g = d.groups.iter().find(|g| g.node == "b").unwrap();
        assert_eq!(g.class, Class::Restart, "{}", render(&d));
        assert!(d.remove.iter().any(|u| matches!(u, Undo::StopNode { .. })));
        assert!(
            !d.remove
                .iter()
                .any(|u| matches!(u, Undo::DeleteNetns { .. } | Undo::DeleteLink { .. }))
        );
        assert!(d.retire.is_empty(), "the whole init stops instead");
    }

    /// `plan` with every mount's fingerprint set to `digest`, as the engine fills it.
    fn fingerprinted(mut p: Plan, digest: Option<&str>) -> Plan {
        for s in &mut p.steps {
            if let Op::StartNode { start, .. } = &mut s.op {
                for m in &mut start.mounts {
                    m.digest = digest.map(str::to_string);
                }
            }
        }
        p
    }

    #[test]
    fn an_edited_mount_source_restarts_its_node_and_an_unknown_one_does_not() {
        let file = edit("  b: {", "  b: { mounts: ['/etc/frr-b:/etc/frr:ro'],");
        let (old, new) = (
            fingerprinted(plan(&file), Some("0000000000000001")),
            fingerprinted(plan(&file), Some("0000000000000002")),
        );
        let d = converges(&old, &new);
        let g = d.groups.iter().find(|g| g.node == "b").unwrap();
        assert_eq!(g.class, Class::Restart, "{}", render(&d));
        assert!(
            render(&d).contains("b (restart node: mounted files changed in /etc/frr-b)"),
            "{}",
            render(&d)
        );
        assert!(d.remove.iter().any(|u| matches!(u, Undo::StopNode { .. })));
        assert_eq!(d.groups.len(), 1, "only b: {}", render(&d));
        // The same content, or a stored plan from before fingerprints: nothing to do.
        assert!(converges(&new, &new.clone()).is_empty());
        assert!(converges(&fingerprinted(plan(&file), None), &new).is_empty());
    }

    #[test]
    fn sysctls_change_in_place_and_removed_ones_are_restored() {
        let new = edit("net.ipv4.ip_forward: 1", "net.ipv4.ip_forward: 0");
        let d = converges(&plan(BASE), &plan(&new));
        assert!(d.remove.is_empty() && d.restore.is_empty());
        assert!(d.add.steps.iter().any(|s| matches!(&s.op,
            Op::SetSysctl { key, value, .. } if key == "net.ipv4.ip_forward" && value == "0")));
        let gone = edit("defaults: { sysctls: { net.ipv4.ip_forward: 1 } }\n", "");
        let d = converges(&plan(BASE), &plan(&gone));
        assert!(
            d.restore
                .iter()
                .any(|(ns, k)| &**ns == "nslab.d.a" && k == "net.ipv4.ip_forward"),
            "{:?}",
            d.restore
        );
    }

    /// A node's own interfaces (dummy, vlan) come and go in place: `apply` makes a new
    /// one with its address and deletes a removed one, and the node stays.
    #[test]
    fn own_interfaces_are_added_and_removed_in_place() {
        let with = edit(
            "  c: {}",
            "  c: { interfaces: { lo1: { kind: dummy, addresses: [10.99.0.1/32] }, v7: { kind: vlan, parent: eth0, id: 7, addresses: [10.98.0.1/24] } } }",
        );
        let d = converges(&plan(BASE), &plan(&with));
        assert!(d.remove.is_empty(), "{:?}", d.remove);
        let made = |name: &str| {
            d.add.steps.iter().any(|s| {
                matches!(&s.op, Op::CreateLink(l) if &*l.name == name
                && &*l.netns == "nslab.d.c"
                && match &l.kind {
                    LinkSpec::Dummy(_) => name == "lo1",
                    LinkSpec::Vlan(v) => name == "v7" && v.vlan_id == 7 && &*v.parent == "eth0",
                    _ => false,
                })
            })
        };
        assert!(made("lo1") && made("v7"), "{:#?}", d.add);
        assert!(
            d.add.steps.iter().any(|s| matches!(&s.op,
                Op::AddAddress { address, .. } if address.to_string() == "10.99.0.1/32")),
            "{:#?}",
            d.add
        );
        assert!(
            !d.add
                .steps
                .iter()
                .any(|s| matches!(s.op, Op::CreateNetns { .. } | Op::StartNode { .. })),
            "the node is not made again"
        );
        assert!(d.groups.iter().all(|g| g.class == Class::InPlace));

        let d = converges(&plan(&with), &plan(BASE));
        let deleted: Vec<&str> = d
            .remove
            .iter()
            .filter_map(|u| match u {
                Undo::DeleteLink { netns, name, .. } if &**netns == "nslab.d.c" => Some(&**name),
                _ => None,
            })
            .collect();
        assert_eq!(deleted.len(), 2, "{:?}", d.remove);
        assert!(
            deleted.contains(&"lo1") && deleted.contains(&"v7"),
            "{deleted:?}"
        );
        assert!(
            !d.remove
                .iter()
                .any(|u| matches!(u, Undo::DeleteNetns { .. })),
            "{:?}",
            d.remove
        );
    }

    #[test]
    fn a_new_mtu_is_set_on_both_ends_in_place() {
        let new = edit(
            "[a:eth0, b:eth0]",
            "{ endpoints: [a:eth0, b:eth0], mtu: 9000 }",
        );
        let d = converges(&plan(BASE), &plan(&new));
        let mtus: Vec<&Op> = d
            .add
            .steps
            .iter()
            .map(|s| &s.op)
            .filter(|op| matches!(op, Op::SetMtu { mtu: 9000, .. }))
            .collect();
        assert_eq!(mtus.len(), 2, "{:#?}", d.add);
        assert!(d.remove.is_empty());
    }

    #[test]
    fn every_edit_converges_both_ways() {
        let edits = [
            edit("  h1: {}\n", "").replace("[h1:eth0, lan], ", ""),
            edit("  c: {}", "  c: { isolation: [net, uts, mnt, pid] }"),
            edit("sleep 100", "sleep 101"),
            edit("[b:eth1, c:eth0], ", ""),
            edit("routing: static", "routing: none"),
            edit("bridges: { lan: {} }", "bridges: { lan: {}, lan2: {} }")
                .replace("[c:eth1, lan]", "[c:eth1, lan2]"),
        ];
        let base = plan(BASE);
        for e in &edits {
            let p = plan(e);
            converges(&base, &p);
            converges(&p, &base);
        }
    }
}
