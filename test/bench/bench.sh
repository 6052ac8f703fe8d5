#!/usr/bin/env bash
# bench.sh: this proxy against nginx, side by side, in one run (`make bench`).
#
# Both proxies forward to the same fast backend (an nginx of its own) on loopback, and
# are measured in turns, A B A B, so that a noisy neighbour on a shared machine hurts
# both alike. Each number in the final table is the median of ROUNDS runs, after a
# warm-up (the JVM compiles its hot code in the first seconds; nginx has nothing to warm).
#
#   requests/s and p99 latency   wrk, 2 threads, 64 and 1000 connections, on "/"
#   download MB/s                curl, a 100 MiB file through the proxy
#   upload MB/s                  curl, a 100 MiB POST through the proxy
#   RSS with 10,000 idle         BenchClient.java: 10,000 keep-alive connections, one
#     keep-alive connections     request each, held open while the RSS is read
#   first response               a fresh process: ms from its start to the first 200
#
# Needs nginx, wrk and curl; installs nothing. Starts only its own processes, on free
# loopback ports, in a temp directory; stops them and removes it on every way out.
# Environment: JAVA, JVM_OPTS (from make), ROUNDS (default 5), WRK_SECONDS (default 6),
# WARMUP (default 3).

set -euo pipefail

JAVA=${JAVA:-java}
JVM_OPTS=${JVM_OPTS:-}
ROUNDS=${ROUNDS:-5}
WRK_SECONDS=${WRK_SECONDS:-6}
WARMUP=${WARMUP:-3}        # passes of the warm-up, see warm_up
IDLE=10000                 # idle keep-alive connections for the memory test
MiB=$((1024 * 1024))
BENCH=test/bench
RUN_LIMIT=900              # seconds: the whole run is stopped after this, whatever happens

# Run from the repository root: JVM_OPTS names out/proxy.jsa relative to it.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# ---- tools ------------------------------------------------------------------------

check_tools() {
    local tool
    for tool in nginx wrk curl; do
        command -v "$tool" >/dev/null || { echo "bench: $tool is not installed (apt-get install $tool)"; exit 1; }
    done
    # The helper client is compiled with the javac beside $JAVA: the same JDK.
    JAVA=$(readlink -f "$(command -v "$JAVA")") || { echo "bench: no java at '$JAVA'"; exit 1; }
    JAVAC=$(dirname "$JAVA")/javac
    [ -x "$JAVAC" ] || { echo "bench: no javac beside $JAVA"; exit 1; }
    [ -f out/Proxy.class ] || { echo "bench: build the proxy first (make)"; exit 1; }
}

# ---- the temp directory and cleanup -----------------------------------------------

PIDS=()     # every server process we started and have not stopped yet
WATCHDOG=""

setup_dir() {
    DIR=$(mktemp -d /tmp/proxy-bench.XXXXXX)
    mkdir -p "$DIR/www" "$DIR/tmp" "$DIR/results" "$DIR/classes"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'echo "bench: stopped (time limit or signal)"; exit 143' TERM
    # A watchdog for the whole run: each step has its own timeout, this is the backstop.
    # Stopped early (TERM), it ends and reaps its sleep, so no orphan is left behind.
    (
        trap 'kill "$sleeper"; wait "$sleeper"; exit 0' TERM
        sleep "$RUN_LIMIT" &
        sleeper=$!
        wait "$sleeper" && kill -TERM $$
    ) &
    WATCHDOG=$!
}

