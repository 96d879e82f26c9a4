/*
 * test_common.c — unit tests for the shared toolkit: strict JSON, JSON-RPC envelope
 * rules, arena, buffer, constant-time comparison, time and integer formatting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "common/tg_common.h"

static json_t *parse(const char *s, tg_error *err)
{
    return tg_json_parse(s, strlen(s), TG_JSON_MAX_DEPTH, err);
}

static void json_rejects_duplicate_keys(void **state)
{
    tg_error err;
    assert_null(parse("{\"name\":\"a\",\"name\":\"b\"}", &err));
    assert_non_null(strstr(err.msg, "duplicate"));
    /* nested objects too */
    assert_null(parse("{\"p\":{\"x\":1,\"x\":1}}", &err));
}

static void json_depth_limit(void **state)
{
    tg_error err;
    char deep[300];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    deep[200] = 0;
    assert_null(parse(deep, &err));
    assert_non_null(strstr(err.msg, "nesting deeper than 64"));
    /* brackets inside strings do not count */
    char s[200] = "\"";
    memset(s + 1, '[', 150);
    strcpy(s + 151, "\"");
    json_t *v = parse(s, &err);
    assert_non_null(v);
    json_decref(v);
}

static void json_int64_bounds(void **state)
{
    tg_error err;
    json_t *v = parse("{\"id\":9223372036854775807}", &err);
    assert_non_null(v);
    assert_int_equal(json_integer_value(json_object_get(v, "id")), INT64_MAX);
    json_decref(v);
    assert_null(parse("{\"id\":9223372036854775808}", &err));
    assert_null(parse("{\"a\":1} x", &err)); /* trailing garbage */
    assert_null(parse("{\"a\":\"\\u0000\"}", &err)); /* NUL in strings */
    assert_null(parse("{\"a\":1", &err));
    assert_non_null(strstr(err.msg, "line 1"));
}

static tg_rpc_kind classify(const char *s)
{
    tg_error err;
    json_t *v = parse(s, &err);
    assert_non_null(v);
    tg_rpc_kind k = tg_rpc_classify(v, &err);
    json_decref(v);
    return k;
}

static void rpc_envelope(void **state)
{
    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}"), TG_RPC_KIND_REQUEST);
    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"ping\",\"params\":{}}"), TG_RPC_KIND_REQUEST);
    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"), TG_RPC_KIND_NOTIFICATION);
    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}"), TG_RPC_KIND_RESPONSE);
    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-1,\"message\":\"m\"}}"), TG_RPC_KIND_RESPONSE);
    /* invalid */
    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}"), TG_RPC_KIND_INVALID);
    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}"), TG_RPC_KIND_INVALID);
    assert_int_equal(classify("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}"), TG_RPC_KIND_INVALID);
    assert_int_equal(classify("{\"id\":1,\"method\":\"ping\"}"), TG_RPC_KIND_INVALID);
    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}"), TG_RPC_KIND_INVALID);
    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":3}"), TG_RPC_KIND_INVALID);
    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{\"code\":1,\"message\":\"\"}}"), TG_RPC_KIND_INVALID);
    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":1}"), TG_RPC_KIND_INVALID);
    assert_int_equal(classify("[1,2]"), TG_RPC_KIND_INVALID);
}

static void rpc_error_shape(void **state)
{
    json_t *id = json_integer(7);
    json_t *e = tg_rpc_error(id, TG_RPC_INVALID_PARAMS, "bad", NULL);
    char *s = tg_json_dump(e, NULL);
    assert_string_equal(s, "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32602,\"message\":\"bad\"}}");
    free(s);
    json_decref(e);
    e = tg_rpc_error(NULL, TG_RPC_PARSE_ERROR, "x", NULL);
    s = tg_json_dump(e, NULL);
    assert_non_null(strstr(s, "\"id\":null"));
    free(s);
    json_decref(e);
    json_decref(id);
}

static void arena_basics(void **state)
{
    tg_arena *a = tg_arena_new(64);
    char *p = tg_arena_strdup(a, "hello");
    void *big = tg_arena_alloc(a, 10000); /* larger than a chunk */
    memset(big, 1, 10000);
    assert_string_equal(p, "hello");
    assert_true(((uintptr_t)tg_arena_alloc(a, 3) & 15) == 0);
    assert_string_equal(tg_arena_sprintf(a, "%d-%s", 4, "x"), "4-x");
    tg_arena_reset(a);
    assert_int_equal(tg_arena_used(a), 0);
    tg_arena_free(a);
}

/* Default-size chunks are kept by the thread for its next arenas (a call's arenas are made
 * and freed on every call), the memory is handed out fresh, and a thread's kept chunks are
 * freed when it exits (the ASan build reports them otherwise). */
static void *arena_churn(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++) {
        tg_arena *a = tg_arena_new(0);
        for (int k = 0; k < 40; k++) memset(tg_arena_alloc(a, 1000), 0xab, 1000); /* 5 chunks */
        tg_arena_free(a);
    }
    return NULL;
}

