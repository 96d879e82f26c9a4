/*
 * value.c — Cedar values: entity uids, sets, records, equality, the `like` matcher and
 * the table of builtin/extension functions.
 *
 * How it fits: the parser builds literal values and uids with these helpers, the entity
 * loader builds attribute values, and the evaluator compares and combines them. Values
 * are immutable once built and live in an arena (the policy set's, the store's or the
 * request's), so sharing pointers between them is safe for the arena's lifetime.
 */
#include "cedar/cedar_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const fn_info cedar_fns[FN_COUNT] = {
    [FN_CONTAINS] = {"contains", true, 2},
    [FN_CONTAINS_ALL] = {"containsAll", true, 2},
    [FN_CONTAINS_ANY] = {"containsAny", true, 2},
    [FN_IS_EMPTY] = {"isEmpty", true, 1},
    [FN_GET_TAG] = {"getTag", true, 2},
    [FN_HAS_TAG] = {"hasTag", true, 2},
    [FN_IP] = {"ip", false, 1},
    [FN_DECIMAL] = {"decimal", false, 1},
    [FN_DATETIME] = {"datetime", false, 1},
    [FN_DURATION] = {"duration", false, 1},
    [FN_LESS_THAN] = {"lessThan", true, 2},
    [FN_LESS_THAN_OR_EQUAL] = {"lessThanOrEqual", true, 2},
    [FN_GREATER_THAN] = {"greaterThan", true, 2},
    [FN_GREATER_THAN_OR_EQUAL] = {"greaterThanOrEqual", true, 2},
    [FN_IS_IPV4] = {"isIpv4", true, 1},
    [FN_IS_IPV6] = {"isIpv6", true, 1},
    [FN_IS_LOOPBACK] = {"isLoopback", true, 1},
    [FN_IS_MULTICAST] = {"isMulticast", true, 1},
    [FN_IS_IN_RANGE] = {"isInRange", true, 2},
    [FN_OFFSET] = {"offset", true, 2},
    [FN_DURATION_SINCE] = {"durationSince", true, 2},
    [FN_TO_DATE] = {"toDate", true, 1},
    [FN_TO_TIME] = {"toTime", true, 1},
    [FN_TO_DAYS] = {"toDays", true, 1},
    [FN_TO_HOURS] = {"toHours", true, 1},
    [FN_TO_MINUTES] = {"toMinutes", true, 1},
    [FN_TO_SECONDS] = {"toSeconds", true, 1},
    [FN_TO_MILLISECONDS] = {"toMilliseconds", true, 1},
};

int cstr_cmp(cstr a, cstr b)
{
    /* bytewise like memcmp (unsigned), decided by the first byte without a call mostly */
    if (a.n && b.n && a.p[0] != b.p[0]) return (unsigned char)a.p[0] < (unsigned char)b.p[0] ? -1 : 1;
    uint32_t n = a.n < b.n ? a.n : b.n;
    int c = n ? memcmp(a.p, b.p, n) : 0;
    if (c) return c;
    return a.n < b.n ? -1 : a.n > b.n;
}

