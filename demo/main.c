/*
 * main.c — toolgate-demo-atlassian: a small MCP server over stdio, used as toolgate's
 * demo and test upstream.
 *
 *   toolgate-demo-atlassian                 pretend Atlassian (Jira/Confluence/Bitbucket)
 *   toolgate-demo-atlassian --conformance   what the MCP conformance suite expects
 *   --page-size N                           paginate tools/resources/prompts lists
 *
 * This file owns the protocol: newline-delimited JSON-RPC on stdin/stdout read on a
 * libuv loop, strict parsing (tg_json_parse, tg_rpc_classify), the MCP lifecycle,
 * list pagination, logging/setLevel and notifications/message, resource subscriptions,
 * and "calls": a tools/call stays open while its tool waits for a timer or for the
 * client's answer to a server→client request (sampling, elicitation), so several
 * calls and unrelated requests interleave freely. The mode (atlassian.c or
 * conformance.c) supplies the catalogues and handlers; see demo_int.h.
 *
 * stdout carries only MCP messages; diagnostics go to stderr as tg_log JSON lines.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "demo_int.h"

#define DEMO_MAX_LINE (4u << 20)   /* longest accepted message line */
#define DEMO_MAX_COMPLETIONS 100   /* the spec's cap on completion values */
#define LATEST_VERSION "2025-11-25"

static const char *const demo_versions[] = { "2025-11-25", "2025-06-18", "2025-03-26" };
/* RFC 5424 severities in increasing order, as MCP logging names them. */
static const char *const demo_levels[] = {
    "debug", "info", "notice", "warning", "error", "critical", "alert", "emergency" };

/* The whole server. Invariants: `tools`, `prompts`, `templates` are built once before
 * the loop starts and never change; `calls` lists every open tools/call; `in` is the
 * stdin stream while reading (NULL after EOF). */
struct demo_server {
    uv_loop_t        *loop;
    uv_stream_t      *in;
    tg_buf            inbuf;
    int               discarding;     /* dropping the rest of an over-long line */
    const demo_mode  *mode;
    const char       *server_name;
    void             *state;
    json_t           *tools;          /* array of tool objects, catalogue order */
    json_t           *prompts;        /* array of prompt objects */
    json_t           *templates;      /* array of resource templates */
    size_t            page_size;      /* 0: lists are not paginated */
    int               initialized;    /* initialize has been answered */
    json_t           *client_caps;    /* the client's capabilities, {} before initialize */
    size_t            log_level;      /* index into demo_levels; lower levels are dropped */
    json_t           *subscriptions;  /* uri → true */
    demo_call        *calls;
    uint64_t          next_ask;
};

