//! One module per command.

pub mod doctor;
pub mod gc;
pub mod network;
pub mod run;
