/*
 * request.c — turns bytes into a tg_http_req, strictly, and hands it to the handler.
 *
 * Two passes over the header block, each for a reason:
 *   1. A raw pre-scan (scan_header_block) that waits until the whole block is there and
 *      rejects what http-parser 2.9 tolerates: obs-fold, whitespace before the colon,
 *      bare CR or LF, control bytes in values, non-token bytes in names, HTTP versions
 *      other than 1.0/1.1, HTTP/0.9, request targets not in origin-form. It also
 *      enforces max_header_bytes / max_headers (431) and counts the header lines, so the
 *      header array is allocated once at its exact size.
 *   2. http-parser parses the validated block (copied once into the request's arena;
 *      names, values and the target are NUL-terminated in place afterwards), then
 *      de-frames the body (Content-Length or chunked) straight from the read buffer.
 * Framing rules that need all headers (CL+TE, several CL, TE not exactly "chunked",
 * Host) are checked in on_headers_complete, before a single body byte is read, as is
 * the body limit (413) for a declared Content-Length.
 *
 * Invariant: because the whole header block is in one contiguous buffer when http-parser
 * sees it, each header name, value and the URL arrive in exactly one callback.
 */
#include "front/front_int.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- pre-scan */

enum {
    S_START = 0, /* before the request line; empty lines (CRLF) are skipped */
    S_START_LF,
    S_METHOD,
    S_TARGET0,   /* first byte of the request target */
    S_TARGET,
    S_VERSION,
    S_RL_LF,     /* CR of the request line seen */
    S_LINE,      /* start of a header line, or of the final empty line */
    S_NAME,
    S_VALUE,
    S_VALUE_LF,
    S_END_LF,    /* CR of the empty line seen */
};

/* Byte classes (RFC 9110): token characters for methods and field names; bytes allowed
 * in a field value (VCHAR, SP, HTAB, obs-text); bytes allowed in the request target
 * (VCHAR only: no spaces, no controls, no raw non-ASCII). */
enum { C_TCHAR = 1, C_VALUE = 2, C_TARGET = 4 };

static unsigned char byte_class[256];

static void byte_class_init(void)
{
    if (byte_class['a']) return;
    for (int ch = 0; ch < 256; ch++) {
        unsigned char k = 0;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            (ch && strchr("!#$%&'*+-.^_`|~", ch)))
            k |= C_TCHAR;
        if (ch == '\t' || (ch >= 0x20 && ch != 0x7f)) k |= C_VALUE;
        if (ch > 0x20 && ch < 0x7f) k |= C_TARGET;
        byte_class[ch] = k;
    }
}

/* Examines data[scan.off .. len) (data starts at the first byte of the request).
 * Returns 1 when the header block is complete (its length is then scan.off), 0 when
 * more bytes are needed, -1 with *status / *reason set when the request is refused. */
