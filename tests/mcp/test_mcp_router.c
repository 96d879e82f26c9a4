/*
 * test_mcp_router.c — the router end to end: the real HTTP front + router + stdio
 * transport in front of tests/mcp/fake_upstream, driven by a raw HTTP/1.1 client over
 * blocking sockets (the loop runs in its own thread). Checks what a client relies on:
 * the Streamable HTTP status codes, sessions, original ids (string, INT64_MAX, the same
 * id in two sessions), SSE with a priming event for progress, the sampling round trip,
 * timeouts, crash recovery, cancellation, DELETE; and federation of two upstreams with
 * prefixes (one per-client session); and a gated gateway (policy + audit trail on
 * SQLite, no authentication): decisions, tools/list filtering and the audit outcome of
 * each way a call can end.
 *
 * Configuration comes from a YAML file through tg_config_load: the router holds a
 * reference (tg_config_ref), which only a loaded snapshot supports.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "audit/tg_audit.h"
#include "front/tg_front.h"
#include "mcp/tg_mcp.h"
#include "mcp/mcp_int.h"
#include "policy/tg_policy.h"
#include "store/tg_store.h"
#include "upstream/tg_upstream.h"

/* ---------------------------------------------------------------- gateways */

typedef struct gateway {
    tg_config *cfg;
    tg_mcp *mcp;
    tg_http_server *srv;
    uint16_t port;
    tg_store *store;           /* gated gateway only: */
    tg_audit *audit;
    tg_policy *policy;
} gateway;

static uv_loop_t loop;
static uv_async_t stop_async;
static pthread_t loop_thread;
static gateway single, fed, idle, gated;
#define NGATEWAYS 4
static char tmpdir[256];
static const char *fake_path;

static void *run_loop(void *arg)
{
    uv_run(&loop, UV_RUN_DEFAULT);
    return NULL;
}

static void closed_cb(void *arg)
{
}

static void audit_closed(void *arg)
{
    gateway *g = arg;
    tg_store_close(g->store);
}

static void stop_cb(uv_async_t *a)
{
    gateway *gws[] = {&single, &fed, &idle, &gated};
    for (int i = 0; i < NGATEWAYS; i++) {
        tg_http_server_close(gws[i]->srv, closed_cb, NULL);
        tg_mcp_shutdown(gws[i]->mcp, closed_cb, NULL);
        if (gws[i]->audit) tg_audit_close(gws[i]->audit, audit_closed, gws[i]);
    }
    uv_close((uv_handle_t *)a, NULL);
}

/* extra: more top-level YAML (policy, audit, store); when given, the gateway runs with
 * the policy and the audit trail as toolgate serve wires them. */
static void gateway_start(gateway *g, const char *name, const char *limits,
                          const char *yaml_upstreams, const char *extra)
{
    char path[512], log[512];
    snprintf(path, sizeof path, "%s/%s.yaml", tmpdir, name);
    snprintf(log, sizeof log, "%s/%s.log", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "listen: 127.0.0.1:8080\n"
            "server_name: fedgw\n"
            "limits:\n"
            "%s"
            "upstreams:\n", limits);
    /* @FAKE@ → the fake upstream binary, @LOG@ → this gateway's upstream log file */
    for (const char *y = yaml_upstreams; *y; y++) {
        if (strncmp(y, "@FAKE@", 6) == 0) {
            fputs(fake_path, f);
            y += 5;
        } else if (strncmp(y, "@LOG@", 5) == 0) {
            fputs(log, f);
            y += 4;
        } else {
            fputc(*y, f);
        }
    }
    if (extra) fputs(extra, f);
    fclose(f);
    tg_error err;
    g->cfg = tg_config_load(path, &err);
    if (!g->cfg) fail_msg("config: %s", err.msg);
    tg_mcp_gates gates = {0};
    if (extra) {
        g->store = tg_store_open_opts(&loop, &g->cfg->store, &err);
        if (!g->store) fail_msg("store: %s", err.msg);
        g->audit = tg_audit_open(&loop, g->store, &g->cfg->audit, &err);
        if (!g->audit) fail_msg("audit: %s", err.msg);
        g->policy = tg_policy_new(g->cfg, &err);
        if (!g->policy) fail_msg("policy: %s", err.msg);
        gates.policy = g->policy;
        gates.audit = g->audit;
    }
    g->mcp = tg_mcp_new(&loop, g->cfg, &gates, &err);
    assert_non_null(g->mcp);
    g->srv = tg_http_server_new(&loop, &g->cfg->limits, tg_mcp_handle, g->mcp);
    assert_int_equal(tg_http_server_listen(g->srv, "127.0.0.1", 0, &err), 0);
    g->port = tg_http_server_port(g->srv);
}

static int setup(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tg-mcp-test-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    uv_loop_init(&loop);
    tg_error err;
    assert_int_equal(tg_upstream_global_init(&loop, &err), 0);
    uv_async_init(&loop, &stop_async, stop_cb);
    gateway_start(&single, "single", "  max_sessions: 40\n",
                  "  - name: fake\n"
                  "    transport: stdio\n"
                  "    command: @FAKE@\n"
                  "    env: {FAKE_LOG: @LOG@}\n"
                  "    call_timeout: 1500ms\n"
                  "    init_timeout: 5s\n"
                  "    restart_min: 100ms\n"
                  "    restart_max: 200ms\n"
                  "    shutdown_grace: 500ms\n", NULL);
    gateway_start(&idle, "idle", "  session_idle_timeout: 300ms\n  sse_keepalive: 100ms\n",
                  "  - name: fake\n"
                  "    transport: stdio\n"
                  "    command: @FAKE@\n"
                  "    shutdown_grace: 500ms\n", NULL);
    gateway_start(&fed, "fed", "  max_sessions: 40\n",
                  "  - name: one\n"
                  "    transport: stdio\n"
                  "    prefix: a_\n"
                  "    command: @FAKE@\n"
                  "    env: {FAKE_LOG: @LOG@}\n"
                  "    shutdown_grace: 500ms\n"
                  "  - name: two\n"
                  "    transport: stdio\n"
                  "    sessions: per-client\n"
                  "    prefix: b_\n"
                  "    command: @FAKE@\n"
                  "    env: {FAKE_LOG: @LOG@.2}\n"
                  "    shutdown_grace: 500ms\n", NULL);
    /* Everything is permitted except whoami, which is forbidden outright. */
    char dir[300], file[400], extra[1024];
    snprintf(dir, sizeof dir, "%s/policies", tmpdir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(file, sizeof file, "%s/10-test.cedar", dir);
    FILE *pf = fopen(file, "w");
    assert_non_null(pf);
    fputs("@id(\"all\")\n@reason(\"ALLOWED\")\npermit (principal, action, resource);\n"
          "@id(\"no-whoami\")\n@reason(\"NO_WHOAMI\")\n"
          "forbid (principal, action == Action::\"whoami\", resource);\n", pf);
    fclose(pf);
    snprintf(extra, sizeof extra,
             "policy:\n  policies: %s\nstore: sqlite:%s/gated.db\naudit:\n  instance_id: t\n",
             dir, tmpdir);
    gateway_start(&gated, "gated", "  max_sessions: 40\n",
                  "  - name: fake\n"
                  "    transport: stdio\n"
                  "    command: @FAKE@\n"
                  "    env: {FAKE_LOG: @LOG@}\n"
                  "    call_timeout: 1500ms\n"
                  "    restart_min: 100ms\n"
                  "    restart_max: 200ms\n"
                  "    shutdown_grace: 500ms\n", extra);
    pthread_create(&loop_thread, NULL, run_loop, NULL);
    return 0;
}

static int teardown(void **state)
{
    uv_async_send(&stop_async);
    pthread_join(loop_thread, NULL);
    gateway *gws[] = {&single, &fed, &idle, &gated};
    for (int i = 0; i < NGATEWAYS; i++) {
        tg_mcp_free(gws[i]->mcp); /* frees the policy it was handed */
        tg_http_server_free(gws[i]->srv);
        tg_config_unref(gws[i]->cfg);
    }
    tg_upstream_global_cleanup();
    uv_loop_close(&loop);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) return -1;
    return 0;
}

