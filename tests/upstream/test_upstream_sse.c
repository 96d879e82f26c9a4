/*
 * test_upstream_sse.c — the event-stream parser the HTTP transport uses, fed the same
 * stream split at every possible point (and byte by byte): events, multi-line data,
 * comments, priming events, other event types, CR / LF / CRLF line ends, id and retry,
 * and the size bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "upstream/upstream_int.h"

typedef struct events {
    char *data[16];
    size_t n;
} events;

static void on_event(void *user, const char *data, size_t len)
{
    events *ev = user;
    assert_true(ev->n < 16);
    ev->data[ev->n++] = strndup(data, len);
}

static void events_free(events *ev)
{
    for (size_t i = 0; i < ev->n; i++) free(ev->data[i]);
    ev->n = 0;
}

static const char stream[] =
    ": keep-alive comment\r\n"
    "\r\n"
    "id: prime-1\r\n"
    "data:\r\n"
    "\r\n"                                       /* priming event: empty data, skipped */
    "event: message\n"
    "data: {\"a\":1}\n"
    "\n"
    "data: {\"b\":\n"
    "data:2}\r"                                  /* CR alone ends a line too */
    "\r"
    "event: other\n"
    "data: ignored\n"
    "\n"
    "retry: 1500\n"
    "id: last-7\n"
    "data:  two spaces keep one\r\n"
    "unknown: field\r\n"
    "\r\n"
    "data: unterminated event is not dispatched\n";

static void check(events *ev, tg_upstream_sse *p)
{
    assert_int_equal(ev->n, 3);
    assert_string_equal(ev->data[0], "{\"a\":1}");
    assert_string_equal(ev->data[1], "{\"b\":\n2}");
    assert_string_equal(ev->data[2], " two spaces keep one");
    assert_string_equal(p->last_id, "last-7");
    assert_int_equal(p->retry_ms, 1500);
}

static void test_every_split_point(void **state)
{
    size_t len = sizeof stream - 1;
    for (size_t cut = 0; cut <= len; cut++) {
        events ev = {0};
        tg_upstream_sse p;
        tg_upstream_sse_init(&p, 1 << 20, on_event, &ev);
        tg_error err;
        assert_int_equal(tg_upstream_sse_feed(&p, stream, cut, &err), 0);
        assert_int_equal(tg_upstream_sse_feed(&p, stream + cut, len - cut, &err), 0);
        check(&ev, &p);
        events_free(&ev);
        tg_upstream_sse_free(&p);
    }
}

static void test_byte_by_byte(void **state)
{
    events ev = {0};
    tg_upstream_sse p;
    tg_upstream_sse_init(&p, 1 << 20, on_event, &ev);
    tg_error err;
    for (size_t i = 0; i < sizeof stream - 1; i++)
        assert_int_equal(tg_upstream_sse_feed(&p, stream + i, 1, &err), 0);
    check(&ev, &p);
    events_free(&ev);
    tg_upstream_sse_free(&p);
}

static void test_limits(void **state)
{
    events ev = {0};
    tg_upstream_sse p;
    tg_error err;
    /* One line longer than the bound, even arriving in pieces. */
    tg_upstream_sse_init(&p, 16, on_event, &ev);
    assert_int_equal(tg_upstream_sse_feed(&p, "data: 0123456", 13, &err), 0);
    assert_int_equal(tg_upstream_sse_feed(&p, "789abcdef", 9, &err), -1);
    assert_non_null(strstr(err.msg, "exceeds 16 bytes"));
    tg_upstream_sse_free(&p);
    /* Many short data lines adding up to more than the bound. */
    tg_upstream_sse_init(&p, 16, on_event, &ev);
    assert_int_equal(tg_upstream_sse_feed(&p, "data: 12345\ndata: 12345\n", 24, &err), 0);
    assert_int_equal(tg_upstream_sse_feed(&p, "data: 12345\n", 12, &err), -1);
    assert_int_equal(ev.n, 0);
    tg_upstream_sse_free(&p);
    /* An id too long for Last-Event-ID is ignored, the previous one kept. */
    tg_upstream_sse_init(&p, 1 << 20, on_event, &ev);
    char line[400];
    memset(line, 'i', sizeof line);
    memcpy(line, "id: ", 4);
    assert_int_equal(tg_upstream_sse_feed(&p, "id: ok\n", 7, &err), 0);
    assert_int_equal(tg_upstream_sse_feed(&p, line, sizeof line, &err), 0);
    assert_int_equal(tg_upstream_sse_feed(&p, "\n", 1, &err), 0);
    assert_string_equal(p.last_id, "ok");
    tg_upstream_sse_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_split_point),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
