/*
 * policy_conf.c — the `catalog:` and `policy:` sections of the configuration, and the
 * catalog preset files they name (issue 5).
 *
 * The loader in load.c walks the top level and hands these two sections here. Everything
 * that can be checked without the policy engine is checked now, with the position of the
 * offending node: tool rules (risk words, Cedar entity type names, JSON pointers, id
 * templates, POSIX regexes and their capture numbers), preset files (read with the same
 * YAML walker, errors carrying the preset's own FILE:LINE:COL), change windows (days,
 * hours, the time zone's file) and mode overrides. References between keys that may come
 * in any order (upstream names, window names) are checked by tg_cy_finish_policy once
 * the whole file has been read. What stays for src/catalog and src/policy is compiling
 * (regcomp again, reading .cedar files and the entities file).
 */
#include "config/yaml_int.h"

#include <ctype.h>
#include <errno.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Where IANA time zone files live. Documented in docs/configuration.md. */
#define TG_ZONEINFO "/usr/share/zoneinfo"

/* ------------------------------------------------------------------ small readers */

int tg_cy_bool(loader *L, const at *w, int *out)
{
    const char *s;
    bool plain;
    if (tg_cy_scalar(L, w, "true or false", &s, &plain) < 0)
        return -1;
    if (plain && strcmp(s, "true") == 0)
        *out = 1;
    else if (plain && strcmp(s, "false") == 0)
        *out = 0;
    else
        return tg_cy_fail(L, w, "expected true or false, found \"%s\"", s);
    return 0;
}

static bool is_ident(const char *s, size_t n)
{
    if (n == 0 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

/* A Cedar entity type name: identifiers joined by "::" (Jira::Issue). */
static bool is_entity_type(const char *s)
{
    for (;;) {
        const char *sep = strstr(s, "::");
        size_t n = sep ? (size_t)(sep - s) : strlen(s);
        if (!is_ident(s, n))
            return false;
        if (!sep)
            return true;
        s = sep + 2;
    }
}

static int read_entity_type(loader *L, const at *w, const char **out)
{
    if (tg_cy_nonempty_string(L, w, out) < 0)
        return -1;
    if (!is_entity_type(*out))
        return tg_cy_fail(L, w, "expected a Cedar entity type such as Jira::Issue, found \"%s\"",
                          tg_cy_raw_text(L, w));
    return 0;
}

static int read_risk(loader *L, const at *w, tg_risk *out)
{
    const char *s;
    if (tg_cy_string_value(L, w, &s) < 0)
        return -1;
    if (strcmp(s, "read") == 0)
        *out = TG_RISK_READ;
    else if (strcmp(s, "write") == 0)
        *out = TG_RISK_WRITE;
    else if (strcmp(s, "high") == 0)
        *out = TG_RISK_HIGH;
    else
        return tg_cy_fail(L, w, "expected read, write or high, found \"%s\"",
                          tg_cy_raw_text(L, w));
    return 0;
}

/* A tool name or glob: the characters of MCP tool names plus glob syntax. */
static int check_tool_glob(loader *L, const at *w, const char *s)
{
    for (const char *p = s; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              strchr("_.-/*?[]!", *p)))
            return tg_cy_fail(L, w, "a tool name or glob uses letters, digits, _ . - / and the "
                                    "glob characters * ? [ ] !; found \"%s\"", s);
    return 0;
}

/* ------------------------------------------------------------------ ids */

/* RFC 6901: "/" then tokens where "~" is always followed by 0 or 1. */
static bool is_json_pointer(const char *s, size_t n)
{
    if (n == 0 || s[0] != '/')
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '~' && (i + 1 == n || (s[i + 1] != '0' && s[i + 1] != '1')))
            return false;
    return true;
}

/* One pointer, "/x" or "int:/x", as a part. */
static int pointer_part(loader *L, const at *w, const char *s, size_t n, tg_id_part *out)
{
    out->pointer = 1;
    out->integer = n >= 4 && memcmp(s, "int:", 4) == 0;
    if (out->integer) {
        s += 4;
        n -= 4;
    }
    if (!is_json_pointer(s, n))
        return tg_cy_fail(L, w, "\"%.*s\" is not a JSON pointer: it starts with / and writes "
                                "~ as ~0 and / inside a key as ~1", (int)n, s);
    out->text = tg_arena_strndup(L->a, s, n);
    return 0;
}

/* `id:` — "/issue_key", "int:/pull_request_id", or a template of literal text and
 * {pointer} parts: "{/workspace}/{/repo_slug}". */
