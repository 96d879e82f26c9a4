// inbox.test.mjs — the approvers' surfaces of issue 7 end to end: the web inbox in a real
// headless Chromium (playwright-core driving Debian's /usr/bin/chromium) and the
// `toolgate approvals` command, against the real toolgate binary in front of the demo
// Atlassian server with the example policies (a merge to main needs an approval; release
// managers approve). The agent is the official SDK client with alice's API key; its merge
// is HELD until someone decides in the browser.
//
//   - bob (a release manager) signs in with an approver key made by `toolgate approvals
//     keygen`, sees the held merge with requester, agent, tool, resource, parents,
//     arguments, risk and time left, approves with a comment, and the held call completes
//     with the demo's merge result; the request then shows as used under "Recently
//     decided". alice's own approval is refused in the page with the API's message.
//   - a denial in the browser makes the held call fail with the denial reason and the
//     approver's comment; the request is reached by its approval URL's fragment, and
//     arguments holding HTML are shown as text, never run.
//   - the CLI lists, shows and refuses to decide twice.
// Screenshots: <build dir>/test-artifacts/inbox-*.png (paths printed).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TOOLGATE_BIN, here, approvalsConfig, startToolgate, connect, freePort } from './lib.mjs';

const CHROMIUM = '/usr/bin/chromium';
const repo = path.resolve(here, '../..');
const artifacts = path.join(path.dirname(path.resolve(TOOLGATE_BIN)), 'test-artifacts');
// Skipped only on a developer machine without Chromium; in CI (CI=true) a missing browser
// is a failure, never a silent skip.
const skip = existsSync(CHROMIUM) || process.env.CI ? false : `${CHROMIUM} is not installed (scripts/deps.sh test)`;

let work, gw, adminUrl, browser, page, agent;
const keys = {};

