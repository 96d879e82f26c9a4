/*
 * response.c — everything the front writes: complete responses (tg_http_respond), SSE
 * streams, the front's own JSON-RPC error responses, and 100 Continue.
 *
 * Write path: the response head is built in the connection's reusable wbuf and sent
 * together with the body in one uv_try_write (writev); only what the kernel did not take
 * is copied into a single malloc'd block and queued with uv_write (stack.md pitfall 1).
 * So the caller's body memory (often the request arena) can be freed as soon as the call
 * returns, and a response that fits the socket buffer costs no allocation at all.
 *
 * Request ownership (see tg_front.h): tg_http_respond / tg_http_sse_end give the request
 * back to the front, which frees it at once. If the connection died meanwhile, these
 * calls only free the request (the abort callback is then not called: the handler has
 * already let go). Inside the abort callback they are no-ops and tg_http_sse_send
 * returns -1; the request is freed when the callback returns.
 */
#include "front/front_int.h"

#include <stdlib.h>
#include <string.h>

static const char *COMP = "front";

const char *tg_http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status >= 500 ? "Error" : status >= 400 ? "Client Error" : "Status";
    }
}

/* ---------------------------------------------------------------- writing */

/* What the kernel did not take at once. The data follows the request in one block. */
typedef struct front_wblock {
    uv_write_t w;
    char data[];
} front_wblock;

static void on_write(uv_write_t *w, int status)
{
    front_conn *c = w->data;
    free(w);
    c->writes_pending--;
    if (status < 0) {
        front_conn_close(c); /* no-op when the close is what cancelled us */
        return;
    }
    if (c->writes_pending == 0 && c->phase == CONN_FLUSH) front_conn_next(c);
}

int front_write(front_conn *c, uv_buf_t *bufs, unsigned nbufs)
{
    if (c->phase == CONN_DEAD || c->phase == CONN_CLOSING) return -1;
    size_t total = 0;
    for (unsigned i = 0; i < nbufs; i++) total += bufs[i].len;
    int r = uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs);
    size_t done = 0;
    if (r >= 0) {
        done = (size_t)r;
    } else if (r != UV_EAGAIN) {
        tg_log_debug(COMP, "client %s: write failed: %s", c->client_ip, uv_strerror(r));
        front_conn_close(c);
        return -1;
    }
    if (done == total) return 0;
    front_wblock *b = malloc(sizeof *b + (total - done));
    if (!b) abort();
    size_t pos = 0, skip = done;
    for (unsigned i = 0; i < nbufs; i++) {
        size_t len = bufs[i].len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(b->data + pos, bufs[i].base + skip, len - skip);
        pos += len - skip;
        skip = 0;
    }
    b->w.data = c;
    uv_buf_t rest = uv_buf_init(b->data, (unsigned)pos);
    r = uv_write(&b->w, (uv_stream_t *)&c->tcp, &rest, 1, on_write);
    if (r != 0) {
        free(b);
        tg_log_debug(COMP, "client %s: write failed: %s", c->client_ip, uv_strerror(r));
        front_conn_close(c);
        return -1;
    }
    c->writes_pending++;
    return 0;
}

/* Response header names are tokens and values carry no CR/LF/NUL: a handler bug must not
 * become response splitting. */
static bool headers_safe(const tg_http_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (h[i].name_len == 0) return false;
        for (size_t j = 0; j < h[i].name_len; j++) {
            unsigned char ch = (unsigned char)h[i].name[j];
            if (ch <= 0x20 || ch >= 0x7f || ch == ':') return false;
        }
        for (size_t j = 0; j < h[i].value_len; j++) {
            unsigned char ch = (unsigned char)h[i].value[j];
            if (ch == '\r' || ch == '\n' || ch == '\0') return false;
        }
    }
    return true;
}

static void append_uint(tg_buf *b, size_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    tg_buf_append(b, tmp + i, sizeof tmp - i);
}

static void append_header(tg_buf *b, const char *name, size_t nlen, const char *value, size_t vlen)
{
    tg_buf_append(b, name, nlen);
    tg_buf_append(b, ": ", 2);
    tg_buf_append(b, value, vlen);
    tg_buf_append(b, "\r\n", 2);
}

/* Builds the status line and headers into c->wbuf: Date, Content-Type (if ctype),
 * `fixed` (complete header lines, if any), the handler's headers, Content-Length (if
 * clen >= 0), and Connection when it differs from the version's default. */
