#!/usr/bin/env bash
# bench.sh: this proxy against nginx and HAProxy, side by side, in one run (`make bench`).
#
# All three proxies forward to the same fast backend (an nginx of its own) on loopback,
# and are measured in turns, A B C A B C, so that a noisy neighbour on a shared machine
# hurts all alike. Each number in the final table is the median of ROUNDS runs (counts:
# the sum), after a warm-up (the JVM compiles its hot code in the first seconds; nginx
# and HAProxy have nothing to warm).
#
#   requests/s and p99 latency   wrk, 2 threads, 64 and 1000 connections, on "/"
#   timeouts, errors             wrk's socket errors: "timeout" is a request with no
#                                response within 2 s; connect/read/write, and non-2xx
#   download MB/s                curl, a 100 MiB file through the proxy
#   upload MB/s                  curl, a 100 MiB POST through the proxy
#   RSS after the load runs,     the processes that served all of the above: their RSS,
#     and with 10,000 idle       then with 10,000 keep-alive connections held open, each
#     keep-alive connections     served once (BenchClient.java)
#   the same, fresh process      a new process, and its ms from start to the first 200
#   the 128 MB run               the proxy in a memory cgroup of 128 MB where one can be
#                                made (root), and under -XX:MaxRAM=128m (what the JVM
#                                sizes its heap from in a 128 MB container), plain and
#                                with make run's options, and nginx for reference, each
#                                through the load mix of Mix.java: peak RSS, responses
#                                whole, errors, alive, killed by the kernel
#
# Needs nginx, wrk and curl (HAProxy is optional: without it its column is left out);
# installs nothing. Starts only its own processes, on free loopback ports, in a temp
# directory; stops them and removes it on every way out.
# Environment: JAVA, JVM_OPTS, SMALL_JVM_OPTS, JVM_OPTS_128M (from make), ROUNDS (default 5),
# WRK_SECONDS (default 6), WARMUP (default 3, passes for the proxy; the others get one), IDLE (default 10000),
# MIX=0 to skip the 128 MB run, MIX_STALLED (1500), MIX_IDLE (10000), MIX_DOWNLOADS (20),
# MIX_WRK_SECONDS (5), GZIP=0 to skip the gzip rows (gzip.sh), TLS=0 to skip the TLS rows
# (tls.sh, run last); QUICK=1 for a short run while developing (1 round, 2 s, a
# scaled-down mix: its numbers are not the benchmark's).

set -euo pipefail

JAVA=${JAVA:-java}
JVM_OPTS=${JVM_OPTS:-}
SMALL_JVM_OPTS=${SMALL_JVM_OPTS:-} # the options for a small container (the image's)
JVM_OPTS_128M=${JVM_OPTS_128M:-$JVM_OPTS} # make run's options in a 128 MB container
if [ "${QUICK:-0}" = 1 ]; then
    : "${ROUNDS:=1}" "${WRK_SECONDS:=2}" "${WARMUP:=1}" "${IDLE:=2000}"
    : "${MIX_STALLED:=300}" "${MIX_IDLE:=2000}" "${MIX_DOWNLOADS:=4}" "${MIX_WRK_SECONDS:=2}"
fi
ROUNDS=${ROUNDS:-5}
WRK_SECONDS=${WRK_SECONDS:-6}
WARMUP=${WARMUP:-3}        # passes of the proxy's warm-up, see warm_up
IDLE=${IDLE:-10000}        # idle keep-alive connections for the memory tests
MIX=${MIX:-1}
MIX_STALLED=${MIX_STALLED:-1500}
MIX_IDLE=${MIX_IDLE:-10000}
MIX_DOWNLOADS=${MIX_DOWNLOADS:-20}
MIX_WRK_SECONDS=${MIX_WRK_SECONDS:-5}
MIX_LIMIT=150              # seconds: Mix.java gives up after this
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
    SERVERS=(proxy nginx)
    if command -v haproxy >/dev/null; then
        SERVERS+=(haproxy)
    else
        echo "bench: haproxy is not installed (apt-get install haproxy): its column is left out"
    fi
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
    [ -z "$CGROUP" ] || rmdir "$CGROUP" 2>/dev/null
    rm -rf "$DIR"
}

# stop_pid and forget_pid
source "$BENCH/processes.sh"

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
    timeout 120 "$JAVAC" -d "$DIR/classes" "$BENCH/BenchClient.java" "$BENCH/Mix.java"
}

pick_ports() {
    local ports
    ports=$(timeout 30 "$JAVA" -cp "$DIR/classes" BenchClient free-ports 4)
    read -r BACKEND_PORT PROXY_PORT NGINX_PORT HAPROXY_PORT <<<"$(echo $ports)"
}

