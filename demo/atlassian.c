/*
 * atlassian.c — the default mode: a pretend Atlassian site for toolgate's demo and tests.
 *
 * Tool and argument names follow the open-source Atlassian MCP server
 * (sooperset/mcp-atlassian: jira_*, confluence_*) and, for Bitbucket, the
 * workspace / repo_slug / pull_request_id vocabulary of the Bitbucket Cloud MCP servers
 * in the wild, so policies written against the demo read like policies for the real
 * thing. State lives in memory as jansson values, seeded with Jira projects OPS, FIN,
 * SEC, Confluence spaces ENG and HR, and a Bitbucket workspace "acme" (repos api and
 * web). Writes change that state, so a test can tell whether a call reached the
 * upstream (allowed) or not (denied). demo_whoami reports which credentials the process
 * holds — presence only, never a value — and its environment variable names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "demo_int.h"

extern char **environ;

#define ATL_SITE       "https://acme.atlassian.net"
#define ATL_SEED_TIME  "2026-11-02T09:00:00.000Z"
#define ATL_BOT        "toolgate-demo-bot"
#define ATL_MAX_JQL_CLAUSES 16

/* Mode state. Invariants: `issues` maps key → issue in creation order and every
 * issue's project is a key of `projects`; a project's `next` is one more than its
 * highest issue number; `pages` maps id → page, ids below next_page_id; every PR's
 * branches existed when it was created. */
typedef struct atl_state {
    demo_server *srv;
    json_t *projects;        /* key → {key, name, lead, next} */
    json_t *issues;          /* key → issue */
    json_t *spaces;          /* key → {key, name} */
    json_t *pages;           /* id → page */
    json_t *workspaces;      /* slug → {slug, name, repos: slug → repo} */
    json_t *edit_schema;     /* what jira_update_issue's `fields` may set */
    json_t *create_schema;   /* what jira_create_issue's `additional_fields` may set */
    long    next_page_id;
    long    next_comment_id;
} atl_state;

/* The Jira workflow every project shares. */
static const struct { const char *id, *name, *from, *to; } atl_workflow[] = {
    { "11", "Start Progress", "To Do",       "In Progress" },
    { "21", "Done",           "In Progress", "Done" },
    { "31", "Stop Progress",  "In Progress", "To Do" },
    { "41", "Reopen",         "Done",        "To Do" },
    { "51", "Close",          "To Do",       "Done" },
};

static atl_state *st_of(demo_call *c) { return demo_state(c->srv); }

static json_t *now_string(void)
{
    char ts[32];
    tg_format_time(tg_wall_ms(), ts);
    return json_string(ts);
}

static const char *arg_str(const json_t *args, const char *name)
{
    return json_string_value(json_object_get(args, name));
}

