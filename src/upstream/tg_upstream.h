/*
 * tg_upstream.h — transports to MCP servers: stdio child processes and Streamable HTTP.
 *
 * A tg_upconn is one MCP session with one upstream server: for stdio, one child process
 * (spawned with exactly the configured environment, which is where upstream credentials
 * live); for HTTP, one upstream MCP-Session-Id on a libcurl multi handle driven by the
 * loop. The transport moves JSON-RPC messages and reports what happened; it does not
 * interpret MCP. Initialisation, id rewriting, timeouts per call and failing in-flight
 * calls are the MCP router's job (src/mcp), because they are the same for both
 * transports.
 *
 * Messages in both directions are parsed jansson values. Everything read from an
 * upstream passes tg_json_parse (strict); a line or body that is not a valid JSON-RPC
 * message is logged (truncated, as data) and dropped — never forwarded.
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

typedef struct tg_upconn_cbs {
    /* A message from the upstream (request, response or notification; already
     * validated with tg_rpc_classify). `stream_of` is, for HTTP, the JSON-RPC id (as
     * sent upstream) of the POSTed request whose response stream carried this message,
     * or NULL when it came on the GET stream; always NULL for stdio. The callee takes
     * ownership of msg (json_decref when done). */
    void (*on_message)(tg_upconn *c, json_t *msg, const json_t *stream_of, void *user);
    /* State changes. `why` is a human-readable reason for DOWN. */
    void (*on_state)(tg_upconn *c, tg_upconn_state st, const char *why, void *user);
    /* HTTP only: the POST carrying this message failed (connection refused, timeout,
     * non-2xx status, malformed body). `id` is the message's id as sent upstream (NULL
     * for notifications/responses); `http_status` is 0 when there was no HTTP answer. */
    void (*on_send_failed)(tg_upconn *c, const json_t *id, int http_status, const char *why,
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

/* Sends one message. Returns 0 if queued; -1 if the connection is not UP (err says
 * why). Does not take ownership of msg. For HTTP, the message is POSTed; a request's
 * response (JSON or SSE) comes back through on_message. */
int tg_upconn_send(tg_upconn *c, const json_t *msg, tg_error *err);

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
