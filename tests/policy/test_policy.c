/*
 * test_policy.c — the decision layer: every row of the brief's decision mapping, the
 * Cedar request as built (principal, action groups, resource parents, context keys, args
 * mapping, meta keys), change windows across time zones and weekday edges, tools/list
 * visibility, the client-facing denied shapes, policy load errors, and the example
 * policies through their cases file (examples/policies/cases.yaml).
 *
 * Each test writes a small configuration and policy directory into a temporary folder;
 * SRC_DIR (from meson) locates the examples and presets.
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

#include "policy/policy_int.h"

static char tmpdir[256];

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* A configuration with one stdio upstream "atl", the given catalog rules and policy
 * section extras, and policies/p.cedar = cedar. */
typedef struct fixture {
    tg_config *cfg;
    tg_policy *pol;
    tg_arena *a;
} fixture;

static void load_fixture(fixture *f, const char *rules, const char *policy_extra,
                         const char *cedar, const char *entities)
{
    char cfgtext[8192], path[512];
    snprintf(path, sizeof path, "%s/policies", tmpdir);
    mkdir(path, 0700);
    write_file("policies/p.cedar", cedar);
    write_file("entities.json", entities ? entities : "[]");
    snprintf(cfgtext, sizeof cfgtext,
             "upstreams:\n  - {name: atl, transport: stdio, command: /bin/true}\n"
             "catalog:\n  tools:\n%s"
             "policy:\n  policies: policies\n  entities: entities.json\n%s",
             rules ? rules : "    - {tool: 'x_*', risk: read}\n", policy_extra ? policy_extra : "");
    write_file("tg.yaml", cfgtext);
    snprintf(path, sizeof path, "%s/tg.yaml", tmpdir);
    tg_error err;
    f->cfg = tg_config_load(path, &err);
    if (!f->cfg)
        fail_msg("config: %s", err.msg);
    f->pol = tg_policy_new(f->cfg, &err);
    if (!f->pol)
        fail_msg("policy: %s", err.msg);
    f->a = tg_arena_new(0);
}

static void unload_fixture(fixture *f)
{
    tg_arena_free(f->a);
    tg_policy_free(f->pol);
    tg_config_unref(f->cfg);
}

static const char *groups_eng[] = {"eng"};
static tg_identity alice = {.method = "oauth", .delegator = "alice", .agent = "claude",
                            .groups = groups_eng, .n_groups = 1, .client_ip = "10.0.0.7",
                            .credential_id = "jti-1", .client_id = "ide"};

/* 2026-03-03 (a Tuesday) 09:00 UTC = 10:00 in Paris. */
#define TUESDAY_MS 1772528400000LL

/* Decides on both roads (tg_decide_in.explain: the JSON road; without: the gateway's
 * direct road), checks that they agree, and leaves the explained decision in d. */
static void decide_both(const tg_policy *p, tg_decide_in *in, tg_arena *a, tg_decision *d)
{
    tg_decision g;
    tg_error err;
    in->explain = false;
    assert_int_equal(tg_policy_decide(p, in, a, &g, &err), 0);
    assert_null(g.context_json);
    in->explain = true;
    assert_int_equal(tg_policy_decide(p, in, a, d, &err), 0);
    assert_non_null(d->context_json);
    assert_int_equal(g.decision, d->decision);
    assert_int_equal(g.nreasons, d->nreasons);
    assert_int_equal(g.npolicies, d->npolicies);
    assert_int_equal(g.nerrors, d->nerrors);
    for (size_t i = 0; i < d->nreasons; i++)
        assert_string_equal(g.reasons[i], d->reasons[i]);
    for (size_t i = 0; i < d->npolicies; i++)
        assert_string_equal(g.policies[i], d->policies[i]);
    for (size_t i = 0; i < d->nerrors; i++)
        assert_string_equal(g.errors[i], d->errors[i]);
}

static void decide(fixture *f, const char *tool, const char *args_json, const char *meta_json,
                   tg_decision *d)
{
    tg_error err;
    json_t *args = args_json ? tg_json_parse(args_json, strlen(args_json), 64, &err) : NULL;
    json_t *meta = meta_json ? tg_json_parse(meta_json, strlen(meta_json), 64, &err) : NULL;
    tg_cat_entry e;
    tg_catalog_classify(tg_policy_catalog(f->pol), "atl", tool, NULL, &e);
    tg_jdoc_json aj = TG_JDOC_JSON_INIT, mj = TG_JDOC_JSON_INIT;
    tg_decide_in in = {.kind = TG_DECIDE_TOOL, .identity = &alice, .upstream = "atl",
                       .name = tool, .upstream_name = tool, .entry = &e,
                       .args = tg_jdoc_of_json(&aj, args), .meta = tg_jdoc_of_json(&mj, meta),
                       .now_ms = TUESDAY_MS};
    decide_both(f->pol, &in, f->a, d);
    tg_jdoc_json_free(&aj);
    tg_jdoc_json_free(&mj);
    json_decref(args);
    json_decref(meta);
}

