/*
 * tg_approvals.h — just-in-time approvals (issue 7; docs/approvals.md): a call the policy
 * answers "approval_required" becomes an approval REQUEST bound to that exact call; a
 * human approver (whose authority is itself a Cedar decision) approves or denies it; the
 * approved request lets exactly that call through once. Nothing standing is left behind.
 *
 * A request is bound to {principal (tg_identity.principal_key), delegator, agent, tool as
 * the client sees it, resource (type, id), SHA-256 of the canonical unredacted arguments
 * (tg_audit_args_digest), policy version}. Its life:
 *
 *     pending ──approve──▶ approved ──used by the call──▶ used
 *        │ └──deny────▶ denied
 *        └──expiry────▶ expired        (approved also becomes expired when its grant
 *                                        lifetime ends unused)
 *
 * Every transition is a compare-and-set on the store row (tg_store_row_update with the
 * expected state), so two approvers, two retries or two instances sharing PostgreSQL can
 * never both win. Rows live in the store's `approvals` table, so requests survive a
 * restart; a sweeper timer expires them on time. Every transition also writes an audit
 * record (event "approval", with the approval id, the approver and the comment) carrying
 * the traceparent / session / JSON-RPC id of the call it concerns, and — when a webhook
 * is configured — a signed JSON POST (webhook.c, its own thread, retried with backoff).
 *
 * Who uses this:
 *   - src/mcp/gate.c, at an approval_required decision: tg_approvals_mode, then
 *     tg_approvals_find_granted (+ re-decide with context.approval, + tg_approvals_use),
 *     else tg_approvals_request; in hold mode tg_approvals_watch.
 *   - src/admin (GET /approvals, GET /approvals/{id}, POST /approvals/{id}/approve|deny,
 *     the web inbox): tg_approvals_authenticate, tg_approvals_list / get / decide.
 *   - src/cli/serve.c: creates it, hands it the policy and authenticator on every reload.
 *
 * Threads: loop thread only (the webhook sender has its own thread, hidden here). Store
 * calls are the store's synchronous row CRUD: approvals are rare, human-paced events.
 */
#ifndef TG_APPROVALS_H
#define TG_APPROVALS_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "audit/tg_audit.h"
#include "auth/tg_auth.h"
#include "common/tg_common.h"
#include "config/tg_config.h"
#include "policy/tg_policy.h"
#include "store/tg_store.h"

typedef struct tg_approvals tg_approvals;

typedef enum {
    TG_APPROVAL_PENDING = 1,
    TG_APPROVAL_APPROVED,
    TG_APPROVAL_DENIED,
    TG_APPROVAL_EXPIRED,
    TG_APPROVAL_USED,
} tg_approval_state;

/* "pending", "approved", "denied", "expired", "used" (the store's spelling). */
const char *tg_approval_state_name(tg_approval_state s);

/* Creates the service. conf = cfg->approvals (must have `where` set); store and audit are
 * borrowed (audit may be NULL: no records). Starts the sweeper and, with a webhook, the
 * sender thread. Pending requests already in the store are kept (and expire on time). */
tg_approvals *tg_approvals_new(uv_loop_t *loop, tg_config *cfg, tg_store *store,
                               tg_audit *audit, tg_error *err);
/* Stops timers and the webhook thread (deliveries still queued are dropped and logged);
 * watchers are NOT called. Then free. */
void tg_approvals_close(tg_approvals *ap);
void tg_approvals_free(tg_approvals *ap);

/* Reload: the configuration snapshot (a reference is taken; the old one released), the
 * policy approver decisions are made with, and the authenticator OAuth approvers are
 * checked with (both borrowed: the caller keeps them alive until the next call here;
 * either may be NULL). */
void tg_approvals_set_config(tg_approvals *ap, tg_config *cfg);
void tg_approvals_set_policy(tg_approvals *ap, const tg_policy *policy);
void tg_approvals_set_auth(tg_approvals *ap, tg_auth *auth);

