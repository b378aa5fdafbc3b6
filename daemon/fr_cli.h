/* fr_cli: the command line of `freshet` (gen, load, replay, run, inspect, pull) and `freshetd`. */
#ifndef FR_CLI_H
#define FR_CLI_H

int fr_cli_main(int argc, char **argv);
/* `freshetd -c CONFIG`: the same as `freshet run -c CONFIG`. */
int fr_cli_daemon_main(int argc, char **argv);

#endif
