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
char     *tg_arena_sprintf(tg_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void      tg_arena_reset(tg_arena *a);  /* frees all but the first chunk */
void      tg_arena_free(tg_arena *a);
size_t    tg_arena_used(const tg_arena *a);

/* ---------------------------------------------------------------- buffer */

typedef struct tg_buf {
    char  *data;  /* always NUL-terminated when len > 0 or after any append */
    size_t len;
    size_t cap;
} tg_buf;

#define TG_BUF_INIT {NULL, 0, 0}

void tg_buf_append(tg_buf *b, const void *p, size_t n);   /* aborts on OOM */
void tg_buf_appends(tg_buf *b, const char *s);
void tg_buf_printf(tg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tg_buf_vprintf(tg_buf *b, const char *fmt, va_list ap);
void tg_buf_json_string(tg_buf *b, const char *s, size_t n); /* appends "..." escaped */
void tg_buf_consume(tg_buf *b, size_t n);  /* drop n bytes from the front */
void tg_buf_reset(tg_buf *b);              /* len = 0, keeps memory */
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
#define tg_log_info(c, ...)  tg_log(TG_LOG_INFO, c, __VA_ARGS__)
#define tg_log_warn(c, ...)  tg_log(TG_LOG_WARN, c, __VA_ARGS__)
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

/* ---------------------------------------------------------------- utilities */

/* Fills out with n cryptographically random bytes (getrandom); aborts on failure. */
void tg_random_bytes(void *out, size_t n);
/* Writes a random id of `nbytes` random bytes as lowercase hex into out (2*nbytes+1). */
void tg_random_hex(char *out, size_t nbytes);

/* Constant-time equality for secrets: time depends only on the lengths. */
int tg_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

uint64_t tg_now_ms(void);       /* monotonic milliseconds */
uint64_t tg_now_ns(void);       /* monotonic nanoseconds */
int64_t  tg_wall_ms(void);      /* Unix epoch milliseconds */
/* Formats epoch ms as RFC 3339 UTC with milliseconds into out (at least 25 bytes). */
void tg_format_time(int64_t epoch_ms, char out[32]);

/* SHA-256 of data as 64 lowercase hex chars + NUL. */
void tg_sha256_hex(const void *data, size_t n, char out[65]);

/* Case-insensitive ASCII comparison of a counted string with a C string. */
int tg_strcaseeq(const char *a, size_t alen, const char *b);

#endif /* TG_COMMON_H */
