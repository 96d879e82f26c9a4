/*
 * entities.c — the entity store, Cedar's JSON value encoding, and requests.
 *
 * How it fits: cedar_store_load turns Cedar's entity JSON into an immutable hash map of
 * entities whose ancestor closures are computed once here, so `in` during evaluation is
 * a single hash probe. A cedar_request (arena-scoped) names principal/action/resource,
 * holds the context record, and may add request-scoped entities: an overlay looked up
 * before the store, whose closures are computed per request from the store's closures,
 * so the store is never rebuilt or modified while serving.
 *
 * Limitation (by design): a store entity whose parent is only defined as a request-scoped
 * entity does not inherit that entity's ancestors; the overlay is meant for leaves such
 * as the calling principal and the resource of one call.
 */
#include "cedar/cedar_int.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- hash sets */

bool uid_set_has(const uid_set *s, const cedar_uid *u)
{
    if (!s->cap) return false;
    uint32_t mask = s->cap - 1;
    for (uint32_t i = (uint32_t)u->hash & mask;; i = (i + 1) & mask) {
        const cedar_uid *x = s->slots[i];
        if (!x) return false;
        if (cedar_uid_eq(x, u)) return true;
    }
}

static void uid_set_insert(uid_set *s, const cedar_uid *u)
{
    uint32_t mask = s->cap - 1;
    uint32_t i = (uint32_t)u->hash & mask;
    while (s->slots[i]) i = (i + 1) & mask;
    s->slots[i] = u;
    s->n++;
}

void uid_set_add(tg_arena *a, uid_set *s, const cedar_uid *u)
{
    if (uid_set_has(s, u)) return;
    if ((s->n + 1) * 2 > s->cap) {
        uid_set old = *s;
        s->cap = old.cap ? old.cap * 2 : 8;
        s->n = 0;
        s->slots = tg_arena_calloc(a, s->cap, sizeof *s->slots);
        for (uint32_t i = 0; i < old.cap; i++)
            if (old.slots[i]) uid_set_insert(s, old.slots[i]);
    }
    uid_set_insert(s, u);
}

const cedar_entity *entity_map_get(const entity_map *m, const cedar_uid *u)
{
    if (!m->cap) return NULL;
    uint32_t mask = m->cap - 1;
    for (uint32_t i = (uint32_t)u->hash & mask;; i = (i + 1) & mask) {
        cedar_entity *e = m->slots[i];
        if (!e) return NULL;
        if (cedar_uid_eq(e->uid, u)) return e;
    }
}

void entity_map_put(tg_arena *a, entity_map *m, cedar_entity *e)
{
    if ((m->n + 1) * 2 > m->cap) {
        entity_map old = *m;
        m->cap = old.cap ? old.cap * 2 : 16;
        m->n = 0;
        m->slots = tg_arena_calloc(a, m->cap, sizeof *m->slots);
        for (uint32_t i = 0; i < old.cap; i++)
            if (old.slots[i]) entity_map_put(a, m, old.slots[i]);
    }
    uint32_t mask = m->cap - 1;
    uint32_t i = (uint32_t)e->uid->hash & mask;
    while (m->slots[i]) i = (i + 1) & mask;
    m->slots[i] = e;
    m->n++;
}

/* ---------------------------------------------------------------- JSON */

/* Entity type names are Cedar paths: Ident {:: Ident}, no reserved words. */
int cedar_check_type_name(cstr t, tg_error *err)
{
    static const struct { const char *w; uint32_t n; } reserved[] = {
        {"true", 4}, {"false", 5}, {"if", 2}, {"then", 4}, {"else", 4}, {"in", 2},
        {"like", 4}, {"has", 3}, {"is", 2}, {"__cedar", 7}};
    uint32_t i = 0;
    if (t.n == 0) return tg_error_set(err, "entity type must not be empty");
    while (i <= t.n) {
        uint32_t start = i;
        while (i < t.n && t.p[i] != ':') {
            char c = t.p[i];
            bool ok = c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (i > start && c >= '0' && c <= '9');
            if (!ok) goto bad;
            i++;
        }
        if (i == start) goto bad;
        for (size_t r = 0; r < sizeof reserved / sizeof reserved[0]; r++)
            if (reserved[r].n == i - start && reserved[r].w[0] == t.p[start] &&
                memcmp(reserved[r].w, t.p + start, i - start) == 0)
                goto bad;
        if (i == t.n) return 0;
        if (i + 1 >= t.n || t.p[i + 1] != ':') goto bad;
        i += 2;
    }
bad:
    return tg_error_set(err, "invalid entity type `%.*s` (expected Ident::Ident...)",
                        (int)(t.n > 60 ? 60 : t.n), t.p);
}

