/*
 * harness.c — the recorder and loop helpers the upstream tests share (see harness.h).
 */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Messages are recorded as jansson values (the tests compare values); the bytes must be
 * exactly the ones the message token spans. */
static void rec_message(tg_upconn *c, const tg_upmsg *msg, int64_t stream_of, void *user)
{
    recorder *r = user;
    const tg_jtok *t = &msg->doc->toks[msg->tok];
    assert_ptr_equal(msg->raw, msg->doc->buf + t->start);
    assert_int_equal(msg->len, t->end - t->start);
    if (r->nmsgs == REC_MAX) return;
    r->stream_of[r->nmsgs] = stream_of ? json_integer(stream_of) : NULL;
    r->msgs[r->nmsgs++] = tg_jscan_json(msg->doc, msg->tok);
}

static void rec_state(tg_upconn *c, tg_upconn_state st, const char *why, void *user)
{
    recorder *r = user;
    if (st == TG_UPCONN_CLOSED) r->closed = true;
    if (r->nstates == REC_MAX) return;
    snprintf(r->whys[r->nstates], sizeof r->whys[0], "%s", why ? why : "");
    r->states[r->nstates++] = st;
}

static void rec_failed(tg_upconn *c, int64_t id, int status, const char *why, void *user)
{
    recorder *r = user;
    if (r->nfailed == REC_MAX) return;
    r->failed_status[r->nfailed] = status;
    snprintf(r->failed_why[r->nfailed], sizeof r->failed_why[0], "%s", why ? why : "");
    r->failed_id[r->nfailed++] = id ? json_integer(id) : NULL;
}

const tg_upconn_cbs recorder_cbs = {rec_message, rec_state, rec_failed};

void recorder_reset(recorder *r)
{
    for (size_t i = 0; i < r->nmsgs; i++) {
        json_decref(r->msgs[i]);
        json_decref(r->stream_of[i]);
    }
    for (size_t i = 0; i < r->nfailed; i++) json_decref(r->failed_id[i]);
    memset(r, 0, sizeof *r);
}

size_t recorder_count_state(const recorder *r, tg_upconn_state st)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nstates; i++) n += r->states[i] == st;
    return n;
}

static void tick(uv_timer_t *t)
{
}

bool run_until(uv_loop_t *loop, bool (*cond)(void *), void *arg, uint64_t timeout_ms)
{
    /* A ticking timer bounds each uv_run(ONCE) so the deadline is checked. */
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, tick, 5, 5);
    uint64_t deadline = uv_now(loop) + timeout_ms;
    bool ok;
    while (!(ok = cond(arg)) && uv_now(loop) < deadline) uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

static bool never(void *arg)
{
    return false;
}

void run_for(uv_loop_t *loop, uint64_t ms)
{
    run_until(loop, never, NULL, ms);
}

bool cond_closed(void *arg)
{
    return ((recorder *)arg)->closed;
}

bool cond_up(void *arg)
{
    recorder *r = arg;
    return r->nstates > 0 && r->states[r->nstates - 1] == TG_UPCONN_UP;
}

bool cond_down(void *arg)
{
    recorder *r = arg;
    return r->nstates > 0 && r->states[r->nstates - 1] == TG_UPCONN_DOWN;
}

static int saved_stderr = -1;
static FILE *capture_file;

void capture_start(void)
{
    fflush(stderr);
    capture_file = tmpfile();
    saved_stderr = dup(2);
    dup2(fileno(capture_file), 2);
}

char *capture_stop(void)
{
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    off_t n = lseek(fileno(capture_file), 0, SEEK_END);
    if (n < 0) n = 0;
    char *s = calloc(1, (size_t)n + 1);
    if (pread(fileno(capture_file), s, (size_t)n, 0) < 0) s[0] = '\0';
    fclose(capture_file);
    return s;
}

json_t *make_request(json_int_t id, const char *method, json_t *params)
{
    json_t *m = json_pack("{s:s,s:I,s:s}", "jsonrpc", "2.0", "id", id, "method", method);
    if (params) json_object_set_new(m, "params", params);
    return m;
}
