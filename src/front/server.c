/*
 * server.c — the listener and the life of each connection: accept (with the
 * max_connections cap), the read path, the per-connection timer (header, body, idle and
 * linger deadlines), lingering close, teardown with the abort callback, and graceful
 * server close. Parsing lives in request.c and writing in response.c.
 *
 * Ownership: the server owns every front_conn (malloc'd, on srv->conns until both of its
 * handles are closed). A connection owns at most one front_req (conn->req). A request
 * the handler owns is given back by tg_http_respond / tg_http_sse_end; if the connection
 * dies first, the close callback runs the abort callback and then frees the request.
 * Teardown always goes through uv_close, so the abort callback never runs inside a
 * tg_http_* call the handler is making.
 */
#include "front/front_int.h"

#include <stdlib.h>
#include <string.h>

static const char *COMP = "front";

/* ---------------------------------------------------------------- arenas */

tg_arena *front_arena_get(tg_http_server *srv)
{
    if (srv->narena_cache > 0) return srv->arena_cache[--srv->narena_cache];
    return tg_arena_new(0);
}

void front_arena_put(tg_http_server *srv, tg_arena *a)
{
    if (srv->narena_cache < FRONT_ARENA_CACHE) {
        tg_arena_reset(a);
        srv->arena_cache[srv->narena_cache++] = a;
    } else {
        tg_arena_free(a);
    }
}

/* ---------------------------------------------------------------- date */

const char *front_date(tg_http_server *srv)
{
    time_t now = time(NULL);
    if (now != srv->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(srv->date, sizeof srv->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        srv->date_sec = now;
    }
    return srv->date;
}

/* ---------------------------------------------------------------- server */

static void limits_fill(tg_limits *l)
{
    /* Zero means "not configured": the documented defaults of tg_config.h. */
    if (!l->max_body_bytes) l->max_body_bytes = 4u << 20;
    if (!l->max_header_bytes) l->max_header_bytes = 16u << 10;
    if (!l->max_headers) l->max_headers = 64;
    if (!l->max_connections) l->max_connections = 10000;
    if (!l->header_timeout_ms) l->header_timeout_ms = 10000;
    if (!l->body_timeout_ms) l->body_timeout_ms = 30000;
    if (!l->idle_timeout_ms) l->idle_timeout_ms = 75000;
}

tg_http_server *tg_http_server_new(uv_loop_t *loop, const tg_limits *limits,
                                   tg_http_handler handler, void *ctx)
{
    tg_http_server *srv = calloc(1, sizeof *srv);
    if (!srv) abort();
    srv->loop = loop;
    if (limits) srv->limits = *limits;
    limits_fill(&srv->limits);
    srv->handler = handler;
    srv->ctx = ctx;
    /* Initialised here so tg_http_server_close works whether or not listen succeeded. */
    if (uv_tcp_init(loop, &srv->listener) != 0) abort();
    srv->listener.data = srv;
    return srv;
}

uint16_t tg_http_server_port(const tg_http_server *srv)
{
    return srv->port;
}

size_t tg_http_server_connections(const tg_http_server *srv)
{
    return srv->nconns;
}

static void on_connection(uv_stream_t *server, int status);

int tg_http_server_listen(tg_http_server *srv, const char *host, uint16_t port, tg_error *err)
{
    struct sockaddr_storage ss;
    char lit[64];
    size_t hl = strlen(host);
    /* Accept "[::1]" as well as "::1". */
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']' && hl - 2 < sizeof lit) {
        memcpy(lit, host + 1, hl - 2);
        lit[hl - 2] = '\0';
    } else if (hl < sizeof lit) {
        memcpy(lit, host, hl + 1);
    } else {
        return tg_error_set(err, "listen address '%.64s...' is too long", host);
    }
    if (uv_ip4_addr(lit, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(lit, port, (struct sockaddr_in6 *)&ss) != 0)
        return tg_error_set(err, "listen address '%s' is not an IPv4 or IPv6 literal", host);
    /* libuv sets SO_REUSEADDR on TCP binds, so a restart does not wait out TIME_WAIT. */
    int r = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&ss, 0);
    if (r == 0) r = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection);
    if (r != 0)
        return tg_error_set(err, "cannot listen on %s port %u: %s", host, (unsigned)port,
                            uv_strerror(r));
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    r = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &blen);
    if (r != 0) return tg_error_set(err, "getsockname on %s: %s", host, uv_strerror(r));
    srv->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    tg_log_info(COMP, "listening on %s port %u", host, (unsigned)srv->port);
    return 0;
}

