//! Nodes' own interfaces (`model::Device`): each one `Op::CreateLink` of its kind, made
//! up once its namespace is ready (a vlan once its parent exists too), then its
//! addresses. They come after the links, whose ends may be their parents.

use super::{Builder, Wiring};
use crate::model::{DeviceKind, Topology};
use crate::plan::links::{Dummy, Link, LinkSpec, Macvlan, Vlan};
use crate::plan::{Name, Op, StepId};

pub(super) fn devices(t: &Topology, b: &mut Builder, w: &Wiring) {
    for (i, n) in t.nodes.iter().enumerate() {
        if !w.local[i] || n.devices.is_empty() {
            continue;
        }
        // (name, ifindex, the step that made it) of the devices made so far.
        let mut made: Vec<(&str, u32, StepId)> = Vec::new();
        for d in &n.devices {
            let mut deps = w.ready[i].clone();
            let kind = match &d.kind {
                DeviceKind::Dummy => LinkSpec::Dummy(Dummy {}),
                DeviceKind::Vlan { parent, id } => {
                    // Parents come first (the model orders them): a link's end or a device.
                    let (ifindex, step) = match n.interfaces.iter().position(|x| &x.name == parent)
                    {
                        Some(k) => (n.interfaces[k].ifindex, w.created[i][k]),
                        None => made
                            .iter()
                            .find(|m| m.0 == parent)
                            .map(|m| (m.1, m.2))
                            .expect("the model orders parents first"),
                    };
                    deps.push(step);
                    LinkSpec::Vlan(Vlan {
                        parent: Name::from(parent.as_str()),
                        parent_ifindex: ifindex,
                        vlan_id: *id,
                    })
                }
                DeviceKind::Macvlan { parent, mode } => LinkSpec::Macvlan(Macvlan {
                    parent: Name::from(parent.as_str()),
                    mode: *mode,
                }),
            };
            let name = Name::from(d.name.as_str());
            let id = b.push(
                Op::CreateLink(Link {
                    netns: w.netns[i].clone(),
                    name: name.clone(),
                    ifindex: d.ifindex,
                    mac: d.mac,
                    mtu: d.mtu,
                    master: None,
                    kind,
                }),
                deps,
            );
            made.push((&d.name, d.ifindex, id));
            for a in &d.addresses {
                b.push(
                    Op::AddAddress {
                        netns: w.netns[i].clone(),
                        name: name.clone(),
                        ifindex: d.ifindex,
                        address: *a,
                    },
                    vec![id],
                );
            }
        }
    }
}

/// The steps that made and addressed a device (by namespace and ifindex), for the routes
/// through it. Only routes over a device look here, so the scan stays off the common path.
pub(super) fn made(b: &Builder, netns: &Name, ifindex: u32) -> Vec<StepId> {
    b.steps
        .iter()
        .filter(|s| match &s.op {
            Op::CreateLink(l) => &l.netns == netns && l.ifindex == ifindex,
            Op::AddAddress {
                netns: n,
                ifindex: x,
                ..
            } => n == netns && *x == ifindex,
            _ => false,
        })
        .map(|s| s.id)
        .collect()
}
