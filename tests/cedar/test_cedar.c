/*
 * test_cedar.c — unit tests for the hard parts of the Cedar engine: string escapes, Long
 * overflow, `like`, the entity hierarchy (cycles, missing entities, request overlay),
 * nesting limits, parse errors with positions, and the authorizer's reasons/errors.
 * The integration corpus (corpus.sh) covers breadth; these pin down edge cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cedar/cedar_int.h"

/* One authorization: policies text, entities JSON (or NULL), request JSON. Returns the
 * decision; *nerr receives the number of erroring policies, reasons/errors are written
 * as "policyN,..." strings. */
typedef struct outcome {
    int  decision;
    char reasons[256];
    char errors[256];
} outcome;

static void ids(char *out, size_t cap, const cedar_policy_set *ps, const size_t *v, size_t n)
{
    out[0] = 0;
    for (size_t i = 0; i < n; i++)
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? "," : "", cedar_policy_id(ps, v[i]));
}

static outcome run(const char *policies, const char *entities, const char *context)
{
    tg_error err;
    cedar_policy_set *ps = cedar_policy_set_parse(policies, strlen(policies), &err);
    if (!ps) fail_msg("parse: %s", err.msg);
    cedar_store *st = NULL;
    if (entities) {
        st = cedar_store_load(entities, strlen(entities), &err);
        if (!st) fail_msg("entities: %s", err.msg);
    }
    tg_arena *a = tg_arena_new(0);
    cedar_request *rq = cedar_request_new(a, st);
    assert_int_equal(cedar_request_set_principal(rq, "User", 4, "alice", 5, &err), 0);
    assert_int_equal(cedar_request_set_action(rq, "Action", 6, "read", 4, &err), 0);
    assert_int_equal(cedar_request_set_resource(rq, "Doc", 3, "d1", 2, &err), 0);
    if (context && cedar_request_set_context_json(rq, context, strlen(context), &err))
        fail_msg("context: %s", err.msg);
    cedar_response res;
    assert_int_equal(cedar_authorize(ps, rq, &res, &err), 0);
    outcome o = {.decision = res.decision};
    ids(o.reasons, sizeof o.reasons, ps, res.reasons, res.nreasons);
    ids(o.errors, sizeof o.errors, ps, res.errors, res.nerrors);
    tg_arena_free(a);
    cedar_store_free(st);
    cedar_policy_set_free(ps);
    return o;
}

/* Evaluates one `when` condition: 1 true, 0 false, -1 error. */
static int check(const char *expr, const char *entities, const char *context)
{
    char text[8192];
    snprintf(text, sizeof text, "permit(principal, action, resource) when { %s };", expr);
    outcome o = run(text, entities, context);
    if (o.errors[0]) return -1;
    return o.decision == CEDAR_ALLOW;
}

static char *parse_error(const char *text, char *buf)
{
    tg_error err;
    cedar_policy_set *ps = cedar_policy_set_parse(text, strlen(text), &err);
    if (ps) {
        cedar_policy_set_free(ps);
        return NULL;
    }
    strcpy(buf, err.msg);
    return buf;
}

static void test_string_escapes(void **state)
{
    (void)state;
    /* JSON "\u0000" and Cedar "\0" are the same one-byte string */
    assert_int_equal(check("context.s == \"a\\0b\"", NULL, "{\"s\":\"a\\u0000b\"}"), 1);
    assert_int_equal(check("\"\\u{1F600}\" == \"\xF0\x9F\x98\x80\"", NULL, NULL), 1);
    assert_int_equal(check("\"\\u{1_F600}\" == \"\xF0\x9F\x98\x80\"", NULL, NULL), 1);
    assert_int_equal(check("\"\\x41\\n\\t\\r\\'\\\"\\\\\" == context.s", NULL,
                          "{\"s\":\"A\\n\\t\\r'\\\"\\\\\"}"), 1);
    char buf[1100];
    assert_non_null(parse_error("permit(principal,action,resource) when { \"\\x80\" };", buf));
    assert_non_null(strstr(buf, "1:43"));
    assert_non_null(parse_error("permit(principal,action,resource) when { \"\\u{D800}\" };", buf));
    assert_non_null(strstr(buf, "scalar"));
    assert_non_null(parse_error("permit(principal,action,resource) when { \"\\u{1234567}\" };", buf));
    assert_non_null(parse_error("permit(principal,action,resource) when { \"\\q\" };", buf));
    assert_non_null(parse_error("permit(principal,action,resource) when { \"a\\*\" == \"a\" };", buf));
    assert_non_null(strstr(buf, "like"));
}

static void test_long_overflow(void **state)
{
    (void)state;
    assert_int_equal(check("9223372036854775807 + 1 == 0", NULL, NULL), -1);
    assert_int_equal(check("-9223372036854775808 - 1 == 0", NULL, NULL), -1);
    assert_int_equal(check("4294967296 * 4294967296 == 0", NULL, NULL), -1);
    assert_int_equal(check("-9223372036854775808 < 0", NULL, NULL), 1);
    /* `--x` negates twice: the inner literal is i64 min, negating it overflows */
    assert_int_equal(check("--9223372036854775808 == 0", NULL, NULL), -1);
    assert_int_equal(check("context.n + 0 == 9223372036854775807", NULL, "{\"n\":9223372036854775807}"), 1);
    char buf[1100];
    assert_non_null(parse_error("permit(principal,action,resource) when { 9223372036854775808 == 1 };", buf));
    assert_non_null(strstr(buf, "too large"));
    assert_non_null(parse_error("permit(principal,action,resource) when { -9223372036854775809 == 1 };", buf));
    /* `==` never errors across types */
    assert_int_equal(check("1 != \"1\"", NULL, NULL), 1);
    assert_int_equal(check("1 < \"1\"", NULL, NULL), -1);
}

