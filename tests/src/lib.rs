//! End-to-end test harness for berth: every test gets a [`World`] of its own (a "host" network
//! and mount namespace with an "upstream" behind it) and runs the real berth binary in it.
//! Nothing is ever created in the machine's own namespaces; see `world.rs`.

pub mod sys;
pub mod util;
pub mod world;

pub use util::{
    parse_leases, poll, sh_wait_for_file, unique, unique_sleep_arg, wait_for_file, Lease, TempDir,
};
pub use world::{
    berth_bin, berth_fault_bin, cni_bin, describe, Bg, Outcome, World, DEFAULT_TIMEOUT, HOST_ADDR,
    HOST_ADDR6, HOST_RESOLV_CONF, STD_PATH, UPSTREAM_ADDR, UPSTREAM_ADDR6, UPSTREAM_FIXED_BODY,
    UPSTREAM_NAME, UPSTREAM_NAME6, VETH_GONE_TIMEOUT,
};
