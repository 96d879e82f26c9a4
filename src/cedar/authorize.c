/*
 * authorize.c — the Cedar authorizer and the policy index that keeps it fast.
 *
 * How it fits: cedar_policy_set_parse builds the index once (cedar_index_build); each
 * cedar_authorize asks the index for the policies whose scope can match the request and
 * evaluates only those (eval.c), then applies Cedar's decision rule.
 *
 * The index files every policy under one scope key: `principal ==`, `resource ==`,
 * `action ==`, `action in` (one key per listed action), `principal in`, `resource in`,
 * `principal is`, `resource is`, or "always" when its scope has none; among the keys a
 * policy has, the one shared by the fewest policies wins. A request
 * probes the == tables with its uids, the `in` tables with its uids and each of their
 * ancestors, and the `is` tables with its types. So cost grows with the policies that
 * could apply, not with unrelated ones. Index hits are only candidates: the evaluator
 * still checks the whole scope.
 *
 * Scopes alone cannot tell apart policies that differ only in their condition, such as
 * many `forbid (principal, action, resource is Jira::Issue) when { resource has project
 * && resource.project == Jira::Project::"P<k>" && … }`: every issue read met them all,
 * so a decision cost grew with the number of such policies (390 µs with 2,500 of them).
 * Such a policy also has a guard key: `V.a == literal` (V principal, action, resource or
 * context; the literal a bool, Long, string or entity) — a conjunct of its first `when`
 * that only `V has a` conjuncts precede, in Cedar's evaluation order. Whenever the
 * request's V.a is absent or differs from the literal, the policy is false without error
 * (the `has` is false, or the `==` is), so skipping it changes neither the decision nor
 * the reasons nor the errors. A request probes the guard table once per distinct (V, a)
 * of the filed guards, with the value it has there.
 */
#include "cedar/cedar_int.h"

#include <stdlib.h>
#include <string.h>

/* Invariant: ids ascending (policies are filed in order). */
typedef struct bucket {
    const cedar_uid *key;
    uint32_t         n, cap;
    uint32_t        *ids;
} bucket;

/* Open-addressed map uid → bucket. Invariant: cap is 0 or a power of two > 2*n. */
typedef struct idx_map {
    uint32_t n, cap;
    bucket **slots;
} idx_map;

enum { IX_P_EQ, IX_R_EQ, IX_A_EQ, IX_A_IN, IX_P_IN, IX_R_IN, IX_P_IS, IX_R_IS, IX_GUARD, IX_COUNT };

/* Invariant: paths holds each (V, a) of the keys in maps[IX_GUARD] exactly once, as a uid
 * whose type is the guard key's type (see guard_key) and whose id is empty. */
struct policy_index {
    idx_map   maps[IX_COUNT];
    uint32_t  nalways;
    uint32_t *always;
    uint32_t  npaths;
    const cedar_uid **paths;
};

static bucket *map_find(const idx_map *m, const cedar_uid *k)
{
    if (!m->cap) return NULL;
    uint32_t mask = m->cap - 1;
    for (uint32_t i = (uint32_t)k->hash & mask;; i = (i + 1) & mask) {
        bucket *b = m->slots[i];
        if (!b) return NULL;
        if (cedar_uid_eq(b->key, k)) return b;
    }
}

static void map_insert(idx_map *m, bucket *b)
{
    uint32_t mask = m->cap - 1;
    uint32_t i = (uint32_t)b->key->hash & mask;
    while (m->slots[i]) i = (i + 1) & mask;
    m->slots[i] = b;
    m->n++;
}

static void map_add(tg_arena *a, idx_map *m, const cedar_uid *k, uint32_t id)
{
    bucket *b = map_find(m, k);
    if (!b) {
        if ((m->n + 1) * 2 > m->cap) {
            idx_map old = *m;
            m->cap = old.cap ? old.cap * 2 : 16;
            m->n = 0;
            m->slots = tg_arena_calloc(a, m->cap, sizeof *m->slots);
            for (uint32_t i = 0; i < old.cap; i++)
                if (old.slots[i]) map_insert(m, old.slots[i]);
        }
        b = tg_arena_calloc(a, 1, sizeof *b);
        b->key = k;
        map_insert(m, b);
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 4;
        uint32_t *ni = tg_arena_alloc(a, b->cap * sizeof *ni);
        if (b->n) memcpy(ni, b->ids, b->n * sizeof *ni);
        b->ids = ni;
    }
    b->ids[b->n++] = id;
}

/* Type keys are uids with an empty id in a table of their own. */
static const cedar_uid *type_key(tg_arena *a, cstr type)
{
    return cedar_uid_new(a, type, (cstr){"", 0});
}

