/*
 * mcp_int.h — private to src/mcp: the router's data structures and the functions its
 * files share. Nothing outside src/mcp (except tests/mcp) includes this.
 *
 * The objects and who owns them:
 *
 *   tg_mcp ──owns──▶ mcp_session (list + map by id)
 *          ──owns──▶ mcp_link per SHARED upstream (links[i], NULL for PER_CLIENT ones)
 *          ──owns──▶ mcp_pending (list + map by gateway id): requests sent (or queued to
 *                    be sent) upstream and not yet answered
 *   mcp_session ──owns──▶ mcp_link per PER_CLIENT upstream (links[i])
 *               ──owns──▶ mcp_call (one per client request being served)
 *               ──owns──▶ mcp_s2c (server-to-client requests awaiting the client's answer)
 *   mcp_exchange: one POST that carried requests; lives while any of its calls is open.
 *
 * Pure helpers (map.c, proto.c, federation_pure.c)
 * touch no I/O so the unit tests link them alone (tg_mcp_pure library).
 */
#ifndef MCP_INT_H
#define MCP_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/tg_common.h"
#include "config/tg_config.h"
#include "mcp/tg_mcp.h"
#include "upstream/tg_upstream.h"

/* ================================================================ map.c (pure) */

/* String-keyed hash map of borrowed values (keys are copied). Not ordered. */
typedef struct mcp_map_entry {
    struct mcp_map_entry *next;
    void *val;
    size_t klen;
    char key[];
} mcp_map_entry;

typedef struct mcp_map {
    mcp_map_entry **buckets; /* NULL until the first put */
    size_t nbuckets;         /* power of two */
    size_t n;
} mcp_map;

typedef struct mcp_map_iter {
    const mcp_map *m;
    size_t bucket;
    mcp_map_entry *e;
} mcp_map_iter;

void *mcp_map_get(const mcp_map *m, const char *key, size_t klen);
void  mcp_map_put(mcp_map *m, const char *key, size_t klen, void *val); /* replaces */
void *mcp_map_del(mcp_map *m, const char *key, size_t klen);            /* old value */
void  mcp_map_clear(mcp_map *m);                                        /* keeps nothing */
void  mcp_map_iter_init(mcp_map_iter *it, const mcp_map *m);
/* Next entry, or NULL at the end. The map must not change while iterating. */
const mcp_map_entry *mcp_map_iter_next(mcp_map_iter *it);

/* Key of a gateway integer id ("123"); out must hold 24 bytes. Returns the length. */
size_t mcp_int_key(int64_t v, char out[24]);

/* ================================================================ proto.c (pure) */

/* Is this one of tg_mcp_supported_versions? */
bool mcp_version_supported(const char *v, size_t len);
/* Host header value (with or without :port) allowed by cfg->allowed_hosts (or, when that
 * list is empty, localhost / 127.0.0.1 / [::1])? */
bool mcp_host_allowed(const tg_config *cfg, const char *host, size_t len);
/* Origin header value allowed: one of cfg->allowed_origins exactly, or when that list is
 * empty, an http(s) origin whose host[:port] is an allowed host. */
bool mcp_origin_allowed(const tg_config *cfg, const char *origin, size_t len);
/* Does an Accept header list this media type (type/subtype, parameters ignored)? */
bool mcp_accepts(const char *accept, size_t len, const char *type);
/* Does the client prefer text/event-stream to application/json (higher q, or equal q
 * and listed first)? Then every answer to its POST is streamed. */
bool mcp_prefers_sse(const char *accept, size_t len);
/* Is the Content-Type's media type application/json (parameters allowed)? */
bool mcp_content_type_json(const char *ct, size_t len);

/* ================================================================ federation_pure.c */

/* base64url without padding. decode returns -1 on any character outside the alphabet
 * or an impossible length. out sizes: encode 4*ceil(n/3)+1, decode 3*len/4+1. */

/* Opaque pagination cursor: which upstreams still have pages and their own cursors.
 * Encoded as base64url(JSON [[index,"cursor"],...]) "." base64url(HMAC-SHA256 tag, 16 B)
 * under a per-process key, so a client cannot forge one. `pairs` is that JSON array. */
char   *mcp_cursor_encode(const unsigned char key[32], const json_t *pairs); /* malloc'd */
/* Returns the pairs (new ref) or NULL with err when tampered, malformed, an index is
 * not below nupstreams, or indices repeat. */
