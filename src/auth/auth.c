/*
 * auth.c — tg_auth: turns a request's credentials into a tg_identity, or into the exact
 * refusal (status, WWW-Authenticate challenge, client message, log reason).
 *
 * Flow of tg_auth_authenticate (all on the loop thread):
 *   query-string token? → 400 · client address (trusted proxies) · Authorization header →
 *   `tgk_…` API key (store lookup, fences; synchronous) or JWT:
 *   verified-token cache (SHA-256 of the token) → hit: done;
 *   miss: parse + screen header → issuer allowed? → key by kid from the issuer's JWKS
 *   (fetched in the thread pool when absent, stale, or kid unknown — rate-limited) →
 *   signature with the key's pinned algorithm → exp/nbf/iat/aud → delegator, domain
 *   fence, scopes (403) → identity → cache.
 *   With introspection configured, a token that is not a JWT (or every token, with
 *   all_tokens) goes from the cache miss to RFC 7662 introspection instead: POST in the
 *   thread pool → active: true → iss (if present) among the issuers → the same claim
 *   checks → identity → cache.
 * Requests that need a fetch wait on their issuer (a list of tg_auth_pending) and are
 * finished when the fetch lands; a request being introspected is owned by its job.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth/auth_int.h"

#define DEFAULT_LEEWAY_S        60
#define DEFAULT_CACHE_SIZE      4096
#define DEFAULT_MAX_TOKEN       8192
#define DEFAULT_REFETCH_MS      30000
#define DEFAULT_MAX_AGE_MS      3600000
#define DEFAULT_FETCH_TIMEOUT   5000
#define DEFAULT_FETCH_MAX       262144
#define DEFAULT_OVERLAP_S       86400
#define MAX_ACT_DEPTH           16

static const char invalid_credentials[] = "invalid credentials";

/* ---------------------------------------------------------------- state */

typedef struct issuer_state {
    char *issuer;
    char *jwks_uri;            /* configured, or discovered (then set after first fetch) */
    int discover;              /* jwks_uri was not configured */
    auth_keyset keys;          /* keys.n == 0 until a fetch succeeded */
    uint64_t fetched_ms;       /* monotonic time of the keys in use */
    uint64_t last_attempt_ms;  /* monotonic start of the last fetch (rate limit); 0 never */
    char last_error[sizeof ((tg_error *)0)->msg]; /* why the last fetch failed, or "" */
    int fetching;
    struct tg_auth_pending *waiters;
} issuer_state;

struct introspect_job;

/* A request in progress. Lives on the stack while synchronous; copied to the heap and
 * linked into its issuer's waiters while a fetch runs, or pointed at by exactly one
 * introspect_job (job set) while introspected. Invariant: a heap copy is on exactly one
 * waiters list, or owned by one job, until it completes or is cancelled. */
struct tg_auth_pending {
    tg_auth *a;
    issuer_state *is;
    tg_arena *arena;
    tg_auth_cb cb;
    void *user;
    const char *token;         /* arena copy (the caller's header may be gone later) */
    size_t token_len;
    uint8_t token_hash[32];
    auth_jwt jwt;
    const char *client_ip;     /* arena */
    struct introspect_job *job;
    struct tg_auth_pending *next, **pprev;
};

/* One introspection in the thread pool. p is NULL once the request was cancelled (the
 * job then only frees itself when it lands). Linked into tg_auth.introspecting until it
 * lands, so that tg_auth_free can cancel its request. */
typedef struct introspect_job {
    uv_work_t work;
    struct tg_auth *a;
    tg_auth_pending *p;
    auth_introspect r;
    struct introspect_job *next, **pprev;
} introspect_job;

/* Verified-token cache: a fixed array of entries, hashed into chains, evicted by the
 * clock algorithm. Invariant: an entry is in its bucket's chain iff used; its identity
 * (client_ip NULL) lives in its own arena. */
typedef struct cache_entry {
    uint8_t key[32];
    int used;
    uint8_t ref;
    int64_t exp_s;
    const issuer_state *is;
    tg_arena *arena;
    tg_identity *id;
    int32_t next;
} cache_entry;

struct tg_auth {
    uv_loop_t *loop;
    /* configuration (owned copies) */
    char *resource, *metadata_url, *metadata_json;
    int oauth, api_keys;
    issuer_state *issuers;
    size_t n_issuers;
    int64_t leeway_s;
    char **required_scopes;
    size_t n_required;
    char *delegator_claim, *groups_claim, *domain_claim, *default_agent;
    char **domains;
    size_t n_domains;
    size_t max_token;
    int64_t refetch_ms, max_age_ms, fetch_timeout_ms;
    size_t fetch_max;
    char *intro_url, *intro_client_id, *intro_client_secret;  /* intro_url NULL: off */
    int intro_all;
    introspect_job *introspecting;
    const tg_apikey_store *store;
    auth_cidrs key_cidrs, proxies;
    int64_t max_lifetime_s, overlap_s;
    /* challenges, built once */
    char *ch_none, *ch_invalid, *ch_request, *ch_scope;
    /* cache */
    cache_entry *cache;
    size_t cache_cap, clock_hand;
    int32_t *buckets;
    uint32_t bucket_mask;
    tg_auth_stats stats;
    /* lifetime: freed by the last of tg_auth_free and the in-flight fetches */
    int closing;
    unsigned inflight;
};

/* ---------------------------------------------------------------- small helpers */

static char *xstrdup(const char *s)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) abort();
    return d;
}

static char **strv_dup(const char **v, size_t n)
{
    char **out = calloc(n ? n : 1, sizeof *out);
    if (!out) abort();
    for (size_t i = 0; i < n; i++) out[i] = xstrdup(v[i]);
    return out;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

static int64_t now_s(void) { return tg_wall_ms() / 1000; }

/* RFC 6749 scope-token characters; also keeps the challenge quoting trivially safe. */
static int scope_token_ok(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < 0x21 || *s == 0x22 || *s == 0x5c || *s > 0x7e) return 0;
    return 1;
}

static int url_text_ok(const char *s)
{
    for (; *s; s++)
        if (*s <= 0x20 || *s == '"' || *s == '\\' || *s > 0x7e) return 0;
    return 1;
}

/* ---------------------------------------------------------------- identity */

static const char **strv_arena(tg_arena *a, const char **v, size_t n)
{
    if (n == 0) return NULL;
    const char **out = tg_arena_calloc(a, n, sizeof *out);
    for (size_t i = 0; i < n; i++) out[i] = tg_arena_strdup(a, v[i]);
    return out;
}

