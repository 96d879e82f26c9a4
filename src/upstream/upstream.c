/*
 * upstream.c — the public face of src/upstream: process-wide set-up, dispatch of the
 * tg_upconn API to the stdio or HTTP transport, and what both transports share
 * (state reporting; strict validation of everything an upstream sends, by tg_jscan:
 * messages are delivered as the upstream's own bytes, never parsed and re-serialised).
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
    if (tg_upstream_curl_init(loop, err) < 0) return -1;
    tg_upstream_h1_global_init(loop);
    return 0;
}

void tg_upstream_global_cleanup(void)
{
    tg_upstream_h1_global_cleanup();
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

void tg_upstream_base_free(tg_upconn *c)
{
    tg_jdoc_free(&c->doc);
}

static bool deliver_one(tg_upconn *c, const tg_jdoc *doc, int tok, int64_t stream_of,
                        bool *answered)
{
    tg_error err;
    const tg_jtok *t = &doc->toks[tok];
    tg_upmsg msg = {doc, tok, tg_jscan_classify(doc, tok, &err), doc->buf + t->start,
                    t->end - t->start};
    if (msg.kind == TG_RPC_KIND_INVALID) {
        int n = msg.len > UP_LOG_EXCERPT ? UP_LOG_EXCERPT : (int)msg.len;
        tg_log_warn(c->component, "dropped an invalid JSON-RPC message (%s): %.*s", err.msg, n,
                    msg.raw);
        return false;
    }
    int64_t id;
    if (answered && stream_of && msg.kind == TG_RPC_KIND_RESPONSE &&
        tg_jscan_int(doc, tg_jscan_get(doc, tok, "id"), &id) == 0 && id == stream_of)
        *answered = true;
    if (c->state == TG_UPCONN_CLOSING || c->state == TG_UPCONN_CLOSED || !c->cbs.on_message)
        return false;
    c->cbs.on_message(c, &msg, stream_of, c->user);
    return true;
}

size_t tg_upstream_deliver(tg_upconn *c, const char *buf, size_t len, int64_t stream_of,
                           bool allow_batch, bool *answered)
{
    tg_error err;
    /* The receiver may cause another delivery before returning (rare): that one gets a
     * document of its own, so the tokens of this one stay valid. */
    tg_jdoc nested = TG_JDOC_INIT, *doc = c->delivering ? &nested : &c->doc;
    size_t delivered = 0;
    c->delivering++;
    if (tg_jscan(doc, buf, len, TG_JSON_MAX_DEPTH, &err) != 0) {
        int n = len > UP_LOG_EXCERPT ? UP_LOG_EXCERPT : (int)len;
        tg_log_warn(c->component, "dropped invalid JSON from upstream (%s): %.*s", err.msg, n,
                    buf);
    } else if (!allow_batch || doc->toks[0].type != TG_JT_ARRAY) {
        delivered = deliver_one(c, doc, 0, stream_of, answered) ? 1 : 0;
    } else {
        /* The callee may close the connection; later elements are then dropped. */
        for (uint32_t i = 1, k = 0; k < doc->toks[0].size; k++, i = doc->toks[i].next)
            if (deliver_one(c, doc, (int)i, stream_of, answered)) delivered++;
    }
    c->delivering--;
    tg_jdoc_free(&nested);
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

int tg_upconn_send(tg_upconn *c, const char *msg, size_t len, int64_t request_id,
                   const char *traceparent, tg_error *err)
{
    if (c->state != TG_UPCONN_UP)
        return tg_error_set(err, "upstream %s is not up", c->conf->name);
    return c->ops->send(c, msg, len, request_id, traceparent, err);
}

int tg_upconn_send_json(tg_upconn *c, const json_t *msg, tg_error *err)
{
    const json_t *id = json_object_get(msg, "id");
    int64_t rid = json_is_integer(id) && json_object_get(msg, "method") ? json_integer_value(id) : 0;
    size_t len;
    char *text = tg_json_dump(msg, &len);
    int rc = tg_upconn_send(c, text, len, rid, NULL, err);
    free(text);
    return rc;
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
