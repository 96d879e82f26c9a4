/*
 * approvals.c — the approvals service (tg_approvals.h; docs/approvals.md): approval
 * requests bound to the exact call, their life in the store's `approvals` table, the
 * approver's decision, hold-mode watches, the expiry sweeper, and the audit records and
 * webhook events every transition produces.
 *
 * The store is the truth. Every transition is a compare-and-set on the row's state, so
 * whichever of two approvers, two retries, the sweeper or another instance sharing the
 * store comes second finds the state changed and loses cleanly. In-process watchers are
 * told at once when a transition happens here; rows decided elsewhere (the CLI talks to
 * the admin API of possibly another instance) are noticed by re-reading watched rows
 * every second.
 *
 * A row (columns of store.c MIGRATION_1): requester = the identity's principal_key,
 * resource = `Type::"id"`, request_json = everything the JSON view and the approver
 * decision need (the arguments REDACTED: the unredacted arguments are only ever kept as
 * their digest, args_sha256).
 */
#include "approvals/approvals_int.h"

#include <stdlib.h>
#include <string.h>

#define SWEEP_MS 1000
#define COMMENT_MAX 2000
#define LIST_DEFAULT 100
#define LOG_COMMENT_MAX 200

/* Invariants: cfg is a reference we hold; policy and auth are borrowed (the caller keeps
 * them alive until the next set_*); `watches` lists every watch not yet finished. After
 * close, nothing is started any more; the memory goes once the sweeper handle is closed
 * AND free was called. */
struct tg_approvals {
    uv_loop_t *loop;
    tg_config *cfg;
    tg_store *store;
    tg_audit *audit;
    const tg_policy *policy;
    tg_auth *auth;
    ap_webhook *hook;
    uv_timer_t sweeper;
    tg_approval_watch *watches;
    unsigned sweep_gen;      /* bumped per sweep: each watch is re-read once per sweep */
    int closed, handle_closed, free_requested;
};

/* A hold-mode watch. Times are monotonic ms except expires_ms (Unix ms). The struct is
 * freed in the timer's close callback, after the final event (or unwatch). */
struct tg_approval_watch {
    tg_approvals *ap;
    tg_approval_watch *prev, *next;
    char *id;
    uv_timer_t timer;
    uint64_t start, deadline, next_tick;
    int64_t expires_ms;
    tg_approval_watch_cb cb;
    void *ud;
    int checked;     /* the row was read once since the watch started */
    unsigned gen;    /* the last sweep that re-read it */
};

const char *tg_approval_state_name(tg_approval_state s)
{
    static const char *const names[] = {"", "pending", "approved", "denied", "expired", "used"};
    return s >= TG_APPROVAL_PENDING && s <= TG_APPROVAL_USED ? names[s] : "";
}

const tg_approvals_conf *ap_conf(const tg_approvals *ap)
{
    return &ap->cfg->approvals;
}

tg_auth *ap_auth(const tg_approvals *ap)
{
    return ap->auth;
}

/* ------------------------------------------------------------------ rows */

static const char *row_str(const json_t *row, const char *col)
{
    return json_string_value(json_object_get(row, col));
}

static int64_t row_int(const json_t *row, const char *col)
{
    return json_integer_value(json_object_get(row, col));
}

static bool same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *time_or_null(int64_t ms)
{
    char t[32];
    if (ms <= 0)
        return json_null();
    tg_format_time(ms, t);
    return json_string(t);
}

/* The request_json of a row (new ref; an empty object when unreadable, which the JSON
 * view shows as nulls rather than failing the whole list). */
static json_t *row_request(const json_t *row)
{
    const char *t = row_str(row, "request_json");
    tg_error err;
    json_t *r = t ? tg_json_parse(t, strlen(t), TG_JSON_MAX_DEPTH, &err) : NULL;
    return json_is_object(r) ? r : (json_decref(r), json_object());
}

static const char *req_str(const json_t *req, const char *key)
{
    return json_string_value(json_object_get(req, key));
}

/* `Type::"id"` — how audit records and rows name entities. */
static char *uid_text(tg_arena *a, const char *type, const char *id)
{
    tg_buf b = TG_BUF_INIT;
    tg_buf_printf(&b, "%s::", type);
    tg_buf_json_string(&b, id, strlen(id));
    char *s = tg_arena_strndup(a, b.data, b.len);
    tg_buf_free(&b);
    return s;
}

static const char *requester_of(const tg_identity *id)
{
    return id->principal_key ? id->principal_key : id->agent ? id->agent : "anonymous";
}

/* ------------------------------------------------------------------ the JSON view */