static void test_like(void **state)
{
    (void)state;
    assert_int_equal(check("\"abc\" like \"a*c\"", NULL, NULL), 1);
    assert_int_equal(check("\"ac\" like \"a*b*c\"", NULL, NULL), 0);
    assert_int_equal(check("\"\" like \"*\"", NULL, NULL), 1);
    assert_int_equal(check("\"a*b\" like \"a\\*b\"", NULL, NULL), 1);
    assert_int_equal(check("\"axb\" like \"a\\*b\"", NULL, NULL), 0);
    assert_int_equal(check("\"aXbXc\" like \"*X*X*\"", NULL, NULL), 1);
    assert_int_equal(check("\"\xC3\xA9t\xC3\xA9\" like \"*t*\"", NULL, NULL), 1);
    assert_int_equal(check("1 like \"*\"", NULL, NULL), -1);
    /* the classic exponential case for backtracking matchers must be instant */
    char expr[4096], pat[1024];
    size_t n = 0;
    for (int i = 0; i < 100; i++) n += (size_t)snprintf(pat + n, sizeof pat - n, "*a");
    snprintf(pat + n, sizeof pat - n, "*b");
    snprintf(expr, sizeof expr, "context.s like \"%s\"", pat);
    char ctx[3000] = "{\"s\":\"";
    for (int i = 0; i < 2000; i++) strcat(ctx, "a");
    strcat(ctx, "\"}");
    uint64_t t0 = tg_now_ms();
    assert_int_equal(check(expr, NULL, ctx), 0);
    assert_true(tg_now_ms() - t0 < 1000);
}

static const char *hier =
    "[{\"uid\":{\"type\":\"User\",\"id\":\"alice\"},\"attrs\":{\"age\":30},"
    "  \"parents\":[{\"type\":\"Group\",\"id\":\"a\"}]},"
    " {\"uid\":{\"type\":\"Group\",\"id\":\"a\"},\"attrs\":{},\"parents\":[{\"type\":\"Group\",\"id\":\"b\"}]},"
    " {\"uid\":{\"type\":\"Group\",\"id\":\"b\"},\"attrs\":{},\"parents\":[{\"type\":\"Group\",\"id\":\"a\"},"
    "                                                        {\"type\":\"Group\",\"id\":\"ghost\"}]}]";

static void test_hierarchy(void **state)
{
    (void)state;
    assert_int_equal(check("principal in Group::\"b\"", hier, NULL), 1);          /* transitive */
    assert_int_equal(check("Group::\"b\" in Group::\"a\"", hier, NULL), 1);       /* cycle */
    assert_int_equal(check("principal in Group::\"ghost\"", hier, NULL), 1);      /* missing parent */
    assert_int_equal(check("principal in principal", hier, NULL), 1);             /* reflexive */
    assert_int_equal(check("User::\"nobody\" in Group::\"a\"", hier, NULL), 0);   /* missing: no ancestors */
    assert_int_equal(check("principal in [Group::\"x\", Group::\"a\"]", hier, NULL), 1);
    assert_int_equal(check("principal in [Group::\"x\", 1]", hier, NULL), -1);
    assert_int_equal(check("User::\"nobody\" has age", hier, NULL), 0);
    assert_int_equal(check("User::\"nobody\".age == 1", hier, NULL), -1);
    assert_int_equal(check("principal.age == 30 && principal has age", hier, NULL), 1);
    assert_int_equal(check("principal.height == 1", hier, NULL), -1);
    /* duplicate entities are rejected at load */
    tg_error err;
    const char *dup = "[{\"uid\":{\"type\":\"A\",\"id\":\"x\"}},{\"uid\":{\"type\":\"A\",\"id\":\"x\"}}]";
    assert_null(cedar_store_load(dup, strlen(dup), &err));
    assert_non_null(strstr(err.msg, "duplicate"));
}

static void test_request_overlay(void **state)
{
    (void)state;
    tg_error err;
    cedar_store *st = cedar_store_load(hier, strlen(hier), &err);
    assert_non_null(st);
    const char *pol = "permit(principal in Group::\"b\", action, resource) when { principal.level > 2 };";
    cedar_policy_set *ps = cedar_policy_set_parse(pol, strlen(pol), &err);
    assert_non_null(ps);
    tg_arena *a = tg_arena_new(0);
    for (int round = 0; round < 3; round++) {
        tg_arena_reset(a);
        cedar_request *rq = cedar_request_new(a, st);
        char ent[256];
        snprintf(ent, sizeof ent,
                 "{\"uid\":{\"type\":\"Agent\",\"id\":\"bot%d\"},\"attrs\":{\"level\":%d},"
                 "\"parents\":[{\"type\":\"Group\",\"id\":\"a\"}]}", round, round + 1);
        assert_int_equal(cedar_request_add_entity_json(rq, ent, strlen(ent), &err), 0);
        /* a second entity with the same uid, or one that shadows the store, is refused */
        assert_int_equal(cedar_request_add_entity_json(rq, ent, strlen(ent), &err), -1);
        const char *alice = "{\"uid\":{\"type\":\"User\",\"id\":\"alice\"}}";
        assert_int_equal(cedar_request_add_entity_json(rq, alice, strlen(alice), &err), -1);
        char id[16];
        snprintf(id, sizeof id, "bot%d", round);
        assert_int_equal(cedar_request_set_principal(rq, "Agent", 5, id, strlen(id), &err), 0);
        assert_int_equal(cedar_request_set_action(rq, "Action", 6, "x", 1, &err), 0);
        assert_int_equal(cedar_request_set_resource(rq, "Doc", 3, "x", 1, &err), 0);
        cedar_response res;
        assert_int_equal(cedar_authorize(ps, rq, &res, &err), 0);
        assert_int_equal(res.decision, round + 1 > 2 ? CEDAR_ALLOW : CEDAR_DENY);
    }
    assert_int_equal(cedar_store_count(st), 3);  /* the store never grew */
    tg_arena_free(a);
    cedar_policy_set_free(ps);
    cedar_store_free(st);
}