static const char *str_arena(tg_arena *a, const char *s) { return s ? tg_arena_strdup(a, s) : NULL; }

tg_identity *tg_identity_copy(tg_arena *a, const tg_identity *id)
{
    tg_identity *c = tg_arena_alloc(a, sizeof *c);
    *c = *id;
    c->method = str_arena(a, id->method);
    c->delegator = str_arena(a, id->delegator);
    c->agent = str_arena(a, id->agent);
    c->act_chain = strv_arena(a, id->act_chain, id->n_act);
    c->groups = strv_arena(a, id->groups, id->n_groups);
    c->scopes = strv_arena(a, id->scopes, id->n_scopes);
    c->credential_id = str_arena(a, id->credential_id);
    c->client_ip = str_arena(a, id->client_ip);
    c->issuer = str_arena(a, id->issuer);
    c->client_id = str_arena(a, id->client_id);
    c->email = str_arena(a, id->email);
    c->principal_key = str_arena(a, id->principal_key);
    return c;
}

/* ---------------------------------------------------------------- results */

typedef enum { FAIL_NONE, FAIL_INVALID, FAIL_REQUEST, FAIL_SCOPE, FAIL_UNAVAILABLE } fail_kind;

static void complete(tg_auth_pending *p, const tg_identity *id, fail_kind kind, const char *why)
{
    tg_auth *a = p->a;
    tg_auth_result r = {0};
    if (id) {
        r.identity = id;
    } else {
        switch (kind) {
        case FAIL_NONE:
            r.status = 401; r.www_authenticate = a->ch_none; break;
        case FAIL_INVALID:
            r.status = 401; r.www_authenticate = a->ch_invalid; break;
        case FAIL_REQUEST:
            r.status = 400; r.www_authenticate = a->ch_request; break;
        case FAIL_SCOPE:
            r.status = 403; r.www_authenticate = a->ch_scope; break;
        case FAIL_UNAVAILABLE:
            r.status = 503; break;
        }
        r.client_message = kind == FAIL_SCOPE ? "insufficient scope"
                         : kind == FAIL_UNAVAILABLE ? "authentication temporarily unavailable"
                         : kind == FAIL_REQUEST ? "invalid request" : invalid_credentials;
        r.log_reason = tg_arena_strdup(p->arena, why);
    }
    p->cb(&r, p->user);
}

/* ---------------------------------------------------------------- token cache */

static uint32_t bucket_of(const tg_auth *a, const uint8_t key[32])
{
    uint32_t h;
    memcpy(&h, key, sizeof h);  /* the key is already a uniform hash */
    return h & a->bucket_mask;
}

static void cache_unlink(tg_auth *a, int32_t idx)
{
    cache_entry *e = &a->cache[idx];
    int32_t *link = &a->buckets[bucket_of(a, e->key)];
    while (*link != idx) link = &a->cache[*link].next;
    *link = e->next;
    e->used = 0;
    e->id = NULL;
    tg_arena_reset(e->arena);
}

static cache_entry *cache_find(tg_auth *a, const uint8_t key[32])
{
    for (int32_t i = a->buckets[bucket_of(a, key)]; i >= 0; i = a->cache[i].next)
        /* Constant time although the key is a hash of the token, not the token: cheap,
         * and no one has to argue about what a timing difference could leak. */
        if (tg_ct_equal(a->cache[i].key, 32, key, 32)) return &a->cache[i];
    return NULL;
}

static void cache_put(tg_auth *a, const uint8_t key[32], const issuer_state *is,
                      const tg_identity *id)
{
    if (a->cache_cap == 0 || cache_find(a, key)) return;
    int32_t idx;
    for (;;) {  /* clock: a used entry gets a second chance once */
        cache_entry *e = &a->cache[a->clock_hand];
        idx = (int32_t)a->clock_hand;
        a->clock_hand = (a->clock_hand + 1) % a->cache_cap;
        if (!e->used) break;
        if (!e->ref) { cache_unlink(a, idx); break; }
        e->ref = 0;
    }
    cache_entry *e = &a->cache[idx];
    memcpy(e->key, key, 32);
    e->used = 1;
    e->ref = 1;
    e->exp_s = id->expires_at;
    e->is = is;
    e->id = tg_identity_copy(e->arena, id);
    uint32_t b = bucket_of(a, key);
    e->next = a->buckets[b];
    a->buckets[b] = idx;
}

static void cache_drop_issuer(tg_auth *a, const issuer_state *is)
{
    for (size_t i = 0; i < a->cache_cap; i++)
        if (a->cache[i].used && a->cache[i].is == is) cache_unlink(a, (int32_t)i);
}

/* ---------------------------------------------------------------- claims → identity */

static const char *claim_str(const json_t *claims, const char *name)
{
    const json_t *v = json_object_get(claims, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Array of strings, or one space-separated string → arena vector. -1 on other shapes. */
static int claim_list(tg_arena *arena, const json_t *v, const char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!v) return 0;
    if (json_is_array(v)) {
        *out = tg_arena_calloc(arena, json_array_size(v) + 1, sizeof **out);
        size_t i;
        const json_t *s;
        json_array_foreach(v, i, s) {
            if (!json_is_string(s)) return -1;
            (*out)[(*n)++] = tg_arena_strdup(arena, json_string_value(s));
        }
        return 0;
    }
    if (!json_is_string(v)) return -1;
    const char *s = json_string_value(v);
    *out = tg_arena_calloc(arena, json_string_length(v) / 2 + 1, sizeof **out);
    while (*s) {
        while (*s == ' ') s++;
        size_t len = strcspn(s, " ");
        if (len) (*out)[(*n)++] = tg_arena_strndup(arena, s, len);
        s += len;
    }
    return 0;
}

/* NumericDate claim: 1 present (value in *out), 0 absent, -1 not a number. */
static int claim_time(const json_t *claims, const char *name, double *out)
{
    const json_t *v = json_object_get(claims, name);
    if (!v) return 0;
    if (!json_is_number(v)) return -1;
    *out = json_number_value(v);
    return 1;
}

static int audience_ok(const json_t *aud, const char *resource)
{
    if (json_is_string(aud)) return strcmp(json_string_value(aud), resource) == 0;
    if (!json_is_array(aud)) return 0;
    size_t i;
    const json_t *v;
    json_array_foreach(aud, i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), resource) == 0) return 1;
    return 0;
}

