//! Kernel errors, and the layer's error that names the lab, node, object and operation.

use crate::plan::{LinkSpec, Op, Undo};

/// What one kernel operation returned.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The kernel refused a netlink request.
    #[error("{msg}")]
    Netlink { errno: i32, msg: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The kernel lacks something the lab needs; named plainly.
    #[error("this kernel has no {feature}: {hint}")]
    MissingFeature { feature: String, hint: String },
    #[error("namespace `{0}` already exists and was not created by this run")]
    NetnsExists(String),
    /// The test-only fault-injection hook fired.
    #[error("injected failure (NSLAB_TEST_FAIL_AT_STEP)")]
    Injected,
    /// A host interface a record names is there, but the kernel does not say it is the
    /// lab's (see `state::owned::host_interface`): left in place, the reason given.
    #[error("{0}")]
    NotTheLabs(String),
    #[error("{0}")]
    Other(String),
}

impl KernelError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            KernelError::Netlink { errno, .. } => Some(*errno),
            KernelError::Io(e) => e.raw_os_error(),
            _ => None,
        }
    }

    /// From an rtnetlink error, keeping the errno for feature detection and idempotent undo.
    pub fn netlink(e: rtnetlink::Error) -> KernelError {
        match &e {
            rtnetlink::Error::NetlinkError(m) => match m.code {
                Some(code) => {
                    let errno = -code.get();
                    KernelError::Netlink {
                        errno,
                        msg: std::io::Error::from_raw_os_error(errno).to_string(),
                    }
                }
                None => KernelError::Other(e.to_string()),
            },
            _ => KernelError::Other(e.to_string()),
        }
    }

    /// Whether an undo found its object already gone, which counts as success.
    pub fn is_gone(&self) -> bool {
        matches!(
            self.errno(),
            Some(libc::ENOENT | libc::ENODEV | libc::ESRCH | libc::EADDRNOTAVAIL | libc::EINVAL)
        )
    }
}

/// Maps "unknown link kind" (EOPNOTSUPP) and "unknown qdisc" (ENOENT) to a missing feature
/// named the way `modprobe` and kernel configs name it.
pub fn missing_link_kind(kind: &str, e: KernelError) -> KernelError {
    if e.errno() == Some(libc::EOPNOTSUPP) {
        return KernelError::MissingFeature {
            feature: format!("`{kind}` link type"),
            hint: format!(
                "the kernel answered \"Unknown device type\"; {}, or remove the `{kind}` interfaces from the lab",
                load_module(kind)
            ),
        };
    }
    e
}

/// The module and kernel option that give a link kind: the one table behind every
/// message that names them (a failed step here, `validate`'s warnings, a `vrf:` check).
pub fn kernel_module(kind: &str) -> (&str, &'static str) {
    match kind {
        "bond" => ("bonding", "CONFIG_BONDING"),
        "wireguard" => ("wireguard", "CONFIG_WIREGUARD"),
        "vlan" => ("8021q", "CONFIG_VLAN_8021Q"),
        "dummy" => ("dummy", "CONFIG_DUMMY"),
        "macvlan" => ("macvlan", "CONFIG_MACVLAN"),
        "vxlan" => ("vxlan", "CONFIG_VXLAN"),
        "veth" => ("veth", "CONFIG_VETH"),
        "vrf" => ("vrf", "CONFIG_NET_VRF"),
        "ipvlan" => ("ipvlan", "CONFIG_IPVLAN"),
        other => (other, "its CONFIG_ option"),
    }
}

/// How to get a link kind this kernel lacks, in the words every such message uses.
pub fn load_module(kind: &str) -> String {
    let (module, config) = kernel_module(kind);
    format!("load the `{module}` module (`modprobe {module}`) or use a kernel built with {config}")
}

pub fn missing_qdisc(kind: &str, e: KernelError) -> KernelError {
    if e.errno() == Some(libc::ENOENT) {
        let hint = if kind == "netem" {
            "`impair` with delay, jitter, loss, duplicate, corrupt or reorder needs the netem qdisc (CONFIG_NET_SCH_NETEM, module sch_netem); a plain `rate` works without it".to_string()
        } else {
            format!("load the `sch_{kind}` module")
        };
        return KernelError::MissingFeature {
            feature: format!("`{kind}` qdisc"),
            hint,
        };
    }
    e
}

