/*
 * test_auth_jwt.c — the OAuth resource server end to end at the library boundary: keys
 * generated with OpenSSL, tokens signed here, a JWKS served by a local HTTP server
 * (auth_testkit), tg_auth_authenticate driven on a real libuv loop. Each test asserts
 * what a client or operator relies on: the status, the exact WWW-Authenticate value,
 * the identity, and that refusals never reach success.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <curl/curl.h>

#include "auth/tg_auth.h"
#include "auth_testkit.h"

#define RESOURCE "https://toolgate.example/mcp"
#define MD_URL "https://toolgate.example/.well-known/oauth-protected-resource/mcp"
#define CH_NONE "Bearer resource_metadata=\"" MD_URL "\", scope=\"mcp:tools\""
#define CH_INVALID "Bearer error=\"invalid_token\", resource_metadata=\"" MD_URL "\", scope=\"mcp:tools\""
#define CH_SCOPE "Bearer error=\"insufficient_scope\", resource_metadata=\"" MD_URL "\", scope=\"mcp:tools\""
#define CH_REQUEST "Bearer error=\"invalid_request\", resource_metadata=\"" MD_URL "\", scope=\"mcp:tools\""

enum { K_RS256, K_RS384, K_RS512, K_RSNOALG, K_PS256, K_PS384, K_PS512, K_ES256, K_ES384, K_ED, NKEYS };

static struct {
    uv_loop_t loop;
    tk_server *srv;
    tk_key keys[NKEYS];
    tk_key rotated;         /* not published until the rotation test */
    char issuer[64], jwks_url[96];
    tg_auth_conf conf;
    tg_auth_issuer_conf iss;
    tg_auth *a;
    tg_arena *arena;
} g;

static const char *required[] = {"mcp:tools"};

/* ---------------------------------------------------------------- helpers */


/* Runs one authentication to completion (bounded: 10 s). */
static tk_outcome auth_full(const char *authorization, const char *query, const char *peer)
{
    tk_outcome o = {0};
    tg_auth_input in = {.authorization = authorization, .query = query,
                        .peer_ip = peer ? peer : "127.0.0.1"};
    tg_auth_authenticate(g.a, &in, g.arena, tk_on_result, &o);
    tk_run_until(&g.loop, &o, 10000);
    assert_int_equal(o.done, 1);
    return o;
}

static tk_outcome auth_token(const char *token)
{
    char *h = tg_arena_sprintf(g.arena, "Bearer %s", token);
    return auth_full(h, NULL, NULL);
}

/* Claims with the usual good values; extra is spliced in (",\"k\":v" …). */
static char *claims(const char *iss, const char *aud, long exp_off, const char *extra)
{
    long now = (long)(tg_wall_ms() / 1000);
    return tg_arena_sprintf(g.arena,
        "{\"iss\":\"%s\",\"sub\":\"alice\",\"aud\":%s,\"exp\":%ld,\"iat\":%ld,"
        "\"scope\":\"mcp:tools openid\",\"azp\":\"claude-code\",\"email\":\"alice@example.com\"%s}",
        iss ? iss : g.issuer, aud ? aud : "\"" RESOURCE "\"", now + exp_off, now - 10,
        extra ? extra : "");
}

static char *good_claims(void) { return claims(NULL, NULL, 600, NULL); }

/* Signs and returns an arena copy. */
static const char *sign(const tk_key *k, const char *alg, const char *header, const char *payload)
{
    char *t = tk_sign(k, alg, header, payload);
    const char *c = tg_arena_strdup(g.arena, t);
    free(t);
    return c;
}

static void publish(const tk_key *const *keys, size_t n)
{
    char *jwks = tk_jwks(keys, n, 1);
    tk_server_route(g.srv, "/jwks", 200, jwks);
    free(jwks);
}

static void publish_default(void)
{
    const tk_key *pub[NKEYS];
    for (int i = 0; i < NKEYS; i++) pub[i] = &g.keys[i];
    /* K_RSNOALG is published without "alg": it must verify RS256 only. */
    char *with = tk_jwks(pub, NKEYS, 1);
    char *noalg = tk_jwk(&g.keys[K_RSNOALG], 0), *alg = tk_jwk(&g.keys[K_RSNOALG], 1);
    char *p = strstr(with, alg);
    assert_non_null(p);
    size_t n = strlen(with) - strlen(alg) + strlen(noalg) + 1;
    char *doc = malloc(n);
    snprintf(doc, n, "%.*s%s%s", (int)(p - with), with, noalg, p + strlen(alg));
    tk_server_route(g.srv, "/jwks", 200, doc);
    free(doc);
    free(with);
    free(noalg);
    free(alg);
}

