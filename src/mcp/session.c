/*
 * session.c — the session layer: client sessions (MCP-Session-Id), their server-to-
 * client GET stream, session-unique SSE event ids and the small replay ring behind
 * Last-Event-ID resumption, idle expiry.
 *
 * Everything that knows a client session exists lives here, so a protocol revision
 * without sessions changes this file (and the header checks in router.c) only.
 *
 * Replay ring: every event the session emits (on a POST's stream or the GET stream) is
 * recorded with its stream key. An event whose stream is gone waits undelivered; the
 * next GET delivers it. A GET with Last-Event-ID replays the later events of the stream
 * that id belongs to — never events of another stream, as the spec requires — plus
 * undelivered ones. Only the last MCP_RING events, MCP_RING_BYTES at most, are kept.
 */
#include "mcp/mcp_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMPONENT "mcp"

mcp_session *mcp_session_new(tg_mcp *m, const char *principal, const char *version,
                             json_t *client_caps)
{
    mcp_session *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->m = m;
    tg_random_hex(s->id, 32);
    s->principal = strdup(principal);
    if (!s->principal) abort();
    s->tool_annotations = json_object();
    s->tools_shown = json_object();
    snprintf(s->version, sizeof s->version, "%s", version);
    s->client_caps = json_incref(client_caps);
    s->last_active_ms = tg_now_ms();
    s->links = calloc(m->cfg->nupstreams ? m->cfg->nupstreams : 1, sizeof *s->links);
    if (!s->links) abort();
    s->templates = json_array();
    s->next = m->sessions;
    if (m->sessions) m->sessions->prev = s;
    m->sessions = s;
    mcp_map_put(&m->sessions_by_id, s->id, 64, s);
    m->nsessions++;
    return s;
}

mcp_session *mcp_session_find(tg_mcp *m, const char *id, size_t len)
{
    mcp_session *s = mcp_map_get(&m->sessions_by_id, id, len);
    return s && !s->ending ? s : NULL;
}

mcp_link *mcp_session_link(mcp_session *s, size_t idx)
{
    return s->links[idx] ? s->links[idx] : s->m->links[idx];
}

bool mcp_session_uses(const mcp_session *s, const mcp_link *l)
{
    return l->owner ? l->owner == s : true;
}

void mcp_session_end(mcp_session *s, const char *why)
{
    tg_mcp *m = s->m;
    if (s->ending) return;
    s->ending = true;
    tg_log_info(COMPONENT, "session %.8s… ended: %s", s->id, why);
    while (s->calls) {
        mcp_call *c = s->calls;
        /* Any POST still open gets an answer rather than hanging. */
        mcp_call_error(c, TG_RPC_INTERNAL_ERROR, NULL, "session ended: %s", why);
    }
    if (s->get_req) {
        tg_http_req *r = s->get_req;
        s->get_req = NULL;
        tg_http_sse_end(r);
    }
    for (size_t i = 0; i < m->cfg->nupstreams; i++) {
        if (s->links[i]) mcp_link_close(s->links[i]);
    }
    mcp_map_iter it;
    mcp_map_iter_init(&it, &s->s2c);
    for (const mcp_map_entry *e; (e = mcp_map_iter_next(&it));) {
        mcp_s2c *q = e->val;
        json_decref(q->upstream_id);
        free(q);
    }
    mcp_map_clear(&s->s2c);
    mcp_map_clear(&s->calls_by_id);
    mcp_map_clear(&s->tools);
    mcp_map_clear(&s->prompts);
    mcp_map_clear(&s->resources);
    mcp_map_clear(&s->subs);
    for (size_t i = 0; i < MCP_RING; i++) free(s->ring[i].data);
    json_decref(s->templates);
    json_decref(s->tool_annotations);
    json_decref(s->tools_shown);
    tg_arena_free(s->lister_arena);
    json_decref(s->client_caps);
    free(s->principal);
    mcp_map_del(&m->sessions_by_id, s->id, 64);
    if (s->prev) s->prev->next = s->next;
    else m->sessions = s->next;
    if (s->next) s->next->prev = s->prev;
    m->nsessions--;
    free(s->links);
    free(s);
}

/* The ring slot an event id lives in (ids only grow, so slot reuse drops the oldest). */
static mcp_event *ring_slot(mcp_session *s, uint64_t id)
{
    return &s->ring[id % MCP_RING];
}

