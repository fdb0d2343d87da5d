#!/usr/bin/env bash
# The whole test suite, as CI runs it (as root, on Debian): prerequisites, formatting, lints,
# unit tests, the end-to-end tests against the real binary (each in namespaces of its own),
# and a short run of the benchmark that only checks it still works.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
cargo build --workspace --release
# The crash tests' berth, which can kill itself at a named step (BERTH_FAULT).
cargo build --release -p berth --features fault-injection --target-dir target/fault
cargo test --workspace --release
bench/run.sh --smoke