static json_int_t arg_int(const json_t *args, const char *name, json_int_t dflt)
{
    const json_t *v = json_object_get(args, name);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

/* Splits "a, b,c" into a JSON array of trimmed, non-empty strings. */
static json_t *split_csv(const char *s)
{
    json_t *out = json_array();
    while (s && *s) {
        const char *comma = strchr(s, ',');
        const char *e = comma ? comma : s + strlen(s);
        while (s < e && *s == ' ') s++;
        const char *t = e;
        while (t > s && t[-1] == ' ') t--;
        if (t > s) json_array_append_new(out, json_stringn(s, (size_t)(t - s)));
        s = comma ? comma + 1 : e;
    }
    return out;
}

static int csv_has(const json_t *list, const char *item)
{
    size_t i;
    const json_t *v;
    json_array_foreach(list, i, v)
        if (!strcasecmp(json_string_value(v), item)) return 1;
    return 0;
}

/* ------------------------------------------------------------------ seed */

/* Adds a new issue to project `project` and returns it (borrowed). Fields that depend on
 * the moment (created/updated) are the caller's. */
static json_t *add_issue(atl_state *st, const char *project, const char *summary,
                         const char *type, const char *status, const char *priority,
                         const char *assignee, const char *reporter, const char *description)
{
    json_t *proj = json_object_get(st->projects, project);
    json_int_t n = json_integer_value(json_object_get(proj, "next"));
    json_object_set_new(proj, "next", json_integer(n + 1));
    json_t *issue = json_pack("{s:o,s:o,s:s,s:s,s:s,s:s,s:s,s:s,s:s?,s:s,s:[],s:[],s:s,s:s,s:[]}",
        "key", json_sprintf("%s-%lld", project, (long long)n),
        "id", json_sprintf("%zu", json_object_size(st->issues) + 10001),
        "project", project, "summary", summary, "description", description,
        "issue_type", type, "status", status, "priority", priority, "assignee", assignee,
        "reporter", reporter, "labels", "components",
        "created", ATL_SEED_TIME, "updated", ATL_SEED_TIME, "comments");
    json_object_set_new(st->issues, json_string_value(json_object_get(issue, "key")), issue);
    return issue;
}

static void seed_issue(atl_state *st, const char *project, const char *summary,
                       const char *type, const char *status, const char *priority,
                       const char *assignee, const char *description)
{
    const char *lead = json_string_value(
        json_object_get(json_object_get(st->projects, project), "lead"));
    add_issue(st, project, summary, type, status, priority, assignee, lead, description);
}

/* Adds a page and returns it (borrowed). */
static json_t *add_page(atl_state *st, long id, const char *space, const char *title,
                        const char *parent, const char *content, const char *author)
{
    char ids[24];
    snprintf(ids, sizeof ids, "%ld", id);
    json_t *page = json_pack("{s:s,s:s,s:s,s:s?,s:s,s:i,s:s,s:s,s:s,s:o}",
        "id", ids, "title", title, "space_key", space, "parent_id", parent,
        "content", content, "version", 1, "author", author,
        "created", ATL_SEED_TIME, "updated", ATL_SEED_TIME,
        "url", json_sprintf(ATL_SITE "/wiki/spaces/%s/pages/%s", space, ids));
    json_object_set_new(st->pages, ids, page);
    if (id >= st->next_page_id) st->next_page_id = id + 1;
    return page;
}

static void seed_page(atl_state *st, long id, const char *space, const char *title,
                      const char *parent, const char *content)
{
    add_page(st, id, space, title, parent, content, "Dana Docs");
}

/* A fake commit hash derived from what produced it, so runs are reproducible. */
static json_t *fake_hash(const char *what)
{
    char hex[65];
    tg_sha256_hex(what, strlen(what), hex);
    return json_stringn(hex, 12);
}

static json_t *new_branch(const char *name, const char *seed)
{
    return json_pack("{s:s,s:o}", "name", name, "target", fake_hash(seed));
}

static json_t *seed_repo(const char *slug, const char *description, const char *pr_title)
{
    json_t *repo = json_pack("{s:s,s:s,s:s+,s:s,s:s,s:{s:o,s:o},s:[{s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:n,s:b}],s:i}",
        "slug", slug, "name", slug, "full_name", "acme/", slug, "description", description,
        "mainbranch", "main",
        "branches", "main", new_branch("main", slug), "develop", new_branch("develop", description),
        "pull_requests", "id", 1, "title", pr_title, "description", "Ready for review.",
        "state", "OPEN", "source_branch", "develop", "destination_branch", "main",
        "author", "Erin Dev", "created_on", ATL_SEED_TIME, "merge_commit",
        "close_source_branch", 0,
        "next_pr", 2);
    return repo;
}

static void *atl_init(demo_server *s)
{
    atl_state *st = calloc(1, sizeof *st);
    if (!st) abort();
    st->srv = s;
    st->next_page_id = 1;
    st->next_comment_id = 10000;
    st->projects = json_pack("{s:{s:s,s:s,s:s,s:i},s:{s:s,s:s,s:s,s:i},s:{s:s,s:s,s:s,s:i}}",
        "OPS", "key", "OPS", "name", "Operations", "lead", "alice", "next", 1,
        "FIN", "key", "FIN", "name", "Finance", "lead", "bob", "next", 1,
        "SEC", "key", "SEC", "name", "Security", "lead", "carol", "next", 1);
    st->issues = json_object();
    seed_issue(st, "OPS", "Rotate TLS certificates on the edge proxies", "Task", "In Progress",
               "High", "alice", "The edge certificates expire on 2026-12-01.");
    seed_issue(st, "OPS", "Disk usage alert on db-3", "Bug", "To Do", "Highest", NULL,
               "/var/lib/postgresql is at 91%.");
    seed_issue(st, "OPS", "Upgrade Kubernetes to 1.31", "Story", "Done", "Medium", "alice",
               "All clusters, staging first.");
    seed_issue(st, "FIN", "Reconcile Q4 vendor invoices", "Task", "To Do", "Medium", "bob",
               "Match invoices against purchase orders.");
    seed_issue(st, "FIN", "Payroll export fails for contractors", "Bug", "In Progress", "High",
               "bob", "The CSV export drops rows with an empty tax id.");
    seed_issue(st, "SEC", "Quarterly access review", "Task", "To Do", "Medium", "carol",
               "Review admin group membership in every system.");
    seed_issue(st, "SEC", "CVE-2026-1234 in libfoo", "Bug", "In Progress", "Highest", "carol",
               "Patch or mitigate on every host running libfoo < 2.4.");
    seed_issue(st, "SEC", "Enforce MFA on the admin console", "Story", "Done", "High", NULL,
               "Done for all staff accounts.");
    st->spaces = json_pack("{s:{s:s,s:s},s:{s:s,s:s}}",
        "ENG", "key", "ENG", "name", "Engineering", "HR", "key", "HR", "name", "People");
    st->pages = json_object();
    seed_page(st, 101, "ENG", "Engineering Handbook", NULL,
              "# Engineering Handbook\nHow we build, review and ship software.");
    seed_page(st, 102, "ENG", "On-call Runbook", "101",
              "# On-call Runbook\nPage the secondary after 15 minutes without acknowledgement.");
    seed_page(st, 103, "ENG", "Architecture Decision Records", "101",
              "# ADRs\nADR-7: all MCP traffic goes through the gateway.");
    seed_page(st, 201, "HR", "Holiday Policy", NULL,
              "# Holiday Policy\n25 days per year, plus public holidays.");
    seed_page(st, 202, "HR", "Onboarding Checklist", NULL,
              "# Onboarding\nLaptop, accounts, buddy, first-week plan.");
    st->workspaces = json_pack("{s:{s:s,s:s,s:{s:o,s:o}}}",
        "acme", "slug", "acme", "name", "ACME Corp", "repos",
        "api", seed_repo("api", "Public REST API", "Add rate limiting middleware"),
        "web", seed_repo("web", "Customer web app", "Dark mode for the dashboard"));
    st->edit_schema = demo_def_parse(
        "{'type':'object','additionalProperties':false,'properties':{"
        "'summary':{'type':'string','minLength':1},"
        "'description':{'type':'string'},"
        "'assignee':{'type':['string','null']},"
        "'priority':{'type':'string','enum':['Highest','High','Medium','Low','Lowest']},"
        "'labels':{'type':'array','items':{'type':'string'}},"
        "'components':{'type':'array','items':{'type':'string'}}}}");
    st->create_schema = demo_def_parse(
        "{'type':'object','additionalProperties':false,'properties':{"
        "'priority':{'type':'string','enum':['Highest','High','Medium','Low','Lowest']},"
        "'labels':{'type':'array','items':{'type':'string'}}}}");
    return st;
}

static void atl_fini(void *state)
{
    atl_state *st = state;
    json_decref(st->projects);
    json_decref(st->issues);
    json_decref(st->spaces);
    json_decref(st->pages);
    json_decref(st->workspaces);
    json_decref(st->edit_schema);
    json_decref(st->create_schema);
    free(st);
}

/* ------------------------------------------------------------------ Jira */

/* Looks up the issue named by args.issue_key; fails the call when it is unknown. */
static json_t *need_issue(demo_call *c, const json_t *args)
{
    const char *key = arg_str(args, "issue_key");
    json_t *issue = json_object_get(st_of(c)->issues, key);
    if (!issue) demo_call_fail(c, "Issue %s does not exist or you do not have permission to see it.", key);
    return issue;
}

/* What a read returns: the issue limited to `fields` ("a,b" or "*all"; key and id are
 * always there) and to the newest comment_limit comments. */
static json_t *issue_view(const json_t *issue, const char *fields, json_int_t comment_limit)
{
    json_t *want = fields && strcmp(fields, "*all") ? split_csv(fields) : NULL;
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)issue, k, v) {
        if (want && strcmp(k, "key") && strcmp(k, "id") && !csv_has(want, k)) continue;
        if (!strcmp(k, "comments")) {
            size_t n = json_array_size(v), from = n > (size_t)comment_limit ? n - (size_t)comment_limit : 0;
            json_t *cs = json_array();
            for (size_t i = from; i < n; i++) json_array_append(cs, json_array_get(v, i));
            json_object_set_new(out, k, cs);
        } else {
            json_object_set(out, k, v);
        }
    }
    json_decref(want);
    return out;
}

static void issue_touched(demo_call *c, json_t *issue, const char *event)
{
    const char *key = json_string_value(json_object_get(issue, "key"));
    json_object_set_new(issue, "updated", now_string());
    demo_log(c->srv, "info", json_pack("{s:s,s:s}", "event", event, "issue", key));
    char uri[160];
    snprintf(uri, sizeof uri, "jira://issue/%s", key);
    demo_resource_changed(c->srv, uri);
}

static void t_get_issue(demo_call *c, json_t *args)
{
    json_t *issue = need_issue(c, args);
    if (!issue) return;
    demo_call_finish_json(c, issue_view(issue, arg_str(args, "fields"),
                                        arg_int(args, "comment_limit", 10)));
}

/* --- a small JQL: clauses joined by AND, ORDER BY accepted and ignored. */

enum { JQL_EQ, JQL_NE, JQL_LIKE, JQL_IN };
typedef struct {
    char field[32];
    int  op;
    json_t *values;   /* array of strings */
} jql_clause;

typedef struct {
    const char *p;
    char tok[256];
    int  quoted;
} jql_lex;

