/* Tests of the learner: the Adagrad and FTRL steps, progressive validation, determinism, learning on a
 * synthetic problem, serialisation and validation. The gradient checks are in test_model_grad.c; the
 * shared fixture is tests/support/model_fixture.h. */
#include "model_fixture.h"

/* ---- optimizer -------------------------------------------------------------------------------- */

static void test_adagrad_hand(void **state)
{
    (void)state;
    /* values chosen so every intermediate is exact in float:
     * acc 0.75 + 0.5^2 = 1, w 1 - 0.25 * 0.5 / 1 = 0.875;  acc 1.75 + 1.5^2 = 4, w 0.5 + 0.25 * 1.5 / 2 = 0.6875 */
    float w[2] = {1.0f, 0.5f}, acc[2] = {0.75f, 1.75f}, g[2] = {0.5f, -1.5f};
    fr_adagrad_step(w, acc, g, 2, 0.25f);
    assert_true(acc[0] == 1.0f && acc[1] == 4.0f);
    assert_true(w[0] == 0.875f && w[1] == 0.6875f);
}

static void find_grad(uint32_t table, uint64_t key, const float *grad, void *ctx)
{
    row_grads *g = ctx;
    collect(table, key, grad, g);
}

/* FTRL-Proximal by hand with alpha 0.5, beta 1, l1 1, l2 8. Coordinate 0 starts at 0 (z = n = 0),
 * coordinate 1 at w = 0.25 through fr_ftrl_z_for. Values are exact in float unless written as a
 * quotient (then the same correctly rounded division) or compared within 1e-6. */
static void test_ftrl_hand(void **state)
{
    (void)state;
    const fr_ftrl_params p = {.alpha = 0.5f, .beta = 1.0f, .l1 = 1.0f, .l2 = 8.0f};
    /* z = -(0.25 (1 / 0.5 + 8) + 1) = -3.5, and back: -(-3.5 + 1) / ((1 + 0) / 0.5 + 8) = 0.25 */
    float w[2] = {0.0f, 0.25f}, z[2] = {0.0f, fr_ftrl_z_for(0.25f, &p)}, n[2] = {0.0f, 0.0f};
    assert_true(z[1] == -3.5f);
    assert_true(fr_ftrl_weight(z[1], 0.0f, &p) == 0.25f);
    assert_true(fr_ftrl_z_for(0.0f, &p) == 0.0f);

    /* g = (3, 4): n = (9, 16), sigma = (3 / 0.5, 4 / 0.5) = (6, 8),
     * z = (0 + 3 - 6 * 0, -3.5 + 4 - 8 * 0.25) = (3, -1.5),
     * w = (-(3 - 1) / ((1 + 3) / 0.5 + 8), -(-1.5 + 1) / ((1 + 4) / 0.5 + 8)) = (-2 / 16, 0.5 / 18) */
    const float g1[2] = {3.0f, 4.0f};
    fr_ftrl_step(w, z, n, g1, 2, &p);
    assert_true(n[0] == 9.0f && n[1] == 16.0f);
    assert_true(z[0] == 3.0f && z[1] == -1.5f);
    assert_true(w[0] == -0.125f && w[1] == 0.5f / 18.0f);

    /* g = (-4, -3): n = (25, 25), sigma = ((5 - 3) / 0.5, (5 - 4) / 0.5) = (4, 2),
     * z0 = 3 - 4 - 4 * (-0.125) = -0.5: |z0| <= l1, so w0 is exactly +0;
     * z1 = -1.5 - 3 - 2 (0.5 / 18) = -4.5 - 1/18, w1 = -(z1 + 1) / ((1 + 5) / 0.5 + 8) = (3.5 + 1/18) / 20 */
    const float g2[2] = {-4.0f, -3.0f};
    fr_ftrl_step(w, z, n, g2, 2, &p);
    assert_true(n[0] == 25.0f && n[1] == 25.0f);
    assert_true(z[0] == -0.5f);
    assert_true(w[0] == 0.0f && !signbit(w[0]));
    assert_true(fabs(z[1] - (-4.5 - 1.0 / 18)) < 1e-6);
    assert_true(fabs(w[1] - (3.5 + 1.0 / 18) / 20) < 1e-6);

    /* g = (12, 0): n0 = 169, sigma0 = (13 - 5) / 0.5 = 16, z0 = -0.5 + 12 - 16 * 0 = 11.5 (a zero
     * weight adds no sigma w), w0 = -(11.5 - 1) / ((1 + 13) / 0.5 + 8) = -10.5 / 36;
     * a zero gradient leaves coordinate 1 exactly as it was */
    const float z1 = z[1], w1 = w[1];
    const float g3[2] = {12.0f, 0.0f};
    fr_ftrl_step(w, z, n, g3, 2, &p);
    assert_true(n[0] == 169.0f && z[0] == 11.5f && w[0] == -10.5f / 36.0f);
    assert_true(n[1] == 25.0f && z[1] == z1 && w[1] == w1);

    /* g = (-11, 0): n0 = 290, z0 = 11.5 - 11 - sigma0 (-10.5 / 36) with sigma0 = (sqrt(290) - 13) / 0.5 > 0,
     * so z0 = 0.5 + 1.233.. = 1.733..: |z0| > l1, w0 = -(z0 - 1) / ((1 + sqrt(290)) / 0.5 + 8) */
    const float g4[2] = {-11.0f, 0.0f};
    fr_ftrl_step(w, z, n, g4, 2, &p);
    const double s4 = (sqrt(290.0) - 13) / 0.5, z4 = 0.5 + s4 * 10.5 / 36;
    assert_true(n[0] == 290.0f);
    assert_true(fabs(z[0] - z4) < 1e-5);
    assert_true(fabs(w[0] + (z4 - 1) / ((1 + sqrt(290.0)) / 0.5 + 8)) < 1e-6);

    /* fr_ftrl_z_for inverts the weight at n = 0 for any l1, l2, within the rounding of z (one ulp of
     * |z| = |w| k + l1, divided by k = beta / alpha + l2: large next to w when l1 dominates z) */
    const fr_ftrl_params q[3] = {{0.3f, 0.5f, 0.0f, 0.0f}, {0.05f, 1.0f, 0.7f, 2.0f}, {1.0f, 0.1f, 3.0f, 0.0f}};
    for (int k = 0; k < 3; k++)
        for (int i = -50; i <= 50; i++) {
            float w0 = (float)i * 0.0031f, zk = fr_ftrl_z_for(w0, &q[k]);
            float back = fr_ftrl_weight(zk, 0.0f, &q[k]);
            double kk = (double)q[k].beta / q[k].alpha + q[k].l2;
            assert_true(fabs((double)back - w0) <= ldexp(fabs(zk), -22) / kk);
            if (q[k].l1 == 0) assert_true(fabsf(back - w0) <= 2e-7f * fabsf(w0));
            assert_true((back == 0) == (w0 == 0));
        }
}

static fr_model_config ftrl_config(void)
{
    fr_model_config c = small_config();
    c.emb_optimizer = 1;
    c.ftrl_alpha = 0.5f;
    c.ftrl_beta = 1.0f;
    c.ftrl_l1 = 0.01f;
    c.ftrl_l2 = 0.5f;
    return c;
}

