/*
 * verify.c — `toolgate audit verify`: re-derives every instance's chain from the store
 * and checks it against the signed checkpoints.
 *
 * Per instance:
 *   1. checkpoints: signature (by key id, among the given public keys), body matches the
 *      row; the newest valid prune note says where the chain now starts (seq P+1 whose
 *      prev_hash must be the pruned record's hash) — otherwise it starts at seq 1 on 64 '0';
 *   2. records in seq order: no gap, prev_hash links to the previous record's hash, the
 *      hash recomputes over (prev_hash, seq, body), the body is canonical (parse + serialise
 *      gives the same bytes) and the indexed columns match the body;
 *   3. every checkpoint's (seq, hash) matches the record at seq — this is what catches a
 *      rewritten chain (an attacker can recompute unkeyed hashes, not the signature) and
 *      a truncated tail that a checkpoint had covered;
 *   4. records after the newest checkpoint are reported as chained but unsigned: their
 *      truncation or rewrite cannot be detected from the store alone (docs/audit.md).
 * The first problem of an instance is printed and the rest of that instance skipped (one
 * break makes everything after it suspect).
 */
#include "audit/audit_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct vcp {
    char *instance, *kind, *body, *key_id, *signature;
    int64_t seq;
} vcp;

typedef struct vlist {
    vcp *v;
    size_t n, cap;
} vlist;

typedef struct vstate {
    audit_key **keys;
    size_t nkeys;
    FILE *out;
    tg_audit_verify_report *rep;
    const char *instance;
    int bad;
    int64_t expect_seq, first_seq, last_seq, records;
    char prev[65];
    /* this instance's "checkpoint" entries sorted by seq; hashes from their bodies */
    struct { int64_t seq; char hash[65]; } *cps;
    size_t ncps, cpi;
} vstate;

static int collect_cp(void *ud, const tg_store_checkpoint_row *r)
{
    vlist *l = ud;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (!l->v) abort();
    }
    vcp *c = &l->v[l->n++];
    c->instance = strdup(r->instance);
    c->kind = strdup(r->kind);
    c->body = strdup(r->body);
    c->key_id = strdup(r->key_id);
    c->signature = strdup(r->signature);
    c->seq = r->seq;
    if (!c->instance || !c->kind || !c->body || !c->key_id || !c->signature) abort();
    return 0;
}

