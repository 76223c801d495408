//! Reading a running lab's live state for its picture, read-only, as `nslab status` does:
//! interfaces, addresses and routes from each node's namespace over netlink, root qdiscs
//! for impairments, and processes from each node's init.

use std::collections::BTreeMap;

use futures_util::TryStreamExt;
use rtnetlink::packet_core::Nla;
use rtnetlink::packet_route::tc::{TcAttribute, TcHandle, TcMessage, TcOption};

use super::super::{CliError, health};
use crate::apply::inspect::{self, LinkState};
use crate::apply::netlink::NetlinkKernel;
use crate::draw::live::{IfaceLive, Live, NodeLive, ProcLive};
use crate::node::{NodePaths, control};
use crate::plan::Name;
use crate::runtime::{Access, Session};
use crate::state::HostContext;

/// A running lab: its topology (compiled again from the file stored at `up`) and the
/// lab's read session, whose kernel runs on `rt` (declared first: dropped before it).
pub struct Running {
    pub topology: crate::Topology,
    session: Session<'static>,
    rt: tokio::runtime::Runtime,
}

/// Opens a lab that is up, with the topology it was brought up from.
pub fn open(host: &HostContext, lab: &str) -> Result<Running, CliError> {
    let session = Session::open(host, lab, Access::Read)?;
    let live = &session.live;
    let summary = live.summary()?;
    let source = crate::state::files::read(&live.dir.source_path()).map_err(|e| {
        CliError::Io(std::io::Error::other(format!(
            "lab `{lab}` keeps no topology to draw ({e}); it was brought up without a file"
        )))
    })?;
    let file = std::path::Path::new(&summary.file);
    let base = file.parent().unwrap_or(std::path::Path::new("/"));
    let compiled = crate::compile::compile_str_reading(
        &source,
        &summary.file,
        base,
        &crate::clab::ImageMap::builtin(),
        &crate::clab::frr::Files::at(base),
    )?;
    Ok(Running {
        topology: compiled.topology,
        session,
        rt: crate::apply::tokio_runtime()?,
    })
}

/// The live state of every node of the lab, now.
pub fn read(lab: &Running) -> Result<Live, CliError> {
    let session = &lab.session;
    let paths = session.live.node_paths();
    let mut nodes = lab.rt.block_on(async {
        let mut out = BTreeMap::new();
        for n in &session.live.summary()?.nodes {
            out.insert(
                n.name.clone(),
                node_kernel(session.kernel()?, &n.netns).await,
            );
        }
        Ok::<_, CliError>(out)
    })?;
    for (name, n) in &mut nodes {
        n.processes = processes(&paths, name);
        n.problems = health::problems(&paths, name);
        if n.state == "up" && !n.problems.is_empty() {
            n.state = "degraded".into();
        }
    }
    Ok(Live { nodes })
}

/// A node's interfaces, routes and impairments; `missing` when its namespace is gone.
async fn node_kernel(kernel: &NetlinkKernel, netns: &str) -> NodeLive {
    let ns = Name::from(netns);
    let dump = match inspect::dump(kernel, &ns, &[]).await {
        Ok(d) => d,
        Err(e) => {
            return NodeLive {
                state: "missing".into(),
                error: Some(e.to_string()),
                ..NodeLive::default()
            };
        }
    };
    // An unreadable qdisc dump costs the impairments only, not the picture.
    let qdiscs = match kernel.handle(&ns).await {
        Ok(h) => impairments(&h).await.unwrap_or_default(),
        Err(_) => BTreeMap::new(),
    };
    let ok = dump
        .links
        .iter()
        .all(|l| l.up && (l.name == "lo" || l.lower_up));
    let names: BTreeMap<u32, &str> = dump
        .links
        .iter()
        .map(|l| (l.ifindex, l.name.as_str()))
        .collect();
    NodeLive {
        state: if ok { "up" } else { "degraded" }.into(),
        error: None,
        interfaces: dump
            .links
            .iter()
            .map(|l| iface(l, qdiscs.get(&l.ifindex)))
            .collect(),
        routes: dump.routes.iter().map(|r| route_names(r, &names)).collect(),
        ..NodeLive::default()
    }
}

fn iface(l: &LinkState, impairment: Option<&String>) -> IfaceLive {
    IfaceLive {
        name: l.name.clone(),
        up: l.up,
        carrier: l.lower_up || l.name == "lo",
        mtu: l.mtu,
        addresses: l
            .addresses
            .iter()
            .filter(|a| !matches!(a.addr(), std::net::IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80))
            .map(ToString::to_string)
            .collect(),
        impairment: impairment.cloned(),
    }
}

