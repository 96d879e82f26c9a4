/*
 * record.c — the audit record as bytes: canonical serialisation and its inverse, the
 * arguments digest and redaction, the chain hash, and the columns the store indexes.
 *
 * The canonical form is what the chain hashes and what verify re-derives, so it must be
 * a pure function of the record: a fixed key order, every key always present (null when
 * absent), no whitespace, arguments dumped with sorted keys. Parsing a stored body and
 * serialising it again must give back the same bytes; verify checks exactly that.
 */
#include "audit/audit_int.h"

#include <fnmatch.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const event_names[] = {"decision", "outcome", "auth_failure", "approval"};
static const char *const decision_names[] = {NULL, "allow", "deny", "approval_required"};
static const char *const mode_names[] = {"enforce", "shadow"};
static const char *const outcome_names[] = {NULL, "ok", "tool_error", "jsonrpc_error",
    "upstream_timeout", "upstream_crash", "not_forwarded", "cancelled"};
#define COUNT(a) (sizeof (a) / sizeof *(a))

const char *tg_audit_event_name(tg_audit_event e)
{
    return (unsigned)e < COUNT(event_names) ? event_names[e] : NULL;
}

const char *tg_audit_decision_name(tg_audit_decision d)
{
    return (unsigned)d < COUNT(decision_names) ? decision_names[d] : NULL;
}

const char *tg_audit_outcome_name(tg_audit_outcome o)
{
    return (unsigned)o < COUNT(outcome_names) ? outcome_names[o] : NULL;
}

/* Index of name in names (NULL entries match a JSON null), -1 when unknown. */
static int name_index(const char *const *names, size_t n, const json_t *v)
{
    for (size_t i = 0; i < n; i++) {
        if (!names[i] ? json_is_null(v)
                      : json_is_string(v) && strcmp(json_string_value(v), names[i]) == 0)
            return (int)i;
    }
    return -1;
}

/* ------------------------------------------------------------------ arguments */

/* Length of the valid UTF-8 sequence at p (at most n bytes, n >= 1), or 0: no overlongs,
 * surrogates or code points above U+10FFFF — what jansson accepts. */
static size_t utf8_char(const unsigned char *p, size_t n)
{
    unsigned c = p[0], need, cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) { need = 1; cp = c & 0x1f; }
    else if (c >= 0xe0 && c <= 0xef) { need = 2; cp = c & 0x0f; }
    else if (c >= 0xf0 && c <= 0xf4) { need = 3; cp = c & 0x07; }
    else return 0;
    if (need >= n) return 0;
    for (unsigned i = 1; i <= need; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return need + 1;
}

/* str (n bytes) as a JSON string, in one of the two styles the stored bytes depend on:
 * jansson's (upper-case \u00XX, \b and \f; 0x7f as it is), which the canonical arguments
 * use, or tg_buf_json_string's (lower-case \u00xx, also for 0x7f), which the record's
 * other fields use. -1 when str is not strict UTF-8 (no overlongs, surrogates or code
 * points above U+10FFFF: what jansson refuses); what was written is then to be
 * discarded. One pass: the check and the escaping run together. */
static int json_str_styled(tg_buf *b, const char *str, size_t n, bool jansson)
{
    const char *hex = jansson ? "0123456789ABCDEF" : "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    tg_buf_append(b, "\"", 1);
    size_t run = 0;   /* bytes before i still to copy as they are */
    for (size_t i = 0; i < n;) {
        size_t plain = tg_json_plain_end(s, i, n, !jansson);
        run += plain - i;
        i = plain;
        if (i == n) break;
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t k = utf8_char(s + i, n - i);
            if (!k) return -1;
            run += k;
            i += k;
            continue;
        }
        /* a byte to escape: a control character, '"', '\\', or DEL in our style */
        tg_buf_append(b, str + i - run, run);
        run = 0;
        char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\b': if (jansson) e[1] = 'b'; break;
        case '\f': if (jansson) e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default: break;
        }
        tg_buf_append(b, e, e[1] == 'u' ? 6 : 2);
        i++;
    }
    tg_buf_append(b, str + n - run, run);
    tg_buf_append(b, "\"", 1);
    return 0;
}

