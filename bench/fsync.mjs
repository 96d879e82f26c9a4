// fsync.mjs — what one durable write costs on this disk: append ~300 bytes to a file in
// DIR and fdatasync it (what SQLite's WAL commit with synchronous=FULL does), N times.
//   node fsync.mjs DIR [N] [GAP_US]      prints "fsync median_us p99_us"
// GAP_US (default 0) idles that long, asleep, before each write. Back to back (0), the
// disk's path stays busy; a gateway serving one call at a time writes after an idle gap
// (the rest of the call's round trip), and on this VM such a write costs more: 288–463
// against 209–313 µs median, four alternating pairs (docs/performance.md, seventh round).
import { openSync, writeSync, fdatasyncSync, closeSync, rmSync } from 'node:fs';
import path from 'node:path';
const [dir, nArg = '200', gapArg = '0'] = process.argv.slice(2);
if (!dir || !/^[1-9][0-9]*$/.test(nArg) || !/^[0-9]+$/.test(gapArg)) {
  console.error('usage: node fsync.mjs DIR [N ≥ 1] [GAP_US ≥ 0]');
  process.exit(2);
}
const n = Number(nArg);
const gapMs = Number(gapArg) / 1000;
const file = path.join(dir, `fsync-probe-${process.pid}`);
const fd = openSync(file, 'a');
const rec = Buffer.alloc(300, 'r');
const idle = new Int32Array(new SharedArrayBuffer(4)); // Atomics.wait: a sub-ms sleep
const us = [];
for (let i = 0; i < n; i++) {
  if (gapMs > 0) Atomics.wait(idle, 0, 0, gapMs);
  const t0 = process.hrtime.bigint();
  writeSync(fd, rec);
  fdatasyncSync(fd);
  us.push(Number(process.hrtime.bigint() - t0) / 1000);
}
closeSync(fd);
rmSync(file);
us.sort((a, b) => a - b);
console.log(`fsync ${us[Math.floor(n / 2)].toFixed(0)} ${us[Math.floor(n * 0.99)].toFixed(0)}`);
