#!/usr/bin/env bash
# berth's benchmark, in four tables, all measured in one invocation:
#  1. start-up: the median wall time of `berth run --net none|host|bridge true` against the
#     floor, `unshare --net --uts --mount true` (hyperfine);
#  2. scale (berth-bench scale): teardown time, 100 runs at once, a supervisor's memory, and a
#     run and `berth ps` with 1000 containers running;
#  3. published ports (berth-bench ports): `berth run --net bridge -p 18080:80 true` with no
#     other container, with 500 running, and with 500 that publish a port each, and the nft
#     ruleset's rule count with none and with the 500 published;
#  4. throughput: TCP from a container to the host across berth0, against the same path built
#     by hand with `ip` (iperf3);
#  5. the CNI plugin (berth-bench cni): berth-cni's ADD+DEL on a fresh namespace against
#     Debian's reference bridge + host-local plugins with the same subnet.
# Runs inside network and mount namespaces of its own, with berth's state on a tmpfs there:
# the machine's own network and mount table are never touched.
#
#   bench/run.sh [--runs N] [--berth PATH] [--smoke]
#
# Prints min, median, p90 and max per figure, the value compared with its target, and exits 1
# when a target is missed. --smoke: few runs and 50 containers, and a missed target is only
# reported (figures from a short run on a busy machine say little). Needs hyperfine, jq,
# iperf3, nft and the berth-bench binary (cargo build --release --workspace).
set -euo pipefail

runs=300
smoke=
berth=
here=$(cd "$(dirname "$0")" && pwd)
bench_bin="$here/../target/release/berth-bench"
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --berth) berth=$2; shift 2 ;;
        --smoke) smoke=1; runs=30; shift ;;
        *) echo "usage: $0 [--runs N] [--berth PATH] [--smoke]" >&2; exit 2 ;;
    esac
done
# Without --berth: the static build (scripts/build-static.sh), which install.sh installs,
# brought up to date when cargo is at hand; else the dynamic one.
if [ -z "$berth" ]; then
    if [ -z "${BERTH_BENCH_INSIDE:-}" ] && command -v cargo >/dev/null; then
        "$here/../scripts/build-static.sh"
    fi
    berth="$here/../target/static/release/berth"
    [ -x "$berth" ] || berth="$here/../target/release/berth"
fi
berth=$(realpath "$berth")
for tool in hyperfine jq unshare iperf3 nsenter nft; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install $tool)" >&2; exit 2; }
done
[ -x "$berth" ] || { echo "bench: no berth binary at $berth (cargo build --release)" >&2; exit 2; }
[ -x "$bench_bin" ] || { echo "bench: no $bench_bin (cargo build --release --workspace)" >&2; exit 2; }

if [ -z "${BERTH_BENCH_INSIDE:-}" ]; then
    exec env BERTH_BENCH_INSIDE=1 BERTH_BENCH_SMOKE="$smoke" unshare --net --mount --propagation private -- "$0" --runs "$runs" --berth "$berth"
fi

# Inside our own namespaces from here on.
echo "berth: $berth ($(ldd "$berth" 2>&1 | grep -q 'statically linked' && echo static || echo dynamic))"
ip link set lo up
work=$(mktemp -d)
mount -t tmpfs berth-bench "$work"
root="$work/root"
"$berth" --root "$root" run --net bridge true # creates the bridge and the table once

# The runs are made in rounds, every command once per round in turn, and pooled: on a machine
# whose speed drifts (a busy neighbour, a virtual CPU), every command sees the same drift.
rounds=10
per_round=$(( (runs + rounds - 1) / rounds ))
for round in $(seq "$rounds"); do
    hyperfine --shell=none --warmup "$([ "$round" = 1 ] && echo 20 || echo 2)" \
        --runs "$per_round" --export-json "$work/round-$round.json" \
        -n floor "unshare --net --uts --mount true" \
        -n none "$berth --root $root run --net none true" \
        -n host "$berth --root $root run --net host true" \
        -n bridge "$berth --root $root run --net bridge true" >/dev/null 2>"$work/hyperfine.log" ||
        { cat "$work/hyperfine.log" >&2; exit 2; }
done
jq -s '{results: [.[].results[]] | group_by(.command)
        | map({command: .[0].command, times: (map(.times[]) | sort)})
        | map(. + {min: .times[0], max: .times[-1],
                   median: .times[(.times | length) / 2 | floor]})
        | sort_by(["floor", "none", "host", "bridge"] as $order
                  | .command as $c | $order | index($c))}' \
    "$work"/round-*.json >"$work/results.json"

