/*
 * test_catalog.c — the tool catalog: configuration errors of rules and presets (with
 * FILE:LINE:COL), classification precedence and the unclassified fallback, "log once",
 * and resolution of arguments into typed resources, including every argument attack of
 * issue 5 (wrong JSON types, traversal, look-alike Unicode, empty, oversized, control
 * characters) failing closed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog/tg_catalog.h"

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

#define HEAD "upstreams:\n  - {name: atl, transport: stdio, command: /bin/true}\n" \
             "  - {name: bb, transport: stdio, command: /bin/true}\n"

/* Loads HEAD + body; returns the config or NULL with err. */
static tg_config *load(const char *body, tg_error *err)
{
    char text[8192], path[512];
    snprintf(text, sizeof text, HEAD "%s", body);
    write_file("c.yaml", text);
    snprintf(path, sizeof path, "%s/c.yaml", tmpdir);
    return tg_config_load(path, err);
}

static void expect_error(const char *body, const char *position, const char *words)
{
    tg_error err;
    tg_config *cfg = load(body, &err);
    if (cfg)
        fail_msg("loaded, expected an error containing %s", words);
    if (!strstr(err.msg, position) || !strstr(err.msg, words))
        fail_msg("error \"%s\" lacks \"%s\" / \"%s\"", err.msg, position, words);
}

static void test_rule_errors(void **state)
{
    expect_error("catalog:\n  tools:\n    - {tool: a, risk: medium}\n", "c.yaml:6:23",
                 "read, write or high");
    expect_error("catalog:\n  tools:\n    - {tool: a}\n", "c.yaml:6:", "missing required key \"risk\"");
    expect_error("catalog:\n  tools:\n    - {tool: a, risk: read, resource: {type: Jira::Issue, "
                 "id: issue_key}}\n", "c.yaml:6:", "not a JSON pointer");
    expect_error("catalog:\n  tools:\n    - {tool: a, risk: read, resource: {type: Jira::Issue, "
                 "id: /a~2b}}\n", "c.yaml:6:", "not a JSON pointer");
    expect_error("catalog:\n  tools:\n    - {tool: a, risk: read, resource: {type: 'Jira:Issue', "
                 "id: /k}}\n", "c.yaml:6:", "Cedar entity type");
    expect_error("catalog:\n  tools:\n    - {tool: a, risk: read, resource: {type: T, id: /k, "
                 "pattern: '^([A-Z]+'}}\n", "c.yaml:6:", "invalid regular expression");
    expect_error("catalog:\n  tools:\n    - tool: a\n      risk: read\n      resource:\n"
                 "        type: T\n        id: /k\n        parents:\n"
                 "          - {type: P, pattern: '^([A-Z]+)-', capture: 2}\n",
                 "c.yaml:12:", "capture 2, but the pattern has 1 group");
    expect_error("catalog:\n  tools:\n    - {tool: a, risk: read, resource: {type: T, id: '{/w}/{/r'}}\n",
                 "c.yaml:6:", "unclosed {");
    expect_error("catalog:\n  tools:\n    - {tool: a, risk: read, resource: {type: T, id: 'w}{/r}'}}\n",
                 "c.yaml:6:", "} without {");
    expect_error("catalog:\n  tools:\n    - {tool: a, risk: read, resource: {type: T, id: /k, "
                 "required: yes}}\n", "c.yaml:6:", "true or false");
    expect_error("catalog:\n  tools:\n    - {tool: a, risk: read, upstream: nope}\n", "c.yaml:6:",
                 "upstream \"nope\"");
    expect_error("catalog:\n  tools:\n    - {tool: a, risk: read, resorce: {}}\n", "c.yaml:6:",
                 "did you mean \"resource\"");
    /* Errors inside a preset carry the preset's own position. */
    write_file("bad-preset.yaml", "tools:\n  - tool: x\n    risk: write\n    resource: {type: T}\n");
    expect_error("catalog:\n  presets: [bad-preset.yaml]\n", "bad-preset.yaml:4:", "\"id\"");
    expect_error("catalog:\n  presets: [missing.yaml]\n", "c.yaml:5:", "cannot open preset");
}

