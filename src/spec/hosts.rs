//! The multi-host keys: `hosts:` (each machine's underlay address and MTU), `placement:`
//! and `vxlan:`. A node's own `host:` is read with the rest of the node. Without `hosts:`
//! none of this changes anything.

use std::net::IpAddr;

use crate::diag::Sink;
use crate::spec::raw::{RawHost, RawVxlan, Sp};
use crate::spec::read;
use crate::spec::yaml::Yaml;

const HOST_KEYS: &[&str] = &["address", "mtu"];
const VXLAN_KEYS: &[&str] = &["port", "vni"];

/// `hosts:`: name -> `{ address, mtu }`, in written order.
pub fn hosts(sink: &mut Sink, y: &Yaml) -> Vec<(Sp<String>, RawHost)> {
    let mut out = Vec::new();
    for (k, v) in read::entries(sink, y, "`hosts`") {
        let name = read::key(k);
        let what = format!("host `{}`", name.value);
        let mut h = RawHost {
            span: v.span,
            ..Default::default()
        };
        if let Some(f) = read::fields(sink, v, &what, HOST_KEYS) {
            match f.value("address") {
                Some(a) => {
                    h.address = read::parsed(sink, a, &format!("address of {what}"), |s| {
                        s.parse::<IpAddr>().map_err(|_| {
                            format!("`{s}` is not an IPv4 or IPv6 address (no prefix length)")
                        })
                    });
                }
                None => {
                    sink.error(Some(v.span), format!("{what} needs an `address:`"))
                        .hint("the machine's underlay address, like `address: 192.0.2.11`");
                }
            }
            h.mtu = f.value("mtu").and_then(|m| {
                read::int(sink, m, &format!("`mtu` of {what}"), 1280, 65535)
                    .map(|m| Sp::new(m.value as u32, m.span))
            });
        }
        out.push((name, h));
    }
    out
}

/// `placement:`: only `auto` so far (balanced, minimum cut, deterministic).
pub fn placement(sink: &mut Sink, y: &Yaml) -> Option<Sp<()>> {
    read::parsed(sink, y, "`placement`", |s| match s {
        "auto" => Ok(()),
        _ => Err(format!(
            "`{s}` is not `auto` (omit `placement:` to place every node by hand with `host:`)"
        )),
    })
}

/// `vxlan: { port, vni }`: the UDP port of cross-host links, and the lab's first VNI
/// (whether its block fits under 2^24 is the model's to say, with the block's size).
pub fn vxlan(sink: &mut Sink, y: &Yaml) -> RawVxlan {
    let mut v = RawVxlan::default();
    if let Some(f) = read::fields(sink, y, "`vxlan`", VXLAN_KEYS) {
        v.port = f.value("port").and_then(|p| {
            read::int(sink, p, "`vxlan.port`", 1, 65535).map(|p| Sp::new(p.value as u16, p.span))
        });
        v.vni = f.value("vni").and_then(|n| {
            use crate::plan::share::{VNI_MAX, VNI_MIN};
            let (min, max) = (i64::from(VNI_MIN), i64::from(VNI_MAX));
            read::int(sink, n, "`vxlan.vni`", min, max).map(|n| Sp::new(n.value as u32, n.span))
        });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::yaml::{Limits, parse};

    fn read_hosts(text: &str) -> (Vec<(Sp<String>, RawHost)>, Sink) {
        let y = parse(text, Limits::default()).unwrap();
        let mut sink = Sink::default();
        let h = hosts(&mut sink, &y);
        (h, sink)
    }

    #[test]
    fn hosts_read_with_addresses_of_both_families() {
        let (h, sink) =
            read_hosts("ha: { address: 192.0.2.11 }\nhb: { address: '2001:db8::2', mtu: 9000 }\n");
        assert!(sink.diagnostics.is_empty());
        assert_eq!(h[0].0.value, "ha");
        assert_eq!(
            h[1].1.address.as_ref().unwrap().value,
            "2001:db8::2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(h[1].1.mtu.as_ref().unwrap().value, 9000);
    }

    #[test]
    fn every_bad_host_is_reported_located() {
        let (_, sink) =
            read_hosts("ha: { address: 192.0.2.300 }\nhb: { mtu: 100 }\nhc: { adress: 1.2.3.4 }\n");
        let msgs: Vec<String> = sink.diagnostics.iter().map(|d| d.message.clone()).collect();
        assert!(msgs[0].contains("not an IPv4 or IPv6 address"), "{msgs:?}");
        assert_eq!(sink.diagnostics[0].span.unwrap().line, 1);
        assert!(
            msgs.iter().any(|m| m == "host `hb` needs an `address:`"),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("not between 1280 and 65535")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m == "unknown key `adress` in host `hc`"),
            "{msgs:?}"
        );
    }
}
