/*
 * http.c — the Streamable HTTP transport (in progress: not available yet).
 */
#include "upstream/upstream_int.h"

tg_upconn *tg_upstream_http_new(uv_loop_t *loop, const tg_upstream_conf *conf,
                                const tg_upconn_cbs *cbs, void *user, tg_error *err)
{
    tg_error_set(err, "upstream %s: the HTTP transport is not available yet", conf->name);
    return NULL;
}
