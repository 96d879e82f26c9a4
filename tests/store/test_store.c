/*
 * test_store.c — the store + audit behaviour suite, run unchanged on both backends:
 * SQLite in a temporary file (TG_TEST_STORE_URL unset), or the PostgreSQL that
 * with_postgres.sh started (TG_TEST_STORE_URL set, plus TG_PG_STOP / TG_PG_START).
 *
 * Each test starts from empty tables. Tampering is done with plain SQL through the
 * store's own synchronous connection (store_int.h), exactly as someone with database
 * access would, then `verify` must name the problem.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/tg_audit.h"
#include "audit/audit_int.h"
#include "store/store_int.h"

static char tmpdir[256];
static char url[512];
static char key_path[300], pub_path[300], other_pub[300];
static int is_pg;

/* ------------------------------------------------------------------ loop helpers */

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t tick;
    tg_store *s;
    tg_audit *a;
    int closed;
} fixture;

static void on_tick(uv_timer_t *t) { (void)t; }

/* Runs the loop until *flag becomes non-zero or ms elapse; returns *flag. */
static int run_until(fixture *f, const int *flag, uint64_t ms)
{
    uint64_t end = tg_now_ms() + ms;
    while (!*flag && tg_now_ms() < end) uv_run(&f->loop, UV_RUN_ONCE);
    return *flag;
}

static void sql(tg_store *s, const char *q)
{
    tg_error err;
    if (s->be->exec_script(s, q, &err)) fail_msg("SQL %s: %s", q, err.msg);
}

static tg_store *open_store(fixture *f, size_t queue_max)
{
    tg_error err;
    tg_store_options o = {.url = url, .queue_max = queue_max};
    tg_store *s = tg_store_open_opts(&f->loop, &o, &err);
    if (!s) fail_msg("open %s: %s", url, err.msg);
    /* PostgreSQL: the asynchronous connection comes up in the background. */
    for (int i = 0; i < 500 && !tg_store_ready(s); i++) uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(tg_store_ready(s));
    return s;
}

static tg_audit *open_audit(fixture *f, tg_audit_durability d, const char *jsonl)
{
    tg_error err;
    tg_audit_options o = {.instance_id = "gw-1", .signing_key_path = key_path,
                          .checkpoint_every = 5, .durability = d, .jsonl_path = jsonl};
    tg_audit *a = tg_audit_open(&f->loop, f->s, &o, &err);
    if (!a) fail_msg("audit open: %s", err.msg);
    return a;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    uv_loop_init(&f->loop);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, on_tick, 5, 5);
    f->s = open_store(f, 0);
    sql(f->s, "DELETE FROM audit_records; DELETE FROM audit_checkpoints; DELETE FROM api_keys;"
              "DELETE FROM approvals; DELETE FROM grants");
    f->a = open_audit(f, TG_AUDIT_STRICT, NULL);
    *state = f;
    return 0;
}

static void on_closed(void *ud) { *(int *)ud = 1; }

static void close_audit(fixture *f)
{
    if (!f->a) return;
    f->closed = 0;
    tg_audit_close(f->a, on_closed, &f->closed);
    assert_true(run_until(f, &f->closed, 10000));
    f->a = NULL;
}