static void build_head(front_conn *c, int status, const char *ctype, const char *fixed,
                       const tg_http_header *h, size_t n, long long clen)
{
    tg_buf *b = &c->wbuf;
    tg_buf_reset(b);
    tg_buf_appends(b, "HTTP/1.1 ");
    append_uint(b, (size_t)status);
    tg_buf_append(b, " ", 1);
    tg_buf_appends(b, tg_http_status_text(status));
    tg_buf_appends(b, "\r\nDate: ");
    tg_buf_appends(b, front_date(c->srv));
    tg_buf_append(b, "\r\n", 2);
    if (ctype) append_header(b, "Content-Type", 12, ctype, strlen(ctype));
    if (fixed) tg_buf_appends(b, fixed);
    for (size_t i = 0; i < n; i++) append_header(b, h[i].name, h[i].name_len, h[i].value, h[i].value_len);
    if (clen >= 0) {
        tg_buf_appends(b, "Content-Length: ");
        append_uint(b, (size_t)clen);
        tg_buf_append(b, "\r\n", 2);
    }
    if (!c->keepalive) tg_buf_appends(b, "Connection: close\r\n");
    else if (c->req && c->req->pub.http_minor == 0) tg_buf_appends(b, "Connection: keep-alive\r\n");
    tg_buf_append(b, "\r\n", 2);
}

/* Writes a complete response (head + body). Returns front_write's result. */
static int send_response(front_conn *c, int status, const char *ctype, const tg_http_header *h,
                         size_t n, const char *body, size_t body_len)
{
    bool no_body = status == 204 || status == 304 || (status >= 100 && status < 200);
    build_head(c, status, ctype, NULL, h, n, no_body ? -1 : (long long)body_len);
    uv_buf_t bufs[2] = {uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len),
                        uv_buf_init((char *)body, (unsigned)body_len)};
    unsigned nb = (no_body || c->head_only || body_len == 0) ? 1 : 2;
    return front_write(c, bufs, nb);
}

/* ---------------------------------------------------------------- front errors */

void front_reject(front_conn *c, int status, const char *reason)
{
    if (status == 400 || status == 408) tg_log_info(COMP, "client %s: %d: %s", c->client_ip, status, reason);
    else tg_log_warn(COMP, "client %s: %d: %s", c->client_ip, status, reason);
    tg_buf body = TG_BUF_INIT;
    tg_buf_appends(&body, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":");
    tg_buf_appends(&body, status == 400 ? "-32600" : "-32000");
    tg_buf_appends(&body, ",\"message\":");
    tg_buf_json_string(&body, reason, strlen(reason));
    tg_buf_appends(&body, "}}");
    c->keepalive = false;
    c->head_only = false;
    send_response(c, status, "application/json", NULL, 0, body.data, body.len);
    tg_buf_free(&body);
    front_req_free(c);
    front_conn_shutdown(c);
}

void front_send_continue(front_conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_buf_t b = uv_buf_init((char *)cont, sizeof cont - 1);
    front_write(c, &b, 1);
}

/* ---------------------------------------------------------------- public API */

static inline front_req *freq(tg_http_req *req)
{
    return (front_req *)req;
}

/* Common entry check for the calls that answer a request. Returns the connection when
 * the call may write, NULL when it must not (and then has already done what is due). */
static front_conn *answer_conn(front_req *fr, front_phase want, const char *what)
{
    front_conn *c = fr->conn;
    if (fr->aborting) return NULL; /* freed when the abort callback returns */
    if (c->phase == CONN_DEAD) {
        front_req_free(c); /* the client is gone; the handler has let go: no abort */
        return NULL;
    }
    if (c->phase != want) {
        tg_log_error(COMP, "%s called in the wrong state (%d); ignored", what, (int)c->phase);
        return NULL;
    }
    return c;
}

void tg_http_req_on_abort(tg_http_req *req, tg_http_abort_cb cb, void *user)
{
    freq(req)->abort_cb = cb;
    freq(req)->abort_user = user;
}

const char *tg_http_req_header(const tg_http_req *req, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++) {
        const tg_http_header *h = &req->headers[i];
        if (tg_strcaseeq_n(h->name, h->name_len, name, nlen)) {
            if (len) *len = h->value_len;
            return h->value;
        }
    }
    if (len) *len = 0;
    return NULL;
}

size_t tg_http_req_header_count(const tg_http_req *req, const char *name)
{
    size_t n = 0, nlen = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++)
        if (tg_strcaseeq_n(req->headers[i].name, req->headers[i].name_len, name, nlen)) n++;
    return n;
}

static void respond_ct(tg_http_req *req, int status, const char *ctype, const tg_http_header *h,
                       size_t n, const char *body, size_t body_len)
{
    front_req *fr = freq(req);
    front_conn *c = answer_conn(fr, CONN_HANDLER, "tg_http_respond");
    if (!c) return;
    if (!headers_safe(h, n)) {
        tg_log_error(COMP, "handler gave an invalid response header; answering 500");
        static const char err[] = "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32603,"
                                  "\"message\":\"internal error\"}}";
        status = 500;
        ctype = "application/json";
        h = NULL;
        n = 0;
        body = err;
        body_len = sizeof err - 1;
    }
    send_response(c, status, ctype, h, n, body, body_len);
    front_req_free(c);
    front_conn_next(c);
}

