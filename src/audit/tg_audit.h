/*
 * tg_audit.h — tamper-evident audit records (issue 6).
 *
 * The records of every MCP request that reaches a decision (strict: a "decision" record
 * before the call is forwarded and an "outcome" record after; batched: one "outcome" record
 * per forwarded call, carrying the decision — tg_audit_reserve), one per authentication
 * failure, one per approval event. Each record is serialised canonically (fixed key order, no whitespace,
 * arguments with sorted keys), redacted, and chained per instance:
 *
 *   hash(seq) = SHA-256( prev_hash_hex "\n" seq "\n" canonical_record )
 *
 * where prev_hash is the hash of record seq-1 (64 '0' for seq 1). Every N records or T ms
 * the writer stores a checkpoint {instance, seq, hash} signed with Ed25519; the public key
 * alone verifies. docs/audit.md says what verification proves and what it cannot.
 *
 * The writer runs on the loop thread and uses the store's asynchronous appends; see
 * tg_audit_append for the strict / batched contract.
 */
#ifndef TG_AUDIT_H
#define TG_AUDIT_H

#include <stdint.h>
#include <stdio.h>
#include <jansson.h>
#include <uv.h>

#include "common/tg_common.h"
#include "store/tg_store.h"

/* ------------------------------------------------------------------ the record */

typedef enum {
    TG_AUDIT_EV_DECISION = 0,   /* the policy decided (before forwarding) */
    TG_AUDIT_EV_OUTCOME,        /* the call finished (or was not forwarded) */
    TG_AUDIT_EV_AUTH_FAILURE,   /* credentials refused */
    TG_AUDIT_EV_APPROVAL,       /* approval requested / approved / denied / expired / used */
} tg_audit_event;

typedef enum {
    TG_AUDIT_DECISION_NONE = 0,
    TG_AUDIT_DECISION_ALLOW,
    TG_AUDIT_DECISION_DENY,
    TG_AUDIT_DECISION_APPROVAL_REQUIRED,
} tg_audit_decision;

typedef enum { TG_AUDIT_ENFORCE = 0, TG_AUDIT_SHADOW } tg_audit_policy_mode;

typedef enum {
    TG_AUDIT_OUTCOME_NONE = 0,        /* decision records: not known yet */
    TG_AUDIT_OUTCOME_OK,
    TG_AUDIT_OUTCOME_TOOL_ERROR,      /* result with isError: true */
    TG_AUDIT_OUTCOME_RPC_ERROR,       /* JSON-RPC error from the upstream */
    TG_AUDIT_OUTCOME_UPSTREAM_TIMEOUT,
    TG_AUDIT_OUTCOME_UPSTREAM_CRASH,
    TG_AUDIT_OUTCOME_NOT_FORWARDED,   /* denied, approval pending, or failed closed */
    TG_AUDIT_OUTCOME_CANCELLED,       /* forwarded, then ended before its answer (the client
                                         cancelled or left, the gateway stopped): the
                                         upstream may have acted */
} tg_audit_outcome;

#define TG_AUDIT_NO_LATENCY (-1)

/* Every field of issue 6 item 2. Pointers are borrowed; NULL means absent (serialised as
 * null). Lists are (pointer, count). */
typedef struct tg_audit_record {
    tg_audit_event event;
    int64_t     time_ms;             /* Unix ms; 0 = now (the writer fills it) */
    const char *instance;            /* filled by the writer from its options */
    const char *session_id;
    const char *rpc_id;              /* JSON text of the JSON-RPC id: 7 or "a-1" */
    const char *traceparent;         /* W3C traceparent, from the client or generated */
    const char *delegator;           /* the delegating human (User id) */
    const char *agent;               /* the acting agent */
    const char *const *act_chain;    /* the full RFC 8693 act chain, outermost first */
    size_t      n_act_chain;
    const char *auth_method;         /* "oauth" | "api_key" */
    const char *credential_id;       /* jti or API key id */
    const char *client_ip;
    const char *upstream;
    const char *method;              /* JSON-RPC method, e.g. tools/call */
    const char *tool;
    const char *resource_type;       /* e.g. Jira::Issue */
    const char *resource_id;         /* e.g. OPS-12 */
    const char *const *resource_parents;  /* Cedar UIDs, e.g. Jira::Project::"OPS" */
    size_t      n_resource_parents;
    const json_t *args;              /* the call's arguments as received (unredacted) */
    tg_jref args_ref;                /* or the same as scanned tokens (the gateway's calls);
                                        when set, args is not looked at */
    const char *args_sha256;         /* the writer computes it from the arguments; only when
                                        there are none is a given 64-hex digest kept
                                        (records about a call whose arguments are in an
                                        earlier record or gone: outcomes, approval events) */
    const char *intent, *workflow, *ticket;
    tg_audit_decision decision;
    tg_audit_policy_mode mode;
    const char *const *reasons;      /* reason codes */
    size_t      n_reasons;
    const char *const *policies;     /* determining policy ids */
    size_t      n_policies;
    const char *policy_version;
    const char *approval_id, *approver;
    tg_audit_outcome outcome;
    int64_t     upstream_latency_us; /* TG_AUDIT_NO_LATENCY when not applicable */
    int64_t     total_latency_us;
    const char *detail;              /* free text: why auth failed, which approval event … */
} tg_audit_record;

