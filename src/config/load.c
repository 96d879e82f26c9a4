/*
 * load.c — tg_config_load: a YAML file becomes a validated, immutable, reference-counted
 * tg_config snapshot (see tg_config.h for the contract, docs/configuration.md for the
 * keys).
 *
 * How it works: libfyaml builds a document (it rejects duplicate keys and reports YAML
 * syntax errors with positions); we walk that document against tables of known keys
 * (`field`), so an unknown key, a wrong type or a bad value stops the load with
 * "FILE:LINE:COL: key.path: message" pointing at the offending node. String values go
 * through secret resolution (${VAR}, file:PATH) as they are read. Everything the
 * snapshot keeps is copied into one arena owned by the snapshot; the YAML document and
 * a scratch arena (key paths for messages) are freed before returning.
 *
 * Error messages never contain a resolved value: when a message quotes what was found,
 * it quotes the text as written in the file (e.g. "${JIRA_URL}"), never what a secret
 * reference expanded to.
 */
#include "config/tg_config.h"
#include "config/config_int.h"
#include "config/yaml_int.h"

#include <errno.h>
#include <fcntl.h>
#include <libfyaml.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* The snapshot behind a tg_config*. `cfg` is the first member so the public pointer
 * converts back. Invariants: the snapshot itself and every string and array reachable
 * from cfg live in `arena` (defaults are string literals); `refs` counts holders, and
 * whoever drops it to zero frees the arena, which frees everything. */
typedef struct snapshot {
    tg_config cfg;
    atomic_uint refs;
    tg_arena *arena;
    bool explicit_public_url;    /* public_url / allowed_hosts were in the file, so they */
    bool explicit_allowed_hosts; /* do not follow a listen override */
} snapshot;

/* Secret files are credentials, not documents: anything bigger is a mistake. */
#define SECRET_FILE_MAX (64 * 1024)


/* ------------------------------------------------------------------ errors */

/* Line and column (1-based) where node n starts. libfyaml 0.7 exposes token marks only
 * for scalars, so a collection is located by its first scalar. -1 if there is none. */
static int node_mark(struct fy_node *n, int *line, int *col)
{
    void *it = NULL;
    if (!n)
        return -1;
    switch (fy_node_get_type(n)) {
    case FYNT_SCALAR: {
        struct fy_token *t = fy_node_get_scalar_token(n);
        const struct fy_mark *m = t ? fy_token_start_mark(t) : NULL;
        if (!m)
            return -1;
        *line = m->line + 1;
        *col = m->column + 1;
        /* A quoted scalar's token starts after its opening quote; point at the quote. */
        if ((fy_node_get_style(n) == FYNS_SINGLE_QUOTED ||
             fy_node_get_style(n) == FYNS_DOUBLE_QUOTED) && *col > 1)
            (*col)--;
        return 0;
    }
    case FYNT_MAPPING: {
        struct fy_node_pair *p = fy_node_mapping_iterate(n, &it);
        return p ? node_mark(fy_node_pair_key(p), line, col) : -1;
    }
    case FYNT_SEQUENCE:
        return node_mark(fy_node_sequence_iterate(n, &it), line, col);
    }
    return -1;
}

/* Where w is: its value's position, else its key's, else 1:1. */
static void position(const at *w, int *line, int *col)
{
    if (node_mark(w->node, line, col) < 0)
        node_mark(w->key, line, col);
}

const char *tg_cy_position(loader *L, const at *w)
{
    int line = 1, col = 1;
    position(w, &line, &col);
    return tg_arena_sprintf(L->a, "%s:%d:%d", L->file, line, col);
}

__attribute__((format(printf, 3, 4)))
int tg_cy_fail(loader *L, const at *w, const char *fmt, ...)
{
    int line = 1, col = 1;
    char msg[768];
    va_list ap;
    position(w, &line, &col);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (w->where && *w->where)
        return tg_error_set(L->err, "%s:%d:%d: %s: %s", L->file, line, col, w->where, msg);
    return tg_error_set(L->err, "%s:%d:%d: %s", L->file, line, col, msg);
}

const char *tg_cy_what(struct fy_node *n)
{
    if (!n)
        return "nothing";
    switch (fy_node_get_type(n)) {
    case FYNT_MAPPING:
        return "a mapping";
    case FYNT_SEQUENCE:
        return "a list";
    default:
        return "a single value";
    }
}

at tg_cy_at_child(loader *L, const at *parent, struct fy_node *node, struct fy_node *key,
                   const char *name)
{
    at w = {node, key, name};
    if (parent->where && *parent->where)
        w.where = tg_arena_sprintf(L->tmp, "%s.%s", parent->where, name);
    return w;
}

at tg_cy_at_index(loader *L, const at *parent, struct fy_node *item, size_t i)
{
    at w = {item, parent->key, tg_arena_sprintf(L->tmp, "%s[%zu]", parent->where, i)};
    return w;
}

/* ------------------------------------------------------------------ scalars */

static bool one_of(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return true;
    return false;
}

/* YAML 1.2 core-schema spellings of null and booleans (plain scalars only). */
static const char *const null_words[] = {"", "~", "null", "Null", "NULL", NULL};
static const char *const bool_words[] = {"true", "True", "TRUE", "false", "False", "FALSE", NULL};

/* The text of a scalar value (NUL-terminated copy in tmp), or -1 naming what was found
 * instead of `expected`. *plain tells whether it was written unquoted. */
