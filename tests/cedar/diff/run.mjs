// run.mjs — differential test of toolgate's C Cedar engine against cedar-wasm (the reference).
//
//   TOOLGATE_BIN=build/toolgate node tests/cedar/diff/run.mjs [SEED]
//
// 1. Generates random cases (gen.mjs) from SEED, asks cedar-wasm for the expected answer of
//    every request and writes the cases in the integration-corpus format into a work dir;
//    `toolgate cedar corpus` must reproduce every decision, reason set and error set.
// 2. Parse equivalence: `toolgate cedar est FILE` must equal cedar-wasm's policyToJson for
//    every policy of every generated policy set and of every (distinct) policy set of the
//    shared Cedar corpus, ignoring key order.
// 3. Mismatches are confirmed with `toolgate cedar authorize`, minimized (shrink.mjs) and
//    printed as a reproducer (policy text, entities, request, expected vs actual), with
//    files to re-run by hand.
// The last line is "N passed, N failed" (requests + parse checks); exit 1 on any failure.
//
// Environment: TOOLGATE_BIN (required), CEDAR_DIFF_SEED, CEDAR_DIFF_REQUESTS (default
// 20000), CEDAR_DIFF_WORK (default: a fresh temp dir), CEDAR_DIFF_CORPUS (the corpus
// tarball; default ../shared/cedar-corpus/ beside the repository), CEDAR_DIFF_CORPUS_EST
// (how many distinct corpus policy sets to parse-check; default all).

import { setFlagsFromString } from 'node:v8';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { genCase, caseSeed, renderPolicy, renderPolicySet } from './gen.mjs';
import * as ref from './reference.mjs';
import * as tg from './toolgate.mjs';
import { minimize } from './shrink.mjs';
import { mutate } from './mutate.mjs';

// Node 20's optimizing compiler (TurboFan) aborts the process ("unreachable code" in the
// deoptimizer) on a lazy deopt in the generation loop after ~10,000 requests. The mid tier
// (Maglev) is plenty fast for a test driver; cedar-wasm itself is unaffected (wasm tiers
// are separate).
setFlagsFromString('--max-opt=2');

const HERE = dirname(fileURLToPath(import.meta.url));
const PER_CASE = 20;
const MAX_MINIMIZED = 3;    // minimizing is slow (one toolgate run per step); show a few
const MAX_LISTED = 20;

const seed = Number(process.argv[2] ?? process.env.CEDAR_DIFF_SEED ?? 20240601) >>> 0;
const nRequests = Number(process.env.CEDAR_DIFF_REQUESTS ?? 20000);
const nCases = Math.ceil(nRequests / PER_CASE);
const corpusTar = process.env.CEDAR_DIFF_CORPUS
  ?? resolve(HERE, '../../../../shared/cedar-corpus/corpus-tests.tar.gz');
const corpusEstLimit = Number(process.env.CEDAR_DIFF_CORPUS_EST ?? Infinity);

let work;
if (process.env.CEDAR_DIFF_WORK) {
  work = resolve(process.env.CEDAR_DIFF_WORK);
  rmSync(join(work, 'gen'), { recursive: true, force: true });
  rmSync(join(work, 'repro'), { recursive: true, force: true });
} else {
  work = mkdtempSync(join(tmpdir(), 'cedar-diff-'));
}
// Case files sit in one folder; the runner resolves their "corpus-tests/H.cedar" paths there.
const caseDir = join(work, 'gen');
const reproDir = join(work, 'repro');
mkdirSync(caseDir, { recursive: true });
mkdirSync(reproDir, { recursive: true });

const t0 = Date.now();
const secs = () => ((Date.now() - t0) / 1000).toFixed(1);
console.log(`cedar-diff: seed ${seed} (reproduce: CEDAR_DIFF_SEED=${seed}), ${nRequests} requests in cases of ${PER_CASE}, cedar-wasm ${ref.version()}, work dir ${work}`);

let passed = 0;
let failed = 0;
const sameAnswer = (a, b) => !a.failure && !b.failure && a.decision === b.decision
  && a.reason.join('\n') === b.reason.join('\n') && a.errors.join('\n') === b.errors.join('\n');
const show = (a) => (a.failure ? `FAILURE ${a.failure}`
  : `${a.decision} reason=[${a.reason}] errors=[${a.errors}]`);

// ---------------------------------------------------------------- 1. generate + expected

