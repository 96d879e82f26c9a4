/*
 * serve.c — `toolgate serve`: puts the configuration, the HTTP front (src/front), the
 * MCP router (src/mcp) and the upstream transports (src/upstream) on one libuv loop,
 * and owns what belongs to the process: signals, start-up failures, graceful shutdown.
 *
 * Start-up order: load the configuration → apply --listen/--port → transports' global
 * set-up → front created and bound (so a port-0 listen is known before anyone holds the
 * configuration and the default public URL — the OAuth audience — can name the real
 * port) → the gates, in dependency order: store (`store:`) → audit writer (`audit:`) →
 * API-key store on that store → authenticator (`auth:`, unless off) → policy (`policy:`,
 * when present) → approvals service (`approvals:`, when present) → router (it takes its
 * own reference to the configuration, starts shared upstreams and borrows the gates) →
 * admin listener (`admin:`, when present) → signals → loop. No request can arrive before the
 * router exists: requests are only read once the loop runs. Any failure is logged with
 * its reason and exits 1.
 *
 * Reload (SIGHUP, admin POST /reload): the whole file is loaded and validated again
 * (tg_config_load), a new policy built from it and, when the `auth:` section changed, a
 * new authenticator; only `policy:`, `catalog:`, `auth:` and `approvals:` (and the files they name)
 * may differ from the running configuration — any other top-level section that changed
 * (listen, store, upstreams, limits …) refuses the reload with its name, because those
 * are bound at start (sockets, child processes, the store). On any error nothing
 * changes and the error is logged with its file:line:col; on success the router swaps
 * (tg_mcp_set_auth, tg_mcp_set_policy: work in flight finishes under the old ones) and
 * the approvals service follows (new configuration, policy, authenticator).
 * docs/operations.md.
 *
 * Shutdown (SIGINT/SIGTERM): the front stops accepting and the router ends sessions and
 * fails in-flight calls at the same time (an in-flight response waits on its upstream,
 * so closing the front first and the router after could wait a whole call timeout);
 * when both report done, the signal handles close and the audit writer closes (final
 * checkpoint, pending writes), then the store; the loop runs dry and everything is
 * freed in reverse order of creation. A second signal exits at once.
 */
#include <jansson.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "admin/tg_admin.h"
#include "approvals/tg_approvals.h"
#include "audit/tg_audit.h"
#include "auth/tg_auth.h"
#include "cli/cli_int.h"
#include "common/tg_common.h"
#include "config/tg_config.h"
#include "front/tg_front.h"
#include "mcp/tg_mcp.h"
#include "policy/tg_policy.h"
#include "store/tg_store.h"
#include "upstream/tg_upstream.h"

#define LOG_COMPONENT "toolgate"

/* Invariants: `mcp` is non-NULL whenever the loop runs with `http` listening (see the
 * start-up order above); `pending` counts shutdown steps (front close, router shutdown)
 * not yet reported done, and is meaningful only once `stopping` is set. The gates are
 * NULL when not configured (auth off, no policy section, no API keys) or not built yet;
 * `store` and `audit` are handed to their close functions once (close_records) and set
 * to NULL then. */
typedef struct server {
    uv_loop_t loop;
    tg_config *cfg;
    tg_http_server *http;
    tg_store *store;
    tg_audit *audit;
    tg_apikey_store *keys;
    tg_auth *auth;
    tg_policy *policy; /* until handed to the router */
    const char *policy_version; /* of the router's current policy, or NULL */
    json_t *file;      /* the running configuration file as JSON (reload comparison) */
    tg_mcp *mcp;
    tg_admin *admin;   /* the admin listener (`admin:`), or NULL */
    tg_approvals *approvals; /* `approvals:`, or NULL; its policy and authenticator are
                                kept equal to the router's current ones */
    uv_signal_t signals[3];
    int nsignals;      /* signal handles initialised (closed when shutdown completes) */
    int transports;    /* tg_upstream_global_init succeeded: cleanup is due */
    int stopping;
    int pending;
} server;

static const int handled_signals[3] = {SIGINT, SIGTERM, SIGHUP};

static void on_request(tg_http_req *req, void *ctx)
{
    server *s = ctx;
    tg_mcp_handle(req, s->mcp);
}

