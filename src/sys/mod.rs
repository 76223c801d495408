//! The lowest layer of the execution side: where the host keeps what nslab names. Both
//! `apply` (which creates namespaces) and `node` (whose inits and `exec` enter them) use
//! it, so neither has to reach into the other.

pub mod bounded;
pub mod netns;
pub mod pidfd;
