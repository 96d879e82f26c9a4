/*
 * cli.c — the policy author's commands (tg_policy.h): `toolgate decide` prints the
 * explain view of one decision, `toolgate policy test` runs a cases file and prints
 * "N passed, N failed" (for a policy repository's CI). Both load the configuration and
 * policy exactly as the gateway does, classify the tool with the same catalog, and call
 * tg_policy_decide; only the identity is given on the command line or in the case
 * instead of coming from a token or API key.
 */
#include "policy/policy_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The loaded configuration and policy. */
typedef struct loaded {
    tg_config *cfg;
    tg_policy *pol;
} loaded;

static int load(const char *config, loaded *l)
{
    tg_error err;
    l->cfg = tg_config_load(config, &err);
    l->pol = l->cfg ? tg_policy_new(l->cfg, &err) : NULL;
    if (!l->pol) {
        fprintf(stderr, "%s\n", err.msg);
        tg_config_unref(l->cfg);
        return -1;
    }
    return 0;
}

static void unload(loaded *l)
{
    tg_policy_free(l->pol);
    tg_config_unref(l->cfg);
}

/* The upstream a client-facing tool name belongs to: the named one, else the one whose
 * prefix starts the name (longest), else the first without a prefix. *tool_up is the
 * name without that prefix. */
static const tg_upstream_conf *route(const tg_config *cfg, const char *upstream, const char *tool,
                                     const char **tool_up)
{
    const tg_upstream_conf *best = NULL;
    *tool_up = tool;
    if (upstream) {
        best = tg_config_upstream(cfg, upstream);
        if (best && best->prefix && strncmp(tool, best->prefix, strlen(best->prefix)) == 0)
            *tool_up = tool + strlen(best->prefix);
        return best;
    }
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const tg_upstream_conf *u = &cfg->upstreams[i];
        size_t pl = u->prefix ? strlen(u->prefix) : 0;
        if (pl && strncmp(tool, u->prefix, pl) == 0 && tool[pl] &&
            (!best || !best->prefix || pl > strlen(best->prefix)))
            best = u;
        else if (!pl && !best)
            best = u;
    }
    if (best && best->prefix)
        *tool_up = tool + strlen(best->prefix);
    return best;
}

/* Strings of a JSON array (or one comma-separated string) into the arena. */
static const char **strings(tg_arena *a, const json_t *v, size_t *n)
{
    *n = 0;
    if (json_is_string(v)) {
        char *s = tg_arena_strdup(a, json_string_value(v));
        size_t cap = 1;
        for (const char *c = s; *c; c++)
            cap += *c == ',';
        const char **out = tg_arena_calloc(a, cap + 1, sizeof *out);
        for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ","))
            out[(*n)++] = tok;
        return out;
    }
    const char **out = tg_arena_calloc(a, json_array_size(v) + 1, sizeof *out);
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
        if (json_is_string(x))
            out[(*n)++] = tg_arena_strdup(a, json_string_value(x));
    }
    return out;
}

static const char *opt_str(tg_arena *a, const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? tg_arena_strdup(a, s) : NULL;
}

/* The identity of a case or of the decide flags, as a JSON object:
 * {agent, delegator, groups, scopes, method, client_ip, client_id, credential_id}. */
static tg_identity *identity_from(tg_arena *a, const json_t *o)
{
    tg_identity *id = tg_arena_calloc(a, 1, sizeof *id);
    id->agent = opt_str(a, o, "agent");
    id->delegator = opt_str(a, o, "delegator");
    id->method = opt_str(a, o, "method");
    if (!id->method)
        id->method = "oauth";
    id->client_ip = opt_str(a, o, "client_ip");
    id->client_id = opt_str(a, o, "client_id");
    id->credential_id = opt_str(a, o, "credential_id");
    id->groups = strings(a, json_object_get(o, "groups"), &id->n_groups);
    id->scopes = strings(a, json_object_get(o, "scopes"), &id->n_scopes);
    return id;
}

/* One decision from a description {identity…, tool, upstream, args, meta, now,
 * annotations, approval}; with explain, d's JSON texts are filled (`toolgate decide`),
 * without it the decision is made exactly as the gateway makes it (`policy test`).
 * Returns -1 with err set when the description is unusable. */
