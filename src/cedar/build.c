/*
 * build.c — requests built value by value (cedar.h, "building a request directly").
 *
 * How it fits: a gateway decision used to write its principal, action and resource
 * entities and its context as JSON text for cedar_request_add_entity_json /
 * cedar_request_set_context_json to read back; writing and reading that text was most of
 * the decision's cost. The builder takes the same values as calls shaped like the JSON and
 * makes what entities.c makes of the text, with the same functions where they matter
 * (type names, extension functions, sets, records, the request's overlay), so the two
 * roads cannot drift apart on values. It refuses everything the JSON road refuses (it may
 * refuse more, never less): callers fall back to the JSON road on any failure for that
 * road's exact error messages.
 */
#include "cedar/cedar_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { BF_RECORD, BF_SET, BF_ENTITY } bframe_kind;

/* One open container. Invariants: a record's keys[i] names vals[i] and has_key says a key
 * waits for its value (then keys[n] holds it); an entity takes its attributes (one record)
 * before any parent; vals / keys / parents grow by doubling in the request's arena. */
typedef struct bframe {
    uint8_t           kind;   /* bframe_kind */
    bool              has_key;
    uint32_t          n, cap;
    cedar_value      *vals;
    cstr             *keys;
    cedar_entity     *ent;
    uint32_t          pcap;
} bframe;

/* Open containers nest at most this deep. The JSON road's limit is CEDAR_JSON_MAX_DEPTH
 * objects and arrays; a leaf adds at most two more levels there ({"__extn":{..}},
 * {"__entity":{..}}) and an entity's "parents" array one, so staying three below it
 * refuses everything the JSON road refuses. */
#define BUILD_MAX_DEPTH (CEDAR_JSON_MAX_DEPTH - 3)

struct cedar_builder {
    cedar_request *rq;
    bframe        *fr;        /* open containers, innermost last */
    uint32_t       nfr, frcap;
    cedar_value    top;       /* the value built outside any entity (the context) */
    bool           has_top;
    bool           failed;
    tg_error       err;       /* the first failure */
};

cedar_builder *cedar_builder_new(cedar_request *rq)
{
    cedar_builder *b = tg_arena_alloc(rq->arena, sizeof *b);
    b->rq = rq;
    b->frcap = 8;   /* a request's values nest a few levels; deeper ones grow it */
    b->fr = tg_arena_alloc(rq->arena, b->frcap * sizeof *b->fr);
    b->nfr = 0;
    b->has_top = false;
    b->failed = false;
    return b;
}

static void fail(cedar_builder *b, const char *what)
{
    if (!b->failed) tg_error_set(&b->err, "%s", what);
    b->failed = true;
}

/* A copy of s in the request's arena, NUL-terminated like the JSON reader's strings; the
 * empty cstr with failed set when s is not well-formed UTF-8. */
static cstr copy_str(cedar_builder *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint64_t w;  /* eight ASCII bytes at a time: arguments are mostly long plain text */
        if (i + 8 <= n && (memcpy(&w, s + i, 8), !(w & 0x8080808080808080ull))) {
            i += 8;
            continue;
        }
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = cedar_utf8_seq(s + i, n - i);
        if (!k) {
            fail(b, "invalid UTF-8 in string");
            return (cstr){"", 0};
        }
        i += k;
    }
    if (n > UINT32_MAX - 1) {
        fail(b, "string too long");
        return (cstr){"", 0};
    }
    char *c = tg_arena_alloc(b->rq->arena, n + 1);
    memcpy(c, s, n);
    c[n] = '\0';
    return (cstr){c, (uint32_t)n};
}

static const cedar_uid *make_uid(cedar_builder *b, const char *type, size_t tlen, const char *id,
                                 size_t ilen)
{
    cstr t = copy_str(b, type, tlen), i = copy_str(b, id, ilen);
    if (b->failed) return NULL;
    if (cedar_check_type_name(t, &b->err)) {
        b->failed = true;
        return NULL;
    }
    return cedar_uid_make(b->rq->arena, t, i);
}

