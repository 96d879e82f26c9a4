/*
 * test_approvals_http.c — the approvers' surfaces of the admin listener (src/admin:
 * approvals_http.c, inbox.c) over real sockets, with the approvals service replaced by
 * fake_approvals.c so each HTTP rule is checked on its own: approver authentication
 * (and that admin.token neither opens nor guards these routes, nor an approver key
 * /reload), route shapes and ids (404), methods (405 + Allow), the list query, the
 * decision body (strict JSON, only "comment", at most 2000 bytes), status codes and
 * error codes passed through from the service, an authentication that finishes later
 * and one cancelled because the client left, and the inbox's files with their headers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <uv.h>

#include "fake_approvals.h"
#include "harness.h"

#define TOKEN HARNESS_TOKEN
#define OPERATOR "Authorization: Bearer " TOKEN "\r\n"
#define BOB "Authorization: Bearer tga_bob\r\n"
#define ALICE "Authorization: Bearer tga_alice\r\n"

static uv_loop_t loop;

static int setup(void **state)
{
    (void)state;
    uv_loop_init(&loop);
    fake_loop = &loop;
    harness_start(&loop, fake_approvals(), NULL, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    harness_stop();
    harness_close_loop(&loop);
    return 0;
}

static void test_authentication(void **state)
{
    (void)state;
    char *r = harness_ask("GET", "/approvals", NULL, NULL);
    assert_int_equal(harness_status(r), 401);
    assert_non_null(strstr(r, "WWW-Authenticate: Bearer realm=\"toolgate approvals\"\r\n"));
    assert_non_null(strstr(harness_body(r),
                           "{\"error\":\"UNAUTHORIZED\",\"message\":\"unknown approver credential\"}"));
    free(r);
    /* An operator token is not a human approver. */
    harness_expect("GET", "/approvals", OPERATOR, NULL, 401, "UNAUTHORIZED");
    harness_expect("GET", "/approvals/apr_1", "Authorization: Bearer tga_bobx\r\n", NULL, 401,
                   "UNAUTHORIZED");
    harness_expect("GET", "/approvals", "Authorization: Bearer agent_token\r\n", NULL, 403, "FORBIDDEN");
    harness_expect("GET", "/approvals", BOB BOB, NULL, 400, "BAD_REQUEST");
    /* The approver's credential does not open the operator routes. */
    harness_expect("POST", "/reload", BOB, NULL, 401, NULL);
    harness_expect("GET", "/healthz", BOB, NULL, 401, NULL);
    harness_expect("GET", "/healthz", OPERATOR, NULL, 200, NULL);
    /* Unauthenticated: a bad body is not even looked at, nothing is decided. */
    int before = fake_seen.decisions;
    harness_expect("POST", "/approvals/apr_1/approve", NULL, "{\"comment\":", 401, "UNAUTHORIZED");
    assert_int_equal(fake_seen.decisions, before);
}

static void test_routes(void **state)
{
    (void)state;
    int auths = fake_seen.authentications;
    static const char *const not_found[] = {
        "/approvals/", "/approvals/APR_1", "/approvals/apr-1", "/approvals/apr_1/",
        "/approvals/apr_1/approve/x", "/approvals/apr_1/frob", "/approvals/apr%5f1",
        "/approvals//approve",
        "/approvals/a123456789012345678901234567890123456789012345678901234567890123x",
    };
    for (size_t i = 0; i < sizeof not_found / sizeof *not_found; i++)
        harness_expect("GET", not_found[i], BOB, NULL, 404, "NOT_FOUND");
    char *r = harness_ask("POST", "/approvals", BOB, NULL);
    assert_int_equal(harness_status(r), 405);
    assert_non_null(strstr(r, "\r\nAllow: GET\r\n"));
    assert_non_null(strstr(harness_body(r), "\"error\":\"METHOD_NOT_ALLOWED\""));
    free(r);
    r = harness_ask("GET", "/approvals/apr_1/approve", BOB, NULL);
    assert_int_equal(harness_status(r), 405);
    assert_non_null(strstr(r, "\r\nAllow: POST\r\n"));
    free(r);
    harness_expect("DELETE", "/approvals/apr_1", BOB, NULL, 405, "METHOD_NOT_ALLOWED");
    /* A browser's CORS preflight gets no permission: other origins cannot call the API. */
    r = harness_ask("OPTIONS", "/approvals/apr_1/approve", "Origin: https://evil.example\r\n"
                    "Access-Control-Request-Method: POST\r\n"
                    "Access-Control-Request-Headers: authorization\r\n", NULL);
    assert_int_equal(harness_status(r), 405);
    assert_null(strstr(r, "Access-Control-"));
    free(r);
    harness_expect("PUT", "/approvals/apr_1/deny", BOB, NULL, 405, "METHOD_NOT_ALLOWED");
    /* None of these needed to know who asked. */
    assert_int_equal(fake_seen.authentications, auths);
    /* The longest valid id is routed (and is unknown). */
    harness_expect("GET", "/approvals/a123456789012345678901234567890123456789012345678901234567890123",
           BOB, NULL, 404, "NOT_FOUND");
    assert_int_equal(fake_seen.authentications, auths + 1);
    /* Not ours: the operator rules apply (token, then 404). */
    harness_expect("GET", "/approvalsx", BOB, NULL, 401, NULL);
    harness_expect("GET", "/approvalsx", OPERATOR, NULL, 404, NULL);
}

