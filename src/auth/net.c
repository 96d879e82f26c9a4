/*
 * net.c — addresses for the fences: CIDR parsing and matching (IPv4 and IPv6 in one
 * 16-byte form), and the client address behind trusted reverse proxies.
 *
 * IPv4 is held IPv4-mapped (::ffff:a.b.c.d) so that a dual-stack socket reporting
 * "::ffff:127.0.0.2" and a plain "127.0.0.2" are the same client for every CIDR check.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>

#include "auth/auth_int.h"

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int tg_ip_parse(const char *s, size_t len, uint8_t out[16])
{
    char buf[64];
    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof buf) return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    /* inet_pton refuses zone ids ("fe80::1%eth0"), leading zeros in IPv4 and spaces. */
    if (inet_pton(AF_INET, buf, out + 12) == 1) {
        memcpy(out, v4_mapped_prefix, 12);
        return 0;
    }
    return inet_pton(AF_INET6, buf, out) == 1 ? 0 : -1;
}

static int is_v4(const uint8_t a[16]) { return memcmp(a, v4_mapped_prefix, 12) == 0; }

int tg_cidr_contains(const tg_cidr *c, const uint8_t ip[16])
{
    unsigned full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(c->addr, ip, full) != 0) return 0;
    if (rest == 0) return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (c->addr[full] & mask) == (ip[full] & mask);
}

int tg_cidr_parse(const char *s, tg_cidr *out, tg_error *err)
{
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    memset(out, 0, sizeof *out);
    if (tg_ip_parse(s, alen, out->addr) != 0)
        return tg_error_set(err, "\"%s\" is not an IP address or CIDR (e.g. 10.0.0.0/8, ::1/128)", s);
    unsigned max = is_v4(out->addr) ? 32 : 128, prefix = max;
    if (slash) {
        const char *p = slash + 1;
        size_t n = strlen(p);
        if (n == 0 || n > 3 || strspn(p, "0123456789") != n || (n > 1 && p[0] == '0'))
            return tg_error_set(err, "\"%s\": prefix length must be a number", s);
        prefix = (unsigned)atoi(p);
        if (prefix > max) return tg_error_set(err, "\"%s\": prefix longer than %u", s, max);
    }
    out->prefix = (uint8_t)(prefix + (max == 32 ? 96 : 0));
    /* Host bits set ("10.1.2.3/8") usually mean a typo in the range; refuse rather than
     * guess which of the two the operator meant. */
    for (unsigned bit = out->prefix; bit < 128; bit++)
        if (out->addr[bit / 8] & (0x80 >> (bit % 8)))
            return tg_error_set(err, "\"%s\": address has bits set beyond the /%u prefix", s,
                                prefix);
    return 0;
}

void auth_ip_format(const uint8_t ip[16], char *out, size_t outlen)
{
    char buf[INET6_ADDRSTRLEN];
    if (is_v4(ip)) inet_ntop(AF_INET, ip + 12, buf, sizeof buf);
    else inet_ntop(AF_INET6, ip, buf, sizeof buf);
    tg_copy_text(out, outlen, buf);
}

void tg_cidr_format(const tg_cidr *c, char *out, size_t outlen)
{
    char buf[INET6_ADDRSTRLEN];
    auth_ip_format(c->addr, buf, sizeof buf);
    snprintf(out, outlen, "%s/%u", buf, is_v4(c->addr) && c->prefix >= 96 ? c->prefix - 96u
                                                                           : c->prefix);
}

int auth_cidrs_parse(const char **s, size_t n, const char *what, auth_cidrs *out, tg_error *err)
{
    out->v = n ? calloc(n, sizeof *out->v) : NULL;
    out->n = 0;
    if (n && !out->v) abort();
    for (size_t i = 0; i < n; i++) {
        tg_error why;
        if (tg_cidr_parse(s[i], &out->v[i], &why) != 0) {
            auth_cidrs_free(out);
            return tg_error_set(err, "%s: %s", what, why.msg);
        }
        out->n++;
    }
    return 0;
}

void auth_cidrs_free(auth_cidrs *c)
{
    free(c->v);
    c->v = NULL;
    c->n = 0;
}

int auth_cidrs_match(const auth_cidrs *c, const uint8_t ip[16])
{
    for (size_t i = 0; i < c->n; i++)
        if (tg_cidr_contains(&c->v[i], ip)) return 1;
    return 0;
}

/* ---------------------------------------------------------------- proxies */

#define MAX_HOPS 32

typedef struct hop {
    const char *p;
    size_t len;
} hop;

