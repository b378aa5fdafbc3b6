/* Tests of the learner: analytic gradients against central differences for every dense tensor
 * and for embedding rows (each loss term alone and together), the Adagrad and FTRL steps, progressive
 * validation, determinism, learning on a synthetic problem, serialisation and validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_hash.h"
#include "fr_metrics.h"
#include "fr_model.h"
#include "fr_model_check.h"
#include "fr_optim.h"

/* ---- helpers ---------------------------------------------------------------------------------- */

typedef struct {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static double rng_unif(rng *r) { return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }
static int rng_int(rng *r, int n) { return (int)(rng_next(r) % (uint64_t)n); }

static int setup(void **state)
{
    (void)state;
    /* sgemm's summation order may depend on the thread count: one thread for determinism */
    openblas_set_num_threads(1);
    return 0;
}

/* Small enough for exhaustive-ish gradient checks, with every kind of input present. */
static fr_model_config small_config(void)
{
    fr_model_config c;
    fr_model_config_defaults(&c);
    c.n_cat = 3;
    c.n_num = 2;
    c.n_multi = 2;
    c.emb_dim = 4;
    c.n_experts = 3;
    c.expert_dim = 5;
    c.tower_dim = 4;
    c.batch_size = 8;
    c.seed = 7;
    return c;
}

static fr_model *create_ok(const fr_model_config *c)
{
    char err[256] = "";
    fr_model *m = fr_model_create(c, err, sizeof err);
    if (!m) fail_msg("fr_model_create: %s", err);
    return m;
}

static uint64_t key_of(int field, int value)
{
    int v[2] = {field, value};
    return fr_hash_value(fr_hash_field("test"), v, sizeof v);
}

/* A sample over a small vocabulary (v_per_field values per field) with every term on. */
static fr_sample random_sample(rng *r, const fr_model_config *c, int vocab)
{
    fr_sample s;
    memset(&s, 0, sizeof s);
    for (int f = 0; f < c->n_cat; f++) s.f.cat[f] = key_of(f, rng_int(r, f == 0 ? 4 : vocab));
    for (int i = 0; i < c->n_num; i++) s.f.num[i] = (float)(rng_unif(r) * 2 - 1);
    for (int j = 0; j < c->n_multi; j++) {
        s.f.multi_len[j] = (uint8_t)rng_int(r, FR_MAX_MULTI_LEN + 1);
        for (int k = 0; k < s.f.multi_len[j]; k++) s.f.multi[j][k] = key_of(100 + j, rng_int(r, vocab));
    }
    for (int t = 0; t < FR_NTASKS; t++) {
        s.has_label[t] = 1;
        s.weight[t] = 1;
    }
    s.label[FR_TASK_CTR] = rng_unif(r) < 0.3;
    s.label[FR_TASK_CVR] = rng_unif(r) < 0.3;
    s.label[FR_TASK_CTCVR] = s.label[FR_TASK_CTR] && s.label[FR_TASK_CVR];
    s.scenario = (int32_t)(s.f.cat[0] % 4);
    return s;
}

/* Gives every row the samples read a sizeable random value, so the embeddings matter. */
static void put_rows(fr_model *m, const fr_model_config *c, const fr_sample *s, int n, rng *r)
{
    float w[64], acc[64];
    for (int i = 0; i < n; i++) {
        for (int f = 0; f < c->n_cat + c->n_multi; f++) {
            int len = f < c->n_cat ? 1 : s[i].f.multi_len[f - c->n_cat];
            for (int k = 0; k < len; k++) {
                uint64_t key = f < c->n_cat ? s[i].f.cat[f] : s[i].f.multi[f - c->n_cat][k];
                fr_row_view v;
                if (key == 0 || fr_model_get_row(m, (uint32_t)f, key, &v) == 0) continue;
                for (int d = 0; d < c->emb_dim; d++) {
                    w[d] = (float)(rng_unif(r) - 0.5);
                    acc[d] = 0.1f;
                }
                assert_int_equal(fr_model_put_row(m, (uint32_t)f, key, 0, w, acc), 0);
            }
        }
    }
}

/* Non-zero biases, so a test cannot pass because some bias gradient happens to vanish at 0. */
static void jitter_biases(fr_model *m, rng *r)
{
    size_t P = fr_model_dense_count(m);
    float *p = malloc(P * sizeof *p);
    memcpy(p, fr_model_dense_params(m), P * sizeof *p);
    for (int i = 0; i < fr_model_dense_tensor_count(m); i++) {
        fr_tensor_info t = fr_model_dense_tensor(m, i);
        if (t.name[strlen(t.name) - 1] != 'b') continue;
        for (int j = 0; j < t.rows * t.cols; j++) p[t.offset + j] += (float)(rng_unif(r) * 0.4 - 0.2);
    }
    assert_int_equal(fr_model_set_dense(m, p, NULL, P), 0);
    free(p);
}

/* Positive expert and tower-hidden biases: with narrow layers stacked two or three deep, random
 * ReLU units are often dead for a whole small batch, and a dead path checks nothing. Likewise
 * DFUB's query and key projections are scaled up: at their initial size the attention is nearly
 * uniform and the score gradients are too small to tell right from wrong. */
static void lift_biases(fr_model *m)
{
    size_t P = fr_model_dense_count(m);
    float *p = malloc(P * sizeof *p);
    memcpy(p, fr_model_dense_params(m), P * sizeof *p);
    for (int i = 0; i < fr_model_dense_tensor_count(m); i++) {
        fr_tensor_info t = fr_model_dense_tensor(m, i);
        size_t len = strlen(t.name);
        if (!strcmp(t.name, "dfub.q.w") || !strcmp(t.name, "dfub.k.w"))
            for (int j = 0; j < t.rows * t.cols; j++) p[t.offset + j] *= 6.0f;
        if (strcmp(t.name + len - 2, ".b") != 0 || (!strstr(t.name, "expert") && !strstr(t.name, "hidden"))) continue;
        for (int j = 0; j < t.rows * t.cols; j++) p[t.offset + j] += 0.5f;
    }
    assert_int_equal(fr_model_set_dense(m, p, NULL, P), 0);
    free(p);
}

/* ---- gradient checks -------------------------------------------------------------------------- */

typedef struct {
    int n, dim;
    uint32_t table[256];
    uint64_t key[256];
    float grad[256][64];
} row_grads;

static void collect(uint32_t table, uint64_t key, const float *grad, void *ctx)
{
    row_grads *g = ctx;
    assert_true(g->n < 256);
    g->table[g->n] = table;
    g->key[g->n] = key;
    memcpy(g->grad[g->n], grad, (size_t)g->dim * sizeof *grad);
    g->n++;
}

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

/* ---- the engine: every preset and component --------------------------------------------------- */

typedef struct {
    const char *what;
    int shared, task, learner, scen, levels, learners, sd;
    float distill, learner_loss;
    int dffi;
    float adv, orth;
    int dfub_heads;
} engine_case;

static const engine_case ENGINE_CASES[] = {
    {"shared-bottom (one expert: identity gates)", 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0},
    {"MMoE", 3, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0},
    {"CGC: shared + task experts", 2, 2, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0},
    {"PLE, 2 levels", 2, 1, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0},
    {"PLE, 3 levels", 1, 2, 0, 0, 3, 1, 0, 0, 0, 0, 0, 0, 0},
    {"PLE without shared experts (no shared gate)", 0, 2, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0},
    {"2 levels of identity gates (a stream nobody reads)", 1, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0},
    {"scenario experts in every gate", 2, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0},
    {"scenario vector in the gates", 2, 1, 0, 0, 1, 1, 3, 0, 0, 0, 0, 0, 0},
    {"scenario experts and vector, 2 levels", 1, 1, 0, 2, 2, 1, 2, 0, 0, 0, 0, 0, 0},
    {"TAML: learner experts, 2 learners, distillation, learner losses", 1, 1, 1, 0, 1, 2, 0, 0.7f, 1.3f, 0, 0, 0, 0},
    {"TAML without distillation", 1, 1, 1, 0, 1, 2, 0, 0, 0.8f, 0, 0, 0, 0},
    {"TAML, 3 learners, 2 levels, scenario experts and vector", 1, 1, 1, 1, 2, 3, 2, 0.4f, 0.5f, 0, 0, 0, 0},
    {"learner experts only, distillation without learner losses", 0, 0, 2, 0, 1, 2, 0, 1.0f, 0, 0, 0, 0, 0},
    {"DFFI, 1 layer (weights sliced from the scenario vector)", 3, 0, 0, 0, 1, 1, 20, 0, 0, 1, 0, 0, 0},
    {"DFFI, 2 layers, a wider scenario vector", 2, 0, 0, 0, 1, 1, 47, 0, 0, 2, 0, 0, 0},
    {"TAML + DFFI + scenario experts, 2 levels", 1, 1, 1, 1, 2, 2, 20, 0.5f, 0.5f, 1, 0, 0, 0},
    {"CausalInt: gradient-reversed scenario classifier", 2, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0.8f, 0, 0},
    {"CausalInt: orthogonality term", 2, 0, 0, 2, 1, 1, 0, 0, 0, 0, 0, 1.5f, 0},
    {"TAML + DFFI + CausalInt, 2 levels", 2, 1, 1, 1, 2, 2, 20, 0.5f, 0.3f, 1, 0.6f, 0.9f, 0},
    {"DFUB, 1 head", 2, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1},
    {"DFUB, 2 heads", 2, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 2},
    {"everything: TAML + DFFI + DFUB + CausalInt, 2 levels", 3, 1, 1, 1, 2, 2, 20, 0.5f, 0.3f, 1, 0.6f, 0.9f, 4},
};

static fr_model_config engine_config(const engine_case *e)
{
    fr_model_config c = small_config();
    c.n_experts = e->shared;
    c.n_task_experts = e->task;
    c.n_learner_experts = e->learner;
    c.n_scenario_experts = e->scen;
    c.n_levels = e->levels;
    c.n_learners = e->learners;
    c.scenario_dim = e->sd;
    c.distill = e->distill;
    c.learner_loss = e->learner_loss;
    c.dffi_layers = e->dffi;
    c.causal_adv = e->adv;
    c.causal_orth = e->orth;
    c.dfub_heads = e->dfub_heads;
    c.dfub_target = 2;  /* small_config: categorical slots 0..2, multi fields 0..1 */
    c.dfub_history = 1;
    return c;
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
        cmocka_unit_test(test_grad_ctr_only),
        cmocka_unit_test(test_grad_ctcvr_only),
        cmocka_unit_test(test_grad_cvr_only),
        cmocka_unit_test(test_grad_all_terms),
        cmocka_unit_test(test_grad_interaction_parts),
        cmocka_unit_test(test_grad_pair_formula),
        cmocka_unit_test(test_grad_engine),
        cmocka_unit_test(test_grad_engine_dim8),
        cmocka_unit_test(test_grad_stop_gradient),
        cmocka_unit_test(test_taml_fusion),
        cmocka_unit_test(test_determinism_engine),
        cmocka_unit_test(test_ctcvr_gradient_saturated),
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
