/*
 * fuzz_cedar.c — libFuzzer target for the Cedar parser and evaluator.
 *
 * The input is split at the first "\n---\n": the part before is policy text, the part
 * after is a JSON context. Policies that parse are dumped as EST and evaluated against
 * a small fixed entity store, so the lexer, parser, evaluator, JSON reader and EST
 * writer all see hostile input. Built and run by fuzz.sh with clang's sanitizers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cedar/cedar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char entities[] =
    "[{\"uid\":{\"type\":\"User\",\"id\":\"a\"},\"attrs\":{\"n\":1,\"s\":\"x\",\"r\":{\"k\":[1,2]}},"
    "\"parents\":[{\"type\":\"Group\",\"id\":\"g\"}],\"tags\":{\"t\":true}},"
    "{\"uid\":{\"type\":\"Group\",\"id\":\"g\"},\"attrs\":{},\"parents\":[{\"type\":\"User\",\"id\":\"a\"}]}]";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cedar_store *st;
    tg_error err;
    if (!st && !(st = cedar_store_load(entities, sizeof entities - 1, &err))) abort();
    const char *text = (const char *)data;
    const char *sep = memmem(data, size, "\n---\n", 5);
    size_t plen = sep ? (size_t)(sep - text) : size;
    cedar_policy_set *ps = cedar_policy_set_parse(text, plen, &err);
    if (!ps) return 0;
    tg_buf est = TG_BUF_INIT;
    cedar_policy_set_est(ps, &est);
    tg_buf_free(&est);
    tg_arena *a = tg_arena_new(0);
    cedar_request *rq = cedar_request_new(a, st);
    cedar_request_set_principal(rq, "User", 4, "a", 1, &err);
    cedar_request_set_action(rq, "Action", 6, "read", 4, &err);
    cedar_request_set_resource(rq, "Group", 5, "g", 1, &err);
    if (sep) cedar_request_set_context_json(rq, sep + 5, size - plen - 5, &err);
    cedar_response res;
    if (cedar_authorize(ps, rq, &res, &err)) abort();
    tg_arena_free(a);
    cedar_policy_set_free(ps);
    return 0;
}
