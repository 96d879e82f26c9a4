/*
 * fake_upstream.c — a small stdio MCP server the router tests run behind toolgate.
 * One JSON-RPC message per line on stdin/stdout. Tools:
 *   echo      {text, delay_ms?}  answers "echo:<text>" (after delay_ms, so concurrent
 *                                calls can overlap and finish out of order)
 *   progress  sends notifications/progress (if a token came) before answering
 *   sample    asks the client sampling/createMessage and answers with its text
 *   hang      never answers
 *   crash     exits with status 1 mid-call
 *   change    sends notifications/tools/list_changed, then answers (unlisted)
 *   whoami    answers the clientInfo.name and protocolVersion it was initialised with
 * tools/list answers in two pages (cursor "p2"). Prompts: "greet". Resources: "fake://readme". Every message received is appended to
 * the file named by FAKE_LOG (if set), so tests can see exactly what reached upstream.
 */
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct delayed {
    long long due_ms;
    char *line;
} delayed;

static delayed later[64];
static size_t nlater;
static json_t *sample_waiting; /* the tools/call id waiting for the sampling answer */
static char client_name[128] = "?";
static char client_version[32] = "?";

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void emit(json_t *msg)
{
    char *s = json_dumps(msg, JSON_COMPACT);
    printf("%s\n", s);
    fflush(stdout);
    free(s);
    json_decref(msg);
}

static json_t *text_result(const char *text)
{
    return json_pack("{s:[{s:s,s:s}]}", "content", "type", "text", "text", text);
}

static void reply(json_t *id, json_t *result)
{
    emit(json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result", result));
}

static void tool_call(json_t *id, json_t *params)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    json_t *args = json_object_get(params, "arguments");
    if (!name) name = "";
    if (strcmp(name, "echo") == 0) {
        const char *text = json_string_value(json_object_get(args, "text"));
        char buf[512];
        snprintf(buf, sizeof buf, "echo:%s", text ? text : "");
        json_int_t delay = json_integer_value(json_object_get(args, "delay_ms"));
        json_t *msg = json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result",
                                text_result(buf));
        if (delay > 0 && nlater < 64) {
            later[nlater].due_ms = now_ms() + delay;
            later[nlater++].line = json_dumps(msg, JSON_COMPACT);
            json_decref(msg);
        } else {
            emit(msg);
        }
    } else if (strcmp(name, "progress") == 0) {
        json_t *token = json_object_get(json_object_get(params, "_meta"), "progressToken");
        if (token)
            emit(json_pack("{s:s,s:s,s:{s:O,s:i,s:i}}", "jsonrpc", "2.0", "method",
                           "notifications/progress", "params", "progressToken", token,
                           "progress", 1, "total", 2));
        /* a token nobody issued: must be dropped by the gateway */
        emit(json_pack("{s:s,s:s,s:{s:i,s:i}}", "jsonrpc", "2.0", "method",
                       "notifications/progress", "params", "progressToken", 999999, "progress", 1));
        reply(id, text_result("progress done"));
    } else if (strcmp(name, "sample") == 0) {
        sample_waiting = json_incref(id);
        emit(json_pack("{s:s,s:s,s:s,s:{s:[{s:s,s:{s:s,s:s}}],s:i}}", "jsonrpc", "2.0", "id",
                       "up-1", "method", "sampling/createMessage", "params", "messages", "role",
                       "user", "content", "type", "text", "text", "say hi", "maxTokens", 10));
    } else if (strcmp(name, "hang") == 0) {
        /* never answers */
    } else if (strcmp(name, "crash") == 0) {
        exit(1);
    } else if (strcmp(name, "change") == 0) {
        emit(json_pack("{s:s,s:s}", "jsonrpc", "2.0", "method", "notifications/tools/list_changed"));
        reply(id, text_result("changed"));
    } else if (strcmp(name, "whoami") == 0) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s %s", client_name, client_version);
        reply(id, text_result(buf));
    } else {
        emit(json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id, "error", "code",
                       -32602, "message", "Unknown tool"));
    }
}

static json_t *tool(const char *name)
{
    return json_pack("{s:s,s:{s:s}}", "name", name, "inputSchema", "type", "object");
}