/* A built string is checked for UTF-8 wherever the bad byte sits (the check takes plain
 * ASCII eight bytes at a time), and a good one arrives whole: the policy compares it. */
static void test_build_string_utf8(void **state)
{
    (void)state;
    tg_error err;
    const char *pol = "permit(principal, action, resource) when { context.s == \"abcdefghijklmno\\u{e9}pqrstuvwxyz0123\" };";
    cedar_policy_set *ps = cedar_policy_set_parse(pol, strlen(pol), &err);
    assert_non_null(ps);
    const char good[] = "abcdefghijklmno\xc3\xa9pqrstuvwxyz0123";
    for (int bad = -1; bad < (int)sizeof good - 1; bad++) {
        char s[sizeof good];
        memcpy(s, good, sizeof good);
        if (bad >= 0) s[bad] = (char)0xff;
        tg_arena *a = tg_arena_new(0);
        cedar_request *rq = cedar_request_new(a, NULL);
        assert_int_equal(cedar_request_set_principal(rq, "User", 4, "alice", 5, &err), 0);
        assert_int_equal(cedar_request_set_action(rq, "Action", 6, "read", 4, &err), 0);
        assert_int_equal(cedar_request_set_resource(rq, "Doc", 3, "d1", 2, &err), 0);
        cedar_builder *b = cedar_builder_new(rq);
        cedar_build_record_begin(b);
        cedar_build_key(b, "s", 1);
        cedar_build_string(b, s, sizeof good - 1);
        cedar_build_record_end(b);
        int rc = cedar_build_context(b, &err);
        if (bad >= 0) {
            if (rc != -1) fail_msg("byte 0xff at %d accepted", bad);
            assert_non_null(strstr(err.msg, "UTF-8"));
        } else {
            assert_int_equal(rc, 0);
            cedar_response res;
            assert_int_equal(cedar_authorize(ps, rq, &res, &err), 0);
            assert_int_equal(res.decision, CEDAR_ALLOW);
        }
        tg_arena_free(a);
    }
    cedar_policy_set_free(ps);
}

static void test_nesting_limits(void **state)
{
    (void)state;
    char *text = malloc(20000), buf[1100];
    strcpy(text, "permit(principal,action,resource) when { ");
    for (int i = 0; i < 300; i++) strcat(text, "(");
    strcat(text, "true");
    for (int i = 0; i < 300; i++) strcat(text, ")");
    strcat(text, " };");
    assert_non_null(parse_error(text, buf));
    assert_non_null(strstr(buf, "nests deeper"));
    strcpy(text, "permit(principal,action,resource) when { true");
    for (int i = 0; i < 600; i++) strcat(text, " || true");
    strcat(text, " };");
    assert_non_null(parse_error(text, buf));
    assert_non_null(strstr(buf, "nests deeper"));
    free(text);
    assert_non_null(parse_error("permit(principal,action,resource) when { !!!!!true };", buf));
    assert_non_null(strstr(buf, "at most 4"));
    assert_int_equal(check("!!!!true", NULL, NULL), 1);
    assert_int_equal(check("----1 == 1", NULL, NULL), 1);
    assert_non_null(parse_error("permit(principal,action,resource) when { !-1 };", buf));
    /* a JSON context nested beyond the limit is refused, not recursed into */
    char ctx[1200] = "{\"a\":";
    for (int i = 0; i < 200; i++) strcat(ctx, "[");
    for (int i = 0; i < 200; i++) strcat(ctx, "]");
    strcat(ctx, "}");
    tg_arena *a = tg_arena_new(0);
    cedar_request *rq = cedar_request_new(a, NULL);
    tg_error err;
    assert_int_equal(cedar_request_set_context_json(rq, ctx, strlen(ctx), &err), -1);
    assert_non_null(strstr(err.msg, "too deep"));
    tg_arena_free(a);
}

static void test_parse_errors(void **state)
{
    (void)state;
    char buf[1100];
    assert_non_null(parse_error("permit(principal, action, resource) when { 1 = 2 };", buf));
    assert_string_equal(buf, "1:46: expected `==`, found `=`");
    assert_non_null(parse_error("permit(principal, action, resource)", buf));
    assert_string_equal(buf, "1:36: expected `when`, `unless` or `;`, found end of input");
    assert_non_null(parse_error("permit(\n  principal == User,\n  action, resource);", buf));
    assert_non_null(strstr(buf, "2:"));
    assert_non_null(parse_error("permit(principal, action, resource) when { 1 < 2 < 3 };", buf));
    assert_non_null(strstr(buf, "chain"));
    assert_non_null(parse_error("permit(principal, action, resource) when { principal == in::\"x\" };", buf));
    assert_non_null(strstr(buf, "reserved"));
    assert_non_null(parse_error("@a(\"1\") @a(\"2\") permit(principal, action, resource);", buf));
    assert_non_null(strstr(buf, "duplicate annotation"));
    assert_non_null(parse_error("permit(principal, action, resource) when { {a: 1, a: 2} == {} };", buf));
    assert_non_null(strstr(buf, "duplicate key"));
    assert_non_null(parse_error("permit(principal, action, resource) when { foo(1) };", buf));
    assert_non_null(strstr(buf, "not a function"));
    assert_non_null(parse_error("permit(principal, action, resource) when { [].contains() };", buf));
    assert_non_null(parse_error("permit(principal, action is A, resource);", buf));
    assert_null(parse_error("permit(principal is A::B in A::G::\"x\", action in [Action::\"a\", Action::\"b\"],"
                            " resource == ?resource) when { context has a.b } unless { false } when { true };", buf));
}

