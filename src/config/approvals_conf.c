/*
 * approvals_conf.c — the `approvals:` section (issue 7; docs/approvals.md,
 * docs/configuration.md "approvals"): the hold / retry modes per tool or risk, expiry and
 * grant lifetimes, the approvers' keys and OAuth switch, the signed webhook. Read by the
 * loader (load.c) into tg_config.approvals; src/approvals compiles nothing further.
 *
 * Checks that depend on other sections (admin: must exist, auth.oauth for OAuth
 * approvers, upstream names in mode rules) run in tg_cy_finish_approvals once the whole
 * file is read, so the order of sections in the file does not matter; they find the
 * offending node again to report its position.
 */
#include <stdlib.h>
#include <string.h>

#include "config/config_int.h"
#include "config/yaml_int.h"

#define WEBHOOK_MAX_ATTEMPTS 100

/* ------------------------------------------------------------------ modes */

static int read_mode(loader *L, const at *w, tg_approval_mode *out)
{
    int m;
    if (tg_cy_two_words(L, w, "retry", TG_APPROVAL_RETRY, "hold", TG_APPROVAL_HOLD, &m) < 0)
        return -1;
    *out = (tg_approval_mode)m;
    return 0;
}

typedef struct rule_build {
    tg_approval_mode_rule r;
    bool has_mode;
} rule_build;

static int mr_risk(loader *L, const at *w, void *o)
{
    rule_build *b = o;
    const char *s;
    if (tg_cy_string_value(L, w, &s) < 0)
        return -1;
    if (strcmp(s, "read") == 0)
        b->r.risk = TG_RISK_READ;
    else if (strcmp(s, "write") == 0)
        b->r.risk = TG_RISK_WRITE;
    else if (strcmp(s, "high") == 0)
        b->r.risk = TG_RISK_HIGH;
    else
        return tg_cy_fail(L, w, "expected read, write or high, found \"%s\"", tg_cy_raw_text(L, w));
    return 0;
}
static int mr_upstream(loader *L, const at *w, void *o)
{
    return tg_cy_nonempty_string(L, w, &((rule_build *)o)->r.upstream);
}
static int mr_tool(loader *L, const at *w, void *o)
{
    return tg_cy_nonempty_string(L, w, &((rule_build *)o)->r.tool);
}
static int mr_mode(loader *L, const at *w, void *o)
{
    rule_build *b = o;
    b->has_mode = true;
    return read_mode(L, w, &b->r.mode);
}

static const field rule_fields[] = {
    {"risk", F_CUSTOM, 0, mr_risk, 0},
    {"upstream", F_CUSTOM, 0, mr_upstream, 0},
    {"tool", F_CUSTOM, 0, mr_tool, 0},
    {"mode", F_CUSTOM, 0, mr_mode, 0},
};

static int ap_modes(loader *L, const at *w, void *obj)
{
    tg_approvals_conf *c = obj;
    void *it = NULL;
    struct fy_node *item;
    size_t i = 0;
    if (!w->node || !fy_node_is_sequence(w->node))
        return tg_cy_fail(L, w, "expected a list of mode rules, found %s", tg_cy_what(w->node));
    tg_approval_mode_rule *v = tg_arena_calloc(L->a, (size_t)fy_node_sequence_item_count(w->node) + 1,
                                               sizeof *v);
    while ((item = fy_node_sequence_iterate(w->node, &it))) {
        at rw = tg_cy_at_index(L, w, item, i);
        rule_build b;
        memset(&b, 0, sizeof b);
        if (tg_cy_walk_map(L, &rw, rule_fields, sizeof rule_fields / sizeof *rule_fields, &b, 0) < 0)
            return -1;
        if (!b.has_mode)
            return tg_cy_missing(L, &rw, "mode", " (retry or hold)");
        if (!b.r.upstream && !b.r.tool && !b.r.risk)
            return tg_cy_fail(L, &rw, "a mode rule names a risk, an upstream, a tool, or several");
        b.r.where = tg_cy_position(L, &rw);
        v[i++] = b.r;
    }
    c->modes = v;
    c->nmodes = i;
    return 0;
}

