/*
 * test_approvals.c — the approvals service (src/approvals) on a real SQLite store, real
 * policy files and a real audit writer, as the gate and the admin API use it: a request
 * is bound to exactly one call (principal, tool, resource, arguments digest, policy
 * version) and reused while pending; a grant lets that call through once; approvers need
 * the policy's authority and never decide their own request; hold-mode watches hear of
 * every outcome (also of rows changed behind the service's back); requests survive a
 * restart and expire on time; the webhook is signed and retried; approver keys are
 * checked.
 *
 * Each test gets a private directory with toolgate.yaml, the policies, the entities and
 * the database. The webhook receiver is a thread with a socket on 127.0.0.1:0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "approvals/approvals_int.h"
#include "auth_testkit.h"

/* ------------------------------------------------------------------ fixture */

#define POLICIES \
    "@id(\"developers\") @reason(\"DEVELOPER\")\n" \
    "permit (principal in Group::\"developers\", action, resource in Bitbucket::Workspace::\"acme\");\n" \
    "@id(\"merge-approval\") @approval @reason(\"MERGE_APPROVAL_REQUIRED\")\n" \
    "forbid (principal, action == Action::\"merge\", resource) unless { context has approval };\n" \
    "@id(\"release-managers\") @reason(\"RELEASE_MANAGER\")\n" \
    "permit (principal in Group::\"release-managers\", action == Action::\"approve\",\n" \
    "        resource in Bitbucket::Workspace::\"acme\") when { context.tool == \"merge\" };\n"

/* alice is a developer AND a release manager: only the built-in rule stops her from
 * approving her own merge. */
#define ENTITIES \
    "[{\"uid\":{\"type\":\"Group\",\"id\":\"developers\"},\"attrs\":{},\"parents\":[]}," \
    " {\"uid\":{\"type\":\"Group\",\"id\":\"release-managers\"},\"attrs\":{},\"parents\":[]}," \
    " {\"uid\":{\"type\":\"User\",\"id\":\"alice\"},\"attrs\":{},\"parents\":[" \
    "   {\"type\":\"Group\",\"id\":\"developers\"},{\"type\":\"Group\",\"id\":\"release-managers\"}]}," \
    " {\"uid\":{\"type\":\"User\",\"id\":\"bob\"},\"attrs\":{},\"parents\":[{\"type\":\"Group\",\"id\":\"release-managers\"}]}," \
    " {\"uid\":{\"type\":\"User\",\"id\":\"dave\"},\"attrs\":{},\"parents\":[]}," \
    " {\"uid\":{\"type\":\"Bitbucket::Workspace\",\"id\":\"acme\"},\"attrs\":{},\"parents\":[]}]"

/* The approver key of bob: SHA-256 of BOB_KEY. */
#define BOB_KEY "tga_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

typedef struct fixture {
    char dir[256];
    uv_loop_t loop;
    uv_timer_t tick;
    tg_config *cfg;
    tg_policy *pol;
    tg_store *store;
    tg_audit *audit;
    tg_approvals *ap;
    tg_arena *a;
} fixture;

static void write_file(fixture *f, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until *flag is non-zero or ms pass; returns *flag. */
static int run_until(fixture *f, const int *flag, uint64_t ms)
{
    uint64_t end = tg_now_ms() + ms;
    while (!*flag && tg_now_ms() < end)
        uv_run(&f->loop, UV_RUN_ONCE);
    return *flag;
}

static void run_for(fixture *f, uint64_t ms)
{
    int never = 0;
    run_until(f, &never, ms);
}

/* Writes the files and loads the configuration with `approvals_yaml` (the section's
 * body, indented by two), then opens store, audit, policy and the service. */
static void start_with(fixture *f, const char *top_yaml, const char *approvals_yaml)
{
    char text[4096], path[512];
    snprintf(path, sizeof path, "%s/policies", f->dir);
    mkdir(path, 0700);
    write_file(f, "policies/p.cedar", POLICIES);
    write_file(f, "entities.json", ENTITIES);
    snprintf(text, sizeof text,
             "upstreams:\n  - {name: bb, transport: stdio, command: /bin/true}\n"
             "catalog:\n  tools:\n"
             "    - tool: merge\n      risk: high\n      resource:\n"
             "        type: Bitbucket::Repo\n        id: '{/workspace}/{/repo}'\n"
             "        parents: [{type: Bitbucket::Workspace, id: /workspace}]\n"
             "policy: {policies: policies, entities: entities.json}\n"
             "store: sqlite:%s/tg.db\n"
             "audit: {mode: strict}\n"
             "admin: {listen: 127.0.0.1:9191}\n"
             "%s"
             "approvals:\n%s",
             f->dir, top_yaml, approvals_yaml);
    write_file(f, "toolgate.yaml", text);
    snprintf(path, sizeof path, "%s/toolgate.yaml", f->dir);
    tg_error err;
    if (!(f->cfg = tg_config_load(path, &err)))
        fail_msg("config: %s", err.msg);
    if (!(f->pol = tg_policy_new(f->cfg, &err)))
        fail_msg("policy: %s", err.msg);
    if (!(f->store = tg_store_open(&f->loop, f->cfg->store.url, &err)))
        fail_msg("store: %s", err.msg);
    if (!(f->audit = tg_audit_open(&f->loop, f->store, &f->cfg->audit, &err)))
        fail_msg("audit: %s", err.msg);
    if (!(f->ap = tg_approvals_new(&f->loop, f->cfg, f->store, f->audit, &err)))
        fail_msg("approvals: %s", err.msg);
    tg_approvals_set_policy(f->ap, f->pol);
}

static void start(fixture *f, const char *approvals_yaml)
{
    start_with(f, "", approvals_yaml);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/tg-approvals-test-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    uv_loop_init(&f->loop);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, on_tick, 5, 5);
    f->a = tg_arena_new(0);
    *state = f;
    return 0;
}

