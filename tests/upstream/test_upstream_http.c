/*
 * test_upstream_http.c — the Streamable HTTP transport against a hand-written HTTP/1.1
 * server on 127.0.0.1:0 in the same loop (raw libuv TCP, no dependency on src/front).
 * It runs twice (meson): on the h1 engine, which serves http:// URLs, and with the
 * argument "curl" on the libcurl engine, which serves https://. Cases about strictness
 * curl does not share (obs-fold, CL+TE, ...) are skipped under curl.
 *
 * The server answers by the JSON-RPC method it receives: initialize (JSON + session id),
 * json, batch, sse (an event stream dribbled out in 7-byte chunks), bad_json, fail500,
 * expire (404), redirect (302), chunked_json (JSON in HTTP chunks), close (answered with
 * Connection: close, then closed), big_header, big_body, bad_status, folded, space_colon,
 * cl_te, dup_cl (broken responses); notifications get 202; GET gets an event stream once,
 * then 405; DELETE gets 200. It records every request's method, headers and body, so
 * the tests can check exactly which headers the transport sent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "upstream/upstream_int.h"

static bool on_curl;  /* the libcurl engine is under test */

/* ---------------------------------------------------------------- the test server */

#define MAX_REQS 32

typedef struct srv_req {
    char method[16];
    char headers[4096];   /* the raw header block, lines ending in \r\n */
    json_t *body;         /* parsed POST body or NULL */
} srv_req;

#define MAX_CONNS 64

typedef struct srv_conn srv_conn;

typedef struct server {
    uv_tcp_t listener;
    int port;
    int accepted;
    int drop_next;        /* close this many connections on a request, unanswered */
    srv_conn *conns[MAX_CONNS];
    srv_req reqs[MAX_REQS];
    int nreqs;
    int gets;
} server;

struct srv_conn {
    uv_tcp_t tcp;
    server *srv;
    tg_buf in;
    /* a dribbled response in progress */
    char *drip;
    size_t drip_len, drip_off;
    uv_timer_t drip_timer;
    bool closing;
    int open_handles;     /* tcp + drip_timer; freed when both are closed */
};

typedef struct srv_write {
    uv_write_t req;
    uv_buf_t buf;
    srv_conn *close_after;
} srv_write;

static uv_loop_t loop;
static server srv;

static void srv_conn_closed(uv_handle_t *h)
{
    srv_conn *sc = h->data;
    if (--sc->open_handles > 0) return;
    tg_buf_free(&sc->in);
    free(sc->drip);
    free(sc);
}

static void srv_conn_close(srv_conn *sc)
{
    if (sc->closing) return;
    sc->closing = true;
    for (int i = 0; i < MAX_CONNS; i++)
        if (srv.conns[i] == sc) srv.conns[i] = NULL;
    uv_timer_stop(&sc->drip_timer);
    uv_close((uv_handle_t *)&sc->tcp, srv_conn_closed);
    uv_close((uv_handle_t *)&sc->drip_timer, srv_conn_closed);
}

/* Closes every server-side connection (idle keep-alive ones included). */
static void srv_close_all(void)
{
    for (int i = 0; i < MAX_CONNS; i++)
        if (srv.conns[i]) srv_conn_close(srv.conns[i]);
}

static void srv_write_done(uv_write_t *req, int status)
{
    srv_write *w = (srv_write *)req;
    if (w->close_after) srv_conn_close(w->close_after);
    free(w->buf.base);
    free(w);
}

/* Sends the bytes; closes the connection once they are written if close_after. */
static void srv_send_ex(srv_conn *sc, const char *data, size_t len, bool close_after)
{
    srv_write *w = calloc(1, sizeof *w);
    w->close_after = close_after ? sc : NULL;
    w->buf = uv_buf_init(malloc(len), (unsigned)len);
    memcpy(w->buf.base, data, len);
    if (uv_write(&w->req, (uv_stream_t *)&sc->tcp, &w->buf, 1, srv_write_done) != 0) {
        free(w->buf.base);
        free(w);
    }
}

static void srv_send(srv_conn *sc, const char *data, size_t len)
{
    srv_send_ex(sc, data, len, false);
}

static void srv_send_str(srv_conn *sc, const char *s)
{
    srv_send(sc, s, strlen(s));
}

static void srv_respond(srv_conn *sc, int status, const char *extra_headers, const char *ctype,
                        const char *body)
{
    tg_buf b = TG_BUF_INIT;
    tg_buf_printf(&b, "HTTP/1.1 %d X\r\n%sContent-Length: %zu\r\n", status, extra_headers,
                  strlen(body));
    if (ctype) tg_buf_printf(&b, "Content-Type: %s\r\n", ctype);
    tg_buf_printf(&b, "\r\n%s", body);
    srv_send(sc, b.data, b.len);
    tg_buf_free(&b);
}

/* Sends the body as HTTP chunks of 7 bytes, one per millisecond; a PAUSE byte in the
 * body is not sent but holds the stream for 150 ms. */
