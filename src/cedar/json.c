/*
 * json.c — a strict JSON reader for Cedar data (entities, contexts, requests).
 *
 * Why not jansson / tg_json_parse: Cedar entity ids, attribute names and record keys may
 * contain U+0000 (the integration corpus has them), and jansson cannot represent a NUL
 * inside an object key. This reader builds an arena DOM with counted strings and is at
 * least as strict as tg_json_parse: duplicate keys, nesting beyond CEDAR_JSON_MAX_DEPTH,
 * integers outside int64, invalid UTF-8, lone surrogates, raw control characters and
 * trailing garbage are all errors reported as "line L column C: reason".
 *
 * Parsing is in place: the text is copied into the arena once and every string of the DOM
 * is a slice of that copy, decoded where it stands (a decoded string is never longer than
 * its source) and NUL-terminated over its closing quote. So a string costs no allocation,
 * and the DOM's strings live exactly as long as the arena.
 */
#include "cedar/cedar_int.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Invariant: s..end is the arena copy being parsed; bytes before p are consumed and may
 * have been overwritten by decoded strings, so positions are counted in orig (the caller's
 * unmodified text at the same offsets). */
typedef struct jp {
    char       *s, *p, *end;
    const char *orig;
    tg_arena   *a;
    tg_error   *err;
    int         depth;
    cj         *nodes;   /* zeroed nodes not yet used (see new_node) */
    uint32_t    nleft;
} jp;

/* Nodes are carved from zeroed runs of JP_NODE_RUN: a request's DOM has dozens of nodes,
 * and one arena call per run instead of per node is a measurable part of parsing. */
#define JP_NODE_RUN 16

static cj *new_node(jp *j)
{
    if (!j->nleft) {
        j->nodes = tg_arena_calloc(j->a, JP_NODE_RUN, sizeof *j->nodes);
        j->nleft = JP_NODE_RUN;
    }
    j->nleft--;
    return j->nodes++;
}

static int jfail(jp *j, const char *what)
{
    uint32_t line = 1, col = 1;
    const char *stop = j->orig + ((j->p < j->end ? j->p : j->end) - j->s);
    for (const char *q = j->orig; q < stop; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)*q & 0xC0) != 0x80) {
            col++;
        }
    }
    return tg_error_set(j->err, "line %u column %u: %s", line, col, what);
}

static void skip_ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int hex4(jp *j, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = j->p < j->end ? *j->p : 0;
        int h = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (h < 0) return jfail(j, "invalid \\u escape");
        v = v * 16 + (uint32_t)h;
        j->p++;
    }
    *out = v;
    return 0;
}

/* Decodes the string at j->p (on the opening quote) in place, validating every escape and
 * UTF-8 sequence. The write position d never passes the read position j->p: an escape
 * decodes to at most as many bytes as it spans, and raw bytes are moved one for one. */
static int jstring_slow(jp *j, cstr *out)
{
    char *start = ++j->p, *d = start;
    for (;;) {
        if (j->p >= j->end) return jfail(j, "unterminated string");
        unsigned char c = (unsigned char)*j->p;
        if (c == '"') break;
        if (c < 0x20) return jfail(j, "control character in string");
        if (c == '\\') {
            j->p++;
            char e = j->p < j->end ? *j->p++ : 0;
            const char *simple = strchr("\"\\/bfnrt", e);
            if (e && simple) {
                *d++ = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
                continue;
            }
            if (e != 'u') return jfail(j, "invalid escape in string");
            uint32_t cp;
            if (hex4(j, &cp)) return -1;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return jfail(j, "lone surrogate in string");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
                    return jfail(j, "lone surrogate in string");
                j->p += 2;
                if (hex4(j, &lo)) return -1;
                if (lo < 0xDC00 || lo > 0xDFFF) return jfail(j, "lone surrogate in string");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            char u[4];
            size_t k = cedar_utf8_encode(u, cp);
            assert(d + k <= j->p);
            memcpy(d, u, k);
            d += k;
            continue;
        }
        /* raw UTF-8: validate the sequence */
        size_t len = cedar_utf8_seq(j->p, (size_t)(j->end - j->p));
        if (!len) return jfail(j, "invalid UTF-8 in string");
        memmove(d, j->p, len);
        d += len;
        j->p += len;
    }
    *d = '\0';  /* at or before the closing quote, which is consumed */
    j->p++;
    out->p = start;
    out->n = (uint32_t)(d - start);
    return 0;
}

