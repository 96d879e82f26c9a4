/* cedar_ext.h — Cedar extension types as pure functions on plain C values.
 *
 * The Cedar engine (src/cedar/) keeps extension values in its own value type and calls
 * these functions to parse literals given to ip(), decimal(), datetime(), duration() and
 * to evaluate their methods. Nothing here allocates or keeps state; every function is
 * safe to call from any thread. Semantics follow the Cedar reference implementation
 * (cedar-policy, Rust) exactly; the rules and their sources are listed at the top of
 * ext_ip.c, ext_decimal.c and ext_datetime.c.
 *
 * Conventions: parse functions take a byte string (s, n) that need not be NUL-terminated
 * and may contain any bytes; they return 0 and fill *out, or -1 when the text is not a
 * valid literal (*out is then unspecified). Functions returning int as a boolean return
 * 1 or 0. Arithmetic that Cedar reports as an overflow error returns -1.
 */
#ifndef CEDAR_EXT_H
#define CEDAR_EXT_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- ip / ipaddr */

/* An address with its prefix length, as Cedar keeps it: the host bits are NOT masked, so
 * ip("10.0.0.1/24") and ip("10.0.0.0/24") are different values.
 * Invariants: v6 is 0 or 1; prefix <= 32 for v4 and <= 128 for v6 (an address written
 * without "/n" has the full length); for v4 only addr[0..3] are meaningful and
 * addr[4..15] are zero, so memcmp of the whole struct is a valid equality test. */
typedef struct {
    uint8_t v6;
    uint8_t prefix;
    uint8_t addr[16];
} cedar_ipaddr;

/* Longest text cedar_ip_format writes, including the NUL. */
#define CEDAR_IP_FORMAT_MAX 64

int  cedar_ip_parse(const char *s, size_t n, cedar_ipaddr *out);
int  cedar_ip_equal(const cedar_ipaddr *a, const cedar_ipaddr *b);  /* incl. prefix; v4 != v6 */
int  cedar_ip_is_v4(const cedar_ipaddr *a);
int  cedar_ip_is_v6(const cedar_ipaddr *a);
int  cedar_ip_is_loopback(const cedar_ipaddr *a);   /* every address of the range is loopback */
int  cedar_ip_is_multicast(const cedar_ipaddr *a);  /* every address of the range is multicast */
/* 1 when every address of range a lies within range `range` (a plain address is a /32 or
 * /128 range); 0 otherwise, including when the families differ. */
int  cedar_ip_in_range(const cedar_ipaddr *a, const cedar_ipaddr *range);
/* Canonical text as Cedar displays it ("addr/prefix"), NUL-terminated; always a valid
 * ip() literal for the same value (v4-mapped v6 addresses stay in hex, see ext_ip.c). */
void cedar_ip_format(const cedar_ipaddr *a, char out[CEDAR_IP_FORMAT_MAX]);

/* ---------------------------------------------------------------- decimal */

/* A decimal is an int64 scaled by 10^4: decimal("1.5") is 15000. Ordering is plain
 * integer ordering, so lessThan & co. are the C comparison operators. */
#define CEDAR_DECIMAL_SCALE 10000
#define CEDAR_DECIMAL_FORMAT_MAX 32

int  cedar_decimal_parse(const char *s, size_t n, int64_t *out);
/* Display form (diagnostics): integer part, '.', then the fraction without trailing zeros but
 * at least one digit ("1.5", "-0.0001", "3.0"). */
void cedar_decimal_format(int64_t v, char out[CEDAR_DECIMAL_FORMAT_MAX]);

/* ---------------------------------------------------------------- datetime / duration */

/* A datetime is milliseconds since 1970-01-01T00:00:00Z (negative before); a duration is
 * a signed number of milliseconds. Both compare as plain integers. */
#define CEDAR_DATETIME_FORMAT_MAX 48
#define CEDAR_DURATION_FORMAT_MAX 48

int  cedar_datetime_parse(const char *s, size_t n, int64_t *ms);
int  cedar_duration_parse(const char *s, size_t n, int64_t *ms);

int  cedar_datetime_offset(int64_t dt, int64_t dur, int64_t *out);          /* dt + dur */
int  cedar_datetime_duration_since(int64_t a, int64_t b, int64_t *out);     /* a - b */
int  cedar_datetime_to_date(int64_t dt, int64_t *out);   /* floor to the day's start (UTC) */
int64_t cedar_datetime_to_time(int64_t dt);              /* ms since the day's start, >= 0 */

/* Whole units, truncated toward zero (as Rust integer division). */
int64_t cedar_duration_to_days(int64_t ms);
int64_t cedar_duration_to_hours(int64_t ms);
int64_t cedar_duration_to_minutes(int64_t ms);
int64_t cedar_duration_to_seconds(int64_t ms);
int64_t cedar_duration_to_milliseconds(int64_t ms);

/* Text for diagnostics: "YYYY-MM-DDThh:mm:ss.SSSZ" (UTC; years outside 0..9999 are
 * printed with their sign and all digits) and, as Cedar displays durations, "<ms>ms"
 * ("-90000ms"). Both are accepted back by the parse functions when in range. */
void cedar_datetime_format(int64_t ms, char out[CEDAR_DATETIME_FORMAT_MAX]);
void cedar_duration_format(int64_t ms, char out[CEDAR_DURATION_FORMAT_MAX]);

#endif