typedef struct canon_member {
    const char *key;    /* decoded (keys hold no NUL: the scanner refuses it) */
    size_t len;
    int value;          /* the value's token */
    char *owned;        /* key's malloc'd decoding, or NULL */
} canon_member;

/* jansson's key order for JSON_SORT_KEYS: bytes, then length */
static int member_cmp(const void *x, const void *y)
{
    const canon_member *a = x, *b = y;
    int c = memcmp(a->key, b->key, a->len < b->len ? a->len : b->len);
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

static int key_redacted(const char *key, size_t kn, const char *const *pat, size_t n);

/* The canonical form of the arguments is, byte for byte, what
 * json_dumps(JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) writes of the value (of its
 * redacted copy, tg_audit_redact, when patterns are given): the digest and the stored
 * bodies must not change. It is written here, from the call's scanned tokens, because
 * jansson's tree and dumper were the largest costs of an audit record
 * (docs/performance.md); tests/audit compares the two on generated values. A member
 * whose key matches a pattern is written as "[REDACTED]" and sets *redacted. */
static void canon_tok(tg_buf *b, const tg_jdoc *d, int tok, const char *const *pat, size_t npat,
                      bool *redacted)
{
    const tg_jtok *t = &d->toks[tok];
    switch ((tg_jtype)t->type) {
    case TG_JT_OBJECT: {
        size_t n = t->size;
        canon_member small[16], *m = n <= 16 ? small : malloc(n * sizeof *m);
        if (!m) abort();
        uint32_t k = (uint32_t)tok + 1;
        for (size_t i = 0; i < n; i++, k = d->toks[k + 1].next) {
            const tg_jtok *kt = &d->toks[k];
            size_t kn = kt->end - kt->start - 2;
            char *owned = NULL;
            const char *key = d->buf + kt->start + 1;
            if (kt->escaped) key = owned = tg_jscan_text(d, (int)k, NULL, 0, &kn); /* decoded */
            m[i] = (canon_member){key, kn, (int)k + 1, owned};
        }
        qsort(m, n, sizeof *m, member_cmp);
        tg_buf_append(b, "{", 1);
        for (size_t i = 0; i < n; i++) {
            if (i) tg_buf_append(b, ",", 1);
            if (json_str_styled(b, m[i].key, m[i].len, true)) abort(); /* scanned: UTF-8 */
            tg_buf_append(b, ":", 1);
            if (npat && key_redacted(m[i].key, m[i].len, pat, npat)) {
                tg_buf_append(b, "\"[REDACTED]\"", 12);
                *redacted = true;
            } else {
                canon_tok(b, d, m[i].value, pat, npat, redacted);
            }
            free(m[i].owned);
        }
        tg_buf_append(b, "}", 1);
        if (m != small) free(m);
        return;
    }
    case TG_JT_ARRAY: {
        tg_buf_append(b, "[", 1);
        uint32_t e = (uint32_t)tok + 1;
        for (uint32_t i = 0; i < t->size; i++, e = d->toks[e].next) {
            if (i) tg_buf_append(b, ",", 1);
            canon_tok(b, d, (int)e, pat, npat, redacted);
        }
        tg_buf_append(b, "]", 1);
        return;
    }
    case TG_JT_STRING: {
        char small[256];
        size_t n = t->end - t->start - 2;
        const char *str = d->buf + t->start + 1;
        char *text = NULL;
        if (t->escaped) str = text = tg_jscan_text(d, tok, small, sizeof small, &n);
        if (json_str_styled(b, str, n, true)) abort(); /* scanned: strict UTF-8 */
        if (text != small) free(text);
        return;
    }
    case TG_JT_INTEGER: {
        int64_t v;
        tg_jscan_int(d, tok, &v);
        tg_buf_append_i64(b, v);
        return;
    }
    case TG_JT_REAL: {
        /* rare in arguments, and jansson's real formatting has its own rules: ask it */
        json_t *r = json_real(tg_jscan_real(d, tok));
        char *text = json_dumps(r, JSON_ENCODE_ANY);
        json_decref(r);
        if (!text) abort();
        tg_buf_appends(b, text);
        free(text);
        return;
    }
    case TG_JT_TRUE: tg_buf_appends(b, "true"); return;
    case TG_JT_FALSE: tg_buf_appends(b, "false"); return;
    case TG_JT_NULL:
    case TG_JT_NONE: tg_buf_appends(b, "null"); return;
    }
}

bool audit_args_canon(tg_jref args, const char *const *pat, size_t npat, tg_buf *out)
{
    bool redacted = false;
    if (!args.d || args.tok < 0) tg_buf_appends(out, "null");
    else canon_tok(out, args.d, args.tok, pat, npat, &redacted);
    return redacted;
}

tg_jref audit_args_of(const tg_audit_record *r, tg_jdoc_json *tmp)
{
    return r->args_ref.d ? r->args_ref : tg_jdoc_of_json(tmp, r->args);
}

void tg_audit_args_digest_ref(tg_jref args, char out[65])
{
    tg_buf b = TG_BUF_INIT;
    audit_args_canon(args, NULL, 0, &b);
    tg_sha256_hex(b.data, b.len, out);
    tg_buf_free(&b);
}

void tg_audit_args_digest(const json_t *args, char out[65])
{
    tg_jdoc_json h = TG_JDOC_JSON_INIT;
    tg_audit_args_digest_ref(tg_jdoc_of_json(&h, args), out);
    tg_jdoc_json_free(&h);
}

static unsigned char ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c;
}