static void test_list(void **state)
{
    (void)state;
    char *r = harness_ask("GET", "/approvals", BOB, NULL);
    assert_int_equal(harness_status(r), 200);
    assert_non_null(strstr(r, "Content-Type: application/json"));
    assert_non_null(strstr(r, "Cache-Control: no-store"));
    assert_true(harness_body(r)[0] == '[');
    assert_non_null(strstr(harness_body(r), "\"id\":\"apr_1\""));
    assert_string_equal(fake_seen.state, "(all)");
    assert_int_equal(fake_seen.limit, 0);
    free(r);
    harness_expect("GET", "/approvals?state=pending&limit=500", BOB, NULL, 200, NULL);
    assert_string_equal(fake_seen.state, "pending");
    assert_int_equal(fake_seen.limit, 500);
    harness_expect("GET", "/approvals?limit=1&state=used", BOB, NULL, 200, NULL);
    assert_string_equal(fake_seen.state, "used");
    assert_int_equal(fake_seen.limit, 1);
    int lists = fake_seen.lists;
    static const char *const bad[] = {
        "?state=bogus", "?state=", "?state=Pending", "?limit=0", "?limit=501", "?limit=abc",
        "?limit=-1", "?limit=", "?limit=0500", "?limit=5&limit=6", "?state=used&state=used",
        "?foo=1", "?state=pending&", "?&state=pending", "?state", "?state=pending%20",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char path[64];
        snprintf(path, sizeof path, "/approvals%s", bad[i]);
        harness_expect("GET", path, BOB, NULL, 400, "BAD_REQUEST");
    }
    assert_int_equal(fake_seen.lists, lists);   /* none reached the service */
    fake_seen.fail_store = true;
    harness_expect("GET", "/approvals", BOB, NULL, 500, "STORE_ERROR");
    fake_seen.fail_store = false;
}

static void test_get(void **state)
{
    (void)state;
    char *r = harness_ask("GET", "/approvals/apr_1", BOB, NULL);
    assert_int_equal(harness_status(r), 200);
    assert_non_null(strstr(harness_body(r), "{\"id\":\"apr_1\",\"state\":\"pending\""));
    free(r);
    harness_expect("GET", "/approvals/apr_2", BOB, NULL, 404, "NOT_FOUND");
    harness_expect("GET", "/approvals/apr_1?x=1", BOB, NULL, 400, "BAD_REQUEST");
}