static void on_closed(void *ud)
{
    *(int *)ud = 1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    fixture *f = *state;
    tg_approvals_free(f->ap);
    if (f->audit) {
        int closed = 0;
        tg_audit_close(f->audit, on_closed, &closed);
        run_until(f, &closed, 10000);
    }
    if (f->store)
        tg_store_close(f->store);
    tg_policy_free(f->pol);
    tg_config_unref(f->cfg);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    tg_arena_free(f->a);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* ------------------------------------------------------------------ calls */

static const char *dev_groups[] = {"developers"};
static const tg_identity alice = {.method = "api_key", .delegator = "alice", .agent = "claude",
                                  .groups = dev_groups, .n_groups = 1, .client_ip = "127.0.0.1",
                                  .credential_id = "k1", .principal_key = "api_key:k1"};
static const tg_identity alice_other_key = {.method = "api_key", .delegator = "alice",
                                            .agent = "claude", .client_ip = "127.0.0.1",
                                            .credential_id = "k2", .principal_key = "api_key:k2"};

/* A call of `merge` with these arguments, decided by the fixture's policy. */
typedef struct call {
    tg_approval_call c;
    tg_decision d;
    json_t *args, *meta;
    char digest[65];
} call;

static void make_call(fixture *f, call *k, const tg_identity *who, const char *args_json)
{
    tg_error err;
    memset(k, 0, sizeof *k);
    k->args = tg_json_parse(args_json, strlen(args_json), 64, &err);
    assert_non_null(k->args);
    k->meta = json_pack("{s:s,s:s}", "toolgate/intent", "release 1.2", "toolgate/ticket", "CHG-9");
    tg_cat_entry e;
    tg_catalog_classify(tg_policy_catalog(f->pol), "bb", "merge", NULL, &e);
    tg_jdoc_json aj = TG_JDOC_JSON_INIT, mj = TG_JDOC_JSON_INIT;
    tg_decide_in in = {.kind = TG_DECIDE_TOOL, .identity = who, .upstream = "bb", .name = "merge",
                       .upstream_name = "merge", .entry = &e, .args = tg_jdoc_of_json(&aj, k->args),
                       .meta = tg_jdoc_of_json(&mj, k->meta), .now_ms = tg_wall_ms()};
    assert_int_equal(tg_policy_decide(f->pol, &in, f->a, &k->d, &err), 0);
    tg_jdoc_json_free(&aj);
    tg_jdoc_json_free(&mj);
    if (k->d.decision != TG_DECISION_APPROVAL) {
        char *x = tg_decision_explain_json(&k->d);
        fail_msg("expected approval_required: %s", x);
    }
    tg_audit_args_digest(k->args, k->digest);
    k->c = (tg_approval_call){.identity = who, .tool = "merge", .upstream = "bb",
                              .decision = &k->d, .args_sha256 = k->digest, .args = k->args,
                              .meta = k->meta, .session_id = "s-1", .rpc_id = "7",
                              .traceparent = "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"};
}

static void drop_call(call *k)
{
    json_decref(k->args);
    json_decref(k->meta);
}

static const char *request(fixture *f, call *k, int expect_created)
{
    const char *id, *url;
    int64_t exp;
    int created = -1;
    tg_error err;
    if (tg_approvals_request(f->ap, &k->c, f->a, &id, &url, &exp, &created, &err) < 0)
        fail_msg("request: %s", err.msg);
    assert_int_equal(created, expect_created);
    assert_int_equal(strncmp(id, "apr_", 4), 0);
    assert_int_equal(strlen(id), 30);
    assert_true(exp > tg_wall_ms());
    return id;
}

static const tg_approver bob = {.user = "bob", .method = "approver_key", .credential_id = "key:1",
                                .client_ip = "127.0.0.1"};

static int decide(fixture *f, const char *id, const tg_approver *who, bool approve,
                  const char *comment, const char **code, tg_error *err)
{
    json_t *out = NULL;
    int status = 0;
    *code = NULL;
    int rc = tg_approvals_decide(f->ap, id, who, approve, comment, &out, &status, code, err);
    if (rc == 0) {
        assert_int_equal(status, 200);
        assert_string_equal(json_string_value(json_object_get(out, "state")),
                            approve ? "approved" : "denied");
        assert_string_equal(json_string_value(json_object_get(out, "approver")), who->user);
    } else {
        assert_null(out);
    }
    json_decref(out);
    return rc == 0 ? 200 : status;
}

static int granted(fixture *f, call *k, tg_policy_approval *g)
{
    tg_error err;
    int rc = tg_approvals_find_granted(f->ap, &k->c, f->a, g, &err);
    if (rc < 0)
        fail_msg("find_granted: %s", err.msg);
    return rc;
}

static const char *state_of(fixture *f, const char *id)
{
    tg_error err;
    json_t *v = tg_approvals_get(f->ap, id, &err);
    if (!v)
        fail_msg("get %s: %s", id, err.msg);
    const char *s = tg_arena_strdup(f->a, json_string_value(json_object_get(v, "state")));
    json_decref(v);
    return s;
}

/* ------------------------------------------------------------------ requests and grants */

static int count_detail;
static const char *want_detail;
static int audit_row(void *ud, const tg_store_audit_row *row)
{
    (void)ud;
    if (want_detail && strstr(row->body, want_detail))
        count_detail++;
    return 0;
}

static int audit_count(fixture *f, const char *approval_id, const char *detail)
{
    tg_error err;
    tg_store_audit_filter flt = {.approval_id = approval_id};
    count_detail = 0;
    want_detail = detail;
    if (tg_store_audit_scan(f->store, &flt, audit_row, NULL, &err) < 0)
        fail_msg("audit scan: %s", err.msg);
    return count_detail;
}

static void test_request_bound_to_the_call(void **state)
{
    fixture *f = *state;
    start(f, "  mode: retry\n");
    call k, changed, other;
    make_call(f, &k, &alice, "{\"workspace\":\"acme\",\"repo\":\"api\",\"pr\":12,\"password\":\"hunter2\"}");
    const char *id = request(f, &k, 1);
    /* The identical pending request is reused; the URL points at the inbox. */
    const char *url, *id2;
    int64_t exp;
    int created;
    tg_error err;
    assert_int_equal(tg_approvals_request(f->ap, &k.c, f->a, &id2, &url, &exp, &created, &err), 0);
    assert_int_equal(created, 0);
    assert_string_equal(id2, id);
    assert_string_equal(url, tg_arena_sprintf(f->a, "http://127.0.0.1:9191/inbox#%s", id));

    /* The view shows what an approver needs, arguments redacted. */
    json_t *v = tg_approvals_get(f->ap, id, &err);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "state")), "pending");
    assert_string_equal(json_string_value(json_object_get(json_object_get(v, "args"), "password")),
                        "[REDACTED]");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "args"), "pr")), 12);
    assert_string_equal(json_string_value(json_object_get(v, "argsSha256")), k.digest);
    assert_string_equal(json_string_value(json_object_get(json_object_get(v, "requester"), "delegator")),
                        "alice");
    assert_string_equal(json_string_value(json_object_get(json_object_get(v, "resource"), "id")), "acme/api");
    assert_string_equal(json_string_value(json_array_get(json_object_get(json_object_get(v, "resource"),
                        "parents"), 0)), "Bitbucket::Workspace::\"acme\"");
    assert_string_equal(json_string_value(json_object_get(v, "ticket")), "CHG-9");
    assert_string_equal(json_string_value(json_object_get(v, "intent")), "release 1.2");
    assert_string_equal(json_string_value(json_array_get(json_object_get(v, "reasons"), 0)),
                        "MERGE_APPROVAL_REQUIRED");
    json_decref(v);
    v = tg_approvals_list(f->ap, "pending", 0, &err);
    assert_int_equal(json_array_size(v), 1);
    json_decref(v);
    v = tg_approvals_list(f->ap, "approved", 0, &err);
    assert_int_equal(json_array_size(v), 0);
    json_decref(v);
    /* Not found: NULL with an empty message. */
    assert_null(tg_approvals_get(f->ap, "apr_nope", &err));
    assert_string_equal(err.msg, "");

    tg_policy_approval g;
    assert_int_equal(granted(f, &k, &g), 0);   /* pending is not granted */
    const char *code;
    assert_int_equal(decide(f, id, &bob, true, "ship it", &code, &err), 200);
    assert_int_equal(granted(f, &k, &g), 1);
    assert_string_equal(g.id, id);
    assert_string_equal(g.approver, "bob");
    assert_true(g.granted_at_ms > 0);

    /* Only the exact binding: other arguments, another principal, another policy version. */
    make_call(f, &changed, &alice, "{\"workspace\":\"acme\",\"repo\":\"api\",\"pr\":13,\"password\":\"hunter2\"}");
    assert_int_equal(granted(f, &changed, &g), 0);
    make_call(f, &other, &alice_other_key, "{\"workspace\":\"acme\",\"repo\":\"api\",\"pr\":12,\"password\":\"hunter2\"}");
    assert_string_equal(other.digest, k.digest);
    assert_int_equal(granted(f, &other, &g), 0);
    tg_decision d2 = k.d;
    d2.policy_version = "0000000000000000000000000000000000000000000000000000000000000000";
    k.c.decision = &d2;
    assert_int_equal(granted(f, &k, &g), 0);
    k.c.decision = &k.d;

    /* Used exactly once. */
    assert_int_equal(tg_approvals_use(f->ap, id, &k.c, &err), 1);
    assert_int_equal(tg_approvals_use(f->ap, id, &k.c, &err), 0);
    assert_int_equal(granted(f, &k, &g), 0);
    assert_string_equal(state_of(f, id), "used");
    /* A new request for the same call is a new one. */
    const char *again = request(f, &k, 1);
    assert_string_not_equal(again, id);

    /* Every event is an audit record linked by the approval id. */
    run_for(f, 100);
    assert_int_equal(audit_count(f, id, "\"requested\""), 1);
    assert_int_equal(audit_count(f, id, "\"approved: ship it\""), 1);
    assert_int_equal(audit_count(f, id, "\"used\""), 1);
    assert_int_equal(audit_count(f, id, "hunter2"), 0);
    drop_call(&k);
    drop_call(&changed);
    drop_call(&other);
}

