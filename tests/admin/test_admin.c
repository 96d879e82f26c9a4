/*
 * test_admin.c — the admin listener (src/admin) over real sockets (harness.c: the loop
 * runs on a thread, the test speaks raw HTTP/1.1 to it). Covers the token (missing,
 * wrong, right, wrong scheme), each route's method (405 with Allow), unknown paths (404),
 * /readyz ready and not, /reload success and refusal, no approvers' routes without an
 * approvals service, and the `admin:` section's refusals of a listener that would be
 * reachable from the network without protection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <uv.h>

#include "admin/tg_admin.h"
#include "harness.h"

#define TOKEN HARNESS_TOKEN

static uv_loop_t loop;

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

static int setup(void **state)
{
    (void)state;
    uv_loop_init(&loop);
    tg_admin_ops ops = {.reload = op_reload, .ready = op_ready};   /* no approvals */
    harness_start_ops(&loop, &ops, NULL, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    harness_stop();
    harness_close_loop(&loop);
    return 0;
}

/* One request with this Authorization value (or none); the whole response back. */
static char *ask(const char *method, const char *path, const char *auth)
{
    char h[256] = "";
    if (auth) snprintf(h, sizeof h, "Authorization: %s\r\n", auth);
    return harness_ask(method, path, h, NULL);
}

#define BEARER "Bearer " TOKEN

static void test_token(void **state)
{
    (void)state;
    char *r = ask("GET", "/healthz", NULL);
    assert_int_equal(harness_status(r), 401);
    assert_non_null(strstr(r, "WWW-Authenticate: Bearer"));
    free(r);
    r = ask("GET", "/healthz", "Bearer admin-t0kem");
    assert_int_equal(harness_status(r), 401);
    free(r);
    r = ask("GET", "/healthz", "Bearer admin-t0ken-and-more");
    assert_int_equal(harness_status(r), 401);
    free(r);
    r = ask("GET", "/healthz", "Basic " TOKEN);
    assert_int_equal(harness_status(r), 401);
    free(r);
    int before = reloads;
    r = ask("POST", "/reload", "Bearer wrong");
    assert_int_equal(harness_status(r), 401);
    assert_int_equal(reloads, before);  /* nothing reloaded */
    free(r);
    r = ask("GET", "/healthz", BEARER);
    assert_int_equal(harness_status(r), 200);
    assert_non_null(strstr(r, "\r\n\r\nok\n"));
    free(r);
}

static void test_methods_and_paths(void **state)
{
    (void)state;
    char *r = ask("POST", "/healthz", BEARER);
    assert_int_equal(harness_status(r), 405);
    assert_non_null(strstr(r, "Allow: GET"));
    free(r);
    int before = reloads;
    r = ask("GET", "/reload", BEARER);
    assert_int_equal(harness_status(r), 405);
    assert_non_null(strstr(r, "Allow: POST"));
    assert_int_equal(reloads, before);
    free(r);
    r = ask("GET", "/metrics", BEARER);
    assert_int_equal(harness_status(r), 404);
    free(r);
    r = ask("GET", "/healthz/", BEARER);
    assert_int_equal(harness_status(r), 404);
    free(r);
    /* Without an approvals service there are no approvers' routes and no inbox. */
    r = ask("GET", "/approvals", BEARER);
    assert_int_equal(harness_status(r), 404);
    free(r);
    r = ask("GET", "/inbox", BEARER);
    assert_int_equal(harness_status(r), 404);
    free(r);
    r = ask("GET", "/inbox", NULL);
    assert_int_equal(harness_status(r), 401);
    free(r);
}

static void test_readyz(void **state)
{
    (void)state;
    is_ready = 1;
    char *r = ask("GET", "/readyz", BEARER);
    assert_int_equal(harness_status(r), 200);
    free(r);
    is_ready = 0;
    r = ask("GET", "/readyz", BEARER);
    assert_int_equal(harness_status(r), 503);
    assert_non_null(strstr(r, "atlassian: starting"));
    free(r);
    is_ready = 1;
}

static void test_reload(void **state)
{
    (void)state;
    reload_ok = 1;
    char *r = ask("POST", "/reload", BEARER);
    assert_int_equal(harness_status(r), 200);
    assert_non_null(strstr(r, "{\"reloaded\":true,\"policy_version\":\"abc123\"}"));
    free(r);
    reload_ok = 0;
    r = ask("POST", "/reload", BEARER);
    assert_int_equal(harness_status(r), 400);
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
