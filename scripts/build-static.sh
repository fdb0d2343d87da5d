#!/usr/bin/env bash
# Builds berth as a static executable, glibc linked in: target/static/release/berth, the binary
# that scripts/install.sh installs and bench/run.sh measures. It starts about 0.6 ms sooner
# than the dynamic target/release/berth (no loader, and no libgcc_s, whose constructor queries
# the CPU: costly in a virtual machine), which a 4 ms run notices. crt-static cannot go in the
# workspace's rustflags, since proc-macro crates cannot be built with it: `cargo rustc` gives it
# to the binary alone.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo rustc --quiet --release -p berth --bin berth --target-dir target/static \
    -- -C target-feature=+crt-static
# The CNI plugin likewise: target/static/release/berth-cni.
cargo rustc --quiet --release -p berth-cni --bin berth-cni --target-dir target/static \
    -- -C target-feature=+crt-static
