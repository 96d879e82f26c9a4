/*
 * tg_auth.h — the authentication contract: who is calling toolgate, and through which
 * trust channel.
 *
 * Two methods, each with its own fence (docs/authentication.md):
 *   - OAuth 2.1 resource server: a JWT access token in `Authorization: Bearer`, verified
 *     with OpenSSL EVP against the issuer's JWKS (algorithm pinned per key), checked for
 *     iss / aud (= the canonical public URL) / exp / nbf / iat, required scopes and the
 *     human's email domain. Verified tokens are cached (keyed by SHA-256 of the token)
 *     until they expire. Optionally, opaque tokens are checked by RFC 7662 introspection
 *     at the authorization server, with the same claim checks and cache.
 *   - API keys `tgk_<id>_<secret>` sent the same way (`Authorization: Bearer tgk_…`),
 *     looked up through a pluggable key store, fenced by global and per-key CIDRs,
 *     expiry, revocation and a maximum lifetime.
 * Either way the result is one tg_identity, the policy's principal.
 *
 * Threads: everything runs on the loop thread except JWKS / discovery fetches and
 * introspection requests, which run as libcurl easy transfers in uv_queue_work (the libuv
 * thread pool): they are rare (start, key rotation, refresh; once per opaque token) and
 * keep the loop free. curl_global_init is NOT called here:
 * tg_upstream_global_init (or, in a test, curl_global_init) must have run before the
 * first tg_auth_authenticate.
 */
#ifndef TG_AUTH_H
#define TG_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/tg_common.h"

/* ---------------------------------------------------------------- identity */

/* Who is calling. Every string is NUL-terminated and lives in the arena the caller gave
 * tg_auth_authenticate; optional fields are NULL (arrays: count 0) when absent. */
typedef struct tg_identity {
    const char *method;         /* "oauth" or "api_key" */
    const char *delegator;      /* the human: `sub` or the configured claim; key's delegator */
    const char *agent;          /* act.sub, else azp / client_id, else default; key's agent */
    const char **act_chain;     /* RFC 8693 `act` subjects, outermost (current actor) first */
    size_t n_act;
    const char **groups;
    size_t n_groups;
    const char **scopes;
    size_t n_scopes;
    const char *credential_id;  /* `jti` (else "sha256:<token hash prefix>") or the key id */
    const char *client_ip;      /* after trusted-proxy resolution */
    const char *issuer;         /* `iss`; NULL for API keys */
    const char *client_id;      /* `client_id` or `azp`; NULL for API keys */
    const char *email;          /* `email` claim; NULL for API keys */
    int64_t expires_at;         /* Unix seconds: token `exp`, key expiry; 0 = none */
    /* Stable across token refreshes and key rotations, different for any other caller:
     * "oauth:<sha256 of [iss, sub, agent chain]>" or "api_key:<key id>". Bind MCP
     * sessions to it. */
    const char *principal_key;
} tg_identity;

/* Deep copy into arena (strings and arrays included). */
tg_identity *tg_identity_copy(tg_arena *arena, const tg_identity *id);

/* ---------------------------------------------------------------- API-key records and store */

#define TG_APIKEY_ID_LEN     12   /* lowercase RFC 4648 base32 alphabet: a-z 2-7 */
#define TG_APIKEY_SECRET_LEN 43   /* 32 random bytes, base64url without padding */
#define TG_APIKEY_HASH_LEN   64   /* hex SHA-256 */
/* "tgk_" + id + "_" + secret */
#define TG_APIKEY_TOKEN_LEN  (4 + TG_APIKEY_ID_LEN + 1 + TG_APIKEY_SECRET_LEN)

/* One API key. The secret itself is never stored: secret_hash is
 * hex(SHA-256("tgk-v1\0" || id || "\0" || secret)) — the key id is a unique per-key salt,
 * and 256-bit random secrets make a slow hash pointless (docs/authentication.md).
 * Times are Unix seconds; 0 means "none" (never expires / not revoked / never used). */
