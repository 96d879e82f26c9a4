// gen.mjs — seeded, reproducible generator of random Cedar test cases for the differential
// test (run.mjs). A case is { policies: [Policy AST], entities: [entity JSON], requests:
// [{principal, action, resource, context}] }. Policies are kept as ASTs (rendered to text by
// renderPolicy) so that the minimizer (shrink.mjs) can simplify sub-expressions.
//
// The generator is type-directed: it mostly builds well-typed expressions over a small fixed
// "world" (entity types, attribute names with intended types, tags, actions) so that policies
// are often satisfied, and with a small probability it injects the wrong type, a missing
// attribute, an overflowing operand or an invalid extension literal so that every error path
// of the evaluator is exercised. Everything derives from one PRNG seed: same seed, same cases.
//
// Constraints that come from the reference, not from taste:
//  - entity and context JSON only carries integers within ±(2^53-1): cedar-wasm receives JS
//    numbers, so larger ones would silently round; 64-bit extremes appear as policy literals.
//  - the entity hierarchy is acyclic: cedar-wasm rejects a cyclic hierarchy as a whole.
//  - no `@id` annotations: cedar-wasm ignores them for policy ids, toolgate honours them.

// mulberry32: small, fast, good enough for test generation, and reproducible in any engine.
export function makeRng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const rng = {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)), // inclusive
    chance: (p) => next() < p,
    pick: (arr) => arr[Math.floor(next() * arr.length)],
    // weighted pick: [[weight, value], ...]
    wpick: (pairs) => {
      let total = 0;
      for (const [w] of pairs) total += w;
      let x = next() * total;
      for (const [w, v] of pairs) { if ((x -= w) < 0) return v; }
      return pairs[pairs.length - 1][1];
    },
  };
  return rng;
}

