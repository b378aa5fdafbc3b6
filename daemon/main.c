/* Entry point of `freshet` and `freshetd`; the commands live in fr_cli.c. */
#include <signal.h>
#include <stddef.h>

#include "fr_cli.h"

/* SIGINT and SIGTERM are blocked before any other code of the process runs. The loops of `replay`
 * and `run` poll for them with sigpending() between messages, so a stop lands on a message boundary
 * and ends with a checkpoint; that needs every thread of the process to keep them blocked, or the
 * kernel hands the process-directed signal to a thread that does not, whose default action kills
 * the whole process (exit 143, no checkpoint, the writer lease kept). OpenBLAS starts its worker
 * threads (one per core unless OPENBLAS_NUM_THREADS says otherwise) in its library initialiser,
 * before main(), and a constructor of the executable runs after the libraries' ones: too late
 * both. The executable's DT_PREINIT_ARRAY is the one hook that ELF runs before every shared
 * library's initialiser, so every thread, whoever starts it and whenever, inherits the mask.
 * fr_cli_main unblocks them again for the commands without a graceful stop. */
static void block_stop_signals_first(int argc, char **argv, char **envp)
{
    (void)argc, (void)argv, (void)envp;
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, NULL);
}
__attribute__((used, section(".preinit_array"))) static void (*fr_preinit)(int, char **, char **) =
    block_stop_signals_first;

int main(int argc, char **argv)
{
#ifdef FRESHET_DAEMON_ENTRY
    return fr_cli_daemon_main(argc, argv);
#else
    return fr_cli_main(argc, argv);
#endif
}