/* ---------------------------------------------------------------- the gated call side */

/* The mode for a tool (upstream and its own tool name) and risk: the last matching
 * approvals.modes rule, else approvals.mode. */
tg_approval_mode tg_approvals_mode(const tg_approvals *ap, const char *upstream,
                                   const char *upstream_tool, tg_risk risk);

/* The call an approval is about. Strings are copied by the functions that keep them. */
typedef struct tg_approval_call {
    const tg_identity *identity;     /* principal_key, delegator, agent, method, ... */
    const char *tool;                /* as the client sees it */
    const char *upstream;
    const tg_decision *decision;     /* the approval_required decision (resource, reasons,
                                        policies, risk, policy_version) */
    const char *args_sha256;         /* tg_audit_args_digest of the unredacted arguments */
    const json_t *args;              /* shown to approvers REDACTED (audit.redact rules) */
    const json_t *meta;              /* params._meta: toolgate/intent, workflow, ticket */
    const char *session_id, *rpc_id, *traceparent;   /* links the audit records */
    const char *upstream_tool;       /* the upstream's own name of the tool, or NULL; kept
                                        in the request for approvers (addition) */
} tg_approval_call;

/* An approved, unexpired, unused request bound to exactly this call (principal, tool,
 * resource, args digest, policy version)? 1 with *out filled (strings in arena), 0 none,
 * -1 store error (err; the caller fails closed). */
int tg_approvals_find_granted(tg_approvals *ap, const tg_approval_call *call, tg_arena *a,
                              tg_policy_approval *out, tg_error *err);

/* Consumes an approved request for the call described by `call` (approved → used,
 * compare-and-set): 1 it is now used (audit record "used", linking the using call), 0 it
 * was not approved any more (someone else used it, or it expired), -1 store error. */
int tg_approvals_use(tg_approvals *ap, const char *id, const tg_approval_call *call,
                     tg_error *err);

/* Creates a pending request for the call, or returns the identical pending one (same
 * binding, not expired). *id, *url (approvals.inbox_url + "#" + id) in arena; *expires_ms
 * its expiry; *created 1 when new (audit "requested" + webhook), 0 when reused. -1 error. */
int tg_approvals_request(tg_approvals *ap, const tg_approval_call *call, tg_arena *a,
                         const char **id, const char **url, int64_t *expires_ms,
                         int *created, tg_error *err);

/* Hold mode: watches request id until it is decided or `timeout_ms` passes. cb runs on
 * the loop thread with TICK every approvals.progress_interval while waiting (the call
 * sends notifications/progress), then exactly once with a final event, after which the
 * watch is gone. APPROVED carries the grant (its strings valid during the callback);
 * DENIED the approver and comment. tg_approvals_unwatch before the final event cancels
 * it without a callback (the client went away). Decisions made by another instance
 * sharing the store are noticed by re-reading watched rows every second. */
typedef enum {
    TG_APPROVAL_EV_TICK = 1,
    TG_APPROVAL_EV_APPROVED,
    TG_APPROVAL_EV_DENIED,
    TG_APPROVAL_EV_EXPIRED,
    TG_APPROVAL_EV_TIMEOUT,
    TG_APPROVAL_EV_ERROR,            /* the store failed: fail closed */
} tg_approval_event;

typedef struct tg_approval_news {
    tg_approval_event event;
    const tg_policy_approval *grant; /* APPROVED */
    const char *approver;            /* APPROVED, DENIED */
    const char *comment;             /* APPROVED, DENIED; may be NULL */
    int64_t waited_ms;               /* since the watch started */
    int64_t expires_ms;              /* the request's expiry */
} tg_approval_news;

typedef struct tg_approval_watch tg_approval_watch;
typedef void (*tg_approval_watch_cb)(void *ud, const tg_approval_news *news);
tg_approval_watch *tg_approvals_watch(tg_approvals *ap, const char *id, int64_t timeout_ms,
                                      tg_approval_watch_cb cb, void *ud);
