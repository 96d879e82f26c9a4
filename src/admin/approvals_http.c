/*
 * approvals_http.c — the approvers' API on the admin listener (tg_admin.h,
 * docs/approvers.md): GET /approvals, GET /approvals/{id}, POST /approvals/{id}/approve
 * and /deny. It turns HTTP into calls of the approvals service (src/approvals) and the
 * service's answers into JSON; who may decide what is the service's (and the policy's)
 * business, not this file's.
 *
 * Order of checks, so that an unauthenticated client learns nothing about requests:
 * the route's shape and method (404 / 405: no data involved), then the approver
 * (tg_approvals_authenticate, possibly waiting for a JWKS fetch), then the query or
 * body (400), then the service (404 for an unknown id only once authenticated).
 * Credentials travel only in the Authorization header — never cookies — so a page on
 * another origin cannot make a browser send them: no CSRF token is needed.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_int.h"
#include "approvals/tg_approvals.h"

#define COMPONENT "admin"
#define MAX_ID 64
#define MAX_COMMENT 2000
#define MAX_LIMIT 500

typedef enum { OP_LIST, OP_GET, OP_APPROVE, OP_DENY } apr_op;

/* One API request from the route match to its answer; lives in req->arena.
 * Invariant: `pending` is non-NULL only while the approver's authentication runs
 * asynchronously, and the front's abort callback is registered exactly then (a client
 * that leaves cancels the authentication, so the callback never sees a dead req). */
typedef struct apr_call {
    tg_approvals *ap;
    tg_http_req *req;
    apr_op op;
    const char *id;                  /* [a-z0-9_]{1,64}; NULL for OP_LIST */
    tg_approver_pending *pending;
    bool authenticated;              /* the authentication callback has run */
} apr_call;

/* Every API answer: JSON that must not be cached (it names people and calls). extra
 * (at most 1: WWW-Authenticate or Allow) goes first. Takes body's reference. */
static void respond(tg_http_req *req, int status, const tg_http_header *extra, json_t *body)
{
    tg_http_header h[3];
    size_t n = 0;
    if (extra) h[n++] = *extra;
    h[n++] = (tg_http_header){"Cache-Control", 13, "no-store", 8};
    h[n++] = (tg_http_header){"X-Content-Type-Options", 22, "nosniff", 7};
    size_t len;
    char *s = tg_json_dump(body, &len);
    json_decref(body);
    if (!s) abort();
    tg_http_respond_json(req, status, h, n, s, len);
    free(s);
}

static void respond_error(tg_http_req *req, int status, const tg_http_header *extra,
                          const char *code, const char *message)
{
    respond(req, status, extra, json_pack("{s:s,s:s}", "error", code, "message", message));
}

static void refuse_method(tg_http_req *req, const char *allow)
{
    tg_http_header h = {"Allow", 5, allow, strlen(allow)};
    respond_error(req, 405, &h, "METHOD_NOT_ALLOWED",
                  tg_arena_sprintf(req->arena, "%s is not allowed here; use %s",
                                   req->method_str, allow));
}

/* Matches the approvals paths: 1 (op and id set; id NULL when the shape is right but the
 * id is not valid: the caller answers 404), or 0 for a path that is not ours. */
static int match(tg_http_req *req, apr_op *op, const char **id)
{
    static const char prefix[] = "/approvals";
    const char *p = req->path;
    *id = NULL;
    if (strncmp(p, prefix, sizeof prefix - 1) != 0) return 0;
    p += sizeof prefix - 1;
    if (*p == '\0') {
        *op = OP_LIST;
        return 1;
    }
    if (*p != '/') return 0;   /* /approvalsX is someone else's 404 */
    p++;
    size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");
    const char *rest = p + n;
    *op = OP_GET;
    if (strcmp(rest, "/approve") == 0) *op = OP_APPROVE;
    else if (strcmp(rest, "/deny") == 0) *op = OP_DENY;
    else if (*rest != '\0') return 1;   /* /approvals/<anything else>: 404, id stays NULL */
    if (n >= 1 && n <= MAX_ID) *id = tg_arena_strndup(req->arena, p, n);
    return 1;
}

