/*
 * federation.c — serving client requests from one or several upstreams: the merged
 * InitializeResult, list fan-out with prefixes and opaque cursors, and routing of
 * named operations (tools/call, prompts/get, resources/…, completion/complete) to the
 * upstream that listed the name.
 *
 * Transparency rule: with exactly one upstream and no prefix, requests and answers pass
 * unchanged (apart from id and progress-token rewriting), cursors included, so a client
 * cannot tell toolgate from the server. Otherwise names are routed through per-session
 * maps (visible name → upstream) filled by the lists this session fetched; a name the
 * session never listed triggers one refresh of the lists before it is declared unknown.
 * When two upstreams expose the same visible name, the first configured one wins and
 * the other's entry is hidden (logged): a name must never route ambiguously.
 *
 * Fan-out protocol with mcp_call: `c->nwait++` (guard), one mcp_call_ask per upstream,
 * mcp_call_sent(c) drops the guard; c->finish runs once every part is in.
 */
#include "mcp/mcp_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMPONENT "mcp"
#define MAX_REFRESH_PAGES 50

/* Exactly one upstream, without a prefix: everything passes unchanged. */
static bool transparent(const tg_mcp *m)
{
    return m->cfg->nupstreams == 1 &&
           !(m->cfg->upstreams[0].prefix && m->cfg->upstreams[0].prefix[0]);
}

/* With a policy, tools are routed through the session's lists even when transparent:
 * the catalog needs each tool's annotations and tools/list must be filtered. */
static bool tools_transparent(const tg_mcp *m)
{
    return transparent(m) && !m->gates.policy;
}

static size_t nup(const mcp_call *c)
{
    return c->m->cfg->nupstreams;
}

static const char *prefix_of(const tg_mcp *m, size_t idx)
{
    return m->cfg->upstreams[idx].prefix;
}

/* ---------------------------------------------------------------- forwarding */

/* The single part's reply, under the client's id: the upstream's bytes with the id
 * spliced in, nothing re-serialised. A decided call records its outcome first. */
static void finish_forward(mcp_call *c)
{
    mcp_reply *reply = NULL;
    for (size_t i = 0; i < nup(c) && !reply; i++) reply = c->parts[i];
    tg_jsplice ed = {reply->id_start, reply->id_end, c->idkey, strlen(c->idkey)};
    tg_buf out = TG_BUF_INIT;
    tg_buf_reserve(&out, reply->len - (ed.end - ed.start) + ed.len);
    tg_jsplice_build(&out, reply->raw, 0, reply->len, &ed, 1);
    if (c->gate) {
        size_t len = out.len;
        mcp_gate_answer(c, reply, tg_buf_steal(&out), len);
        return;
    }
    mcp_call_answer_raw(c, out.data, out.len);
    tg_buf_free(&out);
}

void mcp_forward(mcp_call *c, size_t idx, json_t *params, const char *rename)
{
    c->finish = finish_forward;
    c->nwait++;
    if (params) mcp_call_ask(c, idx, c->method, params);
    else mcp_call_ask_raw(c, idx, rename);
    mcp_call_sent(c);
}

/* ---------------------------------------------------------------- lists */

typedef enum { K_TOOLS, K_PROMPTS, K_RESOURCES, K_TEMPLATES } kind_id;

typedef struct list_kind {
    kind_id id;
    const char *method;
    const char *items;  /* array in the result */
    const char *key;    /* the routing key inside each item */
    const char *cap;    /* server capability that offers it */
    bool prefixed;
} list_kind;

static const list_kind kinds[] = {
    {K_TOOLS, "tools/list", "tools", "name", "tools", true},
    {K_PROMPTS, "prompts/list", "prompts", "name", "prompts", true},
    {K_RESOURCES, "resources/list", "resources", "uri", "resources", false},
    {K_TEMPLATES, "resources/templates/list", "resourceTemplates", "uriTemplate", "resources", false},
};

