/*
 * store_sqlite.c — the embedded SQLite backend.
 *
 * Three connections, one per thread (SQLite connections are not shared across threads):
 *   - `rdb`, used synchronously by the thread that opened the store (the loop thread or
 *     the CLI): migrations, reads, prune, CRUD;
 *   - `wdb`, used only by the writer thread, which drains the append queue into one
 *     transaction per batch (group commit) and commits it with WAL + synchronous=FULL, so
 *     a completed append has been fsync'd. Completed ops go back to the loop through a
 *     uv_async_t and their callbacks run there. wdb and cdb run on the VFS of
 *     sqlite_walbuf.c, which writes a commit's WAL frames in one call instead of two per
 *     frame, and makes a checkpoint's copy a few large reads and writes instead of a
 *     pread and a pwrite per page.
 *   - `cdb`, used only by the checkpointer thread, which copies the WAL into the database
 *     file. SQLite does this by default inside the commit that crosses 1000 WAL pages, on
 *     the writer thread: a burst of several milliseconds of CPU (a few MB copied, the
 *     database fsync'd) that, on a small machine, kept the calls being served off the CPU
 *     and was half of the batched mode's p99 (docs/performance.md). The checkpointer runs
 *     at the lowest CPU class (SCHED_IDLE), so any thread serving calls preempts it.
 *     SQLite starts the WAL over only once a checkpoint has copied every frame, which a
 *     checkpoint beside a writer that keeps committing never does; so once the
 *     checkpointer has copied what it saw, the writer copies the few frames committed
 *     since (after its next commit), and its next transaction starts the WAL over. If the
 *     checkpointer ever falls far behind (a machine busy without pause), the writer
 *     checkpoints everything itself once the WAL passes WAL_BACKSTOP_PAGES: the WAL stays
 *     bounded either way. A commit of rdb (the loop thread's keys and approvals) only
 *     wakes the checkpointer: the thread serving the calls never copies the WAL.
 * The connections meet only in the database file; busy_timeout covers the short moments
 * where the CLI (prune) and the writer both want the write lock.
 */
#include "store/store_int.h"

#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define BUSY_TIMEOUT_MS 10000
#define SQ_CACHE_SIZE 16
#define WAL_CHECKPOINT_PAGES 1000  /* SQLite's own default threshold */
#define WAL_BACKSTOP_PAGES 16384   /* 64 MB of 4 KiB pages: the writer checkpoints itself */

typedef struct sq_impl {
    sqlite3 *rdb;
    sqlite3 *wdb;              /* writer thread only */
    /* Queue shared by the loop thread (producer) and the writer (consumer), under mu:
     * queue_head..queue_tail in submission order; done_* are completed ops waiting for
     * the loop. `stop` makes the writer fail what is left and exit. */
    uv_mutex_t mu;
    uv_cond_t cond;
    store_op *queue_head, *queue_tail;
    store_op *done_head, *done_tail;
    int stop;
    /* queued: ops in queue_head..tail; urgent: how many of them are not lazy (somebody
     * waits: the writer must not linger). lingering: the writer is holding a batch open
     * for the commit delay, so a lazy submit wakes it only once the batch is full. */
    size_t queued, urgent;
    int lingering;
    uv_thread_t thread;
    uv_async_t async;
    int have_thread;
    /* The checkpointer; ckpt is under mu: IDLE → WANTED (the writer's WAL hook, once the
     * WAL has WAL_CHECKPOINT_PAGES) → RUNNING → CAUGHT_UP (it copied every frame it saw;
     * the writer copies the rest after its next commit) or IDLE (it did not). */
    sqlite3 *cdb;
    uv_cond_t ckpt_cond;
    uv_thread_t ckpt_thread;
    enum { CKPT_IDLE, CKPT_WANTED, CKPT_RUNNING, CKPT_CAUGHT_UP } ckpt;
    /* Writer thread only: set by a failed append, cleared by a successful head read. */
    int poisoned;
    sqlite3_stmt *ins_audit, *ins_cp, *head;  /* writer thread statements */
    /* rdb statements kept prepared, keyed by their SQL text: the loop thread runs the same
     * few queries on every request (an API key lookup per call), and preparing one cost
     * more than running it (docs/performance.md). Entries are reset after each use, so
     * none holds a read transaction between calls. busy: in use by a sq_exec further up
     * the stack (a row callback that queries again gets its own statement). */
    struct sq_cached {
        char *sql;
        sqlite3_stmt *st;
        int busy;
    } cache[SQ_CACHE_SIZE];
    unsigned cache_next;       /* next slot to replace when the cache is full */
} sq_impl;