static json_t *view_of(const tg_approvals *ap, const json_t *row)
{
    json_t *req = row_request(row);
    const char *id = row_str(row, "id");
    json_t *res = json_object_get(req, "resource");
    json_t *v = json_object();
    json_object_set_new(v, "id", str_or_null(id));
    json_object_set_new(v, "state", str_or_null(row_str(row, "state")));
    json_object_set_new(v, "url", id && ap->cfg->approvals.inbox_url
                                      ? json_sprintf("%s#%s", ap->cfg->approvals.inbox_url, id)
                                      : json_null());
    json_object_set_new(v, "tool", str_or_null(row_str(row, "tool")));
    json_object_set_new(v, "upstream", str_or_null(req_str(req, "upstream")));
    json_object_set_new(v, "risk", str_or_null(req_str(req, "risk")));
    json_object_set_new(v, "requester", json_pack("{s:o,s:o,s:o,s:o,s:o}",
        "delegator", str_or_null(row_str(row, "delegator")),
        "agent", str_or_null(req_str(req, "agent")),
        "authMethod", str_or_null(req_str(req, "authMethod")),
        "credentialId", str_or_null(req_str(req, "credentialId")),
        "clientIp", str_or_null(req_str(req, "clientIp"))));
    json_object_set(v, "resource", json_is_object(res) ? res : json_null());
    json_object_set(v, "args", json_object_get(req, "args") ? json_object_get(req, "args")
                                                            : json_null());
    json_object_set_new(v, "argsSha256", str_or_null(row_str(row, "args_sha256")));
    json_object_set_new(v, "intent", str_or_null(req_str(req, "intent")));
    json_object_set_new(v, "workflow", str_or_null(req_str(req, "workflow")));
    json_object_set_new(v, "ticket", str_or_null(req_str(req, "ticket")));
    json_object_set(v, "reasons", json_is_array(json_object_get(req, "reasons"))
                                      ? json_object_get(req, "reasons") : json_null());
    json_object_set(v, "policies", json_is_array(json_object_get(req, "policies"))
                                       ? json_object_get(req, "policies") : json_null());
    json_object_set_new(v, "policyVersion", str_or_null(row_str(row, "policy_version")));
    json_object_set_new(v, "createdAt", time_or_null(row_int(row, "created_ms")));
    json_object_set_new(v, "expiresAt", time_or_null(row_int(row, "expires_ms")));
    json_object_set_new(v, "decidedAt", time_or_null(row_int(row, "decided_ms")));
    json_object_set_new(v, "approver", str_or_null(row_str(row, "approver")));
    json_object_set_new(v, "comment", str_or_null(row_str(row, "comment")));
    json_object_set_new(v, "usedAt", time_or_null(row_int(row, "used_ms")));
    json_object_set_new(v, "usedBy", str_or_null(row_str(row, "used_by")));
    json_decref(req);
    return v;
}

/* ------------------------------------------------------------------ audit and webhook */

static void audit_done(void *ud, int status, const char *errmsg)
{
    (void)ud;
    if (status != 0)
        tg_log_error(AP_LOG, "approval audit record not stored: %s", errmsg);
}

static const char **str_vec(tg_arena *a, const json_t *arr, size_t *n)
{
    *n = json_array_size(arr);
    const char **v = tg_arena_calloc(a, *n + 1, sizeof *v);
    for (size_t i = 0; i < *n; i++)
        v[i] = json_string_value(json_array_get(arr, i)) ? json_string_value(json_array_get(arr, i)) : "";
    return v;
}

/* One "approval" audit record for request `row`. `call` is the call concerned when there
 * is one at hand (request, use): its arguments give the record the same args digest as
 * the call's own records, and its session / JSON-RPC id / traceparent link them. For
 * decisions and expiry the record names the requesting call's links (from the row); its
 * arguments are not kept, so the record carries none, only their digest from the row
 * (docs/approvals.md). Appended as
 * the audit mode says; never waited for: a failure is logged. */
static void audit_event(tg_approvals *ap, const json_t *row, const char *detail,
                        const tg_approval_call *call)
{
    if (!ap->audit)
        return;
    tg_arena *a = tg_arena_new(0);
    json_t *req = row_request(row);
    const json_t *res = json_object_get(req, "resource");
    tg_audit_record r = {
        .event = TG_AUDIT_EV_APPROVAL,
        .session_id = call ? call->session_id : req_str(req, "sessionId"),
        .rpc_id = call ? call->rpc_id : req_str(req, "rpcId"),
        .traceparent = call ? call->traceparent : req_str(req, "traceparent"),
        .delegator = row_str(row, "delegator"),
        .agent = req_str(req, "agent"),
        .auth_method = req_str(req, "authMethod"),
        .credential_id = req_str(req, "credentialId"),
        .client_ip = req_str(req, "clientIp"),
        .upstream = req_str(req, "upstream"),
        .method = "tools/call",
        .tool = row_str(row, "tool"),
        .resource_type = json_string_value(json_object_get(res, "type")),
        .resource_id = json_string_value(json_object_get(res, "id")),
        .args = call ? call->args : NULL,
        .args_sha256 = row_str(row, "args_sha256"), /* kept when args is NULL */
        .intent = req_str(req, "intent"),
        .workflow = req_str(req, "workflow"),
        .ticket = req_str(req, "ticket"),
        .decision = TG_AUDIT_DECISION_APPROVAL_REQUIRED,
        .policy_version = row_str(row, "policy_version"),
        .approval_id = row_str(row, "id"),
        .approver = row_str(row, "approver"),
        .outcome = TG_AUDIT_OUTCOME_NONE,
        .upstream_latency_us = TG_AUDIT_NO_LATENCY,
        .total_latency_us = TG_AUDIT_NO_LATENCY,
        .detail = detail,
    };
    r.resource_parents = str_vec(a, json_object_get(res, "parents"), &r.n_resource_parents);
    r.reasons = str_vec(a, json_object_get(req, "reasons"), &r.n_reasons);
    r.policies = str_vec(a, json_object_get(req, "policies"), &r.n_policies);
    tg_error err;
    if (tg_audit_append(ap->audit, &r, audit_done, NULL, NULL, &err) < 0)
        tg_log_error(AP_LOG, "approval %s: audit record (%s) refused: %s", r.approval_id,
                     detail, err.msg);
    json_decref(req);
    tg_arena_free(a);
}

