/*
 * writer.c — the audit writer: turns records into chained store rows on the loop thread.
 *
 * For each record: digest the unredacted arguments, redact, serialise canonically, take
 * the next sequence number, hash it onto the chain head, and hand the row to the store's
 * asynchronous append. Every checkpoint_every records (and every checkpoint_ms, if records
 * were added) a signed checkpoint row follows in the same queue. Durable records are
 * copied to the JSON Lines sink.
 *
 * Chain head invariant: head_seq/head_hash describe the last record handed to the store.
 * The store completes appends in order and, after a failure, refuses appends until the
 * head is re-read (tg_store.h). So on any failure the writer refuses new records
 * (fail closed) until tg_store_head_async has told it the real durable head; no record is
 * ever chained onto one that was not stored.
 */
#include "audit/audit_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CP_EVERY 1000
#define DEFAULT_CP_MS 60000
#define DEFAULT_BATCHED_MAX 10000
/* A record nobody waits for (batched mode; strict mode's outcomes with async_outcomes) may
 * wait this long in the store's open transaction, so the records of several calls share
 * one commit. One commit (and fsync) per record cost as much CPU as the call itself, on
 * the cores the calls need; and an outcome committed on its own made the next call's
 * decision record wait for that commit first (docs/performance.md). */
#define LAZY_COMMIT_DELAY_MS 5

struct tg_audit {
    uv_loop_t *loop;
    tg_store *store;
    tg_audit_durability durability;
    bool async_outcomes;            /* strict mode: outcome records are not waited for */
    char *instance;
    audit_key *key;                 /* NULL: no checkpoints */
    uint32_t cp_every, cp_ms;
    char **redact;
    size_t n_redact;
    FILE *sink;
    int sink_owned;
    size_t batched_max;
    int64_t head_seq;
    char head_hash[65];
    int64_t cp_seq;                 /* last checkpoint submitted */
    int64_t cp_durable_seq;         /* last checkpoint stored */
    int needs_resync, head_pending;
    uv_timer_t timer;
    size_t pending;                 /* store ops not yet completed (records, checkpoints, head) */
    /* Scratch for append() alone, emptied at its end: the record's text and its columns.
     * Kept across records so that a record costs no allocation of its own here (a fresh
     * 8 KiB arena and a 2–3 KiB buffer per record were 5 % of the loop thread's user CPU). */
    tg_arena *scratch;
    tg_buf args_text, body;
    size_t reserved;                /* batched places held by calls for their one record
                                       (tg_audit_reserve); pending + reserved <= batched_max
                                       for every append that did not reserve */
    uint64_t appended, failed, checkpoints;
    int closing, timer_closed;
    void (*close_done)(void *);
    void *close_ud;
};

typedef struct pending_rec {
    tg_audit *a;
    tg_audit_done_cb cb;
    void *ud;
    int64_t seq;
    char *line;                     /* JSON Lines form, when there is a sink */
} pending_rec;

typedef struct pending_cp {
    tg_audit *a;
    int64_t seq;
    char *blob;
} pending_cp;

static void maybe_finish_close(tg_audit *a);

static int request_resync(tg_audit *a, tg_error *err);

static void op_done(tg_audit *a, int status, const char *errmsg, const char *what, int64_t seq)
{
    a->pending--;
    if (status != 0) {
        a->failed++;
        a->needs_resync = 1;
        tg_log_error("audit", "%s seq %" PRId64 " of instance %s was not stored: %s", what, seq,
                     a->instance, errmsg);
        tg_error ignored;   /* retried by the next append if the store refuses it now */
        request_resync(a, &ignored);
    }
}

static void on_head(void *ud, int status, int64_t seq, const char *hash, const char *errmsg)
{
    tg_audit *a = ud;
    a->pending--;
    a->head_pending = 0;
    if (status == 0) {
        a->head_seq = seq;
        memcpy(a->head_hash, hash, 65);
        a->needs_resync = 0;
        if (a->cp_seq > seq) a->cp_seq = a->cp_durable_seq < seq ? a->cp_durable_seq : seq;
        tg_log_info("audit", "chain head of %s re-read: seq %" PRId64, a->instance, seq);
    } else {
        tg_log_warn("audit", "re-reading the chain head failed: %s", errmsg);
    }
    maybe_finish_close(a);
}

