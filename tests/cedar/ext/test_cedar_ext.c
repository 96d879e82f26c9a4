/* test_cedar_ext.c — unit tests for the Cedar extension types (src/cedar/ext/): ip,
 * decimal, datetime, duration. The expected values are Cedar's: every accept/reject
 * decision and value below was checked against cedar-wasm 4.13 (the reference the
 * engine is tested against), and the epoch values against `date -u`. Ends with
 * property tests: format → parse round trips over random values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "cedar/ext/cedar_ext.h"

/* ---------------------------------------------------------------- helpers */

static int ip_parse(const char *s, cedar_ipaddr *out)
{
    return cedar_ip_parse(s, strlen(s), out);
}

static cedar_ipaddr ip_ok(const char *s)
{
    cedar_ipaddr a;
    if (ip_parse(s, &a) != 0) fail_msg("ip(\"%s\") should parse", s);
    return a;
}

static void assert_ip_text(const char *s, const char *want)
{
    cedar_ipaddr a = ip_ok(s);
    char buf[CEDAR_IP_FORMAT_MAX];
    cedar_ip_format(&a, buf);
    if (strcmp(buf, want) != 0) fail_msg("ip(\"%s\") displays as %s, want %s", s, buf, want);
    cedar_ipaddr back = ip_ok(buf);   /* the display is itself a literal for the same value */
    assert_true(cedar_ip_equal(&a, &back));
}

static int64_t dec_ok(const char *s)
{
    int64_t v;
    if (cedar_decimal_parse(s, strlen(s), &v) != 0) fail_msg("decimal(\"%s\") should parse", s);
    return v;
}

static int64_t dt_ok(const char *s)
{
    int64_t v;
    if (cedar_datetime_parse(s, strlen(s), &v) != 0) fail_msg("datetime(\"%s\") should parse", s);
    return v;
}

static int64_t dur_ok(const char *s)
{
    int64_t v;
    if (cedar_duration_parse(s, strlen(s), &v) != 0) fail_msg("duration(\"%s\") should parse", s);
    return v;
}

typedef int (*parse_i64_fn)(const char *, size_t, int64_t *);

static void assert_all_rejected(parse_i64_fn parse, const char *what, const char *const *bad, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        if (parse(bad[i], strlen(bad[i]), &v) == 0)
            fail_msg("%s(\"%s\") should be rejected, got %lld", what, bad[i], (long long)v);
    }
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------- ip */

static void test_ip_v4_forms(void **state)
{
    (void)state;
    cedar_ipaddr a = ip_ok("192.168.0.1");
    assert_int_equal(a.v6, 0);
    assert_int_equal(a.prefix, 32);
    assert_memory_equal(a.addr, ((uint8_t[4]){192, 168, 0, 1}), 4);
    assert_true(cedar_ip_is_v4(&a));
    assert_false(cedar_ip_is_v6(&a));

    a = ip_ok("10.1.2.3/8");
    assert_int_equal(a.prefix, 8);
    assert_memory_equal(a.addr, ((uint8_t[4]){10, 1, 2, 3}), 4);   /* host bits kept */
    assert_int_equal(ip_ok("0.0.0.0/0").prefix, 0);
    assert_int_equal(ip_ok("255.255.255.255/32").prefix, 32);

    static const char *const bad[] = {
        "01.2.3.4", "1.2.3.04", "1.2.3.00", "0001.2.3.4",      /* leading zeros: no octal */
        "256.1.1.1", "1.2.3.256", "1.2.3", "1.2.3.4.5", "1..2.3", "1.2.3.",
        " 1.2.3.4", "1.2.3.4 ", "1.2.3.4/", "1.2.3.4/33", "1.2.3.4/00", "1.2.3.4/032",
        "1.2.3.4/+8", "1.2.3.4/-0", "1.2.3.4/8/9", "/8", "", "a.b.c.d", "1.2.3.4%",
    };
    for (size_t i = 0; i < COUNT(bad); i++)
        if (ip_parse(bad[i], &a) == 0) fail_msg("ip(\"%s\") should be rejected", bad[i]);
}