#define PAUSE "\x01"
static void srv_drip_tick(uv_timer_t *t)
{
    srv_conn *sc = t->data;
    if (sc->drip_off < sc->drip_len && sc->drip[sc->drip_off] == PAUSE[0]) {
        sc->drip_off++;
        uv_timer_start(t, srv_drip_tick, 150, 1);
        return;
    }
    if (sc->drip_off >= sc->drip_len) {
        uv_timer_stop(t);
        srv_send(sc, "0\r\n\r\n", 5);
        free(sc->drip);
        sc->drip = NULL;
        return;
    }
    size_t n = 0;
    while (n < 7 && sc->drip_off + n < sc->drip_len && sc->drip[sc->drip_off + n] != PAUSE[0]) n++;
    char chunk[32];
    int hl = snprintf(chunk, sizeof chunk, "%zx\r\n", n);
    memcpy(chunk + hl, sc->drip + sc->drip_off, n);
    memcpy(chunk + hl + n, "\r\n", 2);
    srv_send(sc, chunk, (size_t)hl + n + 2);
    sc->drip_off += n;
}

static void srv_respond_chunked(srv_conn *sc, const char *ctype, const char *body)
{
    tg_buf head = TG_BUF_INIT;
    tg_buf_printf(&head, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n", ctype);
    srv_send(sc, head.data, head.len);
    tg_buf_free(&head);
    sc->drip = strdup(body);
    sc->drip_len = strlen(body);
    sc->drip_off = 0;
    uv_timer_start(&sc->drip_timer, srv_drip_tick, 1, 1);
}

static void srv_respond_sse(srv_conn *sc, const char *body)
{
    srv_respond_chunked(sc, "text/event-stream", body);
}

/* Broken or unusual responses, by method; false if m is not one of them. */
static bool srv_handle_raw(srv_conn *sc, const char *m, const char *body)
{
    char buf[1400];
    if (strcmp(m, "chunked_json") == 0) {
        srv_respond_chunked(sc, "application/json", body);
    } else if (strcmp(m, "close") == 0) {
        snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nConnection: close\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                 strlen(body), body);
        srv_send_ex(sc, buf, strlen(buf), true);
    } else if (strcmp(m, "big_header") == 0) {
        size_t n = 200 * 1024;
        tg_buf b = TG_BUF_INIT;
        tg_buf_appends(&b, "HTTP/1.1 200 OK\r\nX-Big: ");
        for (size_t i = 0; i < n; i++) tg_buf_append(&b, "a", 1);
        tg_buf_printf(&b, "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                      strlen(body), body);
        srv_send(sc, b.data, b.len);
        tg_buf_free(&b);
    } else if (strcmp(m, "big_body") == 0) {
        /* one byte more than the transport accepts (64 MiB), as a JSON string */
        size_t n = ((size_t)64 << 20) + 1;
        char *big = malloc(n);
        memset(big, 'a', n);
        big[0] = big[n - 1] = '"';
        snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\n\r\n", n);
        srv_send_str(sc, buf);
        srv_send(sc, big, n);
        free(big);
    } else if (strcmp(m, "bad_status") == 0) {
        srv_send_str(sc, "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n");
    } else if (strcmp(m, "folded") == 0) {
        snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 "X-A: 1\r\n  folded\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
        srv_send_str(sc, buf);
    } else if (strcmp(m, "space_colon") == 0) {
        snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Type : application/json\r\n"
                 "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
        srv_send_str(sc, buf);
    } else if (strcmp(m, "cl_te") == 0) {
        snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n",
                 strlen(body), strlen(body), body);
        srv_send_str(sc, buf);
    } else if (strcmp(m, "dup_cl") == 0) {
        snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\nContent-Length: %zu\r\n\r\n%s",
                 strlen(body), strlen(body), body);
        srv_send_str(sc, buf);
    } else {
        return false;
    }
    return true;
}

