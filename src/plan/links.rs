//! The seam for link kinds. Every link nslab makes is one `Op::CreateLink`: its own end
//! (namespace, name, ifindex, MAC, MTU, bridge) is the same for every kind, and `LinkSpec`
//! holds what the kind adds. Its teardown is `Undo::DeleteLink` of that end whatever the
//! kind (deleting one end of a veth deletes both), or `Undo::DeleteTunnel` for a kind made
//! from the host's namespace (`LinkSpec::from_home`), which must go before its namespace. A new kind is a `model::LinkKind`
//! variant, one function in `plan/build.rs` that makes its `LinkSpec` variant here, and
//! one kernel function in `apply/links.rs`; identity, diff, rendering, the invariants and
//! teardown see it through `ends` and `namespaces`.
//!
//! On the wire a link is still `"op": "create-<kind>"` followed by its fields, exactly as
//! the plans stored by earlier versions wrote `create-veth`, so those plans still read.

use serde::{Deserialize, Serialize};

use super::Name;
use crate::model::{de_mac, ser_mac};

/// One link to create: its own end, and its kind's part.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub netns: Name,
    pub name: Name,
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub mtu: Option<u32>,
    /// The bridge (by ifindex, in `netns`) this end is a port of.
    pub master: Option<u32>,
    pub kind: LinkSpec,
}

/// What a link's kind adds to its own end. The `op` tag names the step in the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op")]
pub enum LinkSpec {
    /// A veth pair: the first end is created up (enslaved to `master` when set); the peer
    /// goes straight into its own namespace and is brought up by a later step.
    #[serde(rename = "create-veth")]
    Veth(Peer),
    /// A VXLAN to another host: made from this host's namespace (where its UDP socket
    /// stays) straight into `netns`, up. It has no far end here; the other host makes its
    /// own with the same VNI.
    #[serde(rename = "create-vxlan")]
    Vxlan(Vxlan),
    /// A veth pair joining two bridges: both ends in `netns` (the fabric), this one a
    /// port of `master` and the peer of `peer_master`, both up.
    #[serde(rename = "create-bridge-link")]
    Join(Join),
    /// A dummy interface, made up in its namespace.
    #[serde(rename = "create-dummy")]
    Dummy(Dummy),
    /// A vlan on another interface of the same namespace, made up.
    #[serde(rename = "create-vlan")]
    Vlan(Vlan),
    /// A macvlan on an interface of the host's namespace, made from there straight into
    /// `netns`, up. The host's interface is only its parent: nslab never changes it.
    #[serde(rename = "create-macvlan")]
    Macvlan(Macvlan),
}

/// The far end of a veth joining two bridges: a port of the other bridge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Join {
    pub peer_name: Name,
    pub peer_ifindex: u32,
    #[serde(serialize_with = "ser_mac", deserialize_with = "de_mac")]
    pub peer_mac: [u8; 6],
    pub peer_master: u32,
}

/// A dummy adds nothing to its own end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dummy {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vlan {
    pub parent: Name,
    pub parent_ifindex: u32,
    pub vlan_id: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Macvlan {
    /// The host's interface, by name: its ifindex is the host's business.
    pub parent: Name,
    pub mode: crate::kinds::MacvlanMode,
}

/// A VXLAN's tunnel: its VNI, UDP port, this host's underlay address, and the other
/// host's (a point-to-point link), or every other replica's host (a bridge's port: each
/// gets an all-zeros FDB entry, so broadcast and unknown frames go to all of them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vxlan {
    pub vni: u32,
    pub port: u16,
    pub local: std::net::IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<std::net::IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flood: Vec<std::net::IpAddr>,
}

/// The far end of a veth pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peer {
    pub peer_netns: Name,
    pub peer_name: Name,
    pub peer_ifindex: u32,
    #[serde(serialize_with = "ser_mac", deserialize_with = "de_mac")]
    pub peer_mac: [u8; 6],
}

/// An interface a link makes, by namespace, name and ifindex.
#[derive(Debug, Clone, PartialEq)]
pub struct IfRef {
    pub netns: Name,
    pub name: Name,
    pub ifindex: u32,
}

impl LinkSpec {
    /// The step's `op` name.
    pub fn op_name(&self) -> &'static str {
        match self {
            LinkSpec::Veth(_) => "create-veth",
            LinkSpec::Vxlan(_) => "create-vxlan",
            LinkSpec::Join(_) => "create-bridge-link",
            LinkSpec::Dummy(_) => "create-dummy",
            LinkSpec::Vlan(_) => "create-vlan",
            LinkSpec::Macvlan(_) => "create-macvlan",
        }
    }

    /// Whether apply makes it from the namespace nslab runs in (the host's, or a
    /// simulated host's) rather than from the link's own namespace.
    pub fn from_home(&self) -> bool {
        matches!(self, LinkSpec::Vxlan(_) | LinkSpec::Macvlan(_))
    }

    /// The kernel's name for the kind, for errors about a kernel without it.
    pub fn kernel_kind(&self) -> &'static str {
        match self {
            LinkSpec::Veth(_) | LinkSpec::Join(_) => "veth",
            LinkSpec::Vxlan(_) => "vxlan",
            LinkSpec::Dummy(_) => "dummy",
            LinkSpec::Vlan(_) => "vlan",
            LinkSpec::Macvlan(_) => "macvlan",
        }
    }
}

