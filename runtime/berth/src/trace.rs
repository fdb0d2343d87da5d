//! `BERTH_TRACE=1`: the time each step of a run takes, on stderr, so that a regression can be
//! found without a profiler.

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Option<Instant>> = OnceLock::new();

/// Starts the clock when `BERTH_TRACE` is set to anything but empty or `0`.
pub fn init() {
    START.get_or_init(|| {
        std::env::var_os("BERTH_TRACE")
            .filter(|v| !v.is_empty() && v != "0")
            .map(|_| Instant::now())
    });
}

/// Prints how long after start-up `step` was reached, when tracing.
pub fn step(step: &str) {
    if let Some(Some(start)) = START.get() {
        eprintln!(
            "berth: trace {:>8.3} ms  {step}",
            start.elapsed().as_secs_f64() * 1e3
        );
    }
}