static void new_auth(void)
{
    tg_error err;
    tg_auth_free(g.a);
    g.a = tg_auth_new(&g.loop, &g.conf, &err);
    if (!g.a) fail_msg("tg_auth_new: %s", err.msg);
}

/* ---------------------------------------------------------------- fixtures */

static int group_setup(void **state)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);  /* tg_upstream_global_init's job in toolgate */
    uv_loop_init(&g.loop);
    g.srv = tk_server_start();
    snprintf(g.issuer, sizeof g.issuer, "http://127.0.0.1:%d", tk_server_port(g.srv));
    snprintf(g.jwks_url, sizeof g.jwks_url, "%s/jwks", g.issuer);
    tk_key_gen(&g.keys[K_RS256], "RS256", "rs256");
    tk_key_alias(&g.keys[K_RS384], &g.keys[K_RS256], "RS384", "rs384");
    tk_key_alias(&g.keys[K_RS512], &g.keys[K_RS256], "RS512", "rs512");
    tk_key_alias(&g.keys[K_RSNOALG], &g.keys[K_RS256], "RS256", "rs-noalg");
    tk_key_gen(&g.keys[K_PS256], "PS256", "ps256");
    tk_key_alias(&g.keys[K_PS384], &g.keys[K_PS256], "PS384", "ps384");
    tk_key_alias(&g.keys[K_PS512], &g.keys[K_PS256], "PS512", "ps512");
    tk_key_gen(&g.keys[K_ES256], "ES256", "es256");
    tk_key_gen(&g.keys[K_ES384], "ES384", "es384");
    tk_key_gen(&g.keys[K_ED], "EdDSA", "ed");
    tk_key_gen(&g.rotated, "ES256", "rotated");
    return 0;
}

static int group_teardown(void **state)
{
    for (int i = 0; i < NKEYS; i++) tk_key_free(&g.keys[i]);
    tk_key_free(&g.rotated);
    tk_server_stop(g.srv);
    uv_run(&g.loop, UV_RUN_DEFAULT);
    uv_loop_close(&g.loop);
    curl_global_cleanup();
    return 0;
}

static int setup(void **state)
{
    publish_default();
    memset(&g.conf, 0, sizeof g.conf);
    g.iss = (tg_auth_issuer_conf){g.issuer, g.jwks_url};
    g.conf.resource = RESOURCE;
    g.conf.oauth_enabled = 1;
    g.conf.issuers = &g.iss;
    g.conf.n_issuers = 1;
    g.conf.required_scopes = required;
    g.conf.n_required_scopes = 1;
    g.conf.token_cache_size = 16;
    g.arena = tg_arena_new(0);
    g.a = NULL;
    new_auth();
    return 0;
}

static int teardown(void **state)
{
    tg_auth_free(g.a);
    g.a = NULL;
    uv_run(&g.loop, UV_RUN_DEFAULT);  /* let any fetch in the pool finish */
    tg_arena_free(g.arena);
    return 0;
}

/* ---------------------------------------------------------------- tests */

static void valid_token_every_algorithm(void **state)
{
    for (int i = 0; i < NKEYS; i++) {
        tk_outcome o = auth_token(sign(&g.keys[i], NULL, NULL, good_claims()));
        if (o.status != 200) fail_msg("%s: %d %s", g.keys[i].kid, o.status, o.why);
        assert_string_equal(o.id->method, "oauth");
        assert_string_equal(o.id->delegator, "alice");
        assert_string_equal(o.id->agent, "claude-code");
        assert_string_equal(o.id->issuer, g.issuer);
        assert_string_equal(o.id->client_ip, "127.0.0.1");
        assert_int_equal(o.id->n_scopes, 2);
        assert_string_equal(o.id->scopes[0], "mcp:tools");
    }
    tg_auth_stats st;
    tg_auth_get_stats(g.a, &st);
    assert_int_equal(st.jwks_fetches, 1);  /* one fetch serves every key */
}