/* ------------------------------------------------------------------ deciding */

static void test_decide_authority(void **state)
{
    fixture *f = *state;
    start(f, "  mode: retry\n");
    call k;
    make_call(f, &k, &alice, "{\"workspace\":\"acme\",\"repo\":\"api\",\"pr\":1}");
    const char *id = request(f, &k, 1);
    const char *code;
    tg_error err;
    /* alice is a release manager, yet she requested it. */
    tg_approver self = bob;
    self.user = "alice";
    assert_int_equal(decide(f, id, &self, true, NULL, &code, &err), 403);
    assert_string_equal(code, "SELF_APPROVAL_FORBIDDEN");
    self.user = "claude";   /* the agent itself */
    assert_int_equal(decide(f, id, &self, true, NULL, &code, &err), 403);
    assert_string_equal(code, "SELF_APPROVAL_FORBIDDEN");
    /* dave is no release manager: the policy says no, for denying too. */
    tg_approver dave = bob;
    dave.user = "dave";
    assert_int_equal(decide(f, id, &dave, true, NULL, &code, &err), 403);
    assert_string_equal(code, "APPROVER_NOT_PERMITTED");
    assert_non_null(strstr(err.msg, "NO_MATCHING_PERMIT"));
    assert_int_equal(decide(f, id, &dave, false, NULL, &code, &err), 403);
    /* ... unless his key puts him in the group. */
    const char *rm[] = {"release-managers"};
    dave.groups = rm;
    dave.ngroups = 1;
    /* Without a policy nobody may. */
    tg_approvals_set_policy(f->ap, NULL);
    assert_int_equal(decide(f, id, &bob, true, NULL, &code, &err), 403);
    assert_string_equal(code, "APPROVER_NOT_PERMITTED");
    tg_approvals_set_policy(f->ap, f->pol);
    /* Comments are bounded. */
    char *long_comment = calloc(1, 2002);
    memset(long_comment, 'x', 2001);
    assert_int_equal(decide(f, id, &bob, true, long_comment, &code, &err), 400);
    assert_string_equal(code, "BAD_COMMENT");
    free(long_comment);
    assert_string_equal(state_of(f, id), "pending");
    /* dave (with the group) denies; deciding again is a conflict; unknown ids 404. */
    assert_int_equal(decide(f, id, &dave, false, "not today", &code, &err), 200);
    assert_string_equal(state_of(f, id), "denied");
    assert_int_equal(decide(f, id, &bob, true, NULL, &code, &err), 409);
    assert_string_equal(code, "NOT_PENDING");
    assert_int_equal(decide(f, "apr_aaaaaaaaaaaaaaaaaaaaaaaaaa", &bob, true, NULL, &code, &err), 404);
    assert_string_equal(code, "NOT_FOUND");
    tg_policy_approval g;
    assert_int_equal(granted(f, &k, &g), 0);
    drop_call(&k);
}

