//! The end of a node process's log, read from the end: for error messages (its last
//! lines) and the reports of `nslab test` (its last bytes, whatever they are).

use std::path::{Path, PathBuf};

/// The last lines of a process's log, for error messages. The part before the current
/// one is read too: a rotation may have just left the current one nearly empty. Control
/// and format characters come out as text (`\u{1b}`): these lines go to the terminal of
/// whoever ran `up` or `test`, and the process may print anything.
pub fn log_tail(path: &Path, lines: usize) -> String {
    // Whatever bytes the process wrote: a log with invalid UTF-8 still has an end.
    let text = String::from_utf8_lossy(&log_end(path, LOG_TAIL_BYTES)).into_owned();
    let all: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("--- nslab:"))
        .collect();
    let kept = all[all.len().saturating_sub(lines)..].join("\n");
    crate::model::names::shown(&kept, true)
}

/// How much of a log's end [`log_tail`] reads for its lines.
const LOG_TAIL_BYTES: u64 = 64 << 10;

/// The last `max` bytes of a process's log, its previous part (before the last
/// rotation) first, each read from its end only: a log is as large as its rotation
/// lets it grow.
pub fn log_end(path: &Path, max: u64) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let previous = PathBuf::from(format!("{}.1", path.display()));
    let end_of = |p: &Path, max: u64| -> Vec<u8> {
        let mut out = Vec::new();
        if let Ok(mut f) = std::fs::File::open(p) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
            let _ = f.take(max).read_to_end(&mut out);
        }
        out
    };
    let current = end_of(path, max);
    let room = max.saturating_sub(current.len() as u64);
    let mut all = if room > 0 {
        end_of(&previous, room)
    } else {
        Vec::new()
    };
    all.extend(current);
    all
}

#[cfg(test)]
mod tests {
    use super::{log_end, log_tail};

    #[test]
    fn a_log_of_any_bytes_has_an_end_read_across_its_rotation() {
        let dir = std::env::temp_dir().join(format!("nslab-logtail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let log = dir.join("p.log");
        std::fs::write(dir.join("p.log.1"), b"old-1\nold-2\n").unwrap();
        std::fs::write(
            &log,
            b"--- nslab: restarted\nbad \xff\xfe bytes\nlast\x1b[2K\n",
        )
        .unwrap();
        let lines = log_tail(&log, 3);
        let end = log_end(&log, 16);
        let both = log_end(&log, 1000);
        std::fs::remove_dir_all(&dir).unwrap();
        // Before, invalid UTF-8 made the whole log read as empty.
        // An escape sequence is shown, not sent to the terminal.
        assert_eq!(lines, "old-2\nbad \u{fffd}\u{fffd} bytes\nlast\\u{1b}[2K");
        assert_eq!(end, b" bytes\nlast\x1b[2K\n");
        assert!(both.starts_with(b"old-1\n") && both.ends_with(b"last\x1b[2K\n"));
    }
}
