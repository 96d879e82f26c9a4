/*
 * tg_config.h — the running configuration: loaded from YAML, validated whole, immutable.
 *
 * A tg_config is a snapshot. Once tg_config_load returns it, nothing writes to it; every
 * component that serves a request holds a reference (tg_config_ref) for as long as it
 * uses it, and a reload builds a new snapshot and swaps the pointer. The old snapshot
 * is freed when its last reference goes. All strings inside are owned by the snapshot.
 *
 * Secrets (upstream credentials) are never required inline: a string value of the form
 * `${ENV_VAR}` is replaced by that environment variable, and `file:/path` by the file's
 * contents (trailing newline stripped). Both are resolved at load time; a missing
 * variable or unreadable file is a load error with its position.
 */
#ifndef TG_CONFIG_H
#define TG_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "common/tg_common.h"
#include "audit/tg_audit.h"
#include "auth/tg_auth.h"
#include "store/tg_store.h"

typedef struct tg_kv {
    const char *key;
    const char *value;
} tg_kv;

typedef enum { TG_UP_STDIO = 1, TG_UP_HTTP = 2 } tg_up_transport;

/* How client sessions map onto upstream MCP sessions (see docs/architecture.md):
 *   SHARED     — one upstream session for every client session (single-tenant stdio
 *                servers: one child process, initialised once by toolgate).
 *   PER_CLIENT — each client session gets its own upstream session (its own child
 *                process for stdio; its own MCP-Session-Id for HTTP). */
typedef enum { TG_UP_SESSIONS_SHARED = 1, TG_UP_SESSIONS_PER_CLIENT = 2 } tg_up_sessions;

typedef struct tg_upstream_conf {
    const char *name;        /* unique, [A-Za-z0-9_-]+ */
    tg_up_transport transport;
    tg_up_sessions sessions; /* default: SHARED for stdio, PER_CLIENT for http */
    const char *prefix;      /* tool/prompt name prefix shown to clients, or NULL */
    uint32_t call_timeout_ms;    /* per request sent upstream; default 60000 */
    uint32_t init_timeout_ms;    /* initialize handshake; default 10000 */

    /* stdio */
    const char **argv;       /* NULL-terminated; argv[0] is the command */
    size_t argc;
    tg_kv *env;              /* environment given to the child: ONLY these variables
                                (plus PATH/HOME/LANG if `inherit_env` lists them) */
    size_t nenv;
    const char *cwd;         /* or NULL */
    uint32_t restart_min_ms; /* backoff after a crash: min, doubling to max; default 500 */
    uint32_t restart_max_ms; /* default 30000 */
    uint32_t shutdown_grace_ms; /* close stdin → wait → SIGTERM → wait → SIGKILL; default 2000 */

    /* http */
    const char *url;         /* Streamable HTTP endpoint, e.g. http://127.0.0.1:3001/mcp */
    tg_kv *headers;          /* static headers sent upstream (credentials live here) */
    size_t nheaders;
    uint32_t connect_timeout_ms; /* default 5000 */
} tg_upstream_conf;

typedef struct tg_limits {
    size_t   max_body_bytes;       /* default 4 MiB   → 413 */
    size_t   max_header_bytes;     /* default 16 KiB  → 431 (request line + all headers) */
    size_t   max_headers;          /* default 64      → 431 */
    size_t   max_connections;      /* default 10000   → new connections closed */
    size_t   max_sessions;         /* default 10000   → initialize gets 503 */
    uint32_t header_timeout_ms;    /* default 10000: whole header block must arrive → 408 */
    uint32_t body_timeout_ms;      /* default 30000: whole body must arrive → 408 */
    uint32_t idle_timeout_ms;      /* default 75000: keep-alive connection with no request */
    uint32_t session_idle_ms;      /* default 3600000: session with no traffic is ended */
    uint32_t hold_sse_keepalive_ms;/* default 15000: comment line on idle SSE streams */
} tg_limits;

/* ------------------------------------------------------------ catalog and policy (issue 5)
 * Read and validated here (positions, regexes, pointers, templates, windows); compiled by
 * tg_catalog_new / tg_policy_new (src/catalog, src/policy), which report problems they
 * find later against the `where` strings kept below. docs/configuration.md, docs/policy.md. */

typedef enum { TG_RISK_READ = 1, TG_RISK_WRITE = 2, TG_RISK_HIGH = 3 } tg_risk;

/* One piece of an id template: literal text, or an RFC 6901 JSON pointer into the tool's
 * arguments (`text` is the pointer, always starting with "/"). An `integer` pointer
 * accepts a non-negative JSON integer (written in decimal) besides a string. */
typedef struct tg_id_part {
    const char *text;
    int pointer;
    int integer;
} tg_id_part;

/* How an id is computed: the parts concatenated (no parts: the resource's own id — only
 * for parents); then, when `pattern` (POSIX ERE) is set, the value must match it and the
 * id becomes capture group `capture` (0: the whole match). */
typedef struct tg_id_spec {
    const tg_id_part *parts;
    size_t nparts;
    const char *pattern;
    unsigned capture;
} tg_id_spec;

