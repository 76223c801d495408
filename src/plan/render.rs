//! Human-readable plan text: one line per step, with namespaces shown as node names.

use std::fmt::Write;

use crate::model::kinds::RouteKind;
use crate::model::{Limits, Route};
use crate::plan::{Gate, Link, LinkSpec, NodeStart, Op, Plan, Undo};
use crate::spec::values::format_mac;

/// `nslab.<lab>.<node>` reads as `<node>`, the fabric `nslab.<lab>` as `fabric`.
fn short(lab: &str, netns: &str) -> String {
    let fabric = format!("nslab.{lab}");
    if netns == fabric {
        "fabric".into()
    } else {
        netns
            .strip_prefix(&format!("{fabric}."))
            .unwrap_or(netns)
            .to_string()
    }
}

pub fn route_text(r: &Route) -> String {
    let mut s = r.dst.to_string();
    match r.kind {
        RouteKind::Unicast => {
            for h in &r.nexthops {
                let _ = write!(s, " via {} dev {}", h.gateway, h.dev);
                if h.weight > 0 {
                    let _ = write!(s, " weight {}", u16::from(h.weight) + 1);
                }
            }
            if let Some(d) = &r.dev {
                let _ = write!(s, " dev {d}");
            }
        }
        other => {
            s = format!(
                "{} {s}",
                serde_json::to_value(other)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            );
        }
    }
    if let Some(m) = r.metric {
        let _ = write!(s, " metric {m}");
    }
    s
}

/// A link's own end, then what its kind adds.
fn link_text(lab: &str, l: &Link) -> String {
    let mtu = l.mtu.map(|m| format!(" mtu {m}")).unwrap_or_default();
    let master = l
        .master
        .map(|m| format!(" master #{m}"))
        .unwrap_or_default();
    let own = format!(
        "{}:{} (#{}, {})",
        short(lab, &l.netns),
        l.name,
        l.ifindex,
        format_mac(&l.mac)
    );
    match &l.kind {
        LinkSpec::Veth(p) => format!(
            "{own} <-> {}:{} (#{}, {}){mtu}{master}",
            short(lab, &p.peer_netns),
            p.peer_name,
            p.peer_ifindex,
            format_mac(&p.peer_mac)
        ),
        LinkSpec::Join(j) => format!(
            "{own} <-> {} (#{}, {}) on bridge #{}{mtu}{master}",
            j.peer_name,
            j.peer_ifindex,
            format_mac(&j.peer_mac),
            j.peer_master
        ),
        LinkSpec::Vxlan(v) => {
            let to: Vec<String> = v
                .remote
                .iter()
                .chain(&v.flood)
                .map(|a| a.to_string())
                .collect();
            format!(
                "{own} vxlan {} port {} {} -> {}{mtu}{master}",
                v.vni,
                v.port,
                v.local,
                to.join(" ")
            )
        }
        LinkSpec::Dummy(_) => format!("{own} dummy{mtu}"),
        LinkSpec::Vlan(v) => format!(
            "{own} vlan {} on {} (#{}){mtu}",
            v.vlan_id, v.parent, v.parent_ifindex
        ),
        LinkSpec::Macvlan(m) => format!(
            "{own} macvlan {} on the host's {}{mtu}",
            m.mode.name(),
            m.parent
        ),
    }
}

/// A node's `limits:` as `memory M cpu C pids P`, those it sets.
fn limits_text(limits: &Limits) -> String {
    let mut parts = Vec::new();
    if let Some(m) = limits.memory {
        parts.push(format!("memory {m}"));
    }
    if let Some(c) = limits.cpu {
        parts.push(format!("cpu {c}"));
    }
    if let Some(p) = limits.pids {
        parts.push(format!("pids {p}"));
    }
    parts.join(" ")
}

