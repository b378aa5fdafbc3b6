/* tests/support/model_fixture.h: what the learner's tests share -- a deterministic PRNG, a small
 * configuration with every kind of input, random samples and rows, the gradient collector, and the
 * engine cases (every preset and component). For tests/test_model.c and tests/test_model_grad.c. */
#ifndef FR_TEST_MODEL_FIXTURE_H
#define FR_TEST_MODEL_FIXTURE_H

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

static inline uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static inline double rng_unif(rng *r) { return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }
static inline int rng_int(rng *r, int n) { return (int)(rng_next(r) % (uint64_t)n); }

static inline int setup(void **state)
{
    (void)state;
    /* sgemm's summation order may depend on the thread count: one thread for determinism */
    openblas_set_num_threads(1);
    return 0;
}

/* Small enough for exhaustive-ish gradient checks, with every kind of input present. */
static inline fr_model_config small_config(void)
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

static inline fr_model *create_ok(const fr_model_config *c)
{
    char err[256] = "";
    fr_model *m = fr_model_create(c, err, sizeof err);
    if (!m) fail_msg("fr_model_create: %s", err);
    return m;
}

static inline uint64_t key_of(int field, int value)
{
    int v[2] = {field, value};
    return fr_hash_value(fr_hash_field("test"), v, sizeof v);
}

/* A sample over a small vocabulary (v_per_field values per field) with every term on. */
static inline fr_sample random_sample(rng *r, const fr_model_config *c, int vocab)
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
static inline void put_rows(fr_model *m, const fr_model_config *c, const fr_sample *s, int n, rng *r)
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
static inline void jitter_biases(fr_model *m, rng *r)
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
static inline void lift_biases(fr_model *m)
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

static inline void collect(uint32_t table, uint64_t key, const float *grad, void *ctx)
{
    row_grads *g = ctx;
    assert_true(g->n < 256);
    g->table[g->n] = table;
    g->key[g->n] = key;
    memcpy(g->grad[g->n], grad, (size_t)g->dim * sizeof *grad);
    g->n++;
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

static inline fr_model_config engine_config(const engine_case *e)
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


#endif
