/*
 * approvals.c — `toolgate approvals list|show|approve|deny|keygen` (docs/approvers.md).
 * The first four are an HTTP client (libcurl easy) of the approvals API on the admin
 * listener (src/admin/approvals_http.c), so the command line, the web inbox and scripts
 * go through the same authentication, policy and audit; nothing here opens the store.
 * keygen makes an approver key and the configuration entry that names its hash.
 *
 * The approver's credential comes from $TOOLGATE_APPROVER_KEY or --key-file, never from
 * a command-line argument (other users see argv in ps). It is sent only in the
 * Authorization header and never printed. Text from the API — arguments, comments,
 * names — is shown with control characters replaced, so a request cannot drive the
 * approver's terminal.
 *
 * Exit status: 0 ok, 1 the API refused (its code and message on stderr), 2 a usage
 * error or toolgate could not be reached.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_int.h"
#include "common/tg_common.h"
#include "config/tg_config.h"

const char tg_cli_approvals_usage[] =
    "usage: toolgate approvals list    [--state S] [--json] [CONNECTION]\n"
    "       toolgate approvals show    ID [--json] [CONNECTION]\n"
    "       toolgate approvals approve ID [--comment TEXT] [CONNECTION]\n"
    "       toolgate approvals deny    ID [--comment TEXT] [CONNECTION]\n"
    "       toolgate approvals keygen  --user USER [--groups G1,G2]\n"
    "\n"
    "Approval requests (docs/approvers.md), through the approvals API of the admin\n"
    "listener, as the approver whose key is given.\n"
    "  list     requests, newest first; --state pending|approved|denied|expired|used\n"
    "  show     one request: requester, tool, resource, arguments, reasons, decision\n"
    "  approve  approve request ID (the policy decides whether you may); --comment is\n"
    "           kept in the audit trail\n"
    "  deny     deny request ID\n"
    "  keygen   a new approver key for USER on stdout's first line, then the entry to add\n"
    "           under approvals.approvers.api_keys (the file keeps only its SHA-256)\n"
    "  --json   print the API's JSON instead of a table\n"
    "\n"
    "CONNECTION:\n"
    "  --url URL          the admin listener (default: the `admin.listen` of --config,\n"
    "                     else http://127.0.0.1:9090)\n"
    "  --config FILE      the gateway's configuration, for the default URL\n"
    "  --key-file PATH    a file holding the approver key (tga_…) or OAuth access token;\n"
    "                     else $TOOLGATE_APPROVER_KEY. Never on the command line.\n"
    "\n"
    "exit status: 0 ok, 1 refused by toolgate (code and message on stderr),\n"
    "2 usage error or toolgate unreachable.\n";

#define REFUSED 1
#define UNUSABLE 2
#define MAX_CREDENTIAL 16384

/* The subcommands, as bits so a flag can name those that take it. */
enum { SUB_LIST = 1, SUB_SHOW = 2, SUB_APPROVE = 4, SUB_DENY = 8, SUB_KEYGEN = 16 };
#define SUB_API (SUB_LIST | SUB_SHOW | SUB_APPROVE | SUB_DENY)
static const char *const sub_names[] = {"list", "show", "approve", "deny", "keygen"};

typedef struct apr_opts {
    const char *sub, *id, *state, *comment, *url, *config, *key_file, *user, *groups;
    unsigned sub_bit;
    bool json;
} apr_opts;

static const tg_cli_flag apr_flags[] = {
    {"--state", offsetof(apr_opts, state), SUB_LIST},
    {"--comment", offsetof(apr_opts, comment), SUB_APPROVE | SUB_DENY},
    {"--url", offsetof(apr_opts, url), SUB_API},
    {"--config", offsetof(apr_opts, config), SUB_API},
    {"--key-file", offsetof(apr_opts, key_file), SUB_API},
    {"--user", offsetof(apr_opts, user), SUB_KEYGEN},
    {"--groups", offsetof(apr_opts, groups), SUB_KEYGEN},
};

#define usage(...) tg_cli_usage_error(tg_cli_approvals_usage, __VA_ARGS__)

