/* ext_ip.c — Cedar's `ipaddr` extension: ip("…") parsing, isIpv4, isIpv6, isLoopback,
 * isMulticast, isInRange, and the display form. Pure functions on cedar_ipaddr; the
 * Cedar engine (src/cedar/) wraps them as extension functions.
 *
 * Rules, each matching the reference implementation
 * (cedar-policy-core/src/extensions/ipaddr.rs = "ipaddr.rs"; Rust std::net parser
 * library/core/src/net/parser.rs = "parser.rs"; checked against cedar-wasm 4.13):
 *  - Input longer than 43 bytes is rejected ("ABCD:…:6789/128").        ipaddr.rs IP_STR_REP_MAX_LEN
 *  - Input with >= 2 ':' AND >= 2 '.' anywhere is rejected: no IPv4 embedded in IPv6
 *    ("::ffff:1.2.3.4", "::1.2.3.4"). Every IPv6 text with an embedded IPv4 tail has
 *    >= 2 colons and 3 dots, so the v6 grammar below needs no dotted tail. ipaddr.rs str_contains_colons_and_dots
 *  - Split at the FIRST '/': left is an address, right a prefix; no '/' means the full
 *    length (32 / 128).                                                    ipaddr.rs FromStr
 *  - Prefix: only ASCII digits, at most 2 (v4) / 3 (v6) characters, no leading zero
 *    except "0" itself, value <= 32 / 128; empty is invalid.              ipaddr.rs parse_prefix
 *  - IPv4: exactly 4 '.'-separated decimal parts of 1..3 ASCII digits, value <= 255,
 *    no leading zero ("01" is invalid: no octal).                          parser.rs read_ipv4_addr
 *  - IPv6: up to 8 ':'-separated groups of 1..4 hex digits (either case, leading zeros
 *    allowed); at most one "::" standing for one or more zero groups; with "::" at most
 *    7 explicit groups, without it exactly 8; no leading/trailing single ':'.  parser.rs read_ipv6_addr
 *  - The address is kept as written, host bits NOT masked; equality compares family,
 *    address and prefix (derived PartialEq), so 10.0.0.1/24 != 10.0.0.0/24.   ipaddr.rs struct IPAddr
 *  - isLoopback: address is loopback (v4 127.x.x.x, v6 ::1) and prefix >= 8 (v4) or
 *    == 128 (v6): the whole range must be loopback.                        ipaddr.rs is_loopback
 *  - isMulticast: address multicast (v4 224..239.x.x.x, v6 ffxx::) and prefix >= 4 (v4)
 *    or >= 8 (v6).                                                         ipaddr.rs is_multicast
 *  - isInRange(a, r): same family, and r.network <= a.network && a.broadcast <=
 *    r.broadcast, networks/broadcasts computed with each side's own prefix. ipaddr.rs is_in_range
 *  - Display: "<addr>/<prefix>" with Rust's address Display: v6 in lowercase hex without
 *    leading zeros, the longest run (>= 2, first on ties) of zero groups as "::".
 *                                                                          ipaddr.rs Display, std Ipv6Addr Display
 *    One deliberate difference: Rust shows v4-mapped addresses as ::ffff:a.b.c.d, which
 *    ip() then refuses; toolgate keeps them in hex (::ffff:102:304) so that every
 *    displayed value is a valid ip() literal for the same value. Display is only used
 *    in diagnostics; no decision depends on it.
 */
#include "cedar/ext/cedar_ext.h"

#include <stdio.h>
#include <string.h>

/* Longest accepted input: "ABCD:EF01:2345:6789:ABCD:EF01:2345:6789/128". */
#define IP_TEXT_MAX 43

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static size_t count_char(const char *s, size_t n, char c)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (s[i] == c);
    return k;
}

/* IPv4 dotted quad, the whole of s[0..n). */
static int parse_v4(const char *s, size_t n, uint8_t out[4])
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= n || s[i] != '.') return -1;
            i++;
        }
        size_t start = i;
        unsigned v = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9' && i - start < 3) v = v * 10 + (unsigned)(s[i++] - '0');
        size_t digits = i - start;
        if (digits == 0 || v > 255) return -1;
        if (digits > 1 && s[start] == '0') return -1;
        if (i < n && s[i] >= '0' && s[i] <= '9') return -1;   /* a 4th digit */
        out[part] = (uint8_t)v;
    }
    return i == n ? 0 : -1;
}

/* Reads up to `limit` ':'-separated hex groups at s[*pos..n), Rust's read_groups without
 * the embedded-IPv4 tail. A separator is consumed only together with the group after
 * it, so "1::" stops before the "::". Returns the number of groups read. */
static size_t read_groups(const char *s, size_t n, size_t *pos, uint16_t *groups, size_t limit)
{
    size_t i = *pos, count = 0;
    while (count < limit) {
        size_t p = i;
        if (count > 0) {
            if (p >= n || s[p] != ':') break;
            p++;
        }
        size_t start = p;
        unsigned v = 0;
        while (p < n && hexval((unsigned char)s[p]) >= 0 && p - start < 4)
            v = v * 16 + (unsigned)hexval((unsigned char)s[p++]);
        if (p == start || (p < n && hexval((unsigned char)s[p]) >= 0)) break;  /* 0 or > 4 digits */
        groups[count++] = (uint16_t)v;
        i = p;
    }
    *pos = i;
    return count;
}

