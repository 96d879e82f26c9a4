/*
 * main.c — the `toolgate` command: parses the command line and dispatches to
 * `serve` (serve.c: the gateway itself), `check` (validate a configuration),
 * `keys` (API keys, keys.c), `audit` (src/audit's tools, with --config naming the
 * store), `policy test` and `decide` (src/policy), `cedar` (the Cedar policy tools,
 * src/cedar), `approvals` (approvals.c: a client of the admin listener's approvals API),
 * `help` and `--version`.
 *
 * Exit statuses are part of the interface: 0 success, 1 the work failed (invalid
 * configuration, start-up error), 2 the command line was wrong. Usage errors go to
 * stderr with the usage text; requested help goes to stdout.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_int.h"
#include "common/tg_common.h"
#include "audit/tg_audit.h"
#include "cedar/cedar_cli.h"
#include "config/tg_config.h"
#include "policy/tg_policy.h"

static const char main_usage[] =
    "usage: toolgate <command> [options]\n"
    "\n"
    "toolgate is a runtime-authorization gateway for the Model Context Protocol: MCP\n"
    "clients connect to it over Streamable HTTP and it forwards to the MCP servers\n"
    "(upstreams) named in its configuration.\n"
    "\n"
    "commands:\n"
    "  serve --config FILE [--listen HOST:PORT] [--port N]\n"
    "                      run the gateway\n"
    "  check --config FILE validate a configuration file and exit\n"
    "  keys ...            create, list, revoke and rotate API keys (toolgate help keys)\n"
    "  audit ...           verify, query, export and prune the audit trail\n"
    "                      (toolgate help audit)\n"
    "  policy test --config FILE CASES.yaml\n"
    "                      run policy test cases\n"
    "  decide --config FILE --agent ID --tool NAME ...\n"
    "                      explain the decision for one call (toolgate help decide)\n"
    "  cedar ...           Cedar policy tools (toolgate help cedar)\n"
    "  approvals ...       list, show, approve and deny approval requests; make approver\n"
    "                      keys (toolgate help approvals)\n"
    "  help [COMMAND]      show this help, or the help of COMMAND\n"
    "\n"
    "options:\n"
    "  -h, --help          show this help\n"
    "  -V, --version       print the version (\"toolgate " TG_VERSION "\")\n"
    "\n"
    "Configuration keys: docs/configuration.md. Example: examples/toolgate.yaml.\n";

static const char serve_usage[] =
    "usage: toolgate serve --config FILE [--listen HOST:PORT] [--port N]\n"
    "\n"
    "Runs the gateway: accepts MCP clients (Streamable HTTP) on the configured address\n"
    "and MCP path, and forwards to the upstream MCP servers in FILE. Logs are JSON lines\n"
    "on stderr; the first info line says where it listens.\n"
    "\n"
    "options:\n"
    "  --config FILE       configuration file (YAML, see docs/configuration.md); required\n"
    "  --listen HOST:PORT  listen here instead of the file's `listen`; HOST is a literal\n"
    "                      IP address, IPv6 in brackets ([::1]:8080)\n"
    "  --port N            listen on port N (0 to 65535; 0 picks a free port)\n"
    "  -h, --help          show this help\n"
    "\n"
    "signals:\n"
    "  SIGINT, SIGTERM     graceful shutdown; a second signal exits at once\n"
    "  SIGHUP              logged and ignored: configuration reload comes with policies\n"
    "\n"
    "exit status: 0 after a clean shutdown, 1 if the configuration or start-up fails,\n"
    "2 on a usage error.\n";

static const char check_usage[] =
    "usage: toolgate check --config FILE\n"
    "\n"
    "Loads and validates FILE completely, without starting anything: every key and\n"
    "value, secret references (${VAR} must be set, file:PATH readable), and that each\n"
    "stdio command is an executable file. Prints \"FILE: ok (N upstreams)\" on stdout,\n"
    "or the first error as \"FILE:LINE:COL: message\" on stderr.\n"
    "\n"
    "options:\n"
    "  --config FILE       configuration file to check; required\n"
    "  -h, --help          show this help\n"
    "\n"
    "exit status: 0 valid, 1 invalid, 2 usage error.\n";

static const char cedar_usage[] =
    "usage: toolgate cedar check FILE...\n"
    "       toolgate cedar authorize --policies P [--entities E] --request R.json\n"
    "       toolgate cedar corpus DIR\n"
    "       toolgate cedar est FILE\n"
    "\n"
    "The Cedar policy engine's tools:\n"
    "  check      parse policy files; errors as FILE:LINE:COL: message\n"
    "  authorize  evaluate one request; prints {\"decision\",\"reasons\",\"errors\"}\n"
    "  corpus     run Cedar integration-corpus test cases from DIR\n"
    "  est        print the policies of FILE as Cedar policy JSON\n"
    "\n"
    "exit status: 0 ok, 1 failure, 2 usage error.\n";

static const char audit_usage[] =
    "usage: toolgate audit verify [--config FILE | --store URL] [--pubkey FILE]...\n"
    "                             [--require-signed-tail]\n"
    "       toolgate audit query  [--config FILE | --store URL] [--since DATE] [--until DATE]\n"
    "                             [--instance ID] [--delegator U] [--agent A] [--tool T]\n"
    "                             [--resource UID] [--decision D] [--reason CODE]\n"
    "                             [--ticket T] [--approval ID] [--format table|jsonl]\n"
    "       toolgate audit export [--config FILE | --store URL] --format jsonl [--instance ID]\n"
    "       toolgate audit prune  [--config FILE | --store URL] --before DATE --key FILE\n"
    "                             [--instance ID]\n"
    "       toolgate audit keygen --out FILE\n"
    "\n"
    "The audit trail (docs/audit.md). --config FILE uses the store of FILE (`store:`);\n"
    "--store URL names one directly (sqlite:PATH, postgres://…, \"host=… dbname=…\") and\n"
    "wins over --config.\n"
    "  verify   check every hash chain and checkpoint signature (--pubkey: the .pub of\n"
    "           audit.signing_key); prints a summary per instance, BAD lines for problems\n"
    "  query    records matching the filters (--resource also matches parents)\n"
    "  export   every record as JSON Lines with its chain fields\n"
    "  prune    delete records before DATE, leaving a signed prune checkpoint\n"
    "  keygen   write an Ed25519 signing key (mode 0600) and FILE.pub\n"
    "DATE: 2026-03-01, 2026-03-01T12:00:00Z (UTC, optional .mmm) or Unix milliseconds.\n"
    "\n"
    "exit status: 0 ok, 1 problems found or failure, 2 usage error.\n";

static const char policy_usage[] =
    "usage: toolgate policy test --config FILE CASES.yaml\n"
    "\n"
    "Runs the policy test cases of CASES.yaml (a top-level list `cases:`, see\n"
    "docs/policy.md and examples/policies/cases.yaml) against the catalog and policies of\n"
    "FILE, without starting anything. Prints \"ok\" or \"FAIL\" per case, then\n"
    "\"N passed, N failed\".\n"
    "\n"
    "exit status: 0 all cases passed, 1 some failed, 2 usage error or FILE/CASES invalid.\n";

static const char decide_usage[] =
    "usage: toolgate decide --config FILE --agent ID [--delegator USER] [--groups G1,G2]\n"
    "         [--scopes S1,S2] [--auth-method oauth|api_key] [--client-ip IP]\n"
    "         --tool NAME [--upstream NAME] [--args JSON] [--meta JSON] [--now RFC3339]\n"
    "\n"
    "Decides one tools/call as the gateway would, for the identity given by the flags\n"
    "(no credential is checked), with the catalog and policies of FILE, and prints the\n"
    "decision explained as JSON: decision, reasons, determining policies, resource and\n"
    "context.\n"
    "\n"
    "exit status: 0 allowed, 1 denied or approval required, 2 usage error or FILE invalid.\n";

__attribute__((format(printf, 2, 3)))
int tg_cli_usage_error(const char *usage, const char *fmt, ...)
{
    va_list ap;
    fputs("toolgate: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n\n", stderr);
    fputs(usage, stderr);
    return 2;
}

int tg_cli_is_help(const char *a)
{
    return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0;
}

typedef struct cli_opts {
    const char *config;
    const char *listen;
    int port;          /* -1: not given */
    int help;
} cli_opts;

