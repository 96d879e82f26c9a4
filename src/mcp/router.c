/*
 * router.c — the MCP router's HTTP entry point (tg_mcp_handle), its checks, and the
 * dispatch of client messages; plus creation and shutdown of the router.
 *
 * Design (decided):
 *  - HTTP: the path must be cfg->mcp_path (else 404). Host must be an allowed host, an
 *    Origin (if sent) an allowed origin (403, DNS-rebinding protection). Singleton headers
 *    (MCP-Session-Id, MCP-Protocol-Version) appear at most once (400). A protocol version
 *    header must name a supported revision (400); absent, the session's negotiated one
 *    applies. A supported revision other than the negotiated one is accepted, as the
 *    official SDK server does: the conformance suite (server-sse-multiple-streams) sends
 *    2025-03-26 on a 2025-11-25 session and expects 200; the spec requires 400 only for
 *    unsupported revisions. POST needs Accept: application/json + text/event-stream (406)
 *    and Content-Type: application/json (415); the body passes tg_json_parse (400/-32700)
 *    and tg_rpc_classify (400/-32600). Batches (JSON arrays) only on 2025-03-26 sessions.
 *    initialize without MCP-Session-Id creates a session (random 32-byte hex id, sent in
 *    MCP-Session-Id); with one → 400. Anything else without it → 400, unknown/ended id or
 *    another principal's session → 404. Notifications and responses → 202. GET opens the
 *    session's server-to-client SSE stream (406 without text/event-stream, 409 for a
 *    second one, Last-Event-ID resumes from the replay ring). DELETE ends the session.
 *    Other methods → 405 with Allow. max_sessions reached → initialize gets 503.
 *  - A POSTed request is answered application/json when the upstream's final response is
 *    the first related message, else the POST switches to text/event-stream (priming
 *    event, then each message with a session-unique event id, the response last). A
 *    dropped stream does not cancel: later messages go to the GET stream or the ring.
 *  - Upstreams: SHARED links are opened by tg_mcp_new and initialised by toolgate itself;
 *    PER_CLIENT links are opened when a client initialises, with the client's own
 *    initialize params, and the client's InitializeResult waits for them. One upstream:
 *    its own InitializeResult (transparency); several: merged (federation.c).
 *  - Rewriting: gateway-unique ids and progress tokens upstream, mapped back per
 *    (session, id); cancellations mapped both ways; server-to-client requests get "tg-N"
 *    ids per session and the client's answers are mapped back (pending.c,
 *    upstream_link.c). Before notifications/initialized a session may only ping.
 *  - Authentication (gates.auth) runs right after the Host/Origin checks and before
 *    anything MCP-level: the request waits for tg_auth_authenticate (cancelled if the
 *    client goes away); a refusal is answered with the status, WWW-Authenticate and
 *    message the auth module gives, logged with the reason and client IP (never the
 *    credential) and recorded in the audit trail. RFC 9728 metadata is served, without
 *    authentication, at /.well-known/oauth-protected-resource and its MCP-path variant.
 *    Without gates.auth every request acts as mcp_anonymous.
 *  - Sessions are bound to identity->principal_key at initialize; session_of() answers
 *    404 to any other principal, exactly as for an unknown id.
 *  - The client's Authorization header is never passed on: the transports take no
 *    client headers at all.
 *  - mcp_gate_forward() (gate.c), called by the routes in federation.c, is the single
 *    place a tools/call, resources/read or prompts/get is decided and forwarded.
 */
#include "mcp/mcp_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define COMPONENT "mcp"