/// A node's init: its namespaces and how much it mounts and runs.
fn init_text(start: &NodeStart) -> String {
    let mut kinds = vec!["net"];
    for (on, k) in [
        (start.uts, "uts"),
        (start.mnt, "mnt"),
        (start.pid, "pid"),
        (start.ipc, "ipc"),
        // The init makes a cgroup namespace whenever it has a mount namespace.
        (start.mnt, "cgroup"),
    ] {
        if on {
            kinds.push(k);
        }
    }
    format!(
        "init in [{}], {} mounts, {} private dirs, {} processes",
        kinds.join(" "),
        start.mounts.len(),
        start.private.len(),
        start.processes.len()
    )
}

fn op_text(lab: &str, op: &Op) -> String {
    let ns = |n: &str| short(lab, n);
    match op {
        Op::CreateNetns { netns } => netns.to_string(),
        Op::SetSysctl { netns, key, value } => format!("{}: {key} = {value}", ns(netns)),
        Op::CreateBridge { .. } | Op::JoinMgmt { .. } | Op::CreateCgroup { .. } => {
            made_text(lab, op)
        }
        Op::CreateLink(l) => link_text(lab, l),
        Op::SetMulticastSnooping {
            netns,
            name,
            ifindex,
            on,
        } => format!(
            "{}:{name} (#{ifindex}) {}",
            ns(netns),
            if *on { "on" } else { "off" }
        ),
        Op::SetLinkUp {
            netns,
            name,
            ifindex,
        }
        | Op::SetLinkDown {
            netns,
            name,
            ifindex,
        } => format!("{}:{name} (#{ifindex})", ns(netns)),
        Op::SetMtu {
            netns,
            name,
            ifindex,
            mtu,
        } => format!("{}:{name} (#{ifindex}) mtu {mtu}", ns(netns)),
        Op::AddProcess { netns, spec, .. } => {
            format!("{}: {} `{}`", ns(netns), spec.name, spec.argv.join(" "))
        }
        Op::AddAddress {
            netns,
            name,
            address,
            ..
        } => format!("{}:{name} {address}", ns(netns)),
        Op::AddRoute { netns, route } => format!("{}: {}", ns(netns), route_text(route)),
        Op::SetImpair {
            netns,
            name,
            impair,
            ..
        } => {
            format!("{}:{name} {impair}", ns(netns))
        }
        Op::Barrier {
            before: Gate::Bridges,
        } => "every port, address and route is in place; bridges come up next".into(),
        Op::Barrier {
            before: Gate::Nodes,
        } => "every link, address and route is in place".into(),
        Op::MountRunDirs { .. } => "a tmpfs for pid files, sockets and logs".into(),
        Op::CreateMountTemplate { .. } => {
            "host mounts without /run/netns, for nodes to copy".into()
        }
        Op::WriteHosts { content, .. } => format!(
            "{} names",
            content.lines().filter(|l| !l.starts_with('#')).count()
        ),
        Op::StartNode { netns, start } => format!("{}: {}", ns(netns), init_text(start)),
        Op::StartProcess { netns, process, .. } => format!("{}: {process}", ns(netns)),
        Op::RunExec { netns, argv, .. } => format!("{}: {}", ns(netns), argv.join(" ")),
    }
}

/// [`op_text`] of the ops that make a bridge, join a management network or make a
/// cgroup: the ones with the most to say.
fn made_text(lab: &str, op: &Op) -> String {
    let ns = |n: &str| short(lab, n);
    match op {
        Op::CreateBridge {
            netns,
            name,
            ifindex,
            mac,
            mtu,
            stp,
        } => {
            let mtu = mtu.map(|m| format!(" mtu {m}")).unwrap_or_default();
            let stp = if *stp { " stp" } else { "" };
            format!(
                "{}: {name} (#{ifindex}) mac {}{mtu}{stp}",
                ns(netns),
                format_mac(mac)
            )
        }
        Op::JoinMgmt {
            netns,
            network,
            bridge,
            ifindex,
            mac,
            addresses,
        } => {
            let addrs: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
            format!(
                "{}: network {network}: {bridge} (#{ifindex}) mac {} {} (made by its first lab)",
                ns(netns),
                format_mac(mac),
                addrs.join(" ")
            )
        }
        Op::CreateCgroup {
            netns,
            limits,
            outside,
            ..
        } => {
            let mut text = limits_text(limits);
            if *outside {
                let sep = if text.is_empty() { "" } else { ", " };
                text.push_str(&format!("{sep}in every hierarchy, outside the caller's"));
            }
            format!("{}: {text}", ns(netns))
        }
        _ => unreachable!("made_text is called for these three ops only"),
    }
}