# Fills a template's @NAMES@. As root, nginx workers would run as "nobody", who can't
# read the 0700 temp directory: they run as root too. As anyone else the line is left out.
# render TEMPLATE [OUT [TAG]]: OUT defaults to the template's name, TAG fills @TAG@.
render() {
    local user_line=""
    [ "$(id -u)" = 0 ] && user_line="user root;"
    sed -e "s|@DIR@|$DIR|g" -e "s|@NOFILE@|$NOFILE|g" -e "s|@USER_LINE@|$user_line|g" \
        -e "s|@BACKEND_PORT@|$BACKEND_PORT|g" -e "s|@PROXY_PORT@|$PROXY_PORT|g" \
        -e "s|@NGINX_PORT@|$NGINX_PORT|g" -e "s|@HAPROXY_PORT@|$HAPROXY_PORT|g" \
        -e "s|@TAG@|${3:-}|g" "$BENCH/$1" >"$DIR/${2:-$1}"
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

# -db: in the foreground, so that PID is HAProxy itself (one process, nbthread 2).
start_haproxy() {
    haproxy -db -f "$DIR/haproxy.cfg" >>"$DIR/haproxy.out" 2>&1 &
    PID=$!
    PIDS+=("$PID")
}

start() { # proxy|nginx|haproxy
    case $1 in proxy) start_proxy ;; nginx) start_reference ;; haproxy) start_haproxy ;; esac
}

port_of() { # proxy|nginx|haproxy|backend
    case $1 in proxy) echo "$PROXY_PORT" ;; nginx) echo "$NGINX_PORT" ;; haproxy) echo "$HAPROXY_PORT" ;;
        backend) echo "$BACKEND_PORT" ;; esac
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

record() { # METRIC SERVER VALUE; a missing value ("" or "-") is not recorded
    [ -z "$3" ] || [ "$3" = - ] || echo "$3" >>"$DIR/results/$1.$2"
}

# wrk's "99%  3.21ms" in ms, whatever its unit (us, ms, s).
p99_ms() {
    awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
                       print (u == "us" ? v / 1000 : u == "s" ? v * 1000 : u == "m" ? v * 60000 : v) }'
}

# wrk's error counts from "Socket errors: connect 0, read 0, write 0, timeout 0" (printed
# only when there are some) and "Non-2xx or 3xx responses: N": prints "ERRORS TIMEOUTS",
# ERRORS being connect + read + write + non-2xx, TIMEOUTS the requests with no response
# within 2 s (wrk's fixed timeout).
wrk_errors() {
    awk '/Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8; t += $10 }
         /Non-2xx or 3xx responses:/ { n += $NF }
         END { print n + 0, t + 0 }'
}

measure_wrk() { # SERVER CONNECTIONS SECONDS [record]
    local out rps p99 errors timeouts
    out=$(timeout $(($3 + 30)) wrk -t2 -c"$2" -d"$3"s --latency "$(url "$1")/" 2>&1) || true
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    p99=$(p99_ms <<<"$out")
    read -r errors timeouts <<<"$(wrk_errors <<<"$out")"
    printf '  %-7s wrk -c%-4s %10s req/s  p99 %8s ms  timeouts %s, errors %s%s\n' "$1" "$2" "${rps:-?}" "${p99:-?}" \
        "$timeouts" "$errors" "$(grep -E '^ *(Socket errors|Non-2xx)' <<<"$out" | sed 's/^ */  /' | tr -d '\n')"
    [ "${4:-}" = record ] || return 0
    record "rps$2" "$1" "${rps:-0}"
    [ -n "$p99" ] && record "p99_$2" "$1" "$p99"
    record "err$2" "$1" "$errors"
    record "timeouts$2" "$1" "$timeouts"
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
    printf '  %-7s download %8s MB/s\n' "$1" "$speed"
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
    # nginx writes the log line after the response has gone: it may lag curl by a moment.
    for _ in $(seq 100); do
        [ "$(wc -l <"$DIR/backend-upload.log")" -le "$before" ] || break
        sleep 0.01
    done
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
    printf '  %-7s upload   %8s MB/s\n' "$1" "$speed"
    [ "${2:-}" = record ] && record upload "$1" "$speed"
    return 0
}

# The server's processes, whose RSS counts: nginx's master and workers, or the one
# java or haproxy process.
server_pids() { # PID
    echo "$1" $(pgrep -P "$1" || true)
}

kib_to_mib() { awk -v k="${1:--}" 'BEGIN { if (k == "-") print "-"; else printf "%.1f\n", k / 1024 }'; }

# IDLE keep-alive connections to a running server (BenchClient idle): prints
# "SERVED RSS_BEFORE_KIB RSS_WITH_IDLE_KIB", the server's summed RSS read just before
# the first connection and while all of them are held.
idle_rss() { # SERVER PID
    local out
    out=$(timeout 120 "$JAVA" -cp "$DIR/classes" BenchClient idle 127.0.0.1 "$(port_of "$1")" "$IDLE" 60 \
        $(server_pids "$2")) || true
    echo "$(sed -nE 's/.*served=([0-9]+).*/\1/p' <<<"$out") $(sed -nE 's/.*before_kib=([0-9]+).*/\1/p' <<<"$out")" \
        "$(sed -nE 's/.*rss_kib=([0-9]+).*/\1/p' <<<"$out")"
}

# KiB of RSS per idle connection: (RSS with them - RSS before) / connections served;
# "-" without data.
per_conn_kib() { # SERVED BEFORE_KIB AFTER_KIB
    awk -v n="${1:--}" -v b="${2:--}" -v a="${3:--}" 'BEGIN {
        if (n == "-" || b == "-" || a == "-" || n + 0 <= 0) print "-"; else printf "%.2f\n", (a - b) / n }'
}

