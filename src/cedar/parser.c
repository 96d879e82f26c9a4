/*
 * parser.c — Cedar policy text → AST: lexer, string unescaping and a recursive-descent
 * parser for the grammar of docs/cedar.md (the Cedar reference grammar).
 *
 * How it fits: cedar_policy_set_parse() produces a cedar_policy_set whose arena owns every
 * node, string and literal value; the evaluator (eval.c) walks those nodes and the index
 * (authorize.c) reads the scopes. Errors stop at the first problem and say
 * "LINE:COL: expected X, found Y" so a policy author can act on them.
 *
 * Rules that are easy to get wrong and follow Cedar exactly:
 *   - `-` directly applied to an integer literal folds into a negative literal, which is
 *     how -9223372036854775808 is expressible; other integer literals above i64 max fail.
 *   - `!`/`-` stack up to 4 of the same operator; mixing or a fifth one is an error.
 *   - Relational operators do not chain (`a < b < c` needs parentheses).
 *   - `e has a.b` means `e has a && e.a has b`: one N_HAS node keeps the path (the EST
 *     shows it) and the evaluator walks it; `is T in E` keeps its `in` for the EST.
 *   - Reserved words cannot name variables, types, functions, attributes after `.` or
 *     `has`, or record keys (the quoted forms `["in"]`, `has "in"`, `{"in": 1}` can).
 *   - An action scope's entities have type `Action` or `Ns::Action`.
 */
#include "cedar/cedar_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parser recursion (parentheses, brackets, calls) is bounded separately from the AST
 * depth, because `((((x))))` nests the parser without growing the tree. */
#define PARSE_MAX_NESTING 128

typedef enum { T_EOF, T_IDENT, T_INT, T_STR, T_SLOT, T_PUNCT } tok_kind;

typedef struct tok {
    int         kind;     /* tok_kind */
    const char *p;        /* token text (for T_STR: including the quotes) */
    uint32_t    n;
    uint32_t    line, col;
    uint64_t    num;      /* T_INT */
    bool        num_big;  /* T_INT above u64 */
} tok;

typedef struct parser {
    const char *src, *cur, *end;
    uint32_t    line, col;   /* position of cur */
    tok         t;           /* current token */
    tg_arena   *a;
    tg_error   *err;
    int         nesting;
} parser;

static const char *const reserved[] = {
    "true", "false", "if", "then", "else", "in", "like", "has", "is", "__cedar", NULL
};

static bool tok_is(const tok *t, const char *s)
{
    size_t n = strlen(s);
    return (t->kind == T_PUNCT || t->kind == T_IDENT) && t->n == n && memcmp(t->p, s, n) == 0;
}

static cstr tok_str(const tok *t)
{
    return (cstr){t->p, t->n};
}

static bool is_reserved(cstr s)
{
    for (int i = 0; reserved[i]; i++)
        if (strlen(reserved[i]) == s.n && memcmp(reserved[i], s.p, s.n) == 0) return true;
    return false;
}