/* One Adagrad step on every dense parameter from (p0, a0) with gradient g, to the last bit. */
static void assert_dense_adagrad_step(const fr_model *m, const float *p0, const float *a0, const float *g, size_t P,
                                      float lr)
{
    const float *p1 = fr_model_dense_params(m), *a1 = fr_model_dense_accum(m);
    for (size_t j = 0; j < P; j++) {
        float acc = a0[j] + g[j] * g[j];
        assert_true(a1[j] == acc);
        assert_true(p1[j] == p0[j] - lr * g[j] / sqrtf(acc));
    }
}

/* With FTRL, training applies exactly one fr_ftrl_step per touched row with the batch-summed
 * gradient, from the state put_row gives a fresh row (n = 0, z = fr_ftrl_z_for(w)); the dense
 * part keeps Adagrad. */
static void test_ftrl_train_step_exact(void **state)
{
    (void)state;
    fr_model_config c = ftrl_config();
    fr_model *m = create_ok(&c);
    assert_int_equal(fr_model_row_state_count(m), 2 * (size_t)c.emb_dim);
    const fr_ftrl_params fp = {c.ftrl_alpha, c.ftrl_beta, c.ftrl_l1, c.ftrl_l2};
    rng r = {5};
    fr_sample s[2];
    s[0] = random_sample(&r, &c, 50);
    s[1] = random_sample(&r, &c, 50);
    s[1].f.cat[1] = s[0].f.cat[1]; /* shared row */
    s[0].f.multi_len[0] = s[1].f.multi_len[0] = 0;
    s[0].f.multi_len[1] = s[1].f.multi_len[1] = 0;
    float w0[4] = {0.25f, -0.5f, 0.125f, 0.0f};
    for (int i = 0; i < 2; i++)
        for (int f = 0; f < c.n_cat; f++) fr_model_put_row(m, (uint32_t)f, s[i].f.cat[f], 0, w0, NULL);
    fr_row_view v;
    assert_int_equal(fr_model_get_row(m, 1, s[0].f.cat[1], &v), 0);
    assert_int_equal(v.nstate, 2 * c.emb_dim);
    for (int d = 0; d < c.emb_dim; d++) {
        assert_true(v.weights[d] == w0[d]);
        assert_true(v.accum[d] == fr_ftrl_z_for(w0[d], &fp));
        assert_true(v.accum[c.emb_dim + d] == 0.0f);
    }
    size_t P = fr_model_dense_count(m);
    float *p0 = malloc(P * sizeof *p0), *a0 = malloc(P * sizeof *a0), *g = malloc(P * sizeof *g);
    memcpy(p0, fr_model_dense_params(m), P * sizeof *p0);
    memcpy(a0, fr_model_dense_accum(m), P * sizeof *a0);
    row_grads *rg = calloc(1, sizeof *rg);
    rg->dim = c.emb_dim;
    assert_int_equal(fr_model_gradients(m, s, 2, g, find_grad, rg), 0);
    assert_int_equal(rg->n, 2 * c.n_cat - 1);

    fr_model_train(m, s, 2, NULL);
    int moved = 0;
    for (int i = 0; i < rg->n; i++) {
        assert_int_equal(fr_model_get_row(m, rg->table[i], rg->key[i], &v), 0);
        assert_int_equal(v.version, 1);
        float w[4], z[4], n[4] = {0, 0, 0, 0};
        memcpy(w, w0, sizeof w);
        for (int d = 0; d < 4; d++) z[d] = fr_ftrl_z_for(w0[d], &fp);
        fr_ftrl_step(w, z, n, rg->grad[i], 4, &fp);
        assert_memory_equal(v.weights, w, sizeof w);
        assert_memory_equal(v.accum, z, sizeof z);
        assert_memory_equal(v.accum + 4, n, sizeof n);
        for (int d = 0; d < 4; d++) moved += w[d] != w0[d];
    }
    assert_true(moved > rg->n); /* the gradients were not all zero */
    assert_dense_adagrad_step(m, p0, a0, g, P, c.lr_dense);
    free(rg);
    free(p0);
    free(a0);
    free(g);
    fr_model_free(m);
}

/* Training applies exactly one Adagrad step per touched row with the batch-summed gradient
 * (the same key in two samples of one batch is one step, not two), and one per dense coordinate. */
static void test_train_step_exact(void **state)
{
    (void)state;
    fr_model_config c = small_config();
    c.adagrad_init = 0.75f;
    fr_model *m = create_ok(&c);
    rng r = {5};
    fr_sample s[2];
    s[0] = random_sample(&r, &c, 50);
    s[1] = random_sample(&r, &c, 50);
    s[1].f.cat[1] = s[0].f.cat[1]; /* shared row */
    s[0].f.multi_len[0] = s[1].f.multi_len[0] = 0;
    s[0].f.multi_len[1] = s[1].f.multi_len[1] = 0;
    float w0[4] = {0.25f, -0.5f, 0.125f, 1.0f};
    for (int i = 0; i < 2; i++)
        for (int f = 0; f < c.n_cat; f++) fr_model_put_row(m, (uint32_t)f, s[i].f.cat[f], 0, w0, NULL);
    size_t P = fr_model_dense_count(m);
    float *p0 = malloc(P * sizeof *p0), *a0 = malloc(P * sizeof *a0), *g = malloc(P * sizeof *g);
    memcpy(p0, fr_model_dense_params(m), P * sizeof *p0);
    memcpy(a0, fr_model_dense_accum(m), P * sizeof *a0);
    row_grads *rg = calloc(1, sizeof *rg);
    rg->dim = c.emb_dim;
    assert_int_equal(fr_model_gradients(m, s, 2, g, find_grad, rg), 0);
    assert_int_equal(rg->n, 2 * c.n_cat - 1); /* the shared key appears once */

    fr_model_train(m, s, 2, NULL);
    assert_int_equal(fr_model_version(m), 1);
    for (int i = 0; i < rg->n; i++) {
        fr_row_view v;
        assert_int_equal(fr_model_get_row(m, rg->table[i], rg->key[i], &v), 0);
        assert_int_equal(v.version, 1);
        for (int d = 0; d < c.emb_dim; d++) {
            float gd = rg->grad[i][d];
            float acc = 0.75f + gd * gd;
            float w = w0[d] - c.lr_emb * gd / sqrtf(acc);
            assert_true(v.accum[d] == acc);
            assert_true(v.weights[d] == w);
        }
    }
    assert_dense_adagrad_step(m, p0, a0, g, P, c.lr_dense);
    free(rg);
    free(p0);
    free(a0);
    free(g);
    fr_model_free(m);
}

/* ---- progressive validation ------------------------------------------------------------------- */

