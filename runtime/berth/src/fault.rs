//! Fault injection for the crash tests: built only with the `fault-injection` feature, it
//! lets a test make berth kill itself with SIGKILL at a named step (`BERTH_FAULT=after-lease`).

/// The named steps, in the order a run passes them.
#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
pub const STEPS: [&str; 8] = [
    "after-state",
    "after-lease",
    "after-network",
    "after-clone",
    "after-veth",
    "after-exec",
    "before-teardown",
    "during-teardown",
];

/// Dies with SIGKILL here when `BERTH_FAULT` names `step`.
#[cfg(feature = "fault-injection")]
pub fn point(step: &str) {
    debug_assert!(STEPS.contains(&step));
    if std::env::var_os("BERTH_FAULT").is_some_and(|s| s == step) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

/// Does nothing: this build has no fault injection.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_step: &str) {}
