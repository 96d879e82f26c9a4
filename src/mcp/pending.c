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
    free(p->method);
    tg_buf_free(&p->out);
    free(p);
}

static bool is_initialize(const mcp_pending *p)
{
    return p->method && strcmp(p->method, "initialize") == 0;
}

/* ---------------------------------------------------------------- replies */

/* The id span and what the answer says, from the message's tokens. raw is the message's
 * own text (d's token tok starts at raw[0]). */
static void reply_read(mcp_reply *r, const tg_jdoc *d, int tok)
{
    size_t base = d->toks[tok].start;
    int id = tg_jscan_get(d, tok, "id");
    r->id_start = d->toks[id].start - base;
    r->id_end = d->toks[id].end - base;
    int error = tg_jscan_get(d, tok, "error");
    int is_error = error >= 0 ? -1 : tg_jscan_path(d, tok, "result.isError");
    r->answer = error >= 0 ? MCP_ANSWER_RPC_ERROR
              : is_error >= 0 && d->toks[is_error].type == TG_JT_TRUE ? MCP_ANSWER_TOOL_ERROR
              : MCP_ANSWER_RESULT;
}

mcp_reply *mcp_reply_new(const tg_jdoc *d, int tok, const char *raw, size_t len)
{
    mcp_reply *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->raw = malloc(len + 1);
    if (!r->raw) abort();
    memcpy(r->raw, raw, len);
    r->raw[len] = '\0';
    r->len = len;
    reply_read(r, d, tok);
    return r;
}

mcp_reply *mcp_reply_from_json(const json_t *msg)
{
    size_t len;
    char *text = tg_json_dump(msg, &len);
    tg_jdoc d = TG_JDOC_INIT;
    if (tg_jscan(&d, text, len, 0, NULL) != 0) abort(); /* our own output */
    mcp_reply *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->raw = text;
    r->len = len;
    reply_read(r, &d, 0);
    r->json = json_incref((json_t *)msg);
    tg_jdoc_free(&d);
    return r;
}

/* The jansson value of a message that was validated when it arrived: scanned again
 * (cheap, allocation-light) and built from the tokens, instead of jansson's slower
 * json_loadb (docs/performance.md, "the decided call"). */
static json_t *validated_json(const char *raw, size_t len)
{
    tg_jdoc d = TG_JDOC_INIT;
    if (tg_jscan(&d, raw, len, 0, NULL) != 0) abort(); /* validated when it arrived */
    json_t *v = tg_jscan_json(&d, 0);
    tg_jdoc_free(&d);
    return v;
}

json_t *mcp_reply_json(mcp_reply *r)
{
    if (!r->json) r->json = validated_json(r->raw, r->len);
    return r->json;
}

void mcp_reply_free(mcp_reply *r)
{
    if (!r) return;
    json_decref(r->json);
    free(r->raw);
    free(r);
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
    if (!p->method) { /* readiness probe: the answer is the InitializeResult */
        json_t *r = json_pack("{s:s,s:I,s:O}", "jsonrpc", "2.0", "id", (json_int_t)p->gw_id,
                              "result", l->init_result);
        mcp_pending_finish(p, mcp_reply_from_json(r));
        json_decref(r);
        return;
    }
    tg_error err;
    if (!l->conn || tg_upconn_send(l->conn, p->out.data, p->out.len, p->gw_id,
                                      p->call && p->call->traceparent[0] ? p->call->traceparent : NULL,
                                      &err) != 0) {
        mcp_pending_fail(p, MCP_REPLY_UNAVAILABLE, TG_RPC_INTERNAL_ERROR,
                         "upstream '%s' is unavailable: %s", l->conf->name,
                         l->conn ? err.msg : "closed");
        return;
    }
    p->sent = true;
    p->link_gen = l->gen;
    p->deadline_ms = tg_now_ms() + (is_initialize(p) ? l->conf->init_timeout_ms
                                                     : l->conf->call_timeout_ms);
    pending_arm(l->m, p->deadline_ms);
}

/* A new pending with its gateway id, registered; the caller writes p->out (the request
 * under p->gw_id) and then calls pending_go. */
static mcp_pending *pending_new(mcp_link *l, const char *method, mcp_call *call, size_t part,
                                void (*on_reply)(mcp_pending *, mcp_reply *))
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
        p->method = strdup(method);
        if (!p->method) abort();
    }
    p->prev = m->pendings_tail;
    if (m->pendings_tail) m->pendings_tail->next = p;
    else m->pendings = p;
    m->pendings_tail = p;
    char key[24];
    mcp_map_put(&m->pendings_by_id, key, mcp_int_key(p->gw_id, key), p);
    if (call) call->npending++;
    return p;
}

