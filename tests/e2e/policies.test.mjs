// policies.test.mjs — each example policy (examples/policies/*.cedar), end to end: the
// official SDK client through the real toolgate binary in front of the demo Atlassian
// server, identities from a real OAuth issuer (oauth2-mock-server) and `toolgate keys
// create`. Every policy gets an allowed call and a refused one; every allowed write is
// read back from the demo, and every refusal is shown to have changed nothing there.
// Two gateways: one whose change window is always open, one whose window never is.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { OAuth2Server } from 'oauth2-mock-server';
import { TOOLGATE_BIN, here, demoUpstream, startToolgate, connect, freePort } from './lib.mjs';

const repo = path.resolve(here, '../..');
const SCOPE = 'mcp:tools';
const INTENT = { 'toolgate/intent': 'e2e: exercise the example policies' };
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

let policyDir, issuer, issuerUrl, open, closed, apiKey;

// One minute, three days from now (UTC): never the current time, even across a midnight
// wrap, for the few seconds this file runs.
function neverWindow() {
  return { days: [DAYS[(new Date().getUTCDay() + 3) % 7]], from: '00:00', to: '00:01', tz: 'UTC' };
}

function gatewayConfig(window) {
  return {
    upstreams: [demoUpstream()],
    catalog: { presets: [path.join(repo, 'presets/demo-atlassian.yaml')] },
    policy: {
      policies: policyDir,
      entities: path.join(policyDir, 'entities.json'),
      change_windows: { e2e: window },
      in_change_window: ['e2e'],
    },
    auth: {
      // the test runner on 127.0.0.1 is the "proxy" that says where an API key is used from
      trusted_proxies: ['127.0.0.1/32'],
      oauth: { issuers: [{ issuer: issuerUrl, jwks_uri: `${issuerUrl}/jwks` }], required_scopes: [SCOPE] },
      api_keys: { enabled: true },
    },
    audit: { instance_id: 'e2e-policies' },
  };
}

async function tokenFor(gw, delegator) {
  return issuer.issuer.buildToken({
    scopesOrTransform: (header, payload) => {
      payload.aud = gw.url;
      payload.sub = delegator;
      payload.azp = 'claude';
      payload.scope = SCOPE;
    },
  });
}

const clients = [];
async function clientAs(gw, delegator) {
  const { client } = await connect(gw.url, { headers: { authorization: `Bearer ${await tokenFor(gw, delegator)}` } });
  clients.push(client);
  return client;
}

