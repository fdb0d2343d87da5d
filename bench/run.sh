#!/usr/bin/env bash
# berth's start-up benchmark: the median wall time of `berth run --net none|host|bridge true`
# against the floor, `unshare --net --uts --mount true`, measured in the same invocation.
# Runs inside network and mount namespaces of its own, with berth's state on a tmpfs there:
# the machine's own network and mount table are never touched.
#
#   bench/run.sh [--runs N] [--berth PATH] [--smoke]
#
# Prints min, median, p90 and max per command, each median's ratio to the floor and its
# target, and exits 1 when a target is missed. --smoke: 30 runs, and a missed target is only
# reported (figures from a short run on a busy machine say little). Needs hyperfine and jq.
set -euo pipefail

runs=300
smoke=
here=$(cd "$(dirname "$0")" && pwd)
berth="$here/../target/release/berth"
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --berth) berth=$2; shift 2 ;;
        --smoke) smoke=1; runs=30; shift ;;
        *) echo "usage: $0 [--runs N] [--berth PATH] [--smoke]" >&2; exit 2 ;;
    esac
done
berth=$(realpath "$berth")
for tool in hyperfine jq unshare; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install $tool)" >&2; exit 2; }
done
[ -x "$berth" ] || { echo "bench: no berth binary at $berth (cargo build --release)" >&2; exit 2; }

if [ -z "${BERTH_BENCH_INSIDE:-}" ]; then
    exec env BERTH_BENCH_INSIDE=1 BERTH_BENCH_SMOKE="$smoke" unshare --net --mount --propagation private -- "$0" --runs "$runs" --berth "$berth"
fi

# Inside our own namespaces from here on.
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
umount "$work"
rmdir "$work"
echo "$table" | column -t -s $'\t'
if echo "$table" | grep -q MISSED && [ -z "${BERTH_BENCH_SMOKE:-}" ]; then exit 1; fi
