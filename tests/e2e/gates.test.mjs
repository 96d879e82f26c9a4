// gates.test.mjs — authentication, per-call policy and the audit trail, end to end:
// the real toolgate binary in front of the demo Atlassian server, a real OAuth issuer
// (oauth2-mock-server) and API keys made with `toolgate keys create`; the example
// policies (examples/policies) decide; `toolgate audit verify|query` read the trail.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHmac, createPublicKey } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { OAuth2Server } from 'oauth2-mock-server';
import { extractResourceMetadataUrl, discoverOAuthProtectedResourceMetadata } from '@modelcontextprotocol/sdk/client/auth.js';
import { TOOLGATE_BIN, here, demoUpstream, startToolgate, connect, post, rawSession, INIT, freePort } from './lib.mjs';

const repo = path.resolve(here, '../..');
const SCOPE = 'mcp:tools';

// The example policies plus one that forbids demo_whoami outright (so tools/list must
// hide it), with a change window that is always open (the examples' window is business
// hours in Paris; tests run at any time).
let policyDir;
function policyConfig(extra = {}) {
  return {
    catalog: { presets: [path.join(repo, 'presets/demo-atlassian.yaml')] },
    policy: {
      policies: policyDir,
      entities: path.join(repo, 'examples/policies/entities.json'),
      change_windows: { always: { days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], from: '00:00', to: '24:00', tz: 'UTC' } },
      in_change_window: ['always'],
      ...extra,
    },
    audit: { instance_id: 'e2e' },
  };
}

let issuer, issuerUrl, tg, keys = {};

function cli(args) {
  return execFileSync(TOOLGATE_BIN, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
function cliStatus(args) {
  try { return { status: 0, out: cli(args) }; } catch (e) { return { status: e.status, out: `${e.stdout}${e.stderr}` }; }
}
function createKey(file, agent, delegator, more = []) {
  return cli(['keys', 'create', '--config', file, '--agent', agent, '--delegator', delegator, ...more]).trim();
}

async function token(claims = {}, { alg, kid } = {}) {
  return issuer.issuer.buildToken({
    ...(kid ? { kid } : {}),
    scopesOrTransform: (header, payload) => {
      payload.aud = tg.url;
      payload.sub = 'alice';
      payload.azp = 'claude';
      payload.scope = SCOPE;
      if (alg) header.alg = alg;
      Object.assign(payload, claims);
    },
  });
}

const bearer = (t) => ({ authorization: `Bearer ${t}` });

before(async () => {
  policyDir = mkdtempSync(path.join(os.tmpdir(), 'tg-e2e-policies-'));
  cpSync(path.join(repo, 'examples/policies'), policyDir, { recursive: true });
  writeFileSync(path.join(policyDir, '60-e2e-hidden.cedar'),
    '@id("e2e-no-whoami")\n@reason("E2E_HIDDEN")\nforbid (principal, action == Action::"demo_whoami", resource);\n');
  issuer = new OAuth2Server();
  await issuer.issuer.keys.generate('RS256');
  const port = await freePort();
  await issuer.start(port, '127.0.0.1');
  issuerUrl = `http://127.0.0.1:${port}`;
  issuer.issuer.url = issuerUrl;
  tg = await startToolgate({
    upstreams: [demoUpstream()],
    ...policyConfig(),
    auth: {
      // unknown key ids may refetch the JWKS every second (key rotation test)
      oauth: { issuers: [{ issuer: issuerUrl, jwks_uri: `${issuerUrl}/jwks` }], required_scopes: [SCOPE], jwks_refetch_interval: '1s' },
      api_keys: { enabled: true },
    },
  });
  keys.alice = createKey(tg.file, 'claude', 'alice');
  keys.bob = createKey(tg.file, 'claude', 'bob');
  keys.fenced = createKey(tg.file, 'claude', 'alice', ['--cidr', '127.0.0.1/32']);
  keys.revoked = createKey(tg.file, 'claude', 'alice');
  cli(['keys', 'revoke', '--config', tg.file, keys.revoked.split('_')[1]]);
});

after(async () => {
  // a graceful stop exits 0 (under ASan: no leak, no error in the gates' teardown)
  if (tg) assert.equal(await tg.stop(), 0, tg.proc.logs().slice(-3000));
  await issuer?.stop();
  if (policyDir) rmSync(policyDir, { recursive: true, force: true });
});

// A POST from a chosen local address (127.0.0.2 …), raw.
function postFrom(localAddress, url, body, headers) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const data = JSON.stringify(body);
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname, method: 'POST', localAddress,
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'content-length': Buffer.byteLength(data), ...headers },
    }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

