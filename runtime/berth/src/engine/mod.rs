//! The engine: docker's semantics between the commands and the mechanism (the two front ends
//! that make a `RunSpec`, the containers' records, the network registry, published ports, the
//! split of a detached run, garbage collection, what is asked of the host). Commands call it;
//! none calls another command.

pub mod container_network;
pub mod detach;
pub mod gc;
pub mod host;
pub mod kept;
pub mod launch;
pub mod networks;
pub mod oci;
pub mod ports;
pub mod spec;
pub mod state;
