/* ext_datetime.c — Cedar's `datetime` extension: datetime("…") and duration("…")
 * parsing, offset, durationSince, toDate, toTime, toDays … toMilliseconds, and text for
 * diagnostics. A datetime is int64 milliseconds since 1970-01-01T00:00:00Z, a duration
 * int64 milliseconds; the engine (src/cedar/) compares both as integers.
 *
 * Rules, each matching the reference implementation
 * (cedar-policy-core/src/extensions/datetime.rs = "datetime.rs", which uses chrono;
 * checked against cedar-wasm 4.13):
 *  - datetime accepts exactly 5 shapes: YYYY-MM-DD, YYYY-MM-DDThh:mm:ssZ,
 *    YYYY-MM-DDThh:mm:ss.SSSZ, YYYY-MM-DDThh:mm:ss(+|-)hhmm,
 *    YYYY-MM-DDThh:mm:ss.SSS(+|-)hhmm; every field has exactly that many ASCII digits
 *    (so the year is 0000..9999), 'T' and 'Z' are upper case, nothing may follow.
 *                                       datetime.rs DATE_PATTERN, HMS_PATTERN, MS_AND_OFFSET_PATTERN
 *  - The date must exist in the proleptic Gregorian calendar (leap years: divisible by
 *    4, except centuries not divisible by 400; year 0000 is a leap year).  chrono NaiveDate::from_ymd_opt
 *  - hh < 24, mm < 60, ss < 60 (no leap second 60).                       chrono from_hms_milli_opt; datetime.rs tests
 *  - Offset hh < 24 and mm < 60 (so ±2359 at most); the instant is local time minus the
 *    offset: "…T11:38:02+1134" is 00:04:02Z.                              datetime.rs UTCOffset, parse_datetime
 *  - Epoch milliseconds count no leap seconds; dates before 1970 are negative, with
 *    floor semantics (1969-12-31T23:59:59.999Z is -1).                    datetime.rs From<NaiveDateTime>
 *  - duration: ^-?(N d)?(N h)?(N m)?(N s)?(N ms)?$ with N = one or more ASCII digits:
 *    units in this order, each at most once, a single optional leading '-' that negates
 *    every part; "" and "-" are invalid, so is a bare number ("0"); "0ms" is fine.
 *                                                                          datetime.rs DURATION_PATTERN, parse_duration
 *  - Each N must fit u64, then i64; N * unit and the running sum (ms, then s, m, h, d)
 *    are checked i64 operations, overflow is an error; "-9223372036854775808ms" is valid.
 *                                                                          datetime.rs parse_duration
 *  - offset = checked dt + dur; durationSince = checked a - b.            datetime.rs offset, duration_since
 *  - toDate floors to a multiple of 86400000 (towards -inf); only the negative branch
 *    can overflow. toTime = dt - toDate(dt), in [0, 86400000).            datetime.rs to_date, to_time
 *  - toSeconds/Minutes/Hours/Days truncate towards zero (Rust '/').      datetime.rs Duration::to_*
 *  - Cedar displays a duration as "<ms>ms"; a datetime is shown here in ISO form.
 *                                                                          datetime.rs Display for Duration
 */
#include "cedar/ext/cedar_ext.h"

#include <stdio.h>

#define MS_PER_DAY INT64_C(86400000)

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (floor arithmetic
 * over 400-year eras, so years before 1970, and year 0, work). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);                           /* [0, 399] */
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;      /* [0, 365] */
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;               /* [0, 146096] */
    return era * 146097 + (int64_t)doe - 719468;
}

/* Inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

/* Reads exactly `width` ASCII digits at s[*pos]; -1 when they are not all there. */
static int fixed_digits(const char *s, size_t n, size_t *pos, int width, unsigned *out)
{
    unsigned v = 0;
    if (*pos + (size_t)width > n) return -1;
    for (int i = 0; i < width; i++) {
        char c = s[*pos + (size_t)i];
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (unsigned)(c - '0');
    }
    *pos += (size_t)width;
    *out = v;
    return 0;
}

static int expect(const char *s, size_t n, size_t *pos, char c)
{
    if (*pos >= n || s[*pos] != c) return -1;
    (*pos)++;
    return 0;
}

int cedar_datetime_parse(const char *s, size_t n, int64_t *ms)
{
    size_t p = 0;
    unsigned year, mon, day, hh = 0, mi = 0, ss = 0, milli = 0;
    int64_t offset_ms = 0;

    if (fixed_digits(s, n, &p, 4, &year) || expect(s, n, &p, '-') ||
        fixed_digits(s, n, &p, 2, &mon) || expect(s, n, &p, '-') ||
        fixed_digits(s, n, &p, 2, &day))
        return -1;
    if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon)) return -1;

    if (p < n) {
        if (expect(s, n, &p, 'T') || fixed_digits(s, n, &p, 2, &hh) || expect(s, n, &p, ':') ||
            fixed_digits(s, n, &p, 2, &mi) || expect(s, n, &p, ':') ||
            fixed_digits(s, n, &p, 2, &ss))
            return -1;
        if (p < n && s[p] == '.') {
            p++;
            if (fixed_digits(s, n, &p, 3, &milli)) return -1;
        }
        if (p < n && s[p] == 'Z') {
            p++;
        } else if (p < n && (s[p] == '+' || s[p] == '-')) {
            int64_t sign = s[p++] == '+' ? 1 : -1;
            unsigned oh, om;
            if (fixed_digits(s, n, &p, 2, &oh) || fixed_digits(s, n, &p, 2, &om)) return -1;
            if (oh >= 24 || om >= 60) return -1;
            offset_ms = sign * (int64_t)(oh * 3600 + om * 60) * 1000;
        } else {
            return -1;
        }
        if (p != n) return -1;
        if (hh >= 24 || mi >= 60 || ss >= 60) return -1;
    }

    /* Years 0..9999 keep every term far inside int64. */
    *ms = days_from_civil(year, mon, day) * MS_PER_DAY +
          (int64_t)(hh * 3600 + mi * 60 + ss) * 1000 + milli - offset_ms;
    return 0;
}