typedef struct tg_res_parent {
    const char *type;      /* Cedar entity type, e.g. Jira::Project */
    tg_id_spec id;
    const char *attr;      /* or NULL: name of the resource attribute holding this parent */
} tg_res_parent;

/* A catalog rule. Invariant: tool and risk are set; resource_type NULL means the rule
 * gives a risk only; otherwise resource_id has at least one pointer part. */
typedef struct tg_cat_rule {
    const char *where;         /* "FILE:LINE:COL" of the rule */
    const char *preset;        /* the preset file as written in catalog.presets; NULL inline */
    const char *tool;          /* exact tool name as the upstream names it, or a glob */
    const char *upstream;      /* NULL: any upstream */
    tg_risk risk;
    const char *resource_type;
    tg_id_spec resource_id;
    const tg_res_parent *parents;  /* nearest first */
    size_t nparents;
    int required;              /* unresolvable resource → deny RESOURCE_UNRESOLVED */
} tg_cat_rule;

/* A named change window. days: bit 0 = Monday … bit 6 = Sunday. Minutes from local
 * midnight in `tz`, from inclusive, to exclusive; to <= from wraps past midnight (the
 * window then belongs to the day it starts on). */
typedef struct tg_change_window {
    const char *name;
    const char *where;
    unsigned days;
    unsigned from_min, to_min;
    const char *tz;            /* IANA name ("Europe/Paris") or "UTC" */
} tg_change_window;

/* policy.overrides[]: a mode for the calls matching upstream (NULL: any) and tool (glob
 * over the upstream's tool name; NULL: any). The last matching override wins. */
typedef struct tg_mode_override {
    const char *where;
    const char *upstream;
    const char *tool;
    int shadow;
} tg_mode_override;

typedef struct tg_policy_conf {
    const char *where;          /* position of the `policy:` section; NULL when absent */
    const char *policies_dir;   /* absolute; every *.cedar in it, sorted by name */
    const char *entities_file;  /* absolute, or NULL (no entities) */
    int shadow;                 /* global mode: 0 enforce, 1 shadow */
    int deny_as_error;          /* 0: tools/call result with isError; 1: JSON-RPC error */
    const tg_mode_override *overrides;
    size_t noverrides;
    const tg_change_window *windows;
    size_t nwindows;
    const char **in_change_window;  /* names of the windows that define inChangeWindow */
    size_t nin_change_window;
} tg_policy_conf;

/* admin: — the admin listener (src/admin). Invariant: when `where` is set, listen_host
 * is loopback unless allow_remote, and a non-loopback listener has a token. */
typedef struct tg_admin_conf {
    const char *where;        /* "FILE:LINE:COL" of `admin:`; NULL: no admin listener */
    const char *listen_host;  /* default 127.0.0.1 */
    uint16_t listen_port;     /* default 9090 */
    int allow_remote;         /* 1: a non-loopback listen address is accepted */
    const char *token;        /* bearer token (resolved secret), or NULL */
} tg_admin_conf;

/* approvals: — just-in-time approvals (issue 7; src/approvals, docs/approvals.md).
 * Invariant: when `where` is set, an `admin:` section exists too (approvers act through
 * the admin listener), every duration is positive, and inbox_url is set (default
 * "http://<admin listen>/inbox"). Without the section an approval_required call is
 * refused with no request created. */
typedef enum { TG_APPROVAL_RETRY = 1, TG_APPROVAL_HOLD = 2 } tg_approval_mode;

/* approvals.modes[]: the mode for calls matching every given field; the last match wins. */
typedef struct tg_approval_mode_rule {
    const char *where;
    const char *upstream;        /* NULL: any */
    const char *tool;            /* glob over the upstream's own tool name; NULL: any */
    tg_risk risk;                /* 0: any */
    tg_approval_mode mode;
} tg_approval_mode_rule;

/* approvals.approvers.api_keys[]: an approver key ("tga_" + 43 base64url characters,
 * made by `toolgate approvals keygen`) as the SHA-256 of the whole key; the key itself is
 * never in the file. */
typedef struct tg_approver_key {
    const char *where;
    const char *user;            /* Cedar User id */
    const char **groups;         /* extra Group ids, besides the entities file's */
    size_t ngroups;
    unsigned char sha256[32];
} tg_approver_key;

typedef struct tg_approvals_conf {
    const char *where;           /* "FILE:LINE:COL" of `approvals:`, or NULL */
    tg_approval_mode mode;       /* default retry */
    const tg_approval_mode_rule *modes;
    size_t nmodes;
    int64_t expiry_ms;           /* pending → expired; default 15 min */
    int64_t grant_ttl_ms;        /* approved and unused → expired; default 15 min */
    int64_t hold_timeout_ms;     /* hold mode: the call waits at most this; default 120 s */
    int64_t progress_interval_ms;/* hold mode: notifications/progress period; default 5 s */
    const char *inbox_url;       /* approval URLs are inbox_url "#" id */
    int oauth_approvers;         /* approvers.oauth: accept OAuth tokens (needs auth.oauth) */
    const tg_approver_key *keys;
    size_t nkeys;
    const char *webhook_url;     /* or NULL */
    const char *webhook_secret;  /* HMAC-SHA256 key (resolved secret); set iff webhook_url */
    uint32_t webhook_timeout_ms; /* default 5 s per attempt */
    unsigned webhook_max_attempts; /* default 6 (backoff 1 s, 2 s, 4 s, …, at most 60 s) */
} tg_approvals_conf;

