/*
 * conformance.c — the --conformance mode: exactly what the server scenarios of the MCP
 * conformance suite (npm @modelcontextprotocol/conformance 0.1.x) call for, so that
 * toolgate can be run against the suite with a stdio upstream behind it.
 *
 * Tools test_*, resources test://…, prompts test_*, completions and logging follow the
 * scenario sources. Tools that take time (logging, progress) or ask the client
 * (sampling, elicitation) run as staged calls (demo_call_after / demo_call_ask), so the
 * server keeps answering other messages meanwhile. HTTP-level scenarios (SSE polling,
 * multiple streams, DNS rebinding) are the gateway's business; test_reconnection only
 * has to exist and answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo_int.h"

/* A 1×1 red PNG and a 8-sample silent 8 kHz mono WAV. */
#define CF_PNG "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
#define CF_WAV "UklGRjQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YRAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define CF_STEP_MS 50

static json_t *text_item(const char *text)
{
    return json_pack("{s:s,s:s}", "type", "text", "text", text);
}

static void finish_items(demo_call *c, json_t *items)
{
    demo_call_finish(c, json_pack("{s:o}", "content", items));
}

static void t_simple_text(demo_call *c, json_t *args)
{
    finish_items(c, json_pack("[o]", text_item("This is a simple text response for testing.")));
}

static void t_image(demo_call *c, json_t *args)
{
    finish_items(c, json_pack("[{s:s,s:s,s:s}]", "type", "image", "data", CF_PNG,
                              "mimeType", "image/png"));
}

static void t_audio(demo_call *c, json_t *args)
{
    finish_items(c, json_pack("[{s:s,s:s,s:s}]", "type", "audio", "data", CF_WAV,
                              "mimeType", "audio/wav"));
}

static void t_embedded(demo_call *c, json_t *args)
{
    finish_items(c, json_pack("[{s:s,s:{s:s,s:s,s:s}}]", "type", "resource", "resource",
                              "uri", "test://embedded-resource", "mimeType", "text/plain",
                              "text", "This is an embedded resource content."));
}

static void t_mixed(demo_call *c, json_t *args)
{
    finish_items(c, json_pack("[o,{s:s,s:s,s:s},{s:s,s:{s:s,s:s,s:s}}]",
        text_item("Multiple content types test:"),
        "type", "image", "data", CF_PNG, "mimeType", "image/png",
        "type", "resource", "resource", "uri", "test://mixed-content-resource",
        "mimeType", "application/json", "text", "{\"test\":\"data\",\"value\":123}"));
}

static void t_error(demo_call *c, json_t *args)
{
    demo_call_fail(c, "This tool intentionally returns an error for testing");
}

/* Three log messages ~50 ms apart, then the result. */
static void logging_step(demo_call *c)
{
    static const char *const msgs[] = {
        "Tool execution started", "Tool processing data", "Tool execution completed" };
    demo_log(c->srv, "info", json_string(msgs[c->step]));
    if (++c->step < 3) {
        demo_call_after(c, CF_STEP_MS, logging_step);
        return;
    }
    finish_items(c, json_pack("[o]", text_item("Tool with logging executed successfully")));
}

static void t_logging(demo_call *c, json_t *args)
{
    logging_step(c);
}

/* Progress 0, 50, 100 of 100, ~50 ms apart, then the result. */
static void progress_step(demo_call *c)
{
    demo_call_progress(c, c->step * 50.0, 100.0, NULL);
    if (++c->step < 3) {
        demo_call_after(c, CF_STEP_MS, progress_step);
        return;
    }
    finish_items(c, json_pack("[o]", text_item("Tool with progress executed successfully")));
}

static void t_progress(demo_call *c, json_t *args)
{
    progress_step(c);
}

static void reconnection_done(demo_call *c)
{
    finish_items(c, json_pack("[o]", text_item("Reconnection test completed successfully")));
}

static void t_reconnection(demo_call *c, json_t *args)
{
    /* Over stdio there is no stream to close; answering after a short pause lets the
     * gateway in front decide how the HTTP stream behaves meanwhile. */
    demo_call_after(c, 100, reconnection_done);
}

static void t_schema_2020(demo_call *c, json_t *args)
{
    char *text = tg_json_dump(args, NULL);
    finish_items(c, json_pack("[{s:s,s:s+}]", "type", "text", "text", "Received: ", text));
    free(text);
}

