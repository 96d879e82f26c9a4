/*
 * store_pg.c — the shared PostgreSQL backend.
 *
 * Two connections:
 *   - `sync`: blocking libpq for migrations at open, the CLI, prune and the CRUD (which
 *     are synchronous for now, see tg_store.h);
 *   - `conn`: non-blocking libpq on the loop, for the audit appends. PQconnectStart /
 *     PQconnectPoll drive the connection from a uv_poll on PQsocket (re-fetched after every
 *     poll step and every reconnect: the socket can change). Once up, it is in pipeline
 *     mode: queued appends are sent as one pipeline ended by one Sync, which PostgreSQL
 *     runs as one implicit transaction (group commit); an append is durable when that
 *     Sync's result arrives. One pipeline is in flight at a time; appends made meanwhile
 *     wait for the next one, which is exactly what groups them.
 * When the connection breaks, every queued and in-flight append fails, the store is
 * poisoned (the in-flight commit may or may not have happened: the chain head has to be
 * re-read) and a reconnect is attempted with exponential backoff. While the connection is
 * down, appends are refused at once.
 */
#include "store/store_int.h"

#include <libpq-fe.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

typedef enum { PG_DOWN, PG_CONNECTING, PG_READY } pg_state;

typedef struct pg_poll {
    uv_poll_t h;
    struct pg_impl *pg;
} pg_poll;

typedef struct pg_impl {
    tg_store *s;
    char *conninfo;
    PGconn *sync;
    PGconn *conn;
    pg_state state;
    pg_poll *poll;              /* watches PQsocket(conn); NULL when down */
    int poll_fd, poll_events;
    uv_timer_t retry;           /* reconnect backoff */
    uv_timer_t kick;            /* sends queued appends at the next loop iteration */
    uint64_t backoff_ms;
    char last_error[320];
    /* queue: accepted, not yet sent. inflight: sent in the current pipeline, awaiting
     * its Sync. Both in submission order. */
    store_op *queue_head, *queue_tail;
    store_op *inflight_head, *inflight_tail;
    store_op *result_next;      /* the in-flight op whose result comes next */
    int expect_null;            /* PQgetResult owes a NULL after a query's result */
    int batch_failed;
    char batch_error[300];
    int poisoned;
    int closing;
    int handles_open;
    char *sql_audit, *sql_cp, *sql_head;   /* the shared statements with $n placeholders */
} pg_impl;

/* ------------------------------------------------------------------ helpers */

/* "?" → "$1", "$2", … (the shared SQL never has "?" inside a literal). */
static char *pg_sql(const char *sql)
{
    tg_buf b = TG_BUF_INIT;
    int n = 0;
    for (const char *p = sql; *p; p++) {
        if (*p == '?') tg_buf_printf(&b, "$%d", ++n);
        else tg_buf_append(&b, p, 1);
    }
    tg_buf_append(&b, "", 0);
    return tg_buf_steal(&b);
}

static void pg_notice(void *arg, const char *msg)
{
    /* "relation already exists, skipping" and the like: not worth stderr noise. */
    tg_log_debug("store", "postgres notice: %s", msg);
}

/* Text values for a parameter list; ints are formatted into ibuf. */
static void pg_values(const store_param *p, size_t n, const char **vals, char (*ibuf)[24])
{
    for (size_t i = 0; i < n; i++) {
        if (p[i].type == SP_NULL) {
            vals[i] = NULL;
        } else if (p[i].type == SP_INT) {
            snprintf(ibuf[i], sizeof ibuf[i], "%" PRId64, p[i].i);
            vals[i] = ibuf[i];
        } else {
            vals[i] = p[i].s;
        }
    }
}

/* libpq messages span lines ("…\n\tThis probably means…"): one line for our logs. */
static void chomp(char *s)
{
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\t') *p = ' ';
    size_t l = strlen(s);
    while (l && s[l - 1] == ' ') s[--l] = '\0';
}

static int pg_error(tg_error *err, PGconn *c, const char *what)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", c ? PQerrorMessage(c) : "out of memory");
    chomp(msg);
    return tg_error_set(err, "postgres: %s: %s", what, msg);
}

/* ------------------------------------------------------------------ synchronous */