/* Asks the store for the durable chain head (after every earlier append completed). */
static int request_resync(tg_audit *a, tg_error *err)
{
    if (a->head_pending || a->closing) return 0;
    if (tg_store_head_async(a->store, a->instance, on_head, a, err)) return -1;
    a->head_pending = 1;
    a->pending++;
    return 0;
}

static void on_cp_stored(void *ud, int status, const char *errmsg)
{
    pending_cp *pc = ud;
    tg_audit *a = pc->a;
    if (status == 0) {
        a->checkpoints++;
        if (pc->seq > a->cp_durable_seq) a->cp_durable_seq = pc->seq;
    } else if (a->cp_seq == pc->seq) {
        a->cp_seq = a->cp_durable_seq;
    }
    op_done(a, status, errmsg, "checkpoint at", pc->seq);
    free(pc->blob);
    free(pc);
    maybe_finish_close(a);
}

static int write_checkpoint(tg_audit *a, tg_error *err)
{
    if (!a->key || a->head_seq <= a->cp_seq || a->needs_resync || a->head_pending) return 0;
    audit_cp cp = {.kind = "checkpoint", .instance = a->instance, .seq = a->head_seq,
                   .hash = a->head_hash, .time_ms = tg_wall_ms()};
    pending_cp *pc = calloc(1, sizeof *pc);
    if (!pc) abort();
    tg_store_checkpoint_row row;
    if (audit_cp_make(&cp, a->key, &row, &pc->blob, err)) {
        free(pc);
        return -1;
    }
    pc->a = a;
    pc->seq = a->head_seq;
    if (tg_store_append_checkpoint(a->store, &row, on_cp_stored, pc, err)) {
        free(pc->blob);
        free(pc);
        return -1;
    }
    a->pending++;
    a->cp_seq = a->head_seq;
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    tg_audit *a = t->data;
    tg_error err;
    if (write_checkpoint(a, &err))
        tg_log_warn("audit", "periodic checkpoint not written: %s", err.msg);
}

static void on_stored(void *ud, int status, const char *errmsg)
{
    pending_rec *pr = ud;
    tg_audit *a = pr->a;
    if (status == 0 && pr->line && a->sink) {
        if (fputs(pr->line, a->sink) == EOF || fflush(a->sink) != 0)
            tg_log_error("audit", "JSON Lines sink write failed: %s", strerror(errno));
    }
    op_done(a, status, errmsg, "record", pr->seq);
    if (pr->cb) pr->cb(pr->ud, status, errmsg);
    free(pr->line);
    free(pr);
    maybe_finish_close(a);
}

tg_audit *tg_audit_open(uv_loop_t *loop, tg_store *store, const tg_audit_options *o,
                        tg_error *err)
{
    if (!o->instance_id || !*o->instance_id) {
        tg_error_set(err, "audit: instance_id is required (one hash chain per instance)");
        return NULL;
    }
    tg_audit *a = calloc(1, sizeof *a);
    if (!a) abort();
    a->loop = loop;
    a->store = store;
    a->durability = o->durability;
    a->async_outcomes = o->async_outcomes != 0;
    a->instance = strdup(o->instance_id);
    a->scratch = tg_arena_new(0);
    a->cp_every = o->checkpoint_every ? o->checkpoint_every : DEFAULT_CP_EVERY;
    a->cp_ms = o->checkpoint_ms ? o->checkpoint_ms : DEFAULT_CP_MS;
    a->batched_max = o->batched_queue_max ? o->batched_queue_max : DEFAULT_BATCHED_MAX;
    const char *const *pat = o->redact ? o->redact : tg_audit_default_redact;
    size_t n = o->redact ? o->n_redact : 0;
    if (!o->redact) while (pat[n]) n++;
    a->redact = calloc(n + 1, sizeof *a->redact);
    if (!a->instance || !a->redact) abort();
    for (size_t i = 0; i < n; i++)
        if (!(a->redact[a->n_redact++] = strdup(pat[i]))) abort();
    if (o->signing_key_path && !(a->key = audit_key_load(o->signing_key_path, 1, err)))
        goto fail;
    if (!a->key)
        tg_log_warn("audit", "no signing key: records are chained but no checkpoint is signed");
    if (tg_store_head(store, a->instance, &a->head_seq, a->head_hash, err)) goto fail;
    a->cp_seq = a->cp_durable_seq = a->head_seq;
    if (o->jsonl_path && strcmp(o->jsonl_path, "-") == 0) {
        a->sink = stdout;
    } else if (o->jsonl_path) {
        a->sink = fopen(o->jsonl_path, "a");
        if (!a->sink) {
            tg_error_set(err, "audit: cannot open the JSON Lines sink %s: %s", o->jsonl_path,
                         strerror(errno));
            goto fail;
        }
        a->sink_owned = 1;
    }
    /* Records nobody waits for (batched mode; outcomes with async_outcomes) are appended
     * lazy and share commits; a record somebody waits for is committed at once. */
    tg_store_set_commit_delay(store, LAZY_COMMIT_DELAY_MS);
    uv_timer_init(loop, &a->timer);
    a->timer.data = a;
    uv_timer_start(&a->timer, on_timer, a->cp_ms, a->cp_ms);
    uv_unref((uv_handle_t *)&a->timer);  /* the checkpoint timer alone keeps nothing alive */
    return a;
fail:
    audit_key_free(a->key);
    for (size_t i = 0; i < a->n_redact; i++) free(a->redact[i]);
    free(a->redact);
    free(a->instance);
    tg_arena_free(a->scratch);
    free(a);
    return NULL;
}

