/*
 * test_keystore.c — the API-key store on the store's api_keys table (src/auth/
 * keystore_sql.c), as `toolgate keys` and the gateway rely on it: a record reads back
 * exactly as written (every field, secrets only as hashes), put replaces, list is ordered
 * by creation, touch records the last use, revoke and rotate work through it, and values
 * that could not read back the same (commas in lists, non-UTF-8 text) are refused.
 * Runs on a SQLite file in a private temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/tg_auth.h"
#include "store/tg_store.h"

typedef struct fixture {
    char dir[PATH_MAX];
    tg_store *store;
    tg_apikey_store *ks;
    tg_arena *a;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char url[PATH_MAX + 32];
    tg_error err = {{0}};
    snprintf(f->dir, sizeof f->dir, "/tmp/tg-keystore-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(url, sizeof url, "sqlite:%s/keys.db", f->dir);
    f->store = tg_store_open(NULL, url, &err);
    if (!f->store)
        fail_msg("store: %s", err.msg);
    f->ks = tg_apikey_sqlstore_new(f->store);
    f->a = tg_arena_new(0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char path[PATH_MAX + 16];
    tg_apikey_sqlstore_free(f->ks);
    tg_store_close(f->store);
    tg_arena_free(f->a);
    /* SQLite may leave -wal / -shm next to the database. */
    static const char *const files[] = {"keys.db", "keys.db-wal", "keys.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", f->dir, files[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static const char *groups[] = {"eng", "oncall"};
static const char *cidrs[] = {"10.0.0.0/8", "127.0.0.1"};

static tg_apikey_record new_key(fixture *f, int64_t now, char token[TG_APIKEY_TOKEN_LEN + 1])
{
    tg_apikey_params p = {.agent = "ci-bot", .delegator = "alice", .groups = groups,
                          .n_groups = 2, .cidrs = cidrs, .n_cidrs = 2, .ttl_s = 3600,
                          .note = "nightly"};
    tg_apikey_record r;
    tg_error err = {{0}};
    assert_int_equal(tg_apikey_create(&p, now, 0, f->a, &r, token, &err), 0);
    assert_int_equal(f->ks->put(f->ks->ctx, &r, &err), 0);
    return r;
}

static void test_roundtrip(void **state)
{
    fixture *f = *state;
    char token[TG_APIKEY_TOKEN_LEN + 1];
    tg_apikey_record w = new_key(f, 1000, token), r;
    tg_error err = {{0}};
    assert_int_equal(f->ks->get(f->ks->ctx, w.id, f->a, &r, &err), 1);
    assert_string_equal(r.id, w.id);
    assert_string_equal(r.agent, "ci-bot");
    assert_string_equal(r.delegator, "alice");
    assert_string_equal(r.note, "nightly");
    assert_int_equal(r.n_groups, 2);
    assert_string_equal(r.groups[1], "oncall");
    assert_int_equal(r.n_cidrs, 2);
    assert_string_equal(r.cidrs[0], "10.0.0.0/8");
    assert_string_equal(r.cidrs[1], "127.0.0.1/32");
    assert_int_equal(r.created, 1000);
    assert_int_equal(r.expires, 4600);
    assert_int_equal(r.revoked_at, 0);
    assert_int_equal(r.last_used, 0);
    assert_string_equal(r.secret_hash, w.secret_hash);
    assert_string_equal(r.prev_secret_hash, "");
    assert_null(strstr(r.secret_hash, token + 5 + TG_APIKEY_ID_LEN));

    assert_int_equal(f->ks->get(f->ks->ctx, "aaaaaaaaaaaa", f->a, &r, &err), 0);

    /* A key without optional fields reads back with NULL / empty ones. */
    tg_apikey_params bare = {.agent = "bot"};
    assert_int_equal(tg_apikey_create(&bare, 2000, 0, f->a, &w, token, &err), 0);
    assert_int_equal(f->ks->put(f->ks->ctx, &w, &err), 0);
    assert_int_equal(f->ks->get(f->ks->ctx, w.id, f->a, &r, &err), 1);
    assert_null(r.delegator);
    assert_null(r.note);
    assert_int_equal(r.n_groups, 0);
    assert_int_equal(r.n_cidrs, 0);
    assert_int_equal(r.expires, 0);
}

static void test_rotate_revoke_touch_list(void **state)
{
    fixture *f = *state;
    char t1[TG_APIKEY_TOKEN_LEN + 1], t2[TG_APIKEY_TOKEN_LEN + 1], t3[TG_APIKEY_TOKEN_LEN + 1];
    tg_apikey_record later = new_key(f, 5000, t1), first = new_key(f, 1000, t2), r, *all;
    tg_error err = {{0}};
    size_t n;

    assert_int_equal(tg_apikey_rotate(f->ks, first.id, 1100, 600, t3, &err), 0);
    assert_string_not_equal(t3, t2);
    assert_int_equal(f->ks->get(f->ks->ctx, first.id, f->a, &r, &err), 1);
    assert_string_equal(r.prev_secret_hash, first.secret_hash);
    assert_int_equal(r.prev_expires, 1700);
    assert_string_not_equal(r.secret_hash, first.secret_hash);

    assert_int_equal(f->ks->touch(f->ks->ctx, first.id, 1200, &err), 0);
    assert_int_equal(tg_apikey_revoke(f->ks, first.id, 1300, &err), 0);
    assert_int_equal(tg_apikey_revoke(f->ks, first.id, 1400, &err), 0);  /* keeps the first */
    assert_int_equal(f->ks->get(f->ks->ctx, first.id, f->a, &r, &err), 1);
    assert_int_equal(r.last_used, 1200);
    assert_int_equal(r.revoked_at, 1300);
    assert_int_equal(r.prev_expires, 1700);  /* put replaced the row, all fields kept */

    assert_int_equal(f->ks->list(f->ks->ctx, f->a, &all, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(all[0].id, first.id);  /* by creation time, not id */
    assert_string_equal(all[1].id, later.id);
}

static void test_refuses_what_cannot_read_back(void **state)
{
    fixture *f = *state;
    char token[TG_APIKEY_TOKEN_LEN + 1];
    tg_apikey_record r = new_key(f, 1000, token);
    tg_error err = {{0}};
    const char *bad_groups[] = {"a,b"};
    r.groups = bad_groups;
    r.n_groups = 1;
    assert_int_equal(f->ks->put(f->ks->ctx, &r, &err), -1);
    assert_string_equal(err.msg, "group \"a,b\" must be non-empty and contain no comma");
    r.n_groups = 0;
    r.note = "\xff\xfe";
    assert_int_equal(f->ks->put(f->ks->ctx, &r, &err), -1);
    assert_string_equal(err.msg, "agent, delegator, groups and note must be valid UTF-8");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotate_revoke_touch_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_what_cannot_read_back, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