static int fail_at(parser *p, uint32_t line, uint32_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* An identifier used as an attribute name or record key: reserved words are refused. */
static int check_attr_ident(parser *p, const tok *t)
{
    if (t->kind == T_IDENT && is_reserved(tok_str(t)))
        return fail_at(p, t->line, t->col, "`%.*s` is a reserved word and cannot name an attribute "
                       "(quote it: \"%.*s\")", (int)t->n, t->p, (int)t->n, t->p);
    return 0;
}

/* Describes a token for "found ..." in error messages. */
static void describe_tok(const tok *t, char *out, size_t cap)
{
    switch (t->kind) {
    case T_EOF: snprintf(out, cap, "end of input"); break;
    case T_STR: snprintf(out, cap, "string literal"); break;
    case T_INT: snprintf(out, cap, "number `%.*s`", (int)(t->n > 40 ? 40 : t->n), t->p); break;
    default:    snprintf(out, cap, "`%.*s`", (int)(t->n > 40 ? 40 : t->n), t->p); break;
    }
}

static int fail_at(parser *p, uint32_t line, uint32_t col, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tg_error_set(p->err, "%u:%u: %s", line, col, msg);
}

/* "expected X, found <current token>" at the current token. */
static int expected(parser *p, const char *what)
{
    char found[96];
    describe_tok(&p->t, found, sizeof found);
    return fail_at(p, p->t.line, p->t.col, "expected %s, found %s", what, found);
}

/* ---------------------------------------------------------------- lexer */

static void advance_byte(parser *p)
{
    unsigned char c = (unsigned char)*p->cur++;
    if (c == '\n') {
        p->line++;
        p->col = 1;
    } else if ((c & 0xC0) != 0x80) {
        p->col++;   /* columns count characters, not UTF-8 continuation bytes */
    }
}

static bool is_ident_start(char c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_ident_char(char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

/* Reads the next token into p->t. Returns -1 on a lexical error. */
static int next(parser *p)
{
    for (;;) {
        while (p->cur < p->end && (*p->cur == ' ' || *p->cur == '\t' || *p->cur == '\n' ||
                                   *p->cur == '\r' || *p->cur == '\f' || *p->cur == '\v'))
            advance_byte(p);
        if (p->cur + 1 < p->end && p->cur[0] == '/' && p->cur[1] == '/') {
            while (p->cur < p->end && *p->cur != '\n') advance_byte(p);
            continue;
        }
        break;
    }
    tok *t = &p->t;
    t->p = p->cur;
    t->line = p->line;
    t->col = p->col;
    t->num_big = false;
    if (p->cur >= p->end) {
        t->kind = T_EOF;
        t->n = 0;
        return 0;
    }
    char c = *p->cur;
    if (is_ident_start(c)) {
        while (p->cur < p->end && is_ident_char(*p->cur)) advance_byte(p);
        t->kind = T_IDENT;
    } else if (c >= '0' && c <= '9') {
        uint64_t v = 0;
        while (p->cur < p->end && *p->cur >= '0' && *p->cur <= '9') {
            unsigned d = (unsigned)(*p->cur - '0');
            if (v > (UINT64_MAX - d) / 10) t->num_big = true;
            else v = v * 10 + d;
            advance_byte(p);
        }
        t->kind = T_INT;
        t->num = v;
    } else if (c == '"') {
        advance_byte(p);
        for (;;) {
            if (p->cur >= p->end)
                return fail_at(p, t->line, t->col, "unterminated string literal");
            if (*p->cur == '\\') {
                advance_byte(p);
                if (p->cur >= p->end)
                    return fail_at(p, t->line, t->col, "unterminated string literal");
                advance_byte(p);
                continue;
            }
            if (*p->cur == '"') break;
            advance_byte(p);
        }
        advance_byte(p);
        t->kind = T_STR;
    } else if (c == '?' && p->cur + 1 < p->end && is_ident_start(p->cur[1])) {
        advance_byte(p);
        while (p->cur < p->end && is_ident_char(*p->cur)) advance_byte(p);
        t->kind = T_SLOT;
    } else {
        static const char *const two[] = {"::", "==", "!=", "<=", ">=", "&&", "||", NULL};
        t->kind = T_PUNCT;
        for (int i = 0; two[i]; i++) {
            if (p->cur + 1 < p->end && p->cur[0] == two[i][0] && p->cur[1] == two[i][1]) {
                advance_byte(p);
                advance_byte(p);
                t->n = 2;
                return 0;
            }
        }
        if (!strchr("@.,;:(){}[]<>+-*/%!=", c) || c == '\0') {
            return fail_at(p, t->line, t->col, "unexpected character `%.*s`",
                           (unsigned char)c < 0x80 ? 1 : 0, p->cur);
        }
        advance_byte(p);
    }
    t->n = (uint32_t)(p->cur - t->p);
    return 0;
}

/* Validates that text is UTF-8 (Cedar source is a Rust &str); reports the position of
 * the first bad byte. */
static int check_utf8(parser *p)
{
    uint32_t line = 1, col = 1;
    const unsigned char *s = (const unsigned char *)p->src, *e = (const unsigned char *)p->end;
    while (s < e) {
        unsigned c = *s;
        int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                : (c & 0xF8) == 0xF0 ? 4 : 0;
        uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
        bool ok = len > 0 && e - s >= len;
        for (int i = 1; ok && i < len; i++) {
            if ((s[i] & 0xC0) != 0x80) ok = false;
            else cp = (cp << 6) | (s[i] & 0x3F);
        }
        if (ok && ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
                   (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
                   (cp >= 0xD800 && cp <= 0xDFFF)))
            ok = false;
        if (!ok) return fail_at(p, line, col, "invalid UTF-8 in policy text");
        if (c == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
        s += len;
    }
    return 0;
}

/* ---------------------------------------------------------------- strings */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Unescapes the string token t with Rust's rules (\n \r \t \\ \0 \' \", \xHH up to 7F,
 * \u{1-6 hex digits, '_' allowed after the first} naming a scalar value). When pat is
 * non-NULL the text is a `like` pattern: an unescaped '*' splits chunks and `\*` is a
 * literal star. */
static int unescape(parser *p, const tok *t, cstr *out, like_pat *pat)
{
    tg_buf b = TG_BUF_INIT;
    uint32_t nchunks = 0, chunk_cap = 0;
    cstr *chunks = NULL;
    const char *s = t->p + 1, *e = t->p + t->n - 1;
    uint32_t col = t->col + 1;
    int rc = 0;
    tg_buf_append(&b, "", 0);
    while (s < e) {
        uint32_t ecol = col;
        if (*s == '*' && pat) {
            if (nchunks == chunk_cap) {
                chunk_cap = chunk_cap ? chunk_cap * 2 : 4;
                cstr *nc = tg_arena_alloc(p->a, chunk_cap * sizeof *nc);
                if (nchunks) memcpy(nc, chunks, nchunks * sizeof *nc);
                chunks = nc;
            }
            chunks[nchunks].p = tg_arena_strndup(p->a, b.data ? b.data : "", b.len);
            chunks[nchunks].n = (uint32_t)b.len;
            nchunks++;
            tg_buf_reset(&b);
            s++;
            col++;
            continue;
        }
        if (*s != '\\') {
            if (((unsigned char)*s & 0xC0) != 0x80) col++;
            tg_buf_append(&b, s, 1);
            s++;
            continue;
        }
        s++;
        col++;
        char c = s < e ? *s : '\0';
        s++;
        col++;
        switch (c) {
        case 'n': tg_buf_append(&b, "\n", 1); break;
        case 'r': tg_buf_append(&b, "\r", 1); break;
        case 't': tg_buf_append(&b, "\t", 1); break;
        case '\\': tg_buf_append(&b, "\\", 1); break;
        case '0': tg_buf_append(&b, "\0", 1); break;
        case '\'': tg_buf_append(&b, "'", 1); break;
        case '"': tg_buf_append(&b, "\"", 1); break;
        case '*':
            if (!pat) {
                rc = fail_at(p, t->line, ecol, "invalid escape `\\*` (only allowed in `like` patterns)");
                goto out;
            }
            tg_buf_append(&b, "*", 1);
            break;
        case 'x': {
            int h1 = s < e ? hexval(s[0]) : -1, h2 = s + 1 < e ? hexval(s[1]) : -1;
            if (h1 < 0 || h2 < 0) {
                rc = fail_at(p, t->line, ecol, "invalid escape: `\\x` needs two hex digits");
                goto out;
            }
            if (h1 > 7) {
                rc = fail_at(p, t->line, ecol, "invalid escape: `\\x%c%c` is above \\x7F (use \\u{...})",
                             s[0], s[1]);
                goto out;
            }
            char v = (char)(h1 * 16 + h2);
            tg_buf_append(&b, &v, 1);
            s += 2;
            col += 2;
            break;
        }
        case 'u': {
            if (s >= e || *s != '{') {
                rc = fail_at(p, t->line, ecol, "invalid escape: expected `{` after `\\u`");
                goto out;
            }
            s++;
            col++;
            uint32_t cp = 0;
            int digits = 0;
            while (s < e && *s != '}') {
                if (*s == '_' && digits > 0) {
                    s++;
                    col++;
                    continue;
                }
                int h = hexval(*s);
                if (h < 0 || ++digits > 6) {
                    rc = fail_at(p, t->line, ecol, "invalid escape: `\\u{...}` takes 1 to 6 hex digits");
                    goto out;
                }
                cp = cp * 16 + (uint32_t)h;
                s++;
                col++;
            }
            if (s >= e || digits == 0) {
                rc = fail_at(p, t->line, ecol, "invalid escape: `\\u{...}` takes 1 to 6 hex digits");
                goto out;
            }
            s++;
            col++;
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
                rc = fail_at(p, t->line, ecol, "invalid escape: \\u{%X} is not a Unicode scalar value", cp);
                goto out;
            }
            cedar_utf8_put(&b, cp);
            break;
        }
        default:
            rc = fail_at(p, t->line, ecol, "invalid escape `\\%c`", (unsigned char)c < 0x80 && c ? c : '?');
            goto out;
        }
    }
    if (pat) {
        cstr *nc = tg_arena_alloc(p->a, (nchunks + 1) * sizeof *nc);
        if (nchunks) memcpy(nc, chunks, nchunks * sizeof *nc);
        nc[nchunks].p = tg_arena_strndup(p->a, b.data ? b.data : "", b.len);
        nc[nchunks].n = (uint32_t)b.len;
        pat->chunks = nc;
        pat->nchunks = nchunks + 1;
    } else {
        out->p = tg_arena_strndup(p->a, b.data ? b.data : "", b.len);
        out->n = (uint32_t)b.len;
    }
out:
    tg_buf_free(&b);
    return rc;
}

/* ---------------------------------------------------------------- AST helpers */

static const fn_info *fn_lookup(cstr name, bool method, int *id)
{
    for (int i = 0; i < FN_COUNT; i++) {
        if (cedar_fns[i].method == method && strlen(cedar_fns[i].name) == name.n &&
            memcmp(cedar_fns[i].name, name.p, name.n) == 0) {
            *id = i;
            return &cedar_fns[i];
        }
    }
    return NULL;
}

static cedar_node *mk(parser *p, int kind, uint32_t line, uint32_t col)
{
    cedar_node *n = tg_arena_calloc(p->a, 1, sizeof *n);
    n->kind = (uint8_t)kind;
    n->line = line;
    n->col = col;
    return n;
}

static cedar_node *mk2(parser *p, int kind, cedar_node *l, cedar_node *r, uint32_t line,
                       uint32_t col)
{
    cedar_node *n = mk(p, kind, line, col);
    n->a = l;
    n->b = r;
    return n;
}

static cstr arena_cstr(parser *p, const char *s, size_t n)
{
    return (cstr){tg_arena_strndup(p->a, s, n), (uint32_t)n};
}

/* ---------------------------------------------------------------- expressions */

static cedar_node *parse_expr(parser *p);
static cedar_node *parse_add(parser *p);

/* Parses `Ident {'::' Ident}` starting at the current identifier; stops before a `::`
 * that is followed by a string (an entity reference), which the caller handles. The path
 * text "A::B" is returned in *name (arena), and *ncomp is the number of components. */
static int parse_path(parser *p, tg_buf *name, int *ncomp, bool *then_str)
{
    *ncomp = 0;
    *then_str = false;
    tg_buf_reset(name);
    for (;;) {
        if (p->t.kind != T_IDENT) return expected(p, "identifier");
        if (*ncomp) tg_buf_appends(name, "::");
        tg_buf_append(name, p->t.p, p->t.n);
        (*ncomp)++;
        uint32_t line = p->t.line, col = p->t.col;
        cstr comp = tok_str(&p->t);
        if (next(p)) return -1;
        bool more = tok_is(&p->t, "::");
        if (more || *ncomp > 1) {
            /* Components of a type or function path cannot be reserved words. */
            if (is_reserved(comp))
                return fail_at(p, line, col, "`%.*s` is a reserved word and cannot name a type",
                               (int)comp.n, comp.p);
        }
        if (!more) return 0;
        if (next(p)) return -1;
        if (p->t.kind == T_STR) {
            *then_str = true;
            return 0;
        }
    }
}

static cedar_node *parse_args(parser *p, uint32_t *nargs, const char *close)
{
    cedar_node **args = NULL;
    uint32_t n = 0, cap = 0;
    while (!tok_is(&p->t, close)) {
        cedar_node *e = parse_expr(p);
        if (!e) return NULL;
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            cedar_node **na = tg_arena_alloc(p->a, cap * sizeof *na);
            if (n) memcpy(na, args, n * sizeof *na);
            args = na;
        }
        args[n++] = e;
        if (tok_is(&p->t, ",")) {
            if (next(p)) return NULL;
            continue;
        }
        if (!tok_is(&p->t, close)) {
            char what[32];
            snprintf(what, sizeof what, "`,` or `%s`", close);
            expected(p, what);
            return NULL;
        }
    }
    if (next(p)) return NULL;
    *nargs = n;
    /* The container node is created by the caller; hand the array back through a dummy. */
    cedar_node *holder = mk(p, N_SET, 0, 0);
    holder->args = args;
    holder->nargs = n;
    return holder;
}

static cedar_node *parse_record(parser *p, uint32_t line, uint32_t col)
{
    cedar_node *n = mk(p, N_RECORD, line, col);
    uint32_t cap = 0;
    while (!tok_is(&p->t, "}")) {
        cstr key;
        if (p->t.kind == T_STR) {
            if (unescape(p, &p->t, &key, NULL)) return NULL;
        } else if (p->t.kind == T_IDENT) {
            if (check_attr_ident(p, &p->t)) return NULL;
            key = arena_cstr(p, p->t.p, p->t.n);
        } else {
            expected(p, "record key (identifier or string)");
            return NULL;
        }
        uint32_t kline = p->t.line, kcol = p->t.col;
        for (uint32_t i = 0; i < n->nargs; i++) {
            if (cstr_eq(n->keys[i], key)) {
                fail_at(p, kline, kcol, "duplicate key `%.*s` in record literal", (int)key.n, key.p);
                return NULL;
            }
        }
        if (next(p)) return NULL;
        if (!tok_is(&p->t, ":")) {
            expected(p, "`:`");
            return NULL;
        }
        if (next(p)) return NULL;
        cedar_node *v = parse_expr(p);
        if (!v) return NULL;
        if (n->nargs == cap) {
            cap = cap ? cap * 2 : 4;
            cedar_node **na = tg_arena_alloc(p->a, cap * sizeof *na);
            cstr *nk = tg_arena_alloc(p->a, cap * sizeof *nk);
            if (n->nargs) {
                memcpy(na, n->args, n->nargs * sizeof *na);
                memcpy(nk, n->keys, n->nargs * sizeof *nk);
            }
            n->args = na;
            n->keys = nk;
        }
        n->keys[n->nargs] = key;
        n->args[n->nargs++] = v;
        if (tok_is(&p->t, ",")) {
            if (next(p)) return NULL;
            continue;
        }
        if (!tok_is(&p->t, "}")) {
            expected(p, "`,` or `}`");
            return NULL;
        }
    }
    if (next(p)) return NULL;
    return n;
}

static cedar_node *parse_primary(parser *p)
{
    tok t = p->t;
    if (t.kind == T_INT) {
        if (t.num_big || t.num > (uint64_t)INT64_MAX) {
            fail_at(p, t.line, t.col, "integer literal `%.*s` is too large (max 9223372036854775807)",
                    (int)t.n, t.p);
            return NULL;
        }
        cedar_node *n = mk(p, N_VALUE, t.line, t.col);
        n->val.kind = CV_LONG;
        n->val.u.l = (int64_t)t.num;
        return next(p) ? NULL : n;
    }
    if (t.kind == T_STR) {
        cedar_node *n = mk(p, N_VALUE, t.line, t.col);
        n->val.kind = CV_STRING;
        if (unescape(p, &t, &n->val.u.s, NULL)) return NULL;
        return next(p) ? NULL : n;
    }
    if (t.kind == T_SLOT) {
        cedar_node *n = mk(p, N_SLOT, t.line, t.col);
        if (t.n == 10 && memcmp(t.p, "?principal", 10) == 0) n->var = VAR_PRINCIPAL;
        else if (t.n == 9 && memcmp(t.p, "?resource", 9) == 0) n->var = VAR_RESOURCE;
        else {
            fail_at(p, t.line, t.col, "unknown template slot `%.*s` (expected ?principal or ?resource)",
                    (int)t.n, t.p);
            return NULL;
        }
        return next(p) ? NULL : n;
    }
    if (tok_is(&t, "(") || tok_is(&t, "[") || tok_is(&t, "{")) {
        if (++p->nesting > PARSE_MAX_NESTING) {
            fail_at(p, t.line, t.col, "expression nests deeper than %d levels", PARSE_MAX_NESTING);
            return NULL;
        }
        if (next(p)) return NULL;
        cedar_node *n;
        if (tok_is(&t, "(")) {
            n = parse_expr(p);
            if (!n) return NULL;
            if (!tok_is(&p->t, ")")) {
                expected(p, "`)`");
                return NULL;
            }
            if (next(p)) return NULL;
        } else if (tok_is(&t, "[")) {
            uint32_t nargs;
            n = parse_args(p, &nargs, "]");
            if (!n) return NULL;
            n->line = t.line;
            n->col = t.col;
        } else {
            n = parse_record(p, t.line, t.col);
            if (!n) return NULL;
        }
        p->nesting--;
        return n;
    }
    if (t.kind == T_IDENT) {
        if (tok_is(&t, "true") || tok_is(&t, "false")) {
            cedar_node *n = mk(p, N_VALUE, t.line, t.col);
            n->val.kind = CV_BOOL;
            n->val.u.b = tok_is(&t, "true");
            return next(p) ? NULL : n;
        }
        tg_buf name = TG_BUF_INIT;
        int ncomp;
        bool then_str;
        cedar_node *n = NULL;
        if (parse_path(p, &name, &ncomp, &then_str)) goto done;
        if (then_str) {
            n = mk(p, N_VALUE, t.line, t.col);
            cstr id;
            if (unescape(p, &p->t, &id, NULL)) {
                n = NULL;
                goto done;
            }
            n->val.kind = CV_ENTITY;
            n->val.u.uid = cedar_uid_new(p->a, (cstr){name.data, (uint32_t)name.len}, id);
            if (next(p)) n = NULL;
            goto done;
        }
        cstr nm = {name.data, (uint32_t)name.len};
        if (tok_is(&p->t, "(")) {
            int id;
            if (!fn_lookup(nm, false, &id)) {
                fail_at(p, t.line, t.col, "`%.*s` is not a function (known: ip, decimal, datetime, duration)",
                        (int)nm.n, nm.p);
                goto done;
            }
            if (++p->nesting > PARSE_MAX_NESTING) {
                fail_at(p, t.line, t.col, "expression nests deeper than %d levels", PARSE_MAX_NESTING);
                goto done;
            }
            if (next(p)) goto done;
            uint32_t nargs;
            cedar_node *h = parse_args(p, &nargs, ")");
            if (!h) goto done;
            p->nesting--;
            n = h;
            n->kind = N_CALL;
            n->fn = (uint16_t)id;
            n->line = t.line;
            n->col = t.col;
            goto done;
        }
        static const char *const vars[] = {"principal", "action", "resource", "context"};
        for (int i = 0; ncomp == 1 && i < 4; i++) {
            if (strlen(vars[i]) == nm.n && memcmp(vars[i], nm.p, nm.n) == 0) {
                n = mk(p, N_VAR, t.line, t.col);
                n->var = (uint8_t)i;
                goto done;
            }
        }
        if (ncomp == 1 && tok_is(&t, "if"))
            fail_at(p, t.line, t.col, "`if` expression must be parenthesised here");
        else
            fail_at(p, t.line, t.col,
                    "unknown name `%.*s` (expected principal, action, resource, context, "
                    "a literal, or Type::\"id\")", (int)(nm.n > 60 ? 60 : nm.n), nm.p);
    done:
        tg_buf_free(&name);
        return n;
    }
    expected(p, "expression");
    return NULL;
}

/* Member accesses after primary n: `.attr`, `.method(args)`, `["attr"]`. */
static cedar_node *parse_member_tail(parser *p, cedar_node *n)
{
    while (n) {
        tok t = p->t;
        if (tok_is(&t, ".")) {
            if (next(p)) return NULL;
            if (p->t.kind != T_IDENT) {
                expected(p, "attribute or method name after `.`");
                return NULL;
            }
            tok nm = p->t;
            if (next(p)) return NULL;
            if (!tok_is(&p->t, "(") && check_attr_ident(p, &nm)) return NULL;
            if (tok_is(&p->t, "(")) {
                int id;
                const fn_info *fi = fn_lookup(tok_str(&nm), true, &id);
                if (!fi) {
                    fail_at(p, nm.line, nm.col, "`%.*s` is not a method", (int)nm.n, nm.p);
                    return NULL;
                }
                if (++p->nesting > PARSE_MAX_NESTING) {
                    fail_at(p, t.line, t.col, "expression nests deeper than %d levels", PARSE_MAX_NESTING);
                    return NULL;
                }
                if (next(p)) return NULL;
                uint32_t nargs;
                cedar_node *h = parse_args(p, &nargs, ")");
                if (!h) return NULL;
                p->nesting--;
                /* Core methods have fixed arity checked here, as Cedar does at parse
                 * time; extension methods report wrong arity when evaluated. */
                if (id < FN_FIRST_EXT && (int)nargs + 1 != fi->nargs) {
                    fail_at(p, nm.line, nm.col, "`%s` takes %d argument%s, found %u", fi->name,
                            fi->nargs - 1, fi->nargs == 2 ? "" : "s", nargs);
                    return NULL;
                }
                cedar_node *m = mk(p, N_METHOD, nm.line, nm.col);
                m->fn = (uint16_t)id;
                m->nargs = nargs + 1;
                m->args = tg_arena_alloc(p->a, (nargs + 1) * sizeof *m->args);
                m->args[0] = n;
                if (nargs) memcpy(m->args + 1, h->args, nargs * sizeof *m->args);
                n = m;
            } else {
                cedar_node *g = mk(p, N_GETATTR, nm.line, nm.col);
                g->a = n;
                g->str = arena_cstr(p, nm.p, nm.n);
                n = g;
            }
        } else if (tok_is(&t, "[")) {
            if (next(p)) return NULL;
            if (p->t.kind != T_STR) {
                expected(p, "string literal inside `[...]`");
                return NULL;
            }
            cedar_node *g = mk(p, N_GETATTR, t.line, t.col);
            g->a = n;
            if (unescape(p, &p->t, &g->str, NULL) || next(p)) return NULL;
            if (!tok_is(&p->t, "]")) {
                expected(p, "`]`");
                return NULL;
            }
            if (next(p)) return NULL;
            n = g;
        } else if (tok_is(&t, "(")) {
            fail_at(p, t.line, t.col, "only extension functions and methods can be called");
            return NULL;
        } else {
            break;
        }
    }
    return n;
}

static cedar_node *parse_member(parser *p)
{
    return parse_member_tail(p, parse_primary(p));
}

static cedar_node *parse_unary(parser *p)
{
    tok first = p->t;
    int count = 0;
    bool bang = tok_is(&first, "!");
    if (bang || tok_is(&first, "-")) {
        while (tok_is(&p->t, bang ? "!" : "-")) {
            count++;
            if (next(p)) return NULL;
        }
        if (tok_is(&p->t, bang ? "-" : "!")) {
            fail_at(p, p->t.line, p->t.col, "cannot mix `!` and `-` without parentheses");
            return NULL;
        }
        if (count > 4) {
            fail_at(p, first.line, first.col, "too many `%c` in a row (at most 4)", bang ? '!' : '-');
            return NULL;
        }
    }
    tok item = p->t;
    cedar_node *n;
    /* `-` on a bare integer literal is a negative literal: the only way to write i64 min. */
    if (!bang && count > 0 && item.kind == T_INT) {
        if (next(p)) return NULL;
        bool access = tok_is(&p->t, ".") || tok_is(&p->t, "[") || tok_is(&p->t, "(");
        if (!access) {
            if (item.num_big || item.num > (uint64_t)INT64_MAX + 1) {
                fail_at(p, item.line, item.col, "integer literal `-%.*s` is too small (min -9223372036854775808)",
                        (int)item.n, item.p);
                return NULL;
            }
            n = mk(p, N_VALUE, first.line, first.col);
            n->val.kind = CV_LONG;
            n->val.u.l = item.num == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)item.num;
            count--;
        } else {
            if (item.num_big || item.num > (uint64_t)INT64_MAX) {
                fail_at(p, item.line, item.col, "integer literal `%.*s` is too large (max 9223372036854775807)",
                        (int)item.n, item.p);
                return NULL;
            }
            cedar_node *lit = mk(p, N_VALUE, item.line, item.col);
            lit->val.kind = CV_LONG;
            lit->val.u.l = (int64_t)item.num;
            n = parse_member_tail(p, lit);
            if (!n) return NULL;
        }
    } else {
        n = parse_member(p);
        if (!n) return NULL;
    }
    while (count-- > 0) n = mk2(p, bang ? N_NOT : N_NEG, n, NULL, first.line, first.col);
    return n;
}

