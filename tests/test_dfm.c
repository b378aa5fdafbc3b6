/* Tests of learner/fr_dfm: the weights of each method by hand, and the fixed points of every
 * method by simulation through the real joiner (stream/fr_join) and the real weight functions and
 * helper heads, with an infinite-capacity learner: one logit per x, SGD with a decaying step,
 * Polyak-averaged over the second half of the run.
 *
 * The world: 4 values of x (the impression's first categorical key), each clicked impression
 * converts with probability c_x, after a delay of 5 ms (in the observation window w_o = 50),
 * 300 ms (after w_o, inside the attribution window W_a = 1000) or 2000 ms (beyond W_a, so a
 * negative). Hence exactly p_ip = c s_x, p_dp = c m_x, p* = p_ip + p_dp.
 * Tolerance: |estimate - derived fixed point| < 0.01 for every x (about 4 standard errors of the
 * averaged estimate at 40,000 clicks per x; the fixed points of different methods are >= 0.04
 * apart on x3 and x1, so a wrong weight fails). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fr_dfm.h"
#include "fr_join.h"
#include "fr_policy.h"

enum { NX = 4, NCLICK = 160000, CW = 10, WO = 50, WA = 1000, STEP = 2 };
static const int64_t DELAY[3] = {5, 300, 2000};
static const double C[NX] = {0.3, 0.6, 0.1, 0.8};
static const double SHARE[NX][3] = {{0.5, 0.4, 0.1}, {0.3, 0.6, 0.1}, {0.5, 0.5, 0.0}, {0.2, 0.7, 0.1}};

static double p_ip(int x) { return C[x] * SHARE[x][0]; }
static double p_dp(int x) { return C[x] * SHARE[x][1]; }
static double p_star(int x) { return p_ip(x) + p_dp(x); }

static double sigm(double z) { return 1 / (1 + exp(-z)); }

static uint64_t rng(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}
static double u01(uint64_t *s) { return (double)(rng(s) >> 11) * (1.0 / 9007199254740992.0); }

typedef enum { HEADS_LEARNED = 0, HEADS_TRUE, HEADS_WRONG_RN, HEADS_ZERO_DP } heads_mode;

typedef struct {
    fr_dfm_method method;
    int fnc;             /* serve q / (1 - q) */
    heads_mode heads;
    fr_join *j;
    fr_dfm_heads *h;
    double s[NX];        /* logits */
    long n[NX];          /* updates */
    double avg[NX];      /* Polyak average of sigma(s) over the second half */
    long navg[NX];
    long trained_per_x_limit;
    float *first_pred;   /* per click: the prediction at its first sample, NAN before */
    double prog_loss;    /* progressive log loss against the final label */
    long prog_n;
} sim;

static int x_of(const fr_sample *s) { return (int)(s->f.cat[0] - 100); }
static long click_of(const fr_sample *s) { return (long)s->f.cat[1]; }

static double serve(const sim *m, int x) { return fr_dfm_serve(m->fnc, sigm(m->s[x])); }

static void train(sim *m, int x, const fr_sample *s)
{
    /* loss w * BCE(sigma(s), y): gradient w (sigma - y) on the logit. */
    const double g = s->weight[FR_TASK_CVR] * (sigm(m->s[x]) - s->label[FR_TASK_CVR]);
    const double eta = 6.0 / pow((double)m->n[x] + 200.0, 0.7);
    m->s[x] -= eta * g;
    if (++m->n[x] > m->trained_per_x_limit / 2) {
        m->avg[x] += serve(m, x);
        m->navg[x]++;
    }
}

