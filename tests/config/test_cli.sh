#!/usr/bin/env bash
# test_cli.sh — the `toolgate` command line as a user and scripts rely on it: --version,
# --help and help texts, exit statuses (0 ok, 1 invalid configuration, 2 usage error),
# `check` reporting FILE:LINE:COL, `serve` starting, answering, surviving SIGHUP and
# shutting down cleanly on SIGTERM, `keys` against a temporary SQLite store (secrets
# shown once, never listed), `audit verify` on an empty store, `policy test` on the
# example cases and `decide` explaining a decision. Needs TOOLGATE_BIN and DEMO_BIN (set
# by meson).
# Prints "N passed, N failed".
set -uo pipefail
: "${TOOLGATE_BIN:?set TOOLGATE_BIN}" "${DEMO_BIN:?set DEMO_BIN}"

work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  rm -rf "$work"
}
trap cleanup EXIT

passed=0 failed=0
ok()  { passed=$((passed + 1)); echo "ok - $1"; }
bad() { failed=$((failed + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "    $l"; done; }

# run NAME EXPECTED_STATUS ARGS...: runs toolgate, keeps stdout/stderr in $out/$err.
run() {
  local name=$1 want=$2; shift 2
  "$TOOLGATE_BIN" "$@" >"$work/out" 2>"$work/err"
  status=$?
  out=$(cat "$work/out"); err=$(cat "$work/err")
  if [ "$status" -eq "$want" ]; then return 0; fi
  bad "$name: exit status $status, expected $want" "stdout: $out" "stderr: $err"
  return 1
}

# expect NAME HAYSTACK NEEDLE: NEEDLE occurs literally in HAYSTACK.
expect() {
  if [[ "$2" == *"$3"* ]]; then ok "$1"; else bad "$1" "expected to find: $3" "in: $2"; fi
}

run "--version" 0 --version && expect "--version prints the version" "$out" "toolgate 0.1.0"
run "-V" 0 -V && expect "-V prints the version" "$out" "toolgate 0.1.0"
run "--help" 0 --help && expect "--help lists every command" "$out" "serve --config FILE [--listen HOST:PORT] [--port N]
                      run the gateway
  check --config FILE validate a configuration file and exit
  keys ...            create, list, revoke and rotate API keys (toolgate help keys)
  audit ...           verify, query, export and prune the audit trail
                      (toolgate help audit)
  policy test --config FILE CASES.yaml
                      run policy test cases
  decide --config FILE --agent ID --tool NAME ...
                      explain the decision for one call (toolgate help decide)
  cedar ...           Cedar policy tools (toolgate help cedar)
  approvals ...       list, show, approve and deny approval requests; make approver
                      keys (toolgate help approvals)
  help [COMMAND]      show this help, or the help of COMMAND"
run "help serve" 0 help serve && expect "help serve lists its options" "$out" "  --port N            listen on port N"
run "serve --help" 0 serve --help && expect "serve --help is the same text" "$out" "SIGHUP"
run "help check" 0 help check && expect "help check explains the output" "$out" 'FILE: ok (N upstreams)'
run "no command" 2 && expect "no command: usage on stderr" "$err" "usage: toolgate <command>"
run "unknown command" 2 frobnicate && expect "unknown command: named, usage on stderr" "$err" 'toolgate: unknown command "frobnicate"'
[ -z "$out" ] && ok "unknown command: nothing on stdout" || bad "unknown command: nothing on stdout" "$out"
run "help unknown" 2 help frobnicate && expect "help of an unknown command fails" "$err" 'no such command "frobnicate"'
run "check without --config" 2 check && expect "check requires --config" "$err" "--config FILE is required"
run "check bad option" 2 check --config x --bogus && expect "check rejects unknown options" "$err" 'unexpected argument "--bogus"'
run "serve bad port" 2 serve --config x --port 70000 && expect "serve --port is range-checked" "$err" "--port: expected a number from 0 to 65535"

echo 'permit(principal, action, resource);' >"$work/p.cedar"
run "cedar check" 0 cedar check "$work/p.cedar" && ok "toolgate cedar reaches the Cedar tools"
echo 'permit(principal, action' >"$work/bad.cedar"
run "cedar check invalid" 1 cedar check "$work/bad.cedar" && expect "toolgate cedar passes on its errors" "$err" "$work/bad.cedar:"

cat >"$work/good.yaml" <<EOF
listen: 127.0.0.1:8080
upstreams:
  - name: demo
    transport: stdio
    command: [$DEMO_BIN]
    env: {JIRA_API_TOKEN: test-token}
EOF
run "check valid" 0 check --config "$work/good.yaml" && expect "check valid prints ok" "$out" "$work/good.yaml: ok (1 upstream)"
run "check valid (--config=)" 0 check "--config=$work/good.yaml" && ok "check accepts --config=FILE"

cat >"$work/bad.yaml" <<EOF
listen: 127.0.0.1:8080
upstreams:
  - name: demo
    transport: tcp
EOF
run "check invalid" 1 check --config "$work/bad.yaml" &&
  expect "check invalid prints FILE:LINE:COL on stderr" "$err" "$work/bad.yaml:4:16: upstreams[0].transport: expected \"stdio\" or \"http\", found \"tcp\""
run "check missing file" 1 check --config "$work/none.yaml" && expect "check missing file says so" "$err" "$work/none.yaml: cannot open: No such file or directory"

# serve: port 0 picks a free port; the log line tells which.
"$TOOLGATE_BIN" serve --config "$work/good.yaml" --port 0 2>"$work/serve.log" &
pid=$!
port=
for _ in $(seq 1 100); do
  port=$(sed -n -E 's/.*listening on http:\/\/127\.0\.0\.1:([0-9]+)\/mcp.*/\1/p' "$work/serve.log" | head -n1)
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -n "$port" ] && [ "$port" != 0 ]; then
  ok "serve logs where it listens"
  expect "serve's log line names the public URL and upstreams" "$(cat "$work/serve.log")" "(public URL http://127.0.0.1:$port/mcp), upstreams: demo (stdio, shared)"
  if command -v curl >/dev/null; then
    resp=$(curl -s --max-time 10 "http://127.0.0.1:$port/mcp" \
      -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
      -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"cli-test","version":"1"}}}')
    expect "serve answers initialize through the demo upstream" "$resp" '"serverInfo"'
  fi
  kill -HUP "$pid"; sleep 0.3
  kill -0 "$pid" 2>/dev/null && ok "serve keeps running after SIGHUP" || bad "serve keeps running after SIGHUP" "$(cat "$work/serve.log")"
  expect "SIGHUP is logged" "$(cat "$work/serve.log")" "SIGHUP received"
  expect "serve warns that authentication is off" "$(cat "$work/serve.log")" "authentication is off (no auth section)"
  kill -TERM "$pid"
  status=
  for _ in $(seq 1 100); do
    if ! kill -0 "$pid" 2>/dev/null; then wait "$pid"; status=$?; break; fi
    sleep 0.1
  done
  pid=
  [ "$status" = 0 ] && ok "serve exits 0 after SIGTERM" || bad "serve exits 0 after SIGTERM" "status: ${status:-still running after 10 s}" "$(tail -n 20 "$work/serve.log")"
