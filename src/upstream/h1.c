/*
 * h1.c — a lean HTTP/1.1 client on libuv for plain http:// upstreams: the wire engine
 * under http.c when TLS, proxies and HTTP/2 do not matter (curl serves those).
 *
 * Why: with curl, every proxied call cost two extra poll() syscalls (its liveness check of
 * a reused connection and a 0 ms readiness check) plus its bookkeeping; on the loop a
 * syscall is the dominant cost (docs/performance.md). Here a request costs one write
 * (uv_try_write of request line + headers + body as one buffer) and one read.
 *
 * Model: a tg_upstream_h1 belongs to one upstream connection (http_conn) and keeps a pool
 * of keep-alive TCP connections to its origin. One exchange in flight per TCP connection
 * (no pipelining); a new exchange takes an idle connection, or opens a new one. Idle
 * connections stay read-started, so a server closing one is noticed and it is dropped;
 * at most H1_MAX_IDLE are kept.
 *
 * Responses are parsed by http_parser, plus what it lets through: a response header block
 * must not have obs-folded lines (checked by h1_prescan), nor several Content-Length,
 * Content-Length with Transfer-Encoding, several Transfer-Encoding or a coding other than
 * chunked; the block is at most H1_MAX_HEAD bytes; 1xx responses are refused (we never
 * send Expect). Framing errors end the exchange and the connection.
 *
 * Retry rule: an exchange is re-sent, once, on a fresh connection only when it went out
 * on a reused (previously idle) connection and the connection ended before a single byte
 * of response arrived. That is the race of a server closing an idle keep-alive
 * connection while our request was on its way: such a server closed without reading the
 * request (it had no request in progress), so the request was not processed. A fresh
 * connection never retries, and once a response byte arrived nothing is retried.
 *
 * Names: literal IPv4/IPv6 addresses are used directly; host names are resolved with
 * uv_getaddrinfo once per new TCP connection, taking the first IPv4 address (else the
 * first address): there is no fallback across addresses.
 */
#include "upstream/upstream_int.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Idle TCP connections kept per upstream connection. It bounds what one burst leaves
 * open, not what a quiet session holds (only connections a burst needed become idle).
 * At 32, a client with 64 calls in flight made the pool close and reopen 32 connections
 * per round: connect() was 6 % of the loop's CPU at c=64 (docs/performance.md). */
#define H1_MAX_IDLE   256
#define H1_MAX_HEAD   ((size_t)64 << 10)  /* a response's header block */
#define H1_READ_BUF   65536

/* Invariants: exactly one of: on h1->idle (req NULL, reusable), carrying `req`
 * (req->conn == this), or `closing` (on no list, handles being closed; freed when both
 * are). `out` holds the request bytes until the next exchange: they are needed again
 * when the exchange is retried. `queued`: on the write queue (h1_wq), which only a
 * connection carrying `req` is; closing takes it off. */
struct h1_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;                     /* connect timeout, then the exchange's deadline */
    uv_connect_t connect;
    uv_write_t write;
    tg_upstream_h1 *h1;                   /* NULL once closing: the pool may be gone */
    tg_upstream_h1_req *req;
    struct h1_conn *next, *prev;          /* on h1->idle */
    struct h1_gai *gai;                   /* a resolution in progress */
    http_parser parser;
    tg_buf out;
    tg_buf hname, hval;                   /* the response header being assembled */
    size_t head_bytes, line_len;          /* h1_prescan state */
    unsigned ncl, nte;
    bool connected, writing, reused, got_bytes, head_done, in_value, complete, closing;
    bool te_bad;
    int open_handles;
    char later[160];                      /* a failure found while sending, reported later */
    struct h1_conn *wq_next, *wq_prev;    /* on h1_wq while `queued` */
    bool queued;
};

/* Invariant: `idle` holds at most H1_MAX_IDLE connections, each connected and idle. */
struct tg_upstream_h1 {
    uv_loop_t *loop;
    const char *component;
    char *prefix;                         /* " <path> HTTP/1.1\r\nHost: <authority>\r\n" */
    size_t prefix_len;
    char *host;                           /* for resolution (no brackets) */
    char port[8];
    struct sockaddr_storage addr;         /* when the host is a literal address */
    bool literal;
    uint32_t connect_timeout_ms;
    h1_conn *idle;
    int nidle;
};

/* Every read lands here: the module lives on one loop thread (the one given to
 * tg_upstream_global_init) and a read is parsed completely before the next one. */
static char h1_rbuf[H1_READ_BUF];

