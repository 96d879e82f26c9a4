// wasm_diff.mjs — differential test of the Cedar extension types (src/cedar/ext/) against
// cedar-wasm, the reference implementation (pinned in tests/cedar/diff/package.json).
// Hand-picked edge cases plus seeded random inputs go through wasm_driver (the C code);
// for each, a one-policy authorization in cedar-wasm must agree: an error where C
// rejects, and Allow for a condition built from the values C computed. The inputs reach
// Cedar through the context, so they are evaluated, not checked by the policy parser.
// Usage: node wasm_diff.mjs <path to wasm_driver> [random cases per kind]
// Prints "N passed, N failed"; exit 77 (skipped) when cedar-wasm is not installed.
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const wasmPath = path.join(here, '../diff/node_modules/@cedar-policy/cedar-wasm/nodejs/cedar_wasm.js');
if (!existsSync(wasmPath)) {
  console.log('cedar-wasm not installed (npm ci in tests/cedar/diff): skipped');
  process.exit(77);
}
const cedar = createRequire(import.meta.url)(wasmPath);
const driver = process.argv[2];
const N = Number(process.argv[3] || 1000);

function decide(cond, context) {
  const r = cedar.isAuthorized({
    principal: { type: 'U', id: 'a' }, action: { type: 'A', id: 'a' }, resource: { type: 'R', id: 'a' },
    context, entities: [],
    policies: { staticPolicies: `permit(principal, action, resource) when { ${cond} };` },
  });
  if (r.type !== 'success') throw new Error(`cedar-wasm call failed: ${JSON.stringify(r)}`);
  return r.response.diagnostics.errors.length ? 'error' : r.response.decision;
}

// Seeded LCG, so a failure reproduces.
let seed = 12345;
const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
const pick = (a) => a[rand(a.length)];
const randStr = (alpha, max) => { let s = ''; for (let i = rand(max + 1); i > 0; i--) s += pick(alpha); return s; };
const pad2 = (n) => String(n).padStart(2, '0');

const cases = [];
const add = (kind, a, b) => cases.push(b === undefined ? `${kind}\t${a}` : `${kind}\t${a}\t${b}`);

const fixed = {
  ip: ['127.0.0.1', '::', '::1', '1::', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8',
    '1:2:3:4:5:6:7:8::', '::1:2:3:4:5:6:7:8', '1::2::3', ':::', ':1::', '1:', '::ffff:1.2.3.4', '::1.2.3.4',
    '::ffff:0102:0304', '1.2.3.4/8/9', '01.2.3.4', '1.2.3.04', '0.0.0.0/0', '1.2.3.4/00', '1.2.3.4/032', '1.2.3.4/33',
    '::/128', '::/0128', '::/129', '::/', '1.2.3.4/', '/8', '1.2.3', '1.2.3.4.5', '256.1.1.1', '00001::', '0001::',
    'ABCD:EF01:2345:6789:ABCD:EF01:2345:6789/128', '0ABCD:EF01:2345:6789:ABCD:EF01:2345:6789/1', '127.0.0.1/7',
    '127.0.0.1/8', '::1/127', '224.0.0.0/3', '224.0.0.0/4', '239.255.255.255', '240.0.0.0', 'ff00::/7', 'ff00::/8',
    ' 1.2.3.4', '1.2.3.4 ', '1.2.3.4/+8', '1.2.3.4/-0', '1:2:3:4:5:6:1.2.3.4', '[::1]', '::1%eth0', '',
    '0:0:1:0:0:1:0:0', '::ffff:7f00:1'],
  decimal: ['1.0', '-1.0', '-0.5', '-0.0', '-0.0001', '0.00000', '0.12345', '1.', '.1', '1', '-.1', '+1.0',
    '922337203685477.5807', '922337203685477.5808', '-922337203685477.5808', '-922337203685477.5809',
    '-922337203685478.0', '1000000000000000.0', '00000000000000000000000001.5', '99999999999999999999.0', '1.05',
    '1.0 ', '1,0', '--1.0', '1.-0', '1e3.0', '\u0661.0'],
  duration: ['', '-', '0', '0ms', '-0ms', '1d2h3m4s5ms', '1ms2s', '1h1h', '1m', '1s1ms', 'd', '1d-2h', '1mss', '1.5h',
    '9223372036854775807ms', '9223372036854775808ms', '-9223372036854775808ms', '-9223372036854775809ms',
    '18446744073709551616ms', '106751991167d', '106751991168d', '-106751991167d7h12m55s808ms',
    '-106751991167d7h12m55s809ms', '106751991167d7h12m55s807ms', '106751991167d7h12m55s808ms', '1D', ' 1d', '1d ', '01d'],
  datetime: ['2024-10-15', '2024-10-15T11:38:02Z', '2024-10-15T11:38:02.101Z', '2024-10-15T11:38:02.101+1134',
    '2024-10-15T11:38:02-1134', '2024-02-29', '2023-02-29', '1900-02-29', '2000-02-29', '2100-02-29', '0000-02-29',
    '0000-01-01', '9999-12-31T23:59:59.999-2359', '0000-01-01T00:00:00+2359', '1969-12-31T23:59:59.999Z',
    '1970-01-01T00:00:00+0001', '2024-01-01T24:00:00Z', '2024-01-01T23:60:00Z', '2024-01-01T23:59:60Z',
    '2024-01-01T00:00:00+2400', '2024-01-01T00:00:00+0060', '2024-01-01T00:00:00', '2024-01-01T00:00:00.1Z',
    '2024-01-01T00:00:00.0001Z', '2024-01-01t00:00:00Z', '2024-01-01T00:00:00z', '2024-10-15Z', '2024-1-01',
    '10000-01-01', '-001-01-01', '2024-01-01T00:00:00+01:00', '2024-01-01T00:00:00.000+0000', '2024-01-01 00:00:00Z',
    '2024-00-10', '2024-04-31', '2024-12-31T', '2024-01-01T00:00:00\u27950000'],
};
for (const [kind, list] of Object.entries(fixed)) for (const s of list) add(kind, s);
for (const [a, b] of [['10.0.0.1/24', '10.0.0.0/24'], ['10.0.0.0/24', '10.0.0.0/16'], ['10.0.0.0/16', '10.0.0.0/24'],
  ['10.0.0.1', '10.0.0.0/24'], ['1.2.3.4', '::1'], ['::1', '::/0'], ['0.0.0.0/0', '1.2.3.4/0'], ['10.0.0.0/8', '10.0.0.1'],
  ['2001:db8::/48', '2001:db8::/32'], ['::1', '::1/128'], ['10.0.0.1', '10.0.0.1/32']]) add('range', a, b);
