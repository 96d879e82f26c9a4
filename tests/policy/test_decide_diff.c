/*
 * test_decide_diff.c — the two roads of a decision agree (issue 8). A gateway decision
 * builds its Cedar request directly with the engine's builder; `toolgate decide` (and any
 * request the builder refuses) writes it as JSON text that the engine parses. For several
 * hundred generated calls per policy set — the example policies, a bench/gen-policies.sh
 * set, and a probe set whose permits each test one piece of the request (so the list of
 * determining policies shows any value that differs) — both roads must give the same
 * decision, reasons, policies and errors. The calls include what only the JSON road can
 * judge (invalid UTF-8, nesting beyond the reader's limit, bad entity types, an entities
 * file template with a real number), so the fallback is exercised too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/tg_policy.h"

#define CALLS_PER_SET 400

static char tmpdir[256];

static uint64_t rng = 20240601;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
#define PICK(arr) (arr[next() % (sizeof arr / sizeof arr[0])])

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static tg_policy *load(const char *policies, const char *entities, tg_config **cfg)
{
    char path[512], text[4096];
    snprintf(text, sizeof text,
             "upstreams:\n  - {name: atlassian, transport: stdio, command: /bin/true}\n"
             "catalog:\n  presets: [%s/presets/demo-atlassian.yaml]\n"
             "policy:\n  policies: %s\n  entities: %s\n"
             "  change_windows:\n    office: {days: [mon, tue, wed, thu, fri], from: \"09:00\", "
             "to: \"18:00\", tz: Europe/Paris}\n  in_change_window: [office]\n",
             SRC_DIR, policies, entities);
    snprintf(path, sizeof path, "%s/tg.yaml", tmpdir);
    write_file(path, text);
    tg_error err;
    *cfg = tg_config_load(path, &err);
    if (!*cfg)
        fail_msg("config: %s", err.msg);
    tg_policy *p = tg_policy_new(*cfg, &err);
    if (!p)
        fail_msg("policy: %s", err.msg);
    return p;
}

/* An object nested n levels deep: {"d":{"d":...{}}}. */
static json_t *deep(int n)
{
    json_t *v = json_object();
    for (int i = 0; i < n; i++)
        v = json_pack("{s:o}", "d", v);
    return v;
}

static json_t *gen_args(void)
{
    static const char *const keys[] = {"OPS-12", "FIN-1", "SEC-3", "ops-1", "bad key", "OPS-99"};
    static const char *const pages[] = {"101", "202", "9", ""};
    static const char *const repos[] = {"acme/api", "acme/web", "other/x"};
    json_t *a = json_object();
    json_object_set_new(a, "issue_key", json_string(PICK(keys)));
    if (next() % 2)
        json_object_set_new(a, "page_id", json_string(PICK(pages)));
    if (next() % 2)
        json_object_set_new(a, "repo_slug", json_string(PICK(repos)));
    switch (next() % 12) {
    case 0: json_object_set_new(a, "n", json_integer((json_int_t)(next() % 7) - 3)); break;
    case 1: json_object_set_new(a, "r", json_real(1.25)); break;
    case 2: json_object_set_new(a, "r", json_real(1e20)); break;
    case 3: json_object_set_new(a, "r", json_real(0.1 + 0.2)); break;
    case 4: json_object_set_new(a, "s", json_string("a\tb\"\xc3\xa9")); break; /* escaped on the wire */
    case 5: json_object_set_new(a, "l", json_pack("[[i,i],n,s,[i,i]]", 1, 2, "x", 1, 2)); break;
    case 6: json_object_set_new(a, "o", json_pack("{s:{s:s,s:s},s:b}", "__entity", "type", "User",
                                                  "id", "root", "k", 1)); break;
    case 7: json_object_set_new(a, "deep", deep(124 + (int)(next() % 6))); break;
    case 8: json_object_set_new(a, "z", json_null()); break;
    case 9: json_object_set_new(a, "e", json_pack("{s:{s:s,s:s}}", "__extn", "fn", "ip", "arg", "1.2.3.4")); break;
    default: break;
    }
    return a;
}