/* The guard-table key of `V.a == v`: type is V's var_kind as one byte followed by a, id
 * is v's kind as one byte followed by its bytes (an entity: its type's length as 4 bytes,
 * its type, its id). Keys are equal iff V, a and v are (cv_equal of same-kind values).
 * NULL when v's kind is not one a guard literal has: such a value equals no guard. */
static const cedar_uid *guard_key(tg_arena *a, int var, cstr attr, const cedar_value *v)
{
    uint32_t n;
    switch (v->kind) {
    case CV_BOOL: n = 1; break;
    case CV_LONG: n = sizeof v->u.l; break;
    case CV_STRING: n = v->u.s.n; break;
    case CV_ENTITY: n = 4 + v->u.uid->type.n + v->u.uid->id.n; break;
    default: return NULL;
    }
    char *t = tg_arena_alloc(a, attr.n + 1), *id = tg_arena_alloc(a, n + 1);
    t[0] = (char)var;
    if (attr.n) memcpy(t + 1, attr.p, attr.n);
    id[0] = (char)v->kind;
    switch (v->kind) {
    case CV_BOOL: id[1] = (char)v->u.b; break;
    case CV_LONG: memcpy(id + 1, &v->u.l, sizeof v->u.l); break;
    case CV_STRING: if (n) memcpy(id + 1, v->u.s.p, n); break;
    default: {
        const cedar_uid *u = v->u.uid;
        memcpy(id + 1, &u->type.n, 4);
        if (u->type.n) memcpy(id + 5, u->type.p, u->type.n);
        if (u->id.n) memcpy(id + 5 + u->type.n, u->id.p, u->id.n);
    }
    }
    return cedar_uid_make(a, (cstr){t, attr.n + 1}, (cstr){id, n + 1});
}

/* Appends the conjuncts of n to c in evaluation order (`a && b` evaluates a, then b);
 * past cap the rest are dropped, which only shortens the prefix a guard may be found in. */
static void conjuncts(const cedar_node *n, const cedar_node **c, uint32_t *nc, uint32_t cap)
{
    if (n->kind == N_AND) {
        conjuncts(n->a, c, nc, cap);
        conjuncts(n->b, c, nc, cap);
    } else if (*nc < cap) {
        c[(*nc)++] = n;
    }
}

/* The guard key of p (see the header), or NULL. Only `V has a` conjuncts may precede the
 * guard: they never error and always give a bool, so when the request's V.a is absent
 * (a `has` is false) or differs (the `==` is false) the policy is false without error.
 * The guard's own `V has a` must be among them: without it, an absent V.a is an error the
 * authorizer must report. */
static const cedar_uid *policy_guard(tg_arena *a, const cedar_policy *p)
{
    if (!p->nconds || !p->conds[0].when) return NULL;
    const cedar_node *c[32];
    uint32_t nc = 0;
    conjuncts(p->conds[0].body, c, &nc, 32);
    for (uint32_t i = 0; i < nc; i++) {
        const cedar_node *n = c[i];
        if (n->kind == N_HAS && n->npath == 1 && n->a->kind == N_VAR) continue;
        if (n->kind != N_EQ) return NULL;
        const cedar_node *get = n->a->kind == N_GETATTR ? n->a : n->b;
        const cedar_node *lit = get == n->a ? n->b : n->a;
        if (get->kind != N_GETATTR || get->a->kind != N_VAR || lit->kind != N_VALUE) return NULL;
        for (uint32_t j = 0; j < i; j++)
            if (c[j]->kind == N_HAS && c[j]->a->var == get->a->var && cstr_eq(c[j]->keys[0], get->str))
                return guard_key(a, get->a->var, get->str, &lit->val);
        return NULL;
    }
    return NULL;
}

/* The scope keys policy p could be filed under: dimension d[i] with key k[i]; an
 * `action in [..]` list contributes one entry per listed action (same dimension). */
typedef struct keys {
    int              n;
    int              d[8];
    const cedar_uid *k[8];
    uint32_t         nlist;        /* action in [...] */
    const cedar_uid *const *list;
} keys;

static void policy_keys(tg_arena *a, const cedar_policy *p, keys *ks)
{
    const scope *P = &p->principal, *A = &p->action, *R = &p->resource;
    ks->n = 0;
    ks->nlist = 0;
#define KEY(dim, uid) do { ks->d[ks->n] = (dim); ks->k[ks->n++] = (uid); } while (0)
    if (P->op == SC_EQ) KEY(IX_P_EQ, P->uid);
    if (R->op == SC_EQ) KEY(IX_R_EQ, R->uid);
    if (A->op == SC_EQ) KEY(IX_A_EQ, A->uid);
    if (A->op == SC_IN) KEY(IX_A_IN, A->uid);
    if (P->op == SC_IN || P->op == SC_IS_IN) KEY(IX_P_IN, P->uid);
    if (R->op == SC_IN || R->op == SC_IS_IN) KEY(IX_R_IN, R->uid);
    if (P->op == SC_IS || P->op == SC_IS_IN) KEY(IX_P_IS, type_key(a, P->type));
    if (R->op == SC_IS || R->op == SC_IS_IN) KEY(IX_R_IS, type_key(a, R->type));
    const cedar_uid *g = policy_guard(a, p);
    if (g) KEY(IX_GUARD, g);
#undef KEY
    if (A->op == SC_IN_SET) {
        ks->nlist = A->nuids;
        ks->list = A->uids;
    }
}