static const list_kind *kind_of(const char *method)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i].method, method) == 0) return &kinds[i];
    return NULL;
}

static mcp_map *kind_map(mcp_session *s, const list_kind *k)
{
    switch (k->id) {
    case K_TOOLS: return &s->tools;
    case K_PROMPTS: return &s->prompts;
    case K_RESOURCES: return &s->resources;
    default: return NULL;
    }
}

static bool *kind_known(mcp_session *s, const list_kind *k)
{
    switch (k->id) {
    case K_TOOLS: return &s->tools_known;
    case K_PROMPTS: return &s->prompts_known;
    default: return &s->resources_known;
    }
}

void mcp_routes_invalidate(mcp_session *s, const char *which)
{
    if (strncmp(which, "tools/", 6) == 0) {
        mcp_map_clear(&s->tools);
        json_object_clear(s->tool_annotations);
        json_object_clear(s->tools_shown);
        s->tools_known = false;
    } else if (strncmp(which, "prompts/", 8) == 0) {
        mcp_map_clear(&s->prompts);
        s->prompts_known = false;
    } else if (strncmp(which, "resources/", 10) == 0) {
        mcp_map_clear(&s->resources);
        json_array_clear(s->templates);
        s->resources_known = false;
    }
}

/* Records one listed item in the session's routes. Returns the name the client sees
 * (malloc'd), or NULL when the item is malformed or its name is taken by another
 * upstream. */
static char *absorb(mcp_session *s, const list_kind *k, size_t idx, const json_t *item)
{
    const char *name = json_string_value(json_object_get(item, k->key));
    if (!name) return NULL;
    char *visible = mcp_prefix_add(k->prefixed ? prefix_of(s->m, idx) : NULL, name);
    mcp_map *map = kind_map(s, k);
    if (map) {
        uintptr_t owner = (uintptr_t)mcp_map_get(map, visible, strlen(visible));
        /* The first configured upstream wins, whatever order the answers came in. */
        if (owner && owner < idx + 1) {
            tg_log_warn(COMPONENT, "'%s' from upstream '%s' hidden: upstream '%s' has it",
                        visible, s->m->cfg->upstreams[idx].name,
                        s->m->cfg->upstreams[owner - 1].name);
            free(visible);
            return NULL;
        }
        mcp_map_put(map, visible, strlen(visible), (void *)(idx + 1));
        json_t *ann = json_object_get(item, "annotations");
        if (k->id == K_TOOLS && json_is_object(ann))
            json_object_set(s->tool_annotations, visible, ann);
    } else {
        json_array_append_new(s->templates, json_pack("[I,s]", (json_int_t)idx, name));
    }
    return visible;
}

static json_t *params_without_cursor(mcp_call *c)
{
    json_t *p = mcp_call_params(c);
    json_t *copy = json_is_object(p) ? json_copy(p) : json_object();
    json_object_del(copy, "cursor");
    return copy;
}

