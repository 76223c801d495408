//! The init's memory: what only start-up needed is given back once the node is quiet,
//! from mappings the fork server listed once for every init it forks (issue 19: the
//! init's RSS and PSS are paid per node). The calls themselves are in [`crate::sys::mem`].

use crate::sys::mem::{self, Clean};

/// The droppable mappings as the fork server found them before its first fork (see
/// [`learn_droppable`]).
static LEARNED: std::sync::OnceLock<Vec<Clean>> = std::sync::OnceLock::new();

/// Reads this process's droppable mappings once, for the inits it will fork: reading
/// `/proc/self/smaps` walks every page table and was a fifth of an init's CPU time. A
/// fork has the same mappings, and its read-only ones cannot gain private pages.
pub(crate) fn learn_droppable() {
    if let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") {
        let _ = LEARNED.set(mem::droppable(&smaps));
    }
}

/// Gives back what only start-up needed: freed heap, and the clean file pages (code and
/// read-only data of this binary and its libraries) faulted in while parsing and mounting.
/// Mappings holding private copies (relocated data) are left alone: dropping those would
/// lose their contents. What the loop uses is faulted back in on demand.
pub(super) fn trim_memory() {
    mem::trim_heap();
    let ranges = match LEARNED.get() {
        Some(r) => r.clone(),
        None => match std::fs::read_to_string("/proc/self/smaps") {
            Ok(smaps) => mem::droppable(&smaps),
            Err(_) => return,
        },
    };
    for m in ranges {
        mem::drop_pages(m);
    }
}

/// Lets the code pages [`trim_memory`] dropped come back in the kernel's batches again
/// (MADV_RANDOM made each its own fault): stopping runs code the init has not run since
/// it started, and a `down` of 1,000 nodes spent a sixth of the inits' time in faults.
pub(super) fn fault_around() {
    for m in LEARNED.get().into_iter().flatten() {
        mem::fault_around(*m);
    }
}
