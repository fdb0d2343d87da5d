//! One module per command.

pub mod run;
