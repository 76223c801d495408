//! Naming rules and derived names: lab, node and interface names, the namespaces a lab
//! owns, and MAC addresses derived from (lab, owner, interface).

/// Interface names are at most 15 bytes (IFNAMSIZ - 1); the kernel answers ERANGE past it.
pub const IFNAMSIZ_MAX: usize = 15;
pub const LAB_NAME_MAX: usize = 12;
/// Node names become hostnames, directory names and parts of namespace names.
pub const NODE_NAME_MAX: usize = 48;

/// Lab names: `[a-z0-9-]`, starting with a letter or digit, at most 12 characters.
/// A shared management network's name: checked as a lab name is (it names the
/// network's registry file and its default bridge `br-<network>`).
pub fn check_network_name(name: &str) -> Result<(), String> {
    check_lab_name(name).map_err(|e| {
        format!(
            "`mgmt.network`: {}",
            e.replacen("lab name", "network name", 1)
        )
    })
}

pub fn check_lab_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the lab name is empty".into());
    }
    if name.len() > LAB_NAME_MAX {
        return Err(format!(
            "lab name `{name}` is {} characters long; the limit is {LAB_NAME_MAX}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "lab name `{}` holds `{}`; only lowercase letters, digits and `-` are allowed",
            name.escape_debug(),
            c.escape_debug()
        ));
    }
    if name.starts_with('-') {
        return Err(format!("lab name `{name}` starts with `-`"));
    }
    Ok(())
}

/// Node and bridge names: letters, digits, `_`, `-` and `.`, starting with a letter or
/// digit, never `..`; so a name can never escape the lab's directory. Names like cgroup
/// control files (`tasks`, `cgroup.procs`) are allowed: the node's cgroup directory
/// carries a prefix that keeps it apart from them (`node::cgroup::relative`).
pub fn check_node_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.contains('/') || name.contains('\0') || name.contains("..") {
        return Err(format!(
            "name `{}` could escape a path (it holds `/`, `..` or NUL)",
            name.escape_debug()
        ));
    }
    if name.len() > NODE_NAME_MAX {
        return Err(format!(
            "name `{name}` is {} bytes long; the limit is {NODE_NAME_MAX}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "name `{}` holds `{}`; only letters, digits, `_`, `-` and `.` are allowed",
            name.escape_debug(),
            c.escape_debug()
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!("name `{name}` must start with a letter or digit"));
    }
    Ok(())
}

/// Linux interface names: 1 to 15 bytes, no `/`, `:` or white space, not `.` or `..`.
/// nslab is stricter than the kernel so names stay safe in sysctl paths and shells.
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the interface name is empty".into());
    }
    if name.len() > IFNAMSIZ_MAX {
        return Err(format!(
            "interface name `{name}` is {} bytes long; Linux allows at most {IFNAMSIZ_MAX}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("`{name}` is not a valid interface name"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "interface name `{}` holds `{}`; only letters, digits, `_`, `-` and `.` are allowed",
            name.escape_debug(),
            c.escape_debug()
        ));
    }
    if name == "lo" {
        return Err("`lo` is the loopback interface every node already has".into());
    }
    Ok(())
}

/// Unicode format characters (general category Cf, Unicode 15.1): invisible, and some
/// (U+202E RIGHT-TO-LEFT OVERRIDE) reorder what follows them on a terminal.
const FORMAT: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// A character that prints as something other than itself, or as nothing: a control
/// (Cc), a format character (Cf), or a line or paragraph separator (Zl, Zp). A name
/// holding one would make `nslab ps`, `status`, `logs` and error messages show another
/// name than the one it is.
pub fn is_hidden(c: char) -> bool {
    let n = c as u32;
    c.is_control()
        || n == 0x2028
        || n == 0x2029
        || FORMAT.iter().any(|&(a, b)| (a..=b).contains(&n))
}