static cedar_node *parse_mult(parser *p)
{
    cedar_node *l = parse_unary(p);
    while (l) {
        tok t = p->t;
        if (tok_is(&t, "/") || tok_is(&t, "%")) {
            fail_at(p, t.line, t.col, "`%.*s` is not a Cedar operator (only + - * on Long)", (int)t.n, t.p);
            return NULL;
        }
        if (!tok_is(&t, "*")) break;
        if (next(p)) return NULL;
        cedar_node *r = parse_unary(p);
        if (!r) return NULL;
        l = mk2(p, N_MUL, l, r, t.line, t.col);
    }
    return l;
}

static cedar_node *parse_add(parser *p)
{
    cedar_node *l = parse_mult(p);
    while (l) {
        tok t = p->t;
        int kind = tok_is(&t, "+") ? N_ADD : tok_is(&t, "-") ? N_SUB : -1;
        if (kind < 0) break;
        if (next(p)) return NULL;
        cedar_node *r = parse_mult(p);
        if (!r) return NULL;
        l = mk2(p, kind, l, r, t.line, t.col);
    }
    return l;
}

static int relop_kind(const tok *t)
{
    if (tok_is(t, "==")) return N_EQ;
    if (tok_is(t, "!=")) return N_NE;
    if (tok_is(t, "<")) return N_LT;
    if (tok_is(t, "<=")) return N_LE;
    if (tok_is(t, ">")) return N_GT;
    if (tok_is(t, ">=")) return N_GE;
    if (t->kind == T_IDENT && tok_is(t, "in")) return N_IN;
    return -1;
}