# name, target ratio of the median to the floor's median.
targets='{"floor": null, "none": 1.5, "host": 1.5, "bridge": 2.5}'
table=$(jq -r --argjson targets "$targets" '
  def ms: . * 1000 * 100 | round / 100;
  def p90: sort | .[(length * 0.9 | floor)];
  (.results[] | select(.command == "floor") | .median) as $floor
  | ["command", "min ms", "median ms", "p90 ms", "max ms", "ratio", "target", "result"],
    (.results[] | [ .command, (.min | ms), (.median | ms), (.times | p90 | ms), (.max | ms),
       ((.median / $floor * 100 | round) / 100),
       ($targets[.command] // "-"),
       (if $targets[.command] == null then "baseline"
        elif .median / $floor <= $targets[.command] then "ok" else "MISSED" end) ])
  | @tsv' "$work/results.json")
echo "$table" | column -t -s $'\t'
missed=
echo "$table" | grep -q MISSED && missed=1

# 2. Scale.
echo
if [ -n "${BERTH_BENCH_SMOKE:-}" ]; then
    scale=(--containers 50 --runs 20 --smoke)
    ports=(--containers 50 --runs 20 --smoke)
else
    scale=(--containers 1000 --runs 200)
    ports=(--containers 500 --runs 200)
fi
"$bench_bin" scale --berth "$berth" --root "$root" "${scale[@]}" || missed=1

# 3. Published ports.
echo
"$bench_bin" ports --berth "$berth" --root "$root" "${ports[@]}" || missed=1

# 4. Throughput: iperf3 from a container to the host, berth's path against one made by hand
# (a bridge, a veth, a namespace), alternately, each the median of its rounds.
ip link add br-hand type bridge
ip addr add 10.199.0.1/24 dev br-hand
ip link set br-hand up
unshare --net sleep 1000000 &
holder=$!
trap 'kill "$holder" 2>/dev/null' EXIT
# Until the holder is in its own network namespace.
for _ in $(seq 500); do
    [ "$(readlink /proc/$holder/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break
    sleep 0.01
done
ip link add vhand type veth peer name eth0 netns "$holder"
ip link set vhand master br-hand up
nsenter --net=/proc/$holder/ns/net sh -c \
    'ip link set lo up; ip addr add 10.199.0.2/24 dev eth0; ip link set eth0 up'
seconds=3 rounds=3
[ -n "${BERTH_BENCH_SMOKE:-}" ] && seconds=1 rounds=1
gbits() { # server address, client command...: the received rate in Gbit/s
    local server=$1; shift
    iperf3 -s -1 -B "$server" >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 100); do ss -ltn | grep -q "$server:5201" && break; sleep 0.01; done
    if ! "$@" iperf3 -c "$server" -t "$seconds" -J | jq '.end.sum_received.bits_per_second / 1e9'
    then
        kill "$pid" 2>/dev/null
    fi
    wait "$pid" || true
}
for round in $(seq "$rounds"); do
    gbits 10.201.0.1 "$berth" --root "$root" run --net bridge >>"$work/berth.gbits"
    gbits 10.199.0.1 nsenter --net=/proc/$holder/ns/net >>"$work/hand.gbits"
done
kill "$holder"
trap - EXIT
ip link del br-hand
median() { sort -g "$1" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
berth_rate=$(median "$work/berth.gbits") hand_rate=$(median "$work/hand.gbits")
ratio=$(awk -v b="$berth_rate" -v h="$hand_rate" 'BEGIN {printf "%.2f", b / h}')
result=$(awk -v r="$ratio" 'BEGIN {print (r >= 0.9 ? "ok" : "MISSED")}')
[ "$result" = MISSED ] && missed=1
echo
printf 'path\tmedian Gbit/s\tratio\ttarget\tresult\n%s\t%.2f\t-\t-\tbaseline\n%s\t%.2f\t%s\t>= 0.9\t%s\n' \
    "by hand (ip)" "$hand_rate" "berth0" "$berth_rate" "$ratio" "$result" | column -t -s $'\t'

# 5. The CNI plugin: beside the berth measured (the static build's), else the dynamic one.
echo
cni_plugin="$(dirname "$berth")/berth-cni"
[ -x "$cni_plugin" ] || cni_plugin="$here/../target/release/berth-cni"
if [ -x /usr/lib/cni/bridge ] && [ -x "$cni_plugin" ]; then
    cni_runs=100
    [ -n "${BERTH_BENCH_SMOKE:-}" ] && cni_runs=5
    mkdir "$work/cni"
    "$bench_bin" cni --plugin "$cni_plugin" --dir "$work/cni" --runs "$cni_runs" \
        ${BERTH_BENCH_SMOKE:+--smoke} || missed=1
else
    echo "cni: skipped (needs $cni_plugin and containernetworking-plugins)"
fi

umount "$work"
rmdir "$work"
if [ -n "$missed" ] && [ -z "${BERTH_BENCH_SMOKE:-}" ]; then exit 1; fi
