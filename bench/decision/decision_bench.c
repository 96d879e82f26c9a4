/*
 * decision_bench.c — the per-call decision overhead of issue 5, in process: what
 * toolgate adds to a tools/call before forwarding it — catalog classification, resource
 * extraction, context assembly and the Cedar decision (tg_catalog_classify +
 * tg_policy_decide, exactly the calls gate.c makes) — on the example policies
 * (examples/policies) with the demo catalog preset, or on a generated policy set
 * (bench/gen-policies.sh: the examples plus N policies and N entities; bench/run's
 * scaling section). The audit append is not included (bench/store measures it);
 * bench/run measures the end-to-end difference.
 *
 *   decision_bench REPO_DIR [ITERATIONS [POLICY_DIR ENTITIES_FILE]]
 *   prints one line per case: "<case>: <decision>, median N.NN µs, p99 N.NN µs"
 */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/tg_common.h"
#include "config/tg_config.h"
#include "policy/tg_policy.h"

typedef struct bench_case {
    const char *label;
    const char *tool;
    const char *args;
    const char *meta;
} bench_case;

static const bench_case cases[] = {
    {"read, allowed (jira_get_issue OPS-12)", "jira_get_issue", "{\"issue_key\":\"OPS-12\"}", NULL},
    {"read, denied (jira_get_issue FIN-1)", "jira_get_issue", "{\"issue_key\":\"FIN-1\"}", NULL},
    {"write with intent (jira_add_comment OPS-12)", "jira_add_comment",
     "{\"issue_key\":\"OPS-12\",\"comment\":\"checked\"}", "{\"toolgate/intent\":\"bench\"}"},
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *v = s ? json_loads(s, 0, &e) : NULL;
    if (s && !v) abort();
    return v;
}

static void run(const tg_policy *pol, const bench_case *bc, size_t iters)
{
    static const char *const groups[] = {"ops-team"};
    const tg_identity who = {
        .method = "api_key", .delegator = "alice", .agent = "claude",
        .groups = (const char **)groups, .n_groups = 1, .credential_id = "benchkey0000",
        .client_ip = "127.0.0.1", .principal_key = "api_key:benchkey0000",
    };
    json_t *args = parse(bc->args), *meta = parse(bc->meta);
    /* as the gateway passes them: scanned, not as jansson values */
    tg_jdoc_json aj = TG_JDOC_JSON_INIT, mj = TG_JDOC_JSON_INIT;
    tg_jref aref = tg_jdoc_of_json(&aj, args), mref = tg_jdoc_of_json(&mj, meta);
    uint64_t *ns = calloc(iters, sizeof *ns);
    tg_arena *a = tg_arena_new(16384);
    const char *decision = "?";
    for (size_t i = 0; i < iters; i++) {
        uint64_t t0 = tg_now_ns();
        tg_cat_entry entry;
        tg_catalog_classify(tg_policy_catalog(pol), "atlassian", bc->tool, NULL, &entry);
        tg_decide_in in = {
            .kind = TG_DECIDE_TOOL, .identity = &who, .upstream = "atlassian",
            .name = bc->tool, .upstream_name = bc->tool, .entry = &entry,
            .args = aref, .meta = mref, .now_ms = tg_wall_ms(),
        };
        tg_decision d;
        tg_error err;
        if (tg_policy_decide(pol, &in, a, &d, &err) != 0) {
            fprintf(stderr, "decide: %s\n", err.msg);
            exit(1);
        }
        ns[i] = tg_now_ns() - t0;
        decision = tg_decision_name(d.decision);
        tg_arena_reset(a);
    }
    qsort(ns, iters, sizeof *ns, cmp_u64);
    printf("%s: %s, median %.2f µs, p99 %.2f µs\n", bc->label, decision,
           (double)ns[iters / 2] / 1000.0, (double)ns[iters * 99 / 100] / 1000.0);
    tg_arena_free(a);
    free(ns);
    tg_jdoc_json_free(&aj);
    tg_jdoc_json_free(&mj);
    json_decref(args);
    json_decref(meta);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: decision_bench REPO_DIR [ITERATIONS [POLICY_DIR ENTITIES_FILE]]\n");
        return 2;
    }
    char *repo = realpath(argv[1], NULL);
    if (!repo) {
        perror(argv[1]);
        return 2;
    }
    size_t iters = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 100000;
    if (iters < 100) iters = 100;
    char examples_dir[PATH_MAX], examples_entities[PATH_MAX];
    snprintf(examples_dir, sizeof examples_dir, "%s/examples/policies", repo);
    snprintf(examples_entities, sizeof examples_entities, "%s/examples/policies/entities.json", repo);
    const char *policies = argc > 4 ? argv[3] : examples_dir;
    const char *entities = argc > 4 ? argv[4] : examples_entities;
    char path[] = "/tmp/tg-decision-bench-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 1;
    FILE *f = fdopen(fd, "w");
    /* The examples' change window is business hours in Paris; an always-open one keeps
     * the write case's decision the same at any hour. */
    fprintf(f, "upstreams:\n  - name: atlassian\n    transport: stdio\n    command: [/bin/true]\n"
               "catalog:\n  presets: [%s/presets/demo-atlassian.yaml]\n"
               "policy:\n  policies: %s\n"
               "  entities: %s\n"
               "  change_windows:\n    always: {days: [mon, tue, wed, thu, fri, sat, sun], "
               "from: \"00:00\", to: \"24:00\", tz: UTC}\n  in_change_window: [always]\n",
            repo, policies, entities);
    fclose(f);
    free(repo);
    tg_error err;
    tg_config *cfg = tg_config_load(path, &err);
    unlink(path);
    if (!cfg) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    tg_policy *pol = tg_policy_new(cfg, &err);
    if (!pol) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("decision bench: %s + demo preset, %zu iterations per case, "
           "catalog + resource + context + Cedar per call\n", policies, iters);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run(pol, &cases[i], iters);
    tg_policy_free(pol);
    tg_config_unref(cfg);
    return 0;
}
