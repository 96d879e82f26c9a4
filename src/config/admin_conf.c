/*
 * admin_conf.c — the `admin:` section: where the admin listener (src/admin: health,
 * readiness, reload) listens and how it is protected. Read by the loader (load.c) into
 * tg_config.admin; docs/configuration.md "admin", docs/operations.md.
 *
 * The admin listener can change what the gateway enforces (POST /reload), so it is
 * loopback-only unless the file says `allow_remote: true`, and a remote one must have a
 * token: a listener reachable from the network without one is refused at load time.
 */
#include <string.h>

#include "config/config_int.h"
#include "config/yaml_int.h"

typedef struct admin_build {
    tg_admin_conf *c;
    at listen;
} admin_build;

static int admin_listen(loader *L, const at *w, void *obj)
{
    admin_build *b = obj;
    const char *s, *why;
    if (tg_cy_string_value(L, w, &s) < 0)
        return -1;
    if (tg_config_parse_listen(s, L->a, &b->c->listen_host, &b->c->listen_port, &why) < 0)
        return tg_cy_fail(L, w, "%s, found \"%s\"", why, tg_cy_raw_text(L, w));
    b->listen = *w;
    return 0;
}

static int admin_token(loader *L, const at *w, void *obj)
{
    admin_build *b = obj;
    return tg_cy_nonempty_string(L, w, &b->c->token);
}

static int admin_remote(loader *L, const at *w, void *obj)
{
    admin_build *b = obj;
    return tg_cy_bool(L, w, &b->c->allow_remote);
}

static const field admin_fields[] = {
    {"listen", F_CUSTOM, 0, admin_listen, 0},
    {"token", F_CUSTOM, 0, admin_token, 0},
    {"allow_remote", F_CUSTOM, 0, admin_remote, 0},
};

int tg_config_is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0;
}

int tg_cy_read_admin(loader *L, const at *w, void *obj)
{
    tg_config *cfg = obj;
    admin_build b = {.c = &cfg->admin};
    cfg->admin.where = tg_cy_position(L, w);
    cfg->admin.listen_host = "127.0.0.1";
    cfg->admin.listen_port = 9090;
    if (tg_cy_walk_map(L, w, admin_fields, sizeof admin_fields / sizeof admin_fields[0], &b, 0) < 0)
        return -1;
    if (tg_config_is_loopback(cfg->admin.listen_host))
        return 0;
    const at *here = b.listen.node ? &b.listen : w;
    if (!cfg->admin.allow_remote)
        return tg_cy_fail(L, here, "the admin listener can reload the policy: it listens on "
                          "a loopback address unless `allow_remote: true` is set");
    if (!cfg->admin.token)
        return tg_cy_fail(L, here, "a remote admin listener needs `token:` (e.g. "
                          "token: ${TOOLGATE_ADMIN_TOKEN})");
    return 0;
}