static void hook_event(tg_approvals *ap, const json_t *row, const char *what)
{
    if (!ap->hook)
        return;
    json_t *v = view_of(ap, row);
    ap_webhook_send(ap->hook, what, v);
    json_decref(v);
}

/* ------------------------------------------------------------------ watches */

static void watch_closed(uv_handle_t *h)
{
    tg_approval_watch *w = h->data;
    free(w->id);
    free(w);
}

static void watch_unlink(tg_approval_watch *w)
{
    tg_approvals *ap = w->ap;
    if (w->prev)
        w->prev->next = w->next;
    else
        ap->watches = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, watch_closed);
}

/* The final event: the watch is gone before cb runs (cb may start new watches). */
static void watch_finish(tg_approval_watch *w, tg_approval_news *news)
{
    tg_approval_watch_cb cb = w->cb;
    void *ud = w->ud;
    news->waited_ms = (int64_t)(tg_now_ms() - w->start);
    news->expires_ms = w->expires_ms;
    watch_unlink(w);
    cb(ud, news);
}

/* Tells the watch what the row now says; 1 when that was final. */
static int watch_apply(tg_approval_watch *w, const json_t *row)
{
    const char *state = row_str(row, "state");
    tg_approval_news news = {0};
    tg_policy_approval grant;
    w->expires_ms = row_int(row, "expires_ms");
    if (!state || strcmp(state, "pending") == 0)
        return 0;
    news.approver = row_str(row, "approver");
    news.comment = row_str(row, "comment");
    if (strcmp(state, "approved") == 0) {
        grant = (tg_policy_approval){row_str(row, "id"), news.approver, row_int(row, "decided_ms")};
        news.event = TG_APPROVAL_EV_APPROVED;
        news.grant = &grant;
    } else if (strcmp(state, "denied") == 0) {
        news.event = TG_APPROVAL_EV_DENIED;
    } else {
        /* expired, or used already (by a retry of the same call): nothing to wait for. */
        news.event = TG_APPROVAL_EV_EXPIRED;
        news.approver = news.comment = NULL;
    }
    watch_finish(w, &news);
    return 1;
}

/* Every watch of row's id hears of it. */
static void notify(tg_approvals *ap, const json_t *row)
{
    const char *id = row_str(row, "id");
    tg_approval_watch *w = ap->watches, *next;
    for (; w; w = next) {
        next = w->next;
        if (strcmp(w->id, id) == 0) {
            /* cb may unwatch others: restart the walk after a final event. */
            if (watch_apply(w, row)) {
                next = ap->watches;
            }
        }
    }
}

/* Re-reads a watched row: 1 when the watch finished. */
static int watch_check(tg_approval_watch *w)
{
    tg_error err = {""};
    json_t *row = tg_store_row_get(w->ap->store, TG_STORE_APPROVALS, w->id, &err);
    w->checked = 1;
    if (!row) {
        tg_approval_news news = {.event = TG_APPROVAL_EV_ERROR};
        tg_log_error(AP_LOG, "approval %s: %s", w->id, err.msg[0] ? err.msg : "the request is gone");
        watch_finish(w, &news);
        return 1;
    }
    int done = watch_apply(w, row);
    json_decref(row);
    return done;
}

static void watch_timer(uv_timer_t *t);

/* The next TICK or the TIMEOUT, whichever comes first. */
static void watch_arm(tg_approval_watch *w)
{
    uint64_t now = tg_now_ms();
    uint64_t at = w->next_tick < w->deadline ? w->next_tick : w->deadline;
    uv_timer_start(&w->timer, watch_timer, at > now ? at - now : 0, 0);
}

