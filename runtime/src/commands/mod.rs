//! One module per command.

pub mod gc;
pub mod network;
pub mod run;