/* Requests are written at the end of the loop iteration, together: a queue drained by a
 * check handle, which runs once the iteration's I/O callbacks have all run. Why: writing
 * to a peer asleep in epoll_wait makes the writer wake it, and on this kind of VM the
 * inter-processor interrupt that takes lands on the writer's CPU time. Written one by
 * one as each client request was handled, the upstream woke for almost every other call
 * (0.46–0.51 sleeps per call at c=64); written together it wakes about once per batch
 * (0.06–0.09), and full batched calls went from 17.2k to 19.2k req/s, alternating builds
 * (docs/performance.md, fifth round). Nothing waits for it at c=1: an iteration with one
 * request writes it right after that request's callback returns.
 * A check handle alone does not keep the loop from sleeping: a request queued before the
 * poll phase (from a timer: a pipelined client request resumed after the previous
 * response, an approval granted, a retry) would wait in the queue until some unrelated
 * event woke the loop, seconds later on a quiet gateway. So while the queue is not empty
 * an idle handle is active too, which makes that poll return at once; it does nothing
 * itself. */
static struct {
    uv_loop_t *loop;
    uv_check_t check;
    uv_idle_t nudge;                      /* active with the check, until the drain */
    h1_conn *head, *tail;                 /* FIFO: requests leave in the order they came */
} h1_wq;

typedef struct h1_gai {
    uv_getaddrinfo_t req;
    h1_conn *conn;                        /* NULL once the connection gave up on it */
} h1_gai;

static void h1_conn_start(h1_conn *c);
static void h1_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* ---------------------------------------------------------------- URL */

tg_upstream_h1 *tg_upstream_h1_new(uv_loop_t *loop, const char *url, uint32_t connect_timeout_ms,
                                   const char *component)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    size_t ulen = strlen(url);
    if (http_parser_parse_url(url, ulen, 0, &u) != 0) return NULL;
    if (!(u.field_set & (1 << UF_SCHEMA)) || !(u.field_set & (1 << UF_HOST)) ||
        (u.field_set & (1 << UF_USERINFO)) ||
        !tg_strcaseeq(url + u.field_data[UF_SCHEMA].off, u.field_data[UF_SCHEMA].len, "http"))
        return NULL;
    /* The authority as written (host with brackets, and port if given) is the Host header. */
    const char *auth = strstr(url, "://") + 3;
    size_t alen = strcspn(auth, "/?#");
    tg_upstream_h1 *h1 = calloc(1, sizeof *h1);
    if (!h1) abort();
    h1->loop = loop;
    h1->component = component;
    h1->connect_timeout_ms = connect_timeout_ms;
    h1->host = strndup(url + u.field_data[UF_HOST].off, u.field_data[UF_HOST].len);
    if (!h1->host) abort();
    snprintf(h1->port, sizeof h1->port, "%u", u.port ? u.port : 80u);
    tg_buf p = TG_BUF_INIT;
    tg_buf_appends(&p, " ");
    if (u.field_set & (1 << UF_PATH))
        tg_buf_append(&p, url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
    else
        tg_buf_appends(&p, "/");
    if (u.field_set & (1 << UF_QUERY))
        tg_buf_printf(&p, "?%.*s", (int)u.field_data[UF_QUERY].len, url + u.field_data[UF_QUERY].off);
    tg_buf_printf(&p, " HTTP/1.1\r\nHost: %.*s\r\n", (int)alen, auth);
    h1->prefix_len = p.len;
    h1->prefix = tg_buf_steal(&p);
    int port = u.port ? u.port : 80;
    if (uv_ip4_addr(h1->host, port, (struct sockaddr_in *)&h1->addr) == 0 ||
        uv_ip6_addr(h1->host, port, (struct sockaddr_in6 *)&h1->addr) == 0)
        h1->literal = true;
    return h1;
}

/* ---------------------------------------------------------------- connections */

static void h1_handle_closed(uv_handle_t *h)
{
    h1_conn *c = h->data;
    if (--c->open_handles > 0) return;
    tg_buf_free(&c->out);
    tg_buf_free(&c->hname);
    tg_buf_free(&c->hval);
    free(c);
}

static void h1_idle_remove(h1_conn *c)
{
    tg_upstream_h1 *h1 = c->h1;
    if (c->prev) c->prev->next = c->next;
    else h1->idle = c->next;
    if (c->next) c->next->prev = c->prev;
    c->next = c->prev = NULL;
    h1->nidle--;
}

