/*
 * cedar_int.h — private data structures of the Cedar engine: counted strings, entity
 * uids, values, the AST, the entity store and the evaluator's entry points.
 */
#ifndef CEDAR_INT_H
#define CEDAR_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "cedar/cedar.h"
#include "cedar/ext/cedar_ext.h"

/* Parser and evaluator nesting bound: deeper expressions are a parse error, so evaluation
 * (which recurses over the AST) is bounded by the same number. */
#define CEDAR_MAX_DEPTH 200

/* A counted string: Cedar strings may contain NUL. p need not be NUL-terminated. */
typedef struct cstr {
    const char *p;
    uint32_t    n;
} cstr;

/* The first byte is compared inline: most unequal strings differ there, and memcmp's call
 * costs more than the compare on the short keys and names Cedar data is made of. */
static inline bool cstr_eq(cstr a, cstr b)
{
    return a.n == b.n && (a.n == 0 || (a.p[0] == b.p[0] && memcmp(a.p, b.p, a.n) == 0));
}
int      cstr_cmp(cstr a, cstr b);
uint64_t cedar_hash_bytes(const void *p, size_t n, uint64_t seed);
size_t   cedar_utf8_encode(char u[4], uint32_t cp);  /* a scalar value as UTF-8; returns 1..4 */
void     cedar_utf8_put(tg_buf *b, uint32_t cp);     /* appends a scalar value as UTF-8 */
size_t   cedar_utf8_seq(const char *p, size_t avail);  /* well-formed sequence length, or 0 */

/* An entity uid. Invariant: hash == cedar_uid_hash(type, id); uids are compared with
 * cedar_uid_eq (hash first), never by pointer. */
typedef struct cedar_uid {
    uint64_t hash;
    cstr     type;
    cstr     id;
} cedar_uid;

uint64_t cedar_uid_hash(cstr type, cstr id);
static inline bool cedar_uid_eq(const cedar_uid *a, const cedar_uid *b)
{
    return a == b || (a->hash == b->hash && cstr_eq(a->type, b->type) && cstr_eq(a->id, b->id));
}
/* A uid with copies of type and id. */
cedar_uid *cedar_uid_new(tg_arena *a, cstr type, cstr id);
/* A uid that refers to type and id, which must outlive it. */
cedar_uid *cedar_uid_make(tg_arena *a, cstr type, cstr id);

/* ---------------------------------------------------------------- values */

typedef enum {
    CV_BOOL = 1, CV_LONG, CV_STRING, CV_ENTITY, CV_SET, CV_RECORD,
    CV_IP, CV_DECIMAL, CV_DATETIME, CV_DURATION,
} cv_kind;

typedef struct cv_set cv_set;
typedef struct cv_record cv_record;

typedef struct cedar_value {
    uint8_t kind;  /* cv_kind */
    union {
        bool                b;
        int64_t             l;       /* Long, decimal (scaled 10^4), datetime/duration (ms) */
        cstr                s;
        const cedar_uid    *uid;
        const cv_set       *set;
        const cv_record    *rec;
        const cedar_ipaddr *ip;
    } u;
} cedar_value;

/* Invariant: elements are pairwise unequal (duplicates removed at construction). */
struct cv_set {
    uint32_t    n;
    cedar_value v[];
};

/* Invariant: keys strictly ascending by cstr_cmp (unique), so lookup is a binary search and
 * equality is element-wise. */
struct cv_record {
    uint32_t    n;
    cstr       *keys;
    cedar_value *vals;
};

bool cv_equal(const cedar_value *a, const cedar_value *b);
/* Builds a set from n values, removing duplicates. */
const cv_set *cv_set_make(tg_arena *a, const cedar_value *v, uint32_t n);
bool cv_set_contains(const cv_set *s, const cedar_value *v);
/* Builds a record; returns NULL and sets *dup to the duplicated key if keys repeat. */
const cv_record *cv_record_make(tg_arena *a, cstr *keys, cedar_value *vals, uint32_t n,
                                cstr *dup);
/* The same, but sorts keys and vals in place and keeps them (the caller gives them up). */
const cv_record *cv_record_adopt(tg_arena *a, cstr *keys, cedar_value *vals, uint32_t n,
                                 cstr *dup);
const cedar_value *cv_record_get(const cv_record *r, cstr key);
const char *cv_kind_name(int kind);
/* Appends a short Cedar-syntax rendering of v (for error messages). */
void cv_describe(const cedar_value *v, tg_buf *out);

/* ---------------------------------------------------------------- AST */