/* ---------------------------------------------------------------- raw HTTP client */

typedef struct conn {
    int fd;
    int status;
    char head[8192];       /* status line + headers */
    tg_buf raw;            /* bytes after the header block, not yet decoded */
    tg_buf body;           /* decoded body bytes not yet consumed */
    int chunked;
    long content_length;   /* -1 when not given */
    int done;              /* whole body received */
} conn;

static const char *ACCEPT_BOTH = "Accept: application/json, text/event-stream\r\n"
                                 "Content-Type: application/json\r\n";

static int read_some(conn *c)
{
    char buf[8192];
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n <= 0) return -1;
    tg_buf_append(&c->raw, buf, (size_t)n);
    return 0;
}

/* Moves decodable body bytes from raw to body. */
static void decode(conn *c)
{
    if (!c->chunked) {
        tg_buf_append(&c->body, c->raw.data ? c->raw.data : "", c->raw.len);
        tg_buf_reset(&c->raw);
        if (c->content_length >= 0 && (long)c->body.len >= c->content_length) c->done = 1;
        return;
    }
    for (;;) {
        char *crlf = c->raw.len ? memmem(c->raw.data, c->raw.len, "\r\n", 2) : NULL;
        if (!crlf) return;
        size_t size = strtoul(c->raw.data, NULL, 16);
        size_t hl = (size_t)(crlf - c->raw.data) + 2;
        if (c->raw.len < hl + size + 2) return;
        tg_buf_append(&c->body, c->raw.data + hl, size);
        tg_buf_consume(&c->raw, hl + size + 2);
        if (size == 0) {
            c->done = 1;
            return;
        }
    }
}

/* Sends a request without waiting for the answer. */
static void request_send(conn *c, uint16_t port, const char *method, const char *path,
                         const char *headers, const char *body)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {8, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    tg_buf out = TG_BUF_INIT;
    tg_buf_printf(&out, "%s %s HTTP/1.1\r\n%s%sContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                  method, path, strstr(headers, "Host:") ? "" : "Host: localhost\r\n", headers,
                  body ? strlen(body) : 0, body ? body : "");
    assert_int_equal(write(c->fd, out.data, out.len), (ssize_t)out.len);
    tg_buf_free(&out);
}

/* Reads the status line and headers. */
static void response_head(conn *c)
{
    char *end;
    while (!(end = c->raw.len ? memmem(c->raw.data, c->raw.len, "\r\n\r\n", 4) : NULL))
        if (read_some(c) != 0) fail_msg("no response header");
    size_t hl = (size_t)(end - c->raw.data) + 4;
    assert_true(hl < sizeof c->head);
    memcpy(c->head, c->raw.data, hl);
    c->head[hl] = '\0';
    tg_buf_consume(&c->raw, hl);
    c->status = atoi(c->head + 9);
    c->chunked = strcasestr(c->head, "Transfer-Encoding: chunked") != NULL;
    const char *cl = strcasestr(c->head, "Content-Length:");
    c->content_length = cl ? atol(cl + 15) : -1;
    decode(c);
}

/* Sends a request and reads the status line and headers. */
static void request(conn *c, uint16_t port, const char *method, const char *path,
                    const char *headers, const char *body)
{
    request_send(c, port, method, path, headers, body);
    response_head(c);
}

static void conn_close(conn *c)
{
    close(c->fd);
    tg_buf_free(&c->raw);
    tg_buf_free(&c->body);
}

static void read_all(conn *c)
{
    while (!c->done && read_some(c) == 0) decode(c);
    decode(c);
}

/* Header value (trimmed) into out, or NULL. */
static const char *header(const conn *c, const char *name, char *out, size_t n)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\r\n%s:", name);
    const char *h = strcasestr(c->head, pat);
    if (!h) return NULL;
    h += strlen(pat);
    while (*h == ' ') h++;
    size_t len = strcspn(h, "\r");
    snprintf(out, n, "%.*s", (int)len, h);
    return out;
}

typedef struct event {
    char id[64];
    char *data; /* malloc'd */
} event;

/* Next SSE event from a streamed response (comment-only blocks skipped); returns 0, or
 * -1 at the end of the stream. */
