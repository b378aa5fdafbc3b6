/* Tests of the synthetic generator: determinism, the EVENTS.md format, ordering, agreement
 * between the events and the truth file, the rates the world is meant to have, duplicates,
 * arrival jitter, and that the structure terms (retargeting, the scenario x age x category flip,
 * clickbait) really move the probabilities. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_gen.h"
#include "gen_output.h"

/* ------------------------------------------------------------------ the shared fixture */

typedef struct {
    fr_gen_opts opts;
    output out;
    pev *ev;
    size_t n_ev;
    trow *tr;
    size_t n_tr;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    small_opts(&f->opts);
    f->opts.n_users = 200000;
    f->opts.n_ads = 20000;
    char err[256];
    if (gen(&f->opts, &f->out, err, sizeof err) != 0)
        return -1;
    f->n_ev = parse_events(&f->out, &f->ev);
    f->n_tr = parse_truth(&f->out, &f->tr);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    out_free(&f->out);
    free(f->ev);
    free(f->tr);
    free(f);
    return 0;
}

/* ------------------------------------------------------------------ tests */

static void test_defaults(void **state)
{
    (void)state;
    fr_gen_opts o;
    fr_gen_defaults(&o);
    assert_int_equal(o.seed, 42);
    assert_int_equal(o.impressions, 1000000);
    assert_int_equal(o.start_ts_ms, 1764547200000LL);
    assert_true(o.days == 14.0);
    assert_int_equal(o.n_users, 200000);
    assert_int_equal(o.n_ads, 20000);
    assert_true(o.delay_short_share == 0.35 && o.delay_short_mean_s == 900.0 && o.delay_long_mean_s == 172800.0);
    assert_true(o.obs_window_s == 900.0);
    assert_true(o.duplicate_rate == 0.0 && o.reorder_ms == 0.0);
}

static void test_rejects_bad_options(void **state)
{
    (void)state;
    fr_gen_opts bad[10];
    for (int i = 0; i < 10; i++) {
        small_opts(&bad[i]);
        bad[i].impressions = 10;
    }
    bad[0].days = 0.0;
    bad[1].days = NAN;
    bad[2].n_users = 0;
    bad[3].n_ads = -5;
    bad[4].impressions = -1;
    bad[5].delay_short_share = 1.5;
    bad[6].delay_long_mean_s = 0.0;
    bad[7].duplicate_rate = 1.0;
    bad[8].reorder_ms = -1.0;
    bad[9].start_ts_ms = -1;
    for (int i = 0; i < 10; i++) {
        output out;
        char err[256] = "";
        assert_int_equal(gen(&bad[i], &out, err, sizeof err), -1);
        assert_true(strlen(err) > 0);
        assert_int_equal(out.ev_len, 0);
        out_free(&out);
    }
    char err[64] = "";
    assert_int_equal(fr_gen_run(&bad[0], NULL, NULL, err, sizeof err), -1);
    assert_int_equal(fr_gen_run(&bad[0], stdout, NULL, NULL, 0), -1); /* no err buffer: still refuses */
}

static void test_empty_run_and_null_truth(void **state)
{
    (void)state;
    fr_gen_opts o;
    small_opts(&o);
    o.impressions = 0;
    output out;
    gen_ok(&o, &out);
    assert_int_equal(out.ev_len, 0);
    assert_int_equal(out.tr_len, strlen(TRUTH_HEADER));
    assert_memory_equal(out.tr, TRUTH_HEADER, out.tr_len);
    out_free(&out);

    o.impressions = 2000;
    output with;
    gen_ok(&o, &with);
    char *buf = NULL;
    size_t len = 0;
    FILE *ev = open_memstream(&buf, &len);
    char err[256];
    assert_int_equal(fr_gen_run(&o, ev, NULL, err, sizeof err), 0);
    fclose(ev);
    assert_int_equal(len, with.ev_len); /* the truth stream does not influence the events */
    assert_memory_equal(buf, with.ev, len);
    free(buf);
    out_free(&with);
}

