//! berth's mechanism: one container's namespaces, the clone and the child's side of it, its
//! root filesystem, its process (user, capabilities, terminal), and its supervision and log.
//! It knows no command line, no network library and no engine: a caller hands it a
//! [`child::ChildPlan`] and does its own part (the network) through [`child::NetworkHook`].

pub mod capabilities;
pub mod child;
pub mod error;
pub mod init;
pub mod lifecycle;
pub mod log;
pub mod mounts;
pub mod namespaces;
pub mod plan;
pub mod process;
pub mod read_only_exe;
pub mod rootfs;
pub mod supervise;
pub mod sys;
pub mod terminal;
pub mod user;

pub use error::{Error, Result};
pub use lifecycle::Lifecycle;