static void test_progressive_equals_predict(void **state)
{
    (void)state;
    fr_model_config c = small_config();
    fr_model *a = create_ok(&c), *b = create_ok(&c);
    rng r = {21};
    enum { W = 64, N = 20 }; /* N spans three chunks of batch_size 8, the last one partial */
    fr_sample warm[W], s[N];
    for (int i = 0; i < W; i++) warm[i] = random_sample(&r, &c, 5);
    for (int i = 0; i < N; i++) s[i] = random_sample(&r, &c, 5);
    /* warm both up on the whole vocabulary so every key of s already has a row */
    fr_sample all[W + N];
    memcpy(all, warm, sizeof warm);
    memcpy(all + W, s, sizeof s);
    for (int i = 0; i < W + N; i++) all[i].weight[0] = all[i].weight[1] = all[i].weight[2] = 0;
    fr_model_train(a, all, W + N, NULL);
    fr_model_train(b, all, W + N, NULL);
    fr_model_train(a, warm, W, NULL);
    fr_model_train(b, warm, W, NULL);
    size_t rows_before = fr_model_row_count(a, 1);

    float pa[N][FR_NTASKS], pb[N][FR_NTASKS];
    fr_model_train(a, s, N, pa);
    for (int start = 0; start < N; start += c.batch_size) {
        int k = N - start < c.batch_size ? N - start : c.batch_size;
        for (int i = start; i < start + k; i++) fr_model_predict(b, &s[i].f, s[i].scenario, pb[i]);
        fr_model_train(b, s + start, k, NULL);
    }
    for (int i = 0; i < N; i++) {
        for (int t = 0; t < FR_NTASKS; t++) {
            if (fabsf(pa[i][t] - pb[i][t]) > 1e-6f * fabsf(pb[i][t]))
                fail_msg("sample %d task %d: progressive %.9g predict %.9g", i, t, (double)pa[i][t], (double)pb[i][t]);
        }
        assert_true(pa[i][FR_TASK_CTCVR] <= pa[i][FR_TASK_CTR]);
    }
    assert_int_equal(fr_model_row_count(a, 1), rows_before);
    /* and the updates of the later chunks used the same parameters */
    assert_memory_equal(fr_model_dense_params(a), fr_model_dense_params(b), fr_model_dense_count(a) * sizeof(float));
    fr_model_free(a);
    fr_model_free(b);
}

/* The batched forward (sgemm, many rows) agrees with the double-precision reference. */
static void test_forward_matches_reference(void **state)
{
    (void)state;
    fr_model_config c = small_config();
    fr_model *m = create_ok(&c);
    rng r = {8};
    enum { N = 16 };
    fr_sample s[N];
    for (int i = 0; i < N; i++) s[i] = random_sample(&r, &c, 4);
    fr_model_train(m, s, N, NULL);
    for (int i = 0; i < N; i++) {
        float out[FR_NTASKS];
        fr_model_predict(m, &s[i].f, s[i].scenario, out);
        fr_sample one = s[i];
        one.weight[FR_TASK_CVR] = one.weight[FR_TASK_CTCVR] = 0;
        one.label[FR_TASK_CTR] = 1;
        double ref = exp(-fr_model_loss(m, &one, 1)); /* = pCTR */
        assert_true(fabs(ref - out[FR_TASK_CTR]) <= 1e-5 * ref);
        one.weight[FR_TASK_CTR] = 0;
        one.weight[FR_TASK_CVR] = 1;
        one.label[FR_TASK_CVR] = 1;
        ref = exp(-fr_model_loss(m, &one, 1));
        assert_true(fabs(ref - out[FR_TASK_CVR]) <= 1e-5 * ref);
    }
    fr_model_free(m);
}

/* ---- determinism ------------------------------------------------------------------------------ */

typedef struct {
    const fr_model *other;
    int rows;
} cmp_ctx;

static int compare_row(const fr_row_view *v, void *ctx)
{
    cmp_ctx *c = ctx;
    fr_row_view o;
    assert_int_equal(fr_model_get_row(c->other, v->table, v->key, &o), 0);
    assert_int_equal(o.version, v->version);
    assert_memory_equal(o.weights, v->weights, (size_t)v->dim * sizeof(float));
    assert_int_equal(o.nstate, v->nstate);
    assert_memory_equal(o.accum, v->accum, (size_t)v->nstate * sizeof(float));
    c->rows++;
    return 0;
}

static void assert_models_equal(const fr_model *a, const fr_model *b)
{
    assert_int_equal(fr_model_version(a), fr_model_version(b));
    size_t P = fr_model_dense_count(a);
    assert_memory_equal(fr_model_dense_params(a), fr_model_dense_params(b), P * sizeof(float));
    assert_memory_equal(fr_model_dense_accum(a), fr_model_dense_accum(b), P * sizeof(float));
    size_t total = 0;
    for (uint32_t t = 0; t < fr_model_table_count(a); t++) {
        assert_int_equal(fr_model_row_count(a, t), fr_model_row_count(b, t));
        total += fr_model_row_count(a, t);
    }
    cmp_ctx ctx = {b, 0};
    fr_model_foreach_row(a, 0, compare_row, &ctx);
    assert_int_equal((size_t)ctx.rows, total);
}

static int put_row_into(const fr_row_view *v, void *ctx)
{
    return fr_model_put_row(ctx, v->table, v->key, v->version, v->weights, v->accum);
}

/* dst (same shape as src) takes src's parameters, optimizer state, version and clock */
static void copy_model(fr_model *dst, const fr_model *src)
{
    assert_int_equal(fr_model_set_dense(dst, fr_model_dense_params(src), fr_model_dense_accum(src),
                                        fr_model_dense_count(src)),
                     0);
    assert_int_equal(fr_model_foreach_row(src, 0, put_row_into, dst), 0);
    fr_model_set_version(dst, fr_model_version(src));
    assert_int_equal(fr_model_set_clock(dst, fr_model_clock(src)), 0);
}

static fr_sample *synthetic(const fr_model_config *c, int n, uint64_t seed)
{
    rng r = {seed};
    fr_sample *s = calloc((size_t)n, sizeof *s);
    for (int i = 0; i < n; i++) s[i] = random_sample(&r, c, 200);
    return s;
}

static void test_determinism(void **state)
{
    (void)state;
    fr_model_config c;
    fr_model_config_defaults(&c);
    c.batch_size = 64;
    fr_model *a = create_ok(&c), *b = create_ok(&c);
    fr_sample *s = synthetic(&c, 2000, 99);
    /* the same sequence of calls, including uneven ones */
    int cuts[] = {0, 100, 164, 1000, 1001, 2000};
    for (int k = 0; k + 1 < 6; k++) {
        fr_model_train(a, s + cuts[k], cuts[k + 1] - cuts[k], NULL);
        fr_model_train(b, s + cuts[k], cuts[k + 1] - cuts[k], NULL);
    }
    assert_true(fr_model_version(a) > 30);
    assert_models_equal(a, b);
    free(s);
    fr_model_free(a);
    fr_model_free(b);
}

/* Same input and config, two models, the same bits, for the most complex configuration. */
static void test_determinism_engine(void **state)
{
    (void)state;
    fr_model_config c = engine_config(&ENGINE_CASES[12]);
    c.batch_size = 32;
    fr_model *a = create_ok(&c), *b = create_ok(&c);
    fr_sample *s = synthetic(&c, 700, 5);
    int cuts[] = {0, 50, 51, 400, 700};
    for (int k = 0; k + 1 < 5; k++) {
        fr_model_train(a, s + cuts[k], cuts[k + 1] - cuts[k], NULL);
        fr_model_train(b, s + cuts[k], cuts[k + 1] - cuts[k], NULL);
    }
    assert_true(fr_model_version(a) > 20);
    assert_models_equal(a, b);
    free(s);
    fr_model_free(a);
    fr_model_free(b);
}

/* A restart under an edited config: shape keys refused by name, training settings taken over
 * (listed for the log), and a new batch size really used: training after the retune equals a
 * model created with the new settings from the same parameters. */
