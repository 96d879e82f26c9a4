/*
 * echo_upstream.c — a fast Streamable HTTP MCP server for benchmarks.
 *
 * It answers initialize, notifications (202), tools/list (one tool, "echo") and
 * tools/call (the arguments echoed back as text) with application/json, on toolgate's
 * own HTTP front, so the "direct" baseline and the upstream behind every proxy cost the
 * same. It keeps no session state: any MCP-Session-Id is accepted.
 *
 *   echo_upstream [--port N]        (default 18081; binds 127.0.0.1)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tg_common.h"
#include "front/tg_front.h"

static void respond_result(tg_http_req *req, json_t *id, json_t *result_steal, int with_session)
{
    json_t *msg = json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result", result_steal);
    tg_buf out = TG_BUF_INIT;
    tg_json_dump_buf(msg, &out);
    tg_http_header h[1] = {{"Mcp-Session-Id", 14, "echo-session", 12}};
    tg_http_respond_json(req, 200, h, with_session ? 1 : 0, out.data, out.len);
    tg_buf_free(&out);
    json_decref(msg);
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
    tg_error err;
    json_t *msg = tg_json_parse(req->body, req->body_len, TG_JSON_MAX_DEPTH, &err);
    if (!msg || tg_rpc_classify(msg, &err) == TG_RPC_KIND_INVALID) {
        json_t *e = tg_rpc_error(NULL, TG_RPC_PARSE_ERROR, err.msg, NULL);
        char *s = tg_json_dump(e, NULL);
        tg_http_respond_json(req, 400, NULL, 0, s, strlen(s));
        free(s);
        json_decref(e);
        json_decref(msg);
        return;
    }
    json_t *id = json_object_get(msg, "id");
    const char *method = json_string_value(json_object_get(msg, "method"));
    if (!id || !method) {
        tg_http_respond(req, 202, NULL, 0, NULL, 0);
    } else if (strcmp(method, "initialize") == 0) {
        json_t *params = json_object_get(msg, "params");
        json_t *ver = params ? json_object_get(params, "protocolVersion") : NULL;
        respond_result(req, id,
                       json_pack("{s:O,s:{s:{}},s:{s:s,s:s}}", "protocolVersion",
                                 ver ? ver : json_string("2025-11-25"), "capabilities", "tools",
                                 "serverInfo", "name", "echo", "version", "1.0.0"),
                       1);
    } else if (strcmp(method, "tools/list") == 0) {
        respond_result(req, id,
                       json_pack("{s:[{s:s,s:s,s:{s:s},s:{s:b}}]}", "tools", "name", "echo",
                                 "description", "echoes its arguments", "inputSchema", "type",
                                 "object", "annotations", "readOnlyHint", 1),
                       0);
    } else if (strcmp(method, "tools/call") == 0) {
        json_t *args = json_object_get(json_object_get(msg, "params"), "arguments");
        char *text = tg_json_dump(args ? args : json_object(), NULL);
        respond_result(req, id, json_pack("{s:[{s:s,s:s}]}", "content", "type", "text", "text", text), 0);
        free(text);
    } else if (strcmp(method, "ping") == 0) {
        respond_result(req, id, json_object(), 0);
    } else {
        json_t *e = tg_rpc_error(id, TG_RPC_METHOD_NOT_FOUND, "Method not found", NULL);
        char *s = tg_json_dump(e, NULL);
        tg_http_respond_json(req, 200, NULL, 0, s, strlen(s));
        free(s);
        json_decref(e);
    }
    json_decref(msg);
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    uv_stop(h->loop);
}

int main(int argc, char **argv)
{
    int port = 18081;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: echo_upstream [--port N]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
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