void tg_http_respond(tg_http_req *req, int status, const tg_http_header *headers, size_t nheaders,
                     const char *body, size_t body_len)
{
    respond_ct(req, status, NULL, headers, nheaders, body, body_len);
}

void tg_http_respond_json(tg_http_req *req, int status, const tg_http_header *headers,
                          size_t nheaders, const char *json, size_t json_len)
{
    respond_ct(req, status, "application/json", headers, nheaders, json, json_len);
}

void tg_http_sse_start(tg_http_req *req, const tg_http_header *headers, size_t nheaders)
{
    front_req *fr = freq(req);
    front_conn *c = answer_conn(fr, CONN_HANDLER, "tg_http_sse_start");
    if (!c) return;
    if (!headers_safe(headers, nheaders)) {
        tg_log_error(COMP, "handler gave an invalid SSE response header; dropped");
        nheaders = 0;
    }
    /* HTTP/1.0 has no chunked encoding: the stream then ends with the connection. */
    c->sse_chunked = req->http_minor == 1;
    if (!c->sse_chunked) c->keepalive = false;
    build_head(c, 200, "text/event-stream",
               c->sse_chunked ? "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n"
                              : "Cache-Control: no-cache\r\n",
               headers, nheaders, -1);
    uv_buf_t b = uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len);
    if (front_write(c, &b, 1) == 0) c->phase = CONN_SSE;
}

/* Appends text as lines "<prefix><line>\n", splitting on CRLF, CR or LF (all three end
 * a line for an SSE client, so none may pass through unsplit). */
static void append_lines(tg_buf *b, const char *prefix, size_t plen, const char *text, size_t len)
{
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < len && text[j] != '\r' && text[j] != '\n') j++;
        tg_buf_append(b, prefix, plen);
        tg_buf_append(b, text + i, j - i);
        tg_buf_append(b, "\n", 1);
        if (j >= len) break;
        if (text[j] == '\r' && j + 1 < len && text[j + 1] == '\n') j++;
        i = j + 1;
    }
}

/* Sends c->wbuf as one SSE chunk; cuts off a client that does not read. */
static int sse_emit(front_conn *c)
{
    char prefix[24];
    int plen = snprintf(prefix, sizeof prefix, "%zx\r\n", c->wbuf.len);
    uv_buf_t bufs[3] = {uv_buf_init(prefix, (unsigned)plen),
                        uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len),
                        uv_buf_init((char *)"\r\n", 2)};
    int r = c->sse_chunked ? front_write(c, bufs, 3) : front_write(c, bufs + 1, 1);
    if (r != 0) return -1;
    if (c->tcp.write_queue_size > FRONT_SSE_MAX_QUEUED) {
        tg_log_warn(COMP, "client %s: SSE stream not read (%zu bytes queued); closing",
                    c->client_ip, c->tcp.write_queue_size);
        front_conn_close(c);
        return -1;
    }
    return 0;
}

static bool one_line(const char *s)
{
    return !s || strpbrk(s, "\r\n") == NULL;
}

static front_conn *sse_conn(tg_http_req *req)
{
    front_req *fr = freq(req);
    if (fr->aborting || fr->conn->phase != CONN_SSE) return NULL;
    return fr->conn;
}

int tg_http_sse_send(tg_http_req *req, const char *id, const char *event, const char *data,
                     size_t data_len)
{
    front_conn *c = sse_conn(req);
    if (!c) return -1;
    if (!one_line(id) || !one_line(event)) {
        tg_log_error(COMP, "SSE id or event name contains a line break; event not sent");
        return -1;
    }
    tg_buf *b = &c->wbuf;
    tg_buf_reset(b);
    if (id) append_lines(b, "id: ", 4, id, strlen(id));
    if (event) append_lines(b, "event: ", 7, event, strlen(event));
    append_lines(b, "data: ", 6, data ? data : "", data ? data_len : 0);
    tg_buf_append(b, "\n", 1);
    return sse_emit(c);
}

int tg_http_sse_comment(tg_http_req *req, const char *text)
{
    front_conn *c = sse_conn(req);
    if (!c) return -1;
    tg_buf *b = &c->wbuf;
    tg_buf_reset(b);
    append_lines(b, ": ", 2, text ? text : "", text ? strlen(text) : 0);
    tg_buf_append(b, "\n", 1);
    return sse_emit(c);
}

void tg_http_sse_end(tg_http_req *req)
{
    front_req *fr = freq(req);
    front_conn *c = answer_conn(fr, CONN_SSE, "tg_http_sse_end");
    if (!c) return;
    if (c->sse_chunked) {
        uv_buf_t b = uv_buf_init((char *)"0\r\n\r\n", 5);
        front_write(c, &b, 1);
    }
    front_req_free(c);
    front_conn_next(c);
}
