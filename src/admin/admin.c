/*
 * admin.c — the admin listener (tg_admin.h): routes GET /healthz, GET /readyz and
 * POST /reload on its own tg_http_server, after the bearer-token check. The work behind
 * readiness and reload is the caller's (serve.c wires the router and the reload); this
 * file only decides who may ask and how the answer looks. With an approvals service, the
 * approvers' API (approvals_http.c) and the web inbox (inbox.c) are routed first: they
 * are not operator routes, so admin.token neither guards nor opens them.
 */
#include "admin/tg_admin.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_int.h"
#include "front/tg_front.h"

#define COMPONENT "admin"

/* Invariant: conf and the ops' ctx outlive the listener; token_hash is the SHA-256 of
 * conf->token when there is one (the comparison is on hashes, so its time does not
 * depend on how much of a wrong token matches, nor on the token's length). */
struct tg_admin {
    tg_http_server *http;
    const tg_admin_conf *conf;
    tg_admin_ops ops;
    char token_hash[65];
};

static const tg_http_header text_plain = {"Content-Type", 12, "text/plain; charset=utf-8", 25};

static void respond_text(tg_http_req *req, int status, const char *text)
{
    tg_http_respond(req, status, &text_plain, 1, text, strlen(text));
}

static void respond_json(tg_http_req *req, int status, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!s) abort();
    tg_http_respond_json(req, status, NULL, 0, s, strlen(s));
    free(s);
}

static bool authorized(const tg_admin *a, const tg_http_req *req)
{
    if (!a->conf->token) return true;
    size_t len;
    const char *h = tg_http_req_header(req, "Authorization", &len);
    if (!h || tg_http_req_header_count(req, "Authorization") != 1 || len < 7 ||
        strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    char got[65];
    tg_sha256_hex(h + 7, len - 7, got);
    return tg_ct_equal(got, 64, a->token_hash, 64) == 1;
}

static void reload(tg_admin *a, tg_http_req *req)
{
    const char *version = NULL;
    tg_error err;
    if (a->ops.reload(a->ops.ctx, &version, &err) < 0) {
        tg_log_error(COMPONENT, "POST /reload from %s refused, the running policy stays in "
                     "force: %s", req->client_ip, err.msg);
        respond_json(req, 400, json_pack("{s:b,s:s}", "reloaded", 0, "error", err.msg));
        return;
    }
    tg_log_info(COMPONENT, "POST /reload from %s: policy version %s", req->client_ip,
                version ? version : "(no policy)");
    respond_json(req, 200, json_pack("{s:b,s:s?}", "reloaded", 1, "policy_version", version));
}

static void ready(tg_admin *a, tg_http_req *req)
{
    tg_buf why = TG_BUF_INIT;
    if (a->ops.ready(a->ops.ctx, &why)) {
        respond_text(req, 200, "ready\n");
    } else {
        tg_buf_printf(&why, "\n");
        tg_buf msg = TG_BUF_INIT;
        tg_buf_printf(&msg, "not ready: %s", why.data);
        respond_text(req, 503, msg.data);
        tg_buf_free(&msg);
    }
    tg_buf_free(&why);
}

/* The routes: path, the one method it answers, and what runs. */
typedef struct route {
    const char *path;
    tg_http_method method;
    const char *allow;
    void (*run)(tg_admin *a, tg_http_req *req);
} route;

static void healthz(tg_admin *a, tg_http_req *req)
{
    (void)a;
    respond_text(req, 200, "ok\n");
}

static const route routes[] = {
    {"/healthz", TG_HTTP_GET, "GET", healthz},
    {"/readyz", TG_HTTP_GET, "GET", ready},
    {"/reload", TG_HTTP_POST, "POST", reload},
};

static void on_request(tg_http_req *req, void *ctx)
{
    tg_admin *a = ctx;
    if (a->ops.approvals &&
        (tg_admin_inbox_route(req) || tg_admin_approvals_route(a->ops.approvals, req)))
        return;
    if (!authorized(a, req)) {
        static const tg_http_header h[] = {
            {"WWW-Authenticate", 16, "Bearer realm=\"toolgate-admin\"", 29},
            {"Content-Type", 12, "text/plain; charset=utf-8", 25},
        };
        static const char body[] = "admin token required: Authorization: Bearer <admin.token>\n";
        tg_log_warn(COMPONENT, "%s %s from %s refused: missing or wrong admin token",
                    req->method_str, req->path, req->client_ip);
        tg_http_respond(req, 401, h, 2, body, sizeof body - 1);
        return;
    }
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const route *r = &routes[i];
        if (strcmp(req->path, r->path) != 0) continue;
        if (req->method != r->method) {
            tg_http_header allow = {"Allow", 5, r->allow, strlen(r->allow)};
            tg_http_respond(req, 405, &allow, 1, NULL, 0);
            return;
        }
        r->run(a, req);
        return;
    }
    respond_text(req, 404, a->ops.approvals
                 ? "not found: the admin listener serves /healthz, /readyz, /reload, "
                   "/approvals, /inbox\n"
                 : "not found: the admin listener serves /healthz, /readyz, /reload\n");
}

tg_admin *tg_admin_new(uv_loop_t *loop, const tg_admin_conf *conf, const tg_limits *limits,
                       const tg_admin_ops *ops)
{
    tg_admin *a = calloc(1, sizeof *a);
    if (!a) abort();
    a->conf = conf;
    a->ops = *ops;
    if (conf->token) tg_sha256_hex(conf->token, strlen(conf->token), a->token_hash);
    a->http = tg_http_server_new(loop, limits, on_request, a);
    return a;
}

int tg_admin_listen(tg_admin *a, tg_error *err)
{
    const tg_admin_conf *conf = a->conf;
    tg_error e;
    if (tg_http_server_listen(a->http, conf->listen_host, conf->listen_port, &e) < 0)
        return tg_error_set(err, "admin listener (%s): %s", conf->where, e.msg);
    bool v6 = strchr(conf->listen_host, ':') != NULL;
    tg_log_info(COMPONENT, "admin listener on http://%s%s%s:%u (%s)", v6 ? "[" : "",
                conf->listen_host, v6 ? "]" : "", (unsigned)tg_admin_port(a),
                conf->token ? "bearer token required"
                            : "no admin.token: loopback only, any local process may use it");
    return 0;
}

uint16_t tg_admin_port(const tg_admin *a)
{
    return tg_http_server_port(a->http);
}

void tg_admin_close(tg_admin *a, void (*done)(void *arg), void *arg)
{
    tg_http_server_close(a->http, done, arg);
}

void tg_admin_free(tg_admin *a)
{
    if (!a) return;
    tg_http_server_free(a->http);
    free(a);
}