static void http_error(tg_http_req *req, int status, int code, const tg_http_header *h,
                       size_t nh, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void http_error(tg_http_req *req, int status, int code, const tg_http_header *h,
                       size_t nh, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *e = tg_rpc_error(NULL, code, msg, NULL);
    size_t len;
    char *body = tg_json_dump(e, &len);
    json_decref(e);
    tg_http_respond_json(req, status, h, nh, body, len);
    free(body);
}

static void serve_mcp(tg_mcp *m, tg_http_req *req, const mcp_asker *who);
static void authenticate(tg_mcp *m, tg_http_req *req);

static void respond_rpc(tg_http_req *req, int status, json_t *msg_steal)
{
    size_t len;
    char *body = tg_json_dump(msg_steal, &len);
    json_decref(msg_steal);
    tg_http_respond_json(req, status, NULL, 0, body, len);
    free(body);
}

/* The session a request names, checked; or NULL after answering the error. */
static mcp_session *session_of(tg_mcp *m, tg_http_req *req, const char *principal)
{
    size_t len;
    const char *sid = tg_http_req_header(req, "MCP-Session-Id", &len);
    if (!sid) {
        http_error(req, 400, TG_RPC_SERVER_ERROR, NULL, 0, "Bad Request: missing MCP-Session-Id");
        return NULL;
    }
    mcp_session *s = mcp_session_find(m, sid, len);
    /* Another principal presenting a session id learns nothing: same answer as unknown. */
    if (!s || strcmp(s->principal, principal) != 0) {
        http_error(req, 404, TG_RPC_SESSION_NOT_FOUND, NULL, 0, "Session not found");
        return NULL;
    }
    s->last_active_ms = tg_now_ms();
    return s;
}

/* ---------------------------------------------------------------- client messages */

/* Requests a session may send before notifications/initialized. */
static bool allowed_before_initialized(const char *method)
{
    return strcmp(method, "ping") == 0 || strcmp(method, "logging/setLevel") == 0;
}

/* A just-created call: refused, or routed. */
static void dispatch_request(mcp_session *s, mcp_call *c, const mcp_asker *who)
{
    mcp_gate_adopt(c, who);
    /* a call whose id was already in progress is not registered under it */
    bool dup = mcp_map_get(&s->calls_by_id, c->idkey, strlen(c->idkey)) != c;
    if (dup) {
        mcp_call_error(c, TG_RPC_INVALID_REQUEST, NULL,
                       "Invalid Request: id is already in use by a request in progress");
    } else if (strcmp(c->method, "initialize") == 0) {
        mcp_call_error(c, TG_RPC_INVALID_REQUEST, NULL,
                       "Invalid Request: the session is already initialized");
    } else if (!s->initialized && !allowed_before_initialized(c->method)) {
        mcp_call_error(c, TG_RPC_INVALID_REQUEST, NULL,
                       "Invalid Request: send notifications/initialized first");
    } else {
        mcp_route_request(c);
    }
}

/* The client's answer to a server-to-client request: back to the upstream that asked. */
static void client_response(mcp_session *s, json_t *msg)
{
    const char *id = json_string_value(json_object_get(msg, "id"));
    mcp_s2c *q = id ? mcp_map_del(&s->s2c, id, strlen(id)) : NULL;
    if (!q) {
        tg_log_debug(COMPONENT, "session %.8s…: response to an unknown request dropped", s->id);
        return;
    }
    if (q->link_gen == q->link->gen) {
        json_t *out = json_copy(msg);
        json_object_set(out, "id", q->upstream_id);
        mcp_link_send_raw(q->link, out);
        json_decref(out);
    }
    json_decref(q->upstream_id);
    free(q);
}

/* A notification or response from the client (borrowed). */
static void client_message(mcp_session *s, json_t *msg, tg_rpc_kind kind)
{
    if (kind == TG_RPC_KIND_RESPONSE) {
        client_response(s, msg);
        return;
    }
    const char *method = json_string_value(json_object_get(msg, "method"));
    if (strcmp(method, "notifications/initialized") == 0) {
        s->initialized = true;
    } else if (strcmp(method, "notifications/cancelled") == 0) {
        json_t *params = json_object_get(msg, "params");
        json_t *rid = json_object_get(params, "requestId");
        if (!json_is_string(rid) && !json_is_integer(rid)) return;
        size_t klen;
        char *key = tg_json_dump(rid, &klen);
        mcp_call *c = mcp_map_get(&s->calls_by_id, key, klen);
        free(key);
        const char *reason = json_string_value(json_object_get(params, "reason"));
        if (c && strcmp(c->method, "initialize") != 0)
            mcp_call_cancel(c, reason ? reason : "cancelled by the client");
    } else {
        mcp_route_notification(s, msg);
    }
}

/* ---------------------------------------------------------------- POST */

static void post_initialize(tg_mcp *m, tg_http_req *req, json_t *msg, const mcp_asker *who)
{
    json_t *params = json_object_get(msg, "params");
    const char *want = json_string_value(json_object_get(params, "protocolVersion"));
    if (!want) {
        respond_rpc(req, 200, tg_rpc_error(json_object_get(msg, "id"), TG_RPC_INVALID_PARAMS,
                                           "Invalid params: protocolVersion is required", NULL));
        json_decref(msg);
        return;
    }
    if (m->nsessions >= m->cfg->limits.max_sessions) {
        http_error(req, 503, TG_RPC_SERVER_ERROR, NULL, 0,
                   "Service Unavailable: the session limit (%zu) is reached",
                   m->cfg->limits.max_sessions);
        json_decref(msg);
        return;
    }
    const char *version = mcp_version_supported(want, strlen(want)) ? want : TG_MCP_LATEST_VERSION;
    json_t *caps = json_object_get(params, "capabilities");
    json_t *own_caps = json_is_object(caps) ? json_incref(caps) : json_object();
    mcp_session *s = mcp_session_new(m, who->identity->principal_key, version, own_caps);
    json_decref(own_caps);
    for (size_t i = 0; i < m->cfg->nupstreams; i++)
        if (m->cfg->upstreams[i].sessions == TG_UP_SESSIONS_PER_CLIENT)
            s->links[i] = mcp_link_new(m, i, s, params, NULL);
    tg_log_info(COMPONENT, "session %.8s… created (protocol %s)", s->id, version);

    mcp_exchange *x = mcp_exchange_new(s, req);
    x->announce_session = true;
    mcp_call *c = mcp_call_new_json(s, x, msg);
    json_decref(msg);
    mcp_gate_adopt(c, who);
    c->finish = mcp_initialize_finish;
    c->nwait++;
    for (size_t i = 0; i < m->cfg->nupstreams; i++) mcp_call_ask(c, i, NULL, NULL);
    mcp_call_sent(c);
    mcp_exchange_settle(x);
}

static bool is_initialize(const json_t *msg, tg_rpc_kind kind)
{
    return kind == TG_RPC_KIND_REQUEST &&
           strcmp(json_string_value(json_object_get(msg, "method")), "initialize") == 0;
}

static void post_batch(tg_mcp *m, tg_http_req *req, json_t *batch, const mcp_asker *who)
{
    mcp_session *s = session_of(m, req, who->identity->principal_key);
    if (!s) return;
    size_t n = json_array_size(batch), nreq = 0;
    tg_error err;
    if (strcmp(s->version, "2025-03-26") != 0) {
        http_error(req, 400, TG_RPC_INVALID_REQUEST, NULL, 0,
                   "Invalid Request: batches are not supported in protocol version %s", s->version);
        return;
    }
    if (n == 0) {
        http_error(req, 400, TG_RPC_INVALID_REQUEST, NULL, 0, "Invalid Request: empty batch");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *msg = json_array_get(batch, i);
        tg_rpc_kind kind = tg_rpc_classify(msg, &err);
        if (kind == TG_RPC_KIND_INVALID) {
            http_error(req, 400, TG_RPC_INVALID_REQUEST, NULL, 0, "Invalid Request: item %zu: %s",
                       i, err.msg);
            return;
        }
        if (is_initialize(msg, kind)) {
            http_error(req, 400, TG_RPC_INVALID_REQUEST, NULL, 0,
                       "Invalid Request: initialize cannot be part of a batch");
            return;
        }
        if (kind == TG_RPC_KIND_REQUEST) nreq++;
    }
    mcp_exchange *x = nreq ? mcp_exchange_new(s, req) : NULL;
    if (x) x->batch = true;
    for (size_t i = 0; i < n; i++) {
        json_t *msg = json_array_get(batch, i);
        tg_rpc_kind kind = tg_rpc_classify(msg, NULL);
        if (kind == TG_RPC_KIND_REQUEST) dispatch_request(s, mcp_call_new_json(s, x, msg), who);
        else client_message(s, msg, kind);
    }
    if (x) mcp_exchange_settle(x);
    else tg_http_respond(req, 202, NULL, 0, NULL, 0);
}

static void handle_post(tg_mcp *m, tg_http_req *req, const mcp_asker *who)
{
    size_t len;
    const char *accept = tg_http_req_header(req, "Accept", &len);
    if (!accept || !mcp_accepts(accept, len, "application/json") ||
        !mcp_accepts(accept, len, "text/event-stream")) {
        http_error(req, 406, TG_RPC_SERVER_ERROR, NULL, 0,
                   "Not Acceptable: Accept must list application/json and text/event-stream");
        return;
    }
    const char *ct = tg_http_req_header(req, "Content-Type", &len);
    if (!ct || !mcp_content_type_json(ct, len)) {
        http_error(req, 415, TG_RPC_SERVER_ERROR, NULL, 0,
                   "Unsupported Media Type: Content-Type must be application/json");
        return;
    }
    /* Scanned, not parsed: a request is kept as its bytes and forwarded by splicing;
     * only the rare messages the router must look into become jansson values. */
    tg_error err;
    tg_jdoc *d = &m->doc;
    if (tg_jscan(d, req->body, req->body_len, TG_JSON_MAX_DEPTH, &err) != 0) {
        http_error(req, 400, TG_RPC_PARSE_ERROR, NULL, 0, "Parse error: %s", err.msg);
        return;
    }
    if (d->toks[0].type == TG_JT_ARRAY) {
        json_t *batch = tg_jscan_json(d, 0);
        post_batch(m, req, batch, who);
        json_decref(batch);
        return;
    }
    tg_rpc_kind kind = tg_jscan_classify(d, 0, &err);
    if (kind == TG_RPC_KIND_INVALID) {
        http_error(req, 400, TG_RPC_INVALID_REQUEST, NULL, 0, "Invalid Request: %s", err.msg);
        return;
    }
    if (kind == TG_RPC_KIND_REQUEST && tg_jscan_streq(d, tg_jscan_get(d, 0, "method"), "initialize")) {
        if (tg_http_req_header(req, "MCP-Session-Id", &len)) {
            http_error(req, 400, TG_RPC_INVALID_REQUEST, NULL, 0,
                       "Bad Request: initialize must not carry MCP-Session-Id");
            return;
        }
        post_initialize(m, req, tg_jscan_json(d, 0), who);
        return;
    }
    mcp_session *s = session_of(m, req, who->identity->principal_key);
    if (!s) return;
    if (kind == TG_RPC_KIND_REQUEST) {
        mcp_exchange *x = mcp_exchange_new(s, req);
        dispatch_request(s, mcp_call_new(s, x, d, 0), who);
        mcp_exchange_settle(x);
        return;
    }
    json_t *msg = tg_jscan_json(d, 0);
    client_message(s, msg, kind);
    json_decref(msg);
    tg_http_respond(req, 202, NULL, 0, NULL, 0);
}

/* ---------------------------------------------------------------- GET, DELETE */

static void handle_get(tg_mcp *m, tg_http_req *req, const mcp_asker *who)
{
    size_t len;
    const char *accept = tg_http_req_header(req, "Accept", &len);
    if (!accept || !mcp_accepts(accept, len, "text/event-stream")) {
        http_error(req, 406, TG_RPC_SERVER_ERROR, NULL, 0,
                   "Not Acceptable: Accept must list text/event-stream");
        return;
    }
    mcp_session *s = session_of(m, req, who->identity->principal_key);
    if (!s) return;
    if (s->get_req) {
        http_error(req, 409, TG_RPC_SERVER_ERROR, NULL, 0,
                   "Conflict: this session already has a GET stream open");
        return;
    }
    mcp_session_open_stream(s, req, tg_http_req_header(req, "Last-Event-ID", &len));
}

static void handle_delete(tg_mcp *m, tg_http_req *req, const mcp_asker *who)
{
    mcp_session *s = session_of(m, req, who->identity->principal_key);
    if (!s) return;
    mcp_session_end(s, "deleted by the client");
    tg_http_respond(req, 200, NULL, 0, NULL, 0);
}

/* ---------------------------------------------------------------- authentication */

/* One request waiting for the authenticator; lives in the request's arena. done is set
 * once the callback ran, so the abort hook never cancels a finished authentication. */
typedef struct auth_wait {
    tg_mcp *m;
    tg_http_req *req;
    mcp_held *auth;              /* a reference on the authenticator asked, until done */
    tg_auth_pending *pending;
    const char *traceparent;
    bool done;
} auth_wait;

/* Every value of a (repeatable) header joined with ", ", in the request's arena; NULL
 * when absent. */
static const char *joined_header(tg_http_req *req, const char *name)
{
    size_t nlen = strlen(name), total = 0, n = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const tg_http_header *h = &req->headers[i];
        if (!tg_strcaseeq_n(h->name, h->name_len, name, nlen)) continue;
        total += (n++ ? 2 : 0) + h->value_len;
    }
    if (n == 0) return NULL;
    char *out = tg_arena_alloc(req->arena, total + 1), *p = out;
    for (size_t i = 0; i < req->nheaders; i++) {
        const tg_http_header *h = &req->headers[i];
        if (!tg_strcaseeq_n(h->name, h->name_len, name, nlen)) continue;
        if (p != out) {
            memcpy(p, ", ", 2);
            p += 2;
        }
        memcpy(p, h->value, h->value_len);
        p += h->value_len;
    }
    *p = '\0';
    return out;
}

