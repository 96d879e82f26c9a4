/*
 * tg_policy.h — the decision layer (issue 5; docs/policy.md, docs/reason-codes.md):
 * builds the Cedar request for a call exactly as the product brief's model says
 * (principal, action, resource, context), asks the Cedar engine, and maps the answer to
 * allow / deny / approval_required with reason codes, the determining policies and the
 * policy version.
 *
 * A tg_policy is built from a configuration snapshot (policy: and catalog: sections):
 * every *.cedar file of the policies directory, the entities file, the change windows'
 * time zones and the tool catalog. It is immutable after tg_policy_new and holds a
 * reference on the snapshot; a reload builds a new one and swaps it whole.
 *
 * Threads: decisions and visibility may run on any thread at once; each call works in the
 * arena it is given. tg_catalog_log_once on tg_policy_catalog() is loop-thread only.
 */
#ifndef TG_POLICY_H
#define TG_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "auth/tg_auth.h"
#include "catalog/tg_catalog.h"
#include "common/tg_common.h"
#include "config/tg_config.h"

typedef struct tg_policy tg_policy;

/* Loads policies, entities and time zones named by cfg->policy, and compiles cfg's
 * catalog. Errors name the file and position: "DIR/x.cedar:LINE:COL: …". Without a
 * `policy:` section the policy set is empty (every call denied NO_MATCHING_PERMIT).
 * Takes a reference on cfg. */
tg_policy *tg_policy_new(tg_config *cfg, tg_error *err);
void tg_policy_free(tg_policy *p);

/* The catalog compiled with this policy (same lifetime). */
tg_catalog *tg_policy_catalog(const tg_policy *p);
/* Hex SHA-256 over every policy file (name and text, in load order) and the entities
 * file: what an approval and an audit record are bound to. */
const char *tg_policy_version(const tg_policy *p);
/* 1 when calls of this upstream tool are decided in shadow mode (global mode, then the
 * last matching policy.overrides entry). */
int tg_policy_is_shadow(const tg_policy *p, const char *upstream, const char *upstream_tool);
/* 1 when policy.deny_as is error (JSON-RPC error instead of an isError result). */
int tg_policy_deny_as_error(const tg_policy *p);

typedef enum {
    TG_DECIDE_TOOL = 1,        /* tools/call: Action::"<tool as the client sees it>" */
    TG_DECIDE_RESOURCE_READ,   /* resources/read: Action::"mcp:resources/read" */
    TG_DECIDE_PROMPT_GET,      /* prompts/get: Action::"mcp:prompts/get" */
} tg_decide_kind;

/* A granted approval for this exact call (issue 7); NULL when there is none. */
typedef struct tg_policy_approval {
    const char *id;
    const char *approver;
    int64_t granted_at_ms;
} tg_policy_approval;

typedef struct tg_decide_in {
    tg_decide_kind kind;
    const tg_identity *identity;
    const char *upstream;
    /* TOOL: the tool's name as the client sees it (prefix included) and as the upstream
     * names it (catalog, overrides); RESOURCE_READ: the resource URI; PROMPT_GET: the
     * prompt name as the client sees it. */
    const char *name;
    const char *upstream_name;
    const tg_cat_entry *entry;      /* TOOL only: from tg_catalog_classify */
    tg_jref args;                   /* TOOL: params.arguments; PROMPT_GET: arguments; or absent */
    tg_jref meta;                   /* params._meta, or absent */
    int64_t now_ms;                 /* Unix ms (tg_wall_ms()) */
    const tg_policy_approval *approval;
    /* Fill the decision's principal_json / entities_json / context_json (`toolgate
     * decide`). Without it they are NULL: a gateway decision builds its request without
     * writing it as text. The decision is the same either way. */
    bool explain;
} tg_decide_in;

typedef enum {
    TG_DECISION_DENY = 0,
    TG_DECISION_ALLOW = 1,
    TG_DECISION_APPROVAL = 2,   /* "approval_required" */
} tg_decision_kind;

/* The outcome. Everything lives in the arena given to tg_policy_decide. With shadow set
 * the decision is what enforcement would do; the caller forwards the call anyway. */
typedef struct tg_decision {
    tg_decision_kind decision;
    int shadow;
    const char **reasons;        /* reason codes, deduplicated, in policy order */
    size_t nreasons;
    const char **policies;       /* determining policy ids */
    size_t npolicies;
    const char **errors;         /* "policy-id: message" for every policy that errored, and
                                    the resolution problem for RESOURCE_UNRESOLVED */
    size_t nerrors;
    const char *policy_version;
    const char *action;          /* the Action entity id */
    tg_risk risk;
    tg_resource resource;
    /* With tg_decide_in.explain (and always for approver decisions), else NULL: */
    const char *principal_json;  /* the principal entity as given to Cedar */
    const char *entities_json;   /* every request-scoped entity (array) */
    const char *context_json;    /* the context as given to Cedar */
} tg_decision;

