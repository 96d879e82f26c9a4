/*
 * http.c — the Streamable HTTP transport: one upstream MCP session over HTTP. The bytes
 * move on one of two engines, chosen once per connection in tg_upstream_http_new: h1.c,
 * our own HTTP/1.1 client, for plain http:// URLs (the fast path: no syscall beyond one
 * write and one read per call), and libcurl on the loop's multi handle (curl_loop.c) for
 * everything else (https, and http when the environment sets http_proxy, which curl
 * honours). Both report responses through tg_upstream_http_* (upstream_int.h), so what
 * a response means is decided here, once.
 *
 * Every message is its own POST. POSTs of one session may travel on different TCP
 * connections, so the upstream could see them out of order; like the official SDK client,
 * a POST that follows a notification (or a response) is held until that POST was answered
 * (202): the MCP lifecycle needs notifications/initialized handled before the first
 * request, and server-everything registers tools only then. Likewise POSTs wait while the
 * GET stream is being opened, until its response head arrived: a server drops requests
 * it sends with no GET stream open (roots/list, triggered by a call, would be lost). The answer is 202 (nothing to deliver), one JSON body
 * (or a batch array), or an event stream whose messages are delivered as they arrive;
 * all of them carry `stream_of` = the POSTed request's id. tg_upconn_open_stream keeps a
 * GET event stream open for server-initiated messages, reconnecting with backoff and
 * Last-Event-ID. The upstream's Mcp-Session-Id is captured from the first response that
 * carries one and sent on every later request; it never leaves this file.
 *
 * Exactly these request headers are sent: Content-Type and Accept (POST), Accept (GET),
 * MCP-Protocol-Version once negotiated, Mcp-Session-Id once assigned, Last-Event-ID on
 * a resumed GET, and the configured static headers — plus what HTTP framing needs
 * (Host, Content-Length). Nothing from a client ever reaches this layer.
 *
 * Connections are kept alive: by h1.c's pool, or by the multi handle's connection cache
 * (easy handles are then pooled per connection to spare their set-up). For h1 the POST
 * header block is built once and rebuilt only when the session id or protocol version
 * changes.
 */
#include "upstream/upstream_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_MAX_BODY          ((size_t)64 << 20)  /* JSON body or one SSE event */
#define HTTP_MAX_SESSION_ID    1024
#define HTTP_DEFAULT_CONNECT_MS 5000
#define HTTP_DELETE_TIMEOUT_MS 2000
#define HTTP_STREAM_MIN_MS     500                 /* GET stream reconnect backoff */
#define HTTP_STREAM_MAX_MS     30000
#define HTTP_STREAM_MIN_RETRY_MS 100               /* floor for the server's retry: */
#define HTTP_POOL              8                   /* idle easy handles kept */

typedef enum { XF_POST, XF_GET, XF_DELETE } xf_kind;
typedef enum { CT_UNKNOWN, CT_JSON, CT_SSE, CT_OTHER } xf_ctype;

typedef struct http_conn http_conn;

/* One HTTP exchange. Lives from its start until the driver's `done`, which frees it. */
struct http_xfer {
    tg_upstream_xfer x;          /* first: the curl driver hands back a tg_upstream_xfer * */
    tg_upstream_h1_req h1;       /* on the h1 engine */
    http_conn *hc;
    struct http_xfer *prev, *next;
    xf_kind kind;
    int64_t id;                  /* POST of a request: its id; else 0 */
    bool sent_session;           /* the request carried Mcp-Session-Id */
    char traceparent[64];        /* POST: the caller's W3C traceparent, or "" */
    struct curl_slist *headers;
    char *body;                  /* POST body (owned) for curl and while held */
    size_t body_len;
    /* response */
    long status;                 /* of the final response, once headers are complete */
    xf_ctype ctype;
    char *new_session;           /* Mcp-Session-Id seen in this response */
    tg_buf json;                 /* CT_JSON body */
    tg_upstream_sse sse;         /* CT_SSE parser, when sse_inited */
    bool sse_inited;
    bool answered;               /* the response to `id` was delivered */
    bool barrier;                /* later POSTs wait for this one (counted in `barriers`) */
    bool feeding;                /* inside tg_upstream_http_body */
    bool cancelled;              /* h1: cancelled while feeding; freed when that returns */
    char fail[160];              /* why the write side aborted the transfer, or "" */
    char errbuf[CURL_ERROR_SIZE];
};

