/*
 * harness.h — for the tests of src/admin (test_admin.c: the operator routes;
 * test_approvals_http.c: the approvers' routes against a scripted service;
 * test_approvals_live.c: against the real one): an admin listener on 127.0.0.1:0 whose
 * loop runs on a thread, and a raw HTTP/1.1 client for it.
 */
#ifndef ADMIN_HARNESS_H
#define ADMIN_HARNESS_H

#include <uv.h>

#include "admin/tg_admin.h"

#define HARNESS_TOKEN "admin-t0ken"

/* Starts a listener with admin.token HARNESS_TOKEN and this approvals service on `loop`
 * (initialised by the caller, who may have put more on it) and runs the loop on a
 * thread. harness_stop closes the listener — and runs on_stop(arg) on the loop thread,
 * when given, to stop what else keeps the loop alive —, joins the thread and frees the
 * listener; the caller then closes and frees the rest. */
void harness_start(uv_loop_t *loop, struct tg_approvals *approvals,
                   void (*on_stop)(void *arg), void *arg);
/* The same with the caller's ops (reload, ready, approvals). */
void harness_start_ops(uv_loop_t *loop, const tg_admin_ops *ops, void (*on_stop)(void *arg),
                       void *arg);
void harness_stop(void);
/* After harness_stop and closing what else was on it: runs the loop until every handle
 * is closed and checks that it then closes cleanly (nothing leaked onto it). */
void harness_close_loop(uv_loop_t *loop);

/* A new connection, SO_RCVTIMEO 5 s. */
int harness_dial(void);
/* Writes one request (Content-Length from body, Connection: close); headers are complete
 * lines ("Name: v\r\n") or NULL. */
void harness_send(int fd, const char *method, const char *path, const char *headers,
                  const char *body);
/* One request on a new connection; the whole response back (caller frees). */
char *harness_ask(const char *method, const char *path, const char *headers, const char *body);

int harness_status(const char *resp);
const char *harness_body(const char *resp);

/* Asserts the status and, when code is given, the JSON error code of the answer. */
void harness_expect(const char *method, const char *path, const char *headers,
                    const char *body, int status, const char *code);

#endif /* ADMIN_HARNESS_H */