/* Fails when a JSON value has a number with a fraction or exponent anywhere inside it. The
 * reference reads every value whole before looking at escapes, so such a number fails the
 * request even inside a field an escape ignores. */
static int check_no_reals(const cj *j, tg_error *err)
{
    if (j->kind == CJ_REAL)
        return tg_error_set(err, "numbers with a fraction or exponent are not Cedar values");
    for (uint32_t i = 0; (j->kind == CJ_ARR || j->kind == CJ_OBJ) && i < j->n; i++)
        if (check_no_reals(j->items[i], err)) return -1;
    return 0;
}

/* The `__entity` payload shape: an object with string "type" and "id" (other fields are
 * ignored, as the reference does). */
static bool is_type_and_id(const cj *x)
{
    const cj *t = cj_get(x, "type"), *id = cj_get(x, "id");
    return t && t->kind == CJ_STR && id && id->kind == CJ_STR;
}

/* A string of the DOM as a value's string: shared or copied (see cj_conv). */
static cstr conv_str(const cj_conv *cv, cstr s)
{
    return cv->copy ? (cstr){tg_arena_strndup(cv->a, s.p, s.n), s.n} : s;
}

static int uid_from_type_and_id(const cj_conv *cv, const cj *x, const cedar_uid **out, tg_error *err)
{
    const cj *t = cj_get(x, "type");
    if (check_no_reals(x, err) || cedar_check_type_name(t->s, err)) return -1;
    *out = cedar_uid_make(cv->a, conv_str(cv, t->s), conv_str(cv, cj_get(x, "id")->s));
    return 0;
}

/* An entity uid where only a uid may appear (entity "uid", "parents", request variables):
 * {"__entity": {"type","id"}} or {"type","id"} itself; {"__expr": "..."} is refused. */
int cedar_uid_from_cj(const cj_conv *cv, const cj *j, const cedar_uid **out, tg_error *err)
{
    const cj *x = cj_get(j, "__expr");
    if (x && x->kind == CJ_STR) return tg_error_set(err, "the `__expr` escape is no longer supported");
    x = cj_get(j, "__entity");
    if (x && is_type_and_id(x)) return uid_from_type_and_id(cv, x, out, err);
    if (is_type_and_id(j)) return uid_from_type_and_id(cv, j, out, err);
    return tg_error_set(err, "expected an entity uid {\"type\": \"...\", \"id\": \"...\"}");
}

int cedar_fn_by_name(cstr name)
{
    for (int i = FN_FIRST_EXT; i < FN_COUNT; i++)
        if (strlen(cedar_fns[i].name) == name.n && memcmp(cedar_fns[i].name, name.p, name.n) == 0)
            return i;
    return -1;
}

/* The arguments of an `__extn` payload x: "arg" (one value) when present, else "args" when
 * it is an array. NULL when x does not have the shape of an extension call (an object of at
 * least two fields with a string "fn"), which makes {"__extn": x} a plain record. */
static const cj *extn_args(const cj *x, bool *single)
{
    const cj *fn = cj_get(x, "fn"), *arg = cj_get(x, "arg"), *args = cj_get(x, "args");
    if (!fn || fn->kind != CJ_STR || x->n < 2) return NULL;
    *single = arg != NULL;
    return arg ? arg : args && args->kind == CJ_ARR ? args : NULL;
}

static int extn_from_cj(const cj_conv *cv, const cj *x, const cj *args, bool single, cedar_value *out,
                        int depth, tg_error *err)
{
    if (check_no_reals(x, err)) return -1;
    const cj *fn = cj_get(x, "fn");
    int id = cedar_fn_by_name(fn->s);
    if (id < 0)
        return tg_error_set(err, "extension function `%.*s` does not exist",
                            (int)(fn->s.n > 40 ? 40 : fn->s.n), fn->s.p);
    /* checked before converting: it bounds vals (no extension function takes more) */
    uint32_t n = single ? 1 : args->n;
    if ((int)n != cedar_fns[id].nargs)
        return tg_error_set(err, "wrong number of arguments to extension function `%s`: expected %d, got %u",
                            cedar_fns[id].name, cedar_fns[id].nargs, n);
    cedar_value vals[4];
    for (uint32_t i = 0; i < n; i++)
        if (cedar_value_from_cj(cv, single ? args : args->items[i], &vals[i], depth + 1, err)) return -1;
    return cedar_call_fn(cv->a, id, vals, n, out, err);
}