static void test_retune(void **state)
{
    (void)state;
    fr_model_config c;
    fr_model_config_defaults(&c);
    c.batch_size = 64;
    fr_model *m = create_ok(&c);
    char changed[256], err[256];
    struct {
        fr_model_config c;
        const char *key;
    } shape[7];
    for (int i = 0; i < 7; i++) shape[i].c = c;
    shape[0].c.expert_dim = 16, shape[0].key = "model.expert_dim";
    shape[1].c.interactions = 1, shape[1].key = "model.interactions";
    shape[2].c.wide = 0, shape[2].key = "model.wide";
    shape[3].c.dense_optimizer = 1, shape[3].key = "model.dense_optimizer";
    shape[4].c.n_scenarios = 5, shape[4].key = "model.n_scenarios";
    shape[5].c.lr_emb = -1, shape[5].key = "model.lr_emb"; /* a tunable still has to be valid */
    shape[6].c.emb_optimizer = 1, shape[6].key = "model.emb_optimizer";
    for (int i = 0; i < 7; i++) {
        err[0] = '\0';
        assert_int_equal(fr_model_retune(m, &shape[i].c, changed, sizeof changed, err, sizeof err), -1);
        assert_non_null(strstr(err, shape[i].key));
        assert_true(fr_model_get_config(m)->expert_dim == 32 && fr_model_get_config(m)->lr_emb == c.lr_emb);
    }
    assert_int_equal(fr_model_retune(m, &c, changed, sizeof changed, err, sizeof err), 0);
    assert_string_equal(changed, "");
    /* what inspect and the start-up log print names the components that differ between models */
    char line[512];
    fr_model_config t0 = c;
    t0.n_learners = 2, t0.n_learner_experts = 1, t0.dense_optimizer = 1;
    assert_true(fr_model_describe(&t0, line, sizeof line) < (int)sizeof line);
    assert_non_null(strstr(line, "n_learner_experts=1 n_levels=1 n_learners=2"));
    assert_non_null(strstr(line, "lr_dense=0.05"));
    assert_non_null(strstr(line, "dense_optimizer=adam emb_optimizer=adagrad"));
    assert_null(strstr(line, "ftrl_alpha")); /* FTRL's keys only with FTRL */

    fr_sample *s = synthetic(&c, 600, 7);
    fr_model_train(m, s, 300, NULL);
    fr_model_config t = c;
    t.lr_emb = 0.1f, t.batch_size = 100, t.lr_dense = 0.02f;
    /* the reference: a fresh model with the new settings, given m's parameters */
    fr_model *ref = create_ok(&t);
    copy_model(ref, m);
    assert_int_equal(fr_model_retune(m, &t, changed, sizeof changed, err, sizeof err), 0);
    assert_non_null(strstr(changed, "model.batch_size 64 -> 100"));
    assert_non_null(strstr(changed, "model.lr_emb 0.3 -> 0.1"));
    assert_non_null(strstr(changed, "model.lr_dense 0.05 -> 0.02"));
    fr_model_train(m, s + 300, 300, NULL);
    fr_model_train(ref, s + 300, 300, NULL);
    assert_models_equal(m, ref);
    free(s);
    fr_model_free(ref);
    fr_model_free(m);
}

/* The serving copy: rows without optimizer state score exactly as the trainer, take less memory,
 * and cannot be trained by mistake. */
static void test_weights_only(void **state)
{
    (void)state;
    for (int opt = 0; opt <= 1; opt++) {
        fr_model_config c;
        fr_model_config_defaults(&c);
        c.batch_size = 64;
        c.emb_optimizer = opt;
        fr_model *m = create_ok(&c);
        fr_sample *s = synthetic(&c, 1000, 21);
        fr_model_train(m, s, 1000, NULL);
        char err[256];
        fr_model *w = fr_model_create_weights_only(&c, err, sizeof err);
        if (!w) fail_msg("%s", err);
        assert_int_equal(fr_model_row_state_count(w), 0);
        assert_int_equal(fr_model_set_dense(w, fr_model_dense_params(m), NULL, fr_model_dense_count(m)), 0);
        assert_int_equal(fr_model_foreach_row(m, 0, put_row_into, w), 0);
        for (int i = 0; i < 200; i++) {
            float a[FR_NTASKS], b[FR_NTASKS];
            fr_model_predict(m, &s[i].f, s[i].scenario, a);
            fr_model_predict(w, &s[i].f, s[i].scenario, b);
            assert_memory_equal(a, b, sizeof a);
        }
        /* weights + 1 (Adagrad) or 2 (FTRL) state floats per coordinate in the trainer */
        double ratio = (double)fr_model_row_memory(m) / (double)fr_model_row_memory(w);
        assert_true(ratio > (opt ? 1.6 : 1.3));
        uint64_t v = fr_model_version(w);
        fr_model_train(w, s, 100, NULL);
        assert_int_equal(fr_model_version(w), v);
        free(s);
        fr_model_free(w);
        fr_model_free(m);
    }
}

/* Adam on the dense part: one step from zero state against the formula in double (bias
 * correction at t = 1 makes the first step lr * g / (|g| + eps) per coordinate), the second step's
 * t = 2 read from the model version, and two models trained alike stay bit-identical. */
static void test_adam(void **state)
{
    (void)state;
    fr_model_config c = small_config();
    c.dense_optimizer = 1;
    c.lr_dense = 0.01f;
    fr_model *m = create_ok(&c);
    assert_int_equal(fr_model_dense_state_count(m), 2 * fr_model_dense_count(m));
    rng r = {9};
    enum { N = 8 };
    fr_sample s[N];
    for (int i = 0; i < N; i++) s[i] = random_sample(&r, &c, 50);
    fr_model_train(m, s, N, NULL); /* creates the rows: the gradient below is then the trained one */
    fr_model *ref = create_ok(&c);
    fr_model_train(ref, s, N, NULL);
    size_t P = fr_model_dense_count(m);
    float *p0 = malloc(P * sizeof *p0), *st = malloc(2 * P * sizeof *st), *g = malloc(P * sizeof *g);
    memcpy(p0, fr_model_dense_params(m), P * sizeof *p0);
    memcpy(st, fr_model_dense_accum(m), 2 * P * sizeof *st);
    for (size_t j = 0; j < P; j++) {
        /* after one step from zero: m = 0.1 g, v = 0.001 g^2 */
        assert_true(st[P + j] >= 0);
        assert_true(fabs(st[j]) <= 1e-3 || fabs(st[j] * st[j] / (st[P + j] + 1e-30) - 10.0) < 1e-2);
    }
    assert_int_equal(fr_model_gradients(m, s, N, g, NULL, NULL), 0);
    fr_model_train(m, s, N, NULL);
    const float *p1 = fr_model_dense_params(m), *st1 = fr_model_dense_accum(m);
    int moved = 0;
    for (size_t j = 0; j < P; j++) {
        /* the float constants the model uses: 0.999f is not 0.999 */
        const double b1 = c.adam_beta1, b2 = c.adam_beta2, a1 = 1.0f - c.adam_beta1, a2 = 1.0f - c.adam_beta2;
        double mo = b1 * st[j] + a1 * g[j], ve = b2 * st[P + j] + a2 * (double)g[j] * g[j];
        double step = (double)c.lr_dense * (mo / (1 - b1 * b1)) / (sqrt(ve / (1 - b2 * b2)) + (double)c.adam_eps);
        /* float rounding, relative to the terms summed (they may cancel) */
        double tm = 1e-6 * (fabs(b1 * st[j]) + fabs(a1 * g[j])) + 1e-20, tv = 1e-6 * ve + 1e-20;
        if (fabs((double)st1[j] - mo) > tm || fabs((double)st1[P + j] - ve) > tv ||
            fabs((double)p1[j] - (p0[j] - step)) > 1e-6 + 1e-4 * fabs(step))
            fail_msg("coordinate %zu: state %g %g (want %g %g), param %g (want %g)", j, (double)st1[j],
                     (double)st1[P + j], mo, ve, (double)p1[j], p0[j] - step);
        moved += p1[j] != p0[j];
    }
    assert_true(moved > (int)P / 2);
    fr_model_train(ref, s, N, NULL);
    assert_models_equal(m, ref);
    /* Adam's state round-trips through set_dense */
    fr_model *cp = create_ok(&c);
    assert_int_equal(fr_model_set_dense(cp, p1, st1, P), 0);
    assert_memory_equal(fr_model_dense_accum(cp), st1, 2 * P * sizeof *st1);
    fr_model_free(cp);
    free(p0);
    free(st);
    free(g);
    fr_model_free(ref);
    fr_model_free(m);
}