static void test_ip_v6_forms(void **state)
{
    (void)state;
    static const uint8_t zero[16] = {0};
    cedar_ipaddr a = ip_ok("::");
    assert_int_equal(a.v6, 1);
    assert_int_equal(a.prefix, 128);
    assert_memory_equal(a.addr, zero, 16);

    a = ip_ok("::1");
    assert_memory_equal(a.addr, ((uint8_t[16]){[15] = 1}), 16);
    a = ip_ok("1::");
    assert_memory_equal(a.addr, ((uint8_t[16]){[1] = 1}), 16);
    a = ip_ok("1::2:3");
    assert_memory_equal(a.addr, ((uint8_t[16]){[1] = 1, [13] = 2, [15] = 3}), 16);
    a = ip_ok("ABCD:ef01:2345:6789:abcd:EF01:2345:6789");
    assert_int_equal(a.addr[0], 0xab);
    assert_int_equal(a.addr[3], 0x01);
    assert_int_equal(a.addr[5], 0x45);
    a = ip_ok("0001::");    /* leading zeros in a group are fine in v6 */
    assert_int_equal(a.addr[1], 1);
    /* "::" may stand for a single zero group, at either end */
    a = ip_ok("1:2:3:4:5:6:7::");
    assert_int_equal(a.addr[13], 7);
    assert_int_equal(a.addr[15], 0);
    a = ip_ok("::2:3:4:5:6:7:8");
    assert_int_equal(a.addr[1], 0);
    assert_int_equal(a.addr[15], 8);
    assert_int_equal(ip_ok("ffee::/64").prefix, 64);
    assert_int_equal(ip_ok("::/0").prefix, 0);
    /* the longest accepted text is 43 bytes */
    assert_int_equal(ip_ok("ABCD:EF01:2345:6789:ABCD:EF01:2345:6789/128").prefix, 128);

    static const char *const bad[] = {
        "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8",
        "1::2::3", ":::", ":1::", "1:", ":1", "1::2:", "00001::", "12345::", "g::",
        "::ffff:1.2.3.4", "::1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "::ffff:1.2.3.4/128",  /* no embedded v4 */
        "::/129", "::/0128", "::/", "::/1 ", "[::1]", "::1%eth0",
        "0ABCD:EF01:2345:6789:ABCD:EF01:2345:6789/1",                             /* > 43 bytes */
        "ABCD:EF01:2345:6789:ABCD:EF01:2345:6789/1280",
    };
    for (size_t i = 0; i < COUNT(bad); i++)
        if (ip_parse(bad[i], &a) == 0) fail_msg("ip(\"%s\") should be rejected", bad[i]);

    /* The same bits written in v6 hex are accepted, and are a v6 address. */
    a = ip_ok("::ffff:0102:0304");
    assert_true(cedar_ip_is_v6(&a));
    assert_false(cedar_ip_is_loopback(&a));
}

static void test_ip_bytes_not_text(void **state)
{
    (void)state;
    cedar_ipaddr a;
    /* Length-delimited: a NUL or junk after n bytes is not part of the literal. */
    assert_int_equal(cedar_ip_parse("10.0.0.1\0junk", 13, &a), -1);
    assert_int_equal(cedar_ip_parse("10.0.0.1/24xxx", 11, &a), 0);
    assert_int_equal(a.prefix, 24);
}

static void test_ip_equality(void **state)
{
    (void)state;
    cedar_ipaddr a = ip_ok("10.0.0.1/24"), b = ip_ok("10.0.0.0/24");
    assert_false(cedar_ip_equal(&a, &b));            /* host bits are not masked */
    b = ip_ok("10.0.0.1/24");
    assert_true(cedar_ip_equal(&a, &b));
    a = ip_ok("10.0.0.1");
    b = ip_ok("10.0.0.1/32");
    assert_true(cedar_ip_equal(&a, &b));             /* no prefix = full length */
    b = ip_ok("10.0.0.1/31");
    assert_false(cedar_ip_equal(&a, &b));
    a = ip_ok("::1");
    b = ip_ok("0:0:0:0:0:0:0:0001/128");
    assert_true(cedar_ip_equal(&a, &b));
    a = ip_ok("0.0.0.0");
    b = ip_ok("::");
    assert_false(cedar_ip_equal(&a, &b));            /* v4 never equals v6 */
}

