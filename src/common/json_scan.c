/*
 * json_scan.c — the strict JSON scanner of the hot path: one pass over the bytes, no DOM.
 *
 * Why: toolgate mostly forwards what it receives, changing an id or a progress token.
 * Parsing a message into jansson values and serialising it again cost ~77 % of the
 * instructions of a proxied tools/call (docs/performance.md). tg_jscan validates EXACTLY
 * what tg_json_parse accepts — same grammar, UTF-8 rules, escapes (surrogate pairs, no
 * \u0000), duplicate keys at every level compared after decoding, depth limit, integers
 * within int64, reals that do not overflow, nothing after the value — and records where
 * each value lies (a flat token array), so callers look members up by key and build the
 * outgoing bytes by splicing a few spans of the original (tg_jsplice). A message that
 * needs deep inspection can still become a jansson value with tg_jscan_json.
 *
 * One deliberate difference: jansson's lexer loses a NUL byte that directly follows a
 * number or literal ("[1\0]" reads as [1]). The scanner's input is forwarded byte for
 * byte, so it rejects every NUL byte outside a string as well as inside one.
 *
 * tests/common/test_json_scan.c checks accept/reject against tg_json_parse on thousands
 * of generated and mutated inputs.
 */
#include "common/tg_common.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* jansson's own compile-time nesting limit; a larger max_depth cannot be honoured by
 * tg_json_parse either. */
#define JSCAN_JANSSON_MAX_DEPTH 2048
/* Objects up to this many members are checked for duplicates pairwise; larger ones are
 * sorted by key hash first so a 10,000-key object stays O(n log n). */
#define JSCAN_PAIRWISE_MAX 8

/* One key of an object still open (or being closed): kept on a stack in tg_jdoc.keys so
 * nested objects push above their parent's keys and pop on close. */
struct tg_jkey {
    uint64_t hash;  /* FNV-1a of the decoded key bytes */
    uint32_t tok;   /* the key's string token */
};

typedef struct jscan {
    tg_jdoc *d;
    const unsigned char *p;  /* the input */
    size_t len, pos;
    int max_depth;
    tg_error *err;
} jscan;

/* ---------------------------------------------------------------- errors */

static int jscan_fail(jscan *s, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* "line L column C: reason", columns counted in characters like jansson does. */
static int jscan_fail(jscan *s, size_t at, const char *fmt, ...)
{
    if (!s->err) return -1;
    size_t line = 1, col = 0;
    for (size_t i = 0; i < at && i < s->len; i++) {
        if (s->p[i] == '\n') {
            line++;
            col = 0;
        } else if ((s->p[i] & 0xc0) != 0x80) {
            col++;
        }
    }
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return tg_error_set(s->err, "line %zu column %zu: %s", line, col + 1, reason);
}

/* ---------------------------------------------------------------- storage */

static uint32_t tok_push(jscan *s, tg_jtype type, size_t start)
{
    tg_jdoc *d = s->d;
    if (d->ntoks == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 64;
        d->toks = realloc(d->toks, d->cap * sizeof *d->toks);
        if (!d->toks) abort();
    }
    tg_jtok *t = &d->toks[d->ntoks];
    memset(t, 0, sizeof *t);
    t->type = (uint8_t)type;
    t->start = start;
    return (uint32_t)d->ntoks++;
}

static void key_push(tg_jdoc *d, uint64_t hash, uint32_t tok)
{
    if (d->nkeys == d->kcap) {
        d->kcap = d->kcap ? d->kcap * 2 : 32;
        d->keys = realloc(d->keys, d->kcap * sizeof *d->keys);
        if (!d->keys) abort();
    }
    d->keys[d->nkeys].hash = hash;
    d->keys[d->nkeys].tok = tok;
    d->nkeys++;
}

void tg_jdoc_free(tg_jdoc *d)
{
    free(d->toks);
    free(d->keys);
    memset(d, 0, sizeof *d);
}

/* ---------------------------------------------------------------- strings */

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int hex4(const unsigned char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return -1;
        v = v << 4 | h;
    }
    return v;
}

