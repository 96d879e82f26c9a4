/*
 * util.c — randomness, constant-time comparison, clocks, hashing.
 */
#include "common/tg_common.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static void random_fill(unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            fputs("toolgate: getrandom failed\n", stderr);
            abort();
        }
        p += r;
        n -= (size_t)r;
    }
}

/* SipHash-2-4 (Aumasson and Bernstein, 2012): two compression rounds per 8-byte word,
 * four at the end. Words and the key are read little-endian. */
static inline uint64_t rotl64(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static inline uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

#define SIPROUND                                                                    \
    do {                                                                            \
        v0 += v1; v1 = rotl64(v1, 13); v1 ^= v0; v0 = rotl64(v0, 32);               \
        v2 += v3; v3 = rotl64(v3, 16); v3 ^= v2;                                    \
        v0 += v3; v3 = rotl64(v3, 21); v3 ^= v0;                                    \
        v2 += v1; v1 = rotl64(v1, 17); v1 ^= v2; v2 = rotl64(v2, 32);               \
    } while (0)

uint64_t tg_siphash(const unsigned char key[16], const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t k0 = le64(key), k1 = le64(key + 8);
    uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull;
    size_t full = n & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = le64(p + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)n << 56;  /* the length's low byte, above the last bytes */
    for (size_t i = 0; i < (n & 7); i++) b |= (uint64_t)p[full + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* Small requests (trace ids, session ids) are served from a per-thread pool refilled
 * from getrandom: the bytes are the kernel's CSPRNG output all the same, but a proxied
 * call no longer pays two system calls for its trace id. Each byte is handed out once
 * and wiped from the pool as it is taken. */
void tg_random_bytes(void *out, size_t n)
{
    static _Thread_local unsigned char pool[512];
    static _Thread_local size_t avail;
    unsigned char *p = out;
    if (n > sizeof pool / 4) {
        random_fill(p, n);
        return;
    }
    if (avail < n) {
        random_fill(pool, sizeof pool);
        avail = sizeof pool;
    }
    unsigned char *src = pool + sizeof pool - avail;
    memcpy(p, src, n);
    memset(src, 0, n);
    avail -= n;
}

void tg_random_hex(char *out, size_t nbytes)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[64];
    if (nbytes > sizeof raw) abort();
    tg_random_bytes(raw, nbytes);
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * nbytes] = '\0';
}

void tg_copy_text(char *out, size_t outlen, const char *src)
{
    size_t n = strlen(src);
    if (n >= outlen) n = outlen - 1;
    memcpy(out, src, n);
    out[n] = '\0';
}

int tg_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    /* Compare over max(alen, blen) so the time does not reveal the first mismatch. Eight
     * bytes per step over the common length: callers compare whole bearer tokens (~1 KB)
     * on the hot path. The empty asm keeps the compiler from turning the accumulation
     * into an early exit. */
    const unsigned char *pa = a, *pb = b;
    size_t n = alen > blen ? alen : blen, common = alen < blen ? alen : blen, i = 0;
    uint64_t diff = alen != blen;
    for (; i + 8 <= common; i += 8) {
        uint64_t x, y;
        memcpy(&x, pa + i, 8);
        memcpy(&y, pb + i, 8);
        diff |= x ^ y;
        __asm__("" : "+r"(diff));
    }
    for (; i < n; i++) {
        unsigned char x = i < alen ? pa[i] : 0;
        unsigned char y = i < blen ? pb[i] : 0;
        diff |= (unsigned char)(x ^ y);
        __asm__("" : "+r"(diff));
    }
    return diff == 0;
}

uint64_t tg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t tg_now_ms(void)
{
    return tg_now_ns() / 1000000ull;
}

int64_t tg_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t tg_i64_dec(int64_t v, char out[21])
{
    char d[20];
    size_t i = sizeof d;
    uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
    do d[--i] = (char)('0' + u % 10); while (u /= 10);
    size_t n = 0;
    if (v < 0) out[n++] = '-';
    memcpy(out + n, d + i, sizeof d - i);
    n += sizeof d - i;
    out[n] = 0;
    return n;
}

