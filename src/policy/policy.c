/*
 * policy.c — the decision layer (tg_policy.h): loads the policy set and entities, builds
 * each call's Cedar request per the product brief's model, and maps Cedar's answer to
 * allow / deny / approval_required with reason codes.
 *
 * Three policy sets are parsed from the same files at load:
 *   - `set`: every policy, the one that decides;
 *   - `permits`: only the permit policies, cut from the source text by a splitter whose
 *     result is checked against the parser's count. It answers "would this call be
 *     allowed with the satisfied @approval forbids lifted?" (the only forbids that can be
 *     satisfied at that point are @approval ones, so lifting them leaves the permits);
 *   - `vis`: for tools/list, each permit reduced to its principal and action scope and
 *     each unconditional forbid (no when/unless, any resource) kept, generated from the
 *     engine's JSON form (EST) of the policies. Allow there = the tool is visible.
 *
 * Entities: the entities file is split at load. Agent and Action entities are kept aside
 * as templates, everything else goes to the Cedar store. Per request, the principal
 * Agent::"<agent>" and the action are overlay entities (the engine refuses an overlay
 * that duplicates a store entity), merged from their template when the file has one:
 * static attributes and parents from the file, plus the identity's (which win on the
 * attribute names toolgate sets). Parents of the resource that are not in the store are
 * added as overlay entities, each inside the ones after it.
 */
#include "policy/policy_int.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cedar/cedar.h"

#define POLICY_FILE_MAX (16 * 1024 * 1024)
#define META_MAX 1024   /* longest intent / workflow / ticket taken from _meta */

/* An Agent or Action entity of the file: what requests merge into their principal and
 * action entities. The direct road uses the conversion made here once; the JSON road the
 * file's JSON. Invariants: keys[i] / jvals[i] / vals[i] are attribute i (vals[i] its Cedar
 * value); jparents[i] is parent i with any {"__entity":..} unwrapped, ptype[i] / pid[i]
 * its type and id when it is exactly {"type","id"} of strings (else NULL), qid[i] its id
 * when that is a string (add_actions climbs through it); direct is false when anything of
 * the template is something only the JSON road can judge (then it decides). */
typedef struct tmpl {
    const json_t *e;
    size_t nattrs, nparents;
    const char **keys;
    const json_t **jvals;
    const cedar_value **vals;
    const json_t **jparents;
    const char **ptype, **pid, **qid;
    size_t *ptlen, *pidlen;
    bool direct;
} tmpl;

/* Invariants: permit_idx[k] is the index in `set` of policy k of `permits`; tz[i] is the
 * zone of cfg->policy.windows[i]; agents/actions map an entity id to the index in tmpls of
 * its template from the file; tmpl_arena holds the templates' converted values. */
struct tg_policy {
    tg_config *cfg;
    tg_catalog *cat;
    cedar_policy_set *set, *permits, *vis;
    size_t *permit_idx;
    cedar_store *store;
    json_t *agents, *actions;
    tmpl *tmpls;
    size_t ntmpls;
    tg_arena *tmpl_arena;
    json_t *store_ents;     /* the entities given to `store` (an approver's extra groups
                               need a store where their User entity has more parents) */
    tg_tz **tz;
    char version[65];
};

tg_catalog *tg_policy_catalog(const tg_policy *p)
{
    return p->cat;
}

const char *tg_policy_version(const tg_policy *p)
{
    return p->version;
}

int tg_policy_deny_as_error(const tg_policy *p)
{
    return p->cfg->policy.deny_as_error;
}

int tg_policy_is_shadow(const tg_policy *p, const char *upstream, const char *upstream_tool)
{
    const tg_policy_conf *pc = &p->cfg->policy;
    int shadow = pc->shadow;
    for (size_t i = 0; i < pc->noverrides; i++) {
        const tg_mode_override *o = &pc->overrides[i];
        if ((!o->upstream || (upstream && strcmp(o->upstream, upstream) == 0)) &&
            (!o->tool || (upstream_tool && tg_catalog_glob_match(o->tool, upstream_tool))))
            shadow = o->shadow;
    }
    return shadow;
}

const char *tg_decision_name(tg_decision_kind d)
{
    return d == TG_DECISION_ALLOW ? "allow" : d == TG_DECISION_APPROVAL ? "approval_required"
                                                                        : "deny";
}

void tg_policy_free(tg_policy *p)
{
    if (!p)
        return;
    cedar_policy_set_free(p->set);
    cedar_policy_set_free(p->permits);
    cedar_policy_set_free(p->vis);
    cedar_store_free(p->store);
    free(p->permit_idx);
    json_decref(p->agents);
    json_decref(p->actions);
    for (size_t i = 0; i < p->ntmpls; i++)
        json_decref((json_t *)p->tmpls[i].e);
    free(p->tmpls);
    if (p->tmpl_arena)
        tg_arena_free(p->tmpl_arena);
    json_decref(p->store_ents);
    for (size_t i = 0; p->tz && i < p->cfg->policy.nwindows; i++)
        tg_tz_free(p->tz[i]);
    free(p->tz);
    tg_catalog_free(p->cat);
    tg_config_unref(p->cfg);
    free(p);
}

/* ------------------------------------------------------------------ text helpers */

/* A Cedar string literal. */
static void cedar_str(tg_buf *b, const char *s)
{
    tg_buf_appends(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            tg_buf_printf(b, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            tg_buf_printf(b, "\\u{%x}", c);
        else
            tg_buf_append(b, s, 1);
    }
    tg_buf_appends(b, "\"");
}

static void json_str(tg_buf *b, const char *s)
{
    tg_buf_json_string(b, s, strlen(s));
}

/* {"type":T,"id":I} */
static void json_uid(tg_buf *b, const char *type, const char *id)
{
    tg_buf_appends(b, "{\"type\":");
    json_str(b, type);
    tg_buf_appends(b, ",\"id\":");
    json_str(b, id);
    tg_buf_appends(b, "}");
}

static void json_entity_ref(tg_buf *b, const char *type, const char *id)
{
    tg_buf_appends(b, "{\"__entity\":");
    json_uid(b, type, id);
    tg_buf_appends(b, "}");
}

static int read_whole(const char *path, tg_buf *out, tg_error *err)
{
    FILE *fp = fopen(path, "re");
    char chunk[65536];
    size_t n;
    if (!fp)
        return tg_error_set(err, "%s: cannot open: %s", path, strerror(errno));
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0) {
        tg_buf_append(out, chunk, n);
        if (out->len > POLICY_FILE_MAX) {
            fclose(fp);
            return tg_error_set(err, "%s: larger than 16 MiB", path);
        }
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad)
        return tg_error_set(err, "%s: read error", path);
    tg_buf_append(out, "", 0);
    return 0;
}

/* ------------------------------------------------------------------ loading policies */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of the *.cedar files of dir, sorted bytewise. */
static char **list_cedar(const char *dir, size_t *n, tg_error *err)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t cap = 16;
    char **names = malloc(cap * sizeof *names);
    if (!d) {
        free(names);
        tg_error_set(err, "%s: cannot open directory: %s", dir, strerror(errno));
        return NULL;
    }
    *n = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len <= 6 || strcmp(e->d_name + len - 6, ".cedar") != 0 || e->d_name[0] == '.')
            continue;
        if (*n == cap && !(names = realloc(names, (cap *= 2) * sizeof *names)))
            abort();
        if (!(names[(*n)++] = strdup(e->d_name)))
            abort();
    }
    closedir(d);
    qsort(names, *n, sizeof *names, cmp_names);
    return names;
}

/* Cuts policy text at each top-level ';' (outside strings and // comments): Cedar uses
 * ';' only to end a policy. Calls fn for each policy's text. Returns the count. */
typedef void (*chunk_fn)(void *ctx, size_t k, const char *s, size_t n);