static int sq_error(tg_error *err, sqlite3 *db, const char *what)
{
    return tg_error_set(err, "sqlite: %s: %s", what, sqlite3_errmsg(db));
}

static int sq_bind(sqlite3_stmt *st, const store_param *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = p[i].type == SP_NULL ? sqlite3_bind_null(st, (int)i + 1)
               : p[i].type == SP_INT  ? sqlite3_bind_int64(st, (int)i + 1, p[i].i)
               : sqlite3_bind_text(st, (int)i + 1, p[i].s, -1, SQLITE_STATIC);
        if (rc != SQLITE_OK) return rc;
    }
    return SQLITE_OK;
}

/* Steps a bound statement to completion, handing each row to cb as text. */
static int sq_run(sqlite3 *db, sqlite3_stmt *st, store_row_fn cb, void *ud, tg_error *err)
{
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) return 0;
        if (rc != SQLITE_ROW) return sq_error(err, db, "statement failed");
        if (!cb) continue;
        int n = sqlite3_column_count(st);
        const char *vals[32];
        if (n > 32) n = 32;
        for (int i = 0; i < n; i++) vals[i] = (const char *)sqlite3_column_text(st, i);
        if (cb(ud, n, vals)) return 0;
    }
}

/* The cached statement for sql (prepared now if need be), or NULL with *fresh set to a
 * statement the caller must finalize (the text is in use further up the stack), or
 * NULL on a prepare error. */