static void sampling_reply(demo_call *c, json_t *result, json_t *error)
{
    if (error) {
        demo_call_fail(c, "sampling failed: %s",
                       json_string_value(json_object_get(error, "message")) ?: "error");
        return;
    }
    const char *text = json_string_value(json_object_get(json_object_get(result, "content"), "text"));
    char *msg = NULL;
    if (asprintf(&msg, "LLM response: %s", text ? text : "(no text content)") < 0) abort();
    finish_items(c, json_pack("[o]", text_item(msg)));
    free(msg);
}

static void t_sampling(demo_call *c, json_t *args)
{
    if (!demo_client_has(c->srv, "sampling")) {
        demo_call_fail(c, "the client does not support sampling");
        return;
    }
    demo_call_ask(c, "sampling/createMessage",
        json_pack("{s:[{s:s,s:{s:s,s:O}}],s:i}", "messages", "role", "user", "content",
                  "type", "text", "text", json_object_get(args, "prompt"), "maxTokens", 100),
        sampling_reply);
}

/* Answers any elicitation with the client's action and content. */
static void elicit_reply(demo_call *c, json_t *result, json_t *error)
{
    if (error) {
        demo_call_fail(c, "elicitation failed: %s",
                       json_string_value(json_object_get(error, "message")) ?: "error");
        return;
    }
    const char *action = json_string_value(json_object_get(result, "action"));
    json_t *content = json_object_get(result, "content");
    char *ctext = content ? tg_json_dump(content, NULL) : strdup("{}");
    char *msg = NULL;
    if (asprintf(&msg, "Elicitation completed: action=%s, content=%s",
                 action ? action : "(none)", ctext) < 0) abort();
    finish_items(c, json_pack("[o]", text_item(msg)));
    free(msg);
    free(ctext);
}

static void elicit(demo_call *c, const char *message, const char *schema_def)
{
    if (!demo_client_has(c->srv, "elicitation")) {
        demo_call_fail(c, "the client does not support elicitation");
        return;
    }
    demo_call_ask(c, "elicitation/create",
                  json_pack("{s:s,s:o}", "message", message,
                            "requestedSchema", demo_def_parse(schema_def)),
                  elicit_reply);
}

static void t_elicitation(demo_call *c, json_t *args)
{
    elicit(c, json_string_value(json_object_get(args, "message")),
           "{'type':'object','properties':{"
           "'username':{'type':'string','description':'User response'},"
           "'email':{'type':'string','description':'User email address'}},"
           "'required':['username','email']}");
}

static void t_elicitation_defaults(demo_call *c, json_t *args)
{
    elicit(c, "Please review and update the form fields with defaults",
           "{'type':'object','properties':{"
           "'name':{'type':'string','description':'User name','default':'John Doe'},"
           "'age':{'type':'integer','description':'User age','default':30},"
           "'score':{'type':'number','description':'User score','default':95.5},"
           "'status':{'type':'string','description':'User status',"
           "'enum':['active','inactive','pending'],'default':'active'},"
           "'verified':{'type':'boolean','description':'Verification status','default':true}},"
           "'required':[]}");
}

static void t_elicitation_enums(demo_call *c, json_t *args)
{
    elicit(c, "Please select options from the enum fields",
           "{'type':'object','properties':{"
           "'untitledSingle':{'type':'string','description':'Untitled single-select',"
           "'enum':['option1','option2','option3']},"
           "'titledSingle':{'type':'string','description':'Titled single-select','oneOf':["
           "{'const':'value1','title':'First Option'},{'const':'value2','title':'Second Option'},"
           "{'const':'value3','title':'Third Option'}]},"
           "'legacyEnum':{'type':'string','description':'Legacy titled enum',"
           "'enum':['opt1','opt2','opt3'],'enumNames':['Option One','Option Two','Option Three']},"
           "'untitledMulti':{'type':'array','description':'Untitled multi-select',"
           "'items':{'type':'string','enum':['option1','option2','option3']}},"
           "'titledMulti':{'type':'array','description':'Titled multi-select','items':{'anyOf':["
           "{'const':'value1','title':'First Choice'},{'const':'value2','title':'Second Choice'},"
           "{'const':'value3','title':'Third Choice'}]}}},"
           "'required':[]}");
}

#define NO_ARGS "'inputSchema':{'type':'object','properties':{}}"

