/*
 * store_int.h — private to src/store: the store object, the queued append operation and
 * the small vtable each backend (store_sqlite.c, store_pg.c) implements. store.c holds
 * everything written once for both: URL dispatch, migrations, the synchronous reads and
 * the CRUD, all expressed as SQL with "?" placeholders run through backend->exec.
 */
#ifndef TG_STORE_INT_H
#define TG_STORE_INT_H

#include "store/tg_store.h"

/* A bound parameter of a synchronous statement. */
typedef struct store_param {
    enum { SP_NULL, SP_TEXT, SP_INT } type;
    const char *s;
    int64_t     i;
} store_param;

/* Row callback of backend->exec: values are text (NULL for SQL NULL), valid during the
 * call. Returns 0 to continue, non-zero to stop reading rows. */
typedef int (*store_row_fn)(void *ud, int ncols, const char *const *vals);

typedef enum { OP_AUDIT, OP_CHECKPOINT, OP_HEAD } store_op_kind;

/* One queued append. Every string the rows point to is copied right after the op, in the
 * op's own allocation (op_packed in store.c). Ownership: created on the loop thread, owned
 * by the backend's queue until completed, then completed on the loop thread by
 * store_op_complete, which keeps it as a spare for the next append or frees it. */
typedef struct store_op {
    struct store_op *next;
    size_t cap;                       /* bytes after the op for its strings (op_packed) */
    store_op_kind kind;
    int lazy;                         /* TG_STORE_LAZY: may wait for the commit delay */
    tg_store_audit_row audit;
    tg_store_checkpoint_row cp;       /* for OP_HEAD only cp.instance is set */
    tg_store_done_cb done;
    tg_store_head_cb head_cb;
    void *ud;
    /* result, filled by the backend */
    int status;
    char errmsg[512];
    int64_t head_seq;
    char head_hash[65];
} store_op;

typedef struct store_backend {
    /* Runs one statement synchronously on the caller's connection. sql uses "?"
     * placeholders. *changes (if non-NULL) gets the number of rows changed. */
    int (*exec)(tg_store *s, const char *sql, const store_param *p, size_t n,
                store_row_fn cb, void *ud, int64_t *changes, tg_error *err);
    /* Runs several ;-separated statements without parameters (migrations). */
    int (*exec_script)(tg_store *s, const char *sql, tg_error *err);
    /* Statement that starts a transaction serialised against other writers. */
    const char *begin_exclusive;
    /* Hands a queued op to the backend (loop thread). 0 queued, -1 refused. */
    int (*submit)(tg_store *s, store_op *op, tg_error *err);
    int (*ready)(const tg_store *s);
    /* Stops the asynchronous machinery, completes outstanding ops with an error and
     * eventually calls store_free. */
    void (*close)(tg_store *s);
} store_backend;

struct tg_store {
    tg_store_kind kind;
    const store_backend *be;
    uv_loop_t *loop;          /* NULL: synchronous use only */
    size_t queue_max, batch_max;
    unsigned commit_delay_ms; /* tg_store_set_commit_delay (atomic: read by the writer) */
    size_t pending;           /* ops submitted and not yet completed (loop thread only) */
    store_op *spare;          /* completed ops kept for reuse, n_spare of them, each with
                               * cap == STORE_OP_CAP (loop thread only; see op_packed) */
    size_t n_spare;
    uint64_t commits;         /* append transactions committed (atomic: the SQLite writer
                               * thread increments it) */
    void *impl;               /* backend state */
};

/* Runs the op's callback with its result and frees it (loop thread). */
void store_op_complete(tg_store *s, store_op *op);
void store_op_fail(store_op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Frees the store object itself (the backend has already freed impl). */
void store_free(tg_store *s);

/* Shared text of the schema, used by both backends' migration lists. */
#define STORE_ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"
extern const char *const store_sql_insert_audit;       /* 15 parameters, row order */
extern const char *const store_sql_insert_checkpoint;  /* 7 parameters */
extern const char *const store_sql_head;               /* 1 parameter: instance */
/* Fills the parameters of the two inserts from a row (p has room for 15 / 7). */
void store_audit_params(const tg_store_audit_row *r, store_param p[15]);
void store_checkpoint_params(const tg_store_checkpoint_row *r, store_param p[7]);

extern const char *const store_sqlite_migrations[];
extern const size_t store_sqlite_n_migrations;
extern const char *const store_pg_migrations[];
extern const size_t store_pg_n_migrations;

tg_store *store_sqlite_open(uv_loop_t *loop, const char *path, const tg_store_options *o,
                            tg_error *err);
tg_store *store_pg_open(uv_loop_t *loop, const char *conninfo, const tg_store_options *o,
                        tg_error *err);
/* Applies pending migrations (both backends call it from their open). */
int store_migrate(tg_store *s, tg_error *err);

/* sqlite_walbuf.c: the name of the VFS that gathers the writer's and checkpointer's small
 * file calls into large ones (NULL if it could not be registered: use SQLite's default). */
const char *store_walbuf_vfs(void);
/* sqlite3_wal_checkpoint_v2 with the WAL read ahead (only inside this call). */
struct sqlite3;
int store_walbuf_checkpoint(struct sqlite3 *db, const char *name, int mode, int *log, int *copied);
/* What the VFS handed to the real files so far, all connections on it (tests, docs):
 * writes of WAL bytes and of database bytes, database pages SQLite wrote, reads of WAL
 * bytes. */
typedef struct store_walbuf_counts {
    uint64_t wal_writes, db_writes, db_pages, wal_reads;
} store_walbuf_counts;
void store_walbuf_counts_get(store_walbuf_counts *out);

#endif /* TG_STORE_INT_H */