/* ------------------------------------------------------------------ output */

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* stdout may share a non-blocking description with stdin; wait for room. */
            struct pollfd pfd = { .fd = STDOUT_FILENO, .events = POLLOUT };
            (void)poll(&pfd, 1, 1000);
            continue;
        }
        if (w < 0) {
            /* The client is gone: nothing left to serve. */
            tg_log_error("demo", "writing to stdout failed: %s", strerror(errno));
            exit(1);
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Sends one message (stolen) as one line. */
static void demo_send(json_t *msg)
{
    tg_buf b = TG_BUF_INIT;
    tg_json_dump_buf(msg, &b);
    tg_buf_append(&b, "\n", 1);
    write_all(b.data, b.len);
    tg_buf_free(&b);
    json_decref(msg);
}

static void send_result(const json_t *id, json_t *result)
{
    demo_send(json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result", result));
}

static void send_error(const json_t *id, int code, const char *message, json_t *data)
{
    demo_send(tg_rpc_error(id, code, message, data));
}

static void send_notification(const char *method, json_t *params)
{
    demo_send(json_pack("{s:s,s:s,s:o}", "jsonrpc", "2.0", "method", method, "params", params));
}

/* ------------------------------------------------------------------ services */

void *demo_state(demo_server *s) { return s->state; }

int demo_client_has(demo_server *s, const char *capability)
{
    return json_object_get(s->client_caps, capability) != NULL;
}

static int level_index(const char *level, size_t *out)
{
    for (size_t i = 0; i < sizeof demo_levels / sizeof demo_levels[0]; i++)
        if (!strcmp(level, demo_levels[i])) { *out = i; return 0; }
    return -1;
}

void demo_log(demo_server *s, const char *level, json_t *data)
{
    size_t li;
    if (level_index(level, &li) < 0 || li < s->log_level) {
        json_decref(data);
        return;
    }
    send_notification("notifications/message",
        json_pack("{s:s,s:s,s:o}", "level", level, "logger", s->server_name, "data", data));
}

void demo_resource_changed(demo_server *s, const char *uri)
{
    if (json_object_get(s->subscriptions, uri))
        send_notification("notifications/resources/updated", json_pack("{s:s}", "uri", uri));
}

void demo_resources_list_changed(demo_server *s)
{
    send_notification("notifications/resources/list_changed", json_object());
}

/* ------------------------------------------------------------------ calls */

static void call_closed(uv_handle_t *h)
{
    demo_call *c = h->data;
    json_decref(c->id);
    json_decref(c->progress_token);
    json_decref(c->args);
    json_decref(c->ask_id);
    free(c);
}

/* Unlinks and frees a call without answering it (finish, cancellation, shutdown). */
static void call_drop(demo_call *c)
{
    for (demo_call **pp = &c->srv->calls; *pp; pp = &(*pp)->next)
        if (*pp == c) { *pp = c->next; break; }
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, call_closed);
}

void demo_call_finish(demo_call *c, json_t *result)
{
    send_result(c->id, result);
    call_drop(c);
}

void demo_call_finish_json(demo_call *c, json_t *value)
{
    char *text = tg_json_dump(value, NULL);
    json_decref(value);
    demo_call_finish(c, json_pack("{s:[{s:s,s:s}]}", "content", "type", "text", "text", text));
    free(text);
}

static json_t *tool_error_result(const char *msg)
{
    return json_pack("{s:[{s:s,s:s}],s:b}", "content", "type", "text", "text", msg, "isError", 1);
}

void demo_call_fail(demo_call *c, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    demo_call_finish(c, tool_error_result(msg));
}

static void call_timer_cb(uv_timer_t *t)
{
    demo_call *c = t->data;
    if (c->ask_id) {
        /* The client never answered our request: report it as that request's error. */
        json_t *err = json_pack("{s:i,s:s}", "code", TG_RPC_INTERNAL_ERROR,
                                "message", "the client did not answer in time");
        json_decref(c->ask_id);
        c->ask_id = NULL;
        c->on_reply(c, NULL, err);
        json_decref(err);
        return;
    }
    c->on_timer(c);
}

void demo_call_after(demo_call *c, uint64_t ms, demo_step_fn fn)
{
    c->on_timer = fn;
    uv_timer_start(&c->timer, call_timer_cb, ms, 0);
}

void demo_call_ask(demo_call *c, const char *method, json_t *params, demo_reply_fn fn)
{
    demo_server *s = c->srv;
    /* Our ids carry a prefix so they can never be mistaken for the client's. */
    c->ask_id = json_sprintf("demo-%llu", (unsigned long long)++s->next_ask);
    c->on_reply = fn;
    demo_send(json_pack("{s:s,s:O,s:s,s:o}", "jsonrpc", "2.0", "id", c->ask_id,
                        "method", method, "params", params));
    uv_timer_start(&c->timer, call_timer_cb, DEMO_ASK_TIMEOUT_MS, 0);
}

void demo_call_progress(demo_call *c, double progress, double total, const char *message)
{
    if (!c->progress_token) return;
    json_t *p = json_pack("{s:O,s:f,s:f}", "progressToken", c->progress_token,
                          "progress", progress, "total", total);
    if (message) json_object_set_new(p, "message", json_string(message));
    send_notification("notifications/progress", p);
}

static demo_call *find_call(demo_server *s, const json_t *id)
{
    for (demo_call *c = s->calls; c; c = c->next)
        if (json_equal(c->id, id)) return c;
    return NULL;
}

/* ------------------------------------------------------------------ requests */

/* A method handler returns the result (new reference), or NULL with *code and err
 * set; NULL with *code == 0 means the handler has taken charge of answering. */
typedef json_t *(*method_fn)(demo_server *s, const json_t *id, json_t *params,
                             int *code, tg_error *err);

static json_t *m_initialize(demo_server *s, const json_t *id, json_t *params,
                            int *code, tg_error *err)
{
    const char *asked = json_string_value(json_object_get(params, "protocolVersion"));
    if (!asked) {
        *code = TG_RPC_INVALID_PARAMS;
        tg_error_set(err, "initialize needs params.protocolVersion (a string)");
        return NULL;
    }
    const char *version = LATEST_VERSION;
    for (size_t i = 0; i < sizeof demo_versions / sizeof demo_versions[0]; i++)
        if (!strcmp(asked, demo_versions[i])) version = demo_versions[i];
    if (s->initialized)
        tg_log_warn("demo", "initialize received again; answering it as the first");
    json_t *caps = json_object_get(params, "capabilities");
    json_decref(s->client_caps);
    s->client_caps = json_is_object(caps) ? json_deep_copy(caps) : json_object();
    s->initialized = 1;
    return json_pack("{s:s,s:{s:{s:b},s:{s:b,s:b},s:{s:b},s:{},s:{}},s:{s:s,s:s,s:s},s:s}",
        "protocolVersion", version,
        "capabilities",
            "tools", "listChanged", 1,
            "resources", "subscribe", 1, "listChanged", 1,
            "prompts", "listChanged", 1,
            "logging",
            "completions",
        "serverInfo", "name", s->server_name, "title", "toolgate demo server",
                      "version", TG_VERSION,
        "instructions", s->mode->instructions);
}

static json_t *m_ping(demo_server *s, const json_t *id, json_t *params, int *code, tg_error *err)
{
    return json_object();
}

/* One page of `all` under `key`, honouring params.cursor (an offset we handed out). */
static json_t *page_of(demo_server *s, const json_t *all, const char *key,
                       const json_t *params, int *code, tg_error *err)
{
    size_t len = json_array_size(all), off = 0;
    const json_t *cursor = json_object_get(params, "cursor");
    if (cursor) {
        const char *c = json_string_value(cursor);
        char *end = NULL;
        unsigned long long v = c && *c >= '0' && *c <= '9' ? strtoull(c, &end, 10) : 0;
        if (!c || !end || *end || v == 0 || v >= len) {
            *code = TG_RPC_INVALID_PARAMS;
            tg_error_set(err, "invalid cursor: pass back a nextCursor from a previous page");
            return NULL;
        }
        off = (size_t)v;
    }
    size_t end = s->page_size && off + s->page_size < len ? off + s->page_size : len;
    json_t *items = json_array();
    for (size_t i = off; i < end; i++)
        json_array_append(items, json_array_get(all, i));
    json_t *res = json_pack("{s:o}", key, items);
    if (end < len)
        json_object_set_new(res, "nextCursor", json_sprintf("%zu", end));
    return res;
}

static json_t *m_tools_list(demo_server *s, const json_t *id, json_t *params,
                            int *code, tg_error *err)
{
    return page_of(s, s->tools, "tools", params, code, err);
}

static const demo_tool *find_tool(demo_server *s, const char *name, size_t *index)
{
    for (size_t i = 0; i < s->mode->ntools; i++)
        if (!strcmp(s->mode->tools[i].name, name)) { *index = i; return &s->mode->tools[i]; }
    return NULL;
}

static json_t *m_tools_call(demo_server *s, const json_t *id, json_t *params,
                            int *code, tg_error *err)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    size_t idx = 0;
    const demo_tool *tool = name ? find_tool(s, name, &idx) : NULL;
    *code = TG_RPC_INVALID_PARAMS;
    if (!name) { tg_error_set(err, "tools/call needs params.name (a string)"); return NULL; }
    if (!tool) { tg_error_set(err, "unknown tool: %s", name); return NULL; }
    json_t *args = json_object_get(params, "arguments");
    if (args && !json_is_object(args)) {
        tg_error_set(err, "params.arguments must be an object");
        return NULL;
    }
    if (find_call(s, id)) {
        *code = TG_RPC_INVALID_REQUEST;
        tg_error_set(err, "a request with this id is still in progress");
        return NULL;
    }
    *code = 0;
    args = args ? json_incref(args) : json_object();
    /* Argument validation failures are tool execution errors (isError), not protocol
     * errors: the model that called the tool should see them and retry. */
    tg_error verr;
    const json_t *schema = json_object_get(json_array_get(s->tools, idx), "inputSchema");
    if (demo_schema_check(schema, args, &verr) < 0) {
        json_decref(args);
        return tool_error_result(verr.msg);
    }
    demo_call *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->srv = s;
    c->id = json_incref((json_t *)id);
    c->args = args;
    json_t *tok = json_object_get(json_object_get(params, "_meta"), "progressToken");
    if (json_is_string(tok) || json_is_integer(tok)) c->progress_token = json_incref(tok);
    uv_timer_init(s->loop, &c->timer);
    c->timer.data = c;
    c->next = s->calls;
    s->calls = c;
    tool->fn(c, args);
    return NULL;
}