/* Does hay hold needle (no NUL in either), ASCII letters compared without case? */
static bool memcasemem(const char *hay, size_t hn, const char *needle, size_t nn)
{
    unsigned char first = ascii_lower((unsigned char)needle[0]);
    for (size_t i = 0; i + nn <= hn; i++)
        if (ascii_lower((unsigned char)hay[i]) == first &&
            strncasecmp(hay + i + 1, needle + 1, nn - 1) == 0)
            return true;
    return false;
}

const char *const tg_audit_default_redact[] = {
    "*token*", "*password*", "*passwd*", "*secret*", "authorization", "cookie",
    "*api_key*", "*apikey*", "*private_key*", "*credential*", NULL,
};

/* Does the key (kn bytes, no NUL) match one of the patterns, as fnmatch(pattern, key,
 * FNM_CASEFOLD) says? Most patterns are "*word*": in the C locale toolgate runs in (it
 * never calls setlocale), fnmatch matches them exactly when the key holds the word, ASCII
 * letters compared without case. Asked directly, because every key of every call's
 * arguments meets every pattern (fnmatch was a third of the arguments' canonical text);
 * the key is copied with a terminator only for the other patterns. */
static int key_redacted(const char *key, size_t kn, const char *const *pat, size_t n)
{
    char small[256], *z = NULL;
    int hit = 0;
    for (size_t i = 0; i < n && !hit; i++) {
        const char *p = pat[i];
        size_t len = strlen(p);
        if (len > 2 && p[0] == '*' && p[len - 1] == '*' && !memchr(p + 1, '*', len - 2) &&
            !memchr(p + 1, '?', len - 2) && !memchr(p + 1, '[', len - 2) &&
            !memchr(p + 1, '\\', len - 2)) {
            hit = memcasemem(key, kn, p + 1, len - 2);
            continue;
        }
        if (!z) {
            z = kn < sizeof small ? small : malloc(kn + 1);
            if (!z) abort();
            memcpy(z, key, kn);
            z[kn] = '\0';
        }
        hit = fnmatch(p, z, FNM_CASEFOLD) == 0;
    }
    if (z != small) free(z);
    return hit;
}

static json_t *redact_rec(const json_t *v, const char *const *pat, size_t n)
{
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)v, k, m) {
            json_object_set_new(o, k, key_redacted(k, strlen(k), pat, n) ? json_string("[REDACTED]")
                                                              : redact_rec(m, pat, n));
        }
        return o;
    }
    if (json_is_array(v)) {
        json_t *a = json_array();
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m) json_array_append_new(a, redact_rec(m, pat, n));
        return a;
    }
    return json_deep_copy(v);
}

json_t *tg_audit_redact(const json_t *v, const char *const *patterns, size_t n_patterns)
{
    if (!patterns) {
        patterns = tg_audit_default_redact;
        for (n_patterns = 0; patterns[n_patterns]; n_patterns++) {}
    }
    return v ? redact_rec(v, patterns, n_patterns) : NULL;
}

