//! Output that never panics. `println!` panics when stdout is a closed pipe (`nslab ps |
//! head -1`: Rust ignores SIGPIPE, so the write fails with EPIPE), and `eprintln!` does
//! the same on a dead terminal (EIO after a hang-up). A panic in the middle of `nslab
//! test` would skip its teardown, so every line nslab prints goes through here: a failed
//! write is dropped, and a closed stdout is remembered and reported to whoever holds a
//! lab (see [`on_closed_stdout`]) so it can stop and tear down, as on SIGINT.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static ON_CLOSED: OnceLock<Box<dyn Fn() + Send + Sync>> = OnceLock::new();

/// Runs `f` (once) when a write to stdout finds it closed. The first caller wins: one
/// process holds at most one lab.
pub fn on_closed_stdout(f: impl Fn() + Send + Sync + 'static) {
    let _ = ON_CLOSED.set(Box::new(f));
    if stdout_closed() {
        closed();
    }
}

/// Whether a write to stdout found it closed.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

fn closed() {
    if let Some(f) = ON_CLOSED.get() {
        f();
    }
}

/// Writes to stdout; after a broken pipe, nothing more is written.
pub fn stdout(args: std::fmt::Arguments) {
    if stdout_closed() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let result = out.write_fmt(args).and_then(|()| out.flush());
    if let Err(e) = result
        && e.kind() == std::io::ErrorKind::BrokenPipe
        && !STDOUT_CLOSED.swap(true, Ordering::Relaxed)
    {
        closed();
    }
}

/// Writes to stderr; a failure is dropped (there is nowhere left to report it).
pub fn stderr(args: std::fmt::Arguments) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// `println!` that never panics (see the module).
#[macro_export]
macro_rules! outln {
    () => { $crate::out::stdout(format_args!("\n")) };
    ($($t:tt)*) => { $crate::out::stdout(format_args!("{}\n", format_args!($($t)*))) };
}

/// `print!` that never panics.
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => { $crate::out::stdout(format_args!($($t)*)) };
}

/// `eprintln!` that never panics.
#[macro_export]
macro_rules! errln {
    ($($t:tt)*) => { $crate::out::stderr(format_args!("{}\n", format_args!($($t)*))) };
}

/// `eprint!` that never panics.
#[macro_export]
macro_rules! err {
    ($($t:tt)*) => { $crate::out::stderr(format_args!($($t)*)) };
}
