/*
 * test_auth_introspect.c — RFC 7662 introspection of opaque access tokens at the library
 * boundary: a local "authorization server" (auth_testkit's HTTP thread) answers the
 * introspection POSTs, tg_auth_authenticate runs on a real libuv loop. Asserts what a
 * client and an operator rely on: an active token with good claims is an identity (and
 * is cached), every bad answer is a 401/403 like a bad JWT, an unusable endpoint is 503,
 * toolgate authenticates itself to the endpoint and sends the token only in the body,
 * and a request cancelled (or an authenticator freed) mid-introspection is clean.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <curl/curl.h>

#include "auth/tg_auth.h"
#include "auth_testkit.h"

#define RESOURCE "https://toolgate.example/mcp"
#define MD_URL "https://toolgate.example/.well-known/oauth-protected-resource/mcp"
#define CH_INVALID "Bearer error=\"invalid_token\", resource_metadata=\"" MD_URL "\", scope=\"mcp:tools\""
#define CH_SCOPE "Bearer error=\"insufficient_scope\", resource_metadata=\"" MD_URL "\", scope=\"mcp:tools\""

static struct {
    uv_loop_t loop;
    tk_server *srv;
    char issuer[64], intro_url[96];
    tg_auth_conf conf;
    tg_auth_issuer_conf iss;
    tg_auth *a;
    tg_arena *arena;
} g;

static const char *required[] = {"mcp:tools"};

static tk_outcome auth_token(const char *token)
{
    tk_outcome o = {0};
    tg_auth_input in = {.authorization = tg_arena_sprintf(g.arena, "Bearer %s", token),
                        .peer_ip = "127.0.0.1"};
    tg_auth_authenticate(g.a, &in, g.arena, tk_on_result, &o);
    tk_run_until(&g.loop, &o, 10000);
    assert_int_equal(o.done, 1);
    return o;
}

/* The endpoint's answer: active, good claims, with extra spliced in (",\"k\":v" …). */
static void answer(long exp_off, const char *extra)
{
    long now = (long)(tg_wall_ms() / 1000);
    char *body = tg_arena_sprintf(g.arena,
        "{\"active\":true,\"iss\":\"%s\",\"aud\":\"" RESOURCE "\",\"exp\":%ld,\"iat\":%ld,"
        "\"scope\":\"mcp:tools openid\",\"client_id\":\"claude-code\"%s}",
        g.issuer, now + exp_off, now - 10, extra ? extra : ",\"sub\":\"alice\"");
    tk_server_route(g.srv, "/introspect", 200, body);
}

/* The endpoint's answer, any shape: head, then a valid exp (now + 60 s), then tail. */
static void answer_exp(const char *head, const char *tail)
{
    long exp = (long)(tg_wall_ms() / 1000) + 60;
    tk_server_route(g.srv, "/introspect", 200, tg_arena_sprintf(g.arena, "%s%ld%s", head, exp, tail));
}

static void new_auth(void)
{
    tg_error err;
    tg_auth_free(g.a);
    g.a = tg_auth_new(&g.loop, &g.conf, &err);
    if (!g.a) fail_msg("tg_auth_new: %s", err.msg);
}

static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);  /* tg_upstream_global_init's job in toolgate */
    uv_loop_init(&g.loop);
    g.srv = tk_server_start();
    snprintf(g.issuer, sizeof g.issuer, "http://127.0.0.1:%d", tk_server_port(g.srv));
    snprintf(g.intro_url, sizeof g.intro_url, "%s/introspect", g.issuer);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tk_server_stop(g.srv);
    uv_loop_close(&g.loop);
    curl_global_cleanup();
    return 0;
}

static int setup(void **state)
{
    (void)state;
    g.arena = tg_arena_new(4096);
    g.iss = (tg_auth_issuer_conf){.issuer = g.issuer, .jwks_uri = NULL};
    g.conf = (tg_auth_conf){
        .resource = RESOURCE,
        .oauth_enabled = 1,
        .issuers = &g.iss,
        .n_issuers = 1,
        .required_scopes = required,
        .n_required_scopes = 1,
        .introspection = {.url = g.intro_url, .client_id = "tg client",
                          .client_secret = "s3cret:&="},
    };
    answer(600, NULL);
    new_auth();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tg_auth_free(g.a);
    g.a = NULL;
    uv_run(&g.loop, UV_RUN_DEFAULT);  /* let any introspection in the pool land */
    tg_arena_free(g.arena);
    return 0;
}

/* ---------------------------------------------------------------- tests */

