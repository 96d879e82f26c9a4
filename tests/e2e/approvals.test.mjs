// approvals.test.mjs — issue 7 end to end: the official SDK client through the real
// toolgate binary in front of the demo Atlassian server, with the example policies (a
// merge to main needs an approval; release managers approve) and approvers acting on the
// admin API with approver keys. Covers: retry mode (the retried call passes exactly once;
// changed arguments are not covered; a second call needs a new approval), hold mode (the
// call waits with progress notifications and completes once approved; a denial and a
// timeout refuse it), self-approval refused even for a release manager, a non-release
// manager refused by policy, expiry, a pending request surviving a restart, and the audit
// records linking every event to the call.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TOOLGATE_BIN, here, approvalsConfig, startToolgate, connect, freePort } from './lib.mjs';

const repo = path.resolve(here, '../..');

let work, policyDir;
const gateways = [];
const clients = [];

// An approver key as `toolgate approvals keygen` makes them: "tga_" + 32 random bytes
// base64url; the configuration holds only its SHA-256.
function approverKey(user, groups) {
  const key = 'tga_' + randomBytes(32).toString('base64url');
  const entry = { user, key_sha256: createHash('sha256').update(key).digest('hex') };
  if (groups) entry.groups = groups;
  return { key, entry };
}
// bob and carol are release managers in examples/policies/entities.json; dave is nobody;
// alice (the requester) is made a release manager here so that only the built-in rule can
// refuse her own approval.
const keys = {
  bob: approverKey('bob'),
  carol: approverKey('carol'),
  dave: approverKey('dave'),
  alice: approverKey('alice', ['release-managers']),
};

async function gateway(name, approvals, { store } = {}) {
  const admin = await freePort();
  const cfg = approvalsConfig({
    policyDir, instance: `e2e-approvals-${name}`, adminPort: admin,
    approvals: { approvers: { api_keys: Object.values(keys).map((k) => k.entry) }, ...approvals },
  });
  if (store) cfg.store = store;
  const gw = await startToolgate(cfg);
  gw.admin = `http://127.0.0.1:${admin}`;
  // the admin listener opens after the MCP port: wait for it
  for (let i = 0; ; i++) {
    try { if ((await fetch(gw.admin + '/healthz')).ok) break; } catch { /* not yet */ }
    if (i > 200) assert.fail(`admin listener on ${admin} never answered:\n${gw.proc.logs()}`);
    await new Promise((res) => setTimeout(res, 25));
  }
  gw.storeUrl = store || `sqlite:${path.join(gw.dir, 'toolgate.db')}`;
  gateways.push(gw);
  return gw;
}

