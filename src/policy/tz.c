/*
 * tz.c — UTC offsets of IANA time zones, read straight from the system's TZif files
 * (RFC 8536), for change windows (policy_int.h).
 *
 * Why not localtime_r: it reads the process-wide TZ, and switching TZ per window
 * (setenv + tzset) races with every other thread reading the environment or the time
 * zone. Reading the zone file once at load gives an immutable table that any thread may
 * query: the transitions (64-bit section of version 2+ files) and, after the last one,
 * the POSIX TZ rule in the file's footer (e.g. "CET-1CEST,M3.5.0,M10.5.0/3").
 */
#include "policy/policy_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TZ_FILE_MAX (256 * 1024)

/* A POSIX TZ rule date: kind 'M' (month, week 1-5, weekday 0=Sun), 'J' (1-365, no Feb
 * 29) or 'D' (0-365); secs: local time of day of the change (may be negative or > 24h). */
typedef struct tz_date {
    char kind;
    int m, w, d, n;
    int32_t secs;
} tz_date;

/* Invariant: times ascending; idx[i] < ntypes; offs has ntypes entries. When has_rule,
 * times after the last transition follow std/dst and the two dates. */
struct tg_tz {
    int64_t *times;
    uint8_t *idx;
    size_t ntimes;
    int32_t *offs;
    size_t ntypes;
    int has_rule, has_dst;
    int32_t std_off, dst_off;   /* seconds east of UTC */
    tz_date start, end;
};

