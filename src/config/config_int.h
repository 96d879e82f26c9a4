/*
 * config_int.h — private to src/config: the value grammars the YAML loader (load.c)
 * applies to scalars. They live in values.c, apart from the YAML walk, because they are
 * pure string functions: no YAML, no positions, no allocation except where a result
 * must outlive the call (then from the snapshot's arena).
 *
 * Every parser returns 0 on success, or -1 with *why set to a static sentence that the
 * loader appends to "FILE:LINE:COL: key: ". A `why` never contains the value itself,
 * because the value may have come from a secret reference.
 */
#ifndef TG_CONFIG_INT_H
#define TG_CONFIG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common/tg_common.h"

/* "4MiB", "16KiB", "512kB", "1GB", "100B", "65536" (plain integers are bytes). > 0. */
int tg_config_parse_size(const char *s, size_t *out, const char **why);

/* "250ms", "10s", "2m", "1h" → milliseconds; > 0 and < 2^32 ms. A unit is required. */
int tg_config_parse_duration(const char *s, uint32_t *out, const char **why);

/* An IPv4 or IPv6 address with an optional /PREFIX ("10.0.0.0/8", "::1"); host bits
 * past the prefix must be zero. */
int tg_config_check_cidr(const char *s, const char **why);

/* Decimal digits only (no sign, no spaces), 1 ≤ value ≤ max. */
int tg_config_parse_count(const char *s, uint64_t max, uint64_t *out, const char **why);

/* "HOST:PORT" with HOST a literal IPv4 address or a bracketed IPv6 address
 * ("[::1]:8080"); PORT 1..65535. *host is the address without brackets, from a. */
int tg_config_parse_listen(const char *s, tg_arena *a, const char **host, uint16_t *port,
                           const char **why);

/* Absolute http(s) URL checks. Userinfo ("user:pass@") and fragments are always
 * rejected; TG_URL_NO_QUERY also rejects a query; TG_URL_ORIGIN accepts only
 * scheme://host[:port] with nothing after it. *host (optional) receives the authority's
 * host as written, IPv6 in brackets, from a. */
enum { TG_URL_NO_QUERY = 1, TG_URL_ORIGIN = 2 };
int tg_config_check_http_url(const char *s, unsigned flags, tg_arena *a, const char **host,
                             const char **why);

/* Character classes for names. */
int tg_config_is_upstream_name(const char *s);  /* [A-Za-z0-9_-]{1,64} */
int tg_config_is_tool_prefix(const char *s);    /* [A-Za-z0-9_.-]{1,64} (MCP tool-name chars) */
int tg_config_is_env_name(const char *s);       /* [A-Za-z_][A-Za-z0-9_]* */
int tg_config_is_header_name(const char *s);    /* RFC 9110 token */
int tg_config_is_mcp_path(const char *s);       /* "/" followed by RFC 3986 path chars */
int tg_config_is_host_value(const char *s);     /* Host header value: host[:port] */

#endif /* TG_CONFIG_INT_H */
