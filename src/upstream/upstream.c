/*
 * upstream.c — the public face of src/upstream: process-wide set-up, dispatch of the
 * tg_upconn API to the stdio or HTTP transport, and what both transports share
 * (state reporting; strict parsing and validation of everything an upstream sends).
 */
#include "upstream/upstream_int.h"

#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* How much of an invalid line or body is quoted in the log. */
#define UP_LOG_EXCERPT 200

int tg_upstream_global_init(uv_loop_t *loop, tg_error *err)
{
    /* A child that exits while we write to its stdin (or a peer that resets a socket)
     * must produce EPIPE, not kill the gateway. */
    signal(SIGPIPE, SIG_IGN);
    return tg_upstream_curl_init(loop, err);
}

void tg_upstream_global_cleanup(void)
{
    tg_upstream_curl_cleanup();
}

void tg_upstream_base_init(tg_upconn *c, uv_loop_t *loop, const tg_upstream_conf *conf,
                           const tg_upconn_cbs *cbs, void *user, const tg_upstream_ops *ops)
{
    c->loop = loop;
    c->conf = conf;
    c->cbs = *cbs;
    c->user = user;
    c->state = TG_UPCONN_STARTING;
    c->ops = ops;
    snprintf(c->component, sizeof c->component, "upstream:%s", conf->name ? conf->name : "?");
}

void tg_upstream_set_state(tg_upconn *c, tg_upconn_state st, const char *why)
{
    c->state = st;
    if (st == TG_UPCONN_DOWN) tg_log_warn(c->component, "down: %s", why ? why : "unknown");
    else if (st == TG_UPCONN_UP) tg_log_info(c->component, "up");
    if (st != TG_UPCONN_CLOSING && c->cbs.on_state) c->cbs.on_state(c, st, why, c->user);
}

static bool deliver_one(tg_upconn *c, json_t *msg, const json_t *stream_of, bool *answered)
{
    tg_error err;
    tg_rpc_kind kind = tg_rpc_classify(msg, &err);
    if (kind == TG_RPC_KIND_INVALID) {
        char *text = tg_json_dump(msg, NULL);
        tg_log_warn(c->component, "dropped an invalid JSON-RPC message (%s): %.*s", err.msg,
                    UP_LOG_EXCERPT, text);
        free(text);
        json_decref(msg);
        return false;
    }
    if (answered && stream_of && kind == TG_RPC_KIND_RESPONSE &&
        json_equal(json_object_get(msg, "id"), (json_t *)stream_of))
        *answered = true;
    if (c->state == TG_UPCONN_CLOSING || c->state == TG_UPCONN_CLOSED || !c->cbs.on_message) {
        json_decref(msg);
        return false;
    }
    c->cbs.on_message(c, msg, stream_of, c->user);
    return true;
}

size_t tg_upstream_deliver(tg_upconn *c, const char *buf, size_t len, const json_t *stream_of,
                           bool allow_batch, bool *answered)
{
    tg_error err;
    json_t *v = tg_json_parse(buf, len, TG_JSON_MAX_DEPTH, &err);
    if (!v) {
        int n = len > UP_LOG_EXCERPT ? UP_LOG_EXCERPT : (int)len;
        tg_log_warn(c->component, "dropped invalid JSON from upstream (%s): %.*s", err.msg, n,
                    buf);
        return 0;
    }
    if (!allow_batch || !json_is_array(v)) return deliver_one(c, v, stream_of, answered) ? 1 : 0;

    size_t delivered = 0, n = json_array_size(v);
    for (size_t i = 0; i < n; i++) {
        /* The callee may close the connection; later elements are then dropped. */
        if (deliver_one(c, json_incref(json_array_get(v, i)), stream_of, answered)) delivered++;
    }
    json_decref(v);
    return delivered;
}

tg_upconn *tg_upconn_new(uv_loop_t *loop, const tg_upstream_conf *conf,
                         const tg_upconn_cbs *cbs, void *user, tg_error *err)
{
    if (!loop || !conf || !cbs) {
        tg_error_set(err, "tg_upconn_new: loop, conf and callbacks are required");
        return NULL;
    }
    switch (conf->transport) {
    case TG_UP_STDIO: return tg_upstream_stdio_new(loop, conf, cbs, user, err);
    case TG_UP_HTTP: return tg_upstream_http_new(loop, conf, cbs, user, err);
    }
    tg_error_set(err, "upstream %s: unknown transport %d", conf->name ? conf->name : "?",
                 (int)conf->transport);
    return NULL;
}

int tg_upconn_send(tg_upconn *c, const json_t *msg, tg_error *err)
{
    if (c->state != TG_UPCONN_UP)
        return tg_error_set(err, "upstream %s is not up", c->conf->name);
    return c->ops->send(c, msg, err);
}

void tg_upconn_set_protocol_version(tg_upconn *c, const char *version)
{
    if (c->ops->set_protocol_version) c->ops->set_protocol_version(c, version);
}

void tg_upconn_open_stream(tg_upconn *c)
{
    if (c->ops->open_stream) c->ops->open_stream(c);
}

tg_upconn_state tg_upconn_get_state(const tg_upconn *c)
{
    return c->state;
}

const tg_upstream_conf *tg_upconn_conf(const tg_upconn *c)
{
    return c->conf;
}

int tg_upconn_pid(const tg_upconn *c)
{
    return c->ops->pid ? c->ops->pid(c) : 0;
}

void tg_upconn_close(tg_upconn *c)
{
    if (c->state == TG_UPCONN_CLOSING || c->state == TG_UPCONN_CLOSED) return;
    tg_upstream_set_state(c, TG_UPCONN_CLOSING, NULL);
    c->ops->close(c);
}