static void auth_aborted(tg_http_req *req, void *user)
{
    (void)req;
    auth_wait *w = user;
    if (w->done) return;
    if (w->pending) tg_auth_cancel(w->pending);
    w->done = true;
    mcp_held_unref(w->auth);
}

static void auth_finish(const tg_auth_result *res, auth_wait *w);

static void auth_done(const tg_auth_result *res, void *user)
{
    auth_wait *w = user;
    mcp_held *held = w->auth;
    auth_finish(res, w);
    mcp_held_unref(held); /* res is no longer used */
}

static void auth_finish(const tg_auth_result *res, auth_wait *w)
{
    tg_http_req *req = w->req;
    w->done = true;
    tg_http_req_on_abort(req, NULL, NULL);
    if (w->m->shutting_down) { /* a JWKS fetch outlived the sessions: nothing to serve */
        http_error(req, 503, TG_RPC_SERVER_ERROR, NULL, 0, "Service Unavailable: shutting down");
        return;
    }
    if (res->identity) {
        mcp_asker who = {res->identity, w->traceparent, req->received_ns};
        serve_mcp(w->m, req, &who);
        return;
    }
    /* The client learns the message the auth module chose ("invalid credentials" …);
     * the reason goes to the log and the audit trail only. */
    tg_log_warn(COMPONENT, "authentication refused (%d) for %s: %s", res->status, req->client_ip,
                res->log_reason ? res->log_reason : "no reason given");
    mcp_gate_auth_failure(w->m, req, res, w->traceparent);
    tg_http_header h = {"WWW-Authenticate", 16, res->www_authenticate,
                        res->www_authenticate ? strlen(res->www_authenticate) : 0};
    http_error(req, res->status, TG_RPC_SERVER_ERROR, &h, res->www_authenticate ? 1 : 0, "%s",
               res->client_message ? res->client_message : "invalid credentials");
}