const caseName = (i) => `dc${String(i).padStart(6, '0')}`;
let refRejected = 0;
const rejected = []; // requests the reference rejects as a whole: toolgate must reject them too

// Case i: generated, answered by the reference, written in the corpus format; null when
// the reference rejects its policies (a generator bug: we mean to produce valid ones).
function makeCase(i) {
  const cs = genCase(caseSeed(seed, i), PER_CASE);
  const text = renderPolicySet(cs.policies);
  const perr = ref.preparse('diff', text);
  if (perr) {
    console.log(`generator: case ${i} (seed ${cs.seed}) does not parse in cedar-wasm: ${perr}\n${text}`);
    refRejected += PER_CASE;
    return null;
  }
  const requests = [];
  const caseRequests = [];
  for (let j = 0; j < cs.requests.length; j++) {
    const rq = cs.requests[j];
    const exp = ref.authorizePreparsed('diff', cs.entities, rq);
    if (exp.failure) { rejected.push({ i, j, rq, entities: cs.entities, text, failure: exp.failure }); continue; }
    const entry = { description: `rq${j}`, principal: rq.principal, action: rq.action,
      resource: rq.resource, context: rq.context, validateRequest: false,
      decision: exp.decision, reason: exp.reason, errors: exp.errors };
    caseRequests.push(entry);
    requests.push({ j, expected: exp, ...rq });
  }
  const name = caseName(i);
  writeFileSync(join(caseDir, `${name}.cedar`), text);
  writeFileSync(join(caseDir, `${name}.entities.json`), JSON.stringify(cs.entities, null, 1));
  writeFileSync(join(caseDir, `${name}.cedarschema`), '');
  writeFileSync(join(caseDir, `${name}.json`), JSON.stringify({
    policies: `corpus-tests/${name}.cedar`, entities: `corpus-tests/${name}.entities.json`,
    schema: `corpus-tests/${name}.cedarschema`, shouldValidate: false, requests: caseRequests,
  }, null, 1));
  return { i, name, cs, text, requests };
}

// Cases until at least nRequests requests have a reference answer (some are rejected as a
// whole, see below), bounded in case the generator breaks.
const cases = [];
for (let i = 0, n = 0; n < nRequests && i < 2 * nCases; i++) {
  const c = makeCase(i);
  if (c) { cases.push(c); n += c.requests.length; }
}
const nWritten = cases.reduce((n, c) => n + c.requests.length, 0);
console.log(`generated ${nWritten} requests in ${cases.length} cases (${secs()} s)` +
  (refRejected ? `; ${refRejected} requests of unparsable policy sets (generator bug, not counted)` : '') +
  `; ${rejected.length} requests the reference rejects as a whole`);

// ---------------------------------------------------------------- 2. toolgate cedar corpus

const mismatches = []; // {c, rq, actual}
{
  const r = tg.corpus(caseDir);
  const suspects = new Map(); // case index -> Set of request indexes (empty = all)
  for (const line of r.output.split('\n')) {
    const m = line.match(/dc(\d{6})/);
    if (!m) continue;
    const ci = Number(m[1]);
    if (!suspects.has(ci)) suspects.set(ci, new Set());
    const q = line.match(/\brq(\d+)\b/);
    if (q) suspects.get(ci).add(Number(q[1]));
  }
  const byIndex = new Map(cases.map((c) => [c.i, c]));
  for (const [ci, rqs] of suspects) {
    const c = byIndex.get(ci);
    if (!c) continue;
    for (const rq of c.requests) {
      if (rqs.size && !rqs.has(rq.j)) continue;
      const actual = tg.authorize(reproDir, c.text, c.cs.entities, rq);
      if (!sameAnswer(rq.expected, actual)) mismatches.push({ c, rq, actual });
    }
  }
  let corpusFailed = r.failed;
  if (r.failed < 0 || r.passed + r.failed !== nWritten) {
    console.log(`toolgate cedar corpus: counted ${r.passed} passed, ${r.failed} failed for ${nWritten} requests (${r.exit})`);
    corpusFailed = nWritten - Math.min(r.passed, nWritten);
  }
  if (corpusFailed > 0 && mismatches.length === 0) {
    console.log(`toolgate cedar corpus reports failures that could not be attributed to requests:\n${r.output.slice(-3000)}`);
  }
  corpusFailed = Math.max(corpusFailed, mismatches.length);
  passed += nWritten - corpusFailed;
  failed += corpusFailed;
  console.log(`requests: ${nWritten - corpusFailed} passed, ${corpusFailed} failed (${secs()} s)`);
  const kinds = new Map();
  for (const { actual } of mismatches) {
    const k = actual.failure ? `toolgate rejects the request: ${actual.failure.replace(/^.*?: (in |entity \d+: in )/, 'in ').slice(0, 120)}`
      : 'decision, reasons or errors differ';
    kinds.set(k, (kinds.get(k) ?? 0) + 1);
  }
  for (const [k, n] of [...kinds].sort((a, b) => b[1] - a[1])) console.log(`  ${n} x ${k}`);
}