static int teardown(void **state)
{
    fixture *f = *state;
    close_audit(f);
    tg_store_close(f->s);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

/* ------------------------------------------------------------------ records */

typedef struct done_count {
    int ok, failed, total;
    char last_err[300];
} done_count;

static void on_done(void *ud, int status, const char *errmsg)
{
    done_count *d = ud;
    d->total++;
    if (status == 0) d->ok++;
    else {
        d->failed++;
        snprintf(d->last_err, sizeof d->last_err, "%s", errmsg);
    }
}

static const char *parents_ops[] = {"Jira::Project::\"OPS\""};
static const char *parents_opsx[] = {"Jira::Project::\"OPSX\""};
static const char *reasons_a[] = {"WRITE_IN_PROJECT", "TICKET_OK"};
static const char *reasons_b[] = {"NO_MATCHING_PERMIT"};
static const char *policies[] = {"policy0"};
static const char *act[] = {"ci-bot", "alice"};

/* A decision record; i varies who/what so the query filters have something to select. */
static tg_audit_record sample(int i, json_t *args)
{
    tg_audit_record r = {
        .event = TG_AUDIT_EV_DECISION, .session_id = "sess-1", .rpc_id = "7",
        .traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        .delegator = i % 2 ? "bob" : "alice", .agent = "claude", .act_chain = act,
        .n_act_chain = 2, .auth_method = "oauth", .credential_id = "jti-1",
        .client_ip = "127.0.0.1", .upstream = "jira", .method = "tools/call",
        .tool = i % 3 ? "jira_update_issue" : "jira_get_issue", .resource_type = "Jira::Issue",
        .resource_id = i % 4 == 3 ? "OPSX-1" : "OPS-12",
        .resource_parents = i % 4 == 3 ? parents_opsx : parents_ops, .n_resource_parents = 1,
        .args = args, .intent = "fix the build", .workflow = "incident", .ticket = "OPS-12",
        .decision = i % 5 == 4 ? TG_AUDIT_DECISION_DENY : TG_AUDIT_DECISION_ALLOW,
        .reasons = i % 5 == 4 ? reasons_b : reasons_a, .n_reasons = i % 5 == 4 ? 1 : 2,
        .policies = policies, .n_policies = 1, .policy_version = "v1",
        .approval_id = i == 2 ? "apr-1" : NULL, .approver = i == 2 ? "carol" : NULL,
        .outcome = TG_AUDIT_OUTCOME_NONE, .upstream_latency_us = TG_AUDIT_NO_LATENCY,
        .total_latency_us = 120,
    };
    return r;
}

/* Appends n records in strict mode and waits until all are durable. */
static void append_n(fixture *f, int n)
{
    json_t *args = json_pack("{s:s,s:s,s:{s:s}}", "issue", "OPS-12", "api_token", "s3cr3t",
                             "nested", "Password", "hunter2");
    done_count d = {0};
    for (int i = 0; i < n; i++) {
        tg_audit_record r = sample(i, args);
        tg_error err;
        int rc = tg_audit_append(f->a, &r, on_done, &d, NULL, &err);
        if (rc != 0) fail_msg("append %d: %s", i, err.msg);
    }
    json_decref(args);
    int want = n;
    for (uint64_t end = tg_now_ms() + 20000; d.total < want && tg_now_ms() < end;)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(d.ok, n);
}

/* A chain of 12 records, checkpoints at 5, 10 and (on close) 12. */
static void make_chain(fixture *f)
{
    append_n(f, 12);
    close_audit(f);
}

/* Runs verify; returns the problem count and leaves the account in out. */
static size_t verify(fixture *f, const char *pub, char **out, tg_audit_verify_report *rep)
{
    size_t len;
    FILE *m = open_memstream(out, &len);
    tg_error err;
    const char *keys[1] = {pub};
    if (tg_audit_verify(f->s, keys, pub ? 1 : 0, m, rep, &err)) fail_msg("verify: %s", err.msg);
    fclose(m);
    return rep->problems;
}

static void expect_problem(fixture *f, const char *pub, const char *needle)
{
    char *out = NULL;
    tg_audit_verify_report rep;
    size_t problems = verify(f, pub, &out, &rep);
    if (problems == 0 || !strstr(out, needle))
        fail_msg("expected a problem with \"%s\", verify said:\n%s", needle, out);
    free(out);
}

static void expect_ok(fixture *f, tg_audit_verify_report *rep)
{
    char *out = NULL;
    if (verify(f, pub_path, &out, rep)) fail_msg("verify failed:\n%s", out);
    free(out);
}

/* Runs `toolgate audit …` with stdout captured into cli_out (freed by the next call). */
static char *cli_out;

static int cli(int argc, char **argv)
{
    char path[300];
    snprintf(path, sizeof path, "%s/cli.out", tmpdir);
    fflush(stdout);
    int saved = dup(1), fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 1);
    int rc = tg_audit_cli_main(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    off_t n = lseek(fd, 0, SEEK_END);
    free(cli_out);
    cli_out = calloc(1, (size_t)n + 1);
    assert_int_equal(pread(fd, cli_out, (size_t)n, 0), n);
    close(fd);
    return rc;
}

static size_t lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* ------------------------------------------------------------------ tests */

static int rows_cb(void *ud, const tg_store_audit_row *row)
{
    json_t *a = ud;
    json_array_append_new(a, json_pack("{s:I,s:s,s:s,s:s}", "seq", (json_int_t)row->seq,
                                       "body", row->body, "hash", row->hash,
                                       "prev", row->prev_hash));
    return 0;
}

static json_t *rows(fixture *f, const tg_store_audit_filter *flt)
{
    json_t *a = json_array();
    tg_error err;
    if (tg_store_audit_scan(f->s, flt, rows_cb, a, &err)) fail_msg("scan: %s", err.msg);
    return a;
}

static void test_round_trip(void **state)
{
    fixture *f = *state;
    append_n(f, 3);
    json_t *all = rows(f, NULL);
    assert_int_equal(json_array_size(all), 3);
    const char *body = json_string_value(json_object_get(json_array_get(all, 0), "body"));
    tg_arena *ar = tg_arena_new(0);
    tg_audit_record r;
    json_t *holder;
    tg_error err;
    assert_int_equal(tg_audit_record_parse(body, strlen(body), ar, &r, &holder, &err), 0);
    assert_string_equal(r.delegator, "alice");
    assert_string_equal(r.instance, "gw-1");
    assert_string_equal(r.resource_parents[0], "Jira::Project::\"OPS\"");
    assert_int_equal(r.n_act_chain, 2);
    assert_string_equal(r.rpc_id, "7");
    /* stored redacted, digested unredacted */
    assert_string_equal(json_string_value(json_object_get(r.args, "api_token")), "[REDACTED]");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r.args, "nested"),
                                                          "Password")), "[REDACTED]");
    assert_string_equal(json_string_value(json_object_get(r.args, "issue")), "OPS-12");
    assert_null(strstr(body, "s3cr3t"));
    json_t *orig = json_pack("{s:s,s:s,s:{s:s}}", "issue", "OPS-12", "api_token", "s3cr3t",
                             "nested", "Password", "hunter2");
    char digest[65];
    tg_audit_args_digest(orig, digest);
    assert_string_equal(r.args_sha256, digest);
    json_decref(orig);
    json_decref(holder);
    tg_arena_free(ar);
    /* chain links */
    assert_string_equal(json_string_value(json_object_get(json_array_get(all, 1), "prev")),
                        json_string_value(json_object_get(json_array_get(all, 0), "hash")));
    json_decref(all);
    tg_audit_verify_report rep;
    close_audit(f);
    expect_ok(f, &rep);
    assert_int_equal(rep.records, 3);
    assert_int_equal(rep.unsigned_tail, 0);  /* close wrote a final checkpoint */
}

static int count_cb(void *ud, int ncols, const char *const *v)
{
    if (ncols > 0 && v[0]) *(int64_t *)ud = strtoll(v[0], NULL, 10);
    return 0;
}

/* The lookup indexes of audit_records that migration 2 drops, still present. */
static int64_t lookup_indexes(tg_store *s)
{
    int64_t n = -1;
    tg_error err;
    const char *q = s->kind == TG_STORE_SQLITE
        ? "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN "
          "('audit_records_delegator', 'audit_records_agent', 'audit_records_tool')"
        : "SELECT count(*) FROM pg_indexes WHERE indexname IN "
          "('audit_records_delegator', 'audit_records_agent', 'audit_records_tool')";
    if (s->be->exec(s, q, NULL, 0, count_cb, &n, NULL, &err)) fail_msg("%s", err.msg);
    return n;
}

static void test_migrations_idempotent(void **state)
{
    fixture *f = *state;
    tg_error err;
    assert_int_equal(tg_store_schema_version(f->s, &err), 2);
    assert_int_equal(lookup_indexes(f->s), 0);
    /* A database left at version 1 by an older toolgate: the upgrade drops the three
     * lookup indexes and keeps the records. */
    append_n(f, 1);
    sql(f->s, "CREATE INDEX audit_records_delegator ON audit_records (delegator, ts_ms);"
              "CREATE INDEX audit_records_agent ON audit_records (agent, ts_ms);"
              "CREATE INDEX audit_records_tool ON audit_records (tool, ts_ms);"
              "UPDATE schema_version SET version = 1");
    assert_int_equal(lookup_indexes(f->s), 3);
    {
        tg_store *s2 = tg_store_open(NULL, url, &err);
        if (!s2) fail_msg("reopen at version 1: %s", err.msg);
        assert_int_equal(tg_store_schema_version(s2, &err), 2);
        assert_int_equal(lookup_indexes(s2), 0);
        tg_store_close(s2);
    }
    /* a second and third open of the same database apply nothing and keep the data */
    append_n(f, 1);
    for (int i = 0; i < 2; i++) {
        tg_store *s2 = tg_store_open(NULL, url, &err);
        if (!s2) fail_msg("reopen: %s", err.msg);
        assert_int_equal(tg_store_schema_version(s2, &err), 2);
        int64_t seq;
        char hash[65];
        assert_int_equal(tg_store_head(s2, "gw-1", &seq, hash, &err), 0);
        assert_int_equal(seq, 2);
        tg_store_close(s2);
    }
}

