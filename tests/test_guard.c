/* Tests of the label-collapse guard: fr_guard on synthetic label flows (a normal stream never
 * trips, cold start included; clicks or conversions that stop trip it; recovery resumes it;
 * max_pause accepts a new level), then the whole pipeline on a generated stream whose clicks stop
 * for 12 hours: nothing trains and nothing is published while it is paused, and a run restarted in
 * the middle of the pause with a tiny join cache (spilling) ends bit-identical to a straight run. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_ckpt.h"
#include "fr_config.h"
#include "fr_gen.h"
#include "fr_guard.h"
#include "fr_pipeline.h"
#include "gen_lines.h"
#include "tmpdir.h"

enum { MIN_MS = 60000, HOUR_MS = 3600000 };
static const int64_t T0 = INT64_C(1764547200000);

/* ---- fr_guard on synthetic flows ---- */

static fr_sample sample(int kind, int64_t ts, int label)
{
    fr_sample s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    s.ts = ts;
    if (kind == FR_SAMPLE_CLICK_WINDOW) {
        s.has_label[FR_TASK_CTR] = 1;
        s.label[FR_TASK_CTR] = (float)label;
    } else {
        s.has_label[FR_TASK_CVR] = 1;
        s.label[FR_TASK_CVR] = (float)label;
    }
    return s;
}

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A stream of one impression every 2 s for `hours`: CTR 5 %, every click gets a WINDOW copy with
 * label 1 at 40 %. Clicks are absent in [click_off, click_on), conversions in [conv_off, conv_on).
 * Returns what happened: trips, resumes, samples seen while paused, ts of the first trip/resume. */
typedef struct {
    int64_t click_off, click_on, conv_off, conv_on;
    double hours;
} flow_spec;

typedef struct {
    uint64_t trips, resumes, paused_samples, total;
    int64_t first_trip_ts, first_resume_ts;
    int reason;
} flow_result;

static void feed(fr_guard *g, const fr_guard_config *c, const fr_sample *s, flow_result *r)
{
    char msg[512];
    fr_guard_event e = fr_guard_observe(g, c, s, msg, sizeof msg);
    if (e == FR_GUARD_TRIPPED) {
        assert_true(strstr(msg, "paused") != NULL);
        if (!r->trips++) {
            r->first_trip_ts = s->ts;
            r->reason = g->reason;
        }
    } else if (e == FR_GUARD_RESUMED) {
        assert_true(strstr(msg, "resumed") != NULL);
        if (!r->resumes++) r->first_resume_ts = s->ts;
    } else {
        assert_int_equal(msg[0], '\0');
    }
    r->total++;
    if (fr_guard_paused(g)) {
        r->paused_samples++;
        fr_guard_hold(g, s);
    }
}

static flow_result run_flow(const fr_guard_config *c, const flow_spec *f)
{
    fr_guard g;
    fr_guard_init(&g);
    flow_result r = {.first_trip_ts = -1, .first_resume_ts = -1};
    uint64_t rs = 0x9e3779b97f4a7c15ull;
    const int64_t end = T0 + (int64_t)(f->hours * HOUR_MS);
    for (int64_t t = T0; t < end; t += 2000) {
        const int clicked = rng(&rs) % 100 < 5 && !(t >= f->click_off && t < f->click_on);
        fr_sample s = sample(FR_SAMPLE_CLICK_WINDOW, t, clicked);
        feed(&g, c, &s, &r);
        if (clicked) {
            /* the window copy, emitted 1 s later (emission order stays sorted) */
            const int conv = rng(&rs) % 100 < 40 && !(t >= f->conv_off && t < f->conv_on);
            s = sample(FR_SAMPLE_WINDOW, t + 1000, conv);
            feed(&g, c, &s, &r);
        }
    }
    uint64_t held = 0;
    for (int k = 0; k < FR_SAMPLE_NKINDS; k++) held += g.held[k];
    assert_int_equal(held, r.paused_samples);
    assert_int_equal(g.trips, r.trips);
    assert_int_equal(g.resumes, r.resumes);
    return r;
}

static fr_guard_config test_config(void)
{
    fr_guard_config c;
    fr_guard_config_defaults(&c);
    c.min_impressions = 200;
    c.min_clicks = 20;
    return c;
}

