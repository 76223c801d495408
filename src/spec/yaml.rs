//! A located YAML tree. Every value keeps its line and column so later layers can point at
//! it. Parsing is bounded: file size, nesting depth and alias expansion all have hard limits,
//! so hostile input ("billion laughs", deep nesting, huge files) fails fast with an error.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as YSpan};

use crate::diag::{Diagnostic, Span};

/// The largest topology file, and the largest of any file nslab reads because a shared
/// file or an argument names it (`expect_json_file`, a lab argument).
pub const MAX_BYTES: usize = 64 << 20;

/// Reads `r` to its end if that is at most `max` bytes; `None` once it is larger, without
/// reading further: a path may name `/dev/zero`, and a size from `stat` says nothing
/// there.
pub fn read_at_most(r: impl std::io::Read, max: usize) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    r.take(max as u64 + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() <= max).then_some(bytes))
}

/// Opens `path` for reading only if it is a regular file, and opens nothing else: a FIFO
/// blocks the open (or the read) for ever, and opening a device runs its driver's open
/// as root (`/dev/watchdog` arms the machine's watchdog, which reboots it unless fed; a
/// tape device rewinds on close). The path is looked up once with `O_PATH`, which opens
/// no file, and the file is reopened through that descriptor, so it cannot be swapped
/// for another in between.
pub fn open_regular(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let pinned = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(path)?;
    if !pinned.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    std::fs::File::open(format!("/proc/self/fd/{}", pinned.as_raw_fd()))
}