static void test_group_commit(void **state)
{
    fixture *f = *state;
    uint64_t t0 = tg_now_ms(), c0 = tg_store_commits(f->s);
    append_n(f, 3000);  /* all handed over in one loop iteration: they share transactions */
    uint64_t ms = tg_now_ms() - t0, commits = tg_store_commits(f->s) - c0;
    print_message("3000 strict appends (+600 checkpoints) in %" PRIu64 " commits\n", commits);
    assert_true(commits >= 1 && commits <= 1800);   /* rows share commits */
    close_audit(f);
    tg_audit_verify_report rep;
    expect_ok(f, &rep);
    assert_int_equal(rep.records, 3000);
    assert_true(rep.checkpoints >= 600);
    /* one fsync per record would take far longer than this on any disk */
    print_message("3000 strict appends in %" PRIu64 " ms\n", ms);
    assert_true(ms < 60000);
}

static void test_batched_and_sink(void **state)
{
    fixture *f = *state;
    close_audit(f);
    char sink[300];
    snprintf(sink, sizeof sink, "%s/sink.jsonl", tmpdir);
    unlink(sink);
    f->a = open_audit(f, TG_AUDIT_BATCHED, sink);
    tg_audit_record r = sample(0, NULL);
    tg_error err;
    for (int i = 0; i < 20; i++)
        assert_int_equal(tg_audit_append(f->a, &r, NULL, NULL, NULL, &err), 1);
    close_audit(f);   /* waits for the queue to drain */
    json_t *all = rows(f, NULL);
    assert_int_equal(json_array_size(all), 20);
    json_decref(all);
    FILE *in = fopen(sink, "r");
    assert_non_null(in);
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, in)) {
        json_t *j = json_loads(line, 0, NULL);
        assert_non_null(j);
        assert_int_equal(json_integer_value(json_object_get(j, "seq")), n + 1);
        assert_int_equal(strlen(json_string_value(json_object_get(j, "hash"))), 64);
        assert_non_null(json_object_get(j, "record"));
        json_decref(j);
        n++;
    }
    fclose(in);
    assert_int_equal(n, 20);
}

