/*
 * test_demo.c — drives toolgate-demo-atlassian over pipes, as an MCP client would, and
 * checks what the e2e tests and the demo rely on: the lifecycle, the tool catalogue
 * and pagination, state changes visible in later reads, protocol errors versus
 * isError results, strict parsing, credentials reported by presence only, resources
 * and subscriptions, and (--conformance) interleaving of server→client requests,
 * progress and cancellation. Every test also requires a clean exit (status 0) when
 * stdin closes, which under ASan means no leaks.
 *
 * usage: test_demo PATH-TO-toolgate-demo-atlassian
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/tg_common.h"

#define WAIT_MS 5000

extern char **environ;
static const char *demo_bin;

typedef struct peer {
    pid_t  pid;
    int    to;      /* child's stdin */
    int    from;    /* child's stdout */
    tg_buf buf;
} peer;

static void peer_start_env(peer *p, const char *mode_arg, const char *mode_arg2, char **envp)
{
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]); close(in[1]); close(out[0]); close(out[1]);
        char *argv[] = { (char *)demo_bin, (char *)mode_arg, (char *)mode_arg2, NULL };
        execve(demo_bin, argv, envp);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    p->to = in[1];
    p->from = out[0];
    p->buf = (tg_buf)TG_BUF_INIT;
}

static void peer_start(peer *p, const char *mode_arg, const char *mode_arg2)
{
    peer_start_env(p, mode_arg, mode_arg2, environ);
}

static void peer_send_raw(peer *p, const char *line)
{
    size_t n = strlen(line);
    assert_int_equal(write(p->to, line, n), (ssize_t)n);
    assert_int_equal(write(p->to, "\n", 1), 1);
}

static void peer_send(peer *p, const char *fmt, ...)
{
    char *line = NULL;
    va_list ap;
    va_start(ap, fmt);
    assert_true(vasprintf(&line, fmt, ap) >= 0);
    va_end(ap);
    peer_send_raw(p, line);
    free(line);
}

/* Next message from the server, or NULL if none arrives within ms. */
static json_t *peer_recv_within(peer *p, int ms)
{
    uint64_t deadline = tg_now_ms() + (uint64_t)ms;
    for (;;) {
        char *nl = p->buf.len ? memchr(p->buf.data, '\n', p->buf.len) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - p->buf.data);
            tg_error err;
            json_t *msg = tg_json_parse(p->buf.data, n, TG_JSON_MAX_DEPTH, &err);
            if (!msg) fail_msg("server sent a non-JSON line: %.*s (%s)", (int)n, p->buf.data, err.msg);
            tg_buf_consume(&p->buf, n + 1);
            return msg;
        }
        uint64_t now = tg_now_ms();
        if (now >= deadline) return NULL;
        struct pollfd pfd = { .fd = p->from, .events = POLLIN };
        int r = poll(&pfd, 1, (int)(deadline - now));
        if (r <= 0) continue;
        char chunk[65536];
        ssize_t got = read(p->from, chunk, sizeof chunk);
        if (got <= 0) return NULL;
        tg_buf_append(&p->buf, chunk, (size_t)got);
    }
}

static json_t *peer_recv(peer *p)
{
    json_t *m = peer_recv_within(p, WAIT_MS);
    if (!m) fail_msg("no message from the server within %d ms", WAIT_MS);
    return m;
}

/* The response to request `id`; notifications before it are appended to `notes`
 * (if given) or dropped. A server request in between fails the test. */
static json_t *peer_response(peer *p, json_int_t id, json_t *notes)
{
    for (;;) {
        json_t *m = peer_recv(p);
        json_t *mid = json_object_get(m, "id");
        if (json_is_integer(mid) && json_integer_value(mid) == id && !json_object_get(m, "method"))
            return m;
        if (json_object_get(m, "id")) fail_msg("unexpected message while waiting for %lld",
                                               (long long)id);
        if (notes) json_array_append(notes, m);
        json_decref(m);
    }
}

