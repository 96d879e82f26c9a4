/*
 * jose.c — the JOSE pieces of the OAuth resource server, on OpenSSL 3 EVP directly:
 * strict base64url, the accepted JWS algorithms, JWK → EVP_PKEY (each key pinned to one
 * algorithm), JWT splitting with header screening, and signature verification.
 *
 * Why by hand: the JWT libraries packaged for Debian accepted algorithm-confusion tokens
 * (stack.md). Here the algorithm a key verifies is decided when the key is loaded, and a
 * token's `alg` only selects which pinned key may be tried.
 */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "auth/auth_int.h"

/* ---------------------------------------------------------------- algorithms */

static const struct {
    const char *name;
    auth_alg alg;
} alg_names[] = {
    {"RS256", AUTH_ALG_RS256}, {"RS384", AUTH_ALG_RS384}, {"RS512", AUTH_ALG_RS512},
    {"PS256", AUTH_ALG_PS256}, {"PS384", AUTH_ALG_PS384}, {"PS512", AUTH_ALG_PS512},
    {"ES256", AUTH_ALG_ES256}, {"ES384", AUTH_ALG_ES384}, {"EdDSA", AUTH_ALG_EDDSA},
};

auth_alg auth_alg_from_name(const char *name)
{
    /* Exact, case-sensitive (RFC 7515 §4.1.1): "rs256" or "NONE" are not algorithms. */
    for (size_t i = 0; i < sizeof alg_names / sizeof alg_names[0]; i++)
        if (strcmp(alg_names[i].name, name) == 0) return alg_names[i].alg;
    return AUTH_ALG_INVALID;
}

const char *auth_alg_name(auth_alg alg)
{
    for (size_t i = 0; i < sizeof alg_names / sizeof alg_names[0]; i++)
        if (alg_names[i].alg == alg) return alg_names[i].name;
    return "invalid";
}

static const EVP_MD *alg_md(auth_alg alg)
{
    switch (alg) {
    case AUTH_ALG_RS256: case AUTH_ALG_PS256: case AUTH_ALG_ES256: return EVP_sha256();
    case AUTH_ALG_RS384: case AUTH_ALG_PS384: case AUTH_ALG_ES384: return EVP_sha384();
    case AUTH_ALG_RS512: case AUTH_ALG_PS512: return EVP_sha512();
    default: return NULL;  /* EdDSA hashes internally */
    }
}

static int alg_is_rsa(auth_alg alg) { return alg >= AUTH_ALG_RS256 && alg <= AUTH_ALG_PS512; }
static int alg_is_pss(auth_alg alg) { return alg >= AUTH_ALG_PS256 && alg <= AUTH_ALG_PS512; }

/* Decodes a base64url JSON string member into a malloc'd buffer. */
static uint8_t *member_b64(const json_t *obj, const char *name, size_t *len)
{
    const json_t *v = json_object_get(obj, name);
    if (!json_is_string(v)) return NULL;
    size_t slen = json_string_length(v);
    uint8_t *buf = malloc(slen * 3 / 4 + 1);
    if (!buf) abort();
    if (tg_b64url_decode(json_string_value(v), slen, buf, len) != 0 || *len == 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ---------------------------------------------------------------- JWK → EVP_PKEY */

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pkey = NULL;
    if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *rsa_key(const json_t *jwk, tg_error *err)
{
    size_t nlen = 0, elen = 0;
    uint8_t *n = member_b64(jwk, "n", &nlen), *e = member_b64(jwk, "e", &elen);
    EVP_PKEY *pkey = NULL;
    BIGNUM *bn = n ? BN_bin2bn(n, (int)nlen, NULL) : NULL;
    BIGNUM *be = e ? BN_bin2bn(e, (int)elen, NULL) : NULL;
    if (!bn || !be) {
        tg_error_set(err, "RSA key without valid base64url n and e");
    } else if (BN_num_bits(bn) < 2048 || BN_num_bits(bn) > 16384) {
        tg_error_set(err, "RSA modulus of %d bits (2048..16384 accepted)", BN_num_bits(bn));
    } else if (!BN_is_odd(be) || BN_num_bits(be) < 2 || BN_num_bits(be) > 64) {
        tg_error_set(err, "RSA public exponent is not a small odd number");
    } else {
        OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
        if (bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) == 1 &&
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) == 1)
            pkey = pkey_fromdata("RSA", bld);
        OSSL_PARAM_BLD_free(bld);
        if (!pkey) tg_error_set(err, "OpenSSL refused the RSA key");
    }
    BN_free(bn);
    BN_free(be);
    free(n);
    free(e);
    return pkey;
}