const char *tg_audit_event_name(tg_audit_event e);
const char *tg_audit_decision_name(tg_audit_decision d);   /* NULL for NONE */
const char *tg_audit_outcome_name(tg_audit_outcome o);     /* NULL for NONE */

/* SHA-256 (hex) of the canonical form of args (object keys sorted, no whitespace). It is
 * computed over the UNREDACTED arguments: approvals (issue 7) bind to this digest, so an
 * approval covers exactly one set of arguments, while the stored record only keeps the
 * redacted copy. NULL args digest as the JSON text "null". */
void tg_audit_args_digest(const json_t *args, char out[65]);
/* The same of scanned arguments (absent digests as "null"). */
void tg_audit_args_digest_ref(tg_jref args, char out[65]);

/* Default redaction patterns (NULL-terminated): *token*, *password*, *secret*, … */
extern const char *const tg_audit_default_redact[];

/* Deep copy of v where every object member whose key matches one of the patterns
 * (case-insensitive; glob with * ? [..], otherwise the whole key) has its value replaced
 * by "[REDACTED]", at any depth. patterns NULL = the defaults. */
json_t *tg_audit_redact(const json_t *v, const char *const *patterns, size_t n_patterns);

/* Canonical serialisation of r exactly as given (r->args is embedded as is and
 * r->args_sha256 must be set: the writer passes the redacted args and the digest of the
 * unredacted ones). Deterministic: the same record always gives the same bytes. */
int tg_audit_record_canonical(const tg_audit_record *r, tg_buf *out, tg_error *err);

/* Parses a stored canonical record back. Strings point into *holder (and arrays into
 * arena), so keep *holder (json_decref it) and the arena while using *out. */
int tg_audit_record_parse(const char *body, size_t len, tg_arena *arena,
                          tg_audit_record *out, json_t **holder, tg_error *err);

/* Type::"id" with the id as a JSON string, in a (what the record's resource columns and
 * its parents hold); NULL when both are NULL. */
char *tg_audit_resource_uid(tg_arena *a, const char *type, const char *id);

/* The chain hash of a record (see the top of this file). */
void tg_audit_chain_hash(const char *prev_hash, int64_t seq, const char *body, size_t len,
                         char out[65]);

/* ------------------------------------------------------------------ the writer */

typedef enum { TG_AUDIT_STRICT = 0, TG_AUDIT_BATCHED } tg_audit_durability;

/* Options the configuration fills in (YAML keys: docs/audit.md). Zero = default. */
typedef struct tg_audit_options {
    const char *store_url;              /* for whoever opens the tg_store (see tg_store.h) */
    tg_audit_durability durability;     /* strict (default) | batched */
    const char *instance_id;            /* required: one chain per instance id */
    const char *signing_key_path;       /* Ed25519 private key PEM; NULL = no checkpoints */
    uint32_t    checkpoint_every;       /* records between checkpoints (default 1000) */
    uint32_t    checkpoint_ms;          /* ms between checkpoints (default 60000) */
    const char *const *redact;          /* key names / globs; NULL = tg_audit_default_redact */
    size_t      n_redact;
    const char *jsonl_path;             /* JSON Lines sink: file path, "-" = stdout, NULL = off */
    size_t      batched_queue_max;      /* batched mode: records not yet durable (default 10000) */
    int         async_outcomes;         /* strict mode: outcome records are written in order but
                                           not waited for (`audit.outcome: async`); decision
                                           and other records still are */
} tg_audit_options;

typedef struct tg_audit tg_audit;