static void watch_timer(uv_timer_t *t)
{
    tg_approval_watch *w = t->data;
    uint64_t now = tg_now_ms();
    if (!w->checked && watch_check(w))
        return;
    if (now >= w->deadline) {
        tg_approval_news news = {.event = TG_APPROVAL_EV_TIMEOUT};
        watch_finish(w, &news);
        return;
    }
    if (now >= w->next_tick) {
        tg_approval_news news = {.event = TG_APPROVAL_EV_TICK};
        uint64_t period = (uint64_t)w->ap->cfg->approvals.progress_interval_ms;
        w->next_tick = now + (period ? period : 5000);
        news.waited_ms = (int64_t)(now - w->start);
        news.expires_ms = w->expires_ms;
        /* Rearm first: cb may unwatch (which closes the timer). */
        watch_arm(w);
        w->cb(w->ud, &news);
        return;
    }
    watch_arm(w);
}

tg_approval_watch *tg_approvals_watch(tg_approvals *ap, const char *id, int64_t timeout_ms,
                                      tg_approval_watch_cb cb, void *ud)
{
    if (ap->closed)
        return NULL;
    tg_approval_watch *w = calloc(1, sizeof *w);
    if (!w || !(w->id = strdup(id)))
        abort();
    uint64_t now = tg_now_ms();
    int64_t period = ap->cfg->approvals.progress_interval_ms;
    w->ap = ap;
    w->cb = cb;
    w->ud = ud;
    w->start = now;
    w->deadline = now + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    w->next_tick = now + (uint64_t)(period > 0 ? period : 5000);
    uv_timer_init(ap->loop, &w->timer);
    w->timer.data = w;
    w->next = ap->watches;
    if (ap->watches)
        ap->watches->prev = w;
    ap->watches = w;
    /* The first check runs from the loop, never inside this call. */
    uv_timer_start(&w->timer, watch_timer, 0, 0);
    return w;
}

void tg_approvals_unwatch(tg_approval_watch *w)
{
    if (w)
        watch_unlink(w);
}

/* ------------------------------------------------------------------ transitions */

/* Compare-and-set of row id from state `from` with the columns of `set` (stolen).
 * 1 done (*after = the row now, new ref), 0 lost the race, -1 store error. */
static int transition(tg_approvals *ap, const char *id, const char *from, json_t *set,
                      json_t **after, tg_error *err)
{
    json_t *expect = json_string(from);
    int rc = tg_store_row_update(ap->store, TG_STORE_APPROVALS, id, set, "state", expect, err);
    json_decref(expect);
    json_decref(set);
    if (rc == 1 && !(*after = tg_store_row_get(ap->store, TG_STORE_APPROVALS, id, err)))
        return -1;
    return rc;
}

/* After a transition made here: audit, webhook, watchers, one log line. */
static void announce(tg_approvals *ap, const json_t *row, const char *what, const char *detail,
                     const tg_approval_call *call)
{
    const char *comment = row_str(row, "comment");
    audit_event(ap, row, detail, call);
    hook_event(ap, row, what);
    tg_log_info(AP_LOG, "approval %s %s: tool %s requester %s%s%s (comment: %zu bytes)",
                row_str(row, "id"), what, row_str(row, "tool"), row_str(row, "requester"),
                row_str(row, "approver") ? " approver " : "",
                row_str(row, "approver") ? row_str(row, "approver") : "",
                comment ? strlen(comment) : 0);
    notify(ap, row);
}

static void sweep_state(tg_approvals *ap, const char *state, int64_t now)
{
    tg_error err = {""};
    json_t *sv = json_string(state);
    json_t *rows = tg_store_row_list(ap->store, TG_STORE_APPROVALS, "state", sv, &err);
    json_decref(sv);
    if (!rows) {
        tg_log_error(AP_LOG, "expiry sweep: %s", err.msg);
        return;
    }
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        if (row_int(row, "expires_ms") > now)
            continue;
        json_t *after = NULL;
        int rc = transition(ap, row_str(row, "id"), state, json_pack("{s:s}", "state", "expired"),
                            &after, &err);
        if (rc < 0)
            tg_log_error(AP_LOG, "approval %s: cannot expire: %s", row_str(row, "id"), err.msg);
        if (rc == 1)
            announce(ap, after, "expired", "expired", NULL);
        json_decref(after);
    }
    json_decref(rows);
}

static void on_sweep(uv_timer_t *t)
{
    tg_approvals *ap = t->data;
    int64_t now = tg_wall_ms();
    sweep_state(ap, "pending", now);
    sweep_state(ap, "approved", now);
    /* Decisions made elsewhere (another instance, the store edited). */
    unsigned gen = ++ap->sweep_gen;
    for (tg_approval_watch *w = ap->watches, *next; w; w = next) {
        next = w->next;
        if (w->gen == gen)
            continue;
        w->gen = gen;
        if (watch_check(w))
            next = ap->watches;   /* the callback may have ended other watches */
    }
}

/* ------------------------------------------------------------------ lifecycle */