/* ------------------------------------------------------------------ watches */

typedef struct seen {
    int ticks, final;
    tg_approval_event ev;
    char approver[32], comment[64], grant_id[40];
} seen;

static void on_news(void *ud, const tg_approval_news *n)
{
    seen *s = ud;
    if (n->event == TG_APPROVAL_EV_TICK) {
        s->ticks++;
        return;
    }
    s->final++;
    s->ev = n->event;
    snprintf(s->approver, sizeof s->approver, "%s", n->approver ? n->approver : "");
    snprintf(s->comment, sizeof s->comment, "%s", n->comment ? n->comment : "");
    if (n->grant)
        snprintf(s->grant_id, sizeof s->grant_id, "%s", n->grant->id);
}

static void test_watch_outcomes(void **state)
{
    fixture *f = *state;
    start(f, "  mode: hold\n  progress_interval: 100ms\n");
    const char *code;
    tg_error err;
    call k1, k2, k3, k4;
    make_call(f, &k1, &alice, "{\"workspace\":\"acme\",\"repo\":\"api\",\"pr\":1}");
    make_call(f, &k2, &alice, "{\"workspace\":\"acme\",\"repo\":\"api\",\"pr\":2}");
    make_call(f, &k3, &alice, "{\"workspace\":\"acme\",\"repo\":\"api\",\"pr\":3}");
    make_call(f, &k4, &alice, "{\"workspace\":\"acme\",\"repo\":\"api\",\"pr\":4}");
    assert_int_equal(tg_approvals_mode(f->ap, "bb", "merge", TG_RISK_HIGH), TG_APPROVAL_HOLD);

    /* Approved: ticks while waiting, then the grant. */
    seen s1 = {0};
    const char *id1 = request(f, &k1, 1);
    assert_non_null(tg_approvals_watch(f->ap, id1, 10000, on_news, &s1));
    run_for(f, 350);
    assert_true(s1.ticks >= 2);
    assert_int_equal(s1.final, 0);
    assert_int_equal(decide(f, id1, &bob, true, "go", &code, &err), 200);
    assert_int_equal(s1.final, 1);   /* told at once */
    assert_int_equal(s1.ev, TG_APPROVAL_EV_APPROVED);
    assert_string_equal(s1.grant_id, id1);
    assert_string_equal(s1.approver, "bob");

    /* Denied. */
    seen s2 = {0};
    const char *id2 = request(f, &k2, 1);
    tg_approvals_watch(f->ap, id2, 10000, on_news, &s2);
    assert_int_equal(decide(f, id2, &bob, false, "no", &code, &err), 200);
    assert_int_equal(s2.ev, TG_APPROVAL_EV_DENIED);
    assert_string_equal(s2.comment, "no");

    /* Timeout: the request stays pending. */
    seen s3 = {0};
    const char *id3 = request(f, &k3, 1);
    tg_approvals_watch(f->ap, id3, 300, on_news, &s3);
    assert_true(run_until(f, &s3.final, 2000));
    assert_int_equal(s3.ev, TG_APPROVAL_EV_TIMEOUT);
    assert_string_equal(state_of(f, id3), "pending");

    /* Unwatch: no callback at all. */
    seen s5 = {0};
    tg_approval_watch *w = tg_approvals_watch(f->ap, id3, 10000, on_news, &s5);
    tg_approvals_unwatch(w);
    run_for(f, 250);
    assert_int_equal(s5.ticks + s5.final, 0);

    /* Decided behind the service's back (another instance): noticed by the re-read. */
    seen s4 = {0};
    const char *id4 = request(f, &k4, 1);
    tg_approvals_watch(f->ap, id4, 10000, on_news, &s4);
    run_for(f, 50);
    json_t *set = json_pack("{s:s,s:s,s:I}", "state", "approved", "approver", "carol",
                            "decided_ms", (json_int_t)tg_wall_ms());
    json_t *pending = json_string("pending");
    assert_int_equal(tg_store_row_update(f->store, TG_STORE_APPROVALS, id4, set, "state", pending,
                                         &err), 1);
    json_decref(set);
    json_decref(pending);
    assert_true(run_until(f, &s4.final, 3000));
    assert_int_equal(s4.ev, TG_APPROVAL_EV_APPROVED);
    assert_string_equal(s4.approver, "carol");
    drop_call(&k1);
    drop_call(&k2);
    drop_call(&k3);
    drop_call(&k4);
}

