//! `nslab logs NODE [PROCESS] [-f]`: the logs of a node's processes.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use super::{CliError, exit, lab_arg};
use crate::node::NodePaths;

pub fn run(
    lab: Option<&str>,
    node: &str,
    process: Option<&str>,
    follow: bool,
) -> Result<u8, CliError> {
    let lab = lab_arg(None, lab)?;
    let paths = NodePaths::of_lab(&lab);
    let dir = paths.logs.join(node);
    let mut files: Vec<(String, std::path::PathBuf)> = match process {
        Some(p) => vec![(p.to_string(), paths.log(node, p))],
        None => {
            let mut v: Vec<_> = std::fs::read_dir(&dir)
                .map_err(|_| {
                    CliError::Usage(format!(
                        "node `{node}` of lab `{lab}` has no logs (it runs no processes)"
                    ))
                })?
                .flatten()
                .filter_map(|e| {
                    let name = e
                        .file_name()
                        .to_string_lossy()
                        .strip_suffix(".log")
                        .map(str::to_string)?;
                    Some((name, e.path()))
                })
                .collect();
            v.sort();
            v
        }
    };
    if let Some((name, path)) = files.first()
        && process.is_some()
        && !path.exists()
    {
        return Err(CliError::Usage(format!(
            "node `{node}` has no log for process `{name}`"
        )));
    }
    let many = files.len() > 1;
    let mut out = std::io::stdout().lock();
    let mut offsets = vec![0u64; files.len()];
    loop {
        for ((name, path), offset) in files.iter_mut().zip(offsets.iter_mut()) {
            print_new(&mut out, name, path, offset, many)?;
        }
        out.flush()?;
        if !follow {
            return Ok(exit::OK);
        }
        // Follow until interrupted.
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Prints what a log gained since `offset` (everything the first time), prefixed with the
/// process name when several logs interleave.
fn print_new(
    out: &mut impl Write,
    name: &str,
    path: &std::path::Path,
    offset: &mut u64,
    prefix: bool,
) -> std::io::Result<()> {
    let Ok(mut f) = std::fs::File::open(path) else {
        return Ok(());
    };
    let len = f.metadata()?.len();
    if len < *offset {
        *offset = 0; // truncated
    }
    if len == *offset {
        return Ok(());
    }
    f.seek(SeekFrom::Start(*offset))?;
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    *offset += text.len() as u64;
    for line in text.lines() {
        if prefix {
            writeln!(out, "{name} | {line}")?;
        } else {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}
