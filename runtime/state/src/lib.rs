//! berth's durable records, for every crate of berth that keeps some: locks, atomic writes,
//! private directories, small files read safely, the identity of the process that owns a
//! record (pid, start time, boot id), and container ids.
//!
//! It knows files and processes, not containers or networks, and depends on nothing of berth's:
//! the network library keeps its leases with it, the runtime its containers and names.

mod error;
pub mod files;
mod identity;
mod ids;

pub use error::{Error, Result};
pub use files::{lock, private_dir, write_atomically};
pub use identity::{boot_id, process_alive, start_time, ProcStat, ProcessIdentity};
pub use ids::{new_id, short_id};
