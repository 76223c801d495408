//! A node's own interfaces that no line of the picture ends on: its dummies, vlans and
//! macvlans (`interfaces:`), and its links to the host (`host:` ends, the management
//! network). They are listed in the node's box and panel, each saying what it hangs on,
//! since drawing them as vertices would crowd the lab's own links.

use crate::model::{DeviceKind, Topology};

/// One such interface, as the box and the panel show it.
pub struct Local {
    pub name: String,
    /// What it is and what it hangs on: `dummy`, `vlan 10 on eth1`, `macvlan on host
    /// eth0`, `veth to host mgmt-r3`, `mgmt (host br-mgmt)`.
    pub what: String,
    pub mtu: Option<u32>,
    pub addresses: Vec<String>,
}

impl Local {
    /// The lines in the node's box: name and what it is, then an address a line (as
    /// the loopback's), so that the box stays narrow.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        std::iter::once(format!("{} {}", self.name, self.what))
            .chain(self.addresses.iter().map(|a| format!("  {a}")))
    }
}

/// The node's own interfaces, then its links to the host, in written order.
pub fn of(t: &Topology, node: usize) -> Vec<Local> {
    let n = &t.nodes[node];
    let addrs = |v: &[ipnet::IpNet]| v.iter().map(ToString::to_string).collect();
    let devices = n.devices.iter().map(|d| Local {
        name: d.name.clone(),
        what: match &d.kind {
            DeviceKind::Dummy => "dummy".to_string(),
            DeviceKind::Vlan { parent, id } => format!("vlan {id} on {parent}"),
            DeviceKind::Macvlan { parent, .. } => format!("macvlan on host {parent}"),
        },
        mtu: d.mtu,
        addresses: addrs(&d.addresses),
    });
    let host = t
        .host_links
        .iter()
        .filter(|h| h.node == node)
        .map(|h| Local {
            name: h.iface.clone(),
            what: match (&t.mgmt, h.mgmt) {
                (Some(m), true) => format!("mgmt (host {})", m.bridge),
                _ => format!("veth to host {}", h.host_iface),
            },
            mtu: h.mtu,
            addresses: addrs(&h.addresses),
        });
    devices.chain(host).collect()
}