/* ------------------------------------------------------------------ canonical form */

typedef struct canon {
    tg_buf *b;
    int first;
    /* The first field that is not strict UTF-8 (no overlongs, surrogates or code points
     * above U+10FFFF): a string jansson would refuse to parse back never enters the
     * chain. Its key text (see K) and that text's length. */
    const char *bad;
    size_t bad_n;
} canon;

/* A member's key as the text before its value, `,"name":`, and that text's length. k must
 * be a string literal, so the length is known when compiling: a record writes some 35
 * keys, and measuring them was a tenth of the record's cost. */
#define K(k) ",\"" k "\":", sizeof(",\"" k "\":") - 1

static void key(canon *c, const char *text, size_t n)
{
    if (c->first) tg_buf_append(c->b, text + 1, n - 1); /* no comma before the first */
    else tg_buf_append(c->b, text, n);
    c->first = 0;
}

/* A string field as tg_buf_json_string writes it, or null; a field that is not strict
 * UTF-8 is remembered by its key text. */
static void str_val(canon *c, const char *k, size_t kn, const char *s)
{
    if (!s) {
        tg_buf_append(c->b, "null", 4);
        return;
    }
    if (json_str_styled(c->b, s, strlen(s), false) && !c->bad) {
        c->bad = k;
        c->bad_n = kn;
    }
}

static void put_str(canon *c, const char *k, size_t kn, const char *s)
{
    key(c, k, kn);
    str_val(c, k, kn, s);
}

static void put_strv(canon *c, const char *k, size_t kn, const char *const *v, size_t n)
{
    key(c, k, kn);
    tg_buf_append(c->b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i) tg_buf_append(c->b, ",", 1);
        str_val(c, k, kn, v[i] ? v[i] : "");
    }
    tg_buf_append(c->b, "]", 1);
}

static void put_int(canon *c, const char *k, size_t kn, int64_t v, int null_if_negative)
{
    key(c, k, kn);
    if (null_if_negative && v < 0) {
        tg_buf_appends(c->b, "null");
        return;
    }
    char d[21];
    tg_buf_append(c->b, d, tg_i64_dec(v, d));
}

/* 1 when the JSON text of an rpc_id is already what jansson would write back for it: a
 * plain integer (no sign on zero, no leading zeros, at most 18 digits) or a string of
 * printable ASCII without escapes. Nearly every id is one, and then the record does not
 * parse and dump it again. */
static int rpc_id_canonical(const char *t)
{
    const char *p = t;
    if (*p == '"') {
        for (p++; *p != '"'; p++)
            if (*p < 0x20 || *p > 0x7e || *p == '\\') return 0;
        return p[1] == 0;
    }
    if (strcmp(p, "0") == 0) return 1;
    if (*p == '-') p++;
    if (*p < '1' || *p > '9') return 0;
    size_t n = strspn(p, "0123456789");
    return p[n] == 0 && n <= 18;
}

static void put_raw(canon *c, const char *k, size_t kn, const char *json)
{
    key(c, k, kn);
    tg_buf_appends(c->b, json ? json : "null");
}

int tg_audit_record_canonical(const tg_audit_record *r, tg_buf *out, tg_error *err)
{
    tg_jdoc_json h = TG_JDOC_JSON_INIT;
    tg_jref args = audit_args_of(r, &h);
    tg_buf b = TG_BUF_INIT;
    if (args.d) audit_args_canon(args, NULL, 0, &b);
    int rc = audit_record_canonical_text(r, args.d ? b.data : NULL, out, err);
    tg_buf_free(&b);
    tg_jdoc_json_free(&h);
    return rc;
}