/* `e has a.b.c`: one N_HAS node with the path [a, b, c] (a string literal is a path of
 * one). It means `e has a && e.a has b && e.a.b has c` (Cedar's desugaring), which the
 * evaluator follows; the EST shows the path as the reference does. */
static cedar_node *parse_has(parser *p, cedar_node *target, const tok *op)
{
    cedar_node *h = mk(p, N_HAS, op->line, op->col);
    h->a = target;
    uint32_t cap = 0;
    for (;;) {
        cstr attr;
        tok t = p->t;
        if (t.kind == T_STR && h->npath == 0) {
            if (unescape(p, &t, &attr, NULL)) return NULL;
        } else if (t.kind == T_IDENT) {
            if (check_attr_ident(p, &t)) return NULL;
            attr = arena_cstr(p, t.p, t.n);
        } else {
            expected(p, h->npath ? "attribute name after `.`"
                                 : "attribute name (identifier or string) after `has`");
            return NULL;
        }
        if (h->npath == cap) {
            cap = cap ? cap * 2 : 2;
            cstr *np = tg_arena_alloc(p->a, cap * sizeof *np);
            if (h->npath) memcpy(np, h->keys, h->npath * sizeof *np);
            h->keys = np;
        }
        h->keys[h->npath++] = attr;
        if (next(p)) return NULL;
        if (!tok_is(&p->t, ".") || t.kind == T_STR) break;
        if (next(p)) return NULL;
    }
    return h;
}

