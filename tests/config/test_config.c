/*
 * test_config.c — tests of the configuration loader (src/config): what a user relies on
 * when writing toolgate.yaml. A valid file yields exactly the values written (and the
 * documented defaults); every mistake is refused with FILE:LINE:COL pointing at it;
 * secrets come from the environment or files and never show up in messages; snapshots
 * are freed when their last reference goes (checked by ASan in the sanitizer build).
 *
 * Each test writes toolgate.yaml into a private temporary directory (the working
 * directory of the whole run), so messages read "toolgate.yaml:L:C: ...".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config_int.h"
#include "config/tg_config.h"

static char tmpdir[PATH_MAX];
static char realtmp[PATH_MAX];

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static tg_config *load(const char *yaml, tg_error *err)
{
    write_file("toolgate.yaml", yaml, 0600);
    return tg_config_load("toolgate.yaml", err);
}

static tg_config *load_ok(const char *yaml)
{
    tg_error err = {{0}};
    tg_config *cfg = load(yaml, &err);
    if (!cfg)
        fail_msg("expected the configuration to load, got: %s", err.msg);
    return cfg;
}

static void expect_error(const char *yaml, const char *msg)
{
    tg_error err = {{0}};
    tg_config *cfg = load(yaml, &err);
    if (cfg) {
        tg_config_unref(cfg);
        fail_msg("loaded, but expected the error: %s", msg);
    }
    assert_string_equal(err.msg, msg);
}

/* A minimal valid upstream, to complete files whose subject is elsewhere. */
#define UPSTREAMS "upstreams:\n  - name: demo\n    transport: stdio\n    command: [/bin/cat]\n"

/* ------------------------------------------------------------------ valid files */

static void test_full_config(void **state)
{
    setenv("TG_TEST_TOKEN", "s3cret-env", 1);
    write_file("jira.token", "s3cret-file\n", 0600);
    tg_config *cfg = load_ok(
        "# every key, non-default values\n"
        "listen: 0.0.0.0:9000\n"
        "public_url: https://toolgate.example/mcp\n"
        "mcp_path: /gateway/mcp\n"
        "allowed_origins: [https://app.example, 'http://localhost:5173']\n"
        "allowed_hosts: [toolgate.example, 'localhost:9000']\n"
        "log_level: debug\n"
        "server_name: acme-gateway\n"
        "limits:\n"
        "  max_body_size: 1MiB\n"
        "  max_header_size: 8KiB\n"
        "  max_headers: 32\n"
        "  max_connections: 500\n"
        "  max_sessions: 100\n"
        "  header_timeout: 5s\n"
        "  body_timeout: 20s\n"
        "  idle_timeout: 1m\n"
        "  session_idle_timeout: 2h\n"
        "  sse_keepalive: 250ms\n"
        "upstreams:\n"
        "  - name: atlassian\n"
        "    transport: stdio\n"
        "    sessions: per-client\n"
        "    prefix: jira_\n"
        "    call_timeout: 30s\n"
        "    init_timeout: 5s\n"
        "    command: cat\n"
        "    args: ['-u', --]\n"
        "    env:\n"
        "      JIRA_API_TOKEN: ${TG_TEST_TOKEN}\n"
        "      JIRA_URL: https://jira.example\n"
        "      LITERAL: \"$${NOT_A_VAR}\"\n"
        "    inherit_env: [PATH]\n"
        "    cwd: .\n"
        "    restart_min: 100ms\n"
        "    restart_max: 10s\n"
        "    shutdown_grace: 3s\n"
        "  - name: wiki\n"
        "    transport: http\n"
        "    sessions: shared\n"
        "    url: http://127.0.0.1:3001/mcp?tenant=a\n"
        "    headers:\n"
        "      Authorization: Bearer ${TG_TEST_TOKEN}\n"
        "      X-Api-Key: file:jira.token\n"
        "    connect_timeout: 2s\n");

    assert_string_equal(cfg->path, "toolgate.yaml");
    assert_string_equal(cfg->listen_host, "0.0.0.0");
    assert_int_equal(cfg->listen_port, 9000);
    assert_string_equal(cfg->public_url, "https://toolgate.example/mcp");
    assert_string_equal(cfg->mcp_path, "/gateway/mcp");
    assert_int_equal(cfg->nallowed_origins, 2);
    assert_string_equal(cfg->allowed_origins[1], "http://localhost:5173");
    assert_int_equal(cfg->nallowed_hosts, 2);
    assert_string_equal(cfg->allowed_hosts[0], "toolgate.example");
    assert_int_equal(cfg->log_level, TG_LOG_DEBUG);
    assert_string_equal(cfg->server_name, "acme-gateway");
    assert_int_equal(cfg->limits.max_body_bytes, 1024 * 1024);
    assert_int_equal(cfg->limits.max_header_bytes, 8192);
    assert_int_equal(cfg->limits.max_headers, 32);
    assert_int_equal(cfg->limits.max_connections, 500);
    assert_int_equal(cfg->limits.max_sessions, 100);
    assert_int_equal(cfg->limits.header_timeout_ms, 5000);
    assert_int_equal(cfg->limits.body_timeout_ms, 20000);
    assert_int_equal(cfg->limits.idle_timeout_ms, 60000);
    assert_int_equal(cfg->limits.session_idle_ms, 7200000);
    assert_int_equal(cfg->limits.hold_sse_keepalive_ms, 250);

    assert_int_equal(cfg->nupstreams, 2);
    const tg_upstream_conf *a = tg_config_upstream(cfg, "atlassian");
    assert_ptr_equal(a, &cfg->upstreams[0]);
    assert_int_equal(a->transport, TG_UP_STDIO);
    assert_int_equal(a->sessions, TG_UP_SESSIONS_PER_CLIENT);
    assert_string_equal(a->prefix, "jira_");
    assert_int_equal(a->call_timeout_ms, 30000);
    assert_int_equal(a->init_timeout_ms, 5000);
    assert_int_equal(a->argc, 3);
    assert_true(a->argv[0][0] == '/');  /* resolved through PATH */
    assert_string_equal(strrchr(a->argv[0], '/'), "/cat");
    assert_string_equal(a->argv[1], "-u");
    assert_string_equal(a->argv[2], "--");
    assert_null(a->argv[3]);
    assert_int_equal(a->nenv, 4);
    assert_string_equal(a->env[0].key, "JIRA_API_TOKEN");
    assert_string_equal(a->env[0].value, "s3cret-env");
    assert_string_equal(a->env[1].value, "https://jira.example");
    assert_string_equal(a->env[2].value, "${NOT_A_VAR}");
    assert_string_equal(a->env[3].key, "PATH");
    assert_string_equal(a->env[3].value, getenv("PATH"));
    assert_string_equal(a->cwd, realtmp);
    assert_int_equal(a->restart_min_ms, 100);
    assert_int_equal(a->restart_max_ms, 10000);
    assert_int_equal(a->shutdown_grace_ms, 3000);

    const tg_upstream_conf *w = tg_config_upstream(cfg, "wiki");
    assert_int_equal(w->transport, TG_UP_HTTP);
    assert_int_equal(w->sessions, TG_UP_SESSIONS_SHARED);
    assert_null(w->prefix);
    assert_string_equal(w->url, "http://127.0.0.1:3001/mcp?tenant=a");
    assert_int_equal(w->nheaders, 2);
    assert_string_equal(w->headers[0].value, "Bearer s3cret-env");
    assert_string_equal(w->headers[1].key, "X-Api-Key");
    assert_string_equal(w->headers[1].value, "s3cret-file");  /* newline stripped */
    assert_int_equal(w->connect_timeout_ms, 2000);
    assert_null(tg_config_upstream(cfg, "nope"));
    tg_config_unref(cfg);
}