/* Closes stdin and requires a prompt, clean exit. */
static void peer_stop(peer *p)
{
    close(p->to);
    int status = 0;
    pid_t r = 0;
    for (int i = 0; i < 500 && (r = waitpid(p->pid, &status, WNOHANG)) == 0; i++)
        usleep(10000);
    if (r == 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &status, 0);
        fail_msg("the server did not exit after stdin closed");
    }
    close(p->from);
    tg_buf_free(&p->buf);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static json_t *initialize(peer *p, const char *version, const char *caps)
{
    peer_send(p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
                 "\"protocolVersion\":\"%s\",\"capabilities\":%s,"
                 "\"clientInfo\":{\"name\":\"test\",\"version\":\"1\"}}}", version, caps);
    json_t *r = peer_response(p, 1, NULL);
    peer_send_raw(p, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    return r;
}

static void start_ready(peer *p, const char *arg1, const char *arg2)
{
    peer_start(p, arg1, arg2);
    json_decref(initialize(p, "2025-11-25", "{\"sampling\":{},\"elicitation\":{}}"));
}

/* Calls a tool; returns the whole response. args is JSON text. */
static json_t *call(peer *p, json_int_t id, const char *tool, const char *args, json_t *notes)
{
    peer_send(p, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"tools/call\","
                 "\"params\":{\"name\":\"%s\",\"arguments\":%s}}", (long long)id, tool, args);
    return peer_response(p, id, notes);
}

/* Calls a tool that must succeed; returns its text content parsed as JSON. */
static json_t *call_ok(peer *p, json_int_t id, const char *tool, const char *args)
{
    json_t *r = call(p, id, tool, args, NULL);
    json_t *res = json_object_get(r, "result");
    if (!res || json_is_true(json_object_get(res, "isError")))
        fail_msg("%s failed: %s", tool, tg_json_dump(r, NULL));
    const char *text = json_string_value(json_object_get(
        json_array_get(json_object_get(res, "content"), 0), "text"));
    assert_non_null(text);
    tg_error err;
    json_t *v = tg_json_parse(text, strlen(text), TG_JSON_MAX_DEPTH, &err);
    assert_non_null(v);
    json_decref(r);
    return v;
}

/* Calls a tool that must fail with isError; returns the message. Caller frees. */
static char *call_fails(peer *p, json_int_t id, const char *tool, const char *args)
{
    json_t *r = call(p, id, tool, args, NULL);
    json_t *res = json_object_get(r, "result");
    if (!res || !json_is_true(json_object_get(res, "isError")))
        fail_msg("%s should have failed with isError: %s", tool, tg_json_dump(r, NULL));
    char *msg = strdup(json_string_value(json_object_get(
        json_array_get(json_object_get(res, "content"), 0), "text")));
    json_decref(r);
    return msg;
}

static json_int_t error_code(const json_t *r)
{
    const json_t *e = json_object_get(r, "error");
    if (!e) fail_msg("expected a JSON-RPC error, got %s", tg_json_dump(r, NULL));
    return json_integer_value(json_object_get(e, "code"));
}

static const char *sget(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* ------------------------------------------------------------------ tests */

static void test_initialize_negotiates_version(void **state)
{
    peer p;
    peer_start(&p, NULL, NULL);
    json_t *r = initialize(&p, "2025-06-18", "{}");
    json_t *res = json_object_get(r, "result");
    assert_string_equal(sget(res, "protocolVersion"), "2025-06-18");
    assert_string_equal(sget(json_object_get(res, "serverInfo"), "name"), "demo-atlassian");
    json_t *caps = json_object_get(res, "capabilities");
    assert_true(json_is_true(json_object_get(json_object_get(caps, "tools"), "listChanged")));
    assert_non_null(json_object_get(caps, "resources"));
    assert_non_null(json_object_get(caps, "prompts"));
    assert_non_null(json_object_get(caps, "logging"));
    json_decref(r);
    peer_stop(&p);

    peer_start(&p, NULL, NULL);
    r = initialize(&p, "1999-01-01", "{}");
    assert_string_equal(sget(json_object_get(r, "result"), "protocolVersion"), "2025-11-25");
    json_decref(r);
    peer_stop(&p);
}

static void test_requests_before_initialize(void **state)
{
    peer p;
    peer_start(&p, NULL, NULL);
    peer_send_raw(&p, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/list\"}");
    json_t *r = peer_response(&p, 5, NULL);
    assert_int_equal(error_code(r), TG_RPC_INVALID_REQUEST);
    json_decref(r);
    peer_send_raw(&p, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"ping\"}");
    r = peer_response(&p, 6, NULL);
    assert_int_equal(json_object_size(json_object_get(r, "result")), 0);
    assert_non_null(json_object_get(r, "result"));
    json_decref(r);
    peer_stop(&p);
}

static const char *const expected_tools[] = {
    "jira_get_issue", "jira_search", "jira_create_issue", "jira_update_issue",
    "jira_get_transitions", "jira_transition_issue", "jira_add_comment",
    "confluence_search", "confluence_get_page", "confluence_create_page",
    "confluence_update_page", "bitbucket_list_repositories", "bitbucket_list_branches",
    "bitbucket_get_branch", "bitbucket_create_branch", "bitbucket_list_pull_requests",
    "bitbucket_get_pull_request", "bitbucket_create_pull_request",
    "bitbucket_merge_pull_request", "demo_whoami",
};
#define NTOOLS (sizeof expected_tools / sizeof expected_tools[0])

static const json_t *find_named(const json_t *arr, const char *name)
{
    size_t i;
    const json_t *t;
    json_array_foreach(arr, i, t)
        if (!strcmp(sget(t, "name"), name)) return t;
    return NULL;
}

static void test_tools_list_catalogue(void **state)
{
    peer p;
    start_ready(&p, NULL, NULL);
    peer_send_raw(&p, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}");
    json_t *r = peer_response(&p, 2, NULL);
    json_t *tools = json_object_get(json_object_get(r, "result"), "tools");
    assert_int_equal(json_array_size(tools), NTOOLS);
    assert_null(json_object_get(json_object_get(r, "result"), "nextCursor"));
    for (size_t i = 0; i < NTOOLS; i++) {
        const json_t *t = find_named(tools, expected_tools[i]);
        if (!t) fail_msg("tool %s missing", expected_tools[i]);
        assert_string_equal(sget(json_object_get(t, "inputSchema"), "type"), "object");
        assert_non_null(sget(t, "description"));
        assert_true(json_is_boolean(json_object_get(json_object_get(t, "annotations"), "readOnlyHint")));
    }
    const json_t *get = find_named(tools, "jira_get_issue");
    assert_true(json_is_true(json_object_get(json_object_get(get, "annotations"), "readOnlyHint")));
    const json_t *req = json_object_get(json_object_get(get, "inputSchema"), "required");
    assert_string_equal(json_string_value(json_array_get(req, 0)), "issue_key");
    const json_t *merge = find_named(tools, "bitbucket_merge_pull_request");
    assert_true(json_is_true(json_object_get(json_object_get(merge, "annotations"), "destructiveHint")));
    json_decref(r);
    peer_stop(&p);
}

static void test_tools_list_pagination(void **state)
{
    peer p;
    start_ready(&p, "--page-size", "6");
    json_t *seen = json_array();
    json_t *cursor = NULL;
    int pages = 0;
    for (json_int_t id = 10; pages < 10; id++, pages++) {
        if (cursor)
            peer_send(&p, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"tools/list\","
                          "\"params\":{\"cursor\":\"%s\"}}", (long long)id, json_string_value(cursor));
        else
            peer_send(&p, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"tools/list\"}", (long long)id);
        json_t *r = peer_response(&p, id, NULL);
        json_t *res = json_object_get(r, "result");
        assert_true(json_array_size(json_object_get(res, "tools")) <= 6);
        json_array_extend(seen, json_object_get(res, "tools"));
        json_decref(cursor);
        cursor = json_incref(json_object_get(res, "nextCursor"));
        json_decref(r);
        if (!cursor) break;
    }
    assert_int_equal(pages, (NTOOLS + 5) / 6 - 1);
    assert_int_equal(json_array_size(seen), NTOOLS);
    json_decref(seen);
    peer_send_raw(&p, "{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"tools/list\",\"params\":{\"cursor\":\"zz\"}}");
    json_t *r = peer_response(&p, 99, NULL);
    assert_int_equal(error_code(r), TG_RPC_INVALID_PARAMS);
    json_decref(r);
    peer_stop(&p);
}

static void test_jira_state_changes(void **state)
{
    peer p;
    start_ready(&p, NULL, NULL);
    json_t *v = call_ok(&p, 2, "jira_create_issue",
        "{\"project_key\":\"OPS\",\"summary\":\"Replace disk on db-3\",\"issue_type\":\"Task\","
        "\"additional_fields\":{\"priority\":\"High\",\"labels\":[\"hw\"]}}");
    json_t *issue = json_object_get(v, "issue");
    assert_string_equal(sget(issue, "key"), "OPS-4");
    assert_string_equal(sget(issue, "status"), "To Do");
    assert_string_equal(sget(issue, "priority"), "High");
    json_decref(v);

    v = call_ok(&p, 3, "jira_get_issue", "{\"issue_key\":\"OPS-4\"}");
    assert_string_equal(sget(v, "summary"), "Replace disk on db-3");
    json_decref(v);

    v = call_ok(&p, 4, "jira_get_transitions", "{\"issue_key\":\"OPS-4\"}");
    assert_non_null(find_named(v, "Start Progress"));
    json_decref(v);
    v = call_ok(&p, 5, "jira_transition_issue",
                "{\"issue_key\":\"OPS-4\",\"transition_id\":\"11\",\"comment\":\"on it\"}");
    json_decref(v);
    v = call_ok(&p, 6, "jira_add_comment", "{\"issue_key\":\"OPS-4\",\"comment\":\"ordered the disk\"}");
    json_decref(v);
    v = call_ok(&p, 7, "jira_update_issue",
                "{\"issue_key\":\"OPS-4\",\"fields\":{\"assignee\":\"alice\"}}");
    json_decref(v);

    v = call_ok(&p, 8, "jira_get_issue", "{\"issue_key\":\"OPS-4\"}");
    assert_string_equal(sget(v, "status"), "In Progress");
    assert_string_equal(sget(v, "assignee"), "alice");
    json_t *comments = json_object_get(v, "comments");
    assert_int_equal(json_array_size(comments), 2);
    assert_string_equal(sget(json_array_get(comments, 1), "body"), "ordered the disk");
    json_decref(v);

    v = call_ok(&p, 9, "jira_search", "{\"jql\":\"project = OPS AND status = 'In Progress'\"}");
    assert_int_equal(json_integer_value(json_object_get(v, "total")), 2);
    json_decref(v);

    /* A transition not available from the current status changes nothing. */
    char *msg = call_fails(&p, 10, "jira_transition_issue",
                           "{\"issue_key\":\"OPS-4\",\"transition_id\":\"41\"}");
    assert_non_null(strstr(msg, "not available"));
    free(msg);
    v = call_ok(&p, 11, "jira_get_issue", "{\"issue_key\":\"OPS-4\",\"fields\":\"status\"}");
    assert_string_equal(sget(v, "status"), "In Progress");
    assert_null(json_object_get(v, "summary"));
    json_decref(v);
    peer_stop(&p);
}

static void test_confluence_and_bitbucket_state_changes(void **state)
{
    peer p;
    start_ready(&p, NULL, NULL);
    json_t *v = call_ok(&p, 2, "confluence_create_page",
        "{\"space_key\":\"ENG\",\"title\":\"Gateway rollout\",\"content\":\"Week 1: staging\"}");
    const char *id = sget(json_object_get(v, "page"), "id");
    char args[128];
    snprintf(args, sizeof args, "{\"page_id\":\"%s\",\"title\":\"Gateway rollout\",\"content\":\"Week 2: prod\"}", id);
    json_t *u = call_ok(&p, 3, "confluence_update_page", args);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(u, "page"), "version")), 2);
    json_decref(u);
    snprintf(args, sizeof args, "{\"page_id\":\"%s\"}", id);
    u = call_ok(&p, 4, "confluence_get_page", args);
    assert_string_equal(sget(json_object_get(u, "metadata"), "content"), "Week 2: prod");
    json_decref(u);
    json_decref(v);
    v = call_ok(&p, 5, "confluence_search", "{\"query\":\"rollout\",\"spaces_filter\":\"ENG\"}");
    assert_int_equal(json_array_size(v), 1);
    json_decref(v);

    v = call_ok(&p, 6, "bitbucket_merge_pull_request",
                "{\"workspace\":\"acme\",\"repo_slug\":\"api\",\"pull_request_id\":1}");
    assert_string_equal(sget(v, "state"), "MERGED");
    json_decref(v);
    v = call_ok(&p, 7, "bitbucket_get_pull_request",
                "{\"workspace\":\"acme\",\"repo_slug\":\"api\",\"pull_request_id\":1}");
    assert_string_equal(sget(v, "state"), "MERGED");
    json_decref(v);
    char *msg = call_fails(&p, 8, "bitbucket_merge_pull_request",
                           "{\"workspace\":\"acme\",\"repo_slug\":\"api\",\"pull_request_id\":1}");
    assert_non_null(strstr(msg, "MERGED"));
    free(msg);
    /* The other repository was not touched. */
    v = call_ok(&p, 9, "bitbucket_list_pull_requests", "{\"workspace\":\"acme\",\"repo_slug\":\"web\"}");
    assert_int_equal(json_array_size(json_object_get(v, "pull_requests")), 1);
    json_decref(v);
    v = call_ok(&p, 10, "bitbucket_create_branch",
                "{\"workspace\":\"acme\",\"repo_slug\":\"web\",\"branch\":\"feature/x\"}");
    json_decref(v);
    v = call_ok(&p, 11, "bitbucket_get_branch",
                "{\"workspace\":\"acme\",\"repo_slug\":\"web\",\"branch\":\"feature/x\"}");
    assert_string_equal(sget(v, "name"), "feature/x");
    json_decref(v);
    peer_stop(&p);
}

