/*
 * sign.c — Ed25519 keys (OpenSSL EVP) and the signed checkpoint bodies.
 *
 * A checkpoint is the canonical JSON of audit_cp signed with the instance's private key;
 * the message is domain-separated ("toolgate-audit-checkpoint-v1\n" + body) so that a
 * signature made for anything else can never pass as a checkpoint. Keys are identified by
 * the first 16 hex chars of SHA-256 over the raw public key, so verify can pick the right
 * public key among several (key rotation) and say which key is missing.
 */
#include "audit/audit_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIG_DOMAIN "toolgate-audit-checkpoint-v1\n"

struct audit_key {
    EVP_PKEY *pkey;
    int has_private;
    char id[17];
};

static void ssl_reason(char *out, size_t n)
{
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e) ERR_error_string_n(e, out, n);
    else snprintf(out, n, "unknown error");
}

audit_key *audit_key_load(const char *path, int need_private, tg_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        tg_error_set(err, "audit: cannot open key %s: %s", path, strerror(errno));
        return NULL;
    }
    EVP_PKEY *pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    int priv = pk != NULL;
    if (!pk && !need_private) {
        ERR_clear_error();
        rewind(f);
        pk = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    }
    fclose(f);
    if (!pk) {
        char why[256];
        ssl_reason(why, sizeof why);
        tg_error_set(err, "audit: %s is not %s PEM (%s); create one with `toolgate audit "
                     "keygen --out FILE`", path, need_private ? "an Ed25519 private key"
                     : "an Ed25519 key", why);
        return NULL;
    }
    if (EVP_PKEY_get_id(pk) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(pk);
        tg_error_set(err, "audit: %s holds a key that is not Ed25519", path);
        return NULL;
    }
    unsigned char raw[32];
    size_t rawlen = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(pk, raw, &rawlen) != 1 || rawlen != 32) abort();
    audit_key *k = calloc(1, sizeof *k);
    if (!k) abort();
    k->pkey = pk;
    k->has_private = priv;
    char hex[65];
    tg_sha256_hex(raw, rawlen, hex);
    memcpy(k->id, hex, 16);
    k->id[16] = '\0';
    return k;
}

void audit_key_free(audit_key *k)
{
    if (!k) return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

const char *audit_key_id(const audit_key *k)
{
    return k->id;
}

static unsigned char *domain_msg(const char *msg, size_t len, size_t *out_len)
{
    size_t d = sizeof SIG_DOMAIN - 1;
    unsigned char *m = malloc(d + len);
    if (!m) abort();
    memcpy(m, SIG_DOMAIN, d);
    memcpy(m + d, msg, len);
    *out_len = d + len;
    return m;
}

char *audit_key_sign(const audit_key *k, const char *msg, size_t len, tg_error *err)
{
    if (!k->has_private) {
        tg_error_set(err, "audit: signing needs the private key");
        return NULL;
    }
    size_t mlen;
    unsigned char *m = domain_msg(msg, len, &mlen);
    unsigned char sig[64];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
             EVP_DigestSign(ctx, sig, &siglen, m, mlen) == 1;
    EVP_MD_CTX_free(ctx);
    free(m);
    if (!ok) {
        char why[256];
        ssl_reason(why, sizeof why);
        tg_error_set(err, "audit: signing failed: %s", why);
        return NULL;
    }
    char *b64 = malloc(4 * ((siglen + 2) / 3) + 1);
    if (!b64) abort();
    EVP_EncodeBlock((unsigned char *)b64, sig, (int)siglen);
    return b64;
}

int audit_key_verify(const audit_key *k, const char *msg, size_t len, const char *sig_b64)
{
    /* An Ed25519 signature is 64 bytes: 88 base64 chars ending in "==". */
    if (!sig_b64 || strlen(sig_b64) != 88) return 0;
    unsigned char sig[66];
    if (EVP_DecodeBlock(sig, (const unsigned char *)sig_b64, 88) != 66) return 0;
    size_t mlen;
    unsigned char *m = domain_msg(msg, len, &mlen);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
             EVP_DigestVerify(ctx, sig, 64, m, mlen) == 1;
    EVP_MD_CTX_free(ctx);
    free(m);
    ERR_clear_error();
    return ok;
}

/* Writes a PEM through fd opened with O_EXCL and the given mode: never overwrite a key,
 * never leave a private key readable by others even for a moment. */
static int write_pem(const char *path, mode_t mode, EVP_PKEY *pk, int priv, tg_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (fd < 0) return tg_error_set(err, "audit: cannot create %s: %s", path, strerror(errno));
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return tg_error_set(err, "audit: cannot write %s: %s", path, strerror(errno));
    }
    int ok = priv ? PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL)
                  : PEM_write_PUBKEY(f, pk);
    if (fclose(f) != 0) ok = 0;
    if (!ok) {
        unlink(path);
        return tg_error_set(err, "audit: writing %s failed", path);
    }
    return 0;
}

