//! Reading a namespace's live state back through netlink, normalised (sorted, counters and
//! timers left out) so two dumps of the same lab compare equal. `status` shows it, and the
//! determinism tests compare it across runs and `--jobs` settings.

use std::net::IpAddr;

use futures_util::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{
    InfoData, InfoVrf, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::{Handle, RouteMessageBuilder};
use serde::Serialize;

use super::error::KernelError;
use super::netlink::NetlinkKernel;
use crate::plan::Name;
use crate::spec::values::format_mac;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NsState {
    pub netns: String,
    pub links: Vec<LinkState>,
    pub routes: Vec<String>,
    /// Sysctls read back, for the keys asked about.
    pub sysctls: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkState {
    pub ifindex: u32,
    pub name: String,
    pub kind: String,
    pub mac: String,
    pub mtu: u32,
    /// Administratively up.
    pub up: bool,
    /// Carrier present (the other end of a veth is up too).
    pub lower_up: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<u32>,
    pub addresses: Vec<IpNet>,
    /// A VXLAN's VNI (a multi-host lab's tunnel to another host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
}

/// A VXLAN device as the kernel reports it: its name, VNI and UDP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanDevice {
    pub name: String,
    pub vni: u32,
    pub port: u16,
}

/// The VNI and UDP port of a link's VXLAN data, if it is one.
fn vxlan_of(infos: &[LinkInfo]) -> Option<(u32, u16)> {
    let data = infos.iter().find_map(|i| match i {
        LinkInfo::Data(InfoData::Vxlan(d)) => Some(d),
        _ => None,
    })?;
    let vni = data.iter().find_map(|a| match a {
        InfoVxlan::Id(v) => Some(*v),
        _ => None,
    })?;
    // The kernel reports no port only for its default, IANA's 4789.
    let port = data
        .iter()
        .find_map(|a| match a {
            InfoVxlan::Port(p) => Some(*p),
            _ => None,
        })
        .unwrap_or(4789);
    Some((vni, port))
}

/// The VXLAN devices in the network namespace nslab runs in (the host's): other tools'
/// tunnels (Flannel, Calico, hand-made) hold their VNI on their port there, which a lab's
/// tunnel cannot take. Asked from a thread of its own, so that it works inside a runtime
/// too; a new thread starts in its creator's namespace.
pub fn host_vxlans() -> Result<Vec<VxlanDevice>, KernelError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| KernelError::Other(format!("a runtime to list VXLANs: {e}")))?;
            rt.block_on(async {
                let (conn, h, _) = rtnetlink::new_connection()
                    .map_err(|e| KernelError::Other(format!("netlink: {e}")))?;
                tokio::spawn(conn);
                let msgs = link_messages(&h).await?;
                Ok(msgs.iter().filter_map(vxlan_device).collect())
            })
        })
        .join()
        .unwrap_or_else(|_| Err(KernelError::Other("listing VXLANs failed".into())))
    })
}

fn vxlan_device(m: &rtnetlink::packet_route::link::LinkMessage) -> Option<VxlanDevice> {
    let mut name = String::new();
    let mut vx = None;
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => name = n.clone(),
            LinkAttribute::LinkInfo(infos) => vx = vxlan_of(infos),
            _ => {}
        }
    }
    let (vni, port) = vx?;
    Some(VxlanDevice { name, vni, port })
}

pub(super) fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// One line per route of the main table, as `ip route` would print the parts that matter.
fn route_line(r: &RouteMessage) -> String {
    let h = &r.header;
    let mut dst = None;
    let mut parts = Vec::new();
    let mut metric = None;
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = route_addr(d),
            RouteAttribute::Gateway(g) => {
                if let Some(g) = route_addr(g) {
                    parts.push(format!("via {g}"));
                }
            }
            RouteAttribute::Oif(i) => parts.push(format!("dev #{i}")),
            RouteAttribute::Priority(p) => metric = Some(*p),
            RouteAttribute::MultiPath(hops) => {
                for n in hops {
                    let gw = n.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Gateway(g) => route_addr(g),
                        _ => None,
                    });
                    let gw = gw.map(|g| g.to_string()).unwrap_or_default();
                    parts.push(format!(
                        "nexthop via {gw} dev #{} weight {}",
                        n.interface_index,
                        u16::from(n.hops) + 1
                    ));
                }
            }
            _ => {}
        }
    }
    let v6 = matches!(
        h.address_family,
        rtnetlink::packet_route::AddressFamily::Inet6
    );
    let dst = match dst {
        Some(d) => format!("{d}/{}", h.destination_prefix_length),
        None if v6 => "::/0".into(),
        None => "0.0.0.0/0".into(),
    };
    let mut line = format!("{dst} {:?} {:?} {:?}", h.kind, h.protocol, h.scope).to_lowercase();
    for p in parts {
        line.push(' ');
        line.push_str(&p);
    }
    if let Some(m) = metric {
        line.push_str(&format!(" metric {m}"));
    }
    line
}