/* Sends p now if its link is ready, else queues it (or fails it). */
static void pending_go(mcp_pending *p)
{
    mcp_link *l = p->link;
    tg_mcp *m = l->m;
    /* initialize is what makes a link READY, so it is the one request sent before. */
    if (l->state == MCP_LINK_READY || (l->state == MCP_LINK_INITIALIZING && is_initialize(p))) {
        pending_send(p);
    } else if (l->state == MCP_LINK_FAILED || l->state == MCP_LINK_CLOSING) {
        mcp_pending_fail(p, MCP_REPLY_UNAVAILABLE, TG_RPC_INTERNAL_ERROR,
                         "upstream '%s' is unavailable: %s", l->conf->name,
                         l->why[0] ? l->why : "closing");
    } else {
        p->deadline_ms = tg_now_ms() + l->conf->init_timeout_ms;
        pending_arm(m, p->deadline_ms);
    }
}

void mcp_pending_start(mcp_link *l, const char *method, json_t *params, mcp_call *call,
                       size_t part, void (*on_reply)(mcp_pending *, mcp_reply *))
{
    mcp_pending *p = pending_new(l, method, call, part, on_reply);
    if (method) {
        json_t *msg = json_pack("{s:s,s:I,s:s}", "jsonrpc", "2.0", "id", (json_int_t)p->gw_id,
                                "method", method);
        if (params) json_object_set(msg, "params", params);
        tg_json_dump_buf(msg, &p->out);
        json_decref(msg);
    }
    pending_go(p);
}

mcp_pending *mcp_pending_find(tg_mcp *m, int64_t gw_id)
{
    char key[24];
    return mcp_map_get(&m->pendings_by_id, key, mcp_int_key(gw_id, key));
}

void mcp_pending_finish(mcp_pending *p, mcp_reply *reply)
{
    pending_unlink(p);
    p->on_reply(p, reply);
    pending_free(p);
}