// Requests the reference rejects as a whole (odd entity or context JSON) must not get a
// decision from toolgate either: it fails closed. Checked one `cedar authorize` run each,
// for at most MAX_REJECT_CHECKS of them.
const MAX_REJECT_CHECKS = 300;
const rejectMismatches = [];
{
  const todo = rejected.slice(0, MAX_REJECT_CHECKS);
  for (const x of todo) {
    const actual = tg.authorize(reproDir, x.text, x.entities, x.rq);
    if (actual.failure) passed++;
    else { failed++; rejectMismatches.push({ ...x, actual }); }
  }
  console.log(`whole-request rejections: ${todo.length - rejectMismatches.length} passed, ${rejectMismatches.length} failed (${secs()} s)`);
}

// ---------------------------------------------------------------- 3. parse equivalence

// Canonical JSON: object keys sorted, so key order is irrelevant.
const canon = (v) => (Array.isArray(v) ? v.map(canon)
  : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])])) : v);
const canonStr = (v) => JSON.stringify(canon(v));

// First path where two JSON values differ, for the report.
function firstDiff(a, b, path = '$') {
  if (canonStr(a) === canonStr(b)) return null;
  if (a && b && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const d = firstDiff(a[k], b[k], `${path}.${k}`);
      if (d) return d;
    }
  }
  return `${path}: expected ${JSON.stringify(a)?.slice(0, 300)}, got ${JSON.stringify(b)?.slice(0, 300)}`;
}

// The kind of a parse mismatch, for a summary: the differing path without indexes and
// intermediate nodes ("policyN $.action.entity: …" → "action.entity").
const kindOf = (d) => {
  const m = d.match(/^policy\d+ \$((?:\.[^.:]+)*):/);
  if (!m) return d.split(':')[0].slice(0, 80);
  const parts = m[1].split('.').filter((x) => x && !/^\d+$/.test(x));
  return `${parts.slice(-2).join('.')}${d.includes(', got undefined') ? ' (missing)' : ''}`;
};
function summarise(label, diffs) {
  const count = new Map();
  for (const d of diffs) count.set(kindOf(d), (count.get(kindOf(d)) ?? 0) + 1);
  for (const [k, n] of [...count].sort((a, b) => b[1] - a[1])) console.log(`  ${label}: ${n} x ${k}`);
}

// Compares toolgate's ESTs (`got`, one per policy) with the reference ESTs of `texts`;
// returns null or a description of the first difference.
function compareEst(got, texts) {
  if (got.length !== texts.length) return `toolgate reports ${got.length} policies, the reference ${texts.length}`;
  for (let k = 0; k < texts.length; k++) {
    const want = ref.est(texts[k]);
    if (want.failure) return `reference cannot parse policy${k}: ${want.failure}`;
    const d = firstDiff(want.json, got[k]);
    if (d) return `policy${k} ${d}\n  policy text: ${texts[k]}`;
  }
  return null;
}

function estDiff(file, texts) {
  const got = tg.est(file);
  return got.failure ? `toolgate cedar est failed: ${got.failure}` : compareEst(got.policies, texts);
}

// Parse-checks policy sets ({file, text, policies: [policy texts]}) in batches: one
// `cedar est` run over the concatenated texts (an EST does not depend on neighbouring
// policies), which saves thousands of process starts. When a batch fails as a whole or
// its policy count is off, its sets are checked one file at a time for a precise report.
// Returns one diff (or null) per set.
function estCheckAll(sets, batch = 200) {
  const out = [];
  const file = join(work, 'est-batch.cedar');
  for (let s = 0; s < sets.length; s += batch) {
    const part = sets.slice(s, s + batch);
    writeFileSync(file, part.map((x) => x.text).join('\n'));
    const got = tg.est(file);
    const total = part.reduce((n, x) => n + x.policies.length, 0);
    if (got.failure || got.policies.length !== total) {
      for (const x of part) out.push(estDiff(x.file, x.policies));
      continue;
    }
    let k = 0;
    for (const x of part) out.push(compareEst(got.policies.slice(k, k += x.policies.length), x.policies));
  }
  return out;
}