static void test_defaults(void **state)
{
    tg_config *cfg = load_ok(UPSTREAMS
                             "  - name: remote\n"
                             "    transport: http\n"
                             "    url: https://mcp.example/mcp\n");
    assert_string_equal(cfg->listen_host, "127.0.0.1");
    assert_int_equal(cfg->listen_port, 8080);
    assert_string_equal(cfg->mcp_path, "/mcp");
    assert_string_equal(cfg->public_url, "http://127.0.0.1:8080/mcp");
    assert_int_equal(cfg->nallowed_origins, 0);
    assert_int_equal(cfg->nallowed_hosts, 3);
    assert_string_equal(cfg->allowed_hosts[0], "localhost");
    assert_string_equal(cfg->allowed_hosts[1], "127.0.0.1");
    assert_string_equal(cfg->allowed_hosts[2], "[::1]");
    assert_int_equal(cfg->log_level, TG_LOG_INFO);
    assert_string_equal(cfg->server_name, "toolgate");
    assert_int_equal(cfg->limits.max_body_bytes, 4 * 1024 * 1024);
    assert_int_equal(cfg->limits.max_header_bytes, 16 * 1024);
    assert_int_equal(cfg->limits.max_headers, 64);
    assert_int_equal(cfg->limits.max_connections, 10000);
    assert_int_equal(cfg->limits.max_sessions, 10000);
    assert_int_equal(cfg->limits.header_timeout_ms, 10000);
    assert_int_equal(cfg->limits.body_timeout_ms, 30000);
    assert_int_equal(cfg->limits.idle_timeout_ms, 75000);
    assert_int_equal(cfg->limits.session_idle_ms, 3600000);
    assert_int_equal(cfg->limits.hold_sse_keepalive_ms, 15000);

    const tg_upstream_conf *d = &cfg->upstreams[0];
    assert_int_equal(d->sessions, TG_UP_SESSIONS_SHARED);   /* stdio: shared */
    assert_int_equal(d->call_timeout_ms, 60000);
    assert_int_equal(d->init_timeout_ms, 10000);
    assert_int_equal(d->restart_min_ms, 500);
    assert_int_equal(d->restart_max_ms, 30000);
    assert_int_equal(d->shutdown_grace_ms, 2000);
    assert_int_equal(d->nenv, 0);                           /* nothing inherited */
    assert_null(d->cwd);
    assert_string_equal(d->argv[0], "/bin/cat");
    const tg_upstream_conf *r = &cfg->upstreams[1];
    assert_int_equal(r->sessions, TG_UP_SESSIONS_PER_CLIENT); /* http: per client */
    assert_int_equal(r->connect_timeout_ms, 5000);
    tg_config_unref(cfg);

    /* The public URL's host joins the default allowed hosts; IPv6 listen is bracketed. */
    cfg = load_ok("listen: '[::1]:9443'\n" UPSTREAMS);
    assert_string_equal(cfg->listen_host, "::1");
    assert_string_equal(cfg->public_url, "http://[::1]:9443/mcp");
    assert_int_equal(cfg->nallowed_hosts, 3);
    tg_config_unref(cfg);
    cfg = load_ok("public_url: https://Gate.Example:8443/mcp\n" UPSTREAMS);
    assert_int_equal(cfg->nallowed_hosts, 4);
    assert_string_equal(cfg->allowed_hosts[3], "Gate.Example");
    tg_config_unref(cfg);
}

/* ------------------------------------------------------------------ errors */

static void test_unknown_keys(void **state)
{
    expect_error("upstreem:\n  - name: x\n",
                 "toolgate.yaml:1:1: unknown key \"upstreem\" (did you mean \"upstreams\"?)");
    expect_error(UPSTREAMS "    comand: [/bin/cat]\n",
                 "toolgate.yaml:5:5: upstreams[0]: unknown key \"comand\" (did you mean \"command\"?)");
    expect_error("limits:\n  body: 1MiB\n" UPSTREAMS,
                 "toolgate.yaml:2:3: limits: unknown key \"body\"; known keys: max_body_size, "
                 "max_header_size, max_headers, max_connections, max_sessions, header_timeout, "
                 "body_timeout, idle_timeout, session_idle_timeout, sse_keepalive");
    /* A key of the other transport is not silently ignored either. */
    expect_error(UPSTREAMS "    url: http://127.0.0.1:1/mcp\n",
                 "toolgate.yaml:5:5: upstreams[0].url: only valid for http upstreams");
}

static void test_duplicate_key(void **state)
{
    expect_error("listen: 127.0.0.1:1000\n" UPSTREAMS "listen: 127.0.0.1:2000\n",
                 "toolgate.yaml:6:1: duplicate key");
    expect_error(UPSTREAMS "    env: {A: x, A: y}\n", "toolgate.yaml:5:17: duplicate key");
}

static void test_yaml_syntax_error(void **state)
{
    expect_error(UPSTREAMS "allowed_hosts: [a, b\n",
                 "toolgate.yaml:6:1: flow sequence without a closing bracket");
    expect_error("", "toolgate.yaml:1:1: the file is empty; a configuration needs at least "
                     "\"upstreams\"");
    tg_error err;
    assert_null(tg_config_load("does-not-exist.yaml", &err));
    assert_string_equal(err.msg, "does-not-exist.yaml: cannot open: No such file or directory");
}

static void test_wrong_types(void **state)
{
    expect_error("listen: [127.0.0.1:80]\n" UPSTREAMS,
                 "toolgate.yaml:1:10: listen: expected a string, found a list");
    expect_error("mcp_path: true\n" UPSTREAMS,
                 "toolgate.yaml:1:11: mcp_path: expected a string, found the boolean true "
                 "(quote it to mean the text)");
    expect_error("limits:\n  max_headers: \"64\"\n" UPSTREAMS,
                 "toolgate.yaml:2:16: limits.max_headers: expected a number, found a quoted string");
    expect_error("limits: 5\n" UPSTREAMS,
                 "toolgate.yaml:1:9: limits: expected a mapping (key: value lines), found a "
                 "single value");
    expect_error("server_name:\n" UPSTREAMS,
                 "toolgate.yaml:1:1: server_name: expected a string, found nothing");
    expect_error("upstreams: {name: x}\n",
                 "toolgate.yaml:1:13: upstreams: expected a list of upstreams, found a mapping");
    expect_error("server_name: !!str x\n" UPSTREAMS,
                 "toolgate.yaml:1:20: server_name: YAML tags (!!type) are not supported; write "
                 "the value alone");
}