static int scan_header_block(front_conn *c, const char *data, size_t len, int *status,
                             const char **reason)
{
    front_scan *s = &c->scan;
    const tg_limits *l = &c->srv->limits;
    const char *bad = NULL;
    size_t i = s->off;
    for (; i < len; i++) {
        if (i >= l->max_header_bytes) {
            s->off = i;
            *status = 431;
            *reason = "request header block too large";
            return -1;
        }
        unsigned char ch = (unsigned char)data[i];
        switch (s->state) {
        case S_VALUE: {
            /* Most of a block is header values (a bearer token alone is ~1 KB): run
             * through a value's bytes here rather than once around the switch each; the
             * next byte that is not one goes through the switch as before. */
            size_t end = len < l->max_header_bytes ? len : l->max_header_bytes;
            size_t j = i;
            while (j < end && (byte_class[(unsigned char)data[j]] & C_VALUE)) j++;
            if (j > i) {
                i = j - 1;
                break;
            }
            if (ch == '\r') s->state = S_VALUE_LF;
            else bad = "control character in a header value";
            break;
        }
        case S_NAME:
            if (ch == ':') s->state = S_VALUE;
            else if (ch == ' ' || ch == '\t') bad = "whitespace before the colon of a header";
            else if (!(byte_class[ch] & C_TCHAR)) bad = "invalid byte in a header name";
            break;
        case S_VALUE_LF:
        case S_RL_LF:
            if (ch == '\n') s->state = S_LINE;
            else bad = "bare CR in the header block";
            break;
        case S_LINE:
            if (ch == '\r') {
                s->state = S_END_LF;
            } else if (byte_class[ch] & C_TCHAR) {
                if (++s->nheaders > l->max_headers) {
                    s->off = i;
                    *status = 431;
                    *reason = "too many header fields";
                    return -1;
                }
                s->state = S_NAME;
            } else if (ch == ' ' || ch == '\t') {
                bad = "obs-fold (header line starting with whitespace) is not allowed";
            } else {
                bad = "invalid byte in a header name";
            }
            break;
        case S_END_LF:
            if (ch != '\n') {
                bad = "bare CR in the header block";
                break;
            }
            s->off = i + 1;
            return 1;
        case S_START:
            if (ch == '\r') s->state = S_START_LF;
            else if (byte_class[ch] & C_TCHAR) s->state = S_METHOD;
            else bad = "invalid request line";
            break;
        case S_START_LF:
            if (ch == '\n') s->state = S_START;
            else bad = "bare CR in the header block";
            break;
        case S_METHOD:
            if (ch == ' ') s->state = S_TARGET0;
            else if (!(byte_class[ch] & C_TCHAR)) bad = "invalid request line";
            break;
        case S_TARGET0:
            if (ch == '/') s->state = S_TARGET;
            else bad = "request target must start with '/'";
            break;
        case S_TARGET:
            if (ch == ' ') {
                s->state = S_VERSION;
                s->ver_idx = 0;
            } else if (ch == '\r' || ch == '\n') {
                bad = "HTTP/0.9 requests are not supported";
            } else if (!(byte_class[ch] & C_TARGET)) {
                bad = "invalid byte in the request target";
            }
            break;
        case S_VERSION:
            if (s->ver_idx < 7) {
                if (ch != (unsigned char)"HTTP/1."[s->ver_idx]) bad = "unsupported HTTP version";
            } else if (s->ver_idx == 7) {
                if (ch == '0' || ch == '1') s->minor = ch - '0';
                else bad = "unsupported HTTP version";
            } else if (ch == '\r') {
                s->state = S_RL_LF;
            } else {
                bad = "unsupported HTTP version";
            }
            s->ver_idx++;
            break;
        default:
            bad = "internal scanner state";
            break;
        }
        if (bad) {
            s->off = i;
            *status = 400;
            *reason = bad;
            return -1;
        }
    }
    s->off = i;
    return 0;
}

/* ---------------------------------------------------------------- http-parser */

static front_req *parser_req(http_parser *p)
{
    return ((front_conn *)p->data)->req;
}

/* Records an error for the callback that found it; returning non-zero stops the parser. */
static int fail(front_req *fr, int status, const char *reason)
{
    fr->reject_status = status;
    fr->reject_reason = reason;
    return -1;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    front_req *fr = parser_req(p);
    const char *q = memchr(at, '?', len);
    fr->pub.path = at;
    fr->pub.path_len = q ? (size_t)(q - at) : len;
    fr->pub.query = q ? q + 1 : NULL;
    fr->query_len = q ? len - fr->pub.path_len - 1 : 0;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    front_req *fr = parser_req(p);
    if (fr->headers_done) return 0; /* chunked trailer fields: not used */
    if (fr->nheaders_seen >= fr->pub.nheaders) return fail(fr, 400, "malformed header block");
    tg_http_header *h = &fr->pub.headers[fr->nheaders_seen++];
    h->name = at;
    h->name_len = len;
    h->value = "";
    h->value_len = 0;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    front_req *fr = parser_req(p);
    if (fr->headers_done) return 0;
    if (fr->nheaders_seen == 0) return fail(fr, 400, "malformed header block");
    tg_http_header *h = &fr->pub.headers[fr->nheaders_seen - 1];
    /* http-parser drops leading whitespace; trailing whitespace is ours to drop. */
    while (len > 0 && (at[len - 1] == ' ' || at[len - 1] == '\t')) len--;
    /* An empty value keeps "": http-parser points `at` at the next line for it. */
    if (len == 0) return 0;
    h->value = at;
    h->value_len = len;
    return 0;
}

/* The one header with this name (counted in *count), for the framing checks below,
 * which run before names and values are NUL-terminated. */
static const tg_http_header *find_header(const front_req *fr, const char *name, size_t *count)
{
    const tg_http_header *found = NULL;
    size_t nlen = strlen(name);
    *count = 0;
    for (size_t i = 0; i < fr->nheaders_seen; i++) {
        const tg_http_header *h = &fr->pub.headers[i];
        if (tg_strcaseeq_n(h->name, h->name_len, name, nlen)) {
            if (!found) found = h;
            (*count)++;
        }
    }
    return found;
}

