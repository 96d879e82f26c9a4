/*
 * auth_testkit.c — a test-side authorization server: keys, JWKs, signed tokens, and a
 * blocking HTTP/1.1 server thread (one request per connection, Connection: close) on
 * 127.0.0.1 port 0; and a callback that records a tg_auth_result. Shared by tests/auth
 * and bench/auth. Written independently of src/auth on purpose: tokens made here check
 * the library rather than mirror it.
 */
#include "auth_testkit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

static void die(const char *what)
{
    fprintf(stderr, "auth_testkit: %s\n", what);
    abort();
}

/* ---------------------------------------------------------------- keys */

void tk_key_gen(tk_key *k, const char *alg, const char *kid)
{
    memset(k, 0, sizeof *k);
    if (alg[0] == 'R' || alg[0] == 'P') k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    else if (strcmp(alg, "ES256") == 0) k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    else if (strcmp(alg, "ES384") == 0) k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    else k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!k->pkey) die("keygen");
    snprintf(k->alg, sizeof k->alg, "%s", alg);
    snprintf(k->kid, sizeof k->kid, "%s", kid);
}

void tk_key_alias(tk_key *k, const tk_key *from, const char *alg, const char *kid)
{
    *k = *from;
    if (EVP_PKEY_up_ref(k->pkey) != 1) die("up_ref");
    snprintf(k->alg, sizeof k->alg, "%s", alg);
    snprintf(k->kid, sizeof k->kid, "%s", kid);
}

void tk_key_free(tk_key *k)
{
    EVP_PKEY_free(k->pkey);
    k->pkey = NULL;
}

char *tk_b64(const void *p, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *in = p;
    char *out = malloc(n * 4 / 3 + 4);
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        if (i + 1 < n) out[o++] = a[(v >> 6) & 63];
        if (i + 2 < n) out[o++] = a[v & 63];
    }
    out[o] = '\0';
    return out;
}

static char *bn_b64(const EVP_PKEY *pkey, const char *param, size_t pad)
{
    BIGNUM *bn = NULL;
    if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1) die("get_bn_param");
    size_t n = pad ? pad : (size_t)BN_num_bytes(bn);
    unsigned char *buf = malloc(n);
    if (BN_bn2binpad(bn, buf, (int)n) < 0) die("bn2binpad");
    char *s = tk_b64(buf, n);
    free(buf);
    BN_free(bn);
    return s;
}

char *tk_jwk(const tk_key *k, int with_alg)
{
    char buf[2048], alg[32] = "";
    if (with_alg) snprintf(alg, sizeof alg, ",\"alg\":\"%s\"", k->alg);
    int id = EVP_PKEY_get_base_id(k->pkey);
    if (id == EVP_PKEY_RSA) {
        char *n = bn_b64(k->pkey, OSSL_PKEY_PARAM_RSA_N, 0), *e = bn_b64(k->pkey, OSSL_PKEY_PARAM_RSA_E, 0);
        snprintf(buf, sizeof buf, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"use\":\"sig\"%s,\"n\":\"%s\",\"e\":\"%s\"}",
                 k->kid, alg, n, e);
        free(n);
        free(e);
    } else if (id == EVP_PKEY_EC) {
        int p384 = strcmp(k->alg, "ES384") == 0;
        size_t c = p384 ? 48 : 32;
        char *x = bn_b64(k->pkey, OSSL_PKEY_PARAM_EC_PUB_X, c), *y = bn_b64(k->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, c);
        snprintf(buf, sizeof buf, "{\"kty\":\"EC\",\"kid\":\"%s\",\"crv\":\"%s\"%s,\"x\":\"%s\",\"y\":\"%s\"}",
                 k->kid, p384 ? "P-384" : "P-256", alg, x, y);
        free(x);
        free(y);
    } else {
        unsigned char raw[32];
        size_t n = sizeof raw;
        if (EVP_PKEY_get_raw_public_key(k->pkey, raw, &n) != 1) die("raw public key");
        char *x = tk_b64(raw, n);
        snprintf(buf, sizeof buf, "{\"kty\":\"OKP\",\"kid\":\"%s\",\"crv\":\"Ed25519\"%s,\"x\":\"%s\"}",
                 k->kid, alg, x);
        free(x);
    }
    return strdup(buf);
}