// Seed of case i of a run: a cheap integer hash so that case i does not depend on how many
// random numbers earlier cases consumed (a reproducer needs only seed and case index).
export function caseSeed(runSeed, i) {
  let h = (runSeed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

// ---------------------------------------------------------------------------------------
// The world every case draws from.

const ENTITY_TYPES = ['User', 'Group', 'Doc', 'NS::Folder', 'A::B::C'];
const IDS = ['alice', 'bob', 'eve', '', 'a b', 'q"uote', 'ü', '😀', '0', 'back\\slash'];
const ACTIONS = ['read', 'write', 'delete', 'all', 'readWrite', 'a b'];
// Action groups: a fixed DAG so that `action in Action::"all"` means something.
const ACTION_PARENTS = {
  read: ['readWrite'], write: ['readWrite'], readWrite: ['all'], delete: ['all'], all: [],
  'a b': [],
};
const TAG_NAMES = ['t1', 't2', 'x y', '', 'level'];

const STRING_CHARS = ['a', 'b', 'c', 'A', '*', ' ', 'é', '😀', '\n', '"', '\\', '\0', '\t',
  '\u007f', "'", 'ß', '\u0301'];
const STRINGS = ['', 'a', 'abc', 'alice', 'a*b', '*', 'héllo', '😀x', 'a\nb', 'q"uote',
  'back\\slash', '\0', 'level', 't1', 'x y', 'ABC', 'ab', 'ba', 'aa'];

const IPS_VALID = ['127.0.0.1', '10.0.0.1', '10.0.0.0/8', '192.168.1.5/24', '0.0.0.0/0',
  '224.0.0.1', '::1', '::', '::/0', 'ff02::1', '2001:db8::1', '2001:db8::/32',
  '::ffff:10.0.0.1', '1:2:3:4:5:6:7:8', 'fe80::1', '255.255.255.255/32', '10.1.2.3/16', '10.0.0.1/32', '::1:0:0:1',
  '0:0:0:0:0:0:0:1', '10.0.0.0/24', '127.0.0.0/8',
  '1::', '::ffff:127.0.0.1', 'ff00::/8', '127.0.0.1/8', '::1/128', '0.0.0.0'];
const IPS_BAD = ['1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1.2.3.4/33', '::1/129', ':::',
  '1:2:3:4:5:6:7:8:9', '', 'localhost', '1.2.3', '1.2.3.4/', '1.2.3.4/08', 'g::1', ' 1.2.3.4',
  '1::2::3', '::1.2.3.4.5'];
const DECIMALS_VALID = ['0.0', '1.0', '-1.5', '12.3456', '922337203685477.5807',
  '-922337203685477.5808', '0.0001', '-0.0001', '3.14', '100.25', '007.5', '1.00', '-0.0', '7.5000',
  '3.1400'];
const DECIMALS_BAD = ['1', '1.', '.5', '1.23456', '922337203685477.5808', 'abc', '1.2.3', '-',
  '+1.0', '1e3', ''];
const DATETIMES_VALID = ['2024-01-01', '1970-01-01', '1969-12-31', '1900-02-28', '2000-02-29',
  '2024-06-15T12:30:00Z', '2024-06-15T12:30:00.123Z', '2024-06-15T12:30:00+0530',
  '2024-06-15T12:30:00.500-0100', '1960-03-01T00:00:00Z', '0001-01-01', '9999-12-31T23:59:59Z',
  '1970-01-01T00:00:00.001Z', '1965-07-04T23:59:59.999-2359', '2024-06-15T18:00:00+0530',
  '2024-06-15T12:30:00.000Z', '2024-01-01T00:00:00Z', '1969-12-31T23:59:59.999Z'];
const DATETIMES_BAD = ['2024-1-1', '2024-13-01', '2024-02-30', '2024-06-15T25:00:00Z',
  '2024-06-15 12:30:00Z', '2024-06-15T12:30:00', '2024-06-15T12:30:00+05:30', '', 'now',
  '2024-06-15T12:30:00.12Z', '+2024-01-01', '2023-02-29'];
const DURATIONS_VALID = ['1d', '2h', '30m', '45s', '500ms', '1d2h3m4s5ms', '-1d', '-2h30m',
  '0ms', '1h1ms', '106751991167d', '9223372036854775807ms', '-9223372036854775808ms', '36h', '24h',
  '1440m', '86400000ms', '0d', '-0s'];
const DURATIONS_BAD = ['1', 'd', '1h1d', '1x', '', '1.5h', '- 1d', '1d-2h', '9223372036854775808ms',
  '106751991168d', '1dd', '1s1s'];

// Attributes with their intended type; entities and contexts carry a random subset, sometimes
// with a value of another type, so attribute access hits missing-attribute and type errors.
const ATTRS = [
  ['flag', 'Bool'], ['level', 'Long'], ['name', 'String'], ['owner', 'Entity'],
  ['tags', 'SetString'], ['nums', 'SetLong'], ['addr', 'ip'], ['amount', 'decimal'],
  ['created', 'datetime'], ['ttl', 'duration'], ['info', 'Record'], ['sp ace', 'String'],
  ['members', 'SetEntity'], ['if', 'Long'],
];
const RECORD_FIELDS = [['a', 'Long'], ['b', 'String'], ['c', 'Record2'], ['d', 'Bool']];
const RECORD2_FIELDS = [['x', 'Bool'], ['y', 'Long']];
const IDENT_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const RESERVED = new Set(['true', 'false', 'if', 'then', 'else', 'in', 'like', 'has', 'is',
  '__cedar']);
export const isIdent = (s) => IDENT_RE.test(s) && !RESERVED.has(s);

const I64_MAX = 9223372036854775807n;
const I64_MIN = -9223372036854775808n;
const JSON_SAFE = 9007199254740991;

// ---------------------------------------------------------------------------------------
// Values for entity attributes, tags and contexts (JSON in Cedar's explicit encoding).

function jsonLong(r) {
  return r.wpick([[8, r.int(-3, 12)], [1, JSON_SAFE], [1, -JSON_SAFE], [1, r.int(-1e6, 1e6)]]);
}
function jsonString(r) {
  if (r.chance(0.6)) return r.pick(STRINGS);
  let s = '';
  for (let n = r.int(0, 5); n > 0; n--) s += r.pick(STRING_CHARS);
  return s;
}
// Uids favour a few "hot" types and ids so that scopes, `==` and `in` often hit.
const hot = (r, arr) => (r.chance(0.6) ? arr[r.int(0, 1)] : r.pick(arr));
const jsonUid = (r) => ({ type: hot(r, ENTITY_TYPES), id: hot(r, IDS) });
const extn = (fn, arg) => ({ __extn: { fn, arg } });

export function jsonValue(r, type, depth = 0) {
  switch (type) {
    case 'Bool': return r.chance(0.5);
    case 'Long': return jsonLong(r);
    case 'String': return jsonString(r);
    case 'Entity': return { __entity: jsonUid(r) };
    case 'SetString': return Array.from({ length: r.int(0, 3) }, () => jsonString(r));
    case 'SetLong': return Array.from({ length: r.int(0, 3) }, () => jsonLong(r));
    case 'SetEntity': return Array.from({ length: r.int(0, 3) }, () => ({ __entity: jsonUid(r) }));
    // cedar-wasm rejects IPv4-embedded IPv6 as a whole request; those stay policy literals.
    case 'ip': return extn('ip', r.pick(IPS_VALID.filter((s) => !/:.*\./.test(s))));
    case 'decimal': return extn('decimal', r.pick(DECIMALS_VALID));
    case 'datetime':
      if (r.chance(0.15)) { // the multi-argument escape form
        return { __extn: { fn: 'offset', args: [extn('datetime', r.pick(DATETIMES_VALID.slice(0, 6))),
          extn('duration', r.pick(DURATIONS_VALID.slice(0, 8)))] } };
      }
      return extn('datetime', r.pick(DATETIMES_VALID));
    case 'duration': return extn('duration', r.pick(DURATIONS_VALID));
    case 'Record': return jsonRecord(r, RECORD_FIELDS, depth);
    case 'Record2': return jsonRecord(r, RECORD2_FIELDS, depth);
    default: throw new Error(`jsonValue: unknown type ${type}`);
  }
}
function jsonRecord(r, fields, depth) {
  const out = {};
  for (const [k, t] of fields) if (r.chance(0.75)) out[k] = jsonValue(r, wrongType(r, t, 0.05), depth + 1);
  return out;
}
const ALL_TYPES = ['Bool', 'Long', 'String', 'Entity', 'SetString', 'SetLong', 'SetEntity', 'ip',
  'decimal', 'datetime', 'duration', 'Record'];
function wrongType(r, t, p) { return r.chance(p) ? r.pick(ALL_TYPES) : t; }

// JSON values on the edge of Cedar's encoding: records that look like escapes, escapes with
// extra keys, retired or malformed escapes. The reference accepts some as plain records and
// rejects the others with the whole request; toolgate must do the same (run.mjs checks that
// a request the reference rejects is rejected by toolgate too).
const ODD_JSON = [
  { type: 'User', id: 'alice' },
  { __entity: { type: 'User', id: 'alice' }, y: 1 },
  { __extn: { fn: 'decimal', arg: '1.0' }, y: 1 },
  { __expr: '1' },
  { __entity: { type: 'User' } },
  { __entity: { type: 'Bad Type', id: 'x' } },
  { __extn: { fn: 'ip', arg: '1.2.3.4.5' } },
  { __extn: { fn: 'nope', arg: '1' } },
  { __extn: { fn: 'ip' } },
  { __extn: { fn: 'decimal', args: ['1.0'] } },
  [1, [2, { a: [] }], {}],
  { '': 1, ' ': { '\0': true } },
];
const oddJson = (r) => structuredClone(r.pick(ODD_JSON));

function attrsFor(r, pAttr) {
  const out = {};
  for (const [k, t] of ATTRS) if (r.chance(pAttr)) out[k] = jsonValue(r, wrongType(r, t, 0.06));
  return out;
}

// Entities: a random subset of the uid universe; parents only point "backwards" in a random
// order (so the hierarchy is a DAG), sometimes to uids that are not in the store.
export function genEntities(r) {
  const uids = [];
  for (const type of ENTITY_TYPES) for (const id of IDS) uids.push({ type, id });
  const n = r.int(2, 12);
  const chosen = [];
  const seen = new Set();
  while (chosen.length < n) {
    const u = r.pick(uids);
    const key = `${u.type}::${u.id}`;
    if (!seen.has(key)) { seen.add(key); chosen.push(u); }
  }
  const ents = chosen.map((uid, i) => {
    const parents = [];
    const np = i === 0 ? 0 : r.int(0, 2);
    for (let k = 0; k < np; k++) {
      const p = r.chance(0.85) ? chosen[r.int(0, i - 1)] : jsonUid(r);
      const pk = `${p.type}::${p.id}`;
      // A parent outside the store must not be one of the later entities (that could close
      // a cycle) nor the entity itself.
      if (!seen.has(pk) || chosen.indexOf(p) >= 0 && chosen.indexOf(p) < i) {
        if (!parents.some((q) => q.type === p.type && q.id === p.id)) parents.push(p);
      }
    }
    const e = { uid: uid, attrs: attrsFor(r, 0.7), parents };
    if (r.chance(0.004)) e.attrs.odd = oddJson(r);
    if (r.chance(0.5)) {
      e.tags = {};
      for (const t of TAG_NAMES) {
        if (r.chance(0.4)) e.tags[t] = jsonValue(r, r.pick(['Bool', 'Long', 'String', 'SetString', 'Entity']));
      }
    }
    return e;
  });
  // Action entities carry the action-group hierarchy (sometimes omitted: a missing action has
  // no ancestors, which is not an error).
  for (const a of ACTIONS) {
    if (r.chance(0.85)) {
      ents.push({ uid: { type: 'Action', id: a }, attrs: {},
        parents: ACTION_PARENTS[a].map((p) => ({ type: 'Action', id: p })) });
    }
  }
  return ents;
}

export function genRequest(r, entities) {
  const someUid = () => (r.chance(0.75) && entities.length > 0
    ? r.pick(entities.filter((e) => e.uid.type !== 'Action')).uid : jsonUid(r));
  return {
    principal: someUid(),
    action: { type: 'Action', id: r.pick(ACTIONS) },
    resource: someUid(),
    context: r.chance(0.03) ? { ...attrsFor(r, 0.75), odd: oddJson(r) } : attrsFor(r, 0.75),
  };
}

// ---------------------------------------------------------------------------------------
// Expression AST. Node kinds:
//   lit {v: BigInt|boolean|string}      var {name}           ent {type, id}
//   un {op: '!'|'-', n: 1..4, e}         bin {op, l, r}       has {e, path: [names]}
//   like {e, pat: [elem]} (elem: null = wildcard | one character)                  is {e, type, in?}
//   if {c, a, b}   set {items}   rec {items: [[key, expr]]}   attr {e, name, idx}
//   call {e, m, args}  (method)          fn {f, args} (extension function)
// Every node may carry `paren: true` (extra parentheses) and `esc` (escape style seed).

const LEVEL = { if: 0, or: 1, and: 2, rel: 3, add: 4, mul: 5, unary: 6, member: 7, primary: 8 };
const REL_OPS = ['==', '!=', '<', '<=', '>', '>=', 'in'];

function level(n) {
  switch (n.k) {
    case 'if': return LEVEL.if;
    case 'bin':
      if (n.op === '||') return LEVEL.or;
      if (n.op === '&&') return LEVEL.and;
      if (REL_OPS.includes(n.op)) return LEVEL.rel;
      return n.op === '*' ? LEVEL.mul : LEVEL.add;
    case 'has': case 'like': case 'is': return LEVEL.rel;
    case 'un': return LEVEL.unary;
    case 'lit': return typeof n.v === 'bigint' && n.v < 0n ? LEVEL.unary : LEVEL.primary;
    case 'attr': case 'call': return LEVEL.member;
    default: return LEVEL.primary;
  }
}

// Cedar string literal. `esc` picks, per character, between the plain character and one of
// its escapes, so the lexer's escape handling is exercised (the value is the same).
export function renderString(s, esc = 0, pattern = false) {
  const r = makeRng(esc);
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0);
    const fancy = esc !== 0 && r.chance(0.3);
    if (pattern && ch === '*') out += '\\*';
    else if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += fancy ? '\\u{a}' : '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\0') out += fancy ? '\\x00' : '\\0';
    else if (ch === "'" && fancy) out += "\\'";
    else if (fancy && cp < 0x80) out += `\\x${cp.toString(16).padStart(2, '0')}`;
    else if (fancy) out += `\\u{${cp.toString(16)}}`;
    else if (cp < 0x20) out += `\\u{${cp.toString(16)}}`;
    else out += ch;
  }
  return out + '"';
}