static void test_write_error_reported(void **state)
{
    (void)state;
    FILE *ro = fopen("/dev/null", "r");
    assert_non_null(ro);
    fr_gen_opts o;
    small_opts(&o);
    o.impressions = 1000;
    char err[256] = "";
    assert_int_equal(fr_gen_run(&o, ro, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "write"));
    fclose(ro);
}

static void test_same_seed_same_bytes(void **state)
{
    (void)state;
    fr_gen_opts o;
    small_opts(&o);
    o.impressions = 20000;
    o.duplicate_rate = 0.05;
    o.reorder_ms = 30000;
    output a, b;
    gen_ok(&o, &a);
    gen_ok(&o, &b);
    assert_true(a.ev_len > 0);
    assert_int_equal(a.ev_len, b.ev_len);
    assert_memory_equal(a.ev, b.ev, a.ev_len);
    assert_int_equal(a.tr_len, b.tr_len);
    assert_memory_equal(a.tr, b.tr, a.tr_len);
    out_free(&a);
    out_free(&b);
}

static void test_other_seed_other_bytes(void **state)
{
    (void)state;
    fr_gen_opts o;
    small_opts(&o);
    o.impressions = 5000;
    output a, b;
    gen_ok(&o, &a);
    o.seed = 43;
    gen_ok(&o, &b);
    assert_true(a.ev_len != b.ev_len || memcmp(a.ev, b.ev, a.ev_len) != 0);
    assert_true(a.tr_len != b.tr_len || memcmp(a.tr, b.tr, a.tr_len) != 0);
    /* Not one impression id in common. */
    size_t n = 0;
    trow *ta, *tb;
    size_t na = parse_truth(&a, &ta), nb = parse_truth(&b, &tb);
    idmap m;
    idmap_init(&m, na);
    for (size_t i = 0; i < na; i++)
        assert_int_equal(idmap_put(&m, ta[i].id, i), 0);
    for (size_t i = 0; i < nb; i++)
        n += idmap_get(&m, tb[i].id, &(size_t){0});
    assert_int_equal(n, 0);
    idmap_free(&m);
    free(ta);
    free(tb);
    out_free(&a);
    out_free(&b);
}

/* Every line is an EVENTS.md object (checked while parsing), ids are unique, the optional
 * sample_rate appears on about half of the impressions, timestamps span the requested days. */
static void test_events_format(void **state)
{
    fixture *f = *state;
    size_t imps = 0, with_sr = 0, with_recent = 0;
    int64_t lo = f->opts.start_ts_ms, hi = lo + (int64_t)(f->opts.days * 86400000.0);
    idmap m;
    idmap_init(&m, f->n_ev);
    for (size_t i = 0; i < f->n_ev; i++) {
        const pev *e = &f->ev[i];
        if (e->type != T_IMP)
            continue;
        imps++;
        with_sr += (size_t)e->has_sr;
        with_recent += e->nrecent > 0;
        assert_true(e->ts >= lo && e->ts < hi);
        assert_int_equal(idmap_put(&m, e->id, i), 0);
    }
    idmap_free(&m);
    assert_int_equal(imps, (size_t)f->opts.impressions);
    assert_int_equal(f->n_tr, imps);
    assert_true(fabs((double)with_sr / (double)imps - 0.5) < 0.02);
    assert_true(with_recent > imps / 10); /* the behaviour lists do fill up */
}

/* With no jitter, ts never decreases and clicks/conversions follow their own impression, at most
 * one each, conversion after click. */
