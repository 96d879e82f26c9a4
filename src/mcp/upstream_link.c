/*
 * upstream_link.c — one MCP session with one upstream (a "link"): its lifecycle, the
 * initialize handshake toolgate performs as the upstream's client, failure handling,
 * and routing of everything the upstream sends back to the right client session.
 *
 * Lifecycle: the transport reports UP → toolgate sends initialize (its own params for
 * SHARED links, the client's for PER_CLIENT ones) → on the result: protocol version set
 * on the transport, notifications/initialized, GET stream opened, link READY, queued
 * requests sent. DOWN (crash) fails every request in flight on the link with -32603
 * "upstream 'x' crashed: why"; stdio restarts by itself and the next UP initialises the
 * new process before anything else is sent.
 *
 * Routing of upstream → client messages:
 *   responses        → the pending entry with that gateway id, only if it was sent on
 *                      this very link and process generation
 *   requests         → ping answered here; others go to the related call (the POST
 *                      stream that carried them, else the single / most recent call in
 *                      flight on this link), else a PER_CLIENT link's owner, else the
 *                      upstream gets -32603 "no client session to route to"
 *   notifications    → progress by token, cancelled by the request it names,
 *                      list_changed to every session using the link, resources/updated
 *                      to subscribers, others to the related call or all sessions.
 */
#include "mcp/mcp_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMPONENT "mcp"

static void link_free(mcp_link *l)
{
    json_decref(l->init_params);
    json_decref(l->init_result);
    free(l);
}

int mcp_link_send_raw(mcp_link *l, const json_t *msg)
{
    tg_error err;
    if (!l->conn || (l->state != MCP_LINK_READY && l->state != MCP_LINK_INITIALIZING)) return -1;
    if (tg_upconn_send_json(l->conn, msg, &err) != 0) {
        tg_log_warn(COMPONENT, "upstream '%s': send failed: %s", l->conf->name, err.msg);
        return -1;
    }
    return 0;
}

static void reply_error(mcp_link *l, const json_t *id, int code, const char *message)
{
    json_t *r = tg_rpc_error(id, code, message, NULL);
    mcp_link_send_raw(l, r);
    json_decref(r);
}

static const json_t *link_caps(const mcp_link *l)
{
    return json_object_get(l->init_result, "capabilities");
}

bool mcp_link_has(const mcp_link *l, const char *cap)
{
    return !l->init_result || json_object_get(link_caps(l), cap) != NULL;
}

/* ---------------------------------------------------------------- lifecycle */

static void init_reply(mcp_pending *p, mcp_reply *r)
{
    mcp_link *l = p->link;
    json_t *reply = mcp_reply_json(r);
    if (l->state != MCP_LINK_INITIALIZING || p->link_gen != l->gen) {
        mcp_reply_free(r);
        return;
    }
    json_t *result = json_object_get(reply, "result");
    const char *version = json_string_value(json_object_get(result, "protocolVersion"));
    const char *problem = NULL;
    if (!result) problem = json_string_value(json_object_get(json_object_get(reply, "error"),
                                                               "message"));
    else if (!json_is_object(result) || !version) problem = "malformed InitializeResult";
    else if (!mcp_version_supported(version, strlen(version))) problem = "unsupported protocol version";
    if (problem || !result) {
        l->state = MCP_LINK_FAILED;
        snprintf(l->why, sizeof l->why, "initialize failed: %s%s%s", problem ? problem : "error",
                 version ? " " : "", version ? version : "");
        tg_log_error(COMPONENT, "upstream '%s': %s", l->conf->name, l->why);
        mcp_pending_link_failed(l, false, MCP_REPLY_UNAVAILABLE, "upstream '%s' is unavailable: %s",
                                l->conf->name, l->why);
        mcp_reply_free(r);
        return;
    }
    json_decref(l->init_result);
    l->init_result = json_incref(result);
    mcp_reply_free(r);
    tg_upconn_set_protocol_version(l->conn, version);
    json_t *n = json_pack("{s:s,s:s}", "jsonrpc", "2.0", "method", "notifications/initialized");
    mcp_link_send_raw(l, n);
    json_decref(n);
    tg_upconn_open_stream(l->conn);
    l->state = MCP_LINK_READY;
    tg_log_info(COMPONENT, "upstream '%s' ready (protocol %s)", l->conf->name, version);
    mcp_pending_link_ready(l);
}