static void authenticate(tg_mcp *m, tg_http_req *req)
{
    size_t len;
    const char *tp = tg_http_req_header(req, "traceparent", &len);
    const char *traceparent = mcp_gate_traceparent(req->arena, tp, tp ? len : 0);
    if (!m->gates.auth) {
        tg_identity *anon = tg_identity_copy(req->arena, &mcp_anonymous);
        anon->client_ip = req->client_ip;
        mcp_asker who = {anon, traceparent, req->received_ns};
        serve_mcp(m, req, &who);
        return;
    }
    auth_wait *w = tg_arena_calloc(req->arena, 1, sizeof *w);
    w->m = m;
    w->req = req;
    w->traceparent = traceparent;
    /* The connection's slot holds the auth module's memo of its last token. */
    tg_http_conn_slot *slot = req->conn_slot;
    if (slot) slot->free = tg_auth_memo_free;
    tg_auth_input in = {
        .authorization = joined_header(req, "Authorization"),
        .authorization_repeated = tg_http_req_header_count(req, "Authorization") > 1,
        .query = req->query,
        .peer_ip = req->client_ip,
        .x_forwarded_for = joined_header(req, "X-Forwarded-For"),
        .forwarded = joined_header(req, "Forwarded"),
        .memo = slot ? &slot->data : NULL,
    };
    w->auth = mcp_held_ref(m->auth);
    tg_http_req_on_abort(req, auth_aborted, w);
    tg_auth_pending *p = tg_auth_authenticate(m->gates.auth, &in, req->arena, auth_done, w);
    if (!w->done) w->pending = p;
}

