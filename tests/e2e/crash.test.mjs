// crash.test.mjs — the strict audit guarantee under a crash (issue 6, docs/audit.md
// "Crash guarantee"): toolgate with a policy and strict audit on SQLite serves concurrent
// clients calling an allowed tool; it is killed with SIGKILL mid-load. Afterwards every
// call whose answer reached a client has both its decision and its outcome record in the
// store (matched by session id + JSON-RPC id), and `toolgate audit verify` passes with the
// signing key's public half.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TOOLGATE_BIN, here, demoUpstream, startToolgate, post, rawSession } from './lib.mjs';

const repo = path.resolve(here, '../..');
const CLIENTS = 8;
const LOAD_MS = 2000;
const MAX_CALLS_PER_CLIENT = 2000; // bound; at ~1 ms per strict record, far above 2 s of load

function cli(args) {
  try {
    return { status: 0, out: execFileSync(TOOLGATE_BIN, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 << 20 }) };
  } catch (e) { return { status: e.status, out: `${e.stdout}${e.stderr}` }; }
}

// One client: its own session, then tools/call in a loop until stop() or a failure (the
// kill). Returns the JSON-RPC ids whose complete, successful answer was received.
async function client(url, n, stop) {
  const sid = await rawSession(url);
  const headers = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
  const answered = [];
  for (let i = 0; i < MAX_CALLS_PER_CLIENT && !stop.now; i++) {
    const id = `c${n}-${i}`;
    let r;
    try {
      r = await post(url, { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'jira_get_issue', arguments: { issue_key: 'OPS-1' } } }, headers);
    } catch { break; } // connection reset by the kill: this answer never arrived
    const msgs = Array.isArray(r.json) ? r.json : [r.json];
    const answer = msgs.find((m) => m && m.id === id);
    if (r.status !== 200 || !answer) break; // a truncated answer is not an answer
    assert.equal(answer.result?.isError, undefined, JSON.stringify(answer).slice(0, 300));
    answered.push(id);
  }
  return { sid, answered };
}

// outcome 'durable' (the default): every answered call has both records. 'async': every
// answered call has its decision record (durable before forwarding), and since records are
// committed in chain order and each client waits for its next call's decision record, at
// most one answered call per client — its last — can lack its outcome record.
async function crashRun(outcome) {
  const work = mkdtempSync(path.join(os.tmpdir(), 'tg-e2e-crash-'));
  let tg;
  try {
    writeFileSync(path.join(work, 'reads.cedar'),
      '@id("crash-reads")\n@reason("CRASH_READS")\npermit (principal, action in Action::"risk:read", resource);\n');
    const key = path.join(work, 'audit.key');
    assert.equal(cli(['audit', 'keygen', '--out', key]).status, 0);
    tg = await startToolgate({
      upstreams: [demoUpstream()],
      catalog: { presets: [path.join(repo, 'presets/demo-atlassian.yaml')] },
      policy: { policies: work, entities: path.join(repo, 'examples/policies/entities.json') },
      store: `sqlite:${path.join(work, 'audit.db')}`,
      audit: { instance_id: 'crash', mode: 'strict', outcome, signing_key: key, checkpoint: { every: 25, interval: '1s' } },
    });
    const stop = { now: false };
    const runs = Array.from({ length: CLIENTS }, (_, n) => client(tg.url, n, stop));
    await new Promise((res) => setTimeout(res, LOAD_MS));
    const exited = new Promise((res) => tg.proc.once('exit', (code, sig) => res(sig)));
    tg.proc.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    stop.now = true;
    const results = await Promise.all(runs);
    const total = results.reduce((s, r) => s + r.answered.length, 0);
    assert.ok(total >= CLIENTS, `load ran: ${total} answered calls`);

    const q = cli(['audit', 'query', '--store', `sqlite:${path.join(work, 'audit.db')}`, '--tool', 'jira_get_issue', '--format', 'jsonl']);
    assert.equal(q.status, 0, q.out);
    const have = { decision: new Set(), outcome: new Set() };
    for (const line of q.out.split('\n').filter(Boolean)) {
      const rec = JSON.parse(line).record; // {instance, seq, prev_hash, hash, record}
      if (rec.event === 'decision' && rec.decision === 'allow') have.decision.add(`${rec.session} ${rec.rpc_id}`);
      if (rec.event === 'outcome' && rec.outcome === 'ok') have.outcome.add(`${rec.session} ${rec.rpc_id}`);
    }
    const missing = [];
    for (const { sid, answered } of results) {
      answered.forEach((id, i) => {
        const last = i === answered.length - 1;
        for (const ev of ['decision', 'outcome']) {
          if (outcome === 'async' && ev === 'outcome' && last) continue;
          if (!have[ev].has(`${sid} ${id}`)) missing.push(`${ev} ${sid} ${id}${last ? ' (last)' : ''}`);
        }
      });
    }
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} of ${2 * total} records missing`);

    const v = cli(['audit', 'verify', '--store', `sqlite:${path.join(work, 'audit.db')}`, '--pubkey', `${key}.pub`]);
    assert.equal(v.status, 0, v.out);
    assert.match(v.out, /[1-9]\d* checkpoint\(s\)/, 'signed checkpoints were verified');
  } finally {
    if (tg) await tg.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

test('kill -9 under load in strict mode: every answered call has its records, verify passes', { timeout: 60000 },
  () => crashRun('durable'));
test('kill -9 under load, strict with outcome: async: every answered call has its decision record, outcomes in order', { timeout: 60000 },
  () => crashRun('async'));