static void identity_mapping(void **state)
{
    const char *extra = ",\"jti\":\"tok-1\",\"client_id\":\"app-7\",\"groups\":[\"eng\",\"ops\"],"
                        "\"act\":{\"sub\":\"agent-x\",\"act\":{\"sub\":\"orchestrator\"}}";
    tk_outcome o = auth_token(sign(&g.keys[K_ES256], NULL, NULL, claims(NULL, NULL, 600, extra)));
    assert_int_equal(o.status, 200);
    assert_string_equal(o.id->agent, "agent-x");
    assert_int_equal(o.id->n_act, 2);
    assert_string_equal(o.id->act_chain[0], "agent-x");
    assert_string_equal(o.id->act_chain[1], "orchestrator");
    assert_int_equal(o.id->n_groups, 2);
    assert_string_equal(o.id->groups[1], "ops");
    assert_string_equal(o.id->credential_id, "tok-1");
    assert_string_equal(o.id->client_id, "app-7");
    assert_string_equal(o.id->email, "alice@example.com");
    assert_true(strncmp(o.id->principal_key, "oauth:", 6) == 0);
    const char *pk_agent_x = o.id->principal_key;

    /* Same human and agent, another token (refresh): same principal key. */
    extra = ",\"jti\":\"tok-2\",\"groups\":\"eng ops\","
            "\"act\":{\"sub\":\"agent-x\",\"act\":{\"sub\":\"orchestrator\"}}";
    o = auth_token(sign(&g.keys[K_ES256], NULL, NULL, claims(NULL, NULL, 600, extra)));
    assert_int_equal(o.status, 200);
    assert_string_equal(o.id->principal_key, pk_agent_x);
    assert_int_equal(o.id->n_groups, 2);  /* space-separated form */
    assert_string_equal(o.id->groups[0], "eng");

    /* No act: agent from azp; another agent → another principal. No jti → token hash. */
    o = auth_token(sign(&g.keys[K_ES256], NULL, NULL, good_claims()));
    assert_string_equal(o.id->agent, "claude-code");
    assert_int_equal(o.id->n_act, 0);
    assert_string_not_equal(o.id->principal_key, pk_agent_x);
    assert_true(strncmp(o.id->credential_id, "sha256:", 7) == 0);

    /* Configured delegator claim and default agent. */
    g.conf.delegator_claim = "email";
    g.conf.default_agent = "unnamed-agent";
    new_auth();
    long now = (long)(tg_wall_ms() / 1000);
    char *c = tg_arena_sprintf(g.arena, "{\"iss\":\"%s\",\"sub\":\"u1\",\"aud\":\"%s\",\"exp\":%ld,"
                               "\"scope\":\"mcp:tools\",\"email\":\"bob@example.com\"}",
                               g.issuer, RESOURCE, now + 60);
    o = auth_token(sign(&g.keys[K_ES256], NULL, NULL, c));
    assert_int_equal(o.status, 200);
    assert_string_equal(o.id->delegator, "bob@example.com");
    assert_string_equal(o.id->agent, "unnamed-agent");
}

static void expired_not_yet_valid_leeway(void **state)
{
    tk_outcome o = auth_token(sign(&g.keys[K_RS256], NULL, NULL, claims(NULL, NULL, -120, NULL)));
    assert_int_equal(o.status, 401);
    assert_string_equal(o.www, CH_INVALID);
    assert_string_equal(o.msg, "invalid credentials");
    assert_non_null(strstr(o.why, "token expired at"));

    /* 30 s past exp is inside the default 60 s leeway. */
    o = auth_token(sign(&g.keys[K_RS256], NULL, NULL, claims(NULL, NULL, -30, NULL)));
    assert_int_equal(o.status, 200);

    long now = (long)(tg_wall_ms() / 1000);
    char *nbf = tg_arena_sprintf(g.arena, ",\"nbf\":%ld", now + 300);
    o = auth_token(sign(&g.keys[K_RS256], NULL, NULL, claims(NULL, NULL, 600, nbf)));
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "not valid before"));

    /* Leeway 0: the 30 s-old token is now refused. */
    g.conf.leeway_s = -1;
    new_auth();
    o = auth_token(sign(&g.keys[K_RS256], NULL, NULL, claims(NULL, NULL, -30, NULL)));
    assert_int_equal(o.status, 401);
    nbf = tg_arena_sprintf(g.arena, ",\"nbf\":%ld", now + 30);
    o = auth_token(sign(&g.keys[K_RS256], NULL, NULL, claims(NULL, NULL, 600, nbf)));
    assert_int_equal(o.status, 401);

    /* A token without exp is refused. */
    char *noexp = tg_arena_sprintf(g.arena, "{\"iss\":\"%s\",\"sub\":\"a\",\"aud\":\"%s\","
                                   "\"scope\":\"mcp:tools\",\"azp\":\"x\"}", g.issuer, RESOURCE);
    o = auth_token(sign(&g.keys[K_RS256], NULL, NULL, noexp));
    assert_int_equal(o.status, 401);
    assert_string_equal(o.why, "token has no exp");
}

static void issuer_and_audience(void **state)
{
    tk_outcome o = auth_token(sign(&g.keys[K_RS256], NULL, NULL,
                                claims("https://evil.example", NULL, 600, NULL)));
    assert_int_equal(o.status, 401);
    assert_string_equal(o.www, CH_INVALID);
    assert_non_null(strstr(o.why, "not allowed"));

    o = auth_token(sign(&g.keys[K_RS256], NULL, NULL,
                        claims(NULL, "\"https://other.example/mcp\"", 600, NULL)));
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "audience"));

    /* A prefix or a trailing slash is not the canonical URL. */
    o = auth_token(sign(&g.keys[K_RS256], NULL, NULL, claims(NULL, "\"" RESOURCE "/\"", 600, NULL)));
    assert_int_equal(o.status, 401);

    o = auth_token(sign(&g.keys[K_RS256], NULL, NULL,
                        claims(NULL, "[\"https://api.example\",\"" RESOURCE "\"]", 600, NULL)));
    assert_int_equal(o.status, 200);
    o = auth_token(sign(&g.keys[K_RS256], NULL, NULL,
                        claims(NULL, "[\"https://api.example\"]", 600, NULL)));
    assert_int_equal(o.status, 401);
}