/* Parses a string at j->p (on the opening quote) into *out (NUL-terminated, in place).
 * Almost every string in a request is printable ASCII without escapes: those are found by
 * one scan and need nothing more; anything else takes the validating decoder. */
static int jstring(jp *j, cstr *out)
{
    /* bytes that stand for themselves: printable ASCII but the quote and the backslash */
    static const bool plain[256] = {[0x20 ... 0x21] = true, [0x23 ... 0x5B] = true, [0x5D ... 0x7F] = true};
    char *q = j->p + 1;
    while (q < j->end && plain[(unsigned char)*q]) q++;
    if (q < j->end && *q == '"') {
        out->p = j->p + 1;
        out->n = (uint32_t)(q - (j->p + 1));
        *q = '\0';
        j->p = q + 1;
        return 0;
    }
    return jstring_slow(j, out);
}

static int cmp_cstr(const void *a, const void *b)
{
    return cstr_cmp(*(const cstr *)a, *(const cstr *)b);
}

/* Whether n keys contain a duplicate. Objects in requests have a handful of keys, where
 * comparing every pair beats sorting; larger ones sort a copy. */
static bool has_duplicate_key(tg_arena *a, const cstr *keys, uint32_t n)
{
    if (n <= 16) {
        for (uint32_t i = 1; i < n; i++)
            for (uint32_t k = 0; k < i; k++)
                if (cstr_eq(keys[i], keys[k])) return true;
        return false;
    }
    cstr *sorted = tg_arena_alloc(a, n * sizeof *sorted);
    memcpy(sorted, keys, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_cstr);
    for (uint32_t i = 1; i < n; i++)
        if (cstr_eq(sorted[i - 1], sorted[i])) return true;
    return false;
}

static cj *jvalue(jp *j);

/* Items are gathered on the stack (up to JC_LOCAL, then in doubling arena arrays) and
 * copied once into arrays of the exact size, so a small container costs two allocations. */
#define JC_LOCAL 8

static cj *jcontainer(jp *j, cj *v, bool obj)
{
    if (++j->depth > CEDAR_JSON_MAX_DEPTH) {
        jfail(j, "nesting too deep");
        return NULL;
    }
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
        j->p++;
        j->depth--;
        return v;
    }
    cj *local_items[JC_LOCAL];
    cstr local_keys[JC_LOCAL];
    cj **items = local_items;
    cstr *keys = local_keys;
    uint32_t n = 0, cap = JC_LOCAL;
    for (;;) {
        cstr key = {NULL, 0};
        skip_ws(j);
        if (obj) {
            if (j->p >= j->end || *j->p != '"') {
                jfail(j, "expected a string key");
                return NULL;
            }
            if (jstring(j, &key)) return NULL;
            skip_ws(j);
            if (j->p >= j->end || *j->p != ':') {
                jfail(j, "expected ':'");
                return NULL;
            }
            j->p++;
        }
        cj *item = jvalue(j);
        if (!item) return NULL;
        if (n == cap) {
            cap *= 2;
            cj **ni = tg_arena_alloc(j->a, cap * sizeof *ni);
            cstr *nk = tg_arena_alloc(j->a, cap * sizeof *nk);
            memcpy(ni, items, n * sizeof *ni);
            memcpy(nk, keys, n * sizeof *nk);
            items = ni;
            keys = nk;
        }
        keys[n] = key;
        items[n++] = item;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
            j->p++;
            break;
        }
        jfail(j, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        return NULL;
    }
    if (obj && has_duplicate_key(j->a, keys, n)) {
        jfail(j, "duplicate key in object");
        return NULL;
    }
    v->n = n;
    v->items = tg_arena_alloc(j->a, n * sizeof *v->items);
    memcpy(v->items, items, n * sizeof *v->items);
    if (obj) {
        v->keys = tg_arena_alloc(j->a, n * sizeof *v->keys);
        memcpy(v->keys, keys, n * sizeof *v->keys);
    }
    j->depth--;
    return v;
}

