/*
 * upstream_int.h — private to src/upstream: the part of a connection both transports
 * share, the per-transport operations, and the curl-multi-on-libuv driver.
 *
 * Each transport allocates its own struct whose first member is `struct tg_upconn`, so a
 * tg_upconn * can be cast to the transport's type. upstream.c dispatches the public API
 * through `ops`.
 */
#ifndef TG_UPSTREAM_INT_H
#define TG_UPSTREAM_INT_H

#include <curl/curl.h>
#include <stdbool.h>

#include "upstream/tg_upstream.h"

typedef struct tg_upstream_ops {
    int  (*send)(tg_upconn *c, const char *msg, size_t len, int64_t request_id,
                 const char *traceparent, tg_error *err);
    void (*set_protocol_version)(tg_upconn *c, const char *version);
    void (*open_stream)(tg_upconn *c);
    int  (*pid)(const tg_upconn *c);
    void (*close)(tg_upconn *c);
} tg_upstream_ops;

/* Invariants: `state` only moves through tg_upstream_set_state; once it is CLOSING no
 * callback other than the single on_state(CLOSED) is made; conf outlives the conn. */
struct tg_upconn {
    uv_loop_t *loop;
    const tg_upstream_conf *conf;
    tg_upconn_cbs cbs;
    void *user;
    tg_upconn_state state;
    const tg_upstream_ops *ops;
    char component[96];  /* "upstream:<name>", the log component */
    tg_jdoc doc;         /* tokens of the message being delivered, reused */
    int delivering;      /* > 0 while doc is in use (a nested delivery uses its own) */
};

/* Frees the shared part's memory (the transports call it when freeing a conn). */
void tg_upstream_base_free(tg_upconn *c);

/* Fills the shared part (component name, state STARTING). */
void tg_upstream_base_init(tg_upconn *c, uv_loop_t *loop, const tg_upstream_conf *conf,
                           const tg_upconn_cbs *cbs, void *user, const tg_upstream_ops *ops);

/* Records the new state and reports it (on_state), except CLOSING which the caller
 * initiated itself and therefore is not reported. */
void tg_upstream_set_state(tg_upconn *c, tg_upconn_state st, const char *why);

/* Validates bytes received from the upstream (tg_jscan, strict), checks the JSON-RPC
 * envelope and hands each valid message to on_message. `allow_batch`: a JSON array is a batch whose
 * elements are delivered one by one (HTTP bodies only). Invalid input is logged,
 * truncated to 200 bytes, and dropped. Nothing is delivered once the connection is
 * CLOSING. Returns the number of messages delivered. */
size_t tg_upstream_deliver(tg_upconn *c, const char *buf, size_t len, int64_t stream_of,
                           bool allow_batch, bool *answered);
/* `answered` (may be NULL) is set to true when a delivered message is the response to
 * the request whose id is stream_of (non-zero). */

/* Transports */
tg_upconn *tg_upstream_stdio_new(uv_loop_t *loop, const tg_upstream_conf *conf,
                                 const tg_upconn_cbs *cbs, void *user, tg_error *err);
tg_upconn *tg_upstream_http_new(uv_loop_t *loop, const tg_upstream_conf *conf,
                                const tg_upconn_cbs *cbs, void *user, tg_error *err);

/* ---- curl multi on libuv (curl_loop.c) ----
 * One CURLM for the loop given to tg_upstream_global_init (it belongs to that loop's
 * thread, stack.md pitfall 6). A transfer's easy handle must have CURLOPT_PRIVATE set to
 * its tg_upstream_xfer. `done` is called exactly once per tg_upstream_curl_add, never
 * from inside a curl callback; after it the driver no longer references x or its easy
 * handle. Adds and cancels requested from inside a curl callback (a write callback that
 * delivers a message whose receiver sends or closes) are carried out, in order, as soon
 * as curl returns. */
typedef struct tg_upstream_xfer {
    CURL *easy;
    void (*done)(struct tg_upstream_xfer *x, CURLcode result);
    /* driver state, zero-initialise and leave alone */
    struct tg_upstream_xfer *next_deferred;
    int deferred;            /* 0, or the pending operation */
    bool in_multi;
} tg_upstream_xfer;

int  tg_upstream_curl_init(uv_loop_t *loop, tg_error *err);
bool tg_upstream_curl_ready(void);
void tg_upstream_curl_cleanup(void);
/* Starts the transfer. -1 (err set) if the driver is not initialised or curl refuses. */
int  tg_upstream_curl_add(tg_upstream_xfer *x, tg_error *err);
/* CURLOPT_OPENSOCKETFUNCTION and CURLOPT_CLOSESOCKETFUNCTION for every easy handle on
 * the driver: connection sockets are registered when opened, so their watch can outlive
 * a transfer, and their watch ends just before they are closed. */
curl_socket_t tg_upstream_curl_opensocket(void *clientp, curlsocktype purpose,
                                          struct curl_sockaddr *addr);
int  tg_upstream_curl_closesocket(void *clientp, curl_socket_t fd);
/* Stops the transfer; `done` follows with CURLE_ABORTED_BY_CALLBACK (synchronously when
 * not called from inside a curl callback). */