static int read_id(loader *L, const at *w, tg_id_spec *spec)
{
    const char *s;
    if (tg_cy_nonempty_string(L, w, &s) < 0)
        return -1;
    size_t len = strlen(s), n = 0, cap = 4;
    tg_id_part *parts = tg_arena_calloc(L->a, cap, sizeof *parts);
    bool templ = strchr(s, '{') || strchr(s, '}');
    if (!templ) {
        if (pointer_part(L, w, s, len, &parts[0]) < 0)
            return -1;
        n = 1;
    }
    for (const char *p = s; templ && *p;) {
        if (n == cap) {
            tg_id_part *bigger = tg_arena_calloc(L->a, cap * 2, sizeof *bigger);
            memcpy(bigger, parts, cap * sizeof *parts);
            parts = bigger;
            cap *= 2;
        }
        if (*p == '{') {
            const char *end = strchr(p + 1, '}');
            if (!end)
                return tg_cy_fail(L, w, "unclosed { in the id template");
            if (pointer_part(L, w, p + 1, (size_t)(end - p - 1), &parts[n]) < 0)
                return -1;
            p = end + 1;
        } else {
            size_t k = strcspn(p, "{}");
            if (p[k] == '}')
                return tg_cy_fail(L, w, "} without { in the id template");
            parts[n].text = tg_arena_strndup(L->a, p, k);
            p += k;
        }
        n++;
    }
    size_t pointers = 0;
    for (size_t i = 0; i < n; i++)
        pointers += (size_t)parts[i].pointer;
    if (pointers == 0)
        return tg_cy_fail(L, w, "an id template needs at least one {/pointer}");
    spec->parts = parts;
    spec->nparts = n;
    return 0;
}

static int read_pattern(loader *L, const at *w, tg_id_spec *spec)
{
    regex_t re;
    char msg[256];
    if (tg_cy_nonempty_string(L, w, &spec->pattern) < 0)
        return -1;
    int rc = regcomp(&re, spec->pattern, REG_EXTENDED);
    if (rc != 0) {
        regerror(rc, &re, msg, sizeof msg);
        return tg_cy_fail(L, w, "invalid regular expression (POSIX extended): %s", msg);
    }
    size_t groups = re.re_nsub;
    regfree(&re);
    spec->capture = (unsigned)(groups < 1000 ? groups : 1000) + 1; /* checked in id_checks */
    return 0;
}

static int read_capture(loader *L, const at *w, unsigned *out)
{
    const char *s;
    bool plain;
    if (tg_cy_scalar(L, w, "a group number", &s, &plain) < 0)
        return -1;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (!plain || !*s || *end || s[0] == '-' || s[0] == '+' || v > 9)
        return tg_cy_fail(L, w, "expected a capture group number 0-9 (0 = whole match), found \"%s\"",
                          s);
    *out = (unsigned)v;
    return 0;
}

/* After a mapping with pattern/capture keys: read_pattern left groups+1 in capture; the
 * real capture (default 0) is checked against it here. */
typedef struct id_build {
    tg_id_spec spec;
    unsigned capture;
    at pattern_at, capture_at;
} id_build;

static int id_finish(loader *L, id_build *b)
{
    if (b->capture_at.where && !b->spec.pattern)
        return tg_cy_fail(L, &b->capture_at, "capture needs a pattern");
    if (b->spec.pattern) {
        unsigned groups = b->spec.capture - 1;
        if (b->capture > groups)
            return tg_cy_fail(L, b->capture_at.where ? &b->capture_at : &b->pattern_at,
                              "capture %u, but the pattern has %u group%s", b->capture, groups,
                              groups == 1 ? "" : "s");
    }
    b->spec.capture = b->capture;
    return 0;
}

/* ------------------------------------------------------------------ rules */

typedef struct parent_build {
    tg_res_parent p;
    id_build id;
    at idw;
} parent_build;

static int parent_type(loader *L, const at *w, void *o)
{
    return read_entity_type(L, w, &((parent_build *)o)->p.type);
}
static int parent_attr(loader *L, const at *w, void *o)
{
    parent_build *b = o;
    if (tg_cy_nonempty_string(L, w, &b->p.attr) < 0)
        return -1;
    if (!is_ident(b->p.attr, strlen(b->p.attr)))
        return tg_cy_fail(L, w, "an attribute name is an identifier ([A-Za-z_][A-Za-z0-9_]*)");
    return 0;
}
static int parent_id(loader *L, const at *w, void *o)
{
    parent_build *b = o;
    b->idw = *w;
    return read_id(L, w, &b->id.spec);
}
static int parent_pattern(loader *L, const at *w, void *o)
{
    parent_build *b = o;
    b->id.pattern_at = *w;
    return read_pattern(L, w, &b->id.spec);
}
static int parent_capture(loader *L, const at *w, void *o)
{
    parent_build *b = o;
    b->id.capture_at = *w;
    return read_capture(L, w, &b->id.capture);
}