static void problem(vstate *v, int64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void problem(vstate *v, int64_t seq, const char *fmt, ...)
{
    v->rep->problems++;
    if (v->bad++) return;
    if (!v->out) return;
    fprintf(v->out, "BAD instance=%s seq=%" PRId64 ": ", v->instance, seq);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(v->out, fmt, ap);
    va_end(ap);
    fputc('\n', v->out);
}

static int streq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The indexed columns must say what the body says, or a query would mislead. */
static const char *column_mismatch(const tg_store_audit_row *row, const tg_audit_record *r,
                                   tg_arena *ar)
{
    tg_store_audit_row d = {0};
    audit_row_columns(r, ar, &d);
    if (d.ts_ms != row->ts_ms) return "ts_ms";
    if (!streq(d.delegator, row->delegator)) return "delegator";
    if (!streq(d.agent, row->agent)) return "agent";
    if (!streq(d.tool, row->tool)) return "tool";
    if (!streq(d.decision, row->decision)) return "decision";
    if (!streq(d.ticket, row->ticket)) return "ticket";
    if (!streq(d.approval_id, row->approval_id)) return "approval_id";
    if (!streq(d.resource, row->resource)) return "resource";
    if (!streq(d.resource_path, row->resource_path)) return "resource_path";
    if (!streq(d.reasons, row->reasons)) return "reasons";
    if (!streq(r->instance, row->instance)) return "instance";
    return NULL;
}

/* Compares checkpoints that cover seqs below `upto` with what the chain holds. */
static void check_cps_before(vstate *v, int64_t upto)
{
    while (!v->bad && v->cpi < v->ncps && v->cps[v->cpi].seq < upto) {
        problem(v, v->cps[v->cpi].seq, "a signed checkpoint covers this record but it is "
                "missing (deleted or truncated)");
        v->cpi++;
    }
}

static int check_row(void *ud, const tg_store_audit_row *row)
{
    vstate *v = ud;
    v->rep->records++;
    if (v->bad) return 1;
    if (v->records == 0) v->first_seq = row->seq;
    v->records++;
    v->last_seq = row->seq;
    if (row->seq != v->expect_seq) {
        if (row->seq > v->expect_seq)
            problem(v, v->expect_seq, "gap: records %" PRId64 "..%" PRId64 " are missing "
                    "(deleted)", v->expect_seq, row->seq - 1);
        else
            problem(v, row->seq, "record inside the pruned range (before seq %" PRId64 ")",
                    v->expect_seq);
        return 1;
    }
    if (strcmp(row->prev_hash, v->prev) != 0) {
        problem(v, row->seq, "broken link: prev_hash is not the hash of record %" PRId64
                " (a record was inserted, removed or reordered)", row->seq - 1);
        return 1;
    }
    size_t blen = strlen(row->body);
    char h[65];
    tg_audit_chain_hash(row->prev_hash, row->seq, row->body, blen, h);
    if (strcmp(h, row->hash) != 0) {
        problem(v, row->seq, "hash mismatch: the record was changed after it was written");
        return 1;
    }
    tg_arena *ar = tg_arena_new(0);
    tg_audit_record r;
    json_t *holder = NULL;
    tg_error err;
    tg_buf again = TG_BUF_INIT;
    const char *col;
    if (tg_audit_record_parse(row->body, blen, ar, &r, &holder, &err)) {
        problem(v, row->seq, "record body unreadable: %s", err.msg);
    } else if (tg_audit_record_canonical(&r, &again, &err) || again.len != blen ||
               memcmp(again.data, row->body, blen) != 0) {
        problem(v, row->seq, "record body is not in canonical form");
    } else if ((col = column_mismatch(row, &r, ar)) != NULL) {
        problem(v, row->seq, "column %s differs from the hashed record (edited column)", col);
    }
    tg_buf_free(&again);
    json_decref(holder);
    tg_arena_free(ar);
    if (v->bad) return 1;
    check_cps_before(v, row->seq);
    for (; !v->bad && v->cpi < v->ncps && v->cps[v->cpi].seq == row->seq; v->cpi++)
        if (strcmp(v->cps[v->cpi].hash, row->hash) != 0)
            problem(v, row->seq, "hash differs from the signed checkpoint: the chain was "
                    "rewritten up to here");
    memcpy(v->prev, row->hash, 65);
    v->expect_seq = row->seq + 1;
    return v->bad ? 1 : 0;
}

static audit_key *key_for(vstate *v, const char *key_id)
{
    for (size_t i = 0; i < v->nkeys; i++)
        if (strcmp(audit_key_id(v->keys[i]), key_id) == 0) return v->keys[i];
    return NULL;
}

/* Step 1 for one instance's checkpoints [from, to). */
static void check_checkpoints(vstate *v, vlist *l, size_t from, size_t to)
{
    int64_t prune_seq = 0;
    for (size_t i = from; i < to; i++) {
        vcp *c = &l->v[i];
        audit_cp cp;
        json_t *holder;
        tg_error err;
        int prune = strcmp(c->kind, "prune") == 0;
        if (prune) v->rep->prunes++;
        else v->rep->checkpoints++;
        if (audit_cp_parse(c->body, &cp, &holder, &err)) {
            problem(v, c->seq, "%s unreadable: %s", c->kind, err.msg);
        } else if (strcmp(cp.kind, c->kind) || strcmp(cp.instance, c->instance) ||
                   cp.seq != c->seq || strcmp(cp.key_id, c->key_id)) {
            problem(v, c->seq, "%s row does not match its signed body", c->kind);
        } else if (v->nkeys && !key_for(v, c->key_id)) {
            problem(v, c->seq, "%s signed by key %s, which none of the given public keys "
                    "is (wrong or missing --pubkey)", c->kind, c->key_id);
        } else if (v->nkeys && !audit_key_verify(key_for(v, c->key_id), c->body,
                                                 strlen(c->body), c->signature)) {
            problem(v, c->seq, "bad signature on the %s", c->kind);
        } else if (prune) {
            if (cp.seq >= prune_seq) {
                prune_seq = cp.seq;
                v->expect_seq = cp.seq + 1;
                memcpy(v->prev, cp.hash, 65);
            }
            if (v->out)
                fprintf(v->out, "instance %s: prune note: records 1..%" PRId64 " older than "
                        "%" PRId64 " ms deleted (%" PRId64 " rows)\n", c->instance, cp.seq,
                        cp.before_ms, cp.deleted);
        } else {
            v->cps[v->ncps].seq = cp.seq;
            memcpy(v->cps[v->ncps].hash, cp.hash, 65);
            v->ncps++;
        }
        json_decref(holder);
    }
}

static void verify_instance(vstate *v, tg_store *s, const char *inst, vlist *l, tg_error *err,
                            int *failed)
{
    v->instance = inst;
    v->bad = 0;
    v->expect_seq = 1;
    v->first_seq = v->last_seq = v->records = 0;
    memcpy(v->prev, "0000000000000000000000000000000000000000000000000000000000000000", 65);
    size_t from = 0, to;
    while (from < l->n && strcmp(l->v[from].instance, inst) != 0) from++;
    for (to = from; to < l->n && strcmp(l->v[to].instance, inst) == 0; to++) {}
    v->cps = calloc(to - from + 1, sizeof *v->cps);
    if (!v->cps) abort();
    v->ncps = v->cpi = 0;
    check_checkpoints(v, l, from, to);
    int64_t start = v->expect_seq;
    tg_store_audit_filter f = {.instance = inst};
    if (!v->bad && tg_store_audit_scan(s, &f, check_row, v, err)) *failed = 1;
    if (!v->bad && !*failed) check_cps_before(v, INT64_MAX);
    if (!v->bad && !*failed && v->out) {
        int64_t signed_to = v->ncps ? v->cps[v->ncps - 1].seq : start - 1;
        fprintf(v->out, "instance %s: %" PRId64 " records (seq %" PRId64 "..%" PRId64 "), "
                "%zu checkpoints: OK\n", inst, v->records, v->records ? v->first_seq : 0,
                v->records ? v->last_seq : 0, v->ncps);
        if (v->records && v->last_seq > signed_to) {
            v->rep->unsigned_tail += (size_t)(v->last_seq - signed_to);
            fprintf(v->out, "instance %s: note: records %" PRId64 "..%" PRId64 " come after "
                    "the last checkpoint: chained but not signed, so their truncation or "
                    "rewrite cannot be detected\n", inst, signed_to + 1, v->last_seq);
        }
    }
    free(v->cps);
    v->cps = NULL;
}

int tg_audit_verify(tg_store *s, const char *const *pubkey_paths, size_t n_pubkeys,
                    FILE *out, tg_audit_verify_report *rep, tg_error *err)
{
    memset(rep, 0, sizeof *rep);
    vstate v = {.out = out, .rep = rep, .nkeys = n_pubkeys};
    v.keys = calloc(n_pubkeys + 1, sizeof *v.keys);
    if (!v.keys) abort();
    int rc = -1;
    vlist l = {0};
    json_t *insts = NULL;
    for (size_t i = 0; i < n_pubkeys; i++)
        if (!(v.keys[i] = audit_key_load(pubkey_paths[i], 0, err))) goto out;
    rep->signatures_checked = n_pubkeys > 0;
    if (tg_store_checkpoint_scan(s, NULL, collect_cp, &l, err)) goto out;
    if (!(insts = tg_store_audit_instances(s, err))) goto out;
    size_t i;
    json_t *inst;
    int failed = 0;
    json_array_foreach(insts, i, inst) {
        rep->instances++;
        verify_instance(&v, s, json_string_value(inst), &l, err, &failed);
        if (failed) goto out;
    }
    if (out && !n_pubkeys)
        fprintf(out, "warning: no --pubkey given: checkpoint signatures were NOT checked\n");
    rc = 0;
out:
    for (size_t k = 0; k < n_pubkeys; k++) audit_key_free(v.keys[k]);
    free(v.keys);
    for (size_t k = 0; k < l.n; k++) {
        free(l.v[k].instance); free(l.v[k].kind); free(l.v[k].body);
        free(l.v[k].key_id); free(l.v[k].signature);
    }
    free(l.v);
    json_decref(insts);
    return rc;
}
