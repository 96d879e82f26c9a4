#!/usr/bin/env bash
# bench/decision.sh — issue 5's benchmark: the decision overhead per call, and the
# end-to-end latency a decided call adds over the allow-all proxy path.
#   bench/decision.sh [ROUNDS] [SECONDS] [ITERATIONS]   defaults: 3 rounds of 5 s, 100000
# 1. In process (bench/decision/decision_bench.c): catalog + resource extraction +
#    context + Cedar per call on the example policies (examples/policies + the demo
#    preset), median and p99 µs.
# 2. End to end, the bench/proxy.sh way (same echo upstream, 1 KB tools/call, wrk c=1,
#    interleaved rounds, medians): toolgate without a `policy:` section (allow-all proxy)
#    vs toolgate with the example policies deciding every call (audit batched, then
#    strict = one SQLite commit per record before forwarding). All three authenticate
#    the same way (an API key for alice via claude), so the difference is the decision
#    and its audit records. Prints a markdown table, written to bench/results/decision-<date>.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-5}
ITERS=${3:-100000}
BUILD=${BUILD:-build}
REPO=$(pwd)

[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" >/dev/null
ninja -C "$BUILD" toolgate bench/echo_upstream bench/decision_bench >/dev/null

work=$(mktemp -d /tmp/tg-decision-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

inproc=$("$BUILD/bench/decision_bench" "$REPO" "$ITERS")

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }

UP=$(free_port)
"$BUILD/bench/echo_upstream" --port "$UP" & pids+=($!)

# $1 name, $2 port, $3 extra YAML (policy / audit sections)
config() {
  mkdir -p "$work/$1"
  cat > "$work/$1/toolgate.yaml" <<YAML
listen: 127.0.0.1:$2
log_level: warn
store: sqlite:$work/$1/toolgate.db
auth:
  api_keys:
    enabled: true
upstreams:
  - name: echo
    transport: http
    url: http://127.0.0.1:$UP/mcp
$3
YAML
}
# The echo tool reads an issue: the example read policy allows alice on OPS-12.
POLICY="catalog:
  tools:
    - tool: echo
      risk: read
      resource:
        type: Jira::Issue
        id: /issue_key
        pattern: '^[A-Z][A-Z0-9_]+-[0-9]+\$'
        parents:
          - {type: Jira::Project, pattern: '^([A-Z][A-Z0-9_]+)-[0-9]+\$', capture: 1, attr: project}
policy:
  policies: $REPO/examples/policies
  entities: $REPO/examples/policies/entities.json"

TARGETS=(proxy batched strict)
declare -A PORT KEY
for t in "${TARGETS[@]}"; do
  PORT[$t]=$(free_port)
  case $t in
    proxy) config "$t" "${PORT[$t]}" "" ;;
    batched) config "$t" "${PORT[$t]}" "$POLICY
audit:
  mode: batched" ;;
    strict) config "$t" "${PORT[$t]}" "$POLICY" ;;
  esac
  KEY[$t]=$("$BUILD/toolgate" keys create --config "$work/$t/toolgate.yaml" --agent claude --delegator alice 2>/dev/null | tail -1)
  "$BUILD/toolgate" serve --config "$work/$t/toolgate.yaml" 2>"$work/$t/log" & pids+=($!)
done
for t in "${TARGETS[@]}"; do wait_port "${PORT[$t]}"; done

H=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
session() { # $1 target → session id
  curl -s -D - -o /dev/null "http://127.0.0.1:${PORT[$1]}/mcp" "${H[@]}" -H "Authorization: Bearer ${KEY[$1]}" \
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' \
    | tr -d '\r' | awk -F': ' 'tolower($1)=="mcp-session-id"{print $2}'
}
rpc() { # $1 target, $2 session, $3 body → response body
  curl -s "http://127.0.0.1:${PORT[$1]}/mcp" "${H[@]}" -H "Authorization: Bearer ${KEY[$1]}" \
    -H "Mcp-Session-Id: $2" -H 'MCP-Protocol-Version: 2025-11-25' -d "$3"
}

