//! Retrying a changed file that failed to apply. The cause is often outside the file
//! (an interface or VNI in the way, a machine short of memory) and goes away by itself
//! or by hand, and nothing else would apply the file again until it changes. The delay
//! doubles from [`FIRST`] to [`CAP`], so a lasting failure costs one attempt a minute;
//! a changed file drops the retry (the new file is applied instead).

use std::time::{Duration, Instant};

/// The delay before the first retry.
pub const FIRST: Duration = Duration::from_secs(1);
/// The longest delay between two attempts.
pub const CAP: Duration = Duration::from_secs(60);

/// A failed apply waiting for its next attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Attempts so far, all failed (the first is the change itself).
    pub attempts: u32,
    /// When the next attempt is due.
    pub due: Instant,
    /// The last attempt's error.
    pub error: String,
}

/// The delay after `attempts` failed attempts: 1 s, 2 s, 4 s, ... up to [`CAP`].
pub fn delay(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    FIRST.saturating_mul(1 << doublings).min(CAP)
}

impl Retry {
    /// The retry after one more failure (`before`: the retry it follows, if any).
    pub fn after(before: Option<&Retry>, error: String, now: Instant) -> Retry {
        let attempts = before.map_or(0, |r| r.attempts) + 1;
        Retry {
            attempts,
            due: now + delay(attempts),
            error,
        }
    }

    pub fn is_due(&self, now: Instant) -> bool {
        now >= self.due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_from_one_second_to_a_minute_and_stays_there() {
        let secs: Vec<u64> = (1..=9).map(|a| delay(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(delay(u32::MAX), CAP);
    }

    #[test]
    fn each_failure_counts_one_more_attempt_and_sets_the_next_due_time() {
        let now = Instant::now();
        let first = Retry::after(None, "File exists".into(), now);
        assert_eq!((first.attempts, first.due), (1, now + FIRST));
        assert!(!first.is_due(now) && first.is_due(now + FIRST));
        let second = Retry::after(Some(&first), "still".into(), now);
        assert_eq!(
            (second.attempts, second.due, second.error.as_str()),
            (2, now + Duration::from_secs(2), "still")
        );
    }
}