int tg_audit_keygen(const char *path, tg_error *err)
{
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!pk) return tg_error_set(err, "audit: Ed25519 key generation failed");
    tg_buf pub = TG_BUF_INIT;
    tg_buf_printf(&pub, "%s.pub", path);
    int rc = write_pem(path, 0600, pk, 1, err);
    if (rc == 0 && (rc = write_pem(pub.data, 0644, pk, 0, err)) != 0) unlink(path);
    tg_buf_free(&pub);
    EVP_PKEY_free(pk);
    return rc;
}

/* ------------------------------------------------------------------ checkpoint bodies */

int audit_cp_make(const audit_cp *cp, const audit_key *k, tg_store_checkpoint_row *row,
                  char **blob, tg_error *err)
{
    int prune = strcmp(cp->kind, "prune") == 0;
    tg_buf b = TG_BUF_INIT;
    tg_buf_printf(&b, "{\"v\":1,\"type\":\"%s\",\"instance\":", prune ? "prune" : "checkpoint");
    tg_buf_json_string(&b, cp->instance, strlen(cp->instance));
    tg_buf_printf(&b, ",\"seq\":%" PRId64 ",\"hash\":\"%s\",\"time_ms\":%" PRId64,
                  cp->seq, cp->hash, cp->time_ms);
    if (prune)
        tg_buf_printf(&b, ",\"before_ms\":%" PRId64 ",\"deleted\":%" PRId64,
                      cp->before_ms, cp->deleted);
    tg_buf_printf(&b, ",\"key_id\":\"%s\"}", audit_key_id(k));
    char *sig = audit_key_sign(k, b.data, b.len, err);
    if (!sig) {
        tg_buf_free(&b);
        return -1;
    }
    /* One blob: body, then signature, then key id, then instance. */
    tg_buf_append(&b, "", 1);
    size_t body_len = b.len;
    tg_buf_appends(&b, sig);
    tg_buf_append(&b, "", 1);
    size_t kid_off = b.len;
    tg_buf_appends(&b, audit_key_id(k));
    tg_buf_append(&b, "", 1);
    size_t inst_off = b.len;
    tg_buf_appends(&b, cp->instance);
    free(sig);
    *blob = tg_buf_steal(&b);
    *row = (tg_store_checkpoint_row){
        .instance = *blob + inst_off, .kind = prune ? "prune" : "checkpoint",
        .seq = cp->seq, .ts_ms = cp->time_ms, .body = *blob,
        .key_id = *blob + kid_off, .signature = *blob + body_len,
    };
    return 0;
}

int audit_cp_parse(const char *body, audit_cp *cp, json_t **holder, tg_error *err)
{
    memset(cp, 0, sizeof *cp);
    json_t *o = tg_json_parse(body, strlen(body), 8, err);
    *holder = o;
    if (!o) return -1;
    json_t *kind = json_object_get(o, "type"), *inst = json_object_get(o, "instance"),
           *seq = json_object_get(o, "seq"), *hash = json_object_get(o, "hash"),
           *t = json_object_get(o, "time_ms"), *kid = json_object_get(o, "key_id");
    if (!json_is_string(kind) || !json_is_string(inst) || !json_is_integer(seq) ||
        !json_is_string(hash) || strlen(json_string_value(hash)) != 64 ||
        !json_is_integer(t) || !json_is_string(kid))
        return tg_error_set(err, "checkpoint body is malformed");
    cp->kind = json_string_value(kind);
    cp->instance = json_string_value(inst);
    cp->seq = json_integer_value(seq);
    cp->hash = json_string_value(hash);
    cp->time_ms = json_integer_value(t);
    cp->key_id = json_string_value(kid);
    if (strcmp(cp->kind, "prune") == 0) {
        json_t *b = json_object_get(o, "before_ms"), *d = json_object_get(o, "deleted");
        if (!json_is_integer(b) || !json_is_integer(d))
            return tg_error_set(err, "prune checkpoint body is malformed");
        cp->before_ms = json_integer_value(b);
        cp->deleted = json_integer_value(d);
    } else if (strcmp(cp->kind, "checkpoint") != 0) {
        return tg_error_set(err, "checkpoint body has an unknown type");
    }
    return 0;
}