function createKey(gw) {
  return execFileSync(TOOLGATE_BIN, ['keys', 'create', '--config', gw.file, '--agent', 'claude', '--delegator', 'alice'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

async function alice(gw) {
  if (!gw.aliceKey) gw.aliceKey = createKey(gw);
  const { client } = await connect(gw.url, { headers: { authorization: `Bearer ${gw.aliceKey}` } });
  clients.push(client);
  return client;
}

async function api(gw, who, method, p, body) {
  const res = await fetch(gw.admin + p, {
    method,
    headers: { authorization: `Bearer ${keys[who].key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text };
}

const textOf = (r) => r.content.map((c) => c.text || '').join('\n');
const pr = (n, extra = {}) => ({ workspace: 'acme', repo_slug: 'api', pull_request_id: n, ...extra });
const merge = (client, args, opts) =>
  client.callTool({ name: 'bitbucket_merge_pull_request', arguments: args }, undefined, opts);
const prState = async (client, n) => {
  const r = await client.callTool({ name: 'bitbucket_get_pull_request', arguments: pr(n) });
  assert.ok(!r.isError, textOf(r));
  const m = textOf(r).match(/"state"\s*:\s*"([A-Z]+)"/);
  assert.ok(m, textOf(r));
  return m[1];
};

// Opens a pull request develop → main in acme/api and returns its id.
async function newPr(client) {
  const r = await client.callTool({ name: 'bitbucket_create_pull_request', arguments: {
    workspace: 'acme', repo_slug: 'api', title: `e2e ${Date.now()}`, source_branch: 'develop', destination_branch: 'main' } });
  assert.ok(!r.isError, textOf(r));
  const m = textOf(r).match(/"id"\s*:\s*(\d+)/);
  assert.ok(m, textOf(r));
  return Number(m[1]);
}

function assertApprovalRequired(r) {
  const sc = r.structuredContent;
  assert.equal(r.isError, true, textOf(r));
  assert.equal(sc?.decision, 'approval_required', JSON.stringify(sc));
  assert.ok(sc.reasons.includes('MERGE_APPROVAL_REQUIRED'), JSON.stringify(sc));
  assert.match(sc.approvalId, /^apr_[a-z0-9]+$/, JSON.stringify(sc));
  assert.ok(sc.approvalUrl.endsWith('#' + sc.approvalId), sc.approvalUrl);
  return sc.approvalId;
}

async function waitPending(gw, pred, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await api(gw, 'bob', 'GET', '/approvals?state=pending');
    assert.equal(r.status, 200, r.text);
    const hit = r.json.find(pred);
    if (hit) return hit;
    if (Date.now() > deadline) assert.fail(`no such pending request within ${ms} ms: ${r.text}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

function auditOf(gw, id) {
  const out = execFileSync(TOOLGATE_BIN, ['audit', 'query', '--store', gw.storeUrl, '--approval', id, '--format', 'jsonl'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return out.split('\n').filter(Boolean).map((l) => JSON.parse(l).record);
}

before(() => {
  work = mkdtempSync(path.join(os.tmpdir(), 'tg-e2e-apr-'));
  policyDir = path.join(work, 'policies');
  cpSync(path.join(repo, 'examples/policies'), policyDir, { recursive: true });
  // Who may approve: release managers, for resources in the acme workspace. (The example
  // set has its own approver policy; this one keeps the test's premise explicit.)
  writeFileSync(path.join(policyDir, '99-e2e-approvers.cedar'), `
@id("e2e-release-managers-approve") @reason("RELEASE_MANAGER")
permit (principal in Group::"release-managers", action == Action::"approve",
        resource in Bitbucket::Workspace::"acme");
`);
});

after(async () => {
  for (const c of clients) await c.close().catch(() => {});
  for (const gw of gateways) if (!gw.stopped) assert.equal(await gw.stop(), 0, gw.proc.logs().slice(-3000));
  if (work) rmSync(work, { recursive: true, force: true });
});

test('retry: approval id and URL; self-approval and non-release managers refused; the approved call passes exactly once', async () => {
  const gw = await gateway('retry', { mode: 'retry' });
  const a = await alice(gw);
  assert.equal(await prState(a, 1), 'OPEN');

  const first = await merge(a, pr(1));
  const id = assertApprovalRequired(first);
  assert.equal(await prState(a, 1), 'OPEN', 'not forwarded');
  assert.equal(assertApprovalRequired(await merge(a, pr(1))), id, 'the identical pending request is reused');

  const shown = await api(gw, 'bob', 'GET', `/approvals/${id}`);
  assert.equal(shown.status, 200, shown.text);
  assert.equal(shown.json.state, 'pending');
  assert.equal(shown.json.tool, 'bitbucket_merge_pull_request');
  assert.equal(shown.json.requester.delegator, 'alice');
  assert.equal(shown.json.requester.agent, 'claude');
  assert.equal(shown.json.resource.type, 'Bitbucket::PullRequest');
  assert.deepEqual(shown.json.args, pr(1));
  assert.match(shown.json.argsSha256, /^[0-9a-f]{64}$/);

  const self = await api(gw, 'alice', 'POST', `/approvals/${id}/approve`, { comment: 'lgtm (me)' });
  assert.equal(self.status, 403, self.text);
  assert.equal(self.json.error, 'SELF_APPROVAL_FORBIDDEN');
  const nobody = await api(gw, 'dave', 'POST', `/approvals/${id}/approve`, {});
  assert.equal(nobody.status, 403, nobody.text);
  assert.equal(nobody.json.error, 'APPROVER_NOT_PERMITTED');
  assert.equal((await api(gw, 'bob', 'GET', `/approvals/${id}`)).json.state, 'pending', 'refusals change nothing');

  const ok = await api(gw, 'bob', 'POST', `/approvals/${id}/approve`, { comment: 'release 1.2' });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.state, 'approved');
  assert.equal(ok.json.approver, 'bob');
  const again = await api(gw, 'carol', 'POST', `/approvals/${id}/deny`, {});
  assert.equal(again.status, 409, again.text);
  assert.equal(again.json.error, 'NOT_PENDING');

  // Changed arguments are not covered: a new request, and the PR stays open.
  const changed = await merge(a, pr(1, { message: 'sneaky' }));
  assert.notEqual(assertApprovalRequired(changed), id);
  assert.equal(await prState(a, 1), 'OPEN');

  // The same call passes once…
  const passed = await merge(a, pr(1));
  assert.ok(!passed.isError, textOf(passed));
  assert.equal(await prState(a, 1), 'MERGED');
  assert.equal((await api(gw, 'bob', 'GET', `/approvals/${id}`)).json.state, 'used');
  // …and a second one needs a new approval.
  const second = await merge(a, pr(1));
  assert.notEqual(assertApprovalRequired(second), id);

  // The evidence: requested, approved and used events, and the decision records of the
  // calls, all carry the approval id.
  const recs = auditOf(gw, id);
  const details = recs.filter((r) => r.event === 'approval').map((r) => r.detail.split(':')[0]);
  assert.deepEqual(details, ['requested', 'approved', 'used'], JSON.stringify(recs, null, 1));
  const decisions = recs.filter((r) => r.event === 'decision').map((r) => r.decision);
  assert.ok(decisions.includes('approval_required') && decisions.includes('allow'), JSON.stringify(decisions));
  // one digest ties them all: the call's arguments
  const digests = new Set(recs.map((r) => r.args_sha256));
  assert.deepEqual([...digests], [shown.json.argsSha256], JSON.stringify(recs.map((r) => [r.event, r.detail, r.args_sha256])));
  const allowRec = recs.find((r) => r.event === 'decision' && r.decision === 'allow');
  assert.equal(allowRec.approver, 'bob');
  execFileSync(TOOLGATE_BIN, ['audit', 'verify', '--store', gw.storeUrl], { stdio: ['ignore', 'pipe', 'pipe'] });
});

test('hold: the call waits with progress notifications, completes once a release manager approves; a denial refuses it', async () => {
  const gw = await gateway('hold', { mode: 'hold', progress_interval: '1s', hold_timeout: '60s' });
  const a = await alice(gw);
  const [n2, n3] = [await newPr(a), await newPr(a)];
  const progress = [];
  const held = merge(a, pr(n2), {
    onprogress: (p) => progress.push(p), timeout: 60000, resetTimeoutOnProgress: true,
  });
  const req = await waitPending(gw, (x) => x.args?.pull_request_id === n2);
  assert.equal(await prState(a, n2), 'OPEN', 'held, not forwarded');
  const self = await api(gw, 'alice', 'POST', `/approvals/${req.id}/approve`, {});
  assert.equal(self.status, 403, self.text);
  await new Promise((res) => setTimeout(res, 1500));
  const ok = await api(gw, 'bob', 'POST', `/approvals/${req.id}/approve`, { comment: 'ship it' });
  assert.equal(ok.status, 200, ok.text);
  const r = await held;
  assert.ok(!r.isError, textOf(r));
  assert.equal(await prState(a, n2), 'MERGED');
  assert.ok(progress.length >= 1, 'progress notifications while held');
  assert.match(progress[0].message, new RegExp(req.id));
  assert.equal((await api(gw, 'bob', 'GET', `/approvals/${req.id}`)).json.state, 'used');

  const refused = merge(a, pr(n3), { timeout: 60000 });
  const req3 = await waitPending(gw, (x) => x.args?.pull_request_id === n3);
  const no = await api(gw, 'carol', 'POST', `/approvals/${req3.id}/deny`, { comment: 'not before the freeze ends' });
  assert.equal(no.status, 200, no.text);
  assert.equal(no.json.state, 'denied');
  const d = await refused;
  assert.equal(d.isError, true, textOf(d));
  assert.equal(d.structuredContent.decision, 'deny');
  assert.deepEqual(d.structuredContent.reasons, ['APPROVAL_DENIED']);
  assert.equal(d.structuredContent.approver, 'carol');
  assert.match(textOf(d), /not before the freeze ends/);
  assert.equal(await prState(a, n3), 'OPEN');
});

test('hold timeout, then expiry: the request stays pending until it expires, then cannot be approved', async () => {
  const gw = await gateway('short', { mode: 'hold', hold_timeout: '1s', expiry: '3s' });
  const a = await alice(gw);
  const r = await merge(a, pr(1), { timeout: 30000 });
  assert.equal(r.isError, true, textOf(r));
  assert.equal(r.structuredContent.decision, 'approval_required');
  assert.deepEqual(r.structuredContent.reasons, ['APPROVAL_TIMEOUT']);
  const id = r.structuredContent.approvalId;
  assert.equal((await api(gw, 'bob', 'GET', `/approvals/${id}`)).json.state, 'pending');
  const deadline = Date.now() + 10000;
  let state;
  do {
    await new Promise((res) => setTimeout(res, 250));
    state = (await api(gw, 'bob', 'GET', `/approvals/${id}`)).json.state;
  } while (state === 'pending' && Date.now() < deadline);
  assert.equal(state, 'expired');
  const late = await api(gw, 'bob', 'POST', `/approvals/${id}/approve`, {});
  assert.equal(late.status, 409, late.text);
  assert.equal(await prState(a, 1), 'OPEN');
});

test('restart: a pending request survives; approved after the restart, the retried call passes', async () => {
  const store = `sqlite:${path.join(work, 'restart.db')}`;
  const gw1 = await gateway('restart', { mode: 'retry' }, { store });
  const key = createKey(gw1);
  gw1.aliceKey = key;
  const id = assertApprovalRequired(await merge(await alice(gw1), pr(1)));
  assert.equal(await gw1.stop(), 0);
  gw1.stopped = true;

  const gw2 = await gateway('restart', { mode: 'retry' }, { store });
  gw2.aliceKey = key; // the key lives in the shared store
  const listed = await api(gw2, 'bob', 'GET', '/approvals?state=pending');
  assert.ok(listed.json.some((x) => x.id === id), listed.text);
  const ok = await api(gw2, 'bob', 'POST', `/approvals/${id}/approve`, {});
  assert.equal(ok.status, 200, ok.text);
  const a = await alice(gw2);
  const r = await merge(a, pr(1));
  assert.ok(!r.isError, textOf(r));
  assert.equal(await prState(a, 1), 'MERGED');
});
