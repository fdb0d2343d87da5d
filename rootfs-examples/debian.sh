#!/usr/bin/env bash
# Builds a minimal Debian bookworm root filesystem in DIR (default: rootfs-examples/debian)
# with `debootstrap --variant=minbase`: bash, coreutils, dpkg and apt (sources.list pointing at
# the mirror), no init and no network tools. Downloads from $DEBIAN_MIRROR (default
# http://deb.debian.org/debian). Idempotent: a finished root (marked by DIR/.debian.sh-done)
# is kept as it is and only checked, so a second run takes no time; remove DIR to build it
# afresh. An interrupted build is started over. Needs root and debootstrap
# (apt-get install debootstrap).
#
#   rootfs-examples/debian.sh [DIR]
#   berth run --rootfs rootfs-examples/debian cat /etc/debian_version
#   berth run --rootfs rootfs-examples/debian bash
set -euo pipefail
dir=${1:-"$(dirname "$0")/debian"}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
marker=.debian.sh-done

finished() { [ -f "$dir/$marker" ] && [ -f "$dir/var/lib/dpkg/status" ]; }

if ! finished; then
    command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || {
        echo "debian.sh: install debootstrap first (apt-get install debootstrap)" >&2
        exit 1
    }
    [ "$(id -u)" -eq 0 ] || { echo "debian.sh: debootstrap needs root" >&2; exit 1; }
    if [ -d "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
        # Only a build of ours that did not finish is removed; anything else is left alone.
        if ! [ -d "$dir/debootstrap" ]; then
            echo "debian.sh: $dir is not empty and holds no root made by debian.sh;" \
                "remove it or choose another DIR" >&2
            exit 1
        fi
        real=$(realpath "$dir")
        if awk -v d="$real" '$5 == d || index($5, d "/") == 1 { found = 1 } END { exit !found }' \
            /proc/self/mountinfo; then
            echo "debian.sh: something is still mounted under $dir (an interrupted debootstrap?);" \
                "unmount it first: findmnt -R $real" >&2
            exit 1
        fi
        echo "debian.sh: starting over the unfinished build in $dir"
        rm -rf --one-file-system "$dir"
    fi
    mkdir -p "$dir"
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        debootstrap --variant=minbase "$suite" "$dir" "$mirror"
    # debootstrap copies the host's hostname in; the root gets its own (berth binds the
    # container's over it anyway).
    echo localhost >"$dir/etc/hostname"
    chmod 0644 "$dir/etc/hostname" "$dir/etc/resolv.conf" 2>/dev/null || true
    rm -f "$dir"/var/cache/apt/archives/*.deb
    echo "$suite $mirror" >"$dir/$marker"
else
    echo "debian.sh: $dir already holds a finished $suite root ($(cat "$dir/etc/debian_version"))"
fi

# What berth needs of a root: its mount points, and /etc/hosts, /etc/hostname and
# /etc/resolv.conf as files, not links (berth binds its own over them and refuses links).
mkdir -p "$dir"/{proc,sys,dev}
for f in hosts hostname resolv.conf; do
    if [ -L "$dir/etc/$f" ] || ! [ -e "$dir/etc/$f" ]; then
        rm -f "$dir/etc/$f"
        case $f in
        hosts) printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' ;;
        hostname) echo localhost ;;
        resolv.conf) : ;;
        esac >"$dir/etc/$f"
    fi
done
echo "debian.sh: root filesystem ready in $dir"