typedef enum {
    N_VALUE,      /* literal: val (bool, long, string, entity) */
    N_VAR,        /* var: principal, action, resource, context */
    N_SLOT,       /* ?principal / ?resource (templates; unlinked slots cannot evaluate) */
    N_NOT, N_NEG, /* a */
    N_AND, N_OR,  /* a, b */
    N_IF,         /* a ? b : c */
    N_EQ, N_NE, N_LT, N_LE, N_GT, N_GE, N_IN,
    N_ADD, N_SUB, N_MUL,
    N_HAS,        /* a has keys[0].keys[1]... (npath components) */
    N_GETATTR,    /* a.str */
    N_LIKE,       /* a like pattern */
    N_IS,         /* a is str [in b] */
    N_SET,        /* args */
    N_RECORD,     /* keys[i]: args[i] */
    N_METHOD,     /* args[0].fn(args[1..]) */
    N_CALL,       /* fn(args) */
} node_kind;

typedef enum { VAR_PRINCIPAL, VAR_ACTION, VAR_RESOURCE, VAR_CONTEXT } var_kind;

/* Builtin and extension functions, resolved at parse time so evaluation never compares
 * names. FN_* values below FN_FIRST_EXT are methods of core types. */
typedef enum {
    FN_CONTAINS, FN_CONTAINS_ALL, FN_CONTAINS_ANY, FN_IS_EMPTY, FN_GET_TAG, FN_HAS_TAG,
    FN_FIRST_EXT,
    FN_IP = FN_FIRST_EXT, FN_DECIMAL, FN_DATETIME, FN_DURATION,
    FN_LESS_THAN, FN_LESS_THAN_OR_EQUAL, FN_GREATER_THAN, FN_GREATER_THAN_OR_EQUAL,
    FN_IS_IPV4, FN_IS_IPV6, FN_IS_LOOPBACK, FN_IS_MULTICAST, FN_IS_IN_RANGE,
    FN_OFFSET, FN_DURATION_SINCE, FN_TO_DATE, FN_TO_TIME,
    FN_TO_DAYS, FN_TO_HOURS, FN_TO_MINUTES, FN_TO_SECONDS, FN_TO_MILLISECONDS,
    FN_COUNT
} fn_id;

typedef struct fn_info {
    const char *name;
    bool        method;  /* called as x.name(...) rather than name(...) */
    int         nargs;   /* arguments including the receiver */
} fn_info;
extern const fn_info cedar_fns[FN_COUNT];

/* A `like` pattern: literal chunks separated by wildcards. Invariant: nchunks ==
 * number of '*' + 1; chunks may be empty (e.g. "*a" is chunks "", "a"). */
typedef struct like_pat {
    uint32_t nchunks;
    cstr    *chunks;
} like_pat;
bool cedar_like_match(const like_pat *p, cstr s);

typedef struct cedar_node cedar_node;
struct cedar_node {
    uint8_t   kind;    /* node_kind */
    uint8_t   var;     /* N_VAR, N_SLOT: var_kind */
    uint16_t  fn;      /* N_METHOD, N_CALL: fn_id */
    uint32_t  line, col;
    cedar_node *a, *b, *c;
    cstr      str;     /* N_GETATTR attribute, N_IS entity type */
    cedar_value val;   /* N_VALUE */
    like_pat  pat;     /* N_LIKE */
    uint32_t  nargs;   /* N_SET, N_RECORD, N_METHOD, N_CALL */
    cedar_node **args;
    cstr     *keys;    /* N_RECORD: one key per arg; N_HAS: the attribute path */
    uint32_t  npath;   /* N_HAS: path length, >= 1 */
};

/* Scope constraint of principal/action/resource. */
typedef enum {
    SC_ANY, SC_EQ, SC_IN, SC_IS, SC_IS_IN, SC_IN_SET /* action in [..] */
} scope_op;

typedef struct scope {
    uint8_t  op;        /* scope_op */
    bool     slot;      /* entity is ?principal / ?resource (template) */
    cstr     type;      /* SC_IS, SC_IS_IN */
    const cedar_uid *uid;       /* SC_EQ, SC_IN, SC_IS_IN (NULL when slot) */
    uint32_t nuids;             /* SC_IN_SET */
    const cedar_uid **uids;
} scope;

/* `@key` without a value reads as value "" with has_value false (the EST says null). */
typedef struct annotation {
    cstr key;
    cstr value;
    bool has_value;
} annotation;

typedef struct cond {
    bool        when;  /* false: unless */
    cedar_node *body;
} cond;

typedef struct cedar_policy {
    uint8_t     effect;   /* cedar_effect */
    const char *id;       /* @id value or "policyN" */
    uint32_t    nannos;
    annotation *annos;
    scope       principal, action, resource;
    uint32_t    nconds;
    cond       *conds;
} cedar_policy;

typedef struct policy_index policy_index;

struct cedar_policy_set {
    tg_arena      *arena;   /* owns everything below */
    uint32_t       n;
    cedar_policy  *policies;
    policy_index  *index;
};

/* ---------------------------------------------------------------- entities */

/* An open-addressed set of uid pointers. Invariant: cap is 0 or a power of two greater
 * than n; empty slots are NULL. */
