/*
 * approvals_int.h — private to src/approvals: the service object shared by the request
 * side (approvals.c), the approver authentication (approver.c) and the webhook sender
 * (webhook.c, its own thread).
 */
#ifndef TG_APPROVALS_INT_H
#define TG_APPROVALS_INT_H

#include "approvals/tg_approvals.h"

#define AP_LOG "approvals"

/* ------------------------------------------------------------------ webhook.c */

/* The signed-POST sender: a thread with a bounded queue (AP_HOOK_QUEUE_MAX; overflow
 * drops the oldest delivery with an error log). Everything it needs is copied at
 * creation, so it never reads the configuration snapshot. */
#define AP_HOOK_QUEUE_MAX 1000
typedef struct ap_webhook ap_webhook;

/* NULL with err when the thread cannot start. */
ap_webhook *ap_webhook_new(const tg_approvals_conf *c, tg_error *err);
/* Queues event "approval.<what>" with the request's JSON view (copied). Any thread. */
void ap_webhook_send(ap_webhook *w, const char *what, const json_t *view);
/* 1 when w delivers with the same url / secret / timeout / attempts as c. */
int ap_webhook_same(const ap_webhook *w, const tg_approvals_conf *c);
/* Stops the thread (a transfer in progress finishes or times out first); deliveries
 * still queued are dropped and logged. NULL is fine. */
void ap_webhook_free(ap_webhook *w);

/* hex HMAC-SHA256(secret, timestamp "." body) — what X-Toolgate-Signature carries after
 * "sha256=". Exposed for the tests' receiver. */
void ap_webhook_signature(const char *secret, const char *timestamp, const char *body,
                          size_t body_len, char out[65]);

/* ------------------------------------------------------------------ approvals.c */

/* What approver.c needs from the service: the current configuration and authenticator. */
const tg_approvals_conf *ap_conf(const tg_approvals *ap);
tg_auth *ap_auth(const tg_approvals *ap);

#endif /* TG_APPROVALS_INT_H */