typedef struct tg_apikey_record {
    char id[TG_APIKEY_ID_LEN + 1];
    const char *agent;          /* required */
    const char *delegator;      /* optional */
    const char **groups;
    size_t n_groups;
    const char **cidrs;         /* per-key allow-list (canonical text); empty = any */
    size_t n_cidrs;
    int64_t created;
    int64_t expires;
    int64_t revoked_at;
    char secret_hash[TG_APIKEY_HASH_LEN + 1];
    /* After a rotation the previous secret keeps working until prev_expires. Invariant:
     * prev_secret_hash is "" exactly when prev_expires is 0. */
    char prev_secret_hash[TG_APIKEY_HASH_LEN + 1];
    int64_t prev_expires;
    const char *note;           /* optional free text, never a secret */
    int64_t last_used;
} tg_apikey_record;

/* Where key records live. The lead binds this to tg_store; tg_apikey_memstore_new is an
 * in-memory implementation (tests, benches). Calls are synchronous, on the loop thread.
 * Strings in returned records are allocated from the given arena. */
typedef struct tg_apikey_store {
    void *ctx;
    /* 1 found (out filled), 0 no such id, -1 error (err filled). */
    int (*get)(void *ctx, const char *id, tg_arena *arena, tg_apikey_record *out, tg_error *err);
    /* Insert, or replace the record with the same id. */
    int (*put)(void *ctx, const tg_apikey_record *rec, tg_error *err);
    /* All records, ordered by created then id. */
    int (*list)(void *ctx, tg_arena *arena, tg_apikey_record **out, size_t *n, tg_error *err);
    /* Sets last_used; the library calls it at most once a minute per key. */
    int (*touch)(void *ctx, const char *id, int64_t when, tg_error *err);
} tg_apikey_store;

tg_apikey_store *tg_apikey_memstore_new(void);
void tg_apikey_memstore_free(tg_apikey_store *st);

/* The store's api_keys table (src/store; keystore_sql.c). `store` is borrowed and must
 * outlive the key store. Whoever calls these links tg_store too. Group names and CIDRs
 * must not contain a comma (put refuses them). */
struct tg_store;
tg_apikey_store *tg_apikey_sqlstore_new(struct tg_store *store);
void tg_apikey_sqlstore_free(tg_apikey_store *st);

/* What `toolgate keys create` asks for. */
typedef struct tg_apikey_params {
    const char *agent;          /* required */
    const char *delegator;
    const char **groups;
    size_t n_groups;
    const char **cidrs;         /* validated and canonicalised; "10.1.2.3" means /32 */
    size_t n_cidrs;
    int64_t ttl_s;              /* 0 = no expiry (refused when max_lifetime_s > 0) */
    const char *note;
} tg_apikey_params;

/* Builds a new record (random id and secret, hashed) in arena and writes the full
 * `tgk_<id>_<secret>` into token_out — the only time the secret exists. max_lifetime_s
 * (0 = unlimited) refuses longer or unlimited ttls. Does not store: call store->put. */
int tg_apikey_create(const tg_apikey_params *p, int64_t now, int64_t max_lifetime_s,
                     tg_arena *arena, tg_apikey_record *out,
                     char token_out[TG_APIKEY_TOKEN_LEN + 1], tg_error *err);

/* The store-level operations behind `keys revoke` / `keys rotate` (get, compute, put).
 * Revoking twice keeps the first time. Rotating gives the key a new secret (token_out);
 * the current one keeps working for overlap_s seconds (0 = stops now). Revoked or
 * expired keys cannot be rotated. Both fail with "no API key with id …" when absent. */
int tg_apikey_revoke(const tg_apikey_store *st, const char *id, int64_t now, tg_error *err);
int tg_apikey_rotate(const tg_apikey_store *st, const char *id, int64_t now, int64_t overlap_s,
                     char token_out[TG_APIKEY_TOKEN_LEN + 1], tg_error *err);

/* Splits a `tgk_<id>_<secret>` token. 0 ok (id_out filled, *secret points into token). */
int tg_apikey_parse(const char *token, size_t len, char id_out[TG_APIKEY_ID_LEN + 1],
                    const char **secret, tg_error *err);
/* hex SHA-256 as described at tg_apikey_record. */
void tg_apikey_hash(const char *id, const char *secret, size_t secret_len,
                    char out[TG_APIKEY_HASH_LEN + 1]);