int cedar_duration_parse(const char *s, size_t n, int64_t *ms)
{
    /* Units in the only order allowed; `mult` is the unit in milliseconds. */
    static const struct { const char *name; size_t len; int64_t mult; } units[5] = {
        {"d", 1, MS_PER_DAY}, {"h", 1, 3600000}, {"m", 1, 60000}, {"s", 1, 1000}, {"ms", 2, 1},
    };
    uint64_t qty[5] = {0};
    size_t p = 0;
    int neg = 0, next_unit = 0, parts = 0;

    if (p < n && s[p] == '-') { neg = 1; p++; }
    while (p < n) {
        uint64_t v = 0;
        size_t start = p;
        int too_big = 0;
        while (p < n && s[p] >= '0' && s[p] <= '9') {
            too_big |= __builtin_mul_overflow(v, 10, &v);
            too_big |= __builtin_add_overflow(v, (uint64_t)(s[p] - '0'), &v);
            p++;
        }
        if (p == start || p == n) return -1;   /* a unit needs digits; digits need a unit */
        /* "m" directly followed by "s" is the ms unit: an "s" part would need digits. */
        int u;
        if (s[p] == 'm' && p + 1 < n && s[p + 1] == 's') u = 4;
        else if (s[p] == 'd') u = 0;
        else if (s[p] == 'h') u = 1;
        else if (s[p] == 'm') u = 2;
        else if (s[p] == 's') u = 3;
        else return -1;
        if (u < next_unit) return -1;          /* out of order or repeated */
        if (too_big) return -1;                /* does not fit u64: Cedar's Overflow */
        p += units[u].len;
        qty[u] = v;
        next_unit = u + 1;
        parts++;
    }
    if (parts == 0) return -1;

    /* Same order and checks as Cedar: ms first, then s, m, h, d. */
    int64_t total = 0;
    for (int u = 4; u >= 0; u--) {
        int64_t term;
        if (u == 4 && neg && qty[4] == (uint64_t)INT64_MAX + 1) {
            total = INT64_MIN;   /* -(2^63) ms fits although 2^63 does not */
            continue;
        }
        if (qty[u] > (uint64_t)INT64_MAX) return -1;
        if (__builtin_mul_overflow((int64_t)qty[u], units[u].mult, &term)) return -1;
        if (neg ? __builtin_sub_overflow(total, term, &total)
                : __builtin_add_overflow(total, term, &total))
            return -1;
    }
    *ms = total;
    return 0;
}

int cedar_datetime_offset(int64_t dt, int64_t dur, int64_t *out)
{
    return __builtin_add_overflow(dt, dur, out) ? -1 : 0;
}

int cedar_datetime_duration_since(int64_t a, int64_t b, int64_t *out)
{
    return __builtin_sub_overflow(a, b, out) ? -1 : 0;
}

int cedar_datetime_to_date(int64_t dt, int64_t *out)
{
    if (dt >= 0 || dt % MS_PER_DAY == 0) {
        *out = dt / MS_PER_DAY * MS_PER_DAY;
        return 0;
    }
    return __builtin_mul_overflow(dt / MS_PER_DAY - 1, MS_PER_DAY, out) ? -1 : 0;
}

int64_t cedar_datetime_to_time(int64_t dt)
{
    int64_t rem = dt % MS_PER_DAY;
    return rem < 0 ? rem + MS_PER_DAY : rem;
}

int64_t cedar_duration_to_milliseconds(int64_t ms) { return ms; }
int64_t cedar_duration_to_seconds(int64_t ms) { return ms / 1000; }
int64_t cedar_duration_to_minutes(int64_t ms) { return ms / 60000; }
int64_t cedar_duration_to_hours(int64_t ms) { return ms / 3600000; }
int64_t cedar_duration_to_days(int64_t ms) { return ms / MS_PER_DAY; }

void cedar_datetime_format(int64_t ms, char out[CEDAR_DATETIME_FORMAT_MAX])
{
    /* Floor division, so instants before 1970 land on the right day; the time of day is
     * taken from the remainder because days * MS_PER_DAY can leave int64 near the edges. */
    int64_t tod = cedar_datetime_to_time(ms);
    int64_t days = ms / MS_PER_DAY - (ms % MS_PER_DAY < 0);
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    /* Years outside 0..9999 (reachable through offset) get an explicit sign. */
    int k = y >= 0 && y <= 9999 ? snprintf(out, CEDAR_DATETIME_FORMAT_MAX, "%04lld", (long long)y)
                                : snprintf(out, CEDAR_DATETIME_FORMAT_MAX, "%+lld", (long long)y);
    snprintf(out + k, CEDAR_DATETIME_FORMAT_MAX - (size_t)k, "-%02u-%02uT%02u:%02u:%02u.%03uZ", m, d,
             (unsigned)(tod / 3600000), (unsigned)(tod / 60000 % 60), (unsigned)(tod / 1000 % 60),
             (unsigned)(tod % 1000));
}

void cedar_duration_format(int64_t ms, char out[CEDAR_DURATION_FORMAT_MAX])
{
    snprintf(out, CEDAR_DURATION_FORMAT_MAX, "%lldms", (long long)ms);
}
