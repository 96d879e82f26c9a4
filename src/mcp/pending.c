/*
 * pending.c — the rewriting tables and their clocks: requests toolgate sends upstream
 * (gateway-unique integer ids, per-call timeouts), client calls (the client's original
 * id, progress-token mapping), and the POST exchanges those calls are answered on
 * (JSON, or SSE once a related message must go first).
 *
 * Why one global id counter: a shared upstream sees the requests of every client
 * session on one connection, and clients reuse ids (many always send 1). The upstream
 * only ever sees toolgate's ids; the pending table maps each back to (session, original
 * id, exchange). Progress tokens come from the same counter, so they never collide.
 *
 * Timeouts: one timer for the whole router, armed at the earliest deadline. A queued
 * request (link not ready) expires after the upstream's init timeout, a sent one after
 * its call timeout — then notifications/cancelled goes upstream and the client gets
 * -32603 "upstream 'x' did not answer within N ms".
 *
 * Re-entrancy rule: anything that can run callbacks (sending, answering) may change the
 * tables, so loops over pendings first collect gateway ids, then look each up again.
 */
#include "mcp/mcp_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMPONENT "mcp"

/* ---------------------------------------------------------------- pendings */

static void pending_unlink(mcp_pending *p)
{
    tg_mcp *m = p->link->m;
    char key[24];
    mcp_map_del(&m->pendings_by_id, key, mcp_int_key(p->gw_id, key));
    if (p->prev) p->prev->next = p->next;
    else m->pendings = p->next;
    if (p->next) p->next->prev = p->prev;
    else m->pendings_tail = p->prev;
    if (p->call) p->call->npending--;
}

static void pending_free(mcp_pending *p)
{
    json_decref(p->msg);
    free(p);
}

static bool is_initialize(const mcp_pending *p)
{
    const char *method = p->msg ? json_string_value(json_object_get(p->msg, "method")) : NULL;
    return method && strcmp(method, "initialize") == 0;
}

static void pending_tick(uv_timer_t *t);

/* Arms the router's one timer for this deadline if it is the earliest. */
static void pending_arm(tg_mcp *m, uint64_t deadline_ms)
{
    if (m->shutting_down) return; /* the timer is closed; everything was failed */
    if (m->tick_due && m->tick_due <= deadline_ms) return;
    uint64_t now = tg_now_ms();
    m->tick_due = deadline_ms;
    uv_timer_start(&m->tick, pending_tick, deadline_ms > now ? deadline_ms - now : 0, 0);
}

static void pending_send(mcp_pending *p)
{
    mcp_link *l = p->link;
    if (!p->msg) { /* readiness probe: the answer is the InitializeResult */
        json_t *r = json_pack("{s:s,s:I,s:O}", "jsonrpc", "2.0", "id", (json_int_t)p->gw_id,
                              "result", l->init_result);
        mcp_pending_finish(p, r);
        json_decref(r);
        return;
    }
    tg_error err;
    if (!l->conn || tg_upconn_send(l->conn, p->msg, &err) != 0) {
        mcp_pending_fail(p, TG_RPC_INTERNAL_ERROR, "upstream '%s' is unavailable: %s",
                         l->conf->name, l->conn ? err.msg : "closed");
        return;
    }
    p->sent = true;
    p->link_gen = l->gen;
    p->deadline_ms = tg_now_ms() + (is_initialize(p) ? l->conf->init_timeout_ms
                                                     : l->conf->call_timeout_ms);
    pending_arm(l->m, p->deadline_ms);
}

void mcp_pending_start(mcp_link *l, const char *method, json_t *params, mcp_call *call,
                       size_t part, void (*on_reply)(mcp_pending *, json_t *))
{
    tg_mcp *m = l->m;
    mcp_pending *p = calloc(1, sizeof *p);
    if (!p) abort();
    p->gw_id = ++m->next_id;
    p->link = l;
    p->call = call;
    p->part = part;
    p->on_reply = on_reply;
    if (method) {
        p->msg = json_pack("{s:s,s:I,s:s}", "jsonrpc", "2.0", "id", (json_int_t)p->gw_id,
                           "method", method);
        if (params) json_object_set(p->msg, "params", params);
    }
    p->prev = m->pendings_tail;
    if (m->pendings_tail) m->pendings_tail->next = p;
    else m->pendings = p;
    m->pendings_tail = p;
    char key[24];
    mcp_map_put(&m->pendings_by_id, key, mcp_int_key(p->gw_id, key), p);
    if (call) call->npending++;

    /* initialize is what makes a link READY, so it is the one request sent before. */
    if (l->state == MCP_LINK_READY || (l->state == MCP_LINK_INITIALIZING && is_initialize(p))) {
        pending_send(p);
    } else if (l->state == MCP_LINK_FAILED || l->state == MCP_LINK_CLOSING) {
        mcp_pending_fail(p, TG_RPC_INTERNAL_ERROR, "upstream '%s' is unavailable: %s",
                         l->conf->name, l->why[0] ? l->why : "closing");
    } else {
        p->deadline_ms = tg_now_ms() + l->conf->init_timeout_ms;
        pending_arm(m, p->deadline_ms);
    }
}

