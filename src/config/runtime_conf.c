/*
 * runtime_conf.c — the `store:`, `audit:` and `auth:` sections of the configuration
 * (issues 4 and 6). They fill the option structures the store, audit and auth modules
 * take (tg_store_options, tg_audit_options, tg_auth_conf, embedded in tg_config), so
 * `toolgate serve` and the `keys` / `audit` commands hand them over unchanged.
 *
 * The walk uses the same key tables and error voice as load.c (yaml_int.h): unknown keys,
 * wrong types and bad values stop the load with "FILE:LINE:COL: key.path: message".
 * Values that other modules check again at start (URL schemes the auth module accepts,
 * whether a signing key file is a valid PEM) are checked here only as far as their
 * syntax goes: a configuration must be checkable on a machine that is not the server.
 */
#include "config/config_int.h"
#include "config/yaml_int.h"

#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ store */

/* A store URL: "sqlite:PATH" (relative to the configuration's directory), a PostgreSQL
 * URL or a libpq conninfo ("host=… dbname=…"). The message never quotes the value: it
 * may carry a password from ${VAR}. */
static int store_url(loader *L, const at *w, tg_config *cfg)
{
    const char *u;
    if (tg_cy_nonempty_string(L, w, &u) < 0)
        return -1;
    if (strncmp(u, "sqlite:", 7) == 0) {
        if (!u[7])
            return tg_cy_fail(L, w, "sqlite: needs a file path, e.g. sqlite:/var/lib/toolgate/store.db");
        cfg->store.url = tg_arena_sprintf(L->a, "sqlite:%s", tg_cy_abspath(L, u + 7));
        return 0;
    }
    if (strncmp(u, "postgres://", 11) == 0 || strncmp(u, "postgresql://", 13) == 0 ||
        strchr(u, '=') != NULL) {
        cfg->store.url = u;
        return 0;
    }
    return tg_cy_fail(L, w, "expected sqlite:PATH, a postgres:// or postgresql:// URL, or a "
                      "PostgreSQL conninfo such as \"host=db dbname=toolgate\"");
}

static int read_store_url(loader *L, const at *w, void *obj)
{
    return store_url(L, w, obj);
}

static const field store_fields[] = {
    {"url", F_CUSTOM, 0, read_store_url, 0},
    {"queue_max", F_COUNT, offsetof(tg_config, store.queue_max), NULL, 0},
    {"batch_max", F_COUNT, offsetof(tg_config, store.batch_max), NULL, 0},
};

/* `store: URL` or `store: {url: URL, queue_max: N, batch_max: N}`. */
int tg_cy_read_store(loader *L, const at *w, void *obj)
{
    tg_config *cfg = obj;
    if (w->node && fy_node_is_scalar(w->node))
        return store_url(L, w, cfg);
    if (tg_cy_walk_map(L, w, store_fields, sizeof store_fields / sizeof *store_fields, cfg, 0) < 0)
        return -1;
    at uw = tg_cy_find_key(L, w, "url");
    if (!uw.where)
        return tg_cy_missing(L, w, "url", " (sqlite:PATH or a PostgreSQL URL)");
    return 0;
}

/* ------------------------------------------------------------------ audit */

/* A count that must fit the uint32_t of tg_audit_options. */
static int u32_count(loader *L, const at *w, uint32_t *out)
{
    const char *text, *why;
    bool plain;
    uint64_t v;
    if (tg_cy_scalar(L, w, "a number", &text, &plain) < 0)
        return -1;
    if (!plain)
        return tg_cy_fail(L, w, "expected a number, found a quoted string");
    if (tg_config_parse_count(text, UINT32_MAX, &v, &why) < 0)
        return tg_cy_fail(L, w, "%s, found \"%s\"", why, text);
    *out = (uint32_t)v;
    return 0;
}

static int read_cp_every(loader *L, const at *w, void *obj)
{
    return u32_count(L, w, &((tg_config *)obj)->audit.checkpoint_every);
}