/* A row's initial value depends on (seed, table, key) only: zero-weight samples create rows
 * without moving them, in opposite orders, and the values follow the documented formula. */
static void test_init_order_independent(void **state)
{
    (void)state;
    fr_model_config c = small_config();
    fr_model *a = create_ok(&c), *b = create_ok(&c);
    enum { N = 40 };
    fr_sample *s = synthetic(&c, N, 5), rev[N];
    for (int i = 0; i < N; i++) {
        s[i].weight[0] = s[i].weight[1] = s[i].weight[2] = 0;
        rev[N - 1 - i] = s[i];
    }
    fr_model_train(a, s, N, NULL);
    fr_model_train(b, rev, N, NULL);
    for (int i = 0; i < N; i++) {
        for (int f = 0; f < c.n_cat; f++) {
            fr_row_view va, vb;
            assert_int_equal(fr_model_get_row(a, (uint32_t)f, s[i].f.cat[f], &va), 0);
            assert_int_equal(fr_model_get_row(b, (uint32_t)f, s[i].f.cat[f], &vb), 0);
            assert_memory_equal(va.weights, vb.weights, (size_t)c.emb_dim * sizeof(float));
            uint64_t seed = c.seed ^ ((uint64_t)(f + 1) * 0x9E3779B97F4A7C15ULL) ^ s[i].f.cat[f];
            for (int d = 0; d < c.emb_dim; d++) {
                assert_true(va.weights[d] == fr_hash_uniform(seed, (uint64_t)d) * c.init_scale);
                assert_true(va.accum[d] == c.adagrad_init);
            }
        }
    }
    free(s);
    fr_model_free(a);
    fr_model_free(b);
}

/* ---- learning --------------------------------------------------------------------------------- */

/* CTR depends on categorical field 2 only (one value in four has a high rate); conversion on
 * field 3. Everything else is noise. */
static fr_sample learn_sample(rng *r)
{
    fr_sample s;
    memset(&s, 0, sizeof s);
    int v = rng_int(r, 40), u = rng_int(r, 10);
    for (int f = 0; f < 8; f++) s.f.cat[f] = key_of(f, rng_int(r, f == 0 ? 4 : 300));
    s.f.cat[2] = key_of(2, v);
    s.f.cat[3] = key_of(3, u);
    s.f.num[0] = (float)rng_unif(r);
    s.f.multi_len[0] = (uint8_t)rng_int(r, 4);
    for (int k = 0; k < s.f.multi_len[0]; k++) s.f.multi[0][k] = key_of(50, rng_int(r, 300));
    double pc = v % 4 == 0 ? 0.4 : 0.02, pv = u < 3 ? 0.5 : 0.05;
    int click = rng_unif(r) < pc, conv = click && rng_unif(r) < pv;
    s.label[FR_TASK_CTR] = (float)click;
    s.label[FR_TASK_CTCVR] = (float)conv;
    s.has_label[FR_TASK_CTR] = s.has_label[FR_TASK_CTCVR] = 1;
    s.weight[FR_TASK_CTR] = s.weight[FR_TASK_CTCVR] = 1;
    return s;
}

static double entropy(double p) { return -(p * log(p) + (1 - p) * log(1 - p)); }

static void check_learning(const fr_model_config *cfg)
{
    fr_model_config c = *cfg;
    fr_model *m = create_ok(&c);
    rng r = {2024};
    enum { N = 40000, E = 5000 };
    fr_sample *s = malloc(N * sizeof *s);
    for (int i = 0; i < N; i++) s[i] = learn_sample(&r);
    fr_model_train(m, s, N, NULL);
    fr_metric *ctr = malloc(sizeof *ctr), *ctcvr = malloc(sizeof *ctcvr);
    fr_metric_reset(ctr);
    fr_metric_reset(ctcvr);
    for (int i = 0; i < E; i++) {
        fr_sample t = learn_sample(&r);
        float out[FR_NTASKS];
        fr_model_predict(m, &t.f, 0, out);
        fr_metric_add(ctr, out[FR_TASK_CTR], t.label[FR_TASK_CTR], 1);
        fr_metric_add(ctcvr, out[FR_TASK_CTCVR], t.label[FR_TASK_CTCVR], 1);
    }
    double base_ctr = entropy(ctr->label_sum / ctr->weight), base_ctcvr = entropy(ctcvr->label_sum / ctcvr->weight);
    double ll_ctr = fr_metric_logloss(ctr), ll_ctcvr = fr_metric_logloss(ctcvr);
    print_message("learning: CTR logloss %.4f (base %.4f, AUC %.3f), CTCVR logloss %.4f (base %.4f, AUC %.3f)\n",
                  ll_ctr, base_ctr, fr_metric_auc(ctr), ll_ctcvr, base_ctcvr, fr_metric_auc(ctcvr));
    /* the Bayes logloss is about 0.72 of the base entropy for CTR */
    assert_true(ll_ctr < 0.85 * base_ctr);
    assert_true(fr_metric_auc(ctr) > 0.75);
    assert_true(ll_ctcvr < 0.95 * base_ctcvr);
    free(ctr);
    free(ctcvr);
    free(s);
    fr_model_free(m);
}

static void test_learning(void **state)
{
    (void)state;
    fr_model_config c;
    fr_model_config_defaults(&c);
    check_learning(&c);
}

/* FTRL with its defaults learns as well; and with l1 the problem's noise fields (8 of them, 300
 * values each, carrying no signal) end with exactly-zero coordinates while the model still learns. */
static int count_zero(const fr_row_view *v, void *ctx)
{
    size_t *c = ctx;
    c[0] += (size_t)v->dim;
    for (int d = 0; d < v->dim; d++) c[1] += v->weights[d] == 0.0f;
    return 0;
}

static void test_ftrl_learning(void **state)
{
    (void)state;
    fr_model_config c;
    fr_model_config_defaults(&c);
    c.emb_optimizer = 1;
    check_learning(&c);
    c.ftrl_l1 = 1.0f;
    check_learning(&c);
    /* the same training again, to count the zeros (check_learning frees its model) */
    fr_model *m = create_ok(&c);
    rng r = {2024};
    enum { N = 40000 };
    fr_sample *s = malloc(N * sizeof *s);
    for (int i = 0; i < N; i++) s[i] = learn_sample(&r);
    fr_model_train(m, s, N, NULL);
    size_t z[2] = {0, 0};
    fr_model_foreach_row(m, 0, count_zero, z);
    print_message("ftrl l1 = 1: %zu of %zu embedding coordinates exactly 0\n", z[1], z[0]);
    assert_true(z[1] > z[0] / 10);
    free(s);
    fr_model_free(m);
}

