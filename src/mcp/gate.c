/*
 * gate.c — where the router meets the referee and the recorder: per-call authorization
 * (catalog → resource → Cedar decision, src/policy) at the one point a tools/call,
 * resources/read or prompts/get is forwarded, tools/list filtering, and the audit
 * records of those decisions and of refused authentications (src/audit).
 *
 * The order for a decided call, and why:
 *   1. decide (pure, in the call's arena); log one line (no argument values);
 *   2. append the decision record; in strict mode WAIT until it is durable — the
 *      evidence must exist before the upstream acts. An append that is refused or fails
 *      refuses the call (fail closed) and nothing is forwarded;
 *   3. allow, or any decision in shadow mode → forward; deny / approval_required in
 *      enforce mode → the policy's refusal shape, never forwarded (that one record says
 *      outcome "not_forwarded");
 *   4. the upstream's answer → the outcome record (ok, tool error, JSON-RPC error,
 *      upstream timeout / crash, not forwarded) with latencies; in strict mode the
 *      client gets the answer once that record is durable, so every answer a client saw
 *      has its records. If that append fails the upstream has already acted: the client
 *      still gets the answer and the failure is logged as an error.
 *
 * An approval_required decision in enforce mode, with an approvals service (issue 7,
 * docs/approvals.md), goes through approval_step before its record is written:
 *   - an approved request bound to exactly this call (tg_approvals_find_granted) →
 *     decide again with context.approval; if that allows, consume the request
 *     (tg_approvals_use, compare-and-set: single use) and forward as an allowed call;
 *   - else a pending request (new, or the identical one reused). Retry mode answers
 *     approval_required with its id and URL. Hold mode keeps the call on an SSE stream
 *     (progress notifications with the client's token, else SSE comments) until the
 *     request is approved — then the call is decided again with the grant, recorded
 *     and forwarded — or denied, expired or timed out: then it is refused with
 *     APPROVAL_DENIED / APPROVAL_EXPIRED / APPROVAL_TIMEOUT and an outcome record.
 *
 * Lifetimes: a call can vanish while an append is outstanding (client cancel, session
 * end). The append's callback owns an mcp_wait that points back at the call; call
 * release clears that pointer (mcp_gate_release), and the callback then only frees.
 */
#include "mcp/mcp_int.h"

#include "approvals/tg_approvals.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMPONENT "mcp"

const tg_identity mcp_anonymous = {
    .method = "none",
    .delegator = "anonymous",
    .agent = "anonymous",
    .principal_key = "anonymous",
};

/* The decision of one call and the record that carries it (in the call's arena).
 * in: what the call was decided on; its pointers stay valid for the call's life (the
 * arena, the call's parsed params, the policy the call holds), so a held call can be
 * decided again once approved. */
typedef struct mcp_gate {
    size_t idx;
    const char *rename;
    tg_decide_kind kind;
    tg_decide_in in;
    tg_cat_entry entry;
    tg_decision d;
    bool forward;                /* allowed, or shadow mode */
    uint64_t forwarded_ns;       /* when it was forwarded (0: not forwarded) */
    /* combined: batched mode, the call holds a place for its one record, the outcome
     * record that carries the decision and the arguments (tg_audit_reserve); no decision
     * record was written. ended: the outcome record was appended. */
    bool combined, ended;
    tg_audit_record rec;
    char rec_digest[65];         /* the decision record's args_sha256 ("" before it) */
    /* approvals: the request this call is bound to (NULL when none), whether the call
     * is held for it, the grant it was allowed with, and the hold's watch (non-NULL
     * while waiting) and progress count. */
    const char *args_sha256;
    const char *approval_id, *approval_url;
    tg_policy_approval grant;
    bool hold;
    tg_approval_watch *watch;
    unsigned ticks;
} mcp_gate;

/* An outstanding audit append. call is NULL once the call is gone. data/len: the answer
 * waiting for the outcome record (malloc'd), or NULL for a decision record. */
typedef struct mcp_wait {
    mcp_call *call;
    char *data;
    size_t len;
} mcp_wait;

/* ---------------------------------------------------------------- who is asking */

void mcp_gate_adopt(mcp_call *c, const mcp_asker *who)
{
    c->started_ns = who->started_ns;
    if (who->traceparent) tg_copy_text(c->traceparent, sizeof c->traceparent, who->traceparent);
    if (!c->m->policy) return; /* nothing will be decided or recorded */
    c->policy = mcp_held_ref(c->m->policy);
    c->identity = tg_identity_copy(c->arena, who->identity);
}

static bool lower_hex(const char *s, size_t n, bool *all_zero)
{
    *all_zero = true;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
        if (s[i] != '0') *all_zero = false;
    }
    return true;
}

