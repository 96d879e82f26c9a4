// app.js — the web inbox's behaviour (docs/approvers.md): sign in with an approver key or
// an OAuth access token, list pending approval requests with everything an approver needs
// to judge the call, approve or deny with a comment, and show what was decided recently.
//
// It is a client of the approvals API on the same origin (GET /approvals, POST
// /approvals/{id}/approve|deny). Rules this file keeps:
//   - the credential lives in sessionStorage only and travels only in the Authorization
//     header (no cookie: a page on another origin cannot act with it, so no CSRF);
//   - data from the API reaches the page only through textContent (never innerHTML):
//     arguments, comments and names are whatever an agent or a person typed;
//   - pending cards are updated in place, so a comment being typed survives the poll.
'use strict';

const KEY = 'toolgate.approver';
const POLL_MS = 2000;
const DECIDED_SHOWN = 20;

const $ = (id) => document.getElementById(id);
const cards = new Map();        // id → {li, expiresAt, timeLeft}
let pollTimer = null;
let decidedSig = '';
let highlighted = '';

function credential() { return sessionStorage.getItem(KEY); }

// One API call. Resolves {status, body}; a network failure resolves status 0.
async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + credential() };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  try {
    const res = await fetch(path, {
      method, headers, cache: 'no-store', credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let json = null;
    try { json = await res.json(); } catch (e) { json = null; }
    return { status: res.status, body: json };
  } catch (e) {
    return { status: 0, body: { error: 'NETWORK', message: 'toolgate cannot be reached: ' + e.message } };
  }
}

function errorText(r) {
  if (r.body && r.body.error) return r.body.error + ': ' + (r.body.message || '');
  return 'HTTP ' + r.status;
}

function el(tag, opts = {}, ...children) {
  const e = document.createElement(tag);
  if (opts.cls) e.className = opts.cls;
  if (opts.testid) e.dataset.testid = opts.testid;
  if (opts.text !== undefined && opts.text !== null) e.textContent = String(opts.text);
  for (const c of children) if (c) e.appendChild(c);
  return e;
}

function say(text) { $('status').textContent = text; }

// ------------------------------------------------------------------ sign in / out

function showSignedIn(on) {
  $('signin').hidden = on;
  $('inbox').hidden = !on;
  $('signout').hidden = !on;
  if (!on) $('who').textContent = '';
}

function signOut(message) {
  sessionStorage.removeItem(KEY);
  if (pollTimer) clearTimeout(pollTimer);
  pollTimer = null;
  for (const c of cards.values()) c.li.remove();
  cards.clear();
  $('decided').replaceChildren();
  decidedSig = '';
  highlighted = '';
  showSignedIn(false);
  $('signin-error').textContent = message || '';
  $('credential').value = '';
  $('credential').focus();
}

async function signIn(event) {
  event.preventDefault();
  const value = $('credential').value.trim();
  if (!value) return;
  sessionStorage.setItem(KEY, value);
  const r = await api('GET', '/approvals?state=pending&limit=1');
  if (r.status !== 200) {
    signOut('Sign-in refused: ' + errorText(r));
    return;
  }
  $('credential').value = '';
  $('signin-error').textContent = '';
  start();
}

function start() {
  showSignedIn(true);
  $('who').textContent = credential().startsWith('tga_') ? 'signed in with an approver key'
                                                         : 'signed in with an access token';
  poll();
}

// ------------------------------------------------------------------ rendering

function timeLeft(expiresAt) {
  const ms = Date.parse(expiresAt) - Date.now();
  if (!(ms > 0)) return 'expired';
  const s = Math.floor(ms / 1000);
  const m = Math.floor(s / 60);
  return m > 0 ? `${m} min ${String(s % 60).padStart(2, '0')} s` : `${s} s`;
}

function field(list, label, value, testid) {
  if (value === null || value === undefined || value === '') return;
  const dd = el('dd', { testid });
  if (value instanceof Node) dd.appendChild(value); else dd.textContent = String(value);
  list.append(el('dt', { text: label }), dd);
}

function requesterText(q) {
  const r = q.requester || {};
  const who = r.delegator ? `${r.delegator} (agent ${r.agent})` : `agent ${r.agent}`;
  return r.authMethod ? `${who}, via ${r.authMethod}` : who;
}

function resourceText(q) {
  const r = q.resource || {};
  return r.type ? `${r.type}::"${r.id}"` : '';
}

function pendingCard(q) {
  const li = el('li', { cls: 'card', testid: 'request' });
  li.id = q.id;
  li.dataset.id = q.id;
  li.setAttribute('aria-labelledby', q.id + '-title');

  const title = el('h3', {}, el('span', { cls: 'tool', text: q.tool, testid: 'tool' }),
                   el('span', { cls: 'risk risk-' + q.risk, text: q.risk, testid: 'risk' }));
  title.id = q.id + '-title';
  li.appendChild(title);

  const dl = el('dl');
  field(dl, 'Requester', requesterText(q), 'requester');
  field(dl, 'Upstream', q.upstream, 'upstream');
  field(dl, 'Resource', resourceText(q), 'resource');
  const parents = (q.resource && q.resource.parents) || [];
  if (parents.length) field(dl, 'Within', parents.join(' → '), 'parents');
  field(dl, 'Intent', q.intent, 'intent');
  field(dl, 'Workflow', q.workflow, 'workflow');
  field(dl, 'Ticket', q.ticket, 'ticket');
  field(dl, 'Why approval', (q.reasons || []).join(', '), 'reasons');
  field(dl, 'Policies', (q.policies || []).join(', '), 'policies');
  field(dl, 'Requested', q.createdAt, 'created');
  const left = el('span', { text: timeLeft(q.expiresAt) });
  field(dl, 'Time left', left, 'time-left');
  field(dl, 'Request id', q.id, 'id');
  li.appendChild(dl);

  const args = el('details', { cls: 'args' }, el('summary', { text: 'Arguments' }),
                  el('pre', { text: JSON.stringify(q.args, null, 2), testid: 'args' }));
  args.open = true;
  li.appendChild(args);

  const form = el('form', { cls: 'decide' });
  const label = el('label', { text: 'Comment (optional; kept in the audit trail, and shown to the agent on a denial)' });
  const box = el('textarea', { testid: 'comment' });
  box.id = q.id + '-comment';
  box.maxLength = 2000;
  box.rows = 2;
  label.htmlFor = box.id;
  const approve = el('button', { cls: 'approve', text: 'Approve', testid: 'approve' });
  const deny = el('button', { cls: 'deny', text: 'Deny', testid: 'deny' });
  approve.type = deny.type = 'button';
  const result = el('p', { cls: 'result', testid: 'result' });
  result.setAttribute('role', 'status');
  result.setAttribute('aria-live', 'polite');
  approve.addEventListener('click', () => decide(q.id, 'approve', box, [approve, deny], result));
  deny.addEventListener('click', () => decide(q.id, 'deny', box, [approve, deny], result));
  form.addEventListener('submit', (e) => e.preventDefault());
  form.append(label, box, el('div', { cls: 'buttons' }, approve, deny), result);
  li.appendChild(form);
  return { li, expiresAt: q.expiresAt, timeLeft: left };
}

async function decide(id, verb, box, buttons, result) {
  for (const b of buttons) b.disabled = true;
  result.className = 'result';
  result.textContent = verb === 'approve' ? 'Approving…' : 'Denying…';
  const comment = box.value.trim();
  const r = await api('POST', `/approvals/${encodeURIComponent(id)}/${verb}`,
                      comment ? { comment } : {});
  if (r.status === 200) {
    result.textContent = verb === 'approve' ? 'Approved.' : 'Denied.';
    say(`${id} ${verb === 'approve' ? 'approved' : 'denied'}.`);
    poll();
    return;
  }
  if (r.status === 401) { signOut('Your credential was refused: ' + errorText(r)); return; }
  result.className = 'result error';
  result.textContent = 'Refused — ' + errorText(r);
  for (const b of buttons) b.disabled = false;
}

function renderPending(list) {
  const seen = new Set();
  const ul = $('pending');
  for (const q of list) {
    seen.add(q.id);
    if (!cards.has(q.id)) cards.set(q.id, pendingCard(q));
    ul.appendChild(cards.get(q.id).li);   // keeps the API's order (newest first)
  }
  for (const [id, c] of cards) {
    if (!seen.has(id)) { c.li.remove(); cards.delete(id); }
  }
  $('pending-empty').hidden = list.length > 0;
  $('pending-count').textContent = list.length ? `(${list.length})` : '';
  highlight();
}

function decidedItem(q) {
  const li = el('li', { cls: 'decided-item state-' + q.state, testid: 'decided-item' });
  li.dataset.id = q.id;
  li.append(el('span', { cls: 'state', text: q.state, testid: 'state' }),
            el('span', { cls: 'tool', text: q.tool }),
            el('span', { text: resourceText(q) }),
            el('span', { text: 'for ' + requesterText(q) }));
  if (q.approver) li.appendChild(el('span', { text: 'by ' + q.approver, testid: 'approver' }));
  if (q.comment) li.appendChild(el('q', { text: q.comment, testid: 'decided-comment' }));
  li.appendChild(el('time', { text: q.decidedAt || q.expiresAt }));
  return li;
}

function renderDecided(list) {
  const shown = list.filter((q) => q.state !== 'pending').slice(0, DECIDED_SHOWN);
  const sig = JSON.stringify(shown.map((q) => [q.id, q.state]));
  if (sig === decidedSig) return;
  decidedSig = sig;
  $('decided').replaceChildren(...shown.map(decidedItem));
  $('decided-empty').hidden = shown.length > 0;
}

// The request named by the URL fragment (approval URLs are inbox_url + "#" + id).
function highlight() {
  const id = decodeURIComponent(location.hash.slice(1));
  if (!id || id === highlighted || !cards.has(id)) return;
  for (const c of cards.values()) c.li.classList.remove('highlight');
  const li = cards.get(id).li;
  li.classList.add('highlight');
  li.scrollIntoView({ block: 'start' });
  highlighted = id;
}

async function poll() {
  if (pollTimer) clearTimeout(pollTimer);
  pollTimer = null;
  if (!credential()) return;
  const [p, all] = await Promise.all([api('GET', '/approvals?state=pending&limit=500'),
                                      api('GET', '/approvals?limit=100')]);
  if (!credential()) return;   // signed out meanwhile
  if (p.status === 401 || all.status === 401) {
    signOut('Your credential was refused: ' + errorText(p.status === 401 ? p : all));
    return;
  }
  if (p.status === 200 && all.status === 200) {
    renderPending(p.body);
    renderDecided(all.body);
    $('status').classList.remove('error');
  } else {
    $('status').classList.add('error');
    say('Could not refresh: ' + errorText(p.status !== 200 ? p : all));
  }
  pollTimer = setTimeout(poll, POLL_MS);
}

function tick() {
  for (const c of cards.values()) c.timeLeft.textContent = timeLeft(c.expiresAt);
}

document.addEventListener('DOMContentLoaded', () => {
  $('signin-form').addEventListener('submit', signIn);
  $('signout').addEventListener('click', () => signOut('Signed out.'));
  window.addEventListener('hashchange', () => { highlighted = ''; highlight(); });
  setInterval(tick, 1000);
  if (credential()) start(); else $('credential').focus();
});
