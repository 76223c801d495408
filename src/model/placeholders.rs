//! `{node}` and `{lab}` in the strings a user writes per node (commands, env values, cwd,
//! ready probes, mount sources and targets, private paths), filled in at model time so
//! the plan carries the strings that will run. A kind or a daemonset is written once and
//! runs on many nodes; this is how its strings differ per node.
//!
//! Rules: `{name}` (letters, digits, `_`) is a placeholder; `{{name}}` is the literal text
//! `{name}`. A placeholder that is not `{node}` or `{lab}` but looks like a misspelling of
//! one (`{nodes}`, `{Node}`) is an error, since a shell would get it verbatim; any other
//! word in braces (`awk '{print}'`) and `${node}` (a shell or env variable) are left as
//! written.

use crate::diag::{Diagnostic, Sink, Span, did_you_mean};
use crate::model::Command;
use crate::spec::raw::{RawCommand, Sp};

/// The placeholders every per-node string may use.
pub const KNOWN: &[&str] = &["node", "lab"];

/// What the placeholders stand for on one node.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    pub node: &'a str,
    pub lab: &'a str,
}

impl Vars<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        match name {
            "node" => Some(self.node),
            "lab" => Some(self.lab),
            _ => None,
        }
    }
}

/// A piece of a string: text to keep, or a `{word}` (its byte offset and word).
enum Piece<'s> {
    Text(&'s str),
    Word(usize, &'s str),
}

fn is_word(w: &str) -> bool {
    !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Splits `s` into text and `{word}`s; `{{word}}` becomes the text `{word}`.
fn pieces(s: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let (mut i, mut start) = (0, 0);
    let b = s.as_bytes();
    while i < b.len() {
        if b[i] != b'{' || (i > 0 && b[i - 1] == b'$') {
            i += 1;
            continue;
        }
        let escaped = s[i..].starts_with("{{");
        let open = if escaped { 2 } else { 1 };
        let close = if escaped { "}}" } else { "}" };
        let Some(len) = s[i + open..].find('}') else {
            break;
        };
        let word = &s[i + open..i + open + len];
        if !is_word(word) || !s[i + open + len..].starts_with(close) {
            i += open;
            continue;
        }
        out.push(Piece::Text(&s[start..i]));
        if escaped {
            // The braces inside the escape: `{word}` as written.
            out.push(Piece::Text(&s[i + 1..i + open + len + 1]));
        } else {
            out.push(Piece::Word(i, word));
        }
        i += open + len + close.len();
        start = i;
    }
    out.push(Piece::Text(&s[start..]));
    out
}

/// A misspelt placeholder, if `word` is close to a known one (case aside).
fn misspelt(word: &str) -> Option<&'static str> {
    let lower = word.to_ascii_lowercase();
    KNOWN
        .iter()
        .copied()
        .find(|k| *k == lower)
        .or_else(|| did_you_mean(&lower, KNOWN.iter().copied()))
}

/// `s` with its placeholders filled in; a misspelt one is reported (once, however many
/// nodes share the string) at `span`, and left as written.
pub fn expand(sink: &mut Sink, s: &str, span: Span, what: &str, vars: Vars) -> String {
    let mut out = String::with_capacity(s.len());
    for p in pieces(s) {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Word(at, w) => match vars.get(w) {
                Some(v) => out.push_str(v),
                None => {
                    if let Some(k) = misspelt(w) {
                        report(sink, narrow(span, s, at, w), what, w, k);
                    }
                    out.push('{');
                    out.push_str(w);
                    out.push('}');
                }
            },
        }
    }
    out
}

/// The span of `{word}` at byte `at` of `s`, when `span` is `s` written on one line
/// (plain, or quoted without escapes); else all of `span`.
fn narrow(span: Span, s: &str, at: usize, word: &str) -> Span {
    let chars = s.chars().count() as u32;
    let quote = match span.len {
        l if l == chars => 0,
        l if l == chars + 2 => 1,
        _ => return span,
    };
    let col = span.col + quote + s[..at].chars().count() as u32;
    Span::new(span.line, col, word.chars().count() as u32 + 2)
}

fn report(sink: &mut Sink, span: Span, what: &str, word: &str, known: &str) {
    let d = Diagnostic::error(
        Some(span),
        format!("{what} uses the unknown placeholder `{{{word}}}`"),
    )
    .with_hint(format!(
        "did you mean `{{{known}}}`? The placeholders are `{{node}}` and `{{lab}}`; write `{{{{{word}}}}}` for the literal text `{{{word}}}`"
    ));
    // A kind's or a daemonset's string is expanded once per node: say it once.
    if !sink.diagnostics.contains(&d) {
        sink.push(d);
    }
}