static void list_finish(mcp_call *c)
{
    const list_kind *k = kind_of(c->method);
    mcp_session *s = c->s;
    json_t *items = json_array(), *next = json_array();
    json_t *first_error = NULL;
    size_t ok = 0;
    if (k->id == K_TOOLS) mcp_gate_tools_listing(c);
    for (size_t i = 0; i < nup(c); i++) {
        json_t *reply = mcp_call_part(c, i);
        if (!reply) continue;
        json_t *result = json_object_get(reply, "result");
        json_t *arr = json_object_get(result, k->items);
        if (!json_is_array(arr)) {
            if (!first_error) first_error = reply;
            tg_log_warn(COMPONENT, "%s from upstream '%s' failed", k->method,
                        c->m->cfg->upstreams[i].name);
            continue;
        }
        ok++;
        for (size_t j = 0; j < json_array_size(arr); j++) {
            json_t *item = json_array_get(arr, j);
            char *visible = absorb(s, k, i, item);
            if (!visible) continue;
            if (k->id == K_TOOLS) {
                bool shown = mcp_gate_tool_visible(c, i, item, visible);
                mcp_gate_tools_listed(c, i, item, visible, shown);
                if (!shown) {
                    free(visible);
                    continue;
                }
            }
            json_t *out = json_copy(item);
            json_object_set_new(out, k->key, json_string(visible));
            json_array_append_new(items, out);
            free(visible);
        }
        json_t *nc = json_object_get(result, "nextCursor");
        if (json_is_string(nc)) json_array_append_new(next, json_pack("[I,O]", (json_int_t)i, nc));
    }
    if (!ok && first_error) {
        json_decref(items);
        json_decref(next);
        json_t *out = json_copy(first_error);
        json_object_set(out, "id", c->id);
        mcp_call_answer(c, out);
        return;
    }
    if (json_array_size(next) == 0) *kind_known(s, k) = true;
    json_t *result = json_pack("{s:o}", k->items, items);
    if (json_array_size(next) > 0) {
        char *cur = mcp_cursor_encode(c->m->cursor_key, next);
        json_object_set_new(result, "nextCursor", json_string(cur));
        free(cur);
    }
    json_decref(next);
    mcp_call_result(c, result);
}

static void route_list(mcp_call *c, const list_kind *k)
{
    if (k->id == K_TOOLS ? tools_transparent(c->m) : transparent(c->m)) {
        mcp_forward(c, 0, NULL, NULL);
        return;
    }
    json_t *cursor = json_object_get(mcp_call_params(c), "cursor");
    json_t *pairs = NULL;
    if (cursor) {
        tg_error err;
        pairs = json_is_string(cursor)
            ? mcp_cursor_decode(c->m->cursor_key, json_string_value(cursor), nup(c), &err) : NULL;
        if (!pairs) {
            mcp_call_error(c, TG_RPC_INVALID_PARAMS, NULL, "Invalid cursor");
            return;
        }
    } else if (k->id == K_TEMPLATES) {
        json_array_clear(c->s->templates);
    }
    c->finish = list_finish;
    c->nwait++;
    json_t *base = params_without_cursor(c);
    if (pairs) {
        for (size_t i = 0; i < json_array_size(pairs); i++) {
            json_t *pair = json_array_get(pairs, i);
            json_t *p = json_copy(base);
            json_object_set(p, "cursor", json_array_get(pair, 1));
            mcp_call_ask(c, (size_t)json_integer_value(json_array_get(pair, 0)), k->method, p);
            json_decref(p);
        }
    } else {
        for (size_t i = 0; i < nup(c); i++)
            if (mcp_link_has(mcp_session_link(c->s, i), k->cap))
                mcp_call_ask(c, i, k->method, json_object_size(base) ? base : NULL);
    }
    json_decref(base);
    json_decref(pairs);
    mcp_call_sent(c);
}

/* ---------------------------------------------------------------- refresh before routing */

static void refresh_reply(mcp_pending *p, mcp_reply *r)
{
    mcp_call *c = p->call;
    const list_kind *k = kind_of(p->method);
    json_t *result = json_object_get(mcp_reply_json(r), "result");
    json_t *arr = json_object_get(result, k->items);
    for (size_t j = 0; j < json_array_size(arr); j++)
        free(absorb(c->s, k, p->part, json_array_get(arr, j)));
    json_t *nc = json_object_get(result, "nextCursor");
    if (json_is_string(nc) && ++c->refreshes < MAX_REFRESH_PAGES) {
        json_t *params = json_pack("{s:O}", "cursor", nc);
        mcp_pending_start(p->link, k->method, params, c, p->part, refresh_reply);
        json_decref(params);
        mcp_reply_free(r);
        return;
    }
    mcp_reply_free(r);
    if (--c->nwait == 0) {
        *kind_known(c->s, k) = true;
        c->finish(c);
    }
}

