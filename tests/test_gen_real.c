/* Tests of the generator's conditions of real logs (fr_gen.h): the default stream's bytes are pinned;
 * the realistic stream is deterministic, valid EVENTS.md, and keeps the truth exact; and each
 * condition has a detector that finds it in the realistic stream and not in the same stream
 * without that condition (so each test would fail if its condition went missing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "fr_gen.h"
#include "gen_output.h"

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
    return h;
}

/* The default stream is the stationary world, byte for byte what it was before the conditions
 * existed (replay digests and the benchmarks depend on it): hashes of a run with duplicates and
 * jitter, taken from the generator before the change. */
static void test_default_bytes_pinned(void **state)
{
    (void)state;
    fr_gen_opts o;
    small_opts(&o);
    o.impressions = 20000;
    o.duplicate_rate = 0.05;
    o.reorder_ms = 30000;
    output out;
    gen_ok(&o, &out);
    assert_int_equal(out.ev_len, 5504893);
    assert_true(fnv1a(out.ev, out.ev_len) == 0x70dea72db17c0396ull);
    assert_true(fnv1a(out.tr, out.tr_len) == 0x0000f5119eaad02cull);
    out_free(&out);
}

static void test_conditions_parse(void **state)
{
    (void)state;
    unsigned bits = 0;
    char err[256] = "";
    assert_int_equal(fr_gen_conditions_parse("weekly,gap", &bits, err, sizeof err), 0);
    assert_int_equal(bits, FR_GEN_WEEKLY | FR_GEN_GAP);
    assert_int_equal(fr_gen_conditions_parse("realistic", &bits, err, sizeof err), 0);
    assert_int_equal(bits, FR_GEN_REALISTIC);
    assert_int_equal(bits, FR_GEN_WEEKLY | FR_GEN_GAP | FR_GEN_BURSTS | FR_GEN_LULLS | FR_GEN_SESSIONS |
                               FR_GEN_AD_CHURN | FR_GEN_SKEW);
    assert_int_equal(fr_gen_conditions_parse("weekly,bogus", &bits, err, sizeof err), -1);
    assert_non_null(strstr(err, "\"bogus\""));
    fr_gen_opts o;
    small_opts(&o);
    o.impressions = 10;
    o.conditions = FR_GEN_SKEW;
    o.partitions = 0;
    output out;
    assert_int_equal(gen(&o, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "partitions"));
    out_free(&out);
    o.partitions = 4;
    o.conditions = 1u << 12;
    assert_int_equal(gen(&o, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "conditions"));
    out_free(&out);
}

/* Partitions are Kafka's: the same as librdkafka's murmur2 partitioner (Java's default) for the
 * impression ids, so a file loaded with `freshet load` lands where the generator says. */
static void test_partition_is_kafka_murmur2(void **state)
{
    (void)state;
    char key[32];
    int counts[7] = {0};
    for (uint64_t i = 0; i < 20000; i++) {
        int n = snprintf(key, sizeof key, "i-%016" PRIx64, (uint64_t)(i * 0x9E3779B97F4A7C15ull));
        for (int parts = 1; parts <= 7; parts++)
            assert_int_equal(fr_gen_partition(key, (size_t)n, parts),
                             rd_kafka_msg_partitioner_murmur2(NULL, key, (size_t)n, parts, NULL, NULL));
        counts[fr_gen_partition(key, (size_t)n, 7)]++;
    }
    for (int k = 0; k < 7; k++)
        assert_true(counts[k] > 2500 && counts[k] < 3200);
    for (size_t len = 0; len < 8; len++) /* every tail length of the hash */
        assert_int_equal(fr_gen_partition("abcdefgh", len, 1000),
                         rd_kafka_msg_partitioner_murmur2(NULL, "abcdefgh", len, 1000, NULL, NULL));
}

/* A light scan of what the detectors need (the format is checked with jansson elsewhere). */
typedef struct {
    int type;
    uint64_t id;
    int64_t ts;
    int user, ad;
} lev;

