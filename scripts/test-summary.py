#!/usr/bin/env python3
"""test-summary.py — counts individual test cases across meson test logs.

Each meson test is a program; many run many cases (cmocka, node --test, the Cedar
corpus runner). We read each program's output for its own counts:
  cmocka:        "[  PASSED  ] N test(s)."  /  "[  FAILED  ] N test(s)"
  node --test:   "# pass N" / "# fail N"
  anything else: a line "N passed, N failed" (optionally "word: N passed, N failed")
A program with no counts counts as one case. A program that meson saw fail (crash,
sanitizer report, timeout) counts at least one failure even if its own counts say 0.
Prints one line per program and ends with "N passed, N failed".
"""
import json, re, sys

CMOCKA_P = re.compile(r"^\[  PASSED  \] (\d+) test")
CMOCKA_F = re.compile(r"^\[  FAILED  \] (\d+) test")
NODE_P = re.compile(r"^# pass (\d+)")
NODE_F = re.compile(r"^# fail (\d+)")
PLAIN = re.compile(r"^(?:\w+: )?(\d+) passed, (\d+) failed")

def counts(out):
    p = f = 0
    found = False
    for line in out.splitlines():
        line = line.strip()
        for rx, which in ((CMOCKA_P, 'p'), (CMOCKA_F, 'f'), (NODE_P, 'p'), (NODE_F, 'f')):
            m = rx.match(line)
            if m:
                found = True
                if which == 'p': p += int(m.group(1))
                else: f += int(m.group(1))
        m = PLAIN.match(line)
        if m:
            found = True
            p += int(m.group(1)); f += int(m.group(2))
    return found, p, f

total_p = total_f = 0
for path in sys.argv[1:]:
    build = path.split('/')[0]
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        print(f"{build}: no test log ({e})")
        total_f += 1
        continue
    for line in lines:
        t = json.loads(line)
        ok = t.get('result') in ('OK', 'EXPECTEDFAIL')
        skipped = t.get('result') == 'SKIP'
        if skipped:
            print(f"  skip  {build}/{t['name']}")
            continue
        found, p, f = counts((t.get('stdout') or '') + '\n' + (t.get('stderr') or ''))
        if not found:
            p, f = (1, 0) if ok else (0, 1)
        elif not ok and f == 0:
            f = 1
        total_p += p; total_f += f
        print(f"  {'ok  ' if ok else 'FAIL'}  {build}/{t['name']}: {p} passed, {f} failed")
print(f"{total_p} passed, {total_f} failed")
sys.exit(1 if total_f else 0)