/* status 0: the record is durable. -1: it is not; errmsg says why. */
typedef void (*tg_audit_done_cb)(void *ud, int status, const char *errmsg);

/* Reads the chain head of the instance (synchronously: start-up) and loads the key. */
tg_audit *tg_audit_open(uv_loop_t *loop, tg_store *store, const tg_audit_options *o,
                        tg_error *err);

/* Appends a record (copied; r->args is redacted for storage and digested unredacted).
 *   returns 0:  strict mode (except an outcome record with async_outcomes, which returns
 *               1 like batched): cb runs once on the loop thread when the record is durable
 *               (status 0) or definitely not (status -1). Forward the call only after a 0.
 *   returns 1:  batched mode: accepted into the bounded queue; proceed now, cb never runs
 *               (a later write failure is logged and counted).
 *   returns -1: refused (store down or full, chain head being re-read after a failure,
 *               invalid record): err says why; fail the call closed.
 * digest_out (optional, 65 bytes) gets the record's args_sha256 (hex), so a later record
 * about the same call can carry the digest instead of the arguments. */
int tg_audit_append(tg_audit *a, const tg_audit_record *r, tg_audit_done_cb cb, void *ud,
                    char *digest_out, tg_error *err);

/* One record per forwarded call in batched mode. Nobody waits for a batched decision
 * record, so writing it apart from the outcome record buys nothing but a second record to
 * serialise, hash and store (about 15 % of a call's CPU, docs/performance.md). A call
 * that is about to be forwarded asks tg_audit_reserve:
 *   returns 1:  batched mode. One place in the batched queue is held for the call's
 *               record, so once the upstream has acted that record is not refused for
 *               lack of room. Forward now; the outcome record carries the decision and
 *               the arguments, appended with tg_audit_append_reserved (or give the place
 *               back with tg_audit_unreserve if the call ends unrecorded).
 *   returns 0:  strict mode: append the decision record with tg_audit_append as before.
 *   returns -1: an append now would be refused (store unavailable, queue full counting
 *               the places held, closing): err says why; fail the call closed. */
int tg_audit_reserve(tg_audit *a, tg_error *err);
void tg_audit_unreserve(tg_audit *a);
/* Appends r in the place tg_audit_reserve held (released whatever happens). Never waits:
 * returns 1 accepted, -1 refused (err: the store failed meanwhile, or closing). */
int tg_audit_append_reserved(tg_audit *a, const tg_audit_record *r, tg_error *err);

/* Writes a checkpoint now if records were added since the last one. */
int tg_audit_checkpoint_now(tg_audit *a, tg_error *err);

typedef struct tg_audit_stats {
    int64_t  head_seq;          /* last record appended (durable or pending) */
    uint64_t appended, failed, checkpoints, pending;
} tg_audit_stats;
void tg_audit_get_stats(const tg_audit *a, tg_audit_stats *st);

/* Writes a final checkpoint, waits for pending writes, then calls done (on the loop
 * thread) and frees the writer. Close the store afterwards. */
void tg_audit_close(tg_audit *a, void (*done)(void *ud), void *ud);

/* ------------------------------------------------------------------ verification */

typedef struct tg_audit_verify_report {
    size_t instances, records, checkpoints, prunes;
    size_t problems;           /* 0 = everything verified */
    size_t unsigned_tail;      /* records after the last valid checkpoint, all instances */
    int    signatures_checked; /* 0 when no public key was given */
} tg_audit_verify_report;

/* Checks every instance's chain and every checkpoint signature (with any of the public
 * keys; none given = chains and checkpoint hashes only). Writes a human-readable account
 * to out (may be NULL): per instance a summary, for each problem one line
 * "BAD instance=… seq=…: <what>" (first problem per instance). Returns 0 when the check
 * ran (see rep->problems), -1 when it could not (store or key unreadable). */
int tg_audit_verify(tg_store *s, const char *const *pubkey_paths, size_t n_pubkeys,
                    FILE *out, tg_audit_verify_report *rep, tg_error *err);

/* ------------------------------------------------------------------ keys, CLI */

/* Creates an Ed25519 key pair: private key PEM at path (mode 0600), public at path.pub. */
int tg_audit_keygen(const char *path, tg_error *err);

/* `toolgate audit verify|query|export|prune|keygen …`; argv[0] == "audit". Returns the
 * process exit code (0 ok, 1 problems found / failure, 2 usage). */
int tg_audit_cli_main(int argc, char **argv);

#endif /* TG_AUDIT_H */
