# Shared by the benchmark scripts of perf/ (sourced, not run). The sourcing script sets
# `budget` (seconds for the whole run) and `started` ($SECONDS at its start), and defines
# `fail MESSAGE`.

# Runs a command for at most $1 seconds, or less if the budget is nearly spent.
bounded() {
    local limit=$1 left=$((budget - (SECONDS - started)))
    shift
    [ "$left" -gt 0 ] || fail "out of time budget (${budget} s) before: $*"
    [ "$left" -lt "$limit" ] && limit=$left
    timeout --kill-after=5 "$limit" "$@"
}