/* RFC 9728 metadata, at /.well-known/oauth-protected-resource and the variant with the
 * MCP path appended. Returns true when the path was one of them (answered). */
static bool serve_metadata(tg_mcp *m, tg_http_req *req, const char *mcp_path)
{
    static const char base[] = "/.well-known/oauth-protected-resource";
    size_t blen = sizeof base - 1;
    if (req->path_len < blen || memcmp(req->path, base, blen) != 0) return false;
    const char *rest = req->path + blen;
    size_t rlen = req->path_len - blen;
    if (rlen != 0 && (rlen != strlen(mcp_path) || memcmp(rest, mcp_path, rlen) != 0)) return false;
    if (!m->gates.auth) {
        http_error(req, 404, TG_RPC_SERVER_ERROR, NULL, 0, "Not Found: authentication is off");
    } else if (req->method != TG_HTTP_GET) {
        tg_http_header allow = {"Allow", 5, "GET", 3};
        http_error(req, 405, TG_RPC_SERVER_ERROR, &allow, 1, "Method Not Allowed");
    } else {
        const char *md = tg_auth_metadata_json(m->gates.auth);
        tg_http_respond_json(req, 200, NULL, 0, md, strlen(md));
    }
    return true;
}

/* ---------------------------------------------------------------- entry */