static int sync_conn(pg_impl *pg, tg_error *err)
{
    if (pg->sync && PQstatus(pg->sync) == CONNECTION_OK) return 0;
    if (pg->sync) PQreset(pg->sync);
    else pg->sync = PQconnectdb(pg->conninfo);
    if (!pg->sync || PQstatus(pg->sync) != CONNECTION_OK)
        return pg_error(err, pg->sync, "cannot connect");
    PQsetNoticeProcessor(pg->sync, pg_notice, NULL);
    return 0;
}

/* The blocking connection only learns that the server went away (a restart) when a
 * statement fails. If that statement was not inside a transaction, reconnect once and
 * let the caller run it again; inside a transaction the failure must stand. */
static int retry_after_reset(pg_impl *pg, int was_idle, PGresult **r)
{
    if (!was_idle || PQstatus(pg->sync) != CONNECTION_BAD) return 0;
    PQclear(*r);
    *r = NULL;
    PQreset(pg->sync);
    return PQstatus(pg->sync) == CONNECTION_OK;
}

static int result_error(pg_impl *pg, const PGresult *r, tg_error *err)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(pg->sync));
    chomp(msg);
    return tg_error_set(err, "postgres: %s", msg);
}

static int pg_exec(tg_store *s, const char *sql, const store_param *p, size_t n,
                   store_row_fn cb, void *ud, int64_t *changes, tg_error *err)
{
    pg_impl *pg = s->impl;
    if (sync_conn(pg, err)) return -1;
    const char *vals[40];
    char ibuf[40][24];
    if (n > 40) return tg_error_set(err, "postgres: too many parameters");
    pg_values(p, n, vals, ibuf);
    char *q = pg_sql(sql);
    int idle = PQtransactionStatus(pg->sync) == PQTRANS_IDLE;
    PGresult *r = PQexecParams(pg->sync, q, (int)n, NULL, vals, NULL, NULL, 0);
    if (retry_after_reset(pg, idle, &r)) r = PQexecParams(pg->sync, q, (int)n, NULL, vals, NULL, NULL, 0);
    free(q);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st == PGRES_TUPLES_OK) {
        int rows = PQntuples(r), cols = PQnfields(r);
        const char *v[32];
        if (cols > 32) cols = 32;
        for (int i = 0; cb && i < rows; i++) {
            for (int j = 0; j < cols; j++) v[j] = PQgetisnull(r, i, j) ? NULL : PQgetvalue(r, i, j);
            if (cb(ud, cols, v)) break;
        }
    } else if (st == PGRES_COMMAND_OK) {
        if (changes) *changes = strtoll(PQcmdTuples(r), NULL, 10);
    } else {
        rc = result_error(pg, r, err);
    }
    PQclear(r);
    return rc;
}

static int pg_exec_script(tg_store *s, const char *sql, tg_error *err)
{
    pg_impl *pg = s->impl;
    if (sync_conn(pg, err)) return -1;
    int idle = PQtransactionStatus(pg->sync) == PQTRANS_IDLE;
    PGresult *r = PQexec(pg->sync, sql);
    if (retry_after_reset(pg, idle, &r)) r = PQexec(pg->sync, sql);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = result_error(pg, r, err);
    }
    PQclear(r);
    return rc;
}

/* ------------------------------------------------------------------ asynchronous */

static void start_connect(pg_impl *pg);
static void on_retry(uv_timer_t *t);
static void on_poll(uv_poll_t *h, int status, int events);

static void handle_closed(uv_handle_t *h)
{
    pg_impl *pg = h->data;
    if (h->type == UV_POLL) free(h);
    if (--pg->handles_open == 0 && pg->closing) {
        free(pg->sql_audit);
        free(pg->sql_cp);
        free(pg->sql_head);
        free(pg->conninfo);
        tg_store *s = pg->s;
        free(pg);
        store_free(s);
    }
}

static void close_poll(pg_impl *pg)
{
    if (!pg->poll) return;
    uv_close((uv_handle_t *)&pg->poll->h, handle_closed);
    pg->poll = NULL;
}

