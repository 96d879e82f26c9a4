/*
 * test_upstream_stdio.c — the stdio transport against fake_stdio_server (path in argv[1]):
 * spawn and round trip, out-of-order responses, invalid lines dropped, the child's
 * environment is exactly the configured one, crash → DOWN → restart with a new pid,
 * close with and without escalation to SIGKILL, stderr to the log, broken servers.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "harness.h"

/* Longer than the transport keeps of one stderr line (4096). */
#define STDIO_RUN 5000

static const char *fake_path;
static uv_loop_t loop;

typedef struct fixture {
    const char *argv[6];
    tg_kv env[2];
    tg_upstream_conf conf;
    recorder rec;
    tg_upconn *c;
} fixture;

/* Starts the fake server with the given extra arguments (NULL-terminated). */
static fixture *start(fixture *f, const char *arg1, const char *arg2, const char *arg3)
{
    memset(f, 0, sizeof *f);
    f->argv[0] = fake_path;
    f->argv[1] = arg1;
    f->argv[2] = arg1 ? arg2 : NULL;
    f->argv[3] = arg1 && arg2 ? arg3 : NULL;
    f->env[0] = (tg_kv){"ONLY_THIS", "yes"};
    f->conf = (tg_upstream_conf){
        .name = "fake",
        .transport = TG_UP_STDIO,
        .argv = f->argv,
        .argc = 1,
        .env = f->env,
        .nenv = 1,
        .restart_min_ms = 50,
        .restart_max_ms = 200,
        .shutdown_grace_ms = 2000,
    };
    tg_error err;
    f->c = tg_upconn_new(&loop, &f->conf, &recorder_cbs, &f->rec, &err);
    assert_non_null(f->c);
    assert_int_equal(tg_upconn_get_state(f->c), TG_UPCONN_STARTING);
    assert_true(run_until(&loop, cond_up, &f->rec, 5000));
    return f;
}

static void close_and_wait(fixture *f)
{
    tg_upconn_close(f->c);
    assert_true(run_until(&loop, cond_closed, &f->rec, 10000));
    assert_int_equal(recorder_count_state(&f->rec, TG_UPCONN_CLOSED), 1);
    recorder_reset(&f->rec);
}

static void send_req(fixture *f, json_int_t id, const char *method, json_t *params)
{
    json_t *m = make_request(id, method, params);
    tg_error err;
    assert_int_equal(tg_upconn_send_json(f->c, m, &err), 0);
    json_decref(m);
}

static size_t want_msgs;
static recorder *want_rec;
static bool cond_msgs(void *arg)
{
    return want_rec->nmsgs >= want_msgs;
}

static void wait_msgs(fixture *f, size_t n)
{
    want_msgs = n;
    want_rec = &f->rec;
    assert_true(run_until(&loop, cond_msgs, NULL, 5000));
}

static json_int_t msg_id(const fixture *f, size_t i)
{
    return json_integer_value(json_object_get(f->rec.msgs[i], "id"));
}

static void test_round_trip(void **state)
{
    fixture f;
    start(&f, NULL, NULL, NULL);
    assert_true(tg_upconn_pid(f.c) > 0);
    send_req(&f, 7, "echo", json_pack("{s:s}", "hello", "wörld\nnewline"));
    wait_msgs(&f, 1);
    assert_int_equal(msg_id(&f, 0), 7);
    assert_null(f.rec.stream_of[0]);
    json_t *echo = json_object_get(json_object_get(f.rec.msgs[0], "result"), "echo");
    assert_string_equal(json_string_value(json_object_get(echo, "hello")), "wörld\nnewline");
    /* The child really is a separate process reporting our pid for it. */
    send_req(&f, 8, "pid", NULL);
    wait_msgs(&f, 2);
    json_int_t child = json_integer_value(
        json_object_get(json_object_get(f.rec.msgs[1], "result"), "pid"));
    assert_int_equal(child, tg_upconn_pid(f.c));
    close_and_wait(&f);
}

/* Larger than a pipe buffer both ways: the write is queued, the read spans chunks. */
static void test_large_message(void **state)
{
    size_t n = 3u << 20;
    char *big = malloc(n + 1);
    memset(big, 'z', n);
    big[n] = '\0';
    fixture f;
    start(&f, NULL, NULL, NULL);
    send_req(&f, 1, "echo", json_pack("{s:s}", "big", big));
    send_req(&f, 2, "echo", NULL);
    wait_msgs(&f, 2);
    assert_int_equal(msg_id(&f, 0), 1);
    assert_int_equal(msg_id(&f, 1), 2);
    json_t *echo = json_object_get(json_object_get(f.rec.msgs[0], "result"), "echo");
    assert_string_equal(json_string_value(json_object_get(echo, "big")), big);
    free(big);
    close_and_wait(&f);
}

static void test_out_of_order(void **state)
{
    fixture f;
    start(&f, NULL, NULL, NULL);
    send_req(&f, 1, "hold", NULL);
    send_req(&f, 2, "echo", NULL);
    wait_msgs(&f, 2);
    assert_int_equal(msg_id(&f, 0), 2);
    assert_int_equal(msg_id(&f, 1), 1);
    close_and_wait(&f);
}

