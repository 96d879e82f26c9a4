// hostile.test.mjs — bad input and bad upstreams: every case gets its documented status
// or JSON-RPC error, nothing reaches the upstream, and toolgate keeps serving others.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { startToolgate, connect, post, rawSession, INIT, demoUpstream, here } from './lib.mjs';

let tg, sid;
const V = { 'mcp-protocol-version': '2025-11-25' };

before(async () => {
  tg = await startToolgate({
    limits: { max_body_size: '64KiB', header_timeout: '1s', max_headers: 32 },
    upstreams: [
      demoUpstream(),
      { name: 'flaky', transport: 'stdio', command: [process.execPath, path.join(here, 'fixtures/flaky-stdio.mjs')],
        prefix: 'flaky.', call_timeout: '1500ms', restart_min: '100ms' },
    ],
  });
  sid = await rawSession(tg.url);
});
after(async () => { await tg?.stop(); });

const call = (id, name, args = {}) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });
const S = () => ({ 'mcp-session-id': sid, ...V });

async function stillServes() {
  const r = await post(tg.url, call(99, 'jira_get_issue', { issue_key: 'OPS-1' }), S());
  assert.equal(r.status, 200, r.text);
  const msg = Array.isArray(r.json) ? r.json.at(-1) : r.json;
  assert.equal(msg.id, 99);
  assert.ok(msg.result, r.text);
}

test('malformed JSON → 400 -32700', async () => {
  const r = await post(tg.url, '{"jsonrpc":"2.0","id":1,"method":', S());
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, -32700);
  await stillServes();
});

test('truncated and non-object bodies → 400', async () => {
  for (const body of ['{', '[', '"x"', '42', 'null', '{"jsonrpc":"2.0"}']) {
    const r = await post(tg.url, body, S());
    assert.equal(r.status, 400, `${body} → ${r.status} ${r.text}`);
    assert.ok([-32700, -32600].includes(r.json.error.code), body);
  }
});

test('duplicate keys are rejected, not resolved one way or the other', async () => {
  const body = '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"jira_get_issue","name":"jira_add_comment","arguments":{"issue_key":"OPS-1","comment":"x"}}}';
  const r = await post(tg.url, body, S());
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, -32700);
  assert.match(r.json.error.message, /duplicate/i);
});

test('ids beyond int64 and null ids are rejected; int64 max is echoed exactly', async () => {
  let r = await post(tg.url, '{"jsonrpc":"2.0","id":9223372036854775808,"method":"ping"}', S());
  assert.equal(r.status, 400);
  r = await post(tg.url, '{"jsonrpc":"2.0","id":null,"method":"ping"}', S());
  assert.equal(r.status, 400);
  r = await post(tg.url, '{"jsonrpc":"2.0","id":9223372036854775807,"method":"ping"}', S());
  assert.equal(r.status, 200);
  assert.match(r.text, /"id":9223372036854775807/);
});

test('oversized body → 413 with a clear message', async () => {
  const big = JSON.stringify(call(1, 'jira_add_comment', { issue_key: 'OPS-1', comment: 'x'.repeat(70 * 1024) }));
  const r = await post(tg.url, big, S());
  assert.equal(r.status, 413);
  assert.match(r.text, /limit/);
  await stillServes();
});

test('unknown session → 404; missing session → 400; wrong protocol version → 400', async () => {
  let r = await post(tg.url, call(1, 'jira_get_issue', { issue_key: 'OPS-1' }), { 'mcp-session-id': 'f'.repeat(64), ...V });
  assert.equal(r.status, 404);
  assert.equal(r.json.error.code, -32001);
  r = await post(tg.url, call(1, 'jira_get_issue', { issue_key: 'OPS-1' }), V);
  assert.equal(r.status, 400);
  r = await post(tg.url, call(1, 'jira_get_issue', { issue_key: 'OPS-1' }), { 'mcp-session-id': sid, 'mcp-protocol-version': '1999-01-01' });
  assert.equal(r.status, 400);
});