const edges = ['9223372036854775807', '-9223372036854775808', '9223372036854775806', '-9223372036854775807', '0', '-1',
  '1', '-86400000', '-86400001', '-9223372036800000000', '-9223372036854775000'];
for (const a of edges) for (const b of edges) add('offset', a, b);

// Random inputs: token soup (mostly invalid), and valid values with small mutations.
const mutate = (s) => {
  for (let k = rand(3); k > 0; k--) {
    const i = rand(s.length + 1), r = rand(3);
    if (r === 0) s = s.slice(0, i) + s.slice(i + 1);
    else if (r === 1) s = s.slice(0, i) + pick(':.0f/1') + s.slice(i);
    else s = s.slice(0, i) + '0' + s.slice(i);
  }
  return s;
};
const v4 = () => `${rand(256)}.${rand(256)}.${rand(256)}.${rand(256)}`;
const v6 = () => {
  const g = Array.from({ length: 8 }, () => (rand(3) ? '0' : rand(65536).toString(16).padStart(rand(2) ? 4 : 1, '0')));
  if (!rand(3)) return g.join(':');
  const a = rand(8), b = a + rand(8 - a);
  return g.slice(0, a).join(':') + '::' + g.slice(b + 1).join(':');
};
const ipTokens = ['0', '1', '00', '01', '255', '256', '127', '224', ':', '::', '.', '/', 'ff', 'FFFF', '12345', 'g', '32', '128', '129', '-', ' '];
for (let i = 0; i < N; i++) {
  add('ip', randStr(ipTokens, 12));
  const withPrefix = (rand(2) ? v4() : v6()) + (rand(2) ? '/' + rand(140) : '');
  add('ip', rand(3) ? withPrefix : mutate(withPrefix));
  add('ip', `${pick(['127.' + rand(256) + '.0.1', '224.1.2.3', '239.0.0.1', 'ff02::1', '::1', 'ff00::'])}/${rand(130)}`);
  add('range', `${v4()}/${rand(33)}`, `${rand(2) ? 10 : rand(256)}.${rand(256)}.0.0/${rand(33)}`);
  add('range', `10.${rand(2)}.${rand(256)}.${rand(256)}/${rand(33)}`, `10.${rand(2)}.0.0/${rand(33)}`);
  add('range', `${v6()}/${rand(129)}`, `${v6()}/${rand(129)}`);
  add('decimal', randStr('0123456789.-+ e', 10));
  add('decimal', (rand(2) ? '-' : '') + randStr('0123456789', 16) + '.' + randStr('0123456789', 5));
  const units = ['d', 'h', 'm', 's', 'ms'];
  let d = rand(3) ? '' : '-';
  for (let j = 0; j < 1 + rand(4); j++) {
    d += (rand(10) ? String(rand(100000)) : '9'.repeat(1 + rand(20))) + (rand(8) ? units[Math.min(4, j + rand(3))] : pick(units));
  }
  add('duration', rand(5) ? d : mutate(d));
  const date = `${String(rand(10000)).padStart(4, '0')}-${pad2(rand(14))}-${pad2(rand(33))}`;
  const time = `T${pad2(rand(25))}:${pad2(rand(61))}:${pad2(rand(61))}${rand(2) ? '.' + String(rand(1000)).padStart(3, '0') : ''}`;
  const zone = pick(['Z', `+${pad2(rand(25))}${pad2(rand(61))}`, `-${pad2(rand(25))}${pad2(rand(61))}`, '', 'z']);
  add('datetime', rand(4) ? date + time + zone : date);
}