static const demo_tool cf_tools[] = {
    { "test_simple_text", t_simple_text,
      "{'description':'Returns simple text content'," NO_ARGS "}" },
    { "test_image_content", t_image,
      "{'description':'Returns image content (a 1x1 PNG)'," NO_ARGS "}" },
    { "test_audio_content", t_audio,
      "{'description':'Returns audio content (a short WAV)'," NO_ARGS "}" },
    { "test_embedded_resource", t_embedded,
      "{'description':'Returns an embedded resource'," NO_ARGS "}" },
    { "test_multiple_content_types", t_mixed,
      "{'description':'Returns text, image and resource content'," NO_ARGS "}" },
    { "test_tool_with_logging", t_logging,
      "{'description':'Sends three log messages while it runs'," NO_ARGS "}" },
    { "test_error_handling", t_error,
      "{'description':'Always fails with isError'," NO_ARGS "}" },
    { "test_tool_with_progress", t_progress,
      "{'description':'Reports progress 0, 50 and 100 of 100'," NO_ARGS "}" },
    { "test_sampling", t_sampling,
      "{'description':'Asks the client for an LLM completion (sampling)',"
      "'inputSchema':{'type':'object','properties':{"
      "'prompt':{'type':'string','description':'The prompt to send to the LLM'}},"
      "'required':['prompt']}}" },
    { "test_elicitation", t_elicitation,
      "{'description':'Asks the user for input (elicitation)',"
      "'inputSchema':{'type':'object','properties':{"
      "'message':{'type':'string','description':'The message to show the user'}},"
      "'required':['message']}}" },
    { "test_elicitation_sep1034_defaults", t_elicitation_defaults,
      "{'description':'Elicitation whose schema has defaults for every primitive type'," NO_ARGS "}" },
    { "test_elicitation_sep1330_enums", t_elicitation_enums,
      "{'description':'Elicitation with the five enum schema variants'," NO_ARGS "}" },
    { "json_schema_2020_12_tool", t_schema_2020,
      "{'description':'Tool with JSON Schema 2020-12 features',"
      "'inputSchema':{'$schema':'https://json-schema.org/draft/2020-12/schema','type':'object',"
      "'$defs':{'address':{'type':'object','properties':{"
      "'street':{'type':'string'},'city':{'type':'string'}}}},"
      "'properties':{'name':{'type':'string'},'address':{'$ref':'#/$defs/address'}},"
      "'additionalProperties':false}}" },
    { "test_reconnection", t_reconnection,
      "{'description':'Answers after a short pause (SSE polling scenario)'," NO_ARGS "}" },
};

/* ------------------------------------------------------------------ prompts */

static int p_simple(demo_server *s, const json_t *args, json_t *messages, tg_error *err)
{
    json_array_append_new(messages, json_pack("{s:s,s:o}", "role", "user", "content",
                          text_item("This is a simple prompt for testing.")));
    return 0;
}

static int p_with_args(demo_server *s, const json_t *args, json_t *messages, tg_error *err)
{
    char *text = NULL;
    if (asprintf(&text, "Prompt with arguments: arg1='%s', arg2='%s'",
                 json_string_value(json_object_get(args, "arg1")),
                 json_string_value(json_object_get(args, "arg2"))) < 0) abort();
    json_array_append_new(messages, json_pack("{s:s,s:o}", "role", "user", "content",
                                              text_item(text)));
    free(text);
    return 0;
}

static int p_embedded(demo_server *s, const json_t *args, json_t *messages, tg_error *err)
{
    json_array_append_new(messages, json_pack("{s:s,s:{s:s,s:{s:O,s:s,s:s}}}",
        "role", "user", "content", "type", "resource", "resource",
        "uri", json_object_get(args, "resourceUri"), "mimeType", "text/plain",
        "text", "Embedded resource content for testing."));
    json_array_append_new(messages, json_pack("{s:s,s:o}", "role", "user", "content",
                          text_item("Please process the embedded resource above.")));
    return 0;
}

static int p_image(demo_server *s, const json_t *args, json_t *messages, tg_error *err)
{
    json_array_append_new(messages, json_pack("{s:s,s:{s:s,s:s,s:s}}", "role", "user",
        "content", "type", "image", "data", CF_PNG, "mimeType", "image/png"));
    json_array_append_new(messages, json_pack("{s:s,s:o}", "role", "user", "content",
                          text_item("Please analyze the image above.")));
    return 0;
}

