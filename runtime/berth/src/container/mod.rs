//! The container's lifecycle: its validated spec, the clone and the child's side of it,
//! supervision, the root filesystem, and the state kept under `--root`.

pub mod capabilities;
pub mod child;
pub mod init;
pub mod log;
pub mod mounts;
pub mod namespaces;
pub mod oci;
pub mod process;
pub mod read_only_exe;
pub mod rootfs;
pub mod spec;
pub mod state;
pub mod supervise;
pub mod terminal;
pub mod user;
