/*
 * apikey.c — API keys: the `tgk_<id>_<secret>` format, how secrets are hashed, the pure
 * create / revoke / rotate operations behind `toolgate keys …`, the in-memory key store,
 * and per-request verification with the API-key fences (expiry, revocation, maximum
 * lifetime, global and per-key CIDRs).
 *
 * The store is an interface (tg_apikey_store in tg_auth.h): the lead binds it to
 * tg_store; the in-memory one here serves tests and benches.
 */
#include <stdlib.h>
#include <string.h>

#include "auth/auth_int.h"

#define TOUCH_INTERVAL_S 60   /* last_used is a hint, not an audit record: spare the store */

static const char base32[] = "abcdefghijklmnopqrstuvwxyz234567";

static int is_id_char(char c) { return c && strchr(base32, c) != NULL; }

void tg_apikey_hash(const char *id, const char *secret, size_t secret_len,
                    char out[TG_APIKEY_HASH_LEN + 1])
{
    /* Domain-separated, with the unique key id as salt: two keys never share a hash
     * even with equal secrets, and the hash is useless for any other purpose. */
    static const char tag[] = "tgk-v1";
    char buf[sizeof tag + TG_APIKEY_ID_LEN + 1 + 128];
    size_t n = 0;
    if (secret_len > 128) secret_len = 128;  /* parse limits it to 43; keep the bound local */
    memcpy(buf, tag, sizeof tag);  /* includes the NUL separator */
    n += sizeof tag;
    memcpy(buf + n, id, TG_APIKEY_ID_LEN);
    n += TG_APIKEY_ID_LEN;
    buf[n++] = '\0';
    memcpy(buf + n, secret, secret_len);
    n += secret_len;
    tg_sha256_hex(buf, n, out);
    OPENSSL_cleanse(buf, sizeof buf);
}

int tg_apikey_parse(const char *token, size_t len, char id_out[TG_APIKEY_ID_LEN + 1],
                    const char **secret, tg_error *err)
{
    if (len != TG_APIKEY_TOKEN_LEN || memcmp(token, "tgk_", 4) != 0 ||
        token[4 + TG_APIKEY_ID_LEN] != '_')
        return tg_error_set(err, "not a tgk_<id>_<secret> API key");
    for (size_t i = 0; i < TG_APIKEY_ID_LEN; i++)
        if (!is_id_char(token[4 + i])) return tg_error_set(err, "API key id is not base32");
    const char *s = token + 5 + TG_APIKEY_ID_LEN;
    uint8_t raw[TG_APIKEY_SECRET_LEN];
    size_t rawlen;
    if (tg_b64url_decode(s, TG_APIKEY_SECRET_LEN, raw, &rawlen) != 0 || rawlen != 32)
        return tg_error_set(err, "API key secret is not 32 bytes of base64url");
    OPENSSL_cleanse(raw, sizeof raw);
    memcpy(id_out, token + 4, TG_APIKEY_ID_LEN);
    id_out[TG_APIKEY_ID_LEN] = '\0';
    *secret = s;
    return 0;
}

/* A fresh secret: 32 random bytes → token_out = tgk_<id>_<secret>, hash_out its hash. */
static void new_secret(const char *id, char token_out[TG_APIKEY_TOKEN_LEN + 1],
                       char hash_out[TG_APIKEY_HASH_LEN + 1])
{
    uint8_t raw[32];
    char secret[TG_APIKEY_SECRET_LEN + 1];
    tg_random_bytes(raw, sizeof raw);
    tg_b64url_encode(raw, sizeof raw, secret);
    snprintf(token_out, TG_APIKEY_TOKEN_LEN + 1, "tgk_%s_%s", id, secret);
    tg_apikey_hash(id, secret, TG_APIKEY_SECRET_LEN, hash_out);
    OPENSSL_cleanse(raw, sizeof raw);
    OPENSSL_cleanse(secret, sizeof secret);
}

static const char **strv_copy(tg_arena *a, const char **v, size_t n)
{
    if (n == 0) return NULL;
    const char **out = tg_arena_calloc(a, n, sizeof *out);
    for (size_t i = 0; i < n; i++) out[i] = tg_arena_strdup(a, v[i]);
    return out;
}

static const char *str_copy(tg_arena *a, const char *s) { return s ? tg_arena_strdup(a, s) : NULL; }

/* Deep copy: the one way records move between arenas (store, caller). */
static void record_copy(tg_arena *a, tg_apikey_record *dst, const tg_apikey_record *src)
{
    *dst = *src;
    dst->agent = str_copy(a, src->agent);
    dst->delegator = str_copy(a, src->delegator);
    dst->note = str_copy(a, src->note);
    dst->groups = strv_copy(a, src->groups, src->n_groups);
    dst->cidrs = strv_copy(a, src->cidrs, src->n_cidrs);
}