/* 0, or 2 after a usage error; *help for -h/--help. */
static int parse(int argc, char **argv, apr_opts *o, bool *help)
{
    if (argc < 2) return usage("%s", "approvals needs a subcommand");
    if (tg_cli_is_help(argv[1])) {
        *help = true;
        return 0;
    }
    for (size_t s = 0; s < sizeof sub_names / sizeof *sub_names; s++)
        if (strcmp(argv[1], sub_names[s]) == 0) {
            o->sub = sub_names[s];
            o->sub_bit = 1u << s;
        }
    if (!o->sub) return usage("unknown approvals subcommand \"%s\"", argv[1]);
    bool wants_id = o->sub_bit & (SUB_SHOW | SUB_APPROVE | SUB_DENY);
    char cmd[32];
    snprintf(cmd, sizeof cmd, "approvals %s", o->sub);
    for (int i = 2; i < argc; i++) {
        if (tg_cli_is_help(argv[i])) {
            *help = true;
            return 0;
        }
        int r = tg_cli_take_flag(apr_flags, sizeof apr_flags / sizeof *apr_flags, o->sub_bit, cmd,
                                 tg_cli_approvals_usage, argc, argv, &i, o);
        if (r == 2) return 2;
        if (r == 1) continue;
        if (strcmp(argv[i], "--json") == 0 && (o->sub_bit & (SUB_LIST | SUB_SHOW))) {
            o->json = true;
        } else if (strncmp(argv[i], "--key=", 6) == 0 || strcmp(argv[i], "--key") == 0) {
            return usage("%s: the credential is never a command-line argument (ps shows "
                         "it); use $TOOLGATE_APPROVER_KEY or --key-file PATH", argv[i]);
        } else if (wants_id && !o->id && argv[i][0] != '-') {
            o->id = argv[i];
        } else {
            return usage("unexpected argument \"%s\"", argv[i]);
        }
    }
    if (wants_id && !o->id) return usage("approvals %s needs the request ID", o->sub);
    if (o->sub_bit == SUB_KEYGEN && (!o->user || !*o->user))
        return usage("%s is required", "--user USER");
    return 0;
}

/* ------------------------------------------------------------------ keygen */

/* The entry quotes USER and the groups as JSON strings: a YAML double-quoted scalar
 * reads every JSON string the same way, whatever characters a name holds. */
static int keygen(const apr_opts *o)
{
    unsigned char raw[32];
    char key[4 + 44] = "tga_", hash[65];
    tg_random_bytes(raw, sizeof raw);
    tg_b64url_encode(raw, sizeof raw, key + 4);
    tg_sha256_hex(key, strlen(key), hash);
    tg_buf entry = TG_BUF_INIT;
    tg_buf_appends(&entry, "- {user: ");
    tg_buf_json_string(&entry, o->user, strlen(o->user));
    if (o->groups) {
        tg_buf_appends(&entry, ", groups: [");
        for (const char *p = o->groups;;) {
            size_t n = strcspn(p, ",");
            if (n == 0) {
                tg_buf_free(&entry);
                return usage("--groups: empty item in \"%s\"", o->groups);
            }
            tg_buf_json_string(&entry, p, n);
            if (!p[n]) break;
            tg_buf_appends(&entry, ", ");
            p += n + 1;
        }
        tg_buf_appends(&entry, "]");
    }
    tg_buf_printf(&entry, ", key_sha256: \"%s\"}", hash);
    printf("%s\n%s\n", key, entry.data);
    fputs("toolgate: the key above is shown once; give it to the approver and add the entry "
          "under approvals.approvers.api_keys (the file keeps only the hash)\n", stderr);
    tg_buf_free(&entry);
    return 0;
}

/* ------------------------------------------------------------------ the HTTP client */

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    tg_buf_append(ud, p, size * n);
    return size * n;
}

/* The approver's credential: --key-file's content (trimmed), else the environment.
 * Malloc'd, or NULL after printing why. */
static char *load_credential(const char *key_file)
{
    tg_buf b = TG_BUF_INIT;
    if (key_file) {
        FILE *f = fopen(key_file, "rb");
        if (!f) {
            fprintf(stderr, "toolgate: --key-file %s: cannot open it\n", key_file);
            return NULL;
        }
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len <= MAX_CREDENTIAL)
            tg_buf_append(&b, chunk, n);
        fclose(f);
    } else if (getenv("TOOLGATE_APPROVER_KEY")) {
        tg_buf_appends(&b, getenv("TOOLGATE_APPROVER_KEY"));
    } else {
        fputs("toolgate: no approver credential: set TOOLGATE_APPROVER_KEY or pass "
              "--key-file PATH\n", stderr);
        return NULL;
    }
    while (b.len && strchr(" \t\r\n", b.data[b.len - 1])) b.len--;
    size_t start = strspn(b.data ? b.data : "", " \t\r\n");
    bool ok = b.len > start && b.len <= MAX_CREDENTIAL;
    for (size_t i = start; ok && i < b.len; i++) ok = b.data[i] > 0x20 && b.data[i] < 0x7f;
    if (!ok) {
        fprintf(stderr, "toolgate: the approver credential (%s) must be one printable word\n",
                key_file ? key_file : "TOOLGATE_APPROVER_KEY");
        tg_buf_free(&b);
        return NULL;
    }
    char *cred = strndup(b.data + start, b.len - start);
    explicit_bzero(b.data, b.cap);
    tg_buf_free(&b);
    if (!cred) abort();
    return cred;
}