/* Reads the next token into lx->tok; returns 0 at the end, -1 on a lexical error. */
static int jql_next(jql_lex *lx)
{
    while (*lx->p == ' ' || *lx->p == '\t') lx->p++;
    lx->quoted = 0;
    lx->tok[0] = 0;
    if (!*lx->p) return 0;
    size_t n = 0;
    if (*lx->p == '"' || *lx->p == '\'') {
        char q = *lx->p++;
        while (*lx->p && *lx->p != q && n < sizeof lx->tok - 1) lx->tok[n++] = *lx->p++;
        if (*lx->p != q) return -1;
        lx->p++;
        lx->quoted = 1;
    } else if (strchr("(),=~", *lx->p)) {
        lx->tok[n++] = *lx->p++;
    } else if (lx->p[0] == '!' && lx->p[1] == '=') {
        lx->tok[n++] = '!';
        lx->tok[n++] = '=';
        lx->p += 2;
    } else {
        while (*lx->p && !strchr(" \t(),=~!\"'", *lx->p) && n < sizeof lx->tok - 1)
            lx->tok[n++] = *lx->p++;
        if (n == 0) return -1;
    }
    lx->tok[n] = 0;
    return 1;
}

static int jql_parse(const char *jql, jql_clause *cl, size_t *ncl, tg_error *err)
{
    jql_lex lx = { .p = jql };
    *ncl = 0;
    int r;
    while ((r = jql_next(&lx)) > 0) {
        if (!lx.quoted && !strcasecmp(lx.tok, "ORDER")) return 0; /* ordering: creation order */
        if (*ncl == ATL_MAX_JQL_CLAUSES)
            return tg_error_set(err, "JQL has too many clauses (at most %d)", ATL_MAX_JQL_CLAUSES);
        size_t flen = strlen(lx.tok);
        if (flen >= sizeof cl[0].field)
            return tg_error_set(err, "JQL: unsupported field '%.40s…'", lx.tok);
        jql_clause *c = &cl[(*ncl)++];
        memcpy(c->field, lx.tok, flen + 1);
        c->values = json_array();
        if (jql_next(&lx) <= 0) return tg_error_set(err, "JQL: operator expected after '%s'", c->field);
        if (!strcmp(lx.tok, "=")) c->op = JQL_EQ;
        else if (!strcmp(lx.tok, "!=")) c->op = JQL_NE;
        else if (!strcmp(lx.tok, "~")) c->op = JQL_LIKE;
        else if (!strcasecmp(lx.tok, "in")) c->op = JQL_IN;
        else return tg_error_set(err, "JQL: unsupported operator '%s' (use =, !=, ~ or in)", lx.tok);
        if (c->op == JQL_IN) {
            if (jql_next(&lx) <= 0 || strcmp(lx.tok, "("))
                return tg_error_set(err, "JQL: '(' expected after 'in'");
            for (;;) {
                if (jql_next(&lx) <= 0) return tg_error_set(err, "JQL: unterminated list");
                json_array_append_new(c->values, json_string(lx.tok));
                if (jql_next(&lx) <= 0) return tg_error_set(err, "JQL: unterminated list");
                if (!strcmp(lx.tok, ")")) break;
                if (strcmp(lx.tok, ",")) return tg_error_set(err, "JQL: ',' or ')' expected");
            }
        } else {
            if (jql_next(&lx) <= 0) return tg_error_set(err, "JQL: value expected after '%s'", c->field);
            json_array_append_new(c->values, json_string(lx.tok));
        }
        r = jql_next(&lx);
        if (r == 0) return 0;
        if (r < 0) break;
        if (!lx.quoted && !strcasecmp(lx.tok, "ORDER")) return 0;
        if (lx.quoted || strcasecmp(lx.tok, "AND"))
            return tg_error_set(err, "JQL: only AND joins clauses here, found '%s'", lx.tok);
    }
    if (r < 0) return tg_error_set(err, "JQL: unterminated string or stray character");
    return 0;
}

/* The issue field a JQL name refers to, or NULL if the name is not supported. */
static const char *jql_field(const char *name)
{
    static const struct { const char *jql, *field; } map[] = {
        { "project", "project" }, { "key", "key" }, { "issuekey", "key" },
        { "status", "status" }, { "assignee", "assignee" }, { "reporter", "reporter" },
        { "issuetype", "issue_type" }, { "type", "issue_type" }, { "priority", "priority" },
        { "summary", "summary" }, { "description", "description" }, { "text", "text" },
        { "labels", "labels" },
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcasecmp(name, map[i].jql)) return map[i].field;
    return NULL;
}

static int value_matches(const json_t *fv, int op, const char *want)
{
    if (json_is_array(fv)) {
        size_t i;
        const json_t *e;
        json_array_foreach(fv, i, e)
            if (value_matches(e, op, want)) return 1;
        return 0;
    }
    const char *s = json_string_value(fv);
    if (!s) return 0;
    if (op == JQL_LIKE) return strcasestr(s, want) != NULL;
    return !strcasecmp(s, want);
}

static int issue_matches(const json_t *issue, const jql_clause *cl, size_t ncl)
{
    for (size_t i = 0; i < ncl; i++) {
        const char *f = jql_field(cl[i].field);
        int hit = 0;
        size_t k;
        const json_t *want;
        json_array_foreach(cl[i].values, k, want) {
            const char *w = json_string_value(want);
            if (!strcmp(f, "text"))
                hit |= value_matches(json_object_get(issue, "summary"), JQL_LIKE, w) ||
                       value_matches(json_object_get(issue, "description"), JQL_LIKE, w);
            else
                hit |= value_matches(json_object_get(issue, f), cl[i].op == JQL_NE ? JQL_EQ : cl[i].op, w);
        }
        if (cl[i].op == JQL_NE ? hit : !hit) return 0;
    }
    return 1;
}

static void t_search(demo_call *c, json_t *args)
{
    jql_clause cl[ATL_MAX_JQL_CLAUSES];
    size_t ncl = 0;
    tg_error err;
    int rc = jql_parse(arg_str(args, "jql"), cl, &ncl, &err);
    for (size_t i = 0; rc == 0 && i < ncl; i++)
        if (!jql_field(cl[i].field))
            rc = tg_error_set(&err, "JQL: unsupported field '%s' (try project, key, status, "
                              "assignee, issuetype, priority, summary, text, labels)", cl[i].field);
    if (rc < 0) {
        for (size_t i = 0; i < ncl; i++) json_decref(cl[i].values);
        demo_call_fail(c, "Error searching issues: %s", err.msg);
        return;
    }
    json_t *projects = split_csv(arg_str(args, "projects_filter"));
    json_int_t limit = arg_int(args, "limit", 10), start = arg_int(args, "start_at", 0), total = 0;
    json_t *found = json_array();
    const char *key;
    json_t *issue;
    json_object_foreach(st_of(c)->issues, key, issue) {
        if (json_array_size(projects) &&
            !csv_has(projects, json_string_value(json_object_get(issue, "project")))) continue;
        if (!issue_matches(issue, cl, ncl)) continue;
        if (total >= start && (json_int_t)json_array_size(found) < limit)
            json_array_append_new(found, issue_view(issue, arg_str(args, "fields"), 0));
        total++;
    }
    for (size_t i = 0; i < ncl; i++) json_decref(cl[i].values);
    json_decref(projects);
    demo_call_finish_json(c, json_pack("{s:I,s:I,s:I,s:o}", "total", total, "start_at", start,
                                       "max_results", limit, "issues", found));
}

