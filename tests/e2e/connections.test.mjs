// connections.test.mjs — thousands of concurrent connections on the one event loop:
// every one is served, idle ones do not stop the others, and the gateway stays responsive.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startToolgate, demoUpstream, rawSession, post } from './lib.mjs';

const N = 2000;
let tg;
before(async () => { tg = await startToolgate({ log_level: 'warn', upstreams: [demoUpstream()] }); });
after(async () => { await tg?.stop(); });

const INIT = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'c', version: '1' } } });
const REQ = `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
  `Accept: application/json, text/event-stream\r\nContent-Length: ${Buffer.byteLength(INIT)}\r\n\r\n${INIT}`;

function open() {
  return new Promise((resolve, reject) => {
    const s = net.connect(tg.port, '127.0.0.1');
    s.setNoDelay(true);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

function ask(s) {
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d) => {
      out += d;
      const head = out.indexOf('\r\n\r\n');
      if (head < 0) return;
      const m = /content-length: (\d+)/i.exec(out.slice(0, head));
      if (m && out.length >= head + 4 + Number(m[1])) { s.off('data', onData); resolve(out); }
    };
    s.on('data', onData);
    s.once('error', reject);
    s.write(REQ);
  });
}

test(`${N} concurrent keep-alive connections are all served`, { timeout: 60000 }, async () => {
  const socks = [];
  for (let i = 0; i < N; i += 200) {
    socks.push(...await Promise.all(Array.from({ length: Math.min(200, N - i) }, open)));
  }
  assert.equal(socks.length, N);
  // While all of them are open (idle), a normal client is served at once.
  const sid = await rawSession(tg.url);
  const r = await post(tg.url, { jsonrpc: '2.0', id: 2, method: 'ping' }, { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
  assert.equal(r.status, 200);
  // Then every one of them asks at the same time, and every one is answered.
  const answers = await Promise.all(socks.map(ask));
  assert.equal(answers.filter((a) => a.startsWith('HTTP/1.1 200')).length, N);
  // And each connection is still usable (keep-alive): ask again on a sample.
  const again = await Promise.all(socks.slice(0, 100).map(ask));
  assert.ok(again.every((a) => a.startsWith('HTTP/1.1 200')));
  for (const s of socks) s.destroy();
});
