/*
 * fake_approvals.h — the test double of the approvals service used by
 * test_approvals_http.c (fake_approvals.c says what it answers).
 */
#ifndef FAKE_APPROVALS_H
#define FAKE_APPROVALS_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct tg_approvals;

/* What the fake was asked. Written on the loop thread while a request is served; the
 * test reads it after the answer arrived (the socket orders the two). */
typedef struct fake_record {
    int authentications, cancels, lists, decisions;
    char state[16];          /* the last list's state, "(all)" for none */
    size_t limit;            /* the last list's limit */
    bool approve;            /* the last decision */
    char comment[2100];      /* the last decision's comment, "(none)" without one */
    bool fail_store;         /* set by the test: list fails like a broken store */
} fake_record;

extern uv_loop_t *fake_loop;   /* set by the test: the slow credential's timer runs here */
extern fake_record fake_seen;

struct tg_approvals *fake_approvals(void);

#endif /* FAKE_APPROVALS_H */
