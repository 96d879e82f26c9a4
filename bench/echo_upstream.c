/*
 * echo_upstream.c — a fast MCP server for benchmarks, over Streamable HTTP or stdio.
 *
 * It answers initialize, notifications (nothing / 202), tools/list (one tool, "echo"),
 * tools/call (the arguments' JSON text, as the client sent it, echoed back as text
 * content) and ping. Both transports call
 * the same answer function, so every target of bench/run gets byte-identical answers:
 *   - HTTP (default): on toolgate's own HTTP front, application/json answers, so the
 *     "direct" baseline and the upstream behind every HTTP proxy cost the same. It keeps
 *     no session state: any MCP-Session-Id is accepted.
 *   - stdio (--stdio): newline-delimited JSON-RPC on stdin/stdout (the MCP stdio
 *     transport), one blocking read loop; this is the server behind supergateway,
 *     mcp-proxy and toolgate's stdio upstream in bench/run.
 *
 *   echo_upstream [--port N]        (default 18081; binds 127.0.0.1)
 *   echo_upstream --stdio
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tg_common.h"
#include "front/tg_front.h"

typedef enum echo_kind {
    ECHO_NOTIFICATION, /* nothing to answer (HTTP: 202) */
    ECHO_INVALID,      /* not JSON-RPC: the answer is a parse error (HTTP: 400) */
    ECHO_INITIALIZE,   /* the answer starts a session (HTTP: Mcp-Session-Id header) */
    ECHO_ANSWER,
} echo_kind;

static void dump_result(json_t *id, json_t *result_steal, tg_buf *out)
{
    json_t *msg = json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result", result_steal);
    tg_json_dump_buf(msg, out);
    json_decref(msg);
}

/* Appends raw JSON text as the body of a JSON string (quotes and backslashes escaped;
 * valid JSON holds no other control bytes than whitespace outside its strings). */
static void append_as_string(tg_buf *out, const char *p, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *esc = NULL;
        switch (p[i]) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default: continue;
        }
        tg_buf_append(out, p + run, i - run);
        tg_buf_append(out, esc, 2);
        run = i + 1;
    }
    tg_buf_append(out, p + run, n - run);
}

/* tools/call, the benchmarked answer: written from the scanned request's own bytes (the
 * id as sent, the arguments' JSON text as sent), so the echo server costs one validating
 * scan per call and the figures measure the proxies, not jansson. */
static void answer_call(const tg_jdoc *d, int id, int args, tg_buf *out)
{
    static const char head[] = "{\"jsonrpc\":\"2.0\",\"id\":";
    static const char mid[] = ",\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"";
    static const char tail[] = "\"}]}}";
    tg_buf_append(out, head, sizeof head - 1);
    tg_buf_append(out, d->buf + d->toks[id].start, d->toks[id].end - d->toks[id].start);
    tg_buf_append(out, mid, sizeof mid - 1);
    if (args >= 0)
        append_as_string(out, d->buf + d->toks[args].start, d->toks[args].end - d->toks[args].start);
    else
        tg_buf_append(out, "{}", 2);
    tg_buf_append(out, tail, sizeof tail - 1);
}

