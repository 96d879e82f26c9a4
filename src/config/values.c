/*
 * values.c — the grammars of configuration values: sizes, durations, counts, listen
 * addresses, http(s) URLs and the character classes of names. The YAML loader (load.c)
 * calls these on scalar text after secret references are resolved, and turns a
 * failure into "FILE:LINE:COL: key: why".
 *
 * Everything here is deliberately narrow: one spelling per thing, no whitespace, no
 * signs, no guessing. A configuration that means something other than what it says is a
 * security problem for a gateway, so anything ambiguous is an error.
 */
#include "config/config_int.h"
#include "config/tg_config.h"

#include <arpa/inet.h>
#include <string.h>

/* Parses a run of decimal digits at *s into *v, advancing *s. -1 if there is no digit
 * or the value exceeds max. */
static int digits(const char **s, uint64_t max, uint64_t *v)
{
    const char *p = *s;
    uint64_t acc = 0;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (acc > (max - d) / 10)
            return -1;
        acc = acc * 10 + d;
    }
    *s = p;
    *v = acc;
    return 0;
}

typedef struct unit {
    const char *name;
    uint64_t mult;
} unit;

/* Multiplies n by the multiplier of the unit spelled `u`, checking for overflow past
 * max. -1 if the unit is unknown or the product overflows. */
static int apply_unit(const unit *units, size_t nunits, const char *u, uint64_t n, uint64_t max,
                      uint64_t *out, int *unknown)
{
    for (size_t i = 0; i < nunits; i++) {
        if (strcmp(units[i].name, u) == 0) {
            *unknown = 0;
            if (n > max / units[i].mult)
                return -1;
            *out = n * units[i].mult;
            return 0;
        }
    }
    *unknown = 1;
    return -1;
}