static void test_invalid_lines_dropped(void **state)
{
    fixture f;
    start(&f, NULL, NULL, NULL);
    capture_start();
    send_req(&f, 3, "invalid", NULL);
    send_req(&f, 4, "echo", NULL);
    wait_msgs(&f, 2);
    run_for(&loop, 50);
    char *log = capture_stop();
    /* Only the two real responses arrive; the junk is logged, not forwarded. */
    assert_int_equal(f.rec.nmsgs, 2);
    assert_int_equal(msg_id(&f, 0), 3);
    assert_int_equal(msg_id(&f, 1), 4);
    assert_non_null(strstr(log, "dropped invalid JSON"));
    assert_non_null(strstr(log, "this is not json"));
    assert_non_null(strstr(log, "dropped an invalid JSON-RPC message"));
    free(log);
    assert_int_equal(tg_upconn_get_state(f.c), TG_UPCONN_UP);
    close_and_wait(&f);
}

static void test_env_is_exactly_configured(void **state)
{
    setenv("TG_TEST_SECRET", "must-not-leak", 1);
    fixture f;
    start(&f, NULL, NULL, NULL);
    send_req(&f, 1, "env", json_pack("{s:s}", "name", "TG_TEST_SECRET"));
    send_req(&f, 2, "env", json_pack("{s:s}", "name", "ONLY_THIS"));
    send_req(&f, 3, "env", json_pack("{s:s}", "name", "PATH"));
    wait_msgs(&f, 3);
    json_t *r1 = json_object_get(f.rec.msgs[0], "result");
    json_t *r2 = json_object_get(f.rec.msgs[1], "result");
    json_t *r3 = json_object_get(f.rec.msgs[2], "result");
    assert_true(json_is_null(json_object_get(r1, "value")));
    assert_string_equal(json_string_value(json_object_get(r2, "value")), "yes");
    assert_true(json_is_null(json_object_get(r3, "value")));
    assert_int_equal(json_integer_value(json_object_get(r1, "count")), 1);
    close_and_wait(&f);
    unsetenv("TG_TEST_SECRET");
}

static void test_crash_restart(void **state)
{
    fixture f;
    start(&f, "--crash-after", "1", NULL);
    int pid1 = tg_upconn_pid(f.c);
    send_req(&f, 1, "echo", NULL);
    /* The response written just before the exit is still delivered. */
    wait_msgs(&f, 1);
    assert_true(run_until(&loop, cond_down, &f.rec, 5000));
    assert_string_equal(f.rec.whys[f.rec.nstates - 1], "exited with status 3");
    assert_int_equal(tg_upconn_pid(f.c), 0);
    tg_error err;
    json_t *m = make_request(2, "echo", NULL);
    assert_int_equal(tg_upconn_send_json(f.c, m, &err), -1);
    json_decref(m);
    assert_true(run_until(&loop, cond_up, &f.rec, 5000));
    int pid2 = tg_upconn_pid(f.c);
    assert_true(pid2 > 0);
    assert_int_not_equal(pid1, pid2);
    /* The fresh child answers. */
    send_req(&f, 3, "echo", NULL);
    wait_msgs(&f, 2);
    assert_int_equal(msg_id(&f, 1), 3);
    close_and_wait(&f);
}

static void test_killed_by_signal(void **state)
{
    fixture f;
    start(&f, NULL, NULL, NULL);
    kill(tg_upconn_pid(f.c), SIGKILL);
    assert_true(run_until(&loop, cond_down, &f.rec, 5000));
    assert_string_equal(f.rec.whys[f.rec.nstates - 1], "killed by signal 9");
    assert_true(run_until(&loop, cond_up, &f.rec, 5000));
    close_and_wait(&f);
}

static void test_close_graceful(void **state)
{
    fixture f;
    start(&f, NULL, NULL, NULL);
    int pid = tg_upconn_pid(f.c);
    uint64_t t0 = tg_now_ms();
    capture_start();
    close_and_wait(&f);
    char *log = capture_stop();
    /* The child exits on stdin EOF: no signal needed, well within the grace period. */
    assert_true(tg_now_ms() - t0 < 1500);
    assert_null(strstr(log, "SIGTERM"));
    free(log);
    assert_int_equal(kill(pid, 0), -1);
}

static void test_close_escalates_to_sigkill(void **state)
{
    fixture f;
    start(&f, "--ignore-sigterm", "--ignore-eof", NULL);
    f.conf.shutdown_grace_ms = 100;
    int pid = tg_upconn_pid(f.c);
    uint64_t t0 = tg_now_ms();
    capture_start();
    tg_upconn_close(f.c);
    assert_int_equal(tg_upconn_get_state(f.c), TG_UPCONN_CLOSING);
    bool closed = run_until(&loop, cond_closed, &f.rec, 5000);
    char *log = capture_stop();
    assert_true(closed);
    assert_true(tg_now_ms() - t0 >= 200);  /* grace, SIGTERM ignored, grace, SIGKILL */
    assert_non_null(strstr(log, "sending SIGTERM"));
    assert_non_null(strstr(log, "sending SIGKILL"));
    free(log);
    assert_int_equal(kill(pid, 0), -1);
    /* No DOWN is reported for a child stopped by close. */
    assert_int_equal(recorder_count_state(&f.rec, TG_UPCONN_DOWN), 0);
    recorder_reset(&f.rec);
}

