// wasm_bench.mjs — the cedar-wasm side of the Cedar benchmark (bench/cedar/run).
//
//   node bench/cedar/wasm_bench.mjs DUMP_DIR [ITERATIONS]
//
// DUMP_DIR is what `cedar_bench --dump DIR` writes: policies.cedar, entities.json (the
// store followed by every request's Agent and resource entity) and requests.json. Each
// authorization gets the stored entities plus its own two request entities, exactly what
// the C engine sees (the dump's merged list repeats some resource uids across requests,
// which cedar-wasm would reject as duplicates). Requests rotate like in the C bench.
//
// Measures median and p99 ns per authorization for
//   - statefulIsAuthorized with the policy set pre-parsed once (preparsePolicySet), and
//   - plain isAuthorized (policies parsed on every call),
// and prints one JSON object per line: {"mode", "policies", "median_ns", "p99_ns", "allow_pct"}.
// Every answer must be a success; a failure aborts the run (the inputs would be wrong).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as cedar from '../../tests/cedar/diff/node_modules/@cedar-policy/cedar-wasm/nodejs/cedar_wasm.js';

const dir = process.argv[2];
const iterations = Number(process.argv[3] ?? 2000);
if (!dir) {
  console.error('usage: wasm_bench.mjs DUMP_DIR [ITERATIONS]');
  process.exit(2);
}

const policies = readFileSync(join(dir, 'policies.cedar'), 'utf8');
const all = JSON.parse(readFileSync(join(dir, 'entities.json'), 'utf8'));
const requests = JSON.parse(readFileSync(join(dir, 'requests.json'), 'utf8'));

const key = (u) => `${u.type}\u0000${u.id}`;
const perRequest = new Set(requests.flatMap((r) => [key(r.principal), key(r.resource)]));
const store = all.filter((e) => !perRequest.has(key(e.uid)));
const byUid = new Map();
for (const e of all) if (!byUid.has(key(e.uid))) byUid.set(key(e.uid), e);
const calls = requests.map((r) => ({
  principal: r.principal, action: r.action, resource: r.resource, context: r.context,
  entities: [...store, byUid.get(key(r.principal)), byUid.get(key(r.resource))].filter(Boolean),
}));
const nPolicies = cedar.policySetTextToParts(policies).policies?.length ?? 0;

function measure(mode, authorize) {
  const warmup = Math.min(200, iterations);
  const times = new Float64Array(iterations);
  let allows = 0;
  for (let i = -warmup; i < iterations; i++) {
    const call = calls[((i % calls.length) + calls.length) % calls.length];
    const t0 = process.hrtime.bigint();
    const ans = authorize(call);
    const dt = Number(process.hrtime.bigint() - t0);
    if (ans.type !== 'success') {
      console.error(`wasm_bench: ${mode}: ${ans.errors.map((e) => e.message).join('; ')}`);
      process.exit(1);
    }
    if (i >= 0) {
      times[i] = dt;
      if (ans.response.decision === 'allow') allows++;
    }
  }
  times.sort();
  console.log(JSON.stringify({
    mode, policies: nPolicies, entities: calls[0].entities.length,
    median_ns: times[iterations >> 1], p99_ns: times[Math.floor(iterations * 0.99)],
    allow_pct: Math.round((100 * allows) / iterations),
  }));
}

const perr = cedar.preparsePolicySet('bench', { staticPolicies: policies });
if (perr.type !== 'success') {
  console.error(`wasm_bench: preparse: ${perr.errors.map((e) => e.message).join('; ')}`);
  process.exit(1);
}
measure('preparsed', (c) => cedar.statefulIsAuthorized({ ...c, preparsedPolicySetId: 'bench' }));
measure('plain', (c) => cedar.isAuthorized({ ...c, policies: { staticPolicies: policies } }));
