/*
 * auth_int.h — private to src/auth. The pieces tg_auth.c composes:
 *   jose.c    base64url, JWS algorithms, JWK → EVP_PKEY, JWT splitting and verification
 *   fetch.c   blocking HTTPS fetch of discovery documents and JWKS (run in the thread pool)
 *   net.c     CIDRs, client-address resolution behind trusted proxies
 *   apikey.c  API-key format, hashing, records, the in-memory store, verification
 *   auth.c    tg_auth: configuration, issuer key state, token cache, the request flow
 */
#ifndef TG_AUTH_INT_H
#define TG_AUTH_INT_H

#include <openssl/evp.h>

#include "auth/tg_auth.h"

#define AUTH_COMPONENT "auth"

/* ---------------------------------------------------------------- jose.c */

/* The JWS algorithms toolgate accepts. Anything else (none, HS*, Ed448, ...) has no
 * value here and is refused before a key is looked at. */
typedef enum {
    AUTH_ALG_INVALID = 0,
    AUTH_ALG_RS256, AUTH_ALG_RS384, AUTH_ALG_RS512,
    AUTH_ALG_PS256, AUTH_ALG_PS384, AUTH_ALG_PS512,
    AUTH_ALG_ES256, AUTH_ALG_ES384,
    AUTH_ALG_EDDSA,
} auth_alg;

auth_alg    auth_alg_from_name(const char *name);
const char *auth_alg_name(auth_alg alg);

/* base64url: tg_b64url_encode / tg_b64url_decode (common), strict as JOSE wants. */

/* A verification key. Invariant: alg is the only algorithm this key verifies — taken from
 * the JWK's `alg`, or derived from kty/crv when absent (RSA → RS256, P-256 → ES256,
 * P-384 → ES384, Ed25519 → EdDSA; PS* only when the JWK says so). */
typedef struct auth_key {
    char *kid;          /* NULL when the JWK has none */
    auth_alg alg;
    EVP_PKEY *pkey;
} auth_key;

typedef struct auth_keyset {
    auth_key *keys;
    size_t n;
} auth_keyset;

/* Parses a JWKS document ({"keys":[...]}). Keys that cannot be used — `use` other than
 * "sig", unsupported type or curve, private parts, bad parameters, RSA under 2048 bits —
 * are skipped with a warning (one bad key must not lock out the others); a document
 * that is not JSON, or has no usable key, fails. */
int  auth_keyset_parse(const char *body, size_t len, auth_keyset *out, tg_error *err);
void auth_keyset_free(auth_keyset *ks);
/* The key a token names: by kid, or — when the token has no kid — the only key pinned
 * to alg. NULL if none; *kid_seen tells whether some key carries that kid (then the
 * algorithm did not match: refuse, do not refetch). */
const auth_key *auth_keyset_find(const auth_keyset *ks, const char *kid, auth_alg alg,
                                 int *kid_seen);

/* A JWT split and decoded, signature not yet checked. header/claims are owned (decref
 * with auth_jwt_clear). */
typedef struct auth_jwt {
    json_t *header;
    json_t *claims;
    auth_alg alg;
    const char *kid;            /* points into header, or NULL */
    uint8_t *sig;               /* arena */
    size_t sig_len;
    size_t signing_input_len;   /* bytes of "<header>.<payload>" at the token start */
} auth_jwt;

/* Structure only: three segments, strict base64url, JSON objects via tg_json_parse
 * (duplicate claims refused), header checks (alg supported; jwk/jku/x5u/x5c/crit/zip
 * refused; typ, if present, JWT or at+jwt). err says what is wrong, for the log. */
int  auth_jwt_parse(const char *tok, size_t len, tg_arena *arena, auth_jwt *out, tg_error *err);
void auth_jwt_clear(auth_jwt *j);
/* 1 valid, 0 invalid. Refuses when key->alg differs from alg. */
int  auth_jws_verify(const auth_key *key, auth_alg alg, const char *input, size_t input_len,
                     const uint8_t *sig, size_t sig_len);

/* ---------------------------------------------------------------- fetch.c */

/* Checks a URL we are about to fetch: https, or http to a literal loopback address. */
int auth_url_check(const char *url, tg_error *err);
/* base with "/.well-known/<name>" inserted before its path (RFC 8414 / RFC 9728).
 * malloc'd. */
char *auth_well_known_url(const char *base, const char *name);

/* One key fetch, filled on the loop thread, run by auth_fetch_run in a worker thread,
 * read back on the loop thread. */
typedef struct auth_fetch {
    /* in */
    const char *issuer;
    const char *jwks_uri;       /* NULL: discover it */
    int64_t timeout_ms;
    size_t max_bytes;
    /* out */
    int ok;
    tg_buf body;                /* the JWKS document */
    char *discovered_uri;       /* malloc'd, when discovery ran */
    tg_error err;
} auth_fetch;

void auth_fetch_run(auth_fetch *f);

/* One RFC 7662 introspection, filled on the loop thread, run by auth_introspect_run in a
 * worker thread: POST token=…&token_type_hint=access_token to url with HTTP Basic client
 * authentication. ok = HTTP 200 within the limits (body is then the response, not yet
 * parsed); otherwise err says why. All strings are owned by the request. */
typedef struct auth_introspect {
    /* in */
    char *url, *token, *client_id, *client_secret;
    int64_t timeout_ms;
    size_t max_bytes;
    /* out */
    int ok;
    tg_buf body;
    tg_error err;
} auth_introspect;

void auth_introspect_run(auth_introspect *r);

/* ---------------------------------------------------------------- net.c */

typedef struct auth_cidrs {
    tg_cidr *v;
    size_t n;
} auth_cidrs;

int  auth_cidrs_parse(const char **s, size_t n, const char *what, auth_cidrs *out, tg_error *err);
void auth_cidrs_free(auth_cidrs *c);
int  auth_cidrs_match(const auth_cidrs *c, const uint8_t ip[16]);

/* The client address: the peer, or — only when the peer is a trusted proxy — the
 * right-most address in Forwarded (preferred) or X-Forwarded-For that is not itself a
 * trusted proxy. A malformed list from a trusted proxy fails (err says why). */
int auth_client_ip(const auth_cidrs *trusted, const char *peer, const char *xff,
                   const char *forwarded, uint8_t ip[16], char *text, size_t textlen,
                   tg_error *err);
/* Text of an address held IPv4-mapped: IPv4 as dotted quad. out ≥ 46 bytes. */
void auth_ip_format(const uint8_t ip[16], char *out, size_t outlen);

/* ---------------------------------------------------------------- apikey.c */

/* Checks a `tgk_…` token: the record exists, the secret (or the previous one within its
 * overlap) matches in constant time, and the key is not revoked, not expired, within
 * max_lifetime_s, and the client address is inside the global and per-key CIDRs.
 * 0 ok (rec filled, in arena); -1 refused with the log reason in err; -2 the store
 * failed (err says how). Touches last_used. */
int auth_apikey_verify(const tg_apikey_store *st, const char *token, size_t len, int64_t now,
                       int64_t max_lifetime_s, const auth_cidrs *global, const uint8_t ip[16],
                       tg_arena *arena, tg_apikey_record *rec, tg_error *err);

#endif /* TG_AUTH_INT_H */
