/*
 * front_int.h — private structures of the HTTP/1.1 front (src/front). Only the files of
 * this folder include it; every other module sees tg_front.h.
 *
 * The front is split in three files:
 *   server.c   listener, accept, connection lifecycle, read path, timers, graceful close
 *   request.c  turning bytes into a tg_http_req: the strict raw pre-scan of the header
 *              block, then http-parser for the parse proper and body de-framing
 *   response.c the write path (uv_try_write first), tg_http_respond, SSE, error bodies
 */
#ifndef TG_FRONT_INT_H
#define TG_FRONT_INT_H

#include <http_parser.h>
#include <stdbool.h>
#include <time.h>

#include "front/tg_front.h"

/* Bytes the read path hands libuv per read. One buffer is shared by every connection:
 * on_read consumes it synchronously and copies only leftovers (partial header blocks,
 * pipelined requests) into the connection's own rbuf. */
#define FRONT_READ_CHUNK (64 * 1024)
/* An SSE client that lets more than this pile up unread is cut off. */
#define FRONT_SSE_MAX_QUEUED ((size_t)8 * 1024 * 1024)
/* After the last response on a connection we send FIN and keep draining the client's
 * bytes this long, so our response is not destroyed by an RST (lingering close). */
#define FRONT_LINGER_MS 2000
/* Reset arenas kept for reuse, so steady-state serving does not malloc per request. */
#define FRONT_ARENA_CACHE 64

/* Where a connection is in its life. Transitions:
 *   IDLE → HEAD (first byte) → BODY (header block parsed, body framed) → HANDLER
 *   HANDLER → SSE (tg_http_sse_start) ; HANDLER/SSE → FLUSH (response queued, writes
 *   pending) or IDLE (keep-alive) or CLOSING (lingering close); any → DEAD (uv_close). */
typedef enum {
    CONN_IDLE = 0, /* between requests; no byte of the next one yet */
    CONN_HEAD,     /* part of a header block buffered; header timer running */
    CONN_BODY,     /* header parsed; body bytes flowing through http-parser */
    CONN_HANDLER,  /* request handed to the handler; no response bytes yet */
    CONN_SSE,      /* SSE stream open */
    CONN_FLUSH,    /* response complete but still being written; parsing waits */
    CONN_CLOSING,  /* FIN sent (or queued); draining input until EOF or linger timer */
    CONN_DEAD,     /* uv_close called; freed in the close callback */
} front_phase;

/* Incremental state of the raw header-block pre-scan (request.c). It runs before
 * http-parser and rejects what http-parser tolerates: obs-fold, whitespace before the
 * colon, bare CR/LF, control bytes, non-token header names, other HTTP versions. */
typedef struct front_scan {
    int state;
    size_t off;       /* bytes of the request examined so far */
    size_t nheaders;  /* header lines seen */
    int ver_idx;      /* position inside "HTTP/1.x" */
    int minor;
    bool timer_armed; /* header deadline running for this request */
} front_scan;

typedef struct front_conn front_conn;
typedef struct front_req front_req;

/* The request as the front sees it. `pub` is first so a tg_http_req * converts back.
 * Allocated in its own arena; it lives until the response is queued, or until the
 * abort callback returns. Invariant: conn->req == this while it lives. */
struct front_req {
    tg_http_req pub;
    front_conn *conn;
    tg_http_abort_cb abort_cb;
    void *abort_user;
    bool dispatched;      /* the handler owns it (until respond / sse_end) */
    bool aborting;        /* inside the abort callback: respond/send are no-ops */
    size_t nheaders_seen; /* header callbacks so far (≤ pub.nheaders) */
    size_t body_cap;      /* bytes allocated behind pub.body (plus one for the NUL) */
    size_t query_len;
    bool headers_done;    /* later header callbacks are chunked trailers */
    int reject_status;    /* set by a parser callback that refuses the request */
    const char *reject_reason;
    char *hdr_block;      /* arena copy of the header block that http-parser parses */
    bool complete;        /* http-parser reached message complete */
    bool expect_continue;
};

struct front_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;     /* header/body/idle/linger timeout, or a 0 ms resume */
    /* Loop times in ms. deadline: when the current phase's timeout is due. armed: when the
     * timer fires (0: not running). armed <= deadline whenever both are set: a later
     * deadline does not move the timer, which re-arms itself for the rest when it fires
     * early (front_conn_arm_timer). */
    uint64_t deadline, armed;
    uv_shutdown_t shutdown_req;
    tg_http_server *srv;
    front_conn *prev, *next; /* server's connection list */
    front_phase phase;
    int handles_open;     /* tcp + timer; freed when both close callbacks ran */
    bool first;           /* no request finished yet on this connection */
    bool keepalive;       /* the current request allows another after it */
    bool reading;         /* uv_read_start active */
    bool in_dispatch;     /* inside the parse loop (handler called synchronously) */
    bool head_only;       /* current request is HEAD: no body bytes in the response */
    bool sse_chunked;     /* SSE framed with chunked encoding (HTTP/1.1 client) */
    size_t writes_pending;/* uv_write requests not yet completed */
    tg_buf rbuf;          /* unparsed bytes: a partial header block or pipelined input */
    tg_buf wbuf;          /* response head / SSE event being built (reused) */
    front_scan scan;
    http_parser parser;
    front_req *req;       /* request being read or served, or NULL */
    char client_ip[64];
    uint16_t client_port;
    tg_http_conn_slot slot;  /* the handler's; data freed with the connection */
};

struct tg_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    tg_limits limits;
    tg_http_handler handler;
    void *ctx;
    front_conn *conns;    /* every connection not yet freed */
    size_t nconns;
    uint16_t port;
    bool closing;
    bool listener_closed;
    bool done_called;
    void (*done)(void *arg);
    void *done_arg;
    uint64_t last_overload_log_ms;
    size_t overload_dropped;
    tg_arena *arena_cache[FRONT_ARENA_CACHE];
    size_t narena_cache;
    time_t date_sec;      /* second `date` was formatted for */
    char date[40];        /* "Sun, 06 Nov 1994 08:49:37 GMT" */
    char readbuf[FRONT_READ_CHUNK];
};

/* request.c */
/* Consumes request bytes while the connection may parse; returns how many were used.
 * May call the handler, respond with an error, or close the connection. */
size_t front_consume(front_conn *c, const char *p, size_t n);
void front_req_free(front_conn *c);

/* server.c */
tg_arena *front_arena_get(tg_http_server *srv);
void front_arena_put(tg_http_server *srv, tg_arena *a);
void front_conn_close(front_conn *c);
void front_conn_shutdown(front_conn *c);
void front_conn_next(front_conn *c);
void front_conn_arm_timer(front_conn *c);
const char *front_date(tg_http_server *srv);

/* response.c */
int front_write(front_conn *c, uv_buf_t *bufs, unsigned nbufs);
void front_reject(front_conn *c, int status, const char *reason);
void front_send_continue(front_conn *c);

#endif /* TG_FRONT_INT_H */
