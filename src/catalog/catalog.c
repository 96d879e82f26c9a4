/*
 * catalog.c — the tool catalog (tg_catalog.h): risk classification of tools and the
 * turning of a call's arguments into a typed Cedar resource with its parents.
 *
 * The configuration loader has already validated every rule (pointers, templates, regex
 * syntax, capture numbers); here the regexes are compiled once per snapshot and applied
 * per call. Resolution is the gateway's first line against argument attacks: it reads
 * only strings (or integers where a rule says int:), refuses anything that could make one
 * id look like another (path separators, "..", control or non-ASCII characters,
 * oversized values) and reports why, so the policy layer can fail closed.
 */
#include "catalog/tg_catalog.h"

#include <fnmatch.h>
#include <regex.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Compiled regexes of one rule: res for the resource id, par[i] for parents[i]; an entry
 * is used only when the matching tg_id_spec has a pattern. */
typedef struct compiled_rule {
    regex_t res;
    regex_t *par;
} compiled_rule;

/* Invariant: rules[i] belongs to cfg->catalog_rules[i]; cfg is referenced until free.
 * logged holds "upstream\ttool" strings (malloc'd) already reported by log_once. */
struct tg_catalog {
    uint64_t serial;  /* distinct for every catalog made (re_memo's key) */
    tg_config *cfg;
    compiled_rule *rules;
    char **logged;
    size_t nlogged, logged_cap;
};

const char *tg_risk_name(tg_risk r)
{
    switch (r) {
    case TG_RISK_READ:
        return "read";
    case TG_RISK_WRITE:
        return "write";
    case TG_RISK_HIGH:
        return "high";
    }
    return "high";
}

const char *tg_cat_origin_name(tg_cat_origin o)
{
    switch (o) {
    case TG_CAT_RULE:
        return "rule";
    case TG_CAT_PRESET:
        return "preset";
    case TG_CAT_ANNOTATIONS:
        return "annotations";
    case TG_CAT_DEFAULT:
        return "default";
    }
    return "default";
}

int tg_catalog_glob_match(const char *glob, const char *name)
{
    return fnmatch(glob, name, 0) == 0;
}

static int compile(regex_t *re, const tg_id_spec *spec, const char *where, tg_error *err)
{
    char msg[256];
    int rc = regcomp(re, spec->pattern, REG_EXTENDED);
    if (rc != 0) {
        regerror(rc, re, msg, sizeof msg);
        return tg_error_set(err, "%s: invalid regular expression: %s", where, msg);
    }
    return 0;
}

static void free_rule(const tg_cat_rule *r, compiled_rule *c, size_t nparents_done, bool res_done)
{
    if (res_done && r->resource_id.pattern)
        regfree(&c->res);
    for (size_t j = 0; j < nparents_done; j++)
        if (r->parents[j].id.pattern)
            regfree(&c->par[j]);
    free(c->par);
}

void tg_catalog_free(tg_catalog *cat)
{
    if (!cat)
        return;
    for (size_t i = 0; i < cat->cfg->ncatalog_rules; i++)
        free_rule(&cat->cfg->catalog_rules[i], &cat->rules[i], cat->cfg->catalog_rules[i].nparents,
                  true);
    for (size_t i = 0; i < cat->nlogged; i++)
        free(cat->logged[i]);
    free(cat->logged);
    free(cat->rules);
    tg_config_unref(cat->cfg);
    free(cat);
}

tg_catalog *tg_catalog_new(tg_config *cfg, tg_error *err)
{
    static _Atomic uint64_t serials;
    tg_catalog *cat = calloc(1, sizeof *cat);
    size_t n = cfg->ncatalog_rules;
    if (!cat || !(cat->rules = calloc(n ? n : 1, sizeof *cat->rules)))
        abort();
    cat->serial = ++serials;
    for (size_t i = 0; i < n; i++) {
        const tg_cat_rule *r = &cfg->catalog_rules[i];
        compiled_rule *c = &cat->rules[i];
        if (!(c->par = calloc(r->nparents ? r->nparents : 1, sizeof *c->par)))
            abort();
        bool res_ok = !r->resource_id.pattern ||
                      compile(&c->res, &r->resource_id, r->where, err) == 0;
        bool ok = res_ok;
        size_t j = 0;
        while (ok && j < r->nparents) {
            ok = !r->parents[j].id.pattern ||
                 compile(&c->par[j], &r->parents[j].id, r->where, err) == 0;
            j += ok;
        }
        if (!ok) {
            /* Release what this rule compiled, then every earlier rule. */
            free_rule(r, c, j, res_ok);
            for (size_t k = 0; k < i; k++)
                free_rule(&cfg->catalog_rules[k], &cat->rules[k], cfg->catalog_rules[k].nparents,
                          true);
            free(cat->rules);
            free(cat);
            return NULL;
        }
    }
    cat->cfg = tg_config_ref(cfg);
    return cat;
}

/* ------------------------------------------------------------------ classify */

