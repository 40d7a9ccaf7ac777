#!/usr/bin/env bash
# fair-shares: perf/noisy-neighbour's two fio jobs (a steady tenant: 4 KiB random writes at 500
# IOPS, queue depth 1, fsync every 16; a noisy one: 1 MiB sequential writes at queue depth 8,
# fsync every 64, full speed), run against several blockoverlay builds or settings side by
# side in one run, to compare them: each VARIANT gets its own server and store (all running
# at once, idle but for its phase), and every round runs, for each variant, the steady job
# alone and beside the noisy job; odd rounds in the order given, even rounds reversed.
#
#   perf/fair-shares.sh OUT_DIR NAME=BINARY[:ENV=VALUE...] ...
#   e.g. perf/fair-shares.sh /tmp/fs main=/tmp/main/blockoverlay fair=bin/blockoverlay
#
# Environment: ROUNDS (3), RUNTIME (12), LEAD (3), TAIL (1), SETTLE (2), BASE_SIZE (1G),
# STORE_SIZE (6G), BUDGET (1800). Prints one line per phase and, at the end, per variant the
# medians over rounds of the steady tenant's write p99 alone and with the neighbour (ms), the
# ratio, its FLUSH p99 with the neighbour and the neighbour's MiB/s (perf/fair-shares-report.py).
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD
out_dir=$1
shift
rounds=${ROUNDS:-3}
runtime=${RUNTIME:-12}
lead=${LEAD:-3}
tail_s=${TAIL:-1}
settle=${SETTLE:-2}
base_size=${BASE_SIZE:-1G}
store_size=${STORE_SIZE:-6G}
budget=${BUDGET:-1800}
started=$SECONDS
fail() { echo "fair-shares: FAILED: $*" >&2; exit 1; }
source "$repo/perf/lib.sh"

mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
rm -f "$out_dir"/*.json "$out_dir"/*.log "$out_dir"/phases.tsv
tmp=$(mktemp -d /var/tmp/fair-shares.XXXXXX)
declare -A pids binary
names=()
cleanup() {
    local name
    for name in "${names[@]}"; do
        server_pid=${pids[$name]:-}
        stop_server 60 || echo "fair-shares: $name needed SIGKILL" >&2
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bounded 60 head -c "$base_size" /dev/urandom >"$tmp/base.raw"
for spec in "$@"; do
    name=${spec%%=*}
    rest=${spec#*=}
    IFS=: read -r -a parts <<<"$rest"
    bin=${parts[0]}
    [[ $bin == /* ]] || bin=$repo/$bin
    binary[$name]=$bin
    envs=("${parts[@]:1}")
    store=$tmp/$name.store
    bounded 60 "$bin" store create "$store" --size "$store_size" >/dev/null
    for tenant in steady noisy; do
        bounded 30 "$bin" instance create "$tenant" --base "$tmp/base.raw" --flush-mode isolated --store "$store" >/dev/null
    done
    env "${envs[@]}" "$bin" serve --store "$store" --listen "unix:$tmp/$name.sock" 2>"$out_dir/$name.log" &
    pids[$name]=$!
    names+=("$name")
    for _ in $(seq 300); do [ -S "$tmp/$name.sock" ] && break; sleep 0.1; done
    [ -S "$tmp/$name.sock" ] || fail "$name did not start; see $out_dir/$name.log"
done

uri() { echo "nbd+unix:///$2?socket=$tmp/$1.sock"; }

# phase LABEL VARIANT [noisy]
phase() {
    local label=$1 name=$2 noisy=${3:-} args=()
    local steady=(--name=steady --uri="$(uri "$name" steady)" --rw=randwrite --bs=4k --size=256M --iodepth=1
                  --rate_iops=500 --fsync=16 --end_fsync=1 --runtime="$runtime" --time_based)
    if [ -n "$noisy" ]; then
        args+=(--name=noisy --uri="$(uri "$name" noisy)" --rw=write --bs=1M --iodepth=8 --fsync=64 --end_fsync=1
               --runtime=$((lead + runtime + tail_s)) --time_based)
        steady+=(--startdelay="$lead")
    fi
    bounded $((lead + runtime + tail_s + 90)) fio --output-format=json --ioengine=nbd "${args[@]}" "${steady[@]}" \
        2>"$out_dir/$label.err" | grep -v '^fio: ' >"$out_dir/$label.json"
    sleep "$settle"
}

for name in "${names[@]}"; do
    bounded 120 fio --ioengine=nbd --name=prepare --uri="$(uri "$name" steady)" --rw=write --bs=64k --size=256M \
        --iodepth=8 --end_fsync=1 >/dev/null 2>&1
    saved=$runtime; runtime=5; phase "warmup-$name" "$name" noisy; runtime=$saved
done

printf 'round\tvariant\tphase\n' >"$out_dir/phases.tsv"
for round in $(seq "$rounds"); do
    order=("${names[@]}")
    if [ $((round % 2)) -eq 0 ]; then
        order=(); for ((i = ${#names[@]} - 1; i >= 0; i--)); do order+=("${names[$i]}"); done
    fi
    for name in "${order[@]}"; do
        for kind in alone noisy; do
            [ $((round % 2)) -eq 1 ] || kind=$([ "$kind" = alone ] && echo noisy || echo alone)
            echo "fair-shares: round $round, $name, $kind, at $((SECONDS - started)) s" >&2
            phase "r$round-$name-$kind" "$name" "$([ "$kind" = noisy ] && echo noisy || true)"
            printf '%s\t%s\t%s\n' "$round" "$name" "$kind" >>"$out_dir/phases.tsv"
        done
    done
done

python3 "$repo/perf/fair-shares-report.py" "$out_dir" "${names[@]}"