static void test_policy_section_errors(void **state)
{
    expect_error("policy:\n  policies: /nonexistent-dir\n", "c.yaml:5:", "not a directory");
    expect_error("policy:\n  policies: .\n  mode: audit\n", "c.yaml:6:", "\"enforce\" or \"shadow\"");
    expect_error("policy:\n  policies: .\n  change_windows:\n    w: {days: [mon, funday], from: "
                 "\"08:00\", to: \"18:00\", tz: UTC}\n", "c.yaml:7:", "funday");
    expect_error("policy:\n  policies: .\n  change_windows:\n    w: {days: [mon], from: \"8am\", "
                 "to: \"18:00\", tz: UTC}\n", "c.yaml:7:", "HH:MM");
    expect_error("policy:\n  policies: .\n  change_windows:\n    w: {days: [mon], from: \"08:00\", "
                 "to: \"18:00\", tz: Mars/Olympus}\n", "c.yaml:7:", "unknown time zone");
    expect_error("policy:\n  policies: .\n  change_windows:\n    w: {days: [mon], from: \"08:00\", "
                 "to: \"18:00\", tz: ../../etc/passwd}\n", "c.yaml:7:", "not a time zone name");
    expect_error("policy:\n  policies: .\n  in_change_window: [w]\n", "c.yaml:6:",
                 "no change window named \"w\"");
    expect_error("policy:\n  policies: .\n  overrides:\n    - {upstream: zz, mode: shadow}\n",
                 "c.yaml:7:", "upstream \"zz\"");
}

/* ------------------------------------------------------------------ classification */

static tg_catalog *catalog(const char *body, tg_config **cfg)
{
    tg_error err;
    *cfg = load(body, &err);
    if (!*cfg)
        fail_msg("%s", err.msg);
    tg_catalog *cat = tg_catalog_new(*cfg, &err);
    assert_non_null(cat);
    return cat;
}

static void test_classify(void **state)
{
    write_file("p.yaml", "tools:\n  - {tool: 'jira_*', risk: read}\n  - {tool: jira_delete, risk: high}\n"
                         "  - {tool: merge, risk: high}\n");
    tg_config *cfg;
    tg_catalog *cat = catalog("catalog:\n  presets: [{file: p.yaml, upstream: atl}]\n  tools:\n"
                              "    - {tool: 'jira_*', risk: write, upstream: bb}\n"
                              "    - {tool: jira_get, risk: read}\n", &cfg);
    tg_cat_entry e;
    tg_catalog_classify(cat, "atl", "jira_get", NULL, &e);
    assert_int_equal(e.risk, TG_RISK_READ);
    assert_int_equal(e.origin, TG_CAT_RULE);
    tg_catalog_classify(cat, "atl", "jira_delete", NULL, &e);   /* preset exact over glob */
    assert_int_equal(e.risk, TG_RISK_HIGH);
    assert_int_equal(e.origin, TG_CAT_PRESET);
    tg_catalog_classify(cat, "atl", "jira_other", NULL, &e);
    assert_int_equal(e.risk, TG_RISK_READ);
    tg_catalog_classify(cat, "bb", "jira_other", NULL, &e);     /* inline glob for bb */
    assert_int_equal(e.risk, TG_RISK_WRITE);
    tg_catalog_classify(cat, "bb", "merge", NULL, &e);          /* preset bound to atl */
    assert_int_equal(e.origin, TG_CAT_DEFAULT);
    assert_int_equal(e.risk, TG_RISK_HIGH);
    /* Unclassified: annotations decide. */
    json_t *ro = json_pack("{s:b}", "readOnlyHint", 1), *de = json_pack("{s:b}", "destructiveHint", 1);
    json_t *both = json_pack("{s:b,s:b}", "readOnlyHint", 1, "destructiveHint", 1), *none = json_object();
    tg_catalog_classify(cat, "bb", "t", ro, &e);
    assert_int_equal(e.risk, TG_RISK_READ);
    assert_int_equal(e.origin, TG_CAT_ANNOTATIONS);
    tg_catalog_classify(cat, "bb", "t", de, &e);
    assert_int_equal(e.risk, TG_RISK_HIGH);
    tg_catalog_classify(cat, "bb", "t", both, &e);
    assert_int_equal(e.risk, TG_RISK_HIGH);
    tg_catalog_classify(cat, "bb", "t", none, &e);
    assert_int_equal(e.risk, TG_RISK_WRITE);
    assert_int_equal(tg_catalog_log_once(cat, "bb", "t", &e), 1);
    assert_int_equal(tg_catalog_log_once(cat, "bb", "t", &e), 0);
    assert_int_equal(tg_catalog_log_once(cat, "atl", "t", &e), 1);
    json_decref(ro);
    json_decref(de);
    json_decref(both);
    json_decref(none);
    tg_catalog_free(cat);
    tg_config_unref(cfg);
}

