/* Tests of the learner's gradients: analytic gradients against central differences for every dense
 * tensor and for embedding rows (each loss term alone and together), every engine preset and component,
 * the stop-gradients, TAML's fusion, the pair formula and saturated CTCVR. The rest of the learner's
 * tests are in test_model.c; the shared fixture is tests/support/model_fixture.h. */
#include "model_fixture.h"


/* The reference loss is computed in double, so a small step is safe. */
static const double EPS = 1e-4;

static int close_enough(double analytic, double numeric)
{
    double tol = 1e-2 * fmax(fabs(analytic), fabs(numeric)) + 1e-5;
    return fabs(analytic - numeric) <= tol;
}

/* Central difference from the losses at theta - eps, theta, theta + eps (as float values actually
 * stored, so their rounding does not bias the quotient). Returns 1 when the one-sided slopes
 * disagree: a ReLU kink lies inside the step and the central difference means nothing there. */
static int difference(double lm, double l0, double lp, float lo, float orig, float hi, double *num)
{
    double back = (l0 - lm) / ((double)orig - (double)lo), fwd = (lp - l0) / ((double)hi - (double)orig);
    *num = (lp - lm) / ((double)hi - (double)lo);
    return fabs(fwd - back) > 1e-3 * fmax(fabs(fwd), fabs(back)) + 1e-6;
}

/* The reference loss; with a teacher (TAML), its distillation targets held at the given values,
 * which is what the stop-gradient means. */
static double ref_loss(fr_model *m, const fr_sample *s, int n, double *teacher, int adv_sign)
{
    return teacher ? fr_model_loss_teacher(m, s, n, teacher, 0, adv_sign) : fr_model_loss(m, s, n);
}

/* adv_sign: how CausalInt's adversarial term counts for this coordinate (+1 the classifier's own
 * parameters, -1 the rest: gradient reversal). */
static int numeric_dense_t(fr_model *m, float *p, size_t P, size_t j, const fr_sample *s, int n, double *teacher,
                           int adv_sign, double *num)
{
    float orig = p[j];
    float hi = (float)(orig + EPS), lo = (float)(orig - EPS);
    double l0 = ref_loss(m, s, n, teacher, adv_sign);
    p[j] = hi;
    fr_model_set_dense(m, p, NULL, P);
    double lp = ref_loss(m, s, n, teacher, adv_sign);
    p[j] = lo;
    fr_model_set_dense(m, p, NULL, P);
    double lm = ref_loss(m, s, n, teacher, adv_sign);
    p[j] = orig;
    fr_model_set_dense(m, p, NULL, P);
    return difference(lm, l0, lp, lo, orig, hi, num);
}

static int numeric_row_t(fr_model *m, uint32_t table, uint64_t key, int d, const fr_sample *s, int n,
                         double *teacher, double *num)
{
    fr_row_view v;
    assert_int_equal(fr_model_get_row(m, table, key, &v), 0);
    float w[64], acc[64];
    memcpy(w, v.weights, (size_t)v.dim * sizeof *w);
    memcpy(acc, v.accum, (size_t)v.dim * sizeof *acc);
    float orig = w[d], hi = (float)(orig + EPS), lo = (float)(orig - EPS);
    double l0 = ref_loss(m, s, n, teacher, -1);
    w[d] = hi;
    fr_model_put_row(m, table, key, v.version, w, acc);
    double lp = ref_loss(m, s, n, teacher, -1);
    w[d] = lo;
    fr_model_put_row(m, table, key, v.version, w, acc);
    double lm = ref_loss(m, s, n, teacher, -1);
    w[d] = orig;
    fr_model_put_row(m, table, key, v.version, w, acc);
    return difference(lm, l0, lp, lo, orig, hi, num);
}

/* Which loss terms are on; weights differ from 1 and from each other so a mis-weighted term shows. */
enum { T_CTR = 1, T_CVR = 2, T_CTCVR = 4 };

/* Checks every dense tensor (up to 10 coordinates each) and every touched row coordinate of the
 * model c against central differences of the double-precision reference loss, on a batch that
 * covers every scenario plus one the model does not know. */