static void audit_closed(void *arg)
{
    server *s = arg;
    tg_store_close(s->store);
    s->store = NULL;
}

/* The audit trail, then its store: after the router, so every record it appended is
 * written (or failed) before the store goes. */
static void close_records(server *s)
{
    /* approvals append records too: no session is left to watch a request by now */
    if (s->approvals) tg_approvals_close(s->approvals);
    if (s->audit) {
        tg_audit *a = s->audit;
        s->audit = NULL;
        tg_audit_close(a, audit_closed, s);
    } else if (s->store) {
        audit_closed(s);
    }
}

static void step_done(void *arg)
{
    server *s = arg;
    if (--s->pending > 0)
        return;
    for (int i = 0; i < s->nsignals; i++)
        uv_close((uv_handle_t *)&s->signals[i], NULL);
    s->nsignals = 0;
    close_records(s);
}

static void begin_shutdown(server *s)
{
    s->stopping = 1;
    s->pending = 1 + (s->mcp != NULL) + (s->admin != NULL);
    tg_http_server_close(s->http, step_done, s);
    if (s->admin)
        tg_admin_close(s->admin, step_done, s);
    if (s->mcp)
        tg_mcp_shutdown(s->mcp, step_done, s);
}

/* Top-level sections a reload may change; every other one is bound at start. */
static const char *const reloadable[] = {"policy", "catalog", "auth", "approvals", NULL};

static bool is_reloadable(const char *key)
{
    for (size_t i = 0; reloadable[i]; i++)
        if (strcmp(reloadable[i], key) == 0) return true;
    return false;
}

/* The first section other than the reloadable ones that differs, or NULL. */
static const char *fixed_section_changed(const json_t *old, const json_t *now)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)old, key, v)
        if (!is_reloadable(key) && !json_equal(v, json_object_get(now, key))) return key;
    json_object_foreach((json_t *)now, key, v)
        if (!is_reloadable(key) && !json_object_get(old, key)) return key;
    return NULL;
}

/* A new authenticator for a reloaded snapshot whose `auth:` section changed (*out NULL
 * when it did not). Authentication stays on or off: the router cannot switch. */
static int reload_auth(server *s, const tg_config *cfg, const json_t *file, tg_auth **out,
                       tg_error *err)
{
    tg_error e;
    *out = NULL;
    if (json_equal(json_object_get(s->file, "auth"), json_object_get(file, "auth")))
        return 0;
    if (!cfg->auth_enabled != !s->cfg->auth_enabled)
        return tg_error_set(err, "%s: authentication cannot be turned %s by a reload: restart "
                            "toolgate", cfg->path, cfg->auth_enabled ? "on" : "off");
    tg_auth_conf ac = cfg->auth;
    if (ac.api_keys_enabled) {
        if (!s->keys) s->keys = tg_apikey_sqlstore_new(s->store);
        ac.key_store = s->keys;
    }
    if (!(*out = tg_auth_new(&s->loop, &ac, &e)))
        return tg_error_set(err, "%s: auth: %s", cfg->auth_where ? cfg->auth_where : cfg->path,
                            e.msg);
    return 0;
}