# The processes that served the load rounds, before they are stopped: their RSS now, and
# with IDLE idle keep-alive connections on top. One sample each (not a median).
measure_after_load() { # SERVER PID
    local served before after
    read -r served before after <<<"$(idle_rss "$1" "$2")"
    printf '  %-7s after the load runs: RSS %7s MiB; %s idle: %5s served, RSS %7s MiB, %s KiB each\n' "$1" \
        "$(kib_to_mib "$before")" "$IDLE" "${served:-0}" "$(kib_to_mib "$after")" "$(per_conn_kib "$served" "$before" "$after")"
    record rss_load "$1" "$(kib_to_mib "$before")"
    record rss_load_idle "$1" "$(kib_to_mib "$after")"
    record per_conn_load "$1" "$(per_conn_kib "$served" "$before" "$after")"
    record served_load "$1" "${served:-0}"
}

# A fresh process (so the memory is that of IDLE connections, not of the heap the load
# tests grew): time to its first response, then RSS with IDLE idle connections.
measure_fresh() { # SERVER [record]
    local t0 ms served before after
    t0=${EPOCHREALTIME/./}
    start "$1"
    ms=$(wait_ready "$1" "$t0") || exit 1
    read -r served before after <<<"$(idle_rss "$1" "$PID")"
    stop_pid "$PID"
    printf '  %-7s first response %5s ms   %s idle: %5s served, RSS %7s MiB (%s before), %s KiB each\n' \
        "$1" "$ms" "$IDLE" "${served:-0}" "$(kib_to_mib "$after")" "$(kib_to_mib "$before")" \
        "$(per_conn_kib "$served" "$before" "$after")"
    [ "${2:-}" = record ] || return 0
    record first_ms "$1" "$ms"
    record served "$1" "${served:-0}"
    record rss "$1" "$(kib_to_mib "$after")"
    record rss_before "$1" "$(kib_to_mib "$before")"
    record per_conn "$1" "$(per_conn_kib "$served" "$before" "$after")"
}

# ---- the 128 MB run -------------------------------------------------------------------
# The proxy under -XX:MaxRAM=128m, the heap and direct-memory sizes the JVM picks in a
# 128 MB container, and in a memory cgroup of 128 MB where one can be made (below). Each
# variant is a fresh process with its own logs (and cgroup),
# run through Mix.java; its figures are recorded under mix_KEY.VARIANT.
#   plain   java -XX:MaxRAM=128m -cp out Proxy FILE          (as the README starts it)
#   opts    java $JVM_OPTS_128M -XX:MaxRAM=128m -cp out/proxy.jar Proxy FILE   (make run's
#           options as make picks them in 128 MB: the image's, with class-data sharing)
#   small   java $SMALL_JVM_OPTS -XX:MaxRAM=128m -cp out/proxy.jar Proxy FILE (the image's)
#   nginx   nginx-proxy.conf, for reference

# Log lines the proxy may write: access lines (nginx's combined format) and error lines
# (nginx's: a time stamp, then the [level]). Anything else (a stack trace, a JVM warning, an
# OutOfMemoryError printed by the JVM) is a finding.
ACCESS_LINE='^[0-9A-Fa-f.:]+ - - \[[0-9]{2}/[A-Za-z]{3}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}\] "'
ERROR_LINE='^[0-9]{4}/[0-9]{2}/[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} \[[a-z]+\] '

# A real 128 MB container where the machine allows it: a memory cgroup with a 128 MB limit
# (cgroup v2's memory.max, or v1's memory.limit_in_bytes; making one needs root). Then the
# JVM sees the limit as a container's (and picks its collector from it: Serial, where
# -XX:MaxRAM=128m alone leaves G1 on a large host), and the kernel kills what outgrows it,
# counting the page cache of the logs it writes too, as in a container. Without one, the
# run has -XX:MaxRAM=128m alone and can only say whether the peak would have fit.
CGROUP=""      # the variant's cgroup directory while it runs
CGROUP_KIND="" # v2, v1, or "" (none could be made)
CGROUP_BASE="" # where the variants' cgroups are made
# The files of a cgroup, by kind (set by find_cgroup): its limit, its swap's limit and the
# value that means "no swap", where the kernel counts its kills, and its peak.
CG_MAX="" CG_SWAP="" CG_NO_SWAP="" CG_EVENTS="" CG_PEAK=""
# How a command enters CGROUP: a shell moves itself into it, then becomes the command
# (same PID): bash -c "$CG_ENTER" "$CGROUP" COMMAND...
CG_ENTER='echo $$ >"$0/cgroup.procs" && exec "$@"'
find_cgroup() {
    local t=/sys/fs/cgroup own base entered=""
    if [ -f "$t/cgroup.controllers" ] && grep -qw memory "$t/cgroup.controllers"; then
        CGROUP_KIND=v2 own=$(sed -n 's/^0:://p' /proc/self/cgroup)
        CG_MAX=memory.max CG_SWAP=memory.swap.max CG_NO_SWAP=0 CG_EVENTS=memory.events CG_PEAK=memory.peak
    elif [ -f "$t/memory/memory.limit_in_bytes" ]; then
        CGROUP_KIND=v1 t=$t/memory own=$(sed -n 's/^[0-9]*:memory://p' /proc/self/cgroup)
        # v1 limits memory and swap together: no swap is a limit as large as the memory's.
        CG_MAX=memory.limit_in_bytes CG_SWAP=memory.memsw.limit_in_bytes CG_NO_SWAP=$((128 * MiB))
        CG_EVENTS=memory.oom_control CG_PEAK=memory.max_usage_in_bytes
    else
        return 0
    fi
    # Inside the bench's own cgroup first (so that any limit of its own still holds), else at
    # the top of the hierarchy. On v2 the memory controller must be on in the parent's
    # subtree_control: turned on if need be (and left on: it only makes memory counted).
    for base in "$t${own%/}" "$t"; do
        if [ "$CGROUP_KIND" = v2 ] && ! grep -qw memory "$base/cgroup.subtree_control" 2>/dev/null; then
            { echo +memory >"$base/cgroup.subtree_control"; } 2>/dev/null || continue
        fi
        CGROUP_BASE=$base
        # Only if one can really be made, limited, and entered here.
        if make_cgroup probe; then
            bash -c "$CG_ENTER" "$CGROUP" true 2>/dev/null && entered=yes
            rmdir "$CGROUP" 2>/dev/null || true
            CGROUP=""
            [ -z "$entered" ] || return 0
        fi
    done
    CGROUP="" CGROUP_KIND="" CGROUP_BASE=""
}