/* version 00 only: "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>", ids not zero. */
static bool traceparent_valid(const char *h, size_t len)
{
    bool z1, z2, z3;
    return len == 55 && memcmp(h, "00-", 3) == 0 && h[35] == '-' && h[52] == '-' &&
           lower_hex(h + 3, 32, &z1) && !z1 && lower_hex(h + 36, 16, &z2) && !z2 &&
           lower_hex(h + 53, 2, &z3);
}

const char *mcp_gate_traceparent(tg_arena *a, const char *header, size_t len)
{
    if (header && traceparent_valid(header, len)) return tg_arena_strndup(a, header, len);
    /* "00-" trace(32 hex) "-" parent(16 hex) "-01": 55 characters */
    char *tp = tg_arena_alloc(a, 56);
    memcpy(tp, "00-", 3);
    tg_random_hex(tp + 3, 16);
    tp[35] = '-';
    tg_random_hex(tp + 36, 8);
    memcpy(tp + 52, "-01", 4);
    return tp;
}

/* ---------------------------------------------------------------- audit plumbing */

static void record_logged(void *ud, int status, const char *errmsg)
{
    (void)ud;
    if (status != 0)
        tg_log_error(COMPONENT, "audit record of a refused authentication not stored: %s", errmsg);
}

void mcp_gate_auth_failure(tg_mcp *m, tg_http_req *req, const tg_auth_result *res,
                           const char *traceparent)
{
    tg_audit *audit = m->gates.audit;
    if (!audit) return;
    size_t len;
    const char *authz = tg_http_req_header(req, "Authorization", &len);
    /* The method the client attempted, from the credential's shape; never its value. */
    const char *method = NULL;
    if (authz && len > 11 && strncmp(authz, "Bearer tgk_", 11) == 0) method = "api_key";
    else if (authz) method = "oauth";
    tg_audit_record r = {
        .event = TG_AUDIT_EV_AUTH_FAILURE,
        .traceparent = traceparent,
        .auth_method = method,
        .client_ip = req->client_ip,
        .outcome = TG_AUDIT_OUTCOME_NOT_FORWARDED,
        .upstream_latency_us = TG_AUDIT_NO_LATENCY,
        .total_latency_us = (int64_t)((tg_now_ns() - req->received_ns) / 1000),
        .detail = tg_arena_sprintf(req->arena, "HTTP %d: %s", res->status,
                                   res->log_reason ? res->log_reason : "refused"),
    };
    tg_error err;
    if (tg_audit_append(audit, &r, record_logged, NULL, NULL, &err) < 0)
        tg_log_error(COMPONENT, "audit record of a refused authentication not stored: %s",
                     err.msg);
}

/* Appends r for call c. Returns 1 when the caller may go on now (batched, or no audit),
 * 0 when `then` will run once the record is durable or not (status), -1 when refused
 * (err). data (may be NULL) travels with the wait. digest_out: tg_audit_append's. */
static int append_for(mcp_call *c, const tg_audit_record *r, tg_audit_done_cb then, char *data,
                      size_t len, char *digest_out, tg_error *err)
{
    tg_audit *audit = c->m->gates.audit;
    if (!audit) return 1;
    mcp_wait *w = calloc(1, sizeof *w);
    if (!w) abort();
    w->call = c;
    w->data = data;
    w->len = len;
    int rc = tg_audit_append(audit, r, then, w, digest_out, err);
    if (rc != 0) {
        free(w); /* the callback will not run; data stays the caller's */
        return rc > 0 ? 1 : -1;
    }
    c->wait = w;
    return 0;
}

/* ---------------------------------------------------------------- deciding */

static tg_decide_kind kind_of_method(const char *method)
{
    if (strcmp(method, "resources/read") == 0) return TG_DECIDE_RESOURCE_READ;
    if (strcmp(method, "prompts/get") == 0) return TG_DECIDE_PROMPT_GET;
    return TG_DECIDE_TOOL;
}

static tg_audit_decision audit_decision(const tg_decision *d)
{
    switch (d->decision) {
    case TG_DECISION_ALLOW: return TG_AUDIT_DECISION_ALLOW;
    case TG_DECISION_APPROVAL: return TG_AUDIT_DECISION_APPROVAL_REQUIRED;
    default: return TG_AUDIT_DECISION_DENY;
    }
}

/* params._meta[key] when a string (decoded into the call's arena), else NULL. */
static const char *meta_string(mcp_call *c, tg_jref meta, const char *key)
{
    return meta.d ? tg_jscan_str_arena(meta.d, tg_jscan_get(meta.d, meta.tok, key), c->arena, NULL)
                  : NULL;
}

