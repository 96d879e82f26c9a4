/*
 * test_auth_apikey.c — API keys and the network fences: `keys create/revoke/rotate`
 * semantics, verification through tg_auth_authenticate with the in-memory store,
 * CIDR fences (IPv4, IPv6, IPv4-mapped peers), rotation overlap, maximum lifetime, and
 * client-address resolution behind trusted proxies. API-key checks are synchronous, so
 * no loop has to run.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "auth/tg_auth.h"
#include "auth_testkit.h"

#define CH_INVALID "Bearer error=\"invalid_token\", realm=\"toolgate\""
#define CH_NONE "Bearer realm=\"toolgate\""

static struct {
    uv_loop_t loop;
    tg_apikey_store *st;
    tg_auth_conf conf;
    tg_auth *a;
    tg_arena *arena;
} g;


static tk_outcome auth_as(const char *token, const char *peer, const char *xff, const char *fwd)
{
    tk_outcome o = {0};
    tg_auth_input in = {
        .authorization = token ? tg_arena_sprintf(g.arena, "Bearer %s", token) : NULL,
        .peer_ip = peer, .x_forwarded_for = xff, .forwarded = fwd,
    };
    assert_null(tg_auth_authenticate(g.a, &in, g.arena, tk_on_result, &o));
    assert_int_equal(o.done, 1);  /* API keys never wait */
    return o;
}

static tk_outcome auth_key(const char *token, const char *peer) { return auth_as(token, peer, NULL, NULL); }

static void new_auth(void)
{
    tg_error err;
    tg_auth_free(g.a);
    g.a = tg_auth_new(&g.loop, &g.conf, &err);
    if (!g.a) fail_msg("tg_auth_new: %s", err.msg);
}

/* Creates and stores a key; returns its token (arena). */
static const char *make_key(const tg_apikey_params *p, tg_apikey_record *rec_out)
{
    tg_apikey_record rec;
    char token[TG_APIKEY_TOKEN_LEN + 1];
    tg_error err;
    if (tg_apikey_create(p, tg_wall_ms() / 1000, g.conf.api_key_max_lifetime_s, g.arena, &rec,
                         token, &err) != 0)
        fail_msg("create: %s", err.msg);
    assert_int_equal(g.st->put(g.st->ctx, &rec, &err), 0);
    if (rec_out) *rec_out = rec;
    return tg_arena_strdup(g.arena, token);
}

static void edit_record(const char *id, void (*edit)(tg_apikey_record *))
{
    tg_apikey_record r;
    tg_error err;
    assert_int_equal(g.st->get(g.st->ctx, id, g.arena, &r, &err), 1);
    edit(&r);
    assert_int_equal(g.st->put(g.st->ctx, &r, &err), 0);
}

static int setup(void **state)
{
    uv_loop_init(&g.loop);
    g.st = tg_apikey_memstore_new();
    memset(&g.conf, 0, sizeof g.conf);
    g.conf.api_keys_enabled = 1;
    g.conf.key_store = g.st;
    g.conf.token_cache_size = 4;
    g.arena = tg_arena_new(0);
    g.a = NULL;
    new_auth();
    return 0;
}

static int teardown(void **state)
{
    tg_auth_free(g.a);
    g.a = NULL;
    tg_apikey_memstore_free(g.st);
    tg_arena_free(g.arena);
    uv_loop_close(&g.loop);
    return 0;
}

/* ---------------------------------------------------------------- tests */