static void test_ip_loopback_multicast(void **state)
{
    (void)state;
    static const struct { const char *s; int lo, mc; } t[] = {
        {"127.0.0.1", 1, 0}, {"127.255.200.200", 1, 0}, {"127.0.0.1/8", 1, 0},
        {"127.0.0.1/7", 0, 0}, {"127.255.200.200/0", 0, 0}, {"128.0.0.1", 0, 0},
        {"::1", 1, 0}, {"::1/127", 0, 0}, {"::2", 0, 0}, {"::ffff:7f00:1", 0, 0},
        {"224.0.0.0/4", 0, 1}, {"224.0.0.0/3", 0, 0}, {"228.228.228.0", 0, 1},
        {"239.255.255.255", 0, 1}, {"240.0.0.0", 0, 0}, {"223.255.255.255", 0, 0},
        {"ff00::/8", 0, 1}, {"ff00::/7", 0, 0}, {"ff02::1", 0, 1}, {"fe00::", 0, 0},
    };
    for (size_t i = 0; i < COUNT(t); i++) {
        cedar_ipaddr a = ip_ok(t[i].s);
        if (cedar_ip_is_loopback(&a) != t[i].lo) fail_msg("%s isLoopback want %d", t[i].s, t[i].lo);
        if (cedar_ip_is_multicast(&a) != t[i].mc) fail_msg("%s isMulticast want %d", t[i].s, t[i].mc);
    }
}

