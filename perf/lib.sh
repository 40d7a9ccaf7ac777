# Shared by the benchmark scripts of perf/ (sourced, not run). The sourcing script sets
# `budget` (seconds for the whole run) and `started` ($SECONDS at its start), and defines
# `fail MESSAGE`; `server_pid` holds the server a step started, if any.

# Runs a command for at most $1 seconds, or less if the budget is nearly spent.
bounded() {
    local limit=$1 left=$((budget - (SECONDS - started)))
    shift
    [ "$left" -gt 0 ] || fail "out of time budget (${budget} s) before: $*"
    [ "$left" -lt "$limit" ] && limit=$left
    timeout --kill-after=5 "$limit" "$@"
}

# Stops the server in $server_pid: SIGTERM (blockoverlay writes back every dirty block and
# checkpoints, qemu-nbd writes its qcow2 metadata), SIGKILL after $1 seconds. Returns
# non-zero if SIGKILL was needed.
stop_server() {
    local pid=$server_pid grace=$1
    [ -n "$pid" ] || return 0
    server_pid=
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq $((grace * 10))); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return 1
}
