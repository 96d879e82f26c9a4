/*
 * stdio.c — the stdio transport: one MCP server as a child process speaking
 * newline-delimited JSON-RPC on stdin/stdout.
 *
 * The child gets EXACTLY the configured environment (conf->env), nothing inherited:
 * upstream credentials live there and nothing a client sends can reach it. It runs in
 * its own session (UV_PROCESS_DETACHED) so signals reach the whole process group —
 * servers started through `npx` or a shell wrapper leave no orphans behind.
 *
 * One "generation" is one child: spawn → UP → (exit or stdout EOF) → DOWN → all of its
 * handles closed → backoff → the next generation. libuv owns SIGCHLD (stack.md pitfall
 * 8): exits arrive through the process handle's exit callback, never from waitpid.
 * stdout lines are parsed strictly; stderr lines go to the log as
 * "upstream:<name>". Sends try uv_try_write first (pitfall 1) and queue only the rest.
 */
#include "upstream/upstream_int.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STDIO_MAX_LINE       (16u << 20) /* a longer stdout line means a broken server */
#define STDIO_READ_CHUNK     (64u << 10)
#define STDIO_KEEP_BUF       (1u << 20)  /* a read buffer larger than this is not kept */
#define STDIO_MAX_ERR_LINE   4096        /* stderr lines are truncated to this in the log */
#define STDIO_EOF_GRACE_MS   1000        /* stdout closed: time for the exit to arrive */
#define STDIO_STABLE_MS      60000       /* uptime that resets the restart backoff */
#define STDIO_DEFAULT_MIN_MS 500
#define STDIO_DEFAULT_MAX_MS 30000

typedef struct stdio_conn {
    struct tg_upconn base;   /* first: a tg_upconn * is a stdio_conn * */

    /* The current generation's handles. Invariant: gen_handles counts those of proc,
     * in, out, err that are initialised and not yet through their close callback; a new
     * child is spawned only when it is 0. */
    uv_process_t proc;
    uv_pipe_t in, out, err;
    int gen_handles;
    bool child_running;      /* spawned and its exit callback has not run */
    bool stdout_open;        /* reading stdout; false after EOF or a fatal error */
    int pid;                 /* child_running ? child's pid : 0 */
    char down_why[192];      /* reason overriding the exit status, or "" */

    uv_timer_t timer;        /* spawn, restart backoff, stdout-EOF grace, close escalation */
    bool timer_closing;
    int close_phase;         /* CLOSING: 0 stdin closed, 1 SIGTERM sent, 2 SIGKILL sent */

    uint32_t backoff_ms;     /* next restart delay */
    uint64_t up_since_ms;    /* when the current/last child came up; 0 if it never did */

    char **envp;             /* "K=V" strings from conf->env, NULL-terminated, owned */

    /* stdout: bytes not yet consumed as lines live in line[0..line_len);
     * line[0..scanned) is known to contain no '\n'. */
    char *line;
    size_t line_len, line_cap, scanned;

    /* stderr: the current partial line; `err_skipping` drops the rest of an over-long
     * line that was already logged truncated. */
    char errline[STDIO_MAX_ERR_LINE];
    size_t errline_len;
    bool err_skipping;
    char errscratch[8192];

    tg_buf wbuf;             /* serialisation scratch, reused for every send */
} stdio_conn;

typedef struct stdio_write {
    uv_write_t req;
    stdio_conn *sc;
    uv_buf_t buf;
    char data[];
} stdio_write;

static void stdio_timer_cb(uv_timer_t *t);
static void stdio_generation_down(stdio_conn *sc);

static void stdio_kill(stdio_conn *sc, int sig)
{
    if (!sc->child_running) return;
    /* The whole group first (the child is a session leader); the child alone if the
     * group is already gone. */
    if (uv_kill(-sc->pid, sig) != 0) uv_process_kill(&sc->proc, sig);
}

/* Marks the child broken: it is killed and the DOWN reason is `why`, not the signal. */
static void stdio_fail(stdio_conn *sc, const char *why)
{
    if (!sc->down_why[0]) snprintf(sc->down_why, sizeof sc->down_why, "%s", why);
    tg_log_error(sc->base.component, "%s; killing the server", why);
    stdio_kill(sc, SIGKILL);
}