int tg_cy_scalar(loader *L, const at *w, const char *expected, const char **text, bool *plain)
{
    struct fy_node *n = w->node;
    size_t len = 0;
    const char *t;
    if (!n || !fy_node_is_scalar(n))
        return tg_cy_fail(L, w, "expected %s, found %s", expected, tg_cy_what(n));
    if (fy_node_get_tag(n, &len))
        return tg_cy_fail(L, w, "YAML tags (!!type) are not supported; write the value alone");
    t = fy_node_get_scalar(n, &len);
    if (!t)
        t = "";
    if (memchr(t, '\0', len))
        return tg_cy_fail(L, w, "must not contain a NUL character");
    *text = tg_arena_strndup(L->tmp, t, len);
    *plain = fy_node_get_style(n) == FYNS_PLAIN;
    if (*plain && one_of(*text, null_words))
        return tg_cy_fail(L, w, "expected %s, found nothing", expected);
    return 0;
}

/* Reads a secret file: whole contents, one trailing newline (LF or CRLF) stripped. */
static int read_secret_file(loader *L, const at *w, const char *path, const char **out)
{
    char buf[SECRET_FILE_MAX + 1];
    struct stat st;
    size_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return tg_cy_fail(L, w, "cannot read secret file %s: %s", path, strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return tg_cy_fail(L, w, "secret file %s is not a regular file", path);
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof buf - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return tg_cy_fail(L, w, "cannot read secret file %s: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == sizeof buf)
            break;
    }
    close(fd);
    if (n > SECRET_FILE_MAX) {
        explicit_bzero(buf, sizeof buf);
        return tg_cy_fail(L, w, "secret file %s is larger than 64 KiB", path);
    }
    if (memchr(buf, '\0', n)) {
        explicit_bzero(buf, sizeof buf);
        return tg_cy_fail(L, w, "secret file %s contains a NUL byte", path);
    }
    if (n && buf[n - 1] == '\n')
        n--;
    if (n && buf[n - 1] == '\r')
        n--;
    *out = tg_arena_strndup(L->a, buf, n);
    explicit_bzero(buf, sizeof buf);
    return 0;
}

/* Makes p absolute against the configuration file's directory ("./x" → "DIR/x"). */
const char *tg_cy_abspath(loader *L, const char *p)
{
    if (p[0] == '/')
        return tg_arena_strdup(L->a, p);
    while (p[0] == '.' && p[1] == '/')
        p += 2;
    if (strcmp(p, ".") == 0 || !*p)
        return L->dir;
    return tg_arena_sprintf(L->a, "%s/%s", L->dir, p);
}

/* Secret references. The whole value `file:PATH` is the contents of PATH (relative
 * paths are against the configuration's directory). Anywhere in a value, `${NAME}` is
 * the environment variable NAME and `$${` is a literal "${". */
static int resolve(loader *L, const at *w, const char *raw, const char **out)
{
    tg_buf b = TG_BUF_INIT;
    int rc = 0;
    if (strncmp(raw, "file:", 5) == 0) {
        if (!raw[5])
            return tg_cy_fail(L, w, "file: needs a path, e.g. file:/run/secrets/token");
        return read_secret_file(L, w, tg_cy_abspath(L, raw + 5), out);
    }
    tg_buf_append(&b, "", 0);
    for (const char *p = raw; *p && rc == 0;) {
        if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
            tg_buf_append(&b, "${", 2);
            p += 3;
        } else if (p[0] == '$' && p[1] == '{') {
            const char *end = strchr(p + 2, '}');
            char *name = end ? tg_arena_strndup(L->tmp, p + 2, (size_t)(end - p - 2)) : NULL;
            const char *v = name && tg_config_is_env_name(name) ? getenv(name) : NULL;
            if (!name || !tg_config_is_env_name(name))
                rc = tg_cy_fail(L, w, "malformed reference: write ${NAME} with NAME made of letters, "
                                "digits and _ (and $${ for a literal ${)");
            else if (!v)
                rc = tg_cy_fail(L, w, "environment variable %s is not set", name);
            else
                tg_buf_appends(&b, v);
            p = end ? end + 1 : p + 2;
        } else {
            tg_buf_append(&b, p, 1);
            p++;
        }
    }
    if (rc == 0)
        *out = tg_arena_strndup(L->a, b.data, b.len);
    explicit_bzero(b.data, b.cap);
    tg_buf_free(&b);
    return rc;
}

/* A string value, secret references resolved. Unquoted true/false are booleans in YAML,
 * not strings: saying so beats silently turning them into text. */
int tg_cy_string_value(loader *L, const at *w, const char **out)
{
    const char *raw;
    bool plain;
    if (tg_cy_scalar(L, w, "a string", &raw, &plain) < 0)
        return -1;
    if (plain && one_of(raw, bool_words))
        return tg_cy_fail(L, w, "expected a string, found the boolean %s (quote it to mean the text)",
                    raw);
    return resolve(L, w, raw, out);
}

int tg_cy_nonempty_string(loader *L, const at *w, const char **out)
{
    if (tg_cy_string_value(L, w, out) < 0)
        return -1;
    if (!**out)
        return tg_cy_fail(L, w, "must not be empty");
    return 0;
}

/* The raw text of w (for quoting in messages: never a resolved secret). */
const char *tg_cy_raw_text(loader *L, const at *w)
{
    size_t len = 0;
    const char *t = w->node && fy_node_is_scalar(w->node) ? fy_node_get_scalar(w->node, &len) : NULL;
    return t ? tg_arena_strndup(L->tmp, t, len) : "";
}


int tg_cy_string_list(loader *L, const at *w, item_check check, const char ***out, size_t *n)
{
    void *it = NULL;
    struct fy_node *item;
    size_t count, i = 0;
    if (!w->node || !fy_node_is_sequence(w->node))
        return tg_cy_fail(L, w, "expected a list, found %s", tg_cy_what(w->node));
    count = (size_t)fy_node_sequence_item_count(w->node);
    const char **arr = tg_arena_calloc(L->a, count + 1, sizeof *arr);
    while ((item = fy_node_sequence_iterate(w->node, &it))) {
        at iw = tg_cy_at_index(L, w, item, i);
        if (tg_cy_nonempty_string(L, &iw, &arr[i]) < 0 || (check && check(L, &iw, arr[i]) < 0))
            return -1;
        i++;
    }
    *out = arr;
    *n = i;
    return 0;
}

