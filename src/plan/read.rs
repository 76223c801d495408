//! Reading a step back: a lab's stored plan is read by every `apply`, `link`, `node` and
//! `status` of a running lab, and at 1,000 nodes it is about 1 MB of JSON. serde's
//! `flatten` (a step's `op` fields sit beside its `id` and `deps`) and its internally
//! tagged `Op` buffer every field of every step into an intermediate tree, up to three
//! times for a link, which made parsing the stored plan most of an `apply` of a large
//! lab. Here a step is read in one pass into one flat record of every field an op may
//! have, and the `op` tag then picks the fields its variant needs. Writing is untouched
//! (`Step`'s derived `Serialize`), so the format is the same byte for byte and plans
//! stored by earlier versions read as before.
//!
//! A new `Op` variant needs its arm in [`Flat::into_op`] (and its fields here when they
//! are new); `tests::every_op_reads_back_as_written` fails until it has one.

use std::borrow::Cow;

use ipnet::IpNet;
use serde::Deserialize;
use serde::de::Error;

use super::links::{Dummy, Join, Link, LinkSpec, Macvlan, Peer, Vlan, Vxlan};
use super::node::{NodeStart, ProcessSpec};
use super::{Gate, Name, Op, Step, StepId};
use crate::model::{Impair, Limits, Route, de_mac};

/// Every field a step may have, each optional but the step's own.
#[derive(Deserialize)]
struct Flat<'a> {
    id: StepId,
    #[serde(borrow)]
    op: Cow<'a, str>,
    deps: Vec<StepId>,
    netns: Option<Name>,
    name: Option<Name>,
    ifindex: Option<u32>,
    #[serde(default, deserialize_with = "opt_mac")]
    mac: Option<[u8; 6]>,
    mtu: Option<u32>,
    master: Option<u32>,
    key: Option<String>,
    value: Option<String>,
    on: Option<bool>,
    outside: Option<bool>,
    address: Option<IpNet>,
    route: Option<Box<Route>>,
    impair: Option<Box<Impair>>,
    before: Option<Gate>,
    lab: Option<String>,
    content: Option<String>,
    node: Option<String>,
    limits: Option<Limits>,
    start: Option<Box<NodeStart>>,
    process: Option<String>,
    spec: Option<Box<ProcessSpec>>,
    argv: Option<Vec<String>>,
    ignore_errors: Option<bool>,
    timeout_ms: Option<u64>,
    peer_netns: Option<Name>,
    peer_name: Option<Name>,
    peer_ifindex: Option<u32>,
    #[serde(default, deserialize_with = "opt_mac")]
    peer_mac: Option<[u8; 6]>,
    vni: Option<u32>,
    port: Option<u16>,
    local: Option<std::net::IpAddr>,
    remote: Option<std::net::IpAddr>,
    #[serde(default)]
    flood: Vec<std::net::IpAddr>,
    peer_master: Option<u32>,
    #[serde(default)]
    stp: bool,
    parent: Option<Name>,
    parent_ifindex: Option<u32>,
    vlan_id: Option<u16>,
    mode: Option<crate::kinds::MacvlanMode>,
    network: Option<String>,
    bridge: Option<Name>,
    addresses: Option<Vec<IpNet>>,
}

fn opt_mac<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<[u8; 6]>, D::Error> {
    de_mac(d).map(Some)
}

/// The tags `Op` is written with, for the error about an unknown one.
const OPS: &[&str] = &[
    "create-netns",
    "set-sysctl",
    "create-bridge",
    "set-link-up",
    "set-multicast-snooping",
    "set-link-down",
    "set-mtu",
    "add-address",
    "add-route",
    "set-impair",
    "barrier",
    "mount-run-dirs",
    "create-mount-template",
    "write-hosts",
    "create-cgroup",
    "start-node",
    "start-process",
    "add-process",
    "run-exec",
    "join-mgmt",
    "create-veth",
    "create-vxlan",
    "create-bridge-link",
    "create-dummy",
    "create-vlan",
    "create-macvlan",
];

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Step, D::Error> {
        let mut flat = Flat::deserialize(d)?;
        let (id, deps) = (flat.id, std::mem::take(&mut flat.deps));
        Ok(Step {
            id,
            op: flat.into_op()?,
            deps,
        })
    }
}

/// A field the op needs, or the error serde gives for a missing field.
macro_rules! need {
    ($s:ident, $f:ident) => {
        $s.$f.ok_or_else(|| E::missing_field(stringify!($f)))?
    };
}