static void on_sample(const fr_sample *s, void *ctx)
{
    sim *m = ctx;
    const int x = x_of(s);
    const long id = click_of(s);
    if (isnan(m->first_pred[id])) m->first_pred[id] = (float)serve(m, x); /* scored before it trains */
    if (s->kind == FR_SAMPLE_CLICK_WINDOW) return;
    if (s->kind == FR_SAMPLE_MATURED || s->kind == FR_SAMPLE_ATTRIBUTION) {
        const double y = s->label[FR_TASK_CVR], f = m->first_pred[id];
        m->prog_loss += -(y * log(f) + (1 - y) * log(1 - f));
        m->prog_n++;
        fr_dfm_heads_train(m->h, s);
        if (s->kind == FR_SAMPLE_MATURED) return;
    }
    double f_dp = 0, f_rn = 0;
    fr_dfm_heads_predict(m->h, &s->f, &f_dp, &f_rn);
    if (m->heads == HEADS_TRUE || m->heads == HEADS_WRONG_RN || m->heads == HEADS_ZERO_DP) {
        f_dp = p_dp(x);
        f_rn = (1 - p_star(x)) / (1 - p_ip(x));
    }
    if (m->heads == HEADS_WRONG_RN) f_rn = 0.5;
    if (m->heads == HEADS_ZERO_DP) f_dp = 0;
    const fr_dfm_limits lim = {.clip = 5, .rn_floor = 0.001};
    fr_sample t = *s;
    fr_dfm_apply(&t, fr_dfm_weights(m->method, s->kind, s->label[FR_TASK_CVR] > 0.5f, sigm(m->s[x]), f_dp, f_rn, &lim));
    train(m, x, &t);
}

/* The oracle's lookahead: the conversion drawn for click i (ids are "c<i>"). */
static int sim_oracle(void *ctx, const char *id, size_t len, int64_t *ts)
{
    const int64_t *conv_ts = ctx;
    char buf[32];
    memcpy(buf, id, len < 31 ? len : 31);
    buf[len < 31 ? len : 31] = '\0';
    long i = strtol(buf + 1, NULL, 10);
    if (conv_ts[i] < 0) return 0;
    *ts = conv_ts[i];
    return 1;
}

typedef struct {
    int64_t ts;
    long id;
} pending_conv;

/* Runs NCLICK clicked impressions (round-robin over x, common random numbers across methods)
 * through a joiner with the policy, training with the method. Returns the averaged estimates. */
static void simulate(fr_policy_id policy, fr_dfm_method method, int fnc, heads_mode heads, double est[NX],
                     double *prog_loss)
{
    sim m;
    memset(&m, 0, sizeof m);
    m.method = method;
    m.fnc = fnc;
    m.heads = heads;
    m.trained_per_x_limit = (long)NCLICK / NX * (policy == FR_POLICY_DEFER ? 2 : 1);
    fr_join_config jc = {.click_window_ms = CW, .attribution_window_ms = WA, .policy = policy,
                         .observation_window_ms = WO, .real_negative_window_ms = 0};
    int64_t *conv_ts = calloc(NCLICK, sizeof *conv_ts);
    assert_non_null(conv_ts);
    m.first_pred = malloc(NCLICK * sizeof *m.first_pred);
    assert_non_null(m.first_pred);
    for (long i = 0; i < NCLICK; i++) m.first_pred[i] = NAN;
    m.h = fr_dfm_heads_create(8, 1, 0.1f);
    assert_non_null(m.h);
    for (int x = 0; x < NX; x++) m.s[x] = 0;

    /* Draw the world first (common to every method): conversion ts or -1. */
    uint64_t seed = 0x2545F4914F6CDD1Dull;
    for (long i = 0; i < NCLICK; i++) {
        const int x = (int)(i % NX);
        const int64_t click = 1000 + i * STEP;
        conv_ts[i] = -1;
        if (u01(&seed) < C[x]) {
            double u = u01(&seed);
            int k = u < SHARE[x][0] ? 0 : u < SHARE[x][0] + SHARE[x][1] ? 1 : 2;
            conv_ts[i] = click + DELAY[k];
        }
    }
    jc.oracle = sim_oracle;
    jc.oracle_ctx = conv_ts;
    m.j = fr_join_create(&jc);
    assert_non_null(m.j);

    /* Conversions wait in one FIFO per delay (each is ts-sorted), released in ts order. */
    pending_conv *q[3];
    size_t qh[3] = {0}, qt[3] = {0};
    for (int k = 0; k < 3; k++) {
        q[k] = malloc(NCLICK * sizeof **q);
        assert_non_null(q[k]);
    }
    fr_event ev;
    memset(&ev, 0, sizeof ev);
    ev.sample_rate = 1.0f;
    for (long i = 0; i <= NCLICK; i++) {
        const int64_t click = i < NCLICK ? 1000 + i * STEP : INT64_MAX;
        for (;;) { /* release due conversions, earliest first */
            int best = -1;
            for (int k = 0; k < 3; k++)
                if (qh[k] < qt[k] && q[k][qh[k]].ts <= click && (best < 0 || q[k][qh[k]].ts < q[best][qh[best]].ts)) best = k;
            if (best < 0) break;
            pending_conv c = q[best][qh[best]++];
            fr_join_advance(m.j, c.ts, on_sample, &m);
            ev.type = FR_EV_CONVERSION;
            ev.ts = c.ts;
            ev.id_len = (uint32_t)snprintf(ev.id, sizeof ev.id, "c%ld", c.id);
            assert_int_equal(fr_join_add(m.j, &ev, on_sample, &m), 0);
        }
        if (i == NCLICK) break;
        fr_join_advance(m.j, click - 1, on_sample, &m);
        const int x = (int)(i % NX);
        ev.id_len = (uint32_t)snprintf(ev.id, sizeof ev.id, "c%ld", i);
        ev.features.cat[0] = 100u + (uint64_t)x;
        ev.features.cat[1] = (uint64_t)i;
        ev.type = FR_EV_IMPRESSION;
        ev.ts = click - 1;
        assert_int_equal(fr_join_add(m.j, &ev, on_sample, &m), 0);
        ev.type = FR_EV_CLICK;
        ev.ts = click;
        assert_int_equal(fr_join_add(m.j, &ev, on_sample, &m), 0);
        if (conv_ts[i] >= 0) {
            int k = conv_ts[i] - click == DELAY[0] ? 0 : conv_ts[i] - click == DELAY[1] ? 1 : 2;
            q[k][qt[k]++] = (pending_conv){conv_ts[i], i};
        }
    }
    fr_join_advance(m.j, INT64_MAX, on_sample, &m);
    const fr_join_counters *n = fr_join_get_counters(m.j);
    for (int t = 0; t < FR_EV_NTYPES; t++) assert_int_equal(n->pending[t], 0);
    for (int x = 0; x < NX; x++) est[x] = m.avg[x] / (double)(m.navg[x] ? m.navg[x] : 1);
    if (prog_loss) *prog_loss = m.prog_loss / (double)m.prog_n;
    for (int k = 0; k < 3; k++) free(q[k]);
    fr_join_free(m.j);
    fr_dfm_heads_free(m.h);
    free(m.first_pred);
    free(conv_ts);
}