else
  bad "serve logs where it listens" "$(cat "$work/serve.log")"
fi

# ------------------------------------------------------------------ keys, audit, policy
for c in keys audit policy decide; do
  run "help $c" 0 help "$c" && expect "help $c shows its usage" "$out" "usage: toolgate $c"
done
run "keys --help" 0 keys create --help && expect "keys create --help is the keys text" "$out" "cannot be shown again"
run "keys without subcommand" 2 keys && expect "keys needs a subcommand" "$err" "keys needs a subcommand"
run "keys create without --agent" 2 keys create --config "$work/keys.yaml" && expect "keys create requires --agent" "$err" "--agent ID is required"
run "keys list with --agent" 2 keys list --config x --agent a && expect "keys list refuses create's flags" "$err" "keys list does not take --agent"

cat >"$work/keys.yaml" <<YAML
store: sqlite:state/keys.db
auth:
  api_keys:
    rotation_overlap: 1h
upstreams:
  - name: demo
    transport: stdio
    command: [$DEMO_BIN]
YAML
mkdir -p "$work/state"
secret=
run "keys create" 0 keys create --config "$work/keys.yaml" --agent ci-bot --delegator alice \
    --groups eng,oncall --ttl 30d --cidr 10.0.0.0/8,127.0.0.1 --note "nightly pipeline" && {
  secret=$out
  [[ "$secret" =~ ^tgk_[a-z2-7]{12}_[A-Za-z0-9_-]{43}$ ]] && ok "keys create prints one tgk_ secret on stdout" || bad "keys create prints one tgk_ secret on stdout" "$secret"
  expect "keys create says the secret cannot be shown again" "$err" "cannot be shown again"
  [ -f "$work/state/keys.db" ] && ok "the sqlite store path is relative to the configuration" || bad "the sqlite store path is relative to the configuration"
}
id=${secret:4:12}
run "keys list" 0 keys list --config "$work/keys.yaml" && {
  expect "keys list shows the key and its fences" "$out" "$id  ci-bot            alice         eng,oncall        10.0.0.0/8,127.0.0.1/32"
  expect "keys list shows the state" "$out" "active"
  [[ "$out" != *"${secret:17}"* && "$out" != *tgk_* ]] && ok "keys list never prints the secret" || bad "keys list never prints the secret" "$out"
}
run "keys rotate" 0 keys rotate --config "$work/keys.yaml" "$id" && {
  [[ "$out" =~ ^tgk_${id}_[A-Za-z0-9_-]{43}$ && "$out" != "$secret" ]] && ok "keys rotate prints a new secret" || bad "keys rotate prints a new secret" "$out"
  expect "keys rotate gives the overlap" "$err" "the previous secret stays valid until"
}
run "keys list after rotate" 0 keys list --config "$work/keys.yaml" && expect "a rotated key is rotating" "$out" "rotating"
run "keys revoke" 0 keys revoke --config "$work/keys.yaml" "$id" && expect "keys revoke confirms" "$out" "API key $id: revoked"
run "keys list after revoke" 0 keys list --config "$work/keys.yaml" && expect "keys list shows the revoked state" "$out" "revoked"
run "keys rotate revoked" 1 keys rotate --config "$work/keys.yaml" "$id" && expect "a revoked key cannot be rotated" "$err" "API key $id is revoked"
run "keys revoke unknown" 1 keys revoke --config "$work/keys.yaml" aaaaaaaaaaaa && expect "unknown key id is named" "$err" "no API key with id aaaaaaaaaaaa"
run "keys create bad ttl" 2 keys create --config "$work/keys.yaml" --agent a --ttl 3w && expect "--ttl grammar" "$err" "--ttl: expected a duration such as 30d"
run "keys create bad cidr" 1 keys create --config "$work/keys.yaml" --agent a --cidr 10.0.0.1/8 && ok "keys create refuses a CIDR with host bits"