/* Answers one JSON-RPC message (body, len) into out; the kind says how to frame it. */
static echo_kind echo_answer(const char *body, size_t len, tg_buf *out)
{
    static tg_jdoc doc = TG_JDOC_INIT; /* one thread per process: reused, no allocation */
    tg_error err;
    if (tg_jscan(&doc, body, len, TG_JSON_MAX_DEPTH, &err) != 0 ||
        tg_jscan_classify(&doc, 0, &err) == TG_RPC_KIND_INVALID) {
        json_t *e = tg_rpc_error(NULL, TG_RPC_PARSE_ERROR, err.msg, NULL);
        tg_json_dump_buf(e, out);
        json_decref(e);
        return ECHO_INVALID;
    }
    int id_tok = tg_jscan_get(&doc, 0, "id");
    if (id_tok >= 0 && tg_jscan_streq(&doc, tg_jscan_get(&doc, 0, "method"), "tools/call")) {
        answer_call(&doc, id_tok, tg_jscan_path(&doc, 0, "params.arguments"), out);
        return ECHO_ANSWER;
    }
    /* Every other message is rare: build a DOM and answer from it. */
    json_t *msg = tg_jscan_json(&doc, 0);
    json_t *id = json_object_get(msg, "id");
    const char *method = json_string_value(json_object_get(msg, "method"));
    echo_kind kind = ECHO_ANSWER;
    if (!id || !method) {
        kind = ECHO_NOTIFICATION; /* notifications, and responses to our (no) requests */
    } else if (strcmp(method, "initialize") == 0) {
        json_t *ver = json_object_get(json_object_get(msg, "params"), "protocolVersion");
        dump_result(id,
                    json_pack("{s:o,s:{s:{}},s:{s:s,s:s}}", "protocolVersion",
                              ver ? json_incref(ver) : json_string("2025-11-25"), "capabilities", "tools",
                              "serverInfo", "name", "echo", "version", "1.0.0"),
                    out);
        kind = ECHO_INITIALIZE;
    } else if (strcmp(method, "tools/list") == 0) {
        dump_result(id,
                    json_pack("{s:[{s:s,s:s,s:{s:s},s:{s:b}}]}", "tools", "name", "echo",
                              "description", "echoes its arguments", "inputSchema", "type",
                              "object", "annotations", "readOnlyHint", 1),
                    out);
    } else if (strcmp(method, "ping") == 0) {
        dump_result(id, json_object(), out);
    } else {
        json_t *e = tg_rpc_error(id, TG_RPC_METHOD_NOT_FOUND, "Method not found", NULL);
        tg_json_dump_buf(e, out);
        json_decref(e);
    }
    json_decref(msg);
    return kind;
}

static void handle(tg_http_req *req, void *ctx)
{
    (void)ctx;
    if (req->method == TG_HTTP_DELETE) {
        tg_http_respond(req, 200, NULL, 0, NULL, 0);
        return;
    }
    if (req->method != TG_HTTP_POST) {
        tg_http_header allow = {"Allow", 5, "POST, DELETE", 12};
        tg_http_respond(req, 405, &allow, 1, NULL, 0);
        return;
    }
    tg_buf out = TG_BUF_INIT;
    tg_http_header session = {"Mcp-Session-Id", 14, "echo-session", 12};
    switch (echo_answer(req->body, req->body_len, &out)) {
    case ECHO_NOTIFICATION: tg_http_respond(req, 202, NULL, 0, NULL, 0); break;
    case ECHO_INVALID: tg_http_respond_json(req, 400, NULL, 0, out.data, out.len); break;
    case ECHO_INITIALIZE: tg_http_respond_json(req, 200, &session, 1, out.data, out.len); break;
    case ECHO_ANSWER: tg_http_respond_json(req, 200, NULL, 0, out.data, out.len); break;
    }
    tg_buf_free(&out);
}

/* stdio: one message per line in, one answer per line out (none for notifications).
 * Blank lines are skipped; the loop ends at EOF on stdin (the client went away). */
static int serve_stdio(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    tg_buf out = TG_BUF_INIT;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        if (n == 0) continue;
        out.len = 0;
        if (echo_answer(line, (size_t)n, &out) == ECHO_NOTIFICATION) continue;
        tg_buf_append(&out, "\n", 1);
        if (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0) {
            perror("echo_upstream: stdout");
            break;
        }
    }
    free(line);
    tg_buf_free(&out);
    return 0;
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    uv_stop(h->loop);
}

int main(int argc, char **argv)
{
    int port = 18081, stdio_mode = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--stdio") == 0) stdio_mode = 1;
        else {
            fprintf(stderr, "usage: echo_upstream [--port N] | --stdio\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    if (stdio_mode) return serve_stdio();
    uv_loop_t *loop = uv_default_loop();
    tg_limits limits = {
        .max_body_bytes = 16u << 20, .max_header_bytes = 16384, .max_headers = 64,
        .max_connections = 10000, .max_sessions = 10000, .header_timeout_ms = 10000,
        .body_timeout_ms = 30000, .idle_timeout_ms = 75000, .session_idle_ms = 3600000,
        .hold_sse_keepalive_ms = 15000,
    };
    tg_http_server *srv = tg_http_server_new(loop, &limits, handle, NULL);
    tg_error err;
    if (tg_http_server_listen(srv, "127.0.0.1", (uint16_t)port, &err) != 0) {
        fprintf(stderr, "echo_upstream: %s\n", err.msg);
        return 1;
    }
    uv_signal_t sig_int, sig_term;
    uv_signal_init(loop, &sig_int);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_init(loop, &sig_term);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