static size_t split_policies(const char *t, size_t n, chunk_fn fn, void *ctx)
{
    size_t start = 0, count = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i] == '"') {
            for (i++; i < n && t[i] != '"'; i++)
                if (t[i] == '\\')
                    i++;
        } else if (t[i] == '/' && i + 1 < n && t[i + 1] == '/') {
            while (i < n && t[i] != '\n')
                i++;
        } else if (t[i] == ';') {
            fn(ctx, count++, t + start, i + 1 - start);
            start = i + 1;
        }
    }
    return count;
}

typedef struct permit_cut {
    const cedar_policy_set *set;
    size_t base;        /* index in `set` of the file's first policy */
    tg_buf *text;       /* permit policies' text */
    size_t *idx;        /* → permit_idx */
    size_t nidx;
} permit_cut;

static void take_permit(void *ctx, size_t k, const char *s, size_t n)
{
    permit_cut *pc = ctx;
    if (pc->base + k >= cedar_policy_count(pc->set) ||
        cedar_policy_effect(pc->set, pc->base + k) != CEDAR_PERMIT)
        return;
    tg_buf_append(pc->text, s, n);
    tg_buf_appends(pc->text, "\n");
    pc->idx[pc->nidx++] = pc->base + k;
}

/* Parses every file (per-file positions), the whole set, and the permit-only set. */
static int load_policies(tg_policy *p, const char *dir, tg_buf *version_input, tg_error *err)
{
    size_t nfiles = 0;
    char **names = list_cedar(dir, &nfiles, err);
    tg_buf all = TG_BUF_INIT, permits = TG_BUF_INIT;
    tg_buf *texts = calloc(nfiles ? nfiles : 1, sizeof *texts);
    size_t *counts = calloc(nfiles ? nfiles : 1, sizeof *counts);
    int rc = names && texts && counts ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < nfiles; i++) {
        char *path = NULL;
        if (asprintf(&path, "%s/%s", dir, names[i]) < 0)
            abort();
        rc = read_whole(path, &texts[i], err);
        if (rc == 0) {
            tg_error perr;
            cedar_policy_set *one = cedar_policy_set_parse(texts[i].data, texts[i].len, &perr);
            if (!one) {
                rc = tg_error_set(err, "%s:%s", path, perr.msg);
            } else {
                counts[i] = cedar_policy_count(one);
                cedar_policy_set_free(one);
            }
        }
        free(path);
        if (rc == 0) {
            tg_buf_printf(version_input, "%s", names[i]);
            tg_buf_append(version_input, "", 1);
            tg_buf_append(version_input, texts[i].data, texts[i].len);
            tg_buf_append(version_input, "", 1);
            tg_buf_append(&all, texts[i].data, texts[i].len);
            tg_buf_appends(&all, "\n");
        }
    }
    if (rc == 0) {
        tg_error perr;
        p->set = cedar_policy_set_parse(all.data ? all.data : "", all.len, &perr);
        if (!p->set)
            rc = tg_error_set(err, "%s: policies parse alone but not together: %s", dir, perr.msg);
    }
    /* Policy ids are what reasons and audit records name: they must be unique. */
    size_t total = p->set ? cedar_policy_count(p->set) : 0;
    for (size_t i = 0; rc == 0 && i < total; i++)
        for (size_t j = 0; rc == 0 && j < i; j++)
            if (strcmp(cedar_policy_id(p->set, i), cedar_policy_id(p->set, j)) == 0)
                rc = tg_error_set(err, "%s: two policies have the id \"%s\"; give each a unique "
                                  "@id(\"...\")", dir, cedar_policy_id(p->set, i));
    if (rc == 0) {
        p->permit_idx = calloc(total ? total : 1, sizeof *p->permit_idx);
        permit_cut pc = {p->set, 0, &permits, p->permit_idx, 0};
        for (size_t i = 0; rc == 0 && i < nfiles; i++) {
            size_t cut = split_policies(texts[i].data, texts[i].len, take_permit, &pc);
            if (cut != counts[i])
                rc = tg_error_set(err, "%s/%s: found %zu policies but cut %zu at ';' — please "
                                  "report this file", dir, names[i], counts[i], cut);
            pc.base += counts[i];
        }
        if (rc == 0) {
            tg_error perr;
            p->permits = cedar_policy_set_parse(permits.data ? permits.data : "", permits.len,
                                                &perr);
            if (!p->permits || cedar_policy_count(p->permits) != pc.nidx)
                rc = tg_error_set(err, "%s: cannot isolate the permit policies%s%s", dir,
                                  p->permits ? "" : ": ", p->permits ? "" : perr.msg);
        }
    }
    for (size_t i = 0; i < nfiles; i++) {
        free(names ? names[i] : NULL);
        if (texts)
            tg_buf_free(&texts[i]);
    }
    free(names);
    free(texts);
    free(counts);
    tg_buf_free(&all);
    tg_buf_free(&permits);
    return rc;
}

/* ------------------------------------------------------------------ visibility set */

static void scope_uid(tg_buf *b, const json_t *uid)
{
    tg_buf_appends(b, json_string_value(json_object_get(uid, "type")));
    tg_buf_appends(b, "::");
    cedar_str(b, json_string_value(json_object_get(uid, "id")));
}

/* The principal or action scope of an EST policy as Cedar text; -1 for a template slot
 * (an unlinked template never applies). */
static int scope_text(tg_buf *b, const char *var, const json_t *sc)
{
    const char *op = json_string_value(json_object_get(sc, "op"));
    const json_t *ent = json_object_get(sc, "entity");
    tg_buf_appends(b, var);
    if (json_object_get(sc, "slot"))
        return -1;
    if (strcmp(op, "All") == 0)
        return 0;
    if (strcmp(op, "is") == 0) {
        const json_t *in = json_object_get(sc, "in");
        tg_buf_printf(b, " is %s", json_string_value(json_object_get(sc, "entity_type")));
        if (in && json_object_get(in, "slot"))
            return -1;
        if (in) {
            tg_buf_appends(b, " in ");
            scope_uid(b, json_object_get(in, "entity"));
        }
        return 0;
    }
    if (json_object_get(sc, "entities")) {
        size_t i;
        json_t *u;
        tg_buf_appends(b, " in [");
        json_array_foreach(json_object_get(sc, "entities"), i, u) {
            if (i)
                tg_buf_appends(b, ", ");
            scope_uid(b, u);
        }
        tg_buf_appends(b, "]");
        return 0;
    }
    tg_buf_printf(b, " %s ", op);
    scope_uid(b, ent);
    return 0;
}

static int build_vis(tg_policy *p, tg_error *err)
{
    tg_buf est = TG_BUF_INIT, text = TG_BUF_INIT;
    tg_error perr;
    cedar_policy_set_est(p->set, &est);
    json_t *arr = tg_json_parse(est.data, est.len, 512, &perr);
    tg_buf_free(&est);
    if (!arr)
        return tg_error_set(err, "policies: cannot analyse scopes for tools/list (%s)", perr.msg);
    size_t i;
    json_t *pol;
    tg_buf_append(&text, "", 0);
    json_array_foreach(arr, i, pol) {
        bool permit = strcmp(json_string_value(json_object_get(pol, "effect")), "permit") == 0;
        const json_t *res = json_object_get(pol, "resource");
        bool unconditional = json_array_size(json_object_get(pol, "conditions")) == 0 &&
                             strcmp(json_string_value(json_object_get(res, "op")), "All") == 0;
        if (!permit && !unconditional)
            continue;
        size_t mark = text.len;
        tg_buf_appends(&text, permit ? "permit (" : "forbid (");
        int ok = scope_text(&text, "principal", json_object_get(pol, "principal"));
        tg_buf_appends(&text, ", ");
        if (ok == 0)
            ok = scope_text(&text, "action", json_object_get(pol, "action"));
        tg_buf_appends(&text, ", resource);\n");
        if (ok < 0)
            text.len = mark;
    }
    json_decref(arr);
    p->vis = cedar_policy_set_parse(text.data, text.len, &perr);
    tg_buf_free(&text);
    if (!p->vis)
        return tg_error_set(err, "policies: scope analysis produced invalid text (%s)", perr.msg);
    return 0;
}

/* ------------------------------------------------------------------ entities */

