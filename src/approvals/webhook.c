/*
 * webhook.c — the approvals webhook (docs/approvals.md "Webhook"): every new request and
 * every decision, expiry and use becomes a JSON POST
 *     {"event":"approval.<what>","deliveryId","sentAt","approval":<the request's view>}
 * to approvals.webhook.url, signed so the receiver can tell it came from toolgate:
 *     X-Toolgate-Signature: sha256=<hex HMAC-SHA256(secret, timestamp "." body)>
 * with X-Toolgate-Timestamp (Unix seconds; it is inside the MAC, so a receiver can refuse
 * stale replays), X-Toolgate-Event and X-Toolgate-Delivery (the id, the same on every
 * attempt: receivers deduplicate on it).
 *
 * One sender thread with libcurl easy handles: a slow or dead receiver never holds up the
 * loop. Delivery is at-least-once within max_attempts: 2xx delivered; anything else
 * (including a redirect, never followed) is retried after 1 s, 2 s, 4 s … (at most 60 s),
 * then given up with an error log. The queue is bounded; when it is full the oldest
 * delivery is dropped (logged): approvals themselves never depend on the webhook.
 */
#include "approvals/approvals_int.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_MAX_MS 60000

typedef struct delivery {
    struct delivery *next;
    char id[40];            /* "dlv_" + hex */
    char *event;            /* "approval.approved" */
    char *view;             /* the approval's JSON text */
    unsigned attempts;      /* made so far */
    uint64_t due_ms;        /* monotonic time of the next attempt */
    uint64_t seq;           /* queue order: the smallest is the oldest */
} delivery;

/* Invariants: `queue` holds n deliveries (n <= AP_HOOK_QUEUE_MAX), in no particular order
 * (a retried one goes back in front); everything under mu. The configuration strings are the sender's own copies. */
struct ap_webhook {
    char *url, *secret;
    uint32_t timeout_ms;
    unsigned max_attempts;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    delivery *queue;
    size_t n;
    uint64_t seq;
    int stop;
};

static void delivery_free(delivery *d)
{
    if (!d)
        return;
    free(d->event);
    free(d->view);
    free(d);
}

void ap_webhook_signature(const char *secret, const char *timestamp, const char *body,
                          size_t body_len, char out[65])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mlen = 0;
    tg_buf msg = TG_BUF_INIT;
    tg_buf_appends(&msg, timestamp);
    tg_buf_appends(&msg, ".");
    tg_buf_append(&msg, body, body_len);
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg.data,
              msg.len, mac, &mlen))
        abort();
    tg_buf_free(&msg);
    for (unsigned i = 0; i < mlen && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* One attempt: 1 delivered (2xx), 0 not (why says so). */
static int post_once(ap_webhook *w, const delivery *d, char *why, size_t whylen)
{
    char ts[24], sig[65], tsh[64], sigh[96], evh[96], idh[80], sent[32];
    int64_t now = tg_wall_ms();
    snprintf(ts, sizeof ts, "%lld", (long long)(now / 1000));
    tg_format_time(now, sent);
    tg_buf body = TG_BUF_INIT;
    tg_buf_appends(&body, "{\"event\":");
    tg_buf_json_string(&body, d->event, strlen(d->event));
    tg_buf_printf(&body, ",\"deliveryId\":\"%s\",\"sentAt\":\"%s\",\"approval\":", d->id, sent);
    tg_buf_appends(&body, d->view);
    tg_buf_appends(&body, "}");
    ap_webhook_signature(w->secret, ts, body.data, body.len, sig);
    snprintf(tsh, sizeof tsh, "X-Toolgate-Timestamp: %s", ts);
    snprintf(sigh, sizeof sigh, "X-Toolgate-Signature: sha256=%s", sig);
    snprintf(evh, sizeof evh, "X-Toolgate-Event: %s", d->event);
    snprintf(idh, sizeof idh, "X-Toolgate-Delivery: %s", d->id);
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, tsh);
    h = curl_slist_append(h, sigh);
    h = curl_slist_append(h, evh);
    h = curl_slist_append(h, idh);
    h = curl_slist_append(h, "Expect:");
    CURL *c = curl_easy_init();
    long status = 0;
    CURLcode rc = CURLE_FAILED_INIT;
    if (c && h) {
        curl_easy_setopt(c, CURLOPT_URL, w->url);
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body.len);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)w->timeout_ms);
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "toolgate/" TG_VERSION);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
#if LIBCURL_VERSION_NUM >= 0x075500
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
        curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
        rc = curl_easy_perform(c);
        if (rc == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    }
    if (c)
        curl_easy_cleanup(c);
    curl_slist_free_all(h);
    tg_buf_free(&body);
    if (rc != CURLE_OK)
        snprintf(why, whylen, "%s", curl_easy_strerror(rc));
    else
        snprintf(why, whylen, "HTTP status %ld", status);
    return rc == CURLE_OK && status >= 200 && status < 300;
}