static void make_hook(tg_approvals *ap)
{
    const tg_approvals_conf *c = &ap->cfg->approvals;
    tg_error err;
    if (ap->hook && ap_webhook_same(ap->hook, c))
        return;
    ap_webhook_free(ap->hook);
    ap->hook = NULL;
    if (c->webhook_url && !(ap->hook = ap_webhook_new(c, &err)))
        tg_log_error(AP_LOG, "%s; approval events are not sent", err.msg);
}

tg_approvals *tg_approvals_new(uv_loop_t *loop, tg_config *cfg, tg_store *store,
                               tg_audit *audit, tg_error *err)
{
    if (!cfg->approvals.where) {
        tg_error_set(err, "approvals: the configuration has no `approvals:` section");
        return NULL;
    }
    if (!store) {
        tg_error_set(err, "approvals: a store is required (requests live in it)");
        return NULL;
    }
    tg_approvals *ap = calloc(1, sizeof *ap);
    if (!ap)
        abort();
    ap->loop = loop;
    ap->cfg = tg_config_ref(cfg);
    ap->store = store;
    ap->audit = audit;
    if (cfg->approvals.webhook_url && !(ap->hook = ap_webhook_new(&cfg->approvals, err))) {
        tg_config_unref(ap->cfg);
        free(ap);
        return NULL;
    }
    uv_timer_init(loop, &ap->sweeper);
    ap->sweeper.data = ap;
    uv_timer_start(&ap->sweeper, on_sweep, SWEEP_MS, SWEEP_MS);
    uv_unref((uv_handle_t *)&ap->sweeper);   /* the sweeper alone keeps no loop running */
    return ap;
}

static void really_free(tg_approvals *ap)
{
    tg_config_unref(ap->cfg);
    free(ap);
}

static void sweeper_closed(uv_handle_t *h)
{
    tg_approvals *ap = h->data;
    ap->handle_closed = 1;
    if (ap->free_requested)
        really_free(ap);
}

void tg_approvals_close(tg_approvals *ap)
{
    if (!ap || ap->closed)
        return;
    ap->closed = 1;
    while (ap->watches)
        watch_unlink(ap->watches);
    ap_webhook_free(ap->hook);
    ap->hook = NULL;
    uv_timer_stop(&ap->sweeper);
    uv_close((uv_handle_t *)&ap->sweeper, sweeper_closed);
}

/* The memory is released once the loop has run the close callbacks. */
void tg_approvals_free(tg_approvals *ap)
{
    if (!ap)
        return;
    tg_approvals_close(ap);
    ap->free_requested = 1;
    if (ap->handle_closed)
        really_free(ap);
}

void tg_approvals_set_config(tg_approvals *ap, tg_config *cfg)
{
    tg_config *old = ap->cfg;
    ap->cfg = tg_config_ref(cfg);
    tg_config_unref(old);
    if (!ap->closed)
        make_hook(ap);
}

void tg_approvals_set_policy(tg_approvals *ap, const tg_policy *policy)
{
    ap->policy = policy;
}

void tg_approvals_set_auth(tg_approvals *ap, tg_auth *auth)
{
    ap->auth = auth;
}

/* ------------------------------------------------------------------ the gated call side */

tg_approval_mode tg_approvals_mode(const tg_approvals *ap, const char *upstream,
                                   const char *upstream_tool, tg_risk risk)
{
    const tg_approvals_conf *c = &ap->cfg->approvals;
    tg_approval_mode m = c->mode;
    for (size_t i = 0; i < c->nmodes; i++) {
        const tg_approval_mode_rule *r = &c->modes[i];
        if ((!r->upstream || (upstream && strcmp(r->upstream, upstream) == 0)) &&
            (!r->tool || (upstream_tool && tg_catalog_glob_match(r->tool, upstream_tool))) &&
            (!r->risk || r->risk == risk))
            m = r->mode;
    }
    return m;
}

/* The binding of a call, as the row columns spell it. */
typedef struct binding {
    const char *requester, *delegator, *tool, *resource, *args_sha256, *policy_version;
} binding;

static void binding_of(tg_arena *a, const tg_approval_call *call, binding *b)
{
    const tg_resource *r = &call->decision->resource;
    *b = (binding){
        .requester = requester_of(call->identity),
        .delegator = call->identity->delegator,
        .tool = call->tool,
        .resource = uid_text(a, r->uid.type, r->uid.id),
        .args_sha256 = call->args_sha256,
        .policy_version = call->decision->policy_version,
    };
}

static bool row_binds(const json_t *row, const binding *b)
{
    return same(row_str(row, "requester"), b->requester) &&
           same(row_str(row, "delegator"), b->delegator) && same(row_str(row, "tool"), b->tool) &&
           same(row_str(row, "resource"), b->resource) &&
           same(row_str(row, "args_sha256"), b->args_sha256) &&
           same(row_str(row, "policy_version"), b->policy_version);
}

/* The rows with this call's args digest (the most selective indexed-enough column). */
static json_t *candidates(tg_approvals *ap, const binding *b, tg_error *err)
{
    json_t *v = json_string(b->args_sha256);
    json_t *rows = tg_store_row_list(ap->store, TG_STORE_APPROVALS, "args_sha256", v, err);
    json_decref(v);
    return rows;
}