static json_t *m_resources_list(demo_server *s, const json_t *id, json_t *params,
                                int *code, tg_error *err)
{
    json_t *all = json_array();
    s->mode->resources(s, all);
    json_t *res = page_of(s, all, "resources", params, code, err);
    json_decref(all);
    return res;
}

static json_t *m_templates_list(demo_server *s, const json_t *id, json_t *params,
                                int *code, tg_error *err)
{
    return page_of(s, s->templates, "resourceTemplates", params, code, err);
}

static const char *need_uri(const json_t *params, int *code, tg_error *err)
{
    const char *uri = json_string_value(json_object_get(params, "uri"));
    if (!uri) {
        *code = TG_RPC_INVALID_PARAMS;
        tg_error_set(err, "params.uri (a string) is required");
    }
    return uri;
}

static json_t *m_resources_read(demo_server *s, const json_t *id, json_t *params,
                                int *code, tg_error *err)
{
    const char *uri = need_uri(params, code, err);
    if (!uri) return NULL;
    json_t *res = s->mode->read(s, uri, err);
    if (!res) *code = -32002; /* resource not found */
    return res;
}

static json_t *m_subscribe(demo_server *s, const json_t *id, json_t *params,
                           int *code, tg_error *err)
{
    const char *uri = need_uri(params, code, err);
    if (!uri) return NULL;
    json_object_set_new(s->subscriptions, uri, json_true());
    return json_object();
}

