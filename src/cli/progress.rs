//! The progress bar of `up`, `down` and `test`: steps done and total, and the current
//! phase, drawn on stderr only when it is a terminal; nothing in CI or with `--quiet`.

use std::io::IsTerminal;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};

use crate::apply::progress::{Progress, Reporter};

struct Bar {
    bar: ProgressBar,
    lab: String,
}

impl Progress for Bar {
    fn phase(&self, name: &str, total: u64) {
        self.bar.set_prefix(format!("{} {name}", self.lab));
        self.bar.set_length(total);
        self.bar.set_position(0);
        self.bar.set_message("");
        self.bar
            .enable_steady_tick(std::time::Duration::from_millis(100));
    }

    fn advance(&self, what: &str) {
        self.bar.inc(1);
        // Steps of one kind come in runs: only a change of kind redraws the message.
        if self.bar.message() != what {
            self.bar.set_message(what.to_string());
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A bar for `lab`, or nothing when stderr is not a terminal, `CI=true` or `quiet`.
pub fn reporter(lab: &str, quiet: bool) -> Option<Reporter> {
    if quiet || std::env::var("CI").as_deref() == Ok("true") || !std::io::stderr().is_terminal() {
        return None;
    }
    let style = ProgressStyle::with_template(
        "{spinner} {prefix:.bold} [{bar:32}] {pos:>6}/{len:<6} {elapsed:>4} {msg}",
    )
    .ok()?
    .progress_chars("=> ");
    let bar = ProgressBar::new(0).with_style(style);
    Some(Reporter(Arc::new(Bar {
        bar,
        lab: lab.to_string(),
    })))
}