/* The fields of object j as a record, each value converted; j itself is never an escape. */
static int record_fields_from_cj(const cj_conv *cv, const cj *j, cedar_value *out, int depth, tg_error *err)
{
    cedar_value *vals = tg_arena_alloc(cv->a, (j->n ? j->n : 1) * sizeof *vals);
    cstr *keys = tg_arena_alloc(cv->a, (j->n ? j->n : 1) * sizeof *keys);
    for (uint32_t i = 0; i < j->n; i++) {
        keys[i] = conv_str(cv, j->keys[i]);
        if (cedar_value_from_cj(cv, j->items[i], &vals[i], depth + 1, err)) return -1;
    }
    out->kind = CV_RECORD;
    out->u.rec = cv_record_adopt(cv->a, keys, vals, j->n, NULL);  /* keys are unique */
    return 0;
}

/* Cedar's JSON value encoding. An object of exactly one field is an escape when its payload
 * has the escape's shape ({"__expr": string} is refused: that escape was retired); any other
 * object, a malformed escape included, is a plain record, as the reference reads it. */
int cedar_value_from_cj(const cj_conv *cv, const cj *j, cedar_value *out, int depth, tg_error *err)
{
    if (depth > CEDAR_MAX_DEPTH) return tg_error_set(err, "value nests deeper than %d levels", CEDAR_MAX_DEPTH);
    switch (j->kind) {
    case CJ_TRUE:
    case CJ_FALSE:
        out->kind = CV_BOOL;
        out->u.b = j->kind == CJ_TRUE;
        return 0;
    case CJ_INT:
        out->kind = CV_LONG;
        out->u.l = j->i;
        return 0;
    case CJ_STR:
        out->kind = CV_STRING;
        out->u.s = conv_str(cv, j->s);
        return 0;
    case CJ_ARR: {
        cedar_value *v = tg_arena_alloc(cv->a, (j->n ? j->n : 1) * sizeof *v);
        for (uint32_t i = 0; i < j->n; i++)
            if (cedar_value_from_cj(cv, j->items[i], &v[i], depth + 1, err)) return -1;
        out->kind = CV_SET;
        out->u.set = cv_set_make(cv->a, v, j->n);
        return 0;
    }
    case CJ_OBJ: {
        const cj *x = j->n == 1 ? j->items[0] : NULL, *args;
        cstr key = j->n == 1 ? j->keys[0] : (cstr){"", 0};
        bool single;
        if (x && cstr_eq(key, (cstr){"__expr", 6}) && x->kind == CJ_STR)
            return tg_error_set(err, "the `__expr` escape is no longer supported");
        if (x && cstr_eq(key, (cstr){"__entity", 8}) && x->kind == CJ_OBJ && x->n >= 2 && is_type_and_id(x)) {
            out->kind = CV_ENTITY;
            return uid_from_type_and_id(cv, x, &out->u.uid, err);
        }
        if (x && cstr_eq(key, (cstr){"__extn", 6}) && (args = extn_args(x, &single)))
            return extn_from_cj(cv, x, args, single, out, depth, err);
        return record_fields_from_cj(cv, j, out, depth, err);
    }
    case CJ_REAL: return tg_error_set(err, "numbers with a fraction or exponent are not Cedar values");
    case CJ_NULL: return tg_error_set(err, "null is not a Cedar value");
    }
    return tg_error_set(err, "unsupported JSON value");
}

const cedar_value *cedar_attr_value_parse(tg_arena *a, const char *json, size_t len, tg_error *err)
{
    tg_arena *tmp = tg_arena_new(0);
    const cj *j = cj_parse(tmp, json, len, err);
    const cj_conv cv = {a, true};  /* the DOM dies here */
    cedar_value *v = tg_arena_alloc(a, sizeof *v);
    /* depth 2: where an attribute's value stands inside an entity's "attrs" */
    int rc = j ? cedar_value_from_cj(&cv, j, v, 2, err) : -1;
    tg_arena_free(tmp);
    return rc == 0 ? v : NULL;
}

/* Prefixes err's message with where the value was ("in \"attrs\": ..."); returns -1. */
static int error_in(tg_error *err, const char *what)
{
    char tmp[sizeof err->msg];
    snprintf(tmp, sizeof tmp, "in \"%s\": %.900s", what, err->msg);
    return tg_error_set(err, "%s", tmp);
}