static void link_connect(mcp_link *l, tg_error *err);

static void on_state(tg_upconn *c, tg_upconn_state st, const char *why, void *user)
{
    mcp_link *l = user;
    if (st == TG_UPCONN_CLOSED) {
        tg_mcp *m = l->m;
        if (c == l->conn) l->conn = NULL;
        l->nconns--;
        m->closing--;
        if (l->state == MCP_LINK_CLOSING && l->nconns == 0) link_free(l);
        mcp_maybe_done(m);
        return;
    }
    if (!l->conn) l->conn = c; /* a transport may report before tg_upconn_new returns */
    if (c != l->conn || l->state == MCP_LINK_CLOSING) return; /* a replaced connection */
    if (st == TG_UPCONN_UP) {
        l->gen++;
        l->why[0] = '\0';
        l->state = MCP_LINK_INITIALIZING;
        mcp_pending_start(l, "initialize", l->init_params, NULL, 0, init_reply);
    } else if (st == TG_UPCONN_DOWN) {
        l->state = MCP_LINK_DOWN;
        snprintf(l->why, sizeof l->why, "%s", why ? why : "connection lost");
        tg_log_warn(COMPONENT, "upstream '%s' down: %s", l->conf->name, l->why);
        bool stdio = l->conf->transport == TG_UP_STDIO;
        mcp_pending_link_failed(l, true, MCP_REPLY_CRASH, "upstream '%s' %s: %s", l->conf->name,
                                stdio ? "crashed" : "failed", l->why);
        if (!stdio && l->state == MCP_LINK_DOWN) {
            /* stdio restarts by itself; an HTTP upstream that lost its session needs a
             * new connection (and session). Queued requests wait for it. */
            l->conn = NULL;
            l->m->closing++;
            tg_upconn_close(c);
            link_connect(l, NULL);
        }
    }
}

static void on_send_failed(tg_upconn *c, int64_t id, int http_status, const char *why,
                           void *user)
{
    mcp_link *l = user;
    mcp_pending *p = id ? mcp_pending_find(l->m, id) : NULL;
    if (p && p->link == l) {
        mcp_pending_fail(p, MCP_REPLY_CRASH, TG_RPC_INTERNAL_ERROR, "upstream '%s' failed: %s",
                         l->conf->name, why);
    } else {
        tg_log_warn(COMPONENT, "upstream '%s': a message could not be delivered: %s",
                    l->conf->name, why);
    }
}

static void on_message(tg_upconn *c, const tg_upmsg *msg, int64_t stream_of, void *user);

/* Opens a transport connection for the link; on failure the link is FAILED. */
static void link_connect(mcp_link *l, tg_error *err)
{
    static const tg_upconn_cbs cbs = {on_message, on_state, on_send_failed};
    tg_error e2;
    l->state = MCP_LINK_STARTING;
    l->nconns++; /* before: callbacks may run inside tg_upconn_new */
    tg_upconn *conn = tg_upconn_new(l->m->loop, l->conf, &cbs, l, err ? err : &e2);
    if (!conn) {
        /* Kept as a FAILED link: requests routed to it get a clear error, and the rest
         * of the federation keeps working. */
        l->nconns--;
        l->state = MCP_LINK_FAILED;
        snprintf(l->why, sizeof l->why, "could not start: %.200s", (err ? err : &e2)->msg);
        tg_log_error(COMPONENT, "upstream '%s' %s", l->conf->name, l->why);
        mcp_pending_link_failed(l, false, MCP_REPLY_UNAVAILABLE, "upstream '%s' is unavailable: %s",
                                l->conf->name, l->why);
        return;
    }
    if (!l->conn) l->conn = conn;
}

