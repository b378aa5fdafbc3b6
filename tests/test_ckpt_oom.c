/* A checkpoint that runs out of memory says so. The linker routes this executable's malloc, calloc
 * and realloc through the wrappers below (CMakeLists.txt: -Wl,--wrap), which fail the n-th call
 * from the project's own code after being armed. Every allocation a checkpoint makes is failed in
 * turn: each attempt must fail with "out of memory" in its message (it once said only "could not
 * assemble the write batch"), write nothing, and leave the pipeline able to checkpoint once memory
 * is back, ending with the same digest as a checkpoint that never failed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_ckpt.h"
#include "fr_config.h"
#include "fr_gen.h"
#include "fr_pipeline.h"
#include "gen_lines.h"
#include "tmpdir.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);

static long g_fail_at = -1; /* -1: disarmed; else the number of calls left before the one that fails */
static int g_failed;

static int should_fail(void)
{
    if (g_fail_at < 0) return 0;
    if (g_fail_at-- > 0) return 0;
    g_fail_at = -1;
    g_failed = 1;
    return 1;
}

void *__wrap_malloc(size_t n) { return should_fail() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) { return should_fail() ? NULL : __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t n) { return should_fail() ? NULL : __real_realloc(p, n); }

static fr_config oom_config(const char *dir)
{
    fr_config c;
    fr_config_defaults(&c);
    snprintf(c.checkpoint_dir, sizeof c.checkpoint_dir, "%s", dir);
    c.redis_host[0] = '\0';
    c.checkpoint_every_samples = 0;
    c.checkpoint_every_seconds = 0;
    c.schema.fields[0].admit_after = 2; /* admission chunks in the batch too */
    return c;
}

/* Feeds the stream into a fresh pipeline of dir; the caller checkpoints and closes. */
static fr_pipeline *fed(const char *dir, const lines *L)
{
    fr_config c = oom_config(dir);
    char err[512];
    fr_pipeline *p = fr_pipeline_open(&c, err, sizeof err);
    if (!p) fail_msg("open: %s", err);
    assert_int_equal(fr_pipeline_register_source(p, "file", NULL), 0);
    for (size_t i = 0; i < L->n; i++)
        if (fr_pipeline_message(p, "file", (int64_t)i + 1, L->line[i], L->len[i], err, sizeof err) != 0)
            fail_msg("message %zu: %s", i, err);
    return p;
}

static void digest_of(const char *dir, char hex[33])
{
    char err[512];
    fr_ckpt *ck = fr_ckpt_open_readonly(dir, err, sizeof err);
    if (!ck) fail_msg("%s", err);
    assert_int_equal(fr_ckpt_digest(ck, hex), 0);
    fr_ckpt_close(ck);
}

static void test_checkpoint_out_of_memory_says_so(void **state)
{
    (void)state;
    char *root = tmpdir_make("oom");
    char ref[256], dir[256];
    snprintf(ref, sizeof ref, "%s/ref", root);
    snprintf(dir, sizeof dir, "%s/oom", root);
    fr_gen_opts o;
    fr_gen_defaults(&o);
    o.impressions = 1500;
    o.days = 1;
    o.seed = 9;
    o.n_users = 300;
    o.n_ads = 50;
    lines L = gen_lines(&o, NULL, NULL);

    char err[512], want[33], got[33];
    fr_pipeline *p = fed(ref, &L);
    if (fr_pipeline_checkpoint(p, err, sizeof err) != 0) fail_msg("checkpoint: %s", err);
    fr_pipeline_close(p);
    digest_of(ref, want);

    p = fed(dir, &L);
    int failures = 0;
    for (long n = 0;; n++) {
        g_failed = 0;
        g_fail_at = n;
        err[0] = '\0';
        int rc = fr_pipeline_checkpoint(p, err, sizeof err);
        g_fail_at = -1;
        if (!g_failed) {
            /* n is past the last allocation: this one went through */
            if (rc != 0) fail_msg("checkpoint without a failed allocation: %s", err);
            break;
        }
        failures++;
        if (rc == 0) continue; /* the failed allocation was not needed (a cache, a larger buffer) */
        if (!strstr(err, "out of memory")) fail_msg("allocation %ld failed; the message does not say so: %s", n, err);
        print_message("allocation %ld failed: %s\n", n, err);
        if (n > 100000) fail_msg("no end to the allocations of one checkpoint");
    }
    assert_true(failures >= 5);
    fr_pipeline_close(p);
    digest_of(dir, got);
    /* What failed wrote nothing; what went through is what a clean run writes. */
    assert_string_equal(got, want);
    lines_free(&L);
    tmpdir_remove(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoint_out_of_memory_says_so),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