static const demo_prompt cf_prompts[] = {
    { "test_simple_prompt", p_simple,
      "{'description':'A simple prompt without arguments'}" },
    { "test_prompt_with_arguments", p_with_args,
      "{'description':'A prompt with two required arguments','arguments':["
      "{'name':'arg1','description':'First test argument','required':true},"
      "{'name':'arg2','description':'Second test argument','required':true}]}" },
    { "test_prompt_with_embedded_resource", p_embedded,
      "{'description':'A prompt that embeds a resource','arguments':["
      "{'name':'resourceUri','description':'URI of the resource to embed','required':true}]}" },
    { "test_prompt_with_image", p_image,
      "{'description':'A prompt with image content'}" },
};

/* ------------------------------------------------------------------ resources */

static void cf_resources(demo_server *s, json_t *out)
{
    json_array_append_new(out, json_pack("{s:s,s:s,s:s,s:s}", "uri", "test://static-text",
        "name", "static-text", "description", "A static text resource", "mimeType", "text/plain"));
    json_array_append_new(out, json_pack("{s:s,s:s,s:s,s:s}", "uri", "test://static-binary",
        "name", "static-binary", "description", "A static binary resource (PNG)",
        "mimeType", "image/png"));
    json_array_append_new(out, json_pack("{s:s,s:s,s:s,s:s}", "uri", "test://watched-resource",
        "name", "watched-resource", "description", "A resource to subscribe to",
        "mimeType", "text/plain"));
}

static json_t *contents(json_t *item)
{
    return json_pack("{s:[o]}", "contents", item);
}

static json_t *cf_read(demo_server *s, const char *uri, tg_error *err)
{
    if (!strcmp(uri, "test://static-text"))
        return contents(json_pack("{s:s,s:s,s:s}", "uri", uri, "mimeType", "text/plain",
                        "text", "This is the content of the static text resource."));
    if (!strcmp(uri, "test://static-binary"))
        return contents(json_pack("{s:s,s:s,s:s}", "uri", uri, "mimeType", "image/png",
                                  "blob", CF_PNG));
    if (!strcmp(uri, "test://watched-resource"))
        return contents(json_pack("{s:s,s:s,s:s}", "uri", uri, "mimeType", "text/plain",
                                  "text", "Watched resource content."));
    static const char pre[] = "test://template/", suf[] = "/data";
    size_t n = strlen(uri), lp = sizeof pre - 1, ls = sizeof suf - 1;
    if (n > lp + ls && !strncmp(uri, pre, lp) && !strcmp(uri + n - ls, suf)) {
        int idlen = (int)(n - lp - ls);
        const char *id = uri + lp;
        if (!memchr(id, '/', (size_t)idlen)) {
            json_t *data = json_pack("{s:s%,s:b}", "id", id, (size_t)idlen, "templateTest", 1);
            json_object_set_new(data, "data", json_sprintf("Data for ID: %.*s", idlen, id));
            char *text = tg_json_dump(data, NULL);
            json_decref(data);
            json_t *res = contents(json_pack("{s:s,s:s,s:s}", "uri", uri,
                                             "mimeType", "application/json", "text", text));
            free(text);
            return res;
        }
    }
    tg_error_set(err, "resource not found: %s", uri);
    return NULL;
}

static json_t *cf_complete(demo_server *s, const json_t *ref, const char *arg)
{
    const char *type = json_string_value(json_object_get(ref, "type"));
    const char *name = json_string_value(json_object_get(ref, "name"));
    const char *uri = json_string_value(json_object_get(ref, "uri"));
    if (type && !strcmp(type, "ref/prompt") && name &&
        !strcmp(name, "test_prompt_with_arguments"))
        return !strcmp(arg, "arg1") ? json_pack("[s,s,s]", "paris", "park", "party")
                                    : json_pack("[s,s]", "world", "word");
    if (type && !strcmp(type, "ref/resource") && uri && !strcmp(uri, "test://template/{id}/data"))
        return json_pack("[s,s,s]", "123", "456", "789");
    return json_array();
}

static void *cf_init(demo_server *s)
{
    return s; /* no state: any non-NULL pointer */
}

static void cf_fini(void *state)
{
}

const demo_mode demo_conformance_mode = {
    .instructions = "MCP conformance test server: test_* tools, test:// resources, test_* prompts.",
    .tools = cf_tools,
    .ntools = sizeof cf_tools / sizeof cf_tools[0],
    .prompts = cf_prompts,
    .nprompts = sizeof cf_prompts / sizeof cf_prompts[0],
    .init = cf_init,
    .fini = cf_fini,
    .resources = cf_resources,
    .templates_def = "[{'uriTemplate':'test://template/{id}/data','name':'template-data',"
                     "'description':'Data for an id','mimeType':'application/json'}]",
    .read = cf_read,
    .complete = cf_complete,
};