static void grow(cedar_builder *b, bframe *f)
{
    if (f->n < f->cap) return;
    uint32_t cap = f->cap ? f->cap * 2 : 8;
    cedar_value *v = tg_arena_alloc(b->rq->arena, cap * sizeof *v);
    if (f->n) memcpy(v, f->vals, f->n * sizeof *v);
    f->vals = v;
    if (f->kind == BF_RECORD) {
        cstr *k = tg_arena_alloc(b->rq->arena, (cap + 1) * sizeof *k);
        memcpy(k, f->keys, (f->n + f->has_key) * sizeof *k);
        f->keys = k;
    }
    f->cap = cap;
}

/* A complete value goes to the innermost open container, or becomes the top value. */
static void put(cedar_builder *b, const cedar_value *v)
{
    if (b->failed) return;
    if (b->nfr == 0) {
        if (b->has_top) {
            fail(b, "builder: a second value outside any container");
            return;
        }
        b->top = *v;
        b->has_top = true;
        return;
    }
    bframe *f = &b->fr[b->nfr - 1];
    switch (f->kind) {
    case BF_RECORD:
        if (!f->has_key) {
            fail(b, "builder: a record value without its key");
            return;
        }
        grow(b, f);
        f->vals[f->n++] = *v;
        f->has_key = false;
        return;
    case BF_SET:
        grow(b, f);
        f->vals[f->n++] = *v;
        return;
    case BF_ENTITY:
        if (f->ent->attrs || v->kind != CV_RECORD || f->ent->nparents) {
            fail(b, "builder: an entity takes one record of attributes, then parents");
            return;
        }
        f->ent->attrs = v->u.rec;
        return;
    }
}

static bframe *open_frame(cedar_builder *b, bframe_kind kind)
{
    if (b->failed) return NULL;
    if (b->nfr == BUILD_MAX_DEPTH) {
        fail(b, "value nests too deep");
        return NULL;
    }
    if (b->nfr == b->frcap) {
        bframe *nf = tg_arena_alloc(b->rq->arena, 2 * b->frcap * sizeof *nf);
        memcpy(nf, b->fr, b->nfr * sizeof *nf);
        b->fr = nf;
        b->frcap *= 2;
    }
    bframe *f = &b->fr[b->nfr++];
    memset(f, 0, sizeof *f);
    f->kind = (uint8_t)kind;
    if (kind == BF_RECORD) f->keys = tg_arena_alloc(b->rq->arena, sizeof *f->keys);
    return f;
}

/* The innermost frame when it is of this kind (else failed is set). */
static bframe *top_frame(cedar_builder *b, bframe_kind kind)
{
    if (b->failed) return NULL;
    if (b->nfr == 0 || b->fr[b->nfr - 1].kind != kind) {
        fail(b, "builder: closing a container that is not open");
        return NULL;
    }
    return &b->fr[b->nfr - 1];
}

void cedar_build_string(cedar_builder *b, const char *s, size_t n)
{
    cedar_value v = {.kind = CV_STRING};
    v.u.s = copy_str(b, s, n);
    put(b, &v);
}

void cedar_build_long(cedar_builder *b, int64_t l)
{
    cedar_value v = {.kind = CV_LONG};
    v.u.l = l;
    put(b, &v);
}

void cedar_build_bool(cedar_builder *b, int x)
{
    cedar_value v = {.kind = CV_BOOL};
    v.u.b = x != 0;
    put(b, &v);
}

void cedar_build_entity_ref(cedar_builder *b, const char *type, size_t tlen, const char *id,
                            size_t ilen)
{
    cedar_value v = {.kind = CV_ENTITY};
    v.u.uid = make_uid(b, type, tlen, id, ilen);
    put(b, &v);
}

void cedar_build_extn(cedar_builder *b, const char *fn, const char *arg, size_t n)
{
    cedar_value a = {.kind = CV_STRING}, v;
    a.u.s = copy_str(b, arg, n);
    if (b->failed) return;
    int id = cedar_fn_by_name((cstr){fn, (uint32_t)strlen(fn)});
    if (id < 0 || cedar_fns[id].nargs != 1) {
        fail(b, "builder: not a one-argument extension function");
        return;
    }
    if (cedar_call_fn(b->rq->arena, id, &a, 1, &v, &b->err)) {
        b->failed = true;
        return;
    }
    put(b, &v);
}

