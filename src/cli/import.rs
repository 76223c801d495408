//! `nslab import FILE.clab.yml [--image-map FILE]`: a containerlab topology as nslab
//! YAML on stdout, with what did not map as comments (and as warnings on stderr).

use std::path::Path;

use super::{CliError, exit};
use crate::clab::ImportError;
use crate::compile::CompileError;

pub fn run(file: &Path, image_map: Option<&Path>) -> Result<u8, CliError> {
    let (yaml, report) = crate::clab::import_file(file, image_map).map_err(|e| match e {
        ImportError::Invalid(r) => CliError::Compile(CompileError::Invalid(r)),
        ImportError::Io { path, source } => CliError::Compile(CompileError::Io { path, source }),
        other => CliError::Usage(other.to_string()),
    })?;
    let warnings = report.render(crate::Severity::Warning);
    if !warnings.is_empty() {
        crate::err!("{warnings}");
    }
    crate::outln!("{}", yaml.trim_end());
    Ok(exit::OK)
}
