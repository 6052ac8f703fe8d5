#!/usr/bin/env bash
# tls.sh: this proxy terminating TLS against nginx terminating TLS, with the same
# certificate (a self-signed EC P-256 one made here, SAN localhost and 127.0.0.1), the
# rows `make bench` adds for HTTPS (bench.sh runs this after gzip.sh; TLS=0 skips it).
# Both proxy the same backend (an nginx of its own, on loopback, plain HTTP), measured
# in turns, proxy then nginx, ROUNDS times, medians reported:
#
#   req/s, p99       wrk -t2 -c64 on https://.../ (keep-alive: one handshake per connection)
#   new connections  wrk -t2 -c64 -H "Connection: close" on https://.../: every request a
#                    new TCP connection and TLS handshake, each a resumption: this wrk
#                    (4.1, Debian's) speaks TLS 1.2 and offers the session it had, and both
#                    servers resume it by default (checked once by hand: nginx logged
#                    $ssl_session_reused "r" for all but the first of each connection,
#                    the proxy answered "Reused" to openssl s_client -tls1_2 -reconnect)
#   full handshakes  openssl s_time -new: one client, handshakes in a row, each a full
#                    one (TLS 1.3, no resumption), no request: handshakes per second of
#                    wall time; a client's figure more than a server's capacity
#   download MB/s    curl --cacert, a 100 MiB file over TLS (TLS 1.3)
#
# Environment: JAVA, JVM_OPTS (from make), ROUNDS (3), WRK_SECONDS (6); QUICK=1: 1 round
# of 2 s. Needs nginx (with ssl), wrk, curl, openssl; installs nothing; starts only its
# own processes on free loopback ports, in a temp directory removed at the end.

set -euo pipefail
JAVA=${JAVA:-java}
JVM_OPTS=${JVM_OPTS:-}
if [ "${QUICK:-0}" = 1 ]; then : "${ROUNDS:=1}" "${WRK_SECONDS:=2}"; fi
ROUNDS=${ROUNDS:-3}
WRK_SECONDS=${WRK_SECONDS:-6}
MiB=$((1024 * 1024))
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

for tool in nginx wrk curl openssl; do
    command -v "$tool" >/dev/null || { echo "tls bench: $tool is not installed"; exit 1; }
done
[ -f out/proxy.jar ] || { echo "tls bench: build the proxy first (make)"; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n) # nginx may not raise it further (worker_rlimit_nofile)

source test/bench/processes.sh # run_dir, stop_pid, free_ports, nginx_settings
run_dir tls-bench

# ---- files, certificate, ports, configurations ----------------------------------------

mkdir -p "$DIR/www" "$DIR/tmp"
head -c $((100 * MiB)) /dev/urandom >"$DIR/www/100m.bin"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$DIR/key.pem" \
    -out "$DIR/cert.pem" -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
read -r BACKEND_PORT PROXY_PORT NGINX_PORT <<<"$(free_ports 3)"
nginx_settings "$DIR"

cat >"$DIR/backend.conf" <<CONF
$USER_LINE
worker_processes 1; worker_rlimit_nofile $NOFILE; pid $DIR/backend.pid; error_log $DIR/backend-error.log warn;
events { worker_connections 8192; }
http { access_log off; sendfile on; tcp_nopush on; default_type application/octet-stream;
  keepalive_requests 1000000; keepalive_timeout 300s; $TEMPS
  server { listen 127.0.0.1:$BACKEND_PORT; root $DIR/www;
    location = / { default_type text/plain; return 200 "Hello"; }
    location / { } } }
CONF
# nginx as the reference, made fair as in nginx-proxy.conf (the same settings), with
# "listen ... ssl", the same certificate and the proxy's default ssl_protocols.
cat >"$DIR/nginx.conf" <<CONF
$USER_LINE
worker_processes auto; worker_rlimit_nofile $NOFILE; pid $DIR/nginx.pid; error_log $DIR/nginx-error.log warn;
events { worker_connections 20000; }
http { access_log off; keepalive_requests 1000000; $TEMPS
  upstream backend { server 127.0.0.1:$BACKEND_PORT; keepalive 64; keepalive_requests 1000000; }
  server { listen 127.0.0.1:$NGINX_PORT ssl; client_max_body_size 0;
    ssl_certificate $DIR/cert.pem; ssl_certificate_key $DIR/key.pem; ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_read_timeout 90; proxy_buffering off; proxy_request_buffering off;
                 proxy_set_header Host \$http_host; proxy_set_header X-Real-IP \$remote_addr;
                 proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
                 proxy_set_header X-Forwarded-Proto \$scheme; } } }