static const json_t *entity_uid(const json_t *e)
{
    const json_t *uid = json_object_get(e, "uid");
    const json_t *esc = json_object_get(uid, "__entity");
    return esc ? esc : uid;
}

/* A parent uid as written in the entities file: {"__entity": uid} or the uid itself. */
static const json_t *unwrap_entity(const json_t *u)
{
    const json_t *x = json_object_get(u, "__entity");
    return x ? x : u;
}

static const tmpl *find_tmpl(const tg_policy *p, const json_t *map, const char *id)
{
    const json_t *i = json_object_get(map, id);
    return i ? &p->tmpls[json_integer_value(i)] : NULL;
}

/* Fills t from entity e of the file (see tmpl). */
static void make_tmpl(tg_arena *a, const json_t *e, tmpl *t)
{
    const json_t *attrs = json_object_get(e, "attrs"), *parents = json_object_get(e, "parents");
    size_t na = json_object_size(attrs), np = json_array_size(parents), i = 0;
    const char *k;
    json_t *v;
    tg_buf text = TG_BUF_INIT;
    memset(t, 0, sizeof *t);
    t->e = json_incref((json_t *)e);   /* everything below points into it */
    t->direct = (!attrs || json_is_object(attrs)) && (!parents || json_is_array(parents));
    t->keys = tg_arena_calloc(a, na + 1, sizeof *t->keys);
    t->jvals = tg_arena_calloc(a, na + 1, sizeof *t->jvals);
    t->vals = tg_arena_calloc(a, na + 1, sizeof *t->vals);
    json_object_foreach((json_t *)attrs, k, v) {
        tg_error err;
        tg_buf_reset(&text);
        tg_json_dump_buf(v, &text);   /* the very text the JSON road writes */
        t->keys[i] = k;
        t->jvals[i] = v;
        t->vals[i] = cedar_attr_value_parse(a, text.data, text.len, &err);
        t->direct = t->direct && t->vals[i];
        i++;
    }
    tg_buf_free(&text);
    t->nattrs = i;
    t->nparents = np;
    t->jparents = tg_arena_calloc(a, np + 1, sizeof *t->jparents);
    t->ptype = tg_arena_calloc(a, np + 1, sizeof *t->ptype);
    t->pid = tg_arena_calloc(a, np + 1, sizeof *t->pid);
    t->qid = tg_arena_calloc(a, np + 1, sizeof *t->qid);
    t->ptlen = tg_arena_calloc(a, np + 1, sizeof *t->ptlen);
    t->pidlen = tg_arena_calloc(a, np + 1, sizeof *t->pidlen);
    json_array_foreach(parents, i, v) {
        const json_t *x = unwrap_entity(v);
        const json_t *ty = json_object_get(x, "type"), *id = json_object_get(x, "id");
        t->jparents[i] = x;
        t->qid[i] = json_string_value(id);
        if (json_object_size(x) == 2 && json_is_string(ty) && json_is_string(id)) {
            t->ptype[i] = json_string_value(ty);
            t->ptlen[i] = json_string_length(ty);
            t->pid[i] = json_string_value(id);
            t->pidlen[i] = json_string_length(id);
        } else {
            t->direct = false;
        }
    }
}

static int load_entities(tg_policy *p, const char *path, tg_buf *version_input, tg_error *err)
{
    tg_buf text = TG_BUF_INIT;
    tg_error jerr;
    p->agents = json_object();
    p->actions = json_object();
    p->store_ents = json_array();
    if (!path) {
        p->store = cedar_store_load("[]", 2, err);
        return p->store ? 0 : -1;
    }
    if (read_whole(path, &text, err) < 0) {
        tg_buf_free(&text);
        return -1;
    }
    tg_buf_append(version_input, text.data, text.len);
    json_t *all = tg_json_parse(text.data, text.len, 128, &jerr);
    tg_buf_free(&text);
    if (!all || !json_is_array(all)) {
        json_decref(all);
        return tg_error_set(err, "%s: %s", path, all ? "expected a JSON array of entities"
                                                     : jerr.msg);
    }
    json_t *rest = p->store_ents;
    size_t i;
    json_t *e;
    int rc = 0;
    json_array_foreach(all, i, e) {
        const json_t *uid = entity_uid(e);
        const char *type = json_string_value(json_object_get(uid, "type"));
        const char *id = json_string_value(json_object_get(uid, "id"));
        if (!type || !id) {
            rc = tg_error_set(err, "%s: entity %zu has no uid {\"type\",\"id\"}", path, i);
            break;
        }
        if (strcmp(type, "Agent") == 0 || strcmp(type, "Action") == 0) {
            if (!p->tmpl_arena)
                p->tmpl_arena = tg_arena_new(0);
            if (!(p->tmpls = realloc(p->tmpls, (p->ntmpls + 1) * sizeof *p->tmpls)))
                abort();
            make_tmpl(p->tmpl_arena, e, &p->tmpls[p->ntmpls]);
            json_object_set_new(type[1] == 'g' ? p->agents : p->actions, id,
                                json_integer((json_int_t)p->ntmpls++));
        } else {
            json_array_append(rest, e);
        }
    }
    if (rc == 0) {
        char *dump = tg_json_dump(rest, NULL);
        tg_error serr;
        p->store = cedar_store_load(dump, strlen(dump), &serr);
        if (!p->store)
            rc = tg_error_set(err, "%s: %s", path, serr.msg);
        free(dump);
    }
    p->store_ents = rest;
    json_decref(all);
    return rc;
}

tg_policy *tg_policy_new(tg_config *cfg, tg_error *err)
{
    tg_policy *p = calloc(1, sizeof *p);
    tg_buf vin = TG_BUF_INIT;
    if (!p)
        abort();
    p->cfg = tg_config_ref(cfg);
    const tg_policy_conf *pc = &cfg->policy;
    int rc = (p->cat = tg_catalog_new(cfg, err)) ? 0 : -1;
    if (rc == 0 && pc->policies_dir) {
        rc = load_policies(p, pc->policies_dir, &vin, err);
    } else if (rc == 0) {
        p->set = cedar_policy_set_parse("", 0, err);
        p->permits = cedar_policy_set_parse("", 0, err);
        p->permit_idx = calloc(1, sizeof *p->permit_idx);
    }
    if (rc == 0)
        rc = build_vis(p, err);
    if (rc == 0)
        rc = load_entities(p, pc->entities_file, &vin, err);
    if (rc == 0 && !(p->tz = calloc(pc->nwindows + 1, sizeof *p->tz)))
        abort();
    for (size_t i = 0; rc == 0 && i < pc->nwindows; i++) {
        tg_error zerr;
        if (!(p->tz[i] = tg_tz_load(pc->windows[i].tz, &zerr)))
            rc = tg_error_set(err, "%s: change window %s: %s", pc->windows[i].where,
                              pc->windows[i].name, zerr.msg);
    }
    tg_sha256_hex(vin.data ? vin.data : "", vin.len, p->version);
    tg_buf_free(&vin);
    if (rc < 0) {
        tg_policy_free(p);
        return NULL;
    }
    return p;
}

/* ------------------------------------------------------------------ windows */

bool tg_policy_window_contains(const tg_change_window *w, const tg_tz *z, int64_t now_ms)
{
    int64_t t = tg_tz_floor_div(now_ms, 1000);
    int64_t local = t + tg_tz_offset(z, t);
    int64_t day = tg_tz_floor_div(local, 86400);
    unsigned minute = (unsigned)((local - day * 86400) / 60);
    unsigned wd = (unsigned)(((day + 3) % 7 + 7) % 7);   /* 0 = Monday; 1970-01-01 Thursday */
    unsigned yesterday = (wd + 6) % 7;
    if (w->from_min < w->to_min)
        return (w->days >> wd & 1) && minute >= w->from_min && minute < w->to_min;
    return ((w->days >> wd & 1) && minute >= w->from_min) ||
           ((w->days >> yesterday & 1) && minute < w->to_min);
}