static void test_order_and_references(void **state)
{
    fixture *f = *state;
    idmap m;
    idmap_init(&m, f->n_ev);
    int64_t *click_ts = calloc(f->n_ev, sizeof *click_ts);
    int64_t *conv_ts = calloc(f->n_ev, sizeof *conv_ts);
    assert_true(click_ts && conv_ts);
    for (size_t i = 0; i < f->n_ev; i++) {
        const pev *e = &f->ev[i];
        if (i > 0)
            assert_true(e->ts >= f->ev[i - 1].ts);
        size_t k = 0;
        if (e->type == T_IMP) {
            assert_int_equal(idmap_put(&m, e->id, i), 0);
            continue;
        }
        if (!idmap_get(&m, e->id, &k))
            fail_msg("event %zu refers to no earlier impression", i);
        assert_true(e->ts > f->ev[k].ts);
        if (e->type == T_CLICK) {
            assert_int_equal(click_ts[k], 0);
            click_ts[k] = e->ts;
        } else {
            assert_int_equal(conv_ts[k], 0);
            assert_true(click_ts[k] > 0 && e->ts > click_ts[k]);
            conv_ts[k] = e->ts;
        }
    }
    free(click_ts);
    free(conv_ts);
    idmap_free(&m);
}

/* The truth file says exactly what the events say: same impressions in the same order, clicked
 * = a click within 30 min, converted = clicked and a conversion within 7 days of the click. */
static void test_truth_matches_events(void **state)
{
    fixture *f = *state;
    idmap m;
    idmap_init(&m, f->n_tr);
    for (size_t i = 0; i < f->n_tr; i++)
        assert_int_equal(idmap_put(&m, f->tr[i].id, i), 0);
    int64_t *click = malloc(f->n_tr * sizeof *click), *conv = malloc(f->n_tr * sizeof *conv);
    assert_true(click && conv);
    for (size_t i = 0; i < f->n_tr; i++)
        click[i] = conv[i] = -1;
    size_t ti = 0, late_clicks = 0, clicks = 0;
    for (size_t i = 0; i < f->n_ev; i++) {
        const pev *e = &f->ev[i];
        size_t k = 0;
        if (e->type == T_IMP) {
            assert_int_equal(e->id, f->tr[ti].id); /* truth is in the impressions' event-time order */
            assert_int_equal(e->ts, f->tr[ti].ts);
            assert_int_equal(e->scen, f->tr[ti].scen);
            ti++;
            continue;
        }
        assert_true(idmap_get(&m, e->id, &k));
        if (e->type == T_CLICK)
            click[k] = e->ts;
        else
            conv[k] = e->ts;
    }
    assert_int_equal(ti, f->n_tr);
    double g7 = delay_cdf(&f->opts, (double)ATTR_WINDOW_MS);
    double gwo = delay_cdf(&f->opts, f->opts.obs_window_s * 1000.0);
    for (size_t i = 0; i < f->n_tr; i++) {
        const trow *t = &f->tr[i];
        assert_int_equal(t->click_ts, click[i]);
        assert_int_equal(t->conv_ts, conv[i]);
        int in_window = click[i] >= 0 && click[i] - t->ts <= CLICK_WINDOW_MS;
        assert_int_equal(t->clicked, in_window);
        int conv7 = in_window && conv[i] >= 0 && conv[i] - click[i] <= ATTR_WINDOW_MS;
        assert_int_equal(t->converted, conv7);
        assert_true(fabs(t->p_cvr_7d - t->p_cvr * g7) < 2e-6);
        assert_true(fabs(t->p_ip - t->p_cvr * gwo) < 2e-6);
        clicks += click[i] >= 0;
        late_clicks += click[i] >= 0 && !in_window;
        /* Nothing sits on a window boundary, so consumers cannot disagree on < versus <=. */
        assert_true(click[i] < 0 || click[i] - t->ts != CLICK_WINDOW_MS);
        assert_true(conv[i] < 0 || conv[i] - click[i] != ATTR_WINDOW_MS);
    }
    /* ~0.5% of clicks come after the click window. */
    assert_true(late_clicks > 0);
    assert_true((double)late_clicks / (double)clicks < 0.02);
    free(click);
    free(conv);
    idmap_free(&m);
}