static void handle(json_t *msg)
{
    json_t *id = json_object_get(msg, "id");
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *params = json_object_get(msg, "params");
    if (!method) { /* a response: the sampling answer */
        if (sample_waiting && json_is_string(id) && strcmp(json_string_value(id), "up-1") == 0) {
            json_t *text = json_object_get(json_object_get(json_object_get(msg, "result"),
                                                           "content"), "text");
            char buf[256];
            snprintf(buf, sizeof buf, "sampled:%s", text ? json_string_value(text) : "(error)");
            reply(sample_waiting, text_result(buf));
            json_decref(sample_waiting);
            sample_waiting = NULL;
        }
        return;
    }
    if (!id) return; /* notifications */
    if (strcmp(method, "initialize") == 0) {
        json_t *info = json_object_get(params, "clientInfo");
        snprintf(client_name, sizeof client_name, "%s",
                 json_string_value(json_object_get(info, "name")));
        snprintf(client_version, sizeof client_version, "%s",
                 json_string_value(json_object_get(params, "protocolVersion")));
        reply(id, json_pack("{s:O,s:{s:{s:b},s:{},s:{}},s:{s:s,s:s},s:s}", "protocolVersion",
                            json_object_get(params, "protocolVersion"), "capabilities", "tools",
                            "listChanged", 1, "prompts", "resources", "serverInfo", "name",
                            "fake-upstream", "version", "9.9", "instructions", "be nice"));
    } else if (strcmp(method, "ping") == 0) {
        reply(id, json_object());
    } else if (strcmp(method, "tools/list") == 0) {
        /* two pages, so cursors are exercised */
        const char *cursor = json_string_value(json_object_get(params, "cursor"));
        if (!cursor)
            reply(id, json_pack("{s:[o,o,o,o],s:s}", "tools", tool("echo"), tool("progress"),
                                tool("sample"), tool("hang"), "nextCursor", "p2"));
        else if (strcmp(cursor, "p2") == 0)
            reply(id, json_pack("{s:[o,o]}", "tools", tool("crash"), tool("whoami")));
        else
            emit(json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id, "error", "code",
                           -32602, "message", "Invalid cursor"));
    } else if (strcmp(method, "tools/call") == 0) {
        tool_call(id, params);
    } else if (strcmp(method, "prompts/list") == 0) {
        reply(id, json_pack("{s:[{s:s}]}", "prompts", "name", "greet"));
    } else if (strcmp(method, "prompts/get") == 0) {
        reply(id, json_pack("{s:[{s:s,s:{s:s,s:s}}]}", "messages", "role", "user", "content",
                            "type", "text", "text", "hello"));
    } else if (strcmp(method, "resources/list") == 0) {
        reply(id, json_pack("{s:[{s:s,s:s}]}", "resources", "uri", "fake://readme", "name",
                            "readme"));
    } else if (strcmp(method, "resources/read") == 0) {
        reply(id, json_pack("{s:[{s:O,s:s}]}", "contents", "uri", json_object_get(params, "uri"),
                            "text", "read me"));
    } else {
        emit(json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id, "error", "code",
                       -32601, "message", "Method not found"));
    }
}

int main(void)
{
    const char *logpath = getenv("FAKE_LOG");
    FILE *log = logpath ? fopen(logpath, "a") : NULL;
    char *line = NULL;
    size_t cap = 0, len = 0;
    char buf[65536];
    for (;;) {
        int timeout = -1;
        long long now = now_ms();
        for (size_t i = 0; i < nlater; i++) {
            long long d = later[i].due_ms - now;
            if (d < 0) d = 0;
            if (timeout < 0 || d < timeout) timeout = (int)d;
        }
        struct pollfd pfd = {0, POLLIN, 0};
        int r = poll(&pfd, 1, timeout);
        now = now_ms();
        for (size_t i = 0; i < nlater;) {
            if (later[i].due_ms <= now) {
                printf("%s\n", later[i].line);
                fflush(stdout);
                free(later[i].line);
                later[i] = later[--nlater];
            } else {
                i++;
            }
        }
        if (r <= 0) continue;
        ssize_t n = read(0, buf, sizeof buf);
        if (n <= 0) break;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (len + 1 >= cap) {
                    cap = cap ? cap * 2 : 4096;
                    line = realloc(line, cap);
                }
                line[len++] = buf[i];
                continue;
            }
            line[len] = '\0';
            if (log) {
                fprintf(log, "%s\n", line);
                fflush(log);
            }
            json_t *msg = json_loads(line, 0, NULL);
            if (msg) handle(msg);
            json_decref(msg);
            len = 0;
        }
    }
    free(line);
    return 0;
}
