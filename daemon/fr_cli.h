/* fr_cli: the command line of `freshet` and `freshetd`. The commands are one table in fr_cli.c
 * (name, synopsis, one line of help, handler); `freshet --help` prints it. */
#ifndef FR_CLI_H
#define FR_CLI_H

int fr_cli_main(int argc, char **argv);
/* `freshetd -c CONFIG`: the same as `freshet run -c CONFIG`. */
int fr_cli_daemon_main(int argc, char **argv);
/* The name of the i-th command of the table, NULL past the last. */
const char *fr_cli_command_name(int i);

#endif