static size_t utf8_put(uint32_t cp, unsigned char *out)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xc0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xe0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (unsigned char)(0xf0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Length of the valid UTF-8 sequence starting at p (at most n bytes), or 0: no overlong
 * forms, no surrogates, nothing above U+10FFFF (the rules jansson applies). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t k;
    uint32_t cp;
    if (c < 0xc2) return 0;  /* continuation byte or overlong 2-byte lead */
    if (c < 0xe0) { k = 2; cp = c & 0x1f; }
    else if (c < 0xf0) { k = 3; cp = c & 0x0f; }
    else if (c < 0xf5) { k = 4; cp = c & 0x07; }
    else return 0;
    if (k > n) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return k;
}

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

/* As signed bytes, both control characters and the bytes of 0x80 and above are below
 * 0x20: one compare finds both, two (three with DEL) find the rest. */
size_t tg_json_plain_end(const unsigned char *p, size_t i, size_t n, bool stop_del)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  space = _mm_set1_epi8(0x20), del = _mm_set1_epi8(stop_del ? 0x7f : '"');
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        __m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                                 _mm_cmpeq_epi8(v, bslash)),
                                    _mm_or_si128(_mm_cmplt_epi8(v, space),
                                                 _mm_cmpeq_epi8(v, del)));
        unsigned mask = (unsigned)_mm_movemask_epi8(stop);
        if (mask) return i + (size_t)__builtin_ctz(mask);
    }
#endif
    while (i < n && p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\' &&
           !(stop_del && p[i] == 0x7f))
        i++;
    return i;
}

/* Scans a string starting at the opening quote. Sets *escaped when it holds a backslash
 * escape; *hash (when non-NULL) gets the hash of the decoded bytes. */
static int scan_string(jscan *s, bool *escaped, uint64_t *hash)
{
    const unsigned char *p = s->p;
    size_t i = s->pos + 1, n = s->len, run = i;
    uint64_t h = FNV_OFFSET;
    *escaped = false;
    for (;;) {
        i = tg_json_plain_end(p, i, n, false); /* the common case: plain printable ASCII */
        if (i >= n) return jscan_fail(s, n, "premature end of input in a string");
        unsigned char c = p[i];
        if (c == '"') {
            if (hash) *hash = fnv(h, p + run, i - run);
            s->pos = i + 1;
            return 0;
        }
        if (c < 0x20) return jscan_fail(s, i, "control character 0x%x in a string", c);
        if (c >= 0x80) {
            size_t k = utf8_len(p + i, n - i);
            if (!k) return jscan_fail(s, i, "invalid UTF-8 in a string");
            i += k;
            continue;
        }
        /* a backslash escape */
        *escaped = true;
        if (hash) h = fnv(h, p + run, i - run);
        if (i + 1 >= n) return jscan_fail(s, n, "premature end of input in a string");
        unsigned char e = p[i + 1], out[4];
        size_t olen = 1;
        switch (e) {
        case '"': case '\\': case '/': out[0] = e; break;
        case 'b': out[0] = '\b'; break;
        case 'f': out[0] = '\f'; break;
        case 'n': out[0] = '\n'; break;
        case 'r': out[0] = '\r'; break;
        case 't': out[0] = '\t'; break;
        case 'u': {
            int v = i + 6 <= n ? hex4(p + i + 2) : -1;
            if (v < 0) return jscan_fail(s, i, "invalid \\u escape");
            uint32_t cp = (uint32_t)v;
            if (cp == 0) return jscan_fail(s, i, "\\u0000 is not allowed");
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return jscan_fail(s, i, "invalid Unicode '\\u%04X' (lone low surrogate)", cp);
            if (cp >= 0xd800 && cp <= 0xdbff) {
                int lo = i + 12 <= n && p[i + 6] == '\\' && p[i + 7] == 'u' ? hex4(p + i + 8) : -1;
                if (lo < 0xdc00 || lo > 0xdfff)
                    return jscan_fail(s, i, "invalid Unicode '\\u%04X' (unpaired surrogate)", cp);
                cp = 0x10000 + ((cp - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
                i += 6;
            }
            olen = utf8_put(cp, out);
            i += 4;
            break;
        }
        default: return jscan_fail(s, i, "invalid escape '\\%c'", e >= 0x20 && e < 0x7f ? e : '?');
        }
        if (hash) h = fnv(h, out, olen);
        i += 2;
        run = i;
    }
}

size_t tg_jscan_decode(const char *raw, size_t n, char *out)
{
    /* Input was validated by tg_jscan: every escape is well formed. */
    const unsigned char *p = (const unsigned char *)raw;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (p[i] != '\\') {
            out[o++] = (char)p[i++];
            continue;
        }
        unsigned char e = p[i + 1];
        switch (e) {
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            uint32_t cp = (uint32_t)hex4(p + i + 2);
            if (cp >= 0xd800 && cp <= 0xdbff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + ((uint32_t)hex4(p + i + 8) - 0xdc00);
                i += 6;
            }
            o += utf8_put(cp, (unsigned char *)out + o);
            i += 4;
            break;
        }
        default: out[o++] = (char)e; break;
        }
        i += 2;
    }
    return o;
}

