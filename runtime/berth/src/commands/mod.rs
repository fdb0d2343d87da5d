//! One module per command.

pub mod doctor;
pub mod exec;
pub mod gc;
pub mod logs;
pub mod network;
pub mod ps;
pub mod run;
pub mod stop;
pub mod table;
