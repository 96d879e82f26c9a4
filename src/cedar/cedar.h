/*
 * cedar.h — the Cedar policy engine: parse policies, load entities, authorize requests.
 *
 * A self-contained library that knows nothing of MCP or toolgate. It reproduces the
 * Cedar reference implementation's decisions exactly (see docs/cedar.md of the product
 * docs): parse errors carry "line:column: expected X, found Y", evaluation errors skip the
 * policy and are reported by id, the decision rule is Cedar's.
 *
 * Lifetimes and threads:
 *   - A cedar_policy_set and a cedar_store are immutable after creation and may be shared
 *     by any number of requests (and threads) until freed.
 *   - A cedar_request and everything cedar_authorize returns live in the tg_arena given to
 *     cedar_request_new; reset or free that arena to release them. The store is never
 *     modified by a request: request-scoped entities (e.g. the caller as principal) are an
 *     overlay that lives in the request's arena.
 */
#ifndef CEDAR_H
#define CEDAR_H

#include <stddef.h>
#include <stdint.h>

#include "common/tg_common.h"

typedef struct cedar_policy_set cedar_policy_set;
typedef struct cedar_store cedar_store;
typedef struct cedar_request cedar_request;

typedef enum { CEDAR_PERMIT = 0, CEDAR_FORBID = 1 } cedar_effect;
typedef enum { CEDAR_DENY = 0, CEDAR_ALLOW = 1 } cedar_decision;

/* ---------------------------------------------------------------- policies */

/* Parses a policy set (any number of policies, possibly none). On error returns NULL and
 * err holds "LINE:COL: message" for the first error, saying what was expected and found. */
cedar_policy_set *cedar_policy_set_parse(const char *text, size_t len, tg_error *err);
void cedar_policy_set_free(cedar_policy_set *ps);

size_t       cedar_policy_count(const cedar_policy_set *ps);
/* The id toolgate reports: the value of @id("...") when present, else "policyN" where N is
 * the policy's position in the text. */
const char  *cedar_policy_id(const cedar_policy_set *ps, size_t i);
cedar_effect cedar_policy_effect(const cedar_policy_set *ps, size_t i);
/* Annotations in source order; @key without a value reads as "". Values may contain NUL
 * bytes, so *value_len gives the length. */
size_t cedar_policy_annotation_count(const cedar_policy_set *ps, size_t i);
void   cedar_policy_annotation_at(const cedar_policy_set *ps, size_t i, size_t j,
                                  const char **key, const char **value, size_t *value_len);
/* The value of annotation `key` (NUL-terminated), or NULL when the policy has none. */
const char *cedar_policy_annotation(const cedar_policy_set *ps, size_t i, const char *key);

/* Appends the policy set as a JSON array of policies in the shape of Cedar's JSON policy
 * format (the "EST" of cedar-wasm's policyToJson). */
void cedar_policy_set_est(const cedar_policy_set *ps, tg_buf *out);

/* ---------------------------------------------------------------- entities */

/* Loads Cedar's entity JSON text ([{"uid":{"type","id"},"attrs":{},"parents":[],"tags":{}}],
 * values with explicit {"__entity":..} / {"__extn":..} escapes; JSON integers are exact
 * int64; strings and keys may contain U+0000) and computes every entity's ancestor
 * closure once. Cycles in the hierarchy are allowed and terminate. */
cedar_store *cedar_store_load(const char *json, size_t len, tg_error *err);
void   cedar_store_free(cedar_store *st);
size_t cedar_store_count(const cedar_store *st);

/* ---------------------------------------------------------------- requests */

/* A request lives in `arena` and reads `store` (which may be NULL: no entities). */
cedar_request *cedar_request_new(tg_arena *arena, const cedar_store *store);
/* Entity uids as counted strings: type "Ns::Type", id any bytes. */
int cedar_request_set_principal(cedar_request *rq, const char *type, size_t tlen,
                                const char *id, size_t ilen, tg_error *err);
int cedar_request_set_action(cedar_request *rq, const char *type, size_t tlen,
                             const char *id, size_t ilen, tg_error *err);
int cedar_request_set_resource(cedar_request *rq, const char *type, size_t tlen,
                               const char *id, size_t ilen, tg_error *err);