/* ---- rows, serialisation, dirty marks --------------------------------------------------------- */

static void test_predict_creates_no_rows(void **state)
{
    (void)state;
    fr_model_config c = small_config();
    fr_model *m = create_ok(&c);
    rng r = {4};
    fr_sample s = random_sample(&r, &c, 1000);
    float out[FR_NTASKS], zero[FR_NTASKS];
    fr_model_predict(m, &s.f, 0, out);
    for (uint32_t t = 0; t < fr_model_table_count(m); t++) assert_int_equal(fr_model_row_count(m, t), 0);
    /* unseen keys read as zeros: the same as an all-empty feature set with the same numerics */
    fr_features empty;
    memset(&empty, 0, sizeof empty);
    memcpy(empty.num, s.f.num, sizeof empty.num);
    fr_model_predict(m, &empty, 0, zero);
    assert_memory_equal(out, zero, sizeof out);
    assert_true(isfinite(fr_model_loss(m, &s, 1)));
    for (uint32_t t = 0; t < fr_model_table_count(m); t++) assert_int_equal(fr_model_row_count(m, t), 0);
    fr_model_free(m);
}

typedef struct {
    fr_model *to;
    int n;
} copy_ctx;

static int copy_row(const fr_row_view *v, void *ctx)
{
    copy_ctx *c = ctx;
    assert_int_equal(fr_model_put_row(c->to, v->table, v->key, v->version, v->weights, v->accum), 0);
    c->n++;
    return 0;
}

static int count_row(const fr_row_view *v, void *ctx)
{
    (void)v;
    (*(int *)ctx)++;
    return 0;
}

static int count_rows(const fr_model *m, int which)
{
    int n = 0;
    fr_model_foreach_row(m, which, count_row, &n);
    return n;
}

static void test_roundtrip(void **state)
{
    (void)state;
    fr_model_config c = small_config();
    fr_model *a = create_ok(&c), *b = create_ok(&c);
    fr_sample *s = synthetic(&c, 300, 17);
    fr_model_train(a, s, 300, NULL);
    copy_ctx ctx = {b, 0};
    fr_model_foreach_row(a, 0, copy_row, &ctx);
    assert_int_equal(fr_model_set_dense(b, fr_model_dense_params(a), fr_model_dense_accum(a), fr_model_dense_count(a)), 0);
    assert_int_equal(fr_model_set_dense(b, fr_model_dense_params(a), NULL, fr_model_dense_count(a) + 1), -1);
    fr_model_set_version(b, fr_model_version(a));
    assert_models_equal(a, b);
    assert_int_equal(count_rows(b, FR_DIRTY_CHECKPOINT | FR_DIRTY_PUBLISH), 0); /* loading is not a change */
    for (int i = 0; i < 300; i++) {
        float pa[FR_NTASKS], pb[FR_NTASKS];
        fr_model_predict(a, &s[i].f, s[i].scenario, pa);
        fr_model_predict(b, &s[i].f, s[i].scenario, pb);
        assert_memory_equal(pa, pb, sizeof pa);
    }
    /* and both train on identically from there */
    fr_sample *more = synthetic(&c, 50, 18);
    fr_model_train(a, more, 50, NULL);
    fr_model_train(b, more, 50, NULL);
    assert_models_equal(a, b);
    assert_int_equal(fr_model_put_row(b, 99, 1, 0, fr_model_dense_params(a), NULL), -1);
    assert_int_equal(fr_model_put_row(b, 0, 0, 0, fr_model_dense_params(a), NULL), -1);
    free(s);
    free(more);
    fr_model_free(a);
    fr_model_free(b);
}

/* FTRL: two models trained alike stay bit-identical, rows copied with their z and n (the
 * checkpoint's path) train on identically, and a new row starts at its draw as z0 implies it. */
static void test_ftrl_determinism(void **state)
{
    (void)state;
    fr_model_config c = ftrl_config();
    fr_model *a = create_ok(&c), *b = create_ok(&c);
    fr_sample *s = synthetic(&c, 600, 41);
    int cuts[] = {0, 100, 164, 400, 401, 600};
    for (int k = 0; k + 1 < 6; k++) {
        fr_model_train(a, s + cuts[k], cuts[k + 1] - cuts[k], NULL);
        fr_model_train(b, s + cuts[k], cuts[k + 1] - cuts[k], NULL);
    }
    assert_true(fr_model_version(a) > 70);
    assert_models_equal(a, b);

    fr_model *r = create_ok(&c);
    copy_ctx ctx = {r, 0};
    fr_model_foreach_row(a, 0, copy_row, &ctx);
    assert_int_equal(
        fr_model_set_dense(r, fr_model_dense_params(a), fr_model_dense_accum(a), fr_model_dense_count(a)), 0);
    fr_model_set_version(r, fr_model_version(a));
    assert_models_equal(a, r);
    fr_sample *more = synthetic(&c, 90, 42);
    fr_model_train(a, more, 90, NULL);
    fr_model_train(r, more, 90, NULL);
    assert_models_equal(a, r);

    /* a fresh row: the draw, through z0 = fr_ftrl_z_for(draw), n = 0 */
    const fr_ftrl_params fp = {c.ftrl_alpha, c.ftrl_beta, c.ftrl_l1, c.ftrl_l2};
    fr_sample one = s[0];
    one.f.cat[1] = key_of(1, 100000);
    one.weight[0] = one.weight[1] = one.weight[2] = 0; /* creates the row, trains nothing */
    fr_model_train(b, &one, 1, NULL);
    fr_row_view v;
    assert_int_equal(fr_model_get_row(b, 1, one.f.cat[1], &v), 0);
    uint64_t seed = c.seed ^ ((uint64_t)2 * 0x9E3779B97F4A7C15ULL) ^ one.f.cat[1];
    for (int d = 0; d < c.emb_dim; d++) {
        float draw = fr_hash_uniform(seed, (uint64_t)d) * c.init_scale;
        assert_true(v.accum[d] == fr_ftrl_z_for(draw, &fp));
        assert_true(v.accum[c.emb_dim + d] == 0.0f);
        assert_true(v.weights[d] == fr_ftrl_weight(v.accum[d], 0.0f, &fp));
        assert_true(fabsf(v.weights[d] - draw) <= 1e-6f * fabsf(draw));
        assert_true(v.weights[d] != 0.0f);
    }
    free(s);
    free(more);
    fr_model_free(a);
    fr_model_free(b);
    fr_model_free(r);
}

typedef struct {
    uint64_t version;
    int bad;
} version_ctx;

static int check_version(const fr_row_view *v, void *ctx)
{
    version_ctx *c = ctx;
    if (v->version != c->version) c->bad++;
    return 0;
}

static int stop_at_first(const fr_row_view *v, void *ctx)
{
    (void)v;
    (void)ctx;
    return 42;
}