static int decide_one(const loaded *l, const json_t *c, const json_t *identity, bool explain,
                      tg_arena *a, tg_decision *d, tg_error *err)
{
    const char *tool = json_string_value(json_object_get(c, "tool"));
    const char *tool_up, *now = json_string_value(json_object_get(c, "now"));
    const json_t *args = json_object_get(c, "args"), *meta = json_object_get(c, "meta");
    tg_decide_in in = {0};
    tg_cat_entry entry;
    tg_policy_approval ap;
    if (!tool)
        return tg_error_set(err, "missing tool");
    const tg_upstream_conf *up = route(l->cfg, json_string_value(json_object_get(c, "upstream")),
                                       tool, &tool_up);
    if (!up)
        return tg_error_set(err, "no upstream for tool %s", tool);
    if ((args && !json_is_object(args)) || (meta && !json_is_object(meta)))
        return tg_error_set(err, "args and meta must be objects");
    in.now_ms = tg_wall_ms();
    if (now && tg_policy_parse_time(now, &in.now_ms) < 0)
        return tg_error_set(err, "now: expected an RFC 3339 time such as 2026-03-02T09:30:00Z");
    const json_t *apj = json_object_get(c, "approval");
    if (apj) {
        const char *at = json_string_value(json_object_get(apj, "granted_at"));
        ap.id = opt_str(a, apj, "id");
        ap.approver = opt_str(a, apj, "approver");
        ap.granted_at_ms = in.now_ms;
        if (!ap.id || !ap.approver || (at && tg_policy_parse_time(at, &ap.granted_at_ms) < 0))
            return tg_error_set(err, "approval: needs id, approver and an RFC 3339 granted_at");
        in.approval = &ap;
    }
    tg_catalog_classify(tg_policy_catalog(l->pol), up->name, tool_up,
                        json_object_get(c, "annotations"), &entry);
    in.kind = TG_DECIDE_TOOL;
    in.identity = identity_from(a, identity);
    in.upstream = up->name;
    in.name = tool;
    in.upstream_name = tool_up;
    in.entry = &entry;
    tg_jdoc_json aj = TG_JDOC_JSON_INIT, mj = TG_JDOC_JSON_INIT;
    in.args = tg_jdoc_of_json(&aj, args);
    in.meta = tg_jdoc_of_json(&mj, meta);
    in.explain = explain;
    int rc = tg_policy_decide(l->pol, &in, a, d, err);
    tg_jdoc_json_free(&aj);
    tg_jdoc_json_free(&mj);
    return rc;
}

/* ------------------------------------------------------------------ policy test */

static bool has_reason(const tg_decision *d, const char *r)
{
    for (size_t i = 0; i < d->nreasons; i++)
        if (strcmp(d->reasons[i], r) == 0)
            return true;
    return false;
}

/* Runs one case; prints a line for a failure. Returns 1 passed, 0 failed. */
static int run_case(const loaded *l, const json_t *c, size_t i)
{
    tg_arena *a = tg_arena_new(0);
    tg_decision d;
    tg_error err;
    const char *name = json_string_value(json_object_get(c, "name"));
    const char *expect = json_string_value(json_object_get(c, "expect"));
    const json_t *identity = json_object_get(c, "identity");
    char label[160];
    snprintf(label, sizeof label, "case %zu%s%s%s", i + 1, name ? " (" : "", name ? name : "",
             name ? ")" : "");
    int ok = 0;
    if (!expect)
        printf("FAIL %s: missing expect (allow, deny or approval_required)\n", label);
    else if (!json_is_object(identity))
        printf("FAIL %s: missing identity {agent, delegator, groups, …}\n", label);
    else if (decide_one(l, c, identity, false, a, &d, &err) < 0)
        printf("FAIL %s: %s\n", label, err.msg);
    else if (strcmp(tg_decision_name(d.decision), expect) != 0) {
        printf("FAIL %s: expected %s, got %s (reasons:", label, expect,
               tg_decision_name(d.decision));
        for (size_t k = 0; k < d.nreasons; k++)
            printf(" %s", d.reasons[k]);
        for (size_t k = 0; k < d.nerrors; k++)
            printf("%s %s", k ? ";" : "; errors:", d.errors[k]);
        printf(")\n");
    } else {
        ok = 1;
        size_t k;
        json_t *r;
        json_array_foreach(json_object_get(c, "reasons"), k, r) {
            if (ok && !has_reason(&d, json_string_value(r) ? json_string_value(r) : "")) {
                printf("FAIL %s: %s, but reason %s is missing\n", label, expect,
                       json_string_value(r) ? json_string_value(r) : "(not a string)");
                ok = 0;
            }
        }
        if (ok)
            printf("ok   %s: %s\n", label, expect);
    }
    tg_arena_free(a);
    return ok;
}

