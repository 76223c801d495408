//! Sysctl keys as the kernel sees them. A key is written with `.` between components and
//! `/` standing for a `.` inside one (`net.ipv4.conf.eth0/100.forwarding`), so the path
//! under /proc/sys is the key with the two swapped. Validation works on that path, not on
//! the text: `net.//.vm.swappiness` reads as harmless text but is `net/../vm/swappiness`.

/// Keys whose fourth component names an interface; only that component may hold a `/`.
const PER_IFACE: &[&str] = &[
    "net.ipv4.conf.",
    "net.ipv6.conf.",
    "net.ipv4.neigh.",
    "net.ipv6.neigh.",
];

/// Why a key was refused; `Outside` gets its own wording (the common mistake).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The key does not start with `net.`.
    Outside,
    /// A component is empty, `.`/`..`, or holds a character the kernel's names never do.
    Invalid(String),
    /// The interface component is not an interface name.
    BadIface(String),
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::Outside => f.write_str("it is outside `net.*`"),
            KeyError::Invalid(why) | KeyError::BadIface(why) => f.write_str(why),
        }
    }
}

/// A validated key: the path below `/proc/sys/net` and the interface it names, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlPath {
    /// Components after `net`, each as the kernel names it (`eth0.100`, not `eth0/100`).
    pub below_net: Vec<String>,
    /// The interface of a per-interface key (`all`, `default` and `lo` included).
    pub iface: Option<String>,
}

impl SysctlPath {
    /// The path relative to `/proc/sys/net`.
    pub fn rel(&self) -> String {
        self.below_net.join("/")
    }
}

/// Parses a key into the path the kernel will open, refusing anything that could leave
/// `/proc/sys/net`: no empty, `.` or `..` component; only the interface component may
/// hold `/` (a `.` in the name), and it must be a valid interface name.
pub fn parse(key: &str) -> Result<SysctlPath, KeyError> {
    let Some(rest) = key.strip_prefix("net.") else {
        return Err(KeyError::Outside);
    };
    let iface_at = PER_IFACE.iter().any(|p| key.starts_with(p)).then_some(2);
    let mut below_net = Vec::new();
    let mut iface = None;
    for (i, c) in rest.split('.').enumerate() {
        if Some(i) == iface_at {
            let name = c.replace('/', ".");
            check_iface(&name).map_err(KeyError::BadIface)?;
            iface = Some(name.clone());
            below_net.push(name);
            continue;
        }
        let plain = !c.is_empty()
            && c.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-'));
        if !plain {
            return Err(KeyError::Invalid(if c.is_empty() {
                "it has an empty component (two dots, or a dot at the end)".into()
            } else {
                format!("`{}` is not a sysctl component", c.escape_debug())
            }));
        }
        below_net.push(c.to_string());
    }
    let needs = iface_at.map_or(1, |at| at + 2);
    if below_net.len() < needs {
        return Err(KeyError::Invalid("the key is incomplete".into()));
    }
    Ok(SysctlPath { below_net, iface })
}

/// The interface component as the kernel names its directory: `all`, `default`, or an
/// interface name (15 bytes, no `/`, never `.` or `..`).
fn check_iface(name: &str) -> Result<(), String> {
    if matches!(name, "all" | "default" | "lo") {
        return Ok(());
    }
    super::names::check_ifname(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(key: &str) -> String {
        parse(key).unwrap().rel()
    }

    #[test]
    fn keys_map_to_the_paths_the_kernel_opens() {
        assert_eq!(rel("net.ipv4.ip_forward"), "ipv4/ip_forward");
        assert_eq!(
            rel("net.ipv4.conf.eth0/100.forwarding"),
            "ipv4/conf/eth0.100/forwarding"
        );
        assert_eq!(
            parse("net.ipv6.conf.all.forwarding")
                .unwrap()
                .iface
                .as_deref(),
            Some("all")
        );
        assert_eq!(
            rel("net.ipv4.neigh.default.gc_thresh3"),
            "ipv4/neigh/default/gc_thresh3"
        );
    }

    #[test]
    fn keys_that_would_leave_net_are_refused() {
        for key in [
            "net.//.vm.swappiness",
            "net.ipv4.conf.eth0.//.//.//.//.vm.swappiness",
            "net.ipv4.conf.//.forwarding",
            "net.ipv4.conf./.forwarding",
            "net.ipv4./.ip_forward",
            "net..ipv4",
            "net.ipv4.",
            "net.ipv4.ip/forward",
            "net.ipv4.conf.eth0",
            "net.ipv4.conf.a/b/c/d/e/f/g/h/i.forwarding",
            "net.",
        ] {
            assert!(
                matches!(
                    parse(key),
                    Err(KeyError::Invalid(_) | KeyError::BadIface(_))
                ),
                "{key}: {:?}",
                parse(key)
            );
        }
        assert_eq!(parse("kernel.pid_max"), Err(KeyError::Outside));
        assert_eq!(parse("net/../vm.swappiness"), Err(KeyError::Outside));
    }
}