static bool is_glob(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

static const tg_cat_rule *find_rule(const tg_config *cfg, const char *upstream, const char *tool,
                                    bool preset, bool glob)
{
    for (size_t i = 0; i < cfg->ncatalog_rules; i++) {
        const tg_cat_rule *r = &cfg->catalog_rules[i];
        if ((r->preset != NULL) != preset || is_glob(r->tool) != glob)
            continue;
        if (r->upstream && (!upstream || strcmp(r->upstream, upstream) != 0))
            continue;
        if (glob ? tg_catalog_glob_match(r->tool, tool) : strcmp(r->tool, tool) == 0)
            return r;
    }
    return NULL;
}

void tg_catalog_classify(const tg_catalog *cat, const char *upstream, const char *tool,
                         const json_t *annotations, tg_cat_entry *out)
{
    const tg_cat_rule *r = NULL;
    for (int pass = 0; pass < 4 && !r; pass++)
        r = find_rule(cat->cfg, upstream, tool, pass >= 2, pass % 2 == 1);
    if (r) {
        *out = (tg_cat_entry){r->risk, r->preset ? TG_CAT_PRESET : TG_CAT_RULE, r};
        return;
    }
    if (!json_is_object(annotations)) {
        *out = (tg_cat_entry){TG_RISK_HIGH, TG_CAT_DEFAULT, NULL};
        return;
    }
    /* A server that says both read-only and destructive contradicts itself: the higher
     * risk wins. */
    tg_risk risk = TG_RISK_WRITE;
    if (json_is_true(json_object_get(annotations, "destructiveHint")))
        risk = TG_RISK_HIGH;
    else if (json_is_true(json_object_get(annotations, "readOnlyHint")))
        risk = TG_RISK_READ;
    *out = (tg_cat_entry){risk, TG_CAT_ANNOTATIONS, NULL};
}

int tg_catalog_log_once(tg_catalog *cat, const char *upstream, const char *tool,
                        const tg_cat_entry *e)
{
    if (e->rule)
        return 0;
    size_t ul = strlen(upstream), tl = strlen(tool);
    char *key = malloc(ul + tl + 2);
    if (!key)
        abort();
    memcpy(key, upstream, ul);
    key[ul] = '\t';
    memcpy(key + ul + 1, tool, tl + 1);
    for (size_t i = 0; i < cat->nlogged; i++)
        if (strcmp(cat->logged[i], key) == 0) {
            free(key);
            return 0;
        }
    if (cat->nlogged == cat->logged_cap) {
        cat->logged_cap = cat->logged_cap ? cat->logged_cap * 2 : 16;
        cat->logged = realloc(cat->logged, cat->logged_cap * sizeof *cat->logged);
        if (!cat->logged)
            abort();
    }
    cat->logged[cat->nlogged++] = key;
    tg_log_warn("catalog", "tool %s of upstream %s has no catalog rule: risk %s (from %s)", tool,
                upstream, tg_risk_name(e->risk),
                e->origin == TG_CAT_ANNOTATIONS ? "its annotations" : "no annotations");
    return 1;
}

/* ------------------------------------------------------------------ resolve */

static const char *kind_name(const tg_jdoc *d, int tok)
{
    switch ((tg_jtype)d->toks[tok].type) {
    case TG_JT_OBJECT:
        return "an object";
    case TG_JT_ARRAY:
        return "an array";
    case TG_JT_STRING:
        return "a string";
    case TG_JT_INTEGER:
        return "an integer";
    case TG_JT_REAL:
        return "a number";
    case TG_JT_TRUE:
    case TG_JT_FALSE:
        return "a boolean";
    case TG_JT_NULL:
        return "null";
    case TG_JT_NONE:
        break;
    }
    return "a value";
}

/* Why s cannot be (part of) an id, or NULL when it can. */
static const char *unsafe(const char *s, size_t n)
{
    if (n == 0)
        return "is empty";
    if (n > TG_CAT_MAX_ID)
        return "is longer than 256 bytes";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return "contains a control character";
        if (c >= 0x80)
            return "contains a non-ASCII character";
        if (c == '/' || c == '\\')
            return "contains a path separator";
        if (c == '.' && i + 1 < n && s[i + 1] == '.')
            return "contains \"..\"";
    }
    return NULL;
}

/* The last id each thread matched against each capturing pattern, and the result. glibc's
 * regexec takes ~60 ns to say whether an id matches but ~420 ns to report where a group
 * lay (its backtracking pass), and an agent's calls tend to name the same issue again and
 * again: the parent's capture was the largest piece of a decision. Keyed by the catalog's
 * serial, which is never reused (an address would be), and the spec. */
typedef struct re_memo {
    uint64_t serial;
    const tg_id_spec *spec;
    int rc;
    regmatch_t m;
    size_t n;
    char id[TG_CAT_MAX_ID + 1];
} re_memo;

static __thread re_memo re_memos[8];

