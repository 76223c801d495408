//! The kernel behind a trait, so the executor's ordering, journaling, rollback and fault
//! handling are testable without root (youki keeps its namespaces behind a trait for the
//! same reason).

use std::future::Future;

use super::error::KernelError;
use crate::plan::{Op, Undo};

/// How far [`Kernel::start`] took a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Begun {
    /// The step is done.
    Done,
    /// What it started is not ready yet: [`Kernel::ready`] waits for it.
    Pending,
}

pub trait Kernel: Sync {
    /// Performs one step, whole.
    fn apply(&self, op: &Op) -> impl Future<Output = Result<(), KernelError>> + Send;

    /// Performs one step up to what is left to wait for (a process getting ready). The
    /// executor calls this in a job slot and [`Kernel::ready`] after it without one, so
    /// processes that take their time hold back only the steps that depend on them.
    fn start(&self, op: &Op) -> impl Future<Output = Result<Begun, KernelError>> + Send {
        async move { self.apply(op).await.map(|()| Begun::Done) }
    }

    /// Waits until what `start` left [`Begun::Pending`] is ready; the step is then done.
    fn ready(&self, _op: &Op) -> impl Future<Output = Result<(), KernelError>> + Send {
        std::future::ready(Ok(()))
    }

    /// Removes one object. An object that is already gone counts as removed.
    fn undo(&self, undo: &Undo) -> impl Future<Output = Result<(), KernelError>> + Send;
}
