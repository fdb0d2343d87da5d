//! `berth run`: the spec from one of the two front ends, the checks of the host, the split of
//! a detached run; then the engine's `launch` makes, runs and tears down the container.

use std::path::Path;

use crate::cli::RunArgs;
use crate::engine::detach;
use crate::engine::host::{canonical_root, check_nft_installed, check_privileges};
use crate::engine::launch::launch;
use crate::engine::oci;
use crate::engine::spec::{Network, RunSpec};
use crate::error::Result;
use crate::trace;
use berth_container::supervise::BlockedSignals;

/// Runs a container in the foreground; returns the workload's exit code.
pub fn run(root: &Path, args: RunArgs) -> Result<u8> {
    // 1. One validated spec, and the privileges and tools it needs, before anything is made.
    let spec = match &args.bundle {
        Some(bundle) => oci::spec_from_bundle(bundle, &args, root)?,
        None => RunSpec::from_args(args, root)?,
    };
    check_privileges("run")?;
    if matches!(spec.engine.network, Network::Bridge { .. }) {
        check_nft_installed()?;
    }
    trace::step("validated the spec");
    // Signals are blocked from here on (not while validating, which makes nothing: Ctrl-C
    // ends that at once), so that none can end berth halfway through its setup; one that
    // arrives is taken after the workload starts and forwarded to it.
    let signals = BlockedSignals::block()?;
    let root = &canonical_root(root)?;

    // In the background, berth splits: the caller returns once the workload runs.
    let mut notifier = None;
    if spec.engine.detached {
        match detach::split(&spec.engine.id)? {
            detach::Side::Caller(code) => return Ok(code),
            detach::Side::Supervisor(supervisor) => {
                // SAFETY: the arguments were parsed, and the supervisor, just forked, has one
                // thread.
                unsafe {
                    berth_container::sys::hide_command_line(&format!(
                        "berth supervisor {}",
                        spec.engine.name
                    ))
                };
                notifier = Some(supervisor)
            }
        }
    }
    let outcome = launch(root, &spec, &signals, notifier.as_mut());
    if let (Err(error), Some(notifier)) = (&outcome, notifier.as_mut()) {
        notifier.failed(error);
    }
    outcome
}