before(async () => {
  policyDir = mkdtempSync(path.join(os.tmpdir(), 'tg-e2e-pol-'));
  cpSync(path.join(repo, 'examples/policies'), policyDir, { recursive: true });
  issuer = new OAuth2Server();
  await issuer.issuer.keys.generate('RS256');
  const port = await freePort();
  await issuer.start(port, '127.0.0.1');
  issuerUrl = `http://127.0.0.1:${port}`;
  issuer.issuer.url = issuerUrl;
  open = await startToolgate(gatewayConfig({ days: DAYS, from: '00:00', to: '24:00', tz: 'UTC' }));
  closed = await startToolgate(gatewayConfig(neverWindow()));
  apiKey = execFileSync(TOOLGATE_BIN, ['keys', 'create', '--config', open.file, '--agent', 'ci-bot', '--delegator', 'alice'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
});

after(async () => {
  for (const c of clients) await c.close().catch(() => {});
  for (const gw of [open, closed]) if (gw) assert.equal(await gw.stop(), 0, gw.proc.logs().slice(-3000));
  await issuer?.stop();
  if (policyDir) rmSync(policyDir, { recursive: true, force: true });
});

const textOf = (r) => r.content.map((c) => c.text || '').join('\n');

async function call(client, name, args, meta) {
  return client.callTool({ name, arguments: args, ...(meta ? { _meta: meta } : {}) });
}

// A successful read through toolgate: the demo's current state.
async function read(client, name, args) {
  const r = await call(client, name, args);
  assert.ok(!r.isError, `${name}: ${textOf(r)}`);
  return textOf(r);
}

function assertAllowed(r, what) {
  assert.ok(!r.isError, `${what}: ${textOf(r)}`);
  assert.equal(r.structuredContent?.decision, undefined, what);
}

// A refusal names its decision, the reason code and (for a forbid) the policy id.
function assertRefused(r, decision, reason, policy) {
  const sc = r.structuredContent;
  assert.equal(r.isError, true, textOf(r));
  assert.ok(sc, `structuredContent on a refusal: ${textOf(r)}`);
  assert.equal(sc.decision, decision, JSON.stringify(sc));
  assert.ok(Array.isArray(sc.reasons) && sc.reasons.includes(reason), JSON.stringify(sc));
  assert.ok(Array.isArray(sc.policies), JSON.stringify(sc));
  if (policy) assert.ok(sc.policies.includes(policy), JSON.stringify(sc));
}

const statusOf = (text) => {
  const m = text.match(/"status"\s*:\s*(?:\{[^}]*?"name"\s*:\s*)?"([^"]+)"/);
  assert.ok(m, `a status in ${text.slice(0, 400)}`);
  return m[1];
};

// ------------------------------------------------------------------ 10-reads.cedar

test('reads: allowed in a granted project, denied in another', async () => {
  const alice = await clientAs(open, 'alice');
  assert.match(await read(alice, 'jira_get_issue', { issue_key: 'OPS-1' }), /OPS-1/);
  const r = await call(alice, 'jira_get_issue', { issue_key: 'FIN-1' });
  assertRefused(r, 'deny', 'NO_MATCHING_PERMIT');
  assert.doesNotMatch(textOf(r), /Reconcile Q4 vendor invoices/, 'no FIN data in the refusal');
  const bob = await clientAs(open, 'bob');
  assert.match(await read(bob, 'jira_get_issue', { issue_key: 'FIN-1' }), /Reconcile Q4 vendor invoices/);
});

// ------------------------------------------------------------------ 20-jira-writes.cedar

async function transitionTarget(client, key) {
  const t = await read(client, 'jira_get_transitions', { issue_key: key });
  const id = t.match(/"id"\s*:\s*"(\d+)"/);
  assert.ok(id, t);
  return id[1];
}

test('Jira: a transition with an intent in a granted project is applied', async () => {
  const alice = await clientAs(open, 'alice');
  const before = statusOf(await read(alice, 'jira_get_issue', { issue_key: 'OPS-2' }));
  const tid = await transitionTarget(alice, 'OPS-2');
  const r = await call(alice, 'jira_transition_issue', { issue_key: 'OPS-2', transition_id: tid }, INTENT);
  assertAllowed(r, 'transition with intent');
  assert.notEqual(statusOf(await read(alice, 'jira_get_issue', { issue_key: 'OPS-2' })), before);
});

test('Jira: without an intent → INTENT_REQUIRED; in an ungranted project → denied; nothing changes', async () => {
  const alice = await clientAs(open, 'alice');
  const carol = await clientAs(open, 'carol');
  const opsBefore = await read(alice, 'jira_get_issue', { issue_key: 'OPS-3' });
  const noIntent = await call(alice, 'jira_transition_issue', { issue_key: 'OPS-3', transition_id: await transitionTarget(alice, 'OPS-3') });
  assertRefused(noIntent, 'deny', 'INTENT_REQUIRED', 'jira-write-needs-intent');
  const marker = `e2e-noint-${Date.now()}`;
  const noIntentEdit = await call(alice, 'jira_update_issue', { issue_key: 'OPS-3', fields: { summary: marker } });
  assertRefused(noIntentEdit, 'deny', 'INTENT_REQUIRED', 'jira-write-needs-intent');
  assert.equal(await read(alice, 'jira_get_issue', { issue_key: 'OPS-3' }), opsBefore, 'OPS-3 unchanged');

  const secBefore = await read(carol, 'jira_get_issue', { issue_key: 'SEC-1' });
  const tid = await transitionTarget(carol, 'SEC-1');
  const other = await call(alice, 'jira_transition_issue', { issue_key: 'SEC-1', transition_id: tid }, INTENT);
  assertRefused(other, 'deny', 'NO_MATCHING_PERMIT');
  const edit = await call(alice, 'jira_update_issue', { issue_key: 'SEC-1', fields: { summary: marker } }, INTENT);
  assertRefused(edit, 'deny', 'NO_MATCHING_PERMIT');
  assert.equal(await read(carol, 'jira_get_issue', { issue_key: 'SEC-1' }), secBefore, 'SEC-1 unchanged');
});

// ------------------------------------------------------------------ 30-confluence.cedar

test('Confluence: the delegator edits a page in a space she owns, not in another', async () => {
  const alice = await clientAs(open, 'alice');
  const mine = `e2e-eng-${Date.now()}`;
  const ok = await call(alice, 'confluence_update_page', { page_id: '102', title: 'On-call Runbook', content: mine });
  assertAllowed(ok, 'edit in ENG');
  assert.match(await read(alice, 'confluence_get_page', { page_id: '102' }), new RegExp(mine));

  const theirs = `e2e-hr-${Date.now()}`;
  const hrBefore = await read(alice, 'confluence_get_page', { page_id: '201' });
  const no = await call(alice, 'confluence_update_page', { page_id: '201', title: 'Holiday Policy', content: theirs });
  assertRefused(no, 'deny', 'NO_MATCHING_PERMIT');
  const created = await call(alice, 'confluence_create_page', { space_key: 'HR', title: theirs, content: theirs });
  assertRefused(created, 'deny', 'NO_MATCHING_PERMIT');
  const hrAfter = await read(alice, 'confluence_get_page', { page_id: '201' });
  assert.equal(hrAfter, hrBefore, 'page 201 unchanged');
  assert.doesNotMatch(await read(alice, 'confluence_search', { query: theirs }), new RegExp(theirs), 'no page created in HR');
});

// ------------------------------------------------------------------ 40-bitbucket.cedar

test('Bitbucket: a merge needs approval and is not forwarded; other developer writes pass', async () => {
  const alice = await clientAs(open, 'alice');
  const pr = { workspace: 'acme', repo_slug: 'api', pull_request_id: 1 };
  const prBefore = await read(alice, 'bitbucket_get_pull_request', pr);
  assert.match(prBefore, /OPEN/);
  const merge = await call(alice, 'bitbucket_merge_pull_request', pr);
  assertRefused(merge, 'approval_required', 'MERGE_APPROVAL_REQUIRED', 'merge-to-main-needs-approval');
  assert.equal(await read(alice, 'bitbucket_get_pull_request', pr), prBefore, 'the pull request is still open');

  const branch = `e2e-${Date.now()}`;
  const ok = await call(alice, 'bitbucket_create_branch', { workspace: 'acme', repo_slug: 'web', branch });
  assertAllowed(ok, 'developer creates a branch');
  assert.match(await read(alice, 'bitbucket_get_branch', { workspace: 'acme', repo_slug: 'web', branch }), new RegExp(branch));

  // bob is no developer: his write is denied outright
  const bob = await clientAs(open, 'bob');
  const bobBranch = `e2e-bob-${Date.now()}`;
  const no = await call(bob, 'bitbucket_create_branch', { workspace: 'acme', repo_slug: 'web', branch: bobBranch });
  assertRefused(no, 'deny', 'NO_MATCHING_PERMIT');
  assert.doesNotMatch(await read(alice, 'bitbucket_list_branches', { workspace: 'acme', repo_slug: 'web' }), new RegExp(bobBranch));
});

// ------------------------------------------------------------------ 50-guards.cedar

test('API keys: allowed from a loopback client; denied from an outside address (API_KEY_NETWORK)', async () => {
  const auth = { authorization: `Bearer ${apiKey}` };
  const local = (await connect(open.url, { headers: auth })).client;
  clients.push(local);
  const branch = `e2e-key-${Date.now()}`;
  const ok = await call(local, 'bitbucket_create_branch', { workspace: 'acme', repo_slug: 'api', branch });
  assertAllowed(ok, 'API key from 127.0.0.1');
  assert.match(await read(local, 'bitbucket_get_branch', { workspace: 'acme', repo_slug: 'api', branch }), new RegExp(branch));

  // the trusted proxy (127.0.0.1) says the client is on the internet
  const outside = (await connect(open.url, { headers: { ...auth, 'x-forwarded-for': '203.0.113.9' } })).client;
  clients.push(outside);
  const far = `e2e-key-far-${Date.now()}`;
  const no = await call(outside, 'bitbucket_create_branch', { workspace: 'acme', repo_slug: 'api', branch: far });
  assertRefused(no, 'deny', 'API_KEY_NETWORK', 'api-key-allowed-networks');
  const read10 = await call(outside, 'jira_get_issue', { issue_key: 'OPS-1' });
  assertRefused(read10, 'deny', 'API_KEY_NETWORK', 'api-key-allowed-networks');
  assert.doesNotMatch(await read(local, 'bitbucket_list_branches', { workspace: 'acme', repo_slug: 'api' }), new RegExp(far));

  // an internal network address is allowed, and so is any loopback address: the policy
  // tests isLoopback(), so 127.0.0.2 is as good as 127.0.0.1 (only the key's own --cidr
  // fence, checked at authentication, tells them apart)
  for (const from of ['10.1.2.3', '127.0.0.2']) {
    const c = (await connect(open.url, { headers: { ...auth, 'x-forwarded-for': from } })).client;
    clients.push(c);
    assert.match(await read(c, 'jira_get_issue', { issue_key: 'OPS-1' }), /OPS-1/, from);
  }
});

test('outside the change window a write that is otherwise allowed is denied; reads still pass', async () => {
  const alice = await clientAs(closed, 'alice');
  const marker = `e2e-closed-${Date.now()}`;
  const before = await read(alice, 'confluence_get_page', { page_id: '103' });
  const edit = await call(alice, 'confluence_update_page', { page_id: '103', title: 'Architecture Decision Records', content: marker });
  assertRefused(edit, 'deny', 'OUTSIDE_CHANGE_WINDOW', 'writes-in-change-window');
  const comment = await call(alice, 'jira_add_comment', { issue_key: 'OPS-1', comment: marker }, INTENT);
  assertRefused(comment, 'deny', 'OUTSIDE_CHANGE_WINDOW', 'writes-in-change-window');
  assert.equal(await read(alice, 'confluence_get_page', { page_id: '103' }), before, 'page 103 unchanged');
  assert.doesNotMatch(await read(alice, 'jira_get_issue', { issue_key: 'OPS-1' }), new RegExp(marker));
  // the same write through the open-window gateway goes through: the window was the reason
  const openAlice = await clientAs(open, 'alice');
  assertAllowed(await call(openAlice, 'jira_add_comment', { issue_key: 'OPS-1', comment: marker }, INTENT), 'open window');
  assert.match(await read(openAlice, 'jira_get_issue', { issue_key: 'OPS-1' }), new RegExp(marker));
});