/* Runs the loop for about ms. */
static void spin(fixture *f, uint64_t ms)
{
    for (uint64_t end = tg_now_ms() + ms; tg_now_ms() < end;) uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* Waits (running the loop) until the audit writer has nothing pending; the time it took. */
static uint64_t drain(fixture *f)
{
    uint64_t t0 = tg_now_ms();
    tg_audit_stats st;
    for (uint64_t end = t0 + 20000; tg_now_ms() < end;) {
        tg_audit_get_stats(f->a, &st);
        if (st.pending == 0) break;
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(st.pending, 0);
    return tg_now_ms() - t0;
}

/* The batched mode's commit delay: records appended a few ms apart, which would each get
 * their own commit, share one; the strict mode commits each at once (SQLite; PostgreSQL
 * pipelines instead). */
static void test_commit_delay(void **state)
{
    fixture *f = *state;
    if (is_pg) skip();
    tg_audit_record r = sample(0, NULL);
    tg_error err;
    /* strict: each record is durable on its own, without waiting for a delay */
    uint64_t c0 = tg_store_commits(f->s), t0 = tg_now_ms();
    for (int i = 0; i < 3; i++) append_n(f, 1);
    assert_int_equal(tg_store_commits(f->s) - c0, 3);
    assert_true(tg_now_ms() - t0 < 10000);
    close_audit(f);

    f->a = open_audit(f, TG_AUDIT_BATCHED, NULL);
    tg_store_set_commit_delay(f->s, 300);  /* longer than the loop below, even on a slow VM */
    c0 = tg_store_commits(f->s);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(tg_audit_append(f->a, &r, NULL, NULL, NULL, &err), 1);
        spin(f, 5);
    }
    drain(f);
    uint64_t commits = tg_store_commits(f->s) - c0;
    print_message("10 batched records 5 ms apart: %" PRIu64 " commit(s)\n", commits);
    assert_true(commits >= 1 && commits <= 2);
    close_audit(f);
    json_t *all = rows(f, NULL);
    assert_int_equal(json_array_size(all), 3 + 10);
    json_decref(all);
}

/* A record nobody waits for (strict mode's outcome with async outcomes) waits for the
 * commit delay, unless a record somebody waits for (the next call's decision) arrives:
 * then it shares that record's commit, and the waiting one never waits for the delay. */
static void test_lazy_appends(void **state)
{
    fixture *f = *state;
    if (is_pg) skip(); /* PostgreSQL pipelines every append at once */
    close_audit(f);
    tg_error err;
    tg_audit_options o = {.instance_id = "gw-1", .durability = TG_AUDIT_STRICT,
                          .async_outcomes = 1};
    f->a = tg_audit_open(&f->loop, f->s, &o, &err);
    if (!f->a) fail_msg("audit open: %s", err.msg);
    tg_store_set_commit_delay(f->s, 2000);
    tg_audit_record decision = sample(0, NULL), outcome = decision;
    outcome.event = TG_AUDIT_EV_OUTCOME;
    outcome.outcome = TG_AUDIT_OUTCOME_OK;

    uint64_t c0 = tg_store_commits(f->s);
    assert_int_equal(tg_audit_append(f->a, &outcome, NULL, NULL, NULL, &err), 1);
    spin(f, 50);
    assert_int_equal(tg_store_commits(f->s) - c0, 0); /* held by the delay */
    done_count d = {0};
    uint64_t t0 = tg_now_ms();
    assert_int_equal(tg_audit_append(f->a, &decision, on_done, &d, NULL, &err), 0);
    for (uint64_t end = t0 + 10000; d.total == 0 && tg_now_ms() < end;)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(d.ok, 1);
    assert_true(tg_now_ms() - t0 < 1500);               /* not the 2 s delay */
    assert_int_equal(tg_store_commits(f->s) - c0, 1);   /* one commit for both */

    /* alone, a lazy record is committed once the delay has passed */
    assert_int_equal(tg_audit_append(f->a, &outcome, NULL, NULL, NULL, &err), 1);
    assert_true(drain(f) >= 1500);
    assert_int_equal(tg_store_commits(f->s) - c0, 2);
    close_audit(f);
    json_t *all = rows(f, NULL);
    assert_int_equal(json_array_size(all), 3);
    json_decref(all);
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* The checkpointer copies WAL pages into the database while appends go on, and the WAL
 * starts over instead of growing with every record (SQLite: the writer no longer does
 * this copy inside its commits). */
static void expect_stored_chain(fixture *f, size_t n);

static void test_wal_checkpointed(void **state)
{
    fixture *f = *state;
    if (is_pg) skip();
    close_audit(f);
    f->a = open_audit(f, TG_AUDIT_BATCHED, NULL);
    char db[600], wal[610];
    snprintf(db, sizeof db, "%s", url + strlen("sqlite:"));
    snprintf(wal, sizeof wal, "%s-wal", db);
    off_t db0 = file_size(db);
    store_walbuf_counts k0, k1;
    store_walbuf_counts_get(&k0);
    char pad[3001];
    memset(pad, 'x', 3000);
    pad[3000] = 0;
    json_t *args = json_pack("{s:s}", "pad", pad);
    tg_error err;
    int n = 0;
    /* ~4 KiB per record: 16 MB of WAL frames after 4000, four times the threshold. Rounds
     * with a pause, so the low-priority checkpointer gets a turn on a busy machine. */
    for (uint64_t end = tg_now_ms() + 30000; tg_now_ms() < end;) {
        for (int i = 0; i < 200; i++, n++) {
            tg_audit_record r = sample(n, args);
            assert_int_equal(tg_audit_append(f->a, &r, NULL, NULL, NULL, &err), 1);
        }
        drain(f);
        spin(f, 20);
        if (n >= 4000 && file_size(db) - db0 > 8 * 1024 * 1024) break;
    }
    json_decref(args);
    off_t grown = file_size(db) - db0, walsz = file_size(wal);
    store_walbuf_counts_get(&k1);
    uint64_t pages = k1.db_pages - k0.db_pages, writes = k1.db_writes - k0.db_writes,
             reads = k1.wal_reads - k0.wal_reads;
    print_message("%d records: database +%lld bytes, WAL %lld bytes; the checkpoints copied "
                  "%llu pages in %llu writes and %llu WAL reads\n", n, (long long)grown,
                  (long long)walsz, (unsigned long long)pages, (unsigned long long)writes,
                  (unsigned long long)reads);
    assert_true(grown > 8 * 1024 * 1024);   /* copied while running, not only at close */
    assert_true(walsz < 12 * 1024 * 1024);  /* started over: smaller than what was written */
    /* The copy is gathered (sqlite_walbuf.c): the records' pages are consecutive, so far
     * fewer writes and reads than pages (SQLite alone makes one pwrite and one pread per
     * page); index pages and run ends account for the rest. */
    assert_true(pages >= 2000);
    assert_true(writes * 4 <= pages);
    assert_true(reads * 4 <= pages);
    close_audit(f);
    /* every record, read back from what the gathered copies wrote, still chains */
    expect_stored_chain(f, (size_t)n);
}

static void test_queue_full(void **state)
{
    fixture *f = *state;
    close_audit(f);
    tg_store *s = f->s;
    f->s = open_store(f, 4);
    f->a = open_audit(f, TG_AUDIT_STRICT, NULL);
    tg_audit_record r = sample(0, NULL);
    tg_error err;
    done_count d = {0};
    int accepted = 0, refused = 0;
    for (int i = 0; i < 10; i++) {
        if (tg_audit_append(f->a, &r, on_done, &d, NULL, &err) == 0) accepted++;
        else refused++;
    }
    /* 4 records (the 5th would be the checkpoint) fit; the rest are refused at once */
    assert_true(accepted <= 4);
    assert_true(refused >= 6);
    assert_non_null(strstr(err.msg, "queue full"));
    close_audit(f);
    assert_int_equal(d.ok, accepted);
    tg_store_close(f->s);
    f->s = s;
    tg_audit_verify_report rep;
    expect_ok(f, &rep);
}

/* Appends are reused once completed (store.c keeps spare ops of one size): records of sizes
 * on both sides of that size, appended in waves so that every wave reuses the last one's
 * ops, are each stored whole, and the chain verifies. A reused op that kept a string of
 * its previous record, or copied past its room, would show in the bodies read back. */
static void test_spare_ops_reused(void **state)
{
    fixture *f = *state;
    static const size_t sizes[] = {10, 3000, 5000, 40, 2500, 30000, 1500};
    enum { WAVES = 6, PER_WAVE = 20 };
    char *want[WAVES * PER_WAVE];
    done_count d = {0};
    size_t k = 0;
    for (int w = 0; w < WAVES; w++) {
        for (int i = 0; i < PER_WAVE; i++, k++) {
            size_t n = sizes[k % (sizeof sizes / sizeof *sizes)];
            char *text = malloc(n + 1);
            for (size_t j = 0; j < n; j++) text[j] = (char)('a' + (k + j) % 26);
            text[n] = 0;
            json_t *args = json_pack("{s:I,s:s}", "n", (json_int_t)k, "text", text);
            tg_audit_record r = sample((int)k, args);
            tg_error err;
            if (tg_audit_append(f->a, &r, on_done, &d, NULL, &err) != 0)
                fail_msg("append: %s", err.msg);
            json_decref(args);
            want[k] = text;
        }
        drain(f);
    }
    assert_int_equal(d.ok, WAVES * PER_WAVE);
    json_t *all = rows(f, NULL);
    assert_int_equal(json_array_size(all), WAVES * PER_WAVE);
    tg_arena *ar = tg_arena_new(0);
    for (k = 0; k < WAVES * PER_WAVE; k++) {
        const char *body = json_string_value(json_object_get(json_array_get(all, k), "body"));
        tg_audit_record r;
        json_t *holder;
        tg_error err;
        if (tg_audit_record_parse(body, strlen(body), ar, &r, &holder, &err) != 0)
            fail_msg("record %zu: %s", k, err.msg);
        assert_int_equal(json_integer_value(json_object_get(r.args, "n")), (json_int_t)k);
        assert_string_equal(json_string_value(json_object_get(r.args, "text")), want[k]);
        json_decref(holder);
        free(want[k]);
    }
    tg_arena_free(ar);
    json_decref(all);
    tg_audit_verify_report rep;
    expect_ok(f, &rep);
}

/* The store holds n records and their chain verifies. */
static void expect_stored_chain(fixture *f, size_t n)
{
    json_t *all = rows(f, NULL);
    assert_int_equal(json_array_size(all), n);
    json_decref(all);
    tg_audit_verify_report rep;
    expect_ok(f, &rep);
}

/* Batched mode's one record per call: a call reserves a place before it is forwarded, so
 * its record cannot be refused for room afterwards; the places held count against the
 * queue for everyone else; a place not used is given back. */
static void test_reserved_places(void **state)
{
    fixture *f = *state;
    tg_error err;
    assert_int_equal(tg_audit_reserve(f->a, &err), 0); /* strict: write the decision now */
    close_audit(f);
    tg_audit_options o = {.instance_id = "gw-1", .durability = TG_AUDIT_BATCHED,
                          .batched_queue_max = 4};
    f->a = tg_audit_open(&f->loop, f->s, &o, &err);
    if (!f->a) fail_msg("audit open: %s", err.msg);
    for (int i = 0; i < 4; i++) assert_int_equal(tg_audit_reserve(f->a, &err), 1);
    tg_audit_record r = sample(0, NULL);
    assert_int_equal(tg_audit_reserve(f->a, &err), -1);
    assert_non_null(strstr(err.msg, "queue full"));
    assert_non_null(strstr(err.msg, "4 places held"));
    assert_int_equal(tg_audit_append(f->a, &r, NULL, NULL, NULL, &err), -1);
    /* the record of a call that reserved goes in although the queue counts as full */
    tg_audit_record rc = sample(1, NULL);
    rc.event = TG_AUDIT_EV_OUTCOME;
    assert_int_equal(tg_audit_append_reserved(f->a, &rc, &err), 1);
    assert_int_equal(tg_audit_append(f->a, &r, NULL, NULL, NULL, &err), -1);
    tg_audit_unreserve(f->a); /* a call that ended unrecorded gives its place back */
    assert_int_equal(tg_audit_append(f->a, &r, NULL, NULL, NULL, &err), 1);
    tg_audit_unreserve(f->a);
    tg_audit_unreserve(f->a);
    close_audit(f);
    expect_stored_chain(f, 2);
}

static uint64_t wal_writes(void)
{
    store_walbuf_counts c;
    store_walbuf_counts_get(&c);
    return c.wal_writes;
}

/* The writer's WAL frames reach the file in about one write per commit (sqlite_walbuf.c),
 * not two per frame: strict records one commit each, then 200 batched records. */
static void test_wal_writes_per_commit(void **state)
{
    fixture *f = *state;
    if (f->s->kind != TG_STORE_SQLITE) skip();
    uint64_t c0 = tg_store_commits(f->s), w0 = wal_writes();
    for (int i = 0; i < 10; i++) append_n(f, 1); /* strict, one at a time: a commit each */
    uint64_t commits = tg_store_commits(f->s) - c0, writes = wal_writes() - w0;
    assert_true(commits >= 10);
    /* every commit wrote through the writer's VFS; a WAL restart adds its header write:
     * two writes per commit at most, never two per frame */
    assert_true(writes >= commits);
    assert_true(writes <= 2 * commits);
    close_audit(f);
    f->a = open_audit(f, TG_AUDIT_BATCHED, NULL);
    tg_audit_record r = sample(0, NULL);
    tg_error err;
    c0 = tg_store_commits(f->s);
    w0 = wal_writes();
    for (int i = 0; i < 200; i++)
        assert_int_equal(tg_audit_append(f->a, &r, NULL, NULL, NULL, &err), 1);
    close_audit(f); /* waits for the queue to drain */
    commits = tg_store_commits(f->s) - c0;
    writes = wal_writes() - w0;
    assert_true(commits >= 1);
    assert_true(writes >= commits);
    assert_true(writes <= 2 * commits + 8); /* + one per 120 KiB of frames */
    expect_stored_chain(f, 210);
}

static void test_verify_ok_and_wrong_key(void **state)
{
    fixture *f = *state;
    make_chain(f);
    tg_audit_verify_report rep;
    expect_ok(f, &rep);
    assert_int_equal(rep.records, 12);
    assert_int_equal(rep.checkpoints, 3);
    assert_true(rep.signatures_checked);
    expect_problem(f, other_pub, "none of the given public keys");
}

static void test_tamper_edit(void **state)
{
    fixture *f = *state;
    make_chain(f);
    sql(f->s, "UPDATE audit_records SET body = replace(body, '\"allow\"', '\"deny\"') "
              "WHERE seq = 3");
    expect_problem(f, pub_path, "seq=3: hash mismatch");
}

static void test_tamper_column(void **state)
{
    fixture *f = *state;
    make_chain(f);
    sql(f->s, "UPDATE audit_records SET decision = 'deny' WHERE seq = 3");
    expect_problem(f, pub_path, "seq=3: column decision differs");
}

static void test_tamper_delete_middle(void **state)
{
    fixture *f = *state;
    make_chain(f);
    sql(f->s, "DELETE FROM audit_records WHERE seq = 6");
    expect_problem(f, pub_path, "seq=6: gap");
}

/* What an attacker with the source code does: parse a stored record, change it, and
 * serialise it canonically again, with matching index columns. */
static void forge(const char *body, tg_audit_decision dec, const char *intent, tg_arena *ar,
                  tg_buf *out, tg_store_audit_row *cols)
{
    tg_audit_record r;
    json_t *holder;
    tg_error err;
    assert_int_equal(tg_audit_record_parse(body, strlen(body), ar, &r, &holder, &err), 0);
    r.decision = dec;
    r.intent = intent;
    assert_int_equal(tg_audit_record_canonical(&r, out, &err), 0);
    audit_row_columns(&r, ar, cols);
    /* the columns point into the parsed JSON, which goes away now */
    const char **keep[] = {&cols->delegator, &cols->agent, &cols->tool, &cols->ticket,
                           &cols->approval_id};
    for (size_t i = 0; i < sizeof keep / sizeof *keep; i++)
        if (*keep[i]) *keep[i] = tg_arena_strdup(ar, *keep[i]);
    json_decref(holder);
}

/* Inserts a forged record at seq 7 (renumbering the rest), with a correct hash of its own. */
static void test_tamper_insert(void **state)
{
    fixture *f = *state;
    make_chain(f);
    tg_store_audit_filter flt = {.seq_from = 6, .seq_to = 7};
    json_t *two = rows(f, &flt);
    const char *prev = json_string_value(json_object_get(json_array_get(two, 0), "hash"));
    const char *body7 = json_string_value(json_object_get(json_array_get(two, 1), "body"));
    tg_buf forged = TG_BUF_INIT;
    tg_arena *ar = tg_arena_new(0);
    tg_store_audit_row row = {0};
    forge(body7, TG_AUDIT_DECISION_DENY, "forged", ar, &forged, &row);
    char h[65];
    tg_audit_chain_hash(prev, 7, forged.data, forged.len, h);
    sql(f->s, "UPDATE audit_records SET seq = seq + 1000 WHERE seq >= 7");
    sql(f->s, "UPDATE audit_records SET seq = seq - 999 WHERE seq >= 1000");
    row.instance = "gw-1";
    row.seq = 7;
    row.body = forged.data;
    row.prev_hash = prev;
    row.hash = h;
    store_param pr[15];
    store_audit_params(&row, pr);
    tg_error err;
    assert_int_equal(f->s->be->exec(f->s, store_sql_insert_audit, pr, 15, NULL, NULL, NULL, &err), 0);
    tg_buf_free(&forged);
    tg_arena_free(ar);
    json_decref(two);
    expect_problem(f, pub_path, "seq=8: broken link");
}

/* Edits record 3 and recomputes every later hash: only the signed checkpoint can tell. */
static void test_tamper_rechained(void **state)
{
    fixture *f = *state;
    make_chain(f);
    json_t *all = rows(f, NULL);
    char prev[65];
    snprintf(prev, sizeof prev, "%s",
             json_string_value(json_object_get(json_array_get(all, 1), "hash")));
    for (size_t i = 2; i < json_array_size(all); i++) {
        json_t *r = json_array_get(all, i);
        tg_buf body = TG_BUF_INIT;
        const char *stored = json_string_value(json_object_get(r, "body"));
        if (i == 2) {
            tg_arena *ar = tg_arena_new(0);
            tg_store_audit_row cols;
            forge(stored, TG_AUDIT_DECISION_ALLOW, "nothing to see", ar, &body, &cols);
            tg_arena_free(ar);
        } else {
            tg_buf_appends(&body, stored);
        }
        char h[65];
        int64_t seq = json_integer_value(json_object_get(r, "seq"));
        tg_audit_chain_hash(prev, seq, body.data, body.len, h);
        store_param p[4] = {{.type = SP_TEXT, .s = body.data}, {.type = SP_TEXT, .s = prev},
                            {.type = SP_TEXT, .s = h}, {.type = SP_INT, .i = seq}};
        tg_error err;
        assert_int_equal(f->s->be->exec(f->s, "UPDATE audit_records SET body = ?, prev_hash = ?,"
                                        " hash = ? WHERE seq = ?", p, 4, NULL, NULL, NULL, &err), 0);
        memcpy(prev, h, 65);
        tg_buf_free(&body);
    }
    json_decref(all);
    expect_problem(f, pub_path, "seq=5: hash differs from the signed checkpoint");
}

static void test_tamper_reorder(void **state)
{
    fixture *f = *state;
    make_chain(f);
    sql(f->s, "UPDATE audit_records SET seq = -1 WHERE seq = 4");
    sql(f->s, "UPDATE audit_records SET seq = 4 WHERE seq = 5");
    sql(f->s, "UPDATE audit_records SET seq = 5 WHERE seq = -1");
    expect_problem(f, pub_path, "seq=4: broken link");
}

static void test_tamper_truncate(void **state)
{
    fixture *f = *state;
    make_chain(f);
    /* the tail 11..12 was covered by the final checkpoint: truncation is detected */
    sql(f->s, "DELETE FROM audit_records WHERE seq >= 11");
    expect_problem(f, pub_path, "seq=12: a signed checkpoint covers this record but it is missing");
}

static void test_truncate_unsigned_tail(void **state)
{
    fixture *f = *state;
    make_chain(f);
    /* Someone deletes the newest checkpoint: records 11..12 become an unsigned tail. */
    sql(f->s, "DELETE FROM audit_checkpoints WHERE seq = 12");
    tg_audit_verify_report rep;
    expect_ok(f, &rep);
    assert_int_equal(rep.unsigned_tail, 2);
    /* ... and then the tail itself: from the store alone this cannot be detected (the
     * documented limit; the JSON Lines copy or a verify run that saw seq 12 can). */
    sql(f->s, "DELETE FROM audit_records WHERE seq >= 11");
    expect_ok(f, &rep);
    assert_int_equal(rep.records, 10);
    assert_int_equal(rep.unsigned_tail, 0);
}

static void test_bad_signature(void **state)
{
    fixture *f = *state;
    make_chain(f);
    /* Always a different first character (A↔B, anything else → A), so the signature
     * changes whatever it starts with. */
    sql(f->s, "UPDATE audit_checkpoints SET signature = "
              "CASE WHEN substr(signature, 1, 1) = 'A' THEN 'B' ELSE 'A' END || substr(signature, 2) "
              "WHERE seq = 10");
    expect_problem(f, pub_path, "seq=10: bad signature on the checkpoint");
}

static void test_bad_checkpoint_body(void **state)
{
    fixture *f = *state;
    make_chain(f);
    /* moving a checkpoint to cover another record breaks the row/body binding */
    sql(f->s, "UPDATE audit_checkpoints SET seq = 9 WHERE seq = 10");
    expect_problem(f, pub_path, "checkpoint row does not match its signed body");
}

static size_t count(fixture *f, tg_store_audit_filter flt)
{
    json_t *a = rows(f, &flt);
    size_t n = json_array_size(a);
    json_decref(a);
    return n;
}

static void test_query_filters(void **state)
{
    fixture *f = *state;
    append_n(f, 20);
    assert_int_equal(count(f, (tg_store_audit_filter){0}), 20);
    assert_int_equal(count(f, (tg_store_audit_filter){.delegator = "bob"}), 10);
    assert_int_equal(count(f, (tg_store_audit_filter){.tool = "jira_get_issue"}), 7);
    assert_int_equal(count(f, (tg_store_audit_filter){.decision = "deny"}), 4);
    assert_int_equal(count(f, (tg_store_audit_filter){.reason = "NO_MATCHING_PERMIT"}), 4);
    assert_int_equal(count(f, (tg_store_audit_filter){.reason = "NO_MATCHING"}), 0);
    assert_int_equal(count(f, (tg_store_audit_filter){.approval_id = "apr-1"}), 1);
    assert_int_equal(count(f, (tg_store_audit_filter){.ticket = "OPS-12"}), 20);
    assert_int_equal(count(f, (tg_store_audit_filter){.agent = "nobody"}), 0);
    /* resource with parents: everything in project OPS, not OPSX */
    assert_int_equal(count(f, (tg_store_audit_filter){.resource = "Jira::Project::\"OPS\""}), 15);
    assert_int_equal(count(f, (tg_store_audit_filter){.resource = "Jira::Project::\"OPSX\""}), 5);
    assert_int_equal(count(f, (tg_store_audit_filter){.resource = "Jira::Issue::\"OPS-12\""}), 15);
    assert_int_equal(count(f, (tg_store_audit_filter){.resource = "Jira::Project::\"OP\""}), 0);
    assert_int_equal(count(f, (tg_store_audit_filter){.delegator = "alice",
                                                      .resource = "Jira::Project::\"OPSX\""}), 0);
    int64_t now = tg_wall_ms();
    assert_int_equal(count(f, (tg_store_audit_filter){.since_ms = now - 600000}), 20);
    {   /* a time window is read through the time index and sorted: still in chain order */
        tg_store_audit_filter win = {.since_ms = now - 600000, .delegator = "bob"};
        json_t *a = rows(f, &win);
        assert_int_equal(json_array_size(a), 10);
        for (size_t i = 1; i < json_array_size(a); i++)
            assert_true(json_integer_value(json_object_get(json_array_get(a, i), "seq")) >
                        json_integer_value(json_object_get(json_array_get(a, i - 1), "seq")));
        json_decref(a);
    }
    assert_int_equal(count(f, (tg_store_audit_filter){.until_ms = now - 600000}), 0);
    /* the CLI runs the same filters */
    char *argv[] = {"audit", "query", "--store", url, "--resource", "Jira::Project::\"OPS\"",
                    "--format", "jsonl", NULL};
    fflush(stdout);
    assert_int_equal(cli(8, argv), 0);
    assert_int_equal(lines(cli_out), 15);
    char *table[] = {"audit", "query", "--store", url, "--decision", "deny", NULL};
    assert_int_equal(cli(6, table), 0);
    assert_non_null(strstr(cli_out, "4 record(s)"));
    char *bad[] = {"audit", "query", "--store", url, "--since", "yesterday", NULL};
    assert_int_equal(cli(6, bad), 2);
}

static void test_prune(void **state)
{
    fixture *f = *state;
    /* 6 old records (2020) then 6 new ones */
    tg_audit_record r = sample(0, NULL);
    done_count d = {0};
    tg_error err;
    for (int i = 0; i < 12; i++) {
        r.time_ms = i < 6 ? 1577836800000 + i : 0;
        assert_int_equal(tg_audit_append(f->a, &r, on_done, &d, NULL, &err), 0);
    }
    for (uint64_t end = tg_now_ms() + 10000; d.total < 12 && tg_now_ms() < end;)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(d.ok, 12);
    close_audit(f);
    char *argv[] = {"audit", "prune", "--store", url, "--before", "2021-01-01", "--key",
                    key_path, NULL};
    assert_int_equal(cli(8, argv), 0);
    assert_int_equal(count(f, (tg_store_audit_filter){0}), 6);
    char *out = NULL;
    tg_audit_verify_report rep;
    assert_int_equal(verify(f, pub_path, &out, &rep), 0);
    assert_non_null(strstr(out, "prune note: records 1..6"));
    free(out);
    assert_int_equal(rep.prunes, 1);
    char *vargv[] = {"audit", "verify", "--store", url, "--pubkey", pub_path, NULL};
    assert_int_equal(cli(6, vargv), 0);
    /* the writer continues the chain after a prune */
    f->a = open_audit(f, TG_AUDIT_STRICT, NULL);
    append_n(f, 2);
    close_audit(f);
    expect_ok(f, &rep);
    assert_int_equal(rep.records, 8);
    /* removing the prune note is detected: the chain no longer starts where it says */
    sql(f->s, "DELETE FROM audit_checkpoints WHERE kind = 'prune'");
    expect_problem(f, pub_path, "seq=1: gap: records 1..6 are missing");
    assert_int_equal(cli(6, vargv), 1);
}

static void test_prune_refuses_tampered(void **state)
{
    fixture *f = *state;
    make_chain(f);
    sql(f->s, "DELETE FROM audit_records WHERE seq = 2");
    char *argv[] = {"audit", "prune", "--store", url, "--before", "2999-01-01", "--key",
                    key_path, NULL};
    assert_int_equal(cli(8, argv), 1);
    assert_int_equal(count(f, (tg_store_audit_filter){0}), 11);
}

static void test_crud(void **state)
{
    fixture *f = *state;
    tg_error err;
    json_t *key = json_pack("{s:s,s:s,s:s,s:s,s:I,s:n}", "id", "k1", "secret_hash", "ab12",
                            "agent", "ci-bot", "cidrs", "10.0.0.0/8", "created_ms",
                            (json_int_t)1000, "expires_ms");
    assert_int_equal(tg_store_row_insert(f->s, TG_STORE_API_KEYS, key, &err), 0);
    assert_int_equal(tg_store_row_insert(f->s, TG_STORE_API_KEYS, key, &err), -1); /* dup id */
    json_decref(key);
    json_t *got = tg_store_row_get(f->s, TG_STORE_API_KEYS, "k1", &err);
    assert_non_null(got);
    assert_string_equal(json_string_value(json_object_get(got, "agent")), "ci-bot");
    assert_int_equal(json_integer_value(json_object_get(got, "created_ms")), 1000);
    assert_true(json_is_null(json_object_get(got, "revoked_ms")));
    json_decref(got);
    assert_null(tg_store_row_get(f->s, TG_STORE_API_KEYS, "nope", &err));
    assert_string_equal(err.msg, "");
    /* approvals: compare-and-set state transitions */
    json_t *apr = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "id", "a1", "state", "pending",
                            "requester", "claude", "tool", "merge", "args_sha256", "ff",
                            "created_ms", (json_int_t)1, "expires_ms", (json_int_t)2);
    assert_int_equal(tg_store_row_insert(f->s, TG_STORE_APPROVALS, apr, &err), 0);
    json_decref(apr);
    json_t *set = json_pack("{s:s,s:s}", "state", "approved", "approver", "carol");
    json_t *pending = json_string("pending");
    assert_int_equal(tg_store_row_update(f->s, TG_STORE_APPROVALS, "a1", set, "state", pending, &err), 1);
    assert_int_equal(tg_store_row_update(f->s, TG_STORE_APPROVALS, "a1", set, "state", pending, &err), 0);
    json_decref(set);
    json_t *approved = json_string("approved");
    json_t *list = tg_store_row_list(f->s, TG_STORE_APPROVALS, "state", approved, &err);
    assert_int_equal(json_array_size(list), 1);
    json_decref(list);
    json_decref(approved);
    json_decref(pending);
    /* a bad state is refused by the schema */
    json_t *bad = json_pack("{s:s}", "state", "maybe");
    assert_int_equal(tg_store_row_update(f->s, TG_STORE_APPROVALS, "a1", bad, NULL, NULL, &err), -1);
    json_decref(bad);
    /* grants: unknown column and wrong type are errors, delete works once */
    json_t *g = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I}", "id", "g1", "approval_id", "a1",
                          "principal", "claude", "tool", "merge", "args_sha256", "ff",
                          "created_ms", (json_int_t)1, "expires_ms", (json_int_t)2,
                          "uses_left", (json_int_t)1);
    assert_int_equal(tg_store_row_insert(f->s, TG_STORE_GRANTS, g, &err), 0);
    json_decref(g);
    json_t *odd = json_pack("{s:s,s:s}", "id", "g2", "nonsense", "x");
    assert_int_equal(tg_store_row_insert(f->s, TG_STORE_GRANTS, odd, &err), -1);
    assert_non_null(strstr(err.msg, "no column \"nonsense\""));
    json_decref(odd);
    json_t *wrong = json_pack("{s:s}", "uses_left", "one");
    assert_int_equal(tg_store_row_update(f->s, TG_STORE_GRANTS, "g1", wrong, NULL, NULL, &err), -1);
    json_decref(wrong);
    json_t *dec = json_pack("{s:I}", "uses_left", (json_int_t)0);
    json_t *one = json_integer(1);
    assert_int_equal(tg_store_row_update(f->s, TG_STORE_GRANTS, "g1", dec, "uses_left", one, &err), 1);
    assert_int_equal(tg_store_row_update(f->s, TG_STORE_GRANTS, "g1", dec, "uses_left", one, &err), 0);
    json_decref(dec);
    json_decref(one);
    assert_int_equal(tg_store_row_delete(f->s, TG_STORE_GRANTS, "g1", &err), 1);
    assert_int_equal(tg_store_row_delete(f->s, TG_STORE_GRANTS, "g1", &err), 0);
}