static const field checkpoint_fields[] = {
    {"every", F_CUSTOM, 0, read_cp_every, 0},
    {"interval", F_DURATION, offsetof(tg_config, audit.checkpoint_ms), NULL, 0},
};

static int read_checkpoint(loader *L, const at *w, void *obj)
{
    return tg_cy_walk_map(L, w, checkpoint_fields,
                          sizeof checkpoint_fields / sizeof *checkpoint_fields, obj, 0);
}

static int read_mode(loader *L, const at *w, void *obj)
{
    int v;
    if (tg_cy_two_words(L, w, "strict", TG_AUDIT_STRICT, "batched", TG_AUDIT_BATCHED, &v) < 0)
        return -1;
    ((tg_config *)obj)->audit.durability = (tg_audit_durability)v;
    return 0;
}

static int read_outcome(loader *L, const at *w, void *obj)
{
    int v;
    if (tg_cy_two_words(L, w, "durable", 0, "async", 1, &v) < 0)
        return -1;
    ((tg_config *)obj)->audit.async_outcomes = v;
    return 0;
}

static int read_instance(loader *L, const at *w, void *obj)
{
    tg_config *cfg = obj;
    if (tg_cy_nonempty_string(L, w, &cfg->audit.instance_id) < 0)
        return -1;
    if (!tg_config_is_tool_prefix(cfg->audit.instance_id))
        return tg_cy_fail(L, w, "an instance id uses only letters, digits, _, - and . (at most 64)");
    return 0;
}

static int read_signing_key(loader *L, const at *w, void *obj)
{
    const char *p;
    if (tg_cy_nonempty_string(L, w, &p) < 0)
        return -1;
    ((tg_config *)obj)->audit.signing_key_path = tg_cy_abspath(L, p);
    return 0;
}

static int read_jsonl(loader *L, const at *w, void *obj)
{
    const char *p;
    if (tg_cy_nonempty_string(L, w, &p) < 0)
        return -1;
    ((tg_config *)obj)->audit.jsonl_path = strcmp(p, "-") == 0 ? p : tg_cy_abspath(L, p);
    return 0;
}

static int read_redact(loader *L, const at *w, void *obj)
{
    tg_config *cfg = obj;
    const char **list;
    if (tg_cy_string_list(L, w, NULL, &list, &cfg->audit.n_redact) < 0)
        return -1;
    if (cfg->audit.n_redact == 0)
        return tg_cy_fail(L, w, "must name at least one key; omit `redact` for the defaults");
    cfg->audit.redact = list;
    return 0;
}

static const field audit_fields[] = {
    {"instance_id", F_CUSTOM, 0, read_instance, 0},
    {"mode", F_CUSTOM, 0, read_mode, 0},
    {"outcome", F_CUSTOM, 0, read_outcome, 0},
    {"batched_queue_max", F_COUNT, offsetof(tg_config, audit.batched_queue_max), NULL, 0},
    {"signing_key", F_CUSTOM, 0, read_signing_key, 0},
    {"checkpoint", F_CUSTOM, 0, read_checkpoint, 0},
    {"redact", F_CUSTOM, 0, read_redact, 0},
    {"jsonl", F_CUSTOM, 0, read_jsonl, 0},
};

int tg_cy_read_audit(loader *L, const at *w, void *obj)
{
    return tg_cy_walk_map(L, w, audit_fields, sizeof audit_fields / sizeof *audit_fields, obj, 0);
}

/* ------------------------------------------------------------------ auth */

/* While `auth:` is read: the parts whose meaning depends on siblings (enabled flags,
 * presence of issuers) are checked once the mapping is walked. */
typedef struct auth_build {
    tg_config *cfg;
    at oauth;
} auth_build;

static int check_cidr(loader *L, const at *w, const char *s)
{
    const char *why;
    if (tg_config_check_cidr(s, &why) < 0)
        return tg_cy_fail(L, w, "%s, found \"%s\"", why, tg_cy_raw_text(L, w));
    return 0;
}

