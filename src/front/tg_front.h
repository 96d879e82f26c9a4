/*
 * tg_front.h — the HTTP/1.1 front: accepts connections on the event loop, frames
 * requests strictly, enforces limits and timeouts, and hands each complete request to
 * one handler (the MCP router). It knows HTTP, not MCP.
 *
 * Framing is strict because a request this front reads one way and a later hop reads
 * another is a smuggling hole: rejected with 400 are Content-Length together with
 * Transfer-Encoding, several Content-Length headers, obs-folded header lines, a space or
 * tab before the colon, a Transfer-Encoding other than exactly "chunked", invalid
 * header bytes, and HTTP versions other than 1.0/1.1. Limits answer 413 (body), 431
 * (header block size or count), 408 (header or body not complete in time), and close
 * the connection. Every error body the front writes itself is a JSON-RPC error object
 * with id null, so MCP clients can show it.
 *
 * Request lifecycle (one request in flight per connection; pipelined requests wait in
 * the read buffer until the previous response has been written):
 *
 *   bytes → parse → handler(req) → exactly one of
 *        tg_http_respond(req, ...)                          (complete response), or
 *        tg_http_sse_start(req, ...) → tg_http_sse_send()* → tg_http_sse_end(req)
 *
 * The handler may answer synchronously or later from any loop callback. If the client
 * goes away first, the abort callback (if set) runs once; after it returns, req is
 * gone and must not be touched. After tg_http_respond / tg_http_sse_end, req is gone
 * too. Memory: req->arena lives exactly as long as req.
 */
#ifndef TG_FRONT_H
#define TG_FRONT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/tg_common.h"
#include "config/tg_config.h"

typedef enum {
    TG_HTTP_OTHER = 0,
    TG_HTTP_GET,
    TG_HTTP_POST,
    TG_HTTP_DELETE,
    TG_HTTP_HEAD,
    TG_HTTP_OPTIONS,
    TG_HTTP_PUT,
} tg_http_method;

typedef struct tg_http_header {
    const char *name;   /* as received (case preserved); NUL-terminated */
    size_t name_len;
    const char *value;  /* leading/trailing whitespace trimmed; NUL-terminated */
    size_t value_len;
} tg_http_header;

typedef struct tg_http_req tg_http_req;

/* State the handler keeps for one connection across its requests (the router keeps the
 * auth module's memo of the last token there). The front starts it empty and, when the
 * connection closes, calls free(data) if free is set. */
typedef struct tg_http_conn_slot {
    void *data;
    void (*free)(void *data);
} tg_http_conn_slot;

struct tg_http_req {
    /* Read-only for the handler. */
    tg_arena *arena;
    tg_http_method method;
    const char *method_str;
    const char *path;          /* target up to '?', NUL-terminated */
    size_t path_len;
    const char *query;         /* after '?', or NULL */
    tg_http_header *headers;
    size_t nheaders;
    const char *body;          /* NUL-terminated for convenience; body_len excludes it */
    size_t body_len;
    char client_ip[64];        /* textual peer address, "127.0.0.1" or "::1" */
    uint16_t client_port;
    int http_minor;            /* 0 or 1 */
    uint64_t received_ns;      /* tg_now_ns() when the header block completed */

    /* For the handler's own per-request state. */
    void *user;
    /* The connection's slot, the handler's to fill; the same for every request of the
     * connection. */
    tg_http_conn_slot *conn_slot;
};

/* First header with this name (case-insensitive), or NULL. *len gets its length. */
const char *tg_http_req_header(const tg_http_req *req, const char *name, size_t *len);
/* How many headers carry this name (to reject duplicated singleton headers). */
size_t tg_http_req_header_count(const tg_http_req *req, const char *name);

typedef void (*tg_http_handler)(tg_http_req *req, void *ctx);
typedef void (*tg_http_abort_cb)(tg_http_req *req, void *user);

typedef struct tg_http_server tg_http_server;

/* The server copies what it needs from limits. `handler` is called on the loop thread. */
tg_http_server *tg_http_server_new(uv_loop_t *loop, const tg_limits *limits,
                                   tg_http_handler handler, void *ctx);
/* Binds and listens. host is a literal IPv4/IPv6 address. port 0 picks a free port
 * (read it back with tg_http_server_port). */
int tg_http_server_listen(tg_http_server *srv, const char *host, uint16_t port, tg_error *err);
uint16_t tg_http_server_port(const tg_http_server *srv);
/* Stops accepting, closes idle connections, lets in-flight responses finish (open SSE
 * streams get their abort callback), then calls done. */
void tg_http_server_close(tg_http_server *srv, void (*done)(void *arg), void *arg);
void tg_http_server_free(tg_http_server *srv);

/* Number of open connections (for metrics and tests). */
size_t tg_http_server_connections(const tg_http_server *srv);

/* Registers the callback run if the client disconnects before the response completes. */
void tg_http_req_on_abort(tg_http_req *req, tg_http_abort_cb cb, void *user);

/* Complete response. Adds Content-Length, Date, and Connection as needed. `headers`
 * are extra response headers (Content-Type among them when body_len > 0). */
void tg_http_respond(tg_http_req *req, int status, const tg_http_header *headers, size_t nheaders,
                     const char *body, size_t body_len);

/* Convenience: status + JSON body (Content-Type: application/json). */
void tg_http_respond_json(tg_http_req *req, int status, const tg_http_header *headers,
                          size_t nheaders, const char *json, size_t json_len);

/* Server-sent events: 200, Content-Type: text/event-stream, Cache-Control: no-cache,
 * chunked. Extra headers as for tg_http_respond. */
void tg_http_sse_start(tg_http_req *req, const tg_http_header *headers, size_t nheaders);
/* One event: optional id (no newlines), optional event name, data (may be empty; data
 * with newlines is split into several data: lines). Returns 0, or -1 if the client is
 * gone (the abort callback has then already run or will run). */
int tg_http_sse_send(tg_http_req *req, const char *id, const char *event, const char *data,
                     size_t data_len);
/* A comment line (": ...") to keep intermediaries from timing the stream out. */
int tg_http_sse_comment(tg_http_req *req, const char *text);
void tg_http_sse_end(tg_http_req *req);

/* Standard reason phrase for a status code ("Not Found"). */
const char *tg_http_status_text(int status);

#endif /* TG_FRONT_H */