static void test_rates(void **state)
{
    fixture *f = *state;
    double n = (double)f->n_tr, clicks = 0, sum_p = 0, var_p = 0, conv = 0, sum_c = 0, var_c = 0;
    double scen_n[4] = {0}, scen_p[4] = {0};
    for (size_t i = 0; i < f->n_tr; i++) {
        const trow *t = &f->tr[i];
        scen_n[t->scen]++;
        scen_p[t->scen] += t->p_ctr;
        clicks += t->clicked;
        sum_p += t->p_ctr;
        var_p += t->p_ctr * (1 - t->p_ctr);
        if (t->clicked) {
            conv += t->converted;
            sum_c += t->p_cvr_7d;
            var_c += t->p_cvr_7d * (1 - t->p_cvr_7d);
        }
    }
    for (int s = 0; s < 4; s++) {
        double share = scen_n[s] / n, se = sqrt(SCEN_SHARE[s] * (1 - SCEN_SHARE[s]) / n);
        if (fabs(share - SCEN_SHARE[s]) > 5 * se)
            fail_msg("scenario %s share %.4f, want %.2f", SCEN[s], share, SCEN_SHARE[s]);
    }
    /* Base CTRs differ by scenario: music > video > browser > third_party (on the exact p_ctr). */
    double m[4];
    for (int s = 0; s < 4; s++)
        m[s] = scen_p[s] / scen_n[s];
    assert_true(m[2] > m[0] && m[0] > m[1] && m[1] > m[3]);
    double ctr = clicks / n, cvr = conv / clicks;
    if (ctr < 0.01 || ctr > 0.05)
        fail_msg("CTR %.4f outside [1%%, 5%%]", ctr);
    if (cvr < 0.03 || cvr > 0.15)
        fail_msg("CVR %.4f outside [3%%, 15%%]", cvr);
    assert_within_se("clicks vs sum p_ctr", clicks, sum_p, var_p, 4.0);
    assert_within_se("conversions within 7 d vs sum p_cvr_7d over clicks", conv, sum_c, var_c, 4.0);
}

/* Conversion delays follow the mixture CDF; conversions beyond 7 days are written but not
 * counted. A long second component makes the late ones plentiful. */
static void test_conversion_delays(void **state)
{
    (void)state;
    fr_gen_opts o;
    small_opts(&o);
    o.impressions = 250000;
    o.days = 20.0;
    o.delay_long_mean_s = 10.0 * 86400.0;
    /* Only the truth is needed here; the events go nowhere to keep the test fast. */
    output out = {0};
    FILE *sink = fopen("/dev/null", "w"), *tr = open_memstream(&out.tr, &out.tr_len);
    assert_true(sink && tr);
    char err[256] = "";
    int rc = fr_gen_run(&o, sink, tr, err, sizeof err);
    fclose(sink);
    fclose(tr);
    if (rc != 0)
        fail_msg("fr_gen_run: %s", err);
    trow *t;
    size_t n = parse_truth(&out, &t);
    const double horizon[3] = {(double)CLICK_WINDOW_MS, 86400000.0, (double)ATTR_WINDOW_MS};
    double within[3] = {0}, total = 0, ever = 0, sum_ever = 0, var_ever = 0;
    for (size_t i = 0; i < n; i++) {
        if (!t[i].clicked)
            continue;
        sum_ever += t[i].p_cvr;
        var_ever += t[i].p_cvr * (1 - t[i].p_cvr);
        if (t[i].conv_ts < 0)
            continue;
        ever++;
        total++;
        double d = (double)(t[i].conv_ts - t[i].click_ts);
        for (int h = 0; h < 3; h++)
            within[h] += d <= horizon[h];
        assert_int_equal(t[i].converted, d <= (double)ATTR_WINDOW_MS);
    }
    assert_true(total > 400);
    assert_within_se("conversions ever vs sum p_cvr", ever, sum_ever, var_ever, 4.0);
    for (int h = 0; h < 3; h++) {
        double g = delay_cdf(&o, horizon[h]);
        assert_within_se("conversions within horizon", within[h], g * total, g * (1 - g) * total, 4.0);
    }
    assert_true(within[2] < total); /* some conversions come after the attribution window */
    free(t);
    out_free(&out);
}

