/*
 * test_audit.c — the audit record without a store: canonical form (deterministic, parse
 * round trip), argument digest and redaction, the chain hash, Ed25519 keys and the signed
 * checkpoint bodies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <fnmatch.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit_int.h"

static char tmpdir[64];

static const char *parents[] = {"Jira::Project::\"OPS\""};
static const char *reasons[] = {"WRITE_OK"};

static tg_audit_record base(const json_t *args, const char *digest)
{
    return (tg_audit_record){
        .event = TG_AUDIT_EV_OUTCOME, .time_ms = 1767225600123, .instance = "gw",
        .rpc_id = "\"req-1\"", .delegator = "alice", .agent = "claude", .tool = "jira_edit",
        .resource_type = "Jira::Issue", .resource_id = "OPS-\"1\"", .resource_parents = parents,
        .n_resource_parents = 1, .args = args, .args_sha256 = digest,
        .decision = TG_AUDIT_DECISION_ALLOW, .mode = TG_AUDIT_SHADOW, .reasons = reasons,
        .n_reasons = 1, .outcome = TG_AUDIT_OUTCOME_TOOL_ERROR, .upstream_latency_us = 900,
        .total_latency_us = 1000, .detail = "ünïcode ok",
    };
}

static char *canonical(const tg_audit_record *r)
{
    tg_buf b = TG_BUF_INIT;
    tg_error err;
    if (tg_audit_record_canonical(r, &b, &err)) fail_msg("%s", err.msg);
    return tg_buf_steal(&b);
}

static void test_canonical_round_trip(void **state)
{
    (void)state;
    json_t *args = json_pack("{s:i,s:[s,f],s:{s:b}}", "z", 1, "a", "x", 0.1, "m", "k", 1);
    char digest[65];
    tg_audit_args_digest(args, digest);
    tg_audit_record r = base(args, digest);
    char *c1 = canonical(&r);
    /* fixed key order, no whitespace, sorted argument keys */
    assert_non_null(strstr(c1, "{\"v\":1,\"event\":\"outcome\",\"time\":\"2026-01-01T00:00:00.123Z\""));
    assert_non_null(strstr(c1, "\"args\":{\"a\":[\"x\",0.10000000000000001],\"m\":{\"k\":true},\"z\":1}"));
    assert_non_null(strstr(c1, "\"resource\":{\"type\":\"Jira::Issue\",\"id\":\"OPS-\\\"1\\\"\""));
    assert_null(strchr(c1, '\n'));
    /* parse + serialise gives the same bytes */
    tg_arena *ar = tg_arena_new(0);
    tg_audit_record back;
    json_t *holder;
    tg_error err;
    assert_int_equal(tg_audit_record_parse(c1, strlen(c1), ar, &back, &holder, &err), 0);
    assert_int_equal(back.mode, TG_AUDIT_SHADOW);
    assert_int_equal(back.outcome, TG_AUDIT_OUTCOME_TOOL_ERROR);
    assert_string_equal(back.rpc_id, "\"req-1\"");
    char *c2 = canonical(&back);
    assert_string_equal(c1, c2);
    json_decref(holder);
    tg_arena_free(ar);
    /* the same arguments in another key order: same digest, same bytes */
    json_t *args2 = json_pack("{s:{s:b},s:[s,f],s:i}", "m", "k", 1, "a", "x", 0.1, "z", 1);
    char d2[65];
    tg_audit_args_digest(args2, d2);
    assert_string_equal(digest, d2);
    r.args = args2;
    char *c3 = canonical(&r);
    assert_string_equal(c1, c3);
    free(c1); free(c2); free(c3);
    json_decref(args);
    json_decref(args2);
}

/* Every string field is written exactly as tg_buf_json_string writes it, and only when it
 * is strict UTF-8 (what jansson accepts): the record writer does both in one pass, so it
 * is compared here with the two separate steps on 4,000 generated strings. */