/* Files each policy under the key whose bucket (counted over all policies in a first
 * pass) is smallest, so a request probing that key meets as few policies as possible. */
policy_index *cedar_index_build(cedar_policy_set *ps)
{
    tg_arena *a = ps->arena, *tmp = tg_arena_new(0);
    policy_index *ix = tg_arena_calloc(a, 1, sizeof *ix);
    idx_map count[IX_COUNT] = {{0, 0, NULL}}, paths = {0, 0, NULL};
    ix->always = tg_arena_alloc(a, (ps->n ? ps->n : 1) * sizeof *ix->always);
    ix->paths = tg_arena_alloc(a, (ps->n ? ps->n : 1) * sizeof *ix->paths);
    keys ks;
    for (uint32_t i = 0; i < ps->n; i++) {
        if (ps->policies[i].principal.slot || ps->policies[i].resource.slot) continue;
        policy_keys(a, &ps->policies[i], &ks);
        for (int j = 0; j < ks.n; j++) map_add(tmp, &count[ks.d[j]], ks.k[j], i);
        for (uint32_t j = 0; j < ks.nlist; j++) map_add(tmp, &count[IX_A_IN], ks.list[j], i);
    }
    for (uint32_t i = 0; i < ps->n; i++) {
        const cedar_policy *p = &ps->policies[i];
        if (p->principal.slot || p->resource.slot) continue;  /* unlinked templates never apply */
        policy_keys(a, p, &ks);
        uint32_t best = UINT32_MAX;
        int pick = -1;  /* index into ks, or ks.n for the action list */
        for (int j = 0; j < ks.n; j++) {
            uint32_t c = map_find(&count[ks.d[j]], ks.k[j])->n;
            if (c < best) {
                best = c;
                pick = j;
            }
        }
        if (ks.nlist) {
            uint32_t c = 0;
            for (uint32_t j = 0; j < ks.nlist; j++) c += map_find(&count[IX_A_IN], ks.list[j])->n;
            if (c < best) pick = ks.n;
        }
        if (pick < 0 && p->action.op == SC_IN_SET) continue;  /* `action in []` never applies */
        if (pick < 0) ix->always[ix->nalways++] = i;
        else if (pick == ks.n)
            for (uint32_t j = 0; j < ks.nlist; j++) map_add(a, &ix->maps[IX_A_IN], ks.list[j], i);
        else map_add(a, &ix->maps[ks.d[pick]], ks.k[pick], i);
        if (pick >= 0 && pick < ks.n && ks.d[pick] == IX_GUARD) {
            const cedar_uid *path = type_key(tmp, ks.k[pick]->type);
            if (!map_find(&paths, path)) {
                map_add(tmp, &paths, path, 0);
                ix->paths[ix->npaths++] = cedar_uid_new(a, path->type, path->id);
            }
        }
    }
    tg_arena_free(tmp);
    return ix;
}

typedef struct cand {
    tg_arena *a;
    uint32_t  n, cap;
    uint32_t *ids;
} cand;

static void cand_add_bucket(cand *c, const bucket *b)
{
    if (!b || !b->n) return;
    if (c->n + b->n > c->cap) {
        uint32_t ncap = c->cap * 2 > c->n + b->n ? c->cap * 2 : c->n + b->n + 16;
        uint32_t *ni = tg_arena_alloc(c->a, ncap * sizeof *ni);
        if (c->n) memcpy(ni, c->ids, c->n * sizeof *ni);
        c->ids = ni;
        c->cap = ncap;
    }
    memcpy(c->ids + c->n, b->ids, b->n * sizeof *b->ids);
    c->n += b->n;
}

/* Probes map with u and, for `in` tables, every ancestor of u. */
static void probe_in(const cedar_request *rq, const idx_map *m, const cedar_uid *u, cand *c)
{
    if (!m->n) return;
    cand_add_bucket(c, map_find(m, u));
    const cedar_entity *e = cedar_request_entity(rq, u);
    if (!e) return;
    for (uint32_t i = 0; i < e->ancestors.cap; i++) {
        const cedar_uid *anc = e->ancestors.slots[i];
        /* skip u itself when a cycle put it among its own ancestors */
        if (anc && !cedar_uid_eq(anc, u)) cand_add_bucket(c, map_find(m, anc));
    }
}