static void stdio_free(stdio_conn *sc)
{
    if (sc->envp) {
        for (char **e = sc->envp; *e; e++) free(*e);
        free(sc->envp);
    }
    free(sc->line);
    tg_buf_free(&sc->wbuf);
    tg_upstream_base_free(&sc->base);
    free(sc);
}

static void stdio_timer_closed(uv_handle_t *h)
{
    stdio_conn *sc = h->data;
    tg_upstream_set_state(&sc->base, TG_UPCONN_CLOSED, NULL);
    stdio_free(sc);
}

/* CLOSING and nothing of the child left: the last step is closing the timer. */
static void stdio_maybe_finish(stdio_conn *sc)
{
    if (sc->base.state != TG_UPCONN_CLOSING || sc->gen_handles > 0 || sc->timer_closing) return;
    sc->timer_closing = true;
    uv_close((uv_handle_t *)&sc->timer, stdio_timer_closed);
}

/* The generation is over: restart after the backoff, or finish closing. */
static void stdio_generation_closed(stdio_conn *sc)
{
    free(sc->line);
    sc->line = NULL;
    sc->line_len = sc->line_cap = sc->scanned = 0;
    sc->errline_len = 0;
    sc->err_skipping = false;
    sc->down_why[0] = '\0';
    if (sc->base.state == TG_UPCONN_CLOSING) {
        stdio_maybe_finish(sc);
        return;
    }
    const tg_upstream_conf *conf = sc->base.conf;
    uint32_t min = conf->restart_min_ms ? conf->restart_min_ms : STDIO_DEFAULT_MIN_MS;
    uint32_t max = conf->restart_max_ms ? conf->restart_max_ms : STDIO_DEFAULT_MAX_MS;
    if (max < min) max = min;
    if (sc->up_since_ms && tg_now_ms() - sc->up_since_ms >= STDIO_STABLE_MS) sc->backoff_ms = min;
    uint32_t delay = sc->backoff_ms;
    sc->backoff_ms = delay >= max / 2 ? max : delay * 2;
    tg_log_info(sc->base.component, "restarting in %u ms", delay);
    uv_timer_start(&sc->timer, stdio_timer_cb, delay, 0);
}

static void stdio_gen_handle_closed(uv_handle_t *h)
{
    stdio_conn *sc = h->data;
    if (--sc->gen_handles == 0) stdio_generation_closed(sc);
}

static void stdio_gen_close(stdio_conn *sc, uv_handle_t *h)
{
    if (!uv_is_closing(h)) uv_close(h, stdio_gen_handle_closed);
}

static void stdio_close_generation(stdio_conn *sc)
{
    stdio_gen_close(sc, (uv_handle_t *)&sc->in);
    stdio_gen_close(sc, (uv_handle_t *)&sc->out);
    stdio_gen_close(sc, (uv_handle_t *)&sc->err);
    stdio_gen_close(sc, (uv_handle_t *)&sc->proc);
}

/* ---------------------------------------------------------------- stdout */

static void stdio_alloc_out(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    stdio_conn *sc = h->data;
    if (sc->line_cap - sc->line_len < STDIO_READ_CHUNK) {
        /* Doubling keeps a long line linear to read. */
        size_t cap = sc->line_cap * 2;
        sc->line_cap = cap > sc->line_len + STDIO_READ_CHUNK ? cap : sc->line_len + STDIO_READ_CHUNK;
        sc->line = realloc(sc->line, sc->line_cap);
        if (!sc->line) abort(); /* OOM is fatal, as in the arena */
    }
    *buf = uv_buf_init(sc->line + sc->line_len, (unsigned)(sc->line_cap - sc->line_len));
}

static void stdio_stdout_done(stdio_conn *sc)
{
    sc->stdout_open = false;
    uv_read_stop((uv_stream_t *)&sc->out);
    stdio_gen_close(sc, (uv_handle_t *)&sc->out);
}

/* Delivers every complete line in the buffer and keeps the partial rest. */
static void stdio_consume_lines(stdio_conn *sc)
{
    size_t start = 0;
    char *nl;
    while ((nl = memchr(sc->line + sc->scanned, '\n', sc->line_len - sc->scanned))) {
        size_t end = (size_t)(nl - sc->line);
        size_t len = end - start;
        if (len > 0 && sc->line[start + len - 1] == '\r') len--;
        if (len > 0) tg_upstream_deliver(&sc->base, sc->line + start, len, 0, false, NULL);
        start = sc->scanned = end + 1;
    }
    if (start > 0) {
        memmove(sc->line, sc->line + start, sc->line_len - start);
        sc->line_len -= start;
    }
    sc->scanned = sc->line_len;
    if (sc->line_len == 0 && sc->line_cap > STDIO_KEEP_BUF) {  /* a huge line has passed */
        free(sc->line);
        sc->line = NULL;
        sc->line_cap = 0;
    }
}