static EVP_PKEY *ec_key(const json_t *jwk, const char *crv, tg_error *err)
{
    const char *group;
    size_t coord;
    if (strcmp(crv, "P-256") == 0) { group = "prime256v1"; coord = 32; }
    else if (strcmp(crv, "P-384") == 0) { group = "secp384r1"; coord = 48; }
    else { tg_error_set(err, "EC curve %s not supported", crv); return NULL; }

    size_t xlen = 0, ylen = 0;
    uint8_t *x = member_b64(jwk, "x", &xlen), *y = member_b64(jwk, "y", &ylen);
    EVP_PKEY *pkey = NULL;
    if (!x || !y || xlen != coord || ylen != coord) {
        tg_error_set(err, "EC %s key needs x and y of %zu bytes", crv, coord);
    } else {
        uint8_t point[1 + 2 * 48];
        point[0] = 0x04;  /* uncompressed */
        memcpy(point + 1, x, coord);
        memcpy(point + 1 + coord, y, coord);
        OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
        if (bld &&
            OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) == 1 &&
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point,
                                             1 + 2 * coord) == 1)
            pkey = pkey_fromdata("EC", bld);
        OSSL_PARAM_BLD_free(bld);
        /* fromdata does not promise the point is on the curve; an off-curve point is
         * the classic invalid-curve attack surface, so check it. */
        EVP_PKEY_CTX *chk = pkey ? EVP_PKEY_CTX_new(pkey, NULL) : NULL;
        if (pkey && (!chk || EVP_PKEY_public_check(chk) != 1)) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
        EVP_PKEY_CTX_free(chk);
        if (!pkey) tg_error_set(err, "EC %s point is not a valid public key", crv);
    }
    free(x);
    free(y);
    return pkey;
}

static EVP_PKEY *okp_key(const json_t *jwk, const char *crv, tg_error *err)
{
    if (strcmp(crv, "Ed25519") != 0) {
        tg_error_set(err, "OKP curve %s not supported", crv);
        return NULL;
    }
    size_t xlen = 0;
    uint8_t *x = member_b64(jwk, "x", &xlen);
    EVP_PKEY *pkey = NULL;
    if (!x || xlen != 32) tg_error_set(err, "Ed25519 key needs x of 32 bytes");
    else if (!(pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, 32)))
        tg_error_set(err, "OpenSSL refused the Ed25519 key");
    free(x);
    return pkey;
}

/* The algorithm a key of this type and curve may verify: the JWK's own `alg` when given
 * (and compatible), else the one conventional choice. PS* is never assumed: an RSA key
 * without `alg` verifies RS256 only, so an attacker cannot switch a token to PSS. */
static auth_alg jwk_alg(const char *kty, const char *crv, const json_t *algv, tg_error *err)
{
    auth_alg derived;
    if (strcmp(kty, "RSA") == 0) derived = AUTH_ALG_RS256;
    else if (strcmp(crv, "P-256") == 0) derived = AUTH_ALG_ES256;
    else if (strcmp(crv, "P-384") == 0) derived = AUTH_ALG_ES384;
    else derived = AUTH_ALG_EDDSA;
    if (!algv) return derived;
    auth_alg a = json_is_string(algv) ? auth_alg_from_name(json_string_value(algv))
                                      : AUTH_ALG_INVALID;
    int compatible = strcmp(kty, "RSA") == 0 ? alg_is_rsa(a) : a == derived;
    if (!compatible) {
        tg_error_set(err, "alg %s does not fit a %s key",
                     json_is_string(algv) ? json_string_value(algv) : "(not a string)", kty);
        return AUTH_ALG_INVALID;
    }
    return a;
}