/* An entity's "attrs" or "tags": an object whose fields are values. The object itself is
 * never an escape: {"__entity": ..} here is an attribute named "__entity". */
static int record_from_cj(const cj_conv *cv, const cj *j, const char *what, const cv_record **out,
                          tg_error *err)
{
    if (!j) {
        *out = NULL;
        return 0;
    }
    if (j->kind != CJ_OBJ) return tg_error_set(err, "\"%s\" must be an object", what);
    cedar_value v;
    if (record_fields_from_cj(cv, j, &v, 1, err)) return error_in(err, what);
    *out = v.u.rec;
    return 0;
}

/* A request context: a value (escapes included) that must turn out to be a record. */
static int context_from_cj(const cj_conv *cv, const cj *j, const cv_record **out, tg_error *err)
{
    cedar_value v;
    if (cedar_value_from_cj(cv, j, &v, 1, err)) return error_in(err, "context");
    if (v.kind != CV_RECORD)
        return tg_error_set(err, "the context must be a record, not %s", cv_kind_name(v.kind));
    *out = v.u.rec;
    return 0;
}

cedar_entity *cedar_entity_from_cj(const cj_conv *cv, const cj *j, tg_error *err)
{
    if (j->kind != CJ_OBJ) {
        tg_error_set(err, "an entity must be an object with \"uid\", \"attrs\", \"parents\"");
        return NULL;
    }
    for (uint32_t i = 0; i < j->n; i++) {
        cstr k = j->keys[i];
        bool known = false;
        static const cstr fields[] = {{"uid", 3}, {"attrs", 5}, {"parents", 7}, {"tags", 4}};
        for (int f = 0; f < 4; f++) known |= cstr_eq(fields[f], k);
        if (!known) {
            tg_error_set(err, "unknown entity field \"%.*s\" (expected uid, attrs, parents, tags)",
                         (int)(k.n > 40 ? 40 : k.n), k.p);
            return NULL;
        }
    }
    cedar_entity *e = tg_arena_calloc(cv->a, 1, sizeof *e);
    const cj *uid = cj_get(j, "uid");
    if (!uid) {
        tg_error_set(err, "entity without \"uid\"");
        return NULL;
    }
    if (cedar_uid_from_cj(cv, uid, &e->uid, err)) return NULL;
    if (record_from_cj(cv, cj_get(j, "attrs"), "attrs", &e->attrs, err) ||
        record_from_cj(cv, cj_get(j, "tags"), "tags", &e->tags, err))
        return NULL;
    const cj *parents = cj_get(j, "parents");
    if (parents) {
        if (parents->kind != CJ_ARR) {
            tg_error_set(err, "\"parents\" must be an array of entity uids");
            return NULL;
        }
        e->nparents = parents->n;
        e->parents = tg_arena_alloc(cv->a, (e->nparents ? e->nparents : 1) * sizeof *e->parents);
        for (uint32_t i = 0; i < e->nparents; i++)
            if (cedar_uid_from_cj(cv, parents->items[i], &e->parents[i], err)) return NULL;
    }
    return e;
}

/* ---------------------------------------------------------------- store */

/* Ancestors of e: everything reachable through parents. Each entity already closed
 * contributes its whole closure at once; the visited set (the closure itself) makes
 * cycles terminate. `lookup` finds an entity by uid in the relevant scope. */
typedef const cedar_entity *(*lookup_fn)(const void *where, const cedar_uid *u);

/* The walk's pending uids: on the stack while few (an overlay entity has a handful of
 * ancestors; no malloc per request), on the heap beyond. */
typedef struct uid_stack {
    uint32_t          n, cap;
    const cedar_uid **v;      /* local, or malloc'd once n outgrows it */
    const cedar_uid  *local[32];
} uid_stack;

static void uid_stack_push(uid_stack *s, const cedar_uid *u)
{
    if (s->n == s->cap) {
        const cedar_uid **nv = malloc(2 * s->cap * sizeof *nv);
        if (!nv) abort();
        memcpy(nv, s->v, s->n * sizeof *nv);
        if (s->v != s->local) free(s->v);
        s->v = nv;
        s->cap *= 2;
    }
    s->v[s->n++] = u;
}