/* The live row in `state` bound to the call, or NULL (borrowed from rows). */
static const json_t *find_live(const json_t *rows, const binding *b, const char *state,
                               int64_t now)
{
    size_t i;
    const json_t *row;
    json_array_foreach(rows, i, row) {
        if (same(row_str(row, "state"), state) && row_int(row, "expires_ms") > now &&
            row_binds(row, b))
            return row;
    }
    return NULL;
}

int tg_approvals_find_granted(tg_approvals *ap, const tg_approval_call *call, tg_arena *a,
                              tg_policy_approval *out, tg_error *err)
{
    binding b;
    binding_of(a, call, &b);
    json_t *rows = candidates(ap, &b, err);
    if (!rows)
        return -1;
    const json_t *row = find_live(rows, &b, "approved", tg_wall_ms());
    if (row)
        *out = (tg_policy_approval){tg_arena_strdup(a, row_str(row, "id")),
                                    tg_arena_strdup(a, row_str(row, "approver") ? row_str(row, "approver") : ""),
                                    row_int(row, "decided_ms")};
    json_decref(rows);
    return row ? 1 : 0;
}

int tg_approvals_use(tg_approvals *ap, const char *id, const tg_approval_call *call,
                     tg_error *err)
{
    tg_arena *a = tg_arena_new(0);
    binding b;
    binding_of(a, call, &b);
    json_t *row = tg_store_row_get(ap->store, TG_STORE_APPROVALS, id, err);
    int rc = 0;
    if (!row) {
        rc = err->msg[0] ? -1 : 0;
    } else if (same(row_str(row, "state"), "approved") && row_int(row, "expires_ms") > tg_wall_ms() &&
               row_binds(row, &b)) {
        char *by = tg_arena_sprintf(a, "session=%s rpc=%s traceparent=%s",
                                    call->session_id ? call->session_id : "-",
                                    call->rpc_id ? call->rpc_id : "-",
                                    call->traceparent ? call->traceparent : "-");
        json_t *after = NULL;
        rc = transition(ap, id, "approved",
                        json_pack("{s:s,s:I,s:s}", "state", "used", "used_ms",
                                  (json_int_t)tg_wall_ms(), "used_by", by), &after, err);
        if (rc == 1)
            announce(ap, after, "used", "used", call);
        json_decref(after);
    }
    json_decref(row);
    tg_arena_free(a);
    return rc;
}

/* request_json: everything the view and the approver decision need besides the columns. */
static json_t *request_json(const tg_approvals *ap, const tg_approval_call *call)
{
    const tg_identity *id = call->identity;
    const tg_decision *d = call->decision;
    const tg_audit_options *ao = &ap->cfg->audit;
    json_t *parents = json_array();
    tg_arena *a = tg_arena_new(0);
    for (size_t i = 0; i < d->resource.nparents; i++)
        json_array_append_new(parents, json_string(uid_text(a, d->resource.parents[i].type,
                                                            d->resource.parents[i].id)));
    tg_arena_free(a);
    json_t *reasons = json_array(), *policies = json_array();
    for (size_t i = 0; i < d->nreasons; i++)
        json_array_append_new(reasons, json_string(d->reasons[i]));
    for (size_t i = 0; i < d->npolicies; i++)
        json_array_append_new(policies, json_string(d->policies[i]));
    json_t *args = call->args ? tg_audit_redact(call->args, ao->redact, ao->n_redact) : json_null();
    json_t *r = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:s,s:{s:s,s:s,s:o},s:o,s:o,s:o}",
        "agent", str_or_null(id->agent),
        "delegator", str_or_null(id->delegator),
        "authMethod", str_or_null(id->method),
        "credentialId", str_or_null(id->credential_id),
        "clientIp", str_or_null(id->client_ip),
        "tool", str_or_null(call->tool),
        "upstream", str_or_null(call->upstream),
        "risk", tg_risk_name(d->risk),
        "resource", "type", d->resource.uid.type, "id", d->resource.uid.id, "parents", parents,
        "args", args,
        "reasons", reasons,
        "policies", policies);
    static const char *const meta_keys[][2] = {
        {"toolgate/intent", "intent"}, {"toolgate/workflow", "workflow"}, {"toolgate/ticket", "ticket"}};
    for (size_t i = 0; i < 3; i++) {
        const json_t *v = json_object_get(call->meta, meta_keys[i][0]);
        if (json_is_string(v) && json_string_length(v) > 0)
            json_object_set(r, meta_keys[i][1], (json_t *)v);
    }
    json_object_set_new(r, "upstreamTool", str_or_null(call->upstream_tool));
    json_object_set_new(r, "sessionId", str_or_null(call->session_id));
    json_object_set_new(r, "rpcId", str_or_null(call->rpc_id));
    json_object_set_new(r, "traceparent", str_or_null(call->traceparent));
    return r;
}