static void test_ip_in_range(void **state)
{
    (void)state;
    static const struct { const char *a, *r; int in; } t[] = {
        {"10.0.0.1", "10.0.0.0/24", 1},       {"10.0.1.1", "10.0.0.0/24", 0},
        {"10.0.0.1/24", "10.0.0.0/24", 1},    /* same network, different host bits */
        {"10.0.0.0/24", "10.0.0.0/16", 1},    {"10.0.0.0/16", "10.0.0.0/24", 0},
        {"10.0.0.0/24", "10.0.0.0/24", 1},    {"0.0.0.0/0", "1.2.3.4/0", 1},
        {"1.2.3.4", "0.0.0.0/0", 1},          {"10.0.0.0/8", "10.0.0.1", 0},
        {"10.0.0.1", "10.0.0.1", 1},          {"255.255.255.255", "255.255.255.254/31", 1},
        {"1.2.3.4", "::/0", 0},               {"::1", "0.0.0.0/0", 0},    /* families never mix */
        {"::1", "::/0", 1},                   {"::1", "::/127", 1},  {"::2", "::/127", 0},
        {"2001:db8::/48", "2001:db8::/32", 1}, {"2001:db8::/32", "2001:db8::/48", 0},
        {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ff00::/8", 1},
    };
    for (size_t i = 0; i < COUNT(t); i++) {
        cedar_ipaddr a = ip_ok(t[i].a), r = ip_ok(t[i].r);
        if (cedar_ip_in_range(&a, &r) != t[i].in)
            fail_msg("ip(%s).isInRange(ip(%s)) want %d", t[i].a, t[i].r, t[i].in);
    }
}

static void test_ip_format(void **state)
{
    (void)state;
    assert_ip_text("127.0.0.1", "127.0.0.1/32");
    assert_ip_text("10.0.0.1/8", "10.0.0.1/8");
    assert_ip_text("ffee::11", "ffee::11/128");
    assert_ip_text("ffee::/64", "ffee::/64");
    assert_ip_text("::", "::/128");
    assert_ip_text("::1", "::1/128");
    assert_ip_text("0:0:1:0:0:1:0:0", "::1:0:0:1:0:0/128");     /* first of equal runs */
    assert_ip_text("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7/128");  /* single zero kept */
    assert_ip_text("ABCD:0DB8:0:0:0:0:0:1", "abcd:db8::1/128");
    assert_ip_text("::ffff:0102:0304", "::ffff:102:304/128");  /* not dotted: ip() refuses that */
}

/* ---------------------------------------------------------------- decimal */

static void test_decimal_values(void **state)
{
    (void)state;
    assert_int_equal(dec_ok("1.0"), 10000);
    assert_int_equal(dec_ok("-1.0"), -10000);
    assert_int_equal(dec_ok("123.456"), 1234560);
    assert_int_equal(dec_ok("0.1234"), 1234);
    assert_int_equal(dec_ok("1.05"), 10500);
    assert_int_equal(dec_ok("-0.5"), -5000);          /* sign of the text, even for -0.x */
    assert_int_equal(dec_ok("-0.0001"), -1);
    assert_int_equal(dec_ok("-0.0"), 0);
    assert_int_equal(dec_ok("00.000"), 0);
    assert_int_equal(dec_ok("0123.0"), 1230000);
    assert_int_equal(dec_ok("00000000000000000000000001.5"), 15000);
    assert_int_equal(dec_ok("922337203685477.5807"), INT64_MAX);
    assert_int_equal(dec_ok("-922337203685477.5808"), INT64_MIN);
    assert_true(dec_ok("1.23") < dec_ok("1.24"));
    assert_true(dec_ok("-1.24") < dec_ok("-1.23"));

    static const char *const bad[] = {
        "1", "1.", ".1", "-.1", "-.", "+1.0", "1.0.", "1.a", "--1.0", "1.-0", "1,0", "1.0 ",
        " 1.0", "1e3.0", "0.12345", "0.00000",                       /* > 4 fraction digits */
        "922337203685477.5808", "-922337203685477.5809", "-922337203685478.0",
        "1000000000000000.0", "99999999999999999999.0", "",
    };
    assert_all_rejected(cedar_decimal_parse, "decimal", bad, COUNT(bad));
}

static void test_decimal_format(void **state)
{
    (void)state;
    static const struct { int64_t v; const char *s; } t[] = {
        {0, "0.0"}, {10000, "1.0"}, {15000, "1.5"}, {10500, "1.05"}, {-5000, "-0.5"}, {-1, "-0.0001"},
        {1234560, "123.456"}, {INT64_MAX, "922337203685477.5807"}, {INT64_MIN, "-922337203685477.5808"},
    };
    char buf[CEDAR_DECIMAL_FORMAT_MAX];
    for (size_t i = 0; i < COUNT(t); i++) {
        cedar_decimal_format(t[i].v, buf);
        assert_string_equal(buf, t[i].s);
    }
}

/* ---------------------------------------------------------------- datetime */

static void test_datetime_formats(void **state)
{
    (void)state;
    assert_int_equal(dt_ok("2024-10-15"), INT64_C(1728950400000));
    assert_int_equal(dt_ok("2024-10-15T11:38:02Z"), INT64_C(1728992282000));
    assert_int_equal(dt_ok("2024-10-15T11:38:02.101Z"), INT64_C(1728992282101));
    /* local time minus the offset: 11:38:02.101+1134 is 00:04:02.101Z */
    assert_int_equal(dt_ok("2024-10-15T11:38:02.101+1134"), INT64_C(1728950642101));
    assert_int_equal(dt_ok("2024-10-15T11:38:02-1134"), INT64_C(1728992282000) + (11 * 3600 + 34 * 60) * 1000);
    assert_int_equal(dt_ok("2024-10-15T23:59:00+2359"), INT64_C(1728950400000));
    assert_int_equal(dt_ok("1970-01-01T00:00:00+0001"), -60000);
    assert_int_equal(dt_ok("2024-01-01T00:00:00.000+0000"), dt_ok("2024-01-01"));
}

static void test_datetime_calendar(void **state)
{
    (void)state;
    assert_int_equal(dt_ok("1970-01-01"), 0);
    assert_int_equal(dt_ok("1969-12-31T23:59:59.999Z"), -1);
    assert_int_equal(dt_ok("1969-12-31T23:59:59Z"), -1000);
    assert_int_equal(dt_ok("1900-03-01"), INT64_C(-2203891200000));
    assert_int_equal(dt_ok("2000-02-29"), INT64_C(951782400000));   /* /400: leap */
    assert_int_equal(dt_ok("0000-01-01"), INT64_C(-62167219200000));
    assert_int_equal(dt_ok("0000-02-29"), INT64_C(-62167219200000) + 59 * INT64_C(86400000));
    assert_int_equal(dt_ok("9999-12-31T23:59:59Z"), INT64_C(253402300799000));
    assert_int_equal(dt_ok("9999-12-31T23:59:59.999-2359"), INT64_C(253402300799999) + 86340000);
    assert_int_equal(dt_ok("0000-01-01T00:00:00+2359"), INT64_C(-62167219200000) - 86340000);
    assert_int_equal(dt_ok("2024-02-29"), dt_ok("2024-02-28") + 86400000);
    assert_int_equal(dt_ok("2024-03-01"), dt_ok("2024-02-29") + 86400000);

    static const char *const bad[] = {
        "2023-02-29", "1900-02-29", "2100-02-29", "2024-04-31", "2024-00-10", "2024-13-01",
        "2024-01-00", "2024-01-32", "2024-01-99",
        "2024-01-01T24:00:00Z", "2024-01-01T23:60:00Z", "2024-01-01T23:59:60Z",  /* no leap second */
        "2024-01-01T00:00:00+2400", "2024-01-01T00:00:00+0060", "2024-01-01T00:00:00-2400",
    };
    assert_all_rejected(cedar_datetime_parse, "datetime", bad, COUNT(bad));
}

static void test_datetime_syntax(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "a", "-", "-1", "11-12-13", "1111-1x-20", "2024-1-01", "10000-01-01", "-001-01-01",
        "2024-10-15Z", "2024-01-01T", "2024-01-01Ta", "2024-01-01T01:", "2024-01-01T01:02",
        "2024-01-01T01:02:0b", "2024-01-01T01::02:03", "2024-01-01T00:00:00",
        "2024-01-01T00:00:00T", "2024-01-01T00:00:00ZZ", "2024-01-01T11:38:02ZZ",
        "2024-01-01T00:00:00x001Z", "2024-01-01T00:00:00.001ZZ", "2024-01-01T00:00:00.1Z",
        "2024-01-01T00:00:00.0001Z", "2024-01-01t00:00:00Z", "2024-01-01T00:00:00z",
        "2024-01-01 00:00:00Z", "2024-01-01T00:00:00+01:00", "2024-01-01T00:00:00+010",
        "2024-01-01T00:00:00+01000", "2024-01-01T00:00:00.001+00", "2024-01-01T00:00:00\xe2\x9e\x95" "0000",
        "2024-01-01 ", " 2024-01-01",
    };
    assert_all_rejected(cedar_datetime_parse, "datetime", bad, COUNT(bad));
}

