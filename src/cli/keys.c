/*
 * keys.c — `toolgate keys create|list|revoke|rotate`: API keys managed in the store the
 * configuration names (`store:`), through the key store of src/auth (keystore_sql.c),
 * so the gateway reads exactly the keys this command writes.
 *
 * A secret exists only in the output of `create` and `rotate`: it goes to stdout alone
 * on its line (KEY=$(toolgate keys create …) works) and the note that it cannot be shown
 * again goes to stderr. Nothing else ever prints or logs it; the store keeps a hash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/tg_auth.h"
#include "cli/cli_int.h"
#include "config/tg_config.h"
#include "store/tg_store.h"

const char tg_cli_keys_usage[] =
    "usage: toolgate keys create --config FILE --agent ID [--delegator USER]\n"
    "                            [--groups G1,G2] [--ttl DURATION] [--cidr CIDR,...]\n"
    "                            [--note TEXT]\n"
    "       toolgate keys list   --config FILE\n"
    "       toolgate keys revoke --config FILE ID\n"
    "       toolgate keys rotate --config FILE [--overlap DURATION] ID\n"
    "\n"
    "API keys (Authorization: Bearer tgk_<id>_<secret>) kept in the store of FILE\n"
    "(`store:`, default sqlite:toolgate.db next to FILE). The store keeps only a hash:\n"
    "create and rotate print the secret once, on stdout, and it cannot be shown again.\n"
    "\n"
    "  create   a key for agent ID, acting for USER, with groups G1,G2; --ttl 30d (units\n"
    "           s m h d; required when auth.api_keys.max_lifetime is set, and at most\n"
    "           that); --cidr limits the client addresses (\"10.1.2.3\" means /32)\n"
    "  list     every key: id, agent, delegator, groups, CIDRs, created, expires,\n"
    "           last use and state (active, rotating, revoked, expired); never secrets\n"
    "  revoke   the key stops working at once; revoking again keeps the first time\n"
    "  rotate   a new secret; the old one keeps working for --overlap (default\n"
    "           auth.api_keys.rotation_overlap, 1d; 0 stops it now)\n"
    "\n"
    "Keys are checked by the gateway when auth.api_keys is enabled\n"
    "(docs/authentication.md).\n"
    "\n"
    "exit status: 0 ok, 1 failure (configuration, store, no such key), 2 usage error.\n";

typedef struct keys_opts {
    const char *config, *agent, *delegator, *groups, *ttl, *cidr, *note, *overlap, *id;
} keys_opts;

/* The subcommands, as bits so an option can name those that take it (tg_cli_flag). */
enum { SUB_CREATE = 1, SUB_LIST = 2, SUB_REVOKE = 4, SUB_ROTATE = 8 };
static const char *const sub_names[] = {"create", "list", "revoke", "rotate"};

static const tg_cli_flag keys_flags[] = {
    {"--config", offsetof(keys_opts, config), SUB_CREATE | SUB_LIST | SUB_REVOKE | SUB_ROTATE},
    {"--agent", offsetof(keys_opts, agent), SUB_CREATE},
    {"--delegator", offsetof(keys_opts, delegator), SUB_CREATE},
    {"--groups", offsetof(keys_opts, groups), SUB_CREATE},
    {"--ttl", offsetof(keys_opts, ttl), SUB_CREATE},
    {"--cidr", offsetof(keys_opts, cidr), SUB_CREATE},
    {"--note", offsetof(keys_opts, note), SUB_CREATE},
    {"--overlap", offsetof(keys_opts, overlap), SUB_ROTATE},
};

/* 0, or 2 after a usage error; *help set for -h/--help. sub_bit: argv[1]'s SUB_* bit. */
static int parse_keys(int argc, char **argv, unsigned sub_bit, keys_opts *o, int *help)
{
    const char *sub = argv[1];
    int wants_id = (sub_bit & (SUB_REVOKE | SUB_ROTATE)) != 0;
    char cmd[32];
    snprintf(cmd, sizeof cmd, "keys %s", sub);
    for (int i = 2; i < argc; i++) {
        if (tg_cli_is_help(argv[i])) {
            *help = 1;
            return 0;
        }
        int r = tg_cli_take_flag(keys_flags, sizeof keys_flags / sizeof *keys_flags, sub_bit,
                                 cmd, tg_cli_keys_usage, argc, argv, &i, o);
        if (r == 2)
            return 2;
        if (r == 1)
            continue;
        if (wants_id && !o->id && argv[i][0] != '-')
            o->id = argv[i];
        else
            return tg_cli_usage_error(tg_cli_keys_usage, "unexpected argument \"%s\"", argv[i]);
    }
    if (!o->config)
        return tg_cli_usage_error(tg_cli_keys_usage, "%s is required", "--config FILE");
    if (wants_id && !o->id)
        return tg_cli_usage_error(tg_cli_keys_usage, "keys %s needs the key ID", sub);
    if (sub_bit == SUB_CREATE && !o->agent)
        return tg_cli_usage_error(tg_cli_keys_usage, "%s is required", "--agent ID");
    return 0;
}