/* ---------------------------------------------------------------- configuration */

typedef struct tg_auth_issuer_conf {
    const char *issuer;         /* exact `iss` value, e.g. https://login.example.com/ */
    /* https:// (http:// only for 127.0.0.0/8 and [::1]). NULL: discovered from
     * <issuer>/.well-known/oauth-authorization-server, then openid-configuration. */
    const char *jwks_uri;
} tg_auth_issuer_conf;

/* RFC 7662 token introspection, for opaque (non-JWT) access tokens. url NULL = off. */
typedef struct tg_auth_introspection_conf {
    const char *url;            /* https:// (http:// only for 127.0.0.0/8 and [::1]) */
    const char *client_id;      /* toolgate's client credentials at the introspection */
    const char *client_secret;  /*   endpoint (HTTP Basic); both required with url */
    int all_tokens;             /* introspect JWTs too, instead of verifying them locally */
} tg_auth_introspection_conf;

/* Everything is copied by tg_auth_new; zero values pick the documented defaults. */
typedef struct tg_auth_conf {
    /* The canonical public URL of the MCP endpoint (RFC 8707 resource), e.g.
     * https://toolgate.example/mcp. Tokens must carry it in `aud`. Required when
     * OAuth is enabled. */
    const char *resource;
    /* Metadata URL put in challenges; NULL derives the RFC 9728 location from resource:
     * https://toolgate.example/.well-known/oauth-protected-resource/mcp */
    const char *resource_metadata_url;

    /* OAuth. */
    int oauth_enabled;
    const tg_auth_issuer_conf *issuers;
    size_t n_issuers;
    int64_t leeway_s;               /* exp/nbf/iat tolerance; default 60; -1 means 0 */
    const char **required_scopes;   /* all must be granted, else 403 */
    size_t n_required_scopes;
    const char **scopes_supported;  /* advertised in metadata; default required_scopes */
    size_t n_scopes_supported;
    const char *delegator_claim;    /* default "sub" */
    const char *groups_claim;       /* default "groups" (array of strings or "a b c") */
    const char *domain_claim;       /* claim holding the human's address; default "email" */
    const char **allowed_domains;   /* exact, case-insensitive; empty = any */
    size_t n_allowed_domains;
    const char *default_agent;      /* when no act.sub / azp / client_id; NULL = refuse */
    size_t token_cache_size;        /* verified-token cache entries; default 4096 */
    size_t max_token_bytes;         /* default 8192 */
    int64_t jwks_refetch_interval_ms; /* unknown-kid refetch at most this often; default 30000 */
    int64_t jwks_max_age_ms;        /* refresh keys older than this; default 3600000 */
    int64_t fetch_timeout_ms;       /* whole JWKS/discovery transfer; default 5000 */
    size_t fetch_max_bytes;         /* default 262144; also bounds introspection responses */
    /* Opaque tokens are POSTed here (off the loop, like JWKS fetches, with the same
     * timeout); the answer must say active: true and passes the same iss / aud / exp /
     * nbf / scope / delegator checks as a JWT's claims; the identity is cached until
     * exp. Unreachable → 503. */
    tg_auth_introspection_conf introspection;

    /* API keys. */
    int api_keys_enabled;
    const tg_apikey_store *key_store;   /* required when api_keys_enabled; not copied */
    const char **api_key_cidrs;     /* global allow-list; empty = any */
    size_t n_api_key_cidrs;
    int64_t api_key_max_lifetime_s; /* 0 = unlimited */
    int64_t api_key_rotation_overlap_s; /* default for rotate; default 86400 */

    /* Proxies whose X-Forwarded-For / Forwarded are believed (CIDRs). */
    const char **trusted_proxies;
    size_t n_trusted_proxies;
} tg_auth_conf;

/* ---------------------------------------------------------------- the authenticator */

typedef struct tg_auth tg_auth;

/* Validates and copies conf (CIDRs parsed, URLs checked: https or loopback http).
 * NULL + err on a configuration mistake. */
