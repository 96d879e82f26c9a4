#!/bin/sh
# fuzz.sh SRCROOT OUTDIR [SECONDS] — builds tests/cedar/fuzz_cedar.c with clang-14
# (libFuzzer + ASan + UBSan) and fuzzes the Cedar parser and evaluator for SECONDS
# (default 30). Prints "1 passed, 0 failed" or "0 passed, 1 failed" for the test summary.
set -u
src=$1 out=$2 secs=${3:-30}
mkdir -p "$out/corpus"
bin="$out/fuzz_cedar"
if ! clang-14 -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
     -fno-sanitize-recover=undefined -I"$src/src" $(pkg-config --cflags jansson) \
     "$src/tests/cedar/fuzz_cedar.c" "$src"/src/cedar/*.c "$src"/src/cedar/ext/*.c \
     "$src"/src/common/*.c $(pkg-config --libs jansson libcrypto) -o "$bin"; then
  echo "fuzz_cedar: build failed"; echo "0 passed, 1 failed"; exit 1
fi
# seeds: a few policies that reach every part of the grammar
printf 'permit(principal in Group::"g", action, resource) when { principal.n + 1 > 0 && principal.s like "*x*" };\n---\n{"a":1}' > "$out/corpus/seed1"
printf '@id("x") forbid(principal is User in Group::"g", action in [Action::"read"], resource) unless { context has a.b || ip("10.0.0.1").isInRange(ip("10.0.0.0/8")) };' > "$out/corpus/seed2"
printf 'permit(principal, action, resource) when { if principal.r.k.contains(2) then decimal("1.5").lessThan(decimal("2.0")) else datetime("2024-01-01").offset(duration("1d")) > datetime("2024-01-01") };' > "$out/corpus/seed3"
if "$bin" -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=1024 \
     -artifact_prefix="$out/" "$out/corpus" > "$out/fuzz.log" 2>&1; then
  tail -n 3 "$out/fuzz.log"; echo "1 passed, 0 failed"
else
  tail -n 40 "$out/fuzz.log"; echo "0 passed, 1 failed"; exit 1
fi