/* 127.0.0.0/8 or ::1 (a literal address as the listen grammar gives it). */
int tg_config_is_loopback(const char *host);

typedef struct tg_config {
    const char *path;          /* the file it was loaded from */
    const char *listen_host;   /* default 127.0.0.1 */
    uint16_t    listen_port;   /* default 8080 */
    const char *public_url;    /* canonical resource URL, e.g. https://toolgate.example/mcp;
                                  default http://<listen>/<mcp_path> */
    const char *mcp_path;      /* default /mcp */
    const char **allowed_origins; /* exact origins ("https://app.example"); n == 0 means
                                     only same-host origins of allowed_hosts */
    size_t nallowed_origins;
    const char **allowed_hosts;   /* Host header values accepted (with or without port);
                                     default: localhost, 127.0.0.1, [::1] and the host of
                                     public_url */
    size_t nallowed_hosts;
    tg_limits limits;
    tg_log_level log_level;    /* default info */
    const char *server_name;   /* serverInfo.name when several upstreams are federated;
                                  default "toolgate" */
    tg_upstream_conf *upstreams;
    size_t nupstreams;
    /* catalog: inline rules first (in file order), then each preset's rules (in the order
     * of catalog.presets, each file in its order). */
    const tg_cat_rule *catalog_rules;
    size_t ncatalog_rules;
    tg_policy_conf policy;

    /* store / audit / auth (issues 4 and 6; docs/configuration.md). Filled so that they
     * can be handed to tg_store_open_opts / tg_audit_open / tg_auth_new as they are.
     * Invariants: store.url is always set (default "sqlite:<config dir>/toolgate.db",
     * sqlite paths absolute); audit.store_url == store.url; audit.instance_id is set
     * (default: the host name); auth.resource == auth_audience or, when that is NULL,
     * public_url (it follows a listen override). auth.key_store is NULL: whoever opens
     * the store binds it (tg_keystore_sql). */
    tg_store_options store;
    tg_audit_options audit;
    int auth_enabled;          /* 0: `auth: none` or no `auth:` section — no authentication */
    const char *auth_where;    /* "FILE:LINE:COL" of the `auth:` section, or NULL */
    const char *auth_audience; /* auth.oauth.audience, or NULL (= public_url) */
    tg_auth_conf auth;         /* meaningful when auth_enabled */
    tg_admin_conf admin;       /* admin: (docs/configuration.md, docs/operations.md) */
    tg_approvals_conf approvals; /* approvals: (docs/approvals.md) */
} tg_config;

/* Loads and validates the whole file. On failure returns NULL and err holds
 * "FILE:LINE:COL: message" pointing at the offending node (or "FILE: message" when the
 * file itself cannot be read). The returned snapshot has one reference. */
tg_config *tg_config_load(const char *path, tg_error *err);

tg_config *tg_config_ref(tg_config *cfg);
void       tg_config_unref(tg_config *cfg);

/* Overrides the listen address of a freshly loaded snapshot, before it is shared
 * (`toolgate serve --listen HOST:PORT` / `--port N`). `listen` (same syntax as the
 * `listen` key) may be NULL to keep the host; port < 0 keeps the port, 0 is allowed here
 * (an ephemeral port, for tests: call again with the bound port once known). When
 * public_url / allowed_hosts were not configured, their defaults follow the new address.
 * Fails if anyone else already holds a reference. (Addition by the config module.) */
int tg_config_set_listen(tg_config *cfg, const char *listen, int port, tg_error *err);

/* Reads any YAML file (e.g. a `toolgate policy test` cases file) as JSON: mappings →
 * objects, sequences → arrays, plain scalars → null / true / false / integers / reals
 * when they are spelled so (YAML 1.2 core schema), everything else → strings. Duplicate
 * keys and syntax errors fail with "FILE:LINE:COL: message". Caller decrefs.
 * (Addition by the catalog/policy module.) */
json_t *tg_config_yaml_json(const char *path, tg_error *err);

/* The duration grammar of the seconds-valued keys (auth.api_keys.max_lifetime …), shared
 * with the command line (`keys create --ttl`): "30d", "12h", "90m", "45s" → seconds, or
 * "0" (callers decide what 0 means); at most 100 years; a unit is required except for 0.
 * -1 with *why a static sentence that never quotes the value. */
int tg_config_parse_seconds(const char *s, int64_t *out, const char **why);

/* Finds an upstream by name, or NULL. */
const tg_upstream_conf *tg_config_upstream(const tg_config *cfg, const char *name);

#endif /* TG_CONFIG_H */