/// A step that failed, with everything a message needs.
#[derive(Debug, thiserror::Error)]
#[error("lab `{lab}`, node `{node}`: {operation} {object} failed: {source}")]
pub struct StepError {
    pub lab: String,
    pub node: String,
    pub object: String,
    pub operation: String,
    #[source]
    pub source: KernelError,
}

/// The layer's error: every failure names the lab, the node, the object and the operation.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Step(Box<StepError>),
    #[error("lab `{lab}`: interrupted by {signal}; everything created so far was rolled back")]
    Interrupted { lab: String, signal: String },
    #[error(
        "lab `{lab}` is already up (started by pid {pid}); to change it to what the file says, run `nslab apply` with the file; to start over, `nslab down {lab}` first"
    )]
    AlreadyUp { lab: String, pid: u32 },
    #[error(
        "lab `{lab}` is in use: {by} (pid {pid}) brought it up and takes it down when it ends; give this run a lab name of its own (`name:` in the file), or run it after that one"
    )]
    InUse { lab: String, pid: u32, by: String },
    #[error(
        "lab `{lab}` was left up by {by} (pid {pid}), which ended without taking it down (killed?); `nslab down {lab}` removes it"
    )]
    LeftBehind { lab: String, pid: u32, by: String },
    #[error(
        "lab `{lab}` has leftovers of an interrupted `up`; run `nslab down {lab}` to remove them"
    )]
    Leftovers { lab: String },
    #[error(
        "lab `{lab}` has no stored plan (brought up by an older nslab); run `nslab down {lab}` and bring it up again"
    )]
    NoPlan { lab: String },
    #[error("lab `{lab}`: the apply failed and its changes were rolled back: {source}")]
    RolledBack {
        lab: String,
        source: Box<ApplyError>,
    },
    /// A failed `apply` that left a shared network could not take its addresses there
    /// back (another lab took them meanwhile): the lab is left as the change left it,
    /// rather than given addresses another lab holds.
    #[error("lab `{lab}`: the apply failed ({source}), and it was not rolled back: {}; the lab is as the failed change left it: run `nslab apply` again with the file, or `nslab down {lab}`", .why.join("; "))]
    NotRolledBack {
        lab: String,
        why: Vec<String>,
        source: Box<ApplyError>,
    },
    #[error("no lab named `{0}` is up")]
    NotUp(String),
    #[error("no lab is up")]
    NoLab,
    #[error("lab `{lab}`: namespace{} {} already exist{} without a journal of this lab; if {} left from an earlier run, `nslab down {lab}` removes {} (it finds a lab's objects by name), else rename the lab", if .names.len() == 1 { "" } else { "s" }, .names.join(", "), if .names.len() == 1 { "s" } else { "" }, if .names.len() == 1 { "it is" } else { "they are" }, if .names.len() == 1 { "it" } else { "them" })]
    ForeignNetns { lab: String, names: Vec<String> },
    /// A share's host address is not this machine's (`preflight::underlay`); nothing
    /// was made.
    #[error("lab `{lab}`: {why} (nothing was made)\n  hint: {hint}")]
    NotThisHost {
        lab: String,
        why: String,
        hint: String,
    },
    /// What the lab would make on the host is there already; nothing was made.
    #[error("lab `{lab}` would clash with the host (nothing was made):\n  {}", .clashes.join("\n  "))]
    HostClash { lab: String, clashes: Vec<String> },
    /// The lab's `mgmt:` does not fit the shared network it joins (other labs made it
    /// otherwise, or hold an address it wrote); nothing was made.
    #[error("lab `{lab}` cannot join its shared management network (nothing was made):\n  {}", .refused.join("\n  "))]
    MgmtRefused { lab: String, refused: Vec<String> },
    /// An `apply` that would change the lab's place on a shared management network.
    #[error("lab `{lab}`: {why} (nothing changed)")]
    MgmtApply { lab: String, why: String },
    #[error("several labs are up ({}); choose one with --lab", .0.join(", "))]
    Ambiguous(Vec<String>),
    #[error("{0}")]
    State(#[from] crate::state::StateError),
    #[error("lab `{lab}`: cannot set up the host: {source}")]
    Host {
        lab: String,
        #[source]
        source: std::io::Error,
    },
    /// Teardown is best effort: it goes on after each failure and reports all of them.
    #[error("lab `{lab}`: {} of the teardown failed:\n  {}", .errors.len(), .errors.join("\n  "))]
    Teardown { lab: String, errors: Vec<String> },
    /// The lab is down, but its journal named objects that are not the lab's: they were
    /// left alone. Someone edited the journal, or an nslab with other naming rules wrote it.
    #[error("lab `{lab}` is down, but {} of its journal records {} refused and left alone, as {} not the lab's:\n  {}", .records.len(), if .records.len() == 1 { "was" } else { "were" }, if .records.len() == 1 { "it names an object that is" } else { "they name objects that are" }, .records.join("\n  "))]
    Refused { lab: String, records: Vec<String> },
    /// The stored plan names something that is not the lab's: `apply` would remove by it.
    #[error("lab `{lab}`: the stored plan {} is not the lab's ({what}); it was edited or damaged, and apply removes nothing by it\n  hint: run `nslab down {lab}` (down goes by the journal, not the plan) and bring the lab up again", .path.display())]
    ForeignPlan {
        lab: String,
        path: std::path::PathBuf,
        what: String,
    },
    /// The change was made, but the records an unfinished `apply` left in the journal
    /// named objects that are not the lab's: they were left alone, as by `down`.
    #[error("lab `{lab}` was changed, but {} of the journal records of an unfinished apply {} refused and left alone, as {} not the lab's:\n  {}", .records.len(), if .records.len() == 1 { "was" } else { "were" }, if .records.len() == 1 { "it names an object that is" } else { "they name objects that are" }, .records.join("\n  "))]
    RefusedRecords { lab: String, records: Vec<String> },
    /// A change finished, but host interfaces it was to delete were left in place: the
    /// kernel does not say they are the lab's (see `state::owned::host_interface`).
    #[error("lab `{lab}` was changed, but {} host {} left in place:\n  {}", .records.len(), if .records.len() == 1 { "interface it was to delete was" } else { "interfaces it was to delete were" }, .records.join("\n  "))]
    LeftOnHost { lab: String, records: Vec<String> },
}