/* Invariants: every running transfer is on `xfers`; `stream` is the GET transfer on it,
 * if any; once CLOSING, the conn is freed when `xfers` is empty and the timer closed. */
struct http_conn {
    struct tg_upconn base;
    http_xfer *xfers;
    http_xfer *stream;
    bool stream_wanted;          /* open_stream was called and the server did not say 405 */
    uint32_t stream_backoff_ms;
    char last_event_id[256];     /* of the GET stream */
    char *session_id;            /* the upstream's Mcp-Session-Id, or NULL */
    char *protocol_version;
    uv_timer_t timer;            /* reports UP once; then GET stream reconnects */
    bool timer_closing;
    CURL *pool[HTTP_POOL];
    int npool;
    tg_upstream_h1 *h1;          /* the engine for a plain http:// URL, else NULL (curl) */
    int barriers;                /* running xfers with `barrier` set */
    http_xfer *held, *held_tail; /* POSTs waiting for those, in order (via `next`) */
    tg_buf post_head;            /* h1: the POST header lines, valid when post_head_ok */
    bool post_head_ok;
};

static bool http_force_curl;

static void http_start_stream(http_conn *hc);

/* ---------------------------------------------------------------- helpers */

static bool visible_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) return false;
    return n > 0;
}

static CURL *http_easy_get(http_conn *hc)
{
    if (hc->npool > 0) return hc->pool[--hc->npool];
    CURL *e = curl_easy_init();
    if (!e) abort(); /* only fails on OOM */
    return e;
}

static void http_easy_put(http_conn *hc, CURL *e)
{
    if (hc->base.state != TG_UPCONN_CLOSING && hc->npool < HTTP_POOL) {
        curl_easy_reset(e);
        hc->pool[hc->npool++] = e;
    } else {
        curl_easy_cleanup(e);
    }
}

void tg_upstream_http_force_curl(bool on)
{
    http_force_curl = on;
}

static void http_free(http_conn *hc)
{
    for (int i = 0; i < hc->npool; i++) curl_easy_cleanup(hc->pool[i]);
    tg_upstream_h1_free(hc->h1);
    tg_buf_free(&hc->post_head);
    free(hc->session_id);
    free(hc->protocol_version);
    tg_upstream_base_free(&hc->base);
    free(hc);
}

static void http_timer_closed(uv_handle_t *h)
{
    http_conn *hc = h->data;
    tg_upstream_set_state(&hc->base, TG_UPCONN_CLOSED, NULL);
    http_free(hc);
}

static void http_maybe_finish(http_conn *hc)
{
    if (hc->base.state != TG_UPCONN_CLOSING || hc->xfers || hc->timer_closing) return;
    hc->timer_closing = true;
    uv_close((uv_handle_t *)&hc->timer, http_timer_closed);
}

/* ---------------------------------------------------------------- response side */

static void http_sse_event(void *user, const char *data, size_t len)
{
    http_xfer *xf = user;
    tg_upstream_deliver(&xf->hc->base, data, len, xf->id, true, &xf->answered);
}

static void http_barrier_done(http_xfer *xf);

void tg_upstream_http_head(http_xfer *xf, long status)
{
    xf->status = status;
    if (xf->status >= 200 && xf->status < 300 && xf->new_session && !xf->hc->session_id) {
        xf->hc->session_id = xf->new_session;
        xf->new_session = NULL;
        xf->hc->post_head_ok = false;
    }
    if (xf->ctype == CT_SSE && !xf->sse_inited) {
        tg_upstream_sse_init(&xf->sse, HTTP_MAX_BODY, http_sse_event, xf);
        xf->sse_inited = true;
    }
    if (xf->kind == XF_GET) http_barrier_done(xf);  /* the stream is open (or refused) */
}