static const field parent_fields[] = {
    {"type", F_CUSTOM, 0, parent_type, 0},
    {"id", F_CUSTOM, 0, parent_id, 0},
    {"pattern", F_CUSTOM, 0, parent_pattern, 0},
    {"capture", F_CUSTOM, 0, parent_capture, 0},
    {"attr", F_CUSTOM, 0, parent_attr, 0},
};

typedef struct rule_build {
    tg_cat_rule r;
    id_build id;
    at resw;
    bool has_risk, has_required;
} rule_build;

static int read_parents(loader *L, const at *w, void *o)
{
    rule_build *rb = o;
    void *it = NULL;
    struct fy_node *item;
    size_t i = 0;
    if (!w->node || !fy_node_is_sequence(w->node))
        return tg_cy_fail(L, w, "expected a list of parents, found %s", tg_cy_what(w->node));
    size_t n = (size_t)fy_node_sequence_item_count(w->node);
    tg_res_parent *ps = tg_arena_calloc(L->a, n + 1, sizeof *ps);
    while ((item = fy_node_sequence_iterate(w->node, &it))) {
        at pw = tg_cy_at_index(L, w, item, i);
        parent_build b;
        memset(&b, 0, sizeof b);
        if (tg_cy_walk_map(L, &pw, parent_fields, sizeof parent_fields / sizeof *parent_fields,
                           &b, 0) < 0)
            return -1;
        if (!b.p.type)
            return tg_cy_missing(L, &pw, "type", " (the parent's entity type, e.g. Jira::Project)");
        if (!b.idw.where && !b.id.spec.pattern)
            return tg_cy_fail(L, &pw, "a parent needs an id (pointer or template) or a pattern "
                                      "with a capture over the resource id");
        if (id_finish(L, &b.id) < 0)
            return -1;
        b.p.id = b.id.spec;
        ps[i++] = b.p;
    }
    rb->r.parents = ps;
    rb->r.nparents = i;
    return 0;
}

static int res_type(loader *L, const at *w, void *o)
{
    return read_entity_type(L, w, &((rule_build *)o)->r.resource_type);
}
static int res_id(loader *L, const at *w, void *o)
{
    return read_id(L, w, &((rule_build *)o)->id.spec);
}
static int res_pattern(loader *L, const at *w, void *o)
{
    rule_build *b = o;
    b->id.pattern_at = *w;
    return read_pattern(L, w, &b->id.spec);
}
static int res_capture(loader *L, const at *w, void *o)
{
    rule_build *b = o;
    b->id.capture_at = *w;
    return read_capture(L, w, &b->id.capture);
}
static int res_required(loader *L, const at *w, void *o)
{
    rule_build *b = o;
    b->has_required = true;
    return tg_cy_bool(L, w, &b->r.required);
}

static const field resource_fields[] = {
    {"type", F_CUSTOM, 0, res_type, 0},
    {"id", F_CUSTOM, 0, res_id, 0},
    {"pattern", F_CUSTOM, 0, res_pattern, 0},
    {"capture", F_CUSTOM, 0, res_capture, 0},
    {"required", F_CUSTOM, 0, res_required, 0},
    {"parents", F_CUSTOM, 0, read_parents, 0},
};

static int rule_resource(loader *L, const at *w, void *o)
{
    rule_build *b = o;
    b->resw = *w;
    if (tg_cy_walk_map(L, w, resource_fields, sizeof resource_fields / sizeof *resource_fields,
                       b, 0) < 0)
        return -1;
    if (!b->r.resource_type)
        return tg_cy_missing(L, w, "type", " (the resource's entity type, e.g. Jira::Issue)");
    if (!b->id.spec.nparts)
        return tg_cy_missing(L, w, "id", " (a JSON pointer such as /issue_key, or a template)");
    if (id_finish(L, &b->id) < 0)
        return -1;
    b->r.resource_id = b->id.spec;
    return 0;
}
static int rule_tool(loader *L, const at *w, void *o)
{
    rule_build *b = o;
    return tg_cy_nonempty_string(L, w, &b->r.tool) < 0 ? -1 : check_tool_glob(L, w, b->r.tool);
}
static int rule_upstream(loader *L, const at *w, void *o)
{
    return tg_cy_nonempty_string(L, w, &((rule_build *)o)->r.upstream);
}
static int rule_risk(loader *L, const at *w, void *o)
{
    rule_build *b = o;
    b->has_risk = true;
    return read_risk(L, w, &b->r.risk);
}