/* The admin listener's base URL (no trailing slash), malloc'd; NULL after printing why. */
static char *base_url(const apr_opts *o)
{
    if (o->url) {
        size_t n = strlen(o->url);
        while (n && o->url[n - 1] == '/') n--;
        if (strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0) {
            fprintf(stderr, "toolgate: --url must start with http:// or https://\n");
            return NULL;
        }
        return strndup(o->url, n);
    }
    if (!o->config) return strdup("http://127.0.0.1:9090");
    tg_error err;
    tg_config *cfg = tg_config_load(o->config, &err);
    if (!cfg) {
        fprintf(stderr, "%s\n", err.msg);
        return NULL;
    }
    char *url = NULL;
    if (!cfg->admin.where) {
        fprintf(stderr, "toolgate: %s has no admin: section (the approvals API lives on the "
                "admin listener); pass --url\n", o->config);
    } else {
        /* A wildcard listen address is reached on loopback. */
        const char *host = cfg->admin.listen_host;
        if (strcmp(host, "0.0.0.0") == 0) host = "127.0.0.1";
        if (strcmp(host, "::") == 0) host = "::1";
        bool v6 = strchr(host, ':') != NULL;
        tg_buf b = TG_BUF_INIT;
        tg_buf_printf(&b, "http://%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "",
                      (unsigned)cfg->admin.listen_port);
        url = tg_buf_steal(&b);
    }
    tg_config_unref(cfg);
    return url;
}

/* One API call. 0 with *status and *body (parsed JSON, new ref), or -1 after printing
 * why toolgate could not be asked (connection, not JSON). */
static int call(const char *base, const char *credential, const char *method,
                const char *path, const char *body, long *status, json_t **out)
{
    CURL *c = curl_easy_init();
    if (!c) abort();
    tg_buf url = TG_BUF_INIT, resp = TG_BUF_INIT, auth = TG_BUF_INIT;
    tg_buf_printf(&url, "%s%s", base, path);
    tg_buf_printf(&auth, "Authorization: Bearer %s", credential);
    struct curl_slist *h = curl_slist_append(NULL, auth.data);
    h = curl_slist_append(h, "Accept: application/json");
    if (body) h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url.data);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    explicit_bzero(auth.data, auth.cap);
    tg_buf_free(&auth);
    int ret = 0;
    tg_error err;
    if (rc != CURLE_OK) {
        fprintf(stderr, "toolgate: %s %s: %s\n", method, url.data, curl_easy_strerror(rc));
        ret = -1;
    } else if (!(*out = tg_json_parse(resp.data ? resp.data : "", resp.len, TG_JSON_MAX_DEPTH,
                                      &err))) {
        fprintf(stderr, "toolgate: %s %s: HTTP %ld, not a JSON answer (is this the admin "
                "listener of a toolgate with approvals?)\n", method, url.data, *status);
        ret = -1;
    }
    tg_buf_free(&url);
    tg_buf_free(&resp);
    return ret;
}

/* ------------------------------------------------------------------ output */

/* Prints s with control characters (and DEL) as '?': API text must not reach the
 * terminal as escape sequences. */
static void put_safe(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, f);
}

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static const char *resource(const json_t *q, tg_buf *b)
{
    const json_t *r = json_object_get(q, "resource");
    tg_buf_reset(b);
    if (*str(r, "type")) tg_buf_printf(b, "%s::\"%s\"", str(r, "type"), str(r, "id"));
    else tg_buf_appends(b, "-");
    return b->data;
}