static cedar_node *parse_relation(parser *p)
{
    cedar_node *l = parse_add(p);
    if (!l) return NULL;
    tok t = p->t;
    if (tok_is(&t, "=")) {
        fail_at(p, t.line, t.col, "expected `==`, found `=`");
        return NULL;
    }
    if (t.kind == T_IDENT && tok_is(&t, "has")) {
        if (next(p)) return NULL;
        return parse_has(p, l, &t);
    }
    if (t.kind == T_IDENT && tok_is(&t, "like")) {
        if (next(p)) return NULL;
        if (p->t.kind != T_STR) {
            expected(p, "string pattern after `like`");
            return NULL;
        }
        cedar_node *n = mk(p, N_LIKE, t.line, t.col);
        n->a = l;
        if (unescape(p, &p->t, NULL, &n->pat)) return NULL;
        return next(p) ? NULL : n;
    }
    if (t.kind == T_IDENT && tok_is(&t, "is")) {
        if (next(p)) return NULL;
        tg_buf name = TG_BUF_INIT;
        int ncomp;
        bool then_str;
        cedar_node *n = NULL;
        if (p->t.kind != T_IDENT) {
            expected(p, "entity type after `is`");
        } else if (is_reserved(tok_str(&p->t))) {
            fail_at(p, p->t.line, p->t.col, "`%.*s` is a reserved word and cannot name a type",
                    (int)p->t.n, p->t.p);
        } else if (!parse_path(p, &name, &ncomp, &then_str)) {
            if (then_str) {
                fail_at(p, p->t.line, p->t.col, "expected an entity type after `is`, found an entity");
            } else {
                n = mk(p, N_IS, t.line, t.col);
                n->a = l;
                n->str = arena_cstr(p, name.data, name.len);
                if (p->t.kind == T_IDENT && tok_is(&p->t, "in")) {
                    if (next(p) || !(n->b = parse_add(p))) n = NULL;
                }
            }
        }
        tg_buf_free(&name);
        return n;
    }
    int kind = relop_kind(&t);
    if (kind < 0) return l;
    if (next(p)) return NULL;
    cedar_node *r = parse_add(p);
    if (!r) return NULL;
    tok t2 = p->t;
    if (relop_kind(&t2) >= 0 || tok_is(&t2, "has") || tok_is(&t2, "like") || tok_is(&t2, "is")) {
        fail_at(p, t2.line, t2.col, "relational operators do not chain; add parentheses");
        return NULL;
    }
    return mk2(p, kind, l, r, t.line, t.col);
}

