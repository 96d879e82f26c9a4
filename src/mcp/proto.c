/*
 * proto.c — the Streamable HTTP checks the router makes before reading a message:
 * protocol revision, Host (DNS rebinding), Origin, Accept, Content-Type. Pure functions
 * of the configuration and header values, so they are unit-tested without a server;
 * router.c turns a false into the status code protocol.md prescribes.
 */
#include "mcp/mcp_int.h"

#include <string.h>

const char *const tg_mcp_supported_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", NULL};

bool mcp_version_supported(const char *v, size_t len)
{
    for (size_t i = 0; tg_mcp_supported_versions[i]; i++) {
        const char *s = tg_mcp_supported_versions[i];
        if (strlen(s) == len && memcmp(s, v, len) == 0) return true;
    }
    return false;
}

/* Splits "host[:port]" / "[v6][:port]"; returns the host part's length, or 0 when the
 * value is malformed (empty host, non-digit port, a bare IPv6 without brackets). */
static size_t host_part(const char *v, size_t len)
{
    size_t h;
    if (len && v[0] == '[') {
        const char *close = memchr(v, ']', len);
        if (!close) return 0;
        h = (size_t)(close - v) + 1;
    } else {
        const char *colon = memchr(v, ':', len);
        h = colon ? (size_t)(colon - v) : len;
        if (colon && memchr(colon + 1, ':', len - h - 1)) return 0;
    }
    if (h == 0 || h > 255) return 0;
    if (h < len) {
        if (v[h] != ':' || h + 1 == len || len - h - 1 > 5) return 0;
        for (size_t i = h + 1; i < len; i++)
            if (v[i] < '0' || v[i] > '9') return 0;
    }
    return h;
}

static bool host_listed(const char *const *list, size_t n, const char *v, size_t len, size_t h)
{
    for (size_t i = 0; i < n; i++) {
        /* An entry with a port must match exactly; one without matches any port. */
        if (tg_strcaseeq(v, len, list[i]) || tg_strcaseeq(v, h, list[i])) return true;
    }
    return false;
}

bool mcp_host_allowed(const tg_config *cfg, const char *host, size_t len)
{
    static const char *const defaults[] = {"localhost", "127.0.0.1", "[::1]"};
    size_t h = host_part(host, len);
    if (!h) return false;
    if (cfg->nallowed_hosts == 0) return host_listed(defaults, 3, host, len, h);
    return host_listed(cfg->allowed_hosts, cfg->nallowed_hosts, host, len, h);
}

bool mcp_origin_allowed(const tg_config *cfg, const char *origin, size_t len)
{
    if (cfg->nallowed_origins > 0) {
        for (size_t i = 0; i < cfg->nallowed_origins; i++) {
            const char *o = cfg->allowed_origins[i];
            if (strlen(o) == len && memcmp(o, origin, len) == 0) return true;
        }
        return false;
    }
    size_t skip;
    if (len > 7 && tg_strcaseeq(origin, 7, "http://")) skip = 7;
    else if (len > 8 && tg_strcaseeq(origin, 8, "https://")) skip = 8;
    else return false; /* "null", file:, chrome-extension: ... */
    const char *rest = origin + skip;
    size_t rlen = len - skip;
    if (memchr(rest, '/', rlen) || memchr(rest, '@', rlen)) return false; /* not a bare origin */
    return mcp_host_allowed(cfg, rest, rlen);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Finds type in an Accept list: its position (0-based) and q-value (0..1000, default
 * 1000). Returns false when it is not listed. */
static bool accept_entry(const char *accept, size_t len, const char *type, size_t *pos, int *q)
{
    size_t i = 0, n = 0;
    while (i < len) {
        while (i < len && (is_ows(accept[i]) || accept[i] == ',')) i++;
        size_t start = i;
        while (i < len && accept[i] != ',' && accept[i] != ';') i++;
        size_t end = i;
        while (end > start && is_ows(accept[end - 1])) end--;
        bool match = end > start && tg_strcaseeq(accept + start, end - start, type);
        int qv = 1000;
        while (i < len && accept[i] == ';') { /* parameters: only q matters */
            i++;
            while (i < len && is_ows(accept[i])) i++;
            if (i + 2 < len && (accept[i] == 'q' || accept[i] == 'Q') && accept[i + 1] == '=') {
                i += 2;
                int whole = 0, frac = 0, scale = 100; /* three decimals at most (RFC 9110) */
                if (i < len && accept[i] >= '0' && accept[i] <= '1') whole = accept[i++] - '0';
                if (i < len && accept[i] == '.') {
                    for (i++; i < len && accept[i] >= '0' && accept[i] <= '9'; i++, scale /= 10)
                        frac += (accept[i] - '0') * scale;
                }
                qv = whole ? 1000 : frac; /* thousandths */
            }
            while (i < len && accept[i] != ',' && accept[i] != ';') i++;
        }
        if (match && qv > 0) {
            *pos = n;
            *q = qv;
            return true;
        }
        n++;
    }
    return false;
}

bool mcp_accepts(const char *accept, size_t len, const char *type)
{
    size_t pos;
    int q;
    return accept_entry(accept, len, type, &pos, &q);
}

bool mcp_prefers_sse(const char *accept, size_t len)
{
    size_t ps, pj;
    int qs, qj;
    if (!accept_entry(accept, len, "text/event-stream", &ps, &qs)) return false;
    if (!accept_entry(accept, len, "application/json", &pj, &qj)) return true;
    return qs > qj || (qs == qj && ps < pj);
}

bool mcp_content_type_json(const char *ct, size_t len)
{
    size_t end = 0;
    while (end < len && ct[end] != ';') end++;
    while (end > 0 && is_ows(ct[end - 1])) end--;
    return tg_strcaseeq(ct, end, "application/json");
}
