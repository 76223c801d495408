//! `nslab status [LAB] [--json]`

use serde::Serialize;

use super::{CliError, exit, lab_arg};
use crate::apply::inspect::{self, LinkState};
use crate::apply::tokio_runtime;
use crate::plan::Name;
use crate::runtime::{Access, Session};

#[derive(Serialize)]
struct NodeStatus {
    name: String,
    netns: String,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    links: Vec<LinkState>,
    /// What is wrong with the node's init and processes (a dead init, a crash loop).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<String>,
}

#[derive(Serialize)]
struct LabStatus {
    lab: String,
    file: String,
    nodes: Vec<NodeStatus>,
}

pub fn run(
    host: &crate::state::HostContext,
    target: Option<&str>,
    lab: Option<&str>,
    json: bool,
) -> Result<u8, CliError> {
    let lab = lab_arg(host, target, lab)?;
    let rt = tokio_runtime()?;
    let status = rt.block_on(async {
        let session = Session::open(host, &lab, Access::Read)?;
        let (summary, paths) = (session.live.summary()?, session.live.node_paths());
        let mut nodes = Vec::new();
        for n in &summary.nodes {
            let ns: Name = Name::from(n.netns.as_str());
            let (state, error, links) = match inspect::dump(session.kernel()?, &ns, &[]).await {
                Ok(d) => {
                    let ok = d
                        .links
                        .iter()
                        .all(|l| l.up && (l.name == "lo" || l.lower_up));
                    (if ok { "up" } else { "degraded" }, None, d.links)
                }
                Err(e) => ("missing", Some(e.to_string()), Vec::new()),
            };
            let problems = tokio::task::block_in_place(|| super::health::problems(&paths, &n.name));
            let state = if state == "up" && !problems.is_empty() {
                "degraded"
            } else {
                state
            };
            nodes.push(NodeStatus {
                name: n.name.clone(),
                netns: n.netns.clone(),
                state,
                error,
                links,
                problems,
            });
        }
        // Nodes on other hosts are that host's to report: say where they are.
        for r in &summary.remote {
            nodes.push(NodeStatus {
                name: r.name.clone(),
                netns: String::new(),
                state: "remote",
                error: Some(r.describe()),
                links: Vec::new(),
                problems: Vec::new(),
            });
        }
        Ok::<_, CliError>(LabStatus {
            lab: summary.lab.clone(),
            file: summary.file.clone(),
            nodes,
        })
    })?;
    if json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&status).expect("status serializes")
        );
        return Ok(exit::OK);
    }
    print_human(&status);
    let degraded = status
        .nodes
        .iter()
        .filter(|n| n.state != "up" && n.state != "remote")
        .count();
    Ok(if degraded == 0 {
        exit::OK
    } else {
        exit::FAILED
    })
}

/// The status as a table: a node's links one per line, then its problems.
fn print_human(status: &LabStatus) {
    crate::outln!(
        "lab `{}` ({}) from {}",
        status.lab,
        crate::words::count(status.nodes.len(), "node"),
        status.file
    );
    let mut table =
        super::table::Table::new(&["NODE", "STATE", "IFACE", "LINK", "MTU>", "ADDRESSES"]);
    for n in &status.nodes {
        if let Some(e) = &n.error {
            table.row([n.name.as_str(), n.state, e.as_str()]);
            continue;
        }
        let mut links: Vec<&LinkState> = n.links.iter().collect();
        links.sort_by_key(|l| crate::words::iface_order(&l.name));
        for (i, l) in links.into_iter().enumerate() {
            let (name, state) = if i == 0 {
                (n.name.as_str(), n.state)
            } else {
                ("", "")
            };
            let link = match (l.up, l.lower_up || l.name == "lo") {
                (true, true) => "up",
                (true, false) => "no-carrier",
                _ => "down",
            };
            let mut addrs: Vec<String> = l
                .addresses
                .iter()
                .filter(|a| !is_link_local(a))
                .map(ToString::to_string)
                .collect();
            // A tunnel to another host: its VNI, which both ends must share.
            addrs.extend(l.vni.map(|v| format!("(vni {v})")));
            table.row([
                name.to_string(),
                state.to_string(),
                l.name.clone(),
                link.to_string(),
                l.mtu.to_string(),
                addrs.join(" "),
            ]);
        }
        for p in &n.problems {
            table.row([String::new(), String::new(), format!("! {p}")]);
        }
    }
    table.print();
}

fn is_link_local(a: &ipnet::IpNet) -> bool {
    matches!(a.addr(), std::net::IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}
