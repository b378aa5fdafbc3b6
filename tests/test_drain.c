/* Tests of `freshet replay --drain` (fr_pipeline_drain): at the end of input every join window
 * closes, every label becomes final and is scored, the last partial mini-batch trains; and the
 * report's coverage line says what each metric covers and what is still pending, with and
 * without draining. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_config.h"
#include "fr_dfm.h"
#include "fr_gen.h"
#include "fr_join.h"
#include "fr_pipeline.h"
#include "fr_policy.h"
#include "gen_lines.h"
#include "run_cli.h"
#include "tmpdir.h"

static char g_out[1 << 20];

/* 3 days: the 7-day attribution window is open for every click at the end of the file. */
static fr_gen_opts stream_opts(void)
{
    fr_gen_opts o;
    fr_gen_defaults(&o);
    o.impressions = 30000;
    o.days = 3;
    o.seed = 5;
    o.n_users = 2000;
    o.n_ads = 300;
    return o;
}

/* Events up to the end of the stream's last day: its conversions, which the generator writes up
 * to days later, are not in the file yet, so at its end clicks wait for their attribution window. */
static int before_end(const char *line, void *ctx)
{
    const char *t = strstr(line, "\"ts\":");
    assert_non_null(t);
    return strtoll(t + 5, NULL, 10) < *(const int64_t *)ctx;
}

static lines make_lines(const fr_gen_opts *o)
{
    int64_t end = o->start_ts_ms + (int64_t)(o->days * 86400000.0);
    return gen_lines(o, before_end, &end);
}

typedef struct {
    fr_pipeline_counters counters;
    fr_join_counters join;
    uint64_t scored[FR_NTASKS];
    size_t entries;
    char report[16384];
    char status[4096];
    char metrics[65536];
} drained;

static void run(const char *dir, const lines *L, int policy, int drain, drained *r)
{
    fr_config c;
    fr_config_defaults(&c);
    snprintf(c.checkpoint_dir, sizeof c.checkpoint_dir, "%s", dir);
    c.redis_host[0] = '\0';
    c.checkpoint_every_samples = 0;
    c.checkpoint_every_seconds = 0;
    c.join_policy = policy;
    char err[512];
    fr_pipeline *p = fr_pipeline_open(&c, err, sizeof err);
    if (!p) fail_msg("open: %s", err);
    assert_int_equal(fr_pipeline_register_source(p, "file", NULL), 0);
    for (size_t i = 0; i < L->n; i++)
        if (fr_pipeline_message(p, "file", (int64_t)i + 1, L->line[i], L->len[i], err, sizeof err) != 0)
            fail_msg("message %zu: %s", i, err);
    fr_pipeline_source_idle(p, "file", 1);
    assert_int_equal(fr_pipeline_tick(p), 0);
    if (drain && fr_pipeline_drain(p, err, sizeof err) != 0) fail_msg("drain: %s", err);
    if (fr_pipeline_checkpoint(p, err, sizeof err) != 0) fail_msg("checkpoint: %s", err);
    r->counters = *fr_pipeline_get_counters(p);
    r->join = *fr_pipeline_join_counters(p);
    for (int t = 0; t < FR_NTASKS; t++) r->scored[t] = fr_pipeline_metric(p, (fr_task)t, -1)->count;
    FILE *f = fmemopen(r->report, sizeof r->report, "w");
    assert_non_null(f);
    fr_pipeline_report(p, f);
    fclose(f);
    f = fmemopen(r->status, sizeof r->status, "w");
    assert_non_null(f);
    fr_pipeline_status_line(p, f, NULL);
    fclose(f);
    f = fmemopen(r->metrics, sizeof r->metrics, "w");
    assert_non_null(f);
    fr_pipeline_write_metrics(p, f);
    fclose(f);
    fr_pipeline_close(p);
}

static uint64_t emitted_trainable(const fr_join_counters *j)
{
    uint64_t n = 0;
    for (int k = 0; k < FR_SAMPLE_NKINDS; k++)
        if (k != FR_SAMPLE_MATURED) n += j->emitted[k];
    return n;
}