static bool send_event(tg_http_req *req, const mcp_event *ev)
{
    char id[24];
    snprintf(id, sizeof id, "%" PRIu64, ev->id);
    return tg_http_sse_send(req, id, ev->priming ? NULL : "message", ev->data,
                            strlen(ev->data)) == 0;
}

/* Frees the oldest events' data until the ring holds at most MCP_RING_BYTES, so a
 * session streaming large results cannot pin unbounded memory. */
static void ring_trim(mcp_session *s)
{
    uint64_t first = s->next_event > MCP_RING ? s->next_event - MCP_RING + 1 : 1;
    for (uint64_t id = first; id < s->next_event && s->ring_bytes > MCP_RING_BYTES; id++) {
        mcp_event *ev = ring_slot(s, id);
        if (ev->id != id) continue;
        if (!ev->delivered && !ev->priming)
            tg_log_warn(COMPONENT, "session %.8s…: undelivered event %" PRIu64 " dropped", s->id,
                        ev->id);
        s->ring_bytes -= strlen(ev->data);
        free(ev->data);
        memset(ev, 0, sizeof *ev);
    }
}

void mcp_session_emit(mcp_session *s, uint64_t stream, tg_http_req *req, const char *data,
                      size_t len, bool priming)
{
    uint64_t id = ++s->next_event;
    mcp_event *ev = ring_slot(s, id);
    if (ev->id && !ev->delivered && !ev->priming)
        tg_log_warn(COMPONENT, "session %.8s…: undelivered event %" PRIu64 " dropped", s->id,
                    ev->id);
    if (ev->data) s->ring_bytes -= strlen(ev->data);
    free(ev->data);
    ev->id = id;
    ev->stream = stream;
    ev->priming = priming;
    ev->data = malloc(len + 1);
    if (!ev->data) abort();
    memcpy(ev->data, data, len);
    ev->data[len] = '\0';
    s->ring_bytes += len;
    ev->delivered = req && send_event(req, ev);
    ring_trim(s);
}

void mcp_session_deliver(mcp_session *s, const json_t *msg)
{
    if (s->ending) return;
    size_t len;
    char *data = tg_json_dump(msg, &len);
    mcp_session_emit(s, 0, s->get_req, data, len, false);
    free(data);
}

static void get_aborted(tg_http_req *req, void *user)
{
    mcp_session *s = user;
    if (s->get_req == req) s->get_req = NULL;
}

/* Sends ring events in id order that match: stream == key (after `after`), or never
 * delivered. */
static void replay(mcp_session *s, tg_http_req *req, uint64_t after, uint64_t key, bool keyed)
{
    uint64_t first = s->next_event > MCP_RING ? s->next_event - MCP_RING + 1 : 1;
    for (uint64_t id = first; id <= s->next_event && s->get_req == req; id++) {
        mcp_event *ev = ring_slot(s, id);
        if (ev->id != id || ev->priming) continue;
        bool same_stream = keyed && ev->stream == key && id > after;
        if (!same_stream && ev->delivered) continue;
        ev->delivered = send_event(req, ev);
    }
}

void mcp_session_open_stream(mcp_session *s, tg_http_req *req, const char *last_event_id)
{
    s->get_req = req;
    tg_http_req_on_abort(req, get_aborted, s);
    tg_http_sse_start(req, NULL, 0);
    mcp_session_emit(s, 0, req, "", 0, true);
    uint64_t after = 0, key = 0;
    bool keyed = false;
    if (last_event_id) {
        char *end = NULL;
        unsigned long long v = strtoull(last_event_id, &end, 10);
        mcp_event *ev = ring_slot(s, (uint64_t)v);
        if (end && *end == '\0' && v > 0 && ev->id == v) {
            after = v;
            key = ev->stream;
            keyed = true;
        }
    }
    replay(s, req, after, key, keyed);
}

void mcp_session_sweep(tg_mcp *m)
{
    uint64_t now = tg_now_ms();
    uint32_t idle = m->cfg->limits.session_idle_ms;
    mcp_session *next;
    for (mcp_session *s = m->sessions; s; s = next) {
        next = s->next;
        if (s->get_req) {
            /* Keep intermediaries from closing a quiet stream; an open stream also
             * shows the client is still there. */
            if (tg_http_sse_comment(s->get_req, "keep-alive") == 0) s->last_active_ms = now;
            continue;
        }
        if (idle && !s->calls && now - s->last_active_ms >= idle) {
            mcp_session_end(s, "idle");
        }
    }
}