static bool in_change_window(const tg_policy *p, int64_t now_ms)
{
    const tg_policy_conf *pc = &p->cfg->policy;
    for (size_t i = 0; i < pc->nin_change_window; i++)
        for (size_t j = 0; j < pc->nwindows; j++)
            if (strcmp(pc->windows[j].name, pc->in_change_window[i]) == 0 &&
                tg_policy_window_contains(&pc->windows[j], p->tz[j], now_ms))
                return true;
    return false;
}

/* ------------------------------------------------------------------ request pieces */

/* Where a request's pieces go. Two roads, one description of the request:
 *   - the JSON road (b NULL): each entity and the context are written as JSON text and
 *     given to cedar_request_add_entity_json / cedar_request_set_context_json. It is the
 *     reference: `toolgate decide` shows its text, and its errors are the ones reported;
 *   - the direct road (b set): the same calls build the values with the engine's builder,
 *     without text. A decision takes it first; when the builder refuses anything (or meets
 *     a template it cannot take: `refused`), the decision is redone on the JSON road, so
 *     errors and their messages are the JSON road's.
 * The em_* functions below write one Cedar value either way; JSON commas come from the
 * last byte written (none after '{', '[' or ':'). */
typedef struct rqb {
    tg_arena *a;
    cedar_request *rq;
    cedar_builder *b;      /* the direct road, or NULL */
    tg_buf cur;            /* JSON road: the entity or context being written */
    tg_buf list;           /* JSON road: the request-scoped entities as a JSON array */
    const char *principal_json;   /* JSON road: the principal entity's text (arena) */
    bool refused;
} rqb;

static void rqb_init(rqb *r, const tg_policy *p, cedar_store *store, bool direct, tg_arena *a)
{
    memset(r, 0, sizeof *r);
    r->a = a;
    r->rq = cedar_request_new(a, store ? store : p->store);
    r->b = direct ? cedar_builder_new(r->rq) : NULL;
    tg_buf_appends(&r->list, "[");
}

static void rqb_free(rqb *r)
{
    tg_buf_free(&r->cur);
    tg_buf_free(&r->list);
}

static void em_sep(rqb *r)
{
    char c = r->cur.len ? r->cur.data[r->cur.len - 1] : '{';
    if (c != '{' && c != '[' && c != ':')
        tg_buf_appends(&r->cur, ",");
}

static void em_str(rqb *r, const char *s, size_t n)
{
    if (r->b) {
        cedar_build_string(r->b, s, n);
        return;
    }
    em_sep(r);
    tg_buf_json_string(&r->cur, s, n);
}

static void em_key(rqb *r, const char *k)
{
    if (r->b) {
        cedar_build_key(r->b, k, strlen(k));
        return;
    }
    em_sep(r);
    json_str(&r->cur, k);
    tg_buf_appends(&r->cur, ":");
}

static void em_long(rqb *r, int64_t v)
{
    if (r->b) {
        cedar_build_long(r->b, v);
        return;
    }
    em_sep(r);
    tg_buf_append_i64(&r->cur, v);
}

static void em_bool(rqb *r, bool v)
{
    if (r->b) {
        cedar_build_bool(r->b, v);
        return;
    }
    em_sep(r);
    tg_buf_appends(&r->cur, v ? "true" : "false");
}

/* Opens ('{' record, '[' set) or closes ('}', ']') a container. */
static void em_open(rqb *r, char c)
{
    if (r->b) {
        if (c == '{')
            cedar_build_record_begin(r->b);
        else
            cedar_build_set_begin(r->b);
        return;
    }
    em_sep(r);
    tg_buf_append(&r->cur, &c, 1);
}

static void em_close(rqb *r, char c)
{
    if (r->b) {
        if (c == '}')
            cedar_build_record_end(r->b);
        else
            cedar_build_set_end(r->b);
        return;
    }
    tg_buf_append(&r->cur, &c, 1);
}

/* An entity reference {"__entity":{"type","id"}}. */
static void em_ref(rqb *r, const char *type, const char *id)
{
    if (r->b) {
        cedar_build_entity_ref(r->b, type, strlen(type), id, strlen(id));
        return;
    }
    em_sep(r);
    json_entity_ref(&r->cur, type, id);
}

/* An extension value {"__extn":{"fn","arg"}} of one string argument. */
static void em_extn(rqb *r, const char *fn, const char *arg)
{
    if (r->b) {
        cedar_build_extn(r->b, fn, arg, strlen(arg));
        return;
    }
    em_sep(r);
    tg_buf_printf(&r->cur, "{\"__extn\":{\"fn\":\"%s\",\"arg\":", fn);
    json_str(&r->cur, arg);
    tg_buf_appends(&r->cur, "}}");
}

/* A value from the entities file: its JSON as is, or its conversion made at load (NULL
 * when only the JSON road can judge it). */
static void em_file_value(rqb *r, const json_t *jv, const cedar_value *cv)
{
    if (r->b) {
        if (cv)
            cedar_build_value(r->b, cv);
        else
            r->refused = true;
        return;
    }
    em_sep(r);
    tg_json_dump_buf(jv, &r->cur);
}

/* An entity: begin (uid, then "attrs": one record follows), parents, each parent, end
 * (adds it to the request). */
static void em_entity_begin(rqb *r, const char *type, const char *id)
{
    if (r->b) {
        cedar_build_entity_begin(r->b, type, strlen(type), id, strlen(id));
        return;
    }
    tg_buf_reset(&r->cur);
    tg_buf_appends(&r->cur, "{\"uid\":");
    json_uid(&r->cur, type, id);
    tg_buf_appends(&r->cur, ",\"attrs\":");
}

static void em_parents(rqb *r)
{
    if (!r->b)
        tg_buf_appends(&r->cur, ",\"parents\":[");
}

static void em_parent(rqb *r, const char *type, const char *id)
{
    if (r->b) {
        cedar_build_parent(r->b, type, strlen(type), id, strlen(id));
        return;
    }
    em_sep(r);
    json_uid(&r->cur, type, id);
}

/* One request-scoped entity given as JSON text (JSON road only): added to the request and
 * to the entities list. */
static int add_entity_json(rqb *r, const char *json, size_t len, tg_error *err)
{
    tg_buf_appends(&r->list, r->list.len > 1 ? "," : "");
    tg_buf_append(&r->list, json, len);
    return cedar_request_add_entity_json(r->rq, json, len, err);
}

static int em_entity_end(rqb *r, tg_error *err)
{
    if (r->b)
        return cedar_build_entity_end(r->b, err);
    tg_buf_appends(&r->cur, "]}");
    return add_entity_json(r, r->cur.data, r->cur.len, err);
}

/* The context: the record just written. */
static int em_context_end(rqb *r, tg_error *err)
{
    if (r->b)
        return cedar_build_context(r->b, err);
    return cedar_request_set_context_json(r->rq, r->cur.data, r->cur.len, err);
}

static bool reserved_key(const char *k)
{
    return strcmp(k, "__entity") == 0 || strcmp(k, "__extn") == 0 || strcmp(k, "__expr") == 0;
}

/* A JSON real as a Cedar decimal when it has at most 4 fraction digits and fits, else
 * as a string (%.17g). */
static void real_value(rqb *r, double v)
{
    char s[64];
    if (isfinite(v) && fabs(v) < 922337203685477.0) {
        snprintf(s, sizeof s, "%.4f", v);
        if (strtod(s, NULL) == v) {
            size_t n = strlen(s);
            while (n > 0 && s[n - 1] == '0' && s[n - 2] != '.')
                n--;
            s[n] = '\0';
            em_extn(r, "decimal", s);
            return;
        }
    }
    snprintf(s, sizeof s, "%.17g", v);
    em_str(r, s, strlen(s));
}

/* The arguments as a Cedar value: integers → Long, reals → decimal or string, null →
 * omitted, arrays → sets, objects → records without the reserved escape keys. Read from
 * the call's scanned tokens, members in document order. */
