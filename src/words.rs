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

/// `*` matches any run of characters, everything else itself. In time proportional to
/// the pattern's length times the text's, whatever the number of `*`: the pattern comes
/// from the command line (`--check`), and trying every split at every `*` took time
/// exponential in their number (`*a*a*a*a*a*a*a*a*a*a*a*a*b` never finished on a long
/// name).
pub fn glob(pattern: &str, s: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut i, mut j) = (0, 0);
    // The last `*` seen, and where in the text its run would end next if what follows
    // it fails: a later `*` subsumes every choice of an earlier one.
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if i < p.len() && p[i] == t[j] {
            i += 1;
            j += 1;
        } else if let Some((si, sj)) = star {
            star = Some((si, sj + 1));
            i = si + 1;
            j = sj + 1;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::{count, glob, iface_order};

    #[test]
    fn globs_match_as_before_and_many_stars_cost_no_more_than_one() {
        for (p, s, want) in [
            ("reach-*", "reach-ab", true),
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("a*", "", false),
            ("*ab", "aab", true),
            ("*ab", "aba", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("ospf-up [r*]", "ospf-up [r1]", true),
            ("*é*", "café", true),
            ("**", "x", true),
        ] {
            assert_eq!(glob(p, s), want, "{p} on {s}");
        }
        // Every split of 40 `a`s among 13 stars: billions of tries the old way.
        let many = format!("{}b", "*a".repeat(13));
        assert!(!glob(&many, &"a".repeat(40)));
        assert!(glob(&many, &format!("{}b", "a".repeat(40))));
        // Nor does the number of stars grow the stack.
        assert!(glob(&"*".repeat(200_000), "anything"));
    }

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