/* Why an append (of a record with a place reserved, or not) would be refused now: 0 when
 * it would not. The one test both tg_audit_append and tg_audit_reserve apply, so a call
 * that reserved is refused up front for exactly what would refuse its record later. */
static int refused(tg_audit *a, bool reserved, tg_error *err)
{
    if (a->closing) return tg_error_set(err, "audit: closing");
    if (a->needs_resync) {
        tg_error serr = {""};
        if (!a->head_pending && request_resync(a, &serr))
            return tg_error_set(err, "audit: store unavailable, failing closed: %s", serr.msg);
        return tg_error_set(err, "audit: an earlier audit write failed; re-reading the chain "
                                 "head before accepting records (failing closed)");
    }
    if (!reserved && a->durability == TG_AUDIT_BATCHED &&
        a->pending + a->reserved >= a->batched_max)
        return tg_error_set(err, "audit: batched queue full (%zu records not yet durable, %zu "
                                 "places held by calls in flight)", a->pending, a->reserved);
    return 0;
}

int tg_audit_reserve(tg_audit *a, tg_error *err)
{
    if (a->durability != TG_AUDIT_BATCHED) return 0;
    if (refused(a, false, err)) return -1;
    a->reserved++;
    return 1;
}

void tg_audit_unreserve(tg_audit *a)
{
    if (a->reserved > 0) a->reserved--;
}

static int append(tg_audit *a, const tg_audit_record *r, bool reserved, tg_audit_done_cb cb,
                  void *ud, char *digest_out, tg_error *err);

int tg_audit_append(tg_audit *a, const tg_audit_record *r, tg_audit_done_cb cb, void *ud,
                    char *digest_out, tg_error *err)
{
    return append(a, r, false, cb, ud, digest_out, err);
}

int tg_audit_append_reserved(tg_audit *a, const tg_audit_record *r, tg_error *err)
{
    tg_audit_unreserve(a); /* the place is this record's, stored or refused */
    return append(a, r, true, NULL, NULL, NULL, err);
}