static void args_value(rqb *r, const tg_jdoc *d, int tok)
{
    const tg_jtok *t = &d->toks[tok];
    char small[128];
    size_t n;
    switch ((tg_jtype)t->type) {
    case TG_JT_OBJECT: {
        em_open(r, '{');
        uint32_t k = (uint32_t)tok + 1;
        for (uint32_t i = 0; i < t->size; i++, k = d->toks[k + 1].next) {
            if (d->toks[k + 1].type == TG_JT_NULL)
                continue;
            char *key = tg_jscan_text(d, (int)k, small, sizeof small, &n);
            if (!reserved_key(key)) {
                em_key(r, key);
                args_value(r, d, (int)k + 1);
            }
            if (key != small)
                free(key);
        }
        em_close(r, '}');
        return;
    }
    case TG_JT_ARRAY: {
        em_open(r, '[');
        uint32_t e = (uint32_t)tok + 1;
        for (uint32_t i = 0; i < t->size; i++, e = d->toks[e].next)
            if (d->toks[e].type != TG_JT_NULL)
                args_value(r, d, (int)e);
        em_close(r, ']');
        return;
    }
    case TG_JT_STRING: {
        char *str = tg_jscan_text(d, tok, small, sizeof small, &n);
        em_str(r, str, n);
        if (str != small)
            free(str);
        return;
    }
    case TG_JT_INTEGER: {
        int64_t v;
        tg_jscan_int(d, tok, &v);
        em_long(r, v);
        return;
    }
    case TG_JT_REAL:
        real_value(r, tg_jscan_real(d, tok));
        return;
    case TG_JT_TRUE:
    case TG_JT_FALSE:
        em_bool(r, t->type == TG_JT_TRUE);
        return;
    case TG_JT_NULL:
    case TG_JT_NONE:
        return;  /* unreachable: callers skip nulls */
    }
}

static void datetime_value(rqb *r, int64_t ms)
{
    char t[32];
    tg_format_time(ms, t);
    em_extn(r, "datetime", t);
}

static bool valid_ip(const char *s)
{
    unsigned char buf[16];
    return s && (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1);
}

/* A string field of the context when s is set (NUL-terminated). */
static void str_field(rqb *r, const char *name, const char *s)
{
    em_key(r, name);
    em_str(r, s, strlen(s));
}

/* Declared by the client in params._meta: "toolgate/intent", "toolgate/workflow",
 * "toolgate/ticket". Only non-empty strings up to META_MAX bytes count. */
static void opt_field(rqb *r, const char *name, const char *s, size_t n)
{
    if (!s || n == 0 || n > META_MAX)
        return;
    em_key(r, name);
    em_str(r, s, n);
}

static void meta_field(rqb *r, tg_jref meta, const char *key, const char *name)
{
    int v = meta.d ? tg_jscan_get(meta.d, meta.tok, key) : -1;
    if (v < 0 || meta.d->toks[v].type != TG_JT_STRING)
        return;
    char small[128];
    size_t n;
    char *s = tg_jscan_text(meta.d, v, small, sizeof small, &n);
    opt_field(r, name, s, n);
    if (s != small)
        free(s);
}

/* The context keys calls and approver decisions share: clientIp (when a valid address),
 * now, inChangeWindow, risk, upstream. */
static void context_common(const tg_policy *p, rqb *r, const char *client_ip, int64_t now_ms,
                           tg_risk risk, const char *upstream)
{
    if (valid_ip(client_ip)) {
        em_key(r, "clientIp");
        em_extn(r, "ip", client_ip);
    }
    em_key(r, "now");
    datetime_value(r, now_ms);
    em_key(r, "inChangeWindow");
    em_bool(r, in_change_window(p, now_ms));
    str_field(r, "risk", tg_risk_name(risk));
    str_field(r, "upstream", upstream ? upstream : "");
}

/* A call's context (JSON road: the text in r->cur). */
static void write_context(const tg_policy *p, const tg_decide_in *in, tg_risk risk, rqb *r)
{
    const tg_identity *id = in->identity;
    if (!r->b)
        tg_buf_reset(&r->cur);
    em_open(r, '{');
    str_field(r, "authMethod", id->method ? id->method : "");
    meta_field(r, in->meta, "toolgate/intent", "intent");
    meta_field(r, in->meta, "toolgate/workflow", "workflow");
    meta_field(r, in->meta, "toolgate/ticket", "ticket");
    context_common(p, r, id->client_ip, in->now_ms, risk, in->upstream);
    em_key(r, "args");
    if (in->args.d && in->args.tok >= 0 && in->args.d->toks[in->args.tok].type == TG_JT_OBJECT) {
        args_value(r, in->args.d, in->args.tok);
    } else {
        em_open(r, '{');
        em_close(r, '}');
    }
    if (in->approval) {
        em_key(r, "approval");
        em_open(r, '{');
        str_field(r, "id", in->approval->id);
        str_field(r, "approver", in->approval->approver);
        em_key(r, "grantedAt");
        datetime_value(r, in->approval->granted_at_ms);
        em_close(r, '}');
    }
    em_close(r, '}');
}

/* Attribute names toolgate sets on the principal (they override the entities file). */
static bool synthesized_attr(const char *k)
{
    static const char *const keys[] = {"authMethod", "delegator", "clientId", "scopes",
                                       "credentialId", NULL};
    for (const char *const *x = keys; *x; x++)
        if (strcmp(*x, k) == 0)
            return true;
    return false;
}

/* The template's attributes (except those skip names) inside the record being written. */
static void template_attrs(rqb *r, const tmpl *t, bool (*skip)(const char *))
{
    if (r->b && t && !t->direct)
        r->refused = true;
    for (size_t i = 0; t && i < t->nattrs; i++) {
        if (skip && skip(t->keys[i]))
            continue;
        em_key(r, t->keys[i]);
        em_file_value(r, t->jvals[i], t->vals[i]);
    }
}

/* The template's parents, each {"__entity":..} unwrapped. */
static void template_parents(rqb *r, const tmpl *t)
{
    for (size_t i = 0; t && i < t->nparents; i++) {
        if (!r->b) {
            em_sep(r);
            tg_json_dump_buf(t->jparents[i], &r->cur);
        } else if (t->ptype[i]) {
            cedar_build_parent(r->b, t->ptype[i], t->ptlen[i], t->pid[i], t->pidlen[i]);
        } else {
            r->refused = true;
        }
    }
}

static int principal_entity(const tg_policy *p, rqb *r, const tg_identity *id, const char *agent,
                            tg_error *err)
{
    const tmpl *t = find_tmpl(p, p->agents, agent);
    em_entity_begin(r, "Agent", agent);
    em_open(r, '{');
    str_field(r, "authMethod", id->method ? id->method : "");
    if (id->delegator) {
        em_key(r, "delegator");
        em_ref(r, "User", id->delegator);
    }
    if (id->client_id)
        str_field(r, "clientId", id->client_id);
    if (id->credential_id)
        str_field(r, "credentialId", id->credential_id);
    em_key(r, "scopes");
    em_open(r, '[');
    for (size_t i = 0; i < id->n_scopes; i++)
        em_str(r, id->scopes[i], strlen(id->scopes[i]));
    em_close(r, ']');
    template_attrs(r, t, synthesized_attr);
    em_close(r, '}');
    em_parents(r);
    template_parents(r, t);
    if (id->delegator)
        em_parent(r, "User", id->delegator);
    for (size_t i = 0; i < id->n_groups; i++)
        em_parent(r, "Group", id->groups[i]);
    int rc = em_entity_end(r, err);
    if (!r->b)
        r->principal_json = tg_arena_strndup(r->a, r->cur.data, r->cur.len);
    return rc;
}

/* The action and every Action entity of the file above it, as overlay entities. A call's
 * action (upstream set) is also inside Action::"risk:<risk>" and "upstream:<name>";
 * Action::"approve" (upstream NULL) is not: guards on risk actions do not apply to it.
 * Each id is added once (the file's hierarchy may repeat or cycle). */
