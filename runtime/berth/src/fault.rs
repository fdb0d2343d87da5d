//! Fault injection for the crash tests: built only with the `fault-injection` feature, it
//! lets a test make berth kill itself with SIGKILL at a named step (`BERTH_FAULT=after-lease`),
//! or stop itself there with SIGSTOP (`BERTH_FAULT=after-veth:stop`) until a SIGCONT.

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

/// Dies with SIGKILL here when `BERTH_FAULT` names `step`; stops with SIGSTOP when it names
/// `step:stop`.
#[cfg(feature = "fault-injection")]
pub fn point(step: &str) {
    use nix::sys::signal::{raise, Signal};
    debug_assert!(STEPS.contains(&step));
    let Some(fault) = std::env::var_os("BERTH_FAULT") else {
        return;
    };
    if fault == step {
        let _ = raise(Signal::SIGKILL);
    } else if fault.to_str().and_then(|f| f.strip_suffix(":stop")) == Some(step) {
        let _ = raise(Signal::SIGSTOP);
    }
}

/// Does nothing: this build has no fault injection.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_step: &str) {}