/// A route of one table, structured for checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    pub dst: IpNet,
    /// `unicast`, `blackhole`, `unreachable`, ...
    pub kind: String,
    pub gateways: Vec<IpAddr>,
    /// Output interfaces, one per next hop (or the route's own).
    pub oifs: Vec<u32>,
}

fn route_entry(r: &RouteMessage) -> RouteEntry {
    let h = &r.header;
    let v6 = matches!(
        h.address_family,
        rtnetlink::packet_route::AddressFamily::Inet6
    );
    let mut dst: Option<IpAddr> = None;
    let mut gateways = Vec::new();
    let mut oifs = Vec::new();
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = route_addr(d),
            RouteAttribute::Gateway(g) => gateways.extend(route_addr(g)),
            RouteAttribute::Oif(i) => oifs.push(*i),
            RouteAttribute::MultiPath(hops) => {
                for n in hops {
                    oifs.push(n.interface_index);
                    gateways.extend(n.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Gateway(g) => route_addr(g),
                        _ => None,
                    }));
                }
            }
            _ => {}
        }
    }
    let dst = dst.unwrap_or(if v6 {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    });
    RouteEntry {
        dst: IpNet::new(dst, h.destination_prefix_length).unwrap_or_else(|_| IpNet::from(dst)),
        kind: format!("{:?}", h.kind).to_lowercase(),
        gateways,
        oifs,
    }
}

/// Every route of the main table, both families: the main table is what a lab sets.
pub(super) async fn main_table(h: &Handle) -> Result<Vec<RouteMessage>, KernelError> {
    table_routes(h, MAIN_TABLE).await
}

const MAIN_TABLE: u32 = 254;

/// A route's table: ids above 255 are only in the `RTA_TABLE` attribute (the header then
/// says 252, "compat").
fn table_of(r: &RouteMessage) -> u32 {
    r.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(r.header.table))
}

/// Every route of one table, both families. The dump is filtered by family only.
async fn table_routes(h: &Handle, table: u32) -> Result<Vec<RouteMessage>, KernelError> {
    let mut out = Vec::new();
    for msg in [
        RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
        RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
    ] {
        let all: Vec<RouteMessage> = h
            .route()
            .get(msg)
            .execute()
            .try_collect()
            .await
            .map_err(KernelError::netlink)?;
        out.extend(all.into_iter().filter(|r| table_of(r) == table));
    }
    Ok(out)
}

/// The routes of one table (254 is `main`) of one namespace.
pub async fn route_entries(
    kernel: &NetlinkKernel,
    netns: &Name,
    table: u32,
) -> Result<Vec<RouteEntry>, KernelError> {
    Ok(table_routes(&kernel.handle(netns).await?, table)
        .await?
        .iter()
        .map(route_entry)
        .collect())
}

/// What a namespace's interface of a given name is, for a `route` check's `vrf:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VrfLookup {
    /// A VRF device, with its routing table.
    Table(u32),
    /// An interface of another kind (`veth`, `dummy`, or empty for `lo`).
    NotVrf(String),
    /// No interface of that name.
    Missing,
}

/// The routing table of the VRF device `name` in one namespace.
pub async fn vrf_table(
    kernel: &NetlinkKernel,
    netns: &Name,
    name: &str,
) -> Result<VrfLookup, KernelError> {
    let h = kernel.handle(netns).await?;
    let msgs = link_messages(&h).await?;
    let Some(m) = msgs.iter().find(|m| {
        m.attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::IfName(n) if n == name))
    }) else {
        return Ok(VrfLookup::Missing);
    };
    let infos: &[LinkInfo] = m
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::LinkInfo(i) => Some(i.as_slice()),
            _ => None,
        })
        .unwrap_or_default();
    let table = infos.iter().find_map(|i| match i {
        LinkInfo::Data(InfoData::Vrf(d)) => d.iter().find_map(|x| match x {
            InfoVrf::TableId(t) => Some(*t),
            _ => None,
        }),
        _ => None,
    });
    let kind = infos.iter().find_map(|i| match i {
        LinkInfo::Kind(k) => Some(k.to_string()),
        _ => None,
    });
    Ok(match table {
        Some(t) => VrfLookup::Table(t),
        None => VrfLookup::NotVrf(kind.unwrap_or_default()),
    })
}