void mcp_pending_fail(mcp_pending *p, mcp_reply_origin origin, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *id = json_integer(p->gw_id);
    json_t *r = tg_rpc_error(id, code, msg, NULL);
    json_decref(id);
    mcp_reply *reply = mcp_reply_from_json(r);
    reply->origin = origin;
    mcp_pending_finish(p, reply);
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

void mcp_pending_link_failed(mcp_link *l, bool only_sent, mcp_reply_origin origin,
                             const char *fmt, ...)
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
        if (p) mcp_pending_fail(p, origin, TG_RPC_INTERNAL_ERROR, "%s", msg);
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
            mcp_pending_fail(p, MCP_REPLY_TIMEOUT, TG_RPC_INTERNAL_ERROR,
                             "upstream '%s' did not answer within %u ms", l->conf->name, ms);
        } else {
            mcp_pending_fail(p, MCP_REPLY_UNAVAILABLE, TG_RPC_INTERNAL_ERROR,
                             "upstream '%s' is not ready after %u ms%s%s", l->conf->name,
                             l->conf->init_timeout_ms, l->why[0] ? ": " : "", l->why);
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

static void exchange_drop_collected(mcp_exchange *x)
{
    for (size_t i = 0; i < x->ncollected; i++) free(x->collected[i]);
    free(x->collected);
    x->collected = NULL;
    x->ncollected = 0;
}

/* Every call answered: finish the HTTP answer and free the exchange. */
static void exchange_close(mcp_exchange *x)
{
    tg_http_req *req = x->req;
    if (req) {
        if (x->batch && !x->sse && x->ncollected > 0) {
            tg_http_header h;
            size_t nh = session_header(x, &h);
            tg_buf body = TG_BUF_INIT;
            for (size_t i = 0; i < x->ncollected; i++) {
                tg_buf_append(&body, i ? "," : "[", 1);
                tg_buf_appends(&body, x->collected[i]);
            }
            tg_buf_append(&body, "]", 1);
            x->req = NULL;
            tg_http_respond_json(req, 200, &h, nh, body.data, body.len);
            tg_buf_free(&body);
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
    exchange_drop_collected(x);
    free(x);
}

void mcp_exchange_settle(mcp_exchange *x)
{
    if (--x->open == 0) exchange_close(x);
}

/* ---------------------------------------------------------------- calls */

static mcp_span span_of(const tg_jdoc *d, int tok, size_t base)
{
    mcp_span sp = {0, 0};
    if (tok >= 0) {
        sp.start = d->toks[tok].start - base;
        sp.end = d->toks[tok].end - base;
    }
    return sp;
}

/* The id or token as a jansson value (string or integer tokens only). */
static json_t *scalar_json(const tg_jdoc *d, int tok)
{
    int64_t v;
    if (tg_jscan_int(d, tok, &v) == 0) return json_integer(v);
    size_t n;
    char *str = tg_jscan_strdup(d, tok, &n);
    json_t *j = json_stringn(str, n);
    free(str);
    return j;
}

/* Keeps the message's value, with our progress token (if any) in the place of the
 * client's: what mcp_call_params returns the parameters of. */
static void call_set_msg(mcp_call *c, json_t *msg)
{
    c->msg = msg;
    if (c->gw_token) {
        json_t *meta = json_object_get(json_object_get(c->msg, "params"), "_meta");
        json_object_set_new(meta, "progressToken", json_integer(c->gw_token));
    }
}

mcp_call *mcp_call_new(mcp_session *s, mcp_exchange *x, const tg_jdoc *d, int tok)
{
    tg_mcp *m = s->m;
    mcp_call *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->m = m;
    c->s = s;
    c->x = x;
    /* The call's own strings live in its arena, as its gate's will: one free at the end
     * instead of one per string (default-size chunks come from the thread's cache). */
    c->arena = tg_arena_new(0);
    const tg_jtok *t = &d->toks[tok];
    c->raw_len = t->end - t->start;
    c->raw = tg_arena_alloc(c->arena, c->raw_len + 1);
    memcpy(c->raw, d->buf + t->start, c->raw_len);
    c->raw[c->raw_len] = '\0';

    int id = tg_jscan_get(d, tok, "id"), method = tg_jscan_get(d, tok, "method");
    int params = tg_jscan_get(d, tok, "params");
    c->id = scalar_json(d, id);
    char kmem[64];
    tg_buf key;
    tg_buf_use(&key, kmem, sizeof kmem);
    tg_jscan_canon(d, id, &key);
    c->idkey = tg_arena_strndup(c->arena, key.data, key.len);
    tg_buf_free(&key);
    c->method = tg_jscan_str_arena(d, method, c->arena, NULL);
    c->method_span = span_of(d, method, t->start);
    c->params_span = span_of(d, params, t->start);
    int name = tg_jscan_get(d, params, "name");
    c->name = tg_jscan_str_arena(d, name, c->arena, NULL);
    if (c->name) c->name_span = span_of(d, name, t->start);
    c->parts = tg_arena_calloc(c->arena, m->cfg->nupstreams ? m->cfg->nupstreams : 1,
                               sizeof *c->parts);

    int token = tg_jscan_path(d, params, "_meta.progressToken");
    if (token >= 0 && (d->toks[token].type == TG_JT_STRING || d->toks[token].type == TG_JT_INTEGER)) {
        /* The upstream sees our token; notifications/progress maps it back. */
        c->progress_token = scalar_json(d, token);
        c->gw_token = ++m->next_id;
        c->token_span = span_of(d, token, t->start);
        char k[24];
        mcp_map_put(&m->tokens, k, mcp_int_key(c->gw_token, k), c);
    }
    /* A call the gate decides reads its parameters: their tokens are kept now, from the
     * scan at hand, instead of scanning the same bytes again or building a tree. */
    if (m->policy && (strcmp(c->method, "tools/call") == 0 || strcmp(c->method, "prompts/get") == 0 ||
                      strcmp(c->method, "resources/read") == 0))
        tg_jdoc_subtree(&c->params, d, params, c->raw, t->start);
    c->next = s->calls;
    if (s->calls) s->calls->prev = c;
    s->calls = c;
    /* A duplicate in-flight id is not registered; the router answers it with an error. */
    if (!mcp_map_get(&s->calls_by_id, c->idkey, strlen(c->idkey)))
        mcp_map_put(&s->calls_by_id, c->idkey, strlen(c->idkey), c);
    if (x) x->open++;
    return c;
}

mcp_call *mcp_call_new_json(mcp_session *s, mcp_exchange *x, const json_t *msg)
{
    size_t len;
    char *text = tg_json_dump(msg, &len);
    tg_jdoc d = TG_JDOC_INIT;
    if (tg_jscan(&d, text, len, 0, NULL) != 0) abort(); /* our own output of a valid message */
    mcp_call *c = mcp_call_new(s, x, &d, 0);
    tg_jdoc_free(&d);
    free(text);
    return c;
}

const tg_jdoc *mcp_call_params_doc(mcp_call *c)
{
    if (!c->params.ntoks && c->params_span.end) {
        /* not kept when the call was made (no policy then): scan the request again */
        tg_jdoc d = TG_JDOC_INIT;
        if (tg_jscan(&d, c->raw, c->raw_len, 0, NULL) != 0) abort(); /* validated on arrival */
        tg_jdoc_subtree(&c->params, &d, tg_jscan_get(&d, 0, "params"), c->raw, 0);
        tg_jdoc_free(&d);
    }
    return &c->params;
}

json_t *mcp_call_params(mcp_call *c)
{
    if (!c->msg) call_set_msg(c, validated_json(c->raw, c->raw_len));
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
    mcp_gate_release(c);
    if (c->prev) c->prev->next = c->next;
    else s->calls = c->next;
    if (c->next) c->next->prev = c->prev;
    if (mcp_map_get(&s->calls_by_id, c->idkey, strlen(c->idkey)) == c)
        mcp_map_del(&s->calls_by_id, c->idkey, strlen(c->idkey));
    for (size_t i = 0; i < m->cfg->nupstreams; i++) mcp_reply_free(c->parts[i]);
    json_decref(c->progress_token);
    json_decref(c->msg);
    tg_jdoc_free(&c->params);
    json_decref(c->id);
    tg_arena_free(c->arena); /* raw, idkey, method, name, parts and the gate's data */
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
            for (size_t i = 0; x->req && i < x->ncollected; i++)
                mcp_session_emit(c->s, x->serial, x->req, x->collected[i],
                                 strlen(x->collected[i]), false);
            exchange_drop_collected(x);
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
    size_t len;
    char *data = tg_json_dump(resp, &len);
    json_decref(resp);
    mcp_call_answer_raw(c, data, len);
    free(data);
}

void mcp_call_answer_raw(mcp_call *c, const char *data, size_t len)
{
    mcp_exchange *x = c->x;
    if (x && x->req && !x->sse && x->sse_preferred) exchange_start_sse(x);
    if (x && x->req && !x->sse && !x->batch) {
        tg_http_header h;
        size_t nh = session_header(x, &h);
        tg_http_req *req = x->req;
        x->req = NULL;
        tg_http_respond_json(req, 200, &h, nh, data, len);
    } else if (x && x->req && !x->sse) {
        x->collected = realloc(x->collected, (x->ncollected + 1) * sizeof *x->collected);
        if (!x->collected) abort();
        char *copy = malloc(len + 1);
        if (!copy) abort();
        memcpy(copy, data, len);
        copy[len] = '\0';
        x->collected[x->ncollected++] = copy;
    } else {
        call_emit(c, data, len);
    }
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

void mcp_call_stream(mcp_call *c)
{
    mcp_exchange *x = c->x;
    if (x && x->req && !x->sse && !x->batch) exchange_start_sse(x);
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

static void call_part_reply(mcp_pending *p, mcp_reply *reply)
{
    mcp_call *c = p->call;
    mcp_reply_free(c->parts[p->part]);
    c->parts[p->part] = reply;
    if (--c->nwait == 0) c->finish(c);
}

json_t *mcp_call_part(mcp_call *c, size_t i)
{
    return c->parts[i] ? mcp_reply_json(c->parts[i]) : NULL;
}

void mcp_call_ask(mcp_call *c, size_t idx, const char *method, json_t *params)
{
    c->nwait++;
    mcp_pending_start(mcp_session_link(c->s, idx), method, params, c, idx, call_part_reply);
}

void mcp_call_ask_raw(mcp_call *c, size_t idx, const char *rename)
{
    c->nwait++;
    mcp_pending *p = pending_new(mcp_session_link(c->s, idx), c->method, c, idx, call_part_reply);
    /* The envelope is ours (as mcp_pending_start writes it); method and params are the
     * client's bytes, with our progress token and the upstream's own name spliced in.
     * Room for all of it at once: growing by doubling copied the arguments again. */
    tg_buf_reserve(&p->out, c->raw_len + (rename ? 6 * strlen(rename) : 0) + 96);
    tg_buf_appends(&p->out, "{\"jsonrpc\":\"2.0\",\"id\":");
    tg_buf_append_i64(&p->out, p->gw_id);
    tg_buf_appends(&p->out, ",\"method\":");
    tg_buf_append(&p->out, c->raw + c->method_span.start, c->method_span.end - c->method_span.start);
    if (c->params_span.end) {
        char tokbuf[21], mem[256];
        tg_buf name;
        tg_buf_use(&name, mem, sizeof mem);
        tg_jsplice ed[2];
        size_t n = 0;
        if (c->gw_token) {
            size_t tl = tg_i64_dec(c->gw_token, tokbuf);
            ed[n++] = (tg_jsplice){c->token_span.start, c->token_span.end, tokbuf, tl};
        }
        if (rename) {
            tg_buf_json_string(&name, rename, strlen(rename));
            ed[n++] = (tg_jsplice){c->name_span.start, c->name_span.end, name.data, name.len};
        }
        tg_buf_appends(&p->out, ",\"params\":");
        tg_jsplice_build(&p->out, c->raw, c->params_span.start, c->params_span.end, ed, n);
        tg_buf_free(&name);
    }
    tg_buf_append(&p->out, "}", 1);
    pending_go(p);
}

void mcp_call_sent(mcp_call *c)
{
    if (--c->nwait == 0) c->finish(c);
}
