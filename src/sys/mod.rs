//! The lowest layer of the execution side: where the host keeps what nslab names, and
//! the raw system calls nix has no safe call for, each behind a safe wrapper whose one
//! comment says why it is sound. Both `apply` (which creates namespaces) and `node`
//! (whose inits and `exec` enter them) use it, so neither has to reach into the other.

pub mod bounded;
pub mod fd;
pub mod mem;
pub mod netns;
pub mod pidfd;
pub mod process;