static void probe_type(const idx_map *m, const cedar_uid *u, cand *c)
{
    if (!m->n) return;
    cedar_uid k = {cedar_uid_hash(u->type, (cstr){"", 0}), u->type, {"", 0}};
    cand_add_bucket(c, map_find(m, &k));
}

/* Probes the guard table with the request's value at each guard path. */
static void probe_guards(const cedar_request *rq, const policy_index *ix, cand *c)
{
    for (uint32_t i = 0; i < ix->npaths; i++) {
        cstr t = ix->paths[i]->type;
        int var = (unsigned char)t.p[0];
        cstr attr = {t.p + 1, t.n - 1};
        const cv_record *rec = NULL;
        if (var == VAR_CONTEXT) {
            rec = rq->context.u.rec;
        } else {
            const cedar_entity *e = cedar_request_entity(
                rq, var == VAR_PRINCIPAL ? rq->principal : var == VAR_ACTION ? rq->action : rq->resource);
            if (e) rec = e->attrs;
        }
        const cedar_value *v = rec ? cv_record_get(rec, attr) : NULL;
        const cedar_uid *k = v ? guard_key(rq->arena, var, attr, v) : NULL;
        if (k) cand_add_bucket(c, map_find(&ix->maps[IX_GUARD], k));
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void collect(const cedar_policy_set *ps, const cedar_request *rq, cand *c)
{
    const policy_index *ix = ps->index;
    cand_add_bucket(c, map_find(&ix->maps[IX_P_EQ], rq->principal));
    cand_add_bucket(c, map_find(&ix->maps[IX_R_EQ], rq->resource));
    cand_add_bucket(c, map_find(&ix->maps[IX_A_EQ], rq->action));
    probe_in(rq, &ix->maps[IX_A_IN], rq->action, c);
    probe_in(rq, &ix->maps[IX_P_IN], rq->principal, c);
    probe_in(rq, &ix->maps[IX_R_IN], rq->resource, c);
    probe_type(&ix->maps[IX_P_IS], rq->principal, c);
    probe_type(&ix->maps[IX_R_IS], rq->resource, c);
    probe_guards(rq, ix, c);
    bucket always = {NULL, ix->nalways, ix->nalways, ix->always};
    cand_add_bucket(c, &always);
    /* Ascending, each once: a policy listing several actions may be found twice. A request
     * meets a few dozen candidates at most, where insertion sort beats qsort's calls. */
    if (c->n > 32) {
        qsort(c->ids, c->n, sizeof *c->ids, cmp_u32);
    } else {
        for (uint32_t i = 1; i < c->n; i++) {
            uint32_t x = c->ids[i], k = i;
            for (; k > 0 && c->ids[k - 1] > x; k--) c->ids[k] = c->ids[k - 1];
            c->ids[k] = x;
        }
    }
    uint32_t w = 0;
    for (uint32_t i = 0; i < c->n; i++)
        if (!w || c->ids[w - 1] != c->ids[i]) c->ids[w++] = c->ids[i];
    c->n = w;
}

int cedar_authorize(const cedar_policy_set *ps, cedar_request *rq, cedar_response *out, tg_error *err)
{
    memset(out, 0, sizeof *out);
    out->decision = CEDAR_DENY;
    if (!rq->principal || !rq->action || !rq->resource)
        return tg_error_set(err, "request needs a principal, an action and a resource");
    cedar_request_close(rq);
    cand c = {.a = rq->arena};
    collect(ps, rq, &c);
    size_t *permits = tg_arena_alloc(rq->arena, (c.n ? c.n : 1) * sizeof *permits);
    size_t *forbids = tg_arena_alloc(rq->arena, (c.n ? c.n : 1) * sizeof *forbids);
    size_t *errors = tg_arena_alloc(rq->arena, (c.n ? c.n : 1) * sizeof *errors);
    const char **msgs = tg_arena_alloc(rq->arena, (c.n ? c.n : 1) * sizeof *msgs);
    size_t np = 0, nf = 0, ne = 0;
    for (uint32_t k = 0; k < c.n; k++) {
        const cedar_policy *p = &ps->policies[c.ids[k]];
        const char *msg = NULL;
        int r = cedar_eval_policy(p, rq, &msg);
        if (r < 0) {
            errors[ne] = c.ids[k];
            msgs[ne++] = msg;
        } else if (r > 0) {
            if (p->effect == CEDAR_FORBID) forbids[nf++] = c.ids[k];
            else permits[np++] = c.ids[k];
        }
    }
    if (nf) {
        out->decision = CEDAR_DENY;
        out->reasons = forbids;
        out->nreasons = nf;
    } else if (np) {
        out->decision = CEDAR_ALLOW;
        out->reasons = permits;
        out->nreasons = np;
    }
    out->errors = errors;
    out->nerrors = ne;
    out->error_msgs = msgs;
    return 0;
}
