//! YAML bytes -> diagnostics or a plan: no panic, the same output twice, spans inside the
//! source, every created object torn down (see `nslab::invariants`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(v) = nslab::invariants::check_bytes(data) {
        panic!("invariant broken: {v}");
    }
});