static int next_event(conn *c, event *ev)
{
    for (;;) {
        char *sep = c->body.len ? memmem(c->body.data, c->body.len, "\n\n", 2) : NULL;
        if (!sep) {
            if (c->done || read_some(c) != 0) return -1;
            decode(c);
            continue;
        }
        size_t n = (size_t)(sep - c->body.data);
        char *block = strndup(c->body.data, n);
        tg_buf_consume(&c->body, n + 2);
        ev->id[0] = '\0';
        tg_buf data = TG_BUF_INIT;
        bool seen = false;
        for (char *save, *line = strtok_r(block, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
            if (strncmp(line, "id: ", 4) == 0) {
                snprintf(ev->id, sizeof ev->id, "%s", line + 4);
                seen = true;
            } else if (strncmp(line, "data:", 5) == 0) {
                if (seen && data.len) tg_buf_appends(&data, "\n");
                tg_buf_appends(&data, line[5] == ' ' ? line + 6 : line + 5);
                seen = true;
            }
        }
        free(block);
        if (!seen) {
            tg_buf_free(&data);
            continue;
        }
        tg_buf_appends(&data, "");
        ev->data = tg_buf_steal(&data);
        return 0;
    }
}

/* ---------------------------------------------------------------- MCP helpers */

static json_t *body_json(conn *c)
{
    read_all(c);
    json_t *v = json_loadb(c->body.data ? c->body.data : "", c->body.len, 0, NULL);
    if (!v) fail_msg("not JSON (status %d): %.*s", c->status, (int)c->body.len, c->body.data);
    return v;
}

static void post_send(conn *c, uint16_t port, const char *sid, const char *body)
{
    char h[512];
    snprintf(h, sizeof h, "%s%s%s%s", ACCEPT_BOTH, sid ? "MCP-Session-Id: " : "", sid ? sid : "",
             sid ? "\r\n" : "");
    request_send(c, port, "POST", "/mcp", h, body);
}

static void post(conn *c, uint16_t port, const char *sid, const char *body)
{
    post_send(c, port, sid, body);
    response_head(c);
}

/* Expects an HTTP error carrying a JSON-RPC error with this code. */
static void expect_http_error(conn *c, int status, int code)
{
    if (c->status != status) fail_msg("status %d, expected %d: %s", c->status, status, c->head);
    json_t *v = body_json(c);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "error"), "code")), code);
    json_decref(v);
    conn_close(c);
}

static void open_session(uint16_t port, const char *caps, const char *client, const char *version,
                         char sid[65], json_t **result)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
             "\"protocolVersion\":\"%s\",\"capabilities\":%s,"
             "\"clientInfo\":{\"name\":\"%s\",\"version\":\"1\"}}}", version, caps, client);
    conn c;
    post(&c, port, NULL, body);
    assert_int_equal(c.status, 200);
    assert_non_null(header(&c, "MCP-Session-Id", sid, 65));
    assert_int_equal(strlen(sid), 64);
    json_t *v = body_json(&c);
    conn_close(&c);
    if (result) *result = json_incref(json_object_get(v, "result"));
    json_decref(v);
    post(&c, port, sid, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    assert_int_equal(c.status, 202);
    read_all(&c);
    assert_int_equal(c.body.len, 0);
    conn_close(&c);
}

/* A request answered with application/json: the parsed response. */
static json_t *rpc(uint16_t port, const char *sid, const char *body)
{
    conn c;
    post(&c, port, sid, body);
    char ct[128];
    if (c.status != 200) fail_msg("status %d: %s", c.status, c.head);
    assert_non_null(header(&c, "Content-Type", ct, sizeof ct));
    assert_non_null(strstr(ct, "application/json"));
    json_t *v = body_json(&c);
    conn_close(&c);
    return v;
}

static const char *text_of(const json_t *resp)
{
    json_t *content = json_object_get(json_object_get(resp, "result"), "content");
    return json_string_value(json_object_get(json_array_get(content, 0), "text"));
}

static const char *error_message(const json_t *resp)
{
    return json_string_value(json_object_get(json_object_get(resp, "error"), "message"));
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return strdup("");
    tg_buf b = TG_BUF_INIT;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) tg_buf_append(&b, buf, n);
    fclose(f);
    tg_buf_appends(&b, "");
    return tg_buf_steal(&b);
}

static size_t occurrences(const char *path, const char *needle)
{
    char *log = slurp(path);
    size_t n = 0;
    for (const char *p = log; (p = strstr(p, needle)); p++) n++;
    free(log);
    return n;
}

/* The upstream logs what it read a moment after toolgate wrote it. */
static bool log_eventually_has(const char *path, const char *needle)
{
    for (int i = 0; i < 100; i++) {
        char *log = slurp(path);
        bool found = strstr(log, needle) != NULL;
        free(log);
        if (found) return true;
        usleep(20 * 1000);
    }
    return false;
}

#define CALL(id, tool, args) \
    "{\"jsonrpc\":\"2.0\",\"id\":" id ",\"method\":\"tools/call\",\"params\":{\"name\":\"" tool \
    "\",\"arguments\":" args "}}"

/* ---------------------------------------------------------------- single upstream */

static int audit_row(void *ud, const tg_store_audit_row *row)
{
    tg_buf *out = ud;
    tg_arena *a = tg_arena_new(1024);
    tg_audit_record r;
    json_t *holder = NULL;
    tg_error err;
    if (tg_audit_record_parse(row->body, strlen(row->body), a, &r, &holder, &err) != 0)
        fail_msg("record: %s", err.msg);
    if (strstr(row->body, "hunter2")) fail_msg("secret argument stored: %s", row->body);
    const char *outcome = tg_audit_outcome_name(r.outcome);
    tg_buf_printf(out, "%s:%s:%s:%s\n", tg_audit_event_name(r.event),
                  tg_audit_decision_name(r.decision), outcome ? outcome : "-",
                  r.agent ? r.agent : "-");
    json_decref(holder);
    tg_arena_free(a);
    return 0;
}
/* ---------------------------------------------------------------- gated gateway */

/* The audit records of one tool as "event:decision:outcome" lines, in order. */
static void audit_of(const char *tool, tg_buf *out)
{
    char url[400];
    snprintf(url, sizeof url, "sqlite:%s/gated.db", tmpdir);
    tg_error err;
    tg_store *st = tg_store_open(NULL, url, &err);
    if (!st) fail_msg("store: %s", err.msg);
    tg_store_audit_filter f = {.tool = tool};
    int rc = tg_store_audit_scan(st, &f, audit_row, out, &err);
    if (rc != 0) fail_msg("scan: %s", err.msg);
    tg_store_close(st);
}

/* A tools/call with a progress token, answered as a stream: the progress notification
 * reaches the client under its own token, then the answer. Through the gate too, where
 * the call's parameters are built when it arrives (the upstream sees our token). */