static int domain_allowed(const tg_auth *a, const char *addr)
{
    const char *at = addr ? strrchr(addr, '@') : NULL;
    if (!at || !at[1]) return 0;
    for (size_t i = 0; i < a->n_domains; i++)
        if (tg_strcaseeq(at + 1, strlen(at + 1), a->domains[i])) return 1;
    return 0;
}

static const char *fmt_time(tg_arena *arena, double t)
{
    char buf[32];
    tg_format_time((int64_t)t * 1000, buf);
    return tg_arena_strdup(arena, buf);
}

/* Checks the claims of a token whose signature has been verified (p->jwt.claims), or an
 * introspection answer in the same place, and builds the identity. issuer: the accepted
 * issuer; alt_delegator: a claim to use when the configured one is absent (NULL: none).
 * NULL on refusal: *kind and *why say what and why. */
static tg_identity *claims_identity(tg_auth_pending *p, const char *issuer,
                                    const char *alt_delegator, fail_kind *kind, const char **why)
{
    tg_auth *a = p->a;
    tg_arena *ar = p->arena;
    const json_t *c = p->jwt.claims;
    int64_t now = now_s();
    double exp = 0, nbf = 0, iat = 0;
    *kind = FAIL_INVALID;
    int has_exp = claim_time(c, "exp", &exp), has_nbf = claim_time(c, "nbf", &nbf);
    int has_iat = claim_time(c, "iat", &iat);
    if (has_exp < 0 || has_nbf < 0 || has_iat < 0)
        return *why = "exp, nbf or iat is not a number", NULL;
    if (!has_exp) return *why = "token has no exp", NULL;
    if ((double)now > exp + (double)a->leeway_s)
        return *why = tg_arena_sprintf(ar, "token expired at %s", fmt_time(ar, exp)), NULL;
    if (has_nbf && (double)now + (double)a->leeway_s < nbf)
        return *why = tg_arena_sprintf(ar, "token not valid before %s", fmt_time(ar, nbf)), NULL;
    if (has_iat && iat > (double)now + (double)a->leeway_s)
        return *why = tg_arena_sprintf(ar, "token issued in the future (%s)", fmt_time(ar, iat)),
               NULL;
    if (!audience_ok(json_object_get(c, "aud"), a->resource))
        return *why = tg_arena_sprintf(ar, "token audience does not include %s", a->resource),
               NULL;

    tg_identity *id = tg_arena_calloc(ar, 1, sizeof *id);
    id->method = "oauth";
    id->issuer = issuer;
    id->expires_at = (int64_t)exp;
    id->client_ip = p->client_ip;
    id->email = claim_str(c, "email");
    id->client_id = claim_str(c, "client_id");
    if (!id->client_id) id->client_id = claim_str(c, "azp");
    id->delegator = claim_str(c, a->delegator_claim);
    if (!id->delegator && alt_delegator) id->delegator = claim_str(c, alt_delegator);
    if (!id->delegator || !id->delegator[0])
        return *why = tg_arena_sprintf(ar, "token has no %s claim", a->delegator_claim), NULL;
    if (a->n_domains && !domain_allowed(a, claim_str(c, a->domain_claim)))
        return *why = tg_arena_sprintf(ar, "%s domain not allowed (%s)", a->domain_claim,
                                       claim_str(c, a->domain_claim) ? claim_str(c, a->domain_claim)
                                                                     : "claim absent"), NULL;

    /* RFC 8693 act: {"sub": current actor, "act": {"sub": prior actor, ...}}. */
    const json_t *act = json_object_get(c, "act");
    if (act) {
        id->act_chain = tg_arena_calloc(ar, MAX_ACT_DEPTH, sizeof *id->act_chain);
        for (; act; act = json_object_get(act, "act")) {
            const json_t *sub = json_object_get(act, "sub");
            if (!json_is_object(act) || !json_is_string(sub) || id->n_act == MAX_ACT_DEPTH)
                return *why = "malformed act (delegation) claim", NULL;
            id->act_chain[id->n_act++] = json_string_value(sub);
        }
    }
    id->agent = id->n_act ? id->act_chain[0] : claim_str(c, "azp");
    if (!id->agent) id->agent = claim_str(c, "client_id");
    if (!id->agent) id->agent = a->default_agent;
    if (!id->agent) return *why = "token names no agent (act.sub, azp, client_id)", NULL;

    if (claim_list(ar, json_object_get(c, a->groups_claim), &id->groups, &id->n_groups) != 0)
        return *why = tg_arena_sprintf(ar, "%s claim is not a list of strings", a->groups_claim),
               NULL;
    const json_t *scope = json_object_get(c, "scope");
    if (!scope) scope = json_object_get(c, "scp");
    if (claim_list(ar, scope, &id->scopes, &id->n_scopes) != 0)
        return *why = "scope claim is not a string or list of strings", NULL;
    for (size_t i = 0; i < a->n_required; i++) {
        size_t j = 0;
        while (j < id->n_scopes && strcmp(id->scopes[j], a->required_scopes[i]) != 0) j++;
        if (j == id->n_scopes) {
            *kind = FAIL_SCOPE;
            return *why = tg_arena_sprintf(ar, "token lacks required scope %s",
                                           a->required_scopes[i]), NULL;
        }
    }

    char hex[65];
    const char *jti = claim_str(c, "jti");
    if (jti) {
        id->credential_id = jti;
    } else {
        tg_sha256_hex(p->token, p->token_len, hex);
        id->credential_id = tg_arena_sprintf(ar, "sha256:%.16s", hex);
    }
    /* principal key: the issuer's stable subject and the whole actor chain, so that a
     * refreshed token keeps its sessions and a different agent does not. */
    json_t *pk = json_array();
    json_array_append_new(pk, json_string(id->issuer));
    const char *sub = claim_str(c, "sub");
    json_array_append_new(pk, json_string(sub ? sub : id->delegator));
    json_array_append_new(pk, json_string(id->agent));
    for (size_t i = 1; i < id->n_act; i++) json_array_append_new(pk, json_string(id->act_chain[i]));
    size_t pklen;
    char *pkjson = tg_json_dump(pk, &pklen);
    json_decref(pk);
    tg_sha256_hex(pkjson, pklen, hex);
    free(pkjson);
    id->principal_key = tg_arena_sprintf(ar, "oauth:%s", hex);
    /* Claim strings point into the token's JSON, which is released when we finish. */
    return tg_identity_copy(ar, id);
}

/* ---------------------------------------------------------------- JWT path */

static int start_fetch(tg_auth *a, issuer_state *is);

