/*
 * tg_common.h — the small toolkit every toolgate module shares.
 *
 * What lives here, and nothing else:
 *   - tg_error:  errors as values. A function that can fail returns int (0 ok, -1 failed)
 *                and fills a caller-owned tg_error with a message a person can act on.
 *   - tg_arena:  bump allocator; one per request (or per evaluation), freed at its end.
 *   - tg_buf:    growable byte buffer for building output.
 *   - tg_log_*:  JSON-lines logging to stderr. Never pass secrets to it.
 *   - tg_json_*: strict JSON parsing on top of jansson (duplicate keys rejected,
 *                nesting depth bounded, integers exact int64) and JSON-RPC helpers.
 *   - tg_util:   random ids, constant-time comparison, monotonic/wall clocks, sha256.
 *
 * Invariants:
 *   - Nothing here keeps global mutable state except the log level, which is set once
 *     at start-up before the loop runs.
 *   - Memory handed out by an arena lives exactly as long as the arena.
 */
#ifndef TG_COMMON_H
#define TG_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define TG_VERSION "0.1.0"

/* ---------------------------------------------------------------- errors */

typedef struct tg_error {
    char msg[1024];
} tg_error;

/* Formats into err (if err is non-NULL) and returns -1, so callers can write
 * `return tg_error_set(err, "...")`. */
