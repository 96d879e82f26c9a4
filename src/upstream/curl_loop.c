/*
 * curl_loop.c — drives one libcurl multi handle from the libuv loop.
 *
 * curl tells us which sockets to watch (socket callback → uv_poll) and when to call it
 * back (timer callback → uv_timer); we tell it what happened with
 * curl_multi_socket_action and then collect finished transfers. When curl asks for a
 * 0 ms timeout we schedule a real 0 ms timer: rounding it up to 1 ms cost a proxied
 * call more than a millisecond of latency (stack.md pitfall 2).
 *
 * Socket watches outlive transfers: when a transfer ends, curl keeps its connection for
 * the next one and says CURL_POLL_REMOVE; closing the uv_poll there and opening a new one
 * for the next request cost a malloc and two epoll_ctl calls per proxied call. So a
 * watch stays (reading only, and stopped at the first event while idle) until curl
 * closes the socket, which it does through tg_upstream_curl_closesocket. Only sockets
 * curl opened through tg_upstream_curl_opensocket are kept so: others (the resolver's
 * wake-up pipe) are closed by curl behind our back, so their watch ends at REMOVE.
 *
 * libcurl forbids adding or removing easy handles from inside its own callbacks, yet
 * a write callback delivers messages whose receiver may send or close right away. So
 * while curl is running (`depth` > 0) adds and cancels are queued and carried out, in
 * order, right after curl returns.
 */
#include "upstream/upstream_int.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

enum { DEFER_NONE = 0, DEFER_ADD, DEFER_CANCEL };

/* One watched socket. Invariant: a connection socket (`kept`) is on cl.socks from its
 * opening until curl closes it; `idle` while curl has no transfer on it (after
 * CURL_POLL_REMOVE). Any other socket's watch lives from curl's first interest to its
 * REMOVE and is never on cl.socks. `inited` once the uv_poll is initialised. */
typedef struct cl_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    int events;              /* UV_READABLE | UV_WRITABLE being watched, 0 when stopped */
    bool idle, kept, inited;
    struct cl_sock *next;
} cl_sock;

/* Invariant: multi != NULL exactly between a successful init and cleanup; everything
 * here is touched only from `loop`'s thread. */
static struct {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    int depth;                              /* > 0 while inside curl_multi_* */
    tg_upstream_xfer *defer_head, *defer_tail;
    cl_sock *socks;
} cl;

static void cl_sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static cl_sock *cl_sock_find(curl_socket_t fd)
{
    for (cl_sock *s = cl.socks; s; s = s->next)
        if (s->fd == fd) return s;
    return NULL;
}

static void cl_watch(cl_sock *s, int ev)
{
    if (ev == s->events) return;  /* no epoll_ctl for an unchanged interest */
    if (ev) uv_poll_start(&s->poll, ev, s->poll.poll_cb);
    else uv_poll_stop(&s->poll);
    s->events = ev;
}

curl_socket_t tg_upstream_curl_opensocket(void *clientp, curlsocktype purpose,
                                          struct curl_sockaddr *addr)
{
    curl_socket_t fd = socket(addr->family, addr->socktype, addr->protocol);
    if (fd == CURL_SOCKET_BAD) return fd;
    cl_sock *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->fd = fd;
    s->kept = true;
    s->next = cl.socks;
    cl.socks = s;
    return fd;
}

static void cl_sock_end(cl_sock *s)
{
    /* uv_close drops the fd from epoll at once, so closing it right after is safe */
    if (s->inited) uv_close((uv_handle_t *)&s->poll, cl_sock_closed);
    else free(s);
}

int tg_upstream_curl_closesocket(void *clientp, curl_socket_t fd)
{
    cl_sock **pp = &cl.socks;
    while (*pp && (*pp)->fd != fd) pp = &(*pp)->next;
    if (*pp) {
        cl_sock *s = *pp;
        *pp = s->next;
        cl_sock_end(s);
    }
    return close(fd);
}

static void cl_finish(tg_upstream_xfer *x, CURLcode result)
{
    if (x->in_multi) {
        curl_multi_remove_handle(cl.multi, x->easy);
        x->in_multi = false;
    }
    x->done(x, result);
}

static void cl_start(tg_upstream_xfer *x)
{
    CURLMcode mc = curl_multi_add_handle(cl.multi, x->easy);
    if (mc != CURLM_OK) {
        tg_log_error("upstream", "curl refused a transfer: %s", curl_multi_strerror(mc));
        x->done(x, CURLE_FAILED_INIT);
        return;
    }
    x->in_multi = true;
}

static void cl_run_deferred(void)
{
    while (cl.defer_head) {
        tg_upstream_xfer *x = cl.defer_head;
        cl.defer_head = x->next_deferred;
        if (!cl.defer_head) cl.defer_tail = NULL;
        int op = x->deferred;
        x->deferred = DEFER_NONE;
        x->next_deferred = NULL;
        if (op == DEFER_ADD) cl_start(x);
        else cl_finish(x, CURLE_ABORTED_BY_CALLBACK);
    }
}

