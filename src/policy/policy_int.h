/*
 * policy_int.h — private to src/policy: time zones for change windows (tz.c) and the
 * pieces the decision code (policy.c) shares with the command-line runners (cli.c).
 */
#ifndef TG_POLICY_INT_H
#define TG_POLICY_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "policy/tg_policy.h"

/* Same directory the configuration loader checks zone names against. */
#define TG_POLICY_ZONEINFO "/usr/share/zoneinfo"

/* An immutable zone: UTC offset (seconds east) at any instant (Unix seconds). */
typedef struct tg_tz tg_tz;
tg_tz  *tg_tz_load(const char *name, tg_error *err);   /* "UTC" or an IANA name */
void    tg_tz_free(tg_tz *z);
int32_t tg_tz_offset(const tg_tz *z, int64_t t);
int64_t tg_tz_floor_div(int64_t a, int64_t b);

/* RFC 3339 date-time ("2026-03-02T09:30:00Z", "…+01:00", fractions to ms) → Unix ms. */
int tg_policy_parse_time(const char *s, int64_t *ms);

/* Is the instant (Unix ms) inside window w, whose zone is z? */
bool tg_policy_window_contains(const tg_change_window *w, const tg_tz *z, int64_t now_ms);

#endif /* TG_POLICY_INT_H */