static int check_url(loader *L, const at *w, const char *s)
{
    const char *why;
    if (tg_config_check_http_url(s, 0, L->tmp, NULL, &why) < 0)
        return tg_cy_fail(L, w, "%s", why);
    return 0;
}

static int check_domain(loader *L, const at *w, const char *s)
{
    if (strchr(s, '@') || !tg_config_is_host_value(s) || strchr(s, ':'))
        return tg_cy_fail(L, w, "expected a domain name such as example.com");
    return 0;
}

#define LIST_READER(fn, list, count, check) \
    static int fn(loader *L, const at *w, void *obj) \
    { \
        tg_auth_conf *c = &((tg_config *)obj)->auth; \
        return tg_cy_string_list(L, w, check, (const char ***)&c->list, &c->count); \
    }
LIST_READER(read_required_scopes, required_scopes, n_required_scopes, NULL)
LIST_READER(read_scopes_supported, scopes_supported, n_scopes_supported, NULL)
LIST_READER(read_allowed_domains, allowed_domains, n_allowed_domains, check_domain)
LIST_READER(read_key_cidrs, api_key_cidrs, n_api_key_cidrs, check_cidr)
LIST_READER(read_trusted_proxies, trusted_proxies, n_trusted_proxies, check_cidr)
#undef LIST_READER

static const field issuer_fields[] = {
    {"issuer", F_STRING, offsetof(tg_auth_issuer_conf, issuer), NULL, 0},
    {"jwks_uri", F_STRING, offsetof(tg_auth_issuer_conf, jwks_uri), NULL, 0},
};

static int read_issuers(loader *L, const at *w, void *obj)
{
    tg_auth_conf *c = &((tg_config *)obj)->auth;
    void *it = NULL;
    struct fy_node *item;
    size_t i = 0;
    if (!w->node || !fy_node_is_sequence(w->node))
        return tg_cy_fail(L, w, "expected a list of issuers, found %s", tg_cy_what(w->node));
    tg_auth_issuer_conf *is = tg_arena_calloc(L->a, (size_t)fy_node_sequence_item_count(w->node) + 1,
                                              sizeof *is);
    while ((item = fy_node_sequence_iterate(w->node, &it))) {
        at iw = tg_cy_at_index(L, w, item, i);
        if (tg_cy_walk_map(L, &iw, issuer_fields, 2, &is[i], 0) < 0)
            return -1;
        if (!is[i].issuer)
            return tg_cy_missing(L, &iw, "issuer", " (the exact `iss` of its tokens)");
        at isw = tg_cy_find_key(L, &iw, "issuer"), jw = tg_cy_find_key(L, &iw, "jwks_uri");
        if (check_url(L, &isw, is[i].issuer) < 0 ||
            (is[i].jwks_uri && check_url(L, &jw, is[i].jwks_uri) < 0))
            return -1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(is[j].issuer, is[i].issuer) == 0)
                return tg_cy_fail(L, &isw, "issuer is already listed at %s[%zu]", w->where, j);
        i++;
    }
    c->issuers = is;
    c->n_issuers = i;
    return 0;
}

static const field introspection_fields[] = {
    {"url", F_STRING, offsetof(tg_auth_introspection_conf, url), NULL, 0},
    {"client_id", F_STRING, offsetof(tg_auth_introspection_conf, client_id), NULL, 0},
    {"client_secret", F_STRING, offsetof(tg_auth_introspection_conf, client_secret), NULL, 0},
    {"all_tokens", F_BOOL, offsetof(tg_auth_introspection_conf, all_tokens), NULL, 0},
};

/* `introspection: {url, client_id, client_secret, all_tokens}` (RFC 7662). The secret is
 * a string like any other, so ${VAR} and file:PATH references work (and are never
 * quoted in messages). */