static void close_entity(tg_arena *a, cedar_entity *e, lookup_fn lookup, const void *where)
{
    uid_stack st;
    st.n = 0;
    st.cap = sizeof st.local / sizeof st.local[0];
    st.v = st.local;
    for (uint32_t i = 0; i < e->nparents; i++) uid_stack_push(&st, e->parents[i]);
    while (st.n) {
        const cedar_uid *u = st.v[--st.n];
        if (uid_set_has(&e->ancestors, u)) continue;
        uid_set_add(a, &e->ancestors, u);
        const cedar_entity *pe = lookup(where, u);
        if (!pe || pe == e) continue;
        for (uint32_t i = 0; i < pe->nparents; i++) uid_stack_push(&st, pe->parents[i]);
    }
    if (st.v != st.local) free(st.v);
}

static const cedar_entity *store_lookup(const void *where, const cedar_uid *u)
{
    return entity_map_get(where, u);
}

cedar_store *cedar_store_from_cj(const cj *entities, tg_error *err)
{
    if (entities->kind != CJ_ARR) {
        tg_error_set(err, "entities must be a JSON array");
        return NULL;
    }
    cedar_store *st = calloc(1, sizeof *st);
    if (!st) abort();
    st->arena = tg_arena_new(0);
    size_t n = entities->n;
    const cj_conv cv = {st->arena, true};  /* the DOM dies before the store */
    cedar_entity **all = tg_arena_alloc(st->arena, (n ? n : 1) * sizeof *all);
    for (size_t i = 0; i < n; i++) {
        tg_error e2;
        cedar_entity *e = cedar_entity_from_cj(&cv, entities->items[i], &e2);
        if (!e) {
            tg_error_set(err, "entity %zu: %s", i, e2.msg);
            goto fail;
        }
        if (entity_map_get(&st->map, e->uid)) {
            tg_error_set(err, "entity %zu: duplicate entity %.*s::\"%.*s\"", i, (int)e->uid->type.n,
                         e->uid->type.p, (int)(e->uid->id.n > 60 ? 60 : e->uid->id.n), e->uid->id.p);
            goto fail;
        }
        entity_map_put(st->arena, &st->map, e);
        all[i] = e;
    }
    for (size_t i = 0; i < n; i++) close_entity(st->arena, all[i], store_lookup, &st->map);
    return st;
fail:
    cedar_store_free(st);
    return NULL;
}

cedar_store *cedar_store_load(const char *json, size_t len, tg_error *err)
{
    tg_arena *tmp = tg_arena_new(0);
    const cj *j = cj_parse(tmp, json, len, err);
    cedar_store *st = j ? cedar_store_from_cj(j, err) : NULL;
    tg_arena_free(tmp);
    return st;
}

void cedar_store_free(cedar_store *st)
{
    if (!st) return;
    tg_arena_free(st->arena);
    free(st);
}

int cedar_store_has(const cedar_store *st, const char *type, size_t tlen, const char *id,
                    size_t ilen)
{
    cstr t = {type, (uint32_t)tlen}, i = {id, (uint32_t)ilen};
    cedar_uid u = {cedar_uid_hash(t, i), t, i};
    return st && entity_map_get(&st->map, &u) != NULL;
}

size_t cedar_store_count(const cedar_store *st)
{
    return st ? st->map.n : 0;
}

/* ---------------------------------------------------------------- requests */

cedar_request *cedar_request_new(tg_arena *arena, const cedar_store *store)
{
    cedar_request *rq = tg_arena_calloc(arena, 1, sizeof *rq);
    rq->arena = arena;
    rq->store = store;
    rq->context.kind = CV_RECORD;
    rq->context.u.rec = cv_record_make(arena, NULL, NULL, 0, NULL);
    rq->closed = true;
    return rq;
}

static int set_uid(cedar_request *rq, const cedar_uid **slot, const char *type, size_t tlen,
                   const char *id, size_t ilen, tg_error *err)
{
    cstr t = {type, (uint32_t)tlen}, i = {id, (uint32_t)ilen};
    if (cedar_check_type_name(t, err)) return -1;
    *slot = cedar_uid_new(rq->arena, t, i);
    return 0;
}

int cedar_request_set_principal(cedar_request *rq, const char *type, size_t tlen, const char *id,
                                size_t ilen, tg_error *err)
{
    return set_uid(rq, &rq->principal, type, tlen, id, ilen, err);
}

int cedar_request_set_action(cedar_request *rq, const char *type, size_t tlen, const char *id,
                             size_t ilen, tg_error *err)
{
    return set_uid(rq, &rq->action, type, tlen, id, ilen, err);
}