static void stdio_read_out(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    stdio_conn *sc = s->data;
    if (nread == 0) return;
    if (nread < 0) {
        if (nread != UV_EOF)
            tg_log_warn(sc->base.component, "reading stdout: %s", uv_strerror((int)nread));
        if (sc->line_len > 0)
            tg_log_warn(sc->base.component, "dropped an unterminated last line (%zu bytes)",
                        sc->line_len);
        stdio_stdout_done(sc);
        if (!sc->child_running) {
            stdio_generation_down(sc);
        } else if (sc->base.state == TG_UPCONN_UP) {
            /* Normally the exit follows at once; a child that only closed stdout is
             * broken and is killed if it has not exited after a grace period. */
            uv_timer_start(&sc->timer, stdio_timer_cb, STDIO_EOF_GRACE_MS, 0);
        }
        return;
    }
    sc->line_len += (size_t)nread;
    stdio_consume_lines(sc);
    if (sc->line_len > STDIO_MAX_LINE) {
        sc->line_len = sc->scanned = 0;
        stdio_stdout_done(sc);
        stdio_fail(sc, "stdout line longer than 16 MiB");
    }
}

/* ---------------------------------------------------------------- stderr */

static void stdio_alloc_err(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    stdio_conn *sc = h->data;
    *buf = uv_buf_init(sc->errscratch, sizeof sc->errscratch);
}

static void stdio_log_errline(stdio_conn *sc, bool truncated)
{
    size_t n = sc->errline_len;
    if (n > 0 && sc->errline[n - 1] == '\r') n--;
    tg_log_info(sc->base.component, "%.*s%s", (int)n, sc->errline,
                truncated ? " [truncated]" : "");
    sc->errline_len = 0;
}

static void stdio_read_err(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    stdio_conn *sc = s->data;
    if (nread == 0) return;
    if (nread < 0) {
        if (sc->errline_len > 0) stdio_log_errline(sc, false);
        uv_read_stop(s);
        stdio_gen_close(sc, (uv_handle_t *)s);
        return;
    }
    for (ssize_t i = 0; i < nread; i++) {
        char ch = buf->base[i];
        if (ch == '\n') {
            if (!sc->err_skipping) stdio_log_errline(sc, false);
            sc->err_skipping = false;
        } else if (!sc->err_skipping) {
            sc->errline[sc->errline_len++] = ch;
            if (sc->errline_len == sizeof sc->errline) {
                stdio_log_errline(sc, true);
                sc->err_skipping = true;
            }
        }
    }
}

/* ---------------------------------------------------------------- process */

/* The child has exited and its stdout is drained (or will never be): DOWN, and the
 * generation's handles go; the restart follows when they are closed. */
static void stdio_generation_down(stdio_conn *sc)
{
    uv_timer_stop(&sc->timer);
    stdio_close_generation(sc);
    if (sc->base.state == TG_UPCONN_UP)
        tg_upstream_set_state(&sc->base, TG_UPCONN_DOWN, sc->down_why);
}

static void stdio_exit_cb(uv_process_t *p, int64_t status, int term_signal)
{
    stdio_conn *sc = p->data;
    if (!sc->down_why[0]) {
        if (term_signal) snprintf(sc->down_why, sizeof sc->down_why, "killed by signal %d",
                                  term_signal);
        else snprintf(sc->down_why, sizeof sc->down_why, "exited with status %lld",
                      (long long)status);
    }
    tg_log_debug(sc->base.component, "child %d: %s", sc->pid, sc->down_why);
    sc->child_running = false;
    sc->pid = 0;
    if (sc->base.state == TG_UPCONN_CLOSING || !sc->stdout_open) {
        stdio_generation_down(sc);
        return;
    }
    /* Lines the child wrote just before exiting may still be in the pipe: read until
     * EOF, bounded in case a grandchild holds the pipe open. */
    stdio_gen_close(sc, (uv_handle_t *)&sc->proc);
    stdio_gen_close(sc, (uv_handle_t *)&sc->in);
    uv_timer_start(&sc->timer, stdio_timer_cb, STDIO_EOF_GRACE_MS, 0);
}