static int read_introspection(loader *L, const at *w, void *obj)
{
    tg_auth_introspection_conf *ic = &((tg_config *)obj)->auth.introspection;
    if (tg_cy_walk_map(L, w, introspection_fields,
                       sizeof introspection_fields / sizeof *introspection_fields, ic, 0) < 0)
        return -1;
    if (!ic->url)
        return tg_cy_missing(L, w, "url", " (the authorization server's introspection endpoint)");
    if (!ic->client_id)
        return tg_cy_missing(L, w, "client_id", " (toolgate's client at that endpoint)");
    if (!ic->client_secret)
        return tg_cy_missing(L, w, "client_secret", " (e.g. ${INTROSPECTION_SECRET} or file:PATH)");
    at uw = tg_cy_find_key(L, w, "url");
    return check_url(L, &uw, ic->url);
}

static int read_leeway(loader *L, const at *w, void *obj)
{
    tg_auth_conf *c = &((tg_config *)obj)->auth;
    const char *text, *why;
    bool plain;
    int64_t s;
    if (tg_cy_scalar(L, w, "a duration", &text, &plain) < 0)
        return -1;
    if (tg_config_parse_seconds(text, &s, &why) < 0)
        return tg_cy_fail(L, w, "%s, found \"%s\"", why, text);
    if (s > 600)
        return tg_cy_fail(L, w, "at most 10m: a larger leeway accepts long-expired tokens");
    c->leeway_s = s ? s : -1;  /* 0 in the struct means the default (60s) */
    return 0;
}

static int read_audience(loader *L, const at *w, void *obj)
{
    tg_config *cfg = obj;
    if (tg_cy_nonempty_string(L, w, &cfg->auth_audience) < 0)
        return -1;
    return check_url(L, w, cfg->auth_audience);
}

static int read_claim(loader *L, const at *w, const char **out)
{
    return tg_cy_nonempty_string(L, w, out);
}

#define CLAIM_READER(fn, member) \
    static int fn(loader *L, const at *w, void *obj) \
    { \
        return read_claim(L, w, &((tg_config *)obj)->auth.member); \
    }
CLAIM_READER(read_delegator_claim, delegator_claim)
CLAIM_READER(read_groups_claim, groups_claim)
CLAIM_READER(read_domain_claim, domain_claim)
CLAIM_READER(read_default_agent, default_agent)
#undef CLAIM_READER

#define AUTH(m) offsetof(tg_config, auth.m)
static const field oauth_fields[] = {
    {"enabled", F_BOOL, AUTH(oauth_enabled), NULL, 0},
    {"issuers", F_CUSTOM, 0, read_issuers, 0},
    {"audience", F_CUSTOM, 0, read_audience, 0},
    {"required_scopes", F_CUSTOM, 0, read_required_scopes, 0},
    {"scopes_supported", F_CUSTOM, 0, read_scopes_supported, 0},
    {"leeway", F_CUSTOM, 0, read_leeway, 0},
    {"delegator_claim", F_CUSTOM, 0, read_delegator_claim, 0},
    {"groups_claim", F_CUSTOM, 0, read_groups_claim, 0},
    {"domain_claim", F_CUSTOM, 0, read_domain_claim, 0},
    {"allowed_domains", F_CUSTOM, 0, read_allowed_domains, 0},
    {"default_agent", F_CUSTOM, 0, read_default_agent, 0},
    {"token_cache_size", F_COUNT, AUTH(token_cache_size), NULL, 0},
    {"max_token_size", F_SIZE, AUTH(max_token_bytes), NULL, 0},
    {"jwks_refetch_interval", F_MS64, AUTH(jwks_refetch_interval_ms), NULL, 0},
    {"jwks_max_age", F_MS64, AUTH(jwks_max_age_ms), NULL, 0},
    {"fetch_timeout", F_MS64, AUTH(fetch_timeout_ms), NULL, 0},
    {"introspection", F_CUSTOM, 0, read_introspection, 0},
};

static const field api_key_fields[] = {
    {"enabled", F_BOOL, AUTH(api_keys_enabled), NULL, 0},
    {"allowed_cidrs", F_CUSTOM, 0, read_key_cidrs, 0},
    {"max_lifetime", F_SECONDS, AUTH(api_key_max_lifetime_s), NULL, 0},
    {"rotation_overlap", F_SECONDS, AUTH(api_key_rotation_overlap_s), NULL, 0},
};
#undef AUTH