/* ------------------------------------------------------------------ resolution */

#define RULES \
    "catalog:\n  tools:\n" \
    "    - tool: issue\n      risk: read\n      resource:\n        type: Jira::Issue\n" \
    "        id: /issue_key\n        pattern: '^[A-Z][A-Z0-9_]+-[0-9]+$'\n" \
    "        parents: [{type: Jira::Project, pattern: '^([A-Z][A-Z0-9_]+)-[0-9]+$', capture: 1}]\n" \
    "    - tool: pr\n      risk: high\n      resource:\n        type: Bitbucket::PullRequest\n" \
    "        id: '{/workspace}/{/repo_slug}/{int:/pr}'\n        parents:\n" \
    "          - {type: Bitbucket::Repo, id: '{/workspace}/{/repo_slug}'}\n" \
    "          - {type: Bitbucket::Workspace, id: /workspace}\n" \
    "    - tool: nested\n      risk: read\n      resource: {type: T, id: '/a/b~1c/0', required: false}\n"

static void resolve(tg_catalog *cat, const char *tool, const char *args_json, tg_arena *a,
                    tg_resource *r)
{
    tg_error err;
    tg_cat_entry e;
    tg_jdoc d = TG_JDOC_INIT;
    assert_int_equal(tg_jscan(&d, args_json, strlen(args_json), 64, &err), 0);
    tg_catalog_classify(cat, "atl", tool, NULL, &e);
    tg_catalog_resolve(cat, &e, "atl", (tg_jref){&d, 0}, a, r);
    tg_jdoc_free(&d);
}

static void expect_unresolved(tg_catalog *cat, const char *args_json, const char *why)
{
    tg_arena *a = tg_arena_new(0);
    tg_resource r;
    resolve(cat, "issue", args_json, a, &r);
    assert_int_equal(r.state, TG_RES_UNRESOLVED);
    assert_true(r.required);
    if (!strstr(r.reason, why))
        fail_msg("%s: reason \"%s\" lacks \"%s\"", args_json, r.reason, why);
    assert_string_equal(r.uid.type, "Mcp::Server");
    tg_arena_free(a);
}

static void test_resolve(void **state)
{
    tg_config *cfg;
    tg_catalog *cat = catalog(RULES, &cfg);
    tg_arena *a = tg_arena_new(0);
    tg_resource r;
    resolve(cat, "issue", "{\"issue_key\":\"OPS-12\"}", a, &r);
    assert_int_equal(r.state, TG_RES_TYPED);
    assert_string_equal(r.uid.type, "Jira::Issue");
    assert_string_equal(r.uid.id, "OPS-12");
    assert_int_equal(r.nparents, 1);
    assert_string_equal(r.parents[0].type, "Jira::Project");
    assert_string_equal(r.parents[0].id, "OPS");
    resolve(cat, "pr", "{\"workspace\":\"acme\",\"repo_slug\":\"api\",\"pr\":17}", a, &r);
    assert_string_equal(r.uid.id, "acme/api/17");
    assert_string_equal(r.parents[0].id, "acme/api");     /* nearest first */
    assert_string_equal(r.parents[1].id, "acme");
    resolve(cat, "pr", "{\"workspace\":\"acme\",\"repo_slug\":\"api\",\"pr\":-1}", a, &r);
    assert_int_equal(r.state, TG_RES_UNRESOLVED);
    resolve(cat, "pr", "{\"workspace\":\"acme\",\"repo_slug\":\"../x\",\"pr\":1}", a, &r);
    assert_int_equal(r.state, TG_RES_UNRESOLVED);
    resolve(cat, "nested", "{\"a\":{\"b/c\":[\"deep\"]}}", a, &r);
    assert_int_equal(r.state, TG_RES_TYPED);
    assert_string_equal(r.uid.id, "deep");
    resolve(cat, "nested", "{}", a, &r);
    assert_int_equal(r.state, TG_RES_UNRESOLVED);
    assert_false(r.required);
    resolve(cat, "no-rule", "{}", a, &r);
    assert_int_equal(r.state, TG_RES_SERVER);
    assert_string_equal(r.uid.id, "atl");
    tg_arena_free(a);
    tg_catalog_free(cat);
    tg_config_unref(cfg);
}

