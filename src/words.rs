//! Words in output: counted nouns for summaries, so they read as sentences ("1 bridge",
//! "2 bridges"), and interface names in the order people read them.

/// `n` and a regular noun, plural unless `n` is 1 (nouns that take "-es" need their own).
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A sort key for interface names as `ip link` readers expect them: `lo` first, then by
/// name with the first run of digits as a number (eth2 before eth10, eth1 before eth1.100).
/// The kernel lists them by ifindex, which nslab derives from a hash.
pub fn iface_order(name: &str) -> (bool, &str, u64, &str) {
    let start = name
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(name.len());
    let end = name[start..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(name.len(), |e| start + e);
    let number = name[start..end].parse().unwrap_or(u64::MAX);
    (name != "lo", &name[..start], number, &name[end..])
}

/// `*` matches any run of characters, everything else itself.
pub fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, rest)) => {
            let Some(s) = s.strip_prefix(head) else {
                return false;
            };
            (0..=s.len())
                .filter(|&i| s.is_char_boundary(i))
                .any(|i| glob(rest, &s[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{count, iface_order};

    #[test]
    fn interfaces_sort_lo_first_then_by_number() {
        let mut names = [
            "eth10", "eth2", "eth1.100", "mgmt0", "lo", "eth1", "dummy", "eth0",
        ];
        names.sort_by_key(|n| iface_order(n));
        assert_eq!(
            names,
            [
                "lo", "dummy", "eth0", "eth1", "eth1.100", "eth2", "eth10", "mgmt0"
            ]
        );
    }

    #[test]
    fn singular_only_for_one() {
        assert_eq!(count(0, "bridge"), "0 bridges");
        assert_eq!(count(1, "bridge"), "1 bridge");
        assert_eq!(count(2, "link"), "2 links");
    }
}