/* ?state=S&limit=N, each at most once, nothing else: 0, or -1 with *why. */
static int parse_query(tg_http_req *req, const char **state, size_t *limit, const char **why)
{
    *state = NULL;
    *limit = 0;
    if (!req->query) return 0;
    bool seen_state = false, seen_limit = false;
    for (const char *p = req->query; *p;) {
        size_t n = strcspn(p, "&");
        const char *eq = memchr(p, '=', n);
        size_t klen = eq ? (size_t)(eq - p) : n;
        const char *v = eq ? eq + 1 : p + n;
        size_t vlen = (size_t)(p + n - v);
        if (klen == 5 && memcmp(p, "state", 5) == 0 && !seen_state) {
            seen_state = true;
            for (int s = TG_APPROVAL_PENDING; s <= TG_APPROVAL_USED; s++) {
                const char *name = tg_approval_state_name((tg_approval_state)s);
                if (strlen(name) == vlen && memcmp(name, v, vlen) == 0) *state = name;
            }
            if (!*state) {
                *why = "state must be one of pending, approved, denied, expired, used";
                return -1;
            }
        } else if (klen == 5 && memcmp(p, "limit", 5) == 0 && !seen_limit) {
            seen_limit = true;
            size_t v_n = 0;
            bool digits = vlen >= 1 && vlen <= 3 && strspn(v, "0123456789") >= vlen;
            for (size_t i = 0; digits && i < vlen; i++) v_n = v_n * 10 + (size_t)(v[i] - '0');
            if (!digits || v_n < 1 || v_n > MAX_LIMIT) {
                *why = "limit must be a number from 1 to 500";
                return -1;
            }
            *limit = v_n;
        } else {
            *why = "the query takes state= and limit=, each at most once";
            return -1;
        }
        p += n;
        if (*p == '&' && *++p == '\0') {
            *why = "the query ends with '&'";
            return -1;
        }
    }
    return 0;
}

/* The body of approve / deny: empty, or exactly {"comment": "<at most 2000 bytes>"}.
 * 0 with *comment (NULL without one; valid as long as *doc), or -1 with *why. */
static int parse_body(tg_http_req *req, json_t **doc, const char **comment, const char **why)
{
    *doc = NULL;
    *comment = NULL;
    if (req->body_len == 0) return 0;
    tg_error err;
    json_t *v = tg_json_parse(req->body, req->body_len, 4, &err);
    if (!v) {
        *why = tg_arena_sprintf(req->arena, "the body is not valid JSON: %s", err.msg);
        return -1;
    }
    const char *key;
    json_t *val;
    if (!json_is_object(v)) goto bad;
    json_object_foreach(v, key, val) {
        if (strcmp(key, "comment") != 0 || !json_is_string(val)) goto bad;
        if (json_string_length(val) > MAX_COMMENT) {
            json_decref(v);
            *why = "the comment is longer than 2000 bytes";
            return -1;
        }
        *comment = json_string_value(val);
    }
    *doc = v;
    return 0;
bad:
    json_decref(v);
    *why = "the body must be a JSON object {\"comment\": \"…\"} (the comment is optional)";
    return -1;
}

static void run_list(apr_call *c)
{
    const char *state, *why;
    size_t limit;
    if (parse_query(c->req, &state, &limit, &why) < 0) {
        respond_error(c->req, 400, NULL, "BAD_REQUEST", why);
        return;
    }
    tg_error err;
    json_t *list = tg_approvals_list(c->ap, state, limit, &err);
    if (!list) {
        tg_log_error(COMPONENT, "GET /approvals: %s", err.msg);
        respond_error(c->req, 500, NULL, "STORE_ERROR", err.msg);
        return;
    }
    respond(c->req, 200, NULL, list);   /* a JSON array, newest first */
}

static void run_get(apr_call *c)
{
    tg_error err;
    if (c->req->query) {
        respond_error(c->req, 400, NULL, "BAD_REQUEST", "GET /approvals/{id} takes no query");
        return;
    }
    json_t *one = tg_approvals_get(c->ap, c->id, &err);
    if (one) {
        respond(c->req, 200, NULL, one);
    } else if (err.msg[0] == '\0') {
        respond_error(c->req, 404, NULL, "NOT_FOUND",
                      tg_arena_sprintf(c->req->arena, "no approval request %s", c->id));
    } else {
        tg_log_error(COMPONENT, "GET /approvals/%s: %s", c->id, err.msg);
        respond_error(c->req, 500, NULL, "STORE_ERROR", err.msg);
    }
}