static void server_check_done(tg_http_server *srv)
{
    if (srv->closing && srv->listener_closed && srv->nconns == 0 && !srv->done_called) {
        srv->done_called = true;
        if (srv->done) srv->done(srv->done_arg);
    }
}

static void on_listener_closed(uv_handle_t *h)
{
    tg_http_server *srv = h->data;
    srv->listener_closed = true;
    server_check_done(srv);
}

void tg_http_server_close(tg_http_server *srv, void (*done)(void *arg), void *arg)
{
    if (srv->closing) return;
    srv->closing = true;
    srv->done = done;
    srv->done_arg = arg;
    uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
    for (front_conn *c = srv->conns; c; c = c->next) {
        switch (c->phase) {
        case CONN_HANDLER:
            c->keepalive = false; /* the response may finish; then the connection closes */
            break;
        case CONN_FLUSH:
        case CONN_CLOSING:
        case CONN_DEAD:
            break;                /* already on its way out (FLUSH checks srv->closing) */
        default:
            front_conn_close(c);  /* idle, half-received, or SSE (→ abort callback) */
            break;
        }
    }
}

void tg_http_server_free(tg_http_server *srv)
{
    if (!srv) return;
    if (!srv->done_called) {
        /* Freeing with live handles would leave libuv pointing into freed memory. */
        tg_log_error(COMP, "tg_http_server_free before tg_http_server_close completed");
        abort();
    }
    for (size_t i = 0; i < srv->narena_cache; i++) tg_arena_free(srv->arena_cache[i]);
    free(srv);
}

/* ---------------------------------------------------------------- connections */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    front_conn *c = h->data;
    buf->base = c->srv->readbuf;
    buf->len = sizeof c->srv->readbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void conn_read_start(front_conn *c)
{
    if (c->reading || c->phase == CONN_DEAD) return;
    int r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (r != 0) {
        tg_log_warn(COMP, "client %s: cannot read: %s", c->client_ip, uv_strerror(r));
        front_conn_close(c);
        return;
    }
    c->reading = true;
}

static void conn_read_stop(front_conn *c)
{
    if (!c->reading) return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

static void on_conn_closed(uv_handle_t *h)
{
    front_conn *c = h->data;
    if (--c->handles_open > 0) return;
    front_req *fr = c->req;
    if (fr && fr->dispatched) {
        /* The handler still owns the request: tell it once, then the request is gone. */
        if (fr->abort_cb) {
            fr->aborting = true;
            fr->abort_cb(&fr->pub, fr->abort_user);
        }
    }
    front_req_free(c);
    if (c->slot.free) c->slot.free(c->slot.data);
    tg_buf_free(&c->rbuf);
    tg_buf_free(&c->wbuf);
    tg_http_server *srv = c->srv;
    if (c->prev) c->prev->next = c->next;
    else srv->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    srv->nconns--;
    free(c);
    server_check_done(srv);
}

void front_conn_close(front_conn *c)
{
    if (c->phase == CONN_DEAD) return;
    c->phase = CONN_DEAD;
    c->reading = false;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    front_conn *c = req->data;
    /* ECANCELED: the connection was closed meanwhile. Any other error: the peer is gone. */
    if (status != 0 && status != UV_ECANCELED) front_conn_close(c);
}

void front_conn_shutdown(front_conn *c)
{
    if (c->phase == CONN_DEAD || c->phase == CONN_CLOSING) return;
    c->phase = CONN_CLOSING;
    tg_buf_reset(&c->rbuf);
    c->shutdown_req.data = c;
    /* uv_shutdown waits for queued writes, so the response goes out before our FIN. */
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        front_conn_close(c);
        return;
    }
    conn_read_start(c);
    front_conn_arm_timer(c);
}