tg_auth *tg_auth_new(uv_loop_t *loop, const tg_auth_conf *conf, tg_error *err);
/* Pending requests are cancelled without their callbacks; an in-flight JWKS fetch
 * finishes in the thread pool and is then discarded (run the loop until it is idle). */
void tg_auth_free(tg_auth *a);

/* What the HTTP layer knows about the request. */
typedef struct tg_auth_input {
    const char *authorization;  /* Authorization header value, or NULL */
    int authorization_repeated; /* the header appeared more than once → 400 */
    const char *query;          /* raw query string (after '?'), or NULL */
    const char *peer_ip;        /* socket peer address as text */
    const char *x_forwarded_for;/* all X-Forwarded-For lines joined with ", ", or NULL */
    const char *forwarded;      /* all Forwarded lines joined with ", ", or NULL */
    /* The connection's memo, or NULL: a slot that starts NULL, lives as long as the
     * connection, and is released with tg_auth_memo_free. It holds the last bearer
     * token the connection sent and its SHA-256, so that a keep-alive client's next call
     * with the same token does not hash it again. */
    void **memo;
} tg_auth_input;

void tg_auth_memo_free(void *memo);

typedef struct tg_auth_result {
    const tg_identity *identity;   /* non-NULL on success (in the caller's arena) */
    /* On failure: */
    int status;                    /* 400, 401, 403 (503 when keys cannot be fetched) */
    const char *www_authenticate;  /* exact header value to send (NULL only for 503) */
    const char *client_message;    /* for the response body: "invalid credentials" … */
    const char *log_reason;        /* why, for the log only: "token expired at …" */
} tg_auth_result;

typedef void (*tg_auth_cb)(const tg_auth_result *res, void *user);
typedef struct tg_auth_pending tg_auth_pending;

/* Authenticates one request. Strings in the result live in arena. cb runs exactly once
 * (unless cancelled): synchronously — before this returns NULL — when no fetch is needed
 * (API keys, cached tokens, every refusal), otherwise later on the loop thread; the
 * returned handle is then valid until cb runs or tg_auth_cancel. */
tg_auth_pending *tg_auth_authenticate(tg_auth *a, const tg_auth_input *in, tg_arena *arena,
                                      tg_auth_cb cb, void *user);
/* The client went away: cb will not run. */
void tg_auth_cancel(tg_auth_pending *p);

/* RFC 9728 protected-resource metadata (JSON text, owned by a), to serve at both
 * /.well-known/oauth-protected-resource and its MCP-path variant, and the URL the
 * challenges advertise. */
const char *tg_auth_metadata_json(const tg_auth *a);
const char *tg_auth_metadata_url(const tg_auth *a);
/* The configured overlap, for `keys rotate` without --overlap. */
int64_t tg_auth_rotation_overlap(const tg_auth *a);

/* Counters for metrics and tests. */
typedef struct tg_auth_stats {
    uint64_t cache_hits, cache_misses, jwks_fetches, jwks_fetch_failures;
    uint64_t introspections, introspection_failures;   /* failures: endpoint unusable */
} tg_auth_stats;
void tg_auth_get_stats(const tg_auth *a, tg_auth_stats *out);

/* ---------------------------------------------------------------- addresses */

/* An address or CIDR: 16 bytes, IPv4 stored IPv4-mapped (::ffff:a.b.c.d) so that
 * IPv4-mapped IPv6 peers match IPv4 ranges. */
typedef struct tg_cidr {
    uint8_t addr[16];
    uint8_t prefix;     /* 0..128 (IPv4 /n is stored as 96+n) */
} tg_cidr;

/* "10.0.0.0/8", "2001:db8::/32", "127.0.0.1" (= /32). Host bits must be zero. */
int tg_cidr_parse(const char *s, tg_cidr *out, tg_error *err);
/* A bare address (IPv6 may be bracketed; zone ids refused). */
int tg_ip_parse(const char *s, size_t len, uint8_t out[16]);
int tg_cidr_contains(const tg_cidr *c, const uint8_t ip[16]);
/* Canonical text of a CIDR ("10.0.0.0/8", "::1/128"); out ≥ 64 bytes. */
void tg_cidr_format(const tg_cidr *c, char *out, size_t outlen);

#endif /* TG_AUTH_H */