static json_t *m_unsubscribe(demo_server *s, const json_t *id, json_t *params,
                             int *code, tg_error *err)
{
    const char *uri = need_uri(params, code, err);
    if (!uri) return NULL;
    json_object_del(s->subscriptions, uri);
    return json_object();
}

static json_t *m_prompts_list(demo_server *s, const json_t *id, json_t *params,
                              int *code, tg_error *err)
{
    return page_of(s, s->prompts, "prompts", params, code, err);
}

static json_t *m_prompts_get(demo_server *s, const json_t *id, json_t *params,
                             int *code, tg_error *err)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    *code = TG_RPC_INVALID_PARAMS;
    size_t i;
    for (i = 0; name && i < s->mode->nprompts; i++)
        if (!strcmp(s->mode->prompts[i].name, name)) break;
    if (!name || i == s->mode->nprompts) {
        tg_error_set(err, "unknown prompt: %s", name ? name : "(params.name missing)");
        return NULL;
    }
    json_t *args = json_object_get(params, "arguments");
    if (args && !json_is_object(args)) {
        tg_error_set(err, "params.arguments must be an object of strings");
        return NULL;
    }
    const json_t *decl = json_array_get(s->prompts, i);
    size_t k;
    const json_t *a;
    json_array_foreach(json_object_get(decl, "arguments"), k, a) {
        const char *an = json_string_value(json_object_get(a, "name"));
        const json_t *given = json_object_get(args, an);
        if (given && !json_is_string(given)) {
            tg_error_set(err, "prompt argument '%s' must be a string", an);
            return NULL;
        }
        if (!given && json_is_true(json_object_get(a, "required"))) {
            tg_error_set(err, "missing required prompt argument '%s'", an);
            return NULL;
        }
    }
    json_t *messages = json_array();
    if (s->mode->prompts[i].get(s, args, messages, err) < 0) {
        json_decref(messages);
        return NULL;
    }
    return json_pack("{s:O,s:o}", "description", json_object_get(decl, "description"),
                     "messages", messages);
}

