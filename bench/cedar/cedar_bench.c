/*
 * cedar_bench.c — how fast the Cedar engine authorizes a toolgate-shaped request.
 *
 * Workload (the Cedar model of the product brief): Agent principals whose parent is their
 * delegating User (in Groups), tool actions in Action::"risk:read|write|high" and
 * Action::"upstream:<name>", Jira issues in projects, Confluence pages in spaces,
 * Bitbucket branches in repos; realistic permits and @approval/@reason forbids, plus
 * synthetic policies up to the wanted count; ~30 stored entities. Each request adds its
 * Agent and resource as request-scoped entities (no store rebuild) and a context record.
 *
 * Prints median and p99 ns for (a) the whole per-request path (overlay entities + context
 * parsed from JSON + authorize) and (b) authorize alone (the request built untimed in the
 * same per-request arena), for 50 policies, then the scaling with 10 / 100 / 1,000 / 10,000
 * policies, and how much of its arena a request uses.
 *
 *   cedar_bench [--iterations N] [--dump DIR] [--only full|authorize]
 * --only runs just one of the two 50-policy measurements (for profilers: callgrind, perf).
 * --dump DIR writes policies.cedar, entities.json (store + every request's entities) and
 * requests.json for feeding the identical inputs to cedar-wasm.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cedar/cedar.h"

#define NREQ 64

static const char *tools[][2] = {
    {"jira_get_issue", "risk:read"},      {"jira_search", "risk:read"},
    {"jira_create_issue", "risk:write"},  {"jira_transition_issue", "risk:write"},
    {"jira_delete_issue", "risk:high"},   {"confluence_get_page", "risk:read"},
    {"confluence_update_page", "risk:write"}, {"bitbucket_get_file", "risk:read"},
    {"bitbucket_merge_pr", "risk:high"},  {"bitbucket_push", "risk:high"},
};
#define NTOOLS (sizeof tools / sizeof tools[0])

static void gen_policies(tg_buf *b, int total)
{
    static const char *real[] = {
        "@reason(\"READ_OK\") permit(principal in Group::\"engineering\", action in Action::\"risk:read\", resource);",
        "@reason(\"WRITE_OWN_PROJECT\") permit(principal in Group::\"engineering\", action in Action::\"risk:write\","
        " resource in Jira::Project::\"OPS\") when { context.authMethod == \"oauth\" };",
        "@reason(\"DOCS_WRITE\") permit(principal in Group::\"writers\", action == Action::\"confluence_update_page\","
        " resource in Confluence::Space::\"ENG\");",
        "@reason(\"HIGH_RISK_ADMIN\") permit(principal in Group::\"admins\", action in Action::\"risk:high\", resource);",
        "@approval @reason(\"HIGH_RISK_NEEDS_APPROVAL\") forbid(principal, action in Action::\"risk:high\", resource)"
        " unless { context has approval };",
        "@reason(\"OUTSIDE_CHANGE_WINDOW\") forbid(principal, action in Action::\"risk:write\", resource is Jira::Issue)"
        " when { !context.inChangeWindow && !(context has ticket) };",
        "@reason(\"UNTRUSTED_NETWORK\") forbid(principal, action in Action::\"risk:high\", resource)"
        " unless { context.clientIp.isInRange(ip(\"10.0.0.0/8\")) };",
        "@reason(\"MAIN_BRANCH\") forbid(principal, action == Action::\"bitbucket_push\", resource)"
        " when { resource like \"*\" || (resource is Bitbucket::Branch && resource.name == \"main\") };",
        "@reason(\"API_KEY_READ_ONLY\") forbid(principal, action, resource) when { context.authMethod == \"api_key\""
        " && !(action in Action::\"risk:read\") };",
        "@reason(\"BLOCKED_AGENT\") forbid(principal, action, resource) when { principal has blocked && principal.blocked };",
    };
    int n = 0;
    for (size_t i = 0; i < sizeof real / sizeof real[0] && n < total; i++, n++)
        tg_buf_printf(b, "%s\n", real[i]);
    for (int i = 0; n < total; i++, n++) {
        switch (i % 4) {
        case 0:
            tg_buf_printf(b, "permit(principal == User::\"synthetic%d\", action == Action::\"tool%d\", resource);\n", i, i);
            break;
        case 1:
            tg_buf_printf(b, "permit(principal in Group::\"team%d\", action in Action::\"risk:read\", resource)"
                             " when { context.workflow == \"wf%d\" };\n", i, i);
            break;
        case 2:
            tg_buf_printf(b, "forbid(principal, action == Action::\"tool%d\", resource in Jira::Project::\"P%d\");\n", i, i);
            break;
        default:
            tg_buf_printf(b, "permit(principal, action, resource in Confluence::Space::\"S%d\")"
                             " when { context.intent like \"*report%d*\" };\n", i, i);
            break;
        }
    }
}

static void uid(tg_buf *b, const char *type, const char *id)
{
    tg_buf_printf(b, "{\"type\":\"%s\",\"id\":\"%s\"}", type, id);
}

/* The stored entities: users, groups, actions and their groups, containers. */
static void gen_store(tg_buf *b)
{
    static const char *users[][2] = {{"alice", "engineering"}, {"bob", "engineering"},
                                     {"carol", "writers"}, {"dave", "admins"}, {"erin", "engineering"}};
    static const char *groups[] = {"engineering", "writers", "admins"};
    static const char *containers[][3] = {
        {"Jira::Project", "OPS", NULL}, {"Jira::Project", "DEV", NULL}, {"Confluence::Space", "ENG", NULL},
        {"Bitbucket::Workspace", "acme", NULL}, {"Bitbucket::Repo", "acme/api", "acme"}};
    bool first = true;
    tg_buf_appends(b, "[");
#define SEP() do { if (!first) tg_buf_appends(b, ","); first = false; } while (0)
    for (size_t i = 0; i < 5; i++) {
        SEP();
        tg_buf_appends(b, "{\"uid\":");
        uid(b, "User", users[i][0]);
        tg_buf_printf(b, ",\"attrs\":{\"email\":\"%s@acme.test\"},\"parents\":[", users[i][0]);
        uid(b, "Group", users[i][1]);
        tg_buf_appends(b, "]}");
    }
    for (size_t i = 0; i < 3; i++) {
        SEP();
        tg_buf_appends(b, "{\"uid\":");
        uid(b, "Group", groups[i]);
        tg_buf_appends(b, ",\"attrs\":{},\"parents\":[]}");
    }
    static const char *agroups[] = {"risk:read", "risk:write", "risk:high", "upstream:jira",
                                    "upstream:confluence", "upstream:bitbucket"};
    for (size_t i = 0; i < 6; i++) {
        SEP();
        tg_buf_appends(b, "{\"uid\":");
        uid(b, "Action", agroups[i]);
        tg_buf_appends(b, ",\"attrs\":{},\"parents\":[]}");
    }
    for (size_t i = 0; i < NTOOLS; i++) {
        SEP();
        char up[32];
        snprintf(up, sizeof up, "upstream:%.*s", (int)strcspn(tools[i][0], "_"), tools[i][0]);
        tg_buf_appends(b, "{\"uid\":");
        uid(b, "Action", tools[i][0]);
        tg_buf_appends(b, ",\"attrs\":{},\"parents\":[");
        uid(b, "Action", tools[i][1]);
        tg_buf_appends(b, ",");
        uid(b, "Action", up);
        tg_buf_appends(b, "]}");
    }
    for (size_t i = 0; i < 5; i++) {
        SEP();
        tg_buf_appends(b, "{\"uid\":");
        uid(b, containers[i][0], containers[i][1]);
        tg_buf_appends(b, ",\"attrs\":{},\"parents\":[");
        if (containers[i][2]) uid(b, "Bitbucket::Workspace", containers[i][2]);
        tg_buf_appends(b, "]}");
    }
#undef SEP
    tg_buf_appends(b, "]");
}