static bool has(const char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

#define ISSUE_RULE \
    "    - tool: get_issue\n      risk: read\n      resource:\n        type: Jira::Issue\n" \
    "        id: /issue_key\n        pattern: '^[A-Z][A-Z0-9_]+-[0-9]+$'\n" \
    "        parents: [{type: Jira::Project, pattern: '^([A-Z][A-Z0-9_]+)-[0-9]+$', capture: 1, attr: project}]\n" \
    "    - {tool: merge, risk: high}\n    - {tool: edit, risk: write}\n"

/* ------------------------------------------------------------------ decision mapping */

static void test_permit_allows_with_reasons(void **state)
{
    fixture f;
    tg_decision d;
    load_fixture(&f, ISSUE_RULE, NULL,
                 "@id(\"read-ops\") @reason(\"OPS_READ\")\n"
                 "permit (principal in User::\"alice\", action in Action::\"risk:read\",\n"
                 "        resource in Jira::Project::\"OPS\");\n", NULL);
    decide(&f, "get_issue", "{\"issue_key\":\"OPS-12\"}", NULL, &d);
    assert_int_equal(d.decision, TG_DECISION_ALLOW);
    assert_true(has(d.reasons, d.nreasons, "OPS_READ"));
    assert_true(has(d.policies, d.npolicies, "read-ops"));
    assert_string_equal(d.resource.uid.type, "Jira::Issue");
    assert_string_equal(d.resource.parents[0].id, "OPS");
    decide(&f, "get_issue", "{\"issue_key\":\"FIN-1\"}", NULL, &d);
    assert_int_equal(d.decision, TG_DECISION_DENY);
    assert_true(has(d.reasons, d.nreasons, "NO_MATCHING_PERMIT"));
    unload_fixture(&f);
}

static void test_forbid_denies_with_reason_or_id(void **state)
{
    fixture f;
    tg_decision d;
    load_fixture(&f, ISSUE_RULE, NULL,
                 "permit (principal, action, resource);\n"
                 "@id(\"no-fin\") @reason(\"FIN_CLOSED\")\n"
                 "forbid (principal, action, resource in Jira::Project::\"FIN\");\n"
                 "@id(\"no-sec\")\n"
                 "forbid (principal, action, resource in Jira::Project::\"SEC\");\n", NULL);
    decide(&f, "get_issue", "{\"issue_key\":\"FIN-1\"}", NULL, &d);
    assert_int_equal(d.decision, TG_DECISION_DENY);
    assert_int_equal(d.nreasons, 1);
    assert_string_equal(d.reasons[0], "FIN_CLOSED");
    assert_string_equal(d.policies[0], "no-fin");
    decide(&f, "get_issue", "{\"issue_key\":\"SEC-1\"}", NULL, &d);
    assert_string_equal(d.reasons[0], "no-sec");
    unload_fixture(&f);
}

static void test_approval_forbid(void **state)
{
    fixture f;
    tg_decision d;
    load_fixture(&f, ISSUE_RULE, NULL,
                 "@id(\"devs\") permit (principal in Group::\"eng\", action == Action::\"merge\", resource);\n"
                 "@id(\"merge-approval\") @approval @reason(\"MERGE_APPROVAL\")\n"
                 "forbid (principal, action == Action::\"merge\", resource) unless { context has approval };\n"
                 "@id(\"edit-approval\") @approval\n"
                 "forbid (principal, action == Action::\"edit\", resource);\n", NULL);
    decide(&f, "merge", "{}", NULL, &d);
    assert_int_equal(d.decision, TG_DECISION_APPROVAL);
    assert_string_equal(d.reasons[0], "MERGE_APPROVAL");
    assert_string_equal(d.policies[0], "merge-approval");
    /* No permit would allow the edit even with the approval forbid lifted: deny. */
    decide(&f, "edit", "{}", NULL, &d);
    assert_int_equal(d.decision, TG_DECISION_DENY);
    assert_string_equal(d.reasons[0], "NO_MATCHING_PERMIT");
    /* With a granted approval the forbid no longer holds. */
    tg_cat_entry e;
    tg_catalog_classify(tg_policy_catalog(f.pol), "atl", "merge", NULL, &e);
    tg_policy_approval ap = {"apr-1", "bob", TUESDAY_MS - 60000};
    tg_decide_in in = {.kind = TG_DECIDE_TOOL, .identity = &alice, .upstream = "atl",
                       .name = "merge", .entry = &e, .now_ms = TUESDAY_MS, .approval = &ap};
    decide_both(f.pol, &in, f.a, &d);
    assert_int_equal(d.decision, TG_DECISION_ALLOW);
    assert_non_null(strstr(d.context_json, "\"approval\":{\"id\":\"apr-1\",\"approver\":\"bob\""));
    unload_fixture(&f);
}

static void test_hard_forbid_beats_approval(void **state)
{
    fixture f;
    tg_decision d;
    load_fixture(&f, ISSUE_RULE, NULL,
                 "permit (principal, action, resource);\n"
                 "@id(\"a\") @approval forbid (principal, action == Action::\"merge\", resource);\n"
                 "@id(\"h\") @reason(\"FROZEN\") forbid (principal, action == Action::\"merge\", resource);\n",
                 NULL);
    decide(&f, "merge", "{}", NULL, &d);
    assert_int_equal(d.decision, TG_DECISION_DENY);
    assert_int_equal(d.nreasons, 1);
    assert_string_equal(d.reasons[0], "FROZEN");
    unload_fixture(&f);
}

static void test_forbid_error_fails_closed(void **state)
{
    fixture f;
    tg_decision d;
    load_fixture(&f, ISSUE_RULE, NULL,
                 "@id(\"p\") permit (principal, action, resource);\n"
                 "@id(\"broken\") forbid (principal, action, resource) when { context.nosuch == 1 };\n"
                 "@id(\"broken-permit\") permit (principal, action, resource) when { context.nope };\n",
                 NULL);
    decide(&f, "edit", "{}", NULL, &d);
    assert_int_equal(d.decision, TG_DECISION_DENY);
    assert_true(has(d.reasons, d.nreasons, "POLICY_ERROR"));
    assert_true(has(d.policies, d.npolicies, "broken"));
    assert_int_equal(d.nerrors, 2);  /* both errors recorded */
    unload_fixture(&f);
    /* An error in a permit alone is skipped (Cedar) but recorded. */
    load_fixture(&f, ISSUE_RULE, NULL,
                 "@id(\"p\") permit (principal, action, resource);\n"
                 "@id(\"broken-permit\") permit (principal, action, resource) when { context.nope };\n",
                 NULL);
    decide(&f, "edit", "{}", NULL, &d);
    assert_int_equal(d.decision, TG_DECISION_ALLOW);
    assert_int_equal(d.nerrors, 1);
    unload_fixture(&f);
}

static void test_resource_unresolved(void **state)
{
    fixture f;
    tg_decision d;
    load_fixture(&f, ISSUE_RULE
                 "    - tool: page\n      risk: read\n      resource: {type: Confluence::Page, id: /page_id, required: false}\n",
                 NULL, "permit (principal, action, resource);\n", NULL);
    decide(&f, "get_issue", "{\"issue_key\":[\"OPS-1\"]}", NULL, &d);
    assert_int_equal(d.decision, TG_DECISION_DENY);
    assert_string_equal(d.reasons[0], "RESOURCE_UNRESOLVED");
    assert_non_null(strstr(d.errors[0], "/issue_key is an array"));
    /* Not required: the resource becomes the upstream's server entity. */
    decide(&f, "page", "{\"title\":\"x\"}", NULL, &d);
    assert_int_equal(d.decision, TG_DECISION_ALLOW);
    assert_string_equal(d.resource.uid.type, "Mcp::Server");
    assert_string_equal(d.resource.uid.id, "atl");
    unload_fixture(&f);
}

static void test_shadow_modes(void **state)
{
    fixture f;
    tg_decision d;
    load_fixture(&f, ISSUE_RULE,
                 "  mode: shadow\n  overrides:\n    - {tool: 'get_*', mode: enforce}\n", "", NULL);
    decide(&f, "edit", "{}", NULL, &d);
    assert_int_equal(d.decision, TG_DECISION_DENY);
    assert_int_equal(d.shadow, 1);
    decide(&f, "get_issue", "{\"issue_key\":\"OPS-1\"}", NULL, &d);
    assert_int_equal(d.shadow, 0);
    assert_int_equal(tg_policy_is_shadow(f.pol, "atl", "merge"), 1);
    unload_fixture(&f);
}

static void test_resources_and_prompts(void **state)
{
    fixture f;
    tg_decision d;
    tg_error err;
    load_fixture(&f, ISSUE_RULE, NULL,
                 "@id(\"docs\") permit (principal, action == Action::\"mcp:resources/read\",\n"
                 "  resource in Mcp::Server::\"atl\") when { resource == Mcp::Resource::\"jira://issue/OPS-1\" };\n",
                 NULL);
    tg_decide_in in = {.kind = TG_DECIDE_RESOURCE_READ, .identity = &alice, .upstream = "atl",
                       .name = "jira://issue/OPS-1", .now_ms = TUESDAY_MS};
    assert_int_equal(tg_policy_decide(f.pol, &in, f.a, &d, &err), 0);
    assert_int_equal(d.decision, TG_DECISION_ALLOW);
    assert_string_equal(d.action, "mcp:resources/read");
    in.name = "jira://issue/FIN-1";
    assert_int_equal(tg_policy_decide(f.pol, &in, f.a, &d, &err), 0);
    assert_int_equal(d.decision, TG_DECISION_DENY);
    in.kind = TG_DECIDE_PROMPT_GET;
    in.name = "summarize_issue";
    assert_int_equal(tg_policy_decide(f.pol, &in, f.a, &d, &err), 0);
    assert_int_equal(d.decision, TG_DECISION_DENY);
    assert_string_equal(d.resource.uid.type, "Mcp::Prompt");
    /* An identity with neither agent nor delegator cannot be a principal. */
    tg_identity nobody = {.method = "oauth"};
    in.identity = &nobody;
    assert_int_equal(tg_policy_decide(f.pol, &in, f.a, &d, &err), -1);
    unload_fixture(&f);
}

/* ------------------------------------------------------------------ request building */

static void test_context_and_entities(void **state)
{
    fixture f;
    tg_decision d;
    load_fixture(&f, ISSUE_RULE, NULL,
                 "permit (principal, action, resource) when {\n"
                 "  principal in User::\"alice\" && principal in Group::\"eng\" &&\n"
                 "  principal in Group::\"platform\" && principal.team == \"infra\" &&\n"
                 "  principal.delegator == User::\"alice\" && principal.clientId == \"ide\" &&\n"
                 "  action in Action::\"risk:read\" && action in Action::\"upstream:atl\" &&\n"
                 "  action in Action::\"readers\" && resource.project == Jira::Project::\"OPS\" &&\n"
                 "  context.intent == \"triage\" && context.workflow == \"run-7\" && !(context has ticket) &&\n"
                 "  context.clientIp.isInRange(ip(\"10.0.0.0/8\")) && context.authMethod == \"oauth\" &&\n"
                 "  context.now == datetime(\"2026-03-03T09:00:00Z\") && context.risk == \"read\" &&\n"
                 "  context.upstream == \"atl\" && context.args.n == 3 &&\n"
                 "  context.args.r == decimal(\"1.25\") && context.args.big == \"1e+20\" &&\n"
                 "  !(context.args has z) && context.args.l == [[1, 2], \"x\"] &&\n"
                 "  !(context.args.o has __entity) && context.args.o.k == true\n"
                 "};\n",
                 "[{\"uid\":{\"type\":\"Agent\",\"id\":\"claude\"},\"attrs\":{\"team\":\"infra\","
                 "\"clientId\":\"spoofed\"},\"parents\":[{\"type\":\"Group\",\"id\":\"platform\"}]},"
                 "{\"uid\":{\"type\":\"Action\",\"id\":\"get_issue\"},\"attrs\":{},"
                 "\"parents\":[{\"type\":\"Action\",\"id\":\"readers\"}]}]");
    decide(&f, "get_issue",
           "{\"issue_key\":\"OPS-1\",\"n\":3,\"r\":1.25,\"big\":1e20,\"z\":null,"
           "\"l\":[[1,2],null,\"x\"],\"o\":{\"__entity\":{\"type\":\"User\",\"id\":\"root\"},\"k\":true}}",
           "{\"toolgate/intent\":\"triage\",\"toolgate/workflow\":\"run-7\",\"toolgate/ticket\":7}",
           &d);
    if (d.decision != TG_DECISION_ALLOW)
        fail_msg("denied: %s / %s / %s", d.nreasons ? d.reasons[0] : "",
                 d.nerrors ? d.errors[0] : "", d.context_json);
    unload_fixture(&f);
}

/* ------------------------------------------------------------------ change windows */

static void test_windows(void **state)
{
    tg_error err;
    tg_tz *paris = tg_tz_load("Europe/Paris", &err), *utc = tg_tz_load("UTC", &err);
    tg_tz *ny = tg_tz_load("America/New_York", &err);
    assert_non_null(paris);
    assert_non_null(ny);
    tg_change_window office = {"office", "x", 0x1f, 8 * 60, 18 * 60, "Europe/Paris"};
    int64_t t;
    /* Winter: Paris is UTC+1. 07:59 UTC = 08:59 local on a Tuesday: inside. */
    assert_int_equal(tg_policy_parse_time("2026-03-03T07:59:00Z", &t), 0);
    assert_true(tg_policy_window_contains(&office, paris, t));
    assert_false(tg_policy_window_contains(&office, utc, t));  /* 07:59 in UTC */
    assert_int_equal(tg_policy_parse_time("2026-03-03T06:59:59Z", &t), 0);
    assert_false(tg_policy_window_contains(&office, paris, t));
    /* Summer: UTC+2 (after the last Sunday of March). 16:00 UTC = 18:00: outside. */
    assert_int_equal(tg_policy_parse_time("2026-07-07T16:00:00Z", &t), 0);
    assert_false(tg_policy_window_contains(&office, paris, t));
    assert_int_equal(tg_policy_parse_time("2026-07-07T15:59:00Z", &t), 0);
    assert_true(tg_policy_window_contains(&office, paris, t));
    /* Beyond the file's transitions the footer rule applies (2090 summer, UTC+2). */
    assert_int_equal(tg_policy_parse_time("2090-07-04T06:30:00Z", &t), 0); /* Tuesday 08:30 */
    assert_true(tg_policy_window_contains(&office, paris, t));
    /* Weekday edge: Friday 23:30 UTC is Saturday 00:30 in Paris (outside) but Friday
     * 18:30 in New York. */
    assert_int_equal(tg_policy_parse_time("2026-03-06T23:30:00Z", &t), 0);
    tg_change_window night = {"night", "x", 1u << 4, 22 * 60, 2 * 60, "Europe/Paris"};
    /* Wrapping window opened Friday 22:00: Saturday 00:30 belongs to it. */
    assert_true(tg_policy_window_contains(&night, paris, t));
    tg_change_window sat = {"sat", "x", 1u << 5, 22 * 60, 2 * 60, "Europe/Paris"};
    assert_false(tg_policy_window_contains(&sat, paris, t));
    tg_change_window ny_evening = {"e", "x", 1u << 4, 18 * 60, 19 * 60, "America/New_York"};
    assert_true(tg_policy_window_contains(&ny_evening, ny, t));
    /* Offsets in RFC 3339 input. */
    int64_t t2;
    assert_int_equal(tg_policy_parse_time("2026-03-07T00:30:00+01:00", &t2), 0);
    assert_true(t == t2);
    assert_int_equal(tg_policy_parse_time("2026-03-07 00:30", &t2), -1);
    tg_tz_free(paris);
    tg_tz_free(utc);
    tg_tz_free(ny);
}

static void test_in_change_window_context(void **state)
{
    fixture f;
    tg_decision d;
    load_fixture(&f, ISSUE_RULE,
                 "  change_windows:\n    w: {days: [tue], from: \"10:00\", to: \"11:00\", tz: Europe/Paris}\n"
                 "  in_change_window: [w]\n",
                 "permit (principal, action, resource) when { context.inChangeWindow };\n", NULL);
    decide(&f, "edit", "{}", NULL, &d);  /* Tuesday 10:00 Paris */
    assert_int_equal(d.decision, TG_DECISION_ALLOW);
    assert_non_null(strstr(d.context_json, "\"inChangeWindow\":true"));
    unload_fixture(&f);
}

/* ------------------------------------------------------------------ approver decisions */

/* bob approves alice's merge of an acme repo; groups extra from the approver key. */
static void approve(fixture *f, const char *user, const char *const *groups, size_t ngroups,
                    const char *type, const char *id, const char *parent, int64_t now,
                    tg_decision *d)
{
    tg_error err;
    const char *parents[] = {parent};
    tg_approve_in in = {.user = user, .groups = groups, .ngroups = ngroups,
                        .auth_method = "approver_key", .client_ip = "127.0.0.1",
                        .requester_agent = "claude", .delegator = "alice", .tool = "merge",
                        .risk = TG_RISK_HIGH, .upstream = "atl", .resource_type = type,
                        .resource_id = id, .parents = parents, .nparents = parent ? 1 : 0,
                        .ticket = "CHG-7", .now_ms = now};
    assert_int_equal(tg_policy_decide_approve(f->pol, &in, f->a, d, &err), 0);
}

#define APPROVER_ENTITIES \
    "[{\"uid\":{\"type\":\"Group\",\"id\":\"release-managers\"},\"attrs\":{},\"parents\":[]}," \
    " {\"uid\":{\"type\":\"User\",\"id\":\"bob\"},\"attrs\":{},\"parents\":[{\"type\":\"Group\",\"id\":\"release-managers\"}]}," \
    " {\"uid\":{\"type\":\"User\",\"id\":\"dave\"},\"attrs\":{},\"parents\":[]}," \
    " {\"uid\":{\"type\":\"Space\",\"id\":\"ENG\"},\"attrs\":{\"owners\":[{\"__entity\":{\"type\":\"User\",\"id\":\"erin\"}}]},\"parents\":[]}]"

static void test_approve_groups(void **state)
{
    fixture f;
    tg_decision d;
    load_fixture(&f, ISSUE_RULE, NULL,
                 "@id(\"rm\") @reason(\"RELEASE_MANAGER\")\n"
                 "permit (principal in Group::\"release-managers\", action == Action::\"approve\",\n"
                 "        resource in Repo::Workspace::\"acme\") when { context.tool == \"merge\" };\n"
                 "@id(\"merge-approval\") @approval @reason(\"NEEDS\")\n"
                 "forbid (principal, action == Action::\"merge\", resource) unless { context has approval };\n"
                 "@id(\"win\") @reason(\"OUTSIDE\")\n"
                 "forbid (principal, action in Action::\"risk:high\", resource) unless { context.inChangeWindow };\n",
                 APPROVER_ENTITIES);
    /* bob is a release manager in the entities file. */
    approve(&f, "bob", NULL, 0, "Repo::Repo", "acme/api", "Repo::Workspace::\"acme\"", TUESDAY_MS, &d);
    assert_int_equal(d.decision, TG_DECISION_ALLOW);
    assert_true(has(d.reasons, d.nreasons, "RELEASE_MANAGER"));
    assert_non_null(strstr(d.context_json, "\"requester\":{\"__entity\":{\"type\":\"Agent\",\"id\":\"claude\"}}"));
    assert_non_null(strstr(d.context_json, "\"ticket\":\"CHG-7\""));
    /* The risk-action guard (outside any window here) does not apply to Action::"approve". */
    assert_non_null(strstr(d.context_json, "\"inChangeWindow\":false"));
    /* dave is not, unless his approver key adds the group (filed user: own store). */
    approve(&f, "dave", NULL, 0, "Repo::Repo", "acme/api", "Repo::Workspace::\"acme\"", TUESDAY_MS, &d);
    assert_int_equal(d.decision, TG_DECISION_DENY);
    assert_true(has(d.reasons, d.nreasons, "NO_MATCHING_PERMIT"));
    const char *rm[] = {"release-managers"};
    approve(&f, "dave", rm, 1, "Repo::Repo", "acme/api", "Repo::Workspace::\"acme\"", TUESDAY_MS, &d);
    assert_int_equal(d.decision, TG_DECISION_ALLOW);
    /* frank is in no file: an overlay user in the key's groups. */
    approve(&f, "frank", rm, 1, "Repo::Repo", "acme/api", "Repo::Workspace::\"acme\"", TUESDAY_MS, &d);
    assert_int_equal(d.decision, TG_DECISION_ALLOW);
    approve(&f, "frank", NULL, 0, "Repo::Repo", "acme/api", "Repo::Workspace::\"acme\"", TUESDAY_MS, &d);
    assert_int_equal(d.decision, TG_DECISION_DENY);
    /* Another workspace: the parent decides. */
    approve(&f, "bob", NULL, 0, "Repo::Repo", "other/x", "Repo::Workspace::\"other\"", TUESDAY_MS, &d);
    assert_int_equal(d.decision, TG_DECISION_DENY);
    /* A malformed parent text fails closed. */
    approve(&f, "bob", NULL, 0, "Repo::Repo", "acme/api", "acme", TUESDAY_MS, &d);
    assert_int_equal(d.decision, TG_DECISION_DENY);
    assert_true(has(d.reasons, d.nreasons, "POLICY_ERROR"));
    unload_fixture(&f);
}

static void test_approve_ownership_and_window(void **state)
{
    fixture f;
    tg_decision d;
    load_fixture(&f, ISSUE_RULE,
                 "  change_windows:\n    w: {days: [tue], from: \"10:00\", to: \"11:00\", tz: Europe/Paris}\n"
                 "  in_change_window: [w]\n",
                 "@id(\"owners\") @reason(\"SPACE_OWNER\")\n"
                 "permit (principal, action == Action::\"approve\", resource is Space)\n"
                 "when { resource.owners.contains(principal) && context.inChangeWindow };\n",
                 APPROVER_ENTITIES);
    approve(&f, "erin", NULL, 0, "Space", "ENG", NULL, TUESDAY_MS, &d);
    assert_int_equal(d.decision, TG_DECISION_ALLOW);
    assert_true(has(d.reasons, d.nreasons, "SPACE_OWNER"));
    approve(&f, "bob", NULL, 0, "Space", "ENG", NULL, TUESDAY_MS, &d);
    assert_int_equal(d.decision, TG_DECISION_DENY);
    /* An hour later the window is closed. */
    approve(&f, "erin", NULL, 0, "Space", "ENG", NULL, TUESDAY_MS + 3600 * 1000, &d);
    assert_int_equal(d.decision, TG_DECISION_DENY);
    unload_fixture(&f);
}

/* ------------------------------------------------------------------ visibility */

static void test_visibility(void **state)
{
    fixture f;
    load_fixture(&f, ISSUE_RULE, NULL,
                 "permit (principal in Group::\"eng\", action in Action::\"risk:read\", resource in Jira::Project::\"OPS\")\n"
                 "  when { context.risk == \"never\" };\n"
                 "permit (principal == Agent::\"claude\", action == Action::\"edit\", resource);\n"
                 "permit (principal in User::\"bob\", action == Action::\"merge\", resource);\n"
                 "forbid (principal, action == Action::\"edit\", resource);\n"
                 "permit (principal, action == Action::\"hidden_by_cond\", resource);\n"
                 "forbid (principal, action == Action::\"hidden_by_cond\", resource) when { true };\n",
                 NULL);
    /* Conditions and resource scope are ignored for permits. */
    assert_true(tg_policy_tool_visible(f.pol, &alice, "get_issue", TG_RISK_READ, "atl", f.a));
    /* An unconditional forbid hides the tool. */
    assert_false(tg_policy_tool_visible(f.pol, &alice, "edit", TG_RISK_WRITE, "atl", f.a));
    /* No permit can match alice for merge. */
    assert_false(tg_policy_tool_visible(f.pol, &alice, "merge", TG_RISK_HIGH, "atl", f.a));
    /* A conditional forbid does not hide. */
    assert_true(tg_policy_tool_visible(f.pol, &alice, "hidden_by_cond", TG_RISK_HIGH, "atl", f.a));
    unload_fixture(&f);
}

/* ------------------------------------------------------------------ client shapes */

static void test_denied_shapes(void **state)
{
    fixture f;
    tg_decision d;
    load_fixture(&f, ISSUE_RULE, NULL,
                 "@id(\"f\") @reason(\"NOPE\") forbid (principal, action, resource);\n", NULL);
    decide(&f, "edit", "{}", NULL, &d);
    json_t *id = json_integer(7);
    json_t *r = tg_policy_denied_response(f.pol, id, TG_DECIDE_TOOL, &d, NULL, NULL);
    json_t *res = json_object_get(r, "result");
    assert_true(json_is_true(json_object_get(res, "isError")));
    const char *text = json_string_value(
        json_object_get(json_array_get(json_object_get(res, "content"), 0), "text"));
    assert_non_null(strstr(text, "NOPE"));
    json_t *sc = json_object_get(res, "structuredContent");
    assert_string_equal(json_string_value(json_object_get(sc, "decision")), "deny");
    assert_string_equal(json_string_value(json_array_get(json_object_get(sc, "reasons"), 0)), "NOPE");
    assert_string_equal(json_string_value(json_array_get(json_object_get(sc, "policies"), 0)), "f");
    json_decref(r);
    /* resources/read has no isError result: a JSON-RPC error. */
    r = tg_policy_denied_response(f.pol, id, TG_DECIDE_RESOURCE_READ, &d, NULL, NULL);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "error"), "code")),
                     TG_RPC_POLICY_DENIED);
    json_decref(r);
    json_decref(id);
    char *explain = tg_decision_explain_json(&d);
    assert_non_null(strstr(explain, "\"policy_version\""));
    free(explain);
    unload_fixture(&f);
}

