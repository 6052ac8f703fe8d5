#!/usr/bin/env bash
# gzip.sh: this proxy with gzip on against nginx with gzip on, at the same level (1), the
# rows `make bench` adds for gzip (bench.sh runs this last; GZIP=0 skips it). Both proxy
# the same backend (an nginx of its own, on loopback), measured in turns, ROUNDS times,
# medians reported:
#
#   req/s      wrk -t2 -c64 with "Accept-Encoding: gzip", a 10 KiB HTML page
#   MB/s       curl --compressed, a 100 MiB text file (MB of text per second, decoded)
#   RSS        the process(es) after those runs
#   flood      a fresh process (the proxy under -XX:MaxRAM=128m: a 128 MB container, with
#              make run's options there, JVM_OPTS_128M),
#              FLOOD (1000) downloads of a 1 MiB text file at once (GzipFlood.java): how
#              many came whole, how many compressed, the peak RSS
#
# Environment: JAVA, JVM_OPTS, JVM_OPTS_128M (from make), ROUNDS (3), WRK_SECONDS (6), FLOOD (1000);
# QUICK=1: 1 round of 2 s, a flood of 300. Needs nginx, wrk, curl; installs nothing;
# starts only its own processes on free loopback ports, in a temp directory removed at
# the end.

set -euo pipefail
JAVA=${JAVA:-java}
JVM_OPTS=${JVM_OPTS:-}
JVM_OPTS_128M=${JVM_OPTS_128M:-$JVM_OPTS} # make run's options in a 128 MB container
if [ "${QUICK:-0}" = 1 ]; then : "${ROUNDS:=1}" "${WRK_SECONDS:=2}" "${FLOOD:=300}"; fi
ROUNDS=${ROUNDS:-3}
WRK_SECONDS=${WRK_SECONDS:-6}
FLOOD=${FLOOD:-1000}
MiB=$((1024 * 1024))
BENCH=test/bench
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

for tool in nginx wrk curl; do
    command -v "$tool" >/dev/null || { echo "gzip bench: $tool is not installed"; exit 1; }
done
[ -f out/proxy.jar ] || { echo "gzip bench: build the proxy first (make)"; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

source "$BENCH/processes.sh" # run_dir, stop_pid, free_ports, nginx_settings
run_dir gzip-bench

# ---- files, ports, configurations ---------------------------------------------------

mkdir -p "$DIR/www" "$DIR/tmp"
# Text that compresses as an app's output does (3-5x at level 1), not as a repeated line.
awk 'BEGIN { srand(12); while (n < 10240) { l = sprintf("<li class=\"item\"><a href=\"/items/%d\">Item %d</a> costs %d.%02d, %d in stock</li>\n", int(rand() * 1e6), int(rand() * 1e4), int(rand() * 500), int(rand() * 100), int(rand() * 80)); printf "%s", l; n += length(l) } }' \
    | head -c 10240 >"$DIR/www/10k.html"
awk 'BEGIN { srand(7); for (i = 0; ; i++) printf "%d 127.0.0.1 GET /api/items/%d?user=%d HTTP/1.1 %d %d \"Mozilla/5.0 (X11; Linux x86_64)\"\n", i, int(rand() * 1e6), int(rand() * 1e4), 200 + 100 * int(rand() * 3), int(rand() * 1e5) }' \
    | head -c $((100 * MiB)) >"$DIR/www/100m.txt" || true
head -c "$MiB" "$DIR/www/100m.txt" >"$DIR/www/1m.txt"
read -r BACKEND_PORT PROXY_PORT NGINX_PORT <<<"$(free_ports 3)"
nginx_settings "$DIR"

cat >"$DIR/backend.conf" <<CONF
$USER_LINE
worker_processes 1; pid $DIR/backend.pid; error_log $DIR/backend-error.log warn;
events { worker_connections 8192; }
http { access_log off; sendfile on; keepalive_requests 1000000; $TEMPS
  types { text/html html; text/plain txt; }
  server { listen 127.0.0.1:$BACKEND_PORT; root $DIR/www; } }
CONF
# nginx as the reference, made fair as in nginx-proxy.conf, and gzip on at level 1.
cat >"$DIR/nginx.conf" <<CONF
$USER_LINE
worker_processes auto; worker_rlimit_nofile 65536; pid $DIR/nginx.pid; error_log $DIR/nginx-error.log warn;
events { worker_connections 20000; }
http { access_log off; keepalive_requests 1000000; $TEMPS
  gzip on; gzip_comp_level 1; gzip_min_length 20; gzip_vary on; gzip_proxied any;
  gzip_types text/plain application/json application/javascript text/css application/xml;
  upstream backend { server 127.0.0.1:$BACKEND_PORT; keepalive 64; }
  server { listen 127.0.0.1:$NGINX_PORT;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_buffering off; proxy_set_header Host \$http_host; } } }