static void cl_collect_done(void)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(cl.multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        tg_upstream_xfer *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        cl_finish(x, m->data.result);
    }
}

static void cl_action(curl_socket_t fd, int flags)
{
    int running;
    cl.depth++;
    curl_multi_socket_action(cl.multi, fd, flags, &running);
    cl.depth--;
    /* Cancels first: a cancelled transfer that also finished gets one `done`, since
     * removing the handle drops its completion message. */
    cl_run_deferred();
    cl_collect_done();
}

static void cl_poll_cb(uv_poll_t *h, int status, int events)
{
    cl_sock *s = h->data;
    if (s->idle) {
        /* The peer closed a cached connection (or sent something unasked): curl finds
         * out when it next checks the connection; until then, stop the level-triggered
         * event from spinning. */
        cl_watch(s, 0);
        return;
    }
    int flags = 0;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    cl_action(s->fd, flags);
}

static int cl_socket_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    cl_sock *s = socketp ? socketp : cl_sock_find(fd);
    if (what == CURL_POLL_REMOVE) {
        if (s && s->kept) {
            s->idle = true;
            cl_watch(s, s->events & UV_READABLE);
        } else if (s) {
            curl_multi_assign(cl.multi, fd, NULL);
            cl_sock_end(s);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) abort();
        s->fd = fd;
    }
    if (!s->inited) {
        int rc = uv_poll_init_socket(cl.loop, &s->poll, fd);
        if (rc != 0) {
            tg_log_error("upstream", "cannot watch a curl socket: %s", uv_strerror(rc));
            if (!s->kept) free(s);
            return -1;  /* curl fails the transfer */
        }
        s->inited = true;
        s->poll.data = s;
        s->poll.poll_cb = cl_poll_cb;
    }
    if (!socketp) curl_multi_assign(cl.multi, fd, s);
    s->idle = false;
    int ev = 0;
    if (what & CURL_POLL_IN) ev |= UV_READABLE;
    if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
    cl_watch(s, ev);
    return 0;
}

static void cl_timer_cb(uv_timer_t *t)
{
    cl_action(CURL_SOCKET_TIMEOUT, 0);
}

static int cl_timer_func(CURLM *m, long timeout_ms, void *userp)
{
    if (timeout_ms < 0) uv_timer_stop(&cl.timer);
    else uv_timer_start(&cl.timer, cl_timer_cb, (uint64_t)timeout_ms, 0); /* 0 stays 0 */
    return 0;
}

int tg_upstream_curl_init(uv_loop_t *loop, tg_error *err)
{
    if (cl.multi) return tg_error_set(err, "upstream transports are already initialised");
    CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cc != CURLE_OK)
        return tg_error_set(err, "curl_global_init failed: %s", curl_easy_strerror(cc));
    cl.multi = curl_multi_init();
    if (!cl.multi) {
        curl_global_cleanup();
        return tg_error_set(err, "curl_multi_init failed");
    }
    cl.loop = loop;
    uv_timer_init(loop, &cl.timer);
    curl_multi_setopt(cl.multi, CURLMOPT_SOCKETFUNCTION, cl_socket_cb);
    curl_multi_setopt(cl.multi, CURLMOPT_TIMERFUNCTION, cl_timer_func);
    return 0;
}

bool tg_upstream_curl_ready(void)
{
    return cl.multi != NULL;
}

void tg_upstream_curl_cleanup(void)
{
    if (!cl.multi) return;
    curl_multi_cleanup(cl.multi);  /* may still call our callbacks: timer last */
    uv_close((uv_handle_t *)&cl.timer, NULL);
    curl_global_cleanup();
    cl.multi = NULL;
    cl.loop = NULL;
}

static void cl_defer(tg_upstream_xfer *x, int op)
{
    if (x->deferred) {  /* already queued: a cancel overrides a pending add */
        x->deferred = op;
        return;
    }
    x->deferred = op;
    x->next_deferred = NULL;
    if (cl.defer_tail) cl.defer_tail->next_deferred = x;
    else cl.defer_head = x;
    cl.defer_tail = x;
}

int tg_upstream_curl_add(tg_upstream_xfer *x, tg_error *err)
{
    if (!cl.multi)
        return tg_error_set(err, "upstream transports not initialised "
                                 "(call tg_upstream_global_init first)");
    if (cl.depth > 0) {
        cl_defer(x, DEFER_ADD);
        return 0;
    }
    CURLMcode mc = curl_multi_add_handle(cl.multi, x->easy);
    if (mc != CURLM_OK) return tg_error_set(err, "curl: %s", curl_multi_strerror(mc));
    x->in_multi = true;
    return 0;
}

void tg_upstream_curl_cancel(tg_upstream_xfer *x)
{
    if (cl.depth > 0) cl_defer(x, DEFER_CANCEL);
    else cl_finish(x, CURLE_ABORTED_BY_CALLBACK);
}