static struct sq_cached *sq_prepare(sq_impl *q, const char *sql, sqlite3_stmt **fresh)
{
    *fresh = NULL;
    struct sq_cached *slot = NULL;
    for (unsigned i = 0; i < SQ_CACHE_SIZE; i++) {
        struct sq_cached *e = &q->cache[i];
        if (e->sql && strcmp(e->sql, sql) == 0) {
            if (!e->busy) return e;
            sqlite3_prepare_v2(q->rdb, sql, -1, fresh, NULL);
            return NULL;
        }
        if (!slot && !e->sql) slot = e;
    }
    if (!slot) {
        /* full: replace round-robin, skipping statements in use */
        for (unsigned k = 0; k < SQ_CACHE_SIZE && !slot; k++) {
            struct sq_cached *e = &q->cache[q->cache_next++ % SQ_CACHE_SIZE];
            if (!e->busy) slot = e;
        }
        if (!slot) {
            sqlite3_prepare_v2(q->rdb, sql, -1, fresh, NULL);
            return NULL;
        }
        sqlite3_finalize(slot->st);
        free(slot->sql);
        *slot = (struct sq_cached){0};
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(q->rdb, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
        return NULL;
    if (!(slot->sql = strdup(sql))) abort();
    slot->st = st;
    return slot;
}

static int sq_exec(tg_store *s, const char *sql, const store_param *p, size_t n,
                   store_row_fn cb, void *ud, int64_t *changes, tg_error *err)
{
    sq_impl *q = s->impl;
    sqlite3_stmt *fresh;
    struct sq_cached *e = sq_prepare(q, sql, &fresh);
    sqlite3_stmt *st = e ? e->st : fresh;
    if (!st) return sq_error(err, q->rdb, "prepare");
    if (e) e->busy = 1;
    int rc = -1;
    if (sq_bind(st, p, n) != SQLITE_OK) {
        sq_error(err, q->rdb, "bind");
    } else if (sq_run(q->rdb, st, cb, ud, err) == 0) {
        if (changes) *changes = sqlite3_changes64(q->rdb);
        rc = 0;
    }
    if (e) {
        /* back to its unused state: no read transaction kept, no borrowed text bound */
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        e->busy = 0;
    } else {
        sqlite3_finalize(st);
    }
    return rc;
}

static int sq_exec_script(tg_store *s, const char *sql, tg_error *err)
{
    sq_impl *q = s->impl;
    char *msg = NULL;
    if (sqlite3_exec(q->rdb, sql, NULL, NULL, &msg) != SQLITE_OK) {
        tg_error_set(err, "sqlite: %s", msg ? msg : sqlite3_errmsg(q->rdb));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* vfs: NULL for SQLite's default, or store_walbuf_vfs() (the writer and the checkpointer). */
static int sq_open_db(const char *path, const char *vfs, sqlite3 **out, tg_error *err)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                        SQLITE_OPEN_NOMUTEX, vfs) != SQLITE_OK) {
        tg_error_set(err, "sqlite: cannot open %s: %s", path,
                     db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    /* WAL lets readers (the CLI) run while the writer commits; FULL fsyncs the WAL at
     * every commit, which is what "durable" means for the strict audit mode (and what
     * the writer's VFS, sqlite_walbuf.c, relies on to write a commit's frames). */
    char *msg = NULL;
    if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL,
                     &msg) != SQLITE_OK) {
        tg_error_set(err, "sqlite: cannot set WAL mode on %s: %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        sqlite3_close(db);
        return -1;
    }
    *out = db;
    return 0;
}

/* ------------------------------------------------------------------ writer thread */

static void fail_list(store_op *op, const char *why)
{
    for (; op; op = op->next)
        if (op->status == 0) store_op_fail(op, "%s", why);
}

/* Inserts one op inside the open transaction. */
static int write_op(sq_impl *q, store_op *op)
{
    store_param p[15];
    sqlite3_stmt *st;
    size_t n;
    if (op->kind == OP_AUDIT) {
        store_audit_params(&op->audit, p);
        st = q->ins_audit;
        n = 15;
    } else {
        store_checkpoint_params(&op->cp, p);
        st = q->ins_cp;
        n = 7;
    }
    tg_error err;
    sqlite3_reset(st);
    int rc = sq_bind(st, p, n) == SQLITE_OK ? sq_run(q->wdb, st, NULL, NULL, &err)
                                              : sq_error(&err, q->wdb, "bind");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc) store_op_fail(op, "%s", err.msg);
    return rc;
}

static int head_row(void *ud, int ncols, const char *const *vals)
{
    store_op *op = ud;
    if (ncols >= 2 && vals[0] && vals[1] && strlen(vals[1]) == 64) {
        op->head_seq = strtoll(vals[0], NULL, 10);
        memcpy(op->head_hash, vals[1], 65);
    }
    return 1;
}

static void read_head(sq_impl *q, store_op *op)
{
    tg_error err;
    op->head_seq = 0;
    memcpy(op->head_hash, STORE_ZERO_HASH, 65);
    store_param p = {.type = SP_TEXT, .s = op->cp.instance};
    sqlite3_reset(q->head);
    if (sq_bind(q->head, &p, 1) != SQLITE_OK || sq_run(q->wdb, q->head, head_row, op, &err)) {
        store_op_fail(op, "sqlite: reading the chain head: %s", sqlite3_errmsg(q->wdb));
    } else {
        q->poisoned = 0;
    }
    sqlite3_reset(q->head);
}

/* Writes one batch (no OP_HEAD inside) as one transaction. On any failure nothing of the
 * batch is kept and the store is poisoned. */
static void write_batch(tg_store *s, sq_impl *q, store_op *batch)
{
    if (q->poisoned) {
        fail_list(batch, "store: an earlier append failed; the chain head must be re-read first");
        return;
    }
    char *msg = NULL;
    if (sqlite3_exec(q->wdb, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK) {
        char why[300];
        snprintf(why, sizeof why, "sqlite: BEGIN: %s", msg ? msg : "?");
        sqlite3_free(msg);
        fail_list(batch, why);
        q->poisoned = 1;
        return;
    }
    for (store_op *op = batch; op; op = op->next) {
        if (write_op(q, op) == 0) continue;
        char why[600];
        snprintf(why, sizeof why, "store: transaction rolled back: %s", op->errmsg);
        sqlite3_exec(q->wdb, "ROLLBACK", NULL, NULL, NULL);
        fail_list(batch, why);
        q->poisoned = 1;
        return;
    }
    if (sqlite3_exec(q->wdb, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
        char why[300];
        snprintf(why, sizeof why, "sqlite: COMMIT: %s", msg ? msg : "?");
        sqlite3_free(msg);
        sqlite3_exec(q->wdb, "ROLLBACK", NULL, NULL, NULL);
        fail_list(batch, why);
        q->poisoned = 1;
        return;
    }
    __atomic_add_fetch(&s->commits, 1, __ATOMIC_RELAXED);
}

/* With a commit delay and only lazy appends queued, waits (under mu) until the delay has
 * passed since the first of them, batch_max appends are queued, an append somebody waits
 * for arrives, or the store stops. */
static void linger(tg_store *s, sq_impl *q)
{
    unsigned ms = __atomic_load_n(&s->commit_delay_ms, __ATOMIC_RELAXED);
    if (!ms || q->urgent || q->queue_head->kind == OP_HEAD) return;
    uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000;
    q->lingering = 1;
    for (;;) {
        uint64_t now = uv_hrtime();
        if (q->stop || q->urgent || q->queued >= s->batch_max || now >= end) break;
        uv_cond_timedwait(&q->cond, &q->mu, end - now);
    }
    q->lingering = 0;
}

/* ------------------------------------------------------------------ checkpointer */

/* After a commit that left `pages` frames in the WAL: wakes the checkpointer past the
 * threshold. With may_copy (the writer thread), 1 when the caller should copy the rest
 * itself: the checkpointer caught up, or the WAL passed the backstop. */
static bool ckpt_after_commit(sq_impl *q, int pages, bool may_copy)
{
    uv_mutex_lock(&q->mu);
    bool copy = may_copy && (q->ckpt == CKPT_CAUGHT_UP || pages >= WAL_BACKSTOP_PAGES);
    if (may_copy && q->ckpt == CKPT_CAUGHT_UP) {
        q->ckpt = CKPT_IDLE;
    } else if (q->ckpt == CKPT_IDLE && pages >= WAL_CHECKPOINT_PAGES) {
        q->ckpt = CKPT_WANTED;
        uv_cond_signal(&q->ckpt_cond);
    }
    uv_mutex_unlock(&q->mu);
    return copy;
}

/* sqlite3_wal_hook of rdb: the loop thread's own writes (keys, approvals) never copy
 * the WAL on the thread that serves the calls. */
static int on_rdb_commit(void *ud, sqlite3 *db, const char *name, int pages)
{
    (void)db;
    (void)name;
    ckpt_after_commit(ud, pages, false);
    return SQLITE_OK;
}

/* sqlite3_wal_hook of wdb (writer thread, after each commit). A connection's hook replaces
 * SQLite's automatic checkpoint on it. */
static int on_wal_commit(void *ud, sqlite3 *db, const char *name, int pages)
{
    if (ckpt_after_commit(ud, pages, true)) {
        int rc = store_walbuf_checkpoint(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            tg_log_warn("store", "sqlite: checkpoint of a %d-page WAL failed: %s", pages,
                        sqlite3_errmsg(db));
    }
    return SQLITE_OK;
}

static void ckpt_main(void *arg)
{
    sq_impl *q = arg;
    pthread_setname_np(pthread_self(), "tg-store-ckpt");
    /* Best effort: where SCHED_IDLE is refused, the copy runs at normal priority, as it
     * would inside SQLite's commit. */
    struct sched_param sp = {0};
    int prc = pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
    if (prc) tg_log_debug("store", "checkpointer stays at normal CPU priority (error %d)", prc);
    uv_mutex_lock(&q->mu);
    for (;;) {
        while (q->ckpt != CKPT_WANTED && !q->stop) uv_cond_wait(&q->ckpt_cond, &q->mu);
        if (q->stop) break;
        q->ckpt = CKPT_RUNNING;
        uv_mutex_unlock(&q->mu);
        int log = -1, copied = -2;
        int rc = store_walbuf_checkpoint(q->cdb, NULL, SQLITE_CHECKPOINT_PASSIVE, &log,
                                           &copied);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY) /* the next commit asks again */
            tg_log_warn("store", "sqlite: WAL checkpoint failed: %s", sqlite3_errmsg(q->cdb));
        uv_mutex_lock(&q->mu);
        q->ckpt = rc == SQLITE_OK && copied == log ? CKPT_CAUGHT_UP : CKPT_IDLE;
    }
    uv_mutex_unlock(&q->mu);
}

static void writer_main(void *arg)
{
    tg_store *s = arg;
    sq_impl *q = s->impl;
    pthread_setname_np(pthread_self(), "tg-store-write"); /* for top -H; best effort */
    uv_mutex_lock(&q->mu);
    for (;;) {
        while (!q->queue_head && !q->stop) uv_cond_wait(&q->cond, &q->mu);
        if (!q->queue_head) break;
        linger(s, q);
        /* Take a batch: up to batch_max appends, or a single head read. */
        store_op *batch = q->queue_head, *last = batch;
        size_t n = 1;
        if (batch->kind != OP_HEAD)
            while (last->next && last->next->kind != OP_HEAD && n < s->batch_max) {
                last = last->next;
                n++;
            }
        q->queue_head = last->next;
        if (!q->queue_head) q->queue_tail = NULL;
        q->queued -= n;
        last->next = NULL;
        for (store_op *op = batch; op; op = op->next) q->urgent -= !op->lazy;
        int stopping = q->stop;
        uv_mutex_unlock(&q->mu);

        if (stopping)
            fail_list(batch, "store: closing");
        else if (batch->kind == OP_HEAD)
            read_head(q, batch);
        else
            write_batch(s, q, batch);

        uv_mutex_lock(&q->mu);
        if (q->done_tail) q->done_tail->next = batch; else q->done_head = batch;
        q->done_tail = last;
        uv_mutex_unlock(&q->mu);
        uv_async_send(&q->async);
        uv_mutex_lock(&q->mu);
    }
    uv_mutex_unlock(&q->mu);
}

/* ------------------------------------------------------------------ loop side */

static void drain_done(tg_store *s)
{
    sq_impl *q = s->impl;
    uv_mutex_lock(&q->mu);
    store_op *op = q->done_head;
    q->done_head = q->done_tail = NULL;
    uv_mutex_unlock(&q->mu);
    while (op) {
        store_op *next = op->next;
        store_op_complete(s, op);
        op = next;
    }
}

static void on_async(uv_async_t *a)
{
    drain_done(a->data);
}

static int sq_submit(tg_store *s, store_op *op, tg_error *err)
{
    sq_impl *q = s->impl;
    op->next = NULL;
    uv_mutex_lock(&q->mu);
    if (q->queue_tail) q->queue_tail->next = op; else q->queue_head = op;
    q->queue_tail = op;
    q->queued++;
    q->urgent += !op->lazy;
    /* a lingering writer is woken only when somebody waits or the batch is full (fewer
     * thread wake-ups) */
    if (!q->lingering || !op->lazy || q->queued >= s->batch_max) uv_cond_signal(&q->cond);
    uv_mutex_unlock(&q->mu);
    return 0;
}

static int sq_ready(const tg_store *s)
{
    return ((const sq_impl *)s->impl)->have_thread;
}

static void sq_free_impl(tg_store *s)
{
    sq_impl *q = s->impl;
    sqlite3_finalize(q->ins_audit);
    sqlite3_finalize(q->ins_cp);
    sqlite3_finalize(q->head);
    for (unsigned i = 0; i < SQ_CACHE_SIZE; i++) {
        sqlite3_finalize(q->cache[i].st);
        free(q->cache[i].sql);
    }
    sqlite3_close(q->cdb);
    sqlite3_close(q->wdb);
    sqlite3_close(q->rdb);
    if (q->have_thread) {
        uv_mutex_destroy(&q->mu);
        uv_cond_destroy(&q->cond);
        uv_cond_destroy(&q->ckpt_cond);
    }
    free(q);
    store_free(s);
}

static void on_async_closed(uv_handle_t *h)
{
    sq_free_impl(h->data);
}

static void sq_close(tg_store *s)
{
    sq_impl *q = s->impl;
    if (!q->have_thread) {
        sq_free_impl(s);
        return;
    }
    uv_mutex_lock(&q->mu);
    q->stop = 1;
    uv_cond_signal(&q->cond);
    uv_cond_signal(&q->ckpt_cond);
    uv_mutex_unlock(&q->mu);
    uv_thread_join(&q->thread);   /* at most one batch commit away */
    uv_thread_join(&q->ckpt_thread); /* at most one checkpoint away */
    drain_done(s);
    uv_close((uv_handle_t *)&q->async, on_async_closed);
}

static const store_backend sq_backend = {
    .exec = sq_exec,
    .exec_script = sq_exec_script,
    .begin_exclusive = "BEGIN IMMEDIATE",
    .submit = sq_submit,
    .ready = sq_ready,
    .close = sq_close,
};

static int prepare_writer(sq_impl *q, tg_error *err)
{
    if (sqlite3_prepare_v2(q->wdb, store_sql_insert_audit, -1, &q->ins_audit, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->wdb, store_sql_insert_checkpoint, -1, &q->ins_cp, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->wdb, store_sql_head, -1, &q->head, NULL) != SQLITE_OK)
        return sq_error(err, q->wdb, "preparing the writer's statements");
    return 0;
}

tg_store *store_sqlite_open(uv_loop_t *loop, const char *path, const tg_store_options *o,
                            tg_error *err)
{
    tg_store *s = calloc(1, sizeof *s);
    sq_impl *q = calloc(1, sizeof *q);
    if (!s || !q) abort();
    s->kind = TG_STORE_SQLITE;
    s->be = &sq_backend;
    s->loop = loop;
    s->queue_max = o->queue_max;
    s->batch_max = o->batch_max;
    s->impl = q;
    if (sq_open_db(path, NULL, &q->rdb, err) || store_migrate(s, err)) goto fail;
    if (loop) {
        if (sq_open_db(path, store_walbuf_vfs(), &q->wdb, err) || prepare_writer(q, err) ||
            sq_open_db(path, store_walbuf_vfs(), &q->cdb, err))
            goto fail;
        /* the checkpointer alone copies the WAL (see the top of this file) */
        sqlite3_wal_hook(q->wdb, on_wal_commit, q);
        sqlite3_wal_hook(q->rdb, on_rdb_commit, q);
        if (uv_mutex_init(&q->mu) || uv_cond_init(&q->cond) || uv_cond_init(&q->ckpt_cond))
            abort();
        if (uv_async_init(loop, &q->async, on_async)) abort();
        q->async.data = s;
        /* resources exhausted */
        if (uv_thread_create(&q->thread, writer_main, s) ||
            uv_thread_create(&q->ckpt_thread, ckpt_main, q))
            abort();
        q->have_thread = 1;
    }
    return s;
fail:
    q->have_thread = 0;
    sq_free_impl(s);
    return NULL;
}