static char *put_digits(char *p, int v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10) p[i] = (char)('0' + v % 10);
    return p + n;
}

/* What gmtime_r and snprintf "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" write, without either:
 * the audit trail formats two times per record, and gmtime_r takes glibc's time-zone lock.
 * The date is the proleptic Gregorian calendar's, from days since 1970-01-01 (the
 * era-based conversion published by Howard Hinnant, "chrono-compatible low-level date
 * algorithms"). tests/common compares it with gmtime_r over a wide range. */
void tg_format_time(int64_t epoch_ms, char out[32])
{
    int64_t secs = epoch_ms / 1000, ms = epoch_ms % 1000;
    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days -= 1;
    }
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                     /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);              /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                   /* [0, 11] */
    int day = (int)(doy - (153 * mp + 2) / 5 + 1);
    int month = (int)(mp < 10 ? mp + 3 : mp - 9);
    int64_t year = yoe + era * 400 + (month <= 2);
    /* Years beyond 9999 do not occur for wall-clock time; clamp so the output fits. */
    if (year < 0 || year > 9999) year = 9999;
    char *p = put_digits(out, (int)year, 4);
    *p++ = '-';
    p = put_digits(p, month, 2);
    *p++ = '-';
    p = put_digits(p, day, 2);
    *p++ = 'T';
    p = put_digits(p, (int)(sod / 3600), 2);
    *p++ = ':';
    p = put_digits(p, (int)(sod / 60 % 60), 2);
    *p++ = ':';
    p = put_digits(p, (int)(sod % 60), 2);
    *p++ = '.';
    p = put_digits(p, (int)ms, 3);
    *p++ = 'Z';
    *p = 0;
}

/* SHA-256 fetched from the provider once: with EVP_sha256() OpenSSL 3 fetches the
 * implementation again on every digest (a locked lookup), and a decided call hashes
 * several times (the bearer token for the cache, the arguments, the chain). Each thread
 * also keeps one digest context instead of allocating and freeing one per digest: both
 * were measured on the loop thread (docs/performance.md). The context is freed when the
 * thread exits. */
static EVP_MD *sha256_md;
static pthread_key_t sha256_key;
static __thread EVP_MD_CTX *sha256_ctx;

static void sha256_ctx_free(void *ctx)
{
    EVP_MD_CTX_free(ctx);
    sha256_ctx = NULL;
}

static void sha256_fetch(void)
{
    if (!(sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL)) ||
        pthread_key_create(&sha256_key, sha256_ctx_free) != 0)
        abort();
}

void tg_sha256(const void *a, size_t an, const void *b, size_t bn, unsigned char out[32])
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    unsigned int mdlen = 0;
    pthread_once(&once, sha256_fetch);
    if (!sha256_ctx) {
        if (!(sha256_ctx = EVP_MD_CTX_new()) || pthread_setspecific(sha256_key, sha256_ctx))
            abort();
    }
    EVP_MD_CTX *ctx = sha256_ctx;
    if (!EVP_DigestInit_ex(ctx, sha256_md, NULL) || !EVP_DigestUpdate(ctx, a, an) ||
        (bn && !EVP_DigestUpdate(ctx, b, bn)) || !EVP_DigestFinal_ex(ctx, out, &mdlen) ||
        mdlen != 32)
        abort();
}

void tg_sha256_hex2(const void *a, size_t an, const void *b, size_t bn, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[32];
    tg_sha256(a, an, b, bn, md);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

void tg_sha256_hex(const void *data, size_t n, char out[65])
{
    tg_sha256_hex2(data, n, NULL, 0, out);
}

int tg_strcaseeq(const char *a, size_t alen, const char *b)
{
    return tg_strcaseeq_n(a, alen, b, strlen(b));
}

int tg_strcaseeq_n(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen) return 0;
    for (size_t i = 0; i < alen; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z') x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z') y = (unsigned char)(y + 32);
        if (x != y) return 0;
    }
    return 1;
}
