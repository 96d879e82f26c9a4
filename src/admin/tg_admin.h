/*
 * tg_admin.h — the admin listener: a second HTTP listener (the same front, src/front) for
 * operators, apart from the MCP endpoint. docs/operations.md.
 *
 *   GET  /healthz  200 "ok": the process serves requests.
 *   GET  /readyz   200 "ready" once every upstream is initialised, else 503 naming the
 *                  upstreams that are not (and why).
 *   POST /reload   hot reload: 200 {"reloaded":true,"policy_version":…}, or 400
 *                  {"reloaded":false,"error":"FILE:LINE:COL: …"} (the running policy stays).
 *   other paths 404; other methods on these paths 405 with Allow.
 *
 * With approvals (ops.approvals non-NULL; docs/approvals.md) the listener also serves the
 * approvers' surfaces. These are authenticated per APPROVER (tg_approvals_authenticate:
 * an approver key or a human's OAuth token), not with admin.token:
 *   GET  /approvals[?state=pending|approved|denied|expired|used&limit=N]  JSON list
 *   GET  /approvals/{id}                      one request (404 unknown)
 *   POST /approvals/{id}/approve              body {"comment":"…"} (optional) →
 *   POST /approvals/{id}/deny                 200 the request after, or 4xx
 *                                             {"error":CODE,"message":…}
 *   GET  /inbox, /inbox/app.js, /inbox/style.css   the web inbox (static, no credential;
 *                                             its script calls the API with the approver's
 *                                             credential, kept in sessionStorage)
 *
 * With `admin.token` every request must carry `Authorization: Bearer <token>` (compared
 * in constant time; 401 otherwise). Without a token the configuration only lets it
 * listen on loopback (tg_admin_conf invariant), and start-up says so in the log.
 * What the endpoints do is the caller's (tg_admin_ops): this module knows HTTP and the
 * admin rules, not the router or the policy. Loop thread only.
 */
#ifndef TG_ADMIN_H
#define TG_ADMIN_H

#include <stdint.h>
#include <uv.h>

#include "common/tg_common.h"
#include "config/tg_config.h"

typedef struct tg_admin tg_admin;

typedef struct tg_admin_ops {
    void *ctx;
    /* Reload: 0 with *version (the new policy version, or NULL without a policy), or -1
     * with err saying why ("FILE:LINE:COL: …" for a configuration error). */
    int (*reload)(void *ctx, const char **version, tg_error *err);
    /* 1 ready; 0 not ready with `why` naming what is not ("atlassian: starting"). */
    int (*ready)(void *ctx, tg_buf *why);
    /* The approvals service (borrowed, outlives the listener), or NULL: no approvals
     * routes (404). */
    struct tg_approvals *approvals;
} tg_admin_ops;

/* Creates the listener (conf must outlive it; the ops are copied); tg_admin_listen binds
 * it to conf's address. After a failed listen, close and free it as usual. */
tg_admin *tg_admin_new(uv_loop_t *loop, const tg_admin_conf *conf, const tg_limits *limits,
                       const tg_admin_ops *ops);
int tg_admin_listen(tg_admin *a, tg_error *err);
uint16_t tg_admin_port(const tg_admin *a);
/* Stops accepting and lets answers in progress finish; then done(arg). */
void tg_admin_close(tg_admin *a, void (*done)(void *arg), void *arg);
void tg_admin_free(tg_admin *a);

#endif /* TG_ADMIN_H */