static void expect_progress(uint16_t port, const char *sid)
{
    char ct[128];
    conn c;
    post(&c, port, sid,
         "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"progress\","
         "\"arguments\":{},\"_meta\":{\"progressToken\":\"tok-1\"}}}");
    assert_int_equal(c.status, 200);
    assert_non_null(header(&c, "Content-Type", ct, sizeof ct));
    assert_non_null(strstr(ct, "text/event-stream"));
    event ev;
    assert_int_equal(next_event(&c, &ev), 0); /* priming: an id, empty data */
    assert_true(ev.id[0] != '\0');
    assert_string_equal(ev.data, "");
    free(ev.data);
    assert_int_equal(next_event(&c, &ev), 0);
    json_t *n = json_loads(ev.data, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(n, "method")), "notifications/progress");
    assert_string_equal(json_string_value(json_object_get(json_object_get(n, "params"),
                                                          "progressToken")), "tok-1");
    json_decref(n);
    free(ev.data);
    /* the progress with a token nobody issued was dropped: next comes the answer */
    assert_int_equal(next_event(&c, &ev), 0);
    n = json_loads(ev.data, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(n, "id")), 7);
    assert_string_equal(text_of(n), "progress done");
    json_decref(n);
    free(ev.data);
    assert_int_equal(next_event(&c, &ev), -1);
    conn_close(&c);
}

static void test_gated_calls(void **state)
{
    char sid[65], path[512];
    open_session(gated.port, "{}", "c1", "2025-11-25", sid, NULL);
    /* tools/list: the forbidden tool is not shown */
    json_t *v = rpc(gated.port, sid, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
    json_t *tools = json_object_get(json_object_get(v, "result"), "tools");
    assert_true(json_array_size(tools) > 3);
    for (size_t i = 0; i < json_array_size(tools); i++)
        assert_string_not_equal(json_string_value(json_object_get(json_array_get(tools, i), "name")),
                                "whoami");
    json_decref(v);

    v = rpc(gated.port, sid, CALL("2", "echo", "{\"text\":\"hi\",\"password\":\"hunter2\"}"));
    assert_string_equal(text_of(v), "echo:hi");
    json_decref(v);

    /* denied: an isError result naming the reason; the upstream never sees it */
    snprintf(path, sizeof path, "%s/gated.log", tmpdir);
    v = rpc(gated.port, sid, CALL("3", "whoami", "{}"));
    json_t *res = json_object_get(v, "result");
    assert_true(json_is_true(json_object_get(res, "isError")));
    json_t *sc = json_object_get(res, "structuredContent");
    assert_string_equal(json_string_value(json_object_get(sc, "decision")), "deny");
    assert_string_equal(json_string_value(json_array_get(json_object_get(sc, "reasons"), 0)),
                        "NO_WHOAMI");
    json_decref(v);
    assert_int_equal(occurrences(path, "\"whoami\""), 0);

    v = rpc(gated.port, sid, CALL("4", "hang", "{}"));
    assert_string_equal(error_message(v), "upstream 'fake' did not answer within 1500 ms");
    json_decref(v);
    v = rpc(gated.port, sid, CALL("5", "crash", "{}"));
    assert_non_null(strstr(error_message(v), "crashed"));
    json_decref(v);

    /* one decision record before, one outcome record after, each with its outcome; a
     * denied call has one record, not forwarded; secrets in arguments are redacted */
    tg_buf b = TG_BUF_INIT;
    audit_of("echo", &b);
    assert_string_equal(b.data, "decision:allow:-:anonymous\noutcome:allow:ok:anonymous\n");
    b.len = 0;
    audit_of("whoami", &b);
    assert_string_equal(b.data, "decision:deny:not_forwarded:anonymous\n");
    b.len = 0;
    audit_of("hang", &b);
    assert_string_equal(b.data, "decision:allow:-:anonymous\noutcome:allow:upstream_timeout:anonymous\n");
    b.len = 0;
    /* prompts/get is decided and recorded like a tool (permitted here) */
    v = rpc(gated.port, sid, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"prompts/get\","
                             "\"params\":{\"name\":\"greet\"}}");
    assert_non_null(json_object_get(v, "result"));
    json_decref(v);
    audit_of("greet", &b);
    assert_string_equal(b.data, "decision:allow:-:anonymous\noutcome:allow:ok:anonymous\n");
    b.len = 0;
    audit_of("crash", &b);
    assert_string_equal(b.data, "decision:allow:-:anonymous\noutcome:allow:upstream_crash:anonymous\n");
    tg_buf_free(&b);
    expect_progress(gated.port, sid);
}

static void test_initialize_transparent(void **state)
{
    char sid[65];
    json_t *r;
    open_session(single.port, "{}", "c1", "2025-06-18", sid, &r);
    /* one upstream: its own serverInfo and instructions, the client's revision */
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "serverInfo"), "name")),
                        "fake-upstream");
    assert_string_equal(json_string_value(json_object_get(r, "instructions")), "be nice");
    assert_string_equal(json_string_value(json_object_get(r, "protocolVersion")), "2025-06-18");
    json_decref(r);
    /* an unknown revision gets the latest */
    open_session(single.port, "{}", "c1", "2024-01-01", sid, &r);
    assert_string_equal(json_string_value(json_object_get(r, "protocolVersion")), "2025-11-25");
    json_decref(r);
}