/* ---------------------------------------------------------------- numbers, literals */

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int scan_number(jscan *s, tg_jtype *type)
{
    const unsigned char *p = s->p;
    size_t i = s->pos, n = s->len, start = i;
    bool neg = false;
    if (p[i] == '-') {
        neg = true;
        i++;
    }
    if (i >= n || !is_digit(p[i])) return jscan_fail(s, start, "invalid number");
    size_t int_start = i;
    if (p[i] == '0') {
        i++;
        if (i < n && is_digit(p[i])) return jscan_fail(s, start, "invalid number (leading zero)");
    } else {
        while (i < n && is_digit(p[i])) i++;
    }
    size_t int_end = i;
    bool real = false;
    if (i < n && p[i] == '.') {
        real = true;
        i++;
        if (i >= n || !is_digit(p[i])) return jscan_fail(s, start, "invalid number");
        while (i < n && is_digit(p[i])) i++;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        real = true;
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-')) i++;
        if (i >= n || !is_digit(p[i])) return jscan_fail(s, start, "invalid number");
        while (i < n && is_digit(p[i])) i++;
    }
    if (!real) {
        /* exact int64, as jansson's strtoll: magnitude up to 2^63 (- sign) or 2^63-1 */
        uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        for (size_t k = int_start; k < int_end; k++) {
            unsigned d = p[k] - '0';
            if (v > (limit - d) / 10)
                return jscan_fail(s, start, "too big %sinteger", neg ? "negative " : "");
            v = v * 10 + d;
        }
        *type = TG_JT_INTEGER;
    } else {
        /* jansson rejects reals that overflow a double */
        size_t len = i - start;
        char small[64], *buf = len < sizeof small ? small : malloc(len + 1);
        if (!buf) abort();
        memcpy(buf, p + start, len);
        buf[len] = '\0';
        errno = 0;
        double v = strtod(buf, NULL);
        bool overflow = (v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE;
        if (buf != small) free(buf);
        if (overflow) return jscan_fail(s, start, "real number overflow");
        *type = TG_JT_REAL;
    }
    s->pos = i;
    return 0;
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int scan_literal(jscan *s, tg_jtype *type)
{
    size_t i = s->pos, n = s->len;
    while (i < n && is_alpha(s->p[i])) i++;
    size_t len = i - s->pos;
    const char *w = (const char *)s->p + s->pos;
    if (len == 4 && memcmp(w, "true", 4) == 0) *type = TG_JT_TRUE;
    else if (len == 5 && memcmp(w, "false", 5) == 0) *type = TG_JT_FALSE;
    else if (len == 4 && memcmp(w, "null", 4) == 0) *type = TG_JT_NULL;
    else return jscan_fail(s, s->pos, "invalid token");
    s->pos = i;
    return 0;
}

/* ---------------------------------------------------------------- duplicates */

static bool key_equal(const tg_jdoc *d, uint32_t a, uint32_t b)
{
    const tg_jtok *x = &d->toks[a], *y = &d->toks[b];
    const char *xs = d->buf + x->start + 1, *ys = d->buf + y->start + 1;
    size_t xn = x->end - x->start - 2, yn = y->end - y->start - 2;
    if (!x->escaped && !y->escaped) return xn == yn && memcmp(xs, ys, xn) == 0;
    /* decoding never lengthens a string */
    char *bx = malloc(xn + 1), *by = malloc(yn + 1);
    if (!bx || !by) abort();
    size_t dx = x->escaped ? tg_jscan_decode(xs, xn, bx) : (memcpy(bx, xs, xn), xn);
    size_t dy = y->escaped ? tg_jscan_decode(ys, yn, by) : (memcpy(by, ys, yn), yn);
    bool eq = dx == dy && memcmp(bx, by, dx) == 0;
    free(bx);
    free(by);
    return eq;
}

/* Orders keys by their decoded bytes (length first); ties by position, so the later of
 * two equal keys sorts after the earlier one. */
static int key_cmp(const void *a, const void *b, void *arg)
{
    const tg_jdoc *d = arg;
    const struct tg_jkey *x = a, *y = b;
    const tg_jtok *tx = &d->toks[x->tok], *ty = &d->toks[y->tok];
    int c;
    if (!tx->escaped && !ty->escaped) {
        size_t xn = tx->end - tx->start, yn = ty->end - ty->start;
        c = xn != yn ? (xn < yn ? -1 : 1)
                     : memcmp(d->buf + tx->start, d->buf + ty->start, xn);
    } else {
        size_t xn, yn;
        char *xs = tg_jscan_strdup(d, (int)x->tok, &xn), *ys = tg_jscan_strdup(d, (int)y->tok, &yn);
        c = xn != yn ? (xn < yn ? -1 : 1) : memcmp(xs, ys, xn);
        free(xs);
        free(ys);
    }
    if (c) return c;
    return x->tok < y->tok ? -1 : x->tok > y->tok;
}

/* Checks the keys pushed since `base` (one object's) and pops them. Returns the token of
 * the first key that repeats an earlier one, or 0 (token 0 is never a key). Small objects
 * compare pairwise (hash first); large ones are sorted by content, so even keys crafted
 * to collide in the hash cost O(n log n). */
static uint32_t keys_check(tg_jdoc *d, size_t base)
{
    struct tg_jkey *k = d->keys + base;
    size_t n = d->nkeys - base;
    uint32_t dup = 0;
    if (n <= JSCAN_PAIRWISE_MAX) {
        for (size_t i = 1; i < n && !dup; i++)
            for (size_t j = 0; j < i; j++)
                if (k[i].hash == k[j].hash && key_equal(d, k[i].tok, k[j].tok)) {
                    dup = k[i].tok;
                    break;
                }
    } else {
        qsort_r(k, n, sizeof *k, key_cmp, d);
        for (size_t i = 1; i < n; i++)
            if (key_equal(d, k[i].tok, k[i - 1].tok) && (!dup || k[i].tok < dup)) dup = k[i].tok;
    }
    d->nkeys = base;
    return dup;
}

/* ---------------------------------------------------------------- values */

static void skip_ws(jscan *s)
{
    while (s->pos < s->len) {
        unsigned char c = s->p[s->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        s->pos++;
    }
}

static int scan_value(jscan *s, int depth);

static int scan_container(jscan *s, int depth, bool object)
{
    tg_jdoc *d = s->d;
    size_t start = s->pos;
    if (depth > s->max_depth)
        return jscan_fail(s, start, "nesting deeper than %d levels", s->max_depth);
    uint32_t t = tok_push(s, object ? TG_JT_OBJECT : TG_JT_ARRAY, start);
    size_t key_base = d->nkeys;
    uint32_t count = 0;
    char close = object ? '}' : ']';
    s->pos++;
    skip_ws(s);
    if (s->pos < s->len && s->p[s->pos] == close) {
        s->pos++;
    } else {
        for (;;) {
            if (object) {
                if (s->pos >= s->len || s->p[s->pos] != '"')
                    return jscan_fail(s, s->pos, "string or '}' expected");
                uint32_t kt = tok_push(s, TG_JT_STRING, s->pos);
                bool esc;
                uint64_t h;
                if (scan_string(s, &esc, &h) != 0) return -1;
                d->toks[kt].end = s->pos;
                d->toks[kt].escaped = esc;
                d->toks[kt].next = kt + 1;
                key_push(d, h, kt);
                skip_ws(s);
                if (s->pos >= s->len || s->p[s->pos] != ':')
                    return jscan_fail(s, s->pos, "':' expected");
                s->pos++;
                skip_ws(s);
            }
            if (scan_value(s, depth) != 0) return -1;
            count++;
            skip_ws(s);
            if (s->pos < s->len && s->p[s->pos] == ',') {
                s->pos++;
                skip_ws(s);
                continue;
            }
            if (s->pos < s->len && s->p[s->pos] == close) {
                s->pos++;
                break;
            }
            return jscan_fail(s, s->pos, "',' or '%c' expected", close);
        }
    }
    if (object) {
        uint32_t dup = keys_check(d, key_base);
        if (dup) return jscan_fail(s, d->toks[dup].start, "duplicate object key");
    }
    d->toks[t].end = s->pos;
    d->toks[t].size = count;
    d->toks[t].next = (uint32_t)d->ntoks;
    return 0;
}

static int scan_value(jscan *s, int depth)
{
    if (s->pos >= s->len) return jscan_fail(s, s->pos, "premature end of input");
    unsigned char c = s->p[s->pos];
    if (c == '{' || c == '[') return scan_container(s, depth + 1, c == '{');
    size_t start = s->pos;
    tg_jtype type = TG_JT_NONE;
    bool esc = false;
    uint32_t t;
    if (c == '"') {
        t = tok_push(s, TG_JT_STRING, start);
        if (scan_string(s, &esc, NULL) != 0) return -1;
        s->d->toks[t].escaped = esc;
    } else {
        int rc;
        if (c == '-' || is_digit(c)) rc = scan_number(s, &type);
        else if (is_alpha(c)) rc = scan_literal(s, &type);
        else rc = jscan_fail(s, start, "invalid token");
        if (rc != 0) return -1;
        t = tok_push(s, type, start);
    }
    s->d->toks[t].end = s->pos;
    s->d->toks[t].next = t + 1;
    return 0;
}

int tg_jscan(tg_jdoc *d, const char *buf, size_t len, int max_depth, tg_error *err)
{
    if (max_depth <= 0) max_depth = TG_JSON_MAX_DEPTH;
    if (max_depth > JSCAN_JANSSON_MAX_DEPTH) max_depth = JSCAN_JANSSON_MAX_DEPTH;
    d->buf = buf;
    d->len = len;
    d->ntoks = 0;
    d->nkeys = 0;
    if (len >= UINT32_MAX) return tg_error_set(err, "JSON text larger than 4 GiB");
    jscan s = {d, (const unsigned char *)buf, len, 0, max_depth, err};
    skip_ws(&s);
    if (s.pos >= len) return jscan_fail(&s, len, "'[' or '{' or a value expected");
    if (scan_value(&s, 0) != 0) {
        d->ntoks = 0;
        return -1;
    }
    skip_ws(&s);
    if (s.pos < len) {
        d->ntoks = 0;
        return jscan_fail(&s, s.pos, "end of input expected");
    }
    return 0;
}

/* ---------------------------------------------------------------- lookups */

/* Decoded string token equals (s, n)? */
static bool tok_streq(const tg_jdoc *d, int tok, const char *str, size_t n)
{
    const tg_jtok *t = &d->toks[tok];
    const char *raw = d->buf + t->start + 1;
    size_t rn = t->end - t->start - 2;
    if (!t->escaped) return rn == n && memcmp(raw, str, n) == 0;
    if (rn < n) return false;
    char *tmp = malloc(rn + 1);
    if (!tmp) abort();
    size_t dn = tg_jscan_decode(raw, rn, tmp);
    bool eq = dn == n && memcmp(tmp, str, n) == 0;
    free(tmp);
    return eq;
}

bool tg_jscan_streq(const tg_jdoc *d, int tok, const char *s)
{
    return tok >= 0 && d->toks[tok].type == TG_JT_STRING && tok_streq(d, tok, s, strlen(s));
}

static int member(const tg_jdoc *d, int obj, const char *key, size_t klen)
{
    if (obj < 0 || d->toks[obj].type != TG_JT_OBJECT) return -1;
    uint32_t i = (uint32_t)obj + 1;
    for (uint32_t m = 0; m < d->toks[obj].size; m++) {
        if (tok_streq(d, (int)i, key, klen)) return (int)i + 1;
        i = d->toks[i + 1].next;
    }
    return -1;
}

int tg_jscan_get(const tg_jdoc *d, int obj, const char *key)
{
    return member(d, obj, key, strlen(key));
}

int tg_jscan_path(const tg_jdoc *d, int from, const char *path)
{
    int t = from;
    while (t >= 0 && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        t = member(d, t, path, n);
        path += n + (dot ? 1 : 0);
    }
    return t;
}

int tg_jscan_int(const tg_jdoc *d, int tok, int64_t *out)
{
    if (tok < 0 || d->toks[tok].type != TG_JT_INTEGER) return -1;
    const tg_jtok *t = &d->toks[tok];
    const char *p = d->buf + t->start;
    bool neg = *p == '-';
    uint64_t v = 0;
    for (p += neg; p < d->buf + t->end; p++) v = v * 10 + (uint64_t)(*p - '0');
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

char *tg_jscan_strdup(const tg_jdoc *d, int tok, size_t *len)
{
    if (tok < 0 || d->toks[tok].type != TG_JT_STRING) return NULL;
    const tg_jtok *t = &d->toks[tok];
    size_t rn = t->end - t->start - 2;
    char *out = malloc(rn + 1);
    if (!out) abort();
    size_t n = t->escaped ? tg_jscan_decode(d->buf + t->start + 1, rn, out)
                          : (memcpy(out, d->buf + t->start + 1, rn), rn);
    out[n] = '\0';
    if (len) *len = n;
    return out;
}

void tg_jscan_canon(const tg_jdoc *d, int tok, tg_buf *out)
{
    const tg_jtok *t = &d->toks[tok];
    if (t->type == TG_JT_INTEGER) {
        int64_t v;
        tg_jscan_int(d, tok, &v);
        tg_buf_append_i64(out, v);
    } else if (t->type == TG_JT_STRING && t->escaped) {
        size_t n;
        char *s = tg_jscan_strdup(d, tok, &n);
        tg_buf_json_string(out, s, n);
        free(s);
    } else {
        tg_buf_append(out, d->buf + t->start, t->end - t->start);
    }
}

/* A real as jansson reads it: strtod on the token's bytes (validated, and known not to
 * overflow). */
static double tok_real(const tg_jdoc *d, const tg_jtok *t)
{
    size_t len = t->end - t->start;
    char small[64], *buf = len < sizeof small ? small : malloc(len + 1);
    if (!buf) abort();
    memcpy(buf, d->buf + t->start, len);
    buf[len] = '\0';
    double v = strtod(buf, NULL);
    if (buf != small) free(buf);
    return v;
}

/* A string token decoded (NUL-terminated) into small when it fits, else malloc'd. */
static char *tok_text(const tg_jdoc *d, const tg_jtok *t, char *small, size_t cap, size_t *n)
{
    size_t rn = t->end - t->start - 2;
    char *out = rn < cap ? small : malloc(rn + 1);
    if (!out) abort();
    *n = t->escaped ? tg_jscan_decode(d->buf + t->start + 1, rn, out)
                    : (memcpy(out, d->buf + t->start + 1, rn), rn);
    out[*n] = '\0';
    return out;
}

double tg_jscan_real(const tg_jdoc *d, int tok)
{
    return tok_real(d, &d->toks[tok]);
}

char *tg_jscan_text(const tg_jdoc *d, int tok, char *small, size_t cap, size_t *n)
{
    return tok_text(d, &d->toks[tok], small, cap, n);
}

char *tg_jscan_str_arena(const tg_jdoc *d, int tok, tg_arena *a, size_t *len)
{
    if (tok < 0 || d->toks[tok].type != TG_JT_STRING) return NULL;
    const tg_jtok *t = &d->toks[tok];
    size_t rn = t->end - t->start - 2, n;
    char *out = tg_arena_alloc(a, rn + 1);
    n = t->escaped ? tg_jscan_decode(d->buf + t->start + 1, rn, out)
                   : (memcpy(out, d->buf + t->start + 1, rn), rn);
    out[n] = '\0';
    if (len) *len = n;
    return out;
}

int tg_jscan_pointer(const tg_jdoc *d, int from, const char *ptr)
{
    char step[TG_JSCAN_POINTER_STEP + 1];
    const char *p = ptr;
    int t = from;
    while (t >= 0 && *p == '/') {
        size_t n = 0;
        for (p++; *p && *p != '/'; n++) {
            char c = *p++;
            if (c == '~') {
                if (*p != '0' && *p != '1') return -1;
                c = *p++ == '1' ? '/' : '~';
            }
            if (n == TG_JSCAN_POINTER_STEP) return -1;
            step[n] = c;
        }
        step[n] = '\0';
        const tg_jtok *v = &d->toks[t];
        if (v->type == TG_JT_OBJECT) {
            t = member(d, t, step, n);
        } else if (v->type == TG_JT_ARRAY) {
            /* an index: digits, no leading zero, below the element count */
            if (n == 0 || n > 9 || (n > 1 && step[0] == '0') || strspn(step, "0123456789") != n)
                return -1;
            unsigned long idx = strtoul(step, NULL, 10);
            if (idx >= v->size) return -1;
            uint32_t e = (uint32_t)t + 1;
            while (idx--) e = d->toks[e].next;
            t = (int)e;
        } else {
            return -1;
        }
    }
    return *p ? -1 : t; /* a pointer is "" or starts with '/' */
}

int tg_jdoc_subtree(tg_jdoc *out, const tg_jdoc *d, int tok, const char *buf, size_t base)
{
    tg_jdoc_free(out);
    if (tok < 0) return -1;
    size_t n = d->toks[tok].next - (uint32_t)tok;
    out->toks = malloc(n * sizeof *out->toks);
    if (!out->toks) abort();
    for (size_t i = 0; i < n; i++) {
        tg_jtok t = d->toks[(size_t)tok + i];
        t.start -= base;
        t.end -= base;
        t.next -= (uint32_t)tok;
        out->toks[i] = t;
    }
    out->ntoks = out->cap = n;
    out->buf = buf;
    out->len = d->toks[tok].end - base;
    return 0;
}

tg_jref tg_jdoc_of_json(tg_jdoc_json *h, const json_t *v)
{
    if (!v) return (tg_jref){NULL, -1};
    size_t len;
    free(h->text);
    h->text = tg_json_dump(v, &len);
    /* jansson's own output of a value the parser made: nothing to refuse */
    if (tg_jscan(&h->doc, h->text, len, JSCAN_JANSSON_MAX_DEPTH, NULL) != 0) abort();
    return (tg_jref){&h->doc, 0};
}

void tg_jdoc_json_free(tg_jdoc_json *h)
{
    tg_jdoc_free(&h->doc);
    free(h->text);
    h->text = NULL;
}

/* Builds the value of token *i and advances *i past its subtree. The scan has already
 * validated everything tg_json_parse checks (UTF-8, no \u0000, unique keys, int64, depth),
 * so the values are built with jansson's _nocheck constructors, in document order (the
 * member order jansson's parser gives too). */
static json_t *tok_json(const tg_jdoc *d, uint32_t *i)
{
    const tg_jtok *t = &d->toks[(*i)++];
    char small[128];
    size_t n;
    switch ((tg_jtype)t->type) {
    case TG_JT_OBJECT: {
        json_t *o = json_object();
        if (!o) abort();
        for (uint32_t k = 0; k < t->size; k++) {
            const tg_jtok *kt = &d->toks[(*i)++];
            if (!kt->escaped) {  /* the key's bytes as they stand: no copy */
                if (json_object_setn_new_nocheck(o, d->buf + kt->start + 1, kt->end - kt->start - 2,
                                                 tok_json(d, i)) != 0)
                    abort();
                continue;
            }
            char *key = tok_text(d, kt, small, sizeof small, &n);
            if (json_object_setn_new_nocheck(o, key, n, tok_json(d, i)) != 0) abort();
            if (key != small) free(key);
        }
        return o;
    }
    case TG_JT_ARRAY: {
        json_t *a = json_array();
        if (!a) abort();
        for (uint32_t k = 0; k < t->size; k++)
            if (json_array_append_new(a, tok_json(d, i)) != 0) abort();
        return a;
    }
    case TG_JT_STRING: {
        if (!t->escaped) {  /* jansson copies the bytes as they stand: no copy of ours */
            json_t *v = json_stringn_nocheck(d->buf + t->start + 1, t->end - t->start - 2);
            if (!v) abort();
            return v;
        }
        char *s = tok_text(d, t, small, sizeof small, &n);
        json_t *v = json_stringn_nocheck(s, n);
        if (s != small) free(s);
        if (!v) abort();
        return v;
    }
    case TG_JT_INTEGER: {
        int64_t v;
        tg_jscan_int(d, (int)(t - d->toks), &v);
        return json_integer((json_int_t)v);
    }
    case TG_JT_REAL: return json_real(tok_real(d, t));
    case TG_JT_TRUE: return json_true();
    case TG_JT_FALSE: return json_false();
    default: return json_null();
    }
}

/* Built from the tokens rather than by json_loadb: jansson's parser re-validates what the
 * scan already did and costs several times more (it was ~25 % of the instructions of a
 * decided tools/call, docs/performance.md). test_json_scan checks json_equal against
 * tg_json_parse on every generated document. */
json_t *tg_jscan_json(const tg_jdoc *d, int tok)
{
    uint32_t i = (uint32_t)tok;
    json_t *v = tok_json(d, &i);
    if (!v) abort(); /* out of memory */
    return v;
}

/* ---------------------------------------------------------------- JSON-RPC */

static bool is_str(const tg_jdoc *d, int t)
{
    return t >= 0 && d->toks[t].type == TG_JT_STRING;
}

static bool is_int(const tg_jdoc *d, int t)
{
    return t >= 0 && d->toks[t].type == TG_JT_INTEGER;
}

/* The same rules and messages as tg_rpc_classify (json.c), on tokens. */
tg_rpc_kind tg_jscan_classify(const tg_jdoc *d, int msg, tg_error *err)
{
    if (msg < 0 || d->toks[msg].type != TG_JT_OBJECT) {
        tg_error_set(err, "a JSON-RPC message must be an object");
        return TG_RPC_KIND_INVALID;
    }
    if (!tg_jscan_streq(d, tg_jscan_get(d, msg, "jsonrpc"), "2.0")) {
        tg_error_set(err, "\"jsonrpc\" must be \"2.0\"");
        return TG_RPC_KIND_INVALID;
    }
    int id = tg_jscan_get(d, msg, "id");
    if (id >= 0 && !is_str(d, id) && !is_int(d, id)) {
        tg_error_set(err, "\"id\" must be a string or an integer");
        return TG_RPC_KIND_INVALID;
    }
    int method = tg_jscan_get(d, msg, "method");
    int result = tg_jscan_get(d, msg, "result"), error = tg_jscan_get(d, msg, "error");
    if (method >= 0) {
        if (!is_str(d, method)) {
            tg_error_set(err, "\"method\" must be a string");
            return TG_RPC_KIND_INVALID;
        }
        int params = tg_jscan_get(d, msg, "params");
        if (params >= 0 && d->toks[params].type != TG_JT_OBJECT &&
            d->toks[params].type != TG_JT_ARRAY) {
            tg_error_set(err, "\"params\" must be an object or an array");
            return TG_RPC_KIND_INVALID;
        }
        if (result >= 0 || error >= 0) {
            tg_error_set(err, "a request cannot carry \"result\" or \"error\"");
            return TG_RPC_KIND_INVALID;
        }
        return id >= 0 ? TG_RPC_KIND_REQUEST : TG_RPC_KIND_NOTIFICATION;
    }
    if (id < 0) {
        tg_error_set(err, "message has neither \"method\" nor \"id\"");
        return TG_RPC_KIND_INVALID;
    }
    if ((result >= 0) == (error >= 0)) {
        tg_error_set(err, "a response needs exactly one of \"result\" and \"error\"");
        return TG_RPC_KIND_INVALID;
    }
    if (error >= 0 && (d->toks[error].type != TG_JT_OBJECT || !is_int(d, tg_jscan_get(d, error, "code")) ||
                       !is_str(d, tg_jscan_get(d, error, "message")))) {
        tg_error_set(err, "\"error\" needs an integer \"code\" and a string \"message\"");
        return TG_RPC_KIND_INVALID;
    }
    return TG_RPC_KIND_RESPONSE;
}

/* ---------------------------------------------------------------- splicing */

static int edit_cmp(const void *a, const void *b)
{
    const tg_jsplice *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

void tg_jsplice_build(tg_buf *out, const char *buf, size_t start, size_t end, tg_jsplice *edits,
                      size_t n)
{
    if (n > 1) qsort(edits, n, sizeof *edits, edit_cmp);
    size_t at = start;
    for (size_t i = 0; i < n; i++) {
        tg_buf_append(out, buf + at, edits[i].start - at);
        tg_buf_append(out, edits[i].text, edits[i].len);
        at = edits[i].end;
    }
    tg_buf_append(out, buf + at, end - at);
}