/* Dropping a line equal to its predecessor recovers the run without duplicates, byte for byte,
 * and the duplicates come at the requested rate. */
static void test_duplicates(void **state)
{
    (void)state;
    fr_gen_opts o;
    small_opts(&o);
    o.impressions = 20000;
    output plain, dup;
    gen_ok(&o, &plain);
    o.duplicate_rate = 0.2;
    gen_ok(&o, &dup);
    assert_int_equal(dup.tr_len, plain.tr_len);
    assert_memory_equal(dup.tr, plain.tr, plain.tr_len);
    char *dedup = malloc(dup.ev_len + 1);
    assert_non_null(dedup);
    size_t len = 0, lines = 0, dups = 0;
    const char *p = dup.ev, *end = dup.ev + dup.ev_len, *prev = NULL;
    size_t prev_len = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(nl);
        size_t l = (size_t)(nl - p) + 1;
        if (prev && l == prev_len && memcmp(p, prev, l) == 0) {
            dups++;
            prev = NULL; /* an event is written at most twice */
        } else {
            memcpy(dedup + len, p, l);
            len += l;
            lines++;
            prev = p;
            prev_len = l;
        }
        p = nl + 1;
    }
    assert_int_equal(len, plain.ev_len);
    assert_memory_equal(dedup, plain.ev, len);
    double rate = (double)dups / (double)lines, se = sqrt(0.2 * 0.8 / (double)lines);
    if (fabs(rate - 0.2) > 4 * se)
        fail_msg("duplicate rate %.4f, want 0.2", rate);
    free(dedup);
    out_free(&plain);
    out_free(&dup);
}

static int cmp_line(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    return strcmp(x, y);
}

/* Splits a buffer into NUL-terminated lines (in place on a copy); returns the copy. */
static char *split_lines(const output *o, char ***lines, size_t *n)
{
    char *copy = malloc(o->ev_len + 1);
    assert_non_null(copy);
    memcpy(copy, o->ev, o->ev_len);
    copy[o->ev_len] = '\0';
    size_t cap = 1024;
    *lines = malloc(cap * sizeof **lines);
    assert_non_null(*lines);
    *n = 0;
    char *p = copy, *end = copy + o->ev_len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(nl);
        *nl = '\0';
        if (*n == cap) {
            cap *= 2;
            *lines = realloc(*lines, cap * sizeof **lines);
            assert_non_null(*lines);
        }
        (*lines)[(*n)++] = p;
        p = nl + 1;
    }
    return copy;
}

/* Jitter changes the order and nothing else; no event arrives more than reorder_ms late
 * relative to the newest ts seen before it. */
static void test_reorder(void **state)
{
    (void)state;
    fr_gen_opts o;
    small_opts(&o);
    o.impressions = 20000;
    output plain, jit;
    gen_ok(&o, &plain);
    o.reorder_ms = 60000;
    gen_ok(&o, &jit);
    assert_int_equal(jit.tr_len, plain.tr_len);
    assert_memory_equal(jit.tr, plain.tr, plain.tr_len);
    assert_int_equal(jit.ev_len, plain.ev_len);
    assert_true(memcmp(jit.ev, plain.ev, plain.ev_len) != 0);

    pev *ev;
    size_t n = parse_events(&jit, &ev), inversions = 0;
    int64_t max_ts = 0;
    for (size_t i = 0; i < n; i++) {
        if (ev[i].ts < max_ts) {
            inversions++;
            assert_true(max_ts - ev[i].ts < 60000);
        }
        if (ev[i].ts > max_ts)
            max_ts = ev[i].ts;
    }
    assert_true(inversions > n / 10);
    free(ev);

    char **la, **lb;
    size_t na, nb;
    char *ca = split_lines(&plain, &la, &na), *cb = split_lines(&jit, &lb, &nb);
    assert_int_equal(na, nb);
    qsort(la, na, sizeof *la, cmp_line);
    qsort(lb, nb, sizeof *lb, cmp_line);
    for (size_t i = 0; i < na; i++)
        assert_string_equal(la[i], lb[i]);
    free(la);
    free(lb);
    free(ca);
    free(cb);
    out_free(&plain);
    out_free(&jit);
}

