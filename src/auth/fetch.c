/*
 * fetch.c — the authenticator's outgoing HTTP: an issuer's keys (optional discovery,
 * RFC 8414 / OpenID Connect metadata, then the JWKS document) and RFC 7662 token
 * introspection (a form POST with HTTP Basic client authentication), with blocking
 * libcurl easy transfers.
 *
 * auth_fetch_run and auth_introspect_run are called from uv_queue_work (a libuv pool
 * thread), never on the loop: key fetches are rare (start-up, unknown kid, hourly
 * refresh) and introspections happen once per opaque token (then cached), so a
 * thread-pool hop is simpler than another curl multi. They touch nothing shared: their
 * request struct is owned by the worker until the after-work callback runs on the loop.
 *
 * SSRF guards: only configured URLs are ever contacted (a token cannot name a URL —
 * jku/x5u are refused in jose.c); https only, except http to literal loopback addresses
 * (tests run a local issuer); redirects are not followed; size and time are bounded.
 * curl_global_init is the upstream module's job (tg_upstream_global_init).
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <curl/curl.h>

#include "auth/auth_int.h"

static int host_is_loopback(const char *host)
{
    struct in_addr v4;
    if (inet_pton(AF_INET, host, &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    return strcmp(host, "[::1]") == 0;
}

/* 0 ok: *loopback tells whether the URL is plain http to a loopback address. */
static int url_classify(const char *url, int *loopback, tg_error *err)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int rc = -1;
    if (!u) abort();
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        tg_error_set(err, "\"%s\" is not an absolute URL", url);
    } else if (strcmp(scheme, "https") == 0) {
        *loopback = 0;
        rc = 0;
    } else if (strcmp(scheme, "http") == 0 && host_is_loopback(host)) {
        *loopback = 1;
        rc = 0;
    } else {
        tg_error_set(err, "\"%s\": keys are fetched over https only (plain http only from "
                     "127.0.0.0/8 or [::1])", url);
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

int auth_url_check(const char *url, tg_error *err)
{
    int loopback;
    return url_classify(url, &loopback, err);
}

char *auth_well_known_url(const char *base, const char *name)
{
    /* RFC 8414 §3 / RFC 9728 §3: the well-known segment goes between the authority and
     * the path: https://h/tenant → https://h/.well-known/<name>/tenant. */
    const char *auth = strstr(base, "://");
    auth = auth ? auth + 3 : base;
    const char *path = strchr(auth, '/');
    size_t alen = path ? (size_t)(path - base) : strlen(base);
    const char *rest = path ? path : "";
    size_t rlen = strlen(rest);
    if (rlen > 0 && rest[rlen - 1] == '/') rlen--;  /* "https://h/" has no path */
    tg_buf b = TG_BUF_INIT;
    tg_buf_append(&b, base, alen);
    tg_buf_printf(&b, "/.well-known/%s", name);
    tg_buf_append(&b, rest, rlen);
    return tg_buf_steal(&b);
}

typedef struct sink {
    tg_buf *out;
    size_t max;
    int too_big;
} sink;

static size_t on_data(char *p, size_t size, size_t n, void *user)
{
    sink *s = user;
    if (s->out->len + n > s->max) {
        s->too_big = 1;
        return 0;  /* aborts the transfer */
    }
    tg_buf_append(s->out, p, n);
    return n;
}

/* Optional parts of a request: a form body makes it a POST, user/password add HTTP Basic
 * authentication (both already form-urlencoded, RFC 6749 §2.3.1). */
typedef struct http_extra {
    const char *form;
    const char *user, *password;
} http_extra;

static int http_request(const char *url, const http_extra *x, int64_t timeout_ms, size_t max,
                        tg_buf *out, tg_error *err)
{
    int loopback;
    if (url_classify(url, &loopback, err) != 0) return -1;
    CURL *e = curl_easy_init();
    if (!e) return tg_error_set(err, "curl_easy_init failed");
    char ebuf[CURL_ERROR_SIZE] = "";
    sink s = {out, max, 0};
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: application/json");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, loopback ? "http" : "https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);  /* we are on a worker thread */
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "toolgate/" TG_VERSION);
    if (loopback) curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    if (x && x->form) curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->form);
    if (x && x->user) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, x->user);
        curl_easy_setopt(e, CURLOPT_PASSWORD, x->password);
    }
    CURLcode rc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    curl_slist_free_all(hdrs);
    if (s.too_big) return tg_error_set(err, "%s: response larger than %zu bytes", url, max);
    if (rc != CURLE_OK)
        return tg_error_set(err, "%s: %s", url, ebuf[0] ? ebuf : curl_easy_strerror(rc));
    if (status != 200)
        return tg_error_set(err, "%s: HTTP status %ld (redirects are not followed)", url, status);
    return 0;
}