int tg_policy_test_main(int argc, char **argv)
{
    const char *config = NULL, *cases = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
        else if (argv[i][0] != '-' && !cases)
            cases = argv[i];
        else {
            fprintf(stderr, "usage: toolgate policy test --config FILE CASES.yaml\n");
            return 2;
        }
    }
    if (!config || !cases) {
        fprintf(stderr, "usage: toolgate policy test --config FILE CASES.yaml\n");
        return 2;
    }
    loaded l;
    tg_error err;
    if (load(config, &l) < 0)
        return 2;
    json_t *doc = tg_config_yaml_json(cases, &err);
    const json_t *list = json_object_get(doc, "cases");
    if (!json_is_array(list)) {
        fprintf(stderr, "%s\n", doc ? "the cases file needs a top-level list `cases:`" : err.msg);
        json_decref(doc);
        unload(&l);
        return 2;
    }
    size_t i, passed = 0, failed = 0;
    json_t *c;
    json_array_foreach(list, i, c) {
        if (run_case(&l, c, i))
            passed++;
        else
            failed++;
    }
    printf("%zu passed, %zu failed\n", passed, failed);
    json_decref(doc);
    unload(&l);
    return failed ? 1 : 0;
}

/* ------------------------------------------------------------------ decide */

static const char decide_usage[] =
    "usage: toolgate decide --config FILE --agent ID [--delegator USER] [--groups G1,G2]\n"
    "         [--scopes S1,S2] [--auth-method oauth|api_key] [--client-ip IP]\n"
    "         --tool NAME [--upstream NAME] [--args JSON] [--meta JSON] [--now RFC3339]\n";

static json_t *json_flag(const char *flag, const char *text)
{
    tg_error err;
    json_t *v = tg_json_parse(text, strlen(text), TG_JSON_MAX_DEPTH, &err);
    if (!v)
        fprintf(stderr, "%s: %s\n", flag, err.msg);
    return v;
}

int tg_policy_decide_main(int argc, char **argv)
{
    static const char *const id_flags[][2] = {
        {"--agent", "agent"}, {"--delegator", "delegator"}, {"--groups", "groups"},
        {"--scopes", "scopes"}, {"--auth-method", "method"}, {"--client-ip", "client_ip"},
    };
    static const char *const call_flags[][2] = {
        {"--tool", "tool"}, {"--upstream", "upstream"}, {"--now", "now"},
    };
    const char *config = NULL;
    json_t *identity = json_object(), *c = json_object();
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool done = false;
        if (!v) {
            rc = 2;
            break;
        }
        if (strcmp(f, "--token") == 0 || strcmp(f, "--key") == 0) {
            fprintf(stderr, "%s: verifying a credential needs the gateway's authentication "
                            "(toolgate serve); give the identity with --agent/--delegator\n", f);
            rc = 2;
            break;
        }
        for (size_t k = 0; k < sizeof id_flags / sizeof *id_flags && !done; k++)
            if ((done = strcmp(f, id_flags[k][0]) == 0))
                json_object_set_new(identity, id_flags[k][1], json_string(v));
        for (size_t k = 0; k < sizeof call_flags / sizeof *call_flags && !done; k++)
            if ((done = strcmp(f, call_flags[k][0]) == 0))
                json_object_set_new(c, call_flags[k][1], json_string(v));
        if (!done && strcmp(f, "--config") == 0) {
            config = v;
            done = true;
        }
        if (!done && (strcmp(f, "--args") == 0 || strcmp(f, "--meta") == 0)) {
            json_t *j = json_flag(f, v);
            if (!j)
                rc = 2;
            else
                json_object_set_new(c, f + 2, j);
            done = true;
        }
        if (!done)
            rc = 2;
        i++;
    }
    loaded l;
    if (rc == 0 && (!config || !json_object_get(c, "tool")))
        rc = 2;
    if (rc == 2)
        fputs(decide_usage, stderr);
    if (rc == 0 && load(config, &l) < 0)
        rc = 2;
    if (rc == 0) {
        tg_arena *a = tg_arena_new(0);
        tg_decision d;
        tg_error err;
        if (decide_one(&l, c, identity, true, a, &d, &err) < 0) {
            fprintf(stderr, "decide: %s\n", err.msg);
            rc = 2;
        } else {
            char *s = tg_decision_explain_json(&d);
            printf("%s\n", s);
            free(s);
            rc = d.decision == TG_DECISION_ALLOW ? 0 : 1;
        }
        tg_arena_free(a);
        unload(&l);
    }
    json_decref(identity);
    json_decref(c);
    return rc;
}