/* "A, B" in arena ("-" when empty). */
static const char *joined(tg_arena *a, const char *const *v, size_t n)
{
    tg_buf b = TG_BUF_INIT;
    for (size_t i = 0; i < n; i++) tg_buf_printf(&b, "%s%s", i ? ", " : "", v[i]);
    const char *out = tg_arena_strdup(a, n ? b.data : "-");
    tg_buf_free(&b);
    return out;
}

static void fill_record(mcp_call *c, mcp_gate *g, const char *name)
{
    const tg_identity *id = c->identity;
    const tg_decision *d = &g->d;
    tg_audit_record *r = &g->rec;
    r->event = TG_AUDIT_EV_DECISION;
    r->session_id = c->s->id;
    r->rpc_id = c->idkey;
    r->traceparent = c->traceparent;
    r->delegator = id->delegator;
    r->agent = id->agent;
    r->act_chain = id->act_chain;
    r->n_act_chain = id->n_act;
    r->auth_method = id->method;
    r->credential_id = id->credential_id;
    r->client_ip = id->client_ip;
    r->upstream = c->m->cfg->upstreams[g->idx].name;
    r->method = c->method;
    r->tool = g->kind == TG_DECIDE_RESOURCE_READ ? NULL : name;
    r->resource_type = d->resource.uid.type;
    r->resource_id = d->resource.uid.id;
    const char **parents = tg_arena_calloc(c->arena, d->resource.nparents + 1, sizeof *parents);
    for (size_t i = 0; i < d->resource.nparents; i++)
        parents[i] = tg_audit_resource_uid(c->arena, d->resource.parents[i].type,
                                           d->resource.parents[i].id);
    r->resource_parents = parents;
    r->n_resource_parents = d->resource.nparents;
    r->args_ref = g->in.args;
    r->intent = meta_string(c, g->in.meta, "toolgate/intent");
    r->workflow = meta_string(c, g->in.meta, "toolgate/workflow");
    r->ticket = meta_string(c, g->in.meta, "toolgate/ticket");
    r->decision = audit_decision(d);
    r->mode = d->shadow ? TG_AUDIT_SHADOW : TG_AUDIT_ENFORCE;
    r->reasons = d->reasons;
    r->n_reasons = d->nreasons;
    r->policies = d->policies;
    r->n_policies = d->npolicies;
    r->policy_version = d->policy_version;
    r->approval_id = g->grant.id ? g->grant.id : g->approval_id;
    r->approver = g->grant.approver;
    /* forwarded, or held for an approval: the outcome record comes later */
    bool later = g->forward || g->hold;
    r->outcome = later ? TG_AUDIT_OUTCOME_NONE : TG_AUDIT_OUTCOME_NOT_FORWARDED;
    r->upstream_latency_us = TG_AUDIT_NO_LATENCY;
    r->total_latency_us = later ? TG_AUDIT_NO_LATENCY
                                : (int64_t)((tg_now_ns() - c->started_ns) / 1000);
}

/* The call's outcome record: the decision record's fields, and the arguments only as the
 * decision record's digest. The arguments are in the decision record already; writing
 * them twice cost serialising, hashing and storing them again on every call
 * (docs/performance.md) and kept a second copy of whatever they contain. A combined
 * record (batched mode: there is no decision record) carries the arguments itself. */
static tg_audit_record outcome_record(const mcp_gate *g)
{
    tg_audit_record r = g->rec;
    r.event = TG_AUDIT_EV_OUTCOME;
    if (!g->combined) {
        r.args_ref = (tg_jref){NULL, -1};
        r.args_sha256 = g->rec_digest;
    }
    return r;
}

static void outcome_stored(void *ud, int status, const char *errmsg);

/* Appends the call's outcome record r: in the place its decision reserved (combined),
 * else as append_for does. Returns what append_for returns. */
static int append_outcome(mcp_call *c, const tg_audit_record *r, char *data, size_t len,
                          tg_error *err)
{
    mcp_gate *g = c->gate;
    g->ended = true;
    if (!g->combined) return append_for(c, r, outcome_stored, data, len, NULL, err);
    g->combined = false;
    return tg_audit_append_reserved(c->m->gates.audit, r, err);
}

/* Fail closed: a gate the call depends on cannot do its part right now. `what` says which
 * in the log and to the client; `why` (the log only) says what failed. */
static void refuse_unavailable(mcp_call *c, const char *what, const char *why)
{
    tg_log_error(COMPONENT, "session %.8s… call %s refused: %s: %s", c->s->id, c->idkey, what,
                 why);
    mcp_call_error(c, TG_RPC_INTERNAL_ERROR, NULL,
                   "Internal error: %s right now, so it was refused and not forwarded; retry later",
                   what);
}