static int ap_mode(loader *L, const at *w, void *obj)
{
    return read_mode(L, w, &((tg_approvals_conf *)obj)->mode);
}

static int ap_inbox(loader *L, const at *w, void *obj)
{
    tg_approvals_conf *c = obj;
    const char *why;
    if (tg_cy_nonempty_string(L, w, &c->inbox_url) < 0)
        return -1;
    if (tg_config_check_http_url(c->inbox_url, 0, L->tmp, NULL, &why) < 0)
        return tg_cy_fail(L, w, "%s, found \"%s\"", why, tg_cy_raw_text(L, w));
    return 0;
}

/* ------------------------------------------------------------------ approvers */

typedef struct key_build {
    tg_approver_key k;
    bool has_hash;
} key_build;

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int key_user(loader *L, const at *w, void *o)
{
    return tg_cy_nonempty_string(L, w, &((key_build *)o)->k.user);
}
static int key_groups(loader *L, const at *w, void *o)
{
    key_build *b = o;
    return tg_cy_string_list(L, w, NULL, &b->k.groups, &b->k.ngroups);
}
/* Never quotes the value in messages: it comes from a file that may hold secrets. */
static int key_hash(loader *L, const at *w, void *o)
{
    key_build *b = o;
    const char *s;
    if (tg_cy_string_value(L, w, &s) < 0)
        return -1;
    if (strlen(s) != 64)
        return tg_cy_fail(L, w, "expected the 64 hex digits of the key's SHA-256 (`toolgate "
                          "approvals keygen` prints them)");
    for (size_t i = 0; i < 32; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return tg_cy_fail(L, w, "expected the 64 hex digits of the key's SHA-256, found a "
                              "character that is not a hex digit");
        b->k.sha256[i] = (unsigned char)(hi << 4 | lo);
    }
    b->has_hash = true;
    return 0;
}

static const field key_fields[] = {
    {"user", F_CUSTOM, 0, key_user, 0},
    {"key_sha256", F_CUSTOM, 0, key_hash, 0},
    {"groups", F_CUSTOM, 0, key_groups, 0},
};

static int appr_keys(loader *L, const at *w, void *obj)
{
    tg_approvals_conf *c = obj;
    void *it = NULL;
    struct fy_node *item;
    size_t i = 0;
    if (!w->node || !fy_node_is_sequence(w->node))
        return tg_cy_fail(L, w, "expected a list of approver keys, found %s", tg_cy_what(w->node));
    tg_approver_key *v = tg_arena_calloc(L->a, (size_t)fy_node_sequence_item_count(w->node) + 1,
                                         sizeof *v);
    while ((item = fy_node_sequence_iterate(w->node, &it))) {
        at kw = tg_cy_at_index(L, w, item, i);
        key_build b;
        memset(&b, 0, sizeof b);
        if (tg_cy_walk_map(L, &kw, key_fields, sizeof key_fields / sizeof *key_fields, &b, 0) < 0)
            return -1;
        if (!b.k.user)
            return tg_cy_missing(L, &kw, "user", " (the approver's Cedar User id)");
        if (!b.has_hash)
            return tg_cy_missing(L, &kw, "key_sha256", " (from `toolgate approvals keygen`)");
        for (size_t j = 0; j < i; j++)
            if (memcmp(v[j].sha256, b.k.sha256, 32) == 0)
                return tg_cy_fail(L, &kw, "the same key is listed twice (also at %s)", v[j].where);
        b.k.where = tg_cy_position(L, &kw);
        v[i++] = b.k;
    }
    c->keys = v;
    c->nkeys = i;
    return 0;
}

