/*
 * audit_int.h — private to src/audit: Ed25519 keys (sign.c), the store columns derived
 * from a record and the JSON Lines form (record.c), the checkpoint bodies (checkpoint.c).
 */
#ifndef TG_AUDIT_INT_H
#define TG_AUDIT_INT_H

#include "audit/tg_audit.h"

/* ------------------------------------------------------------------ keys (sign.c) */

typedef struct audit_key audit_key;

/* A private key PEM (for signing; it also verifies) or a public key PEM (verify only). */
audit_key *audit_key_load(const char *path, int need_private, tg_error *err);
void       audit_key_free(audit_key *k);
/* 16 hex chars: the start of SHA-256 over the raw 32-byte public key. */
const char *audit_key_id(const audit_key *k);
/* Signature over the domain-separated message, base64 (caller frees). */
char *audit_key_sign(const audit_key *k, const char *msg, size_t len, tg_error *err);
/* 1 valid, 0 invalid. */
int   audit_key_verify(const audit_key *k, const char *msg, size_t len, const char *sig_b64);

/* ------------------------------------------------------------------ rows (record.c) */

/* The indexed columns of the store row, derived from the record (ts, delegator, agent,
 * tool, decision, ticket, approval, resource, resource_path, reasons). Strings come
 * from the record or the arena. instance, seq, body and hashes are left alone. */
void  audit_row_columns(const tg_audit_record *r, tg_arena *a, tg_store_audit_row *row);
/* {"instance":…,"seq":…,"prev_hash":…,"hash":…,"record":{…}}\n (SIEM sink, export). */
void  audit_jsonl_line(const tg_store_audit_row *row, tg_buf *out);

/* The writer's path to the canonical body. audit_args_canon appends the canonical text of
 * args ("null" when absent), with the values of keys matching the patterns (npat 0: none)
 * as "[REDACTED]", and says whether any was. audit_args_of gives a record's arguments as
 * tokens: r->args_ref, or r->args scanned into tmp (tg_jdoc_json_free it).
 * audit_record_canonical_text is tg_audit_record_canonical with the arguments' canonical
 * text already made (args_text NULL → null; the record's arguments are not looked at). */
bool  audit_args_canon(tg_jref args, const char *const *pat, size_t npat, tg_buf *out);
tg_jref audit_args_of(const tg_audit_record *r, tg_jdoc_json *tmp);
int   audit_record_canonical_text(const tg_audit_record *r, const char *args_text, tg_buf *out,
                                  tg_error *err);

/* ------------------------------------------------------------------ checkpoints */

/* Fields of a checkpoint body (the signed bytes). kind "checkpoint": seq/hash is the last
 * covered record. kind "prune": records up to seq (whose hash was hash) were deleted;
 * before_ms and deleted say what the prune did. */
typedef struct audit_cp {
    const char *kind;
    const char *instance;
    int64_t     seq;
    const char *hash;
    int64_t     time_ms;
    int64_t     before_ms;   /* prune only */
    int64_t     deleted;     /* prune only */
    const char *key_id;
} audit_cp;

/* Canonical body + signature → a store row (strings malloc'd into *blob). */
int  audit_cp_make(const audit_cp *cp, const audit_key *k, tg_store_checkpoint_row *row,
                   char **blob, tg_error *err);
/* Parses a stored body (strings point into *holder). */
int  audit_cp_parse(const char *body, audit_cp *cp, json_t **holder, tg_error *err);

#endif /* TG_AUDIT_INT_H */
