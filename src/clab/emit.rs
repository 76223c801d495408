//! `nslab import`'s output: the nslab document as YAML text, written by serde_yaml, with
//! every warning of the conversion as a comment above the node or link it is about (or
//! at the top, for what the whole file or an inherited level sets).

use crate::diag::{Diagnostic, Report};
use crate::spec::yaml::{Kind, Yaml};

/// Renders `doc` (nslab's language) with `report`'s warnings as comments.
pub fn render(doc: &Yaml, report: &Report) -> Result<String, serde_yaml::Error> {
    let Kind::Map(top) = &doc.kind else {
        return Ok(String::new());
    };
    // The lines where entries start: a warning belongs to the last entry at or above it.
    let mut starts: Vec<u32> = Vec::new();
    for (k, v) in top {
        if let (Some("nodes" | "bridges"), Kind::Map(entries)) = (k.as_str(), &v.kind) {
            starts.extend(entries.iter().map(|(k, _)| k.span.line));
        }
        if let (Some("links"), Kind::Seq(items)) = (k.as_str(), &v.kind) {
            starts.extend(items.iter().map(|i| i.span.line));
        }
    }
    starts.sort_unstable();
    let owner = |d: &Diagnostic| {
        let line = d.span.map_or(0, |s| s.line);
        starts.iter().rev().find(|s| **s <= line).copied()
    };
    let notes = |line: Option<u32>, indent: &str| -> String {
        report
            .diagnostics
            .iter()
            .filter(|d| owner(d) == line)
            .map(|d| format!("{indent}# {}\n", comment(d, &report.file)))
            .collect()
    };
    let mut out = format!(
        "# nslab topology imported from the containerlab file {}\n",
        report.file
    );
    out += &notes(None, "");
    for (k, v) in top {
        let key = k.as_str().unwrap_or_default();
        match (&v.kind, key) {
            (Kind::Map(entries), "nodes" | "bridges") => {
                out += &format!("{key}:\n");
                for (ek, ev) in entries {
                    out += &notes(Some(ek.span.line), "  ");
                    let one =
                        serde_yaml::Value::Mapping([(value(ek), value(ev))].into_iter().collect());
                    out += &indent(&serde_yaml::to_string(&one)?);
                }
            }
            (Kind::Seq(items), "links") => {
                out += "links:\n";
                for item in items {
                    out += &notes(Some(item.span.line), "  ");
                    let one = serde_yaml::Value::Sequence(vec![value(item)]);
                    out += &indent(&serde_yaml::to_string(&one)?);
                }
            }
            _ => {
                let one = serde_yaml::Value::Mapping([(value(k), value(v))].into_iter().collect());
                out += &serde_yaml::to_string(&one)?;
            }
        }
    }
    Ok(out)
}

fn comment(d: &Diagnostic, file: &str) -> String {
    let at = d
        .span
        .map(|s| format!("{file}:{}:{}: ", s.line, s.col))
        .unwrap_or_default();
    let what = if d.is_error() { "error" } else { "not mapped" };
    let mut s = format!("{at}{what}: {}", d.message);
    if let Some(h) = &d.hint {
        s += &format!(" ({h})");
    }
    s.replace('\n', " ")
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// The tree as serde_yaml's value: strings stay strings, plain scalars are typed as YAML
/// reads them.
fn value(y: &Yaml) -> serde_yaml::Value {
    use serde_yaml::Value;
    match &y.kind {
        Kind::Null => Value::Null,
        Kind::Scalar { text, plain: false } => Value::String(text.clone()),
        Kind::Scalar { plain: true, .. } => match y.to_json() {
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) if n.is_i64() => Value::from(n.as_i64().unwrap_or(0)),
            serde_json::Value::Number(n) => Value::from(n.as_f64().unwrap_or(0.0)),
            other => Value::String(other.as_str().unwrap_or_default().to_string()),
        },
        Kind::Seq(items) => Value::Sequence(items.iter().map(value).collect()),
        Kind::Map(entries) => {
            Value::Mapping(entries.iter().map(|(k, v)| (value(k), value(v))).collect())
        }
    }
}