static size_t scan_events(const output *o, lev **out)
{
    size_t cap = 1024, n = 0;
    lev *v = malloc(cap * sizeof *v);
    assert_non_null(v);
    const char *p = o->ev, *end = o->ev + o->ev_len;
    char line[1024];
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(nl);
        assert_true((size_t)(nl - p) < sizeof line);
        memcpy(line, p, (size_t)(nl - p)); /* strstr inside the big buffer would scan all of it under ASan */
        line[nl - p] = '\0';
        p = nl + 1;
        if (n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
            assert_non_null(v);
        }
        lev *e = &v[n++];
        memset(e, 0, sizeof *e);
        const char *t = strstr(line, "\"type\":\""), *id = strstr(line, "\"id\":\"i-"), *ts = strstr(line, "\"ts\":");
        assert_true(t && id && ts);
        e->type = t[8] == 'i' ? T_IMP : t[9] == 'l' ? T_CLICK : T_CONV;
        e->id = strtoull(id + 8, NULL, 16);
        e->ts = strtoll(ts + 5, NULL, 10);
        if (e->type == T_IMP) {
            const char *u = strstr(line, "\"user_id\":\"u"), *a = strstr(line, "\"ad_id\":\"a");
            assert_true(u && a);
            e->user = atoi(u + 12);
            e->ad = atoi(a + 10);
        }
    }
    *out = v;
    return n;
}

/* 40k impressions over 14 days (from a Monday) in a small world: long enough for weekdays,
 * weekends, bursts, lulls and a gap; small enough for the sanitizer build. */
static void real_opts(fr_gen_opts *o, unsigned conditions)
{
    fr_gen_defaults(o);
    o->seed = 7;
    o->impressions = 40000;
    o->days = 14.0;
    o->n_users = 20000;
    o->n_ads = 3000;
    o->conditions = conditions;
}

typedef struct {
    fr_gen_opts opts;
    lev *ev;
    size_t n;
} real_stream;

static real_stream real_gen(unsigned conditions)
{
    real_stream r;
    real_opts(&r.opts, conditions);
    char *buf = NULL;
    size_t len = 0;
    FILE *ev = open_memstream(&buf, &len);
    assert_non_null(ev);
    char err[256];
    assert_int_equal(fr_gen_run(&r.opts, ev, NULL, err, sizeof err), 0);
    fclose(ev);
    output o = {.ev = buf, .ev_len = len};
    r.n = scan_events(&o, &r.ev);
    free(buf);
    return r;
}

enum { DAYS = 14, HOURS = DAYS * 24, QUARTERS = DAYS * 96 };
static const int64_t HOUR = 3600000, QUARTER = 900000, DAY = 86400000;