void tg_approvals_unwatch(tg_approval_watch *w);

/* ---------------------------------------------------------------- the approver side */

/* A human approver. user is a Cedar User id; groups add to the entities file's parents. */
typedef struct tg_approver {
    const char *user;
    const char **groups;
    size_t ngroups;
    const char *method;              /* "oauth" or "approver_key" */
    const char *credential_id;       /* jti / token hash prefix, or "key:<sha256 prefix>" */
    const char *client_ip;
} tg_approver;

/* Authenticates an approver from the Authorization header of an admin request:
 * "Bearer tga_…" (an approvals.approvers.api_keys entry, compared in constant time) or,
 * with approvals.approvers.oauth, an OAuth access token of the configured issuers (the
 * approver is the token's delegator; a token with an act chain — an agent acting for a
 * human — is refused: agents never approve). cb runs exactly once (synchronously unless
 * a JWKS fetch is needed) with status 0 and the approver, or 400/401/403 and a reason
 * for the client (never the credential). Strings live in arena. */
typedef void (*tg_approver_cb)(void *ud, int status, const tg_approver *who, const char *why);
typedef struct tg_approver_pending tg_approver_pending;
tg_approver_pending *tg_approvals_authenticate(tg_approvals *ap, const char *authorization,
                                               const char *client_ip, tg_arena *a,
                                               tg_approver_cb cb, void *ud);
void tg_approvals_authenticate_cancel(tg_approver_pending *p);

/* The JSON view of a request, as the admin API, the web inbox, the CLI and the webhook
 * show it (one shape everywhere; docs/approvals.md):
 *   {"id","state","url","tool","upstream","risk",
 *    "requester":{"delegator","agent","authMethod","credentialId","clientIp"},
 *    "resource":{"type","id","parents":["Jira::Project::\"OPS\"",…]},
 *    "args":{…redacted…},"argsSha256","intent","workflow","ticket",
 *    "reasons":[…],"policies":[…],"policyVersion",
 *    "createdAt","expiresAt","decidedAt","approver","comment","usedAt","usedBy"}
 * (times RFC 3339 UTC; absent fields are null). */

/* Requests in `state` (NULL: all), newest first, at most limit (0: 100). New ref, or
 * NULL with err. */
json_t *tg_approvals_list(tg_approvals *ap, const char *state, size_t limit, tg_error *err);
/* One request: new ref; NULL with err->msg "" when there is none, else NULL with err. */
json_t *tg_approvals_get(tg_approvals *ap, const char *id, tg_error *err);

/* Approve (approve = true) or deny request id as `who`, with an optional comment (at most
 * 2000 bytes). Approving is a Cedar decision: principal User::"<who->user>" (parents from
 * the entities file plus who->groups), action Action::"approve", resource the call's
 * resource (with its parents), context {requester: Agent, delegator: User, tool, risk,
 * upstream, ticket?, intent?, workflow?, inChangeWindow, now, clientIp, authMethod}
 * (tg_policy_decide_approve). Denying needs the same authority. Whatever the policy says,
 * the requester (the call's delegator or agent) can never decide their own request.
 * Returns 0 with *out (the request after the change, new ref); or -1 with *status and
 * *code: 404 NOT_FOUND, 409 NOT_PENDING (already decided / expired), 403
 * SELF_APPROVAL_FORBIDDEN, 403 APPROVER_NOT_PERMITTED (err names the policy reasons),
 * 400 BAD_COMMENT, 500 STORE_ERROR; err says it in words. */
int tg_approvals_decide(tg_approvals *ap, const char *id, const tg_approver *who,
                        bool approve, const char *comment, json_t **out, int *status,
                        const char **code, tg_error *err);

/* The command line (`toolgate approvals list|show|approve|deny|keygen`) is a client of
 * the admin API and lives in src/cli/approvals.c. */

#endif /* TG_APPROVALS_H */