static void test_http_errors(void **state)
{
    uint16_t p = single.port;
    char sid[65], h[512];
    open_session(p, "{}", "c1", "2025-11-25", sid, NULL);
    const char *ping = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
    conn c;

    post(&c, p, NULL, ping);
    expect_http_error(&c, 400, -32000); /* missing session */
    post(&c, p, "00ff", ping);
    expect_http_error(&c, 404, -32001); /* unknown session */

    snprintf(h, sizeof h, "%sMCP-Session-Id: %s\r\nMCP-Protocol-Version: 1999-01-01\r\n", ACCEPT_BOTH, sid);
    request(&c, p, "POST", "/mcp", h, ping);
    expect_http_error(&c, 400, -32000); /* unsupported revision */
    snprintf(h, sizeof h, "%sMCP-Session-Id: %s\r\nMCP-Protocol-Version: 2025-06-18\r\n", ACCEPT_BOTH, sid);
    request(&c, p, "POST", "/mcp", h, ping);
    assert_int_equal(c.status, 200); /* supported, though not the negotiated one */
    conn_close(&c);
    snprintf(h, sizeof h, "%sMCP-Session-Id: %s\r\nMCP-Session-Id: %s\r\n", ACCEPT_BOTH, sid, sid);
    request(&c, p, "POST", "/mcp", h, ping);
    expect_http_error(&c, 400, -32000); /* duplicated singleton header */

    snprintf(h, sizeof h, "%sMCP-Session-Id: %s\r\nOrigin: http://evil.example\r\n", ACCEPT_BOTH, sid);
    request(&c, p, "POST", "/mcp", h, ping);
    expect_http_error(&c, 403, -32000);
    snprintf(h, sizeof h, "%sMCP-Session-Id: %s\r\nOrigin: http://localhost:3000\r\n", ACCEPT_BOTH, sid);
    request(&c, p, "POST", "/mcp", h, ping);
    assert_int_equal(c.status, 200);
    conn_close(&c);
    snprintf(h, sizeof h, "Host: evil.example\r\n%sMCP-Session-Id: %s\r\n", ACCEPT_BOTH, sid);
    request(&c, p, "POST", "/mcp", h, ping);
    expect_http_error(&c, 403, -32000); /* DNS rebinding */

    snprintf(h, sizeof h, "Accept: application/json\r\nContent-Type: application/json\r\n"
             "MCP-Session-Id: %s\r\n", sid);
    request(&c, p, "POST", "/mcp", h, ping);
    expect_http_error(&c, 406, -32000);
    snprintf(h, sizeof h, "Accept: application/json, text/event-stream\r\n"
             "Content-Type: text/plain\r\nMCP-Session-Id: %s\r\n", sid);
    request(&c, p, "POST", "/mcp", h, ping);
    expect_http_error(&c, 415, -32000);

    post(&c, p, sid, "{\"jsonrpc\":\"2.0\",\"id\":1,");
    expect_http_error(&c, 400, -32700);
    post(&c, p, sid, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"method\":\"x\"}");
    expect_http_error(&c, 400, -32700); /* duplicate key */
    post(&c, p, sid, "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}");
    expect_http_error(&c, 400, -32600);
    post(&c, p, sid, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]");
    expect_http_error(&c, 400, -32600); /* batches only in 2025-03-26 */
    post(&c, p, sid, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}");
    expect_http_error(&c, 400, -32600); /* initialize inside a session */

    request(&c, p, "PUT", "/mcp", ACCEPT_BOTH, ping);
    assert_int_equal(c.status, 405);
    assert_non_null(header(&c, "Allow", h, sizeof h));
    assert_string_equal(h, "GET, POST, DELETE");
    conn_close(&c);
    request(&c, p, "POST", "/other", ACCEPT_BOTH, ping);
    expect_http_error(&c, 404, -32000);

    /* a notification: 202, empty */
    post(&c, p, sid, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/roots/list_changed\"}");
    assert_int_equal(c.status, 202);
    read_all(&c);
    assert_int_equal(c.body.len, 0);
    conn_close(&c);
}

static void test_lifecycle_before_initialized(void **state)
{
    conn c;
    post(&c, single.port, NULL,
         "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
         "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"x\",\"version\":\"1\"}}}");
    char sid[65];
    assert_non_null(header(&c, "MCP-Session-Id", sid, sizeof sid));
    read_all(&c);
    conn_close(&c);
    json_t *v = rpc(single.port, sid, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "error"), "code")), -32600);
    json_decref(v);
    v = rpc(single.port, sid, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}");
    assert_true(json_is_object(json_object_get(v, "result")));
    json_decref(v);
}

static void test_transparent_pagination(void **state)
{
    char sid[65];
    open_session(single.port, "{}", "c1", "2025-11-25", sid, NULL);
    json_t *v = rpc(single.port, sid, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
    json_t *result = json_object_get(v, "result");
    assert_int_equal(json_array_size(json_object_get(result, "tools")), 4);
    /* one upstream without a prefix: its own cursor passes unchanged */
    assert_string_equal(json_string_value(json_object_get(result, "nextCursor")), "p2");
    json_decref(v);
    v = rpc(single.port, sid, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\","
                              "\"params\":{\"cursor\":\"p2\"}}");
    assert_int_equal(json_array_size(json_object_get(json_object_get(v, "result"), "tools")), 2);
    json_decref(v);
}

static void test_ids_preserved(void **state)
{
    char sid[65];
    open_session(single.port, "{}", "c1", "2025-11-25", sid, NULL);
    json_t *v = rpc(single.port, sid, CALL("\"abc\"", "echo", "{\"text\":\"s\"}"));
    assert_string_equal(json_string_value(json_object_get(v, "id")), "abc");
    assert_string_equal(text_of(v), "echo:s");
    json_decref(v);
    v = rpc(single.port, sid, CALL("9223372036854775807", "echo", "{\"text\":\"big\"}"));
    assert_true(json_integer_value(json_object_get(v, "id")) == INT64_MAX);
    assert_string_equal(text_of(v), "echo:big");
    json_decref(v);
    /* the upstream saw gateway ids, never the client's */
    char path[512];
    snprintf(path, sizeof path, "%s/single.log", tmpdir);
    char *log = slurp(path);
    assert_null(strstr(log, "\"id\":\"abc\""));
    assert_null(strstr(log, "9223372036854775807"));
    free(log);
}

static void test_two_sessions_same_id(void **state)
{
    char s1[65], s2[65];
    open_session(single.port, "{}", "c1", "2025-11-25", s1, NULL);
    open_session(single.port, "{}", "c2", "2025-11-25", s2, NULL);
    conn a, b;
    /* A answers after B upstream: the answers must still go to their own sessions */
    post_send(&a, single.port, s1, CALL("1", "echo", "{\"text\":\"A\",\"delay_ms\":300}"));
    post_send(&b, single.port, s2, CALL("1", "echo", "{\"text\":\"B\",\"delay_ms\":50}"));
    response_head(&b);
    response_head(&a);
    json_t *vb = body_json(&b), *va = body_json(&a);
    assert_string_equal(text_of(va), "echo:A");
    assert_string_equal(text_of(vb), "echo:B");
    assert_int_equal(json_integer_value(json_object_get(va, "id")), 1);
    assert_int_equal(json_integer_value(json_object_get(vb, "id")), 1);
    json_decref(va);
    json_decref(vb);
    conn_close(&a);
    conn_close(&b);
}

static void test_progress_sse(void **state)
{
    char sid[65], ct[128];
    open_session(single.port, "{}", "c1", "2025-11-25", sid, NULL);
    expect_progress(single.port, sid);
    conn c;
    event ev;

    /* a client that prefers text/event-stream gets a stream even for a plain answer */
    char h[512];
    snprintf(h, sizeof h, "Accept: text/event-stream, application/json\r\n"
             "Content-Type: application/json\r\nMCP-Session-Id: %s\r\n", sid);
    request(&c, single.port, "POST", "/mcp", h, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"ping\"}");
    assert_non_null(header(&c, "Content-Type", ct, sizeof ct));
    assert_non_null(strstr(ct, "text/event-stream"));
    assert_int_equal(next_event(&c, &ev), 0); /* priming */
    free(ev.data);
    assert_int_equal(next_event(&c, &ev), 0);
    assert_string_equal(ev.data, "{\"jsonrpc\":\"2.0\",\"id\":8,\"result\":{}}");
    free(ev.data);
    conn_close(&c);
}

static void test_sampling_round_trip(void **state)
{
    char sid[65];
    open_session(single.port, "{\"sampling\":{}}", "c1", "2025-11-25", sid, NULL);
    conn c;
    post(&c, single.port, sid, CALL("\"s-1\"", "sample", "{}"));
    assert_int_equal(c.status, 200);
    event ev;
    assert_int_equal(next_event(&c, &ev), 0); /* priming */
    free(ev.data);
    assert_int_equal(next_event(&c, &ev), 0);
    json_t *req = json_loads(ev.data, 0, NULL);
    free(ev.data);
    assert_string_equal(json_string_value(json_object_get(req, "method")), "sampling/createMessage");
    const char *rid = json_string_value(json_object_get(req, "id"));
    assert_non_null(rid);
    assert_string_not_equal(rid, "up-1"); /* the upstream's id never reaches the client */
    char answer[512];
    snprintf(answer, sizeof answer,
             "{\"jsonrpc\":\"2.0\",\"id\":\"%s\",\"result\":{\"role\":\"assistant\",\"content\":"
             "{\"type\":\"text\",\"text\":\"hi there\"},\"model\":\"m\"}}", rid);
    json_decref(req);
    conn r;
    post(&r, single.port, sid, answer);
    assert_int_equal(r.status, 202);
    conn_close(&r);
    assert_int_equal(next_event(&c, &ev), 0);
    json_t *v = json_loads(ev.data, 0, NULL);
    free(ev.data);
    assert_string_equal(json_string_value(json_object_get(v, "id")), "s-1");
    assert_string_equal(text_of(v), "sampled:hi there");
    json_decref(v);
    conn_close(&c);

    /* a client that did not declare sampling: toolgate answers the upstream -32601 */
    open_session(single.port, "{}", "c1", "2025-11-25", sid, NULL);
    v = rpc(single.port, sid, CALL("2", "sample", "{}"));
    assert_string_equal(text_of(v), "sampled:(error)");
    json_decref(v);
}

static void test_timeout(void **state)
{
    char sid[65], path[512];
    open_session(single.port, "{}", "c1", "2025-11-25", sid, NULL);
    json_t *v = rpc(single.port, sid, CALL("3", "hang", "{}"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "error"), "code")), -32603);
    assert_string_equal(error_message(v), "upstream 'fake' did not answer within 1500 ms");
    json_decref(v);
    snprintf(path, sizeof path, "%s/single.log", tmpdir);
    assert_true(log_eventually_has(path, "notifications/cancelled"));
}