cleanup() {
    set +e # clean up as much as possible, whatever fails
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    stop_pid "$WATCHDOG"
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

# As many open files as allowed: 10,000 idle connections need 10,000 descriptors in the
# server and as many in the client. 65536 if the hard limit allows, else the hard limit.
raise_fd_limit() {
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    NOFILE=$(ulimit -n)
    if [ "$NOFILE" -lt $((IDLE + 1000)) ]; then
        echo "bench: warning: open files limited to $NOFILE, the $IDLE-connection test may fall short"
    fi
}

# ---- setting up -------------------------------------------------------------------

make_files() {
    touch "$DIR/backend-upload.log"
    head -c "$MiB" /dev/urandom >"$DIR/www/1m.bin"
    head -c $((100 * MiB)) /dev/urandom >"$DIR/www/100m.bin"
}

compile_client() {
    timeout 120 "$JAVAC" -d "$DIR/classes" "$BENCH/BenchClient.java"
}

pick_ports() {
    local ports
    ports=$(timeout 30 "$JAVA" -cp "$DIR/classes" BenchClient free-ports 3)
    read -r BACKEND_PORT PROXY_PORT NGINX_PORT <<<"$(echo $ports)"
}

# Fills a template's @NAMES@. As root, nginx workers would run as "nobody", who can't
# read the 0700 temp directory: they run as root too. As anyone else the line is left out.
render() {
    local user_line=""
    [ "$(id -u)" = 0 ] && user_line="user root;"
    sed -e "s|@DIR@|$DIR|g" -e "s|@NOFILE@|$NOFILE|g" -e "s|@USER_LINE@|$user_line|g" \
        -e "s|@BACKEND_PORT@|$BACKEND_PORT|g" -e "s|@PROXY_PORT@|$PROXY_PORT|g" \
        -e "s|@NGINX_PORT@|$NGINX_PORT|g" "$BENCH/$1" >"$DIR/$1"
}

# ---- starting and stopping the servers --------------------------------------------
# Each start_* function starts one process in the background and sets PID to it; the
# caller waits for it with wait_ready.

start_nginx() { # CONF
    # -e: the log for messages before the config is read (else /var/log/nginx).
    nginx -p "$DIR" -c "$DIR/$1" -e "$DIR/$1.startup.log" -g 'daemon off;' \
        >>"$DIR/$1.out" 2>&1 &
    PID=$!
    PIDS+=("$PID")
}

start_backend() { start_nginx backend.conf; BACKEND_PID=$PID; }
start_reference() { start_nginx nginx-proxy.conf; }

start_proxy() {
    # shellcheck disable=SC2086  # JVM_OPTS is a list of options
    "$JAVA" $JVM_OPTS -cp out/proxy.jar Proxy "$DIR/proxy.properties" >>"$DIR/proxy.out" 2>&1 &
    PID=$!
    PIDS+=("$PID")
}

start() { # proxy|nginx
    if [ "$1" = proxy ]; then start_proxy; else start_reference; fi
}

port_of() { # proxy|nginx|backend
    case $1 in proxy) echo "$PROXY_PORT" ;; nginx) echo "$NGINX_PORT" ;; backend) echo "$BACKEND_PORT" ;; esac
}

url() { echo "http://127.0.0.1:$(port_of "$1")"; }

# Polls "/" every 5 ms until it answers 200; prints the ms since START_US (microseconds,
# from $EPOCHREALTIME). Fails after 15 s.
wait_ready() { # proxy|nginx|backend START_US
    local u now
    u=$(url "$1")/
    while true; do
        if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$u")" = 200 ]; then
            now=${EPOCHREALTIME/./}
            echo $(((now - $2) / 1000))
            return 0
        fi
        now=${EPOCHREALTIME/./}
        if [ $((now - $2)) -gt 15000000 ]; then
            echo "bench: $1 did not answer 200 on $u within 15 s; its log:" >&2
            tail -n 20 "$DIR"/*"$1"*.out "$DIR"/*"$1"*error.log 2>/dev/null >&2 || true
            return 1
        fi
        sleep 0.005
    done
}

# ---- sanity checks ------------------------------------------------------------------

# Every path the benchmark uses, through each server, before anything is timed: a number
# from a broken setup is worse than none.
check_server() { # proxy|nginx|backend
    local u hello
    u=$(url "$1")
    hello=$(curl -s --max-time 5 "$u/")
    [ "$hello" = Hello ] || fail "$1: GET / answered '$hello', not Hello"
    curl -s --max-time 10 "$u/1m.bin" | cmp -s - "$DIR/www/1m.bin" || fail "$1: /1m.bin came back different"
    upload "$1" >/dev/null || fail "$1: the 100 MiB upload did not arrive whole"
}

fail() {
    echo "bench: $*"
    exit 1
}

# ---- measurements -------------------------------------------------------------------
# Each appends one sample to $DIR/results/METRIC.SERVER and prints a word about it.

record() { # METRIC SERVER VALUE
    echo "$3" >>"$DIR/results/$1.$2"
}

# wrk's "99%  3.21ms" in ms, whatever its unit (us, ms, s).
p99_ms() {
    awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
                       print (u == "us" ? v / 1000 : u == "s" ? v * 1000 : u == "m" ? v * 60000 : v) }'
}

# Errors wrk saw: "Socket errors: connect 0, read 0, write 0, timeout 0" (printed only
# when there are some; a timeout is a response slower than 2 s) plus "Non-2xx or 3xx
# responses: N".
wrk_errors() {
    awk '/Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
         /Non-2xx or 3xx responses:/ { n += $NF }
         END { print n + 0 }'
}

measure_wrk() { # SERVER CONNECTIONS SECONDS [record]
    local out rps p99 errors
    out=$(timeout $(($3 + 30)) wrk -t2 -c"$2" -d"$3"s --latency "$(url "$1")/" 2>&1) || true
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    p99=$(p99_ms <<<"$out")
    errors=$(wrk_errors <<<"$out")
    printf '  %-5s wrk -c%-4s %10s req/s  p99 %8s ms  errors %s%s\n' "$1" "$2" "${rps:-?}" "${p99:-?}" "$errors" \
        "$(grep -E '^ *(Socket errors|Non-2xx)' <<<"$out" | sed 's/^ */  /' | tr -d '\n')"
    [ "${4:-}" = record ] || return 0
    record "rps$2" "$1" "${rps:-0}"
    [ -n "$p99" ] && record "p99_$2" "$1" "$p99"
    record "err$2" "$1" "$errors"
}