impl ApplyError {
    /// The signal (or reason, see `apply::CLOSED_STDOUT`) that stopped an `up` or an
    /// `apply`, through the rollback that followed: the CLI exits 128 + N for it.
    pub fn interrupted_by(&self) -> Option<&str> {
        match self {
            ApplyError::Interrupted { signal, .. } => Some(signal),
            ApplyError::RolledBack { source, .. } | ApplyError::NotRolledBack { source, .. } => {
                source.interrupted_by()
            }
            _ => None,
        }
    }
}

/// `nslab.<lab>.<node>` reads as the node's name, the fabric as `fabric`.
pub fn node_of(lab: &str, netns: &str) -> String {
    let fabric = crate::model::names::fabric_netns(lab);
    if netns == fabric {
        return "fabric".into();
    }
    netns
        .strip_prefix(&format!("{fabric}."))
        .unwrap_or(netns)
        .to_string()
}

/// The object an operation acts on, for messages.
pub fn object_of(op: &Op) -> String {
    match op {
        Op::CreateNetns { netns } => format!("namespace {netns}"),
        Op::SetSysctl { key, value, .. } => format!("sysctl {key}={value}"),
        Op::CreateBridge { name, .. } => format!("bridge {name}"),
        Op::CreateLink(l) => match &l.kind {
            LinkSpec::Veth(p) => {
                format!("veth {} (peer {} in {})", l.name, p.peer_name, p.peer_netns)
            }
            LinkSpec::Vxlan(v) => format!("vxlan {} (VNI {})", l.name, v.vni),
            LinkSpec::Join(j) => format!("veth {} (peer {}) joining bridges", l.name, j.peer_name),
            LinkSpec::Dummy(_) => format!("dummy {}", l.name),
            LinkSpec::Vlan(v) => format!("vlan {} (id {} on {})", l.name, v.vlan_id, v.parent),
            LinkSpec::Macvlan(m) => format!("macvlan {} (on the host's {})", l.name, m.parent),
        },
        Op::SetLinkUp { name, .. } | Op::SetLinkDown { name, .. } => format!("link {name}"),
        Op::SetMtu { name, mtu, .. } => format!("mtu {mtu} of link {name}"),
        Op::AddProcess { spec, .. } => format!("`{}`", spec.name),
        Op::SetMulticastSnooping { name, .. } => format!("multicast snooping on bridge {name}"),
        Op::AddAddress { name, address, .. } => format!("address {address} on {name}"),
        Op::AddRoute { route, .. } => format!("route {}", crate::plan::route_text(route)),
        Op::SetImpair { name, .. } => format!("impairment on {name}"),
        Op::Barrier { .. } => "the wiring barrier".into(),
        Op::WriteHosts { .. } => "the lab's hosts file".into(),
        Op::CreateMountTemplate { .. } => "the lab's mount template".into(),
        Op::MountRunDirs { .. } => "the lab's node directories".into(),
        Op::CreateCgroup { node, .. } => format!("cgroup of node {node}"),
        Op::StartNode { start, .. } => format!("init of node {}", start.node),
        Op::StartProcess { process, .. } => format!("`{process}`"),
        Op::RunExec { argv, .. } => {
            format!("`{}`", crate::model::names::shown(&argv.join(" "), false))
        }
        Op::JoinMgmt {
            network, bridge, ..
        } => format!("shared management network {network} (bridge {bridge})"),
    }
}

