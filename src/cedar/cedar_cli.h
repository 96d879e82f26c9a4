/*
 * cedar_cli.h — the `cedar` command line (reached as `toolgate cedar ...`).
 *
 *   cedar check FILE...                      parse; errors as FILE:LINE:COL: message
 *   cedar authorize --policies P --entities E --request R.json
 *                                            prints {"decision","reasons","errors"}
 *   cedar corpus DIR                         runs Cedar integration-corpus cases
 *   cedar est FILE                           prints the policies as Cedar policy JSON
 */
#ifndef CEDAR_CLI_H
#define CEDAR_CLI_H

/* argv[0] is "cedar". Returns the process exit status (0 ok, 1 failure, 2 usage). */
int cedar_cli_main(int argc, char **argv);

#endif
