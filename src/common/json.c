/*
 * json.c — strict JSON in, compact JSON out, and the JSON-RPC envelope rules.
 *
 * Why strict: a gateway that reads a message differently from the upstream can be
 * steered around its own policy (a duplicate "name" key read first-wins here and
 * last-wins upstream). So every byte a client or upstream sends goes through
 * tg_json_parse, which rejects what jansson would accept but another parser might
 * read differently: duplicate keys, absurd nesting, integers outside int64.
 */
#include "common/tg_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tg_error_set(tg_error *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* jansson's own nesting limit is a compile-time 2048; ours is smaller and explicit.
 * A linear pre-scan is far cheaper than the parse that follows. Reports the position
 * of the first bracket beyond the limit. */
static int depth_ok(const char *buf, size_t len, int max_depth, tg_error *err)
{
    int depth = 0, in_str = 0, esc = 0;
    size_t line = 1, col = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        col++;
        if (c == '\n') {
            line++;
            col = 0;
        }
        if (in_str) {
            if (esc) esc = 0;
            else if (c == '\\') esc = 1;
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == '"') in_str = 1;
        else if (c == '[' || c == '{') {
            if (++depth > max_depth) {
                tg_error_set(err, "line %zu column %zu: nesting deeper than %d levels", line, col,
                             max_depth);
                return 0;
            }
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 1;
}

json_t *tg_json_parse(const char *buf, size_t len, int max_depth, tg_error *err)
{
    if (max_depth <= 0) max_depth = TG_JSON_MAX_DEPTH;
    if (!depth_ok(buf, len, max_depth, err)) return NULL;
    json_error_t je;
    json_t *v = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!v) {
        tg_error_set(err, "line %d column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    return v;
}

char *tg_json_dump(const json_t *v, size_t *len_out)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) abort(); /* only fails on OOM or invalid UTF-8 we never create */
    if (len_out) *len_out = strlen(s);
    return s;
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
    tg_buf_append((tg_buf *)data, buffer, size);
    return 0;
}

void tg_json_dump_buf(const json_t *v, tg_buf *out)
{
    json_dump_callback(v, dump_cb, out, JSON_COMPACT | JSON_ENCODE_ANY);
}

tg_rpc_kind tg_rpc_classify(const json_t *msg, tg_error *err)
{
    if (!json_is_object(msg)) {
        tg_error_set(err, "a JSON-RPC message must be an object");
        return TG_RPC_KIND_INVALID;
    }
    const json_t *ver = json_object_get(msg, "jsonrpc");
    if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0") != 0) {
        tg_error_set(err, "\"jsonrpc\" must be \"2.0\"");
        return TG_RPC_KIND_INVALID;
    }
    const json_t *id = json_object_get(msg, "id");
    if (id && !json_is_string(id) && !json_is_integer(id)) {
        tg_error_set(err, "\"id\" must be a string or an integer");
        return TG_RPC_KIND_INVALID;
    }
    const json_t *method = json_object_get(msg, "method");
    if (method) {
        if (!json_is_string(method)) {
            tg_error_set(err, "\"method\" must be a string");
            return TG_RPC_KIND_INVALID;
        }
        const json_t *params = json_object_get(msg, "params");
        if (params && !json_is_object(params) && !json_is_array(params)) {
            tg_error_set(err, "\"params\" must be an object or an array");
            return TG_RPC_KIND_INVALID;
        }
        if (json_object_get(msg, "result") || json_object_get(msg, "error")) {
            tg_error_set(err, "a request cannot carry \"result\" or \"error\"");
            return TG_RPC_KIND_INVALID;
        }
        return id ? TG_RPC_KIND_REQUEST : TG_RPC_KIND_NOTIFICATION;
    }
    const json_t *result = json_object_get(msg, "result");
    const json_t *error = json_object_get(msg, "error");
    if (!id) {
        tg_error_set(err, "message has neither \"method\" nor \"id\"");
        return TG_RPC_KIND_INVALID;
    }
    if ((result != NULL) == (error != NULL)) {
        tg_error_set(err, "a response needs exactly one of \"result\" and \"error\"");
        return TG_RPC_KIND_INVALID;
    }
    if (error) {
        if (!json_is_object(error) || !json_is_integer(json_object_get(error, "code")) ||
            !json_is_string(json_object_get(error, "message"))) {
            tg_error_set(err, "\"error\" needs an integer \"code\" and a string \"message\"");
            return TG_RPC_KIND_INVALID;
        }
    }
    return TG_RPC_KIND_RESPONSE;
}

json_t *tg_rpc_error(const json_t *id, int code, const char *message, json_t *data_steal)
{
    json_t *e = json_pack("{s:i,s:s}", "code", code, "message", message);
    if (data_steal) json_object_set_new(e, "data", data_steal);
    json_t *m = json_pack("{s:s}", "jsonrpc", "2.0");
    json_object_set_new(m, "id", id ? json_deep_copy(id) : json_null());
    json_object_set_new(m, "error", e);
    return m;
}
