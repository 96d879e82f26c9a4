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

enum { IX_P_EQ, IX_R_EQ, IX_A_EQ, IX_A_IN, IX_P_IN, IX_R_IN, IX_P_IS, IX_R_IS, IX_COUNT };

struct policy_index {
    idx_map   maps[IX_COUNT];
    uint32_t  nalways;
    uint32_t *always;
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
    idx_map count[IX_COUNT] = {{0, 0, NULL}};
    ix->always = tg_arena_alloc(a, (ps->n ? ps->n : 1) * sizeof *ix->always);
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
