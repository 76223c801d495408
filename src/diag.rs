//! Located diagnostics: every problem in a topology file is reported with its position,
//! what is wrong and a hint, and all of them are reported together.

use std::fmt;

use crate::model::names::is_hidden;

/// A position in the topology source. Lines and columns are 1-based, as editors show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    pub line: u32,
    pub col: u32,
    /// Length in characters of the underlined token (at least 1 when rendered).
    pub len: u32,
}

impl Span {
    pub fn new(line: u32, col: u32, len: u32) -> Self {
        Span { line, col, len }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found while compiling a topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub span: Option<Span>,
    pub hint: Option<String>,
    /// Secondary positions ("first defined here").
    pub notes: Vec<(Span, String)>,
}

impl Diagnostic {
    pub fn error(span: Option<Span>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span,
            hint: None,
            notes: Vec::new(),
        }
    }

    pub fn warning(span: Option<Span>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(span, message)
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_note(mut self, span: Span, note: impl Into<String>) -> Self {
        self.notes.push((span, note.into()));
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic rustc-style, with the offending source line underlined.
    pub fn render(&self, file: &str, source: &str) -> String {
        let lines: Vec<&str> = source_lines(source).collect();
        self.render_lines(file, &lines)
    }

    /// The same, from the source already split into lines: a report splits its source
    /// once for all its diagnostics (split again for each, 20,000 errors in a file of as
    /// many lines took minutes, so a hostile file could hold `validate` up for hours).
    pub fn render_lines(&self, file: &str, lines: &[&str]) -> String {
        let mut out = String::new();
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!("{label}: {}\n", shown(&self.message)));
        // One gutter width for the whole diagnostic, as wide as its largest line number.
        let width = self
            .span
            .iter()
            .chain(self.notes.iter().map(|(s, _)| s))
            .map(|s| s.line.to_string().len())
            .max()
            .unwrap_or(1);
        let pad = " ".repeat(width);
        match self.span {
            Some(span) => render_snippet(&mut out, &pad, file, lines, span, None),
            None => out.push_str(&format!("{pad}--> {file}\n")),
        }
        for (span, note) in &self.notes {
            render_snippet(&mut out, &pad, file, lines, *span, Some(&shown(note)));
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("{pad} = hint: {}\n", shown(hint)));
        }
        out
    }
}

/// `text` with every control or format character but a line break or tab written as
/// `\u{202e}`: a message quoting what the file says (an unknown name, say) must not let
/// a bidi override or a zero-width character change what the terminal shows.
fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_hidden(c) && c != '\n' && c != '\t' {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

fn render_snippet(
    out: &mut String,
    pad: &str,
    file: &str,
    lines: &[&str],
    span: Span,
    note: Option<&str>,
) {
    out.push_str(&format!("{pad}--> {file}:{}:{}\n", span.line, span.col));
    let Some(text) = lines.get(span.line.saturating_sub(1) as usize) else {
        return;
    };
    // Long lines (minified or generated YAML) are clipped so a diagnostic stays readable.
    // A hidden character shows as U+FFFD, one column, so the caret stays under its text.
    let text: String = text
        .chars()
        .take(200)
        .map(|c| {
            if is_hidden(c) && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect();
    let num = format!("{:>w$}", span.line, w = pad.len());
    out.push_str(&format!("{pad} |\n{num} | {text}\n"));
    let col = span.col.saturating_sub(1) as usize;
    let len = span.len.max(1) as usize;
    let width = text.chars().count();
    let len = len.min(width.saturating_sub(col).max(1));
    out.push_str(&format!(
        "{pad} | {}{}{}\n",
        " ".repeat(col.min(width)),
        "^".repeat(len),
        note.map(|n| format!(" {n}")).unwrap_or_default()
    ));
}

/// The source's lines as YAML counts them (`\r\n`, `\r` and `\n` each end one), so
/// the line a parser position names is the line shown for it. An empty source has one
/// empty line, and so has the end of a source with a final line break.
pub fn source_lines(source: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(source);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.find(['\r', '\n']) {
            Some(i) => {
                let end = if text[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&text[i + end..]);
                Some(&text[..i])
            }
            None => rest.take(),
        }
    })
}

/// Every diagnostic of one compilation, with the source they point into.
#[derive(Debug, Clone)]
pub struct Report {
    pub file: String,
    pub source: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| !d.is_error())
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// Renders diagnostics of one severity class, followed by a count line for errors.
    pub fn render(&self, which: Severity) -> String {
        let mut out = String::new();
        let mut n = 0;
        let lines: Vec<&str> = source_lines(&self.source).collect();
        for d in self.diagnostics.iter().filter(|d| d.severity == which) {
            out.push_str(&d.render_lines(&self.file, &lines));
            out.push('\n');
            n += 1;
        }
        if which == Severity::Error && n > 0 {
            let plural = if n == 1 { "" } else { "s" };
            out.push_str(&format!("{}: {n} error{plural}\n", self.file));
        }
        out
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(Severity::Error))
    }
}

/// Collects diagnostics while a layer keeps going, so one run reports every problem.
#[derive(Debug, Default)]
pub struct Sink {
    pub diagnostics: Vec<Diagnostic>,
}

