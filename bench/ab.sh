#!/usr/bin/env bash
# An A/B of two berth builds' start-up, for a change that must not slow a run: the floor
# (`unshare --net --uts --mount true`), then `run --net none true` and `run --net bridge true`
# by build A and by build B, interleaved in rounds so that both see the same drift of the
# machine, both on one state root on a tmpfs (one root manages berth0; a foreground run leaves
# no record, and each build reads the other's network records), inside network and mount
# namespaces of this script's own.
#
#   bench/ab.sh A_BINARY B_BINARY [--rounds N] [--runs-per-round N]
#
# Prints each command's median and its ratio to the floor's median. Needs hyperfine and jq.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 A_BINARY B_BINARY [--rounds N] [--runs-per-round N]" >&2; exit 2; }
a=$(realpath "$1") b=$(realpath "$2")
shift 2
rounds=8 per_round=40
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --runs-per-round) per_round=$2; shift 2 ;;
        *) echo "usage: bench/ab.sh A_BINARY B_BINARY [--rounds N] [--runs-per-round N]" >&2; exit 2 ;;
    esac
done
if [ -z "${BERTH_AB_INSIDE:-}" ]; then
    exec env BERTH_AB_INSIDE=1 unshare --net --mount --propagation private -- \
        "$0" "$a" "$b" --rounds "$rounds" --runs-per-round "$per_round"
fi

# Inside our own namespaces from here on.
ip link set lo up
work=$(mktemp -d)
mount -t tmpfs berth-ab "$work"
root="$work/root"
"$a" --root "$root" run --net bridge true # creates the bridge and the table once
for round in $(seq "$rounds"); do
    hyperfine --shell=none --warmup "$([ "$round" = 1 ] && echo 20 || echo 2)" \
        --runs "$per_round" --export-json "$work/round-$round.json" \
        -n floor "unshare --net --uts --mount true" \
        -n "A none" "$a --root $root run --net none true" \
        -n "B none" "$b --root $root run --net none true" \
        -n "A bridge" "$a --root $root run --net bridge true" \
        -n "B bridge" "$b --root $root run --net bridge true" >/dev/null 2>"$work/hyperfine.log" ||
        { cat "$work/hyperfine.log" >&2; exit 2; }
done
echo "A: $a"
echo "B: $b"
jq -rs '
  def ms: . * 1000 * 100 | round / 100;
  [.[].results[]] | group_by(.command)
  | map({command: .[0].command, times: (map(.times[]) | sort)})
  | map(. + {median: .times[(.times | length) / 2 | floor]}) as $all
  | ($all[] | select(.command == "floor") | .median) as $floor
  | ["command", "median ms", "ratio to the floor"],
    ($all | sort_by(["floor", "A none", "B none", "A bridge", "B bridge"] as $o
                    | .command as $c | $o | index($c))[]
     | [.command, (.median | ms), ((.median / $floor * 100 | round) / 100)])
  | @tsv' "$work"/round-*.json | column -t -s $'\t'
umount "$work"
rmdir "$work"