static void test_bad_enums(void **state)
{
    expect_error("upstreams:\n  - name: x\n    transport: tcp\n",
                 "toolgate.yaml:3:16: upstreams[0].transport: expected \"stdio\" or \"http\", "
                 "found \"tcp\"");
    expect_error(UPSTREAMS "    sessions: pooled\n",
                 "toolgate.yaml:5:15: upstreams[0].sessions: expected \"shared\" or "
                 "\"per-client\", found \"pooled\"");
    expect_error("log_level: verbose\n" UPSTREAMS,
                 "toolgate.yaml:1:12: log_level: expected one of debug, info, warn, error, "
                 "found \"verbose\"");
}

static void test_bad_sizes_and_durations(void **state)
{
    expect_error("limits:\n  max_body_size: 4 MiB\n" UPSTREAMS,
                 "toolgate.yaml:2:18: limits.max_body_size: expected a size such as 4MiB, "
                 "16KiB, 512kB or a number of bytes, found \"4 MiB\"");
    expect_error("limits:\n  max_body_size: 0\n" UPSTREAMS,
                 "toolgate.yaml:2:18: limits.max_body_size: must be greater than 0, found \"0\"");
    expect_error("limits:\n  header_timeout: 10\n" UPSTREAMS,
                 "toolgate.yaml:2:19: limits.header_timeout: expected a duration such as 250ms, "
                 "10s, 2m or 1h, found \"10\"");
    expect_error(UPSTREAMS "    call_timeout: 2000h\n",
                 "toolgate.yaml:5:19: upstreams[0].call_timeout: duration is too long (at most "
                 "1193h), found \"2000h\"");
    expect_error(UPSTREAMS "    restart_min: 1m\n    restart_max: 10s\n",
                 "toolgate.yaml:5:18: upstreams[0].restart_min: restart_min must not exceed "
                 "restart_max");
}

