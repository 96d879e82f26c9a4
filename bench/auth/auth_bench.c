/*
 * auth_bench.c — what authentication costs per request, printed as a table:
 *   - a cached-token hit (SHA-256 of the token, cache lookup, identity copy);
 *   - a first verification per algorithm (parse, header screen, signature with the
 *     pinned key, claims, identity, cache insert) — keys already fetched;
 *   - an API-key check (parse, in-memory store lookup, SHA-256, fences).
 * Keys, tokens and the JWKS server come from tests/auth/auth_testkit. Loopback only.
 * Run with bench/auth/run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "auth/tg_auth.h"
#include "../../tests/auth/auth_testkit.h"

#define FIRST_N  400     /* distinct tokens per algorithm */
#define REPEAT_N 200000  /* cached hits, API-key checks */

static int ok_count;

static void on_result(const tg_auth_result *r, void *user)
{
    if (r->identity) ok_count++;
    else fprintf(stderr, "refused: %s\n", r->log_reason);
}

static double run(tg_auth *a, tg_arena *arena, const char **auth, size_t n, size_t repeat,
                  const char *peer)
{
    ok_count = 0;
    uint64_t t0 = tg_now_ns();
    for (size_t r = 0; r < repeat; r++)
        for (size_t i = 0; i < n; i++) {
            tg_auth_input in = {.authorization = auth[i], .peer_ip = peer};
            tg_auth_authenticate(a, &in, arena, on_result, NULL);
            tg_arena_reset(arena);
        }
    double us = (double)(tg_now_ns() - t0) / 1e3 / (double)(n * repeat);
    if ((size_t)ok_count != n * repeat) {
        fprintf(stderr, "auth_bench: %d of %zu succeeded\n", ok_count, n * repeat);
        exit(1);
    }
    return us;
}

int main(void)
{
    static const char *algs[] = {"RS256", "RS512", "PS256", "ES256", "ES384", "EdDSA"};
    enum { NALG = sizeof algs / sizeof algs[0] };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    tg_log_set_level(TG_LOG_WARN);
    uv_loop_t loop;
    uv_loop_init(&loop);
    tk_server *srv = tk_server_start();
    char issuer[64], jwks[96];
    snprintf(issuer, sizeof issuer, "http://127.0.0.1:%d", tk_server_port(srv));
    snprintf(jwks, sizeof jwks, "%s/jwks", issuer);
    tk_key keys[NALG];
    const tk_key *pub[NALG];
    for (int i = 0; i < NALG; i++) {
        tk_key_gen(&keys[i], algs[i], algs[i]);
        pub[i] = &keys[i];
    }
    char *doc = tk_jwks(pub, NALG, 1);
    tk_server_route(srv, "/jwks", 200, doc);
    free(doc);

    tg_apikey_store *st = tg_apikey_memstore_new();
    static const char *scopes[] = {"mcp:tools"};
    static const char *cidrs[] = {"127.0.0.0/8"};
    tg_auth_issuer_conf iss = {issuer, jwks};
    tg_auth_conf conf = {
        .resource = "https://toolgate.example/mcp", .oauth_enabled = 1, .issuers = &iss,
        .n_issuers = 1, .required_scopes = scopes, .n_required_scopes = 1,
        .token_cache_size = NALG * FIRST_N + 16, .api_keys_enabled = 1, .key_store = st,
        .api_key_cidrs = cidrs, .n_api_key_cidrs = 1,
    };
    tg_error err;
    tg_auth *a = tg_auth_new(&loop, &conf, &err);
    if (!a) {
        fprintf(stderr, "auth_bench: %s\n", err.msg);
        return 1;
    }
    tg_arena *arena = tg_arena_new(0);
    long now = (long)(tg_wall_ms() / 1000);

    /* Tokens: FIRST_N distinct per algorithm (distinct jti → distinct cache keys). */
    static const char *tokens[NALG][FIRST_N];
    for (int k = 0; k < NALG; k++)
        for (int i = 0; i < FIRST_N; i++) {
            char claims[512];
            snprintf(claims, sizeof claims,
                     "{\"iss\":\"%s\",\"sub\":\"alice\",\"aud\":\"https://toolgate.example/mcp\","
                     "\"exp\":%ld,\"iat\":%ld,\"jti\":\"%s-%d\",\"scope\":\"mcp:tools\","
                     "\"azp\":\"claude-code\",\"groups\":[\"eng\"]}", issuer, now + 3600, now,
                     algs[k], i);
            char *t = tk_sign(&keys[k], NULL, NULL, claims);
            size_t n = strlen(t) + 8;
            char *h = malloc(n);
            snprintf(h, n, "Bearer %s", t);
            free(t);
            tokens[k][i] = h;
        }

    /* Fetch the keys once (the only asynchronous step). */
    ok_count = 0;
    tg_auth_input in = {.authorization = tokens[0][0], .peer_ip = "127.0.0.1"};
    tg_auth_authenticate(a, &in, arena, on_result, NULL);
    while (!ok_count) uv_run(&loop, UV_RUN_ONCE);
    tg_arena_reset(arena);

    printf("%-34s %10s %12s\n", "operation", "µs/op", "ops");
    printf("%-34s %10s %12s\n", "----------------------------------", "----------", "------------");
    for (int k = 0; k < NALG; k++) {
        size_t from = k == 0 ? 1 : 0;  /* token 0 of RS256 was verified during the fetch */
        double us = run(a, arena, tokens[k] + from, FIRST_N - from, 1, "127.0.0.1");
        char label[64];
        snprintf(label, sizeof label, "first verification %s", algs[k]);
        printf("%-34s %10.2f %12d\n", label, us, FIRST_N - (int)from);
    }
    double hit = run(a, arena, tokens[3], 1, REPEAT_N, "127.0.0.1");
    printf("%-34s %10.2f %12d\n", "cached-token hit", hit, REPEAT_N);

    tg_apikey_params p = {.agent = "ci-bot", .delegator = "alice", .ttl_s = 86400};
    tg_apikey_record rec;
    char key[TG_APIKEY_TOKEN_LEN + 1];
    if (tg_apikey_create(&p, now, 0, arena, &rec, key, &err) != 0 ||
        st->put(st->ctx, &rec, &err) != 0) {
        fprintf(stderr, "auth_bench: %s\n", err.msg);
        return 1;
    }
    char hdr[TG_APIKEY_TOKEN_LEN + 8];
    snprintf(hdr, sizeof hdr, "Bearer %s", key);
    const char *keyauth[] = {hdr};
    double kc = run(a, arena, keyauth, 1, REPEAT_N, "127.0.0.1");
    printf("%-34s %10.2f %12d\n", "API-key check (in-memory store)", kc, REPEAT_N);

    for (int k = 0; k < NALG; k++) {
        for (int i = 0; i < FIRST_N; i++) free((char *)tokens[k][i]);
        tk_key_free(&keys[k]);
    }
    tg_arena_free(arena);
    tg_auth_free(a);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    tg_apikey_memstore_free(st);
    tk_server_stop(srv);
    curl_global_cleanup();
    return 0;
}
