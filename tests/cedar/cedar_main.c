/*
 * cedar_main.c — a standalone `cedar` program for tests: runs cedar_cli_main so the
 * corpus test and by-hand runs need not wait for the toolgate binary.
 */
#include "cedar/cedar_cli.h"

int main(int argc, char **argv)
{
    argv[0] = "cedar";
    return cedar_cli_main(argc, argv);
}