/* The reload (SIGHUP, POST /reload): see the comment at the top. */
static int reload_now(void *ctx, const char **version, tg_error *err)
{
    server *s = ctx;
    tg_error e;
    if (s->stopping) return tg_error_set(err, "shutting down");
    tg_config *cfg = tg_config_load(s->cfg->path, &e);
    if (!cfg) return tg_error_set(err, "%s", e.msg);
    /* The listen section is unchanged (or refused below): defaults that follow the
     * address (public URL, the OAuth audience) follow the running one, overrides included. */
    bool v6 = strchr(s->cfg->listen_host, ':') != NULL;
    char listen[80];
    snprintf(listen, sizeof listen, "%s%s%s:%u", v6 ? "[" : "", s->cfg->listen_host,
             v6 ? "]" : "", (unsigned)s->cfg->listen_port);
    json_t *file = tg_config_yaml_json(s->cfg->path, &e);
    int rc = -1;
    const char *changed;
    tg_policy *pol = NULL;
    tg_auth *auth = NULL;
    if (!file || tg_config_set_listen(cfg, listen, -1, &e) < 0) {
        tg_error_set(err, "%s", e.msg);
    } else if ((changed = fixed_section_changed(s->file, file))) {
        tg_error_set(err, "%s: the `%s` section changed; it is applied at start only, "
                     "restart toolgate to change it (docs/operations.md)", s->cfg->path, changed);
    } else if (cfg->policy.where && !(pol = tg_policy_new(cfg, &e))) {
        tg_error_set(err, "%s", e.msg);
    } else if (reload_auth(s, cfg, file, &auth, err) < 0) {
        /* err says why */
    } else if (!cfg->approvals.where != !s->cfg->approvals.where) {
        tg_error_set(err, "%s: approvals cannot be turned %s by a reload: restart toolgate",
                     cfg->path, cfg->approvals.where ? "on" : "off");
    } else if ((pol || s->policy_version) && tg_mcp_set_policy(s->mcp, pol, err) < 0) {
        /* err says why (a policy section added or removed) */
    } else { /* swapped, or no policy before and after: nothing to swap */
        if (s->approvals) {
            tg_approvals_set_config(s->approvals, cfg);
            tg_approvals_set_policy(s->approvals, pol);
        }
        if (auth && tg_mcp_set_auth(s->mcp, auth, err) == 0) {
            tg_log_info(LOG_COMPONENT, "reload: new authenticator (auth section changed)");
            if (s->approvals) tg_approvals_set_auth(s->approvals, auth);
            auth = NULL;
        }
        json_decref(s->file);
        s->file = json_incref(file);
        s->policy_version = pol ? tg_policy_version(pol) : NULL;
        *version = s->policy_version;
        pol = NULL;
        rc = 0;
    }
    if (auth) tg_auth_free(auth);
    tg_policy_free(pol);
    json_decref(file);
    tg_config_unref(cfg);
    return rc;
}

static int ready_now(void *ctx, tg_buf *why)
{
    server *s = ctx;
    return tg_mcp_ready(s->mcp, why);
}

static void reload(server *s)
{
    const char *version = NULL;
    tg_error err;
    if (reload_now(s, &version, &err) == 0)
        tg_log_info(LOG_COMPONENT, "reloaded %s: policy version %s", s->cfg->path,
                    version ? version : "(no policy section)");
    else
        tg_log_error(LOG_COMPONENT, "reload refused, the running policy stays in force: %s",
                     err.msg);
}

static void on_signal(uv_signal_t *h, int signum)
{
    server *s = h->data;
    if (signum == SIGHUP) {
        tg_log_info(LOG_COMPONENT, "SIGHUP received: reloading %s", s->cfg->path);
        reload(s);
        return;
    }
    if (s->stopping) {
        tg_log_warn(LOG_COMPONENT, "%s again: exiting now without a graceful shutdown",
                    strsignal(signum));
        _exit(1);
    }
    tg_log_info(LOG_COMPONENT, "%s: shutting down gracefully (send it again to exit at once)",
                strsignal(signum));
    begin_shutdown(s);
}

static int start_signals(server *s, tg_error *err)
{
    for (int i = 0; i < 3; i++) {
        int rc = uv_signal_init(&s->loop, &s->signals[i]);
        if (rc == 0) {
            s->nsignals++;
            s->signals[i].data = s;
            rc = uv_signal_start(&s->signals[i], on_signal, handled_signals[i]);
        }
        if (rc < 0)
            return tg_error_set(err, "cannot handle %s: %s", strsignal(handled_signals[i]),
                                uv_strerror(rc));
    }
    return 0;
}

/* "atlassian (stdio, shared), jira (http, per-client)" */
static void describe_upstreams(const tg_config *cfg, tg_buf *out)
{
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const tg_upstream_conf *u = &cfg->upstreams[i];
        tg_buf_printf(out, "%s%s (%s, %s%s%s)", i ? ", " : "", u->name,
                      u->transport == TG_UP_STDIO ? "stdio" : "http",
                      u->sessions == TG_UP_SESSIONS_SHARED ? "shared" : "per-client",
                      u->prefix ? ", prefix " : "", u->prefix ? u->prefix : "");
    }
}