static void h1_wq_remove(h1_conn *c)
{
    if (!c->queued) return;
    if (c->wq_prev) c->wq_prev->wq_next = c->wq_next;
    else h1_wq.head = c->wq_next;
    if (c->wq_next) c->wq_next->wq_prev = c->wq_prev;
    else h1_wq.tail = c->wq_prev;
    c->wq_next = c->wq_prev = NULL;
    c->queued = false;
}

/* Closes the connection; it must carry no exchange (req NULL). Safe to call from its
 * own callbacks: the memory lives until both handles are closed. */
static void h1_conn_close(h1_conn *c)
{
    if (c->closing) return;
    if (!c->req && c->h1 && (c->prev || c->h1->idle == c)) h1_idle_remove(c);
    h1_wq_remove(c);
    c->closing = true;
    c->h1 = NULL;
    if (c->gai) c->gai->conn = NULL;
    c->gai = NULL;
    uv_close((uv_handle_t *)&c->tcp, h1_handle_closed);
    uv_close((uv_handle_t *)&c->timer, h1_handle_closed);
}

static int h1_on_header_field(http_parser *p, const char *at, size_t len);
static int h1_on_header_value(http_parser *p, const char *at, size_t len);
static int h1_on_headers_complete(http_parser *p);
static int h1_on_body(http_parser *p, const char *at, size_t len);
static int h1_on_message_complete(http_parser *p);

static const http_parser_settings h1_settings = {
    .on_header_field = h1_on_header_field,
    .on_header_value = h1_on_header_value,
    .on_headers_complete = h1_on_headers_complete,
    .on_body = h1_on_body,
    .on_message_complete = h1_on_message_complete,
};

/* Ready for the next response on this connection. */
static void h1_conn_reset_response(h1_conn *c)
{
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    c->got_bytes = c->complete = false;
    c->head_done = c->in_value = c->te_bad = false;
    c->head_bytes = c->line_len = 0;
    c->ncl = c->nte = 0;
    tg_buf_reset(&c->hname);
    tg_buf_reset(&c->hval);
}

static h1_conn *h1_conn_new(tg_upstream_h1 *h1)
{
    h1_conn *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->h1 = h1;
    uv_tcp_init(h1->loop, &c->tcp);
    uv_timer_init(h1->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    return c;
}

/* ---------------------------------------------------------------- ending an exchange */

/* Detaches the exchange from its connection and reports it; the connection is closed
 * unless `keep`. Reporting is the last thing done: the receiver may start new exchanges,
 * even on this connection when it was kept. */
static void h1_finish(h1_conn *c, const char *neterr, bool keep)
{
    tg_upstream_h1_req *r = c->req;
    c->req = NULL;
    r->conn = NULL;
    h1_wq_remove(c);
    uv_timer_stop(&c->timer);
    tg_upstream_h1 *h1 = c->h1;
    if (keep && h1 && h1->nidle < H1_MAX_IDLE) {
        h1_conn_reset_response(c);
        c->reused = true;
        c->next = h1->idle;
        if (h1->idle) h1->idle->prev = c;
        h1->idle = c;
        h1->nidle++;
    } else {
        h1_conn_close(c);
    }
    tg_upstream_http_finished(r->xf, neterr);
}

/* The connection failed while carrying an exchange: retried on a fresh connection when
 * the retry rule (top of file) allows it, else reported. */
static void h1_fail(h1_conn *c, const char *why)
{
    tg_upstream_h1_req *r = c->req;
    if (c->reused && !c->got_bytes && !r->retried && c->h1) {
        tg_log_debug(c->h1->component, "reused connection ended before a response (%s): "
                     "sending again on a new one", why);
        h1_conn *fresh = h1_conn_new(c->h1);
        r->retried = true;
        /* The bytes move to the new connection; the old one never touches them again
         * (a pending write on a closed handle is cancelled, not performed). */
        fresh->out = c->out;
        c->out = (tg_buf)TG_BUF_INIT;
        fresh->req = r;
        r->conn = fresh;
        c->req = NULL;
        h1_conn_close(c);
        h1_conn_start(fresh);
        return;
    }
    h1_finish(c, why, false);
}

static void h1_later_cb(uv_timer_t *t)
{
    h1_conn *c = t->data;
    if (c->req) h1_fail(c, c->later);
}

/* Fails the exchange from the loop, not from here: these failures can be found inside
 * tg_upstream_h1_send, and a transport reports nothing from inside tg_upconn_send. */
static void h1_fail_uv(h1_conn *c, const char *what, int status)
{
    snprintf(c->later, sizeof c->later, "%s: %s", what, uv_strerror(status));
    uv_timer_start(&c->timer, h1_later_cb, 0, 0);
}

/* ---------------------------------------------------------------- response side */

/* Checks what http_parser allows and we do not: obs-folded header lines (a line starting
 * with SP or HT), and the size of the header block. Stops at the blank line. */
static const char *h1_prescan(h1_conn *c, const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char ch = buf[i];
        if (++c->head_bytes > H1_MAX_HEAD) return "response header block too large";
        if (ch == '\n') {
            if (c->line_len == 0) {
                c->head_done = true;
                return NULL;
            }
            c->line_len = 0;
        } else if (ch != '\r') {
            if (c->line_len == 0 && (ch == ' ' || ch == '\t') && c->head_bytes > 1)
                return "obs-folded response header";
            c->line_len++;
        }
    }
    return NULL;
}

