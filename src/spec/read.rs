//! Small readers from the located YAML tree into typed values. Each pushes a located
//! diagnostic and returns `None` on a bad value, so reading goes on and every problem in the
//! file is reported in one run.

use crate::diag::{Sink, Span, did_you_mean};
use crate::spec::raw::Sp;
use crate::spec::yaml::{Kind, Yaml};

/// The entries of a mapping whose keys were checked against the known set.
pub struct Fields<'y> {
    entries: &'y [(Yaml, Yaml)],
    pub span: Span,
}

impl<'y> Fields<'y> {
    pub fn get(&self, key: &str) -> Option<&'y Yaml> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The value, unless it is absent or null (`key:` with nothing after it).
    pub fn value(&self, key: &str) -> Option<&'y Yaml> {
        self.get(key).filter(|v| !v.is_null())
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The position of a key, for messages about the entry as a whole.
    pub fn key_span(&self, key: &str) -> Option<Span> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, _)| k.span)
    }
}

#[cfg(test)]
thread_local! {
    /// Every key set `fields` was given on this thread, with its `what`: the test that
    /// the README documents every key reads what the reader accepts from here.
    pub static KNOWN_SEEN: std::cell::RefCell<Vec<(String, Vec<String>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads a mapping whose keys must all be in `known`. `what` names it in messages, like
/// "node `r1`". A null value reads as an empty mapping.
pub fn fields<'y>(sink: &mut Sink, y: &'y Yaml, what: &str, known: &[&str]) -> Option<Fields<'y>> {
    #[cfg(test)]
    KNOWN_SEEN.with(|seen| {
        let known = known.iter().map(|k| k.to_string()).collect();
        seen.borrow_mut().push((what.to_string(), known));
    });
    let entries: &[(Yaml, Yaml)] = match &y.kind {
        Kind::Map(entries) => entries,
        Kind::Null => &[],
        _ => {
            sink.error(
                Some(y.span),
                format!("{what} must be a mapping, found {}", y.type_name()),
            )
            .hint(format!(
                "write it as `key: value` pairs; valid keys: {}",
                known.join(", ")
            ));
            return None;
        }
    };
    for (k, _) in entries {
        let key = k.as_str().unwrap_or("~");
        if !known.contains(&key) {
            let d = sink.error(Some(k.span), format!("unknown key `{key}` in {what}"));
            match did_you_mean(key, known.iter().copied()) {
                Some(s) => d.hint(format!("did you mean `{s}`?")),
                None => d.hint(format!("valid keys: {}", known.join(", "))),
            };
        }
    }
    Some(Fields {
        entries,
        span: y.span,
    })
}

/// The entries of a mapping with free-form keys (node names, labels, sysctls).
pub fn entries<'y>(sink: &mut Sink, y: &'y Yaml, what: &str) -> &'y [(Yaml, Yaml)] {
    match &y.kind {
        Kind::Map(entries) => entries,
        Kind::Null => &[],
        _ => {
            sink.error(
                Some(y.span),
                format!("{what} must be a mapping, found {}", y.type_name()),
            )
            .hint(match y.kind {
                Kind::Seq(_) => {
                    "key each entry by its name instead of listing it: \
                                 `NAME: { ... }` lines, without `- `, or `{ NAME: { ... } }`"
                }
                _ => "write it as `NAME: value` pairs, one per line, or `{ NAME: value }`",
            });
            &[]
        }
    }
}

/// The items of a list; null reads as empty.
pub fn list<'y>(sink: &mut Sink, y: &'y Yaml, what: &str) -> &'y [Yaml] {
    match &y.kind {
        Kind::Seq(items) => items,
        Kind::Null => &[],
        _ => {
            sink.error(
                Some(y.span),
                format!("{what} must be a list, found {}", y.type_name()),
            )
            .hint("write it as `[a, b]` or as lines starting with `- `");
            &[]
        }
    }
}

/// A single value or a list of them, as the same slice.
pub fn one_or_many(y: &Yaml) -> &[Yaml] {
    match &y.kind {
        Kind::Seq(items) => items,
        Kind::Null => &[],
        _ => std::slice::from_ref(y),
    }
}

