#!/usr/bin/env bash
# Installs berth for everyday use (as root): the binary in /usr/local/bin, the man pages in
# /usr/local/share/man/man1 (berth-cni's in man8), completions for bash, zsh and fish, and the
# CNI plugin berth-cni in /opt/cni/bin (CNI_BIN_DIR=... for another plugin directory). Installs
# the static builds, target/static/release/berth and berth-cni: make them first as yourself
# with scripts/build-static.sh (about two minutes the first time); the script builds them only
# if one is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${PREFIX:-/usr/local}
cni_bin_dir=${CNI_BIN_DIR:-/opt/cni/bin}

[ -x target/static/release/berth ] && [ -x target/static/release/berth-cni ] || scripts/build-static.sh
install -D -m 0755 target/static/release/berth "$prefix/bin/berth"
install -D -m 0755 target/static/release/berth-cni "$cni_bin_dir/berth-cni"
install -D -m 0644 man/berth-cni.8 "$prefix/share/man/man8/berth-cni.8"
install -d "$prefix/share/man/man1"
install -m 0644 man/*.1 "$prefix/share/man/man1/"
install -d "$prefix/share/bash-completion/completions" "$prefix/share/zsh/site-functions" \
    "$prefix/share/fish/vendor_completions.d"
"$prefix/bin/berth" completions bash >"$prefix/share/bash-completion/completions/berth"
"$prefix/bin/berth" completions zsh >"$prefix/share/zsh/site-functions/_berth"
"$prefix/bin/berth" completions fish >"$prefix/share/fish/vendor_completions.d/berth.fish"
echo "installed berth, its man pages and completions under $prefix, and berth-cni in $cni_bin_dir"
