// reload.test.mjs — hot reload end to end: the real toolgate binary in front of the demo
// server, a policy directory edited on disk, SIGHUP; the official SDK client checks that
// new calls follow the new policy, that an invalid policy is refused (file:line:col in
// the log) while the old one stays in force, that a session with an open GET stream is
// told notifications/tools/list_changed when its visible tools change, that a change to
// a section bound at start is refused, and that reloads under traffic fail no call.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { execFileSync } from 'node:child_process';
import { TOOLGATE_BIN, here, demoUpstream, startToolgate, connect, post, INIT, freePort } from './lib.mjs';

const repo = path.resolve(here, '../..');
const HIDE = '20-hide.cedar';
const HIDE_TEXT = '@id("hide-whoami")\n@reason("RELOAD_HIDDEN")\nforbid (principal, action == Action::"demo_whoami", resource);\n';

let dir, tg, admin;
const ADMIN_TOKEN = 'e2e-admin-token-0123456789';

const textOf = (r) => r.content.map((c) => c.text || '').join('\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Reload outcomes seen on toolgate's stderr, counted line by line as they arrive (the
// harness keeps only the tail of a busy log, so counting in it could go backwards).
const outcomes = { reloaded: 0, refused: 0, lastRefused: '' };
function watchReloads(proc) {
  let partial = '';
  proc.stderr.on('data', (d) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop();
    for (const l of lines) {
      if (RELOADED.test(l)) outcomes.reloaded++;
      else if (REFUSED.test(l)) { outcomes.refused++; outcomes.lastRefused = l; }
    }
  });
}

// Sends SIGHUP and waits (bounded) for its outcome line: 'reloaded' or 'refused'.
async function sighup(expect) {
  const before = outcomes[expect];
  tg.proc.kill('SIGHUP');
  for (let i = 0; i < 200 && outcomes[expect] === before; i++) await sleep(50);
  assert.ok(outcomes[expect] > before, `no "${expect}" log line after SIGHUP:\n${tg.proc.logs().slice(-3000)}`);
}
const RELOADED = /"reloaded .*policy version [0-9a-f]{64}/;
const REFUSED = /"reload refused/;

function hide(on) {
  if (on) writeFileSync(path.join(dir, HIDE), HIDE_TEXT);
  else rmSync(path.join(dir, HIDE), { force: true });
}

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'tg-e2e-reload-'));
  writeFileSync(path.join(dir, '10-all.cedar'), '@id("all")\npermit (principal, action, resource);\n');
  hide(true);
  const adminPort = await freePort();
  admin = `http://127.0.0.1:${adminPort}`;
  tg = await startToolgate({
    upstreams: [demoUpstream()],
    catalog: { presets: [path.join(repo, 'presets/demo-atlassian.yaml')] },
    policy: { policies: dir },
    auth: 'none',
    admin: { listen: `127.0.0.1:${adminPort}`, token: '${TG_ADMIN_TOKEN}' },
  }, { env: { TG_ADMIN_TOKEN: ADMIN_TOKEN } });
  watchReloads(tg.proc);
});

