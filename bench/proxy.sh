#!/usr/bin/env bash
# bench/proxy.sh — the bare proxy path: direct vs nginx proxy_pass (keep-alive) vs
# toolgate, interleaved in one run (A B C A B C …), medians of the rounds.
#   bench/proxy.sh [ROUNDS] [SECONDS]      defaults: 3 rounds of 5 s per measurement
# Prints a markdown table and writes it to bench/results/proxy-<date>.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-5}
BUILD=${BUILD:-build}

scripts/deps.sh test >/dev/null
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" >/dev/null
ninja -C "$BUILD" toolgate bench/echo_upstream >/dev/null

work=$(mktemp -d /tmp/tg-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }

UP=$(free_port); TG=$(free_port); NG=$(free_port)

"$BUILD/bench/echo_upstream" --port "$UP" & pids+=($!)
cat > "$work/toolgate.yaml" <<YAML
listen: 127.0.0.1:$TG
log_level: warn
upstreams:
  - name: echo
    transport: http
    url: http://127.0.0.1:$UP/mcp
YAML
"$BUILD/toolgate" serve --config "$work/toolgate.yaml" 2>"$work/toolgate.log" & TGPID=$!; pids+=($TGPID)

mkdir -p "$work/nginx/logs"
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
error_log $work/nginx/logs/error.log warn;
pid $work/nginx/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  upstream echo { server 127.0.0.1:$UP; keepalive 128; }
  server {
    listen 127.0.0.1:$NG;
    location / {
      proxy_pass http://echo;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
NGINX
/usr/sbin/nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' & NGPID=$!; pids+=($NGPID)
wait_port "$UP"; wait_port "$TG"; wait_port "$NG"

# One session per target (toolgate issues its own; the echo server accepts any).
session() {
  curl -s -D - -o /dev/null "http://127.0.0.1:$1/mcp" -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' \
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' \
    | tr -d '\r' | awk -F': ' 'tolower($1)=="mcp-session-id"{print $2}'
}
note_init() {
  curl -s -o /dev/null "http://127.0.0.1:$1/mcp" -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' -H "Mcp-Session-Id: $2" \
    -H 'MCP-Protocol-Version: 2025-11-25' -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
}

# A ~1 KB tools/call body; ids unique per wrk thread and request.
pad=$(head -c 900 /dev/zero | tr '\0' 'x')
lua() { # $1 = session id
  cat > "$work/call-$1.lua" <<LUA
local counter = 0
local tid = 0
local n = 0
function setup(thread) n = n + 1; thread:set("tid", n) end
function init(args) tid = tonumber(wrk.thread:get("tid")) or 0 end
function request()
  counter = counter + 1
  local body = '{"jsonrpc":"2.0","id":' .. (tid * 1000000000 + counter) ..
    ',"method":"tools/call","params":{"name":"echo","arguments":{"issue_key":"OPS-12","pad":"$pad"}}}'
  return wrk.format("POST", "/mcp", {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
    ["Mcp-Session-Id"] = "$1",
    ["MCP-Protocol-Version"] = "2025-11-25",
  }, body)
end
LUA
  echo "$work/call-$1.lua"
}

declare -A PORT=([direct]=$UP [nginx]=$NG [toolgate]=$TG)
declare -A SCRIPT
for t in direct nginx toolgate; do
  sid=$(session "${PORT[$t]}"); [ -n "$sid" ] || { echo "no session from $t" >&2; cat "$work/toolgate.log" >&2; exit 1; }
  note_init "${PORT[$t]}" "$sid"
  SCRIPT[$t]=$(lua "$sid")
done

to_us() { # wrk latency "45.12us" / "1.20ms" / "1.00s" → microseconds
  awk -v v="$1" 'BEGIN{ if (v ~ /us$/) {sub(/us$/,"",v); print v+0}
    else if (v ~ /ms$/) {sub(/ms$/,"",v); print v*1000}
    else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000000} }'
}
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
median() { sort -g | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }

declare -A P50 P99 RPS CPU
for r in $(seq "$ROUNDS"); do
  for t in direct nginx toolgate; do
    out=$(wrk -t1 -c1 -d"${SECS}s" --latency -s "${SCRIPT[$t]}" "http://127.0.0.1:${PORT[$t]}/mcp")
    if grep -q "Non-2xx" <<<"$out"; then echo "$t: non-2xx responses at c=1" >&2; echo "$out" >&2; exit 1; fi
    P50[$t]+="$(to_us "$(awk '$1=="50%"{print $2}' <<<"$out")") "
    P99[$t]+="$(to_us "$(awk '$1=="99%"{print $2}' <<<"$out")") "
    before=0; [ "$t" = toolgate ] && before=$(cpu_ticks "$TGPID")
    out=$(wrk -t2 -c64 -d"${SECS}s" -s "${SCRIPT[$t]}" "http://127.0.0.1:${PORT[$t]}/mcp")
    if grep -q "Non-2xx" <<<"$out"; then echo "$t: non-2xx responses at c=64" >&2; echo "$out" >&2; exit 1; fi
    rps=$(awk '/^Requests\/sec/{print $2}' <<<"$out")
    RPS[$t]+="$rps "
    if [ "$t" = toolgate ]; then
      total=$(awk '/requests in/{print $1}' <<<"$out")
      after=$(cpu_ticks "$TGPID")
      CPU[$t]+="$(awk -v d=$((after-before)) -v n="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.1f", d/hz*1e6/n}') "
    fi
  done
done

m() { tr ' ' '\n' <<<"$1" | grep -v '^$' | median; }
dp50=$(m "${P50[direct]}"); np50=$(m "${P50[nginx]}"); tp50=$(m "${P50[toolgate]}")
dp99=$(m "${P99[direct]}"); np99=$(m "${P99[nginx]}"); tp99=$(m "${P99[toolgate]}")
drps=$(m "${RPS[direct]}"); nrps=$(m "${RPS[nginx]}"); trps=$(m "${RPS[toolgate]}")
tcpu=$(m "${CPU[toolgate]}")
mkdir -p bench/results
res="bench/results/proxy-$(date -u +%Y%m%d-%H%M%S).md"
{
  echo "### Bare proxy path — $(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo
  echo "1 KB tools/call, HTTP upstream (bench/echo_upstream), $ROUNDS interleaved rounds of ${SECS}s, medians."
  echo
  echo "| target | c=1 median µs | c=1 p99 µs | added median µs | c=64 req/s | req/s vs nginx | CPU µs/req |"
  echo "|---|---|---|---|---|---|---|"
  awk -v d="$dp50" -v d99="$dp99" -v dr="$drps" -v n="$np50" -v n99="$np99" -v nr="$nrps" \
      -v t="$tp50" -v t99="$tp99" -v tr="$trps" -v tc="$tcpu" 'BEGIN{
    printf "| direct | %.0f | %.0f | — | %.0f | — | — |\n", d, d99, dr;
    printf "| nginx proxy_pass | %.0f | %.0f | %.0f | %.0f | 100 %% | — |\n", n, n99, n-d, nr;
    printf "| toolgate (bare) | %.0f | %.0f | %.0f | %.0f | %.0f %% | %s |\n", t, t99, t-d, tr, tr/nr*100, tc;
    printf "\nGoals: added median ≤ 1.5× nginx (measured %.2f×), req/s ≥ 80 %% of nginx (measured %.0f %%).\n", (t-d)/((n-d)>0?(n-d):1), tr/nr*100 }'
} | tee "$res"