/* regexec of id (n bytes, n <= TG_CAT_MAX_ID) with the bounds of spec's capture in *m. */
static int match(uint64_t serial, const tg_id_spec *spec, const regex_t *re, const char *id,
                 size_t n, regmatch_t *m)
{
    regmatch_t all[10];
    if (spec->capture == 0) { /* the cheap case: no group to report */
        int rc = regexec(re, id, 1, all, 0);
        *m = all[0];
        return rc;
    }
    re_memo *e = &re_memos[((uintptr_t)spec >> 4) % (sizeof re_memos / sizeof *re_memos)];
    if (e->serial == serial && e->spec == spec && e->n == n && memcmp(e->id, id, n) == 0) {
        *m = e->m;
        return e->rc;
    }
    int rc = regexec(re, id, spec->capture + 1, all, 0);
    *m = all[spec->capture];
    *e = (re_memo){.serial = serial, .spec = spec, .rc = rc, .m = *m, .n = n};
    memcpy(e->id, id, n);
    return rc;
}

/* Builds the id of spec into *out (arena), or returns the reason it cannot. `self` is
 * the resource id a parent spec without parts derives from. */
static const char *eval_spec(uint64_t serial, const tg_id_spec *spec, const regex_t *re,
                             tg_jref args, const char *self, tg_arena *a, const char **out)
{
    char mem[TG_CAT_MAX_ID + 64];
    tg_buf b;
    tg_buf_use(&b, mem, sizeof mem);
    const char *why = NULL;
    if (spec->nparts == 0)
        tg_buf_appends(&b, self);
    for (size_t i = 0; i < spec->nparts && !why; i++) {
        const tg_id_part *p = &spec->parts[i];
        if (!p->pointer) {
            tg_buf_appends(&b, p->text);
            continue;
        }
        int v = tg_jscan_pointer(args.d, args.tok, p->text);
        const tg_jtok *t = v >= 0 ? &args.d->toks[v] : NULL;
        char num[32];
        const char *s = NULL, *bad;
        size_t n = 0;
        int64_t iv;
        if (!t) {
            why = tg_arena_sprintf(a, "argument %s is missing", p->text);
        } else if (t->type == TG_JT_STRING) {
            s = tg_jscan_str_arena(args.d, v, a, &n);
        } else if (p->integer && tg_jscan_int(args.d, v, &iv) == 0 && iv >= 0) {
            n = tg_i64_dec(iv, num);
            s = num;
        } else {
            why = tg_arena_sprintf(a, "argument %s is %s, expected a string%s", p->text,
                                   kind_name(args.d, v),
                                   p->integer ? " or a non-negative integer" : "");
        }
        if (!why && (bad = unsafe(s, n)))
            why = tg_arena_sprintf(a, "argument %s %s", p->text, bad);
        if (!why)
            tg_buf_append(&b, s, n);
    }
    if (!why && b.len > TG_CAT_MAX_ID)
        why = "the id is longer than 256 bytes";
    if (!why && spec->pattern) {
        regmatch_t m;
        if (spec->capture >= 10)
            why = "capture group beyond 9";
        else if (match(serial, spec, re, b.data, b.len, &m) != 0)
            why = tg_arena_sprintf(a, "the id does not match %s", spec->pattern);
        else if (m.rm_so < 0 || m.rm_eo <= m.rm_so)
            why = tg_arena_sprintf(a, "capture %u of %s is empty", spec->capture, spec->pattern);
        else
            *out = tg_arena_strndup(a, b.data + m.rm_so, (size_t)(m.rm_eo - m.rm_so));
    } else if (!why) {
        *out = tg_arena_strndup(a, b.data, b.len);
    }
    tg_buf_free(&b);
    return why;
}

void tg_catalog_resolve(const tg_catalog *cat, const tg_cat_entry *e, const char *upstream,
                        tg_jref args, tg_arena *a, tg_resource *out)
{
    const tg_cat_rule *r = e->rule;
    memset(out, 0, sizeof *out);
    out->uid.type = "Mcp::Server";
    out->uid.id = tg_arena_strdup(a, upstream);
    out->state = TG_RES_SERVER;
    if (!r || !r->resource_type)
        return;
    const compiled_rule *c = &cat->rules[r - cat->cfg->catalog_rules];
    const char *id = NULL, *why;
    out->required = r->required;
    if (!args.d || args.tok < 0 || args.d->toks[args.tok].type != TG_JT_OBJECT)
        why = "the arguments are not an object";
    else
        why = eval_spec(cat->serial, &r->resource_id, &c->res, args, NULL, a, &id);
    tg_uid *parents = tg_arena_calloc(a, r->nparents + 1, sizeof *parents);
    const char **attrs = tg_arena_calloc(a, r->nparents + 1, sizeof *attrs);
    for (size_t i = 0; i < r->nparents && !why; i++) {
        const tg_res_parent *p = &r->parents[i];
        why = eval_spec(cat->serial, &p->id, &c->par[i], args, id, a, &parents[i].id);
        if (why)
            why = tg_arena_sprintf(a, "parent %s: %s", p->type, why);
        parents[i].type = p->type;
        attrs[i] = p->attr;
    }
    if (why) {
        out->state = TG_RES_UNRESOLVED;
        out->reason = why;
        return;
    }
    out->state = TG_RES_TYPED;
    out->uid.type = r->resource_type;
    out->uid.id = id;
    out->parents = parents;
    out->parent_attrs = attrs;
    out->nparents = r->nparents;
}