# A fresh cgroup limited to 128 MB, its swap too (the kernel must kill, not swap), in
# CGROUP; or false, and none.
make_cgroup() { # NAME
    local limit=$((128 * MiB)) swaps
    swaps=$(($(wc -l </proc/swaps) - 1)) # swap areas on: then the swap limit must hold too
    CGROUP=$CGROUP_BASE/proxy-bench-$$-$1
    mkdir "$CGROUP" 2>/dev/null || { CGROUP=""; return 1; }
    { echo $limit >"$CGROUP/$CG_MAX"; echo "$CG_NO_SWAP" >"$CGROUP/$CG_SWAP"; } 2>/dev/null
    [ "$(cat "$CGROUP/$CG_MAX" 2>/dev/null)" = $limit ] &&
        { [ "$swaps" -eq 0 ] || [ "$(cat "$CGROUP/$CG_SWAP" 2>/dev/null)" = "$CG_NO_SWAP" ]; } && return 0
    rmdir "$CGROUP" 2>/dev/null || true
    CGROUP=""
    return 1
}

# What the cgroup saw: how often the kernel killed a process in it for memory, and its
# peak (the process's memory and the page cache charged to it), in KiB ("-" if unknown).
cgroup_oom_kills() { sed -n 's/^oom_kill //p' "$CGROUP/$CG_EVENTS"; }
cgroup_peak_kib() { [ -r "$CGROUP/$CG_PEAK" ] && echo $(($(cat "$CGROUP/$CG_PEAK") / 1024)) || echo -; }