/* Copies the (validated) fields onto the issue. */
static void apply_fields(json_t *issue, const json_t *fields)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)fields, k, v)
        json_object_set(issue, k, v);
}

static void t_create_issue(demo_call *c, json_t *args)
{
    atl_state *st = st_of(c);
    const char *pkey = arg_str(args, "project_key");
    json_t *proj = json_object_get(st->projects, pkey);
    if (!proj) {
        demo_call_fail(c, "Project %s does not exist (projects: OPS, FIN, SEC).", pkey);
        return;
    }
    json_t *extra = json_object_get(args, "additional_fields");
    tg_error err;
    if (extra && demo_schema_check(st->create_schema, extra, &err) < 0) {
        demo_call_fail(c, "additional_fields: %s", err.msg);
        return;
    }
    json_t *issue = add_issue(st, pkey, arg_str(args, "summary"), arg_str(args, "issue_type"),
                              "To Do", "Medium", arg_str(args, "assignee"), ATL_BOT,
                              arg_str(args, "description") ? arg_str(args, "description") : "");
    json_object_set_new(issue, "components", split_csv(arg_str(args, "components")));
    json_object_set_new(issue, "created", now_string());
    json_object_set(issue, "updated", json_object_get(issue, "created"));
    if (extra) apply_fields(issue, extra);
    const char *key = json_string_value(json_object_get(issue, "key"));
    demo_log(c->srv, "info", json_pack("{s:s,s:s}", "event", "issue_created", "issue", key));
    demo_resources_list_changed(c->srv);
    demo_call_finish_json(c, json_pack("{s:s,s:o}", "message", "Issue created successfully",
                                       "issue", issue_view(issue, NULL, 10)));
}

static void t_update_issue(demo_call *c, json_t *args)
{
    json_t *issue = need_issue(c, args);
    if (!issue) return;
    atl_state *st = st_of(c);
    const json_t *fields = json_object_get(args, "fields");
    const json_t *extra = json_object_get(args, "additional_fields");
    tg_error err;
    /* Both sets are checked before either is applied: an update is all or nothing. */
    if (demo_schema_check(st->edit_schema, fields, &err) < 0 ||
        (extra && demo_schema_check(st->edit_schema, extra, &err) < 0)) {
        demo_call_fail(c, "Error updating issue: %s", err.msg);
        return;
    }
    if (json_object_size(fields) == 0 && json_object_size(extra) == 0) {
        demo_call_fail(c, "Error updating issue: no fields to update");
        return;
    }
    apply_fields(issue, fields);
    if (extra) apply_fields(issue, extra);
    issue_touched(c, issue, "issue_updated");
    demo_call_finish_json(c, json_pack("{s:s,s:o}", "message", "Issue updated successfully",
                                       "issue", issue_view(issue, NULL, 10)));
}

static json_t *transitions_from(const char *status)
{
    json_t *out = json_array();
    for (size_t i = 0; i < sizeof atl_workflow / sizeof atl_workflow[0]; i++)
        if (!strcmp(atl_workflow[i].from, status))
            json_array_append_new(out, json_pack("{s:s,s:s,s:s}", "id", atl_workflow[i].id,
                                  "name", atl_workflow[i].name, "to_status", atl_workflow[i].to));
    return out;
}

static void t_get_transitions(demo_call *c, json_t *args)
{
    json_t *issue = need_issue(c, args);
    if (!issue) return;
    demo_call_finish_json(c, transitions_from(json_string_value(json_object_get(issue, "status"))));
}

static json_t *add_comment(demo_call *c, json_t *issue, const char *body)
{
    atl_state *st = st_of(c);
    json_t *cm = json_pack("{s:o,s:s,s:s,s:o}", "id", json_sprintf("%ld", st->next_comment_id++),
                           "author", ATL_BOT, "body", body, "created", now_string());
    json_array_append(json_object_get(issue, "comments"), cm);
    return cm;
}

static void t_transition(demo_call *c, json_t *args)
{
    json_t *issue = need_issue(c, args);
    if (!issue) return;
    const char *status = json_string_value(json_object_get(issue, "status"));
    const char *tid = arg_str(args, "transition_id");
    size_t i, n = sizeof atl_workflow / sizeof atl_workflow[0];
    for (i = 0; i < n; i++)
        if (!strcmp(atl_workflow[i].id, tid) && !strcmp(atl_workflow[i].from, status)) break;
    if (i == n) {
        json_t *avail = transitions_from(status);
        char *list = tg_json_dump(avail, NULL);
        json_decref(avail);
        demo_call_fail(c, "Transition %s is not available for %s in status '%s'. Available: %s",
                       tid, arg_str(args, "issue_key"), status, list);
        free(list);
        return;
    }
    const json_t *fields = json_object_get(args, "fields");
    tg_error err;
    if (fields && demo_schema_check(st_of(c)->edit_schema, fields, &err) < 0) {
        demo_call_fail(c, "Error transitioning issue: %s", err.msg);
        return;
    }
    if (fields) apply_fields(issue, fields);
    json_object_set_new(issue, "status", json_string(atl_workflow[i].to));
    if (arg_str(args, "comment")) json_decref(add_comment(c, issue, arg_str(args, "comment")));
    issue_touched(c, issue, "issue_transitioned");
    json_t *msg = json_sprintf("Issue %s transitioned to %s", arg_str(args, "issue_key"),
                               atl_workflow[i].to);
    demo_call_finish_json(c, json_pack("{s:o,s:o}", "message", msg,
                                       "issue", issue_view(issue, NULL, 10)));
}

static void t_add_comment(demo_call *c, json_t *args)
{
    json_t *issue = need_issue(c, args);
    if (!issue) return;
    json_t *cm = add_comment(c, issue, arg_str(args, "comment"));
    issue_touched(c, issue, "comment_added");
    demo_call_finish_json(c, cm);
}

/* ------------------------------------------------------------------ Confluence */

static json_t *need_page(demo_call *c, const char *id)
{
    json_t *page = json_object_get(st_of(c)->pages, id);
    if (!page) demo_call_fail(c, "Page %s not found.", id);
    return page;
}

static void page_touched(demo_call *c, const json_t *page, const char *event)
{
    const char *id = json_string_value(json_object_get(page, "id"));
    demo_log(c->srv, "info", json_pack("{s:s,s:s}", "event", event, "page", id));
    char uri[64];
    snprintf(uri, sizeof uri, "confluence://page/%s", id);
    demo_resource_changed(c->srv, uri);
}

static void t_conf_search(demo_call *c, json_t *args)
{
    const char *q = arg_str(args, "query");
    json_t *spaces = split_csv(arg_str(args, "spaces_filter"));
    json_int_t limit = arg_int(args, "limit", 10);
    json_t *out = json_array();
    const char *id;
    json_t *page;
    json_object_foreach(st_of(c)->pages, id, page) {
        if ((json_int_t)json_array_size(out) >= limit) break;
        const char *space = json_string_value(json_object_get(page, "space_key"));
        if (json_array_size(spaces) && !csv_has(spaces, space)) continue;
        const char *title = json_string_value(json_object_get(page, "title"));
        const char *content = json_string_value(json_object_get(page, "content"));
        if (!strcasestr(title, q) && !strcasestr(content, q)) continue;
        json_array_append_new(out, json_pack("{s:s,s:s,s:s,s:O,s:s%}", "id", id, "title", title,
            "space_key", space, "url", json_object_get(page, "url"),
            "excerpt", content, strlen(content) < 120 ? strlen(content) : (size_t)120));
    }
    json_decref(spaces);
    demo_call_finish_json(c, out);
}