static int append(tg_audit *a, const tg_audit_record *r, bool reserved, tg_audit_done_cb cb,
                  void *ud, char *digest_out, tg_error *err)
{
    if (refused(a, reserved, err)) return -1;

    tg_arena *ar = a->scratch;
    tg_buf *args_text = &a->args_text, *body = &a->body;
    tg_buf_reset(args_text);
    tg_buf_reset(body);
    tg_audit_record rec = *r;
    /* The digest covers the arguments as sent; the body holds them redacted. Usually no
     * key is redacted, and then the body's arguments are the very text digested: one
     * canonical pass, and a second without redaction only when something was redacted. */
    tg_jdoc_json json_args = TG_JDOC_JSON_INIT; /* only for a record given a jansson value */
    tg_jref args = audit_args_of(r, &json_args);
    const char *const *pat = (const char *const *)a->redact;
    bool redacted = audit_args_canon(args, pat, a->n_redact, args_text);
    char digest[65];
    /* A record about a call whose arguments are not at hand (an approval decided or
     * expired later) carries the call's digest as given; any other record's digest is
     * computed here, never trusted. */
    if (!args.d && r->args_sha256 && strlen(r->args_sha256) == 64) {
        memcpy(digest, r->args_sha256, 65);
    } else if (redacted) {
        tg_buf_reset(body); /* as scratch: the body is written below */
        audit_args_canon(args, NULL, 0, body);
        tg_sha256_hex(body->data, body->len, digest);
        tg_buf_reset(body);
    } else {
        tg_sha256_hex(args_text->data, args_text->len, digest);
    }
    tg_jdoc_json_free(&json_args);
    rec.args = NULL; /* the body's arguments are args_text */
    rec.args_ref = (tg_jref){NULL, -1};
    rec.args_sha256 = digest;
    rec.instance = a->instance;
    if (rec.time_ms == 0) rec.time_ms = tg_wall_ms();
    /* the fields around the arguments take some 600-900 bytes: no regrowth */
    tg_buf_reserve(body, 1024 + (args.d ? args_text->len : 0));
    int rc = audit_record_canonical_text(&rec, args.d ? args_text->data : NULL, body, err);
    if (rc) {
        tg_arena_reset(ar);
        return -1;
    }
    tg_store_audit_row row = {.instance = a->instance, .seq = a->head_seq + 1,
                              .body = body->data, .prev_hash = a->head_hash};
    char hash[65];
    tg_audit_chain_hash(a->head_hash, row.seq, body->data, body->len, hash);
    row.hash = hash;
    audit_row_columns(&rec, ar, &row);

    /* Records are committed in chain order, so an outcome not waited for is durable no
     * later than the next record someone waits for (the next decision). */
    bool wait = a->durability == TG_AUDIT_STRICT &&
                !(a->async_outcomes && r->event == TG_AUDIT_EV_OUTCOME);
    pending_rec *pr = calloc(1, sizeof *pr);
    if (!pr) abort();
    *pr = (pending_rec){.a = a, .cb = wait ? cb : NULL, .ud = ud, .seq = row.seq};
    if (a->sink) {
        tg_buf line = TG_BUF_INIT;
        audit_jsonl_line(&row, &line);
        pr->line = tg_buf_steal(&line);
    }
    /* the store copies the row: the scratch is free again after this */
    rc = tg_store_append_audit(a->store, &row, wait ? 0 : TG_STORE_LAZY, on_stored, pr, err);
    tg_arena_reset(ar);
    if (rc) {
        free(pr->line);
        free(pr);
        return -1;
    }
    a->pending++;
    a->appended++;
    a->head_seq = row.seq;
    memcpy(a->head_hash, hash, 65);
    if (digest_out) memcpy(digest_out, digest, 65);
    if (a->key && a->head_seq - a->cp_seq >= (int64_t)a->cp_every) {
        tg_error cerr;
        if (write_checkpoint(a, &cerr))
            tg_log_warn("audit", "checkpoint not written (retried later): %s", cerr.msg);
    }
    return wait ? 0 : 1;
}

int tg_audit_checkpoint_now(tg_audit *a, tg_error *err)
{
    if (!a->key) return tg_error_set(err, "audit: no signing key configured");
    return write_checkpoint(a, err);
}

void tg_audit_get_stats(const tg_audit *a, tg_audit_stats *st)
{
    st->head_seq = a->head_seq;
    st->appended = a->appended;
    st->failed = a->failed;
    st->checkpoints = a->checkpoints;
    st->pending = a->pending;
}

static void maybe_finish_close(tg_audit *a)
{
    if (!a->closing || a->pending > 0 || !a->timer_closed) return;
    if (a->sink_owned) fclose(a->sink);
    audit_key_free(a->key);
    for (size_t i = 0; i < a->n_redact; i++) free(a->redact[i]);
    free(a->redact);
    free(a->instance);
    tg_arena_free(a->scratch);
    tg_buf_free(&a->args_text);
    tg_buf_free(&a->body);
    void (*done)(void *) = a->close_done;
    void *ud = a->close_ud;
    free(a);
    if (done) done(ud);
}

static void on_timer_closed(uv_handle_t *h)
{
    tg_audit *a = h->data;
    a->timer_closed = 1;
    maybe_finish_close(a);
}

void tg_audit_close(tg_audit *a, void (*done)(void *ud), void *ud)
{
    tg_error err;
    if (write_checkpoint(a, &err))
        tg_log_warn("audit", "final checkpoint not written: %s", err.msg);
    a->closing = 1;
    a->close_done = done;
    a->close_ud = ud;
    uv_timer_stop(&a->timer);
    uv_close((uv_handle_t *)&a->timer, on_timer_closed);
}
