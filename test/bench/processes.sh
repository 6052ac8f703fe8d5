# processes.sh: what gzip.sh and tls.sh need to run their servers (a temp directory that
# goes at exit with the servers, free ports, nginx's settings for that directory), and
# stopping the servers a bench script started, for bench.sh too. Each keeps the PIDs it started in the array PIDS.

# free_ports N: N free loopback ports, space-separated.
free_ports() {
    python3 -c '
import socket, sys
s = [socket.socket() for _ in range(int(sys.argv[1]))]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])' "$1"
}

# nginx_settings DIR: sets USER_LINE (as root, nginx workers would run as "nobody", who
# can't read the 0700 temp directory: they run as root too) and TEMPS (every temp path
# inside DIR/tmp, none in /var/lib/nginx).
nginx_settings() {
    USER_LINE=""
    [ "$(id -u)" = 0 ] && USER_LINE="user root;"
    TEMPS="client_body_temp_path $1/tmp/b; proxy_temp_path $1/tmp/p; fastcgi_temp_path $1/tmp/f; uwsgi_temp_path $1/tmp/u; scgi_temp_path $1/tmp/s;"
}

# run_dir NAME: DIR, a new temp directory for the run; on exit every server in PIDS is
# stopped and DIR removed.
run_dir() {
    PIDS=()
    DIR=$(mktemp -d "/tmp/proxy-$1.XXXXXX")
    trap stop_all EXIT
}

stop_all() {
    set +e
    local p
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    rm -rf "$DIR"
}

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
