// mutate.mjs — policy texts on the edge of Cedar's grammar, for the parse-verdict check of
// run.mjs: toolgate must accept exactly the policy sets cedar-wasm accepts. A mutant is a
// generated policy set with one policy changed by a targeted construct (an extra condition,
// scope or annotation that is valid or invalid for a precise reason) or by a random edit
// (a token inserted or a character deleted somewhere).

import { makeRng } from './gen.mjs';

// Conditions: each valid or invalid for one reason (named in the comment when it is subtle).
const CONDITIONS = [
  '1 == 2 == 3',                 // relations do not chain
  '(1 == 2) == false',
  '-----1', '----1', '!!!!!true', '!!!!true', '!-1', '-!1',
  'principal.in', 'principal["in"]', 'principal has in', 'principal has "in"', 'principal.if',
  '{a: 1, a: 2}', '{a: 1, "a": 2}', '{"if": 1}', '{if: 1}', '[1,]', '{a: 1,}', '[]', '{}',
  'foo(1)', 'principal.foo()', 'principal.isEmpty(1)', 'principal.contains()', 'isEmpty([])',
  'ip("1.2.3.4", 1)', 'decimal()', 'ip', 'principal.getTag("a", "b")',
  '9223372036854775807 == 1', '-9223372036854775808 == 1', '9223372036854775808 == 1',
  '- 9223372036854775808 == 1', '-(9223372036854775808) == 1', '0x10 == 16', '01 == 1',
  '"\\x7f" == ""', '"\\x80" == ""', '"\\u{10FFFF}" == ""', '"\\u{110000}" == ""',
  '"\\u{d800}" == ""', '"\\u{}" == ""', '"\\u{0000001}" == ""', '"\\q" == ""', '"\\*" == ""',
  '"a" like "\\*"', '"a" like "\\a"', '"a" like "a**"', '"a" like principal',
  'if true then 1', 'if true then 1 else 2 == 2', '1 + if true then 1 else 2 == 2',
  'principal is User', 'principal is User::"a"', 'principal is User in Group::"g"',
  'principal is __cedar::X', 'principal is A::B::C in [User::"a"]',
  '__cedar::X::"a" == principal', 'A :: B :: "x" == principal', 'A::B::"x"::"y" == principal',
  'principal has a.b.c', 'principal has "a".b', 'principal has a."b"', 'principal has a.if',
  'context["a"].b["c"] == 1', 'context.a.b.c.d.e.f == 1', 'context.a(1)', 'context.1',
  'principal in [User::"a", ]', 'true && && false', 'true || false ||', '(((((1)))))',
  'principal == principal // comment\n', '/* c */ true', 'true /* unterminated',
  '"unterminated', '\'single\' == ""', 'true;', '', ' ',
];
const SCOPES = [
  ['principal', 'principal is User in [User::"a"]'], ['principal', 'principal in [User::"a"]'],
  ['principal', 'principal == User'], ['principal', 'principal is User::"a"'],
  ['action', 'action is Action'], ['action', 'action in [Action::"a", Action::"b",]'],
  ['action', 'action in []'], ['action', 'action == [Action::"a"]'],
  ['resource', 'resource in [Doc::"a"]'], ['resource', 'resource == context'],
  ['principal', 'principal in Group::"g" in Group::"h"'], ['principal', 'principal == User::"a\\u{1F600}"'],
  ['resource', 'resource is Doc in Doc::"a" when'], ['principal', 'p'],
];
const ANNOTATIONS = ['@a @a', '@a("x") @b("y")', '@a("x" "y")', '@1a', '@a(x)', '@a()', '@a("\\u{1F600}")',
  '@if("x")', '@__cedar("x")', '@a("x")@b', '@', '@a("x"', '@A::b("x")'];
const TOKENS = [';', ')', '(', '==', '.', ',', '"', 'if', 'in', '-', '!', '@a', '[', ']', '{', '}', '::',
  'principal', 'when', 'unless', '&&', 'like', 'has', 'is', '*', '\\', '?principal', 'permit'];

// Returns {text, how}: the policy set `policyTexts` (rendered policies) with policy k mutated.
export function mutate(seed, policyTexts) {
  const r = makeRng(seed);
  const k = r.int(0, policyTexts.length - 1);
  let p = policyTexts[k];
  let how;
  switch (r.int(0, 4)) {
    case 0: case 1: {
      const c = r.pick(CONDITIONS);
      how = `condition ${JSON.stringify(c)}`;
      p = p.replace(/;$/, ` ${r.chance(0.5) ? 'when' : 'unless'} { ${c} };`);
      break;
    }
    case 2: {
      const [slot, s] = r.pick(SCOPES);
      how = `scope ${JSON.stringify(s)}`;
      // The scope is "effect(principal…, action…, resource…)"; replace one part.
      const m = p.match(/^((?:@[^(]*\([^)]*\) |@\w+ )*)(permit|forbid)\((.*?), (action.*?), (resource.*?)\)( (?:when|unless) \{.*)?;$/s);
      if (!m) { how += ' (not applied)'; break; }
      const parts = { principal: m[3], action: m[4], resource: m[5] };
      parts[slot] = s;
      p = `${m[1]}${m[2]}(${parts.principal}, ${parts.action}, ${parts.resource})${m[6] ?? ''};`;
      break;
    }
    case 3: {
      const a = r.pick(ANNOTATIONS);
      how = `annotation ${JSON.stringify(a)}`;
      p = `${a} ${p}`;
      break;
    }
    default: {
      const at = r.int(0, p.length);
      if (r.chance(0.5)) {
        const t = r.pick(TOKENS);
        how = `token ${JSON.stringify(t)} at ${at}`;
        p = `${p.slice(0, at)} ${t} ${p.slice(at)}`;
      } else {
        how = `character ${at} deleted`;
        p = p.slice(0, at) + p.slice(at + 1);
      }
    }
  }
  const texts = policyTexts.slice();
  texts[k] = p;
  // A deleted character may leave half a surrogate pair; the file holds U+FFFD then, so the
  // reference must see the same.
  return { text: Buffer.from(texts.join('\n'), 'utf8').toString('utf8'), how: `policy${k}: ${how}` };
}
