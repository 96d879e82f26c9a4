/*
 * map.c — the router's one associative container: string keys → borrowed pointers.
 *
 * Sessions by id, pending upstream requests by gateway id, calls by the client's id,
 * progress tokens and name routes all use it. Chained hashing with power-of-two bucket
 * counts; grows at load factor 1. Unit-tested alone.
 *
 * The hash is keyed (SipHash, a key drawn at start): some keys are a client's choice (its
 * JSON-RPC ids, the URIs it subscribes to), and with an unkeyed hash a client could pick
 * ids that all land in one bucket, turning its lookups into list walks on the loop
 * thread every session shares.
 */
#include "mcp/mcp_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static unsigned char hash_key[16];
static pthread_once_t hash_key_once = PTHREAD_ONCE_INIT;

static void hash_key_init(void)
{
    tg_random_bytes(hash_key, sizeof hash_key);
}

static uint64_t hash(const char *k, size_t n)
{
    return tg_siphash(hash_key, k, n);
}

static mcp_map_entry **slot(const mcp_map *m, const char *key, size_t klen)
{
    mcp_map_entry **pp = &m->buckets[hash(key, klen) & (m->nbuckets - 1)];
    while (*pp && ((*pp)->klen != klen || memcmp((*pp)->key, key, klen) != 0))
        pp = &(*pp)->next;
    return pp;
}

static void grow(mcp_map *m)
{
    size_t nb = m->nbuckets ? m->nbuckets * 2 : 16;
    mcp_map_entry **b = calloc(nb, sizeof *b);
    if (!b) abort();
    for (size_t i = 0; i < m->nbuckets; i++) {
        mcp_map_entry *e = m->buckets[i];
        while (e) {
            mcp_map_entry *next = e->next;
            size_t j = hash(e->key, e->klen) & (nb - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
}

void *mcp_map_get(const mcp_map *m, const char *key, size_t klen)
{
    if (!m->buckets) return NULL;
    mcp_map_entry *e = *slot(m, key, klen);
    return e ? e->val : NULL;
}

void mcp_map_put(mcp_map *m, const char *key, size_t klen, void *val)
{
    pthread_once(&hash_key_once, hash_key_init); /* before the first bucket exists */
    if (m->n >= m->nbuckets) grow(m);
    mcp_map_entry **pp = slot(m, key, klen);
    if (*pp) {
        (*pp)->val = val;
        return;
    }
    mcp_map_entry *e = malloc(sizeof *e + klen + 1);
    if (!e) abort();
    e->next = NULL;
    e->val = val;
    e->klen = klen;
    memcpy(e->key, key, klen);
    e->key[klen] = '\0';
    *pp = e;
    m->n++;
}

void *mcp_map_del(mcp_map *m, const char *key, size_t klen)
{
    if (!m->buckets) return NULL;
    mcp_map_entry **pp = slot(m, key, klen);
    mcp_map_entry *e = *pp;
    if (!e) return NULL;
    void *val = e->val;
    *pp = e->next;
    free(e);
    m->n--;
    return val;
}

void mcp_map_clear(mcp_map *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        mcp_map_entry *e = m->buckets[i];
        while (e) {
            mcp_map_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = NULL;
    m->nbuckets = 0;
    m->n = 0;
}

void mcp_map_iter_init(mcp_map_iter *it, const mcp_map *m)
{
    it->m = m;
    it->bucket = 0;
    it->e = NULL;
}

const mcp_map_entry *mcp_map_iter_next(mcp_map_iter *it)
{
    if (it->e && it->e->next) {
        it->e = it->e->next;
        return it->e;
    }
    while (it->bucket < it->m->nbuckets) {
        mcp_map_entry *e = it->m->buckets[it->bucket++];
        if (e) {
            it->e = e;
            return e;
        }
    }
    it->e = NULL;
    return NULL;
}

size_t mcp_int_key(int64_t v, char out[24])
{
    return tg_i64_dec(v, out);
}