const estMismatches = [];
estCheckAll(cases.map((c) => ({ file: join(caseDir, `${c.name}.cedar`), text: c.text,
  policies: c.cs.policies.map(renderPolicy) }))).forEach((d, k) => {
  if (d) { failed++; estMismatches.push({ c: cases[k], d }); } else passed++;
});
console.log(`parse equivalence, generated: ${cases.length - estMismatches.length} passed, ${estMismatches.length} failed (${secs()} s)`);
summarise('generated', estMismatches.map((m) => m.d));

// Parse verdicts: one mutant per generated policy set (mutate.mjs); toolgate must accept
// exactly the texts cedar-wasm accepts. Mutants that turn into templates are skipped (the
// reference splits them off; toolgate's set has no linking).
const verdictMismatches = [];
{
  const mdir = join(work, 'mut');
  rmSync(mdir, { recursive: true, force: true });
  mkdirSync(mdir, { recursive: true });
  const muts = [];
  for (const c of cases) {
    const m = mutate(caseSeed(seed ^ 0x5bd1e995, c.i), c.cs.policies.map(renderPolicy));
    const parts = ref.split(m.text);
    if (parts.templates) continue;
    const file = join(mdir, `${c.name}.cedar`);
    writeFileSync(file, m.text);
    muts.push({ ...m, file, refError: parts.failure ?? null });
  }
  for (let s = 0; s < muts.length; s += 200) {
    const part = muts.slice(s, s + 200);
    const { ok } = tg.check(part.map((m) => m.file));
    for (const m of part) {
      if ((m.refError === null) === ok.has(m.file)) { passed++; continue; }
      failed++;
      verdictMismatches.push({ ...m, tgError: ok.has(m.file) ? null : tg.check([m.file]).stderr.trim() });
    }
  }
  console.log(`parse verdicts (mutants): ${muts.length - verdictMismatches.length} passed, ${verdictMismatches.length} failed (${secs()} s)`);
}

const corpusEstFailures = [];
if (existsSync(corpusTar)) {
  const cdir = join(work, 'corpus');
  if (!existsSync(join(cdir, 'corpus-tests'))) {
    mkdirSync(cdir, { recursive: true });
    execFileSync('tar', ['xzf', corpusTar, '-C', cdir]);
  }
  const seen = new Set();
  const sets = [];
  for (const f of readdirSync(join(cdir, 'corpus-tests')).filter((x) => x.endsWith('.cedar')).sort()) {
    if (sets.length >= corpusEstLimit) break;
    const file = join(cdir, 'corpus-tests', f);
    const text = readFileSync(file, 'utf8');
    if (seen.has(text)) continue;
    seen.add(text);
    const parts = ref.split(text);
    if (parts.failure || parts.templates) {
      failed++;
      corpusEstFailures.push(`${f}: reference cannot split it: ${parts.failure ?? 'it has templates'}`);
      continue;
    }
    sets.push({ f, file, text, policies: parts.policies });
  }
  let ok = 0;
  estCheckAll(sets).forEach((d, k) => {
    if (d) { failed++; corpusEstFailures.push(`${sets[k].f}: ${d}`); } else { passed++; ok++; }
  });
  console.log(`parse equivalence, corpus: ${ok} passed, ${seen.size - ok} failed of ${seen.size} distinct policy sets (${secs()} s)`);
  summarise('corpus', corpusEstFailures.map((x) => x.slice(x.indexOf(': ') + 2)));
} else {
  console.log(`parse equivalence, corpus: skipped, no corpus at ${corpusTar}`);
}

// ---------------------------------------------------------------- 4. reproducers

function writeRepro(k, text, entities, request) {
  const d = join(reproDir, String(k));
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, 'policies.cedar'), text + '\n');
  writeFileSync(join(d, 'entities.json'), JSON.stringify(entities, null, 1));
  writeFileSync(join(d, 'request.json'), JSON.stringify(request, null, 1));
  return `${tg.bin()} cedar authorize --policies ${d}/policies.cedar --entities ${d}/entities.json --request ${d}/request.json`;
}