void tg_upstream_http_header(http_xfer *xf, const char *buf, size_t nlen, const char *v,
                             size_t vlen)
{
    if (tg_strcaseeq(buf, nlen, "content-type")) {
        size_t mlen = 0;
        while (mlen < vlen && v[mlen] != ';' && v[mlen] != ' ') mlen++;
        xf->ctype = tg_strcaseeq(v, mlen, "application/json")    ? CT_JSON
                    : tg_strcaseeq(v, mlen, "text/event-stream") ? CT_SSE
                                                                  : CT_OTHER;
    } else if (tg_strcaseeq(buf, nlen, "mcp-session-id")) {
        if (vlen > HTTP_MAX_SESSION_ID || !visible_ascii(v, vlen)) {
            tg_log_warn(xf->hc->base.component, "ignored a malformed Mcp-Session-Id header");
        } else {
            free(xf->new_session);
            xf->new_session = strndup(v, vlen);
            if (!xf->new_session) abort();
        }
    }
}

/* curl: called for every header line, the status line and the blank line that ends them. */
static size_t http_header_cb(char *buf, size_t size, size_t n, void *ud)
{
    http_xfer *xf = ud;
    size_t len = size * n, l = len;
    while (l > 0 && (buf[l - 1] == '\n' || buf[l - 1] == '\r')) l--;
    if (l == 0) {  /* end of a header block */
        long status = 0;
        curl_easy_getinfo(xf->x.easy, CURLINFO_RESPONSE_CODE, &status);
        tg_upstream_http_head(xf, status);
        return len;
    }
    if (l >= 5 && memcmp(buf, "HTTP/", 5) == 0) {  /* a new response (after a 1xx) */
        xf->ctype = CT_UNKNOWN;
        free(xf->new_session);
        xf->new_session = NULL;
        return len;
    }
    const char *colon = memchr(buf, ':', l);
    if (!colon) return len;
    const char *v = colon + 1, *end = buf + l;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
    tg_upstream_http_header(xf, buf, (size_t)(colon - buf), v, (size_t)(end - v));
    return len;
}

static int http_feed(http_xfer *xf, const char *buf, size_t len)
{
    if (xf->status < 200 || xf->status >= 300) return 0;  /* error bodies are not read */
    if (xf->ctype == CT_JSON) {
        if (xf->json.len + len > HTTP_MAX_BODY) {
            snprintf(xf->fail, sizeof xf->fail, "response body larger than %zu bytes",
                     HTTP_MAX_BODY);
            return -1;
        }
        tg_buf_append(&xf->json, buf, len);
    } else if (xf->ctype == CT_SSE && xf->sse_inited) {
        tg_error err;
        if (tg_upstream_sse_feed(&xf->sse, buf, len, &err) != 0) {
            snprintf(xf->fail, sizeof xf->fail, "%.150s", err.msg);
            return -1;
        }
    }
    return 0;
}

static void http_xfer_release(http_xfer *xf);
static void http_maybe_finish(http_conn *hc);

int tg_upstream_http_body(http_xfer *xf, const char *buf, size_t len)
{
    /* Delivering an event may close the connection, which cancels this exchange: it is
     * then freed here, once the SSE parser no longer uses it. */
    xf->feeding = true;
    int rc = http_feed(xf, buf, len);
    xf->feeding = false;
    if (xf->cancelled) {
        http_conn *hc = xf->hc;
        http_xfer_release(xf);
        http_maybe_finish(hc);
        return -1;
    }
    return rc;
}

static size_t http_write_cb(char *buf, size_t size, size_t n, void *ud)
{
    size_t len = size * n;
    return tg_upstream_http_body(ud, buf, len) == 0 ? len : 0;  /* 0 aborts the transfer */
}