/* A parent's capture is remembered per thread (catalog.c re_memo): ids that alternate, an
 * id that stops matching, and a new catalog with another pattern for the same rule each
 * get their own answer. */
static void test_capture_memo(void **state)
{
    (void)state;
    static const struct { const char *key, *project; } seq[] = {
        {"OPS-12", "OPS"}, {"FIN_2-7", "FIN_2"}, {"OPS-12", "OPS"}, {"OPS-13", "OPS"},
        {"ops-12", NULL}, {"OPS-12", "OPS"}, {"O-1", NULL}, {"OPS-12", "OPS"},
    };
    for (int round = 0; round < 2; round++) {
        /* round 1: the same rule, but the group holds only the first letter */
        tg_config *cfg;
        tg_catalog *cat = catalog(round == 0 ? RULES :
            "catalog:\n  tools:\n"
            "    - tool: issue\n      risk: read\n      resource:\n        type: Jira::Issue\n"
            "        id: /issue_key\n        pattern: '^[A-Z][A-Z0-9_]+-[0-9]+$'\n"
            "        parents: [{type: Jira::Project, pattern: '^([A-Z])[A-Z0-9_]+-[0-9]+$', capture: 1}]\n",
            &cfg);
        tg_arena *a = tg_arena_new(0);
        for (size_t i = 0; i < sizeof seq / sizeof *seq; i++) {
            char args[64];
            snprintf(args, sizeof args, "{\"issue_key\":\"%s\"}", seq[i].key);
            tg_resource r;
            resolve(cat, "issue", args, a, &r);
            if (!seq[i].project) {
                assert_int_equal(r.state, TG_RES_UNRESOLVED);
                continue;
            }
            assert_int_equal(r.state, TG_RES_TYPED);
            if (round == 0) assert_string_equal(r.parents[0].id, seq[i].project);
            else assert_int_equal(strlen(r.parents[0].id), 1);
            assert_int_equal(r.parents[0].id[0], seq[i].key[0]);
        }
        tg_arena_free(a);
        tg_catalog_free(cat);
        tg_config_unref(cfg);
    }
}

static void test_argument_attacks(void **state)
{
    tg_config *cfg;
    tg_catalog *cat = catalog(RULES, &cfg);
    char big[400], json[600];
    expect_unresolved(cat, "{\"issue_key\":12}", "is an integer, expected a string");
    expect_unresolved(cat, "{\"issue_key\":[\"OPS-1\"]}", "is an array");
    expect_unresolved(cat, "{\"issue_key\":{\"key\":\"OPS-1\"}}", "is an object");
    expect_unresolved(cat, "{\"issue_key\":true}", "is a boolean");
    expect_unresolved(cat, "{\"issue_key\":null}", "is null");
    expect_unresolved(cat, "{\"issue_key\":1.5}", "is a number");
    expect_unresolved(cat, "{}", "missing");
    expect_unresolved(cat, "{\"issue_key\":\"\"}", "is empty");
    expect_unresolved(cat, "{\"issue_key\":\"OPS-12/../FIN-1\"}", "path separator");
    expect_unresolved(cat, "{\"issue_key\":\"OPS-12..\"}", "\"..\"");
    expect_unresolved(cat, "{\"issue_key\":\"OPS-12\\\\FIN\"}", "path separator");
    /* Cyrillic capital O (U+041E) instead of Latin O. */
    expect_unresolved(cat, "{\"issue_key\":\"\xd0\x9ePS-12\"}", "non-ASCII");
    expect_unresolved(cat, "{\"issue_key\":\"OPS-12\\n\"}", "control character");
    expect_unresolved(cat, "{\"issue_key\":\"ops-12\"}", "does not match");
    expect_unresolved(cat, "{\"issue_key\":\"OPS-12 OR 1=1\"}", "does not match");
    memset(big, 'A', 300);
    memcpy(big + 300, "-1", 3);
    snprintf(json, sizeof json, "{\"issue_key\":\"%s\"}", big);
    expect_unresolved(cat, json, "longer than 256");
    tg_catalog_free(cat);
    tg_config_unref(cfg);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tg-catalog-test-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    tg_log_set_level(TG_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_errors),
        cmocka_unit_test(test_policy_section_errors),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_capture_memo),
        cmocka_unit_test(test_argument_attacks),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        rc = rc ? rc : 1;
    return rc;
}