void tg_mcp_handle(tg_http_req *req, void *ctx)
{
    tg_mcp *m = ctx;
    const tg_config *cfg = m->cfg;
    size_t len;
    const char *path = cfg->mcp_path ? cfg->mcp_path : "/mcp";
    if (serve_metadata(m, req, path)) return;
    if (req->path_len != strlen(path) || memcmp(req->path, path, req->path_len) != 0) {
        http_error(req, 404, TG_RPC_SERVER_ERROR, NULL, 0, "Not Found");
        return;
    }
    const char *host = tg_http_req_header(req, "Host", &len);
    if (tg_http_req_header_count(req, "Host") != 1 || !mcp_host_allowed(cfg, host, len)) {
        http_error(req, 403, TG_RPC_SERVER_ERROR, NULL, 0, "Host '%.*s' is not allowed",
                   host ? (int)(len > 255 ? 255 : len) : 0, host ? host : "");
        return;
    }
    const char *origin = tg_http_req_header(req, "Origin", &len);
    if (origin && (tg_http_req_header_count(req, "Origin") != 1 ||
                   !mcp_origin_allowed(cfg, origin, len))) {
        http_error(req, 403, TG_RPC_SERVER_ERROR, NULL, 0, "Origin '%.*s' is not allowed",
                   (int)(len > 255 ? 255 : len), origin);
        return;
    }
    authenticate(m, req);
}

