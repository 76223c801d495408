//! nslab builds network labs out of Linux namespaces.
//!
//! The pipeline runs one way: YAML text ([`spec`]) → validated [`model::Topology`] →
//! ordered [`plan::Plan`]. Everything up to the plan is pure, so it is testable without
//! root and the same file always gives the same plan.

pub mod apply;
pub mod cli;
pub mod compile;
pub mod diag;
pub mod draw;
pub mod harness;
pub mod model;
pub mod plan;
pub mod probe;
pub mod spec;
pub mod state;

pub use compile::{CompileError, Compiled, compile_file, compile_str};
pub use diag::{Diagnostic, Report, Severity};
pub use model::Topology;
pub use plan::Plan;