/* ---------------------------------------------------------------- completion */

/* Takes xf off the running list (a close no longer sees it). Idempotent. */
static void http_xfer_unlink(http_xfer *xf)
{
    http_conn *hc = xf->hc;
    if (xf->prev) xf->prev->next = xf->next;
    else if (hc->xfers == xf) hc->xfers = xf->next;
    if (xf->next) xf->next->prev = xf->prev;
    xf->prev = xf->next = NULL;
    if (hc->stream == xf) hc->stream = NULL;
}

static void http_xfer_release(http_xfer *xf)
{
    if (xf->x.easy) http_easy_put(xf->hc, xf->x.easy);
    curl_slist_free_all(xf->headers);
    free(xf->body);
    free(xf->new_session);
    tg_buf_free(&xf->json);
    if (xf->sse_inited) tg_upstream_sse_free(&xf->sse);
    free(xf);
}

static void http_xfer_free(http_xfer *xf)
{
    http_xfer_unlink(xf);
    http_xfer_release(xf);
}

static void http_session_expired(http_conn *hc)
{
    free(hc->session_id);
    hc->session_id = NULL;
    hc->stream_wanted = false;
    hc->post_head_ok = false;
    uv_timer_stop(&hc->timer);
    if (hc->base.state == TG_UPCONN_UP)
        tg_upstream_set_state(&hc->base, TG_UPCONN_DOWN, "upstream session expired");
}

/* Why a finished transfer failed, or NULL if it did not. */
static const char *http_failure(http_xfer *xf, const char *neterr, char *why, size_t whylen)
{
    if (xf->fail[0]) return xf->fail;
    if (neterr) return neterr;
    if (xf->status < 200 || xf->status >= 300) {
        snprintf(why, whylen, "HTTP %ld from the upstream", xf->status);
        return why;
    }
    return NULL;
}

static void http_post_done(http_xfer *xf, const char *neterr)
{
    http_conn *hc = xf->hc;
    if (!neterr && !xf->fail[0] && xf->status >= 200 && xf->status < 300 &&
        xf->ctype == CT_JSON && xf->json.len > 0) {
        tg_upstream_deliver(&hc->base, xf->json.data, xf->json.len, xf->id, true, &xf->answered);
    }
    if (hc->base.state != TG_UPCONN_UP) return;  /* closing, or already down */

    char buf[64];
    const char *why = http_failure(xf, neterr, buf, sizeof buf);
    if (!why && xf->id && !xf->answered && xf->status != 202) {
        why = xf->ctype == CT_SSE  ? "the response stream ended without the response"
            : xf->ctype == CT_JSON ? "the response body held no valid response"
                                   : "the response has an unexpected Content-Type";
    }
    /* A stream cut after the response arrived lost nothing. */
    if (!why || (xf->id && xf->answered)) return;
    int status = (int)xf->status;  /* 0 when no response arrived */
    tg_log_warn(hc->base.component, "POST failed: %s", why);
    if (hc->base.cbs.on_send_failed) hc->base.cbs.on_send_failed(&hc->base, xf->id, status, why,
                                                                 hc->base.user);
    if (status == 404 && xf->sent_session && hc->base.state == TG_UPCONN_UP)
        http_session_expired(hc);
}

static void http_timer_cb(uv_timer_t *t)
{
    http_conn *hc = t->data;
    if (hc->base.state == TG_UPCONN_STARTING) {
        tg_upstream_set_state(&hc->base, TG_UPCONN_UP, NULL);
        return;
    }
    if (hc->base.state == TG_UPCONN_UP && hc->stream_wanted && !hc->stream) http_start_stream(hc);
}

