/*
 * tg_upstream.h — transports to MCP servers: stdio child processes and Streamable HTTP.
 *
 * A tg_upconn is one MCP session with one upstream server: for stdio, one child process
 * (spawned with exactly the configured environment, which is where upstream credentials
 * live); for HTTP, one upstream MCP-Session-Id, spoken with toolgate's own HTTP/1.1
 * client (h1.c) for http:// URLs and with libcurl's multi interface on the loop for
 * https://. The transport moves JSON-RPC messages and reports what happened; it does not
 * interpret MCP. Initialisation, id rewriting, timeouts per call and failing in-flight
 * calls are the MCP router's job (src/mcp), because they are the same for both
 * transports.
 *
 * Messages travel as bytes, not as parsed values: the hot path forwards what it receives
 * with a few spans replaced (docs/performance.md). Everything read from an upstream is
 * validated by tg_jscan (exactly as strict as tg_json_parse) and delivered as its own
 * bytes plus their tokens; a line or body that is not a valid JSON-RPC message is logged
 * (truncated, as data) and dropped — never forwarded. JSON-RPC requests toolgate sends
 * upstream always carry toolgate's own integer ids, so a request is named by an int64
 * (0 = not a request).
 *
 * Lifecycle and callbacks (all on the loop thread):
 *   tg_upconn_new → TG_UPCONN_STARTING → on_state(UP) → ... → on_state(DOWN, why)
 *   stdio: a child that exits or closes stdout → DOWN ("exited with status 3", "killed by
 *          signal 9"); the transport restarts it after a backoff (restart_min_ms doubling
 *          to restart_max_ms, reset after 60 s of uptime) and reports UP again. Each UP is a
 *          fresh server: the router must initialise it again.
 *   http:  UP immediately (there is nothing to connect until the first POST); a POST that
 *          fails reports on_send_failed for that message; HTTP 404 on a request carrying
 *          the upstream session id reports DOWN ("upstream session expired").
 *   tg_upconn_close → CLOSING → on_state(CLOSED) exactly once; no callback after that.
 *
 * The client's credentials are never given to a transport: the only headers sent
 * upstream are the configured static ones plus the MCP protocol headers.
 */
#ifndef TG_UPSTREAM_H
#define TG_UPSTREAM_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "common/tg_common.h"
#include "config/tg_config.h"

typedef struct tg_upconn tg_upconn;

typedef enum {
    TG_UPCONN_STARTING = 0,
    TG_UPCONN_UP,
    TG_UPCONN_DOWN,     /* crashed / session lost; stdio restarts by itself */
    TG_UPCONN_CLOSING,
    TG_UPCONN_CLOSED,
} tg_upconn_state;

/* One validated message from an upstream, borrowed for the duration of on_message:
 * raw[0..len) are the upstream's bytes, doc their tokens, tok the message's token in doc
 * (a batch element is one token of the batch's doc). tg_jscan_json(doc, tok) gives a
 * jansson value when one is really needed. */
typedef struct tg_upmsg {
    const tg_jdoc *doc;
    int tok;
    tg_rpc_kind kind;          /* never TG_RPC_KIND_INVALID */
    const char *raw;
    size_t len;
} tg_upmsg;

typedef struct tg_upconn_cbs {
    /* A message from the upstream (request, response or notification). `stream_of` is,
     * for HTTP, the id of the POSTed request whose response stream carried this message,
     * or 0 when it came on the GET stream; always 0 for stdio. */
    void (*on_message)(tg_upconn *c, const tg_upmsg *msg, int64_t stream_of, void *user);
    /* State changes. `why` is a human-readable reason for DOWN. */
    void (*on_state)(tg_upconn *c, tg_upconn_state st, const char *why, void *user);
    /* HTTP only: the POST carrying this message failed (connection refused, timeout,
     * non-2xx status, malformed body). `id` is the request id given to tg_upconn_send (0
     * for notifications/responses); `http_status` is 0 when there was no HTTP answer. */
    void (*on_send_failed)(tg_upconn *c, int64_t id, int http_status, const char *why,
                           void *user);
} tg_upconn_cbs;

/* Process-wide set-up of the transports (curl_global_init, the curl multi handle on
 * this loop). Call once before any thread starts, and tg_upstream_global_cleanup at exit. */
int  tg_upstream_global_init(uv_loop_t *loop, tg_error *err);
void tg_upstream_global_cleanup(void);

/* Starts a connection for this upstream. `conf` must outlive the connection (it lives
 * in a configuration snapshot the caller holds a reference to). */
tg_upconn *tg_upconn_new(uv_loop_t *loop, const tg_upstream_conf *conf,
                         const tg_upconn_cbs *cbs, void *user, tg_error *err);

/* Sends one message: msg[0..len) is one valid JSON-RPC message (validated JSON; raw
 * newlines, which can only be whitespace, are fine). request_id is its id when it is a
 * request, else 0. Returns 0 if queued; -1 if the connection is not UP (err says why).
 * The bytes are copied. For HTTP, the message is POSTed; a request's response (JSON or
 * SSE) comes back through on_message with stream_of = request_id. `traceparent` (a
 * valid W3C value, or NULL) is sent as the `traceparent` header of that POST, so the
 * upstream's traces join the caller's; stdio has no place for it and ignores it. */
int tg_upconn_send(tg_upconn *c, const char *msg, size_t len, int64_t request_id,
                   const char *traceparent, tg_error *err);
/* The same for a jansson value (serialised here); request_id is taken from a message
 * with "method" and an integer "id". */
int tg_upconn_send_json(tg_upconn *c, const json_t *msg, tg_error *err);

/* HTTP: the negotiated protocol version, sent as MCP-Protocol-Version on every later
 * request; and opens the GET stream for server-initiated messages (a 405 answer is
 * fine and silent). No-ops for stdio. */
void tg_upconn_set_protocol_version(tg_upconn *c, const char *version);
void tg_upconn_open_stream(tg_upconn *c);

tg_upconn_state tg_upconn_get_state(const tg_upconn *c);
const tg_upstream_conf *tg_upconn_conf(const tg_upconn *c);
/* stdio: the child's pid while UP, else 0 (for tests and logs). */
int tg_upconn_pid(const tg_upconn *c);

/* Graceful close: stdio closes stdin, waits shutdown_grace_ms, SIGTERM, waits, SIGKILL;
 * HTTP sends DELETE for the session (best effort) and cancels transfers. on_state
 * (CLOSED) follows; then the connection frees itself. */
void tg_upconn_close(tg_upconn *c);

#endif /* TG_UPSTREAM_H */