measure_download() { # SERVER [record]
    local out code size speed
    out=$(timeout 120 curl -s -o /dev/null --max-time 100 -w '%{http_code} %{size_download} %{speed_download}' \
        "$(url "$1")/100m.bin") || true
    read -r code size speed <<<"$out"
    if [ "$code" != 200 ] || [ "$size" != $((100 * MiB)) ]; then
        echo "  $1 download FAILED: status $code, $size bytes"
        speed=0
    fi
    speed=$(awk -v b="$speed" 'BEGIN { printf "%.1f", b / 1e6 }')
    printf '  %-5s download %8s MB/s\n' "$1" "$speed"
    [ "${2:-}" = record ] && record download "$1" "$speed"
    return 0
}

# POSTs the 100 MiB file; prints bytes/s if the backend logged that it read all of it.
# "Expect:" is turned off so that no 100-continue round trip is part of the time.
upload() { # SERVER
    local out code size speed read_bytes status before
    before=$(wc -l <"$DIR/backend-upload.log")
    out=$(timeout 120 curl -s -o /dev/null --max-time 100 -X POST -H 'Expect:' \
        -H 'Content-Type: application/octet-stream' -T "$DIR/www/100m.bin" \
        -w '%{http_code} %{size_upload} %{speed_upload}' "$(url "$1")/upload") || true
    read -r code size speed <<<"$out"
    read -r read_bytes status <<<"$(tail -n 1 "$DIR/backend-upload.log")"
    if [ "$code" != 200 ] || [ "$size" != $((100 * MiB)) ] || [ "$(wc -l <"$DIR/backend-upload.log")" -le "$before" ] ||
        [ "${read_bytes:-0}" -lt $((100 * MiB)) ] || [ "$status" != 200 ]; then
        echo "  $1 upload FAILED: client got status $code after sending $size bytes; backend read ${read_bytes:-nothing}" >&2
        return 1
    fi
    echo "$speed"
}

measure_upload() { # SERVER [record]
    local speed
    speed=$(upload "$1") || speed=0
    speed=$(awk -v b="$speed" 'BEGIN { printf "%.1f", b / 1e6 }')
    printf '  %-5s upload   %8s MB/s\n' "$1" "$speed"
    [ "${2:-}" = record ] && record upload "$1" "$speed"
    return 0
}

# The server's processes, whose RSS counts: nginx's master and workers, or the java process.
server_pids() { # PID
    echo "$1" $(pgrep -P "$1" || true)
}

# A fresh process (so the memory is that of 10,000 connections, not of the heap the load
# tests grew): time to its first response, then RSS with 10,000 idle connections.
measure_fresh() { # SERVER [record]
    local t0 ms out served rss before
    t0=${EPOCHREALTIME/./}
    start "$1"
    ms=$(wait_ready "$1" "$t0") || exit 1
    out=$(timeout 120 "$JAVA" -cp "$DIR/classes" BenchClient idle 127.0.0.1 "$(port_of "$1")" "$IDLE" 60 \
        $(server_pids "$PID")) || true
    stop_pid "$PID"
    served=$(sed -nE 's/.*served=([0-9]+).*/\1/p' <<<"$out")
    rss=$(kib_to_mib "$(sed -nE 's/.*rss_kib=([0-9]+).*/\1/p' <<<"$out")")
    before=$(kib_to_mib "$(sed -nE 's/.*before_kib=([0-9]+).*/\1/p' <<<"$out")")
    printf '  %-5s first response %5s ms   %s idle: %5s served, RSS %7s MiB (%s before)\n' \
        "$1" "$ms" "$IDLE" "${served:-0}" "$rss" "$before"
    [ "${2:-}" = record ] || return 0
    record first_ms "$1" "$ms"
    record served "$1" "${served:-0}"
    record rss "$1" "$rss"
    record rss_before "$1" "$before"
}

