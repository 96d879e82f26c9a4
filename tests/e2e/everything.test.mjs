// everything.test.mjs — the official SDK client through toolgate to
// @modelcontextprotocol/server-everything over Streamable HTTP: the same answers as
// direct, and server-to-client round trips (sampling, elicitation, roots) delivered to
// the client session that caused them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { startToolgate, startEverything, connect } from './lib.mjs';

const CAPS = { sampling: {}, elicitation: { form: {} }, roots: { listChanged: true } };
let ev, tg;

before(async () => {
  ev = await startEverything();
  tg = await startToolgate({ upstreams: [{ name: 'everything', transport: 'http', url: ev.url }] });
});
after(async () => { await tg?.stop(); await ev?.stop(); });

function withHandlers(client, tag) {
  const seen = { sampling: 0, elicitation: 0, roots: 0 };
  client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
    seen.sampling++;
    return { role: 'assistant', model: `model-${tag}`, content: { type: 'text', text: `sampled by ${tag}: ${req.params.messages[0].content.text}` } };
  });
  client.setRequestHandler(ElicitRequestSchema, async () => {
    seen.elicitation++;
    return { action: 'accept', content: { name: `name-${tag}` } };
  });
  client.setRequestHandler(ListRootsRequestSchema, async () => {
    seen.roots++;
    return { roots: [{ uri: `file:///work/${tag}`, name: `root-${tag}` }] };
  });
  return seen;
}

test('initialize, tools, resources and prompts match server-everything direct', async () => {
  const d = await connect(ev.url, { capabilities: CAPS });
  const p = await connect(tg.url, { capabilities: CAPS });
  try {
    withHandlers(d.client, 'd');
    withHandlers(p.client, 'p');
    assert.deepEqual(p.client.getServerVersion(), d.client.getServerVersion());
    assert.deepEqual(p.client.getServerCapabilities(), d.client.getServerCapabilities());
    assert.deepEqual(await p.client.listTools(), await d.client.listTools());
    assert.deepEqual(await p.client.listPrompts(), await d.client.listPrompts());
    assert.deepEqual((await p.client.listResources()).resources.map((r) => r.uri),
      (await d.client.listResources()).resources.map((r) => r.uri));
    const a = await d.client.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } });
    const b = await p.client.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } });
    assert.deepEqual(b, a);
  } finally {
    await d.client.close();
    await p.client.close();
  }
});

test('sampling round trip reaches the calling client', async () => {
  const { client } = await connect(tg.url, { capabilities: CAPS });
  try {
    const seen = withHandlers(client, 'alpha');
    const r = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'hello', maxTokens: 5 } });
    assert.equal(seen.sampling, 1);
    assert.match(r.content[0].text, /sampled by alpha/);
  } finally { await client.close(); }
});

test('elicitation round trip reaches the calling client', async () => {
  const { client } = await connect(tg.url, { capabilities: CAPS });
  try {
    const seen = withHandlers(client, 'beta');
    const r = await client.callTool({ name: 'trigger-elicitation-request', arguments: {} });
    assert.equal(seen.elicitation, 1);
    assert.match(JSON.stringify(r.content), /name-beta/);
  } finally { await client.close(); }
});

test('roots round trip reaches the calling client', async () => {
  const { client } = await connect(tg.url, { capabilities: CAPS });
  try {
    withHandlers(client, 'gamma');
    const r = await client.callTool({ name: 'get-roots-list', arguments: {} });
    assert.match(JSON.stringify(r.content), /root-gamma/);
  } finally { await client.close(); }
});

test('two clients sampling at once each answer their own request', async () => {
  const a = await connect(tg.url, { capabilities: CAPS });
  const b = await connect(tg.url, { capabilities: CAPS });
  try {
    const sa = withHandlers(a.client, 'A');
    const sb = withHandlers(b.client, 'B');
    const [ra, rb] = await Promise.all([
      a.client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'one', maxTokens: 5 } }),
      b.client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'two', maxTokens: 5 } }),
    ]);
    assert.match(ra.content[0].text, /sampled by A: .*one/s);
    assert.match(rb.content[0].text, /sampled by B: .*two/s);
    assert.equal(sa.sampling, 1);
    assert.equal(sb.sampling, 1);
  } finally { await a.client.close(); await b.client.close(); }
});

test('progress notifications arrive for a long-running operation', async () => {
  const { client } = await connect(tg.url, { capabilities: CAPS });
  try {
    withHandlers(client, 'p');
    const progress = [];
    const r = await client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 3 } },
      undefined, { onprogress: (p) => progress.push(p.progress) });
    assert.ok(!r.isError);
    assert.ok(progress.length >= 2, `progress: ${progress}`);
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i] > progress[i - 1]);
  } finally { await client.close(); }
});
