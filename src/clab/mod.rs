//! containerlab topology files (`.clab.yml`), read as they are: containerlab's schema is
//! read with positions ([`schema`]), its defaults, kinds and groups resolved per node
//! ([`inherit`]), and each node and link mapped to nslab's language ([`map`], [`links`]),
//! with images given a meaning by the image map ([`images`]). The result is a located
//! tree of nslab's language: the compiler reads it like any nslab file, and `nslab
//! import` prints it ([`emit`]).

pub mod emit;
pub mod frr;
pub mod images;
pub mod inherit;
pub mod links;
pub mod map;
pub mod mgmt;
pub mod schema;
pub mod tree;
pub mod words;

use std::path::{Path, PathBuf};

use crate::diag::{Report, Sink};
use crate::spec::raw::RawTopology;
use crate::spec::yaml::{self, Kind, Yaml};

pub use images::ImageMap;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file (or the image map) is invalid; every problem, located.
    #[error("{0}")]
    Invalid(Report),
    #[error("{0} is not a containerlab topology (it has no `topology:` key)")]
    NotClab(PathBuf),
    #[error("cannot write YAML: {0}")]
    Emit(#[from] serde_yaml::Error),
}

/// Reads topology text in either language, told apart by containerlab's `topology:` key
/// (nslab's language has none), with the built-in image map.
pub fn read_any(sink: &mut Sink, source: &str) -> Option<RawTopology> {
    read_any_with(sink, source, &ImageMap::builtin(), &frr::Files::none())
}

/// [`read_any`] with an image map of the caller's (`--image-map`): the one entry point
/// every command compiles through.
/// `files` reads what binds name that changes the mapping (an FRR node's daemons file).
pub fn read_any_with(
    sink: &mut Sink,
    source: &str,
    images: &ImageMap,
    files: &frr::Files,
) -> Option<RawTopology> {
    let root = match yaml::parse(source, yaml::Limits::default()) {
        Ok(root) => root,
        Err(diags) => {
            sink.diagnostics.extend(diags);
            return None;
        }
    };
    if !schema::is_clab(&root) {
        return Some(crate::spec::read_tree(sink, root));
    }
    let doc = document(sink, &root, images, files);
    Some(crate::spec::read_tree(sink, doc))
}

/// A containerlab file as nslab's document; problems go to `sink`, once each.
pub fn document(sink: &mut Sink, root: &Yaml, images: &ImageMap, files: &frr::Files) -> Yaml {
    templates(sink, root);
    let c = schema::read(sink, root);
    let doc = map::document(sink, &c, images, files);
    // Inherited keys are reported where they are written, once, not once per node.
    let mut seen = Vec::new();
    sink.diagnostics.retain(|d| {
        let key = (d.span, d.message.clone());
        let new = !seen.contains(&key);
        seen.push(key);
        new
    });
    doc
}

/// Go templates (`.clab.gotmpl`) must be rendered by containerlab first.
fn templates(sink: &mut Sink, y: &Yaml) {
    match &y.kind {
        Kind::Scalar { text, .. } if text.contains("{{") && text.contains("}}") => {
            sink.error(Some(y.span), "a Go template expression is not read by nslab")
                .hint("render the template first (`containerlab deploy --export-rendered`), then use the rendered file");
        }
        Kind::Seq(items) => items.iter().for_each(|i| templates(sink, i)),
        Kind::Map(entries) => entries.iter().for_each(|(k, v)| {
            templates(sink, k);
            templates(sink, v);
        }),
        _ => {}
    }
}

/// `nslab import`: the file as nslab YAML, with a comment on every construct that did
/// not map, and the warnings (to show on stderr too).
pub fn import_file(path: &Path, image_map: Option<&Path>) -> Result<(String, Report), ImportError> {
    let images = match image_map {
        Some(m) => load_image_map(m)?,
        None => ImageMap::builtin(),
    };
    let text = read_text(path)?;
    let mut sink = Sink::default();
    let root = match yaml::parse(&text, yaml::Limits::default()) {
        Ok(root) => root,
        Err(diags) => {
            sink.diagnostics.extend(diags);
            return Err(ImportError::Invalid(report(path, text, sink)));
        }
    };
    if !schema::is_clab(&root) {
        return Err(ImportError::NotClab(path.to_path_buf()));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let doc = document(&mut sink, &root, &images, &frr::Files::at(base));
    crate::spec::read_tree(&mut sink, doc.clone());
    let r = report(path, text, sink);
    if r.has_errors() {
        return Err(ImportError::Invalid(r));
    }
    Ok((emit::render(&doc, &r)?, r))
}

/// An image map file, consulted before the built-in map; every problem in it, located.
pub fn load_image_map(path: &Path) -> Result<ImageMap, ImportError> {
    let text = read_text(path)?;
    let mut sink = Sink::default();
    let map = images::parse(&mut sink, &text);
    if sink.has_errors() {
        return Err(ImportError::Invalid(report(path, text, sink)));
    }
    Ok(map.with_builtin())
}

fn read_text(path: &Path) -> Result<String, ImportError> {
    let io = |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let limit = yaml::Limits::default().max_bytes;
    let file = std::fs::File::open(path).map_err(io)?;
    let Some(bytes) = yaml::read_at_most(file, limit).map_err(io)? else {
        return Err(io(std::io::Error::other(format!(
            "larger than {limit} bytes"
        ))));
    };
    String::from_utf8(bytes)
        .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

fn report(path: &Path, source: String, mut sink: Sink) -> Report {
    sink.diagnostics.sort_by_key(|d| {
        (
            d.span.map(|s| (s.line, s.col)).unwrap_or((u32::MAX, 0)),
            d.severity,
        )
    });
    Report {
        file: path.display().to_string(),
        source,
        diagnostics: sink.diagnostics,
    }
}
