/*
 * arena.c — bump allocator for per-request and per-evaluation memory.
 *
 * A request's allocations are many and small and all die together, so we carve them
 * from chunks and free the chunks at the end. Invariant: `head` is the chunk being
 * carved; every chunk in the list was allocated with malloc and is freed exactly once
 * by tg_arena_free (or by tg_arena_reset, which keeps only the first chunk).
 */
#include "common/tg_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16
#define ARENA_DEFAULT_CHUNK 8192

typedef struct chunk {
    struct chunk *next;
    size_t cap;   /* usable bytes after the header */
    size_t used;
    _Alignas(ARENA_ALIGN) unsigned char data[];
} chunk;

struct tg_arena {
    chunk *head;
    chunk *first;
    size_t chunk_size;
    size_t total;  /* bytes handed out, for diagnostics */
};

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fputs("toolgate: out of memory\n", stderr);
        abort();
    }
    return p;
}

static chunk *chunk_new(size_t cap)
{
    chunk *c = xmalloc(sizeof(chunk) + cap);
    c->next = NULL;
    c->cap = cap;
    c->used = 0;
    return c;
}

tg_arena *tg_arena_new(size_t chunk_size)
{
    tg_arena *a = xmalloc(sizeof(*a));
    a->chunk_size = chunk_size ? chunk_size : ARENA_DEFAULT_CHUNK;
    a->first = a->head = chunk_new(a->chunk_size);
    a->total = 0;
    return a;
}

void *tg_arena_alloc(tg_arena *a, size_t size)
{
    size_t need = (size + (ARENA_ALIGN - 1)) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < size) abort(); /* overflow */
    chunk *c = a->head;
    if (c->cap - c->used < need) {
        /* Oversized requests get a dedicated chunk so one big body does not
         * waste the rest of a normal chunk. */
        size_t cap = need > a->chunk_size ? need : a->chunk_size;
        chunk *n = chunk_new(cap);
        n->next = a->head;
        a->head = n;
        c = n;
    }
    void *p = c->data + c->used;
    c->used += need;
    a->total += need;
    return p;
}

void *tg_arena_calloc(tg_arena *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) abort();
    void *p = tg_arena_alloc(a, n * size);
    memset(p, 0, n * size);
    return p;
}

char *tg_arena_strndup(tg_arena *a, const char *s, size_t n)
{
    char *p = tg_arena_alloc(a, n + 1);
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *tg_arena_strdup(tg_arena *a, const char *s)
{
    return tg_arena_strndup(a, s, strlen(s));
}

char *tg_arena_sprintf(tg_arena *a, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    char *p = tg_arena_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

void tg_arena_reset(tg_arena *a)
{
    chunk *c = a->head;
    while (c != a->first) {
        chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = a->first;
    a->first->used = 0;
    a->first->next = NULL;
    a->total = 0;
}

void tg_arena_free(tg_arena *a)
{
    if (!a) return;
    chunk *c = a->head;
    while (c) {
        chunk *next = c->next;
        free(c);
        c = next;
    }
    free(a);
}

size_t tg_arena_used(const tg_arena *a)
{
    return a->total;
}