// The text of a tools/call result.
const textOf = (r) => r.content.map((c) => c.text || '').join('\n');

// ------------------------------------------------------------------ authentication

test('a valid token from the local issuer works end to end', async () => {
  const { client } = await connect(tg.url, { headers: bearer(await token()) });
  const r = await client.callTool({ name: 'jira_get_issue', arguments: { issue_key: 'OPS-1' } });
  assert.ok(!r.isError, textOf(r));
  assert.match(textOf(r), /OPS-1/);
  await client.close();
});

test('refused tokens get 401 with an invalid_token challenge; missing scope gets 403', async () => {
  const now = Math.floor(Date.now() / 1000);
  const cases = {
    expired: await token({ exp: now - 3600, iat: now - 7200 }),
    'wrong audience': await token({ aud: 'https://elsewhere.example/mcp' }),
    'wrong issuer': await token({ iss: 'http://127.0.0.1:1/' }),
    'alg none': (() => {
      const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
      return `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: issuerUrl, aud: tg.url, sub: 'alice', azp: 'claude', scope: SCOPE, exp: now + 600 })}.`;
    })(),
  };
  cases['not yet valid'] = await token({ nbf: now + 3600 });
  // HS256 with the issuer's RSA public key (PEM) as the HMAC secret: algorithm confusion
  const jwks = await (await fetch(`${issuerUrl}/jwks`)).json();
  const pem = createPublicKey({ key: jwks.keys[0], format: 'jwk' }).export({ type: 'spki', format: 'pem' });
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const hsInput = `${b64({ alg: 'HS256', typ: 'JWT', kid: jwks.keys[0].kid })}.${b64({ iss: issuerUrl, aud: tg.url, sub: 'alice', azp: 'claude', scope: SCOPE, exp: now + 600 })}`;
  cases['HS256 with the public key'] = `${hsInput}.${createHmac('sha256', pem).update(hsInput).digest('base64url')}`;
  const good = await token();
  const [h, p, s] = good.split('.');
  cases['bad signature'] = `${h}.${p}.${s.slice(0, -4)}${s.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
  for (const [what, t] of Object.entries(cases)) {
    const r = await post(tg.url, INIT, bearer(t));
    assert.equal(r.status, 401, what);
    const www = r.headers.get('www-authenticate');
    assert.match(www, /^Bearer /, what);
    assert.match(www, /error="invalid_token"/, what);
    assert.match(www, /resource_metadata="/, what);
    assert.equal(r.json.error.message, 'invalid credentials', what);
    assert.ok(!r.text.includes(t.slice(0, 20)), `${what}: the token is not echoed`);
  }
  const noScope = await token({ scope: 'other' });
  const r = await post(tg.url, INIT, bearer(noScope));
  assert.equal(r.status, 403);
  assert.match(r.headers.get('www-authenticate'), /error="insufficient_scope"/);
  assert.match(r.headers.get('www-authenticate'), /scope="mcp:tools"/);
});

test('the SDK client discovers the authorization server from the 401', async () => {
  const r = await post(tg.url, INIT);
  assert.equal(r.status, 401);
  assert.doesNotMatch(r.headers.get('www-authenticate'), /error=/, 'no error= without a credential');
  const res = new Response(null, { status: 401, headers: r.headers });
  const metaUrl = extractResourceMetadataUrl(res);
  assert.ok(metaUrl, 'resource_metadata in the challenge');
  const meta = await discoverOAuthProtectedResourceMetadata(tg.url, { resourceMetadataUrl: metaUrl });
  assert.deepEqual(meta.authorization_servers, [issuerUrl]);
  assert.equal(meta.resource, tg.url);
  // and both RFC 9728 locations answer without authentication
  for (const p of ['/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource/mcp']) {
    const g = await fetch(`http://127.0.0.1:${tg.port}${p}`);
    assert.equal(g.status, 200, p);
    assert.deepEqual((await g.json()).authorization_servers, [issuerUrl], p);
  }
});

test('a token in the query string is refused', async () => {
  const r = await post(`${tg.url}?access_token=${await token()}`, INIT);
  assert.equal(r.status, 400);
  assert.match(r.headers.get('www-authenticate'), /error="invalid_request"/);
});