int tg_apikey_create(const tg_apikey_params *p, int64_t now, int64_t max_lifetime_s,
                     tg_arena *arena, tg_apikey_record *out,
                     char token_out[TG_APIKEY_TOKEN_LEN + 1], tg_error *err)
{
    if (!p->agent || !p->agent[0]) return tg_error_set(err, "an API key needs an agent id (--agent)");
    if (p->ttl_s < 0) return tg_error_set(err, "--ttl must be positive");
    if (max_lifetime_s > 0 && (p->ttl_s == 0 || p->ttl_s > max_lifetime_s))
        return tg_error_set(err, "--ttl must be at most api_keys.max_lifetime (%lld s)",
                            (long long)max_lifetime_s);
    tg_apikey_params q = *p;
    const char **cidrs = p->n_cidrs ? tg_arena_calloc(arena, p->n_cidrs, sizeof *cidrs) : NULL;
    for (size_t i = 0; i < p->n_cidrs; i++) {
        tg_cidr c;
        char text[64];
        if (tg_cidr_parse(p->cidrs[i], &c, err) != 0) return -1;
        tg_cidr_format(&c, text, sizeof text);
        cidrs[i] = tg_arena_strdup(arena, text);
    }
    q.cidrs = cidrs;

    tg_apikey_record r;
    memset(&r, 0, sizeof r);
    uint8_t rnd[TG_APIKEY_ID_LEN];
    tg_random_bytes(rnd, sizeof rnd);
    for (size_t i = 0; i < TG_APIKEY_ID_LEN; i++) r.id[i] = base32[rnd[i] & 31];
    r.agent = q.agent;
    r.delegator = q.delegator;
    r.groups = q.groups;
    r.n_groups = q.n_groups;
    r.cidrs = q.cidrs;
    r.n_cidrs = q.n_cidrs;
    r.note = q.note;
    r.created = now;
    r.expires = p->ttl_s ? now + p->ttl_s : 0;
    new_secret(r.id, token_out, r.secret_hash);
    record_copy(arena, out, &r);
    return 0;
}

/* get + "no API key with id" */
static int load(const tg_apikey_store *st, const char *id, tg_arena *a, tg_apikey_record *r,
                tg_error *err)
{
    int rc = st->get(st->ctx, id, a, r, err);
    if (rc == 0) return tg_error_set(err, "no API key with id %s", id);
    return rc < 0 ? -1 : 0;
}

int tg_apikey_revoke(const tg_apikey_store *st, const char *id, int64_t now, tg_error *err)
{
    tg_arena *a = tg_arena_new(0);
    tg_apikey_record r;
    int rc = load(st, id, a, &r, err);
    if (rc == 0 && r.revoked_at == 0) {
        r.revoked_at = now;
        rc = st->put(st->ctx, &r, err);
    }
    tg_arena_free(a);
    return rc;
}

int tg_apikey_rotate(const tg_apikey_store *st, const char *id, int64_t now, int64_t overlap_s,
                     char token_out[TG_APIKEY_TOKEN_LEN + 1], tg_error *err)
{
    tg_arena *a = tg_arena_new(0);
    tg_apikey_record r;
    int rc = load(st, id, a, &r, err);
    if (rc == 0 && r.revoked_at != 0) rc = tg_error_set(err, "API key %s is revoked", id);
    else if (rc == 0 && r.expires != 0 && now >= r.expires)
        rc = tg_error_set(err, "API key %s has expired", id);
    else if (rc == 0 && overlap_s < 0) rc = tg_error_set(err, "rotation overlap must be positive");
    if (rc == 0) {
        /* Only the secret being replaced keeps an overlap; an older one stops now. */
        if (overlap_s > 0) {
            memcpy(r.prev_secret_hash, r.secret_hash, sizeof r.prev_secret_hash);
            r.prev_expires = now + overlap_s;
        } else {
            r.prev_secret_hash[0] = '\0';
            r.prev_expires = 0;
        }
        new_secret(r.id, token_out, r.secret_hash);
        rc = st->put(st->ctx, &r, err);
    }
    tg_arena_free(a);
    return rc;
}

/* ---------------------------------------------------------------- in-memory store */

/* Invariant: recs[0..n) have distinct ids; their strings live in arena, which only grows
 * (a replaced record's old strings stay until the store is freed — fine for tests). */
typedef struct memstore {
    tg_apikey_store iface;
    tg_arena *arena;
    tg_apikey_record *recs;
    size_t n, cap;
} memstore;

static tg_apikey_record *mem_find(memstore *m, const char *id)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->recs[i].id, id) == 0) return &m->recs[i];
    return NULL;
}

static int mem_get(void *ctx, const char *id, tg_arena *a, tg_apikey_record *out, tg_error *err)
{
    tg_apikey_record *r = mem_find(ctx, id);
    if (!r) return 0;
    record_copy(a, out, r);
    return 1;
}

static int mem_put(void *ctx, const tg_apikey_record *rec, tg_error *err)
{
    memstore *m = ctx;
    tg_apikey_record *r = mem_find(m, rec->id);
    if (!r) {
        if (m->n == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 8;
            m->recs = realloc(m->recs, m->cap * sizeof *m->recs);
            if (!m->recs) abort();
        }
        r = &m->recs[m->n++];
    }
    record_copy(m->arena, r, rec);
    return 0;
}