int tg_cli_opt_value(int argc, char **argv, int *i, const char *name, const char **out)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return 0;
    if (argv[*i][n] == '=') {
        *out = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *out = argv[++*i];
    return 1;
}

int tg_cli_take_flag(const tg_cli_flag *flags, size_t n, unsigned sub_bit, const char *cmd,
                     const char *usage, int argc, char **argv, int *i, void *opts)
{
    for (size_t f = 0; f < n; f++) {
        const char *v;
        int r = tg_cli_opt_value(argc, argv, i, flags[f].name, &v);
        if (r == 0)
            continue;
        if (r < 0)
            return tg_cli_usage_error(usage, "%s needs a value", flags[f].name);
        if (!(flags[f].subs & sub_bit))
            return tg_cli_usage_error(usage, "%s does not take %s", cmd, flags[f].name);
        *(const char **)(void *)((char *)opts + flags[f].off) = v;
        return 1;
    }
    return 0;
}

static int parse_port(const char *s, int *port)
{
    long v = 0;
    if (!*s || strlen(s) > 5)
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

/* The option loop of parse_opts: 0, or 2 after reporting a usage error. */
static int try_opts(int argc, char **argv, int serve, const char *usage, cli_opts *o)
{
    *o = (cli_opts){NULL, NULL, -1, 0};
    for (int i = 1; i < argc; i++) {
        const char *v = NULL, *port = NULL;
        int r;
        if (tg_cli_is_help(argv[i])) {
            o->help = 1;
            return 0;
        }
        if ((r = tg_cli_opt_value(argc, argv, &i, "--config", &v)) != 0) {
            if (r < 0)
                return tg_cli_usage_error(usage, "%s needs a value", "--config");
            o->config = v;
        } else if (serve && (r = tg_cli_opt_value(argc, argv, &i, "--listen", &v)) != 0) {
            if (r < 0)
                return tg_cli_usage_error(usage, "%s needs a value", "--listen");
            o->listen = v;
        } else if (serve && (r = tg_cli_opt_value(argc, argv, &i, "--port", &port)) != 0) {
            if (r < 0)
                return tg_cli_usage_error(usage, "%s needs a value", "--port");
            if (parse_port(port, &o->port) < 0)
                return tg_cli_usage_error(usage, "--port: expected a number from 0 to 65535, found \"%s\"",
                                   port);
        } else {
            return tg_cli_usage_error(usage, "unexpected argument \"%s\"", argv[i]);
        }
    }
    if (!o->config)
        return tg_cli_usage_error(usage, "%s is required", "--config FILE");
    return 0;
}

/* Parses the options of serve/check (argv[0] is the command name); `serve` enables
 * --listen and --port. Returns 0 to go on, or the command is finished: -h/--help printed
 * the usage (returns -1, *status 0) or a usage error was reported (-1, *status 2). */
static int parse_opts(int argc, char **argv, int serve, const char *usage, cli_opts *o,
                      int *status)
{
    *status = try_opts(argc, argv, serve, usage, o);
    if (*status == 0 && o->help)
        fputs(usage, stdout);
    return *status || o->help ? -1 : 0;
}

static int cmd_serve(int argc, char **argv)
{
    cli_opts o;
    int status;
    if (parse_opts(argc, argv, 1, serve_usage, &o, &status) < 0)
        return status;
    return tg_cli_serve(o.config, o.listen, o.port);
}

static int cmd_check(int argc, char **argv)
{
    cli_opts o;
    tg_error err;
    int status;
    if (parse_opts(argc, argv, 0, check_usage, &o, &status) < 0)
        return status;
    tg_config *cfg = tg_config_load(o.config, &err);
    if (!cfg) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("%s: ok (%zu upstream%s)\n", o.config, cfg->nupstreams, cfg->nupstreams == 1 ? "" : "s");
    tg_config_unref(cfg);
    return 0;
}

/* `toolgate audit SUB …`: tg_audit_cli_main, with `--config FILE` turned into
 * `--store <the store of FILE>` unless --store is given (keygen has no store: there
 * --config is accepted and ignored). */
static int cmd_audit(int argc, char **argv)
{
    const char *config = NULL, *v;
    int has_store = 0, n = 0, status;
    if (argc < 2 || tg_cli_is_help(argv[1])) {
        if (argc < 2)
            return tg_cli_usage_error(audit_usage, "%s", "audit needs a subcommand");
        fputs(audit_usage, stdout);
        return 0;
    }
    char **args = calloc((size_t)argc + 3, sizeof *args);
    if (!args)
        abort();
    for (int i = 0; i < argc; i++) {
        int r = i > 0 ? tg_cli_opt_value(argc, argv, &i, "--config", &v) : 0;
        if (r < 0) {
            free(args);
            return tg_cli_usage_error(audit_usage, "%s needs a value", "--config");
        }
        if (r > 0) {
            config = v;
            continue;
        }
        if (tg_cli_is_help(argv[i])) {
            free(args);
            fputs(audit_usage, stdout);
            return 0;
        }
        has_store |= strncmp(argv[i], "--store", 7) == 0 && (!argv[i][7] || argv[i][7] == '=');
        args[n++] = argv[i];
    }
    tg_config *cfg = NULL;
    if (config && !has_store && strcmp(argv[1], "keygen") != 0) {
        tg_error err;
        if (!(cfg = tg_config_load(config, &err))) {
            fprintf(stderr, "%s\n", err.msg);
            free(args);
            return 1;
        }
        args[n++] = "--store";
        args[n++] = (char *)cfg->store.url;
    }
    status = tg_audit_cli_main(n, args);
    tg_config_unref(cfg);
    free(args);
    return status;
}

/* `toolgate policy test …` and `toolgate decide …`: src/policy does the work; help
 * texts live here with the others. */
static int cmd_policy(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (tg_cli_is_help(argv[i])) {
            fputs(policy_usage, stdout);
            return 0;
        }
    }
    if (argc < 2 || strcmp(argv[1], "test") != 0)
        return tg_cli_usage_error(policy_usage, "%s", "the policy subcommand is `test`");
    return tg_policy_test_main(argc, argv);
}

