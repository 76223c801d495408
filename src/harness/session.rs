//! The checks of a running lab, as its [`Session`] offers them: `nslab test` (with or
//! without `--lab`) and the Rust API's `RunningLab::check` run them here, on the
//! session's kernel. Written in the harness, which owns checks, so the runtime does not
//! import the harness that imports it (scenario steps use the runtime).

use super::{CheckResult, Context};
use crate::apply::executor::Cancel;
use crate::model::{Check, Topology};
use crate::runtime::{RuntimeError, Session};

impl Session<'_> {
    /// Runs every check and scenario step of `topology` (the lab's, as brought up or as
    /// the caller compiled it) against the lab, in order; `report` sees each result as
    /// soon as it is known.
    pub async fn check(
        &self,
        topology: &Topology,
        cancel: Cancel,
        report: &mut dyn FnMut(&CheckResult),
    ) -> Result<Vec<CheckResult>, RuntimeError> {
        let ctx = Context::new(topology, self.kernel()?);
        Ok(super::run(&ctx, cancel, report).await)
    }

    /// Runs one check of `topology` against the lab.
    pub async fn check_one(
        &self,
        topology: &Topology,
        check: &Check,
    ) -> Result<CheckResult, RuntimeError> {
        let ctx = Context::new(topology, self.kernel()?);
        Ok(super::run_one(&ctx, check).await)
    }
}