test('API keys: created key works; out-of-CIDR source and revoked key get 401', async () => {
  const { client } = await connect(tg.url, { headers: bearer(keys.alice) });
  const r = await client.callTool({ name: 'jira_get_issue', arguments: { issue_key: 'OPS-1' } });
  assert.ok(!r.isError, textOf(r));
  await client.close();
  const ok = await postFrom('127.0.0.1', tg.url, INIT, bearer(keys.fenced));
  assert.equal(ok.status, 200, ok.text);
  const fenced = await postFrom('127.0.0.2', tg.url, INIT, bearer(keys.fenced));
  assert.equal(fenced.status, 401, fenced.text);
  assert.equal(JSON.parse(fenced.text).error.message, 'invalid credentials');
  const revoked = await post(tg.url, INIT, bearer(keys.revoked));
  assert.equal(revoked.status, 401);
});

test('API keys: an expired key gets 401; a rotated key works old and new during the overlap, then only new', async () => {
  const short = createKey(tg.file, 'claude', 'alice', ['--ttl', '1s']);
  await new Promise((r) => setTimeout(r, 2100));
  assert.equal((await post(tg.url, INIT, bearer(short))).status, 401, 'expired');
  const old = createKey(tg.file, 'claude', 'alice');
  const id = old.split('_')[1];
  const fresh = cli(['keys', 'rotate', '--config', tg.file, '--overlap', '1h', id]).trim();
  assert.equal((await post(tg.url, INIT, bearer(old))).status, 200, 'old secret during the overlap');
  assert.equal((await post(tg.url, INIT, bearer(fresh))).status, 200, 'new secret');
  const newest = cli(['keys', 'rotate', '--config', tg.file, '--overlap', '0', id]).trim();
  assert.equal((await post(tg.url, INIT, bearer(fresh))).status, 401, 'overlap 0: the previous secret stops');
  assert.equal((await post(tg.url, INIT, bearer(newest))).status, 200);
});

test('a session id presented by another identity gets 404', async () => {
  const a = await post(tg.url, INIT, bearer(keys.alice));
  assert.equal(a.status, 200);
  const sid = a.headers.get('mcp-session-id');
  const ping = { jsonrpc: '2.0', id: 2, method: 'ping' };
  const h = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
  assert.equal((await post(tg.url, ping, { ...h, ...bearer(keys.alice) })).status, 200);
  const other = await post(tg.url, ping, { ...h, ...bearer(keys.bob) });
  assert.equal(other.status, 404);
  const oauth = await post(tg.url, ping, { ...h, ...bearer(await token()) });
  assert.equal(oauth.status, 404);
});

test('a token signed by a new key (unknown kid) is accepted once the JWKS is refetched', async () => {
  const before = await token();
  assert.equal((await post(tg.url, INIT, bearer(before))).status, 200);
  const jwk = await issuer.issuer.keys.generate('RS256');
  await new Promise((r) => setTimeout(r, 1100)); // past jwks_refetch_interval
  const rotated = await token({}, { kid: jwk.kid });
  const r = await post(tg.url, INIT, bearer(rotated));
  assert.equal(r.status, 200, r.text);
});

// ------------------------------------------------------------------ policy

async function issueText(client, key) {
  const r = await client.callTool({ name: 'jira_get_issue', arguments: { issue_key: key } });
  assert.ok(!r.isError, textOf(r));
  return textOf(r);
}

test('an allowed call changes the demo; a denied one is refused with reasons and changes nothing', async () => {
  const alice = (await connect(tg.url, { headers: bearer(keys.alice) })).client;
  const bob = (await connect(tg.url, { headers: bearer(keys.bob) })).client;
  const intent = { 'toolgate/intent': 'e2e: note the check' };
  const marker = `e2e-allowed-${Date.now()}`;
  const ok = await alice.callTool({ name: 'jira_add_comment', arguments: { issue_key: 'OPS-1', comment: marker }, _meta: intent });
  assert.ok(!ok.isError, textOf(ok));
  assert.match(await issueText(alice, 'OPS-1'), new RegExp(marker));

  const denied = `e2e-denied-${Date.now()}`;
  const no = await alice.callTool({ name: 'jira_add_comment', arguments: { issue_key: 'FIN-1', comment: denied }, _meta: intent });
  assert.equal(no.isError, true);
  assert.equal(no.structuredContent.decision, 'deny');
  assert.ok(no.structuredContent.reasons.includes('NO_MATCHING_PERMIT'), JSON.stringify(no.structuredContent));
  assert.match(textOf(no), /NO_MATCHING_PERMIT/);
  assert.doesNotMatch(await issueText(bob, 'FIN-1'), new RegExp(denied), 'the denied comment never reached the demo');

  const noIntent = await alice.callTool({ name: 'jira_add_comment', arguments: { issue_key: 'OPS-1', comment: denied } });
  assert.equal(noIntent.isError, true);
  assert.ok(noIntent.structuredContent.reasons.includes('INTENT_REQUIRED'));
  assert.doesNotMatch(await issueText(alice, 'OPS-1'), new RegExp(denied));
  await alice.close();
  await bob.close();
});