static void test_authorizer(void **state)
{
    (void)state;
    const char *ps =
        "permit(principal, action == Action::\"read\", resource);\n"          /* policy0 */
        "@id(\"no-bob\") forbid(principal == User::\"bob\", action, resource);\n"  /* policy1 */
        "permit(principal, action, resource) when { context.missing };\n"     /* policy2: error */
        "forbid(principal, action, resource) when { context.f };\n"           /* policy3 */
        "permit(principal, action == Action::\"write\", resource);\n";        /* policy4 */
    outcome o = run(ps, NULL, "{\"f\":false}");
    assert_int_equal(o.decision, CEDAR_ALLOW);
    assert_string_equal(o.reasons, "policy0");
    assert_string_equal(o.errors, "policy2");
    o = run(ps, NULL, "{\"f\":true}");
    assert_int_equal(o.decision, CEDAR_DENY);
    assert_string_equal(o.reasons, "policy3");
    assert_string_equal(o.errors, "policy2");
    /* an erroring forbid is skipped (Cedar semantics; toolgate's layer fails closed) */
    o = run("permit(principal, action, resource); forbid(principal, action, resource) when { 1 + true };",
            NULL, NULL);
    assert_int_equal(o.decision, CEDAR_ALLOW);
    assert_string_equal(o.errors, "policy1");
    o = run("forbid(principal, action, resource) unless { false };", NULL, NULL);
    assert_int_equal(o.decision, CEDAR_DENY);
    assert_string_equal(o.reasons, "policy0");
    o = run("", NULL, NULL);
    assert_int_equal(o.decision, CEDAR_DENY);
    assert_string_equal(o.reasons, "");
    /* ids and annotations readable by callers */
    tg_error err;
    cedar_policy_set *set = cedar_policy_set_parse(ps, strlen(ps), &err);
    assert_string_equal(cedar_policy_id(set, 1), "no-bob");
    assert_string_equal(cedar_policy_id(set, 2), "policy2");
    assert_string_equal(cedar_policy_annotation(set, 1, "id"), "no-bob");
    assert_null(cedar_policy_annotation(set, 0, "id"));
    assert_int_equal(cedar_policy_effect(set, 1), CEDAR_FORBID);
    cedar_policy_set_free(set);
}

static void test_index_scaling(void **state)
{
    (void)state;
    /* 3000 policies on unrelated actions/principals must not change the answer */
    tg_buf b = TG_BUF_INIT;
    for (int i = 0; i < 1000; i++) {
        tg_buf_printf(&b, "permit(principal, action == Action::\"a%d\", resource);\n", i);
        tg_buf_printf(&b, "permit(principal == User::\"u%d\", action, resource);\n", i);
        tg_buf_printf(&b, "forbid(principal is Bot%d, action, resource);\n", i);
    }
    tg_buf_appends(&b, "permit(principal is User, action in [Action::\"x\", Action::\"read\"], resource is Doc);\n");
    outcome o = run(b.data, NULL, NULL);
    assert_int_equal(o.decision, CEDAR_ALLOW);
    assert_string_equal(o.reasons, "policy3000");
    tg_buf_free(&b);
}

/* Guarded policies (authorize.c: `V has a && V.a == literal` filed under the literal) are
 * skipped only when they are false without error: for every request below, the
 * authorizer's decision, reasons and errors equal those of evaluating every policy. */