static void test_unknown_tool_is_protocol_error(void **state)
{
    peer p;
    start_ready(&p, NULL, NULL);
    json_t *r = call(&p, 2, "jira_delete_everything", "{}", NULL);
    assert_int_equal(error_code(r), TG_RPC_INVALID_PARAMS);
    json_decref(r);
    peer_send_raw(&p, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"jira_search\",\"arguments\":[1]}}");
    r = peer_response(&p, 3, NULL);
    assert_int_equal(error_code(r), TG_RPC_INVALID_PARAMS);
    json_decref(r);
    peer_send_raw(&p, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"jira/secret\"}");
    r = peer_response(&p, 4, NULL);
    assert_int_equal(error_code(r), TG_RPC_METHOD_NOT_FOUND);
    json_decref(r);
    peer_stop(&p);
}

static void test_invalid_arguments_are_tool_errors(void **state)
{
    peer p;
    start_ready(&p, NULL, NULL);
    static const char *const cases[][3] = {
        { "jira_get_issue", "{}", "missing required argument 'issue_key'" },
        { "jira_get_issue", "{\"issue_key\":42}", "must be of type string" },
        { "jira_get_issue", "{\"issue_key\":\"OPS-1\",\"sudo\":true}", "unexpected argument 'sudo'" },
        { "jira_get_issue", "{\"issue_key\":\"NOPE-9\"}", "does not exist" },
        { "jira_create_issue", "{\"project_key\":\"HR\",\"summary\":\"x\",\"issue_type\":\"Task\"}", "does not exist" },
        { "jira_create_issue", "{\"project_key\":\"OPS\",\"summary\":\"x\",\"issue_type\":\"Saga\"}", "must be one of" },
        { "jira_update_issue", "{\"issue_key\":\"OPS-1\",\"fields\":{\"status\":\"Done\"}}", "unexpected argument 'status'" },
        { "jira_search", "{\"jql\":\"project = OPS OR project = FIN\"}", "only AND" },
        { "bitbucket_merge_pull_request", "{\"workspace\":\"acme\",\"repo_slug\":\"api\",\"pull_request_id\":0}", "at least 1" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *msg = call_fails(&p, (json_int_t)(10 + i), cases[i][0], cases[i][1]);
        if (!strstr(msg, cases[i][2]))
            fail_msg("%s %s: message '%s' lacks '%s'", cases[i][0], cases[i][1], msg, cases[i][2]);
        free(msg);
    }
    /* None of these changed anything: OPS-1 is as seeded and OPS has no 4th issue. */
    json_t *v = call_ok(&p, 50, "jira_search", "{\"jql\":\"project = OPS\"}");
    assert_int_equal(json_integer_value(json_object_get(v, "total")), 3);
    json_decref(v);
    peer_stop(&p);
}

static void test_whoami_reports_presence_not_values(void **state)
{
    char *envp[] = { "JIRA_API_TOKEN=s3cr3t-jira-value", "DEMO_EXTRA=1", NULL };
    peer p;
    peer_start_env(&p, NULL, NULL, envp);
    json_decref(initialize(&p, "2025-11-25", "{}"));
    json_t *r = call(&p, 2, "demo_whoami", "{}", NULL);
    char *all = tg_json_dump(r, NULL);
    assert_null(strstr(all, "s3cr3t"));
    free(all);
    json_decref(r);
    json_t *v = call_ok(&p, 3, "demo_whoami", "{}");
    json_t *creds = json_object_get(v, "credentials");
    assert_true(json_is_true(json_object_get(creds, "JIRA_API_TOKEN")));
    assert_true(json_is_false(json_object_get(creds, "BITBUCKET_TOKEN")));
    assert_true(json_is_false(json_object_get(creds, "CONFLUENCE_API_TOKEN")));
    json_t *want = json_pack("[s,s]", "DEMO_EXTRA", "JIRA_API_TOKEN");
    assert_true(json_equal(json_object_get(v, "environment"), want));
    json_decref(want);
    json_decref(v);
    peer_stop(&p);
}

static void test_malformed_input(void **state)
{
    peer p;
    start_ready(&p, NULL, NULL);
    static const char *const bad[] = {
        "{not json",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"ping\"}",   /* duplicate key */
        "{\"jsonrpc\":\"2.0\",\"id\":99999999999999999999,\"method\":\"ping\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        peer_send_raw(&p, bad[i]);
        json_t *m = peer_recv(&p);
        assert_int_equal(error_code(m), TG_RPC_PARSE_ERROR);
        assert_true(json_is_null(json_object_get(m, "id")));
        json_decref(m);
    }
    peer_send_raw(&p, "{\"jsonrpc\":\"1.0\",\"id\":7,\"method\":\"ping\"}");
    json_t *m = peer_recv(&p);
    assert_int_equal(error_code(m), TG_RPC_INVALID_REQUEST);
    assert_int_equal(json_integer_value(json_object_get(m, "id")), 7);
    json_decref(m);
    /* Still serving. */
    peer_send_raw(&p, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"ping\"}");
    json_decref(peer_response(&p, 8, NULL));
    peer_stop(&p);
}

static void test_resources_and_subscriptions(void **state)
{
    peer p;
    start_ready(&p, NULL, NULL);
    peer_send_raw(&p, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"resources/read\",\"params\":{\"uri\":\"jira://issue/SEC-2\"}}");
    json_t *r = peer_response(&p, 2, NULL);
    const char *text = sget(json_array_get(json_object_get(json_object_get(r, "result"), "contents"), 0), "text");
    assert_non_null(strstr(text, "CVE-2026-1234"));
    json_decref(r);
    peer_send_raw(&p, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"resources/read\",\"params\":{\"uri\":\"jira://issue/SEC-99\"}}");
    r = peer_response(&p, 3, NULL);
    assert_int_equal(error_code(r), -32002);
    json_decref(r);
    peer_send_raw(&p, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"resources/subscribe\",\"params\":{\"uri\":\"jira://issue/SEC-2\"}}");
    json_decref(peer_response(&p, 4, NULL));
    json_t *notes = json_array();
    r = call(&p, 5, "jira_add_comment", "{\"issue_key\":\"SEC-2\",\"comment\":\"patched\"}", notes);
    json_decref(r);
    int updated = 0;
    size_t i;
    json_t *n;
    json_array_foreach(notes, i, n)
        if (!strcmp(sget(n, "method"), "notifications/resources/updated") &&
            !strcmp(sget(json_object_get(n, "params"), "uri"), "jira://issue/SEC-2")) updated = 1;
    assert_true(updated);
    json_decref(notes);
    peer_send_raw(&p, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"prompts/get\",\"params\":{\"name\":\"summarize_issue\",\"arguments\":{\"issue_key\":\"SEC-2\"}}}");
    r = peer_response(&p, 6, NULL);
    assert_int_equal(json_array_size(json_object_get(json_object_get(r, "result"), "messages")), 2);
    json_decref(r);
    peer_stop(&p);
}

/* --- conformance mode */

static void test_conformance_elicitation_interleaves(void **state)
{
    peer p;
    start_ready(&p, "--conformance", NULL);
    peer_send_raw(&p, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":"
                      "{\"name\":\"test_elicitation\",\"arguments\":{\"message\":\"who are you?\"}}}");
    json_t *req = peer_recv(&p);
    assert_string_equal(sget(req, "method"), "elicitation/create");
    assert_string_equal(sget(json_object_get(req, "params"), "message"), "who are you?");
    /* While the tool waits for the client, other requests are answered. */
    peer_send_raw(&p, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}");
    json_decref(peer_response(&p, 3, NULL));
    char *rid = tg_json_dump(json_object_get(req, "id"), NULL);
    peer_send(&p, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"action\":\"accept\","
                  "\"content\":{\"username\":\"ann\",\"email\":\"ann@example.com\"}}}", rid);
    free(rid);
    json_decref(req);
    json_t *r = peer_response(&p, 2, NULL);
    const char *text = sget(json_array_get(json_object_get(json_object_get(r, "result"), "content"), 0), "text");
    assert_non_null(strstr(text, "action=accept"));
    assert_non_null(strstr(text, "ann@example.com"));
    json_decref(r);
    peer_stop(&p);
}

static void test_conformance_progress_in_order(void **state)
{
    peer p;
    start_ready(&p, "--conformance", NULL);
    peer_send_raw(&p, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":"
                      "{\"name\":\"test_tool_with_progress\",\"arguments\":{},\"_meta\":{\"progressToken\":\"tok\"}}}");
    json_t *notes = json_array();
    json_t *r = peer_response(&p, 2, notes);
    assert_int_equal(json_array_size(notes), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *pp = json_object_get(json_array_get(notes, i), "params");
        assert_string_equal(sget(pp, "progressToken"), "tok");
        assert_int_equal((int)json_number_value(json_object_get(pp, "progress")), (int)(i * 50));
    }
    json_decref(notes);
    json_decref(r);
    peer_stop(&p);
}

static void test_conformance_cancel_and_no_sampling_capability(void **state)
{
    peer p;
    start_ready(&p, "--conformance", NULL);
    peer_send_raw(&p, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":"
                      "{\"name\":\"test_tool_with_logging\",\"arguments\":{}}}");
    peer_send_raw(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":2}}");
    peer_send_raw(&p, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}");
    json_decref(peer_response(&p, 3, NULL));
    /* No answer for the cancelled call, even after it would have finished. */
    json_t *m;
    while ((m = peer_recv_within(&p, 300)) != NULL) {
        assert_null(json_object_get(m, "id"));
        json_decref(m);
    }
    peer_stop(&p);

    peer_start(&p, "--conformance", NULL);
    json_decref(initialize(&p, "2025-11-25", "{}"));
    char *msg = call_fails(&p, 2, "test_sampling", "{\"prompt\":\"hi\"}");
    assert_non_null(strstr(msg, "sampling"));
    free(msg);
    peer_stop(&p);
}

int main(int argc, char **argv)
{
    demo_bin = argc > 1 ? argv[1] : getenv("DEMO_BIN");
    if (!demo_bin) {
        fprintf(stderr, "usage: test_demo PATH-TO-toolgate-demo-atlassian\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_initialize_negotiates_version),
        cmocka_unit_test(test_requests_before_initialize),
        cmocka_unit_test(test_tools_list_catalogue),
        cmocka_unit_test(test_tools_list_pagination),
        cmocka_unit_test(test_jira_state_changes),
        cmocka_unit_test(test_confluence_and_bitbucket_state_changes),
        cmocka_unit_test(test_unknown_tool_is_protocol_error),
        cmocka_unit_test(test_invalid_arguments_are_tool_errors),
        cmocka_unit_test(test_whoami_reports_presence_not_values),
        cmocka_unit_test(test_malformed_input),
        cmocka_unit_test(test_resources_and_subscriptions),
        cmocka_unit_test(test_conformance_elicitation_interleaves),
        cmocka_unit_test(test_conformance_progress_in_order),
        cmocka_unit_test(test_conformance_cancel_and_no_sampling_capability),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
