#!/usr/bin/env bash
# compare: the micro-benchmarks (this folder) over two commits' src/, side by side.
#
#   perf/micro/compare.sh REV_A [REV_B]     (REV_B: the work tree as it is, by default)
#
# Each side is a detached worktree of its commit with this folder's benchmarks copied in (the
# same benchmark code on both sides; only the server differs), built once. Then ROUNDS rounds
# (3), each running both in alternating order (A B, then B A), BenchmarkDotNet in-process with
# its short job. Printed per benchmark: bytes allocated per operation and Gen0 collections per
# 1,000 operations (medians of the rounds; they move only where an await completes sooner or
# later under load), and the time of B over A, the
# median of the rounds' ratios with their min-max (a shared machine moves absolute times; only
# the ratio of one round's neighbours is worth reading). FILTER picks benchmarks ('*').
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { sed -n 2,13p "$0" >&2; exit 2; }
rounds=${ROUNDS:-3}; filter=${FILTER:-*}
tmp=$(mktemp -d /var/tmp/micro-compare.XXXXXX)
trees=()
cleanup() { for t in "${trees[@]}"; do git worktree remove --force "$t" >/dev/null 2>&1 || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

# side NAME REV: a built copy of REV's src with this tree's benchmarks; REV empty: this tree
# (built where it is: through a link the analyzers would not find its .editorconfig).
declare -A root
side() {
    local dir=$tmp/$1
    if [ -z "$2" ]; then
        dir=$PWD
    else
        git worktree add --detach "$dir" "$2" >/dev/null
        trees+=("$dir")
        rm -rf "$dir/perf/micro"; cp -r perf/micro "$dir/perf/micro"; rm -rf "$dir/perf/micro/bin" "$dir/perf/micro/obj"
        cp Directory.Packages.props "$dir/"
    fi
    root[$1]=$dir
    dotnet build "$dir/perf/micro" -c Release --nologo -v quiet -clp:ErrorsOnly >&2
}
side a "$1"; side b "${2:-}"

run() { # run SIDE ROUND
    local out=$tmp/out/$1-$2; mkdir -p "$out"
    (cd "$out" && TMPDIR=/var/tmp dotnet "${root[$1]}/perf/micro/bin/Release/net10.0/BlockOverlay.Micro.dll" \
        --filter "$filter" --inProcess --job short --exporters json >"$out/log" 2>&1) || { tail -20 "$out/log" >&2; exit 1; }
}
for r in $(seq 1 "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then run a "$r"; run b "$r"; else run b "$r"; run a "$r"; fi
done

python3 - "$tmp/out" "$rounds" "$1" "${2:-work tree}" <<'PY'
import glob, json, statistics, sys
root, rounds, rev_a, rev_b = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def load(side, r):
    (path,) = glob.glob(f"{root}/{side}-{r}/BenchmarkDotNet.Artifacts/results/*-report-full-compressed.json")
    out = {}
    for b in json.load(open(path))["Benchmarks"]:
        m = b["Memory"]
        out[b["Method"]] = (b["Statistics"]["Median"], m["BytesAllocatedPerOperation"], 1000.0 * m["Gen0Collections"] / m["TotalOperations"])
    return out
a = [load("a", r) for r in range(1, rounds + 1)]
b = [load("b", r) for r in range(1, rounds + 1)]
print(f"A = {rev_a}, B = {rev_b}; {rounds} rounds, alternating")
print(f"{'benchmark':<16} {'bytes/op A':>10} {'B':>6} {'Gen0/1k A':>10} {'B':>6}  time B/A median (min-max)")
def median(side, name, k): return statistics.median(side[i][name][k] for i in range(rounds))
for name in a[0]:
    ratios = sorted(b[i][name][0] / a[i][name][0] for i in range(rounds))
    print(f"{name:<16} {median(a, name, 1):>10.0f} {median(b, name, 1):>6.0f} {median(a, name, 2):>10.2f} {median(b, name, 2):>6.2f}  "
          f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})")
PY
