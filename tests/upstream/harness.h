/*
 * harness.h — what both upstream test programs share: a recorder for the transport's
 * callbacks and a bounded way to run the loop until something happened.
 */
#ifndef TG_UPSTREAM_TEST_HARNESS_H
#define TG_UPSTREAM_TEST_HARNESS_H

#include <stdbool.h>

#include "upstream/tg_upstream.h"

#define REC_MAX 64

/* Everything the transport reported, in order. Messages are owned by the recorder. */
typedef struct recorder {
    json_t *msgs[REC_MAX];
    json_t *stream_of[REC_MAX];      /* copies (json_deep_copy) or NULL */
    size_t nmsgs;
    tg_upconn_state states[REC_MAX];
    char whys[REC_MAX][256];
    size_t nstates;
    int failed_status[REC_MAX];
    char failed_why[REC_MAX][256];
    json_t *failed_id[REC_MAX];
    size_t nfailed;
    bool closed;
} recorder;

extern const tg_upconn_cbs recorder_cbs;   /* user pointer: a recorder */

void recorder_reset(recorder *r);            /* frees what it holds, zeroes it */
size_t recorder_count_state(const recorder *r, tg_upconn_state st);

/* Runs the loop until cond(arg) is true or timeout_ms passed; returns cond's value. */
bool run_until(uv_loop_t *loop, bool (*cond)(void *), void *arg, uint64_t timeout_ms);
/* Runs the loop for about ms milliseconds. */
void run_for(uv_loop_t *loop, uint64_t ms);

/* Conditions for run_until, arg: a recorder. */
bool cond_closed(void *r);
bool cond_up(void *r);          /* the last reported state is UP */
bool cond_down(void *r);        /* the last reported state is DOWN */

/* Captures this process's stderr (tg_log output) into a temporary file until
 * capture_stop, which returns its contents (caller frees). */
void capture_start(void);
char *capture_stop(void);

/* {"jsonrpc":"2.0","id":id,"method":method,"params":params (stolen, may be NULL)} */
json_t *make_request(json_int_t id, const char *method, json_t *params);

#endif
