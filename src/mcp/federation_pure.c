/*
 * federation_pure.c — the pure pieces of federating several upstreams behind one
 * endpoint: opaque pagination cursors, tool/prompt name prefixes, capability merging.
 * No I/O; federation.c uses them to build answers, tests/mcp tests them alone.
 *
 * Why the cursor is MAC'd: it names an upstream by index and carries that upstream's
 * own cursor. Without a tag a client could aim a cursor at an upstream it never listed
 * or feed an upstream arbitrary cursor bytes; with it, toolgate only ever forwards
 * cursors that upstream itself produced.
 */
#include "mcp/mcp_int.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG_LEN 16

static void tag_of(const unsigned char key[32], const char *data, size_t n,
                   unsigned char tag[TAG_LEN])
{
    unsigned char full[EVP_MAX_MD_SIZE];
    unsigned int flen = 0;
    if (!HMAC(EVP_sha256(), key, 32, (const unsigned char *)data, n, full, &flen)) abort();
    memcpy(tag, full, TAG_LEN);
}

char *mcp_cursor_encode(const unsigned char key[32], const json_t *pairs)
{
    size_t jlen;
    char *json = tg_json_dump(pairs, &jlen);
    char *out = malloc(4 * (jlen / 3 + 1) + 1 + 4 * (TAG_LEN / 3 + 1) + 1);
    if (!out) abort();
    size_t o = tg_b64url_encode((const unsigned char *)json, jlen, out);
    free(json);
    unsigned char tag[TAG_LEN];
    tag_of(key, out, o, tag);
    out[o++] = '.';
    tg_b64url_encode(tag, TAG_LEN, out + o);
    return out;
}

json_t *mcp_cursor_decode(const unsigned char key[32], const char *cursor, size_t nupstreams,
                          tg_error *err)
{
    size_t len = strlen(cursor);
    const char *dot = strchr(cursor, '.');
    if (!dot || len > 8192) {
        tg_error_set(err, "Invalid cursor");
        return NULL;
    }
    size_t blen = (size_t)(dot - cursor);
    unsigned char want[TAG_LEN], got[TAG_LEN + 3];
    size_t glen = 0;
    tag_of(key, cursor, blen, want);
    if (tg_b64url_decode(dot + 1, len - blen - 1, got, &glen) != 0 || glen != TAG_LEN ||
        !tg_ct_equal(want, TAG_LEN, got, glen)) {
        tg_error_set(err, "Invalid cursor");
        return NULL;
    }
    unsigned char *raw = malloc(blen);
    size_t rlen = 0;
    if (!raw) abort();
    json_t *pairs = NULL;
    if (tg_b64url_decode(cursor, blen, raw, &rlen) == 0)
        pairs = tg_json_parse((const char *)raw, rlen, 4, NULL);
    free(raw);
    /* Authentic cursors are always well-formed; checking anyway keeps a key leak or a
     * bug from turning into out-of-range indices. */
    bool ok = json_is_array(pairs) && json_array_size(pairs) > 0;
    int64_t last = -1;
    for (size_t i = 0; ok && i < json_array_size(pairs); i++) {
        json_t *p = json_array_get(pairs, i);
        json_t *ix = json_array_get(p, 0), *c = json_array_get(p, 1);
        ok = json_is_array(p) && json_array_size(p) == 2 && json_is_integer(ix) &&
             json_integer_value(ix) > last && (uint64_t)json_integer_value(ix) < nupstreams &&
             json_is_string(c);
        if (ok) last = json_integer_value(ix);
    }
    if (!ok) {
        json_decref(pairs);
        tg_error_set(err, "Invalid cursor");
        return NULL;
    }
    return pairs;
}

char *mcp_prefix_add(const char *prefix, const char *name)
{
    size_t pl = prefix ? strlen(prefix) : 0, nl = strlen(name);
    char *s = malloc(pl + nl + 1);
    if (!s) abort();
    if (pl) memcpy(s, prefix, pl);
    memcpy(s + pl, name, nl + 1);
    return s;
}

const char *mcp_prefix_strip(const char *prefix, const char *name)
{
    if (!prefix || !*prefix) return name;
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl) != 0 || name[pl] == '\0') return NULL;
    return name + pl;
}

char *mcp_sub_key(size_t idx, const char *uri, size_t *len)
{
    char *key = NULL;
    int n = asprintf(&key, "%zu %s", idx, uri);
    if (n < 0) abort();
    *len = (size_t)n;
    return key;
}

/* Sets key.flag = true in dst when any source says so. */
static void merge_flag(json_t *dst, const json_t *src, const char *flag)
{
    json_t *f = json_object_get(src, flag);
    if (json_is_true(f)) json_object_set_new(dst, flag, json_true());
}

json_t *mcp_caps_merge(json_t *const *caps, size_t n)
{
    static const char *const keys[] = {"tools", "resources", "prompts", "logging", "completions"};
    json_t *out = json_object();
    for (size_t i = 0; i < n; i++) {
        if (!json_is_object(caps[i])) continue;
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            json_t *src = json_object_get(caps[i], keys[k]);
            if (!json_is_object(src)) continue;
            json_t *dst = json_object_get(out, keys[k]);
            if (!dst) {
                dst = json_object();
                json_object_set_new(out, keys[k], dst);
            }
            merge_flag(dst, src, "listChanged");
            merge_flag(dst, src, "subscribe");
        }
    }
    return out;
}