/* Finishes a parsed token against the issuer's current keys. Returns 1 when done (cb
 * ran), 0 when the caller should wait for a fetch. */
static int jwt_try_keys(tg_auth_pending *p, int may_fetch)
{
    tg_auth *a = p->a;
    issuer_state *is = p->is;
    uint64_t mono = tg_now_ms();
    int allowed = is->last_attempt_ms == 0 || mono - is->last_attempt_ms >= (uint64_t)a->refetch_ms;
    if (is->keys.n == 0) {
        if (may_fetch && (allowed || is->fetching)) return 0;
        complete(p, NULL, FAIL_UNAVAILABLE,
                 tg_arena_sprintf(p->arena, "no keys for issuer %s: %s", is->issuer,
                                  is->last_error[0] ? is->last_error : "fetch rate-limited"));
        return 1;
    }
    int kid_seen;
    const auth_key *k = auth_keyset_find(&is->keys, p->jwt.kid, p->jwt.alg, &kid_seen);
    if (!k && !kid_seen && may_fetch && (allowed || is->fetching)) return 0;
    if (may_fetch && !is->fetching && allowed && mono - is->fetched_ms >= (uint64_t)a->max_age_ms &&
        start_fetch(a, is) != 0)  /* stale keys: refresh in the background, use what we have */
        tg_log_warn(AUTH_COMPONENT, "cannot refresh keys of %s: %s", is->issuer, is->last_error);
    if (!k) {
        const char *why = kid_seen
            ? tg_arena_sprintf(p->arena, "alg %s does not match the algorithm pinned for key %s",
                               auth_alg_name(p->jwt.alg), p->jwt.kid)
            : p->jwt.kid ? tg_arena_sprintf(p->arena, "unknown kid %s for issuer %s%s", p->jwt.kid,
                                            is->issuer, may_fetch ? " (refetch rate-limited)" : "")
                         : tg_arena_sprintf(p->arena, "token has no kid and no single %s key",
                                            auth_alg_name(p->jwt.alg));
        complete(p, NULL, FAIL_INVALID, why);
        return 1;
    }
    if (!auth_jws_verify(k, p->jwt.alg, p->token, p->jwt.signing_input_len, p->jwt.sig,
                         p->jwt.sig_len)) {
        complete(p, NULL, FAIL_INVALID, tg_arena_sprintf(p->arena, "bad %s signature (kid %s)",
                 auth_alg_name(p->jwt.alg), k->kid ? k->kid : "none"));
        return 1;
    }
    fail_kind kind;
    const char *why = NULL;
    tg_identity *id = claims_identity(p, is->issuer, NULL, &kind, &why);
    if (id) cache_put(a, p->token_hash, is, id);
    complete(p, id, kind, why);
    return 1;
}

static void pending_finish(tg_auth_pending *p)
{
    auth_jwt_clear(&p->jwt);
    free(p);
}

static void unlink_waiter(tg_auth_pending *p)
{
    *p->pprev = p->next;
    if (p->next) p->next->pprev = p->pprev;
}

typedef struct fetch_job {
    uv_work_t work;
    tg_auth *a;
    issuer_state *is;
    auth_fetch f;
} fetch_job;

static void fetch_work(uv_work_t *w) { auth_fetch_run(&((fetch_job *)w)->f); }

static void fetch_job_free(fetch_job *j)
{
    free((char *)j->f.issuer);
    free((char *)j->f.jwks_uri);
    free(j->f.discovered_uri);
    tg_buf_free(&j->f.body);
    free(j);
}

static void auth_destroy(tg_auth *a);

/* Whether some kid of old is missing from new (a key was withdrawn). */
static int key_withdrawn(const auth_keyset *old, const auth_keyset *new)
{
    for (size_t i = 0; i < old->n; i++) {
        int seen;
        if (!auth_keyset_find(new, old->keys[i].kid, old->keys[i].alg, &seen) && old->keys[i].kid)
            return 1;
    }
    return 0;
}

static void fetch_done(uv_work_t *w, int status)
{
    fetch_job *j = (fetch_job *)w;
    tg_auth *a = j->a;
    a->inflight--;
    if (a->closing) {
        fetch_job_free(j);
        if (a->inflight == 0) free(a);
        return;
    }
    issuer_state *is = j->is;
    is->fetching = 0;
    auth_keyset ks;
    tg_error err;
    if (j->f.ok && auth_keyset_parse(j->f.body.data ? j->f.body.data : "", j->f.body.len, &ks,
                                     &err) == 0) {
        if (key_withdrawn(&is->keys, &ks)) cache_drop_issuer(a, is);
        auth_keyset_free(&is->keys);
        is->keys = ks;
        is->fetched_ms = tg_now_ms();
        is->last_error[0] = '\0';
        if (j->f.discovered_uri) {
            free(is->jwks_uri);
            is->jwks_uri = j->f.discovered_uri;
            j->f.discovered_uri = NULL;
        }
        tg_log_info(AUTH_COMPONENT, "loaded %zu signing keys for issuer %s", ks.n, is->issuer);
    } else {
        if (j->f.ok) snprintf(is->last_error, sizeof is->last_error, "%s", err.msg);
        else snprintf(is->last_error, sizeof is->last_error, "%s", j->f.err.msg);
        a->stats.jwks_fetch_failures++;
        tg_log_warn(AUTH_COMPONENT, "fetching keys of issuer %s failed: %s", is->issuer,
                    is->last_error);
    }
    fetch_job_free(j);
    /* Each waiter gets one answer from the keys we now have; no second fetch for it. */
    tg_auth_pending *list = is->waiters;
    is->waiters = NULL;
    while (list) {
        tg_auth_pending *p = list;
        list = p->next;
        jwt_try_keys(p, 0);
        pending_finish(p);
    }
}

static int start_fetch(tg_auth *a, issuer_state *is)
{
    fetch_job *j = calloc(1, sizeof *j);
    if (!j) abort();
    j->a = a;
    j->is = is;
    j->f.issuer = xstrdup(is->issuer);
    j->f.jwks_uri = is->discover && is->keys.n == 0 ? NULL : xstrdup(is->jwks_uri);
    j->f.timeout_ms = a->fetch_timeout_ms;
    j->f.max_bytes = a->fetch_max;
    is->last_attempt_ms = tg_now_ms();
    a->stats.jwks_fetches++;
    int rc = uv_queue_work(a->loop, &j->work, fetch_work, fetch_done);
    if (rc != 0) {
        snprintf(is->last_error, sizeof is->last_error, "uv_queue_work: %s", uv_strerror(rc));
        a->stats.jwks_fetch_failures++;
        fetch_job_free(j);
        return -1;
    }
    is->fetching = 1;
    a->inflight++;
    return 0;
}