static void test_cli_export_keygen(void **state)
{
    fixture *f = *state;
    make_chain(f);
    char *exp[] = {"audit", "export", "--store", url, "--format", "jsonl", NULL};
    fflush(stdout);
    assert_int_equal(cli(6, exp), 0);
    assert_int_equal(lines(cli_out), 12);
    assert_non_null(strstr(cli_out, "\"prev_hash\":\"0000000000"));
    char *noformat[] = {"audit", "export", "--store", url, NULL};
    assert_int_equal(cli(4, noformat), 2);
    char *vbad[] = {"audit", "verify", "--store", url, "--pubkey", other_pub, NULL};
    assert_int_equal(cli(6, vbad), 1);
    char *tail[] = {"audit", "verify", "--store", url, "--require-signed-tail", NULL};
    assert_int_equal(cli(5, tail), 0);
    char k[300];
    snprintf(k, sizeof k, "%s/cli.key", tmpdir);
    char *kg[] = {"audit", "keygen", "--out", k, NULL};
    assert_int_equal(cli(4, kg), 0);
    assert_int_equal(cli(4, kg), 1);  /* never overwrites a key */
    char *nostore[] = {"audit", "verify", NULL};
    assert_int_equal(cli(2, nostore), 1);
    char *unknown[] = {"audit", "frobnicate", NULL};
    assert_int_equal(cli(2, unknown), 2);
}

