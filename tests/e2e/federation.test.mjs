// federation.test.mjs — two upstreams behind one endpoint: the demo Atlassian server
// over stdio and server-everything over Streamable HTTP, each with a tool-name prefix.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startToolgate, startEverything, connect, demoUpstream } from './lib.mjs';

let ev, tg, client;

before(async () => {
  ev = await startEverything();
  tg = await startToolgate({
    server_name: 'toolgate-federated',
    upstreams: [
      demoUpstream({ prefix: 'atl.' }),
      { name: 'everything', transport: 'http', url: ev.url, prefix: 'ev.' },
    ],
  });
  client = (await connect(tg.url)).client;
});
after(async () => { await client?.close(); await tg?.stop(); await ev?.stop(); });

test('serverInfo is toolgate and capabilities are merged', () => {
  assert.equal(client.getServerVersion().name, 'toolgate-federated');
  const caps = client.getServerCapabilities();
  assert.ok(caps.tools, 'tools capability');
  assert.ok(caps.prompts, 'prompts capability');
  assert.ok(caps.resources, 'resources capability');
});

test('tools/list merges both upstreams with their prefixes', async () => {
  const tools = [];
  let cursor;
  do {
    const page = await client.listTools(cursor ? { cursor } : {});
    tools.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor);
  const names = tools.map((t) => t.name);
  assert.ok(names.includes('atl.jira_get_issue'), names.join(','));
  assert.ok(names.includes('ev.echo'), names.join(','));
  assert.ok(names.every((n) => n.startsWith('atl.') || n.startsWith('ev.')), names.join(','));
  assert.equal(new Set(names).size, names.length, 'no duplicates');
});

test('tools/call is routed by prefixed name', async () => {
  const a = await client.callTool({ name: 'atl.jira_get_issue', arguments: { issue_key: 'OPS-1' } });
  assert.match(JSON.stringify(a.content), /OPS-1/);
  const b = await client.callTool({ name: 'ev.echo', arguments: { message: 'federated' } });
  assert.match(JSON.stringify(b.content), /federated/);
});

test('an unprefixed or unknown name is refused', async () => {
  await assert.rejects(client.callTool({ name: 'jira_get_issue', arguments: { issue_key: 'OPS-1' } }), (e) => e.code === -32602);
  await assert.rejects(client.callTool({ name: 'ev.nope', arguments: {} }), (e) => e.code === -32602);
});

test('prompts are merged with prefixes and routed', async () => {
  const { prompts } = await client.listPrompts();
  const names = prompts.map((p) => p.name);
  const ev1 = names.find((n) => n.startsWith('ev.'));
  assert.ok(ev1, names.join(','));
  const simple = names.includes('ev.simple-prompt') ? 'ev.simple-prompt' : ev1;
  const p = prompts.find((x) => x.name === simple);
  if (!p.arguments || p.arguments.every((a) => !a.required)) {
    const r = await client.getPrompt({ name: simple, arguments: {} });
    assert.ok(r.messages.length > 0);
  }
});

test('resources from both upstreams can be read', async () => {
  const { resources } = await client.listResources();
  assert.ok(resources.length > 0);
  const r = await client.readResource({ uri: resources[0].uri });
  assert.ok(r.contents.length > 0);
});