const renderUid = (type, id, esc) => `${type}::${renderString(id, esc)}`;

function renderAt(n, min) {
  const s = renderNode(n);
  return n.paren || level(n) < min ? `(${s})` : s;
}

export function renderNode(n) {
  switch (n.k) {
    case 'lit':
      if (typeof n.v === 'string') return renderString(n.v, n.esc);
      return String(n.v);
    case 'var': return n.name;
    case 'ent': return renderUid(n.type, n.id, n.esc);
    case 'un': return n.op.repeat(n.n) + renderAt(n.e, LEVEL.member);
    case 'bin': {
      const lv = level(n);
      if (lv === LEVEL.rel) return `${renderAt(n.l, LEVEL.add)} ${n.op} ${renderAt(n.r, LEVEL.add)}`;
      return `${renderAt(n.l, lv)} ${n.op} ${renderAt(n.r, lv + 1)}`;
    }
    case 'has': {
      const path = n.path.length === 1 && !isIdent(n.path[0])
        ? renderString(n.path[0], n.esc) : n.path.join('.');
      return `${renderAt(n.e, LEVEL.add)} has ${path}`;
    }
    case 'like': {
      let pat = '';
      for (const el of n.pat) pat += el === null ? '*' : renderString(el, n.esc, true).slice(1, -1);
      return `${renderAt(n.e, LEVEL.add)} like "${pat}"`;
    }
    case 'is':
      return `${renderAt(n.e, LEVEL.add)} is ${n.type}` + (n.in ? ` in ${renderAt(n.in, LEVEL.add)}` : '');
    case 'if': return `if ${renderAt(n.c, 0)} then ${renderAt(n.a, 0)} else ${renderAt(n.b, 0)}`;
    case 'set': return `[${n.items.map((e) => renderAt(e, 0)).join(', ')}]`;
    case 'rec':
      return `{${n.items.map(([k, e]) => `${isIdent(k) && !n.quote ? k : renderString(k, n.esc)}: ${renderAt(e, 0)}`).join(', ')}}`;
    case 'attr': {
      const base = renderAt(n.e, LEVEL.member);
      return isIdent(n.name) && !n.idx ? `${base}.${n.name}` : `${base}[${renderString(n.name, n.esc)}]`;
    }
    case 'call': return `${renderAt(n.e, LEVEL.member)}.${n.m}(${n.args.map((e) => renderAt(e, 0)).join(', ')})`;
    case 'fn': return `${n.f}(${n.args.map((e) => renderAt(e, 0)).join(', ')})`;
    default: throw new Error(`renderNode: unknown node ${n.k}`);
  }
}

