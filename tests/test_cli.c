/* The command line as a user meets it: `freshet score` scores every impression of its input
 * unless told otherwise, `--limit N` counts impressions scored (not lines read) and refuses 0,
 * `--follow` prints the scores under each version it loads; `rollback --to -3` is refused instead
 * of asking for version 2^64 - 3. Scoring runs against a private redis-server holding a model the
 * pipeline published. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_config.h"
#include "fr_gen.h"
#include "fr_pipeline.h"
#include "gen_lines.h"
#include "redis_server.h"
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

/* The usage is the command table: `freshet --help` lists every command the dispatch knows (and the
 * ones users know by name), each with a line of help; an unknown command is refused with the usage
 * before its options are read. */
static void test_usage_lists_the_table(void **state)
{
    (void)state;
    char *dir = tmpdir_make("cli");
    char scratch[300];
    snprintf(scratch, sizeof scratch, "%s/out", dir);
    char *const help[] = {"freshet", "--help", NULL};
    assert_int_equal(run_cli(help, scratch, g_out, sizeof g_out), 0);
    static const char *const known[] = {"gen", "load", "replay", "run", "inspect", "report", "pull", "score", "rollback",
                                        "verify", "truth"};
    int n = 0;
    for (const char *name; (name = fr_cli_command_name(n)); n++) {
        char want[64];
        snprintf(want, sizeof want, "  %s ", name);
        if (count_lines(g_out, want) != 1) fail_msg("usage does not list %s once:\n%s", name, g_out);
        /* the help line under it */
        const char *at = strstr(g_out, want), *next = strchr(at, '\n');
        assert_true(next && !strncmp(next + 1, "      ", 6));
    }
    assert_int_equal(n, (int)(sizeof known / sizeof known[0]));
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        int found = 0;
        for (int k = 0; k < n; k++) found |= !strcmp(fr_cli_command_name(k), known[i]);
        if (!found) fail_msg("the command table lost %s", known[i]);
    }
    char *const bogus[] = {"freshet", "bogus", "--no-such-option", NULL};
    assert_int_equal(run_cli(bogus, scratch, g_out, sizeof g_out), 2);
    assert_non_null(strstr(g_out, "freshet: unknown command \"bogus\""));
    assert_null(strstr(g_out, "unknown option"));
    assert_int_equal(count_lines(g_out, "  replay "), 1);
    tmpdir_remove(dir);
}

/* Publishes a model trained on a small stream to the private Redis; writes the events file the
 * tests score: four clicks and conversions first, then the stream with one impression that does
 * not decode. Returns the impressions that decode. */
static int publish_and_write_events(int port, const char *dir, const char *events)
{
    fr_gen_opts o;
    fr_gen_defaults(&o);
    o.impressions = 400;
    o.days = 1;
    o.seed = 21;
    lines L = gen_lines(&o, NULL, NULL);
    fr_config c;
    fr_config_defaults(&c);
    snprintf(c.checkpoint_dir, sizeof c.checkpoint_dir, "%s/state", dir);
    snprintf(c.redis_host, sizeof c.redis_host, "127.0.0.1");
    c.redis_port = port;
    c.checkpoint_every_samples = 0;
    c.checkpoint_every_seconds = 0;
    char err[512];
    fr_pipeline *p = fr_pipeline_open(&c, err, sizeof err);
    if (!p) fail_msg("open: %s", err);
    assert_int_equal(fr_pipeline_register_source(p, "file", NULL), 0);
    for (size_t i = 0; i < L.n; i++)
        if (fr_pipeline_message(p, "file", (int64_t)i + 1, L.line[i], L.len[i], err, sizeof err) != 0)
            fail_msg("message %zu: %s", i, err);
    if (fr_pipeline_checkpoint(p, err, sizeof err) != 0) fail_msg("checkpoint: %s", err);
    fr_pipeline_close(p); /* waits for the push */

    FILE *f = fopen(events, "w");
    assert_non_null(f);
    int others = 0, imps = 0;
    for (size_t i = 0; i < L.n && others < 4; i++)
        if (!strstr(L.line[i], "\"impression\"")) fprintf(f, "%s\n", L.line[i]), others++;
    assert_int_equal(others, 4);
    fprintf(f, "{\"type\":\"impression\",\"id\":\"broken\"}\n");
    for (size_t i = 0; i < L.n; i++) {
        fprintf(f, "%s\n", L.line[i]);
        imps += strstr(L.line[i], "\"impression\"") != NULL;
    }
    fclose(f);
    lines_free(&L);
    return imps;
}

static void test_score_limit_and_follow(void **state)
{
    redis_srv *srv = need_redis(state);
    char *dir = tmpdir_make("cli");
    char events[300], scratch[300], redis[64];
    snprintf(events, sizeof events, "%s/events.jsonl", dir);
    snprintf(scratch, sizeof scratch, "%s/out", dir);
    snprintf(redis, sizeof redis, "127.0.0.1:%d", srv->port);
    const int imps = publish_and_write_events(srv->port, dir, events);
    assert_true(imps > 300);

    /* No --limit: every impression (it once stopped after 10 lines). */
    char *const all[] = {"freshet", "score", "--redis", redis, "--events", events, NULL};
    assert_int_equal(run_cli(all, scratch, g_out, sizeof g_out), 0);
    assert_int_equal(count_lines(g_out, "version "), 1);
    assert_int_equal(count_lines(g_out, "score "), imps);
    assert_non_null(strstr(g_out, "freshet score: line 5 not scored"));

    /* --limit counts impressions scored: the four clicks and conversions and the broken
     * impression first do not use it up (it once scored nothing here). */
    char *const three[] = {"freshet", "score", "--redis", redis, "--events", events, "--limit", "3", NULL};
    assert_int_equal(run_cli(three, scratch, g_out, sizeof g_out), 0);
    assert_int_equal(count_lines(g_out, "score "), 3);

    /* --limit 0 scored nothing, silently: refused now, saying how to score everything. */
    static const char *const bad[] = {"0", "-2", "2.5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *const argv[] = {"freshet", "score",  "--redis",      redis, "--events",
                              events,    "--limit", (char *)bad[i], NULL};
        assert_int_equal(run_cli(argv, scratch, g_out, sizeof g_out), 2);
        assert_non_null(strstr(g_out, "--limit expects a whole number of impressions >= 1"));
        assert_int_equal(count_lines(g_out, "score "), 0);
    }

    /* --follow prints the scores (it once printed none), then its summary. */
    char *const follow[] = {"freshet", "score", "--redis", redis, "--events", events, "--limit", "2",
                            "--follow", "1", NULL};
    assert_int_equal(run_cli(follow, scratch, g_out, sizeof g_out), 0);
    assert_int_equal(count_lines(g_out, "score "), 2);
    assert_int_equal(count_lines(g_out, "followed 1 s: "), 1);
    assert_non_null(strstr(g_out, " 0 errors"));
    tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_lists_the_table),
        cmocka_unit_test(test_rollback_to_negative),
        cmocka_unit_test(test_score_limit_and_follow),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