/* FNV-1a: uids are short and hashed once when created; collisions only cost a compare. */
uint64_t cedar_hash_bytes(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *s = p;
    uint64_t h = seed ^ 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t cedar_uid_hash(cstr type, cstr id)
{
    uint64_t h = cedar_hash_bytes(type.p, type.n, 0);
    h = cedar_hash_bytes("\xff", 1, h);  /* separator: ("ab","c") != ("a","bc") */
    h = cedar_hash_bytes(id.p, id.n, h);
    return h ^ (h >> 29);
}

cedar_uid *cedar_uid_make(tg_arena *a, cstr type, cstr id)
{
    cedar_uid *u = tg_arena_alloc(a, sizeof *u);
    u->type = type;
    u->id = id;
    u->hash = cedar_uid_hash(type, id);
    return u;
}

cedar_uid *cedar_uid_new(tg_arena *a, cstr type, cstr id)
{
    return cedar_uid_make(a, (cstr){tg_arena_strndup(a, type.p ? type.p : "", type.n), type.n},
                          (cstr){tg_arena_strndup(a, id.p ? id.p : "", id.n), id.n});
}

bool cv_equal(const cedar_value *a, const cedar_value *b)
{
    if (a->kind != b->kind) return false;
    switch (a->kind) {
    case CV_BOOL: return a->u.b == b->u.b;
    case CV_LONG:
    case CV_DECIMAL:
    case CV_DATETIME:
    case CV_DURATION: return a->u.l == b->u.l;
    case CV_STRING: return cstr_eq(a->u.s, b->u.s);
    case CV_ENTITY: return cedar_uid_eq(a->u.uid, b->u.uid);
    case CV_IP: return cedar_ip_equal(a->u.ip, b->u.ip);
    case CV_SET: {
        const cv_set *x = a->u.set, *y = b->u.set;
        if (x->n != y->n) return false;  /* both are duplicate-free */
        for (uint32_t i = 0; i < x->n; i++)
            if (!cv_set_contains(y, &x->v[i])) return false;
        return true;
    }
    case CV_RECORD: {
        const cv_record *x = a->u.rec, *y = b->u.rec;
        if (x->n != y->n) return false;
        for (uint32_t i = 0; i < x->n; i++)
            if (!cstr_eq(x->keys[i], y->keys[i]) || !cv_equal(&x->vals[i], &y->vals[i]))
                return false;
        return true;
    }
    }
    return false;
}

bool cv_set_contains(const cv_set *s, const cedar_value *v)
{
    for (uint32_t i = 0; i < s->n; i++)
        if (cv_equal(&s->v[i], v)) return true;
    return false;
}

const cv_set *cv_set_make(tg_arena *a, const cedar_value *v, uint32_t n)
{
    cv_set *s = tg_arena_alloc(a, sizeof *s + n * sizeof(cedar_value));
    s->n = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!cv_set_contains(s, &v[i])) s->v[s->n++] = v[i];
    return s;
}

/* Insertion-sorts n pairs from keys/vals into rk/rv (which may be the same arrays: element
 * i is read before any write reaches index i). Returns false with *dup on a repeated key.
 * Records are small, and this keeps the pairs together. */
static bool record_sort(const cstr *keys, const cedar_value *vals, cstr *rk, cedar_value *rv,
                        uint32_t n, cstr *dup)
{
    for (uint32_t i = 0; i < n; i++) {
        cstr k = keys[i];
        cedar_value v = vals[i];
        uint32_t j = i;
        while (j > 0 && cstr_cmp(rk[j - 1], k) > 0) {
            rk[j] = rk[j - 1];
            rv[j] = rv[j - 1];
            j--;
        }
        if (j > 0 && cstr_eq(rk[j - 1], k)) {
            if (dup) *dup = k;
            return false;
        }
        rk[j] = k;
        rv[j] = v;
    }
    return true;
}

const cv_record *cv_record_adopt(tg_arena *a, cstr *keys, cedar_value *vals, uint32_t n, cstr *dup)
{
    cv_record *r = tg_arena_alloc(a, sizeof *r);
    r->n = n;
    r->keys = keys;
    r->vals = vals;
    return record_sort(keys, vals, keys, vals, n, dup) ? r : NULL;
}

const cv_record *cv_record_make(tg_arena *a, cstr *keys, cedar_value *vals, uint32_t n, cstr *dup)
{
    cv_record *r = tg_arena_alloc(a, sizeof *r);
    r->n = n;
    r->keys = tg_arena_alloc(a, (n ? n : 1) * sizeof *r->keys);
    r->vals = tg_arena_alloc(a, (n ? n : 1) * sizeof *r->vals);
    return record_sort(keys, vals, r->keys, r->vals, n, dup) ? r : NULL;
}

const cedar_value *cv_record_get(const cv_record *r, cstr key)
{
    uint32_t lo = 0, hi = r->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = cstr_cmp(r->keys[mid], key);
        if (c == 0) return &r->vals[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* Writes code point cp (a Unicode scalar value) as UTF-8 to u; returns its length. */
size_t cedar_utf8_encode(char u[4], uint32_t cp)
{
    size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (n == 1) u[0] = (char)cp;
    else if (n == 2) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
    } else if (n == 3) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
    }
    return n;
}

