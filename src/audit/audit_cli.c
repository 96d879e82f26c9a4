/*
 * audit_cli.c — `toolgate audit verify|query|export|prune|keygen`, dispatched by the main
 * command (src/cli/main.c) through tg_audit_cli_main. The store is opened without an
 * event loop: everything here is synchronous.
 */
#include "audit/audit_int.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_KEYS 16

static const char usage[] =
    "usage: toolgate audit verify --store URL [--pubkey FILE]... [--require-signed-tail]\n"
    "       toolgate audit query  --store URL [--since DATE] [--until DATE] [--instance ID]\n"
    "                             [--delegator U] [--agent A] [--tool T] [--resource UID]\n"
    "                             [--decision D] [--reason CODE] [--ticket T] [--approval ID]\n"
    "                             [--format table|jsonl]\n"
    "       toolgate audit export --store URL --format jsonl [--instance ID]\n"
    "       toolgate audit prune  --store URL --before DATE --key FILE [--instance ID]\n"
    "       toolgate audit keygen --out FILE\n"
    "DATE: 2026-03-01, 2026-03-01T12:00:00Z (UTC, optional .mmm) or Unix milliseconds.\n"
    "URL: sqlite:PATH, postgres://…, postgresql://… or \"host=… dbname=…\".\n";

typedef struct cli_opts {
    const char *store, *format, *before, *key, *out, *since, *until;
    const char *pubkeys[MAX_KEYS];
    size_t n_pubkeys;
    int require_signed_tail;
    tg_store_audit_filter f;
} cli_opts;

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "toolgate audit: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

/* Parses DATE (see usage) into Unix ms. */
static int parse_date(const char *s, int64_t *out)
{
    size_t n = strlen(s), digits = strspn(s, "0123456789");
    if (n > 0 && digits == n) {
        *out = strtoll(s, NULL, 10);
        return 0;
    }
    struct tm tm = {0};
    int ms = 0, used = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &used) != 3 || used != 10)
        return -1;
    const char *p = s + 10;
    if (*p == 'T' || *p == ' ') {
        if (sscanf(p + 1, "%2d:%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &used) != 3 ||
            used != 8)
            return -1;
        p += 9;
        if (*p == '.') {
            if (sscanf(p + 1, "%3d%n", &ms, &used) != 1 || used != 3) return -1;
            p += 4;
        }
        if (*p != 'Z') return -1;
        p++;
    }
    if (*p || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *out = (int64_t)timegm(&tm) * 1000 + ms;
    return 0;
}

/* Returns 0, or 2 after printing a usage error. */
static int parse_opts(int argc, char **argv, cli_opts *o)
{
    static const struct { const char *name; size_t off; } str_opts[] = {
        {"--store", offsetof(cli_opts, store)},       {"--format", offsetof(cli_opts, format)},
        {"--before", offsetof(cli_opts, before)},     {"--key", offsetof(cli_opts, key)},
        {"--out", offsetof(cli_opts, out)},           {"--since", offsetof(cli_opts, since)},
        {"--until", offsetof(cli_opts, until)},
        {"--instance", offsetof(cli_opts, f.instance)},
        {"--delegator", offsetof(cli_opts, f.delegator)},
        {"--agent", offsetof(cli_opts, f.agent)},     {"--tool", offsetof(cli_opts, f.tool)},
        {"--resource", offsetof(cli_opts, f.resource)},
        {"--decision", offsetof(cli_opts, f.decision)},
        {"--reason", offsetof(cli_opts, f.reason)},   {"--ticket", offsetof(cli_opts, f.ticket)},
        {"--approval", offsetof(cli_opts, f.approval_id)},
    };
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--require-signed-tail") == 0) {
            o->require_signed_tail = 1;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
        int known = 0;
        if (nlen == 8 && strncmp(a, "--pubkey", 8) == 0) {
            if (!val) break;
            if (o->n_pubkeys == MAX_KEYS) return fail("at most %s public keys", "16"), 2;
            o->pubkeys[o->n_pubkeys++] = val;
            known = 1;
        }
        for (size_t k = 0; !known && k < sizeof str_opts / sizeof *str_opts; k++) {
            if (strlen(str_opts[k].name) != nlen || strncmp(a, str_opts[k].name, nlen)) continue;
            if (!val) break;
            *(const char **)((char *)o + str_opts[k].off) = val;
            known = 1;
        }
        if (!known) {
            fail(val || eq ? "unknown option %s" : "option %s needs a value", a);
            fputs(usage, stderr);
            return 2;
        }
        if (!eq) i++;
    }
    if ((o->since && parse_date(o->since, &o->f.since_ms)) ||
        (o->until && parse_date(o->until, &o->f.until_ms)))
        return fail("bad date %s (use 2026-03-01, 2026-03-01T12:00:00Z or Unix ms)",
                    o->since ? o->since : o->until), 2;
    return 0;
}