int tg_error_set(tg_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------- arena */

typedef struct tg_arena tg_arena;

/* chunk_size 0 picks a default (8 KiB). Allocations larger than a chunk get their
 * own block. Allocation failure aborts the process: toolgate treats OOM as fatal
 * rather than half-serving a request. */
tg_arena *tg_arena_new(size_t chunk_size);
void     *tg_arena_alloc(tg_arena *a, size_t size);          /* 16-byte aligned */
void     *tg_arena_calloc(tg_arena *a, size_t n, size_t size);
char     *tg_arena_strndup(tg_arena *a, const char *s, size_t n); /* NUL-terminated */
char     *tg_arena_strdup(tg_arena *a, const char *s);
char     *tg_arena_concat(tg_arena *a, const char *x, const char *y);  /* x then y */
char     *tg_arena_sprintf(tg_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void      tg_arena_reset(tg_arena *a);  /* frees all but the first chunk */
void      tg_arena_free(tg_arena *a);
size_t    tg_arena_used(const tg_arena *a);

/* ---------------------------------------------------------------- buffer */

typedef struct tg_buf {
    char  *data;  /* always NUL-terminated when len > 0 or after any append */
    size_t len;
    size_t cap;
    bool   lent;  /* data is the caller's storage (tg_buf_use): never freed nor realloc'd
                     here; outgrowing it moves the bytes to the heap, lent becomes false */
} tg_buf;

#define TG_BUF_INIT {NULL, 0, 0, false}

/* Starts b empty on storage the caller owns (typically an array on the stack), so a
 * short-lived buffer that stays small costs no allocation. tg_buf_free is still due:
 * the bytes may have moved to the heap. Never copy such a buffer by value. */
void tg_buf_use(tg_buf *b, char *mem, size_t cap);

void tg_buf_append(tg_buf *b, const void *p, size_t n);   /* aborts on OOM */
void tg_buf_appends(tg_buf *b, const char *s);
void tg_buf_printf(tg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tg_buf_vprintf(tg_buf *b, const char *fmt, va_list ap);
void tg_buf_json_string(tg_buf *b, const char *s, size_t n); /* appends "..." escaped */
void tg_buf_append_i64(tg_buf *b, int64_t v);  /* decimal, as printf's %lld without printf */
void tg_buf_consume(tg_buf *b, size_t n);  /* drop n bytes from the front */
void tg_buf_reset(tg_buf *b);              /* len = 0, keeps memory */
void tg_buf_reserve(tg_buf *b, size_t extra); /* room for extra more bytes (and the NUL) */
void tg_buf_free(tg_buf *b);
char *tg_buf_steal(tg_buf *b);             /* caller frees; b becomes empty */

/* ---------------------------------------------------------------- logging */

typedef enum { TG_LOG_DEBUG = 0, TG_LOG_INFO, TG_LOG_WARN, TG_LOG_ERROR } tg_log_level;

void tg_log_set_level(tg_log_level lvl);
int  tg_log_parse_level(const char *s, tg_log_level *out);  /* "debug".."error" */
int  tg_log_enabled(tg_log_level lvl);

/* One JSON object per line on stderr:
 *   {"ts":"2026-11-22T10:00:00.123Z","level":"info","component":"front","msg":"..."}
 * `component` names the module ("front", "upstream:jira", ...). */
void tg_log(tg_log_level lvl, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void tg_logv(tg_log_level lvl, const char *component, const char *fmt, va_list ap);

#define tg_log_debug(c, ...) do { if (tg_log_enabled(TG_LOG_DEBUG)) tg_log(TG_LOG_DEBUG, c, __VA_ARGS__); } while (0)
/* The level is checked before the arguments are evaluated: a decision's log line joins
 * its reasons and policies, work wasted on every call when info is off. */
#define tg_log_info(c, ...)  do { if (tg_log_enabled(TG_LOG_INFO)) tg_log(TG_LOG_INFO, c, __VA_ARGS__); } while (0)
#define tg_log_warn(c, ...)  do { if (tg_log_enabled(TG_LOG_WARN)) tg_log(TG_LOG_WARN, c, __VA_ARGS__); } while (0)
#define tg_log_error(c, ...) tg_log(TG_LOG_ERROR, c, __VA_ARGS__)

/* ---------------------------------------------------------------- JSON */

/* Default nesting limit for anything a client or upstream sends. */
#define TG_JSON_MAX_DEPTH 64

/* Parses exactly one JSON value from buf[0..len). Rejects: duplicate object keys,
 * nesting deeper than max_depth, integers outside int64, NUL in strings, trailing
 * garbage. On failure returns NULL and writes "line L column C: reason" to err. */
json_t *tg_json_parse(const char *buf, size_t len, int max_depth, tg_error *err);

/* Serialises compactly (no spaces), preserving key order. Caller frees with free(). */
char *tg_json_dump(const json_t *v, size_t *len_out);
void  tg_json_dump_buf(const json_t *v, tg_buf *out);

/* JSON-RPC 2.0 error codes toolgate uses. */
#define TG_RPC_PARSE_ERROR      (-32700)
#define TG_RPC_INVALID_REQUEST  (-32600)
#define TG_RPC_METHOD_NOT_FOUND (-32601)
#define TG_RPC_INVALID_PARAMS   (-32602)
#define TG_RPC_INTERNAL_ERROR   (-32603)
#define TG_RPC_SERVER_ERROR     (-32000)
#define TG_RPC_SESSION_NOT_FOUND (-32001)

typedef enum {
    TG_RPC_KIND_INVALID = 0,
    TG_RPC_KIND_REQUEST,       /* has method and id */
    TG_RPC_KIND_NOTIFICATION,  /* has method, no id */
    TG_RPC_KIND_RESPONSE,      /* has id and exactly one of result / error */
} tg_rpc_kind;

/* Classifies a parsed message and validates the JSON-RPC 2.0 envelope:
 * "jsonrpc":"2.0"; id is a string or an integer (never null, never a real);
 * method is a string; params (if present) is an object or array; a response has
 * exactly one of result/error. On TG_RPC_KIND_INVALID, err says why. */
tg_rpc_kind tg_rpc_classify(const json_t *msg, tg_error *err);

/* Builds {"jsonrpc":"2.0","id":id,"error":{"code":code,"message":message[,"data":data]}}.
 * id may be NULL (→ JSON null, for parse errors). Steals nothing; returns a new ref. */
json_t *tg_rpc_error(const json_t *id, int code, const char *message, json_t *data_steal);

/* ---------------------------------------------------------------- JSON scanner */

/* tg_jscan (json_scan.c): validates exactly what tg_json_parse accepts, in one pass and
 * without building values, and records where every value lies so the hot path can look
 * members up and forward the original bytes with a few spans replaced (tg_jsplice).
 *
 * Tokens are stored in document order in a flat array: a container is followed by its
 * children (an object's as key, value, key, value ...); `next` is the index just past a
 * value's subtree, so siblings are reached by skipping. Token 0 is the root. Indices are
 * ints; -1 means "absent" and every lookup accepts -1. */
typedef enum {
    TG_JT_NONE = 0, TG_JT_OBJECT, TG_JT_ARRAY, TG_JT_STRING, TG_JT_INTEGER, TG_JT_REAL,
    TG_JT_TRUE, TG_JT_FALSE, TG_JT_NULL,
} tg_jtype;

typedef struct tg_jtok {
    size_t start, end;   /* the value's bytes [start, end); a string's include its quotes */
    uint32_t next;       /* index of the first token after this value's subtree */
    uint32_t size;       /* object: members; array: elements */
    uint8_t type;        /* tg_jtype */
    uint8_t escaped;     /* string: holds a backslash escape (raw bytes != decoded) */
} tg_jtok;

/* Reusable: a tg_jdoc keeps its arrays between scans, so scanning allocates nothing in
 * steady state. It borrows the scanned buffer, which must outlive the lookups. */
typedef struct tg_jdoc {
    const char *buf;
    size_t len;
    tg_jtok *toks;
    size_t ntoks, cap;
    struct tg_jkey *keys;  /* scratch: keys of the objects being scanned */
    size_t nkeys, kcap;
} tg_jdoc;

#define TG_JDOC_INIT {0}

/* A value inside a scanned document: what the hot path passes where it would otherwise
 * build a jansson tree (a call's arguments, from the router through catalog, policy and
 * audit). Absent when d is NULL or tok is -1. */
typedef struct tg_jref {
    const tg_jdoc *d;
    int tok;
} tg_jref;

/* 0 and tokens in d, or -1 with err "line L column C: reason" (d then holds no tokens).
 * max_depth <= 0 means TG_JSON_MAX_DEPTH. */
int  tg_jscan(tg_jdoc *d, const char *buf, size_t len, int max_depth, tg_error *err);
/* The end of a run of bytes that a JSON string holds as they are, from i: the index of the
 * first byte below 0x20, of 0x80 or above, '"' or '\\' (and DEL with stop_del), or n.
 * Sixteen bytes per step where SSE2 is there: the scanner and the audit record's escaping
 * spend most of their time in such runs. */
size_t tg_json_plain_end(const unsigned char *p, size_t i, size_t n, bool stop_del);
void tg_jdoc_free(tg_jdoc *d);

/* Member value of an object token by key, or -1. */
int  tg_jscan_get(const tg_jdoc *d, int obj, const char *key);
/* Nested members by a dotted path of keys ("params._meta.progressToken"), or -1. */
int  tg_jscan_path(const tg_jdoc *d, int from, const char *path);
/* Is tok a string whose decoded value is s? */
bool tg_jscan_streq(const tg_jdoc *d, int tok, const char *s);
/* Integer token value: 0, or -1 when tok is not an integer. */
int  tg_jscan_int(const tg_jdoc *d, int tok, int64_t *out);
/* Decoded string (malloc'd, NUL-terminated; *len may be NULL), or NULL if not a string. */
char *tg_jscan_strdup(const tg_jdoc *d, int tok, size_t *len);
/* Decodes the raw body of a validated string (between the quotes) into out (n bytes
 * suffice: decoding never lengthens). Returns the decoded length. */
size_t tg_jscan_decode(const char *raw, size_t n, char *out);
/* Appends the value as tg_json_dump would write it for integers and strings (a canonical
 * key: "-0" → 0, escapes normalised); other values verbatim. */
void tg_jscan_canon(const tg_jdoc *d, int tok, tg_buf *out);
/* The value as a jansson value (new ref), for the rare message that needs a DOM. */
json_t *tg_jscan_json(const tg_jdoc *d, int tok);
/* A real token's value, as jansson reads it. */
double tg_jscan_real(const tg_jdoc *d, int tok);
/* A string token decoded and NUL-terminated: into small when it fits in cap bytes, else
 * malloc'd (free it when the result is not small). *n gets the decoded length. */
char *tg_jscan_text(const tg_jdoc *d, int tok, char *small, size_t cap, size_t *n);
/* A string token decoded into the arena (NUL-terminated), or NULL if tok is not a string. */
char *tg_jscan_str_arena(const tg_jdoc *d, int tok, tg_arena *a, size_t *len);
/* RFC 6901: the value ptr ("/a/0/b~1c") names from `from`, or -1 (missing, a bad escape or
 * index, a step longer than TG_JSCAN_POINTER_STEP bytes, or ptr neither "" nor starting
 * with '/'). "" is `from` itself. */
#define TG_JSCAN_POINTER_STEP 256
int  tg_jscan_pointer(const tg_jdoc *d, int from, const char *ptr);
/* out becomes a document of tok's subtree alone (its token 0), over buf, a copy of d's
 * bytes from offset base on (so a token's bytes sit at start - base). out owns its tokens
 * (tg_jdoc_free); -1 (out empty) when tok is -1. */
int  tg_jdoc_subtree(tg_jdoc *out, const tg_jdoc *d, int tok, const char *buf, size_t base);
/* v as a scanned value, for callers holding a jansson value where tokens are wanted
 * (tests, the CLI, records read back): h's document scans v's compact text, which h
 * holds too (tg_jdoc_json_free). Absent, with nothing scanned, when v is NULL. v must be
 * what tg_json_parse can make (no NUL in a string): anything else aborts. */
typedef struct tg_jdoc_json {
    tg_jdoc doc;
    char *text;
} tg_jdoc_json;

#define TG_JDOC_JSON_INIT {TG_JDOC_INIT, NULL}

tg_jref tg_jdoc_of_json(tg_jdoc_json *h, const json_t *v);
void tg_jdoc_json_free(tg_jdoc_json *h);
/* tg_rpc_classify on a scanned message: same rules, same messages. */
tg_rpc_kind tg_jscan_classify(const tg_jdoc *d, int msg, tg_error *err);

/* One replacement: bytes [start, end) of the input become text[0..len). */
typedef struct tg_jsplice {
    size_t start, end;
    const char *text;
    size_t len;
} tg_jsplice;

/* Appends buf[start, end) to out with the edits applied. Edits must lie inside the range
 * and not overlap; they are sorted here. */
void tg_jsplice_build(tg_buf *out, const char *buf, size_t start, size_t end, tg_jsplice *edits,
                      size_t n);

/* ---------------------------------------------------------------- utilities */

/* Fills out with n cryptographically random bytes (getrandom); aborts on failure. */
void tg_random_bytes(void *out, size_t n);
/* Writes a random id of `nbytes` random bytes as lowercase hex into out (2*nbytes+1). */
void tg_random_hex(char *out, size_t nbytes);

/* SipHash-2-4 of data under a 16-byte key: a keyed hash for tables whose keys an outsider
 * chooses (a JSON-RPC id, a URI), which cannot then be made to collide without the key. */
uint64_t tg_siphash(const unsigned char key[16], const void *data, size_t n);

/* Copies src into out (outlen > 0), cut to fit: snprintf's "%s" without its formatter,
 * for copies on the request path. */
void tg_copy_text(char *out, size_t outlen, const char *src);

/* Constant-time equality for secrets: time depends only on the lengths. */
int tg_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

uint64_t tg_now_ms(void);       /* monotonic milliseconds */
uint64_t tg_now_ns(void);       /* monotonic nanoseconds */
int64_t  tg_wall_ms(void);      /* Unix epoch milliseconds */
/* Formats epoch ms as RFC 3339 UTC with milliseconds into out (at least 25 bytes). */
void tg_format_time(int64_t epoch_ms, char out[32]);
/* What "%" PRId64 writes, NUL-terminated, without printf's machinery; returns the length. */
size_t tg_i64_dec(int64_t v, char out[21]);

/* base64url without padding (RFC 4648 §5). encode writes at most 4*ceil(n/3) chars + NUL
 * into out and returns the length. decode needs room for len*3/4 bytes; it refuses padding,
 * other alphabets and non-zero unused bits (one spelling per byte string): -1. */
size_t tg_b64url_encode(const void *in, size_t n, char *out);
int    tg_b64url_decode(const char *in, size_t len, unsigned char *out, size_t *outlen);

/* SHA-256 of a followed by b (b may be NULL, bn 0), raw. */
void tg_sha256(const void *a, size_t an, const void *b, size_t bn, unsigned char out[32]);
/* SHA-256 of data as 64 lowercase hex chars + NUL. */
void tg_sha256_hex(const void *data, size_t n, char out[65]);
/* The same over a followed by b, without copying them together (b may be NULL, bn 0). */
void tg_sha256_hex2(const void *a, size_t an, const void *b, size_t bn, char out[65]);

/* Case-insensitive ASCII comparison of a counted string with a C string; the _n form
 * takes b's length too (a loop over many candidates measures b once). */
int tg_strcaseeq(const char *a, size_t alen, const char *b);
int tg_strcaseeq_n(const char *a, size_t alen, const char *b, size_t blen);

#endif /* TG_COMMON_H */