/// `dev #3` in a route line becomes `dev eth1`; the usual `unicast` and `universe` go.
fn route_names(line: &str, names: &BTreeMap<u32, &str>) -> String {
    line.split(' ')
        .filter(|w| !matches!(*w, "unicast" | "universe"))
        .map(|w| {
            w.strip_prefix('#')
                .and_then(|i| i.parse::<u32>().ok())
                .and_then(|i| names.get(&i))
                .map_or_else(|| w.to_string(), |n| n.to_string())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The root qdiscs that impair, by ifindex: `netem delay D loss P`, or `rate R` (tbf).
async fn impairments(h: &rtnetlink::Handle) -> Result<BTreeMap<u32, String>, rtnetlink::Error> {
    let msgs: Vec<TcMessage> = h.qdisc().get().execute().try_collect().await?;
    let mut out = BTreeMap::new();
    for m in msgs.iter().filter(|m| m.header.parent == TcHandle::ROOT) {
        let kind = m.attributes.iter().find_map(|a| match a {
            TcAttribute::Kind(k) => Some(k.as_str()),
            _ => None,
        });
        let opts = options(m).unwrap_or_default();
        let text = match kind {
            Some("tbf") => tbf_text(&opts),
            Some("netem") => netem_text(&opts),
            _ => continue,
        };
        out.insert(m.header.index as u32, text);
    }
    Ok(out)
}

/// The raw TCA_OPTIONS payload: rtnetlink keeps the options of a kind it does not know
/// (tbf, netem) as one unparsed attribute.
fn options(m: &TcMessage) -> Option<Vec<u8>> {
    m.attributes.iter().find_map(|a| match a {
        TcAttribute::Options(o) => o.iter().find_map(|o| match o {
            TcOption::Other(n) => {
                let mut v = vec![0u8; n.value_len()];
                n.emit_value(&mut v);
                Some(v)
            }
            _ => None,
        }),
        _ => None,
    })
}

/// Nested netlink attributes (length, type, payload, padded to 4 bytes).
fn nested(mut buf: &[u8]) -> BTreeMap<u16, &[u8]> {
    let mut out = BTreeMap::new();
    while buf.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        if len < 4 || len > buf.len() {
            break;
        }
        out.insert(kind, &buf[4..len]);
        buf = buf.get(len.div_ceil(4) * 4..).unwrap_or_default();
    }
    out
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_of(b: &[u8]) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(..8)?.try_into().ok()?))
}

/// A tbf's rate: the 64-bit attribute, or the `tc_ratespec` in its parameters (its
/// `rate`, bytes per second, is the u32 at byte 8).
fn tbf_text(opts: &[u8]) -> String {
    const PARMS: u16 = 1;
    const RATE64: u16 = 4;
    let attrs = nested(opts);
    let rate = attrs
        .get(&RATE64)
        .and_then(|v| u64_of(v))
        .or_else(|| attrs.get(&PARMS).and_then(|v| u32_at(v, 8)).map(u64::from));
    match rate {
        Some(r) => format!("rate {}", crate::model::impair::rate_text(r * 8)),
        None => "tbf".into(),
    }
}

/// netem's options: a `tc_netem_qopt` (latency and jitter in 64 ns ticks, loss as a
/// fraction of 2^32-1), then attributes with the 64-bit latency in nanoseconds.
fn netem_text(opts: &[u8]) -> String {
    const QOPT: usize = 24;
    const LATENCY64: u16 = 10;
    let mut parts = vec!["netem".to_string()];
    let attrs = nested(opts.get(QOPT..).unwrap_or_default());
    let delay_ns = attrs
        .get(&LATENCY64)
        .and_then(|v| u64_of(v))
        .or_else(|| u32_at(opts, 0).map(|t| u64::from(t) * 64));
    if let Some(d) = delay_ns.filter(|d| *d > 0) {
        parts.push(format!("delay {}ms", d / 1_000_000));
    }
    if let Some(l) = u32_at(opts, 8).filter(|l| *l > 0) {
        let pct = f64::from(l) / f64::from(u32::MAX) * 100.0;
        parts.push(format!("loss {}%", (pct * 10.0).round() / 10.0));
    }
    parts.join(" ")
}

/// The node's processes as its init reports them; none when it runs none or is dead
/// (`problems` then says why).
fn processes(paths: &NodePaths, node: &str) -> Vec<ProcLive> {
    if !paths.pid_file(node).exists() {
        return Vec::new();
    }
    let Ok(reply) = control::request(&paths.control(node), "status") else {
        return Vec::new();
    };
    let Ok(status) = control::parse_status(&reply) else {
        return Vec::new();
    };
    status
        .processes
        .into_iter()
        .map(|p| ProcLive {
            name: p.name,
            state: p.state,
            exit: p.exit,
            restarts: p.restarts,
            ready: p.ready,
        })
        .collect()
}
