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

cat <<EOT
toolgate is starting with $config — MCP endpoint: $url

Connect with curl (in another terminal):
  curl -si $url \\
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'
  # then, with the MCP-Session-Id header from that answer in SID:
  H=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' -H "MCP-Session-Id: \$SID" -H 'MCP-Protocol-Version: 2025-11-25')
  curl -s $url "\${H[@]}" -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
  curl -s $url "\${H[@]}" -d '{"jsonrpc":"2.0","id":2,"method":"tools/list"}'

Or with the MCP Inspector (choose "Streamable HTTP", URL $url):
  npx @modelcontextprotocol/inspector
Or from the official TypeScript SDK:
  new StreamableHTTPClientTransport(new URL('$url'))

Logs follow (JSON lines); Ctrl-C stops toolgate.
EOT
exec "$bin" serve --config "$config"