static int rec_order(const void *x, const void *y)
{
    const tg_apikey_record *a = x, *b = y;
    if (a->created != b->created) return a->created < b->created ? -1 : 1;
    return strcmp(a->id, b->id);
}

static int mem_list(void *ctx, tg_arena *a, tg_apikey_record **out, size_t *n, tg_error *err)
{
    memstore *m = ctx;
    *out = tg_arena_calloc(a, m->n ? m->n : 1, sizeof **out);
    for (size_t i = 0; i < m->n; i++) record_copy(a, &(*out)[i], &m->recs[i]);
    qsort(*out, m->n, sizeof **out, rec_order);
    *n = m->n;
    return 0;
}

static int mem_touch(void *ctx, const char *id, int64_t when, tg_error *err)
{
    tg_apikey_record *r = mem_find(ctx, id);
    if (!r) return tg_error_set(err, "no API key with id %s", id);
    r->last_used = when;
    return 0;
}

tg_apikey_store *tg_apikey_memstore_new(void)
{
    memstore *m = calloc(1, sizeof *m);
    if (!m) abort();
    m->arena = tg_arena_new(0);
    m->iface = (tg_apikey_store){m, mem_get, mem_put, mem_list, mem_touch};
    return &m->iface;
}

void tg_apikey_memstore_free(tg_apikey_store *st)
{
    if (!st) return;
    memstore *m = st->ctx;
    tg_arena_free(m->arena);
    free(m->recs);
    free(m);
}

/* ---------------------------------------------------------------- verification */

static const char *when(int64_t epoch_s, char buf[32])
{
    tg_format_time(epoch_s * 1000, buf);
    return buf;
}

int auth_apikey_verify(const tg_apikey_store *st, const char *token, size_t len, int64_t now,
                       int64_t max_lifetime_s, const auth_cidrs *global, const uint8_t ip[16],
                       tg_arena *arena, tg_apikey_record *rec, tg_error *err)
{
    char id[TG_APIKEY_ID_LEN + 1], hash[TG_APIKEY_HASH_LEN + 1], t[32], ipt[64];
    const char *secret;
    if (tg_apikey_parse(token, len, id, &secret, err) != 0) return -1;
    tg_error serr;
    int found = st->get(st->ctx, id, arena, rec, &serr);
    if (found < 0) {
        tg_error_set(err, "key store: %s", serr.msg);
        return -2;
    }
    if (found == 0) return tg_error_set(err, "unknown API key id %s", id);
    tg_apikey_hash(id, secret, TG_APIKEY_SECRET_LEN, hash);

    /* Both comparisons always run, so timing does not tell which secret matched. */
    int cur = tg_ct_equal(hash, TG_APIKEY_HASH_LEN, rec->secret_hash, strlen(rec->secret_hash));
    int prev = tg_ct_equal(hash, TG_APIKEY_HASH_LEN, rec->prev_secret_hash,
                           strlen(rec->prev_secret_hash));
    if (!cur && !prev) return tg_error_set(err, "wrong secret for API key %s", id);
    if (!cur && now >= rec->prev_expires)
        return tg_error_set(err, "replaced secret of API key %s used after its rotation overlap "
                            "ended at %s", id, when(rec->prev_expires, t));
    if (rec->revoked_at != 0 && now >= rec->revoked_at)
        return tg_error_set(err, "API key %s revoked at %s", id, when(rec->revoked_at, t));
    if (rec->expires != 0 && now >= rec->expires)
        return tg_error_set(err, "API key %s expired at %s", id, when(rec->expires, t));
    if (max_lifetime_s > 0 && (rec->expires == 0 || rec->expires - rec->created > max_lifetime_s))
        return tg_error_set(err, "API key %s lifetime exceeds api_keys.max_lifetime (%lld s)", id,
                            (long long)max_lifetime_s);
    auth_ip_format(ip, ipt, sizeof ipt);
    if (global->n && !auth_cidrs_match(global, ip))
        return tg_error_set(err, "client %s outside api_keys.allowed_cidrs (API key %s)", ipt, id);
    if (rec->n_cidrs) {
        auth_cidrs own;
        tg_error cerr;
        if (auth_cidrs_parse(rec->cidrs, rec->n_cidrs, "stored key CIDR", &own, &cerr) != 0)
            return tg_error_set(err, "API key %s: %s", id, cerr.msg);
        int in = auth_cidrs_match(&own, ip);
        auth_cidrs_free(&own);
        if (!in) return tg_error_set(err, "client %s outside the CIDRs of API key %s", ipt, id);
    }
    if (now - rec->last_used >= TOUCH_INTERVAL_S) {
        if (st->touch(st->ctx, id, now, &serr) != 0)
            tg_log_warn(AUTH_COMPONENT, "cannot record last use of API key %s: %s", id, serr.msg);
        rec->last_used = now;
    }
    return 0;
}