static void fail_closed(mcp_call *c, const char *why)
{
    refuse_unavailable(c, "the audit trail cannot record this call", why);
}

static void hold_start(mcp_call *c);
static void record_decision(mcp_call *c, mcp_gate *g);
static void approvals_failed(mcp_call *c, const char *why);
static int approval_step(mcp_call *c, mcp_gate *g, tg_error *err);

/* The decision record is durable (or the mode does not wait): act on the decision. */
static void act(mcp_call *c)
{
    mcp_gate *g = c->gate;
    if (g->forward) {
        g->forwarded_ns = tg_now_ns();
        mcp_forward(c, g->idx, NULL, g->rename);
        return;
    }
    if (g->hold) {
        hold_start(c);
        return;
    }
    mcp_call_answer(c, tg_policy_denied_response(c->policy->obj, c->id, g->kind, &g->d,
                                                 g->approval_id, g->approval_url));
}

static void decision_stored(void *ud, int status, const char *errmsg)
{
    mcp_wait *w = ud;
    mcp_call *c = w->call;
    free(w);
    if (!c) return; /* the call went away meanwhile */
    c->wait = NULL;
    if (status != 0) fail_closed(c, errmsg ? errmsg : "append failed");
    else act(c);
}

void mcp_gate_forward(mcp_call *c, size_t idx, const char *orig, const char *rename)
{
    tg_mcp *m = c->m;
    /* Every call of a router with a policy was adopted (it has its arena, identity and
     * policy reference); the decision uses the policy current when the call arrived. A
     * call that somehow was not is refused, never forwarded undecided (fail closed). */
    if (!c->policy && m->policy) {
        mcp_call_error(c, TG_RPC_INTERNAL_ERROR, NULL,
                       "Internal error: the request cannot be authorized");
        return;
    }
    if (!c->policy) {
        mcp_forward(c, idx, NULL, rename);
        return;
    }
    const tg_policy *pol = c->policy->obj;
    tg_decide_kind kind = kind_of_method(c->method);
    const char *name = kind == TG_DECIDE_RESOURCE_READ ? orig : c->name;
    if (!orig || !name) {
        mcp_call_error(c, TG_RPC_INVALID_PARAMS, NULL, "Invalid params: \"%s\" must be a string",
                       kind == TG_DECIDE_RESOURCE_READ ? "uri" : "name");
        return;
    }
    const char *upstream = m->cfg->upstreams[idx].name;
    const tg_jdoc *pd = mcp_call_params_doc(c);
    tg_jref args = {pd, pd->ntoks ? tg_jscan_get(pd, 0, "arguments") : -1};
    tg_jref meta = {pd, pd->ntoks ? tg_jscan_get(pd, 0, "_meta") : -1};
    mcp_gate *g = tg_arena_calloc(c->arena, 1, sizeof *g);
    g->idx = idx;
    g->rename = rename ? tg_arena_strdup(c->arena, rename) : NULL;
    g->kind = kind;
    if (kind == TG_DECIDE_TOOL) {
        tg_catalog *cat = tg_policy_catalog(pol);
        tg_catalog_classify(cat, upstream, orig, json_object_get(c->s->tool_annotations, name),
                            &g->entry);
        tg_catalog_log_once(cat, upstream, orig, &g->entry);
    }
    g->in = (tg_decide_in){
        .kind = kind,
        .identity = c->identity,
        .upstream = tg_arena_strdup(c->arena, upstream),
        .name = tg_arena_strdup(c->arena, name),
        .upstream_name = kind == TG_DECIDE_RESOURCE_READ ? NULL : tg_arena_strdup(c->arena, orig),
        .entry = kind == TG_DECIDE_TOOL ? &g->entry : NULL,
        .args = args,
        .meta = meta,
        .now_ms = tg_wall_ms(),
    };
    tg_error err;
    if (tg_policy_decide(pol, &g->in, c->arena, &g->d, &err) != 0) {
        tg_log_warn(COMPONENT, "session %.8s… %s %s refused: %s", c->s->id, c->method, name,
                    err.msg);
        mcp_call_error(c, TG_RPC_INTERNAL_ERROR, NULL,
                       "Internal error: the request cannot be authorized: %s", err.msg);
        return;
    }
    c->gate = g;
    g->forward = g->d.decision == TG_DECISION_ALLOW || g->d.shadow;
    if (g->d.decision == TG_DECISION_APPROVAL && !g->d.shadow && m->gates.approvals &&
        approval_step(c, g, &err) < 0) {
        approvals_failed(c, err.msg);
        return;
    }
    record_decision(c, g);
}

