#!/usr/bin/env bash
# Builds a small root filesystem from Debian's busybox-static in DIR (default:
# rootfs-examples/busybox): a static busybox and a link per applet, /etc/passwd and
# /etc/group, and the mount points berth fills. Idempotent: run it again to bring DIR up to
# date. Needs busybox-static (apt-get install busybox-static).
#
#   rootfs-examples/busybox.sh [DIR]
#   berth run --rootfs rootfs-examples/busybox sh -c 'cat /etc/hostname; ip -o addr'
set -euo pipefail
dir=${1:-"$(dirname "$0")/busybox"}
busybox=/bin/busybox
if ! [ -x "$busybox" ] || ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
    # Without `file`, trust the package.
    dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "ok installed" || {
        echo "busybox.sh: install busybox-static first (apt-get install busybox-static)" >&2
        exit 1
    }
fi
mkdir -p "$dir"/{bin,etc,proc,sys,dev,tmp,root}
chmod 1777 "$dir/tmp"
install -m 0755 "$busybox" "$dir/bin/busybox"
for applet in $("$dir/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sfn busybox "$dir/bin/$applet"
done
ln -sfn bin "$dir/sbin"
printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/tmp:/bin/sh\n' >"$dir/etc/passwd"
printf 'root:x:0:\nuser:x:1000:\n' >"$dir/etc/group"
echo "busybox.sh: root filesystem ready in $dir"