CONF
# The proxy as in proxy.properties (shipped defaults otherwise), its listener TLS.
cat >"$DIR/proxy.properties" <<CONF
listen = 127.0.0.1:$PROXY_PORT ssl
ssl_certificate = $DIR/cert.pem
ssl_certificate_key = $DIR/key.pem
upstream = 127.0.0.1:$BACKEND_PORT
client_max_body_size = 0
max_connections = 20000
access_log = off
error_log = $DIR/proxy-error.log
CONF

start_nginx() { # CONF
    nginx -p "$DIR" -c "$DIR/$1" -e "$DIR/$1.startup.log" -g 'daemon off;' >>"$DIR/$1.out" 2>&1 &
    PID=$!; PIDS+=("$PID")
}
start_proxy() {
    # shellcheck disable=SC2086
    "$JAVA" $JVM_OPTS -cp out/proxy.jar Proxy "$DIR/proxy.properties" >>"$DIR/proxy.out" 2>&1 &
    PID=$!; PIDS+=("$PID")
}
port_of() { case $1 in proxy) echo "$PROXY_PORT" ;; nginx) echo "$NGINX_PORT" ;; backend) echo "$BACKEND_PORT" ;; esac; }
url() { [ "$1" = backend ] && echo "http://127.0.0.1:$BACKEND_PORT" || echo "https://127.0.0.1:$(port_of "$1")"; }
wait_ready() { # NAME
    for _ in $(seq 1500); do
        [ "$(curl -s --cacert "$DIR/cert.pem" -o /dev/null -w '%{http_code}' --max-time 1 "$(url "$1")/")" = 200 ] && return 0
        sleep 0.01
    done
    echo "tls bench: $1 did not start"; tail -n 20 "$DIR"/*.out "$DIR"/*error.log >&2; exit 1
}

# ---- measurements ---------------------------------------------------------------------

p99_ms() { # wrk's "99%  3.21ms" in ms
    awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
                       print (u == "us" ? v / 1000 : u == "s" ? v * 1000 : u == "m" ? v * 60000 : v) }'
}
errors_of() { # wrk's socket errors + non-2xx
    awk '/Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } /Non-2xx or 3xx responses:/ { n += $NF } END { print n + 0 }'
}
wrk_run() { # SERVER SECONDS [wrk options]: prints "REQ/S P99_MS ERRORS"
    local s=$1 t=$2 out
    shift 2
    out=$(timeout $((t + 30)) wrk -t2 -c64 -d"$t"s --latency "$@" "$(url "$s")/" 2>&1) || true
    echo "$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out" | grep . || echo 0) $(p99_ms <<<"$out" | grep . || echo -) $(errors_of <<<"$out")"
}
handshakes() { # SERVER SECONDS: full handshakes per second of wall time (openssl s_time -new)
    timeout $(($2 + 30)) openssl s_time -connect "127.0.0.1:$(port_of "$1")" -new -time "$2" 2>/dev/null |
        awk '/connections in [0-9.]+ real seconds/ { printf "%.0f", $1 / $4; found = 1 } END { if (!found) print 0 }'
}
download() { # SERVER: MB/s, 0 if the 100 MiB did not come whole
    local code size speed
    read -r code size speed <<<"$(timeout 120 curl -s --cacert "$DIR/cert.pem" -o /dev/null --max-time 100 \
        -w '%{http_code} %{size_download} %{speed_download}' "$(url "$1")/100m.bin" || true)"
    if [ "$code" != 200 ] || [ "$size" != $((100 * MiB)) ]; then echo 0; return; fi
    awk -v b="$speed" 'BEGIN { printf "%.1f", b / 1e6 }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med() { [ -s "$DIR/$1.$2" ] && median <"$DIR/$1.$2" || echo -; }
sum() { [ -s "$DIR/$1.$2" ] && awk '{ n += $1 } END { print n + 0 }' "$DIR/$1.$2" || echo -; }

# ---- the runs -------------------------------------------------------------------------

start_nginx backend.conf; wait_ready backend
start_proxy; wait_ready proxy
start_nginx nginx.conf; wait_ready nginx
for s in proxy nginx; do # sanity: TLS with the certificate, "Hello", the 100 MiB file whole
    [ "$(curl -s --cacert "$DIR/cert.pem" "$(url "$s")/")" = Hello ] || { echo "tls bench: $s: GET / is not Hello"; exit 1; }
    curl -s --cacert "$DIR/cert.pem" "$(url "$s")/100m.bin" | cmp -s - "$DIR/www/100m.bin" ||
        { echo "tls bench: $s: 100m.bin came back different"; exit 1; }
done
negotiated() { # SERVER: "TLSv1.3 TLS_AES_256_GCM_SHA384", as openssl s_client reports it
    openssl s_client -connect "127.0.0.1:$(port_of "$1")" </dev/null 2>/dev/null |
        awk '/^New, / { sub(/^New, /, ""); sub(/, Cipher is /, " "); printf "%s", $0; exit }' || true
}
PROTO="proxy $(negotiated proxy), nginx $(negotiated nginx)"
# The proxy's JIT warms up first, as in bench.sh; nginx gets one pass (nothing to compile).
for s in proxy proxy proxy nginx; do
    wrk_run "$s" 3 >/dev/null
    wrk_run "$s" 2 -H 'Connection: close' >/dev/null
    download "$s" >/dev/null
done
for r in $(seq "$ROUNDS"); do
    for s in proxy nginx; do
        read -r rps p99 err <<<"$(wrk_run "$s" "$WRK_SECONDS")"
        echo "$rps" >>"$DIR/rps.$s"; [ "$p99" = - ] || echo "$p99" >>"$DIR/p99.$s"; echo "$err" >>"$DIR/err.$s"
        read -r cps _ cerr <<<"$(wrk_run "$s" "$WRK_SECONDS" -H 'Connection: close')"
        echo "$cps" >>"$DIR/cps.$s"; echo "$cerr" >>"$DIR/err.$s"
        hs=$(handshakes "$s" "$WRK_SECONDS"); echo "$hs" >>"$DIR/hs.$s"
        mbs=$(download "$s"); echo "$mbs" >>"$DIR/mbs.$s"
        printf '  round %s %-6s %9s req/s (p99 %s ms)  %7s new conn/s  %6s full handshakes/s  %7s MB/s  errors %s\n' \
            "$r" "$s" "$rps" "$p99" "$cps" "$hs" "$mbs" "$((err + cerr))"
    done
done

# ---- the rows, in bench.sh's table format -----------------------------------------------

row() { # LABEL UNIT DECIMALS PROXY NGINX: no target, shown for context
    awk -v label="$1" -v unit="$2" -v d="$3" -v p="$4" -v n="$5" '
    function show(v) { return v == "-" || v == "" ? "-" : sprintf("%." d "f", v) (unit == "" ? "" : " " unit) }
    BEGIN { ratio = (p != "-" && n != "-" && n + 0 > 0) ? sprintf("%.2f", p / n) : "-"
            printf "| %s | %s | %s | - | %s | (for context) |\n", label, show(p), show(n), ratio }'
}
echo
echo "TLS (the same EC P-256 certificate; openssl s_client gets $PROTO; wrk speaks TLS 1.2), medians of $ROUNDS rounds, wrk -t2 ${WRK_SECONDS}s runs:"
echo
echo "| metric | proxy | nginx | haproxy | ratio proxy/nginx | target |"
echo "|---|---|---|---|---|---|"
row "TLS: requests/s, 64 keep-alive connections (wrk; TLS 1.2)" "" 0 "$(med rps proxy)" "$(med rps nginx)"
row "TLS: p99 latency, 64 keep-alive connections" ms 2 "$(med p99 proxy)" "$(med p99 nginx)"
row "TLS: new connections/s, 64 at a time (wrk Connection: close; TLS 1.2, resumed)" "" 0 "$(med cps proxy)" "$(med cps nginx)"
row "TLS: full handshakes/s, one client (openssl s_time -new; TLS 1.3)" "" 0 "$(med hs proxy)" "$(med hs nginx)"
row "TLS: download 100 MiB (curl)" MB/s 0 "$(med mbs proxy)" "$(med mbs nginx)"
row "TLS: wrk socket errors + non-2xx, $ROUNDS rounds" "" 0 "$(sum err proxy)" "$(sum err nginx)"
for f in proxy.out proxy-error.log nginx-error.log; do
    [ -s "$DIR/$f" ] || continue
    n=$(grep -vcE '\[notice\] (started|listening on)' "$DIR/$f" || true)
    [ "${n:-0}" -eq 0 ] || { echo "log $f: $n other lines, e.g.:"; grep -vE '\[notice\] (started|listening on)' "$DIR/$f" | head -n 3; }
done