export function renderPolicy(p) {
  let s = '';
  for (const [k, v] of p.annotations) s += v === null ? `@${k} ` : `@${k}(${renderString(v)}) `;
  const scope = (name, c) => {
    switch (c.op) {
      case 'all': return name;
      case '==': return `${name} == ${renderUid(c.type, c.id, c.esc)}`;
      case 'in': return `${name} in ${renderUid(c.type, c.id, c.esc)}`;
      case 'inset': return `${name} in [${c.uids.map((u) => renderUid(u.type, u.id, 0)).join(', ')}]`;
      case 'is': return `${name} is ${c.type}`;
      case 'isin': return `${name} is ${c.type} in ${renderUid(c.inType, c.id, c.esc)}`;
      default: throw new Error(`renderPolicy: scope ${c.op}`);
    }
  };
  s += `${p.effect}(${scope('principal', p.principal)}, ${scope('action', p.action)}, ${scope('resource', p.resource)})`;
  for (const c of p.conds) s += ` ${c.kind} { ${renderNode(c.e)} }`;
  return s + ';';
}

export const renderPolicySet = (policies) => policies.map(renderPolicy).join('\n');

// ---------------------------------------------------------------------------------------
// Type-directed expression generation.

const lit = (v) => ({ k: 'lit', v });
const V = (name) => ({ k: 'var', name });