/* ---------------------------------------------------------------- introspection path */

static void introspect_job_free(introspect_job *j)
{
    free(j->r.url);
    OPENSSL_cleanse(j->r.token, strlen(j->r.token));
    free(j->r.token);
    free(j->r.client_id);
    OPENSSL_cleanse(j->r.client_secret, strlen(j->r.client_secret));
    free(j->r.client_secret);
    tg_buf_free(&j->r.body);
    free(j);
}

static void introspect_work(uv_work_t *w) { auth_introspect_run(&((introspect_job *)w)->r); }

/* Judges the endpoint's answer for p (on the loop thread) and completes p. */
static void introspect_judge(tg_auth_pending *p, const auth_introspect *r)
{
    tg_auth *a = p->a;
    tg_error err;
    if (!r->ok) {
        a->stats.introspection_failures++;
        complete(p, NULL, FAIL_UNAVAILABLE, tg_arena_sprintf(p->arena, "token introspection "
                 "failed: %s", r->err.msg));
        return;
    }
    json_t *ans = tg_json_parse(r->body.data ? r->body.data : "", r->body.len, 16, &err);
    if (!json_is_object(ans)) {
        a->stats.introspection_failures++;
        complete(p, NULL, FAIL_UNAVAILABLE, tg_arena_sprintf(p->arena, "token introspection "
                 "at %s: the answer is not a JSON object%s%s", a->intro_url,
                 ans ? "" : ": ", ans ? "" : err.msg));
        json_decref(ans);
        return;
    }
    p->jwt.claims = ans;  /* released by pending_finish / the caller, like a JWT's claims */
    if (!json_is_true(json_object_get(ans, "active"))) {
        complete(p, NULL, FAIL_INVALID, "token is not active (introspection)");
        return;
    }
    /* iss is optional in RFC 7662; when present it must be a configured issuer. */
    const char *iss = claim_str(ans, "iss"), *issuer = a->intro_url;
    if (json_object_get(ans, "iss")) {
        issuer = NULL;
        for (size_t i = 0; iss && i < a->n_issuers && !issuer; i++)
            if (strcmp(a->issuers[i].issuer, iss) == 0) issuer = a->issuers[i].issuer;
        if (!issuer) {
            complete(p, NULL, FAIL_INVALID, tg_arena_sprintf(p->arena, "issuer %.200s not "
                     "allowed (introspection)", iss ? iss : "(not a string)"));
            return;
        }
    }
    fail_kind kind;
    const char *why = NULL;
    tg_identity *id = claims_identity(p, issuer, "username", &kind, &why);
    if (id) cache_put(a, p->token_hash, NULL, id);
    complete(p, id, kind, why);
}

static void introspect_done(uv_work_t *w, int status)
{
    (void)status;  /* a cancelled work item cannot happen: we never uv_cancel */
    introspect_job *j = (introspect_job *)w;
    tg_auth *a = j->a;
    a->inflight--;
    if (a->closing) {
        introspect_job_free(j);
        if (a->inflight == 0) free(a);
        return;
    }
    *j->pprev = j->next;
    if (j->next) j->next->pprev = j->pprev;
    tg_auth_pending *p = j->p;
    if (p) {
        p->job = NULL;
        introspect_judge(p, &j->r);
        pending_finish(p);
    }
    introspect_job_free(j);
}

/* Starts the introspection of p's token. Returns the waiting heap copy, or NULL when p
 * was completed here (the job could not be queued). */
static tg_auth_pending *introspect_begin(tg_auth_pending *p)
{
    tg_auth *a = p->a;
    introspect_job *j = calloc(1, sizeof *j);
    if (!j) abort();
    j->a = a;
    j->r.url = xstrdup(a->intro_url);
    j->r.token = xstrdup(p->token);
    j->r.client_id = xstrdup(a->intro_client_id);
    j->r.client_secret = xstrdup(a->intro_client_secret);
    j->r.timeout_ms = a->fetch_timeout_ms;
    j->r.max_bytes = a->fetch_max;
    a->stats.introspections++;
    int rc = uv_queue_work(a->loop, &j->work, introspect_work, introspect_done);
    if (rc != 0) {
        introspect_job_free(j);
        a->stats.introspection_failures++;
        complete(p, NULL, FAIL_UNAVAILABLE,
                 tg_arena_sprintf(p->arena, "token introspection: uv_queue_work: %s",
                                  uv_strerror(rc)));
        return NULL;
    }
    a->inflight++;
    tg_auth_pending *h = malloc(sizeof *h);
    if (!h) abort();
    *h = *p;
    h->job = j;
    j->p = h;
    j->next = a->introspecting;
    if (j->next) j->next->pprev = &j->next;
    j->pprev = &a->introspecting;
    a->introspecting = j;
    return h;
}

/* Compact JWS shape: exactly two dots. Anything else is an opaque token. */
static int looks_like_jwt(const char *t, size_t len)
{
    size_t dots = 0;
    for (size_t i = 0; i < len; i++) dots += t[i] == '.';
    return dots == 2;
}

/* A connection's memo (tg_auth_input.memo). Hashing the ~1 KB of a JWT was 1.5 % of the
 * loop thread's time per call, and a keep-alive client presents the same token every
 * time. The memo only maps a token to its digest, so a hit decides exactly what a miss
 * would: the cache, expiry and every check still run. The token copy is freed with the
 * connection that sent it, as its read buffer was; comparing it is constant-time, so a
 * connection shared by several users (a proxy in front) learns nothing of another's. */
typedef struct auth_memo {
    size_t len, cap;
    uint8_t hash[32];
    char token[];
} auth_memo;

void tg_auth_memo_free(void *memo)
{
    free(memo);
}

/* Is this token the one the connection's memo holds? */
static bool memo_holds(void **slot, const char *token, size_t len)
{
    const auth_memo *m = slot ? *slot : NULL;
    return m && tg_ct_equal(m->token, m->len, token, len);
}

/* p->token_hash: from the memo when it holds the token (seen), else computed and then
 * remembered in the memo. */