static void test_guard_index(void **state)
{
    (void)state;
    const char *pol =
        "forbid(principal, action, resource is Doc) when { resource has project && resource.project == Project::\"P1\" };\n"
        "permit(principal, action, resource) when { resource has project && Project::\"P2\" == resource.project };\n"
        "permit(principal, action, resource) when { resource has n && resource.n == 7 && principal has team };\n"
        "forbid(principal, action, resource) when { resource has s && resource has n && resource.s == \"x\" && 1 + true };\n"
        "permit(principal, action, resource) when { resource.project == Project::\"P1\" };\n"      /* no has: errors */
        "permit(principal, action, resource) when { principal has team && resource.team == \"red\" };\n" /* other var */
        "permit(principal, action, resource) when { context has k && context.k == true };\n"
        "permit(principal, action, resource) when { 1 + true && resource has s && resource.s == \"x\" };\n"
        "permit(principal, action, resource) unless { resource has s && resource.s == \"x\" };\n"
        "permit(principal, action, resource) when { resource has s && resource.s == \"y\" } when { 1 + true };\n"
        "permit(principal, action, resource) when { resource has r.s && resource.r.s == \"x\" };\n"
        "permit(principal is User, action, resource is Doc) when { principal has team && principal.team == \"red\" };\n";
    /* the same guard many times over, so that the guard table is what the index picks */
    tg_buf b = TG_BUF_INIT;
    tg_buf_appends(&b, pol);
    for (int i = 0; i < 200; i++)
        tg_buf_printf(&b, "forbid(principal, action, resource) when { resource has project && "
                          "resource.project == Project::\"Q%d\" && context has k };\n", i);
    const char *ents =
        "[{\"uid\":{\"type\":\"User\",\"id\":\"alice\"},\"attrs\":{\"team\":\"red\"}},"
        " {\"uid\":{\"type\":\"Doc\",\"id\":\"d1\"},\"attrs\":{\"project\":{\"__entity\":{\"type\":\"Project\",\"id\":\"P1\"}}}},"
        " {\"uid\":{\"type\":\"Doc\",\"id\":\"d2\"},\"attrs\":{\"project\":{\"__entity\":{\"type\":\"Project\",\"id\":\"P2\"}},\"n\":7}},"
        " {\"uid\":{\"type\":\"Doc\",\"id\":\"d3\"},\"attrs\":{\"project\":\"P1\",\"s\":\"x\",\"n\":7,\"team\":\"red\"}},"
        " {\"uid\":{\"type\":\"Doc\",\"id\":\"d4\"},\"attrs\":{\"s\":\"y\",\"r\":{\"s\":\"x\"}}},"
        " {\"uid\":{\"type\":\"Doc\",\"id\":\"d5\"},\"attrs\":{\"project\":{\"__entity\":{\"type\":\"Project\",\"id\":\"Q7\"}},\"r\":3}},"
        " {\"uid\":{\"type\":\"Note\",\"id\":\"d1\"},\"attrs\":{\"project\":{\"__entity\":{\"type\":\"Project\",\"id\":\"P1\"}}}}]";
    const char *const principals[] = {"alice", "bob"};
    const char *const resources[][2] = {{"Doc", "d1"}, {"Doc", "d2"}, {"Doc", "d3"}, {"Doc", "d4"},
                                        {"Doc", "d5"}, {"Doc", "ghost"}, {"Note", "d1"}};
    const char *const contexts[] = {"{}", "{\"k\":true}", "{\"k\":1}"};
    tg_error err;
    cedar_policy_set *ps = cedar_policy_set_parse(b.data, b.len, &err);
    if (!ps) fail_msg("parse: %s", err.msg);
    cedar_store *st = cedar_store_load(ents, strlen(ents), &err);
    assert_non_null(st);
    tg_arena *a = tg_arena_new(0);
    int met_guard = 0;
    for (size_t pi = 0; pi < 2; pi++)
        for (size_t ri = 0; ri < sizeof resources / sizeof resources[0]; ri++)
            for (size_t ci = 0; ci < 3; ci++) {
                tg_arena_reset(a);
                cedar_request *rq = cedar_request_new(a, st);
                assert_int_equal(cedar_request_set_principal(rq, "User", 4, principals[pi], strlen(principals[pi]), &err), 0);
                assert_int_equal(cedar_request_set_action(rq, "Action", 6, "read", 4, &err), 0);
                assert_int_equal(cedar_request_set_resource(rq, resources[ri][0], strlen(resources[ri][0]),
                                                            resources[ri][1], strlen(resources[ri][1]), &err), 0);
                assert_int_equal(cedar_request_set_context_json(rq, contexts[ci], strlen(contexts[ci]), &err), 0);
                cedar_response res;
                assert_int_equal(cedar_authorize(ps, rq, &res, &err), 0);
                /* the reference: every policy evaluated, Cedar's decision rule */
                char want_f[4096] = "", want_p[4096] = "", want_e[4096] = "", got[4096];
                for (size_t i = 0; i < cedar_policy_count(ps); i++) {
                    const char *msg = NULL;
                    int r = cedar_eval_policy(&ps->policies[i], rq, &msg);
                    char *to = r < 0 ? want_e : r == 0 ? NULL
                             : cedar_policy_effect(ps, i) == CEDAR_FORBID ? want_f : want_p;
                    if (to) snprintf(to + strlen(to), 4096 - strlen(to), "%s%s", to[0] ? "," : "", cedar_policy_id(ps, i));
                    if (r != 0 && i >= 12) met_guard++;
                }
                const char *want = want_f[0] ? want_f : want_p;
                assert_int_equal(res.decision, want_f[0] || !want_p[0] ? CEDAR_DENY : CEDAR_ALLOW);
                ids(got, sizeof got, ps, res.reasons, res.nreasons);
                assert_string_equal(got, want);
                ids(got, sizeof got, ps, res.errors, res.nerrors);
                assert_string_equal(got, want_e);
            }
    assert_int_equal(met_guard, 2 * 2);  /* Q7 forbids d5 when context has k: 2 principals x 2 contexts */
    tg_arena_free(a);
    cedar_store_free(st);
    cedar_policy_set_free(ps);
    tg_buf_free(&b);
}

/* The EST is what cedar-wasm 4.13's policyToJson prints for the same text (byte for byte
 * here; the differential test compares it ignoring key order): a one-element action list
 * is "entity", `has` keeps its path, `@a` without a value is null. */
static void test_est(void **state)
{
    (void)state;
    const char *text = "@b(\"2\") @a permit(principal is User in Group::\"g\", action in [Action::\"r\"], resource)"
                       " when { context.s like \"a*\" && ip(\"1.2.3.4\").isLoopback() && {z: 1, a: -2}.a == -2"
                       " && context has x.y };\n"
                       "permit(principal, action in [Action::\"r\", NS::Action::\"w\"], resource)"
                       " when { principal has \"a b\" };";
    tg_error err;
    cedar_policy_set *ps = cedar_policy_set_parse(text, strlen(text), &err);
    assert_non_null(ps);
    tg_buf out = TG_BUF_INIT;
    cedar_policy_set_est(ps, &out);
    assert_string_equal(out.data,
        "[{\"effect\":\"permit\",\"principal\":{\"op\":\"is\",\"entity_type\":\"User\",\"in\":{\"entity\":{"
        "\"type\":\"Group\",\"id\":\"g\"}}},\"action\":{\"op\":\"in\",\"entity\":{\"type\":\"Action\",\"id\":\"r"
        "\"}},\"resource\":{\"op\":\"All\"},\"conditions\":[{\"kind\":\"when\",\"body\":{\"&&\":{\"left\":{\""
        "&&\":{\"left\":{\"&&\":{\"left\":{\"like\":{\"left\":{\".\":{\"left\":{\"Var\":\"context\"},\"attr\":"
        "\"s\"}},\"pattern\":[{\"Literal\":\"a\"},\"Wildcard\"]}},\"right\":{\"isLoopback\":[{\"ip\":[{\"V"
        "alue\":\"1.2.3.4\"}]}]}}},\"right\":{\"==\":{\"left\":{\".\":{\"left\":{\"Record\":{\"a\":{\"Value"
        "\":-2},\"z\":{\"Value\":1}}},\"attr\":\"a\"}},\"right\":{\"Value\":-2}}}}},\"right\":{\"has\":{\"l"
        "eft\":{\"Var\":\"context\"},\"attr\":[\"x\",\"y\"]}}}}}],\"annotations\":{\"a\":null,\"b\":\"2\"}},"
        "{\"effect\":\"permit\",\"principal\":{\"op\":\"All\"},\"action\":{\"op\":\"in\",\"entities\":[{\"ty"
        "pe\":\"Action\",\"id\":\"r\"},{\"type\":\"NS::Action\",\"id\":\"w\"}]},\"resource\":{\"op\":\"All\"},"
        "\"conditions\":[{\"kind\":\"when\",\"body\":{\"has\":{\"left\":{\"Var\":\"principal\"},\"attr\":\"a"
        " b\"}}}]}]");
    /* callers still read `@a` as "" */
    assert_string_equal(cedar_policy_annotation(ps, 0, "a"), "");
    tg_buf_free(&out);
    cedar_policy_set_free(ps);
}

