//! The lab's event log (`/run/nslab/<lab>.events`): one JSON line per runtime action, with
//! its time, so a run can be read back in order (`nslab events`). It goes with the lab.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::state::{LabDir, StateError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// `link-down`, `link-up`, `impair`, `impair-clear`, `node-stop`, `node-start`, ...
    pub action: String,
    /// `node:iface` or a node.
    pub target: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Appends one event (a single write of one line, so concurrent writers do not interleave).
pub fn record(dir: &LabDir, action: &str, target: &str, detail: &str) -> Result<Event, StateError> {
    let e = Event {
        at_ms: now_ms(),
        action: action.to_string(),
        target: target.to_string(),
        detail: detail.to_string(),
    };
    let path = dir.events_path();
    let mut line = serde_json::to_string(&e).expect("an event serializes");
    line.push('\n');
    crate::state::files::open_append(&path)?
        .write_all(line.as_bytes())
        .map_err(|err| StateError::io(&path, err))?;
    Ok(e)
}

/// Every event of the lab, oldest first (none when nothing happened yet).
pub fn read(dir: &LabDir) -> Result<Vec<Event>, StateError> {
    let path = dir.events_path();
    let text = match crate::state::files::read(&path) {
        Ok(t) => t,
        Err(StateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| StateError::Corrupt {
                path: path.clone(),
                line: i + 1,
                msg: e.to_string(),
            })
        })
        .collect()
}

/// `2026-11-24T12:03:31.123Z` for a time in milliseconds since the epoch (UTC).
pub fn format_time(at_ms: u64) -> String {
    let secs = at_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        at_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::format_time;

    #[test]
    fn times_format_as_utc_rfc3339() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_time(1_795_521_811_123), "2026-11-24T12:03:31.123Z");
    }
}