typedef struct req {
    char agent[32], tool[40], rtype[32], rid[40];
    char *agent_json, *resource_json, *context_json, *request_json;
} req;

static void gen_requests(req *r)
{
    static const char *users[] = {"alice", "bob", "carol", "dave", "erin"};
    for (int i = 0; i < NREQ; i++) {
        tg_buf b = TG_BUF_INIT;
        snprintf(r[i].agent, sizeof r[i].agent, "agent-%d", i);
        snprintf(r[i].tool, sizeof r[i].tool, "%s", tools[i % NTOOLS][0]);
        const char *parent_type, *parent_id;
        if (!strncmp(r[i].tool, "jira", 4)) {
            snprintf(r[i].rtype, sizeof r[i].rtype, "Jira::Issue");
            snprintf(r[i].rid, sizeof r[i].rid, "%s-%d", i % 3 ? "OPS" : "DEV", 100 + i);
            parent_type = "Jira::Project";
            parent_id = i % 3 ? "OPS" : "DEV";
        } else if (!strncmp(r[i].tool, "confluence", 10)) {
            snprintf(r[i].rtype, sizeof r[i].rtype, "Confluence::Page");
            snprintf(r[i].rid, sizeof r[i].rid, "page-%d", i);
            parent_type = "Confluence::Space";
            parent_id = "ENG";
        } else {
            snprintf(r[i].rtype, sizeof r[i].rtype, "Bitbucket::Branch");
            snprintf(r[i].rid, sizeof r[i].rid, "acme/api/%s", i % 2 ? "main" : "feature");
            parent_type = "Bitbucket::Repo";
            parent_id = "acme/api";
        }
        tg_buf_appends(&b, "{\"uid\":");
        uid(&b, "Agent", r[i].agent);
        tg_buf_printf(&b, ",\"attrs\":{\"authMethod\":\"oauth\",\"clientId\":\"cli-%d\",\"scopes\":[\"read\",\"write\"],"
                          "\"delegator\":{\"__entity\":{\"type\":\"User\",\"id\":\"%s\"}}},\"parents\":[",
                      i, users[i % 5]);
        uid(&b, "User", users[i % 5]);
        tg_buf_appends(&b, "]}");
        r[i].agent_json = tg_buf_steal(&b);
        tg_buf_appends(&b, "{\"uid\":");
        uid(&b, r[i].rtype, r[i].rid);
        tg_buf_printf(&b, ",\"attrs\":{\"name\":\"%s\"},\"parents\":[", i % 2 ? "main" : "feature");
        uid(&b, parent_type, parent_id);
        tg_buf_appends(&b, "]}");
        r[i].resource_json = tg_buf_steal(&b);
        tg_buf_printf(&b, "{\"authMethod\":\"%s\",\"intent\":\"weekly report %d\",\"workflow\":\"wf%d\","
                          "\"clientIp\":{\"__extn\":{\"fn\":\"ip\",\"arg\":\"10.1.2.%d\"}},"
                          "\"now\":{\"__extn\":{\"fn\":\"datetime\",\"arg\":\"2026-11-22T10:00:00Z\"}},"
                          "\"inChangeWindow\":%s,\"risk\":\"%s\",\"upstream\":\"%.*s\","
                          "\"args\":{\"issueKey\":\"%s\",\"limit\":%d}%s}",
                      i % 7 ? "oauth" : "api_key", i, i % 5, i % 250, i % 4 ? "true" : "false",
                      tools[i % NTOOLS][1] + 5, (int)strcspn(r[i].tool, "_"), r[i].tool, r[i].rid, i,
                      i % 3 ? "" : ",\"approval\":{\"id\":\"ap-1\",\"approver\":\"dave\"}");
        r[i].context_json = tg_buf_steal(&b);
        tg_buf_appends(&b, "{\"principal\":");
        uid(&b, "Agent", r[i].agent);
        tg_buf_appends(&b, ",\"action\":");
        uid(&b, "Action", r[i].tool);
        tg_buf_appends(&b, ",\"resource\":");
        uid(&b, r[i].rtype, r[i].rid);
        tg_buf_printf(&b, ",\"context\":%s}", r[i].context_json);
        r[i].request_json = tg_buf_steal(&b);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void die(const char *what, const tg_error *err)
{
    fprintf(stderr, "cedar_bench: %s: %s\n", what, err->msg);
    exit(1);
}

/* Builds request i in arena a: overlay entities and context from JSON. */
static cedar_request *build(tg_arena *a, const cedar_store *st, const req *r)
{
    tg_error err;
    cedar_request *rq = cedar_request_new(a, st);
    if (cedar_request_add_entity_json(rq, r->agent_json, strlen(r->agent_json), &err) ||
        cedar_request_add_entity_json(rq, r->resource_json, strlen(r->resource_json), &err) ||
        cedar_request_set_principal(rq, "Agent", 5, r->agent, strlen(r->agent), &err) ||
        cedar_request_set_action(rq, "Action", 6, r->tool, strlen(r->tool), &err) ||
        cedar_request_set_resource(rq, r->rtype, strlen(r->rtype), r->rid, strlen(r->rid), &err) ||
        cedar_request_set_context_json(rq, r->context_json, strlen(r->context_json), &err))
        die("request", &err);
    return rq;
}

/* Each request gets one arena, reset per request as a server does; its first chunk is
 * sized so that no request grows it (a request that did would pay malloc and first-touch
 * page faults, which is what the p99 measures then, not the engine). */
#define REQUEST_ARENA (64 * 1024)

/* Times `iters` authorizations; full=1 includes building the request (overlay entities and
 * context from JSON), full=0 builds it untimed and times cedar_authorize alone (which
 * includes the overlay entities' ancestor closure). *arena_used: bytes the last request
 * took from its arena. */
static void measure(const cedar_policy_set *ps, const cedar_store *st, req *r, int iters, int full,
                    uint64_t *median, uint64_t *p99, int *allows, size_t *arena_used)
{
    uint64_t *t = malloc((size_t)iters * sizeof *t);
    tg_arena *a = tg_arena_new(REQUEST_ARENA);
    *allows = 0;
    for (int i = 0; i < iters; i++) {
        tg_error err;
        cedar_response res;
        cedar_request *rq = NULL;
        if (!full) {
            tg_arena_reset(a);
            rq = build(a, st, &r[i % NREQ]);
        }
        uint64_t t0 = tg_now_ns();
        if (full) {
            tg_arena_reset(a);
            rq = build(a, st, &r[i % NREQ]);
        }
        if (cedar_authorize(ps, rq, &res, &err)) die("authorize", &err);
        t[i] = tg_now_ns() - t0;
        *allows += res.decision == CEDAR_ALLOW;
    }
    *arena_used = tg_arena_used(a);
    qsort(t, (size_t)iters, sizeof *t, cmp_u64);
    *median = t[iters / 2];
    *p99 = t[(size_t)iters * 99 / 100];
    tg_arena_free(a);
    free(t);
}

static void write_file(const char *dir, const char *name, const char *data)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f || fputs(data, f) < 0 || fclose(f)) {
        fprintf(stderr, "cedar_bench: cannot write %s\n", path);
        exit(1);
    }
}