static json_t *m_complete(demo_server *s, const json_t *id, json_t *params,
                          int *code, tg_error *err)
{
    const json_t *ref = json_object_get(params, "ref");
    const json_t *arg = json_object_get(params, "argument");
    const char *aname = json_string_value(json_object_get(arg, "name"));
    const char *value = json_string_value(json_object_get(arg, "value"));
    if (!json_is_object(ref) || !aname || !value) {
        *code = TG_RPC_INVALID_PARAMS;
        tg_error_set(err, "completion/complete needs params.ref and params.argument {name, value}");
        return NULL;
    }
    json_t *cands = s->mode->complete(s, ref, aname);
    json_t *values = json_array();
    size_t i, total = 0, vlen = strlen(value);
    json_t *c;
    json_array_foreach(cands, i, c) {
        const char *cs = json_string_value(c);
        if (!cs || strncasecmp(cs, value, vlen)) continue;
        total++;
        if (json_array_size(values) < DEMO_MAX_COMPLETIONS) json_array_append(values, c);
    }
    json_decref(cands);
    return json_pack("{s:{s:o,s:I,s:b}}", "completion", "values", values,
                     "total", (json_int_t)total, "hasMore", total > DEMO_MAX_COMPLETIONS);
}

static json_t *m_set_level(demo_server *s, const json_t *id, json_t *params,
                           int *code, tg_error *err)
{
    const char *level = json_string_value(json_object_get(params, "level"));
    size_t li;
    if (!level || level_index(level, &li) < 0) {
        *code = TG_RPC_INVALID_PARAMS;
        tg_error_set(err, "params.level must be one of debug, info, notice, warning, "
                          "error, critical, alert, emergency");
        return NULL;
    }
    s->log_level = li;
    return json_object();
}

static const struct { const char *method; method_fn fn; int before_init; } demo_methods[] = {
    { "initialize",               m_initialize,     1 },
    { "ping",                     m_ping,           1 },
    { "tools/list",               m_tools_list,     0 },
    { "tools/call",               m_tools_call,     0 },
    { "resources/list",           m_resources_list, 0 },
    { "resources/templates/list", m_templates_list, 0 },
    { "resources/read",           m_resources_read, 0 },
    { "resources/subscribe",      m_subscribe,      0 },
    { "resources/unsubscribe",    m_unsubscribe,    0 },
    { "prompts/list",             m_prompts_list,   0 },
    { "prompts/get",              m_prompts_get,    0 },
    { "completion/complete",      m_complete,       0 },
    { "logging/setLevel",         m_set_level,      1 },
};

static void on_request(demo_server *s, const json_t *id, const char *method, json_t *params)
{
    for (size_t i = 0; i < sizeof demo_methods / sizeof demo_methods[0]; i++) {
        if (strcmp(demo_methods[i].method, method)) continue;
        if (!s->initialized && !demo_methods[i].before_init) {
            send_error(id, TG_RPC_INVALID_REQUEST,
                       "the server is not initialized: send initialize first", NULL);
            return;
        }
        int code = 0;
        tg_error err = { "" };
        json_t *p = params ? json_incref(params) : json_object();
        json_t *res = demo_methods[i].fn(s, id, p, &code, &err);
        json_decref(p);
        if (res) send_result(id, res);
        else if (code) send_error(id, code, err.msg, NULL);
        return;
    }
    send_error(id, TG_RPC_METHOD_NOT_FOUND, "method not found", json_pack("{s:s}", "method", method));
}