static void stdio_spawn(stdio_conn *sc)
{
    const tg_upstream_conf *conf = sc->base.conf;
    uv_pipe_init(sc->base.loop, &sc->in, 0);
    uv_pipe_init(sc->base.loop, &sc->out, 0);
    uv_pipe_init(sc->base.loop, &sc->err, 0);
    sc->in.data = sc->out.data = sc->err.data = sc->proc.data = sc;
    sc->gen_handles = 4;  /* the three pipes and, after uv_spawn (even failed), proc */

    uv_stdio_container_t stdio[3] = {
        {.flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&sc->in},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&sc->out},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&sc->err},
    };
    uv_process_options_t opt = {
        .exit_cb = stdio_exit_cb,
        .file = conf->argv[0],
        .args = (char **)conf->argv,
        .env = sc->envp,   /* never NULL: NULL would inherit our environment */
        .cwd = conf->cwd,
        .flags = UV_PROCESS_DETACHED,
        .stdio_count = 3,
        .stdio = stdio,
    };
    int rc = uv_spawn(sc->base.loop, &sc->proc, &opt);
    sc->proc.data = sc;
    if (rc != 0) {
        char why[256];
        snprintf(why, sizeof why, "cannot start %s: %s", conf->argv[0], uv_strerror(rc));
        stdio_close_generation(sc);
        if (sc->base.state != TG_UPCONN_DOWN) tg_upstream_set_state(&sc->base, TG_UPCONN_DOWN, why);
        else tg_log_warn(sc->base.component, "%s", why);
        return;
    }
    sc->child_running = true;
    sc->stdout_open = true;
    sc->pid = sc->proc.pid;
    sc->up_since_ms = tg_now_ms();
    uv_read_start((uv_stream_t *)&sc->out, stdio_alloc_out, stdio_read_out);
    uv_read_start((uv_stream_t *)&sc->err, stdio_alloc_err, stdio_read_err);
    tg_log_info(sc->base.component, "started %s (pid %d)", conf->argv[0], sc->pid);
    tg_upstream_set_state(&sc->base, TG_UPCONN_UP, NULL);
}

static void stdio_timer_cb(uv_timer_t *t)
{
    stdio_conn *sc = t->data;
    uint32_t grace = sc->base.conf->shutdown_grace_ms;
    if (sc->base.state == TG_UPCONN_CLOSING) {
        if (sc->close_phase == 0) {
            tg_log_info(sc->base.component, "child %d still running; sending SIGTERM", sc->pid);
            sc->close_phase = 1;
            stdio_kill(sc, SIGTERM);
            uv_timer_start(&sc->timer, stdio_timer_cb, grace, 0);
        } else {
            tg_log_warn(sc->base.component, "child %d ignored SIGTERM; sending SIGKILL", sc->pid);
            sc->close_phase = 2;
            stdio_kill(sc, SIGKILL);
        }
    } else if (sc->child_running) {
        stdio_fail(sc, "closed its stdout");   /* the stdout-EOF grace expired */
    } else if (sc->gen_handles > 0) {
        stdio_generation_down(sc);             /* exited, stdout never reached EOF */
    } else {
        stdio_spawn(sc);                       /* first start or restart */
    }
}

/* ---------------------------------------------------------------- operations */

static void stdio_write_cb(uv_write_t *req, int status)
{
    stdio_write *w = (stdio_write *)req;
    stdio_conn *sc = w->sc;
    free(w);
    if (status < 0 && status != UV_ECANCELED && sc->child_running) {
        char why[128];
        snprintf(why, sizeof why, "writing to its stdin failed: %s", uv_strerror(status));
        stdio_fail(sc, why);
    }
}