/* Decides. Returns -1 (err set) only when the request cannot be built at all (no agent
 * or delegator in the identity); every policy problem is a deny with a reason. */
int tg_policy_decide(const tg_policy *p, const tg_decide_in *in, tg_arena *a, tg_decision *out,
                     tg_error *err);

/* "allow" / "deny" / "approval_required". */
const char *tg_decision_name(tg_decision_kind d);

/* The explain view: {"decision","mode","reasons","policies","errors","policy_version",
 * "principal","action","resource":{type,id,parents,state,reason},"entities","context"}
 * (principal, entities and context null when the decision was made without explain).
 * Caller frees. */
char *tg_decision_explain_json(const tg_decision *d);

/* JSON-RPC error codes of policy decisions (docs/reason-codes.md). */
#define TG_RPC_POLICY_DENIED     (-32030)
#define TG_RPC_APPROVAL_REQUIRED (-32031)

/* The client-facing answer to a call that was not allowed: a whole JSON-RPC response for
 * request `id`: by default a tools/call result {content:[{type:text,text}], isError:true,
 * structuredContent:{decision,reasons,policies[,approvalId]}}; with deny_as: error (or
 * for resources/read and prompts/get, which have no isError result) a JSON-RPC error
 * TG_RPC_POLICY_DENIED / TG_RPC_APPROVAL_REQUIRED whose data is the same object.
 * approval_id may be NULL. */
json_t *tg_policy_denied_response(const tg_policy *p, const json_t *id, tg_decide_kind kind,
                                  const tg_decision *d, const char *approval_id,
                                  const char *approval_url);
/* (approval_url, when not NULL, is added as structuredContent.approvalUrl and named in
 * the text: where a human approves the request.) */

/* The approver's authority (issue 7): may approver User::"<user>" approve (or deny) the
 * approval request of a call? Cedar request: principal User::"<user>" — parents from the
 * entities file plus `groups` —, action Action::"approve", resource the call's resource
 * with its parents (rebuilt from resource_type / resource_id / parents, each parent a
 * Cedar UID text `Type::"id"`, nearest first), context {requester: Agent::"<agent>",
 * delegator: User::"<delegator>" (absent when there is none), tool, risk, upstream,
 * ticket?, intent?, workflow? (absent when not declared), inChangeWindow, now, clientIp?
 * (when a valid address), authMethod}. The decision is ALLOW or DENY only (a satisfied
 * @approval forbid denies: approvals do not nest), with reasons and policies as for
 * calls; out->context_json / entities_json / principal_json hold what Cedar saw. */
typedef struct tg_approve_in {
    const char *user;
    const char *const *groups;
    size_t ngroups;
    const char *auth_method;      /* "oauth" / "approver_key" */
    const char *client_ip;        /* or NULL */
    const char *requester_agent;  /* the call's agent */
    const char *delegator;        /* the call's delegator, or NULL */
    const char *tool;             /* as the client saw it */
    tg_risk risk;
    const char *upstream;
    const char *resource_type, *resource_id;
    const char *const *parents;   /* Cedar UID texts, nearest first */
    size_t nparents;
    const char *ticket, *intent, *workflow;   /* or NULL */
    int64_t now_ms;
} tg_approve_in;

int tg_policy_decide_approve(const tg_policy *p, const tg_approve_in *in, tg_arena *a,
                             tg_decision *out, tg_error *err);

/* tools/list visibility: 1 iff some permit's scope can match this principal and
 * Action::"<tool>" (conditions and resource scope ignored) and no unconditional forbid
 * (no when/unless, any resource) matches them. */
int tg_policy_tool_visible(const tg_policy *p, const tg_identity *identity, const char *tool,
                           tg_risk risk, const char *upstream, tg_arena *a);

/* Command-line entries (the CLI wires them): `toolgate policy test --config F CASES.yaml`
 * (argv[0] "policy", argv[1] "test") and `toolgate decide --config F …` (argv[0]
 * "decide"). Exit status 0 ok, 1 failures, 2 usage or load error. */
int tg_policy_test_main(int argc, char **argv);
int tg_policy_decide_main(int argc, char **argv);

#endif /* TG_POLICY_H */