/* A map of name → string value; `check_name` validates each key at its position. */
static int string_map(loader *L, const at *w, item_check check_name, tg_kv **out, size_t *n)
{
    void *it = NULL;
    struct fy_node_pair *p;
    size_t i = 0;
    if (!w->node || !fy_node_is_mapping(w->node))
        return tg_cy_fail(L, w, "expected a mapping of names to values, found %s", tg_cy_what(w->node));
    tg_kv *kv = tg_arena_calloc(L->a, (size_t)fy_node_mapping_item_count(w->node) + 1, sizeof *kv);
    while ((p = fy_node_mapping_iterate(w->node, &it))) {
        struct fy_node *k = fy_node_pair_key(p);
        at kw = {k, k, w->where};
        const char *name;
        bool plain;
        if (tg_cy_scalar(L, &kw, "a name", &name, &plain) < 0 || check_name(L, &kw, name) < 0)
            return -1;
        at vw = tg_cy_at_child(L, w, fy_node_pair_value(p), k, name);
        kv[i].key = tg_arena_strdup(L->a, name);
        if (tg_cy_string_value(L, &vw, &kv[i].value) < 0)
            return -1;
        i++;
    }
    *out = kv;
    *n = i;
    return 0;
}

/* ------------------------------------------------------------------ mappings */


#define KEY_MAX 64  /* longest key distance() compares */

/* Edit distance capped at 3, for "did you mean" on unknown keys. */
static int distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    int row[KEY_MAX + 1];
    if (la > KEY_MAX || lb > KEY_MAX)
        return 3;
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb] < 3 ? row[lb] : 3;
}

static int unknown_key(loader *L, const at *kw, const char *name, const field *fields, size_t n)
{
    tg_buf keys = TG_BUF_INIT;
    const char *close = NULL;
    int rc;
    for (size_t i = 0; i < n; i++) {
        if (!close && strlen(name) >= 3 && distance(name, fields[i].key) <= 2)
            close = fields[i].key;
        tg_buf_printf(&keys, "%s%s", i ? ", " : "", fields[i].key);
    }
    if (close)
        rc = tg_cy_fail(L, kw, "unknown key \"%s\" (did you mean \"%s\"?)", name, close);
    else
        rc = tg_cy_fail(L, kw, "unknown key \"%s\"; known keys: %s", name, keys.data);
    tg_buf_free(&keys);
    return rc;
}

static int read_field(loader *L, const field *f, const at *vw, void *obj)
{
    char *dst = (char *)obj + f->off;
    const char *text, *why = NULL;
    bool plain;
    uint64_t count;
    switch (f->kind) {
    case F_STRING:
        return tg_cy_nonempty_string(L, vw, (const char **)(void *)dst);
    case F_SIZE:
        if (tg_cy_scalar(L, vw, "a size", &text, &plain) < 0)
            return -1;
        if (tg_config_parse_size(text, (size_t *)(void *)dst, &why) < 0)
            return tg_cy_fail(L, vw, "%s, found \"%s\"", why, text);
        return 0;
    case F_COUNT:
        if (tg_cy_scalar(L, vw, "a number", &text, &plain) < 0)
            return -1;
        if (!plain)
            return tg_cy_fail(L, vw, "expected a number, found a quoted string");
        if (tg_config_parse_count(text, SIZE_MAX, &count, &why) < 0)
            return tg_cy_fail(L, vw, "%s, found \"%s\"", why, text);
        *(size_t *)(void *)dst = (size_t)count;
        return 0;
    case F_DURATION:
        if (tg_cy_scalar(L, vw, "a duration", &text, &plain) < 0)
            return -1;
        if (tg_config_parse_duration(text, (uint32_t *)(void *)dst, &why) < 0)
            return tg_cy_fail(L, vw, "%s, found \"%s\"", why, text);
        return 0;
    case F_MS64: {
        uint32_t ms;
        if (tg_cy_scalar(L, vw, "a duration", &text, &plain) < 0)
            return -1;
        if (tg_config_parse_duration(text, &ms, &why) < 0)
            return tg_cy_fail(L, vw, "%s, found \"%s\"", why, text);
        *(int64_t *)(void *)dst = ms;
        return 0;
    }
    case F_SECONDS:
        if (tg_cy_scalar(L, vw, "a duration", &text, &plain) < 0)
            return -1;
        if (tg_config_parse_seconds(text, (int64_t *)(void *)dst, &why) < 0)
            return tg_cy_fail(L, vw, "%s, found \"%s\"", why, text);
        return 0;
    case F_BOOL:
        return tg_cy_bool(L, vw, (int *)(void *)dst);
    case F_NODE:
        *(at *)(void *)dst = *vw;
        return 0;
    case F_CUSTOM:
        return f->fn(L, vw, obj);
    case F_EARLIER:
        return 0;
    }
    return -1;
}

/* Walks a mapping against a key table. `scope` is the transport of the upstream being
 * read (0 outside upstreams). Keys that are absent keep the defaults already in obj. */
int tg_cy_walk_map(loader *L, const at *w, const field *fields, size_t n, void *obj,
                    unsigned scope)
{
    void *it = NULL;
    struct fy_node_pair *p;
    if (!w->node || !fy_node_is_mapping(w->node))
        return tg_cy_fail(L, w, "expected a mapping (key: value lines), found %s", tg_cy_what(w->node));
    while ((p = fy_node_mapping_iterate(w->node, &it))) {
        struct fy_node *k = fy_node_pair_key(p);
        at kw = {k, w->key, w->where};
        const char *name;
        bool plain;
        size_t i;
        if (tg_cy_scalar(L, &kw, "a key name", &name, &plain) < 0)
            return -1;
        for (i = 0; i < n && strcmp(fields[i].key, name) != 0; i++)
            ;
        if (i == n)
            return unknown_key(L, &kw, name, fields, n);
        at vw = tg_cy_at_child(L, w, fy_node_pair_value(p), k, name);
        if (fields[i].scope && !(fields[i].scope & scope)) {
            at here = {k, k, vw.where};
            return tg_cy_fail(L, &here, "only valid for %s upstreams",
                        fields[i].scope == TG_UP_STDIO ? "stdio" : "http");
        }
        if (read_field(L, &fields[i], &vw, obj) < 0)
            return -1;
    }
    return 0;
}