static void on_response(demo_server *s, const json_t *msg)
{
    const json_t *id = json_object_get(msg, "id");
    for (demo_call *c = s->calls; c; c = c->next) {
        if (!c->ask_id || !json_equal(c->ask_id, id)) continue;
        uv_timer_stop(&c->timer);
        json_decref(c->ask_id);
        c->ask_id = NULL;
        c->on_reply(c, json_object_get(msg, "result"), json_object_get(msg, "error"));
        return;
    }
    tg_log_warn("demo", "ignoring a response to a request we did not send (or already gave up on)");
}

static void on_notification(demo_server *s, const char *method, const json_t *params)
{
    if (!strcmp(method, "notifications/cancelled")) {
        demo_call *c = find_call(s, json_object_get(params, "requestId"));
        /* A cancelled request gets no answer at all (MCP cancellation). */
        if (c) call_drop(c);
    }
    /* notifications/initialized, roots/list_changed, …: nothing to do. */
}

static void on_line(demo_server *s, const char *line, size_t n)
{
    tg_error err;
    json_t *msg = tg_json_parse(line, n, TG_JSON_MAX_DEPTH, &err);
    if (!msg) {
        send_error(NULL, TG_RPC_PARSE_ERROR, err.msg, NULL);
        return;
    }
    const json_t *id = json_object_get(msg, "id");
    const char *method = json_string_value(json_object_get(msg, "method"));
    switch (tg_rpc_classify(msg, &err)) {
    case TG_RPC_KIND_REQUEST:
        on_request(s, id, method, json_object_get(msg, "params"));
        break;
    case TG_RPC_KIND_NOTIFICATION:
        on_notification(s, method, json_object_get(msg, "params"));
        break;
    case TG_RPC_KIND_RESPONSE:
        on_response(s, msg);
        break;
    default:
        send_error(json_is_string(id) || json_is_integer(id) ? id : NULL,
                   TG_RPC_INVALID_REQUEST, err.msg, NULL);
        break;
    }
    json_decref(msg);
}

/* ------------------------------------------------------------------ stdin */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char chunk[65536];   /* consumed synchronously in read_cb before the next read */
    buf->base = chunk;
    buf->len = sizeof chunk;
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void shutdown_server(demo_server *s)
{
    while (s->calls) call_drop(s->calls);
    if (s->in) {
        uv_read_stop(s->in);
        uv_close((uv_handle_t *)s->in, free_handle);
        s->in = NULL;
    }
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    demo_server *s = st->data;
    if (nread < 0) {
        if (nread != UV_EOF)
            tg_log_error("demo", "reading stdin failed: %s", uv_strerror((int)nread));
        shutdown_server(s);
        return;
    }
    const char *p = buf->base, *end = p + nread;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t take = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (!s->discarding) {
            if (s->inbuf.len + take > DEMO_MAX_LINE) {
                send_error(NULL, TG_RPC_PARSE_ERROR, "message line too long", NULL);
                tg_buf_reset(&s->inbuf);
                s->discarding = 1;
            } else {
                tg_buf_append(&s->inbuf, p, take);
            }
        }
        if (!nl) break;
        if (!s->discarding) {
            size_t n = s->inbuf.len;
            if (n && s->inbuf.data[n - 1] == '\r') n--;
            if (n) on_line(s, s->inbuf.data, n);
        }
        s->discarding = 0;
        tg_buf_reset(&s->inbuf);
        p = nl + 1;
    }
}

static int open_stdin(demo_server *s, tg_error *err)
{
    int rc;
    switch (uv_guess_handle(STDIN_FILENO)) {
    case UV_TTY: {
        uv_tty_t *t = malloc(sizeof *t);
        if (!t) abort();
        rc = uv_tty_init(s->loop, t, STDIN_FILENO, 1);
        s->in = (uv_stream_t *)t;
        break;
    }
    case UV_NAMED_PIPE: {
        uv_pipe_t *p = malloc(sizeof *p);
        if (!p) abort();
        rc = uv_pipe_init(s->loop, p, 0);
        if (rc == 0) rc = uv_pipe_open(p, STDIN_FILENO);
        s->in = (uv_stream_t *)p;
        break;
    }
    default:
        return tg_error_set(err, "stdin must be a pipe, socket or terminal "
                                 "(run me under an MCP client such as toolgate)");
    }
    if (rc == 0) {
        s->in->data = s;
        rc = uv_read_start(s->in, alloc_cb, read_cb);
    }
    if (rc < 0) {
        free(s->in);
        s->in = NULL;
        return tg_error_set(err, "cannot read stdin: %s", uv_strerror(rc));
    }
    return 0;
}

