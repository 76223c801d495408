//! The two encodings the ConfigMap needs: file paths as keys, and bytes as base64.

/// A ConfigMap key for a relative path. Keys may hold only letters, digits, `-`, `_`
/// and `.`, and may not start with `..`, so `/` and everything else is escaped behind
/// `_`, which is escaped itself: `configs/r1/frr.conf` is `configs_.r1_.frr.conf`. Two
/// paths never share a key. The volume's items put each key back at its path.
pub fn config_key(path: &str) -> String {
    let mut key = String::with_capacity(path.len());
    for (i, b) in path.bytes().enumerate() {
        match b {
            b'/' => key.push_str("_."),
            b'_' => key.push_str("__"),
            // A leading `.` would make `..` possible (the kubelet's own names).
            b'.' if i == 0 => key.push_str("_x2e"),
            b if b.is_ascii_alphanumeric() || b == b'-' || b == b'.' => key.push(b as char),
            b => key.push_str(&format!("_x{b:02x}")),
        }
    }
    key
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as the API's `binaryData` takes it.
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