static void dump(const char *dir, const char *policies, const char *store, req *r)
{
    mkdir(dir, 0755);
    write_file(dir, "policies.cedar", policies);
    /* cedar-wasm gets one entity list: the store plus every request's overlay entities */
    tg_buf b = TG_BUF_INIT;
    tg_buf_append(&b, store, strlen(store) - 1);
    for (int i = 0; i < NREQ; i++) tg_buf_printf(&b, ",%s,%s", r[i].agent_json, r[i].resource_json);
    tg_buf_appends(&b, "]\n");
    write_file(dir, "entities.json", b.data);
    tg_buf_reset(&b);
    tg_buf_appends(&b, "[");
    for (int i = 0; i < NREQ; i++) tg_buf_printf(&b, "%s%s\n", i ? "," : "", r[i].request_json);
    tg_buf_appends(&b, "]\n");
    write_file(dir, "requests.json", b.data);
    tg_buf_free(&b);
    printf("wrote %s/{policies.cedar,entities.json,requests.json}\n", dir);
}

int main(int argc, char **argv)
{
    int iters = 200000;
    const char *dump_dir = NULL, *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--iterations") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dump") && i + 1 < argc) dump_dir = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc &&
                 (!strcmp(argv[i + 1], "full") || !strcmp(argv[i + 1], "authorize"))) only = argv[++i];
        else {
            fprintf(stderr, "usage: cedar_bench [--iterations N] [--dump DIR] [--only full|authorize]\n");
            return 2;
        }
    }
    if (iters < 100) iters = 100;
    req r[NREQ];
    gen_requests(r);
    tg_buf sb = TG_BUF_INIT;
    gen_store(&sb);
    tg_error err;
    cedar_store *st = cedar_store_load(sb.data, sb.len, &err);
    if (!st) die("entities", &err);

    tg_buf pb = TG_BUF_INIT;
    gen_policies(&pb, 50);
    cedar_policy_set *ps = cedar_policy_set_parse(pb.data, pb.len, &err);
    if (!ps) die("policies", &err);
    if (dump_dir) dump(dump_dir, pb.data, sb.data, r);
    uint64_t med, p99;
    int allows;
    size_t used;
    printf("cedar bench: %zu policies, %zu stored entities (+2 per request), %d rotating requests, %d iterations\n",
           cedar_policy_count(ps), cedar_store_count(st), NREQ, iters);
    if (!only || !strcmp(only, "full")) {
        measure(ps, st, r, iters, 1, &med, &p99, &allows, &used);
        printf("  full request (overlay + context JSON + authorize): median %llu ns, p99 %llu ns (%d%% allow)\n",
               (unsigned long long)med, (unsigned long long)p99, (int)(100LL * allows / iters));
        printf("  arena per full request: %zu bytes (first chunk %d)\n", used, REQUEST_ARENA);
    }
    if (!only || !strcmp(only, "authorize")) {
        measure(ps, st, r, iters, 0, &med, &p99, &allows, &used);
        printf("  authorize only (request built untimed):           median %llu ns, p99 %llu ns\n",
               (unsigned long long)med, (unsigned long long)p99);
    }
    cedar_policy_set_free(ps);

    if (!only) {
        printf("scaling (authorize only):\n");
        for (int n = 10; n <= 10000; n *= 10) {
            tg_buf_reset(&pb);
            gen_policies(&pb, n);
            ps = cedar_policy_set_parse(pb.data, pb.len, &err);
            if (!ps) die("policies", &err);
            measure(ps, st, r, iters / 4, 0, &med, &p99, &allows, &used);
            printf("  %6d policies: median %6llu ns, p99 %6llu ns\n", n, (unsigned long long)med,
                   (unsigned long long)p99);
            cedar_policy_set_free(ps);
        }
    }
    tg_buf_free(&pb);
    tg_buf_free(&sb);
    cedar_store_free(st);
    for (int i = 0; i < NREQ; i++) {
        free(r[i].agent_json);
        free(r[i].resource_json);
        free(r[i].context_json);
        free(r[i].request_json);
    }
    return 0;
}