typedef double (*target_fn)(int x);
static double t_star(int x) { return p_star(x); }
static double t_ip(int x) { return p_ip(x); }
static double t_window_dp(int x) { return p_star(x) / (1 + p_dp(x)); }
static double t_fake_neg(int x) { return p_star(x) / (1 + p_star(x)); }
static double t_wrong_rn(int x) { return p_star(x) / (p_star(x) + 0.5 * (1 - p_ip(x))); }

static void expect_fixed_point(const char *name, fr_policy_id pol, fr_dfm_method m, int fnc, heads_mode h,
                               target_fn target)
{
    double est[NX];
    simulate(pol, m, fnc, h, est, NULL);
    for (int x = 0; x < NX; x++) {
        printf("  %-28s x%d estimate %.4f derived %.4f (p* %.4f)\n", name, x, est[x], target(x), p_star(x));
        assert_true(fabs(est[x] - target(x)) < 0.01);
    }
}

/* The policy as its row in the table (fr_policy.c) trains and serves it: its weights, and its
 * serve transform on the estimate. */
static void expect_policy_fixed_point(const char *name, fr_policy_id id, heads_mode h, target_fn target)
{
    const fr_policy *pol = fr_policy_get(id);
    assert_non_null(pol);
    expect_fixed_point(name, id, pol->dfm, pol->serve == FR_SERVE_ODDS, h, target);
}

/* ---- weights by hand ---- */

