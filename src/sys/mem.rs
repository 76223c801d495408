//! Giving memory back to the kernel. The pages dropped are only those a reread of their
//! file restores: the ranges come from [`droppable`], which is the one way to make a
//! [`Clean`], so the safe calls below cannot drop a page that holds data of its own.

/// A mapping of this process that is read-only, file-backed and held no private page
/// when `/proc/self/smaps` was read. Read-only, it cannot gain one since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clean {
    start: usize,
    end: usize,
}

impl Clean {
    /// Its address range, start and end.
    pub fn range(&self) -> (usize, usize) {
        (self.start, self.end)
    }
}

/// The mappings whose pages can be dropped and read back from their file, from the text
/// of `/proc/self/smaps`: read-only, file-backed, and holding no private page at all,
/// neither resident (Anonymous, Private_Dirty) nor swapped out (Swap: a relocated page
/// that went to swap shows as neither, and dropping it would bring back the unrelocated
/// file contents).
pub fn droppable(smaps: &str) -> Vec<Clean> {
    let mut ranges = Vec::new();
    let mut current: Option<Clean> = None;
    let mut keep = false;
    let mut finish = |current: Option<Clean>, keep: bool| {
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
            current = clean_file.then_some(Clean { start, end });
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

/// Returns the heap's free memory to the kernel.
pub fn trim_heap() {
    // SAFETY: malloc_trim only returns free heap to the kernel.
    unsafe { libc::malloc_trim(0) };
}

/// Drops the resident pages of `m`; the next access reads each back from the file, one
/// page per fault (MADV_RANDOM: no read-around brings back what was not asked for).
pub fn drop_pages(m: Clean) {
    let (start, len) = (m.start as *mut libc::c_void, m.end - m.start);
    // SAFETY: `m` is a clean, file-backed, never-written mapping of this process (see
    // `Clean`): dropping its pages loses nothing, they are read back from the file.
    unsafe {
        libc::madvise(start, len, libc::MADV_RANDOM);
        libc::madvise(start, len, libc::MADV_DONTNEED);
    }
}

/// Lets the pages of `m` come back in the kernel's read-around batches again.
pub fn fault_around(m: Clean) {
    // SAFETY: only the access-pattern hint of a mapping of this process.
    unsafe {
        libc::madvise(
            m.start as *mut libc::c_void,
            m.end - m.start,
            libc::MADV_NORMAL,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::{Clean, droppable};

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
            droppable(smaps)
                .iter()
                .map(Clean::range)
                .collect::<Vec<_>>(),
            vec![(0x400000, 0x500000), (0x7f0000000000, 0x7f0000010000)]
        );
    }
}
