/*
 * inbox.c — serves the web inbox (GET /inbox, /inbox/app.js, /inbox/style.css) from the
 * bytes embed.py compiled into the binary (inbox_assets.c). The pages hold no data and
 * need no credential: the script asks the approvals API with the approver's credential,
 * which the browser keeps in sessionStorage. Every answer forbids caching, framing,
 * sniffing, referrers and any script or style not served from here (no inline script:
 * the CSP allows 'self' only), because the page handles approver credentials.
 */
#include <string.h>

#include "admin/admin_int.h"

#define CSP "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

int tg_admin_inbox_route(tg_http_req *req)
{
    for (size_t i = 0; i < tg_admin_nassets; i++) {
        const tg_admin_asset *f = &tg_admin_assets[i];
        if (strcmp(req->path, f->path) != 0) continue;
        if (req->method != TG_HTTP_GET) {
            static const tg_http_header allow = {"Allow", 5, "GET", 3};
            tg_http_respond(req, 405, &allow, 1, NULL, 0);
            return 1;
        }
        const tg_http_header h[] = {
            {"Content-Type", 12, f->type, strlen(f->type)},
            {"Cache-Control", 13, "no-store", 8},
            {"Content-Security-Policy", 23, CSP, sizeof CSP - 1},
            {"X-Content-Type-Options", 22, "nosniff", 7},
            {"X-Frame-Options", 15, "DENY", 4},
            {"Referrer-Policy", 15, "no-referrer", 11},
        };
        tg_http_respond(req, 200, h, sizeof h / sizeof h[0], (const char *)f->data, f->len);
        return 1;
    }
    return 0;
}