/* Everything MCP-level, for an authenticated request. */
static void serve_mcp(tg_mcp *m, tg_http_req *req, const mcp_asker *who)
{
    size_t len;
    static const char *const singletons[] = {"MCP-Session-Id", "MCP-Protocol-Version",
                                             "Last-Event-ID", "Content-Type", "Accept"};
    for (size_t i = 0; i < sizeof singletons / sizeof singletons[0]; i++) {
        if (tg_http_req_header_count(req, singletons[i]) > 1) {
            http_error(req, 400, TG_RPC_SERVER_ERROR, NULL, 0, "Bad Request: several %s headers",
                       singletons[i]);
            return;
        }
    }
    const char *ver = tg_http_req_header(req, "MCP-Protocol-Version", &len);
    if (ver && !mcp_version_supported(ver, len)) {
        http_error(req, 400, TG_RPC_SERVER_ERROR, NULL, 0,
                   "Bad Request: unsupported MCP-Protocol-Version (supported: %s, %s, %s)",
                   tg_mcp_supported_versions[0], tg_mcp_supported_versions[1],
                   tg_mcp_supported_versions[2]);
        return;
    }
    switch (req->method) {
    case TG_HTTP_POST: handle_post(m, req, who); break;
    case TG_HTTP_GET: handle_get(m, req, who); break;
    case TG_HTTP_DELETE: handle_delete(m, req, who); break;
    default: {
        tg_http_header allow = {"Allow", 5, "GET, POST, DELETE", 17};
        http_error(req, 405, TG_RPC_SERVER_ERROR, &allow, 1, "Method Not Allowed");
        break;
    }
    }
}

/* ---------------------------------------------------------------- life */

static void sweep_cb(uv_timer_t *t)
{
    mcp_session_sweep(t->data);
}

mcp_held *mcp_held_new(void *obj, void (*release)(void *obj))
{
    mcp_held *h = calloc(1, sizeof *h);
    if (!h) abort();
    h->obj = obj;
    h->refs = 1;
    h->release = release;
    return h;
}

mcp_held *mcp_held_ref(mcp_held *h)
{
    if (h) h->refs++;
    return h;
}

void mcp_held_unref(mcp_held *h)
{
    if (!h || --h->refs > 0) return;
    h->release(h->obj);
    free(h);
}

static void release_policy(void *obj)
{
    tg_policy_free(obj);
}

static void release_auth(void *obj)
{
    tg_auth_free(obj);
}

tg_mcp *tg_mcp_new(uv_loop_t *loop, tg_config *cfg, const tg_mcp_gates *gates, tg_error *err)
{
    tg_mcp *m = calloc(1, sizeof *m);
    if (!m) abort();
    m->loop = loop;
    if (gates) m->gates = *gates;
    if (m->gates.policy) m->policy = mcp_held_new(m->gates.policy, release_policy);
    if (m->gates.auth) m->auth = mcp_held_new(m->gates.auth, release_auth);
    m->cfg = tg_config_ref(cfg);
    tg_random_bytes(m->cursor_key, sizeof m->cursor_key);
    m->links = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof *m->links);
    if (!m->links) abort();
    uv_timer_init(loop, &m->tick);
    m->tick.data = m;
    uv_timer_init(loop, &m->sweep);
    m->sweep.data = m;
    uint64_t every = cfg->limits.hold_sse_keepalive_ms ? cfg->limits.hold_sse_keepalive_ms : 15000;
    uv_timer_start(&m->sweep, sweep_cb, every, every);
    for (size_t i = 0; i < cfg->nupstreams; i++)
        if (cfg->upstreams[i].sessions != TG_UP_SESSIONS_PER_CLIENT)
            m->links[i] = mcp_link_new(m, i, NULL, NULL, err);
    return m;
}