impl Link {
    /// Every interface the link makes, its own end first: what apply's identities, an MTU
    /// change in place and descriptions reach.
    pub fn ends(&self) -> Vec<IfRef> {
        let mut ends = vec![IfRef {
            netns: self.netns.clone(),
            name: self.name.clone(),
            ifindex: self.ifindex,
        }];
        match &self.kind {
            LinkSpec::Veth(p) => ends.push(IfRef {
                netns: p.peer_netns.clone(),
                name: p.peer_name.clone(),
                ifindex: p.peer_ifindex,
            }),
            LinkSpec::Join(j) => ends.push(IfRef {
                netns: self.netns.clone(),
                name: j.peer_name.clone(),
                ifindex: j.peer_ifindex,
            }),
            LinkSpec::Vxlan(_) | LinkSpec::Dummy(_) | LinkSpec::Vlan(_) | LinkSpec::Macvlan(_) => {}
        }
        ends
    }

    /// The bridges (by ifindex, in `netns`) its ends are ports of: what it lives on, so a
    /// bridge made again makes its ports again.
    pub fn masters(&self) -> Vec<u32> {
        let peer = match &self.kind {
            LinkSpec::Join(j) => Some(j.peer_master),
            _ => None,
        };
        self.master.into_iter().chain(peer).collect()
    }

    /// The namespaces the link's creation needs open, its own first.
    pub fn namespaces(&self) -> Vec<&Name> {
        match &self.kind {
            LinkSpec::Veth(p) => vec![&self.netns, &p.peer_netns],
            LinkSpec::Vxlan(_)
            | LinkSpec::Join(_)
            | LinkSpec::Dummy(_)
            | LinkSpec::Vlan(_)
            | LinkSpec::Macvlan(_) => {
                vec![&self.netns]
            }
        }
    }
}

/// The fields in the order plans have always had them: `op`, the own end, the kind's part.
#[derive(Serialize)]
struct Out<'a, K: Serialize> {
    op: &'static str,
    netns: &'a Name,
    name: &'a Name,
    ifindex: u32,
    #[serde(serialize_with = "ser_mac")]
    mac: [u8; 6],
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    master: Option<u32>,
    #[serde(flatten)]
    kind: &'a K,
}

impl Serialize for Link {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fn out<'a, K: Serialize>(l: &'a Link, kind: &'a K) -> Out<'a, K> {
            Out {
                op: l.kind.op_name(),
                netns: &l.netns,
                name: &l.name,
                ifindex: l.ifindex,
                mac: l.mac,
                mtu: l.mtu,
                master: l.master,
                kind,
            }
        }
        match &self.kind {
            LinkSpec::Veth(p) => out(self, p).serialize(s),
            LinkSpec::Vxlan(v) => out(self, v).serialize(s),
            LinkSpec::Join(j) => out(self, j).serialize(s),
            LinkSpec::Dummy(d) => out(self, d).serialize(s),
            LinkSpec::Vlan(v) => out(self, v).serialize(s),
            LinkSpec::Macvlan(m) => out(self, m).serialize(s),
        }
    }
}

/// The own end as read; the `op` tag and the rest go to `LinkSpec`.
#[derive(Deserialize)]
struct In {
    netns: Name,
    name: Name,
    ifindex: u32,
    #[serde(deserialize_with = "de_mac")]
    mac: [u8; 6],
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    master: Option<u32>,
    #[serde(flatten)]
    kind: LinkSpec,
}

impl<'de> Deserialize<'de> for Link {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Link, D::Error> {
        let i = In::deserialize(d)?;
        Ok(Link {
            netns: i.netns,
            name: i.name,
            ifindex: i.ifindex,
            mac: i.mac,
            mtu: i.mtu,
            master: i.master,
            kind: i.kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Op, Step};

    fn veth() -> Step {
        Step {
            id: 3,
            op: Op::CreateLink(Link {
                netns: "nslab.a".into(),
                name: "eth0".into(),
                ifindex: 2,
                mac: [2, 0, 0, 0, 0, 1],
                mtu: None,
                master: Some(7),
                kind: LinkSpec::Veth(Peer {
                    peer_netns: "nslab.a.b".into(),
                    peer_name: "eth1".into(),
                    peer_ifindex: 3,
                    peer_mac: [2, 0, 0, 0, 0, 2],
                }),
            }),
            deps: vec![1],
        }
    }

    #[test]
    fn a_veth_step_reads_and_writes_as_create_veth() {
        let text = r#"{"id":3,"op":"create-veth","netns":"nslab.a","name":"eth0","ifindex":2,"mac":"02:00:00:00:00:01","master":7,"peer_netns":"nslab.a.b","peer_name":"eth1","peer_ifindex":3,"peer_mac":"02:00:00:00:00:02","deps":[1]}"#;
        assert_eq!(serde_json::to_string(&veth()).unwrap(), text);
        let back: Step = serde_json::from_str(text).unwrap();
        assert_eq!(back.op, veth().op);
        assert_eq!(back.op.name(), "create-veth");
    }

    #[test]
    fn other_ops_still_read_by_their_tag() {
        let text = r#"{"id":0,"op":"create-netns","netns":"nslab.a","deps":[]}"#;
        let back: Step = serde_json::from_str(text).unwrap();
        assert_eq!(
            back.op,
            Op::CreateNetns {
                netns: "nslab.a".into()
            }
        );
        let bad = r#"{"id":0,"op":"create-wormhole","netns":"nslab.a","deps":[]}"#;
        assert!(serde_json::from_str::<Step>(bad).is_err());
    }
}
