//! The compiler's invariants, checked on any input. The fuzz target (`fuzz/`) and the
//! property tests (`tests/properties.rs`) share this one definition, so a violation the
//! fuzzer finds is the same violation a property test reports. Hidden from the docs: it
//! is a test aid, public only so both can reach it.
//!
//! For any bytes: compiling never panics; compiling twice gives byte-identical output
//! (plan JSON and text, teardown, graphs, or the rendered diagnostics); every diagnostic
//! points inside the source. For a plan (the whole lab's, and in a multi-host lab each
//! host's share): ids ascend and every step waits only for
//! earlier ones; every object a step creates is undone by the teardown, directly or by
//! deleting its namespace; every step runs after the steps that created what it acts on;
//! every undo record survives the journal's JSON.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::diag::{Report, Severity, Span, source_lines};
use crate::plan::share::Share;
use crate::plan::{Op, Plan, Undo};
use crate::{CompileError, compile_str, draw, plan};

/// What an input compiled to, for statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Rejected, with this many errors.
    Invalid { errors: usize },
    /// Compiled to a plan of this many steps.
    Planned { steps: usize },
}

/// A broken invariant, with what is needed to see why.
#[derive(Debug, thiserror::Error)]
pub enum Violation {
    #[error("compiling twice gave different {what}:\n--- first\n{first}\n--- second\n{second}")]
    NotDeterministic {
        what: &'static str,
        first: String,
        second: String,
    },
    #[error(
        "diagnostic `{message}` points at {line}:{col} (length {len}), outside the source \
         ({lines} lines, that line {width} characters)"
    )]
    SpanOutside {
        message: String,
        line: u32,
        col: u32,
        len: u32,
        lines: usize,
        width: usize,
    },
    #[error("diagnostic `{message}` at line {line} is rendered without that line:\n{rendered}")]
    NoSnippet {
        message: String,
        line: u32,
        rendered: String,
    },
    #[error("rejected without an error: {0}")]
    NoError(String),
    #[error("compiling text failed as only reading a file may: {0}")]
    Unexpected(String),
    #[error("step {step} waits for step {dep}, which is not an earlier step")]
    BadOrder { step: usize, dep: usize },
    #[error("step {step} ({op}) creates something without an undo")]
    NoUndo { step: usize, op: &'static str },
    #[error("step {step} ({op}): the teardown neither undoes it nor deletes its namespace")]
    NotTornDown { step: usize, op: &'static str },
    #[error("step {step} ({op}) does not wait for the step that creates {what}")]
    Unordered {
        step: usize,
        op: &'static str,
        what: String,
    },
    #[error("undo record {0} does not survive the journal's JSON")]
    Journal(String),
}

/// Checks every invariant on raw bytes: as UTF-8 when they are, else as the text a
/// lossy decoding gives (the file reader rejects non-UTF-8, so that is as far as such
/// bytes could get).
pub fn check_bytes(bytes: &[u8]) -> Result<Outcome, Violation> {
    match std::str::from_utf8(bytes) {
        Ok(s) => check_str(s),
        Err(_) => check_str(&String::from_utf8_lossy(bytes)),
    }
}

/// Checks every invariant on topology text.
pub fn check_str(source: &str) -> Result<Outcome, Violation> {
    let (first, plan) = compile_once(source)?;
    let (second, again) = compile_once(source)?;
    if plan.is_ok() != again.is_ok() {
        let verdict = |ok: bool| if ok { "compiled" } else { "rejected" }.to_string();
        return Err(Violation::NotDeterministic {
            what: "outcomes",
            first: verdict(plan.is_ok()),
            second: verdict(again.is_ok()),
        });
    }
    for (what, a, b) in first.iter().zip(&second).map(|(a, b)| (a.0, &a.1, &b.1)) {
        if a != b {
            return Err(Violation::NotDeterministic {
                what,
                first: a.clone(),
                second: b.clone(),
            });
        }
    }
    match plan {
        Ok(plans) => {
            plans.iter().try_for_each(check_plan)?;
            Ok(Outcome::Planned {
                steps: plans[0].steps.len(),
            })
        }
        Err(errors) => Ok(Outcome::Invalid { errors }),
    }
}

/// Named renderings of one compilation, compared between two runs.
type Renderings = Vec<(&'static str, String)>;

/// Compiles once and renders everything a user can see of the result; with the plans
/// (the whole lab's first, then each host's share), or the number of errors.
fn compile_once(source: &str) -> Result<(Renderings, Result<Vec<Plan>, usize>), Violation> {
    match compile_str(source, "fuzz.yaml", Path::new("/")) {
        Ok(c) => {
            check_spans(&c.warnings)?;
            let p = plan::plan(&c.topology);
            let mut out = vec![
                ("warnings", c.warnings.render(Severity::Warning)),
                ("plan JSON", p.to_json()),
                ("plan text", plan::render_text(&p)),
                ("teardown", plan::teardown_text(&p)),
                ("DOT graph", draw::render(&c.topology, draw::Format::Dot)),
                (
                    "Mermaid graph",
                    draw::render(&c.topology, draw::Format::Mermaid),
                ),
            ];
            let mut plans = vec![p];
            for h in &c.topology.hosts {
                let share = Share::of(&c.topology, &h.name).ok_or_else(|| {
                    Violation::Unexpected(format!("host `{}` has no share", h.name))
                })?;
                let tunnels = share.tunnels(&c.topology);
                let s = plan::plan_share(&c.topology, &share);
                out.push(("share", format!("{}\n{tunnels:?}\n", s.to_json())));
                plans.push(s);
            }
            Ok((out, Ok(plans)))
        }
        Err(CompileError::Invalid(r)) => {
            check_spans(&r)?;
            if !r.has_errors() {
                return Err(Violation::NoError(r.render(Severity::Warning)));
            }
            let out = vec![
                ("errors", r.render(Severity::Error)),
                ("warnings", r.render(Severity::Warning)),
            ];
            Ok((out, Err(r.errors().count())))
        }
        // compile_str reads nothing, so these cannot happen; reported, not hidden.
        Err(e) => Err(Violation::Unexpected(e.to_string())),
    }
}

/// Every span (and every note's) starts on a line of the source, at most one past its
/// last character (the line end, where "expected a value" points), and underlines
/// nothing past that line end; the rendered diagnostic shows that line.
pub fn check_spans(report: &Report) -> Result<(), Violation> {
    let lines: Vec<&str> = source_lines(&report.source).collect();
    for d in &report.diagnostics {
        if let Some(span) = d.span {
            let rendered = d.render_lines(&report.file, &lines);
            if !rendered.contains(&format!("{} | ", span.line)) {
                return Err(Violation::NoSnippet {
                    message: d.message.clone(),
                    line: span.line,
                    rendered,
                });
            }
        }
        for span in d.span.iter().chain(d.notes.iter().map(|(s, _)| s)) {
            let width = (span.line as usize)
                .checked_sub(1)
                .and_then(|i| lines.get(i))
                .map(|l| l.chars().count());
            if !span_fits(span, width) {
                return Err(Violation::SpanOutside {
                    message: d.message.clone(),
                    line: span.line,
                    col: span.col,
                    len: span.len,
                    lines: lines.len(),
                    width: width.unwrap_or(0),
                });
            }
        }
    }
    Ok(())
}

fn span_fits(span: &Span, width: Option<usize>) -> bool {
    let Some(width) = width else { return false };
    let start = span.col as usize;
    start >= 1 && start <= width + 1 && start - 1 + (span.len.max(1) as usize) <= width + 1
}

/// The plan's structural invariants (see the module docs).
pub fn check_plan(p: &Plan) -> Result<(), Violation> {
    for (i, s) in p.steps.iter().enumerate() {
        if s.id != i + 1 {
            return Err(Violation::BadOrder { step: s.id, dep: 0 });
        }
        if let Some(&dep) = s.deps.iter().find(|&&d| d == 0 || d >= s.id) {
            return Err(Violation::BadOrder { step: s.id, dep });
        }
    }
    check_teardown(p)?;
    check_ancestry(p)
}

/// What a step leaves behind that `down` must remove.
enum Leaves {
    /// Nothing (a barrier), or only state inside the lab's run directory, which goes
    /// with the lab's journal.
    Nothing,
    /// An object with its own undo record.
    Object,
    /// Something inside a namespace (a sysctl, a link state) that dies with it.
    InNetns,
    /// A process under the node's init, which stopping the node ends.
    UnderNode,
}

/// Exhaustive on purpose: a new kind of step must say what it leaves behind.
fn leaves(op: &Op) -> Leaves {
    match op {
        Op::Barrier { .. } | Op::WriteHosts { .. } => Leaves::Nothing,
        Op::CreateNetns { .. }
        | Op::CreateBridge { .. }
        | Op::CreateLink(_)
        | Op::AddAddress { .. }
        | Op::AddRoute { .. }
        | Op::SetImpair { .. }
        | Op::CreateCgroup { .. }
        | Op::StartNode { .. }
        | Op::CreateMountTemplate { .. }
        | Op::JoinMgmt { .. }
        | Op::MountRunDirs { .. } => Leaves::Object,
        Op::SetSysctl { .. }
        | Op::SetLinkUp { .. }
        | Op::SetLinkDown { .. }
        | Op::SetMtu { .. }
        | Op::SetMulticastSnooping { .. } => Leaves::InNetns,
        Op::StartProcess { .. } | Op::AddProcess { .. } | Op::RunExec { .. } => Leaves::UnderNode,
    }
}

/// A setting on an interface the lab made in the host's namespace, which survives no
/// namespace deletion but goes with the interface's own undo.
fn on_deleted_host_link(op: &Op, undone: &HashSet<String>) -> bool {
    let host = crate::model::hostnet::HOST_NETNS;
    let (Op::SetLinkUp {
        netns,
        name,
        ifindex,
    }
    | Op::SetMtu {
        netns,
        name,
        ifindex,
        ..
    }) = op
    else {
        return false;
    };
    let undo = Undo::DeleteLink {
        netns: netns.clone(),
        name: name.clone(),
        ifindex: *ifindex,
    };
    **netns == *host && undone.contains(&serde_json::to_string(&undo).expect("undo serializes"))
}

fn check_teardown(p: &Plan) -> Result<(), Violation> {
    let teardown = p.teardown();
    let key = |u: &Undo| serde_json::to_string(u).expect("undo serializes");
    let undone: HashSet<String> = teardown.in_order().map(key).collect();
    let deleted: HashSet<&str> = teardown
        .in_order()
        .filter_map(|u| match u {
            Undo::DeleteNetns { netns } => Some(&**netns),
            _ => None,
        })
        .collect();
    let stopped: HashSet<&str> = teardown
        .in_order()
        .filter_map(|u| match u {
            Undo::StopNode { netns, .. } => Some(&**netns),
            _ => None,
        })
        .collect();
    for s in &p.steps {
        let (step, op) = (s.id, s.op.name());
        let ok = match leaves(&s.op) {
            Leaves::Nothing => true,
            Leaves::Object => {
                let undo = s.op.undo().ok_or(Violation::NoUndo { step, op })?;
                undone.contains(&key(&undo))
                    || undo.dies_with().is_some_and(|n| deleted.contains(n))
            }
            Leaves::InNetns => {
                deleted.contains(s.op.netns()) || on_deleted_host_link(&s.op, &undone)
            }
            Leaves::UnderNode => stopped.contains(s.op.netns()),
        };
        if !ok {
            return Err(Violation::NotTornDown { step, op });
        }
    }
    for u in teardown.in_order() {
        let back: Result<Undo, _> = serde_json::from_str(&key(u));
        if back.ok().as_ref() != Some(u) {
            return Err(Violation::Journal(key(u)));
        }
    }
    Ok(())
}

/// What a step needs to exist before it runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Need {
    Netns(String),
    Link(String, u32),
    Node(String),
}

impl Need {
    fn describe(&self) -> String {
        match self {
            Need::Netns(n) => format!("namespace {n}"),
            Need::Link(n, i) => format!("interface #{i} in {n}"),
            Need::Node(n) => format!("the node of {n}"),
        }
    }
}

/// What a step creates (`made`) and what must exist before it (`needs`).
fn made_and_needs(op: &Op) -> (Vec<Need>, Vec<Need>) {
    let ns = |n: &str| Need::Netns(n.to_string());
    let link = |n: &str, i: u32| Need::Link(n.to_string(), i);
    match op {
        Op::CreateNetns { netns } => (vec![ns(netns), link(netns, 1)], vec![]),
        Op::CreateBridge { netns, ifindex, .. } | Op::JoinMgmt { netns, ifindex, .. } => {
            (vec![link(netns, *ifindex)], vec![ns(netns)])
        }
        Op::CreateLink(l) => {
            let made = l.ends().iter().map(|e| link(&e.netns, e.ifindex)).collect();
            let mut needs: Vec<Need> = l.namespaces().into_iter().map(|n| ns(n)).collect();
            needs.extend(l.masters().into_iter().map(|m| link(&l.netns, m)));
            if let crate::plan::LinkSpec::Vlan(v) = &l.kind {
                needs.push(link(&l.netns, v.parent_ifindex));
            }
            (made, needs)
        }
        Op::SetLinkUp { netns, ifindex, .. }
        | Op::SetLinkDown { netns, ifindex, .. }
        | Op::SetMtu { netns, ifindex, .. }
        | Op::SetMulticastSnooping { netns, ifindex, .. }
        | Op::AddAddress { netns, ifindex, .. }
        | Op::SetImpair { netns, ifindex, .. } => (vec![], vec![link(netns, *ifindex)]),
        Op::AddRoute { netns, route } => {
            let via = route.nexthops.iter().map(|h| h.ifindex);
            let needs = via.chain(route.dev_ifindex).map(|i| link(netns, i));
            (vec![], std::iter::once(ns(netns)).chain(needs).collect())
        }
        Op::SetSysctl { netns, .. } | Op::CreateCgroup { netns, .. } => (vec![], vec![ns(netns)]),
        Op::StartNode { netns, .. } => (vec![Need::Node(netns.to_string())], vec![ns(netns)]),
        Op::StartProcess { netns, .. }
        | Op::AddProcess { netns, .. }
        | Op::RunExec { netns, .. } => (vec![], vec![Need::Node(netns.to_string())]),
        Op::Barrier { .. }
        | Op::WriteHosts { .. }
        | Op::MountRunDirs { .. }
        | Op::CreateMountTemplate { .. } => (vec![], vec![]),
    }
}

/// Every step waits, directly or through others, for the steps that created the
/// namespaces, interfaces and node it acts on: apply runs independent steps at once,
/// so anything not ordered by a dependency may run first.
fn check_ancestry(p: &Plan) -> Result<(), Violation> {
    let n = p.steps.len();
    let words = n.div_ceil(64) + 1;
    // ancestors[id] is a bitset of step ids (bit 0 unused).
    let mut ancestors: Vec<Vec<u64>> = vec![vec![0; words]; n + 1];
    let mut maker: HashMap<Need, usize> = HashMap::new();
    for s in &p.steps {
        let mut mine = vec![0u64; words];
        for &d in &s.deps {
            mine[d / 64] |= 1 << (d % 64);
            for (m, a) in mine.iter_mut().zip(&ancestors[d]) {
                *m |= a;
            }
        }
        let (made, needs) = made_and_needs(&s.op);
        // The host's namespace exists before any plan (see `model::hostnet`).
        let host = Need::Netns(crate::model::hostnet::HOST_NETNS.to_string());
        for need in needs.into_iter().filter(|n| *n != host) {
            let ok = maker
                .get(&need)
                .is_some_and(|&m| mine[m / 64] & (1 << (m % 64)) != 0);
            if !ok {
                return Err(Violation::Unordered {
                    step: s.id,
                    op: s.op.name(),
                    what: need.describe(),
                });
            }
        }
        for m in made {
            maker.entry(m).or_insert(s.id);
        }
        ancestors[s.id] = mine;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_may_reach_the_line_end_but_not_past_it() {
        assert!(span_fits(&Span::new(1, 1, 3), Some(3)));
        assert!(span_fits(&Span::new(1, 4, 1), Some(3)));
        assert!(!span_fits(&Span::new(1, 5, 1), Some(3)));
        assert!(!span_fits(&Span::new(1, 2, 4), Some(3)));
        assert!(!span_fits(&Span::new(1, 0, 1), Some(3)));
        assert!(!span_fits(&Span::new(2, 1, 1), None));
    }

    #[test]
    fn a_plan_whose_step_waits_for_a_later_one_is_caught() {
        let c = compile_str("name: t\nnodes: { a: {} }\n", "t.yaml", Path::new("/")).unwrap();
        let mut p = plan::plan(&c.topology);
        check_plan(&p).unwrap();
        p.steps[0].deps.push(2);
        assert!(matches!(
            check_plan(&p),
            Err(Violation::BadOrder { step: 1, dep: 2 })
        ));
    }

    #[test]
    fn a_step_not_behind_its_namespace_is_caught() {
        let c = compile_str(
            "name: t\nnodes: { a: {}, b: {} }\nlinks: [[a, b]]\n",
            "t.yaml",
            Path::new("/"),
        )
        .unwrap();
        let mut p = plan::plan(&c.topology);
        check_plan(&p).unwrap();
        let veth = p
            .steps
            .iter_mut()
            .find(|s| s.op.name() == "create-veth")
            .unwrap();
        veth.deps.clear();
        assert!(matches!(
            check_plan(&p),
            Err(Violation::Unordered {
                op: "create-veth",
                ..
            })
        ));
    }

    #[test]
    fn an_object_the_teardown_misses_is_caught() {
        let c = compile_str("name: t\nnodes: { a: {} }\n", "t.yaml", Path::new("/")).unwrap();
        let mut p = plan::plan(&c.topology);
        // A namespace the teardown does not know: the created netns step renamed after
        // the fact would leave the original's objects behind.
        p.steps.push(crate::plan::Step {
            id: p.steps.len() + 1,
            op: Op::SetSysctl {
                netns: "nslab.t.ghost".into(),
                key: "net.ipv4.ip_forward".into(),
                value: "1".into(),
            },
            deps: vec![1],
        });
        assert!(matches!(
            check_teardown(&p),
            Err(Violation::NotTornDown {
                op: "set-sysctl",
                ..
            })
        ));
    }
}