static void test_dirty_marks(void **state)
{
    (void)state;
    fr_model_config c = small_config();
    fr_model *m = create_ok(&c);
    fr_sample *s = synthetic(&c, 40, 23);
    fr_model_train(m, s, 40, NULL);
    int all = count_rows(m, 0);
    assert_true(all > 20);
    assert_int_equal(count_rows(m, FR_DIRTY_CHECKPOINT), all);
    assert_int_equal(count_rows(m, FR_DIRTY_PUBLISH), all);
    assert_int_equal(count_rows(m, FR_DIRTY_CHECKPOINT | FR_DIRTY_PUBLISH), all);
    fr_model_clear_dirty(m, FR_DIRTY_CHECKPOINT);
    assert_int_equal(count_rows(m, FR_DIRTY_CHECKPOINT), 0);
    assert_int_equal(count_rows(m, FR_DIRTY_PUBLISH), all);
    assert_int_equal(count_rows(m, FR_DIRTY_CHECKPOINT | FR_DIRTY_PUBLISH), all);
    assert_int_equal(fr_model_foreach_row(m, FR_DIRTY_PUBLISH, stop_at_first, NULL), 42);

    /* one more batch of 2 samples: exactly its rows become dirty, with the new version */
    fr_model_train(m, s, 2, NULL);
    int touched = count_rows(m, FR_DIRTY_CHECKPOINT);
    assert_true(touched >= c.n_cat && touched <= 2 * (c.n_cat + c.n_multi * FR_MAX_MULTI_LEN));
    version_ctx vc = {fr_model_version(m), 0};
    fr_model_foreach_row(m, FR_DIRTY_CHECKPOINT, check_version, &vc);
    assert_int_equal(vc.bad, 0);
    assert_int_equal(count_rows(m, FR_DIRTY_CHECKPOINT | FR_DIRTY_PUBLISH), all); /* each row once */
    fr_model_clear_dirty(m, 0);
    assert_int_equal(count_rows(m, FR_DIRTY_CHECKPOINT | FR_DIRTY_PUBLISH), 0);
    assert_int_equal(count_rows(m, 0), all);
    free(s);
    fr_model_free(m);
}

/* The table grows through many resizes, with small sequential keys (worst case for a weak hash). */
static void test_many_rows(void **state)
{
    (void)state;
    fr_model_config c = small_config();
    fr_model *m = create_ok(&c);
    enum { N = 200000 };
    float w[4];
    for (uint64_t k = 1; k <= N; k++) {
        for (int d = 0; d < 4; d++) w[d] = (float)(k * 4 + (uint64_t)d);
        assert_int_equal(fr_model_put_row(m, 1, k, k, w, NULL), 0);
    }
    assert_int_equal(fr_model_row_count(m, 1), N);
    assert_int_equal(fr_model_row_count(m, 0), 0);
    for (uint64_t k = 1; k <= N; k++) {
        fr_row_view v;
        assert_int_equal(fr_model_get_row(m, 1, k, &v), 0);
        assert_true(v.key == k && v.version == k && v.weights[3] == (float)(k * 4 + 3) && v.accum[0] == c.adagrad_init);
    }
    fr_row_view v;
    assert_int_equal(fr_model_get_row(m, 1, N + 1, &v), -1);
    assert_int_equal(fr_model_get_row(m, 0, 1, &v), -1);
    size_t bytes = fr_model_row_memory(m);
    print_message("rows: %zu bytes per row of emb_dim 4\n", bytes / N);
    assert_true(bytes / N < 100);
    fr_model_free(m);
}

/* ---- dense layout and config ------------------------------------------------------------------ */

static void test_dense_layout(void **state)
{
    (void)state;
    fr_model_config c = small_config();
    fr_model *m = create_ok(&c);
    const char *names[] = {"expert.0.w", "expert.1.w", "expert.2.w", "gate.ctr.w", "gate.cvr.w",
                           "expert.0.b", "expert.1.b", "expert.2.b", "gate.ctr.b", "gate.cvr.b",
                           "tower.ctr.hidden.w", "tower.ctr.hidden.b", "tower.ctr.out.w", "tower.ctr.out.b",
                           "tower.cvr.hidden.w", "tower.cvr.hidden.b", "tower.cvr.out.w", "tower.cvr.out.b",
                           "pair.ctr.w", "pair.cvr.w", "wide.ctr.w", "wide.cvr.w"};
    int nf = c.n_cat + c.n_multi, npair = nf * (nf - 1) / 2;
    int in = nf * c.emb_dim + c.n_num + npair;
    assert_int_equal(fr_model_dense_tensor_count(m), 22);
    size_t off = 0;
    for (int i = 0; i < 22; i++) {
        fr_tensor_info t = fr_model_dense_tensor(m, i);
        assert_string_equal(t.name, names[i]);
        assert_int_equal(t.offset, off);
        off += (size_t)t.rows * (size_t)t.cols;
    }
    assert_int_equal(off, fr_model_dense_count(m));
    fr_tensor_info t = fr_model_dense_tensor(m, 0);
    assert_true(t.rows == c.expert_dim && t.cols == in);
    t = fr_model_dense_tensor(m, 10);
    assert_true(t.rows == c.tower_dim && t.cols == c.expert_dim);
    t = fr_model_dense_tensor(m, 18);
    assert_true(t.rows == 1 && t.cols == npair);
    t = fr_model_dense_tensor(m, 20);
    assert_true(t.rows == 1 && t.cols == nf * c.emb_dim + c.n_num);
    /* initial output biases are the logits of the documented base rates */
    const float *p = fr_model_dense_params(m);
    assert_true(fabs(1 / (1 + exp(-p[fr_model_dense_tensor(m, 13).offset])) - 0.05) < 1e-6);
    assert_true(fabs(1 / (1 + exp(-p[fr_model_dense_tensor(m, 17).offset])) - 0.1) < 1e-6);
    assert_true(p[fr_model_dense_tensor(m, 5).offset] == 0.0f);
    /* weights bounded by 1/sqrt(fan_in) and not all equal */
    t = fr_model_dense_tensor(m, 0);
    float bound = 1.0f / sqrtf((float)in);
    int distinct = 0;
    for (int j = 0; j < t.rows * t.cols; j++) {
        assert_true(fabsf(p[j]) <= bound);
        distinct += p[j] != p[0];
    }
    assert_true(distinct > 0);
    fr_model_free(m);
    /* without interactions and the wide head: the plain layout, as before them */
    c.interactions = 0;
    c.wide = 0;
    m = create_ok(&c);
    assert_int_equal(fr_model_dense_tensor_count(m), 18);
    t = fr_model_dense_tensor(m, 0);
    assert_int_equal(t.cols, nf * c.emb_dim + c.n_num);
    t = fr_model_dense_tensor(m, 17);
    assert_string_equal(t.name, "tower.cvr.out.b");
    assert_int_equal(t.offset + 1, fr_model_dense_count(m));
    /* the pair weights alone: the expert input stays plain */
    c.interactions = 2;
    fr_model_free(m);
    m = create_ok(&c);
    assert_int_equal(fr_model_dense_tensor_count(m), 20);
    assert_int_equal(fr_model_dense_tensor(m, 0).cols, nf * c.emb_dim + c.n_num);
    assert_string_equal(fr_model_dense_tensor(m, 19).name, "pair.cvr.w");
    fr_model_free(m);
}

static void expect_refused(fr_model_config c, const char *key)
{
    char err[256] = "";
    fr_model *m = fr_model_create(&c, err, sizeof err);
    if (m) {
        fr_model_free(m);
        fail_msg("config accepted, expected a refusal naming %s", key);
    }
    if (!strstr(err, key)) fail_msg("message '%s' does not name %s", err, key);
}