/// Whether this kernel makes VRF devices (`None`: the probe could not run). Asked once
/// per process by making one in a network namespace of the probing thread's own, as
/// the kernel loads the `vrf` module on demand where it can, so only asking tells.
pub fn kernel_has_vrf() -> Option<bool> {
    static HAS: std::sync::OnceLock<Option<bool>> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        super::devices::in_scratch_netns(|h| async move {
            super::devices::made(
                h.link()
                    .add(rtnetlink::LinkVrf::new("probe0", 4000).build())
                    .execute()
                    .await,
            )
        })
        .flatten()
    })
}

/// The links of one namespace (names by ifindex, state, addresses).
pub async fn link_states(
    kernel: &NetlinkKernel,
    netns: &Name,
) -> Result<Vec<LinkState>, KernelError> {
    links(&kernel.handle(netns).await?).await
}

async fn routes(h: &Handle) -> Result<Vec<String>, KernelError> {
    let mut out: Vec<String> = main_table(h).await?.iter().map(route_line).collect();
    out.sort();
    Ok(out)
}

/// Every link message of the namespace `h` speaks in.
async fn link_messages(h: &Handle) -> Result<Vec<LinkMessage>, KernelError> {
    h.link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(KernelError::netlink)
}

pub(super) async fn links(h: &Handle) -> Result<Vec<LinkState>, KernelError> {
    let msgs = link_messages(h).await?;
    let mut out = Vec::new();
    for m in msgs {
        let mut l = LinkState {
            ifindex: m.header.index,
            name: String::new(),
            kind: String::new(),
            mac: String::new(),
            mtu: 0,
            up: m.header.flags.contains(LinkFlags::Up),
            lower_up: m.header.flags.contains(LinkFlags::LowerUp),
            master: None,
            addresses: Vec::new(),
            vni: None,
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n.clone(),
                LinkAttribute::Mtu(v) => l.mtu = *v,
                LinkAttribute::Controller(c) => l.master = Some(*c),
                LinkAttribute::Address(mac) if mac.len() == 6 => {
                    l.mac = format_mac(&mac[..].try_into().expect("six bytes"));
                }
                LinkAttribute::LinkInfo(infos) => {
                    l.vni = vxlan_of(infos).map(|(vni, _)| vni);
                    for i in infos {
                        if let LinkInfo::Kind(k) = i {
                            l.kind = k.to_string();
                        }
                    }
                }
                _ => {}
            }
        }
        out.push(l);
    }
    let addrs: Vec<_> = h
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(KernelError::netlink)?;
    for a in addrs {
        let ip = a.attributes.iter().find_map(|x| match x {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        });
        let ip = ip.or_else(|| {
            a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
        });
        if let (Some(ip), Some(l)) = (ip, out.iter_mut().find(|l| l.ifindex == a.header.index))
            && let Ok(net) = IpNet::new(ip, a.header.prefix_len)
        {
            l.addresses.push(net);
        }
    }
    out.sort_by_key(|l| l.ifindex);
    for l in &mut out {
        l.addresses.sort();
    }
    Ok(out)
}

/// Dumps one namespace; `sysctls` are read back by key.
pub async fn dump(
    kernel: &NetlinkKernel,
    netns: &Name,
    sysctls: &[String],
) -> Result<NsState, KernelError> {
    let h = kernel.handle(netns).await?;
    let keys = sysctls.to_vec();
    let values = kernel
        .in_netns(netns, move || {
            keys.iter()
                .map(|k| Ok((k.clone(), super::netns::read_sysctl(k)?)))
                .collect::<std::io::Result<Vec<_>>>()
        })
        .await?;
    Ok(NsState {
        netns: netns.to_string(),
        links: links(&h).await?,
        routes: routes(&h).await?,
        sysctls: values,
    })
}