mcp_pending *mcp_pending_find(tg_mcp *m, const json_t *gw_id)
{
    if (!json_is_integer(gw_id)) return NULL;
    char key[24];
    return mcp_map_get(&m->pendings_by_id, key, mcp_int_key(json_integer_value(gw_id), key));
}

void mcp_pending_finish(mcp_pending *p, json_t *reply)
{
    pending_unlink(p);
    p->on_reply(p, reply);
    pending_free(p);
}

void mcp_pending_fail(mcp_pending *p, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *id = json_integer(p->gw_id);
    json_t *r = tg_rpc_error(id, code, msg, NULL);
    json_decref(id);
    mcp_pending_finish(p, r);
    json_decref(r);
}

/* Tells the upstream to stop working on a sent request (never initialize, which cannot
 * be cancelled; never a request of an earlier process). */
static void send_cancelled(mcp_pending *p, const char *reason)
{
    mcp_link *l = p->link;
    if (!p->sent || is_initialize(p) || l->state != MCP_LINK_READY || p->link_gen != l->gen)
        return;
    json_t *n = json_pack("{s:s,s:s,s:{s:I,s:s}}", "jsonrpc", "2.0", "method",
                          "notifications/cancelled", "params", "requestId", (json_int_t)p->gw_id,
                          "reason", reason);
    mcp_link_send_raw(l, n);
    json_decref(n);
}

/* Drops p without a reply, telling the upstream if it was sent. */
static void pending_cancel(mcp_pending *p, const char *reason)
{
    send_cancelled(p, reason);
    pending_unlink(p);
    pending_free(p);
}

/* Gateway ids of pendings matching a predicate, collected before acting on them. */
static size_t collect(tg_mcp *m, int64_t **out, bool (*pred)(const mcp_pending *, const void *),
                      const void *arg)
{
    size_t n = 0, cap = 0;
    *out = NULL;
    for (mcp_pending *p = m->pendings; p; p = p->next) {
        if (!pred(p, arg)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            *out = realloc(*out, cap * sizeof **out);
            if (!*out) abort();
        }
        (*out)[n++] = p->gw_id;
    }
    return n;
}

static mcp_pending *find_int(tg_mcp *m, int64_t id)
{
    char key[24];
    return mcp_map_get(&m->pendings_by_id, key, mcp_int_key(id, key));
}

static bool queued_on(const mcp_pending *p, const void *l)
{
    return p->link == l && !p->sent;
}

static bool sent_on(const mcp_pending *p, const void *l)
{
    return p->link == l && p->sent;
}

static bool on_link(const mcp_pending *p, const void *l)
{
    return p->link == l;
}

static bool of_call(const mcp_pending *p, const void *c)
{
    return p->call == c;
}

void mcp_pending_link_ready(mcp_link *l)
{
    int64_t *ids;
    size_t n = collect(l->m, &ids, queued_on, l);
    for (size_t i = 0; i < n; i++) {
        mcp_pending *p = find_int(l->m, ids[i]);
        if (p && !p->sent && l->state == MCP_LINK_READY) pending_send(p);
    }
    free(ids);
}

void mcp_pending_link_failed(mcp_link *l, bool only_sent, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int64_t *ids;
    size_t n = collect(l->m, &ids, only_sent ? sent_on : on_link, l);
    for (size_t i = 0; i < n; i++) {
        mcp_pending *p = find_int(l->m, ids[i]);
        if (p) mcp_pending_fail(p, TG_RPC_INTERNAL_ERROR, "%s", msg);
    }
    free(ids);
}

static bool expired(const mcp_pending *p, const void *now)
{
    return p->deadline_ms && p->deadline_ms <= *(const uint64_t *)now;
}