/* `e has a.b.c` evaluates as `e has a && e.a has b && e.a.b has c`. */
static void test_has_path(void **state)
{
    (void)state;
    const char *ctx = "{\"a\":{\"b\":{\"c\":1},\"n\":5,\"u\":{\"__entity\":{\"type\":\"User\",\"id\":\"nobody\"}}}}";
    assert_int_equal(check("context has a.b.c", NULL, ctx), 1);
    assert_int_equal(check("context has a.b", NULL, ctx), 1);
    assert_int_equal(check("context has a.x.c", NULL, ctx), 0);  /* stops at the missing `x` */
    assert_int_equal(check("context has a.b.x", NULL, ctx), 0);
    assert_int_equal(check("context has a.n.c", NULL, ctx), -1); /* `5 has c` is a type error */
    assert_int_equal(check("context has a.u.c", NULL, ctx), 0);  /* a missing entity has nothing */
    assert_int_equal(check("context.a has b.c", NULL, ctx), 1);
    assert_int_equal(check("User::\"alice\" has p.q",
                           "[{\"uid\":{\"type\":\"User\",\"id\":\"alice\"},\"attrs\":{\"p\":{\"q\":true}},\"parents\":[]}]",
                           NULL), 1);
}

/* Identifiers the reference refuses: reserved words as attribute names and record keys, and
 * action scopes naming entities that are not actions. */
static void test_reserved_and_action_types(void **state)
{
    (void)state;
    char buf[1100];
    static const char *const reserved[] = {"true", "false", "if", "then", "else", "in", "is", "like",
                                           "has", "__cedar"};
    for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++) {
        const char *w = reserved[i];
        char text[256];
        static const char *const forms[][2] = {{"principal.", ""}, {"principal has ", ""},
                                               {"principal has a.", ""}, {"{", ": 1} == {}"}};
        for (size_t f = 0; f < sizeof forms / sizeof *forms; f++) {
            snprintf(text, sizeof text, "permit(principal, action, resource) when { %s%s%s };",
                     forms[f][0], w, forms[f][1]);
            if (!parse_error(text, buf)) fail_msg("accepted: %s", text);
            assert_non_null(strstr(buf, "reserved"));
        }
        /* quoted forms and annotation names are fine */
        snprintf(text, sizeof text, "@%s permit(principal, action, resource) when { principal[\"%s\"] ||"
                 " principal has \"%s\" || {\"%s\": 1} == {} };", w, w, w, w);
        assert_null(parse_error(text, buf));
    }
    /* words that are not reserved */
    assert_null(parse_error("permit(principal, action, resource) when { principal.permit && principal has "
                            "when.unless && {principal: 1, context: 2} == {} };", buf));
    /* the action scope takes Action or Ns::Action entities only */
    assert_non_null(parse_error("permit(principal, action == Acton::\"read\", resource);", buf));
    assert_non_null(strstr(buf, "Action"));
    assert_non_null(strstr(buf, "1:29"));
    assert_non_null(parse_error("permit(principal, action in Actions::\"read\", resource);", buf));
    assert_non_null(parse_error("permit(principal, action in [Action::\"a\", Ation::\"b\"], resource);", buf));
    assert_non_null(parse_error("permit(principal, action == XAction::\"read\", resource);", buf));
    assert_null(parse_error("permit(principal, action in [Action::\"a\", NS::Action::\"b\", A::B::Action::\"c\"],"
                            " resource);", buf));
    /* elsewhere any entity type may appear */
    assert_null(parse_error("permit(principal == Action::\"a\", action, resource) when { action == Acton::\"x\" };", buf));
}

/* Fails (returns the error) when the context JSON is rejected; NULL when accepted. */
static char *context_error(const char *context, char *buf)
{
    tg_arena *a = tg_arena_new(0);
    cedar_request *rq = cedar_request_new(a, NULL);
    tg_error err;
    int rc = cedar_request_set_context_json(rq, context, strlen(context), &err);
    if (rc) strcpy(buf, err.msg);
    tg_arena_free(a);
    return rc ? buf : NULL;
}

