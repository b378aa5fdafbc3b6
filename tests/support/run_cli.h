/* run_cli.h: runs `freshet ARGS...` in-process (fr_cli_main) with its stdout and stderr captured
 * to a file, for the tests of a command's exit status and output. Header-only, included (after
 * cmocka.h) by the tests that need it. Ownership: none (the caller's buffer). */
#ifndef FR_TEST_RUN_CLI_H
#define FR_TEST_RUN_CLI_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fr_cli.h"

/* argv[0] is "freshet"; argv ends with NULL. Returns the exit status; out receives stdout and
 * stderr, interleaved as written (at most cap - 1 bytes, NUL-terminated). scratch is a path the
 * capture may overwrite. */
static inline int run_cli(char *const argv[], const char *scratch, char *out, size_t cap)
{
    int argc = 0;
    while (argv[argc]) argc++;
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    int fd = open(scratch, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0 && saved_out >= 0 && saved_err >= 0);
    dup2(fd, 1);
    dup2(fd, 2);
    int rc = fr_cli_main(argc, (char **)argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(fd);
    close(saved_out);
    close(saved_err);
    FILE *f = fopen(scratch, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
    return rc;
}

/* Lines of out starting with prefix. */
static inline int count_lines(const char *out, const char *prefix)
{
    int n = 0;
    size_t len = strlen(prefix);
    for (const char *p = out; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        n += strncmp(p, prefix, len) == 0;
    return n;
}

#endif