/* 0 ok; -1 skip this key (err says why). */
static int jwk_parse(const json_t *jwk, auth_key *out, tg_error *err)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(jwk)) return tg_error_set(err, "a key that is not an object");
    const json_t *kty = json_object_get(jwk, "kty"), *use = json_object_get(jwk, "use");
    const json_t *kid = json_object_get(jwk, "kid"), *ops = json_object_get(jwk, "key_ops");
    if (!json_is_string(kty)) return tg_error_set(err, "a key without kty");
    if (kid && !json_is_string(kid)) return tg_error_set(err, "a key with a non-string kid");
    const char *kids = kid ? json_string_value(kid) : "(none)";
    if (use && !(json_is_string(use) && strcmp(json_string_value(use), "sig") == 0))
        return tg_error_set(err, "key %s is not for signatures", kids);
    if (ops) {
        int verify = 0;
        size_t i;
        const json_t *op;
        json_array_foreach(ops, i, op)
            if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0) verify = 1;
        if (!verify) return tg_error_set(err, "key %s key_ops lacks verify", kids);
    }
    /* A published private part means the issuer leaked its key: trust nothing from it. */
    if (json_object_get(jwk, "d"))
        return tg_error_set(err, "key %s contains private key material", kids);

    const char *t = json_string_value(kty);
    const json_t *crvv = json_object_get(jwk, "crv");
    const char *crv = json_is_string(crvv) ? json_string_value(crvv) : "";
    if (strcmp(t, "RSA") != 0 && strcmp(t, "EC") != 0 && strcmp(t, "OKP") != 0)
        return tg_error_set(err, "key %s has unsupported kty %s", kids, t);
    tg_error why;
    auth_alg alg = jwk_alg(t, crv, json_object_get(jwk, "alg"), &why);
    if (alg == AUTH_ALG_INVALID) return tg_error_set(err, "key %s: %s", kids, why.msg);
    EVP_PKEY *pkey = strcmp(t, "RSA") == 0 ? rsa_key(jwk, &why)
                   : strcmp(t, "EC") == 0  ? ec_key(jwk, crv, &why)
                                           : okp_key(jwk, crv, &why);
    if (!pkey) return tg_error_set(err, "key %s: %s", kids, why.msg);
    out->pkey = pkey;
    out->alg = alg;
    if (kid) {
        out->kid = strdup(json_string_value(kid));
        if (!out->kid) abort();
    }
    return 0;
}

int auth_keyset_parse(const char *body, size_t len, auth_keyset *out, tg_error *err)
{
    memset(out, 0, sizeof *out);
    tg_error jerr;
    json_t *doc = tg_json_parse(body, len, 8, &jerr);
    if (!doc) return tg_error_set(err, "JWKS is not valid JSON: %s", jerr.msg);
    const json_t *keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        json_decref(doc);
        return tg_error_set(err, "JWKS has no \"keys\" array");
    }
    out->keys = calloc(json_array_size(keys) + 1, sizeof *out->keys);
    if (!out->keys) abort();
    size_t i;
    const json_t *jwk;
    json_array_foreach(keys, i, jwk) {
        tg_error why;
        if (jwk_parse(jwk, &out->keys[out->n], &why) == 0) out->n++;
        else tg_log_warn(AUTH_COMPONENT, "JWKS key skipped: %s", why.msg);
    }
    json_decref(doc);
    if (out->n == 0) {
        auth_keyset_free(out);
        return tg_error_set(err, "JWKS has no usable signing key");
    }
    return 0;
}

void auth_keyset_free(auth_keyset *ks)
{
    for (size_t i = 0; i < ks->n; i++) {
        free(ks->keys[i].kid);
        EVP_PKEY_free(ks->keys[i].pkey);
    }
    free(ks->keys);
    memset(ks, 0, sizeof *ks);
}

const auth_key *auth_keyset_find(const auth_keyset *ks, const char *kid, auth_alg alg,
                                 int *kid_seen)
{
    *kid_seen = 0;
    const auth_key *only = NULL;
    size_t candidates = 0;
    for (size_t i = 0; i < ks->n; i++) {
        const auth_key *k = &ks->keys[i];
        if (kid) {
            if (!k->kid || strcmp(k->kid, kid) != 0) continue;
            *kid_seen = 1;
            if (k->alg == alg) return k;
        } else if (k->alg == alg) {
            only = k;
            candidates++;
        }
    }
    /* Without a kid, guessing among several keys would let a token pick its key. */
    return candidates == 1 ? only : NULL;
}

/* ---------------------------------------------------------------- JWT */

static const char *const refused_headers[] = {
    "jwk", "jku", "x5u", "x5c", "crit", "zip", "enc",
};

static json_t *segment_json(const char *seg, size_t len, const char *what, tg_error *err)
{
    uint8_t *raw = malloc(len * 3 / 4 + 1);
    if (!raw) abort();
    size_t rawlen = 0;
    json_t *v = NULL;
    tg_error jerr;
    if (tg_b64url_decode(seg, len, raw, &rawlen) != 0)
        tg_error_set(err, "JWT %s is not strict base64url", what);
    else if (!(v = tg_json_parse((const char *)raw, rawlen, 16, &jerr)))
        tg_error_set(err, "JWT %s is not valid JSON: %s", what, jerr.msg);
    else if (!json_is_object(v)) {
        tg_error_set(err, "JWT %s is not a JSON object", what);
        json_decref(v);
        v = NULL;
    }
    free(raw);
    return v;
}

