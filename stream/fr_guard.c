/* fr_guard: see fr_guard.h. */
#include "fr_guard.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

void fr_guard_config_defaults(fr_guard_config *c)
{
    memset(c, 0, sizeof *c);
    c->enabled = 1;
    c->short_half_life_ms = INT64_C(30) * 60 * 1000;
    c->long_half_life_ms = INT64_C(12) * 3600 * 1000;
    c->trip_fraction = 0.2;
    c->resume_fraction = 0.5;
    c->min_impressions = 1000;
    c->min_clicks = 100;
    c->max_pause_ms = 0;
}

void fr_guard_init(fr_guard *g)
{
    memset(g, 0, sizeof *g);
    g->first_ts = g->last_ts = INT64_MIN;
    g->paused_since = INT64_MIN;
}

int fr_guard_paused(const fr_guard *g) { return g->reason != FR_GUARD_RUNNING; }

static int flow_valid(const fr_guard_flow *f)
{
    const double v[] = {f->den_s, f->num_s, f->den_l, f->num_l};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (!(isfinite(v[i]) && v[i] >= 0)) return 0;
    return 1;
}

static int time_ok(int64_t t) { return t == INT64_MIN || t >= 0; }

int fr_guard_check(const fr_guard *g, char *why, size_t whylen)
{
    const char *bad = NULL;
    if (g->reason < 0 || g->reason >= FR_GUARD_NREASONS || g->pad != 0)
        bad = "reason out of range";
    else if (!time_ok(g->first_ts) || !time_ok(g->last_ts) || !time_ok(g->paused_since))
        bad = "a sample time below 0"; /* differenced with sample times (>= 0), it overflows */
    else if ((g->reason != FR_GUARD_RUNNING) != (g->paused_since != INT64_MIN))
        bad = "pause time and reason disagree";
    else if ((g->first_ts == INT64_MIN) != (g->last_ts == INT64_MIN) || g->first_ts > g->last_ts)
        bad = "first and last sample times out of order";
    else if (!flow_valid(&g->ctr) || !flow_valid(&g->cvr))
        bad = "a decayed count is negative or not finite";
    else if (g->resumes > g->trips || g->trips - g->resumes != (uint64_t)fr_guard_paused(g))
        bad = "trips and resumes disagree with the pause"; /* each trip pauses, each resume ends the pause */
    if (!bad) return 0;
    snprintf(why, whylen, "%s (reason %" PRId32 ", paused since %" PRId64 ", trips %" PRIu64 ", resumes %" PRIu64 ")",
             bad, g->reason, g->paused_since, g->trips, g->resumes);
    return -1;
}

void fr_guard_hold(fr_guard *g, const fr_sample *s)
{
    if (s->kind >= 0 && s->kind < FR_SAMPLE_NKINDS) g->held[s->kind]++;
}

const char *fr_guard_reason_name(fr_guard_reason r)
{
    switch (r) {
    case FR_GUARD_RUNNING: return "running";
    case FR_GUARD_CLICKS: return "clicks";
    case FR_GUARD_CONVERSIONS: return "conversions";
    case FR_GUARD_NREASONS: break;
    }
    return "unknown";
}

void fr_guard_rates(const fr_guard_flow *f, double *short_rate, double *long_rate)
{
    /* below one (decayed) event the ratio is noise: a conversion after days without clicks gave 1e82 */
    *short_rate = f->den_s >= 1 ? f->num_s / f->den_s : NAN;
    *long_rate = f->den_l >= 1 ? f->num_l / f->den_l : NAN;
}

static void decay(fr_guard_flow *f, double fs, double fl, int frozen_long)
{
    f->den_s *= fs;
    f->num_s *= fs;
    if (!frozen_long) {
        f->den_l *= fl;
        f->num_l *= fl;
    }
}

static void add(fr_guard_flow *f, double den, double num, int frozen_long)
{
    f->den_s += den;
    f->num_s += num;
    if (!frozen_long) {
        f->den_l += den;
        f->num_l += num;
    }
}

/* What a sample says about the flows: (impressions, clicks) and (clicks, conversions). Each click
 * counts once, at its first CVR sample, and with it the conversion that sample decides: the
 * in-window label of a WINDOW copy (an in-window conversion that reached the join after its copy
 * comes, at the same event time, as an in-window DELAYED_POS), the eventual one of an ORACLE copy,
 * the final one of wait's ATTRIBUTION. Conversions after w_o are not counted: counted as they
 * arrived, they were set against the clicks of the same moment, not against their own, so when
 * clicks thinned out (a night, the end of a stream) the "rate" passed 1 (9.84 at the end of one
 * run). Now every conversion counted belongs to a click counted at the same event time, and the
 * long and short rates stay in [0, 1]; fnw and fnc, whose click copy comes at the click, count its
 * in-window conversion up to w_o later (at most a factor 2^(w_o / half-life) above the rate). */
static void contribution(const fr_sample *s, double *imp, double *clk, double *cvr_clk, double *conv)
{
    *imp = *clk = *cvr_clk = *conv = 0;
    const int pos = s->label[FR_TASK_CVR] > 0.5f;
    switch (s->kind) {
    case FR_SAMPLE_CLICK_WINDOW:
        *imp = 1;
        *clk = s->label[FR_TASK_CTR] > 0.5f;
        break;
    case FR_SAMPLE_ATTRIBUTION: /* wait: the only CVR sample */
    case FR_SAMPLE_WINDOW:
    case FR_SAMPLE_ORACLE:
        *cvr_clk = 1;
        *conv = pos;
        break;
    case FR_SAMPLE_FAKE_NEG: *cvr_clk = 1; break;
    case FR_SAMPLE_DELAYED_POS: *conv = s->in_window; break;
    default: break; /* REAL_NEG, MATURED: no news */
    }
}