/* The value of key `name` in mapping w (NULL node if absent). */
at tg_cy_find_key(loader *L, const at *w, const char *name)
{
    void *it = NULL;
    struct fy_node_pair *p;
    at none = {NULL, NULL, NULL};
    while ((p = fy_node_mapping_iterate(w->node, &it))) {
        struct fy_node *k = fy_node_pair_key(p);
        size_t len = 0;
        const char *t = k && fy_node_is_scalar(k) ? fy_node_get_scalar(k, &len) : NULL;
        if (t && len == strlen(name) && memcmp(t, name, len) == 0)
            return tg_cy_at_child(L, w, fy_node_pair_value(p), k, name);
    }
    return none;
}

int tg_cy_missing(loader *L, const at *w, const char *key, const char *hint)
{
    return tg_cy_fail(L, w, "missing required key \"%s\"%s", key, hint);
}

/* ------------------------------------------------------------------ upstreams */

/* An upstream while it is read. Keys whose meaning depends on siblings (command + args,
 * env + inherit_env, name and prefix uniqueness) are recorded as `at` and applied in
 * finish_upstream, so the order of keys in the file does not matter. */
typedef struct up_build {
    tg_upstream_conf u;
    at name, prefix, command, args, env, inherit_env;
} up_build;

/* A string that must be one of two words: *out gets va or vb. */
int tg_cy_two_words(loader *L, const at *w, const char *a, int va, const char *b, int vb, int *out)
{
    const char *s;
    if (tg_cy_string_value(L, w, &s) < 0)
        return -1;
    if (strcmp(s, a) == 0)
        *out = va;
    else if (strcmp(s, b) == 0)
        *out = vb;
    else
        return tg_cy_fail(L, w, "expected \"%s\" or \"%s\", found \"%s\"", a, b, tg_cy_raw_text(L, w));
    return 0;
}

static int read_transport(loader *L, const at *w, tg_up_transport *out)
{
    int v;
    if (tg_cy_two_words(L, w, "stdio", TG_UP_STDIO, "http", TG_UP_HTTP, &v) < 0)
        return -1;
    *out = (tg_up_transport)v;
    return 0;
}

static int read_sessions(loader *L, const at *w, void *obj)
{
    up_build *b = obj;
    int v;
    if (tg_cy_two_words(L, w, "shared", TG_UP_SESSIONS_SHARED, "per-client", TG_UP_SESSIONS_PER_CLIENT,
                  &v) < 0)
        return -1;
    b->u.sessions = (tg_up_sessions)v;
    return 0;
}

static int read_cwd(loader *L, const at *w, void *obj)
{
    up_build *b = obj;
    const char *s;
    struct stat st;
    if (tg_cy_nonempty_string(L, w, &s) < 0)
        return -1;
    b->u.cwd = tg_cy_abspath(L, s);
    if (stat(b->u.cwd, &st) < 0 || !S_ISDIR(st.st_mode))
        return tg_cy_fail(L, w, "%s is not a directory", b->u.cwd);
    return 0;
}

static int read_url(loader *L, const at *w, void *obj)
{
    up_build *b = obj;
    const char *why;
    if (tg_cy_nonempty_string(L, w, &b->u.url) < 0)
        return -1;
    if (tg_config_check_http_url(b->u.url, 0, L->tmp, NULL, &why) < 0)
        return tg_cy_fail(L, w, "%s", why);
    return 0;
}

/* Headers toolgate itself sets or that change framing: configuring them would break the
 * protocol or smuggle a second meaning past the upstream. */
static const char *const reserved_headers[] = {
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
    "te", "trailer", "expect", "proxy-connection", "content-type", "accept",
    "mcp-session-id", "mcp-protocol-version", "last-event-id", NULL,
};

static int check_header_name(loader *L, const at *w, const char *s)
{
    if (!tg_config_is_header_name(s))
        return tg_cy_fail(L, w, "\"%s\" is not a valid HTTP header name", s);
    for (const char *const *r = reserved_headers; *r; r++)
        if (strcasecmp(s, *r) == 0)
            return tg_cy_fail(L, w, "header %s is set by toolgate and cannot be configured", s);
    return 0;
}

static int read_headers(loader *L, const at *w, void *obj)
{
    up_build *b = obj;
    if (string_map(L, w, check_header_name, &b->u.headers, &b->u.nheaders) < 0)
        return -1;
    for (size_t i = 0; i < b->u.nheaders; i++) {
        const tg_kv *h = &b->u.headers[i];
        at hw = tg_cy_find_key(L, w, h->key);
        at name = {hw.key, hw.key, hw.where};
        if (strpbrk(h->value, "\r\n"))
            return tg_cy_fail(L, &hw, "a header value must not contain line breaks");
        for (size_t j = 0; j < i; j++)
            if (strcasecmp(b->u.headers[j].key, h->key) == 0)
                return tg_cy_fail(L, &name, "header %s is given twice (names are case-insensitive)",
                            h->key);
    }
    return 0;
}