int auth_jwt_parse(const char *tok, size_t len, tg_arena *arena, auth_jwt *out, tg_error *err)
{
    memset(out, 0, sizeof *out);
    const char *d1 = memchr(tok, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)))
        return tg_error_set(err, "not a JWS compact token (three segments expected)");
    size_t hlen = (size_t)(d1 - tok), plen = (size_t)(d2 - d1 - 1);
    size_t slen = len - (size_t)(d2 + 1 - tok);
    if (hlen == 0 || plen == 0 || slen == 0)
        return tg_error_set(err, "JWT with an empty segment (unsigned tokens are refused)");

    if (!(out->header = segment_json(tok, hlen, "header", err))) return -1;
    for (size_t i = 0; i < sizeof refused_headers / sizeof refused_headers[0]; i++)
        if (json_object_get(out->header, refused_headers[i])) {
            tg_error_set(err, "JWT header \"%s\" refused", refused_headers[i]);
            goto fail;
        }
    const json_t *alg = json_object_get(out->header, "alg");
    if (!json_is_string(alg)) {
        tg_error_set(err, "JWT header without alg");
        goto fail;
    }
    if ((out->alg = auth_alg_from_name(json_string_value(alg))) == AUTH_ALG_INVALID) {
        tg_error_set(err, "JWT alg \"%.32s\" refused", json_string_value(alg));
        goto fail;
    }
    const json_t *typ = json_object_get(out->header, "typ");
    if (typ) {
        const char *t = json_is_string(typ) ? json_string_value(typ) : "";
        size_t tl = strlen(t);
        if (!tg_strcaseeq(t, tl, "JWT") && !tg_strcaseeq(t, tl, "at+jwt") &&
            !tg_strcaseeq(t, tl, "application/at+jwt")) {
            tg_error_set(err, "JWT typ \"%.32s\" is not an access token type", t);
            goto fail;
        }
    }
    const json_t *kid = json_object_get(out->header, "kid");
    if (kid && !json_is_string(kid)) {
        tg_error_set(err, "JWT kid is not a string");
        goto fail;
    }
    out->kid = kid ? json_string_value(kid) : NULL;

    if (!(out->claims = segment_json(d1 + 1, plen, "payload", err))) goto fail;
    out->sig = tg_arena_alloc(arena, slen * 3 / 4 + 1);
    if (tg_b64url_decode(d2 + 1, slen, out->sig, &out->sig_len) != 0) {
        tg_error_set(err, "JWT signature is not strict base64url");
        goto fail;
    }
    out->signing_input_len = (size_t)(d2 - tok);
    return 0;
fail:
    auth_jwt_clear(out);
    return -1;
}

void auth_jwt_clear(auth_jwt *j)
{
    json_decref(j->header);
    json_decref(j->claims);
    j->header = j->claims = NULL;
}

/* JOSE carries ECDSA signatures as fixed-width R||S; EVP wants DER. NULL if malformed. */
static uint8_t *ecdsa_raw_to_der(const uint8_t *sig, size_t sig_len, size_t coord, int *der_len)
{
    if (sig_len != 2 * coord) return NULL;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)coord, NULL), *s = BN_bin2bn(sig + coord, (int)coord, NULL);
    uint8_t *der = NULL;
    if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL;  /* owned by es now */
        *der_len = i2d_ECDSA_SIG(es, &der);
        if (*der_len <= 0) der = NULL;
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return der;
}

int auth_jws_verify(const auth_key *key, auth_alg alg, const char *input, size_t input_len,
                    const uint8_t *sig, size_t sig_len)
{
    if (key->alg != alg || alg == AUTH_ALG_INVALID) return 0;
    const uint8_t *s = sig;
    size_t slen = sig_len;
    uint8_t *der = NULL;
    if (alg == AUTH_ALG_ES256 || alg == AUTH_ALG_ES384) {
        int der_len = 0;
        der = ecdsa_raw_to_der(sig, sig_len, alg == AUTH_ALG_ES256 ? 32 : 48, &der_len);
        if (!der) return 0;
        s = der;
        slen = (size_t)der_len;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = md && EVP_DigestVerifyInit(md, &pctx, alg_md(alg), NULL, key->pkey) == 1;
    if (ok && alg_is_pss(alg))
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, alg_md(alg)) == 1;
    ok = ok && EVP_DigestVerify(md, s, slen, (const uint8_t *)input, input_len) == 1;
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    return ok;
}