static void active_token_identity_and_cache(void **state)
{
    (void)state;
    answer(600, ",\"sub\":\"alice\",\"jti\":\"tok-1\",\"groups\":[\"eng\"],"
                "\"act\":{\"sub\":\"agent-x\",\"act\":{\"sub\":\"orchestrator\"}}");
    int before = tk_server_hits(g.srv, "/introspect");
    tk_outcome o = auth_token("opaque-token-1");
    assert_int_equal(o.status, 200);
    assert_string_equal(o.id->method, "oauth");
    assert_string_equal(o.id->delegator, "alice");
    assert_string_equal(o.id->agent, "agent-x");
    assert_int_equal(o.id->n_act, 2);
    assert_string_equal(o.id->act_chain[1], "orchestrator");
    assert_string_equal(o.id->issuer, g.issuer);
    assert_string_equal(o.id->client_id, "claude-code");
    assert_string_equal(o.id->credential_id, "tok-1");
    assert_int_equal(o.id->n_groups, 1);
    assert_int_equal(o.id->n_scopes, 2);
    assert_string_equal(o.id->client_ip, "127.0.0.1");
    assert_int_equal(tk_server_hits(g.srv, "/introspect"), before + 1);

    /* toolgate authenticated itself (form-encoded id and secret in HTTP Basic) and sent
     * the token only in the form body. */
    char *req = tk_server_last(g.srv, "/introspect");
    assert_non_null(req);
    assert_true(strncmp(req, "POST /introspect ", 17) == 0);
    /* base64("tg%20client:s3cret%3A%26%3D") */
    assert_non_null(strstr(req, "Authorization: Basic dGclMjBjbGllbnQ6czNjcmV0JTNBJTI2JTNE\r\n"));
    assert_null(strstr(req, "opaque-token-1\r\n"));  /* not in a header */
    assert_non_null(strstr(req, "\r\n\r\ntoken=opaque-token-1&token_type_hint=access_token"));
    assert_non_null(strstr(req, "application/x-www-form-urlencoded"));
    free(req);

    /* Cached until exp: the endpoint is not asked again. */
    o = auth_token("opaque-token-1");
    assert_int_equal(o.status, 200);
    assert_string_equal(o.id->agent, "agent-x");
    assert_int_equal(tk_server_hits(g.srv, "/introspect"), before + 1);
    tg_auth_stats st;
    tg_auth_get_stats(g.a, &st);
    assert_int_equal(st.introspections, 1);
    assert_int_equal(st.cache_hits, 1);
}

static void username_when_no_sub_and_iss_optional(void **state)
{
    (void)state;
    answer_exp("{\"active\":true,\"aud\":[\"x\",\"" RESOURCE "\"],\"exp\":", ",\"scope\":\"mcp:tools\","
        "\"username\":\"bob\",\"client_id\":\"ci\"}");
    tk_outcome o = auth_token("opaque-token-2");
    assert_int_equal(o.status, 200);
    assert_string_equal(o.id->delegator, "bob");
    assert_string_equal(o.id->agent, "ci");
    /* No iss in the answer: the identity names the endpoint that vouched for it. */
    assert_string_equal(o.id->issuer, g.intro_url);
    assert_true(strncmp(o.id->credential_id, "sha256:", 7) == 0);
}

static void refusals_are_401_or_403(void **state)
{
    (void)state;
    static const struct { const char *token; long exp; const char *extra; const char *body;
                          int status; const char *why; } cases[] = {
        {"t-inactive", 0, NULL, "{\"active\":false}", 401, "not active"},
        {"t-active-string", 0, NULL, "{\"active\":\"true\",\"sub\":\"a\"}", 401, "not active"},
        {"t-expired", -3600, ",\"sub\":\"alice\"", NULL, 401, "expired"},
        {"t-no-exp", 0, NULL, "{\"active\":true,\"sub\":\"a\",\"aud\":\"" RESOURCE "\","
                              "\"scope\":\"mcp:tools\",\"client_id\":\"c\"}", 401, "no exp"},
        {"t-no-sub", 600, ",\"email\":\"x@example.com\"", NULL, 401, "no sub"},
        {"t-nbf", 600, ",\"sub\":\"alice\",\"nbf\":99999999999", NULL, 401, "not valid before"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (cases[i].body) tk_server_route(g.srv, "/introspect", 200, cases[i].body);
        else answer(cases[i].exp, cases[i].extra);
        tk_outcome o = auth_token(cases[i].token);
        assert_int_equal(o.status, cases[i].status);
        assert_null(o.id);
        assert_string_equal(o.www, CH_INVALID);
        assert_string_equal(o.msg, "invalid credentials");
        if (!strstr(o.why, cases[i].why)) fail_msg("%s: reason \"%s\"", cases[i].token, o.why);
    }
    /* A duplicate key inside the answer would let two parsers disagree: not accepted
     * (the answer is unusable: 503). */
    answer_exp("{\"active\":false,\"active\":true,\"sub\":\"a\",\"aud\":\"" RESOURCE "\",\"exp\":", ","
        "\"scope\":\"mcp:tools\",\"client_id\":\"c\"}");
    tk_outcome o = auth_token("t-dup");
    assert_int_equal(o.status, 503);
    /* An issuer that is not configured. */
    answer_exp("{\"active\":true,\"iss\":\"https://evil.example\",\"sub\":\"a\",\"aud\":\"" RESOURCE
        "\",\"exp\":", ",\"scope\":\"mcp:tools\",\"client_id\":\"c\"}");
    o = auth_token("t-bad-iss");
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "issuer https://evil.example not allowed"));
    /* Wrong audience. */
    answer_exp("{\"active\":true,\"sub\":\"a\",\"aud\":\"https://other.example/mcp\",\"exp\":", ","
        "\"scope\":\"mcp:tools\",\"client_id\":\"c\"}");
    o = auth_token("t-aud");
    assert_int_equal(o.status, 401);
    assert_non_null(strstr(o.why, "audience"));
    /* Missing scope: 403 with the insufficient_scope challenge. */
    answer_exp("{\"active\":true,\"sub\":\"a\",\"aud\":\"" RESOURCE "\",\"exp\":", ","
        "\"scope\":\"openid\",\"client_id\":\"c\"}");
    o = auth_token("t-scope");
    assert_int_equal(o.status, 403);
    assert_string_equal(o.www, CH_SCOPE);
    /* Refusals are not cached: the same token, now good, is accepted. */
    answer(600, NULL);
    o = auth_token("t-scope");
    assert_int_equal(o.status, 200);
}