const out = execFileSync(driver, { input: cases.join('\n') + '\n', maxBuffer: 1 << 28 })
  .toString().trim().split('\n').map((l) => JSON.parse(l));
if (out.length !== cases.length) throw new Error(`driver answered ${out.length} of ${cases.length} cases`);

let passed = 0, failed = 0;
function expect(c, cond, context, want) {
  const got = decide(cond, context);
  if (got === want) passed++;
  else { failed++; console.log(`MISMATCH ${JSON.stringify(c)}\n  ${cond}\n  want ${want}, cedar-wasm says ${got}`); }
}
const epoch = 'datetime("1970-01-01")';
for (const c of out) {
  const s = c.s;
  switch (c.kind) {
    case 'ip':
      if (!c.ok) expect(c, 'ip(context.s) == ip(context.s)', { s }, 'error');
      else expect(c, 'ip(context.s) == ip(context.c) && ip(context.fmt) == ip(context.s) && ip(context.s).isLoopback() == context.lo'
        + ' && ip(context.s).isMulticast() == context.mc && ip(context.s).isIpv4() == context.v4 && ip(context.s).isIpv6() != context.v4',
      { s, c: c.c, fmt: c.fmt, lo: c.lo, mc: c.mc, v4: c.v4 }, 'allow');
      break;
    case 'range':
      if (!c.ok) expect(c, 'ip(context.s) == ip(context.b)', { s, b: c.b }, 'error');
      else expect(c, 'ip(context.s).isInRange(ip(context.b)) == context.r && (ip(context.s) == ip(context.b)) == context.eq',
        { s, b: c.b, r: c.r, eq: c.eq }, 'allow');
      break;
    case 'decimal':
      if (!c.ok) expect(c, 'decimal(context.s) == decimal(context.s)', { s }, 'error');
      else expect(c, 'decimal(context.s) == decimal(context.c) && decimal(context.s).lessThan(decimal("0.0")) == context.neg',
        { s, c: c.c, neg: c.neg }, 'allow');
      break;
    case 'duration':
      if (!c.ok) expect(c, 'duration(context.s) == duration(context.s)', { s }, 'error');
      else expect(c, `duration(context.s) == duration(context.ms) && duration(context.s).toMilliseconds() == ${c.ms}`
        + ` && duration(context.s).toSeconds() == ${c.seconds} && duration(context.s).toMinutes() == ${c.minutes}`
        + ` && duration(context.s).toHours() == ${c.hours} && duration(context.s).toDays() == ${c.days}`,
      { s, ms: c.ms + 'ms' }, 'allow');
      break;
    case 'datetime':
      if (!c.ok) expect(c, 'datetime(context.s) == datetime(context.s)', { s }, 'error');
      else expect(c, `datetime(context.s) == ${epoch}.offset(duration(context.ms)) && datetime(context.s).toTime() == duration(context.time)`
        + ` && datetime(context.s).toDate() == ${epoch}.offset(duration(context.date))`,
      { s, ms: c.ms, time: c.time, date: c.date }, 'allow');
      break;
    case 'offset': {
      const ctx = { a: s + 'ms', b: c.b + 'ms' };
      const base = `${epoch}.offset(duration(context.a))`, moved = `${base}.offset(duration(context.b))`;
      if (!c.ok) { expect(c, `${moved} == ${base}`, ctx, 'error'); break; }
      expect(c, `${moved} == ${epoch}.offset(duration(context.r)) && ${moved}.toTime() == duration(context.time)`
        + ` && ${moved}.durationSince(${base}) == duration(context.b)`, { ...ctx, r: c.r, time: c.time }, 'allow');
      if (c.date === null) expect(c, `${moved}.toDate() == ${base}`, ctx, 'error');
      else expect(c, `${moved}.toDate() == ${epoch}.offset(duration(context.d))`, { ...ctx, d: c.date }, 'allow');
      break;
    }
    default:
      failed++;
      console.log(`driver did not understand ${JSON.stringify(c)}`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
