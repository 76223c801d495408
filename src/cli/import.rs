//! `nslab import FILE.clab.yml [--image-map FILE]`: a containerlab topology as nslab
//! YAML on stdout, with what did not map as comments (and as warnings on stderr).

use std::path::Path;

use super::{CliError, exit};
use crate::clab::ImportError;
use crate::compile::CompileError;

/// An import problem as the command line reports it: an invalid file (or image map)
/// exits 3 with every problem located.
pub(super) fn cli_error(e: ImportError) -> CliError {
    match e {
        ImportError::Invalid(r) => CliError::Compile(CompileError::Invalid(r)),
        ImportError::Io { path, source } => CliError::Compile(CompileError::Io { path, source }),
        other => CliError::Usage(other.to_string()),
    }
}

pub fn run(file: &Path, image_map: Option<&Path>) -> Result<u8, CliError> {
    let (yaml, report) = crate::clab::import_file(file, image_map).map_err(cli_error)?;
    let warnings = report.render(crate::Severity::Warning);
    if !warnings.is_empty() {
        crate::err!("{warnings}");
    }
    crate::outln!("{}", yaml.trim_end());
    Ok(exit::OK)
}
