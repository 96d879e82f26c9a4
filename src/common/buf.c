/*
 * buf.c — growable byte buffer used to build responses, log lines and serialised JSON.
 *
 * Invariant: after any append, data[len] == '\0', so a buffer of text can be handed to
 * C string functions without copying.
 */
#include "common/tg_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tg_buf_use(tg_buf *b, char *mem, size_t cap)
{
    *b = (tg_buf){mem, 0, cap, true};
    mem[0] = '\0';
}

void tg_buf_reserve(tg_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256; /* most buffers outgrow 64 bytes at once */
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) abort();
        cap *= 2;
    }
    char *p = b->lent ? malloc(cap) : realloc(b->data, cap);
    if (!p) {
        fputs("toolgate: out of memory\n", stderr);
        abort();
    }
    if (b->lent) memcpy(p, b->data, b->len + 1);
    b->data = p;
    b->cap = cap;
    b->lent = false;
}

void tg_buf_append(tg_buf *b, const void *p, size_t n)
{
    tg_buf_reserve(b, n);
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void tg_buf_appends(tg_buf *b, const char *s)
{
    tg_buf_append(b, s, strlen(s));
}

void tg_buf_vprintf(tg_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n < 0) {
        va_end(ap2);
        return;
    }
    if ((size_t)n < sizeof small) {
        tg_buf_append(b, small, (size_t)n);
    } else {
        tg_buf_reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

void tg_buf_append_i64(tg_buf *b, int64_t v)
{
    char d[21];
    tg_buf_append(b, d, tg_i64_dec(v, d));
}

void tg_buf_printf(tg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tg_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void tg_buf_json_string(tg_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    tg_buf_reserve(b, n + 2);
    tg_buf_append(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[6];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20 || c == 0x7f) {
                u[0] = '\\'; u[1] = 'u'; u[2] = '0'; u[3] = '0';
                u[4] = hex[c >> 4]; u[5] = hex[c & 15];
            } else {
                run++;
                continue;
            }
        }
        tg_buf_append(b, s + i - run, run);
        run = 0;
        if (esc) tg_buf_appends(b, esc);
        else tg_buf_append(b, u, 6);
    }
    tg_buf_append(b, s + n - run, run);
    tg_buf_append(b, "\"", 1);
}

void tg_buf_consume(tg_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data) b->data[b->len] = '\0';
}

void tg_buf_reset(tg_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void tg_buf_free(tg_buf *b)
{
    if (!b->lent) free(b->data);
    *b = (tg_buf)TG_BUF_INIT;
}

char *tg_buf_steal(tg_buf *b)
{
    char *p = b->data;
    if (!p || b->lent) {
        p = malloc(b->len + 1);
        if (!p) abort();
        if (b->len) memcpy(p, b->data, b->len);
        p[b->len] = '\0';
    }
    *b = (tg_buf)TG_BUF_INIT;
    return p;
}