/* A window that decayed to (almost) nothing has no rate: a conversion arriving days after the last
 * click once printed cvr_short=9e82. */
static void test_rates_need_an_event(void **state)
{
    (void)state;
    fr_guard_flow f = {.den_s = 1e-80, .num_s = 1, .den_l = 40, .num_l = 2};
    double rs, rl;
    fr_guard_rates(&f, &rs, &rl);
    assert_true(isnan(rs));
    assert_true(rl == 0.05);
    f.den_s = 4;
    fr_guard_rates(&f, &rs, &rl);
    assert_true(rs == 0.25);
}

static void test_normal_stream_never_trips(void **state)
{
    (void)state;
    fr_guard_config c = test_config();
    flow_spec f = {.click_off = 0, .click_on = 0, .conv_off = 0, .conv_on = 0, .hours = 96};
    flow_result r = run_flow(&c, &f);
    assert_int_equal(r.trips, 0);
    assert_true(r.total > 60000);
    /* Cold start: the first three hours have no clicks at all (say, the clicks consumer starts
     * late). The rates are not known yet, so nothing trips, then or after. */
    f.click_off = T0;
    f.click_on = T0 + 3 * HOUR_MS;
    r = run_flow(&c, &f);
    assert_int_equal(r.trips, 0);
    /* Nor does the same stall right after the warm-up with the guard disabled. */
    c.enabled = 0;
    f.click_off = T0 + 24 * HOUR_MS;
    f.click_on = T0 + 30 * HOUR_MS;
    r = run_flow(&c, &f);
    assert_int_equal(r.trips, 0);
    assert_int_equal(r.paused_samples, 0);
}

static void test_clicks_stop_then_recover(void **state)
{
    (void)state;
    fr_guard_config c = test_config();
    flow_spec f = {.click_off = T0 + 36 * HOUR_MS, .click_on = T0 + 42 * HOUR_MS, .hours = 60};
    flow_result r = run_flow(&c, &f);
    assert_int_equal(r.trips, 1);
    assert_int_equal(r.resumes, 1);
    assert_int_equal(r.reason, FR_GUARD_CLICKS);
    /* The short EWMA (half-life 30 min) falls below 0.2 of the long one after ~70 min. */
    assert_true(r.first_trip_ts > f.click_off && r.first_trip_ts < f.click_off + 2 * HOUR_MS);
    /* Back above half of the long-term rate about one half-life after the clicks return. */
    assert_true(r.first_resume_ts > f.click_on && r.first_resume_ts < f.click_on + 2 * HOUR_MS);
    assert_true(r.paused_samples > 3000);
}

static void test_conversions_stop(void **state)
{
    (void)state;
    fr_guard_config c = test_config();
    flow_spec f = {.conv_off = T0 + 36 * HOUR_MS, .conv_on = T0 + 48 * HOUR_MS, .hours = 60};
    flow_result r = run_flow(&c, &f);
    assert_int_equal(r.trips, 1);
    assert_int_equal(r.reason, FR_GUARD_CONVERSIONS);
    assert_true(r.first_trip_ts > f.conv_off && r.first_trip_ts < f.conv_off + 3 * HOUR_MS);
    assert_int_equal(r.resumes, 1);
    assert_true(r.first_resume_ts > f.conv_on);
}

static void test_max_pause_accepts_new_level(void **state)
{
    (void)state;
    fr_guard_config c = test_config();
    /* Clicks never come back. Without max_pause the guard stays paused to the end. */
    flow_spec f = {.click_off = T0 + 30 * HOUR_MS, .click_on = INT64_MAX, .hours = 48};
    flow_result r = run_flow(&c, &f);
    assert_int_equal(r.trips, 1);
    assert_int_equal(r.resumes, 0);
    c.max_pause_ms = 4 * HOUR_MS;
    r = run_flow(&c, &f);
    assert_int_equal(r.trips, 1);
    assert_int_equal(r.resumes, 1);
    assert_true(r.first_resume_ts >= r.first_trip_ts + 4 * HOUR_MS);
    assert_true(r.first_resume_ts < r.first_trip_ts + 4 * HOUR_MS + MIN_MS);
}

