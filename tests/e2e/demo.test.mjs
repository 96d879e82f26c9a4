// demo.test.mjs — the official SDK client through toolgate to the demo Atlassian
// server over stdio: transparency (same answers as talking to the server directly),
// state changes that reach the upstream, and the upstream's isolation from the client's
// credentials.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { startToolgate, connect, demoUpstream, DEMO_BIN } from './lib.mjs';

let tg, direct, proxied;

before(async () => {
  tg = await startToolgate({ upstreams: [demoUpstream({ env: { JIRA_API_TOKEN: 'demo-secret-jira' } })] });
  direct = new Client({ name: 'direct', version: '1.0.0' }, { capabilities: {} });
  await direct.connect(new StdioClientTransport({ command: DEMO_BIN, args: [], env: { JIRA_API_TOKEN: 'demo-secret-jira' } }));
  proxied = (await connect(tg.url, { headers: { Authorization: 'Bearer client-token-must-not-leak' } })).client;
});

after(async () => {
  await proxied?.close();
  await direct?.close();
  await tg?.stop();
});

test('initialize through toolgate looks like the server itself', () => {
  assert.deepEqual(proxied.getServerVersion(), direct.getServerVersion());
  assert.deepEqual(proxied.getServerCapabilities(), direct.getServerCapabilities());
  assert.equal(proxied.getInstructions(), direct.getInstructions());
});

test('tools/list is identical through toolgate', async () => {
  const a = await direct.listTools();
  const b = await proxied.listTools();
  assert.ok(a.tools.length >= 10, `demo server lists ${a.tools.length} tools`);
  assert.deepEqual(b, a);
  const names = b.tools.map((t) => t.name);
  for (const n of ['jira_get_issue', 'jira_search', 'jira_create_issue', 'jira_transition_issue',
    'jira_add_comment', 'confluence_get_page', 'confluence_create_page', 'confluence_update_page']) {
    assert.ok(names.includes(n), `missing tool ${n}`);
  }
});

test('resources and prompts are identical through toolgate', async () => {
  const caps = direct.getServerCapabilities();
  if (caps.resources) assert.deepEqual(await proxied.listResources(), await direct.listResources());
  if (caps.prompts) assert.deepEqual(await proxied.listPrompts(), await direct.listPrompts());
});

test('a read returns the same result as direct', async () => {
  const a = await direct.callTool({ name: 'jira_get_issue', arguments: { issue_key: 'OPS-1' } });
  const b = await proxied.callTool({ name: 'jira_get_issue', arguments: { issue_key: 'OPS-1' } });
  assert.deepEqual(b, a);
  assert.ok(!b.isError);
  assert.match(JSON.stringify(b.content), /OPS-1/);
});

test('a write through toolgate changes the upstream state', async () => {
  const marker = `e2e comment ${Date.now()}`;
  const r = await proxied.callTool({ name: 'jira_add_comment', arguments: { issue_key: 'OPS-2', comment: marker } });
  assert.ok(!r.isError, JSON.stringify(r));
  const after = await proxied.callTool({ name: 'jira_get_issue', arguments: { issue_key: 'OPS-2' } });
  assert.match(JSON.stringify(after.content), new RegExp(marker));
});

test('invalid arguments come back as a tool error, unknown tools as a protocol error', async () => {
  const bad = await proxied.callTool({ name: 'jira_get_issue', arguments: {} });
  assert.equal(bad.isError, true);
  await assert.rejects(proxied.callTool({ name: 'no_such_tool', arguments: {} }), (e) => {
    assert.equal(e.code, -32602);
    return true;
  });
});

test("the client's Authorization never reaches the upstream; its env is exactly the configured one", async () => {
  const r = await proxied.callTool({ name: 'demo_whoami', arguments: {} });
  const text = JSON.stringify(r);
  assert.ok(!text.includes('client-token-must-not-leak'));
  assert.ok(!text.includes('demo-secret-jira'), 'the upstream must not echo secrets');
  assert.match(text, /JIRA_API_TOKEN/);
  // toolgate's own environment (PATH was passed to toolgate) is not inherited by default.
  assert.ok(!/\bPATH\b/.test(text.replace(/JIRA_API_TOKEN/g, '')), `unexpected env: ${text}`);
});

test('concurrent calls from one client are answered with their own ids', async () => {
  const keys = ['OPS-1', 'FIN-1', 'SEC-1', 'OPS-2', 'FIN-2'];
  const results = await Promise.all(keys.map((k) => proxied.callTool({ name: 'jira_get_issue', arguments: { issue_key: k } })));
  results.forEach((r, i) => assert.match(JSON.stringify(r.content), new RegExp(keys[i])));
});

test('two clients using the same JSON-RPC ids do not collide', async () => {
  const other = (await connect(tg.url)).client;
  try {
    const [a, b] = await Promise.all([
      proxied.callTool({ name: 'jira_get_issue', arguments: { issue_key: 'FIN-1' } }),
      other.callTool({ name: 'jira_get_issue', arguments: { issue_key: 'SEC-1' } }),
    ]);
    assert.match(JSON.stringify(a.content), /FIN-1/);
    assert.match(JSON.stringify(b.content), /SEC-1/);
  } finally {
    await other.close();
  }
});

test('ping', async () => {
  assert.deepEqual(await proxied.ping(), {});
});
