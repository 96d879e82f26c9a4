/*
 * log.c — JSON-lines logging to stderr.
 *
 * One object per line so log shippers need no parser of ours. The message is escaped,
 * never interpolated raw, so a hostile string (an upstream's stderr, a header value)
 * cannot forge a second log record. Callers must never log secrets: tokens, keys,
 * upstream credentials.
 */
#include "common/tg_common.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static tg_log_level log_level = TG_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void tg_log_set_level(tg_log_level lvl)
{
    log_level = lvl;
}

int tg_log_parse_level(const char *s, tg_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (tg_log_level)i;
            return 0;
        }
    }
    return -1;
}

int tg_log_enabled(tg_log_level lvl)
{
    return lvl >= log_level;
}

void tg_logv(tg_log_level lvl, const char *component, const char *fmt, va_list ap)
{
    if (!tg_log_enabled(lvl)) return;
    char ts[32];
    tg_format_time(tg_wall_ms(), ts);
    tg_buf msg = TG_BUF_INIT, line = TG_BUF_INIT;
    tg_buf_vprintf(&msg, fmt, ap);
    tg_buf_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":", ts, level_names[lvl]);
    tg_buf_json_string(&line, component, strlen(component));
    tg_buf_appends(&line, ",\"msg\":");
    tg_buf_json_string(&line, msg.data ? msg.data : "", msg.len);
    tg_buf_appends(&line, "}\n");
    /* One write per record so concurrent writers (threads, children) do not interleave. */
    ssize_t off = 0;
    while ((size_t)off < line.len) {
        ssize_t w = write(STDERR_FILENO, line.data + off, line.len - (size_t)off);
        if (w <= 0) break;
        off += w;
    }
    tg_buf_free(&msg);
    tg_buf_free(&line);
}

void tg_log(tg_log_level lvl, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tg_logv(lvl, component, fmt, ap);
    va_end(ap);
}
