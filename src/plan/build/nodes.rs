//! Node runtimes in the plan: the lab's run directories, hosts file and mount template,
//! each node's cgroup and init, its processes in dependency order and its `exec:`
//! commands, all behind the wiring's barrier.

use super::{Builder, leaves};
use crate::model::Topology;
use crate::model::kinds::NsKind;
use crate::plan::node::{lab_hosts, needs_init, node_start};
use crate::plan::{Gate, Name, Op, StepId};

/// Each node's cgroup (when it has limits, or the lab's nodes leave the caller's) and init, once its namespace exists and the
/// lab's hosts file (and, for a node with a mount namespace, the mount template) is
/// written (`hosts` and `template`, the steps that make them). The init's step per node,
/// 0 for a node without one.
fn starts(
    t: &Topology,
    b: &mut Builder,
    netns: &[Name],
    ns_step: &[StepId],
    with_init: &[usize],
    hosts: StepId,
    template: Option<StepId>,
) -> Vec<StepId> {
    let mut start = vec![0; t.nodes.len()];
    for &i in with_init {
        let n = &t.nodes[i];
        let mut deps = vec![ns_step[i], hosts];
        if let (Some(tpl), true) = (template, n.isolation.contains(&NsKind::Mnt)) {
            deps.push(tpl);
        }
        if !n.limits.is_empty() || t.own_cgroups {
            deps.push(b.push(
                Op::CreateCgroup {
                    netns: netns[i].clone(),
                    node: n.name.clone(),
                    limits: n.limits.clone(),
                    outside: t.own_cgroups,
                },
                vec![ns_step[i]],
            ));
        }
        start[i] = b.push(
            Op::StartNode {
                netns: netns[i].clone(),
                start: Box::new(node_start(t, i)),
            },
            deps,
        );
    }
    start
}

/// What node `i`'s first `exec:` command waits for: its init, the wiring, its
/// processes; a node without processes waits for its own `depends_on` itself (with
/// processes, they reach it through them). A node on another host is not waited for:
/// hosts do not wait for each other.
fn exec_deps(
    t: &Topology,
    i: usize,
    start: &[StepId],
    barrier: StepId,
    proc_step: &[Vec<StepId>],
    local: &[bool],
) -> Vec<StepId> {
    let n = &t.nodes[i];
    let mut prev: Vec<StepId> = vec![start[i], barrier];
    prev.extend(&proc_step[i]);
    if n.processes.is_empty() && !n.exec.is_empty() {
        for d in n.depends_on.iter().filter(|d| local[d.node]) {
            match d.process {
                Some(q) => prev.push(proc_step[d.node][q]),
                None if proc_step[d.node].is_empty() && start[d.node] != 0 => {
                    prev.push(start[d.node])
                }
                None => prev.extend(&proc_step[d.node]),
            }
        }
        prev.sort_unstable();
        prev.dedup();
    }
    prev
}

/// Node runtimes: cgroups and inits as soon as the node's namespace exists, so the
/// kernel's namespace and mount work of the inits overlaps the wiring; processes (in
/// dependency order) and then each node's `exec:` commands (in order) once all wiring is
/// done, so a process finds every link, address and route in place.
pub(super) fn nodes(
    t: &Topology,
    b: &mut Builder,
    netns: &[Name],
    ns_step: &[StepId],
    local: &[bool],
) {
    let with_init: Vec<usize> = (0..t.nodes.len())
        .filter(|&i| local[i] && needs_init(&t.nodes[i]))
        .collect();
    if with_init.is_empty() {
        return;
    }
    // One step left (a bridge's snooping, behind the wiring's own barrier) needs no second.
    let barrier = match leaves(b).as_slice() {
        [one] => *one,
        many => b.push(
            Op::Barrier {
                before: Gate::Nodes,
            },
            many.to_vec(),
        ),
    };
    // Pid files, control sockets, the hosts file and logs go on a tmpfs of the lab's own.
    let run_dirs = b.push(Op::MountRunDirs { lab: t.lab.clone() }, vec![]);
    let hosts = b.push(
        Op::WriteHosts {
            lab: t.lab.clone(),
            content: lab_hosts(t),
        },
        vec![run_dirs],
    );
    // Nodes with their own mount namespace copy it from the lab's template, not from
    // the host's mounts (which hold one nsfs mount per namespace of every lab).
    let template = with_init
        .iter()
        .any(|&i| t.nodes[i].isolation.contains(&NsKind::Mnt))
        .then(|| {
            b.push(
                Op::CreateMountTemplate { lab: t.lab.clone() },
                vec![run_dirs],
            )
        });
    let start = starts(t, b, netns, ns_step, &with_init, hosts, template);
    // Processes in an order where every dependency comes first (cycles were rejected by
    // the model), declaration order otherwise.
    let mut order = ProcOrder {
        t,
        netns,
        start: &start,
        wired: barrier,
        local,
        steps: t.nodes.iter().map(|n| vec![0; n.processes.len()]).collect(),
        seen: t
            .nodes
            .iter()
            .map(|n| vec![false; n.processes.len()])
            .collect(),
    };
    for &i in &with_init {
        for p in 0..t.nodes[i].processes.len() {
            order.visit(b, i, p);
        }
    }
    let proc_step = order.steps;
    // `exec:` runs once the node's processes are ready, one command after the other.
    for &i in &with_init {
        let n = &t.nodes[i];
        let mut prev = exec_deps(t, i, &start, barrier, &proc_step, local);
        for e in &n.exec {
            let id = b.push(
                Op::RunExec {
                    netns: netns[i].clone(),
                    node: n.name.clone(),
                    argv: e.cmd.argv(),
                    ignore_errors: e.ignore_errors,
                    timeout_ms: e.timeout.map(|d| d.as_millis() as u64),
                },
                prev.clone(),
            );
            prev = vec![id];
        }
    }
}

/// Emits process steps depth-first, dependencies before dependents.
struct ProcOrder<'a> {
    t: &'a Topology,
    netns: &'a [Name],
    start: &'a [StepId],
    /// The barrier behind all wiring: no process starts before it.
    wired: StepId,
    local: &'a [bool],
    steps: Vec<Vec<StepId>>,
    seen: Vec<Vec<bool>>,
}

impl ProcOrder<'_> {
    fn visit(&mut self, b: &mut Builder, n: usize, p: usize) {
        if self.seen[n][p] {
            return;
        }
        self.seen[n][p] = true;
        let node = &self.t.nodes[n];
        let mut deps = vec![self.start[n], self.wired];
        let deps_of = node.depends_on.iter().chain(&node.processes[p].depends_on);
        for d in deps_of.filter(|d| self.local[d.node]) {
            let targets: Vec<usize> = match d.process {
                Some(q) => vec![q],
                None => (0..self.t.nodes[d.node].processes.len()).collect(),
            };
            // A node without an init (net only, nothing to run) is ready once wired.
            if targets.is_empty() && self.start[d.node] != 0 {
                deps.push(self.start[d.node]);
            }
            for q in targets {
                if (d.node, q) != (n, p) {
                    self.visit(b, d.node, q);
                    deps.push(self.steps[d.node][q]);
                }
            }
        }
        self.steps[n][p] = b.push(
            Op::StartProcess {
                netns: self.netns[n].clone(),
                node: node.name.clone(),
                process: node.processes[p].name.clone(),
            },
            deps,
        );
    }
}