static double logit(double p) { return log(p / (1 - p)); }

/* Category of each ad, learnt from the impressions (every recent ad was once a shown ad). */
typedef struct {
    int n;
    int *cat; /* -1 unknown */
    int *adv; /* -1 unknown */
    char names[32][24];
    int n_names;
} catmap;

static int cat_id(catmap *c, const char *name)
{
    for (int i = 0; i < c->n_names; i++)
        if (strcmp(c->names[i], name) == 0)
            return i;
    assert_true(c->n_names < 32);
    strcpy(c->names[c->n_names], name);
    return c->n_names++;
}

/* Bit j set: the j-th recent ad has the target's advertiser. Asserts the advertiser is known (a
 * recent ad was clicked, so it was shown before). */
static unsigned match_mask(const catmap *c, const pev *e)
{
    unsigned mask = 0;
    for (int j = 0; j < e->nrecent; j++) {
        int a = atoi(e->recent[j] + 1);
        assert_true(a >= 0 && a < c->n && c->adv[a] >= 0);
        if (c->adv[a] == e->adv)
            mask |= 1u << j;
    }
    return mask;
}

/* The behaviour term is retargeting: (1) on average p_ctr is higher when a recent click is an ad
 * of the target's advertiser; (2) controlled: for the same user, ad, scenario, hour and device, the
 * logit moves up exactly when the list goes from no match to some match, and does not move when
 * both lists have a match, however many and wherever they sit (an "any" effect, not a count), nor
 * when neither has one. */
static void test_behaviour_term(void **state)
{
    (void)state;
    fr_gen_opts o;
    small_opts(&o);
    o.impressions = 40000;
    o.n_users = 100;
    o.n_ads = 50;
    output out;
    gen_ok(&o, &out);
    pev *ev;
    trow *tr;
    size_t n = parse_events(&out, &ev), nt = parse_truth(&out, &tr);
    catmap c = {.n = o.n_ads};
    c.cat = malloc((size_t)o.n_ads * sizeof *c.cat);
    c.adv = malloc((size_t)o.n_ads * sizeof *c.adv);
    assert_true(c.cat && c.adv);
    for (int i = 0; i < o.n_ads; i++)
        c.cat[i] = c.adv[i] = -1;

    /* Last seen (mask, logit) per (user, ad, scenario, hour, device). */
    enum { DEVS = 3 };
    size_t keys = (size_t)o.n_users * (size_t)o.n_ads * 4 * 24 * DEVS;
    unsigned *mask_of = malloc(keys * sizeof *mask_of), *pattern_of = malloc(keys * sizeof *pattern_of);
    double *logit_of = malloc(keys * sizeof *logit_of);
    unsigned char *seen = calloc(keys, 1);
    assert_true(mask_of && pattern_of && logit_of && seen);
    double sum[2] = {0}, cnt[2] = {0};
    size_t ti = 0, up = 0, same = 0, other_matches = 0;
    for (size_t i = 0; i < n; i++) {
        const pev *e = &ev[i];
        if (e->type != T_IMP)
            continue;
        const trow *t = &tr[ti++];
        int ad = atoi(e->ad + 1), user = atoi(e->user + 1), cat = cat_id(&c, e->category);
        c.cat[ad] = cat;
        c.adv[ad] = e->adv;
        unsigned pattern = match_mask(&c, e), mask = pattern != 0;
        if (e->nrecent > 0) {
            sum[mask != 0] += t->p_ctr;
            cnt[mask != 0]++;
        }
        int dev = !strcmp(e->device, "android") ? 0 : !strcmp(e->device, "ios") ? 1 : 2;
        size_t key = ((((size_t)user * (size_t)o.n_ads + (size_t)ad) * 4 + (size_t)e->scen) * 24 + (size_t)e->hour) *
                         DEVS + (size_t)dev;
        double z = logit(t->p_ctr);
        if (seen[key] && t->p_ctr > 0.002) {
            double dz = z - logit_of[key];
            if (mask == mask_of[key]) {
                assert_true(fabs(dz) < 0.005);
                same++;
                other_matches += mask && pattern != pattern_of[key];
            } else if (mask_of[key] == 0) {
                assert_true(dz > 0.01);
                up++;
            } else if (mask == 0) {
                assert_true(dz < -0.01);
                up++;
            }
        }
        seen[key] = 1;
        mask_of[key] = mask;
        pattern_of[key] = pattern;
        logit_of[key] = z;
    }
    assert_int_equal(ti, nt);
    assert_true(cnt[0] > 1000 && cnt[1] > 1000);
    double with = sum[1] / cnt[1], without = sum[0] / cnt[0];
    if (!(with > without * 1.1))
        fail_msg("mean p_ctr with an advertiser match %.4f, without %.4f", with, without);
    if (up < 100 || same < 100 || other_matches < 20)
        fail_msg("too few controlled pairs: %zu changed, %zu equal (%zu with other match patterns)", up, same,
                 other_matches);
    free(mask_of);
    free(pattern_of);
    free(logit_of);
    free(seen);
    free(c.cat);
    free(c.adv);
    free(ev);
    free(tr);
    out_free(&out);
}