/// Hard limits on what one topology file may contain.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_depth: usize,
    /// Values in the tree after aliases are expanded; a scalar counts once per 64 bytes
    /// started, so long strings repeated through aliases are bounded too.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: MAX_BYTES,
            max_depth: 64,
            max_nodes: 2_000_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    /// A scalar; `plain` is false for quoted and block scalars, which are always strings.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Yaml>),
    Map(Vec<(Yaml, Yaml)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Yaml {
    pub kind: Kind,
    pub span: Span,
}

impl Yaml {
    /// The scalar text, for plain and quoted scalars alike.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, Kind::Null)
    }

    /// A short name of the value's type, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Null => "nothing (null)",
            Kind::Scalar { .. } => "a scalar",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    /// Converts to JSON using the YAML 1.2 core schema for plain scalars.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Scalar { text, plain: false } => Value::String(text.clone()),
            Kind::Scalar { text, plain: true } => plain_scalar_to_json(text),
            Kind::Seq(items) => Value::Array(items.iter().map(Yaml::to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

fn plain_scalar_to_json(text: &str) -> serde_json::Value {
    use serde_json::Value;
    match text {
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(f) = text.parse::<f64>()
        && f.is_finite()
        && text.chars().any(|c| c.is_ascii_digit())
    {
        return Value::from(f);
    }
    Value::String(text.to_string())
}

/// An event's position. A value the parser makes up at the end of input (the empty key
/// of a `?` on the last lines of a file without a final newline) is placed on the line
/// after the last; it is kept at the end of the last line, where a snippet can show it.
fn span_of(s: &YSpan, end: (u32, u32)) -> Span {
    let len = if s.end.line() == s.start.line() {
        s.end.col().saturating_sub(s.start.col())
    } else {
        1
    };
    let span = Span::new(s.start.line() as u32, s.start.col() as u32 + 1, len as u32);
    if (span.line, span.col) > end {
        return Span::new(end.0, end.1, 1);
    }
    span
}

/// The position just past the source's last character: (line, column), 1-based.
fn end_of(source: &str) -> (u32, u32) {
    let (mut lines, mut last) = (0, "");
    for l in crate::diag::source_lines(source) {
        lines += 1;
        last = l;
    }
    (lines, last.chars().count() as u32 + 1)
}

/// A parse error's position, kept inside the source: at the end of input the parser
/// reports the line after the last one (a file without a final newline), where no editor
/// can go and no snippet can be shown; that is the end of the last line.
fn inside(source: &str, line: usize, col: usize) -> Span {
    let lines: Vec<&str> = crate::diag::source_lines(source).collect();
    let (line, col) = match lines.get(line.wrapping_sub(1)) {
        Some(text) => (line, col.clamp(1, text.chars().count() + 1)),
        None => {
            let last = lines.last().map_or(0, |l| l.chars().count());
            (lines.len(), last + 1)
        }
    };
    Span::new(line as u32, col as u32, 1)
}

enum Frame {
    Seq {
        span: Span,
        anchor: usize,
        items: Vec<Yaml>,
    },
    Map {
        span: Span,
        anchor: usize,
        entries: Vec<(Yaml, Yaml)>,
        key: Option<Yaml>,
        /// Key positions, built once a mapping is large enough for linear search to hurt
        /// (the `nodes:` of a 10,000-node lab).
        index: Option<HashMap<String, usize>>,
    },
}

/// Parses one YAML document into a located tree, or returns the diagnostics that stop it.
pub fn parse(source: &str, limits: Limits) -> Result<Yaml, Vec<Diagnostic>> {
    if source.len() > limits.max_bytes {
        return Err(vec![
            Diagnostic::error(
                None,
                format!(
                    "the file is {} bytes, over the limit of {} bytes",
                    source.len(),
                    limits.max_bytes
                ),
            )
            .with_hint("split the lab or generate a smaller one"),
        ]);
    }
    let mut b = Builder {
        limits,
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        root: None,
        docs: 0,
        diags: Vec::new(),
    };
    let end = end_of(source);
    let mut parser = Parser::new_from_str(source);
    while let Some(ev) = parser.next_event() {
        match ev {
            Ok((ev, span)) => {
                if let Err(d) = b.event(ev, span_of(&span, end)) {
                    return Err(vec![d]);
                }
            }
            Err(e) => {
                let m = e.marker();
                return Err(vec![
                    Diagnostic::error(
                        Some(inside(source, m.line(), m.col() + 1)),
                        format!("malformed YAML: {}", e.info()),
                    )
                    .with_hint("check the indentation and quoting around this position"),
                ]);
            }
        }
    }
    if !b.diags.is_empty() {
        return Err(b.diags);
    }
    match b.root {
        Some(root) if !root.is_null() => Ok(root),
        _ => Err(vec![
            Diagnostic::error(Some(Span::new(1, 1, 1)), "the topology file is empty")
                .with_hint("a topology needs at least `name:` and `nodes:`"),
        ]),
    }
}

struct Builder {
    limits: Limits,
    stack: Vec<Frame>,
    /// Anchored values with their depth (levels below them) for alias expansion.
    anchors: HashMap<usize, (Yaml, usize, usize)>,
    nodes: usize,
    root: Option<Yaml>,
    docs: usize,
    /// Non-fatal problems (duplicate keys) found while building.
    diags: Vec<Diagnostic>,
}

impl Builder {
    /// Builds the tree one parser event at a time, counting and bounding as it goes.
    fn event(&mut self, ev: Event<'_>, span: Span) -> Result<(), Diagnostic> {
        match ev {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => Ok(()),
            Event::DocumentStart(_) => self.document_start(span),
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = style == ScalarStyle::Plain;
                let kind = if plain && matches!(text.as_ref(), "" | "~" | "null" | "Null" | "NULL")
                {
                    Kind::Null
                } else {
                    Kind::Scalar {
                        text: text.into_owned(),
                        plain,
                    }
                };
                self.count(scalar_units(&kind), span)?;
                self.finish_value(Yaml { kind, span }, anchor, 0)
            }
            Event::SequenceStart(anchor, _) => {
                self.open(span)?;
                self.stack.push(Frame::Seq {
                    span,
                    anchor,
                    items: Vec::new(),
                });
                Ok(())
            }
            Event::MappingStart(anchor, _) => {
                self.open(span)?;
                self.stack.push(Frame::Map {
                    span,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                    index: None,
                });
                Ok(())
            }
            Event::SequenceEnd => self.sequence_end(span),
            Event::MappingEnd => self.mapping_end(span),
            Event::Alias(id) => self.alias(id, span),
        }
    }

    /// A topology file is one document: a second `---` is refused.
    fn document_start(&mut self, span: Span) -> Result<(), Diagnostic> {
        self.docs += 1;
        if self.docs > 1 {
            return Err(Diagnostic::error(
                Some(span),
                "the file holds more than one YAML document",
            )
            .with_hint("a topology file is a single document; remove the extra `---`"));
        }
        Ok(())
    }

    fn sequence_end(&mut self, span: Span) -> Result<(), Diagnostic> {
        match self.stack.pop() {
            Some(Frame::Seq {
                span,
                anchor,
                items,
            }) => {
                let depth = 1 + items.iter().map(depth_of).max().unwrap_or(0);
                self.finish_value(
                    Yaml {
                        kind: Kind::Seq(items),
                        span,
                    },
                    anchor,
                    depth,
                )
            }
            _ => Err(Diagnostic::error(
                Some(span),
                "malformed YAML: unbalanced sequence",
            )),
        }
    }

    fn mapping_end(&mut self, span: Span) -> Result<(), Diagnostic> {
        match self.stack.pop() {
            Some(Frame::Map {
                span,
                anchor,
                entries,
                ..
            }) => {
                let entries = self.merge_keys(entries);
                let depth = 1 + entries.iter().map(|(_, v)| depth_of(v)).max().unwrap_or(0);
                self.finish_value(
                    Yaml {
                        kind: Kind::Map(entries),
                        span,
                    },
                    anchor,
                    depth,
                )
            }
            _ => Err(Diagnostic::error(
                Some(span),
                "malformed YAML: unbalanced mapping",
            )),
        }
    }

    /// An alias is a copy of its anchor's value, bounded like the rest: its depth below
    /// the current level and its size are checked before it is cloned.
    fn alias(&mut self, id: usize, span: Span) -> Result<(), Diagnostic> {
        let Some((_, size, depth)) = self.anchors.get(&id) else {
            return Err(Diagnostic::error(Some(span), "alias to an unknown anchor"));
        };
        let (size, depth) = (*size, *depth);
        if self.stack.len() + depth > self.limits.max_depth {
            return Err(self.too_deep(span));
        }
        // Count before cloning, so an alias bomb stops before it allocates.
        let mut value = {
            self.count(size, span)?;
            self.anchors[&id].0.clone()
        };
        value.span = span;
        self.attach(value)
    }

    fn open(&mut self, span: Span) -> Result<(), Diagnostic> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(self.too_deep(span));
        }
        self.count(1, span)
    }

    fn too_deep(&self, span: Span) -> Diagnostic {
        Diagnostic::error(
            Some(span),
            format!("YAML nested deeper than {} levels", self.limits.max_depth),
        )
        .with_hint("a topology never needs this much nesting; is the file generated wrongly?")
    }

    fn count(&mut self, n: usize, span: Span) -> Result<(), Diagnostic> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > self.limits.max_nodes {
            return Err(Diagnostic::error(
                Some(span),
                format!(
                    "the document expands to more than {} values",
                    self.limits.max_nodes
                ),
            )
            .with_hint(
                "aliases (`*name`) that repeat each other grow exponentially; expand them less",
            ));
        }
        Ok(())
    }

    fn finish_value(&mut self, value: Yaml, anchor: usize, depth: usize) -> Result<(), Diagnostic> {
        if anchor != 0 {
            let size = size_of(&value);
            self.anchors.insert(anchor, (value.clone(), size, depth));
        }
        self.attach(value)
    }

    fn attach(&mut self, value: Yaml) -> Result<(), Diagnostic> {
        match self.stack.last_mut() {
            None => {
                self.root = Some(value);
                Ok(())
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(value);
                Ok(())
            }
            Some(Frame::Map {
                entries,
                key,
                index,
                ..
            }) => match key.take() {
                None => {
                    if !matches!(value.kind, Kind::Scalar { .. } | Kind::Null) {
                        return Err(Diagnostic::error(
                            Some(value.span),
                            "a mapping key must be a plain value, not a list or mapping",
                        ));
                    }
                    *key = Some(value);
                    Ok(())
                }
                Some(k) => {
                    let name = k.as_str().unwrap_or("");
                    if index.is_none() && entries.len() >= 16 {
                        let built = entries
                            .iter()
                            .enumerate()
                            .rev()
                            .map(|(i, (e, _))| (e.as_str().unwrap_or("").to_string(), i))
                            .collect();
                        *index = Some(built);
                    }
                    let dup = match index {
                        Some(ix) => ix.get(name).copied(),
                        None => entries.iter().position(|(e, _)| e.as_str() == Some(name)),
                    };
                    if let Some(ix) = index {
                        ix.entry(name.to_string()).or_insert(entries.len());
                    }
                    if name != "<<"
                        && let Some(first) = dup
                    {
                        let first = entries[first].0.span;
                        self.diags.push(
                            Diagnostic::error(Some(k.span), format!("duplicate key `{name}`"))
                                .with_note(first, "first defined here")
                                .with_hint("each key may appear once in a mapping; merge or rename the entries"),
                        );
                    }
                    entries.push((k, value));
                    Ok(())
                }
            },
        }
    }

    /// Applies YAML merge keys (`<<: *base`): merged keys fill in what the mapping lacks.
    fn merge_keys(&mut self, entries: Vec<(Yaml, Yaml)>) -> Vec<(Yaml, Yaml)> {
        if !entries.iter().any(|(k, _)| is_merge_key(k)) {
            return entries;
        }
        let (merges, mut own): (Vec<_>, Vec<_>) =
            entries.into_iter().partition(|(k, _)| is_merge_key(k));
        for (k, v) in merges {
            let sources = match v.kind {
                Kind::Map(_) => vec![v],
                Kind::Seq(items) => items,
                _ => {
                    self.diags.push(Diagnostic::error(
                        Some(k.span),
                        "a merge key `<<` takes a mapping or a list of mappings",
                    ));
                    continue;
                }
            };
            for src in sources {
                let Kind::Map(src_entries) = src.kind else {
                    self.diags.push(Diagnostic::error(
                        Some(src.span),
                        "a merge key `<<` takes a mapping or a list of mappings",
                    ));
                    continue;
                };
                for (sk, sv) in src_entries {
                    if !own.iter().any(|(ok, _)| ok.as_str() == sk.as_str()) {
                        own.push((sk, sv));
                    }
                }
            }
        }
        own
    }
}