static void check_gradients_cfg(fr_model_config c, int terms, uint64_t seed, int lift)
{
    fr_model *m = create_ok(&c);
    rng r = {seed};
    enum { N = 6 };
    fr_sample s[N];
    for (int i = 0; i < N; i++) {
        s[i] = random_sample(&r, &c, 3); /* a vocabulary of 3: keys repeat within the batch */
        s[i].weight[FR_TASK_CTR] = (terms & T_CTR) ? 1.7f + 0.1f * (float)i : 0;
        s[i].weight[FR_TASK_CVR] = (terms & T_CVR) ? 0.6f : 0;
        s[i].weight[FR_TASK_CTCVR] = (terms & T_CTCVR) ? 2.3f : 0;
    }
    s[1].f.multi_len[0] = 0;                 /* an empty multi-valued field reads as zeros */
    s[2].f.multi_len[1] = 3;                 /* the same key twice in one pooled field */
    s[2].f.multi[1][0] = key_of(101, 1);
    s[2].f.multi[1][1] = s[2].f.multi[1][0];
    s[2].f.multi[1][2] = 0;                  /* key 0 inside multi_len: no value, not pooled */
    s[3].has_label[FR_TASK_CTR] = 0;         /* has_label = 0 turns a term off whatever its weight */
    for (int i = 0; i < N; i++) s[i].scenario = i < c.n_scenarios ? i : (i == N - 1 ? c.n_scenarios + 5 : i % 2);
    put_rows(m, &c, s, N, &r);
    jitter_biases(m, &r);
    if (lift) lift_biases(m);
    double teacher[2 * N];
    fr_model_loss_teacher(m, s, N, teacher, 1, -1);

    size_t P = fr_model_dense_count(m);
    float *g = calloc(P, sizeof *g), *p = malloc(P * sizeof *p);
    memcpy(p, fr_model_dense_params(m), P * sizeof *p);
    row_grads *rg = calloc(1, sizeof *rg);
    rg->dim = c.emb_dim;
    assert_int_equal(fr_model_gradients(m, s, N, g, collect, rg), 0);

    int checked = 0, kinks = 0, nonzero_tensors = 0;
    for (int i = 0; i < fr_model_dense_tensor_count(m); i++) {
        fr_tensor_info t = fr_model_dense_tensor(m, i);
        size_t cnt = (size_t)t.rows * (size_t)t.cols;
        size_t picks[10];
        int np = 0;
        if (cnt <= 10) {
            for (size_t j = 0; j < cnt; j++) picks[np++] = j;
        } else {
            for (int k = 0; k < 10; k++) picks[np++] = (k * 7919 + (size_t)i * 31) % cnt;
        }
        double biggest = 0;
        for (int k = 0; k < np; k++) {
            size_t j = t.offset + picks[k];
            double num;
            int sign = strncmp(t.name, "causal.classifier", 17) == 0 ? 1 : -1;
            if (numeric_dense_t(m, p, P, j, s, N, teacher, sign, &num)) {
                kinks++;
                continue;
            }
            if (!close_enough(g[j], num))
                fail_msg("terms %d: %s[%zu]: analytic %.8g numeric %.8g", terms, t.name, picks[k], (double)g[j], num);
            biggest = fmax(biggest, fabs(num));
            checked++;
        }
        /* the picks can all land on dead units; the analytic gradient (just checked) covers all */
        for (size_t j = 0; j < cnt; j++) biggest = fmax(biggest, fabs(g[t.offset + j]));
        if (biggest > 1e-4)
            nonzero_tensors++;
        else if (terms == (T_CTR | T_CVR | T_CTCVR))
            print_message("  no sizeable gradient in %s\n", t.name);
        /* a tower no term reaches must get exactly zero gradient */
        int cvr_tower = strstr(t.name, "tower.cvr") != NULL, ctr_tower = strstr(t.name, "tower.ctr") != NULL;
        if ((cvr_tower && !(terms & (T_CVR | T_CTCVR))) || (ctr_tower && !(terms & (T_CTR | T_CTCVR))))
            for (size_t j = 0; j < cnt; j++) assert_true(g[t.offset + j] == 0.0f);
    }
    /* the check is not vacuous: with all terms, every tensor has a sizeable gradient somewhere */
    if (terms == (T_CTR | T_CVR | T_CTCVR)) assert_int_equal(nonzero_tensors, fr_model_dense_tensor_count(m));
    assert_true(checked > 50);

    int saw_cat = 0, saw_multi = 0;
    for (int i = 0; i < rg->n; i++) {
        for (int d = 0; d < c.emb_dim; d++) {
            double num;
            if (numeric_row_t(m, rg->table[i], rg->key[i], d, s, N, teacher, &num)) {
                kinks++;
                continue;
            }
            checked++;
            if (!close_enough(rg->grad[i][d], num))
                fail_msg("terms %d: row table %u key %llx dim %d: analytic %.8g numeric %.8g", terms, rg->table[i],
                         (unsigned long long)rg->key[i], d, (double)rg->grad[i][d], num);
            if (fabs(num) > 1e-4) *(rg->table[i] < (uint32_t)c.n_cat ? &saw_cat : &saw_multi) += 1;
        }
    }
    assert_true(saw_cat > 0);
    assert_true(saw_multi > 0);
    /* skipping kinks must stay rare, or the check would not check */
    if (kinks * 20 > checked) fail_msg("terms %d: %d kinks in %d checks", terms, kinks, checked);
    /* the gradient call changed nothing */
    assert_memory_equal(p, fr_model_dense_params(m), P * sizeof *p);
    assert_int_equal(fr_model_version(m), 0);
    free(rg);
    free(g);
    free(p);
    fr_model_free(m);
}