static void test_canonical_strings(void **state)
{
    (void)state;
    static const char *const pieces[] = {"a", "Z", " ", "\"", "\\", "/", "\n", "\r", "\t",
                                         "\x01", "\x1f", "\x7f", "\xc3\xa9", "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80", "\xc3", "\xff", "\xed\xa0\x80",
                                         "\xc0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "x\xa9"};
    const size_t npieces = sizeof pieces / sizeof *pieces;
    char digest[65];
    tg_audit_args_digest(NULL, digest);
    tg_audit_record r = base(NULL, digest);
    tg_buf b = TG_BUF_INIT, want = TG_BUF_INIT;
    tg_error err;
    unsigned seed = 12345;
    for (int n = 0; n < 4000; n++) {
        char str[256] = "";
        size_t len = 0;
        for (int k = (int)((seed = seed * 1103515245u + 12345u) >> 16) % 8; k >= 0; k--) {
            const char *piece = pieces[((seed = seed * 1103515245u + 12345u) >> 16) % npieces];
            memcpy(str + len, piece, strlen(piece) + 1);
            len += strlen(piece);
            /* a plain run of up to 20 bytes after it (the escaping looks at sixteen bytes
             * at a time) */
            for (int w = (int)((seed = seed * 1103515245u + 12345u) >> 16) % 21; w > 0; w--)
                str[len++] = (char)('c' + w % 20);
            str[len] = 0;
        }
        r.delegator = str;
        json_t *probe = json_stringn(str, len); /* NULL: not strict UTF-8 */
        int rc = tg_audit_record_canonical(&r, &b, &err);
        if (!probe) {
            assert_int_equal(rc, -1);
            assert_string_equal(err.msg, "audit: field \"delegator\" is not valid UTF-8");
        } else {
            assert_int_equal(rc, 0);
            tg_buf_reset(&want);
            tg_buf_appends(&want, "\"delegator\":");
            tg_buf_json_string(&want, str, len);
            tg_buf_appends(&want, ",");
            if (!strstr(b.data, want.data)) fail_msg("string %d: want %s in %s", n, want.data, b.data);
        }
        json_decref(probe);
        tg_buf_reset(&b);
    }
    /* a field inside the resource object is named too */
    r.delegator = "alice";
    r.resource_type = "Jira::Issue";
    r.resource_id = "OPS-\xff";
    assert_int_equal(tg_audit_record_canonical(&r, &b, &err), -1);
    assert_string_equal(err.msg, "audit: field \"id\" is not valid UTF-8");
    tg_buf_free(&b);
    tg_buf_free(&want);
}

static void test_canonical_rejects(void **state)
{
    (void)state;
    char digest[65];
    tg_audit_args_digest(NULL, digest);
    tg_audit_record r = base(NULL, digest);
    tg_buf b = TG_BUF_INIT;
    tg_error err;
    const char *bad_ids[] = {"1.5", "[1]", "null", "{\"a\":1}", "nope"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof *bad_ids; i++) {
        r.rpc_id = bad_ids[i];
        assert_int_equal(tg_audit_record_canonical(&r, &b, &err), -1);
        assert_non_null(strstr(err.msg, "rpc_id"));
    }
    r.rpc_id = "42";
    assert_int_equal(tg_audit_record_canonical(&r, &b, &err), 0);
    assert_non_null(strstr(b.data, "\"rpc_id\":42,"));
    tg_buf_reset(&b);
    /* Equal ids give equal bytes: what jansson writes back, whether the id is used as
     * sent (plain integers and strings) or parsed and dumped. */
    const char *const ids[][2] = {
        {"0", "0"}, {"-0", "0"}, {"-42", "-42"}, {"123456789012345678", "123456789012345678"},
        {"9223372036854775807", "9223372036854775807"}, {"-1234567890123456789", "-1234567890123456789"},
        {"\"a/b c\"", "\"a/b c\""}, {"\"caf\\u00e9\"", "\"caf\xc3\xa9\""},
        {"\"x\\\"y\"", "\"x\\\"y\""}, {"\"\\/\"", "\"/\""}, {"\"\"", "\"\""},
        {" 7", "7"}, {"\"\xc3\xa9\"", "\"\xc3\xa9\""},
    };
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        r.rpc_id = ids[i][0];
        assert_int_equal(tg_audit_record_canonical(&r, &b, &err), 0);
        char want[64];
        snprintf(want, sizeof want, "\"rpc_id\":%s,", ids[i][1]);
        if (!strstr(b.data, want)) fail_msg("rpc_id %s: want %s in %.200s", ids[i][0], want, b.data);
        tg_buf_reset(&b);
    }
    const char *const not_ids[] = {"007", "1e3", "\"open", "\"a\"b\"", "--1"};
    for (size_t i = 0; i < sizeof not_ids / sizeof *not_ids; i++) {
        r.rpc_id = not_ids[i];
        assert_int_equal(tg_audit_record_canonical(&r, &b, &err), -1);
    }
    r.rpc_id = "42";
    r.delegator = "bad\xff";
    assert_int_equal(tg_audit_record_canonical(&r, &b, &err), -1);
    assert_non_null(strstr(err.msg, "delegator"));
    assert_int_equal(b.len, 0);
    r.delegator = "ok";
    r.args_sha256 = NULL;
    assert_int_equal(tg_audit_record_canonical(&r, &b, &err), -1);
    tg_buf_free(&b);
}