static void create_then_verify(void **state)
{
    static const char *groups[] = {"eng", "oncall"};
    tg_apikey_params p = {.agent = "ci-bot", .delegator = "alice", .groups = groups, .n_groups = 2,
                          .ttl_s = 3600, .note = "CI pipeline"};
    tg_apikey_record rec;
    const char *tok = make_key(&p, &rec);
    assert_int_equal(strlen(tok), TG_APIKEY_TOKEN_LEN);
    assert_true(strncmp(tok, "tgk_", 4) == 0);
    assert_memory_equal(tok + 4, rec.id, TG_APIKEY_ID_LEN);
    /* The secret is not in the record; the hash is of id + secret. */
    assert_null(strstr(rec.secret_hash, tok + 5 + TG_APIKEY_ID_LEN));
    char h[TG_APIKEY_HASH_LEN + 1];
    tg_apikey_hash(rec.id, tok + 5 + TG_APIKEY_ID_LEN, TG_APIKEY_SECRET_LEN, h);
    assert_string_equal(h, rec.secret_hash);

    tk_outcome o = auth_key(tok, "127.0.0.1");
    assert_int_equal(o.status, 200);
    assert_string_equal(o.id->method, "api_key");
    assert_string_equal(o.id->agent, "ci-bot");
    assert_string_equal(o.id->delegator, "alice");
    assert_int_equal(o.id->n_groups, 2);
    assert_string_equal(o.id->groups[1], "oncall");
    assert_string_equal(o.id->credential_id, rec.id);
    assert_string_equal(o.id->client_ip, "127.0.0.1");
    assert_null(o.id->issuer);
    assert_int_equal(o.id->expires_at, rec.expires);
    char pk[64];
    snprintf(pk, sizeof pk, "api_key:%s", rec.id);
    assert_string_equal(o.id->principal_key, pk);

    /* last_used was recorded; list shows the key without any secret. */
    tg_apikey_record *all;
    size_t n;
    tg_error err;
    assert_int_equal(g.st->list(g.st->ctx, g.arena, &all, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_true(all[0].last_used > 0);
    assert_string_equal(all[0].note, "CI pipeline");

    /* Two keys never share id or secret. */
    const char *tok2 = make_key(&p, NULL);
    assert_string_not_equal(tok, tok2);
    assert_memory_not_equal(tok + 4, tok2 + 4, TG_APIKEY_ID_LEN);
}

static void wrong_secret_unknown_id_malformed(void **state)
{
    tg_apikey_params p = {.agent = "a", .ttl_s = 60};
    const char *tok = make_key(&p, NULL);
    char *bad = tg_arena_strdup(g.arena, tok);
    bad[TG_APIKEY_TOKEN_LEN - 2] = bad[TG_APIKEY_TOKEN_LEN - 2] == 'A' ? 'B' : 'A';
    tk_outcome o = auth_key(bad, "127.0.0.1");
    assert_int_equal(o.status, 401);
    assert_string_equal(o.www, CH_INVALID);
    assert_string_equal(o.msg, "invalid credentials");
    assert_non_null(strstr(o.why, "wrong secret"));

    char *other = tg_arena_strdup(g.arena, tok);
    memcpy(other + 4, "aaaaaaaaaaaa", TG_APIKEY_ID_LEN);
    o = auth_key(other, "127.0.0.1");
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "unknown API key id"));

    const char *malformed[] = {"tgk_short", tg_arena_sprintf(g.arena, "%sA", tok),
                               tg_arena_sprintf(g.arena, "tgk_AAAAAAAAAAAA_%s",
                                                tok + 5 + TG_APIKEY_ID_LEN)};
    for (size_t i = 0; i < 3; i++) {
        o = auth_key(malformed[i], "127.0.0.1");
        assert_int_equal(o.status, 401);
        assert_string_equal(o.www, CH_INVALID);
    }
    /* No credentials at all: a challenge without error=. */
    o = auth_key(NULL, "127.0.0.1");
    assert_int_equal(o.status, 401);
    assert_string_equal(o.www, CH_NONE);
}

static void set_expired(tg_apikey_record *r) { r->expires = tg_wall_ms() / 1000 - 1; }

static void expired_and_revoked(void **state)
{
    tg_apikey_params p = {.agent = "a", .ttl_s = 60};
    tg_apikey_record rec;
    const char *tok = make_key(&p, &rec);
    edit_record(rec.id, set_expired);
    tk_outcome o = auth_key(tok, "127.0.0.1");
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "expired at"));

    tok = make_key(&p, &rec);
    assert_int_equal(auth_key(tok, "127.0.0.1").status, 200);
    tg_error err;
    assert_int_equal(tg_apikey_revoke(g.st, rec.id, tg_wall_ms() / 1000, &err), 0);
    o = auth_key(tok, "127.0.0.1");
    assert_int_equal(o.status, 401);
    assert_string_equal(o.msg, "invalid credentials");
    assert_non_null(strstr(o.why, "revoked at"));
    assert_int_equal(tg_apikey_revoke(g.st, "bbbbbbbbbbbb", 1, &err), -1);
    assert_non_null(strstr(err.msg, "no API key with id"));
    /* A revoked key cannot be rotated back to life. */
    char t2[TG_APIKEY_TOKEN_LEN + 1];
    assert_int_equal(tg_apikey_rotate(g.st, rec.id, tg_wall_ms() / 1000, 60, t2, &err), -1);
}