static void srv_handle(srv_conn *sc, srv_req *r)
{
    if (srv.drop_next > 0) {
        srv.drop_next--;
        srv_conn_close(sc);
        return;
    }
    if (strcmp(r->method, "DELETE") == 0) {
        srv_respond(sc, 200, "", NULL, "");
        return;
    }
    if (strcmp(r->method, "GET") == 0) {
        if (srv.gets++ == 0)
            srv_respond_sse(sc, "retry: 10\nid: g1\ndata: {\"jsonrpc\":\"2.0\","
                                "\"method\":\"notifications/tools/list_changed\"}\n\n");
        else
            srv_respond(sc, 405, "", NULL, "");
        return;
    }
    const char *m = json_string_value(json_object_get(r->body, "method"));
    json_t *id = json_object_get(r->body, "id");
    if (!m || !id) {
        srv_respond(sc, 202, "", NULL, "");
        return;
    }
    char *ids = json_dumps(id, JSON_ENCODE_ANY);
    char body[1024];
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"m\":\"%s\"}}", ids,
             m);
    if (srv_handle_raw(sc, m, body)) {
        /* answered */
    } else if (strcmp(m, "initialize") == 0) {
        srv_respond(sc, 200, "Mcp-Session-Id: sess-abc\r\n", "application/json", body);
    } else if (strcmp(m, "json") == 0) {
        srv_respond(sc, 200, "", "application/json; charset=utf-8", body);
    } else if (strcmp(m, "batch") == 0) {
        char arr[1200];
        snprintf(arr, sizeof arr,
                 "[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}},%s]",
                 body);
        srv_respond(sc, 200, "", "application/json", arr);
    } else if (strcmp(m, "sse") == 0) {
        char ev[1400];
        snprintf(ev, sizeof ev,
                 ": priming comment\r\n"
                 "id: e1\r\ndata:\r\n\r\n"
                 "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\","
                 "\"params\":{\"progressToken\":1,\"progress\":1}}\n\n" PAUSE
                 "data: {\"jsonrpc\":\"2.0\",\r\ndata: \"id\":%s,\r\ndata: \"result\":{}}\r\n\r\n",
                 ids);
        srv_respond_sse(sc, ev);
    } else if (strcmp(m, "bad_json") == 0) {
        srv_respond(sc, 200, "", "application/json", "{\"not\": json");
    } else if (strcmp(m, "expire") == 0) {
        srv_respond(sc, 404, "", "application/json", "{}");
    } else if (strcmp(m, "redirect") == 0) {
        srv_respond(sc, 302, "Location: /elsewhere\r\n", NULL, "");
    } else {
        srv_respond(sc, 500, "", "text/plain", "boom");
    }
    free(ids);
}

/* Handles every complete request in the buffer (keep-alive: several per connection). */
static void srv_parse(srv_conn *sc)
{
    for (;;) {
        char *end = sc->in.len ? memmem(sc->in.data, sc->in.len, "\r\n\r\n", 4) : NULL;
        if (!end) return;
        size_t hlen = (size_t)(end - sc->in.data) + 4;
        size_t clen = 0;
        const char *cl = memmem(sc->in.data, hlen, "Content-Length: ", 16);
        if (cl) clen = strtoul(cl + 16, NULL, 10);
        if (sc->in.len < hlen + clen) return;
        assert_true(srv.nreqs < MAX_REQS);
        srv_req *r = &srv.reqs[srv.nreqs++];
        sscanf(sc->in.data, "%15s", r->method);
        const char *first_nl = strstr(sc->in.data, "\r\n") + 2;
        snprintf(r->headers, sizeof r->headers, "%.*s", (int)(hlen - 2 - (size_t)(first_nl - sc->in.data)),
                 first_nl);
        r->body = clen ? json_loadb(sc->in.data + hlen, clen, 0, NULL) : NULL;
        tg_buf_consume(&sc->in, hlen + clen);
        srv_handle(sc, r);
        if (sc->closing) return;
    }
}

static void srv_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char scratch[65536];
    *buf = uv_buf_init(scratch, sizeof scratch);
}

static void srv_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    srv_conn *sc = s->data;
    if (nread < 0) {
        srv_conn_close(sc);
        return;
    }
    tg_buf_append(&sc->in, buf->base, (size_t)nread);
    srv_parse(sc);
}

static void srv_accept(uv_stream_t *l, int status)
{
    srv_conn *sc = calloc(1, sizeof *sc);
    sc->srv = &srv;
    uv_tcp_init(&loop, &sc->tcp);
    uv_timer_init(&loop, &sc->drip_timer);
    sc->tcp.data = sc->drip_timer.data = sc;
    sc->open_handles = 2;
    if (uv_accept(l, (uv_stream_t *)&sc->tcp) == 0) {
        srv.accepted++;
        for (int i = 0; i < MAX_CONNS; i++)
            if (!srv.conns[i]) {
                srv.conns[i] = sc;
                break;
            }
        uv_read_start((uv_stream_t *)&sc->tcp, srv_alloc, srv_read);
    }
}

static void srv_start(void)
{
    uv_tcp_init(&loop, &srv.listener);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&srv.listener, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&srv.listener, 16, srv_accept), 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&srv.listener, (struct sockaddr *)&ss, &len);
    srv.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void srv_reset(void)
{
    for (int i = 0; i < srv.nreqs; i++) json_decref(srv.reqs[i].body);
    srv.nreqs = srv.accepted = srv.gets = srv.drop_next = 0;
    srv_close_all();
}

/* The value of header `name` in request r (case-insensitive), or NULL. */
static char *hdr(const srv_req *r, const char *name)
{
    static char value[1024];
    size_t nl = strlen(name);
    for (const char *p = r->headers; *p;) {
        const char *eol = strstr(p, "\r\n");
        if (!eol) break;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            while (*v == ' ') v++;
            snprintf(value, sizeof value, "%.*s", (int)(eol - v), v);
            return value;
        }
        p = eol + 2;
    }
    return NULL;
}

static int count_headers(const srv_req *r)
{
    int n = 0;
    for (const char *p = r->headers; (p = strstr(p, "\r\n")); p += 2) n++;
    return n;
}

/* ---------------------------------------------------------------- fixture */

