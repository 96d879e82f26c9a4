/*
 * test_admin.c — the admin listener (src/admin) over real sockets: the loop runs on a
 * thread, the test speaks raw HTTP/1.1 to it. Covers the token (missing, wrong, right,
 * wrong scheme), each route's method (405 with Allow), unknown paths (404), /readyz
 * ready and not, /reload success and refusal, and the `admin:` section's refusals of a
 * listener that would be reachable from the network without protection.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include <uv.h>

#include "admin/tg_admin.h"

#define TOKEN "t0ken-for-tests"

static uv_loop_t loop;
static uv_async_t stop_async;
static pthread_t loop_thread;
static tg_admin *adm;
static uint16_t port;
static tg_admin_conf conf;
static tg_limits limits;

/* What the ops answer: set by each test before it asks (read on the loop thread after
 * the request was sent, so the write happens-before through the socket). */
static volatile int is_ready = 1;
static volatile int reload_ok = 1;
static volatile int reloads;

static int op_reload(void *ctx, const char **version, tg_error *err)
{
    (void)ctx;
    reloads++;
    if (!reload_ok) return tg_error_set(err, "/etc/tg/policies/x.cedar:3:7: expected ';'");
    *version = "abc123";
    return 0;
}

static int op_ready(void *ctx, tg_buf *why)
{
    (void)ctx;
    if (!is_ready) tg_buf_printf(why, "atlassian: starting");
    return is_ready;
}

static void closed(void *arg)
{
    (void)arg;
}

static void on_stop(uv_async_t *h)
{
    tg_admin_close(adm, closed, NULL);
    uv_close((uv_handle_t *)h, NULL);
}

static void *run_loop(void *arg)
{
    (void)arg;
    uv_run(&loop, UV_RUN_DEFAULT);
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    uv_loop_init(&loop);
    conf = (tg_admin_conf){.where = "t.yaml:1:1", .listen_host = "127.0.0.1", .token = TOKEN};
    limits = (tg_limits){.max_body_bytes = 65536, .max_header_bytes = 16384, .max_headers = 64,
                         .max_connections = 16, .header_timeout_ms = 5000,
                         .body_timeout_ms = 5000, .idle_timeout_ms = 5000};
    tg_admin_ops ops = {.reload = op_reload, .ready = op_ready};   /* no approvals */
    adm = tg_admin_new(&loop, &conf, &limits, &ops);
    tg_error err;
    if (tg_admin_listen(adm, &err) < 0) fail_msg("%s", err.msg);
    port = tg_admin_port(adm);
    uv_async_init(&loop, &stop_async, on_stop);
    pthread_create(&loop_thread, NULL, run_loop, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    uv_async_send(&stop_async);
    pthread_join(loop_thread, NULL);
    tg_admin_free(adm);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    return 0;
}

/* One request on a new connection (Connection: close); the whole response back. */
static char *ask(const char *method, const char *path, const char *auth)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char req[512];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%s"
                     "Content-Length: 0\r\nConnection: close\r\n\r\n", method, path,
                     auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "");
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t cap = 8192, len = 0;
    char *out = calloc(1, cap);
    ssize_t r;
    while (len < cap - 1 && (r = read(fd, out + len, cap - 1 - len)) > 0) len += (size_t)r;
    close(fd);
    return out;
}

static int status_of(const char *resp)
{
    int st = 0;
    sscanf(resp, "HTTP/1.1 %d", &st);
    return st;
}

#define BEARER "Bearer " TOKEN

static void test_token(void **state)
{
    (void)state;
    char *r = ask("GET", "/healthz", NULL);
    assert_int_equal(status_of(r), 401);
    assert_non_null(strstr(r, "WWW-Authenticate: Bearer"));
    free(r);
    r = ask("GET", "/healthz", "Bearer t0ken-for-testz");
    assert_int_equal(status_of(r), 401);
    free(r);
    r = ask("GET", "/healthz", "Bearer t0ken-for-tests-and-more");
    assert_int_equal(status_of(r), 401);
    free(r);
    r = ask("GET", "/healthz", "Basic " TOKEN);
    assert_int_equal(status_of(r), 401);
    free(r);
    int before = reloads;
    r = ask("POST", "/reload", "Bearer wrong");
    assert_int_equal(status_of(r), 401);
    assert_int_equal(reloads, before);  /* nothing reloaded */
    free(r);
    r = ask("GET", "/healthz", BEARER);
    assert_int_equal(status_of(r), 200);
    assert_non_null(strstr(r, "\r\n\r\nok\n"));
    free(r);
}