static void t_get_page(demo_call *c, json_t *args)
{
    const char *id = arg_str(args, "page_id");
    const char *title = arg_str(args, "title"), *space = arg_str(args, "space_key");
    json_t *page = NULL;
    if (id) {
        page = need_page(c, id);
        if (!page) return;
    } else if (title && space) {
        const char *k;
        json_t *p;
        json_object_foreach(st_of(c)->pages, k, p)
            if (!strcmp(json_string_value(json_object_get(p, "title")), title) &&
                !strcmp(json_string_value(json_object_get(p, "space_key")), space)) page = p;
        if (!page) {
            demo_call_fail(c, "Page '%s' not found in space %s.", title, space);
            return;
        }
    } else {
        demo_call_fail(c, "Either page_id, or title and space_key, must be given.");
        return;
    }
    if (json_is_false(json_object_get(args, "include_metadata")))
        demo_call_finish_json(c, json_pack("{s:O}", "content", json_object_get(page, "content")));
    else
        demo_call_finish_json(c, json_pack("{s:O}", "metadata", page));
}

/* Checks a parent page: it must exist and be in `space`. */
static int parent_ok(demo_call *c, const char *parent_id, const char *space)
{
    if (!parent_id) return 1;
    json_t *parent = need_page(c, parent_id);
    if (!parent) return 0;
    if (strcmp(json_string_value(json_object_get(parent, "space_key")), space)) {
        demo_call_fail(c, "Parent page %s is not in space %s.", parent_id, space);
        return 0;
    }
    return 1;
}

static void t_create_page(demo_call *c, json_t *args)
{
    atl_state *st = st_of(c);
    const char *space = arg_str(args, "space_key"), *title = arg_str(args, "title");
    if (!json_object_get(st->spaces, space)) {
        demo_call_fail(c, "Space %s does not exist (spaces: ENG, HR).", space);
        return;
    }
    const char *k;
    json_t *p;
    json_object_foreach(st->pages, k, p)
        if (!strcmp(json_string_value(json_object_get(p, "title")), title) &&
            !strcmp(json_string_value(json_object_get(p, "space_key")), space)) {
            demo_call_fail(c, "A page titled '%s' already exists in space %s.", title, space);
            return;
        }
    if (!parent_ok(c, arg_str(args, "parent_id"), space)) return;
    json_t *page = add_page(st, st->next_page_id, space, title, arg_str(args, "parent_id"),
                            arg_str(args, "content"), ATL_BOT);
    json_object_set_new(page, "created", now_string());
    json_object_set_new(page, "updated", now_string());
    page_touched(c, page, "page_created");
    demo_resources_list_changed(c->srv);
    demo_call_finish_json(c, json_pack("{s:s,s:O}", "message", "Page created successfully",
                                       "page", page));
}

static void t_update_page(demo_call *c, json_t *args)
{
    json_t *page = need_page(c, arg_str(args, "page_id"));
    if (!page) return;
    if (!parent_ok(c, arg_str(args, "parent_id"),
                   json_string_value(json_object_get(page, "space_key")))) return;
    json_object_set(page, "title", json_object_get(args, "title"));
    json_object_set(page, "content", json_object_get(args, "content"));
    if (arg_str(args, "parent_id")) json_object_set(page, "parent_id", json_object_get(args, "parent_id"));
    json_object_set_new(page, "version",
                        json_integer(json_integer_value(json_object_get(page, "version")) + 1));
    json_object_set_new(page, "updated", now_string());
    page_touched(c, page, "page_updated");
    demo_call_finish_json(c, json_pack("{s:s,s:O}", "message", "Page updated successfully",
                                       "page", page));
}

/* ------------------------------------------------------------------ Bitbucket */

/* The repository named by args.workspace / args.repo_slug, or NULL after failing. */
static json_t *need_repo(demo_call *c, const json_t *args)
{
    const char *ws = arg_str(args, "workspace"), *slug = arg_str(args, "repo_slug");
    json_t *w = json_object_get(st_of(c)->workspaces, ws);
    if (!w) {
        demo_call_fail(c, "Workspace %s not found.", ws);
        return NULL;
    }
    json_t *repo = json_object_get(json_object_get(w, "repos"), slug);
    if (!repo) demo_call_fail(c, "Repository %s/%s not found.", ws, slug);
    return repo;
}

static json_t *need_branch(demo_call *c, json_t *repo, const char *name)
{
    json_t *b = json_object_get(json_object_get(repo, "branches"), name);
    if (!b) demo_call_fail(c, "Branch %s not found in %s.", name,
                           json_string_value(json_object_get(repo, "full_name")));
    return b;
}

static json_t *need_pr(demo_call *c, json_t *repo, json_int_t id)
{
    size_t i;
    json_t *pr;
    json_array_foreach(json_object_get(repo, "pull_requests"), i, pr)
        if (json_integer_value(json_object_get(pr, "id")) == id) return pr;
    demo_call_fail(c, "Pull request #%lld not found in %s.", (long long)id,
                   json_string_value(json_object_get(repo, "full_name")));
    return NULL;
}

static void t_list_repos(demo_call *c, json_t *args)
{
    json_t *w = json_object_get(st_of(c)->workspaces, arg_str(args, "workspace"));
    if (!w) {
        demo_call_fail(c, "Workspace %s not found.", arg_str(args, "workspace"));
        return;
    }
    json_t *out = json_array();
    const char *slug;
    json_t *repo;
    json_object_foreach(json_object_get(w, "repos"), slug, repo)
        json_array_append_new(out, json_pack("{s:O,s:O,s:O,s:O,s:O}",
            "slug", json_object_get(repo, "slug"), "name", json_object_get(repo, "name"),
            "full_name", json_object_get(repo, "full_name"),
            "description", json_object_get(repo, "description"),
            "mainbranch", json_object_get(repo, "mainbranch")));
    demo_call_finish_json(c, json_pack("{s:o}", "repositories", out));
}

static void t_list_branches(demo_call *c, json_t *args)
{
    json_t *repo = need_repo(c, args);
    if (!repo) return;
    json_t *out = json_array();
    const char *name;
    json_t *b;
    json_object_foreach(json_object_get(repo, "branches"), name, b)
        json_array_append(out, b);
    demo_call_finish_json(c, json_pack("{s:o}", "branches", out));
}

static void t_get_branch(demo_call *c, json_t *args)
{
    json_t *repo = need_repo(c, args);
    json_t *b = repo ? need_branch(c, repo, arg_str(args, "branch")) : NULL;
    if (b) demo_call_finish_json(c, json_incref(b));
}

