//! Building nslab's document as a located YAML tree: each value carries the position of
//! the containerlab text it came from, so nslab's own reader reports problems there.

use crate::diag::Span;
use crate::spec::yaml::{Kind, Yaml};

/// A string (emitted quoted when YAML would read it as something else).
pub fn text(t: impl Into<String>, span: Span) -> Yaml {
    Yaml {
        kind: Kind::Scalar {
            text: t.into(),
            plain: false,
        },
        span,
    }
}

/// A number or a boolean.
pub fn plain(t: impl ToString, span: Span) -> Yaml {
    Yaml {
        kind: Kind::Scalar {
            text: t.to_string(),
            plain: true,
        },
        span,
    }
}

pub fn seq(items: Vec<Yaml>, span: Span) -> Yaml {
    Yaml {
        kind: Kind::Seq(items),
        span,
    }
}

pub fn map(entries: Vec<(&str, Yaml)>, span: Span) -> Yaml {
    Yaml {
        kind: Kind::Map(
            entries
                .into_iter()
                .map(|(k, v)| (text(k, v.span), v))
                .collect(),
        ),
        span,
    }
}

/// A mapping whose keys are data (node names, env keys), each with its own position.
pub fn named(entries: Vec<(Yaml, Yaml)>, span: Span) -> Yaml {
    Yaml {
        kind: Kind::Map(entries),
        span,
    }
}

/// The same tree, every value placed at `span`: a profile from the image map is reported
/// at the `image:` that chose it.
pub fn respan(y: &Yaml, span: Span) -> Yaml {
    let kind = match &y.kind {
        Kind::Seq(items) => Kind::Seq(items.iter().map(|i| respan(i, span)).collect()),
        Kind::Map(entries) => Kind::Map(
            entries
                .iter()
                .map(|(k, v)| (respan(k, span), respan(v, span)))
                .collect(),
        ),
        other => other.clone(),
    };
    Yaml { kind, span }
}

/// A scalar's text as YAML reads it, numbers and booleans included.
pub fn scalar_text(y: &Yaml) -> Option<String> {
    y.as_str().map(str::to_string)
}