run_mix() { # plain|opts|small|nginx
    local v=$1 port pid out line key value other oome errors f files=()
    case $v in
    plain | opts | small)
        render proxy-mix.properties "proxy-mix-$v.properties" "$v"
        files=("$DIR/mix-$v.out" "$DIR/mix-$v-access.log" "$DIR/mix-$v-error.log")
        touch "${files[@]}"
        # In the variant's own cgroup if one can be made.
        local in_cgroup=()
        [ -n "$CGROUP_KIND" ] && make_cgroup "$v" && in_cgroup=(bash -c "$CG_ENTER" "$CGROUP")
        if [ "$v" = plain ]; then
            "${in_cgroup[@]}" "$JAVA" -XX:MaxRAM=128m -cp out Proxy "$DIR/proxy-mix-$v.properties" >>"$DIR/mix-$v.out" 2>&1 &
        else
            local opts=$JVM_OPTS_128M
            [ "$v" = small ] && opts=$SMALL_JVM_OPTS
            # shellcheck disable=SC2086  # a list of options
            "${in_cgroup[@]}" "$JAVA" $opts -XX:MaxRAM=128m -cp out/proxy.jar Proxy "$DIR/proxy-mix-$v.properties" \
                >>"$DIR/mix-$v.out" 2>&1 &
        fi
        PID=$!
        PIDS+=("$PID")
        port=$PROXY_PORT
        wait_ready proxy "${EPOCHREALTIME/./}" >/dev/null || exit 1
        ;;
    nginx)
        start_reference
        port=$NGINX_PORT
        wait_ready nginx "${EPOCHREALTIME/./}" >/dev/null || exit 1
        ;;
    esac
    pid=$PID
    phase "128 MB run: $v (pid $pid)"
    out=$(timeout $((MIX_LIMIT + 60)) "$JAVA" -cp "$DIR/classes" Mix host=127.0.0.1 port="$port" www="$DIR/www" \
        pids="$(server_pids "$pid" | tr ' ' ,)" stalled="$MIX_STALLED" idle="$MIX_IDLE" downloads="$MIX_DOWNLOADS" \
        wrk_connections=1000 wrk_seconds="$MIX_WRK_SECONDS" limit="$MIX_LIMIT" 2>&1) || true
    grep -v '^result' <<<"$out" || true
    line=$(grep '^result ' <<<"$out" || true)
    [ -n "$line" ] || echo "  mix: no result from Mix.java"
    for f in ${line#result }; do
        key=${f%%=*}
        value=${f#*=}
        [ "$key" = peak_hwm_kib ] && [ "$value" = 0 ] && value=- # the process had gone: no VmHWM to read
        record "mix_$key" "$v" "$value"
    done
    stop_pid "$pid"
    if [ -n "$CGROUP" ]; then
        record mix_oom_kills "$v" "$(cgroup_oom_kills)"
        record mix_cgroup_peak_kib "$v" "$(cgroup_peak_kib)"
        echo "  cgroup $CGROUP_KIND, 128 MB: $(cgroup_oom_kills) killed for memory, peak $(kib_to_mib "$(cgroup_peak_kib)") MiB (page cache included)"
        rmdir "$CGROUP" 2>/dev/null || true
        CGROUP=""
    fi
    [ ${#files[@]} -gt 0 ] || return 0
    # What the proxy wrote: everything but access and error lines is counted.
    other=$(cat "${files[@]}" | grep -cvE "$ACCESS_LINE|$ERROR_LINE" || true)
    oome=$(cat "${files[@]}" | grep -c 'OutOfMemoryError' || true)
    errors=$(cat "${files[@]}" | grep -cE "$ERROR_LINE" || true)
    record mix_log_other "$v" "$other"
    record mix_log_oome "$v" "$oome"
    printf '  %s log: %s access lines, %s error lines, %s other lines, %s mentioning OutOfMemoryError\n' "$v" \
        "$(cat "${files[@]}" | grep -cE "$ACCESS_LINE" || true)" "$errors" "$other" "$oome"
    if [ "$other" -gt 0 ]; then
        echo "  first other line: $(cat "${files[@]}" | grep -vE "$ACCESS_LINE|$ERROR_LINE" | head -n 1 | cut -c 1-200)"
        echo "  other lines, the most common kinds:"
        cat "${files[@]}" | grep -vE "$ACCESS_LINE|$ERROR_LINE" | log_kinds
    fi
    [ "$errors" -eq 0 ] || { echo "  error lines, the most common kinds:"; grep -hE "$ERROR_LINE" "${files[@]}" | log_kinds; }
}

mix_runs() {
    find_cgroup
    if [ -n "$CGROUP_KIND" ]; then phase "128 MB run: in a memory cgroup ($CGROUP_KIND) of 128 MB under $CGROUP_BASE, and -XX:MaxRAM=128m"
    else phase "128 MB run: -XX:MaxRAM=128m alone (no memory cgroup could be made here)"; fi
    run_mix plain
    run_mix opts
    [ -z "$SMALL_JVM_OPTS" ] || run_mix small
    run_mix nginx
}

# ---- the run --------------------------------------------------------------------------

phase() { echo "[$((SECONDS - STARTED)) s] $*"; } # a step of the run, with the time so far

# The JVM compiles its hot code while it runs; after a change of load (64 connections,
# then 1000, then a large body) its compiler threads work for a while longer and take
# CPU from the proxy on these two cores: measured with perf stat, they used 60-80 ms
# during each of the first three 100 MiB uploads after a load burst, and 10 ms during the
# fourth, when the upload ran 25 % faster. So the proxy's warm-up goes round WARMUP
# times; nginx and HAProxy, with nothing to compile, go round once (page cache, pools).
warm_up() {
    local s pass
    for pass in $(seq "$WARMUP"); do
        phase "warm-up $pass/$WARMUP (not counted)"
        for s in "${SERVERS[@]}"; do
            [ "$pass" = 1 ] || [ "$s" = proxy ] || continue
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
        phase "round $r/$ROUNDS"
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
    phase "fresh processes: warm-up start (not counted)"
    for s in "${SERVERS[@]}"; do measure_fresh "$s"; done
    for r in $(seq "$ROUNDS"); do
        phase "fresh processes, round $r/$ROUNDS"
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

med() { median "$DIR/results/$1.$2"; }   # METRIC SERVER
sum() { total "$DIR/results/$1.$2"; }    # METRIC SERVER
# The one value of a metric measured once (the 128 MB run), "-" if none.
one() { [ -s "$DIR/results/$1.$2" ] && tail -n 1 "$DIR/results/$1.$2" || echo "-"; }

# One markdown table row of numbers, shown with DECIMALS places and UNIT, with the
# ratio proxy/nginx. RULES (comma-separated, all must hold) say when the proxy meets its
# target, and TARGET is how the row says it:
#   ratio>=X  proxy/nginx at least X      ratio<=X  at most X
#   max=X     proxy at most X             lt=X      proxy below X
#   eq=X      proxy exactly X             info      no target, shown for context
# A missing value is "-"; a column for a server not measured (HAProxy not installed,
# or a run only the proxy has) is "-" too.
row() { # LABEL UNIT DECIMALS PROXY NGINX HAPROXY RULES TARGET
    awk -v label="$1" -v unit="$2" -v d="$3" -v p="$4" -v n="$5" -v h="$6" -v rules="$7" -v target="$8" '
    function show(v) { return v == "-" || v == "" ? "-" : sprintf("%." d "f", v) (unit == "" ? "" : " " unit) }
    BEGIN {
        ratio = (p != "-" && n != "-" && n + 0 > 0) ? sprintf("%.2f", p / n) : "-"
        met = "met"
        k = split(rules, rule, ",")
        for (i = 1; i <= k; i++) {
            split(rule[i], r, "=")
            if (r[1] == "info") { met = ""; continue }
            if (p == "-" || p == "") { met = "no data"; break }
            ok = (r[1] == "ratio>") ? ratio != "-" && ratio + 0 >= r[2] : \
                 (r[1] == "ratio<") ? ratio != "-" && ratio + 0 <= r[2] : \
                 (r[1] == "max") ? p + 0 <= r[2] : (r[1] == "lt") ? p + 0 < r[2] : (r[1] == "eq") ? p + 0 == r[2] : 0
            if (!ok) met = "MISSED"
        }
        printf "| %s | %s | %s | %s | %s | %s%s |\n", label, show(p), show(n), show(h), ratio, target, met == "" ? "" : ", " met
    }'
}

# A row of words or "a / b" pairs (the 128 MB run); MET is "met", "MISSED" or "".
text_row() { # LABEL PROXY NGINX HAPROXY TARGET MET
    printf '| %s | %s | %s | %s | - | %s%s |\n' "$1" "$2" "$3" "$4" "$5" "${6:+, $6}"
}

# The 128 MB run's rows for one variant of the proxy (nginx's one run alongside).
mix_rows() { # VARIANT LABEL
    local v=$1 l=$2 whole short ok
    if [ ! -s "$DIR/results/mix_alive.$v" ]; then
        text_row "128 MB run, $l" "no result" "-" "-" "" "MISSED"
        return
    fi
    row "128 MB run, $l: peak RSS (VmHWM)" MiB 1 "$(kib_to_mib "$(one mix_peak_hwm_kib "$v")")" \
        "$(kib_to_mib "$(one mix_peak_hwm_kib nginx)")" - "max=100" "<= 100 MiB"
    row "128 MB run, $l: largest VmRSS sampled every 100 ms" MiB 1 "$(kib_to_mib "$(one mix_max_rss_kib "$v")")" \
        "$(kib_to_mib "$(one mix_max_rss_kib nginx)")" - "info" "(for context)"
    whole=$(one mix_whole "$v")
    short=$(one mix_not_whole "$v")
    [ "$short" = 0 ] && [ "$whole" != - ] && ok=met || ok=MISSED
    text_row "128 MB run, $l: responses whole / not whole" "$whole / $short" \
        "$(one mix_whole nginx) / $(one mix_not_whole nginx)" - "all whole" "$ok"
    [ "$(one mix_wrk_socket_errors "$v")" = 0 ] && [ "$(one mix_wrk_non2xx "$v")" = 0 ] && ok=met || ok=MISSED
    text_row "128 MB run, $l: wrk socket errors (timeouts) / non-2xx" \
        "$(one mix_wrk_socket_errors "$v") ($(one mix_wrk_timeouts "$v")) / $(one mix_wrk_non2xx "$v")" \
        "$(one mix_wrk_socket_errors nginx) ($(one mix_wrk_timeouts nginx)) / $(one mix_wrk_non2xx nginx)" - "0" "$ok"
    [ "$(one mix_log_other "$v")" = 0 ] && [ "$(one mix_log_oome "$v")" = 0 ] && ok=met || ok=MISSED
    text_row "128 MB run, $l: log lines not access/error (OutOfMemoryError anywhere)" \
        "$(one mix_log_other "$v") ($(one mix_log_oome "$v"))" - - "0" "$ok"
    text_row "128 MB run, $l: stalled uploads held / answered early / failed" \
        "$(one mix_stalls_held "$v") / $(one mix_stalls_answered_early "$v") / $(one mix_stalls_failed "$v")" \
        "$(one mix_stalls_held nginx) / $(one mix_stalls_answered_early nginx) / $(one mix_stalls_failed nginx)" - \
        "(for context)" ""
    row "128 MB run, $l: RSS per idle connection, all else held" KiB 2 \
        "$(per_conn_kib "$(one mix_idle_served "$v")" "$(one mix_idle_before_kib "$v")" "$(one mix_idle_after_kib "$v")")" \
        "$(per_conn_kib "$(one mix_idle_served nginx)" "$(one mix_idle_before_kib nginx)" "$(one mix_idle_after_kib nginx)")" \
        - "info" "(for context)"
    [ "$(one mix_alive "$v")" = yes ] && [ "$(one mix_answers "$v")" = yes ] && ok=met || ok=MISSED
    text_row "128 MB run, $l: alive and answering at the end" "$(one mix_alive "$v") / $(one mix_answers "$v")" \
        "$(one mix_alive nginx) / $(one mix_answers nginx)" - "yes" "$ok"
    if [ -s "$DIR/results/mix_oom_kills.$v" ]; then
        [ "$(one mix_oom_kills "$v")" = 0 ] && ok=met || ok=MISSED
        text_row "128 MB run, $l: killed by the kernel (memory cgroup of 128 MB; its peak, page cache included)" \
            "$(one mix_oom_kills "$v") ($(kib_to_mib "$(one mix_cgroup_peak_kib "$v")") MiB)" - - "0" "$ok"
    fi
}

report() {
    local R=$DIR/results h=-
    has_haproxy() { [[ " ${SERVERS[*]} " == *" haproxy "* ]]; }
    hv() { has_haproxy && "$@" haproxy || echo "-"; } # a haproxy figure, or "-" without HAProxy
    echo
    echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    echo "jdk:     $("$JAVA" -version 2>&1 | head -n 1)"
    echo "nginx:   $(nginx -v 2>&1 | sed 's/^nginx version: //')"
    has_haproxy && echo "haproxy: $(haproxy -v 2>&1 | head -n 1 | sed 's/^HAProxy version //')"
    echo "JVM_OPTS (make run's options, used for the proxy column): $JVM_OPTS"
    [ -z "$SMALL_JVM_OPTS" ] || echo "SMALL_JVM_OPTS (the image's options, the 128 MB run only): $SMALL_JVM_OPTS"
    echo "JVM_OPTS_128M (make run's options in 128 MB, the 128 MB run only): $JVM_OPTS_128M"
    echo "medians of $ROUNDS rounds, alternating ${SERVERS[*]}; wrk -t2 ${WRK_SECONDS}s runs; counts summed over the rounds;"
    echo "MB = 10^6 bytes, MiB = 2^20 bytes; RSS summed over a server's processes"
    echo
    echo "| metric | proxy | nginx | haproxy | ratio proxy/nginx | target |"
    echo "|---|---|---|---|---|---|"
    row "requests/s, 64 connections" "" 0 "$(med rps64 proxy)" "$(med rps64 nginx)" "$(hv med rps64)" "ratio>=1.0" ">= 1.0x nginx"
    row "p99 latency, 64 connections" ms 2 "$(med p99_64 proxy)" "$(med p99_64 nginx)" "$(hv med p99_64)" "ratio<=1.0" "<= nginx"
    row "requests/s, 1000 connections" "" 0 "$(med rps1000 proxy)" "$(med rps1000 nginx)" "$(hv med rps1000)" "ratio>=1.0" ">= 1.0x nginx"
    row "p99 latency, 1000 connections" ms 2 "$(med p99_1000 proxy)" "$(med p99_1000 nginx)" "$(hv med p99_1000)" \
        "ratio<=1.0,max=100" "<= nginx and <= 100 ms"
    row "wrk timeouts (> 2 s), 1000 connections, $ROUNDS rounds" "" 0 "$(sum timeouts1000 proxy)" "$(sum timeouts1000 nginx)" \
        "$(hv sum timeouts1000)" "eq=0" "0"
    row "wrk timeouts (> 2 s), 64 connections, $ROUNDS rounds" "" 0 "$(sum timeouts64 proxy)" "$(sum timeouts64 nginx)" \
        "$(hv sum timeouts64)" "eq=0" "0"
    row "socket errors + non-2xx, 64 and 1000 connections, $ROUNDS rounds" "" 0 \
        "$(($(sum err64 proxy) + $(sum err1000 proxy)))" "$(($(sum err64 nginx) + $(sum err1000 nginx)))" \
        "$(has_haproxy && echo $(($(sum err64 haproxy) + $(sum err1000 haproxy))) || echo -)" "eq=0" "0"
    row "download 100 MiB" MB/s 0 "$(med download proxy)" "$(med download nginx)" "$(hv med download)" "ratio>=2.0" ">= 2.0x nginx"
    row "upload 100 MiB" MB/s 0 "$(med upload proxy)" "$(med upload nginx)" "$(hv med upload)" "ratio>=1.0" ">= 1.0x nginx"
    row "RSS after the load runs" MiB 1 "$(one rss_load proxy)" "$(one rss_load nginx)" "$(hv one rss_load)" "info" "(for context)"
    row "RSS with $IDLE idle keep-alive connections, after load" MiB 1 "$(one rss_load_idle proxy)" \
        "$(one rss_load_idle nginx)" "$(hv one rss_load_idle)" "info" "(for context)"
    # No target after load: connections opened into a heap the load already grew (and
    # made resident) cost little new RSS; the fresh process is the honest measure.
    row "RSS per idle connection, after load" KiB 2 "$(one per_conn_load proxy)" "$(one per_conn_load nginx)" \
        "$(hv one per_conn_load)" "info" "(for context: into the heap the load grew)"
    row "RSS with $IDLE idle keep-alive connections, fresh process" MiB 1 "$(med rss proxy)" "$(med rss nginx)" \
        "$(hv med rss)" "max=96" "<= 96 MiB"
    row "RSS of a fresh process, before those connections" MiB 1 "$(med rss_before proxy)" "$(med rss_before nginx)" \
        "$(hv med rss_before)" "info" "(for context)"
    row "RSS per idle connection, fresh process" KiB 2 "$(med per_conn proxy)" "$(med per_conn nginx)" \
        "$(hv med per_conn)" "lt=5" "well under 5 KiB"
    row "idle connections served (of $IDLE), fresh process" "" 0 "$(med served proxy)" "$(med served nginx)" \
        "$(hv med served)" "eq=$IDLE" "all $IDLE"
    row "first response after start" ms 0 "$(med first_ms proxy)" "$(med first_ms nginx)" "$(hv med first_ms)" \
        "max=150" "<= 150 ms"
    if [ "$MIX" = 1 ]; then
        mix_rows plain "plain java"
        mix_rows opts "make run's options"
        [ -z "$SMALL_JVM_OPTS" ] || mix_rows small "the image's options"
    fi
    echo
    echo "Timeouts are wrk's: requests with no response within 2 s. Socket errors are wrk's connect,"
    echo "read and write errors; a failed download or upload counts as 0 MB/s. RSS after load: one"
    echo "sample, the processes that served every round. RSS per idle connection: (RSS with the"
    echo "connections - RSS before) / connections served. Fresh process: a new one per round."
    if [ "$MIX" = 1 ]; then
        if [ -n "$CGROUP_KIND" ]; then
            echo "128 MB run: each variant of the proxy in a memory cgroup ($CGROUP_KIND) limited to 128 MB, as in a container"
            echo "(the kernel kills what outgrows it; nginx runs outside it), and"
        else
            echo "128 MB run: no memory cgroup could be made here (that needs root), so nothing is killed; the proxy"
        fi
        echo "java -XX:MaxRAM=128m (plain: -cp out Proxy FILE; make run's: JVM_OPTS_128M -XX:MaxRAM=128m;"
        echo "the image's: SMALL_JVM_OPTS -XX:MaxRAM=128m), shipped defaults (test/bench/proxy-mix.properties),"
        echo "then Mix.java, all held at once at the end:"
        echo "$MIX_STALLED stalled uploads (POST head, Content-Length 900000, 5000 body bytes, then a pause), a 1 MiB"
        echo "download (SHA-256 checked), wrk -c1000 ${MIX_WRK_SECONDS}s with $MIX_DOWNLOADS parallel 100 MiB downloads (each"
        echo "compared byte for byte), $MIX_IDLE idle keep-alive connections (each served once), a second 1 MiB"
        echo "download. Peak RSS: VmHWM at the end (\"-\" if the process was gone). The nginx column is one nginx run through the same mix."
    fi
    report_logs
}

# What the servers complained about during the run: a fast number with errors behind it
# is not a result. Not complaints: the proxy's start-up notices ("started", "listening
# on"), HAProxy's, and its two lines about the descriptor limit being below what maxconn
# 20000 asks for (expected here, see "no strict-limits" in haproxy.cfg).
EXPECTED_LOG_LINES='\[notice\] (started|listening on)|\[NOTICE\]|Cannot raise FD limit|FD limit \([0-9]+\) too low for maxconn'
report_logs() {
    local f n
    echo
    for f in proxy.out proxy-error.log nginx-proxy-error.log haproxy.out backend-error.log; do
        [ -e "$DIR/$f" ] || continue
        n=$(grep -vcE "$EXPECTED_LOG_LINES" "$DIR/$f" 2>/dev/null || true)
        printf 'log %-22s %6s other lines\n' "$f:" "${n:-0}"
        [ "${n:-0}" -eq 0 ] || grep -vE "$EXPECTED_LOG_LINES" "$DIR/$f" | log_kinds
    done
}

# The five most common kinds of line: timestamps, pids and port numbers (after an IPv4
# address or an IPv6 one's "]") taken out, so that lines differing only in those count
# as one kind.
log_kinds() {
    sed -E -e 's/^[0-9]{4}[-/][0-9]{2}[-/][0-9]{2}[T ][0-9:.]+(Z|[+-][0-9:]+)? //' -e 's/[0-9]+#[0-9]+: (\*[0-9]+ )?//' \
        -e 's/([0-9]\.[0-9]+|\]):[0-9]{2,5}\b/\1:PORT/g' -e 's/\(([0-9]+)\)/(PID)/' | cut -c 1-150 | sort | uniq -c | sort -rn | head -n 5
}

main() {
    local s pid
    STARTED=$SECONDS
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
    render haproxy.cfg

    start_backend
    wait_ready backend "${EPOCHREALTIME/./}" >/dev/null || exit 1
    check_server backend
    declare -gA LOADED # server -> the pid of its process that serves the load rounds
    for s in "${SERVERS[@]}"; do
        start "$s"
        LOADED[$s]=$PID
        wait_ready "$s" "${EPOCHREALTIME/./}" >/dev/null || exit 1
    done
    for s in "${SERVERS[@]}"; do check_server "$s"; done
    echo "backend :$BACKEND_PORT, $(for s in "${SERVERS[@]}"; do printf '%s :%s, ' "$s" "$(port_of "$s")"; done)all answer correctly"

    warm_up
    load_rounds
    phase "after the load runs"
    for s in "${SERVERS[@]}"; do measure_after_load "$s" "${LOADED[$s]}"; done
    # The load tests' processes are done; the rest needs fresh ones.
    for pid in "${PIDS[@]}"; do [ "$pid" = "$BACKEND_PID" ] || stop_pid "$pid"; done
    fresh_rounds
    [ "$MIX" = 1 ] && mix_runs

    report
    if [ "${GZIP:-1}" = 1 ]; then # the gzip rows: gzip.sh, processes and files of its own
        echo
        phase "gzip on, against nginx's gzip (test/bench/gzip.sh; GZIP=0 skips it)"
        timeout 600 bash "$BENCH/gzip.sh" || echo "bench: the gzip rows failed"
    fi
    if [ "${TLS:-1}" = 1 ]; then # the TLS rows: tls.sh, processes, certificate and files of its own
        echo
        phase "TLS, against nginx's TLS with the same certificate (test/bench/tls.sh; TLS=0 skips it)"
        timeout 600 bash "$BENCH/tls.sh" || echo "bench: the TLS rows failed"
    fi
    echo
    echo "bench: done in $((SECONDS - STARTED)) s"
}

main "$@"