static void bad_signature(void **state)
{
    /* Another token's payload under this token's signature. */
    const char *t1 = sign(&g.keys[K_ES256], NULL, NULL, good_claims());
    const char *t2 = sign(&g.keys[K_ES256], NULL, NULL, claims(NULL, NULL, 900, NULL));
    const char *d1 = strchr(t1, '.'), *s1 = strrchr(t1, '.');
    const char *d2 = strchr(t2, '.'), *s2 = strrchr(t2, '.');
    char *forged = tg_arena_sprintf(g.arena, "%.*s%.*s%s", (int)(d1 - t1), t1,
                                    (int)(s2 - d2), d2, s1);
    tk_outcome o = auth_token(forged);
    assert_int_equal(o.status, 401);
    assert_string_equal(o.www, CH_INVALID);
    assert_non_null(strstr(o.why, "bad ES256 signature"));

    /* Signed by a key that is not published, under a published kid. */
    tk_key other;
    tk_key_gen(&other, "EdDSA", "ed");
    o = auth_token(sign(&other, NULL, NULL, good_claims()));
    assert_int_equal(o.status, 401);
    tk_key_free(&other);
}

static void alg_none_and_hs256_confusion(void **state)
{
    const char *none = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
    char *h = tk_b64(none, strlen(none));
    char *p = tk_b64(good_claims(), strlen(good_claims()));
    tk_outcome o = auth_token(tg_arena_sprintf(g.arena, "%s.%s.", h, p));
    assert_int_equal(o.status, 401);
    assert_string_equal(o.www, CH_INVALID);
    o = auth_token(tg_arena_sprintf(g.arena, "%s.%s.c2ln", h, p));
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "alg \"none\" refused"));
    free(h);
    free(p);

    size_t n;
    char *pem = tk_public_pem(&g.keys[K_RS256], &n);
    char *t = tk_sign_hs256(pem, n, "{\"alg\":\"HS256\",\"kid\":\"rs256\",\"typ\":\"JWT\"}",
                            good_claims());
    o = auth_token(tg_arena_strdup(g.arena, t));
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "HS256"));
    free(t);
    free(pem);
}

static void algorithm_pinning(void **state)
{
    /* RS256 header naming the EC key: the RSA-signed token never reaches EC verify. */
    tk_outcome o = auth_token(sign(&g.keys[K_RS256], "RS256",
                                "{\"alg\":\"RS256\",\"kid\":\"es256\"}", good_claims()));
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "does not match the algorithm pinned"));

    /* PS256 signed by the RSA key published without alg (→ RS256 only). */
    o = auth_token(sign(&g.keys[K_RSNOALG], "PS256",
                        "{\"alg\":\"PS256\",\"kid\":\"rs-noalg\"}", good_claims()));
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "pinned"));
    /* … while RS256 with that key works. */
    o = auth_token(sign(&g.keys[K_RSNOALG], NULL, NULL, good_claims()));
    assert_int_equal(o.status, 200);

    /* RS384 header on the RS256-pinned kid. */
    o = auth_token(sign(&g.keys[K_RS256], "RS384",
                        "{\"alg\":\"RS384\",\"kid\":\"rs256\"}", good_claims()));
    assert_int_equal(o.status, 401);
}

static void refused_headers(void **state)
{
    static const char *headers[] = {
        "{\"alg\":\"ES256\",\"kid\":\"es256\",\"jwk\":{\"kty\":\"EC\"}}",
        "{\"alg\":\"ES256\",\"kid\":\"es256\",\"jku\":\"http://127.0.0.1:1/jwks\"}",
        "{\"alg\":\"ES256\",\"kid\":\"es256\",\"x5u\":\"http://127.0.0.1:1/cert\"}",
        "{\"alg\":\"ES256\",\"kid\":\"es256\",\"crit\":[\"exp\"],\"exp\":1}",
        "{\"alg\":\"ES256\",\"kid\":\"es256\",\"typ\":\"JWE\"}",
        "{\"alg\":\"ES256\",\"kid\":\"es256\",\"alg\":\"ES256\"}",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        tk_outcome o = auth_token(sign(&g.keys[K_ES256], NULL, headers[i], good_claims()));
        if (o.status != 401) fail_msg("header %s accepted", headers[i]);
        assert_string_equal(o.www, CH_INVALID);
    }
    /* The same key with a clean header passes, so the refusals above are the headers'. */
    tk_outcome o = auth_token(sign(&g.keys[K_ES256], NULL, "{\"alg\":\"ES256\",\"kid\":\"es256\"}",
                                good_claims()));
    assert_int_equal(o.status, 200);
}