/* Fetches the whole list of kind k from every upstream offering it, then runs resume. */
static void refresh(mcp_call *c, const list_kind *k, void (*resume)(mcp_call *))
{
    c->finish = resume;
    c->nwait++;
    for (size_t i = 0; i < nup(c); i++) {
        mcp_link *l = mcp_session_link(c->s, i);
        if (!mcp_link_has(l, k->cap)) continue;
        c->nwait++;
        mcp_pending_start(l, k->method, NULL, c, i, refresh_reply);
    }
    if (--c->nwait == 0) {
        *kind_known(c->s, k) = true;
        c->finish(c);
    }
}

/* Which upstream serves this visible name. Returns 1 (found: *idx, *orig set), 0 (the
 * lists are being fetched; `resume` runs afterwards), -1 (unknown). */
static int resolve_name(mcp_call *c, const list_kind *k, const char *name, size_t *idx,
                        const char **orig, void (*resume)(mcp_call *))
{
    mcp_session *s = c->s;
    uintptr_t v = (uintptr_t)mcp_map_get(kind_map(s, k), name, strlen(name));
    if (!v) {
        if (*kind_known(s, k)) return -1;
        refresh(c, k, resume);
        return 0;
    }
    *idx = v - 1;
    *orig = k->prefixed ? mcp_prefix_strip(prefix_of(c->m, *idx), name) : name;
    return *orig ? 1 : -1;
}

/* Resolves params.name among the names of kind k and forwards the call under the
 * upstream's own name. */
static void forward_named(mcp_call *c, const list_kind *k, const char *what,
                          void (*resume)(mcp_call *))
{
    if (k->id == K_TOOLS ? tools_transparent(c->m) : transparent(c->m)) {
        mcp_gate_forward(c, 0, c->name, NULL);
        return;
    }
    const char *name = c->name;
    if (!name) {
        mcp_call_error(c, TG_RPC_INVALID_PARAMS, NULL, "Invalid params: \"name\" must be a string");
        return;
    }
    size_t idx;
    const char *orig;
    int r = resolve_name(c, k, name, &idx, &orig, resume);
    if (r < 0) mcp_call_error(c, TG_RPC_INVALID_PARAMS, NULL, "Unknown %s: %s", what, name);
    if (r <= 0) return;
    mcp_gate_forward(c, idx, orig, orig);
}

/* The one place a tools/call is forwarded upstream. */
static void route_tools_call(mcp_call *c)
{
    forward_named(c, &kinds[K_TOOLS], "tool", route_tools_call);
}

static void route_prompts_get(mcp_call *c)
{
    forward_named(c, &kinds[K_PROMPTS], "prompt", route_prompts_get);
}

/* Upstream for a resource URI: listed URI, else the template with the longest literal
 * prefix that matches, else the only upstream offering resources. Returns -1 if none. */
static long resource_owner(mcp_call *c, const char *uri)
{
    mcp_session *s = c->s;
    uintptr_t v = (uintptr_t)mcp_map_get(&s->resources, uri, strlen(uri));
    if (v) return (long)(v - 1);
    long best = -1;
    size_t best_len = 0;
    for (size_t i = 0; i < json_array_size(s->templates); i++) {
        json_t *t = json_array_get(s->templates, i);
        const char *tpl = json_string_value(json_array_get(t, 1));
        size_t lit = strcspn(tpl, "{");
        if (lit > best_len && strncmp(uri, tpl, lit) == 0) {
            best = (long)json_integer_value(json_array_get(t, 0));
            best_len = lit;
        }
    }
    if (best >= 0) return best;
    long only = -1;
    for (size_t i = 0; i < nup(c); i++) {
        if (!mcp_link_has(mcp_session_link(s, i), "resources")) continue;
        if (only >= 0) return -1;
        only = (long)i;
    }
    return only;
}

static const char *ref_uri(mcp_call *c)
{
    json_t *params = mcp_call_params(c);
    if (strcmp(c->method, "completion/complete") == 0)
        return json_string_value(json_object_get(json_object_get(params, "ref"), "uri"));
    return json_string_value(json_object_get(params, "uri"));
}

