/*
 * test_approvals_live.c — the approvers' API of the admin listener in front of the REAL
 * approvals service (src/approvals) on a SQLite store in a temporary directory: what the
 * scripted tests (test_approvals_http.c) assume of the service holds — an approver key
 * from the configuration authenticates (and a wrong one, or the operator's token, does
 * not), the list is a JSON array for every state filter, and an unknown request is a 404
 * NOT_FOUND for reading and for deciding. Whole flows with real requests are in
 * tests/e2e (approvals.test.mjs, inbox.test.mjs).
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

#include "approvals/tg_approvals.h"
#include "harness.h"

/* bob's approver key; the configuration holds its SHA-256. */
#define BOB_KEY "tga_bobbobbobbobbobbobbobbobbobbobbobbobbobbob"
#define BOB "Authorization: Bearer " BOB_KEY "\r\n"

static uv_loop_t loop;
static char dir[] = "/tmp/tg-admin-live-XXXXXX";
static char db[64], yaml[64];
static tg_config *cfg;
static tg_store *store;
static tg_approvals *ap;

/* On the loop thread: the service's timers and the store's writer stop, so the loop can
 * end. */
static void stop_service(void *arg)
{
    (void)arg;
    tg_approvals_close(ap);
    tg_store_close(store);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir)) return -1;
    snprintf(db, sizeof db, "%s/tg.db", dir);
    snprintf(yaml, sizeof yaml, "%s/toolgate.yaml", dir);
    char hash[65];
    tg_sha256_hex(BOB_KEY, strlen(BOB_KEY), hash);
    FILE *f = fopen(yaml, "w");
    if (!f) return -1;
    fprintf(f, "upstreams:\n  - {name: u, transport: stdio, command: [/bin/true]}\n"
               "store: sqlite:%s\n"
               "admin: {listen: 127.0.0.1:9191}   # not bound: the harness listens on port 0\n"
               "approvals:\n  approvers:\n    api_keys:\n"
               "      - {user: bob, key_sha256: \"%s\"}\n", db, hash);
    fclose(f);
    tg_error err;
    uv_loop_init(&loop);
    if (!(cfg = tg_config_load(yaml, &err))) fail_msg("config: %s", err.msg);
    if (!(store = tg_store_open(&loop, cfg->store.url, &err))) fail_msg("store: %s", err.msg);
    if (!(ap = tg_approvals_new(&loop, cfg, store, NULL, &err))) fail_msg("approvals: %s", err.msg);
    harness_start(&loop, ap, stop_service, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    harness_stop();
    tg_approvals_free(ap);
    tg_config_unref(cfg);
    harness_close_loop(&loop);
    unlink(db);
    unlink(yaml);
    char other[80];
    snprintf(other, sizeof other, "%s-wal", db);
    unlink(other);
    snprintf(other, sizeof other, "%s-shm", db);
    unlink(other);
    rmdir(dir);
    return 0;
}

static void test_approver_key(void **state)
{
    (void)state;
    char *r = harness_ask("GET", "/approvals", BOB, NULL);
    assert_int_equal(harness_status(r), 200);
    assert_string_equal(harness_body(r), "[]");
    free(r);
    harness_expect("GET", "/approvals", "Authorization: Bearer tga_x\r\n", NULL, 401,
                   "UNAUTHORIZED");
    harness_expect("GET", "/approvals", NULL, NULL, 401, "UNAUTHORIZED");
    harness_expect("GET", "/approvals", "Authorization: Bearer " HARNESS_TOKEN "\r\n", NULL,
                   401, "UNAUTHORIZED");
}

static void test_states_and_unknown(void **state)
{
    (void)state;
    static const char *const states[] = {"pending", "approved", "denied", "expired", "used"};
    for (size_t i = 0; i < 5; i++) {
        char path[64];
        snprintf(path, sizeof path, "/approvals?state=%s&limit=5", states[i]);
        char *r = harness_ask("GET", path, BOB, NULL);
        assert_int_equal(harness_status(r), 200);
        assert_string_equal(harness_body(r), "[]");
        free(r);
    }
    harness_expect("GET", "/approvals/apr_nosuchrequest", BOB, NULL, 404, "NOT_FOUND");
    harness_expect("POST", "/approvals/apr_nosuchrequest/approve", BOB, "{\"comment\":\"x\"}",
                   404, "NOT_FOUND");
    harness_expect("POST", "/approvals/apr_nosuchrequest/deny", BOB, NULL, 404, "NOT_FOUND");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_approver_key),
        cmocka_unit_test(test_states_and_unknown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