static void run_decide(apr_call *c, const tg_approver *who)
{
    bool approve = c->op == OP_APPROVE;
    const char *comment, *why;
    json_t *doc;
    if (c->req->query) {
        respond_error(c->req, 400, NULL, "BAD_REQUEST", "approve and deny take no query");
        return;
    }
    if (parse_body(c->req, &doc, &comment, &why) < 0) {
        respond_error(c->req, 400, NULL, "BAD_REQUEST", why);
        return;
    }
    json_t *out = NULL;
    int status = 500;
    const char *code = "STORE_ERROR";
    tg_error err = {""};
    int r = tg_approvals_decide(c->ap, c->id, who, approve, comment, &out, &status, &code,
                                &err);
    json_decref(doc);
    if (r < 0) {
        tg_log_warn(COMPONENT, "%s /approvals/%s/%s by %s from %s refused: %d %s: %s",
                    c->req->method_str, c->id, approve ? "approve" : "deny", who->user,
                    c->req->client_ip, status, code, err.msg);
        respond_error(c->req, status, NULL, code, err.msg);
        return;
    }
    tg_log_info(COMPONENT, "approval %s %s by %s (%s) from %s", c->id,
                approve ? "approved" : "denied", who->user, who->method, c->req->client_ip);
    respond(c->req, 200, NULL, out);
}

static void on_abort(tg_http_req *req, void *user)
{
    apr_call *c = user;
    (void)req;
    tg_approvals_authenticate_cancel(c->pending);
    c->pending = NULL;
}

static void on_approver(void *ud, int status, const tg_approver *who, const char *why)
{
    apr_call *c = ud;
    c->authenticated = true;
    if (c->pending) {   /* asynchronous: the client can no longer abort what is done */
        tg_http_req_on_abort(c->req, NULL, NULL);
        c->pending = NULL;
    }
    if (status != 0) {
        static const tg_http_header www = {"WWW-Authenticate", 16,
                                           "Bearer realm=\"toolgate approvals\"", 33};
        const char *code = status == 401 ? "UNAUTHORIZED"
                         : status == 403 ? "FORBIDDEN" : "BAD_REQUEST";
        if (status != 401 && status != 403) status = 400;
        tg_log_warn(COMPONENT, "%s %s from %s refused: %s", c->req->method_str, c->req->path,
                    c->req->client_ip, why);
        respond_error(c->req, status, status == 401 ? &www : NULL, code, why);
        return;
    }
    switch (c->op) {
    case OP_LIST: run_list(c); break;
    case OP_GET: run_get(c); break;
    case OP_APPROVE:
    case OP_DENY: run_decide(c, who); break;
    }
}

int tg_admin_approvals_route(tg_approvals *ap, tg_http_req *req)
{
    apr_op op;
    const char *id;
    if (!match(req, &op, &id)) return 0;
    if (op != OP_LIST && !id) {
        respond_error(req, 404, NULL, "NOT_FOUND",
                      "no such approvals route: /approvals, /approvals/{id}, "
                      "/approvals/{id}/approve, /approvals/{id}/deny (ids are [a-z0-9_], "
                      "at most 64)");
        return 1;
    }
    bool read = op == OP_LIST || op == OP_GET;
    if (req->method != (read ? TG_HTTP_GET : TG_HTTP_POST)) {
        refuse_method(req, read ? "GET" : "POST");
        return 1;
    }
    if (tg_http_req_header_count(req, "Authorization") > 1) {
        respond_error(req, 400, NULL, "BAD_REQUEST", "send one Authorization header");
        return 1;
    }
    apr_call *c = tg_arena_calloc(req->arena, 1, sizeof *c);
    *c = (apr_call){.ap = ap, .req = req, .op = op, .id = id};
    size_t len;
    const char *authz = tg_http_req_header(req, "Authorization", &len);
    tg_approver_pending *p = tg_approvals_authenticate(ap, authz, req->client_ip,
                                                       req->arena, on_approver, c);
    if (!c->authenticated) {
        c->pending = p;
        tg_http_req_on_abort(req, on_abort, c);
    }
    return 1;
}
