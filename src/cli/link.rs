//! `nslab link down|up|impair NODE:IFACE`

use std::time::Duration;

use super::{CliError, exit, lab_arg};
use crate::model::Impair;
use crate::runtime::{Access, Session};

/// What `nslab link` does to the link.
pub enum Action {
    Down,
    Up,
    Impair(Option<Impair>),
}

/// The impairment flags of `nslab link impair`.
#[derive(Debug, clap::Args)]
pub struct ImpairArgs {
    /// Added one-way delay, for example 20ms.
    #[arg(long, value_parser = super::duration_arg)]
    delay: Option<Duration>,
    /// Random variation around the delay, for example 5ms.
    #[arg(long, value_parser = super::duration_arg)]
    jitter: Option<Duration>,
    /// Packets dropped, for example 1%.
    #[arg(long, value_parser = super::percent_arg)]
    loss: Option<f64>,
    /// Packets sent twice, for example 0.5%.
    #[arg(long, value_parser = super::percent_arg)]
    duplicate: Option<f64>,
    /// Packets with a flipped bit, for example 0.1%.
    #[arg(long, value_parser = super::percent_arg)]
    corrupt: Option<f64>,
    /// Packets sent at once, ahead of the delayed ones (needs --delay).
    #[arg(long, value_parser = super::percent_arg)]
    reorder: Option<f64>,
    /// Bandwidth cap, for example 10mbit, 512kbit, 1gbit.
    #[arg(long, value_parser = super::rate_arg)]
    rate: Option<u64>,
    /// Remove the impairment.
    #[arg(long)]
    clear: bool,
}

impl ImpairArgs {
    /// `None` for `--clear`; an error when `--clear` comes with something to set.
    pub fn into_impair(self) -> Result<Option<Impair>, CliError> {
        let imp = Impair {
            delay: self.delay,
            jitter: self.jitter,
            loss: self.loss,
            duplicate: self.duplicate,
            corrupt: self.corrupt,
            reorder: self.reorder,
            rate: self.rate,
        };
        if self.clear {
            if imp != Impair::default() {
                return Err(CliError::Usage(
                    "--clear removes the impairment; it cannot be combined with values to set"
                        .into(),
                ));
            }
            return Ok(None);
        }
        Ok(Some(imp))
    }
}

pub fn run(
    host: &crate::state::HostContext,
    lab: Option<&str>,
    target: &str,
    action: Action,
    one_side: bool,
) -> Result<u8, CliError> {
    let lab = lab_arg(host, None, lab)?;
    let rt = crate::apply::tokio_runtime()?;
    let event = rt.block_on(async {
        let s = Session::open(host, &lab, Access::Change)?;
        match action {
            Action::Down => s.set_link(target, false, one_side).await,
            Action::Up => s.set_link(target, true, one_side).await,
            Action::Impair(imp) => s.impair(target, imp, one_side).await,
        }
    })?;
    super::print_event(&event);
    Ok(exit::OK)
}
