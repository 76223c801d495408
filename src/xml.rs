//! Text for XML (JUnit reports, SVG, HTML, draw.io): the five entities escaped, and the
//! characters XML 1.0 forbids even when escaped (control characters but tab, newline and
//! carriage return; U+FFFE and U+FFFF) written out as `\xNN` or `\u{NNNN}`, so command
//! output, a process's log or a label can never make a document unreadable, and the
//! escape shows what was there (`\x1b` of a colour code).

use std::fmt::Write;

/// Escapes text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            '\u{fffe}' | '\u{ffff}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn characters_xml_forbids_are_written_out_and_the_rest_kept() {
        assert_eq!(
            escape("a\u{1b}[31mred\u{0}\u{7}\tb\nc\r\u{fffe}\u{ffff}\u{fffd}é"),
            "a\\x1b[31mred\\x00\\x07\tb\nc\r\\u{fffe}\\u{ffff}\u{fffd}é"
        );
        assert_eq!(
            escape("<a href='x'>&\""),
            "&lt;a href=&apos;x&apos;&gt;&amp;&quot;"
        );
    }
}