static cedar_node *parse_and(parser *p)
{
    cedar_node *l = parse_relation(p);
    while (l && tok_is(&p->t, "&&")) {
        tok t = p->t;
        if (next(p)) return NULL;
        cedar_node *r = parse_relation(p);
        if (!r) return NULL;
        l = mk2(p, N_AND, l, r, t.line, t.col);
    }
    return l;
}

static cedar_node *parse_or(parser *p)
{
    cedar_node *l = parse_and(p);
    while (l && tok_is(&p->t, "||")) {
        tok t = p->t;
        if (next(p)) return NULL;
        cedar_node *r = parse_and(p);
        if (!r) return NULL;
        l = mk2(p, N_OR, l, r, t.line, t.col);
    }
    return l;
}

static cedar_node *parse_expr(parser *p)
{
    if (++p->nesting > PARSE_MAX_NESTING) {
        fail_at(p, p->t.line, p->t.col, "expression nests deeper than %d levels", PARSE_MAX_NESTING);
        return NULL;
    }
    cedar_node *n;
    if (p->t.kind == T_IDENT && tok_is(&p->t, "if")) {
        tok t = p->t;
        if (next(p)) return NULL;
        cedar_node *c = parse_expr(p);
        if (!c) return NULL;
        if (!(p->t.kind == T_IDENT && tok_is(&p->t, "then"))) {
            expected(p, "`then`");
            return NULL;
        }
        if (next(p)) return NULL;
        cedar_node *th = parse_expr(p);
        if (!th) return NULL;
        if (!(p->t.kind == T_IDENT && tok_is(&p->t, "else"))) {
            expected(p, "`else`");
            return NULL;
        }
        if (next(p)) return NULL;
        cedar_node *el = parse_expr(p);
        if (!el) return NULL;
        n = mk2(p, N_IF, c, th, t.line, t.col);
        n->c = el;
    } else {
        n = parse_or(p);
    }
    p->nesting--;
    return n;
}