/* ------------------------------------------------------------------ loading */

static void test_load_errors(void **state)
{
    fixture f;
    char path[512];
    tg_error err;
    load_fixture(&f, NULL, NULL, "permit (principal, action, resource);\n", NULL);
    char v1[65];
    strcpy(v1, tg_policy_version(f.pol));
    unload_fixture(&f);
    /* A syntax error names the file and position. */
    load_fixture(&f, NULL, NULL, "permit (principal, action, resource);\n", NULL);
    write_file("policies/q.cedar", "permit (principal,\n  action resource);\n");
    tg_policy *p = tg_policy_new(f.cfg, &err);
    assert_null(p);
    assert_non_null(strstr(err.msg, "q.cedar:2:"));
    /* Duplicate ids are refused. */
    write_file("policies/q.cedar", "@id(\"x\") permit (principal, action, resource);\n"
                                   "@id(\"x\") forbid (principal, action, resource);\n");
    assert_null(tg_policy_new(f.cfg, &err));
    assert_non_null(strstr(err.msg, "\"x\""));
    /* Another policy text changes the version. */
    write_file("policies/q.cedar", "// a comment; with a semicolon \"and a quote\n"
                                   "@id(\"y\") @reason(\"a;b\") permit (principal, action, resource);\n");
    p = tg_policy_new(f.cfg, &err);
    assert_non_null(p);
    assert_string_not_equal(tg_policy_version(p), v1);
    tg_policy_free(p);
    snprintf(path, sizeof path, "%s/policies/q.cedar", tmpdir);
    unlink(path);
    unload_fixture(&f);
}