/* RFC 9110 token characters: what a header name is made of. */
static bool h1_token(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              strchr("!#$%&'*+-.^_`|~", ch)))
            return false;
    }
    return n > 0;
}

/* Checks the header just assembled, counts framing headers and reports it to http.c.
 * -1 (exchange finished) for a name that is not a token: http_parser lets "Name :" by. */
static int h1_header_done(h1_conn *c)
{
    const char *n = c->hname.data, *v = c->hval.data;
    size_t nl = c->hname.len, vl = c->hval.len;
    if (!h1_token(n, nl)) {
        h1_finish(c, "malformed header name in the response", false);
        return -1;
    }
    while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
    if (tg_strcaseeq(n, nl, "content-length")) c->ncl++;
    if (tg_strcaseeq(n, nl, "transfer-encoding")) {
        c->nte++;
        if (!tg_strcaseeq(v ? v : "", vl, "chunked")) c->te_bad = true;
    }
    if (c->req) tg_upstream_http_header(c->req->xf, n, nl, v ? v : "", vl);
    tg_buf_reset(&c->hname);
    tg_buf_reset(&c->hval);
    c->in_value = false;
    return 0;
}

static int h1_on_header_field(http_parser *p, const char *at, size_t len)
{
    h1_conn *c = p->data;
    if (!c->req || (c->in_value && h1_header_done(c) != 0)) return -1;
    tg_buf_append(&c->hname, at, len);
    return 0;
}

static int h1_on_header_value(http_parser *p, const char *at, size_t len)
{
    h1_conn *c = p->data;
    c->in_value = true;
    tg_buf_append(&c->hval, at, len);
    return 0;
}

static int h1_on_headers_complete(http_parser *p)
{
    h1_conn *c = p->data;
    if (!c->req || ((c->in_value || c->hname.len) && h1_header_done(c) != 0)) return -1;
    if (c->ncl > 1 || (c->ncl && c->nte) || c->nte > 1 || c->te_bad) {
        h1_finish(c, c->ncl > 1 ? "several Content-Length headers in the response"
                     : c->te_bad ? "unsupported Transfer-Encoding in the response"
                     : c->nte > 1 ? "several Transfer-Encoding headers in the response"
                                  : "Content-Length with Transfer-Encoding in the response",
                  false);
        return -1;
    }
    if (p->status_code < 200) {
        /* We never send Expect: nothing makes a 1xx legitimate here. */
        h1_finish(c, "unexpected 1xx response from the upstream", false);
        return -1;
    }
    tg_upstream_http_head(c->req->xf, p->status_code);
    if (!c->req) return -1;  /* cancelled by the receiver */
    /* Error bodies are not read (http.c ignores them): the exchange ends here and the
     * connection, its body unread, is not reused. */
    if (p->status_code >= 300) {
        h1_finish(c, NULL, false);
        return -1;
    }
    return 0;
}

static int h1_on_body(http_parser *p, const char *at, size_t len)
{
    h1_conn *c = p->data;
    if (!c->req) return -1;
    if (tg_upstream_http_body(c->req->xf, at, len) != 0) {
        if (c->req) h1_finish(c, "the response was refused", false);
        return -1;
    }
    return c->req ? 0 : -1;
}

static int h1_on_message_complete(http_parser *p)
{
    h1_conn *c = p->data;
    c->complete = true;
    /* stop here: the exchange is finished outside the parser */
    http_parser_pause(p, 1);
    return 0;
}

static void h1_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(h1_rbuf, sizeof h1_rbuf);
}