kib_to_mib() { awk -v k="${1:-0}" 'BEGIN { printf "%.1f", k / 1024 }'; }

# ---- the run --------------------------------------------------------------------------

SERVERS=(proxy nginx)

# The JVM compiles its hot code while it runs; after a change of load (64 connections,
# then 1000, then a large body) its compiler threads work for a while longer and take
# CPU from the proxy on these two cores: measured with perf stat, they used 60-80 ms
# during each of the first three 100 MiB uploads after a load burst, and 10 ms during the
# fourth, when the upload ran 25 % faster. So the warm-up goes round WARMUP times.
warm_up() {
    local s pass
    for pass in $(seq "$WARMUP"); do
        echo "warm-up $pass/$WARMUP (not counted)"
        for s in "${SERVERS[@]}"; do
            measure_wrk "$s" 64 5
            measure_wrk "$s" 1000 3
            measure_download "$s"
            measure_upload "$s"
        done
    done
}

load_rounds() {
    local r s
    for r in $(seq "$ROUNDS"); do
        echo "round $r/$ROUNDS"
        for s in "${SERVERS[@]}"; do measure_wrk "$s" 64 "$WRK_SECONDS" record; done
        for s in "${SERVERS[@]}"; do measure_wrk "$s" 1000 "$WRK_SECONDS" record; done
        for s in "${SERVERS[@]}"; do measure_download "$s" record; done
        for s in "${SERVERS[@]}"; do measure_upload "$s" record; done
    done
}

fresh_rounds() {
    local r s
    # The first start is not counted: it pays for a cold page cache, and a JVM asked for
    # -XX:+AutoCreateSharedArchive writes its class-data archive when it exits.
    echo "fresh processes: warm-up start (not counted)"
    for s in "${SERVERS[@]}"; do measure_fresh "$s"; done
    for r in $(seq "$ROUNDS"); do
        echo "fresh processes, round $r/$ROUNDS"
        for s in "${SERVERS[@]}"; do measure_fresh "$s" record; done
    done
}

# ---- the report -----------------------------------------------------------------------

median() { # FILE
    [ -s "$1" ] || { echo "-"; return; }
    sort -g "$1" | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m + 0 }'
}

total() { # FILE
    [ -s "$1" ] && awk '{ n += $1 } END { print n + 0 }' "$1" || echo "-"
}

# One table row, the numbers shown with DECIMALS places. RULE says when the proxy meets
# its target:
#   ratio>=X  proxy/nginx at least X      ratio<=X  at most X
#   max=X     proxy at most X             eq=X      proxy exactly X
#   info      no target, shown for context
row() { # LABEL DECIMALS PROXY NGINX RULE TARGET_TEXT
    awk -v label="$1" -v d="$2" -v p="$3" -v n="$4" -v rule="$5" -v target="$6" 'BEGIN {
        split(rule, r, "=")
        ratio = (p != "-" && n != "-" && n + 0 != 0 && rule != "eq=0") ? sprintf("%.2f", p / n) : "-"
        if (p == "-") met = "no data"
        else if (r[1] == "ratio>") met = (ratio != "-" && ratio + 0 >= r[2]) ? "yes" : "NO"
        else if (r[1] == "ratio<") met = (ratio != "-" && ratio + 0 <= r[2]) ? "yes" : "NO"
        else if (r[1] == "max") met = (p + 0 <= r[2]) ? "yes" : "NO"
        else if (r[1] == "eq") met = (p + 0 == r[2]) ? "yes" : "NO"
        else met = ""
        if (p != "-") p = sprintf("%." d "f", p)
        if (n != "-") n = sprintf("%." d "f", n)
        printf "%-34s %11s %11s %8s   %-22s %s\n", label, p, n, ratio, target, met
    }'
}

med() { median "$DIR/results/$1.$2"; } # METRIC SERVER