pub fn string(sink: &mut Sink, y: &Yaml, what: &str) -> Option<Sp<String>> {
    match &y.kind {
        Kind::Scalar { text, .. } => Some(Sp::new(text.clone(), y.span)),
        _ => {
            sink.error(
                Some(y.span),
                format!("{what} must be a single value, found {}", y.type_name()),
            )
            .hint("write one value; quote it (\"...\") when it holds `: `, `{`, `[` or starts with `- `");
            None
        }
    }
}

/// A key of a free-form mapping, as a located string.
pub fn key(y: &Yaml) -> Sp<String> {
    Sp::new(y.as_str().unwrap_or("~").to_string(), y.span)
}

/// A scalar parsed by `parse`, whose error message is located at the value.
pub fn parsed<T>(
    sink: &mut Sink,
    y: &Yaml,
    what: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<Sp<T>> {
    let s = string(sink, y, what)?;
    match parse(&s.value) {
        Ok(v) => Some(Sp::new(v, s.span)),
        Err(msg) => {
            sink.error(Some(s.span), format!("invalid {what}: {msg}"));
            None
        }
    }
}

pub fn boolean(sink: &mut Sink, y: &Yaml, what: &str) -> Option<bool> {
    parsed(sink, y, what, |s| match s {
        "true" | "yes" | "on" => Ok(true),
        "false" | "no" | "off" => Ok(false),
        _ => Err(format!("`{s}` is not true or false")),
    })
    .map(|b| b.value)
}

/// An integer within `min..=max`.
pub fn int(sink: &mut Sink, y: &Yaml, what: &str, min: i64, max: i64) -> Option<Sp<i64>> {
    parsed(sink, y, what, |s| {
        let v: i64 = s
            .parse()
            .map_err(|_| format!("`{s}` is not a whole number"))?;
        if v < min || v > max {
            return Err(format!("{v} is not between {min} and {max}"));
        }
        Ok(v)
    })
}

/// A mapping of names to scalar values (labels, sysctls, env), in written order.
pub fn string_map(sink: &mut Sink, y: &Yaml, what: &str) -> Vec<(Sp<String>, Sp<String>)> {
    let mut out = Vec::new();
    for (k, v) in entries(sink, y, what) {
        let key = key(k);
        let value = match &v.kind {
            Kind::Null => Some(Sp::new(String::new(), v.span)),
            _ => string(sink, v, &format!("`{}` in {what}", key.value)),
        };
        if let Some(value) = value {
            out.push((key, value));
        }
    }
    out
}

/// A list of located strings; a single string counts as a list of one.
pub fn strings(sink: &mut Sink, y: &Yaml, what: &str) -> Vec<Sp<String>> {
    one_or_many(y)
        .iter()
        .filter_map(|item| string(sink, item, what))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::yaml::{Limits, parse};

    #[test]
    fn unknown_keys_get_a_suggestion_each() {
        let y = parse("{kind: a, lables: {}, zzz: 1}", Limits::default()).unwrap();
        let mut sink = Sink::default();
        let f = fields(&mut sink, &y, "node `r1`", &["kind", "labels"]).unwrap();
        assert!(f.has("kind"));
        assert_eq!(sink.diagnostics.len(), 2);
        assert_eq!(
            sink.diagnostics[0].message,
            "unknown key `lables` in node `r1`"
        );
        assert_eq!(
            sink.diagnostics[0].hint.as_deref(),
            Some("did you mean `labels`?")
        );
        assert!(
            sink.diagnostics[1]
                .hint
                .as_deref()
                .unwrap()
                .contains("valid keys")
        );
    }

    #[test]
    fn bad_values_are_located() {
        let y = parse("mtu: big\n", Limits::default()).unwrap();
        let Kind::Map(e) = &y.kind else { panic!() };
        let mut sink = Sink::default();
        assert!(int(&mut sink, &e[0].1, "`mtu`", 68, 65535).is_none());
        let d = &sink.diagnostics[0];
        assert_eq!(d.span.unwrap().col, 6);
        assert!(d.message.contains("not a whole number"));
    }
}
