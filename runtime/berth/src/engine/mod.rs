//! The engine: docker's semantics between the commands and the mechanism (the network registry,
//! published ports, the split of a detached run, what is asked of the host). Commands call it;
//! none calls another command.

pub mod container_network;
pub mod detach;
pub mod host;
pub mod networks;
pub mod oci;
pub mod ports;
pub mod spec;
pub mod state;