static void per_key_cidrs(void **state)
{
    static const char *v4[] = {"127.0.0.2"};
    tg_apikey_params p = {.agent = "a", .ttl_s = 60, .cidrs = v4, .n_cidrs = 1};
    tg_apikey_record rec;
    const char *tok = make_key(&p, &rec);
    assert_string_equal(rec.cidrs[0], "127.0.0.2/32");  /* canonicalised */
    assert_int_equal(auth_key(tok, "127.0.0.2").status, 200);
    tk_outcome o = auth_key(tok, "127.0.0.1");
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "client 127.0.0.1 outside the CIDRs"));
    /* A dual-stack socket reports IPv4 clients IPv4-mapped. */
    assert_int_equal(auth_key(tok, "::ffff:127.0.0.2").status, 200);
    assert_int_equal(auth_key(tok, "::ffff:127.0.0.1").status, 401);
    assert_int_equal(auth_key(tok, "::1").status, 401);

    static const char *v6[] = {"::1/128", "10.0.0.0/8"};
    p.cidrs = v6;
    p.n_cidrs = 2;
    tok = make_key(&p, NULL);
    assert_int_equal(auth_key(tok, "::1").status, 200);
    assert_int_equal(auth_key(tok, "10.200.3.4").status, 200);
    assert_int_equal(auth_key(tok, "::2").status, 401);
    assert_int_equal(auth_key(tok, "11.0.0.1").status, 401);

    static const char *bad[] = {"10.0.0.1/8"};
    p.cidrs = bad;
    p.n_cidrs = 1;
    tg_apikey_record r;
    char t[TG_APIKEY_TOKEN_LEN + 1];
    tg_error err;
    assert_int_equal(tg_apikey_create(&p, 0, 0, g.arena, &r, t, &err), -1);
    assert_non_null(strstr(err.msg, "bits set"));
}

static void global_cidrs(void **state)
{
    static const char *allowed[] = {"127.0.0.2/32", "2001:db8::/32"};
    g.conf.api_key_cidrs = allowed;
    g.conf.n_api_key_cidrs = 2;
    new_auth();
    tg_apikey_params p = {.agent = "a", .ttl_s = 60};
    const char *tok = make_key(&p, NULL);
    assert_int_equal(auth_key(tok, "127.0.0.2").status, 200);
    assert_int_equal(auth_key(tok, "2001:db8:1::5").status, 200);
    tk_outcome o = auth_key(tok, "127.0.0.1");
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "api_keys.allowed_cidrs"));
}

static void end_overlap(tg_apikey_record *r) { r->prev_expires = tg_wall_ms() / 1000 - 1; }

static void rotation_overlap(void **state)
{
    tg_apikey_params p = {.agent = "a", .ttl_s = 3600};
    tg_apikey_record rec;
    const char *old = make_key(&p, &rec);
    char fresh[TG_APIKEY_TOKEN_LEN + 1];
    tg_error err;
    assert_int_equal(tg_apikey_rotate(g.st, rec.id, tg_wall_ms() / 1000, 600, fresh, &err), 0);
    assert_memory_equal(fresh + 4, rec.id, TG_APIKEY_ID_LEN);  /* same key id */
    assert_string_not_equal(fresh, old);
    assert_int_equal(auth_key(old, "127.0.0.1").status, 200);
    assert_int_equal(auth_key(fresh, "127.0.0.1").status, 200);
    /* Same principal before and after rotation: sessions survive it. */
    assert_string_equal(auth_key(old, "127.0.0.1").id->principal_key,
                        auth_key(fresh, "127.0.0.1").id->principal_key);

    edit_record(rec.id, end_overlap);  /* the overlap is over */
    tk_outcome o = auth_key(old, "127.0.0.1");
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "rotation overlap ended"));
    assert_int_equal(auth_key(fresh, "127.0.0.1").status, 200);

    /* Rotating again: only the secret being replaced overlaps; the oldest stops. */
    char third[TG_APIKEY_TOKEN_LEN + 1];
    assert_int_equal(tg_apikey_rotate(g.st, rec.id, tg_wall_ms() / 1000, 600, third, &err), 0);
    assert_int_equal(auth_key(fresh, "127.0.0.1").status, 200);
    assert_int_equal(auth_key(third, "127.0.0.1").status, 200);
    assert_int_equal(auth_key(old, "127.0.0.1").status, 401);
    /* Overlap 0: the replaced secret stops at once. */
    char fourth[TG_APIKEY_TOKEN_LEN + 1];
    assert_int_equal(tg_apikey_rotate(g.st, rec.id, tg_wall_ms() / 1000, 0, fourth, &err), 0);
    assert_int_equal(auth_key(third, "127.0.0.1").status, 401);
    assert_int_equal(auth_key(fourth, "127.0.0.1").status, 200);
}

static void no_expiry(tg_apikey_record *r) { r->expires = 0; }