static const field upstream_fields[] = {
    {"name", F_NODE, offsetof(up_build, name), NULL, 0},
    {"transport", F_EARLIER, 0, NULL, 0},
    {"sessions", F_CUSTOM, 0, read_sessions, 0},
    {"prefix", F_NODE, offsetof(up_build, prefix), NULL, 0},
    {"call_timeout", F_DURATION, offsetof(up_build, u.call_timeout_ms), NULL, 0},
    {"init_timeout", F_DURATION, offsetof(up_build, u.init_timeout_ms), NULL, 0},
    {"command", F_NODE, offsetof(up_build, command), NULL, TG_UP_STDIO},
    {"args", F_NODE, offsetof(up_build, args), NULL, TG_UP_STDIO},
    {"env", F_NODE, offsetof(up_build, env), NULL, TG_UP_STDIO},
    {"inherit_env", F_NODE, offsetof(up_build, inherit_env), NULL, TG_UP_STDIO},
    {"cwd", F_CUSTOM, 0, read_cwd, TG_UP_STDIO},
    {"restart_min", F_DURATION, offsetof(up_build, u.restart_min_ms), NULL, TG_UP_STDIO},
    {"restart_max", F_DURATION, offsetof(up_build, u.restart_max_ms), NULL, TG_UP_STDIO},
    {"shutdown_grace", F_DURATION, offsetof(up_build, u.shutdown_grace_ms), NULL, TG_UP_STDIO},
    {"url", F_CUSTOM, 0, read_url, TG_UP_HTTP},
    {"headers", F_CUSTOM, 0, read_headers, TG_UP_HTTP},
    {"connect_timeout", F_DURATION, offsetof(up_build, u.connect_timeout_ms), NULL, TG_UP_HTTP},
};
#define NUPSTREAM_FIELDS (sizeof upstream_fields / sizeof upstream_fields[0])

static int check_env_name(loader *L, const at *w, const char *s)
{
    if (!tg_config_is_env_name(s))
        return tg_cy_fail(L, w, "\"%s\" is not a valid environment variable name", s);
    return 0;
}

/* The child's environment: `env:` entries, then each `inherit_env:` variable that is set
 * in toolgate's own environment (unset ones are skipped). Nothing else is passed. */
static int build_env(loader *L, up_build *b)
{
    const char **inherit = NULL;
    size_t ninherit = 0;
    if (b->env.where && string_map(L, &b->env, check_env_name, &b->u.env, &b->u.nenv) < 0)
        return -1;
    if (!b->inherit_env.where)
        return 0;
    if (tg_cy_string_list(L, &b->inherit_env, check_env_name, &inherit, &ninherit) < 0)
        return -1;
    tg_kv *all = tg_arena_calloc(L->a, b->u.nenv + ninherit + 1, sizeof *all);
    if (b->u.nenv)
        memcpy(all, b->u.env, b->u.nenv * sizeof *all);
    size_t n = b->u.nenv;
    for (size_t i = 0; i < ninherit; i++) {
        for (size_t j = 0; j < n; j++) {
            if (strcmp(all[j].key, inherit[i]) == 0) {
                at iw = tg_cy_at_index(L, &b->inherit_env,
                                 fy_node_sequence_get_by_index(b->inherit_env.node, (int)i), i);
                return tg_cy_fail(L, &iw, "%s is both set in env and listed in inherit_env", inherit[i]);
            }
        }
        const char *v = getenv(inherit[i]);
        if (v) {
            all[n].key = inherit[i];
            all[n].value = tg_arena_strdup(L->a, v);
            n++;
        }
    }
    b->u.env = all;
    b->u.nenv = n;
    return 0;
}

static bool is_executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

static const char *child_env(const up_build *b, const char *name)
{
    for (size_t i = 0; i < b->u.nenv; i++)
        if (strcmp(b->u.env[i].key, name) == 0)
            return b->u.env[i].value;
    return NULL;
}

/* argv[0] becomes an absolute path to an executable file: with a '/', relative to the
 * configuration's directory; without, looked up in PATH (the child's PATH when its
 * environment has one, else toolgate's), so what `check` verified is what runs. */
static int resolve_command(loader *L, up_build *b, const at *cw)
{
    const char *cmd = b->u.argv[0];
    if (strchr(cmd, '/')) {
        b->u.argv[0] = tg_cy_abspath(L, cmd);
        if (!is_executable(b->u.argv[0]))
            return tg_cy_fail(L, cw, "%s is not an executable file", b->u.argv[0]);
        return 0;
    }
    const char *path = child_env(b, "PATH");
    if (!path)
        path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path; *p;) {
        size_t len = strcspn(p, ":");
        if (len) {
            const char *cand = tg_arena_sprintf(L->tmp, "%.*s/%s", (int)len, p, cmd);
            if (cand[0] == '/' && is_executable(cand)) {
                b->u.argv[0] = tg_arena_strdup(L->a, cand);
                return 0;
            }
        }
        p += len;
        if (*p == ':')
            p++;
    }
    return tg_cy_fail(L, cw, "command \"%s\" was not found in PATH (%s)", cmd, path);
}

/* command: a list [prog, arg...] or a string prog with an optional args: list. */
static int build_argv(loader *L, up_build *b, const at *uw)
{
    const char **args = NULL, **cmd = NULL;
    size_t nargs = 0, ncmd = 0;
    at cw = b->command;
    if (!cw.where)
        return tg_cy_missing(L, uw, "command", " (stdio upstreams run a program)");
    if (cw.node && fy_node_is_sequence(cw.node)) {
        if (b->args.where)
            return tg_cy_fail(L, &b->args, "args cannot be combined with a command list; "
                                     "put the arguments in the command list");
        if (tg_cy_string_list(L, &cw, NULL, &cmd, &ncmd) < 0)
            return -1;
        if (ncmd == 0)
            return tg_cy_fail(L, &cw, "must name a program");
        at first = tg_cy_at_index(L, &cw, fy_node_sequence_get_by_index(cw.node, 0), 0);
        cw = first;
    } else {
        const char *prog;
        if (tg_cy_nonempty_string(L, &cw, &prog) < 0)
            return -1;
        if (b->args.where && tg_cy_string_list(L, &b->args, NULL, &args, &nargs) < 0)
            return -1;
        cmd = tg_arena_calloc(L->a, nargs + 2, sizeof *cmd);
        cmd[0] = prog;
        for (size_t i = 0; i < nargs; i++)
            cmd[i + 1] = args[i];
        ncmd = nargs + 1;
    }
    b->u.argv = cmd;
    b->u.argc = ncmd;
    return resolve_command(L, b, &cw);
}

