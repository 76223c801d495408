//! The compile entry points: text or file in, topology and warnings out, or every
//! problem found, located.

use std::path::{Path, PathBuf};

use crate::clab::ImageMap;
use crate::clab::frr::Files;
use crate::diag::{Report, Sink};
use crate::model::{self, Topology};
use crate::spec;

/// A topology that compiled, with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub topology: Topology,
    pub warnings: Report,
}

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is larger than {limit} bytes")]
    TooLarge { path: PathBuf, limit: usize },
    /// The file is invalid; the report holds every problem, located.
    #[error("{0}")]
    Invalid(Report),
}

/// Compiles topology text. `file` names it in messages; mount sources resolve against
/// `base_dir`. Pure: no system calls.
pub fn compile_str(source: &str, file: &str, base_dir: &Path) -> Result<Compiled, CompileError> {
    compile_str_with(source, file, base_dir, &ImageMap::builtin())
}

/// [`compile_str`] with an image map, which gives containerlab files' images a meaning.
pub fn compile_str_with(
    source: &str,
    file: &str,
    base_dir: &Path,
    images: &ImageMap,
) -> Result<Compiled, CompileError> {
    compile_str_reading(source, file, base_dir, images, &Files::none())
}

/// [`compile_str_with`] that also reads what a containerlab file's binds name and the
/// mapping depends on (an FRR node's `/etc/frr/daemons`), relative to `base_dir`, as
/// `compile_file` does: what `up` compiled a lab from, compiled again the same way.
pub fn compile_str_reading(
    source: &str,
    file: &str,
    base_dir: &Path,
    images: &ImageMap,
    files: &Files,
) -> Result<Compiled, CompileError> {
    let mut sink = Sink::default();
    let topology = crate::clab::read_any_with(&mut sink, source, images, files)
        .and_then(|raw| model::build(&mut sink, &raw, base_dir));
    // Problems in file order, errors before warnings on the same line.
    sink.diagnostics.sort_by_key(|d| {
        (
            d.span.map(|s| (s.line, s.col)).unwrap_or((u32::MAX, 0)),
            d.severity,
        )
    });
    let report = Report {
        file: file.to_string(),
        source: source.to_string(),
        diagnostics: sink.diagnostics,
    };
    match topology {
        Some(topology) if !report.has_errors() => Ok(Compiled {
            topology,
            warnings: report,
        }),
        _ => Err(CompileError::Invalid(report)),
    }
}

/// Reads and compiles a topology file, refusing files over the YAML size limit before
/// reading them whole; a containerlab file's FRR nodes' daemons files are read too.
pub fn compile_file(path: &Path) -> Result<Compiled, CompileError> {
    compile_file_with(path, &ImageMap::builtin())
}

/// [`compile_file`] with an image map (`--image-map`) for a containerlab file.
pub fn compile_file_with(path: &Path, images: &ImageMap) -> Result<Compiled, CompileError> {
    let limit = spec::yaml::Limits::default().max_bytes;
    let io = |source| CompileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let Some(bytes) = spec::yaml::read_at_most(file, limit).map_err(io)? else {
        return Err(CompileError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    };
    let text = String::from_utf8(bytes)
        .map_err(|e| CompileError::Invalid(not_utf8(&path.display().to_string(), e)))?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    compile_str_reading(
        &text,
        &path.display().to_string(),
        &base,
        images,
        &Files::at(&base),
    )
}

/// A file that is not UTF-8, reported at its first invalid byte (line and column as an
/// editor counts them: the characters before it on its line, plus one).
fn not_utf8(file: &str, e: std::string::FromUtf8Error) -> Report {
    let at = e.utf8_error().valid_up_to();
    let bytes = e.into_bytes();
    // Everything before `at` is valid UTF-8.
    let before = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    let mut sink = Sink::default();
    sink.error(
        Some(crate::diag::Span::new(line as u32, col as u32, 1)),
        format!(
            "the file is not UTF-8: byte 0x{:02x} at offset {at} is not valid here",
            bytes[at]
        ),
    )
    .hint("save the file as UTF-8 (YAML files are UTF-8 text)");
    Report {
        file: file.to_string(),
        source: String::from_utf8_lossy(&bytes).into_owned(),
        diagnostics: sink.diagnostics,
    }
}

/// Adds the checks that need the host (mount sources exist, commands can be found) to a
/// compiled topology; any error makes it invalid, located like every other problem.
pub fn preflight(c: Compiled) -> Result<Compiled, CompileError> {
    preflight_for(c, false)
}

/// [`preflight`], plus, for a lab run without root, what only root can do (see
/// [`crate::rootless::check`]).
pub fn preflight_for(c: Compiled, rootless: bool) -> Result<Compiled, CompileError> {
    let mut found = crate::preflight::check(&c.topology);
    if rootless {
        let why = crate::rootless::holder::other_ids().err();
        found.extend(crate::rootless::check::check(&c.topology, why.as_deref()));
    }
    if found.is_empty() {
        return Ok(c);
    }
    let mut report = c.warnings;
    report.diagnostics.extend(found);
    report.diagnostics.sort_by_key(|d| {
        (
            d.span.map(|s| (s.line, s.col)).unwrap_or((u32::MAX, 0)),
            d.severity,
        )
    });
    if report.has_errors() {
        return Err(CompileError::Invalid(report));
    }
    Ok(Compiled {
        topology: c.topology,
        warnings: report,
    })
}