static void test_datetime_arithmetic(void **state)
{
    (void)state;
    int64_t r;
    assert_int_equal(cedar_datetime_offset(dt_ok("2024-10-15"), dur_ok("1d"), &r), 0);
    assert_int_equal(r, dt_ok("2024-10-16"));
    assert_int_equal(cedar_datetime_offset(INT64_MAX, 1, &r), -1);
    assert_int_equal(cedar_datetime_offset(INT64_MIN, -1, &r), -1);
    assert_int_equal(cedar_datetime_offset(INT64_MAX, INT64_MIN, &r), 0);
    assert_int_equal(r, -1);
    assert_int_equal(cedar_datetime_duration_since(dt_ok("2024-10-16"), dt_ok("2024-10-15"), &r), 0);
    assert_int_equal(r, 86400000);
    assert_int_equal(cedar_datetime_duration_since(0, dt_ok("2024-10-15"), &r), 0);
    assert_int_equal(r, -INT64_C(1728950400000));
    assert_int_equal(cedar_datetime_duration_since(INT64_MIN, 1, &r), -1);
    assert_int_equal(cedar_datetime_duration_since(INT64_MAX, -1, &r), -1);
    assert_int_equal(cedar_datetime_duration_since(-1, INT64_MAX, &r), 0);
    assert_int_equal(r, INT64_MIN);
}

