/*
 * fake_stdio_server.c — a scriptable stand-in for an MCP stdio server, used by
 * test_upstream_stdio to drive the stdio transport through its cases.
 *
 * Reads one JSON-RPC request per line on stdin and answers by method:
 *   echo     → result {"echo": params}
 *   env      → result {"value": getenv(params.name) or null, "count": entries in environ}
 *   pid      → result {"pid": getpid()}
 *   invalid  → first prints a non-JSON line and a non-JSON-RPC object, then answers
 *   stderr   → writes params.text to stderr (params.repeat times, default 1), then answers
 *   hold     → no answer until the next request, which is answered first (out of order)
 *   exit     → exits with status params.code, without answering
 *   bigline  → writes params.bytes bytes of 'x' with no newline (a broken server)
 *   closeout → closes stdout and keeps running
 * Options: --crash-after N  exit(3) after answering N requests
 *          --ignore-sigterm ignore SIGTERM
 *          --ignore-eof     keep running (sleeping) after stdin reaches EOF
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) exit(10);
        p += w;
        n -= (size_t)w;
    }
}

static void send_result(json_t *id, json_t *result)
{
    json_t *r = json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result", result);
    char *s = json_dumps(r, JSON_COMPACT);
    write_all(1, s, strlen(s));
    write_all(1, "\n", 1);
    free(s);
    json_decref(r);
}

static json_t *answer(const char *method, json_t *params)
{
    if (strcmp(method, "env") == 0) {
        const char *v = getenv(json_string_value(json_object_get(params, "name")));
        int count = 0;
        for (char **e = environ; *e; e++) count++;
        return json_pack("{s:o,s:i}", "value", v ? json_string(v) : json_null(), "count", count);
    }
    if (strcmp(method, "pid") == 0) return json_pack("{s:i}", "pid", (int)getpid());
    if (strcmp(method, "invalid") == 0) {
        const char *bad = "this is not json\n{\"not\":\"json-rpc\"}\n";
        write_all(1, bad, strlen(bad));
    } else if (strcmp(method, "stderr") == 0) {
        const char *text = json_string_value(json_object_get(params, "text"));
        json_int_t repeat = json_integer_value(json_object_get(params, "repeat"));
        for (json_int_t i = 0; i < (repeat > 0 ? repeat : 1); i++)
            write_all(2, text, strlen(text));
        write_all(2, "\n", 1);
    } else if (strcmp(method, "exit") == 0) {
        exit((int)json_integer_value(json_object_get(params, "code")));
    } else if (strcmp(method, "bigline") == 0) {
        size_t n = (size_t)json_integer_value(json_object_get(params, "bytes"));
        char chunk[65536];
        memset(chunk, 'x', sizeof chunk);
        for (size_t done = 0; done < n; done += sizeof chunk) write_all(1, chunk, sizeof chunk);
        return NULL;
    } else if (strcmp(method, "closeout") == 0) {
        close(1);
        for (;;) pause();
    }
    return json_pack("{s:O}", "echo", params ? params : json_null());
}

int main(int argc, char **argv)
{
    long crash_after = -1;
    int ignore_eof = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--crash-after") == 0 && i + 1 < argc) crash_after = atol(argv[++i]);
        else if (strcmp(argv[i], "--ignore-sigterm") == 0) signal(SIGTERM, SIG_IGN);
        else if (strcmp(argv[i], "--ignore-eof") == 0) ignore_eof = 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long answered = 0;
    json_t *held_id = NULL, *held_result = NULL;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        json_t *req = json_loadb(line, (size_t)n, 0, NULL);
        if (!req) continue;
        const char *method = json_string_value(json_object_get(req, "method"));
        json_t *id = json_object_get(req, "id");
        if (!method || !id) {
            json_decref(req);
            continue;
        }
        json_t *result = answer(method, json_object_get(req, "params"));
        if (result && strcmp(method, "hold") == 0) {
            held_id = json_incref(id);
            held_result = result;
        } else if (result) {
            send_result(id, result);
            answered++;
            if (held_id) {
                send_result(held_id, held_result);
                json_decref(held_id);
                held_id = NULL;
                answered++;
            }
        }
        json_decref(req);
        if (crash_after >= 0 && answered >= crash_after) exit(3);
    }
    free(line);
    while (ignore_eof) pause();
    return 0;
}
