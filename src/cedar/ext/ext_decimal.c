/* ext_decimal.c — Cedar's `decimal` extension: decimal("…") parsing and the display
 * form. A decimal is an int64 scaled by 10^4, so lessThan & co. are integer comparisons
 * done by the engine (src/cedar/).
 *
 * Rules, each matching the reference implementation
 * (cedar-policy-core/src/extensions/decimal.rs = "decimal.rs"; Lean model
 * cedar-lean/Cedar/Spec/Ext/Decimal.lean = "Decimal.lean"; checked against cedar-wasm 4.13):
 *  - Text must match ^-?[0-9]+\.[0-9]+$ : optional '-', at least one digit on both sides
 *    of exactly one '.', nothing else (no '+', no spaces, no exponent). Rust's \d also
 *    matches non-ASCII digits, but those then fail i64::from_str, so only ASCII digits
 *    are ever accepted.                                                     decimal.rs DECIMAL_REGEX
 *  - At most 4 fraction digits, even if the extra ones are zeros ("0.00000" invalid).
 *                                                                            decimal.rs TooManyDigits
 *  - Leading zeros in the integer part are fine ("00.000", "0123.0").       decimal.rs tests
 *  - Value = int * 10^4 ± frac * 10^(4 - len); the sign comes from the text, so
 *    "-0.5" is -5000 and "-0.0" == "0.0" (fixed in cedar PR #1964; older releases
 *    turned "-0.5" into +0.5).                                              Decimal.lean parse
 *  - Every step is checked i64 arithmetic; any overflow is an error, so the range is
 *    -922337203685477.5808 ..= 922337203685477.5807.                         decimal.rs checked_mul_pow
 *  - Display (diagnostics only, never compared): sign, integer part, '.', fraction with
 *    trailing zeros removed but at least one digit. Cedar's own Display differs between
 *    versions, so toolgate picks the shortest text that parses back to the same value.
 */
#include "cedar/ext/cedar_ext.h"

#include <stdio.h>

int cedar_decimal_parse(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (i < n && s[i] == '-') { neg = 1; i++; }

    /* Integer part, accumulated as a negative number when negative so INT64_MIN's
     * magnitude is representable while reading (it then overflows the scaling). */
    size_t start = i;
    int64_t v = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        int64_t d = s[i++] - '0';
        if (__builtin_mul_overflow(v, 10, &v)) return -1;
        if (neg ? __builtin_sub_overflow(v, d, &v) : __builtin_add_overflow(v, d, &v)) return -1;
    }
    if (i == start || i >= n || s[i] != '.') return -1;
    i++;

    size_t fstart = i;
    int64_t frac = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        if (i - fstart == 4) return -1;   /* a 5th fraction digit */
        frac = frac * 10 + (s[i++] - '0');
    }
    size_t flen = i - fstart;
    if (flen == 0 || i != n) return -1;
    for (size_t k = flen; k < 4; k++) frac *= 10;

    if (__builtin_mul_overflow(v, (int64_t)CEDAR_DECIMAL_SCALE, &v)) return -1;
    if (neg ? __builtin_sub_overflow(v, frac, &v) : __builtin_add_overflow(v, frac, &v)) return -1;
    *out = v;
    return 0;
}

void cedar_decimal_format(int64_t v, char out[CEDAR_DECIMAL_FORMAT_MAX])
{
    /* Magnitude as unsigned so INT64_MIN needs no special case. */
    uint64_t mag = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    unsigned frac = (unsigned)(mag % CEDAR_DECIMAL_SCALE);
    int digits = 4;
    while (digits > 1 && frac % 10 == 0) { frac /= 10; digits--; }
    snprintf(out, CEDAR_DECIMAL_FORMAT_MAX, "%s%llu.%0*u", v < 0 ? "-" : "",
             (unsigned long long)(mag / CEDAR_DECIMAL_SCALE), digits, frac);
}