static void malformed_tokens(void **state)
{
    const char *t = sign(&g.keys[K_ES256], NULL, NULL, good_claims());
    const char *bad[] = {
        tg_arena_sprintf(g.arena, "%s.x", t),       /* four segments */
        tg_arena_sprintf(g.arena, "%s=", t),        /* padding */
        "a.b",
        "..",
        tg_arena_sprintf(g.arena, "%s%s", t, t),    /* garbage */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tk_outcome o = auth_token(bad[i]);
        assert_int_equal(o.status, 401);
        assert_string_equal(o.www, CH_INVALID);
    }
    /* Duplicate claim: JSON with "sub" twice. */
    long now = (long)(tg_wall_ms() / 1000);
    char *dup = tg_arena_sprintf(g.arena, "{\"iss\":\"%s\",\"sub\":\"alice\",\"sub\":\"admin\","
                                 "\"aud\":\"%s\",\"exp\":%ld,\"scope\":\"mcp:tools\",\"azp\":\"x\"}",
                                 g.issuer, RESOURCE, now + 60);
    tk_outcome o = auth_token(sign(&g.keys[K_ES256], NULL, NULL, dup));
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "duplicate"));

    /* Oversized token. */
    g.conf.max_token_bytes = 64;
    new_auth();
    o = auth_token(t);
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "longer than"));
}

static void no_credentials_and_query_token(void **state)
{
    tk_outcome o = auth_full(NULL, NULL, NULL);
    assert_int_equal(o.status, 401);
    assert_string_equal(o.www, CH_NONE);
    o = auth_full("Basic YWxpY2U6cHc=", NULL, NULL);
    assert_int_equal(o.status, 401);
    assert_string_equal(o.www, CH_NONE);

    const char *t = sign(&g.keys[K_ES256], NULL, NULL, good_claims());
    o = auth_full(NULL, tg_arena_sprintf(g.arena, "x=1&access_token=%s", t), NULL);
    assert_int_equal(o.status, 400);
    assert_string_equal(o.www, CH_REQUEST);
    /* Even with a valid header the query token is refused. */
    o = auth_full(tg_arena_sprintf(g.arena, "Bearer %s", t),
                  tg_arena_sprintf(g.arena, "ACCESS_TOKEN=%s", t), NULL);
    assert_int_equal(o.status, 400);
    o = auth_full(tg_arena_sprintf(g.arena, "Bearer %s", t), "access_tokens=1&a=b", NULL);
    assert_int_equal(o.status, 200);
}

static void missing_scope_is_403(void **state)
{
    long now = (long)(tg_wall_ms() / 1000);
    char *c = tg_arena_sprintf(g.arena, "{\"iss\":\"%s\",\"sub\":\"a\",\"aud\":\"%s\",\"exp\":%ld,"
                               "\"scope\":\"openid mcp:toolsX\",\"azp\":\"x\"}", g.issuer, RESOURCE,
                               now + 60);
    tk_outcome o = auth_token(sign(&g.keys[K_ED], NULL, NULL, c));
    assert_int_equal(o.status, 403);
    assert_string_equal(o.www, CH_SCOPE);
    assert_string_equal(o.msg, "insufficient scope");
    assert_non_null(strstr(o.why, "mcp:tools"));

    /* scp as an array (Azure / Okta style). */
    c = tg_arena_sprintf(g.arena, "{\"iss\":\"%s\",\"sub\":\"a\",\"aud\":\"%s\",\"exp\":%ld,"
                         "\"scp\":[\"mcp:tools\"],\"azp\":\"x\"}", g.issuer, RESOURCE, now + 60);
    o = auth_token(sign(&g.keys[K_ED], NULL, NULL, c));
    assert_int_equal(o.status, 200);
}