run "audit verify empty store" 0 audit verify --config "$work/keys.yaml" && expect "audit verify on the configured store" "$out" "0 record(s)"
run "audit keygen with --config" 0 audit keygen --config "$work/keys.yaml" --out "$work/audit.key" &&
  { [ -f "$work/audit.key.pub" ] && ok "audit keygen ignores --config and writes the key pair" || bad "audit keygen writes the key pair"; }
run "audit without subcommand" 2 audit && expect "audit needs a subcommand" "$err" "audit needs a subcommand"

src=$(cd "$(dirname "$0")/../.." && pwd)
sed -e "s|\.\./build/toolgate-demo-atlassian|$DEMO_BIN|" -e "s|\.\./presets/|$src/presets/|" \
    -e "s|policies/|$src/examples/policies/|" "$src/examples/toolgate.yaml" >"$work/policy.yaml"
run "policy test" 0 policy test --config "$work/policy.yaml" "$src/examples/policies/cases.yaml" &&
  expect "policy test runs the example cases" "$out" " passed, 0 failed"
run "policy without test" 2 policy --config "$work/policy.yaml" && expect "policy needs test" "$err" 'the policy subcommand is `test`'
run "decide allow" 0 decide --config "$work/policy.yaml" --agent claude --delegator alice \
    --tool jira_get_issue --args '{"issue_key":"OPS-1"}' && expect "decide prints an explain JSON" "$out" '"decision": "allow"'
run "decide deny" 1 decide --config "$work/policy.yaml" --agent claude --delegator alice \
    --tool jira_get_issue --args '{"issue_key":"FIN-1"}' && expect "decide explains a deny" "$out" 'NO_MATCHING_PERMIT'

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