/* Logs the decision, appends its record and acts once it may (now, or when durable). */
static void record_decision(mcp_call *c, mcp_gate *g)
{
    const tg_resource *res = &g->d.resource;
    tg_log_info(COMPONENT, "decision %s%s: %s %s (upstream %s) resource %s::\"%s\" reasons %s "
                "policies %s%s%s", tg_decision_name(g->d.decision), g->d.shadow ? " (shadow)" : "",
                c->method, g->in.name, g->in.upstream, res->uid.type ? res->uid.type : "-",
                res->uid.id ? res->uid.id : "-",
                joined(c->arena, g->d.reasons, g->d.nreasons),
                joined(c->arena, g->d.policies, g->d.npolicies),
                g->rec.approval_id || g->approval_id || g->grant.id ? " approval " : "",
                g->grant.id ? g->grant.id : g->approval_id ? g->approval_id : "");
    fill_record(c, g, g->in.name);
    tg_error err;
    int rc;
    /* Batched: a call about to be forwarded gets one record, written when it ends. */
    if (g->forward && !g->hold && c->m->gates.audit) {
        rc = tg_audit_reserve(c->m->gates.audit, &err);
        if (rc < 0) {
            fail_closed(c, err.msg);
            return;
        }
        if (rc > 0) {
            g->combined = true;
            act(c);
            return;
        }
    }
    rc = append_for(c, &g->rec, decision_stored, NULL, 0, g->rec_digest, &err);
    if (rc < 0) fail_closed(c, err.msg);
    else if (rc > 0) act(c);
}

/* ---------------------------------------------------------------- approvals */

static void approvals_failed(mcp_call *c, const char *why)
{
    refuse_unavailable(c, "this call needs an approval and the approval service cannot handle it",
                       why);
}

static void approval_call(mcp_call *c, const mcp_gate *g, tg_approval_call *out)
{
    /* The approval service keeps and shows the arguments: a tree of them is built here,
     * on this rare path, and not for every call. */
    const json_t *params = mcp_call_params(c);
    *out = (tg_approval_call){
        .identity = c->identity,
        .tool = g->in.name,
        .upstream = g->in.upstream,
        .upstream_tool = g->in.upstream_name,
        .decision = &g->d,
        .args_sha256 = g->args_sha256,
        .args = json_object_get(params, "arguments"),
        .meta = json_object_get(params, "_meta"),
        .session_id = c->s->id,
        .rpc_id = c->idkey,
        .traceparent = c->traceparent,
    };
}

/* With a grant for this exact call: decide again with context.approval. 1 when that
 * allows and the grant was consumed here (g->d is the new decision), 0 when the grant
 * does not let the call through (g->d may now be a deny), -1 store error. */
static int use_grant(mcp_call *c, mcp_gate *g, const tg_policy_approval *grant, tg_error *err)
{
    tg_approvals *ap = c->m->gates.approvals;
    tg_decision d2;
    g->in.approval = grant;
    g->in.now_ms = tg_wall_ms();
    int rc = tg_policy_decide(c->policy->obj, &g->in, c->arena, &d2, err);
    g->in.approval = NULL;
    if (rc != 0) return -1;
    if (d2.decision == TG_DECISION_DENY) {
        /* another policy refuses the call even with the approval: a deny, grant kept */
        g->d = d2;
        return 0;
    }
    if (d2.decision != TG_DECISION_ALLOW) return 0; /* still needs another approval */
    tg_approval_call call;
    approval_call(c, g, &call);
    g->d = d2; /* the call's evidence is the decision the grant produced */
    rc = tg_approvals_use(ap, grant->id, &call, err);
    if (rc <= 0) return rc; /* used meanwhile (single use) or a store error */
    g->grant.id = tg_arena_strdup(c->arena, grant->id);
    g->grant.approver = tg_arena_strdup(c->arena, grant->approver);
    g->grant.granted_at_ms = grant->granted_at_ms;
    g->forward = true;
    return 1;
}

/* Binds the call to a pending request (new or the identical one); sets whether it is
 * held. */
static int request_approval(mcp_call *c, mcp_gate *g, tg_error *err)
{
    tg_approvals *ap = c->m->gates.approvals;
    tg_approval_call call;
    approval_call(c, g, &call);
    int64_t expires_ms;
    int created;
    if (tg_approvals_request(ap, &call, c->arena, &g->approval_id, &g->approval_url,
                             &expires_ms, &created, err) < 0)
        return -1;
    g->hold = tg_approvals_mode(ap, g->in.upstream, g->in.upstream_name, g->d.risk) ==
              TG_APPROVAL_HOLD;
    tg_log_info(COMPONENT, "session %.8s… call %s: approval request %s %s (%s mode)", c->s->id,
                c->idkey, g->approval_id, created ? "created" : "reused",
                g->hold ? "hold" : "retry");
    return 0;
}