static const char *requester(const json_t *q, tg_buf *b)
{
    const json_t *r = json_object_get(q, "requester");
    tg_buf_reset(b);
    if (*str(r, "delegator")) tg_buf_printf(b, "%s via %s", str(r, "delegator"), str(r, "agent"));
    else tg_buf_appends(b, str(r, "agent"));
    return b->data;
}

/* A column of the list table: its title and how a row's cell is made. */
typedef struct column {
    const char *title;
    const char *(*cell)(const json_t *q, tg_buf *b);
} column;

static const char *cell_id(const json_t *q, tg_buf *b) { (void)b; return str(q, "id"); }
static const char *cell_state(const json_t *q, tg_buf *b) { (void)b; return str(q, "state"); }
static const char *cell_tool(const json_t *q, tg_buf *b) { (void)b; return str(q, "tool"); }
static const char *cell_created(const json_t *q, tg_buf *b) { (void)b; return str(q, "createdAt"); }

static const char *cell_decision(const json_t *q, tg_buf *b)
{
    tg_buf_reset(b);
    if (strcmp(str(q, "state"), "pending") == 0)
        tg_buf_printf(b, "expires %s", str(q, "expiresAt"));
    else if (*str(q, "approver"))
        tg_buf_printf(b, "by %s", str(q, "approver"));
    else
        tg_buf_appends(b, "-");
    return b->data;
}

static const column columns[] = {
    {"ID", cell_id}, {"STATE", cell_state}, {"TOOL", cell_tool}, {"RESOURCE", resource},
    {"REQUESTER", requester}, {"CREATED", cell_created}, {"DECISION", cell_decision},
};
#define NCOLS (sizeof columns / sizeof columns[0])

static void print_table(const json_t *list)
{
    size_t width[NCOLS], n = json_array_size(list);
    tg_buf b = TG_BUF_INIT;
    for (size_t c = 0; c < NCOLS; c++) width[c] = strlen(columns[c].title);
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < NCOLS; c++) {
            size_t w = strlen(columns[c].cell(json_array_get(list, i), &b));
            if (w > width[c]) width[c] = w;
        }
    for (size_t c = 0; c < NCOLS; c++)
        printf("%-*s%s", c + 1 < NCOLS ? (int)width[c] : 0, columns[c].title,
               c + 1 < NCOLS ? "  " : "\n");
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < NCOLS; c++) {
            const char *s = columns[c].cell(json_array_get(list, i), &b);
            put_safe(stdout, s);
            if (c + 1 < NCOLS) printf("%*s", (int)(width[c] - strlen(s) + 2), "");
            else putchar('\n');
        }
    printf("%zu request%s\n", n, n == 1 ? "" : "s");
    tg_buf_free(&b);
}

/* The key: value block of `show`: strings of the request (sub: of its "requester"
 * object), or a value computed from the whole request. */
typedef struct show_field {
    const char *label, *sub, *key;
    const char *(*computed)(const json_t *q, tg_buf *b);
} show_field;

static const char *joined(const json_t *arr, const char *sep, tg_buf *b)
{
    size_t i;
    json_t *v;
    tg_buf_reset(b);
    json_array_foreach(arr, i, v)
        tg_buf_printf(b, "%s%s", i ? sep : "", json_string_value(v) ? json_string_value(v) : "");
    return b->data;
}

static const char *within(const json_t *q, tg_buf *b)
{
    return joined(json_object_get(json_object_get(q, "resource"), "parents"), " < ", b);
}

static const char *reasons(const json_t *q, tg_buf *b)
{
    return joined(json_object_get(q, "reasons"), ", ", b);
}

static const char *policies(const json_t *q, tg_buf *b)
{
    return joined(json_object_get(q, "policies"), ", ", b);
}

static const show_field show_fields[] = {
    {"id:", NULL, "id", NULL}, {"state:", NULL, "state", NULL},
    {"tool:", NULL, "tool", NULL}, {"upstream:", NULL, "upstream", NULL},
    {"risk:", NULL, "risk", NULL}, {"delegator:", "requester", "delegator", NULL},
    {"agent:", "requester", "agent", NULL}, {"auth method:", "requester", "authMethod", NULL},
    {"client ip:", "requester", "clientIp", NULL}, {"resource:", NULL, NULL, resource},
    {"within:", NULL, NULL, within}, {"intent:", NULL, "intent", NULL},
    {"workflow:", NULL, "workflow", NULL}, {"ticket:", NULL, "ticket", NULL},
    {"reasons:", NULL, NULL, reasons}, {"policies:", NULL, NULL, policies},
    {"created:", NULL, "createdAt", NULL}, {"expires:", NULL, "expiresAt", NULL},
    {"decided:", NULL, "decidedAt", NULL}, {"approver:", NULL, "approver", NULL},
    {"comment:", NULL, "comment", NULL}, {"used:", NULL, "usedAt", NULL},
    {"used by:", NULL, "usedBy", NULL}, {"url:", NULL, "url", NULL},
    {"args sha256:", NULL, "argsSha256", NULL},
};