json_t *mcp_cursor_decode(const unsigned char key[32], const char *cursor, size_t nupstreams,
                          tg_error *err);

/* prefix + name, malloc'd. */
char       *mcp_prefix_add(const char *prefix, const char *name);
/* The name without the prefix, or NULL when it does not start with it. NULL/"" prefix
 * returns name. */
const char *mcp_prefix_strip(const char *prefix, const char *name);

/* Key of a resource subscription in mcp_session.subs: "<idx> <uri>", malloc'd. */
char *mcp_sub_key(size_t idx, const char *uri, size_t *len);

/* Merges server capabilities: union of tools/resources/prompts/logging/completions;
 * listChanged / subscribe true if any upstream says so. caps[i] may be NULL. New ref. */
json_t *mcp_caps_merge(json_t *const *caps, size_t n);

/* ================================================================ router state */

typedef struct mcp_session mcp_session;
typedef struct mcp_link mcp_link;
typedef struct mcp_call mcp_call;
typedef struct mcp_pending mcp_pending;
typedef struct mcp_exchange mcp_exchange;

typedef enum {
    MCP_LINK_STARTING = 0, /* transport not UP yet */
    MCP_LINK_INITIALIZING, /* our initialize is in flight */
    MCP_LINK_READY,
    MCP_LINK_DOWN,         /* crashed; stdio restarts it, then we initialise again */
    MCP_LINK_FAILED,       /* the upstream refused initialize; requests fail at once */
    MCP_LINK_CLOSING,
} mcp_link_state;

/* One MCP session with one upstream. Invariants: init_result is the result of the most
 * recent successful initialize (kept across DOWN so capabilities stay known); `gen`
 * changes at every UP, so answers meant for a previous process are never delivered to
 * the new one. */
struct mcp_link {
    tg_mcp *m;
    size_t idx;                  /* index in cfg->upstreams */
    const tg_upstream_conf *conf;
    tg_upconn *conn;             /* the current connection, or NULL */
    size_t nconns;               /* connections not yet CLOSED (a replaced HTTP one may
                                    still be closing); the link is freed at 0 once CLOSING */
    mcp_session *owner;          /* PER_CLIENT: the session; SHARED: NULL */
    mcp_link_state state;
    uint64_t gen;
    char why[256];               /* last DOWN / FAILED reason */
    json_t *init_params;         /* params of the initialize we send (owned) */
    json_t *init_result;         /* owned, or NULL */
};

/* Where a reply came from: the upstream itself, or toolgate standing in for an upstream
 * that did not answer (the audit outcome tells these apart). */
typedef enum {
    MCP_REPLY_UPSTREAM = 0,
    MCP_REPLY_TIMEOUT,        /* no answer within call_timeout */
    MCP_REPLY_CRASH,          /* the upstream died or failed with the request in flight */
    MCP_REPLY_UNAVAILABLE,    /* never sent: the upstream was not (or no longer) usable */
} mcp_reply_origin;

/* What an answer says, read from its tokens when it is made (the audit outcome needs
 * it; scanning the bytes again for two members cost more than the rest of the outcome). */
typedef enum {
    MCP_ANSWER_RESULT = 0,    /* a result without isError: true */
    MCP_ANSWER_TOOL_ERROR,    /* a result with isError: true */
    MCP_ANSWER_RPC_ERROR,     /* a JSON-RPC error */
} mcp_answer_kind;

/* An upstream's answer to a pending request, as bytes: the upstream's own (the hot path
 * never re-serialises them) or a synthesised error. The jansson value is built only for
 * the few answers the router must look into (initialize, federated lists). */
typedef struct mcp_reply {
    char *raw;                   /* owned, raw[0..len) */
    size_t len;
    size_t id_start, id_end;     /* span of the "id" value in raw */
    json_t *json;                /* parsed on demand by mcp_reply_json, owned */
    mcp_reply_origin origin;
    mcp_answer_kind answer;
} mcp_reply;

/* Copies a response's bytes: the message at token tok of d, whose bytes are raw[0..len). */
mcp_reply *mcp_reply_new(const tg_jdoc *d, int tok, const char *raw, size_t len);
/* A synthesised response (serialised here). */
mcp_reply *mcp_reply_from_json(const json_t *msg);
json_t    *mcp_reply_json(mcp_reply *r);  /* borrowed; parsed once */
void       mcp_reply_free(mcp_reply *r);