static void t_create_branch(demo_call *c, json_t *args)
{
    json_t *repo = need_repo(c, args);
    if (!repo) return;
    const char *name = arg_str(args, "branch");
    const char *from = arg_str(args, "source_branch");
    if (!from) from = json_string_value(json_object_get(repo, "mainbranch"));
    json_t *branches = json_object_get(repo, "branches");
    if (json_object_get(branches, name)) {
        demo_call_fail(c, "Branch %s already exists.", name);
        return;
    }
    json_t *src = need_branch(c, repo, from);
    if (!src) return;
    json_t *b = json_pack("{s:s,s:O}", "name", name, "target", json_object_get(src, "target"));
    json_object_set_new(branches, name, b);
    demo_log(c->srv, "info", json_pack("{s:s,s:s}", "event", "branch_created", "branch", name));
    demo_call_finish_json(c, json_incref(b));
}

static void t_list_prs(demo_call *c, json_t *args)
{
    json_t *repo = need_repo(c, args);
    if (!repo) return;
    const char *state = arg_str(args, "state");
    if (!state) state = "OPEN";
    json_t *out = json_array();
    size_t i;
    json_t *pr;
    json_array_foreach(json_object_get(repo, "pull_requests"), i, pr)
        if (!strcmp(state, "ALL") || !strcmp(state, json_string_value(json_object_get(pr, "state"))))
            json_array_append(out, pr);
    demo_call_finish_json(c, json_pack("{s:o}", "pull_requests", out));
}

static void t_get_pr(demo_call *c, json_t *args)
{
    json_t *repo = need_repo(c, args);
    json_t *pr = repo ? need_pr(c, repo, arg_int(args, "pull_request_id", 0)) : NULL;
    if (pr) demo_call_finish_json(c, json_incref(pr));
}

static void t_create_pr(demo_call *c, json_t *args)
{
    json_t *repo = need_repo(c, args);
    if (!repo) return;
    const char *src = arg_str(args, "source_branch"), *dst = arg_str(args, "destination_branch");
    if (!need_branch(c, repo, src) || !need_branch(c, repo, dst)) return;
    if (!strcmp(src, dst)) {
        demo_call_fail(c, "Source and destination branch are both %s.", src);
        return;
    }
    json_int_t id = json_integer_value(json_object_get(repo, "next_pr"));
    json_object_set_new(repo, "next_pr", json_integer(id + 1));
    json_t *pr = json_pack("{s:I,s:O,s:s,s:s,s:s,s:s,s:s,s:o,s:n,s:b}", "id", id,
        "title", json_object_get(args, "title"),
        "description", arg_str(args, "description") ? arg_str(args, "description") : "",
        "state", "OPEN", "source_branch", src, "destination_branch", dst, "author", ATL_BOT,
        "created_on", now_string(), "merge_commit",
        "close_source_branch", json_is_true(json_object_get(args, "close_source_branch")));
    json_array_append_new(json_object_get(repo, "pull_requests"), pr);
    demo_log(c->srv, "info", json_pack("{s:s,s:I}", "event", "pull_request_created",
                                       "pull_request_id", id));
    demo_call_finish_json(c, json_incref(pr));
}

static void t_merge_pr(demo_call *c, json_t *args)
{
    json_t *repo = need_repo(c, args);
    json_int_t id = arg_int(args, "pull_request_id", 0);
    json_t *pr = repo ? need_pr(c, repo, id) : NULL;
    if (!pr) return;
    const char *state = json_string_value(json_object_get(pr, "state"));
    if (strcmp(state, "OPEN")) {
        demo_call_fail(c, "Pull request #%lld is %s and cannot be merged.", (long long)id, state);
        return;
    }
    char seed[96];
    snprintf(seed, sizeof seed, "merge %s #%lld",
             json_string_value(json_object_get(repo, "full_name")), (long long)id);
    json_t *hash = fake_hash(seed);
    json_t *branches = json_object_get(repo, "branches");
    const char *src = json_string_value(json_object_get(pr, "source_branch"));
    json_object_set(json_object_get(branches, json_string_value(json_object_get(pr, "destination_branch"))),
                    "target", hash);
    json_object_set_new(pr, "state", json_string("MERGED"));
    json_object_set_new(pr, "merge_commit", hash);
    json_object_set_new(pr, "merge_strategy", json_string(arg_str(args, "merge_strategy") ?
                                                           arg_str(args, "merge_strategy") : "merge_commit"));
    json_object_set_new(pr, "closed_by", json_string(ATL_BOT));
    if (json_is_true(json_object_get(pr, "close_source_branch")) &&
        strcmp(src, json_string_value(json_object_get(repo, "mainbranch"))))
        json_object_del(branches, src);
    demo_log(c->srv, "info", json_pack("{s:s,s:I}", "event", "pull_request_merged",
                                       "pull_request_id", id));
    demo_call_finish_json(c, json_incref(pr));
}

/* ------------------------------------------------------------------ whoami */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void t_whoami(demo_call *c, json_t *args)
{
    static const char *const secrets[] = { "JIRA_API_TOKEN", "CONFLUENCE_API_TOKEN", "BITBUCKET_TOKEN" };
    json_t *creds = json_object();
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        const char *v = getenv(secrets[i]);
        json_object_set_new(creds, secrets[i], json_boolean(v && *v));
    }
    size_t n = 0;
    while (environ[n]) n++;
    char **names = calloc(n + 1, sizeof *names);
    if (!names) abort();
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(environ[i], '=');
        names[i] = strndup(environ[i], eq ? (size_t)(eq - environ[i]) : strlen(environ[i]));
        if (!names[i]) abort();
    }
    qsort(names, n, sizeof *names, cmp_str);
    json_t *env = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(env, json_string(names[i]));
        free(names[i]);
    }
    free(names);
    demo_call_finish_json(c, json_pack("{s:s,s:s,s:o,s:o}", "server", "demo-atlassian",
        "user", ATL_BOT, "credentials", creds, "environment", env));
}

/* ------------------------------------------------------------------ catalogue */

#define READ(title)  "'annotations':{'title':'" title "','readOnlyHint':true,'openWorldHint':true}"
#define WRITE(title, destructive, idempotent) \
    "'annotations':{'title':'" title "','readOnlyHint':false,'destructiveHint':" destructive \
    ",'idempotentHint':" idempotent ",'openWorldHint':true}"
#define SCHEMA(props, req) \
    "'inputSchema':{'type':'object','properties':{" props "},'required':[" req "],'additionalProperties':false}"
#define P_ISSUE_KEY "'issue_key':{'type':'string','minLength':1,'description':'Jira issue key (e.g. OPS-1)'}"
#define P_WS "'workspace':{'type':'string','minLength':1,'description':'Bitbucket workspace slug (e.g. acme)'}"
#define P_REPO "'repo_slug':{'type':'string','minLength':1,'description':'Repository slug (e.g. api)'}"
#define P_PR "'pull_request_id':{'type':'integer','minimum':1,'description':'Pull request id'}"

