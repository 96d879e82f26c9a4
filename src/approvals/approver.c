/*
 * approver.c — who is approving (tg_approvals_authenticate): the admin listener hands us
 * the Authorization header of every approvals API request; we answer with a tg_approver
 * (a Cedar User and its extra groups) or a refusal.
 *
 * Two credentials, checked in this order:
 *   - "Bearer tga_…": an approver key. Its SHA-256 is compared in constant time against
 *     EVERY configured key_sha256, without stopping at a match, so the time taken says
 *     nothing about which key (or how much of one) matched. The key itself is never kept.
 *   - any other bearer token, only with approvals.approvers.oauth: an OAuth access token
 *     checked by the gateway's authenticator (same issuers, audience and cache as MCP
 *     clients). The approver is the token's human (delegator). A token with an act chain
 *     is an agent acting for a human and is refused: agents never approve.
 * Credentials are never logged or echoed; refusals carry a short reason for the client.
 */
#include "approvals/approvals_int.h"

#include <stdlib.h>
#include <string.h>

#define KEY_PREFIX "tga_"

struct tg_approver_pending {
    tg_approver_cb cb;
    void *ud;
    tg_arena *arena;
    const char *client_ip;
    tg_auth_pending *auth;     /* the OAuth check in flight, or NULL */
    int in_call;               /* inside tg_auth_authenticate: its cb may run synchronously */
    int done;
};

/* An approver key: index of the matching configured key, or -1. */
static int match_key(const tg_approvals_conf *c, const char *token, size_t len)
{
    unsigned char sha[32];
    int found = -1;
    tg_sha256(token, len, NULL, 0, sha);
    for (size_t i = 0; i < c->nkeys; i++) {
        int eq = tg_ct_equal(sha, sizeof sha, c->keys[i].sha256, 32);
        found = eq && found < 0 ? (int)i : found;   /* no early exit */
    }
    explicit_bzero(sha, sizeof sha);
    return found;
}

static void oauth_done(const tg_auth_result *res, void *user)
{
    tg_approver_pending *p = user;
    const tg_identity *id = res->identity;
    p->done = 1;
    p->auth = NULL;
    if (!id) {
        tg_log_info(AP_LOG, "approver authentication refused: %s",
                    res->log_reason ? res->log_reason : "invalid credentials");
        p->cb(p->ud, res->status ? res->status : 401, NULL,
              res->client_message ? res->client_message : "invalid credentials");
    } else if (id->n_act > 0) {
        tg_log_info(AP_LOG, "approver refused: token of agent %s acting for %s",
                    id->agent ? id->agent : "?", id->delegator ? id->delegator : "?");
        p->cb(p->ud, 403, NULL, "agents cannot approve: use a token issued to you, not to an "
                                "agent acting for you");
    } else if (!id->delegator || !*id->delegator) {
        p->cb(p->ud, 403, NULL, "the token names no user");
    } else {
        tg_approver who = {
            .user = id->delegator,
            .groups = id->groups,
            .ngroups = id->n_groups,
            .method = "oauth",
            .credential_id = id->credential_id,
            .client_ip = id->client_ip ? id->client_ip : p->client_ip,
        };
        p->cb(p->ud, 0, &who, NULL);
    }
    if (!p->in_call)
        free(p);
}

tg_approver_pending *tg_approvals_authenticate(tg_approvals *ap, const char *authorization,
                                               const char *client_ip, tg_arena *a,
                                               tg_approver_cb cb, void *ud)
{
    const tg_approvals_conf *c = ap_conf(ap);
    size_t n = authorization ? strlen(authorization) : 0;
    if (n < 7 || !tg_strcaseeq(authorization, 7, "bearer ")) {
        cb(ud, 401, NULL, "approver credentials required (Authorization: Bearer tga_… or an "
                          "OAuth access token)");
        return NULL;
    }
    const char *token = authorization + 7;
    size_t tlen = n - 7;
    if (tlen > strlen(KEY_PREFIX) && strncmp(token, KEY_PREFIX, strlen(KEY_PREFIX)) == 0) {
        int k = match_key(c, token, tlen);
        if (k < 0) {
            tg_log_info(AP_LOG, "approver authentication refused: unknown approver key");
            cb(ud, 401, NULL, "invalid approver key");
            return NULL;
        }
        const tg_approver_key *key = &c->keys[k];
        char hex[65];
        tg_sha256_hex(token, tlen, hex);
        tg_approver who = {
            .user = tg_arena_strdup(a, key->user),
            .groups = tg_arena_calloc(a, key->ngroups + 1, sizeof(char *)),
            .ngroups = key->ngroups,
            .method = "approver_key",
            .credential_id = tg_arena_sprintf(a, "key:%.12s", hex),
            .client_ip = client_ip ? tg_arena_strdup(a, client_ip) : NULL,
        };
        for (size_t i = 0; i < key->ngroups; i++)
            who.groups[i] = tg_arena_strdup(a, key->groups[i]);
        cb(ud, 0, &who, NULL);
        return NULL;
    }
    tg_auth *auth = ap_auth(ap);
    if (!c->oauth_approvers || !auth) {
        cb(ud, 401, NULL, "invalid approver credentials (this gateway accepts approver keys "
                          "tga_… only)");
        return NULL;
    }
    tg_approver_pending *p = calloc(1, sizeof *p);
    if (!p)
        abort();
    *p = (tg_approver_pending){.cb = cb, .ud = ud, .arena = a, .client_ip = client_ip,
                               .in_call = 1};
    tg_auth_input in = {.authorization = authorization, .peer_ip = client_ip};
    tg_auth_pending *h = tg_auth_authenticate(auth, &in, a, oauth_done, p);
    p->in_call = 0;
    if (p->done) {
        free(p);
        return NULL;
    }
    p->auth = h;
    return p;
}

void tg_approvals_authenticate_cancel(tg_approver_pending *p)
{
    if (!p)
        return;
    if (p->auth)
        tg_auth_cancel(p->auth);
    free(p);
}