static void pending_tick(uv_timer_t *t)
{
    tg_mcp *m = t->data;
    m->tick_due = 0;
    uint64_t now = tg_now_ms();
    int64_t *ids;
    size_t n = collect(m, &ids, expired, &now);
    for (size_t i = 0; i < n; i++) {
        mcp_pending *p = find_int(m, ids[i]);
        if (!p || !expired(p, &now)) continue;
        mcp_link *l = p->link;
        if (p->sent) {
            uint32_t ms = is_initialize(p) ? l->conf->init_timeout_ms : l->conf->call_timeout_ms;
            send_cancelled(p, "timeout");
            mcp_pending_fail(p, TG_RPC_INTERNAL_ERROR, "upstream '%s' did not answer within %u ms",
                             l->conf->name, ms);
        } else {
            mcp_pending_fail(p, TG_RPC_INTERNAL_ERROR, "upstream '%s' is not ready after %u ms%s%s",
                             l->conf->name, l->conf->init_timeout_ms, l->why[0] ? ": " : "",
                             l->why);
        }
    }
    free(ids);
    uint64_t next = 0;
    for (mcp_pending *p = m->pendings; p; p = p->next)
        if (p->deadline_ms && (!next || p->deadline_ms < next)) next = p->deadline_ms;
    if (next) pending_arm(m, next);
}

/* ---------------------------------------------------------------- exchanges */

static void exchange_aborted(tg_http_req *req, void *user)
{
    mcp_exchange *x = user;
    x->req = NULL;
    if (x->open == 0) free(x);
}

mcp_exchange *mcp_exchange_new(mcp_session *s, tg_http_req *req)
{
    mcp_exchange *x = calloc(1, sizeof *x);
    if (!x) abort();
    x->m = s->m;
    x->s = s;
    x->req = req;
    size_t len;
    const char *accept = tg_http_req_header(req, "Accept", &len);
    x->sse_preferred = accept && mcp_prefers_sse(accept, len);
    x->serial = ++s->m->next_serial;
    x->open = 1; /* the dispatcher's guard, dropped by mcp_exchange_settle */
    tg_http_req_on_abort(req, exchange_aborted, x);
    return x;
}

static size_t session_header(const mcp_exchange *x, tg_http_header *h)
{
    if (!x->announce_session) return 0;
    h->name = "MCP-Session-Id";
    h->name_len = strlen(h->name);
    h->value = x->s->id;
    h->value_len = strlen(x->s->id);
    return 1;
}

static void exchange_start_sse(mcp_exchange *x)
{
    tg_http_header h;
    size_t nh = session_header(x, &h);
    x->sse = true;
    tg_http_sse_start(x->req, &h, nh);
    mcp_session_emit(x->s, x->serial, x->req, "", 0, true);
}

/* Every call answered: finish the HTTP answer and free the exchange. */
static void exchange_close(mcp_exchange *x)
{
    tg_http_req *req = x->req;
    if (req) {
        if (x->batch && !x->sse && json_array_size(x->collected) > 0) {
            tg_http_header h;
            size_t nh = session_header(x, &h);
            size_t len;
            char *body = tg_json_dump(x->collected, &len);
            x->req = NULL;
            tg_http_respond_json(req, 200, &h, nh, body, len);
            free(body);
        } else {
            /* SSE, or every request was cancelled: a stream that carried no answer
             * is the one valid shape for "no response". */
            if (!x->sse) exchange_start_sse(x);
            if (x->req) {
                x->req = NULL;
                tg_http_sse_end(req);
            }
        }
    }
    json_decref(x->collected);
    free(x);
}

void mcp_exchange_settle(mcp_exchange *x)
{
    if (--x->open == 0) exchange_close(x);
}

/* ---------------------------------------------------------------- calls */

mcp_call *mcp_call_new(mcp_session *s, mcp_exchange *x, json_t *msg)
{
    tg_mcp *m = s->m;
    mcp_call *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->m = m;
    c->s = s;
    c->x = x;
    c->msg = msg;
    c->id = json_object_get(msg, "id");
    c->idkey = tg_json_dump(c->id, NULL);
    c->method = json_string_value(json_object_get(msg, "method"));
    c->parts = calloc(m->cfg->nupstreams ? m->cfg->nupstreams : 1, sizeof *c->parts);
    if (!c->parts) abort();

    json_t *params = json_object_get(msg, "params");
    json_t *meta = json_object_get(params, "_meta");
    json_t *token = json_object_get(meta, "progressToken");
    if (json_is_string(token) || json_is_integer(token)) {
        /* The upstream sees our token; notifications/progress maps it back. Copies, so
         * the client's own message is never edited in place. */
        c->progress_token = json_incref(token);
        c->gw_token = ++m->next_id;
        json_t *p2 = json_copy(params), *meta2 = json_copy(meta);
        json_object_set_new(meta2, "progressToken", json_integer(c->gw_token));
        json_object_set_new(p2, "_meta", meta2);
        json_object_set_new(msg, "params", p2);
        char key[24];
        mcp_map_put(&m->tokens, key, mcp_int_key(c->gw_token, key), c);
    }
    c->next = s->calls;
    if (s->calls) s->calls->prev = c;
    s->calls = c;
    /* A duplicate in-flight id is not registered; the router answers it with an error. */
    if (!mcp_map_get(&s->calls_by_id, c->idkey, strlen(c->idkey)))
        mcp_map_put(&s->calls_by_id, c->idkey, strlen(c->idkey), c);
    if (x) x->open++;
    return c;
}