static void test_redaction(void **state)
{
    (void)state;
    json_t *args = json_pack("{s:s,s:s,s:i,s:[{s:s,s:s}],s:{s:{s:s}},s:s}",
        "Authorization", "Bearer x", "refresh_TOKEN", "t", "db_password", 5,
        "items", "session_secret", "s", "title", "keep me",
        "deep", "inner", "APIKEY", "k", "summary", "token in a value stays");
    json_t *red = tg_audit_redact(args, NULL, 0);
    char *s = json_dumps(red, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"Authorization\":\"[REDACTED]\",\"db_password\":\"[REDACTED]\","
        "\"deep\":{\"inner\":{\"APIKEY\":\"[REDACTED]\"}},\"items\":[{\"session_secret\":"
        "\"[REDACTED]\",\"title\":\"keep me\"}],\"refresh_TOKEN\":\"[REDACTED]\","
        "\"summary\":\"token in a value stays\"}");
    free(s);
    /* digest binds the unredacted arguments */
    char d1[65], d2[65];
    tg_audit_args_digest(args, d1);
    tg_audit_args_digest(red, d2);
    assert_string_not_equal(d1, d2);
    json_decref(red);
    /* custom patterns replace the defaults; exact names match case-insensitively */
    const char *pat[] = {"summary", "ti?le"};
    red = tg_audit_redact(args, pat, 2);
    assert_string_equal(json_string_value(json_object_get(red, "summary")), "[REDACTED]");
    assert_string_equal(json_string_value(json_object_get(red, "refresh_TOKEN")), "t");
    json_t *item = json_array_get(json_object_get(red, "items"), 0);
    assert_string_equal(json_string_value(json_object_get(item, "title")), "[REDACTED]");
    json_decref(red);
    json_decref(args);
    assert_null(tg_audit_redact(NULL, NULL, 0));
}

/* ------------------------------------------------------------------ canonical arguments */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static unsigned rnd(unsigned n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state % n);
}

/* Strings that exercise every escaping rule: quotes, backslash, each control character
 * (short escapes and \u00XX), 0x7f and '/' (left alone), multi-byte UTF-8, and keys that
 * are prefixes of one another (sorting by bytes, then length), some of them redacted by
 * the default patterns. No NUL: the parser refuses \u0000, so arguments never hold one. */
static json_t *gen_string(void)
{
    static const char *const parts[] = {"a", "ab", "B", "\"", "\\", "/", "\x7f", "\x01",
        "\x1f", "\b", "\f", "\n", "\r", "\t", "é", "€", "😀", "z", " ", "issue_key", "OPS-12",
        "Token", "password"};
    char buf[256];
    size_t n = 0;
    for (unsigned i = rnd(6); i > 0; i--) {
        const char *p = parts[rnd(sizeof parts / sizeof *parts)];
        memcpy(buf + n, p, strlen(p));
        n += strlen(p);
        /* plain runs of up to 20 bytes between the parts: the escaping looks at sixteen
         * bytes at a time, so what ends a run must land at every offset of a block */
        for (unsigned k = rnd(21); k > 0; k--) buf[n++] = (char)('c' + rnd(20));
    }
    return json_stringn(buf, n);
}