static tg_store *open_store(const cli_opts *o)
{
    if (!o->store) {
        fail("%s", "--store URL is required");
        return NULL;
    }
    tg_error err;
    tg_store *s = tg_store_open(NULL, o->store, &err);
    if (!s) fail("%s", err.msg);
    return s;
}

/* ------------------------------------------------------------------ verify */

static int cmd_verify(cli_opts *o)
{
    tg_store *s = open_store(o);
    if (!s) return 1;
    tg_audit_verify_report rep;
    tg_error err;
    int rc = tg_audit_verify(s, o->pubkeys, o->n_pubkeys, stdout, &rep, &err);
    tg_store_close(s);
    if (rc) return fail("%s", err.msg);
    printf("%s: %zu instance(s), %zu record(s), %zu checkpoint(s), %zu prune note(s), "
           "%zu problem(s), %zu unsigned tail record(s), signatures %s\n",
           rep.problems ? "FAILED" : "verified", rep.instances, rep.records, rep.checkpoints,
           rep.prunes, rep.problems, rep.unsigned_tail,
           rep.signatures_checked ? "checked" : "NOT checked");
    if (rep.problems) return 1;
    if (o->require_signed_tail && rep.unsigned_tail) {
        printf("FAILED: --require-signed-tail and %zu record(s) are not covered by a "
               "checkpoint\n", rep.unsigned_tail);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ query / export */

typedef struct out_ctx {
    int jsonl;
    size_t rows;
    int error;
} out_ctx;

static void cell(const char *s, int width)
{
    printf("%-*.*s ", width, width, s ? s : "-");
}

static int print_row(void *ud, const tg_store_audit_row *row)
{
    out_ctx *c = ud;
    c->rows++;
    if (c->jsonl) {
        tg_buf line = TG_BUF_INIT;
        audit_jsonl_line(row, &line);
        fputs(line.data, stdout);
        tg_buf_free(&line);
        return 0;
    }
    tg_arena *ar = tg_arena_new(0);
    tg_audit_record r;
    json_t *holder;
    tg_error err;
    if (tg_audit_record_parse(row->body, strlen(row->body), ar, &r, &holder, &err) == 0) {
        char when[32], where[96], reasons[128] = "";
        tg_format_time(r.time_ms, when);
        snprintf(where, sizeof where, "%s:%" PRId64, row->instance, row->seq);
        for (size_t i = 0; i < r.n_reasons; i++)
            snprintf(reasons + strlen(reasons), sizeof reasons - strlen(reasons), "%s%s",
                     i ? "," : "", r.reasons[i]);
        cell(when, 24); cell(where, 14); cell(tg_audit_event_name(r.event), 12);
        cell(r.delegator, 12); cell(r.agent, 14); cell(r.tool, 22); cell(row->resource, 28);
        cell(tg_audit_decision_name(r.decision), 17); cell(reasons, 22);
        cell(tg_audit_outcome_name(r.outcome), 14);
        putchar('\n');
    } else {
        fprintf(stderr, "toolgate audit: %s seq %" PRId64 ": %s\n", row->instance, row->seq,
                err.msg);
        c->error = 1;
    }
    json_decref(holder);
    tg_arena_free(ar);
    return 0;
}

static int cmd_query(cli_opts *o, int is_export)
{
    const char *fmt = o->format ? o->format : is_export ? NULL : "table";
    if (!fmt || (strcmp(fmt, "table") && strcmp(fmt, "jsonl")) || (is_export && strcmp(fmt, "jsonl")))
        return fail("%s", is_export ? "export needs --format jsonl"
                                    : "--format is table or jsonl"), 2;
    tg_store *s = open_store(o);
    if (!s) return 1;
    out_ctx c = {.jsonl = strcmp(fmt, "jsonl") == 0};
    if (!c.jsonl) {
        cell("time", 24); cell("instance:seq", 14); cell("event", 12); cell("delegator", 12);
        cell("agent", 14); cell("tool", 22); cell("resource", 28); cell("decision", 17);
        cell("reasons", 22); cell("outcome", 14);
        putchar('\n');
    }
    tg_error err;
    tg_store_audit_filter f = is_export ? (tg_store_audit_filter){.instance = o->f.instance}
                                        : o->f;
    int rc = tg_store_audit_scan(s, &f, print_row, &c, &err);
    tg_store_close(s);
    if (rc) return fail("%s", err.msg);
    if (!c.jsonl) printf("%zu record(s)\n", c.rows);
    return c.error;
}

/* ------------------------------------------------------------------ prune */

typedef struct first_row {
    int64_t seq;
    char hash[65];
} first_row;

static int take_first(void *ud, const tg_store_audit_row *row)
{
    first_row *f = ud;
    f->seq = row->seq;
    snprintf(f->hash, sizeof f->hash, "%s", row->hash);
    return 1;
}

static int prune_instance(tg_store *s, audit_key *k, const char *inst, int64_t before)
{
    tg_error err;
    int64_t through = 0, deleted = 0;
    first_row first = {0}, last = {0};
    if (tg_store_audit_last_before(s, inst, before, &through, &err)) return fail("%s", err.msg);
    if (through == 0) {
        printf("instance %s: nothing older than the date\n", inst);
        return 0;
    }
    tg_store_audit_filter fl = {.instance = inst, .seq_from = through, .seq_to = through};
    tg_store_audit_filter ff = {.instance = inst, .seq_to = through};
    if (tg_store_audit_scan(s, &fl, take_first, &last, &err) ||
        tg_store_audit_scan(s, &ff, take_first, &first, &err))
        return fail("%s", err.msg);
    if (!last.seq || !first.seq) return fail("records to prune vanished in %s", inst);
    audit_cp cp = {.kind = "prune", .instance = inst, .seq = through, .hash = last.hash,
                   .time_ms = tg_wall_ms(), .before_ms = before,
                   .deleted = through - first.seq + 1};
    tg_store_checkpoint_row row;
    char *blob;
    if (audit_cp_make(&cp, k, &row, &blob, &err)) return fail("%s", err.msg);
    int rc = tg_store_audit_prune(s, &row, through, &deleted, &err);
    free(blob);
    if (rc) return fail("%s", err.msg);
    printf("instance %s: pruned records up to seq %" PRId64 " (%" PRId64 " rows deleted); "
           "signed prune note written\n", inst, through, deleted);
    return 0;
}

static int cmd_prune(cli_opts *o)
{
    int64_t before;
    if (!o->before || parse_date(o->before, &before))
        return fail("%s", "prune needs --before DATE"), 2;
    if (!o->key) return fail("%s", "prune needs --key FILE (the Ed25519 signing key)"), 2;
    tg_error err;
    audit_key *k = audit_key_load(o->key, 1, &err);
    if (!k) return fail("%s", err.msg);
    tg_store *s = open_store(o);
    if (!s) {
        audit_key_free(k);
        return 1;
    }
    /* A prune note vouches for the pruned history: refuse to sign one over a chain that
     * does not verify, or tampering before the date would be laundered. */
    tg_audit_verify_report rep;
    const char *pub[1] = {o->key};
    int rc = 1;
    json_t *insts = NULL;
    if (tg_audit_verify(s, pub, 1, NULL, &rep, &err)) {
        fail("%s", err.msg);
    } else if (rep.problems) {
        fail("%s", "the chain does not verify; run `toolgate audit verify` and investigate "
                   "before pruning");
    } else if ((insts = tg_store_audit_instances(s, &err)) == NULL) {
        fail("%s", err.msg);
    } else {
        rc = 0;
        size_t i;
        json_t *inst;
        json_array_foreach(insts, i, inst) {
            const char *name = json_string_value(inst);
            if (o->f.instance && strcmp(o->f.instance, name) != 0) continue;
            if (prune_instance(s, k, name, before)) rc = 1;
        }
    }
    json_decref(insts);
    tg_store_close(s);
    audit_key_free(k);
    return rc;
}

/* ------------------------------------------------------------------ dispatch */

int tg_audit_cli_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    cli_opts o = {0};
    int rc = parse_opts(argc, argv, &o);
    if (rc) return rc;
    const char *cmd = argv[1];
    if (strcmp(cmd, "verify") == 0) return cmd_verify(&o);
    if (strcmp(cmd, "query") == 0) return cmd_query(&o, 0);
    if (strcmp(cmd, "export") == 0) return cmd_query(&o, 1);
    if (strcmp(cmd, "prune") == 0) return cmd_prune(&o);
    if (strcmp(cmd, "keygen") == 0) {
        if (!o.out) return fail("%s", "keygen needs --out FILE"), 2;
        tg_error err;
        if (tg_audit_keygen(o.out, &err)) return fail("%s", err.msg);
        printf("wrote %s (private, mode 0600) and %s.pub (public: give it to verifiers)\n",
               o.out, o.out);
        return 0;
    }
    fail("unknown command %s", cmd);
    fputs(usage, stderr);
    return 2;
}