typedef struct fixture {
    char url[64];
    tg_kv headers[1];
    tg_upstream_conf conf;
    recorder rec;
    tg_upconn *c;
} fixture;

static void start_at(fixture *f, int port, uint32_t connect_timeout_ms)
{
    memset(f, 0, sizeof *f);
    srv_reset();
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d/mcp", port);
    f->headers[0] = (tg_kv){"X-Api-Key", "upstream-secret"};
    f->conf = (tg_upstream_conf){
        .name = "web", .transport = TG_UP_HTTP, .url = f->url,
        .headers = f->headers, .nheaders = 1, .connect_timeout_ms = connect_timeout_ms,
    };
    tg_error err;
    f->c = tg_upconn_new(&loop, &f->conf, &recorder_cbs, &f->rec, &err);
    assert_non_null(f->c);
    assert_int_equal(tg_upconn_get_state(f->c), TG_UPCONN_STARTING);
    assert_true(run_until(&loop, cond_up, &f->rec, 2000));
}

static void start(fixture *f)
{
    start_at(f, srv.port, 2000);
}

static void close_and_wait(fixture *f)
{
    tg_upconn_close(f->c);
    assert_true(run_until(&loop, cond_closed, &f->rec, 5000));
    assert_int_equal(recorder_count_state(&f->rec, TG_UPCONN_CLOSED), 1);
    recorder_reset(&f->rec);
}

static void send_req(fixture *f, json_int_t id, const char *method)
{
    json_t *m = make_request(id, method, json_object());
    tg_error err;
    assert_int_equal(tg_upconn_send_json(f->c, m, &err), 0);
    json_decref(m);
}

static size_t want_n;
static bool cond_msgs(void *arg)
{
    return ((recorder *)arg)->nmsgs >= want_n;
}
static bool cond_failed(void *arg)
{
    return ((recorder *)arg)->nfailed >= want_n;
}
static bool cond_reqs(void *arg)
{
    return srv.nreqs >= (int)want_n;
}

static void wait_msgs(fixture *f, size_t n)
{
    want_n = n;
    assert_true(run_until(&loop, cond_msgs, &f->rec, 5000));
}

static void wait_failed(fixture *f, size_t n)
{
    want_n = n;
    assert_true(run_until(&loop, cond_failed, &f->rec, 5000));
}

