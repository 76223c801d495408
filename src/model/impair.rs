//! A link impairment as every layer below the parser sees it: the plan's `set-impair`, the
//! qdisc messages, `nslab link impair` and scenario steps. The topology reader and the
//! command line check it by the same rules, and it is described in one way everywhere.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::diag::Sink;
use crate::spec::raw::{RawImpair, format_duration};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Impair {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_duration",
        deserialize_with = "de_opt_duration"
    )]
    pub delay: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_duration",
        deserialize_with = "de_opt_duration"
    )]
    pub jitter: Option<Duration>,
    /// Fractions of 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<f64>,
    /// Bits per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
}

/// What makes an impairment unusable, worded by each caller for its own syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// It sets nothing.
    Empty,
    /// `jitter` varies a delay that is not there.
    JitterWithoutDelay,
    /// `reorder` sends some packets without a delay that is not there.
    ReorderWithoutDelay,
}

impl Impair {
    /// Whether it needs the netem qdisc (anything beyond a plain rate limit).
    pub fn needs_netem(&self) -> bool {
        self.delay.is_some()
            || self.jitter.is_some()
            || self.loss.is_some()
            || self.duplicate.is_some()
            || self.corrupt.is_some()
            || self.reorder.is_some()
    }

    /// Every rule it breaks, in the order a reader fixes them.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if !self.needs_netem() && self.rate.is_none() {
            out.push(Problem::Empty);
        }
        if self.jitter.is_some() && self.delay.is_none() {
            out.push(Problem::JitterWithoutDelay);
        }
        if self.reorder.is_some() && self.delay.is_none() {
            out.push(Problem::ReorderWithoutDelay);
        }
        out
    }
}

impl From<&RawImpair> for Impair {
    fn from(raw: &RawImpair) -> Impair {
        Impair {
            delay: raw.delay,
            jitter: raw.jitter,
            loss: raw.loss,
            duplicate: raw.duplicate,
            corrupt: raw.corrupt,
            reorder: raw.reorder,
            rate: raw.rate,
        }
    }
}

/// The model's impairment of a written one, with every rule it breaks reported at it.
pub fn of_raw(sink: &mut Sink, raw: &RawImpair) -> Option<Box<Impair>> {
    let imp = Impair::from(raw);
    let problems = imp.problems();
    for p in &problems {
        let (msg, hint) = match p {
            Problem::Empty => (
                "`impair` sets nothing",
                "give at least one of `rate`, `delay`, `loss`, `duplicate`, `corrupt`; or remove it",
            ),
            Problem::JitterWithoutDelay => (
                "`jitter` needs a `delay` to vary around",
                "for example `{ delay: 20ms, jitter: 5ms }`",
            ),
            Problem::ReorderWithoutDelay => (
                "`reorder` needs a `delay`: packets are reordered by sending some without it",
                "for example `{ delay: 10ms, reorder: 25% }`",
            ),
        };
        sink.error(Some(raw.span), msg).hint(hint);
    }
    problems.is_empty().then(|| Box::new(imp))
}

/// `delay 10ms, jitter 2ms, loss 0.5%, rate 10mbit`: the plan's text, the event log and
/// scenario step names all say it this way.
impl fmt::Display for Impair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(d) = self.delay {
            parts.push(format!("delay {}", format_duration(d)));
        }
        if let Some(d) = self.jitter {
            parts.push(format!("jitter {}", format_duration(d)));
        }
        for (name, v) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("corrupt", self.corrupt),
            ("reorder", self.reorder),
        ] {
            if let Some(v) = v {
                // 0.07 * 100 is 7.000000000000001: round to what a user can type.
                let pct = format!("{:.4}", v * 100.0);
                let pct = pct.trim_end_matches('0').trim_end_matches('.');
                parts.push(format!("{name} {pct}%"));
            }
        }
        if let Some(r) = self.rate {
            parts.push(format!("rate {}", rate_text(r)));
        }
        f.write_str(&parts.join(", "))
    }
}

/// A rate the way tc writes it: `10mbit`, `1.5gbit`, `512kbit`, `300bit`.
pub fn rate_text(bps: u64) -> String {
    for (unit, scale) in [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3)] {
        if bps as f64 >= scale {
            return format!("{}{unit}", bps as f64 / scale);
        }
    }
    format!("{bps}bit")
}

fn ser_opt_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format_duration(*d)),
        None => s.serialize_none(),
    }
}

fn de_opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = <String as Deserialize>::deserialize(d)?;
    crate::spec::values::parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn described_the_way_a_user_writes_it() {
        let i = Impair {
            delay: Some(Duration::from_millis(10)),
            jitter: Some(Duration::from_micros(1500)),
            loss: Some(0.07),
            rate: Some(1_500_000_000),
            ..Impair::default()
        };
        assert_eq!(
            i.to_string(),
            "delay 10ms, jitter 1500us, loss 7%, rate 1.5gbit"
        );
        assert!(i.problems().is_empty());
    }

    #[test]
    fn the_shared_rules() {
        assert_eq!(Impair::default().problems(), [Problem::Empty]);
        let jitter = Impair {
            jitter: Some(Duration::from_millis(1)),
            reorder: Some(0.1),
            ..Impair::default()
        };
        assert_eq!(
            jitter.problems(),
            [Problem::JitterWithoutDelay, Problem::ReorderWithoutDelay]
        );
        let rate = Impair {
            rate: Some(1000),
            ..Impair::default()
        };
        assert!(!rate.needs_netem() && rate.problems().is_empty());
    }
}