/* Reads jwks_uri from an authorization-server metadata document whose `issuer` must be
 * the configured one (RFC 8414 §3.3: otherwise another server's keys could be used). */
static char *metadata_jwks_uri(const char *issuer, const tg_buf *doc, const char *url,
                               tg_error *err)
{
    tg_error jerr;
    json_t *md = tg_json_parse(doc->data ? doc->data : "", doc->len, 8, &jerr);
    char *uri = NULL;
    if (!md) {
        tg_error_set(err, "%s: not valid JSON: %s", url, jerr.msg);
        return NULL;
    }
    const json_t *iss = json_object_get(md, "issuer"), *ju = json_object_get(md, "jwks_uri");
    if (!json_is_string(iss) || strcmp(json_string_value(iss), issuer) != 0)
        tg_error_set(err, "%s: metadata issuer does not equal %s", url, issuer);
    else if (!json_is_string(ju))
        tg_error_set(err, "%s: metadata has no jwks_uri", url);
    else if (auth_url_check(json_string_value(ju), err) == 0 &&
             !(uri = strdup(json_string_value(ju))))
        abort();
    json_decref(md);
    return uri;
}

static char *discover(const auth_fetch *f, tg_error *err)
{
    /* RFC 8414 first, then OpenID Connect Discovery (appended to the issuer). */
    char *urls[2];
    urls[0] = auth_well_known_url(f->issuer, "oauth-authorization-server");
    tg_buf b = TG_BUF_INIT;
    size_t ilen = strlen(f->issuer);
    tg_buf_append(&b, f->issuer, ilen > 0 && f->issuer[ilen - 1] == '/' ? ilen - 1 : ilen);
    tg_buf_appends(&b, "/.well-known/openid-configuration");
    urls[1] = tg_buf_steal(&b);
    char *uri = NULL;
    tg_buf doc = TG_BUF_INIT;
    tg_buf why = TG_BUF_INIT;
    for (int i = 0; i < 2 && !uri; i++) {
        tg_buf_reset(&doc);
        tg_error e;
        if (http_request(urls[i], NULL, f->timeout_ms, f->max_bytes, &doc, &e) == 0)
            uri = metadata_jwks_uri(f->issuer, &doc, urls[i], &e);
        if (!uri) tg_buf_printf(&why, "%s%s", why.len ? "; " : "", e.msg);
    }
    if (!uri) tg_error_set(err, "discovery failed: %s", why.data);
    tg_buf_free(&doc);
    tg_buf_free(&why);
    free(urls[0]);
    free(urls[1]);
    return uri;
}

void auth_fetch_run(auth_fetch *f)
{
    const char *uri = f->jwks_uri;
    if (!uri) {
        f->discovered_uri = discover(f, &f->err);
        if (!(uri = f->discovered_uri)) return;
    }
    f->ok = http_request(uri, NULL, f->timeout_ms, f->max_bytes, &f->body, &f->err) == 0;
}

/* application/x-www-form-urlencoded value (curl's escaping is RFC 3986 unreserved-only,
 * which is a valid form encoding). Out of memory aborts, as everywhere. */
static char *form_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    if (!e) abort();
    char *copy = strdup(e);
    curl_free(e);
    if (!copy) abort();
    return copy;
}

void auth_introspect_run(auth_introspect *r)
{
    char *tok = form_escape(r->token), *user = form_escape(r->client_id),
         *pass = form_escape(r->client_secret);
    tg_buf form = TG_BUF_INIT;
    tg_buf_printf(&form, "token=%s&token_type_hint=access_token", tok);
    http_extra x = {form.data, user, pass};
    r->ok = http_request(r->url, &x, r->timeout_ms, r->max_bytes, &r->body, &r->err) == 0;
    /* The token and the client secret do not linger in freed memory. */
    OPENSSL_cleanse(form.data, form.len);
    OPENSSL_cleanse(tok, strlen(tok));
    OPENSSL_cleanse(pass, strlen(pass));
    tg_buf_free(&form);
    free(tok);
    free(user);
    free(pass);
}
