#!/usr/bin/env bash
# berth's quick start: installs the prerequisites, builds berth, and shows it at work inside a
# throwaway network and mount namespace, so it is safe on any machine:
#   1. nginx in a bridge container, fetched from the host with curl;
#   2. a container resolving a name that only a simulated upstream's DNS server knows, and
#      fetching a page from it through NAT (the upstream answers with the source it saw);
#   3. SIGTERM to berth: nginx stops, berth exits with its status, nothing is left behind.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${BERTH_SHOWCASE_INSIDE:-}" ]; then
    scripts/install-deps.sh
    cargo build --release --quiet
    exec env BERTH_SHOWCASE_INSIDE=1 unshare --net --mount --propagation private -- "$0"
fi

export PATH="$PWD/target/release:$PATH"
berth=berth
work=$(mktemp -d)
mount -t tmpfs berth-showcase "$work"
mkdir "$work/tmp"
export BERTH_ROOT="$work/berth" # berth's state, on this throwaway tmpfs
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done; done
    umount "$work" && rmdir "$work"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { # prints the command as one would type it, then runs it
    printf '$'
    for arg in "$@"; do
        case "$arg" in
            *[[:space:]\;\&\|\$]*) printf " '%s'" "$arg" ;;
            *) printf ' %s' "$arg" ;;
        esac
    done
    printf '\n'
    "$@"
}

# The simulated outside world: an "upstream" namespace at 198.51.100.2 with a web server that
# answers with the client address it sees, and a DNS server that knows web.upstream.test.
ip link set lo up
unshare --net -- sleep infinity &
upstream=$!
pids+=("$upstream")
sleep 0.05
ip link add uplink0 type veth peer name eth0 netns "$upstream"
ip addr add 198.51.100.1/24 dev uplink0
ip link set uplink0 up
ip route add default via 198.51.100.2
in_upstream() { nsenter --target "$upstream" --net -- "$@"; }
in_upstream ip link set lo up
in_upstream ip addr add 198.51.100.2/24 dev eth0
in_upstream ip link set eth0 up

nginx_conf() { # FILE LISTEN BODY
    cat >"$1" <<CONF
worker_processes 1;
pid $work/$(basename "$1").pid;
error_log stderr;
events {}
http {
    access_log off;
    client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp;
    uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
    server { listen $2; location / { default_type text/plain; return 200 "$3\n"; } }
}
CONF
}
nginx_conf "$work/upstream.conf" "198.51.100.2:80" 'upstream saw a request from $remote_addr'
nsenter --target "$upstream" --net -- nginx -e stderr -c "$work/upstream.conf" -g 'daemon off;' &
pids+=($!)
nsenter --target "$upstream" --net -- dnsmasq --keep-in-foreground --no-resolv --no-hosts --user=root \
    --listen-address=198.51.100.2 --bind-interfaces --pid-file="$work/dnsmasq.pid" \
    --host-record=web.upstream.test,198.51.100.2 2>/dev/null &
pids+=($!)
# This namespace's resolver is the upstream's DNS server (a private bind: the host's file is untouched).
echo "nameserver 198.51.100.2" >"$work/resolv.conf"
mount --bind "$work/resolv.conf" /etc/resolv.conf

say "1. nginx in a bridge container, reached from the host"
nginx_conf "$work/web.conf" 80 'hello from nginx in a berth container'
echo "\$ berth run --net bridge --name web nginx -e stderr -c web.conf -g 'daemon off;' &"
"$berth" run --net bridge --name web nginx -e stderr -c "$work/web.conf" -g 'daemon off;' &
web=$!
for _ in $(seq 100); do curl -s -o /dev/null http://10.201.0.2/ && break; sleep 0.05; done
show curl -s http://10.201.0.2/
show ip -br addr show berth0

say "2. a container resolves a name only the upstream knows, and reaches it through NAT"
show "$berth" run --net bridge --name client sh -c \
    'getent hosts web.upstream.test; curl -s http://web.upstream.test/; ip -br addr show eth0'
echo "(198.51.100.1 is the host's uplink address: the container's 10.201.0.3 was masqueraded)"

say "3. SIGTERM to berth stops nginx; berth exits with nginx's status and cleans up"
show kill -TERM "$web"
status=0
wait "$web" || status=$?
echo "berth exited with status $status"
for _ in $(seq 100); do [ -z "$(ip -br link show type veth | grep -v uplink0)" ] && break; sleep 0.05; done
show ip -br link
show ls "$BERTH_ROOT/containers"
echo "Only the bridge and berth's nftables table stay, for the next run:"
show nft list table inet berth
