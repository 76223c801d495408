//! The lab's summary (`lab.json`), written when `up` finishes: what `status`, `exec` and
//! `ls` need to know about a running lab without the topology file.

use std::path::Path;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::StateError;
use crate::model::{End, LinkKind, Topology};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabSummary {
    pub lab: String,
    pub file: String,
    pub pid: u32,
    pub started: u64,
    pub finished: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fabric: Option<String>,
    pub nodes: Vec<NodeSummary>,
    pub links: usize,
    pub bridges: Vec<String>,
    /// In a lab spread over hosts, the host this share runs on; `nodes` are its nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The lab's nodes on other hosts, so commands can say where they live.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote: Vec<RemoteNode>,
    /// The command that keeps the lab only while it runs (`nslab test`): see
    /// `UpOptions::held_by`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
}

/// A node of the lab that runs on another host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemoteNode {
    pub name: String,
    pub host: String,
    pub address: std::net::IpAddr,
}

impl RemoteNode {
    /// `node r2 lives on host hb (192.0.2.12)`.
    pub fn describe(&self) -> String {
        format!(
            "node {} lives on host {} ({})",
            self.name, self.host, self.address
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeSummary {
    pub name: String,
    pub netns: String,
    pub loopback: Vec<IpNet>,
    pub interfaces: Vec<IfaceSummary>,
    /// The sysctl keys the lab sets on this node.
    #[serde(default)]
    pub sysctls: Vec<String>,
    /// The node's `env:`, which `nslab exec` and `nslab shell` start commands with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IfaceSummary {
    pub name: String,
    pub ifindex: u32,
    pub addresses: Vec<IpNet>,
    /// The other end of its veth, so runtime operations (`nslab link down`) reach both
    /// ends without the topology file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<PeerSummary>,
}

/// A veth's far end: another node's interface, or a bridge's port in the fabric.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerSummary {
    pub netns: String,
    pub name: String,
    pub ifindex: u32,
    /// `node:iface`, or `bridge <name>` for a bridge port.
    pub label: String,
}

impl LabSummary {
    /// The summary of the lab, or with `host` of that host's share: its nodes, and where
    /// the others are.
    pub fn of(
        t: &Topology,
        host: Option<&str>,
        file: &str,
        started: u64,
        finished: u64,
    ) -> LabSummary {
        let here = |n: &crate::model::Node| host.is_none() || n.host.as_deref() == host;
        let remote = t
            .nodes
            .iter()
            .filter(|n| !here(n))
            .filter_map(|n| {
                let h = t.hosts.iter().find(|h| Some(&h.name) == n.host.as_ref())?;
                Some(RemoteNode {
                    name: n.name.clone(),
                    host: h.name.clone(),
                    address: h.address,
                })
            })
            .collect();
        LabSummary {
            lab: t.lab.clone(),
            file: file.to_string(),
            pid: std::process::id(),
            started,
            finished,
            fabric: t.fabric_netns(),
            nodes: t
                .nodes
                .iter()
                .filter(|n| here(n))
                .map(|n| NodeSummary {
                    name: n.name.clone(),
                    netns: n.netns.clone(),
                    loopback: n.loopback.clone(),
                    interfaces: n
                        .interfaces
                        .iter()
                        .map(|i| IfaceSummary {
                            name: i.name.clone(),
                            ifindex: i.ifindex,
                            addresses: i.addresses.clone(),
                            // A far end on another host is not this host's to reach.
                            peer: t
                                .links
                                .get(i.link)
                                .filter(|l| host.is_none() || l.kind != LinkKind::Vxlan)
                                .map(|_| peer_of(t, i.peer)),
                        })
                        .collect(),
                    sysctls: n.sysctls.iter().map(|s| s.key.clone()).collect(),
                    env: n.env.clone(),
                })
                .collect(),
            links: t.links.len(),
            held_by: None,
            bridges: t.bridges.iter().map(|b| b.name.clone()).collect(),
            host: host.map(str::to_string),
            remote,
        }
    }

    /// The node on another host named `name`, if it is one.
    pub fn remote(&self, name: &str) -> Option<&RemoteNode> {
        self.remote.iter().find(|r| r.name == name)
    }

    /// A node and its interface, by name.
    pub fn iface(&self, node: &str, iface: &str) -> Option<(&NodeSummary, &IfaceSummary)> {
        let n = self.node(node)?;
        Some((n, n.interfaces.iter().find(|i| i.name == iface)?))
    }

    pub fn write(&self, path: &Path) -> Result<(), StateError> {
        let data = serde_json::to_vec_pretty(self).expect("summary serializes");
        super::files::replace(path, &data)
    }

    pub fn read(path: &Path) -> Result<LabSummary, StateError> {
        let data = super::files::read(path)?;
        serde_json::from_str(&data).map_err(|e| StateError::Corrupt {
            path: path.to_path_buf(),
            line: e.line(),
            msg: e.to_string(),
        })
    }

    pub fn node(&self, name: &str) -> Option<&NodeSummary> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Whether the summary names only `lab`'s own objects: the runtime commands (`link`,
    /// `capture`, `exec`, `shell`, `status`) act on the namespaces and ifindexes it gives,
    /// as root, so a summary edited by hand must not lead them out of the lab, as the
    /// journal and the stored plan must not lead `down` and `apply` (see `state::owned`).
    /// A node's namespace `../../proc/self/ns/net` was the host's, and `link down` set the
    /// host's interface of the recorded number down. The error says what it names instead.
    pub fn screen(&self, lab: &str) -> Result<(), String> {
        use crate::model::names::{check_ifname, check_node_name, fabric_netns, node_netns};
        if self.lab != lab {
            return Err(format!(
                "it is the summary of lab `{}`",
                self.lab.escape_debug()
            ));
        }
        let fabric = fabric_netns(lab);
        if let Some(f) = self.fabric.as_ref().filter(|f| **f != fabric) {
            return Err(format!("its fabric is namespace `{}`", f.escape_debug()));
        }
        // A peer lives in the fabric or in a node of the lab (maybe on this host's list
        // of nodes, maybe not: a bridge port's peer is the fabric).
        let lab_netns = |netns: &str| {
            netns == fabric
                || netns
                    .strip_prefix(&format!("{fabric}."))
                    .is_some_and(|node| check_node_name(node).is_ok())
        };
        for n in &self.nodes {
            check_node_name(&n.name).map_err(|e| format!("node: {e}"))?;
            if n.netns != node_netns(lab, &n.name) {
                return Err(format!(
                    "node `{}` has namespace `{}`, not `{}`",
                    n.name,
                    n.netns.escape_debug(),
                    node_netns(lab, &n.name)
                ));
            }
            for i in &n.interfaces {
                check_ifname(&i.name).map_err(|e| format!("node `{}`: {e}", n.name))?;
                let Some(p) = &i.peer else { continue };
                check_ifname(&p.name).map_err(|e| format!("node `{}`: peer: {e}", n.name))?;
                if !lab_netns(&p.netns) {
                    return Err(format!(
                        "the peer of {}:{} is in namespace `{}`",
                        n.name,
                        i.name,
                        p.netns.escape_debug()
                    ));
                }
            }
        }
        Ok(())
    }
}

fn peer_of(t: &Topology, end: End) -> PeerSummary {
    match end {
        End::Node { node, iface } => {
            let n = &t.nodes[node];
            let i = &n.interfaces[iface];
            PeerSummary {
                netns: n.netns.clone(),
                name: i.name.clone(),
                ifindex: i.ifindex,
                label: format!("{}:{}", n.name, i.name),
            }
        }
        End::Bridge { bridge, port } => {
            let b = &t.bridges[bridge];
            let p = &b.ports[port];
            PeerSummary {
                netns: t.fabric_netns().unwrap_or_default(),
                name: p.name.clone(),
                ifindex: p.ifindex,
                label: format!("bridge {}", b.name),
            }
        }
        End::Uplink { bridge, uplink } => {
            let b = &t.bridges[bridge];
            let u = &b.uplinks[uplink];
            PeerSummary {
                netns: t.fabric_netns().unwrap_or_default(),
                name: u.name.clone(),
                ifindex: u.ifindex,
                label: format!("bridge {}", b.name),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `up` writes passes the screen: nodes, veths between them, bridge ports in
    /// the fabric. Each edit that leads out of the lab does not.
    #[test]
    fn a_summary_up_writes_passes_and_one_leading_out_of_the_lab_does_not() {
        let yaml = "name: sx\nnodes: { a: {}, b: {}, c: {} }\nbridges: { s1: {} }\nlinks: [[a:eth0, b:eth0], [a:eth1, s1], [c:eth0, s1]]\n";
        let t = crate::compile_str(yaml, "sx.yaml", Path::new("/"))
            .unwrap()
            .topology;
        let honest = LabSummary::of(&t, None, "sx.yaml", 1, 2);
        assert_eq!(honest.screen("sx"), Ok(()));
        assert!(
            honest
                .screen("sy")
                .unwrap_err()
                .contains("summary of lab `sx`")
        );
        type Edit = fn(&mut LabSummary);
        let edits: [(&str, Edit); 5] = [
            ("namespace `nslab.other.a`", |s| {
                s.nodes[0].netns = "nslab.other.a".into()
            }),
            ("namespace `../../proc/self/ns/net`", |s| {
                s.nodes[1].interfaces[0].peer.as_mut().unwrap().netns =
                    "../../proc/self/ns/net".into()
            }),
            ("namespace `nslab.sx.a/../..`", |s| {
                s.nodes[1].interfaces[0].peer.as_mut().unwrap().netns = "nslab.sx.a/../..".into()
            }),
            ("its fabric is namespace ``", |s| {
                s.fabric = Some(String::new())
            }),
            ("node: ", |s| s.nodes[2].name = "../c".into()),
        ];
        for (what, edit) in edits {
            let mut s = honest.clone();
            edit(&mut s);
            let e = s.screen("sx").unwrap_err();
            assert!(e.contains(what), "{what}: {e}");
        }
    }
}
