/*
 * tg_store.h — the store: one interface, two backends (SQLite embedded, PostgreSQL shared).
 *
 * The store holds the audit chain (records + signed checkpoints), API keys, approvals and
 * grants. It knows nothing about hashing or signing: the audit module computes every chain
 * field and hands finished rows here.
 *
 * Two kinds of access:
 *   - Asynchronous appends for the audit path (tg_store_append_*): called on the loop
 *     thread, completed on the loop thread once the row is durable. SQLite: one writer
 *     thread draining the queue into one transaction (group commit), fsync'd (WAL,
 *     synchronous=FULL). PostgreSQL: libpq non-blocking on the loop, pipeline mode, one
 *     Sync (= one implicit transaction) per batch, reconnect with backoff.
 *   - Synchronous calls (reads for the CLI, prune, the small CRUD for keys / approvals /
 *     grants). They will move to the asynchronous path when issues 4 and 7 land; for now
 *     they are used at start-up and by the CLI. With PostgreSQL they use a second,
 *     blocking connection.
 *
 * Invariants the audit chain relies on:
 *   - Appends complete in the order they were made.
 *   - After any failed append the store is "poisoned": every later append fails until a
 *     tg_store_head_async() has completed, so a caller that hashed records against a
 *     head that never became durable re-reads the real head before continuing. Nothing
 *     is ever written out of order or on top of a failed record.
 *   - The queue is bounded: when it is full, or the backend is down, appends fail at once
 *     with an error value (the gateway fails closed rather than dropping records).
 */
#ifndef TG_STORE_H
#define TG_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "common/tg_common.h"

typedef struct tg_store tg_store;

typedef enum { TG_STORE_SQLITE = 1, TG_STORE_POSTGRES = 2 } tg_store_kind;

/* Options a configuration fills in (YAML keys in docs/audit.md). Zero means default. */
typedef struct tg_store_options {
    const char *url;        /* "sqlite:PATH", "postgres://…", "postgresql://…", "host=… dbname=…" */
    size_t queue_max;       /* appends pending at most (default 10000) */
    size_t batch_max;       /* rows per transaction at most (default 512) */
} tg_store_options;

/* Opens the store and applies the schema migrations. loop may be NULL for synchronous
 * use only (the CLI): appends then fail. With PostgreSQL and a loop, the asynchronous
 * connection is started in the background; the first appends fail until it is up
 * (tg_store_ready). */
tg_store *tg_store_open(uv_loop_t *loop, const char *url, tg_error *err);
tg_store *tg_store_open_opts(uv_loop_t *loop, const tg_store_options *opts, tg_error *err);

/* Fails every pending append (callbacks run with an error), stops the writer, closes
 * the handles. The memory is freed once libuv has closed the handles, so keep running
 * the loop until it has no more active handles. Safe with loop == NULL. */
void tg_store_close(tg_store *s);

/* Group commit for appends nobody waits on (TG_STORE_LAZY: the batched audit mode, and
 * the strict mode's outcome records with `outcome: async`): once a lazy append is queued,
 * the SQLite writer waits up to ms (or until batch_max appends are queued) before it
 * commits, so the records of the next calls share one transaction and one fsync instead
 * of costing one each. An append without the flag ends the wait at once: it is committed
 * together with every lazy one queued before it, so somebody waiting never waits for the
 * delay, and a lazy record is durable no later than the next record somebody waits for.
 * Appends stay in order; a crash can lose at most the lazy appends the delay held back.
 * 0 (the default): commit at once. PostgreSQL pipelines its appends instead and ignores
 * both. */
void tg_store_set_commit_delay(tg_store *s, unsigned ms);

tg_store_kind tg_store_backend(const tg_store *s);
/* 1 when appends can be accepted now (PostgreSQL connected, not poisoned). */
int tg_store_ready(const tg_store *s);
/* Current schema version (the number of migrations applied). */
int tg_store_schema_version(tg_store *s, tg_error *err);

/* ------------------------------------------------------------------ audit rows */

/* One audit record as stored. body is the canonical JSON of the (redacted) record; the
 * other columns are derived from it for querying (verify checks they still match). */
typedef struct tg_store_audit_row {
    const char *instance;
    int64_t     seq;            /* 1, 2, 3 … per instance */
    int64_t     ts_ms;          /* record time, Unix ms */
    const char *delegator, *agent, *tool, *decision, *ticket, *approval_id;  /* may be NULL */
    const char *resource;       /* Cedar UID text, e.g. Jira::Issue::"OPS-12"; may be NULL */
    const char *resource_path;  /* "\n" + resource + "\n" + parent + "\n" … (for parent match) */
    const char *reasons;        /* "\n" + code + "\n" + code + "\n" … */
    const char *body;
    const char *prev_hash;      /* 64 hex */
    const char *hash;           /* 64 hex */
} tg_store_audit_row;

/* A signed checkpoint. kind "checkpoint" covers (seq, hash of record seq); kind "prune"
 * notes that records up to seq were deleted. body is the signed canonical JSON. */
typedef struct tg_store_checkpoint_row {
    const char *instance;
    const char *kind;           /* "checkpoint" | "prune" */
    int64_t     seq;
    int64_t     ts_ms;
    const char *body;
    const char *key_id;
    const char *signature;      /* base64 */
} tg_store_checkpoint_row;

