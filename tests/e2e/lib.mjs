// lib.mjs — shared harness for toolgate's end-to-end tests.
//
// Starts real processes (toolgate, the demo server, server-everything, small SDK-based
// fixture servers) on 127.0.0.1, connects the official MCP SDK client, and cleans up
// after each test. Binaries come from the environment (meson passes them):
//   TOOLGATE_BIN  path to build/toolgate
//   DEMO_BIN      path to build/toolgate-demo-atlassian
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const TOOLGATE_BIN = process.env.TOOLGATE_BIN || path.join(here, '../../build/toolgate');
export const DEMO_BIN = process.env.DEMO_BIN || path.join(here, '../../build/toolgate-demo-atlassian');
export const EVERYTHING_JS = path.join(here, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function waitForPort(port, ms, proc, what) {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (proc && proc.exitCode !== null) {
        reject(new Error(`${what} exited with ${proc.exitCode} before listening:\n${proc.logs()}`));
        return;
      }
      const s = net.connect(port, '127.0.0.1');
      s.on('connect', () => { s.destroy(); resolve(); });
      s.on('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`${what} did not listen on ${port} within ${ms} ms:\n${proc ? proc.logs() : ''}`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

// Spawns a process, keeps its output (bounded) for error messages.
export function start(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let out = '';
  const keep = (d) => { out += d.toString(); if (out.length > 200000) out = out.slice(-100000); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.logs = () => out;
  child.stop = () => new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) { resolve(child.exitCode); return; }
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', (code) => { clearTimeout(t); resolve(code); });
    child.kill('SIGTERM');
  });
  return child;
}

// YAML writer for the small subset our configurations use (maps, lists, scalars).
function yaml(v, indent = '') {
  if (Array.isArray(v)) {
    if (v.length === 0) return ' []';
    return v.map((x) => {
      if (x !== null && typeof x === 'object') {
        const body = yaml(x, indent + '  ').replace(/^\n\s*/, '');
        return `\n${indent}- ${body}`;
      }
      return `\n${indent}- ${JSON.stringify(x)}`;
    }).join('');
  }
  if (v !== null && typeof v === 'object') {
    return Object.entries(v).map(([k, x]) => {
      if (x !== null && typeof x === 'object') return `\n${indent}${k}:${yaml(x, indent + '  ')}`;
      return `\n${indent}${k}: ${JSON.stringify(x)}`;
    }).join('');
  }
  return ` ${JSON.stringify(v)}`;
}

export function demoUpstream(extra = {}) {
  return { name: 'atlassian', transport: 'stdio', command: [DEMO_BIN], ...extra };
}

// A gateway in front of the demo server with the demo catalog, the policies in policyDir
// (its entities.json), a change window that is always open, API keys, strict audit, an
// admin listener on adminPort and the given approvals section (approvals tests).
export function approvalsConfig({ policyDir, instance, adminPort, approvals }) {
  const days = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
  return {
    upstreams: [demoUpstream()],
    catalog: { presets: [path.join(here, '../../presets/demo-atlassian.yaml')] },
    policy: {
      policies: policyDir,
      entities: path.join(policyDir, 'entities.json'),
      change_windows: { always: { days, from: '00:00', to: '24:00', tz: 'UTC' } },
      in_change_window: ['always'],
    },
    auth: { api_keys: { enabled: true } },
    audit: { instance_id: instance, mode: 'strict' },
    admin: { listen: `127.0.0.1:${adminPort}` },
    approvals,
  };
}

// Starts toolgate with the given configuration (object → YAML). Returns
// { url, port, proc, dir, stop() }.
export async function startToolgate(config, { env = {} } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tg-e2e-'));
  const port = await freePort();
  const cfg = { listen: `127.0.0.1:${port}`, log_level: 'debug', ...config };
  const file = path.join(dir, 'toolgate.yaml');
  writeFileSync(file, yaml(cfg).replace(/^\n/, '') + '\n');
  const proc = start(TOOLGATE_BIN, ['serve', '--config', file], { env: { PATH: process.env.PATH, ...env } });
  await waitForPort(port, 10000, proc, 'toolgate');
  const url = `http://127.0.0.1:${port}/mcp`;
  return {
    url, port, proc, dir, file,
    async stop() {
      const code = await proc.stop();
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

// server-everything over Streamable HTTP on a free port.
export async function startEverything() {
  const port = await freePort();
  const proc = start(process.execPath, [EVERYTHING_JS, 'streamableHttp'], { env: { ...process.env, PORT: String(port) } });
  await waitForPort(port, 15000, proc, 'server-everything');
  return { url: `http://127.0.0.1:${port}/mcp`, port, proc, stop: () => proc.stop() };
}

// A node fixture script from fixtures/, serving Streamable HTTP on a free port.
export async function startFixture(name, env = {}) {
  const port = await freePort();
  const proc = start(process.execPath, [path.join(here, 'fixtures', name)], { env: { ...process.env, PORT: String(port), ...env } });
  await waitForPort(port, 10000, proc, name);
  return { url: `http://127.0.0.1:${port}/mcp`, port, proc, stop: () => proc.stop() };
}

// Connects the official SDK client. `capabilities` are the client's (sampling, roots,
// elicitation); `headers` go on every request.
export async function connect(url, { capabilities = {}, headers = {}, name = 'e2e-client' } = {}) {
  const client = new Client({ name, version: '1.0.0' }, { capabilities });
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  await client.connect(transport);
  return { client, transport };
}

// Raw HTTP request helper for protocol-level assertions (status codes, headers).
export async function post(url, body, headers = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: parseMaybe(text, res.headers) };
}

function parseMaybe(text, headers) {
  const ct = headers.get('content-type') || '';
  try {
    if (ct.includes('text/event-stream')) {
      return text.split('\n').filter((l) => l.startsWith('data:') && l.length > 5)
        .map((l) => JSON.parse(l.slice(5).trim()));
    }
    return text ? JSON.parse(text) : null;
  } catch { return null; }
}

export const INIT = {
  jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
};

// initialize + notifications/initialized over raw HTTP; returns the session id.
export async function rawSession(url, headers = {}) {
  const r = await post(url, INIT, headers);
  if (r.status !== 200) throw new Error(`initialize: HTTP ${r.status} ${r.text}`);
  const sid = r.headers.get('mcp-session-id');
  const n = await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' },
    { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25', ...headers });
  if (n.status !== 202) throw new Error(`initialized: HTTP ${n.status} ${n.text}`);
  return sid;
}