static void max_lifetime(void **state)
{
    g.conf.api_key_max_lifetime_s = 86400;
    new_auth();
    tg_apikey_params p = {.agent = "a", .ttl_s = 86401};
    tg_apikey_record rec;
    char tok[TG_APIKEY_TOKEN_LEN + 1];
    tg_error err;
    assert_int_equal(tg_apikey_create(&p, 1000, 86400, g.arena, &rec, tok, &err), -1);
    assert_non_null(strstr(err.msg, "max_lifetime"));
    p.ttl_s = 0;  /* never expiring is longer than any maximum */
    assert_int_equal(tg_apikey_create(&p, 1000, 86400, g.arena, &rec, tok, &err), -1);
    p.ttl_s = 86400;
    const char *t = make_key(&p, &rec);
    assert_int_equal(auth_key(t, "127.0.0.1").status, 200);
    /* A key stored before the maximum was lowered (here: never expiring) is refused. */
    edit_record(rec.id, no_expiry);
    tk_outcome o = auth_key(t, "127.0.0.1");
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "max_lifetime"));
}

static void methods_disabled(void **state)
{
    tg_apikey_params p = {.agent = "a", .ttl_s = 60};
    const char *tok = make_key(&p, NULL);
    static tg_auth_issuer_conf iss = {"https://login.example.com", "https://login.example.com/jwks"};
    g.conf.api_keys_enabled = 0;
    g.conf.oauth_enabled = 1;
    g.conf.resource = "https://toolgate.example/mcp";
    g.conf.issuers = &iss;
    g.conf.n_issuers = 1;
    new_auth();
    tk_outcome o = auth_key(tok, "127.0.0.1");
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "API keys are disabled"));
    assert_string_equal(o.www, "Bearer error=\"invalid_token\", resource_metadata=\""
                        "https://toolgate.example/.well-known/oauth-protected-resource/mcp\"");
    /* API keys only: a JWT-looking token is refused without any fetch. */
    g.conf.api_keys_enabled = 1;
    g.conf.oauth_enabled = 0;
    new_auth();
    o = auth_key("eyJhbGciOiJFUzI1NiJ9.e30.c2ln", "127.0.0.1");
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "OAuth is disabled"));
}

static void trusted_proxies(void **state)
{
    static const char *proxies[] = {"10.0.0.0/8", "fd00::/8"};
    static const char *only[] = {"203.0.113.0/24"};
    g.conf.trusted_proxies = proxies;
    g.conf.n_trusted_proxies = 2;
    new_auth();
    tg_apikey_params p = {.agent = "a", .ttl_s = 60, .cidrs = only, .n_cidrs = 1};
    const char *tok = make_key(&p, NULL);

    /* From a trusted proxy: the right-most untrusted address is the client. */
    tk_outcome o = auth_as(tok, "10.0.0.1", "198.51.100.7, 203.0.113.9, 10.0.0.5", NULL);
    assert_int_equal(o.status, 200);
    assert_string_equal(o.id->client_ip, "203.0.113.9");
    /* A client cannot spoof by prepending: the left-most entry is ignored. */
    o = auth_as(tok, "10.0.0.1", "203.0.113.9, 198.51.100.7", NULL);
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "198.51.100.7"));
    /* From an untrusted peer, X-Forwarded-For is ignored. */
    o = auth_as(tok, "198.51.100.1", "203.0.113.9", NULL);
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "client 198.51.100.1"));
    /* Forwarded (RFC 7239) with quoting, ports and IPv6, preferred over X-Forwarded-For. */
    o = auth_as(tok, "fd00::1", "198.51.100.9",
                "for=198.51.100.1;proto=https, for=\"203.0.113.44:4711\";by=x, for=\"[fd00::7]:80\"");
    assert_int_equal(o.status, 200);
    assert_string_equal(o.id->client_ip, "203.0.113.44");
    /* Garbage or "unknown" from a trusted proxy fails closed. */
    o = auth_as(tok, "10.0.0.1", "203.0.113.9, not-an-ip", NULL);
    assert_int_equal(o.status, 400);
    assert_non_null(strstr(o.why, "unusable entry"));
    o = auth_as(tok, "10.0.0.1", NULL, "for=unknown");
    assert_int_equal(o.status, 400);
    /* Every hop trusted: the left-most is the best knowledge. */
    o = auth_as(tok, "10.0.0.1", "10.9.9.9, 10.0.0.5", NULL);
    assert_string_equal(auth_as(NULL, "10.0.0.1", "10.9.9.9, 10.0.0.5", NULL).www, CH_NONE);
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "client 10.9.9.9"));

    /* The last peer is kept parsed per thread: each call still reads its own peer, with
     * or without forwarded headers, and a bad one after a good one is refused. */
    static const struct { const char *peer, *xff, *client; } seq[] = {
        {"203.0.113.5", NULL, "203.0.113.5"}, {"203.0.113.5", NULL, "203.0.113.5"},
        {"203.0.113.6", NULL, "203.0.113.6"}, {"10.0.0.1", "203.0.113.9", "203.0.113.9"},
        {"10.0.0.1", "203.0.113.7", "203.0.113.7"}, {"::ffff:203.0.113.8", NULL, "203.0.113.8"},
        {"not-an-ip", NULL, NULL}, {"203.0.113.5", NULL, "203.0.113.5"},
    };
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
        o = auth_as(tok, seq[i].peer, seq[i].xff, NULL);
        if (!seq[i].client) {
            assert_int_not_equal(o.status, 200);
            continue;
        }
        assert_int_equal(o.status, 200);
        assert_string_equal(o.id->client_ip, seq[i].client);
    }
    o = auth_as(tok, "10.0.0.1", NULL, NULL);
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "client 10.0.0.1"));
}

