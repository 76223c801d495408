//! Interfaces the kernel or the host must provide: a dummy or vlan needs its module
//! (`dummy`, `8021q`), a macvlan its parent on the host. `validate` warns; `up` stops
//! before it makes anything (`apply::devices`), with the same module named.

use crate::apply::devices::Kinds;
use crate::diag::Diagnostic;
use crate::model::{DeviceKind, Topology};

pub fn check(t: &Topology, out: &mut Vec<Diagnostic>) {
    let has_devices = t.nodes.iter().any(|n| !n.devices.is_empty());
    if !has_devices {
        return;
    }
    let kinds = crate::apply::devices::kernel_kinds();
    // In a multi-host lab the parent is another host's business as often as this one's.
    let host_ifaces = t.hosts.is_empty().then(host_interfaces).flatten();
    out.extend(warnings(t, kinds, host_ifaces.as_deref()));
}

/// The host's interfaces, from sysfs (which shows the namespace it was mounted in: the
/// host's, where nslab makes its macvlans).
fn host_interfaces() -> Option<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    Some(names)
}

/// One warning per interface this kernel or host cannot give; pure, for tests.
pub fn warnings(t: &Topology, kinds: Kinds, host_ifaces: Option<&[String]>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for n in &t.nodes {
        for d in &n.devices {
            let (kind, module, config, has) = match &d.kind {
                DeviceKind::Dummy => ("dummy", "dummy", "CONFIG_DUMMY", kinds.dummy),
                DeviceKind::Vlan { .. } => ("vlan", "8021q", "CONFIG_VLAN_8021Q", kinds.vlan),
                DeviceKind::Macvlan { parent, .. } => {
                    if let Some(names) = host_ifaces
                        && !names.iter().any(|x| x == parent)
                    {
                        out.push(
                            Diagnostic::warning(
                                Some(d.span),
                                format!("node `{}`: this host has no interface `{parent}` for the macvlan `{}`; `up` will fail", n.name, d.name),
                            )
                            .with_hint(format!("its interfaces are: {}", names.join(", "))),
                        );
                    }
                    continue;
                }
            };
            if has == Some(false) {
                out.push(
                    Diagnostic::warning(
                        Some(d.span),
                        format!("node `{}`: this kernel cannot make the {kind} interface `{}` (no `{module}` module); `up` will fail", n.name, d.name),
                    )
                    .with_hint(format!("`modprobe {module}`, or a kernel built with {config}")),
                );
            }
        }
    }
    out
}