/* An upstream request toolgate sent or will send. method == NULL marks a readiness probe:
 * it is answered with the link's InitializeResult once the link is READY. */
struct mcp_pending {
    mcp_pending *prev, *next;    /* m->pendings, in creation order */
    int64_t gw_id;
    mcp_link *link;
    uint64_t link_gen;           /* link->gen when sent */
    char *method;                /* owned, or NULL (probe) */
    tg_buf out;                  /* the request's bytes, with the gateway id */
    bool sent;
    uint64_t deadline_ms;        /* queued: init timeout; sent: call timeout */
    /* reply is the upstream's response (or a synthesised error) with the gateway id;
     * handed over: the callback keeps it or frees it (mcp_reply_free). */
    void (*on_reply)(mcp_pending *p, mcp_reply *reply);
    mcp_call *call;              /* the client request this serves, or NULL (internal) */
    size_t part;                 /* upstream index the reply belongs to */
};

/* A span [start, end) of mcp_call.raw; end == 0 when absent. */
typedef struct mcp_span {
    size_t start, end;
} mcp_span;

/* One client request in progress. parts[i] collects upstream i's reply; nwait counts
 * replies still due (plus one while the call is still sending, so a synchronous reply
 * cannot finish it early). The request is kept as the client's bytes with the spans the
 * router rewrites; a jansson value of it exists only if a route asked for one (msg). */
struct mcp_call {
    mcp_call *prev, *next;       /* s->calls */
    tg_mcp *m;
    mcp_session *s;
    mcp_exchange *x;
    char *raw;                   /* the client's request as received (in arena) */
    size_t raw_len;
    mcp_span method_span, params_span, token_span, name_span;
    json_t *msg;                 /* NULL, or raw parsed with the token rewritten (owned) */
    tg_jdoc params;              /* a decided call's params as tokens over raw (token 0;
                                    no tokens when absent or not decided): what the gate
                                    reads, instead of building a tree of them */
    json_t *id;                  /* the client's original id (owned) */
    char *idkey;                 /* id as tg_json_dump writes it: key in s->calls_by_id
                                    (in arena) */
    char *method;                /* in arena */
    char *name;                  /* params.name when a string (in arena), else NULL */
    json_t *progress_token;      /* the client's token (owned) or NULL */
    int64_t gw_token;            /* our token upstream, 0 when none */
    mcp_reply **parts;           /* nupstreams entries (the array in arena, each owned) */
    size_t nwait;
    size_t npending;             /* pendings whose call is this one */
    void (*finish)(mcp_call *c); /* all parts in: build and send the answer */
    int refreshes;               /* name-map refreshes done for this call */
    /* The gates (gate.c). arena holds the call's strings and the per-call copies
     * (identity, decision, audit fields) and lives as long as the call (made by
     * mcp_call_new, freed by its release). gate is non-NULL once the policy decided
     * this call; wait is non-NULL while an audit append for it is outstanding (the
     * append's callback finds the call through it, or nothing once the call is gone). */
    tg_arena *arena;
    const tg_identity *identity;
    char traceparent[56];        /* W3C traceparent (the client's or generated): sent to
                                    HTTP upstreams and recorded; "" for internal calls */
    struct mcp_held *policy;     /* the policy this call is decided under (a reference,
                                    taken at mcp_gate_adopt), or NULL without a policy */
    uint64_t started_ns;         /* when the request arrived (total latency) */
    struct mcp_gate *gate;
    struct mcp_wait *wait;
};

/* A POST carrying requests. Invariant: freed when open == 0 and the HTTP request is
 * answered or gone; req is NULL once the client disconnected or the answer completed. */
struct mcp_exchange {
    tg_mcp *m;
    mcp_session *s;
    tg_http_req *req;
    bool sse;                    /* switched to text/event-stream */
    bool batch;                  /* JSON answer is an array */
    bool announce_session;       /* initialize: set MCP-Session-Id on the answer */
    bool sse_preferred;          /* the client's Accept prefers text/event-stream */
    char **collected;            /* batch answers not yet written (JSON mode), malloc'd */
    size_t ncollected;
    size_t open;                 /* calls not yet answered */
    uint64_t serial;             /* stream key in the replay ring (never 0) */
};

/* A server-to-client request waiting for the client's answer. */
typedef struct mcp_s2c {
    mcp_link *link;
    uint64_t link_gen;
    json_t *upstream_id;         /* owned */
} mcp_s2c;

