// toolgate.mjs — the side under test: runs `$TOOLGATE_BIN cedar …` and normalises its
// output to the shapes reference.mjs uses ({decision, reason, errors} with sorted ids, or
// {failure}). A crash, a non-zero exit or unparsable output is a failure result, which
// never equals a reference result, so it shows up as a mismatch.

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const MAX_OUT = 512 * 1024 * 1024;

export function bin() {
  const b = process.env.TOOLGATE_BIN;
  if (!b) throw new Error('TOOLGATE_BIN is not set: point it at build/toolgate');
  return b;
}

function run(args, timeoutMs = 120000) {
  const r = spawnSync(bin(), ['cedar', ...args], { encoding: 'utf8', maxBuffer: MAX_OUT, timeout: timeoutMs });
  return { status: r.status, signal: r.signal, stdout: r.stdout || '', stderr: r.stderr || '', error: r.error };
}

const describeExit = (r) => (r.error ? String(r.error) : r.signal ? `killed by ${r.signal}`
  : `exit ${r.status}`) + (r.stderr ? `: ${r.stderr.trim().slice(0, 2000)}` : '');

// Ids in toolgate's JSON may be plain strings or objects naming the policy.
const idOf = (x) => (typeof x === 'string' ? x : x && (x.policyId ?? x.policy ?? x.id));

export function normaliseAnswer(j) {
  if (!j || typeof j.decision !== 'string') return { failure: `unexpected answer ${JSON.stringify(j)}` };
  return {
    decision: j.decision.toLowerCase(),
    reason: (j.reasons ?? j.reason ?? []).map(idOf).sort(),
    errors: [...new Set((j.errors ?? []).map(idOf))].sort(),
  };
}

// `cedar authorize` on one request; files are written into dir.
export function authorize(dir, policyText, entities, req) {
  const p = join(dir, 'min.cedar'); const e = join(dir, 'min.entities.json'); const q = join(dir, 'min.request.json');
  writeFileSync(p, policyText);
  writeFileSync(e, JSON.stringify(entities));
  writeFileSync(q, JSON.stringify(req));
  const r = run(['authorize', '--policies', p, '--entities', e, '--request', q], 20000);
  let j;
  try { j = JSON.parse(r.stdout); } catch { return { failure: `no JSON answer (${describeExit(r)})` }; }
  // authorize may exit non-zero to signal "deny"; only the JSON answer matters then.
  return normaliseAnswer(j);
}

// `cedar est FILE`: a JSON array of ESTs in file order, or {failure}.
export function est(file) {
  const r = run(['est', file], 20000);
  if (r.status !== 0) return { failure: describeExit(r) };
  try {
    const j = JSON.parse(r.stdout);
    if (Array.isArray(j)) return { policies: j };
    if (j && j.staticPolicies) { // the JSON policy-set shape, keyed by id
      return { policies: Object.keys(j.staticPolicies).sort((a, b) => Number(a.slice(6)) - Number(b.slice(6))).map((k) => j.staticPolicies[k]) };
    }
    return { failure: `est output is neither an array nor a policy set: ${r.stdout.slice(0, 200)}` };
  } catch (e) {
    return { failure: `est output is not JSON (${e.message}): ${r.stdout.slice(0, 200)}` };
  }
}

// `cedar corpus DIR`: returns the counts and the full output (the mismatch listing).
export function corpus(dir) {
  const r = run(['corpus', dir], 600000);
  const out = r.stdout + '\n' + r.stderr;
  const m = [...out.matchAll(/(\d+) passed, (\d+) failed/g)].pop();
  return { passed: m ? Number(m[1]) : 0, failed: m ? Number(m[2]) : -1, output: out, exit: describeExit(r), status: r.status };
}

// `cedar check FILE…`: the set of files toolgate parses without error, and its stderr (the
// errors, one per rejected file).
export function check(files) {
  const r = run(['check', ...files], 120000);
  const ok = new Set();
  for (const line of r.stdout.split('\n')) {
    const m = line.match(/^(.*): \d+ polic(?:y|ies) ok$/);
    if (m) ok.add(m[1]);
  }
  return { ok, stderr: r.stderr };
}
