# processes.sh: stopping the servers a bench script started, sourced by bench.sh,
# gzip.sh and tls.sh. Each keeps the PIDs it started in the array PIDS.

# Asks a process to stop (TERM), waits up to 5 s, then kills it, and with it any
# children it left (nginx workers whose master died).
stop_pid() {
    local pid=$1 children i
    [ -n "$pid" ] || return 0
    children=$(pgrep -P "$pid" || true)
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" $children 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
}

forget_pid() { # PID
    local kept=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
    PIDS=("${kept[@]}")
}
