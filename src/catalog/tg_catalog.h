/*
 * tg_catalog.h — the tool catalog: which risk a tool carries, and which typed resource a
 * call's arguments name (issue 5; docs/policy.md "Catalog").
 *
 * A tg_catalog is compiled from a configuration snapshot's rules (inline `catalog.tools`,
 * then presets; see tg_config.h) and holds a reference on that snapshot. Lookups are pure
 * functions of the catalog, except tg_catalog_log_once, which remembers what it logged.
 *
 * Threads: classify and resolve may run on any thread; tg_catalog_log_once only on the
 * loop thread (it writes the catalog's "already logged" set).
 */
#ifndef TG_CATALOG_H
#define TG_CATALOG_H

#include <stddef.h>

#include "common/tg_common.h"
#include "config/tg_config.h"

typedef struct tg_catalog tg_catalog;

typedef enum {
    TG_CAT_RULE = 1,        /* an inline catalog.tools rule */
    TG_CAT_PRESET,          /* a rule from a preset file */
    TG_CAT_ANNOTATIONS,     /* no rule: the upstream's readOnlyHint / destructiveHint */
    TG_CAT_DEFAULT,         /* no rule, no annotations: high */
} tg_cat_origin;

/* What the catalog says about one tool. rule is the matching rule (NULL for annotations
 * and default); its resource part may be empty (risk-only rule). */
typedef struct tg_cat_entry {
    tg_risk risk;
    tg_cat_origin origin;
    const tg_cat_rule *rule;
} tg_cat_entry;

typedef struct tg_uid {
    const char *type;   /* Cedar entity type, e.g. Jira::Issue */
    const char *id;
} tg_uid;

typedef enum {
    TG_RES_TYPED = 1,    /* resolved from the arguments */
    TG_RES_SERVER,       /* the tool has no resource rule: Mcp::Server::"<upstream>" */
    TG_RES_UNRESOLVED,   /* a rule exists but the arguments do not yield a safe id; uid is
                            Mcp::Server::"<upstream>" and `reason` says why */
} tg_res_state;

/* A resolved resource. Strings live in the arena given to tg_catalog_resolve.
 * Invariant: parents are listed nearest first (Jira::Project before anything above it);
 * parent_attrs[i] is the rule's attr name for parents[i], or NULL. */
typedef struct tg_resource {
    tg_res_state state;
    int required;             /* from the rule; 0 without a rule */
    const char *reason;       /* TG_RES_UNRESOLVED only: which argument and what was wrong */
    tg_uid uid;
    const tg_uid *parents;
    const char *const *parent_attrs;
    size_t nparents;
} tg_resource;

/* Longest id (and argument value used in one) that resolves; longer → unresolved. */
#define TG_CAT_MAX_ID 256

/* Compiles the rules of cfg (regexes) and takes a reference on cfg. */
tg_catalog *tg_catalog_new(tg_config *cfg, tg_error *err);
void tg_catalog_free(tg_catalog *cat);

/* Classifies `tool` (as the upstream names it, before any prefix) of `upstream`.
 * Inline rules win over presets; within each, an exact name wins over a glob, then file
 * order. Without a rule: annotations (the tool's `annotations` object from tools/list,
 * or NULL) give read (readOnlyHint), high (destructiveHint; also when both are set) or
 * write; no annotations at all give high. */
void tg_catalog_classify(const tg_catalog *cat, const char *upstream, const char *tool,
                         const json_t *annotations, tg_cat_entry *out);

/* Logs (warn) the classification of a tool that no rule covers, once per upstream and
 * tool for the catalog's lifetime. Returns 1 when it logged, 0 when it had already (or
 * the entry came from a rule). Loop thread only. */
int tg_catalog_log_once(tg_catalog *cat, const char *upstream, const char *tool,
                        const tg_cat_entry *e);

/* Turns the arguments (an object, or absent) into the typed resource of e's rule. Never
 * fails: an argument that is missing, not a string (or integer where the rule says int:),
 * empty, longer than TG_CAT_MAX_ID, non-ASCII, with control characters, "/", "\" or
 * "..", or that does not match the rule's pattern makes the resource TG_RES_UNRESOLVED
 * with a reason. The caller denies RESOURCE_UNRESOLVED when out->required. */
void tg_catalog_resolve(const tg_catalog *cat, const tg_cat_entry *e, const char *upstream,
                        tg_jref args, tg_arena *a, tg_resource *out);

/* "read" / "write" / "high", and "rule" / "preset" / "annotations" / "default". */
const char *tg_risk_name(tg_risk r);
const char *tg_cat_origin_name(tg_cat_origin o);

/* Shell-style glob match used for tool names in rules and overrides (fnmatch, no flags). */
int tg_catalog_glob_match(const char *glob, const char *name);

#endif /* TG_CATALOG_H */
