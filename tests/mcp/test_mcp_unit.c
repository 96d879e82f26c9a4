/*
 * test_mcp_unit.c — unit tests of the MCP router's pure parts: the header checks a
 * request must pass (version, Host, Origin, Accept, Content-Type), the opaque pagination
 * cursor (round trip and tamper rejection), name prefixes, capability merging, and the
 * map that holds sessions, pending ids and routes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mcp/mcp_int.h"

#define S(x) x, strlen(x)

static void versions(void **state)
{
    assert_true(mcp_version_supported(S("2025-11-25")));
    assert_true(mcp_version_supported(S("2025-06-18")));
    assert_true(mcp_version_supported(S("2025-03-26")));
    assert_false(mcp_version_supported(S("2024-11-05")));
    assert_false(mcp_version_supported(S("2025-11-2")));
    assert_false(mcp_version_supported(S("2025-11-255")));
    assert_false(mcp_version_supported(S("")));
}

static void hosts_default(void **state)
{
    tg_config cfg = {0};
    assert_true(mcp_host_allowed(&cfg, S("localhost")));
    assert_true(mcp_host_allowed(&cfg, S("LOCALHOST:8080")));
    assert_true(mcp_host_allowed(&cfg, S("127.0.0.1:1")));
    assert_true(mcp_host_allowed(&cfg, S("[::1]:8080")));
    assert_true(mcp_host_allowed(&cfg, S("[::1]")));
    assert_false(mcp_host_allowed(&cfg, S("evil.example")));
    assert_false(mcp_host_allowed(&cfg, S("localhost.evil.example")));
    assert_false(mcp_host_allowed(&cfg, S("localhost:80:80")));
    assert_false(mcp_host_allowed(&cfg, S("localhost:")));
    assert_false(mcp_host_allowed(&cfg, S("localhost:8x")));
    assert_false(mcp_host_allowed(&cfg, S("::1")));
    assert_false(mcp_host_allowed(&cfg, S("")));
}

static void hosts_configured(void **state)
{
    const char *hosts[] = {"gw.example", "other.example:8443"};
    tg_config cfg = {.allowed_hosts = hosts, .nallowed_hosts = 2};
    assert_true(mcp_host_allowed(&cfg, S("gw.example")));
    assert_true(mcp_host_allowed(&cfg, S("gw.example:443")));
    assert_true(mcp_host_allowed(&cfg, S("other.example:8443")));
    assert_false(mcp_host_allowed(&cfg, S("other.example:9999")));
    assert_false(mcp_host_allowed(&cfg, S("other.example")));
    assert_false(mcp_host_allowed(&cfg, S("localhost"))); /* defaults replaced */
}

static void origins(void **state)
{
    tg_config cfg = {0};
    assert_true(mcp_origin_allowed(&cfg, S("http://localhost:3000")));
    assert_true(mcp_origin_allowed(&cfg, S("https://127.0.0.1")));
    assert_false(mcp_origin_allowed(&cfg, S("http://evil.example")));
    assert_false(mcp_origin_allowed(&cfg, S("null")));
    assert_false(mcp_origin_allowed(&cfg, S("file://localhost")));
    assert_false(mcp_origin_allowed(&cfg, S("http://localhost/path")));
    assert_false(mcp_origin_allowed(&cfg, S("http://user@localhost")));
    const char *list[] = {"https://app.example"};
    tg_config cfg2 = {.allowed_origins = list, .nallowed_origins = 1};
    assert_true(mcp_origin_allowed(&cfg2, S("https://app.example")));
    assert_false(mcp_origin_allowed(&cfg2, S("http://app.example")));
    assert_false(mcp_origin_allowed(&cfg2, S("http://localhost")));
}