after(async () => {
  if (tg) assert.equal(await tg.stop(), 0, tg.proc.logs().slice(-3000));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('SIGHUP: a denied tool becomes allowed and vice versa; list_changed on the GET stream', async () => {
  const { client } = await connect(tg.url);
  let changed = 0;
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => { changed++; });
  let names = (await client.listTools()).tools.map((t) => t.name);
  assert.ok(!names.includes('demo_whoami'), names.join(','));
  let r = await client.callTool({ name: 'demo_whoami', arguments: {} });
  assert.equal(r.isError, true);
  assert.ok(r.structuredContent.reasons.includes('RELOAD_HIDDEN'), textOf(r));

  hide(false);
  await sighup('reloaded');
  r = await client.callTool({ name: 'demo_whoami', arguments: {} });
  assert.ok(!r.isError, textOf(r));
  for (let i = 0; i < 100 && changed === 0; i++) await sleep(20);
  assert.equal(changed, 1, 'notifications/tools/list_changed after the reload');
  names = (await client.listTools()).tools.map((t) => t.name);
  assert.ok(names.includes('demo_whoami'));

  hide(true);
  await sighup('reloaded');
  r = await client.callTool({ name: 'demo_whoami', arguments: {} });
  assert.equal(r.isError, true);
  assert.ok(r.structuredContent.reasons.includes('RELOAD_HIDDEN'));
  for (let i = 0; i < 100 && changed === 1; i++) await sleep(20);
  assert.equal(changed, 2);

  // a reload that changes nobody's view sends nothing
  await sighup('reloaded');
  await sleep(200);
  assert.equal(changed, 2);
  await client.close();
});

test('an invalid policy is refused with file:line:col and the old policy stays', async () => {
  const { client } = await connect(tg.url);
  writeFileSync(path.join(dir, '90-bad.cedar'), 'permit (principal, action, resource)\n');
  hide(false);
  try {
    await sighup('refused');
    assert.match(outcomes.lastRefused, /90-bad\.cedar:\d+:\d+/);
    const r = await client.callTool({ name: 'demo_whoami', arguments: {} });
    assert.equal(r.isError, true, 'still denied: the old policy is in force');
    assert.ok(r.structuredContent.reasons.includes('RELOAD_HIDDEN'));
  } finally {
    rmSync(path.join(dir, '90-bad.cedar'));
    hide(true);
  }
  await client.close();
});

test('a change to a section bound at start is refused by name', async () => {
  const { client } = await connect(tg.url);
  appendFileSync(tg.file, 'server_name: "renamed"\n');
  hide(false);
  await sighup('refused');
  assert.match(outcomes.lastRefused, /`server_name` section changed; it is applied at start only/);
  const r = await client.callTool({ name: 'demo_whoami', arguments: {} });
  assert.equal(r.isError, true, 'nothing of that file was applied');
  hide(true);
  writeFileSync(tg.file, readFileSync(tg.file, 'utf8').replace('server_name: "renamed"\n', ''));
  await sighup('reloaded');
  await client.close();
});

async function adminReload(token = ADMIN_TOKEN) {
  const res = await fetch(`${admin}/reload`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json().catch(() => null) };
}

test('POST /reload on the admin listener: 200 with the version, 400 with file:line:col', async () => {
  const { client } = await connect(tg.url);
  hide(false);
  let r = await adminReload();
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.reloaded, true);
  assert.match(r.body.policy_version, /^[0-9a-f]{64}$/);
  let c = await client.callTool({ name: 'demo_whoami', arguments: {} });
  assert.ok(!c.isError, textOf(c));

  hide(true);
  writeFileSync(path.join(dir, '90-bad.cedar'), 'permit (principal, action, resource)\n');
  r = await adminReload();
  assert.equal(r.status, 400);
  assert.equal(r.body.reloaded, false);
  assert.match(r.body.error, /90-bad\.cedar:\d+:\d+/);
  c = await client.callTool({ name: 'demo_whoami', arguments: {} });
  assert.ok(!c.isError, 'the refused reload left the previous policy in force');
  rmSync(path.join(dir, '90-bad.cedar'));

  r = await adminReload('wrong-token');
  assert.equal(r.status, 401);
  c = await client.callTool({ name: 'demo_whoami', arguments: {} });
  assert.ok(!c.isError, 'an unauthenticated reload changed nothing');

  r = await adminReload();
  assert.equal(r.status, 200);
  c = await client.callTool({ name: 'demo_whoami', arguments: {} });
  assert.equal(c.isError, true);
  const h = await fetch(`${admin}/healthz`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.equal(h.status, 200);
  assert.equal(await h.text(), 'ok\n');
  const ready = await fetch(`${admin}/readyz`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.equal(ready.status, 200);
  await client.close();
});

test('valid and invalid reloads under traffic fail no call', async () => {
  const clients = await Promise.all([0, 1, 2].map(() => connect(tg.url)));
  const deadline = Date.now() + 3000;
  const failures = [];
  let calls = 0;
  const loop = async ({ client }) => {
    while (Date.now() < deadline) {
      const r = await client.callTool({ name: 'jira_get_issue', arguments: { issue_key: 'OPS-1' } });
      calls++;
      if (r.isError) failures.push(textOf(r));
    }
  };
  const traffic = Promise.all(clients.map(loop));
  let reloads = 0;
  while (Date.now() < deadline - 200) {
    const bad = reloads % 2 === 1;
    if (bad) writeFileSync(path.join(dir, '90-bad.cedar'), 'forbid (principal, action resource);\n');
    else { rmSync(path.join(dir, '90-bad.cedar'), { force: true }); hide(reloads % 4 === 0); }
    if (reloads % 3 === 2) {
      const r = await adminReload();
      assert.equal(r.status, bad ? 400 : 200, JSON.stringify(r.body));
    } else {
      await sighup(bad ? 'refused' : 'reloaded');
    }
    reloads++;
    await sleep(100);
  }
  await traffic;
  rmSync(path.join(dir, '90-bad.cedar'), { force: true });
  assert.deepEqual(failures, []);
  assert.ok(reloads >= 6, `${reloads} reloads`);
  assert.ok(calls > 20, `${calls} calls`);
  await Promise.all(clients.map(({ client }) => client.close()));
});

test('a changed auth section gets a new authenticator; turning auth off is refused', async () => {
  const gw = await startToolgate({ upstreams: [demoUpstream()], auth: { api_keys: { enabled: true } } });
  let seen = '';
  gw.proc.stderr.on('data', (d) => { seen += d.toString(); });
  const hup = async (re) => {
    const n = (seen.match(new RegExp(re.source, 'g')) || []).length;
    gw.proc.kill('SIGHUP');
    for (let i = 0; i < 200 && (seen.match(new RegExp(re.source, 'g')) || []).length === n; i++) await sleep(50);
    assert.ok((seen.match(new RegExp(re.source, 'g')) || []).length > n, seen.slice(-2000));
  };
  try {
    const key = execFileSync(TOOLGATE_BIN, ['keys', 'create', '--config', gw.file, '--agent', 'claude', '--delegator', 'alice'],
      { encoding: 'utf8' }).trim().split('\n').pop();
    const auth = { authorization: `Bearer ${key}` };
    assert.equal((await post(gw.url, INIT, auth)).status, 200);
    const original = readFileSync(gw.file, 'utf8');
    // only 10.0.0.0/8 may use keys now: the loopback client is refused
    writeFileSync(gw.file, original.replace('enabled: true', 'enabled: true\n    allowed_cidrs: ["10.0.0.0/8"]'));
    await hup(/"reloaded /);
    assert.match(seen, /new authenticator/);
    assert.equal((await post(gw.url, INIT, auth)).status, 401);
    writeFileSync(gw.file, original.replace(/auth:[\s\S]*$/, 'auth: "none"\n'));
    await hup(REFUSED);
    assert.match(seen, /authentication cannot be turned off by a reload/);
    assert.equal((await post(gw.url, INIT)).status, 401, 'still authenticating');
    writeFileSync(gw.file, original);
    await hup(/"reloaded /);
    assert.equal((await post(gw.url, INIT, auth)).status, 200);
  } finally {
    assert.equal(await gw.stop(), 0, gw.proc.logs().slice(-3000));
  }
});