static const demo_tool atl_tools[] = {
    { "jira_get_issue", t_get_issue,
      "{'description':'Get details of a specific Jira issue including its fields and comments.',"
      SCHEMA(P_ISSUE_KEY ","
             "'fields':{'type':'string','description':'Comma-separated fields to return (e.g. summary,status) or *all'},"
             "'expand':{'type':'string','description':'Fields to expand (accepted, no effect here)'},"
             "'comment_limit':{'type':'integer','minimum':0,'maximum':100,'description':'Maximum number of comments (default 10)'}",
             "'issue_key'") "," READ("Get Issue") "}" },
    { "jira_search", t_search,
      "{'description':'Search Jira issues using JQL (e.g. project = OPS AND status = \\u0022In Progress\\u0022).',"
      SCHEMA("'jql':{'type':'string','minLength':1,'description':'JQL query string'},"
             "'fields':{'type':'string','description':'Comma-separated fields to return or *all'},"
             "'limit':{'type':'integer','minimum':1,'maximum':50,'description':'Maximum number of results (default 10)'},"
             "'start_at':{'type':'integer','minimum':0,'description':'Index of the first result (default 0)'},"
             "'projects_filter':{'type':'string','description':'Comma-separated project keys to restrict to'}",
             "'jql'") "," READ("Search Issues") "}" },
    { "jira_create_issue", t_create_issue,
      "{'description':'Create a new Jira issue.',"
      SCHEMA("'project_key':{'type':'string','minLength':1,'description':'Project key (OPS, FIN or SEC)'},"
             "'summary':{'type':'string','minLength':1,'description':'Summary (title) of the issue'},"
             "'issue_type':{'type':'string','enum':['Task','Bug','Story','Epic','Subtask'],'description':'Issue type'},"
             "'assignee':{'type':'string','description':'Assignee user name'},"
             "'description':{'type':'string','description':'Issue description'},"
             "'components':{'type':'string','description':'Comma-separated component names'},"
             "'additional_fields':{'type':'object','description':'More fields: priority, labels'}",
             "'project_key','summary','issue_type'") "," WRITE("Create Issue", "false", "false") "}" },
    { "jira_update_issue", t_update_issue,
      "{'description':'Update fields of an existing Jira issue.',"
      SCHEMA(P_ISSUE_KEY ","
             "'fields':{'type':'object','description':'Fields to set: summary, description, assignee, priority, labels, components'},"
             "'additional_fields':{'type':'object','description':'More fields to set, same names as fields'}",
             "'issue_key','fields'") "," WRITE("Update Issue", "true", "true") "}" },
    { "jira_get_transitions", t_get_transitions,
      "{'description':'Get the workflow transitions available for a Jira issue.',"
      SCHEMA(P_ISSUE_KEY, "'issue_key'") "," READ("Get Transitions") "}" },
    { "jira_transition_issue", t_transition,
      "{'description':'Transition a Jira issue to a new status.',"
      SCHEMA(P_ISSUE_KEY ","
             "'transition_id':{'type':'string','minLength':1,'description':'Transition id from jira_get_transitions'},"
             "'fields':{'type':'object','description':'Fields to set during the transition'},"
             "'comment':{'type':'string','description':'Comment to add during the transition'}",
             "'issue_key','transition_id'") "," WRITE("Transition Issue", "false", "false") "}" },
    { "jira_add_comment", t_add_comment,
      "{'description':'Add a comment to a Jira issue.',"
      SCHEMA(P_ISSUE_KEY ",'comment':{'type':'string','minLength':1,'description':'Comment text'}",
             "'issue_key','comment'") "," WRITE("Add Comment", "false", "false") "}" },
    { "confluence_search", t_conf_search,
      "{'description':'Search Confluence pages by text in their title or content.',"
      SCHEMA("'query':{'type':'string','minLength':1,'description':'Text to search for'},"
             "'limit':{'type':'integer','minimum':1,'maximum':50,'description':'Maximum number of results (default 10)'},"
             "'spaces_filter':{'type':'string','description':'Comma-separated space keys to restrict to'}",
             "'query'") "," READ("Search Content") "}" },
    { "confluence_get_page", t_get_page,
      "{'description':'Get a Confluence page by id, or by title and space key.',"
      SCHEMA("'page_id':{'type':'string','description':'Page id (e.g. 101)'},"
             "'title':{'type':'string','description':'Page title, with space_key'},"
             "'space_key':{'type':'string','description':'Space key, with title'},"
             "'include_metadata':{'type':'boolean','description':'Return metadata too (default true)'},"
             "'convert_to_markdown':{'type':'boolean','description':'Return Markdown (default true)'}",
             "") "," READ("Get Page") "}" },
    { "confluence_create_page", t_create_page,
      "{'description':'Create a new Confluence page.',"
      SCHEMA("'space_key':{'type':'string','minLength':1,'description':'Space key (ENG or HR)'},"
             "'title':{'type':'string','minLength':1,'description':'Page title'},"
             "'content':{'type':'string','description':'Page content'},"
             "'parent_id':{'type':'string','description':'Parent page id'},"
             "'content_format':{'type':'string','enum':['markdown','wiki','storage'],'description':'Content format (default markdown)'}",
             "'space_key','title','content'") "," WRITE("Create Page", "false", "false") "}" },
    { "confluence_update_page", t_update_page,
      "{'description':'Update an existing Confluence page.',"
      SCHEMA("'page_id':{'type':'string','minLength':1,'description':'Page id'},"
             "'title':{'type':'string','minLength':1,'description':'New page title'},"
             "'content':{'type':'string','description':'New page content'},"
             "'is_minor_edit':{'type':'boolean','description':'Minor edit (no notifications)'},"
             "'version_comment':{'type':'string','description':'Comment for the new version'},"
             "'parent_id':{'type':'string','description':'New parent page id'},"
             "'content_format':{'type':'string','enum':['markdown','wiki','storage'],'description':'Content format (default markdown)'}",
             "'page_id','title','content'") "," WRITE("Update Page", "true", "true") "}" },
    { "bitbucket_list_repositories", t_list_repos,
      "{'description':'List the repositories of a Bitbucket workspace.',"
      SCHEMA(P_WS, "'workspace'") "," READ("List Repositories") "}" },
    { "bitbucket_list_branches", t_list_branches,
      "{'description':'List the branches of a repository.',"
      SCHEMA(P_WS "," P_REPO, "'workspace','repo_slug'") "," READ("List Branches") "}" },
    { "bitbucket_get_branch", t_get_branch,
      "{'description':'Get one branch of a repository.',"
      SCHEMA(P_WS "," P_REPO ",'branch':{'type':'string','minLength':1,'description':'Branch name'}",
             "'workspace','repo_slug','branch'") "," READ("Get Branch") "}" },
    { "bitbucket_create_branch", t_create_branch,
      "{'description':'Create a branch from another branch (default: the main branch).',"
      SCHEMA(P_WS "," P_REPO ",'branch':{'type':'string','minLength':1,'description':'New branch name'},"
             "'source_branch':{'type':'string','description':'Branch to start from (default main)'}",
             "'workspace','repo_slug','branch'") "," WRITE("Create Branch", "false", "false") "}" },
    { "bitbucket_list_pull_requests", t_list_prs,
      "{'description':'List pull requests of a repository.',"
      SCHEMA(P_WS "," P_REPO ",'state':{'type':'string','enum':['OPEN','MERGED','DECLINED','ALL'],'description':'Filter by state (default OPEN)'}",
             "'workspace','repo_slug'") "," READ("List Pull Requests") "}" },
    { "bitbucket_get_pull_request", t_get_pr,
      "{'description':'Get one pull request.',"
      SCHEMA(P_WS "," P_REPO "," P_PR, "'workspace','repo_slug','pull_request_id'") ","
      READ("Get Pull Request") "}" },
    { "bitbucket_create_pull_request", t_create_pr,
      "{'description':'Open a pull request.',"
      SCHEMA(P_WS "," P_REPO ",'title':{'type':'string','minLength':1,'description':'Pull request title'},"
             "'source_branch':{'type':'string','minLength':1,'description':'Source branch'},"
             "'destination_branch':{'type':'string','minLength':1,'description':'Destination branch'},"
             "'description':{'type':'string','description':'Pull request description'},"
             "'close_source_branch':{'type':'boolean','description':'Delete the source branch after merge'}",
             "'workspace','repo_slug','title','source_branch','destination_branch'") ","
      WRITE("Create Pull Request", "false", "false") "}" },
    { "bitbucket_merge_pull_request", t_merge_pr,
      "{'description':'Merge an open pull request into its destination branch.',"
      SCHEMA(P_WS "," P_REPO "," P_PR ",'message':{'type':'string','description':'Merge commit message'},"
             "'merge_strategy':{'type':'string','enum':['merge_commit','squash','fast_forward'],'description':'Merge strategy (default merge_commit)'}",
             "'workspace','repo_slug','pull_request_id'") ","
      WRITE("Merge Pull Request", "true", "false") "}" },
    { "demo_whoami", t_whoami,
      "{'description':'Which upstream credentials this server holds (presence only, never values) and the names of its environment variables.',"
      SCHEMA("", "") "," READ("Who Am I") "}" },
};