/* ------------------------------------------------------------------ start-up */

/* Turns a catalogue entry into {name, …def} (title copied from annotations.title). */
static json_t *named_def(const char *name, const char *def)
{
    json_t *obj = json_pack("{s:s}", "name", name);
    json_t *d = demo_def_parse(def);
    json_object_update(obj, d);
    json_decref(d);
    const json_t *title = json_object_get(json_object_get(obj, "annotations"), "title");
    if (title && !json_object_get(obj, "title"))
        json_object_set(obj, "title", (json_t *)title);
    return obj;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: toolgate-demo-atlassian [--conformance] [--page-size N]\n"
        "  An MCP server on stdin/stdout (newline-delimited JSON-RPC).\n"
        "  default        a pretend Atlassian: Jira, Confluence and Bitbucket tools over\n"
        "                 in-memory state (projects OPS, FIN, SEC; spaces ENG, HR;\n"
        "                 workspace acme)\n"
        "  --conformance  the tools, resources and prompts the MCP conformance suite calls\n"
        "  --page-size N  return tools/resources/prompts lists N items per page\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "conformance", no_argument,       NULL, 'c' },
        { "page-size",   required_argument, NULL, 'p' },
        { "help",        no_argument,       NULL, 'h' },
        { "version",     no_argument,       NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    demo_server s = { .mode = &demo_atlassian_mode, .server_name = "demo-atlassian" };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            s.mode = &demo_conformance_mode;
            s.server_name = "demo-conformance";
            break;
        case 'p': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 10000) {
                fprintf(stderr, "toolgate-demo-atlassian: --page-size wants a number "
                                "from 1 to 10000, not '%s'\n", optarg);
                return 2;
            }
            s.page_size = (size_t)v;
            break;
        }
        case 'h': usage(stdout); return 0;
        case 'V': printf("toolgate-demo-atlassian %s\n", TG_VERSION); return 0;
        default:  usage(stderr); return 2;
        }
    }
    if (optind < argc) { usage(stderr); return 2; }

    s.loop = uv_default_loop();
    s.client_caps = json_object();
    s.subscriptions = json_object();
    (void)level_index("info", &s.log_level);
    s.tools = json_array();
    for (size_t i = 0; i < s.mode->ntools; i++)
        json_array_append_new(s.tools, named_def(s.mode->tools[i].name, s.mode->tools[i].def));
    s.prompts = json_array();
    for (size_t i = 0; i < s.mode->nprompts; i++)
        json_array_append_new(s.prompts,
                              named_def(s.mode->prompts[i].name, s.mode->prompts[i].def));
    s.templates = demo_def_parse(s.mode->templates_def);
    s.state = s.mode->init(&s);

    tg_error err;
    int status = 0;
    if (!s.state) {
        tg_log_error("demo", "cannot set up the demo state");
        status = 1;
    } else if (open_stdin(&s, &err) < 0) {
        tg_log_error("demo", "%s", err.msg);
        status = 1;
    } else {
        uv_run(s.loop, UV_RUN_DEFAULT);
    }
    shutdown_server(&s);
    uv_run(s.loop, UV_RUN_DEFAULT);   /* let the close callbacks run */
    if (s.state) s.mode->fini(s.state);
    json_decref(s.tools);
    json_decref(s.prompts);
    json_decref(s.templates);
    json_decref(s.client_caps);
    json_decref(s.subscriptions);
    tg_buf_free(&s.inbuf);
    uv_loop_close(s.loop);
    return status;
}