static int read_oauth(loader *L, const at *w, void *obj)
{
    auth_build *b = obj;
    b->oauth = *w;
    b->cfg->auth.oauth_enabled = 1;  /* a present section is on unless `enabled: false` */
    return tg_cy_walk_map(L, w, oauth_fields, sizeof oauth_fields / sizeof *oauth_fields, b->cfg, 0);
}

static int read_api_keys(loader *L, const at *w, void *obj)
{
    auth_build *b = obj;
    b->cfg->auth.api_keys_enabled = 1;
    return tg_cy_walk_map(L, w, api_key_fields, sizeof api_key_fields / sizeof *api_key_fields,
                          b->cfg, 0);
}

static int read_proxies(loader *L, const at *w, void *obj)
{
    return read_trusted_proxies(L, w, ((auth_build *)obj)->cfg);
}

static const field auth_fields[] = {
    {"oauth", F_CUSTOM, 0, read_oauth, 0},
    {"api_keys", F_CUSTOM, 0, read_api_keys, 0},
    {"trusted_proxies", F_CUSTOM, 0, read_proxies, 0},
};

/* `auth: none`, or a mapping with `oauth:` and/or `api_keys:` (at least one enabled). */
int tg_cy_read_auth(loader *L, const at *w, void *obj)
{
    tg_config *cfg = obj;
    auth_build b = {cfg, {0}};
    cfg->auth_where = tg_cy_position(L, w);
    if (w->node && fy_node_is_scalar(w->node)) {
        const char *s;
        if (tg_cy_string_value(L, w, &s) < 0)
            return -1;
        if (strcmp(s, "none") != 0)
            return tg_cy_fail(L, w, "expected `none` or a mapping with oauth / api_keys, found \"%s\"",
                              tg_cy_raw_text(L, w));
        return 0;
    }
    if (tg_cy_walk_map(L, w, auth_fields, sizeof auth_fields / sizeof *auth_fields, &b, 0) < 0)
        return -1;
    if (!cfg->auth.oauth_enabled && !cfg->auth.api_keys_enabled)
        return tg_cy_fail(L, w, "neither oauth nor api_keys is enabled; write `auth: none` to run "
                          "without authentication");
    if (cfg->auth.oauth_enabled && cfg->auth.n_issuers == 0) {
        at iw = tg_cy_find_key(L, &b.oauth, "issuers");
        if (!iw.where)
            return tg_cy_missing(L, &b.oauth, "issuers", " (who may issue tokens for toolgate)");
        return tg_cy_fail(L, &iw, "at least one issuer is required when oauth is enabled");
    }
    cfg->auth_enabled = 1;
    return 0;
}

/* ------------------------------------------------------------------ defaults */

int tg_cy_runtime_defaults(loader *L, tg_config *cfg)
{
    char host[HOST_NAME_MAX + 1];
    cfg->store.url = tg_arena_sprintf(L->a, "sqlite:%s/toolgate.db", L->dir);
    /* Explicit here, not tg_auth's "0 = default": `keys rotate` reads it, and an
     * explicit `rotation_overlap: 0` must mean "the old secret stops now". */
    cfg->auth.api_key_rotation_overlap_s = 86400;
    if (gethostname(host, sizeof host) < 0 || !host[0]) {
        at root = {NULL, NULL, ""};
        return tg_cy_fail(L, &root, "cannot read the host name for the default audit.instance_id; "
                          "set audit.instance_id");
    }
    host[HOST_NAME_MAX] = '\0';
    cfg->audit.instance_id = tg_arena_strdup(L->a, host);
    return 0;
}

void tg_cy_finish_runtime(tg_config *cfg)
{
    cfg->audit.store_url = cfg->store.url;
    cfg->auth.resource = cfg->auth_audience ? cfg->auth_audience : cfg->public_url;
}
