/*
 * cli_int.h — private to src/cli: the commands main.c dispatches to.
 */
#ifndef TG_CLI_INT_H
#define TG_CLI_INT_H

/* `toolgate serve`: loads config_path, applies the --listen / --port overrides (listen
 * NULL and port < 0 mean none), serves until SIGINT/SIGTERM. Returns the exit status. */
int tg_cli_serve(const char *config_path, const char *listen, int port);

/* `toolgate keys create|list|revoke|rotate` (keys.c); argv[0] is "keys". keys_usage is
 * its help text. Returns the exit status. */
extern const char tg_cli_keys_usage[];
int tg_cli_keys(int argc, char **argv);

/* `toolgate approvals list|show|approve|deny|keygen` (approvals.c), a client of the
 * admin listener's approvals API; argv[0] is "approvals". Returns the exit status. */
extern const char tg_cli_approvals_usage[];
int tg_cli_approvals(int argc, char **argv);

/* Shared by the commands (main.c). */
/* "toolgate: <message>", a blank line and usage on stderr; returns 2. */
int tg_cli_usage_error(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* -h or --help */
int tg_cli_is_help(const char *a);
/* Matches "--name VALUE" or "--name=VALUE" at argv[*i]. 1 matched (value in *out, *i
 * advanced past it), 0 not this option, -1 the value is missing. */
int tg_cli_opt_value(int argc, char **argv, int *i, const char *name, const char **out);

/* A string option of a command with subcommands: its name, where its value goes in the
 * command's options struct, and the subcommands (bits, one per subcommand) that take it. */
typedef struct tg_cli_flag {
    const char *name;
    size_t off;
    unsigned subs;
} tg_cli_flag;

/* Matches argv[*i] against flags[0..n) (tg_cli_opt_value's syntax). 1: matched, value
 * stored in opts; 0: none of them; 2: a usage error was printed (the value is missing, or
 * `cmd` — "keys list", the subcommand whose bit is sub_bit — does not take the option). */
int tg_cli_take_flag(const tg_cli_flag *flags, size_t n, unsigned sub_bit, const char *cmd,
                     const char *usage, int argc, char **argv, int *i, void *opts);

#endif /* TG_CLI_INT_H */