static void arena_chunk_reuse(void **state)
{
    (void)state;
    tg_arena *a = tg_arena_new(0);
    unsigned char *p = tg_arena_alloc(a, 100);
    memset(p, 0xcd, 100);
    tg_arena_free(a);
    tg_arena *b = tg_arena_new(0);
    unsigned char *q = tg_arena_alloc(b, 100);
    assert_ptr_equal(p, q); /* the same chunk, not a new malloc */
    assert_int_equal(tg_arena_used(b), 112);
    tg_arena_free(b);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, arena_churn, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
}

static void buf_and_escape(void **state)
{
    tg_buf b = TG_BUF_INIT;
    tg_buf_json_string(&b, "a\"b\\\n\x01z", 7);
    assert_string_equal(b.data, "\"a\\\"b\\\\\\n\\u0001z\"");
    tg_buf_consume(&b, 3);
    assert_string_equal(b.data, "\"b\\\\\\n\\u0001z\"");
    tg_buf_free(&b);
}

/* A buffer on lent storage: used in place while it fits, moved to the heap intact when
 * outgrown (the storage is left alone), stolen as a heap copy; freeing one that never
 * grew frees nothing (ASan reports a free of stack memory). */
static void buf_lent_storage(void **state)
{
    char mem[8];
    tg_buf b;
    tg_buf_use(&b, mem, sizeof mem);
    assert_string_equal(b.data, "");
    tg_buf_append(&b, "abc", 3);
    tg_buf_append_i64(&b, -42);
    assert_ptr_equal(b.data, mem);
    assert_string_equal(mem, "abc-42");
    tg_buf_free(&b);

    tg_buf_use(&b, mem, sizeof mem);
    tg_buf_appends(&b, "1234567");
    assert_ptr_equal(b.data, mem);
    tg_buf_appends(&b, "89");
    assert_ptr_not_equal(b.data, mem);
    assert_string_equal(b.data, "123456789");
    assert_string_equal(mem, "1234567");
    tg_buf_appends(&b, " and a good deal more than eight bytes");
    assert_string_equal(b.data, "123456789 and a good deal more than eight bytes");
    tg_buf_free(&b);

    tg_buf_use(&b, mem, sizeof mem);
    tg_buf_appends(&b, "xyz");
    char *s = tg_buf_steal(&b);
    assert_ptr_not_equal(s, mem);
    assert_string_equal(s, "xyz");
    free(s);
    assert_null(b.data);
    tg_buf_free(&b);
}

/* tg_log_info's arguments are not evaluated when info is off (a decision's log line
 * joins lists on every call), and are when it is on. */
static int log_arg_evaluations;
static const char *log_arg(void)
{
    log_arg_evaluations++;
    return "x";
}

static void log_level_before_arguments(void **state)
{
    tg_log_set_level(TG_LOG_WARN);
    tg_log_info("test", "%s", log_arg());
    tg_log_debug("test", "%s", log_arg());
    assert_int_equal(log_arg_evaluations, 0);
    tg_log_set_level(TG_LOG_ERROR);
    tg_log_warn("test", "%s", log_arg());
    assert_int_equal(log_arg_evaluations, 0);
    tg_log_set_level(TG_LOG_INFO);
    tg_log_info("test", "%s", log_arg());
    assert_int_equal(log_arg_evaluations, 1);
    tg_log_set_level(TG_LOG_WARN);
}

/* The raw digest of two pieces is the digest of them together, again and again on one
 * thread's reused context; and the 448-bit two-block vector of FIPS 180-2. */