static void test_weights_by_hand(void **state)
{
    (void)state;
    const fr_dfm_limits lim = {.clip = 5, .rn_floor = 0.01};
    fr_dfm_w w;
    w = fr_dfm_weights(FR_DFM_FNW, FR_SAMPLE_FAKE_NEG, 0, 0.2, 0, 0, &lim);
    assert_true(w.w1 == 0 && fabs(w.w0 - 0.8 * 1.2) < 1e-12);
    w = fr_dfm_weights(FR_DFM_FNW, FR_SAMPLE_DELAYED_POS, 1, 0.2, 0, 0, &lim);
    assert_true(fabs(w.w1 - 1.2) < 1e-12 && w.w0 == 0);
    w = fr_dfm_weights(FR_DFM_ESDFM, FR_SAMPLE_WINDOW, 0, 0.2, 0.3, 0.6, &lim);
    assert_true(w.w1 == 0 && fabs(w.w0 - 1.3 * 0.6) < 1e-12);
    w = fr_dfm_weights(FR_DFM_ESDFM, FR_SAMPLE_DELAYED_POS, 1, 0.2, 0.3, 0.6, &lim);
    assert_true(fabs(w.w1 - 1.3) < 1e-12);
    /* DEFUSE as derived (research file 5.3): IP 1 + f_dp, DP 1 (not the released (1+f_dp)+1). */
    w = fr_dfm_weights(FR_DFM_DEFUSE, FR_SAMPLE_WINDOW, 1, 0.2, 0.3, 0.6, &lim);
    assert_true(fabs(w.w1 - 1.3) < 1e-12 && w.w0 == 0);
    w = fr_dfm_weights(FR_DFM_DEFUSE, FR_SAMPLE_DELAYED_POS, 1, 0.2, 0.3, 0.6, &lim);
    assert_true(fabs(w.w1 - 1.0) < 1e-12 && w.w0 == 0);
    w = fr_dfm_weights(FR_DFM_DEFUSE, FR_SAMPLE_WINDOW, 0, 0.2, 0.3, 0.6, &lim);
    assert_true(fabs(w.w1 - 0.4 * 0.3) < 1e-12 && fabs(w.w0 - 0.6 * 1.3) < 1e-12);
    /* DEFER as derived for its stream, not 2 * p / p * (2 - dp). */
    w = fr_dfm_weights(FR_DFM_DEFER, FR_SAMPLE_DELAYED_POS, 1, 0.2, 0.3, 0, &lim);
    assert_true(fabs(w.w1 - 2.1) < 1e-12);
    w = fr_dfm_weights(FR_DFM_DEFER, FR_SAMPLE_REAL_NEG, 0, 0.2, 0.3, 0, &lim);
    assert_true(fabs(w.w0 - 2.1 * 0.8 / (1.6 + 0.3)) < 1e-12);
    /* Clipping and the f_rn floor; MATURED never trains. */
    const fr_dfm_limits tight = {.clip = 1.1, .rn_floor = 0.25};
    w = fr_dfm_weights(FR_DFM_DEFER, FR_SAMPLE_WINDOW, 1, 0.2, 0.3, 0, &tight);
    assert_true(fabs(w.w1 - 1.1) < 1e-12);
    w = fr_dfm_weights(FR_DFM_ESDFM, FR_SAMPLE_WINDOW, 0, 0.2, 0.0, 0.0, &tight);
    assert_true(fabs(w.w0 - 0.25) < 1e-12);
    w = fr_dfm_weights(FR_DFM_ESDFM, FR_SAMPLE_MATURED, 1, 0.2, 0.3, 0.6, &lim);
    assert_true(w.w1 == 0 && w.w0 == 0);
    /* Handing a pair to the model's (weight, label) form keeps the gradient. */
    fr_sample s;
    memset(&s, 0, sizeof s);
    s.has_label[FR_TASK_CVR] = s.has_label[FR_TASK_CTCVR] = 1;
    s.weight[FR_TASK_CVR] = s.weight[FR_TASK_CTCVR] = 2.0f;
    fr_dfm_apply(&s, (fr_dfm_w){0.3, 0.9});
    assert_true(fabs(s.weight[FR_TASK_CVR] - 2.4) < 1e-6 && fabs(s.label[FR_TASK_CVR] - 0.25) < 1e-6);
    assert_true(fabs(fr_dfm_serve(1, 0.2) - 0.25) < 1e-12);
}