static void same(const tg_decision *g, const tg_decision *d, const char *what)
{
    bool eq = g->decision == d->decision && g->nreasons == d->nreasons &&
              g->npolicies == d->npolicies && g->nerrors == d->nerrors;
    for (size_t i = 0; eq && i < d->nreasons; i++)
        eq = strcmp(g->reasons[i], d->reasons[i]) == 0;
    for (size_t i = 0; eq && i < d->npolicies; i++)
        eq = strcmp(g->policies[i], d->policies[i]) == 0;
    for (size_t i = 0; eq && i < d->nerrors; i++)
        eq = strcmp(g->errors[i], d->errors[i]) == 0;
    if (!eq) {
        char *x = tg_decision_explain_json(d);
        fail_msg("%s: direct road %s (%zu policies, %zu errors%s%s) but JSON road:\n%s", what,
                 tg_decision_name(g->decision), g->npolicies, g->nerrors,
                 g->nerrors ? ": " : "", g->nerrors ? g->errors[0] : "", x);
    }
}

/* CALLS_PER_SET generated calls on both roads; returns how many were allowed (so a set
 * that denies everything would show). */
static size_t run_set(const tg_policy *p)
{
    static const char *const agents[] = {"claude", "ci-bot", "probe-bot", "broken-bot", "bad\xff"};
    static const char *const delegators[] = {"alice", "bob", "carol"};
    static const char *const methods[] = {"oauth", "api_key"};
    static const char *const ips[] = {"127.0.0.1", "10.1.2.3", "::1", "not-an-ip", "203.0.113.9"};
    static const char *const tools[] = {"jira_get_issue", "jira_add_comment", "jira_update_issue",
                                        "jira_search", "confluence_get_page",
                                        "confluence_update_page", "bitbucket_create_pull_request",
                                        "unknown_tool"};
    static const char *const groups_pool[] = {"ops-team", "finance", "developers", "staff",
                                              "x\xc0\xafy"};
    static const char *const scopes_pool[] = {"jira:read", "jira:write", "confluence:read"};
    static const char *const intents[] = {"triage", "", "bench"};
    tg_arena *a = tg_arena_new(0);
    size_t allowed = 0;
    for (int c = 0; c < CALLS_PER_SET; c++) {
        const char *groups[3], *scopes[3];
        size_t ng = next() % 3, ns = next() % 3;
        for (size_t i = 0; i < ng; i++)
            groups[i] = PICK(groups_pool);
        for (size_t i = 0; i < ns; i++)
            scopes[i] = PICK(scopes_pool);
        tg_identity who = {
            .method = PICK(methods), .agent = next() % 5 ? PICK(agents) : NULL,
            .delegator = next() % 4 ? PICK(delegators) : NULL, .groups = groups, .n_groups = ng,
            .scopes = scopes, .n_scopes = ns, .client_ip = next() % 6 ? PICK(ips) : NULL,
            .credential_id = next() % 2 ? "key-1" : NULL, .client_id = next() % 2 ? "ide" : NULL,
        };
        if (!who.agent && !who.delegator)
            who.delegator = "alice";
        const char *tool = PICK(tools);
        json_t *args = gen_args();
        json_t *meta = next() % 2 ? json_pack("{s:s,s:s}", "toolgate/intent", PICK(intents),
                                              "toolgate/ticket", "CHG-1") : NULL;
        tg_policy_approval ap = {"apr-1", "bob", 1772528400000LL - 60000};
        tg_cat_entry e;
        tg_catalog_classify(tg_policy_catalog(p), "atlassian", tool, NULL, &e);
        tg_jdoc_json aj = TG_JDOC_JSON_INIT, mj = TG_JDOC_JSON_INIT;
        tg_decide_in in = {.kind = TG_DECIDE_TOOL, .identity = &who, .upstream = "atlassian",
                           .name = tool, .upstream_name = tool, .entry = &e,
                           .args = tg_jdoc_of_json(&aj, args), .meta = tg_jdoc_of_json(&mj, meta),
                           /* a week from Monday 2026-03-02 00:00 UTC, in 7-minute steps */
                           .now_ms = 1772409600000LL + (int64_t)(next() % 1440) * 420000,
                           .approval = next() % 5 == 0 ? &ap : NULL};
        switch (next() % 10) {
        case 0:
            in.kind = TG_DECIDE_RESOURCE_READ;
            in.name = next() % 2 ? "jira://issue/OPS-12" : "confluence://page/101";
            break;
        case 1:
            in.kind = TG_DECIDE_PROMPT_GET;
            in.name = "summarize_issue";
            break;
        default:
            break;
        }
        tg_decision g, d;
        tg_error gerr, derr;
        char what[128];
        snprintf(what, sizeof what, "call %d (%s)", c, in.name);
        in.explain = false;
        int grc = tg_policy_decide(p, &in, a, &g, &gerr);
        in.explain = true;
        int drc = tg_policy_decide(p, &in, a, &d, &derr);
        assert_int_equal(grc, drc);
        if (grc == 0) {
            same(&g, &d, what);
            allowed += d.decision == TG_DECISION_ALLOW;
        } else {
            assert_string_equal(gerr.msg, derr.msg);
        }
        /* tools/list visibility builds its request on the direct road too */
        assert_true(tg_policy_tool_visible(p, &who, tool, e.risk, "atlassian", a) >= 0);
        tg_jdoc_json_free(&aj);
        tg_jdoc_json_free(&mj);
        json_decref(args);
        json_decref(meta);
        tg_arena_reset(a);
    }
    tg_arena_free(a);
    return allowed;
}