/* Feeds bytes to the parser and acts on what it found. */
static void h1_parse(h1_conn *c, const char *buf, size_t len)
{
    const char *bad = NULL;
    if (!c->head_done) bad = h1_prescan(c, buf, len);
    if (bad) {
        h1_finish(c, bad, false);
        return;
    }
    size_t used = http_parser_execute(&c->parser, &h1_settings, buf, len);
    if (!c->req) return;  /* finished, failed or cancelled inside a callback */
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (c->complete) {
        /* bytes after the response, with no request outstanding: a broken server */
        bool keep = used == len && !c->writing && http_should_keep_alive(&c->parser);
        h1_finish(c, NULL, keep);
        return;
    }
    if (e != HPE_OK) {
        char why[160];
        snprintf(why, sizeof why, "malformed response from the upstream (%s)",
                 http_errno_description(e));
        h1_finish(c, why, false);
    }
}

static void h1_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    h1_conn *c = s->data;
    if (c->closing || nread == 0) return;
    if (!c->req) {  /* idle: an EOF, an error or unsolicited bytes all end it */
        h1_conn_close(c);
        return;
    }
    if (nread > 0) {
        c->got_bytes = true;
        h1_parse(c, buf->base, (size_t)nread);
        return;
    }
    if (nread == UV_EOF && c->got_bytes) {
        /* a response framed by the end of the connection completes here */
        http_parser_execute(&c->parser, &h1_settings, NULL, 0);
        if (!c->req) return;
        if (c->complete) {
            h1_finish(c, NULL, false);
            return;
        }
    }
    h1_fail(c, nread == UV_EOF ? "the upstream closed the connection before the response "
                                 "was complete"
                               : uv_strerror((int)nread));
}

/* ---------------------------------------------------------------- request side */

static void h1_timeout_cb(uv_timer_t *t)
{
    h1_conn *c = t->data;
    if (!c->req) return;
    h1_finish(c, c->connected ? "timed out waiting for the upstream's response"
                              : "timed out connecting to the upstream", false);
}

static void h1_write_cb(uv_write_t *w, int status)
{
    h1_conn *c = w->data;
    c->writing = false;
    if (c->closing) return;
    if (status < 0 && c->req) h1_fail_uv(c, "cannot send the request", status);
}

/* Writes the request: as much as the socket takes now, the rest handed to libuv (stack.md
 * pitfall 1: a libuv-queued write costs an epoll_ctl). */
static void h1_write_now(h1_conn *c)
{
    uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)b.len) return;
    if (n < 0 && n != UV_EAGAIN) {
        h1_fail_uv(c, "cannot send the request", n);
        return;
    }
    if (n > 0) {
        b.base += n;
        b.len -= (size_t)n;
    }
    c->write.data = c;
    int rc = uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, h1_write_cb);
    if (rc < 0) h1_fail_uv(c, "cannot send the request", rc);
    else c->writing = true;
}

/* Writes what the iteration queued. A write that fails may end an exchange, whose
 * receiver may send another: that one joins the queue's tail and leaves in this pass. */
static void h1_wq_drain(uv_check_t *h)
{
    (void)h;
    while (h1_wq.head) {
        h1_conn *c = h1_wq.head;
        h1_wq_remove(c);
        h1_write_now(c);
    }
    uv_check_stop(&h1_wq.check);
    uv_idle_stop(&h1_wq.nudge);
}

static void h1_wq_nudge(uv_idle_t *h)
{
    (void)h; /* its being active is the point: the loop polls without sleeping */
}

/* Starts the exchange's deadline and queues its request for the end of the iteration. */
static void h1_write(h1_conn *c)
{
    tg_upstream_h1_req *r = c->req;
    if (r->timeout_ms) uv_timer_start(&c->timer, h1_timeout_cb, r->timeout_ms, 0);
    if (c->queued) return;
    if (!h1_wq.head) {
        uv_check_start(&h1_wq.check, h1_wq_drain);
        uv_idle_start(&h1_wq.nudge, h1_wq_nudge);
    }
    c->wq_prev = h1_wq.tail;
    c->wq_next = NULL;
    if (h1_wq.tail) h1_wq.tail->wq_next = c;
    else h1_wq.head = c;
    h1_wq.tail = c;
    c->queued = true;
}

