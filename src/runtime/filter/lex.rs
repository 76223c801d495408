//! Splits a filter into words, parentheses and operators, each with its column.

use super::{FilterError, TCPDUMP_HINT};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Word(String),
    Open,
    Close,
    Not,
    And,
    Or,
}

/// A token and its 1-based column.
pub type Spanned = (Tok, usize);

fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !"()!&|[]".contains(c)
}

/// The tokens of `text`; `and`, `or`, `not` are folded into their symbols.
pub fn lex(text: &str) -> Result<Vec<Spanned>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        let pair = |d: char| chars.get(i + 1) == Some(&d);
        let (tok, len) = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => (Tok::Open, 1),
            ')' => (Tok::Close, 1),
            '!' if !pair('=') => (Tok::Not, 1),
            '&' if pair('&') => (Tok::And, 2),
            '|' if pair('|') => (Tok::Or, 2),
            '[' | ']' => {
                return Err(FilterError::new(
                    text,
                    col,
                    "byte offsets such as `tcp[13]` are not supported",
                    TCPDUMP_HINT,
                ));
            }
            '!' | '&' | '|' => {
                return Err(FilterError::new(
                    text,
                    col,
                    format!("`{c}` (arithmetic and comparisons) is not supported"),
                    TCPDUMP_HINT,
                ));
            }
            _ => {
                let end = (i..chars.len())
                    .find(|&j| !is_word_char(chars[j]))
                    .unwrap_or(chars.len());
                let w: String = chars[i..end].iter().collect();
                let tok = match w.as_str() {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    _ => Tok::Word(w),
                };
                (tok, end - i)
            }
        };
        out.push((tok, col));
        i += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_symbols_and_columns() {
        let t = lex("!tcp && (port 179 || not udp)").unwrap();
        let cols: Vec<usize> = t.iter().map(|t| t.1).collect();
        assert_eq!(cols, [1, 2, 6, 9, 10, 15, 19, 22, 26, 29]);
        assert_eq!(t[0].0, Tok::Not);
        assert_eq!(t[2].0, Tok::And);
        assert_eq!(t[6].0, Tok::Or);
        assert_eq!(t[7].0, Tok::Not);
        assert_eq!(t[3].0, Tok::Open);
        assert_eq!(t[9].0, Tok::Close);
        assert_eq!(t[5].0, Tok::Word("179".into()));
    }

    #[test]
    fn byte_offsets_are_refused_at_their_column() {
        let e = lex("tcp[13] & 2 != 0").unwrap_err();
        assert_eq!(e.col, 4);
        assert!(e.what.contains("byte offsets"), "{e}");
        assert!(e.to_string().contains("tcpdump -r -"), "{e}");
    }
}