/// The plan as text: `id  op  what  [after deps]`, the columns as wide as their content.
pub fn render_text(plan: &Plan) -> String {
    let mut out = Vec::new();
    write_text(plan, &mut out).expect("writing to memory cannot fail");
    String::from_utf8(out).expect("plan text is UTF-8")
}

/// Streams the plan text, so a large plan is never held in memory twice.
pub fn write_text(plan: &Plan, out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(
        out,
        "plan for lab `{}`: {}",
        plan.lab,
        crate::words::count(plan.steps.len(), "step")
    )?;
    let w = plan.steps.len().to_string().len();
    // The op column as wide as this plan's longest op (`set-multicast-snooping` is 22).
    let ow = plan
        .steps
        .iter()
        .map(|s| s.op.name().len())
        .max()
        .unwrap_or(0);
    for s in &plan.steps {
        write!(
            out,
            "{:>w$}  {:<ow$}  {}",
            s.id,
            s.op.name(),
            // One line per step, as the file's words may hold anything (an escape
            // sequence would hide a command from whoever reviews the plan).
            crate::model::names::shown(&op_text(&plan.lab, &s.op), false)
        )?;
        if let Some((first, rest)) = s.deps.split_first() {
            write!(out, "  [after {first}")?;
            for d in rest {
                write!(out, ",{d}")?;
            }
            write!(out, "]")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// The teardown as text, one undo per line, in the order `down` runs them.
pub fn teardown_text(plan: &Plan) -> String {
    let mut out = String::new();
    let t = plan.teardown();
    let _ = writeln!(
        out,
        "teardown for lab `{}`: {}",
        plan.lab,
        crate::words::count(t.len(), "step")
    );
    let before_sweep = t.nodes.iter().chain(&t.netlink).chain(&t.namespaces);
    for u in before_sweep {
        let _ = writeln!(out, "{}", undo_line(&plan.lab, u));
    }
    // Not a record of its own: whatever still runs in the namespaces (a daemon that left
    // its init, a backgrounded `nslab exec`) dies before its cgroup goes.
    let _ = writeln!(out, "sweep          processes left in the lab's namespaces");
    for u in t.cgroups.iter().chain(&t.mounts) {
        let _ = writeln!(out, "{}", undo_line(&plan.lab, u));
    }
    out
}

fn undo_line(lab: &str, u: &Undo) -> String {
    match u {
        Undo::DeleteNetns { netns } => format!("delete-netns   {netns}"),
        Undo::DeleteLink { netns, name, .. } => {
            format!("delete-link    {}:{name}", short(lab, netns))
        }
        Undo::DeleteTunnel { netns, name, .. } => {
            format!("delete-tunnel  {}:{name}", short(lab, netns))
        }
        Undo::DeleteAddress {
            netns,
            address,
            ifindex,
            ..
        } => {
            format!("delete-address {}:#{ifindex} {address}", short(lab, netns))
        }
        Undo::DeleteRoute { netns, dst, .. } => {
            format!("delete-route   {}: {dst}", short(lab, netns))
        }
        Undo::ClearImpair { netns, ifindex } => {
            format!("clear-impair   {}:#{ifindex}", short(lab, netns))
        }
        Undo::StopNode { node, .. } => format!("stop-node      {node}"),
        Undo::RemoveCgroup { node, .. } => format!("remove-cgroup  {node}"),
        Undo::RemoveMountTemplate { .. } => "remove-mount-template".to_string(),
        Undo::UnmountRunDirs { .. } => "unmount-run-dirs".to_string(),
        Undo::RetireProcess { node, process, .. } => format!("retire-process {node}: {process}"),
        Undo::LeaveMgmt {
            network, bridge, ..
        } => format!("leave-mgmt     {network} (bridge {bridge}, deleted by its last lab)"),
    }
}