static void accept_and_content_type(void **state)
{
    const char *a = "application/json, text/event-stream";
    assert_true(mcp_accepts(S(a), "application/json"));
    assert_true(mcp_accepts(S(a), "text/event-stream"));
    assert_true(mcp_accepts(S("text/event-stream;q=0.9 ,APPLICATION/JSON"), "application/json"));
    assert_false(mcp_accepts(S("application/jsonx"), "application/json"));
    assert_false(mcp_accepts(S("*/*"), "text/event-stream"));
    assert_false(mcp_accepts(S("text/html; x=application/json"), "application/json"));
    assert_false(mcp_accepts(S("application/json;q=0, text/event-stream"), "application/json"));
    assert_true(mcp_accepts(S("application/json;q=0.5"), "application/json"));
    /* preference: q first, then order */
    assert_false(mcp_prefers_sse(S(a)));
    assert_true(mcp_prefers_sse(S("text/event-stream, application/json")));
    assert_true(mcp_prefers_sse(S("application/json;q=0.9, text/event-stream")));
    assert_false(mcp_prefers_sse(S("text/event-stream;q=0.5, application/json;q=0.55")));
    assert_true(mcp_prefers_sse(S("text/event-stream;q=1.0, application/json;q=1")));
    assert_false(mcp_prefers_sse(S("application/json")));
    assert_true(mcp_content_type_json(S("application/json")));
    assert_true(mcp_content_type_json(S("application/json; charset=utf-8")));
    assert_false(mcp_content_type_json(S("text/plain")));
    assert_false(mcp_content_type_json(S("application/json-seq")));
    assert_false(mcp_content_type_json(S("")));
}