#define MCP_RING 64
#define MCP_RING_BYTES (1u << 20)
#define MCP_MAX_S2C 256              /* server-to-client requests awaiting one session */

typedef struct mcp_event {
    uint64_t id;                 /* 0 = empty slot */
    uint64_t stream;             /* 0 = GET stream, else exchange serial */
    bool delivered;
    bool priming;
    char *data;                  /* malloc'd JSON text ("" for priming) */
} mcp_event;

struct mcp_session {
    mcp_session *prev, *next;
    tg_mcp *m;
    char id[65];
    char *principal;             /* identity->principal_key of its creator (owned); any
                                    other principal presenting the id gets 404 */
    char version[16];            /* negotiated protocol revision */
    bool initialized;            /* notifications/initialized received */
    bool ending;
    json_t *client_caps;         /* owned */
    uint64_t last_active_ms;
    tg_http_req *get_req;        /* the GET stream, or NULL */
    mcp_link **links;            /* nupstreams: this session's PER_CLIENT links */
    mcp_call *calls;
    mcp_map calls_by_id;         /* idkey → mcp_call */
    mcp_map s2c;                 /* "tg-N" → mcp_s2c */
    uint64_t next_s2c;
    /* Name routing, filled by the lists this session fetched: visible name → idx+1. */
    mcp_map tools, prompts, resources;
    json_t *tool_annotations;    /* visible tool name → its `annotations` (owned object);
                                    the catalog classifies unlisted tools with them */
    json_t *tools_shown;         /* every tool of the last tools/list: visible name →
                                    [upstream idx, shown?, upstream's name] (owned); a
                                    reload compares the new policy's view with it */
    tg_arena *lister_arena;      /* holds lister, or NULL */
    const tg_identity *lister;   /* identity of the last tools/list (visibility) */
    bool tools_known, prompts_known, resources_known;
    json_t *templates;           /* [[idx, "uriTemplate"], ...] (owned) */
    mcp_map subs;                /* "<idx> <uri>" → (void*)1 */
    mcp_event ring[MCP_RING];
    size_t ring_bytes;           /* sum of the ring's data lengths */
    uint64_t next_event;
};

/* A gate object swapped by a reload (policy, authenticator) with the work that still
 * uses it. Invariant: refs counts the router's current pointer (while it is current)
 * plus every call / authentication in progress that took one; `release` frees obj when
 * refs reaches 0, so work in flight keeps the gate it started with across a reload (a
 * decision's reason strings and version live in its policy; a pending authentication
 * lives in its authenticator). */
typedef struct mcp_held {
    void *obj;
    size_t refs;
    void (*release)(void *obj);
} mcp_held;

/* A new holder with one reference (the router's). */
mcp_held *mcp_held_new(void *obj, void (*release)(void *obj));
/* Takes a reference and returns h (NULL stays NULL). */
mcp_held *mcp_held_ref(mcp_held *h);
void mcp_held_unref(mcp_held *h);

struct tg_mcp {
    uv_loop_t *loop;
    tg_config *cfg;
    tg_mcp_gates gates;          /* audit borrowed; gates.policy == policy->obj and
                                    gates.auth == auth->obj (owned through the holders);
                                    see tg_mcp.h */
    mcp_held *policy;            /* the current policy, or NULL */
    mcp_held *auth;              /* the current authenticator, or NULL */
    mcp_link **links;            /* nupstreams: SHARED links (NULL for PER_CLIENT) */
    mcp_session *sessions;
    mcp_map sessions_by_id;
    size_t nsessions;
    mcp_pending *pendings, *pendings_tail;
    mcp_map pendings_by_id;      /* gateway id → mcp_pending */
    mcp_map tokens;              /* gateway progress token → mcp_call */
    tg_jdoc doc;                 /* tokens of the POST body being dispatched, reused */
    int64_t next_id;             /* gateway ids and progress tokens share this counter */
    uint64_t next_serial;
    unsigned char cursor_key[32];
    uv_timer_t tick;             /* fires at the earliest pending deadline */
    uint64_t tick_due;           /* 0 = not armed */
    uv_timer_t sweep;            /* idle sessions, SSE keep-alives */
    size_t closing;              /* handles and links still closing at shutdown */
    bool shutting_down;
    void (*done)(void *);
    void *done_arg;
};

/* ================================================================ session.c */

mcp_session *mcp_session_new(tg_mcp *m, const char *principal, const char *version,
                             json_t *client_caps);