int cedar_request_set_resource(cedar_request *rq, const char *type, size_t tlen, const char *id,
                               size_t ilen, tg_error *err)
{
    return set_uid(rq, &rq->resource, type, tlen, id, ilen, err);
}

int cedar_request_set_context_json(cedar_request *rq, const char *json, size_t len, tg_error *err)
{
    const cj *j = cj_parse(rq->arena, json, len, err);
    const cj_conv cv = {rq->arena, false};  /* the DOM lives as long as the request */
    const cv_record *r;
    if (!j || context_from_cj(&cv, j, &r, err)) return -1;
    rq->context.kind = CV_RECORD;
    rq->context.u.rec = r;
    return 0;
}

const cedar_entity *cedar_request_entity(const cedar_request *rq, const cedar_uid *u)
{
    for (uint32_t i = 0; i < rq->nextra; i++)
        if (cedar_uid_eq(rq->extra[i]->uid, u)) return rq->extra[i];
    return rq->store ? entity_map_get(&rq->store->map, u) : NULL;
}

int cedar_request_add_entity_json(cedar_request *rq, const char *json, size_t len, tg_error *err)
{
    const cj *j = cj_parse(rq->arena, json, len, err);
    const cj_conv cv = {rq->arena, false};  /* the DOM lives as long as the request */
    cedar_entity *e = j ? cedar_entity_from_cj(&cv, j, err) : NULL;
    return e ? cedar_request_add_entity(rq, e, err) : -1;
}

int cedar_request_add_entity(cedar_request *rq, cedar_entity *e, tg_error *err)
{
    if (cedar_request_entity(rq, e->uid))
        return tg_error_set(err, "entity %.*s::\"%.*s\" already exists", (int)e->uid->type.n,
                            e->uid->type.p, (int)(e->uid->id.n > 60 ? 60 : e->uid->id.n), e->uid->id.p);
    if (rq->nextra == rq->extra_cap) {
        rq->extra_cap = rq->extra_cap ? rq->extra_cap * 2 : 4;
        cedar_entity **nx = tg_arena_alloc(rq->arena, rq->extra_cap * sizeof *nx);
        if (rq->nextra) memcpy(nx, rq->extra, rq->nextra * sizeof *nx);
        rq->extra = nx;
    }
    rq->extra[rq->nextra++] = e;
    rq->closed = false;
    return 0;
}

static const cedar_entity *request_lookup(const void *where, const cedar_uid *u)
{
    return cedar_request_entity(where, u);
}

void cedar_request_close(cedar_request *rq)
{
    if (rq->closed) return;
    for (uint32_t i = 0; i < rq->nextra; i++) {
        rq->extra[i]->ancestors = (uid_set){0, 0, NULL};
        close_entity(rq->arena, rq->extra[i], request_lookup, rq);
    }
    rq->closed = true;
}

static int request_from_cj(cedar_request *rq, const cj *req, const cj_conv *cv, tg_error *err)
{
    static const char *const names[] = {"principal", "action", "resource"};
    const cedar_uid **slots[] = {&rq->principal, &rq->action, &rq->resource};
    if (req->kind != CJ_OBJ) return tg_error_set(err, "request must be a JSON object");
    for (int i = 0; i < 3; i++) {
        const cj *u = cj_get(req, names[i]);
        if (!u) return tg_error_set(err, "request has no \"%s\"", names[i]);
        if (cedar_uid_from_cj(cv, u, slots[i], err)) {
            char tmp[sizeof err->msg];
            snprintf(tmp, sizeof tmp, "request \"%s\": %.900s", names[i], err->msg);
            return tg_error_set(err, "%s", tmp);
        }
    }
    const cj *ctx = cj_get(req, "context");
    if (!ctx) return 0;
    const cv_record *r;
    if (context_from_cj(cv, ctx, &r, err)) return -1;
    rq->context.u.rec = r;
    return 0;
}

int cedar_request_from_cj(cedar_request *rq, const cj *req, tg_error *err)
{
    const cj_conv cv = {rq->arena, true};  /* the caller's DOM may die first */
    return request_from_cj(rq, req, &cv, err);
}

int cedar_request_from_json(cedar_request *rq, const char *json, size_t len, tg_error *err)
{
    const cj *j = cj_parse(rq->arena, json, len, err);
    const cj_conv cv = {rq->arena, false};  /* the DOM lives as long as the request */
    return j ? request_from_cj(rq, j, &cv, err) : -1;
}