static const field rule_fields[] = {
    {"tool", F_CUSTOM, 0, rule_tool, 0},
    {"upstream", F_CUSTOM, 0, rule_upstream, 0},
    {"risk", F_CUSTOM, 0, rule_risk, 0},
    {"resource", F_CUSTOM, 0, rule_resource, 0},
};

/* Rules collected while reading, in order; copied into the snapshot at the end. */
typedef struct rules {
    tg_cat_rule *v;
    size_t n, cap;
} rules;

static void rules_push(loader *L, rules *rs, const tg_cat_rule *r)
{
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 16;
        tg_cat_rule *bigger = tg_arena_calloc(L->a, cap, sizeof *bigger);
        if (rs->n)
            memcpy(bigger, rs->v, rs->n * sizeof *bigger);
        rs->v = bigger;
        rs->cap = cap;
    }
    rs->v[rs->n++] = *r;
}

/* A list of rules; `preset`/`upstream` are set on each (a preset selected for one
 * upstream applies only there, unless the rule names its own upstream). */
static int read_rules(loader *L, const at *w, const char *preset, const char *upstream,
                      rules *out)
{
    void *it = NULL;
    struct fy_node *item;
    size_t i = 0;
    if (!w->node || !fy_node_is_sequence(w->node))
        return tg_cy_fail(L, w, "expected a list of tool rules, found %s", tg_cy_what(w->node));
    while ((item = fy_node_sequence_iterate(w->node, &it))) {
        at rw = tg_cy_at_index(L, w, item, i++);
        rule_build b;
        memset(&b, 0, sizeof b);
        b.r.required = 1;
        if (tg_cy_walk_map(L, &rw, rule_fields, sizeof rule_fields / sizeof *rule_fields, &b,
                           0) < 0)
            return -1;
        if (!b.r.tool)
            return tg_cy_missing(L, &rw, "tool", " (the tool's name as the upstream names it, "
                                                 "or a glob)");
        if (!b.has_risk)
            return tg_cy_missing(L, &rw, "risk", " (read, write or high)");
        b.r.where = tg_cy_position(L, &rw);
        b.r.preset = preset;
        if (!b.r.upstream)
            b.r.upstream = upstream;
        rules_push(L, out, &b.r);
    }
    return 0;
}

/* ------------------------------------------------------------------ presets */

typedef struct preset_file {
    rules *out;
    const char *name;      /* as written in catalog.presets */
    const char *upstream;
    bool has_tools;
} preset_file;

static int preset_tools(loader *L, const at *w, void *o)
{
    preset_file *pf = o;
    pf->has_tools = true;
    return read_rules(L, w, pf->name, pf->upstream, pf->out);
}
static int preset_description(loader *L, const at *w, void *o)
{
    const char *s;
    return tg_cy_nonempty_string(L, w, &s);
}

static const field preset_fields[] = {
    {"description", F_CUSTOM, 0, preset_description, 0},
    {"tools", F_CUSTOM, 0, preset_tools, 0},
};

/* Reads one preset file; its errors carry the preset's own FILE:LINE:COL. */
static int load_preset(loader *L, const at *w, const char *name, const char *upstream,
                       rules *out)
{
    const char *path = tg_cy_abspath(L, name);
    struct stat st;
    FILE *fp = fopen(path, "re");
    if (!fp)
        return tg_cy_fail(L, w, "cannot open preset %s: %s", path, strerror(errno));
    if (fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return tg_cy_fail(L, w, "preset %s is not a regular file", path);
    }
    struct fy_document *doc = tg_cy_parse_yaml(path, fp, L->err);
    fclose(fp);
    if (!doc)
        return -1;
    const char *slash = strrchr(path, '/');
    loader P = {path, tg_arena_strndup(L->a, path, (size_t)(slash - path)), L->a, L->tmp,
                L->err};
    at root = {fy_document_root(doc), NULL, ""};
    preset_file pf = {out, name, upstream, false};
    int rc = tg_cy_walk_map(&P, &root, preset_fields, sizeof preset_fields / sizeof *preset_fields,
                            &pf, 0);
    if (rc == 0 && !pf.has_tools)
        rc = tg_cy_missing(&P, &root, "tools", " (the list of tool rules)");
    fy_document_destroy(doc);
    return rc;
}