/* The scenario x age x category term is not additive: on the exact CTR logits, once each scenario's
 * age and category main effects are removed, what is left of the age x category table in video
 * runs against what is left in browser (the term's sign flips between them), where a shared
 * age x category table would make the two agree. */
static void test_scenario_interaction_flips(void **state)
{
    fixture *f = *state;
    enum { AGES = 6, CATS = 32 };
    catmap c = {.n = 0};
    double sum[2][AGES][CATS] = {{{0}}}, cnt[2][AGES][CATS] = {{{0}}};
    size_t ti = 0;
    for (size_t i = 0; i < f->n_ev; i++) {
        const pev *e = &f->ev[i];
        if (e->type != T_IMP)
            continue;
        const trow *t = &f->tr[ti++];
        int cat = cat_id(&c, e->category);
        if (e->scen > 1) /* video and browser */
            continue;
        sum[e->scen][e->age][cat] += logit(t->p_ctr);
        cnt[e->scen][e->age][cat]++;
    }
    /* Cells seen often enough in both scenarios; then double-centre each scenario's table over them. */
    double res[2][AGES][CATS];
    int ok[AGES][CATS], n_ok = 0;
    for (int a = 0; a < AGES; a++)
        for (int k = 0; k < c.n_names; k++) {
            ok[a][k] = cnt[0][a][k] >= 40 && cnt[1][a][k] >= 40;
            n_ok += ok[a][k];
        }
    assert_true(n_ok >= 40);
    for (int s = 0; s < 2; s++) {
        double m[AGES][CATS], row[AGES] = {0}, col[CATS] = {0}, nrow[AGES] = {0}, ncol[CATS] = {0}, all = 0;
        for (int a = 0; a < AGES; a++)
            for (int k = 0; k < c.n_names; k++)
                if (ok[a][k]) {
                    m[a][k] = sum[s][a][k] / cnt[s][a][k];
                    row[a] += m[a][k], nrow[a]++;
                    col[k] += m[a][k], ncol[k]++;
                    all += m[a][k];
                }
        for (int a = 0; a < AGES; a++)
            for (int k = 0; k < c.n_names; k++)
                if (ok[a][k])
                    res[s][a][k] = m[a][k] - row[a] / nrow[a] - col[k] / ncol[k] + all / n_ok;
    }
    double xy = 0, xx = 0, yy = 0;
    for (int a = 0; a < AGES; a++)
        for (int k = 0; k < c.n_names; k++)
            if (ok[a][k]) {
                xy += res[0][a][k] * res[1][a][k];
                xx += res[0][a][k] * res[0][a][k];
                yy += res[1][a][k] * res[1][a][k];
            }
    double r = xy / sqrt(xx * yy);
    if (!(r < -0.3))
        fail_msg("video and browser age x category residuals correlate %.3f over %d cells, want < -0.3", r, n_ok);
}