static void test_config_validation(void **state)
{
    (void)state;
    fr_model_config d;
    fr_model_config_defaults(&d);
    fr_model_config c;
    c = d, c.n_cat = 0, expect_refused(c, "model.n_cat");
    c = d, c.n_cat = FR_MAX_CAT + 1, expect_refused(c, "model.n_cat");
    c = d, c.n_num = -1, expect_refused(c, "model.n_num");
    c = d, c.n_num = FR_MAX_NUM + 1, expect_refused(c, "model.n_num");
    c = d, c.n_multi = FR_MAX_MULTI + 1, expect_refused(c, "model.n_multi");
    c = d, c.n_scenarios = 0, expect_refused(c, "model.n_scenarios");
    c = d, c.emb_dim = 0, expect_refused(c, "model.emb_dim");
    c = d, c.n_experts = 0, expect_refused(c, "model.n_experts");
    c = d, c.expert_dim = -3, expect_refused(c, "model.expert_dim");
    c = d, c.tower_dim = 0, expect_refused(c, "model.tower_dim");
    c = d, c.batch_size = 0, expect_refused(c, "model.batch_size");
    c = d, c.lr_emb = 0, expect_refused(c, "model.lr_emb");
    c = d, c.lr_dense = NAN, expect_refused(c, "model.lr_dense");
    c = d, c.adagrad_init = 0, expect_refused(c, "model.adagrad_init");
    c = d, c.init_scale = -1, expect_refused(c, "model.init_scale");
    c = d, c.interactions = 4, expect_refused(c, "model.interactions");
    c = d, c.interactions = -1, expect_refused(c, "model.interactions");
    c = d, c.wide = 2, expect_refused(c, "model.wide");
    c = d, c.n_experts = 0, c.n_task_experts = 0, c.n_learner_experts = 0, expect_refused(c, "model.n_experts");
    c = d, c.n_levels = 0, expect_refused(c, "model.n_levels");
    c = d, c.n_levels = 5, expect_refused(c, "model.n_levels");
    c = d, c.n_levels = 2, c.n_experts = 0, c.n_learner_experts = 1, expect_refused(c, "model.n_levels");
    c = d, c.n_learners = 0, expect_refused(c, "model.n_learners");
    c = d, c.n_learners = 5, expect_refused(c, "model.n_learners");
    c = d, c.distill = 0.5f, expect_refused(c, "model.distill");
    c = d, c.learner_loss = 0.5f, expect_refused(c, "model.learner_loss");
    c = d, c.causal_adv = -1, expect_refused(c, "model.causal_adv");
    c = d, c.dense_optimizer = 2, expect_refused(c, "model.dense_optimizer");
    c = d, c.dense_optimizer = 1, c.adam_beta1 = 1, expect_refused(c, "model.adam_beta1");
    c = d, c.dense_optimizer = 1, c.adam_beta2 = -0.1f, expect_refused(c, "model.adam_beta2");
    c = d, c.dense_optimizer = 1, c.adam_eps = 0, expect_refused(c, "model.adam_eps");
    c = d, c.emb_optimizer = 2, expect_refused(c, "model.emb_optimizer");
    c = d, c.emb_optimizer = -1, expect_refused(c, "model.emb_optimizer");
    c = d, c.emb_optimizer = 1, c.ftrl_alpha = -0.1f, expect_refused(c, "model.ftrl_alpha");
    c = d, c.emb_optimizer = 1, c.ftrl_alpha = 0, expect_refused(c, "model.ftrl_alpha");
    c = d, c.emb_optimizer = 1, c.ftrl_beta = 0, expect_refused(c, "model.ftrl_beta");
    c = d, c.emb_optimizer = 1, c.ftrl_l1 = -1, expect_refused(c, "model.ftrl_l1");
    c = d, c.emb_optimizer = 1, c.ftrl_l2 = NAN, expect_refused(c, "model.ftrl_l2");
    c = d, c.dfub_heads = 3, c.dfub_target = 4, expect_refused(c, "model.dfub_heads"); /* 3 does not divide 8 */
    c = d, c.dfub_heads = 9, expect_refused(c, "model.dfub_heads");
    c = d, c.dfub_heads = 2, c.dfub_target = 0, expect_refused(c, "model.dfub_target"); /* the scenario */
    c = d, c.dfub_heads = 2, c.dfub_target = 8, expect_refused(c, "model.dfub_target");
    c = d, c.dfub_heads = 2, c.dfub_target = 4, c.dfub_history = 1, expect_refused(c, "model.dfub_history");
    c = d, c.causal_adv = 1, c.n_experts = 0, c.n_task_experts = 1, expect_refused(c, "model.causal_adv");
    c = d, c.causal_adv = 1, c.n_scenarios = 1, expect_refused(c, "model.causal_adv");
    c = d, c.causal_orth = 1, expect_refused(c, "model.causal_orth"); /* no scenario experts */
    c = d, c.dffi_layers = 1, c.scenario_dim = 71, expect_refused(c, "model.scenario_dim"); /* needs 8 x 9 */
    c = d, c.dffi_layers = 2, c.scenario_dim = 72, expect_refused(c, "model.scenario_dim");
    c = d, c.dffi_layers = 3, c.scenario_dim = 1000, expect_refused(c, "model.dffi_layers");
    c = d, c.dffi_layers = 1, c.scenario_dim = 72, c.interactions = 0, expect_refused(c, "model.dffi_layers");
    c = d, c.n_learners = 2, c.learner_loss = NAN, expect_refused(c, "model.learner_loss");
    c = d, c.n_learners = 2, c.distill = -0.5f, expect_refused(c, "model.distill");
    c = d, c.n_task_experts = -1, expect_refused(c, "model.n_task_experts");
    c = d, c.n_learner_experts = 65, expect_refused(c, "model.n_learner_experts");
    c = d, c.scenario_dim = -1, expect_refused(c, "model.scenario_dim");
    c = d, c.n_scenarios = 100, c.n_scenario_experts = 3, expect_refused(c, "model.n_scenario_experts");
    char err[256];
    fr_model *m = fr_model_create(&d, err, sizeof err);
    assert_non_null(m);
    assert_int_equal(fr_model_table_count(m), (uint32_t)(d.n_cat + d.n_multi));
    assert_int_equal(fr_model_get_config(m)->emb_dim, 8);
    fr_model_free(m);
}

/* The model sets OpenBLAS to one thread itself: determinism does not hang on OPENBLAS_NUM_THREADS
 * (tests/run.sh and the systemd unit no longer set it). */
static void test_one_blas_thread(void **state)
{
    (void)state;
    openblas_set_num_threads(2);
    fr_model_config c = small_config();
    char err[256];
    fr_model *m = fr_model_create(&c, err, sizeof err);
    assert_non_null(m);
    assert_int_equal(openblas_get_num_threads(), 1);
    fr_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_blas_thread),
        cmocka_unit_test(test_determinism_engine),
        cmocka_unit_test(test_adagrad_hand),
        cmocka_unit_test(test_train_step_exact),
        cmocka_unit_test(test_progressive_equals_predict),
        cmocka_unit_test(test_forward_matches_reference),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_retune),
        cmocka_unit_test(test_weights_only),
        cmocka_unit_test(test_adam),
        cmocka_unit_test(test_ftrl_hand),
        cmocka_unit_test(test_ftrl_train_step_exact),
        cmocka_unit_test(test_ftrl_determinism),
        cmocka_unit_test(test_ftrl_learning),
        cmocka_unit_test(test_init_order_independent),
        cmocka_unit_test(test_learning),
        cmocka_unit_test(test_predict_creates_no_rows),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_dirty_marks),
        cmocka_unit_test(test_many_rows),
        cmocka_unit_test(test_dense_layout),
        cmocka_unit_test(test_config_validation),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