class ExprGen {
  constructor(r) { this.r = r; }

  esc() { return this.r.chance(0.3) ? this.r.int(1, 1 << 30) : 0; }
  str() { return { k: 'lit', v: jsonString(this.r), esc: this.esc() }; }
  long() {
    const r = this.r;
    return lit(r.wpick([[10, BigInt(r.int(-3, 12))], [1, I64_MAX], [1, I64_MIN], [1, I64_MAX - 1n],
      [1, BigInt(r.int(-1e9, 1e9))], [1, 4611686018427387904n], [1, 3037000500n]]));
  }
  uid() { const u = jsonUid(this.r); return { k: 'ent', type: u.type, id: u.id, esc: this.esc() }; }
  action() { return { k: 'ent', type: 'Action', id: this.r.pick(ACTIONS), esc: 0 }; }

  // An expression meant to have type T (the ATTRS vocabulary plus Set/ext types). With a
  // small probability, an expression of an arbitrary type instead (type errors on purpose).
  gen(T, d) {
    const r = this.r;
    if (d > 0 && r.chance(0.04)) T = r.pick(ALL_TYPES);
    const n = this.genTyped(T, d);
    if (r.chance(0.03)) n.paren = true;
    return n;
  }

  // Reading an attribute of intended type T from principal/resource/context/another entity.
  attrOf(T, d) {
    const r = this.r;
    const names = ATTRS.filter(([, t]) => t === T).map(([k]) => k);
    const name = names.length && r.chance(0.9) ? r.pick(names) : r.pick(ATTRS)[0];
    const base = d <= 0 || r.chance(0.7)
      ? V(r.pick(['principal', 'resource', 'context', 'context', 'action']))
      : this.gen('Entity', d - 1);
    return { k: 'attr', e: base, name, idx: r.chance(0.15), esc: this.esc() };
  }

  // Leaf expressions, used at depth 0.
  leaf(T) {
    const r = this.r;
    switch (T) {
      case 'Bool': return r.chance(0.5) ? lit(r.chance(0.5)) : this.attrOf('Bool', 0);
      case 'Long': return r.chance(0.6) ? this.long() : this.attrOf('Long', 0);
      case 'String': return r.chance(0.6) ? this.str() : this.attrOf('String', 0);
      case 'Entity':
        return r.wpick([[3, V(r.pick(['principal', 'resource']))], [1, V('action')], [2, this.uid()],
          [1, this.action()], [1, this.attrOf('Entity', 0)]]);
      case 'ip': case 'decimal': case 'datetime': case 'duration':
        return r.chance(0.7) ? this.extLit(T) : this.attrOf(T, 0);
      case 'Record': return r.chance(0.5) ? V('context') : this.attrOf('Record', 0);
      default: return r.chance(0.5) ? { k: 'set', items: [] } : this.attrOf(T, 0);
    }
  }

