/*
 * fake_approvals.c — a stand-in for the approvals service (src/approvals/tg_approvals.h)
 * with scripted answers, so test_approvals_http.c can check every HTTP rule of the
 * approvers' API (routing, authentication order, bodies, queries, status passthrough,
 * abort on disconnect) without a store or a policy. Only the functions src/admin calls
 * are here; what they saw is recorded in fake_seen for the test to assert on.
 *
 * Credentials it knows: "Bearer tga_bob" and "Bearer tga_alice" (approver keys,
 * answered synchronously), "Bearer tga_slow" (bob, answered after 200 ms on a loop timer,
 * like a JWKS fetch), "Bearer agent_token" (403: an agent). Anything else is 401.
 * Requests: apr_1 is pending (alice's agent asked), apr_done is decided (409), others 404.
 */
#include <stdlib.h>
#include <string.h>

#include "approvals/tg_approvals.h"
#include "fake_approvals.h"

struct tg_approvals {
    int unused;
};

struct tg_approver_pending {
    uv_timer_t timer;
    tg_approver_cb cb;
    void *ud;
    tg_arena *arena;
};

static tg_approvals the_fake;
uv_loop_t *fake_loop;
fake_record fake_seen;

tg_approvals *fake_approvals(void)
{
    return &the_fake;
}

const char *tg_approval_state_name(tg_approval_state s)
{
    static const char *const names[] = {"?", "pending", "approved", "denied", "expired", "used"};
    return s >= TG_APPROVAL_PENDING && s <= TG_APPROVAL_USED ? names[s] : "?";
}

static tg_approver *approver(tg_arena *a, const char *user)
{
    tg_approver *w = tg_arena_calloc(a, 1, sizeof *w);
    w->user = tg_arena_strdup(a, user);
    w->method = "approver_key";
    w->credential_id = "key:0000";
    return w;
}

static void slow_done(uv_timer_t *t)
{
    tg_approver_pending *p = t->data;
    p->cb(p->ud, 0, approver(p->arena, "bob"), NULL);
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

tg_approver_pending *tg_approvals_authenticate(tg_approvals *ap, const char *authorization,
                                               const char *client_ip, tg_arena *a,
                                               tg_approver_cb cb, void *ud)
{
    (void)ap;
    (void)client_ip;
    fake_seen.authentications++;
    if (authorization && strcmp(authorization, "Bearer tga_slow") == 0) {
        tg_approver_pending *p = calloc(1, sizeof *p);
        if (!p) abort();
        *p = (tg_approver_pending){.cb = cb, .ud = ud, .arena = a};
        uv_timer_init(fake_loop, &p->timer);
        p->timer.data = p;
        uv_timer_start(&p->timer, slow_done, 200, 0);
        return p;
    }
    if (authorization && strcmp(authorization, "Bearer tga_bob") == 0)
        cb(ud, 0, approver(a, "bob"), NULL);
    else if (authorization && strcmp(authorization, "Bearer tga_alice") == 0)
        cb(ud, 0, approver(a, "alice"), NULL);
    else if (authorization && strcmp(authorization, "Bearer agent_token") == 0)
        cb(ud, 403, NULL, "agents cannot approve");
    else
        cb(ud, 401, NULL, "unknown approver credential");
    return NULL;
}

void tg_approvals_authenticate_cancel(tg_approver_pending *p)
{
    if (!p) return;
    fake_seen.cancels++;
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, (uv_close_cb)free);
}

static json_t *view(const char *id, const char *state)
{
    return json_pack("{s:s,s:s,s:s,s:{s:s,s:s}}", "id", id, "state", state, "tool",
                     "bitbucket_merge_pull_request", "requester", "delegator", "alice",
                     "agent", "claude");
}

json_t *tg_approvals_list(tg_approvals *ap, const char *state, size_t limit, tg_error *err)
{
    (void)ap;
    fake_seen.lists++;
    snprintf(fake_seen.state, sizeof fake_seen.state, "%s", state ? state : "(all)");
    fake_seen.limit = limit;
    if (fake_seen.fail_store) {
        tg_error_set(err, "the store is down");
        return NULL;
    }
    return json_pack("[o]", view("apr_1", "pending"));
}

json_t *tg_approvals_get(tg_approvals *ap, const char *id, tg_error *err)
{
    (void)ap;
    if (strcmp(id, "apr_1") == 0) return view(id, "pending");
    err->msg[0] = '\0';
    return NULL;
}

int tg_approvals_decide(tg_approvals *ap, const char *id, const tg_approver *who,
                        bool approve, const char *comment, json_t **out, int *status,
                        const char **code, tg_error *err)
{
    (void)ap;
    fake_seen.decisions++;
    fake_seen.approve = approve;
    snprintf(fake_seen.comment, sizeof fake_seen.comment, "%s", comment ? comment : "(none)");
    if (strcmp(id, "apr_done") == 0) {
        *status = 409;
        *code = "NOT_PENDING";
        return tg_error_set(err, "approval request %s is already approved", id);
    }
    if (strcmp(id, "apr_1") != 0) {
        *status = 404;
        *code = "NOT_FOUND";
        return tg_error_set(err, "no approval request %s", id);
    }
    if (strcmp(who->user, "alice") == 0) {
        *status = 403;
        *code = "SELF_APPROVAL_FORBIDDEN";
        return tg_error_set(err, "alice asked for this call and cannot decide it");
    }
    *out = view(id, approve ? "approved" : "denied");
    json_object_set_new(*out, "approver", json_string(who->user));
    return 0;
}