static json_int_t int_of(const json_t *v)
{
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

/* ---------------------------------------------------------------- tests */

static void test_json_session_and_headers(void **state)
{
    fixture f;
    start(&f);
    send_req(&f, 1, "initialize");
    wait_msgs(&f, 1);
    assert_int_equal(int_of(json_object_get(f.rec.msgs[0], "id")), 1);
    assert_int_equal(int_of(f.rec.stream_of[0]), 1);

    tg_upconn_set_protocol_version(f.c, "2025-11-25");
    send_req(&f, 2, "json");
    wait_msgs(&f, 2);
    assert_int_equal(int_of(f.rec.stream_of[1]), 2);
    assert_int_equal(f.rec.nfailed, 0);

    /* initialize: no session, no version yet; exactly the allowed headers. */
    srv_req *r1 = &srv.reqs[0], *r2 = &srv.reqs[1];
    assert_string_equal(r1->method, "POST");
    assert_null(hdr(r1, "Mcp-Session-Id"));
    assert_null(hdr(r1, "MCP-Protocol-Version"));
    assert_string_equal(hdr(r1, "Accept"), "application/json, text/event-stream");
    assert_string_equal(hdr(r1, "Content-Type"), "application/json");
    assert_string_equal(hdr(r1, "X-Api-Key"), "upstream-secret");
    assert_non_null(hdr(r1, "Host"));
    assert_non_null(hdr(r1, "Content-Length"));
    assert_int_equal(count_headers(r1), 5);
    /* later requests: the upstream's session id and the negotiated version too */
    assert_string_equal(hdr(r2, "Mcp-Session-Id"), "sess-abc");
    assert_string_equal(hdr(r2, "MCP-Protocol-Version"), "2025-11-25");
    assert_string_equal(hdr(r2, "X-Api-Key"), "upstream-secret");
    assert_null(hdr(r2, "Authorization"));
    assert_null(hdr(r2, "Expect"));
    assert_null(hdr(r2, "User-Agent"));
    assert_int_equal(count_headers(r2), 7);
    /* the body is the message, compact */
    assert_string_equal(json_string_value(json_object_get(r2->body, "method")), "json");
    /* both POSTs went over one kept-alive connection */
    assert_int_equal(srv.accepted, 1);

    /* close ends the upstream session with DELETE */
    close_and_wait(&f);
    srv_req *rd = &srv.reqs[srv.nreqs - 1];
    assert_string_equal(rd->method, "DELETE");
    assert_string_equal(hdr(rd, "Mcp-Session-Id"), "sess-abc");
}

static void test_sse_response_in_small_chunks(void **state)
{
    fixture f;
    start(&f);
    send_req(&f, 5, "sse");
    /* each event is delivered as it arrives, not when the stream ends */
    wait_msgs(&f, 1);
    assert_int_equal(f.rec.nmsgs, 1);
    wait_msgs(&f, 2);
    run_for(&loop, 20);
    assert_int_equal(f.rec.nmsgs, 2);  /* the priming event and the comment are not messages */
    assert_string_equal(json_string_value(json_object_get(f.rec.msgs[0], "method")),
                        "notifications/progress");
    assert_int_equal(int_of(f.rec.stream_of[0]), 5);
    assert_int_equal(int_of(json_object_get(f.rec.msgs[1], "id")), 5);
    assert_true(json_is_object(json_object_get(f.rec.msgs[1], "result")));
    assert_int_equal(int_of(f.rec.stream_of[1]), 5);
    assert_int_equal(f.rec.nfailed, 0);
    close_and_wait(&f);
}

static void test_batch_and_202(void **state)
{
    fixture f;
    start(&f);
    send_req(&f, 9, "batch");
    wait_msgs(&f, 2);
    assert_string_equal(json_string_value(json_object_get(f.rec.msgs[0], "method")),
                        "notifications/message");
    assert_int_equal(int_of(json_object_get(f.rec.msgs[1], "id")), 9);
    /* a notification is answered 202: nothing to deliver, nothing failed */
    json_t *n = json_pack("{s:s,s:s}", "jsonrpc", "2.0", "method", "notifications/initialized");
    tg_error err;
    assert_int_equal(tg_upconn_send_json(f.c, n, &err), 0);
    json_decref(n);
    want_n = 2;
    assert_true(run_until(&loop, cond_reqs, NULL, 5000));
    run_for(&loop, 30);
    assert_int_equal(f.rec.nmsgs, 2);
    assert_int_equal(f.rec.nfailed, 0);
    close_and_wait(&f);
}

static void test_failures(void **state)
{
    fixture f;
    start(&f);
    send_req(&f, 11, "fail500");
    wait_failed(&f, 1);
    assert_int_equal(f.rec.failed_status[0], 500);
    assert_int_equal(int_of(f.rec.failed_id[0]), 11);
    send_req(&f, 12, "bad_json");
    wait_failed(&f, 2);
    assert_int_equal(f.rec.failed_status[1], 200);
    assert_int_equal(int_of(f.rec.failed_id[1]), 12);
    send_req(&f, 13, "redirect");
    wait_failed(&f, 3);
    assert_int_equal(f.rec.failed_status[2], 302);
    run_for(&loop, 30);
    assert_int_equal(srv.nreqs, 3);   /* the redirect was not followed */
    assert_int_equal(f.rec.nmsgs, 0);
    assert_int_equal(tg_upconn_get_state(f.c), TG_UPCONN_UP);
    close_and_wait(&f);
    assert_int_equal(srv.nreqs, 3);   /* no session: no DELETE */
}

static void test_session_expired(void **state)
{
    fixture f;
    start(&f);
    send_req(&f, 1, "initialize");
    wait_msgs(&f, 1);
    send_req(&f, 2, "expire");
    assert_true(run_until(&loop, cond_down, &f.rec, 5000));
    assert_string_equal(f.rec.whys[f.rec.nstates - 1], "upstream session expired");
    assert_int_equal(f.rec.nfailed, 1);
    assert_int_equal(f.rec.failed_status[0], 404);
    json_t *m = make_request(3, "json", NULL);
    tg_error err;
    assert_int_equal(tg_upconn_send_json(f.c, m, &err), -1);
    json_decref(m);
    close_and_wait(&f);
    /* the expired session is not DELETEd */
    assert_string_equal(srv.reqs[srv.nreqs - 1].method, "POST");
}

static void test_get_stream(void **state)
{
    fixture f;
    start(&f);
    send_req(&f, 1, "initialize");
    wait_msgs(&f, 1);
    tg_upconn_open_stream(f.c);
    wait_msgs(&f, 2);
    assert_string_equal(json_string_value(json_object_get(f.rec.msgs[1], "method")),
                        "notifications/tools/list_changed");
    assert_null(f.rec.stream_of[1]);
    /* the stream ends; the transport reconnects (retry: 10, raised to 100 ms) resuming
     * after g1, gets 405 and stays quiet */
    want_n = 3;
    assert_true(run_until(&loop, cond_reqs, NULL, 5000));
    run_for(&loop, 100);
    assert_int_equal(srv.gets, 2);
    srv_req *g1 = &srv.reqs[1], *g2 = &srv.reqs[2];
    assert_string_equal(g1->method, "GET");
    assert_string_equal(hdr(g1, "Accept"), "text/event-stream");
    assert_string_equal(hdr(g1, "Mcp-Session-Id"), "sess-abc");
    assert_null(hdr(g1, "Last-Event-ID"));
    assert_string_equal(hdr(g2, "Last-Event-ID"), "g1");
    assert_int_equal(f.rec.nfailed, 0);
    assert_int_equal(tg_upconn_get_state(f.c), TG_UPCONN_UP);
    close_and_wait(&f);
}

static void test_connection_refused(void **state)
{
    uv_tcp_t probe;
    uv_tcp_init(&loop, &probe);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_bind(&probe, (struct sockaddr *)&a, 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&probe, (struct sockaddr *)&ss, &len);
    int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_close((uv_handle_t *)&probe, NULL);  /* bound, never listening: refused */
    run_for(&loop, 5);

    fixture f;
    start_at(&f, port, 2000);
    send_req(&f, 4, "json");
    wait_failed(&f, 1);
    assert_int_equal(f.rec.failed_status[0], 0);
    assert_int_equal(int_of(f.rec.failed_id[0]), 4);
    assert_true(f.rec.failed_why[0][0] != '\0');
    close_and_wait(&f);
}

/* Closing from inside on_message (while curl is delivering an event stream) must be
 * safe and end with exactly one CLOSED and no later message. */
static void close_in_callback(tg_upconn *c, const tg_upmsg *msg, int64_t stream_of, void *user)
{
    recorder_cbs.on_message(c, msg, stream_of, user);
    tg_upconn_close(c);
}

static void test_close_inside_callback(void **state)
{
    fixture f;
    start(&f);
    tg_upconn_close(f.c);
    assert_true(run_until(&loop, cond_closed, &f.rec, 5000));
    recorder_reset(&f.rec);

    tg_upconn_cbs cbs = recorder_cbs;
    cbs.on_message = close_in_callback;
    tg_error err;
    f.c = tg_upconn_new(&loop, &f.conf, &cbs, &f.rec, &err);
    assert_true(run_until(&loop, cond_up, &f.rec, 2000));
    send_req(&f, 5, "sse");
    assert_true(run_until(&loop, cond_closed, &f.rec, 5000));
    run_for(&loop, 100);
    assert_int_equal(f.rec.nmsgs, 1);
    assert_int_equal(f.rec.nfailed, 0);
    assert_int_equal(recorder_count_state(&f.rec, TG_UPCONN_CLOSED), 1);
    recorder_reset(&f.rec);
}

/* Closing with a response stream in flight cancels it: CLOSED, nothing after. */
static void test_close_cancels_stream(void **state)
{
    fixture f;
    start(&f);
    send_req(&f, 1, "initialize");
    wait_msgs(&f, 1);
    send_req(&f, 6, "sse");
    wait_msgs(&f, 2);  /* the progress notification; the stream now pauses */
    tg_upconn_close(f.c);
    assert_true(run_until(&loop, cond_closed, &f.rec, 5000));
    run_for(&loop, 250);
    assert_int_equal(f.rec.nmsgs, 2);
    assert_int_equal(f.rec.nfailed, 0);
    assert_string_equal(srv.reqs[srv.nreqs - 1].method, "DELETE");
    recorder_reset(&f.rec);
}

static void test_bad_config(void **state)
{
    tg_kv bad[] = {{"X-Evil", "a\r\nAuthorization: x"}};
    tg_upstream_conf conf = {.name = "x", .transport = TG_UP_HTTP, .url = "http://127.0.0.1:1/",
                             .headers = bad, .nheaders = 1};
    recorder rec = {0};
    tg_error err;
    assert_null(tg_upconn_new(&loop, &conf, &recorder_cbs, &rec, &err));
    assert_non_null(strstr(err.msg, "not a valid HTTP header"));
    conf.nheaders = 0;
    conf.url = NULL;
    assert_null(tg_upconn_new(&loop, &conf, &recorder_cbs, &rec, &err));
    assert_non_null(strstr(err.msg, "needs a url"));
}

static void test_chunked_json(void **state)
{
    fixture f;
    start(&f);
    send_req(&f, 21, "chunked_json");
    wait_msgs(&f, 1);
    assert_int_equal(int_of(json_object_get(f.rec.msgs[0], "id")), 21);
    assert_string_equal(json_string_value(json_object_get(json_object_get(f.rec.msgs[0], "result"),
                                                          "m")),
                        "chunked_json");
    assert_int_equal(f.rec.nfailed, 0);
    close_and_wait(&f);
}

/* Sequential calls share one TCP connection. */
static void test_keep_alive_reuse(void **state)
{
    fixture f;
    start(&f);
    for (int i = 1; i <= 20; i++) {
        send_req(&f, i, i % 2 ? "json" : "chunked_json");
        wait_msgs(&f, (size_t)i);
    }
    assert_int_equal(f.rec.nfailed, 0);
    assert_int_equal(srv.accepted, 1);
    close_and_wait(&f);
}

/* Connection: close is honoured: the next call opens a new connection and succeeds. */
static void test_connection_close(void **state)
{
    fixture f;
    start(&f);
    send_req(&f, 1, "close");
    wait_msgs(&f, 1);
    send_req(&f, 2, "json");
    wait_msgs(&f, 2);
    assert_int_equal(int_of(json_object_get(f.rec.msgs[1], "id")), 2);
    assert_int_equal(f.rec.nfailed, 0);
    assert_int_equal(srv.accepted, 2);
    close_and_wait(&f);
}

/* The server closes idle keep-alive connections: noticed while idle, or (the race) only
 * when the next request arrives on one — then it is sent again, once, on a new
 * connection. */
static void test_server_closes_idle(void **state)
{
    fixture f;
    start(&f);
    send_req(&f, 1, "json");
    wait_msgs(&f, 1);
    srv_close_all();
    run_for(&loop, 20);
    send_req(&f, 2, "json");
    wait_msgs(&f, 2);
    assert_int_equal(srv.accepted, 2);

    srv.drop_next = 1;  /* the request reaches a server that then closes, unanswered */
    send_req(&f, 3, "json");
    wait_msgs(&f, 3);
    assert_int_equal(int_of(json_object_get(f.rec.msgs[2], "id")), 3);
    assert_int_equal(f.rec.nfailed, 0);
    assert_int_equal(srv.accepted, 3);
    assert_int_equal(srv.nreqs, 4);   /* 1, 2, 3 dropped, 3 again */
    close_and_wait(&f);
}

/* On a fresh connection the same failure is reported, not retried: the server may have
 * started on the request. */
static void test_no_retry_on_fresh_connection(void **state)
{
    fixture f;
    start(&f);
    srv.drop_next = 1;
    send_req(&f, 7, "json");
    wait_failed(&f, 1);
    assert_int_equal(int_of(f.rec.failed_id[0]), 7);
    assert_int_equal(f.rec.failed_status[0], 0);
    run_for(&loop, 30);
    assert_int_equal(srv.nreqs, 1);
    assert_int_equal(f.rec.nmsgs, 0);
    close_and_wait(&f);
}

/* h1 writes the requests of one loop iteration together, at its end: a burst made in one
 * go is answered in full, one connection per request in flight (the warm one reused);
 * and a request withdrawn in the iteration that made it (here: the session closed) never
 * reaches the upstream. */
static void test_requests_leave_together(void **state)
{
    if (on_curl) return;  /* curl writes on its own schedule */
    fixture f;
    start(&f);
    send_req(&f, 1, "json");
    wait_msgs(&f, 1);
    int before = srv.accepted;
    for (int i = 2; i <= 9; i++) send_req(&f, i, "json");
    wait_msgs(&f, 9);
    bool seen[10] = {false};
    for (size_t i = 1; i < 9; i++) {
        json_int_t id = int_of(json_object_get(f.rec.msgs[i], "id"));
        assert_true(id >= 2 && id <= 9 && !seen[id]);
        seen[id] = true;
    }
    assert_int_equal(srv.accepted - before, 7);
    assert_int_equal(f.rec.nfailed, 0);

    int reqs = srv.nreqs;
    send_req(&f, 10, "json");
    close_and_wait(&f);
    run_for(&loop, 50);
    assert_int_equal(srv.nreqs, reqs);  /* no session id, so no DELETE either */
}

/* A request made from a timer callback, before the loop's poll phase (a pipelined client
 * request resumed after the previous response, an approval granted), leaves in that
 * iteration: the write queue's check handle must not let the loop sleep in poll with the
 * request still queued. The loop is run here without the harness's 5 ms tick, which
 * would wake it anyway; only a 3 s guard timer bounds the wait. */
typedef struct {
    fixture *f;
    bool guard_fired;
} from_timer;

static void send_from_timer(uv_timer_t *t)
{
    from_timer *ft = t->data;
    send_req(ft->f, 72, "json");
}

static void guard_timer(uv_timer_t *t)
{
    ((from_timer *)t->data)->guard_fired = true;
}

static void test_request_from_timer_leaves(void **state)
{
    if (on_curl) return;  /* curl writes on its own schedule */
    fixture f;
    start(&f);
    send_req(&f, 71, "json");
    wait_msgs(&f, 1); /* the connection is up and idle */
    from_timer ft = {.f = &f};
    uv_timer_t send_t, guard_t;
    uv_timer_init(&loop, &send_t);
    uv_timer_init(&loop, &guard_t);
    send_t.data = guard_t.data = &ft;
    uv_timer_start(&send_t, send_from_timer, 1, 0);
    uv_timer_start(&guard_t, guard_timer, 3000, 0);
    while (f.rec.nmsgs < 2 && !ft.guard_fired) uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&send_t, NULL);
    uv_close((uv_handle_t *)&guard_t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_false(ft.guard_fired);
    assert_int_equal(f.rec.nmsgs, 2);
    assert_int_equal(int_of(json_object_get(f.rec.msgs[1], "id")), 72);
    close_and_wait(&f);
}

/* A host name is resolved (uv_getaddrinfo on h1) before connecting. */
static void test_host_name(void **state)
{
    fixture f;
    start(&f);
    tg_upconn_close(f.c);
    assert_true(run_until(&loop, cond_closed, &f.rec, 5000));
    recorder_reset(&f.rec);
    snprintf(f.url, sizeof f.url, "http://localhost:%d/mcp", srv.port);
    tg_error err;
    f.c = tg_upconn_new(&loop, &f.conf, &recorder_cbs, &f.rec, &err);
    assert_non_null(f.c);
    assert_true(run_until(&loop, cond_up, &f.rec, 2000));
    send_req(&f, 61, "json");
    wait_msgs(&f, 1);
    assert_int_equal(int_of(json_object_get(f.rec.msgs[0], "id")), 61);
    char host[32];
    snprintf(host, sizeof host, "localhost:%d", srv.port);
    assert_string_equal(hdr(&srv.reqs[0], "Host"), host);
    close_and_wait(&f);
}

/* A request sent right after a notification waits for the notification's 202, so the
 * upstream sees them in order (and, being sequential, they share one connection). */
static void test_request_waits_for_notification(void **state)
{
    fixture f;
    start(&f);
    json_t *n = json_pack("{s:s,s:s}", "jsonrpc", "2.0", "method", "notifications/initialized");
    tg_error err;
    assert_int_equal(tg_upconn_send_json(f.c, n, &err), 0);
    json_decref(n);
    send_req(&f, 51, "json");
    wait_msgs(&f, 1);
    assert_int_equal(srv.nreqs, 2);
    assert_string_equal(json_string_value(json_object_get(srv.reqs[0].body, "method")),
                        "notifications/initialized");
    assert_string_equal(json_string_value(json_object_get(srv.reqs[1].body, "method")), "json");
    assert_int_equal(srv.accepted, 1);
    assert_int_equal(f.rec.nfailed, 0);
    close_and_wait(&f);
}

/* A response that is broken or too large fails the call with http_status 0 (no usable
 * answer) or the status it carried (the body was refused). */
static void expect_failure(const char *method, int status)
{
    fixture f;
    start(&f);
    send_req(&f, 31, method);
    wait_failed(&f, 1);
    assert_int_equal(int_of(f.rec.failed_id[0]), 31);
    assert_int_equal(f.rec.failed_status[0], status);
    run_for(&loop, 20);
    assert_int_equal(f.rec.nmsgs, 0);
    /* the connection is still usable afterwards */
    send_req(&f, 32, "json");
    wait_msgs(&f, 1);
    assert_int_equal(tg_upconn_get_state(f.c), TG_UPCONN_UP);
    close_and_wait(&f);
}

static void test_oversized_response(void **state)
{
    expect_failure("big_body", 200);
    expect_failure("big_header", 0);
}

static void test_malformed_responses(void **state)
{
    expect_failure("bad_status", 0);
    if (on_curl) return;  /* curl accepts these; h1 is stricter */
    expect_failure("folded", 0);
    expect_failure("space_colon", 0);
    expect_failure("cl_te", 0);
    expect_failure("dup_cl", 0);
}

/* A server that never accepts: the connect timeout ends the call. */
static void test_connect_timeout(void **state)
{
    /* A listener (outside the loop, so nothing accepts) whose accept queue is full drops
     * new SYNs, so connecting hangs. */
    int l = socket(AF_INET, SOCK_STREAM, 0), fill[4];
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    socklen_t alen = sizeof a;
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 0), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        (void)connect(fill[i], (struct sockaddr *)&a, sizeof a);
    }
    run_for(&loop, 50);

    fixture f;
    start_at(&f, ntohs(a.sin_port), 300);
    uint64_t t0 = uv_now(&loop);
    send_req(&f, 41, "json");
    wait_failed(&f, 1);
    uint64_t took = uv_now(&loop) - t0;
    assert_int_equal(f.rec.failed_status[0], 0);
    assert_true(took >= 250 && took < 3000);
    assert_non_null(strcasestr(f.rec.failed_why[0], "time"));
    close_and_wait(&f);
    for (int i = 0; i < 4; i++) close(fill[i]);
    close(l);
}