void tg_upstream_curl_cancel(tg_upstream_xfer *x);

/* ---- the Streamable HTTP layer and its wire engines (http.c, h1.c) ----
 * http.c speaks MCP over HTTP (which headers, session id, JSON vs event stream, what a
 * failure is); an engine moves one exchange's bytes: libcurl (curl_loop.c, any URL) or
 * h1.c, our own HTTP/1.1 client for plain http:// URLs. An engine reports a response to
 * http.c through these four calls, in this order: tg_upstream_http_header for each
 * header of the final response (1xx responses are skipped by the engine), then
 * tg_upstream_http_head once, then tg_upstream_http_body for each piece of the body
 * (2xx only; -1 means http.c refuses the rest and the exchange must end), then exactly one
 * tg_upstream_http_finished — neterr NULL when the whole response arrived, else why
 * not. Nothing is reported for an exchange the engine was told to cancel. */
typedef struct http_xfer http_xfer;
void tg_upstream_http_header(http_xfer *xf, const char *name, size_t nlen, const char *value,
                             size_t vlen);
void tg_upstream_http_head(http_xfer *xf, long status);
int  tg_upstream_http_body(http_xfer *xf, const char *buf, size_t len);
void tg_upstream_http_finished(http_xfer *xf, const char *neterr);
/* Tests only: new HTTP connections use libcurl even for http:// URLs, so the test suite
 * covers both engines. */
void tg_upstream_http_force_curl(bool on);

/* h1.c: per HTTP upstream connection, a pool of keep-alive TCP connections to one
 * http:// origin, one exchange in flight per TCP connection. */
typedef struct tg_upstream_h1 tg_upstream_h1;
typedef struct h1_conn h1_conn;
/* One exchange on the h1 engine, embedded in http.c's transfer. Engine state: zero it
 * and leave it alone. Invariant: `conn` is the TCP connection carrying the exchange, or
 * NULL before it starts and after it finished or was cancelled. */
typedef struct tg_upstream_h1_req {
    http_xfer *xf;
    h1_conn *conn;
    uint32_t timeout_ms;     /* whole-exchange deadline, 0 = none */
    bool retried;            /* already re-sent once on a fresh connection */
} tg_upstream_h1_req;
/* NULL when `url` is not a plain http:// URL h1 can serve (https, userinfo, ...): the
 * caller then uses curl. */
tg_upstream_h1 *tg_upstream_h1_new(uv_loop_t *loop, const char *url, uint32_t connect_timeout_ms,
                                   const char *component);
/* Sends `method` with the header lines head[0..hlen) (each ending in CRLF; request line,
 * Host, Content-Length and the blank line are added here) and the body. The bytes are
 * copied. -1 (err set) only when nothing was started; otherwise the result comes
 * through tg_upstream_http_* for r->xf. */
int  tg_upstream_h1_send(tg_upstream_h1 *h1, tg_upstream_h1_req *r, const char *method,
                         const char *head, size_t hlen, const char *body, size_t blen,
                         tg_error *err);
/* Ends the exchange now, with no further call for it; safe from inside its callbacks. */
void tg_upstream_h1_cancel(tg_upstream_h1_req *r);
/* Closes the idle connections; no exchange may be running. */
void tg_upstream_h1_free(tg_upstream_h1 *h1);
/* The write queue every pool shares (h1.c): its check handle lives on the loop given to
 * tg_upstream_global_init, like the curl multi. */
void tg_upstream_h1_global_init(uv_loop_t *loop);
void tg_upstream_h1_global_cleanup(void);

/* ---- incremental text/event-stream parser (sse.c) ----
 * Fed the body in whatever chunks arrive; calls on_event with the data of each complete
 * event of type "message" (the default) — comments, other event types and events with
 * empty data (priming events) are skipped. Lines may end in CRLF, LF or CR, split
 * anywhere across chunks. `last_id` tracks the last event id (for Last-Event-ID) and
 * `retry_ms` the server's reconnection delay (-1 if it sent none). */
typedef struct tg_upstream_sse {
    tg_buf line;             /* the current partial line */
    tg_buf data;             /* data lines of the event being built, each + '\n' */
    bool skip_lf;            /* the last chunk ended in '\r': a leading '\n' belongs to it */
    bool other_event;        /* this event has a type other than "message" */
    char last_id[256];
    long retry_ms;
    size_t max;              /* bound on one line and on one event's data */
    void (*on_event)(void *user, const char *data, size_t len);
    void *user;
} tg_upstream_sse;

void tg_upstream_sse_init(tg_upstream_sse *p, size_t max,
                          void (*on_event)(void *user, const char *data, size_t len), void *user);
/* -1 (err set) when a line or an event exceeds `max`; the stream is then unusable. */
int  tg_upstream_sse_feed(tg_upstream_sse *p, const char *buf, size_t len, tg_error *err);
void tg_upstream_sse_free(tg_upstream_sse *p);

#endif /* TG_UPSTREAM_INT_H */