static void cidr_parsing(void **state)
{
    static const struct { const char *in, *canon; } ok[] = {
        {"10.0.0.0/8", "10.0.0.0/8"}, {"127.0.0.1", "127.0.0.1/32"}, {"0.0.0.0/0", "0.0.0.0/0"},
        {"2001:DB8::/32", "2001:db8::/32"}, {"::1", "::1/128"}, {"::/0", "::/0"},
        {"[::1]/128", "::1/128"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        tg_cidr c;
        char out[64];
        tg_error err;
        if (tg_cidr_parse(ok[i].in, &c, &err) != 0) fail_msg("%s: %s", ok[i].in, err.msg);
        tg_cidr_format(&c, out, sizeof out);
        assert_string_equal(out, ok[i].canon);
    }
    static const char *bad[] = {"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/08", "::/129", "10.0.0",
                                "10.0.0.1/8", "fe80::1%eth0", "010.0.0.1", "1.2.3.4/-1", "", "a/b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tg_cidr c;
        tg_error err;
        if (tg_cidr_parse(bad[i], &c, &err) == 0) fail_msg("%s accepted", bad[i]);
    }
    tg_cidr c;
    tg_error err;
    uint8_t ip[16];
    assert_int_equal(tg_cidr_parse("192.168.0.0/23", &c, &err), 0);
    assert_int_equal(tg_ip_parse("192.168.1.255", 13, ip), 0);
    assert_true(tg_cidr_contains(&c, ip));
    assert_int_equal(tg_ip_parse("192.168.2.0", 11, ip), 0);
    assert_false(tg_cidr_contains(&c, ip));
    /* ::/0 is IPv6 space, which includes IPv4-mapped addresses by construction. */
    assert_int_equal(tg_cidr_parse("::/0", &c, &err), 0);
    assert_true(tg_cidr_contains(&c, ip));
}

static int fail_get(void *ctx, const char *id, tg_arena *a, tg_apikey_record *out, tg_error *err)
{
    return tg_error_set(err, "disk on fire");
}

static void store_errors_are_503(void **state)
{
    tg_apikey_params p = {.agent = "a", .ttl_s = 60};
    const char *tok = make_key(&p, NULL);
    /* A store that fails: the client is told to retry, not that its key is bad. */
    tg_apikey_store st = *g.st;
    st.get = fail_get;
    g.conf.key_store = &st;
    new_auth();
    tk_outcome o = auth_key(tok, "127.0.0.1");
    assert_int_equal(o.status, 503);
    assert_null(o.www);
    assert_non_null(strstr(o.why, "disk on fire"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(create_then_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_secret_unknown_id_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(expired_and_revoked, setup, teardown),
        cmocka_unit_test_setup_teardown(per_key_cidrs, setup, teardown),
        cmocka_unit_test_setup_teardown(global_cidrs, setup, teardown),
        cmocka_unit_test_setup_teardown(rotation_overlap, setup, teardown),
        cmocka_unit_test_setup_teardown(max_lifetime, setup, teardown),
        cmocka_unit_test_setup_teardown(methods_disabled, setup, teardown),
        cmocka_unit_test_setup_teardown(trusted_proxies, setup, teardown),
        cmocka_unit_test_setup_teardown(cidr_parsing, setup, teardown),
        cmocka_unit_test_setup_teardown(store_errors_are_503, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