/* Clickbait is a task conflict: over ads, the mean CTR logit and the mean CVR logit of their
 * impressions move against each other (with only the shared terms, quality, interest, age x
 * category, they would move together). */
static void test_task_conflict(void **state)
{
    fixture *f = *state;
    int n_ads = f->opts.n_ads;
    double *acc = calloc((size_t)n_ads * 3, sizeof *acc); /* per ad: count, sum logit ctr, sum logit cvr */
    assert_non_null(acc);
    size_t ti = 0;
    for (size_t i = 0; i < f->n_ev; i++) {
        const pev *e = &f->ev[i];
        if (e->type != T_IMP)
            continue;
        const trow *t = &f->tr[ti++];
        int ad = atoi(e->ad + 1);
        assert_true(ad >= 0 && ad < n_ads);
        acc[3 * ad] += 1;
        acc[3 * ad + 1] += logit(t->p_ctr);
        acc[3 * ad + 2] += logit(t->p_cvr);
    }
    double n = 0, sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    for (int a = 0; a < n_ads; a++) {
        if (acc[3 * a] < 30)
            continue;
        double x = acc[3 * a + 1] / acc[3 * a], y = acc[3 * a + 2] / acc[3 * a];
        n++, sx += x, sy += y, sxx += x * x, syy += y * y, sxy += x * y;
    }
    free(acc);
    assert_true(n >= 100);
    double r = (sxy - sx * sy / n) / sqrt((sxx - sx * sx / n) * (syy - sy * sy / n));
    if (!(r < -0.15))
        fail_msg("over %.0f ads the mean CTR and CVR logits correlate %.3f, want < -0.15", n, r);
}

/* Traffic follows the diurnal curve: the evening peak carries several times the night trough. */
static void test_diurnal_traffic(void **state)
{
    fixture *f = *state;
    double per_hour[24] = {0};
    for (size_t i = 0; i < f->n_tr; i++)
        per_hour[(f->tr[i].ts / 3600000) % 24]++;
    assert_true(per_hour[21] > 3.0 * per_hour[4]);
    assert_true(per_hour[12] > per_hour[6]);
}

int main(void)
{
    const struct CMUnitTest standalone[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_rejects_bad_options),
        cmocka_unit_test(test_empty_run_and_null_truth),
        cmocka_unit_test(test_write_error_reported),
        cmocka_unit_test(test_same_seed_same_bytes),
        cmocka_unit_test(test_other_seed_other_bytes),
        cmocka_unit_test(test_conversion_delays),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_reorder),
        cmocka_unit_test(test_behaviour_term),
    };
    const struct CMUnitTest on_fixture[] = {
        cmocka_unit_test(test_events_format),
        cmocka_unit_test(test_order_and_references),
        cmocka_unit_test(test_truth_matches_events),
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_scenario_interaction_flips),
        cmocka_unit_test(test_task_conflict),
        cmocka_unit_test(test_diurnal_traffic),
    };
    int failed = cmocka_run_group_tests_name("gen", standalone, NULL, NULL);
    failed += cmocka_run_group_tests_name("gen_fixture", on_fixture, setup, teardown);
    return failed != 0;
}
