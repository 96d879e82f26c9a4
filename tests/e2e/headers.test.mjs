// headers.test.mjs — what toolgate sends to an HTTP upstream: the configured static
// headers (upstream credentials), the MCP protocol headers, and never the client's
// Authorization, cookies or session id.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startToolgate, startFixture, connect } from './lib.mjs';

let up, tg;
before(async () => {
  up = await startFixture('header-echo-http.mjs');
  tg = await startToolgate({
    upstreams: [{ name: 'echo', transport: 'http', url: up.url, headers: { 'X-Upstream-Key': '${UPSTREAM_KEY}' } }],
  }, { env: { UPSTREAM_KEY: 'configured-upstream-credential' } });
});
after(async () => { await tg?.stop(); await up?.stop(); });

test('configured upstream credentials are sent; client credentials are not', async () => {
  const { client, transport } = await connect(tg.url, {
    headers: { Authorization: 'Bearer client-secret-token', Cookie: 'session=client-cookie' },
  });
  try {
    const r = await client.callTool({ name: 'headers', arguments: {} });
    const h = JSON.parse(r.content[0].text);
    assert.equal(h['x-upstream-key'], 'configured-upstream-credential');
    assert.equal(h.authorization, undefined);
    assert.equal(h.cookie, undefined);
    assert.ok(h['mcp-session-id'], 'upstream session id present');
    assert.notEqual(h['mcp-session-id'], transport.sessionId, 'client and upstream session ids differ');
    assert.ok(!JSON.stringify(h).includes('client-secret-token'));
  } finally { await client.close(); }
});

test("toolgate's log never contains the client's token", async () => {
  const { client } = await connect(tg.url, { headers: { Authorization: 'Bearer log-canary-token' } });
  await client.callTool({ name: 'headers', arguments: {} });
  await client.close();
  assert.ok(!tg.proc.logs().includes('log-canary-token'));
  assert.ok(!tg.proc.logs().includes('configured-upstream-credential'));
});

test("a client's W3C traceparent is propagated to the HTTP upstream; without one, toolgate generates one", async () => {
  const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  const { client } = await connect(tg.url, { headers: { traceparent: tp } });
  try {
    const r = await client.callTool({ name: 'headers', arguments: {} });
    assert.equal(JSON.parse(r.content[0].text).traceparent, tp);
  } finally { await client.close(); }
  const other = (await connect(tg.url)).client;
  try {
    const r = await other.callTool({ name: 'headers', arguments: {} });
    const got = JSON.parse(r.content[0].text).traceparent;
    assert.match(got, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.notEqual(got, tp);
  } finally { await other.close(); }
});