/* "apr_" + 26 characters of RFC 4648 base32 (lowercase): 130 random bits. */
static void new_id(char out[31])
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    unsigned char rnd[26];
    tg_random_bytes(rnd, sizeof rnd);
    memcpy(out, "apr_", 4);
    for (size_t i = 0; i < 26; i++)
        out[4 + i] = alphabet[rnd[i] & 31];
    out[30] = '\0';
}

/* inbox_url "#" id; NULL only if a reload dropped the section (then there is no inbox). */
static const char *approval_url(tg_arena *a, const tg_approvals_conf *c, const char *id)
{
    return c->inbox_url ? tg_arena_sprintf(a, "%s#%s", c->inbox_url, id) : NULL;
}

int tg_approvals_request(tg_approvals *ap, const tg_approval_call *call, tg_arena *a,
                         const char **id, const char **url, int64_t *expires_ms,
                         int *created, tg_error *err)
{
    const tg_approvals_conf *c = &ap->cfg->approvals;
    binding b;
    binding_of(a, call, &b);
    int64_t now = tg_wall_ms();
    json_t *rows = candidates(ap, &b, err);
    if (!rows)
        return -1;
    const json_t *live = find_live(rows, &b, "pending", now);
    if (live) {
        *id = tg_arena_strdup(a, row_str(live, "id"));
        *expires_ms = row_int(live, "expires_ms");
        *created = 0;
        json_decref(rows);
        *url = approval_url(a, c, *id);
        return 0;
    }
    json_decref(rows);
    char nid[31];
    new_id(nid);
    json_t *req = request_json(ap, call);
    char *req_text = tg_json_dump(req, NULL);
    json_decref(req);
    json_t *row = json_pack("{s:s,s:s,s:s,s:o,s:s,s:s,s:s,s:o,s:s,s:I,s:I}",
        "id", nid, "state", "pending", "requester", b.requester,
        "delegator", str_or_null(b.delegator), "tool", b.tool, "resource", b.resource,
        "args_sha256", b.args_sha256, "policy_version", str_or_null(b.policy_version),
        "request_json", req_text, "created_ms", (json_int_t)now,
        "expires_ms", (json_int_t)(now + c->expiry_ms));
    free(req_text);
    int rc = tg_store_row_insert(ap->store, TG_STORE_APPROVALS, row, err);
    if (rc == 0) {
        *id = tg_arena_strdup(a, nid);
        *url = approval_url(a, c, nid);
        *expires_ms = now + c->expiry_ms;
        *created = 1;
        announce(ap, row, "requested", "requested", call);
    }
    json_decref(row);
    return rc;
}

/* ------------------------------------------------------------------ the approver side */

static int by_newest(const void *x, const void *y)
{
    const json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
    int64_t ca = row_int(a, "created_ms"), cb = row_int(b, "created_ms");
    return ca < cb ? 1 : ca > cb ? -1 : strcmp(row_str(b, "id"), row_str(a, "id"));
}

json_t *tg_approvals_list(tg_approvals *ap, const char *state, size_t limit, tg_error *err)
{
    json_t *sv = state ? json_string(state) : NULL;
    json_t *rows = tg_store_row_list(ap->store, TG_STORE_APPROVALS, state ? "state" : NULL, sv, err);
    json_decref(sv);
    if (!rows)
        return NULL;
    size_t n = json_array_size(rows);
    json_t **v = calloc(n + 1, sizeof *v);
    if (!v)
        abort();
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(rows, i);
    qsort(v, n, sizeof *v, by_newest);
    json_t *out = json_array();
    for (size_t i = 0; i < n && i < (limit ? limit : LIST_DEFAULT); i++)
        json_array_append_new(out, view_of(ap, v[i]));
    free(v);
    json_decref(rows);
    return out;
}

json_t *tg_approvals_get(tg_approvals *ap, const char *id, tg_error *err)
{
    json_t *row = tg_store_row_get(ap->store, TG_STORE_APPROVALS, id, err);
    if (!row)
        return NULL;
    json_t *v = view_of(ap, row);
    json_decref(row);
    return v;
}

static int refuse(int *status, const char **code, int st, const char *c)
{
    *status = st;
    *code = c;
    return -1;
}