static void b64url(void **state)
{
    const char *msgs[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar\xff\xfe"};
    for (size_t i = 0; i < 7; i++) {
        char enc[64];
        unsigned char dec[64];
        size_t n = 0;
        tg_b64url_encode((const unsigned char *)msgs[i], strlen(msgs[i]), enc);
        assert_null(strpbrk(enc, "+/="));
        assert_int_equal(tg_b64url_decode(enc, strlen(enc), dec, &n), 0);
        assert_int_equal(n, strlen(msgs[i]));
        assert_memory_equal(dec, msgs[i], n);
    }
    unsigned char out[8];
    size_t n;
    assert_int_equal(tg_b64url_decode(S("Zm9v+"), out, &n), -1);
    assert_int_equal(tg_b64url_decode(S("Z"), out, &n), -1);
    assert_int_equal(tg_b64url_decode(S("Zh"), out, &n), -1); /* non-canonical bits */
}

static void cursor_round_trip_and_tamper(void **state)
{
    unsigned char key[32], other[32];
    memset(key, 7, sizeof key);
    memset(other, 8, sizeof other);
    json_t *pairs = json_pack("[[i,s],[i,s]]", 0, "abc", 2, "p=2&x");
    char *c = mcp_cursor_encode(key, pairs);
    tg_error err;
    json_t *back = mcp_cursor_decode(key, c, 3, &err);
    assert_non_null(back);
    assert_true(json_equal(back, pairs));
    json_decref(back);

    /* another process (key) rejects it */
    assert_null(mcp_cursor_decode(other, c, 3, &err));
    assert_string_equal(err.msg, "Invalid cursor");
    /* any flipped character is rejected */
    for (size_t i = 0; i < strlen(c); i++) {
        char *t = strdup(c);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        assert_null(mcp_cursor_decode(key, t, 3, &err));
        free(t);
    }
    /* an index beyond the configured upstreams (e.g. after a reload) */
    assert_null(mcp_cursor_decode(key, c, 2, &err));
    assert_null(mcp_cursor_decode(key, "", 3, &err));
    assert_null(mcp_cursor_decode(key, "abc", 3, &err));
    free(c);

    /* authentic but malformed pairs are rejected too: repeated index */
    json_t *bad = json_pack("[[i,s],[i,s]]", 1, "a", 1, "b");
    c = mcp_cursor_encode(key, bad);
    assert_null(mcp_cursor_decode(key, c, 3, &err));
    free(c);
    json_decref(bad);
    json_decref(pairs);
}

static void prefixes(void **state)
{
    char *v = mcp_prefix_add("jira_", "get_issue");
    assert_string_equal(v, "jira_get_issue");
    assert_string_equal(mcp_prefix_strip("jira_", v), "get_issue");
    assert_null(mcp_prefix_strip("jira_", "conf_get_page"));
    assert_null(mcp_prefix_strip("jira_", "jira_")); /* nothing left */
    assert_string_equal(mcp_prefix_strip(NULL, "x"), "x");
    assert_string_equal(mcp_prefix_strip("", "x"), "x");
    free(v);
    v = mcp_prefix_add(NULL, "x");
    assert_string_equal(v, "x");
    free(v);
}

static void caps_merge(void **state)
{
    json_t *caps[3];
    caps[0] = json_pack("{s:{s:b},s:{}}", "tools", "listChanged", 0, "logging");
    caps[1] = json_pack("{s:{s:b},s:{s:b,s:b},s:{}}", "tools", "listChanged", 1, "resources",
                        "subscribe", 1, "listChanged", 0, "experimental");
    caps[2] = NULL;
    json_t *m = mcp_caps_merge(caps, 3);
    json_t *want = json_pack("{s:{s:b},s:{},s:{s:b}}", "tools", "listChanged", 1, "logging",
                             "resources", "subscribe", 1);
    assert_true(json_equal(m, want));
    assert_null(json_object_get(m, "experimental")); /* not claimed on anyone's behalf */
    json_decref(m);
    json_decref(want);
    json_decref(caps[0]);
    json_decref(caps[1]);
}

static void map_basics(void **state)
{
    mcp_map m = {0};
    assert_null(mcp_map_get(&m, S("x")));
    assert_null(mcp_map_del(&m, S("x")));
    char key[24];
    int vals[1000];
    for (int i = 0; i < 1000; i++) {
        vals[i] = i;
        mcp_map_put(&m, key, mcp_int_key(i, key), &vals[i]);
    }
    assert_int_equal(m.n, 1000);
    for (int i = 0; i < 1000; i++)
        assert_ptr_equal(mcp_map_get(&m, key, mcp_int_key(i, key)), &vals[i]);
    /* keys are compared by length too: "1" vs "10" */
    assert_ptr_equal(mcp_map_get(&m, "10", 1), &vals[1]);
    /* string id "1" and integer id 1 are different keys once JSON-dumped */
    mcp_map_put(&m, S("\"1\""), &vals[2]);
    assert_ptr_equal(mcp_map_get(&m, S("1")), &vals[1]);
    assert_ptr_equal(mcp_map_get(&m, S("\"1\"")), &vals[2]);
    assert_ptr_equal(mcp_map_del(&m, key, mcp_int_key(500, key)), &vals[500]);
    assert_null(mcp_map_get(&m, key, mcp_int_key(500, key)));
    size_t seen = 0;
    mcp_map_iter it;
    mcp_map_iter_init(&it, &m);
    while (mcp_map_iter_next(&it)) seen++;
    assert_int_equal(seen, 1000);
    assert_int_equal(mcp_int_key(INT64_MAX, key), 19);
    assert_string_equal(key, "9223372036854775807");
    mcp_map_clear(&m);
    assert_int_equal(m.n, 0);
}

/* Ids a client picks to collide under an unkeyed hash (here FNV-1a, the map's hash until
 * it was keyed: 1,500 ids equal in its low 12 bits, all in one bucket of up to 4,096) stay
 * spread: the longest chain is what random keys give, not 1,500. */
static uint64_t fnv1a(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static void map_hostile_keys(void **state)
{
    mcp_map m = {0};
    enum { N = 1500 };
    static char keys[N][24];
    static size_t lens[N];
    int found = 0;
    uint64_t want = fnv1a("0", 1) & 0xfff;
    for (int64_t i = 0; found < N; i++) {
        char k[24];
        size_t n = mcp_int_key(i, k);
        if ((fnv1a(k, n) & 0xfff) != want) continue;
        memcpy(keys[found], k, n + 1);
        lens[found++] = n;
    }
    for (int i = 0; i < N; i++) mcp_map_put(&m, keys[i], lens[i], keys[i]);
    assert_int_equal(m.n, N);
    size_t longest = 0;
    for (size_t b = 0; b < m.nbuckets; b++) {
        size_t len = 0;
        for (const mcp_map_entry *e = m.buckets[b]; e; e = e->next) len++;
        if (len > longest) longest = len;
    }
    if (longest > 16) fail_msg("a chain of %zu entries in %zu buckets", longest, m.nbuckets);
    for (int i = 0; i < N; i++) assert_ptr_equal(mcp_map_get(&m, keys[i], lens[i]), keys[i]);
    mcp_map_clear(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(versions),
        cmocka_unit_test(hosts_default),
        cmocka_unit_test(hosts_configured),
        cmocka_unit_test(origins),
        cmocka_unit_test(accept_and_content_type),
        cmocka_unit_test(b64url),
        cmocka_unit_test(cursor_round_trip_and_tamper),
        cmocka_unit_test(prefixes),
        cmocka_unit_test(caps_merge),
        cmocka_unit_test(map_basics),
        cmocka_unit_test(map_hostile_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
