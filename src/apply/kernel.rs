//! The kernel behind a trait, so the executor's ordering, journaling, rollback and fault
//! handling are testable without root (youki keeps its namespaces behind a trait for the
//! same reason).

use std::future::Future;

use super::error::KernelError;
use crate::plan::{Op, Undo};

pub trait Kernel: Sync {
    /// Performs one step.
    fn apply(&self, op: &Op) -> impl Future<Output = Result<(), KernelError>> + Send;

    /// Removes one object. An object that is already gone counts as removed.
    fn undo(&self, undo: &Undo) -> impl Future<Output = Result<(), KernelError>> + Send;
}