static int read_upstream(loader *L, const at *uw, up_build *b)
{
    tg_upstream_conf *u = &b->u;
    if (!uw->node || !fy_node_is_mapping(uw->node))
        return tg_cy_fail(L, uw, "expected a mapping describing an upstream, found %s", tg_cy_what(uw->node));
    at tw = tg_cy_find_key(L, uw, "transport");
    if (!tw.where)
        return tg_cy_missing(L, uw, "transport", " (\"stdio\" or \"http\")");
    if (read_transport(L, &tw, &u->transport) < 0)
        return -1;
    u->sessions = u->transport == TG_UP_STDIO ? TG_UP_SESSIONS_SHARED : TG_UP_SESSIONS_PER_CLIENT;
    u->call_timeout_ms = 60000;
    u->init_timeout_ms = 10000;
    u->restart_min_ms = 500;
    u->restart_max_ms = 30000;
    u->shutdown_grace_ms = 2000;
    u->connect_timeout_ms = 5000;
    if (tg_cy_walk_map(L, uw, upstream_fields, NUPSTREAM_FIELDS, b, u->transport) < 0)
        return -1;
    if (!b->name.where)
        return tg_cy_missing(L, uw, "name", "");
    if (tg_cy_nonempty_string(L, &b->name, &u->name) < 0)
        return -1;
    if (!tg_config_is_upstream_name(u->name))
        return tg_cy_fail(L, &b->name, "names use only letters, digits, _ and - (at most 64)");
    if (b->prefix.where) {
        if (tg_cy_nonempty_string(L, &b->prefix, &u->prefix) < 0)
            return -1;
        if (!tg_config_is_tool_prefix(u->prefix))
            return tg_cy_fail(L, &b->prefix, "a prefix uses only letters, digits, _, - and . "
                                       "(the characters of MCP tool names; at most 64)");
    }
    if (u->transport == TG_UP_HTTP) {
        if (!u->url)
            return tg_cy_missing(L, uw, "url", " (the upstream's Streamable HTTP endpoint)");
        return 0;
    }
    if (u->restart_min_ms > u->restart_max_ms) {
        at rw = tg_cy_find_key(L, uw, "restart_min");
        return tg_cy_fail(L, rw.where ? &rw : uw, "restart_min must not exceed restart_max");
    }
    if (build_env(L, b) < 0)
        return -1;
    return build_argv(L, b, uw);
}

static int read_upstreams(loader *L, const at *w, void *obj)
{
    tg_config *cfg = obj;
    void *it = NULL;
    struct fy_node *item;
    size_t i = 0;
    if (!w->node || !fy_node_is_sequence(w->node))
        return tg_cy_fail(L, w, "expected a list of upstreams, found %s", tg_cy_what(w->node));
    size_t n = (size_t)fy_node_sequence_item_count(w->node);
    if (n == 0)
        return tg_cy_fail(L, w, "at least one upstream is required");
    up_build *bs = tg_arena_calloc(L->tmp, n, sizeof *bs);
    cfg->upstreams = tg_arena_calloc(L->a, n, sizeof *cfg->upstreams);
    while ((item = fy_node_sequence_iterate(w->node, &it))) {
        at uw = tg_cy_at_index(L, w, item, i);
        if (read_upstream(L, &uw, &bs[i]) < 0)
            return -1;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(bs[j].u.name, bs[i].u.name) == 0)
                return tg_cy_fail(L, &bs[i].name, "upstream name \"%s\" is already used by %s[%zu]",
                            bs[i].u.name, w->where, j);
            if (bs[i].u.prefix && bs[j].u.prefix && strcmp(bs[j].u.prefix, bs[i].u.prefix) == 0)
                return tg_cy_fail(L, &bs[i].prefix, "prefix \"%s\" is already used by upstream %s",
                            bs[i].u.prefix, bs[j].u.name);
        }
        cfg->upstreams[i] = bs[i].u;
        i++;
    }
    cfg->nupstreams = i;
    return 0;
}

/* ------------------------------------------------------------------ top level */

static int read_listen(loader *L, const at *w, void *obj)
{
    tg_config *cfg = obj;
    const char *s, *why;
    if (tg_cy_string_value(L, w, &s) < 0)
        return -1;
    if (tg_config_parse_listen(s, L->a, &cfg->listen_host, &cfg->listen_port, &why) < 0)
        return tg_cy_fail(L, w, "%s, found \"%s\"", why, tg_cy_raw_text(L, w));
    return 0;
}

static int read_public_url(loader *L, const at *w, void *obj)
{
    tg_config *cfg = obj;
    const char *why;
    if (tg_cy_nonempty_string(L, w, &cfg->public_url) < 0)
        return -1;
    if (tg_config_check_http_url(cfg->public_url, TG_URL_NO_QUERY, L->tmp, NULL, &why) < 0)
        return tg_cy_fail(L, w, "%s", why);
    return 0;
}

static int read_mcp_path(loader *L, const at *w, void *obj)
{
    tg_config *cfg = obj;
    if (tg_cy_nonempty_string(L, w, &cfg->mcp_path) < 0)
        return -1;
    if (!tg_config_is_mcp_path(cfg->mcp_path))
        return tg_cy_fail(L, w, "must start with / and contain only URL path characters");
    return 0;
}

static int check_origin(loader *L, const at *w, const char *s)
{
    const char *why;
    if (tg_config_check_http_url(s, TG_URL_ORIGIN, L->tmp, NULL, &why) < 0)
        return tg_cy_fail(L, w, "%s", why);
    return 0;
}

