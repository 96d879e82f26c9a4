/*
 * tg_mcp.h — the MCP router: client sessions, lifecycle, federation of upstreams, and
 * the rewriting that keeps clients apart (JSON-RPC ids, progress tokens, cancellations,
 * server-to-client requests). It sits between the HTTP front (tg_front.h) and the
 * upstream transports (tg_upstream.h), and is where later phases plug in: authentication
 * before a message is routed, the policy decision at tools/call, the audit record after.
 *
 * Everything runs on the loop thread. The router holds a reference to the configuration
 * snapshot it was created with.
 */
#ifndef TG_MCP_H
#define TG_MCP_H

#include <uv.h>

#include "common/tg_common.h"
#include "config/tg_config.h"
#include "front/tg_front.h"
#include "audit/tg_audit.h"
#include "auth/tg_auth.h"
#include "policy/tg_policy.h"

typedef struct tg_mcp tg_mcp;

/* Protocol revisions toolgate speaks to clients, newest first. */
#define TG_MCP_LATEST_VERSION "2025-11-25"
extern const char *const tg_mcp_supported_versions[]; /* NULL-terminated */

/* The gates a request passes besides the router's own checks. audit is borrowed (the
 * caller frees it after tg_mcp_free); auth and policy are handed over (the router frees
 * them, see tg_mcp_set_auth / tg_mcp_set_policy). Each may be NULL:
 *   auth    NULL: nobody is authenticated; every request acts as the anonymous identity
 *           (principal "anonymous", agent and delegator "anonymous", method "none").
 *   policy  NULL: no per-call authorization (the configuration has no `policy:`
 *           section); tools/call, resources/read and prompts/get are forwarded as asked
 *           and no audit record is written for them (nothing was decided).
 *   audit   NULL: decisions and authentication failures are logged, not recorded.
 *   approvals  borrowed like audit. NULL: an approval_required decision is refused with
 *           no approval request (there is nobody to approve it). Otherwise the call
 *           becomes an approval request (docs/approvals.md): in retry mode the client
 *           gets its id and URL at once and the same call passes once approved; in hold
 *           mode the call waits on an SSE stream (progress notifications) until it is
 *           approved (then forwarded), denied, expired or timed out. Keeping the
 *           service's policy and authenticator current is the caller's (serve.c). */
typedef struct tg_mcp_gates {
    tg_auth *auth;
    tg_policy *policy;
    tg_audit *audit;
    struct tg_approvals *approvals;
} tg_mcp_gates;

/* Creates the router and starts connections to every shared upstream. gates may be NULL
 * (all three gates off). */
tg_mcp *tg_mcp_new(uv_loop_t *loop, tg_config *cfg, const tg_mcp_gates *gates, tg_error *err);

/* The tg_http_handler for the front: `ctx` is the tg_mcp. Serves the MCP path
 * (POST/GET/DELETE) and answers 404 for any other path. */
void tg_mcp_handle(tg_http_req *req, void *ctx);

/* Ends every session, fails in-flight calls, closes upstreams; calls done when all
 * upstream connections are closed. */
void tg_mcp_shutdown(tg_mcp *m, void (*done)(void *arg), void *arg);
void tg_mcp_free(tg_mcp *m);

/* Hot reload: new requests are decided by `policy` (handed over); calls in flight finish
 * under the policy they started with, which is freed after the last of them. Sessions
 * whose visible tool set changes get notifications/tools/list_changed. Only a router
 * created with a policy can change it (a policy appearing or vanishing changes what is
 * recorded per call: restart for that); returns -1 with err set otherwise, and the
 * caller keeps `policy`. */
int tg_mcp_set_policy(tg_mcp *m, tg_policy *policy, tg_error *err);

/* Hot reload of the authenticator (handed over): new requests authenticate with `auth`;
 * authentications in progress finish with the old one, freed after the last of them.
 * Authentication cannot be turned on or off by a reload: -1 with err, the caller keeps
 * `auth`. Sessions stay bound to their principal key. */
int tg_mcp_set_auth(tg_mcp *m, tg_auth *auth, tg_error *err);

/* Readiness (admin /readyz): 1 when every shared upstream is initialised; else 0 and
 * `why` lists the others ("atlassian: starting, jira: failed: …"). Per-client upstreams
 * start with their sessions and count as ready. */
int tg_mcp_ready(const tg_mcp *m, tg_buf *why);

/* Number of live client sessions (metrics, tests). */
size_t tg_mcp_session_count(const tg_mcp *m);

#endif /* TG_MCP_H */
