//! Port names (`port bgp`, `tcp port http`) from the host's /etc/services and protocol
//! names (`ip proto ospf`) from /etc/protocols, read once, as libpcap resolves them with
//! getservbyname(3) and getprotobyname(3) (without NSS: a name must be in the file).

use std::sync::OnceLock;

use super::Proto;

/// The file the names come from.
pub const PATH: &str = "/etc/services";
/// The file protocol names come from.
pub const PROTOCOLS: &str = "/etc/protocols";

/// Each name and alias of /etc/services with its port and protocol (TCP or UDP only).
#[derive(Debug, Default, Clone)]
pub struct Services {
    entries: Vec<(String, u16, Proto)>,
    /// Each name and alias of /etc/protocols with its number.
    protocols: Vec<(String, u8)>,
}

impl Services {
    /// Parses services(5) lines: `name port/proto [alias...] [# comment]`.
    pub fn parse(text: &str) -> Services {
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let mut words = line.split_whitespace();
            let (Some(name), Some(port)) = (words.next(), words.next()) else {
                continue;
            };
            let Some((num, proto)) = port.split_once('/') else {
                continue;
            };
            let proto = match proto {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                _ => continue,
            };
            let Ok(num) = num.parse::<u16>() else {
                continue;
            };
            for n in std::iter::once(name).chain(words) {
                entries.push((n.to_string(), num, proto));
            }
        }
        Services {
            entries,
            protocols: Vec::new(),
        }
    }

    /// Adds protocols(5) lines: `name number [alias...] [# comment]`.
    pub fn with_protocols(mut self, text: &str) -> Services {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some(num) = words.get(1).and_then(|n| n.parse::<u8>().ok()) else {
                continue;
            };
            for n in std::iter::once(words[0]).chain(words[2..].iter().copied()) {
                self.protocols.push((n.to_string(), num));
            }
        }
        self
    }

    /// The number of an IP protocol: a number, a name of /etc/protocols, or `icmp6` (which
    /// the file calls `ipv6-icmp`); pcap's escaped keywords (`\tcp`) too.
    pub fn protocol(&self, w: &str) -> Result<u8, String> {
        let w = w.strip_prefix('\\').unwrap_or(w);
        if w.chars().all(|c| c.is_ascii_digit()) {
            return w
                .parse::<u8>()
                .map_err(|_| format!("`{w}` is not an IP protocol number (0 to 255)"));
        }
        if w == "icmp6" {
            return Ok(58);
        }
        self.protocols
            .iter()
            .find(|p| p.0 == w)
            .map(|p| p.1)
            .ok_or_else(|| format!("`{w}` is not a protocol number, nor a name in {PROTOCOLS}"))
    }

    /// The host's table, read on first use (an unreadable file is an empty table: every
    /// name is then refused with a hint).
    pub fn host() -> &'static Services {
        static HOST: OnceLock<Services> = OnceLock::new();
        HOST.get_or_init(|| {
            Services::parse(&std::fs::read_to_string(PATH).unwrap_or_default())
                .with_protocols(&std::fs::read_to_string(PROTOCOLS).unwrap_or_default())
        })
    }

    fn find(&self, name: &str, proto: Proto) -> Option<u16> {
        self.entries
            .iter()
            .find(|e| e.0 == name && e.2 == proto)
            .map(|e| e.1)
    }

    /// The port of `name` for `proto`, and the protocol it narrows an unqualified `port` to,
    /// as libpcap: a TCP-only name means `tcp port N` (`port bgp`), a UDP-only one `udp port
    /// N`, and a name with the same number for both stays TCP or UDP. `Err` says why not.
    pub fn port(&self, name: &str, proto: Option<Proto>) -> Result<(Option<Proto>, u16), String> {
        let (tcp, udp) = (self.find(name, Proto::Tcp), self.find(name, Proto::Udp));
        match (proto, tcp, udp) {
            (Some(Proto::Tcp), Some(p), _) => Ok((proto, p)),
            (Some(Proto::Udp), _, Some(p)) => Ok((proto, p)),
            (Some(_), Some(_), None) | (Some(_), None, Some(_)) => {
                let has = if tcp.is_some() { "tcp" } else { "udp" };
                Err(format!("`{name}` is a {has} service in {PATH}"))
            }
            (None, Some(t), Some(u)) if t == u => Ok((None, t)),
            (None, Some(t), _) => Ok((Some(Proto::Tcp), t)),
            (None, None, Some(u)) => Ok((Some(Proto::Udp), u)),
            _ => Err(format!(
                "`{name}` is not a port number, nor a name in {PATH}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# comment\nssh\t\t22/tcp\t\t# SSH\ndomain 53/tcp\ndomain 53/udp\n\
                        http 80/tcp www # web\nsyslog 514/udp\nodd 7/ddp\n";

    #[test]
    fn names_aliases_and_the_protocol_they_narrow_to() {
        let s = Services::parse(TEXT);
        assert_eq!(s.port("ssh", None), Ok((Some(Proto::Tcp), 22)));
        assert_eq!(s.port("www", None), Ok((Some(Proto::Tcp), 80)), "an alias");
        assert_eq!(s.port("domain", None), Ok((None, 53)));
        assert_eq!(
            s.port("domain", Some(Proto::Udp)),
            Ok((Some(Proto::Udp), 53))
        );
        assert_eq!(s.port("syslog", None), Ok((Some(Proto::Udp), 514)));
        assert!(
            s.port("syslog", Some(Proto::Tcp))
                .unwrap_err()
                .contains("udp service")
        );
        assert!(s.port("odd", None).unwrap_err().contains("nor a name"));
        assert!(s.port("bgpx", None).is_err());
        let s = s.with_protocols("ip 0 IP\ntcp 6 TCP # tcp\nospf 89 OSPFIGP\n");
        assert_eq!(s.protocol("ospf"), Ok(89));
        assert_eq!(s.protocol("OSPFIGP"), Ok(89), "an alias");
        assert_eq!(s.protocol("\\tcp"), Ok(6));
        assert_eq!(s.protocol("icmp6"), Ok(58));
        assert_eq!(s.protocol("17"), Ok(17));
        assert!(s.protocol("256").unwrap_err().contains("0 to 255"));
        assert!(s.protocol("vrrp").unwrap_err().contains("/etc/protocols"));
    }
}
