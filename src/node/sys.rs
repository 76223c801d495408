//! String-error helpers for the node's system calls, shared by the init, its mount
//! namespace, the lab's mount template and node directories: errors here end up in the
//! text a node's init reports, so they name what failed and the OS error.

use std::ffi::CString;
use std::path::Path;

/// `what: e`.
pub fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

/// A C string of `s`, or an error naming it (it held a NUL).
pub fn cstr(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|e| err(s, e))
}

/// A C string of a path, byte for byte.
pub fn cpath(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(|e| err(&p.display().to_string(), e))
}

/// `what: <errno text>` for the last failed call.
pub fn last(what: &str) -> String {
    err(what, std::io::Error::last_os_error())
}