typedef struct preset_ref {
    const char *file, *upstream;
} preset_ref;

static int pref_file(loader *L, const at *w, void *o)
{
    return tg_cy_nonempty_string(L, w, &((preset_ref *)o)->file);
}
static int pref_upstream(loader *L, const at *w, void *o)
{
    return tg_cy_nonempty_string(L, w, &((preset_ref *)o)->upstream);
}

static const field preset_ref_fields[] = {
    {"file", F_CUSTOM, 0, pref_file, 0},
    {"upstream", F_CUSTOM, 0, pref_upstream, 0},
};

typedef struct catalog_build {
    rules inline_rules, preset_rules;
    at presets;
} catalog_build;

static int cat_tools(loader *L, const at *w, void *o)
{
    return read_rules(L, w, NULL, NULL, &((catalog_build *)o)->inline_rules);
}
static int cat_presets(loader *L, const at *w, void *o)
{
    catalog_build *cb = o;
    void *it = NULL;
    struct fy_node *item;
    size_t i = 0;
    if (!w->node || !fy_node_is_sequence(w->node))
        return tg_cy_fail(L, w, "expected a list of preset files, found %s", tg_cy_what(w->node));
    while ((item = fy_node_sequence_iterate(w->node, &it))) {
        at pw = tg_cy_at_index(L, w, item, i++);
        preset_ref ref = {NULL, NULL};
        if (fy_node_is_mapping(item)) {
            if (tg_cy_walk_map(L, &pw, preset_ref_fields,
                               sizeof preset_ref_fields / sizeof *preset_ref_fields, &ref, 0) < 0)
                return -1;
            if (!ref.file)
                return tg_cy_missing(L, &pw, "file", " (the preset's path)");
        } else if (tg_cy_nonempty_string(L, &pw, &ref.file) < 0) {
            return -1;
        }
        if (load_preset(L, &pw, ref.file, ref.upstream, &cb->preset_rules) < 0)
            return -1;
    }
    return 0;
}

static const field catalog_fields[] = {
    {"presets", F_CUSTOM, 0, cat_presets, 0},
    {"tools", F_CUSTOM, 0, cat_tools, 0},
};

int tg_cy_read_catalog(loader *L, const at *w, void *obj)
{
    tg_config *cfg = obj;
    catalog_build cb;
    memset(&cb, 0, sizeof cb);
    if (tg_cy_walk_map(L, w, catalog_fields, sizeof catalog_fields / sizeof *catalog_fields, &cb,
                       0) < 0)
        return -1;
    /* Inline rules come first: they are the operator's own word over any preset. */
    for (size_t i = 0; i < cb.preset_rules.n; i++)
        rules_push(L, &cb.inline_rules, &cb.preset_rules.v[i]);
    cfg->catalog_rules = cb.inline_rules.v;
    cfg->ncatalog_rules = cb.inline_rules.n;
    return 0;
}

/* ------------------------------------------------------------------ policy */

static int read_dir(loader *L, const at *w, const char **out)
{
    const char *s;
    struct stat st;
    if (tg_cy_nonempty_string(L, w, &s) < 0)
        return -1;
    *out = tg_cy_abspath(L, s);
    if (stat(*out, &st) < 0 || !S_ISDIR(st.st_mode))
        return tg_cy_fail(L, w, "%s is not a directory", *out);
    return 0;
}

static int read_file(loader *L, const at *w, const char **out)
{
    const char *s;
    struct stat st;
    if (tg_cy_nonempty_string(L, w, &s) < 0)
        return -1;
    *out = tg_cy_abspath(L, s);
    if (stat(*out, &st) < 0 || !S_ISREG(st.st_mode))
        return tg_cy_fail(L, w, "%s is not a readable file", *out);
    return 0;
}

static int read_mode(loader *L, const at *w, int *shadow)
{
    return tg_cy_two_words(L, w, "enforce", 0, "shadow", 1, shadow);
}

typedef struct override_build {
    tg_mode_override o;
    bool has_mode;
} override_build;

static int ov_upstream(loader *L, const at *w, void *o)
{
    return tg_cy_nonempty_string(L, w, &((override_build *)o)->o.upstream);
}
static int ov_tool(loader *L, const at *w, void *o)
{
    override_build *b = o;
    return tg_cy_nonempty_string(L, w, &b->o.tool) < 0 ? -1 : check_tool_glob(L, w, b->o.tool);
}
static int ov_mode(loader *L, const at *w, void *o)
{
    override_build *b = o;
    b->has_mode = true;
    return read_mode(L, w, &b->o.shadow);
}

