/*
 * cli_int.h — private to src/cli: the commands main.c dispatches to.
 */
#ifndef TG_CLI_INT_H
#define TG_CLI_INT_H

/* `toolgate serve`: loads config_path, applies the --listen / --port overrides (listen
 * NULL and port < 0 mean none), serves until SIGINT/SIGTERM. Returns the exit status. */
int tg_cli_serve(const char *config_path, const char *listen, int port);

#endif /* TG_CLI_INT_H */