static void test_stderr_to_log(void **state)
{
    fixture f;
    start(&f, NULL, NULL, NULL);
    capture_start();
    send_req(&f, 1, "stderr", json_pack("{s:s}", "text", "hello from \"child\""));
    send_req(&f, 2, "stderr", json_pack("{s:s,s:i}", "text", "y", "repeat", 10000));
    wait_msgs(&f, 2);
    run_for(&loop, 100);
    char *log = capture_stop();
    assert_non_null(strstr(log, "\"component\":\"upstream:fake\",\"msg\":\"hello from \\\"child\\\"\""));
    /* The 10000-byte line is truncated, not logged whole. */
    assert_non_null(strstr(log, "[truncated]"));
    char run[STDIO_RUN + 1];
    memset(run, 'y', STDIO_RUN);
    run[STDIO_RUN] = '\0';
    assert_null(strstr(log, run));
    free(log);
    close_and_wait(&f);
}

static void test_spawn_failure_retries(void **state)
{
    static const char *argv[] = {"/nonexistent/toolgate-fake-server", NULL};
    tg_upstream_conf conf = {
        .name = "missing", .transport = TG_UP_STDIO, .argv = argv, .argc = 1,
        .restart_min_ms = 20, .restart_max_ms = 40, .shutdown_grace_ms = 100,
    };
    recorder rec = {0};
    tg_error err;
    capture_start();
    tg_upconn *c = tg_upconn_new(&loop, &conf, &recorder_cbs, &rec, &err);
    assert_non_null(c);
    bool down = run_until(&loop, cond_down, &rec, 5000);
    run_for(&loop, 200);  /* several retries */
    char *log = capture_stop();
    assert_true(down);
    assert_non_null(strstr(rec.whys[0], "no such file or directory"));
    assert_int_equal(rec.nstates, 1);  /* retries are logged, DOWN is reported once */
    char *p = log;
    int attempts = 0;
    while ((p = strstr(p, "cannot start"))) {
        attempts++;
        p++;
    }
    free(log);
    assert_true(attempts >= 3);
    tg_upconn_close(c);
    assert_true(run_until(&loop, cond_closed, &rec, 5000));
    recorder_reset(&rec);
}

static void test_overlong_line_kills(void **state)
{
    fixture f;
    start(&f, NULL, NULL, NULL);
    capture_start();
    send_req(&f, 1, "bigline", json_pack("{s:i}", "bytes", 17 << 20));
    bool down = run_until(&loop, cond_down, &f.rec, 10000);
    char *log = capture_stop();
    free(log);
    assert_true(down);
    assert_string_equal(f.rec.whys[f.rec.nstates - 1], "stdout line longer than 16 MiB");
    assert_int_equal(f.rec.nmsgs, 0);
    assert_true(run_until(&loop, cond_up, &f.rec, 5000));
    close_and_wait(&f);
}

static void test_closed_stdout_kills(void **state)
{
    fixture f;
    start(&f, NULL, NULL, NULL);
    send_req(&f, 1, "closeout", NULL);
    capture_start();
    bool down = run_until(&loop, cond_down, &f.rec, 5000);
    char *log = capture_stop();
    free(log);
    assert_true(down);
    assert_string_equal(f.rec.whys[f.rec.nstates - 1], "closed its stdout");
    close_and_wait(&f);
}

static void test_bad_config(void **state)
{
    static const char *argv[] = {NULL};
    tg_upstream_conf conf = {.name = "x", .transport = TG_UP_STDIO, .argv = argv};
    recorder rec = {0};
    tg_error err;
    assert_null(tg_upconn_new(&loop, &conf, &recorder_cbs, &rec, &err));
    assert_non_null(strstr(err.msg, "needs a command"));
}

static int group_setup(void **state)
{
    uv_loop_init(&loop);
    tg_error err;
    return tg_upstream_global_init(&loop, &err);
}

static int group_teardown(void **state)
{
    tg_upstream_global_cleanup();
    uv_run(&loop, UV_RUN_NOWAIT);
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH-TO-fake_stdio_server\n", argv[0]);
        return 2;
    }
    fake_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_large_message),
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_invalid_lines_dropped),
        cmocka_unit_test(test_env_is_exactly_configured),
        cmocka_unit_test(test_crash_restart),
        cmocka_unit_test(test_killed_by_signal),
        cmocka_unit_test(test_close_graceful),
        cmocka_unit_test(test_close_escalates_to_sigkill),
        cmocka_unit_test(test_stderr_to_log),
        cmocka_unit_test(test_spawn_failure_retries),
        cmocka_unit_test(test_overlong_line_kills),
        cmocka_unit_test(test_closed_stdout_kills),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