/* "a,b,c" → array in a; empty items are a usage mistake. */
static int split_list(tg_arena *a, const char *flag, const char *s, const char ***out, size_t *n)
{
    size_t count = 1, i = 0;
    *out = NULL;
    *n = 0;
    if (!s)
        return 0;
    for (const char *p = s; *p; p++)
        count += *p == ',';
    const char **v = tg_arena_calloc(a, count, sizeof *v);
    for (const char *p = s;; p++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0)
            return tg_cli_usage_error(tg_cli_keys_usage, "%s: empty item in \"%s\"", flag, s);
        v[i++] = tg_arena_strndup(a, p, len);
        if (!end)
            break;
        p = end;
    }
    *out = v;
    *n = count;
    return 0;
}

static int parse_duration_flag(const char *flag, const char *s, int64_t *out)
{
    const char *why;
    if (tg_config_parse_seconds(s, out, &why) < 0)
        return tg_cli_usage_error(tg_cli_keys_usage, "%s: %s, found \"%s\"", flag, why, s);
    return 0;
}

/* "2026-03-01T12:00Z" (UTC), or `none` for 0. */
static const char *when(int64_t t, const char *none, char buf[32])
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (!t || !gmtime_r(&tt, &tm))
        return none;
    strftime(buf, 32, "%Y-%m-%dT%H:%MZ", &tm);
    return buf;
}

static const char *state(const tg_apikey_record *r, int64_t now)
{
    if (r->revoked_at)
        return "revoked";
    if (r->expires && now >= r->expires)
        return "expired";
    if (r->prev_expires && now < r->prev_expires)
        return "rotating";
    return "active";
}

static char *join(tg_arena *a, const char **v, size_t n)
{
    tg_buf b = TG_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        tg_buf_printf(&b, "%s%s", i ? "," : "", v[i]);
    char *s = tg_arena_strdup(a, n ? b.data : "-");
    tg_buf_free(&b);
    return s;
}

static int keys_list(const tg_apikey_store *ks, tg_arena *a, int64_t now, tg_error *err)
{
    tg_apikey_record *recs;
    size_t n;
    char t1[32], t2[32], t3[32];
    if (ks->list(ks->ctx, a, &recs, &n, err) < 0)
        return -1;
    printf("%-12s  %-16s  %-12s  %-16s  %-18s  %-17s  %-17s  %-17s  %s\n", "ID", "AGENT",
           "DELEGATOR", "GROUPS", "CIDRS", "CREATED", "EXPIRES", "LAST USED", "STATE");
    for (size_t i = 0; i < n; i++) {
        const tg_apikey_record *r = &recs[i];
        printf("%-12s  %-16s  %-12s  %-16s  %-18s  %-17s  %-17s  %-17s  %s\n", r->id, r->agent,
               r->delegator ? r->delegator : "-", join(a, r->groups, r->n_groups),
               join(a, r->cidrs, r->n_cidrs), when(r->created, "-", t1),
               when(r->expires, "never", t2), when(r->last_used, "never", t3), state(r, now));
    }
    printf("%zu key%s\n", n, n == 1 ? "" : "s");
    return 0;
}

static int keys_create(const keys_opts *o, const tg_config *cfg, const tg_apikey_store *ks,
                       tg_arena *a, int64_t now, tg_error *err)
{
    tg_apikey_params p = {.agent = o->agent, .delegator = o->delegator, .note = o->note};
    tg_apikey_record rec;
    char token[TG_APIKEY_TOKEN_LEN + 1], t[32];
    if (split_list(a, "--groups", o->groups, &p.groups, &p.n_groups) ||
        split_list(a, "--cidr", o->cidr, &p.cidrs, &p.n_cidrs) ||
        (o->ttl && parse_duration_flag("--ttl", o->ttl, &p.ttl_s)))
        return 2;
    if (tg_apikey_create(&p, now, cfg->auth.api_key_max_lifetime_s, a, &rec, token, err) < 0)
        return 1;
    int rc = ks->put(ks->ctx, &rec, err);
    if (rc == 0) {
        printf("%s\n", token);
        fflush(stdout);
        fprintf(stderr, "API key %s created for agent %s (expires: %s). The secret above is "
                "shown only now and cannot be shown again.\n", rec.id, rec.agent,
                when(rec.expires, "never", t));
    }
    explicit_bzero(token, sizeof token);
    return rc < 0 ? 1 : 0;
}