static void test_datetime_date_time(void **state)
{
    (void)state;
    int64_t r;
    const int64_t day = 86400000;
    assert_int_equal(cedar_datetime_to_date(dt_ok("2024-10-15T11:38:02.101+1134"), &r), 0);
    assert_int_equal(r, dt_ok("2024-10-15"));
    assert_int_equal(cedar_datetime_to_time(dt_ok("2024-10-15T11:38:02.101+1134")), (4 * 60 + 2) * 1000 + 101);
    /* before 1970: floor, not truncation */
    assert_int_equal(cedar_datetime_to_date(-1, &r), 0);
    assert_int_equal(r, -day);
    assert_int_equal(cedar_datetime_to_time(-1), day - 1);
    assert_int_equal(cedar_datetime_to_date(-day, &r), 0);
    assert_int_equal(r, -day);
    assert_int_equal(cedar_datetime_to_time(-day), 0);
    assert_int_equal(cedar_datetime_to_date(dt_ok("1969-07-20T20:17:40Z"), &r), 0);
    assert_int_equal(r, dt_ok("1969-07-20"));
    /* edges of int64 */
    assert_int_equal(cedar_datetime_to_date(INT64_MAX, &r), 0);
    assert_int_equal(r, INT64_MAX / day * day);
    assert_int_equal(cedar_datetime_to_time(INT64_MAX), INT64_MAX % day);
    assert_int_equal(cedar_datetime_to_date(INT64_MIN, &r), -1);     /* floor leaves int64 */
    assert_int_equal(cedar_datetime_to_time(INT64_MIN), INT64_MIN % day + day);
    int64_t lowest_day = (INT64_MIN / day) * day;                     /* a multiple of a day */
    assert_int_equal(cedar_datetime_to_date(lowest_day, &r), 0);
    assert_int_equal(r, lowest_day);
    assert_int_equal(cedar_datetime_to_date(lowest_day - 1, &r), -1);
}

/* ---------------------------------------------------------------- duration */

static void test_duration_values(void **state)
{
    (void)state;
    assert_int_equal(dur_ok("0ms"), 0);
    assert_int_equal(dur_ok("-0ms"), 0);
    assert_int_equal(dur_ok("1d2h3m4s5ms"), (((int64_t)26 * 60 + 3) * 60 + 4) * 1000 + 5);
    assert_int_equal(dur_ok("-1d2h"), -INT64_C(26) * 3600000);      /* '-' negates every part */
    assert_int_equal(dur_ok("1m"), 60000);
    assert_int_equal(dur_ok("1ms"), 1);
    assert_int_equal(dur_ok("1m1ms"), 60001);
    assert_int_equal(dur_ok("1s1ms"), 1001);
    assert_int_equal(dur_ok("01d"), 86400000);
    assert_int_equal(dur_ok("90m"), 5400000);                        /* no carry limits */
    assert_int_equal(dur_ok("9223372036854775807ms"), INT64_MAX);
    assert_int_equal(dur_ok("-9223372036854775808ms"), INT64_MIN);
    assert_int_equal(dur_ok("106751991167d7h12m55s807ms"), INT64_MAX);
    assert_int_equal(dur_ok("-106751991167d7h12m55s808ms"), INT64_MIN);
    assert_int_equal(dur_ok("106751991167d"), INT64_C(106751991167) * 86400000);
}