static int on_headers_complete(http_parser *p)
{
    front_req *fr = parser_req(p);
    front_conn *c = fr->conn;
    fr->headers_done = true;
    fr->pub.received_ns = tg_now_ns();
    if (fr->nheaders_seen != fr->pub.nheaders) return fail(fr, 400, "malformed header block");

    size_t ncl, nte, nhost, nexp;
    const tg_http_header *cl = find_header(fr, "content-length", &ncl);
    const tg_http_header *te = find_header(fr, "transfer-encoding", &nte);
    const tg_http_header *exp = find_header(fr, "expect", &nexp);
    find_header(fr, "host", &nhost);
    if (ncl > 1) return fail(fr, 400, "several Content-Length headers");
    if (ncl && nte) return fail(fr, 400, "Content-Length together with Transfer-Encoding");
    if (nte > 1) return fail(fr, 400, "several Transfer-Encoding headers");
    if (nte && c->scan.minor == 0) return fail(fr, 400, "Transfer-Encoding in an HTTP/1.0 request");
    if (nte && !tg_strcaseeq(te->value, te->value_len, "chunked"))
        return fail(fr, 400, "Transfer-Encoding other than \"chunked\"");
    if (cl) {
        if (cl->value_len == 0) return fail(fr, 400, "invalid Content-Length");
        for (size_t i = 0; i < cl->value_len; i++)
            if (cl->value[i] < '0' || cl->value[i] > '9')
                return fail(fr, 400, "invalid Content-Length");
    }
    if (nhost > 1) return fail(fr, 400, "several Host headers");
    if (nhost == 0 && c->scan.minor == 1) return fail(fr, 400, "missing Host header");

    size_t max = c->srv->limits.max_body_bytes;
    if (cl && p->content_length != ULLONG_MAX) {
        if (p->content_length > max) {
            fr->reject_reason = tg_arena_sprintf(fr->pub.arena,
                "request body exceeds the %zu-byte limit", max);
            fr->reject_status = 413;
            return -1;
        }
        if (p->content_length > 0) {
            fr->body_cap = (size_t)p->content_length;
            fr->pub.body = tg_arena_alloc(fr->pub.arena, fr->body_cap + 1);
        }
    }
    fr->expect_continue = nexp == 1 && c->scan.minor == 1 &&
                          tg_strcaseeq(exp->value, exp->value_len, "100-continue");
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    front_req *fr = parser_req(p);
    size_t max = fr->conn->srv->limits.max_body_bytes;
    size_t have = fr->pub.body_len;
    if (len > max - have) {
        fr->reject_reason = tg_arena_sprintf(fr->pub.arena,
            "request body exceeds the %zu-byte limit", max);
        fr->reject_status = 413;
        return -1;
    }
    if (have + len > fr->body_cap) {
        /* Chunked: grow by doubling inside the arena (the old block dies with it). */
        size_t cap = fr->body_cap ? fr->body_cap * 2 : 4096;
        if (cap < have + len) cap = have + len;
        if (cap > max) cap = max;
        char *nb = tg_arena_alloc(fr->pub.arena, cap + 1);
        if (have) memcpy(nb, fr->pub.body, have);
        fr->pub.body = nb;
        fr->body_cap = cap;
    }
    memcpy((char *)fr->pub.body + have, at, len);
    fr->pub.body_len = have + len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    front_req *fr = parser_req(p);
    fr->complete = true;
    /* Stop here: pipelined bytes after this message wait for our response. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---------------------------------------------------------------- requests */

void front_req_free(front_conn *c)
{
    if (!c->req) return;
    front_arena_put(c->srv, c->req->pub.arena);
    c->req = NULL;
}

static tg_http_method method_of(unsigned m)
{
    switch (m) {
    case HTTP_GET: return TG_HTTP_GET;
    case HTTP_POST: return TG_HTTP_POST;
    case HTTP_DELETE: return TG_HTTP_DELETE;
    case HTTP_HEAD: return TG_HTTP_HEAD;
    case HTTP_OPTIONS: return TG_HTTP_OPTIONS;
    case HTTP_PUT: return TG_HTTP_PUT;
    default: return TG_HTTP_OTHER;
    }
}

/* Runs http-parser and turns its outcome into 0 (go on) or a rejection. */
static int execute(front_conn *c, const char *p, size_t n, size_t *used)
{
    front_req *fr = c->req;
    *used = http_parser_execute(&c->parser, &settings, p, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_OK || (e == HPE_PAUSED && fr->complete)) return 0;
    if (fr->reject_status) {
        front_reject(c, fr->reject_status, fr->reject_reason);
    } else if (e == HPE_HEADER_OVERFLOW) {
        front_reject(c, 431, "request header block too large");
    } else {
        front_reject(c, 400, tg_arena_sprintf(fr->pub.arena, "malformed request: %s",
                                              http_errno_description(e)));
    }
    return -1;
}

/* The header block data[0..len) passed the pre-scan: build the request from it. */
static int start_request(front_conn *c, const char *data, size_t len)
{
    tg_arena *a = front_arena_get(c->srv);
    front_req *fr = tg_arena_calloc(a, 1, sizeof *fr);
    fr->pub.arena = a;
    fr->conn = c;
    fr->hdr_block = tg_arena_alloc(a, len + 1);
    memcpy(fr->hdr_block, data, len);
    fr->hdr_block[len] = '\0';
    fr->pub.nheaders = c->scan.nheaders;
    fr->pub.headers = tg_arena_calloc(a, c->scan.nheaders ? c->scan.nheaders : 1,
                                      sizeof(tg_http_header));
    fr->pub.http_minor = c->scan.minor;
    fr->pub.client_port = c->client_port;
    fr->pub.conn_slot = &c->slot;
    memcpy(fr->pub.client_ip, c->client_ip, sizeof fr->pub.client_ip);
    c->req = fr;

    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    size_t used;
    if (execute(c, fr->hdr_block, len, &used) != 0) return -1;
    if (used != len) {
        front_reject(c, 400, "malformed header block");
        return -1;
    }
    /* Terminate in place: the byte after every name is ':', after every value CR or
     * whitespace, after the target SP, and after the path '?' or SP. */
    for (size_t i = 0; i < fr->pub.nheaders; i++) {
        tg_http_header *h = &fr->pub.headers[i];
        ((char *)h->name)[h->name_len] = '\0';
        if (h->value_len) ((char *)h->value)[h->value_len] = '\0';
    }
    if (!fr->pub.path) {
        front_reject(c, 400, "malformed request line");
        return -1;
    }
    ((char *)fr->pub.path)[fr->pub.path_len] = '\0';
    if (fr->pub.query) ((char *)fr->pub.query)[fr->query_len] = '\0';
    fr->pub.method = method_of(c->parser.method);
    fr->pub.method_str = http_method_str((enum http_method)c->parser.method);
    return 0;
}

/* Hands a complete request to the handler. */
static void dispatch(front_conn *c)
{
    front_req *fr = c->req;
    tg_http_server *srv = c->srv;
    if (!fr->pub.body) fr->pub.body = "";
    else ((char *)fr->pub.body)[fr->pub.body_len] = '\0';
    c->keepalive = http_should_keep_alive(&c->parser) && !srv->closing;
    c->head_only = fr->pub.method == TG_HTTP_HEAD;
    c->phase = CONN_HANDLER;
    fr->dispatched = true;
    c->in_dispatch = true;
    srv->handler(&fr->pub, srv->ctx);
    c->in_dispatch = false;
}

size_t front_consume(front_conn *c, const char *p, size_t n)
{
    size_t off = 0;
    byte_class_init();
    while (off < n) {
        switch (c->phase) {
        case CONN_IDLE:
            memset(&c->scan, 0, sizeof c->scan);
            c->phase = CONN_HEAD;
            /* fall through */
        case CONN_HEAD: {
            int status = 0;
            const char *reason = NULL;
            int r = scan_header_block(c, p + off, n - off, &status, &reason);
            if (r < 0) {
                front_reject(c, status, reason);
                return n;
            }
            if (r == 0) {
                /* The header deadline starts with the first byte of a block that does not
                 * arrive whole, once per request, so trickling bytes cannot extend it. On
                 * a new connection it already runs from accept. */
                if (!c->first && !c->scan.timer_armed) front_conn_arm_timer(c);
                c->scan.timer_armed = true;
                return off; /* the partial block stays buffered from its first byte */
            }
            size_t hlen = c->scan.off;
            if (start_request(c, p + off, hlen) != 0) return n;
            off += hlen;
            if (!c->req->complete) {
                c->phase = CONN_BODY;
                front_conn_arm_timer(c);
                if (c->req->expect_continue) front_send_continue(c);
                if (c->phase != CONN_BODY) return n;
                continue;
            }
            break;
        }
        case CONN_BODY: {
            size_t used;
            if (execute(c, p + off, n - off, &used) != 0) return n;
            off += used;
            if (!c->req->complete) return off;
            break;
        }
        default:
            return off; /* a request is in flight: the rest waits */
        }
        dispatch(c);
        if (c->phase == CONN_DEAD || c->phase == CONN_CLOSING) return n;
    }
    return off;
}