static int read_origins(loader *L, const at *w, void *obj)
{
    tg_config *cfg = obj;
    return tg_cy_string_list(L, w, check_origin, &cfg->allowed_origins, &cfg->nallowed_origins);
}

static int check_host(loader *L, const at *w, const char *s)
{
    if (!tg_config_is_host_value(s))
        return tg_cy_fail(L, w, "expected a Host header value such as toolgate.example or "
                          "127.0.0.1:8080");
    return 0;
}

static int read_hosts(loader *L, const at *w, void *obj)
{
    tg_config *cfg = obj;
    return tg_cy_string_list(L, w, check_host, &cfg->allowed_hosts, &cfg->nallowed_hosts);
}

static int read_log_level(loader *L, const at *w, void *obj)
{
    tg_config *cfg = obj;
    const char *s;
    if (tg_cy_string_value(L, w, &s) < 0)
        return -1;
    if (tg_log_parse_level(s, &cfg->log_level) < 0)
        return tg_cy_fail(L, w, "expected one of debug, info, warn, error, found \"%s\"",
                    tg_cy_raw_text(L, w));
    return 0;
}

static const field limits_fields[] = {
    {"max_body_size", F_SIZE, offsetof(tg_limits, max_body_bytes), NULL, 0},
    {"max_header_size", F_SIZE, offsetof(tg_limits, max_header_bytes), NULL, 0},
    {"max_headers", F_COUNT, offsetof(tg_limits, max_headers), NULL, 0},
    {"max_connections", F_COUNT, offsetof(tg_limits, max_connections), NULL, 0},
    {"max_sessions", F_COUNT, offsetof(tg_limits, max_sessions), NULL, 0},
    {"header_timeout", F_DURATION, offsetof(tg_limits, header_timeout_ms), NULL, 0},
    {"body_timeout", F_DURATION, offsetof(tg_limits, body_timeout_ms), NULL, 0},
    {"idle_timeout", F_DURATION, offsetof(tg_limits, idle_timeout_ms), NULL, 0},
    {"session_idle_timeout", F_DURATION, offsetof(tg_limits, session_idle_ms), NULL, 0},
    {"sse_keepalive", F_DURATION, offsetof(tg_limits, hold_sse_keepalive_ms), NULL, 0},
};

static int read_limits(loader *L, const at *w, void *obj)
{
    tg_config *cfg = obj;
    return tg_cy_walk_map(L, w, limits_fields, sizeof limits_fields / sizeof limits_fields[0],
                    &cfg->limits, 0);
}

static const field top_fields[] = {
    {"listen", F_CUSTOM, 0, read_listen, 0},
    {"public_url", F_CUSTOM, 0, read_public_url, 0},
    {"mcp_path", F_CUSTOM, 0, read_mcp_path, 0},
    {"allowed_origins", F_CUSTOM, 0, read_origins, 0},
    {"allowed_hosts", F_CUSTOM, 0, read_hosts, 0},
    {"log_level", F_CUSTOM, 0, read_log_level, 0},
    {"server_name", F_STRING, offsetof(tg_config, server_name), NULL, 0},
    {"limits", F_CUSTOM, 0, read_limits, 0},
    {"upstreams", F_CUSTOM, 0, read_upstreams, 0},
    {"catalog", F_CUSTOM, 0, tg_cy_read_catalog, 0},
    {"policy", F_CUSTOM, 0, tg_cy_read_policy, 0},
    {"store", F_CUSTOM, 0, tg_cy_read_store, 0},
    {"audit", F_CUSTOM, 0, tg_cy_read_audit, 0},
    {"auth", F_CUSTOM, 0, tg_cy_read_auth, 0},
    {"admin", F_CUSTOM, 0, tg_cy_read_admin, 0},
    {"approvals", F_CUSTOM, 0, tg_cy_read_approvals, 0},
};

static void set_defaults(tg_config *cfg)
{
    cfg->listen_host = "127.0.0.1";
    cfg->listen_port = 8080;
    cfg->mcp_path = "/mcp";
    cfg->log_level = TG_LOG_INFO;
    cfg->server_name = "toolgate";
    cfg->limits = (tg_limits){
        .max_body_bytes = 4 * 1024 * 1024,
        .max_header_bytes = 16 * 1024,
        .max_headers = 64,
        .max_connections = 10000,
        .max_sessions = 10000,
        .header_timeout_ms = 10000,
        .body_timeout_ms = 30000,
        .idle_timeout_ms = 75000,
        .session_idle_ms = 3600000,
        .hold_sse_keepalive_ms = 15000,
    };
}

/* Defaults that depend on other keys: public_url from listen + mcp_path, the auth
 * audience and audit store from those (tg_cy_finish_runtime), and allowed_hosts = localhost, 127.0.0.1, [::1] and the host of public_url. */
static void derive_defaults(tg_arena *a, tg_config *cfg)
{
    if (!cfg->public_url) {
        bool v6 = strchr(cfg->listen_host, ':') != NULL;
        cfg->public_url = tg_arena_sprintf(a, "http://%s%s%s:%u%s", v6 ? "[" : "",
                                           cfg->listen_host, v6 ? "]" : "",
                                           (unsigned)cfg->listen_port, cfg->mcp_path);
    }
    tg_cy_finish_runtime(cfg);
    if (cfg->nallowed_hosts)
        return;
    const char *host = NULL, *why;
    const char **hosts = tg_arena_calloc(a, 5, sizeof *hosts);
    size_t n = 0;
    hosts[n++] = "localhost";
    hosts[n++] = "127.0.0.1";
    hosts[n++] = "[::1]";
    if (tg_config_check_http_url(cfg->public_url, 0, a, &host, &why) == 0) {
        bool dup = false;
        for (size_t i = 0; i < n; i++)
            dup = dup || strcasecmp(hosts[i], host) == 0;
        if (!dup)
            hosts[n++] = host;
    }
    cfg->allowed_hosts = hosts;
    cfg->nallowed_hosts = n;
}

