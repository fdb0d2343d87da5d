#!/usr/bin/env bash
# Builds a root filesystem that runs nginx in DIR (default: rootfs-examples/nginx), with no
# download: busybox.sh's root, plus the host's nginx (Debian's nginx package) with exactly the
# shared libraries it loads (ldd, the dynamic loader included), a small /etc/nginx/nginx.conf
# of its own (port 80, serves /var/www/html/index.html, which it writes too; error log to
# stderr, access log to stdout; workers as www-data), Debian's mime.types, the www-data user
# and group, and the directories nginx writes to (/var/log/nginx, /var/lib/nginx, /run).
# Idempotent: run it again to bring DIR up to date (files that have not changed are left as
# they are). Needs busybox-static and nginx (apt-get install busybox-static nginx).
#
#   rootfs-examples/nginx.sh [DIR]
#   berth run -d -p 8080:80 --rootfs rootfs-examples/nginx nginx -g 'daemon off;'
#   curl http://127.0.0.1:8080/
set -euo pipefail
dir=${1:-"$(dirname "$0")/nginx"}
nginx=/usr/sbin/nginx
mime_types=/etc/nginx/mime.types
[ -x "$nginx" ] && [ -f "$mime_types" ] || {
    echo "nginx.sh: install nginx first (apt-get install nginx)" >&2
    exit 1
}

bash "$(dirname "$0")/busybox.sh" "$dir" >/dev/null

# put SRC DEST MODE: SRC's contents (links followed) at DIR/DEST, unless they are there.
put() {
    cmp -s "$1" "$dir$2" 2>/dev/null || install -D -m "$3" "$1" "$dir$2"
}
# write DEST: standard input at DIR/DEST (mode 0644), unless it is there.
write() {
    local tmp
    tmp=$(mktemp)
    cat >"$tmp"
    put "$tmp" "$1" 0644
    rm -f "$tmp"
}

# The binary and the libraries the loader maps for it, at the paths ldd names: the loader
# (/lib64/ld-linux-x86-64.so.2 on amd64) finds the others in /lib/<triplet> without a cache.
put "$nginx" /usr/sbin/nginx 0755
libs=$(ldd "$nginx") || { echo "nginx.sh: ldd $nginx failed" >&2; exit 1; }
if grep -q 'not found' <<<"$libs"; then
    echo "nginx.sh: $nginx misses libraries on this host:" >&2
    echo "$libs" >&2
    exit 1
fi
for lib in $(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$libs"); do
    put "$lib" "$lib" 0755
done

put "$mime_types" /etc/nginx/mime.types 0644
write /etc/nginx/nginx.conf <<'EOF'
# Written by rootfs-examples/nginx.sh. Run in the foreground: nginx -g 'daemon off;'
user www-data;
worker_processes 1;
pid /run/nginx.pid;
error_log stderr;

events {
    worker_connections 512;
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /dev/stdout;
    sendfile on;

    server {
        listen 80 default_server;
        root /var/www/html;
        index index.html;
    }
}
EOF
write /var/www/html/index.html <<'EOF'
<!DOCTYPE html>
<html><head><title>berth</title></head>
<body><p>nginx in a berth root filesystem</p></body></html>
EOF

# www-data as on Debian (busybox.sh rewrites passwd and group: add it back).
grep -q '^www-data:' "$dir/etc/passwd" ||
    echo 'www-data:x:33:33:www-data:/var/www:/bin/false' >>"$dir/etc/passwd"
grep -q '^www-data:' "$dir/etc/group" || echo 'www-data:x:33:' >>"$dir/etc/group"

# The compiled-in paths nginx writes to: its logs (opened before the config is read), its
# temporary files (it makes the subdirectories) and its pid file.
mkdir -p "$dir"/{var/log/nginx,var/lib/nginx,run}
echo "nginx.sh: root filesystem ready in $dir"