static void test_value_grammars(void **state)
{
    size_t sz;
    uint32_t ms;
    uint64_t n;
    const char *why;
    assert_int_equal(tg_config_parse_size("16KiB", &sz, &why), 0);
    assert_int_equal(sz, 16384);
    assert_int_equal(tg_config_parse_size("3GB", &sz, &why), 0);
    assert_int_equal(sz, 3000000000u);
    assert_int_equal(tg_config_parse_size("12", &sz, &why), 0);
    assert_int_equal(sz, 12);
    assert_int_equal(tg_config_parse_size("18446744073709551615GiB", &sz, &why), -1);
    assert_string_equal(why, "size is too large");
    assert_int_equal(tg_config_parse_size("-1", &sz, &why), -1);
    assert_int_equal(tg_config_parse_size("4mib", &sz, &why), -1);
    assert_int_equal(tg_config_parse_duration("4294967295ms", &ms, &why), 0);
    assert_int_equal(tg_config_parse_duration("4294967296ms", &ms, &why), -1);
    assert_int_equal(tg_config_parse_duration("1h30m", &ms, &why), -1);
    assert_int_equal(tg_config_parse_duration("2m", &ms, &why), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(tg_config_parse_count("+5", 100, &n, &why), -1);
    assert_int_equal(tg_config_parse_count("101", 100, &n, &why), -1);
}

static void test_bad_listen(void **state)
{
    expect_error("listen: localhost:8080\n" UPSTREAMS,
                 "toolgate.yaml:1:9: listen: the host must be a literal IP address such as "
                 "127.0.0.1, 0.0.0.0 or [::1], found \"localhost:8080\"");
    expect_error("listen: ::1:8080\n" UPSTREAMS,
                 "toolgate.yaml:1:9: listen: write an IPv6 address in brackets, e.g. [::1]:8080, "
                 "found \"::1:8080\"");
    expect_error("listen: 127.0.0.1:0\n" UPSTREAMS,
                 "toolgate.yaml:1:9: listen: the port must be a number from 1 to 65535, found "
                 "\"127.0.0.1:0\"");
    expect_error("listen: 127.0.0.1:65536\n" UPSTREAMS,
                 "toolgate.yaml:1:9: listen: the port must be a number from 1 to 65535, found "
                 "\"127.0.0.1:65536\"");
    expect_error("listen: 8080\n" UPSTREAMS,
                 "toolgate.yaml:1:9: listen: expected HOST:PORT, e.g. 127.0.0.1:8080 or "
                 "[::1]:8080, found \"8080\"");
}

static void test_urls_and_paths(void **state)
{
    expect_error("public_url: https://gate.example/mcp#top\n" UPSTREAMS,
                 "toolgate.yaml:1:13: public_url: must not contain a fragment (#...)");
    expect_error("public_url: /mcp\n" UPSTREAMS,
                 "toolgate.yaml:1:13: public_url: must be an absolute URL starting with http:// "
                 "or https://");
    expect_error("mcp_path: mcp\n" UPSTREAMS,
                 "toolgate.yaml:1:11: mcp_path: must start with / and contain only URL path "
                 "characters");
    expect_error("allowed_origins: [https://app.example/]\n" UPSTREAMS,
                 "toolgate.yaml:1:19: allowed_origins[0]: must be an origin: scheme://host[:port] "
                 "with no path, e.g. https://app.example");
    expect_error("upstreams:\n  - name: r\n    transport: http\n    url: http://u:p@h/mcp\n",
                 "toolgate.yaml:4:10: upstreams[0].url: must not contain user credentials "
                 "(user:password@); use headers for credentials");
    expect_error("upstreams:\n  - name: r\n    transport: http\n",
                 "toolgate.yaml:2:5: upstreams[0]: missing required key \"url\" (the upstream's "
                 "Streamable HTTP endpoint)");
}

static void test_secrets(void **state)
{
    unsetenv("TG_TEST_UNSET");
    expect_error(UPSTREAMS "    env: {TOKEN: \"${TG_TEST_UNSET}\"}\n",
                 "toolgate.yaml:5:18: upstreams[0].env.TOKEN: environment variable TG_TEST_UNSET "
                 "is not set");
    expect_error(UPSTREAMS "    env: {TOKEN: \"${not valid}\"}\n",
                 "toolgate.yaml:5:18: upstreams[0].env.TOKEN: malformed reference: write ${NAME} "
                 "with NAME made of letters, digits and _ (and $${ for a literal ${)");
    char want[2 * PATH_MAX];
    snprintf(want, sizeof want, "toolgate.yaml:5:18: upstreams[0].env.TOKEN: cannot read "
             "secret file %s/missing.token: No such file or directory", realtmp);
    expect_error(UPSTREAMS "    env: {TOKEN: file:missing.token}\n",
                 want);

    /* A value that came from a secret is never echoed in a message. */
    setenv("TG_TEST_URL", "ftp://top-secret-host/x", 1);
    tg_error err;
    assert_null(load("upstreams:\n  - name: r\n    transport: http\n    url: ${TG_TEST_URL}\n",
                     &err));
    assert_string_equal(err.msg, "toolgate.yaml:4:10: upstreams[0].url: must be an absolute URL "
                                 "starting with http:// or https://");
    setenv("TG_TEST_HDR", "a\r\nX-Injected: 1", 1);
    assert_null(load("upstreams:\n  - name: r\n    transport: http\n    url: http://h/mcp\n"
                     "    headers: {X-Token: \"${TG_TEST_HDR}\"}\n", &err));
    assert_string_equal(err.msg, "toolgate.yaml:5:24: upstreams[0].headers.X-Token: a header "
                                 "value must not contain line breaks");
    assert_null(strstr(err.msg, "Injected"));

    /* file: with CRLF, relative to the configuration's directory. */
    assert_int_equal(mkdir("secrets", 0700), 0);
    write_file("secrets/t", "line1\nline2\r\n", 0600);
    tg_config *cfg = load_ok(UPSTREAMS "    env: {T: file:./secrets/t}\n");
    assert_string_equal(cfg->upstreams[0].env[0].value, "line1\nline2");
    tg_config_unref(cfg);
    assert_int_equal(chmod("secrets/t", 0), 0);
    if (access("secrets/t", R_OK) != 0)   /* root reads anything: skip the check then */
        expect_error(UPSTREAMS "    env: {T: file:./secrets/t}\n",
                     "toolgate.yaml:5:13: upstreams[0].env.T: cannot read secret file "
                     "./secrets/t: Permission denied");
}

static void test_commands(void **state)
{
    char want[2 * PATH_MAX];
    assert_int_equal(mkdir("bin", 0755), 0);
    write_file("bin/server.sh", "#!/bin/sh\nexit 0\n", 0755);
    write_file("bin/notexec.sh", "#!/bin/sh\n", 0644);

    /* Relative paths with a '/' are against the configuration's directory. */
    tg_config *cfg = load_ok("upstreams:\n  - name: s\n    transport: stdio\n"
                             "    command: ./bin/server.sh\n    args: [--stdio]\n");
    snprintf(want, sizeof want, "%s/bin/server.sh", realtmp);
    assert_string_equal(cfg->upstreams[0].argv[0], want);
    assert_string_equal(cfg->upstreams[0].argv[1], "--stdio");
    assert_int_equal(cfg->upstreams[0].argc, 2);
    tg_config_unref(cfg);

    snprintf(want, sizeof want, "toolgate.yaml:4:15: upstreams[0].command[0]: %s/bin/notexec.sh "
                                "is not an executable file", realtmp);
    expect_error("upstreams:\n  - name: s\n    transport: stdio\n    command: [bin/notexec.sh]\n",
                 want);
    expect_error("upstreams:\n  - name: s\n    transport: stdio\n"
                 "    command: no-such-program-tg\n    env: {PATH: /nonexistent}\n",
                 "toolgate.yaml:4:14: upstreams[0].command: command \"no-such-program-tg\" was "
                 "not found in PATH (/nonexistent)");
    expect_error("upstreams:\n  - name: s\n    transport: stdio\n",
                 "toolgate.yaml:2:5: upstreams[0]: missing required key \"command\" (stdio "
                 "upstreams run a program)");
    expect_error("upstreams:\n  - name: s\n    transport: stdio\n    command: []\n",
                 "toolgate.yaml:4:5: upstreams[0].command: must name a program");
    expect_error(UPSTREAMS "    args: [x]\n",
                 "toolgate.yaml:5:12: upstreams[0].args: args cannot be combined with a command "
                 "list; put the arguments in the command list");
}

static void test_environment(void **state)
{
    setenv("TG_TEST_INHERIT", "inherited", 1);
    unsetenv("TG_TEST_NOT_SET");
    tg_config *cfg = load_ok(UPSTREAMS "    env: {A: '1'}\n"
                             "    inherit_env: [TG_TEST_INHERIT, TG_TEST_NOT_SET]\n");
    const tg_upstream_conf *u = &cfg->upstreams[0];
    assert_int_equal(u->nenv, 2);  /* unset variables are skipped */
    assert_string_equal(u->env[1].key, "TG_TEST_INHERIT");
    assert_string_equal(u->env[1].value, "inherited");
    tg_config_unref(cfg);
    expect_error(UPSTREAMS "    env: {A: '1'}\n    inherit_env: [PATH, A]\n",
                 "toolgate.yaml:6:25: upstreams[0].inherit_env[1]: A is both set in env and "
                 "listed in inherit_env");
    expect_error(UPSTREAMS "    env: {1A: x}\n",
                 "toolgate.yaml:5:11: upstreams[0].env: \"1A\" is not a valid environment "
                 "variable name");
    expect_error("upstreams:\n  - name: r\n    transport: http\n    url: http://h/mcp\n"
                 "    headers:\n      Authorization: a\n      authorization: b\n",
                 "toolgate.yaml:7:7: upstreams[0].headers.authorization: header authorization "
                 "is given twice (names are case-insensitive)");
    expect_error("upstreams:\n  - name: r\n    transport: http\n    url: http://h/mcp\n"
                 "    headers: {Mcp-Session-Id: x}\n",
                 "toolgate.yaml:5:15: upstreams[0].headers: header Mcp-Session-Id is set by "
                 "toolgate and cannot be configured");
}

static void test_upstream_list_rules(void **state)
{
    expect_error("listen: 127.0.0.1:1234\n",
                 "toolgate.yaml:1:1: missing required key \"upstreams\" (at least one MCP server "
                 "to put behind toolgate)");
    expect_error("upstreams: []\n",
                 "toolgate.yaml:1:1: upstreams: at least one upstream is required");
    expect_error(UPSTREAMS "  - name: demo\n    transport: stdio\n    command: [/bin/cat]\n",
                 "toolgate.yaml:5:11: upstreams[1].name: upstream name \"demo\" is already used "
                 "by upstreams[0]");
    expect_error("upstreams:\n  - name: 'a b'\n    transport: stdio\n    command: [/bin/cat]\n",
                 "toolgate.yaml:2:11: upstreams[0].name: names use only letters, digits, _ and - "
                 "(at most 64)");
    expect_error(UPSTREAMS "    prefix: 'x/'\n",
                 "toolgate.yaml:5:13: upstreams[0].prefix: a prefix uses only letters, digits, _, "
                 "- and . (the characters of MCP tool names; at most 64)");
    expect_error(UPSTREAMS "    prefix: p_\n  - name: two\n    transport: stdio\n"
                 "    command: [/bin/cat]\n    prefix: p_\n",
                 "toolgate.yaml:9:13: upstreams[1].prefix: prefix \"p_\" is already used by "
                 "upstream demo");
    expect_error("upstreams:\n  - transport: stdio\n    command: [/bin/cat]\n",
                 "toolgate.yaml:2:5: upstreams[0]: missing required key \"name\"");
    expect_error("upstreams:\n  - name: x\n",
                 "toolgate.yaml:2:5: upstreams[0]: missing required key \"transport\" (\"stdio\" "
                 "or \"http\")");
}

/* ------------------------------------------------------------------ lifetime */

/* ------------------------------------------------------------------ store, audit, auth */

static void test_runtime_defaults(void **state)
{
    char host[256] = "";
    tg_config *cfg = load_ok(UPSTREAMS);
    char *want = NULL;
    assert_true(asprintf(&want, "sqlite:%s/toolgate.db", realtmp) > 0);
    assert_string_equal(cfg->store.url, want);
    assert_string_equal(cfg->audit.store_url, want);
    gethostname(host, sizeof host - 1);
    assert_string_equal(cfg->audit.instance_id, host);
    assert_int_equal(cfg->audit.durability, TG_AUDIT_STRICT);
    assert_null(cfg->audit.signing_key_path);
    assert_null(cfg->audit.jsonl_path);
    assert_int_equal(cfg->auth_enabled, 0);
    assert_null(cfg->auth_where);
    assert_int_equal(cfg->auth.api_key_rotation_overlap_s, 86400);
    free(want);
    tg_config_unref(cfg);

    cfg = load_ok("auth: none\n" UPSTREAMS);
    assert_int_equal(cfg->auth_enabled, 0);
    assert_string_equal(cfg->auth_where, "toolgate.yaml:1:7");
    tg_config_unref(cfg);
}

static void test_store_audit_sections(void **state)
{
    setenv("TG_TEST_PGPASS", "pg-s3cret", 1);
    tg_config *cfg = load_ok("store: sqlite:data/store.db\n" UPSTREAMS);
    char *want = NULL;
    assert_true(asprintf(&want, "sqlite:%s/data/store.db", realtmp) > 0);
    assert_string_equal(cfg->store.url, want);
    free(want);
    tg_config_unref(cfg);

    cfg = load_ok(
        "store:\n"
        "  url: postgres://tg:${TG_TEST_PGPASS}@db/toolgate\n"
        "  queue_max: 50\n"
        "  batch_max: 8\n"
        "audit:\n"
        "  instance_id: gw-eu-1\n"
        "  mode: batched\n"
        "  batched_queue_max: 77\n"
        "  outcome: async\n"
        "  signing_key: keys/audit.key\n"
        "  checkpoint: {every: 10, interval: 5s}\n"
        "  redact: [\"*token*\", cookie]\n"
        "  jsonl: \"-\"\n"
        UPSTREAMS);
    assert_string_equal(cfg->store.url, "postgres://tg:pg-s3cret@db/toolgate");
    assert_int_equal(cfg->store.queue_max, 50);
    assert_int_equal(cfg->store.batch_max, 8);
    assert_string_equal(cfg->audit.store_url, cfg->store.url);
    assert_string_equal(cfg->audit.instance_id, "gw-eu-1");
    assert_int_equal(cfg->audit.durability, TG_AUDIT_BATCHED);
    assert_int_equal(cfg->audit.batched_queue_max, 77);
    assert_int_equal(cfg->audit.async_outcomes, 1);
    assert_true(asprintf(&want, "%s/keys/audit.key", realtmp) > 0);
    assert_string_equal(cfg->audit.signing_key_path, want);
    free(want);
    assert_int_equal(cfg->audit.checkpoint_every, 10);
    assert_int_equal(cfg->audit.checkpoint_ms, 5000);
    assert_int_equal(cfg->audit.n_redact, 2);
    assert_string_equal(cfg->audit.redact[0], "*token*");
    assert_string_equal(cfg->audit.redact[1], "cookie");
    assert_string_equal(cfg->audit.jsonl_path, "-");
    tg_config_unref(cfg);

    cfg = load_ok("store: host=db dbname=toolgate\n" UPSTREAMS);
    assert_string_equal(cfg->store.url, "host=db dbname=toolgate");
    tg_config_unref(cfg);
}

static void test_store_audit_errors(void **state)
{
    setenv("TG_TEST_PGPASS", "pg-s3cret", 1);
    expect_error("store: mysql://tg:${TG_TEST_PGPASS}@db\n" UPSTREAMS,
                 "toolgate.yaml:1:8: store: expected sqlite:PATH, a postgres:// or postgresql:// "
                 "URL, or a PostgreSQL conninfo such as \"host=db dbname=toolgate\"");
    expect_error("store: \"sqlite:\"\n" UPSTREAMS,
                 "toolgate.yaml:1:8: store: sqlite: needs a file path, e.g. "
                 "sqlite:/var/lib/toolgate/store.db");
    expect_error("store:\n  queue_max: 5\n" UPSTREAMS,
                 "toolgate.yaml:2:3: store: missing required key \"url\" (sqlite:PATH or a "
                 "PostgreSQL URL)");
    expect_error("store:\n  url: sqlite:x.db\n  batch_max: 0\n" UPSTREAMS,
                 "toolgate.yaml:3:14: store.batch_max: must be greater than 0, found \"0\"");
    expect_error("audit:\n  outcome: later\n" UPSTREAMS,
                 "toolgate.yaml:2:12: audit.outcome: expected \"durable\" or \"async\", found \"later\"");
    expect_error("audit:\n  mode: relaxed\n" UPSTREAMS,
                 "toolgate.yaml:2:9: audit.mode: expected \"strict\" or \"batched\", found \"relaxed\"");
    expect_error("audit:\n  instance_id: \"gw 1\"\n" UPSTREAMS,
                 "toolgate.yaml:2:16: audit.instance_id: an instance id uses only letters, "
                 "digits, _, - and . (at most 64)");
    expect_error("audit:\n  checkpoint:\n    every: 10\n    intervall: 5s\n" UPSTREAMS,
                 "toolgate.yaml:4:5: audit.checkpoint: unknown key \"intervall\" (did you mean "
                 "\"interval\"?)");
    expect_error("audit:\n  checkpoint: {every: 5000000000}\n" UPSTREAMS,
                 "toolgate.yaml:2:23: audit.checkpoint.every: number is too large, found "
                 "\"5000000000\"");
    expect_error("audit:\n  redact: []\n" UPSTREAMS,
                 "toolgate.yaml:2:3: audit.redact: must name at least one key; omit `redact` for "
                 "the defaults");
}

static void test_auth_section(void **state)
{
    tg_config *cfg = load_ok(
        "public_url: https://toolgate.example/mcp\n"
        "auth:\n"
        "  trusted_proxies: [10.0.0.0/8, \"::1\"]\n"
        "  oauth:\n"
        "    issuers:\n"
        "      - issuer: https://login.example.com/\n"
        "        jwks_uri: https://login.example.com/jwks.json\n"
        "      - {issuer: https://other.example/}\n"
        "    required_scopes: [mcp:tools]\n"
        "    scopes_supported: [mcp:tools, mcp:admin]\n"
        "    leeway: 0\n"
        "    delegator_claim: email\n"
        "    groups_claim: roles\n"
        "    domain_claim: upn\n"
        "    allowed_domains: [example.com]\n"
        "    default_agent: unknown-agent\n"
        "    token_cache_size: 100\n"
        "    max_token_size: 4KiB\n"
        "    jwks_refetch_interval: 10s\n"
        "    jwks_max_age: 2h\n"
        "    fetch_timeout: 3s\n"
        "  api_keys:\n"
        "    allowed_cidrs: [127.0.0.0/8, \"2001:db8::/32\"]\n"
        "    max_lifetime: 90d\n"
        "    rotation_overlap: 0\n"
        UPSTREAMS);
    const tg_auth_conf *a = &cfg->auth;
    assert_int_equal(cfg->auth_enabled, 1);
    assert_string_equal(a->resource, "https://toolgate.example/mcp");
    assert_int_equal(a->oauth_enabled, 1);
    assert_int_equal(a->n_issuers, 2);
    assert_string_equal(a->issuers[0].issuer, "https://login.example.com/");
    assert_string_equal(a->issuers[0].jwks_uri, "https://login.example.com/jwks.json");
    assert_null(a->issuers[1].jwks_uri);
    assert_int_equal(a->n_required_scopes, 1);
    assert_string_equal(a->required_scopes[0], "mcp:tools");
    assert_int_equal(a->n_scopes_supported, 2);
    assert_int_equal(a->leeway_s, -1);  /* 0 written: no tolerance */
    assert_string_equal(a->delegator_claim, "email");
    assert_string_equal(a->groups_claim, "roles");
    assert_string_equal(a->domain_claim, "upn");
    assert_string_equal(a->allowed_domains[0], "example.com");
    assert_string_equal(a->default_agent, "unknown-agent");
    assert_int_equal(a->token_cache_size, 100);
    assert_int_equal(a->max_token_bytes, 4096);
    assert_int_equal(a->jwks_refetch_interval_ms, 10000);
    assert_int_equal(a->jwks_max_age_ms, 7200000);
    assert_int_equal(a->fetch_timeout_ms, 3000);
    assert_int_equal(a->api_keys_enabled, 1);
    assert_int_equal(a->n_api_key_cidrs, 2);
    assert_int_equal(a->api_key_max_lifetime_s, 90 * 86400);
    assert_int_equal(a->api_key_rotation_overlap_s, 0);
    assert_int_equal(a->n_trusted_proxies, 2);
    assert_null(a->key_store);
    tg_config_unref(cfg);

    /* Either method can be switched off; the audience follows public_url and a listen
     * override unless it is set. */
    cfg = load_ok("auth:\n  oauth:\n    enabled: false\n  api_keys: {}\n" UPSTREAMS);
    assert_int_equal(cfg->auth.oauth_enabled, 0);
    assert_int_equal(cfg->auth.api_keys_enabled, 1);
    assert_string_equal(cfg->auth.resource, "http://127.0.0.1:8080/mcp");
    assert_int_equal(tg_config_set_listen(cfg, NULL, 9999, &(tg_error){{0}}), 0);
    assert_string_equal(cfg->auth.resource, "http://127.0.0.1:9999/mcp");
    tg_config_unref(cfg);

    cfg = load_ok("auth:\n  oauth:\n    audience: https://aud.example/mcp\n"
                  "    issuers: [{issuer: https://i.example/}]\n" UPSTREAMS);
    assert_string_equal(cfg->auth.resource, "https://aud.example/mcp");
    assert_int_equal(cfg->auth.api_keys_enabled, 0);
    tg_config_unref(cfg);
}

static void test_auth_errors(void **state)
{
    expect_error("auth: off\n" UPSTREAMS,
                 "toolgate.yaml:1:7: auth: expected `none` or a mapping with oauth / api_keys, "
                 "found \"off\"");
    expect_error("auth: {}\n" UPSTREAMS,
                 "toolgate.yaml:1:1: auth: neither oauth nor api_keys is enabled; write `auth: "
                 "none` to run without authentication");
    expect_error("auth:\n  api_keys:\n    enabled: no\n" UPSTREAMS,
                 "toolgate.yaml:3:14: auth.api_keys.enabled: expected true or false, found \"no\"");
    expect_error("auth:\n  oauth:\n    required_scopes: [a]\n" UPSTREAMS,
                 "toolgate.yaml:3:5: auth.oauth: missing required key \"issuers\" (who may issue "
                 "tokens for toolgate)");
    expect_error("auth:\n  oauth:\n    issuers: []\n" UPSTREAMS,
                 "toolgate.yaml:3:5: auth.oauth.issuers: at least one issuer is required when "
                 "oauth is enabled");
    expect_error("auth:\n  oauth:\n    issuers:\n      - jwks_uri: https://x.example/k\n" UPSTREAMS,
                 "toolgate.yaml:4:9: auth.oauth.issuers[0]: missing required key \"issuer\" (the "
                 "exact `iss` of its tokens)");
    expect_error("auth:\n  oauth:\n    issuers:\n      - issuer: login.example.com\n" UPSTREAMS,
                 "toolgate.yaml:4:17: auth.oauth.issuers[0].issuer: must be an absolute URL "
                 "starting with http:// or https://");
    expect_error("auth:\n  oauth:\n    issuers: [{issuer: https://a.example/}, "
                 "{issuer: https://a.example/}]\n" UPSTREAMS,
                 "toolgate.yaml:3:54: auth.oauth.issuers[1].issuer: issuer is already listed at "
                 "auth.oauth.issuers[0]");
    expect_error("auth:\n  oauth:\n    issuers: [{issuer: https://a.example/}]\n    leeway: 11m\n"
                 UPSTREAMS,
                 "toolgate.yaml:4:13: auth.oauth.leeway: at most 10m: a larger leeway accepts "
                 "long-expired tokens");
    expect_error("auth:\n  api_keys:\n    allowed_cidrs: [10.0.0.1/8]\n" UPSTREAMS,
                 "toolgate.yaml:3:21: auth.api_keys.allowed_cidrs[0]: the address has bits set "
                 "past the prefix length (write the network address), found \"10.0.0.1/8\"");
    expect_error("auth:\n  trusted_proxies: [10.0.0.0/33]\n  api_keys: {}\n" UPSTREAMS,
                 "toolgate.yaml:2:21: auth.trusted_proxies[0]: expected an IP address or CIDR "
                 "such as 10.0.0.0/8 or 2001:db8::/32, found \"10.0.0.0/33\"");
    expect_error("auth:\n  api_keys:\n    max_lifetime: 3w\n" UPSTREAMS,
                 "toolgate.yaml:3:19: auth.api_keys.max_lifetime: expected a duration such as "
                 "30d, 12h, 90m, 45s or 0, found \"3w\"");
    expect_error("auth:\n  api_keys:\n    rotation_overlaps: 1d\n" UPSTREAMS,
                 "toolgate.yaml:3:5: auth.api_keys: unknown key \"rotation_overlaps\" (did you "
                 "mean \"rotation_overlap\"?)");
    expect_error("auth:\n  oauth:\n    issuers: [{issuer: https://a.example/}]\n"
                 "    allowed_domains: [alice@example.com]\n" UPSTREAMS,
                 "toolgate.yaml:4:23: auth.oauth.allowed_domains[0]: expected a domain name such "
                 "as example.com");
}

static void test_seconds_and_cidrs(void **state)
{
    int64_t v;
    const char *why;
    assert_int_equal(tg_config_parse_seconds("30d", &v, &why), 0);
    assert_int_equal(v, 30 * 86400);
    assert_int_equal(tg_config_parse_seconds("0", &v, &why), 0);
    assert_int_equal(v, 0);
    assert_int_equal(tg_config_parse_seconds("90m", &v, &why), 0);
    assert_int_equal(v, 5400);
    assert_int_equal(tg_config_parse_seconds("1500ms", &v, &why), -1);
    assert_int_equal(tg_config_parse_seconds("d", &v, &why), -1);
    assert_int_equal(tg_config_parse_seconds("-1d", &v, &why), -1);
    assert_int_equal(tg_config_parse_seconds("99999999999d", &v, &why), -1);
    assert_int_equal(tg_config_check_cidr("10.0.0.0/8", &why), 0);
    assert_int_equal(tg_config_check_cidr("127.0.0.1", &why), 0);
    assert_int_equal(tg_config_check_cidr("2001:db8::/32", &why), 0);
    assert_int_equal(tg_config_check_cidr("::/0", &why), 0);
    assert_int_equal(tg_config_check_cidr("2001:db8::1/32", &why), -1);
    assert_int_equal(tg_config_check_cidr("10.0.0.0/08", &why), -1);
    assert_int_equal(tg_config_check_cidr("10.0.0.0/", &why), -1);
    assert_int_equal(tg_config_check_cidr("10.0.0/8", &why), -1);
    assert_int_equal(tg_config_check_cidr("/8", &why), -1);
}

static void test_refcount(void **state)
{
    tg_config *cfg = load_ok(UPSTREAMS);
    assert_ptr_equal(tg_config_ref(cfg), cfg);
    assert_ptr_equal(tg_config_ref(cfg), cfg);
    tg_config_unref(cfg);
    tg_config_unref(cfg);
    /* Still alive with one reference: reading it must not touch freed memory. */
    assert_string_equal(cfg->upstreams[0].name, "demo");
    tg_config_unref(cfg);  /* last: everything freed (ASan reports leaks otherwise) */
    tg_config_unref(NULL);
}

static void test_set_listen(void **state)
{
    tg_error err;
    tg_config *cfg = load_ok(UPSTREAMS);
    assert_int_equal(tg_config_set_listen(cfg, NULL, 0, &err), 0);
    assert_int_equal(tg_config_set_listen(cfg, NULL, 40123, &err), 0);
    assert_string_equal(cfg->public_url, "http://127.0.0.1:40123/mcp");
    assert_int_equal(tg_config_set_listen(cfg, "[::1]:7000", -1, &err), 0);
    assert_string_equal(cfg->listen_host, "::1");
    assert_int_equal(cfg->listen_port, 7000);
    assert_string_equal(cfg->public_url, "http://[::1]:7000/mcp");
    assert_int_equal(tg_config_set_listen(cfg, "nohost", -1, &err), -1);
    assert_string_equal(err.msg, "--listen: expected HOST:PORT, e.g. 127.0.0.1:8080 or "
                                 "[::1]:8080, found \"nohost\"");
    /* Once shared, the snapshot is immutable. */
    tg_config_ref(cfg);
    assert_int_equal(tg_config_set_listen(cfg, NULL, 1, &err), -1);
    tg_config_unref(cfg);
    tg_config_unref(cfg);

    /* A configured public_url does not follow the listen address. */
    cfg = load_ok("public_url: https://gate.example/mcp\n" UPSTREAMS);
    assert_int_equal(tg_config_set_listen(cfg, NULL, 9999, &err), 0);
    assert_string_equal(cfg->public_url, "https://gate.example/mcp");
    tg_config_unref(cfg);
}

/* ------------------------------------------------------------------ fixture */

/* ------------------------------------------------------------------ approvals */

#define ADMIN "admin: {listen: 127.0.0.1:9191}\n"
#define KEYHASH "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static void test_approvals_section(void **state)
{
    setenv("TG_TEST_HOOK_SECRET", "s3cret-hook", 1);
    tg_config *cfg = load_ok(UPSTREAMS ADMIN
        "approvals:\n"
        "  mode: hold\n"
        "  modes:\n"
        "    - {risk: high, mode: hold}\n"
        "    - {upstream: demo, tool: \"merge_*\", mode: retry}\n"
        "  expiry: 10m\n"
        "  grant_ttl: 2m\n"
        "  hold_timeout: 90s\n"
        "  progress_interval: 2s\n"
        "  approvers:\n"
        "    api_keys:\n"
        "      - {user: bob, key_sha256: \"" KEYHASH "\", groups: [release-managers]}\n"
        "      - {user: carol, key_sha256: \"" "00000000000000000000000000000000000000000000000000000000000000FF" "\"}\n"
        "  webhook:\n"
        "    url: https://hooks.example/toolgate\n"
        "    secret: ${TG_TEST_HOOK_SECRET}\n"
        "    timeout: 3s\n"
        "    max_attempts: 4\n");
    const tg_approvals_conf *c = &cfg->approvals;
    assert_non_null(c->where);
    assert_int_equal(c->mode, TG_APPROVAL_HOLD);
    assert_int_equal(c->nmodes, 2);
    assert_int_equal(c->modes[0].risk, TG_RISK_HIGH);
    assert_null(c->modes[0].upstream);
    assert_string_equal(c->modes[1].upstream, "demo");
    assert_string_equal(c->modes[1].tool, "merge_*");
    assert_int_equal(c->modes[1].mode, TG_APPROVAL_RETRY);
    assert_int_equal(c->expiry_ms, 600000);
    assert_int_equal(c->grant_ttl_ms, 120000);
    assert_int_equal(c->hold_timeout_ms, 90000);
    assert_int_equal(c->progress_interval_ms, 2000);
    assert_string_equal(c->inbox_url, "http://127.0.0.1:9191/inbox");
    assert_int_equal(c->oauth_approvers, 0);
    assert_int_equal(c->nkeys, 2);
    assert_string_equal(c->keys[0].user, "bob");
    assert_int_equal(c->keys[0].ngroups, 1);
    assert_string_equal(c->keys[0].groups[0], "release-managers");
    assert_int_equal(c->keys[0].sha256[0], 0x9f);
    assert_int_equal(c->keys[0].sha256[31], 0x08);
    assert_int_equal(c->keys[1].sha256[31], 0xff);
    assert_int_equal(c->keys[1].ngroups, 0);
    assert_string_equal(c->webhook_url, "https://hooks.example/toolgate");
    assert_string_equal(c->webhook_secret, "s3cret-hook");
    assert_int_equal(c->webhook_timeout_ms, 3000);
    assert_int_equal(c->webhook_max_attempts, 4);
    tg_config_unref(cfg);

    /* Defaults; the section may come before admin:. */
    cfg = load_ok(UPSTREAMS "approvals: {inbox_url: \"https://tg.example/inbox\"}\n" ADMIN);
    c = &cfg->approvals;
    assert_int_equal(c->mode, TG_APPROVAL_RETRY);
    assert_int_equal(c->nmodes, 0);
    assert_int_equal(c->expiry_ms, 15 * 60000);
    assert_int_equal(c->grant_ttl_ms, 15 * 60000);
    assert_int_equal(c->hold_timeout_ms, 120000);
    assert_int_equal(c->progress_interval_ms, 5000);
    assert_string_equal(c->inbox_url, "https://tg.example/inbox");
    assert_null(c->webhook_url);
    tg_config_unref(cfg);

    /* Loopback http webhooks need no allow_insecure; others do. */
    cfg = load_ok(UPSTREAMS ADMIN "approvals:\n  webhook: {url: \"http://127.0.0.1:7000/h\", secret: x}\n");
    assert_int_equal(cfg->approvals.webhook_timeout_ms, 5000);
    assert_int_equal(cfg->approvals.webhook_max_attempts, 6);
    tg_config_unref(cfg);
    cfg = load_ok(UPSTREAMS ADMIN "approvals:\n  webhook: {url: \"http://hooks.lan/h\", secret: x, allow_insecure: true}\n");
    tg_config_unref(cfg);

    /* No section: no approvals. */
    cfg = load_ok(UPSTREAMS);
    assert_null(cfg->approvals.where);
    tg_config_unref(cfg);
}

static void test_approvals_errors(void **state)
{
    expect_error(UPSTREAMS "approvals: {mode: hold}\n",
                 "toolgate.yaml:5:13: approvals: approvers act through the admin listener: add "
                 "an `admin:` section (e.g. admin: {listen: 127.0.0.1:9090})");
    expect_error(UPSTREAMS ADMIN "approvals: {mode: later}\n",
                 "toolgate.yaml:6:19: approvals.mode: expected \"retry\" or \"hold\", found \"later\"");
    expect_error(UPSTREAMS ADMIN "approvals: {expire: 1m}\n",
                 "toolgate.yaml:6:13: approvals: unknown key \"expire\" (did you mean \"expiry\"?)");
    expect_error(UPSTREAMS ADMIN "approvals: {expiry: 0s}\n",
                 "toolgate.yaml:6:21: approvals.expiry: must be greater than 0, found \"0s\"");
    expect_error(UPSTREAMS ADMIN "approvals: {hold_timeout: [1]}\n",
                 "toolgate.yaml:6:28: approvals.hold_timeout: expected a duration, found a list");
    expect_error(UPSTREAMS ADMIN "approvals:\n  mode: hold\n  mode: retry\n",
                 "toolgate.yaml:8:3: duplicate key");
    expect_error(UPSTREAMS ADMIN "approvals:\n  modes: [{risk: huge, mode: hold}]\n",
                 "toolgate.yaml:7:18: approvals.modes[0].risk: expected read, write or high, found \"huge\"");
    expect_error(UPSTREAMS ADMIN "approvals:\n  modes: [{risk: high}]\n",
                 "toolgate.yaml:7:12: approvals.modes[0]: missing required key \"mode\" (retry or hold)");
    expect_error(UPSTREAMS ADMIN "approvals:\n  modes: [{mode: hold}]\n",
                 "toolgate.yaml:7:12: approvals.modes[0]: a mode rule names a risk, an upstream, a tool, or several");
    expect_error(UPSTREAMS ADMIN "approvals:\n  modes: [{risk: high, mode: hold}, {upstream: jira, mode: hold}]\n",
                 "toolgate.yaml:7:48: approvals.modes[1].upstream: no upstream is named \"jira\"");
    expect_error(UPSTREAMS ADMIN "approvals:\n  modes: {risk: high}\n",
                 "toolgate.yaml:7:11: approvals.modes: expected a list of mode rules, found a mapping");
    expect_error(UPSTREAMS ADMIN "approvals:\n  inbox_url: \"ftp://x/inbox\"\n",
                 "toolgate.yaml:7:14: approvals.inbox_url: must be an absolute URL starting with http:// or https://, found \"ftp://x/inbox\"");
    expect_error(UPSTREAMS ADMIN "approvals:\n  approvers: {oauth: true}\n",
                 "toolgate.yaml:7:22: approvals.approvers.oauth: OAuth approvers need an `auth.oauth` section (their tokens are checked against its issuers)");
    expect_error(UPSTREAMS ADMIN "approvals:\n  approvers: {oauth: yes}\n",
                 "toolgate.yaml:7:22: approvals.approvers.oauth: expected true or false, found \"yes\"");
    expect_error(UPSTREAMS ADMIN "approvals:\n  approvers:\n    api_keys: [{user: bob}]\n",
                 "toolgate.yaml:8:17: approvals.approvers.api_keys[0]: missing required key \"key_sha256\" (from `toolgate approvals keygen`)");
    expect_error(UPSTREAMS ADMIN "approvals:\n  approvers:\n    api_keys: [{key_sha256: \"" KEYHASH "\"}]\n",
                 "toolgate.yaml:8:17: approvals.approvers.api_keys[0]: missing required key \"user\" (the approver's Cedar User id)");
    expect_error(UPSTREAMS ADMIN "approvals:\n  approvers:\n    api_keys: [{user: bob, key_sha256: abc}]\n",
                 "toolgate.yaml:8:40: approvals.approvers.api_keys[0].key_sha256: expected the 64 hex digits of the key's SHA-256 (`toolgate approvals keygen` prints them)");
    expect_error(UPSTREAMS ADMIN "approvals:\n  approvers:\n    api_keys: [{user: bob, key_sha256: \""
                 "zz86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}]\n",
                 "toolgate.yaml:8:40: approvals.approvers.api_keys[0].key_sha256: expected the 64 hex digits of the key's SHA-256, found a character that is not a hex digit");
    expect_error(UPSTREAMS ADMIN "approvals:\n  approvers:\n    api_keys:\n"
                 "      - {user: bob, key_sha256: \"" KEYHASH "\"}\n"
                 "      - {user: eve, key_sha256: \"" KEYHASH "\"}\n",
                 "toolgate.yaml:10:10: approvals.approvers.api_keys[1]: the same key is listed twice (also at toolgate.yaml:9:10)");
    expect_error(UPSTREAMS ADMIN "approvals:\n  approvers:\n    api_keys: [{user: bob, key_sha256: \"" KEYHASH "\", role: x}]\n",
                 "toolgate.yaml:8:108: approvals.approvers.api_keys[0]: unknown key \"role\"; known keys: user, key_sha256, groups");
    expect_error(UPSTREAMS ADMIN "approvals:\n  webhook: {url: \"https://h.example/x\"}\n",
                 "toolgate.yaml:7:13: approvals.webhook: missing required key \"secret\" (the HMAC key, e.g. ${TOOLGATE_WEBHOOK_SECRET})");
    expect_error(UPSTREAMS ADMIN "approvals:\n  webhook: {secret: x}\n",
                 "toolgate.yaml:7:13: approvals.webhook: missing required key \"url\" (where the signed POSTs go)");
    expect_error(UPSTREAMS ADMIN "approvals:\n  webhook: {url: \"http://hooks.lan/h\", secret: x}\n",
                 "toolgate.yaml:7:18: approvals.webhook.url: plain http:// would send approval details "
                 "unencrypted: use https://, a loopback address, or `allow_insecure: true`");
    expect_error(UPSTREAMS ADMIN "approvals:\n  webhook: {url: \"https://h.example/x\", secret: x, max_attempts: 0}\n",
                 "toolgate.yaml:7:66: approvals.webhook.max_attempts: must be greater than 0, found \"0\"");
    expect_error(UPSTREAMS ADMIN "approvals:\n  webhook: {url: \"https://h.example/x\", secret: \"${TG_NOPE_UNSET}\"}\n",
                 "toolgate.yaml:7:49: approvals.webhook.secret: environment variable TG_NOPE_UNSET is not set");
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int setup_each(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/tg-config-test-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir) || chdir(tmpdir) != 0 || !realpath(".", realtmp))
        return -1;
    return 0;
}

static int teardown_each(void **state)
{
    if (chdir("/") != 0)
        return -1;
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_config, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_defaults, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_unknown_keys, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_duplicate_key, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_yaml_syntax_error, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_wrong_types, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_bad_enums, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_bad_sizes_and_durations, setup_each, teardown_each),
        cmocka_unit_test(test_value_grammars),
        cmocka_unit_test_setup_teardown(test_bad_listen, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_urls_and_paths, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_secrets, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_commands, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_environment, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_upstream_list_rules, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_refcount, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_set_listen, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_runtime_defaults, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_store_audit_sections, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_store_audit_errors, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_auth_section, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_auth_errors, setup_each, teardown_each),
        cmocka_unit_test(test_seconds_and_cidrs),
        cmocka_unit_test_setup_teardown(test_approvals_section, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_approvals_errors, setup_each, teardown_each),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