static void conn_after_parse(front_conn *c);

/* Parses what waits in rbuf (a partial header block, or pipelined requests). */
static void conn_parse_rbuf(front_conn *c)
{
    size_t used = front_consume(c, c->rbuf.data, c->rbuf.len);
    if (c->phase == CONN_DEAD || c->phase == CONN_CLOSING) return;
    tg_buf_consume(&c->rbuf, used);
    conn_after_parse(c);
}

static void on_timer(uv_timer_t *t)
{
    front_conn *c = t->data;
    uint64_t now = uv_now(c->srv->loop);
    c->armed = 0;
    if (c->deadline > now) { /* fired for an earlier deadline that was since pushed back */
        c->armed = c->deadline;
        uv_timer_start(t, on_timer, c->deadline - now, 0);
        return;
    }
    switch (c->phase) {
    case CONN_IDLE:
        if (c->rbuf.len > 0) {
            conn_parse_rbuf(c); /* 0 ms resume after the previous response */
        } else {
            tg_log_debug(COMP, "client %s: idle connection closed", c->client_ip);
            front_conn_close(c);
        }
        break;
    case CONN_HEAD:
        front_reject(c, 408, "request header not received in time");
        break;
    case CONN_BODY:
        front_reject(c, 408, "request body not received in time");
        break;
    case CONN_FLUSH:
        tg_log_info(COMP, "client %s: response not read within %u ms; closing", c->client_ip,
                    (unsigned)c->srv->limits.idle_timeout_ms);
        front_conn_close(c);
        break;
    case CONN_CLOSING:
        front_conn_close(c); /* linger time is over */
        break;
    default:
        break; /* a deadline of an earlier phase: the handler owns the pace now */
    }
}