CONF
cat >"$DIR/proxy.properties" <<CONF
listen = 127.0.0.1:$PROXY_PORT
upstream = 127.0.0.1:$BACKEND_PORT
max_connections = 20000
access_log = off
error_log = $DIR/proxy-error.log
gzip = on
gzip_comp_level = 1
CONF

start_nginx() { # CONF
    nginx -p "$DIR" -c "$DIR/$1" -e "$DIR/$1.startup.log" -g 'daemon off;' >>"$DIR/$1.out" 2>&1 &
    PID=$!; PIDS+=("$PID")
}
start_proxy() { # extra JVM options
    # shellcheck disable=SC2086
    "$JAVA" $JVM_OPTS "$@" -cp out/proxy.jar Proxy "$DIR/proxy.properties" >>"$DIR/proxy.out" 2>&1 &
    PID=$!; PIDS+=("$PID")
}
port_of() { case $1 in proxy) echo "$PROXY_PORT" ;; nginx) echo "$NGINX_PORT" ;; backend) echo "$BACKEND_PORT" ;; esac; }
wait_ready() { # NAME
    for _ in $(seq 1500); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$(port_of "$1")/10k.html")" = 200 ] && return 0
        sleep 0.01
    done
    echo "gzip bench: $1 did not start"; tail -n 20 "$DIR"/*.out >&2; exit 1
}
rss_kib() { local t=0 p; for p in "$@" $(pgrep -P "$1" || true); do t=$((t + $(awk '/^VmRSS/ { print $2 }' /proc/"$p"/status 2>/dev/null || echo 0))); done; echo "$t"; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'; }

# ---- the load runs ----------------------------------------------------------------

start_nginx backend.conf; wait_ready backend
start_proxy; PROXY_PID=$PID; wait_ready proxy
start_nginx nginx.conf; NGINX_PID=$PID; wait_ready nginx
for s in proxy nginx; do # sanity: the same bytes back, compressed
    u="http://127.0.0.1:$(port_of "$s")"
    curl -s --compressed "$u/100m.txt" | cmp -s - "$DIR/www/100m.txt" || { echo "gzip bench: $s: 100m.txt came back different"; exit 1; }
    curl -s -D - -o /dev/null -H 'Accept-Encoding: gzip' "$u/10k.html" | grep -qi '^content-encoding: gzip' \
        || { echo "gzip bench: $s does not compress"; exit 1; }
done
# the proxy's JIT warms up first, as in bench.sh
for _ in 1 2 3; do # (a cold JIT serves a third of what a warm one does)
    wrk -t2 -c64 -d3s -H 'Accept-Encoding: gzip' "http://127.0.0.1:$PROXY_PORT/10k.html" >/dev/null 2>&1 || true
done
curl -s --compressed -o /dev/null "http://127.0.0.1:$PROXY_PORT/100m.txt"
ratio_html=$(awk -v a=10240 -v b="$(curl -s -H 'Accept-Encoding: gzip' "http://127.0.0.1:$PROXY_PORT/10k.html" | wc -c)" 'BEGIN { printf "%.1f", a / b }')
ratio_text=$(awk -v a=$((100 * MiB)) -v b="$(curl -s -H 'Accept-Encoding: gzip' "http://127.0.0.1:$PROXY_PORT/100m.txt" | wc -c)" 'BEGIN { printf "%.1f", a / b }')
for r in $(seq "$ROUNDS"); do
    for s in proxy nginx; do
        u="http://127.0.0.1:$(port_of "$s")"
        rps=$(wrk -t2 -c64 -d"$WRK_SECONDS"s -H 'Accept-Encoding: gzip' "$u/10k.html" 2>&1 | awk '/^Requests\/sec:/ { print $2 }')
        t=$(curl -s --compressed -o /dev/null -w '%{time_total}' "$u/100m.txt")
        mbs=$(awk -v t="$t" -v b=$((100 * MiB)) 'BEGIN { printf "%.1f", b / t / 1e6 }')
        echo "$rps" >>"$DIR/rps.$s"; echo "$mbs" >>"$DIR/mbs.$s"
        printf '  round %s %-6s %10s req/s (10 KiB HTML, gzip)  %7s MB/s (100 MiB text, gzip)\n' "$r" "$s" "$rps" "$mbs"
    done
done
RSS_proxy=$(rss_kib "$PROXY_PID"); RSS_nginx=$(rss_kib "$NGINX_PID")
stop_pid "$PROXY_PID"; stop_pid "$NGINX_PID"

# ---- the flood, in a 128 MB container's sizes ------------------------------------------

flood() { # NAME PID
    timeout 300 "$JAVA" "$BENCH/GzipFlood.java" 127.0.0.1 "$(port_of "$1")" /1m.txt "$FLOOD" "$MiB" \
        "$2" $(pgrep -P "$2" || true)
}
JVM_OPTS=$JVM_OPTS_128M start_proxy -XX:MaxRAM=128m; PROXY_PID=$PID; wait_ready proxy
FLOOD_proxy=$(flood proxy "$PROXY_PID"); stop_pid "$PROXY_PID"
start_nginx nginx.conf; NGINX_PID=$PID; wait_ready nginx
FLOOD_nginx=$(flood nginx "$NGINX_PID"); stop_pid "$NGINX_PID"

field() { sed -nE "s/.*$1=([0-9]+).*/\1/p" <<<"$2"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
echo
echo "gzip on, level 1 (compressed: 10 KiB HTML ${ratio_html}x, text ${ratio_text}x)      proxy        nginx"
printf '  %-52s %10s %12s\n' "req/s, 10 KiB HTML, 64 connections (median)" "$(median <"$DIR/rps.proxy")" "$(median <"$DIR/rps.nginx")"
printf '  %-52s %10s %12s\n' "MB/s of text, 100 MiB file, curl --compressed" "$(median <"$DIR/mbs.proxy")" "$(median <"$DIR/mbs.nginx")"
printf '  %-52s %10s %12s\n' "RSS after those runs, MiB" "$(mib "$RSS_proxy")" "$(mib "$RSS_nginx")"
printf '  %-52s %10s %12s\n' "$FLOOD x 1 MiB at once: whole / compressed" \
    "$(field whole "$FLOOD_proxy")/$(field compressed "$FLOOD_proxy")" "$(field whole "$FLOOD_nginx")/$(field compressed "$FLOOD_nginx")"
printf '  %-52s %10s %12s\n' "  failed" "$(field failed "$FLOOD_proxy")" "$(field failed "$FLOOD_nginx")"
printf '  %-52s %10s %12s\n' "  peak RSS, MiB (proxy: -XX:MaxRAM=128m, target < 128)" "$(mib "$(field peak_rss_kib "$FLOOD_proxy")")" \
    "$(mib "$(field peak_rss_kib "$FLOOD_nginx")")"