static const field approver_fields[] = {
    {"oauth", F_BOOL, offsetof(tg_approvals_conf, oauth_approvers), NULL, 0},
    {"api_keys", F_CUSTOM, 0, appr_keys, 0},
};

static int ap_approvers(loader *L, const at *w, void *obj)
{
    return tg_cy_walk_map(L, w, approver_fields, sizeof approver_fields / sizeof *approver_fields,
                          obj, 0);
}

/* ------------------------------------------------------------------ webhook */

typedef struct hook_build {
    tg_approvals_conf *c;
    int allow_insecure;
    at url;
} hook_build;

static int wh_url(loader *L, const at *w, void *o)
{
    hook_build *b = o;
    b->url = *w;
    return tg_cy_nonempty_string(L, w, &b->c->webhook_url);
}
static int wh_secret(loader *L, const at *w, void *o)
{
    return tg_cy_nonempty_string(L, w, &((hook_build *)o)->c->webhook_secret);
}
static int wh_timeout(loader *L, const at *w, void *o)
{
    hook_build *b = o;
    const char *s, *why;
    bool plain;
    if (tg_cy_scalar(L, w, "a duration", &s, &plain) < 0)
        return -1;
    if (tg_config_parse_duration(s, &b->c->webhook_timeout_ms, &why) < 0)
        return tg_cy_fail(L, w, "%s, found \"%s\"", why, s);
    return 0;
}
static int wh_attempts(loader *L, const at *w, void *o)
{
    hook_build *b = o;
    const char *s, *why;
    bool plain;
    uint64_t n;
    if (tg_cy_scalar(L, w, "a number", &s, &plain) < 0)
        return -1;
    if (!plain)
        return tg_cy_fail(L, w, "expected a number, found a quoted string");
    if (tg_config_parse_count(s, WEBHOOK_MAX_ATTEMPTS, &n, &why) < 0)
        return tg_cy_fail(L, w, "%s, found \"%s\"", why, s);
    b->c->webhook_max_attempts = (unsigned)n;
    return 0;
}
static int wh_insecure(loader *L, const at *w, void *o)
{
    return tg_cy_bool(L, w, &((hook_build *)o)->allow_insecure);
}

static const field hook_fields[] = {
    {"url", F_CUSTOM, 0, wh_url, 0},
    {"secret", F_CUSTOM, 0, wh_secret, 0},
    {"timeout", F_CUSTOM, 0, wh_timeout, 0},
    {"max_attempts", F_CUSTOM, 0, wh_attempts, 0},
    {"allow_insecure", F_CUSTOM, 0, wh_insecure, 0},
};

static int ap_webhook(loader *L, const at *w, void *obj)
{
    hook_build b = {.c = obj};
    const char *host, *why;
    if (tg_cy_walk_map(L, w, hook_fields, sizeof hook_fields / sizeof *hook_fields, &b, 0) < 0)
        return -1;
    if (!b.c->webhook_url)
        return tg_cy_missing(L, w, "url", " (where the signed POSTs go)");
    if (!b.c->webhook_secret)
        return tg_cy_missing(L, w, "secret", " (the HMAC key, e.g. ${TOOLGATE_WEBHOOK_SECRET})");
    if (tg_config_check_http_url(b.c->webhook_url, 0, L->tmp, &host, &why) < 0)
        return tg_cy_fail(L, &b.url, "%s, found \"%s\"", why, tg_cy_raw_text(L, &b.url));
    if (strncmp(b.c->webhook_url, "http://", 7) == 0 && !b.allow_insecure) {
        size_t n = strlen(host);
        char *bare = host[0] == '[' && n > 2 ? tg_arena_strndup(L->tmp, host + 1, n - 2)
                                             : (char *)host;
        if (!tg_config_is_loopback(bare) && strcmp(bare, "localhost") != 0)
            return tg_cy_fail(L, &b.url, "plain http:// would send approval details unencrypted: "
                              "use https://, a loopback address, or `allow_insecure: true`");
    }
    return 0;
}