static void test_heads_blob_roundtrip(void **state)
{
    (void)state;
    fr_dfm_heads *a = fr_dfm_heads_create(6, 2, 0.1f), *b = fr_dfm_heads_create(6, 2, 0.1f);
    assert_non_null(a);
    assert_non_null(b);
    fr_sample s;
    memset(&s, 0, sizeof s);
    s.kind = FR_SAMPLE_MATURED;
    s.has_label[FR_TASK_CVR] = 1;
    s.weight[FR_TASK_CVR] = 1;
    for (int i = 0; i < 100; i++) {
        s.f.cat[0] = (uint64_t)(i % 7);
        s.f.cat[1] = (uint64_t)(i % 3);
        s.label[FR_TASK_CVR] = (float)(i % 5 == 0);
        s.in_window = (uint8_t)(i % 10 == 0);
        fr_dfm_heads_train(a, &s);
    }
    size_t n = fr_dfm_heads_export(a, NULL, 0);
    void *buf = malloc(n);
    assert_int_equal(fr_dfm_heads_export(a, buf, n), n);
    assert_int_equal(fr_dfm_heads_import(b, buf, n), 0);
    assert_int_equal(fr_dfm_heads_import(b, buf, n - 1), -1);
    double da, ra, db, rb;
    fr_dfm_heads_predict(a, &s.f, &da, &ra);
    fr_dfm_heads_predict(b, &s.f, &db, &rb);
    assert_true(da == db && ra == rb);
    assert_int_equal(fr_dfm_heads_trained(b), 100);
    fr_dfm_heads *c = fr_dfm_heads_create(7, 2, 0.1f);
    assert_int_equal(fr_dfm_heads_import(c, buf, n), -1);
    /* Stored values are untrusted: a NaN weight or a negative accumulator is refused, and the heads
     * keep what they had. After 32 bytes (header, biases and their accumulators) come the weights
     * of both heads, then their accumulators. */
    unsigned char *bytes = buf;
    const float nan = NAN, neg = -1.0f;
    unsigned char keep[4];
    memcpy(keep, bytes + 32 + 4 * 5, 4);
    memcpy(bytes + 32 + 4 * 5, &nan, 4);
    assert_int_equal(fr_dfm_heads_import(b, buf, n), -2);
    memcpy(bytes + 32 + 4 * 5, keep, 4);
    memcpy(bytes + n - 4, &neg, 4);
    assert_int_equal(fr_dfm_heads_import(b, buf, n), -2);
    fr_dfm_heads_predict(b, &s.f, &db, &rb);
    assert_true(da == db && ra == rb);
    free(buf);
    fr_dfm_heads_free(a);
    fr_dfm_heads_free(b);
    fr_dfm_heads_free(c);
}

/* ---- fixed points ---- */

static void test_fixed_points_biased(void **state)
{
    (void)state;
    expect_fixed_point("vanilla: p_ip", FR_POLICY_VANILLA, FR_DFM_PLAIN, 0, HEADS_LEARNED, t_ip);
    expect_fixed_point("window+dp plain: p/(1+p_dp)", FR_POLICY_ESDFM, FR_DFM_PLAIN, 0, HEADS_LEARNED, t_window_dp);
    expect_fixed_point("fake neg plain: p/(1+p)", FR_POLICY_FNC, FR_DFM_PLAIN, 0, HEADS_LEARNED, t_fake_neg);
    expect_fixed_point("esdfm wrong f_rn=0.5", FR_POLICY_ESDFM, FR_DFM_ESDFM, 0, HEADS_WRONG_RN, t_wrong_rn);
}

static void test_fixed_points_unbiased(void **state)
{
    (void)state;
    /* every policy but vanilla (biased by design: p_ip above), as its row trains and serves it */
    expect_policy_fixed_point("wait", FR_POLICY_WAIT, HEADS_LEARNED, t_star);
    expect_policy_fixed_point("oracle", FR_POLICY_ORACLE, HEADS_LEARNED, t_star);
    expect_policy_fixed_point("fnc q/(1-q)", FR_POLICY_FNC, HEADS_LEARNED, t_star);
    expect_policy_fixed_point("fnw", FR_POLICY_FNW, HEADS_LEARNED, t_star);
    expect_policy_fixed_point("esdfm learned heads", FR_POLICY_ESDFM, HEADS_LEARNED, t_star);
    expect_policy_fixed_point("esdfm f_dp=0 (only f_rn matters)", FR_POLICY_ESDFM, HEADS_ZERO_DP, t_star);
    expect_policy_fixed_point("defuse learned heads", FR_POLICY_DEFUSE, HEADS_LEARNED, t_star);
    expect_policy_fixed_point("defer learned f_dp", FR_POLICY_DEFER, HEADS_LEARNED, t_star);
}