static int cmd_decide(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (tg_cli_is_help(argv[i])) {
            fputs(decide_usage, stdout);
            return 0;
        }
    }
    return tg_policy_decide_main(argc, argv);
}

typedef struct command {
    const char *name;
    const char *usage;
    int (*run)(int argc, char **argv);  /* argv[0] is the command name */
} command;

static const command commands[] = {
    {"serve", serve_usage, cmd_serve},
    {"check", check_usage, cmd_check},
    {"keys", tg_cli_keys_usage, tg_cli_keys},
    {"audit", audit_usage, cmd_audit},
    {"policy", policy_usage, cmd_policy},
    {"decide", decide_usage, cmd_decide},
    {"cedar", cedar_usage, cedar_cli_main},  /* src/cedar: argv[0] is "cedar" */
    {"approvals", tg_cli_approvals_usage, tg_cli_approvals},
};

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int cmd_help(int argc, char **argv)
{
    const command *c;
    if (argc < 2) {
        fputs(main_usage, stdout);
        return 0;
    }
    if (argc > 2)
        return tg_cli_usage_error(main_usage, "help takes one command name, found \"%s\"", argv[2]);
    if (!(c = find_command(argv[1])))
        return tg_cli_usage_error(main_usage, "no such command \"%s\"", argv[1]);
    fputs(c->usage, stdout);
    return 0;
}

int main(int argc, char **argv)
{
    const command *c;
    if (argc < 2)
        return tg_cli_usage_error(main_usage, "%s", "a command is required");
    if (tg_cli_is_help(argv[1])) {
        fputs(main_usage, stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        puts("toolgate " TG_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0)
        return cmd_help(argc - 1, argv + 1);
    if (!(c = find_command(argv[1])))
        return tg_cli_usage_error(main_usage, "unknown command \"%s\"", argv[1]);
    return c->run(argc - 1, argv + 1);
}