int audit_record_canonical_text(const tg_audit_record *r, const char *args, tg_buf *out,
                                tg_error *err)
{
    const char *ev = tg_audit_event_name(r->event);
    if (!ev) return tg_error_set(err, "audit: unknown event %d", (int)r->event);
    if ((unsigned)r->decision >= COUNT(decision_names) || (unsigned)r->mode >= COUNT(mode_names) ||
        (unsigned)r->outcome >= COUNT(outcome_names))
        return tg_error_set(err, "audit: decision, mode or outcome out of range");
    if (!r->args_sha256 || strlen(r->args_sha256) != 64)
        return tg_error_set(err, "audit: args_sha256 missing");
    /* The id is re-emitted from its parsed value so that equal ids give equal bytes. */
    char *dumped = NULL;
    const char *rpc_id = r->rpc_id;
    if (rpc_id && !rpc_id_canonical(rpc_id)) {
        json_t *id = json_loads(r->rpc_id, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
        if (!id || !(json_is_string(id) || json_is_integer(id))) {
            json_decref(id);
            return tg_error_set(err, "audit: rpc_id must be the JSON text of a string or an "
                                     "integer, got %.40s", r->rpc_id);
        }
        rpc_id = dumped = json_dumps(id, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(id);
    }
    char when[32];
    tg_format_time(r->time_ms, when);

    size_t start = out->len;
    canon c = {out, 1, NULL, 0};
    tg_buf_appends(out, "{");
    put_int(&c, K("v"), 1, 0);
    put_str(&c, K("event"), ev);
    put_str(&c, K("time"), when);
    put_int(&c, K("time_ms"), r->time_ms, 0);
    put_str(&c, K("instance"), r->instance);
    put_str(&c, K("session"), r->session_id);
    put_raw(&c, K("rpc_id"), rpc_id);
    put_str(&c, K("traceparent"), r->traceparent);
    put_str(&c, K("delegator"), r->delegator);
    put_str(&c, K("agent"), r->agent);
    put_strv(&c, K("act"), r->act_chain, r->n_act_chain);
    put_str(&c, K("auth_method"), r->auth_method);
    put_str(&c, K("credential_id"), r->credential_id);
    put_str(&c, K("client_ip"), r->client_ip);
    put_str(&c, K("upstream"), r->upstream);
    put_str(&c, K("method"), r->method);
    put_str(&c, K("tool"), r->tool);
    key(&c, K("resource"));
    if (r->resource_type || r->resource_id) {
        canon rc = {out, 1, NULL, 0};
        tg_buf_appends(out, "{");
        put_str(&rc, K("type"), r->resource_type);
        put_str(&rc, K("id"), r->resource_id);
        put_strv(&rc, K("parents"), r->resource_parents, r->n_resource_parents);
        tg_buf_appends(out, "}");
        if (!c.bad) {
            c.bad = rc.bad;
            c.bad_n = rc.bad_n;
        }
    } else {
        tg_buf_appends(out, "null");
    }
    put_str(&c, K("args_sha256"), r->args_sha256);
    put_raw(&c, K("args"), args);
    put_str(&c, K("intent"), r->intent);
    put_str(&c, K("workflow"), r->workflow);
    put_str(&c, K("ticket"), r->ticket);
    put_str(&c, K("decision"), tg_audit_decision_name(r->decision));
    put_str(&c, K("mode"), mode_names[r->mode]);
    put_strv(&c, K("reasons"), r->reasons, r->n_reasons);
    put_strv(&c, K("policies"), r->policies, r->n_policies);
    put_str(&c, K("policy_version"), r->policy_version);
    put_str(&c, K("approval_id"), r->approval_id);
    put_str(&c, K("approver"), r->approver);
    put_str(&c, K("outcome"), tg_audit_outcome_name(r->outcome));
    put_int(&c, K("upstream_latency_us"), r->upstream_latency_us, 1);
    put_int(&c, K("total_latency_us"), r->total_latency_us, 1);
    put_str(&c, K("detail"), r->detail);
    tg_buf_appends(out, "}");
    free(dumped);
    if (c.bad) {
        out->len = start;
        return tg_error_set(err, "audit: field \"%.*s\" is not valid UTF-8",
                            (int)c.bad_n - 4, c.bad + 2); /* the name inside ,"name": */
    }
    return 0;
}

/* ------------------------------------------------------------------ parsing back */

static int get_str(const json_t *o, const char *k, const char **out, tg_error *err)
{
    json_t *v = json_object_get(o, k);
    if (json_is_null(v)) {
        *out = NULL;
        return 0;
    }
    if (!json_is_string(v)) return tg_error_set(err, "audit record: \"%s\" is not a string", k);
    *out = json_string_value(v);
    return 0;
}

static int get_strv(const json_t *o, const char *k, tg_arena *a, const char *const **out,
                    size_t *n, tg_error *err)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_array(v)) return tg_error_set(err, "audit record: \"%s\" is not an array", k);
    const char **arr = tg_arena_calloc(a, json_array_size(v) + 1, sizeof *arr);
    size_t i;
    json_t *m;
    json_array_foreach(v, i, m) {
        if (!json_is_string(m))
            return tg_error_set(err, "audit record: \"%s\" holds a non-string", k);
        arr[i] = json_string_value(m);
    }
    *out = arr;
    *n = json_array_size(v);
    return 0;
}