/* The generated calls against the policies in dir and its entities.json. */
static void run_dir(const char *dir)
{
    char ent[600];
    tg_config *cfg;
    snprintf(ent, sizeof ent, "%s/entities.json", dir);
    tg_policy *p = load(dir, ent, &cfg);
    assert_true(run_set(p) > 0);
    tg_policy_free(p);
    tg_config_unref(cfg);
}

static void test_examples(void **state)
{
    char pol[512];
    snprintf(pol, sizeof pol, "%s/examples/policies", SRC_DIR);
    run_dir(pol);
}

static void test_generated(void **state)
{
    char cmd[1024], dir[512];
    snprintf(dir, sizeof dir, "%s/gen", tmpdir);
    snprintf(cmd, sizeof cmd, "%s/bench/gen-policies.sh 60 60 %s", SRC_DIR, dir);
    assert_int_equal(system(cmd), 0);
    run_dir(dir);
}

/* Each permit tests one piece of the request: under allow, the determining policies are
 * exactly the probes that held, so both roads must have built equal values. The entities
 * give the Agent and Action templates attributes and parents; "broken-bot" has a real
 * number (only the JSON road can judge it: an error on both roads). */
static void test_probes(void **state)
{
    char dir[512], path[600];
    tg_config *cfg;
    snprintf(dir, sizeof dir, "%s/probes", tmpdir);
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/p.cedar", dir);
    write_file(path,
        "@id(\"base\") permit (principal, action, resource) when { context.risk == \"read\" };\n"
        "@id(\"method\") permit (principal, action, resource) when { principal.authMethod == \"oauth\" };\n"
        "@id(\"deleg\") permit (principal, action, resource) when { principal has delegator && principal.delegator == User::\"alice\" };\n"
        "@id(\"client\") permit (principal, action, resource) when { principal has clientId };\n"
        "@id(\"cred\") permit (principal, action, resource) when { principal has credentialId && principal.credentialId like \"key-*\" };\n"
        "@id(\"scopes\") permit (principal, action, resource) when { principal.scopes.contains(\"jira:write\") };\n"
        "@id(\"team\") permit (principal, action, resource) when { principal has team && principal.team == \"probe\" };\n"
        "@id(\"tags\") permit (principal, action, resource) when { principal has tags && principal.tags.contains(7) };\n"
        "@id(\"ingroup\") permit (principal in Group::\"staff\", action, resource);\n"
        "@id(\"inuser\") permit (principal in User::\"bob\", action, resource);\n"
        "@id(\"probegroup\") permit (principal in Group::\"probers\", action, resource);\n"
        "@id(\"risk\") permit (principal, action in Action::\"risk:write\", resource);\n"
        "@id(\"up\") permit (principal, action in Action::\"upstream:atlassian\", resource) when { context.upstream == \"atlassian\" };\n"
        "@id(\"family\") permit (principal, action in Action::\"jira:write\", resource);\n"
        "@id(\"actattr\") permit (principal, action, resource) when { action has level && action.level == 2 };\n"
        "@id(\"proj\") permit (principal, action, resource in Jira::Project::\"OPS\");\n"
        "@id(\"projattr\") permit (principal, action, resource) when { resource has project && resource.project == Jira::Project::\"FIN\" };\n"
        "@id(\"server\") permit (principal, action, resource in Mcp::Server::\"atlassian\");\n"
        "@id(\"intent\") permit (principal, action, resource) when { context has intent && context.intent == \"triage\" };\n"
        "@id(\"ticket\") permit (principal, action, resource) when { context has ticket };\n"
        "@id(\"ip4\") permit (principal, action, resource) when { context has clientIp && context.clientIp.isIpv4() };\n"
        "@id(\"loop\") permit (principal, action, resource) when { context has clientIp && context.clientIp.isLoopback() };\n"
        "@id(\"window\") permit (principal, action, resource) when { context.inChangeWindow };\n"
        "@id(\"late\") permit (principal, action, resource) when { context.now > datetime(\"2026-03-05T12:00:00Z\") };\n"
        "@id(\"approved\") permit (principal, action, resource) when { context has approval && context.approval.grantedAt < context.now };\n"
        "@id(\"n\") permit (principal, action, resource) when { context.args has n && context.args.n > 0 };\n"
        "@id(\"dec\") permit (principal, action, resource) when { context.args has r && context.args.r == decimal(\"1.25\") };\n"
        "@id(\"strr\") permit (principal, action, resource) when { context.args has r && context.args.r like \"*e+20\" };\n"
        "@id(\"esc-str\") permit (principal, action, resource) when { context.args has s && context.args.s != \"a\" };\n"
        "@id(\"set\") permit (principal, action, resource) when { context.args has l && context.args.l == [\"x\", [1, 2]] };\n"
        "@id(\"rec\") permit (principal, action, resource) when { context.args has o && context.args.o == {k: true} };\n"
        "@id(\"esc\") permit (principal, action, resource) when { context.args has e && context.args.e == {} };\n"
        "@id(\"deep\") permit (principal, action, resource) when { context.args has deep && context.args.deep has d };\n"
        "@id(\"err\") permit (principal, action, resource) when { context.args.missing == 1 };\n"
        "@id(\"key\") permit (principal, action, resource) when { context.args.issue_key like \"OPS-*\" };\n"
        "@id(\"nokey\") forbid (principal, action, resource) when { context.args has issue_key && context.args.issue_key == \"bad key\" };\n");
    snprintf(path, sizeof path, "%s/entities.json", dir);
    write_file(path,
        "[{\"uid\":{\"type\":\"Group\",\"id\":\"staff\"},\"attrs\":{},\"parents\":[]},"
        "{\"uid\":{\"type\":\"Group\",\"id\":\"ops-team\"},\"attrs\":{},\"parents\":[{\"type\":\"Group\",\"id\":\"staff\"}]},"
        "{\"uid\":{\"type\":\"Group\",\"id\":\"probers\"},\"attrs\":{},\"parents\":[]},"
        "{\"uid\":{\"type\":\"User\",\"id\":\"alice\"},\"attrs\":{},\"parents\":[{\"type\":\"Group\",\"id\":\"ops-team\"}]},"
        "{\"uid\":{\"type\":\"User\",\"id\":\"bob\"},\"attrs\":{},\"parents\":[]},"
        "{\"uid\":{\"type\":\"Jira::Project\",\"id\":\"OPS\"},\"attrs\":{},\"parents\":[]},"
        "{\"uid\":{\"type\":\"Agent\",\"id\":\"probe-bot\"},\"attrs\":{\"team\":\"probe\",\"tags\":[7,8],"
        "\"since\":{\"__extn\":{\"fn\":\"datetime\",\"arg\":\"2026-01-01\"}},\"boss\":{\"__entity\":{\"type\":\"User\",\"id\":\"bob\"}},"
        "\"clientId\":\"spoofed\"},\"parents\":[{\"__entity\":{\"type\":\"Group\",\"id\":\"probers\"}}]},"
        "{\"uid\":{\"type\":\"Agent\",\"id\":\"broken-bot\"},\"attrs\":{\"ratio\":0.5},\"parents\":[]},"
        "{\"uid\":{\"type\":\"Action\",\"id\":\"jira_add_comment\"},\"attrs\":{\"level\":2},"
        "\"parents\":[{\"type\":\"Action\",\"id\":\"jira:write\"}]},"
        "{\"uid\":{\"type\":\"Action\",\"id\":\"jira:write\"},\"attrs\":{},\"parents\":[{\"type\":\"Action\",\"id\":\"jira_add_comment\"}]},"
        "{\"uid\":{\"type\":\"Action\",\"id\":\"risk:write\"},\"attrs\":{},\"parents\":[{\"type\":\"Action\",\"id\":\"writes\"}]}]");
    tg_policy *p = load(dir, path, &cfg);
    assert_true(run_set(p) > 0);
    tg_policy_free(p);
    tg_config_unref(cfg);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tg-decide-diff-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples),
        cmocka_unit_test(test_generated),
        cmocka_unit_test(test_probes),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