/* Cedar's JSON value escapes read exactly as the reference (cedar-wasm 4.13) reads them. */
static void test_json_escapes(void **state)
{
    (void)state;
    char buf[1100];
    /* the retired `__expr` escape fails the request (it used to be accepted: fail-open),
     * in the context, nested, in an escape's argument, in attributes, tags and uids */
    assert_non_null(context_error("{\"odd\":{\"__expr\":\"1\"}}", buf));
    assert_non_null(strstr(buf, "__expr"));
    assert_non_null(context_error("{\"__expr\":\"true\"}", buf));
    assert_non_null(context_error("{\"a\":[{\"b\":{\"__expr\":\"1\"}}]}", buf));
    assert_non_null(context_error("{\"o\":{\"__extn\":{\"fn\":\"ip\",\"arg\":{\"__expr\":\"1\"}}}}", buf));
    tg_error err;
    const char *bad_entities[] = {
        "[{\"uid\":{\"type\":\"U\",\"id\":\"a\"},\"attrs\":{\"o\":{\"__expr\":\"1\"}},\"parents\":[]}]",
        "[{\"uid\":{\"type\":\"U\",\"id\":\"a\"},\"attrs\":{},\"tags\":{\"t\":{\"__expr\":\"1\"}},\"parents\":[]}]",
        "[{\"uid\":{\"__expr\":\"U::\\\"a\\\"\"},\"attrs\":{},\"parents\":[]}]",
    };
    for (size_t i = 0; i < sizeof bad_entities / sizeof *bad_entities; i++) {
        cedar_store *st = cedar_store_load(bad_entities[i], strlen(bad_entities[i]), &err);
        assert_null(st);
        assert_non_null(strstr(err.msg, "__expr"));
    }
    /* `__expr` with a non-string value, or beside other keys, is a plain record */
    assert_int_equal(check("context.o.__expr == 1", NULL, "{\"o\":{\"__expr\":1}}"), 1);
    assert_int_equal(check("context.o.x == 2", NULL, "{\"o\":{\"__expr\":\"1\",\"x\":2}}"), 1);
    /* malformed `__entity` / `__extn` payloads are plain records, not errors */
    assert_int_equal(check("context.odd.__entity.type == \"User\"", NULL,
                           "{\"odd\":{\"__entity\":{\"type\":\"User\"}}}"), 1);
    assert_int_equal(check("context.odd.__extn.fn == \"ip\"", NULL, "{\"odd\":{\"__extn\":{\"fn\":\"ip\"}}}"), 1);
    assert_int_equal(check("context.o has __extn", NULL, "{\"o\":{\"__extn\":{\"fn\":\"ip\",\"args\":\"x\"}}}"), 1);
    assert_int_equal(check("context.o has __entity", NULL, "{\"o\":{\"__entity\":{\"type\":1,\"id\":\"a\"}}}"), 1);
    /* an escape beside another key is a record too */
    assert_int_equal(check("context.o.y == 1 && context.o.__entity.id == \"a\"", NULL,
                           "{\"o\":{\"__entity\":{\"type\":\"User\",\"id\":\"a\"},\"y\":1}}"), 1);
    /* well-formed escapes: extra payload fields are ignored; "arg" wins over "args" */
    assert_int_equal(check("context.o == User::\"a\"", NULL,
                           "{\"o\":{\"__entity\":{\"type\":\"User\",\"id\":\"a\",\"x\":null}}}"), 1);
    assert_int_equal(check("context.o == ip(\"1.2.3.4\")", NULL,
                           "{\"o\":{\"__extn\":{\"fn\":\"ip\",\"arg\":\"1.2.3.4\",\"args\":[\"10.0.0.1\"]}}}"), 1);
    assert_int_equal(check("context.o == decimal(\"1.5\")", NULL,
                           "{\"o\":{\"__extn\":{\"fn\":\"decimal\",\"args\":[\"1.5\"]}}}"), 1);
    /* well-formed escapes that cannot be evaluated fail the request */
    assert_non_null(context_error("{\"o\":{\"__extn\":{\"fn\":\"nope\",\"arg\":\"1\"}}}", buf));
    assert_non_null(context_error("{\"o\":{\"__extn\":{\"fn\":\"ip\",\"args\":[]}}}", buf));
    assert_non_null(context_error("{\"o\":{\"__extn\":{\"fn\":\"ip\",\"arg\":null}}}", buf));
    assert_non_null(context_error("{\"o\":{\"__entity\":{\"type\":\"Bad Type\",\"id\":\"x\"}}}", buf));
    /* a number with a fraction fails even inside a field an escape ignores */
    assert_non_null(context_error("{\"o\":{\"__entity\":{\"type\":\"User\",\"id\":\"a\",\"x\":1.5}}}", buf));
    /* the context is a value that must be a record; attrs are fields, never an escape */
    assert_non_null(context_error("{\"__entity\":{\"type\":\"User\",\"id\":\"a\"}}", buf));
    assert_int_equal(check("context.__extn.fn == \"ip\"", NULL, "{\"__extn\":{\"fn\":\"ip\"}}"), 1);
    assert_int_equal(check("User::\"alice\".__entity == User::\"b\"",
                           "[{\"uid\":{\"type\":\"User\",\"id\":\"alice\"},\"attrs\":{\"__entity\":"
                           "{\"__entity\":{\"type\":\"User\",\"id\":\"b\"}}},\"parents\":[]}]", NULL), 1);
}

/* Completes rq as User::<user> doing Action::"a" on Doc::"d" and returns the decision. */
static int decide_as(const cedar_policy_set *ps, cedar_request *rq, const char *user)
{
    tg_error err;
    assert_int_equal(cedar_request_set_principal(rq, "User", 4, user, strlen(user), &err), 0);
    assert_int_equal(cedar_request_set_action(rq, "Action", 6, "a", 1, &err), 0);
    assert_int_equal(cedar_request_set_resource(rq, "Doc", 3, "d", 1, &err), 0);
    cedar_response res;
    assert_int_equal(cedar_authorize(ps, rq, &res, &err), 0);
    return res.decision;
}

/* The request path's JSON reader parses in place and values share its strings: decoded
 * strings must not disturb their neighbours, the caller's text must stay untouched and
 * may die at once, and error positions count the text as written. */