static int get_int(const json_t *o, const char *k, int64_t *out, int nullable, tg_error *err)
{
    json_t *v = json_object_get(o, k);
    if (nullable && json_is_null(v)) {
        *out = TG_AUDIT_NO_LATENCY;
        return 0;
    }
    if (!json_is_integer(v)) return tg_error_set(err, "audit record: \"%s\" is not an integer", k);
    *out = json_integer_value(v);
    return 0;
}

static int get_enum(const json_t *o, const char *k, const char *const *names, size_t n,
                    int *out, tg_error *err)
{
    int i = name_index(names, n, json_object_get(o, k));
    if (i < 0) return tg_error_set(err, "audit record: unknown \"%s\" value", k);
    *out = i;
    return 0;
}

int tg_audit_record_parse(const char *body, size_t len, tg_arena *a, tg_audit_record *r,
                          json_t **holder, tg_error *err)
{
    memset(r, 0, sizeof *r);
    *holder = NULL;
    json_t *o = tg_json_parse(body, len, TG_JSON_MAX_DEPTH, err);
    if (!o) return -1;
    if (!json_is_object(o)) {
        json_decref(o);
        return tg_error_set(err, "audit record: not a JSON object");
    }
    *holder = o;
    int ev, dec, mode, outc;
    json_t *v = json_object_get(o, "v");
    if (!json_is_integer(v) || json_integer_value(v) != 1)
        return tg_error_set(err, "audit record: unsupported version");
    if (get_enum(o, "event", event_names, COUNT(event_names), &ev, err) ||
        get_enum(o, "decision", decision_names, COUNT(decision_names), &dec, err) ||
        get_enum(o, "mode", mode_names, COUNT(mode_names), &mode, err) ||
        get_enum(o, "outcome", outcome_names, COUNT(outcome_names), &outc, err) ||
        get_int(o, "time_ms", &r->time_ms, 0, err) ||
        get_str(o, "instance", &r->instance, err) ||
        get_str(o, "session", &r->session_id, err) ||
        get_str(o, "traceparent", &r->traceparent, err) ||
        get_str(o, "delegator", &r->delegator, err) ||
        get_str(o, "agent", &r->agent, err) ||
        get_strv(o, "act", a, &r->act_chain, &r->n_act_chain, err) ||
        get_str(o, "auth_method", &r->auth_method, err) ||
        get_str(o, "credential_id", &r->credential_id, err) ||
        get_str(o, "client_ip", &r->client_ip, err) ||
        get_str(o, "upstream", &r->upstream, err) ||
        get_str(o, "method", &r->method, err) ||
        get_str(o, "tool", &r->tool, err) ||
        get_str(o, "args_sha256", &r->args_sha256, err) ||
        get_str(o, "intent", &r->intent, err) ||
        get_str(o, "workflow", &r->workflow, err) ||
        get_str(o, "ticket", &r->ticket, err) ||
        get_strv(o, "reasons", a, &r->reasons, &r->n_reasons, err) ||
        get_strv(o, "policies", a, &r->policies, &r->n_policies, err) ||
        get_str(o, "policy_version", &r->policy_version, err) ||
        get_str(o, "approval_id", &r->approval_id, err) ||
        get_str(o, "approver", &r->approver, err) ||
        get_int(o, "upstream_latency_us", &r->upstream_latency_us, 1, err) ||
        get_int(o, "total_latency_us", &r->total_latency_us, 1, err) ||
        get_str(o, "detail", &r->detail, err))
        return -1;
    r->event = (tg_audit_event)ev;
    r->decision = (tg_audit_decision)dec;
    r->mode = (tg_audit_policy_mode)mode;
    r->outcome = (tg_audit_outcome)outc;
    json_t *id = json_object_get(o, "rpc_id");
    if (id && !json_is_null(id)) {
        char *t = json_dumps(id, JSON_COMPACT | JSON_ENCODE_ANY);
        r->rpc_id = tg_arena_strdup(a, t);
        free(t);
    }
    json_t *res = json_object_get(o, "resource");
    if (json_is_object(res)) {
        if (get_str(res, "type", &r->resource_type, err) || get_str(res, "id", &r->resource_id, err) ||
            get_strv(res, "parents", a, &r->resource_parents, &r->n_resource_parents, err))
            return -1;
    } else if (!json_is_null(res)) {
        return tg_error_set(err, "audit record: \"resource\" is neither an object nor null");
    }
    json_t *args = json_object_get(o, "args");
    r->args = json_is_null(args) ? NULL : args;
    return 0;
}