/* Watches the connection's current socket for events (a new handle if it changed). */
static void watch(pg_impl *pg, int events)
{
    int fd = PQsocket(pg->conn);
    if (pg->poll && pg->poll_fd != fd) close_poll(pg);
    if (!pg->poll) {
        pg->poll = calloc(1, sizeof *pg->poll);
        if (!pg->poll) abort();
        pg->poll->pg = pg;
        if (uv_poll_init(pg->s->loop, &pg->poll->h, fd)) abort();
        pg->poll->h.data = pg;
        pg->handles_open++;
        pg->poll_fd = fd;
        pg->poll_events = 0;
    }
    if (pg->poll_events != events) {
        uv_poll_start(&pg->poll->h, events, on_poll);
        pg->poll_events = events;
    }
}

static void complete_list(tg_store *s, store_op *op)
{
    while (op) {
        store_op *next = op->next;
        store_op_complete(s, op);
        op = next;
    }
}

/* Fails and completes every queued and in-flight op. */
static void fail_all(pg_impl *pg, const char *why)
{
    store_op *lists[2] = {pg->inflight_head, pg->queue_head};
    pg->inflight_head = pg->inflight_tail = pg->queue_head = pg->queue_tail = NULL;
    pg->result_next = NULL;
    for (int i = 0; i < 2; i++) {
        for (store_op *op = lists[i]; op; op = op->next)
            if (op->status == 0) store_op_fail(op, "%s", why);
        complete_list(pg->s, lists[i]);
    }
}

static void connection_lost(pg_impl *pg, const char *what)
{
    char msg[300];
    snprintf(msg, sizeof msg, "%s: %s", what, pg->conn ? PQerrorMessage(pg->conn) : "");
    chomp(msg);
    snprintf(pg->last_error, sizeof pg->last_error, "%s", msg);
    tg_log_warn("store", "postgres connection lost (%s); reconnecting in %" PRIu64 " ms",
                msg, pg->backoff_ms);
    close_poll(pg);
    if (pg->conn) PQfinish(pg->conn);
    pg->conn = NULL;
    pg->state = PG_DOWN;
    /* An in-flight commit may have happened or not, and queued rows were hashed on top of
     * it: the chain head must be re-read before anything else is appended. */
    if (pg->inflight_head || pg->queue_head) pg->poisoned = 1;
    char why[400];
    snprintf(why, sizeof why, "postgres store unavailable: %s", msg);
    fail_all(pg, why);
    uv_timer_start(&pg->retry, on_retry, pg->backoff_ms, 0);
    pg->backoff_ms = pg->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : pg->backoff_ms * 2;
}