/* PostgreSQL stopped: appends fail at once with a clear error; after a restart the store
 * reconnects by itself, the writer re-reads the chain head and the chain still verifies. */
static void test_store_down(void **state)
{
    fixture *f = *state;
    const char *stop = getenv("TG_PG_STOP"), *start = getenv("TG_PG_START");
    if (!is_pg || !stop || !start) {
        print_message("skipped: needs the PostgreSQL harness\n");
        return;
    }
    append_n(f, 3);
    assert_int_equal(system(stop), 0);
    tg_audit_record r = sample(0, NULL);
    tg_error err;
    done_count d = {0};
    int refused = 0;
    uint64_t t0 = tg_now_ms();
    for (int i = 0; i < 400 && !refused; i++) {
        uint64_t a0 = tg_now_ms();
        if (tg_audit_append(f->a, &r, on_done, &d, NULL, &err) < 0) {
            refused = 1;
            assert_true(tg_now_ms() - a0 < 100);   /* fails fast, never blocks */
        }
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_true(refused);
    print_message("refused after %" PRIu64 " ms: %s\n", tg_now_ms() - t0, err.msg);
    assert_true(strstr(err.msg, "unavailable") || strstr(err.msg, "failed"));
    assert_int_equal(system(start), 0);
    int ok = 0;
    for (uint64_t end = tg_now_ms() + 30000; !ok && tg_now_ms() < end;) {
        if (tg_audit_append(f->a, &r, NULL, NULL, NULL, &err) == 0) ok = 1;
        for (int i = 0; i < 20; i++) uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(20000);
    }
    assert_true(ok);
    append_n(f, 3);
    close_audit(f);
    tg_audit_verify_report rep;
    expect_ok(f, &rep);
    assert_true(rep.records >= 7);
}

static void test_url_forms(void **state)
{
    (void)state;
    tg_error err;
    assert_null(tg_store_open(NULL, "mysql://x", &err));
    assert_non_null(strstr(err.msg, "unrecognised"));
    assert_null(tg_store_open(NULL, "sqlite:", &err));
    if (is_pg) {
        /* the URI form reaches the same server */
        char uri[600];
        snprintf(uri, sizeof uri, "postgresql:///postgres?host=%s&user=postgres",
                 getenv("TG_TEST_PG_DIR"));
        tg_store *s = tg_store_open(NULL, uri, &err);
        if (!s) fail_msg("%s: %s", uri, err.msg);
        assert_int_equal(tg_store_backend(s), TG_STORE_POSTGRES);
        tg_store_close(s);
    }
}

static void make_key(const char *path)
{
    tg_error err;
    if (tg_audit_keygen(path, &err)) fail_msg("keygen: %s", err.msg);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tg-store-test.XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    const char *env = getenv("TG_TEST_STORE_URL");
    is_pg = env && *env;
    if (is_pg) snprintf(url, sizeof url, "%s", env);
    else snprintf(url, sizeof url, "sqlite:%s/store.db", tmpdir);
    snprintf(key_path, sizeof key_path, "%s/audit.key", tmpdir);
    snprintf(pub_path, sizeof pub_path, "%s/audit.key.pub", tmpdir);
    char other[300];
    snprintf(other, sizeof other, "%s/other.key", tmpdir);
    snprintf(other_pub, sizeof other_pub, "%s/other.key.pub", tmpdir);
    make_key(key_path);
    make_key(other);
    print_message("backend: %s\n", is_pg ? "postgresql" : "sqlite");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrations_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batched_and_sink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_delay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lazy_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_checkpointed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spare_ops_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reserved_places, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_writes_per_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_ok_and_wrong_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_edit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_column, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_delete_middle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_insert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_rechained, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_reorder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_truncate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_unsigned_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_signature, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_checkpoint_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_refuses_tampered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_export_keygen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_down, setup, teardown),
        cmocka_unit_test(test_url_forms),
    };
    int failed = cmocka_run_group_tests_name(is_pg ? "store-postgresql" : "store-sqlite",
                                             tests, NULL, NULL);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    free(cli_out);
    return failed;
}