static void test_duration_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "-", "0", "1", "-1", "d", "ms", "1D", "1H", " 1d", "1d ", "1 d", "+1d", "--1d",
        "1ms2s", "1s1m", "1h1d", "1h1h", "1ms1ms", "1m1m", "1d-2h", "1.5h", "1d2", "1mss",
        "9223372036854775808ms", "-9223372036854775809ms", "18446744073709551616ms",
        "99999999999999999999999d", "106751991168d", "106751991167d7h12m55s808ms",
        "-106751991167d7h12m55s809ms",
    };
    assert_all_rejected(cedar_duration_parse, "duration", bad, COUNT(bad));
}

static void test_duration_units(void **state)
{
    (void)state;
    int64_t d = dur_ok("1d23h59m59s999ms");
    assert_int_equal(cedar_duration_to_days(d), 1);
    assert_int_equal(cedar_duration_to_hours(d), 47);
    assert_int_equal(cedar_duration_to_minutes(d), 47 * 60 + 59);
    assert_int_equal(cedar_duration_to_seconds(d), (47 * 60 + 59) * 60 + 59);
    assert_int_equal(cedar_duration_to_milliseconds(d), d);
    d = -d;   /* truncation towards zero, not floor */
    assert_int_equal(cedar_duration_to_days(d), -1);
    assert_int_equal(cedar_duration_to_hours(d), -47);
    assert_int_equal(cedar_duration_to_seconds(dur_ok("-1ms")), 0);
    assert_int_equal(cedar_duration_to_days(INT64_MIN), INT64_C(-106751991167));
    assert_int_equal(cedar_duration_to_seconds(INT64_MAX), INT64_C(9223372036854775));
}

static void test_datetime_duration_format(void **state)
{
    (void)state;
    char buf[CEDAR_DATETIME_FORMAT_MAX];
    cedar_datetime_format(dt_ok("2024-10-15T11:38:02.101+1134"), buf);
    assert_string_equal(buf, "2024-10-15T00:04:02.101Z");
    cedar_datetime_format(-1, buf);
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
    cedar_datetime_format(dt_ok("0000-01-01"), buf);
    assert_string_equal(buf, "0000-01-01T00:00:00.000Z");
    cedar_datetime_format(dt_ok("0000-01-01") - 1, buf);
    assert_string_equal(buf, "-1-12-31T23:59:59.999Z");
    cedar_datetime_format(INT64_MIN, buf);   /* must not overflow while splitting */
    assert_string_equal(buf, "-292275055-05-16T16:47:04.192Z");
    cedar_datetime_format(INT64_MAX, buf);
    assert_string_equal(buf, "+292278994-08-17T07:12:55.807Z");

    char dbuf[CEDAR_DURATION_FORMAT_MAX];
    cedar_duration_format(dur_ok("-1d2h"), dbuf);
    assert_string_equal(dbuf, "-93600000ms");
    cedar_duration_format(INT64_MIN, dbuf);
    assert_string_equal(dbuf, "-9223372036854775808ms");
}

/* ---------------------------------------------------------------- properties */

/* Deterministic xorshift64*, so a failure reproduces. */
static uint64_t rng_state = UINT64_C(0x9e3779b97f4a7c15);
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * UINT64_C(2685821657736338717);
}

#define ROUNDS 20000

static void test_roundtrip_ip(void **state)
{
    (void)state;
    for (int i = 0; i < ROUNDS; i++) {
        cedar_ipaddr a = {0}, b;
        a.v6 = rnd() & 1;
        int len = a.v6 ? 16 : 4;
        uint64_t bits = rnd(), zeros = rnd();
        for (int k = 0; k < len; k++) a.addr[k] = (zeros >> (k / 2)) & 1 ? 0 : (uint8_t)(bits >> (k * 4));
        a.prefix = (uint8_t)(rnd() % (a.v6 ? 129 : 33));
        char buf[CEDAR_IP_FORMAT_MAX];
        cedar_ip_format(&a, buf);
        if (ip_parse(buf, &b) != 0 || !cedar_ip_equal(&a, &b)) fail_msg("ip round trip failed for %s", buf);
        /* isInRange is reflexive and every address is within its /0 */
        assert_true(cedar_ip_in_range(&a, &a));
        cedar_ipaddr all = a;
        all.prefix = 0;
        assert_true(cedar_ip_in_range(&a, &all));
    }
}