void cedar_build_value(cedar_builder *b, const cedar_value *v)
{
    put(b, v);
}

void cedar_build_record_begin(cedar_builder *b)
{
    open_frame(b, BF_RECORD);
}

void cedar_build_key(cedar_builder *b, const char *k, size_t n)
{
    bframe *f = top_frame(b, BF_RECORD);
    if (!f) return;
    if (f->has_key) {
        fail(b, "builder: two keys without a value");
        return;
    }
    cstr c = copy_str(b, k, n);
    grow(b, f);
    f->keys[f->n] = c;
    f->has_key = true;
}

void cedar_build_record_end(cedar_builder *b)
{
    bframe *f = top_frame(b, BF_RECORD);
    if (!f) return;
    if (f->has_key) {
        fail(b, "builder: a record key without its value");
        return;
    }
    cstr dup;
    cedar_value v = {.kind = CV_RECORD};
    v.u.rec = cv_record_adopt(b->rq->arena, f->keys, f->vals, f->n, &dup);
    if (!v.u.rec) {
        fail(b, "duplicate key in record");
        return;
    }
    b->nfr--;
    put(b, &v);
}

void cedar_build_set_begin(cedar_builder *b)
{
    open_frame(b, BF_SET);
}

void cedar_build_set_end(cedar_builder *b)
{
    bframe *f = top_frame(b, BF_SET);
    if (!f) return;
    cedar_value v = {.kind = CV_SET};
    v.u.set = cv_set_make(b->rq->arena, f->vals, f->n);
    b->nfr--;
    put(b, &v);
}

void cedar_build_entity_begin(cedar_builder *b, const char *type, size_t tlen, const char *id,
                              size_t ilen)
{
    if (!b->failed && b->nfr) {
        fail(b, "builder: an entity inside a value");
        return;
    }
    const cedar_uid *u = make_uid(b, type, tlen, id, ilen);
    bframe *f = u ? open_frame(b, BF_ENTITY) : NULL;
    if (!f) return;
    f->ent = tg_arena_calloc(b->rq->arena, 1, sizeof *f->ent);
    f->ent->uid = u;
}

void cedar_build_parent(cedar_builder *b, const char *type, size_t tlen, const char *id,
                        size_t ilen)
{
    bframe *f = top_frame(b, BF_ENTITY);
    const cedar_uid *u = f ? make_uid(b, type, tlen, id, ilen) : NULL;
    if (!u) return;
    cedar_entity *e = f->ent;
    if (e->nparents == f->pcap) {
        f->pcap = f->pcap ? f->pcap * 2 : 4;
        const cedar_uid **np = tg_arena_alloc(b->rq->arena, f->pcap * sizeof *np);
        if (e->nparents) memcpy(np, e->parents, e->nparents * sizeof *np);
        e->parents = np;
    }
    e->parents[e->nparents++] = u;
}

/* The first failure as the closing call's answer. */
static int failed(cedar_builder *b, tg_error *err)
{
    tg_error_set(err, "%s", b->err.msg);
    return -1;
}

int cedar_build_entity_end(cedar_builder *b, tg_error *err)
{
    bframe *f = top_frame(b, BF_ENTITY);
    if (!f) return failed(b, err);
    cedar_entity *e = f->ent;
    b->nfr--;
    /* The JSON road always gives "attrs": an entity without them has an empty record. */
    if (!e->attrs) e->attrs = cv_record_make(b->rq->arena, NULL, NULL, 0, NULL);
    if (cedar_request_add_entity(b->rq, e, &b->err)) {
        b->failed = true;
        return failed(b, err);
    }
    return 0;
}

int cedar_build_context(cedar_builder *b, tg_error *err)
{
    if (!b->failed && (b->nfr || !b->has_top || b->top.kind != CV_RECORD))
        fail(b, "builder: the context must be one complete record");
    if (b->failed) return failed(b, err);
    b->rq->context = b->top;
    b->has_top = false;
    return 0;
}