static void test_expiry(void **state)
{
    fixture *f = *state;
    start(f, "  expiry: 1s\n  grant_ttl: 1s\n");
    call k1, k2;
    const char *code;
    tg_error err;
    make_call(f, &k1, &alice, "{\"workspace\":\"acme\",\"repo\":\"api\",\"pr\":1}");
    make_call(f, &k2, &alice, "{\"workspace\":\"acme\",\"repo\":\"api\",\"pr\":2}");
    seen s = {0};
    const char *id1 = request(f, &k1, 1);
    tg_approvals_watch(f->ap, id1, 10000, on_news, &s);
    const char *id2 = request(f, &k2, 1);
    assert_int_equal(decide(f, id2, &bob, true, NULL, &code, &err), 200);
    assert_true(run_until(f, &s.final, 4000));
    assert_int_equal(s.ev, TG_APPROVAL_EV_EXPIRED);
    assert_string_equal(state_of(f, id1), "expired");
    /* An unused grant expires too. */
    run_for(f, 1500);
    assert_string_equal(state_of(f, id2), "expired");
    tg_policy_approval g;
    assert_int_equal(granted(f, &k2, &g), 0);
    assert_int_equal(tg_approvals_use(f->ap, id2, &k2.c, &err), 0);
    /* Expired requests cannot be decided; a new request for the call is new. */
    assert_int_equal(decide(f, id1, &bob, true, NULL, &code, &err), 409);
    assert_string_not_equal(request(f, &k1, 1), id1);
    run_for(f, 100);
    assert_int_equal(audit_count(f, id1, "\"expired\""), 1);
    drop_call(&k1);
    drop_call(&k2);
}