mcp_session *mcp_session_find(tg_mcp *m, const char *id, size_t len);
/* Ends it: cancels its calls, closes its GET stream and PER_CLIENT links, frees it. */
void mcp_session_end(mcp_session *s, const char *why);
/* Link for upstream idx as this session sees it (shared or its own). */
mcp_link *mcp_session_link(mcp_session *s, size_t idx);
/* Does this session talk to this link? */
bool mcp_session_uses(const mcp_session *s, const mcp_link *l);
/* Delivers a message not tied to an open POST: GET stream, else the replay ring. */
void mcp_session_deliver(mcp_session *s, const json_t *msg);
/* Records an event and sends it on req (stream key `stream`). When req is NULL or the
 * send fails the event waits in the ring, undelivered. */
void mcp_session_emit(mcp_session *s, uint64_t stream, tg_http_req *req, const char *data,
                      size_t len, bool priming);
/* GET: opens the session's stream; replays from last_event_id (may be NULL). */
void mcp_session_open_stream(mcp_session *s, tg_http_req *req, const char *last_event_id);
void mcp_session_sweep(tg_mcp *m);

/* ================================================================ pending.c */

/* New pending for link (gateway id assigned); msg may be NULL for a probe. The request
 * is sent now if the link is READY, else queued. on_reply may run before this returns. */
void mcp_pending_start(mcp_link *l, const char *method, json_t *params, mcp_call *call,
                       size_t part, void (*on_reply)(mcp_pending *, mcp_reply *));