static void test_client_cancel(void **state)
{
    char sid[65];
    open_session(single.port, "{}", "c1", "2025-11-25", sid, NULL);
    conn c, n;
    char path[512];
    snprintf(path, sizeof path, "%s/single.log", tmpdir);
    size_t before = occurrences(path, "\"hang\"");
    post_send(&c, single.port, sid, CALL("77", "hang", "{}"));
    for (int i = 0; i < 200 && occurrences(path, "\"hang\"") == before; i++) usleep(10 * 1000);
    post(&n, single.port, sid,
         "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":77}}");
    assert_int_equal(n.status, 202);
    conn_close(&n);
    /* no response for a cancelled request: the stream ends without one */
    response_head(&c);
    read_all(&c);
    assert_int_equal(c.status, 200);
    if (memmem(c.body.data ? c.body.data : "", c.body.len, "\"id\":77", 7))
        fail_msg("cancelled request answered: %.*s", (int)c.body.len, c.body.data);
    conn_close(&c);
    assert_true(log_eventually_has(path, "cancelled by the client"));
}

static void test_crash_and_recover(void **state)
{
    char sid[65];
    open_session(single.port, "{}", "c1", "2025-11-25", sid, NULL);
    json_t *v = rpc(single.port, sid, CALL("4", "crash", "{}"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "error"), "code")), -32603);
    assert_non_null(strstr(error_message(v), "upstream 'fake' crashed: exited with status 1"));
    json_decref(v);
    /* the next call waits for the restarted, re-initialised server */
    v = rpc(single.port, sid, CALL("5", "echo", "{\"text\":\"again\"}"));
    assert_string_equal(text_of(v), "echo:again");
    json_decref(v);
}

static void test_batch_2025_03_26(void **state)
{
    char sid[65];
    open_session(single.port, "{}", "c1", "2025-03-26", sid, NULL);
    json_t *v = rpc(single.port, sid,
                    "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"},"
                    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/roots/list_changed\"},"
                    CALL("2", "echo", "{\"text\":\"b\"}") "]");
    assert_true(json_is_array(v));
    assert_int_equal(json_array_size(v), 2);
    json_t *second = json_integer_value(json_object_get(json_array_get(v, 0), "id")) == 2
        ? json_array_get(v, 0) : json_array_get(v, 1);
    assert_string_equal(text_of(second), "echo:b");
    json_decref(v);
}