static int approval_step(mcp_call *c, mcp_gate *g, tg_error *err)
{
    char digest[65];
    tg_audit_args_digest_ref(g->in.args, digest);
    g->args_sha256 = tg_arena_strdup(c->arena, digest);
    tg_approval_call call;
    approval_call(c, g, &call);
    tg_policy_approval grant;
    int rc = tg_approvals_find_granted(c->m->gates.approvals, &call, c->arena, &grant, err);
    if (rc < 0) return -1;
    if (rc == 1) {
        const tg_decision before = g->d;
        rc = use_grant(c, g, &grant, err);
        if (rc != 0) return rc < 0 ? -1 : 0;
        if (g->d.decision == TG_DECISION_DENY) return 0;
        g->d = before; /* not usable after all: ask for a new approval */
    }
    return request_approval(c, g, err);
}

/* ---------------------------------------------------------------- holding a call */

static void hold_news(void *ud, const tg_approval_news *news);

static int64_t hold_left_ms(mcp_call *c)
{
    const tg_approvals_conf *conf = &c->m->cfg->approvals;
    int64_t waited = (int64_t)((tg_now_ns() - c->started_ns) / 1000000);
    return conf->hold_timeout_ms > waited ? conf->hold_timeout_ms - waited : 0;
}

/* Tells the client the call is waiting: a progress notification with its own token,
 * else an SSE comment (keeps the stream alive through proxies). */
static void hold_progress(mcp_call *c)
{
    mcp_gate *g = c->gate;
    if (c->progress_token) {
        char msg[512];
        snprintf(msg, sizeof msg, "waiting for approval %s: approve at %s", g->approval_id,
                 g->approval_url);
        json_t *note = json_pack("{s:s,s:s,s:{s:O,s:I,s:s}}", "jsonrpc", "2.0", "method",
                                 "notifications/progress", "params", "progressToken",
                                 c->progress_token, "progress", (json_int_t)g->ticks, "message",
                                 msg);
        mcp_call_related(c, note);
        json_decref(note);
    } else if (c->x && c->x->req && c->x->sse) {
        tg_http_sse_comment(c->x->req, "waiting for approval");
    }
    g->ticks++;
}

static void hold_start(mcp_call *c)
{
    mcp_gate *g = c->gate;
    g->watch = tg_approvals_watch(c->m->gates.approvals, g->approval_id, hold_left_ms(c),
                                  hold_news, c);
    mcp_call_stream(c);
    hold_progress(c);
}

/* The refusal of a held call: the policy's refusal shape with `reason` as its reason
 * code (and the approver's words when there are some), after an outcome record. */
static void hold_refuse(mcp_call *c, tg_decision_kind kind, const char *reason,
                        const tg_approval_news *news)
{
    mcp_gate *g = c->gate;
    const char **reasons = tg_arena_calloc(c->arena, 1, sizeof *reasons);
    reasons[0] = reason;
    g->d.decision = kind;
    g->d.reasons = reasons;
    g->d.nreasons = 1;
    json_t *resp = tg_policy_denied_response(c->policy->obj, c->id, g->kind, &g->d,
                                             g->approval_id, g->approval_url);
    if (news && news->approver) {
        /* the approver's name and comment belong with the refusal: the agent (and its
         * human) should know who said no and why */
        json_t *sc = json_object_get(json_object_get(resp, "result"), "structuredContent");
        if (!sc) sc = json_object_get(json_object_get(resp, "error"), "data");
        json_object_set_new(sc, "approver", json_string(news->approver));
        if (news->comment) json_object_set_new(sc, "comment", json_string(news->comment));
        json_t *text = json_object_get(json_array_get(json_object_get(json_object_get(resp,
                                       "result"), "content"), 0), "text");
        if (text)
            json_string_set(text, tg_arena_sprintf(c->arena, "%s Denied by %s%s%s", json_string_value(text),
                                                   news->approver, news->comment ? ": " : ".",
                                                   news->comment ? news->comment : ""));
    }
    size_t len;
    char *data = tg_json_dump(resp, &len);
    json_decref(resp);
    tg_log_info(COMPONENT, "session %.8s… call %s: not forwarded: %s (approval %s)", c->s->id,
                c->idkey, reason, g->approval_id);
    tg_audit_record r = outcome_record(g);
    r.decision = kind == TG_DECISION_DENY ? TG_AUDIT_DECISION_DENY
                                          : TG_AUDIT_DECISION_APPROVAL_REQUIRED;
    r.reasons = g->d.reasons;
    r.n_reasons = 1;
    r.outcome = TG_AUDIT_OUTCOME_NOT_FORWARDED;
    r.approver = news ? news->approver : NULL;
    r.total_latency_us = (int64_t)((tg_now_ns() - c->started_ns) / 1000);
    tg_error err;
    int rc = append_outcome(c, &r, data, len, &err);
    if (rc == 0) return; /* outcome_stored answers */
    if (rc < 0)
        tg_log_error(COMPONENT, "session %.8s… call %s: outcome record refused: %s", c->s->id,
                     c->idkey, err.msg);
    mcp_call_answer_raw(c, data, len);
    free(data);
}