  extLit(T) {
    const r = this.r;
    const [good, bad, fn] = {
      ip: [IPS_VALID, IPS_BAD, 'ip'], decimal: [DECIMALS_VALID, DECIMALS_BAD, 'decimal'],
      datetime: [DATETIMES_VALID, DATETIMES_BAD, 'datetime'],
      duration: [DURATIONS_VALID, DURATIONS_BAD, 'duration'],
    }[T];
    const arg = r.chance(0.08) ? r.pick(bad) : r.pick(good);
    return { k: 'fn', f: fn, args: [{ k: 'lit', v: arg, esc: 0 }] };
  }

  genTyped(T, d) {
    const r = this.r;
    if (d <= 0) return this.leaf(T);
    const g = (t) => this.gen(t, d - 1);
    const ifte = () => ({ k: 'if', c: g('Bool'), a: g(T), b: g(T) });
    const getTag = () => ({ k: 'call', e: g('Entity'), m: 'getTag', args: [this.tagName(d)] });
    switch (T) {
      case 'Bool': return r.wpick([
        [2, () => this.leaf('Bool')],
        [3, () => ({ k: 'bin', op: r.pick(['&&', '||']), l: g('Bool'), r: g('Bool') })],
        [2, () => ({ k: 'un', op: '!', n: r.wpick([[6, 1], [2, 2], [1, 3], [1, 4]]), e: g('Bool') })],
        [3, () => { const t = r.pick(['Long', 'Long', 'datetime', 'duration', 'String']);
          return { k: 'bin', op: r.pick(['<', '<=', '>', '>=']), l: g(t), r: g(t) }; }],
        [3, () => { const t = r.pick(ALL_TYPES.concat(['Entity', 'Long']));
          return { k: 'bin', op: r.pick(['==', '!=']), l: g(t), r: r.chance(0.9) ? g(t) : g(r.pick(ALL_TYPES)) }; }],
        [3, () => ({ k: 'bin', op: 'in', l: g('Entity'), r: r.chance(0.6) ? g('Entity') : g('SetEntity') })],
        [3, () => this.hasExpr(d)],
        [2, () => this.likeExpr(d)],
        [2, () => ({ k: 'is', e: g('Entity'), type: r.pick(ENTITY_TYPES.concat(['Action'])),
          in: r.chance(0.4) ? g(r.chance(0.7) ? 'Entity' : 'SetEntity') : undefined })],
        [3, () => { const t = r.pick(['SetString', 'SetLong', 'SetEntity']);
          const el = { SetString: 'String', SetLong: 'Long', SetEntity: 'Entity' }[t];
          return r.wpick([
            [2, { k: 'call', e: g(t), m: 'contains', args: [g(el)] }],
            [1, { k: 'call', e: g(t), m: r.pick(['containsAll', 'containsAny']), args: [g(t)] }],
            [1, { k: 'call', e: g(t), m: 'isEmpty', args: [] }]]); }],
        [2, () => ({ k: 'call', e: g('Entity'), m: 'hasTag', args: [this.tagName(d)] })],
        [1, getTag],
        [2, () => r.chance(0.5)
          ? { k: 'call', e: g('ip'), m: r.pick(['isIpv4', 'isIpv6', 'isLoopback', 'isMulticast']), args: [] }
          : { k: 'call', e: g('ip'), m: 'isInRange', args: [g('ip')] }],
        [2, () => ({ k: 'call', e: g('decimal'),
          m: r.pick(['lessThan', 'lessThanOrEqual', 'greaterThan', 'greaterThanOrEqual']), args: [g('decimal')] })],
        [1, ifte],
        [1, () => this.attrOf('Bool', d - 1)],
        [1, () => ({ k: 'attr', e: g('Record'), name: r.pick(['d', 'x', 'a', 'zz']), idx: r.chance(0.2), esc: 0 })],
      ])();
      case 'Long': return r.wpick([
        [3, () => this.leaf('Long')],
        [4, () => ({ k: 'bin', op: r.pick(['+', '-', '*']), l: g('Long'), r: g('Long') })],
        [1, () => { // near the 64-bit edges, so that + - * overflow (or just do not)
          const edge = lit(r.pick([I64_MAX, I64_MIN, I64_MAX - 1n, I64_MIN + 1n, 4611686018427387904n,
            3037000500n, -3037000500n, 9007199254740991n]));
          const other = g('Long');
          return r.chance(0.5) ? { k: 'bin', op: r.pick(['+', '-', '*']), l: edge, r: other }
            : { k: 'bin', op: r.pick(['+', '-', '*']), l: other, r: edge };
        }],
        [1, () => ({ k: 'un', op: '-', n: r.wpick([[6, 1], [2, 2], [1, 3], [1, 4]]), e: g('Long') })],
        [2, () => ({ k: 'call', e: g('duration'),
          m: r.pick(['toDays', 'toHours', 'toMinutes', 'toSeconds', 'toMilliseconds']), args: [] })],
        [1, getTag], [1, ifte], [2, () => this.attrOf('Long', d - 1)],
        [1, () => ({ k: 'attr', e: g('Record'), name: r.pick(['a', 'y']), idx: false, esc: 0 })],
      ])();
      case 'String': return r.wpick([[4, () => this.leaf('String')], [1, getTag], [1, ifte],
        [2, () => this.attrOf('String', d - 1)]])();
      case 'Entity': return r.wpick([[5, () => this.leaf('Entity')], [1, ifte], [1, getTag],
        [2, () => this.attrOf('Entity', d - 1)]])();
      case 'SetString': case 'SetLong': case 'SetEntity': {
        const el = { SetString: 'String', SetLong: 'Long', SetEntity: 'Entity' }[T];
        return r.wpick([
          [4, () => ({ k: 'set', items: Array.from({ length: r.int(0, 4) },
            () => (r.chance(0.9) ? g(el) : g(r.pick(ALL_TYPES)))) })],
          [2, () => this.attrOf(T, d - 1)], [1, ifte],
          [1, () => ({ k: 'set', items: [g(T), g(T)] })], // nested sets
        ])();
      }
      case 'Record': return r.wpick([
        [3, () => this.recordLit(d)], [2, () => this.leaf('Record')], [1, ifte],
        [1, () => ({ k: 'attr', e: g('Record'), name: 'c', idx: false, esc: 0 })],
      ])();
      case 'ip': return r.chance(0.8) ? this.leaf('ip') : ifte();
      case 'decimal': return r.chance(0.8) ? this.leaf('decimal') : ifte();
      case 'datetime': return r.wpick([[4, () => this.leaf('datetime')],
        [2, () => ({ k: 'call', e: g('datetime'), m: 'offset', args: [g('duration')] })],
        [1, () => ({ k: 'call', e: g('datetime'), m: 'toDate', args: [] })], [1, ifte]])();
      case 'duration': return r.wpick([[4, () => this.leaf('duration')],
        [1, () => ({ k: 'call', e: g('datetime'), m: 'toTime', args: [] })],
        [2, () => ({ k: 'call', e: g('datetime'), m: 'durationSince', args: [g('datetime')] })],
        [1, ifte]])();
      default: throw new Error(`genTyped: ${T}`);
    }
  }