int tg_config_parse_size(const char *s, size_t *out, const char **why)
{
    static const unit units[] = {
        {"", 1}, {"B", 1},
        {"KiB", 1024}, {"MiB", 1024 * 1024}, {"GiB", 1024 * 1024 * 1024},
        {"kB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
    };
    const char *p = s;
    uint64_t n, v;
    int unknown = 0;
    if (digits(&p, SIZE_MAX, &n) < 0 ||
        apply_unit(units, sizeof units / sizeof units[0], p, n, SIZE_MAX, &v, &unknown) < 0) {
        *why = unknown || p == s ? "expected a size such as 4MiB, 16KiB, 512kB or a number of bytes"
                                 : "size is too large";
        return -1;
    }
    if (v == 0) {
        *why = "must be greater than 0";
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

int tg_config_parse_seconds(const char *s, int64_t *out, const char **why)
{
    static const unit units[] = {
        {"s", 1}, {"m", 60}, {"h", 60 * 60}, {"d", 24 * 60 * 60},
    };
    const uint64_t max = 100ull * 366 * 24 * 60 * 60;
    const char *p = s;
    uint64_t n, v;
    int unknown = 0;
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    if (digits(&p, max, &n) < 0 ||
        apply_unit(units, sizeof units / sizeof units[0], p, n, max, &v, &unknown) < 0) {
        *why = unknown || p == s ? "expected a duration such as 30d, 12h, 90m, 45s or 0"
                                 : "duration is too long (at most 100 years)";
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

int tg_config_check_cidr(const char *s, const char **why)
{
    char addr[INET6_ADDRSTRLEN + 1];
    unsigned char bytes[16];
    const char *slash = strchr(s, '/');
    size_t len = slash ? (size_t)(slash - s) : strlen(s);
    int v6 = memchr(s, ':', len) != NULL;
    uint64_t prefix = v6 ? 128 : 32;
    *why = "expected an IP address or CIDR such as 10.0.0.0/8 or 2001:db8::/32";
    if (len == 0 || len >= sizeof addr)
        return -1;
    memcpy(addr, s, len);
    addr[len] = '\0';
    if (inet_pton(v6 ? AF_INET6 : AF_INET, addr, bytes) != 1)
        return -1;
    if (slash) {
        const char *p = slash + 1;
        if (digits(&p, v6 ? 128 : 32, &prefix) < 0 || *p || (p - slash > 2 && slash[1] == '0'))
            return -1;
    }
    for (unsigned bit = (unsigned)prefix; bit < (v6 ? 128u : 32u); bit++) {
        if (bytes[bit / 8] & (0x80u >> (bit % 8))) {
            *why = "the address has bits set past the prefix length (write the network address)";
            return -1;
        }
    }
    return 0;
}

int tg_config_parse_duration(const char *s, uint32_t *out, const char **why)
{
    static const unit units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 60 * 60 * 1000},
    };
    const char *p = s;
    uint64_t n, v;
    int unknown = 0;
    if (digits(&p, UINT32_MAX, &n) < 0 ||
        apply_unit(units, sizeof units / sizeof units[0], p, n, UINT32_MAX, &v, &unknown) < 0) {
        *why = unknown || p == s ? "expected a duration such as 250ms, 10s, 2m or 1h"
                                 : "duration is too long (at most 1193h)";
        return -1;
    }
    if (v == 0) {
        *why = "must be greater than 0";
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

int tg_config_parse_count(const char *s, uint64_t max, uint64_t *out, const char **why)
{
    const char *p = s;
    uint64_t v;
    if (digits(&p, UINT64_MAX, &v) < 0 || *p != '\0') {
        *why = p == s || *p != '\0' ? "expected a positive integer" : "number is too large";
        return -1;
    }
    if (v == 0) {
        *why = "must be greater than 0";
        return -1;
    }
    if (v > max) {
        *why = "number is too large";
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_port(const char *s, uint16_t *port)
{
    uint64_t v;
    const char *p = s;
    if (strlen(s) > 5 || digits(&p, 65535, &v) < 0 || *p != '\0' || v == 0)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

int tg_config_parse_listen(const char *s, tg_arena *a, const char **host, uint16_t *port,
                           const char **why)
{
    unsigned char addr[16];
    const char *colon;
    char *h;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') {
            *why = "expected HOST:PORT, with an IPv6 address in brackets, e.g. [::1]:8080";
            return -1;
        }
        h = tg_arena_strndup(a, s + 1, (size_t)(close - s - 1));
        colon = close + 1;
        if (inet_pton(AF_INET6, h, addr) != 1) {
            *why = "the host in brackets is not an IPv6 address";
            return -1;
        }
    } else {
        colon = strrchr(s, ':');
        if (!colon) {
            *why = "expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080";
            return -1;
        }
        if (memchr(s, ':', (size_t)(colon - s))) {
            *why = "write an IPv6 address in brackets, e.g. [::1]:8080";
            return -1;
        }
        h = tg_arena_strndup(a, s, (size_t)(colon - s));
        if (inet_pton(AF_INET, h, addr) != 1) {
            *why = "the host must be a literal IP address such as 127.0.0.1, 0.0.0.0 or [::1]";
            return -1;
        }
    }
    if (parse_port(colon + 1, port) < 0) {
        *why = "the port must be a number from 1 to 65535";
        return -1;
    }
    *host = h;
    return 0;
}

/* Bytes allowed in the path and query of a URL we accept: RFC 3986 unreserved,
 * sub-delims, ':', '@', '/', '?' and '%' (percent-escapes are passed through). */
static int is_url_char(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return 1;
    return ch && strchr("-._~!$&'()*+,;=:@/?%", ch) != NULL;
}

static int is_reg_name_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.';
}

int tg_config_check_http_url(const char *s, unsigned flags, tg_arena *a, const char **host,
                             const char **why)
{
    const char *p;
    if (strncmp(s, "https://", 8) == 0)
        p = s + 8;
    else if (strncmp(s, "http://", 7) == 0)
        p = s + 7;
    else {
        *why = "must be an absolute URL starting with http:// or https://";
        return -1;
    }
    size_t alen = strcspn(p, "/?#");
    if (memchr(p, '@', alen)) {
        *why = "must not contain user credentials (user:password@); use headers for credentials";
        return -1;
    }
    const char *hend;
    if (p[0] == '[') {
        const char *close = memchr(p, ']', alen);
        unsigned char addr[16];
        char tmp[64];
        size_t hl = close ? (size_t)(close - p - 1) : 0;
        if (!close || hl == 0 || hl >= sizeof tmp) {
            *why = "has a malformed IPv6 host";
            return -1;
        }
        memcpy(tmp, p + 1, hl);
        tmp[hl] = '\0';
        if (inet_pton(AF_INET6, tmp, addr) != 1) {
            *why = "has a malformed IPv6 host";
            return -1;
        }
        hend = close + 1;
    } else {
        hend = p;
        while (hend < p + alen && is_reg_name_char((unsigned char)*hend))
            hend++;
        if (hend == p) {
            *why = "has no host";
            return -1;
        }
    }
    if (hend < p + alen) {
        char port[8];
        size_t pl = (size_t)(p + alen - hend - 1);
        uint16_t pv;
        if (*hend != ':' || pl == 0 || pl >= sizeof port) {
            *why = "has a malformed host or port";
            return -1;
        }
        memcpy(port, hend + 1, pl);
        port[pl] = '\0';
        if (parse_port(port, &pv) < 0) {
            *why = "has a port that is not a number from 1 to 65535";
            return -1;
        }
    }
    const char *rest = p + alen;
    if ((flags & TG_URL_ORIGIN) && *rest) {
        *why = "must be an origin: scheme://host[:port] with no path, e.g. https://app.example";
        return -1;
    }
    for (const char *q = rest; *q; q++) {
        if (*q == '#') {
            *why = "must not contain a fragment (#...)";
            return -1;
        }
        if (*q == '?' && (flags & TG_URL_NO_QUERY)) {
            *why = "must not contain a query (?...)";
            return -1;
        }
        if (!is_url_char((unsigned char)*q)) {
            *why = "contains a character that is not allowed in a URL (percent-encode it)";
            return -1;
        }
    }
    if (host)
        *host = tg_arena_strndup(a, p, (size_t)(hend - p));
    return 0;
}

/* 1 if every byte of s (non-empty, at most max bytes) satisfies ok. */
static int all_chars(const char *s, size_t max, int (*ok)(unsigned char))
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!ok((unsigned char)s[i]))
            return 0;
    return 1;
}

static int is_alnum(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

static int is_name_char(unsigned char ch) { return is_alnum(ch) || ch == '_' || ch == '-'; }
static int is_prefix_char(unsigned char ch) { return is_name_char(ch) || ch == '.'; }
static int is_env_char(unsigned char ch) { return is_alnum(ch) || ch == '_'; }
static int is_tchar(unsigned char ch) { return is_alnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch)); }
static int is_host_char(unsigned char ch) { return is_reg_name_char(ch) || ch == ':' || ch == '[' || ch == ']'; }
static int is_path_char(unsigned char ch) { return is_url_char(ch) && ch != '?'; }

int tg_config_is_upstream_name(const char *s) { return all_chars(s, 64, is_name_char); }
int tg_config_is_tool_prefix(const char *s) { return all_chars(s, 64, is_prefix_char); }
int tg_config_is_header_name(const char *s) { return all_chars(s, 256, is_tchar); }
int tg_config_is_host_value(const char *s) { return all_chars(s, 262, is_host_char); }

int tg_config_is_env_name(const char *s)
{
    return !(s[0] >= '0' && s[0] <= '9') && all_chars(s, 256, is_env_char);
}

int tg_config_is_mcp_path(const char *s)
{
    return s[0] == '/' && all_chars(s, 1024, is_path_char);
}