static void log_listening(const server *s)
{
    const tg_config *cfg = s->cfg;
    int v6 = strchr(cfg->listen_host, ':') != NULL;
    tg_buf ups = TG_BUF_INIT;
    describe_upstreams(cfg, &ups);
    tg_log_info(LOG_COMPONENT, "listening on http://%s%s%s:%u%s (public URL %s), upstreams: %s",
                v6 ? "[" : "", cfg->listen_host, v6 ? "]" : "",
                (unsigned)tg_http_server_port(s->http), cfg->mcp_path, cfg->public_url, ups.data);
    tg_buf_free(&ups);
    /* Running open must never go unnoticed. */
    if (!cfg->auth_enabled)
        tg_log_warn(LOG_COMPONENT, "authentication is off (%s): every client that can reach "
                    "%s is served as \"anonymous\"; configure `auth:` (docs/authentication.md)",
                    cfg->auth_where ? "auth: none" : "no auth section", cfg->public_url);
    if (!s->policy_version)
        tg_log_warn(LOG_COMPONENT, "no `policy:` section: calls are forwarded without a "
                    "decision and not audited (docs/policy.md)");
    else
        tg_log_info(LOG_COMPONENT, "policy version %s (%s mode), audit %s to %s",
                    s->policy_version, cfg->policy.shadow ? "shadow" : "enforce",
                    cfg->audit.durability == TG_AUDIT_BATCHED ? "batched" : "strict",
                    tg_store_backend(s->store) == TG_STORE_SQLITE ? "SQLite" : "PostgreSQL");
}

/* Store → audit → API keys → authenticator → policy, each with a message naming what
 * failed. */
static int open_gates(server *s, tg_error *err)
{
    tg_config *cfg = s->cfg;
    tg_error e;
    if (!(s->store = tg_store_open_opts(&s->loop, &cfg->store, &e)))
        return tg_error_set(err, "store: %s", e.msg);
    if (!(s->audit = tg_audit_open(&s->loop, s->store, &cfg->audit, &e)))
        return tg_error_set(err, "audit: %s", e.msg);
    if (!cfg->auth_enabled)
        return (cfg->policy.where && !(s->policy = tg_policy_new(cfg, &e)))
            ? tg_error_set(err, "policy: %s", e.msg) : 0;
    tg_auth_conf ac = cfg->auth;
    if (ac.api_keys_enabled) {
        s->keys = tg_apikey_sqlstore_new(s->store);
        ac.key_store = s->keys;
    }
    if (!(s->auth = tg_auth_new(&s->loop, &ac, &e)))
        return tg_error_set(err, "auth: %s", e.msg);
    if (cfg->policy.where && !(s->policy = tg_policy_new(cfg, &e)))
        return tg_error_set(err, "policy: %s", e.msg);
    return 0;
}

/* The approvals service, when configured: after the gates it uses (store, audit, and
 * the policy and authenticator it is handed). */
static int open_approvals(server *s, tg_error *err)
{
    tg_error e;
    if (!s->cfg->approvals.where) return 0;
    if (!(s->approvals = tg_approvals_new(&s->loop, s->cfg, s->store, s->audit, &e)))
        return tg_error_set(err, "approvals: %s", e.msg);
    tg_approvals_set_policy(s->approvals, s->policy);
    tg_approvals_set_auth(s->approvals, s->auth);
    return 0;
}

/* Everything up to a running loop; on failure err says why and the caller tears down
 * whatever was built. */
static int start(server *s, tg_error *err)
{
    if (tg_upstream_global_init(&s->loop, err) < 0)
        return -1;
    s->transports = 1;
    s->http = tg_http_server_new(&s->loop, &s->cfg->limits, on_request, s);
    if (tg_http_server_listen(s->http, s->cfg->listen_host, s->cfg->listen_port, err) < 0)
        return -1;
    if (s->cfg->listen_port == 0 &&
        tg_config_set_listen(s->cfg, NULL, tg_http_server_port(s->http), err) < 0)
        return -1;
    if (open_gates(s, err) < 0 || open_approvals(s, err) < 0)
        return -1;
    if (!(s->file = tg_config_yaml_json(s->cfg->path, err)))
        return -1;
    tg_mcp_gates gates = {s->auth, s->policy, s->audit, s->approvals};
    if (!(s->mcp = tg_mcp_new(&s->loop, s->cfg, &gates, err)))
        return -1;
    s->policy_version = s->policy ? tg_policy_version(s->policy) : NULL;
    s->policy = NULL; /* the router's now, and so is the authenticator */
    s->auth = NULL;
    if (s->cfg->admin.where) {
        tg_admin_ops ops = {s, reload_now, ready_now, s->approvals};
        s->admin = tg_admin_new(&s->loop, &s->cfg->admin, &s->cfg->limits, &ops);
        if (tg_admin_listen(s->admin, err) < 0)
            return -1;
    }
    return start_signals(s, err);
}