void front_conn_arm_timer(front_conn *c)
{
    const tg_limits *l = &c->srv->limits;
    uint64_t ms;
    switch (c->phase) {
    case CONN_IDLE:
        if (c->rbuf.len > 0) ms = 0;
        else ms = c->first ? l->header_timeout_ms : l->idle_timeout_ms;
        break;
    case CONN_HEAD: ms = l->header_timeout_ms; break;
    case CONN_FLUSH: ms = l->idle_timeout_ms; break; /* a client that stops reading */
    case CONN_BODY: ms = l->body_timeout_ms; break;
    case CONN_CLOSING: ms = FRONT_LINGER_MS; break;
    default:
        /* No deadline while the handler owns the request. The timer is not stopped:
         * that would cost a heap operation per request, and on_timer ignores it. */
        return;
    }
    /* A deadline later than the one the timer waits for (the idle timeout after each
     * response on a busy keep-alive connection) only moves the mark: restarting the timer
     * was a removal and an insertion in libuv's timer heap per request. */
    uint64_t due = uv_now(c->srv->loop) + ms;
    c->deadline = due;
    if (c->armed && c->armed <= due) return;
    c->armed = due;
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* The response to the current request is fully queued. Either close (lingering) or get
 * ready for the next request; pipelined bytes are parsed from a 0 ms timer, never inside
 * the tg_http_* call that finished the response. */
void front_conn_next(front_conn *c)
{
    if (c->phase == CONN_DEAD || c->phase == CONN_CLOSING) return;
    if (!c->keepalive || c->srv->closing) {
        front_conn_shutdown(c);
        return;
    }
    if (c->writes_pending > 0) {
        c->phase = CONN_FLUSH; /* the write callback calls us again */
        front_conn_arm_timer(c);
        return;
    }
    c->phase = CONN_IDLE;
    c->first = false;
    if (c->in_dispatch) return; /* the parse loop continues by itself */
    conn_read_start(c);
    front_conn_arm_timer(c);
}

/* After a parse pass: read while we may parse, keep the idle deadline, and bound what a
 * pipelining client can make us buffer while its previous request is in flight. */
static void conn_after_parse(front_conn *c)
{
    switch (c->phase) {
    case CONN_IDLE:
        conn_read_start(c);
        front_conn_arm_timer(c);
        break;
    case CONN_HEAD:
    case CONN_BODY:
        conn_read_start(c);
        break;
    case CONN_HANDLER:
    case CONN_SSE:
    case CONN_FLUSH:
        if (c->rbuf.len > c->srv->limits.max_header_bytes) conn_read_stop(c);
        break;
    default:
        break;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    front_conn *c = s->data;
    if (nread == 0) return;
    if (nread < 0) {
        /* EOF or reset. A request still in the handler's hands is aborted: a client
         * that stops sending is treated as gone (half-closed clients are not served). */
        if (nread != UV_EOF)
            tg_log_debug(COMP, "client %s: read error: %s", c->client_ip, uv_strerror((int)nread));
        front_conn_close(c);
        return;
    }
    size_t n = (size_t)nread;
    switch (c->phase) {
    case CONN_CLOSING:
        return; /* lingering: discard */
    case CONN_HANDLER:
    case CONN_SSE:
    case CONN_FLUSH:
        /* One request in flight: keep pipelined bytes for later. */
        tg_buf_append(&c->rbuf, buf->base, n);
        conn_after_parse(c);
        return;
    default:
        break;
    }
    if (c->rbuf.len > 0) {
        tg_buf_append(&c->rbuf, buf->base, n);
        conn_parse_rbuf(c);
        return;
    }
    /* Fast path: parse straight from the shared read buffer; keep only leftovers. */
    size_t used = front_consume(c, buf->base, n);
    if (c->phase == CONN_DEAD || c->phase == CONN_CLOSING) return;
    if (used < n) tg_buf_append(&c->rbuf, buf->base + used, n - used);
    conn_after_parse(c);
}

static void log_overload(tg_http_server *srv)
{
    srv->overload_dropped++;
    uint64_t now = uv_now(srv->loop);
    if (now - srv->last_overload_log_ms >= 1000 || srv->last_overload_log_ms == 0) {
        tg_log_warn(COMP, "max_connections (%zu) reached: closed %zu new connection(s)",
                    srv->limits.max_connections, srv->overload_dropped);
        srv->last_overload_log_ms = now ? now : 1;
        srv->overload_dropped = 0;
    }
}

static void on_reject_closed(uv_handle_t *h)
{
    free(h);
}

static void conn_peer(front_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    c->client_ip[0] = '\0';
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0) return;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, c->client_ip, sizeof c->client_ip);
        c->client_port = ntohs(a->sin6_port);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        uv_ip4_name(a, c->client_ip, sizeof c->client_ip);
        c->client_port = ntohs(a->sin_port);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    tg_http_server *srv = server->data;
    if (status < 0) {
        tg_log_warn(COMP, "accept failed: %s", uv_strerror(status));
        return;
    }
    if (srv->nconns >= srv->limits.max_connections) {
        /* Accept and close at once: leaving it in the backlog would only make the
         * client wait for a timeout. */
        uv_tcp_t *t = malloc(sizeof *t);
        if (!t || uv_tcp_init(srv->loop, t) != 0) abort(); /* init fails only on misuse */
        if (uv_accept(server, (uv_stream_t *)t) == 0) log_overload(srv);
        uv_close((uv_handle_t *)t, on_reject_closed);
        return;
    }
    front_conn *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->srv = srv;
    if (uv_tcp_init(srv->loop, &c->tcp) != 0 || uv_timer_init(srv->loop, &c->timer) != 0)
        abort(); /* these fail only on misuse */
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    c->first = true;
    c->next = srv->conns;
    if (c->next) c->next->prev = c;
    srv->conns = c;
    srv->nconns++;
    int r = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (r != 0) {
        tg_log_warn(COMP, "accept failed: %s", uv_strerror(r));
        front_conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    conn_peer(c);
    c->phase = CONN_IDLE;
    conn_read_start(c);
    front_conn_arm_timer(c);
}
