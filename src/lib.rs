//! nslab builds network labs out of Linux namespaces.
//!
//! The pipeline runs one way: YAML text ([`spec`]) → validated [`model::Topology`] →
//! ordered [`plan::Plan`] → kernel objects ([`apply`]). Everything up to the plan is pure,
//! so it is testable without root and the same file always gives the same plan.
//!
//! For tests of networked software, [`Lab`] brings a lab up from `cargo test` and tears
//! it down on drop.

pub mod agent;
pub mod apply;
pub mod attrs;
pub mod clab;
pub mod cli;
pub mod compile;
pub mod diag;
pub mod draw;
pub mod guard;
pub mod harness;
#[doc(hidden)]
pub mod invariants;
pub mod k8s;
pub mod kinds;
pub mod lab;
pub mod model;
pub mod node;
pub mod out;
pub mod plan;
pub mod preflight;
pub mod probe;
pub mod rootless;
pub mod runtime;
pub mod spec;
pub mod state;
pub mod sys;
pub mod words;
pub mod xml;

pub use compile::{CompileError, Compiled, compile_file, compile_str, preflight, preflight_for};
pub use diag::{Diagnostic, Report, Severity};
pub use lab::{Error, Lab, RunningLab};
pub use model::Topology;
pub use plan::Plan;