// `toolgate approvals keygen`: the key on the first line, the configuration entry next.
function keygen(user, groups) {
  const args = ['approvals', 'keygen', '--user', user, ...(groups ? ['--groups', groups.join(',')] : [])];
  const [key, entry] = execFileSync(TOOLGATE_BIN, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    .trim().split('\n');
  assert.match(key, /^tga_[A-Za-z0-9_-]{43}$/);
  const m = entry.match(/^- \{user: "([^"]+)", (?:groups: \[(.*)\], )?key_sha256: "([0-9a-f]{64})"\}$/);
  assert.ok(m, entry);
  const conf = { user: m[1], key_sha256: m[3] };
  if (groups) conf.groups = groups;
  return { key, conf };
}

function cli(args, key) {
  return spawnSync(TOOLGATE_BIN, ['approvals', ...args, '--url', adminUrl], {
    encoding: 'utf8', env: { PATH: process.env.PATH, ...(key ? { TOOLGATE_APPROVER_KEY: key } : {}) },
  });
}

async function shot(name) {
  mkdirSync(artifacts, { recursive: true });
  const file = path.join(artifacts, `inbox-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`# screenshot: ${file}`);
}

const textOf = (r) => r.content.map((c) => c.text || '').join('\n');
const pr = (n, extra = {}) => ({ workspace: 'acme', repo_slug: 'api', pull_request_id: n, ...extra });
const merge = (args) => agent.callTool({ name: 'bitbucket_merge_pull_request', arguments: args }, undefined,
  { timeout: 90000, resetTimeoutOnProgress: true, onprogress: () => {} });

async function newPr() {
  const r = await agent.callTool({ name: 'bitbucket_create_pull_request', arguments: {
    workspace: 'acme', repo_slug: 'api', title: `inbox ${Date.now()}`, source_branch: 'develop', destination_branch: 'main' } });
  assert.ok(!r.isError, textOf(r));
  return Number(textOf(r).match(/"id"\s*:\s*(\d+)/)[1]);
}

// The pending card of pull request n, once the page's poll shows it.
async function cardOf(n) {
  const card = page.locator('[data-testid=request]').filter({
    has: page.locator('[data-testid=args]', { hasText: new RegExp(`"pull_request_id": ${n}\\b`) }),
  });
  await card.waitFor({ timeout: 15000 });
  return card;
}

async function signIn(key) {
  await page.goto(adminUrl + '/inbox');
  await page.getByLabel(/Approver key/).fill(key);
  await page.getByTestId('signin-submit').click();
  await page.getByTestId('pending').waitFor({ state: 'attached' });
  await page.locator('#inbox:not([hidden])').waitFor();
}

before(async () => {
  if (skip) return;
  work = mkdtempSync(path.join(os.tmpdir(), 'tg-e2e-inbox-'));
  const policyDir = path.join(work, 'policies');
  cpSync(path.join(repo, 'examples/policies'), policyDir, { recursive: true });
  writeFileSync(path.join(policyDir, '99-e2e-approvers.cedar'), `
@id("e2e-release-managers-approve") @reason("RELEASE_MANAGER")
permit (principal in Group::"release-managers", action == Action::"approve",
        resource in Bitbucket::Workspace::"acme");
`);
  keys.bob = keygen('bob');
  keys.alice = keygen('alice', ['release-managers']);   // only the built-in rule refuses her
  const admin = await freePort();
  adminUrl = `http://127.0.0.1:${admin}`;
  gw = await startToolgate(approvalsConfig({
    policyDir, instance: 'e2e-inbox', adminPort: admin,
    approvals: {
      mode: 'retry',
      modes: [{ upstream: 'atlassian', tool: 'bitbucket_merge_*', mode: 'hold' }],
      hold_timeout: '90s',
      progress_interval: '2s',
      approvers: { api_keys: [keys.bob.conf, keys.alice.conf] },
    },
  }));
  const apiKey = execFileSync(TOOLGATE_BIN, ['keys', 'create', '--config', gw.file, '--agent', 'claude', '--delegator', 'alice'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  ({ client: agent } = await connect(gw.url, { headers: { authorization: `Bearer ${apiKey}` } }));
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [],
  });
  page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  page.on('pageerror', (e) => console.log(`# page error: ${e.message}`));
});

after(async () => {
  if (browser) await browser.close();
  if (agent) await agent.close().catch(() => {});
  if (gw) assert.equal(await gw.stop(), 0, gw.proc.logs().slice(-3000));
  if (work) rmSync(work, { recursive: true, force: true });
});

test('inbox: a release manager signs in, sees the held merge in full, approves; the call completes', { skip }, async () => {
  const n = await newPr();
  const held = merge(pr(n));

  // A wrong key is refused at sign-in, with the API's reason.
  await page.goto(adminUrl + '/inbox');
  await page.getByLabel(/Approver key/).fill('tga_' + 'x'.repeat(43));
  await page.getByTestId('signin-submit').click();
  await page.getByTestId('signin-error').filter({ hasText: /UNAUTHORIZED/ }).waitFor();

  // alice may not approve her own agent's call, whatever her groups.
  await signIn(keys.alice.key);
  let card = await cardOf(n);
  await card.getByTestId('approve').click();
  await card.getByTestId('result').filter({ hasText: /SELF_APPROVAL_FORBIDDEN/ }).waitFor();
  await shot('self-approval-refused');
  await page.getByTestId('signout').click();
  await page.getByTestId('signin').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'sign-out clears the credential');

  await signIn(keys.bob.key);
  card = await cardOf(n);
  assert.match(await card.getByTestId('requester').textContent(), /alice \(agent claude\)/);
  assert.equal(await card.getByTestId('tool').textContent(), 'bitbucket_merge_pull_request');
  assert.equal(await card.getByTestId('risk').textContent(), 'high');
  assert.match(await card.getByTestId('resource').textContent(), new RegExp(`^Bitbucket::PullRequest::"acme/api/${n}"$`));
  assert.match(await card.getByTestId('parents').textContent(), /Bitbucket::Repo::"acme\/api"/);
  assert.match(await card.getByTestId('reasons').textContent(), /MERGE_APPROVAL_REQUIRED/);
  assert.deepEqual(JSON.parse(await card.getByTestId('args').textContent()), pr(n));
  assert.match(await card.getByTestId('time-left').textContent(), /^\d+ (min \d\d )?s$/);
  const id = await card.getAttribute('data-id');
  assert.match(id, /^apr_[a-z0-9]+$/);
  await shot('pending');

  await card.getByTestId('comment').fill('release 1.2 — approved in the inbox');
  await card.getByTestId('approve').click();
  await page.getByTestId('status').filter({ hasText: `${id} approved.` }).waitFor();
  await shot('approved');

  const r = await held;
  assert.ok(!r.isError, textOf(r));
  assert.match(textOf(r), /"state"\s*:\s*"MERGED"/);

  // Recently decided: the request, used by the call, with its approver and comment.
  const item = page.locator(`[data-testid=decided-item][data-id="${id}"]`);
  await item.filter({ has: page.locator('[data-testid=state]', { hasText: 'used' }) }).waitFor({ timeout: 10000 });
  assert.equal(await item.getByTestId('approver').textContent(), 'by bob');
  assert.equal(await item.getByTestId('decided-comment').textContent(), 'release 1.2 — approved in the inbox');
  assert.equal(await page.locator(`[data-testid=request][data-id="${id}"]`).count(), 0, 'no longer pending');
  await shot('decided');

  // The CLI sees the same, and deciding again is refused (exit 1, the API's code).
  const shown = cli(['show', id], keys.bob.key);
  assert.equal(shown.status, 0, shown.stderr);
  assert.match(shown.stdout, /^state: +used$/m);
  assert.match(shown.stdout, /^approver: +bob$/m);
  assert.match(shown.stdout, /^comment: +release 1\.2 — approved in the inbox$/m);
  const listed = cli(['list', '--state', 'used'], keys.bob.key);
  assert.equal(listed.status, 0, listed.stderr);
  assert.match(listed.stdout, new RegExp(`^${id} +used +bitbucket_merge_pull_request `, 'm'));
  const twice = cli(['deny', id, '--comment', 'too late'], keys.bob.key);
  assert.equal(twice.status, 1, twice.stdout + twice.stderr);
  assert.match(twice.stderr, /NOT_PENDING/);
  const anonymous = cli(['list']);
  assert.equal(anonymous.status, 2);
  assert.match(anonymous.stderr, /TOOLGATE_APPROVER_KEY/);
});

test('inbox: a denial in the browser fails the held call with the reason; the approval URL points at the request; arguments are text', { skip }, async () => {
  const n = await newPr();
  const trap = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>';
  const held = merge(pr(n, { message: trap }));
  let card = await cardOf(n);
  const id = await card.getAttribute('data-id');

  // The approval URL (inbox_url + "#" + id) highlights the request.
  await page.goto(`${adminUrl}/inbox#${id}`);
  card = await cardOf(n);
  await page.locator(`[data-testid=request][data-id="${id}"].highlight`).waitFor();
  assert.equal(JSON.parse(await card.getByTestId('args').textContent()).message, trap);
  assert.equal(await card.locator('img, script').count(), 0, 'markup in arguments is not rendered');
  assert.equal(await page.evaluate(() => window.pwned), undefined);

  // Narrow screens: the card fits, nothing scrolls sideways.
  await page.setViewportSize({ width: 380, height: 800 });
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1));
  await shot('narrow');
  await page.setViewportSize({ width: 1100, height: 900 });

  await card.getByTestId('comment').fill('not before the freeze ends');
  await card.getByTestId('deny').click();
  await page.getByTestId('status').filter({ hasText: `${id} denied.` }).waitFor();
  const d = await held;
  assert.equal(d.isError, true, textOf(d));
  assert.equal(d.structuredContent.decision, 'deny');
  assert.deepEqual(d.structuredContent.reasons, ['APPROVAL_DENIED']);
  assert.match(textOf(d), /not before the freeze ends/);
  const item = page.locator(`[data-testid=decided-item][data-id="${id}"]`);
  await item.filter({ has: page.locator('[data-testid=state]', { hasText: 'denied' }) }).waitFor({ timeout: 10000 });
  await shot('denied');
});
