//! The compile entry points: text or file in, topology and warnings out, or every
//! problem found, located.

use std::io::Read;
use std::path::{Path, PathBuf};

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
    let mut sink = Sink::default();
    let topology = spec::read_topology(&mut sink, source)
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
/// reading them whole.
pub fn compile_file(path: &Path) -> Result<Compiled, CompileError> {
    let limit = spec::yaml::Limits::default().max_bytes;
    let io = |source| CompileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut text = String::new();
    file.take(limit as u64 + 1)
        .read_to_string(&mut text)
        .map_err(io)?;
    if text.len() > limit {
        return Err(CompileError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    compile_str(&text, &path.display().to_string(), &base)
}

/// Adds the checks that need the host (mount sources exist, commands can be found) to a
/// compiled topology; any error makes it invalid, located like every other problem.
pub fn preflight(c: Compiled) -> Result<Compiled, CompileError> {
    let found = crate::preflight::check(&c.topology);
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