/* resources/read, subscribe, unsubscribe, and completion/complete on a resource ref. */
static void route_resource(mcp_call *c)
{
    const char *uri = ref_uri(c);
    if (!uri) {
        mcp_call_error(c, TG_RPC_INVALID_PARAMS, NULL, "Invalid params: \"uri\" must be a string");
        return;
    }
    long idx = transparent(c->m) ? 0 : resource_owner(c, uri);
    if (idx < 0 && !c->s->resources_known) {
        refresh(c, &kinds[K_RESOURCES], route_resource);
        return;
    }
    if (idx < 0) {
        mcp_call_error(c, -32002, json_pack("{s:s}", "uri", uri), "Resource not found");
        return;
    }
    bool sub = strcmp(c->method, "resources/subscribe") == 0;
    if (sub || strcmp(c->method, "resources/unsubscribe") == 0) {
        size_t klen;
        char *key = mcp_sub_key((size_t)idx, uri, &klen);
        if (sub) mcp_map_put(&c->s->subs, key, klen, (void *)1);
        else mcp_map_del(&c->s->subs, key, klen);
        free(key);
    }
    if (strcmp(c->method, "resources/read") == 0) mcp_gate_forward(c, (size_t)idx, uri, NULL);
    else mcp_forward(c, (size_t)idx, NULL, NULL);
}

static void route_completion(mcp_call *c)
{
    json_t *ref = json_object_get(mcp_call_params(c), "ref");
    const char *type = json_string_value(json_object_get(ref, "type"));
    if (transparent(c->m)) {
        mcp_forward(c, 0, NULL, NULL);
    } else if (type && strcmp(type, "ref/resource") == 0) {
        route_resource(c);
    } else if (type && strcmp(type, "ref/prompt") == 0) {
        const char *name = json_string_value(json_object_get(ref, "name"));
        size_t idx;
        const char *orig;
        int r = name ? resolve_name(c, &kinds[K_PROMPTS], name, &idx, &orig, route_completion) : -1;
        if (r < 0) mcp_call_error(c, TG_RPC_INVALID_PARAMS, NULL, "Unknown prompt: %s",
                                  name ? name : "(none)");
        if (r <= 0) return;
        json_t *ref2 = json_copy(ref);
        json_object_set_new(ref2, "name", json_string(orig));
        json_t *p = json_copy(mcp_call_params(c));
        json_object_set_new(p, "ref", ref2);
        mcp_forward(c, idx, p, NULL);
        json_decref(p);
    } else {
        mcp_call_error(c, TG_RPC_INVALID_PARAMS, NULL, "Invalid params: unknown ref type");
    }
}

/* ---------------------------------------------------------------- broadcast requests */

/* logging/setLevel: {} when any upstream accepted it, else the first error. */
static void finish_any_ok(mcp_call *c)
{
    json_t *err = NULL;
    for (size_t i = 0; i < nup(c); i++) {
        json_t *part = mcp_call_part(c, i);
        if (!part) continue;
        if (json_object_get(part, "result")) {
            mcp_call_result(c, json_object());
            return;
        }
        if (!err) err = part;
    }
    if (!err) {
        mcp_call_result(c, json_object());
        return;
    }
    json_t *out = json_copy(err);
    json_object_set(out, "id", c->id);
    mcp_call_answer(c, out);
}

static void route_set_level(mcp_call *c)
{
    if (transparent(c->m)) {
        mcp_forward(c, 0, NULL, NULL);
        return;
    }
    c->finish = finish_any_ok;
    c->nwait++;
    for (size_t i = 0; i < nup(c); i++)
        if (mcp_link_has(mcp_session_link(c->s, i), "logging"))
            mcp_call_ask(c, i, c->method, mcp_call_params(c));
    mcp_call_sent(c);
}

/* ---------------------------------------------------------------- initialize */