mcp_link *mcp_link_new(tg_mcp *m, size_t idx, mcp_session *owner, json_t *init_params,
                       tg_error *err)
{
    mcp_link *l = calloc(1, sizeof *l);
    if (!l) abort();
    l->m = m;
    l->idx = idx;
    l->conf = &m->cfg->upstreams[idx];
    l->owner = owner;
    l->init_params = init_params ? json_incref(init_params)
        : json_pack("{s:s,s:{s:{s:b},s:{},s:{}},s:{s:s,s:s}}", "protocolVersion",
                    TG_MCP_LATEST_VERSION, "capabilities", "roots", "listChanged", 1,
                    "sampling", "elicitation", "clientInfo", "name", "toolgate", "version",
                    TG_VERSION);
    link_connect(l, err);
    return l;
}

void mcp_link_close(mcp_link *l)
{
    if (l->state == MCP_LINK_CLOSING) return;
    l->state = MCP_LINK_CLOSING;
    snprintf(l->why, sizeof l->why, "closing");
    mcp_pending_link_failed(l, false, MCP_REPLY_UNAVAILABLE, "upstream '%s' is closing",
                            l->conf->name);
    if (l->conn) {
        l->m->closing++;
        tg_upconn_close(l->conn); /* the last on_state(CLOSED) frees the link */
    } else if (l->nconns == 0) {
        link_free(l);
    }
}

/* ---------------------------------------------------------------- routing */

/* The client call an upstream message belongs to: the request whose POST stream carried
 * it (HTTP), else the single — or most recent — request in flight on this link. */
static mcp_call *related_call(mcp_link *l, int64_t stream_of)
{
    tg_mcp *m = l->m;
    mcp_pending *p = stream_of ? mcp_pending_find(m, stream_of) : NULL;
    if (p && p->link == l && p->call) return p->call;
    mcp_call *best = NULL;
    for (mcp_pending *q = m->pendings_tail; q; q = q->prev) {
        if (q->link == l && q->sent && q->call) {
            best = q->call;
            break;
        }
    }
    return best;
}

static const char *capability_for(const char *method)
{
    if (strcmp(method, "sampling/createMessage") == 0) return "sampling";
    if (strcmp(method, "elicitation/create") == 0) return "elicitation";
    if (strcmp(method, "roots/list") == 0) return "roots";
    return NULL;
}

static void upstream_request(mcp_link *l, json_t *msg, int64_t stream_of)
{
    const char *method = json_string_value(json_object_get(msg, "method"));
    const json_t *id = json_object_get(msg, "id");
    if (strcmp(method, "ping") == 0) {
        json_t *r = json_pack("{s:s,s:O,s:{}}", "jsonrpc", "2.0", "id", id, "result");
        mcp_link_send_raw(l, r);
        json_decref(r);
        return;
    }
    mcp_call *call = related_call(l, stream_of);
    mcp_session *s = call ? call->s : l->owner;
    if (!s || s->ending) {
        reply_error(l, id, TG_RPC_INTERNAL_ERROR, "no client session to route to");
        return;
    }
    const char *cap = capability_for(method);
    if (cap && !json_object_get(s->client_caps, cap)) {
        char why[128];
        snprintf(why, sizeof why, "Client does not support %s", cap);
        reply_error(l, id, TG_RPC_METHOD_NOT_FOUND, why);
        return;
    }
    if (s->s2c.n >= MCP_MAX_S2C) {
        reply_error(l, id, TG_RPC_INTERNAL_ERROR, "too many requests awaiting the client");
        return;
    }
    char key[32];
    int klen = snprintf(key, sizeof key, "tg-%" PRIu64, ++s->next_s2c);
    mcp_s2c *q = malloc(sizeof *q);
    if (!q) abort();
    q->link = l;
    q->link_gen = l->gen;
    q->upstream_id = json_deep_copy(id);
    mcp_map_put(&s->s2c, key, (size_t)klen, q);
    json_t *out = json_copy(msg);
    json_object_set_new(out, "id", json_string(key));
    if (call) mcp_call_related(call, out);
    else mcp_session_deliver(s, out);
    json_decref(out);
}

/* Every initialised session this link serves. */
static void broadcast(mcp_link *l, const json_t *msg)
{
    for (mcp_session *s = l->m->sessions; s; s = s->next)
        if (s->initialized && mcp_session_uses(s, l)) mcp_session_deliver(s, msg);
}