/* The loop thread's large buffers (a call's body, the forwarded request, the upstream's
 * answer: each 64 KB and more for a 64 KB argument) come from glibc's main heap and go back
 * to it at the end of the call. By default glibc then returns the heap's top to the kernel
 * whenever 128 KB lie free there (brk), and the next call grows it again (brk, then a page
 * fault for every page touched): three brk and a few dozen faults per large call, which on
 * this kind of VM tripled a 64 KB call's time through the gateway (docs/performance.md,
 * seventh round). So the heap keeps up to HEAP_KEEP free at its top, grows by HEAP_PAD
 * beyond a request, and allocations up to HEAP_MMAP_MIN come from it rather than from a
 * mapping made and unmade per call. Once the calls are done, at most HEAP_KEEP stays held
 * (8 MiB kept 7 MB more resident after the benchmark's c=64 rounds; 2 MiB covers a few
 * 64 KB calls at once). Best effort: mallopt refusing a value leaves glibc's default. */
#define HEAP_KEEP (2 << 20)
#define HEAP_PAD (256 << 10)
#define HEAP_MMAP_MIN (4 << 20)

static void keep_heap(void)
{
    if (!mallopt(M_MMAP_THRESHOLD, HEAP_MMAP_MIN) || !mallopt(M_TRIM_THRESHOLD, HEAP_KEEP) ||
        !mallopt(M_TOP_PAD, HEAP_PAD))
        tg_log_debug(LOG_COMPONENT, "malloc tuning refused; the heap follows glibc's defaults");
}

int tg_cli_serve(const char *config_path, const char *listen, int port)
{
    server s;
    tg_error err;
    int status = 0;
    memset(&s, 0, sizeof s);
    if (!(s.cfg = tg_config_load(config_path, &err))) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    if ((listen || port >= 0) && tg_config_set_listen(s.cfg, listen, port, &err) < 0) {
        fprintf(stderr, "toolgate: %s\n", err.msg);
        tg_config_unref(s.cfg);
        return 2;
    }
    tg_log_set_level(s.cfg->log_level);
    /* A write to a child that just exited must be an EPIPE error, not a dead gateway. */
    signal(SIGPIPE, SIG_IGN);
    keep_heap();
    uv_loop_init(&s.loop);

    if (start(&s, &err) == 0) {
        log_listening(&s);
    } else {
        tg_log_error(LOG_COMPONENT, "cannot start: %s", err.msg);
        status = 1;
        for (int i = 0; i < s.nsignals; i++)
            uv_close((uv_handle_t *)&s.signals[i], NULL);
        s.nsignals = 0;
        if (s.http)
            begin_shutdown(&s);
        else
            close_records(&s);
    }
    uv_run(&s.loop, UV_RUN_DEFAULT);

    if (s.mcp)
        tg_mcp_free(s.mcp);
    tg_policy_free(s.policy);
    if (s.auth)
        tg_auth_free(s.auth);
    if (s.keys)
        tg_apikey_sqlstore_free(s.keys);
    tg_admin_free(s.admin);
    if (s.approvals)
        tg_approvals_free(s.approvals);
    if (s.http)
        tg_http_server_free(s.http);
    if (s.transports)
        tg_upstream_global_cleanup();
    uv_run(&s.loop, UV_RUN_DEFAULT);  /* close callbacks of the transports' handles */
    if (uv_loop_close(&s.loop) != 0)
        tg_log_warn(LOG_COMPONENT, "event loop still had open handles at exit");
    if (status == 0)
        tg_log_info(LOG_COMPONENT, "stopped");
    json_decref(s.file);
    tg_config_unref(s.cfg);
    return status;
}