test('bad Origin → 403, bad Host → 4xx, bad Accept → 406, bad Content-Type → 415', async () => {
  let r = await post(tg.url, INIT, { origin: 'https://evil.example' });
  assert.equal(r.status, 403);
  r = await rawRequest(`POST /mcp HTTP/1.1\r\nHost: evil.example\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 2\r\n\r\n{}`);
  assert.match(r, /^HTTP\/1\.1 4\d\d/);
  r = await post(tg.url, INIT, { accept: 'text/html' });
  assert.equal(r.status, 406);
  r = await post(tg.url, JSON.stringify(INIT), { 'content-type': 'text/plain' });
  assert.equal(r.status, 415);
});

function rawRequest(text, { waitMs = 3000 } = {}) {
  return new Promise((resolve) => {
    const s = net.connect(tg.port, '127.0.0.1');
    let out = '';
    s.on('data', (d) => { out += d; });
    s.on('close', () => resolve(out));
    s.on('error', () => resolve(out));
    s.write(text);
    setTimeout(() => s.destroy(), waitMs);
  });
}

test('request smuggling framing is refused', async () => {
  const cases = [
    'POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    'POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}',
    'POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length : 2\r\n\r\n{}',
    'POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: b\r\n folded\r\nContent-Length: 2\r\n\r\n{}',
  ];
  for (const c of cases) {
    const r = await rawRequest(c);
    assert.match(r, /^HTTP\/1\.1 400/, JSON.stringify(c));
  }
  await stillServes();
});

test('slow headers are cut off with 408', async () => {
  const t0 = Date.now();
  const r = await new Promise((resolve) => {
    const s = net.connect(tg.port, '127.0.0.1');
    let out = '';
    s.on('data', (d) => { out += d; });
    s.on('close', () => resolve(out));
    s.write('POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const drip = setInterval(() => s.write('X-Slow: 1\r\n'), 200);
    setTimeout(() => { clearInterval(drip); s.destroy(); }, 6000);
    s.on('close', () => clearInterval(drip));
  });
  assert.match(r, /^HTTP\/1\.1 408/);
  assert.ok(Date.now() - t0 < 5000);
  await stillServes();
});

test('upstream crash mid-call → JSON-RPC error; the upstream restarts and serves again', async () => {
  const r = await post(tg.url, call(7, 'flaky.crash'), S());
  const msg = Array.isArray(r.json) ? r.json.at(-1) : r.json;
  assert.equal(msg.id, 7);
  assert.ok(msg.error, r.text);
  assert.match(msg.error.message, /flaky/);
  let ok = false;
  for (let i = 0; i < 40 && !ok; i++) {
    const e = await post(tg.url, call(8, 'flaky.echo', { text: 'back' }), S());
    const m = Array.isArray(e.json) ? e.json.at(-1) : e.json;
    ok = !!(m && m.result && JSON.stringify(m.result).includes('back'));
    if (!ok) await new Promise((res) => setTimeout(res, 250));
  }
  assert.ok(ok, 'flaky upstream did not come back');
  await stillServes();
});

test('upstream that never answers → timeout error while other sessions are served', async () => {
  const other = (await connect(tg.url)).client;
  try {
    const hang = post(tg.url, call(11, 'flaky.hang'), S());
    const r = await other.callTool({ name: 'jira_get_issue', arguments: { issue_key: 'SEC-1' } });
    assert.match(JSON.stringify(r.content), /SEC-1/);
    const h = await hang;
    const m = Array.isArray(h.json) ? h.json.at(-1) : h.json;
    assert.equal(m.id, 11);
    assert.ok(m.error, h.text);
    assert.match(m.error.message, /within|timed? ?out/i);
  } finally { await other.close(); }
});

test('the Authorization header of a client never reaches an HTTP upstream', { skip: false }, async () => {
  // Covered against an HTTP upstream in headers.test.mjs; here: stdio env isolation.
  const r = await post(tg.url, call(12, 'demo_whoami'), { ...S(), authorization: 'Bearer SECRET-CLIENT-TOKEN' });
  assert.ok(!r.text.includes('SECRET-CLIENT-TOKEN'));
});