report() {
    local R=$DIR/results
    echo
    echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    echo "jdk:     $("$JAVA" -version 2>&1 | head -n 1)"
    echo "nginx:   $(nginx -v 2>&1 | sed 's/^nginx version: //')"
    echo "medians of $ROUNDS rounds, alternating proxy/nginx; wrk -t2 ${WRK_SECONDS}s runs; MB = 10^6 bytes"
    echo
    printf "%-34s %11s %11s %8s   %-22s %s\n" metric proxy nginx ratio target met
    printf '%s\n' "--------------------------------------------------------------------------------------------------"
    row "requests/s, 64 connections" 0 "$(med rps64 proxy)" "$(med rps64 nginx)" "ratio>=1.0" ">= 1.0x nginx"
    row "p99 latency ms, 64 connections" 2 "$(med p99_64 proxy)" "$(med p99_64 nginx)" "ratio<=1.0" "<= nginx"
    row "errors, 64 conns (all rounds)" 0 "$(total "$R/err64.proxy")" "$(total "$R/err64.nginx")" "eq=0" "0"
    row "requests/s, 1000 connections" 0 "$(med rps1000 proxy)" "$(med rps1000 nginx)" "ratio>=1.0" ">= 1.0x nginx"
    row "p99 latency ms, 1000 connections" 2 "$(med p99_1000 proxy)" "$(med p99_1000 nginx)" "ratio<=1.0" "<= nginx"
    row "errors, 1000 conns (all rounds)" 0 "$(total "$R/err1000.proxy")" "$(total "$R/err1000.nginx")" "eq=0" "0"
    row "download 100 MiB, MB/s" 0 "$(med download proxy)" "$(med download nginx)" "ratio>=2.0" ">= 2.0x nginx"
    row "upload 100 MiB, MB/s" 0 "$(med upload proxy)" "$(med upload nginx)" "ratio>=1.0" ">= 1.0x nginx"
    row "RSS MiB, $IDLE idle keep-alive" 1 "$(med rss proxy)" "$(med rss nginx)" "max=96" "<= 96 MiB"
    row "RSS MiB, before those connections" 1 "$(med rss_before proxy)" "$(med rss_before nginx)" "info" "(for context)"
    row "idle connections served (of $IDLE)" 0 "$(med served proxy)" "$(med served nginx)" "eq=$IDLE" "all $IDLE"
    row "first response ms, fresh start" 0 "$(med first_ms proxy)" "$(med first_ms nginx)" "max=150" "<= 150 ms"
    echo
    echo "(errors: wrk's socket errors, a timeout being no response within 2 s, plus non-2xx"
    echo " responses, summed over all rounds; a failed download or upload counts as 0 MB/s)"
    report_logs
}

# What the servers complained about during the run: a fast number with errors behind it
# is not a result. The proxy's "listening on" lines are not complaints.
report_logs() {
    local f n
    echo
    for f in proxy.out proxy-error.log nginx-proxy-error.log backend-error.log; do
        n=$(grep -vc 'listening on' "$DIR/$f" 2>/dev/null || true)
        printf 'log %-22s %6s other lines\n' "$f:" "${n:-0}"
        [ "${n:-0}" -eq 0 ] || grep -v 'listening on' "$DIR/$f" | log_kinds
    done
}

# The five most common kinds of line: timestamps, pids and port numbers taken out, so
# that lines differing only in those count as one kind.
log_kinds() {
    sed -E -e 's/^[0-9]{4}[-/][0-9]{2}[-/][0-9]{2}[T ][0-9:.]+Z? //' -e 's/[0-9]+#[0-9]+: (\*[0-9]+ )?//' \
        -e 's/:[0-9]{2,5}\b/:PORT/g' | cut -c 1-150 | sort | uniq -c | sort -rn | head -n 5
}

main() {
    local started=$SECONDS
    check_tools
    setup_dir
    raise_fd_limit
    echo "bench: setting up in $DIR (open files: $NOFILE)"
    make_files
    compile_client
    pick_ports
    render backend.conf
    render nginx-proxy.conf
    render proxy.properties

    start_backend
    wait_ready backend "${EPOCHREALTIME/./}" >/dev/null || exit 1
    check_server backend
    start_proxy
    wait_ready proxy "${EPOCHREALTIME/./}" >/dev/null || exit 1
    start_reference
    wait_ready nginx "${EPOCHREALTIME/./}" >/dev/null || exit 1
    check_server proxy
    check_server nginx
    echo "backend :$BACKEND_PORT, proxy :$PROXY_PORT, nginx :$NGINX_PORT: all answer correctly"

    warm_up
    load_rounds
    # The load tests' processes are done; the rest needs fresh ones.
    local pid
    for pid in "${PIDS[@]}"; do [ "$pid" = "$BACKEND_PID" ] || stop_pid "$pid"; done
    fresh_rounds

    report
    echo
    echo "bench: done in $((SECONDS - started)) s"
}

main "$@"
