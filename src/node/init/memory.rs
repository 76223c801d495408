//! The init's memory: what only start-up needed is given back once the node is quiet,
//! from mappings the fork server listed once for every init it forks (issue 19: the
//! init's RSS and PSS are paid per node).

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
static LEARNED: std::sync::OnceLock<Vec<(usize, usize)>> = std::sync::OnceLock::new();

/// Reads this process's droppable mappings once, for the inits it will fork: reading
/// `/proc/self/smaps` walks every page table and was a fifth of an init's CPU time. A
/// fork has the same mappings, and its read-only ones cannot gain private pages.
pub(crate) fn learn_droppable() {
    if let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") {
        let _ = LEARNED.set(droppable(&smaps));
    }
}

/// Gives back what only start-up needed: freed heap, and the clean file pages (code and
/// read-only data of this binary and its libraries) faulted in while parsing and mounting.
/// Mappings holding private copies (relocated data) are left alone: dropping those would
/// lose their contents. What the loop uses is faulted back in on demand.
pub(super) fn trim_memory() {
    // SAFETY: malloc_trim only returns free heap to the kernel.
    unsafe { libc::malloc_trim(0) };
    let ranges = match LEARNED.get() {
        Some(r) => r.clone(),
        None => match std::fs::read_to_string("/proc/self/smaps") {
            Ok(smaps) => droppable(&smaps),
            Err(_) => return,
        },
    };
    for (start, end) in ranges {
        // SAFETY: dropping clean, file-backed, never-written pages is always safe: they
        // are read back from the file on the next access.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_RANDOM);
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        };
    }
}

/// Lets the code pages [`trim_memory`] dropped come back in the kernel's batches again
/// (MADV_RANDOM made each its own fault): stopping runs code the init has not run since
/// it started, and a `down` of 1,000 nodes spent a sixth of the inits' time in faults.
pub(super) fn fault_around() {
    for (start, end) in LEARNED.get().into_iter().flatten() {
        // SAFETY: only the access pattern hint of mappings this process has.
        unsafe { libc::madvise(*start as *mut libc::c_void, end - start, libc::MADV_NORMAL) };
    }
}

#[cfg(test)]
mod tests {
    use super::droppable;

    #[test]
    fn only_clean_file_mappings_without_private_pages_are_dropped() {
        let smaps = "\
00400000-00500000 r-xp 00000000 08:01 12 /usr/bin/nslab
Rss:                 100 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  0 kB
00500000-00510000 r--p 00100000 08:01 12 /usr/bin/nslab
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  8 kB
00510000-00520000 r--p 00110000 08:01 12 /usr/bin/nslab
Private_Dirty:         4 kB
Anonymous:             4 kB
Swap:                  0 kB
00520000-00530000 rw-p 00120000 08:01 12 /usr/bin/nslab
Anonymous:             0 kB
Swap:                  0 kB
00530000-00540000 r--p 00000000 00:00 0
Anonymous:             0 kB
7f0000000000-7f0000010000 r--p 00000000 08:01 13 /usr/lib/libc.so.6
Anonymous:             0 kB
Swap:                  0 kB
";
        assert_eq!(
            droppable(smaps),
            vec![(0x400000, 0x500000), (0x7f0000000000, 0x7f0000010000)]
        );
    }
}