static int keys_rotate(const keys_opts *o, const tg_config *cfg, const tg_apikey_store *ks,
                       int64_t now, tg_error *err)
{
    int64_t overlap = cfg->auth.api_key_rotation_overlap_s;
    char token[TG_APIKEY_TOKEN_LEN + 1], t[32];
    if (o->overlap && parse_duration_flag("--overlap", o->overlap, &overlap))
        return 2;
    if (tg_apikey_rotate(ks, o->id, now, overlap, token, err) < 0)
        return 1;
    printf("%s\n", token);
    fflush(stdout);
    explicit_bzero(token, sizeof token);
    if (overlap)
        fprintf(stderr, "API key %s rotated; the previous secret stays valid until %s. The new "
                "secret above is shown only now and cannot be shown again.\n", o->id,
                when(now + overlap, "-", t));
    else
        fprintf(stderr, "API key %s rotated; the previous secret no longer works. The new secret "
                "above is shown only now and cannot be shown again.\n", o->id);
    return 0;
}

static int keys_revoke(const keys_opts *o, const tg_apikey_store *ks, tg_arena *a, int64_t now,
                       tg_error *err)
{
    tg_apikey_record r;
    char t[32];
    if (tg_apikey_revoke(ks, o->id, now, err) < 0 || ks->get(ks->ctx, o->id, a, &r, err) != 1)
        return 1;
    printf("API key %s: revoked (since %s)\n", r.id, when(r.revoked_at, "-", t));
    return 0;
}

int tg_cli_keys(int argc, char **argv)
{
    keys_opts o = {0};
    int help = 0, status = 0;
    size_t s;
    if (argc < 2)
        return tg_cli_usage_error(tg_cli_keys_usage, "%s", "keys needs a subcommand");
    if (tg_cli_is_help(argv[1])) {
        fputs(tg_cli_keys_usage, stdout);
        return 0;
    }
    for (s = 0; s < sizeof sub_names / sizeof *sub_names && strcmp(sub_names[s], argv[1]) != 0; s++)
        ;
    if (s == sizeof sub_names / sizeof *sub_names)
        return tg_cli_usage_error(tg_cli_keys_usage, "unknown keys subcommand \"%s\"", argv[1]);
    if ((status = parse_keys(argc, argv, 1u << s, &o, &help)) != 0)
        return status;
    if (help) {
        fputs(tg_cli_keys_usage, stdout);
        return 0;
    }

    tg_error err = {{0}};
    tg_config *cfg = tg_config_load(o.config, &err);
    if (!cfg) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    tg_store *store = tg_store_open_opts(NULL, &cfg->store, &err);
    if (!store) {
        fprintf(stderr, "toolgate keys: %s\n", err.msg);
        tg_config_unref(cfg);
        return 1;
    }
    tg_apikey_store *ks = tg_apikey_sqlstore_new(store);
    tg_arena *a = tg_arena_new(0);
    int64_t now = (int64_t)time(NULL);
    if (s == 0 && !(cfg->auth_enabled && cfg->auth.api_keys_enabled))
        fprintf(stderr, "note: auth.api_keys is not enabled in %s: the gateway does not accept "
                "API keys until it is\n", o.config);
    switch (s) {
    case 0: status = keys_create(&o, cfg, ks, a, now, &err); break;
    case 1: status = keys_list(ks, a, now, &err) < 0; break;
    case 2: status = keys_revoke(&o, ks, a, now, &err); break;
    default: status = keys_rotate(&o, cfg, ks, now, &err); break;
    }
    if (status == 1)
        fprintf(stderr, "toolgate keys %s: %s\n", sub_names[s], err.msg);
    tg_arena_free(a);
    tg_apikey_sqlstore_free(ks);
    tg_store_close(store);
    tg_config_unref(cfg);
    return status;
}