static int group_setup(void **state)
{
    uv_loop_init(&loop);
    tg_error err;
    if (tg_upstream_global_init(&loop, &err) != 0) return -1;
    srv_start();
    return 0;
}

static void close_any(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static int group_teardown(void **state)
{
    srv_reset();
    tg_upstream_global_cleanup();
    uv_close((uv_handle_t *)&srv.listener, NULL);
    run_for(&loop, 20);
    uv_walk(&loop, close_any, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    on_curl = argc > 1 && strcmp(argv[1], "curl") == 0;
    tg_upstream_http_force_curl(on_curl);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_session_and_headers),
        cmocka_unit_test(test_sse_response_in_small_chunks),
        cmocka_unit_test(test_batch_and_202),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_session_expired),
        cmocka_unit_test(test_get_stream),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_close_inside_callback),
        cmocka_unit_test(test_close_cancels_stream),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_chunked_json),
        cmocka_unit_test(test_keep_alive_reuse),
        cmocka_unit_test(test_connection_close),
        cmocka_unit_test(test_server_closes_idle),
        cmocka_unit_test(test_no_retry_on_fresh_connection),
        cmocka_unit_test(test_oversized_response),
        cmocka_unit_test(test_malformed_responses),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_request_waits_for_notification),
        cmocka_unit_test(test_host_name),
        cmocka_unit_test(test_requests_leave_together),
        cmocka_unit_test(test_request_from_timer_leaves),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