void mcp_maybe_done(tg_mcp *m)
{
    if (m->shutting_down && m->closing == 0 && m->done) {
        void (*done)(void *) = m->done;
        m->done = NULL;
        done(m->done_arg);
    }
}

static void timer_closed(uv_handle_t *h)
{
    tg_mcp *m = h->data;
    m->closing--;
    mcp_maybe_done(m);
}

void tg_mcp_shutdown(tg_mcp *m, void (*done)(void *arg), void *arg)
{
    if (m->shutting_down) return;
    m->done = done;
    m->done_arg = arg;
    while (m->sessions) mcp_session_end(m->sessions, "shutting down");
    for (size_t i = 0; i < m->cfg->nupstreams; i++) {
        mcp_link *l = m->links[i];
        m->links[i] = NULL;
        if (l) mcp_link_close(l);
    }
    m->shutting_down = true;
    m->closing += 2;
    uv_timer_stop(&m->tick);
    uv_close((uv_handle_t *)&m->tick, timer_closed);
    uv_close((uv_handle_t *)&m->sweep, timer_closed);
}

void tg_mcp_free(tg_mcp *m)
{
    if (!m) return;
    mcp_map_clear(&m->sessions_by_id);
    mcp_map_clear(&m->pendings_by_id);
    mcp_map_clear(&m->tokens);
    tg_jdoc_free(&m->doc);
    free(m->links);
    mcp_held_unref(m->policy);
    mcp_held_unref(m->auth);
    tg_config_unref(m->cfg);
    free(m);
}

int tg_mcp_set_policy(tg_mcp *m, tg_policy *policy, tg_error *err)
{
    if (!m->policy || !policy)
        return tg_error_set(err, "the `policy:` section cannot be %s by a reload (the router "
                            "records decisions only when started with one): restart toolgate",
                            m->policy ? "removed" : "added");
    mcp_held_unref(m->policy);  /* freed now, or by the last call decided under it */
    m->policy = mcp_held_new(policy, release_policy);
    m->gates.policy = policy;
    mcp_gate_policy_changed(m);
    return 0;
}

int tg_mcp_set_auth(tg_mcp *m, tg_auth *auth, tg_error *err)
{
    if (!m->auth || !auth)
        return tg_error_set(err, "authentication cannot be turned %s by a reload: restart "
                            "toolgate", m->auth ? "off" : "on");
    mcp_held_unref(m->auth);  /* freed now, or when its last authentication completes */
    m->auth = mcp_held_new(auth, release_auth);
    m->gates.auth = auth;
    return 0;
}

int tg_mcp_ready(const tg_mcp *m, tg_buf *why)
{
    static const char *const names[] = {
        [MCP_LINK_STARTING] = "starting", [MCP_LINK_INITIALIZING] = "initializing",
        [MCP_LINK_READY] = "ready", [MCP_LINK_DOWN] = "down", [MCP_LINK_FAILED] = "failed",
        [MCP_LINK_CLOSING] = "closing",
    };
    int ready = 1;
    for (size_t i = 0; i < m->cfg->nupstreams; i++) {
        const mcp_link *l = m->links[i];
        if (m->cfg->upstreams[i].sessions == TG_UP_SESSIONS_PER_CLIENT) continue;
        if (l && l->state == MCP_LINK_READY) continue;
        tg_buf_printf(why, "%s%s: %s", ready ? "" : ", ", m->cfg->upstreams[i].name,
                      l ? names[l->state] : "closed");
        if (l && l->why[0] && (l->state == MCP_LINK_DOWN || l->state == MCP_LINK_FAILED))
            tg_buf_printf(why, " (%s)", l->why);
        ready = 0;
    }
    return ready;
}

size_t tg_mcp_session_count(const tg_mcp *m)
{
    return m->nsessions;
}
