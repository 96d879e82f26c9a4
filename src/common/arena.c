/*
 * arena.c — bump allocator for per-request and per-evaluation memory.
 *
 * A request's allocations are many and small and all die together, so we carve them
 * from chunks and free the chunks at the end. Invariant: `head` is the chunk being
 * carved; every chunk in the list was allocated with malloc (or taken from the thread's
 * cache) and is released exactly once, freed or kept in the cache, by tg_arena_free (or
 * by tg_arena_reset, which keeps only the first chunk).
 *
 * Chunks of the default size are not given back to malloc at once: each thread keeps up
 * to CACHE_MAX of them for its next arenas. A call's arenas are made and freed on every
 * call, and for glibc an 8 KiB malloc is a "large" request, which first sorts every small
 * block freed since the last one (malloc_consolidate): measured, the per-call arena
 * chunks were three of the loop thread's ten large mallocs per call (docs/performance.md).
 */
#include "common/tg_common.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16
#define ARENA_DEFAULT_CHUNK 8192
#define CACHE_MAX 64 /* chunks kept per thread: 512 KiB at most */

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

/* A thread's cache of default-size chunks, linked through `next`. It is freed when the
 * thread exits (the key's destructor); the pointer in thread-local storage is the fast
 * way to it. */
typedef struct chunk_cache {
    chunk *head;
    unsigned n;
} chunk_cache;

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static __thread chunk_cache *cache;

static void cache_destroy(void *p)
{
    chunk_cache *k = p;
    for (chunk *c = k->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(k);
    cache = NULL;
}

static void cache_key_make(void)
{
    if (pthread_key_create(&cache_key, cache_destroy) != 0) abort();
}

static chunk *chunk_new(size_t cap)
{
    chunk *c;
    if (cap == ARENA_DEFAULT_CHUNK && cache && cache->head) {
        c = cache->head;
        cache->head = c->next;
        cache->n--;
    } else {
        c = xmalloc(sizeof(chunk) + cap);
        c->cap = cap;
    }
    c->next = NULL;
    c->used = 0;
    return c;
}

static void chunk_release(chunk *c)
{
    if (c->cap == ARENA_DEFAULT_CHUNK && !cache) {
        pthread_once(&cache_once, cache_key_make);
        chunk_cache *k = calloc(1, sizeof *k);
        if (k && pthread_setspecific(cache_key, k) == 0) cache = k;
        else free(k);
    }
    if (c->cap == ARENA_DEFAULT_CHUNK && cache && cache->n < CACHE_MAX) {
        c->next = cache->head;
        cache->head = c;
        cache->n++;
        return;
    }
    free(c);
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

char *tg_arena_concat(tg_arena *a, const char *x, const char *y)
{
    size_t xn = strlen(x), yn = strlen(y);
    char *p = tg_arena_alloc(a, xn + yn + 1);
    memcpy(p, x, xn);
    memcpy(p + xn, y, yn + 1);
    return p;
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
        chunk_release(c);
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
        chunk_release(c);
        c = next;
    }
    free(a);
}

size_t tg_arena_used(const tg_arena *a)
{
    return a->total;
}