/* Conversions counted as they arrived were set against the clicks of the same moment: when clicks
 * thinned out (here they stop after a day, as at the end of a stream) the conversions of earlier
 * clicks kept coming and cvr_long passed 1 (9.84 at the end of one run). A click and the conversion
 * counted for it now come at one event time. The samples below are what the join emits for a click
 * at t_c converting after a delay d (20 % of clicks; d is exp(5 min) for 30 % of them, exp(1 day)
 * for the rest), w_o = 15 min: esdfm emits WINDOW at t_c + w_o (label d <= w_o) and, for d > w_o,
 * DELAYED_POS at t_c + d; fnw emits FAKE_NEG at t_c and DELAYED_POS at t_c + d (in_window when
 * d <= w_o). */
typedef struct {
    int64_t ts;
    uint32_t seq; /* ties keep the generation order */
    fr_sample s;
} timed_sample;

static int timed_cmp(const void *a, const void *b)
{
    const timed_sample *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void conversion_rates_stay_rates(int fnw, double bound)
{
    enum { WO_MS = 15 * MIN_MS };
    size_t cap = 200000, n = 0;
    timed_sample *v = malloc(cap * sizeof *v);
    assert_non_null(v);
    uint64_t rs = 0x2545f4914f6cdd1dull;
#define PUSH(kind_, ts_, label_, inw_)                                                                  \
    do {                                                                                                \
        assert_true(n < cap);                                                                           \
        v[n] = (timed_sample){.ts = (ts_), .seq = (uint32_t)n, .s = sample((kind_), (ts_), (label_))}; \
        v[n].s.in_window = (uint8_t)(inw_);                                                             \
        n++;                                                                                            \
    } while (0)
    for (int64_t t = T0; t < T0 + 24 * HOUR_MS; t += 2000) {
        const int clicked = rng(&rs) % 100 < 5;
        PUSH(FR_SAMPLE_CLICK_WINDOW, t, clicked, 0);
        if (!clicked) continue;
        const int converts = rng(&rs) % 100 < 20;
        const double u = ((double)(rng(&rs) % 1000000) + 0.5) / 1e6;
        const double mean = rng(&rs) % 100 < 30 ? 5.0 * MIN_MS : 24.0 * HOUR_MS;
        const int64_t d = (int64_t)(-mean * log(u));
        const int in_window = converts && d <= WO_MS;
        if (fnw) {
            PUSH(FR_SAMPLE_FAKE_NEG, t, 0, 0);
            if (converts) PUSH(FR_SAMPLE_DELAYED_POS, t + d, 1, in_window);
        } else {
            PUSH(FR_SAMPLE_WINDOW, t + WO_MS, in_window, 0);
            if (converts && !in_window) PUSH(FR_SAMPLE_DELAYED_POS, t + d, 1, 0);
        }
    }
#undef PUSH
    qsort(v, n, sizeof *v, timed_cmp);
    fr_guard_config c = test_config();
    c.enabled = 1;
    fr_guard g;
    fr_guard_init(&g);
    double max_short = 0, max_long = 0;
    char msg[512];
    for (size_t i = 0; i < n; i++) {
        fr_guard_observe(&g, &c, &v[i].s, msg, sizeof msg);
        double rs_, rl_;
        fr_guard_rates(&g.cvr, &rs_, &rl_);
        if (rs_ > max_short) max_short = rs_; /* NaN compares false */
        if (rl_ > max_long) max_long = rl_;
    }
    print_message("%s: largest conversion rate short %.3g, long %.3g\n", fnw ? "fnw" : "esdfm", max_short, max_long);
    assert_true(max_long > 0.02); /* the flow was there */
    assert_true(max_short <= bound);
    assert_true(max_long <= bound);
    free(v);
}

static void test_conversion_rate_is_a_rate(void **state)
{
    (void)state;
    conversion_rates_stay_rates(0, 1.0);
    /* fnw counts a click at the click and its in-window conversion up to w_o later: at most a
     * factor 2^(w_o / short half-life) = 2^(15 / 30) above a rate. */
    conversion_rates_stay_rates(1, 1.4143);
}

/* ---- the pipeline ---- */

static int64_t line_ts(const char *l)
{
    const char *p = strstr(l, "\"ts\":");
    assert_non_null(p);
    return strtoll(p + 5, NULL, 10);
}

/* Drops the clicks of [40 h, 52 h) after the stream's start. */
static int not_stalled(const char *line, void *ctx)
{
    const int64_t start = *(const int64_t *)ctx;
    if (!strstr(line, "\"type\":\"click\"")) return 1;
    int64_t ts = line_ts(line);
    return ts < start + 40 * HOUR_MS || ts >= start + 52 * HOUR_MS;
}

/* A generated stream (3 days); with stall, the clicks of [40 h, 52 h) are lost. */
static lines make_stream(int stall)
{
    fr_gen_opts o;
    fr_gen_defaults(&o);
    o.impressions = 60000;
    o.days = 3;
    o.seed = 11;
    o.n_users = 2000;
    o.n_ads = 300;
    return gen_lines(&o, stall ? not_stalled : NULL, &o.start_ts_ms);
}

static fr_config pipeline_config(const char *dir, int64_t max_cached)
{
    fr_config c;
    fr_config_defaults(&c);
    snprintf(c.checkpoint_dir, sizeof c.checkpoint_dir, "%s", dir);
    c.redis_host[0] = '\0';
    c.checkpoint_every_samples = 20000;
    c.checkpoint_every_seconds = 0;
    c.max_cached_entries = max_cached;
    c.guard.short_half_life_ms = 2 * HOUR_MS;
    c.guard.long_half_life_ms = 24 * HOUR_MS;
    c.guard.min_impressions = 500;
    return c;
}

typedef struct {
    uint64_t trained_while_paused; /* samples trained between a trip and the next resume */
    uint64_t paused_messages;
    char digest[33];
    fr_guard guard;
    uint64_t withheld;
    size_t max_cached;
    uint64_t max_pending;
} run_result;

/* Feeds lines [from, to) (stop_at: checkpoint and close there) of L into the pipeline of dir. */
static size_t run_pipeline(const fr_config *c, const lines *L, size_t stop_at, run_result *r)
{
    char err[512];
    fr_pipeline *p = fr_pipeline_open(c, err, sizeof err);
    if (!p) fail_msg("open: %s", err);
    int64_t next = 0;
    assert_int_equal(fr_pipeline_register_source(p, "file", &next), 0);
    size_t i = next < 0 ? 0 : (size_t)next;
    uint64_t trained_at_pause = 0;
    int was_paused = fr_guard_paused(fr_pipeline_guard(p));
    if (was_paused) trained_at_pause = fr_pipeline_get_counters(p)->samples_trained;
    for (; i < L->n && i < stop_at; i++) {
        if (fr_pipeline_message(p, "file", (int64_t)i + 1, L->line[i], L->len[i], err, sizeof err) != 0)
            fail_msg("message %zu: %s", i, err);
        const int paused = fr_guard_paused(fr_pipeline_guard(p));
        const uint64_t trained = fr_pipeline_get_counters(p)->samples_trained;
        if (paused && !was_paused) trained_at_pause = trained;
        if (paused) {
            r->paused_messages++;
            r->trained_while_paused += trained - trained_at_pause;
            trained_at_pause = trained;
        }
        was_paused = paused;
        if (fr_pipeline_join_cached(p) > r->max_cached) r->max_cached = fr_pipeline_join_cached(p);
        if (fr_pipeline_pending(p) > r->max_pending) r->max_pending = fr_pipeline_pending(p);
    }
    if (i == L->n) {
        fr_pipeline_source_idle(p, "file", 1);
        assert_int_equal(fr_pipeline_tick(p), 0);
    }
    if (fr_pipeline_checkpoint(p, err, sizeof err) != 0) fail_msg("checkpoint: %s", err);
    r->guard = *fr_pipeline_guard(p);
    r->withheld += fr_pipeline_publishes_withheld(p);
    fr_pipeline_close(p);
    fr_ckpt *ck = fr_ckpt_open_readonly(c->checkpoint_dir, err, sizeof err);
    assert_non_null(ck);
    assert_int_equal(fr_ckpt_digest(ck, r->digest), 0);
    fr_ckpt_close(ck);
    return i;
}

static void test_pipeline_pauses_and_restarts_bit_identical(void **state)
{
    (void)state;
    char *dir = tmpdir_make("guard");
    char a[128], b[128], n[128];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(n, sizeof n, "%s/n", dir);

    /* The stream as generated never trips. */
    lines normal = make_stream(0);
    fr_config cn = pipeline_config(n, 0);
    run_result rn = {0};
    run_pipeline(&cn, &normal, SIZE_MAX, &rn);
    assert_int_equal(rn.guard.trips, 0);
    assert_int_equal(rn.paused_messages, 0);
    lines_free(&normal);

    /* Clicks lost for 12 hours: paused, nothing trains, nothing is published, then it resumes. */
    lines L = make_stream(1);
    fr_config ca = pipeline_config(a, 0);
    run_result ra = {0};
    run_pipeline(&ca, &L, SIZE_MAX, &ra);
    assert_int_equal(ra.guard.trips, 1);
    assert_int_equal(ra.guard.resumes, 1);
    assert_int_equal(ra.guard.reason, FR_GUARD_RUNNING);
    assert_true(ra.paused_messages > 1000);
    assert_int_equal(ra.trained_while_paused, 0);
    assert_true(ra.guard.held[FR_SAMPLE_CLICK_WINDOW] > 3000);

    /* The same with spilling (at most 300 entries whole in memory) and a restart in the middle
     * of the pause: the same checkpoint, bit for bit. */
    size_t mid = 0;
    while (mid < L.n && line_ts(L.line[mid]) < T0 + 47 * HOUR_MS) mid++;
    fr_config cb = pipeline_config(b, 300);
    run_result rb = {0};
    assert_int_equal(run_pipeline(&cb, &L, mid, &rb), mid);
    assert_true(fr_guard_paused(&rb.guard));
    {
        /* Restarting with the guard disabled ends the pause (closed without a checkpoint, so the
         * directory still holds the paused state for the run below). */
        fr_config off = cb;
        off.guard.enabled = 0;
        char e2[512];
        fr_pipeline *q = fr_pipeline_open(&off, e2, sizeof e2);
        assert_non_null(q);
        assert_false(fr_guard_paused(fr_pipeline_guard(q)));
        fr_pipeline_close(q);
    }
    run_pipeline(&cb, &L, SIZE_MAX, &rb);
    /* Bounded: at most the bound plus what one message reads back, while the join holds more. */
    assert_true(rb.max_cached <= 300 + 64);
    assert_true(rb.max_pending > 600);
    assert_string_equal(ra.digest, rb.digest);
    assert_memory_equal(&ra.guard, &rb.guard, sizeof ra.guard);
    assert_int_equal(rb.trained_while_paused, 0);
    assert_true(rb.withheld > 0); /* the checkpoints taken while paused did not publish */

    /* Restoring under another join.policy is refused by name. */
    fr_config cw = cb;
    cw.join_policy = FR_POLICY_WAIT;
    char err[512];
    assert_null(fr_pipeline_open(&cw, err, sizeof err));
    assert_non_null(strstr(err, "join.policy \"esdfm\""));
    /* So is another model shape; an edited learning rate is taken over, not silently ignored. */
    fr_config ce = cb;
    ce.model.expert_dim = 16;
    assert_null(fr_pipeline_open(&ce, err, sizeof err));
    assert_non_null(strstr(err, "model.expert_dim"));
    ce = cb;
    ce.model.lr_emb = 0.125f;
    fr_pipeline *q = fr_pipeline_open(&ce, err, sizeof err);
    assert_non_null(q);
    assert_true(fr_model_get_config(fr_pipeline_model(q))->lr_emb == 0.125f);
    fr_pipeline_close(q);

    lines_free(&L);
    tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rates_need_an_event),
        cmocka_unit_test(test_normal_stream_never_trips),
        cmocka_unit_test(test_clicks_stop_then_recover),
        cmocka_unit_test(test_conversions_stop),
        cmocka_unit_test(test_max_pause_accepts_new_level),
        cmocka_unit_test(test_conversion_rate_is_a_rate),
        cmocka_unit_test(test_pipeline_pauses_and_restarts_bit_identical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