/* JSON arguments below are text (same strict reader as cedar_store_load). */
/* The context: a JSON object in entity-attribute encoding. Unset means {}. */
int cedar_request_set_context_json(cedar_request *rq, const char *json, size_t len, tg_error *err);
/* Adds one entity (same JSON shape as one element of the entities array) visible to this
 * request only. Fails when an entity with that uid already exists in the store or the
 * request: an overlay never silently replaces data the store's closure was built from.
 * A store entity whose parent exists only in the overlay does not inherit the overlay
 * entity's ancestors; the overlay is meant for leaves such as principal and resource. */
int cedar_request_add_entity_json(cedar_request *rq, const char *json, size_t len, tg_error *err);
/* {"principal":{"type","id"},"action":..,"resource":..,"context":{..}} */
int cedar_request_from_json(cedar_request *rq, const char *json, size_t len, tg_error *err);

/* ---------------------------------------------------------------- building a request directly */

/* Request-scoped entities and the context built value by value instead of written as JSON
 * text and read back (that round trip was most of a gateway decision's cost). A builder
 * makes the values cedar_request_add_entity_json / cedar_request_set_context_json make of
 * the equivalent JSON text, and refuses at least everything they refuse: entity type
 * names, UTF-8 (every string and key), extension arguments, duplicate record keys, nesting.
 * Its error messages are its own: a caller that must report the JSON functions' exact
 * words redoes the request through them when a builder fails.
 *
 * Usage is the shape of the JSON: values are either complete (string, long, bool, entity
 * reference, extension value, a parsed value) or opened and closed (record, set). In a
 * record each value follows its key. An entity is opened with its uid, then takes one
 * record (its attributes) and its parents, then is closed, which adds it to the request.
 * The context is the one value built outside any entity, closed by cedar_build_context.
 * The first failure is kept; later calls do nothing and the closing calls return -1 with
 * it. Strings are copied into the request's arena. */
typedef struct cedar_builder cedar_builder;
typedef struct cedar_value cedar_value;

cedar_builder *cedar_builder_new(cedar_request *rq);
void cedar_build_string(cedar_builder *b, const char *s, size_t n);
void cedar_build_long(cedar_builder *b, int64_t v);
void cedar_build_bool(cedar_builder *b, int v);
void cedar_build_entity_ref(cedar_builder *b, const char *type, size_t tlen, const char *id,
                            size_t ilen);
/* An extension function of one string argument: "decimal", "ip", "datetime", "duration". */
void cedar_build_extn(cedar_builder *b, const char *fn, const char *arg, size_t n);
/* A value from cedar_attr_value_parse (shared, not copied: it must outlive the request). */
void cedar_build_value(cedar_builder *b, const cedar_value *v);
void cedar_build_record_begin(cedar_builder *b);
void cedar_build_key(cedar_builder *b, const char *k, size_t n);
void cedar_build_record_end(cedar_builder *b);
void cedar_build_set_begin(cedar_builder *b);
void cedar_build_set_end(cedar_builder *b);
void cedar_build_entity_begin(cedar_builder *b, const char *type, size_t tlen, const char *id,
                              size_t ilen);
void cedar_build_parent(cedar_builder *b, const char *type, size_t tlen, const char *id,
                        size_t ilen);
int  cedar_build_entity_end(cedar_builder *b, tg_error *err);
int  cedar_build_context(cedar_builder *b, tg_error *err);

/* One attribute value in Cedar's entity JSON encoding (escapes included), converted into
 * arena a once (e.g. an entities file's template attributes, reused by every request).
 * NULL and err when cedar_request_add_entity_json would refuse it as an attribute. */
const cedar_value *cedar_attr_value_parse(tg_arena *a, const char *json, size_t len,
                                          tg_error *err);

/* Whether the store has the entity Type::"id". */
int cedar_store_has(const cedar_store *st, const char *type, size_t tlen, const char *id,
                    size_t ilen);

/* ---------------------------------------------------------------- authorization */

typedef struct cedar_response {
    cedar_decision decision;
    size_t         nreasons;    /* policies that determined the decision (indexes, ascending) */
    const size_t  *reasons;
    size_t         nerrors;     /* policies whose evaluation failed (indexes, ascending) */
    const size_t  *errors;
    const char *const *error_msgs;  /* one message per entry of errors */
} cedar_response;

/* Any satisfied forbid → Deny (reasons: those forbids); else any satisfied permit → Allow
 * (reasons: those permits); else Deny with no reasons. A policy whose evaluation errors is
 * skipped and listed in errors. Returns -1 only when the request is incomplete
 * (principal, action or resource unset). */
int cedar_authorize(const cedar_policy_set *ps, cedar_request *rq, cedar_response *out,
                    tg_error *err);

#endif /* CEDAR_H */