fn is_merge_key(k: &Yaml) -> bool {
    matches!(&k.kind, Kind::Scalar { text, plain: true } if text == "<<")
}

fn scalar_units(kind: &Kind) -> usize {
    match kind {
        Kind::Scalar { text, .. } => 1 + text.len() / 64,
        _ => 1,
    }
}

fn size_of(y: &Yaml) -> usize {
    match &y.kind {
        Kind::Null | Kind::Scalar { .. } => scalar_units(&y.kind),
        Kind::Seq(items) => 1 + items.iter().map(size_of).sum::<usize>(),
        Kind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| size_of(k) + size_of(v))
                .sum::<usize>()
        }
    }
}

fn depth_of(y: &Yaml) -> usize {
    match &y.kind {
        Kind::Null | Kind::Scalar { .. } => 0,
        Kind::Seq(items) => 1 + items.iter().map(depth_of).max().unwrap_or(0),
        Kind::Map(entries) => 1 + entries.iter().map(|(_, v)| depth_of(v)).max().unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Yaml, Vec<Diagnostic>> {
        parse(s, Limits::default())
    }

    #[test]
    fn keeps_positions() {
        let y = p("name: lab\nnodes:\n  r1: {}\n").unwrap();
        let Kind::Map(entries) = &y.kind else {
            panic!()
        };
        assert_eq!(entries[1].0.span, Span::new(2, 1, 5));
        let Kind::Map(nodes) = &entries[1].1.kind else {
            panic!()
        };
        assert_eq!(nodes[0].0.span.line, 3);
        assert_eq!(nodes[0].0.span.col, 3);
    }

    #[test]
    fn malformed_yaml_is_located() {
        let e = p("name: lab\nnodes: [a, b\n").unwrap_err();
        assert!(e[0].message.starts_with("malformed YAML"));
        assert!(e[0].span.is_some());
    }

    #[test]
    fn billion_laughs_fails_fast() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            s.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n",
                p = i - 1
            ));
        }
        let t = std::time::Instant::now();
        let e = p(&s).unwrap_err();
        assert!(e[0].message.contains("expands to more than"), "{:?}", e[0]);
        assert!(t.elapsed().as_secs() < 5);
    }

    #[test]
    fn deep_nesting_fails() {
        let s = "[".repeat(100) + &"]".repeat(100);
        let e = p(&s).unwrap_err();
        assert!(e[0].message.contains("nested deeper") || e[0].message.contains("malformed"));
        let mut s = String::new();
        for i in 0..100 {
            s.push_str(&" ".repeat(i * 2));
            s.push_str("a:\n");
        }
        let e = p(&s).unwrap_err();
        assert!(e[0].message.contains("nested deeper"), "{:?}", e[0]);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = p("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e[0].message, "duplicate key `a`");
        assert_eq!(e[0].span.unwrap().line, 3);
        assert_eq!(e[0].notes[0].0.line, 1);
    }

    #[test]
    fn merge_keys_fill_in() {
        let y = p("base: &b { x: 1, y: 2 }\nthing: { <<: *b, y: 3 }\n").unwrap();
        let Kind::Map(e) = &y.kind else { panic!() };
        let Kind::Map(thing) = &e[1].1.kind else {
            panic!()
        };
        let got: Vec<_> = thing
            .iter()
            .map(|(k, v)| (k.as_str().unwrap(), v.as_str().unwrap()))
            .collect();
        assert_eq!(got, vec![("y", "3"), ("x", "1")]);
    }

    #[test]
    fn empty_and_multi_document() {
        assert!(p("").unwrap_err()[0].message.contains("empty"));
        assert!(
            p("a: 1\n---\nb: 2\n").unwrap_err()[0]
                .message
                .contains("more than one")
        );
    }

    #[test]
    fn json_conversion_uses_core_schema() {
        let y = p("{a: 1, b: '1', c: true, d: ~, e: 1.5, f: [x]}").unwrap();
        assert_eq!(
            y.to_json(),
            serde_json::json!({"a": 1, "b": "1", "c": true, "d": null, "e": 1.5, "f": ["x"]})
        );
    }
}