/* May `who` decide the request of `row`? 0 yes; -1 with status/code/err. */
static int authority(tg_approvals *ap, const json_t *row, const json_t *req,
                     const tg_approver *who, int *status, const char **code, tg_error *err)
{
    const char *delegator = row_str(row, "delegator"), *agent = req_str(req, "agent");
    if ((delegator && strcmp(who->user, delegator) == 0) || (agent && strcmp(who->user, agent) == 0)) {
        tg_error_set(err, "%s requested this call (as %s) and cannot decide it; another approver "
                     "must", who->user, delegator && strcmp(who->user, delegator) == 0
                                                ? "the delegating user" : "the agent");
        return refuse(status, code, 403, "SELF_APPROVAL_FORBIDDEN");
    }
    if (!ap->policy) {
        tg_error_set(err, "no policy is loaded, so no one is permitted to approve");
        return refuse(status, code, 403, "APPROVER_NOT_PERMITTED");
    }
    const json_t *res = json_object_get(req, "resource");
    tg_arena *a = tg_arena_new(0);
    size_t np = 0;
    const char **parents = str_vec(a, json_object_get(res, "parents"), &np);
    const char *risk = req_str(req, "risk");
    tg_approve_in in = {
        .user = who->user,
        .groups = who->groups,
        .ngroups = who->ngroups,
        .auth_method = who->method,
        .client_ip = who->client_ip,
        .requester_agent = agent ? agent : "",
        .delegator = delegator,
        .tool = row_str(row, "tool"),
        .risk = risk && strcmp(risk, "read") == 0 ? TG_RISK_READ
              : risk && strcmp(risk, "write") == 0 ? TG_RISK_WRITE : TG_RISK_HIGH,
        .upstream = req_str(req, "upstream"),
        .resource_type = json_string_value(json_object_get(res, "type")),
        .resource_id = json_string_value(json_object_get(res, "id")),
        .parents = parents,
        .nparents = np,
        .ticket = req_str(req, "ticket"),
        .intent = req_str(req, "intent"),
        .workflow = req_str(req, "workflow"),
        .now_ms = tg_wall_ms(),
    };
    tg_decision d;
    int rc = 0;
    if (tg_policy_decide_approve(ap->policy, &in, a, &d, err) < 0) {
        rc = refuse(status, code, 403, "APPROVER_NOT_PERMITTED");
    } else if (d.decision != TG_DECISION_ALLOW) {
        tg_buf why = TG_BUF_INIT;
        for (size_t i = 0; i < d.nreasons; i++)
            tg_buf_printf(&why, "%s%s", i ? ", " : "", d.reasons[i]);
        tg_error_set(err, "the policy does not permit %s to decide this request (%s)", who->user,
                     why.data ? why.data : "NO_MATCHING_PERMIT");
        tg_buf_free(&why);
        rc = refuse(status, code, 403, "APPROVER_NOT_PERMITTED");
    }
    tg_arena_free(a);
    return rc;
}

int tg_approvals_decide(tg_approvals *ap, const char *id, const tg_approver *who,
                        bool approve, const char *comment, json_t **out, int *status,
                        const char **code, tg_error *err)
{
    *out = NULL;
    if (comment && strlen(comment) > COMMENT_MAX) {
        tg_error_set(err, "the comment is longer than %d bytes", COMMENT_MAX);
        return refuse(status, code, 400, "BAD_COMMENT");
    }
    if (!who || !who->user || !*who->user) {
        tg_error_set(err, "no approver");
        return refuse(status, code, 403, "APPROVER_NOT_PERMITTED");
    }
    tg_error gerr = {""};
    json_t *row = tg_store_row_get(ap->store, TG_STORE_APPROVALS, id, &gerr);
    if (!row && !gerr.msg[0]) {
        tg_error_set(err, "no approval request %s", id);
        return refuse(status, code, 404, "NOT_FOUND");
    }
    if (!row) {
        tg_error_set(err, "%s", gerr.msg);
        return refuse(status, code, 500, "STORE_ERROR");
    }
    int64_t now = tg_wall_ms();
    int rc = 0;
    json_t *req = row_request(row);
    if (!same(row_str(row, "state"), "pending") || row_int(row, "expires_ms") <= now) {
        tg_error_set(err, "approval request %s is %s, not pending", id,
                     same(row_str(row, "state"), "pending") ? "expired" : row_str(row, "state"));
        rc = refuse(status, code, 409, "NOT_PENDING");
    } else {
        rc = authority(ap, row, req, who, status, code, err);
    }
    if (rc == 0) {
        json_t *set = json_pack("{s:s,s:I,s:s,s:o}", "state", approve ? "approved" : "denied",
                                "decided_ms", (json_int_t)now, "approver", who->user,
                                "comment", str_or_null(comment));
        if (approve)
            json_object_set_new(set, "expires_ms",
                                json_integer(now + ap->cfg->approvals.grant_ttl_ms));
        json_t *after = NULL;
        int t = transition(ap, id, "pending", set, &after, err);
        if (t < 0) {
            rc = refuse(status, code, 500, "STORE_ERROR");
        } else if (t == 0) {
            tg_error_set(err, "approval request %s was decided by someone else just now", id);
            rc = refuse(status, code, 409, "NOT_PENDING");
        } else {
            char *detail = NULL;
            if (asprintf(&detail, "%s: %s", approve ? "approved" : "denied",
                         comment ? comment : "") < 0)
                abort();
            announce(ap, after, approve ? "approved" : "denied", detail, NULL);
            free(detail);
            *out = view_of(ap, after);
            *status = 200;
            *code = NULL;
        }
        json_decref(after);
    }
    json_decref(req);
    json_decref(row);
    return rc;
}