test('tools/list is filtered by what the principal may call', async () => {
  const { client } = await connect(tg.url, { headers: bearer(keys.alice) });
  const names = (await client.listTools()).tools.map((t) => t.name);
  assert.ok(names.includes('jira_get_issue'), names.join(','));
  assert.ok(!names.includes('demo_whoami'), 'a tool every principal is forbidden is not listed');
  const r = await client.callTool({ name: 'demo_whoami', arguments: {} });
  assert.equal(r.isError, true);
  assert.ok(r.structuredContent.reasons.includes('E2E_HIDDEN'));
  await client.close();
  // the same server without a policy lists it: the filter is toolgate's
  const open = await startToolgate({ upstreams: [demoUpstream()] });
  try {
    const c2 = (await connect(open.url)).client;
    const all = (await c2.listTools()).tools.map((t) => t.name);
    assert.ok(all.includes('demo_whoami'));
    assert.equal(all.length, names.length + 1);
    await c2.close();
  } finally { await open.stop(); }
});

test('argument attacks fail closed with RESOURCE_UNRESOLVED', async () => {
  const { client } = await connect(tg.url, { headers: bearer(keys.alice) });
  const attacks = [12, ['OPS-1'], { key: 'OPS-1' }, 'OPS-12/../FIN-1', '\u041ePS-1', '', 'OPS-' + '1'.repeat(5000)];
  for (const issue_key of attacks) {
    const r = await client.callTool({ name: 'jira_get_issue', arguments: { issue_key } });
    assert.equal(r.isError, true, JSON.stringify(issue_key).slice(0, 40));
    assert.equal(r.structuredContent?.decision, 'deny', JSON.stringify(issue_key).slice(0, 40));
    assert.ok(r.structuredContent.reasons.includes('RESOURCE_UNRESOLVED'), JSON.stringify(r.structuredContent));
  }
  await client.close();
});

test('shadow mode forwards a call the policy would deny and records the would-be decision', async () => {
  const sh = await startToolgate({ upstreams: [demoUpstream()], ...policyConfig({ mode: 'shadow' }), auth: { api_keys: { enabled: true } } });
  try {
    const key = createKey(sh.file, 'claude', 'alice');
    const { client } = await connect(sh.url, { headers: bearer(key) });
    const r = await client.callTool({ name: 'jira_get_issue', arguments: { issue_key: 'FIN-1' } });
    assert.ok(!r.isError, textOf(r));
    assert.match(textOf(r), /FIN-1/);
    await client.close();
    const q = cli(['audit', 'query', '--config', sh.file, '--tool', 'jira_get_issue', '--format', 'jsonl']);
    const recs = q.trim().split('\n').map((l) => JSON.parse(l));
    const rec = (ev) => recs.find((x) => JSON.stringify(x).includes(`"${ev}"`) && JSON.stringify(x).includes('FIN-1'));
    assert.ok(recs.length >= 2, q);
    const s = JSON.stringify(recs);
    assert.match(s, /"shadow"/);
    assert.match(s, /"deny"/);
    assert.match(s, /"ok"/);
    assert.ok(rec('decision'));
  } finally { await sh.stop(); }
});

// ------------------------------------------------------------------ audit