/* Computes every node's height and rejects trees deeper than CEDAR_MAX_DEPTH, which
 * bounds the evaluator's recursion. Left-deep chains (a || b || c ...) count here. */
static int check_depth(parser *p, const cedar_node *n, int d)
{
    if (!n) return 0;
    if (d > CEDAR_MAX_DEPTH)
        return fail_at(p, n->line, n->col, "expression nests deeper than %d levels", CEDAR_MAX_DEPTH);
    if (check_depth(p, n->a, d + 1) || check_depth(p, n->b, d + 1) || check_depth(p, n->c, d + 1))
        return -1;
    for (uint32_t i = 0; i < n->nargs; i++)
        if (check_depth(p, n->args[i], d + 1)) return -1;
    return 0;
}

/* ---------------------------------------------------------------- policies */

/* An entity in the action scope must be an action: type `Action` or `Ns::Action`. */
static int check_action_uid(parser *p, const cedar_node *e)
{
    cstr t = e->val.u.uid->type;
    if ((t.n == 6 || (t.n > 6 && t.p[t.n - 7] == ':')) && memcmp(t.p + t.n - 6, "Action", 6) == 0)
        return 0;
    return fail_at(p, e->line, e->col, "expected an entity of type `Action` (or `Ns::Action`) in the "
                   "action scope, found type `%.*s`", (int)(t.n > 60 ? 60 : t.n), t.p);
}

/* Parses one scope element: `principal [== E | in E | is T [in E]]` etc. */
static int parse_scope(parser *p, const char *var, scope *sc)
{
    memset(sc, 0, sizeof *sc);
    if (!(p->t.kind == T_IDENT && tok_is(&p->t, var))) {
        char what[32];
        snprintf(what, sizeof what, "`%s`", var);
        return expected(p, what);
    }
    if (next(p)) return -1;
    bool is_action = strcmp(var, "action") == 0;
    if (tok_is(&p->t, ":"))
        return fail_at(p, p->t.line, p->t.col, "type constraints with `:` are not supported; use `is`");
    if (p->t.kind == T_IDENT && tok_is(&p->t, "is")) {
        if (is_action)
            return fail_at(p, p->t.line, p->t.col, "`is` is not allowed in the action scope");
        if (next(p)) return -1;
        if (p->t.kind != T_IDENT) return expected(p, "entity type after `is`");
        if (is_reserved(tok_str(&p->t)))
            return fail_at(p, p->t.line, p->t.col, "`%.*s` is a reserved word and cannot name a type",
                           (int)p->t.n, p->t.p);
        tg_buf name = TG_BUF_INIT;
        int ncomp;
        bool then_str;
        int rc = parse_path(p, &name, &ncomp, &then_str);
        if (!rc && then_str)
            rc = fail_at(p, p->t.line, p->t.col, "expected an entity type after `is`, found an entity");
        if (!rc) {
            sc->op = SC_IS;
            sc->type = arena_cstr(p, name.data, name.len);
        }
        tg_buf_free(&name);
        if (rc) return -1;
    }
    tok op = p->t;
    bool eq = tok_is(&op, "==");
    bool in = op.kind == T_IDENT && tok_is(&op, "in");
    if (!eq && !in) return 0;
    if (eq && sc->op == SC_IS)
        return fail_at(p, op.line, op.col, "`is` can only be followed by `in` in the scope");
    if (next(p)) return -1;
    tok at = p->t;
    cedar_node *e = parse_expr(p);
    if (!e) return -1;
    int want_slot = strcmp(var, "principal") == 0 ? VAR_PRINCIPAL : VAR_RESOURCE;
    if (e->kind == N_SLOT && !is_action) {
        if (e->var != want_slot)
            return fail_at(p, at.line, at.col, "expected ?%s in the %s scope", var, var);
        sc->slot = true;
    } else if (e->kind == N_VALUE && e->val.kind == CV_ENTITY) {
        if (is_action && check_action_uid(p, e)) return -1;
        sc->uid = e->val.u.uid;
    } else if (is_action && in && e->kind == N_SET) {
        sc->nuids = e->nargs;
        sc->uids = tg_arena_alloc(p->a, (e->nargs ? e->nargs : 1) * sizeof *sc->uids);
        for (uint32_t i = 0; i < e->nargs; i++) {
            const cedar_node *x = e->args[i];
            if (x->kind != N_VALUE || x->val.kind != CV_ENTITY)
                return fail_at(p, x->line, x->col, "expected an entity literal in the action list");
            if (check_action_uid(p, x)) return -1;
            sc->uids[i] = x->val.u.uid;
        }
        sc->op = SC_IN_SET;
        return 0;
    } else {
        return fail_at(p, at.line, at.col, "expected %s after `%s` in the %s scope",
                       is_action ? (in ? "an entity or a list of entities" : "an entity")
                                 : "an entity or a template slot",
                       eq ? "==" : "in", var);
    }
    sc->op = eq ? SC_EQ : sc->op == SC_IS ? SC_IS_IN : SC_IN;
    return 0;
}