impl Sink {
    pub fn push(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    pub fn error(&mut self, span: Option<Span>, message: impl Into<String>) -> &mut Diagnostic {
        self.diagnostics.push(Diagnostic::error(span, message));
        self.diagnostics.last_mut().expect("just pushed")
    }

    pub fn warning(&mut self, span: Option<Span>, message: impl Into<String>) -> &mut Diagnostic {
        self.diagnostics.push(Diagnostic::warning(span, message));
        self.diagnostics.last_mut().expect("just pushed")
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

impl Diagnostic {
    /// Builder-style hint for diagnostics already pushed into a [`Sink`].
    pub fn hint(&mut self, hint: impl Into<String>) -> &mut Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn note(&mut self, span: Span, note: impl Into<String>) -> &mut Self {
        self.notes.push((span, note.into()));
        self
    }
}

/// The longest word (in bytes) [`did_you_mean`] compares: names are shorter, and the
/// comparison takes time and memory in the product of two lengths, so a file naming a
/// node with 100 KB, once per link, held `validate` for minutes (two such names would
/// have asked for 80 GB).
const MAX_SUGGESTED: usize = 256;

/// The closest candidate to `word`, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    if word.len() > MAX_SUGGESTED {
        return None;
    }
    let chars = word.chars().count();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let limit = (c.len().max(word.len()) / 3).max(1);
        // The distance is at least the difference in length: a candidate that far off is
        // no suggestion, and its table is never made.
        if c.len() > MAX_SUGGESTED || chars.abs_diff(c.chars().count()) > limit {
            continue;
        }
        let d = edit_distance(word, c);
        // Ties go to the alphabetically first candidate, whatever the iteration order.
        if d <= limit && best.is_none_or(|(bd, bc)| (d, c) < (bd, bc)) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Optimal-string-alignment distance: edits plus adjacent swaps ("rotues" -> "routes").
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_end_as_yaml_ends_them() {
        let lines = |s| source_lines(s).collect::<Vec<_>>();
        assert_eq!(lines("a\r\nb\rc\nd"), vec!["a", "b", "c", "d"]);
        assert_eq!(lines(""), vec![""]);
        assert_eq!(lines("x\n"), vec!["x", ""]);
    }

    /// A hostile file can hold an error on each of its lines (a bridge with 20,000
    /// members and no room for them): the report splits its source once, not once per
    /// error, so rendering them all is linear. Split per error, this took minutes.
    #[test]
    fn a_report_of_many_errors_renders_each_at_its_line() {
        let n = 20_000;
        let source: String = (1..=n).map(|i| format!("  - [r{i}:e0, s1]\n")).collect();
        let diagnostics = (1..=n)
            .map(|i| Diagnostic::error(Some(Span::new(i, 6, 7)), format!("no room for r{i}")))
            .collect();
        let r = Report {
            file: "big.yaml".into(),
            source,
            diagnostics,
        };
        let text = r.render(Severity::Error);
        assert!(
            text.ends_with(&format!("big.yaml: {n} errors\n")),
            "{}",
            &text[text.len() - 200..]
        );
        for i in [1, 777, n] {
            assert!(
                text.contains(&format!("{i} |   - [r{i}:e0, s1]\n")),
                "line {i}"
            );
        }
        assert_eq!(text.matches(" --> big.yaml:").count(), n as usize);
    }

    /// A hostile file's unknown names may be huge: they are suggested nothing, at once,
    /// and a candidate far longer or shorter than the word costs no comparison.
    #[test]
    fn a_huge_unknown_name_gets_no_suggestion_and_no_comparison() {
        let huge = "x".repeat(100_000);
        let names: Vec<String> = (0..5_000).map(|i| format!("r{i}")).collect();
        for _ in 0..20 {
            assert_eq!(did_you_mean(&huge, names.iter().map(String::as_str)), None);
        }
        let near = format!("{huge}y");
        assert_eq!(did_you_mean(&huge, [near.as_str()]), None);
        assert_eq!(
            did_you_mean("r12x", names.iter().map(String::as_str)),
            Some("r12")
        );
    }

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["nodes", "links", "bridges", "addressing"];
        assert_eq!(did_you_mean("nodse", keys), Some("nodes"));
        assert_eq!(did_you_mean("adressing", keys), Some("addressing"));
        assert_eq!(did_you_mean("zebra", keys), None);
    }

    #[test]
    fn hidden_characters_in_messages_and_lines_are_shown_not_obeyed() {
        let d = Diagnostic::error(Some(Span::new(1, 8, 5)), "unknown node `x\u{202e}y`")
            .with_hint("try `a\u{200d}b`");
        let r = d.render("f.yaml", "links: [x\u{202e}yz, a]");
        assert!(r.contains("unknown node `x\\u{202e}y`"), "{r}");
        assert!(r.contains("try `a\\u{200d}b`"), "{r}");
        assert!(r.contains("links: [x\u{fffd}yz, a]"), "{r}");
        assert!(!r.contains('\u{202e}') && !r.contains('\u{200d}'), "{r}");
    }

    #[test]
    fn renders_position_and_caret() {
        let src = "name: x\nnodes:\n  r1: { knd: frr }\n";
        let d = Diagnostic::error(Some(Span::new(3, 9, 3)), "unknown key `knd`")
            .with_hint("did you mean `kind`?");
        let text = d.render("lab.yaml", src);
        assert!(text.contains("error: unknown key `knd`"));
        assert!(text.contains(" --> lab.yaml:3:9"));
        assert!(text.contains("3 |   r1: { knd: frr }"));
        assert!(text.contains("  |         ^^^\n"));
        assert!(text.contains("  = hint:"));
        assert!(text.contains("= hint: did you mean `kind`?"));
    }
}