static const field override_fields[] = {
    {"upstream", F_CUSTOM, 0, ov_upstream, 0},
    {"tool", F_CUSTOM, 0, ov_tool, 0},
    {"mode", F_CUSTOM, 0, ov_mode, 0},
};

static int pol_overrides(loader *L, const at *w, void *obj)
{
    tg_policy_conf *pc = obj;
    void *it = NULL;
    struct fy_node *item;
    size_t i = 0;
    if (!w->node || !fy_node_is_sequence(w->node))
        return tg_cy_fail(L, w, "expected a list of overrides, found %s", tg_cy_what(w->node));
    size_t n = (size_t)fy_node_sequence_item_count(w->node);
    tg_mode_override *ov = tg_arena_calloc(L->a, n + 1, sizeof *ov);
    while ((item = fy_node_sequence_iterate(w->node, &it))) {
        at ow = tg_cy_at_index(L, w, item, i);
        override_build b;
        memset(&b, 0, sizeof b);
        if (tg_cy_walk_map(L, &ow, override_fields,
                           sizeof override_fields / sizeof *override_fields, &b, 0) < 0)
            return -1;
        if (!b.has_mode)
            return tg_cy_missing(L, &ow, "mode", " (enforce or shadow)");
        if (!b.o.upstream && !b.o.tool)
            return tg_cy_fail(L, &ow, "an override names an upstream, a tool, or both");
        b.o.where = tg_cy_position(L, &ow);
        ov[i++] = b.o;
    }
    pc->overrides = ov;
    pc->noverrides = i;
    return 0;
}

/* "HH:MM" → minutes; "24:00" only when allow_24. */
static int read_clock(loader *L, const at *w, bool allow_24, unsigned *out)
{
    const char *s;
    if (tg_cy_string_value(L, w, &s) < 0)
        return -1;
    if (strlen(s) != 5 || s[2] != ':' || s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' ||
        s[3] < '0' || s[3] > '9' || s[4] < '0' || s[4] > '9')
        return tg_cy_fail(L, w, "expected a time of day as \"HH:MM\" (quoted), found \"%s\"", s);
    unsigned h = (unsigned)((s[0] - '0') * 10 + (s[1] - '0'));
    unsigned m = (unsigned)((s[3] - '0') * 10 + (s[4] - '0'));
    if (m > 59 || h > 24 || (h == 24 && (m != 0 || !allow_24)))
        return tg_cy_fail(L, w, "no such time of day: \"%s\"%s", s,
                          allow_24 ? " (00:00 to 24:00)" : " (00:00 to 23:59)");
    *out = h * 60 + m;
    return 0;
}

static int win_from(loader *L, const at *w, void *o)
{
    return read_clock(L, w, false, &((tg_change_window *)o)->from_min);
}
static int win_to(loader *L, const at *w, void *o)
{
    return read_clock(L, w, true, &((tg_change_window *)o)->to_min);
}

