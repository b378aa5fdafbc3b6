/* The command line as a user meets it: `rollback --to -3` is refused instead of asking for
 * version 2^64 - 3. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_cli.h"
#include "tmpdir.h"

static char g_out[1 << 20];

static void test_rollback_to_negative(void **state)
{
    (void)state;
    char *dir = tmpdir_make("cli");
    char scratch[300];
    snprintf(scratch, sizeof scratch, "%s/out", dir);
    /* port 1: if the argument got through, nothing would answer (it must not get that far) */
    static const char *const bad[] = {"-3", " 7", "+7", "0", "7x", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *const argv[] = {"freshet", "rollback", "--redis", "127.0.0.1:1", "--to", (char *)bad[i], NULL};
        assert_int_equal(run_cli(argv, scratch, g_out, sizeof g_out), 2);
        char want[64];
        snprintf(want, sizeof want, "--to expects a version number (> 0), got \"%s\"", bad[i]);
        if (!strstr(g_out, want)) fail_msg("--to %s: %s", bad[i], g_out);
        assert_null(strstr(g_out, "18446744073709551613"));
    }
    tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rollback_to_negative),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