/* Length of the well-formed UTF-8 sequence at p (at most avail bytes), 0 when there is
 * none: overlong forms, surrogates and code points above U+10FFFF are not well formed. The
 * JSON reader and the request builder accept exactly the same strings through it. */
size_t cedar_utf8_seq(const char *p, size_t avail)
{
    unsigned char c = (unsigned char)p[0];
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
    if (len == 0 || avail < len) return 0;
    for (size_t i = 1; i < len; i++) {
        unsigned char b = (unsigned char)p[i];
        if ((b & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (b & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

void cedar_utf8_put(tg_buf *b, uint32_t cp)
{
    char u[4];
    tg_buf_append(b, u, cedar_utf8_encode(u, cp));
}

const char *cv_kind_name(int kind)
{
    switch (kind) {
    case CV_BOOL: return "bool";
    case CV_LONG: return "long";
    case CV_STRING: return "string";
    case CV_ENTITY: return "entity";
    case CV_SET: return "set";
    case CV_RECORD: return "record";
    case CV_IP: return "ipaddr";
    case CV_DECIMAL: return "decimal";
    case CV_DATETIME: return "datetime";
    case CV_DURATION: return "duration";
    }
    return "?";
}

static void describe_str(tg_buf *out, cstr s)
{
    tg_buf_json_string(out, s.p, s.n > 64 ? 64 : s.n);
}

void cv_describe(const cedar_value *v, tg_buf *out)
{
    char tmp[64];
    switch (v->kind) {
    case CV_BOOL: tg_buf_appends(out, v->u.b ? "true" : "false"); break;
    case CV_LONG: tg_buf_printf(out, "%lld", (long long)v->u.l); break;
    case CV_STRING: describe_str(out, v->u.s); break;
    case CV_ENTITY:
        tg_buf_append(out, v->u.uid->type.p, v->u.uid->type.n);
        tg_buf_appends(out, "::");
        describe_str(out, v->u.uid->id);
        break;
    case CV_SET: tg_buf_printf(out, "[set of %u]", v->u.set->n); break;
    case CV_RECORD: tg_buf_printf(out, "{record of %u}", v->u.rec->n); break;
    case CV_IP: cedar_ip_format(v->u.ip, tmp); tg_buf_printf(out, "ip(\"%s\")", tmp); break;
    case CV_DECIMAL: cedar_decimal_format(v->u.l, tmp); tg_buf_printf(out, "decimal(\"%s\")", tmp); break;
    case CV_DATETIME: cedar_datetime_format(v->u.l, tmp); tg_buf_printf(out, "datetime(\"%s\")", tmp); break;
    case CV_DURATION: cedar_duration_format(v->u.l, tmp); tg_buf_printf(out, "duration(\"%s\")", tmp); break;
    }
}

/* `like`: the first chunk anchors at the start, the last at the end, and each middle
 * chunk matches at its leftmost position after the previous one. Leftmost placement is
 * always safe with `*` between chunks, so there is no backtracking: the cost is linear
 * in the subject per chunk (memmem), never exponential. Bytes suffice for code-point
 * semantics because UTF-8 literal chunks can only match at character boundaries. */
bool cedar_like_match(const like_pat *p, cstr s)
{
    if (p->nchunks == 1) return cstr_eq(p->chunks[0], s);
    cstr first = p->chunks[0], last = p->chunks[p->nchunks - 1];
    if ((uint64_t)first.n + last.n > s.n) return false;
    if (first.n && memcmp(s.p, first.p, first.n) != 0) return false;
    if (last.n && memcmp(s.p + s.n - last.n, last.p, last.n) != 0) return false;
    const char *cur = s.p + first.n, *end = s.p + s.n - last.n;
    for (uint32_t i = 1; i + 1 < p->nchunks; i++) {
        cstr c = p->chunks[i];
        if (!c.n) continue;
        const char *hit = memmem(cur, (size_t)(end - cur), c.p, c.n);
        if (!hit) return false;
        cur = hit + c.n;
    }
    return true;
}