static int flush_and_watch(pg_impl *pg)
{
    int f = PQflush(pg->conn);
    if (f < 0) return -1;
    watch(pg, f == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
    return 0;
}

/* Sends the next pipeline (a batch of appends, or one head read) when none is in flight. */
static void send_batch(pg_impl *pg)
{
    if (pg->state != PG_READY || pg->inflight_head || !pg->queue_head) return;
    store_op *batch = pg->queue_head, *last = batch;
    size_t n = 1;
    if (batch->kind != OP_HEAD)
        while (last->next && last->next->kind != OP_HEAD && n < pg->s->batch_max) {
            last = last->next;
            n++;
        }
    pg->queue_head = last->next;
    if (!pg->queue_head) pg->queue_tail = NULL;
    last->next = NULL;
    pg->inflight_head = pg->result_next = batch;
    pg->inflight_tail = last;
    pg->batch_failed = 0;
    pg->expect_null = 0;
    for (store_op *op = batch; op; op = op->next) {
        store_param p[15];
        const char *vals[15];
        char ibuf[15][24];
        const char *sql;
        size_t np;
        if (op->kind == OP_AUDIT) {
            store_audit_params(&op->audit, p);
            sql = pg->sql_audit;
            np = 15;
        } else if (op->kind == OP_CHECKPOINT) {
            store_checkpoint_params(&op->cp, p);
            sql = pg->sql_cp;
            np = 7;
        } else {
            p[0] = (store_param){.type = SP_TEXT, .s = op->cp.instance};
            sql = pg->sql_head;
            np = 1;
        }
        pg_values(p, np, vals, ibuf);
        if (!PQsendQueryParams(pg->conn, sql, (int)np, NULL, vals, NULL, NULL, 0)) {
            connection_lost(pg, "sending");
            return;
        }
    }
    if (!PQpipelineSync(pg->conn) || flush_and_watch(pg)) connection_lost(pg, "sending");
}

static void finish_batch(pg_impl *pg)
{
    store_op *batch = pg->inflight_head;
    pg->inflight_head = pg->inflight_tail = pg->result_next = NULL;
    if (pg->batch_failed) {
        for (store_op *op = batch; op; op = op->next)
            if (op->status == 0)
                store_op_fail(op, "postgres: transaction rolled back: %s", pg->batch_error);
        pg->poisoned = 1;
        char why[400];
        snprintf(why, sizeof why, "postgres: an earlier append failed (%s)", pg->batch_error);
        /* Everything queued was hashed against the failed batch: fail it too. */
        store_op *q = pg->queue_head;
        pg->queue_head = pg->queue_tail = NULL;
        for (store_op *op = q; op; op = op->next) store_op_fail(op, "%s", why);
        complete_list(pg->s, batch);
        complete_list(pg->s, q);
    } else {
        if (batch->kind != OP_HEAD) __atomic_add_fetch(&pg->s->commits, 1, __ATOMIC_RELAXED);
        complete_list(pg->s, batch);
    }
}

static void take_result(pg_impl *pg, PGresult *r)
{
    store_op *op = pg->result_next;
    ExecStatusType st = PQresultStatus(r);
    if (!op) return;   /* cannot happen: a result with nothing in flight */
    pg->result_next = op->next;
    pg->expect_null = 1;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (op->kind == OP_HEAD) {
            op->head_seq = 0;
            memcpy(op->head_hash, STORE_ZERO_HASH, 65);
            if (PQntuples(r) > 0 && PQgetlength(r, 0, 1) == 64) {
                op->head_seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
                memcpy(op->head_hash, PQgetvalue(r, 0, 1), 65);
            }
            pg->poisoned = 0;
        }
        return;
    }
    if (st == PGRES_PIPELINE_ABORTED) {
        store_op_fail(op, "postgres: skipped after an earlier error in the same transaction");
    } else {
        char msg[300];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        chomp(msg);
        store_op_fail(op, "postgres: %s", msg);
        if (!pg->batch_failed) snprintf(pg->batch_error, sizeof pg->batch_error, "%s", msg);
    }
    pg->batch_failed = 1;
}

static void read_results(pg_impl *pg)
{
    while (pg->inflight_head && !PQisBusy(pg->conn)) {
        PGresult *r = PQgetResult(pg->conn);
        if (!r) {
            if (!pg->expect_null) break;
            pg->expect_null = 0;
            continue;
        }
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            pg->expect_null = 0;
            finish_batch(pg);
            if (pg->state != PG_READY) return;
            break;
        }
        take_result(pg, r);
        PQclear(r);
    }
    send_batch(pg);
}

static void connected(pg_impl *pg)
{
    if (!PQenterPipelineMode(pg->conn) || PQsetnonblocking(pg->conn, 1)) {
        connection_lost(pg, "entering pipeline mode");
        return;
    }
    pg->state = PG_READY;
    pg->backoff_ms = BACKOFF_MIN_MS;
    pg->last_error[0] = '\0';
    tg_log_info("store", "postgres connected (pipeline mode)");
    watch(pg, UV_READABLE);
    send_batch(pg);
}

