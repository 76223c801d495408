//! Counted nouns for summaries, so they read as sentences ("1 bridge", "2 bridges").

/// `n` and a regular noun, plural unless `n` is 1 (nouns that take "-es" need their own).
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn singular_only_for_one() {
        assert_eq!(count(0, "bridge"), "0 bridges");
        assert_eq!(count(1, "bridge"), "1 bridge");
        assert_eq!(count(2, "link"), "2 links");
    }
}