static void upstream_cancelled(mcp_link *l, json_t *msg)
{
    json_t *params = json_object_get(msg, "params");
    json_t *rid = json_object_get(params, "requestId");
    for (mcp_session *s = l->m->sessions; s && rid; s = s->next) {
        if (!mcp_session_uses(s, l)) continue;
        mcp_map_iter it;
        mcp_map_iter_init(&it, &s->s2c);
        for (const mcp_map_entry *e; (e = mcp_map_iter_next(&it));) {
            mcp_s2c *q = e->val;
            if (q->link != l || !json_equal(q->upstream_id, rid)) continue;
            json_t *out = json_copy(msg), *p2 = json_copy(params);
            json_object_set_new(p2, "requestId", json_stringn(e->key, e->klen));
            json_object_set_new(out, "params", p2);
            mcp_session_deliver(s, out);
            json_decref(out);
            json_decref(q->upstream_id);
            free(q);
            mcp_map_del(&s->s2c, e->key, e->klen);
            return;
        }
    }
}

static void upstream_notification(mcp_link *l, json_t *msg, int64_t stream_of)
{
    tg_mcp *m = l->m;
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *params = json_object_get(msg, "params");
    if (strcmp(method, "notifications/progress") == 0) {
        json_t *token = json_object_get(params, "progressToken");
        char key[24];
        mcp_call *c = json_is_integer(token)
            ? mcp_map_get(&m->tokens, key, mcp_int_key(json_integer_value(token), key)) : NULL;
        if (!c || !mcp_session_uses(c->s, l)) return; /* unknown token: dropped */
        json_t *out = json_copy(msg), *p2 = json_copy(params);
        json_object_set(p2, "progressToken", c->progress_token);
        json_object_set_new(out, "params", p2);
        mcp_call_related(c, out);
        json_decref(out);
    } else if (strcmp(method, "notifications/cancelled") == 0) {
        upstream_cancelled(l, msg);
    } else if (strcmp(method, "notifications/tools/list_changed") == 0 ||
               strcmp(method, "notifications/prompts/list_changed") == 0 ||
               strcmp(method, "notifications/resources/list_changed") == 0) {
        const char *which = method + strlen("notifications/");
        for (mcp_session *s = m->sessions; s; s = s->next)
            if (mcp_session_uses(s, l)) mcp_routes_invalidate(s, which);
        broadcast(l, msg);
    } else if (strcmp(method, "notifications/resources/updated") == 0) {
        const char *uri = json_string_value(json_object_get(params, "uri"));
        if (!uri) return;
        size_t klen;
        char *key = mcp_sub_key(l->idx, uri, &klen);
        for (mcp_session *s = m->sessions; s; s = s->next)
            if (mcp_session_uses(s, l) && mcp_map_get(&s->subs, key, klen))
                mcp_session_deliver(s, msg);
        free(key);
    } else {
        mcp_call *c = related_call(l, stream_of);
        if (c) mcp_call_related(c, msg);
        else broadcast(l, msg);
    }
}

static void on_message(tg_upconn *c, const tg_upmsg *msg, int64_t stream_of, void *user)
{
    mcp_link *l = user;
    if (!l->conn) l->conn = c;
    if (c != l->conn) return;
    const tg_jdoc *d = msg->doc;
    if (msg->kind == TG_RPC_KIND_RESPONSE) {
        /* The hot path: the answer keeps the upstream's bytes; only its id is rewritten,
         * by splicing, when it goes to the client. */
        int id = tg_jscan_get(d, msg->tok, "id");
        int64_t gw;
        mcp_pending *p = tg_jscan_int(d, id, &gw) == 0 ? mcp_pending_find(l->m, gw) : NULL;
        if (p && p->link == l && p->sent && p->link_gen == l->gen) {
            mcp_pending_finish(p, mcp_reply_new(d, msg->tok, msg->raw, msg->len));
        } else {
            tg_log_debug(COMPONENT, "upstream '%s': response to an unknown id dropped",
                         l->conf->name);
        }
        return;
    }
    json_t *j = tg_jscan_json(d, msg->tok);
    if (msg->kind == TG_RPC_KIND_REQUEST) upstream_request(l, j, stream_of);
    else upstream_notification(l, j, stream_of);
    json_decref(j);
}
