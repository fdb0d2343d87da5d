//! One module per command.

pub mod gc;
pub mod run;
