/*
 * schema.c — the demo server's catalogue loader and argument validator.
 *
 * Tool and prompt definitions are written in C as JSON with ' for " (readable, no
 * escaping); demo_def_parse turns them into jansson values once at start-up. Tool
 * arguments are then checked against the tool's own inputSchema, so a schema is the one
 * place an argument is described, advertised and enforced. Only the JSON Schema subset
 * the catalogues use is understood; a keyword outside it is ignored (it still reaches
 * the client unchanged, which the json-schema-2020-12 conformance scenario checks).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo_int.h"

json_t *demo_def_parse(const char *def)
{
    size_t n = strlen(def);
    char *text = malloc(n + 1);
    if (!text) abort();
    for (size_t i = 0; i <= n; i++)
        text[i] = def[i] == '\'' ? '"' : def[i];
    tg_error err;
    json_t *v = tg_json_parse(text, n, TG_JSON_MAX_DEPTH, &err);
    if (!v) {
        /* A broken built-in catalogue is a bug in this program, not an input error. */
        fprintf(stderr, "demo: built-in definition does not parse: %s\n%s\n", err.msg, text);
        abort();
    }
    free(text);
    return v;
}

static int type_matches(const char *type, const json_t *v)
{
    if (!strcmp(type, "string"))  return json_is_string(v);
    if (!strcmp(type, "integer")) return json_is_integer(v);
    if (!strcmp(type, "number"))  return json_is_number(v);
    if (!strcmp(type, "boolean")) return json_is_boolean(v);
    if (!strcmp(type, "object"))  return json_is_object(v);
    if (!strcmp(type, "array"))   return json_is_array(v);
    if (!strcmp(type, "null"))    return json_is_null(v);
    return 1; /* unknown type keyword: not ours to enforce */
}

/* Checks one value against one (sub)schema. `what` names it in messages. */
static int check_value(const json_t *schema, const json_t *v, const char *what, tg_error *err)
{
    const json_t *type = json_object_get(schema, "type");
    if (json_is_string(type)) {
        if (!type_matches(json_string_value(type), v))
            return tg_error_set(err, "argument '%s' must be of type %s", what,
                                json_string_value(type));
    } else if (json_is_array(type)) {
        size_t i;
        const json_t *t;
        int ok = 0;
        json_array_foreach(type, i, t)
            if (json_is_string(t) && type_matches(json_string_value(t), v)) ok = 1;
        if (!ok)
            return tg_error_set(err, "argument '%s' has the wrong type", what);
    }
    const json_t *en = json_object_get(schema, "enum");
    if (json_is_array(en)) {
        size_t i;
        const json_t *e;
        int found = 0;
        json_array_foreach(en, i, e)
            if (json_equal(e, v)) found = 1;
        if (!found) {
            char *allowed = tg_json_dump(en, NULL);
            tg_error_set(err, "argument '%s' must be one of %s", what, allowed);
            free(allowed);
            return -1;
        }
    }
    if (json_is_number(v)) {
        const json_t *mn = json_object_get(schema, "minimum");
        const json_t *mx = json_object_get(schema, "maximum");
        double d = json_number_value(v);
        if (json_is_number(mn) && d < json_number_value(mn))
            return tg_error_set(err, "argument '%s' must be at least %g", what,
                                json_number_value(mn));
        if (json_is_number(mx) && d > json_number_value(mx))
            return tg_error_set(err, "argument '%s' must be at most %g", what,
                                json_number_value(mx));
    }
    if (json_is_string(v)) {
        const json_t *ml = json_object_get(schema, "minLength");
        if (json_is_integer(ml) && (json_int_t)json_string_length(v) < json_integer_value(ml))
            return tg_error_set(err, "argument '%s' must not be empty", what);
    }
    if (json_is_array(v)) {
        const json_t *items = json_object_get(schema, "items");
        if (json_is_object(items)) {
            size_t i;
            const json_t *e;
            json_array_foreach(v, i, e)
                if (check_value(items, e, what, err) < 0) return -1;
        }
    }
    return 0;
}

int demo_schema_check(const json_t *schema, const json_t *args, tg_error *err)
{
    if (!json_is_object(args))
        return tg_error_set(err, "arguments must be an object");
    const json_t *props = json_object_get(schema, "properties");
    const json_t *req = json_object_get(schema, "required");
    size_t i;
    const json_t *r;
    json_array_foreach(req, i, r) {
        if (json_is_string(r) && !json_object_get(args, json_string_value(r)))
            return tg_error_set(err, "missing required argument '%s'", json_string_value(r));
    }
    int closed = json_is_false(json_object_get(schema, "additionalProperties"));
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)args, key, v) {
        const json_t *ps = json_object_get(props, key);
        if (!ps) {
            if (closed) return tg_error_set(err, "unexpected argument '%s'", key);
            continue;
        }
        if (check_value(ps, v, key, err) < 0) return -1;
    }
    return 0;
}