/* The coverage line's numbers, in the order printed. */
static void coverage(const char *report, uint64_t v[8])
{
    const char *l = strstr(report, "coverage: ");
    if (!l) fail_msg("no coverage line in:\n%s", report);
    int n = sscanf(l,
                   "coverage: ctr scored %" SCNu64 " impressions, %" SCNu64 " pending (click window open); cvr scored %" SCNu64
                   " clicks, %" SCNu64 " pending (%" SCNu64 " in their click window, %" SCNu64
                   " in their attribution window); ctcvr scored %" SCNu64 " impressions, %" SCNu64 " pending",
                   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
    if (n != 8) fail_msg("coverage line not parsed (%d fields): %.300s", n, l);
}

static void check_policy(int policy, const char *name)
{
    char *dir = tmpdir_make("drain");
    char a[300], b[300];
    snprintf(a, sizeof a, "%s/plain", dir);
    snprintf(b, sizeof b, "%s/drained", dir);
    fr_gen_opts o = stream_opts();
    lines L = make_lines(&o);
    drained *plain = calloc(1, sizeof *plain), *dr = calloc(1, sizeof *dr);
    assert_true(plain && dr);
    run(a, &L, policy, 0, plain);
    run(b, &L, policy, 1, dr);
    uint64_t cp[8], cd[8];
    coverage(plain->report, cp);
    coverage(dr->report, cd);
    print_message("%s: plain: ctr %" PRIu64 " (+%" PRIu64 " pending) cvr %" PRIu64 " (+%" PRIu64 " pending) trained %" PRIu64
                  " buffered %" PRIu64 "; drained: ctr %" PRIu64 " cvr %" PRIu64 " ctcvr %" PRIu64 " trained %" PRIu64 "\n",
                  name, cp[0], cp[1], cp[2], cp[3], plain->counters.samples_trained, plain->counters.samples_buffered, cd[0],
                  cd[2], cd[6], dr->counters.samples_trained);

    /* Without draining, the clicks of the last days wait for their 7-day window and the report says
     * how many; the partial mini-batch is not trained (nor scored: a sample is scored as it trains). */
    const uint64_t clicks = plain->join.joined[FR_EV_CLICK] + plain->join.pending[FR_EV_CLICK];
    const uint64_t imps = plain->join.joined[FR_EV_IMPRESSION] + plain->join.pending[FR_EV_IMPRESSION];
    assert_true(clicks > 300);
    assert_int_equal(cp[0], plain->scored[FR_TASK_CTR]);
    assert_int_equal(cp[2], plain->scored[FR_TASK_CVR]);
    assert_int_equal(cp[6], plain->scored[FR_TASK_CTCVR]);
    assert_true(cp[3] > clicks / 4);
    assert_true(cp[2] + cp[3] <= clicks);
    assert_true(cp[0] + cp[1] <= imps);
    assert_int_equal(cp[3], cp[4] + cp[5]);
    assert_int_equal(cp[7], cp[1] + cp[5]);
    assert_true(plain->counters.samples_buffered > 0);

    /* Drained: nothing pending, every impression and click scored once with its final label,
     * everything emitted trained, no window left open. */
    assert_int_equal(cd[1], 0);
    assert_int_equal(cd[3], 0);
    assert_int_equal(cd[7], 0);
    for (int t = 0; t < FR_EV_NTYPES; t++) assert_int_equal(dr->join.pending[t], 0);
    assert_int_equal(cd[0], dr->join.joined[FR_EV_IMPRESSION]);
    assert_int_equal(cd[0], dr->scored[FR_TASK_CTR]);
    assert_int_equal(cd[2], dr->join.joined[FR_EV_CLICK]);
    assert_int_equal(cd[2], clicks);
    assert_int_equal(cd[6], cd[0]);
    assert_int_equal(dr->counters.samples_buffered, 0);
    assert_int_equal(dr->counters.samples_trained, emitted_trainable(&dr->join));
    assert_true(dr->counters.samples_trained > plain->counters.samples_trained);
    assert_non_null(strstr(dr->report, " 0 samples not trained yet"));
    /* Every conversion of a counted click reached its click: the labels are the eventual ones. */
    assert_int_equal(dr->join.joined[FR_EV_CONVERSION],
                     dr->join.events[FR_EV_CONVERSION] - dr->join.dropped[FR_EV_CONVERSION][FR_DROP_DUPLICATE] -
                         dr->join.dropped[FR_EV_CONVERSION][FR_DROP_NOT_CLICKED] -
                         dr->join.dropped[FR_EV_CONVERSION][FR_DROP_ORPHAN] -
                         dr->join.dropped[FR_EV_CONVERSION][FR_DROP_OUTSIDE_WINDOW] -
                         dr->join.dropped[FR_EV_CONVERSION][FR_DROP_LATE]);
    /* The helper heads learn from matured clicks only: none without draining, the drained ones after;
     * fewer than FR_DFM_HEADS_WARM_SAMPLES either way, so both say cold. wait has none. */
    if (policy == FR_POLICY_ESDFM) {
        char want[64];
        assert_non_null(strstr(plain->status, " heads=cold(0 matured)"));
        snprintf(want, sizeof want, " heads=cold(%" PRIu64 " matured)", dr->join.emitted[FR_SAMPLE_MATURED]);
        if (!strstr(dr->status, want)) fail_msg("no \"%s\" in %s", want, dr->status);
        assert_true(dr->join.emitted[FR_SAMPLE_MATURED] > 0 && dr->join.emitted[FR_SAMPLE_MATURED] < FR_DFM_HEADS_WARM_SAMPLES);
        assert_non_null(strstr(plain->metrics, "\nfreshet_dfm_heads_cold 1\n"));
        assert_non_null(strstr(plain->metrics, "\nfreshet_dfm_heads_trained_samples_total 0\n"));
    } else {
        assert_null(strstr(plain->status, " heads="));
        assert_null(strstr(plain->metrics, "freshet_dfm_heads_cold"));
    }
    free(plain);
    free(dr);
    lines_free(&L);
    tmpdir_remove(dir);
}

static void test_drain_esdfm(void **state)
{
    (void)state;
    check_policy(FR_POLICY_ESDFM, "esdfm");
}

static void test_drain_wait(void **state)
{
    (void)state;
    check_policy(FR_POLICY_WAIT, "wait");
}

/* The command: --drain leaves nothing pending in the report; without it the report says what waits. */
static void test_replay_drain_cli(void **state)
{
    (void)state;
    char *dir = tmpdir_make("drain_cli");
    char events[300], scratch[300], s1[300], s2[300];
    snprintf(events, sizeof events, "%s/events.jsonl", dir);
    snprintf(scratch, sizeof scratch, "%s/out", dir);
    snprintf(s1, sizeof s1, "%s/s1", dir);
    snprintf(s2, sizeof s2, "%s/s2", dir);
    fr_gen_opts o = stream_opts();
    o.impressions = 8000;
    lines L = make_lines(&o);
    FILE *f = fopen(events, "w");
    assert_non_null(f);
    for (size_t i = 0; i < L.n; i++) fprintf(f, "%s\n", L.line[i]);
    fclose(f);
    lines_free(&L);
    uint64_t v[8];
    char *plain[] = {"freshet", "replay", events, "--state", s1, "--no-publish", NULL};
    assert_int_equal(run_cli(plain, scratch, g_out, sizeof g_out), 0);
    coverage(g_out, v);
    assert_true(v[3] > 0);
    char *drain[] = {"freshet", "replay", events, "--state", s2, "--no-publish", "--drain", NULL};
    assert_int_equal(run_cli(drain, scratch, g_out, sizeof g_out), 0);
    coverage(g_out, v);
    assert_int_equal(v[1], 0);
    assert_int_equal(v[3], 0);
    assert_int_equal(v[7], 0);
    assert_true(v[2] > 0);
    assert_non_null(strstr(g_out, " 0 samples not trained yet"));
    tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drain_esdfm),
        cmocka_unit_test(test_drain_wait),
        cmocka_unit_test(test_replay_drain_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