/* Impressions per [DAYS][slots] cell of width w ms from the run's start. */
static void count_cells(const real_stream *r, int64_t w, int per_day, double *cells)
{
    memset(cells, 0, (size_t)(DAYS * per_day) * sizeof *cells);
    for (size_t i = 0; i < r->n; i++) {
        if (r->ev[i].type != T_IMP)
            continue;
        int64_t c = (r->ev[i].ts - r->opts.start_ts_ms) / w;
        assert_true(c >= 0 && c < DAYS * per_day);
        cells[c]++;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n == 0 ? 0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Each cell against the median of the same slot on the other days that had traffic. */
static void cell_ratios(const double *cells, int per_day, double *ratio)
{
    double day_total[DAYS] = {0};
    for (int c = 0; c < DAYS * per_day; c++)
        day_total[c / per_day] += cells[c];
    for (int d = 0; d < DAYS; d++)
        for (int q = 0; q < per_day; q++) {
            double others[DAYS];
            int n = 0;
            for (int e = 0; e < DAYS; e++)
                if (e != d && day_total[e] > 0)
                    others[n++] = cells[e * per_day + q];
            double m = median(others, n);
            ratio[d * per_day + q] = day_total[d] > 0 ? cells[d * per_day + q] / (m > 1 ? m : 1) : NAN;
        }
}

/* Weekend against Monday-Thursday traffic. Each day's level is the mean over its hours of the
 * hour's traffic against that clock hour's median day, leaving out the hours of bursts and lulls
 * (beyond 2x either way); the ratio is the mean level of weekend days over that of Monday-Thursday. */
static double weekly_ratio(const real_stream *r)
{
    double cells[HOURS], ratio[HOURS];
    count_cells(r, HOUR, 24, cells);
    cell_ratios(cells, 24, ratio);
    double we = 0, wd = 0, nwe = 0, nwd = 0;
    for (int d = 0; d < DAYS; d++) {
        double level = 0, n = 0;
        for (int h = 0; h < 24; h++)
            if (!isnan(ratio[d * 24 + h]) && ratio[d * 24 + h] > 0.5 && ratio[d * 24 + h] < 2.0)
                level += ratio[d * 24 + h], n++;
        if (n < 8)
            continue; /* the gap */
        level /= n;
        int dow = (int)(((r->opts.start_ts_ms + d * DAY) / DAY + 3) % 7); /* 0 = Monday */
        if (dow >= 5)
            we += level, nwe++;
        else if (dow <= 3)
            wd += level, nwd++;
    }
    assert_true(nwe >= 2 && nwd >= 6);
    return (we / nwe) / (wd / nwd);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The longest stretch without any event inside the run, in hours. */
static double longest_silence(const real_stream *r)
{
    int64_t *ts = malloc(r->n * sizeof *ts);
    assert_non_null(ts);
    size_t n = 0;
    const int64_t end = r->opts.start_ts_ms + (int64_t)(r->opts.days * (double)DAY);
    for (size_t i = 0; i < r->n; i++)
        if (r->ev[i].ts < end)
            ts[n++] = r->ev[i].ts;
    qsort(ts, n, sizeof *ts, cmp_i64);
    int64_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (ts[i] - ts[i - 1] > best)
            best = ts[i] - ts[i - 1];
    free(ts);
    return (double)best / (double)HOUR;
}

/* Bursts: the largest quarter-hour (with at least 40 impressions) against its slot's median day. */
static double burst_ratio(const real_stream *r)
{
    static double cells[QUARTERS], ratio[QUARTERS];
    count_cells(r, QUARTER, 96, cells);
    cell_ratios(cells, 96, ratio);
    double best = 0;
    for (int c = 0; c < QUARTERS; c++)
        if (cells[c] >= 40 && ratio[c] > best)
            best = ratio[c];
    return best;
}

/* Lulls: the longest run of consecutive hours at most 0.3 of their slot's median day (days
 * without traffic, the gap, are not hours of a lull). */
static int lull_hours(const real_stream *r)
{
    double cells[HOURS], ratio[HOURS];
    count_cells(r, HOUR, 24, cells);
    cell_ratios(cells, 24, ratio);
    int run = 0, best = 0;
    for (int c = 0; c < HOURS; c++) {
        run = !isnan(ratio[c]) && ratio[c] <= 0.3 ? run + 1 : 0;
        if (run > best)
            best = run;
    }
    return best;
}

/* Sessions: the largest share one user takes of an hour's impressions (hours with >= 100). */
static double top_user_share(const real_stream *r)
{
    double best = 0;
    int *count = calloc((size_t)r->opts.n_users, sizeof *count);
    assert_non_null(count);
    for (int h = 0; h < HOURS; h++) {
        const int64_t lo = r->opts.start_ts_ms + h * HOUR, hi = lo + HOUR;
        int total = 0, top = 0;
        for (size_t i = 0; i < r->n; i++)
            if (r->ev[i].type == T_IMP && r->ev[i].ts >= lo && r->ev[i].ts < hi) {
                total++;
                if (++count[r->ev[i].user] > top)
                    top = count[r->ev[i].user];
            }
        for (size_t i = 0; i < r->n; i++)
            if (r->ev[i].type == T_IMP && r->ev[i].ts >= lo && r->ev[i].ts < hi)
                count[r->ev[i].user] = 0;
        if (total >= 100 && (double)top / total > best)
            best = (double)top / total;
    }
    free(count);
    return best;
}

/* Ad churn: among ads shown at least 20 times, the share whose first and last impressions lie
 * within half the run. */
static double short_lived_ads(const real_stream *r)
{
    const int n = r->opts.n_ads;
    int64_t *first = malloc((size_t)n * sizeof *first), *last = malloc((size_t)n * sizeof *last);
    int *shown = calloc((size_t)n, sizeof *shown);
    assert_true(first && last && shown);
    for (size_t i = 0; i < r->n; i++) {
        const lev *e = &r->ev[i];
        if (e->type != T_IMP)
            continue;
        assert_true(e->ad >= 0 && e->ad < n);
        if (!shown[e->ad]++ || e->ts < first[e->ad])
            first[e->ad] = e->ts;
        if (shown[e->ad] == 1 || e->ts > last[e->ad])
            last[e->ad] = e->ts;
    }
    double many = 0, brief = 0;
    for (int a = 0; a < n; a++)
        if (shown[a] >= 20) {
            many++;
            brief += (double)(last[a] - first[a]) < r->opts.days * (double)DAY / 2;
        }
    free(first);
    free(last);
    free(shown);
    assert_true(many >= 50);
    return brief / many;
}

/* Skew: how far behind the newest event time seen so far an event arrives, at most (hours); and
 * that within its partition every event arrives in event-time order. */
static double arrival_lag_hours(const real_stream *r)
{
    int64_t newest = INT64_MIN, part_newest[64];
    for (int k = 0; k < 64; k++)
        part_newest[k] = INT64_MIN;
    int64_t worst = 0;
    char key[24];
    for (size_t i = 0; i < r->n; i++) {
        const lev *e = &r->ev[i];
        int k = fr_gen_partition(key, (size_t)snprintf(key, sizeof key, "i-%016" PRIx64, e->id), r->opts.partitions);
        assert_true(e->ts >= part_newest[k]);
        part_newest[k] = e->ts;
        if (e->ts > newest)
            newest = e->ts;
        if (newest - e->ts > worst)
            worst = newest - e->ts;
    }
    return (double)worst / (double)HOUR;
}

/* Each condition is in the realistic stream, and the same stream without that condition's bit does
 * not show it: the detectors tell them apart (they would fail if the condition went missing). */
static void test_weekly_cycle(void **state)
{
    real_stream *all = *state, without = real_gen(FR_GEN_REALISTIC & ~FR_GEN_WEEKLY);
    double with = weekly_ratio(all), none = weekly_ratio(&without);
    free(without.ev);
    print_message("weekend / weekday traffic: %.3f with, %.3f without\n", (double)with, (double)none);
    if (!(with > 1.16 && none < 1.12 && none > 0.88))
        fail_msg("weekend / weekday traffic %.3f with the weekly cycle, %.3f without", with, none);
}

static void test_day_long_gap(void **state)
{
    real_stream *all = *state, without = real_gen(FR_GEN_REALISTIC & ~FR_GEN_GAP);
    double with = longest_silence(all), none = longest_silence(&without);
    free(without.ev);
    print_message("longest silence (h): %.3f with, %.3f without\n", (double)with, (double)none);
    if (!(with >= 24.0 && none < 12.0))
        fail_msg("longest silence %.1f h with the gap, %.1f h without", with, none);
    /* The plan says where, and nothing of any type is inside. */
    fr_gen_plan plan;
    char err[256];
    assert_int_equal(fr_gen_plan_make(&all->opts, &plan, err, sizeof err), 0);
    assert_int_equal(plan.gap_to - plan.gap_from, DAY);
    size_t before = 0, after = 0;
    for (size_t i = 0; i < all->n; i++) {
        assert_false(all->ev[i].ts >= plan.gap_from && all->ev[i].ts < plan.gap_to);
        before += all->ev[i].ts < plan.gap_from;
        after += all->ev[i].ts >= plan.gap_to;
    }
    assert_true(before > 5000 && after > 5000);
}

static void test_bursts(void **state)
{
    real_stream *all = *state, without = real_gen(FR_GEN_REALISTIC & ~FR_GEN_BURSTS);
    double with = burst_ratio(all), none = burst_ratio(&without);
    free(without.ev);
    print_message("largest quarter-hour / its median day: %.3f with, %.3f without\n", (double)with, (double)none);
    if (!(with >= 6.0 && none < 4.0))
        fail_msg("largest quarter-hour against its median day: %.1fx with bursts, %.1fx without", with, none);
}

static void test_lulls(void **state)
{
    real_stream *all = *state, without = real_gen(FR_GEN_REALISTIC & ~FR_GEN_LULLS);
    int with = lull_hours(all), none = lull_hours(&without);
    free(without.ev);
    print_message("longest run of hours at <= 0.3 of the usual: %d with, %d without\n", with, none);
    if (!(with >= 3 && none <= 1))
        fail_msg("longest run of hours at <= 0.3 of the usual: %d with lulls, %d without", with, none);
}

static void test_heavy_tailed_sessions(void **state)
{
    real_stream *all = *state, without = real_gen(FR_GEN_REALISTIC & ~FR_GEN_SESSIONS);
    double with = top_user_share(all), none = top_user_share(&without);
    free(without.ev);
    print_message("largest share of one user in an hour: %.3f with, %.3f without\n", (double)with, (double)none);
    if (!(with >= 0.2 && none < 0.1))
        fail_msg("largest share of one user in an hour: %.3f with sessions, %.3f without", with, none);
}

static void test_ads_come_and_go(void **state)
{
    real_stream *all = *state, without = real_gen(FR_GEN_REALISTIC & ~FR_GEN_AD_CHURN);
    double with = short_lived_ads(all), none = short_lived_ads(&without);
    free(without.ev);
    print_message("share of ads (>= 20 impressions) within half the run: %.3f with, %.3f without\n", (double)with, (double)none);
    if (!(with >= 0.3 && none < 0.05))
        fail_msg("ads shown >= 20 times within half the run: %.3f with churn, %.3f without", with, none);
}

static void test_partitions_out_of_step(void **state)
{
    real_stream *all = *state, without = real_gen(FR_GEN_REALISTIC & ~FR_GEN_SKEW);
    double with = arrival_lag_hours(all), none = arrival_lag_hours(&without);
    free(without.ev);
    print_message("latest arrival behind the newest event time (h): %.3f with, %.3f without\n", (double)with, (double)none);
    fr_gen_plan plan;
    char err[256];
    assert_int_equal(fr_gen_plan_make(&all->opts, &plan, err, sizeof err), 0);
    if (!(with >= 1.5 && with * HOUR <= plan.max_lag_ms && none == 0.0))
        fail_msg("latest arrival behind the newest event time: %.2f h with skew (plan: at most %.2f h), %.2f h "
                 "without",
                 with, (double)plan.max_lag_ms / HOUR, none);
}

/* The same options give the same bytes; another seed, other bytes. */
static void test_realistic_deterministic(void **state)
{
    (void)state;
    fr_gen_opts o;
    real_opts(&o, FR_GEN_REALISTIC);
    o.impressions = 8000;
    o.reorder_ms = 20000;
    o.duplicate_rate = 0.02;
    output a, b, c;
    gen_ok(&o, &a);
    gen_ok(&o, &b);
    assert_int_equal(a.ev_len, b.ev_len);
    assert_memory_equal(a.ev, b.ev, a.ev_len);
    assert_int_equal(a.tr_len, b.tr_len);
    assert_memory_equal(a.tr, b.tr, a.tr_len);
    o.seed = 8;
    gen_ok(&o, &c);
    assert_true(c.ev_len != a.ev_len || memcmp(a.ev, c.ev, a.ev_len) != 0);
    out_free(&a);
    out_free(&b);
    out_free(&c);
}

/* The truth stays exact under every condition: the realistic stream is valid EVENTS.md, each id's
 * click and conversion are what the truth says, and the probabilities exclude exactly the conversion
 * delays the gap censors (so the realised rates match them). */
static void test_realistic_truth_exact(void **state)
{
    (void)state;
    fr_gen_opts o;
    real_opts(&o, FR_GEN_REALISTIC);
    o.impressions = 30000;
    o.days = 7.0;
    output out;
    gen_ok(&o, &out);
    pev *ev;
    trow *tr;
    size_t n = parse_events(&out, &ev), nt = parse_truth(&out, &tr);
    assert_int_equal(nt, (size_t)o.impressions);
    fr_gen_plan plan;
    char err[256];
    assert_int_equal(fr_gen_plan_make(&o, &plan, err, sizeof err), 0);
    assert_true(plan.gap_to > plan.gap_from);
    idmap m;
    idmap_init(&m, nt);
    for (size_t i = 0; i < nt; i++) {
        assert_int_equal(idmap_put(&m, tr[i].id, i), 0);
        if (i)
            assert_true(tr[i].ts >= tr[i - 1].ts); /* the truth is in event-time order */
    }
    int64_t *click = malloc(nt * sizeof *click), *conv = malloc(nt * sizeof *conv);
    assert_true(click && conv);
    for (size_t i = 0; i < nt; i++)
        click[i] = conv[i] = -1;
    size_t imps = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        assert_true(idmap_get(&m, ev[i].id, &k));
        assert_false(ev[i].ts >= plan.gap_from && ev[i].ts < plan.gap_to);
        if (ev[i].type == T_IMP) {
            assert_int_equal(ev[i].ts, tr[k].ts);
            assert_int_equal(ev[i].scen, tr[k].scen);
            imps++;
        } else if (ev[i].type == T_CLICK) {
            assert_int_equal(click[k], -1);
            click[k] = ev[i].ts;
        } else {
            assert_int_equal(conv[k], -1);
            conv[k] = ev[i].ts;
        }
    }
    assert_int_equal(imps, nt);
    const double wo = o.obs_window_s * 1000.0, g7 = delay_cdf(&o, (double)ATTR_WINDOW_MS), gwo = delay_cdf(&o, wo);
    double clicks = 0, sum_p = 0, var_p = 0, convs = 0, sum_c = 0, var_c = 0;
    size_t censored = 0;
    for (size_t i = 0; i < nt; i++) {
        const trow *t = &tr[i];
        assert_int_equal(t->click_ts, click[i]);
        assert_int_equal(t->conv_ts, conv[i]);
        int in_window = click[i] >= 0 && click[i] - t->ts <= CLICK_WINDOW_MS;
        assert_int_equal(t->clicked, in_window);
        assert_int_equal(t->converted, in_window && conv[i] >= 0 && conv[i] - click[i] <= ATTR_WINDOW_MS);
        /* The delay mass the gap censors, for the click written (or the impression's ts). */
        double c = (double)(t->clicked ? t->click_ts : t->ts), lo = (double)plan.gap_from - c,
               hi = (double)plan.gap_to - c;
        double mass7 = 0, masswo = 0;
        if (lo < 0)
            lo = 0;
        if (fmin(hi, (double)ATTR_WINDOW_MS) > lo)
            mass7 = delay_cdf(&o, fmin(hi, (double)ATTR_WINDOW_MS)) - delay_cdf(&o, lo);
        if (fmin(hi, wo) > lo)
            masswo = delay_cdf(&o, fmin(hi, wo)) - delay_cdf(&o, lo);
        if (fabs(t->p_cvr_7d - t->p_cvr * (g7 - mass7)) >= 2e-6 || fabs(t->p_ip - t->p_cvr * (gwo - masswo)) >= 2e-6)
            fail_msg("row %zu: p_cvr_7d %.6f p_ip %.6f, want %.6f %.6f", i, t->p_cvr_7d, t->p_ip,
                     t->p_cvr * (g7 - mass7), t->p_cvr * (gwo - masswo));
        censored += mass7 > 0.01;
        clicks += t->clicked;
        sum_p += t->p_ctr;
        var_p += t->p_ctr * (1 - t->p_ctr);
        if (t->clicked) {
            convs += t->converted;
            sum_c += t->p_cvr_7d;
            var_c += t->p_cvr_7d * (1 - t->p_cvr_7d);
        }
    }
    assert_true(censored > 1000); /* the gap's correction is not an empty check */
    assert_within_se("clicks vs sum p_ctr", clicks, sum_p, var_p, 4.0);
    assert_within_se("conversions vs sum p_cvr_7d over clicks", convs, sum_c, var_c, 4.0);
    free(click);
    free(conv);
    idmap_free(&m);
    free(ev);
    free(tr);
    out_free(&out);
}

static int real_setup(void **state)
{
    real_stream *r = malloc(sizeof *r);
    if (!r)
        return -1;
    *r = real_gen(FR_GEN_REALISTIC);
    *state = r;
    return 0;
}

static int real_teardown(void **state)
{
    real_stream *r = *state;
    free(r->ev);
    free(r);
    return 0;
}

int main(void)
{
    const struct CMUnitTest standalone[] = {
        cmocka_unit_test(test_default_bytes_pinned),
        cmocka_unit_test(test_conditions_parse),
        cmocka_unit_test(test_partition_is_kafka_murmur2),
        cmocka_unit_test(test_realistic_deterministic),
        cmocka_unit_test(test_realistic_truth_exact),
    };
    const struct CMUnitTest on_fixture[] = {
        cmocka_unit_test(test_weekly_cycle),
        cmocka_unit_test(test_day_long_gap),
        cmocka_unit_test(test_bursts),
        cmocka_unit_test(test_lulls),
        cmocka_unit_test(test_heavy_tailed_sessions),
        cmocka_unit_test(test_ads_come_and_go),
        cmocka_unit_test(test_partitions_out_of_step),
    };
    int failed = cmocka_run_group_tests_name("gen_real", standalone, NULL, NULL);
    failed += cmocka_run_group_tests_name("gen_real_fixture", on_fixture, real_setup, real_teardown);
    return failed != 0;
}
