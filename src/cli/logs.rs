//! `nslab logs NODE [PROCESS] [-f]`: the logs of a node's processes. A log is capped and
//! rotated by the node's init (`name.log`, then `name.log.1`, `name.log.2`, ... older);
//! the parts are read oldest first, and `-f` follows the current one across rotations
//! until interrupted or until the lab goes down.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{CliError, exit, lab_arg};
use crate::node::NodePaths;
use crate::runtime::watch::LabWatch;

pub fn run(
    host: &crate::state::HostContext,
    lab: Option<&str>,
    node: &str,
    process: Option<&str>,
    follow: bool,
) -> Result<u8, CliError> {
    // Both become parts of a path below the lab's log directory.
    crate::model::names::check_node_name(node)
        .map_err(|e| CliError::Usage(format!("node: {e}")))?;
    if let Some(p) = process {
        crate::node::control::check_name(p).map_err(CliError::Usage)?;
    }
    let lab = lab_arg(host, None, lab)?;
    // A node on another host of a multi-host lab has its logs there.
    if let Ok(s) = crate::state::LabSummary::read(&host.lab_dir(&lab).summary_path())
        && let Some(r) = s.remote(node)
    {
        return Err(CliError::Usage(format!(
            "lab `{lab}`: {}; run the command there",
            r.describe()
        )));
    }
    // Taken first: a lab that goes down while the logs are read is still noticed.
    let watch = LabWatch::node(host, &lab, node);
    let paths = NodePaths::of_lab(host, &lab);
    let dir = paths.logs.join(node);
    let files: Vec<(String, PathBuf)> = match process {
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
    // Between a rotation's rename and its new part, only the old parts exist.
    if let Some((name, path)) = files.first()
        && process.is_some()
        && !path.exists()
        && rotated(path).is_empty()
    {
        return Err(CliError::Usage(format!(
            "node `{node}` has no log for process `{name}`"
        )));
    }
    let prefix = files.len() > 1;
    let mut out = std::io::stdout().lock();
    let mut logs: Vec<Log> = files
        .into_iter()
        .map(|(name, path)| Log::start(name, path, &mut out, prefix))
        .collect::<std::io::Result<_>>()?;
    out.flush()?;
    if !follow {
        for l in &mut logs {
            l.finish(&mut out)?;
        }
        return Ok(exit::OK);
    }
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let gone = watch.gone();
        for l in &mut logs {
            l.poll(&mut out)?;
        }
        if gone {
            for l in &mut logs {
                l.finish(&mut out)?;
            }
            out.flush()?;
            eprintln!("nslab: lab `{lab}` went down; the logs of node `{node}` end here");
            return Ok(exit::OK);
        }
        out.flush()?;
    }
}

/// One process's log as it is read: the current part, open, and what of it was printed.
struct Log {
    name: String,
    path: PathBuf,
    prefix: bool,
    /// The current part and its inode: a rotation renames it, and the next part is new.
    current: Option<(File, u64)>,
    /// The end of a line still being written.
    partial: Vec<u8>,
}

/// The rotated parts of a log that exist, oldest first (`.log.N` ... `.log.1`).
fn rotated(path: &Path) -> Vec<PathBuf> {
    let mut parts: Vec<PathBuf> = (1..)
        .map(|i| PathBuf::from(format!("{}.{i}", path.display())))
        .take_while(|p| p.exists())
        .collect();
    parts.reverse();
    parts
}

fn open(path: &Path) -> Option<(File, u64)> {
    let f = File::open(path).ok()?;
    let ino = f.metadata().ok()?.ino();
    Some((f, ino))
}

impl Log {
    /// Prints the rotated parts and what the current one holds.
    fn start(
        name: String,
        path: PathBuf,
        out: &mut impl Write,
        prefix: bool,
    ) -> std::io::Result<Log> {
        let mut log = Log {
            name,
            current: None,
            path,
            prefix,
            partial: Vec::new(),
        };
        for part in rotated(&log.path) {
            if let Ok(mut f) = File::open(&part) {
                log.copy(&mut f, out)?;
            }
        }
        log.current = open(&log.path);
        log.read_current(out)?;
        Ok(log)
    }

    /// Prints what was written since the last look, across a rotation: the rest of the
    /// part that was renamed away, then the new current part.
    fn poll(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        self.read_current(out)?;
        let now = std::fs::metadata(&self.path).ok().map(|m| m.ino());
        if now.is_some() && now != self.current.as_ref().map(|(_, i)| *i) {
            if let Some((f, _)) = self.current.take() {
                // Written between the read above and the rename.
                let mut f = &f;
                self.copy(&mut f, out)?;
            }
            self.current = open(&self.path);
            self.read_current(out)?;
        }
        Ok(())
    }

    fn read_current(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if let Some((f, ino)) = self.current.take() {
            let r = self.copy(&mut &f, out);
            self.current = Some((f, ino));
            r?;
        }
        Ok(())
    }

    /// Prints a last line that has no newline yet.
    fn finish(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if !self.partial.is_empty() {
            self.partial.push(b'\n');
            let rest = std::mem::take(&mut self.partial);
            self.print(&rest, out)?;
        }
        Ok(())
    }

    fn copy(&mut self, from: &mut impl Read, out: &mut impl Write) -> std::io::Result<()> {
        let mut buf = std::mem::take(&mut self.partial);
        from.read_to_end(&mut buf)?;
        let whole = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.partial = buf.split_off(whole);
        self.print(&buf, out)
    }

    fn print(&self, lines: &[u8], out: &mut impl Write) -> std::io::Result<()> {
        if !self.prefix {
            return out.write_all(lines);
        }
        for line in lines.split_inclusive(|&b| b == b'\n') {
            write!(out, "{} | ", self.name)?;
            out.write_all(line)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_and_process_names_that_could_leave_the_log_directory_are_refused() {
        let host = crate::state::HostContext {
            run_dir: "/nonexistent/nslab".into(),
            netns_dir: "/nonexistent/netns".into(),
            privileged: false,
            host: None,
        };
        let usage = |node: &str, process: Option<&str>| {
            let e = run(&host, Some("lx"), node, process, false).unwrap_err();
            assert_eq!(e.exit_code(), 3, "{e}");
            e.to_string()
        };
        assert!(usage("../../etc", None).contains("could escape a path"));
        assert!(usage("a", Some("../../../etc/shadow")).contains("plain word"));
        assert!(usage("a", Some("x/y")).contains("plain word"));
        // Good names get as far as looking for the log, which is not there.
        assert!(usage("a", Some("p")).contains("has no log for process `p`"));
    }

    #[test]
    fn rotated_parts_are_read_oldest_first_and_rotations_are_followed() {
        let dir = std::env::temp_dir().join(format!("nslab-logs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.log");
        std::fs::write(dir.join("p.log.2"), "one\n").unwrap();
        std::fs::write(dir.join("p.log.1"), "two\n").unwrap();
        std::fs::write(&path, "three\nfo").unwrap();
        let mut out = Vec::new();
        let mut log = Log::start("p".into(), path.clone(), &mut out, true).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out),
            "p | one\np | two\np | three\n"
        );
        // The writer finishes its line, rotates, and goes on in a new part.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"ur\nfive\n").unwrap();
        std::fs::rename(&path, dir.join("p.log.1")).unwrap();
        std::fs::write(&path, "six\nsev").unwrap();
        out.clear();
        log.poll(&mut out).unwrap();
        log.finish(&mut out).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out),
            "p | four\np | five\np | six\np | sev\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