static void token_digest(tg_auth_pending *p, void **slot, bool seen)
{
    auth_memo *m = slot ? *slot : NULL;
    if (seen) {
        memcpy(p->token_hash, m->hash, sizeof m->hash);
        return;
    }
    tg_sha256(p->token, p->token_len, NULL, 0, p->token_hash);
    if (!slot) return;
    if (!m || m->cap < p->token_len) {
        free(m);
        if (!(m = malloc(sizeof *m + p->token_len))) abort();
        m->cap = p->token_len;
        *slot = m;
    }
    m->len = p->token_len;
    memcpy(m->token, p->token, p->token_len);
    memcpy(m->hash, p->token_hash, sizeof m->hash);
}

static tg_auth_pending *jwt_begin(tg_auth_pending *p, void **memo, bool seen)
{
    tg_auth *a = p->a;
    tg_error err;
    if (!a->oauth) {
        complete(p, NULL, FAIL_INVALID, "bearer token sent but OAuth is disabled");
        return NULL;
    }
    if (p->token_len > a->max_token) {
        complete(p, NULL, FAIL_INVALID, tg_arena_sprintf(p->arena, "token longer than %zu bytes",
                                                          a->max_token));
        return NULL;
    }
    token_digest(p, memo, seen);
    cache_entry *e = cache_find(a, p->token_hash);
    if (e && now_s() <= e->exp_s + a->leeway_s) {
        a->stats.cache_hits++;
        e->ref = 1;
        tg_identity *id = tg_identity_copy(p->arena, e->id);
        id->client_ip = p->client_ip;
        complete(p, id, FAIL_NONE, NULL);
        return NULL;
    }
    if (e) cache_unlink(a, (int32_t)(e - a->cache));
    a->stats.cache_misses++;
    if (a->intro_url && (a->intro_all || !looks_like_jwt(p->token, p->token_len)))
        return introspect_begin(p);
    if (auth_jwt_parse(p->token, p->token_len, p->arena, &p->jwt, &err) != 0) {
        complete(p, NULL, FAIL_INVALID, tg_arena_strdup(p->arena, err.msg));
        return NULL;
    }
    const char *iss = claim_str(p->jwt.claims, "iss");
    for (size_t i = 0; iss && i < a->n_issuers && !p->is; i++)
        if (strcmp(a->issuers[i].issuer, iss) == 0) p->is = &a->issuers[i];
    if (!p->is) {
        complete(p, NULL, FAIL_INVALID,
                 tg_arena_sprintf(p->arena, "issuer %.200s not allowed", iss ? iss : "(none)"));
        auth_jwt_clear(&p->jwt);
        return NULL;
    }
    if (jwt_try_keys(p, 1)) {
        auth_jwt_clear(&p->jwt);
        return NULL;
    }
    /* Wait for keys: fetch if no one is, then move to the heap and join the waiters. */
    issuer_state *is = p->is;
    if (!is->fetching && start_fetch(a, is) != 0) {
        complete(p, NULL, FAIL_UNAVAILABLE,
                 tg_arena_sprintf(p->arena, "cannot fetch keys of %s: %s", is->issuer,
                                  is->last_error));
        auth_jwt_clear(&p->jwt);
        return NULL;
    }
    tg_auth_pending *h = malloc(sizeof *h);
    if (!h) abort();
    *h = *p;
    h->next = is->waiters;
    if (h->next) h->next->pprev = &h->next;
    h->pprev = &is->waiters;
    is->waiters = h;
    return h;
}

/* ---------------------------------------------------------------- API-key path */

static void apikey_check(tg_auth_pending *p, const uint8_t ip[16])
{
    tg_auth *a = p->a;
    if (!a->api_keys) {
        complete(p, NULL, FAIL_INVALID, "API key sent but API keys are disabled");
        return;
    }
    tg_apikey_record rec;
    tg_error err;
    int rc = auth_apikey_verify(a->store, p->token, p->token_len, now_s(), a->max_lifetime_s,
                                &a->key_cidrs, ip, p->arena, &rec, &err);
    if (rc != 0) {
        complete(p, NULL, rc == -2 ? FAIL_UNAVAILABLE : FAIL_INVALID,
                 tg_arena_strdup(p->arena, err.msg));
        return;
    }
    tg_identity *id = tg_arena_calloc(p->arena, 1, sizeof *id);
    id->method = "api_key";
    id->delegator = rec.delegator;
    id->agent = rec.agent;
    id->groups = rec.groups;
    id->n_groups = rec.n_groups;
    id->credential_id = tg_arena_strdup(p->arena, rec.id);
    id->client_ip = p->client_ip;
    id->expires_at = rec.expires;
    id->principal_key = tg_arena_sprintf(p->arena, "api_key:%s", rec.id);
    complete(p, id, FAIL_NONE, NULL);
}

/* ---------------------------------------------------------------- entry point */

/* Whether the query string carries an access_token parameter (RFC 6750 §2.3, which
 * OAuth 2.1 removes): such a token has already leaked into logs and histories. */
static int query_has_token(const char *q)
{
    static const char name[] = "access_token";
    while (q && *q) {
        size_t len = strcspn(q, "&;"), nlen = strcspn(q, "=&;");
        if (tg_strcaseeq(q, nlen, name) || tg_strcaseeq(q, nlen, "access%5Ftoken")) return 1;
        q += len;
        if (*q) q++;
    }
    return 0;
}

/* "Bearer <token68>" → token. NULL if the scheme is not Bearer. */
static const char *bearer_token(const char *h, size_t *len)
{
    if (strlen(h) < 7 || !tg_strcaseeq(h, 6, "Bearer") || h[6] != ' ') return NULL;
    h += 7;
    while (*h == ' ') h++;
    *len = strlen(h);
    return h;
}

static int token68(const char *t, size_t len)
{
    size_t i = strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/");
    while (i < len && t[i] == '=') i++;
    return len > 0 && i == len;
}