static void test_json_reader(void **state)
{
    (void)state;
    char buf[1100];
    /* escapes decoded in place beside plain and other escaped strings, keys included */
    const char *ctx = "{\"k\\u0041\":\"x\\ny\",\"b\":\"\\ud83d\\ude00z\",\"c\":[\"\\\"q\\\"\",\"\\\\\",\"\"],"
                      "\"d\":\"caf\xC3\xA9\\t\",\"e\":\"plain\"}";
    assert_int_equal(check("context.kA == \"x\\ny\" && context.b == \"\xF0\x9F\x98\x80z\" && "
                           "context.c == [\"\\\"q\\\"\", \"\\\\\", \"\"] && context.d == \"caf\xC3\xA9\\t\" && "
                           "context.e == \"plain\"", NULL, ctx), 1);
    /* the caller's text is not modified, and the request outlives it */
    tg_error err;
    tg_arena *a = tg_arena_new(0);
    cedar_request *rq = cedar_request_new(a, NULL);
    char *text = strdup(ctx);
    assert_int_equal(cedar_request_set_context_json(rq, text, strlen(text), &err), 0);
    assert_string_equal(text, ctx);
    char *ent = strdup("{\"uid\":{\"type\":\"User\",\"id\":\"al\\u0069ce\"},\"attrs\":{\"n\":\"v\"},"
                       "\"parents\":[{\"type\":\"Group\",\"id\":\"g\"}]}");
    assert_int_equal(cedar_request_add_entity_json(rq, ent, strlen(ent), &err), 0);
    memset(text, 'x', strlen(text));
    memset(ent, 'x', strlen(ent));
    free(text);
    free(ent);
    const char *pol = "permit(principal in Group::\"g\", action, resource) when { context.kA == \"x\\ny\" && "
                      "context.e == \"plain\" && principal.n == \"v\" };";
    cedar_policy_set *ps = cedar_policy_set_parse(pol, strlen(pol), &err);
    assert_non_null(ps);
    assert_int_equal(decide_as(ps, rq, "alice"), CEDAR_ALLOW);
    cedar_policy_set_free(ps);
    tg_arena_free(a);
    /* positions count the text as written, not the decoded strings before the error */
    assert_non_null(context_error("{\"a\":\"\\n\\n\\n\",\"b\":?}", buf));
    assert_string_equal(buf, "line 1 column 19: unexpected character");
    assert_non_null(context_error("{\"a\":\"\xC3\xA9\\n\",\n \"b\":\"\\x\"}", buf));
    assert_non_null(strstr(buf, "line 2 column 9: invalid escape"));
    /* duplicate keys: small objects (pairwise check) and large ones (sorted check) */
    assert_non_null(context_error("{\"a\":1,\"b\":2,\"a\":3}", buf));
    assert_non_null(strstr(buf, "duplicate key"));
    char big[512] = "{", key[16];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "%s\"k%d\":%d", i ? "," : "", i, i);
        strcat(big, key);
    }
    strcat(big, "}");
    assert_int_equal(check("context.k0 == 0 && context.k19 == 19", NULL, big), 1);
    big[strlen(big) - 1] = 0;
    strcat(big, ",\"k7\":0}");
    assert_non_null(context_error(big, buf));
    assert_non_null(strstr(buf, "duplicate key"));
    /* containers longer than the reader's on-stack run keep every item in order */
    assert_int_equal(check("context.s.contains(0) && context.s.contains(24) && context.s == "
                           "[24,23,22,21,20,19,18,17,16,15,14,13,12,11,10,9,8,7,6,5,4,3,2,1,0]", NULL,
                           "{\"s\":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24]}"), 1);
}

/* An overlay entity with more parents than the closure walk keeps on its stack still gets
 * every ancestor, including the store's ancestors of each parent. */
static void test_many_ancestors(void **state)
{
    (void)state;
    tg_buf st_json = TG_BUF_INIT, ent = TG_BUF_INIT;
    tg_buf_appends(&st_json, "[");
    for (int i = 0; i < 40; i++)
        tg_buf_printf(&st_json, "%s{\"uid\":{\"type\":\"G\",\"id\":\"g%d\"},\"attrs\":{},"
                      "\"parents\":[{\"type\":\"Top\",\"id\":\"t%d\"}]}", i ? "," : "", i, i);
    tg_buf_appends(&st_json, "]");
    tg_buf_appends(&ent, "{\"uid\":{\"type\":\"User\",\"id\":\"u\"},\"parents\":[");
    for (int i = 0; i < 40; i++) tg_buf_printf(&ent, "%s{\"type\":\"G\",\"id\":\"g%d\"}", i ? "," : "", i);
    tg_buf_appends(&ent, "]}");
    tg_error err;
    cedar_store *st = cedar_store_load(st_json.data, st_json.len, &err);
    assert_non_null(st);
    const char *pol = "permit(principal in Top::\"t0\", action, resource) when { principal in G::\"g39\" && "
                      "principal in Top::\"t39\" && principal in Top::\"t20\" };";
    cedar_policy_set *ps = cedar_policy_set_parse(pol, strlen(pol), &err);
    assert_non_null(ps);
    tg_arena *a = tg_arena_new(0);
    cedar_request *rq = cedar_request_new(a, st);
    assert_int_equal(cedar_request_add_entity_json(rq, ent.data, ent.len, &err), 0);
    assert_int_equal(decide_as(ps, rq, "u"), CEDAR_ALLOW);
    tg_arena_free(a);
    cedar_policy_set_free(ps);
    cedar_store_free(st);
    tg_buf_free(&st_json);
    tg_buf_free(&ent);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_string_escapes),
        cmocka_unit_test(test_long_overflow),
        cmocka_unit_test(test_like),
        cmocka_unit_test(test_hierarchy),
        cmocka_unit_test(test_request_overlay),
        cmocka_unit_test(test_build_string_utf8),
        cmocka_unit_test(test_nesting_limits),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_authorizer),
        cmocka_unit_test(test_index_scaling),
        cmocka_unit_test(test_guard_index),
        cmocka_unit_test(test_est),
        cmocka_unit_test(test_json_escapes),
        cmocka_unit_test(test_has_path),
        cmocka_unit_test(test_reserved_and_action_types),
        cmocka_unit_test(test_json_reader),
        cmocka_unit_test(test_many_ancestors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