test('audit: verify passes and query shows decision, reasons and outcome', async () => {
  // the client's traceparent is recorded; a tool error is an outcome of its own
  const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  const { client } = await connect(tg.url, { headers: { ...bearer(keys.alice), traceparent: tp } });
  const missing = await client.callTool({ name: 'jira_get_issue', arguments: { issue_key: 'OPS-99999' } });
  assert.equal(missing.isError, true, 'the demo has no OPS-99999');
  assert.equal(missing.structuredContent?.decision, undefined, 'an upstream tool error, not a refusal');
  await client.close();
  const traced = cli(['audit', 'query', '--config', tg.file, '--resource', 'Jira::Issue::"OPS-99999"', '--format', 'jsonl']);
  assert.match(traced, new RegExp(tp));
  assert.match(traced, /"tool_error"/);
  // the arguments are stored once, in the decision record; the outcome carries their digest
  const recs = traced.trim().split('\n').map((l) => JSON.parse(l).record);
  const decision = recs.find((r) => r.event === 'decision');
  const outcome = recs.find((r) => r.event === 'outcome');
  assert.deepEqual(decision.args, { issue_key: 'OPS-99999' });
  assert.equal(outcome.args, null);
  assert.match(decision.args_sha256, /^[0-9a-f]{64}$/);
  assert.equal(outcome.args_sha256, decision.args_sha256);
  const v = cliStatus(['audit', 'verify', '--config', tg.file]);
  assert.equal(v.status, 0, v.out);
  const q = cli(['audit', 'query', '--config', tg.file, '--tool', 'jira_add_comment', '--format', 'jsonl']);
  const s = q;
  assert.match(s, /"allow"/);
  assert.match(s, /"deny"/);
  assert.match(s, /NO_MATCHING_PERMIT/);
  assert.match(s, /"not_forwarded"/);
  assert.match(s, /"ok"/);
  assert.match(s, /JIRA_WRITE_GRANTED/);
  assert.match(s, /"api_key"/);
  assert.doesNotMatch(s, /tgk_/, 'no API key in the trail');
  const failures = cli(['audit', 'query', '--config', tg.file, '--format', 'jsonl']);
  assert.match(failures, /auth_failure/);
});

test('batched audit: calls proceed without waiting and their records arrive', async () => {
  const cfg = policyConfig();
  cfg.audit = { instance_id: 'e2e-batched', mode: 'batched' };
  const t3 = await startToolgate({ upstreams: [demoUpstream()], ...cfg });
  try {
    const { client } = await connect(t3.url);
    const r = await client.callTool({ name: 'demo_whoami', arguments: {} });
    assert.equal(r.isError, true, 'forbidden by the e2e policy');
    await client.close();
    let q = '';
    for (let i = 0; i < 20 && !/"deny"/.test(q); i++) {
      await new Promise((res) => setTimeout(res, 100));
      q = cli(['audit', 'query', '--config', t3.file, '--tool', 'demo_whoami', '--format', 'jsonl']);
    }
    assert.match(q, /"deny"/);
    assert.match(q, /"anonymous"/, 'auth: none acts as the anonymous identity');
  } finally { await t3.stop(); }
});