static void check_gradients_with(int terms, uint64_t seed, int interactions, int wide)
{
    fr_model_config c = small_config();
    c.interactions = interactions;
    c.wide = wide;
    check_gradients_cfg(c, terms, seed, 0);
}

static void check_gradients(int terms, uint64_t seed) { check_gradients_with(terms, seed, 3, 1); }

static void test_grad_ctr_only(void **state)
{
    (void)state;
    check_gradients(T_CTR, 11);
}
static void test_grad_ctcvr_only(void **state)
{
    (void)state;
    check_gradients(T_CTCVR, 12);
}
static void test_grad_cvr_only(void **state)
{
    (void)state;
    check_gradients(T_CVR, 13);
}
static void test_grad_all_terms(void **state)
{
    (void)state;
    check_gradients(T_CTR | T_CVR | T_CTCVR, 14);
    check_gradients(T_CTR | T_CVR | T_CTCVR, 15);
}

/* Each interaction component alone, so one cannot hide another's error: the pair products into
 * the experts only (the embeddings' gradient through p_ij = <e_i, e_j> and the experts), the
 * per-pair logit weights only, the wide head only, and the plain model without any of them. */
static void test_grad_interaction_parts(void **state)
{
    (void)state;
    const int terms = T_CTR | T_CVR | T_CTCVR;
    check_gradients_with(terms, 31, 1, 0);
    check_gradients_with(terms, 32, 2, 0);
    check_gradients_with(terms, 33, 0, 1);
    check_gradients_with(terms, 34, 0, 0);
    check_gradients_with(T_CTR, 35, 2, 0);
}

static void test_grad_engine(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof ENGINE_CASES / sizeof ENGINE_CASES[0]; i++) {
        print_message("  %s\n", ENGINE_CASES[i].what);
        fr_model_config c = engine_config(&ENGINE_CASES[i]);
        check_gradients_cfg(c, T_CTR | T_CVR | T_CTCVR, 100 + i, 1);
        check_gradients_cfg(c, T_CTR, 200 + i, 1);
        check_gradients_cfg(c, T_CTCVR, 300 + i, 1);
        /* without the wide head; DFFI alone through each of its two paths */
        c.interactions = c.dffi_layers ? 2 : 0;
        c.wide = 0;
        check_gradients_cfg(c, T_CTR | T_CVR | T_CTCVR, 400 + i, 1);
        if (c.dffi_layers) {
            c.interactions = 1;
            check_gradients_cfg(c, T_CTR | T_CVR | T_CTCVR, 500 + i, 1);
        }
    }
}

/* DFFI's and DFUB's per-sample kernels have a copy specialised for emb_dim 8 (the default width)
 * next to the generic one the cases above (emb_dim 4) check: the same checks at emb_dim 8. */
static void test_grad_engine_dim8(void **state)
{
    (void)state;
    static const char *const which[] = {"DFFI, 1 layer (weights sliced from the scenario vector)", "DFUB, 1 head",
                                        "everything: TAML + DFFI + DFUB + CausalInt, 2 levels"};
    int done = 0;
    for (size_t i = 0; i < sizeof ENGINE_CASES / sizeof ENGINE_CASES[0]; i++) {
        int hit = 0;
        for (size_t k = 0; k < sizeof which / sizeof which[0]; k++) hit |= !strcmp(ENGINE_CASES[i].what, which[k]);
        if (!hit) continue;
        print_message("  %s, emb_dim 8\n", ENGINE_CASES[i].what);
        fr_model_config c = engine_config(&ENGINE_CASES[i]);
        c.emb_dim = 8;
        if (c.dffi_layers) c.scenario_dim = 8 * 9 + 3;
        check_gradients_cfg(c, T_CTR | T_CVR | T_CTCVR, 600 + i, 1);
        if (c.dffi_layers) {
            c.interactions = 1; /* DFFI's products only through the logits */
            check_gradients_cfg(c, T_CTR | T_CVR | T_CTCVR, 700 + i, 1);
        }
        done++;
    }
    assert_int_equal(done, 3);
}

