//! What the init may give back once idle: the clean file mappings, learned by the fork
//! server before its first fork (see `trim_memory` in the init, which drops them).

/// The mappings whose pages can be dropped and read back from their file: read-only,
/// file-backed, and holding no private page at all, neither resident (Anonymous,
/// Private_Dirty) nor swapped out (Swap: a relocated page that went to swap shows as
/// neither, and dropping it would bring back the unrelocated file contents).
pub(super) fn droppable(smaps: &str) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    let mut keep = false;
    let mut finish = |current: Option<(usize, usize)>, keep: bool| {
        if let Some(r) = current
            && !keep
        {
            ranges.push(r);
        }
    };
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            finish(current, keep);
            let perms = f.next().unwrap_or("");
            let path = f.nth(3).unwrap_or("");
            let clean_file = !perms.contains('w') && path.starts_with('/');
            current = clean_file.then_some((start, end));
            keep = false;
        } else if matches!(first, "Anonymous:" | "Private_Dirty:" | "Swap:")
            && f.next() != Some("0")
        {
            keep = true;
        }
    }
    finish(current, keep);
    ranges
}

/// The droppable mappings as the fork server found them before its first fork (see
/// [`learn_droppable`]).
pub(super) static LEARNED: std::sync::OnceLock<Vec<(usize, usize)>> = std::sync::OnceLock::new();

/// Reads this process's droppable mappings once, for the inits it will fork: reading
/// `/proc/self/smaps` walks every page table and was a fifth of an init's CPU time. A
/// fork has the same mappings, and its read-only ones cannot gain private pages.
pub(crate) fn learn_droppable() {
    if let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") {
        let _ = LEARNED.set(droppable(&smaps));
    }
}