static int add_actions(const tg_policy *p, rqb *r, const char *action, tg_risk risk,
                       const char *upstream, tg_error *err)
{
    size_t n = 0, cap = 8, done = 0;
    const char **queue = tg_arena_alloc(r->a, cap * sizeof *queue);
    const char **seen = tg_arena_alloc(r->a, cap * sizeof *seen);
    int rc = 0;
    queue[n++] = action;
    for (size_t qi = 0; rc == 0 && qi < n; qi++) {
        const char *aid = queue[qi];
        const tmpl *t = find_tmpl(p, p->actions, aid);
        bool again = false;
        for (size_t i = 0; i < done; i++)
            again = again || strcmp(seen[i], aid) == 0;
        if (again || (qi > 0 && !t))
            continue;
        seen[done++] = aid;   /* done <= qi < n <= cap */
        em_entity_begin(r, "Action", aid);
        if (r->b || !t || !json_object_get(t->e, "attrs")) {
            em_open(r, '{');
            template_attrs(r, t, NULL);
            em_close(r, '}');
        } else {
            em_sep(r);
            tg_json_dump_buf(json_object_get(t->e, "attrs"), &r->cur);
        }
        em_parents(r);
        template_parents(r, t);
        size_t more = (t ? t->nparents : 0) + (qi == 0 && upstream ? 2 : 0);
        if (n + more > cap) {
            while (n + more > cap)
                cap *= 2;
            const char **nq = tg_arena_alloc(r->a, cap * sizeof *nq);
            const char **ns = tg_arena_alloc(r->a, cap * sizeof *ns);
            memcpy(nq, queue, n * sizeof *nq);
            memcpy(ns, seen, done * sizeof *ns);
            queue = nq;
            seen = ns;
        }
        if (qi == 0 && upstream) {
            const char *risk_id = tg_arena_concat(r->a, "risk:", tg_risk_name(risk));
            const char *up = tg_arena_concat(r->a, "upstream:", upstream);
            em_parent(r, "Action", risk_id);
            em_parent(r, "Action", up);
            queue[n++] = up;
            queue[n++] = risk_id;
        }
        for (size_t i = 0; t && i < t->nparents; i++)
            if (t->qid[i])
                queue[n++] = t->qid[i];
        rc = em_entity_end(r, err);
    }
    return rc;
}

static bool in_store(const tg_policy *p, const char *type, const char *id)
{
    return cedar_store_has(p->store, type, strlen(type), id, strlen(id));
}

/* The resource and those of its parents the store lacks, each inside the ones after it. */
static int add_resource(const tg_policy *p, rqb *r, const tg_resource *res, tg_error *err)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i <= res->nparents; i++) {
        const tg_uid *u = i == 0 ? &res->uid : &res->parents[i - 1];
        if (in_store(p, u->type, u->id))
            continue;
        em_entity_begin(r, u->type, u->id);
        em_open(r, '{');
        for (size_t j = 0; i == 0 && j < res->nparents; j++) {
            if (!res->parent_attrs || !res->parent_attrs[j])
                continue;
            em_key(r, res->parent_attrs[j]);
            em_ref(r, res->parents[j].type, res->parents[j].id);
        }
        em_close(r, '}');
        em_parents(r);
        for (size_t j = i; j < res->nparents; j++)
            em_parent(r, res->parents[j].type, res->parents[j].id);
        rc = em_entity_end(r, err);
    }
    return rc;
}

/* Principal and action of a request (shared by decisions and tools/list visibility). */
static int add_principal_action(const tg_policy *p, rqb *r, const tg_identity *id,
                                const char *action, tg_risk risk, const char *upstream,
                                tg_error *err)
{
    const char *agent = id->agent ? id->agent : id->delegator;
    if (!agent)
        return tg_error_set(err, "the identity names neither an agent nor a delegator");
    int rc = principal_entity(p, r, id, agent, err);
    if (rc == 0)
        rc = cedar_request_set_principal(r->rq, "Agent", 5, agent, strlen(agent), err);
    if (rc == 0)
        rc = add_actions(p, r, action, risk, upstream, err);
    if (rc == 0)
        rc = cedar_request_set_action(r->rq, "Action", 6, action, strlen(action), err);
    return rc;
}

/* A road's result: the built request (rc 0) is final, or the direct road gave up and the
 * JSON road must decide (the builder refused something: only that road can say what). */
static bool direct_gave_up(const rqb *r, int rc)
{
    return r->b && (rc < 0 || r->refused);
}

/* ------------------------------------------------------------------ decisions */

typedef struct strlist {
    const char **v;
    size_t n, cap;
} strlist;