pad=$(head -c 900 /dev/zero | tr '\0' 'x')
CALL='{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"issue_key":"OPS-12","pad":"'$pad'"}}}'
declare -A SCRIPT
for t in "${TARGETS[@]}"; do
  sid=$(session "$t"); [ -n "$sid" ] || { echo "no session from $t" >&2; cat "$work/$t/log" >&2; exit 1; }
  rpc "$t" "$sid" '{"jsonrpc":"2.0","method":"notifications/initialized"}' >/dev/null
  rpc "$t" "$sid" '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' >/dev/null
  # the call must be allowed and answered by the echo upstream, or the figures mean nothing
  out=$(rpc "$t" "$sid" "$CALL")
  if grep -q '"isError":true\|"error"' <<<"$out"; then echo "$t: the bench call is not allowed: ${out:0:300}" >&2; cat "$work/$t/log" >&2; exit 1; fi
  cat > "$work/call-$t.lua" <<LUA
local counter = 0
function request()
  counter = counter + 1
  local body = '{"jsonrpc":"2.0","id":' .. counter ..
    ',"method":"tools/call","params":{"name":"echo","arguments":{"issue_key":"OPS-12","pad":"$pad"}}}'
  return wrk.format("POST", "/mcp", {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
    ["Authorization"] = "Bearer ${KEY[$t]}",
    ["Mcp-Session-Id"] = "$sid",
    ["MCP-Protocol-Version"] = "2025-11-25",
  }, body)
end
LUA
  SCRIPT[$t]="$work/call-$t.lua"
done

to_us() {
  awk -v v="$1" 'BEGIN{ if (v ~ /us$/) {sub(/us$/,"",v); print v+0}
    else if (v ~ /ms$/) {sub(/ms$/,"",v); print v*1000}
    else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000000} }'
}
median() { sort -g | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }

declare -A P50 P99
for r in $(seq "$ROUNDS"); do
  for t in "${TARGETS[@]}"; do
    out=$(wrk -t1 -c1 -d"${SECS}s" --latency -s "${SCRIPT[$t]}" "http://127.0.0.1:${PORT[$t]}/mcp")
    if grep -q "Non-2xx" <<<"$out"; then echo "$t: non-2xx responses" >&2; echo "$out" >&2; exit 1; fi
    P50[$t]+="$(to_us "$(awk '$1=="50%"{print $2}' <<<"$out")") "
    P99[$t]+="$(to_us "$(awk '$1=="99%"{print $2}' <<<"$out")") "
  done
done
m() { tr ' ' '\n' <<<"$1" | grep -v '^$' | median; }

mkdir -p bench/results
res="bench/results/decision-$(date -u +%Y%m%d-%H%M%S).md"
{
  echo "### Decision overhead — $(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo
  echo "In process (catalog + resource + context + Cedar, example policies, $ITERS calls per case):"
  echo
  sed 1d <<<"$inproc" | sed 's/^/- /'
  echo
  echo "End to end: 1 KB tools/call through toolgate to bench/echo_upstream, API-key auth in every"
  echo "target, wrk c=1, $ROUNDS interleaved rounds of ${SECS}s, medians."
  echo
  echo "| target | median µs | p99 µs | added median µs vs allow-all |"
  echo "|---|---|---|---|"
  base=$(m "${P50[proxy]}")
  for t in "${TARGETS[@]}"; do
    case $t in proxy) label="allow-all proxy (no policy:)";; batched) label="decided, audit batched";; strict) label="decided, audit strict (SQLite)";; esac
    awk -v l="$label" -v p="$(m "${P50[$t]}")" -v q="$(m "${P99[$t]}")" -v b="$base" -v t="$t" \
      'BEGIN{ printf "| %s | %.0f | %.0f | %s |\n", l, p, q, (t=="proxy" ? "—" : sprintf("%.0f", p-b)) }'
  done
} | tee "$res"