tg_auth_pending *tg_auth_authenticate(tg_auth *a, const tg_auth_input *in, tg_arena *arena,
                                      tg_auth_cb cb, void *user)
{
    tg_auth_pending p = {.a = a, .arena = arena, .cb = cb, .user = user};
    if (query_has_token(in->query)) {
        complete(&p, NULL, FAIL_REQUEST, "access token in the query string refused");
        return NULL;
    }
    if (in->authorization_repeated) {
        complete(&p, NULL, FAIL_REQUEST, "Authorization header repeated");
        return NULL;
    }
    uint8_t ip[16];
    char ipt[64];
    tg_error err;
    if (auth_client_ip(&a->proxies, in->peer_ip, in->x_forwarded_for, in->forwarded, ip, ipt,
                       sizeof ipt, &err) != 0) {
        complete(&p, NULL, FAIL_REQUEST, tg_arena_strdup(arena, err.msg));
        return NULL;
    }
    p.client_ip = tg_arena_strdup(arena, ipt);
    size_t len = 0;
    const char *tok = in->authorization ? bearer_token(in->authorization, &len) : NULL;
    if (!tok) {
        complete(&p, NULL, FAIL_NONE, in->authorization ? "Authorization scheme is not Bearer"
                                                        : "no credentials");
        return NULL;
    }
    /* A token the connection's memo holds passed this check when it was remembered. */
    bool seen = memo_holds(in->memo, tok, len);
    if (!seen && !token68(tok, len)) {
        complete(&p, NULL, FAIL_INVALID, "bearer token has characters outside token68");
        return NULL;
    }
    p.token = tg_arena_strndup(arena, tok, len);
    p.token_len = len;
    if (len > 4 && memcmp(tok, "tgk_", 4) == 0) {
        apikey_check(&p, ip);
        return NULL;
    }
    return jwt_begin(&p, in->memo, seen);
}

void tg_auth_cancel(tg_auth_pending *p)
{
    if (!p) return;
    if (p->job) p->job->p = NULL;  /* the job lands later and only frees itself */
    else unlink_waiter(p);
    pending_finish(p);
}

/* ---------------------------------------------------------------- construction */

static char *challenge(const tg_auth *a, const char *error)
{
    tg_buf b = TG_BUF_INIT;
    tg_buf_appends(&b, "Bearer ");
    if (error) tg_buf_printf(&b, "error=\"%s\", ", error);
    if (a->oauth) {
        tg_buf_printf(&b, "resource_metadata=\"%s\"", a->metadata_url);
        if (a->n_required) {
            tg_buf_appends(&b, ", scope=\"");
            for (size_t i = 0; i < a->n_required; i++)
                tg_buf_printf(&b, "%s%s", i ? " " : "", a->required_scopes[i]);
            tg_buf_appends(&b, "\"");
        }
    } else {
        tg_buf_appends(&b, "realm=\"toolgate\"");
    }
    return tg_buf_steal(&b);
}

static char *metadata(const tg_auth *a, const char **supported, size_t n_supported)
{
    json_t *md = json_object();
    json_object_set_new(md, "resource", json_string(a->resource ? a->resource : ""));
    json_t *servers = json_array();
    for (size_t i = 0; i < a->n_issuers; i++)
        json_array_append_new(servers, json_string(a->issuers[i].issuer));
    json_object_set_new(md, "authorization_servers", servers);
    json_t *scopes = json_array();
    for (size_t i = 0; i < n_supported; i++)
        json_array_append_new(scopes, json_string(supported[i]));
    if (n_supported == 0)
        for (size_t i = 0; i < a->n_required; i++)
            json_array_append_new(scopes, json_string(a->required_scopes[i]));
    json_object_set_new(md, "scopes_supported", scopes);
    json_t *methods = json_array();
    json_array_append_new(methods, json_string("header"));
    json_object_set_new(md, "bearer_methods_supported", methods);
    json_object_set_new(md, "resource_name", json_string("toolgate"));
    char *s = tg_json_dump(md, NULL);
    json_decref(md);
    return s;
}

static int check_conf(const tg_auth_conf *c, tg_error *err)
{
    if (!c->oauth_enabled && !c->api_keys_enabled)
        return tg_error_set(err, "auth: enable oauth or api_keys (or leave auth out entirely)");
    if (c->api_keys_enabled && !c->key_store)
        return tg_error_set(err, "auth.api_keys: no key store");
    if (c->resource && !url_text_ok(c->resource))
        return tg_error_set(err, "auth.resource: \"%s\" is not a plain URL", c->resource);
    if (c->resource_metadata_url && !url_text_ok(c->resource_metadata_url))
        return tg_error_set(err, "auth.resource_metadata_url is not a plain URL");
    for (size_t i = 0; i < c->n_required_scopes; i++)
        if (!scope_token_ok(c->required_scopes[i]))
            return tg_error_set(err, "auth.oauth.required_scopes: \"%s\" is not a scope token",
                                c->required_scopes[i]);
    if (c->leeway_s < -1 || c->leeway_s > 600)
        return tg_error_set(err, "auth.oauth.leeway must be between 0 and 600 seconds");
    if (c->api_key_max_lifetime_s < 0 || c->api_key_rotation_overlap_s < 0)
        return tg_error_set(err, "auth.api_keys: max_lifetime and rotation_overlap are >= 0");
    if (!c->oauth_enabled) return 0;
    if (!c->resource || (strncmp(c->resource, "https://", 8) != 0 &&
                         strncmp(c->resource, "http://", 7) != 0) || strchr(c->resource, '#'))
        return tg_error_set(err, "auth.resource: the canonical public URL of the MCP endpoint "
                            "(https://host/mcp) is required with OAuth");
    if (c->n_issuers == 0) return tg_error_set(err, "auth.oauth.issuers: at least one issuer");
    const tg_auth_introspection_conf *in = &c->introspection;
    if (in->url) {
        tg_error why;
        if (!url_text_ok(in->url) || auth_url_check(in->url, &why) != 0)
            return tg_error_set(err, "auth.oauth.introspection.url: %s",
                                url_text_ok(in->url) ? why.msg : "not a plain URL");
        if (!in->client_id || !in->client_id[0] || !in->client_secret || !in->client_secret[0])
            return tg_error_set(err, "auth.oauth.introspection: client_id and client_secret "
                                "are required (toolgate authenticates to the endpoint)");
    }
    for (size_t i = 0; i < c->n_issuers; i++) {
        const tg_auth_issuer_conf *ic = &c->issuers[i];
        tg_error why;
        if (!ic->issuer || !ic->issuer[0] || !url_text_ok(ic->issuer))
            return tg_error_set(err, "auth.oauth.issuers[%zu].issuer: a URL is required", i);
        if (auth_url_check(ic->jwks_uri ? ic->jwks_uri : ic->issuer, &why) != 0)
            return tg_error_set(err, "auth.oauth.issuers[%zu]: %s", i, why.msg);
    }
    return 0;
}

