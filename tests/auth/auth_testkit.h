/*
 * auth_testkit.h — what the auth tests and bench need to play an authorization server:
 * OpenSSL key generation, JWK export, JWS signing (including deliberately bad tokens),
 * and a tiny blocking HTTP server on 127.0.0.1 (its own thread) serving JWKS and
 * discovery documents, and answering introspection POSTs.
 */
#ifndef AUTH_TESTKIT_H
#define AUTH_TESTKIT_H

#include <stddef.h>
#include <openssl/evp.h>

#include "auth/tg_auth.h"

typedef struct tk_key {
    EVP_PKEY *pkey;
    char alg[8];    /* the algorithm this key signs with: RS256 … EdDSA */
    char kid[32];
} tk_key;

/* Generates the key type the algorithm needs (RSA 2048, P-256, P-384, Ed25519). */
void tk_key_gen(tk_key *k, const char *alg, const char *kid);
/* Same key material, another kid/alg (an RSA key published for RS384 too, say). */
void tk_key_alias(tk_key *k, const tk_key *from, const char *alg, const char *kid);
void tk_key_free(tk_key *k);
/* The public JWK as JSON text (malloc'd); with_alg 0 leaves `alg` out. */
char *tk_jwk(const tk_key *k, int with_alg);
/* {"keys":[jwk,...]} (malloc'd). */
char *tk_jwks(const tk_key *const *keys, size_t n, int with_alg);

char *tk_b64(const void *p, size_t n);   /* base64url, malloc'd */
/* header.payload.signature with the key's algorithm (or sign_alg if non-NULL, for
 * mismatch tests). header NULL → {"alg":…,"kid":…,"typ":"JWT"}. malloc'd. */
char *tk_sign(const tk_key *k, const char *sign_alg, const char *header, const char *payload);
/* HS256 over header.payload with an arbitrary secret (the algorithm-confusion attack). */
char *tk_sign_hs256(const void *secret, size_t n, const char *header, const char *payload);
/* The key's public half as PEM (malloc'd), the bytes an attacker would use as an HMAC key. */
char *tk_public_pem(const tk_key *k, size_t *len);

typedef struct tk_server tk_server;
tk_server *tk_server_start(void);
/* Serves body at path (status 200), or status with empty body when body is NULL. */
void tk_server_route(tk_server *s, const char *path, int status, const char *body);
int  tk_server_port(const tk_server *s);
int  tk_server_hits(tk_server *s, const char *path);
/* The last request to path, head and body (malloc'd), or NULL if none. */
char *tk_server_last(tk_server *s, const char *path);
void tk_server_stop(tk_server *s);

/* What a tg_auth_authenticate callback reported (status 200 on success). */
typedef struct tk_outcome {
    int done;               /* how many times the callback ran */
    int status;
    const tg_identity *id;
    const char *www, *msg, *why;
} tk_outcome;
void tk_on_result(const tg_auth_result *r, void *user);   /* user: tk_outcome * */
/* Runs loop until o->done or timeout_ms passed (tests stay bounded in time). */
void tk_run_until(uv_loop_t *loop, tk_outcome *o, uint64_t timeout_ms);

#endif
