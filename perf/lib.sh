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

# Prints what the kernel has counted so far for the process $1 and its descendants (nbd-server
# forks a child per connection): "time NS" (wall clock), then per process "cpu PID TICKS"
# (utime + stime from /proc/PID/stat, which keeps the time of threads that have ended) and
# per live thread "task TID RUNQ_NS CTXSW" (run-queue wait from .../task/TID/schedstat,
# voluntary + nonvoluntary context switches from .../task/TID/status). A thread that ends takes
# its run-queue wait and switches with it; a reader sums the increases of the threads alive at
# the later sample. A few grep processes and one awk: cheap enough to run during a measurement.
proc_sample() {
    local queue=("$1") pids=() pid
    while [ ${#queue[@]} -gt 0 ]; do
        pid=${queue[0]}
        queue=("${queue[@]:1}")
        [ -d "/proc/$pid" ] || continue
        pids+=("$pid")
        # A thread that ends between the glob and the read makes cat fail, and under set -e
        # that failed assignment ended the whole benchmark (nbdkit ends its worker threads
        # while a cell runs): not a failure here either.
        queue+=($(cat /proc/"$pid"/task/*/children 2>/dev/null || true))
    done
    echo "time $(date +%s%N)"
    [ ${#pids[@]} -gt 0 ] || return 0
    local stats=() statuses=()
    for pid in "${pids[@]}"; do
        stats+=(/proc/"$pid"/stat /proc/"$pid"/task/*/schedstat)
        statuses+=(/proc/"$pid"/task/*/status)
    done
    # A thread that ends between the glob and the read makes grep exit 2: not a failure here.
    { grep -sH '' "${stats[@]}" || true; grep -sH ctxt_switches "${statuses[@]}" || true; } | awk -F: '
        $1 ~ /^\/proc\/[0-9]+\/stat$/ { split($1, p, "/"); s = substr($0, length($1) + 2); sub(/^.*\) /, "", s)
                                        split(s, f, " "); print "cpu", p[3], f[12] + f[13]; next }
        $1 ~ /schedstat$/ { split($1, p, "/"); split($2, f, " "); runq[p[5]] = f[2]; next }
        $2 ~ /ctxt_switches/ { split($1, p, "/"); ctx[p[5]] += $3 }
        END { for (t in runq) print "task", t, runq[t], ctx[t] + 0 }'
}