static void test_get_stream_and_delete(void **state)
{
    char sid[65], h[512];
    open_session(single.port, "{}", "c1", "2025-11-25", sid, NULL);
    snprintf(h, sizeof h, "Accept: text/event-stream\r\nMCP-Session-Id: %s\r\n", sid);
    conn g, g2, d;
    request(&g, single.port, "GET", "/mcp", h, NULL);
    assert_int_equal(g.status, 200);
    event ev;
    assert_int_equal(next_event(&g, &ev), 0); /* priming */
    free(ev.data);
    request(&g2, single.port, "GET", "/mcp", h, NULL);
    expect_http_error(&g2, 409, -32000);
    snprintf(h, sizeof h, "Accept: application/json\r\nMCP-Session-Id: %s\r\n", sid);
    request(&g2, single.port, "GET", "/mcp", h, NULL);
    expect_http_error(&g2, 406, -32000);

    size_t before = tg_mcp_session_count(single.mcp);
    snprintf(h, sizeof h, "MCP-Session-Id: %s\r\n", sid);
    request(&d, single.port, "DELETE", "/mcp", h, NULL);
    assert_int_equal(d.status, 200);
    conn_close(&d);
    assert_int_equal(next_event(&g, &ev), -1); /* the GET stream ended with the session */
    conn_close(&g);
    assert_int_equal(tg_mcp_session_count(single.mcp), before - 1);
    conn c;
    post(&c, single.port, sid, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
    expect_http_error(&c, 404, -32001);
    request(&d, single.port, "DELETE", "/mcp", h, NULL);
    expect_http_error(&d, 404, -32001);
}


/* Starts the sampling tool on a POST, reads the priming event and the sampling request
 * from its stream, then drops the connection. Returns the request's id in rid and the
 * last event id seen in last. */
static void sample_then_drop(const char *sid, const char *call_id, char rid[64], char last[64])
{
    conn c;
    char body[256];
    snprintf(body, sizeof body, CALL("%s", "sample", "{}"), call_id);
    post(&c, single.port, sid, body);
    event ev;
    assert_int_equal(next_event(&c, &ev), 0);
    free(ev.data);
    assert_int_equal(next_event(&c, &ev), 0);
    json_t *req = json_loads(ev.data, 0, NULL);
    snprintf(rid, 64, "%s", json_string_value(json_object_get(req, "id")));
    snprintf(last, 64, "%s", ev.id);
    json_decref(req);
    free(ev.data);
    conn_close(&c); /* not a cancellation */
}

static void answer_sampling(const char *sid, const char *rid)
{
    char answer[512];
    snprintf(answer, sizeof answer,
             "{\"jsonrpc\":\"2.0\",\"id\":\"%s\",\"result\":{\"role\":\"assistant\",\"content\":"
             "{\"type\":\"text\",\"text\":\"late\"},\"model\":\"m\"}}", rid);
    conn r;
    post(&r, single.port, sid, answer);
    assert_int_equal(r.status, 202);
    conn_close(&r);
}

/* Next event on a GET stream that carries a JSON-RPC message with this id. */
static json_t *await_id(conn *g, const char *id_json)
{
    event ev;
    while (next_event(g, &ev) == 0) {
        json_t *v = json_loads(ev.data, 0, NULL);
        free(ev.data);
        char *idj = v && json_object_get(v, "id") ? json_dumps(json_object_get(v, "id"), JSON_ENCODE_ANY) : NULL;
        bool match = idj && strcmp(idj, id_json) == 0;
        free(idj);
        if (match) return v;
        json_decref(v);
    }
    return NULL;
}

static void test_dropped_stream_resume(void **state)
{
    char sid[65], rid[64], last[64], h[512];
    open_session(single.port, "{\"sampling\":{}}", "c1", "2025-11-25", sid, NULL);

    /* no GET stream: the answer waits in the replay ring; Last-Event-ID resumes it */
    sample_then_drop(sid, "\"r-1\"", rid, last);
    answer_sampling(sid, rid);
    usleep(200 * 1000);
    snprintf(h, sizeof h, "Accept: text/event-stream\r\nMCP-Session-Id: %s\r\nLast-Event-ID: %s\r\n",
             sid, last);
    conn g;
    request(&g, single.port, "GET", "/mcp", h, NULL);
    assert_int_equal(g.status, 200);
    json_t *v = await_id(&g, "\"r-1\"");
    assert_non_null(v);
    assert_string_equal(text_of(v), "sampled:late");
    json_decref(v);

    /* GET stream open: the answer for a dropped POST goes there */
    sample_then_drop(sid, "\"r-2\"", rid, last);
    answer_sampling(sid, rid);
    v = await_id(&g, "\"r-2\"");
    assert_non_null(v);
    assert_string_equal(text_of(v), "sampled:late");
    json_decref(v);
    conn_close(&g);
}

static void test_idle_sessions_expire(void **state)
{
    char sid[65], h[512];
    open_session(idle.port, "{}", "c1", "2025-11-25", sid, NULL);
    /* an open GET stream keeps a quiet session alive (and gets keep-alive comments) */
    char sid2[65];
    open_session(idle.port, "{}", "c2", "2025-11-25", sid2, NULL);
    snprintf(h, sizeof h, "Accept: text/event-stream\r\nMCP-Session-Id: %s\r\n", sid2);
    conn g;
    request(&g, idle.port, "GET", "/mcp", h, NULL);
    assert_int_equal(g.status, 200);
    usleep(800 * 1000);
    conn c;
    post(&c, idle.port, sid, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
    expect_http_error(&c, 404, -32001);
    json_t *v = rpc(idle.port, sid2, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
    json_decref(v);
    read_some(&g);
    decode(&g);
    assert_non_null(memmem(g.body.data, g.body.len, ": keep-alive", 12));
    conn_close(&g);
}

static void test_list_changed_reaches_every_session(void **state)
{
    char s1[65], s2[65], h[512];
    open_session(single.port, "{}", "c1", "2025-11-25", s1, NULL);
    open_session(single.port, "{}", "c2", "2025-11-25", s2, NULL);
    snprintf(h, sizeof h, "Accept: text/event-stream\r\nMCP-Session-Id: %s\r\n", s1);
    conn g;
    request(&g, single.port, "GET", "/mcp", h, NULL);
    assert_int_equal(g.status, 200);
    json_t *v = rpc(single.port, s2, CALL("1", "change", "{}"));
    assert_string_equal(text_of(v), "changed");
    json_decref(v);
    event ev;
    bool seen = false;
    while (!seen && next_event(&g, &ev) == 0) {
        seen = strstr(ev.data, "notifications/tools/list_changed") != NULL;
        free(ev.data);
    }
    assert_true(seen);
    conn_close(&g);
}

static void test_session_limit(void **state)
{
    /* max_sessions is 40; earlier tests left some open */
    int got503 = 0;
    for (int i = 0; i < 41 && !got503; i++) {
        conn c;
        post(&c, single.port, NULL,
             "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
             "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},"
             "\"clientInfo\":{\"name\":\"x\",\"version\":\"1\"}}}");
        if (c.status == 503) {
            got503 = 1;
            expect_http_error(&c, 503, -32000);
        } else {
            assert_int_equal(c.status, 200);
            read_all(&c);
            conn_close(&c);
        }
    }
    assert_true(got503);
    assert_int_equal(tg_mcp_session_count(single.mcp), 40);
}

/* ---------------------------------------------------------------- federation */

static void test_federation(void **state)
{
    char sid[65];
    json_t *r;
    open_session(fed.port, "{}", "my-client", "2025-06-18", sid, &r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "serverInfo"), "name")),
                        "fedgw");
    json_t *caps = json_object_get(r, "capabilities");
    assert_true(json_is_true(json_object_get(json_object_get(caps, "tools"), "listChanged")));
    assert_non_null(json_object_get(caps, "prompts"));
    const char *instr = json_string_value(json_object_get(r, "instructions"));
    assert_non_null(strstr(instr, "[one]\nbe nice"));
    assert_non_null(strstr(instr, "[two]\nbe nice"));
    json_decref(r);

    /* a call before any tools/list: the lists (both pages) are fetched first */
    json_t *v = rpc(fed.port, sid, CALL("1", "a_whoami", "{}"));
    assert_string_equal(text_of(v), "toolgate 2025-11-25");
    json_decref(v);

    /* merged pages: 4 + 4 tools with an opaque cursor, then 2 + 2 */
    size_t na = 0, nb = 0;
    char body[1024];
    snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}");
    for (int page = 0; page < 2; page++) {
        v = rpc(fed.port, sid, body);
        json_t *tools = json_object_get(json_object_get(v, "result"), "tools");
        assert_int_equal(json_array_size(tools), page == 0 ? 8 : 4);
        for (size_t i = 0; i < json_array_size(tools); i++) {
            const char *name = json_string_value(json_object_get(json_array_get(tools, i), "name"));
            na += strncmp(name, "a_", 2) == 0;
            nb += strncmp(name, "b_", 2) == 0;
        }
        const char *next = json_string_value(json_object_get(json_object_get(v, "result"), "nextCursor"));
        if (page == 0) {
            assert_non_null(next);
            assert_string_not_equal(next, "p2");
            snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\","
                     "\"params\":{\"cursor\":\"%s\"}}", next);
        } else {
            assert_null(next);
        }
        json_decref(v);
    }
    assert_int_equal(na, 6);
    assert_int_equal(nb, 6);

    /* the per-client upstream was initialised with the client's own params */
    v = rpc(fed.port, sid, CALL("3", "b_whoami", "{}"));
    assert_string_equal(text_of(v), "my-client 2025-06-18");
    json_decref(v);
    v = rpc(fed.port, sid, CALL("4", "a_whoami", "{}"));
    assert_string_equal(text_of(v), "toolgate 2025-11-25");
    json_decref(v);

    v = rpc(fed.port, sid, CALL("5", "whoami", "{}"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "error"), "code")), -32602);
    assert_string_equal(error_message(v), "Unknown tool: whoami");
    json_decref(v);

    v = rpc(fed.port, sid, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/list\","
                           "\"params\":{\"cursor\":\"forged.cursor\"}}");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "error"), "code")), -32602);
    json_decref(v);

    v = rpc(fed.port, sid, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"prompts/get\","
                           "\"params\":{\"name\":\"b_greet\"}}");
    assert_non_null(json_object_get(json_object_get(v, "result"), "messages"));
    json_decref(v);
    v = rpc(fed.port, sid, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"resources/read\","
                           "\"params\":{\"uri\":\"fake://readme\"}}");
    assert_non_null(json_object_get(json_object_get(v, "result"), "contents"));
    json_decref(v);
    v = rpc(fed.port, sid, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"nope/nope\"}");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "error"), "code")), -32601);
    json_decref(v);

    /* ending the session closes its per-client upstream */
    char h[128];
    conn d;
    snprintf(h, sizeof h, "MCP-Session-Id: %s\r\n", sid);
    request(&d, fed.port, "DELETE", "/mcp", h, NULL);
    assert_int_equal(d.status, 200);
    conn_close(&d);
}