// Minimize the first mismatch of each of the first few cases (one bug tends to fail many
// requests of a case); list the rest briefly.
const minimizedCases = new Set();
mismatches.forEach(({ c, rq, actual }, k) => {
  const request = { principal: rq.principal, action: rq.action, resource: rq.resource, context: rq.context };
  if (k >= MAX_LISTED) return;
  console.log(`\nMISMATCH ${k + 1}: case ${c.i} (case seed ${c.cs.seed}) request ${rq.j}\n  expected ${show(rq.expected)}\n  actual   ${show(actual)}`);
  if (minimizedCases.size >= MAX_MINIMIZED || minimizedCases.has(c.i)) return;
  minimizedCases.add(c.i);
  const start = { policies: c.cs.policies, entities: c.cs.entities, request };
  const { result, steps, calls } = minimize(start, (cand) => {
    const text = renderPolicySet(cand.policies);
    const e = ref.authorize(text, cand.entities, cand.request);
    return !e.failure && !sameAnswer(e, tg.authorize(reproDir, text, cand.entities, cand.request));
  });
  const text = renderPolicySet(result.policies);
  const e = ref.authorize(text, result.entities, result.request);
  const a = tg.authorize(reproDir, text, result.entities, result.request);
  console.log(`  minimized (${steps} steps, ${calls} tries):\n--- policies\n${text}\n--- entities\n${JSON.stringify(result.entities)}` +
    `\n--- request\n${JSON.stringify(result.request)}\n--- expected ${show(e)}\n--- actual   ${show(a)}` +
    `\n--- re-run: ${writeRepro(k, text, result.entities, result.request)}`);
});

estMismatches.forEach(({ c, d }, k) => {
  if (k >= MAX_LISTED) return;
  console.log(`\nPARSE MISMATCH ${k + 1}: case ${c.i} (case seed ${c.cs.seed}): ${d}`);
  if (k >= MAX_MINIMIZED) return;
  const file = join(reproDir, `est${k}.cedar`);
  const { result } = minimize({ policies: c.cs.policies, entities: [], request: { context: {} } }, (cand) => {
    if (!cand.policies.length) return false;
    writeFileSync(file, renderPolicySet(cand.policies));
    return estDiff(file, cand.policies.map(renderPolicy)) !== null;
  });
  writeFileSync(file, renderPolicySet(result.policies) + '\n');
  console.log(`  minimized: ${renderPolicySet(result.policies)}\n  ${estDiff(file, result.policies.map(renderPolicy))}\n  re-run: ${tg.bin()} cedar est ${file}`);
});

// A rejection mismatch is about the JSON, not the policies: minimize entities and context
// against a policy set that reads nothing.
rejectMismatches.slice(0, MAX_MINIMIZED).forEach((x, k) => {
  const text = 'permit(principal, action, resource);';
  const fails = (c) => ref.authorize(text, c.entities, c.request).failure
    && !tg.authorize(reproDir, text, c.entities, c.request).failure;
  const start = { policies: [], entities: x.entities, request: x.rq };
  const { result } = fails(start) ? minimize(start, fails) : { result: start };
  console.log(`\nNOT REJECTED ${k + 1}: case ${x.i} request ${x.j}: the reference rejects it (${x.failure.slice(0, 300)}), toolgate answers ${show(x.actual)}` +
    `\n--- entities\n${JSON.stringify(result.entities)}\n--- request\n${JSON.stringify(result.request)}` +
    `\n--- re-run: ${writeRepro(`reject${k}`, text, result.entities, result.request)}`);
});

verdictMismatches.slice(0, 5 * MAX_LISTED).forEach((m, k) => {
  console.log(`\nPARSE VERDICT MISMATCH ${k + 1}: ${m.how}\n  cedar-wasm: ${m.refError ? `rejects: ${m.refError.slice(0, 300)}` : 'accepts'}` +
    `\n  toolgate:   ${m.tgError ? `rejects: ${m.tgError.slice(0, 300)}` : 'accepts'}\n  re-run: ${tg.bin()} cedar check ${m.file}`);
});

corpusEstFailures.slice(0, MAX_LISTED).forEach((s, k) => console.log(`\nCORPUS PARSE MISMATCH ${k + 1}: ${s}`));

if (failed === 0 && !process.env.CEDAR_DIFF_WORK) rmSync(work, { recursive: true, force: true });
console.log(`\ncedar-diff done in ${secs()} s`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
