// shrink.mjs — greedy test-case minimizer for the differential test. Given a failing
// candidate {policies: [Policy AST], entities, request} and a predicate "does the mismatch
// persist?", it repeatedly applies the first simplification that keeps the predicate true:
// drop a policy, a condition, a scope constraint, an annotation, an entity, an attribute,
// a tag, a parent or a context key, or replace an expression by one of its sub-expressions
// or a literal. Bounded by a budget of predicate calls, since each call runs toolgate.

const clone = (x) => structuredClone(x);
const LEAVES = [{ k: 'lit', v: true }, { k: 'lit', v: false }, { k: 'lit', v: 0n }];

// The child slots of an expression node, as [get, set] pairs over a node.
function slots(n) {
  const s = (key) => [(m) => m[key], (m, v) => { m[key] = v; }];
  const at = (key, i, j) => [(m) => (j === undefined ? m[key][i] : m[key][i][j]),
    (m, v) => { if (j === undefined) m[key][i] = v; else m[key][i][j] = v; }];
  switch (n.k) {
    case 'un': case 'has': case 'like': case 'attr': return [s('e')];
    case 'bin': return [s('l'), s('r')];
    case 'is': return n.in ? [s('e'), s('in')] : [s('e')];
    case 'if': return [s('c'), s('a'), s('b')];
    case 'set': return n.items.map((_, i) => at('items', i));
    case 'rec': return n.items.map((_, i) => at('items', i, 1));
    case 'call': return [s('e'), ...n.args.map((_, i) => at('args', i))];
    case 'fn': return n.args.map((_, i) => at('args', i));
    default: return [];
  }
}

// Simpler replacements for expression n: its children, smaller collections, leaves, then
// the same node with one child simplified (recursively).
function* exprVariants(n) {
  for (const [get] of slots(n)) yield get(n);
  if ((n.k === 'set' || n.k === 'rec') && n.items.length) {
    for (let i = 0; i < n.items.length; i++) { const m = clone(n); m.items.splice(i, 1); yield m; }
  }
  if (n.k === 'un' && n.n > 1) yield { ...n, n: 1 };
  if (n.k === 'has' && n.path.length > 1) yield { ...n, path: n.path.slice(0, 1) };
  if (n.k === 'like' && n.pat.length) {
    for (let i = 0; i < n.pat.length; i++) { const m = clone(n); m.pat.splice(i, 1); yield m; }
  }
  if (n.esc) yield { ...n, esc: 0 };
  if (n.paren) yield { ...n, paren: false };
  if (n.k !== 'lit') for (const l of LEAVES) yield l;
  for (const [get, set] of slots(n)) {
    for (const v of exprVariants(get(n))) { const m = clone(n); set(m, v); yield m; }
  }
}

function* candidates(c) {
  const with_ = (f) => { const m = clone(c); f(m); return m; };
  for (let i = 0; i < c.policies.length; i++) yield with_((m) => m.policies.splice(i, 1));
  for (let i = 0; i < c.entities.length; i++) yield with_((m) => m.entities.splice(i, 1));
  for (const k of Object.keys(c.request.context)) yield with_((m) => { delete m.request.context[k]; });
  for (let i = 0; i < c.policies.length; i++) {
    const p = c.policies[i];
    for (let j = 0; j < p.conds.length; j++) yield with_((m) => m.policies[i].conds.splice(j, 1));
    for (const s of ['principal', 'action', 'resource']) {
      if (p[s].op !== 'all') yield with_((m) => { m.policies[i][s] = { op: 'all' }; });
    }
    if (p.annotations.length) yield with_((m) => { m.policies[i].annotations = []; });
  }
  for (let i = 0; i < c.entities.length; i++) {
    const e = c.entities[i];
    for (const k of Object.keys(e.attrs)) yield with_((m) => { delete m.entities[i].attrs[k]; });
    if (e.tags) yield with_((m) => { delete m.entities[i].tags; });
    if (e.parents.length) yield with_((m) => { m.entities[i].parents = []; });
  }
  for (let i = 0; i < c.policies.length; i++) {
    for (let j = 0; j < c.policies[i].conds.length; j++) {
      for (const v of exprVariants(c.policies[i].conds[j].e)) yield with_((m) => { m.policies[i].conds[j].e = v; });
    }
  }
}

// Returns {result, steps, calls}: the smallest candidate found within `budget` predicate calls.
export function minimize(start, stillFails, budget = 600) {
  let cur = start;
  let calls = 0;
  let steps = 0;
  let progress = true;
  while (progress && calls < budget) {
    progress = false;
    for (const cand of candidates(cur)) {
      if (++calls > budget) break;
      if (stillFails(cand)) { cur = cand; steps++; progress = true; break; }
    }
  }
  return { result: cur, steps, calls };
}
