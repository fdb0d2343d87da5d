#!/usr/bin/env bash
# The whole test suite, as CI runs it (as root, on Debian): prerequisites, formatting, lints,
# unit and property tests, the end-to-end tests against the real binary (each in namespaces of
# its own, against the static binary that is installed; the crash tests use a build with fault
# injection), bounded fuzzing, and a short run of the benchmark that only checks it still works.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
cargo clippy -p berth --features fault-injection --release -- -D warnings
cargo build --workspace --release
# The binary that is installed: static (see the script). The end-to-end tests drive it.
scripts/build-static.sh
export BERTH_BIN="$PWD/target/static/release/berth"
# The crash tests' berth, which can kill itself at a named step (BERTH_FAULT).
cargo build --release -p berth --features fault-injection --target-dir target/fault
cargo test --workspace --release
# Fuzz the lease file and resolv.conf parsers for a bounded time. cargo fuzz wants nightly
# flags (the sanitizer); RUSTC_BOOTSTRAP lets the machine's stable toolchain take them.
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
for target in lease_file resolv_conf; do
    if ! (cd netsetup && RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time=30) \
        >"target/fuzz-$target.log" 2>&1; then
        tail -40 "target/fuzz-$target.log"
        echo "fuzz target $target failed (log: target/fuzz-$target.log)" >&2
        exit 1
    fi
    grep -E '^Done [0-9]+ runs' "target/fuzz-$target.log" | sed "s/^/fuzz $target: /"
done
bench/run.sh --smoke