tg_auth *tg_auth_new(uv_loop_t *loop, const tg_auth_conf *c, tg_error *err)
{
    if (check_conf(c, err) != 0) return NULL;
    tg_auth *a = calloc(1, sizeof *a);
    if (!a) abort();
    a->loop = loop;
    if (auth_cidrs_parse(c->api_key_cidrs, c->n_api_key_cidrs, "auth.api_keys.allowed_cidrs",
                         &a->key_cidrs, err) != 0 ||
        auth_cidrs_parse(c->trusted_proxies, c->n_trusted_proxies, "auth.trusted_proxies",
                         &a->proxies, err) != 0) {
        auth_destroy(a);
        free(a);
        return NULL;
    }
    a->resource = xstrdup(c->resource);
    a->oauth = c->oauth_enabled;
    a->api_keys = c->api_keys_enabled;
    a->metadata_url = c->resource_metadata_url ? xstrdup(c->resource_metadata_url)
                    : c->resource ? auth_well_known_url(c->resource, "oauth-protected-resource")
                                  : xstrdup("");
    a->n_issuers = c->oauth_enabled ? c->n_issuers : 0;
    a->issuers = calloc(a->n_issuers ? a->n_issuers : 1, sizeof *a->issuers);
    if (!a->issuers) abort();
    for (size_t i = 0; i < a->n_issuers; i++) {
        a->issuers[i].issuer = xstrdup(c->issuers[i].issuer);
        a->issuers[i].jwks_uri = xstrdup(c->issuers[i].jwks_uri);
        a->issuers[i].discover = c->issuers[i].jwks_uri == NULL;
    }
    a->leeway_s = c->leeway_s == 0 ? DEFAULT_LEEWAY_S : c->leeway_s < 0 ? 0 : c->leeway_s;
    a->required_scopes = strv_dup(c->required_scopes, c->n_required_scopes);
    a->n_required = c->n_required_scopes;
    a->delegator_claim = xstrdup(c->delegator_claim ? c->delegator_claim : "sub");
    a->groups_claim = xstrdup(c->groups_claim ? c->groups_claim : "groups");
    a->domain_claim = xstrdup(c->domain_claim ? c->domain_claim : "email");
    a->default_agent = xstrdup(c->default_agent);
    a->domains = strv_dup(c->allowed_domains, c->n_allowed_domains);
    a->n_domains = c->n_allowed_domains;
    a->max_token = c->max_token_bytes ? c->max_token_bytes : DEFAULT_MAX_TOKEN;
    a->refetch_ms = c->jwks_refetch_interval_ms ? c->jwks_refetch_interval_ms : DEFAULT_REFETCH_MS;
    a->max_age_ms = c->jwks_max_age_ms ? c->jwks_max_age_ms : DEFAULT_MAX_AGE_MS;
    a->fetch_timeout_ms = c->fetch_timeout_ms ? c->fetch_timeout_ms : DEFAULT_FETCH_TIMEOUT;
    a->fetch_max = c->fetch_max_bytes ? c->fetch_max_bytes : DEFAULT_FETCH_MAX;
    if (c->oauth_enabled && c->introspection.url) {
        a->intro_url = xstrdup(c->introspection.url);
        a->intro_client_id = xstrdup(c->introspection.client_id);
        a->intro_client_secret = xstrdup(c->introspection.client_secret);
        a->intro_all = c->introspection.all_tokens;
    }
    a->store = c->key_store;
    a->max_lifetime_s = c->api_key_max_lifetime_s;
    a->overlap_s = c->api_key_rotation_overlap_s ? c->api_key_rotation_overlap_s
                                                 : DEFAULT_OVERLAP_S;
    a->ch_none = challenge(a, NULL);
    a->ch_invalid = challenge(a, "invalid_token");
    a->ch_request = challenge(a, "invalid_request");
    a->ch_scope = challenge(a, "insufficient_scope");
    a->metadata_json = metadata(a, c->scopes_supported, c->n_scopes_supported);

    a->cache_cap = c->token_cache_size ? c->token_cache_size : DEFAULT_CACHE_SIZE;
    a->cache = calloc(a->cache_cap, sizeof *a->cache);
    size_t nb = 1;
    while (nb < a->cache_cap) nb <<= 1;
    a->buckets = malloc(nb * sizeof *a->buckets);
    if (!a->cache || !a->buckets) abort();
    memset(a->buckets, 0xff, nb * sizeof *a->buckets);  /* -1: empty */
    a->bucket_mask = (uint32_t)(nb - 1);
    for (size_t i = 0; i < a->cache_cap; i++) a->cache[i].arena = tg_arena_new(1024);
    return a;
}

/* Frees everything but the struct itself (which in-flight fetches still point at). */
static void auth_destroy(tg_auth *a)
{
    for (size_t i = 0; i < a->n_issuers; i++) {
        issuer_state *is = &a->issuers[i];
        while (is->waiters) tg_auth_cancel(is->waiters);
        free(is->issuer);
        free(is->jwks_uri);
        auth_keyset_free(&is->keys);
    }
    free(a->issuers);
    /* Jobs in flight land later (a->closing) and free themselves; their requests go now,
     * without callbacks, like the issuers' waiters. */
    for (introspect_job *j = a->introspecting; j; j = j->next) {
        if (j->p) pending_finish(j->p);
        j->p = NULL;
    }
    a->introspecting = NULL;
    free(a->intro_url);
    free(a->intro_client_id);
    if (a->intro_client_secret) OPENSSL_cleanse(a->intro_client_secret, strlen(a->intro_client_secret));
    free(a->intro_client_secret);
    for (size_t i = 0; i < a->cache_cap; i++) tg_arena_free(a->cache[i].arena);
    free(a->cache);
    free(a->buckets);
    strv_free(a->required_scopes, a->n_required);
    strv_free(a->domains, a->n_domains);
    free(a->resource);
    free(a->metadata_url);
    free(a->metadata_json);
    free(a->delegator_claim);
    free(a->groups_claim);
    free(a->domain_claim);
    free(a->default_agent);
    free(a->ch_none);
    free(a->ch_invalid);
    free(a->ch_request);
    free(a->ch_scope);
    auth_cidrs_free(&a->key_cidrs);
    auth_cidrs_free(&a->proxies);
}

void tg_auth_free(tg_auth *a)
{
    if (!a) return;
    auth_destroy(a);
    a->closing = 1;
    if (a->inflight == 0) free(a);
}

const char *tg_auth_metadata_json(const tg_auth *a) { return a->metadata_json; }
const char *tg_auth_metadata_url(const tg_auth *a) { return a->metadata_url; }
int64_t tg_auth_rotation_overlap(const tg_auth *a) { return a->overlap_s; }
void tg_auth_get_stats(const tg_auth *a, tg_auth_stats *out) { *out = a->stats; }
