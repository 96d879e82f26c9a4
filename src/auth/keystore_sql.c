/*
 * keystore_sql.c — the tg_apikey_store interface on the store's `api_keys` table
 * (src/store, SQLite or PostgreSQL), so `toolgate keys …` and the gateway share one
 * set of keys. The rows API of tg_store.h does the SQL; this file only maps a
 * tg_apikey_record to the table's columns and back:
 *
 *   record                 column
 *   id, agent, delegator, note, secret_hash      same name (NULL when absent)
 *   prev_secret_hash       prev_secret_hash (NULL when "")
 *   groups, cidrs          groups_csv, cidrs: comma-joined (NULL when empty)
 *   created, expires, revoked_at, last_used, prev_expires (Unix s)
 *                          created_ms, expires_ms, revoked_ms, last_used_ms,
 *                          prev_valid_until_ms (Unix ms; NULL for 0)
 *
 * Group names and CIDRs therefore must not contain a comma; put refuses them rather
 * than store something that reads back differently.
 */
#include <stdlib.h>
#include <string.h>

#include "auth/tg_auth.h"
#include "store/tg_store.h"

typedef struct sqlstore {
    tg_apikey_store iface;   /* first: the public pointer converts back */
    tg_store *store;         /* borrowed; outlives this */
} sqlstore;

/* ---------------------------------------------------------------- record → row */

static json_t *text_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

static json_t *ms_or_null(int64_t s)
{
    return s ? json_integer((json_int_t)s * 1000) : json_null();
}

/* "a,b,c", or NULL for an empty list; -1 if an item contains a comma or is empty. */
static int csv_join(const char **v, size_t n, const char *what, json_t **out, tg_error *err)
{
    tg_buf b = TG_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        if (!v[i][0] || strchr(v[i], ',')) {
            tg_buf_free(&b);
            return tg_error_set(err, "%s \"%s\" must be non-empty and contain no comma", what, v[i]);
        }
        tg_buf_printf(&b, "%s%s", i ? "," : "", v[i]);
    }
    *out = n ? json_string(b.data) : json_null();
    tg_buf_free(&b);
    return 0;
}

#define RECORD_COLUMNS 12

/* Every column except id. */
static json_t *record_columns(const tg_apikey_record *r, tg_error *err)
{
    json_t *groups, *cidrs;
    if (csv_join(r->groups, r->n_groups, "group", &groups, err) < 0)
        return NULL;
    if (csv_join(r->cidrs, r->n_cidrs, "CIDR", &cidrs, err) < 0) {
        json_decref(groups);
        return NULL;
    }
    json_t *o = json_object();
    json_object_set_new(o, "secret_hash", json_string(r->secret_hash));
    json_object_set_new(o, "prev_secret_hash", text_or_null(r->prev_secret_hash));
    json_object_set_new(o, "prev_valid_until_ms", ms_or_null(r->prev_expires));
    json_object_set_new(o, "agent", json_string(r->agent ? r->agent : ""));
    json_object_set_new(o, "delegator", text_or_null(r->delegator));
    json_object_set_new(o, "groups_csv", groups);
    json_object_set_new(o, "cidrs", cidrs);
    json_object_set_new(o, "note", text_or_null(r->note));
    json_object_set_new(o, "created_ms", ms_or_null(r->created));
    json_object_set_new(o, "expires_ms", ms_or_null(r->expires));
    json_object_set_new(o, "revoked_ms", ms_or_null(r->revoked_at));
    json_object_set_new(o, "last_used_ms", ms_or_null(r->last_used));
    /* jansson refuses text that is not UTF-8 (json_string → NULL, member not set). */
    if (json_object_size(o) != RECORD_COLUMNS) {
        json_decref(o);
        tg_error_set(err, "agent, delegator, groups and note must be valid UTF-8");
        return NULL;
    }
    return o;
}

/* ---------------------------------------------------------------- row → record */

static const char *col_text(tg_arena *a, const json_t *row, const char *name)
{
    const char *s = json_string_value(json_object_get(row, name));
    return s ? tg_arena_strdup(a, s) : NULL;
}

static int64_t col_secs(const json_t *row, const char *name)
{
    return (int64_t)(json_integer_value(json_object_get(row, name)) / 1000);
}

static const char **csv_split(tg_arena *a, const char *csv, size_t *n)
{
    size_t count = 1, i = 0;
    *n = 0;
    if (!csv)
        return NULL;
    for (const char *p = csv; *p; p++)
        count += *p == ',';
    const char **v = tg_arena_calloc(a, count, sizeof *v);
    for (const char *p = csv;; i++) {
        const char *comma = strchr(p, ',');
        v[i] = tg_arena_strndup(a, p, comma ? (size_t)(comma - p) : strlen(p));
        if (!comma)
            break;
        p = comma + 1;
    }
    *n = count;
    return v;
}

