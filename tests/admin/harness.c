/*
 * harness.c — the admin listener on a loop thread and a raw HTTP client for the
 * approvers' tests (harness.h). Raw sockets, so the tests see exactly the bytes a client
 * gets: status line, every header, the body.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/tg_common.h"
#include "harness.h"

static uv_async_t stop_async;
static pthread_t loop_thread;
static tg_admin *adm;
static uint16_t port;
static tg_admin_conf conf;
static tg_limits limits;

static int op_reload(void *ctx, const char **version, tg_error *err)
{
    (void)ctx;
    (void)err;
    *version = "v1";
    return 0;
}

static int op_ready(void *ctx, tg_buf *why)
{
    (void)ctx;
    (void)why;
    return 1;
}

static void closed(void *arg)
{
    (void)arg;
}

static void (*stop_more)(void *arg);
static void *stop_arg;

static void on_stop(uv_async_t *h)
{
    tg_admin_close(adm, closed, NULL);
    if (stop_more) stop_more(stop_arg);
    uv_close((uv_handle_t *)h, NULL);
}

static void *run_loop(void *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    return NULL;
}

void harness_start(uv_loop_t *loop, struct tg_approvals *approvals,
                   void (*on_stop_more)(void *arg), void *arg)
{
    tg_admin_ops ops = {.reload = op_reload, .ready = op_ready, .approvals = approvals};
    harness_start_ops(loop, &ops, on_stop_more, arg);
}

void harness_start_ops(uv_loop_t *loop, const tg_admin_ops *ops,
                       void (*on_stop_more)(void *arg), void *arg)
{
    stop_more = on_stop_more;
    stop_arg = arg;
    conf = (tg_admin_conf){.where = "t.yaml:1:1", .listen_host = "127.0.0.1",
                           .token = HARNESS_TOKEN};
    limits = (tg_limits){.max_body_bytes = 65536, .max_header_bytes = 16384, .max_headers = 64,
                         .max_connections = 16, .header_timeout_ms = 5000,
                         .body_timeout_ms = 5000, .idle_timeout_ms = 5000};
    adm = tg_admin_new(loop, &conf, &limits, ops);
    tg_error err;
    if (tg_admin_listen(adm, &err) < 0) fail_msg("%s", err.msg);
    port = tg_admin_port(adm);
    uv_async_init(loop, &stop_async, on_stop);
    pthread_create(&loop_thread, NULL, run_loop, loop);
}

void harness_stop(void)
{
    uv_async_send(&stop_async);
    pthread_join(loop_thread, NULL);
    tg_admin_free(adm);
}

void harness_close_loop(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

int harness_dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

void harness_send(int fd, const char *method, const char *path, const char *headers,
                  const char *body)
{
    tg_buf req = TG_BUF_INIT;
    tg_buf_printf(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Length: %zu\r\n"
                  "Connection: close\r\n\r\n%s", method, path, headers ? headers : "",
                  body ? strlen(body) : 0, body ? body : "");
    assert_int_equal(write(fd, req.data, req.len), (ssize_t)req.len);
    tg_buf_free(&req);
}

char *harness_ask(const char *method, const char *path, const char *headers, const char *body)
{
    int fd = harness_dial();
    harness_send(fd, method, path, headers, body);
    size_t cap = 65536, len = 0;
    char *out = calloc(1, cap);
    ssize_t r;
    while (len < cap - 1 && (r = read(fd, out + len, cap - 1 - len)) > 0) len += (size_t)r;
    close(fd);
    return out;
}

int harness_status(const char *resp)
{
    int st = 0;
    sscanf(resp, "HTTP/1.1 %d", &st);
    return st;
}

const char *harness_body(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

void harness_expect(const char *method, const char *path, const char *headers,
                    const char *body, int status, const char *code)
{
    char *r = harness_ask(method, path, headers, body);
    if (harness_status(r) != status)
        fail_msg("%s %s: expected %d, got: %s", method, path, status, r);
    if (code) {
        char want[128];
        snprintf(want, sizeof want, "{\"error\":\"%s\",\"message\":", code);
        if (!strstr(harness_body(r), want))
            fail_msg("%s %s: expected %s in: %s", method, path, code, r);
    }
    free(r);
}