impl Flat<'_> {
    /// The op the tag names, from the fields it needs; a missing one is the error serde
    /// gives for a missing field.
    fn into_op<E: Error>(self) -> Result<Op, E> {
        Ok(match self.op.as_ref() {
            "create-netns" => Op::CreateNetns {
                netns: need!(self, netns),
            },
            "set-sysctl" => Op::SetSysctl {
                netns: need!(self, netns),
                key: need!(self, key),
                value: need!(self, value),
            },
            "create-bridge" => Op::CreateBridge {
                stp: self.stp,
                netns: need!(self, netns),
                name: need!(self, name),
                ifindex: need!(self, ifindex),
                mac: need!(self, mac),
                mtu: self.mtu,
            },
            "set-link-up" => Op::SetLinkUp {
                netns: need!(self, netns),
                name: need!(self, name),
                ifindex: need!(self, ifindex),
            },
            "set-multicast-snooping" => Op::SetMulticastSnooping {
                netns: need!(self, netns),
                name: need!(self, name),
                ifindex: need!(self, ifindex),
                on: need!(self, on),
            },
            "set-link-down" => Op::SetLinkDown {
                netns: need!(self, netns),
                name: need!(self, name),
                ifindex: need!(self, ifindex),
            },
            "set-mtu" => Op::SetMtu {
                netns: need!(self, netns),
                name: need!(self, name),
                ifindex: need!(self, ifindex),
                mtu: need!(self, mtu),
            },
            "add-address" => Op::AddAddress {
                netns: need!(self, netns),
                name: need!(self, name),
                ifindex: need!(self, ifindex),
                address: need!(self, address),
            },
            "add-route" => Op::AddRoute {
                netns: need!(self, netns),
                route: need!(self, route),
            },
            "set-impair" => Op::SetImpair {
                netns: need!(self, netns),
                name: need!(self, name),
                ifindex: need!(self, ifindex),
                impair: need!(self, impair),
            },
            "barrier" => Op::Barrier {
                before: need!(self, before),
            },
            "mount-run-dirs"
            | "create-mount-template"
            | "write-hosts"
            | "create-cgroup"
            | "start-node"
            | "start-process"
            | "add-process"
            | "run-exec" => {
                return self.into_node_op();
            }
            "join-mgmt" => Op::JoinMgmt {
                netns: need!(self, netns),
                network: need!(self, network),
                bridge: need!(self, bridge),
                ifindex: need!(self, ifindex),
                mac: need!(self, mac),
                addresses: need!(self, addresses),
            },
            "create-veth" | "create-vxlan" | "create-bridge-link" | "create-dummy"
            | "create-vlan" | "create-macvlan" => return self.into_link(),
            other => return Err(E::unknown_variant(other, OPS)),
        })
    }

    /// An op of the lab's node directories or of one node (its cgroup, init, processes).
    fn into_node_op<E: Error>(self) -> Result<Op, E> {
        Ok(match self.op.as_ref() {
            "mount-run-dirs" => Op::MountRunDirs {
                lab: need!(self, lab),
            },
            "create-mount-template" => Op::CreateMountTemplate {
                lab: need!(self, lab),
            },
            "write-hosts" => Op::WriteHosts {
                lab: need!(self, lab),
                content: need!(self, content),
            },
            "create-cgroup" => Op::CreateCgroup {
                netns: need!(self, netns),
                node: need!(self, node),
                limits: need!(self, limits),
                outside: self.outside.unwrap_or(false),
            },
            "start-node" => Op::StartNode {
                netns: need!(self, netns),
                start: need!(self, start),
            },
            "start-process" => Op::StartProcess {
                netns: need!(self, netns),
                node: need!(self, node),
                process: need!(self, process),
            },
            "add-process" => Op::AddProcess {
                netns: need!(self, netns),
                node: need!(self, node),
                spec: need!(self, spec),
            },
            "run-exec" => Op::RunExec {
                netns: need!(self, netns),
                node: need!(self, node),
                argv: need!(self, argv),
                ignore_errors: need!(self, ignore_errors),
                timeout_ms: self.timeout_ms,
            },
            other => return Err(E::unknown_variant(other, OPS)),
        })
    }

    /// A link op: every kind shares the shell (its own end); only the kind differs.
    fn into_link<E: Error>(self) -> Result<Op, E> {
        // The shell is read first, so a missing field is named as before.
        let (netns, name, ifindex, mac) = (
            need!(self, netns),
            need!(self, name),
            need!(self, ifindex),
            need!(self, mac),
        );
        let kind = match &*self.op {
            "create-veth" => LinkSpec::Veth(Peer {
                peer_netns: need!(self, peer_netns),
                peer_name: need!(self, peer_name),
                peer_ifindex: need!(self, peer_ifindex),
                peer_mac: need!(self, peer_mac),
            }),
            "create-vxlan" => LinkSpec::Vxlan(Vxlan {
                vni: need!(self, vni),
                port: need!(self, port),
                local: need!(self, local),
                remote: self.remote,
                flood: self.flood,
            }),
            "create-bridge-link" => LinkSpec::Join(Join {
                peer_name: need!(self, peer_name),
                peer_ifindex: need!(self, peer_ifindex),
                peer_mac: need!(self, peer_mac),
                peer_master: need!(self, peer_master),
            }),
            "create-dummy" => LinkSpec::Dummy(Dummy {}),
            "create-vlan" => LinkSpec::Vlan(Vlan {
                parent: need!(self, parent),
                parent_ifindex: need!(self, parent_ifindex),
                vlan_id: need!(self, vlan_id),
            }),
            _ => LinkSpec::Macvlan(Macvlan {
                parent: need!(self, parent),
                mode: need!(self, mode),
            }),
        };
        Ok(Op::CreateLink(Link {
            netns,
            name,
            ifindex,
            mac,
            mtu: self.mtu,
            master: self.master,
            kind,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use std::net::IpAddr;

    use super::OPS;
    use crate::model::Impair;
    use crate::model::kinds::RestartPolicy;
    use crate::plan::links::{Dummy, Link, LinkSpec, Macvlan, Vlan, Vxlan};
    use crate::plan::node::ProcessSpec;
    use crate::plan::{Name, Op, Plan, Step};

    /// The plans earlier versions wrote for the bundled examples (`tests/golden`).
    fn golden() -> Vec<(String, String)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
        let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".plan.json"))
            .map(|p| {
                (
                    p.display().to_string(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect();
        out.sort();
        assert!(out.len() >= 10, "the golden plans are missing: {out:?}");
        out
    }

    /// Steps only `apply` and the runtime make, and an impairment, which no example's
    /// plan has.
    fn apply_only() -> Vec<Step> {
        let (netns, name): (Name, Name) = ("nslab.a.r1".into(), "eth0".into());
        let spec = ProcessSpec {
            name: "p".into(),
            argv: vec!["sleep".into(), "1".into()],
            env: vec![("A".into(), "b".into())],
            cwd: None,
            restart: RestartPolicy::OnFailure,
            ready: None,
            ready_limits: crate::model::kinds::ProbeLimits {
                probe_timeout_ms: Some(500),
                attempts: Some(3),
                start_period_ms: 200,
            },
            stop_timeout_ms: 100,
            user: Some("frr:frrvty".into()),
            attrs: crate::attrs::ProcAttrs {
                rlimits: [(
                    crate::attrs::Resource::Nofile,
                    crate::attrs::Rlimit {
                        soft: crate::attrs::Bound(4096),
                        hard: crate::attrs::Bound::UNLIMITED,
                    },
                )]
                .into(),
                nice: Some(-5),
                oom_score_adj: Some(500),
                cpus: Some(crate::attrs::CpuList(vec![0, 2, 3])),
                ionice: Some(crate::attrs::IoNice {
                    class: crate::attrs::IoClass::Idle,
                    level: 0,
                }),
            },
        };
        let ops = [
            // An agent's node: a group in every hierarchy, without limits.
            Op::CreateCgroup {
                netns: netns.clone(),
                node: "r1".into(),
                limits: crate::model::Limits::default(),
                outside: true,
            },
            // Not apply-only, but no bundled example joins a shared network.
            Op::JoinMgmt {
                netns: "@host".into(),
                network: "clab".into(),
                bridge: "br-clab".into(),
                ifindex: 4000,
                mac: [2, 0, 0, 0, 0, 8],
                addresses: vec!["172.20.20.1/24".parse().unwrap()],
            },
            Op::SetLinkDown {
                netns: netns.clone(),
                name: name.clone(),
                ifindex: 2,
            },
            Op::SetMtu {
                netns: netns.clone(),
                name: name.clone(),
                ifindex: 2,
                mtu: 9000,
            },
            Op::SetImpair {
                netns: netns.clone(),
                name,
                ifindex: 2,
                impair: Box::new(Impair {
                    delay: Some(std::time::Duration::from_millis(10)),
                    loss: Some(0.005),
                    ..Impair::default()
                }),
            },
            Op::AddProcess {
                netns: netns.clone(),
                node: "r1".into(),
                spec: Box::new(spec),
            },
            tunnel(&netns, Some("192.0.2.12".parse().unwrap()), vec![]),
            tunnel(
                &netns,
                None,
                vec!["192.0.2.12".parse().unwrap(), "192.0.2.13".parse().unwrap()],
            ),
            device(&netns, LinkSpec::Dummy(Dummy {})),
            device(
                &netns,
                LinkSpec::Vlan(Vlan {
                    parent: "eth1".into(),
                    parent_ifindex: 301,
                    vlan_id: 100,
                }),
            ),
            device(
                &netns,
                LinkSpec::Macvlan(Macvlan {
                    parent: "enp0s3".into(),
                    mode: crate::kinds::MacvlanMode::Vepa,
                }),
            ),
        ];
        ops.into_iter()
            .enumerate()
            .map(|(id, op)| Step {
                id,
                op,
                deps: vec![],
            })
            .collect()
    }

    /// A node's own interface (dummy, vlan, macvlan).
    fn device(netns: &Name, kind: LinkSpec) -> Op {
        Op::CreateLink(Link {
            netns: netns.clone(),
            name: "lo1".into(),
            ifindex: 302,
            mac: [2, 0, 0, 0, 0, 10],
            mtu: Some(1400),
            master: None,
            kind,
        })
    }

    /// A host's share's VXLAN: to one other host, or a bridge's port flooding to many.
    fn tunnel(netns: &Name, remote: Option<IpAddr>, flood: Vec<IpAddr>) -> Op {
        Op::CreateLink(Link {
            netns: netns.clone(),
            name: "eth9".into(),
            ifindex: 300,
            mac: [2, 0, 0, 0, 0, 9],
            mtu: Some(1450),
            master: flood.is_empty().then_some(7),
            kind: LinkSpec::Vxlan(Vxlan {
                vni: 4242,
                port: 14789,
                local: "192.0.2.11".parse().unwrap(),
                remote,
                flood,
            }),
        })
    }

    #[test]
    fn stored_plans_read_and_write_back_byte_for_byte() {
        for (path, text) in golden() {
            let plan: Plan = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(plan.to_json() + "\n", text, "{path}");
            // As a lab stores it: compact.
            let stored = serde_json::to_vec(&plan).unwrap();
            let again: Plan = serde_json::from_slice(&stored).unwrap();
            assert_eq!(serde_json::to_vec(&again).unwrap(), stored, "{path}");
        }
    }

    #[test]
    fn every_op_reads_back_as_written() {
        let mut steps: Vec<Step> = golden()
            .iter()
            .flat_map(|(_, t)| serde_json::from_str::<Plan>(t).unwrap().steps)
            .collect();
        steps.extend(apply_only());
        let mut seen = BTreeSet::new();
        for step in &steps {
            let text = serde_json::to_string(step).unwrap();
            let back: Step = serde_json::from_str(&text).unwrap();
            assert_eq!(back.op, step.op, "{text}");
            assert_eq!((back.id, &back.deps), (step.id, &step.deps), "{text}");
            assert_eq!(serde_json::to_string(&back).unwrap(), text);
            // The one-pass reader and `Op`'s own (derived, buffering) one agree.
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            let fields = v.as_object_mut().unwrap();
            fields.remove("id");
            fields.remove("deps");
            let derived: Op = serde_json::from_value(v).unwrap();
            assert_eq!(derived, back.op, "{text}");
            seen.insert(step.op.name());
        }
        let all: BTreeSet<&str> = OPS.iter().copied().collect();
        assert_eq!(
            seen, all,
            "an op no plan here has, or one the reader does not know"
        );
    }

    #[test]
    fn a_missing_field_or_an_unknown_op_is_an_error() {
        let missing = r#"{"id":1,"op":"set-sysctl","netns":"nslab.a.r1","key":"k","deps":[]}"#;
        let e = serde_json::from_str::<Step>(missing).unwrap_err();
        assert!(e.to_string().contains("missing field `value`"), "{e}");
        let unknown = r#"{"id":1,"op":"create-wormhole","netns":"nslab.a","deps":[]}"#;
        let e = serde_json::from_str::<Step>(unknown).unwrap_err();
        assert!(
            e.to_string().contains("unknown variant `create-wormhole`"),
            "{e}"
        );
        let bad_mac = r#"{"id":1,"op":"create-bridge","netns":"n","name":"b","ifindex":2,"mac":"zz","deps":[]}"#;
        assert!(serde_json::from_str::<Step>(bad_mac).is_err());
    }
}
