#!/usr/bin/env bash
# test.sh — `make test`: installs what the tests need, builds the normal and the
# ASan/UBSan builds, runs every test suite in both, and ends with one line
# "N passed, N failed" counting individual test cases (scripts/test-summary.py).
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test || exit 1

# Test tooling from npm (the official MCP SDK, conformance suite, cedar-wasm, …):
# every folder with a package.json gets `npm ci` unless its node_modules is current.
for pj in tests/*/package.json tests/*/*/package.json bench/package.json; do
  [ -f "$pj" ] || continue
  d=$(dirname "$pj")
  if [ ! -f "$d/node_modules/.package-lock.json" ] || [ "$d/package-lock.json" -nt "$d/node_modules/.package-lock.json" ]; then
    (cd "$d" && npm ci --no-audit --no-fund --loglevel=error) || exit 1
  fi
done

status=0
[ -f build/build.ninja ] || meson setup build >/dev/null || exit 1
ninja -C build || exit 1
[ -f build-asan/build.ninja ] || meson setup build-asan -Dbuildtype=debug \
  -Db_sanitize=address,undefined -Db_lundef=false >/dev/null || exit 1
ninja -C build-asan || exit 1

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# meson's own default multiplier keeps slow machines from timing out.
mult=${TEST_TIMEOUT_MULTIPLIER:-3}
meson test -C build --no-rebuild --print-errorlogs -t "$mult" || status=1
meson test -C build-asan --no-rebuild --print-errorlogs -t "$mult" || status=1

python3 scripts/test-summary.py build/meson-logs/testlog.json build-asan/meson-logs/testlog.json || status=1
exit $status
