/* wasm_driver.c — runs the Cedar extension functions (src/cedar/ext/) on inputs read
 * from stdin and prints what they computed, for wasm_diff.mjs, which asks cedar-wasm
 * (the reference implementation) the same questions and compares.
 *
 * Input: one case per line, "kind<TAB>arg[<TAB>arg2]", kind one of ip, range,
 * decimal, datetime, duration, offset. Output: one JSON object per input line, with
 * "ok": false when the C code rejects the input, otherwise the values the script
 * checks. Long values are printed as JSON strings ("123ms" or "123") because a
 * JavaScript number cannot hold every int64.
 */
#include "cedar/ext/cedar_ext.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static const char *jbool(int b) { return b ? "true" : "false"; }

/* Every group written out, so Cedar can parse it whatever the display looks like. */
static void ip_full_text(const cedar_ipaddr *a, char out[64])
{
    if (!a->v6) {
        snprintf(out, 64, "%u.%u.%u.%u/%u", a->addr[0], a->addr[1], a->addr[2], a->addr[3], a->prefix);
        return;
    }
    int k = 0;
    for (int i = 0; i < 8; i++) k += snprintf(out + k, 64 - (size_t)k, "%s%x", i ? ":" : "", a->addr[2 * i] << 8 | a->addr[2 * i + 1]);
    snprintf(out + k, 64 - (size_t)k, "/%u", a->prefix);
}

/* toDate and toTime of a datetime, or "date": null when toDate overflows. */
static void put_date_time(int64_t v)
{
    int64_t d;
    if (cedar_datetime_to_date(v, &d) != 0) printf(",\"date\":null");
    else printf(",\"date\":\"%lldms\"", (long long)d);
    printf(",\"time\":\"%lldms\"", (long long)cedar_datetime_to_time(v));
}

static void run_case(const char *kind, const char *a, const char *b)
{
    char buf[64];
    int64_t v;
    printf("{\"kind\":");
    put_json_string(kind);
    printf(",\"s\":");
    put_json_string(a);
    if (b) {
        printf(",\"b\":");
        put_json_string(b);
    }
    if (strcmp(kind, "ip") == 0) {
        cedar_ipaddr ip;
        if (cedar_ip_parse(a, strlen(a), &ip) != 0) goto rejected;
        ip_full_text(&ip, buf);
        printf(",\"ok\":true,\"c\":");
        put_json_string(buf);
        cedar_ip_format(&ip, buf);
        printf(",\"fmt\":");
        put_json_string(buf);
        printf(",\"lo\":%s,\"mc\":%s,\"v4\":%s", jbool(cedar_ip_is_loopback(&ip)),
               jbool(cedar_ip_is_multicast(&ip)), jbool(cedar_ip_is_v4(&ip)));
    } else if (strcmp(kind, "range") == 0 && b) {
        cedar_ipaddr x, r;
        if (cedar_ip_parse(a, strlen(a), &x) != 0 || cedar_ip_parse(b, strlen(b), &r) != 0) goto rejected;
        printf(",\"ok\":true,\"r\":%s,\"eq\":%s", jbool(cedar_ip_in_range(&x, &r)), jbool(cedar_ip_equal(&x, &r)));
    } else if (strcmp(kind, "decimal") == 0) {
        if (cedar_decimal_parse(a, strlen(a), &v) != 0) goto rejected;
        cedar_decimal_format(v, buf);
        printf(",\"ok\":true,\"c\":");
        put_json_string(buf);
        printf(",\"neg\":%s", jbool(v < 0));
    } else if (strcmp(kind, "datetime") == 0) {
        if (cedar_datetime_parse(a, strlen(a), &v) != 0) goto rejected;
        printf(",\"ok\":true,\"ms\":\"%lldms\"", (long long)v);
        put_date_time(v);
    } else if (strcmp(kind, "duration") == 0) {
        if (cedar_duration_parse(a, strlen(a), &v) != 0) goto rejected;
        printf(",\"ok\":true,\"ms\":\"%lld\",\"days\":\"%lld\",\"hours\":\"%lld\",\"minutes\":\"%lld\",\"seconds\":\"%lld\"",
               (long long)v, (long long)cedar_duration_to_days(v), (long long)cedar_duration_to_hours(v),
               (long long)cedar_duration_to_minutes(v), (long long)cedar_duration_to_seconds(v));
    } else if (strcmp(kind, "offset") == 0 && b) {
        /* a and b are datetime and duration in ms; the script builds both in Cedar */
        if (cedar_datetime_offset(strtoll(a, NULL, 10), strtoll(b, NULL, 10), &v) != 0) goto rejected;
        printf(",\"ok\":true,\"r\":\"%lldms\"", (long long)v);
        put_date_time(v);
    } else {
        printf(",\"unknown\":true");
    }
    printf("}\n");
    return;
rejected:
    printf(",\"ok\":false}\n");
}

int main(void)
{
    char line[4096];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = '\0';
        char *a = strchr(line, '\t');
        if (!a) continue;
        *a++ = '\0';
        char *b = strchr(a, '\t');
        if (b) *b++ = '\0';
        run_case(line, a, b);
    }
    return 0;
}
