#!/usr/bin/env bash
# run-demo.sh BUILD CONFIG — `make run`: checks CONFIG, prints how to connect to the
# gateway, then replaces itself with `BUILD/toolgate serve --config CONFIG` (Ctrl-C stops
# it gracefully). The URL shown is the configuration's public_url.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: scripts/run-demo.sh BUILD_DIR CONFIG" >&2
  exit 2
fi
build=$1
config=$2
bin="$build/toolgate"
[ -x "$bin" ] || { echo "run-demo: $bin is missing; run make first" >&2; exit 1; }

# Stops here with FILE:LINE:COL if the configuration is wrong (and says nothing if not).
"$bin" check --config "$config" >/dev/null

# The top-level public_url: line, without quotes or a trailing comment.
url=$(sed -n -E 's/^public_url:[[:space:]]*["'\'']?([^"'\''[:space:]#]+).*/\1/p' "$config" | head -n1)
url=${url:-http://127.0.0.1:8080/mcp}

# A demo API key for the agent "claude" acting for alice, created once and kept beside the
# build (the store keeps only its hash; this file is the one copy of the secret).
keyfile="$build/demo-api-key"
if [ ! -s "$keyfile" ] || ! "$bin" keys list --config "$config" 2>/dev/null | grep -q "$(cut -d_ -f2 "$keyfile")"; then
  (umask 077; "$bin" keys create --config "$config" --agent claude --delegator alice --ttl 30d \
     --note "make run demo key" 2>/dev/null > "$keyfile")
fi
key=$(cat "$keyfile")

cat <<EOT
toolgate is starting with $config — MCP endpoint: $url
Demo API key (agent "claude" acting for alice; also in $keyfile): $key

Connect with curl (in another terminal):
  K='Authorization: Bearer $key'
  curl -si $url -H "\$K" \\
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'
  # then, with the MCP-Session-Id header from that answer in SID:
  H=(-H "\$K" -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' -H "MCP-Session-Id: \$SID" -H 'MCP-Protocol-Version: 2025-11-25')
  curl -s $url "\${H[@]}" -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
  curl -s $url "\${H[@]}" -d '{"jsonrpc":"2.0","id":2,"method":"tools/list"}'
  curl -s $url "\${H[@]}" -d '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"jira_get_issue","arguments":{"issue_key":"OPS-1"}}}'

Or with the MCP Inspector (choose "Streamable HTTP", URL $url):
  npx @modelcontextprotocol/inspector
Or from the official TypeScript SDK:
  new StreamableHTTPClientTransport(new URL('$url'),
    { requestInit: { headers: { Authorization: 'Bearer $key' } } })

Logs follow (JSON lines); Ctrl-C stops toolgate.
EOT
exec "$bin" serve --config "$config"
