/* Tests of fr_progress: the replay's progress line on a terminal, and silence elsewhere. */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fr_progress.h"

static const char *const LINES =
    "{\"type\":\"impression\",\"id\":\"a\",\"ts\":1764547200000,\"scenario\":\"video\",\"features\":{}}\n"
    "{\"type\":\"click\",\"id\":\"a\",\"ts\":1764550800000}\n"
    "not json\n"
    "{\"type\":\"conversion\",\"id\":\"a\",\"ts\":1764979200000}\n";

static FILE *temp_file(char *path, size_t cap)
{
    snprintf(path, cap, "%s/fr-progress-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w+");
    assert_non_null(f);
    fputs(LINES, f);
    fflush(f);
    return f;
}

static void test_line_ts(void **state)
{
    (void)state;
    const char *l = "{\"type\":\"click\",\"id\":\"a\",\"ts\":1764550800000}";
    assert_int_equal(fr_progress_line_ts(l, strlen(l)), 1764550800000LL);
    assert_true(fr_progress_line_ts("not json", 8) == INT64_MIN);
    assert_true(fr_progress_line_ts("{\"ts\":\"soon\"}", 13) == INT64_MIN);
}

/* First and last event times come from the file, the caller's position is kept, and the line says
 * how far the bytes, the rate, the ETA and the event time are. */
static void test_format_on_a_terminal(void **state)
{
    (void)state;
    char path[256];
    FILE *in = temp_file(path, sizeof path);
    assert_int_equal(fseeko(in, 40, SEEK_SET), 0);
    FILE *out = tmpfile();
    fr_progress pg;
    fr_progress_start(&pg, out, 1, in, path, 40, 100.0);
    assert_int_equal(ftello(in), 40);
    assert_int_equal(pg.first_ts, 1764547200000LL);
    assert_int_equal(pg.last_ts, 1764979200000LL); /* 5 days later */
    assert_int_equal(pg.total_bytes, (int64_t)strlen(LINES));

    char buf[256];
    /* half the bytes after 10 s from byte 40: the rest takes as long again */
    int64_t total = pg.total_bytes, half = 40 + (total - 40) / 2;
    fr_progress_format(&pg, buf, sizeof buf, half, 2000, 1764547200000LL + 2 * 86400000LL, 110.0);
    assert_non_null(strstr(buf, "events/s"));
    assert_non_null(strstr(buf, " 200 events/s"));
    assert_non_null(strstr(buf, "ETA 0:10"));
    assert_non_null(strstr(buf, "event time 2025-12-03 00:00 UTC (2.0 of 5.0 days)"));

    fr_progress_update(&pg, half, 2000, 1764547200000LL, 110.0, 0);
    fr_progress_update(&pg, half, 2000, 1764547200000LL, 110.1, 0); /* too soon: not drawn again */
    fr_progress_break(&pg);
    long written = ftell(out);
    rewind(out);
    char got[1024] = {0};
    assert_true(fread(got, 1, sizeof got - 1, out) == (size_t)written);
    assert_int_equal(got[0], '\r');
    assert_null(strchr(got + 1, '\r'));
    assert_int_equal(got[written - 1], '\n');
    fclose(out);
    fclose(in);
    unlink(path);
}

/* Not a terminal (a file, a pipe, CI): nothing at all. */
static void test_quiet_elsewhere(void **state)
{
    (void)state;
    char path[256];
    FILE *in = temp_file(path, sizeof path);
    FILE *out = tmpfile();
    fr_progress pg;
    fr_progress_start(&pg, out, 0, in, path, 0, 0.0);
    fr_progress_update(&pg, 10, 1, 1764547200000LL, 5.0, 1);
    fr_progress_break(&pg);
    assert_int_equal(ftell(out), 0);
    fclose(out);
    fclose(in);
    unlink(path);
}

/* A Kafka backfill counts messages of those in its ranges, not megabytes; quiet off a terminal too. */
static void test_messages(void **state)
{
    (void)state;
    FILE *out = tmpfile();
    fr_progress pg;
    fr_progress_start_messages(&pg, out, 1, 4000, 100.0);
    char buf[256];
    fr_progress_format(&pg, buf, sizeof buf, 1000, 1000, 1764547200000LL, 110.0);
    assert_non_null(strstr(buf, " 25.0% 1000/4000 messages  100 events/s  ETA 0:30  event time 2025-12-01 00:00 UTC"));
    assert_null(strstr(buf, "MB"));
    assert_null(strstr(buf, "days)"));
    fclose(out);
    out = tmpfile();
    fr_progress_start_messages(&pg, out, 0, 4000, 100.0);
    fr_progress_update(&pg, 10, 10, 1764547200000LL, 105.0, 1);
    fr_progress_break(&pg);
    assert_int_equal(ftell(out), 0);
    fclose(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_ts),
        cmocka_unit_test(test_format_on_a_terminal),
        cmocka_unit_test(test_quiet_elsewhere),
        cmocka_unit_test(test_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
