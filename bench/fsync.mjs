// fsync.mjs — what one durable write costs on this disk: append ~300 bytes to a file in
// DIR and fdatasync it (what SQLite's WAL commit with synchronous=FULL does), N times.
//   node fsync.mjs DIR [N]      prints "fsync median_us p99_us"
import { openSync, writeSync, fdatasyncSync, closeSync, rmSync } from 'node:fs';
import path from 'node:path';
const [dir, nArg] = process.argv.slice(2);
const n = Number(nArg || 200);
const file = path.join(dir, 'fsync-probe');
const fd = openSync(file, 'a');
const rec = Buffer.alloc(300, 'r');
const us = [];
for (let i = 0; i < n; i++) {
  const t0 = process.hrtime.bigint();
  writeSync(fd, rec);
  fdatasyncSync(fd);
  us.push(Number(process.hrtime.bigint() - t0) / 1000);
}
closeSync(fd);
rmSync(file);
us.sort((a, b) => a - b);
console.log(`fsync ${us[Math.floor(n / 2)].toFixed(0)} ${us[Math.floor(n * 0.99)].toFixed(0)}`);