static void test_example_cases(void **state)
{
    char cfg[512], text[2048], cases[512];
    snprintf(text, sizeof text,
             "upstreams:\n  - {name: atlassian, transport: stdio, command: /bin/true}\n"
             "catalog:\n  presets: [%s/presets/demo-atlassian.yaml]\n"
             "policy:\n  policies: %s/examples/policies\n"
             "  entities: %s/examples/policies/entities.json\n"
             "  change_windows:\n    business-hours: {days: [mon, tue, wed, thu, fri], "
             "from: \"08:00\", to: \"18:00\", tz: Europe/Paris}\n"
             "  in_change_window: [business-hours]\n",
             SRC_DIR, SRC_DIR, SRC_DIR);
    write_file("examples.yaml", text);
    snprintf(cfg, sizeof cfg, "%s/examples.yaml", tmpdir);
    snprintf(cases, sizeof cases, "%s/examples/policies/cases.yaml", SRC_DIR);
    char *argv[] = {"policy", "test", "--config", cfg, cases, NULL};
    assert_int_equal(tg_policy_test_main(5, argv), 0);

    /* Approvers (45-approvers.cedar): release managers approve acme merges, also outside
     * the change window (the window guard is about risk actions, not Action::"approve");
     * others do not; nor does anyone approve other tools. */
    tg_error err;
    tg_config *c = tg_config_load(cfg, &err);
    assert_non_null(c);
    tg_policy *pol = tg_policy_new(c, &err);
    assert_non_null(pol);
    tg_arena *a = tg_arena_new(0);
    const char *parents[] = {"Bitbucket::Repo::\"acme/api\"", "Bitbucket::Workspace::\"acme\""};
    tg_approve_in in = {.user = "bob", .auth_method = "approver_key", .requester_agent = "claude",
                        .delegator = "alice", .tool = "bitbucket_merge_pull_request",
                        .risk = TG_RISK_HIGH, .upstream = "atlassian",
                        .resource_type = "Bitbucket::PullRequest", .resource_id = "acme/api/7",
                        .parents = parents, .nparents = 2,
                        .now_ms = 1772874000000LL /* Saturday 2026-03-07 09:00 UTC */};
    tg_decision d;
    assert_int_equal(tg_policy_decide_approve(pol, &in, a, &d, &err), 0);
    assert_int_equal(d.decision, TG_DECISION_ALLOW);
    assert_true(has(d.reasons, d.nreasons, "RELEASE_MANAGER"));
    in.user = "carol";
    assert_int_equal(tg_policy_decide_approve(pol, &in, a, &d, &err), 0);
    assert_int_equal(d.decision, TG_DECISION_ALLOW);
    in.user = "alice";   /* a developer, not a release manager */
    assert_int_equal(tg_policy_decide_approve(pol, &in, a, &d, &err), 0);
    assert_int_equal(d.decision, TG_DECISION_DENY);
    in.user = "bob";
    in.tool = "bitbucket_create_branch";
    assert_int_equal(tg_policy_decide_approve(pol, &in, a, &d, &err), 0);
    assert_int_equal(d.decision, TG_DECISION_DENY);
    tg_arena_free(a);
    tg_policy_free(pol);
    tg_config_unref(c);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tg-policy-test-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_permit_allows_with_reasons),
        cmocka_unit_test(test_forbid_denies_with_reason_or_id),
        cmocka_unit_test(test_approval_forbid),
        cmocka_unit_test(test_hard_forbid_beats_approval),
        cmocka_unit_test(test_forbid_error_fails_closed),
        cmocka_unit_test(test_resource_unresolved),
        cmocka_unit_test(test_shadow_modes),
        cmocka_unit_test(test_resources_and_prompts),
        cmocka_unit_test(test_context_and_entities),
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_in_change_window_context),
        cmocka_unit_test(test_approve_groups),
        cmocka_unit_test(test_approve_ownership_and_window),
        cmocka_unit_test(test_visibility),
        cmocka_unit_test(test_denied_shapes),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_example_cases),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        rc = rc ? rc : 1;
    return rc;
}
