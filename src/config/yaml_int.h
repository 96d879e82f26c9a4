/*
 * yaml_int.h — private to src/config: the YAML walking toolkit of load.c, shared with the
 * readers of further sections (policy_conf.c: `catalog:`, `policy:` and catalog preset
 * files). Everything here reports errors as "FILE:LINE:COL: key.path: message" through
 * tg_cy_fail, so every section of the configuration speaks with one voice.
 */
#ifndef TG_CONFIG_YAML_INT_H
#define TG_CONFIG_YAML_INT_H

#include <stdbool.h>
#include <stdio.h>
#include <libfyaml.h>

#include "config/tg_config.h"

typedef struct loader {
    const char *file;   /* the path as given: the FILE in "FILE:LINE:COL: ..." */
    const char *dir;    /* absolute directory of the file (in `a`); base of relative paths */
    tg_arena *a;        /* the snapshot's arena: everything the snapshot keeps */
    tg_arena *tmp;      /* key paths and copies used only while loading */
    tg_error *err;
} loader;

/* A value being read: its node (NULL or an empty scalar for `key:` with nothing after
 * it), the key it belongs to (its position is used when the value has none), and the
 * dotted key path used in messages ("upstreams[0].transport"; "" for the root). */
typedef struct at {
    struct fy_node *node;
    struct fy_node *key;
    const char *where;
} at;

/* Reads a list of strings; `check` (optional) validates each item at its position. */
typedef int (*item_check)(loader *L, const at *w, const char *s);

typedef enum {
    F_STRING,    /* non-empty string → const char * */
    F_SIZE,      /* "4MiB" → size_t */
    F_COUNT,     /* unquoted positive integer → size_t */
    F_DURATION,  /* "10s" → uint32_t milliseconds */
    F_MS64,      /* "10s" → int64_t milliseconds (> 0) */
    F_SECONDS,   /* "30d", "1h", "0" → int64_t seconds (0 allowed: "none") */
    F_BOOL,      /* true / false → int */
    F_NODE,      /* the `at` itself is stored, for a check that needs sibling keys */
    F_CUSTOM,    /* fn reads the value */
    F_EARLIER,   /* read before the walk (upstream transport): accepted, not re-read */
} field_kind;

typedef int (*field_fn)(loader *L, const at *w, void *obj);

typedef struct field {
    const char *key;
    field_kind kind;
    size_t off;       /* where the value goes in obj (not for F_CUSTOM / F_EARLIER) */
    field_fn fn;      /* F_CUSTOM only */
    unsigned scope;   /* upstream keys: bit set of transports that accept it; 0 = any */
} field;

int tg_cy_fail(loader *L, const at *w, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const char *tg_cy_what(struct fy_node *n);
at tg_cy_at_child(loader *L, const at *parent, struct fy_node *node, struct fy_node *key,
                  const char *name);
at tg_cy_at_index(loader *L, const at *parent, struct fy_node *item, size_t i);
int tg_cy_scalar(loader *L, const at *w, const char *expected, const char **text, bool *plain);
const char *tg_cy_abspath(loader *L, const char *p);
int tg_cy_string_value(loader *L, const at *w, const char **out);
int tg_cy_nonempty_string(loader *L, const at *w, const char **out);
const char *tg_cy_raw_text(loader *L, const at *w);
int tg_cy_string_list(loader *L, const at *w, item_check check, const char ***out, size_t *n);
int tg_cy_walk_map(loader *L, const at *w, const field *fields, size_t n, void *obj,
                   unsigned scope);
at tg_cy_find_key(loader *L, const at *w, const char *name);
int tg_cy_missing(loader *L, const at *w, const char *key, const char *hint);
/* true / false (unquoted) → 1 / 0 (policy_conf.c). */
int tg_cy_bool(loader *L, const at *w, int *out);
int tg_cy_two_words(loader *L, const at *w, const char *a, int va, const char *b, int vb,
                    int *out);
struct fy_document *tg_cy_parse_yaml(const char *file, FILE *fp, tg_error *err);
/* "FILE:LINE:COL" of w (the same position tg_cy_fail would report), from L->a. */
const char *tg_cy_position(loader *L, const at *w);

/* The `catalog:` and `policy:` sections (policy_conf.c). obj is the tg_config. */
int tg_cy_read_catalog(loader *L, const at *w, void *obj);
int tg_cy_read_policy(loader *L, const at *w, void *obj);
/* The `store:`, `audit:` and `auth:` sections (runtime_conf.c). obj is the tg_config.
 * tg_cy_runtime_defaults runs before the walk (defaults that need the file's directory
 * and the host name), tg_cy_finish_runtime after it (values that follow other keys). */
int tg_cy_read_store(loader *L, const at *w, void *obj);
int tg_cy_read_audit(loader *L, const at *w, void *obj);
int tg_cy_read_auth(loader *L, const at *w, void *obj);
int tg_cy_runtime_defaults(loader *L, tg_config *cfg);
void tg_cy_finish_runtime(tg_config *cfg);
/* The `admin:` section (admin_conf.c). obj is the tg_config. */
int tg_cy_read_admin(loader *L, const at *w, void *obj);
/* The `approvals:` section (approvals_conf.c). obj is the tg_config. The finish step runs
 * after the whole file is read (admin:, auth.oauth and upstream names it refers to) and
 * fills the default inbox_url; root is the document's root mapping. */
int tg_cy_read_approvals(loader *L, const at *w, void *obj);
int tg_cy_finish_approvals(loader *L, const at *root, tg_config *cfg);
/* Cross-references checked once the whole file is read (upstream names). */
int tg_cy_finish_policy(tg_error *err, const tg_config *cfg);

#endif /* TG_CONFIG_YAML_INT_H */