json_t *mcp_call_params(const mcp_call *c)
{
    return json_object_get(c->msg, "params");
}

/* Drops upstream work, unregisters and frees the call; closes its exchange when it was
 * the last open call. */
static void call_release(mcp_call *c, const char *reason)
{
    tg_mcp *m = c->m;
    mcp_session *s = c->s;
    if (c->npending) {
        int64_t *ids;
        size_t n = collect(m, &ids, of_call, c);
        for (size_t i = 0; i < n; i++) {
            mcp_pending *p = find_int(m, ids[i]);
            if (p) pending_cancel(p, reason);
        }
        free(ids);
    }
    if (c->gw_token) {
        char key[24];
        mcp_map_del(&m->tokens, key, mcp_int_key(c->gw_token, key));
    }
    if (c->prev) c->prev->next = c->next;
    else s->calls = c->next;
    if (c->next) c->next->prev = c->prev;
    if (mcp_map_get(&s->calls_by_id, c->idkey, strlen(c->idkey)) == c)
        mcp_map_del(&s->calls_by_id, c->idkey, strlen(c->idkey));
    for (size_t i = 0; i < m->cfg->nupstreams; i++) json_decref(c->parts[i]);
    free(c->parts);
    json_decref(c->progress_token);
    json_decref(c->msg);
    free(c->idkey);
    mcp_exchange *x = c->x;
    free(c);
    if (x && --x->open == 0) exchange_close(x);
}

/* Emits on the call's POST stream if it is still there, else GET stream / ring. */
static void call_emit(mcp_call *c, const char *data, size_t len)
{
    mcp_exchange *x = c->x;
    if (x && x->req) {
        if (!x->sse) {
            exchange_start_sse(x);
            /* batch answers held for a JSON array go out as events instead */
            for (size_t i = 0; x->req && i < json_array_size(x->collected); i++) {
                size_t l2;
                char *d2 = tg_json_dump(json_array_get(x->collected, i), &l2);
                mcp_session_emit(c->s, x->serial, x->req, d2, l2, false);
                free(d2);
            }
            json_array_clear(x->collected);
        }
        if (x->req) {
            mcp_session_emit(c->s, x->serial, x->req, data, len, false);
            return;
        }
    }
    if (c->s->ending) return;
    mcp_session_emit(c->s, c->s->get_req ? 0 : (x ? x->serial : 0), c->s->get_req, data, len,
                     false);
}

void mcp_call_answer(mcp_call *c, json_t *resp)
{
    mcp_exchange *x = c->x;
    size_t len;
    char *data = tg_json_dump(resp, &len);
    if (x && x->req && !x->sse && x->sse_preferred) exchange_start_sse(x);
    if (x && x->req && !x->sse && !x->batch) {
        tg_http_header h;
        size_t nh = session_header(x, &h);
        tg_http_req *req = x->req;
        x->req = NULL;
        tg_http_respond_json(req, 200, &h, nh, data, len);
    } else if (x && x->req && !x->sse) {
        if (!x->collected) x->collected = json_array();
        json_array_append(x->collected, resp);
    } else {
        call_emit(c, data, len);
    }
    free(data);
    json_decref(resp);
    call_release(c, "answered");
}

void mcp_call_error(mcp_call *c, int code, json_t *data, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mcp_call_answer(c, tg_rpc_error(c->id, code, msg, data));
}

void mcp_call_result(mcp_call *c, json_t *result_steal)
{
    json_t *r = json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", c->id, "result", result_steal);
    mcp_call_answer(c, r);
}

void mcp_call_related(mcp_call *c, const json_t *msg)
{
    size_t len;
    char *data = tg_json_dump(msg, &len);
    call_emit(c, data, len);
    free(data);
}

void mcp_call_cancel(mcp_call *c, const char *reason)
{
    call_release(c, reason);
}

static void call_part_reply(mcp_pending *p, json_t *reply)
{
    mcp_call *c = p->call;
    json_decref(c->parts[p->part]);
    c->parts[p->part] = json_incref(reply);
    if (--c->nwait == 0) c->finish(c);
}

void mcp_call_ask(mcp_call *c, size_t idx, const char *method, json_t *params)
{
    c->nwait++;
    mcp_pending_start(mcp_session_link(c->s, idx), method, params, c, idx, call_part_reply);
}

void mcp_call_sent(mcp_call *c)
{
    if (--c->nwait == 0) c->finish(c);
}