static void test_decide(void **state)
{
    (void)state;
    char *r = harness_ask("POST", "/approvals/apr_1/approve", BOB, "{\"comment\":\"release 1.2\"}");
    assert_int_equal(harness_status(r), 200);
    assert_non_null(strstr(harness_body(r), "\"state\":\"approved\""));
    assert_non_null(strstr(harness_body(r), "\"approver\":\"bob\""));
    free(r);
    assert_true(fake_seen.approve);
    assert_string_equal(fake_seen.comment, "release 1.2");
    harness_expect("POST", "/approvals/apr_1/deny", BOB, NULL, 200, NULL);
    assert_false(fake_seen.approve);
    assert_string_equal(fake_seen.comment, "(none)");
    harness_expect("POST", "/approvals/apr_1/deny", BOB, "{}", 200, NULL);
    assert_string_equal(fake_seen.comment, "(none)");

    /* Exactly 2000 bytes pass, 2001 do not. */
    char big[2100] = "{\"comment\":\"";
    size_t off = strlen(big);
    memset(big + off, 'x', 2000);
    strcpy(big + off + 2000, "\"}");
    harness_expect("POST", "/approvals/apr_1/approve", BOB, big, 200, NULL);
    assert_int_equal(strlen(fake_seen.comment), 2000);
    memset(big + off, 'y', 2001);
    strcpy(big + off + 2001, "\"}");
    int decisions = fake_seen.decisions;
    harness_expect("POST", "/approvals/apr_1/approve", BOB, big, 400, "BAD_REQUEST");

    static const char *const bad[] = {
        "{\"comment\":", "nope", "[]", "\"lgtm\"", "{\"comment\":1}", "{\"comment\":null}",
        "{\"comment\":\"a\",\"comment\":\"b\"}", "{\"comment\":\"a\",\"approve\":true}",
        "{\"Comment\":\"a\"}", "{\"comment\":\"a\\u0000b\"}", "{} {}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        harness_expect("POST", "/approvals/apr_1/approve", BOB, bad[i], 400, "BAD_REQUEST");
    harness_expect("POST", "/approvals/apr_1/approve?x=1", BOB, NULL, 400, "BAD_REQUEST");
    assert_int_equal(fake_seen.decisions, decisions);   /* none reached the service */

    /* The service's refusals keep their status, code and message. */
    r = harness_ask("POST", "/approvals/apr_1/approve", ALICE, "{\"comment\":\"mine\"}");
    assert_int_equal(harness_status(r), 403);
    assert_non_null(strstr(harness_body(r), "{\"error\":\"SELF_APPROVAL_FORBIDDEN\",\"message\":"
                                       "\"alice asked for this call and cannot decide it\"}"));
    free(r);
    harness_expect("POST", "/approvals/apr_done/deny", BOB, NULL, 409, "NOT_PENDING");
    harness_expect("POST", "/approvals/apr_zzz/approve", BOB, NULL, 404, "NOT_FOUND");
}

static void test_slow_authentication(void **state)
{
    (void)state;
    /* Answered once the authentication finishes on a later loop turn. */
    char *r = harness_ask("POST", "/approvals/apr_1/approve", "Authorization: Bearer tga_slow\r\n",
                  "{\"comment\":\"later\"}");
    assert_int_equal(harness_status(r), 200);
    assert_string_equal(fake_seen.comment, "later");
    free(r);
    /* A client that leaves while it runs cancels it; nothing is decided. */
    int cancels = __atomic_load_n(&fake_seen.cancels, __ATOMIC_SEQ_CST);
    int decisions = fake_seen.decisions;
    int fd = harness_dial();
    harness_send(fd, "POST", "/approvals/apr_1/deny", "Authorization: Bearer tga_slow\r\n", NULL);
    usleep(50 * 1000);
    close(fd);
    for (int i = 0; i < 100 && __atomic_load_n(&fake_seen.cancels, __ATOMIC_SEQ_CST) == cancels;
         i++)
        usleep(10 * 1000);
    assert_int_equal(__atomic_load_n(&fake_seen.cancels, __ATOMIC_SEQ_CST), cancels + 1);
    usleep(300 * 1000);   /* past the fake's 200 ms: a late callback would decide now */
    harness_expect("GET", "/healthz", OPERATOR, NULL, 200, NULL);
    assert_int_equal(fake_seen.decisions, decisions);
}

/* The inbox: no credential, strict headers, no inline script. */
static void check_asset(const char *path, const char *type, const char *needle)
{
    char *r = harness_ask("GET", path, NULL, NULL);
    if (harness_status(r) != 200) fail_msg("GET %s: %s", path, r);
    char want[128];
    snprintf(want, sizeof want, "\r\nContent-Type: %s\r\n", type);
    assert_non_null(strstr(r, want));
    assert_non_null(strstr(r, "\r\nCache-Control: no-store\r\n"));
    assert_non_null(strstr(r, "\r\nContent-Security-Policy: default-src 'self'; "));
    assert_non_null(strstr(r, "frame-ancestors 'none'"));
    assert_non_null(strstr(r, "\r\nX-Content-Type-Options: nosniff\r\n"));
    assert_non_null(strstr(r, "\r\nReferrer-Policy: no-referrer\r\n"));
    assert_non_null(strstr(harness_body(r), needle));
    free(r);
}

static void test_inbox(void **state)
{
    (void)state;
    check_asset("/inbox", "text/html; charset=utf-8", "<script src=\"/inbox/app.js\"");
    check_asset("/inbox/app.js", "text/javascript; charset=utf-8", "sessionStorage");
    check_asset("/inbox/style.css", "text/css; charset=utf-8", ".card");
    /* Every script of the page is a file of this server (the CSP would block others). */
    char *r = harness_ask("GET", "/inbox", NULL, NULL);
    for (const char *p = strstr(r, "<script"); p; p = strstr(p + 1, "<script"))
        assert_true(strncmp(p, "<script src=\"/inbox/", 20) == 0);
    for (const char *p = strstr(r, " on"); p; p = strstr(p + 1, " on")) {
        size_t n = strspn(p + 3, "abcdefghijklmnopqrstuvwxyz");
        assert_false(n > 0 && p[3 + n] == '=');   /* no inline handler (onclick=…) */
    }
    assert_null(strstr(r, "style=")); /* no inline styles */
    free(r);
    r = harness_ask("POST", "/inbox", NULL, NULL);
    assert_int_equal(harness_status(r), 405);
    assert_non_null(strstr(r, "\r\nAllow: GET\r\n"));
    free(r);
    /* Other paths below /inbox are not the inbox's: the operator rules apply. */
    harness_expect("GET", "/inbox/", NULL, NULL, 401, NULL);
    harness_expect("GET", "/inbox/../admin", OPERATOR, NULL, 404, NULL);
    harness_expect("GET", "/inbox/secret.txt", OPERATOR, NULL, 404, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_authentication),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_slow_authentication),
        cmocka_unit_test(test_inbox),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