static void http_get_done(http_xfer *xf, const char *neterr)
{
    http_conn *hc = xf->hc;
    if (hc->base.state != TG_UPCONN_UP || !hc->stream_wanted) return;
    if (xf->sse_inited && xf->sse.last_id[0])
        memcpy(hc->last_event_id, xf->sse.last_id, sizeof hc->last_event_id);
    if (xf->status == 405) {
        tg_log_debug(hc->base.component, "the upstream offers no GET stream");
        hc->stream_wanted = false;
        return;
    }
    if (xf->status == 404 && xf->sent_session) {
        http_session_expired(hc);
        return;
    }
    char buf[64];
    const char *why = http_failure(xf, neterr, buf, sizeof buf);
    if (!why && xf->ctype != CT_SSE) why = "the GET stream is not text/event-stream";
    /* A stream that was up reconnects promptly (after the server's retry: if given);
     * one that could not be opened backs off, doubling. */
    uint32_t delay;
    if (xf->status >= 200 && xf->status < 300 && xf->sse_inited) {
        delay = xf->sse.retry_ms >= 0 ? (uint32_t)xf->sse.retry_ms : HTTP_STREAM_MIN_MS;
        /* a server that keeps ending the stream must not make us spin */
        if (delay < HTTP_STREAM_MIN_RETRY_MS) delay = HTTP_STREAM_MIN_RETRY_MS;
        if (delay > HTTP_STREAM_MAX_MS) delay = HTTP_STREAM_MAX_MS;
        hc->stream_backoff_ms = HTTP_STREAM_MIN_MS;
    } else {
        delay = hc->stream_backoff_ms;
        hc->stream_backoff_ms = delay >= HTTP_STREAM_MAX_MS / 2 ? HTTP_STREAM_MAX_MS : delay * 2;
    }
    tg_log_info(hc->base.component, "GET stream ended (%s); reconnecting in %u ms",
                why ? why : "closed by the upstream", delay);
    uv_timer_start(&hc->timer, http_timer_cb, delay, 0);
}

static void http_release_held(http_conn *hc);

/* xf no longer holds later POSTs back; the held ones start when nothing else does. */
static void http_barrier_done(http_xfer *xf)
{
    if (!xf->barrier) return;
    xf->barrier = false;
    if (--xf->hc->barriers == 0) http_release_held(xf->hc);
}

void tg_upstream_http_finished(http_xfer *xf, const char *neterr)
{
    http_conn *hc = xf->hc;
    http_barrier_done(xf);
    /* Off the list first: a receiver that closes the connection while this exchange's
     * messages are delivered must not cancel (and free) it under our feet. */
    http_xfer_unlink(xf);
    if (xf->kind == XF_POST) http_post_done(xf, neterr);
    else if (xf->kind == XF_GET) http_get_done(xf, neterr);
    http_xfer_release(xf);
    http_maybe_finish(hc);
}

static void http_curl_done(tg_upstream_xfer *x, CURLcode rc)
{
    http_xfer *xf = (http_xfer *)x;
    if (rc == CURLE_ABORTED_BY_CALLBACK) {  /* cancelled by us (only when closing) */
        http_conn *hc = xf->hc;
        http_xfer_free(xf);
        http_maybe_finish(hc);
        return;
    }
    tg_upstream_http_finished(xf, rc == CURLE_OK ? NULL
                                  : xf->errbuf[0] ? xf->errbuf : curl_easy_strerror(rc));
}

/* ---------------------------------------------------------------- request side */

/* Every request header this transport chooses (see the top of the file), in order. */
typedef void (*http_emit)(void *ctx, const char *name, const char *value);

static void http_headers(const http_conn *hc, xf_kind kind, http_emit emit, void *ctx)
{
    const tg_upstream_conf *conf = hc->base.conf;
    if (kind == XF_POST) {
        emit(ctx, "Accept", "application/json, text/event-stream");
        emit(ctx, "Content-Type", "application/json");
    } else if (kind == XF_GET) {
        emit(ctx, "Accept", "text/event-stream");
        if (hc->last_event_id[0]) emit(ctx, "Last-Event-ID", hc->last_event_id);
    }
    if (hc->protocol_version) emit(ctx, "MCP-Protocol-Version", hc->protocol_version);
    if (hc->session_id) emit(ctx, "Mcp-Session-Id", hc->session_id);
    for (size_t i = 0; i < conf->nheaders; i++)
        emit(ctx, conf->headers[i].key, conf->headers[i].value);
}