/* The distillation teacher is a constant: the analytic gradient matches the difference with the
 * teacher held fixed, and is measurably not the gradient of the loss with the teacher free. */
static void test_grad_stop_gradient(void **state)
{
    (void)state;
    fr_model_config c = engine_config(&ENGINE_CASES[10]);
    c.distill = 3;
    fr_model *m = create_ok(&c);
    rng r = {77};
    enum { N = 6 };
    fr_sample s[N];
    for (int i = 0; i < N; i++) s[i] = random_sample(&r, &c, 3);
    put_rows(m, &c, s, N, &r);
    jitter_biases(m, &r);
    lift_biases(m);
    double teacher[2 * N];
    fr_model_loss_teacher(m, s, N, teacher, 1, -1);
    size_t P = fr_model_dense_count(m);
    float *g = calloc(P, sizeof *g), *p = malloc(P * sizeof *p);
    memcpy(p, fr_model_dense_params(m), P * sizeof *p);
    assert_int_equal(fr_model_gradients(m, s, N, g, NULL, NULL), 0);
    int differs = 0, checked = 0;
    for (int i = 0; i < fr_model_dense_tensor_count(m); i++) {
        fr_tensor_info t = fr_model_dense_tensor(m, i);
        if (strstr(t.name, "tower.") != t.name || strstr(t.name, ".out.b") == NULL) continue;
        double fixed, free_t;
        assert_int_equal(numeric_dense_t(m, p, P, t.offset, s, N, teacher, -1, &fixed), 0);
        assert_int_equal(numeric_dense_t(m, p, P, t.offset, s, N, NULL, -1, &free_t), 0);
        if (!close_enough(g[t.offset], fixed))
            fail_msg("%s: analytic %.8g, fixed-teacher difference %.8g", t.name, (double)g[t.offset], fixed);
        differs += !close_enough(g[t.offset], free_t);
        checked++;
    }
    assert_int_equal(checked, 4);
    assert_true(differs > 0);
    free(g);
    free(p);
    fr_model_free(m);
}

/* Predictions are the fused score sigmoid(mean of the learners' logits): the reference pass's
 * teacher values (computed independently, in double) equal what fr_model_predict returns. */
static void test_taml_fusion(void **state)
{
    (void)state;
    fr_model_config c = engine_config(&ENGINE_CASES[12]);
    fr_model *m = create_ok(&c);
    rng r = {21};
    enum { N = 32 };
    fr_sample s[N];
    for (int i = 0; i < N; i++) s[i] = random_sample(&r, &c, 4);
    fr_model_train(m, s, N, NULL);
    double teacher[2 * N];
    fr_model_loss_teacher(m, s, N, teacher, 1, -1);
    for (int i = 0; i < N; i++) {
        float out[FR_NTASKS];
        fr_model_predict(m, &s[i].f, s[i].scenario, out);
        assert_true(fabs(out[FR_TASK_CTR] - teacher[2 * i]) <= 1e-5 * teacher[2 * i]);
        assert_true(fabs(out[FR_TASK_CVR] - teacher[2 * i + 1]) <= 1e-5 * teacher[2 * i + 1]);
        assert_true(fabsf(out[FR_TASK_CTCVR] - out[FR_TASK_CTR] * out[FR_TASK_CVR]) < 1e-6f);
    }
    fr_model_free(m);
}

/* With the pair weights alone, a row's gradient is exactly the FM formula: for a categorical
 * field i, d/de_i sum_j r_ij <e_i, e_j> = sum_j r_ij e_j, times d loss / d logit. Checked against
 * the model's analytic row gradient for a one-sample batch with the experts' path cut off. */
