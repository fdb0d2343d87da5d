#!/usr/bin/env bash
# Installs berth for everyday use (as root): the binary in /usr/local/bin, the man pages in
# /usr/local/share/man/man1, and completions for bash, zsh and fish. Installs the static build,
# target/static/release/berth: make it first as yourself with scripts/build-static.sh (about two
# minutes the first time); the script builds it only if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${PREFIX:-/usr/local}

[ -x target/static/release/berth ] || scripts/build-static.sh
install -D -m 0755 target/static/release/berth "$prefix/bin/berth"
install -d "$prefix/share/man/man1"
install -m 0644 man/*.1 "$prefix/share/man/man1/"
install -d "$prefix/share/bash-completion/completions" "$prefix/share/zsh/site-functions" \
    "$prefix/share/fish/vendor_completions.d"
"$prefix/bin/berth" completions bash >"$prefix/share/bash-completion/completions/berth"
"$prefix/bin/berth" completions zsh >"$prefix/share/zsh/site-functions/_berth"
"$prefix/bin/berth" completions fish >"$prefix/share/fish/vendor_completions.d/berth.fish"
echo "installed berth, its man pages and completions under $prefix"