static void test_restart_keeps_pending(void **state)
{
    fixture *f = *state;
    start(f, "  mode: retry\n");
    call k;
    make_call(f, &k, &alice, "{\"workspace\":\"acme\",\"repo\":\"api\",\"pr\":5}");
    const char *id = request(f, &k, 1);
    tg_approvals_free(f->ap);
    run_for(f, 20);
    tg_error err;
    f->ap = tg_approvals_new(&f->loop, f->cfg, f->store, f->audit, &err);
    assert_non_null(f->ap);
    tg_approvals_set_policy(f->ap, f->pol);
    assert_string_equal(state_of(f, id), "pending");
    assert_string_equal(request(f, &k, 0), id);
    const char *code;
    assert_int_equal(decide(f, id, &bob, true, NULL, &code, &err), 200);
    tg_policy_approval g;
    assert_int_equal(granted(f, &k, &g), 1);
    drop_call(&k);
}

/* ------------------------------------------------------------------ webhook */

/* Answers the first POST with 500 and the next ones with 200; keeps what it received. */
typedef struct receiver {
    int fd;
    uint16_t port;
    pthread_t th;
    pthread_mutex_t mu;
    int posts;
    char headers[2][2048];
    char body[2][8192];
} receiver;

static void *receive(void *arg)
{
    receiver *r = arg;
    for (int n = 0; n < 2; n++) {
        int c = accept(r->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char buf[16384];
        size_t len = 0;
        char *end = NULL;
        long clen = -1;
        while (len < sizeof buf - 1) {
            ssize_t got = read(c, buf + len, sizeof buf - 1 - len);
            if (got <= 0)
                break;
            len += (size_t)got;
            buf[len] = '\0';
            if (!end && (end = strstr(buf, "\r\n\r\n"))) {
                char *cl = strcasestr(buf, "content-length:");
                clen = cl ? strtol(cl + 15, NULL, 10) : 0;
            }
            if (end && (long)(len - (size_t)(end + 4 - buf)) >= clen)
                break;
        }
        pthread_mutex_lock(&r->mu);
        if (end) {
            snprintf(r->headers[n], sizeof r->headers[n], "%.*s", (int)(end - buf), buf);
            snprintf(r->body[n], sizeof r->body[n], "%s", end + 4);
        }
        r->posts++;
        pthread_mutex_unlock(&r->mu);
        const char *resp = n == 0 ? "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                                  : "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        if (write(c, resp, strlen(resp)) < 0) {
            close(c);
            return NULL;
        }
        close(c);
    }
    return NULL;
}

static void receiver_start(receiver *r)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    memset(r, 0, sizeof *r);
    r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(r->fd >= 0);
    assert_int_equal(bind(r->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(r->fd, 8), 0);
    assert_int_equal(getsockname(r->fd, (struct sockaddr *)&sa, &sl), 0);
    r->port = ntohs(sa.sin_port);
    pthread_mutex_init(&r->mu, NULL);
    assert_int_equal(pthread_create(&r->th, NULL, receive, r), 0);
}

static int receiver_posts(receiver *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->posts;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static const char *header(const char *headers, const char *name, char *out, size_t n)
{
    const char *h = strcasestr(headers, name);
    if (!h)
        return NULL;
    h += strlen(name);
    while (*h == ' ')
        h++;
    size_t len = strcspn(h, "\r\n");
    snprintf(out, n, "%.*s", (int)len, h);
    return out;
}

static void test_webhook_signed_and_retried(void **state)
{
    fixture *f = *state;
    receiver r;
    receiver_start(&r);
    char yaml[256];
    snprintf(yaml, sizeof yaml, "  webhook: {url: \"http://127.0.0.1:%u/hook\", secret: s3cret, "
             "timeout: 2s, max_attempts: 3}\n", r.port);
    start(f, yaml);
    call k;
    make_call(f, &k, &alice, "{\"workspace\":\"acme\",\"repo\":\"api\",\"pr\":7,\"token\":\"tok-123\"}");
    const char *id = request(f, &k, 1);
    /* First attempt gets 500, the retry (after ~1 s) 200. */
    for (int i = 0; i < 400 && receiver_posts(&r) < 2; i++)
        run_for(f, 10);
    assert_int_equal(receiver_posts(&r), 2);
    pthread_join(r.th, NULL);
    close(r.fd);
    char ev[64], d0[64], d1[64], ts[32], sig[96], ctype[64];
    assert_non_null(header(r.headers[1], "X-Toolgate-Event:", ev, sizeof ev));
    assert_string_equal(ev, "approval.requested");
    assert_non_null(header(r.headers[0], "X-Toolgate-Delivery:", d0, sizeof d0));
    assert_non_null(header(r.headers[1], "X-Toolgate-Delivery:", d1, sizeof d1));
    assert_string_equal(d0, d1);   /* the same delivery, retried */
    assert_non_null(header(r.headers[1], "Content-Type:", ctype, sizeof ctype));
    assert_string_equal(ctype, "application/json");
    assert_non_null(header(r.headers[1], "X-Toolgate-Timestamp:", ts, sizeof ts));
    assert_non_null(header(r.headers[1], "X-Toolgate-Signature:", sig, sizeof sig));
    /* The receiver's check: HMAC-SHA256(secret, timestamp "." body). */
    char want[65];
    ap_webhook_signature("s3cret", ts, r.body[1], strlen(r.body[1]), want);
    assert_string_equal(sig, tg_arena_sprintf(f->a, "sha256=%s", want));
    ap_webhook_signature("wrong", ts, r.body[1], strlen(r.body[1]), want);
    assert_string_not_equal(sig, tg_arena_sprintf(f->a, "sha256=%s", want));
    tg_error err;
    json_t *body = tg_json_parse(r.body[1], strlen(r.body[1]), 64, &err);
    assert_non_null(body);
    assert_string_equal(json_string_value(json_object_get(body, "event")), "approval.requested");
    assert_string_equal(json_string_value(json_object_get(body, "deliveryId")), d1);
    const json_t *apv = json_object_get(body, "approval");
    assert_string_equal(json_string_value(json_object_get(apv, "id")), id);
    assert_string_equal(json_string_value(json_object_get(json_object_get(apv, "args"), "token")),
                        "[REDACTED]");
    assert_null(strstr(r.body[1], "tok-123"));
    json_decref(body);
    pthread_mutex_destroy(&r.mu);
    drop_call(&k);
}

/* ------------------------------------------------------------------ approver authentication */

typedef struct authed {
    int calls, status;
    char user[32], group[32], method[32], why[160];
} authed;

static void on_auth(void *ud, int status, const tg_approver *who, const char *why)
{
    authed *x = ud;
    x->calls++;
    x->status = status;
    snprintf(x->why, sizeof x->why, "%s", why ? why : "");
    if (who) {
        snprintf(x->user, sizeof x->user, "%s", who->user);
        snprintf(x->method, sizeof x->method, "%s", who->method);
        snprintf(x->group, sizeof x->group, "%s", who->ngroups ? who->groups[0] : "");
    }
}

static authed authenticate(fixture *f, const char *header)
{
    authed x = {0};
    assert_null(tg_approvals_authenticate(f->ap, header, "127.0.0.1", f->a, on_auth, &x));
    assert_int_equal(x.calls, 1);
    return x;
}

static void test_approver_keys(void **state)
{
    fixture *f = *state;
    char hex[65], yaml[512];
    tg_sha256_hex(BOB_KEY, strlen(BOB_KEY), hex);
    snprintf(yaml, sizeof yaml,
             "  approvers:\n    api_keys:\n"
             "      - {user: carol, key_sha256: \"%064d\"}\n"
             "      - {user: bob, key_sha256: \"%s\", groups: [release-managers]}\n", 0, hex);
    start(f, yaml);
    authed x = authenticate(f, "Bearer " BOB_KEY);
    assert_int_equal(x.status, 0);
    assert_string_equal(x.user, "bob");
    assert_string_equal(x.group, "release-managers");
    assert_string_equal(x.method, "approver_key");
    x = authenticate(f, "bearer " BOB_KEY);   /* the scheme is case-insensitive */
    assert_int_equal(x.status, 0);
    x = authenticate(f, "Bearer tga_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB");
    assert_int_equal(x.status, 401);
    assert_null(strstr(x.why, "tga_AAAA"));
    /* An OAuth token while OAuth approvers are off. */
    x = authenticate(f, "Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig");
    assert_int_equal(x.status, 401);
    x = authenticate(f, NULL);
    assert_int_equal(x.status, 401);
    x = authenticate(f, "Basic Ym9iOnB3");
    assert_int_equal(x.status, 401);
}

/* OAuth approvers: the token's human approves; an agent's token (act chain) never does. */
static void test_oauth_approvers(void **state)
{
    fixture *f = *state;
    tk_server *srv = tk_server_start();
    tk_key key;
    tk_key_gen(&key, "ES256", "k1");
    const tk_key *pub[] = {&key};
    char *jwks = tk_jwks(pub, 1, 1);
    tk_server_route(srv, "/jwks", 200, jwks);
    free(jwks);
    char top[512], iss[64];
    snprintf(iss, sizeof iss, "http://127.0.0.1:%d", tk_server_port(srv));
    snprintf(top, sizeof top, "auth:\n  oauth:\n    issuers: [{issuer: \"%s\", jwks_uri: \"%s/jwks\"}]\n"
             "    audience: https://tg.example/mcp\n", iss, iss);
    start_with(f, top, "  approvers: {oauth: true}\n");
    tg_error err;
    tg_auth *auth = tg_auth_new(&f->loop, &f->cfg->auth, &err);
    if (!auth)
        fail_msg("auth: %s", err.msg);
    tg_approvals_set_auth(f->ap, auth);
    long now = (long)(tg_wall_ms() / 1000);
#define BOB_CLAIMS "{\"iss\":\"%s\",\"sub\":\"bob\",\"aud\":\"https://tg.example/mcp\"," \
                   "\"exp\":%ld,\"iat\":%ld,\"groups\":[\"release-managers\"]%s}"
    /* bob signed in to the inbox (azp), and an agent acting for bob (act). */
    char *human = tg_arena_sprintf(f->a, BOB_CLAIMS, iss, now + 600, now - 10,
                                   ",\"azp\":\"toolgate-inbox\"");
    char *agent = tg_arena_sprintf(f->a, BOB_CLAIMS, iss, now + 600, now - 10,
                                   ",\"act\":{\"sub\":\"claude\"}");
    const char *tokens[] = {human, agent};
    int want[] = {0, 403};
    for (int i = 0; i < 2; i++) {
        char *t = tk_sign(&key, NULL, NULL, tokens[i]);
        char *h = tg_arena_sprintf(f->a, "Bearer %s", t);
        free(t);
        authed x = {0};
        tg_approver_pending *p = tg_approvals_authenticate(f->ap, h, "127.0.0.1", f->a, on_auth, &x);
        (void)p;   /* the first token needs the JWKS fetch: the callback comes later */
        assert_true(run_until(f, &x.calls, 5000));
        assert_int_equal(x.calls, 1);
        assert_int_equal(x.status, want[i]);
        if (i == 0) {
            assert_string_equal(x.user, "bob");
            assert_string_equal(x.method, "oauth");
            assert_string_equal(x.group, "release-managers");
        } else {
            assert_non_null(strstr(x.why, "agents cannot approve"));
        }
    }
    tg_approvals_set_auth(f->ap, NULL);
    tg_auth_free(auth);
    run_for(f, 50);
    tk_server_stop(srv);
    tk_key_free(&key);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    tg_log_set_level(TG_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_request_bound_to_the_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decide_authority, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_outcomes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_signed_and_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_approver_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oauth_approvers, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