/* The delivery due first (NULL: none); its predecessor in *prev. */
static delivery *earliest(ap_webhook *w, delivery **prev)
{
    delivery *best = NULL, *bp = NULL, *p = NULL;
    for (delivery *d = w->queue; d; p = d, d = d->next)
        if (!best || d->due_ms < best->due_ms) {
            best = d;
            bp = p;
        }
    *prev = bp;
    return best;
}

static void *sender(void *arg)
{
    ap_webhook *w = arg;
    pthread_setname_np(pthread_self(), "tg-webhook"); /* for top -H; best effort */
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        delivery *prev, *d = earliest(w, &prev);
        uint64_t now = tg_now_ms();
        if (!d || d->due_ms > now) {
            if (!d) {
                pthread_cond_wait(&w->cv, &w->mu);
            } else {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                uint64_t wait = d->due_ms - now;
                ts.tv_sec += (time_t)(wait / 1000);
                ts.tv_nsec += (long)(wait % 1000) * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&w->cv, &w->mu, &ts);
            }
            continue;
        }
        /* Take it out while it is being sent: overflow cannot free it under us. */
        if (prev)
            prev->next = d->next;
        else
            w->queue = d->next;
        w->n--;
        pthread_mutex_unlock(&w->mu);
        char why[128];
        int ok = post_once(w, d, why, sizeof why);
        d->attempts++;
        pthread_mutex_lock(&w->mu);
        if (ok) {
            tg_log_debug(AP_LOG, "webhook %s %s delivered", d->event, d->id);
            delivery_free(d);
        } else if (d->attempts >= w->max_attempts) {
            tg_log_error(AP_LOG, "webhook %s %s not delivered after %u attempts (last: %s); "
                         "giving up", d->event, d->id, d->attempts, why);
            delivery_free(d);
        } else {
            uint64_t backoff = 1000ULL << (d->attempts - 1 < 6 ? d->attempts - 1 : 6);
            if (backoff > BACKOFF_MAX_MS)
                backoff = BACKOFF_MAX_MS;
            tg_log_warn(AP_LOG, "webhook %s %s attempt %u failed (%s); retrying in %llu ms",
                        d->event, d->id, d->attempts, why, (unsigned long long)backoff);
            d->due_ms = tg_now_ms() + backoff;
            d->next = w->queue;   /* order among waiting deliveries goes by due time */
            w->queue = d;
            w->n++;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* The sender's own memory, once its thread is gone (or never started). */
static void hook_release(ap_webhook *w)
{
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    explicit_bzero(w->secret, strlen(w->secret));
    free(w->secret);
    free(w->url);
    free(w);
}

ap_webhook *ap_webhook_new(const tg_approvals_conf *c, tg_error *err)
{
    ap_webhook *w = calloc(1, sizeof *w);
    pthread_condattr_t ca;
    if (!w || !(w->url = strdup(c->webhook_url)) || !(w->secret = strdup(c->webhook_secret)))
        abort();
    w->timeout_ms = c->webhook_timeout_ms ? c->webhook_timeout_ms : 5000;
    w->max_attempts = c->webhook_max_attempts ? c->webhook_max_attempts : 6;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&w->thread, NULL, sender, w);
    if (rc != 0) {
        hook_release(w);
        tg_error_set(err, "approvals: cannot start the webhook thread: %s", strerror(rc));
        return NULL;
    }
    return w;
}

int ap_webhook_same(const ap_webhook *w, const tg_approvals_conf *c)
{
    return c->webhook_url && strcmp(w->url, c->webhook_url) == 0 &&
           strcmp(w->secret, c->webhook_secret) == 0 &&
           w->timeout_ms == (c->webhook_timeout_ms ? c->webhook_timeout_ms : 5000) &&
           w->max_attempts == (c->webhook_max_attempts ? c->webhook_max_attempts : 6);
}

void ap_webhook_send(ap_webhook *w, const char *what, const json_t *view)
{
    delivery *d = calloc(1, sizeof *d);
    if (!d)
        abort();
    memcpy(d->id, "dlv_", 4);
    tg_random_hex(d->id + 4, 16);
    if (asprintf(&d->event, "approval.%s", what) < 0 || !(d->view = tg_json_dump(view, NULL)))
        abort();
    d->due_ms = tg_now_ms();
    pthread_mutex_lock(&w->mu);
    if (w->n >= AP_HOOK_QUEUE_MAX) {
        delivery **pp = &w->queue;
        for (delivery **q = &w->queue; *q; q = &(*q)->next)
            if ((*q)->seq < (*pp)->seq)
                pp = q;
        delivery *old = *pp;
        tg_log_error(AP_LOG, "webhook queue full (%d): dropping %s %s", AP_HOOK_QUEUE_MAX,
                     old->event, old->id);
        *pp = old->next;
        delivery_free(old);
        w->n--;
    }
    d->seq = w->seq++;
    d->next = w->queue;
    w->queue = d;
    w->n++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void ap_webhook_free(ap_webhook *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    if (w->n)
        tg_log_error(AP_LOG, "webhook stopping: %zu deliveries not sent", w->n);
    while (w->queue) {
        delivery *d = w->queue;
        w->queue = d->next;
        delivery_free(d);
    }
    hook_release(w);
}