static cj *jvalue(jp *j)
{
    skip_ws(j);
    if (j->p >= j->end) {
        jfail(j, "unexpected end of input");
        return NULL;
    }
    cj *v = new_node(j);
    char c = *j->p;
    if (c == '{' || c == '[') {
        v->kind = c == '{' ? CJ_OBJ : CJ_ARR;
        return jcontainer(j, v, c == '{');
    }
    if (c == '"') {
        v->kind = CJ_STR;
        return jstring(j, &v->s) ? NULL : v;
    }
    static const struct { const char *w; int kind; } words[] = {
        {"true", CJ_TRUE}, {"false", CJ_FALSE}, {"null", CJ_NULL}};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(words[i].w);
        if ((size_t)(j->end - j->p) >= n && memcmp(j->p, words[i].w, n) == 0) {
            j->p += n;
            v->kind = (uint8_t)words[i].kind;
            return v;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        char *start = j->p;
        bool neg = c == '-';
        if (neg) j->p++;
        const char *digits = j->p;
        uint64_t mag = 0;
        bool big = false;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
            unsigned d = (unsigned)(*j->p - '0');
            if (mag > (UINT64_MAX - d) / 10) big = true;
            else mag = mag * 10 + d;
            j->p++;
        }
        if (j->p == digits || (*digits == '0' && j->p - digits > 1)) {
            j->p = start;
            jfail(j, "invalid number");
            return NULL;
        }
        bool real = false;
        if (j->p < j->end && *j->p == '.') {
            real = true;
            j->p++;
            if (j->p >= j->end || *j->p < '0' || *j->p > '9') {
                jfail(j, "invalid number");
                return NULL;
            }
            while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
        }
        if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
            real = true;
            j->p++;
            if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
            if (j->p >= j->end || *j->p < '0' || *j->p > '9') {
                jfail(j, "invalid number");
                return NULL;
            }
            while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
        }
        if (real) {
            v->kind = CJ_REAL;
            return v;
        }
        if (big || mag > (uint64_t)INT64_MAX + (neg ? 1 : 0)) {
            j->p = start;
            jfail(j, "integer outside the 64-bit range");
            return NULL;
        }
        v->kind = CJ_INT;
        v->i = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
        return v;
    }
    jfail(j, "unexpected character");
    return NULL;
}

cj *cj_parse(tg_arena *a, const char *buf, size_t len, tg_error *err)
{
    char *copy = tg_arena_alloc(a, len + 1);
    if (len) memcpy(copy, buf, len);
    copy[len] = '\0';
    jp j = {.s = copy, .p = copy, .end = copy + len, .orig = buf, .a = a, .err = err};
    cj *v = jvalue(&j);
    if (!v) return NULL;
    skip_ws(&j);
    if (j.p != j.end) {
        jfail(&j, "trailing characters after the JSON value");
        return NULL;
    }
    return v;
}

const cj *cj_getn(const cj *obj, const char *key, size_t n)
{
    if (!obj || obj->kind != CJ_OBJ) return NULL;
    cstr k = {key, (uint32_t)n};
    for (uint32_t i = 0; i < obj->n; i++)
        if (cstr_eq(obj->keys[i], k)) return obj->items[i];
    return NULL;
}