static json_t *gen_value(int depth)
{
    static const double reals[] = {0.5, -0.0, 1e300, 1.5e-7, 123456789.125, 3.0, 1e22, -2.5e-300,
                                   0.1, 100.0};
    switch (rnd(depth > 3 ? 6 : 8)) {
    case 0: return json_integer((json_int_t)rnd(2000000) - 1000000);
    case 1: return json_integer(rnd(2) ? INT64_MAX : INT64_MIN);
    case 2: return json_real(reals[rnd(sizeof reals / sizeof *reals)]);
    case 3: return gen_string();
    case 4: return rnd(3) == 0 ? json_null() : json_boolean(rnd(2));
    case 5: return json_string("plain");
    case 6: {
        json_t *a = json_array();
        for (unsigned i = rnd(5); i > 0; i--) json_array_append_new(a, gen_value(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (unsigned i = rnd(20); i > 0; i--) {
            json_t *k = gen_string();
            json_object_setn_new(o, json_string_value(k), json_string_length(k),
                                 gen_value(depth + 1));
            json_decref(k);
        }
        return o;
    }
    }
}

/* The arguments' canonical text (digest and stored body) is exactly what jansson's
 * json_dumps(JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) writes, of the arguments and
 * of their redacted copy, so digests and chains made before and after the writer's own
 * serialiser agree. The writer reads the scanned request, so the values are scanned from
 * text here as well, in document order and with escapes the parser decodes. */
static void test_args_text_matches_jansson(void **state)
{
    (void)state;
    const char *const *pat = tg_audit_default_redact;
    size_t npat = 0;
    while (pat[npat]) npat++;
    int redactions = 0;
    for (int i = 0; i < 5000; i++) {
        json_t *v = gen_value(0), *red = tg_audit_redact(v, NULL, 0);
        char *want = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        char *want_red = json_dumps(red, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        /* escapes as a client may write them: jansson's \u escapes for non-ASCII */
        char *text = json_dumps(v, JSON_ENCODE_ANY | (i % 2 ? JSON_ENSURE_ASCII : 0));
        tg_jdoc d = TG_JDOC_INIT;
        tg_error err;
        if (tg_jscan(&d, text, strlen(text), 0, &err) != 0) fail_msg("case %d: %s", i, err.msg);
        tg_buf got = TG_BUF_INIT, got_red = TG_BUF_INIT;
        assert_false(audit_args_canon((tg_jref){&d, 0}, NULL, 0, &got));
        bool redacted = audit_args_canon((tg_jref){&d, 0}, pat, npat, &got_red);
        if (strcmp(want, got.data) != 0)
            fail_msg("case %d:\n  jansson %s\n  ours    %s", i, want, got.data);
        if (strcmp(want_red, got_red.data) != 0)
            fail_msg("case %d redacted:\n  jansson %s\n  ours    %s", i, want_red, got_red.data);
        if (strcmp(want, want_red) != 0) assert_true(redacted); /* said when it changed */
        if (!redacted) assert_string_equal(want, want_red);
        redactions += redacted;
        tg_buf_free(&got);
        tg_buf_free(&got_red);
        tg_jdoc_free(&d);
        free(text);
        free(want);
        free(want_red);
        json_decref(red);
        json_decref(v);
    }
    assert_true(redactions > 100);
    tg_buf null_text = TG_BUF_INIT;
    audit_args_canon((tg_jref){NULL, -1}, NULL, 0, &null_text);
    assert_string_equal(null_text.data, "null");
    tg_buf_free(&null_text);
}

/* Redaction matches keys as fnmatch(pattern, key, FNM_CASEFOLD) does, whichever way the
 * writer asks (it answers "*word*" patterns without fnmatch). */
static void test_redact_patterns_fnmatch(void **state)
{
    (void)state;
    static const char *const pats[] = {"*token*", "*Pass*", "*a?c*", "*[xy]z*", "*\\**", "**",
                                       "*", "key", "*é*", "*_*", "k*y", "*ab*"};
    static const char *const bits[] = {"a", "b", "c", "A", "B", "TOKEN", "tok", "en", "x",
                                       "Y", "z", "*", "_", "é", "É", "pass", "key", "?"};
    for (size_t p = 0; p < sizeof pats / sizeof *pats; p++) {
        for (int i = 0; i < 3000; i++) {
            char key[64] = "";
            for (unsigned k = rnd(6); k > 0; k--) strcat(key, bits[rnd(sizeof bits / sizeof *bits)]);
            json_t *v = json_pack("{s:i}", key, 1);
            json_t *red = tg_audit_redact(v, &pats[p], 1);
            bool want = fnmatch(pats[p], key, FNM_CASEFOLD) == 0;
            bool got = json_is_string(json_object_get(red, key));
            if (want != got) fail_msg("pattern %s, key \"%s\": fnmatch %d, redacted %d", pats[p],
                                      key, want, got);
            json_decref(red);
            json_decref(v);
        }
    }
}

static void test_chain_hash(void **state)
{
    (void)state;
    char zero[65], h1[65], h2[65], h3[65];
    memset(zero, '0', 64);
    zero[64] = '\0';
    tg_audit_chain_hash(zero, 1, "{}", 2, h1);
    tg_audit_chain_hash(zero, 2, "{}", 2, h2);
    tg_audit_chain_hash(h1, 1, "{}", 2, h3);
    assert_string_not_equal(h1, h2);   /* the sequence number is bound */
    assert_string_not_equal(h1, h3);   /* the previous hash is bound */
    /* = SHA-256("000…0\n1\n{}") */
    char expect[65];
    const char *msg = "0000000000000000000000000000000000000000000000000000000000000000\n1\n{}";
    tg_sha256_hex(msg, strlen(msg), expect);
    assert_string_equal(h1, expect);
    /* verify hashes stored rows, whose prev_hash a tamperer can make any length */
    char long_prev[301];
    memset(long_prev, 'x', 300);
    long_prev[300] = '\0';
    tg_audit_chain_hash(long_prev, -9223372036854775807LL, "{\"a\":1}", 7, h1);
    tg_buf b = TG_BUF_INIT;
    tg_buf_printf(&b, "%s\n-9223372036854775807\n{\"a\":1}", long_prev);
    tg_sha256_hex(b.data, b.len, expect);
    assert_string_equal(h1, expect);
    tg_buf_free(&b);
}

static void test_keys_and_checkpoints(void **state)
{
    (void)state;
    char priv[128], pub[128], other[128];
    snprintf(priv, sizeof priv, "%s/k", tmpdir);
    snprintf(pub, sizeof pub, "%s/k.pub", tmpdir);
    snprintf(other, sizeof other, "%s/o", tmpdir);
    tg_error err;
    assert_int_equal(tg_audit_keygen(priv, &err), 0);
    assert_int_equal(tg_audit_keygen(other, &err), 0);
    struct stat st;
    assert_int_equal(stat(priv, &st), 0);
    assert_int_equal(st.st_mode & 077, 0);            /* private key readable by owner only */
    assert_int_equal(tg_audit_keygen(priv, &err), -1); /* never overwritten */
    audit_key *k = audit_key_load(priv, 1, &err), *p = audit_key_load(pub, 0, &err);
    assert_non_null(k);
    assert_non_null(p);
    assert_string_equal(audit_key_id(k), audit_key_id(p));
    assert_null(audit_key_load(pub, 1, &err));          /* a public key cannot sign */
    assert_null(audit_key_load("/nonexistent", 0, &err));
    assert_non_null(strstr(err.msg, "/nonexistent"));

    char zero[65];
    memset(zero, 'a', 64);
    zero[64] = '\0';
    audit_cp cp = {.kind = "checkpoint", .instance = "gw", .seq = 10, .hash = zero,
                   .time_ms = 5};
    tg_store_checkpoint_row row;
    char *blob;
    assert_int_equal(audit_cp_make(&cp, k, &row, &blob, &err), 0);
    assert_string_equal(row.kind, "checkpoint");
    assert_string_equal(row.key_id, audit_key_id(k));
    assert_int_equal(audit_key_verify(p, row.body, strlen(row.body), row.signature), 1);
    /* any change to the body or the signature fails; so does another key */
    tg_buf b = TG_BUF_INIT;
    tg_buf_appends(&b, row.body);
    b.data[strlen("{\"v\":1,\"type\":\"checkpoint\",\"instance\":\"gw\",\"seq\":")] = '9';
    assert_int_equal(audit_key_verify(p, b.data, b.len, row.signature), 0);
    tg_buf_free(&b);
    audit_key *o = audit_key_load(other, 0, &err);
    assert_int_equal(audit_key_verify(o, row.body, strlen(row.body), row.signature), 0);
    assert_int_equal(audit_key_verify(p, row.body, strlen(row.body), "AAAA"), 0);
    audit_cp back;
    json_t *holder;
    assert_int_equal(audit_cp_parse(row.body, &back, &holder, &err), 0);
    assert_int_equal(back.seq, 10);
    assert_string_equal(back.hash, zero);
    json_decref(holder);
    free(blob);
    /* a prune note carries what was deleted */
    cp.kind = "prune";
    cp.before_ms = 77;
    cp.deleted = 3;
    assert_int_equal(audit_cp_make(&cp, k, &row, &blob, &err), 0);
    assert_int_equal(audit_cp_parse(row.body, &back, &holder, &err), 0);
    assert_int_equal(back.deleted, 3);
    assert_int_equal(back.before_ms, 77);
    json_decref(holder);
    free(blob);
    audit_key_free(k);
    audit_key_free(p);
    audit_key_free(o);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tg-audit-test.XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_round_trip),
        cmocka_unit_test(test_canonical_rejects),
        cmocka_unit_test(test_canonical_strings),
        cmocka_unit_test(test_redaction),
        cmocka_unit_test(test_args_text_matches_jansson),
        cmocka_unit_test(test_redact_patterns_fnmatch),
        cmocka_unit_test(test_chain_hash),
        cmocka_unit_test(test_keys_and_checkpoints),
    };
    int failed = cmocka_run_group_tests_name("audit", tests, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return failed;
}
