/*
 * demo_int.h — private header of toolgate-demo-atlassian (the demo MCP server).
 *
 * The program is one small MCP server over stdio with two personalities ("modes"):
 *   - atlassian.c:   a pretend Atlassian (Jira, Confluence, Bitbucket) with the tool and
 *                    argument names of the real open-source servers and in-memory state;
 *   - conformance.c: what the MCP conformance suite's server scenarios call for.
 * main.c owns everything protocol-shaped: stdin framing, the JSON-RPC dispatch, the
 * lifecycle, pagination, logging, and the "call" machinery that lets a tool finish later
 * (after a timer, or after the client answered a sampling/elicitation request) while
 * other messages keep flowing. A mode only supplies catalogues and handlers.
 *
 * Names: everything here is prefixed demo_ (shared), atl_ (atlassian.c) or cf_
 * (conformance.c).
 */
#ifndef DEMO_INT_H
#define DEMO_INT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "common/tg_common.h"

typedef struct demo_server demo_server;
typedef struct demo_call demo_call;

/* A tool handler gets validated arguments (always an object, matching the tool's
 * inputSchema). It must eventually call demo_call_finish / demo_call_fail exactly once:
 * at once for ordinary tools, or later from a demo_call_after / demo_call_ask callback. */
typedef void (*demo_tool_fn)(demo_call *c, json_t *args);
typedef void (*demo_step_fn)(demo_call *c);
/* Called with the client's answer to demo_call_ask: exactly one of result / error is
 * non-NULL (error is a JSON-RPC error object, or a synthetic one on timeout). */
typedef void (*demo_reply_fn)(demo_call *c, json_t *result, json_t *error);

/* One tool. `def` is the tool object without its name, written in JSON with ' in place
 * of " so the catalogues stay readable in C; the loader turns it into real JSON once at
 * start-up (definitions therefore never contain an apostrophe). The inputSchema in it
 * is the single source of truth: arguments are validated against it before `fn` runs. */
typedef struct demo_tool {
    const char  *name;
    demo_tool_fn fn;
    const char  *def;
} demo_tool;

/* One prompt: `def` as for tools (name added by the loader). `get` fills messages or
 * returns -1 with err set (→ -32602). */
typedef struct demo_prompt {
    const char *name;
    int (*get)(demo_server *s, const json_t *args, json_t *messages, tg_error *err);
    const char *def;
} demo_prompt;

/* What a mode provides. Every function pointer may be NULL only where noted. */
typedef struct demo_mode {
    const char        *instructions;        /* InitializeResult.instructions */
    const demo_tool   *tools;
    size_t             ntools;
    const demo_prompt *prompts;
    size_t             nprompts;
    /* Builds mode state; returns NULL on failure. */
    void   *(*init)(demo_server *s);
    void    (*fini)(void *state);
    /* Appends the direct resources (objects with uri, name, ...) to out. */
    void    (*resources)(demo_server *s, json_t *out);
    /* resourceTemplates array, built once. */
    const char *templates_def;
    /* Returns a new {"contents":[...]} or NULL with err set (→ -32002 not found). */
    json_t *(*read)(demo_server *s, const char *uri, tg_error *err);
    /* Returns candidate values for completion/complete (new array) given the reference
     * ({type:ref/prompt,name} or {type:ref/resource,uri}) and the argument name. */
    json_t *(*complete)(demo_server *s, const json_t *ref, const char *arg);
} demo_mode;

extern const demo_mode demo_atlassian_mode;
extern const demo_mode demo_conformance_mode;

/* A tools/call in progress. Invariants: it is on the server's call list from creation
 * until finished; at most one outgoing request (ask_id) at a time; its timer handle is
 * always initialised and is closed (then the call freed) exactly once, on finish. */
struct demo_call {
    demo_server  *srv;
    json_t       *id;              /* the client's request id */
    json_t       *progress_token;  /* from params._meta.progressToken, or NULL */
    json_t       *args;            /* validated arguments */
    int           step;            /* free for staged handlers */
    uv_timer_t    timer;
    demo_step_fn  on_timer;
    json_t       *ask_id;          /* id of our pending server→client request, or NULL */
    demo_reply_fn on_reply;
    demo_call    *next;
};

/* --- server services for modes (main.c) --- */
void *demo_state(demo_server *s);
/* Does the client's initialize declare this capability (e.g. "sampling")? */
int   demo_client_has(demo_server *s, const char *capability);
/* notifications/message, sent only when `level` passes logging/setLevel. `data` is
 * stolen. Levels are the syslog names the spec uses ("debug" .. "emergency"). */
void  demo_log(demo_server *s, const char *level, json_t *data);
/* notifications/resources/updated, if the client subscribed to uri. */
void  demo_resource_changed(demo_server *s, const char *uri);
/* notifications/resources/list_changed. */
void  demo_resources_list_changed(demo_server *s);

/* --- the call API (main.c) --- */
/* Finishes with a CallToolResult (stolen). */
void demo_call_finish(demo_call *c, json_t *result);
/* Finishes with {content:[{type:text,text:…}]} built from a JSON value (stolen),
 * serialised compactly — how the real Atlassian server answers. */
void demo_call_finish_json(demo_call *c, json_t *value);
/* Finishes with isError:true and the formatted message as text. */
void demo_call_fail(demo_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Runs fn after ms milliseconds. */
void demo_call_after(demo_call *c, uint64_t ms, demo_step_fn fn);
/* Sends a request (method, params stolen) to the client; fn runs with its answer, or
 * with a timeout error after DEMO_ASK_TIMEOUT_MS. */
void demo_call_ask(demo_call *c, const char *method, json_t *params, demo_reply_fn fn);
/* notifications/progress for this call, if the client asked for progress. */
void demo_call_progress(demo_call *c, double progress, double total, const char *message);

#define DEMO_ASK_TIMEOUT_MS 60000

/* --- helpers (schema.c) --- */
/* Parses a ' -quoted JSON definition (see demo_tool.def); aborts on a malformed one,
 * which is a programming error caught by any test run. */
json_t *demo_def_parse(const char *def);
/* Checks args against the subset of JSON Schema the catalogues use: type (string or
 * list), properties, required, additionalProperties:false, enum, minimum, maximum,
 * minLength, items.type. Returns 0, or -1 with a message naming the argument. */
int demo_schema_check(const json_t *schema, const json_t *args, tg_error *err);

#endif /* DEMO_INT_H */
