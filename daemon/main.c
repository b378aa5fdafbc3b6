/* Entry point of `freshet` and `freshetd`; the commands live in fr_cli.c. */
#include "fr_cli.h"

int main(int argc, char **argv)
{
#ifdef FRESHET_DAEMON_ENTRY
    return fr_cli_daemon_main(argc, argv);
#else
    return fr_cli_main(argc, argv);
#endif
}