static void sl_add(tg_arena *a, strlist *l, const char *s, bool dedup)
{
    for (size_t i = 0; dedup && i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        const char **v = tg_arena_calloc(a, cap, sizeof *v);
        if (l->n)
            memcpy(v, l->v, l->n * sizeof *v);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
}

/* Reasons of the given policies: each one's @reason, else (when ids_fallback) its id. */
static void reasons_of(const cedar_policy_set *ps, const size_t *idx, size_t n, bool ids_fallback,
                       tg_arena *a, strlist *reasons, strlist *policies)
{
    for (size_t i = 0; i < n; i++) {
        const char *r = cedar_policy_annotation(ps, idx[i], "reason");
        if (r && *r)
            sl_add(a, reasons, tg_arena_strdup(a, r), true);
        else if (ids_fallback)
            sl_add(a, reasons, tg_arena_strdup(a, cedar_policy_id(ps, idx[i])), true);
        sl_add(a, policies, tg_arena_strdup(a, cedar_policy_id(ps, idx[i])), false);
    }
}

/* Maps Cedar's answer to the brief's decision table. Without `lift` (approver decisions:
 * approvals do not nest) a satisfied @approval forbid denies like any other. */
static void map_decision(const tg_policy *p, cedar_request *rq, const cedar_response *r,
                         bool lift_approval, tg_arena *a, tg_decision *out, strlist *reasons,
                         strlist *policies, strlist *errors)
{
    const cedar_policy_set *ps = p->set;
    size_t *hard = tg_arena_calloc(a, r->nreasons + r->nerrors + 1, sizeof *hard);
    size_t *lift = tg_arena_calloc(a, r->nreasons + 1, sizeof *lift);
    size_t nhard = 0, nlift = 0;
    bool forbid_error = false;
    for (size_t i = 0; i < r->nerrors; i++) {
        sl_add(a, errors, tg_arena_sprintf(a, "%s: %s", cedar_policy_id(ps, r->errors[i]),
                                           r->error_msgs[i]), false);
        if (cedar_policy_effect(ps, r->errors[i]) == CEDAR_FORBID) {
            forbid_error = true;
            hard[nhard++] = r->errors[i];
        }
    }
    out->decision = TG_DECISION_DENY;
    if (forbid_error) {
        sl_add(a, reasons, "POLICY_ERROR", true);
        reasons_of(ps, hard, nhard, false, a, &(strlist){0}, policies);
        return;
    }
    if (r->decision == CEDAR_ALLOW) {
        out->decision = TG_DECISION_ALLOW;
        reasons_of(ps, r->reasons, r->nreasons, false, a, reasons, policies);
        return;
    }
    if (r->nreasons == 0) {
        sl_add(a, reasons, "NO_MATCHING_PERMIT", true);
        return;
    }
    for (size_t i = 0; i < r->nreasons; i++) {
        if (lift_approval && cedar_policy_annotation(ps, r->reasons[i], "approval"))
            lift[nlift++] = r->reasons[i];
        else
            hard[nhard++] = r->reasons[i];
    }
    if (nhard) {
        reasons_of(ps, hard, nhard, true, a, reasons, policies);
        return;
    }
    /* Only @approval forbids hold: would the permits allow the call without them? */
    cedar_response pr;
    tg_error err;
    if (cedar_authorize(p->permits, rq, &pr, &err) == 0 && pr.decision == CEDAR_ALLOW) {
        out->decision = TG_DECISION_APPROVAL;
        reasons_of(ps, lift, nlift, true, a, reasons, policies);
        return;
    }
    sl_add(a, reasons, "NO_MATCHING_PERMIT", true);
}

/* Authorizes a built request (built < 0: it could not be built, err says why) and fills
 * out's decision and lists. res (calls only) may be unresolved and required. */
static void conclude(const tg_policy *p, cedar_request *rq, int built, const tg_resource *res,
                     bool lift_approval, tg_arena *a, tg_decision *out, tg_error *err)
{
    strlist reasons = {0}, policies = {0}, errors = {0};
    if (built < 0) {
        /* The request could not be built from these inputs: fail closed, say why. */
        out->decision = TG_DECISION_DENY;
        sl_add(a, &reasons, "POLICY_ERROR", true);
        sl_add(a, &errors, tg_arena_strdup(a, err->msg), false);
    } else if (res && res->state == TG_RES_UNRESOLVED && res->required) {
        out->decision = TG_DECISION_DENY;
        sl_add(a, &reasons, "RESOURCE_UNRESOLVED", true);
        sl_add(a, &errors, res->reason, false);
    } else {
        cedar_response r;
        if (cedar_authorize(p->set, rq, &r, err) < 0) {
            out->decision = TG_DECISION_DENY;
            sl_add(a, &reasons, "POLICY_ERROR", true);
            sl_add(a, &errors, tg_arena_strdup(a, err->msg), false);
        } else {
            map_decision(p, rq, &r, lift_approval, a, out, &reasons, &policies, &errors);
        }
    }
    out->reasons = reasons.v;
    out->nreasons = reasons.n;
    out->policies = policies.v;
    out->npolicies = policies.n;
    out->errors = errors.v;
    out->nerrors = errors.n;
}

/* A call's request on one road: principal and actions, resource, context. */
static int build_call(const tg_policy *p, const tg_decide_in *in, const tg_decision *out,
                      rqb *r, tg_error *err)
{
    const tg_resource *res = &out->resource;
    int rc = add_principal_action(p, r, in->identity, out->action, out->risk, in->upstream, err);
    if (rc == 0)
        rc = add_resource(p, r, res, err);
    if (rc == 0)
        rc = cedar_request_set_resource(r->rq, res->uid.type, strlen(res->uid.type), res->uid.id,
                                        strlen(res->uid.id), err);
    if (rc == 0) {
        write_context(p, in, out->risk, r);
        rc = em_context_end(r, err);
    }
    return rc;
}

int tg_policy_decide(const tg_policy *p, const tg_decide_in *in, tg_arena *a, tg_decision *out,
                     tg_error *err)
{
    memset(out, 0, sizeof *out);
    out->policy_version = p->version;
    out->shadow = tg_policy_is_shadow(p, in->upstream,
                                      in->upstream_name ? in->upstream_name : in->name);
    /* Action, risk and resource per kind of request. */
    tg_resource *res = &out->resource;
    if (in->kind == TG_DECIDE_TOOL) {
        tg_cat_entry fallback = {TG_RISK_HIGH, TG_CAT_DEFAULT, NULL};
        const tg_cat_entry *e = in->entry ? in->entry : &fallback;
        out->action = tg_arena_strdup(a, in->name);
        out->risk = e->risk;
        tg_catalog_resolve(p->cat, e, in->upstream, in->args, a, res);
    } else {
        tg_uid *server = tg_arena_calloc(a, 1, sizeof *server);
        *server = (tg_uid){"Mcp::Server", tg_arena_strdup(a, in->upstream)};
        out->action = in->kind == TG_DECIDE_RESOURCE_READ ? "mcp:resources/read" : "mcp:prompts/get";
        out->risk = TG_RISK_READ;
        memset(res, 0, sizeof *res);
        res->state = TG_RES_TYPED;
        res->uid = (tg_uid){in->kind == TG_DECIDE_RESOURCE_READ ? "Mcp::Resource" : "Mcp::Prompt",
                            tg_arena_strdup(a, in->name)};
        res->parents = server;
        res->nparents = 1;
    }
    rqb r;
    rqb_init(&r, p, NULL, !in->explain, a);
    int rc = build_call(p, in, out, &r, err);
    if (direct_gave_up(&r, rc)) {
        rqb_free(&r);
        rqb_init(&r, p, NULL, false, a);
        rc = build_call(p, in, out, &r, err);
    }
    if (in->explain) {
        /* The context is the last piece: when an earlier one failed, write it anyway (the
         * explain view shows what the request would have been). */
        if (rc < 0)
            write_context(p, in, out->risk, &r);
        out->principal_json = r.principal_json ? r.principal_json : "null";
        tg_buf_appends(&r.list, "]");
        out->entities_json = tg_arena_strndup(a, r.list.data, r.list.len);
        out->context_json = tg_arena_strndup(a, r.cur.data, r.cur.len);
    }
    rqb_free(&r);
    if (rc < 0 && !in->identity->agent && !in->identity->delegator)
        return -1;
    conclude(p, r.rq, rc, res, true, a, out, err);
    return 0;
}

/* Resource of an approver decision: `Type::"id"` texts (as audit records and approval
 * requests write parents) back into uids. */
static int parse_uid_text(tg_arena *a, const char *text, tg_uid *out, tg_error *err)
{
    const char *q = strstr(text, "::\"");
    tg_error jerr;
    json_t *id = q ? tg_json_parse(q + 2, strlen(q + 2), 1, &jerr) : NULL;
    if (!json_is_string(id) || q == text) {
        json_decref(id);
        return tg_error_set(err, "parent %s is not an entity uid Type::\"id\"", text);
    }
    out->type = tg_arena_strndup(a, text, (size_t)(q - text));
    out->id = tg_arena_strdup(a, json_string_value(id));
    json_decref(id);
    return 0;
}

/* The approver as principal: User::"<user>". Not in the entities file: an overlay entity
 * inside the configured groups. In the file without extra groups: the store's entity as
 * is. In the file with extra groups: the engine refuses an overlay that duplicates a
 * store entity, so the decision gets its own store whose copy of the user has the extra
 * parents (*own, freed by the caller; approver decisions are rare). */
static int approver_principal(const tg_policy *p, const tg_approve_in *in, cedar_store **own,
                              tg_buf *pj, tg_error *err)
{
    bool filed = in_store(p, "User", in->user);
    const json_t *file_ent = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(p->store_ents, i, e) {
        const json_t *uid = entity_uid(e);
        if (filed && strcmp(json_string_value(json_object_get(uid, "type")), "User") == 0 &&
            strcmp(json_string_value(json_object_get(uid, "id")), in->user) == 0)
            file_ent = e;
    }
    bool first = true;
    tg_buf_appends(pj, "{\"uid\":");
    json_uid(pj, "User", in->user);
    tg_buf_appends(pj, ",\"attrs\":");
    if (json_object_get(file_ent, "attrs"))
        tg_json_dump_buf(json_object_get(file_ent, "attrs"), pj);
    else
        tg_buf_appends(pj, "{}");
    tg_buf_appends(pj, ",\"parents\":[");
    json_array_foreach(json_object_get(file_ent, "parents"), i, e) {
        tg_buf_appends(pj, first ? "" : ",");
        first = false;
        tg_json_dump_buf(unwrap_entity(e), pj);
    }
    for (size_t g = 0; g < in->ngroups; g++) {
        tg_buf_appends(pj, first ? "" : ",");
        first = false;
        json_uid(pj, "Group", in->groups[g]);
    }
    tg_buf_appends(pj, "]}");
    if (!filed || in->ngroups == 0)
        return 0;
    /* A copy of the file's entities with this user replaced. */
    tg_buf all = TG_BUF_INIT;
    tg_buf_appends(&all, "[");
    tg_buf_append(&all, pj->data, pj->len);
    json_array_foreach(p->store_ents, i, e) {
        if (e == file_ent)
            continue;
        tg_buf_appends(&all, ",");
        tg_json_dump_buf(e, &all);
    }
    tg_buf_appends(&all, "]");
    *own = cedar_store_load(all.data, all.len, err);
    tg_buf_free(&all);
    return *own ? 0 : -1;
}

static void approve_context(const tg_policy *p, const tg_approve_in *in, rqb *r)
{
    tg_buf_reset(&r->cur);
    em_open(r, '{');
    str_field(r, "authMethod", in->auth_method ? in->auth_method : "");
    em_key(r, "requester");
    em_ref(r, "Agent", in->requester_agent);
    if (in->delegator) {
        em_key(r, "delegator");
        em_ref(r, "User", in->delegator);
    }
    str_field(r, "tool", in->tool);
    opt_field(r, "ticket", in->ticket, in->ticket ? strlen(in->ticket) : 0);
    opt_field(r, "intent", in->intent, in->intent ? strlen(in->intent) : 0);
    opt_field(r, "workflow", in->workflow, in->workflow ? strlen(in->workflow) : 0);
    context_common(p, r, in->client_ip, in->now_ms, in->risk, in->upstream);
    em_close(r, '}');
}

/* Approver decisions are rare: they take the JSON road, and always fill the JSON texts. */
int tg_policy_decide_approve(const tg_policy *p, const tg_approve_in *in, tg_arena *a,
                             tg_decision *out, tg_error *err)
{
    tg_buf pj = TG_BUF_INIT;
    cedar_store *own = NULL;
    memset(out, 0, sizeof *out);
    if (!in->user || !*in->user || !in->requester_agent || !in->tool || !in->resource_type ||
        !in->resource_id)
        return tg_error_set(err, "an approver decision needs the approver, the requesting "
                            "agent, the tool and the resource");
    out->policy_version = p->version;
    out->action = "approve";
    out->risk = in->risk;
    tg_resource *res = &out->resource;
    tg_uid *parents = tg_arena_calloc(a, in->nparents + 1, sizeof *parents);
    res->state = TG_RES_TYPED;
    res->uid = (tg_uid){tg_arena_strdup(a, in->resource_type), tg_arena_strdup(a, in->resource_id)};
    res->parents = parents;
    res->nparents = in->nparents;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < in->nparents; i++)
        rc = parse_uid_text(a, in->parents[i], &parents[i], err);
    if (rc == 0)
        rc = approver_principal(p, in, &own, &pj, err);
    rqb r;
    rqb_init(&r, p, own, false, a);
    if (rc == 0 && !in_store(p, "User", in->user))
        rc = add_entity_json(&r, pj.data, pj.len, err);
    if (rc == 0)
        rc = cedar_request_set_principal(r.rq, "User", 4, in->user, strlen(in->user), err);
    if (rc == 0)
        rc = add_actions(p, &r, "approve", in->risk, NULL, err);
    if (rc == 0)
        rc = cedar_request_set_action(r.rq, "Action", 6, "approve", 7, err);
    if (rc == 0)
        rc = add_resource(p, &r, res, err);
    if (rc == 0)
        rc = cedar_request_set_resource(r.rq, res->uid.type, strlen(res->uid.type), res->uid.id,
                                        strlen(res->uid.id), err);
    approve_context(p, in, &r);
    if (rc == 0)
        rc = em_context_end(&r, err);
    tg_buf_appends(&r.list, "]");
    out->principal_json = tg_arena_strndup(a, pj.data, pj.len);
    out->entities_json = tg_arena_strndup(a, r.list.data, r.list.len);
    out->context_json = tg_arena_strndup(a, r.cur.data, r.cur.len);
    tg_buf_free(&pj);
    rqb_free(&r);
    conclude(p, r.rq, rc, NULL, false, a, out, err);
    cedar_store_free(own);
    return 0;
}