static void h1_connect_cb(uv_connect_t *cr, int status)
{
    h1_conn *c = cr->data;
    if (c->closing) return;
    uv_timer_stop(&c->timer);
    if (status < 0) {
        char why[200];
        snprintf(why, sizeof why, "cannot connect to the upstream (%s:%s): %s",
                 c->h1->host, c->h1->port, uv_strerror(status));
        h1_finish(c, why, false);
        return;
    }
    c->connected = true;
    uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, h1_alloc_cb, h1_read_cb);
    if (rc < 0) {
        h1_fail_uv(c, "cannot read from the upstream", rc);
        return;
    }
    h1_write(c);
}

static void h1_connect_to(h1_conn *c, const struct sockaddr *sa)
{
    c->connect.data = c;
    int rc = uv_tcp_connect(&c->connect, &c->tcp, sa, h1_connect_cb);
    if (rc < 0) h1_fail_uv(c, "cannot connect to the upstream", rc);
}

static void h1_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    h1_gai *g = (h1_gai *)req;
    h1_conn *c = g->conn;
    free(g);
    if (!c) {
        uv_freeaddrinfo(res);
        return;
    }
    c->gai = NULL;
    if (status < 0) {
        char why[200];
        snprintf(why, sizeof why, "cannot resolve %s: %s", c->h1->host, uv_strerror(status));
        uv_freeaddrinfo(res);
        h1_finish(c, why, false);
        return;
    }
    struct addrinfo *pick = res;
    for (struct addrinfo *a = res; a; a = a->ai_next)
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    h1_connect_to(c, pick->ai_addr);
    uv_freeaddrinfo(res);
}

/* Starts a new connection for c->req (connect timeout running). */
static void h1_conn_start(h1_conn *c)
{
    tg_upstream_h1 *h1 = c->h1;
    h1_conn_reset_response(c);
    uv_timer_start(&c->timer, h1_timeout_cb, h1->connect_timeout_ms, 0);
    if (h1->literal) {
        h1_connect_to(c, (const struct sockaddr *)&h1->addr);
        return;
    }
    h1_gai *g = calloc(1, sizeof *g);
    if (!g) abort();
    g->conn = c;
    c->gai = g;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = uv_getaddrinfo(h1->loop, &g->req, h1_resolved, h1->host, h1->port, &hints);
    if (rc < 0) {
        free(g);
        c->gai = NULL;
        h1_fail_uv(c, "cannot resolve the upstream's host", rc);
    }
}

int tg_upstream_h1_send(tg_upstream_h1 *h1, tg_upstream_h1_req *r, const char *method,
                        const char *head, size_t hlen, const char *body, size_t blen,
                        tg_error *err)
{
    (void)err;  /* every failure after this point is reported through the exchange */
    h1_conn *c = h1->idle;
    if (c) h1_idle_remove(c);
    else c = h1_conn_new(h1);
    c->req = r;
    r->conn = c;
    r->retried = false;
    tg_buf_reset(&c->out);
    tg_buf_appends(&c->out, method);
    tg_buf_append(&c->out, h1->prefix, h1->prefix_len);
    tg_buf_append(&c->out, head, hlen);
    if (blen || strcmp(method, "POST") == 0) {
        tg_buf_appends(&c->out, "Content-Length: ");
        tg_buf_append_i64(&c->out, (int64_t)blen);
        tg_buf_append(&c->out, "\r\n", 2);
    }
    tg_buf_append(&c->out, "\r\n", 2);
    tg_buf_append(&c->out, body, blen);
    if (c->reused) h1_write(c);
    else h1_conn_start(c);
    return 0;
}

void tg_upstream_h1_cancel(tg_upstream_h1_req *r)
{
    h1_conn *c = r->conn;
    if (!c) return;
    c->req = NULL;
    r->conn = NULL;
    h1_conn_close(c);
}

void tg_upstream_h1_global_init(uv_loop_t *loop)
{
    h1_wq.loop = loop;
    uv_check_init(loop, &h1_wq.check);
    uv_idle_init(loop, &h1_wq.nudge);
    uv_unref((uv_handle_t *)&h1_wq.check);  /* a queue never keeps the loop alive */
    uv_unref((uv_handle_t *)&h1_wq.nudge);
}

void tg_upstream_h1_global_cleanup(void)
{
    if (!h1_wq.loop) return;
    uv_close((uv_handle_t *)&h1_wq.check, NULL);
    uv_close((uv_handle_t *)&h1_wq.nudge, NULL);
    h1_wq.loop = NULL;
    h1_wq.head = h1_wq.tail = NULL;
}

void tg_upstream_h1_free(tg_upstream_h1 *h1)
{
    if (!h1) return;
    while (h1->idle) h1_conn_close(h1->idle);
    free(h1->prefix);
    free(h1->host);
    free(h1);
}