/* ------------------------------------------------------------------ the section */

static const field approvals_fields[] = {
    {"mode", F_CUSTOM, 0, ap_mode, 0},
    {"modes", F_CUSTOM, 0, ap_modes, 0},
    {"expiry", F_MS64, offsetof(tg_approvals_conf, expiry_ms), NULL, 0},
    {"grant_ttl", F_MS64, offsetof(tg_approvals_conf, grant_ttl_ms), NULL, 0},
    {"hold_timeout", F_MS64, offsetof(tg_approvals_conf, hold_timeout_ms), NULL, 0},
    {"progress_interval", F_MS64, offsetof(tg_approvals_conf, progress_interval_ms), NULL, 0},
    {"inbox_url", F_CUSTOM, 0, ap_inbox, 0},
    {"approvers", F_CUSTOM, 0, ap_approvers, 0},
    {"webhook", F_CUSTOM, 0, ap_webhook, 0},
};

int tg_cy_read_approvals(loader *L, const at *w, void *obj)
{
    tg_config *cfg = obj;
    tg_approvals_conf *c = &cfg->approvals;
    c->where = tg_cy_position(L, w);
    c->mode = TG_APPROVAL_RETRY;
    c->expiry_ms = 15 * 60 * 1000;
    c->grant_ttl_ms = 15 * 60 * 1000;
    c->hold_timeout_ms = 120 * 1000;
    c->progress_interval_ms = 5 * 1000;
    c->webhook_timeout_ms = 5 * 1000;
    c->webhook_max_attempts = 6;
    return tg_cy_walk_map(L, w, approvals_fields,
                          sizeof approvals_fields / sizeof *approvals_fields, c, 0);
}

/* The node at a path of keys under w (NULL node when a step is absent). */
static at find_path(loader *L, const at *w, const char *const *keys, size_t n)
{
    at cur = *w;
    for (size_t i = 0; i < n && cur.node; i++) {
        if (!fy_node_is_mapping(cur.node))
            return (at){NULL, NULL, NULL};
        cur = tg_cy_find_key(L, &cur, keys[i]);
    }
    return cur;
}

int tg_cy_finish_approvals(loader *L, const at *root, tg_config *cfg)
{
    tg_approvals_conf *c = &cfg->approvals;
    if (!c->where)
        return 0;
    at sec = tg_cy_find_key(L, root, "approvals");
    if (!cfg->admin.where)
        return tg_cy_fail(L, &sec, "approvers act through the admin listener: add an `admin:` "
                          "section (e.g. admin: {listen: 127.0.0.1:9090})");
    if (c->oauth_approvers && !cfg->auth.oauth_enabled) {
        at o = find_path(L, &sec, (const char *[]){"approvers", "oauth"}, 2);
        return tg_cy_fail(L, o.node ? &o : &sec, "OAuth approvers need an `auth.oauth` section "
                          "(their tokens are checked against its issuers)");
    }
    at modes = tg_cy_find_key(L, &sec, "modes");
    for (size_t i = 0; i < c->nmodes; i++) {
        if (!c->modes[i].upstream || tg_config_upstream(cfg, c->modes[i].upstream))
            continue;
        at item = tg_cy_at_index(L, &modes, fy_node_sequence_get_by_index(modes.node, (int)i), i);
        at up = tg_cy_find_key(L, &item, "upstream");
        return tg_cy_fail(L, &up, "no upstream is named \"%s\"", c->modes[i].upstream);
    }
    if (!c->inbox_url) {
        const char *h = cfg->admin.listen_host;
        bool v6 = strchr(h, ':') != NULL;
        c->inbox_url = tg_arena_sprintf(L->a, "http://%s%s%s:%u/inbox", v6 ? "[" : "", h,
                                        v6 ? "]" : "", (unsigned)cfg->admin.listen_port);
    }
    return 0;
}