void tg_tz_free(tg_tz *z)
{
    if (!z)
        return;
    free(z->times);
    free(z->idx);
    free(z->offs);
    free(z);
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* ------------------------------------------------------------------ POSIX TZ rule */

/* Skips a zone abbreviation: letters, or <...>. */
static const char *skip_name(const char *p)
{
    if (*p == '<') {
        const char *e = strchr(p, '>');
        return e ? e + 1 : NULL;
    }
    const char *s = p;
    while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
        p++;
    return p - s >= 3 ? p : NULL;
}

/* [+-]hh[:mm[:ss]] → seconds. */
static const char *parse_hms(const char *p, int32_t *out)
{
    int sign = 1;
    long v[3] = {0, 0, 0};
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    for (int i = 0; i < 3; i++) {
        if (*p < '0' || *p > '9')
            return i == 0 ? NULL : p;
        char *e;
        v[i] = strtol(p, &e, 10);
        p = e;
        if (*p != ':' || i == 2)
            break;
        p++;
    }
    if (v[0] > 167 || v[1] > 59 || v[2] > 59)
        return NULL;
    *out = (int32_t)(sign * (v[0] * 3600 + v[1] * 60 + v[2]));
    return p;
}

static const char *parse_date(const char *p, tz_date *d)
{
    char *e;
    d->secs = 7200;  /* POSIX default: 02:00 */
    if (*p == 'M') {
        d->kind = 'M';
        d->m = (int)strtol(p + 1, &e, 10);
        if (*e != '.')
            return NULL;
        d->w = (int)strtol(e + 1, &e, 10);
        if (*e != '.')
            return NULL;
        d->d = (int)strtol(e + 1, &e, 10);
        if (d->m < 1 || d->m > 12 || d->w < 1 || d->w > 5 || d->d < 0 || d->d > 6)
            return NULL;
    } else {
        d->kind = *p == 'J' ? 'J' : 'D';
        if (*p == 'J')
            p++;
        if (*p < '0' || *p > '9')
            return NULL;
        d->n = (int)strtol(p, &e, 10);
        if (d->n > 365 || (d->kind == 'J' && d->n < 1))
            return NULL;
    }
    p = e;
    if (*p == '/')
        p = parse_hms(p + 1, &d->secs);
    return p;
}

/* "STDoff[DST[off][,start[/t],end[/t]]]". POSIX offsets are west-positive. */
static int parse_rule(tg_tz *z, const char *s)
{
    int32_t off;
    const char *p = skip_name(s);
    if (!p || !(p = parse_hms(p, &off)))
        return -1;
    z->std_off = -off;
    z->has_rule = 1;
    if (!*p)
        return 0;
    if (!(p = skip_name(p)))
        return -1;
    z->has_dst = 1;
    z->dst_off = z->std_off + 3600;
    if (*p && *p != ',') {
        if (!(p = parse_hms(p, &off)))
            return -1;
        z->dst_off = -off;
    }
    if (*p != ',' || !(p = parse_date(p + 1, &z->start)) || *p != ',' ||
        !(p = parse_date(p + 1, &z->end)) || *p)
        return -1;
    return 0;
}

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int64_t year_of_days(int64_t z)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    return yoe + era * 400 + (m <= 2);
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int64_t tg_tz_floor_div(int64_t a, int64_t b)
{
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

/* The day (days since epoch) a rule date falls on in year y. */
static int64_t rule_day(const tz_date *d, int64_t y)
{
    if (d->kind == 'J')
        return days_from_civil(y, 1, 1) + d->n - 1 + (is_leap(y) && d->n >= 60);
    if (d->kind == 'D')
        return days_from_civil(y, 1, 1) + d->n;
    int64_t first = days_from_civil(y, d->m, 1);
    int wd_first = (int)((first % 7 + 7 + 4) % 7);  /* 0 = Sunday; 1970-01-01 was Thursday */
    int64_t day = first + (d->d - wd_first + 7) % 7 + (d->w - 1) * 7;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int len = mdays[d->m - 1] + (d->m == 2 && is_leap(y));
    while (day >= first + len)
        day -= 7;
    return day;
}

static int32_t rule_offset(const tg_tz *z, int64_t t)
{
    if (!z->has_dst)
        return z->std_off;
    int64_t y = year_of_days(tg_tz_floor_div(t + z->std_off, 86400));
    /* Start is given in standard local time, end in daylight local time. */
    int64_t start = rule_day(&z->start, y) * 86400 + z->start.secs - z->std_off;
    int64_t end = rule_day(&z->end, y) * 86400 + z->end.secs - z->dst_off;
    bool dst = start < end ? (t >= start && t < end) : !(t >= end && t < start);
    return dst ? z->dst_off : z->std_off;
}

int32_t tg_tz_offset(const tg_tz *z, int64_t t)
{
    if (z->ntimes == 0 || t < z->times[0]) {
        if (z->ntimes == 0 && z->has_rule)
            return rule_offset(z, t);
        return z->ntypes ? z->offs[0] : 0;
    }
    if (t >= z->times[z->ntimes - 1] && z->has_rule)
        return rule_offset(z, t);
    size_t lo = 0, hi = z->ntimes;  /* times[lo] <= t < times[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->times[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return z->offs[z->idx[lo]];
}

/* ------------------------------------------------------------------ TZif */

static int parse_tzif(tg_tz *z, const unsigned char *b, size_t n, const char *name, tg_error *err)
{
    if (n < 44 || memcmp(b, "TZif", 4) != 0)
        return tg_error_set(err, "time zone %s: not a TZif file", name);
    int version = b[4] ? b[4] - '0' : 1;
    size_t isut = be32(b + 20), isstd = be32(b + 24), leap = be32(b + 28), timecnt = be32(b + 32),
           typecnt = be32(b + 36), charcnt = be32(b + 40);
    size_t tsize = 4, lsize = 8;
    const unsigned char *p = b + 44;
    if (version >= 2) {
        size_t v1 = timecnt * 4 + timecnt + typecnt * 6 + charcnt + leap * 8 + isstd + isut;
        if ((size_t)(p - b) + v1 + 44 > n)
            return tg_error_set(err, "time zone %s: truncated file", name);
        p += v1;
        if (memcmp(p, "TZif", 4) != 0)
            return tg_error_set(err, "time zone %s: bad second header", name);
        isut = be32(p + 20), isstd = be32(p + 24), leap = be32(p + 28), timecnt = be32(p + 32),
        typecnt = be32(p + 36), charcnt = be32(p + 40);
        p += 44;
        tsize = 8;
        lsize = 12;
    }
    size_t need = timecnt * tsize + timecnt + typecnt * 6 + charcnt + leap * lsize + isstd + isut;
    if (typecnt == 0 || typecnt > 256 || timecnt > 100000 || (size_t)(p - b) + need > n)
        return tg_error_set(err, "time zone %s: malformed counts", name);
    z->times = malloc((timecnt ? timecnt : 1) * sizeof *z->times);
    z->idx = malloc(timecnt ? timecnt : 1);
    z->offs = malloc(typecnt * sizeof *z->offs);
    if (!z->times || !z->idx || !z->offs)
        abort();
    for (size_t i = 0; i < timecnt; i++)
        z->times[i] = tsize == 8 ? be64(p + i * 8) : (int32_t)be32(p + i * 4);
    p += timecnt * tsize;
    for (size_t i = 0; i < timecnt; i++) {
        if (p[i] >= typecnt)
            return tg_error_set(err, "time zone %s: bad type index", name);
        z->idx[i] = p[i];
    }
    p += timecnt;
    for (size_t i = 0; i < typecnt; i++)
        z->offs[i] = (int32_t)be32(p + i * 6);
    p += typecnt * 6 + charcnt + leap * lsize + isstd + isut;
    z->ntimes = timecnt;
    z->ntypes = typecnt;
    if (version >= 2 && p < b + n && *p == '\n') {
        const unsigned char *e = memchr(p + 1, '\n', (size_t)(b + n - p - 1));
        if (e && e > p + 1) {
            char rule[128];
            size_t len = (size_t)(e - p - 1);
            if (len >= sizeof rule)
                return tg_error_set(err, "time zone %s: footer rule too long", name);
            memcpy(rule, p + 1, len);
            rule[len] = '\0';
            if (parse_rule(z, rule) < 0)
                return tg_error_set(err, "time zone %s: unsupported footer rule \"%s\"", name, rule);
        }
    }
    return 0;
}

tg_tz *tg_tz_load(const char *name, tg_error *err)
{
    tg_tz *z = calloc(1, sizeof *z);
    if (!z)
        abort();
    if (strcmp(name, "UTC") == 0) {
        z->has_rule = 1;
        return z;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/%s", TG_POLICY_ZONEINFO, name);
    FILE *fp = fopen(path, "re");
    unsigned char *buf = malloc(TZ_FILE_MAX);
    if (!buf)
        abort();
    size_t n = fp ? fread(buf, 1, TZ_FILE_MAX, fp) : 0;
    int rc = !fp ? tg_error_set(err, "time zone %s: cannot open %s", name, path)
                 : parse_tzif(z, buf, n, name, err);
    if (fp)
        fclose(fp);
    free(buf);
    if (rc < 0) {
        tg_tz_free(z);
        return NULL;
    }
    return z;
}

/* ------------------------------------------------------------------ RFC 3339 */

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int tg_policy_parse_time(const char *s, int64_t *ms)
{
    size_t n = strlen(s);
    if (n < 17 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':')
        return -1;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2), h = digits(s + 11, 2),
        mi = digits(s + 14, 2), sec = 0, frac = 0;
    const char *p = s + 16;
    if (*p == ':') {
        if ((sec = digits(p + 1, 2)) < 0)
            return -1;
        p += 3;
        if (*p == '.') {
            int k = 0;
            for (p++; *p >= '0' && *p <= '9'; p++, k++)
                if (k < 3)
                    frac = frac * 10 + (*p - '0');
            if (k == 0)
                return -1;
            for (; k < 3; k++)
                frac *= 10;
        }
    }
    int32_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && p[3] == ':') {
        int oh = digits(p + 1, 2), om = digits(p + 4, 2);
        if (oh < 0 || om < 0 || oh > 23 || om > 59)
            return -1;
        off = (int32_t)((*p == '-' ? -1 : 1) * (oh * 3600 + om * 60));
        p += 6;
    } else {
        return -1;
    }
    if (*p || y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
        mi > 59 || sec < 0 || sec > 60)
        return -1;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
    *ms = secs * 1000 + frac;
    return 0;
}