/// `text` with every hidden character ([`is_hidden`]) written as `\u{1b}`, but line
/// breaks and tabs when `lines` is set: for what nslab prints but does not check, a
/// command of the file's or what a node's command printed. Raw, an escape sequence
/// there acts on the reader's terminal (`\e[2K\r` erases what came before it on the
/// line, OSC 52 sets the clipboard) and a line break forges another line.
pub fn shown(text: &str, lines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_hidden(c) && !(lines && matches!(c, '\n' | '\t')) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// What `c` is, for a message saying a name holds it.
pub fn describe(c: char) -> String {
    if c.is_whitespace() || c.is_control() {
        "a space or a control character".into()
    } else {
        format!(
            "U+{:04X}, an invisible Unicode format character that changes how the name prints",
            c as u32
        )
    }
}

/// The first hidden character of `name` (see [`is_hidden`]), written as `U+202E`.
pub fn hidden_char(name: &str) -> Option<String> {
    name.chars()
        .find(|&c| is_hidden(c))
        .map(|c| format!("U+{:04X}", c as u32))
}

/// The named network namespace of a node: `nslab.<lab>.<node>`. Lab names hold no `.`, so
/// two labs can never produce the same namespace name.
pub fn node_netns(lab: &str, node: &str) -> String {
    format!("nslab.{lab}.{node}")
}

/// The lab a namespace name belongs to (`nslab.<lab>` or `nslab.<lab>.<node>`).
pub fn lab_of_netns(netns: &str) -> String {
    netns
        .strip_prefix("nslab.")
        .and_then(|rest| rest.split('.').next())
        .unwrap_or_default()
        .to_string()
}

/// The lab's own namespace, which holds its bridges so none appear on the host.
pub fn fabric_netns(lab: &str) -> String {
    format!("nslab.{lab}")
}

/// FNV-1a as a `Hasher`, for maps keyed by nslab's own names (a journal's namespaces, a
/// plan's objects), where SipHash's resistance to chosen keys buys nothing and costs a
/// third of diffing two 1,000-node plans.
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Builds [`Fnv`] hashers for `HashMap` and `HashSet`.
pub type FnvBuild = std::hash::BuildHasherDefault<Fnv>;

/// FNV-1a, 64 bit: stable across Rust versions and platforms, unlike `DefaultHasher`.
pub fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in p.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The stable hash of an object's identity (its kind and names, never its position), from
/// which pool blocks, host addresses, ifindexes and port names are derived. FNV-1a alone
/// leaves short, similar names (`n1`, `n2`) close together in its low bits, so a 64-bit
/// finaliser (splitmix64's) spreads them before they are reduced to a range.
pub fn identity_hash(parts: &[&str]) -> u64 {
    let mut z = fnv1a(parts);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Where a hashed identity lands in a range of `len` slots: its home, the first slot a
/// linear probe tries. Only the first `window` slots are homes, so identities stay in the
/// low part of huge ranges (readable IPv6 addresses); probing still covers the whole range.
pub fn home(hash: u64, len: u128, window: u128) -> u128 {
    u128::from(hash) % len.min(window).max(1)
}

/// A locally administered unicast MAC derived from (lab, owner, interface). `salt` moves
/// to the next candidate when a derived MAC collides inside the lab.
pub fn derive_mac(lab: &str, owner: &str, iface: &str, salt: u32) -> [u8; 6] {
    let salt = salt.to_string();
    let h = fnv1a(&[lab, owner, iface, &salt]).to_be_bytes();
    let mut mac = [h[0], h[1], h[2], h[3], h[4], h[5]];
    mac[0] = (mac[0] & 0xfc) | 0x02;
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_names() {
        assert!(check_lab_name("ospf-ring").is_ok());
        assert!(
            check_lab_name("a-very-long-lab")
                .unwrap_err()
                .contains("limit is 12")
        );
        assert!(check_lab_name("Lab").unwrap_err().contains("`L`"));
        assert!(check_lab_name("a.b").is_err());
        assert!(check_lab_name("-a").is_err());
    }

    #[test]
    fn node_names_cannot_escape() {
        assert!(check_node_name("r1").is_ok());
        assert!(check_node_name("leaf-1.pod2").is_ok());
        for bad in ["../x", "a/b", "a\0b", "..", "a..b"] {
            assert!(
                check_node_name(bad).unwrap_err().contains("escape"),
                "{bad}"
            );
        }
        assert!(check_node_name("r 1").is_err());
        assert!(check_node_name("-r").is_err());
    }

    #[test]
    fn controls_format_characters_and_separators_are_hidden() {
        for c in [
            '\u{7}',
            '\u{9b}',
            '\u{202e}',
            '\u{200d}',
            '\u{feff}',
            '\u{2028}',
            '\u{2029}',
            '\u{e0041}',
            '\u{ad}',
        ] {
            assert!(is_hidden(c), "{c:?}");
        }
        for c in [
            'a',
            'é',
            'ß',
            '漢',
            '-',
            ' ',
            '\u{2027}',
            '\u{2030}',
            '\u{1f600}',
        ] {
            assert!(!is_hidden(c), "{c:?}");
        }
        assert_eq!(hidden_char("web\u{202e}1"), Some("U+202E".into()));
        assert_eq!(hidden_char("wéb-1"), None);
    }

    #[test]
    fn interface_names() {
        assert!(check_ifname("eth0").is_ok());
        assert!(check_ifname("a23456789012345").is_ok());
        assert!(
            check_ifname("a234567890123456")
                .unwrap_err()
                .contains("at most 15")
        );
        assert!(check_ifname("e:1").is_err());
        assert!(check_ifname("lo").is_err());
    }

    #[test]
    fn namespaces_name_their_lab() {
        assert_eq!(lab_of_netns(&node_netns("ring", "r1.a")), "ring");
        assert_eq!(lab_of_netns(&fabric_netns("ring")), "ring");
    }

    #[test]
    fn macs_are_local_unicast_and_stable() {
        let m = derive_mac("lab", "r1", "eth0", 0);
        assert_eq!(m[0] & 0x03, 0x02);
        assert_eq!(m, derive_mac("lab", "r1", "eth0", 0));
        assert_ne!(m, derive_mac("lab", "r1", "eth1", 0));
        assert_ne!(m, derive_mac("lab", "r1", "eth0", 1));
        // Separators keep ("ab","c") and ("a","bc") apart.
        assert_ne!(fnv1a(&["ab", "c"]), fnv1a(&["a", "bc"]));
    }
}