static int win_days(loader *L, const at *w, void *o)
{
    static const char *const names[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    tg_change_window *cw = o;
    const char **days;
    size_t n;
    if (tg_cy_string_list(L, w, NULL, &days, &n) < 0)
        return -1;
    if (n == 0)
        return tg_cy_fail(L, w, "name at least one day (mon, tue, wed, thu, fri, sat, sun)");
    for (size_t i = 0; i < n; i++) {
        unsigned d = 0;
        while (d < 7 && strcmp(days[i], names[d]) != 0)
            d++;
        if (d == 7) {
            at dw = tg_cy_at_index(L, w, fy_node_sequence_get_by_index(w->node, (int)i), i);
            return tg_cy_fail(L, &dw, "expected one of mon, tue, wed, thu, fri, sat, sun, "
                                      "found \"%s\"", days[i]);
        }
        cw->days |= 1u << d;
    }
    return 0;
}

/* An IANA zone name whose file exists under TG_ZONEINFO and starts with "TZif". The
 * policy module parses the file (src/policy/tz.c); this only refuses what cannot work. */
static int win_tz(loader *L, const at *w, void *o)
{
    tg_change_window *cw = o;
    char magic[4];
    if (tg_cy_nonempty_string(L, w, &cw->tz) < 0)
        return -1;
    if (strcmp(cw->tz, "UTC") == 0)
        return 0;
    const char *s = cw->tz;
    bool ok = s[0] != '/' && !strstr(s, "..") && !strstr(s, "//") && s[strlen(s) - 1] != '/';
    for (const char *p = s; ok && *p; p++)
        ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
             strchr("_+-/", *p);
    if (!ok)
        return tg_cy_fail(L, w, "\"%s\" is not a time zone name such as Europe/Paris or UTC",
                          tg_cy_raw_text(L, w));
    const char *path = tg_arena_sprintf(L->tmp, TG_ZONEINFO "/%s", s);
    FILE *fp = fopen(path, "re");
    bool tzif = fp && fread(magic, 1, 4, fp) == 4 && memcmp(magic, "TZif", 4) == 0;
    if (fp)
        fclose(fp);
    if (!tzif)
        return tg_cy_fail(L, w, "unknown time zone \"%s\" (no zone file %s)", s, path);
    return 0;
}

static const field window_fields[] = {
    {"days", F_CUSTOM, 0, win_days, 0},
    {"from", F_CUSTOM, 0, win_from, 0},
    {"to", F_CUSTOM, 0, win_to, 0},
    {"tz", F_CUSTOM, 0, win_tz, 0},
};

static int pol_windows(loader *L, const at *w, void *obj)
{
    tg_policy_conf *pc = obj;
    void *it = NULL;
    struct fy_node_pair *p;
    size_t i = 0;
    if (!w->node || !fy_node_is_mapping(w->node))
        return tg_cy_fail(L, w, "expected a mapping of window names to windows, found %s",
                          tg_cy_what(w->node));
    size_t n = (size_t)fy_node_mapping_item_count(w->node);
    tg_change_window *ws = tg_arena_calloc(L->a, n + 1, sizeof *ws);
    while ((p = fy_node_mapping_iterate(w->node, &it))) {
        struct fy_node *k = fy_node_pair_key(p);
        at kw = {k, k, w->where};
        const char *name;
        bool plain;
        if (tg_cy_scalar(L, &kw, "a window name", &name, &plain) < 0)
            return -1;
        at vw = tg_cy_at_child(L, w, fy_node_pair_value(p), k, name);
        tg_change_window *cw = &ws[i++];
        cw->name = tg_arena_strdup(L->a, name);
        cw->where = tg_cy_position(L, &kw);
        cw->from_min = cw->to_min = 24 * 60 + 1;  /* "unset" */
        if (tg_cy_walk_map(L, &vw, window_fields, sizeof window_fields / sizeof *window_fields,
                           cw, 0) < 0)
            return -1;
        if (!cw->days)
            return tg_cy_missing(L, &vw, "days", " (e.g. [mon, tue, wed, thu, fri])");
        if (cw->from_min > 24 * 60)
            return tg_cy_missing(L, &vw, "from", " (e.g. \"08:00\")");
        if (cw->to_min > 24 * 60)
            return tg_cy_missing(L, &vw, "to", " (e.g. \"18:00\")");
        if (!cw->tz)
            return tg_cy_missing(L, &vw, "tz", " (e.g. Europe/Paris, or UTC)");
        if (cw->from_min == cw->to_min)
            return tg_cy_fail(L, &vw, "from and to are equal: the window would be empty");
    }
    pc->windows = ws;
    pc->nwindows = i;
    return 0;
}

static int pol_policies(loader *L, const at *w, void *o)
{
    return read_dir(L, w, &((tg_policy_conf *)o)->policies_dir);
}
static int pol_entities(loader *L, const at *w, void *o)
{
    return read_file(L, w, &((tg_policy_conf *)o)->entities_file);
}
static int pol_mode(loader *L, const at *w, void *o)
{
    return read_mode(L, w, &((tg_policy_conf *)o)->shadow);
}
static int pol_deny_as(loader *L, const at *w, void *o)
{
    return tg_cy_two_words(L, w, "result", 0, "error", 1, &((tg_policy_conf *)o)->deny_as_error);
}
static int pol_in_window(loader *L, const at *w, void *o)
{
    tg_policy_conf *pc = o;
    return tg_cy_string_list(L, w, NULL, &pc->in_change_window, &pc->nin_change_window);
}

static const field policy_fields[] = {
    {"policies", F_CUSTOM, 0, pol_policies, 0},
    {"entities", F_CUSTOM, 0, pol_entities, 0},
    {"mode", F_CUSTOM, 0, pol_mode, 0},
    {"deny_as", F_CUSTOM, 0, pol_deny_as, 0},
    {"overrides", F_CUSTOM, 0, pol_overrides, 0},
    {"change_windows", F_CUSTOM, 0, pol_windows, 0},
    {"in_change_window", F_CUSTOM, 0, pol_in_window, 0},
};

int tg_cy_read_policy(loader *L, const at *w, void *obj)
{
    tg_config *cfg = obj;
    tg_policy_conf *pc = &cfg->policy;
    if (tg_cy_walk_map(L, w, policy_fields, sizeof policy_fields / sizeof *policy_fields, pc,
                       0) < 0)
        return -1;
    if (!pc->policies_dir)
        return tg_cy_missing(L, w, "policies", " (the directory of .cedar files)");
    for (size_t i = 0; i < pc->nin_change_window; i++) {
        size_t j = 0;
        while (j < pc->nwindows && strcmp(pc->windows[j].name, pc->in_change_window[i]) != 0)
            j++;
        if (j == pc->nwindows) {
            at lw = tg_cy_find_key(L, w, "in_change_window");
            at iw = tg_cy_at_index(L, &lw, fy_node_sequence_get_by_index(lw.node, (int)i), i);
            return tg_cy_fail(L, &iw, "no change window named \"%s\" in change_windows",
                              pc->in_change_window[i]);
        }
    }
    pc->where = tg_cy_position(L, w);
    return 0;
}

int tg_cy_finish_policy(tg_error *err, const tg_config *cfg)
{
    for (size_t i = 0; i < cfg->ncatalog_rules; i++) {
        const tg_cat_rule *r = &cfg->catalog_rules[i];
        if (r->upstream && !tg_config_upstream(cfg, r->upstream))
            return tg_error_set(err, "%s: catalog rule for %s names upstream \"%s\", which is "
                                "not configured", r->where, r->tool, r->upstream);
    }
    for (size_t i = 0; i < cfg->policy.noverrides; i++) {
        const tg_mode_override *o = &cfg->policy.overrides[i];
        if (o->upstream && !tg_config_upstream(cfg, o->upstream))
            return tg_error_set(err, "%s: policy.overrides names upstream \"%s\", which is not "
                                "configured", o->where, o->upstream);
    }
    return 0;
}

/* ------------------------------------------------------------------ YAML as JSON */

static json_t *yaml_scalar_json(struct fy_node *n)
{
    size_t len = 0;
    const char *t = fy_node_get_scalar(n, &len);
    char *s = strndup(t ? t : "", len);
    json_t *v = NULL;
    if (!s)
        abort();
    if (fy_node_get_style(n) == FYNS_PLAIN) {
        char *end;
        if (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
            !strcmp(s, "NULL"))
            v = json_null();
        else if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
            v = json_true();
        else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
            v = json_false();
        else {
            errno = 0;
            long long i = strtoll(s, &end, 10);
            if (!*end && errno == 0 && (isdigit((unsigned char)s[0]) || s[0] == '-'))
                v = json_integer(i);
            else {
                double d = strtod(s, &end);
                if (!*end && (isdigit((unsigned char)s[0]) || s[0] == '-' || s[0] == '.'))
                    v = json_real(d);
            }
        }
    }
    if (!v)
        v = json_stringn(s, len);
    free(s);
    return v ? v : json_string("");
}

static json_t *yaml_node_json(struct fy_node *n, int depth)
{
    void *it = NULL;
    if (!n || depth > 64)
        return json_null();
    if (fy_node_is_scalar(n))
        return yaml_scalar_json(n);
    if (fy_node_is_sequence(n)) {
        json_t *arr = json_array();
        struct fy_node *item;
        while ((item = fy_node_sequence_iterate(n, &it)))
            json_array_append_new(arr, yaml_node_json(item, depth + 1));
        return arr;
    }
    json_t *obj = json_object();
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(n, &it))) {
        size_t len = 0;
        struct fy_node *k = fy_node_pair_key(p);
        const char *t = k && fy_node_is_scalar(k) ? fy_node_get_scalar(k, &len) : NULL;
        char *key = strndup(t ? t : "", len);
        if (!key)
            abort();
        json_object_set_new(obj, key, yaml_node_json(fy_node_pair_value(p), depth + 1));
        free(key);
    }
    return obj;
}

json_t *tg_config_yaml_json(const char *path, tg_error *err)
{
    FILE *fp = fopen(path, "re");
    if (!fp) {
        tg_error_set(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct fy_document *doc = tg_cy_parse_yaml(path, fp, err);
    fclose(fp);
    if (!doc)
        return NULL;
    json_t *v = yaml_node_json(fy_document_root(doc), 0);
    fy_document_destroy(doc);
    return v;
}