static int parse_v6(const char *s, size_t n, uint8_t out[16])
{
    uint16_t head[8] = {0}, tail[7] = {0};
    size_t pos = 0;
    size_t nhead = read_groups(s, n, &pos, head, 8);
    if (nhead < 8) {
        if (pos + 2 > n || s[pos] != ':' || s[pos + 1] != ':') return -1;
        pos += 2;
        size_t ntail = read_groups(s, n, &pos, tail, 7 - nhead);
        memcpy(head + 8 - ntail, tail, ntail * sizeof tail[0]);
    }
    if (pos != n) return -1;
    for (int g = 0; g < 8; g++) {
        out[2 * g] = (uint8_t)(head[g] >> 8);
        out[2 * g + 1] = (uint8_t)head[g];
    }
    return 0;
}

static int parse_prefix(const char *s, size_t n, unsigned max, size_t max_len, uint8_t *out)
{
    if (n == 0 || n > max_len) return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (n > 1 && s[0] == '0') return -1;
    if (v > max) return -1;
    *out = (uint8_t)v;
    return 0;
}

int cedar_ip_parse(const char *s, size_t n, cedar_ipaddr *out)
{
    if (n > IP_TEXT_MAX) return -1;
    if (count_char(s, n, ':') >= 2 && count_char(s, n, '.') >= 2) return -1;

    memset(out, 0, sizeof *out);
    const char *slash = memchr(s, '/', n);
    size_t addr_len = slash ? (size_t)(slash - s) : n;
    if (parse_v4(s, addr_len, out->addr) == 0) {
        out->v6 = 0;
        out->prefix = 32;
        if (slash) return parse_prefix(slash + 1, n - addr_len - 1, 32, 2, &out->prefix);
        return 0;
    }
    if (parse_v6(s, addr_len, out->addr) == 0) {
        out->v6 = 1;
        out->prefix = 128;
        if (slash) return parse_prefix(slash + 1, n - addr_len - 1, 128, 3, &out->prefix);
        return 0;
    }
    return -1;
}

int cedar_ip_equal(const cedar_ipaddr *a, const cedar_ipaddr *b)
{
    return a->v6 == b->v6 && a->prefix == b->prefix && memcmp(a->addr, b->addr, 16) == 0;
}

int cedar_ip_is_v4(const cedar_ipaddr *a) { return !a->v6; }
int cedar_ip_is_v6(const cedar_ipaddr *a) { return a->v6 != 0; }

int cedar_ip_is_loopback(const cedar_ipaddr *a)
{
    if (!a->v6) return a->addr[0] == 127 && a->prefix >= 8;
    static const uint8_t v6_loopback[16] = {[15] = 1};
    return memcmp(a->addr, v6_loopback, 16) == 0 && a->prefix == 128;
}

int cedar_ip_is_multicast(const cedar_ipaddr *a)
{
    if (!a->v6) return a->addr[0] >= 224 && a->addr[0] <= 239 && a->prefix >= 4;
    return a->addr[0] == 0xff && a->prefix >= 8;
}

/* The address as a 128-bit number (v4 in the low 32 bits) and the host mask for its
 * prefix, so one comparison serves both families. */
static unsigned __int128 ip_value(const cedar_ipaddr *a)
{
    unsigned __int128 v = 0;
    int len = a->v6 ? 16 : 4;
    for (int i = 0; i < len; i++) v = (v << 8) | a->addr[i];
    return v;
}

static unsigned __int128 host_mask(const cedar_ipaddr *a)
{
    unsigned bits = (a->v6 ? 128u : 32u) - a->prefix;
    if (bits == 0) return 0;
    unsigned __int128 all = ~(unsigned __int128)0;
    return all >> (128 - bits);
}

int cedar_ip_in_range(const cedar_ipaddr *a, const cedar_ipaddr *range)
{
    if (a->v6 != range->v6) return 0;
    unsigned __int128 av = ip_value(a), rv = ip_value(range);
    unsigned __int128 am = host_mask(a), rm = host_mask(range);
    return (rv & ~rm) <= (av & ~am) && (av | am) <= (rv | rm);
}

static size_t format_v4(const uint8_t *b, char *out, size_t cap)
{
    int k = snprintf(out, cap, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
    return k < 0 ? 0 : (size_t)k;
}

static size_t format_v6(const uint8_t *b, char *out, size_t cap)
{
    uint16_t g[8];
    for (int i = 0; i < 8; i++) g[i] = (uint16_t)(b[2 * i] << 8 | b[2 * i + 1]);
    /* Longest run of zero groups; the first wins a tie; a single zero is not compressed. */
    int best = -1, best_len = 1;
    for (int i = 0; i < 8;) {
        if (g[i] != 0) { i++; continue; }
        int j = i;
        while (j < 8 && g[j] == 0) j++;
        if (j - i > best_len) { best = i; best_len = j - i; }
        i = j;
    }
    size_t k = 0;
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            k += (size_t)snprintf(out + k, cap - k, "::");
            i += best_len - 1;
            continue;
        }
        int sep = i > 0 && i != best + best_len;
        k += (size_t)snprintf(out + k, cap - k, "%s%x", sep ? ":" : "", g[i]);
    }
    return k;
}

void cedar_ip_format(const cedar_ipaddr *a, char out[CEDAR_IP_FORMAT_MAX])
{
    size_t k = a->v6 ? format_v6(a->addr, out, CEDAR_IP_FORMAT_MAX)
                     : format_v4(a->addr, out, CEDAR_IP_FORMAT_MAX);
    snprintf(out + k, CEDAR_IP_FORMAT_MAX - k, "/%u", a->prefix);
}