static void add_line(struct curl_slist **l, const char *line)
{
    struct curl_slist *n = curl_slist_append(*l, line);
    if (!n) abort();
    *l = n;
}

static void emit_curl(void *ctx, const char *name, const char *value)
{
    tg_buf b = TG_BUF_INIT;
    /* "Name;" is curl's way to send a header with an empty value ("Name:" deletes it). */
    if (value[0]) tg_buf_printf(&b, "%s: %s", name, value);
    else tg_buf_printf(&b, "%s;", name);
    add_line(ctx, b.data);
    tg_buf_free(&b);
}

static void emit_h1(void *ctx, const char *name, const char *value)
{
    tg_buf *b = ctx; /* appended, not printf'd: the traceparent line is written per call */
    tg_buf_appends(b, name);
    tg_buf_append(b, ": ", 2);
    tg_buf_appends(b, value);
    tg_buf_append(b, "\r\n", 2);
}

static http_xfer *http_xfer_new(http_conn *hc, xf_kind kind)
{
    const tg_upstream_conf *conf = hc->base.conf;
    http_xfer *xf = calloc(1, sizeof *xf);
    if (!xf) abort();
    xf->hc = hc;
    xf->kind = kind;
    xf->sent_session = hc->session_id != NULL;
    if (hc->h1) {
        xf->h1.xf = xf;
        return xf;
    }
    xf->x.done = http_curl_done;
    CURL *e = xf->x.easy = http_easy_get(hc);
    http_headers(hc, kind, emit_curl, &xf->headers);
    /* Removes the Expect: 100-continue curl adds to large bodies: no extra round trip,
     * and no header we did not choose. */
    if (kind == XF_POST) add_line(&xf->headers, "Expect:");

    curl_easy_setopt(e, CURLOPT_URL, conf->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)&xf->x);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(conf->connect_timeout_ms ? conf->connect_timeout_ms
                                                     : HTTP_DEFAULT_CONNECT_MS));
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, xf->errbuf);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, http_header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, xf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, xf);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, tg_upstream_curl_opensocket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, tg_upstream_curl_closesocket);
    switch (kind) {
    case XF_POST: break;  /* the body is given by http_xfer_start */
    case XF_GET: curl_easy_setopt(e, CURLOPT_HTTPGET, 1L); break;
    case XF_DELETE:
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)HTTP_DELETE_TIMEOUT_MS);
        break;
    }
    return xf;
}

