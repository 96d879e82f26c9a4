// reference.mjs — the reference side of the differential test: thin wrappers around
// @cedar-policy/cedar-wasm that return results in the same normalised shape as toolgate.mjs,
// so run.mjs and shrink.mjs compare like with like.
//
// Normalised authorization result: {decision: "allow"|"deny", reason: [ids], errors: [ids]}
// with ids sorted (Cedar compares them as sets). A request the reference rejects as a whole
// (bad entity JSON, cyclic hierarchy, policy parse error) yields {failure: message}.

import * as cedar from '@cedar-policy/cedar-wasm/nodejs';

export const version = () => cedar.getCedarVersion();

function normalise(ans) {
  if (ans.type !== 'success') return { failure: ans.errors.map((e) => e.message).join('; ') };
  const d = ans.response;
  return {
    decision: d.decision,
    reason: [...d.diagnostics.reason].sort(),
    errors: [...new Set(d.diagnostics.errors.map((e) => e.policyId))].sort(),
  };
}

// One-shot authorization (parses the policy text on every call; used by the minimizer).
export function authorize(policyText, entities, req) {
  return normalise(cedar.isAuthorized({
    principal: req.principal, action: req.action, resource: req.resource, context: req.context,
    policies: { staticPolicies: policyText }, entities,
  }));
}

// Pre-parses a policy set once under `id` for authorizePreparsed; returns null or a message.
export function preparse(id, policyText) {
  const a = cedar.preparsePolicySet(id, { staticPolicies: policyText });
  return a.type === 'success' ? null : a.errors.map((e) => e.message).join('; ');
}

export function authorizePreparsed(id, entities, req) {
  return normalise(cedar.statefulIsAuthorized({
    principal: req.principal, action: req.action, resource: req.resource, context: req.context,
    preparsedPolicySetId: id, entities,
  }));
}

// The EST (policyToJson) of one policy's text, or {failure}.
export function est(policyText) {
  const a = cedar.policyToJson(policyText);
  return a.type === 'success' ? { json: a.json } : { failure: a.errors.map((e) => e.message).join('; ') };
}

// Splits a policy set's text into its policies in source order (cedar-wasm returns them
// sorted by id, i.e. "policy10" before "policy2"; we undo that). Returns {policies,
// templates: count} or {failure} (a parse error).
export function split(text) {
  const a = cedar.policySetTextToParts(text);
  if (a.type !== 'success') return { failure: a.errors.map((e) => e.message).join('; ') };
  const ids = a.policies.map((_, i) => `policy${i}`).sort();
  const out = new Array(a.policies.length);
  ids.forEach((id, k) => { out[Number(id.slice(6))] = a.policies[k]; });
  return { policies: out, templates: a.policy_templates.length };
}