/* Approved while held: decide again with the grant; allowed → record and forward. */
static void hold_approved(mcp_call *c, const tg_policy_approval *grant)
{
    mcp_gate *g = c->gate;
    const tg_decision before = g->d;
    tg_error err;
    int rc = use_grant(c, g, grant, &err);
    if (rc < 0) {
        approvals_failed(c, err.msg);
        return;
    }
    if (rc == 1 || g->d.decision == TG_DECISION_DENY) {
        g->hold = false;
        record_decision(c, g);
        return;
    }
    /* Approved, but another call bound to the same request used it first (single use),
     * or the policy wants yet another approval: wait for a new request. */
    g->d = before;
    if (request_approval(c, g, &err) < 0) {
        approvals_failed(c, err.msg);
        return;
    }
    g->watch = tg_approvals_watch(c->m->gates.approvals, g->approval_id, hold_left_ms(c),
                                  hold_news, c);
    hold_progress(c);
}

static void hold_news(void *ud, const tg_approval_news *news)
{
    mcp_call *c = ud;
    mcp_gate *g = c->gate;
    if (news->event == TG_APPROVAL_EV_TICK) {
        hold_progress(c);
        return;
    }
    g->watch = NULL; /* a final event: the watch is gone */
    switch (news->event) {
    case TG_APPROVAL_EV_APPROVED:
        hold_approved(c, news->grant);
        return;
    case TG_APPROVAL_EV_DENIED:
        hold_refuse(c, TG_DECISION_DENY, "APPROVAL_DENIED", news);
        return;
    case TG_APPROVAL_EV_EXPIRED:
        hold_refuse(c, TG_DECISION_DENY, "APPROVAL_EXPIRED", NULL);
        return;
    case TG_APPROVAL_EV_TIMEOUT:
        hold_refuse(c, TG_DECISION_APPROVAL, "APPROVAL_TIMEOUT", NULL);
        return;
    default:
        approvals_failed(c, "the approval request could not be read");
        return;
    }
}

/* ---------------------------------------------------------------- outcomes */

static tg_audit_outcome outcome_of(mcp_reply *reply)
{
    switch (reply->origin) {
    case MCP_REPLY_TIMEOUT: return TG_AUDIT_OUTCOME_UPSTREAM_TIMEOUT;
    case MCP_REPLY_CRASH: return TG_AUDIT_OUTCOME_UPSTREAM_CRASH;
    case MCP_REPLY_UNAVAILABLE: return TG_AUDIT_OUTCOME_NOT_FORWARDED;
    default: break;
    }
    switch (reply->answer) {
    case MCP_ANSWER_TOOL_ERROR: return TG_AUDIT_OUTCOME_TOOL_ERROR;
    case MCP_ANSWER_RPC_ERROR: return TG_AUDIT_OUTCOME_RPC_ERROR;
    default: return TG_AUDIT_OUTCOME_OK;
    }
}

static void outcome_stored(void *ud, int status, const char *errmsg)
{
    mcp_wait *w = ud;
    mcp_call *c = w->call;
    if (c) {
        c->wait = NULL;
        if (status != 0)
            tg_log_error(COMPONENT, "session %.8s… call %s: outcome record not stored (the "
                         "upstream already acted; answering anyway): %s", c->s->id, c->idkey,
                         errmsg ? errmsg : "append failed");
        mcp_call_answer_raw(c, w->data, w->len);
    }
    free(w->data);
    free(w);
}

/* The outcome record of a forwarded call that ended now with outcome o (answer data, or
 * NULL when there is nobody to answer); what append_outcome returns. */
static int record_ending(mcp_call *c, tg_audit_outcome o, char *data, size_t len,
                         tg_error *err)
{
    mcp_gate *g = c->gate;
    uint64_t now = tg_now_ns();
    tg_audit_record r = outcome_record(g);
    r.outcome = o;
    r.upstream_latency_us = (int64_t)((now - g->forwarded_ns) / 1000);
    r.total_latency_us = (int64_t)((now - c->started_ns) / 1000);
    return append_outcome(c, &r, data, len, err);
}

