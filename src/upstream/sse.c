/*
 * sse.c — incremental text/event-stream parser for the HTTP transport (POST response
 * streams and the GET stream). Follows the WHATWG event-stream rules that matter for
 * MCP: CRLF/LF/CR line ends, comments, multi-line data joined with '\n', id, event,
 * retry. Chunks may split anything, including a CRLF pair.
 */
#include "upstream/upstream_int.h"

#include <string.h>

void tg_upstream_sse_init(tg_upstream_sse *p, size_t max,
                          void (*on_event)(void *user, const char *data, size_t len), void *user)
{
    memset(p, 0, sizeof *p);
    p->retry_ms = -1;
    p->max = max;
    p->on_event = on_event;
    p->user = user;
}

void tg_upstream_sse_free(tg_upstream_sse *p)
{
    tg_buf_free(&p->line);
    tg_buf_free(&p->data);
}

static void sse_dispatch(tg_upstream_sse *p)
{
    size_t n = p->data.len;
    if (n > 0) n--;  /* the '\n' after the last data line */
    if (n > 0 && !p->other_event) p->on_event(p->user, p->data.data, n);
    tg_buf_reset(&p->data);
    p->other_event = false;
}

static int sse_line(tg_upstream_sse *p, const char *s, size_t len, tg_error *err)
{
    if (len == 0) {
        sse_dispatch(p);
        return 0;
    }
    if (s[0] == ':') return 0;  /* comment, e.g. a keep-alive */
    const char *colon = memchr(s, ':', len);
    size_t flen = colon ? (size_t)(colon - s) : len;
    const char *v = colon ? colon + 1 : s + len;
    size_t vlen = (size_t)(s + len - v);
    if (vlen > 0 && v[0] == ' ') {
        v++;
        vlen--;
    }
    if (flen == 4 && memcmp(s, "data", 4) == 0) {
        if (p->data.len + vlen + 1 > p->max)
            return tg_error_set(err, "an event's data exceeds %zu bytes", p->max);
        tg_buf_append(&p->data, v, vlen);
        tg_buf_append(&p->data, "\n", 1);
    } else if (flen == 5 && memcmp(s, "event", 5) == 0) {
        p->other_event = !(vlen == 0 || (vlen == 7 && memcmp(v, "message", 7) == 0));
    } else if (flen == 2 && memcmp(s, "id", 2) == 0) {
        /* An id the Last-Event-ID header could not carry is ignored, not truncated. */
        if (!memchr(v, '\0', vlen) && vlen < sizeof p->last_id) {
            memcpy(p->last_id, v, vlen);
            p->last_id[vlen] = '\0';
        }
    } else if (flen == 5 && memcmp(s, "retry", 5) == 0) {
        long ms = 0;
        size_t i = 0;
        for (; i < vlen && v[i] >= '0' && v[i] <= '9' && ms < 86400000L; i++)
            ms = ms * 10 + (v[i] - '0');
        if (vlen > 0 && i == vlen) p->retry_ms = ms;
    }
    return 0;  /* unknown fields are ignored */
}

int tg_upstream_sse_feed(tg_upstream_sse *p, const char *buf, size_t len, tg_error *err)
{
    size_t i = 0;
    if (p->skip_lf && len > 0) {
        if (buf[0] == '\n') i = 1;
        p->skip_lf = false;
    }
    while (i < len) {
        size_t j = i;
        while (j < len && buf[j] != '\n' && buf[j] != '\r') j++;
        if (j == len) {  /* partial line: keep it for the next chunk */
            if (p->line.len + (len - i) > p->max)
                return tg_error_set(err, "an event-stream line exceeds %zu bytes", p->max);
            tg_buf_append(&p->line, buf + i, len - i);
            break;
        }
        int rc;
        if (p->line.len > 0) {
            if (p->line.len + (j - i) > p->max)
                return tg_error_set(err, "an event-stream line exceeds %zu bytes", p->max);
            tg_buf_append(&p->line, buf + i, j - i);
            rc = sse_line(p, p->line.data, p->line.len, err);
            tg_buf_reset(&p->line);
        } else {
            rc = sse_line(p, buf + i, j - i, err);
        }
        if (rc != 0) return -1;
        if (buf[j] == '\r') {
            if (j + 1 < len) {
                if (buf[j + 1] == '\n') j++;
            } else {
                p->skip_lf = true;
            }
        }
        i = j + 1;
    }
    return 0;
}
