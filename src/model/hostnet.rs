//! What a lab makes in the host's own namespace, only when the file asks: links with one
//! end on the host, and the management network (a bridge on the host with a link to each
//! node). They are kept apart from the lab's graph: no route, check or `routing: static`
//! sees them, so lab routing is the same with or without them.

use ipnet::IpNet;
use serde::Serialize;

use super::ser_mac;
use crate::diag::Span;

/// A veth from a node to the host. Its host end is named as written (or derived for the
/// management network) and checked at `up` not to exist on the host yet.
#[derive(Debug, Clone, Serialize)]
pub struct HostLink {
    pub node: usize,
    pub iface: String,
    pub ifindex: u32,
    #[serde(serialize_with = "ser_mac")]
    pub mac: [u8; 6],
    pub addresses: Vec<IpNet>,
    pub host_iface: String,
    pub host_ifindex: u32,
    #[serde(serialize_with = "ser_mac")]
    pub host_mac: [u8; 6],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub host_addresses: Vec<IpNet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Its host end is a port of the management bridge.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mgmt: bool,
    /// Where it was written (the management network's `mgmt:` for its links).
    #[serde(skip)]
    pub span: Span,
    /// A management link's addresses the file wrote, and where (a node's `mgmt:`): on a
    /// shared network they are kept, while the others are handed out at `up`.
    #[serde(skip)]
    pub written: Vec<IpNet>,
    #[serde(skip)]
    pub written_at: Option<Span>,
}

/// The management network's bridge on the host, holding the first address of each subnet.
#[derive(Debug, Clone, Serialize)]
pub struct Mgmt {
    /// The host's management network this lab joins (`mgmt: { network: NAME }`), shared
    /// with every other lab naming it; `None` for a bridge of the lab's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    pub bridge: String,
    pub ifindex: u32,
    #[serde(serialize_with = "ser_mac")]
    pub mac: [u8; 6],
    /// The host's own addresses on it, with the subnets' prefix lengths.
    pub addresses: Vec<IpNet>,
    #[serde(skip)]
    pub span: Span,
}

/// How plans and journals name the host's own namespace (the one nslab runs in: the
/// machine's, or a simulated host's). No namespace nslab makes can be called this: theirs
/// start with `nslab.`.
pub const HOST_NETNS: &str = "@host";