/* Fixed-size hex columns; a row that does not fit is corrupt, not truncatable. */
static int copy_hash(char *dst, const char *src, const char *id, tg_error *err)
{
    if (!src) {
        dst[0] = '\0';
        return 0;
    }
    if (strlen(src) != TG_APIKEY_HASH_LEN)
        return tg_error_set(err, "store: API key %s has a malformed secret hash", id);
    memcpy(dst, src, TG_APIKEY_HASH_LEN + 1);
    return 0;
}

static int row_record(const json_t *row, tg_arena *a, tg_apikey_record *out, tg_error *err)
{
    const char *id = json_string_value(json_object_get(row, "id"));
    memset(out, 0, sizeof *out);
    if (!id || strlen(id) != TG_APIKEY_ID_LEN)
        return tg_error_set(err, "store: an api_keys row has a malformed id");
    memcpy(out->id, id, TG_APIKEY_ID_LEN + 1);
    if (copy_hash(out->secret_hash, json_string_value(json_object_get(row, "secret_hash")), id,
                  err) < 0 ||
        copy_hash(out->prev_secret_hash,
                  json_string_value(json_object_get(row, "prev_secret_hash")), id, err) < 0)
        return -1;
    out->agent = col_text(a, row, "agent");
    out->delegator = col_text(a, row, "delegator");
    out->note = col_text(a, row, "note");
    out->groups = csv_split(a, json_string_value(json_object_get(row, "groups_csv")), &out->n_groups);
    out->cidrs = csv_split(a, json_string_value(json_object_get(row, "cidrs")), &out->n_cidrs);
    out->created = col_secs(row, "created_ms");
    out->expires = col_secs(row, "expires_ms");
    out->revoked_at = col_secs(row, "revoked_ms");
    out->last_used = col_secs(row, "last_used_ms");
    out->prev_expires = out->prev_secret_hash[0] ? col_secs(row, "prev_valid_until_ms") : 0;
    if (!out->prev_expires)
        out->prev_secret_hash[0] = '\0';  /* the invariant of tg_apikey_record */
    return 0;
}

/* ---------------------------------------------------------------- the interface */

static int sql_get(void *ctx, const char *id, tg_arena *a, tg_apikey_record *out, tg_error *err)
{
    sqlstore *s = ctx;
    err->msg[0] = '\0';
    json_t *row = tg_store_row_get(s->store, TG_STORE_API_KEYS, id, err);
    if (!row)
        return err->msg[0] ? -1 : 0;
    int rc = row_record(row, a, out, err);
    json_decref(row);
    return rc < 0 ? -1 : 1;
}

static int sql_put(void *ctx, const tg_apikey_record *rec, tg_error *err)
{
    sqlstore *s = ctx;
    json_t *cols = record_columns(rec, err);
    if (!cols)
        return -1;
    int rc = tg_store_row_update(s->store, TG_STORE_API_KEYS, rec->id, cols, NULL, NULL, err);
    if (rc == 0) {  /* no such row yet */
        json_object_set_new(cols, "id", json_string(rec->id));
        rc = tg_store_row_insert(s->store, TG_STORE_API_KEYS, cols, err);
    }
    json_decref(cols);
    return rc < 0 ? -1 : 0;
}

static int by_created(const void *x, const void *y)
{
    const tg_apikey_record *a = x, *b = y;
    if (a->created != b->created)
        return a->created < b->created ? -1 : 1;
    return strcmp(a->id, b->id);
}

static int sql_list(void *ctx, tg_arena *a, tg_apikey_record **out, size_t *n, tg_error *err)
{
    sqlstore *s = ctx;
    json_t *rows = tg_store_row_list(s->store, TG_STORE_API_KEYS, NULL, NULL, err);
    if (!rows)
        return -1;
    size_t count = json_array_size(rows);
    tg_apikey_record *recs = tg_arena_calloc(a, count ? count : 1, sizeof *recs);
    for (size_t i = 0; i < count; i++) {
        if (row_record(json_array_get(rows, i), a, &recs[i], err) < 0) {
            json_decref(rows);
            return -1;
        }
    }
    json_decref(rows);
    qsort(recs, count, sizeof *recs, by_created);
    *out = recs;
    *n = count;
    return 0;
}

static int sql_touch(void *ctx, const char *id, int64_t when, tg_error *err)
{
    sqlstore *s = ctx;
    json_t *set = json_pack("{s:I}", "last_used_ms", (json_int_t)when * 1000);
    int rc = tg_store_row_update(s->store, TG_STORE_API_KEYS, id, set, NULL, NULL, err);
    json_decref(set);
    return rc < 0 ? -1 : 0;
}

tg_apikey_store *tg_apikey_sqlstore_new(struct tg_store *store)
{
    sqlstore *s = calloc(1, sizeof *s);
    if (!s)
        abort();  /* OOM aborts, as everywhere (arena.c) */
    s->store = store;
    s->iface = (tg_apikey_store){s, sql_get, sql_put, sql_list, sql_touch};
    return &s->iface;
}

void tg_apikey_sqlstore_free(tg_apikey_store *st)
{
    free(st);
}
