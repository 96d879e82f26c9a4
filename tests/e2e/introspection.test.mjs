// introspection.test.mjs — RFC 7662 introspection of opaque access tokens, end to end:
// the real toolgate binary in front of the demo server, oauth2-mock-server (9.3.0) as
// the authorization server with its POST /introspect endpoint (the test shapes each
// answer through its beforeIntrospect hook), the official SDK client sending an opaque
// token. The client secret comes from an environment reference (${INTRO_SECRET}).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { OAuth2Server } from 'oauth2-mock-server';
import { TOOLGATE_BIN, demoUpstream, startToolgate, connect, post, INIT, freePort } from './lib.mjs';

const SCOPE = 'mcp:tools';
const SECRET = `s3cret-${randomBytes(6).toString('hex')}`;
let issuer, issuerUrl, tg;
let nextAnswer = () => ({ active: false });
let calls = []; // one entry per introspection request: its Authorization header

before(async () => {
  issuer = new OAuth2Server();
  await issuer.issuer.keys.generate('RS256');
  const port = await freePort();
  await issuer.start(port, '127.0.0.1');
  issuerUrl = `http://127.0.0.1:${port}`;
  issuer.issuer.url = issuerUrl;
  issuer.service.on('beforeIntrospect', (res, req) => {
    calls.push(req.headers.authorization);
    const a = nextAnswer();
    if (typeof a === 'number') { res.statusCode = a; res.body = { error: 'server_error' }; } else res.body = a;
  });
  tg = await startToolgate({
    upstreams: [demoUpstream()],
    auth: {
      oauth: {
        issuers: [{ issuer: issuerUrl, jwks_uri: `${issuerUrl}/jwks` }],
        required_scopes: [SCOPE],
        introspection: { url: `${issuerUrl}/introspect`, client_id: 'toolgate', client_secret: '${INTRO_SECRET}' },
      },
    },
  }, { env: { INTRO_SECRET: SECRET } });
});

after(async () => {
  if (tg) assert.equal(await tg.stop(), 0, tg.proc.logs().slice(-3000));
  await issuer?.stop();
});

const opaque = () => `opaque-${randomBytes(16).toString('hex')}`;
const good = (extra = {}) => () => ({
  active: true, iss: issuerUrl, sub: 'alice', client_id: 'claude', aud: tg.url, scope: SCOPE,
  exp: Math.floor(Date.now() / 1000) + 600, ...extra,
});
const bearer = (t) => ({ authorization: `Bearer ${t}` });

test('an active opaque token works end to end, introspected once, with client authentication', async () => {
  nextAnswer = good();
  calls = [];
  const token = opaque();
  const { client } = await connect(tg.url, { headers: bearer(token) });
  const tools = (await client.listTools()).tools.map((t) => t.name);
  assert.ok(tools.includes('jira_get_issue'));
  const r = await client.callTool({ name: 'jira_get_issue', arguments: { issue_key: 'OPS-1' } });
  assert.ok(!r.isError);
  await client.close();
  assert.equal(calls.length, 1, 'cached after the first introspection');
  assert.equal(calls[0], `Basic ${Buffer.from(`toolgate:${SECRET}`).toString('base64')}`);
  assert.doesNotMatch(tg.proc.logs(), new RegExp(`${token}|${SECRET}`), 'neither token nor secret is logged');
});

test('inactive, wrong audience, expired: 401 invalid_token; missing scope: 403', async () => {
  const cases = [
    [() => ({ active: false }), 401, 'invalid_token', /not active/],
    [good({ aud: 'https://elsewhere.example/mcp' }), 401, 'invalid_token', /audience/],
    [good({ exp: Math.floor(Date.now() / 1000) - 3600 }), 401, 'invalid_token', /expired/],
    [good({ iss: 'https://evil.example' }), 401, 'invalid_token', /not allowed/],
    [good({ scope: 'openid' }), 403, 'insufficient_scope', /lacks required scope/],
  ];
  for (const [answer, status, error, logged] of cases) {
    nextAnswer = answer;
    const r = await post(tg.url, INIT, bearer(opaque()));
    assert.equal(r.status, status, r.text);
    assert.match(r.headers.get('www-authenticate'), new RegExp(`error="${error}"`));
    assert.match(tg.proc.logs(), logged);
  }
});

test('introspection endpoint failing or unreachable: 503', async () => {
  nextAnswer = () => 500;
  const r = await post(tg.url, INIT, bearer(opaque()));
  assert.equal(r.status, 503, r.text);
  await issuer.stop();
  try {
    const r2 = await post(tg.url, INIT, bearer(opaque()));
    assert.equal(r2.status, 503, r2.text);
  } finally {
    const port = Number(new URL(issuerUrl).port);
    await issuer.start(port, '127.0.0.1');
  }
  // refusals are recorded in the audit trail (no token in it)
  const q = execFileSync(TOOLGATE_BIN, ['audit', 'query', '--config', tg.file, '--format', 'jsonl'], { encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, INTRO_SECRET: SECRET } });
  assert.match(q, /auth_failure/);
  assert.match(q, /HTTP 503: token introspection failed/);
  assert.doesNotMatch(q, /opaque-/);
});