static void trim(const char **p, size_t *len)
{
    while (*len && isspace((unsigned char)**p)) { (*p)++; (*len)--; }
    while (*len && isspace((unsigned char)(*p)[*len - 1])) (*len)--;
}

/* Splits s on ',' into hops (trimmed). -1 when there are more than MAX_HOPS. */
static int split_hops(const char *s, hop *hops, size_t *n)
{
    *n = 0;
    for (const char *p = s;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (*n == MAX_HOPS) return -1;
        hops[*n] = (hop){p, len};
        trim(&hops[*n].p, &hops[*n].len);
        (*n)++;
        if (!comma) return 0;
        p = comma + 1;
    }
}

/* From a Forwarded element (`for=…;proto=…;by=…`) keep the node of `for`, unquoted. */
static int forwarded_for(hop *h)
{
    const char *p = h->p, *end = h->p + h->len;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        size_t len = semi ? (size_t)(semi - p) : (size_t)(end - p);
        const char *pair = p;
        trim(&pair, &len);
        if (len > 4 && tg_strcaseeq(pair, 4, "for=")) {
            pair += 4;
            len -= 4;
            if (len >= 2 && pair[0] == '"' && pair[len - 1] == '"') { pair++; len -= 2; }
            *h = (hop){pair, len};
            return 0;
        }
        p = semi ? semi + 1 : end;
    }
    return -1;
}

/* A node "1.2.3.4", "1.2.3.4:80", "[::1]" or "[::1]:80", "::1" → address. */
static int node_ip(hop h, uint8_t ip[16])
{
    if (h.len && h.p[0] == '[') {
        const char *close = memchr(h.p, ']', h.len);
        if (!close) return -1;
        return tg_ip_parse(h.p, (size_t)(close - h.p) + 1, ip);
    }
    const char *colon = memchr(h.p, ':', h.len);
    if (colon && !memchr(colon + 1, ':', h.len - (size_t)(colon + 1 - h.p)))
        h.len = (size_t)(colon - h.p);  /* IPv4 with a port */
    return tg_ip_parse(h.p, h.len, ip);
}

/* The last peer address seen on this thread, parsed and formatted: consecutive calls
 * mostly come from the same address (one client, or the proxy in front). */
static __thread struct {
    char peer[INET6_ADDRSTRLEN];  /* as given; "" when nothing is kept */
    uint8_t ip[16];
    char text[INET6_ADDRSTRLEN];  /* ip formatted */
} last_peer;

int auth_client_ip(const auth_cidrs *trusted, const char *peer, const char *xff,
                   const char *forwarded, uint8_t ip[16], char *text, size_t textlen,
                   tg_error *err)
{
    size_t plen = peer ? strlen(peer) : 0;
    if (!plen || plen >= sizeof last_peer.peer || memcmp(last_peer.peer, peer, plen + 1) != 0) {
        last_peer.peer[0] = '\0';
        if (!peer || tg_ip_parse(peer, plen, ip) != 0)
            return tg_error_set(err, "peer address \"%s\" is not an IP address", peer ? peer : "");
        memcpy(last_peer.ip, ip, 16);
        auth_ip_format(ip, last_peer.text, sizeof last_peer.text);
        if (plen < sizeof last_peer.peer) memcpy(last_peer.peer, peer, plen + 1);
    }
    memcpy(ip, last_peer.ip, 16);
    const char *list = forwarded ? forwarded : xff;
    const char *name = forwarded ? "Forwarded" : "X-Forwarded-For";
    if (!list || !auth_cidrs_match(trusted, ip)) {
        tg_copy_text(text, textlen, last_peer.text);
        return 0;
    }
    hop hops[MAX_HOPS];
    size_t n;
    if (split_hops(list, hops, &n) != 0)
        return tg_error_set(err, "%s from trusted proxy has more than %d hops", name, MAX_HOPS);
    /* Right to left: each trusted proxy vouches for the hop before it; the first
     * address that is not a trusted proxy is the client. Anything unparseable on the
     * way ("unknown", obfuscated ids, garbage) fails closed. */
    for (size_t i = n; i-- > 0;) {
        uint8_t hop_ip[16];
        if ((forwarded && forwarded_for(&hops[i]) != 0) || node_ip(hops[i], hop_ip) != 0)
            return tg_error_set(err, "%s from trusted proxy has an unusable entry \"%.*s\"",
                                name, (int)(hops[i].len > 64 ? 64 : hops[i].len), hops[i].p);
        memcpy(ip, hop_ip, 16);
        if (!auth_cidrs_match(trusted, hop_ip)) break;
    }
    auth_ip_format(ip, text, textlen);
    return 0;
}