static void domain_fence(void **state)
{
    static const char *domains[] = {"example.com"};
    g.conf.allowed_domains = domains;
    g.conf.n_allowed_domains = 1;
    new_auth();
    static const struct { const char *email; int status; } cases[] = {
        {"alice@example.com", 200}, {"Alice@EXAMPLE.com", 200}, {"bob@evil.com", 401},
        {"bob@example.com@evil.com", 401}, {"bob@sub.example.com", 401},
        {"bob@example.com.evil", 401}, {"example.com", 401},
    };
    long now = (long)(tg_wall_ms() / 1000);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *c = tg_arena_sprintf(g.arena, "{\"iss\":\"%s\",\"sub\":\"a\",\"aud\":\"%s\",\"exp\":%ld,"
                                   "\"scope\":\"mcp:tools\",\"azp\":\"x\",\"email\":\"%s\"}",
                                   g.issuer, RESOURCE, now + 60, cases[i].email);
        tk_outcome o = auth_token(sign(&g.keys[K_ES384], NULL, NULL, c));
        if (o.status != cases[i].status) fail_msg("%s: %d", cases[i].email, o.status);
        if (o.status == 401) assert_non_null(strstr(o.why, "domain not allowed"));
    }
    char *c = tg_arena_sprintf(g.arena, "{\"iss\":\"%s\",\"sub\":\"a\",\"aud\":\"%s\",\"exp\":%ld,"
                               "\"scope\":\"mcp:tools\",\"azp\":\"x\"}", g.issuer, RESOURCE, now + 60);
    assert_int_equal(auth_token(sign(&g.keys[K_ES384], NULL, NULL, c)).status, 401);
}

static void cache_hit_path(void **state)
{
    const char *t = sign(&g.keys[K_PS256], NULL, NULL, good_claims());
    tk_outcome o1 = auth_full(tg_arena_sprintf(g.arena, "Bearer %s", t), NULL, "127.0.0.1");
    tk_outcome o2 = auth_full(tg_arena_sprintf(g.arena, "Bearer %s", t), NULL, "::1");
    assert_int_equal(o1.status, 200);
    assert_int_equal(o2.status, 200);
    assert_ptr_not_equal(o1.id, o2.id);
    assert_string_equal(o2.id->principal_key, o1.id->principal_key);
    assert_string_equal(o2.id->client_ip, "::1");  /* per request, not cached */
    tg_auth_stats st;
    tg_auth_get_stats(g.a, &st);
    assert_int_equal(st.cache_hits, 1);
    assert_int_equal(st.cache_misses, 1);

    /* The cache is bounded: more distinct tokens than entries still all verify. */
    for (int i = 0; i < 40; i++) {
        char *extra = tg_arena_sprintf(g.arena, ",\"jti\":\"j%d\"", i);
        assert_int_equal(auth_token(sign(&g.keys[K_ES256], NULL, NULL,
                                         claims(NULL, NULL, 600, extra))).status, 200);
    }
    /* An expired cached token is not served from the cache. */
    const char *soon = sign(&g.keys[K_ES256], NULL, NULL, claims(NULL, NULL, -59, NULL));
    assert_int_equal(auth_token(soon).status, 200);
    sleep(2);
    assert_int_equal(auth_token(soon).status, 401);
}

/* One connection's memo (tg_auth_input.memo) across its requests: it only saves hashing
 * the same token again, so every answer is the one the token alone deserves. A memo that
 * matched on less than the whole token would let a forged token of the same length, or
 * another user's token, through as the previous caller. */
static tk_outcome auth_memo(void **slot, const char *token)
{
    tk_outcome o = {0};
    tg_auth_input in = {.authorization = tg_arena_sprintf(g.arena, "Bearer %s", token),
                        .peer_ip = "127.0.0.1", .memo = slot};
    tg_auth_authenticate(g.a, &in, g.arena, tk_on_result, &o);
    tk_run_until(&g.loop, &o, 10000);
    assert_int_equal(o.done, 1);
    return o;
}

static void connection_memo(void **state)
{
    void *slot = NULL;
    long now = (long)(tg_wall_ms() / 1000);
    const char *alice = sign(&g.keys[K_ES256], NULL, NULL, good_claims());
    const char *bob = sign(&g.keys[K_ES256], NULL, NULL,
        tg_arena_sprintf(g.arena, "{\"iss\":\"%s\",\"sub\":\"bob\",\"aud\":\"%s\","
                         "\"exp\":%ld,\"scope\":\"mcp:tools\",\"azp\":\"x\"}",
                         g.issuer, RESOURCE, now + 600));
    char *forged = tg_arena_strdup(g.arena, alice);
    size_t n = strlen(forged);
    forged[n - 10] = forged[n - 10] == 'A' ? 'B' : 'A';  /* in the signature */

    tk_outcome o = auth_memo(&slot, alice);
    assert_int_equal(o.status, 200);
    assert_non_null(slot);
    assert_string_equal(o.id->delegator, "alice");
    o = auth_memo(&slot, alice);
    assert_int_equal(o.status, 200);
    assert_string_equal(o.id->delegator, "alice");
    o = auth_memo(&slot, forged);
    assert_int_equal(o.status, 401);
    o = auth_memo(&slot, alice);
    assert_string_equal(o.id->delegator, "alice");
    o = auth_memo(&slot, bob);
    assert_int_equal(o.status, 200);
    assert_string_equal(o.id->delegator, "bob");
    o = auth_memo(&slot, tg_arena_strndup(g.arena, alice, n - 1));
    assert_int_equal(o.status, 401);
    o = auth_memo(&slot, "abc!def");
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "token68"));
    tg_auth_stats st;
    tg_auth_get_stats(g.a, &st);
    assert_int_equal(st.cache_hits, 2);  /* alice twice more: the cache still decides */

    /* An expired token is refused though the memo still holds it. */
    const char *soon = sign(&g.keys[K_ES256], NULL, NULL, claims(NULL, NULL, -59, NULL));
    assert_int_equal(auth_memo(&slot, soon).status, 200);
    sleep(2);
    assert_int_equal(auth_memo(&slot, soon).status, 401);
    tg_auth_memo_free(slot);
}