pub fn undo_text(u: &Undo) -> String {
    match u {
        Undo::DeleteNetns { netns } => format!("delete namespace {netns}"),
        Undo::DeleteLink { netns, name, .. } | Undo::DeleteTunnel { netns, name, .. } => {
            format!("delete link {name} in {netns}")
        }
        Undo::DeleteAddress { netns, address, .. } => {
            format!("delete address {address} in {netns}")
        }
        Undo::DeleteRoute { netns, dst, .. } => format!("delete route {dst} in {netns}"),
        Undo::ClearImpair { netns, ifindex } => {
            format!("clear impairment on #{ifindex} in {netns}")
        }
        Undo::StopNode { node, .. } => format!("stop node {node}"),
        Undo::RemoveCgroup { node, .. } => format!("remove the cgroup of node {node}"),
        Undo::RemoveMountTemplate { .. } => "remove the lab's mount template".into(),
        Undo::UnmountRunDirs { .. } => "unmount the lab's node directories".into(),
        Undo::RetireProcess { node, process, .. } => {
            format!("retire process `{process}` of node {node}")
        }
        Undo::LeaveMgmt {
            network, bridge, ..
        } => format!("leave shared management network {network} (bridge {bridge})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_features_are_named() {
        let e = missing_link_kind(
            "dummy",
            KernelError::Netlink {
                errno: libc::EOPNOTSUPP,
                msg: "x".into(),
            },
        );
        assert!(
            e.to_string()
                .contains("this kernel has no `dummy` link type"),
            "{e}"
        );
        let e = missing_link_kind(
            "vlan",
            KernelError::Netlink {
                errno: libc::EOPNOTSUPP,
                msg: "x".into(),
            },
        );
        assert!(e.to_string().contains("`modprobe 8021q`"), "{e}");
        assert!(e.to_string().contains("CONFIG_VLAN_8021Q"), "{e}");
        let e = missing_qdisc(
            "netem",
            KernelError::Netlink {
                errno: libc::ENOENT,
                msg: "x".into(),
            },
        );
        assert!(e.to_string().contains("no `netem` qdisc"), "{e}");
        assert!(e.to_string().contains("a plain `rate` works without it"));
        // Other errors pass through untouched.
        let e = missing_qdisc(
            "netem",
            KernelError::Netlink {
                errno: libc::EPERM,
                msg: "Operation not permitted".into(),
            },
        );
        assert_eq!(e.to_string(), "Operation not permitted");
    }

    #[test]
    fn nodes_are_named_from_namespaces() {
        assert_eq!(node_of("lab", "nslab.lab.r1"), "r1");
        assert_eq!(node_of("lab", "nslab.lab"), "fabric");
    }
}