/* ------------------------------------------------------------------ chain, columns */

void tg_audit_chain_hash(const char *prev_hash, int64_t seq, const char *body, size_t len,
                         char out[65])
{
    /* The prefix and the body are hashed without being copied together; the prefix is
     * built without printf (once per record on the loop thread). verify hashes stored
     * rows, whose prev_hash can be any length: then it goes to a buffer of its own. */
    char small[128];
    tg_buf big = TG_BUF_INIT;
    size_t plen = strlen(prev_hash);
    char *p = small;
    if (plen + 23 > sizeof small) {
        tg_buf_reserve(&big, plen + 23);
        p = big.data;
    }
    memcpy(p, prev_hash, plen);
    size_t n = plen;
    p[n++] = '\n';
    n += tg_i64_dec(seq, p + n);
    p[n++] = '\n';
    tg_sha256_hex2(p, n, body, len, out);
    tg_buf_free(&big);
}

char *tg_audit_resource_uid(tg_arena *a, const char *type, const char *id)
{
    if (!type && !id) return NULL;
    char mem[512];
    tg_buf b;
    tg_buf_use(&b, mem, sizeof mem);
    tg_buf_appends(&b, type ? type : "");
    tg_buf_append(&b, "::", 2);
    tg_buf_json_string(&b, id ? id : "", id ? strlen(id) : 0);
    char *s = tg_arena_strndup(a, b.data, b.len);
    tg_buf_free(&b);
    return s;
}

static char *joined(tg_arena *a, const char *first, const char *const *v, size_t n)
{
    if (!first && n == 0) return NULL;
    char mem[1024];
    tg_buf b;
    tg_buf_use(&b, mem, sizeof mem);
    tg_buf_append(&b, "\n", 1);
    for (size_t i = first ? 0 : 1; i <= n; i++) {
        tg_buf_appends(&b, i ? v[i - 1] : first);
        tg_buf_append(&b, "\n", 1);
    }
    char *s = tg_arena_strndup(a, b.data, b.len);
    tg_buf_free(&b);
    return s;
}

void audit_row_columns(const tg_audit_record *r, tg_arena *a, tg_store_audit_row *row)
{
    row->ts_ms = r->time_ms;
    row->delegator = r->delegator;
    row->agent = r->agent;
    row->tool = r->tool;
    row->decision = tg_audit_decision_name(r->decision);
    row->ticket = r->ticket;
    row->approval_id = r->approval_id;
    row->resource = tg_audit_resource_uid(a, r->resource_type, r->resource_id);
    row->resource_path = joined(a, row->resource, r->resource_parents, r->n_resource_parents);
    row->reasons = joined(a, NULL, r->reasons, r->n_reasons);
}

void audit_jsonl_line(const tg_store_audit_row *row, tg_buf *out)
{
    tg_buf_appends(out, "{\"instance\":");
    tg_buf_json_string(out, row->instance, strlen(row->instance));
    tg_buf_printf(out, ",\"seq\":%" PRId64 ",\"prev_hash\":\"%s\",\"hash\":\"%s\",\"record\":",
                  row->seq, row->prev_hash, row->hash);
    tg_buf_appends(out, row->body);
    tg_buf_appends(out, "}\n");
}