static void unknown_kid_refetch_and_rate_limit(void **state)
{
    g.conf.jwks_refetch_interval_ms = 400;
    new_auth();
    assert_int_equal(auth_token(sign(&g.keys[K_ES256], NULL, NULL, good_claims())).status, 200);
    int hits = tk_server_hits(g.srv, "/jwks");

    /* The issuer rotates: publishes a new key; a token with its kid triggers a refetch. */
    usleep(450 * 1000);
    const tk_key *pub[] = {&g.keys[K_ES256], &g.rotated};
    publish(pub, 2);
    tk_outcome o = auth_token(sign(&g.rotated, NULL, NULL, good_claims()));
    assert_int_equal(o.status, 200);
    assert_int_equal(tk_server_hits(g.srv, "/jwks"), hits + 1);

    /* Unknown kids right after a fetch do not hit the issuer again. */
    tk_key ghost;
    tk_key_alias(&ghost, &g.rotated, "ES256", "ghost");
    o = auth_token(sign(&ghost, NULL, NULL, good_claims()));
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "rate-limited"));
    o = auth_token(sign(&ghost, NULL, NULL, good_claims()));
    assert_int_equal(tk_server_hits(g.srv, "/jwks"), hits + 1);

    /* After the interval the next unknown kid refetches (and finds it now). */
    const tk_key *pub2[] = {&g.keys[K_ES256], &g.rotated, &ghost};
    publish(pub2, 3);
    usleep(450 * 1000);
    o = auth_token(sign(&ghost, NULL, NULL, good_claims()));
    assert_int_equal(o.status, 200);
    assert_int_equal(tk_server_hits(g.srv, "/jwks"), hits + 2);
    tk_key_free(&ghost);
}

static void stale_keys_refresh_and_withdrawal(void **state)
{
    g.conf.jwks_max_age_ms = 1;
    g.conf.jwks_refetch_interval_ms = 100;
    new_auth();
    const char *t1 = sign(&g.keys[K_ES256], NULL, NULL, claims(NULL, NULL, 600, ",\"jti\":\"a\""));
    assert_int_equal(auth_token(t1).status, 200);
    int hits = tk_server_hits(g.srv, "/jwks");

    /* The issuer withdraws the ES256 key. Stale keys still answer the next request while a
     * background refresh runs. */
    const tk_key *pub[] = {&g.keys[K_ED]};
    publish(pub, 1);
    usleep(150 * 1000);
    const char *t2 = sign(&g.keys[K_ES256], NULL, NULL, claims(NULL, NULL, 600, ",\"jti\":\"b\""));
    assert_int_equal(auth_token(t2).status, 200);
    uv_run(&g.loop, UV_RUN_DEFAULT);  /* the refresh lands */
    assert_int_equal(tk_server_hits(g.srv, "/jwks"), hits + 1);

    /* Tokens cached under the withdrawn key are dropped, not served until exp. */
    tk_outcome o = auth_token(t1);
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "unknown kid es256"));
}