static void test_grad_pair_formula(void **state)
{
    (void)state;
    fr_model_config c = small_config();
    c.interactions = 2;
    c.wide = 0;
    c.n_multi = 0;
    fr_model *m = create_ok(&c);
    rng r = {41};
    fr_sample s = random_sample(&r, &c, 50);
    s.weight[FR_TASK_CVR] = s.weight[FR_TASK_CTCVR] = 0;
    s.label[FR_TASK_CTR] = 1;
    put_rows(m, &c, &s, 1, &r);
    size_t P = fr_model_dense_count(m);
    float *p = malloc(P * sizeof *p);
    memcpy(p, fr_model_dense_params(m), P * sizeof *p);
    /* zero the CTR tower's output weights: the logit is out.b + the pair term alone */
    fr_tensor_info ow = fr_model_dense_tensor(m, 12), pw = fr_model_dense_tensor(m, 18);
    assert_string_equal(ow.name, "tower.ctr.out.w");
    assert_string_equal(pw.name, "pair.ctr.w");
    assert_int_equal(pw.cols, c.n_cat * (c.n_cat - 1) / 2);
    for (int j = 0; j < ow.cols; j++) p[ow.offset + j] = 0;
    assert_int_equal(fr_model_set_dense(m, p, NULL, P), 0);
    float e[FR_MAX_CAT][64];
    for (int f = 0; f < c.n_cat; f++) {
        fr_row_view v;
        assert_int_equal(fr_model_get_row(m, (uint32_t)f, s.f.cat[f], &v), 0);
        memcpy(e[f], v.weights, (size_t)c.emb_dim * sizeof(float));
    }
    double z = p[fr_model_dense_tensor(m, 13).offset];
    for (int i = 0, k = 0; i < c.n_cat; i++)
        for (int j = i + 1; j < c.n_cat; j++, k++) {
            double dot = 0;
            for (int d = 0; d < c.emb_dim; d++) dot += (double)e[i][d] * e[j][d];
            z += p[pw.offset + k] * dot;
        }
    double dl = (1 / (1 + exp(-z)) - 1) * s.weight[FR_TASK_CTR]; /* label 1 */
    row_grads *rg = calloc(1, sizeof *rg);
    rg->dim = c.emb_dim;
    assert_int_equal(fr_model_gradients(m, &s, 1, NULL, collect, rg), 0);
    assert_int_equal(rg->n, c.n_cat);
    for (int i = 0; i < c.n_cat; i++) {
        assert_int_equal(rg->table[i], (uint32_t)i);
        for (int d = 0; d < c.emb_dim; d++) {
            double want = 0;
            for (int j = 0; j < c.n_cat; j++) {
                if (j == i) continue;
                int a = i < j ? i : j, b = i < j ? j : i;
                int k = a * c.n_cat - a * (a + 1) / 2 + (b - a - 1); /* index of pair (a, b) */
                want += p[pw.offset + k] * e[j][d];
            }
            want *= dl;
            if (fabs(rg->grad[i][d] - want) > 1e-5 * fmax(1, fabs(want)))
                fail_msg("field %d dim %d: gradient %.8g, FM formula %.8g", i, d, (double)rg->grad[i][d], want);
        }
    }
    free(rg);
    free(p);
    fr_model_free(m);
}

/* Saturated logits: the CTCVR gradient stays finite and bounded by the weight. */
static void test_ctcvr_gradient_saturated(void **state)
{
    (void)state;
    fr_model_config c = small_config();
    fr_model *m = create_ok(&c);
    rng r = {3};
    size_t P = fr_model_dense_count(m);
    float *p = malloc(P * sizeof *p), *g = malloc(P * sizeof *g);
    memcpy(p, fr_model_dense_params(m), P * sizeof *p);
    for (int i = 0; i < fr_model_dense_tensor_count(m); i++) {
        fr_tensor_info t = fr_model_dense_tensor(m, i);
        if (strstr(t.name, ".out.b")) p[t.offset] = 40; /* pCTR, pCVR == 1 in float */
    }
    fr_model_set_dense(m, p, NULL, P);
    fr_sample s = random_sample(&r, &c, 3);
    s.weight[FR_TASK_CTR] = s.weight[FR_TASK_CVR] = 0;
    s.weight[FR_TASK_CTCVR] = 2;
    s.label[FR_TASK_CTCVR] = 0;
    assert_int_equal(fr_model_gradients(m, &s, 1, g, NULL, NULL), 0);
    for (int i = 0; i < fr_model_dense_tensor_count(m); i++) {
        fr_tensor_info t = fr_model_dense_tensor(m, i);
        if (strstr(t.name, ".out.b")) assert_true(isfinite(g[t.offset]) && fabsf(g[t.offset]) <= 2.0f);
    }
    for (size_t j = 0; j < P; j++) assert_true(isfinite(g[j]));
    double l = fr_model_loss(m, &s, 1);
    assert_true(isfinite(l) && l > 0);
    free(p);
    free(g);
    fr_model_free(m);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_ctr_only),
        cmocka_unit_test(test_grad_ctcvr_only),
        cmocka_unit_test(test_grad_cvr_only),
        cmocka_unit_test(test_grad_all_terms),
        cmocka_unit_test(test_grad_interaction_parts),
        cmocka_unit_test(test_grad_engine),
        cmocka_unit_test(test_grad_engine_dim8),
        cmocka_unit_test(test_grad_stop_gradient),
        cmocka_unit_test(test_taml_fusion),
        cmocka_unit_test(test_grad_pair_formula),
        cmocka_unit_test(test_ctcvr_gradient_saturated),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