/* Leakage: scored before anything of the click trains, no method beats the Oracle's progressive
 * log loss (same world, same labels), beyond a small noise margin. */
static void test_no_method_beats_oracle(void **state)
{
    (void)state;
    double est[NX], oracle, l;
    simulate(FR_POLICY_ORACLE, FR_DFM_PLAIN, 0, HEADS_LEARNED, est, &oracle);
    for (int id = 0; id < FR_NPOLICIES; id++) {
        const fr_policy *pol = fr_policy_get((fr_policy_id)id);
        if (pol->oracle) continue;
        simulate(pol->id, pol->dfm, pol->serve == FR_SERVE_ODDS, HEADS_LEARNED, est, &l);
        printf("  progressive log loss %-8s %.5f (oracle %.5f)\n", pol->name, l, oracle);
        assert_true(l >= oracle - 5e-4);
    }
}

/* ---- the policy table ---- */

/* Names round-trip; the serve transforms by hand: identity passes the outputs through unchanged,
 * odds gives q / (1 - q) clipped into [1e-6, 1 - 1e-6] and pCTCVR = pCTR x pCVR; only fnc serves odds;
 * the policies whose weights read f_dp or f_rn train the helper heads. */
static void test_policy_table(void **state)
{
    (void)state;
    for (int id = 0; id < FR_NPOLICIES; id++) {
        const fr_policy *pol = fr_policy_get((fr_policy_id)id);
        assert_non_null(pol);
        assert_int_equal(pol->id, id);
        assert_int_equal(fr_policy_from_name(fr_policy_name((fr_policy_id)id)), id);
        assert_int_equal(pol->serve, id == FR_POLICY_FNC ? FR_SERVE_ODDS : FR_SERVE_IDENTITY);
        assert_int_equal(pol->helper_heads, pol->dfm == FR_DFM_ESDFM || pol->dfm == FR_DFM_DEFUSE || pol->dfm == FR_DFM_DEFER);
    }
    assert_null(fr_policy_get(FR_NPOLICIES));
    assert_string_equal(fr_policy_name(FR_NPOLICIES), "unknown");
    assert_int_equal(fr_policy_from_name("defuse2"), -1);
    assert_int_equal(fr_policy_from_name(NULL), -1);
    assert_int_equal(fr_serve_transform_from_name("odds"), FR_SERVE_ODDS);
    assert_int_equal(fr_serve_transform_from_name("identity"), FR_SERVE_IDENTITY);
    assert_int_equal(fr_serve_transform_from_name("q/(1-q)"), -1);

    const float in[FR_NTASKS] = {0.25f, 0.2f, 0.05f};
    double out[FR_NTASKS];
    fr_serve_apply(FR_SERVE_IDENTITY, in, out);
    for (int t = 0; t < FR_NTASKS; t++) assert_true(out[t] == (double)in[t]);
    fr_serve_apply(FR_SERVE_ODDS, in, out);
    assert_true(out[FR_TASK_CTR] == (double)in[FR_TASK_CTR]);
    assert_true(fabs(out[FR_TASK_CVR] - 0.25) < 1e-7);
    assert_true(out[FR_TASK_CTCVR] == (double)in[FR_TASK_CTR] * out[FR_TASK_CVR]);
    const float high[FR_NTASKS] = {0.5f, 0.6f, 0.3f}, zero[FR_NTASKS] = {0.5f, 0.0f, 0.0f};
    fr_serve_apply(FR_SERVE_ODDS, high, out);
    assert_true(out[FR_TASK_CVR] == 1 - 1e-6);
    fr_serve_apply(FR_SERVE_ODDS, zero, out);
    assert_true(out[FR_TASK_CVR] == 1e-6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_table),
        cmocka_unit_test(test_weights_by_hand),
        cmocka_unit_test(test_heads_blob_roundtrip),
        cmocka_unit_test(test_fixed_points_biased),
        cmocka_unit_test(test_fixed_points_unbiased),
        cmocka_unit_test(test_no_method_beats_oracle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