static void discovery_and_fetch_failures(void **state)
{
    char iss[128], md[512], jwks2[128];
    snprintf(iss, sizeof iss, "%s/tenant", g.issuer);
    snprintf(jwks2, sizeof jwks2, "%s/jwks", g.issuer);
    snprintf(md, sizeof md, "{\"issuer\":\"%s\",\"jwks_uri\":\"%s\"}", iss, jwks2);
    tk_server_route(g.srv, "/.well-known/oauth-authorization-server/tenant", 200, md);
    g.iss = (tg_auth_issuer_conf){iss, NULL};
    new_auth();
    tk_outcome o = auth_token(sign(&g.keys[K_ES256], NULL, NULL, claims(iss, NULL, 600, NULL)));
    if (o.status != 200) fail_msg("discovery: %d %s", o.status, o.why);
    assert_string_equal(o.id->issuer, iss);

    /* Metadata naming another issuer is not trusted. */
    snprintf(md, sizeof md, "{\"issuer\":\"https://evil.example\",\"jwks_uri\":\"%s\"}", jwks2);
    tk_server_route(g.srv, "/.well-known/oauth-authorization-server/tenant", 200, md);
    new_auth();
    o = auth_token(sign(&g.keys[K_ES256], NULL, NULL, claims(iss, NULL, 600, NULL)));
    assert_int_equal(o.status, 503);
    assert_null(o.www);
    assert_non_null(strstr(o.why, "metadata issuer"));

    /* JWKS answering 404, then a redirect: no keys, 503, and no redirect followed. */
    g.iss = (tg_auth_issuer_conf){g.issuer, g.jwks_url};
    tk_server_route(g.srv, "/jwks", 404, NULL);
    new_auth();
    o = auth_token(sign(&g.keys[K_ES256], NULL, NULL, good_claims()));
    assert_int_equal(o.status, 503);
    assert_non_null(strstr(o.why, "404"));
    tk_server_route(g.srv, "/jwks", 302, NULL);
    new_auth();
    o = auth_token(sign(&g.keys[K_ES256], NULL, NULL, good_claims()));
    assert_int_equal(o.status, 503);
    assert_non_null(strstr(o.why, "302"));
}

static void configuration_checks(void **state)
{
    tg_error err;
    tg_auth_conf c = g.conf;
    tg_auth_issuer_conf bad = {"http://login.example.com", NULL};
    c.issuers = &bad;
    assert_null(tg_auth_new(&g.loop, &c, &err));
    assert_non_null(strstr(err.msg, "https"));
    c = g.conf;
    c.resource = NULL;
    assert_null(tg_auth_new(&g.loop, &c, &err));
    c = g.conf;
    c.oauth_enabled = 0;
    assert_null(tg_auth_new(&g.loop, &c, &err));
    c = g.conf;
    static const char *badscope[] = {"a\"b"};
    c.required_scopes = badscope;
    assert_null(tg_auth_new(&g.loop, &c, &err));
    c = g.conf;
    static const char *badcidr[] = {"10.0.0.1/8"};
    c.trusted_proxies = badcidr;
    c.n_trusted_proxies = 1;
    assert_null(tg_auth_new(&g.loop, &c, &err));
    assert_non_null(strstr(err.msg, "auth.trusted_proxies"));
}

static void metadata_document(void **state)
{
    assert_string_equal(tg_auth_metadata_url(g.a), MD_URL);
    tg_error err;
    const char *md = tg_auth_metadata_json(g.a);
    json_t *j = tg_json_parse(md, strlen(md), 8, &err);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "resource")), RESOURCE);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "authorization_servers"), 0)),
                        g.issuer);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "scopes_supported"), 0)),
                        "mcp:tools");
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "bearer_methods_supported"), 0)),
                        "header");
    json_decref(j);
}

static void cancel_while_fetching(void **state)
{
    tk_outcome o = {0};
    char *h = tg_arena_sprintf(g.arena, "Bearer %s", sign(&g.keys[K_ES256], NULL, NULL, good_claims()));
    tg_auth_input in = {.authorization = h, .peer_ip = "127.0.0.1"};
    tg_auth_pending *p = tg_auth_authenticate(g.a, &in, g.arena, tk_on_result, &o);
    assert_non_null(p);  /* first token: keys must be fetched */
    tg_auth_cancel(p);
    uv_run(&g.loop, UV_RUN_DEFAULT);
    assert_int_equal(o.done, 0);
    /* The fetch still landed: the next request is answered synchronously. */
    o = (tk_outcome){0};
    assert_null(tg_auth_authenticate(g.a, &in, g.arena, tk_on_result, &o));
    assert_int_equal(o.done, 1);
    assert_int_equal(o.status, 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(valid_token_every_algorithm, setup, teardown),
        cmocka_unit_test_setup_teardown(identity_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(expired_not_yet_valid_leeway, setup, teardown),
        cmocka_unit_test_setup_teardown(issuer_and_audience, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_signature, setup, teardown),
        cmocka_unit_test_setup_teardown(alg_none_and_hs256_confusion, setup, teardown),
        cmocka_unit_test_setup_teardown(algorithm_pinning, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(no_credentials_and_query_token, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_scope_is_403, setup, teardown),
        cmocka_unit_test_setup_teardown(domain_fence, setup, teardown),
        cmocka_unit_test_setup_teardown(cache_hit_path, setup, teardown),
        cmocka_unit_test_setup_teardown(connection_memo, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_kid_refetch_and_rate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(stale_keys_refresh_and_withdrawal, setup, teardown),
        cmocka_unit_test_setup_teardown(discovery_and_fetch_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(configuration_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(metadata_document, setup, teardown),
        cmocka_unit_test_setup_teardown(cancel_while_fetching, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