/// A command with its placeholders filled in, each argv word on its own.
pub fn command(sink: &mut Sink, c: &RawCommand, span: Span, what: &str, vars: Vars) -> Command {
    match c {
        RawCommand::Shell(s) => Command::Shell(expand(sink, s, span, what, vars)),
        RawCommand::Argv(v) => Command::Argv(
            v.iter()
                .map(|w| expand(sink, w, span, what, vars))
                .collect(),
        ),
    }
}

/// Environment values with their placeholders filled in (names are checked as names).
pub fn env(
    sink: &mut Sink,
    raw: &[(Sp<String>, Sp<String>)],
    what: &str,
    vars: Vars,
) -> Vec<(String, String)> {
    raw.iter()
        .map(|(k, v)| {
            let what = format!("{what} `{}`", k.value);
            (k.value.clone(), expand(sink, &v.value, v.span, &what, vars))
        })
        .collect()
}

/// A located string with its placeholders filled in, keeping its location.
pub fn spanned(sink: &mut Sink, s: &Sp<String>, what: &str, vars: Vars) -> Sp<String> {
    Sp::new(expand(sink, &s.value, s.span, what, vars), s.span)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: Vars = Vars {
        node: "r1",
        lab: "ring",
    };

    fn run(s: &str) -> (String, Vec<Diagnostic>) {
        let mut sink = Sink::default();
        let out = expand(&mut sink, s, Span::new(1, 1, 0), "`cmd`", V);
        (out, sink.diagnostics)
    }

    #[test]
    fn node_and_lab_are_filled_in_anywhere_in_a_string() {
        assert_eq!(run("/etc/{lab}/{node}.conf").0, "/etc/ring/r1.conf");
        assert_eq!(run("{node}{node}-{lab}").0, "r1r1-ring");
        assert_eq!(run("no placeholders").0, "no placeholders");
    }

    #[test]
    fn doubled_braces_are_the_literal_text() {
        assert_eq!(run("echo {{node}} is {node}").0, "echo {node} is r1");
        assert_eq!(run("{{nodes}}"), ("{nodes}".to_string(), vec![]));
    }

    #[test]
    fn shell_braces_and_variables_are_left_alone() {
        for s in [
            "awk '{print $1}'",
            "sh -c 'f() { echo; }; f'",
            "echo ${node} ${HOME}",
            "find . -exec rm {} +",
            "{",
            "}{",
            "{node",
        ] {
            assert_eq!(run(s), (s.to_string(), vec![]), "{s}");
        }
    }

    #[test]
    fn a_misspelt_placeholder_is_an_error_with_the_right_name() {
        for (s, want) in [
            ("{nodes}", "{node}"),
            ("{Node}", "{node}"),
            ("{lb}", "{lab}"),
        ] {
            let (out, d) = run(s);
            assert_eq!(out, s, "left as written");
            assert_eq!(d.len(), 1, "{s}: {d:?}");
            assert!(d[0].message.contains(&format!("`{s}`")), "{}", d[0].message);
            let hint = d[0].hint.as_deref().unwrap();
            assert!(hint.contains(&format!("did you mean `{want}`")), "{hint}");
            assert!(hint.contains(&format!("`{{{s}}}`")), "{hint}");
        }
    }

    #[test]
    fn the_error_points_at_the_placeholder_in_a_one_line_string() {
        let mut sink = Sink::default();
        // `"ab {nod}"`, quoted, at column 10.
        expand(&mut sink, "ab {nod}", Span::new(2, 10, 10), "`cmd`", V);
        assert_eq!(sink.diagnostics[0].span, Some(Span::new(2, 14, 5)));
    }

    #[test]
    fn argv_words_expand_one_by_one() {
        let mut sink = Sink::default();
        let c = RawCommand::Argv(vec!["ping".into(), "{node}-{lab}".into()]);
        let got = command(&mut sink, &c, Span::default(), "`cmd`", V);
        assert_eq!(got, Command::Argv(vec!["ping".into(), "r1-ring".into()]));
    }

    #[test]
    fn one_string_shared_by_many_nodes_is_reported_once() {
        let mut sink = Sink::default();
        for node in ["a", "b", "c"] {
            let v = Vars { node, lab: "x" };
            expand(&mut sink, "{nod}", Span::new(3, 4, 5), "`cmd`", v);
        }
        assert_eq!(sink.diagnostics.len(), 1);
    }
}