static int stdio_send(tg_upconn *c, const char *msg, size_t len, int64_t request_id,
                      const char *traceparent, tg_error *err)
{
    stdio_conn *sc = (stdio_conn *)c;
    if (!sc->child_running || uv_is_closing((uv_handle_t *)&sc->in))
        return tg_error_set(err, "upstream %s: the server's stdin is closed", c->conf->name);
    tg_buf_reset(&sc->wbuf);
    tg_buf_append(&sc->wbuf, msg, len);
    /* One message per line: in valid JSON a raw CR or LF can only be whitespace (inside
     * strings they are escaped), so it becomes a space. */
    for (char *p = sc->wbuf.data; (p = memchr(p, '\n', sc->wbuf.data + len - p)); p++) *p = ' ';
    for (char *p = sc->wbuf.data; (p = memchr(p, '\r', sc->wbuf.data + len - p)); p++) *p = ' ';
    tg_buf_append(&sc->wbuf, "\n", 1);

    size_t done = 0;
    /* Only write directly when nothing is queued, or messages would be reordered. */
    if (uv_stream_get_write_queue_size((uv_stream_t *)&sc->in) == 0) {
        uv_buf_t b = uv_buf_init(sc->wbuf.data, (unsigned)sc->wbuf.len);
        int n = uv_try_write((uv_stream_t *)&sc->in, &b, 1);
        if (n < 0 && n != UV_EAGAIN) {
            char why[128];
            snprintf(why, sizeof why, "writing to its stdin failed: %s", uv_strerror(n));
            stdio_fail(sc, why);
            return tg_error_set(err, "upstream %s: %s", c->conf->name, why);
        }
        if (n > 0) done = (size_t)n;
    }
    if (done == sc->wbuf.len) return 0;

    size_t rest = sc->wbuf.len - done;
    stdio_write *w = malloc(sizeof *w + rest);
    if (!w) abort();
    w->sc = sc;
    memcpy(w->data, sc->wbuf.data + done, rest);
    w->buf = uv_buf_init(w->data, (unsigned)rest);
    int rc = uv_write(&w->req, (uv_stream_t *)&sc->in, &w->buf, 1, stdio_write_cb);
    if (rc != 0) {
        free(w);
        char why[128];
        snprintf(why, sizeof why, "writing to its stdin failed: %s", uv_strerror(rc));
        stdio_fail(sc, why);
        return tg_error_set(err, "upstream %s: %s", c->conf->name, why);
    }
    return 0;
}

static int stdio_pid(const tg_upconn *c)
{
    const stdio_conn *sc = (const stdio_conn *)c;
    return c->state == TG_UPCONN_UP ? sc->pid : 0;
}

static void stdio_close(tg_upconn *c)
{
    stdio_conn *sc = (stdio_conn *)c;
    uv_timer_stop(&sc->timer);
    if (!sc->child_running) {
        /* Between generations (backoff, or handles still closing): nothing to stop. */
        stdio_maybe_finish(sc);
        return;
    }
    /* EOF on stdin is the polite request to exit; escalate if it is ignored. */
    sc->close_phase = 0;
    stdio_gen_close(sc, (uv_handle_t *)&sc->in);
    uv_timer_start(&sc->timer, stdio_timer_cb, c->conf->shutdown_grace_ms, 0);
}

static const tg_upstream_ops stdio_ops = {
    .send = stdio_send,
    .pid = stdio_pid,
    .close = stdio_close,
};

tg_upconn *tg_upstream_stdio_new(uv_loop_t *loop, const tg_upstream_conf *conf,
                                 const tg_upconn_cbs *cbs, void *user, tg_error *err)
{
    if (!conf->argv || !conf->argv[0] || !conf->argv[0][0]) {
        tg_error_set(err, "upstream %s: stdio transport needs a command", conf->name);
        return NULL;
    }
    stdio_conn *sc = calloc(1, sizeof *sc);
    if (!sc) abort();
    tg_upstream_base_init(&sc->base, loop, conf, cbs, user, &stdio_ops);

    sc->envp = calloc(conf->nenv + 1, sizeof *sc->envp);
    if (!sc->envp) abort();
    for (size_t i = 0; i < conf->nenv; i++) {
        size_t kl = strlen(conf->env[i].key), vl = strlen(conf->env[i].value);
        char *kv = malloc(kl + vl + 2);
        if (!kv) abort();
        memcpy(kv, conf->env[i].key, kl);
        kv[kl] = '=';
        memcpy(kv + kl + 1, conf->env[i].value, vl + 1);
        sc->envp[i] = kv;
    }
    sc->backoff_ms = conf->restart_min_ms ? conf->restart_min_ms : STDIO_DEFAULT_MIN_MS;

    uv_timer_init(loop, &sc->timer);
    sc->timer.data = sc;
    /* Spawn from the loop, so the first on_state never runs inside tg_upconn_new. */
    uv_timer_start(&sc->timer, stdio_timer_cb, 0, 0);
    return &sc->base;
}