/* ------------------------------------------------------------------ prompts */

static int p_summarize(demo_server *s, const json_t *args, json_t *messages, tg_error *err)
{
    atl_state *st = demo_state(s);
    const char *key = arg_str(args, "issue_key");
    json_t *issue = json_object_get(st->issues, key);
    if (!issue) return tg_error_set(err, "issue %s does not exist", key);
    char *text = tg_json_dump(issue, NULL);
    json_array_append_new(messages, json_pack("{s:s,s:{s:s,s:{s:s+,s:s,s:s}}}", "role", "user",
        "content", "type", "resource", "resource", "uri", "jira://issue/", key,
        "mimeType", "application/json", "text", text));
    free(text);
    json_array_append_new(messages, json_pack("{s:s,s:{s:s,s:s}}", "role", "user", "content",
        "type", "text", "text", "Summarize the Jira issue above for a stand-up: status, owner, next step."));
    return 0;
}

static int p_project_status(demo_server *s, const json_t *args, json_t *messages, tg_error *err)
{
    atl_state *st = demo_state(s);
    const char *pkey = arg_str(args, "project_key");
    if (!json_object_get(st->projects, pkey)) return tg_error_set(err, "project %s does not exist", pkey);
    tg_buf b = TG_BUF_INIT;
    tg_buf_printf(&b, "Write a short status report for Jira project %s from these issues:\n", pkey);
    const char *key;
    json_t *issue;
    json_object_foreach(st->issues, key, issue)
        if (!strcmp(json_string_value(json_object_get(issue, "project")), pkey))
            tg_buf_printf(&b, "- %s [%s] %s\n", key,
                          json_string_value(json_object_get(issue, "status")),
                          json_string_value(json_object_get(issue, "summary")));
    json_array_append_new(messages, json_pack("{s:s,s:{s:s,s:s}}", "role", "user", "content",
                                              "type", "text", "text", b.data));
    tg_buf_free(&b);
    return 0;
}

static const demo_prompt atl_prompts[] = {
    { "summarize_issue", p_summarize,
      "{'title':'Summarize a Jira issue','description':'Summarize one Jira issue for a stand-up',"
      "'arguments':[{'name':'issue_key','description':'Jira issue key (e.g. OPS-1)','required':true}]}" },
    { "project_status", p_project_status,
      "{'title':'Project status report','description':'Status report over the issues of a Jira project',"
      "'arguments':[{'name':'project_key','description':'Project key (OPS, FIN or SEC)','required':true}]}" },
};

/* ------------------------------------------------------------------ resources */

static void atl_resources(demo_server *s, json_t *out)
{
    atl_state *st = demo_state(s);
    const char *key;
    json_t *v;
    json_object_foreach(st->issues, key, v)
        json_array_append_new(out, json_pack("{s:s+,s:s,s:O,s:s}", "uri", "jira://issue/", key,
            "name", key, "title", json_object_get(v, "summary"), "mimeType", "application/json"));
    json_object_foreach(st->pages, key, v)
        json_array_append_new(out, json_pack("{s:s+,s:s+,s:O,s:s}", "uri", "confluence://page/", key,
            "name", "page-", key, "title", json_object_get(v, "title"), "mimeType", "application/json"));
}

static json_t *atl_read(demo_server *s, const char *uri, tg_error *err)
{
    atl_state *st = demo_state(s);
    static const char jira[] = "jira://issue/", conf[] = "confluence://page/";
    json_t *v = NULL;
    if (!strncmp(uri, jira, sizeof jira - 1))
        v = json_object_get(st->issues, uri + sizeof jira - 1);
    else if (!strncmp(uri, conf, sizeof conf - 1))
        v = json_object_get(st->pages, uri + sizeof conf - 1);
    if (!v) {
        tg_error_set(err, "resource not found: %s", uri);
        return NULL;
    }
    char *text = tg_json_dump(v, NULL);
    json_t *res = json_pack("{s:[{s:s,s:s,s:s}]}", "contents", "uri", uri,
                            "mimeType", "application/json", "text", text);
    free(text);
    return res;
}

static json_t *keys_of(const json_t *obj)
{
    json_t *out = json_array();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
        json_array_append_new(out, json_string(k));
    return out;
}

static json_t *atl_complete(demo_server *s, const json_t *ref, const char *arg)
{
    atl_state *st = demo_state(s);
    if (!strcmp(arg, "issue_key")) return keys_of(st->issues);
    if (!strcmp(arg, "project_key")) return keys_of(st->projects);
    if (!strcmp(arg, "page_id")) return keys_of(st->pages);
    return json_array();
}

const demo_mode demo_atlassian_mode = {
    .instructions = "A demo Atlassian site: Jira (projects OPS, FIN, SEC), Confluence "
                    "(spaces ENG, HR) and Bitbucket (workspace acme, repositories api and web).",
    .tools = atl_tools,
    .ntools = sizeof atl_tools / sizeof atl_tools[0],
    .prompts = atl_prompts,
    .nprompts = sizeof atl_prompts / sizeof atl_prompts[0],
    .init = atl_init,
    .fini = atl_fini,
    .resources = atl_resources,
    .templates_def = "[{'uriTemplate':'jira://issue/{issue_key}','name':'jira-issue',"
                     "'description':'A Jira issue as JSON','mimeType':'application/json'},"
                     "{'uriTemplate':'confluence://page/{page_id}','name':'confluence-page',"
                     "'description':'A Confluence page as JSON','mimeType':'application/json'}]",
    .read = atl_read,
    .complete = atl_complete,
};