static void connect_step(pg_impl *pg)
{
    switch (PQconnectPoll(pg->conn)) {
    case PGRES_POLLING_READING: watch(pg, UV_READABLE); break;
    case PGRES_POLLING_WRITING: watch(pg, UV_WRITABLE); break;
    case PGRES_POLLING_OK:      connected(pg); break;
    default:                    connection_lost(pg, "connecting"); break;
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    pg_impl *pg = h->data;
    if (pg->state == PG_CONNECTING) {
        connect_step(pg);
        return;
    }
    if (pg->state != PG_READY) return;
    if (status < 0) {
        connection_lost(pg, uv_strerror(status));
        return;
    }
    if ((events & UV_WRITABLE) && flush_and_watch(pg)) {
        connection_lost(pg, "writing");
        return;
    }
    if (events & UV_READABLE) {
        if (!PQconsumeInput(pg->conn)) {
            connection_lost(pg, "reading");
            return;
        }
        read_results(pg);
        if (pg->state == PG_READY && PQstatus(pg->conn) == CONNECTION_BAD)
            connection_lost(pg, "connection closed");
    }
}

static void start_connect(pg_impl *pg)
{
    pg->conn = PQconnectStart(pg->conninfo);
    if (!pg->conn) abort();
    if (PQstatus(pg->conn) == CONNECTION_BAD) {
        connection_lost(pg, "connecting");
        return;
    }
    PQsetNoticeProcessor(pg->conn, pg_notice, NULL);
    pg->state = PG_CONNECTING;
    /* libpq's contract: behave as if PQconnectPoll had said WRITING. */
    watch(pg, UV_WRITABLE);
}

static void on_retry(uv_timer_t *t)
{
    start_connect(t->data);
}

static void on_kick(uv_timer_t *t)
{
    send_batch(t->data);
}

static int pg_submit(tg_store *s, store_op *op, tg_error *err)
{
    pg_impl *pg = s->impl;
    if (pg->state != PG_READY)
        return tg_error_set(err, "postgres store unavailable%s%s; reconnecting",
                            pg->last_error[0] ? ": " : " (connecting)", pg->last_error);
    if (pg->poisoned && op->kind != OP_HEAD)
        return tg_error_set(err, "postgres: an earlier append failed; the chain head must be "
                                 "re-read first");
    op->next = NULL;
    if (pg->queue_tail) pg->queue_tail->next = op; else pg->queue_head = op;
    pg->queue_tail = op;
    /* Send from the next loop iteration: keeps callbacks out of this call, and groups
     * every append made during this iteration into one pipeline. */
    if (!pg->inflight_head) uv_timer_start(&pg->kick, on_kick, 0, 0);
    return 0;
}

static int pg_ready(const tg_store *s)
{
    const pg_impl *pg = s->impl;
    return pg->state == PG_READY && !pg->poisoned;
}

static void pg_close(tg_store *s)
{
    pg_impl *pg = s->impl;
    pg->closing = 1;
    if (pg->sync) PQfinish(pg->sync);
    pg->sync = NULL;
    if (!s->loop) {
        free(pg->conninfo);
        free(pg);
        store_free(s);
        return;
    }
    pg->state = PG_DOWN;
    fail_all(pg, "store: closing");
    close_poll(pg);
    if (pg->conn) PQfinish(pg->conn);
    pg->conn = NULL;
    uv_close((uv_handle_t *)&pg->retry, handle_closed);
    uv_close((uv_handle_t *)&pg->kick, handle_closed);
}

static const store_backend pg_backend = {
    .exec = pg_exec,
    .exec_script = pg_exec_script,
    .begin_exclusive = "BEGIN; LOCK TABLE schema_version IN EXCLUSIVE MODE",
    .submit = pg_submit,
    .ready = pg_ready,
    .close = pg_close,
};

tg_store *store_pg_open(uv_loop_t *loop, const char *conninfo, const tg_store_options *o,
                        tg_error *err)
{
    tg_store *s = calloc(1, sizeof *s);
    pg_impl *pg = calloc(1, sizeof *pg);
    if (!s || !pg) abort();
    s->kind = TG_STORE_POSTGRES;
    s->be = &pg_backend;
    s->queue_max = o->queue_max;
    s->batch_max = o->batch_max;
    s->impl = pg;
    pg->s = s;
    pg->conninfo = strdup(conninfo);
    pg->backoff_ms = BACKOFF_MIN_MS;
    if (!pg->conninfo) abort();
    if (sync_conn(pg, err) || store_migrate(s, err)) {
        pg_close(s);
        return NULL;
    }
    if (loop) {
        s->loop = loop;
        pg->sql_audit = pg_sql(store_sql_insert_audit);
        pg->sql_cp = pg_sql(store_sql_insert_checkpoint);
        pg->sql_head = pg_sql(store_sql_head);
        uv_timer_init(loop, &pg->retry);
        uv_timer_init(loop, &pg->kick);
        pg->retry.data = pg->kick.data = pg;
        pg->handles_open = 2;
        start_connect(pg);
    }
    return s;
}