/* status 0: durable. status -1: not stored; errmsg says why (valid during the call). */
typedef void (*tg_store_done_cb)(void *ud, int status, const char *errmsg);
/* status 0: seq/hash are the last stored record of the instance (0 and 64 '0' when none). */
typedef void (*tg_store_head_cb)(void *ud, int status, int64_t seq, const char *hash,
                                 const char *errmsg);

/* tg_store_append_audit flags. */
#define TG_STORE_LAZY 1u /* nobody waits for this append: it may wait for the commit delay */

/* Queue an append. The row is copied. Returns 0 when queued (cb will run exactly once,
 * on the loop thread, never from inside this call), -1 with err filled when refused
 * (queue full, backend down, store poisoned, no loop): then cb never runs. */
int tg_store_append_audit(tg_store *s, const tg_store_audit_row *row, unsigned flags,
                          tg_store_done_cb cb, void *ud, tg_error *err);
int tg_store_append_checkpoint(tg_store *s, const tg_store_checkpoint_row *row,
                               tg_store_done_cb cb, void *ud, tg_error *err);
/* Reads the chain head of instance after every earlier append has completed, and
 * clears the poisoned state when it succeeds. Same return contract as the appends. */
int tg_store_head_async(tg_store *s, const char *instance, tg_store_head_cb cb, void *ud,
                        tg_error *err);
/* Appends accepted and not yet completed. */
size_t tg_store_pending(const tg_store *s);
/* Transactions that committed appends so far (appends / commits = the group-commit factor). */
uint64_t tg_store_commits(const tg_store *s);

/* ------------------------------------------------------------------ synchronous reads */

/* Last stored record of instance: seq 0 and 64 '0' hex when there is none. */
int tg_store_head(tg_store *s, const char *instance, int64_t *seq, char hash[65], tg_error *err);

/* Filters for tg_store_audit_scan; NULL / 0 fields do not filter. */
typedef struct tg_store_audit_filter {
    const char *instance;
    int64_t seq_from, seq_to;     /* seq_from <= seq <= seq_to; 0 = unbounded */
    int64_t since_ms, until_ms;   /* since <= ts < until; 0 = unbounded */
    const char *delegator, *agent, *tool, *decision, *ticket, *approval_id;
    const char *resource;         /* the resource itself or any of its parents */
    const char *reason;           /* one of the reason codes */
} tg_store_audit_filter;

/* Row callbacks return 0 to continue, non-zero to stop the scan (the scan returns 0). */
typedef int (*tg_store_audit_row_cb)(void *ud, const tg_store_audit_row *row);
typedef int (*tg_store_checkpoint_row_cb)(void *ud, const tg_store_checkpoint_row *row);

/* Rows ordered by (instance, seq). */
int tg_store_audit_scan(tg_store *s, const tg_store_audit_filter *f,
                        tg_store_audit_row_cb cb, void *ud, tg_error *err);
/* Checkpoints (all instances when instance is NULL) ordered by (instance, seq, id). */
int tg_store_checkpoint_scan(tg_store *s, const char *instance,
                             tg_store_checkpoint_row_cb cb, void *ud, tg_error *err);

/* One transaction: stores the prune checkpoint, deletes the records of its instance with
 * seq <= through_seq and the checkpoints (of either kind) it supersedes. *deleted gets
 * the number of records deleted. */
int tg_store_audit_prune(tg_store *s, const tg_store_checkpoint_row *prune_cp,
                         int64_t through_seq, int64_t *deleted, tg_error *err);

/* Last seq of instance with ts_ms < before_ms (0 when none). */
int tg_store_audit_last_before(tg_store *s, const char *instance, int64_t before_ms,
                               int64_t *seq, tg_error *err);

/* Instances present in the audit tables (records or checkpoints), sorted; returns a JSON
 * array of strings, or NULL on error. */
json_t *tg_store_audit_instances(tg_store *s, tg_error *err);

/* ------------------------------------------------------------------ small CRUD */

/* API keys (issue 4), approvals and grants (issue 7). Rows are JSON objects whose keys
 * are column names (checked against the table's schema; unknown columns are an error)
 * and whose values are strings, integers or null. Every table has the text primary key
 * "id". Synchronous for now. */
typedef enum {
    TG_STORE_API_KEYS = 0,
    TG_STORE_APPROVALS,
    TG_STORE_GRANTS,
} tg_store_table;

int     tg_store_row_insert(tg_store *s, tg_store_table t, const json_t *row, tg_error *err);
/* NULL with err->msg[0] == '\0' when there is no such row; NULL with a message on error. */
json_t *tg_store_row_get(tg_store *s, tg_store_table t, const char *id, tg_error *err);
/* Rows where column == value (all rows when column is NULL), ordered by id. */
json_t *tg_store_row_list(tg_store *s, tg_store_table t, const char *column,
                          const json_t *value, tg_error *err);
/* Sets the columns of `set` on row id, only if expect_column currently equals
 * expect_value (compare-and-set; pass NULL for no condition). Returns 1 updated, 0 no
 * such row or condition false, -1 error. */
int     tg_store_row_update(tg_store *s, tg_store_table t, const char *id, const json_t *set,
                            const char *expect_column, const json_t *expect_value,
                            tg_error *err);
/* Returns 1 deleted, 0 no such row, -1 error. */
int     tg_store_row_delete(tg_store *s, tg_store_table t, const char *id, tg_error *err);

#endif /* TG_STORE_H */