char *tk_jwks(const tk_key *const *keys, size_t n, int with_alg)
{
    size_t cap = 64 + n * 2048, len = 0;
    char *out = malloc(cap);
    len += (size_t)snprintf(out + len, cap - len, "{\"keys\":[");
    for (size_t i = 0; i < n; i++) {
        char *j = tk_jwk(keys[i], with_alg);
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "," : "", j);
        free(j);
    }
    snprintf(out + len, cap - len, "]}");
    return out;
}

char *tk_public_pem(const tk_key *k, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b || PEM_write_bio_PUBKEY(b, k->pkey) != 1) die("pem");
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *out = malloc((size_t)n + 1);
    memcpy(out, p, (size_t)n);
    out[n] = '\0';
    *len = (size_t)n;
    BIO_free(b);
    return out;
}

/* ---------------------------------------------------------------- signing */

static char *signing_input(const char *header, const char *payload)
{
    char *h = tk_b64(header, strlen(header)), *p = tk_b64(payload, strlen(payload));
    size_t n = strlen(h) + strlen(p) + 2;
    char *s = malloc(n);
    snprintf(s, n, "%s.%s", h, p);
    free(h);
    free(p);
    return s;
}

static char *join_sig(char *input, const unsigned char *sig, size_t n)
{
    char *s = tk_b64(sig, n);
    size_t len = strlen(input) + strlen(s) + 2;
    char *out = malloc(len);
    snprintf(out, len, "%s.%s", input, s);
    free(s);
    free(input);
    return out;
}

static const EVP_MD *md_for(const char *alg)
{
    if (strcmp(alg, "EdDSA") == 0) return NULL;
    if (strstr(alg, "384")) return EVP_sha384();
    if (strstr(alg, "512")) return EVP_sha512();
    return EVP_sha256();
}

char *tk_sign(const tk_key *k, const char *sign_alg, const char *header, const char *payload)
{
    const char *alg = sign_alg ? sign_alg : k->alg;
    char hbuf[256];
    if (!header) {
        snprintf(hbuf, sizeof hbuf, "{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"}", alg, k->kid);
        header = hbuf;
    }
    char *input = signing_input(header, payload);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    if (EVP_DigestSignInit(md, &pctx, md_for(alg), NULL, k->pkey) != 1) die("sign init");
    if (alg[0] == 'P' && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                          EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
        die("pss");
    size_t n = 0;
    if (EVP_DigestSign(md, NULL, &n, (unsigned char *)input, strlen(input)) != 1) die("sign len");
    unsigned char *sig = malloc(n);
    if (EVP_DigestSign(md, sig, &n, (unsigned char *)input, strlen(input)) != 1) die("sign");
    EVP_MD_CTX_free(md);
    if (EVP_PKEY_get_base_id(k->pkey) == EVP_PKEY_EC) {  /* DER → JOSE R||S */
        size_t c = strcmp(k->alg, "ES384") == 0 ? 48 : 32;
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
        unsigned char raw[96];
        if (!es || BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, (int)c) < 0 ||
            BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + c, (int)c) < 0)
            die("ecdsa sig");
        ECDSA_SIG_free(es);
        free(sig);
        return join_sig(input, raw, 2 * c);
    }
    char *out = join_sig(input, sig, n);
    free(sig);
    return out;
}

char *tk_sign_hs256(const void *secret, size_t n, const char *header, const char *payload)
{
    char *input = signing_input(header, payload);
    unsigned char mac[32];
    unsigned int len = sizeof mac;
    if (!HMAC(EVP_sha256(), secret, (int)n, (unsigned char *)input, strlen(input), mac, &len))
        die("hmac");
    return join_sig(input, mac, len);
}

/* ---------------------------------------------------------------- HTTP server */

#define TK_ROUTES 8

struct tk_server {
    int fd, port;
    pthread_t thread;
    pthread_mutex_t mu;
    /* last: the whole last request to the route (head and body), for assertions */
    struct { char path[128]; int status; char *body; int hits; char *last; } routes[TK_ROUTES];
    size_t nroutes;
};