typedef struct uid_set {
    uint32_t          n, cap;
    const cedar_uid **slots;
} uid_set;
bool uid_set_has(const uid_set *s, const cedar_uid *u);
void uid_set_add(tg_arena *a, uid_set *s, const cedar_uid *u);

typedef struct cedar_entity {
    const cedar_uid *uid;
    const cv_record *attrs;
    const cv_record *tags;
    uint32_t         nparents;
    const cedar_uid **parents;
    uid_set          ancestors;   /* transitive closure of parents, excluding nothing */
} cedar_entity;

/* Entity lookup table. Invariant: cap is a power of two > 2*n. */
typedef struct entity_map {
    uint32_t       n, cap;
    cedar_entity **slots;
} entity_map;
const cedar_entity *entity_map_get(const entity_map *m, const cedar_uid *u);
void entity_map_put(tg_arena *a, entity_map *m, cedar_entity *e);

struct cedar_store {
    tg_arena  *arena;
    entity_map map;
};

/* ---------------------------------------------------------------- JSON (json.c) */

#define CEDAR_JSON_MAX_DEPTH 128

typedef enum { CJ_NULL, CJ_TRUE, CJ_FALSE, CJ_INT, CJ_REAL, CJ_STR, CJ_ARR, CJ_OBJ } cj_kind;

/* A parsed JSON value in an arena. Invariants: CJ_OBJ keys are unique; keys[i] names
 * items[i]; strings are valid UTF-8 and may contain NUL. */
typedef struct cj cj;
struct cj {
    uint8_t  kind;   /* cj_kind */
    uint32_t n;      /* CJ_ARR, CJ_OBJ: number of items */
    int64_t  i;      /* CJ_INT */
    cstr     s;      /* CJ_STR */
    cj     **items;
    cstr    *keys;   /* CJ_OBJ */
};
cj *cj_parse(tg_arena *a, const char *buf, size_t len, tg_error *err);
/* The member named key (n bytes) of obj; NULL when absent or obj is not an object. */
const cj *cj_getn(const cj *obj, const char *key, size_t n);
/* Inline so that strlen of a literal key folds to a constant. */
static inline const cj *cj_get(const cj *obj, const char *key)
{
    return cj_getn(obj, key, strlen(key));
}

/* How a DOM becomes values: allocations come from a. Invariant: copy is false only when
 * the DOM outlives every value built from it (e.g. both live in the request's arena); the
 * values then share the DOM's strings instead of copying them. */
typedef struct cj_conv {
    tg_arena *a;
    bool      copy;
} cj_conv;

/* Parses one entity JSON object into an entity (closure not computed). */
cedar_entity *cedar_entity_from_cj(const cj_conv *cv, const cj *j, tg_error *err);
/* Converts a JSON value in Cedar's entity/context encoding. */
int cedar_value_from_cj(const cj_conv *cv, const cj *j, cedar_value *out, int depth, tg_error *err);
int cedar_uid_from_cj(const cj_conv *cv, const cj *j, const cedar_uid **out, tg_error *err);
cedar_store *cedar_store_from_cj(const cj *entities, tg_error *err);
/* Entity type names are Cedar paths (Ident {:: Ident}, no reserved words); -1 and err else. */
int cedar_check_type_name(cstr t, tg_error *err);
/* The extension function named name (FN_FIRST_EXT..), or -1. */
int cedar_fn_by_name(cstr name);
int cedar_request_from_cj(cedar_request *rq, const cj *req, tg_error *err);

struct cedar_request {
    tg_arena          *arena;
    const cedar_store *store;
    const cedar_uid   *principal, *action, *resource;
    cedar_value        context;      /* always a record */
    uint32_t           nextra, extra_cap;
    cedar_entity     **extra;        /* request-scoped entities */
    bool               closed;       /* extras' ancestor closures computed */
};
const cedar_entity *cedar_request_entity(const cedar_request *rq, const cedar_uid *u);
/* Adds a request-scoped entity (closure not computed): -1 when its uid already exists. */
int cedar_request_add_entity(cedar_request *rq, cedar_entity *e, tg_error *err);
void cedar_request_close(cedar_request *rq);

/* ---------------------------------------------------------------- evaluation */

/* Evaluates policy p for request rq. Returns 1 (satisfied), 0 (not), or -1 (error, with a
 * message in *msg allocated from the request arena). */
int cedar_eval_policy(const cedar_policy *p, cedar_request *rq, const char **msg);
/* Applies an extension function or method to evaluated arguments. */
int cedar_call_fn(tg_arena *a, int fn, const cedar_value *args, uint32_t nargs,
                  cedar_value *out, tg_error *err);

/* ---------------------------------------------------------------- index */

policy_index *cedar_index_build(cedar_policy_set *ps);

#endif /* CEDAR_INT_H */