  tagName(d) {
    const r = this.r;
    return r.chance(0.85) ? { k: 'lit', v: r.pick(TAG_NAMES), esc: this.esc() } : this.gen('String', d - 1);
  }

  recordLit(d) {
    const r = this.r;
    const keys = new Set();
    const items = [];
    for (let n = r.int(0, 3); n > 0; n--) {
      const [k, t] = r.pick(RECORD_FIELDS.concat([['sp ace', 'String'], ['if', 'Long']]));
      if (keys.has(k)) continue;
      keys.add(k);
      items.push([k, this.gen(t === 'Record2' ? 'Record' : t, d - 1)]);
    }
    return { k: 'rec', items, quote: r.chance(0.2), esc: this.esc() };
  }

  hasExpr(d) {
    const r = this.r;
    const base = r.wpick([[4, V(r.pick(['principal', 'resource', 'context']))], [1, this.gen('Entity', d - 1)],
      [1, this.gen('Record', d - 1)], [1, this.gen(r.pick(ALL_TYPES), d - 1)]]);
    let path;
    if (r.chance(0.25)) path = r.pick([['info', 'a'], ['info', 'c', 'x'], ['info', 'c'], ['info', 'zz'], ['owner', 'name'], ['level', 'a']]);
    else path = [r.chance(0.9) ? r.pick(ATTRS)[0] : r.pick(['zz', 'a', 'c', 'x'])];
    return { k: 'has', e: base, path, esc: this.esc() };
  }