/* format(v) must parse back to v; returns the text for further checks. */
typedef void (*format_i64_fn)(int64_t, char *);
static void assert_i64_roundtrip(format_i64_fn format, parse_i64_fn parse, const char *what,
                                 int64_t v, char buf[64])
{
    int64_t w;
    format(v, buf);
    if (parse(buf, strlen(buf), &w) != 0 || w != v)
        fail_msg("%s round trip failed for %lld (%s)", what, (long long)v, buf);
}

/* Random int64 of every magnitude: shifting spreads values over all bit lengths. */
static int64_t rnd_i64(void)
{
    return (int64_t)rnd() >> (rnd() % 64);
}

static void test_roundtrip_decimal(void **state)
{
    (void)state;
    char buf[64];
    for (int i = 0; i < ROUNDS; i++)
        assert_i64_roundtrip(cedar_decimal_format, cedar_decimal_parse, "decimal", rnd_i64(), buf);
}

static void test_roundtrip_datetime(void **state)
{
    (void)state;
    const int64_t lo = INT64_C(-62167219200000), hi = INT64_C(253402300799999);   /* years 0..9999 */
    char buf[64];
    for (int i = 0; i < ROUNDS; i++) {
        int64_t v = lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1)), date;
        assert_i64_roundtrip(cedar_datetime_format, cedar_datetime_parse, "datetime", v, buf);
        /* toDate + toTime reassemble the instant; the date part parses as that date */
        assert_int_equal(cedar_datetime_to_date(v, &date), 0);
        assert_int_equal(date + cedar_datetime_to_time(v), v);
        buf[10] = '\0';
        assert_int_equal(dt_ok(buf), date);
    }
}

static void test_roundtrip_duration(void **state)
{
    (void)state;
    char buf[64];
    for (int i = 0; i < ROUNDS; i++) {
        int64_t v = rnd_i64();
        assert_i64_roundtrip(cedar_duration_format, cedar_duration_parse, "duration", v, buf);
        /* the same value written with every unit */
        uint64_t mag = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
        snprintf(buf, 64, "%s%llud%lluh%llum%llus%llums", v < 0 ? "-" : "",
                 (unsigned long long)(mag / 86400000), (unsigned long long)(mag / 3600000 % 24),
                 (unsigned long long)(mag / 60000 % 60), (unsigned long long)(mag / 1000 % 60),
                 (unsigned long long)(mag % 1000));
        assert_int_equal(dur_ok(buf), v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ip_v4_forms),
        cmocka_unit_test(test_ip_v6_forms),
        cmocka_unit_test(test_ip_bytes_not_text),
        cmocka_unit_test(test_ip_equality),
        cmocka_unit_test(test_ip_loopback_multicast),
        cmocka_unit_test(test_ip_in_range),
        cmocka_unit_test(test_ip_format),
        cmocka_unit_test(test_decimal_values),
        cmocka_unit_test(test_decimal_format),
        cmocka_unit_test(test_datetime_formats),
        cmocka_unit_test(test_datetime_calendar),
        cmocka_unit_test(test_datetime_syntax),
        cmocka_unit_test(test_datetime_arithmetic),
        cmocka_unit_test(test_datetime_date_time),
        cmocka_unit_test(test_duration_values),
        cmocka_unit_test(test_duration_rejects),
        cmocka_unit_test(test_duration_units),
        cmocka_unit_test(test_datetime_duration_format),
        cmocka_unit_test(test_roundtrip_ip),
        cmocka_unit_test(test_roundtrip_decimal),
        cmocka_unit_test(test_roundtrip_datetime),
        cmocka_unit_test(test_roundtrip_duration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