static void *sha256_checks(void *arg)
{
    (void)arg;
    static const char msg[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    static const unsigned char want[32] = {
        0x24, 0x8d, 0x6a, 0x61, 0xd2, 0x06, 0x38, 0xb8, 0xe5, 0xc0, 0x26, 0x93, 0x0c, 0x3e, 0x60, 0x39,
        0xa3, 0x3c, 0xe4, 0x59, 0x64, 0xff, 0x21, 0x67, 0xf6, 0xec, 0xed, 0xd4, 0x19, 0xdb, 0x06, 0xc1};
    for (size_t cut = 0; cut <= sizeof msg - 1; cut += 7) {
        unsigned char md[32];
        tg_sha256(msg, cut, msg + cut, sizeof msg - 1 - cut, md);
        assert_memory_equal(md, want, 32);
    }
    return NULL;
}

/* SipHash-2-4 against the reference vectors (key 00..0f, message 00..len-1), the
 * 15-byte one being the paper's worked example; and the key changes the hash. */
static void siphash_vectors(void **state)
{
    unsigned char key[16], msg[16];
    for (int i = 0; i < 16; i++) key[i] = msg[i] = (unsigned char)i;
    static const struct { size_t len; uint64_t want; } v[] = {
        {0, 0x726fdb47dd0e0e31ull}, {1, 0x74f839c593dc67fdull}, {2, 0x0d6c8009d9a94f5aull},
        {3, 0x85676696d7fb7e2dull}, {15, 0xa129ca6149be45e5ull},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (tg_siphash(key, msg, v[i].len) != v[i].want)
            fail_msg("length %zu: %016llx", v[i].len, (unsigned long long)tg_siphash(key, msg, v[i].len));
    key[0] ^= 1;
    assert_true(tg_siphash(key, msg, 15) != 0xa129ca6149be45e5ull);
}

static void copy_text(void **state)
{
    (void)state;
    char out[5];
    tg_copy_text(out, sizeof out, "abcd");
    assert_string_equal(out, "abcd");          /* exactly fits */
    tg_copy_text(out, sizeof out, "abcdefgh");
    assert_string_equal(out, "abcd");          /* cut, still terminated */
    tg_copy_text(out, sizeof out, "");
    assert_string_equal(out, "");
    tg_copy_text(out, 1, "xyz");
    assert_string_equal(out, "");
}

static void ct_equal(void **state)
{
    assert_true(tg_ct_equal("abc", 3, "abc", 3));
    assert_false(tg_ct_equal("abc", 3, "abd", 3));
    assert_false(tg_ct_equal("abc", 3, "abcd", 4));
    assert_false(tg_ct_equal("", 0, "a", 1));
    /* a difference in any byte of any length, word-aligned or not, at either end */
    unsigned char x[100], y[100];
    for (size_t n = 0; n <= sizeof x; n++) {
        for (size_t i = 0; i < n; i++) x[i] = y[i] = (unsigned char)(i * 7 + n);
        assert_true(tg_ct_equal(x, n, y, n));
        for (size_t i = 0; i < n; i++) {
            y[i] ^= 0x80;
            assert_false(tg_ct_equal(x, n, y, n));
            y[i] ^= 0x80;
        }
        if (n) assert_false(tg_ct_equal(x, n, y, n - 1));
    }
    char h[65];
    tg_sha256_hex("abc", 3, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    char r1[33], r2[33];
    sha256_checks(NULL);
    /* each thread keeps its own digest context, freed when it exits (ASan checks that) */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, sha256_checks, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    tg_random_hex(r1, 16);
    tg_random_hex(r2, 16);
    assert_int_equal(strlen(r1), 32);
    assert_string_not_equal(r1, r2);
}

/* tg_format_time and tg_i64_dec against what gmtime_r and snprintf write (the way both
 * were written before): leap days, century rules, negative times, ms edges, 9999. */
static void time_and_int_formats(void **state)
{
    int64_t probes[] = {0, -1, 999, 1000, -1000, -1001, 951782400000 /* 2000-02-29 */,
                        4107456000000 /* 2100-02-28 */, 4107542400000 /* 2100-03-01 */,
                        253402300799999 /* 9999-12-31T23:59:59.999 */, -62135596800000,
                        1795355868347, 68169600000 /* 1972-02-29 */};
    uint64_t x = 88172645463325252ull; /* xorshift: a fixed, wide spread of instants */
    for (int i = 0; i < 200000 + (int)(sizeof probes / sizeof *probes); i++) {
        int64_t ms;
        if (i < (int)(sizeof probes / sizeof *probes)) {
            ms = probes[i];
        } else {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            /* years ~1 to ~9999, and before 1970 */
            ms = (int64_t)(x % 315537897600000ull) - 62135596800000;
        }
        int64_t secs = ms / 1000, frac = ms % 1000;
        if (frac < 0) frac += 1000, secs -= 1;
        time_t t = (time_t)secs;
        struct tm tm;
        assert_non_null(gmtime_r(&t, &tm));
        int year = tm.tm_year + 1900;
        if (year < 0 || year > 9999) year = 9999;
        char want[64], got[32];
        snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", year,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
        tg_format_time(ms, got);
        if (strcmp(want, got) != 0) fail_msg("%" PRId64 ": %s, want %s", ms, got, want);
        char iw[32], ig[21];
        snprintf(iw, sizeof iw, "%" PRId64, ms);
        assert_int_equal(tg_i64_dec(ms, ig), strlen(iw));
        tg_buf ib = TG_BUF_INIT;
        tg_buf_appends(&ib, "=");
        tg_buf_append_i64(&ib, ms);
        assert_string_equal(ib.data + 1, iw);
        tg_buf_free(&ib);
        assert_string_equal(ig, iw);
    }
    char ig[21];
    assert_int_equal(tg_i64_dec(INT64_MIN, ig), 20);
    assert_string_equal(ig, "-9223372036854775808");
    tg_i64_dec(INT64_MAX, ig);
    assert_string_equal(ig, "9223372036854775807");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_rejects_duplicate_keys),
        cmocka_unit_test(json_depth_limit),
        cmocka_unit_test(json_int64_bounds),
        cmocka_unit_test(rpc_envelope),
        cmocka_unit_test(rpc_error_shape),
        cmocka_unit_test(arena_basics),
        cmocka_unit_test(arena_chunk_reuse),
        cmocka_unit_test(buf_and_escape),
        cmocka_unit_test(buf_lent_storage),
        cmocka_unit_test(log_level_before_arguments),
        cmocka_unit_test(siphash_vectors),
        cmocka_unit_test(ct_equal),
        cmocka_unit_test(copy_text),
        cmocka_unit_test(time_and_int_formats),
    };
    return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