mcp_pending *mcp_pending_find(tg_mcp *m, int64_t gw_id);
/* Completes p with reply, handed over (the on_reply callback runs, then p is freed). */
void mcp_pending_finish(mcp_pending *p, mcp_reply *reply);
void mcp_pending_fail(mcp_pending *p, mcp_reply_origin origin, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Link became READY / FAILED / DOWN: send queued, fail everything, fail sent ones. */
void mcp_pending_link_ready(mcp_link *l);
void mcp_pending_link_failed(mcp_link *l, bool only_sent, mcp_reply_origin origin,
                             const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Calls, from a scanned request (token tok of d; everything needed is copied) or from a
 * jansson value (borrowed). A second call with an id in progress is created but not
 * registered in calls_by_id. */
mcp_call *mcp_call_new(mcp_session *s, mcp_exchange *x, const tg_jdoc *d, int tok);
mcp_call *mcp_call_new_json(mcp_session *s, mcp_exchange *x, const json_t *msg);
/* Sends the final answer (ownership of resp taken) and frees the call. */
void mcp_call_answer(mcp_call *c, json_t *resp);
/* The same with the answer's bytes (copied). */
void mcp_call_answer_raw(mcp_call *c, const char *data, size_t len);
void mcp_call_error(mcp_call *c, int code, json_t *data, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void mcp_call_result(mcp_call *c, json_t *result_steal);
/* A message related to the call (progress, server request, log): its POST stream
 * (switching to SSE), else the session's GET stream / ring. */
void mcp_call_related(mcp_call *c, const json_t *msg);
/* Switches the call's POST answer to text/event-stream now (priming event), so a call
 * that will take long (held for approval) keeps a live stream that SSE keep-alives
 * cover. No-op for batches (their answers stay one JSON array unless a related message
 * comes) and when the POST is gone or already streaming. */
void mcp_call_stream(mcp_call *c);
/* Client cancelled: drop upstream work, no answer. */
void mcp_call_cancel(mcp_call *c, const char *reason);
/* Fan-out bookkeeping: ask upstream idx (counted in nwait). */
void mcp_call_ask(mcp_call *c, size_t idx, const char *method, json_t *params);
/* The same for the client's own request, built by splicing its bytes: gateway id, our
 * progress token, and params.name replaced by `rename` when not NULL. */
void mcp_call_ask_raw(mcp_call *c, size_t idx, const char *rename);  /* rename: needs c->name */
/* Upstream i's reply as a jansson value, or NULL when there is none. */
json_t *mcp_call_part(mcp_call *c, size_t i);
/* Done sending parts: drops the sending guard; finishes if all parts are in. */
void mcp_call_sent(mcp_call *c);
/* The call's params with the progress token already rewritten (borrowed, may be NULL);
 * parses the request on first use. */
json_t *mcp_call_params(mcp_call *c);
/* The call's params as tokens (token 0; no tokens when the request had none). */
const tg_jdoc *mcp_call_params_doc(mcp_call *c);

mcp_exchange *mcp_exchange_new(mcp_session *s, tg_http_req *req);
/* Called after the dispatcher created every call of a POST: closes an exchange that
 * ended up with no calls. */
void mcp_exchange_settle(mcp_exchange *x);

/* ================================================================ upstream_link.c */

/* Always returns a link; one whose transport could not start is FAILED (err says why).
 * init_params NULL: toolgate's own initialize params (SHARED links). */
mcp_link *mcp_link_new(tg_mcp *m, size_t idx, mcp_session *owner, json_t *init_params,
                       tg_error *err);
void mcp_link_close(mcp_link *l);
/* Does this upstream offer the capability ("tools", ...)? Unknown (never initialised)
 * counts as yes, so the request is queued rather than silently skipped. */
bool mcp_link_has(const mcp_link *l, const char *cap);
int  mcp_link_send_raw(mcp_link *l, const json_t *msg);

/* ================================================================ router.c */

/* Shutdown: calls the done callback once nothing is closing any more. */
void mcp_maybe_done(tg_mcp *m);

/* ================================================================ federation.c (routing) */

/* Forwards the call to upstream idx: with params (a jansson value) when the route built
 * new ones, else the client's own request spliced (params.name → rename if not NULL). */
void mcp_forward(mcp_call *c, size_t idx, json_t *params, const char *rename);

/* Dispatches one client request (a call already registered). */
void mcp_route_request(mcp_call *c);
/* Client notifications other than initialized / cancelled. */
void mcp_route_notification(mcp_session *s, json_t *msg);
/* An upstream said its list changed: forget the names it contributed. */
void mcp_routes_invalidate(mcp_session *s, const char *which);
/* Builds the client's InitializeResult (finish callback of the initialize call). */
void mcp_initialize_finish(mcp_call *c);

/* ================================================================ gate.c */

/* Who is asking: the result of authentication, in the HTTP request's arena. */
typedef struct mcp_asker {
    const tg_identity *identity;
    const char *traceparent;     /* the client's valid traceparent, or a generated one */
    uint64_t started_ns;
} mcp_asker;

/* The identity every request acts as when authentication is off. */
extern const tg_identity mcp_anonymous;

/* Gives a new call its own copy of who is asking (before it is routed). */
void mcp_gate_adopt(mcp_call *c, const mcp_asker *who);
/* A traceparent: the header's value when it is a valid W3C one, else a new one
 * (version 00, random trace and parent ids, sampled). In arena. */
const char *mcp_gate_traceparent(tg_arena *a, const char *header, size_t len);
/* Records a refused authentication (audit record + nothing else; logging is the caller's). */
void mcp_gate_auth_failure(tg_mcp *m, tg_http_req *req, const tg_auth_result *res,
                           const char *traceparent);

/* The decision point for tools/call, resources/read and prompts/get, once the route
 * knows the upstream (idx) and the upstream's own name (orig: tool or prompt name
 * without the prefix; the URI for resources/read; NULL when the request names none):
 * decides, records, then forwards as mcp_forward(c, idx, NULL, rename) (allow, shadow)
 * or answers the refusal. Without a policy it forwards at once. */
void mcp_gate_forward(mcp_call *c, size_t idx, const char *orig, const char *rename);
/* The answer to a decided call (the client's bytes, id already the client's): records
 * the outcome, then sends it. Takes the bytes (malloc'd). */
void mcp_gate_answer(mcp_call *c, mcp_reply *reply, char *data, size_t len);
/* tools/list: may this session's identity see this tool (item from upstream idx)? */
bool mcp_gate_tool_visible(mcp_call *c, size_t idx, const json_t *item, const char *visible);
/* The call is going away: forget it in any outstanding audit wait, free its gate state,
 * drop its policy reference. */
void mcp_gate_release(mcp_call *c);
/* tools/list answered: remember who asked (listing, once per answer) and what this session
 * was shown (listed, per tool: visible name → idx, shown), for the reload comparison. */
void mcp_gate_tools_listing(mcp_call *c);
void mcp_gate_tools_listed(mcp_call *c, size_t idx, const json_t *item, const char *visible,
                           bool shown);
/* After a policy swap: each session whose visible tool set changed gets
 * notifications/tools/list_changed (GET stream, else the replay ring). */
void mcp_gate_policy_changed(tg_mcp *m);

#endif /* MCP_INT_H */