static void serve_one(tk_server *s, int c)
{
    char req[16384] = "";
    size_t len = 0;
    const char *end = NULL;
    while (len < sizeof req - 1 && !(end = strstr(req, "\r\n\r\n"))) {
        ssize_t r = read(c, req + len, sizeof req - 1 - len);
        if (r <= 0) return;
        len += (size_t)r;
        req[len] = '\0';
    }
    /* A POST's body (Content-Length, spelled as curl spells it, for form posts). */
    const char *cl = strstr(req, "\r\nContent-Length:");
    size_t want = end && cl && cl < end ? (size_t)strtoul(cl + 17, NULL, 10) : 0;
    size_t have_head = end ? (size_t)(end - req) + 4 : len;
    while (len < sizeof req - 1 && len < have_head + want) {
        ssize_t r = read(c, req + len, sizeof req - 1 - len);
        if (r <= 0) return;
        len += (size_t)r;
        req[len] = '\0';
    }
    char path[128] = "";
    sscanf(req, "%*s %127s", path);
    pthread_mutex_lock(&s->mu);
    int status = 404;
    char *body = NULL;
    for (size_t i = 0; i < s->nroutes; i++)
        if (strcmp(s->routes[i].path, path) == 0) {
            s->routes[i].hits++;
            status = s->routes[i].status;
            body = s->routes[i].body ? strdup(s->routes[i].body) : NULL;
            free(s->routes[i].last);
            s->routes[i].last = strdup(req);
        }
    pthread_mutex_unlock(&s->mu);
    char head[256];
    size_t blen = body ? strlen(body) : 0;
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                      "%sConnection: close\r\n\r\n", status, blen,
                      status == 302 ? "Location: http://127.0.0.1:1/elsewhere\r\n" : "");
    if (write(c, head, (size_t)hl) < 0 || (blen && write(c, body, blen) < 0)) { /* client gone */ }
    free(body);
}

static void *server_main(void *arg)
{
    tk_server *s = arg;
    for (;;) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0) break;  /* shutdown() in tk_server_stop */
        serve_one(s, c);
        close(c);
    }
    return NULL;
}

tk_server *tk_server_start(void)
{
    tk_server *s = calloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(s->fd, 16) != 0 ||
        getsockname(s->fd, (struct sockaddr *)&sa, &sl) != 0)
        die("listen");
    s->port = ntohs(sa.sin_port);
    if (pthread_create(&s->thread, NULL, server_main, s) != 0) die("pthread_create");
    return s;
}

void tk_server_route(tk_server *s, const char *path, int status, const char *body)
{
    pthread_mutex_lock(&s->mu);
    size_t i = 0;
    while (i < s->nroutes && strcmp(s->routes[i].path, path) != 0) i++;
    if (i == s->nroutes) {
        if (s->nroutes == TK_ROUTES) die("too many routes");
        s->nroutes++;
        snprintf(s->routes[i].path, sizeof s->routes[i].path, "%s", path);
    }
    free(s->routes[i].body);
    s->routes[i].body = body ? strdup(body) : NULL;
    s->routes[i].status = status;
    pthread_mutex_unlock(&s->mu);
}

int tk_server_port(const tk_server *s) { return s->port; }

int tk_server_hits(tk_server *s, const char *path)
{
    int n = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->nroutes; i++)
        if (strcmp(s->routes[i].path, path) == 0) n = s->routes[i].hits;
    pthread_mutex_unlock(&s->mu);
    return n;
}

char *tk_server_last(tk_server *s, const char *path)
{
    char *r = NULL;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->nroutes; i++)
        if (strcmp(s->routes[i].path, path) == 0 && s->routes[i].last) r = strdup(s->routes[i].last);
    pthread_mutex_unlock(&s->mu);
    return r;
}

void tk_server_stop(tk_server *s)
{
    shutdown(s->fd, SHUT_RDWR);
    pthread_join(s->thread, NULL);
    close(s->fd);
    for (size_t i = 0; i < s->nroutes; i++) {
        free(s->routes[i].body);
        free(s->routes[i].last);
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---------------------------------------------------------------- results */

void tk_on_result(const tg_auth_result *r, void *user)
{
    tk_outcome *o = user;
    o->done++;
    o->id = r->identity;
    o->status = r->identity ? 200 : r->status;
    o->www = r->www_authenticate;
    o->msg = r->client_message;
    o->why = r->log_reason;
}

static void on_run_timeout(uv_timer_t *t) { (void)t; }

void tk_run_until(uv_loop_t *loop, tk_outcome *o, uint64_t timeout_ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, on_run_timeout, timeout_ms, 0);
    while (!o->done && uv_is_active((uv_handle_t *)&t)) uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}