int tg_policy_tool_visible(const tg_policy *p, const tg_identity *identity, const char *tool,
                           tg_risk risk, const char *upstream, tg_arena *a)
{
    tg_error err;
    cedar_response resp;
    rqb r;
    rqb_init(&r, p, NULL, true, a);
    int rc = add_principal_action(p, &r, identity, tool, risk, upstream, &err);
    if (direct_gave_up(&r, rc)) {
        rqb_free(&r);
        rqb_init(&r, p, NULL, false, a);
        rc = add_principal_action(p, &r, identity, tool, risk, upstream, &err);
    }
    rqb_free(&r);
    if (rc == 0)
        rc = cedar_request_set_resource(r.rq, "Mcp::Server", 11, upstream, strlen(upstream), &err);
    if (rc == 0)
        rc = cedar_authorize(p->vis, r.rq, &resp, &err);
    return rc == 0 && resp.decision == CEDAR_ALLOW;
}

/* ------------------------------------------------------------------ output */

static json_t *str_array(const char *const *v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(v[i]));
    return arr;
}

static json_t *parse_own(const char *s)
{
    tg_error e;
    if (!s)
        return json_null();   /* decided without explain */
    json_t *v = tg_json_parse(s, strlen(s), 256, &e);
    return v ? v : json_string(s);  /* NUL-bearing data: show it as text */
}

char *tg_decision_explain_json(const tg_decision *d)
{
    json_t *parents = json_array();
    for (size_t i = 0; i < d->resource.nparents; i++)
        json_array_append_new(parents, json_pack("{s:s,s:s}", "type", d->resource.parents[i].type,
                                                 "id", d->resource.parents[i].id));
    static const char *const states[] = {"", "typed", "server", "unresolved"};
    json_t *res = json_pack("{s:s,s:s,s:o,s:s,s:b}", "type", d->resource.uid.type, "id",
                            d->resource.uid.id, "parents", parents, "state",
                            states[d->resource.state], "required", d->resource.required);
    if (d->resource.reason)
        json_object_set_new(res, "reason", json_string(d->resource.reason));
    json_t *o = json_pack("{s:s,s:s,s:o,s:o,s:o,s:s,s:o,s:{s:s,s:s},s:s,s:o,s:o,s:o}",
        "decision", tg_decision_name(d->decision), "mode", d->shadow ? "shadow" : "enforce",
        "reasons", str_array(d->reasons, d->nreasons),
        "policies", str_array(d->policies, d->npolicies),
        "errors", str_array(d->errors, d->nerrors),
        "policy_version", d->policy_version,
        "principal", parse_own(d->principal_json),
        "action", "type", "Action", "id", d->action,
        "risk", tg_risk_name(d->risk),
        "resource", res,
        "entities", parse_own(d->entities_json),
        "context", parse_own(d->context_json));
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

json_t *tg_policy_denied_response(const tg_policy *p, const json_t *id, tg_decide_kind kind,
                                  const tg_decision *d, const char *approval_id,
                                  const char *approval_url)
{
    json_t *sc = json_pack("{s:s,s:o,s:o}", "decision", tg_decision_name(d->decision), "reasons",
                           str_array(d->reasons, d->nreasons), "policies",
                           str_array(d->policies, d->npolicies));
    if (approval_id)
        json_object_set_new(sc, "approvalId", json_string(approval_id));
    if (approval_url)
        json_object_set_new(sc, "approvalUrl", json_string(approval_url));
    tg_buf text = TG_BUF_INIT;
    bool approval = d->decision == TG_DECISION_APPROVAL;
    tg_buf_appends(&text, approval ? "Approval required by toolgate policy: "
                                   : "Denied by toolgate policy: ");
    for (size_t i = 0; i < d->nreasons; i++)
        tg_buf_printf(&text, "%s%s", i ? ", " : "", d->reasons[i]);
    if (d->npolicies) {
        tg_buf_appends(&text, " (policies: ");
        for (size_t i = 0; i < d->npolicies; i++)
            tg_buf_printf(&text, "%s%s", i ? ", " : "", d->policies[i]);
        tg_buf_appends(&text, ")");
    }
    if (approval_id)
        tg_buf_printf(&text, ". Approval request %s: retry once it is granted", approval_id);
    if (approval_url)
        tg_buf_printf(&text, " (approve at %s)", approval_url);
    tg_buf_appends(&text, ".");
    json_t *resp;
    if (p->cfg->policy.deny_as_error || kind != TG_DECIDE_TOOL) {
        resp = tg_rpc_error(id, approval ? TG_RPC_APPROVAL_REQUIRED : TG_RPC_POLICY_DENIED,
                            text.data, sc);
    } else {
        resp = json_pack("{s:s,s:O,s:{s:[{s:s,s:s}],s:b,s:o}}", "jsonrpc", "2.0", "id", id,
                         "result", "content", "type", "text", "text", text.data, "isError", 1,
                         "structuredContent", sc);
    }
    tg_buf_free(&text);
    return resp;
}
