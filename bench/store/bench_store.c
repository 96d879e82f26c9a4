/*
 * bench_store.c — records per second through the audit writer and the store, per backend
 * and durability mode, and the latency one strict record adds (the commit + fsync cost
 * on this disk). bench/store/run builds it and starts a PostgreSQL for it.
 *
 *   bench_store sqlite:PATH [PG_CONNINFO]
 *
 * Modes measured:
 *   strict 1-by-1   one record in flight: each waits for its own commit (worst case, and
 *                   the latency a strict record adds to a call);
 *   strict c=64     64 calls in flight, as under load: group commit shares each fsync;
 *   batched         the caller never waits; bounded queue, drained at the end.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/tg_audit.h"

#define ONE_BY_ONE 400
#define MANY 20000
#define INFLIGHT 64

typedef struct bench {
    uv_loop_t loop;
    tg_store *s;
    tg_audit *a;
    json_t *args;
    int done, failed, closed;
    uint64_t t_sent;
} bench;

static tg_audit_record record(bench *b)
{
    static const char *parents[] = {"Jira::Project::\"OPS\""};
    static const char *reasons[] = {"WRITE_IN_PROJECT"};
    return (tg_audit_record){
        .event = TG_AUDIT_EV_DECISION, .session_id = "s-0123456789", .rpc_id = "42",
        .traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        .delegator = "alice@example.com", .agent = "claude", .auth_method = "oauth",
        .credential_id = "jti-7", .client_ip = "10.1.2.3", .upstream = "jira",
        .method = "tools/call", .tool = "jira_update_issue", .resource_type = "Jira::Issue",
        .resource_id = "OPS-12", .resource_parents = parents, .n_resource_parents = 1,
        .args = b->args, .intent = "close the incident", .ticket = "OPS-12",
        .decision = TG_AUDIT_DECISION_ALLOW, .reasons = reasons, .n_reasons = 1,
        .policy_version = "v1", .upstream_latency_us = TG_AUDIT_NO_LATENCY,
        .total_latency_us = 85,
    };
}

static void on_done(void *ud, int status, const char *errmsg)
{
    bench *b = ud;
    b->done++;
    if (status) b->failed++;
}

static void on_closed(void *ud) { ((bench *)ud)->closed = 1; }

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, c = *(const uint64_t *)y;
    return a < c ? -1 : a > c;
}

static void open_bench(bench *b, const char *url, tg_audit_durability d, const char *key)
{
    tg_error err;
    uv_loop_init(&b->loop);
    b->s = tg_store_open(&b->loop, url, &err);
    if (!b->s) { fprintf(stderr, "%s\n", err.msg); exit(1); }
    for (int i = 0; i < 1000 && !tg_store_ready(b->s); i++) uv_run(&b->loop, UV_RUN_ONCE);
    tg_audit_options o = {.instance_id = "bench", .durability = d, .signing_key_path = key};
    b->a = tg_audit_open(&b->loop, b->s, &o, &err);
    if (!b->a) { fprintf(stderr, "%s\n", err.msg); exit(1); }
    b->args = json_pack("{s:s,s:s,s:s}", "issue", "OPS-12", "transition", "Done",
                        "comment", "Closing after the fix was deployed to production.");
    b->done = b->failed = b->closed = 0;
}

static void close_bench(bench *b)
{
    tg_audit_close(b->a, on_closed, b);
    while (!b->closed) uv_run(&b->loop, UV_RUN_ONCE);
    tg_store_close(b->s);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    uv_loop_close(&b->loop);
    json_decref(b->args);
}

static void row(const char *backend, const char *mode, int n, uint64_t ns, const char *extra)
{
    printf("| %-10s | %-15s | %7d | %8.3f | %10.0f | %s\n", backend, mode, n, ns / 1e9,
           n / (ns / 1e9), extra);
}

static void run_backend(const char *backend, const char *url, const char *key)
{
    bench b;
    tg_error err;
    char extra[128];

    /* strict, one record in flight */
    open_bench(&b, url, TG_AUDIT_STRICT, key);
    uint64_t *lat = calloc(ONE_BY_ONE, sizeof *lat), t0 = tg_now_ns();
    for (int i = 0; i < ONE_BY_ONE; i++) {
        tg_audit_record r = record(&b);
        uint64_t s = tg_now_ns();
        int want = b.done + 1;
        if (tg_audit_append(b.a, &r, on_done, &b, NULL, &err) != 0) { fprintf(stderr, "%s\n", err.msg); exit(1); }
        while (b.done < want) uv_run(&b.loop, UV_RUN_ONCE);
        lat[i] = tg_now_ns() - s;
    }
    uint64_t ns = tg_now_ns() - t0;
    qsort(lat, ONE_BY_ONE, sizeof *lat, cmp_u64);
    snprintf(extra, sizeof extra, "added latency p50 %" PRIu64 " us, p99 %" PRIu64 " us",
             lat[ONE_BY_ONE / 2] / 1000, lat[ONE_BY_ONE * 99 / 100] / 1000);
    row(backend, "strict 1-by-1", ONE_BY_ONE, ns, extra);
    free(lat);
    close_bench(&b);

    /* strict, INFLIGHT calls waiting at once: group commit */
    open_bench(&b, url, TG_AUDIT_STRICT, key);
    t0 = tg_now_ns();
    int sent = 0;
    while (b.done < MANY) {
        while (sent < MANY && sent - b.done < INFLIGHT) {
            tg_audit_record r = record(&b);
            if (tg_audit_append(b.a, &r, on_done, &b, NULL, &err) != 0) { fprintf(stderr, "%s\n", err.msg); exit(1); }
            sent++;
        }
        uv_run(&b.loop, UV_RUN_ONCE);
    }
    ns = tg_now_ns() - t0;
    snprintf(extra, sizeof extra, "%d in flight, failed %d", INFLIGHT, b.failed);
    row(backend, "strict c=64", MANY, ns, extra);
    close_bench(&b);

    /* batched: the caller does not wait */
    open_bench(&b, url, TG_AUDIT_BATCHED, key);
    t0 = tg_now_ns();
    int refused = 0;
    for (int i = 0; i < MANY;) {
        tg_audit_record r = record(&b);
        if (tg_audit_append(b.a, &r, NULL, NULL, NULL, &err) == 1) i++;
        else { refused++; uv_run(&b.loop, UV_RUN_ONCE); }
    }
    uint64_t accept_ns = tg_now_ns() - t0;
    tg_audit_close(b.a, on_closed, &b);
    while (!b.closed) uv_run(&b.loop, UV_RUN_ONCE);
    ns = tg_now_ns() - t0;
    b.a = NULL;
    tg_store_close(b.s);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    uv_loop_close(&b.loop);
    json_decref(b.args);
    snprintf(extra, sizeof extra, "accept %.0f rec/s, queue-full refusals %d (durable rate)",
             MANY / (accept_ns / 1e9), refused);
    row(backend, "batched", MANY, ns, extra);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--keygen") == 0) {
        tg_error err;
        if (tg_audit_keygen(argv[2], &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        return 0;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: bench_store KEYFILE sqlite:PATH [PG_CONNINFO]\n"
                        "       bench_store --keygen KEYFILE\n");
        return 2;
    }
    tg_log_set_level(TG_LOG_WARN);
    printf("| backend    | mode            | records |  seconds |  records/s | notes\n");
    printf("|------------|-----------------|---------|----------|------------|------\n");
    run_backend("sqlite", argv[2], argv[1]);
    if (argc > 3) run_backend("postgresql", argv[3], argv[1]);
    return 0;
}