static int parse_policy(parser *p, cedar_policy *pol, uint32_t index)
{
    memset(pol, 0, sizeof *pol);
    uint32_t cap = 0;
    const char *id = NULL;
    while (tok_is(&p->t, "@")) {
        if (next(p)) return -1;
        if (p->t.kind != T_IDENT) return expected(p, "annotation name after `@`");
        tok key = p->t;
        for (uint32_t i = 0; i < pol->nannos; i++)
            if (cstr_eq(pol->annos[i].key, tok_str(&key)))
                return fail_at(p, key.line, key.col, "duplicate annotation `@%.*s`", (int)key.n, key.p);
        if (next(p)) return -1;
        cstr val = {"", 0};
        bool has_value = tok_is(&p->t, "(");
        if (has_value) {
            if (next(p)) return -1;
            if (p->t.kind != T_STR) return expected(p, "string literal as annotation value");
            if (unescape(p, &p->t, &val, NULL) || next(p)) return -1;
            if (!tok_is(&p->t, ")")) return expected(p, "`)`");
            if (next(p)) return -1;
        }
        if (pol->nannos == cap) {
            cap = cap ? cap * 2 : 4;
            annotation *na = tg_arena_alloc(p->a, cap * sizeof *na);
            if (pol->nannos) memcpy(na, pol->annos, pol->nannos * sizeof *na);
            pol->annos = na;
        }
        pol->annos[pol->nannos].key = arena_cstr(p, key.p, key.n);
        pol->annos[pol->nannos].has_value = has_value;
        pol->annos[pol->nannos++].value = val;
        if (key.n == 2 && memcmp(key.p, "id", 2) == 0) id = val.p;
    }
    if (p->t.kind == T_IDENT && tok_is(&p->t, "permit")) pol->effect = CEDAR_PERMIT;
    else if (p->t.kind == T_IDENT && tok_is(&p->t, "forbid")) pol->effect = CEDAR_FORBID;
    else return expected(p, "`permit` or `forbid`");
    pol->id = id ? id : tg_arena_sprintf(p->a, "policy%u", index);
    if (next(p)) return -1;
    if (!tok_is(&p->t, "(")) return expected(p, "`(`");
    if (next(p) || parse_scope(p, "principal", &pol->principal)) return -1;
    if (!tok_is(&p->t, ",")) return expected(p, "`,` after the principal");
    if (next(p) || parse_scope(p, "action", &pol->action)) return -1;
    if (!tok_is(&p->t, ",")) return expected(p, "`,` after the action");
    if (next(p) || parse_scope(p, "resource", &pol->resource)) return -1;
    if (tok_is(&p->t, ",") && next(p)) return -1;
    if (!tok_is(&p->t, ")")) return expected(p, "`)` after the resource");
    if (next(p)) return -1;
    cap = 0;
    while (p->t.kind == T_IDENT && (tok_is(&p->t, "when") || tok_is(&p->t, "unless"))) {
        bool when = tok_is(&p->t, "when");
        if (next(p)) return -1;
        if (!tok_is(&p->t, "{")) return expected(p, "`{`");
        if (next(p)) return -1;
        if (tok_is(&p->t, "}"))
            return fail_at(p, p->t.line, p->t.col, "empty %s clause: expected an expression",
                           when ? "when" : "unless");
        cedar_node *e = parse_expr(p);
        if (!e || check_depth(p, e, 1)) return -1;
        if (!tok_is(&p->t, "}")) return expected(p, "`}`");
        if (next(p)) return -1;
        if (pol->nconds == cap) {
            cap = cap ? cap * 2 : 2;
            cond *nc = tg_arena_alloc(p->a, cap * sizeof *nc);
            if (pol->nconds) memcpy(nc, pol->conds, pol->nconds * sizeof *nc);
            pol->conds = nc;
        }
        pol->conds[pol->nconds].when = when;
        pol->conds[pol->nconds++].body = e;
    }
    if (!tok_is(&p->t, ";")) return expected(p, "`when`, `unless` or `;`");
    return next(p);
}

cedar_policy_set *cedar_policy_set_parse(const char *text, size_t len, tg_error *err)
{
    if (len > UINT32_MAX / 2) {
        tg_error_set(err, "1:1: policy text too large");
        return NULL;
    }
    cedar_policy_set *ps = calloc(1, sizeof *ps);
    if (!ps) abort();
    ps->arena = tg_arena_new(0);
    parser p = {.src = text, .cur = text, .end = text + len, .line = 1, .col = 1,
                .a = ps->arena, .err = err};
    uint32_t cap = 0;
    if (check_utf8(&p) || next(&p)) goto fail;
    while (p.t.kind != T_EOF) {
        if (ps->n == cap) {
            cap = cap ? cap * 2 : 8;
            cedar_policy *np = tg_arena_alloc(ps->arena, cap * sizeof *np);
            if (ps->n) memcpy(np, ps->policies, ps->n * sizeof *np);
            ps->policies = np;
        }
        if (parse_policy(&p, &ps->policies[ps->n], ps->n)) goto fail;
        ps->n++;
    }
    ps->index = cedar_index_build(ps);
    return ps;
fail:
    cedar_policy_set_free(ps);
    return NULL;
}

void cedar_policy_set_free(cedar_policy_set *ps)
{
    if (!ps) return;
    tg_arena_free(ps->arena);
    free(ps);
}

size_t cedar_policy_count(const cedar_policy_set *ps)
{
    return ps->n;
}

const char *cedar_policy_id(const cedar_policy_set *ps, size_t i)
{
    return ps->policies[i].id;
}

cedar_effect cedar_policy_effect(const cedar_policy_set *ps, size_t i)
{
    return (cedar_effect)ps->policies[i].effect;
}

size_t cedar_policy_annotation_count(const cedar_policy_set *ps, size_t i)
{
    return ps->policies[i].nannos;
}

void cedar_policy_annotation_at(const cedar_policy_set *ps, size_t i, size_t j, const char **key,
                                const char **value, size_t *value_len)
{
    const annotation *an = &ps->policies[i].annos[j];
    *key = an->key.p;
    *value = an->value.p;
    if (value_len) *value_len = an->value.n;
}

const char *cedar_policy_annotation(const cedar_policy_set *ps, size_t i, const char *key)
{
    const cedar_policy *pol = &ps->policies[i];
    cstr k = {key, (uint32_t)strlen(key)};
    for (uint32_t j = 0; j < pol->nannos; j++)
        if (cstr_eq(pol->annos[j].key, k)) return pol->annos[j].value.p;
    return NULL;
}
