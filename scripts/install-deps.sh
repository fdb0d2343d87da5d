#!/usr/bin/env bash
# Installs what berth's build, tests, demo and benchmark need on Debian (run as root):
# nftables and iproute2 (berth's needs), nginx, curl, dnsmasq-base, iputils-ping, dig, radvd, busybox-static (the test
# worlds' servers and clients), hyperfine, jq, column and iperf3 (the benchmark), g++ (libFuzzer, built
# by cargo fuzz), podman, runc, containernetworking-plugins and iptables (berth-cni's tests: a
# real CNI client, and the reference plugins chained after it; runc's `runc spec` also writes a
# bundle a test runs). Rust >= 1.85 must be there
# already (rustup); Debian's own cargo is too old.
#
# Debian starts nginx as a host service when it is installed; a policy-rc.d that forbids
# service starts is put in place for the install (unless one exists) and removed after, so
# the machine gains packages and nothing that listens.
set -euo pipefail

packages=(nftables iproute2 nginx curl dnsmasq-base iputils-ping hyperfine jq procps util-linux
    bsdextrautils hostname g++ iperf3 bind9-dnsutils radvd busybox-static
    podman runc containernetworking-plugins iptables)

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: these packages are missing: ${missing[*]}; run this script as root" >&2
        exit 1
    fi
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    echo "install-deps: installed ${missing[*]}"
fi

if ! command -v cargo >/dev/null; then
    echo "install-deps: cargo not found: install Rust >= 1.85 with rustup (https://rustup.rs)" >&2
    exit 1
fi