void mcp_gate_answer(mcp_call *c, mcp_reply *reply, char *data, size_t len)
{
    tg_error err;
    int rc = record_ending(c, outcome_of(reply), data, len, &err);
    if (rc == 0) return; /* outcome_stored answers */
    if (rc < 0)
        tg_log_error(COMPONENT, "session %.8s… call %s: outcome record refused (the upstream "
                     "already acted; answering anyway): %s", c->s->id, c->idkey, err.msg);
    mcp_call_answer_raw(c, data, len);
    free(data);
}

/* ---------------------------------------------------------------- lists, release */

bool mcp_gate_tool_visible(mcp_call *c, size_t idx, const json_t *item, const char *visible)
{
    const tg_policy *pol = c->m->gates.policy;
    if (!pol) return true;
    const char *upstream = c->m->cfg->upstreams[idx].name;
    const char *orig = json_string_value(json_object_get(item, "name"));
    tg_cat_entry entry;
    tg_catalog_classify(tg_policy_catalog(pol), upstream, orig,
                        json_object_get(item, "annotations"), &entry);
    return tg_policy_tool_visible(pol, c->identity, visible, entry.risk, upstream, c->arena) == 1;
}

/* A forwarded call that ends without its answer still gets its outcome record: without
 * one, the trail of a combined call would hold nothing at all, and in strict mode its
 * decision would look like a crash's. Nobody is left to wait for it. */
static void record_cancelled(mcp_call *c)
{
    tg_error err;
    /* a strict append's wait is dropped with the call right after this (nobody to answer) */
    int rc = record_ending(c, TG_AUDIT_OUTCOME_CANCELLED, NULL, 0, &err);
    if (rc < 0)
        tg_log_error(COMPONENT, "session %.8s… call %s: ended before its answer; the outcome "
                     "record was refused: %s", c->s->id, c->idkey, err.msg);
}

void mcp_gate_release(mcp_call *c)
{
    if (c->gate && c->gate->watch) {
        tg_approvals_unwatch(c->gate->watch);
        c->gate->watch = NULL;
    }
    if (c->gate && c->gate->forwarded_ns && !c->gate->ended && c->m->gates.audit)
        record_cancelled(c);
    if (c->wait) c->wait->call = NULL;
    c->wait = NULL;
    if (c->policy) mcp_held_unref(c->policy);
    c->policy = NULL;
}

/* ---------------------------------------------------------------- reload */

void mcp_gate_tools_listing(mcp_call *c)
{
    mcp_session *s = c->s;
    if (!c->identity) return; /* no policy: nothing is filtered, nothing can change */
    tg_arena *a = tg_arena_new(1024);
    s->lister = tg_identity_copy(a, c->identity);
    tg_arena_free(s->lister_arena);
    s->lister_arena = a;
}

void mcp_gate_tools_listed(mcp_call *c, size_t idx, const json_t *item, const char *visible,
                           bool shown)
{
    if (!c->identity) return;
    json_object_set_new(c->s->tools_shown, visible,
                        json_pack("[I,b,O]", (json_int_t)idx, shown,
                                  json_object_get(item, "name")));
}

/* Recomputes one session's view under the current policy; true when it changed. */
static bool view_changed(tg_mcp *m, mcp_session *s, tg_arena *a)
{
    bool changed = false;
    const char *visible;
    json_t *v;
    json_object_foreach(s->tools_shown, visible, v) {
        size_t idx = (size_t)json_integer_value(json_array_get(v, 0));
        bool was = json_is_true(json_array_get(v, 1));
        const char *orig = json_string_value(json_array_get(v, 2));
        const char *upstream = m->cfg->upstreams[idx].name;
        tg_cat_entry entry;
        tg_catalog_classify(tg_policy_catalog(m->gates.policy), upstream, orig,
                            json_object_get(s->tool_annotations, visible), &entry);
        bool now = tg_policy_tool_visible(m->gates.policy, s->lister, visible, entry.risk,
                                          upstream, a) == 1;
        if (now == was) continue;
        changed = true;
        json_array_set_new(v, 1, json_boolean(now));
    }
    return changed;
}

void mcp_gate_policy_changed(tg_mcp *m)
{
    json_t *note = json_pack("{s:s,s:s}", "jsonrpc", "2.0", "method",
                             "notifications/tools/list_changed");
    size_t told = 0;
    for (mcp_session *s = m->sessions; s; s = s->next) {
        if (!s->lister || s->ending) continue;
        tg_arena *a = tg_arena_new(4096);
        if (view_changed(m, s, a)) {
            mcp_session_deliver(s, note);
            told++;
        }
        tg_arena_free(a);
    }
    json_decref(note);
    if (told)
        tg_log_info(COMPONENT, "policy reload changed the visible tools of %zu session(s): "
                    "notifications/tools/list_changed sent", told);
}
