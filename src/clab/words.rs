//! Text as containerlab reads it: commands split into words the way its `cmd`, `exec`
//! and healthchecks are (no shell in between), its magic variables, and Docker's sizes.

use crate::diag::{Sink, Span};

/// Splits a command line into words: single quotes keep everything, double quotes keep
/// all but `\"` and `\\`, a backslash outside quotes escapes the next character.
pub fn split(text: &str) -> Result<Vec<String>, String> {
    let (mut words, mut cur, mut in_word) = (Vec::new(), String::new(), false);
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("a single quote is not closed".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("a double quote is not closed".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("a double quote is not closed".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// containerlab's magic variables and `${VAR:=default}`, in a string copied from the
/// file: the node and lab names become nslab's `{node}` and `{lab}`; an environment
/// variable becomes its default, since compiling reads no environment.
/// At most this many `${...}` in one value: each rescans the value (a default may hold
/// another), so thousands in a large bind took time quadratic in its length.
const MAX_VARIABLES: usize = 100;

pub fn substitute(sink: &mut Sink, text: &str, span: Span) -> String {
    let mut s = text
        .replace("__clabNodeName__", "{node}")
        .replace("__clabLabName__", "{lab}");
    for dir in ["__clabNodeDir__", "__clabDir__"] {
        if s.contains(dir) {
            sink.error(Some(span), format!("`{dir}` has no meaning in nslab"))
                .hint("nslab keeps no per-lab directory of files; write a path relative to the topology file");
        }
    }
    let mut replaced = 0;
    while let Some(start) = s.find("${") {
        let Some(len) = s[start..].find('}') else {
            break;
        };
        if replaced == MAX_VARIABLES {
            sink.error(
                Some(span),
                format!("the value holds more than {MAX_VARIABLES} `${{...}}` variables (at most {MAX_VARIABLES} are read)"),
            )
            .hint("write the values themselves");
            break;
        }
        replaced += 1;
        let inner = s[start + 2..start + len].to_string();
        let Some((var, default)) = inner.split_once(":=").or_else(|| inner.split_once(":-")) else {
            sink.error(Some(span), format!("`${{{inner}}}` reads the environment"))
                .hint(format!("nslab reads no environment variables at compile time; write the value, or `${{{inner}:=value}}` for a default"));
            break;
        };
        sink.warning(
            Some(span),
            format!("`${{{var}}}` is replaced by its default `{default}`"),
        )
        .hint("nslab reads no environment variables at compile time");
        s.replace_range(start..start + len + 1, default);
    }
    s
}

/// A Docker memory size in bytes: decimal units as containerlab reads them (`1G` is
/// 10^9 bytes, `1GiB` 2^30).
pub fn docker_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{t}` is not a size like 512M or 1G"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let mult: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "ki" | "kib" => 1024.0,
        "mi" | "mib" => 1024.0 * 1024.0,
        "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("unknown size unit `{unit}` in `{t}`")),
    };
    let bytes = (value * mult).round();
    if !(1.0..1e18).contains(&bytes) {
        return Err(format!("size `{t}` is out of range"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_like_a_shell_without_running_one() {
        assert_eq!(
            split(r#"ash -c "echo $MYVAR > /tmp/var && sleep 9999""#).unwrap(),
            ["ash", "-c", "echo $MYVAR > /tmp/var && sleep 9999"]
        );
        assert_eq!(
            split("a 'b c' d\\ e \"\"").unwrap(),
            ["a", "b c", "d e", ""]
        );
        assert!(split("a 'b").is_err());
    }

    #[test]
    fn docker_sizes_are_decimal() {
        assert_eq!(docker_size("1G").unwrap(), 1_000_000_000);
        assert_eq!(docker_size("512mb").unwrap(), 512_000_000);
        assert_eq!(docker_size("1GiB").unwrap(), 1 << 30);
        assert!(docker_size("1X").is_err());
    }

    #[test]
    fn magic_variables_become_placeholders_and_defaults() {
        let mut sink = Sink::default();
        let s = substitute(&mut sink, "/x/__clabNodeName__/${V:=7}", Span::default());
        assert_eq!(s, "/x/{node}/7");
        assert_eq!(sink.diagnostics.len(), 1);
        substitute(&mut sink, "${HOME}", Span::default());
        assert!(sink.has_errors());
        // A default may hold another: containerlab's `${A:=${B:=c}}`.
        let mut sink = Sink::default();
        assert_eq!(
            substitute(&mut sink, "${A:=${B:=c}}/d", Span::default()),
            "c/d"
        );
    }

    /// Each `${...}` rescans the string: without a bound, a 2 MB bind of `${a:=b}`s took
    /// minutes (quadratic) and gave a warning each.
    #[test]
    fn a_value_with_thousands_of_variables_is_one_error_not_a_hang() {
        let mut sink = Sink::default();
        let text = "${a:=b}".repeat(5000);
        substitute(&mut sink, &text, Span::default());
        let errors: Vec<&str> = sink
            .diagnostics
            .iter()
            .filter(|d| d.severity == crate::diag::Severity::Error)
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("at most 100"), "{}", errors[0]);
        assert!(sink.diagnostics.len() <= 101, "{}", sink.diagnostics.len());
        // A hundred are still fine.
        let mut sink = Sink::default();
        assert_eq!(
            substitute(&mut sink, &"${a:=b}".repeat(100), Span::default()),
            "b".repeat(100)
        );
        assert!(!sink.has_errors());
    }
}