static void test_methods_and_paths(void **state)
{
    (void)state;
    char *r = ask("POST", "/healthz", BEARER);
    assert_int_equal(status_of(r), 405);
    assert_non_null(strstr(r, "Allow: GET"));
    free(r);
    int before = reloads;
    r = ask("GET", "/reload", BEARER);
    assert_int_equal(status_of(r), 405);
    assert_non_null(strstr(r, "Allow: POST"));
    assert_int_equal(reloads, before);
    free(r);
    r = ask("GET", "/metrics", BEARER);
    assert_int_equal(status_of(r), 404);
    free(r);
    r = ask("GET", "/healthz/", BEARER);
    assert_int_equal(status_of(r), 404);
    free(r);
    /* Without an approvals service there are no approvers' routes and no inbox. */
    r = ask("GET", "/approvals", BEARER);
    assert_int_equal(status_of(r), 404);
    free(r);
    r = ask("GET", "/inbox", BEARER);
    assert_int_equal(status_of(r), 404);
    free(r);
    r = ask("GET", "/inbox", NULL);
    assert_int_equal(status_of(r), 401);
    free(r);
}

static void test_readyz(void **state)
{
    (void)state;
    is_ready = 1;
    char *r = ask("GET", "/readyz", BEARER);
    assert_int_equal(status_of(r), 200);
    free(r);
    is_ready = 0;
    r = ask("GET", "/readyz", BEARER);
    assert_int_equal(status_of(r), 503);
    assert_non_null(strstr(r, "atlassian: starting"));
    free(r);
    is_ready = 1;
}

static void test_reload(void **state)
{
    (void)state;
    reload_ok = 1;
    char *r = ask("POST", "/reload", BEARER);
    assert_int_equal(status_of(r), 200);
    assert_non_null(strstr(r, "{\"reloaded\":true,\"policy_version\":\"abc123\"}"));
    free(r);
    reload_ok = 0;
    r = ask("POST", "/reload", BEARER);
    assert_int_equal(status_of(r), 400);
    assert_non_null(strstr(r, "\"reloaded\":false"));
    assert_non_null(strstr(r, "x.cedar:3:7: expected ';'"));
    free(r);
    reload_ok = 1;
}

/* ------------------------------------------------------------ the admin: section */

static tg_config *load_text(const char *yaml, tg_error *err)
{
    char path[] = "/tmp/tg-admin-conf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    tg_config *cfg = tg_config_load(path, err);
    unlink(path);
    return cfg;
}

#define UP "upstreams:\n  - name: u\n    transport: stdio\n    command: [/bin/true]\n"

static void test_config(void **state)
{
    (void)state;
    tg_error err;
    tg_config *cfg = load_text(UP, &err);
    assert_non_null(cfg);
    assert_null(cfg->admin.where); /* off when absent */
    tg_config_unref(cfg);

    cfg = load_text(UP "admin: {}\n", &err);
    assert_non_null(cfg);
    assert_string_equal(cfg->admin.listen_host, "127.0.0.1");
    assert_int_equal(cfg->admin.listen_port, 9090);
    assert_null(cfg->admin.token);
    tg_config_unref(cfg);

    assert_null(load_text(UP "admin:\n  listen: 0.0.0.0:9090\n", &err));
    assert_non_null(strstr(err.msg, ":6:11: admin.listen: the admin listener can reload"));
    assert_null(load_text(UP "admin:\n  listen: 0.0.0.0:9090\n  allow_remote: true\n", &err));
    assert_non_null(strstr(err.msg, "a remote admin listener needs `token:`"));
    setenv("TG_TEST_ADMIN_TOKEN", "abc", 1);
    cfg = load_text(UP "admin:\n  listen: \"[::]:9091\"\n  allow_remote: true\n"
                    "  token: ${TG_TEST_ADMIN_TOKEN}\n", &err);
    if (!cfg) fail_msg("%s", err.msg);
    assert_string_equal(cfg->admin.listen_host, "::");
    assert_string_equal(cfg->admin.token, "abc");
    tg_config_unref(cfg);
    assert_null(load_text(UP "admin:\n  listen: 127.0.0.1:9090\n  tokn: x\n", &err));
    assert_non_null(strstr(err.msg, "unknown key \"tokn\""));
    assert_true(tg_config_is_loopback("127.0.0.2"));
    assert_true(tg_config_is_loopback("::1"));
    assert_false(tg_config_is_loopback("10.0.0.1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_methods_and_paths),
        cmocka_unit_test(test_readyz),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