/* The short window must expect at least this many clicks (conversions) at the long-term rate
 * before a shortfall means anything: below it, Poisson noise alone empties the window now and then
 * (P(0 | 10) < 1e-4), and a level of zero accepted after max_pause never trips again. */
#define MIN_EXPECTED 10.0

static int collapsed(const fr_guard_flow *f, double min_count, double fraction, int warm)
{
    if (!warm || f->den_s < min_count || f->den_l < min_count || f->num_l <= 0) return 0;
    const double long_rate = f->num_l / f->den_l;
    if (f->den_s * long_rate < MIN_EXPECTED) return 0;
    return f->num_s / f->den_s < fraction * long_rate;
}

static int recovered(const fr_guard_flow *f, double min_count, double fraction)
{
    if (f->den_s < min_count) return 0;
    return f->num_s / f->den_s >= fraction * (f->num_l / f->den_l);
}

fr_guard_event fr_guard_observe(fr_guard *g, const fr_guard_config *c, const fr_sample *s, char *msg, size_t msglen)
{
    if (msglen) msg[0] = '\0';
    if (!c->enabled) return FR_GUARD_NO_CHANGE;
    const int paused = fr_guard_paused(g);
    if (g->first_ts == INT64_MIN) g->first_ts = s->ts;
    if (g->last_ts != INT64_MIN && s->ts > g->last_ts) {
        const double dt = (double)(s->ts - g->last_ts);
        const double fs = exp2(-dt / (double)c->short_half_life_ms);
        const double fl = exp2(-dt / (double)c->long_half_life_ms);
        decay(&g->ctr, fs, fl, paused);
        decay(&g->cvr, fs, fl, paused);
    }
    if (s->ts > g->last_ts) g->last_ts = s->ts;
    double imp, clk, cvr_clk, conv;
    contribution(s, &imp, &clk, &cvr_clk, &conv);
    add(&g->ctr, imp, clk, paused);
    add(&g->cvr, cvr_clk, conv, paused);

    double rs, rl;
    if (!paused) {
        /* Cold start: the long-term rate means nothing before it has seen a long half-life. */
        const int warm = s->ts - g->first_ts >= c->long_half_life_ms;
        fr_guard_reason r = FR_GUARD_RUNNING;
        if (collapsed(&g->ctr, c->min_impressions, c->trip_fraction, warm))
            r = FR_GUARD_CLICKS;
        else if (collapsed(&g->cvr, c->min_clicks, c->trip_fraction, warm))
            r = FR_GUARD_CONVERSIONS;
        if (r == FR_GUARD_RUNNING) return FR_GUARD_NO_CHANGE;
        g->reason = r;
        g->paused_since = s->ts;
        g->trips++;
        fr_guard_rates(r == FR_GUARD_CLICKS ? &g->ctr : &g->cvr, &rs, &rl);
        snprintf(msg, msglen,
                 "guard: training and publishing paused at event time %" PRId64 ": the joined %s rate fell to "
                 "%.4g (short-term) against %.4g (long-term), below guard.trip_fraction %.3g, while samples keep "
                 "flowing; is the %s topic or its producer stalled? Resumes when the rate is back above %.3g of "
                 "the long-term one",
                 s->ts, r == FR_GUARD_CLICKS ? "click (clicks per impression)" : "conversion (conversions per click)",
                 rs, rl, c->trip_fraction, r == FR_GUARD_CLICKS ? "clicks" : "conversions", c->resume_fraction);
        return FR_GUARD_TRIPPED;
    }
    const fr_guard_reason r = (fr_guard_reason)g->reason;
    fr_guard_flow *f = r == FR_GUARD_CLICKS ? &g->ctr : &g->cvr;
    const double min_count = r == FR_GUARD_CLICKS ? c->min_impressions : c->min_clicks;
    const int timed_out = c->max_pause_ms > 0 && s->ts - g->paused_since >= c->max_pause_ms;
    if (!recovered(f, min_count, c->resume_fraction) && !timed_out) return FR_GUARD_NO_CHANGE;
    fr_guard_rates(f, &rs, &rl);
    if (timed_out) {
        /* The operator chose to accept a lasting change: the new level becomes the baseline. */
        g->ctr.den_l = g->ctr.den_s, g->ctr.num_l = g->ctr.num_s;
        g->cvr.den_l = g->cvr.den_s, g->cvr.num_l = g->cvr.num_s;
        /* ... and, like at a cold start, it is not judged before a long half-life has passed. */
        g->first_ts = s->ts;
    }
    snprintf(msg, msglen,
             "guard: training and publishing resumed at event time %" PRId64 " after %" PRId64 " ms: the joined %s "
             "rate is %.4g against %.4g before the pause%s",
             s->ts, s->ts - g->paused_since, fr_guard_reason_name(r), rs, rl,
             timed_out ? " (guard.max_pause reached: the new level is accepted as the baseline; the guard warms up "
                         "again)"
                       : "");
    g->reason = FR_GUARD_RUNNING;
    g->paused_since = INT64_MIN;
    g->resumes++;
    return FR_GUARD_RESUMED;
}