/* What an upstream answer says is read from its tokens when the reply is made; the audit
 * outcome (ok, tool_error, jsonrpc_error) comes from it. Embedded in a batch-like array so
 * the message's token is not the document's first. */
static void test_reply_answer_kind(void **state)
{
    (void)state;
    static const struct { const char *msg; mcp_answer_kind want; } cases[] = {
        {"{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[]}}", MCP_ANSWER_RESULT},
        {"{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"isError\":false}}", MCP_ANSWER_RESULT},
        {"{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[],\"isError\":true}}", MCP_ANSWER_TOOL_ERROR},
        {"{\"id\":7,\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32602,\"message\":\"bad\"}}", MCP_ANSWER_RPC_ERROR},
        {"{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"result\":{\"isError\":\"true\"}}", MCP_ANSWER_RESULT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char text[256];
        int n = snprintf(text, sizeof text, "[1,%s]", cases[i].msg);
        tg_jdoc d = TG_JDOC_INIT;
        assert_int_equal(tg_jscan(&d, text, (size_t)n, 0, NULL), 0);
        int tok = (int)d.toks[1].next; /* the element after the 1 */
        assert_int_equal(d.toks[tok].type, TG_JT_OBJECT);
        const char *raw = text + d.toks[tok].start;
        mcp_reply *r = mcp_reply_new(&d, tok, raw, d.toks[tok].end - d.toks[tok].start);
        assert_int_equal(r->answer, cases[i].want);
        assert_memory_equal(r->raw + r->id_start, strchr(cases[i].msg, '7') ? "7" : "\"x\"",
                            r->id_end - r->id_start);
        mcp_reply_free(r);
        tg_jdoc_free(&d);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FAKE_UPSTREAM\n", argv[0]);
        return 2;
    }
    static char abs_fake[4096];
    if (!realpath(argv[1], abs_fake)) {
        perror(argv[1]);
        return 2;
    }
    fake_path = abs_fake;
    tg_log_set_level(TG_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_answer_kind),
        cmocka_unit_test(test_initialize_transparent),
        cmocka_unit_test(test_http_errors),
        cmocka_unit_test(test_lifecycle_before_initialized),
        cmocka_unit_test(test_transparent_pagination),
        cmocka_unit_test(test_ids_preserved),
        cmocka_unit_test(test_two_sessions_same_id),
        cmocka_unit_test(test_progress_sse),
        cmocka_unit_test(test_sampling_round_trip),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_client_cancel),
        cmocka_unit_test(test_crash_and_recover),
        cmocka_unit_test(test_batch_2025_03_26),
        cmocka_unit_test(test_get_stream_and_delete),
        cmocka_unit_test(test_dropped_stream_resume),
        cmocka_unit_test(test_federation),
        cmocka_unit_test(test_list_changed_reaches_every_session),
        cmocka_unit_test(test_idle_sessions_expire),
        cmocka_unit_test(test_session_limit),
        cmocka_unit_test(test_gated_calls),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