  // The shape the authorizer's guard index files by value (src/cedar/authorize.c):
  // `V has a && V.a == literal` and then more. Also the near misses it must not file, or
  // must file and still get right: no `has` (an absent attribute is an error), the `has`
  // after the `==`, the operands swapped, a literal of another type, another conjunct first.
  guard(d) {
    const r = this.r;
    const v = V(r.pick(['principal', 'resource', 'context', 'action']));
    const kinds = ['Bool', 'Long', 'String', 'Entity'];
    const [name, T] = r.pick(ATTRS.filter(([, t]) => kinds.includes(t)));
    const value = { Bool: () => lit(r.chance(0.5)), Long: () => lit(BigInt(jsonLong(r))),
      String: () => this.str(), Entity: () => this.uid() }[r.chance(0.9) ? T : r.pick(kinds)]();
    const get = { k: 'attr', e: v, name, idx: r.chance(0.15), esc: this.esc() };
    const eq = r.chance(0.7) ? { k: 'bin', op: '==', l: get, r: value } : { k: 'bin', op: '==', l: value, r: get };
    const has = { k: 'has', e: v, path: [name], esc: this.esc() };
    const other = () => this.gen('Bool', 1);
    const parts = r.wpick([[8, [has, eq]], [1, [eq]], [1, [eq, has]], [2, [other(), has, eq]],
      [2, [this.hasExpr(1), has, eq]]]);
    if (r.chance(0.6)) parts.push(this.gen('Bool', d));
    return parts.reduce((l, x) => ({ k: 'bin', op: '&&', l, r: x }));
  }

  // A `like` whose pattern is derived from a string that also appears as a value, so matches
  // happen; wildcards replace random spans; literal stars come out as `\*`.
  likeExpr(d) {
    const r = this.r;
    const src = [...(r.chance(0.8) ? r.pick(STRINGS) : jsonString(r))];
    const pat = [];
    for (let i = 0; i < src.length; i++) {
      if (r.chance(0.25)) { pat.push(null); i += r.int(0, 2); continue; }
      if (r.chance(0.05)) continue; // drop a character: a near-miss
      pat.push(src[i]);
    }
    if (r.chance(0.2)) pat.push(null);
    if (r.chance(0.05)) for (let i = 0; i < 6; i++) pat.push(null, 'a'); // many wildcards
    return { k: 'like', e: this.gen('String', d - 1), pat, esc: this.esc() };
  }
}

function genScope(r, kind) {
  const uidOf = () => {
    if (kind === 'action') return { type: 'Action', id: r.pick(ACTIONS) };
    return jsonUid(r);
  };
  const ops = kind === 'action'
    ? [[4, 'all'], [3, '=='], [2, 'in'], [2, 'inset']]
    : [[5, 'all'], [2, '=='], [2, 'in'], [2, 'is'], [1, 'isin']];
  const op = r.wpick(ops);
  const u = uidOf();
  const esc = r.chance(0.2) ? r.int(1, 1 << 30) : 0;
  switch (op) {
    case 'all': return { op };
    case '==': case 'in': return { op, type: u.type, id: u.id, esc };
    case 'inset': return { op, uids: Array.from({ length: r.int(1, 3) }, uidOf) };
    case 'is': return { op, type: r.pick(ENTITY_TYPES) };
    case 'isin': return { op, type: r.pick(ENTITY_TYPES), inType: u.type, id: u.id, esc };
    default: throw new Error(op);
  }
}

export function genPolicy(r) {
  const eg = new ExprGen(r);
  const annotations = [];
  if (r.chance(0.15)) {
    for (const k of ['advice', 'owner', 'note']) {
      if (r.chance(0.5)) annotations.push([k, r.chance(0.3) ? null : jsonString(r)]);
    }
  }
  const conds = [];
  for (let n = r.wpick([[2, 0], [5, 1], [2, 2], [1, 3]]); n > 0; n--) {
    conds.push({ kind: r.chance(0.75) ? 'when' : 'unless', e: eg.gen('Bool', r.int(1, 4)) });
  }
  if (r.chance(0.25)) conds.unshift({ kind: r.chance(0.9) ? 'when' : 'unless', e: eg.guard(r.int(1, 3)) });
  return {
    annotations,
    effect: r.chance(0.8) ? 'permit' : 'forbid',
    principal: genScope(r, 'principal'),
    action: genScope(r, 'action'),
    resource: genScope(r, 'resource'),
    conds,
  };
}

export function genCase(seed, nRequests) {
  const r = makeRng(seed);
  const policies = Array.from({ length: r.int(1, 8) }, () => genPolicy(r));
  const entities = genEntities(r);
  const requests = Array.from({ length: nRequests }, () => genRequest(r, entities));
  return { seed, policies, entities, requests };
}