/* Absolute directory of `file`, the base for relative paths in it. */
static char *config_dir(const char *file)
{
    const char *slash = strrchr(file, '/');
    char *dir = slash ? strndup(file, slash == file ? 1 : (size_t)(slash - file)) : strdup(".");
    char *abs = dir ? realpath(dir, NULL) : NULL;
    free(dir);
    return abs;
}

#define EMPTY_FILE "the file is empty; a configuration needs at least \"upstreams\""

/* Builds the YAML document. Syntax errors and duplicate keys come back from libfyaml's
 * collected diagnostics with their position. */
struct fy_document *tg_cy_parse_yaml(const char *file, FILE *fp, tg_error *err)
{
    struct fy_diag_cfg dc;
    fy_diag_cfg_default(&dc);
    dc.fp = NULL;
    dc.output_fn = NULL;
    dc.level = FYET_ERROR;
    struct fy_diag *diag = fy_diag_create(&dc);
    if (!diag) {
        tg_error_set(err, "%s: cannot create the YAML parser", file);
        return NULL;
    }
    fy_diag_set_collect_errors(diag, true);
    struct fy_parse_cfg pc = {
        .flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2 | FYPCF_JSON_NONE |
                 FYPCF_RESOLVE_DOCUMENT,
        .diag = diag,
    };
    struct fy_document *doc = fy_document_build_from_fp(&pc, fp);
    if (!doc) {
        void *it = NULL;
        struct fy_diag_error *e = fy_diag_errors_iterate(diag, &it);
        if (e)
            tg_error_set(err, "%s:%d:%d: %s", file, e->line, e->column, e->msg);
        else  /* libfyaml builds no document from an empty stream */
            tg_error_set(err, "%s:1:1: %s", file, EMPTY_FILE);
    }
    /* Turning collection off frees the collected errors (fy_diag_unref does not). */
    fy_diag_set_collect_errors(diag, false);
    fy_diag_unref(diag);
    return doc;
}

tg_config *tg_config_load(const char *path, tg_error *err)
{
    struct stat st;
    FILE *fp = fopen(path, "re");
    if (!fp) {
        tg_error_set(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        tg_error_set(err, "%s: not a regular file", path);
        return NULL;
    }
    struct fy_document *doc = tg_cy_parse_yaml(path, fp, err);
    fclose(fp);
    if (!doc)
        return NULL;
    char *dir = config_dir(path);
    if (!dir) {
        tg_error_set(err, "%s: cannot resolve its directory: %s", path, strerror(errno));
        fy_document_destroy(doc);
        return NULL;
    }

    tg_arena *arena = tg_arena_new(0);
    snapshot *s = tg_arena_calloc(arena, 1, sizeof *s);
    s->arena = arena;
    atomic_init(&s->refs, 1);
    tg_config *cfg = &s->cfg;
    loader L = {path, tg_arena_strdup(arena, dir), arena, tg_arena_new(0), err};
    free(dir);
    cfg->path = tg_arena_strdup(arena, path);
    set_defaults(cfg);

    int rc = tg_cy_runtime_defaults(&L, cfg);
    at root = {fy_document_root(doc), NULL, ""};
    if (rc == 0 && !root.node)
        rc = tg_cy_fail(&L, &root, EMPTY_FILE);
    else if (rc == 0)
        rc = tg_cy_walk_map(&L, &root, top_fields, sizeof top_fields / sizeof top_fields[0], cfg, 0);
    if (rc == 0 && cfg->nupstreams == 0)
        rc = tg_cy_missing(&L, &root, "upstreams", " (at least one MCP server to put behind toolgate)");
    if (rc == 0)
        rc = tg_cy_finish_policy(err, cfg);
    if (rc == 0)
        rc = tg_cy_finish_approvals(&L, &root, cfg);
    s->explicit_public_url = cfg->public_url != NULL;
    s->explicit_allowed_hosts = cfg->nallowed_hosts != 0;
    if (rc == 0)
        derive_defaults(L.a, cfg);

    tg_arena_free(L.tmp);
    fy_document_destroy(doc);
    if (rc < 0) {
        tg_arena_free(arena);
        return NULL;
    }
    return cfg;
}

tg_config *tg_config_ref(tg_config *cfg)
{
    snapshot *s = (snapshot *)cfg;
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return cfg;
}

void tg_config_unref(tg_config *cfg)
{
    if (!cfg)
        return;
    snapshot *s = (snapshot *)cfg;
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        tg_arena_free(s->arena);  /* s lives in the arena: nothing touches it after */
}

int tg_config_set_listen(tg_config *cfg, const char *listen, int port, tg_error *err)
{
    snapshot *s = (snapshot *)cfg;
    const char *why;
    if (atomic_load(&s->refs) != 1)
        return tg_error_set(err, "the configuration is already in use; cannot change listen");
    if (port > 65535)
        return tg_error_set(err, "--port: expected a number from 0 to 65535");
    if (listen && tg_config_parse_listen(listen, s->arena, &cfg->listen_host, &cfg->listen_port,
                                         &why) < 0)
        return tg_error_set(err, "--listen: %s, found \"%s\"", why, listen);
    if (port >= 0)
        cfg->listen_port = (uint16_t)port;
    if (!s->explicit_public_url)
        cfg->public_url = NULL;
    if (!s->explicit_allowed_hosts)
        cfg->nallowed_hosts = 0;
    derive_defaults(s->arena, cfg);
    return 0;
}

const tg_upstream_conf *tg_config_upstream(const tg_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nupstreams; i++)
        if (strcmp(cfg->upstreams[i].name, name) == 0)
            return &cfg->upstreams[i];
    return NULL;
}