static void print_one(const json_t *q)
{
    tg_buf b = TG_BUF_INIT;
    for (size_t i = 0; i < sizeof show_fields / sizeof *show_fields; i++) {
        const show_field *f = &show_fields[i];
        const char *v = f->computed ? f->computed(q, &b)
                      : str(f->sub ? json_object_get(q, f->sub) : q, f->key);
        if (!v || !*v) continue;
        printf("%-13s ", f->label);
        put_safe(stdout, v);
        putchar('\n');
    }
    char *args = json_dumps(json_object_get(q, "args"), JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                            JSON_ENCODE_ANY);
    if (args) {
        fputs("args:\n", stdout);
        for (char *p = args; p;) {   /* indented under the key */
            char *nl = strchr(p, '\n');
            if (nl) *nl = '\0';
            fputs("  ", stdout);
            put_safe(stdout, p);
            putchar('\n');
            p = nl ? nl + 1 : NULL;
        }
        free(args);
    }
    tg_buf_free(&b);
}

static void print_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!s) abort();
    puts(s);
    free(s);
}

/* ------------------------------------------------------------------ the commands */

/* Percent-encodes the characters a request id may not hold anyway, so a mistyped ID
 * reaches the API (and gets its 404) instead of another path. */
static void put_id(tg_buf *b, const char *id)
{
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')
            tg_buf_append(b, p, 1);
        else
            tg_buf_printf(b, "%%%02X", *p);
    }
}

static int run(const apr_opts *o, const char *base, const char *credential)
{
    tg_buf path = TG_BUF_INIT;
    char *body = NULL;
    const char *method = "GET";
    if (o->sub_bit == SUB_LIST) {
        tg_buf_appends(&path, "/approvals?limit=500");
        if (o->state) {
            tg_buf_appends(&path, "&state=");
            put_id(&path, o->state);
        }
    } else {
        tg_buf_appends(&path, "/approvals/");
        put_id(&path, o->id);
        if (o->sub_bit != SUB_SHOW) {
            method = "POST";
            tg_buf_printf(&path, "/%s", o->sub);
            json_t *j = o->comment ? json_pack("{s:s}", "comment", o->comment) : json_object();
            if (!j) {
                tg_buf_free(&path);
                return usage("%s", "--comment must be UTF-8 text");
            }
            body = json_dumps(j, JSON_COMPACT);
            json_decref(j);
        }
    }
    long status = 0;
    json_t *out = NULL;
    int rc = call(base, credential, method, path.data, body, &status, &out);
    free(body);
    tg_buf_free(&path);
    if (rc < 0) return UNUSABLE;
    if (status != 200) {
        fprintf(stderr, "toolgate: refused (HTTP %ld): ", status);
        put_safe(stderr, str(out, "error"));
        fputs(": ", stderr);
        put_safe(stderr, str(out, "message"));
        fputc('\n', stderr);
        json_decref(out);
        return REFUSED;
    }
    if (o->json) print_json(out);
    else if (o->sub_bit == SUB_LIST) print_table(out);
    else if (o->sub_bit == SUB_SHOW) print_one(out);
    else printf("%s: %s by %s\n", str(out, "id"), str(out, "state"), str(out, "approver"));
    json_decref(out);
    return 0;
}

int tg_cli_approvals(int argc, char **argv)
{
    apr_opts o = {0};
    bool help = false;
    int st = parse(argc, argv, &o, &help);
    if (st) return st;
    if (help) {
        fputs(tg_cli_approvals_usage, stdout);
        return 0;
    }
    if (o.sub_bit == SUB_KEYGEN) return keygen(&o);
    char *base = base_url(&o);
    if (!base) return UNUSABLE;
    char *credential = load_credential(o.key_file);
    if (!credential) {
        free(base);
        return UNUSABLE;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    st = run(&o, base, credential);
    curl_global_cleanup();
    explicit_bzero(credential, strlen(credential));
    free(credential);
    free(base);
    return st;
}
