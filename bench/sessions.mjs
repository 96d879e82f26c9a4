// sessions.mjs — opens N idle MCP sessions (initialize + notifications/initialized) on a
// Streamable HTTP endpoint and keeps them open, for bench/run's memory figure.
//   node sessions.mjs URL N [BEARER_TOKEN]
// Prints "opened N" once every session is open, then waits for SIGTERM (the sessions
// stay alive on the server meanwhile; the bench reads the server's VmHWM / VmRSS).
// At most 32 handshakes in flight; each session's answer must carry an Mcp-Session-Id.
const [url, nArg, token] = process.argv.slice(2);
const n = Number(nArg);
if (!url || !(n > 0)) { console.error('usage: node sessions.mjs URL N [TOKEN]'); process.exit(2); }
const base = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
if (token) base.authorization = `Bearer ${token}`;
const init = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench-idle', version: '1' } } });
const initialized = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' });

async function open() {
  const r = await fetch(url, { method: 'POST', headers: base, body: init, signal: AbortSignal.timeout(10000) });
  await r.text();
  const sid = r.headers.get('mcp-session-id');
  if (r.status !== 200 || !sid) throw new Error(`initialize: HTTP ${r.status}, session ${sid}`);
  const n2 = await fetch(url, { method: 'POST', body: initialized, signal: AbortSignal.timeout(10000),
    headers: { ...base, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' } });
  await n2.text();
  if (n2.status !== 202) throw new Error(`initialized: HTTP ${n2.status}`);
}

let next = 0;
async function worker() { while (next < n) { next++; await open(); } }
try {
  await Promise.all(Array.from({ length: Math.min(32, n) }, worker));
} catch (e) { console.error(`sessions.mjs: ${e.message}`); process.exit(1); }
console.log(`opened ${n}`);
process.on('SIGTERM', () => process.exit(0));
setTimeout(() => process.exit(0), 120000); // bounded: never outlive the bench by long