void mcp_initialize_finish(mcp_call *c)
{
    tg_mcp *m = c->m;
    mcp_session *s = c->s;
    json_t **caps = calloc(nup(c), sizeof *caps);
    if (!caps) abort();
    const json_t *first_ok = NULL, *first_err = NULL;
    size_t ok = 0;
    tg_buf instr = TG_BUF_INIT;
    for (size_t i = 0; i < nup(c); i++) {
        json_t *result = json_object_get(mcp_call_part(c, i), "result");
        if (!json_is_object(result)) {
            json_t *e = json_object_get(mcp_call_part(c, i), "error");
            if (!first_err) first_err = e;
            tg_log_warn(COMPONENT, "session %.8s…: upstream '%s' unavailable: %s", s->id,
                        m->cfg->upstreams[i].name,
                        json_string_value(json_object_get(e, "message")));
            continue;
        }
        if (!first_ok) first_ok = result;
        ok++;
        caps[i] = json_object_get(result, "capabilities");
        const char *text = json_string_value(json_object_get(result, "instructions"));
        if (text && *text)
            tg_buf_printf(&instr, "%s[%s]\n%s", instr.len ? "\n\n" : "", m->cfg->upstreams[i].name,
                          text);
    }
    if (!ok) {
        free(caps);
        tg_buf_free(&instr);
        c->x->announce_session = false;
        const char *why = json_string_value(json_object_get(first_err, "message"));
        mcp_call_error(c, TG_RPC_INTERNAL_ERROR, NULL, "no upstream is available: %s",
                       why ? why : "unknown error");
        mcp_session_end(s, "initialize failed");
        return;
    }
    json_t *result;
    if (m->cfg->nupstreams == 1) {
        result = json_deep_copy(first_ok); /* transparency: the server's own answer */
    } else {
        result = json_pack("{s:o,s:{s:s,s:s}}", "capabilities", mcp_caps_merge(caps, nup(c)),
                           "serverInfo", "name", m->cfg->server_name ? m->cfg->server_name
                                                                     : "toolgate",
                           "version", TG_VERSION);
        if (instr.len) json_object_set_new(result, "instructions", json_string(instr.data));
    }
    json_object_set_new(result, "protocolVersion", json_string(s->version));
    free(caps);
    tg_buf_free(&instr);
    mcp_call_result(c, result);
}

/* ---------------------------------------------------------------- dispatch */

void mcp_route_request(mcp_call *c)
{
    const char *method = c->method;
    const list_kind *k = kind_of(method);
    if (strcmp(method, "ping") == 0) mcp_call_result(c, json_object());
    else if (k) route_list(c, k);
    else if (strcmp(method, "tools/call") == 0) route_tools_call(c);
    else if (strcmp(method, "prompts/get") == 0) route_prompts_get(c);
    else if (strcmp(method, "resources/read") == 0 || strcmp(method, "resources/subscribe") == 0 ||
             strcmp(method, "resources/unsubscribe") == 0)
        route_resource(c);
    else if (strcmp(method, "completion/complete") == 0) route_completion(c);
    else if (strcmp(method, "logging/setLevel") == 0) route_set_level(c);
    else if (nup(c) == 1) mcp_forward(c, 0, NULL, NULL); /* the server decides */
    else mcp_call_error(c, TG_RPC_METHOD_NOT_FOUND, NULL, "Method not found: %s", method);
}

void mcp_route_notification(mcp_session *s, json_t *msg)
{
    tg_mcp *m = s->m;
    const char *method = json_string_value(json_object_get(msg, "method"));
    if (strcmp(method, "notifications/roots/list_changed") == 0) {
        for (size_t i = 0; i < m->cfg->nupstreams; i++)
            mcp_link_send_raw(mcp_session_link(s, i), msg);
    } else if (m->cfg->nupstreams == 1) {
        mcp_link_send_raw(mcp_session_link(s, 0), msg);
    } else {
        tg_log_debug(COMPONENT, "notification %s not forwarded (several upstreams)", method);
    }
}