static void unusable_endpoint_is_503(void **state)
{
    (void)state;
    tk_server_route(g.srv, "/introspect", 500, NULL);
    tk_outcome o = auth_token("t-500");
    assert_int_equal(o.status, 503);
    assert_null(o.www);
    assert_string_equal(o.msg, "authentication temporarily unavailable");
    assert_non_null(strstr(o.why, "HTTP status 500"));
    tk_server_route(g.srv, "/introspect", 200, "<html>");
    o = auth_token("t-html");
    assert_int_equal(o.status, 503);
    tk_server_route(g.srv, "/introspect", 200, "[true]");
    o = auth_token("t-array");
    assert_int_equal(o.status, 503);
    /* Nothing listening. */
    g.conf.introspection.url = "http://127.0.0.1:1/introspect";
    new_auth();
    o = auth_token("t-down");
    assert_int_equal(o.status, 503);
    tg_auth_stats st;
    tg_auth_get_stats(g.a, &st);
    assert_int_equal(st.introspection_failures, 1);
}

static void jwts_stay_local_unless_all_tokens(void **state)
{
    (void)state;
    /* JWT-shaped (two dots) but garbage: refused by the JWT parser, not introspected. */
    int before = tk_server_hits(g.srv, "/introspect");
    tk_outcome o = auth_token("eyJhbGciOiJub25lIn0.e30.sig");
    assert_int_equal(o.status, 401);
    assert_int_equal(tk_server_hits(g.srv, "/introspect"), before);
    /* all_tokens: the endpoint decides for every token. */
    g.conf.introspection.all_tokens = 1;
    new_auth();
    o = auth_token("eyJhbGciOiJub25lIn0.e30.sig");
    assert_int_equal(o.status, 200);
    assert_int_equal(tk_server_hits(g.srv, "/introspect"), before + 1);
    /* Without introspection an opaque token is simply not a JWT. */
    g.conf.introspection = (tg_auth_introspection_conf){0};
    new_auth();
    o = auth_token("opaque-token-9");
    assert_int_equal(o.status, 401);
    assert_int_equal(tk_server_hits(g.srv, "/introspect"), before + 1);
}

static void configuration_checks(void **state)
{
    (void)state;
    tg_error err;
    tg_auth_conf c = g.conf;
    c.introspection.url = "http://idp.example/introspect";
    assert_null(tg_auth_new(&g.loop, &c, &err));
    assert_non_null(strstr(err.msg, "introspection.url"));
    c.introspection.url = g.intro_url;
    c.introspection.client_secret = NULL;
    assert_null(tg_auth_new(&g.loop, &c, &err));
    assert_non_null(strstr(err.msg, "client_secret"));
    assert_null(strstr(err.msg, "s3cret"));
}

static void cancel_and_free_while_introspecting(void **state)
{
    (void)state;
    tk_outcome o = {0};
    tg_auth_input in = {.authorization = "Bearer opaque-cancel", .peer_ip = "127.0.0.1"};
    tg_auth_pending *p = tg_auth_authenticate(g.a, &in, g.arena, tk_on_result, &o);
    assert_non_null(p);
    tg_auth_cancel(p);
    uv_run(&g.loop, UV_RUN_DEFAULT);  /* the job lands and frees itself */
    assert_int_equal(o.done, 0);
    in.authorization = "Bearer opaque-free";
    p = tg_auth_authenticate(g.a, &in, g.arena, tk_on_result, &o);
    assert_non_null(p);
    tg_auth_free(g.a);               /* pending request dropped without its callback */
    g.a = NULL;
    uv_run(&g.loop, UV_RUN_DEFAULT);
    assert_int_equal(o.done, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(active_token_identity_and_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(username_when_no_sub_and_iss_optional, setup, teardown),
        cmocka_unit_test_setup_teardown(refusals_are_401_or_403, setup, teardown),
        cmocka_unit_test_setup_teardown(unusable_endpoint_is_503, setup, teardown),
        cmocka_unit_test_setup_teardown(jwts_stay_local_unless_all_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(configuration_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(cancel_and_free_while_introspecting, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