/* Starts xf with this body (POST only; copied). -1 and xf freed if the engine refuses. */
static int http_xfer_start(http_xfer *xf, const char *body, size_t len, tg_error *err)
{
    http_conn *hc = xf->hc;
    xf->barrier = xf->kind == XF_GET || (xf->kind == XF_POST && !xf->id);
    if (xf->barrier) hc->barriers++;
    xf->next = hc->xfers;
    if (hc->xfers) hc->xfers->prev = xf;
    hc->xfers = xf;
    int rc;
    if (hc->h1) {
        static const char *const methods[] = {[XF_POST] = "POST", [XF_GET] = "GET",
                                              [XF_DELETE] = "DELETE"};
        if (xf->kind == XF_DELETE) xf->h1.timeout_ms = HTTP_DELETE_TIMEOUT_MS;
        if (xf->kind == XF_POST) {
            if (!hc->post_head_ok) {
                tg_buf_reset(&hc->post_head);
                http_headers(hc, XF_POST, emit_h1, &hc->post_head);
                hc->post_head_ok = true;
            }
            if (xf->traceparent[0]) {
                /* The shared head plus this call's own trace line. */
                char mem[2048];
                tg_buf head;
                tg_buf_use(&head, mem, sizeof mem);
                tg_buf_append(&head, hc->post_head.data, hc->post_head.len);
                emit_h1(&head, "traceparent", xf->traceparent);
                rc = tg_upstream_h1_send(hc->h1, &xf->h1, "POST", head.data, head.len, body,
                                         len, err);
                tg_buf_free(&head);
            } else {
                rc = tg_upstream_h1_send(hc->h1, &xf->h1, "POST", hc->post_head.data,
                                         hc->post_head.len, body, len, err);
            }
        } else {
            tg_buf head = TG_BUF_INIT;
            http_headers(hc, xf->kind, emit_h1, &head);
            rc = tg_upstream_h1_send(hc->h1, &xf->h1, methods[xf->kind], head.data, head.len,
                                     NULL, 0, err);
            tg_buf_free(&head);
        }
    } else {
        if (xf->kind == XF_POST) {
            if (body != xf->body) {
                xf->body = malloc(len ? len : 1);
                if (!xf->body) abort();
                memcpy(xf->body, body, len);
            }
            curl_easy_setopt(xf->x.easy, CURLOPT_POSTFIELDS, xf->body);
            curl_easy_setopt(xf->x.easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        }
        curl_easy_setopt(xf->x.easy, CURLOPT_HTTPHEADER, xf->headers);
        rc = tg_upstream_curl_add(&xf->x, err);
    }
    if (rc != 0) {
        if (xf->barrier) hc->barriers--;
        http_xfer_free(xf);
    }
    return rc;
}

/* Starts held POSTs in order, until one of them is a notification again. */
static void http_release_held(http_conn *hc)
{
    while (hc->held && hc->barriers == 0) {
        http_xfer *xf = hc->held;
        hc->held = xf->next;
        if (!hc->held) hc->held_tail = NULL;
        xf->next = NULL;
        tg_error err;
        int64_t id = xf->id;
        if (http_xfer_start(xf, xf->body, xf->body_len, &err) != 0) {
            tg_log_warn(hc->base.component, "POST failed: %s", err.msg);
            if (hc->base.cbs.on_send_failed)
                hc->base.cbs.on_send_failed(&hc->base, id, 0, err.msg, hc->base.user);
        }
    }
}

static int http_send(tg_upconn *c, const char *msg, size_t len, int64_t request_id,
                     const char *traceparent, tg_error *err)
{
    http_conn *hc = (http_conn *)c;
    http_xfer *xf = http_xfer_new(hc, XF_POST);
    xf->id = request_id;
    /* Only a well-formed value reaches the wire: it is one header line we did not build. */
    if (traceparent && strlen(traceparent) < sizeof xf->traceparent &&
        visible_ascii(traceparent, strlen(traceparent))) {
        strcpy(xf->traceparent, traceparent);
        if (!hc->h1) emit_curl(&xf->headers, "traceparent", traceparent);
    }
    if (hc->barriers == 0) return http_xfer_start(xf, msg, len, err);
    xf->body = malloc(len ? len : 1);
    if (!xf->body) abort();
    memcpy(xf->body, msg, len);
    xf->body_len = len;
    if (hc->held_tail) hc->held_tail->next = xf;
    else hc->held = xf;
    hc->held_tail = xf;
    return 0;
}

static void http_start_stream(http_conn *hc)
{
    http_xfer *xf = http_xfer_new(hc, XF_GET);
    tg_error err;
    if (http_xfer_start(xf, NULL, 0, &err) != 0) {
        tg_log_warn(hc->base.component, "cannot open the GET stream: %s", err.msg);
        return;
    }
    hc->stream = xf;
}

static void http_open_stream(tg_upconn *c)
{
    http_conn *hc = (http_conn *)c;
    if (c->state != TG_UPCONN_UP || hc->stream_wanted) return;
    hc->stream_wanted = true;
    hc->stream_backoff_ms = HTTP_STREAM_MIN_MS;
    http_start_stream(hc);
}

static void http_set_protocol_version(tg_upconn *c, const char *version)
{
    http_conn *hc = (http_conn *)c;
    free(hc->protocol_version);
    hc->protocol_version = NULL;
    hc->post_head_ok = false;
    if (version && visible_ascii(version, strlen(version))) {
        hc->protocol_version = strdup(version);
        if (!hc->protocol_version) abort();
    }
}

/* Stops a running exchange without reporting it. */
static void http_cancel(http_xfer *xf)
{
    if (!xf->hc->h1) {
        tg_upstream_curl_cancel(&xf->x);  /* http_curl_done follows and frees it */
        return;
    }
    tg_upstream_h1_cancel(&xf->h1);
    http_xfer_unlink(xf);
    if (xf->feeding) xf->cancelled = true;  /* tg_upstream_http_body frees it */
    else http_xfer_release(xf);
}

static void http_close(tg_upconn *c)
{
    http_conn *hc = (http_conn *)c;
    uv_timer_stop(&hc->timer);
    hc->stream_wanted = false;
    if (hc->session_id) {
        /* Best effort: tell the upstream the session is over; its answer does not matter.
         * Started first so the transfer list cannot run empty (and finish) before it. */
        tg_error err;
        if (http_xfer_start(http_xfer_new(hc, XF_DELETE), NULL, 0, &err) != 0)
            tg_log_warn(c->component, "cannot end the upstream session: %s", err.msg);
    }
    for (http_xfer *xf = hc->xfers, *next; xf; xf = next) {
        next = xf->next;
        if (xf->kind != XF_DELETE) http_cancel(xf);
    }
    while (hc->held) {  /* never started: nothing to cancel */
        http_xfer *xf = hc->held;
        hc->held = xf->next;
        http_xfer_release(xf);
    }
    hc->held_tail = NULL;
    http_maybe_finish(hc);
}

static const tg_upstream_ops http_ops = {
    .send = http_send,
    .set_protocol_version = http_set_protocol_version,
    .open_stream = http_open_stream,
    .close = http_close,
};

static bool header_safe(const char *s)
{
    return !strpbrk(s, "\r\n");
}

tg_upconn *tg_upstream_http_new(uv_loop_t *loop, const tg_upstream_conf *conf,
                                const tg_upconn_cbs *cbs, void *user, tg_error *err)
{
    if (!conf->url || !conf->url[0]) {
        tg_error_set(err, "upstream %s: the HTTP transport needs a url", conf->name);
        return NULL;
    }
    for (size_t i = 0; i < conf->nheaders; i++) {
        const char *k = conf->headers[i].key, *v = conf->headers[i].value;
        if (!k[0] || strpbrk(k, ":; \t") || !header_safe(k) || !header_safe(v)) {
            tg_error_set(err, "upstream %s: header #%zu is not a valid HTTP header", conf->name,
                         i + 1);
            return NULL;
        }
    }
    if (!tg_upstream_curl_ready()) {
        tg_error_set(err, "upstream %s: call tg_upstream_global_init before tg_upconn_new",
                     conf->name);
        return NULL;
    }
    http_conn *hc = calloc(1, sizeof *hc);
    if (!hc) abort();
    tg_upstream_base_init(&hc->base, loop, conf, cbs, user, &http_ops);
    /* curl honours http_proxy for http:// URLs; h1 does not, so it leaves those to curl. */
    if (!http_force_curl && !getenv("http_proxy"))
        hc->h1 = tg_upstream_h1_new(loop, conf->url,
                                    conf->connect_timeout_ms ? conf->connect_timeout_ms
                                                             : HTTP_DEFAULT_CONNECT_MS,
                                    hc->base.component);
    uv_timer_init(loop, &hc->timer);
    hc->timer.data = hc;
    /* UP from the loop, so on_state never runs inside tg_upconn_new. */
    uv_timer_start(&hc->timer, http_timer_cb, 0, 0);
    return &hc->base;
}