// One record per forwarded call in batched mode (the decision travels in the outcome
// record, with the arguments), two in strict mode; a call that ends before its answer
// (the client cancelled it) still gets its outcome record: `cancelled`.
for (const mode of ['batched', 'strict']) {
  test(`${mode} audit: records of a forwarded call, and of a cancelled one`, async () => {
    const cfg = policyConfig({ mode: 'shadow' }); // decide, report, forward anyway
    cfg.audit = { instance_id: `e2e-${mode}-calls`, mode };
    const t4 = await startToolgate({ upstreams: [demoUpstream({ command: [demoUpstream().command[0], '--conformance'] })], ...cfg });
    try {
      const { client } = await connect(t4.url);
      const r = await client.callTool({ name: 'test_simple_text', arguments: { note: 'hello' } });
      assert.equal(r.isError, undefined, JSON.stringify(r));
      // The tool answers after ~100 ms; the client cancels it after 30 (raw HTTP, so the
      // cancellation is exactly what the test says).
      const sid = await rawSession(t4.url);
      const h = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
      const slow = post(t4.url, { jsonrpc: '2.0', id: 'slow-1', method: 'tools/call',
        params: { name: 'test_tool_with_progress', arguments: {} } }, h).catch(() => null);
      await new Promise((res) => setTimeout(res, 30));
      const n = await post(t4.url, { jsonrpc: '2.0', method: 'notifications/cancelled',
        params: { requestId: 'slow-1', reason: 'the test cancels' } }, h);
      assert.equal(n.status, 202);
      await slow;
      const recordsOf = (tool) => cli(['audit', 'query', '--config', t4.file, '--tool', tool, '--format', 'jsonl'])
        .trim().split('\n').filter(Boolean).map((l) => JSON.parse(l).record);
      let done = [], cancelled = [];
      for (let i = 0; i < 50; i++) {
        done = recordsOf('test_simple_text');
        cancelled = recordsOf('test_tool_with_progress');
        if (done.some((x) => x.event === 'outcome') && cancelled.some((x) => x.event === 'outcome')) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      await client.close();
      const outcome = done.find((x) => x.event === 'outcome');
      assert.ok(outcome, JSON.stringify(done));
      assert.equal(outcome.outcome, 'ok');
      assert.equal(outcome.mode, 'shadow');
      assert.match(outcome.args_sha256, /^[0-9a-f]{64}$/);
      if (mode === 'batched') {
        assert.deepEqual(done.map((x) => x.event), ['outcome'], 'one record per call');
        assert.deepEqual(outcome.args, { note: 'hello' }, 'the arguments are in the one record');
      } else {
        assert.deepEqual(done.map((x) => x.event), ['decision', 'outcome']);
        assert.deepEqual(done[0].args, { note: 'hello' });
        assert.equal(outcome.args, null);
        assert.equal(outcome.args_sha256, done[0].args_sha256);
      }
      const c = cancelled.find((x) => x.event === 'outcome');
      assert.ok(c, JSON.stringify(cancelled));
      assert.equal(c.outcome, 'cancelled', JSON.stringify(cancelled));
      assert.ok(c.total_latency_us < 90000, 'recorded when cancelled, not when the tool would have ended');
      assert.deepEqual(cancelled.map((x) => x.event), mode === 'batched' ? ['outcome'] : ['decision', 'outcome']);
      const v = cliStatus(['audit', 'verify', '--config', t4.file]);
      assert.equal(v.status, 0, v.out);
    } finally { await t4.stop(); }
  });
}

// Holds SQLite's write lock on db from another process (the sqlite3 shell) until release().
async function lockDatabase(db) {
  const sh = spawn('sqlite3', [db], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    let out = '';
    sh.stdout.on('data', (d) => { out += d; if (out.includes('locked')) resolve(); });
    sh.on('exit', (code) => reject(new Error(`sqlite3 exited with ${code}`)));
    sh.stdin.write("PRAGMA busy_timeout=10000;\nBEGIN EXCLUSIVE;\nSELECT 'locked';\n");
  });
  return {
    release: () => new Promise((resolve) => {
      sh.removeAllListeners('exit');
      sh.on('exit', resolve);
      sh.stdin.end('COMMIT;\n.quit\n');
    }),
  };
}

test('store down → calls are refused (fail closed), nothing forwarded', async () => {
  const t2 = await startToolgate({ upstreams: [demoUpstream()], ...policyConfig(), auth: { api_keys: { enabled: true } } });
  try {
    const key = createKey(t2.file, 'claude', 'alice');
    const { client } = await connect(t2.url, { headers: bearer(key) });
    const ok = await client.callTool({ name: 'jira_get_issue', arguments: { issue_key: 'OPS-1' } });
    assert.ok(!ok.isError, textOf(ok));
    const marker = `e2e-store-down-${Date.now()}`;
    const lock = await lockDatabase(path.join(t2.dir, 'toolgate.db'));
    try {
      await assert.rejects(
        client.callTool({ name: 'jira_add_comment', arguments: { issue_key: 'OPS-1', comment: marker }, _meta: { 'toolgate/intent': 'x' } }),
        /audit trail cannot record this call/);
    } finally { await lock.release(); }
    // Once the store is back, calls are served again and the refused one never happened.
    let text = null;
    for (let i = 0; i < 20 && text === null; i++) {
      const r = await client.callTool({ name: 'jira_get_issue', arguments: { issue_key: 'OPS-1' } }).catch(() => null);
      if (r && !r.isError) text = textOf(r);
      else await new Promise((res) => setTimeout(res, 250));
    }
    assert.ok(text !== null, 'calls are served again once the store is back');
    assert.doesNotMatch(text, new RegExp(marker));
    await client.close();
    const v = cliStatus(['audit', 'verify', '--config', t2.file]);
    assert.equal(v.status, 0, v.out);
  } finally { await t2.stop(); }
});
